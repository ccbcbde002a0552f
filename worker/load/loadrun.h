/* loadrun: one load run of a workflow in this process, as `worker load`
 * does it: setup on a VU of its own, the workflow's shared object, the
 * executor with thresholds checked every second (abort_on_fail) and at
 * the end, teardown; then the JSON report (docs/load.md) that every other
 * report is rendered from. Also implements the hf_* load API. */
#ifndef HANDOFF_LOADRUN_H
#define HANDOFF_LOADRUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "engine.h"
#include "handoff.h"
#include "result.h"
#include "status.h"

#define LOADRUN_MAX_THRESHOLDS 64

struct loadrun_opts {
    struct engine_config engine;   /* workflow, init, fini, data: ignored */
    const char *const *thresholds; /* extra ones, NULL-terminated, or NULL */
    bool no_thresholds;            /* ignore the workflow's own */
    const struct result_kv *params;
    size_t n_params;
    const char *service_dir; /* NULL: the workflow's, or none */
    FILE *live;              /* a line per second, or NULL */
    const char *id;          /* the report's id; NULL: made up */
    /* A distributed shard (docs/load.md): setup ran elsewhere and these
     * are its bytes (setup is skipped); teardown runs elsewhere too. */
    bool given_setup_data;
    const void *setup_data;
    size_t setup_len;
    bool no_teardown;
    /* Optional: called every second before the thresholds, with what the
     * engine's on_second gets; returning true aborts the run. */
    bool (*on_second)(void *arg, const struct engine_point *pt,
                      const struct snap *second, const struct snap *total,
                      char *reason, size_t reason_len);
    void *on_second_arg;
};

/* Parses every threshold of the workflow and of opts. Returns 0, or
 * ST_INVALID with the parser's message in err. Used to reject bad input
 * before anything runs. */
MUST_CHECK int loadrun_check_thresholds(const struct hf_workflow *wf,
                                        const struct loadrun_opts *opts,
                                        char *err, size_t errlen);

/* Runs wf of suite. Returns 0 with *report (the JSON document, owned by
 * the caller) whatever the thresholds said: its "result" tells; or
 * ST_INVALID (bad options, thresholds, service directory: err says what)
 * or ST_UPSTREAM (no stacks or threads). stop_flag (may be NULL) aborts
 * the run when set. */
MUST_CHECK int loadrun_run(const struct hf_suite *suite,
                           const struct hf_workflow *wf,
                           const struct loadrun_opts *opts,
                           volatile sig_atomic_t *stop_flag, json_t **report,
                           char *err, size_t errlen);

/* Runs wf's setup alone (a distributed run's setup job). Returns 0 with
 * *data (owned by the caller, NUL-terminated; NULL when setup stored
 * none) and *len, or ST_INVALID / ST_UPSTREAM with err. A workflow
 * without setup gives NULL, 0. */
MUST_CHECK int loadrun_setup(const struct hf_suite *suite,
                             const struct hf_workflow *wf,
                             const struct loadrun_opts *opts, void **data,
                             size_t *len, char *err, size_t errlen);
/* Runs wf's teardown alone with setup's bytes. Returns 0 (also when wf has
 * no teardown), or ST_INVALID / ST_UPSTREAM with err. */
MUST_CHECK int loadrun_teardown(const struct hf_suite *suite,
                                const struct hf_workflow *wf,
                                const struct loadrun_opts *opts,
                                const void *data, size_t len, char *err,
                                size_t errlen);

/* Reads KEY=VALUE lines of an env file (comments, blank lines, `export `
 * and single or double quotes allowed) into kvs. Returns 0, ST_NOT_FOUND
 * when the file does not exist, or ST_INVALID with the file and line in
 * err. */
MUST_CHECK int loadrun_read_env(const char *path, struct result_kv **kvs,
                                size_t *n, char *err, size_t errlen);

#endif
