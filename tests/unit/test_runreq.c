/* Run request validation: a table of bad bodies, each refused with the
 * right code and a message naming the field; good bodies with defaults. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runreq.h"

static void test_runreq_refuses_bad_bodies_naming_the_problem(void **state)
{
    static const struct {
        const char *body;
        const char *code;
        const char *message;
    } cases[] = {
        {"", "malformed_json", "not valid JSON"},
        {"{", "malformed_json", "not valid JSON"},
        {"[1]", "malformed_json", "must be a JSON object"},
        {"\"suite\"", "malformed_json", "not valid JSON"},
        {"{\"suite\":\"a\",\"suite\":\"b\"}", "malformed_json", "duplicate"},
        {"{\"suite\":\"a\",\"bogus\":1}", "unknown_field", "\"bogus\""},
        {"{}", "invalid_argument", "\"suite\" is required"},
        {"{\"suite\":5}", "invalid_argument", "\"suite\": want a string"},
        {"{\"suite\":\"has space\"}", "invalid_argument", "[A-Za-z0-9_.-]"},
        {"{\"suite\":\"a\",\"namespace\":\"x/y\"}", "invalid_argument",
         "[A-Za-z0-9_.-]"},
        {"{\"suite\":\"a\",\"run\":\"(\"}", "invalid_argument",
         "field \"run\" \"(\": invalid regular expression"},
        {"{\"suite\":\"a\",\"skip\":\"[z-a]\"}", "invalid_argument",
         "field \"skip\""},
        {"{\"suite\":\"a\",\"params\":[]}", "invalid_argument",
         "\"params\": want an object"},
        {"{\"suite\":\"a\",\"params\":{\"k\":1}}", "invalid_argument",
         "\"params.k\": want a string"},
        {"{\"suite\":\"a\",\"max_attempts\":0}", "invalid_argument",
         "\"max_attempts\": want an integer from 1 to 100"},
        {"{\"suite\":\"a\",\"max_attempts\":\"2\"}", "invalid_argument",
         "\"max_attempts\""},
        {"{\"suite\":\"a\",\"count\":1001}", "invalid_argument", "\"count\""},
        {"{\"suite\":\"a\",\"timeout\":\"soon\"}", "invalid_argument",
         "\"timeout\": not a duration: \"soon\""},
        {"{\"suite\":\"a\",\"timeout\":\"1000h\"}", "invalid_argument",
         "out of range"},
        {"{\"suite\":\"a\",\"queue_timeout\":10}", "invalid_argument",
         "\"queue_timeout\": want a string"},
        {"{\"suite\":\"a\",\"trigger\":\"schedule\"}", "invalid_argument",
         "\"trigger\""},
        {"{\"suite\":\"a\",\"initiated_by\":true}", "invalid_argument",
         "\"initiated_by\""},
        {"{\"suite\":\"a\\u0000b\"}", "malformed_json", "not valid JSON"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run_request r;
        struct runreq_error err = {0};
        int rc =
            runreq_parse(cases[i].body, strlen(cases[i].body), false, &r, &err);

        if (rc != ST_INVALID || strcmp(err.code, cases[i].code) != 0 ||
            !strstr(err.message, cases[i].message)) {
            fail_msg("body %s: got rc %d code %s message \"%s\"", cases[i].body,
                     rc, err.code ? err.code : "(none)", err.message);
        }
    }
}

static void test_runreq_accepts_a_full_body(void **state)
{
    const char *body =
        "{\"suite\":\"selftest\",\"namespace\":\"handoff\",\"run\":\"pass|"
        "flaky\",\"skip\":\"\",\"params\":{\"base_url\":\"http://x\"},"
        "\"initiated_by\":\"ci\",\"reference\":\"9f3c\",\"environment\":"
        "\"staging\",\"max_attempts\":2,\"timeout\":\"10m\",\"test_timeout\":"
        "\"30s\",\"queue_timeout\":\"1m\",\"count\":3,\"pool\":\"gpu\","
        "\"trigger\":\"cli\"}";
    struct run_request r;
    struct runreq_error err = {0};

    (void)state;
    assert_int_equal(runreq_parse(body, strlen(body), false, &r, &err), ST_OK);
    assert_string_equal(r.suite, "selftest");
    assert_string_equal(r.ns, "handoff");
    assert_string_equal(r.run_filter, "pass|flaky");
    assert_null(r.skip_filter);
    assert_string_equal(result_kv_get(r.params, r.n_params, "base_url"),
                        "http://x");
    assert_string_equal(r.trigger, "cli");
    assert_int_equal(r.max_attempts, 2);
    assert_int_equal(r.count, 3);
    assert_true(r.timeout_ms == 600000);
    assert_true(r.test_timeout_ms == 30000);
    assert_true(r.queue_timeout_ms == 60000);
    assert_string_equal(r.pool, "gpu");
    runreq_cleanup(&r);
}

static void test_runreq_fills_defaults(void **state)
{
    const char *body = "{\"suite\":\"s\",\"namespace\":null}";
    struct run_request r;
    struct runreq_error err = {0};

    (void)state;
    assert_int_equal(runreq_parse(body, strlen(body), false, &r, &err), ST_OK);
    assert_null(r.ns);
    assert_null(r.run_filter);
    assert_string_equal(r.initiated_by, "");
    assert_string_equal(r.pool, "default");
    assert_string_equal(r.trigger, "api");
    assert_int_equal(r.count, 1);
    assert_int_equal(r.max_attempts, 0);
    assert_true(r.queue_timeout_ms == 600000);
    runreq_cleanup(&r);
    body = "{\"suite\":\"s\",\"trigger\":\"schedule\"}";
    assert_int_equal(runreq_parse(body, strlen(body), true, &r, &err), ST_OK);
    assert_string_equal(r.trigger, "schedule");
    runreq_cleanup(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runreq_refuses_bad_bodies_naming_the_problem),
        cmocka_unit_test(test_runreq_accepts_a_full_body),
        cmocka_unit_test(test_runreq_fills_defaults),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
