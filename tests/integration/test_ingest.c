/* ingest against a real nats-server and PostgreSQL from deploy/stack.sh:
 * crafted JobStarted/JobResult messages published to HANDOFF_RESULTS before
 * the ingest thread starts, so that one fetch (one batch, one transaction)
 * takes them all, then the rows they leave. What the order inside a batch
 * decides: an attempt started and ended, a result repeated, two attempts of
 * one job, a result ahead of its started. Needs HANDOFF_PG_DSN,
 * HANDOFF_NATS_URL and HANDOFF_STACK_DIR (stack.sh env). Works in a
 * database of its own, handoff_test_ingest_<pid>, dropped at the end. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "clock.h"
#include "cmetrics.h"
#include "db.h"
#include "ingest.h"
#include "log.h"
#include "mem.h"
#include "migrate.h"
#include "result.h"
#include "subjects.h"
#include "wire.h"

#define WAIT_MS 30000
#define MAX_ENDED 16

/* 2001-01-01T00:00:00Z and later: times a worker could not send now, so
 * they tell the message's times from the database's now(). */
#define T0_NS 978307200000000000LL

static const char *base_dsn; /* HANDOFF_PG_DSN */
static char dbname[64];
static char dsn[1024];
static struct db *conn;
static struct bus *bus;
static int64_t next_run; /* run ids of this process, clear of others' */

struct ended_run {
    int64_t run_id;
    char state[16];
    char result[16];
};

static struct {
    pthread_mutex_t lock;
    struct ended_run runs[MAX_ENDED];
    size_t n;
} ended = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- Helpers ----------------------------------------------------------- */

static void pause_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void exec_ok(struct db *d, const char *sql)
{
    int rc = db_exec(d, sql, 0, NULL, NULL);

    if (rc != ST_OK) {
        fail_msg("%s: %s", sql, status_str(rc));
    }
}

/* The text of the first column of the first row of sql with $1 = arg, in
 * out ("NULL" for SQL NULL). */
static const char *query_text(const char *sql, const char *arg, char *out,
                              size_t cap)
{
    struct db_res *res = NULL;

    assert_int_equal(db_exec(conn, sql, arg ? 1 : 0, arg ? &arg : NULL, &res),
                     ST_OK);
    assert_int_equal(db_res_rows(res), 1);
    snprintf(out, cap, "%s",
             db_res_is_null(res, 0, 0) ? "NULL" : db_res_get(res, 0, 0));
    db_res_free(res);
    return out;
}

static int64_t query_int(const char *sql, const char *arg)
{
    char text[64];
    char *end;
    long long v = strtoll(query_text(sql, arg, text, sizeof(text)), &end, 10);

    assert_true(*end == '\0');
    return v;
}

/* A queued run of suite "ns/suite" with one job, "<run>.0". Returns the
 * run id, also written as text into id (32 bytes). */
static int64_t make_run(char *id)
{
    char sql[512];
    int64_t run = next_run++;

    snprintf(sql, sizeof(sql),
             "INSERT INTO runs (id, suite, namespace, state, trigger, "
             "timeout_ms, queue_timeout_ms, config) OVERRIDING SYSTEM VALUE "
             "VALUES (%lld, 'suite', 'ns', 'queued', 'api', 60000, 60000, "
             "'{}')",
             (long long)run);
    exec_ok(conn, sql);
    snprintf(sql, sizeof(sql),
             "INSERT INTO jobs (id, run_id, shard, subject, payload) VALUES "
             "('%lld.0', %lld, 0, 'handoff.jobs.x', '\\x00')",
             (long long)run, (long long)run);
    exec_ok(conn, sql);
    snprintf(id, 32, "%lld", (long long)run);
    return run;
}

static void publish(int64_t run, const char *kind, const struct buf *b)
{
    char subject[128];

    subjects_results(run, kind, subject, sizeof(subject));
    assert_int_equal(bus_js_publish(bus, subject, b->data, b->len, NULL, 5000),
                     ST_OK);
}

static void publish_started(int64_t run, int attempt, const char *worker,
                            int64_t started_ns)
{
    char job[32];
    struct wire_started s = {.job_id = job,
                             .run_id = run,
                             .job_attempt = attempt,
                             .worker_id = (char *)worker,
                             .started_unix_ns = started_ns};
    struct buf b;

    snprintf(job, sizeof(job), "%lld.0", (long long)run);
    buf_init(&b, 0);
    wire_started_encode(&s, &b);
    publish(run, "started", &b);
    buf_cleanup(&b);
}

/* publish_result's first test sets a value and a span unless this is set:
 * a batch of results without any (the ingester COPYs fewer columns). */
static bool plain_results;

/* A result of n_tests passing tests (the last one failed when failed). */
static void publish_result(int64_t run, int attempt, const char *worker,
                           int64_t start_ns, int n_tests, bool failed)
{
    char job[32];
    struct wire_result_meta meta = {.job_id = job,
                                    .run_id = run,
                                    .job_attempt = attempt,
                                    .worker_id = (char *)worker};
    struct result_suite s;
    struct buf b;

    snprintf(job, sizeof(job), "%lld.0", (long long)run);
    result_suite_init(&s, "suite", "ns");
    for (int i = 0; i < n_tests; i++) {
        char name[32];
        struct result_attempt *a;

        snprintf(name, sizeof(name), "test_%d", i);
        a = result_test_add_attempt(result_suite_add_test(&s, name), 0);
        a->result = failed && i == n_tests - 1 ? RESULT_FAILED : RESULT_PASSED;
        a->start_unix_ns = start_ns + i;
        a->duration_ns = 1000000;
        buf_adds(&a->log, "a \"quoted\" \\ {log,line}\n");
        if (i == 0 && !plain_results) {
            result_kv_set(&a->values, &a->n_values, "key", "v\"1");
            result_attempt_add_span(a, "span", start_ns)->duration_ns = 5;
        }
    }
    s.start_unix_ns = start_ns;
    s.duration_ns = 3000000;
    result_suite_finish(&s);
    buf_init(&b, 0);
    wire_result_encode(&s, &meta, &b);
    publish(run, "result", &b);
    buf_cleanup(&b);
    result_suite_cleanup(&s);
}

static void on_run_ended(void *arg, int64_t run_id, const char *ns,
                         const char *suite, const char *state,
                         const char *result)
{
    (void)arg;
    (void)ns;
    (void)suite;
    pthread_mutex_lock(&ended.lock);
    if (ended.n < MAX_ENDED) {
        struct ended_run *e = &ended.runs[ended.n++];

        e->run_id = run_id;
        snprintf(e->state, sizeof(e->state), "%s", state);
        snprintf(e->result, sizeof(e->result), "%s", result);
    }
    pthread_mutex_unlock(&ended.lock);
}

/* Times run was reported ended since the last ingest_all. */
static int ended_count(int64_t run, const char *state, const char *result)
{
    int n = 0;

    pthread_mutex_lock(&ended.lock);
    for (size_t i = 0; i < ended.n; i++) {
        if (ended.runs[i].run_id == run &&
            strcmp(ended.runs[i].state, state) == 0 &&
            strcmp(ended.runs[i].result, result) == 0) {
            n++;
        }
    }
    pthread_mutex_unlock(&ended.lock);
    return n;
}

/* The value of the unlabelled sample name in the rendering of m. */
static double metric(struct cmetrics *m, const char *name)
{
    struct buf out;
    const char *line;
    double v = -1;
    size_t len = strlen(name);

    buf_init(&out, 0);
    metrics_render(m->reg, &out);
    for (line = buf_str(&out); line && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            v = strtod(line + len + 1, NULL);
            break;
        }
    }
    buf_cleanup(&out);
    return v;
}

/* What the last ingest_all counted: results of an attempt stored before,
 * results of a job the database does not have. */
static double last_duplicates;
static double last_unknown;

/* Runs the ingest thread until every message on the stream is acked and
 * returns the number of batches it stored. */
static int ingest_all(void)
{
    struct ingest_config cfg = {.dsn = dsn, .batch = 1000};
    struct ingest_hooks hooks = {.run_ended = on_run_ended};
    struct cmetrics m;
    struct ingest *in = NULL;
    int64_t deadline = clock_mono_ns() / CLOCK_NS_PER_MS + WAIT_MS;
    uint64_t pending = 1;
    uint64_t ack_pending = 1;
    int batches;

    pthread_mutex_lock(&ended.lock);
    ended.n = 0;
    pthread_mutex_unlock(&ended.lock);
    assert_int_equal(cmetrics_init(&m, "test"), ST_OK);
    assert_int_equal(ingest_start(&cfg, bus, &m, &hooks, &in), ST_OK);
    while (pending + ack_pending > 0) {
        if (clock_mono_ns() / CLOCK_NS_PER_MS > deadline) {
            fail_msg("ingest: %llu messages still pending",
                     (unsigned long long)(pending + ack_pending));
        }
        pause_ms(20);
        if (bus_consumer_pending(bus, SUBJECTS_RESULTS_STREAM,
                                 SUBJECTS_RESULTS_CONSUMER, &pending,
                                 &ack_pending) != ST_OK) {
            pending = 1;
        }
    }
    ingest_stop(in);
    batches = (int)metric(&m, "handoff_ingest_batch_seconds_count");
    last_duplicates = metric(&m, "handoff_ingest_duplicates_total");
    last_unknown = metric(&m, "handoff_ingest_unknown_jobs_total");
    cmetrics_cleanup(&m);
    return batches;
}

/* ---- Tests ------------------------------------------------------------- */

static void test_ingest_started_and_result_in_one_batch_end_the_run(void **st)
{
    int64_t run;
    char id[32];
    char text[128];

    (void)st;
    run = make_run(id);
    publish_started(run, 1, "w1", T0_NS);
    publish_result(run, 1, "w1", T0_NS + 5 * CLOCK_NS_PER_S, 3, false);
    assert_int_equal(ingest_all(), 1);

    assert_string_equal(
        query_text("SELECT state || ' ' || result || ' ' || worker_id || ' ' "
                   "|| started_at FROM job_attempts WHERE run_id = $1",
                   id, text, sizeof(text)),
        "done passed w1 2001-01-01 00:00:00+00"); /* the started's time */
    assert_string_equal(query_text("SELECT state || ' ' || result || ' ' || "
                                   "attempts || ' ' || worker_id FROM jobs "
                                   "WHERE run_id = $1",
                                   id, text, sizeof(text)),
                        "done passed 1 w1");
    assert_string_equal(
        query_text("SELECT state || ' ' || result || ' ' || tests_total || ' "
                   "' || tests_passed || ' ' || started_at FROM runs "
                   "WHERE id = $1",
                   id, text, sizeof(text)),
        "finished passed 3 3 2001-01-01 00:00:00+00");
    assert_int_equal(
        query_int("SELECT count(*) FROM test_results WHERE run_id = $1", id),
        3);
    assert_string_equal(
        query_text("SELECT \"values\"::text || (spans->0->>'name') || log FROM "
                   "test_results WHERE run_id = $1 AND seq = 0",
                   id, text, sizeof(text)),
        "{\"key\": \"v\\\"1\"}spana \"quoted\" \\ {log,line}\n");
    assert_string_equal(
        query_text("SELECT \"values\"::text || spans::text FROM test_results "
                   "WHERE run_id = $1 AND seq = 1",
                   id, text, sizeof(text)),
        "{}[]");
    assert_int_equal(ended_count(run, "finished", "passed"), 1);
}

/* A worker sends no started for a first attempt shorter than its
 * --started-delay: the result's start is the attempt's, the job's and the
 * run's start. */
static void test_ingest_result_without_started_takes_its_start(void **st)
{
    int64_t run;
    char id[32];
    char text[160];

    (void)st;
    run = make_run(id);
    plain_results = true;
    publish_result(run, 1, "w1", T0_NS + 7 * CLOCK_NS_PER_S, 2, false);
    plain_results = false;
    assert_int_equal(ingest_all(), 1);
    /* No test set values or spans: the columns' defaults. */
    assert_int_equal(query_int("SELECT count(*) FROM test_results WHERE "
                               "run_id = $1 AND \"values\" = '{}' AND "
                               "spans = '[]' AND log <> ''",
                               id),
                     2);
    assert_string_equal(
        query_text("SELECT state || ' ' || worker_id || ' ' || started_at "
                   "FROM job_attempts WHERE run_id = $1",
                   id, text, sizeof(text)),
        "done w1 2001-01-01 00:00:07+00");
    assert_string_equal(query_text("SELECT state || ' ' || worker_id || ' ' "
                                   "|| started_at FROM jobs WHERE run_id = $1",
                                   id, text, sizeof(text)),
                        "done w1 2001-01-01 00:00:07+00");
    assert_string_equal(
        query_text("SELECT state || ' ' || result || ' ' || tests_total || ' "
                   "' || started_at FROM runs WHERE id = $1",
                   id, text, sizeof(text)),
        "finished passed 2 2001-01-01 00:00:07+00");
    assert_int_equal(ended_count(run, "finished", "passed"), 1);
}

static void test_ingest_repeated_result_is_stored_once(void **st)
{
    int64_t run;
    char id[32];
    char text[128];

    (void)st;
    run = make_run(id);
    /* A redelivery after a lost ack, in the same batch... */
    publish_result(run, 1, "w1", T0_NS, 4, true);
    publish_result(run, 1, "w2", T0_NS + CLOCK_NS_PER_S, 4, false);
    assert_int_equal(ingest_all(), 1);
    assert_int_equal(
        query_int("SELECT count(*) FROM test_results WHERE run_id = $1", id),
        4);
    assert_string_equal(
        query_text("SELECT worker_id || ' ' || result || ' ' || started_at "
                   "FROM job_attempts WHERE run_id = $1",
                   id, text, sizeof(text)),
        "w1 failed 2001-01-01 00:00:00+00"); /* the first one */
    assert_true(last_duplicates == 1 && last_unknown == 0);
    assert_string_equal(query_text("SELECT state || ' ' || result || ' ' || "
                                   "tests_failed FROM runs WHERE id = $1",
                                   id, text, sizeof(text)),
                        "finished failed 1");
    assert_int_equal(ended_count(run, "finished", "failed"), 1);

    /* ...and in a later one: nothing changes, nothing is reported. */
    publish_started(run, 1, "w3", T0_NS + 9 * CLOCK_NS_PER_S);
    publish_result(run, 1, "w3", T0_NS + 9 * CLOCK_NS_PER_S, 4, false);
    assert_int_equal(ingest_all(), 1);
    assert_int_equal(
        query_int("SELECT count(*) FROM test_results WHERE run_id = $1", id),
        4);
    assert_string_equal(
        query_text("SELECT state || ' ' || worker_id || ' ' || result FROM "
                   "job_attempts WHERE run_id = $1",
                   id, text, sizeof(text)),
        "done w1 failed");
    assert_string_equal(query_text("SELECT state || ' ' || worker_id || ' ' "
                                   "|| result FROM jobs WHERE run_id = $1",
                                   id, text, sizeof(text)),
                        "done w1 failed");
    assert_string_equal(
        query_text("SELECT state || ' ' || result FROM runs WHERE id = $1", id,
                   text, sizeof(text)),
        "finished failed");
    assert_int_equal(ended_count(run, "finished", "failed"), 0);
}

static void test_ingest_two_attempts_of_a_job_in_one_batch(void **st)
{
    int64_t lost_run;
    int64_t late_run;
    char lost_id[32];
    char late_id[32];
    char text[256];

    (void)st;
    /* Attempt 1 starts, its worker vanishes, attempt 2 starts and ends. */
    lost_run = make_run(lost_id);
    publish_started(lost_run, 1, "w1", T0_NS);
    publish_started(lost_run, 2, "w2", T0_NS + 60 * CLOCK_NS_PER_S);
    publish_result(lost_run, 2, "w2", T0_NS + 61 * CLOCK_NS_PER_S, 2, false);
    /* A result that overtook its own started. */
    late_run = make_run(late_id);
    publish_result(late_run, 1, "w1", T0_NS + 7 * CLOCK_NS_PER_S, 2, false);
    publish_started(late_run, 1, "w1", T0_NS);
    assert_int_equal(ingest_all(), 1);

    assert_string_equal(
        query_text("SELECT string_agg(job_attempt || ' ' || state || ' ' || "
                   "coalesce(result, '-') || ' ' || coalesce(reason, '-'), "
                   "'; ' ORDER BY job_attempt) FROM job_attempts "
                   "WHERE run_id = $1",
                   lost_id, text, sizeof(text)),
        "1 lost error lost: worker w1 stopped answering; the job went to "
        "another worker; 2 done passed -");
    assert_string_equal(query_text("SELECT state || ' ' || attempts || ' ' || "
                                   "worker_id || ' ' || started_at FROM jobs "
                                   "WHERE run_id = $1",
                                   lost_id, text, sizeof(text)),
                        "done 2 w2 2001-01-01 00:01:00+00");
    assert_string_equal(
        query_text("SELECT state || ' ' || result || ' ' || started_at || ' ' "
                   "|| last_started_at FROM runs WHERE id = $1",
                   lost_id, text, sizeof(text)),
        "finished passed 2001-01-01 00:00:00+00 2001-01-01 00:01:00+00");
    assert_int_equal(ended_count(lost_run, "finished", "passed"), 1);

    assert_string_equal(
        query_text("SELECT state || ' ' || started_at FROM job_attempts "
                   "WHERE run_id = $1",
                   late_id, text, sizeof(text)),
        "done 2001-01-01 00:00:07+00"); /* the result's: it came first */
    assert_string_equal(query_text("SELECT state FROM jobs WHERE run_id = $1",
                                   late_id, text, sizeof(text)),
                        "done");
    assert_int_equal(ended_count(late_run, "finished", "passed"), 1);
}

static void test_ingest_ignores_a_started_of_an_unknown_job(void **st)
{
    int64_t run;
    char id[32];

    (void)st;
    run = make_run(id);
    assert_int_equal(db_exec(conn, "DELETE FROM jobs WHERE run_id = $1", 1,
                             (const char *[]){id}, NULL),
                     ST_OK);
    publish_started(run, 1, "w1", T0_NS);
    publish_result(run, 1, "w1", T0_NS, 1, false);
    assert_int_equal(ingest_all(), 1);
    /* Counted as what it is (and said in the log), not as a duplicate. */
    assert_true(last_unknown == 1 && last_duplicates == 0);
    assert_int_equal(
        query_int("SELECT count(*) FROM job_attempts WHERE run_id = $1", id),
        0);
    assert_int_equal(
        query_int("SELECT count(*) FROM test_results WHERE run_id = $1", id),
        0);
    assert_int_equal(query_int("SELECT count(*) FROM runs WHERE id = $1 AND "
                               "state = 'queued' AND started_at IS NULL",
                               id),
                     1);
}

/* ---- Set-up ------------------------------------------------------------ */

static int group_setup(void **state)
{
    const struct bus_stream_config results = {
        .name = SUBJECTS_RESULTS_STREAM,
        .subjects = SUBJECTS_RESULTS_ALL,
        .retention = BUS_RETAIN_LIMITS,
        .max_age_ns = 7 * 24 * 3600 * CLOCK_NS_PER_S,
        .duplicate_window_ns = 10 * 60 * CLOCK_NS_PER_S,
    };
    struct bus_config bc = {.url = getenv("HANDOFF_NATS_URL"),
                            .name = "test_ingest"};
    struct db *admin = NULL;
    char sql[256];

    (void)state;
    snprintf(dbname, sizeof(dbname), "handoff_test_ingest_%d", (int)getpid());
    if (db_connect(base_dsn, &admin) != ST_OK) {
        return -1;
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    if (db_exec(admin, sql, 0, NULL, NULL) != ST_OK) {
        dbname[0] = '\0';
        db_free(admin);
        return -1;
    }
    db_free(admin);
    snprintf(dsn, sizeof(dsn), "%s dbname=%s", base_dsn, dbname);
    if (db_connect(dsn, &conn) != ST_OK || migrate_run(conn) != ST_OK ||
        db_exec(conn, "SET TimeZone = 'UTC'", 0, NULL, NULL) != ST_OK ||
        bus_connect(&bc, &bus) != ST_OK ||
        bus_ensure_stream(bus, &results) != ST_OK) {
        return -1;
    }
    /* Run ids of their own: what others left on the stream names jobs this
     * database does not have. */
    next_run = (int64_t)getpid() * 1000;
    /* Whatever others left unacked goes first, so each test's messages
     * make one batch of their own. */
    ingest_all();
    return 0;
}

static int group_teardown(void **state)
{
    struct db *admin = NULL;
    char sql[256];
    int failed = 0;

    (void)state;
    db_free(conn);
    conn = NULL;
    bus_free(bus);
    bus = NULL;
    if (dbname[0]) {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                 dbname);
        if (db_connect(base_dsn, &admin) != ST_OK ||
            db_exec(admin, sql, 0, NULL, NULL) != ST_OK) {
            fprintf(stderr, "test_ingest: could not drop database %s\n",
                    dbname);
            failed = -1;
        }
        db_free(admin);
    }
    return failed;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_ingest_started_and_result_in_one_batch_end_the_run),
        cmocka_unit_test(test_ingest_result_without_started_takes_its_start),
        cmocka_unit_test(test_ingest_repeated_result_is_stored_once),
        cmocka_unit_test(test_ingest_two_attempts_of_a_job_in_one_batch),
        cmocka_unit_test(test_ingest_ignores_a_started_of_an_unknown_job),
    };
    int failed;

    base_dsn = getenv("HANDOFF_PG_DSN");
    if (!base_dsn || !*base_dsn || !getenv("HANDOFF_NATS_URL") ||
        !getenv("HANDOFF_STACK_DIR")) {
        fprintf(stderr,
                "test_ingest: FAIL: HANDOFF_PG_DSN, HANDOFF_NATS_URL and "
                "HANDOFF_STACK_DIR are not set. This test needs the local "
                "stack:\n"
                "  deploy/stack.sh up && eval \"$(deploy/stack.sh env)\"\n"
                "then run it again (or ctest -L integration).\n");
        return 1;
    }
    log_setup("test_ingest", LOG_WARN);
    failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    /* nats.c's threads and caches, so LeakSanitizer sees only ours. */
    if (bus_shutdown(10000) != ST_OK) {
        fprintf(stderr, "test_ingest: nats.c did not shut down in 10 s\n");
        failed++;
    }
    return failed;
}
