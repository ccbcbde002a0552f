/* The result model: final outcome, flaky and soft failures, counts, and
 * how a suite run's result is decided. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "result.h"

static void add(struct result_suite *s, const char *name, int n,
                const enum result_kind *kinds, bool soft)
{
    struct result_test *t = result_suite_add_test(s, name);

    for (int i = 0; i < n; i++) {
        struct result_attempt *a = result_test_add_attempt(t, 0);

        a->result = kinds[i];
        a->soft_failure = soft;
    }
}

static void
test_result_marks_flaky_only_when_passing_after_failure(void **state)
{
    struct result_suite s;
    static const enum result_kind fail_pass[] = {RESULT_FAILED, RESULT_PASSED};
    static const enum result_kind err_pass[] = {RESULT_ERROR, RESULT_PASSED};
    static const enum result_kind pass_fail[] = {RESULT_PASSED, RESULT_FAILED};
    static const enum result_kind pass[] = {RESULT_PASSED};

    (void)state;
    result_suite_init(&s, "x", "ns");
    add(&s, "a", 2, fail_pass, false);
    add(&s, "b", 2, err_pass, false);
    add(&s, "c", 2, pass_fail, false);
    add(&s, "d", 1, pass, false);
    assert_true(result_test_is_flaky(&s.tests[0]));
    assert_true(result_test_is_flaky(&s.tests[1]));
    assert_false(result_test_is_flaky(&s.tests[2]));
    assert_false(result_test_is_flaky(&s.tests[3]));
    assert_int_equal(s.tests[0].attempts[1].attempt, 2);
    assert_int_equal(result_test_result(&s.tests[2]), RESULT_FAILED);
    result_suite_cleanup(&s);
}

static void test_result_counts_final_attempts(void **state)
{
    struct result_suite s;
    struct result_counts c;
    static const enum result_kind fail_pass[] = {RESULT_FAILED, RESULT_PASSED};
    static const enum result_kind skip[] = {RESULT_SKIPPED};
    static const enum result_kind err[] = {RESULT_ERROR};
    static const enum result_kind fail[] = {RESULT_FAILED};

    (void)state;
    result_suite_init(&s, "x", "ns");
    add(&s, "a", 2, fail_pass, false);
    add(&s, "b", 1, skip, false);
    add(&s, "c", 1, err, false);
    add(&s, "d", 1, fail, true);
    result_suite_counts(&s, &c);
    assert_int_equal(c.tests, 4);
    assert_int_equal(c.passed, 1);
    assert_int_equal(c.skipped, 1);
    assert_int_equal(c.errors, 1);
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.soft_failures, 1);
    assert_int_equal(c.flaky, 1);
    assert_int_equal(c.attempts, 5);
    result_suite_cleanup(&s);
}

static void test_result_suite_outcome_rules(void **state)
{
    struct result_suite s;
    static const enum result_kind pass[] = {RESULT_PASSED};
    static const enum result_kind fail[] = {RESULT_FAILED};
    static const enum result_kind err[] = {RESULT_ERROR};
    static const enum result_kind skip[] = {RESULT_SKIPPED};
    const struct result_suite *all[1] = {&s};

    (void)state;
    result_suite_init(&s, "x", "ns");
    add(&s, "p", 1, pass, false);
    add(&s, "s", 1, skip, false);
    result_suite_finish(&s);
    assert_int_equal(s.result, RESULT_PASSED);
    assert_int_equal(result_exit_code(all, 1), 0);

    add(&s, "soft", 1, err, true);
    result_suite_finish(&s);
    assert_int_equal(s.result, RESULT_PASSED);

    add(&s, "f", 1, fail, false);
    result_suite_finish(&s);
    assert_int_equal(s.result, RESULT_FAILED);
    assert_int_equal(result_exit_code(all, 1), 1);

    add(&s, "e", 1, err, false);
    result_suite_finish(&s);
    assert_int_equal(s.result, RESULT_ERROR);
    result_suite_cleanup(&s);

    result_suite_init(&s, "x", "ns");
    add(&s, "p", 1, pass, false);
    s.teardown.ran = true;
    s.teardown.result = RESULT_FAILED;
    result_suite_finish(&s);
    assert_int_equal(s.result, RESULT_ERROR);
    s.teardown.result = RESULT_PASSED;
    s.setup.ran = true;
    s.setup.result = RESULT_ERROR;
    result_suite_finish(&s);
    assert_int_equal(s.result, RESULT_ERROR);
    result_suite_cleanup(&s);
}

static void test_result_kinds_round_trip(void **state)
{
    enum result_kind k;

    (void)state;
    for (int i = RESULT_NONE; i <= RESULT_ERROR; i++) {
        assert_int_equal(result_kind_parse(result_kind_str(i), &k), ST_OK);
        assert_int_equal(k, i);
    }
    assert_int_equal(result_kind_parse("bogus", &k), ST_INVALID);
    assert_string_equal(result_kind_str(99), "none");
}

static void test_result_kv_sets_replaces_and_gets(void **state)
{
    struct result_kv *kv = NULL;
    size_t n = 0;

    (void)state;
    result_kv_set(&kv, &n, "a", "1");
    result_kv_set(&kv, &n, "b", "2");
    result_kv_set(&kv, &n, "a", "3");
    assert_int_equal(n, 2);
    assert_string_equal(result_kv_get(kv, n, "a"), "3");
    assert_null(result_kv_get(kv, n, "c"));
    result_kv_free(kv, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_result_marks_flaky_only_when_passing_after_failure),
        cmocka_unit_test(test_result_counts_final_attempts),
        cmocka_unit_test(test_result_suite_outcome_rules),
        cmocka_unit_test(test_result_kinds_round_trip),
        cmocka_unit_test(test_result_kv_sets_replaces_and_gets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
