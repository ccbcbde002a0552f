/* Distributed runs end to end, against the real nats-server, PostgreSQL
 * and Redis of deploy/stack.sh: controllers and workers run as the
 * programs users run, driven over HTTP and handoffctl, checked through the
 * API and directly in PostgreSQL. Faults: a worker killed mid-test,
 * PostgreSQL stopped for 10 s, nats-server restarted, two controllers.
 *
 * Needs HANDOFF_NATS_URL, HANDOFF_PG_DSN and HANDOFF_STACK_DIR (tests/run.sh
 * sets them). The test creates a database of its own and a worker pool
 * name of its own, and drops and stops everything at the end. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
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

#define MAX_PROCS 8

struct proc {
    pid_t pid;
    char name[64];
    char log[160];
};

static struct {
    char pool[64];
    char dbname[64];
    char dsn[512];
    char url[96];  /* controller 1 */
    char url2[96]; /* controller 2, when started */
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

static struct proc *start_controller(char *url, size_t url_len,
                                     const char *name)
{
    char addr[32];
    char env_addr[96];
    char env_dsn[600];
    char bin[512];
    struct proc *p;
    int port = free_port();

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(url, url_len, "http://%s", addr);
    snprintf(env_addr, sizeof(env_addr), "HANDOFF_HTTP_ADDR=%s", addr);
    snprintf(env_dsn, sizeof(env_dsn), "HANDOFF_PG_DSN=%s", E.dsn);
    snprintf(bin, sizeof(bin), "%s/handoff-controller", HANDOFF_BIN_DIR);
    p = spawn(name, bin, NULL,
              (const char *[]){env_addr, env_dsn, "HANDOFF_LOG_LEVEL=info",
                               "HANDOFF_SWEEP_INTERVAL=1s", NULL});
    return p;
}

static struct proc *start_worker(const char *name)
{
    char bin[512];

    snprintf(bin, sizeof(bin), "%s/handoff-test-worker", HANDOFF_BIN_DIR);
    return spawn(name, bin,
                 (const char *[]){"serve", "--pool", E.pool, "--id", name,
                                  "--concurrency", "2", "--ack-wait", "2s",
                                  "--heartbeat", "500ms", "--drain-timeout",
                                  "2s", "--kill-grace", "300ms", NULL},
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

static json_t *json_of(const struct http *h)
{
    json_error_t err;
    json_t *j = json_loads(buf_str(&h->body), 0, &err);

    if (!j) {
        fail_msg("not JSON (status %ld): %s", h->status, buf_str(&h->body));
    }
    return j;
}

/* Starts a run; returns its id. */
static int64_t start_run(const char *base, const char *extra_json)
{
    char body[2048];
    struct http h;
    json_t *j;
    int64_t id;

    snprintf(body, sizeof(body),
             "{\"suite\":\"e2e\",\"namespace\":\"test\",\"pool\":\"%s\"%s%s}",
             E.pool, extra_json ? "," : "", extra_json ? extra_json : "");
    h = request(base, "POST", "/api/v1/runs", body, NULL);
    if (h.status != 201) {
        fail_msg("POST %s: %ld %s", body, h.status, buf_str(&h.body));
    }
    j = json_of(&h);
    id = json_integer_value(json_object_get(j, "id"));
    assert_true(id > 0);
    json_decref(j);
    buf_cleanup(&h.body);
    return id;
}

/* Polls the run until its state is one of the ended ones, or fails after
 * timeout_s. Returns the run's detail (caller frees). */
static json_t *await_end(const char *base, int64_t id, int timeout_s)
{
    int64_t until = clock_mono_ns() + timeout_s * CLOCK_NS_PER_S;
    char path[64];

    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64, id);
    for (;;) {
        struct http h = request(base, "GET", path, NULL, NULL);

        if (h.status == 200) {
            json_t *j = json_of(&h);
            const char *state = json_string_value(json_object_get(j, "state"));

            buf_cleanup(&h.body);
            if (state && strcmp(state, "queued") != 0 &&
                strcmp(state, "running") != 0) {
                return j;
            }
            json_decref(j);
        } else {
            buf_cleanup(&h.body);
        }
        if (clock_mono_ns() > until) {
            for (size_t i = 0; i < E.n_procs; i++) {
                print_log(&E.procs[i]);
            }
            fail_msg("run %" PRId64 " did not end within %d s", id, timeout_s);
        }
        sleep_ms(200);
    }
}

static void await_state(const char *base, int64_t id, const char *want,
                        int timeout_s)
{
    int64_t until = clock_mono_ns() + timeout_s * CLOCK_NS_PER_S;
    char path[64];

    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64, id);
    for (;;) {
        struct http h = request(base, "GET", path, NULL, NULL);
        bool ok = false;

        if (h.status == 200) {
            json_t *j = json_of(&h);

            ok = strcmp(json_string_value(json_object_get(j, "state")), want) ==
                 0;
            json_decref(j);
        }
        buf_cleanup(&h.body);
        if (ok) {
            return;
        }
        assert_true(clock_mono_ns() < until);
        sleep_ms(100);
    }
}

static const json_t *test_of(const json_t *run, const char *name)
{
    size_t i;
    json_t *t;

    json_array_foreach(json_object_get(run, "tests"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) {
            return t;
        }
    }
    fail_msg("no test %s in the run", name);
    return NULL;
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "(null)";
}

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

/* ---- Tests --------------------------------------------------------------- */

static void test_e2e_run_over_the_api_is_stored_in_postgres(void **state)
{
    int64_t id = start_run(E.url, "\"run\":\"quick|param\",\"params\":"
                                  "{\"given\":\"v1\",\"expect\":\"v1\"},"
                                  "\"reference\":\"abc123\"");
    json_t *run = await_end(E.url, id, 60);
    const json_t *param;
    char idt[32];

    (void)state;
    assert_string_equal(str_of(run, "state"), "finished");
    assert_string_equal(str_of(run, "result"), "passed");
    assert_string_equal(str_of(run, "reference"), "abc123");
    assert_string_equal(str_of(test_of(run, "test_quick"), "result"), "passed");
    /* The params reached the test: it saw "given" equal to "expect". */
    param = test_of(run, "test_param");
    assert_string_equal(str_of(param, "result"), "passed");
    assert_string_equal(
        str_of(json_object_get(
                   json_array_get(json_object_get(param, "attempts"), 0),
                   "values"),
               "expect"),
        "v1");
    assert_string_equal(str_of(test_of(run, "test_sleep"), "result"),
                        "skipped");
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    assert_true(sql_count("SELECT count(*) FROM runs WHERE id = $1::bigint "
                          "AND state = 'finished' AND result = 'passed'",
                          idt) == 1);
    assert_true(sql_count("SELECT count(*) FROM test_results WHERE run_id = "
                          "$1::bigint",
                          idt) == 4);
    assert_true(sql_count("SELECT count(*) FROM job_attempts WHERE run_id = "
                          "$1::bigint AND state = 'done'",
                          idt) == 1);
    json_decref(run);
}

static void test_e2e_idempotency_key_returns_the_first_run(void **state)
{
    char key[96];
    char header[160];
    char body[256];
    struct http a;
    struct http b;
    json_t *ja;
    json_t *jb;

    (void)state;
    snprintf(key, sizeof(key), "deploy-%d-%" PRId64, (int)getpid(),
             clock_real_ns());
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    snprintf(body, sizeof(body),
             "{\"suite\":\"e2e\",\"pool\":\"%s\",\"run\":\"quick\"}", E.pool);
    a = request(E.url, "POST", "/api/v1/runs", body, header);
    b = request(E.url, "POST", "/api/v1/runs", body, header);
    assert_int_equal(a.status, 201);
    assert_int_equal(b.status, 200);
    ja = json_of(&a);
    jb = json_of(&b);
    assert_true(json_integer_value(json_object_get(ja, "id")) ==
                json_integer_value(json_object_get(jb, "id")));
    assert_true(sql_count("SELECT count(*) FROM runs WHERE idempotency_key = "
                          "$1",
                          key) == 1);
    json_decref(
        await_end(E.url, json_integer_value(json_object_get(ja, "id")), 60));
    json_decref(ja);
    json_decref(jb);
    buf_cleanup(&a.body);
    buf_cleanup(&b.body);
}

static void test_e2e_list_filters_and_pages(void **state)
{
    int64_t ok = start_run(E.url, "\"run\":\"quick\"");
    int64_t bad =
        start_run(E.url, "\"run\":\"fails\",\"params\":{\"fail\":\"1\"}");
    struct http h;
    json_t *j;
    size_t i;
    json_t *r;
    bool saw_bad = false;

    (void)state;
    json_decref(await_end(E.url, ok, 60));
    json_decref(await_end(E.url, bad, 60));
    h = request(E.url, "GET", "/api/v1/runs?suite=e2e&result=failed", NULL,
                NULL);
    assert_int_equal(h.status, 200);
    j = json_of(&h);
    json_array_foreach(json_object_get(j, "runs"), i, r)
    {
        int64_t id = json_integer_value(json_object_get(r, "id"));

        assert_true(id != ok);
        saw_bad = saw_bad || id == bad;
        assert_string_equal(str_of(r, "result"), "failed");
        assert_null(json_object_get(r, "tests")); /* no logs in lists */
    }
    assert_true(saw_bad);
    json_decref(j);
    buf_cleanup(&h.body);

    h = request(E.url, "GET", "/api/v1/runs?limit=1", NULL, NULL);
    j = json_of(&h);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 1);
    assert_true(json_is_string(json_object_get(j, "next_cursor")));
    {
        char path[128];
        struct http h2;
        json_t *j2;

        snprintf(path, sizeof(path), "/api/v1/runs?limit=1&cursor=%s",
                 json_string_value(json_object_get(j, "next_cursor")));
        h2 = request(E.url, "GET", path, NULL, NULL);
        j2 = json_of(&h2);
        assert_true(json_integer_value(json_object_get(
                        json_array_get(json_object_get(j2, "runs"), 0), "id")) <
                    json_integer_value(json_object_get(
                        json_array_get(json_object_get(j, "runs"), 0), "id")));
        json_decref(j2);
        buf_cleanup(&h2.body);
    }
    json_decref(j);
    buf_cleanup(&h.body);
}

static void test_e2e_bad_inputs_get_4xx_and_leave_no_row(void **state)
{
    static char big[1100000];
    struct {
        const char *method;
        const char *path;
        const char *body;
        const char *header;
        long status;
        const char *code;
        const char *message;
    } cases[] = {
        {"POST", "/api/v1/runs", "{not json", NULL, 400, "malformed_json", ""},
        {"POST", "/api/v1/runs", "{\"suite\":\"e2e\",\"colour\":\"red\"}", NULL,
         400, "unknown_field", "colour"},
        {"POST", "/api/v1/runs", "{\"suite\":\"e2e\",\"run\":\"(\"}", NULL, 400,
         "invalid_argument", "invalid regular expression"},
        {"POST", "/api/v1/runs", "{\"suite\":\"e2e\",\"run\":\"^nothing$\"}",
         NULL, 400, "invalid_argument", "select no test"},
        {"POST", "/api/v1/runs", "{\"suite\":\"e2f\"}", NULL, 404, "not_found",
         "did you mean: test/e2e"},
        {"POST", "/api/v1/runs", "{\"suite\":\"e2e\",\"params\":{\"k\":[1]}}",
         NULL, 400, "invalid_argument", "params.k"},
        {"POST", "/api/v1/runs", "{\"suite\":\"e2e\"}",
         "Idempotency-Key: has space", 400, "invalid_argument",
         "Idempotency-Key"},
        {"POST", "/api/v1/runs", big, NULL, 413, "body_too_large", ""},
        {"PUT", "/api/v1/runs", "{}", NULL, 405, "method_not_allowed", ""},
        {"GET", "/api/v1/runs/abc", NULL, NULL, 404, "not_found", ""},
        {"GET", "/api/v1/runs/999999999", NULL, NULL, 404, "not_found", ""},
        {"GET", "/api/v1/runs?state=sideways", NULL, NULL, 400,
         "invalid_argument", "state"},
        {"GET", "/api/v1/runs?since=yesterday", NULL, NULL, 400,
         "invalid_argument", "RFC 3339"},
        {"POST", "/api/v1/runs/999999999/cancel", NULL, NULL, 404, "not_found",
         ""},
        {"POST", "/api/v1/runs/1/cancel", "{\"why\":\"x\"}", NULL, 400,
         "unknown_field", "why"},
        {"GET", "/api/v1/nope", NULL, NULL, 404, "not_found", ""},
    };
    int64_t before = sql_count("SELECT count(*) FROM runs", NULL);
    int64_t jobs_before = sql_count("SELECT count(*) FROM jobs", NULL);

    (void)state;
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http h = request(E.url, cases[i].method, cases[i].path,
                                cases[i].body, cases[i].header);
        json_t *j = json_of(&h);
        json_t *err = json_object_get(j, "error");

        if (h.status != cases[i].status ||
            strcmp(str_of(err, "code"), cases[i].code) != 0 ||
            !strstr(str_of(err, "message"), cases[i].message)) {
            fail_msg("%s %s: got %ld %s", cases[i].method, cases[i].path,
                     h.status, buf_str(&h.body));
        }
        json_decref(j);
        buf_cleanup(&h.body);
    }
    assert_true(sql_count("SELECT count(*) FROM runs", NULL) == before);
    assert_true(sql_count("SELECT count(*) FROM jobs", NULL) == jobs_before);
}

struct sse {
    struct buf raw;
};

static size_t on_sse(char *data, size_t size, size_t n, void *arg)
{
    struct sse *s = arg;

    buf_add(&s->raw, data, size * n);
    /* Stop reading once the run ended. */
    return strstr(buf_str(&s->raw), "event: run_end") ? 0 : size * n;
}

static void test_e2e_live_events_arrive_in_order(void **state)
{
    int64_t id = start_run(
        E.url, "\"run\":\"quick|sleep\",\"params\":{\"sleep_ms\":\"1500\"}");
    char url[256];
    CURL *c = curl_easy_init();
    struct sse s;
    const char *p;
    const char *end_sleep;
    const char *run_end;
    uint64_t last_seq = 0;

    (void)state;
    buf_init(&s.raw, 0);
    snprintf(url, sizeof(url), "%s/api/v1/runs/%" PRId64 "/events", E.url, id);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_perform(c); /* ends at run_end (write callback) */
    curl_easy_cleanup(c);
    end_sleep = strstr(buf_str(&s.raw), "\"test\":\"test_sleep\"");
    run_end = strstr(buf_str(&s.raw), "event: run_end");
    assert_non_null(end_sleep);
    assert_non_null(run_end);
    assert_non_null(strstr(buf_str(&s.raw), "event: suite_end"));
    assert_true(strstr(buf_str(&s.raw), "event: suite_end") < run_end);
    assert_non_null(strstr(run_end, "\"state\":\"finished\""));
    /* ids (the events' seq) only grow. */
    for (p = strstr(buf_str(&s.raw), "\nid: "); p;
         p = strstr(p + 1, "\nid: ")) {
        uint64_t seq = strtoull(p + 5, NULL, 10);

        assert_true(seq > last_seq);
        last_seq = seq;
    }
    assert_true(last_seq > 3);
    buf_cleanup(&s.raw);
    json_decref(await_end(E.url, id, 60));
}

static void test_e2e_cancel_stops_a_running_run(void **state)
{
    int64_t id = start_run(
        E.url, "\"run\":\"sleep\",\"params\":{\"sleep_ms\":\"60000\"}");
    char path[96];
    struct http h;
    json_t *run;
    int64_t t0;

    (void)state;
    await_state(E.url, id, "running", 30);
    sleep_ms(300);
    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64 "/cancel", id);
    t0 = clock_mono_ns();
    h = request(E.url, "POST", path, "{\"reason\":\"deploy rolled back\"}",
                NULL);
    assert_int_equal(h.status, 202);
    buf_cleanup(&h.body);
    run = await_end(E.url, id, 30);
    assert_true(clock_mono_ns() - t0 < 10 * CLOCK_NS_PER_S);
    assert_string_equal(str_of(run, "state"), "cancelled");
    assert_string_equal(str_of(run, "result"), "error");
    assert_non_null(strstr(str_of(run, "reason"), "deploy rolled back"));
    assert_non_null(strstr(
        str_of(json_array_get(
                   json_object_get(test_of(run, "test_sleep"), "attempts"), 0),
               "reason"),
        "interrupted"));
    json_decref(run);
    h = request(E.url, "POST", path, NULL, NULL);
    assert_int_equal(h.status, 409);
    buf_cleanup(&h.body);
}

static int run_ctl(const char *url, const char *const *args)
{
    char bin[512];
    char *argv[24];
    size_t n = 0;
    pid_t pid;
    int status;
    posix_spawn_file_actions_t fa;

    snprintf(bin, sizeof(bin), "%s/handoffctl", HANDOFF_BIN_DIR);
    argv[n++] = bin;
    argv[n++] = (char *)"--url";
    argv[n++] = (char *)url;
    for (size_t i = 0; args[i]; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_e2e_handoffctl_wait_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(
        run_ctl(E.url, (const char *[]){"run", "test/e2e", "--pool", E.pool,
                                        "--run", "quick", "--wait", NULL}),
        0);
    assert_int_equal(
        run_ctl(E.url,
                (const char *[]){"run", "test/e2e", "--pool", E.pool, "--run",
                                 "fails", "--param", "fail=1", "--wait", NULL}),
        1);
    assert_int_equal(
        run_ctl(E.url, (const char *[]){"run", "nosuchsuite", "--wait", NULL}),
        2);
    assert_int_equal(
        run_ctl("http://127.0.0.1:1",
                (const char *[]){"run", "test/e2e", "--wait", NULL}),
        3);
}

/* Which worker runs the job of run id (from the job's worker field). */
static void job_worker(int64_t id, char *out, size_t len)
{
    char path[64];
    int64_t until = clock_mono_ns() + 20 * CLOCK_NS_PER_S;

    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64, id);
    for (;;) {
        struct http h = request(E.url, "GET", path, NULL, NULL);
        json_t *j = json_of(&h);
        const char *w = json_string_value(json_object_get(
            json_array_get(json_object_get(j, "jobs"), 0), "worker"));

        if (w) {
            snprintf(out, len, "%s", w);
        }
        json_decref(j);
        buf_cleanup(&h.body);
        if (w) {
            return;
        }
        assert_true(clock_mono_ns() < until);
        sleep_ms(100);
    }
}

static struct proc *proc_named(const char *name)
{
    for (size_t i = 0; i < E.n_procs; i++) {
        if (strcmp(E.procs[i].name, name) == 0 && E.procs[i].pid > 0) {
            return &E.procs[i];
        }
    }
    return NULL;
}

static void test_e2e_worker_killed_mid_test_job_goes_to_the_other(void **state)
{
    int64_t id = start_run(
        E.url, "\"run\":\"sleep\",\"params\":{\"sleep_ms\":\"3000\"}");
    char worker[64];
    struct proc *victim;
    json_t *run;
    json_t *lost;

    (void)state;
    await_state(E.url, id, "running", 30);
    job_worker(id, worker, sizeof(worker));
    victim = proc_named(worker);
    assert_non_null(victim);
    assert_int_equal(proc_stop(victim, SIGKILL), 128 + SIGKILL);
    run = await_end(E.url, id, 60);
    assert_string_equal(str_of(run, "state"), "finished");
    assert_string_equal(str_of(run, "result"), "passed");
    /* Both attempts are visible: the lost one and the one that passed. */
    lost = json_object_get(run, "lost_attempts");
    assert_int_equal(json_array_size(lost), 1);
    assert_string_equal(str_of(json_array_get(lost, 0), "worker"), worker);
    assert_true(
        json_integer_value(json_object_get(
            json_array_get(json_object_get(run, "jobs"), 0), "attempts")) == 2);
    assert_string_not_equal(
        str_of(json_array_get(json_object_get(run, "jobs"), 0), "worker"),
        worker);
    json_decref(run);
    /* A replacement, so later tests have two workers again. */
    start_worker(strcmp(worker, "worker-a") == 0 ? "worker-a2" : "worker-b2");
}

static void test_e2e_postgres_away_for_10s_loses_nothing(void **state)
{
    int64_t id = start_run(
        E.url, "\"run\":\"sleep\",\"params\":{\"sleep_ms\":\"2000\"}");
    char idt[32];
    json_t *run;

    (void)state;
    await_state(E.url, id, "running", 30);
    db_free(E.db);
    E.db = NULL;
    stack("stop-service", "postgres");
    sleep_ms(10000); /* the run ends meanwhile; its result waits in NATS */
    stack("start-service", "postgres");
    assert_int_equal(db_connect(E.dsn, &E.db), ST_OK);
    run = await_end(E.url, id, 60);
    assert_string_equal(str_of(run, "result"), "passed");
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    assert_true(sql_count("SELECT count(*) FROM job_attempts WHERE run_id = "
                          "$1::bigint AND state = 'done'",
                          idt) == 1);
    json_decref(run);
}

static void test_e2e_nats_restart_during_a_run(void **state)
{
    int64_t id = start_run(
        E.url, "\"run\":\"sleep\",\"params\":{\"sleep_ms\":\"3000\"}");
    json_t *run;

    (void)state;
    await_state(E.url, id, "running", 30);
    stack("stop-service", "nats");
    sleep_ms(1500);
    stack("start-service", "nats");
    run = await_end(E.url, id, 60);
    assert_string_equal(str_of(run, "state"), "finished");
    assert_string_equal(str_of(run, "result"), "passed");
    json_decref(run);
}

static void test_e2e_two_controllers_store_each_result_once(void **state)
{
    struct proc *second =
        start_controller(E.url2, sizeof(E.url2), "controller-2");
    int64_t ids[10];
    int64_t until = clock_mono_ns() + 30 * CLOCK_NS_PER_S;
    char first[32];

    (void)state;
    for (;;) {
        struct http h = request(E.url2, "GET", "/readyz", NULL, NULL);
        long st = h.status;

        buf_cleanup(&h.body);
        if (st == 200) {
            break;
        }
        assert_true(clock_mono_ns() < until);
        sleep_ms(100);
    }
    for (int i = 0; i < 10; i++) {
        ids[i] = start_run(i % 2 ? E.url2 : E.url, "\"run\":\"quick|param\"");
    }
    for (int i = 0; i < 10; i++) {
        json_t *run = await_end(i % 2 ? E.url : E.url2, ids[i], 60);

        assert_string_equal(str_of(run, "state"), "finished");
        json_decref(run);
    }
    snprintf(first, sizeof(first), "%" PRId64, ids[0]);
    assert_true(sql_count("SELECT count(*) FROM job_attempts WHERE run_id >= "
                          "$1::bigint AND state = 'done'",
                          first) == 10);
    assert_true(sql_count("SELECT count(*) FROM test_results WHERE run_id >= "
                          "$1::bigint",
                          first) == 40);
    assert_int_equal(proc_stop(second, SIGTERM), 0);
}

/* ---- Set-up and teardown ----------------------------------------------- */

static int group_setup(void **state)
{
    const char *dsn = getenv("HANDOFF_PG_DSN");
    struct db *admin = NULL;
    char sql[256];
    int64_t until;

    (void)state;
    if (!dsn || !getenv("HANDOFF_NATS_URL") || !getenv("HANDOFF_STACK_DIR")) {
        fprintf(stderr, "HANDOFF_PG_DSN, HANDOFF_NATS_URL and "
                        "HANDOFF_STACK_DIR must be set: run under the stack "
                        "(tests/run.sh)\n");
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(E.pool, sizeof(E.pool), "e2e%d", (int)getpid());
    snprintf(E.dbname, sizeof(E.dbname), "handoff_e2e_%d", (int)getpid());
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
    start_controller(E.url, sizeof(E.url), "controller-1");
    start_worker("worker-a");
    start_worker("worker-b");
    /* Ready when the schema exists and both workers announced e2e. */
    until = clock_mono_ns() + 60 * CLOCK_NS_PER_S;
    for (;;) {
        struct http h = request(E.url, "GET", "/api/v1/suites", NULL, NULL);
        bool ready = h.status == 200 &&
                     strstr(buf_str(&h.body), "\"worker-a\"") &&
                     strstr(buf_str(&h.body), "\"worker-b\"");

        buf_cleanup(&h.body);
        if (ready) {
            break;
        }
        if (clock_mono_ns() > until) {
            for (size_t i = 0; i < E.n_procs; i++) {
                print_log(&E.procs[i]);
            }
            return -1;
        }
        sleep_ms(200);
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
    /* Workers first: they hand nothing back to a pool nobody serves. */
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
        cmocka_unit_test(test_e2e_run_over_the_api_is_stored_in_postgres),
        cmocka_unit_test(test_e2e_idempotency_key_returns_the_first_run),
        cmocka_unit_test(test_e2e_list_filters_and_pages),
        cmocka_unit_test(test_e2e_bad_inputs_get_4xx_and_leave_no_row),
        cmocka_unit_test(test_e2e_live_events_arrive_in_order),
        cmocka_unit_test(test_e2e_cancel_stops_a_running_run),
        cmocka_unit_test(test_e2e_handoffctl_wait_exit_codes),
        cmocka_unit_test(test_e2e_worker_killed_mid_test_job_goes_to_the_other),
        cmocka_unit_test(test_e2e_postgres_away_for_10s_loses_nothing),
        cmocka_unit_test(test_e2e_nats_restart_during_a_run),
        cmocka_unit_test(test_e2e_two_controllers_store_each_result_once),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
