/* Benchmarks of distributed runs, against the real nats-server and
 * PostgreSQL of deploy/stack.sh (tests/bench/dist_bench.sh brings a stack
 * of its own up and down around this program):
 *
 *   handoff-bench-dist throughput  1,000 runs x 20 no-op tests over two
 *                                  workers: test results committed per
 *                                  second, and its ratio to a bare pipe
 *                                  measured in the same run
 *   handoff-bench-dist latency     200 runs one after another on an idle
 *                                  stack: POST -> first test started and
 *                                  POST -> result committed, p50 and p99
 *   handoff-bench-dist footprint   resident memory of an idle controller
 *                                  and of an idle worker
 *   handoff-bench-dist schedules   10,000 schedules firing every minute
 *                                  on three controllers: fire lag p50/p99
 *                                  (to the run's created_at, its commit,
 *                                  and its job on NATS), controller CPU
 *                                  between ticks
 *
 * The programs run as users run them: handoff-controller and two
 * handoff-test-worker processes (suite test/noop20: twenty tests that
 * return at once), in a database and a worker pool of the benchmark's own.
 *
 * The bare pipe is the reference for throughput: the least any design has
 * to do to move the same results from workers into PostgreSQL. It
 * publishes messages to a JetStream stream asynchronously, fetches them in
 * batches of 100 from a durable pull consumer and COPYs each batch into a
 * table shaped like test_results, one transaction per batch, acking after
 * commit. It runs in two shapes, both reported: as many messages as
 * Handoff publishes results (one per run, the average size of Handoff's
 * result messages in the same round, 20 rows each: `ratio`), and one
 * message per test result (20,000 messages of a twentieth of that size,
 * one row each: `ratio_per_result`). Rounds alternate Handoff and the
 * bare pipe; the last line reports medians. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "bus.h"
#include "clock.h"
#include "status.h"

extern char **environ;

#define TESTS_PER_RUN 20
#define THROUGHPUT_RUNS 1000
#define THROUGHPUT_ROUNDS 3
#define LATENCY_RUNS 200
#define FETCH_BATCH 100
#define POSTERS 4

static struct {
    char dbname[64];
    char dsn[512];       /* the benchmark's database */
    char admin_dsn[512]; /* HANDOFF_PG_DSN, to create and drop it */
    char pool[32];
    char url[64];
    char urls[3][64]; /* controllers 1, 2, 3 */
    const char *nats_url;
    pid_t pids[5]; /* controller, worker 1, worker 2, controllers 2, 3 */
    PGconn *pg;
    struct bus *bus;
} B;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void stop_all(void);

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "handoff-bench-dist: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    stop_all();
    exit(1);
}

static double now_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v[0..n), nearest rank; sorts v. */
static double quantile(double *v, size_t n, double q)
{
    size_t rank;

    qsort(v, n, sizeof(*v), cmp_double);
    rank = (size_t)(q * (double)n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return v[rank - 1];
}

/* ---- PostgreSQL ------------------------------------------------------- */

static PGconn *pg_connect(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);

    if (PQstatus(c) != CONNECTION_OK) {
        die("PostgreSQL (%s): %s", dsn, PQerrorMessage(c));
    }
    return c;
}

static void pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK &&
        PQresultStatus(r) != PGRES_TUPLES_OK) {
        die("%s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
}

static int64_t pg_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int64_t v;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        die("%s: %s", sql, PQerrorMessage(c));
    }
    v = PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static double pg_double(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    double v;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
        PQgetisnull(r, 0, 0)) {
        die("%s: %s", sql, PQerrorMessage(c));
    }
    v = strtod(PQgetvalue(r, 0, 0), NULL);
    PQclear(r);
    return v;
}

/* ---- Processes -------------------------------------------------------- */

static pid_t spawn(const char *name, const char *bin, const char *const argv[],
                   const char *const *extra_env)
{
    char log[128];
    char *envp[256];
    size_t n = 0;
    pid_t pid;
    posix_spawn_file_actions_t fa;

    /* Extra entries first: getenv takes the first of a name. */
    for (size_t i = 0; extra_env && extra_env[i]; i++) {
        envp[n++] = (char *)extra_env[i];
    }
    for (size_t i = 0; environ[i] && n < 255; i++) {
        envp[n++] = environ[i];
    }
    envp[n] = NULL;
    snprintf(log, sizeof(log), "/tmp/handoff-bench-dist-%d-%s.log",
             (int)getpid(), name);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, envp) != 0) {
        die("cannot start %s: %s", bin, strerror(errno));
    }
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

static void stop_all(void)
{
    for (size_t i = 0; i < 5; i++) {
        if (B.pids[i] > 0) {
            kill(B.pids[i], SIGTERM);
        }
    }
    for (size_t i = 0; i < 5; i++) {
        if (B.pids[i] > 0) {
            waitpid(B.pids[i], NULL, 0);
            B.pids[i] = 0;
        }
    }
    if (B.pg) {
        PQfinish(B.pg);
        B.pg = NULL;
    }
    if (B.dbname[0]) {
        PGconn *c = PQconnectdb(B.admin_dsn);
        char sql[128];

        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                 B.dbname);
        PQclear(PQexec(c, sql));
        PQfinish(c);
        B.dbname[0] = '\0';
    }
}

/* ---- HTTP ------------------------------------------------------------- */

static CURL *curl_main;       /* the main thread's */
static __thread CURL *curl_t; /* this thread's, when not the main one */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    buf_add(arg, data, size * n);
    return size * n;
}

static long http_at(const char *base, const char *method, const char *path,
                    const char *body, struct buf *out);

/* GET or POST (body non-NULL) on the controller; returns the status, the
 * body in out (reset first). */
static long http(const char *method, const char *path, const char *body,
                 struct buf *out)
{
    return http_at(B.url, method, path, body, out);
}

/* http on the controller at base. */
static long http_at(const char *base, const char *method, const char *path,
                    const char *body, struct buf *out)
{
    char url[256];
    long status = 0;
    struct curl_slist *hs =
        curl_slist_append(NULL, "Content-Type: application/json");
    CURL *curl_h = curl_t ? curl_t : curl_main;

    buf_reset(out);
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(curl_h, CURLOPT_URL, url);
    curl_easy_setopt(curl_h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl_h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(curl_h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl_h, CURLOPT_POST, body ? 1L : 0L);
    if (!body) {
        curl_easy_setopt(curl_h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(curl_h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl_h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl_h, CURLOPT_WRITEDATA, out);
    if (curl_easy_perform(curl_h) == CURLE_OK) {
        curl_easy_getinfo(curl_h, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(hs);
    return status;
}

/* POSTs a noop20 run; returns its id. */
static int64_t post_run(struct buf *b)
{
    char body[256];
    const char *id;

    snprintf(body, sizeof(body),
             "{\"suite\":\"noop20\",\"namespace\":\"test\",\"pool\":\"%s\","
             "\"initiated_by\":\"bench\"}",
             B.pool);
    if (http("POST", "/api/v1/runs", body, b) != 201) {
        die("POST /api/v1/runs: %s", buf_str(b));
    }
    id = strstr(buf_str(b), "\"id\":");
    if (!id) {
        die("POST /api/v1/runs: no id in %s", buf_str(b));
    }
    return strtoll(id + 5, NULL, 10);
}

/* ---- Set-up ----------------------------------------------------------- */

/* Starts the database, controller 1 (B.url) and two workers, plus
 * extra_controllers more controllers on the same database (B.pids[3..]),
 * and waits until controller 1 is ready and both workers announced
 * noop20. */
static void setup(int extra_controllers)
{
    const char *dsn = getenv("HANDOFF_PG_DSN");
    char bin[512];
    char w_bin[512];
    char env_addr[64];
    char env_dsn[600];
    struct buf b;
    PGconn *admin;
    char sql[128];
    int port = 20000 + (int)(getpid() % 20000);
    struct bus_config bc = {0};

    B.nats_url = getenv("HANDOFF_NATS_URL");
    if (!dsn || !B.nats_url) {
        fprintf(stderr, "handoff-bench-dist: needs HANDOFF_PG_DSN and "
                        "HANDOFF_NATS_URL (tests/bench/dist_bench.sh "
                        "sets them)\n");
        exit(2);
    }
    snprintf(B.admin_dsn, sizeof(B.admin_dsn), "%s", dsn);
    snprintf(B.dbname, sizeof(B.dbname), "handoff_bench_%d", (int)getpid());
    snprintf(B.dsn, sizeof(B.dsn), "%s dbname=%s", dsn, B.dbname);
    snprintf(B.pool, sizeof(B.pool), "bench%d", (int)getpid());
    admin = pg_connect(B.admin_dsn);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", B.dbname);
    pg_exec(admin, sql);
    PQfinish(admin);

    snprintf(B.url, sizeof(B.url), "http://127.0.0.1:%d", port);
    for (int i = 0; i < 3; i++) {
        snprintf(B.urls[i], sizeof(B.urls[i]), "http://127.0.0.1:%d", port + i);
    }
    snprintf(env_addr, sizeof(env_addr), "HANDOFF_HTTP_ADDR=127.0.0.1:%d",
             port);
    snprintf(env_dsn, sizeof(env_dsn), "HANDOFF_PG_DSN=%s", B.dsn);
    snprintf(bin, sizeof(bin), "%s/handoff-controller", HANDOFF_BIN_DIR);
    snprintf(w_bin, sizeof(w_bin), "%s/handoff-test-worker", HANDOFF_BIN_DIR);
    B.pids[0] = spawn("controller", bin, (const char *const[]){bin, NULL},
                      (const char *const[]){env_addr, env_dsn, NULL});
    B.pids[1] = spawn("worker-1", w_bin,
                      (const char *const[]){w_bin, "serve", "--pool", B.pool,
                                            "--id", "bench-worker-1",
                                            "--concurrency", "2", NULL},
                      NULL);
    B.pids[2] = spawn("worker-2", w_bin,
                      (const char *const[]){w_bin, "serve", "--pool", B.pool,
                                            "--id", "bench-worker-2",
                                            "--concurrency", "2", NULL},
                      NULL);
    for (int i = 0; i < extra_controllers && i < 2; i++) {
        char name[32];

        snprintf(name, sizeof(name), "controller-%d", i + 2);
        snprintf(env_addr, sizeof(env_addr), "HANDOFF_HTTP_ADDR=127.0.0.1:%d",
                 port + 1 + i);
        B.pids[3 + i] = spawn(name, bin, (const char *const[]){bin, NULL},
                              (const char *const[]){env_addr, env_dsn, NULL});
    }

    curl_global_init(CURL_GLOBAL_ALL);
    curl_main = curl_easy_init();
    buf_init(&b, 0);
    for (int i = 0;; i++) {
        if (http("GET", "/readyz", NULL, &b) == 200 &&
            http("GET", "/api/v1/workers", NULL, &b) == 200 &&
            strstr(buf_str(&b), "bench-worker-1") &&
            strstr(buf_str(&b), "bench-worker-2") &&
            http("GET", "/api/v1/suites", NULL, &b) == 200 &&
            strstr(buf_str(&b), "noop20")) {
            break;
        }
        if (i == 300) {
            die("the controller and workers did not come up in 30 s (logs: "
                "/tmp/handoff-bench-dist-%d-*.log)",
                (int)getpid());
        }
        sleep_ms(100);
    }
    buf_cleanup(&b);
    B.pg = pg_connect(B.dsn);
    bc.url = B.nats_url;
    bc.name = "handoff-bench-dist";
    if (bus_connect(&bc, &B.bus) != ST_OK) {
        die("NATS %s: cannot connect", B.nats_url);
    }
}

/* CPU time of pid in seconds: its own (utime + stime) and that of its
 * children it has reaped (cutime + cstime); *ppid its parent. False when
 * it is gone. */
static bool proc_cpu(pid_t pid, pid_t *ppid, double *self, double *reaped)
{
    char path[64];
    char line[1024];
    FILE *f;
    char *close;
    int parent = 0;
    unsigned long ut = 0;
    unsigned long st = 0;
    long cut = 0;
    long cst = 0;
    double tck = (double)sysconf(_SC_CLK_TCK);

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f || !fgets(line, sizeof(line), f)) {
        if (f) {
            fclose(f);
        }
        return false;
    }
    fclose(f);
    /* After the command in parentheses: state is field 3, ppid 4, utime
     * 14. */
    close = strrchr(line, ')');
    if (!close ||
        sscanf(close + 2,
               "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld",
               &parent, &ut, &st, &cut, &cst) != 5) {
        return false;
    }
    *ppid = parent;
    *self = (double)(ut + st) / tck;
    *reaped = (double)(cut + cst) / tck;
    return true;
}

/* utime + stime of pid, in seconds. */
static double cpu_s(pid_t pid)
{
    pid_t ppid;
    double self = 0;
    double reaped = 0;

    return proc_cpu(pid, &ppid, &self, &reaped) ? self : 0;
}

/* Where the CPU goes during a throughput round: the process trees of this
 * benchmark's servers (deploy/stack.sh's pid files), controller and
 * workers, with the children they reaped (a worker's runner children,
 * PostgreSQL's ended backends); others sharing the machine are left out. */
enum { CPU_PG, CPU_CONTROLLER, CPU_WORKERS, CPU_NATS, CPU_BENCH, CPU_N };

static pid_t stack_pid(const char *name)
{
    const char *dir = getenv("HANDOFF_STACK_DIR");
    char path[600];
    FILE *f;
    int pid = 0;

    if (!dir) {
        return 0;
    }
    snprintf(path, sizeof(path), "%s/run/%s.pid", dir, name);
    f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%d", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    return pid;
}

static void cpu_by_tree(double out[CPU_N])
{
    enum { MAXP = 8192 };
    static pid_t pids[MAXP];
    static pid_t ppids[MAXP];
    static double cpu[MAXP];
    pid_t roots[CPU_N][3] = {{stack_pid("postgres")},
                             {B.pids[0]},
                             {B.pids[1], B.pids[2]},
                             {stack_pid("nats")},
                             {0}};
    DIR *dir = opendir("/proc");
    struct dirent *e;
    size_t n = 0;

    memset(out, 0, sizeof(double) * CPU_N);
    while (dir && (e = readdir(dir)) && n < MAXP) {
        double self;
        double reaped;
        int pid = atoi(e->d_name);

        if (pid > 0 && proc_cpu(pid, &ppids[n], &self, &reaped)) {
            pids[n] = pid;
            cpu[n++] = self + reaped;
        }
    }
    if (dir) {
        closedir(dir);
    }
    for (size_t i = 0; i < n; i++) {
        /* Up the parents until a root (or init). */
        for (pid_t p = pids[i], depth = 0; p > 1 && depth < 64; depth++) {
            int k = -1;

            for (int c = 0; c < CPU_N && k < 0; c++) {
                for (int r = 0; r < 3; r++) {
                    k = roots[c][r] && roots[c][r] == p ? c : k;
                }
            }
            if (k >= 0) {
                out[k] += cpu[i];
                break;
            }
            for (size_t j = 0; j < n; j++) {
                if (pids[j] == p) {
                    p = ppids[j];
                    break;
                }
                if (j == n - 1) {
                    p = 0;
                }
            }
        }
    }
    out[CPU_BENCH] = cpu_s(getpid());
}

/* ---- Throughput: Handoff ---------------------------------------------- */

static struct {
    atomic_uint_fast64_t msgs;
    atomic_uint_fast64_t bytes;
} result_sizes;

static void on_result(void *arg, struct bus_msg *m)
{
    (void)arg;
    atomic_fetch_add(&result_sizes.msgs, 1);
    atomic_fetch_add(&result_sizes.bytes, bus_msg_len(m));
    bus_msg_free(m);
}

struct poster {
    int n;
    pthread_t tid;
};

static void *post_runs(void *arg)
{
    struct poster *p = arg;
    struct buf b;

    curl_t = curl_easy_init();
    buf_init(&b, 0);
    for (int i = 0; i < p->n; i++) {
        (void)post_run(&b);
    }
    buf_cleanup(&b);
    curl_easy_cleanup(curl_t);
    curl_t = NULL;
    return NULL;
}

/* Triggers n runs from POSTERS clients at once (pipelines of many teams,
 * not one loop) and waits until all their results are committed; returns
 * test results committed per second. */
static double handoff_round(int n)
{
    struct poster posters[POSTERS];
    int64_t base = pg_int(B.pg, "SELECT count(*) FROM test_results");
    int64_t want = base + (int64_t)n * TESTS_PER_RUN;
    double cpu0[CPU_N];
    double cpu1[CPU_N];
    double t0 = now_s();
    double t1;

    cpu_by_tree(cpu0);

    for (int i = 0; i < POSTERS; i++) {
        posters[i].n = n / POSTERS + (i < n % POSTERS);
        pthread_create(&posters[i].tid, NULL, post_runs, &posters[i]);
    }
    for (int i = 0; i < POSTERS; i++) {
        pthread_join(posters[i].tid, NULL);
    }
    /* Done when no run is left queued or running: a run ends in the
     * transaction that commits its results. A cheap look (the runs_active
     * index), where counting test_results every 10 ms scanned the table,
     * with parallel workers PostgreSQL forks each time, on the CPU being
     * measured. The count is checked once, after. */
    for (;;) {
        int64_t active = pg_int(B.pg, "SELECT count(*) FROM runs WHERE "
                                      "state IN ('queued', 'running')");

        if (active == 0) {
            break;
        }
        if (now_s() - t0 > 600) {
            die("%" PRId64 " runs still queued or running after 600 s", active);
        }
        sleep_ms(10);
    }
    t1 = now_s();
    if (pg_int(B.pg, "SELECT count(*) FROM test_results") != want) {
        die("%" PRId64 " results stored, %" PRId64 " expected",
            pg_int(B.pg, "SELECT count(*) FROM test_results") - base,
            want - base);
    }
    cpu_by_tree(cpu1);
    fprintf(stderr,
            "%d runs in %.2f s; CPU per run (us): postgres %.0f, controller "
            "%.0f, workers %.0f, nats-server %.0f, bench %.0f\n",
            n, t1 - t0, (cpu1[CPU_PG] - cpu0[CPU_PG]) * 1e6 / n,
            (cpu1[CPU_CONTROLLER] - cpu0[CPU_CONTROLLER]) * 1e6 / n,
            (cpu1[CPU_WORKERS] - cpu0[CPU_WORKERS]) * 1e6 / n,
            (cpu1[CPU_NATS] - cpu0[CPU_NATS]) * 1e6 / n,
            (cpu1[CPU_BENCH] - cpu0[CPU_BENCH]) * 1e6 / n);
    if (pg_int(B.pg, "SELECT count(*) FROM runs WHERE result IS DISTINCT "
                     "FROM 'passed'") > 0) {
        die("some runs did not pass");
    }
    return (double)n * TESTS_PER_RUN / (t1 - t0);
}

/* ---- Throughput: the bare pipe ---------------------------------------- */

struct bare {
    int n;            /* messages */
    int rows_per_msg; /* rows COPY'd for each */
    size_t size;
    PGconn *pg;
    struct bus_pull *pull;
    int round;
};

static void *bare_consume(void *arg)
{
    struct bare *bp = arg;
    struct bus_msg *msgs[FETCH_BATCH];
    int done = 0;
    char row[256];

    while (done < bp->n) {
        size_t got = 0;
        PGresult *r;

        if (bus_pull_fetch(bp->pull, FETCH_BATCH, 5000, msgs, &got) != ST_OK) {
            die("bare pipe: fetch failed after %d of %d", done, bp->n);
        }
        pg_exec(bp->pg, "BEGIN");
        r = PQexec(bp->pg, "COPY bare_results (run_id, job_id, job_attempt, "
                           "seq, name, attempt, result, started_at, "
                           "duration_ms) FROM STDIN");
        if (PQresultStatus(r) != PGRES_COPY_IN) {
            die("COPY: %s", PQerrorMessage(bp->pg));
        }
        PQclear(r);
        for (size_t i = 0; i < got; i++) {
            uint64_t seq = bus_msg_stream_seq(msgs[i]);

            for (int t = 0; t < bp->rows_per_msg; t++) {
                int len = snprintf(row, sizeof(row),
                                   "%" PRIu64 "\t%d-%" PRIu64
                                   ".0\t1\t%d\ttest_noop_%02d\t1\tpassed\t"
                                   "2026-01-01 00:00:00+00\t0.001\n",
                                   seq, bp->round, seq, t, t);

                if (PQputCopyData(bp->pg, row, len) != 1) {
                    die("COPY: %s", PQerrorMessage(bp->pg));
                }
            }
        }
        if (PQputCopyEnd(bp->pg, NULL) != 1) {
            die("COPY end: %s", PQerrorMessage(bp->pg));
        }
        r = PQgetResult(bp->pg);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            die("COPY: %s", PQerrorMessage(bp->pg));
        }
        PQclear(r);
        while ((r = PQgetResult(bp->pg))) {
            PQclear(r);
        }
        pg_exec(bp->pg, "COMMIT");
        for (size_t i = 0; i < got; i++) {
            (void)bus_msg_ack(msgs[i]);
            bus_msg_free(msgs[i]);
        }
        done += (int)got;
    }
    return NULL;
}

/* Moves n messages of size bytes through the bare pipe, rows_per_msg rows
 * each; returns rows committed per second. round keeps the rows' keys
 * apart. */
static double bare_round(int n, size_t size, int rows_per_msg, int round)
{
    static int consumer_made;
    char subject[64];
    char *payload = malloc(size);
    struct bare bp = {
        .n = n, .rows_per_msg = rows_per_msg, .size = size, .round = round};
    struct bus_stream_config sc = {.name = "BENCH_BARE",
                                   .subjects = "handoff_bench_bare.>",
                                   .retention = BUS_RETAIN_WORK_QUEUE,
                                   .duplicate_window_ns = 0};
    struct bus_consumer_config cc = {.stream = "BENCH_BARE",
                                     .name = "bare",
                                     .filter = "handoff_bench_bare.>",
                                     .ack_wait_ns = 30 * CLOCK_NS_PER_S,
                                     .max_ack_pending = 10000};
    pthread_t tid;
    double t0;
    double t1;

    if (!consumer_made) {
        if (bus_ensure_stream(B.bus, &sc) != ST_OK ||
            bus_ensure_consumer(B.bus, &cc) != ST_OK) {
            die("bare pipe: cannot create stream BENCH_BARE");
        }
        pg_exec(B.pg, "CREATE TABLE bare_results (LIKE test_results "
                      "INCLUDING DEFAULTS INCLUDING INDEXES)");
        consumer_made = 1;
    }
    for (size_t i = 0; i < size; i++) {
        payload[i] = (char)(i * 131 + 7);
    }
    bp.pg = pg_connect(B.dsn);
    if (bus_pull_bind(B.bus, "BENCH_BARE", "bare", &bp.pull) != ST_OK) {
        die("bare pipe: cannot bind the consumer");
    }
    t0 = now_s();
    pthread_create(&tid, NULL, bare_consume, &bp);
    for (int i = 0; i < n; i++) {
        snprintf(subject, sizeof(subject), "handoff_bench_bare.%d", i % 64);
        if (bus_js_publish_async(B.bus, subject, payload, size, NULL) !=
            ST_OK) {
            die("bare pipe: publish failed");
        }
    }
    if (bus_js_publish_wait(B.bus, 30000) != ST_OK) {
        die("bare pipe: publishes unconfirmed");
    }
    pthread_join(tid, NULL);
    t1 = now_s();
    bus_pull_free(bp.pull);
    PQfinish(bp.pg);
    free(payload);
    return (double)n * rows_per_msg / (t1 - t0);
}

static int bench_throughput(int runs, int rounds)
{
    struct bus_sub *sub = NULL;
    double h[16];
    double bare[16];
    double ratio[16];
    double bare1[16]; /* one message per test result */
    double ratio1[16];
    size_t size = 0;

    if (bus_subscribe(B.bus, "handoff.results.*.result", NULL, on_result, NULL,
                      &sub) != ST_OK) {
        die("cannot subscribe to results");
    }
    /* Warm-up: zygotes forked, connections and plans made. */
    (void)handoff_round(20);
    for (int r = 0; r < rounds; r++) {
        atomic_store(&result_sizes.msgs, 0);
        atomic_store(&result_sizes.bytes, 0);
        h[r] = handoff_round(runs);
        sleep_ms(300); /* the last result messages reach the subscriber */
        size = atomic_load(&result_sizes.msgs)
                   ? (size_t)(atomic_load(&result_sizes.bytes) /
                              atomic_load(&result_sizes.msgs))
                   : 1024;
        bare[r] = bare_round(runs, size, TESTS_PER_RUN, 2 * r);
        ratio[r] = h[r] / bare[r];
        bare1[r] = bare_round(runs * TESTS_PER_RUN, size / TESTS_PER_RUN, 1,
                              2 * r + 1);
        ratio1[r] = h[r] / bare1[r];
        fprintf(stderr,
                "round %d: handoff %.0f results/s; bare pipe %.0f rows/s "
                "(%d messages of %zu bytes, ratio %.3f), %.0f rows/s (%d "
                "messages of %zu bytes, ratio %.3f)\n",
                r + 1, h[r], bare[r], runs, size, ratio[r], bare1[r],
                runs * TESTS_PER_RUN, size / TESTS_PER_RUN, ratio1[r]);
    }
    bus_sub_free(sub);
    printf("bench dist_throughput: runs=%d tests_per_run=%d workers=2 "
           "rounds=%d runs_per_s=%.0f results_per_s=%.0f "
           "bare_pipe_rows_per_s=%.0f ratio=%.3f "
           "bare_pipe_per_result_rows_per_s=%.0f ratio_per_result=%.3f "
           "goal_ratio=0.5 msg_bytes=%zu\n",
           runs, TESTS_PER_RUN, rounds,
           quantile(h, (size_t)rounds, 0.5) / TESTS_PER_RUN,
           quantile(h, (size_t)rounds, 0.5),
           quantile(bare, (size_t)rounds, 0.5),
           quantile(ratio, (size_t)rounds, 0.5),
           quantile(bare1, (size_t)rounds, 0.5),
           quantile(ratio1, (size_t)rounds, 0.5), size);
    return 0;
}

/* ---- Latency ---------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t run_id;   /* the run waited for */
    double done_real; /* when its done message came (realtime s) */
} latest = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static double real_s(void)
{
    return (double)clock_real_ns() / 1e9;
}

/* handoff.runs.<id>.done: published after the result is committed. */
static void on_done(void *arg, struct bus_msg *m)
{
    const char *subject = bus_msg_subject(m);
    int64_t id = strtoll(subject + strlen("handoff.runs."), NULL, 10);
    double t = real_s();

    (void)arg;
    pthread_mutex_lock(&latest.lock);
    if (id == latest.run_id) {
        latest.done_real = t;
        pthread_cond_signal(&latest.cond);
    }
    pthread_mutex_unlock(&latest.lock);
    bus_msg_free(m);
}

static int bench_latency(int runs)
{
    struct bus_sub *sub = NULL;
    double *started = calloc((size_t)runs, sizeof(double));
    double *committed = calloc((size_t)runs, sizeof(double));
    struct buf b;

    buf_init(&b, 0);
    if (bus_subscribe(B.bus, "handoff.runs.*.done", NULL, on_done, NULL,
                      &sub) != ST_OK) {
        die("cannot subscribe to run ends");
    }
    for (int i = -10; i < runs; i++) { /* 10 warm-up runs */
        double t_post;
        double t_done;
        int64_t id;
        char sql[256];
        struct timespec until;

        pthread_mutex_lock(&latest.lock);
        latest.run_id = -1;
        latest.done_real = 0;
        pthread_mutex_unlock(&latest.lock);
        t_post = real_s();
        id = post_run(&b);
        pthread_mutex_lock(&latest.lock);
        latest.run_id = id;
        pthread_mutex_unlock(&latest.lock);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        pthread_mutex_lock(&latest.lock);
        while (latest.done_real == 0) {
            if (pthread_cond_timedwait(&latest.cond, &latest.lock, &until) ==
                ETIMEDOUT) {
                break;
            }
        }
        t_done = latest.done_real;
        pthread_mutex_unlock(&latest.lock);
        if (t_done == 0) {
            /* The done message may have come before run_id was set. */
            snprintf(sql, sizeof(sql),
                     "SELECT count(*) FROM runs WHERE id = %" PRId64
                     " AND state = 'finished'",
                     id);
            if (pg_int(B.pg, sql) != 1) {
                die("run %" PRId64 " did not end within 30 s", id);
            }
            i--; /* measure another one */
            continue;
        }
        if (i < 0) {
            continue;
        }
        snprintf(sql, sizeof(sql),
                 "SELECT extract(epoch FROM min(started_at)) FROM "
                 "test_results WHERE run_id = %" PRId64,
                 id);
        started[i] = (pg_double(B.pg, sql) - t_post) * 1000.0;
        committed[i] = (t_done - t_post) * 1000.0;
        sleep_ms(20); /* idle between runs */
    }
    bus_sub_free(sub);
    buf_cleanup(&b);
    printf("bench dist_latency: runs=%d first_test_started_p50_ms=%.2f "
           "first_test_started_p99_ms=%.2f committed_p50_ms=%.2f "
           "committed_p99_ms=%.2f goal_first_test_started_p99_ms=20\n",
           runs, quantile(started, (size_t)runs, 0.5),
           quantile(started, (size_t)runs, 0.99),
           quantile(committed, (size_t)runs, 0.5),
           quantile(committed, (size_t)runs, 0.99));
    free(started);
    free(committed);
    return 0;
}

/* ---- Footprint -------------------------------------------------------- */

/* VmRSS of pid in MiB, or -1. */
static double rss_mib(pid_t pid)
{
    char path[64];
    char line[256];
    FILE *f;
    double kib = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtod(line + 6, NULL);
        }
    }
    if (f) {
        fclose(f);
    }
    return kib < 0 ? -1 : kib / 1024.0;
}

/* The first child of pid (a worker's zygote), or 0. */
static pid_t child_of(pid_t pid)
{
    char path[96];
    FILE *f;
    long child = 0;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
             (int)pid);
    f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &child) != 1) {
            child = 0;
        }
        fclose(f);
    }
    return (pid_t)child;
}

static int bench_footprint(void)
{
    double c[5];
    double w[5];
    double z[5];

    /* Idle: started, connected, announced, nothing run. Sampled five
     * times, a second apart. */
    for (int i = 0; i < 5; i++) {
        sleep_ms(1000);
        c[i] = rss_mib(B.pids[0]);
        w[i] = (rss_mib(B.pids[1]) + rss_mib(B.pids[2])) / 2;
        z[i] =
            (rss_mib(child_of(B.pids[1])) + rss_mib(child_of(B.pids[2]))) / 2;
    }
    printf("bench dist_footprint: controller_rss_mib=%.1f "
           "worker_rss_mib=%.1f worker_zygote_rss_mib=%.1f "
           "goal_controller_mib=32 goal_worker_mib=8\n",
           quantile(c, 5, 0.5), quantile(w, 5, 0.5), quantile(z, 5, 0.5));
    return 0;
}

/* ---- Schedules ------------------------------------------------------- */

struct sched_poster {
    int from;
    int n;
    pthread_t tid;
};

static void *post_schedules(void *arg)
{
    struct sched_poster *p = arg;
    struct buf b;
    char body[512];

    curl_t = curl_easy_init();
    buf_init(&b, 0);
    for (int i = p->from; i < p->from + p->n; i++) {
        /* Every minute at second 0; runs in a pool nobody serves, so
         * they only queue (and time out): the benchmark is the firing. */
        snprintf(body, sizeof(body),
                 "{\"name\":\"bench-%05d\",\"suite\":\"noop20\","
                 "\"namespace\":\"test\",\"pool\":\"nobody-%s\","
                 "\"expression\":\"* * * * *\",\"overlap_policy\":\"allow\","
                 "\"queue_timeout\":\"20s\"}",
                 i, B.pool);
        if (http("POST", "/api/v1/schedules", body, &b) != 201) {
            die("POST /api/v1/schedules: %s", buf_str(&b));
        }
    }
    buf_cleanup(&b);
    curl_easy_cleanup(curl_t);
    curl_t = NULL;
    return NULL;
}

/* Sleeps until the database clock reads unix second at_s. */
static void sleep_until_db(double at_s)
{
    double now = pg_double(B.pg, "SELECT extract(epoch FROM now())");

    if (at_s > now) {
        sleep_ms((long)((at_s - now) * 1000));
    }
}

/* The jobs the schedules publish, as a core subscriber sees them: when
 * each arrived (realtime ms) and its run id (from Nats-Msg-Id,
 * "<run>.0@<ms>"). A job published twice (the outbox's retry) counts at
 * its first arrival. */
static struct {
    pthread_mutex_t lock;
    int64_t *run_id;
    int64_t *at_ms;
    size_t n;
    size_t cap;
} jobs_seen = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0};

static void on_job(void *arg, struct bus_msg *m)
{
    const char *id = bus_msg_header(m, "Nats-Msg-Id");
    int64_t at = clock_real_ns() / CLOCK_NS_PER_MS;

    (void)arg;
    pthread_mutex_lock(&jobs_seen.lock);
    if (id && jobs_seen.n < jobs_seen.cap) {
        jobs_seen.run_id[jobs_seen.n] = strtoll(id, NULL, 10);
        jobs_seen.at_ms[jobs_seen.n] = at;
        jobs_seen.n++;
    }
    pthread_mutex_unlock(&jobs_seen.lock);
    bus_msg_free(m);
}

/* handoff_schedule_fire_lag_seconds (tick to run committed, as each
 * controller measures it right after its commit), summed over the three
 * controllers: the count at or below each bucket bound. */
#define LAG_BOUNDS 16

static const double lag_bounds[LAG_BOUNDS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5,   1,      2.5,   5,    10,    30,   60,  1e9};

static void lag_buckets(double counts[LAG_BOUNDS])
{
    struct buf b;

    memset(counts, 0, LAG_BOUNDS * sizeof(double));
    buf_init(&b, 0);
    for (int c = 0; c < 3; c++) {
        const char *p;

        if (http_at(B.urls[c], "GET", "/metrics", NULL, &b) != 200) {
            die("GET %s/metrics failed", B.urls[c]);
        }
        p = buf_str(&b);
        while ((p = strstr(p, "handoff_schedule_fire_lag_seconds_bucket{"))) {
            const char *le = strstr(p, "le=\"");
            const char *end = strchr(p, '}');
            double bound;

            if (!le || !end || le > end) {
                break;
            }
            bound =
                strncmp(le + 4, "+Inf", 4) == 0 ? 1e9 : strtod(le + 4, NULL);
            for (int i = 0; i < LAG_BOUNDS; i++) {
                if (bound > lag_bounds[i] * 0.999 &&
                    bound < lag_bounds[i] * 1.001) {
                    counts[i] += strtod(end + 1, NULL);
                }
            }
            p = end;
        }
    }
    buf_cleanup(&b);
}

/* The bound (ms) of the first bucket holding the q-quantile of the fires
 * between two scrapes; -1 when there were none. */
static double lag_bucket_quantile(const double before[LAG_BOUNDS],
                                  const double after[LAG_BOUNDS], double q)
{
    double total = after[LAG_BOUNDS - 1] - before[LAG_BOUNDS - 1];

    for (int i = 0; total > 0 && i < LAG_BOUNDS; i++) {
        if (after[i] - before[i] >= q * total) {
            return lag_bounds[i] * 1000;
        }
    }
    return -1;
}

struct run_tick {
    int64_t run_id;
    int64_t tick_ms;
};

static int cmp_run_tick(const void *a, const void *b)
{
    const struct run_tick *x = a;
    const struct run_tick *y = b;

    return (x->run_id > y->run_id) - (x->run_id < y->run_id);
}

/* Lag from each fired tick in [from_s, to_s) to the first arrival of its
 * run's job, in ms, into lag (n_ticks entries at most); returns how many
 * ticks had their job seen. */
static size_t job_lags(double from_s, double to_s, double *lag, size_t n_ticks)
{
    char sql[512];
    PGresult *r;
    struct run_tick *rt;
    size_t n;
    size_t seen = 0;

    snprintf(sql, sizeof(sql),
             "SELECT t.run_id, (extract(epoch FROM t.tick_at) * 1000)::bigint "
             "FROM schedule_ticks t WHERE t.outcome = 'fired' AND "
             "t.tick_at >= to_timestamp(%.0f) AND t.tick_at < "
             "to_timestamp(%.0f) ORDER BY 1",
             from_s, to_s);
    r = PQexec(B.pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        die("%s: %s", sql, PQerrorMessage(B.pg));
    }
    n = (size_t)PQntuples(r);
    rt = calloc(n ? n : 1, sizeof(*rt));
    for (size_t i = 0; i < n; i++) {
        rt[i].run_id = strtoll(PQgetvalue(r, (int)i, 0), NULL, 10);
        rt[i].tick_ms = strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
    }
    PQclear(r);
    for (size_t i = 0; i < n && i < n_ticks; i++) {
        lag[i] = -1;
    }
    pthread_mutex_lock(&jobs_seen.lock);
    for (size_t j = 0; j < jobs_seen.n; j++) {
        struct run_tick key = {jobs_seen.run_id[j], 0};
        struct run_tick *hit = bsearch(&key, rt, n, sizeof(*rt), cmp_run_tick);
        size_t i;
        double l;

        if (!hit) {
            continue;
        }
        i = (size_t)(hit - rt);
        l = (double)(jobs_seen.at_ms[j] - hit->tick_ms);
        if (i < n_ticks && (lag[i] < 0 || l < lag[i])) {
            lag[i] = l;
        }
    }
    pthread_mutex_unlock(&jobs_seen.lock);
    for (size_t i = 0; i < n && i < n_ticks; i++) {
        if (lag[i] >= 0) {
            lag[seen++] = lag[i];
        }
    }
    free(rt);
    return seen;
}

/* 10,000 schedules (HANDOFF_BENCH_SCHEDULES) firing every minute on three
 * controllers, for HANDOFF_BENCH_MINUTES (2) ticks, from the first minute
 * at least 10 s after the last schedule was created. Fire lag from the
 * tick time three ways: to the run's created_at (fire_lag); to the run's
 * commit, from the controllers' own histogram (commit_lag, as the bound of
 * the bucket holding the quantile); to the moment its job reached a NATS
 * subscriber (job_lag: the run exists and a worker can take it). The
 * last two show what created_at cannot when a run is written ahead and
 * committed at its tick. And each controller's CPU between ticks (from
 * 40 s to 58 s past each minute), the worst replica's median. */
static int bench_schedules(void)
{
    const char *env_n = getenv("HANDOFF_BENCH_SCHEDULES");
    const char *env_m = getenv("HANDOFF_BENCH_MINUTES");
    int n = env_n ? atoi(env_n) : 10000;
    int minutes = env_m ? atoi(env_m) : 2;
    struct sched_poster posters[POSTERS];
    pid_t ctl[3] = {B.pids[0], B.pids[3], B.pids[4]};
    double cpu[3][16];
    double worst[3];
    double start_s;
    double first_tick;
    double t0 = now_s();
    char sql[512];
    PGresult *r;
    int64_t fired;
    int64_t dup;
    char subject[128];
    double lag_before[LAG_BOUNDS];
    double lag_after[LAG_BOUNDS];
    struct bus_sub *sub = NULL;
    double *jlag;
    size_t jseen;

    if (n < 1 || minutes < 1 || minutes > 16) {
        die("HANDOFF_BENCH_SCHEDULES >= 1, HANDOFF_BENCH_MINUTES 1-16");
    }
    for (int i = 0; i < POSTERS; i++) {
        posters[i].from =
            i * (n / POSTERS) + (i < n % POSTERS ? i : n % POSTERS);
        posters[i].n = n / POSTERS + (i < n % POSTERS);
        pthread_create(&posters[i].tid, NULL, post_schedules, &posters[i]);
    }
    for (int i = 0; i < POSTERS; i++) {
        pthread_join(posters[i].tid, NULL);
    }
    fprintf(stderr, "created %d schedules in %.1f s\n", n, now_s() - t0);
    jobs_seen.cap = (size_t)n * (size_t)(minutes + 1) * 2;
    jobs_seen.run_id = calloc(jobs_seen.cap, sizeof(int64_t));
    jobs_seen.at_ms = calloc(jobs_seen.cap, sizeof(int64_t));
    snprintf(subject, sizeof(subject), "handoff.jobs.nobody-%s.>", B.pool);
    if (bus_subscribe(B.bus, subject, NULL, on_job, NULL, &sub) != ST_OK) {
        die("cannot subscribe to %s", subject);
    }
    start_s = pg_double(B.pg, "SELECT extract(epoch FROM now())");
    /* A tick at least 10 s away: the first one may come while the last
     * schedules are still being created. */
    first_tick = ((int64_t)(start_s + 10) / 60 + 1) * 60;
    sleep_until_db(first_tick - 5);
    lag_buckets(lag_before);
    for (int m = 0; m < minutes; m++) {
        double tick = first_tick + 60.0 * m;
        double before[3];

        sleep_until_db(tick + 40);
        for (int c = 0; c < 3; c++) {
            before[c] = cpu_s(ctl[c]);
        }
        sleep_until_db(tick + 58);
        for (int c = 0; c < 3; c++) {
            cpu[c][m] = (cpu_s(ctl[c]) - before[c]) / 18.0 * 100.0;
        }
        fprintf(stderr,
                "minute %d: controller CPU 40-58 s after the tick: "
                "%.2f %% %.2f %% %.2f %%\n",
                m + 1, cpu[0][m], cpu[1][m], cpu[2][m]);
    }
    lag_buckets(lag_after);
    for (int c = 0; c < 3; c++) {
        worst[c] = quantile(cpu[c], (size_t)minutes, 0.5);
    }
    snprintf(sql, sizeof(sql),
             "SELECT count(*), "
             "percentile_disc(0.5) WITHIN GROUP (ORDER BY lag), "
             "percentile_disc(0.99) WITHIN GROUP (ORDER BY lag), max(lag) "
             "FROM (SELECT extract(epoch FROM r.created_at - t.tick_at) * "
             "1000 AS lag FROM schedule_ticks t JOIN runs r ON r.id = "
             "t.run_id WHERE t.outcome = 'fired' AND t.tick_at >= "
             "to_timestamp(%.0f) AND t.tick_at < to_timestamp(%.0f)) x",
             first_tick, first_tick + 60.0 * minutes);
    r = PQexec(B.pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        die("%s: %s", sql, PQerrorMessage(B.pg));
    }
    fired = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (SELECT schedule_id, tick_at FROM "
             "schedule_ticks WHERE outcome = 'fired' GROUP BY 1, 2 HAVING "
             "count(*) > 1) d");
    dup = pg_int(B.pg, sql);
    bus_sub_free(sub);
    jlag = calloc((size_t)n * (size_t)minutes + 1, sizeof(double));
    jseen = job_lags(first_tick, first_tick + 60.0 * minutes, jlag,
                     (size_t)n * (size_t)minutes);
    printf("bench dist_schedules: schedules=%d controllers=3 minutes=%d "
           "fired=%" PRId64 " expected=%d duplicates=%" PRId64
           " fire_lag_p50_ms=%.1f fire_lag_p99_ms=%.1f fire_lag_max_ms=%.1f "
           "commit_lag_p50_le_ms=%g commit_lag_p99_le_ms=%g "
           "jobs_seen=%zu job_lag_p50_ms=%.1f job_lag_p99_ms=%.1f "
           "job_lag_max_ms=%.1f cpu_between_ticks_pct=%.2f "
           "goal_lag_p99_ms=100 goal_cpu_pct=2\n",
           n, minutes, fired, n * minutes, dup,
           PQgetisnull(r, 0, 1) ? -1 : strtod(PQgetvalue(r, 0, 1), NULL),
           PQgetisnull(r, 0, 2) ? -1 : strtod(PQgetvalue(r, 0, 2), NULL),
           PQgetisnull(r, 0, 3) ? -1 : strtod(PQgetvalue(r, 0, 3), NULL),
           lag_bucket_quantile(lag_before, lag_after, 0.5),
           lag_bucket_quantile(lag_before, lag_after, 0.99), jseen,
           jseen ? quantile(jlag, jseen, 0.5) : -1,
           jseen ? quantile(jlag, jseen, 0.99) : -1,
           jseen ? quantile(jlag, jseen, 1.0) : -1, quantile(worst, 3, 1.0));
    PQclear(r);
    free(jlag);
    free(jobs_seen.run_id);
    free(jobs_seen.at_ms);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int rc;

    signal(SIGPIPE, SIG_IGN);
    if (strcmp(mode, "throughput") != 0 && strcmp(mode, "latency") != 0 &&
        strcmp(mode, "footprint") != 0 && strcmp(mode, "schedules") != 0) {
        fprintf(stderr, "usage: handoff-bench-dist throughput|latency|"
                        "footprint|schedules\n");
        return 2;
    }
    setup(strcmp(mode, "schedules") == 0 ? 2 : 0);
    if (strcmp(mode, "schedules") == 0) {
        rc = bench_schedules();
    } else if (strcmp(mode, "footprint") == 0) {
        rc = bench_footprint();
    } else if (strcmp(mode, "latency") == 0) {
        rc = bench_latency(LATENCY_RUNS);
    } else {
        rc = bench_throughput(THROUGHPUT_RUNS, THROUGHPUT_ROUNDS);
    }
    bus_free(B.bus);
    curl_easy_cleanup(curl_main);
    stop_all();
    if (bus_shutdown(2000) != ST_OK) {
        fprintf(stderr,
                "handoff-bench-dist: NATS threads still busy at exit\n");
    }
    return rc;
}
