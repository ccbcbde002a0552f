/* A suite's history end to end (docs/api.md): flaky tests over the last
 * runs of a suite, retention policies applied by the janitor, and soak
 * series driven by both replicas, against the real nats-server,
 * PostgreSQL and Redis of deploy/stack.sh. Two controller replicas (the
 * janitor works on one at a time) and one worker.
 *
 * Needs HANDOFF_NATS_URL, HANDOFF_PG_DSN, HANDOFF_REDIS_URL and
 * HANDOFF_STACK_DIR (tests/run.sh sets them). The test makes a database
 * and a worker pool of its own and removes everything at the end. */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "clock.h"
#include "db.h"
#include "e2e.h"

#define N_CTL 2

static struct {
    char url[N_CTL][96];
} E;

/* The flaky gauge and the janitor on short intervals, the janitor in
 * batches of 2 runs so a pass takes several. */
static const char *const ctl_env[] = {
    "HANDOFF_FLAKY_GAUGE_INTERVAL=300ms", "HANDOFF_RETENTION_INTERVAL=300ms",
    "HANDOFF_RETENTION_BATCH=2", "HANDOFF_RETENTION_PAUSE=10ms", NULL};

/* ---- Runs ----------------------------------------------------------------- */

/* Starts a run of suite in pool: namespace test, but hist for the suite
 * retry; extra is more JSON fields or NULL. Returns its id. */
static int64_t start_run_in(const char *pool, const char *suite,
                            const char *extra)
{
    char body[2048];
    struct e2e_http h;
    json_t *j;
    int64_t id;

    snprintf(body, sizeof(body),
             "{\"suite\":\"%s\",\"namespace\":\"%s\",\"pool\":\"%s\"%s%s}",
             suite, strcmp(suite, "retry") == 0 ? "hist" : "test", pool,
             extra ? "," : "", extra ? extra : "");
    h = e2e_request(E.url[0], "POST", "/api/v1/runs", body, NULL);
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

static int64_t start_run(const char *suite, const char *extra)
{
    return start_run_in(E2E.pool, suite, extra);
}

/* Polls until run id has ended; returns its result. */
static void await_end(int64_t id, char *result, size_t len)
{
    int64_t until = clock_mono_ns() + 60 * CLOCK_NS_PER_S;
    char path[64];

    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64, id);
    for (;;) {
        struct e2e_http h = e2e_request(E.url[0], "GET", path, NULL, NULL);
        bool ended = false;

        if (h.status == 200) {
            json_t *j = e2e_json_of(&h);
            const char *state = json_string_value(json_object_get(j, "state"));
            const char *r = json_string_value(json_object_get(j, "result"));

            ended = state && strcmp(state, "queued") != 0 &&
                    strcmp(state, "running") != 0;
            if (ended) {
                snprintf(result, len, "%s", r ? r : "");
            }
            json_decref(j);
        }
        buf_cleanup(&h.body);
        if (ended) {
            return;
        }
        if (clock_mono_ns() > until) {
            e2e_print_logs();
            fail_msg("run %" PRId64 " did not end within 60 s", id);
        }
        e2e_sleep_ms(100);
    }
}

static int64_t run_to_end(const char *suite, const char *extra,
                          const char *want)
{
    char result[32];
    int64_t id = start_run(suite, extra);

    await_end(id, result, sizeof(result));
    assert_string_equal(result, want);
    return id;
}

static json_t *get_json(const char *path, long want_status)
{
    struct e2e_http h = e2e_request(E.url[1], "GET", path, NULL, NULL);
    json_t *j;

    if (h.status != want_status) {
        fail_msg("GET %s: %ld %s (want %ld)", path, h.status, buf_str(&h.body),
                 want_status);
    }
    j = e2e_json_of(&h);
    buf_cleanup(&h.body);
    return j;
}

static void expect_refused(const char *method, const char *path,
                           const char *body, long status, const char *says)
{
    struct e2e_http h = e2e_request(E.url[1], method, path, body, NULL);

    if (h.status != status || !strstr(buf_str(&h.body), says)) {
        fail_msg("%s %s %s: %ld %s (want %ld and \"%s\")", method, path,
                 body ? body : "", h.status, buf_str(&h.body), status, says);
    }
    buf_cleanup(&h.body);
}

/* The entry of test name in a flaky answer, or NULL. */
static json_t *flaky_test(json_t *answer, const char *name)
{
    size_t i;
    json_t *t;

    json_array_foreach(json_object_get(answer, "tests"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) {
            return t;
        }
    }
    return NULL;
}

static int64_t int_of(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* Polls /metrics until it holds line. */
static void await_metric(const char *line)
{
    int64_t until = clock_mono_ns() + 20 * CLOCK_NS_PER_S;

    for (;;) {
        struct e2e_http h =
            e2e_request(E.url[0], "GET", "/metrics", NULL, NULL);
        bool found = h.status == 200 && strstr(buf_str(&h.body), line);

        if (found) {
            buf_cleanup(&h.body);
            return;
        }
        if (clock_mono_ns() > until) {
            fail_msg("no \"%s\" in /metrics:\n%s", line, buf_str(&h.body));
        }
        buf_cleanup(&h.body);
        e2e_sleep_ms(200);
    }
}

/* ---- Flaky tests ------------------------------------------------------------ */

static void
test_e2e_flaky_lists_tests_that_passed_and_failed_with_evidence(void **state)
{
    int64_t ids[4];
    json_t *j;
    json_t *t;
    json_t *runs;

    (void)state;
    ids[0] = run_to_end("e2e", "\"run\":\"^test_fails$\"", "passed");
    ids[1] = run_to_end("e2e",
                        "\"run\":\"^test_fails$\",\"params\":{\"fail\":\"1\"}",
                        "failed");
    ids[2] = run_to_end("e2e", "\"run\":\"^test_fails$\"", "passed");
    /* A test that always passes is never flaky. */
    ids[3] = run_to_end("e2e", "\"run\":\"^test_quick$\"", "passed");
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM runs WHERE suite = $1", "e2e"), 4);

    j = get_json("/api/v1/suites/e2e/flaky", 200);
    assert_string_equal(e2e_str_of(j, "namespace"), "test");
    assert_int_equal(int_of(j, "window"), 20);
    assert_int_equal(int_of(j, "runs"), 4);
    assert_int_equal(json_array_size(json_object_get(j, "tests")), 1);
    t = flaky_test(j, "test_fails");
    assert_non_null(t);
    assert_int_equal(int_of(t, "passed_runs"), 2);
    assert_int_equal(int_of(t, "failed_runs"), 1);
    assert_int_equal(int_of(t, "flaky_runs"), 0);
    runs = json_object_get(t, "runs");
    assert_int_equal(json_array_size(runs), 3);
    /* Newest first, each with the test's result there and its attempts. */
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_array_get(runs, i);
        json_t *a = json_array_get(json_object_get(r, "attempts"), 0);
        const char *want = i == 1 ? "failed" : "passed";

        assert_int_equal(int_of(r, "id"), ids[2 - i]);
        assert_string_equal(e2e_str_of(r, "result"), want);
        assert_true(strlen(e2e_str_of(r, "created_at")) == 24);
        assert_string_equal(e2e_str_of(a, "result"), want);
        assert_int_equal(int_of(a, "attempt"), 1);
    }
    json_decref(j);

    /* The last run alone holds no flaky test; the last two do. */
    j = get_json("/api/v1/suites/e2e/flaky?window=1&namespace=test", 200);
    assert_int_equal(int_of(j, "runs"), 1);
    assert_int_equal(json_array_size(json_object_get(j, "tests")), 0);
    json_decref(j);
    j = get_json("/api/v1/suites/e2e/flaky?window=3", 200);
    t = flaky_test(j, "test_fails");
    assert_non_null(t);
    assert_int_equal(json_array_size(json_object_get(t, "runs")), 2);
    json_decref(j);

    await_metric("handoff_tests_flaky{namespace=\"test\",suite_name=\"e2e\"} "
                 "1");
}

static void
test_e2e_flaky_lists_a_test_that_failed_then_passed_in_a_run(void **state)
{
    int64_t id;
    json_t *j;
    json_t *t;
    json_t *r;
    json_t *attempts;

    (void)state;
    id = run_to_end("retry", "\"max_attempts\":2", "passed");
    j = get_json("/api/v1/suites/retry/flaky?namespace=hist", 200);
    t = flaky_test(j, "test_first_attempt_fails");
    assert_non_null(t);
    assert_int_equal(int_of(t, "passed_runs"), 1);
    assert_int_equal(int_of(t, "failed_runs"), 0);
    assert_int_equal(int_of(t, "flaky_runs"), 1);
    r = json_array_get(json_object_get(t, "runs"), 0);
    assert_int_equal(int_of(r, "id"), id);
    assert_true(json_is_true(json_object_get(r, "flaky")));
    attempts = json_object_get(r, "attempts");
    assert_int_equal(json_array_size(attempts), 2);
    assert_string_equal(e2e_str_of(json_array_get(attempts, 0), "result"),
                        "failed");
    assert_string_equal(e2e_str_of(json_array_get(attempts, 1), "result"),
                        "passed");
    assert_int_equal(int_of(json_array_get(attempts, 1), "attempt"), 2);
    json_decref(j);
    await_metric("handoff_tests_flaky{namespace=\"hist\",suite_name=\"retry\"} "
                 "1");
}

static void test_e2e_flaky_refuses_bad_requests(void **state)
{
    (void)state;
    expect_refused("GET", "/api/v1/suites/e2e/flaky?window=0", NULL, 400,
                   "window");
    expect_refused("GET", "/api/v1/suites/e2e/flaky?window=abc", NULL, 400,
                   "window");
    expect_refused("GET", "/api/v1/suites/e2e/flaky?window=1001", NULL, 400,
                   "1000");
    expect_refused("GET", "/api/v1/suites/e2x/flaky", NULL, 404, "test/e2e");
    expect_refused("GET", "/api/v1/suites/e2e/flaky?namespace=nope", NULL, 404,
                   "unknown suite");
}

/* ---- Retention ------------------------------------------------------------- */

static void exec_sql(const char *sql)
{
    assert_int_equal(db_exec(E2E.db, sql, 0, NULL, NULL), ST_OK);
}

/* Sum over the controllers of the series named exactly series. */
static int64_t metric_sum(const char *series)
{
    int64_t sum = 0;

    for (int i = 0; i < N_CTL; i++) {
        struct e2e_http h =
            e2e_request(E.url[i], "GET", "/metrics", NULL, NULL);
        const char *p = strstr(buf_str(&h.body), series);

        if (p) {
            sum += strtoll(p + strlen(series) + 1, NULL, 10);
        }
        buf_cleanup(&h.body);
    }
    return sum;
}

static void put_policy(const char *body, long want)
{
    struct e2e_http h =
        e2e_request(E.url[0], "PUT", "/api/v1/retention", body, NULL);

    if (h.status != want) {
        fail_msg("PUT %s: %ld %s (want %ld)", body, h.status, buf_str(&h.body),
                 want);
    }
    buf_cleanup(&h.body);
}

#define ROWS_OF(table, set)                                                    \
    "SELECT count(*) FROM " table " WHERE run_id IN (SELECT id FROM " set ")"

static void
test_e2e_retention_deletes_what_the_policies_say_and_nothing_else(void **state)
{
    static const char *const tables[] = {"jobs", "job_attempts",
                                         "test_results"};
    static const char *const kinds[] = {"jobs", "job_attempts", "test_results"};
    char nowhere[96];
    char sql[512];
    int64_t doomed_rows[3];
    int64_t kept_rows[3];
    int64_t n_doomed;
    int64_t n_kept;
    int64_t until;
    int64_t queued;
    json_t *j;

    (void)state;
    /* Besides the runs of the tests above: test/e2e has 4, hist/retry 1. */
    run_to_end("retry", "\"max_attempts\":2", "passed");
    run_to_end("retry", "\"max_attempts\":2", "passed");
    run_to_end("noop20", NULL, "passed");
    run_to_end("noop20", NULL, "passed");
    /* Queued for good: no worker serves this pool. */
    snprintf(nowhere, sizeof(nowhere), "%s-nowhere", E2E.pool);
    queued = start_run_in(nowhere, "noop20", NULL);

    /* hist/retry: max_age 1h, two runs 2 h old. The default: 30 days, one
     * finished noop20 run and the queued one 40 days old. test/e2e: the
     * suite's own max_runs 2 (not its namespace's or the default). */
    exec_sql("UPDATE runs SET created_at = created_at - interval '2 hours' "
             "WHERE id IN (SELECT id FROM runs WHERE suite = 'retry' ORDER "
             "BY id LIMIT 2)");
    /* The queued one keeps 41 days of queue time, so it is still queued
     * as it would be: otherwise the sweeper could time it out (and the
     * 30-day policy then rightly delete it) before the janitor's pass
     * this test checks. One statement: no sweep in between. */
    exec_sql("UPDATE runs SET created_at = created_at - interval '40 days', "
             "queue_timeout_ms = CASE WHEN state = 'queued' THEN 41 * 86400 * "
             "1000::bigint ELSE queue_timeout_ms END "
             "WHERE id IN (SELECT min(id) FROM runs WHERE suite = 'noop20') "
             "OR state = 'queued'");
    exec_sql("UPDATE runs SET created_at = created_at - interval '40 days' "
             "WHERE suite = 'e2e' AND id = (SELECT max(id) FROM runs WHERE "
             "suite = 'e2e')");
    exec_sql("CREATE TABLE doomed AS SELECT id FROM runs WHERE "
             "(suite = 'retry' AND created_at < now() - interval '1 hour') OR "
             "(suite = 'noop20' AND state <> 'queued' AND created_at < now() - "
             "interval '30 days') OR (suite = 'e2e' AND id < (SELECT id FROM "
             "runs WHERE suite = 'e2e' ORDER BY id DESC OFFSET 1 LIMIT 1))");
    exec_sql("CREATE TABLE kept AS SELECT id FROM runs WHERE id NOT IN "
             "(SELECT id FROM doomed)");
    n_doomed = e2e_sql_count("SELECT count(*) FROM doomed", NULL);
    n_kept = e2e_sql_count("SELECT count(*) FROM kept", NULL);
    assert_int_equal(n_doomed, 2 + 2 + 1);
    assert_int_equal(n_kept, 2 + 1 + 2);
    for (int i = 0; i < 3; i++) {
        snprintf(sql, sizeof(sql), ROWS_OF("%s", "doomed"), tables[i]);
        doomed_rows[i] = e2e_sql_count(sql, NULL);
        snprintf(sql, sizeof(sql), ROWS_OF("%s", "kept"), tables[i]);
        kept_rows[i] = e2e_sql_count(sql, NULL);
        assert_true(doomed_rows[i] >= n_doomed);
    }
    /* A schedule tick that fired a doomed run keeps its row. */
    exec_sql("INSERT INTO schedules (name, suite, namespace, expression, "
             "enabled) VALUES ('hist', 'e2e', 'test', '@every 1h', false)");
    exec_sql("INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, "
             "run_id) SELECT s.id, now(), 'fired', (SELECT min(id) FROM "
             "doomed) FROM schedules s WHERE s.name = 'hist'");

    put_policy("{\"namespace\":\"test\",\"suite\":\"e2e\",\"max_runs\":5}",
               201);
    put_policy("{\"namespace\":\"test\",\"suite\":\"e2e\",\"max_runs\":2}",
               200);
    put_policy("{\"namespace\":\"hist\",\"max_age\":\"1h\"}", 201);
    put_policy("{\"namespace\":\"other\",\"max_runs\":1}", 201);
    put_policy("{\"max_age\":\"30d\"}", 201);

    until = clock_mono_ns() + 30 * CLOCK_NS_PER_S;
    while (
        e2e_sql_count("SELECT count(*) FROM runs WHERE id IN (SELECT id FROM "
                      "doomed)",
                      NULL) > 0 ||
        metric_sum("handoff_retention_deleted_total{kind=\"runs\"}") <
            n_doomed) {
        if (clock_mono_ns() > until) {
            e2e_print_logs();
            fail_msg("the janitor did not delete the expired runs in 30 s");
        }
        e2e_sleep_ms(100);
    }
    /* Exactly those: every other run with all its rows is there. */
    assert_int_equal(
        e2e_sql_count(
            "SELECT count(*) FROM runs WHERE id IN (SELECT id FROM kept)",
            NULL),
        n_kept);
    assert_int_equal(e2e_sql_count("SELECT count(*) FROM runs", NULL), n_kept);
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM runs WHERE id = $1",
                      (snprintf(sql, sizeof(sql), "%" PRId64, queued), sql)),
        1);
    for (int i = 0; i < 3; i++) {
        char series[128];

        snprintf(sql, sizeof(sql), ROWS_OF("%s", "doomed"), tables[i]);
        assert_int_equal(e2e_sql_count(sql, NULL), 0);
        snprintf(sql, sizeof(sql), ROWS_OF("%s", "kept"), tables[i]);
        assert_int_equal(e2e_sql_count(sql, NULL), kept_rows[i]);
        snprintf(series, sizeof(series),
                 "handoff_retention_deleted_total{kind=\"%s\"}", kinds[i]);
        assert_int_equal(metric_sum(series), doomed_rows[i]);
    }
    assert_int_equal(metric_sum("handoff_retention_deleted_total{kind="
                                "\"runs\"}"),
                     n_doomed);
    assert_int_equal(e2e_sql_count("SELECT count(*) FROM schedule_ticks WHERE "
                                   "run_id IS NULL",
                                   NULL),
                     1);

    /* The policies as the API lists them, and deleting one. */
    j = get_json("/api/v1/retention", 200);
    assert_int_equal(json_array_size(json_object_get(j, "policies")), 4);
    assert_string_equal(
        e2e_str_of(json_array_get(json_object_get(j, "policies"), 0), "scope"),
        "default");
    json_decref(j);
    {
        struct e2e_http h = e2e_request(
            E.url[0], "DELETE", "/api/v1/retention?namespace=hist", NULL, NULL);

        assert_int_equal(h.status, 200);
        buf_cleanup(&h.body);
    }
    expect_refused("DELETE", "/api/v1/retention?namespace=hist", NULL, 404,
                   "no retention policy");
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM retention_policies", NULL), 3);
    exec_sql("DROP TABLE doomed");
    exec_sql("DROP TABLE kept");
    /* The tests below keep their runs. */
    exec_sql("DELETE FROM retention_policies");
}

static void
test_e2e_retention_refuses_bad_policies_and_changes_nothing(void **state)
{
    static const struct {
        const char *body;
        const char *says;
    } bad[] = {
        {"", "not valid JSON"},
        {"[1]", "JSON object"},
        {"{\"max_runs\":2,", "not valid JSON"},
        {"{}", "a policy needs"},
        {"{\"namespace\":\"test\"}", "needs"},
        {"{\"max_runs\":0}", "max_runs"},
        {"{\"max_runs\":\"2\"}", "max_runs"},
        {"{\"max_runs\":1e3}", "max_runs"},
        {"{\"max_age\":\"abc\"}", "max_age"},
        {"{\"max_age\":\"0s\"}", "max_age"},
        {"{\"max_age\":\"-1h\"}", "max_age"},
        {"{\"max_age\":\"99999999d\"}", "max_age"},
        {"{\"max_age\":5}", "max_age"},
        {"{\"suite\":\"e2e\",\"max_runs\":2}", "needs \\\"namespace"},
        {"{\"namespace\":\"\",\"max_runs\":2}", "namespace"},
        {"{\"namespace\":7,\"max_runs\":2}", "namespace"},
        {"{\"max_runs\":2,\"keep\":1}", "unknown field \\\"keep"},
    };
    int64_t before =
        e2e_sql_count("SELECT count(*) FROM retention_policies", NULL);

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused("PUT", "/api/v1/retention", bad[i].body, 400,
                       bad[i].says);
    }
    expect_refused("DELETE", "/api/v1/retention?suite=e2e", NULL, 400,
                   "needs namespace");
    expect_refused("DELETE", "/api/v1/retention?namespace=nope", NULL, 404,
                   "no retention policy");
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM retention_policies", NULL), before);
}

/* ---- Series ------------------------------------------------------------- */

/* POSTs a series of suite e2e in the test's pool; returns its id. */
static int64_t create_series(const char *extra)
{
    char body[2048];
    struct e2e_http h;
    json_t *j;
    int64_t id;

    snprintf(body, sizeof(body),
             "{\"suite\":\"e2e\",\"namespace\":\"test\",\"pool\":\"%s\",%s}",
             E2E.pool, extra);
    h = e2e_request(E.url[0], "POST", "/api/v1/series", body, NULL);
    if (h.status != 201 || strncmp(h.location, "/api/v1/series/", 15) != 0) {
        fail_msg("POST %s: %ld %s", body, h.status, buf_str(&h.body));
    }
    j = e2e_json_of(&h);
    id = int_of(j, "id");
    assert_true(id > 0);
    assert_string_equal(e2e_str_of(j, "state"), "running");
    json_decref(j);
    buf_cleanup(&h.body);
    return id;
}

/* Polls until series id is no longer running; returns it (caller frees). */
static json_t *await_series(int64_t id, int timeout_s)
{
    int64_t until = clock_mono_ns() + timeout_s * CLOCK_NS_PER_S;
    char path[64];

    snprintf(path, sizeof(path), "/api/v1/series/%" PRId64, id);
    for (;;) {
        json_t *j = get_json(path, 200);

        if (strcmp(e2e_str_of(j, "state"), "running") != 0) {
            return j;
        }
        json_decref(j);
        if (clock_mono_ns() > until) {
            e2e_print_logs();
            fail_msg("series %" PRId64 " did not end within %d s", id,
                     timeout_s);
        }
        e2e_sleep_ms(100);
    }
}

static int64_t series_count(int64_t id, const char *cond)
{
    char sql[512];
    char arg[24];

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM runs WHERE series_id = $1::bigint%s%s",
             cond ? " AND " : "", cond ? cond : "");
    snprintf(arg, sizeof(arg), "%" PRId64, id);
    return e2e_sql_count(sql, arg);
}

/* Runs of a series that started before the previous one ended plus the
 * pause: none, or two were active at once. */
static int64_t series_overlaps(int64_t id, const char *pause)
{
    char sql[512];
    char arg[24];

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM runs a JOIN runs b ON b.series_id = "
             "a.series_id AND b.id > a.id WHERE a.series_id = $1::bigint AND "
             "b.created_at < a.finished_at + interval '%s'",
             pause);
    snprintf(arg, sizeof(arg), "%" PRId64, id);
    return e2e_sql_count(sql, arg);
}

static void test_e2e_series_repeats_n_times_one_run_at_a_time(void **state)
{
    int64_t id;
    json_t *j;
    json_t *sum;
    json_t *runs;

    (void)state;
    id = create_series("\"run\":\"^test_quick$\",\"repeat\":3,"
                       "\"pause\":\"200ms\"");
    j = await_series(id, 60);
    assert_string_equal(e2e_str_of(j, "state"), "finished");
    assert_string_equal(e2e_str_of(j, "stop_reason"), "repeat");
    assert_int_equal(int_of(j, "runs_started"), 3);
    sum = json_object_get(j, "summary");
    assert_int_equal(int_of(sum, "runs"), 3);
    assert_int_equal(int_of(sum, "passed"), 3);
    assert_int_equal(int_of(sum, "failed"), 0);
    assert_int_equal(int_of(sum, "active"), 0);
    runs = json_object_get(j, "runs");
    assert_int_equal(json_array_size(runs), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(e2e_str_of(json_array_get(runs, i), "result"),
                            "passed");
    }
    json_decref(j);
    /* Two replicas drive it: each run started once, one at a time. */
    assert_int_equal(series_count(id, NULL), 3);
    assert_int_equal(series_overlaps(id, "200 ms"), 0);
}

static void
test_e2e_series_until_failure_stops_at_the_first_failure(void **state)
{
    int64_t id;
    json_t *j;
    json_t *sum;

    (void)state;
    id = create_series("\"run\":\"^test_fails$\",\"params\":{\"fail\":\"1\"},"
                       "\"until_failure\":true,\"pause\":\"100ms\"");
    j = await_series(id, 60);
    assert_string_equal(e2e_str_of(j, "stop_reason"), "failure");
    /* No repeat given: the default cap. */
    assert_int_equal(int_of(j, "repeat"), 1000);
    sum = json_object_get(j, "summary");
    assert_int_equal(int_of(sum, "runs"), 1);
    assert_int_equal(int_of(sum, "failed"), 1);
    assert_int_equal(
        int_of(sum, "first_failure"),
        int_of(json_array_get(json_object_get(j, "runs"), 0), "id"));
    json_decref(j);
    assert_int_equal(series_count(id, NULL), 1);
}

static void test_e2e_series_for_a_duration_ends_after_it(void **state)
{
    int64_t id;
    json_t *j;

    (void)state;
    id = create_series("\"run\":\"^test_quick$\",\"duration\":\"2s\","
                       "\"pause\":\"300ms\"");
    j = await_series(id, 60);
    assert_string_equal(e2e_str_of(j, "stop_reason"), "duration");
    assert_true(int_of(j, "runs_started") >= 2);
    assert_int_equal(int_of(json_object_get(j, "summary"), "runs"),
                     int_of(j, "runs_started"));
    assert_true(int_of(json_object_get(j, "summary"), "duration_ms") >= 2000);
    json_decref(j);
    assert_int_equal(series_overlaps(id, "300 ms"), 0);
    assert_int_equal(series_count(id, "result = 'passed'"),
                     series_count(id, NULL));
}

static void test_e2e_series_cancel_and_bad_requests(void **state)
{
    static const struct {
        const char *body;
        long status;
        const char *says;
    } bad[] = {
        {"", 400, "JSON object"},
        {"{\"suite\":\"e2e\"}", 400, "a series needs"},
        {"{\"suite\":\"e2e\",\"repeat\":0}", 400, "repeat"},
        {"{\"suite\":\"e2e\",\"repeat\":10001}", 400, "repeat"},
        {"{\"suite\":\"e2e\",\"repeat\":2,\"pause\":\"abc\"}", 400, "pause"},
        {"{\"suite\":\"e2e\",\"duration\":\"10ms\"}", 400, "duration"},
        {"{\"suite\":\"e2e\",\"until_failure\":\"yes\"}", 400, "until_failure"},
        {"{\"suite\":\"e2e\",\"repeat\":2,\"bogus\":1}", 400, "bogus"},
        {"{\"repeat\":2}", 400, "suite"},
        {"{\"suite\":\"e2x\",\"repeat\":2}", 404, "test/e2e"},
        {"{\"suite\":\"e2e\",\"repeat\":2,\"run\":\"^nothing$\"}", 400,
         "select no test"},
    };
    int64_t before = e2e_sql_count("SELECT count(*) FROM series", NULL);
    char path[96];
    int64_t id;
    struct e2e_http h;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused("POST", "/api/v1/series", bad[i].body, bad[i].status,
                       bad[i].says);
    }
    expect_refused("GET", "/api/v1/series/abc", NULL, 404, "no series");
    expect_refused("GET", "/api/v1/series/999999", NULL, 404, "no series");
    expect_refused("POST", "/api/v1/series/999999/cancel", NULL, 404,
                   "no series");
    assert_int_equal(e2e_sql_count("SELECT count(*) FROM series", NULL),
                     before);

    id = create_series("\"run\":\"^test_quick$\",\"repeat\":1000,"
                       "\"pause\":\"1h\"");
    snprintf(path, sizeof(path), "/api/v1/series/%" PRId64 "/cancel", id);
    h = e2e_request(E.url[1], "POST", path, NULL, NULL);
    assert_int_equal(h.status, 200);
    assert_non_null(strstr(buf_str(&h.body), "\"cancelled\""));
    buf_cleanup(&h.body);
    expect_refused("POST", path, NULL, 409, "has ended");
    assert_true(series_count(id, NULL) <= 1);
    {
        json_t *j = get_json("/api/v1/series", 200);

        assert_true(json_array_size(json_object_get(j, "series")) >= 4);
        json_decref(j);
    }
}

/* ---- Set-up and teardown ----------------------------------------------- */

static int group_setup(void **state)
{
    char name[32];

    (void)state;
    if (e2e_setup("hist", 1) != 0) {
        return -1;
    }
    for (int i = 0; i < N_CTL; i++) {
        snprintf(name, sizeof(name), "controller-%d", i + 1);
        e2e_start_controller(name, ctl_env, E.url[i], sizeof(E.url[i]));
    }
    e2e_start_worker("worker-a", 4, NULL);
    if (e2e_await_ready(E.url[0], (const char *const[]){"worker-a", NULL}) !=
        0) {
        return -1;
    }
    for (int i = 1; i < N_CTL; i++) {
        if (e2e_await_ready(E.url[i], NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return e2e_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_e2e_flaky_lists_tests_that_passed_and_failed_with_evidence),
        cmocka_unit_test(
            test_e2e_flaky_lists_a_test_that_failed_then_passed_in_a_run),
        cmocka_unit_test(test_e2e_flaky_refuses_bad_requests),
        cmocka_unit_test(
            test_e2e_retention_deletes_what_the_policies_say_and_nothing_else),
        cmocka_unit_test(
            test_e2e_retention_refuses_bad_policies_and_changes_nothing),
        cmocka_unit_test(test_e2e_series_repeats_n_times_one_run_at_a_time),
        cmocka_unit_test(
            test_e2e_series_until_failure_stops_at_the_first_failure),
        cmocka_unit_test(test_e2e_series_for_a_duration_ends_after_it),
        cmocka_unit_test(test_e2e_series_cancel_and_bad_requests),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
