/* The suite registry: validation at start-up and effective settings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "registry.h"

static void fn(hf_t *t)
{
    (void)t;
}

static const struct hf_test two_tests[] = {
    {.name = "test_a", .fn = fn},
    {.name = "test_b", .fn = fn, .max_attempts = 3, .timeout_ms = 500},
    {.name = NULL},
};

static int reset(void **state)
{
    (void)state;
    registry_reset();
    return 0;
}

static void expect_error(const char *want)
{
    char err[512] = "";

    assert_int_equal(registry_check(err, sizeof(err)), ST_INVALID);
    if (!strstr(err, want)) {
        fail_msg("error \"%s\" does not mention \"%s\"", err, want);
    }
}

static void test_registry_accepts_valid_suites_with_defaults(void **state)
{
    static const struct hf_suite s = {.name = "orders", .tests = two_tests};
    char err[256];

    (void)state;
    hf_register_suite(&s);
    assert_int_equal(registry_check(err, sizeof(err)), ST_OK);
    assert_ptr_equal(registry_find("orders"), &s);
    assert_null(registry_find("nope"));
    assert_int_equal(registry_test_count(&s), 2);
    assert_string_equal(registry_namespace(&s), "default");
    assert_int_equal(registry_max_attempts(&s, &two_tests[0]), 1);
    assert_int_equal(registry_max_attempts(&s, &two_tests[1]), 3);
    assert_true(registry_test_timeout_ms(&s, &two_tests[0]) == 60000);
    assert_true(registry_test_timeout_ms(&s, &two_tests[1]) == 500);
    assert_true(registry_suite_timeout_ms(&s) == 3600000);
}

static void test_registry_rejects_duplicate_suite_names(void **state)
{
    static const struct hf_suite a = {.name = "orders", .tests = two_tests};
    static const struct hf_suite b = {.name = "orders", .tests = two_tests};

    (void)state;
    hf_register_suite(&a);
    hf_register_suite(&b);
    expect_error("duplicate suite name orders");
}

static void test_registry_rejects_invalid_names(void **state)
{
    static const struct hf_suite a = {.name = "has space", .tests = two_tests};

    (void)state;
    hf_register_suite(&a);
    expect_error("suite name \"has space\" is invalid");
}

static void test_registry_rejects_invalid_namespace(void **state)
{
    static const struct hf_suite a = {
        .name = "ok", .namespace = "bad/ns", .tests = two_tests};

    (void)state;
    hf_register_suite(&a);
    expect_error("namespace \"bad/ns\" is invalid");
}

static void test_registry_rejects_a_suite_without_tests(void **state)
{
    static const struct hf_suite a = {.name = "empty"};

    (void)state;
    hf_register_suite(&a);
    expect_error("suite empty has no tests");
}

static void test_registry_rejects_duplicate_test_names(void **state)
{
    static const struct hf_test dup[] = {
        {.name = "test_x", .fn = fn},
        {.name = "test_y", .fn = fn},
        {.name = "test_x", .fn = fn},
        {.name = NULL},
    };
    static const struct hf_suite a = {.name = "dups", .tests = dup};

    (void)state;
    hf_register_suite(&a);
    expect_error("duplicate test name test_x");
}

static void test_registry_rejects_negative_settings(void **state)
{
    static const struct hf_suite a = {
        .name = "neg", .max_attempts = -1, .tests = two_tests};

    (void)state;
    hf_register_suite(&a);
    expect_error("must not be negative");
}

static void test_registry_rejects_a_test_without_function(void **state)
{
    static const struct hf_test nofn[] = {{.name = "test_x"}, {.name = NULL}};
    static const struct hf_suite a = {.name = "nofn", .tests = nofn};

    (void)state;
    hf_register_suite(&a);
    expect_error("test test_x has no function");
}

static void test_registry_lists_names_for_error_messages(void **state)
{
    static const struct hf_suite a = {.name = "alpha", .tests = two_tests};
    static const struct hf_suite b = {.name = "beta", .tests = two_tests};
    char names[64];

    (void)state;
    hf_register_suite(&a);
    hf_register_suite(&b);
    registry_names(names, sizeof(names));
    assert_string_equal(names, "alpha, beta");
    assert_true(registry_is_valid_name("a.b-c_9"));
    assert_false(registry_is_valid_name(""));
    assert_false(registry_is_valid_name(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_registry_accepts_valid_suites_with_defaults,
                               reset),
        cmocka_unit_test_setup(test_registry_rejects_duplicate_suite_names,
                               reset),
        cmocka_unit_test_setup(test_registry_rejects_invalid_names, reset),
        cmocka_unit_test_setup(test_registry_rejects_invalid_namespace, reset),
        cmocka_unit_test_setup(test_registry_rejects_a_suite_without_tests,
                               reset),
        cmocka_unit_test_setup(test_registry_rejects_duplicate_test_names,
                               reset),
        cmocka_unit_test_setup(test_registry_rejects_negative_settings, reset),
        cmocka_unit_test_setup(test_registry_rejects_a_test_without_function,
                               reset),
        cmocka_unit_test_setup(test_registry_lists_names_for_error_messages,
                               reset),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    registry_reset();
    return rc;
}
