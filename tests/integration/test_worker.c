/* The worker's serve mode against a real nats-server: jobs published to
 * JetStream are run, JobStarted and JobResult come back on the results
 * stream, live events on core NATS; cancel, bad jobs, expired jobs, SIGTERM
 * hand-back and kill -9 redelivery. Needs HANDOFF_NATS_URL (tests/run.sh
 * starts the stack). Each test uses its own pool, so its jobs reach only
 * the workers it starts. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "clock.h"
#include "subjects.h"
#include "wire.h"

extern char **environ;

static struct bus *bus;
static int64_t next_run_id;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- Workers as subprocesses ------------------------------------------ */

struct worker {
    pid_t pid;
    char id[64];
    char log[128];
};

/* Workers started and not yet seen to exit: a test that fails stops
 * where it is, and the group teardown kills what it left running (a
 * leftover worker would announce its suites to the next tests' stack). */
static pid_t started[16];

static void note_started(pid_t pid)
{
    for (size_t i = 0; i < sizeof(started) / sizeof(started[0]); i++) {
        if (started[i] == 0) {
            started[i] = pid;
            return;
        }
    }
}

static void note_gone(pid_t pid)
{
    for (size_t i = 0; i < sizeof(started) / sizeof(started[0]); i++) {
        if (started[i] == pid) {
            started[i] = 0;
        }
    }
}

static void worker_start(struct worker *w, const char *pool, const char *tag)
{
    char *argv[24];
    int n = 0;
    posix_spawn_file_actions_t fa;
    char bin[512];

    snprintf(w->id, sizeof(w->id), "it-%d-%s", (int)getpid(), tag);
    snprintf(w->log, sizeof(w->log), "/tmp/handoff-it-%s.log", w->id);
    snprintf(bin, sizeof(bin), "%s/handoff-test-worker", HANDOFF_BIN_DIR);
    argv[n++] = bin;
    argv[n++] = (char *)"serve";
    argv[n++] = (char *)"--pool";
    argv[n++] = (char *)pool;
    argv[n++] = (char *)"--id";
    argv[n++] = w->id;
    argv[n++] = (char *)"--concurrency";
    argv[n++] = (char *)"2";
    argv[n++] = (char *)"--ack-wait";
    argv[n++] = (char *)"2s";
    argv[n++] = (char *)"--drain-timeout";
    argv[n++] = (char *)"1s";
    argv[n++] = (char *)"--heartbeat";
    argv[n++] = (char *)"500ms";
    argv[n++] = (char *)"--kill-grace";
    argv[n++] = (char *)"300ms";
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, w->log,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    assert_int_equal(posix_spawn(&w->pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    note_started(w->pid);
}

/* Waits for the worker to exit; returns its exit status (128+sig if
 * killed), or -1 after timeout_ms (then kills it). */
static int worker_wait(struct worker *w, long timeout_ms)
{
    int64_t until = clock_mono_ns() + timeout_ms * CLOCK_NS_PER_MS;
    int status;

    while (clock_mono_ns() < until) {
        pid_t r = waitpid(w->pid, &status, WNOHANG);

        if (r == w->pid) {
            note_gone(w->pid);
            w->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + WTERMSIG(status);
        }
        sleep_ms(20);
    }
    kill(w->pid, SIGKILL);
    waitpid(w->pid, &status, 0);
    note_gone(w->pid);
    w->pid = 0;
    return -1;
}

static void print_log(const struct worker *w)
{
    FILE *f = fopen(w->log, "r");
    char line[1024];

    fprintf(stderr, "---- log of worker %s ----\n", w->id);
    while (f && fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
    }
    if (f) {
        fclose(f);
    }
}

/* Stops the worker with SIGTERM; it must exit 0 (under the sanitizers a
 * leak or an error makes it exit otherwise). */
static void worker_stop(struct worker *w)
{
    int status = 0;

    if (w->pid > 0) {
        kill(w->pid, SIGTERM);
        status = worker_wait(w, 15000);
        if (status != 0) {
            print_log(w);
        }
    }
    unlink(w->log);
    assert_int_equal(status, 0);
}

/* ---- Collecting what comes back --------------------------------------- */

struct collector {
    pthread_mutex_t lock;
    struct buf kinds; /* "started:1 result:1 " ... */
    struct result_suite result;
    struct wire_result_meta meta;
    bool have_result;
    int started_attempts[8];
    int n_started;
    struct buf events; /* event kinds in order */
    uint64_t last_seq;
    bool seq_in_order;
};

static void collector_init(struct collector *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    buf_init(&c->kinds, 0);
    buf_init(&c->events, 0);
    c->seq_in_order = true;
}

static void collector_cleanup(struct collector *c)
{
    buf_cleanup(&c->kinds);
    buf_cleanup(&c->events);
    if (c->have_result) {
        result_suite_cleanup(&c->result);
        wire_result_meta_cleanup(&c->meta);
    }
}

static void on_event(void *arg, struct bus_msg *m)
{
    struct collector *c = arg;
    struct wire_event *ev;
    size_t n;
    static const char *const names[] = {"suite_start", "test_run", "output",
                                        "test_end", "suite_end"};

    /* The worker sends a job's events in batches. */
    if (wire_events_decode(bus_msg_data(m), bus_msg_len(m), &ev, &n) == ST_OK) {
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < n; i++) {
            buf_addf(&c->events, "%s ", names[ev[i].ev.kind]);
            if (ev[i].seq <= c->last_seq) {
                c->seq_in_order = false;
            }
            c->last_seq = ev[i].seq;
            wire_event_cleanup(&ev[i]);
        }
        pthread_mutex_unlock(&c->lock);
        free(ev);
    }
    bus_msg_free(m);
}

/* Pulls from a consumer on the results stream for run_id until a result
 * arrives or timeout_ms passes. Returns true with a result. */
static bool await_result(int64_t run_id, struct collector *c, long timeout_ms)
{
    char name[64];
    char filter[96];
    struct bus_pull *pull = NULL;
    int64_t until = clock_mono_ns() + timeout_ms * CLOCK_NS_PER_MS;
    struct bus_consumer_config cc = {.stream = SUBJECTS_RESULTS_STREAM,
                                     .name = name,
                                     .filter = filter,
                                     .ack_wait_ns = 30 * CLOCK_NS_PER_S};

    snprintf(name, sizeof(name), "it-%" PRId64, run_id);
    snprintf(filter, sizeof(filter), "handoff.results.%" PRId64 ".>", run_id);
    /* The worker creates the stream; wait for it. */
    while (bus_ensure_consumer(bus, &cc) != ST_OK ||
           bus_pull_bind(bus, SUBJECTS_RESULTS_STREAM, name, &pull) != ST_OK) {
        assert_true(clock_mono_ns() < until);
        sleep_ms(100);
    }
    while (!c->have_result && clock_mono_ns() < until) {
        struct bus_msg *msgs[8];
        size_t n = 0;

        if (bus_pull_fetch(pull, 8, 200, msgs, &n) != ST_OK) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            const char *subj = bus_msg_subject(msgs[i]);

            if (strstr(subj, ".started")) {
                struct wire_started st;

                assert_int_equal(wire_started_decode(bus_msg_data(msgs[i]),
                                                     bus_msg_len(msgs[i]), &st),
                                 ST_OK);
                if (c->n_started < 8) {
                    c->started_attempts[c->n_started++] = st.job_attempt;
                }
                buf_addf(&c->kinds, "started:%d ", st.job_attempt);
                wire_started_cleanup(&st);
            } else {
                assert_int_equal(wire_result_decode(bus_msg_data(msgs[i]),
                                                    bus_msg_len(msgs[i]),
                                                    &c->result, &c->meta),
                                 ST_OK);
                c->have_result = true;
                buf_addf(&c->kinds, "result:%d ", c->meta.job_attempt);
            }
            (void)bus_msg_ack(msgs[i]);
            bus_msg_free(msgs[i]);
        }
    }
    bus_pull_free(pull);
    return c->have_result;
}

/* Waits until a started message for run_id arrives (the job is running). */
static void await_started(int64_t run_id, struct collector *c, int attempt)
{
    char name[64];
    char filter[96];
    struct bus_pull *pull = NULL;
    int64_t until = clock_mono_ns() + 20 * CLOCK_NS_PER_S;
    struct bus_consumer_config cc = {.stream = SUBJECTS_RESULTS_STREAM,
                                     .name = name,
                                     .filter = filter,
                                     .ack_wait_ns = 30 * CLOCK_NS_PER_S};
    bool seen = false;

    snprintf(name, sizeof(name), "it-start-%" PRId64 "-%d", run_id, attempt);
    snprintf(filter, sizeof(filter), "handoff.results.%" PRId64 ".started",
             run_id);
    while (bus_ensure_consumer(bus, &cc) != ST_OK ||
           bus_pull_bind(bus, SUBJECTS_RESULTS_STREAM, name, &pull) != ST_OK) {
        assert_true(clock_mono_ns() < until);
        sleep_ms(100);
    }
    while (!seen) {
        struct bus_msg *m = NULL;
        size_t n = 0;

        assert_true(clock_mono_ns() < until);
        if (bus_pull_fetch(pull, 1, 200, &m, &n) != ST_OK) {
            continue;
        }
        {
            struct wire_started st;

            assert_int_equal(
                wire_started_decode(bus_msg_data(m), bus_msg_len(m), &st),
                ST_OK);
            seen = st.job_attempt == attempt;
            wire_started_cleanup(&st);
        }
        (void)bus_msg_ack(m);
        bus_msg_free(m);
    }
    bus_pull_free(pull);
    (void)c;
}

/* ---- Publishing jobs -------------------------------------------------- */

struct job_spec {
    const char *run;
    const char *skip;
    const char *params[8]; /* k, v, k, v, ..., NULL */
    int64_t not_after_unix_ms;
};

static int64_t publish_job(const char *pool, const char *suite,
                           const struct job_spec *spec)
{
    int64_t run_id = next_run_id++;
    char job_id[64];
    char subject[256];
    struct result_kv kv[4];
    size_t n_kv = 0;
    struct wire_job j;
    struct buf b;

    snprintf(job_id, sizeof(job_id), "%" PRId64 ".0", run_id);
    for (size_t i = 0; spec->params[i]; i += 2) {
        kv[n_kv].key = (char *)spec->params[i];
        kv[n_kv].value = (char *)spec->params[i + 1];
        n_kv++;
    }
    memset(&j, 0, sizeof(j));
    j.job_id = job_id;
    j.run_id = run_id;
    j.suite = (char *)suite;
    j.ns = (char *)"test";
    j.params = kv;
    j.n_params = n_kv;
    j.run_filter = (char *)spec->run;
    j.skip_filter = (char *)spec->skip;
    j.shards = 1;
    j.not_after_unix_ms = spec->not_after_unix_ms;
    j.created_unix_ms = clock_real_ns() / CLOCK_NS_PER_MS;
    buf_init(&b, 0);
    wire_job_encode(&j, &b);
    subjects_job(pool, "test", suite, subject, sizeof(subject));
    /* The worker creates the stream at start-up: retry until it exists. */
    for (int i = 0; i < 100; i++) {
        if (bus_js_publish(bus, subject, b.data, b.len, job_id, 2000) ==
            ST_OK) {
            buf_cleanup(&b);
            return run_id;
        }
        sleep_ms(100);
    }
    fail_msg("could not publish job %s", job_id);
    return 0;
}

static const struct result_attempt * final(const struct result_suite *s,
                                           const char *name)
{
    for (size_t i = 0; i < s->n_tests; i++) {
        if (strcmp(s->tests[i].name, name) == 0) {
            return result_test_final(&s->tests[i]);
        }
    }
    fail_msg("no test %s in the result", name);
    return NULL;
}

static void pool_name(char *out, size_t len, const char *what)
{
    snprintf(out, len, "it%d-%s", (int)getpid(), what);
}

/* ---- Tests ------------------------------------------------------------ */

static void
test_worker_runs_a_job_and_reports_started_result_and_events(void **state)
{
    char pool[64];
    struct worker w;
    struct collector c;
    struct bus_sub *sub = NULL;
    char subject[64];
    /* test_sleep runs long enough (300 ms) for JobStarted to go out
     * before the result (SERVE_STARTED_DELAY_MS). */
    struct job_spec spec = {
        .run = "quick|param|sleep",
        .params = {"given", "x", "expect", "x", "sleep_ms", "300", NULL},
    };
    int64_t run_id;

    (void)state;
    pool_name(pool, sizeof(pool), "basic");
    collector_init(&c);
    worker_start(&w, pool, "a");
    run_id = next_run_id;
    subjects_events(run_id, subject, sizeof(subject));
    assert_int_equal(bus_subscribe(bus, subject, NULL, on_event, &c, &sub),
                     ST_OK);
    assert_true(publish_job(pool, "e2e", &spec) == run_id);
    assert_true(await_result(run_id, &c, 20000));
    assert_string_equal(buf_str(&c.kinds), "started:1 result:1 ");
    assert_int_equal(c.result.result, RESULT_PASSED);
    assert_string_equal(c.meta.worker_id, w.id);
    assert_int_equal(c.meta.job_attempt, 1);
    assert_int_equal(final(&c.result, "test_quick")->result, RESULT_PASSED);
    assert_int_equal(final(&c.result, "test_param")->result, RESULT_PASSED);
    assert_int_equal(final(&c.result, "test_sleep")->result, RESULT_PASSED);
    assert_int_equal(final(&c.result, "test_fails")->result, RESULT_SKIPPED);
    assert_string_equal(final(&c.result, "test_fails")->reason,
                        "filtered out by run quick|param|sleep");
    /* Live events: in order, from suite_start to suite_end. */
    for (int i = 0; i < 50; i++) {
        pthread_mutex_lock(&c.lock);
        if (strstr(buf_str(&c.events), "suite_end")) {
            pthread_mutex_unlock(&c.lock);
            break;
        }
        pthread_mutex_unlock(&c.lock);
        sleep_ms(50);
    }
    assert_true(strncmp(buf_str(&c.events), "suite_start ", 12) == 0);
    assert_non_null(strstr(buf_str(&c.events), "test_run output test_end"));
    assert_true(c.seq_in_order);
    bus_sub_free(sub);
    worker_stop(&w);
    collector_cleanup(&c);
}

/* A first attempt that ends within --started-delay sends no JobStarted:
 * its result carries the start. The delay is long here, so a slow
 * machine cannot make the job outlast it. */
static void test_worker_folds_started_into_a_short_jobs_result(void **state)
{
    char pool[64];
    struct worker w;
    struct collector c;
    struct job_spec spec = {.run = "quick"};
    int64_t run_id;
    int64_t before;

    (void)state;
    pool_name(pool, sizeof(pool), "fold");
    collector_init(&c);
    setenv("HANDOFF_WORKER_STARTED_DELAY", "60s", 1);
    worker_start(&w, pool, "s");
    unsetenv("HANDOFF_WORKER_STARTED_DELAY");
    before = clock_real_ns();
    run_id = publish_job(pool, "e2e", &spec);
    assert_true(await_result(run_id, &c, 20000));
    assert_string_equal(buf_str(&c.kinds), "result:1 ");
    assert_int_equal(c.result.result, RESULT_PASSED);
    assert_true(c.result.start_unix_ns >= before);
    assert_true(c.result.start_unix_ns <= clock_real_ns());
    worker_stop(&w);
    collector_cleanup(&c);
}

static void test_worker_reports_a_failing_run(void **state)
{
    char pool[64];
    struct worker w;
    struct collector c;
    struct job_spec spec = {.run = "fails", .params = {"fail", "1", NULL}};
    int64_t run_id;

    (void)state;
    pool_name(pool, sizeof(pool), "fail");
    collector_init(&c);
    worker_start(&w, pool, "f");
    run_id = publish_job(pool, "e2e", &spec);
    assert_true(await_result(run_id, &c, 20000));
    assert_int_equal(c.result.result, RESULT_FAILED);
    assert_int_equal(final(&c.result, "test_fails")->result, RESULT_FAILED);
    worker_stop(&w);
    collector_cleanup(&c);
}

static void test_worker_cancel_stops_a_running_job(void **state)
{
    char pool[64];
    struct worker w;
    struct collector c;
    struct job_spec spec = {.run = "sleep",
                            .params = {"sleep_ms", "60000", NULL}};
    struct wire_cancel cancel = {0};
    struct buf b;
    int64_t run_id;
    int64_t t0;

    (void)state;
    pool_name(pool, sizeof(pool), "cancel");
    collector_init(&c);
    worker_start(&w, pool, "c");
    run_id = publish_job(pool, "e2e", &spec);
    await_started(run_id, &c, 1);
    sleep_ms(300); /* the test is inside its sleep */
    cancel.run_id = run_id;
    cancel.reason = (char *)"stopped by the integration test";
    buf_init(&b, 0);
    wire_cancel_encode(&cancel, &b);
    t0 = clock_mono_ns();
    assert_int_equal(bus_publish(bus, SUBJECTS_CANCEL, b.data, b.len), ST_OK);
    buf_cleanup(&b);
    assert_true(await_result(run_id, &c, 20000));
    assert_true(clock_mono_ns() - t0 < 5 * CLOCK_NS_PER_S);
    assert_true(c.meta.cancelled);
    assert_int_equal(c.result.result, RESULT_ERROR);
    assert_string_equal(c.result.reason, "stopped by the integration test");
    assert_int_equal(final(&c.result, "test_sleep")->result, RESULT_ERROR);
    assert_non_null(
        strstr(final(&c.result, "test_sleep")->reason, "interrupted"));
    worker_stop(&w);
    collector_cleanup(&c);
}

static void test_worker_answers_an_unrunnable_job_with_an_error(void **state)
{
    char pool[64];
    struct worker w;
    struct collector c;
    struct job_spec spec = {.run = "(unclosed", .params = {NULL}};
    int64_t run_id;

    (void)state;
    pool_name(pool, sizeof(pool), "bad");
    collector_init(&c);
    worker_start(&w, pool, "b");
    run_id = publish_job(pool, "e2e", &spec);
    assert_true(await_result(run_id, &c, 20000));
    assert_int_equal(c.result.result, RESULT_ERROR);
    assert_non_null(strstr(c.result.reason, "invalid regular expression"));
    worker_stop(&w);
    collector_cleanup(&c);
}

static void test_worker_drops_a_job_whose_run_expired(void **state)
{
    char pool[64];
    struct worker w;
    struct collector c;
    struct job_spec spec = {
        .run = "quick", .params = {NULL}, .not_after_unix_ms = 1000};
    int64_t run_id;

    (void)state;
    pool_name(pool, sizeof(pool), "expired");
    collector_init(&c);
    worker_start(&w, pool, "e");
    run_id = publish_job(pool, "e2e", &spec);
    assert_false(await_result(run_id, &c, 3000));
    assert_string_equal(buf_str(&c.kinds), "");
    /* Dropped means taken off the queue, not left there. */
    {
        char consumer[256];
        uint64_t pending = 99;
        uint64_t ack_pending = 99;

        subjects_job_consumer(pool, "test", "e2e", consumer, sizeof(consumer));
        assert_int_equal(bus_consumer_pending(bus, SUBJECTS_JOBS_STREAM,
                                              consumer, &pending, &ack_pending),
                         ST_OK);
        assert_true(pending == 0);
        assert_true(ack_pending == 0);
    }
    worker_stop(&w);
    collector_cleanup(&c);
}

static void
test_worker_sigterm_hands_a_running_job_to_another_worker(void **state)
{
    char pool[64];
    struct worker a;
    struct worker b;
    struct collector c;
    struct job_spec spec = {.run = "sleep",
                            .params = {"sleep_ms", "4000", NULL}};
    int64_t run_id;

    (void)state;
    pool_name(pool, sizeof(pool), "drain");
    collector_init(&c);
    worker_start(&a, pool, "da");
    run_id = publish_job(pool, "e2e", &spec);
    await_started(run_id, &c, 1);
    kill(a.pid, SIGTERM);
    /* Drain timeout 1 s: it hands the job back and exits 0. */
    assert_int_equal(worker_wait(&a, 10000), 0);
    worker_start(&b, pool, "db");
    assert_true(await_result(run_id, &c, 30000));
    assert_int_equal(c.meta.job_attempt, 2);
    assert_string_equal(c.meta.worker_id, b.id);
    assert_int_equal(c.result.result, RESULT_PASSED);
    worker_stop(&b);
    unlink(a.log);
    collector_cleanup(&c);
}

static void test_worker_killed_mid_test_job_is_redelivered(void **state)
{
    char pool[64];
    struct worker a;
    struct worker b;
    struct collector c;
    struct job_spec spec = {.run = "sleep",
                            .params = {"sleep_ms", "3000", NULL}};
    int64_t run_id;

    (void)state;
    pool_name(pool, sizeof(pool), "kill");
    collector_init(&c);
    worker_start(&a, pool, "ka");
    run_id = publish_job(pool, "e2e", &spec);
    await_started(run_id, &c, 1);
    kill(a.pid, SIGKILL);
    assert_int_equal(worker_wait(&a, 5000), 128 + SIGKILL);
    worker_start(&b, pool, "kb");
    /* After the ack wait (2 s) the job goes to b. */
    assert_true(await_result(run_id, &c, 30000));
    assert_int_equal(c.meta.job_attempt, 2);
    assert_string_equal(c.meta.worker_id, b.id);
    assert_int_equal(c.result.result, RESULT_PASSED);
    worker_stop(&b);
    unlink(a.log);
    collector_cleanup(&c);
}

static void on_state(void *arg, bool connected)
{
    (void)arg;
    (void)connected;
}

static int group_setup(void **state)
{
    const char *url = getenv("HANDOFF_NATS_URL");
    struct bus_config bc = {
        .url = url, .name = "handoff-test-worker-it", .on_state = on_state};
    int64_t until = clock_mono_ns() + 10 * CLOCK_NS_PER_S;

    (void)state;
    if (!url) {
        fprintf(stderr, "HANDOFF_NATS_URL is not set: run under the stack "
                        "(tests/run.sh, or eval \"$(deploy/stack.sh "
                        "env)\")\n");
        return -1;
    }
    if (bus_connect(&bc, &bus) != ST_OK) {
        return -1;
    }
    while (!bus_is_connected(bus)) {
        if (clock_mono_ns() > until) {
            fprintf(stderr, "cannot reach NATS at %s\n", url);
            return -1;
        }
        sleep_ms(50);
    }
    /* Run ids unique per test process: pid in the high digits. */
    next_run_id = (int64_t)getpid() * 1000000 + clock_real_ns() % 1000;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(started) / sizeof(started[0]); i++) {
        if (started[i] > 0) {
            kill(started[i], SIGKILL);
            waitpid(started[i], NULL, 0);
        }
    }
    bus_free(bus);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_worker_runs_a_job_and_reports_started_result_and_events),
        cmocka_unit_test(test_worker_folds_started_into_a_short_jobs_result),
        cmocka_unit_test(test_worker_reports_a_failing_run),
        cmocka_unit_test(test_worker_cancel_stops_a_running_job),
        cmocka_unit_test(test_worker_answers_an_unrunnable_job_with_an_error),
        cmocka_unit_test(test_worker_drops_a_job_whose_run_expired),
        cmocka_unit_test(
            test_worker_sigterm_hands_a_running_job_to_another_worker),
        cmocka_unit_test(test_worker_killed_mid_test_job_is_redelivered),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
