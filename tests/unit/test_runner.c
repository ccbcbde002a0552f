/* The runner against real child processes: every outcome, cleanup order,
 * retries and flaky marking, filters, timeouts, crash isolation, output
 * capture and caps, cancel, setup and teardown rules. The suites under test
 * are defined here and run in children forked by a real zygote. */
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "child.h"
#include "clock.h"
#include "fsutil.h"
#include "handoff.h"
#include "mem.h"
#include "registry.h"
#include "runner.h"
#include "zygote.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- Suites under test ------------------------------------------------ */

static void o_pass2_after_crashes(hf_t *t);
static void t_sleep300_b(hf_t *t);

static volatile uintptr_t bad_address = 0x10;

static void o_pass(hf_t *t)
{
    HF_CHECK(t, 1 + 1 == 2);
}

static void o_check(hf_t *t)
{
    int got = 3;

    HF_CHECK_INT(t, got, ==, 4);
    hf_logf(t, "after check");
}

static void o_require(hf_t *t)
{
    HF_REQUIRE_STR_EQ(t, "abc", "abd");
    hf_logf(t, "not reached");
}

static void o_skip(hf_t *t)
{
    hf_skipf(t, "skipped on purpose %d", 7);
}

static void o_soft(hf_t *t)
{
    hf_soft_failure(t);
    hf_errorf(t, "soft one");
}

static void o_segv(hf_t *t)
{
    (void)t;
    *(volatile int *)bad_address = 1;
}

static void o_abort(hf_t *t)
{
    (void)t;
    fprintf(stderr, "about to abort\n");
    abort();
}

static void o_exit(hf_t *t)
{
    (void)t;
    printf("calling exit\n");
    exit(3);
}

static void o_hang(hf_t *t)
{
    (void)t;
    for (;;) {
        sleep_ms(1000);
    }
}

HF_SUITE(outcomes, .namespace = "unit",
         .tests = HF_TESTS(HF_TEST(o_pass), HF_TEST(o_check),
                           HF_TEST(o_require), HF_TEST(o_skip), HF_TEST(o_soft),
                           HF_TEST(o_segv), HF_TEST(o_abort), HF_TEST(o_exit),
                           HF_TEST(o_hang, .timeout_ms = 100),
                           HF_TEST(o_pass2_after_crashes)));

static void cl_note(hf_t *t, void *arg)
{
    (void)t;
    printf("cleanup %s\n", (const char *)arg);
}

static void cl_fatal(hf_t *t, void *arg)
{
    (void)arg;
    printf("fatal cleanup\n");
    hf_fatalf(t, "a fatal call in a cleanup ends only that cleanup");
}

static void c_cleanups(hf_t *t)
{
    hf_cleanup(t, cl_note, "first");
    hf_cleanup(t, cl_note, "second");
    hf_cleanup(t, cl_fatal, NULL);
    hf_fatalf(t, "stop here");
}

HF_SUITE(cleanups, .tests = HF_TESTS(HF_TEST(c_cleanups)));

static void r_flaky(hf_t *t)
{
    if (hf_attempt(t) < 3) {
        hf_errorf(t, "attempt %d fails", hf_attempt(t));
    }
}

static void r_always(hf_t *t)
{
    hf_errorf(t, "always fails");
}

static void r_crash_once(hf_t *t)
{
    if (hf_attempt(t) == 1) {
        *(volatile int *)bad_address = 1;
    }
}

static void r_setup(hf_t *t)
{
    hf_logf(t, "setup ran");
}

HF_SUITE(retries, .max_attempts = 3, .setup = r_setup,
         .tests = HF_TESTS(HF_TEST(r_flaky), HF_TEST(r_always),
                           HF_TEST(r_crash_once, .max_attempts = 2)));

static void s_bad_setup(hf_t *t)
{
    hf_fatalf(t, "database unreachable");
}

static void s_teardown(hf_t *t)
{
    hf_logf(t, "teardown ran");
}

static void s_one(hf_t *t)
{
    (void)t;
}

HF_SUITE(setupfail, .setup = s_bad_setup, .teardown = s_teardown,
         .tests = HF_TESTS(HF_TEST(s_one), HF_TEST(o_pass)));

static void s_crash_setup(hf_t *t)
{
    (void)t;
    *(volatile int *)bad_address = 1;
}

HF_SUITE(setupcrash, .setup = s_crash_setup, .teardown = s_teardown,
         .tests = HF_TESTS(HF_TEST(s_one)));

static void s_bad_teardown(hf_t *t)
{
    hf_errorf(t, "could not delete the namespace");
}

HF_SUITE(teardownfail, .teardown = s_bad_teardown,
         .tests = HF_TESTS(HF_TEST(s_one)));

static void lt_setup(hf_t *t)
{
    printf("setup pid %d\n", (int)getpid());
    hf_logf(t, "setup");
}

static void lt_teardown(hf_t *t)
{
    hf_logf(t, "teardown in pid %d", (int)getpid());
}

HF_SUITE(lastcrash, .setup = lt_setup, .teardown = lt_teardown,
         .tests = HF_TESTS(HF_TEST(s_one), HF_TEST(o_segv)));

static void t_sleep300(hf_t *t)
{
    (void)t;
    sleep_ms(300);
}

HF_SUITE(suitetimeout, .timeout_ms = 450, .teardown = s_teardown,
         .tests = HF_TESTS(HF_TEST(t_sleep300), HF_TEST(t_sleep300_b),
                           HF_TEST(s_one)));

static void out_big(hf_t *t)
{
    char line[101];

    memset(line, 'x', 99);
    line[99] = '\n';
    line[100] = '\0';
    for (int i = 0; i < 1000; i++) {
        fputs(line, stdout);
    }
    hf_logf(t, "done printing");
}

static void out_order(hf_t *t)
{
    printf("a");
    hf_logf(t, "b");
    printf("c\n");
    fprintf(stderr, "d\n");
    hf_logf(t, "e\nf");
    printf("g \x1e h\n");
}

static void out_long_log(hf_t *t)
{
    char *msg = mem_alloc(20001);

    memset(msg, 'y', 20000);
    msg[20000] = '\0';
    hf_log(t, msg);
    free(msg);
}

HF_SUITE(output, .tests = HF_TESTS(HF_TEST(out_big), HF_TEST(out_order),
                                   HF_TEST(out_long_log)));

static void e_set(hf_t *t)
{
    const char *dir;
    char path[512];
    FILE *f;

    setenv("HANDOFF_UNIT_KEEP", "outer", 1);
    HF_REQUIRE_INT(t, hf_setenv(t, "HANDOFF_UNIT_KEEP", "inner"), ==, 0);
    HF_REQUIRE_INT(t, hf_setenv(t, "HANDOFF_UNIT_NEW", "new"), ==, 0);
    HF_CHECK_INT(t, hf_setenv(t, "BAD=NAME", "x"), ==, -1);
    dir = hf_tempdir(t);
    HF_REQUIRE_NOT_NULL(t, dir);
    snprintf(path, sizeof(path), "%s/file", dir);
    f = fopen(path, "w");
    HF_REQUIRE_NOT_NULL(t, f);
    fputs("data", f);
    fclose(f);
    HF_CHECK_STR_NE(t, hf_tempdir(t), dir);
    hf_set_value(t, "dir", dir);
    HF_CHECK_STR_EQ(t, getenv("HANDOFF_UNIT_KEEP"), "inner");
}

static const char *saved_dir(hf_t *t)
{
    static char dir[512];
    FILE *f = fopen(hf_param(t, "dirfile"), "r");

    dir[0] = '\0';
    if (f) {
        if (!fgets(dir, sizeof(dir), f)) {
            dir[0] = '\0';
        }
        fclose(f);
    }
    return dir;
}

static void e_save(hf_t *t, void *arg)
{
    FILE *f = fopen(hf_param(t, "dirfile"), "w");

    (void)arg;
    if (f) {
        fputs(hf_value(t, "dir") ? hf_value(t, "dir") : "", f);
        fclose(f);
    }
}

static void e_set_and_save(hf_t *t)
{
    hf_cleanup(t, e_save, NULL);
    e_set(t);
}

static void e_check(hf_t *t)
{
    struct stat st;

    HF_CHECK_STR_EQ(t, getenv("HANDOFF_UNIT_KEEP"), "outer");
    HF_CHECK_NULL(t, getenv("HANDOFF_UNIT_NEW"));
    HF_CHECK_INT(t, stat(saved_dir(t), &st), ==, -1);
    HF_CHECK_INT(t, (int)strlen(saved_dir(t)), >, 0);
}

HF_SUITE(environment,
         .tests = HF_TESTS(HF_TEST(e_set_and_save), HF_TEST(e_check)));

static void k_wait_cancel(hf_t *t)
{
    /* The descriptor must wake the poll: if it did not, the test would sit
     * here until the runner kills it, and its reason would say so. */
    struct pollfd p = {.fd = hf_cancel_fd(t), .events = POLLIN};

    while (!hf_cancelled(t)) {
        poll(&p, 1, (int)hf_remaining_ms(t));
    }
    hf_logf(t, "saw the cancel");
}

HF_SUITE(cancel, .teardown = s_teardown,
         .tests = HF_TESTS(HF_TEST(k_wait_cancel), HF_TEST(s_one)));

static void k_ignore(hf_t *t)
{
    (void)t;
    for (;;) {
        sleep_ms(1000);
    }
}

HF_SUITE(cancelkill, .tests = HF_TESTS(HF_TEST(k_ignore), HF_TEST(s_one)));

static void d_extend(hf_t *t)
{
    int64_t before = hf_deadline_ms(t);

    hf_set_timeout_ms(t, 2000);
    HF_CHECK_INT(t, hf_deadline_ms(t), >, before);
    sleep_ms(250);
    HF_CHECK(t, !hf_cancelled(t));
    HF_CHECK_INT(t, hf_remaining_ms(t), >, 0);
}

static void d_cooperate(hf_t *t)
{
    while (!hf_cancelled(t)) {
        sleep_ms(2);
    }
    HF_CHECK_INT(t, hf_remaining_ms(t), ==, 0);
}

HF_SUITE(deadlines, .test_timeout_ms = 100,
         .tests = HF_TESTS(HF_TEST(d_extend), HF_TEST(d_cooperate),
                           HF_TEST(s_one)));

static void v_crash_after_values(hf_t *t)
{
    hf_span *sp;

    hf_set_value(t, "request_id", "r-1");
    hf_set_value(t, "request_id", "r-2");
    sp = hf_span_start(t, "login");
    hf_span_set(sp, "user", "%s", "alice");
    hf_span_end(sp);
    hf_span_start(t, "left open");
    *(volatile int *)bad_address = 1;
}

static void v_open_span(hf_t *t)
{
    hf_span *sp = hf_span_start(t, "auto-ended");

    hf_span_set(sp, "k", "v");
    hf_set_value(t, "param",
                 hf_param(t, "target") ? hf_param(t, "target") : "(none)");
}

static void *thread_fatal(void *arg)
{
    hf_t *t = arg;

    hf_fatalf(t, "from another thread");
    return NULL;
}

static void v_thread_fatal(hf_t *t)
{
    pthread_t th;

    pthread_create(&th, NULL, thread_fatal, t);
    pthread_join(th, NULL);
    hf_logf(t, "test thread goes on");
}

HF_SUITE(values,
         .tests = HF_TESTS(HF_TEST(v_crash_after_values), HF_TEST(v_open_span),
                           HF_TEST(v_thread_fatal)));

static void g_spawn_sleeper(hf_t *t)
{
    pid_t pid = fork();
    char buf[32];

    if (pid == 0) {
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    snprintf(buf, sizeof(buf), "%d", (int)pid);
    hf_set_value(t, "sleeper", buf);
    *(volatile int *)bad_address = 1;
}

HF_SUITE(leftovers, .tests = HF_TESTS(HF_TEST(g_spawn_sleeper)));

static void o_pass2_after_crashes(hf_t *t)
{
    HF_CHECK(t, true);
}

static void t_sleep300_b(hf_t *t)
{
    t_sleep300(t);
}

/* ---- Harness ---------------------------------------------------------- */

static struct zygote *zyg;
static struct event_base *base;

struct capture {
    struct buf events; /* one line per event */
    bool done;
};

static void cap_event(void *arg, const struct report_event *ev)
{
    struct capture *c = arg;

    switch (ev->kind) {
    case REPORT_SUITE_START:
        buf_addf(&c->events, "start %s\n", ev->suite);
        break;
    case REPORT_TEST_RUN:
        buf_addf(&c->events, "run %s %d/%d\n", ev->test, ev->attempt,
                 ev->max_attempts);
        break;
    case REPORT_OUTPUT:
        buf_addf(&c->events, "out %s %.*s", ev->test ? ev->test : "-",
                 (int)ev->output_len, ev->output);
        break;
    case REPORT_TEST_END:
        buf_addf(&c->events, "end %s %s%s%s%s\n", ev->test,
                 result_kind_str(ev->result), ev->retry ? " retry" : "",
                 ev->flaky ? " flaky" : "", ev->soft_failure ? " soft" : "");
        break;
    case REPORT_SUITE_END:
        buf_addf(&c->events, "done %s\n", result_kind_str(ev->result));
        break;
    }
}

static void cap_done(void *arg, struct runner *r)
{
    struct capture *c = arg;

    (void)r;
    c->done = true;
    event_base_loopbreak(base);
}

struct cancel_at {
    struct runner *r;
    const char *reason;
};

static void do_cancel(evutil_socket_t fd, short what, void *arg)
{
    struct cancel_at *ca = arg;

    (void)fd;
    (void)what;
    runner_cancel(ca->r, ca->reason);
}

/* Runs suite with cfg (suite, callbacks filled in here); cancels after
 * cancel_after_ms when > 0. Returns the runner; caller frees. */
static struct runner *run(const char *suite, struct runner_config *cfg,
                          struct capture *cap, long cancel_after_ms)
{
    struct runner *r = NULL;
    struct event *timer = NULL;
    struct cancel_at ca;

    buf_init(&cap->events, 0);
    cap->done = false;
    cfg->suite = registry_find(suite);
    assert_non_null(cfg->suite);
    cfg->on_event = cap_event;
    cfg->on_done = cap_done;
    cfg->arg = cap;
    assert_int_equal(runner_start(base, zyg, cfg, &r), ST_OK);
    if (cancel_after_ms > 0) {
        struct timeval tv = {cancel_after_ms / 1000,
                             (cancel_after_ms % 1000) * 1000};

        ca.r = r;
        ca.reason = "cancelled by test";
        timer = evtimer_new(base, do_cancel, &ca);
        evtimer_add(timer, &tv);
    }
    event_base_dispatch(base);
    if (timer) {
        event_free(timer);
    }
    assert_true(cap->done);
    assert_true(runner_is_done(r));
    return r;
}

static const struct result_test *find_test(const struct result_suite *s,
                                           const char *name)
{
    for (size_t i = 0; i < s->n_tests; i++) {
        if (strcmp(s->tests[i].name, name) == 0) {
            return &s->tests[i];
        }
    }
    fail_msg("no test %s", name);
    return NULL;
}

static const struct result_attempt * final(const struct result_suite *s,
                                           const char *name)
{
    const struct result_test *t = find_test(s, name);

    assert_true(t->n_attempts > 0);
    return result_test_final(t);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle)) {
        fail_msg("\"%s\" does not contain \"%s\"", hay ? hay : "(null)",
                 needle);
    }
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p;
         p = strstr(p + strlen(needle), needle)) {
        n++;
    }
    return n;
}

static void finish_run(struct runner *r, struct capture *cap)
{
    runner_free(r);
    buf_cleanup(&cap->events);
}

/* ---- Tests ------------------------------------------------------------ */

static void test_runner_reports_each_outcome(void **state)
{
    struct runner_config cfg = {.kill_grace_ns = 200 * CLOCK_NS_PER_MS};
    struct capture cap;
    struct runner *r = run("outcomes", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);
    const struct result_attempt *a;

    (void)state;
    assert_int_equal(final(s, "o_pass")->result, RESULT_PASSED);

    a = final(s, "o_check");
    assert_int_equal(a->result, RESULT_FAILED);
    assert_contains(buf_str(&a->log), "check failed: got == 4");
    assert_contains(buf_str(&a->log), "got = 3");
    assert_contains(buf_str(&a->log), "test_runner.c:");
    assert_contains(buf_str(&a->log), "after check");

    a = final(s, "o_require");
    assert_int_equal(a->result, RESULT_FAILED);
    assert_contains(buf_str(&a->log), "require failed: \"abc\" == \"abd\"");
    assert_null(strstr(buf_str(&a->log), "not reached"));

    a = final(s, "o_skip");
    assert_int_equal(a->result, RESULT_SKIPPED);
    assert_contains(buf_str(&a->log), "skipped on purpose 7");

    a = final(s, "o_soft");
    assert_int_equal(a->result, RESULT_FAILED);
    assert_true(a->soft_failure);

    a = final(s, "o_segv");
    assert_int_equal(a->result, RESULT_ERROR);
    assert_contains(a->reason, "SIGSEGV");

    a = final(s, "o_abort");
    assert_int_equal(a->result, RESULT_ERROR);
    assert_contains(a->reason, "SIGABRT");
    assert_contains(a->reason, "about to abort");

    a = final(s, "o_exit");
    assert_int_equal(a->result, RESULT_ERROR);
    assert_contains(a->reason, "exited with status 3");
    assert_contains(buf_str(&a->log), "calling exit");

    a = final(s, "o_hang");
    assert_int_equal(a->result, RESULT_ERROR);
    assert_contains(a->reason, "timed out after 100ms; killed");

    assert_int_equal(final(s, "o_pass2_after_crashes")->result, RESULT_PASSED);
    assert_int_equal(s->result, RESULT_ERROR);
    /* Four crashes, four replacement children. */
    assert_int_equal(count_of(buf_str(&s->log), "starting a new child"), 4);
    finish_run(r, &cap);
}

static void test_runner_runs_cleanups_last_first_after_fatal(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("cleanups", &cfg, &cap, 0);
    const struct result_attempt *a = final(runner_result(r), "c_cleanups");
    const char *log = buf_str(&a->log);
    const char *f = strstr(log, "fatal cleanup");
    const char *second = strstr(log, "cleanup second");
    const char *first = strstr(log, "cleanup first");

    (void)state;
    assert_int_equal(a->result, RESULT_FAILED);
    assert_non_null(f);
    assert_non_null(second);
    assert_non_null(first);
    assert_true(strstr(log, "stop here") < f);
    assert_true(f < second);
    assert_true(second < first);
    finish_run(r, &cap);
}

static void test_runner_retries_failed_tests_and_marks_flaky(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("retries", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);
    const struct result_test *t = find_test(s, "r_flaky");

    (void)state;
    assert_int_equal(t->n_attempts, 3);
    assert_int_equal(t->attempts[0].result, RESULT_FAILED);
    assert_int_equal(t->attempts[1].result, RESULT_FAILED);
    assert_int_equal(t->attempts[2].result, RESULT_PASSED);
    assert_int_equal(t->attempts[2].attempt, 3);
    assert_true(result_test_is_flaky(t));
    assert_contains(buf_str(&cap.events), "end r_flaky failed retry\n");
    assert_contains(buf_str(&cap.events), "end r_flaky passed flaky\n");

    t = find_test(s, "r_always");
    assert_int_equal(t->n_attempts, 3);
    assert_int_equal(result_test_result(t), RESULT_FAILED);
    assert_false(result_test_is_flaky(t));

    /* A crash is retried in a new child, after setup runs again. */
    t = find_test(s, "r_crash_once");
    assert_int_equal(t->n_attempts, 2);
    assert_int_equal(t->attempts[0].result, RESULT_ERROR);
    assert_int_equal(t->attempts[1].result, RESULT_PASSED);
    assert_true(result_test_is_flaky(t));
    assert_int_equal(count_of(buf_str(&s->setup.log), "setup ran"), 2);
    assert_int_equal(s->result, RESULT_FAILED);
    finish_run(r, &cap);
}

static void test_runner_skips_filtered_tests_with_reason(void **state)
{
    const char *reasons[10] = {NULL, "filtered out by --run pass",
                               "filtered out by --run pass"};
    struct runner_config cfg = {.skip_reasons = reasons};
    struct capture cap;
    struct runner *r;
    struct result_suite *s;

    (void)state;
    for (int i = 3; i < 10; i++) {
        reasons[i] = "filtered out by --run pass";
    }
    reasons[9] = NULL;
    r = run("outcomes", &cfg, &cap, 0);
    s = runner_result(r);
    assert_int_equal(final(s, "o_pass")->result, RESULT_PASSED);
    assert_int_equal(final(s, "o_segv")->result, RESULT_SKIPPED);
    assert_string_equal(final(s, "o_segv")->reason,
                        "filtered out by --run pass");
    assert_int_equal(final(s, "o_pass2_after_crashes")->result, RESULT_PASSED);
    assert_int_equal(s->result, RESULT_PASSED);
    assert_int_equal(count_of(buf_str(&s->log), "starting a new child"), 0);
    finish_run(r, &cap);
}

static void
test_runner_setup_failure_skips_tests_and_runs_teardown(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("setupfail", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);
    const struct result_attempt *a = final(s, "s_one");

    (void)state;
    assert_int_equal(s->setup.result, RESULT_FAILED);
    assert_contains(buf_str(&s->setup.log), "database unreachable");
    assert_int_equal(a->result, RESULT_SKIPPED);
    assert_contains(buf_str(&a->log), "setup failed");
    assert_int_equal(final(s, "o_pass")->result, RESULT_SKIPPED);
    assert_true(s->teardown.ran);
    assert_contains(buf_str(&s->teardown.log), "teardown ran");
    assert_int_equal(s->result, RESULT_ERROR);
    finish_run(r, &cap);
}

static void test_runner_setup_crash_runs_teardown_alone(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("setupcrash", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);

    (void)state;
    assert_int_equal(s->setup.result, RESULT_ERROR);
    assert_contains(s->setup.reason, "SIGSEGV");
    assert_int_equal(final(s, "s_one")->result, RESULT_SKIPPED);
    assert_contains(buf_str(&s->teardown.log), "teardown ran");
    assert_int_equal(s->teardown.result, RESULT_PASSED);
    assert_int_equal(s->result, RESULT_ERROR);
    finish_run(r, &cap);
}

static void test_runner_teardown_failure_makes_run_error(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("teardownfail", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);

    (void)state;
    assert_int_equal(final(s, "s_one")->result, RESULT_PASSED);
    assert_int_equal(s->teardown.result, RESULT_FAILED);
    assert_contains(buf_str(&s->teardown.log), "could not delete");
    assert_int_equal(s->result, RESULT_ERROR);
    finish_run(r, &cap);
}

static void
test_runner_runs_setup_and_teardown_after_last_test_crash(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("lastcrash", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);

    (void)state;
    assert_int_equal(final(s, "o_segv")->result, RESULT_ERROR);
    /* Setup ran in the first child and again in the one for teardown. */
    assert_int_equal(count_of(buf_str(&s->setup.log), "setup pid"), 2);
    assert_int_equal(count_of(buf_str(&s->teardown.log), "teardown in pid"), 1);
    assert_int_equal(s->teardown.result, RESULT_PASSED);
    finish_run(r, &cap);
}

static void test_runner_suite_timeout_reports_unfinished_tests(void **state)
{
    struct runner_config cfg = {.kill_grace_ns = 100 * CLOCK_NS_PER_MS};
    struct capture cap;
    struct runner *r = run("suitetimeout", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);

    (void)state;
    assert_int_equal(final(s, "t_sleep300")->result, RESULT_PASSED);
    assert_int_equal(final(s, "t_sleep300_b")->result, RESULT_ERROR);
    assert_contains(final(s, "t_sleep300_b")->reason, "suite timed out");
    assert_int_equal(final(s, "s_one")->result, RESULT_SKIPPED);
    assert_contains(final(s, "s_one")->reason, "suite timed out after 450ms");
    assert_contains(s->reason, "suite timed out after 450ms");
    assert_contains(buf_str(&s->teardown.log), "teardown ran");
    assert_int_equal(s->result, RESULT_ERROR);
    finish_run(r, &cap);
}

static void test_runner_caps_output_and_reports_dropped_bytes(void **state)
{
    struct runner_config cfg = {.output_cap = 4096};
    struct capture cap;
    struct runner *r = run("output", &cfg, &cap, 0);
    const struct result_attempt *a = final(runner_result(r), "out_big");

    (void)state;
    assert_true(a->log.len < 4096 + 200);
    assert_true(a->log_dropped > 90000);
    assert_contains(buf_str(&a->log), "output truncated:");
    assert_contains(buf_str(&a->log), "cap 4096 bytes per test");
    assert_int_equal(a->result, RESULT_PASSED);
    finish_run(r, &cap);
}

static void test_runner_keeps_output_and_logs_in_order(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("output", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);
    const struct result_attempt *a = final(s, "out_order");
    char want[512];
    int line = 0;

    (void)state;
    /* The line of hf_logf(t, "b") in out_order, found from the log. */
    assert_int_equal(sscanf(strstr(buf_str(&a->log), "test_runner.c:"),
                            "test_runner.c:%d:", &line),
                     1);
    snprintf(want, sizeof(want),
             "a\n    test_runner.c:%d: b\nc\nd\n    test_runner.c:%d: e\n"
             "        f\ng \x1e h\n",
             line, line + 3);
    assert_string_equal(buf_str(&a->log), want);

    a = final(s, "out_long_log");
    assert_int_equal(a->result, RESULT_PASSED);
    assert_true(a->log.len > 20000);
    assert_int_equal(count_of(buf_str(&a->log), "yyyyyyyyyy"), 2000);
    finish_run(r, &cap);
}

static void test_runner_restores_env_and_removes_tempdirs(void **state)
{
    char file[] = "/tmp/handoff-unit-dirfile-XXXXXX";
    int fd = mkstemp(file);
    struct result_kv param = {(char *)"dirfile", file};
    struct runner_config cfg = {.params = &param, .n_params = 1};
    struct capture cap;
    struct runner *r;
    struct result_suite *s;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    r = run("environment", &cfg, &cap, 0);
    unlink(file);
    s = runner_result(r);
    assert_int_equal(final(s, "e_set_and_save")->result, RESULT_PASSED);
    assert_int_equal(final(s, "e_check")->result, RESULT_PASSED);
    assert_int_equal(s->result, RESULT_PASSED);
    finish_run(r, &cap);
}

/* A dir under parent named as a base of process pid, with a file in it;
 * returns its path (caller frees). */
static char *fake_base(const char *parent, pid_t pid, const char *tail)
{
    char *dir = mem_printf("%s/handoff-%d-%s", parent, (int)pid, tail);
    char *file = mem_printf("%s/left", dir);
    FILE *f;

    assert_int_equal(mkdir(dir, 0700), 0);
    f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    free(file);
    return dir;
}

/* The first run in a parent removes the bases of dead processes there
 * (killed, they could not), and only those. */
static void test_runner_removes_temp_bases_of_dead_processes(void **state)
{
    char parent[] = "/tmp/handoff-unit-parent-XXXXXX";
    struct runner_config cfg = {0};
    struct capture cap;
    struct stat st;
    pid_t dead = fork();
    char *stale;
    char *locked;
    char *alive;
    int lock_fd;

    (void)state;
    if (dead == 0) {
        _exit(0);
    }
    assert_true(dead > 0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    assert_non_null(mkdtemp(parent));
    stale = fake_base(parent, dead, "stale1");
    /* Dead here, but locked: a process of another pid namespace. */
    locked = fake_base(parent, dead, "lockd1");
    lock_fd = open(locked, O_RDONLY | O_DIRECTORY);
    assert_true(lock_fd >= 0);
    assert_int_equal(flock(lock_fd, LOCK_EX), 0);
    /* Alive (this process's parent), unlocked: an older version's. */
    alive = fake_base(parent, getppid(), "alive1");
    cfg.tempdir_parent = parent;
    finish_run(run("environment", &cfg, &cap, 0), &cap);
    assert_int_equal(stat(stale, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(stat(locked, &st), 0);
    assert_int_equal(stat(alive, &st), 0);
    close(lock_fd);
    fs_remove_tree(parent);
    free(stale);
    free(locked);
    free(alive);
}

static void test_runner_cancel_lets_test_return_and_skips_rest(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("cancel", &cfg, &cap, 150);
    struct result_suite *s = runner_result(r);

    (void)state;
    assert_int_equal(final(s, "k_wait_cancel")->result, RESULT_ERROR);
    assert_string_equal(final(s, "k_wait_cancel")->reason,
                        "interrupted: cancelled by test");
    assert_contains(buf_str(&final(s, "k_wait_cancel")->log), "saw the cancel");
    assert_int_equal(final(s, "s_one")->result, RESULT_SKIPPED);
    assert_string_equal(final(s, "s_one")->reason, "cancelled by test");
    assert_string_equal(s->reason, "cancelled by test");
    assert_contains(buf_str(&s->teardown.log), "teardown ran");
    assert_int_equal(s->result, RESULT_ERROR);
    finish_run(r, &cap);
}

static void test_runner_kills_test_that_ignores_cancel(void **state)
{
    struct runner_config cfg = {.kill_grace_ns = 100 * CLOCK_NS_PER_MS};
    struct capture cap;
    struct runner *r = run("cancelkill", &cfg, &cap, 100);
    struct result_suite *s = runner_result(r);

    (void)state;
    assert_int_equal(final(s, "k_ignore")->result, RESULT_ERROR);
    assert_contains(final(s, "k_ignore")->reason, "cancelled by test");
    assert_int_equal(final(s, "s_one")->result, RESULT_SKIPPED);
    finish_run(r, &cap);
}

static void test_runner_deadline_can_be_extended_and_observed(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("deadlines", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);
    const struct result_attempt *a;

    (void)state;
    assert_int_equal(final(s, "d_extend")->result, RESULT_PASSED);
    /* A test that returns once cancelled still timed out, but its child
     * lives on: no replacement. */
    a = final(s, "d_cooperate");
    assert_int_equal(a->result, RESULT_ERROR);
    assert_contains(a->reason, "timed out after 100ms");
    assert_null(strstr(a->reason, "killed"));
    assert_int_equal(final(s, "s_one")->result, RESULT_PASSED);
    assert_int_equal(count_of(buf_str(&s->log), "starting a new child"), 0);
    finish_run(r, &cap);
}

static void test_runner_keeps_values_and_spans_after_crash(void **state)
{
    struct result_kv param = {(char *)"target", (char *)"http://svc"};
    struct runner_config cfg = {.params = &param, .n_params = 1};
    struct capture cap;
    struct runner *r = run("values", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);
    const struct result_attempt *a = final(s, "v_crash_after_values");

    (void)state;
    assert_int_equal(a->result, RESULT_ERROR);
    assert_int_equal(a->n_values, 1);
    assert_string_equal(result_kv_get(a->values, a->n_values, "request_id"),
                        "r-2");
    assert_int_equal(a->n_spans, 1);
    assert_string_equal(a->spans[0].name, "login");
    assert_true(a->spans[0].duration_ns >= 0);
    assert_string_equal(
        result_kv_get(a->spans[0].attrs, a->spans[0].n_attrs, "user"), "alice");

    a = final(s, "v_open_span");
    assert_int_equal(a->n_spans, 1);
    assert_string_equal(a->spans[0].name, "auto-ended");
    assert_string_equal(result_kv_get(a->values, a->n_values, "param"),
                        "http://svc");

    a = final(s, "v_thread_fatal");
    assert_int_equal(a->result, RESULT_FAILED);
    assert_contains(buf_str(&a->log), "from another thread");
    assert_contains(buf_str(&a->log), "test thread goes on");
    finish_run(r, &cap);
}

static void test_runner_count_repeats_each_test(void **state)
{
    struct runner_config cfg = {.count = 3};
    struct capture cap;
    struct runner *r = run("teardownfail", &cfg, &cap, 0);
    struct result_suite *s = runner_result(r);

    (void)state;
    assert_int_equal(s->n_tests, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(s->tests[i].name, "s_one");
        assert_int_equal(result_test_result(&s->tests[i]), RESULT_PASSED);
    }
    assert_int_equal(count_of(buf_str(&cap.events), "run s_one"), 3);
    finish_run(r, &cap);
}

static void test_runner_kills_processes_a_crashed_test_left(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("leftovers", &cfg, &cap, 0);
    const struct result_attempt *a = final(runner_result(r), "g_spawn_sleeper");
    const char *pid_text = result_kv_get(a->values, a->n_values, "sleeper");
    pid_t pid;
    int64_t deadline = clock_mono_ns() + 5 * CLOCK_NS_PER_S;
    char path[64];
    char stat[256] = "";

    (void)state;
    assert_non_null(pid_text);
    pid = (pid_t)atoi(pid_text);
    assert_true(pid > 0);
    /* Gone, or a zombie waiting for init to reap it. */
    for (;;) {
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "r");
        if (!f) {
            break;
        }
        stat[0] = '\0';
        if (!fgets(stat, sizeof(stat), f)) {
            stat[0] = '\0';
        }
        fclose(f);
        if (strstr(stat, ") Z ")) {
            break;
        }
        assert_true(clock_mono_ns() < deadline);
        sleep_ms(10);
    }
    finish_run(r, &cap);
}

static void test_runner_events_come_in_order(void **state)
{
    struct runner_config cfg = {0};
    struct capture cap;
    struct runner *r = run("retries", &cfg, &cap, 0);
    const char *ev = buf_str(&cap.events);

    (void)state;
    assert_true(strncmp(ev, "start retries\n", 14) == 0);
    assert_true(strstr(ev, "run r_flaky 1/3") < strstr(ev, "run r_flaky 2/3"));
    assert_true(strstr(ev, "run r_flaky 3/3") < strstr(ev, "run r_always 1/3"));
    assert_non_null(strstr(ev, "done failed\n"));
    assert_int_equal(strlen(strstr(ev, "done failed\n")), 12);
    finish_run(r, &cap);
}

static int group_setup(void **state)
{
    (void)state;
    base = event_base_new();
    if (!base || zygote_start(child_main, &zyg) != ST_OK ||
        zygote_attach(zyg, base) != ST_OK) {
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    zygote_free(zyg);
    event_base_free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runner_reports_each_outcome),
        cmocka_unit_test(test_runner_runs_cleanups_last_first_after_fatal),
        cmocka_unit_test(test_runner_retries_failed_tests_and_marks_flaky),
        cmocka_unit_test(test_runner_skips_filtered_tests_with_reason),
        cmocka_unit_test(
            test_runner_setup_failure_skips_tests_and_runs_teardown),
        cmocka_unit_test(test_runner_setup_crash_runs_teardown_alone),
        cmocka_unit_test(test_runner_teardown_failure_makes_run_error),
        cmocka_unit_test(
            test_runner_runs_setup_and_teardown_after_last_test_crash),
        cmocka_unit_test(test_runner_suite_timeout_reports_unfinished_tests),
        cmocka_unit_test(test_runner_caps_output_and_reports_dropped_bytes),
        cmocka_unit_test(test_runner_keeps_output_and_logs_in_order),
        cmocka_unit_test(test_runner_restores_env_and_removes_tempdirs),
        cmocka_unit_test(test_runner_removes_temp_bases_of_dead_processes),
        cmocka_unit_test(test_runner_cancel_lets_test_return_and_skips_rest),
        cmocka_unit_test(test_runner_kills_test_that_ignores_cancel),
        cmocka_unit_test(test_runner_deadline_can_be_extended_and_observed),
        cmocka_unit_test(test_runner_keeps_values_and_spans_after_crash),
        cmocka_unit_test(test_runner_count_repeats_each_test),
        cmocka_unit_test(test_runner_kills_processes_a_crashed_test_left),
        cmocka_unit_test(test_runner_events_come_in_order),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
