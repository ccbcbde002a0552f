/* Thresholds: the grammar (valid forms, canonical texts, messages for
 * invalid ones) and evaluation on snaps with known samples: percentiles of
 * merged histograms against exact sorted ones, tag selection across steps
 * and names, status slots, rates, counters over elapsed time, gauges. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "httpc_int.h"
#include "mem.h"
#include "snap.h"
#include "threshold.h"

#define MS INT64_C(1000000)
#define S (1000 * MS)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct threshold *parse_ok(const char *text)
{
    struct threshold *t = NULL;
    char err[THRESHOLD_ERR_SIZE] = "";

    if (threshold_parse(text, &t, err, sizeof(err)) != 0) {
        fail_msg("\"%s\" refused: %s", text, err);
    }
    assert_non_null(t);
    return t;
}

static struct snap *new_snap(void)
{
    struct snap *s = NULL;

    assert_int_equal(snap_new(NULL, &s), 0);
    return s;
}

/* One request with every timing derived from ns, so each metric can be
 * told apart: duration ns, latency 2 ns, waiting ns / 2, the others 0. */
static void request(struct snap *s, const char *step, const char *name,
                    int status, int64_t ns)
{
    struct httpc_response r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.error = status == 0 ? HTTPC_ERR_TIMEOUT : HTTPC_ERR_NONE;
    r.timings_ns[HTTPC_T_DURATION] = ns;
    r.timings_ns[HTTPC_T_LATENCY] = 2 * ns;
    r.timings_ns[HTTPC_T_WAITING] = ns / 2;
    r.bytes_sent = 100;
    r.bytes_received = 1000;
    (void)httpc_metrics_record(s->http, step, name, strlen(name), &r);
}

static struct threshold_eval eval(const char *text, const struct snap *s,
                                  int64_t elapsed_ns)
{
    struct threshold *t = parse_ok(text);
    struct threshold_eval ev = threshold_evaluate(t, s, elapsed_ns);

    threshold_free(t);
    return ev;
}

/* Asserts the outcome of text on s, with observed within 1e-9 relative. */
static void expect(const char *text, const struct snap *s, int64_t elapsed_ns,
                   bool passed, bool has_data, double observed)
{
    struct threshold_eval ev = eval(text, s, elapsed_ns);
    double tol = 1e-9 * (observed < 0 ? -observed : observed);

    if (ev.passed != passed || ev.has_data != has_data ||
        ev.observed < observed - tol || ev.observed > observed + tol) {
        fail_msg("\"%s\": passed %d has_data %d observed %.12g, expected "
                 "%d %d %.12g",
                 text, ev.passed, ev.has_data, ev.observed, passed, has_data,
                 observed);
    }
}

/* ---- the grammar ---- */

static const struct {
    const char *text;
    const char *metric;
    const char *condition;
    bool abort_on_fail;
    int64_t delay_ns;
} valid[] = {
    {"http_req_duration: p(95)<300ms", "http_req_duration", "p(95)<300ms",
     false, 0},
    {"http_req_duration:p(95)<300", "http_req_duration", "p(95)<300", false, 0},
    {"http_req_duration: p(95)<300 abort_on_fail", "http_req_duration",
     "p(95)<300", true, 0},
    {"  http_req_duration { name : login , step:checkout }  :  p( 99.9 ) <= "
     "1.5 s  ",
     "http_req_duration{name:login,step:checkout}", "p(99.9)<=1.5s", false, 0},
    {"http_req_latency{step:checkout,name:login}: med>=0.5ms",
     "http_req_latency{step:checkout,name:login}", "med>=0.5ms", false, 0},
    {"http_req_failed: rate<0.01 abort_on_fail=10s", "http_req_failed",
     "rate<0.01", true, 10 * S},
    {"http_req_failed{status:500}: rate==0", "http_req_failed{status:500}",
     "rate==0", false, 0},
    {"http_reqs{status:0}: count!=3", "http_reqs{status:0}", "count!=3", false,
     0},
    {"http_reqs{name:\"GET /a,b\"}: count>=1", "http_reqs{name:\"GET /a,b\"}",
     "count>=1", false, 0},
    {"http_reqs{name:GET /users/:id}: rate>10 abort_on_fail",
     "http_reqs{name:GET /users/:id}", "rate>10", true, 0},
    {"http_reqs{name:\"a\\\"b\\\\c\"}: count>0",
     "http_reqs{name:\"a\\\"b\\\\c\"}", "count>0", false, 0},
    {"http_reqs{name:\" padded \"}: count>0", "http_reqs{name:\" padded \"}",
     "count>0", false, 0},
    {"checks{check:status is 200}: rate>0.99", "checks{check:status is 200}",
     "rate>0.99", false, 0},
    {"iteration_duration: avg<1m30s abort_on_fail = 1m30s",
     "iteration_duration", "avg<1m30s", true, 90 * S},
    {"iteration_duration: count>=1\tabort_on_fail=1.5s", "iteration_duration",
     "count>=1", true, 1500 * MS},
    {"iteration_duration: max < 2 m abort_on_fail=250ms", "iteration_duration",
     "max<2m", true, 250 * MS},
    {"step_duration{step:}: count==0", "step_duration{step:\"\"}", "count==0",
     false, 0},
    {"step_duration{step:\"\"}: min>1us", "step_duration{step:\"\"}", "min>1us",
     false, 0},
    {"http_req_waiting: med<500\xc2\xb5s", "http_req_waiting",
     "med<500\xc2\xb5s", false, 0},
    {"http_req_sending: max<500\xce\xbcs abort_on_fail=0s", "http_req_sending",
     "max<500\xce\xbcs", true, 0},
    {"http_req_blocked: min>=0ns", "http_req_blocked", "min>=0ns", false, 0},
    {"http_req_connecting: p(100)<1h", "http_req_connecting", "p(100)<1h",
     false, 0},
    {"http_req_tls_handshaking: p(0.1)<1h1m1s1ms1us1ns",
     "http_req_tls_handshaking", "p(0.1)<1h1m1s1ms1us1ns", false, 0},
    {"http_req_receiving: avg<=000.250", "http_req_receiving", "avg<=000.250",
     false, 0},
    {"data_sent{step:login}: count<1000000", "data_sent{step:login}",
     "count<1000000", false, 0},
    {"data_received: rate>1024", "data_received", "rate>1024", false, 0},
    {"dropped_iterations: count==0 abort_on_fail=1h", "dropped_iterations",
     "count==0", true, 3600 * S},
    {"iterations: rate>=5", "iterations", "rate>=5", false, 0},
    {"vus: value>0", "vus", "value>0", false, 0},
    {"vus_max: value<=100", "vus_max", "value<=100", false, 0},
    {"http_reqs{name:\xc3\xa9t\xc3\xa9}: count>0",
     "http_reqs{name:\xc3\xa9t\xc3\xa9}", "count>0", false, 0},
};

static void test_threshold_parses_valid_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(valid); i++) {
        struct threshold *t = parse_ok(valid[i].text);

        assert_string_equal(threshold_source(t), valid[i].text);
        assert_string_equal(threshold_metric(t), valid[i].metric);
        assert_string_equal(threshold_condition(t), valid[i].condition);
        assert_int_equal(threshold_abort_on_fail(t), valid[i].abort_on_fail);
        assert_int_equal(threshold_abort_delay_ns(t), valid[i].delay_ns);
        threshold_free(t);
    }
}

static void test_threshold_canonical_text_parses_back_the_same(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(valid); i++) {
        struct threshold *t = parse_ok(valid[i].text);
        char *again =
            mem_printf("%s: %s", threshold_metric(t), threshold_condition(t));
        struct threshold *u = parse_ok(again);

        assert_string_equal(threshold_metric(u), threshold_metric(t));
        assert_string_equal(threshold_condition(u), threshold_condition(t));
        threshold_free(u);
        threshold_free(t);
        free(again);
    }
}

static const struct {
    const char *text;
    const char *message; /* what follows `threshold "TEXT": ` */
} invalid[] = {
    {"", "empty: expected METRIC: AGG OP VALUE, as in \"http_req_failed: "
         "rate<0.01\""},
    {" \t ", "empty: expected METRIC"},
    {"http_req_duraton: p(95)<1",
     "unknown metric \"http_req_duraton\" at column 1: did you mean "
     "http_req_duration?"},
    {"http-reqs: count>1",
     "unknown metric \"http-reqs\" at column 1: did you mean http_reqs?"},
    {"  foo: p(95)<1", "unknown metric \"foo\" at column 3: metrics are the "
                       "http_req_* timings"},
    {": p(95)<1", "unexpected \":\" at column 1: expected a metric name"},
    {"http_req_duration: p(95)<3xx",
     "bad value \"3xx\" at column 26: unknown unit \"xx\" (ns, us, "
     "\xc2\xb5s, ms, s, m, h)"},
    {"http_req_duration: p(95)<300MS",
     "bad value \"300MS\" at column 26: unknown unit \"MS\""},
    {"http_req_duration{status:200}: p(95)<1",
     "tag \"status\" at column 19: does not apply to http_req_duration: "
     "timings are kept per request name and step, not per status code"},
    {"checks{name:x}: rate>0.9",
     "tag \"name\" at column 8: does not apply to checks, which takes check"},
    {"http_reqs{check:x}: count>0",
     "tag \"check\" at column 11: does not apply to http_reqs, which takes "
     "name, step or status"},
    {"iterations{step:a}: count>1",
     "tag \"step\" at column 12: iterations takes no tags"},
    {"http_reqs{method:GET}: count>1",
     "unknown tag \"method\" at column 11: tags are name, step, status and "
     "check"},
    {"http_reqs{name:a, name:b}: count>1",
     "tag \"name\" at column 19: given twice"},
    {"http_reqs{name:}: count>1", "empty value for tag name at column 16"},
    {"http_reqs{name:\"\"}: count>1", "empty value for tag name at column 16"},
    {"http_reqs{}: count>1",
     "unexpected \"}\" at column 11: expected a tag name"},
    {"http_reqs{name:a,}: count>1",
     "unexpected \"}\" at column 18: expected a tag name"},
    {"http_reqs{name:a: count>1",
     "missing '}' to close the tags opened at column 10"},
    {"http_reqs{name:\"a\" x}: count>1",
     "unexpected \"x\" at column 20: expected ',' or '}' after a tag's value"},
    {"http_reqs{name=a}: count>1",
     "unexpected \"=\" at column 15: expected ':' after the tag name"},
    {"http_reqs{name:\"a}: count>1", "unterminated quoted value at column 16"},
    {"http_reqs{name:\"a\\n\"}: count>1",
     "unknown escape \"\\\\n\" at column 18: only \\\" and \\\\ are escapes"},
    {"http_reqs{status:abc}: count>1",
     "bad status \"abc\" at column 18: expected an HTTP status code, "
     "100..599, or 0"},
    {"http_reqs{status:600}: count>1", "bad status \"600\" at column 18"},
    {"http_reqs{status:99}: count>1", "bad status \"99\" at column 18"},
    {"http_reqs{name:a} count>1",
     "unexpected \"count>1\" at column 19: expected ':' between the metric "
     "and its condition"},
    {"http_reqs count>1",
     "unexpected \"count>1\" at column 11: expected '{' or ':' after the "
     "metric name"},
    {"http_reqs", "unexpected end at column 10: expected '{' or ':'"},
    {"http_req_duration: rate<1",
     "aggregation \"rate\" at column 20: does not apply to "
     "http_req_duration, a duration, which takes avg, min, max, med, p(N) "
     "or count"},
    {"http_reqs: avg<1", "aggregation \"avg\" at column 12: does not apply to "
                         "http_reqs, a counter, which takes count or rate"},
    {"http_req_failed: count<1",
     "aggregation \"count\" at column 18: does not apply to http_req_failed, "
     "a rate, which takes rate"},
    {"vus: count<1", "aggregation \"count\" at column 6: does not apply to "
                     "vus, a gauge, which takes value"},
    {"http_req_duration: p95<1",
     "unknown aggregation \"p95\" at column 20: write a percentile as p(N)"},
    {"http_req_duration: mean<1",
     "unknown aggregation \"mean\" at column 20: http_req_duration, a "
     "duration, takes avg, min"},
    {"http_req_duration: <1",
     "unexpected \"<1\" at column 20: expected an aggregation"},
    {"http_req_duration: p(0)<1",
     "percentile \"0\" at column 22: must be above 0 and at most 100"},
    {"http_req_duration: p(100.01)<1",
     "percentile \"100.01\" at column 22: must be above 0 and at most 100"},
    {"http_req_duration: p(0.000)<1", "percentile \"0.000\" at column 22"},
    {"http_req_duration: p(abc)<1",
     "bad percentile \"abc)<1\" at column 22: expected a number above 0"},
    {"http_req_duration: p 95<1",
     "unexpected \"9\" at column 22: expected '(' after p"},
    {"http_req_duration: p(95<1",
     "unexpected \"<\" at column 24: expected ')' to close p("},
    {"http_req_duration: p(95) 300",
     "unexpected \"300\" at column 26: expected an operator: <, <=, >, >=, "
     "== or !="},
    {"http_req_duration: p(95) = 300", "unexpected \"=\" at column 26: "
                                       "expected an operator"},
    {"http_req_duration: p(95) =< 300", "unexpected \"=<\" at column 26"},
    {"http_req_duration: p(95)<",
     "unexpected end at column 26: expected a duration such as 300ms"},
    {"http_req_duration: p(95)<-1",
     "bad value \"-1\" at column 26: expected a duration such as 300ms or "
     "1.5s (units ns, us, \xc2\xb5s, ms, s, m, h; a bare number is ms)"},
    {"http_req_duration: p(95)<.5", "bad value \".5\" at column 26"},
    {"http_req_duration: p(95)<5.", "bad value \"5.\" at column 26"},
    {"http_req_duration: p(95)<1e3", "bad value \"1e3\" at column 26: unknown "
                                     "unit \"e\""},
    {"http_req_duration: p(95)<1m30",
     "bad value \"1m30\" at column 26: expected a duration such as 300ms"},
    {"http_req_duration: p(95)<1234567890123456789",
     "bad value \"1234567890123456789\" at column 26: too many digits (at "
     "most 18)"},
    {"http_req_duration: p(95)<0.0000000000000000001",
     "too many digits (at most 18)"},
    {"http_req_failed: rate<1%",
     "bad value \"1%\" at column 23: expected a number >= 0, such as 0.01"},
    {"http_req_failed: rate<5ms", "bad value \"5ms\" at column 23: a rate "
                                  "takes a plain number, without a unit"},
    {"http_reqs: count<5ms", "bad value \"5ms\" at column 18: a count takes "
                             "a plain number, without a unit"},
    {"http_req_duration: count<5ms", "bad value \"5ms\" at column 26: a count "
                                     "takes a plain number"},
    {"vus: value<5s", "bad value \"5s\" at column 12: a value takes a plain "
                      "number"},
    {"http_req_failed: rate<0.01 abort",
     "unexpected \"abort\" at column 28: expected abort_on_fail or the end"},
    {"http_req_failed: rate<0.01 0.02",
     "unexpected \"0.02\" at column 28: expected abort_on_fail or the end"},
    {"http_req_failed: rate<0.01 abort_on_fail=10",
     "bad abort_on_fail delay \"10\" at column 42: expected a duration with "
     "a unit, such as 10s or 1m30s"},
    {"http_req_failed: rate<0.01 abort_on_fail=",
     "unexpected end at column 42: expected a duration with a unit"},
    {"http_req_failed: rate<0.01 abort_on_fail=true",
     "bad abort_on_fail delay \"true\" at column 42"},
    {"http_req_failed: rate<0.01 abort_on_fail=10s x",
     "unexpected \"x\" at column 46: expected the end after abort_on_fail"},
    {"http_req_failed: rate<0.01 abort_on_fail abort_on_fail",
     "unexpected \"abort_on_fail\" at column 42: expected the end"},
    {"http_req_failed: rate<0.01 abort_on_fail=1000000000h",
     "abort_on_fail delay \"1000000000h\" at column 42: is too long"},
    {"http_req_failed\x01: rate<1", "control character 0x01 at column 16"},
    {"http_req_failed: rate<1 \xff", "invalid UTF-8 at column 25"},
    {"http_req_failed: rate<1 \xc3", "invalid UTF-8 at column 25"},
    /* Columns count characters: \xc2\xb5 is one. */
    {"http_reqs{name:\xc2\xb5}: count<1 x",
     "unexpected \"x\" at column 28: expected abort_on_fail or the end"},
};

static void
test_threshold_refuses_invalid_forms_naming_what_and_where(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(invalid); i++) {
        struct threshold *sentinel = (struct threshold *)&sentinel;
        struct threshold *t = sentinel;
        char err[THRESHOLD_ERR_SIZE];
        const char *prefix = "threshold \"";

        memset(err, 'x', sizeof(err));
        if (threshold_parse(invalid[i].text, &t, err, sizeof(err)) !=
            ST_INVALID) {
            fail_msg("\"%s\" accepted", invalid[i].text);
        }
        assert_ptr_equal(t, sentinel);
        assert_non_null(memchr(err, '\0', sizeof(err)));
        assert_null(strchr(err, '\n'));
        if (strncmp(err, prefix, strlen(prefix)) != 0 ||
            strstr(err, invalid[i].message) == NULL) {
            fail_msg("\"%s\":\n  got      %s\n  expected ...%s",
                     invalid[i].text, err, invalid[i].message);
        }
    }
}

static void test_threshold_quotes_the_text_escaped_and_cut(void **state)
{
    char text[THRESHOLD_TEXT_MAX + 2];
    char err[THRESHOLD_ERR_SIZE];
    struct threshold *t = NULL;

    (void)state;
    assert_int_equal(
        threshold_parse("http_reqs{name:\"a\\\"}: x", &t, err, sizeof(err)),
        ST_INVALID);
    assert_string_equal(err, "threshold \"http_reqs{name:\\\"a\\\\\\\"}: x\": "
                             "unterminated quoted value at column 16");
    assert_int_equal(threshold_parse("vus:\nvalue<1\t?", &t, err, sizeof(err)),
                     ST_INVALID);
    assert_string_equal(err, "threshold \"vus:\\nvalue<1\\t?\": unexpected "
                             "\"?\" at column 14: expected abort_on_fail or "
                             "the end");

    /* The quoted text stops after about 96 bytes; the detail follows. */
    memset(text, 'a', THRESHOLD_TEXT_MAX);
    text[THRESHOLD_TEXT_MAX] = '\0';
    assert_int_equal(threshold_parse(text, &t, err, sizeof(err)), ST_INVALID);
    assert_non_null(strstr(err, "aaa...\": unknown metric \"aaaaaaaa"));
    assert_non_null(strstr(err, "...\" at column 1: metrics are the"));
    assert_non_null(strstr(err, "data_received, vus and vus_max"));

    /* One byte more than THRESHOLD_TEXT_MAX is refused before any parsing. */
    memcpy(text, "vus: value<1 ", 13);
    memset(text + 13, ' ', THRESHOLD_TEXT_MAX - 13);
    text[THRESHOLD_TEXT_MAX] = '\0';
    t = parse_ok(text);
    threshold_free(t);
    text[THRESHOLD_TEXT_MAX] = ' ';
    text[THRESHOLD_TEXT_MAX + 1] = '\0';
    t = NULL;
    assert_int_equal(threshold_parse(text, &t, err, sizeof(err)), ST_INVALID);
    assert_null(t);
    assert_non_null(strstr(err, "\": longer than 1024 bytes"));
}

static void test_threshold_cuts_the_message_to_errlen(void **state)
{
    const char *text = "http_req_duration: p(95)<3xx";
    char full[THRESHOLD_ERR_SIZE];
    char small[12];
    struct threshold *t = NULL;

    (void)state;
    assert_int_equal(threshold_parse(text, &t, full, sizeof(full)), ST_INVALID);
    memset(small, 'x', sizeof(small));
    assert_int_equal(threshold_parse(text, &t, small, sizeof(small)),
                     ST_INVALID);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, full, sizeof(small) - 1);
    /* No buffer at all, or none for the result. */
    assert_int_equal(threshold_parse(text, &t, NULL, 0), ST_INVALID);
    assert_int_equal(threshold_parse(NULL, &t, full, sizeof(full)), ST_INVALID);
    assert_non_null(strstr(full, "no threshold text"));
    assert_int_equal(threshold_parse("vus: value<1", NULL, full, sizeof(full)),
                     ST_INVALID);
    assert_null(t);
    threshold_free(NULL);
}

/* ---- evaluation ---- */

/* A 64-bit LCG, so the samples are the same on every run. */
static uint64_t next_random(uint64_t *x)
{
    *x = *x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return *x >> 11;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Nearest rank, exactly: ceil(p_tenths / 1000 * n), at least 1. */
static int64_t exact_percentile(const int64_t *sorted, size_t n,
                                uint64_t p_tenths)
{
    uint64_t rank = (p_tenths * n + 999) / 1000;

    return sorted[(rank < 1 ? 1 : rank) - 1];
}

static void
test_threshold_percentiles_come_from_the_merged_histogram(void **state)
{
    struct snap *s = new_snap();
    int bits = hist_get_config(s->iteration_ns).sub_bucket_bits;
    double rel = 1.0 / (double)(INT64_C(1) << bits);
    struct threshold_eval ev;

    (void)state;
    /* 100 fast and 100 slow requests under two names: the p(75) of all is
     * a slow one. Averaging each name's p(75) would give about 50.5 ms. */
    for (int i = 0; i < 100; i++) {
        request(s, "", "fast", 200, 1 * MS);
        request(s, "", "slow", 200, 100 * MS);
    }
    ev = eval("http_req_duration: p(75)<=101ms", s, S);
    assert_true(ev.passed && ev.has_data);
    assert_true(ev.observed >= 100.0 && ev.observed <= 100.0 * (1 + rel));
    ev = eval("http_req_duration: p(50)<2ms", s, S);
    assert_true(ev.passed);
    assert_true(ev.observed >= 1.0 && ev.observed <= 1.0 * (1 + rel));
    expect("http_req_duration: avg==50.5", s, S, true, true, 50.5);
    expect("http_req_duration: min==1ms", s, S, true, true, 1.0);
    expect("http_req_duration: max==100ms", s, S, true, true, 100.0);
    expect("http_req_duration: max<100ms", s, S, false, true, 100.0);
    expect("http_req_duration: count==200", s, S, true, true, 200);
    /* Each timing metric reads its own histogram. */
    expect("http_req_latency: max==200ms", s, S, true, true, 200.0);
    expect("http_req_waiting: max==50ms", s, S, true, true, 50.0);
    expect("http_req_blocked: max==0", s, S, true, true, 0);
    snap_free(s);
}

#define N_NAMES 3
#define N_STEPS 2
#define N_SAMPLES 3000

static const char *const names[N_NAMES] = {"GET /", "POST /login",
                                           "GET /items"};
static const char *const steps[N_STEPS] = {"", "checkout"};

/* Checks every duration aggregation of the selection given by name_i and
 * step_i (-1: any) against the exact figures of the samples. */
static void check_selection(const struct snap *s, const int64_t *samples,
                            const int *sample_name, const int *sample_step,
                            int name_i, int step_i, double rel)
{
    static const uint64_t ps[] = {1, 100, 250, 500, 900, 950, 990, 999, 1000};
    int64_t *sel = calloc(N_SAMPLES, sizeof(*sel));
    size_t n = 0;
    double sum = 0;
    char tags[96] = "";
    char text[192];

    assert_non_null(sel);
    for (size_t i = 0; i < N_SAMPLES; i++) {
        if ((name_i < 0 || sample_name[i] == name_i) &&
            (step_i < 0 || sample_step[i] == step_i)) {
            sel[n++] = samples[i];
            sum += (double)samples[i];
        }
    }
    assert_true(n > 100);
    qsort(sel, n, sizeof(*sel), cmp_i64);
    if (name_i >= 0 && step_i >= 0) {
        snprintf(tags, sizeof(tags), "{name:%s,step:\"%s\"}", names[name_i],
                 steps[step_i]);
    } else if (name_i >= 0) {
        snprintf(tags, sizeof(tags), "{name:%s}", names[name_i]);
    } else if (step_i >= 0) {
        snprintf(tags, sizeof(tags), "{step:\"%s\"}", steps[step_i]);
    }
    for (size_t k = 0; k < ARRAY_LEN(ps); k++) {
        double want = (double)exact_percentile(sel, n, ps[k]) / 1e6;
        struct threshold_eval ev;

        snprintf(text, sizeof(text), "http_req_duration%s: p(%g)<1h", tags,
                 (double)ps[k] / 10);
        ev = eval(text, s, S);
        if (!ev.passed || !ev.has_data || ev.observed < want * (1 - 1e-12) ||
            ev.observed > want * (1 + rel)) {
            fail_msg("%s: observed %.9g ms, exact %.9g ms", text, ev.observed,
                     want);
        }
    }
    snprintf(text, sizeof(text), "http_req_duration%s: med<1h", tags);
    assert_true(eval(text, s, S).observed >=
                (double)exact_percentile(sel, n, 500) / 1e6 * (1 - 1e-12));
    /* min, max, count and the mean are exact; the bounds are met exactly. */
    snprintf(text, sizeof(text), "http_req_duration%s: min>=%" PRId64 "ns",
             tags, sel[0]);
    expect(text, s, S, true, true, (double)sel[0] / 1e6);
    snprintf(text, sizeof(text), "http_req_duration%s: min>%" PRId64 "ns", tags,
             sel[0]);
    expect(text, s, S, false, true, (double)sel[0] / 1e6);
    snprintf(text, sizeof(text), "http_req_duration%s: max<=%" PRId64 "ns",
             tags, sel[n - 1]);
    expect(text, s, S, true, true, (double)sel[n - 1] / 1e6);
    snprintf(text, sizeof(text), "http_req_duration%s: max<%" PRId64 "ns", tags,
             sel[n - 1]);
    expect(text, s, S, false, true, (double)sel[n - 1] / 1e6);
    snprintf(text, sizeof(text), "http_req_duration%s: count==%zu", tags, n);
    expect(text, s, S, true, true, (double)n);
    snprintf(text, sizeof(text), "http_req_duration%s: avg<1h", tags);
    expect(text, s, S, true, true, sum / (double)n / 1e6);
    free(sel);
}

static void
test_threshold_selects_by_name_and_step_and_matches_exact_figures(void **state)
{
    struct snap *s = new_snap();
    int bits = hist_get_config(s->iteration_ns).sub_bucket_bits;
    double rel = 1.0 / (double)(INT64_C(1) << bits);
    int64_t *samples = calloc(N_SAMPLES, sizeof(*samples));
    int *sample_name = calloc(N_SAMPLES, sizeof(*sample_name));
    int *sample_step = calloc(N_SAMPLES, sizeof(*sample_step));
    uint64_t x = 42;

    (void)state;
    assert_non_null(samples);
    assert_non_null(sample_name);
    assert_non_null(sample_step);
    /* Log-uniform over 10 us .. ~10 s, so buckets of every width fill. */
    for (size_t i = 0; i < N_SAMPLES; i++) {
        int64_t ns = 10000;
        int doublings = (int)(next_random(&x) % 20);

        for (int d = 0; d < doublings; d++) {
            ns *= 2;
        }
        ns += (int64_t)(next_random(&x) % (uint64_t)ns);
        samples[i] = ns;
        sample_name[i] = (int)(next_random(&x) % N_NAMES);
        sample_step[i] = (int)(next_random(&x) % N_STEPS);
        request(s, steps[sample_step[i]], names[sample_name[i]], 200, ns);
    }
    check_selection(s, samples, sample_name, sample_step, -1, -1, rel);
    for (int ni = 0; ni < N_NAMES; ni++) {
        check_selection(s, samples, sample_name, sample_step, ni, -1, rel);
        for (int si = 0; si < N_STEPS; si++) {
            check_selection(s, samples, sample_name, sample_step, ni, si, rel);
        }
    }
    for (int si = 0; si < N_STEPS; si++) {
        check_selection(s, samples, sample_name, sample_step, -1, si, rel);
    }
    free(samples);
    free(sample_name);
    free(sample_step);
    snap_free(s);
}

static void test_threshold_counts_requests_bytes_and_status_slots(void **state)
{
    struct snap *s = new_snap();

    (void)state;
    for (int i = 0; i < 7; i++) {
        request(s, "login", "POST /login", 200, MS);
    }
    for (int i = 0; i < 3; i++) {
        request(s, "login", "GET /", 503, MS);
    }
    request(s, "", "GET /", 0, MS); /* timed out: no status */
    request(s, "", "GET /", 0, MS);
    request(s, "", "GET /", 302, MS);

    expect("http_reqs: count==13", s, S, true, true, 13);
    expect("http_reqs{step:login}: count==10", s, S, true, true, 10);
    expect("http_reqs{step:}: count==3", s, S, true, true, 3);
    expect("http_reqs{name:GET /}: count==6", s, S, true, true, 6);
    expect("http_reqs{name:GET /,step:login}: count==3", s, S, true, true, 3);
    expect("http_reqs{name:nope}: count==0", s, S, true, true, 0);
    expect("http_reqs{name:nope}: count>0", s, S, false, true, 0);
    expect("http_reqs{status:200}: count==7", s, S, true, true, 7);
    expect("http_reqs{status:503}: count==3", s, S, true, true, 3);
    expect("http_reqs{status:0}: count==2", s, S, true, true, 2);
    expect("http_reqs{status:302,step:}: count==1", s, S, true, true, 1);
    expect("http_reqs{status:302,step:login}: count==0", s, S, true, true, 0);

    /* Failed: an error or a status outside 200..399. */
    expect("http_req_failed: rate<0.5", s, S, true, true, 5.0 / 13);
    expect("http_req_failed: rate<0.3", s, S, false, true, 5.0 / 13);
    expect("http_req_failed{step:login}: rate==0.3", s, S, true, true, 0.3);
    expect("http_req_failed{name:POST /login}: rate==0", s, S, true, true, 0);
    expect("http_req_failed{status:503}: rate==1", s, S, true, true, 1);
    expect("http_req_failed{status:0}: rate==1", s, S, true, true, 1);
    expect("http_req_failed{status:302}: rate==0", s, S, true, true, 0);
    expect("http_req_failed{status:404}: rate==1", s, S, true, false, 0);
    expect("http_req_failed{name:nope}: rate>0.5", s, S, true, false, 0);

    /* 100 bytes sent and 1000 received per request. */
    expect("data_sent: count==1300", s, S, true, true, 1300);
    expect("data_received{step:login}: count==10000", s, S, true, true, 10000);
    expect("data_received{name:GET /,step:}: count==3000", s, S, true, true,
           3000);
    snap_free(s);
}

static void test_threshold_counter_rates_use_elapsed_time(void **state)
{
    struct snap *s = new_snap();

    (void)state;
    for (int i = 0; i < 10; i++) {
        snap_iteration(s, 2 * MS);
        request(s, "", "GET /", 200, MS);
    }
    s->dropped = 3;

    expect("iterations: count==10", s, 4 * S, true, true, 10);
    expect("iterations: rate>=2.5", s, 4 * S, true, true, 2.5);
    expect("iterations: rate>2.5", s, 4 * S, false, true, 2.5);
    expect("iterations: rate==20", s, 500 * MS, true, true, 20);
    expect("http_reqs: rate==5", s, 2 * S, true, true, 5);
    expect("http_reqs{name:other}: rate>1", s, 2 * S, false, true, 0);
    expect("dropped_iterations: count==0", s, S, false, true, 3);
    expect("dropped_iterations: rate<=1.5", s, 2 * S, true, true, 1.5);
    expect("data_sent: rate==250", s, 4 * S, true, true, 250);
    /* No time elapsed yet: a rate cannot be measured, a count can. */
    expect("iterations: rate>1000", s, 0, true, false, 0);
    expect("iterations: count>1000", s, 0, false, true, 10);
    snap_free(s);
}

static void test_threshold_checks_rate_and_gauges(void **state)
{
    struct snap *s = new_snap();

    (void)state;
    for (int i = 0; i < 10; i++) {
        snap_check(s, "status is 200", i < 9);
        snap_check(s, "has body", false);
    }
    s->vus = 5;
    s->vus_max = 8;

    expect("checks: rate==0.45", s, S, true, true, 0.45);
    expect("checks: rate>0.5", s, S, false, true, 0.45);
    expect("checks{check:status is 200}: rate==0.9", s, S, true, true, 0.9);
    expect("checks{check:has body}: rate>0", s, S, false, true, 0);
    expect("checks{check:nope}: rate>0.99", s, S, true, false, 0);
    expect("vus: value==5", s, S, true, true, 5);
    expect("vus_max: value>8", s, S, false, true, 8);
    expect("vus_max: value>=8", s, S, true, true, 8);
    snap_free(s);
}

static void test_threshold_reads_iteration_and_step_durations(void **state)
{
    struct snap *s = new_snap();

    (void)state;
    for (int i = 1; i <= 4; i++) {
        snap_iteration(s, i * S);
        snap_step(s, "login", i * MS);
        snap_step(s, "browse", 10 * i * MS);
    }
    snap_iteration(s, 90 * S);

    expect("iteration_duration: max==1m30s", s, S, true, true, 90000);
    expect("iteration_duration: max==1.5m", s, S, true, true, 90000);
    expect("iteration_duration: min==1s", s, S, true, true, 1000);
    expect("iteration_duration: avg==20s", s, S, true, true, 20000);
    expect("iteration_duration: count==5", s, S, true, true, 5);
    expect("step_duration{step:login}: max==4ms", s, S, true, true, 4);
    expect("step_duration{step:browse}: min==10ms", s, S, true, true, 10);
    expect("step_duration: count==8", s, S, true, true, 8);
    expect("step_duration: max<=40ms", s, S, true, true, 40);
    expect("step_duration{step:nope}: max<1ms", s, S, true, false, 0);
    expect("step_duration{step:nope}: count==0", s, S, true, true, 0);
    snap_free(s);
}

static void test_threshold_units_give_the_same_duration(void **state)
{
    static const char *const same[] = {
        "max==1.5ms",         "max==1.5",       "max==1500us",
        "max==1500000ns",     "max==0.0015s",   "max==1500\xc2\xb5s",
        "max==1500\xce\xbcs", "max==0.000025m", "max == 1.5 ms",
    };
    struct snap *s = new_snap();
    char text[64];

    (void)state;
    snap_iteration(s, 1500 * 1000);
    for (size_t i = 0; i < ARRAY_LEN(same); i++) {
        snprintf(text, sizeof(text), "iteration_duration: %s", same[i]);
        expect(text, s, S, true, true, 1.5);
    }
    expect("iteration_duration: max<1500000ns", s, S, false, true, 1.5);
    expect("iteration_duration: max>1499999ns", s, S, true, true, 1.5);
    expect("iteration_duration: max!=1.5ms", s, S, false, true, 1.5);
    snap_free(s);
}

static void test_threshold_without_samples_passes_unless_counting(void **state)
{
    static const struct {
        const char *text;
        bool passed;
        bool has_data;
    } cases[] = {
        {"http_req_duration: p(95)<1ms", true, false},
        {"http_req_duration: avg>1h", true, false},
        {"http_req_duration: count>0", false, true},
        {"http_req_tls_handshaking: max<1ms", true, false},
        {"iteration_duration: min>1s", true, false},
        {"step_duration: med<1ms", true, false},
        {"http_req_failed: rate<0.01", true, false},
        {"checks: rate>0.99", true, false},
        {"http_reqs: count>0", false, true},
        {"http_reqs: rate>0", false, true},
        {"iterations: count>=1", false, true},
        {"data_received: count==0", true, true},
        {"dropped_iterations: count==0", true, true},
        {"vus: value>0", false, true},
    };
    struct snap *s = new_snap();

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        expect(cases[i].text, s, S, cases[i].passed, cases[i].has_data, 0);
    }
    snap_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_parses_valid_forms),
        cmocka_unit_test(test_threshold_canonical_text_parses_back_the_same),
        cmocka_unit_test(
            test_threshold_refuses_invalid_forms_naming_what_and_where),
        cmocka_unit_test(test_threshold_quotes_the_text_escaped_and_cut),
        cmocka_unit_test(test_threshold_cuts_the_message_to_errlen),
        cmocka_unit_test(
            test_threshold_percentiles_come_from_the_merged_histogram),
        cmocka_unit_test(
            test_threshold_selects_by_name_and_step_and_matches_exact_figures),
        cmocka_unit_test(test_threshold_counts_requests_bytes_and_status_slots),
        cmocka_unit_test(test_threshold_counter_rates_use_elapsed_time),
        cmocka_unit_test(test_threshold_checks_rate_and_gauges),
        cmocka_unit_test(test_threshold_reads_iteration_and_step_durations),
        cmocka_unit_test(test_threshold_units_give_the_same_duration),
        cmocka_unit_test(test_threshold_without_samples_passes_unless_counting),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
