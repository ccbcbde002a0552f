/* janitor: a thread of its own in every controller replica, with its own
 * PostgreSQL and Redis connections, that deletes the runs the retention
 * policies expire (retention.h, docs/api.md). One replica at a time works:
 * the one holding the Redis lock handoff:janitor, renewed after every
 * batch. Runs go in small batches, one short transaction each with a pause
 * between, so the API and ingestion are never stalled behind it; queued
 * and running runs are never deleted. */
#ifndef HANDOFF_JANITOR_H
#define HANDOFF_JANITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

struct cmetrics;
struct janitor;

/* The lock's key and time to live: a replica that dies mid-pass holds it
 * this long at most. */
#define JANITOR_LOCK_KEY "handoff:janitor"
#define JANITOR_LOCK_TTL_MS 30000

struct janitor_config {
    const char *pg_dsn;
    const char *redis_url;
    const char *redis_password; /* may be NULL */
    int64_t interval_ms;        /* between passes */
    int64_t batch;              /* runs deleted per transaction */
    int64_t pause_ms;           /* between batches */
    struct cmetrics *metrics;
    /* False until migrations have run: nothing is done before. Called on
     * the janitor's thread. */
    bool (*schema_ready)(void *arg);
    void *arg;
};

/* Starts the janitor's thread. The strings of cfg are copied; metrics and
 * arg are borrowed until janitor_stop. Returns 0 and *out, ST_INVALID for
 * a bad Redis URL or DSN, or ST_INTERNAL. Any thread. */
MUST_CHECK int janitor_start(const struct janitor_config *cfg,
                             struct janitor **out);

/* Stops the thread (after the batch in progress) and frees j; its lock is
 * released. NULL does nothing. */
void janitor_stop(struct janitor *j);

#endif
