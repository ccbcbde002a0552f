/* Report writers against expected files in tests/data/report/: go test text
 * (verbose and quiet), test2json, JUnit. The same two suite runs, built
 * here as an event stream and as results, cover every outcome: pass, fail,
 * skip with a reason, error with a reason, soft failure, flaky with a
 * retry, setup failure with a run-level reason, suite-level output, text
 * that needs escaping (invalid UTF-8, control characters, < & " and
 * U+2028) and Go's rounding of times. Smaller tests pin what the files do
 * not show: long test2json lines, tests without a finished attempt, and
 * the jsonw module's Go-compatible strings and numbers.
 *
 * To see a difference, the test writes what it got next to the expected
 * file as <name>.got. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "jsonw.h"
#include "report.h"
#include "report_int.h"
#include "result.h"

#define T0 INT64_C(1795338245000000000) /* 2026-11-22T09:04:05Z */
#define T1 (T0 + 2000 * MS)             /* the second suite's start */
#define MS INT64_C(1000000)

static const char weird[] = "bytes: \xff\xfe ctl:\x01\b\f <tag> & \"q\" "
                            "sep:\xe2\x80\xa8 ok:\xc3\xa9\n";

/* The suite the scripted events belong to. */
static const char *script_suite;
static const char *script_ns;

/* One scripted step: an event of the current suite. */
static void ev(struct reporter *r, struct report_event e)
{
    e.suite = script_suite;
    e.ns = script_ns;
    report_emit(r, &e);
}

static void out(struct reporter *r, const char *test, int64_t t,
                const char *text)
{
    ev(r, (struct report_event){.kind = REPORT_OUTPUT,
                                .time_unix_ns = t,
                                .test = test,
                                .output = text,
                                .output_len = strlen(text)});
}

static void run(struct reporter *r, const char *test, int attempt, int max,
                int64_t t)
{
    ev(r, (struct report_event){.kind = REPORT_TEST_RUN,
                                .time_unix_ns = t,
                                .test = test,
                                .attempt = attempt,
                                .max_attempts = max});
}

static void end(struct reporter *r, struct report_event e)
{
    e.kind = REPORT_TEST_END;
    ev(r, e);
}

/* payments/orders: every test outcome; teardown fails, so the run errors.
 * billing/invoices: setup fails, its test is skipped with a note the runner
 * printed, and the run is cancelled. */
static void script(struct reporter *r)
{
    script_suite = "orders";
    script_ns = "payments";
    ev(r,
       (struct report_event){.kind = REPORT_SUITE_START, .time_unix_ns = T0});
    out(r, NULL, T0 + 1 * MS, "    orders.c:10: setup: server at :8080\n");

    run(r, "test_pass", 1, 1, T0 + 2 * MS);
    /* 125 ms prints as 0.12s: Go rounds the tie to even. */
    end(r, (struct report_event){.time_unix_ns = T0 + 3 * MS,
                                 .test = "test_pass",
                                 .attempt = 1,
                                 .max_attempts = 1,
                                 .result = RESULT_PASSED,
                                 .elapsed_ns = 125 * MS});

    run(r, "test_fail", 1, 1, T0 + 4 * MS);
    out(r, "test_fail", T0 + 5 * MS,
        "    orders.c:20: check failed: status == 200\n"
        "        status = 503\n");
    out(r, "test_fail", T0 + 5 * MS, "raw line without newline");
    end(r, (struct report_event){.time_unix_ns = T0 + 16 * MS,
                                 .test = "test_fail",
                                 .attempt = 1,
                                 .max_attempts = 1,
                                 .result = RESULT_FAILED,
                                 .elapsed_ns = 12 * MS});

    run(r, "test_skip", 1, 1, T0 + 17 * MS);
    end(r, (struct report_event){.time_unix_ns = T0 + 17 * MS,
                                 .test = "test_skip",
                                 .attempt = 1,
                                 .max_attempts = 1,
                                 .result = RESULT_SKIPPED,
                                 .reason = "filtered out by --run pass"});

    run(r, "test_crash", 1, 1, T0 + 18 * MS);
    out(r, "test_crash", T0 + 19 * MS, weird);
    end(r, (struct report_event){
               .time_unix_ns = T0 + 20 * MS,
               .test = "test_crash",
               .attempt = 1,
               .max_attempts = 1,
               .result = RESULT_ERROR,
               .elapsed_ns = 2 * MS,
               .reason = "killed by signal SIGSEGV (Segmentation fault)"});

    run(r, "test_soft", 1, 1, T0 + 21 * MS);
    out(r, "test_soft", T0 + 21 * MS, "    orders.c:40: v2 not deployed\n");
    end(r, (struct report_event){.time_unix_ns = T0 + 22 * MS,
                                 .test = "test_soft",
                                 .attempt = 1,
                                 .max_attempts = 1,
                                 .result = RESULT_FAILED,
                                 .soft_failure = true,
                                 .elapsed_ns = 1 * MS});

    run(r, "test_flaky", 1, 2, T0 + 23 * MS);
    out(r, "test_flaky", T0 + 24 * MS, "    orders.c:50: transient\n");
    end(r, (struct report_event){.time_unix_ns = T0 + 25 * MS,
                                 .test = "test_flaky",
                                 .attempt = 1,
                                 .max_attempts = 2,
                                 .result = RESULT_FAILED,
                                 .retry = true,
                                 .elapsed_ns = 2 * MS});
    run(r, "test_flaky", 2, 2, T0 + 26 * MS);
    end(r, (struct report_event){.time_unix_ns = T0 + 1526 * MS,
                                 .test = "test_flaky",
                                 .attempt = 2,
                                 .max_attempts = 2,
                                 .result = RESULT_PASSED,
                                 .flaky = true,
                                 .elapsed_ns = 1500 * MS});
    out(r, NULL, T0 + 1527 * MS, "    orders.c:90: teardown\n");
    ev(r, (struct report_event){.kind = REPORT_SUITE_END,
                                .time_unix_ns = T0 + 1528 * MS,
                                .result = RESULT_ERROR,
                                .elapsed_ns = 1528 * MS});

    script_suite = "invoices";
    script_ns = "billing";
    ev(r,
       (struct report_event){.kind = REPORT_SUITE_START, .time_unix_ns = T1});
    out(r, NULL, T1 + 1 * MS,
        "    invoices.c:12: setup: connect db: connection refused\n");
    run(r, "test_total", 1, 1, T1 + 2 * MS);
    out(r, "test_total", T1 + 2 * MS,
        "    handoff: skipped: setup failed: connection refused\n");
    end(r, (struct report_event){.time_unix_ns = T1 + 2 * MS,
                                 .test = "test_total",
                                 .attempt = 1,
                                 .max_attempts = 1,
                                 .result = RESULT_SKIPPED,
                                 .reason = "setup failed: connection refused"});
    out(r, NULL, T1 + 3 * MS, "    handoff: cancel requested by alice\n");
    /* 62.5 ms: "0.062s" in the ok line (printf), 0.063 as Elapsed
     * (Duration.Round), as go test -json writes them. */
    ev(r, (struct report_event){.kind = REPORT_SUITE_END,
                                .time_unix_ns = T1 + 62 * MS,
                                .result = RESULT_ERROR,
                                .elapsed_ns = 62500000,
                                .reason = "cancelled by alice"});
}

static struct result_attempt *attempt(struct result_suite *s, const char *name,
                                      enum result_kind k, int64_t start_ms,
                                      int64_t dur_ms, const char *log)
{
    struct result_test *t = NULL;
    struct result_attempt *a;

    for (size_t i = 0; i < s->n_tests; i++) {
        if (strcmp(s->tests[i].name, name) == 0) {
            t = &s->tests[i];
        }
    }
    if (!t) {
        t = result_suite_add_test(s, name);
    }
    a = result_test_add_attempt(t, 0);
    a->result = k;
    a->start_unix_ns = T0 + start_ms * MS;
    a->duration_ns = dur_ms * MS;
    buf_adds(&a->log, log);
    return a;
}

static void build(struct result_suite *s)
{
    struct result_attempt *a;

    result_suite_init(s, "orders", "payments");
    s->start_unix_ns = T0;
    s->duration_ns = 1528 * MS;
    s->setup.ran = true;
    s->setup.result = RESULT_PASSED;
    buf_adds(&s->setup.log, "    orders.c:10: setup: server at :8080\n");
    s->teardown.ran = true;
    s->teardown.result = RESULT_FAILED;
    s->teardown.reason = strdup("could not delete the namespace");
    buf_adds(&s->teardown.log, "    orders.c:90: teardown\n");
    attempt(s, "test_pass", RESULT_PASSED, 2, 125, "");
    attempt(s, "test_fail", RESULT_FAILED, 4, 12,
            "    orders.c:20: check failed: status == 200\n"
            "        status = 503\nraw line without newline\n");
    a = attempt(s, "test_skip", RESULT_SKIPPED, 17, 0, "");
    a->reason = strdup("filtered out by --run pass");
    a = attempt(s, "test_crash", RESULT_ERROR, 18, 2, weird);
    a->reason = strdup("killed by signal SIGSEGV (Segmentation fault)");
    a = attempt(s, "test_soft", RESULT_FAILED, 21, 1,
                "    orders.c:40: v2 not deployed\n");
    a->soft_failure = true;
    attempt(s, "test_flaky", RESULT_FAILED, 23, 2,
            "    orders.c:50: transient\n");
    attempt(s, "test_flaky", RESULT_PASSED, 26, 1500, "");
    result_suite_finish(s);
}

static void build_setup_failure(struct result_suite *s)
{
    struct result_attempt *a;

    result_suite_init(s, "invoices", "billing");
    s->start_unix_ns = T1;
    s->duration_ns = 62500000;
    s->setup.ran = true;
    s->setup.result = RESULT_ERROR;
    s->setup.reason = strdup("connect db: connection refused");
    s->setup.duration_ns = 1 * MS;
    buf_adds(&s->setup.log,
             "    invoices.c:12: setup: connect db: connection refused\n");
    a = attempt(s, "test_total", RESULT_SKIPPED, 2002, 0,
                "    handoff: skipped: setup failed: connection refused\n");
    a->reason = strdup("setup failed: connection refused");
    s->reason = strdup("cancelled by alice");
    buf_adds(&s->log, "    handoff: cancel requested by alice\n");
    result_suite_finish(s);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    if (!f) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = calloc(1, (size_t)n + 1);
    if (fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

/* Compares got with tests/data/report/<name>; on a difference, writes got
 * beside it and fails. */
static void compare(const char *name, const char *got, size_t len)
{
    char path[1024];
    char *want;

    snprintf(path, sizeof(path), "%s/report/%s", HANDOFF_TEST_DATA_DIR, name);
    want = read_file(path);
    if (!want || strlen(want) != len || memcmp(want, got, len) != 0) {
        FILE *f;

        snprintf(path, sizeof(path), "%s/report/%s.got", HANDOFF_TEST_DATA_DIR,
                 name);
        f = fopen(path, "wb");
        if (f) {
            fwrite(got, 1, len, f);
            fclose(f);
        }
        free(want);
        fail_msg("%s differs from the expected file; got written to %s", name,
                 path);
    }
    free(want);
}

static void check_stream(struct reporter *(*make)(FILE *, bool), bool verbose,
                         const char *name)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct reporter *r = make(f, verbose);

    script(r);
    report_free(r);
    fclose(f);
    compare(name, text, len);
    free(text);
}

static struct reporter *make_text(FILE *f, bool verbose)
{
    return report_text_new(f, verbose);
}

static struct reporter *make_json(FILE *f, bool verbose)
{
    (void)verbose;
    return report_test2json_new(f);
}

static void test_report_text_verbose_matches_go_test_v(void **state)
{
    (void)state;
    check_stream(make_text, true, "text_verbose.txt");
}

static void test_report_text_quiet_shows_only_failures(void **state)
{
    (void)state;
    check_stream(make_text, false, "text_quiet.txt");
}

static void test_report_test2json_matches_go_stream(void **state)
{
    (void)state;
    check_stream(make_json, false, "test2json.json");
}

static void test_report_junit_matches_expected_xml(void **state)
{
    struct result_suite s;
    struct result_suite s2;
    const struct result_suite *all[2] = {&s, &s2};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    build(&s);
    build_setup_failure(&s2);
    assert_int_equal(report_junit_write(f, all, 2, "ci-runner-7"), ST_OK);
    fclose(f);
    compare("junit.xml", text, len);
    free(text);
    result_suite_cleanup(&s);
    result_suite_cleanup(&s2);
}

static void test_report_junit_counts_unfinished_tests_as_errors(void **state)
{
    struct result_suite s;
    const struct result_suite *all[1] = {&s};
    struct result_test *t;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    result_suite_init(&s, "s", "");
    result_suite_add_test(&s, "test_never_ran");
    t = result_suite_add_test(&s, "test_cut_off");
    result_test_add_attempt(t, 0); /* result stays NONE */
    result_suite_finish(&s);
    assert_int_equal(report_junit_write(f, all, 1, NULL), ST_OK);
    fclose(f);
    assert_non_null(strstr(text, "<testsuite name=\"s\" tests=\"2\" "
                                 "failures=\"0\" errors=\"2\" skipped=\"0\""));
    assert_non_null(strstr(text, "classname=\"s\" name=\"test_never_ran\""));
    assert_non_null(strstr(text, "<error message=\"did not run\" "
                                 "type=\"error\"></error>"));
    assert_non_null(strstr(text, "<error message=\"did not finish\" "
                                 "type=\"error\"></error>"));
    assert_non_null(strstr(text, "hostname=\"localhost\""));
    free(text);
    result_suite_cleanup(&s);
}

/* The Output of the n-th output event (0-based) in a test2json stream,
 * still JSON-escaped; NULL if there is none. */
static char *nth_output(const char *stream, int n)
{
    const char *p = stream;

    while ((p = strstr(p, "\"Output\":\"")) != NULL) {
        const char *start = p + strlen("\"Output\":\"");
        const char *end = strstr(start, "\"}\n");

        if (n-- == 0) {
            return end ? strndup(start, (size_t)(end - start)) : NULL;
        }
        p = start;
    }
    return NULL;
}

static void test_report_test2json_splits_long_lines_like_go(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct reporter *r = report_test2json_new(f);
    char line[2200];
    char want[1100];
    char *got;

    (void)state;
    /* 1023 bytes, then "é" across the 1024-byte mark, 1100 more and a
     * newline: Go's lineBuffer cuts before the "é", then after 1024 more
     * bytes, leaving a last event of the rest (78 bytes and the newline). */
    memset(line, 'a', 1023);
    memcpy(line + 1023, "\xc3\xa9", 2);
    memset(line + 1025, 'b', 1100);
    line[2125] = '\n';
    line[2126] = '\0';
    script_suite = "s";
    script_ns = "";
    ev(r, (struct report_event){.kind = REPORT_SUITE_START});
    out(r, NULL, 0, line);
    report_free(r);
    fclose(f);

    memset(want, 'a', 1023);
    want[1023] = '\0';
    got = nth_output(text, 0);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    memcpy(want, "\xc3\xa9", 2);
    memset(want + 2, 'b', 1022);
    want[1024] = '\0';
    got = nth_output(text, 1);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    memset(want, 'b', 78);
    memcpy(want + 78, "\\n", 3);
    got = nth_output(text, 2);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    assert_null(nth_output(text, 3));
    free(text);
}

static void test_report_elapsed_rounds_like_go(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct reporter *r = report_test2json_new(f);

    (void)state;
    /* testing prints "%.2f" (ties to even), test2json parses that back. */
    assert_true(report_test_elapsed_s(125 * MS) == 0.12);
    assert_true(report_test_elapsed_s(135 * MS) == 0.14);
    assert_true(report_test_elapsed_s(-5 * MS) == 0);
    /* The package: Duration.Round(ms).Seconds(), float error and all. */
    assert_true(report_pkg_elapsed_s(62500000) == 0.063);
    assert_true(report_pkg_elapsed_s(62499999) == 0.062);

    script_suite = "s";
    script_ns = "";
    ev(r, (struct report_event){.kind = REPORT_SUITE_START});
    ev(r, (struct report_event){.kind = REPORT_SUITE_END,
                                .result = RESULT_PASSED,
                                .elapsed_ns = 2345 * MS});
    report_free(r);
    fclose(f);
    assert_non_null(strstr(text, "\"Output\":\"ok  \\ts\\t2.345s\\n\"}"));
    assert_non_null(strstr(text, "\"Action\":\"pass\",\"Package\":\"s\","
                                 "\"Elapsed\":2.3449999999999998}"));
    free(text);
}

static void check_json_string(const char *in, size_t n, const char *want)
{
    struct buf b;

    buf_init(&b, 0);
    jsonw_string(&b, in, n);
    assert_string_equal(buf_str(&b), want);
    buf_cleanup(&b);
}

static void test_jsonw_string_escapes_like_go(void **state)
{
    (void)state;
    check_json_string("", 0, "\"\"");
    check_json_string("a\"b\\c/", 6, "\"a\\\"b\\\\c/\"");
    check_json_string("\b\f\n\r\t\x01\x1f\x7f", 8,
                      "\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
    check_json_string("x\0y", 3, "\"x\\u0000y\"");
    check_json_string("<a>&", 4, "\"\\u003ca\\u003e\\u0026\"");
    check_json_string("\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\xaa", 9,
                      "\"\\u2028\\u2029\xe2\x80\xaa\"");
    /* Each byte that starts no valid sequence: truncated, overlong,
     * surrogate. */
    check_json_string("\xe2\x80!", 3, "\"\\ufffd\\ufffd!\"");
    check_json_string("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
    check_json_string("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
    check_json_string("\xf0\x9f\x98\x80\xef\xbf\xbd", 7,
                      "\"\xf0\x9f\x98\x80\xef\xbf\xbd\"");
}

static void check_float(double v, const char *want)
{
    struct buf b;

    buf_init(&b, 0);
    jsonw_float64(&b, v);
    assert_string_equal(buf_str(&b), want);
    buf_cleanup(&b);
}

static void test_jsonw_float64_is_shortest_like_go(void **state)
{
    (void)state;
    check_float(0, "0");
    check_float(-0.0, "-0");
    check_float(0.01, "0.01");
    check_float(1.5, "1.5");
    check_float(100, "100");
    check_float(1.528, "1.528");
    check_float(0.1 + 0.2, "0.30000000000000004");
    check_float(-2.5, "-2.5");
    check_float(1e-6, "0.000001");
    check_float(1e20, "100000000000000000000");
    check_float(1e21, "1e+21");
    check_float(1.5e-7, "1.5e-7");
    check_float(1e-10, "1e-10");
    check_float(123456789.125, "123456789.125");
}

static void test_report_passing_suite_prints_one_line_quietly(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct reporter *r = report_text_new(f, false);

    (void)state;
    script_suite = "orders";
    script_ns = "payments";
    ev(r, (struct report_event){.kind = REPORT_SUITE_START});
    run(r, "test_a", 1, 1, T0);
    out(r, "test_a", T0, "noise\n");
    end(r, (struct report_event){.test = "test_a",
                                 .attempt = 1,
                                 .max_attempts = 1,
                                 .result = RESULT_PASSED});
    ev(r, (struct report_event){.kind = REPORT_SUITE_END,
                                .result = RESULT_PASSED,
                                .elapsed_ns = 1234 * MS});
    report_free(r);
    fclose(f);
    assert_string_equal(text, "PASS\nok  \tpayments/orders\t1.234s\n");
    free(text);
}

static void test_report_package_name_joins_namespace(void **state)
{
    char out_name[64];

    (void)state;
    assert_string_equal(
        report_package_name("ns", "s", out_name, sizeof(out_name)), "ns/s");
    assert_string_equal(
        report_package_name("", "s", out_name, sizeof(out_name)), "s");
    assert_string_equal(
        report_package_name(NULL, "s", out_name, sizeof(out_name)), "s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_text_verbose_matches_go_test_v),
        cmocka_unit_test(test_report_text_quiet_shows_only_failures),
        cmocka_unit_test(test_report_test2json_matches_go_stream),
        cmocka_unit_test(test_report_junit_matches_expected_xml),
        cmocka_unit_test(test_report_junit_counts_unfinished_tests_as_errors),
        cmocka_unit_test(test_report_test2json_splits_long_lines_like_go),
        cmocka_unit_test(test_report_elapsed_rounds_like_go),
        cmocka_unit_test(test_jsonw_string_escapes_like_go),
        cmocka_unit_test(test_jsonw_float64_is_shortest_like_go),
        cmocka_unit_test(test_report_passing_suite_prints_one_line_quietly),
        cmocka_unit_test(test_report_package_name_joins_namespace),
    };

    /* test2json's Time is local time: pin the zone. */
    setenv("TZ", "UTC", 1);
    tzset();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
