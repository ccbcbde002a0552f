/* What the end-to-end tests share (e2e.h). */
#include "e2e.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"

extern char **environ;

struct e2e_env E2E;

void e2e_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int e2e_free_port(void)
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

/* environ without the names env sets, then env: getenv returns the first
 * match. The caller frees the array (not the strings). */
static char **merged_env(const char *const *env)
{
    size_t n = 0;
    size_t k = 0;
    char **out;

    while (environ[n]) {
        n++;
    }
    for (size_t i = 0; env && env[i]; i++) {
        n++;
    }
    out = calloc(n + 1, sizeof(*out));
    for (size_t i = 0; environ[i]; i++) {
        bool replaced = false;

        for (size_t j = 0; env && env[j] && !replaced; j++) {
            size_t len = strcspn(env[j], "=");

            replaced =
                strncmp(environ[i], env[j], len) == 0 && environ[i][len] == '=';
        }
        if (!replaced) {
            out[k++] = environ[i];
        }
    }
    for (size_t i = 0; env && env[i]; i++) {
        out[k++] = (char *)env[i];
    }
    return out;
}

struct e2e_proc *e2e_spawn(const char *name, const char *bin,
                           const char *const *args, const char *const *env)
{
    struct e2e_proc *p;
    char *argv[32];
    char **envp = merged_env(env);
    size_t n = 0;
    posix_spawn_file_actions_t fa;

    assert_true(E2E.n_procs < E2E_MAX_PROCS);
    p = &E2E.procs[E2E.n_procs++];
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "/tmp/handoff-e2e-%d-%s.log",
             (int)getpid(), name);
    argv[n++] = (char *)bin;
    for (size_t i = 0; args && args[i] && n < 31; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, p->log,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    assert_int_equal(posix_spawn(&p->pid, bin, &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    return p;
}

struct e2e_proc *e2e_start_controller(const char *name, const char *const *env,
                                      char *url, size_t url_len)
{
    char addr[32];
    char env_addr[96];
    char env_dsn[600];
    char bin[512];
    const char *all[16] = {env_addr, env_dsn, "HANDOFF_LOG_LEVEL=info"};
    size_t n = 3;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", e2e_free_port());
    snprintf(url, url_len, "http://%s", addr);
    snprintf(env_addr, sizeof(env_addr), "HANDOFF_HTTP_ADDR=%s", addr);
    snprintf(env_dsn, sizeof(env_dsn), "HANDOFF_PG_DSN=%s", E2E.dsn);
    snprintf(bin, sizeof(bin), "%s/handoff-controller", HANDOFF_BIN_DIR);
    for (size_t i = 0; env && env[i] && n < 15; i++) {
        all[n++] = env[i];
    }
    all[n] = NULL;
    return e2e_spawn(name, bin, NULL, all);
}

struct e2e_proc *e2e_start_worker(const char *name, int concurrency,
                                  const char *const *args)
{
    char bin[512];
    char conc[16];
    const char *all[32] = {"serve", "--pool",          E2E.pool, "--id",
                           name,    "--concurrency",   conc,     "--heartbeat",
                           "500ms", "--drain-timeout", "2s",     "--kill-grace",
                           "300ms"};
    size_t n = 13;

    snprintf(bin, sizeof(bin), "%s/handoff-test-worker", HANDOFF_BIN_DIR);
    snprintf(conc, sizeof(conc), "%d", concurrency);
    for (size_t i = 0; args && args[i] && n < 31; i++) {
        all[n++] = args[i];
    }
    all[n] = NULL;
    return e2e_spawn(name, bin, all,
                     (const char *const[]){"HANDOFF_LOG_LEVEL=info", NULL});
}

struct e2e_proc *e2e_proc_named(const char *name)
{
    for (size_t i = 0; i < E2E.n_procs; i++) {
        if (strcmp(E2E.procs[i].name, name) == 0 && E2E.procs[i].pid > 0) {
            return &E2E.procs[i];
        }
    }
    return NULL;
}

int e2e_proc_stop(struct e2e_proc *p, int sig)
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
        e2e_sleep_ms(20);
    }
    p->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void e2e_print_log(const struct e2e_proc *p)
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

void e2e_print_logs(void)
{
    for (size_t i = 0; i < E2E.n_procs; i++) {
        e2e_print_log(&E2E.procs[i]);
    }
}

/* ---- HTTP --------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    buf_add(arg, data, size * n);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct e2e_http *h = arg;

    if (strncasecmp(data, "Location: ", 10) == 0) {
        snprintf(h->location, sizeof(h->location), "%.*s",
                 (int)strcspn(data + 10, "\r\n"), data + 10);
    }
    return size * n;
}

struct e2e_http e2e_request(const char *base, const char *method,
                            const char *path, const char *body,
                            const char *header)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hs = NULL;
    struct e2e_http h;
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

json_t *e2e_json_of(const struct e2e_http *h)
{
    json_error_t err;
    json_t *j = json_loads(buf_str(&h->body), 0, &err);

    if (!j) {
        fail_msg("not JSON (status %ld): %s", h->status, buf_str(&h->body));
    }
    return j;
}

const char *e2e_str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "(null)";
}

int e2e_await_ready(const char *url, const char *const *workers)
{
    int64_t until = clock_mono_ns() + 60 * CLOCK_NS_PER_S;

    for (;;) {
        struct e2e_http h = e2e_request(url, "GET", "/readyz", NULL, NULL);
        bool ready = h.status == 200;

        buf_cleanup(&h.body);
        if (ready && workers) {
            h = e2e_request(url, "GET", "/api/v1/suites", NULL, NULL);
            ready = h.status == 200;
            for (size_t i = 0; ready && workers[i]; i++) {
                char quoted[80];

                snprintf(quoted, sizeof(quoted), "\"%s\"", workers[i]);
                ready = strstr(buf_str(&h.body), quoted) != NULL;
            }
            buf_cleanup(&h.body);
        }
        if (ready) {
            return 0;
        }
        if (clock_mono_ns() > until) {
            e2e_print_logs();
            fprintf(stderr, "%s: not ready within 60 s\n", url);
            return -1;
        }
        e2e_sleep_ms(100);
    }
}

/* ---- PostgreSQL and the stack ------------------------------------------- */

int64_t e2e_sql_count(const char *sql, const char *arg)
{
    struct db_res *res = NULL;
    int64_t n = -1;
    const char *p[1] = {arg};

    assert_int_equal(db_exec(E2E.db, sql, arg ? 1 : 0, arg ? p : NULL, &res),
                     ST_OK);
    assert_int_equal(db_res_int64(res, 0, 0, &n), ST_OK);
    db_res_free(res);
    return n;
}

void e2e_stack(const char *cmd, const char *service)
{
    char line[1024];

    snprintf(line, sizeof(line), "%s/deploy/stack.sh %s %s >/dev/null 2>&1",
             HANDOFF_SOURCE_DIR, cmd, service);
    assert_int_equal(system(line), 0);
}

int e2e_setup(const char *prefix, int needs_redis)
{
    const char *dsn = getenv("HANDOFF_PG_DSN");
    struct db *admin = NULL;
    char sql[256];
    int rc;

    if (!dsn || !getenv("HANDOFF_NATS_URL") || !getenv("HANDOFF_STACK_DIR") ||
        (needs_redis && !getenv("HANDOFF_REDIS_URL"))) {
        fprintf(stderr,
                "HANDOFF_PG_DSN, HANDOFF_NATS_URL, HANDOFF_STACK_DIR%s "
                "must be set: run under the stack (tests/run.sh, or "
                "eval \"$(deploy/stack.sh env)\")\n",
                needs_redis ? " and HANDOFF_REDIS_URL" : "");
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(E2E.pool, sizeof(E2E.pool), "%s%d", prefix, (int)getpid());
    snprintf(E2E.dbname, sizeof(E2E.dbname), "handoff_%s_%d", prefix,
             (int)getpid());
    if (db_connect(dsn, &admin) != ST_OK) {
        return -1;
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", E2E.dbname);
    rc = db_exec(admin, sql, 0, NULL, NULL);
    db_free(admin);
    if (rc != ST_OK) {
        E2E.dbname[0] = '\0';
        return -1;
    }
    snprintf(E2E.dsn, sizeof(E2E.dsn), "%s dbname=%s", dsn, E2E.dbname);
    return db_connect(E2E.dsn, &E2E.db) == ST_OK ? 0 : -1;
}

int e2e_teardown(void)
{
    struct db *admin = NULL;
    char sql[256];
    int bad = 0;

    db_free(E2E.db);
    E2E.db = NULL;
    /* Reverse order: workers before the controllers they report to. */
    for (size_t i = E2E.n_procs; i-- > 0;) {
        int st = e2e_proc_stop(&E2E.procs[i], SIGTERM);

        if (st != 0 && st != 128 + SIGKILL) {
            fprintf(stderr, "%s exited %d\n", E2E.procs[i].name, st);
            e2e_print_log(&E2E.procs[i]);
            bad = 1;
        }
        unlink(E2E.procs[i].log);
    }
    if (E2E.dbname[0] &&
        db_connect(getenv("HANDOFF_PG_DSN"), &admin) == ST_OK) {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                 E2E.dbname);
        (void)db_exec(admin, sql, 0, NULL, NULL);
    }
    db_free(admin);
    curl_global_cleanup();
    return bad ? -1 : 0;
}
