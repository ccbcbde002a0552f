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

#include "clock.h"
#include "cmetrics.h"
#include "db.h"
#include "kv.h"
#include "log.h"
#include "mem.h"

struct janitor {
    struct janitor_config cfg;
    char *pg_dsn;
    char *redis_url;
    char *redis_password;
    char token[96]; /* this replica's lock token */
    struct db *db;
    struct kv *kv;
    pthread_t thread;
    atomic_bool stop;
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Sleeps ms in short steps so a stop is seen soon. */
static void nap(struct janitor *j, int64_t ms)
{
    for (int64_t t = 0; t < ms && !atomic_load(&j->stop); t += 50) {
        sleep_ms(ms - t < 50 ? ms - t : 50);
    }
}

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
    rc = db_exec_ctx(j->db, "janitor: delete",
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
    int rc = kv_lock(j->kv, JANITOR_LOCK_KEY, j->token, JANITOR_LOCK_TTL_MS);

    if (rc != ST_OK) {
        /* ST_CONFLICT: another replica works; ST_UPSTREAM: Redis is away
         * and nothing is deleted without the lock. */
        return;
    }
    for (;;) {
        int64_t runs = 0;

        if (delete_batch(j, &runs) != ST_OK || runs < j->cfg.batch ||
            atomic_load(&j->stop)) {
            break;
        }
        nap(j, j->cfg.pause_ms);
        if (kv_renew(j->kv, JANITOR_LOCK_KEY, j->token, JANITOR_LOCK_TTL_MS) !=
            ST_OK) {
            log_warn("janitor: lost the lock mid-pass; stopping this pass");
            return;
        }
    }
    if (kv_unlock(j->kv, JANITOR_LOCK_KEY, j->token) == ST_UPSTREAM) {
        log_debug("janitor: lock left to expire");
    }
}

static void *janitor_main(void *arg)
{
    struct janitor *j = arg;
    int64_t backoff_ms = 100;

    while (!atomic_load(&j->stop)) {
        bool ready = !j->cfg.schema_ready || j->cfg.schema_ready(j->cfg.arg);

        if (ready && !db_is_ok(j->db) && db_reset(j->db) != ST_OK) {
            nap(j, backoff_ms);
            backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
            continue;
        }
        backoff_ms = 100;
        if (ready) {
            pass(j);
        }
        nap(j, ready ? j->cfg.interval_ms : 200);
    }
    return NULL;
}

static void make_token(char *out, size_t len)
{
    char host[64] = "host";
    unsigned int r = (unsigned int)clock_real_ns();
    FILE *f = fopen("/dev/urandom", "rb");

    if (f) {
        if (fread(&r, sizeof(r), 1, f) != 1) {
            r = (unsigned int)clock_real_ns();
        }
        fclose(f);
    }
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "host");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(out, len, "%s/%d/%08x", host, (int)getpid(), r);
}

int janitor_start(const struct janitor_config *cfg, struct janitor **out)
{
    struct janitor *j = mem_zalloc(sizeof(*j));

    j->cfg = *cfg;
    j->pg_dsn = mem_strdup(cfg->pg_dsn);
    j->redis_url = mem_strdup(cfg->redis_url);
    j->redis_password =
        cfg->redis_password ? mem_strdup(cfg->redis_password) : NULL;
    j->cfg.pg_dsn = j->pg_dsn;
    j->cfg.redis_url = j->redis_url;
    j->cfg.redis_password = j->redis_password;
    if (j->cfg.interval_ms <= 0) {
        j->cfg.interval_ms = 60000;
    }
    if (j->cfg.batch <= 0) {
        j->cfg.batch = 500;
    }
    if (j->cfg.pause_ms < 0) {
        j->cfg.pause_ms = 0;
    }
    make_token(j->token, sizeof(j->token));
    if (kv_new(j->redis_url, j->redis_password, 1000, &j->kv) != ST_OK ||
        db_new(j->pg_dsn, &j->db) != ST_OK) {
        j->thread = pthread_self();
        janitor_stop(j);
        return ST_INVALID;
    }
    if (pthread_create(&j->thread, NULL, janitor_main, j) != 0) {
        j->thread = pthread_self();
        janitor_stop(j);
        return ST_INTERNAL;
    }
    *out = j;
    return ST_OK;
}

void janitor_stop(struct janitor *j)
{
    if (!j) {
        return;
    }
    atomic_store(&j->stop, true);
    if (!pthread_equal(j->thread, pthread_self())) {
        pthread_join(j->thread, NULL);
    }
    db_free(j->db);
    kv_free(j->kv);
    free(j->pg_dsn);
    free(j->redis_url);
    free(j->redis_password);
    free(j);
}
