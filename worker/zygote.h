/* The zygote: a helper process forked when the worker starts, before any
 * thread exists, that forks child runners on request. Forking the worker
 * itself later is not safe (NATS client threads hold locks a child would
 * inherit) and spawning the worker's image with exec costs milliseconds of
 * dynamic linking per child; a fork of the small single-threaded zygote
 * costs about a hundred microseconds (measured by tests/bench/crash_bench).
 *
 * Each child is its own process group; the zygote reaps it, kills whatever
 * is left in its group, and reports how it ended. When the worker goes away
 * the zygote kills every child it started and exits. */
#ifndef HANDOFF_ZYGOTE_H
#define HANDOFF_ZYGOTE_H

#include <stdint.h>
#include <sys/types.h>

#include "status.h"

struct event_base;
struct zygote;

/* Called once per spawn request: with ok, the child's pid, the supervisor's
 * end of its control socket and the read end of its stdout/stderr pipe
 * (both owned by the callee from then on, O_NONBLOCK and close-on-exec);
 * without ok, pid is 0 and both fds are -1. Then exited is called exactly
 * once when the child has ended, with its wait status. Loop thread. */
struct zygote_child_ops {
    void (*spawned)(void *arg, int ok, pid_t pid, int ctl_fd, int out_fd);
    void (*exited)(void *arg, int wait_status);
};

/* Forks the zygote, which runs child_main(ctl_fd) in each child it forks.
 * Call before any thread is created. Returns 0 and *out, or ST_IO. */
MUST_CHECK int zygote_start(void (*child_main)(int ctl_fd),
                            struct zygote **out);

/* Starts delivering replies on base. Call once, after zygote_start. */
MUST_CHECK int zygote_attach(struct zygote *z, struct event_base *base);

/* Asks for a child. ops/arg are borrowed until exited has been called.
 * Returns 0 and the child's id, or ST_UPSTREAM when the zygote is gone (no
 * callback is called then). Loop thread. */
MUST_CHECK int zygote_spawn(struct zygote *z,
                            const struct zygote_child_ops *ops, void *arg,
                            uint64_t *out_id);

/* Sends sig to the process group of child id, if it has not been reaped
 * yet. Loop thread. */
void zygote_kill(struct zygote *z, uint64_t id, int sig);

/* Stops the callbacks for child id (spawned and exited are not called any
 * more); the zygote still reaps it. For an owner that goes away first. */
void zygote_forget(struct zygote *z, uint64_t id);

/* Number of children spawned and not yet reported exited. */
size_t zygote_live(const struct zygote *z);

/* Tells the zygote to kill all its children and exit, waits for it, and
 * frees z. Pending callbacks are not called. NULL does nothing. */
void zygote_free(struct zygote *z);

#endif
