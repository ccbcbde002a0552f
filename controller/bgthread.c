/* bgthread: see bgthread.h. */
#include "bgthread.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "kv.h"
#include "mem.h"

/* How long a Redis call of these threads may take. */
#define BGTHREAD_REDIS_TIMEOUT_MS 1000

static void make_id(char *out, size_t len)
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

int bgthread_start(struct bgthread *t, const char *pg_dsn,
                   const char *redis_url, const char *redis_password,
                   void *(*fn)(void *), void *arg)
{
    t->pg_dsn = mem_strdup(pg_dsn);
    t->redis_url = mem_strdup(redis_url);
    t->redis_password = redis_password ? mem_strdup(redis_password) : NULL;
    atomic_store(&t->stop, false);
    make_id(t->id, sizeof(t->id));
    if (kv_new(t->redis_url, t->redis_password, BGTHREAD_REDIS_TIMEOUT_MS,
               &t->kv) != ST_OK ||
        db_new(t->pg_dsn, &t->db) != ST_OK) {
        bgthread_stop(t);
        return ST_INVALID;
    }
    if (pthread_create(&t->thread, NULL, fn, arg) != 0) {
        bgthread_stop(t);
        return ST_INTERNAL;
    }
    t->started = true;
    return ST_OK;
}

void bgthread_stop(struct bgthread *t)
{
    atomic_store(&t->stop, true);
    if (t->started) {
        pthread_join(t->thread, NULL);
        t->started = false;
    }
    db_free(t->db);
    kv_free(t->kv);
    free(t->pg_dsn);
    free(t->redis_url);
    free(t->redis_password);
    t->db = NULL;
    t->kv = NULL;
    t->pg_dsn = NULL;
    t->redis_url = NULL;
    t->redis_password = NULL;
}

bool bgthread_stopping(struct bgthread *t)
{
    return atomic_load(&t->stop);
}

bool bgthread_db_ready(struct bgthread *t, bool (*schema_ready)(void *arg),
                       void *arg)
{
    if (schema_ready && !schema_ready(arg)) {
        return false;
    }
    if (!db_is_ok(t->db) && db_reset(t->db) != ST_OK) {
        t->backoff_ms = t->backoff_ms < 100    ? 100
                        : t->backoff_ms < 2500 ? t->backoff_ms * 2
                                               : 5000;
        bgthread_nap(t, t->backoff_ms);
        return false;
    }
    t->backoff_ms = 0;
    return true;
}

void bgthread_nap(struct bgthread *t, int64_t ms)
{
    for (int64_t left = ms; left > 0 && !bgthread_stopping(t); left -= 50) {
        int64_t step = left < 50 ? left : 50;
        struct timespec ts = {(time_t)(step / 1000),
                              (long)(step % 1000) * 1000000L};

        nanosleep(&ts, NULL);
    }
}
