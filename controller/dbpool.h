/* dbpool: PostgreSQL work off the libevent loop. A fixed set of threads,
 * each with its own connection (struct db), takes tasks from one FIFO
 * queue; a task's work runs on one of them, then its done callback runs on
 * the loop's thread. docs/database.md has the threading model. */
#ifndef HANDOFF_DBPOOL_H
#define HANDOFF_DBPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

struct db;
struct dbpool;
struct event_base;

/* Most threads a pool may have. */
#define DBPOOL_MAX_THREADS 64

/* Starts threads (1..DBPOOL_MAX_THREADS) threads, each connecting to dsn
 * in the background: the pool works, and tasks fail with ST_UPSTREAM,
 * until PostgreSQL answers. base is borrowed until dbpool_free and must
 * have been made after evthread_use_pthreads(). Returns 0 and *out,
 * ST_INVALID for a bad thread count or a malformed dsn, or ST_INTERNAL
 * (threads or events could not be made). Loop thread. */
MUST_CHECK int dbpool_new(struct event_base *base, const char *dsn, int threads,
                          struct dbpool **out);

/* Queues a task. work(d, arg) runs once on a pool thread with that
 * thread's connection: the pool has checked it (and reconnected a broken
 * one, with a backoff of 100 ms doubling to 5 s between attempts) but does
 * not hold the task back while PostgreSQL is away: work then gets
 * ST_UPSTREAM from its calls and decides. work must leave no transaction
 * open, must not block on the loop thread, and may ignore a broken
 * connection (the pool sees it). Then done(arg), if done is not NULL, runs
 * once on the loop thread. Tasks start in submit order; several run at
 * once on different threads. Returns 0, or ST_CANCELLED once dbpool_free
 * has started (neither callback will run). Any thread. */
MUST_CHECK int dbpool_submit(struct dbpool *p,
                             void (*work)(struct db *d, void *arg),
                             void (*done)(void *arg), void *arg);

/* Tasks queued and not started yet (for metrics). Any thread. */
size_t dbpool_queue_len(struct dbpool *p);

/* True while at least one pool thread holds a live connection, as last
 * seen: after each task and, on an idle thread, at least once a second
 * (for /readyz). Any thread. */
bool dbpool_is_up(struct dbpool *p);

/* Refuses new tasks, runs every task already queued (their work, then
 * their done, before it returns), joins the threads, closes the
 * connections and frees p. Blocks until the last work returns. Loop
 * thread, not from a done callback. NULL does nothing. */
void dbpool_free(struct dbpool *p);

#endif
