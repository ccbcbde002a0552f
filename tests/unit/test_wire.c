/* Wire messages: round trips of every message, and decoding of untrusted
 * bytes (truncated, corrupted, out-of-range, invalid UTF-8) never crashes,
 * never half-fills, never leaks. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

static void test_wire_job_round_trips(void **state)
{
    struct result_kv params[2] = {{(char *)"base_url", (char *)"http://x"},
                                  {(char *)"env", (char *)"stage"}};
    struct wire_job j = {.job_id = (char *)"42.0",
                         .run_id = 42,
                         .suite = (char *)"selftest",
                         .ns = (char *)"handoff",
                         .params = params,
                         .n_params = 2,
                         .run_filter = (char *)"pass|flaky",
                         .skip_filter = NULL,
                         .max_attempts = 3,
                         .timeout_ms = 60000,
                         .test_timeout_ms = 5000,
                         .created_unix_ms = 1700000000000,
                         .count = 2,
                         .shards = 1,
                         .not_after_unix_ms = 1700000600000};
    struct wire_job d;
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    wire_job_encode(&j, &b);
    assert_int_equal(wire_job_decode(b.data, b.len, &d), ST_OK);
    assert_string_equal(d.job_id, "42.0");
    assert_true(d.run_id == 42);
    assert_string_equal(d.suite, "selftest");
    assert_string_equal(d.ns, "handoff");
    assert_int_equal(d.n_params, 2);
    assert_string_equal(result_kv_get(d.params, d.n_params, "env"), "stage");
    assert_string_equal(d.run_filter, "pass|flaky");
    assert_string_equal(d.skip_filter, "");
    assert_int_equal(d.max_attempts, 3);
    assert_true(d.test_timeout_ms == 5000);
    assert_int_equal(d.count, 2);
    assert_true(d.not_after_unix_ms == 1700000600000);
    wire_job_cleanup(&d);
    buf_cleanup(&b);
}

static void test_wire_job_rejects_missing_and_out_of_range_fields(void **state)
{
    struct wire_job bad[] = {
        {.job_id = (char *)"", .run_id = 1, .suite = (char *)"s"},
        {.job_id = (char *)"1.0", .run_id = 0, .suite = (char *)"s"},
        {.job_id = (char *)"1.0", .run_id = 1, .suite = (char *)""},
        {.job_id = (char *)"1.0",
         .run_id = 1,
         .suite = (char *)"s",
         .max_attempts = 1000},
        {.job_id = (char *)"1.0",
         .run_id = 1,
         .suite = (char *)"s",
         .timeout_ms = -1},
    };
    struct wire_job d;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf b;

        buf_init(&b, 0);
        wire_job_encode(&bad[i], &b);
        assert_int_equal(wire_job_decode(b.data, b.len, &d), ST_PROTOCOL);
        buf_cleanup(&b);
    }
}

static void build_result(struct result_suite *s)
{
    struct result_test *t;
    struct result_attempt *a;
    struct result_span *sp;

    result_suite_init(s, "orders", "payments");
    s->result = RESULT_FAILED;
    s->reason = strdup("suite timed out after 1m");
    s->start_unix_ns = 1000;
    s->duration_ns = 2000;
    buf_adds(&s->log, "run log\n");
    s->setup.ran = true;
    s->setup.result = RESULT_PASSED;
    buf_adds(&s->setup.log, "setup log\n");
    t = result_suite_add_test(s, "test_a");
    a = result_test_add_attempt(t, 0);
    a->result = RESULT_FAILED;
    a->soft_failure = true;
    a->duration_ns = 5;
    buf_adds(&a->log, "bad \xff byte\n");
    a->log_dropped = 7;
    result_kv_set(&a->values, &a->n_values, "request_id", "r-1");
    sp = result_attempt_add_span(a, "login", 99);
    sp->duration_ns = 12;
    result_kv_set(&sp->attrs, &sp->n_attrs, "user", "alice");
    a = result_test_add_attempt(t, 0);
    a->result = RESULT_ERROR;
    a->reason = strdup("killed by signal SIGSEGV");
}

static void test_wire_result_round_trips_and_cleans_text(void **state)
{
    struct result_suite s;
    struct result_suite d;
    struct wire_result_meta meta = {.job_id = (char *)"7.0",
                                    .run_id = 7,
                                    .job_attempt = 2,
                                    .worker_id = (char *)"w1",
                                    .cancelled = true};
    struct wire_result_meta dm;
    struct buf b;
    const struct result_attempt *a;

    (void)state;
    build_result(&s);
    buf_init(&b, 0);
    wire_result_encode(&s, &meta, &b);
    assert_int_equal(wire_result_decode(b.data, b.len, &d, &dm), ST_OK);
    assert_string_equal(dm.job_id, "7.0");
    assert_int_equal(dm.job_attempt, 2);
    assert_true(dm.cancelled);
    assert_false(dm.timed_out);
    assert_string_equal(d.name, "orders");
    assert_string_equal(d.ns, "payments");
    assert_int_equal(d.result, RESULT_FAILED);
    assert_string_equal(d.reason, "suite timed out after 1m");
    assert_string_equal(buf_str(&d.log), "run log\n");
    assert_true(d.setup.ran);
    assert_string_equal(buf_str(&d.setup.log), "setup log\n");
    assert_false(d.teardown.ran);
    assert_int_equal(d.n_tests, 1);
    assert_int_equal(d.tests[0].n_attempts, 2);
    a = &d.tests[0].attempts[0];
    assert_true(a->soft_failure);
    assert_string_equal(buf_str(&a->log), "bad \xef\xbf\xbd byte\n");
    assert_int_equal(a->log_dropped, 7);
    assert_string_equal(result_kv_get(a->values, a->n_values, "request_id"),
                        "r-1");
    assert_int_equal(a->n_spans, 1);
    assert_true(a->spans[0].duration_ns == 12);
    assert_string_equal(a->spans[0].attrs[0].value, "alice");
    assert_string_equal(d.tests[0].attempts[1].reason,
                        "killed by signal SIGSEGV");
    assert_int_equal(d.tests[0].attempts[1].attempt, 2);
    result_suite_cleanup(&d);
    wire_result_meta_cleanup(&dm);
    result_suite_cleanup(&s);
    buf_cleanup(&b);
}

static void test_wire_event_round_trips(void **state)
{
    struct report_event ev = {.kind = REPORT_TEST_END,
                              .time_unix_ns = 123,
                              .suite = "s",
                              .ns = "n",
                              .test = "test_x",
                              .attempt = 2,
                              .max_attempts = 3,
                              .result = RESULT_ERROR,
                              .retry = true,
                              .elapsed_ns = 456,
                              .reason = "boom"};
    struct report_event out_ev = {.kind = REPORT_OUTPUT,
                                  .suite = "s",
                                  .test = NULL,
                                  .output = "line\nnot this",
                                  .output_len = 5};
    struct wire_event d;
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    wire_event_encode(&ev, 9, "9.0", 1, 17, &b);
    assert_int_equal(wire_event_decode(b.data, b.len, &d), ST_OK);
    assert_int_equal(d.ev.kind, REPORT_TEST_END);
    assert_true(d.run_id == 9);
    assert_true(d.seq == 17);
    assert_string_equal(d.ev.test, "test_x");
    assert_int_equal(d.ev.result, RESULT_ERROR);
    assert_true(d.ev.retry);
    assert_string_equal(d.ev.reason, "boom");
    assert_null(d.ev.output);
    wire_event_cleanup(&d);

    buf_reset(&b);
    wire_event_encode(&out_ev, 9, "9.0", 1, 18, &b);
    assert_int_equal(wire_event_decode(b.data, b.len, &d), ST_OK);
    assert_null(d.ev.test);
    assert_int_equal(d.ev.output_len, 5);
    assert_memory_equal(d.ev.output, "line\n", 5);
    wire_event_cleanup(&d);
    buf_cleanup(&b);
}

/* A batch holds a job's events in order; a single Event still decodes
 * (older workers); a damaged batch is refused whole, never half read. */
static void test_wire_event_batches_round_trip(void **state)
{
    struct report_event ev = {.kind = REPORT_TEST_RUN,
                              .suite = "s",
                              .ns = "n",
                              .test = "test_x",
                              .attempt = 1,
                              .max_attempts = 1};
    struct buf one;
    struct buf batch;
    struct wire_event *d;
    size_t n;

    (void)state;
    buf_init(&one, 0);
    buf_init(&batch, 0);
    for (uint64_t seq = 1; seq <= 300; seq++) {
        buf_reset(&one);
        ev.output = seq % 2 ? NULL : "some output that makes it longer\n";
        ev.output_len = ev.output ? strlen(ev.output) : 0;
        ev.kind = seq % 2 ? REPORT_TEST_RUN : REPORT_OUTPUT;
        wire_event_encode(&ev, 5, "5.0", 2, seq, &one);
        wire_event_batch_add(&batch, one.data, one.len);
    }
    assert_int_equal(wire_events_decode(batch.data, batch.len, &d, &n), ST_OK);
    assert_int_equal(n, 300);
    for (size_t i = 0; i < n; i++) {
        assert_true(d[i].seq == i + 1);
        assert_true(d[i].run_id == 5);
        assert_int_equal(d[i].job_attempt, 2);
        assert_int_equal(d[i].ev.kind,
                         (i + 1) % 2 ? REPORT_TEST_RUN : REPORT_OUTPUT);
        wire_event_cleanup(&d[i]);
    }
    free(d);

    /* One event of more than 127 bytes: a two-byte length. */
    buf_reset(&batch);
    buf_reset(&one);
    ev.kind = REPORT_OUTPUT;
    ev.output = "0123456789012345678901234567890123456789012345678901234567890"
                "1234567890123456789012345678901234567890123456789012345678901"
                "234567890123456789\n";
    ev.output_len = strlen(ev.output);
    wire_event_encode(&ev, 5, "5.0", 1, 1, &one);
    assert_true(one.len > 127);
    wire_event_batch_add(&batch, one.data, one.len);
    assert_int_equal(wire_events_decode(batch.data, batch.len, &d, &n), ST_OK);
    assert_int_equal(n, 1);
    assert_int_equal(d[0].ev.output_len, strlen(ev.output));
    wire_event_cleanup(&d[0]);
    free(d);

    /* A single Event, as older workers send. */
    assert_int_equal(wire_events_decode(one.data, one.len, &d, &n), ST_OK);
    assert_int_equal(n, 1);
    assert_true(d[0].seq == 1);
    wire_event_cleanup(&d[0]);
    free(d);

    /* Every truncation of a batch is refused or read whole, never crashes;
     * an empty batch and an event with no run are refused. */
    for (size_t cut = 0; cut < batch.len; cut++) {
        if (wire_events_decode(batch.data, cut, &d, &n) == ST_OK) {
            for (size_t i = 0; i < n; i++) {
                wire_event_cleanup(&d[i]);
            }
            free(d);
        }
    }
    assert_int_equal(wire_events_decode("", 0, &d, &n), ST_PROTOCOL);
    assert_null(d);
    buf_reset(&one);
    wire_event_encode(&ev, 0, "0.0", 1, 1, &one);
    buf_reset(&batch);
    wire_event_batch_add(&batch, one.data, one.len);
    assert_int_equal(wire_events_decode(batch.data, batch.len, &d, &n),
                     ST_PROTOCOL);
    assert_int_equal(n, 0);
    buf_cleanup(&one);
    buf_cleanup(&batch);
}

static void test_wire_worker_round_trips(void **state)
{
    struct wire_test_info tests[1] = {{(char *)"test_a", 2, 100}};
    struct wire_suite_info suites[1] = {{.name = (char *)"s",
                                         .ns = (char *)"n",
                                         .description = (char *)"d",
                                         .tests = tests,
                                         .n_tests = 1,
                                         .max_attempts = 1}};
    struct result_kv labels[1] = {{(char *)"zone", (char *)"a"}};
    int64_t runs[2] = {5, 6};
    struct wire_worker w = {.worker_id = (char *)"w1",
                            .host = (char *)"h",
                            .pool = (char *)"default",
                            .labels = labels,
                            .n_labels = 1,
                            .suites = suites,
                            .n_suites = 1,
                            .slots = 4,
                            .free_slots = 2,
                            .version = (char *)"0.1.0",
                            .draining = true,
                            .running_runs = runs,
                            .n_running_runs = 2};
    struct wire_worker d;
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    wire_worker_encode(&w, &b);
    assert_int_equal(wire_worker_decode(b.data, b.len, &d), ST_OK);
    assert_string_equal(d.worker_id, "w1");
    assert_int_equal(d.n_suites, 1);
    assert_string_equal(d.suites[0].tests[0].name, "test_a");
    assert_int_equal(d.suites[0].tests[0].max_attempts, 2);
    assert_true(d.draining);
    assert_int_equal(d.n_running_runs, 2);
    assert_true(d.running_runs[1] == 6);
    assert_string_equal(result_kv_get(d.labels, d.n_labels, "zone"), "a");
    wire_worker_cleanup(&d);
    buf_cleanup(&b);
}

static void test_wire_cancel_and_started_round_trip(void **state)
{
    char *keys[] = {(char *)"3.0@1700000000000", (char *)"3.1@1700000000001"};
    struct wire_cancel c = {.run_id = 3,
                            .reason = (char *)"rollback",
                            .job_keys = keys,
                            .n_job_keys = 2};
    struct wire_cancel dc;
    char **many = calloc(WIRE_CANCEL_MAX_KEYS + 1, sizeof(*many));
    struct wire_started st = {.job_id = (char *)"3.0",
                              .run_id = 3,
                              .job_attempt = 1,
                              .worker_id = (char *)"w",
                              .started_unix_ns = 5};
    struct wire_started ds;
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    wire_cancel_encode(&c, &b);
    assert_int_equal(wire_cancel_decode(b.data, b.len, &dc), ST_OK);
    assert_true(dc.run_id == 3);
    assert_string_equal(dc.reason, "rollback");
    assert_int_equal(dc.n_job_keys, 2);
    assert_string_equal(dc.job_keys[1], "3.1@1700000000001");
    wire_cancel_cleanup(&dc);
    /* An older controller's Cancel has no keys. */
    c.n_job_keys = 0;
    buf_reset(&b);
    wire_cancel_encode(&c, &b);
    assert_int_equal(wire_cancel_decode(b.data, b.len, &dc), ST_OK);
    assert_int_equal(dc.n_job_keys, 0);
    assert_null(dc.job_keys);
    wire_cancel_cleanup(&dc);
    /* More keys than any run has jobs: refused. */
    for (size_t i = 0; i <= WIRE_CANCEL_MAX_KEYS; i++) {
        many[i] = (char *)"k";
    }
    c.job_keys = many;
    c.n_job_keys = WIRE_CANCEL_MAX_KEYS + 1;
    buf_reset(&b);
    wire_cancel_encode(&c, &b);
    assert_int_equal(wire_cancel_decode(b.data, b.len, &dc), ST_PROTOCOL);
    free(many);
    buf_reset(&b);
    wire_started_encode(&st, &b);
    assert_int_equal(wire_started_decode(b.data, b.len, &ds), ST_OK);
    assert_string_equal(ds.job_id, "3.0");
    assert_true(ds.started_unix_ns == 5);
    wire_started_cleanup(&ds);
    buf_cleanup(&b);
}

/* Every truncation and many random corruptions of each message decode to
 * an error or to a valid value; never a crash (ASan) or a leak (LSan). */
static void test_wire_survives_truncated_and_corrupted_input(void **state)
{
    struct result_suite s;
    struct wire_result_meta meta = {
        .job_id = (char *)"7.0", .run_id = 7, .job_attempt = 1};
    struct buf b;
    uint32_t seed = 7;

    (void)state;
    build_result(&s);
    buf_init(&b, 0);
    wire_result_encode(&s, &meta, &b);
    for (size_t n = 0; n <= b.len; n++) {
        struct result_suite d;
        struct wire_result_meta dm;
        struct wire_job j;
        struct wire_event e;
        struct wire_worker w;

        if (wire_result_decode(b.data, n, &d, &dm) == ST_OK) {
            result_suite_cleanup(&d);
            wire_result_meta_cleanup(&dm);
        }
        if (wire_job_decode(b.data, n, &j) == ST_OK) {
            wire_job_cleanup(&j);
        }
        if (wire_event_decode(b.data, n, &e) == ST_OK) {
            wire_event_cleanup(&e);
        }
        if (wire_worker_decode(b.data, n, &w) == ST_OK) {
            wire_worker_cleanup(&w);
        }
    }
    for (int round = 0; round < 3000; round++) {
        char *copy = malloc(b.len);
        struct result_suite d;
        struct wire_result_meta dm;

        memcpy(copy, b.data, b.len);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % b.len] = (char)(seed >> 16);
        }
        if (wire_result_decode(copy, b.len, &d, &dm) == ST_OK) {
            result_suite_cleanup(&d);
            wire_result_meta_cleanup(&dm);
        }
        free(copy);
    }
    result_suite_cleanup(&s);
    buf_cleanup(&b);
}

/* ---- Load runs ------------------------------------------------------- */

static struct wire_load *sample_load(void)
{
    static struct wire_load_stage stages[] = {{1000, 10}, {2000, 0}};
    static char *ths[] = {(char *)"http_req_failed: rate<0.01",
                          (char *)"checks: rate>0.99 abort_on_fail"};
    struct wire_load l = {
        .workflow = (char *)"get",
        .phase = WIRE_LOAD_SHARD,
        .executor = (char *)"ramping-arrival-rate",
        .vus = 3,
        .rate = 12.5,
        .time_unit_ms = 1000,
        .stages = stages,
        .n_stages = 2,
        .pre_allocated_vus = 4,
        .max_vus = 50,
        .iterations = 7,
        .graceful_stop_ms = 1500,
        .graceful_ramp_down_ms = 45000,
        .shard = 1,
        .shards = 3,
        .start_at_unix_ns = INT64_C(1795000000000000000),
        .setup_data = (char *)"tok\0en",
        .setup_len = 6,
        .thresholds = ths,
        .n_thresholds = 2,
    };

    return wire_load_dup(&l);
}

static void test_wire_load_job_snapshot_and_result_round_trip(void **state)
{
    struct wire_job j = {.job_id = (char *)"9.2",
                         .run_id = 9,
                         .suite = (char *)"load",
                         .ns = (char *)"examples",
                         .shard = 2,
                         .shards = 3};
    struct wire_job d;
    struct wire_load_snapshot snap = {.run_id = 9,
                                      .job_id = (char *)"9.2",
                                      .job_attempt = 1,
                                      .shard = 1,
                                      .second = 4,
                                      .t_ns = 4000000123,
                                      .snap = (char *)"HFS1\0\1",
                                      .snap_len = 6};
    struct wire_load_snapshot ds;
    struct result_suite res;
    struct result_suite dres;
    struct wire_result_meta meta = {.job_id = (char *)"9.0",
                                    .run_id = 9,
                                    .job_attempt = 1,
                                    .load_setup_data = (char *)"abc",
                                    .load_setup_len = 3,
                                    .load_total = (char *)"xyz\0",
                                    .load_total_len = 4,
                                    .load_seconds = 5};
    struct wire_result_meta dm;
    struct buf b;

    (void)state;
    j.load = sample_load();
    meta.load_spec = j.load;
    buf_init(&b, 0);
    wire_job_encode(&j, &b);
    assert_int_equal(wire_job_decode(b.data, b.len, &d), ST_OK);
    assert_non_null(d.load);
    assert_string_equal(d.load->workflow, "get");
    assert_int_equal(d.load->phase, WIRE_LOAD_SHARD);
    assert_string_equal(d.load->executor, "ramping-arrival-rate");
    assert_int_equal(d.load->n_stages, 2);
    assert_true(d.load->stages[0].target == 10 &&
                d.load->stages[1].duration_ms == 2000);
    assert_true(d.load->rate == 12.5);
    assert_true(d.load->graceful_stop_ms == 1500);
    assert_true(d.load->graceful_ramp_down_ms == 45000);
    assert_int_equal(d.load->shard, 1);
    assert_int_equal(d.load->shards, 3);
    assert_true(d.load->start_at_unix_ns == j.load->start_at_unix_ns);
    assert_int_equal(d.load->setup_len, 6);
    assert_memory_equal(d.load->setup_data, "tok\0en", 6);
    assert_int_equal(d.load->n_thresholds, 2);
    assert_string_equal(d.load->thresholds[1],
                        "checks: rate>0.99 abort_on_fail");
    wire_job_cleanup(&d);
    /* Unset (below 0) stays unset; 0 (cut at once) stays 0. */
    for (int64_t v = -7; v <= 0; v += 7) {
        j.load->graceful_ramp_down_ms = v;
        buf_reset(&b);
        wire_job_encode(&j, &b);
        assert_int_equal(wire_job_decode(b.data, b.len, &d), ST_OK);
        assert_true(d.load->graceful_ramp_down_ms == (v < 0 ? -1 : 0));
        wire_job_cleanup(&d);
    }

    buf_reset(&b);
    wire_load_snapshot_encode(&snap, &b);
    assert_int_equal(wire_load_snapshot_decode(b.data, b.len, &ds), ST_OK);
    assert_true(ds.second == 4 && ds.t_ns == 4000000123 && ds.shard == 1);
    assert_int_equal(ds.snap_len, 6);
    assert_memory_equal(ds.snap, "HFS1\0\1", 6);
    wire_load_snapshot_cleanup(&ds);
    snap.second = 0;
    buf_reset(&b);
    wire_load_snapshot_encode(&snap, &b);
    assert_int_equal(wire_load_snapshot_decode(b.data, b.len, &ds),
                     ST_PROTOCOL);

    result_suite_init(&res, "load", "examples");
    result_suite_finish(&res);
    buf_reset(&b);
    wire_result_encode(&res, &meta, &b);
    assert_int_equal(wire_result_decode(b.data, b.len, &dres, &dm), ST_OK);
    assert_int_equal(dm.load_setup_len, 3);
    assert_memory_equal(dm.load_setup_data, "abc", 3);
    assert_int_equal(dm.load_total_len, 4);
    assert_true(dm.load_seconds == 5);
    assert_non_null(dm.load_spec);
    assert_string_equal(dm.load_spec->executor, "ramping-arrival-rate");
    wire_result_meta_cleanup(&dm);
    result_suite_cleanup(&dres);
    result_suite_cleanup(&res);
    wire_load_free(j.load);
    buf_cleanup(&b);
}

static void test_wire_load_spec_refuses_out_of_range_fields(void **state)
{
    struct wire_job j = {.job_id = (char *)"9.2",
                         .run_id = 9,
                         .suite = (char *)"load",
                         .ns = (char *)"examples"};
    struct buf b;
    struct wire_job d;

    (void)state;
    buf_init(&b, 0);
    for (int c = 0; c < 12; c++) {
        j.load = sample_load();
        switch (c) {
        case 0:
            j.load->rate = -1;
            break;
        case 1:
            j.load->shard = 3; /* of 3 */
            break;
        case 2:
            j.load->stages[0].duration_ms = -5;
            break;
        case 3:
            free(j.load->workflow);
            j.load->workflow = strdup("");
            break;
        case 4:
            j.load->duration_ms = -1;
            break;
        case 5:
            j.load->graceful_ramp_down_ms = WIRE_LOAD_DURATION_MAX_MS + 1;
            break;
        case 6:
            j.load->shards = WIRE_LOAD_SHARDS_MAX + 1;
            break;
        case 7:
            /* ms -> ns of these would overflow an int64 */
            j.load->duration_ms = INT64_MAX / 2;
            break;
        case 8:
            j.load->stages[0].duration_ms = WIRE_LOAD_DURATION_MAX_MS + 1;
            break;
        case 9:
            j.load->graceful_stop_ms = INT64_MAX;
            break;
        case 10:
            j.load->time_unit_ms = WIRE_LOAD_DURATION_MAX_MS + 1;
            break;
        default:
            free(j.load->setup_data);
            j.load->setup_data = calloc(1, WIRE_LOAD_SETUP_MAX + 1);
            j.load->setup_len = WIRE_LOAD_SETUP_MAX + 1;
            break;
        }
        buf_reset(&b);
        wire_job_encode(&j, &b);
        assert_int_equal(wire_job_decode(b.data, b.len, &d), ST_PROTOCOL);
        wire_load_free(j.load);
    }
    /* Every truncation of a valid one decodes or is refused, no leak. */
    j.load = sample_load();
    buf_reset(&b);
    wire_job_encode(&j, &b);
    for (size_t n = 0; n < b.len; n++) {
        if (wire_job_decode(b.data, n, &d) == ST_OK) {
            wire_job_cleanup(&d);
        }
    }
    wire_load_free(j.load);
    buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_job_round_trips),
        cmocka_unit_test(test_wire_job_rejects_missing_and_out_of_range_fields),
        cmocka_unit_test(test_wire_result_round_trips_and_cleans_text),
        cmocka_unit_test(test_wire_event_round_trips),
        cmocka_unit_test(test_wire_event_batches_round_trip),
        cmocka_unit_test(test_wire_worker_round_trips),
        cmocka_unit_test(test_wire_cancel_and_started_round_trip),
        cmocka_unit_test(test_wire_survives_truncated_and_corrupted_input),
        cmocka_unit_test(test_wire_load_job_snapshot_and_result_round_trip),
        cmocka_unit_test(test_wire_load_spec_refuses_out_of_range_fields),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
