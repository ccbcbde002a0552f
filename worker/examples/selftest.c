/* Suite "selftest": one test per outcome, each named for it. Running it
 * shows how Handoff reports each one, and that the runner survives crashes
 * and hangs. */
/* This example shows what a failed assert() does, so keep assert() even in
 * release builds, which define NDEBUG. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <handoff.h>

static void setup(hf_t *t)
{
    hf_logf(t, "setup: runs in each child runner, before the tests");
}

static void teardown(hf_t *t)
{
    hf_logf(t, "teardown: runs once, after the last test");
}

static void test_pass(hf_t *t)
{
    HF_CHECK_INT(t, 2 + 2, ==, 4);
    HF_CHECK_STR_EQ(t, hf_name(t), "test_pass");
}

static void test_check_fails(hf_t *t)
{
    int status = 503;

    /* A check marks the test failed and lets it go on. */
    HF_CHECK_INT(t, status, ==, 200);
    hf_logf(t, "still running after the failed check");
}

static void log_cleanup(hf_t *t, void *arg)
{
    (void)t;
    printf("cleanup ran: %s\n", (const char *)arg);
}

static void test_require_fails_runs_cleanup(hf_t *t)
{
    const char *body = "{\"state\":\"degraded\"}";

    hf_cleanup(t, log_cleanup, "registered first, runs last");
    hf_cleanup(t, log_cleanup, "registered last, runs first");
    /* A require stops the test; the cleanups still run. */
    HF_REQUIRE_STR_CONTAINS(t, body, "\"state\":\"ok\"");
    hf_logf(t, "never reached");
}

static void test_skip(hf_t *t)
{
    hf_skip(t, "the feature flag is off in this environment");
}

static void test_soft_failure(hf_t *t)
{
    /* A new check against a version that is not deployed everywhere yet:
     * its failure shows, but does not fail the suite run. */
    hf_soft_failure(t);
    hf_errorf(t, "endpoint /v2/orders answered 404 (expected until v2 ships)");
}

static void test_flaky_passes_on_second_attempt(hf_t *t)
{
    if (hf_attempt(t) == 1) {
        hf_fatalf(t, "attempt %d: simulated transient failure", hf_attempt(t));
    }
    hf_logf(t, "attempt %d: passed", hf_attempt(t));
}

/* A wild pointer, as a use-after-free or a corrupted struct gives. */
static volatile uintptr_t wild_address = 0x10;

static void test_segfault(hf_t *t)
{
    volatile int *wild = (volatile int *)wild_address;

    hf_logf(t, "about to write through a wild pointer");
    *wild = 42;
}

static void test_assert_abort(hf_t *t)
{
    int replicas = 2;

    hf_logf(t, "a plain assert() works too");
    assert(replicas == 3);
    (void)replicas;
}

static void test_timeout(hf_t *t)
{
    hf_logf(t,
            "spinning past the %lld ms timeout without checking "
            "hf_cancelled",
            (long long)hf_remaining_ms(t) + 1);
    for (volatile unsigned long i = 0;; i++) {
    }
}

static void test_values_and_spans(hf_t *t)
{
    hf_span *span;

    hf_set_value(t, "request_id", "req-7f3a");
    hf_set_value(t, "order_id", "42");
    span = hf_span_start(t, "create order");
    hf_span_set(span, "http.status", "%d", 201);
    hf_span_end(span);
    span = hf_span_start(t, "fetch order");
    hf_span_set(span, "order_id", "%s", hf_value(t, "order_id"));
    hf_span_end(span);
    HF_CHECK_STR_EQ(t, hf_value(t, "request_id"), "req-7f3a");
}

HF_SUITE(selftest, .namespace = "handoff",
         .description = "One test per outcome: how Handoff reports each",
         .setup = setup, .teardown = teardown,
         .tests = HF_TESTS(HF_TEST(test_pass), HF_TEST(test_check_fails),
                           HF_TEST(test_require_fails_runs_cleanup),
                           HF_TEST(test_skip), HF_TEST(test_soft_failure),
                           HF_TEST(test_flaky_passes_on_second_attempt,
                                   .max_attempts = 2),
                           HF_TEST(test_segfault), HF_TEST(test_assert_abort),
                           HF_TEST(test_timeout, .timeout_ms = 300),
                           HF_TEST(test_values_and_spans)));
