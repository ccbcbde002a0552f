/* store: what the API and the background tasks do in PostgreSQL. Each
 * function runs on a database thread (dbpool) with its connection and
 * produces an HTTP answer: a status, and a JSON body (built mostly by the
 * database itself, see controller/sql/api.sql) or an error code and
 * message. Nothing here touches the loop. */
#ifndef HANDOFF_STORE_H
#define HANDOFF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "runreq.h"
#include "status.h"

struct bus;
struct db;

/* An HTTP answer made on a database thread. */
struct store_reply {
    int status;             /* HTTP status */
    char *body;             /* JSON text (success), or NULL */
    const char *error_code; /* when status >= 400 */
    char error_message[600];
    char location[64]; /* Location header for 201, or "" */
    int64_t run_id;    /* the run created or touched, or 0 */
    char ns[160];      /* its namespace and suite, for metrics */
    char suite[160];
    bool created; /* a new run (not an idempotent repeat) */
    bool ended;   /* the run ended by this request */
};

void store_reply_cleanup(struct store_reply *r);

/* Fills r as an error answer: status, code and a message. */
void store_reply_error(struct store_reply *r, int status, const char *code,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fills r for a database failure rc: 503 when PostgreSQL is away (the
 * client may retry), 500 otherwise. */
void store_reply_db_error(struct store_reply *r, int rc);

/* Answers with what sql returns: the JSON text in the first column of its
 * first row becomes out's body with status. No row: 404 not_found with
 * the message not_found. A database failure: store_reply_db_error.
 * Returns 0 when out holds the body, else a status (ST_NOT_FOUND for no
 * row). what names the statement in logs. */
int store_reply_json(struct db *d, const char *what, const char *sql,
                     int nparams, const char *const *params, int status,
                     const char *not_found, struct store_reply *out);

/* Resolves a suite name (and namespace, NULL: any) against the catalog as
 * POST /api/v1/runs does. Returns 0 with the suite's namespace in ns
 * (ns_len bytes); ST_NOT_FOUND with out filled as a 404 (naming close
 * matches) or a 409 (several namespaces); or a database status with out
 * filled as a 5xx answer. */
MUST_CHECK int store_resolve_suite(struct db *d, const char *suite,
                                   const char *ns_in, char *ns, size_t ns_len,
                                   struct store_reply *out);

/* POST /api/v1/runs: validates req against the catalog, stores the run and
 * its job in one transaction, then publishes the job (a failed publish
 * leaves it for store_publish_outbox). idempotency_key may be NULL. */
void store_create_run(struct db *d, struct bus *bus,
                      const struct run_request *req,
                      const char *idempotency_key, struct store_reply *out);

/* What store_create_run_ex also does in the run's transaction, after the
 * run and its job rows and before the commit: in_transaction(d, run_id,
 * arg) returns 0 to commit, or a status to roll everything back
 * (ST_CONFLICT: the reply is 409; others as database errors). The
 * scheduler records its tick and advances the schedule this way. */
struct store_run_hook {
    int (*in_transaction)(struct db *d, int64_t run_id, void *arg);
    void *arg;
    bool no_body; /* the caller needs no JSON of the run in out->body */
};

/* store_create_run with a hook (NULL: none). */
void store_create_run_ex(struct db *d, struct bus *bus,
                         const struct run_request *req,
                         const char *idempotency_key,
                         const struct store_run_hook *hook,
                         struct store_reply *out);

/* Runs created in batches, for the scheduler: store_batch_check once for
 * the batch, store_batch_insert in the caller's transaction, and after its
 * commit store_batch_publish. Each call acts on the items whose status is
 * still 0 and leaves the others alone, so the caller drops an item by
 * setting its status. The same checks, rows and job messages as
 * store_create_run, with set-based SQL: a few statements for the whole
 * batch instead of several per run. */
struct store_batch_run {
    /* The caller's. req is owned by the item (store_batch_run_cleanup). */
    struct run_request req;
    int64_t schedule_id; /* runs.schedule_id; 0: none */
    /* Unix ms: when the run is meant to exist. runs.created_at is the
     * later of this and the INSERT's own time; the job carries it as its
     * creation time. 0: now (store_batch_insert then sets it). */
    int64_t created_ms;
    /* 0 while the item is to be created; else why not: an HTTP status,
     * with the message in error (owned) for a 4xx the catalog gave. */
    int status;
    char *error;
    /* Set by store_batch_check. */
    char ns[160];
    int64_t timeout_ms;
    /* Set by store_batch_insert. */
    int64_t run_id;
    char *subject;
    struct buf payload; /* the encoded job */
};

/* Frees what the item owns (its request included); zeroes it. */
void store_batch_run_cleanup(struct store_batch_run *r);

/* Checks each item's suite and filters against the catalog as
 * store_create_run does; an item that does not fit gets a 4xx status and
 * its message. One query per distinct suite. Returns 0, or a database
 * status (then nothing was decided: try the batch again later). */
MUST_CHECK int store_batch_check(struct db *d, struct store_batch_run *runs,
                                 size_t n);

/* Inserts the runs and jobs of the items still at status 0 (checked by
 * store_batch_check), in the transaction the caller has open, and sets
 * their run_id. Returns 0 or a database status (the caller rolls back). */
MUST_CHECK int store_batch_insert(struct db *d, struct store_batch_run *runs,
                                  size_t n);

/* After the commit: publishes the jobs of the inserted items without
 * waiting for each (Nats-Msg-Id as store_create_run), waits for all, and
 * marks them published in one statement. Jobs not confirmed stay in the
 * outbox (store_publish_outbox). The scheduler's thread only: the bus's
 * asynchronous publishing is one thread's. */
void store_batch_publish(struct db *d, struct bus *bus,
                         const struct store_batch_run *runs, size_t n);

/* Checks req's suite against the catalog as store_create_run does (the
 * suite exists, in one namespace or the one given, and the filters select
 * a test of it). Returns 0 with the suite's namespace in ns (ns_len
 * bytes); ST_NOT_FOUND with out filled as a 404, 409 or 400 answer; or a
 * database status with out filled as a 5xx answer. */
MUST_CHECK int store_check_suite(struct db *d, const struct run_request *req,
                                 char *ns, size_t ns_len,
                                 struct store_reply *out);

/* GET /api/v1/runs: filters as given by the query string (NULL: absent);
 * the values are checked here. */
struct store_list_query {
    const char *suite;
    const char *ns;
    const char *state;
    const char *result;
    const char *since;
    const char *until;
    const char *limit;
    const char *cursor;
};

void store_list_runs(struct db *d, const struct store_list_query *q,
                     struct store_reply *out);

/* GET /api/v1/runs/{id} and /api/v1/runs/{id}/tests/{name}. id is the
 * path text (checked here). */
void store_get_run(struct db *d, const char *id, struct store_reply *out);
void store_get_test(struct db *d, const char *id, const char *name,
                    struct store_reply *out);

/* POST /api/v1/runs/{id}/cancel with an optional JSON body. Publishes the
 * cancel for workers. */
void store_cancel_run(struct db *d, struct bus *bus, const char *id,
                      const char *body, size_t len, struct store_reply *out);

/* GET /api/v1/suites and /api/v1/workers. */
void store_list_suites(struct db *d, struct store_reply *out);
void store_list_workers(struct db *d, struct store_reply *out);

/* The state of a run for the live stream: fills state and result (empty
 * result while running). Returns 0, ST_NOT_FOUND or an error status. */
MUST_CHECK int store_run_state(struct db *d, int64_t run_id, char *state,
                               size_t state_len, char *result,
                               size_t result_len, char *reason,
                               size_t reason_len);

/* Background tasks. Each returns 0 or an error status. */

/* Writes published_at of the jobs store_create_run_ex published and has
 * not marked yet (it marks them in batches). store_publish_outbox calls
 * it; call it also before stopping. Any thread. Returns 0 or a database
 * status. */
int store_flush_published(struct db *d);

/* Publishes jobs stored but not yet on NATS (their runs still queued)
 * once they are 10 s old: younger ones are still being published by the
 * request or tick that stored them. */
MUST_CHECK int store_publish_outbox(struct db *d, struct bus *bus,
                                    int *published);

/* Times out runs that waited in the queue or ran too long; publishes a
 * cancel for each so no worker keeps running it. For every run it ends,
 * calls ended(arg, run_id, ns, suite, state, result) on this thread. */
MUST_CHECK int store_sweep(struct db *d, struct bus *bus,
                           void (*ended)(void *arg, int64_t run_id,
                                         const char *ns, const char *suite,
                                         const char *state, const char *result),
                           void *arg);

/* Records a worker's heartbeat: the workers row, and its suites in the
 * catalog when suites_changed. */
struct wire_worker;
MUST_CHECK int store_worker_seen(struct db *d, const struct wire_worker *w,
                                 bool suites_changed, bool bye);

/* Counts for gauges, as tab-separated lines (caller frees each):
 * running: "namespace\tsuite\truns" for runs running;
 * pools: "pool\tqueued_jobs\tworkers_alive\tslots\tfree_slots";
 * and the jobs stored but not yet published. */
MUST_CHECK int store_gauges(struct db *d, char **running, char **pools,
                            int64_t *outbox_jobs);

#endif
