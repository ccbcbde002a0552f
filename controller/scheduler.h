/* scheduler: a thread of its own in every controller replica, with its own
 * PostgreSQL and Redis connections, that fires the ticks of the schedules
 * (docs/scheduling.md) and drives soak series (series.h). A tick fires
 * once across replicas: the transaction that handles it holds its schedule
 * row (FOR UPDATE SKIP LOCKED), the Redis lock handoff:sched:<name>:<tick
 * ms> picks the replica, and the transaction that creates the run also
 * moves the schedule's next_fire_at only if it still holds that tick. */
#ifndef HANDOFF_SCHEDULER_H
#define HANDOFF_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

struct bus;
struct cmetrics;
struct scheduler;

/* The lock of one tick expires this long after the tick (or after it was
 * taken, for a tick already past). It is left to expire after the commit;
 * a replica killed before its commit leaves the tick late by at most this
 * much, which keeps the next tick of an @every 1s schedule within the
 * slack below. */
#define SCHEDULER_LOCK_TTL_MS 2000
/* The lease of a singleton schedule's active run, renewed every second
 * while the run is queued or running. */
#define SCHEDULER_LEASE_TTL_MS 10000
/* Ticks are missed, and follow the schedule's catch-up policy, when the
 * oldest due tick is older than SCHEDULER_GRACE_MS or the tick after it is
 * overdue by more than SCHEDULER_SLACK_MS (the controllers were away).
 * Otherwise a due tick is only late (a slow batch, a tick lock left by a
 * replica that died) and fires, oldest first. */
#define SCHEDULER_GRACE_MS 30000
#define SCHEDULER_SLACK_MS 2000
/* Ticks about to come are prepared ahead: claimed, locked and written in a
 * transaction that commits at the tick, so a burst of ticks at the same
 * second is created at that second. The preparation starts
 * SCHEDULER_AHEAD_MIN_MS before the tick plus SCHEDULER_AHEAD_US for each
 * tick at that time, at most SCHEDULER_AHEAD_MAX_MS. Ticks within
 * SCHEDULER_GROUP_MS of the first share its transaction (and fire up to
 * that much late). */
#define SCHEDULER_AHEAD_MIN_MS 200
#define SCHEDULER_AHEAD_US 250
#define SCHEDULER_AHEAD_MAX_MS 2000
#define SCHEDULER_GROUP_MS 10
/* Schedules claimed per statement, and per transaction prepared ahead. */
#define SCHEDULER_BATCH 1000
#define SCHEDULER_MAX_TXN 10000

struct scheduler_config {
    const char *pg_dsn;
    const char *redis_url;
    const char *redis_password; /* may be NULL */
    int64_t poll_ms; /* the longest sleep between looks at the next tick */
    struct bus *bus; /* jobs are published through it */
    struct cmetrics *metrics;
    /* False until migrations have run: nothing is done before. Called on
     * the scheduler's thread. */
    bool (*schema_ready)(void *arg);
    void *arg;
};

/* Starts the scheduler's thread. The strings of cfg are copied; bus,
 * metrics and arg are borrowed until scheduler_stop. Returns 0 and *out,
 * ST_INVALID for a bad Redis URL or DSN, or ST_INTERNAL. Any thread. */
MUST_CHECK int scheduler_start(const struct scheduler_config *cfg,
                               struct scheduler **out);

/* Stops the thread (after the tick in progress, if any) and frees s.
 * Leases it holds are left to expire. NULL does nothing. */
void scheduler_stop(struct scheduler *s);

#endif
