/* replay: a stored run (GET /api/v1/runs/{id}) told to the report writers
 * as the events they would have seen live, so `handoffctl show` and a
 * `run --wait` that lost its live stream print what the local runner
 * prints. It also records what the live stream already delivered, so only
 * the rest is replayed. */
#ifndef HANDOFF_REPLAY_H
#define HANDOFF_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "remote.h"
#include "report.h"

struct replay_test;

struct replay {
    bool started;              /* a SUITE_START went to the writer */
    bool ended;                /* a SUITE_END went to the writer */
    struct replay_test *tests; /* per test name: TEST_ENDs delivered */
    size_t n_tests;
    /* The attempt the writer saw start but not end (NULL: none), and the
     * bytes of its output it got. */
    char *open_test;
    int open_attempt;
    size_t open_output;
};

void replay_init(struct replay *rp);
void replay_cleanup(struct replay *rp);

/* Records that ev went to the writer (a live event). */
void replay_note(struct replay *rp, const struct report_event *ev);

/* Sends rep, in the local runner's order, what run (decoded with its
 * detail) holds beyond what rp recorded: the suite start and setup output
 * if no suite start went yet; every test attempt whose end did not go yet
 * (the first N attempts of a test are taken as delivered when N of its
 * TEST_ENDs were recorded; an attempt that started but did not end goes
 * on where it stopped: the rest of its output, then its end); then, once
 * the run has ended and unless a suite
 * end went already, teardown output, run-level output and the suite end.
 * An attempt still in progress (no result) of a run that has not ended is
 * left out. suite and ns of every event are the run's. Consumes rp's
 * records; rp stays valid for replay_cleanup. */
void replay_run(struct replay *rp, const struct remote_run *run,
                struct reporter *rep);

#endif
