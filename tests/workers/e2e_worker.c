/* handoff-test-worker: suites for the distributed tests. Their behaviour is
 * steered by run parameters, so one binary serves every scenario: quick
 * passes, failures, tests that take a while (for kill -9, cancel and drain
 * tests), and parameter checks. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <handoff.h>

static long param_long(hf_t *t, const char *key, long def)
{
    const char *v = hf_param(t, key);

    return v ? strtol(v, NULL, 10) : def;
}

static void test_quick(hf_t *t)
{
    hf_logf(t, "quick test on attempt %d", hf_attempt(t));
    HF_CHECK(t, true);
}

/* Sleeps for param sleep_ms (default 100), waking for cancels. */
static void test_sleep(hf_t *t)
{
    long ms = param_long(t, "sleep_ms", 100);
    struct pollfd p = {.fd = hf_cancel_fd(t), .events = POLLIN};
    struct timespec start;
    struct timespec now;

    hf_logf(t, "sleeping %ld ms", ms);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long done;

        clock_gettime(CLOCK_MONOTONIC, &now);
        done = (now.tv_sec - start.tv_sec) * 1000 +
               (now.tv_nsec - start.tv_nsec) / 1000000;
        if (done >= ms || hf_cancelled(t)) {
            break;
        }
        poll(&p, 1, (int)(ms - done < 100 ? ms - done : 100));
    }
    hf_logf(t, "woke up%s", hf_cancelled(t) ? " (cancelled)" : "");
}

static void test_param(hf_t *t)
{
    const char *want = hf_param(t, "expect");

    hf_set_value(t, "expect", want ? want : "(unset)");
    HF_CHECK_STR_EQ(t, hf_param(t, "given"), want);
}

static void test_fails(hf_t *t)
{
    if (param_long(t, "fail", 0)) {
        hf_errorf(t, "failing because the run asked for it");
    }
}

HF_SUITE(e2e, .namespace = "test",
         .description = "Suites steered by run parameters, for distributed "
                        "tests",
         .tests = HF_TESTS(HF_TEST(test_quick), HF_TEST(test_sleep),
                           HF_TEST(test_param), HF_TEST(test_fails)));

/* Fails on its first attempt and passes on the next: flaky within a run
 * that allows two attempts. */
static void test_first_attempt_fails(hf_t *t)
{
    if (hf_attempt(t) == 1) {
        hf_errorf(t, "failing on attempt 1");
    }
}

HF_SUITE(retry, .namespace = "hist",
         .description = "A test that passes only when retried",
         .tests = HF_TESTS(HF_TEST(test_first_attempt_fails)));

static void test_noop(hf_t *t)
{
    (void)t;
}

/* Twenty no-op tests: the shape of the throughput benchmark's runs. */
static const struct hf_test noop_tests[] = {
    {.name = "test_noop_01", .fn = test_noop},
    {.name = "test_noop_02", .fn = test_noop},
    {.name = "test_noop_03", .fn = test_noop},
    {.name = "test_noop_04", .fn = test_noop},
    {.name = "test_noop_05", .fn = test_noop},
    {.name = "test_noop_06", .fn = test_noop},
    {.name = "test_noop_07", .fn = test_noop},
    {.name = "test_noop_08", .fn = test_noop},
    {.name = "test_noop_09", .fn = test_noop},
    {.name = "test_noop_10", .fn = test_noop},
    {.name = "test_noop_11", .fn = test_noop},
    {.name = "test_noop_12", .fn = test_noop},
    {.name = "test_noop_13", .fn = test_noop},
    {.name = "test_noop_14", .fn = test_noop},
    {.name = "test_noop_15", .fn = test_noop},
    {.name = "test_noop_16", .fn = test_noop},
    {.name = "test_noop_17", .fn = test_noop},
    {.name = "test_noop_18", .fn = test_noop},
    {.name = "test_noop_19", .fn = test_noop},
    {.name = "test_noop_20", .fn = test_noop},
    {.name = NULL},
};

HF_SUITE(noop20, .namespace = "test", .tests = noop_tests);

int main(int argc, char **argv)
{
    return hf_main(argc, argv);
}
