/* The retention janitor's thread (see janitor.h). It blocks on PostgreSQL
 * and Redis, which is why it is not on the loop. */
#include "janitor.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bgthread.h"
#include "clock.h"
#include "cmetrics.h"
#include "db.h"
#include "kv.h"
#include "log.h"
#include "mem.h"

struct janitor {
    struct janitor_config cfg;
    struct bgthread bg; /* its thread, connections and lock token */
};

static void count(struct janitor *j, const char *kind, int64_t n)
{
    if (j->cfg.metrics && n > 0) {
        metrics_inc(j->cfg.metrics->retention_deleted, 1,
                    (const char *[]){kind}, (double)n);
    }
}

/* Deletes one batch. Returns 0 with *runs deleted, or a database status. */
static int delete_batch(struct janitor *j, int64_t *runs)
{
    static const char *const kinds[] = {"runs", "jobs", "job_attempts",
                                        "test_results"};
    char limit[24];
    struct db_res *res = NULL;
    int64_t n[4] = {0};
    int rc;

    snprintf(limit, sizeof(limit), "%" PRId64, j->cfg.batch);
    rc = db_exec_ctx(j->bg.db, "janitor: delete",
                     "SELECT * FROM handoff_retention_delete($1::int)", 1,
                     (const char *[]){limit}, &res);
    if (rc == ST_OK) {
        for (int i = 0; i < 4; i++) {
            if (db_res_int64(res, 0, (size_t)i, &n[i]) != ST_OK) {
                n[i] = 0;
            }
            count(j, kinds[i], n[i]);
        }
        *runs = n[0];
        if (n[0] > 0) {
            log_info("janitor: deleted %" PRId64 " run(s), %" PRId64
                     " job(s), %" PRId64 " attempt(s), %" PRId64
                     " test result(s)",
                     n[0], n[1], n[2], n[3]);
        }
    }
    db_res_free(res);
    return rc;
}

/* One pass under the lock: batches until one comes back short, the lock is
 * lost or the thread stops. */
static void pass(struct janitor *j)
{
    int rc = kv_lock(j->bg.kv, JANITOR_LOCK_KEY, j->bg.id, JANITOR_LOCK_TTL_MS);

    if (rc != ST_OK) {
        /* ST_CONFLICT: another replica works; ST_UPSTREAM: Redis is away
         * and nothing is deleted without the lock. */
        return;
    }
    for (;;) {
        int64_t runs = 0;

        if (delete_batch(j, &runs) != ST_OK || runs < j->cfg.batch ||
            bgthread_stopping(&j->bg)) {
            break;
        }
        bgthread_nap(&j->bg, j->cfg.pause_ms);
        if (kv_renew(j->bg.kv, JANITOR_LOCK_KEY, j->bg.id,
                     JANITOR_LOCK_TTL_MS) != ST_OK) {
            log_warn("janitor: lost the lock mid-pass; stopping this pass");
            return;
        }
    }
    if (kv_unlock(j->bg.kv, JANITOR_LOCK_KEY, j->bg.id) == ST_UPSTREAM) {
        log_debug("janitor: lock left to expire");
    }
}

static void *janitor_main(void *arg)
{
    struct janitor *j = arg;

    while (!bgthread_stopping(&j->bg)) {
        if (bgthread_db_ready(&j->bg, j->cfg.schema_ready, j->cfg.arg)) {
            pass(j);
            bgthread_nap(&j->bg, j->cfg.interval_ms);
        } else {
            bgthread_nap(&j->bg, 200);
        }
    }
    return NULL;
}

int janitor_start(const struct janitor_config *cfg, struct janitor **out)
{
    struct janitor *j = mem_zalloc(sizeof(*j));
    int rc;

    j->cfg = *cfg;
    if (j->cfg.interval_ms <= 0) {
        j->cfg.interval_ms = 60000;
    }
    if (j->cfg.batch <= 0) {
        j->cfg.batch = 500;
    }
    if (j->cfg.pause_ms < 0) {
        j->cfg.pause_ms = 0;
    }
    rc = bgthread_start(&j->bg, cfg->pg_dsn, cfg->redis_url,
                        cfg->redis_password, janitor_main, j);
    if (rc != ST_OK) {
        free(j);
        return rc;
    }
    *out = j;
    return ST_OK;
}

void janitor_stop(struct janitor *j)
{
    if (!j) {
        return;
    }
    bgthread_stop(&j->bg);
    free(j);
}
