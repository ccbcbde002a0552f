/* ingest: the results pipeline from NATS JetStream into PostgreSQL.
 *
 * One thread with its own database connection pulls batches from the
 * durable consumer "ingest" on HANDOFF_RESULTS (shared by every controller
 * replica, so each message is ingested by one of them), writes the whole
 * batch in one transaction, idempotently per (job, job attempt), commits,
 * and only then acks. While PostgreSQL is down nothing is acked: the batch
 * is retried until it commits, and JetStream keeps everything else. */
#ifndef HANDOFF_INGEST_H
#define HANDOFF_INGEST_H

#include <stdint.h>

#include "status.h"

struct bus;
struct cmetrics;
struct ingest;

/* A run that reached its end in a committed batch. Called on the ingest
 * thread after the commit; strings are borrowed for the call. */
struct ingest_hooks {
    void (*run_ended)(void *arg, int64_t run_id, const char *ns,
                      const char *suite, const char *state, const char *result);
    void *arg;
};

struct ingest_config {
    const char *dsn;
    int batch;           /* messages per transaction, e.g. 256 */
    int64_t ack_wait_ns; /* of the results consumer */
};

/* Creates the results consumer (idempotently) and starts the thread. The
 * bus and metrics (may be NULL) are borrowed until ingest_stop. Returns 0
 * and *out; if NATS or PostgreSQL is not reachable yet, the thread keeps
 * trying. */
MUST_CHECK int ingest_start(const struct ingest_config *cfg, struct bus *bus,
                            struct cmetrics *m, const struct ingest_hooks *h,
                            struct ingest **out);

/* Stops the thread after its current batch and frees everything. NULL does
 * nothing. */
void ingest_stop(struct ingest *in);

#endif
