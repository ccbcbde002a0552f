/* dbpool: threads with a connection each, one mutex-protected FIFO of
 * tasks, and a loopq that carries finished tasks to the loop thread. */
#include "dbpool.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "loopq.h"
#include "mem.h"

/* Reconnect attempts of one thread: the first at once, then after 100 ms,
 * doubling up to 5 s. */
#define DBPOOL_BACKOFF_MIN_MS 100
#define DBPOOL_BACKOFF_MAX_MS 5000
/* An idle thread looks at its connection this often (dbpool_is_up). */
#define DBPOOL_IDLE_CHECK_MS 1000

struct task {
    void (*work)(struct db *d, void *arg);
    void (*done)(void *arg);
    void *arg;
    struct task *next;
};

struct pool_thread {
    struct dbpool *pool;
    pthread_t tid;
    struct db *db;
    bool up;             /* the connection, as this thread last saw it */
    int64_t next_try_ms; /* no reconnect attempt before (monotonic) */
    int64_t backoff_ms;  /* wait after the next failed attempt */
};

struct dbpool {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a task was queued, or stopping was set */
    struct task *head;   /* queued, not started; under lock */
    struct task *tail;
    size_t queued;
    bool stopping;        /* dbpool_free has started; under lock */
    atomic_int n_up;      /* threads whose up is true */
    struct loopq *done_q; /* finished tasks with a done callback */
    struct pool_thread *threads;
    int n_threads;
};

static int64_t now_ms(void)
{
    return clock_mono_ns() / CLOCK_NS_PER_MS;
}

static void note_up(struct pool_thread *t, bool up)
{
    if (t->up != up) {
        t->up = up;
        atomic_fetch_add(&t->pool->n_up, up ? 1 : -1);
    }
}

/* Makes t's connection usable if it can: a broken one is re-established,
 * at most once per backoff period while every connection of the pool is
 * down. Once another thread got through, PostgreSQL is back and waiting
 * out the backoff would only fail the next tasks: try at once. */
static void check_conn(struct pool_thread *t)
{
    int64_t now;

    if (db_is_ok(t->db)) {
        note_up(t, true);
        return;
    }
    note_up(t, false);
    now = now_ms();
    if (now < t->next_try_ms && atomic_load(&t->pool->n_up) == 0) {
        return;
    }
    if (db_reset(t->db) == ST_OK) {
        note_up(t, true);
        t->backoff_ms = DBPOOL_BACKOFF_MIN_MS;
        t->next_try_ms = 0;
        return;
    }
    t->next_try_ms = now + t->backoff_ms;
    t->backoff_ms = t->backoff_ms * 2 > DBPOOL_BACKOFF_MAX_MS
                        ? DBPOOL_BACKOFF_MAX_MS
                        : t->backoff_ms * 2;
}

static void run_task(struct pool_thread *t, struct task *task)
{
    check_conn(t);
    task->work(t->db, task->arg);
    if (db_in_transaction(t->db)) {
        /* The next task must not find itself inside this one's
         * transaction. */
        log_error("dbpool: a task left a transaction open; rolled back");
        db_rollback(t->db);
    }
    note_up(t, db_is_ok(t->db));
    if (task->done) {
        loopq_push(t->pool->done_q, task);
    } else {
        free(task);
    }
}

static void *pool_main(void *arg)
{
    struct pool_thread *t = arg;
    struct dbpool *p = t->pool;

    check_conn(t);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct task *task = p->head;

        if (!task) {
            struct timespec until;
            int64_t ns;

            /* Queued tasks run before the thread ends: dbpool_free's
             * promise. */
            if (p->stopping) {
                break;
            }
            clock_gettime(CLOCK_MONOTONIC, &until);
            ns = until.tv_nsec + DBPOOL_IDLE_CHECK_MS * CLOCK_NS_PER_MS;
            until.tv_sec += (time_t)(ns / CLOCK_NS_PER_S);
            until.tv_nsec = (long)(ns % CLOCK_NS_PER_S);
            if (pthread_cond_timedwait(&p->wake, &p->lock, &until) ==
                ETIMEDOUT) {
                pthread_mutex_unlock(&p->lock);
                check_conn(t);
                pthread_mutex_lock(&p->lock);
            }
            continue;
        }
        p->head = task->next;
        if (!p->head) {
            p->tail = NULL;
        }
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        run_task(t, task);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Loop thread: a finished task's done, then the task is gone. Also
 * loopq_free's drop, for tasks finished while the loop did not run. */
static void on_done(void *arg, void *item)
{
    struct task *task = item;

    (void)arg;
    task->done(task->arg);
    free(task);
}

/* Sets stopping and joins the first n threads; they run what is queued
 * first. */
static void stop_and_join(struct dbpool *p, int n)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < n; i++) {
        pthread_join(p->threads[i].tid, NULL);
    }
}

/* Frees what dbpool_new made before its threads, in reverse. */
static void pool_release(struct dbpool *p)
{
    loopq_free(p->done_q, on_done);
    for (int i = 0; i < p->n_threads; i++) {
        db_free(p->threads[i].db);
    }
    free(p->threads);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int dbpool_new(struct event_base *base, const char *dsn, int threads,
               struct dbpool **out)
{
    struct dbpool *p = NULL;
    pthread_condattr_t attr;
    sigset_t all;
    sigset_t old;
    int started = 0;
    int rc;

    if (threads < 1 || threads > DBPOOL_MAX_THREADS) {
        log_error("dbpool: %d threads: want 1 to %d", threads,
                  DBPOOL_MAX_THREADS);
        return ST_INVALID;
    }
    p = mem_zalloc(sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    /* Idle waits are timed on the monotonic clock: a wall clock step must
     * not stall the connection checks. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&p->n_up, 0);
    p->threads = mem_calloc((size_t)threads, sizeof(*p->threads));
    p->n_threads = threads;
    for (int i = 0; i < threads; i++) {
        struct pool_thread *t = &p->threads[i];

        t->pool = p;
        t->backoff_ms = DBPOOL_BACKOFF_MIN_MS;
        rc = db_new(dsn, &t->db);
        if (rc != ST_OK) {
            goto free_pool;
        }
    }
    rc = loopq_new(base, on_done, p, &p->done_q);
    if (rc != ST_OK) {
        goto free_pool;
    }
    /* Signals go to the program's own threads, not to these. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; started < threads; started++) {
        if (pthread_create(&p->threads[started].tid, NULL, pool_main,
                           &p->threads[started]) != 0) {
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < threads) {
        log_error("dbpool: cannot start thread %d of %d", started + 1, threads);
        rc = ST_INTERNAL;
        goto join_threads;
    }
    *out = p;
    return ST_OK;

join_threads:
    stop_and_join(p, started);
free_pool:
    pool_release(p);
    return rc;
}

int dbpool_submit(struct dbpool *p, void (*work)(struct db *d, void *arg),
                  void (*done)(void *arg), void *arg)
{
    struct task *task = mem_zalloc(sizeof(*task));

    assert(work);
    task->work = work;
    task->done = done;
    task->arg = arg;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        free(task);
        return ST_CANCELLED;
    }
    if (p->tail) {
        p->tail->next = task;
    } else {
        p->head = task;
    }
    p->tail = task;
    p->queued++;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return ST_OK;
}

size_t dbpool_queue_len(struct dbpool *p)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->queued;
    pthread_mutex_unlock(&p->lock);
    return n;
}

bool dbpool_is_up(struct dbpool *p)
{
    return atomic_load(&p->n_up) > 0;
}

void dbpool_free(struct dbpool *p)
{
    if (!p) {
        return;
    }
    stop_and_join(p, p->n_threads);
    /* Every task has run its work; loopq_free hands the ones whose done
     * has not run yet to on_done, in order. */
    pool_release(p);
}
