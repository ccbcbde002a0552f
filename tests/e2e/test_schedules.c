/* Schedules end to end (docs/scheduling.md), against the real
 * nats-server, PostgreSQL and Redis of deploy/stack.sh: three controller
 * replicas fire `@every 1s` schedules, checked in PostgreSQL: one run per
 * tick, also when a replica is killed -9; a singleton whose runs outlast
 * its period never overlaps; Redis stopped for 5 s; controllers restarted
 * under both catch-up policies; bad schedules refused.
 *
 * Needs HANDOFF_NATS_URL, HANDOFF_PG_DSN, HANDOFF_REDIS_URL and
 * HANDOFF_STACK_DIR (tests/run.sh sets them). The test makes a database
 * and a worker pool of its own and removes everything at the end. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "clock.h"
#include "db.h"
#include "mem.h"

extern char **environ;

#define MAX_PROCS 16
#define N_CTL 3

struct proc {
    pid_t pid;
    char name[64];
    char log[160];
};

static struct {
    char pool[64];
    char dbname[64];
    char dsn[512];
    char url[N_CTL][96];
    struct proc *ctl[N_CTL];
    struct proc procs[MAX_PROCS];
    size_t n_procs;
    struct db *db; /* checks in the test's database */
} E;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port;

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---- Processes ---------------------------------------------------------- */

/* Starts bin with args; extra environment entries "K=V" added (NULL-ended).
 * Output goes to a log file; returns the slot. */
static struct proc *spawn(const char *name, const char *bin,
                          const char *const *args, const char *const *env)
{
    struct proc *p = &E.procs[E.n_procs++];
    char *argv[32];
    char **envp;
    size_t n_env = 0;
    size_t n = 0;
    posix_spawn_file_actions_t fa;

    assert_true(E.n_procs <= MAX_PROCS);
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "/tmp/handoff-e2e-%d-%s.log",
             (int)getpid(), name);
    argv[n++] = (char *)bin;
    for (; args && args[n - 1]; n++) {
        argv[n] = (char *)args[n - 1];
    }
    argv[n] = NULL;
    while (environ[n_env]) {
        n_env++;
    }
    envp = calloc(n_env + 16, sizeof(*envp));
    n_env = 0;
    /* The extra entries replace inherited ones of the same name: getenv
     * returns the first match. */
    for (size_t i = 0; environ[i]; i++) {
        bool replaced = false;

        for (size_t k = 0; env && env[k]; k++) {
            size_t len = strcspn(env[k], "=");

            replaced = replaced || (strncmp(environ[i], env[k], len) == 0 &&
                                    environ[i][len] == '=');
        }
        if (!replaced) {
            envp[n_env++] = environ[i];
        }
    }
    for (size_t i = 0; env && env[i]; i++) {
        envp[n_env++] = (char *)env[i];
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, p->log,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    assert_int_equal(posix_spawn(&p->pid, bin, &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    return p;
}

static void print_log(const struct proc *p)
{
    FILE *f = fopen(p->log, "r");
    char line[2048];

    fprintf(stderr, "---- %s (%s) ----\n", p->name, p->log);
    while (f && fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
    }
    if (f) {
        fclose(f);
    }
}

/* SIGTERM (or kill -9) and wait; returns the exit status or 128+signal. */
static int proc_stop(struct proc *p, int sig)
{
    int status = 0;
    int64_t until = clock_mono_ns() + 20 * CLOCK_NS_PER_S;

    if (p->pid <= 0) {
        return 0;
    }
    kill(p->pid, sig);
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);

        if (r == p->pid) {
            break;
        }
        if (clock_mono_ns() > until) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            break;
        }
        sleep_ms(20);
    }
    p->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void print_logs(void)
{
    for (size_t i = 0; i < E.n_procs; i++) {
        print_log(&E.procs[i]);
    }
}

/* Starts controller i (0..N_CTL-1) on a new port. */
static void start_controller(int i)
{
    char name[32];
    char addr[32];
    char env_addr[96];
    char env_dsn[600];
    char bin[512];

    snprintf(name, sizeof(name), "controller-%d", i + 1);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
    snprintf(E.url[i], sizeof(E.url[i]), "http://%s", addr);
    snprintf(env_addr, sizeof(env_addr), "HANDOFF_HTTP_ADDR=%s", addr);
    snprintf(env_dsn, sizeof(env_dsn), "HANDOFF_PG_DSN=%s", E.dsn);
    snprintf(bin, sizeof(bin), "%s/handoff-controller", HANDOFF_BIN_DIR);
    E.ctl[i] =
        spawn(name, bin, NULL,
              (const char *[]){env_addr, env_dsn, "HANDOFF_LOG_LEVEL=info",
                               "HANDOFF_SCHEDULE_POLL=100ms", NULL});
}

static void start_worker(const char *name)
{
    char bin[512];

    snprintf(bin, sizeof(bin), "%s/handoff-test-worker", HANDOFF_BIN_DIR);
    spawn(name, bin,
          (const char *[]){"serve", "--pool", E.pool, "--id", name,
                           "--concurrency", "4", "--heartbeat", "500ms",
                           "--drain-timeout", "2s", "--kill-grace", "300ms",
                           NULL},
          (const char *[]){"HANDOFF_LOG_LEVEL=info", NULL});
}

/* ---- HTTP --------------------------------------------------------------- */

struct http {
    long status;
    struct buf body;
    char location[256];
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    buf_add(arg, data, size * n);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct http *h = arg;

    if (strncasecmp(data, "Location: ", 10) == 0) {
        snprintf(h->location, sizeof(h->location), "%.*s",
                 (int)strcspn(data + 10, "\r\n"), data + 10);
    }
    return size * n;
}

/* A request; body may be NULL. header: one extra "Name: value" or NULL. */
static struct http request(const char *base, const char *method,
                           const char *path, const char *body,
                           const char *header)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hs = NULL;
    struct http h;
    char url[512];

    memset(&h, 0, sizeof(h));
    buf_init(&h.body, 0);
    snprintf(url, sizeof(url), "%s%s", base, path);
    hs = curl_slist_append(hs, "Content-Type: application/json");
    if (header) {
        hs = curl_slist_append(hs, header);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h.status);
    }
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return h;
}

/* POSTs a schedule of the test's pool; extra is more JSON fields. */
static void create_schedule(const char *name, const char *expr,
                            const char *extra)
{
    char body[2048];
    struct http h;

    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"suite\":\"e2e\",\"namespace\":\"test\","
             "\"pool\":\"%s\",\"expression\":\"%s\",%s}",
             name, E.pool, expr, extra);
    h = request(E.url[0], "POST", "/api/v1/schedules", body, NULL);
    if (h.status != 201) {
        fail_msg("POST %s: %ld %s", body, h.status, buf_str(&h.body));
    }
    buf_cleanup(&h.body);
}

static void set_enabled(const char *name, bool on)
{
    char path[160];
    struct http h;

    snprintf(path, sizeof(path), "/api/v1/schedules/%s", name);
    h = request(E.url[0], "PATCH", path,
                on ? "{\"enabled\":true}" : "{\"enabled\":false}", NULL);
    if (h.status != 200) {
        fail_msg("PATCH %s: %ld %s", path, h.status, buf_str(&h.body));
    }
    buf_cleanup(&h.body);
}

/* Polls until controller i answers /readyz with 200. */
static void await_ready(int i)
{
    int64_t until = clock_mono_ns() + 60 * CLOCK_NS_PER_S;

    for (;;) {
        struct http h = request(E.url[i], "GET", "/readyz", NULL, NULL);

        buf_cleanup(&h.body);
        if (h.status == 200) {
            return;
        }
        if (clock_mono_ns() > until) {
            print_logs();
            fail_msg("controller %d not ready within 60 s", i + 1);
        }
        sleep_ms(100);
    }
}

/* ---- SQL checks ----------------------------------------------------------- */

/* ---- SQL checks ----------------------------------------------------------- */

static int64_t sql_count(const char *sql, const char *arg)
{
    struct db_res *res = NULL;
    int64_t n = -1;
    const char *p[1] = {arg};

    assert_int_equal(db_exec(E.db, sql, arg ? 1 : 0, arg ? p : NULL, &res),
                     ST_OK);
    assert_int_equal(db_res_int64(res, 0, 0, &n), ST_OK);
    db_res_free(res);
    return n;
}

static void stack(const char *cmd, const char *service)
{
    char line[1024];

    snprintf(line, sizeof(line), "%s/deploy/stack.sh %s %s >/dev/null 2>&1",
             HANDOFF_SOURCE_DIR, cmd, service);
    assert_int_equal(system(line), 0);
}

/* Runs of the named schedule, and its ticks matching cond. */
#define RUNS_OF                                                                \
    "SELECT count(*) FROM runs WHERE schedule_id = (SELECT id FROM "           \
    "schedules WHERE name = $1)"
#define TICKS_OF(cond)                                                         \
    "SELECT count(*) FROM schedule_ticks WHERE schedule_id = (SELECT id "      \
    "FROM schedules WHERE name = $1) AND " cond

/* Every fired tick of name has its own run and every run of name its own
 * tick: one run per tick, never two. Returns the number of runs. */
static int64_t check_one_run_per_tick(const char *name)
{
    int64_t runs = sql_count(RUNS_OF, name);

    assert_int_equal(sql_count(TICKS_OF("outcome = 'fired'"), name), runs);
    assert_int_equal(
        sql_count(TICKS_OF("run_id IN (SELECT id FROM runs)"), name), runs);
    assert_int_equal(
        sql_count("SELECT count(DISTINCT t.run_id) FROM schedule_ticks t "
                  "JOIN schedules s ON s.id = t.schedule_id WHERE s.name = "
                  "$1 AND t.outcome = 'fired'",
                  name),
        runs);
    return runs;
}

/* The database's clock, in ms. */
static int64_t db_now_ms(void)
{
    return sql_count("SELECT (extract(epoch FROM now()) * 1000)::bigint", NULL);
}

/* Runs of name created between from_ms and to_ms (database clock). */
static int64_t runs_between(const char *name, int64_t from_ms, int64_t to_ms)
{
    char from[24];
    char to[24];
    const char *p[3] = {name, from, to};
    struct db_res *res = NULL;
    int64_t n = -1;

    snprintf(from, sizeof(from), "%" PRId64, from_ms);
    snprintf(to, sizeof(to), "%" PRId64, to_ms);
    assert_int_equal(db_exec(E.db,
                             RUNS_OF
                             " AND created_at BETWEEN timestamptz 'epoch' + "
                             "$2::bigint * interval '1 ms' AND timestamptz "
                             "'epoch' + $3::bigint * interval '1 ms'",
                             3, p, &res),
                     ST_OK);
    assert_int_equal(db_res_int64(res, 0, 0, &n), ST_OK);
    db_res_free(res);
    return n;
}

/* ---- Tests --------------------------------------------------------------- */

static void expect_refused(const char *method, const char *path,
                           const char *body, long status, const char *says)
{
    struct http h = request(E.url[1], method, path, body, NULL);

    if (h.status != status || !strstr(buf_str(&h.body), says)) {
        fail_msg("%s %s %s: %ld %s (want %ld and \"%s\")", method, path,
                 body ? body : "", h.status, buf_str(&h.body), status, says);
    }
    buf_cleanup(&h.body);
}

static void test_e2e_bad_schedules_get_4xx_and_leave_no_row(void **state)
{
    static const struct {
        const char *body;
        long status;
        const char *says;
    } cases[] = {
        {"{\"name\":\"bad1\",\"suite\":\"e2e\",\"expression\":\"61 * * * "
         "*\"}",
         400, "field \\\"expression\\\""},
        {"{\"name\":\"bad2\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"time_zone\":\"Mars/Olympus\"}",
         400, "field \\\"time_zone\\\""},
        {"{\"name\":\"bad3\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"colour\":\"red\"}",
         400, "unknown field \\\"colour\\\""},
        {"{\"name\":\"bad4\",\"suite\":\"e2f\",\"expression\":\"@daily\"}", 404,
         "unknown suite"},
        {"{\"name\":\"bad 5\",\"suite\":\"e2e\",\"expression\":\"@daily\"}",
         400, "field \\\"name\\\""},
        {"{\"name\":\"bad6\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"overlap_policy\":\"sometimes\"}",
         400, "overlap_policy"},
        {"{\"name\":\"bad7\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"trigger\":\"api\"}",
         400, "trigger"},
        {"{\"name\":\"bad8\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"run\":\"(\"}",
         400, "field \\\"run\\\""},
        {"[1]", 400, "malformed_json"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_refused("POST", "/api/v1/schedules", cases[i].body,
                       cases[i].status, cases[i].says);
    }
    assert_int_equal(
        sql_count("SELECT count(*) FROM schedules WHERE name LIKE 'bad%'",
                  NULL),
        0);
    create_schedule("daily", "0 3 * * *", "\"time_zone\":\"Europe/Berlin\"");
    expect_refused("POST", "/api/v1/schedules",
                   "{\"name\":\"daily\",\"suite\":\"e2e\",\"expression\":"
                   "\"@daily\"}",
                   409, "exists already");
    expect_refused("PATCH", "/api/v1/schedules/daily", "{\"name\":\"other\"}",
                   400, "renamed");
    expect_refused("PATCH", "/api/v1/schedules/daily",
                   "{\"expression\":\"0 3 * *\"}", 400, "expression");
    expect_refused("GET", "/api/v1/schedules/nosuch", NULL, 404, "nosuch");
    /* 03:00 in Berlin, whatever the UTC offset of the day. */
    assert_int_equal(
        sql_count("SELECT count(*) FROM schedules WHERE name = 'daily' AND "
                  "expression = '0 3 * * *' AND extract(hour FROM "
                  "next_fire_at AT TIME ZONE 'Europe/Berlin') = 3",
                  NULL),
        1);
    expect_refused("DELETE", "/api/v1/schedules/daily", NULL, 200, "deleted");
    expect_refused("DELETE", "/api/v1/schedules/daily", NULL, 404, "daily");
}

static void
test_e2e_every_second_fires_once_per_tick_on_three_replicas(void **state)
{
    int64_t runs;
    int64_t expected;

    (void)state;
    create_schedule("every1", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\"");
    sleep_ms(8000);
    /* A replica killed -9 midway, whatever locks it held. */
    assert_int_equal(proc_stop(E.ctl[2], SIGKILL), 128 + SIGKILL);
    sleep_ms(8000);
    set_enabled("every1", false);
    runs = check_one_run_per_tick("every1");
    /* Ticks from the first to the pause, one a second. */
    expected = sql_count(
        "SELECT floor(extract(epoch FROM s.updated_at - min(t.tick_at)))"
        "::bigint + 1 FROM schedules s JOIN schedule_ticks t ON "
        "t.schedule_id = s.id WHERE s.name = $1 GROUP BY s.updated_at",
        "every1");
    fprintf(stderr, "every1: %" PRId64 " runs for %" PRId64 " ticks\n", runs,
            expected);
    assert_true(expected >= 14);
    assert_true(runs >= expected - 1 && runs <= expected + 1);
    /* Consecutive ticks one second apart: none repeated, none lost. */
    assert_int_equal(
        sql_count("SELECT count(*) FROM (SELECT tick_at - lag(tick_at) OVER "
                  "(ORDER BY tick_at) AS gap FROM schedule_ticks t JOIN "
                  "schedules s ON s.id = t.schedule_id WHERE s.name = $1) g "
                  "WHERE gap <> interval '1 second'",
                  "every1"),
        0);
    /* The lock went to more than one replica. */
    assert_true(
        sql_count("SELECT count(DISTINCT controller) FROM schedule_ticks t "
                  "JOIN schedules s ON s.id = t.schedule_id WHERE s.name = $1",
                  "every1") >= 2);
    start_controller(2);
    await_ready(2);
}

static void test_e2e_singleton_never_overlaps_and_records_skips(void **state)
{
    int64_t until = clock_mono_ns() + 30 * CLOCK_NS_PER_S;
    int64_t runs;

    (void)state;
    create_schedule("single", "@every 1s",
                    "\"run\":\"sleep\",\"params\":{\"sleep_ms\":\"3000\"}");
    sleep_ms(12000);
    set_enabled("single", false);
    while (sql_count(RUNS_OF " AND state IN ('queued', 'running')", "single") >
           0) {
        assert_true(clock_mono_ns() < until);
        sleep_ms(200);
    }
    runs = check_one_run_per_tick("single");
    fprintf(stderr, "single: %" PRId64 " runs, %" PRId64 " overlaps\n", runs,
            sql_count(TICKS_OF("reason = 'overlap'"), "single"));
    assert_true(runs >= 2 && runs <= 4);
    /* No run was created before the one before it had ended. */
    assert_int_equal(
        sql_count("SELECT count(*) FROM runs a JOIN runs b ON b.schedule_id "
                  "= a.schedule_id AND b.id > a.id WHERE a.schedule_id = "
                  "(SELECT id FROM schedules WHERE name = $1) AND "
                  "b.created_at < a.finished_at",
                  "single"),
        0);
    assert_int_equal(sql_count(RUNS_OF " AND result = 'passed'", "single"),
                     runs);
    assert_true(sql_count(TICKS_OF("reason = 'overlap'"), "single") >= 5);
}

static void test_e2e_redis_away_for_5s_fires_nothing_then_resumes(void **state)
{
    int64_t stopped_ms;
    int64_t started_ms;
    char body[256];
    struct http h;

    (void)state;
    create_schedule("gap", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\"");
    sleep_ms(3000);
    assert_true(sql_count(RUNS_OF, "gap") >= 2);
    stack("stop-service", "redis");
    stopped_ms = db_now_ms();
    sleep_ms(1000);
    /* Manual runs do not need Redis. */
    snprintf(body, sizeof(body),
             "{\"suite\":\"e2e\",\"pool\":\"%s\",\"run\":\"quick\"}", E.pool);
    h = request(E.url[1], "POST", "/api/v1/runs", body, NULL);
    assert_int_equal(h.status, 201);
    buf_cleanup(&h.body);
    sleep_ms(4000);
    started_ms = db_now_ms();
    stack("start-service", "redis");
    sleep_ms(4000);
    set_enabled("gap", false);
    check_one_run_per_tick("gap");
    /* Nothing fired while Redis was away (a tick already past its lock
     * may finish in the first 300 ms). */
    assert_int_equal(runs_between("gap", stopped_ms + 300, started_ms), 0);
    assert_true(sql_count(TICKS_OF("reason = 'redis_down'"), "gap") >= 3);
    /* Firing resumed. */
    assert_true(runs_between("gap", started_ms, db_now_ms()) >= 2);
}

static void test_e2e_max_runs_ends_and_patch_keeps_the_tick(void **state)
{
    int64_t until = clock_mono_ns() + 20 * CLOCK_NS_PER_S;
    struct http h;

    (void)state;
    create_schedule("twice", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\","
                    "\"max_runs\":2");
    while (sql_count("SELECT count(*) FROM schedules WHERE name = $1 AND "
                     "next_fire_at IS NULL",
                     "twice") == 0) {
        assert_true(clock_mono_ns() < until);
        sleep_ms(100);
    }
    sleep_ms(1500);
    assert_int_equal(check_one_run_per_tick("twice"), 2);
    /* A far-off schedule: a change of params keeps its next tick, a
     * change of expression moves it. */
    create_schedule("yearly", "@yearly", "\"run\":\"quick\"");
    h = request(E.url[1], "PATCH", "/api/v1/schedules/yearly",
                "{\"params\":{\"k\":\"v\"},\"reference\":\"abc\"}", NULL);
    assert_int_equal(h.status, 200);
    assert_non_null(strstr(buf_str(&h.body), "\"reference\": \"abc\""));
    buf_cleanup(&h.body);
    assert_int_equal(sql_count("SELECT count(*) FROM schedules WHERE name = "
                               "$1 AND next_fire_at = date_trunc('year', "
                               "now() AT TIME ZONE 'UTC' + interval '1 year') "
                               "AT TIME ZONE 'UTC' AND params = '{\"k\": "
                               "\"v\"}'",
                               "yearly"),
                     1);
    h = request(E.url[2], "PATCH", "/api/v1/schedules/yearly",
                "{\"expression\":\"@monthly\"}", NULL);
    assert_int_equal(h.status, 200);
    buf_cleanup(&h.body);
    assert_int_equal(sql_count("SELECT count(*) FROM schedules WHERE name = "
                               "$1 AND next_fire_at = date_trunc('month', "
                               "now() AT TIME ZONE 'UTC' + interval '1 month') "
                               "AT TIME ZONE 'UTC' AND reference = 'abc'",
                               "yearly"),
                     1);
}

/* The first tick of name recorded after after_ms ("fired" or the skip
 * reason); checks the tick after it came one second later (no burst). */
static void first_tick_after(const char *name, int64_t after_ms, char *out,
                             size_t len)
{
    char after[24];
    const char *p[2] = {name, after};
    struct db_res *res = NULL;

    snprintf(after, sizeof(after), "%" PRId64, after_ms);
    assert_int_equal(
        db_exec(E.db,
                "SELECT coalesce(t.reason, t.outcome), (extract(epoch FROM "
                "lead(t.tick_at) OVER (ORDER BY t.tick_at) - t.tick_at) * "
                "1000)::bigint FROM schedule_ticks t JOIN schedules s ON "
                "s.id = t.schedule_id WHERE s.name = $1 AND t.recorded_at > "
                "timestamptz 'epoch' + $2::bigint * interval '1 ms' ORDER BY "
                "t.tick_at LIMIT 1",
                2, p, &res),
        ST_OK);
    assert_int_equal(db_res_rows(res), 1);
    snprintf(out, len, "%s", db_res_get(res, 0, 0));
    assert_string_equal(db_res_get(res, 0, 1), "1000");
    db_res_free(res);
}

static void test_e2e_restart_follows_catch_up_and_repeats_nothing(void **state)
{
    char first[32];
    int64_t down_ms;

    (void)state;
    create_schedule("cskip", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\"");
    create_schedule("cone", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\","
                    "\"catch_up\":\"one\"");
    sleep_ms(3000);
    for (int i = 0; i < N_CTL; i++) {
        assert_int_equal(proc_stop(E.ctl[i], SIGTERM), 0);
    }
    down_ms = db_now_ms();
    sleep_ms(4000);
    for (int i = 0; i < N_CTL; i++) {
        start_controller(i);
    }
    await_ready(0);
    sleep_ms(4000);
    set_enabled("cskip", false);
    set_enabled("cone", false);
    check_one_run_per_tick("cskip");
    check_one_run_per_tick("cone");
    /* skip: the missed ticks pass as one skipped tick, no late run. */
    first_tick_after("cskip", down_ms, first, sizeof(first));
    assert_string_equal(first, "missed");
    assert_int_equal(sql_count(TICKS_OF("reason = 'missed'"), "cskip"), 1);
    /* one: a single run for all of them, then on time again. */
    first_tick_after("cone", down_ms, first, sizeof(first));
    assert_string_equal(first, "fired");
    assert_int_equal(sql_count(TICKS_OF("outcome = 'skipped'"), "cone"), 0);
    assert_true(sql_count(TICKS_OF("outcome = 'fired' AND recorded_at > "
                                   "now() - interval '3 seconds'"),
                          "cone") >= 2);
}

/* ---- Set-up and teardown ----------------------------------------------- */

static int group_setup(void **state)
{
    const char *dsn = getenv("HANDOFF_PG_DSN");
    struct db *admin = NULL;
    char sql[256];
    int64_t until;

    (void)state;
    if (!dsn || !getenv("HANDOFF_NATS_URL") || !getenv("HANDOFF_REDIS_URL") ||
        !getenv("HANDOFF_STACK_DIR")) {
        fprintf(stderr, "HANDOFF_PG_DSN, HANDOFF_NATS_URL, HANDOFF_REDIS_URL "
                        "and HANDOFF_STACK_DIR must be set: run under the "
                        "stack (tests/run.sh)\n");
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(E.pool, sizeof(E.pool), "sched%d", (int)getpid());
    snprintf(E.dbname, sizeof(E.dbname), "handoff_sched_%d", (int)getpid());
    if (db_connect(dsn, &admin) != ST_OK) {
        return -1;
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", E.dbname);
    if (db_exec(admin, sql, 0, NULL, NULL) != ST_OK) {
        db_free(admin);
        return -1;
    }
    db_free(admin);
    snprintf(E.dsn, sizeof(E.dsn), "%s dbname=%s", dsn, E.dbname);
    for (int i = 0; i < N_CTL; i++) {
        start_controller(i);
    }
    start_worker("worker-a");
    start_worker("worker-b");
    until = clock_mono_ns() + 60 * CLOCK_NS_PER_S;
    for (;;) {
        struct http h = request(E.url[0], "GET", "/api/v1/suites", NULL, NULL);
        bool ready = h.status == 200 &&
                     strstr(buf_str(&h.body), "\"worker-a\"") &&
                     strstr(buf_str(&h.body), "\"worker-b\"");

        buf_cleanup(&h.body);
        if (ready) {
            break;
        }
        if (clock_mono_ns() > until) {
            print_logs();
            return -1;
        }
        sleep_ms(200);
    }
    for (int i = 0; i < N_CTL; i++) {
        await_ready(i);
    }
    return db_connect(E.dsn, &E.db) == ST_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    struct db *admin = NULL;
    char sql[256];
    int bad = 0;

    (void)state;
    db_free(E.db);
    for (size_t i = E.n_procs; i-- > 0;) {
        int st = proc_stop(&E.procs[i], SIGTERM);

        if (st != 0 && st != 128 + SIGKILL) {
            fprintf(stderr, "%s exited %d\n", E.procs[i].name, st);
            print_log(&E.procs[i]);
            bad = 1;
        }
        unlink(E.procs[i].log);
    }
    if (db_connect(getenv("HANDOFF_PG_DSN"), &admin) == ST_OK) {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                 E.dbname);
        (void)db_exec(admin, sql, 0, NULL, NULL);
    }
    db_free(admin);
    curl_global_cleanup();
    return bad ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2e_bad_schedules_get_4xx_and_leave_no_row),
        cmocka_unit_test(
            test_e2e_every_second_fires_once_per_tick_on_three_replicas),
        cmocka_unit_test(test_e2e_singleton_never_overlaps_and_records_skips),
        cmocka_unit_test(test_e2e_redis_away_for_5s_fires_nothing_then_resumes),
        cmocka_unit_test(test_e2e_restart_follows_catch_up_and_repeats_nothing),
        cmocka_unit_test(test_e2e_max_runs_ends_and_patch_keeps_the_tick),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
