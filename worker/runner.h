/* The runner: supervises one suite run. It plans the selected tests, has
 * the zygote fork a child runner, follows the child's reports, captures its
 * output per test, enforces per-test and suite timeouts, and replaces the
 * child when it crashes or is killed, so the remaining tests go on. It
 * builds the run's result and emits report events as things happen.
 *
 * Teardown is guaranteed once per run whenever setup ran: in the child that
 * finishes the plan, or, when the last child died, in a fresh child that
 * runs setup and teardown (setup is idempotent by contract, and teardown
 * needs what setup built); after a setup crash, in a fresh child that runs
 * teardown alone. Loop thread only. */
#ifndef HANDOFF_RUNNER_H
#define HANDOFF_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handoff.h"
#include "report.h"
#include "result.h"
#include "status.h"

struct event_base;
struct runner;
struct zygote;

#define RUNNER_DEFAULT_KILL_GRACE_NS (INT64_C(1000) * 1000 * 1000)
#define RUNNER_DEFAULT_OUTPUT_CAP ((size_t)1 << 20)

struct runner_config {
    const struct hf_suite *suite;
    /* Per test (suite order): NULL to run it, or the reason it is skipped
     * without running ("filtered out by --run ..."). NULL array: run all. */
    const char *const *skip_reasons;
    const struct result_kv *params;
    size_t n_params;
    int count;                  /* times to run each test; 0 means 1 */
    int max_attempts;           /* 0: the suite's or test's */
    int64_t test_timeout_ns;    /* 0: the suite's or test's */
    int64_t suite_timeout_ns;   /* 0: the suite's */
    int64_t kill_grace_ns;      /* 0: RUNNER_DEFAULT_KILL_GRACE_NS */
    size_t output_cap;          /* bytes per attempt; 0: default */
    const char *tempdir_parent; /* NULL: $TMPDIR or /tmp */
    /* Called for every event, in order. ev is borrowed for the call. */
    void (*on_event)(void *arg, const struct report_event *ev);
    /* Called once, from the loop, when the run has finished and the result
     * is final. The runner may be freed from here. */
    void (*on_done)(void *arg, struct runner *r);
    void *arg;
};

/* Starts a run on base. cfg and everything it points to is copied.
 * Returns 0 and *out, or ST_IO (no temporary directory) or ST_UPSTREAM (the
 * zygote is gone); then no callback is called. */
MUST_CHECK int runner_start(struct event_base *base, struct zygote *z,
                            const struct runner_config *cfg,
                            struct runner **out);

/* Stops the run: no further test starts, the running one gets the grace
 * period to return and is then killed, teardown runs, unstarted tests are
 * reported skipped with reason, which also becomes the run's reason.
 * Safe to call more than once; the first reason wins. */
void runner_cancel(struct runner *r, const char *reason);

/* True when the suite timeout ended the run (not a cancel). */
bool runner_timed_out(const struct runner *r);

/* The run's result; final once on_done was called. Borrowed from r. */
struct result_suite *runner_result(struct runner *r);
bool runner_is_done(const struct runner *r);

/* Frees r. If the run has not finished, its child is killed first and
 * on_done is not called. NULL does nothing. */
void runner_free(struct runner *r);

#endif
