/* loadstore: distributed load runs in PostgreSQL (docs/load.md): the run's
 * load row at creation, then, on the ingest thread, setup results that
 * create the shard jobs, per-second snapshots stored once per (run, shard,
 * second), seconds merged into points as soon as every shard delivered
 * them, abort_on_fail thresholds evaluated on the merged total, shards
 * that end or die, the report once every shard has ended, the teardown
 * job, and the run's end. What must happen outside the transaction
 * (publishing jobs, points, cancels) is collected in a loadstore_fx and
 * done by loadstore_after_commit. Also the load endpoints of the API. */
#ifndef HANDOFF_LOADSTORE_H
#define HANDOFF_LOADSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "result.h"
#include "status.h"
#include "store.h"
#include "wire.h"

struct bus;
struct db;

/* Seconds between the setup result and the shards' common start: time
 * for the jobs to be published and fetched by every worker. */
#define LOADSTORE_START_DELAY_MS 5000

/* store_create_run_ex's hook for a request with a load section: arg is
 * the request's struct wire_load. */
int loadstore_create(struct db *d, int64_t run_id, void *arg);

/* Before creating a load run: req's suite must be in the catalog (404 or
 * 409 as for any run) and have req->load's workflow (404 naming the ones
 * it has). Returns 0, or a status with out filled as the answer. */
MUST_CHECK int loadstore_check_workflow(struct db *d,
                                        const struct run_request *req,
                                        struct store_reply *out);

/* The catalog's workflows of suite si, as a worker of pool announced them.
 * On the caller's transaction; returns 0 or a database status. */
MUST_CHECK int loadstore_catalog_workflows(struct db *d, const char *pool,
                                           const struct wire_suite_info *si);

struct loadstore_job {
    char *id;
    char *subject;
    int64_t created_ms;
    struct buf payload;
};

struct loadstore_point {
    int64_t run_id;
    char *json;
};

struct loadstore_cancel {
    int64_t run_id;
    char *reason;
};

struct loadstore_ended {
    int64_t run_id;
    char ns[160];
    char suite[160];
    char state[16];
    char result[16];
};

/* What a batch's transaction decided, to act on after its commit. */
struct loadstore_fx {
    int64_t *runs; /* load runs touched, to advance */
    size_t n_runs;
    struct loadstore_job *jobs;
    size_t n_jobs;
    struct loadstore_point *points;
    size_t n_points;
    struct loadstore_cancel *cancels;
    size_t n_cancels;
    struct loadstore_ended *ended;
    size_t n_ended;
};

void loadstore_fx_init(struct loadstore_fx *fx);
void loadstore_fx_cleanup(struct loadstore_fx *fx);

/* In the batch's transaction. Each returns 0 or a database status (the
 * caller rolls back and retries the batch; fx is then reset with
 * loadstore_fx_cleanup + init). */

/* Stores one snapshot (a repeat changes nothing). */
MUST_CHECK int loadstore_snapshot(struct db *d,
                                  const struct wire_load_snapshot *s,
                                  struct loadstore_fx *fx);
/* A job result stored for the first time: acts on it when its job belongs
 * to a load run (setup done, a shard ended, teardown done). */
MUST_CHECK int loadstore_result(struct db *d, const struct result_suite *res,
                                const struct wire_result_meta *meta,
                                struct loadstore_fx *fx);
/* Merges what can be merged of the runs touched, finishes runs whose
 * shards have all ended. */
MUST_CHECK int loadstore_advance(struct db *d, struct loadstore_fx *fx);

/* After the commit: publishes the new jobs (marking them published),
 * the merged points (core NATS handoff.events.<run>.load) and the
 * cancels. */
void loadstore_after_commit(struct db *d, struct bus *bus,
                            struct loadstore_fx *fx);

/* GET /api/v1/runs/{id}/load: the report, 404 while there is none. */
void loadstore_get_report(struct db *d, const char *id,
                          struct store_reply *out);
/* GET /api/v1/load/diff?a=&b=[&tolerance=]: loaddiff of two runs'
 * reports. tolerance may be NULL. */
void loadstore_diff(struct db *d, const char *a, const char *b,
                    const char *tolerance, struct store_reply *out);

#endif
