/* Stored runs as report events. */
#include "replay.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"

struct replay_test {
    char *name;
    size_t ended; /* TEST_ENDs delivered */
};

void replay_init(struct replay *rp)
{
    memset(rp, 0, sizeof(*rp));
}

void replay_cleanup(struct replay *rp)
{
    for (size_t i = 0; i < rp->n_tests; i++) {
        free(rp->tests[i].name);
    }
    free(rp->tests);
    free(rp->open_test);
    memset(rp, 0, sizeof(*rp));
}

static void close_open(struct replay *rp)
{
    free(rp->open_test);
    rp->open_test = NULL;
    rp->open_attempt = 0;
    rp->open_output = 0;
}

static bool is_open(const struct replay *rp, const char *test)
{
    return rp->open_test && test && strcmp(rp->open_test, test) == 0;
}

static struct replay_test *find(struct replay *rp, const char *name, bool add)
{
    for (size_t i = 0; i < rp->n_tests; i++) {
        if (strcmp(rp->tests[i].name, name) == 0) {
            return &rp->tests[i];
        }
    }
    if (!add) {
        return NULL;
    }
    rp->tests =
        mem_reallocarray(rp->tests, rp->n_tests + 1, sizeof(*rp->tests));
    rp->tests[rp->n_tests].name = mem_strdup(name);
    rp->tests[rp->n_tests].ended = 0;
    return &rp->tests[rp->n_tests++];
}

void replay_note(struct replay *rp, const struct report_event *ev)
{
    switch (ev->kind) {
    case REPORT_SUITE_START:
        rp->started = true;
        break;
    case REPORT_SUITE_END:
        rp->ended = true;
        close_open(rp);
        break;
    case REPORT_TEST_END:
        if (ev->test) {
            find(rp, ev->test, true)->ended++;
        }
        close_open(rp);
        break;
    case REPORT_TEST_RUN:
        close_open(rp);
        if (ev->test) {
            rp->open_test = mem_strdup(ev->test);
            rp->open_attempt = ev->attempt;
        }
        break;
    case REPORT_OUTPUT:
        if (is_open(rp, ev->test)) {
            rp->open_output += ev->output_len;
        }
        break;
    }
}

/* The first of the times that is set, or now. */
static int64_t first_time(int64_t a, int64_t b)
{
    return a ? a : b ? b : clock_real_ns();
}

/* Emits text from byte skip on. */
static void output(struct reporter *rep, const struct remote_run *run,
                   const char *test, int attempt, const struct buf *text,
                   size_t skip, int64_t time_ns)
{
    struct report_event ev = {.kind = REPORT_OUTPUT};

    if (text->len <= skip) {
        return;
    }
    ev.suite = run->detail.name;
    ev.ns = run->detail.ns;
    ev.test = test;
    ev.attempt = attempt;
    ev.output = text->data + skip;
    ev.output_len = text->len - skip;
    ev.time_unix_ns = time_ns;
    report_emit(rep, &ev);
}

/* Attempts per test as the notes show them ("attempt 1 of 3"): the run's
 * max_attempts when set, else what the test used. The suite's own setting
 * is not in the run object, so a test that passed early under a suite-level
 * max may show a smaller maximum than the live stream did. */
static int max_attempts(const struct remote_run *run,
                        const struct result_test *t)
{
    int64_t max = run->max_attempts > 0 ? run->max_attempts : 1;

    if ((int64_t)t->n_attempts > max) {
        max = (int64_t)t->n_attempts;
    }
    for (size_t i = 0; i < t->n_attempts; i++) {
        if (t->attempts[i].attempt > max) {
            max = t->attempts[i].attempt;
        }
    }
    return max > 1000000 ? 1000000 : (int)max;
}

/* Attempt j of t. With shown set, the writer saw it start and got the
 * first shown bytes of its output: it goes on from there. */
static void attempt_events(struct reporter *rep, const struct remote_run *run,
                           const struct result_test *t, size_t j, bool ended,
                           const size_t *shown)
{
    const struct result_attempt *a = &t->attempts[j];
    bool bad = a->result == RESULT_FAILED || a->result == RESULT_ERROR;
    bool last = j + 1 == t->n_attempts;
    int64_t start = first_time(a->start_unix_ns, run->detail.start_unix_ns);
    struct report_event ev = {.kind = REPORT_TEST_RUN};

    if (a->result == RESULT_NONE && !ended) {
        return;
    }
    ev.suite = run->detail.name;
    ev.ns = run->detail.ns;
    ev.test = t->name;
    ev.attempt = a->attempt > 0 ? a->attempt : (int)j + 1;
    ev.max_attempts = max_attempts(run, t);
    ev.time_unix_ns = start;
    if (!shown) {
        report_emit(rep, &ev);
    }
    output(rep, run, t->name, ev.attempt, &a->log, shown ? *shown : 0, start);
    ev.kind = REPORT_TEST_END;
    ev.result = a->result;
    ev.soft_failure = a->soft_failure && bad;
    ev.retry = bad && !last;
    ev.flaky = last && a->result == RESULT_PASSED && result_test_is_flaky(t);
    ev.elapsed_ns = a->duration_ns;
    ev.reason = a->reason;
    ev.time_unix_ns = start + a->duration_ns;
    report_emit(rep, &ev);
}

void replay_run(struct replay *rp, const struct remote_run *run,
                struct reporter *rep)
{
    const struct result_suite *s = &run->detail;
    bool ended = remote_run_has_ended(run);
    struct report_event ev = {.kind = REPORT_SUITE_START};
    int64_t start = first_time(s->start_unix_ns, run->created_ns);

    if (rp->ended) {
        return;
    }
    ev.suite = s->name;
    ev.ns = s->ns;
    if (!rp->started) {
        ev.time_unix_ns = start;
        report_emit(rep, &ev);
        rp->started = true;
        output(rep, run, NULL, 0, &s->setup.log, 0,
               first_time(s->setup.start_unix_ns, start));
    }
    for (size_t i = 0; i < s->n_tests; i++) {
        const struct result_test *t = &s->tests[i];
        struct replay_test *seen = find(rp, t->name, false);

        for (size_t j = 0; j < t->n_attempts; j++) {
            const struct result_attempt *a = &t->attempts[j];
            int number = a->attempt > 0 ? a->attempt : (int)j + 1;

            if (seen && seen->ended > 0) {
                seen->ended--;
                continue;
            }
            /* The stored log holds all the live output did, and more. */
            if (is_open(rp, t->name) && rp->open_attempt == number &&
                a->log.len >= rp->open_output) {
                size_t shown = rp->open_output;

                close_open(rp);
                attempt_events(rep, run, t, j, ended, &shown);
                continue;
            }
            attempt_events(rep, run, t, j, ended, NULL);
        }
    }
    if (!ended) {
        return;
    }
    output(rep, run, NULL, 0, &s->teardown.log, 0,
           first_time(s->teardown.start_unix_ns, start));
    output(rep, run, NULL, 0, &s->log, 0, start);
    memset(&ev, 0, sizeof(ev));
    ev.kind = REPORT_SUITE_END;
    ev.suite = s->name;
    ev.ns = s->ns;
    ev.result = s->result;
    ev.elapsed_ns = s->duration_ns;
    ev.reason = s->reason;
    ev.time_unix_ns = first_time(run->finished_ns, start + s->duration_ns);
    report_emit(rep, &ev);
    rp->ended = true;
}
