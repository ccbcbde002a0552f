/* loadjob: one job of a distributed load run (setup, a shard, teardown) in
 * a child process of its own, forked by the worker's load zygote, as test
 * jobs are (user code never runs in the worker). The supervisor side lives
 * here; the child side is loadchild.c. They talk over the child's control
 * socket in ipc.h frames:
 *
 *   supervisor -> child   IPC_PLAN: the job message as received (Job);
 *                         IPC_CANCEL: str reason
 *   child -> supervisor   LOADJOB_SNAP: i64 second, i64 t_ns, then the
 *                         second's snap_encode bytes;
 *                         LOADJOB_DONE: u8 outcome, str reason,
 *                         i64 seconds, u32 n + n bytes of setup data,
 *                         u32 n + n bytes of the resolved spec (a Job
 *                         message carrying it), then the shard's total
 *                         snap_encode bytes.
 *
 * Design: docs/load.md. Loop thread only. */
#ifndef HANDOFF_LOADJOB_H
#define HANDOFF_LOADJOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct event_base;
struct loadjob;
struct zygote;

enum loadjob_frame {
    LOADJOB_SNAP = 1,
    LOADJOB_DONE = 2,
};

enum loadjob_outcome {
    LOADJOB_OK,      /* ran to its end */
    LOADJOB_ABORTED, /* cancelled */
    LOADJOB_ERROR,   /* could not run, or crashed */
};

/* How a load job ended. Pointers are borrowed for the callback. */
struct loadjob_result {
    enum loadjob_outcome outcome;
    const char *reason; /* "" when none */
    int64_t seconds;    /* snapshots sent */
    const void *setup_data;
    size_t setup_len;
    const void *spec; /* a Job message with the resolved LoadSpec, or NULL */
    size_t spec_len;
    const void *total; /* the shard's total, snap_encode's form, or NULL */
    size_t total_len;
    const char *output; /* the tail of the child's stdout and stderr */
};

struct loadjob_ops {
    /* A second of a shard: snap is snap_encode's form (checked to decode
     * only by the controller). */
    void (*snapshot)(void *arg, int64_t second, int64_t t_ns, const void *snap,
                     size_t len);
    /* Exactly once, when the child has ended. The loadjob may be freed
     * from the loop afterwards, not from inside. */
    void (*done)(void *arg, const struct loadjob_result *r);
    void *arg;
};

/* Starts job (the encoded Job message, copied) in a fresh child. deadline_ns
 * (monotonic, 0: none) kills the child when passed. Returns 0 and *out, or
 * ST_UPSTREAM when the zygote is gone (no callback then). */
MUST_CHECK int loadjob_start(struct event_base *base, struct zygote *z,
                             const void *job, size_t len,
                             int64_t deadline_mono_ns,
                             const struct loadjob_ops *ops,
                             struct loadjob **out);
/* Asks the child to stop (the run ends as aborted); kills it when it has
 * not ended after grace_ns. */
void loadjob_cancel(struct loadjob *j, const char *reason, int64_t grace_ns);
/* Frees j; a child still running is killed and done is not called. NULL
 * does nothing. */
void loadjob_free(struct loadjob *j);

/* The child side: the load zygote's child_main (loadchild.c). */
void loadchild_main(int ctl_fd) __attribute__((noreturn));

#endif
