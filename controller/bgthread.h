/* bgthread: a controller thread of its own with its own PostgreSQL and
 * Redis connections, for work that blocks on them and so stays off the
 * loop (the scheduler, the retention janitor). */
#ifndef HANDOFF_BGTHREAD_H
#define HANDOFF_BGTHREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"

struct db;
struct kv;

struct bgthread {
    struct db *db; /* for the thread only; connected lazily */
    struct kv *kv; /* for the thread only */
    char id[96];   /* host/pid/random: this replica's token in locks */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    int64_t backoff_ms; /* bgthread_db_ready's wait after a failure */
    char *pg_dsn;       /* copies of what start was given */
    char *redis_url;
    char *redis_password;
};

/* Prepares the connections (not connecting yet) and starts fn(arg) on a
 * new thread. Returns 0, ST_INVALID (a bad Redis URL or DSN) or
 * ST_INTERNAL; on failure everything is released. redis_password may be
 * NULL. */
MUST_CHECK int bgthread_start(struct bgthread *t, const char *pg_dsn,
                              const char *redis_url, const char *redis_password,
                              void *(*fn)(void *), void *arg);
/* Asks the thread to stop, joins it, closes the connections. Safe on a
 * zeroed or failed struct, and twice. */
void bgthread_stop(struct bgthread *t);
/* True once bgthread_stop was called: the thread's loop should end. */
bool bgthread_stopping(struct bgthread *t);
/* For the thread's loop: true when the schema is ready (schema_ready NULL
 * or true) and the connection works. A broken connection is re-established
 * with a backoff (100 ms doubling to 5 s, napped here) before it returns
 * false; the caller naps its own interval when the schema is not ready. */
bool bgthread_db_ready(struct bgthread *t, bool (*schema_ready)(void *arg),
                       void *arg);
/* Sleeps ms, in steps of 50 ms, returning early when stopping. */
void bgthread_nap(struct bgthread *t, int64_t ms);

#endif
