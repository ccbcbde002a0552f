/* Retention policy bodies: a table of bad bodies, each refused with the
 * right code and a message naming the problem; good bodies by scope. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "retention.h"

static void test_retention_refuses_bad_bodies_naming_the_problem(void **state)
{
    static const struct {
        const char *body;
        const char *code;
        const char *message;
    } cases[] = {
        {"", "malformed_json", "not valid JSON"},
        {"{", "malformed_json", "not valid JSON"},
        {"[1]", "malformed_json", "must be a JSON object"},
        {"{\"max_runs\":1,\"max_runs\":2}", "malformed_json", "duplicate"},
        {"{\"max_runs\":1,\"bogus\":1}", "unknown_field", "\"bogus\""},
        {"{}", "invalid_argument", "needs \"max_age\", \"max_runs\""},
        {"{\"max_runs\":null,\"max_age\":null}", "invalid_argument", "needs"},
        {"{\"max_runs\":0}", "invalid_argument", "\"max_runs\""},
        {"{\"max_runs\":100000001}", "invalid_argument", "\"max_runs\""},
        {"{\"max_runs\":1.5}", "invalid_argument", "\"max_runs\""},
        {"{\"max_runs\":true}", "invalid_argument", "\"max_runs\""},
        {"{\"max_age\":\"\"}", "invalid_argument", "\"max_age\""},
        {"{\"max_age\":\"1\"}", "invalid_argument", "\"max_age\""},
        {"{\"max_age\":\"500ms\"}", "invalid_argument", "\"max_age\""},
        {"{\"max_age\":\"0d\"}", "invalid_argument", "\"max_age\""},
        {"{\"max_age\":\"36501d\"}", "invalid_argument", "\"max_age\""},
        {"{\"max_age\":\"d\"}", "invalid_argument", "\"max_age\""},
        {"{\"max_age\":\"1.5d\"}", "invalid_argument", "\"max_age\""},
        {"{\"max_age\":60}", "invalid_argument", "\"max_age\""},
        {"{\"namespace\":\"\",\"max_runs\":1}", "invalid_argument",
         "\"namespace\""},
        {"{\"namespace\":\"a b\",\"max_runs\":1}", "invalid_argument",
         "\"namespace\""},
        {"{\"namespace\":[],\"max_runs\":1}", "invalid_argument",
         "\"namespace\""},
        {"{\"namespace\":\"x\",\"suite\":\"a/b\",\"max_runs\":1}",
         "invalid_argument", "\"suite\""},
        {"{\"suite\":\"a\",\"max_runs\":1}", "invalid_argument",
         "needs \"namespace\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct retention_policy p;
        const char *code = NULL;
        char err[400] = "";
        int rc = retention_parse(cases[i].body, strlen(cases[i].body), &p,
                                 &code, err, sizeof(err));

        if (rc != ST_INVALID || !code || strcmp(code, cases[i].code) != 0 ||
            !strstr(err, cases[i].message)) {
            fail_msg("%s: rc %d code %s message \"%s\" (want %s, \"%s\")",
                     cases[i].body, rc, code ? code : "(none)", err,
                     cases[i].code, cases[i].message);
        }
    }
}

static void test_retention_parses_each_scope_and_limit(void **state)
{
    struct retention_policy p;
    const char *code = NULL;
    char err[400];
    const char *b1 = "{\"max_age\":\"30d\"}";
    const char *b2 = "{\"namespace\":\"pay\",\"max_runs\":200,"
                     "\"max_age\":\"1h30m\"}";
    const char *b3 = "{\"namespace\":\"pay\",\"suite\":\"checkout\","
                     "\"max_runs\":2,\"max_age\":null}";

    (void)state;
    assert_int_equal(
        retention_parse(b1, strlen(b1), &p, &code, err, sizeof(err)), ST_OK);
    assert_string_equal(p.ns, "");
    assert_string_equal(p.suite, "");
    assert_int_equal(p.max_age_ms, INT64_C(30) * 24 * 3600 * 1000);
    assert_int_equal(p.max_runs, 0);
    assert_int_equal(
        retention_parse(b2, strlen(b2), &p, &code, err, sizeof(err)), ST_OK);
    assert_string_equal(p.ns, "pay");
    assert_string_equal(p.suite, "");
    assert_int_equal(p.max_age_ms, 90 * 60 * 1000);
    assert_int_equal(p.max_runs, 200);
    assert_int_equal(
        retention_parse(b3, strlen(b3), &p, &code, err, sizeof(err)), ST_OK);
    assert_string_equal(p.ns, "pay");
    assert_string_equal(p.suite, "checkout");
    assert_int_equal(p.max_age_ms, 0);
    assert_int_equal(p.max_runs, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retention_refuses_bad_bodies_naming_the_problem),
        cmocka_unit_test(test_retention_parses_each_scope_and_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
