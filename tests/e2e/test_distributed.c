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
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "bus.h"
#include "clock.h"
#include "db.h"
#include "e2e.h"
#include "mem.h"
#include "subjects.h"
#include "wire.h"

extern char **environ;

static struct {
    char url[96];  /* controller 1 */
    char url2[96]; /* controller 2, when started */
} E;

/* Controllers sweep every second here, so timeouts show quickly. */
static const char *const ctl_env[] = {"HANDOFF_SWEEP_INTERVAL=1s", NULL};
/* Workers hand a job back after 2 s without an ack. */
static const char *const worker_args[] = {"--ack-wait", "2s", NULL};

/* ---- Processes ---------------------------------------------------------- */

/* ---- HTTP --------------------------------------------------------------- */

/* Starts a run of test/e2e in pool; returns its id. */
static int64_t start_run_in(const char *base, const char *pool,
                            const char *extra_json)
{
    char body[2048];
    struct e2e_http h;
    json_t *j;
    int64_t id;

    snprintf(body, sizeof(body),
             "{\"suite\":\"e2e\",\"namespace\":\"test\",\"pool\":\"%s\"%s%s}",
             pool, extra_json ? "," : "", extra_json ? extra_json : "");
    h = e2e_request(base, "POST", "/api/v1/runs", body, NULL);
    if (h.status != 201) {
        fail_msg("POST %s: %ld %s", body, h.status, buf_str(&h.body));
    }
    j = e2e_json_of(&h);
    id = json_integer_value(json_object_get(j, "id"));
    assert_true(id > 0);
    json_decref(j);
    buf_cleanup(&h.body);
    return id;
}

/* Starts a run in the test's pool; returns its id. */
static int64_t start_run(const char *base, const char *extra_json)
{
    return start_run_in(base, E2E.pool, extra_json);
}

/* Polls the run until its state is one of the ended ones, or fails after
 * timeout_s. Returns the run's detail (caller frees). */
static json_t *await_end(const char *base, int64_t id, int timeout_s)
{
    int64_t until = clock_mono_ns() + timeout_s * CLOCK_NS_PER_S;
    char path[64];

    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64, id);
    for (;;) {
        struct e2e_http h = e2e_request(base, "GET", path, NULL, NULL);

        if (h.status == 200) {
            json_t *j = e2e_json_of(&h);
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
            for (size_t i = 0; i < E2E.n_procs; i++) {
                e2e_print_log(&E2E.procs[i]);
            }
            fail_msg("run %" PRId64 " did not end within %d s", id, timeout_s);
        }
        e2e_sleep_ms(200);
    }
}

static void await_state(const char *base, int64_t id, const char *want,
                        int timeout_s)
{
    int64_t until = clock_mono_ns() + timeout_s * CLOCK_NS_PER_S;
    char path[64];

    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64, id);
    for (;;) {
        struct e2e_http h = e2e_request(base, "GET", path, NULL, NULL);
        bool ok = false;

        if (h.status == 200) {
            json_t *j = e2e_json_of(&h);

            ok = strcmp(json_string_value(json_object_get(j, "state")), want) ==
                 0;
            json_decref(j);
        }
        buf_cleanup(&h.body);
        if (ok) {
            return;
        }
        assert_true(clock_mono_ns() < until);
        e2e_sleep_ms(100);
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

/* ---- SQL checks ----------------------------------------------------------- */

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
    assert_string_equal(e2e_str_of(run, "state"), "finished");
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    assert_string_equal(e2e_str_of(run, "reference"), "abc123");
    assert_string_equal(e2e_str_of(test_of(run, "test_quick"), "result"),
                        "passed");
    /* The params reached the test: it saw "given" equal to "expect". */
    param = test_of(run, "test_param");
    assert_string_equal(e2e_str_of(param, "result"), "passed");
    assert_string_equal(
        e2e_str_of(json_object_get(
                       json_array_get(json_object_get(param, "attempts"), 0),
                       "values"),
                   "expect"),
        "v1");
    assert_string_equal(e2e_str_of(test_of(run, "test_sleep"), "result"),
                        "skipped");
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    assert_true(e2e_sql_count("SELECT count(*) FROM runs WHERE id = $1::bigint "
                              "AND state = 'finished' AND result = 'passed'",
                              idt) == 1);
    assert_true(
        e2e_sql_count("SELECT count(*) FROM test_results WHERE run_id = "
                      "$1::bigint",
                      idt) == 4);
    assert_true(
        e2e_sql_count("SELECT count(*) FROM job_attempts WHERE run_id = "
                      "$1::bigint AND state = 'done'",
                      idt) == 1);
    json_decref(run);
}

static void test_e2e_idempotency_key_returns_the_first_run(void **state)
{
    char key[96];
    char header[160];
    char body[256];
    struct e2e_http a;
    struct e2e_http b;
    json_t *ja;
    json_t *jb;

    (void)state;
    snprintf(key, sizeof(key), "deploy-%d-%" PRId64, (int)getpid(),
             clock_real_ns());
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    snprintf(body, sizeof(body),
             "{\"suite\":\"e2e\",\"pool\":\"%s\",\"run\":\"quick\"}", E2E.pool);
    a = e2e_request(E.url, "POST", "/api/v1/runs", body, header);
    b = e2e_request(E.url, "POST", "/api/v1/runs", body, header);
    assert_int_equal(a.status, 201);
    assert_int_equal(b.status, 200);
    ja = e2e_json_of(&a);
    jb = e2e_json_of(&b);
    assert_true(json_integer_value(json_object_get(ja, "id")) ==
                json_integer_value(json_object_get(jb, "id")));
    assert_true(
        e2e_sql_count("SELECT count(*) FROM runs WHERE idempotency_key = "
                      "$1",
                      key) == 1);
    json_decref(
        await_end(E.url, json_integer_value(json_object_get(ja, "id")), 60));
    json_decref(ja);
    json_decref(jb);
    buf_cleanup(&a.body);
    buf_cleanup(&b.body);
}

/* The body of a 201 is built from the request (store.c) and must equal the
 * stored run as every other endpoint renders it (handoff_run_json): a
 * repeat of the key returns that one. In a pool without workers the run
 * stays queued, so nothing changes between the two. */
static void test_e2e_created_body_equals_the_stored_run(void **state)
{
    char key[96];
    char header[160];
    char body[640];
    char path[96];
    struct e2e_http a;
    struct e2e_http b;
    struct e2e_http c;
    json_t *ja;
    json_t *jb;

    (void)state;
    snprintf(key, sizeof(key), "body-%d-%" PRId64, (int)getpid(),
             clock_real_ns());
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    snprintf(body, sizeof(body),
             "{\"suite\":\"e2e\",\"pool\":\"%s-empty\",\"run\":\"quick|"
             "param\",\"skip\":\"sleep\",\"params\":{\"b\":\"2\",\"a\":"
             "\"x\\\"y\"},\"initiated_by\":\"ci\",\"reference\":\"abc\","
             "\"environment\":\"staging\",\"max_attempts\":3,\"timeout\":"
             "\"90s\",\"test_timeout\":\"5s\",\"queue_timeout\":\"2m\","
             "\"count\":2,\"trigger\":\"cli\"}",
             E2E.pool);
    a = e2e_request(E.url, "POST", "/api/v1/runs", body, header);
    b = e2e_request(E.url, "POST", "/api/v1/runs", body, header);
    assert_int_equal(a.status, 201);
    assert_int_equal(b.status, 200);
    ja = e2e_json_of(&a);
    jb = e2e_json_of(&b);
    if (!json_equal(ja, jb)) {
        fail_msg("201 body %s\nstored run %s", buf_str(&a.body),
                 buf_str(&b.body));
    }
    assert_string_equal(e2e_str_of(ja, "state"), "queued");
    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64 "/cancel",
             (int64_t)json_integer_value(json_object_get(ja, "id")));
    c = e2e_request(E.url, "POST", path, NULL, NULL);
    assert_true(c.status == 200 || c.status == 202);
    json_decref(ja);
    json_decref(jb);
    buf_cleanup(&a.body);
    buf_cleanup(&b.body);
    buf_cleanup(&c.body);
}

static void test_e2e_list_filters_and_pages(void **state)
{
    int64_t ok = start_run(E.url, "\"run\":\"quick\"");
    int64_t bad =
        start_run(E.url, "\"run\":\"fails\",\"params\":{\"fail\":\"1\"}");
    struct e2e_http h;
    json_t *j;
    size_t i;
    json_t *r;
    bool saw_bad = false;

    (void)state;
    json_decref(await_end(E.url, ok, 60));
    json_decref(await_end(E.url, bad, 60));
    h = e2e_request(E.url, "GET", "/api/v1/runs?suite=e2e&result=failed", NULL,
                    NULL);
    assert_int_equal(h.status, 200);
    j = e2e_json_of(&h);
    json_array_foreach(json_object_get(j, "runs"), i, r)
    {
        int64_t id = json_integer_value(json_object_get(r, "id"));

        assert_true(id != ok);
        saw_bad = saw_bad || id == bad;
        assert_string_equal(e2e_str_of(r, "result"), "failed");
        assert_null(json_object_get(r, "tests")); /* no logs in lists */
    }
    assert_true(saw_bad);
    json_decref(j);
    buf_cleanup(&h.body);

    h = e2e_request(E.url, "GET", "/api/v1/runs?limit=1", NULL, NULL);
    j = e2e_json_of(&h);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 1);
    assert_true(json_is_string(json_object_get(j, "next_cursor")));
    {
        char path[128];
        struct e2e_http h2;
        json_t *j2;

        snprintf(path, sizeof(path), "/api/v1/runs?limit=1&cursor=%s",
                 json_string_value(json_object_get(j, "next_cursor")));
        h2 = e2e_request(E.url, "GET", path, NULL, NULL);
        j2 = e2e_json_of(&h2);
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
    int64_t before = e2e_sql_count("SELECT count(*) FROM runs", NULL);
    int64_t jobs_before = e2e_sql_count("SELECT count(*) FROM jobs", NULL);

    (void)state;
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct e2e_http h = e2e_request(E.url, cases[i].method, cases[i].path,
                                        cases[i].body, cases[i].header);
        json_t *j = e2e_json_of(&h);
        json_t *err = json_object_get(j, "error");

        if (h.status != cases[i].status ||
            strcmp(e2e_str_of(err, "code"), cases[i].code) != 0 ||
            !strstr(e2e_str_of(err, "message"), cases[i].message)) {
            fail_msg("%s %s: got %ld %s", cases[i].method, cases[i].path,
                     h.status, buf_str(&h.body));
        }
        json_decref(j);
        buf_cleanup(&h.body);
    }
    assert_true(e2e_sql_count("SELECT count(*) FROM runs", NULL) == before);
    assert_true(e2e_sql_count("SELECT count(*) FROM jobs", NULL) ==
                jobs_before);
}

/* A worker's hello as a worker of pool would send it, with suite
 * test/catalog holding the tests names (NULL-ended); kind "hello" or
 * "bye". */
static void announce(struct bus *b, const char *id, const char *pool,
                     const char *kind, const char *const *names)
{
    struct wire_test_info tests[4] = {{0}};
    struct wire_suite_info suite = {.name = (char *)"catalog",
                                    .ns = (char *)"test",
                                    .description = (char *)"",
                                    .tests = tests};
    struct wire_worker w = {.worker_id = (char *)id,
                            .host = (char *)"e2e",
                            .pool = (char *)pool,
                            .suites = &suite,
                            .n_suites = 1,
                            .slots = 1,
                            .free_slots = 1,
                            .version = (char *)"e2e"};
    char subject[256];
    struct buf msg;

    for (; names[suite.n_tests]; suite.n_tests++) {
        tests[suite.n_tests].name = (char *)names[suite.n_tests];
        tests[suite.n_tests].max_attempts = 1;
    }
    buf_init(&msg, 0);
    wire_worker_encode(&w, &msg);
    assert_int_equal(
        bus_publish(b, subjects_worker(id, kind, subject, sizeof(subject)),
                    msg.data, msg.len),
        0);
    buf_cleanup(&msg);
}

/* The entry of suite test/catalog for pool in GET /api/v1/suites's answer
 * root, or NULL. */
static json_t *catalog_entry(json_t *root, const char *pool)
{
    size_t i;
    json_t *s;

    json_array_foreach(json_object_get(root, "suites"), i, s)
    {
        if (strcmp(e2e_str_of(s, "name"), "catalog") == 0 &&
            strcmp(e2e_str_of(s, "pool"), pool) == 0) {
            return s;
        }
    }
    return NULL;
}

/* POSTs a run of test/catalog in pool with the run filter; returns the
 * status (and cancels a created run: no worker of these pools exists). */
static long post_catalog_run(const char *pool, const char *filter)
{
    char body[256];
    struct e2e_http h;
    long status;

    snprintf(body, sizeof(body),
             "{\"suite\":\"catalog\",\"namespace\":\"test\",\"pool\":"
             "\"%s\",\"run\":\"%s\"}",
             pool, filter);
    h = e2e_request(E.url, "POST", "/api/v1/runs", body, NULL);
    status = h.status;
    if (status == 201) {
        json_t *j = e2e_json_of(&h);
        char path[64];
        struct e2e_http c;

        snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64 "/cancel",
                 (int64_t)json_integer_value(json_object_get(j, "id")));
        c = e2e_request(E.url, "POST", path, NULL, NULL);
        assert_int_equal(c.status, 202);
        buf_cleanup(&c.body);
        json_decref(j);
    } else if (status != 400 || !strstr(buf_str(&h.body), "select no test")) {
        fail_msg("POST %s: %ld %s", body, status, buf_str(&h.body));
    }
    buf_cleanup(&h.body);
    return status;
}

/* Waits until pool's entry of test/catalog lists n tests. */
static void await_catalog_tests(const char *pool, int64_t n)
{
    int64_t until = clock_mono_ns() + 30 * CLOCK_NS_PER_S;
    char sql[160];

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM suites WHERE name = 'catalog' AND pool = "
             "$1 AND jsonb_array_length(tests) = %" PRId64,
             n);
    while (e2e_sql_count(sql, pool) != 1) {
        if (clock_mono_ns() > until) {
            e2e_print_logs();
            fail_msg("the catalog did not get %s's %" PRId64 " tests", pool, n);
        }
        e2e_sleep_ms(100);
    }
}

/* Two pools run different builds of one suite (staging has a test that
 * production has not yet): the catalog keeps an entry per pool, and a run
 * is checked against its own pool's build, whichever pool announced last.
 * A pool no worker of which has the suite falls back to the latest. */
static void test_e2e_catalog_keeps_each_pools_build(void **state)
{
    struct bus_config bc = {.url = getenv("HANDOFF_NATS_URL")};
    struct bus *b = NULL;
    char prod[96];
    char staging[96];
    char nowhere[96];
    struct e2e_http h;
    json_t *root;
    json_t *p;
    json_t *s;

    (void)state;
    snprintf(prod, sizeof(prod), "%s-prod", E2E.pool);
    snprintf(staging, sizeof(staging), "%s-staging", E2E.pool);
    snprintf(nowhere, sizeof(nowhere), "%s-nowhere", E2E.pool);
    assert_int_equal(bus_connect(&bc, &b), 0);
    /* Production first, staging after: staging's newer build must not
     * overwrite production's list, nor production's later one staging's. */
    announce(b, "catalog-prod", prod, "hello",
             (const char *const[]){"test_old", NULL});
    await_catalog_tests(prod, 1);
    announce(b, "catalog-staging", staging, "hello",
             (const char *const[]){"test_old", "test_new", NULL});
    await_catalog_tests(staging, 2);
    h = e2e_request(E.url, "GET", "/api/v1/suites", NULL, NULL);
    assert_int_equal(h.status, 200);
    root = e2e_json_of(&h);
    buf_cleanup(&h.body);
    p = catalog_entry(root, prod);
    s = catalog_entry(root, staging);
    assert_non_null(p);
    assert_non_null(s);
    assert_int_equal(json_array_size(json_object_get(p, "tests")), 1);
    assert_int_equal(json_array_size(json_object_get(s, "tests")), 2);
    assert_int_equal(json_array_size(json_object_get(p, "workers")), 1);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(p, "workers"), 0)),
        "catalog-prod");
    assert_int_equal(json_array_size(json_object_get(s, "workers")), 1);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(s, "workers"), 0)),
        "catalog-staging");
    json_decref(root);
    assert_int_equal(post_catalog_run(staging, "^test_new$"), 201);
    assert_int_equal(post_catalog_run(prod, "^test_new$"), 400);
    /* No worker of this pool has it: the latest seen (staging) decides. */
    assert_int_equal(post_catalog_run(nowhere, "^test_new$"), 201);

    /* Production moves on to a build of its own. */
    announce(b, "catalog-prod", prod, "hello",
             (const char *const[]){"test_old", "test_mid", NULL});
    await_catalog_tests(prod, 2);
    assert_int_equal(post_catalog_run(staging, "^test_new$"), 201);
    assert_int_equal(post_catalog_run(prod, "^test_new$"), 400);
    assert_int_equal(post_catalog_run(prod, "^test_mid$"), 201);
    assert_int_equal(post_catalog_run(nowhere, "^test_mid$"), 201);
    assert_int_equal(post_catalog_run(nowhere, "^test_new$"), 400);
    assert_int_equal(e2e_sql_count("SELECT count(*) FROM suites WHERE name = "
                                   "'catalog' AND namespace = $1",
                                   "test"),
                     2);

    announce(b, "catalog-prod", prod, "bye",
             (const char *const[]){"test_old", "test_mid", NULL});
    announce(b, "catalog-staging", staging, "bye",
             (const char *const[]){"test_old", "test_new", NULL});
    bus_free(b);
}

/* A run cancelled while its job waits in the queue is not run by a worker
 * that was not there to hear the cancel: workers replay the stored
 * cancels before they pull. The run queued after it, not cancelled, is
 * run by that worker (so it did pull the backlog). */
static void
test_e2e_late_worker_drops_a_run_cancelled_in_the_queue(void **state)
{
    char pool[96];
    char path[64];
    char idt[24];
    struct e2e_http h;
    int64_t cancelled;
    int64_t kept;
    json_t *run;

    (void)state;
    snprintf(pool, sizeof(pool), "%s-late", E2E.pool);
    cancelled = start_run_in(E.url, pool, "\"run\":\"quick\"");
    kept = start_run_in(E.url, pool, "\"run\":\"quick\"");
    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64 "/cancel", cancelled);
    h = e2e_request(E.url, "POST", path, NULL, NULL);
    assert_int_equal(h.status, 202);
    buf_cleanup(&h.body);

    e2e_start_worker("worker-late", 1,
                     (const char *const[]){"--pool", pool, NULL});
    run = await_end(E.url, kept, 60);
    assert_string_equal(e2e_str_of(run, "state"), "finished");
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    json_decref(run);
    snprintf(idt, sizeof(idt), "%" PRId64, cancelled);
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM job_attempts WHERE run_id = "
                      "$1::bigint",
                      idt),
        0);
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM test_results WHERE run_id = "
                      "$1::bigint",
                      idt),
        0);
    assert_int_equal(e2e_sql_count("SELECT count(*) FROM runs WHERE id = "
                                   "$1::bigint AND state = 'cancelled'",
                                   idt),
                     1);
    assert_int_equal(e2e_proc_stop(e2e_proc_named("worker-late"), SIGTERM), 0);
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
    struct e2e_http h;
    json_t *run;
    int64_t t0;

    (void)state;
    await_state(E.url, id, "running", 30);
    e2e_sleep_ms(300);
    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64 "/cancel", id);
    t0 = clock_mono_ns();
    h = e2e_request(E.url, "POST", path, "{\"reason\":\"deploy rolled back\"}",
                    NULL);
    assert_int_equal(h.status, 202);
    buf_cleanup(&h.body);
    run = await_end(E.url, id, 30);
    assert_true(clock_mono_ns() - t0 < 10 * CLOCK_NS_PER_S);
    assert_string_equal(e2e_str_of(run, "state"), "cancelled");
    assert_string_equal(e2e_str_of(run, "result"), "error");
    assert_non_null(strstr(e2e_str_of(run, "reason"), "deploy rolled back"));
    assert_non_null(strstr(
        e2e_str_of(
            json_array_get(
                json_object_get(test_of(run, "test_sleep"), "attempts"), 0),
            "reason"),
        "interrupted"));
    json_decref(run);
    h = e2e_request(E.url, "POST", path, NULL, NULL);
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
        run_ctl(E.url, (const char *[]){"run", "test/e2e", "--pool", E2E.pool,
                                        "--run", "quick", "--wait", NULL}),
        0);
    assert_int_equal(
        run_ctl(E.url,
                (const char *[]){"run", "test/e2e", "--pool", E2E.pool, "--run",
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
        struct e2e_http h = e2e_request(E.url, "GET", path, NULL, NULL);
        json_t *j = e2e_json_of(&h);
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
        e2e_sleep_ms(100);
    }
}

static void test_e2e_worker_killed_mid_test_job_goes_to_the_other(void **state)
{
    int64_t id = start_run(
        E.url, "\"run\":\"sleep\",\"params\":{\"sleep_ms\":\"3000\"}");
    char worker[64];
    struct e2e_proc *victim;
    json_t *run;
    json_t *lost;

    (void)state;
    await_state(E.url, id, "running", 30);
    job_worker(id, worker, sizeof(worker));
    victim = e2e_proc_named(worker);
    assert_non_null(victim);
    assert_int_equal(e2e_proc_stop(victim, SIGKILL), 128 + SIGKILL);
    run = await_end(E.url, id, 60);
    assert_string_equal(e2e_str_of(run, "state"), "finished");
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    /* Both attempts are visible: the lost one and the one that passed. */
    lost = json_object_get(run, "lost_attempts");
    assert_int_equal(json_array_size(lost), 1);
    assert_string_equal(e2e_str_of(json_array_get(lost, 0), "worker"), worker);
    assert_true(
        json_integer_value(json_object_get(
            json_array_get(json_object_get(run, "jobs"), 0), "attempts")) == 2);
    assert_string_not_equal(
        e2e_str_of(json_array_get(json_object_get(run, "jobs"), 0), "worker"),
        worker);
    json_decref(run);
    /* A replacement, so later tests have two workers again. */
    e2e_start_worker(strcmp(worker, "worker-a") == 0 ? "worker-a2"
                                                     : "worker-b2",
                     2, worker_args);
}

static void test_e2e_postgres_away_for_10s_loses_nothing(void **state)
{
    int64_t id = start_run(
        E.url, "\"run\":\"sleep\",\"params\":{\"sleep_ms\":\"2000\"}");
    char idt[32];
    json_t *run;

    (void)state;
    await_state(E.url, id, "running", 30);
    db_free(E2E.db);
    E2E.db = NULL;
    e2e_stack("stop-service", "postgres");
    e2e_sleep_ms(10000); /* the run ends meanwhile; its result waits in NATS */
    e2e_stack("start-service", "postgres");
    assert_int_equal(db_connect(E2E.dsn, &E2E.db), ST_OK);
    run = await_end(E.url, id, 60);
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    assert_true(
        e2e_sql_count("SELECT count(*) FROM job_attempts WHERE run_id = "
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
    e2e_stack("stop-service", "nats");
    e2e_sleep_ms(1500);
    e2e_stack("start-service", "nats");
    run = await_end(E.url, id, 60);
    assert_string_equal(e2e_str_of(run, "state"), "finished");
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    json_decref(run);
}

static void test_e2e_two_controllers_store_each_result_once(void **state)
{
    struct e2e_proc *second =
        e2e_start_controller("controller-2", ctl_env, E.url2, sizeof(E.url2));
    int64_t ids[10];
    int64_t until = clock_mono_ns() + 30 * CLOCK_NS_PER_S;
    char first[32];

    (void)state;
    for (;;) {
        struct e2e_http h = e2e_request(E.url2, "GET", "/readyz", NULL, NULL);
        long st = h.status;

        buf_cleanup(&h.body);
        if (st == 200) {
            break;
        }
        assert_true(clock_mono_ns() < until);
        e2e_sleep_ms(100);
    }
    for (int i = 0; i < 10; i++) {
        ids[i] = start_run(i % 2 ? E.url2 : E.url, "\"run\":\"quick|param\"");
    }
    for (int i = 0; i < 10; i++) {
        json_t *run = await_end(i % 2 ? E.url : E.url2, ids[i], 60);

        assert_string_equal(e2e_str_of(run, "state"), "finished");
        json_decref(run);
    }
    snprintf(first, sizeof(first), "%" PRId64, ids[0]);
    assert_true(
        e2e_sql_count("SELECT count(*) FROM job_attempts WHERE run_id >= "
                      "$1::bigint AND state = 'done'",
                      first) == 10);
    assert_true(
        e2e_sql_count("SELECT count(*) FROM test_results WHERE run_id >= "
                      "$1::bigint",
                      first) == 40);
    assert_int_equal(e2e_proc_stop(second, SIGTERM), 0);
}

/* ---- Set-up and teardown ----------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (e2e_setup("e2e", 0) != 0) {
        return -1;
    }
    e2e_start_controller("controller-1", ctl_env, E.url, sizeof(E.url));
    e2e_start_worker("worker-a", 2, worker_args);
    e2e_start_worker("worker-b", 2, worker_args);
    /* Ready when the schema exists and both workers announced e2e. */
    return e2e_await_ready(E.url,
                           (const char *const[]){"worker-a", "worker-b", NULL});
}

static int group_teardown(void **state)
{
    (void)state;
    return e2e_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2e_run_over_the_api_is_stored_in_postgres),
        cmocka_unit_test(test_e2e_idempotency_key_returns_the_first_run),
        cmocka_unit_test(test_e2e_created_body_equals_the_stored_run),
        cmocka_unit_test(test_e2e_list_filters_and_pages),
        cmocka_unit_test(test_e2e_bad_inputs_get_4xx_and_leave_no_row),
        cmocka_unit_test(test_e2e_catalog_keeps_each_pools_build),
        cmocka_unit_test(
            test_e2e_late_worker_drops_a_run_cancelled_in_the_queue),
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
