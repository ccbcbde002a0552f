/* The distributed worker (see serve.h and docs/worker.md).
 *
 * Threads: the main thread runs the libevent loop (runners, zygote,
 * heartbeats, signals); one fetch thread per embedded suite pulls from that
 * suite's durable consumer, but only while it holds a token (a free slot),
 * so the worker never takes more jobs than --concurrency; one publisher
 * thread publishes to JetStream and retries until the server confirms, then
 * acks the job; a setup thread creates streams and consumers, retrying
 * until NATS is reachable. nats.c threads deliver cancels. Everything that
 * reaches the loop from another thread goes through one loopq. */
#include "serve.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "child.h"
#include "clock.h"
#include "httpd.h"
#include "log.h"
#include "loopq.h"
#include "mem.h"
#include "metrics.h"
#include "opts.h"
#include "registry.h"
#include "runner.h"
#include "streams.h"
#include "subjects.h"
#include "testfilter.h"
#include "loadjob.h"
#include "wire.h"
#include "zygote.h"

#define SERVE_VERSION "0.1.0"
/* A cancel heard live stops its run's jobs that come within the hour (by
 * run id: what a Cancel from an older controller carries). */
#define SERVE_CANCEL_MEMORY_NS (3600 * CLOCK_NS_PER_S)
/* The jobs a cancel names (job keys, unique beyond one database) are
 * dropped as long as the stream keeps the cancel: that late they may come,
 * and a worker replays them at start-up. */
#define SERVE_CANCEL_KEY_MEMORY_NS                                             \
    (STREAMS_CANCEL_MAX_AGE_H * 3600 * CLOCK_NS_PER_S)
/* How long the setup waits for the stored cancels before pulling jobs. */
#define SERVE_CANCEL_REPLAY_NS (10 * CLOCK_NS_PER_S)
/* How fetchers find jobs (fetch_main): a fetch holds a slot, so none
 * long-polls an idle suite. A job published for a suite reaches the worker
 * as a core NATS copy too (a hint); its fetcher then takes a slot and
 * fetches, waiting up to SERVE_HINT_WAIT_MS for the stream to have stored
 * it. Every SERVE_SWEEP_NS each fetcher also looks once (jobs no hint
 * announced: redeliveries, a backlog from before the worker started, hints
 * lost while disconnected), waiting SERVE_SWEEP_WAIT_MS. */
#define SERVE_HINT_WAIT_MS 100
#define SERVE_SWEEP_WAIT_MS 20
#define SERVE_SWEEP_NS (2 * CLOCK_NS_PER_S)
/* Live events of a job go out in batches: at most this long after the
 * first one, or at once when the batch is this large or the suite ended.
 * A 20-test suite sends about 42 events: one message instead of 42 saves
 * the worker and nats-server most of their work per job. */
#define SERVE_EVENTS_DELAY_MS 20
#define SERVE_EVENTS_BATCH_MAX (64 * 1024)
/* Largest load snapshot published: under NATS' default 1 MiB payload. */
#define SERVE_LOAD_SNAPSHOT_MAX (960 * 1024)

struct serve_cfg {
    char *nats_url;
    char *creds;
    char *token;
    char *user;
    char *password;
    char *pool;
    char *worker_id;
    struct opt_kv labels;
    int64_t concurrency;
    int64_t heartbeat_ns;
    int64_t drain_ns;
    int64_t ack_wait_ns;
    int64_t max_deliver;
    int64_t kill_grace_ns;
    int64_t started_delay_ns;
    int64_t output_cap;
    char *metrics_addr;
};

enum item_kind { ITEM_JOB, ITEM_CANCEL, ITEM_PUBLISHED, ITEM_NATS };

struct item {
    enum item_kind kind;
    struct bus_msg *msg; /* ITEM_JOB */
    struct sjob *job;    /* ITEM_PUBLISHED */
    int64_t run_id;      /* ITEM_CANCEL */
    char *reason;
    int64_t *job_keys; /* ITEM_CANCEL: job_key_hash of each job it names */
    size_t n_job_keys;
    bool flag; /* ITEM_NATS: connected; ITEM_CANCEL: replayed at start-up */
};

struct serve;

struct fetcher {
    struct serve *s;
    const struct hf_suite *suite;
    char consumer[256];
    char subject[512];
    struct bus_pull *pull;
    struct bus_sub *hint_sub; /* core copies of this suite's jobs */
    bool hinted;              /* under s->fetch_lock: look now */
    /* Under s->fetch_lock: hinted, or stopping. One per fetcher: a
     * shared one woke every suite's thread for each hint, and all but
     * one went back to sleep (a tenth of a worker's context switches). */
    pthread_cond_t cond;
    pthread_t thread;
    bool started;
};

/* One job being run (or published) by this worker. Loop thread. */
struct sjob {
    struct serve *s;
    struct sjob *next;
    struct bus_msg *msg; /* the job message; NULL once handed over */
    struct wire_job job;
    int attempt; /* JetStream delivery count */
    struct runner *runner;
    struct event *progress; /* in-progress acks while it runs */
    char events_subject[64];
    uint64_t seq;
    struct buf events;        /* an EventBatch not published yet */
    struct event *events_ev;  /* publishes it SERVE_EVENTS_DELAY_MS after
                                 its first event */
    struct event *started_ev; /* JobStarted, --started-delay after the
                                 start, unless the result came first */
    int64_t started_unix_ns;
    char **skip_reasons;
    size_t n_tests;
    bool cancelled;
    bool publishing;
    struct loadjob *load; /* a load run's job (docs/load.md) */
    int64_t load_start_unix_ns;
    struct wire_result_meta *load_meta; /* load parts of the result */
};

struct pub_item {
    struct pub_item *next;
    char subject[96];
    char msg_id[320];
    struct buf data;
    struct sjob *job;    /* set for a result: ack, then report */
    struct bus_msg *ack; /* the job message to ack after publish */
};

/* What was cancelled: an open-addressing set of nonzero 64-bit values
 * (run ids, or hashes of job keys), each with its expiry. Replayed at
 * start-up from the stream, so it may hold thousands; a job's check is
 * one probe. */
struct cancelled_run {
    int64_t id;
    int64_t until_mono_ns;
};

struct cancel_set {
    struct cancelled_run *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;   /* slots in use, expired ones included */
};

struct serve {
    struct serve_cfg cfg;
    const char *prog;
    struct event_base *base;
    struct zygote *zygote;
    struct zygote *load_zygote; /* forks load jobs' children; NULL when no
                                   suite has a workflow */
    struct bus *bus;
    struct loopq *inbox;
    struct bus_sub *cancel_sub;
    sem_t tokens;               /* free slots for fetchers to claim */
    pthread_mutex_t fetch_lock; /* the fetchers' hinted and cond */
    atomic_bool stopping;       /* fetchers and setup: stop */
    atomic_bool nats_up;
    pthread_t setup_thread;
    bool setup_started;
    struct fetcher *fetchers;
    size_t n_fetchers;
    atomic_bool fetchers_ready; /* setup done: fetchers array complete */

    pthread_t pub_thread;
    pthread_mutex_t pub_lock;
    pthread_cond_t pub_cond;
    struct pub_item *pub_head;
    struct pub_item *pub_tail;
    bool pub_stop;  /* finish what is queued, then stop */
    bool pub_abort; /* give up retrying */

    struct sjob *jobs;
    int running;                      /* jobs held (running or publishing) */
    struct cancel_set cancelled_runs; /* run ids, heard live */
    struct cancel_set cancelled_jobs; /* job_key_hash values */
    /* The cancels stream: the sequence of its last message when this
     * worker subscribed (written before any message comes: those up to it
     * are the replay), the highest sequence come since. */
    uint64_t cancel_last_seq;
    atomic_uint_fast64_t cancel_seen_seq;
    atomic_uint_fast64_t cancels_replayed;
    bool draining;
    int signals;
    struct event *heartbeat_ev;
    struct event *drain_ev;
    struct event *final_ev;
    struct event *sigterm_ev;
    struct event *sigint_ev;
    struct wire_worker status; /* suites filled once */
    char host[256];
    int64_t started_unix_ms;

    /* counters (exposed by heartbeats and logs) */
    uint64_t jobs_started;
    uint64_t jobs_passed;
    uint64_t jobs_failed;
    uint64_t jobs_dropped;

    /* /metrics (--metrics-addr) */
    struct httpd *http;
    struct metrics *metrics;
    struct metrics_family *m_running;
    struct metrics_family *m_finished; /* result */
    struct metrics_family *m_dropped;
    struct metrics_family *m_slots;
    struct metrics_family *m_free;
    struct metrics_family *m_nats;
    struct metrics_family *m_retries;
    struct metrics_family *m_info; /* version, pool */
};

static void publish_status(struct serve *s, const char *kind);

/* ---- Publisher thread ------------------------------------------------- */

static void pub_push(struct serve *s, struct pub_item *it)
{
    pthread_mutex_lock(&s->pub_lock);
    if (s->pub_tail) {
        s->pub_tail->next = it;
    } else {
        s->pub_head = it;
    }
    s->pub_tail = it;
    pthread_cond_signal(&s->pub_cond);
    pthread_mutex_unlock(&s->pub_lock);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / CLOCK_NS_PER_S),
                          (long)(ns % CLOCK_NS_PER_S)};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool pub_aborted(struct serve *s)
{
    bool abort;

    pthread_mutex_lock(&s->pub_lock);
    abort = s->pub_abort;
    pthread_mutex_unlock(&s->pub_lock);
    return abort;
}

/* Publishes it, retrying with backoff until the server confirms (NATS may
 * be away for a while: nothing is dropped) or the worker gives up. Then
 * acks the job message when there is one. */
static bool pub_one(struct serve *s, struct pub_item *it)
{
    int64_t backoff = 100 * CLOCK_NS_PER_MS;
    int64_t last_progress = clock_mono_ns();
    bool logged = false;

    for (;;) {
        int rc = bus_js_publish(s->bus, it->subject, it->data.data,
                                it->data.len, it->msg_id, 5000);

        if (rc == ST_OK) {
            break;
        }
        if (!logged) {
            log_warn("worker: cannot publish %s yet (%s); retrying until "
                     "NATS confirms it",
                     it->subject, status_str(rc));
            logged = true;
        }
        if (s->metrics) {
            metrics_inc(s->m_retries, 0, NULL, 1);
        }
        if (pub_aborted(s)) {
            return false;
        }
        /* Keep the job ours while we wait. */
        if (it->ack &&
            clock_mono_ns() - last_progress > s->cfg.ack_wait_ns / 3) {
            (void)bus_msg_in_progress(it->ack);
            last_progress = clock_mono_ns();
        }
        sleep_ns(backoff);
        backoff =
            backoff * 2 > 5 * CLOCK_NS_PER_S ? 5 * CLOCK_NS_PER_S : backoff * 2;
    }
    if (logged) {
        log_info("worker: published %s", it->subject);
    }
    if (it->ack) {
        /* Acked only now that the result is stored: if this ack is lost,
         * the job runs again and the result is recorded as another
         * attempt, never lost. */
        for (int i = 0; i < 5; i++) {
            if (bus_msg_ack_sync(it->ack, 5000) == ST_OK) {
                break;
            }
            if (pub_aborted(s)) {
                break;
            }
            sleep_ns(200 * CLOCK_NS_PER_MS);
        }
    }
    return true;
}

static void *pub_main(void *arg)
{
    struct serve *s = arg;

    for (;;) {
        struct pub_item *it;
        bool ok;

        pthread_mutex_lock(&s->pub_lock);
        while (!s->pub_head && !s->pub_stop) {
            pthread_cond_wait(&s->pub_cond, &s->pub_lock);
        }
        it = s->pub_head;
        if (!it) {
            pthread_mutex_unlock(&s->pub_lock);
            break;
        }
        s->pub_head = it->next;
        if (!s->pub_head) {
            s->pub_tail = NULL;
        }
        pthread_mutex_unlock(&s->pub_lock);
        ok = pub_one(s, it);
        if (it->job) {
            struct item *done = mem_zalloc(sizeof(*done));

            done->kind = ITEM_PUBLISHED;
            done->job = it->job;
            done->flag = ok;
            loopq_push(s->inbox, done);
        }
        buf_cleanup(&it->data);
        free(it);
    }
    return NULL;
}

/* ---- Fetch threads ---------------------------------------------------- */

/* A job was published for f's suite (core NATS delivers a copy to every
 * subscriber of the subject besides the stream): its fetcher looks now. */
static void on_hint(void *arg, struct bus_msg *m)
{
    struct fetcher *f = arg;

    bus_msg_free(m);
    pthread_mutex_lock(&f->s->fetch_lock);
    f->hinted = true;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->s->fetch_lock);
}

/* Waits until f is hinted, its sweep is due or the worker stops; returns
 * whether it was hinted (and clears that). */
static bool wait_for_work(struct fetcher *f, int64_t sweep_at)
{
    struct serve *s = f->s;
    bool hinted;

    pthread_mutex_lock(&s->fetch_lock);
    while (!f->hinted && !atomic_load(&s->stopping) &&
           clock_mono_ns() < sweep_at) {
        struct timespec until = {(time_t)(sweep_at / CLOCK_NS_PER_S),
                                 (long)(sweep_at % CLOCK_NS_PER_S)};

        (void)pthread_cond_timedwait(&f->cond, &s->fetch_lock, &until);
    }
    hinted = f->hinted;
    f->hinted = false;
    pthread_mutex_unlock(&s->fetch_lock);
    return hinted;
}

static void *fetch_main(void *arg)
{
    struct fetcher *f = arg;
    struct serve *s = f->s;
    int64_t sweep_at = 0; /* the first look is at once: a backlog */
    bool more = false;    /* the last fetch got a job: there may be more */

    while (!atomic_load(&s->stopping)) {
        struct timespec until;
        struct bus_msg *msg = NULL;
        size_t n = 0;
        bool hinted = more || wait_for_work(f, sweep_at);
        int rc;

        if (atomic_load(&s->stopping)) {
            break;
        }
        /* Waiters queue in order for the token (the kernel wakes the
         * longest waiting first), so every suite with work gets its turn.
         * serve_cleanup wakes them to stop. */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        /* A token is a free slot: without one, do not even ask. */
        if (sem_timedwait(&s->tokens, &until) != 0) {
            more = hinted; /* still to look at once a slot is free */
            continue;
        }
        if (atomic_load(&s->stopping)) {
            sem_post(&s->tokens);
            break;
        }
        rc = bus_pull_fetch(f->pull, 1,
                            hinted ? SERVE_HINT_WAIT_MS : SERVE_SWEEP_WAIT_MS,
                            &msg, &n);
        if (rc == ST_OK && n == 1) {
            struct item *it = mem_zalloc(sizeof(*it));

            it->kind = ITEM_JOB;
            it->msg = msg;
            loopq_push(s->inbox, it); /* the token goes with the job */
            more = true;
            continue;
        }
        sem_post(&s->tokens);
        more = false;
        sweep_at = clock_mono_ns() + SERVE_SWEEP_NS;
        if (rc != ST_TIMEOUT) {
            sleep_ns(500 * CLOCK_NS_PER_MS);
        }
    }
    return NULL;
}

/* ---- Setup thread: streams, consumers, fetchers ----------------------- */

static void on_cancel_msg(void *arg, struct bus_msg *m);

/* Subscribes to the cancels the stream keeps and waits (up to
 * SERVE_CANCEL_REPLAY_NS) until those stored before have arrived: they go
 * to the loop before any job the fetchers take, so a job of a run
 * cancelled while this worker was away is dropped, not run. */
static int replay_cancels(struct serve *s)
{
    uint64_t last;
    int64_t until;
    int rc;

    if (s->cancel_sub) {
        return ST_OK;
    }
    rc = bus_js_replay(s->bus, SUBJECTS_CANCELS_STREAM, SUBJECTS_CANCEL,
                       on_cancel_msg, s, &s->cancel_last_seq, &s->cancel_sub);
    if (rc != ST_OK) {
        return rc;
    }
    last = s->cancel_last_seq;
    until = clock_mono_ns() + SERVE_CANCEL_REPLAY_NS;
    while (atomic_load(&s->cancel_seen_seq) < last &&
           !atomic_load(&s->stopping)) {
        if (clock_mono_ns() > until) {
            log_warn("worker %s: stored cancels replayed up to %" PRIu64
                     " of %" PRIu64 " in %d s; pulling jobs anyway",
                     s->cfg.worker_id,
                     (uint64_t)atomic_load(&s->cancel_seen_seq), last,
                     (int)(SERVE_CANCEL_REPLAY_NS / CLOCK_NS_PER_S));
            return ST_OK;
        }
        sleep_ns(2 * CLOCK_NS_PER_MS);
    }
    if (last > 0) {
        log_info("worker %s: %" PRIu64 " stored cancel(s) replayed",
                 s->cfg.worker_id, (uint64_t)atomic_load(&s->cancels_replayed));
    }
    return ST_OK;
}

static int ensure_nats(struct serve *s)
{
    size_t n_streams;
    const struct bus_stream_config *streams = streams_all(&n_streams);
    int rc = ST_OK;

    for (size_t i = 0; i < n_streams && rc == ST_OK; i++) {
        rc = bus_ensure_stream(s->bus, &streams[i]);
    }
    if (rc == ST_OK) {
        rc = replay_cancels(s);
    }
    for (size_t i = 0; i < s->n_fetchers && rc == ST_OK; i++) {
        struct fetcher *f = &s->fetchers[i];
        struct bus_consumer_config cc = {
            .stream = SUBJECTS_JOBS_STREAM,
            .name = f->consumer,
            .filter = f->subject,
            .ack_wait_ns = s->cfg.ack_wait_ns,
            .max_deliver = (int)s->cfg.max_deliver,
        };

        rc = bus_ensure_consumer(s->bus, &cc);
        if (rc == ST_OK && !f->pull) {
            rc = bus_pull_bind(s->bus, SUBJECTS_JOBS_STREAM, f->consumer,
                               &f->pull);
        }
        if (rc == ST_OK && !f->hint_sub) {
            rc = bus_subscribe(s->bus, f->subject, NULL, on_hint, f,
                               &f->hint_sub);
        }
    }
    return rc;
}

static void *setup_main(void *arg)
{
    struct serve *s = arg;
    int64_t backoff = 200 * CLOCK_NS_PER_MS;
    bool logged = false;

    while (!atomic_load(&s->stopping)) {
        int rc = ensure_nats(s);

        if (rc == ST_OK) {
            break;
        }
        if (!logged) {
            log_warn("worker %s: cannot set up streams and consumers yet "
                     "(%s); retrying",
                     s->cfg.worker_id, status_str(rc));
            logged = true;
        }
        sleep_ns(backoff);
        backoff =
            backoff * 2 > 5 * CLOCK_NS_PER_S ? 5 * CLOCK_NS_PER_S : backoff * 2;
    }
    if (atomic_load(&s->stopping)) {
        return NULL;
    }
    for (size_t i = 0; i < s->n_fetchers; i++) {
        if (pthread_create(&s->fetchers[i].thread, NULL, fetch_main,
                           &s->fetchers[i]) == 0) {
            s->fetchers[i].started = true;
        }
    }
    atomic_store(&s->fetchers_ready, true);
    log_info("worker %s: pulling jobs for %zu suite(s) in pool %s, "
             "concurrency %" PRId64,
             s->cfg.worker_id, s->n_fetchers, s->cfg.pool, s->cfg.concurrency);
    return NULL;
}

/* ---- Jobs --------------------------------------------------------------- */

static size_t cancel_slot(const struct cancel_set *c, int64_t id)
{
    /* Fibonacci hashing: run ids are sequential. */
    size_t h = (size_t)(((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> 32);

    for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        if (c->slots[i].id == id || c->slots[i].id == 0) {
            return i;
        }
    }
}

static bool cancel_set_has(const struct cancel_set *c, int64_t id)
{
    size_t i;

    if (c->cap == 0 || id == 0) {
        return false;
    }
    i = cancel_slot(c, id);
    return c->slots[i].id == id && c->slots[i].until_mono_ns > clock_mono_ns();
}

static void cancel_set_add(struct cancel_set *c, int64_t id, int64_t keep_ns)
{
    int64_t now = clock_mono_ns();
    size_t i;

    if (id == 0) {
        return;
    }
    /* At half full, rebuild without the expired (and grow if the rest
     * still fill a quarter). */
    if ((c->n + 1) * 2 > c->cap) {
        struct cancel_set old = *c;
        size_t live = 0;

        for (size_t k = 0; k < old.cap; k++) {
            live += old.slots[k].id != 0 && old.slots[k].until_mono_ns > now;
        }
        c->cap = old.cap ? old.cap : 64;
        while ((live + 1) * 4 > c->cap) {
            c->cap *= 2;
        }
        c->slots = mem_calloc(c->cap, sizeof(*c->slots));
        c->n = 0;
        for (size_t k = 0; k < old.cap; k++) {
            if (old.slots[k].id != 0 && old.slots[k].until_mono_ns > now) {
                c->slots[cancel_slot(c, old.slots[k].id)] = old.slots[k];
                c->n++;
            }
        }
        free(old.slots);
    }
    i = cancel_slot(c, id);
    if (c->slots[i].id == 0) {
        c->n++;
    }
    c->slots[i].id = id;
    c->slots[i].until_mono_ns = now + keep_ns;
}

/* A job key (subjects_msg_id of a job's first publish) as a set member:
 * 64-bit FNV-1a, never 0. */
static int64_t job_key_hash(const char *key)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h = (h ^ *p) * UINT64_C(1099511628211);
    }
    return h ? (int64_t)h : 1;
}

/* Whether job (of this run, made at created_ms) was cancelled: its run
 * was heard cancelled within the hour, or a stored cancel names it. */
static bool job_is_cancelled(struct serve *s, const struct wire_job *job)
{
    char key[96];

    if (cancel_set_has(&s->cancelled_runs, job->run_id)) {
        return true;
    }
    if (s->cancelled_jobs.n == 0) {
        return false; /* no key to make */
    }
    subjects_msg_id(job->job_id, job->created_unix_ms, 0, NULL, key,
                    sizeof(key));
    return cancel_set_has(&s->cancelled_jobs, job_key_hash(key));
}

/* Gives a slot back and checks whether a drain is complete. */
static void release_slot(struct serve *s)
{
    s->running--;
    sem_post(&s->tokens);
    if (s->draining && s->running == 0) {
        event_base_loopbreak(s->base);
    }
}

static void job_unlink(struct serve *s, struct sjob *j)
{
    for (struct sjob **p = &s->jobs; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            return;
        }
    }
}

static void job_free(struct sjob *j)
{
    if (j->progress) {
        event_free(j->progress);
    }
    if (j->events_ev) {
        event_free(j->events_ev);
    }
    if (j->started_ev) {
        event_free(j->started_ev);
    }
    buf_cleanup(&j->events);
    runner_free(j->runner);
    loadjob_free(j->load);
    for (size_t i = 0; i < j->n_tests; i++) {
        free(j->skip_reasons[i]);
    }
    free(j->skip_reasons);
    bus_msg_free(j->msg);
    wire_job_cleanup(&j->job);
    free(j);
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    struct sjob *j = arg;

    (void)fd;
    (void)what;
    if (j->msg && !j->publishing) {
        (void)bus_msg_in_progress(j->msg);
    }
}

/* Publishes the job's gathered live events. Best effort: the stored result
 * is the record. */
static void flush_events(struct sjob *j)
{
    if (j->events_ev) {
        event_del(j->events_ev);
    }
    if (j->events.len > 0) {
        (void)bus_publish(j->s->bus, j->events_subject, j->events.data,
                          j->events.len);
        buf_reset(&j->events);
    }
}

static void on_events_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_events(arg);
}

static void on_runner_event(void *arg, const struct report_event *ev)
{
    struct sjob *j = arg;
    struct buf b;
    bool first = j->events.len == 0;

    buf_init(&b, 0);
    wire_event_encode(ev, j->job.run_id, j->job.job_id, j->attempt, ++j->seq,
                      &b);
    wire_event_batch_add(&j->events, b.data, b.len);
    buf_cleanup(&b);
    if (ev->kind == REPORT_SUITE_END ||
        j->events.len >= SERVE_EVENTS_BATCH_MAX) {
        flush_events(j);
    } else if (first) {
        struct timeval tv = {0, SERVE_EVENTS_DELAY_MS * 1000};

        if (!j->events_ev) {
            j->events_ev = evtimer_new(j->s->base, on_events_due, j);
        }
        evtimer_add(j->events_ev, &tv);
    }
}

/* Hands the finished result to the publisher; it acks the job after. */
static void publish_result(struct sjob *j, const struct result_suite *res)
{
    struct serve *s = j->s;
    struct pub_item *it = mem_zalloc(sizeof(*it));
    struct wire_result_meta meta = {
        .job_id = j->job.job_id,
        .run_id = j->job.run_id,
        .job_attempt = j->attempt,
        .worker_id = s->cfg.worker_id,
        .cancelled = j->cancelled,
        .timed_out = j->runner && runner_timed_out(j->runner),
    };

    if (j->load_meta != NULL) {
        meta.load_setup_data = j->load_meta->load_setup_data;
        meta.load_setup_len = j->load_meta->load_setup_len;
        meta.load_spec = j->load_meta->load_spec;
        meta.load_total = j->load_meta->load_total;
        meta.load_total_len = j->load_meta->load_total_len;
        meta.load_seconds = j->load_meta->load_seconds;
    }

    if (res->result == RESULT_PASSED) {
        s->jobs_passed++;
    } else {
        s->jobs_failed++;
    }
    if (s->metrics) {
        metrics_inc(s->m_finished, 1,
                    (const char *[]){result_kind_str(res->result)}, 1);
    }
    j->publishing = true;
    if (j->progress) {
        event_del(j->progress);
    }
    if (j->started_ev) {
        /* Not published yet: the result stands for it. */
        event_del(j->started_ev);
    }
    flush_events(j); /* what a crashed child said last */
    subjects_results(j->job.run_id, "result", it->subject, sizeof(it->subject));
    subjects_msg_id(j->job.job_id, j->job.created_unix_ms, j->attempt, "result",
                    it->msg_id, sizeof(it->msg_id));
    buf_init(&it->data, 0);
    wire_result_encode(res, &meta, &it->data);
    it->job = j;
    it->ack = j->msg; /* the publisher owns acking from now on */
    pub_push(s, it);
}

static void on_runner_done(void *arg, struct runner *r)
{
    struct sjob *j = arg;

    publish_result(j, runner_result(r));
}

static void publish_started(struct sjob *j)
{
    struct pub_item *it = mem_zalloc(sizeof(*it));
    struct wire_started st = {.job_id = j->job.job_id,
                              .run_id = j->job.run_id,
                              .job_attempt = j->attempt,
                              .worker_id = j->s->cfg.worker_id,
                              .started_unix_ns = j->started_unix_ns};

    subjects_results(j->job.run_id, "started", it->subject,
                     sizeof(it->subject));
    subjects_msg_id(j->job.job_id, j->job.created_unix_ms, j->attempt,
                    "started", it->msg_id, sizeof(it->msg_id));
    buf_init(&it->data, 0);
    wire_started_encode(&st, &it->data);
    pub_push(j->s, it);
}

static void on_started_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    publish_started(arg);
}

/* JobStarted. A job's first attempt publishes it only once it has run
 * --started-delay (default 20 ms): the result of a shorter one says all
 * JobStarted would (the ingester takes the start from it), which saves a
 * JetStream message, its storage and ingestion, and an update of the
 * run's row with six of its indexes; the run shows `running` that much
 * later. Later attempts and load shards publish it at once: the ingester
 * marks earlier attempts lost on it, and a load run's shards start apart.
 * publish_result drops a JobStarted still waiting. */
static void announce_started(struct sjob *j)
{
    int64_t delay = j->s->cfg.started_delay_ns;
    struct timeval tv = {(time_t)(delay / CLOCK_NS_PER_S),
                         (suseconds_t)(delay % CLOCK_NS_PER_S / 1000)};

    j->started_unix_ns = clock_real_ns();
    if (delay <= 0 || j->attempt > 1 || j->job.load != NULL) {
        publish_started(j);
        return;
    }
    j->started_ev = evtimer_new(j->s->base, on_started_due, j);
    evtimer_add(j->started_ev, &tv);
}

/* A job this worker cannot run (bad filter, unknown suite): its run ends
 * with an error result that says why, rather than waiting for a timeout. */
static void fail_job(struct sjob *j, const char *why)
{
    struct result_suite res;

    log_warn("worker: job %s: %s", j->job.job_id, why);
    result_suite_init(&res, j->job.suite, j->job.ns);
    res.reason = mem_printf("the worker cannot run this job: %s", why);
    res.start_unix_ns = clock_real_ns();
    result_suite_finish(&res);
    publish_result(j, &res);
    result_suite_cleanup(&res);
}

static void start_load(struct serve *s, struct sjob *j);

static void start_job(struct serve *s, struct sjob *j)
{
    const struct hf_suite *suite = registry_find(j->job.suite);
    struct testfilter filter;
    struct runner_config cfg;
    char err[512];
    size_t selected = 0;

    announce_started(j);
    if (j->job.load != NULL) {
        start_load(s, j);
        return;
    }
    if (!suite || strcmp(registry_namespace(suite), j->job.ns) != 0) {
        fail_job(j, "this worker has no such suite");
        return;
    }
    if (testfilter_init(&filter, j->job.run_filter, j->job.skip_filter, "run",
                        "skip", err, sizeof(err)) != ST_OK) {
        fail_job(j, err);
        return;
    }
    j->n_tests = registry_test_count(suite);
    j->skip_reasons = mem_calloc(j->n_tests + 1, sizeof(*j->skip_reasons));
    for (size_t i = 0; i < j->n_tests; i++) {
        char why[512];
        const char *r = testfilter_reason(&filter, suite->tests[i].name, "run",
                                          "skip", why, sizeof(why));

        if (r) {
            j->skip_reasons[i] = mem_strdup(r);
        } else {
            selected++;
        }
    }
    testfilter_cleanup(&filter);
    if (selected == 0) {
        fail_job(j, "the filters select no test");
        return;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.suite = suite;
    cfg.skip_reasons = (const char *const *)j->skip_reasons;
    cfg.params = j->job.params;
    cfg.n_params = j->job.n_params;
    cfg.count = j->job.count;
    cfg.max_attempts = j->job.max_attempts;
    cfg.test_timeout_ns = j->job.test_timeout_ms * CLOCK_NS_PER_MS;
    cfg.suite_timeout_ns = j->job.timeout_ms * CLOCK_NS_PER_MS;
    cfg.kill_grace_ns = s->cfg.kill_grace_ns;
    cfg.output_cap = (size_t)s->cfg.output_cap;
    cfg.on_event = on_runner_event;
    cfg.on_done = on_runner_done;
    cfg.arg = j;
    if (runner_start(s->base, s->zygote, &cfg, &j->runner) != ST_OK) {
        j->runner = NULL;
        fail_job(j, "could not start a child runner");
        return;
    }
    s->jobs_started++;
    log_info("worker: running job %s (run %" PRId64 ", suite %s/%s, "
             "attempt %d)",
             j->job.job_id, j->job.run_id, j->job.ns, j->job.suite, j->attempt);
}

/* ---- Load jobs (docs/load.md) ------------------------------------------ */

static void on_load_snapshot(void *arg, int64_t second, int64_t t_ns,
                             const void *snap, size_t len)
{
    struct sjob *j = arg;
    struct pub_item *it = mem_zalloc(sizeof(*it));
    struct wire_load_snapshot ws = {.run_id = j->job.run_id,
                                    .job_id = j->job.job_id,
                                    .job_attempt = j->attempt,
                                    .shard = j->job.load->shard,
                                    .second = second,
                                    .t_ns = t_ns,
                                    .snap = (void *)snap,
                                    .snap_len = len};
    char kind[48];

    if (len > SERVE_LOAD_SNAPSHOT_MAX) {
        /* NATS would refuse it for good and the publisher would retry it
         * forever: the second is lost instead, loudly. */
        log_error("worker: job %s: second %" PRId64 "'s snapshot is %zu "
                  "bytes, over %d: not sent (use fewer request names)",
                  j->job.job_id, second, len, SERVE_LOAD_SNAPSHOT_MAX);
        free(it);
        return;
    }
    snprintf(kind, sizeof(kind), "load/%" PRId64, second);
    subjects_results(j->job.run_id, "load", it->subject, sizeof(it->subject));
    subjects_msg_id(j->job.job_id, j->job.created_unix_ms, j->attempt, kind,
                    it->msg_id, sizeof(it->msg_id));
    buf_init(&it->data, 0);
    wire_load_snapshot_encode(&ws, &it->data);
    /* Same publisher queue as the result: snapshots are confirmed before
     * the result that ends the shard is sent. */
    pub_push(j->s, it);
}

/* Publishes a load job's result with its load parts. */
static void load_result(struct sjob *j, enum result_kind kind,
                        const char *reason, const struct loadjob_result *r)
{
    struct result_suite res;
    struct wire_result_meta lm;
    struct wire_job spec;
    bool have_spec = false;

    memset(&lm, 0, sizeof(lm));
    result_suite_init(&res, j->job.suite, j->job.ns);
    res.result = kind;
    res.reason = reason && *reason ? mem_strdup(reason) : NULL;
    res.start_unix_ns =
        j->load_start_unix_ns ? j->load_start_unix_ns : clock_real_ns();
    if (r != NULL) {
        buf_adds(&res.log, r->output);
        lm.load_setup_data = (void *)r->setup_data;
        lm.load_setup_len = r->setup_len;
        lm.load_total = (void *)r->total;
        lm.load_total_len = r->total_len;
        lm.load_seconds = r->seconds;
        if (r->spec != NULL &&
            wire_job_decode(r->spec, r->spec_len, &spec) == ST_OK) {
            have_spec = true;
            lm.load_spec = spec.load;
        }
    }
    result_suite_finish(&res);
    res.result = kind; /* finish counts tests; a load job has none */
    j->load_meta = &lm;
    publish_result(j, &res);
    j->load_meta = NULL;
    if (have_spec) {
        wire_job_cleanup(&spec);
    }
    result_suite_cleanup(&res);
}

static void on_load_done(void *arg, const struct loadjob_result *r)
{
    struct sjob *j = arg;
    enum result_kind kind =
        r->outcome == LOADJOB_OK ? RESULT_PASSED : RESULT_ERROR;

    if (r->outcome == LOADJOB_ABORTED) {
        j->cancelled = true;
    }
    log_info("worker: load job %s ended: %s%s%s", j->job.job_id,
             r->outcome == LOADJOB_OK        ? "done"
             : r->outcome == LOADJOB_ABORTED ? "aborted"
                                             : "error",
             *r->reason ? ": " : "", r->reason);
    load_result(j, kind, r->reason, r);
}

static void start_load(struct serve *s, struct sjob *j)
{
    const struct wire_load *l = j->job.load;
    struct loadjob_ops ops = {
        .snapshot = on_load_snapshot, .done = on_load_done, .arg = j};
    int64_t now = clock_real_ns();
    int64_t run_ns = 10 * 60 * CLOCK_NS_PER_S;
    int64_t deadline;

    j->load_start_unix_ns = now;
    if (s->load_zygote == NULL) {
        fail_job(j, "this worker has no workflows");
        return;
    }
    if (l->phase != WIRE_LOAD_TEARDOWN && job_is_cancelled(s, &j->job)) {
        j->cancelled = true;
        load_result(j, RESULT_ERROR, "cancelled before it started", NULL);
        return;
    }
    if (l->phase == WIRE_LOAD_SHARD && j->attempt > 1) {
        /* Started again elsewhere, late, it would skew the load: the shard
         * is reported lost instead (docs/load.md). */
        char why[256];

        snprintf(why, sizeof(why),
                 "lost: shard %d's worker stopped answering (delivery %d); "
                 "a late restart would skew the load",
                 l->shard, j->attempt);
        load_result(j, RESULT_ERROR, why, NULL);
        return;
    }
    if (l->phase == WIRE_LOAD_SHARD) {
        int64_t stages = 0;

        for (size_t i = 0; i < l->n_stages; i++) {
            stages += l->stages[i].duration_ms * CLOCK_NS_PER_MS;
        }
        run_ns =
            l->duration_ms * CLOCK_NS_PER_MS + stages +
            (l->max_duration_ms > 0 ? l->max_duration_ms : 10 * 60 * 1000) *
                CLOCK_NS_PER_MS +
            l->graceful_stop_ms * CLOCK_NS_PER_MS;
        if (l->start_at_unix_ns > now) {
            run_ns += l->start_at_unix_ns - now;
        }
    }
    deadline = clock_mono_ns() + run_ns + 120 * CLOCK_NS_PER_S;
    if (loadjob_start(s->base, s->load_zygote, bus_msg_data(j->msg),
                      bus_msg_len(j->msg), deadline, &ops, &j->load) != ST_OK) {
        j->load = NULL;
        fail_job(j, "could not start a child process");
        return;
    }
    s->jobs_started++;
    log_info("worker: running load job %s (run %" PRId64 ", %s/%s, "
             "workflow %s, attempt %d)",
             j->job.job_id, j->job.run_id, j->job.ns, j->job.suite, l->workflow,
             j->attempt);
}

static void take_job(struct serve *s, struct bus_msg *msg)
{
    struct sjob *j = mem_zalloc(sizeof(*j));
    struct timeval tv;
    int64_t every = s->cfg.ack_wait_ns / 3;

    buf_init(&j->events, 0);
    j->s = s;
    j->msg = msg;
    j->attempt = (int)bus_msg_delivered(msg);
    if (j->attempt < 1) {
        j->attempt = 1;
    }
    s->running++;
    if (wire_job_decode(bus_msg_data(msg), bus_msg_len(msg), &j->job) !=
        ST_OK) {
        /* Redelivering a message we cannot read helps nobody. */
        log_error("worker: dropping an unreadable job on %s",
                  bus_msg_subject(msg));
        (void)bus_msg_term(msg);
        s->jobs_dropped++;
        if (s->metrics) {
            metrics_inc(s->m_dropped, 0, NULL, 1);
        }
        job_free(j);
        release_slot(s);
        return;
    }
    if (s->draining ||
        (j->job.not_after_unix_ms &&
         clock_real_ns() / CLOCK_NS_PER_MS > j->job.not_after_unix_ms) ||
        (job_is_cancelled(s, &j->job) && j->job.load == NULL)) {
        if (s->draining) {
            (void)bus_msg_nak(msg, 0); /* someone else runs it */
        } else {
            log_info("worker: dropping job %s: its run was cancelled or "
                     "timed out before it started",
                     j->job.job_id);
            (void)bus_msg_ack(msg);
            s->jobs_dropped++;
            if (s->metrics) {
                metrics_inc(s->m_dropped, 0, NULL, 1);
            }
        }
        job_free(j);
        release_slot(s);
        return;
    }
    subjects_events(j->job.run_id, j->events_subject,
                    sizeof(j->events_subject));
    j->next = s->jobs;
    s->jobs = j;
    j->progress = event_new(s->base, -1, EV_PERSIST, on_progress, j);
    tv.tv_sec = (time_t)(every / CLOCK_NS_PER_S);
    tv.tv_usec = (suseconds_t)((every % CLOCK_NS_PER_S) / 1000);
    event_add(j->progress, &tv);
    start_job(s, j);
}

static void job_published(struct serve *s, struct sjob *j, bool ok)
{
    if (!ok) {
        log_error("worker: gave up publishing the result of job %s; the "
                  "job will be redelivered",
                  j->job.job_id);
    }
    /* The publisher is done with the message (acked or abandoned). */
    job_unlink(s, j);
    job_free(j);
    release_slot(s);
}

/* A cancel: the jobs it names are dropped when they come, for as long as
 * the stream keeps it. Heard live (not replayed at start-up), it also
 * stops the run's running jobs and drops its jobs for the hour by run id;
 * a replayed one would do that to another database's run with the same
 * id. */
static void on_cancel(struct serve *s, const struct item *it)
{
    int64_t run_id = it->run_id;
    const char *reason = it->reason;

    for (size_t i = 0; i < it->n_job_keys; i++) {
        cancel_set_add(&s->cancelled_jobs, it->job_keys[i],
                       SERVE_CANCEL_KEY_MEMORY_NS);
    }
    if (it->flag) {
        return;
    }
    cancel_set_add(&s->cancelled_runs, run_id, SERVE_CANCEL_MEMORY_NS);
    for (struct sjob *j = s->jobs; j; j = j->next) {
        if (j->job.run_id == run_id && j->load && !j->publishing &&
            j->job.load->phase != WIRE_LOAD_TEARDOWN) {
            log_info("worker: cancelling load job %s: %s", j->job.job_id,
                     reason);
            j->cancelled = true;
            loadjob_cancel(j->load, reason && *reason ? reason : "cancelled",
                           s->cfg.kill_grace_ns + 10 * CLOCK_NS_PER_S);
        }
        if (j->job.run_id == run_id && j->runner && !j->publishing) {
            log_info("worker: cancelling run %" PRId64 ": %s", run_id, reason);
            j->cancelled = true;
            runner_cancel(j->runner, reason && *reason ? reason : "cancelled");
        }
    }
}

/* ---- The loop's inbox --------------------------------------------------- */

static void on_item(void *arg, void *p)
{
    struct serve *s = arg;
    struct item *it = p;

    switch (it->kind) {
    case ITEM_JOB:
        take_job(s, it->msg);
        break;
    case ITEM_CANCEL:
        on_cancel(s, it);
        break;
    case ITEM_PUBLISHED:
        job_published(s, it->job, it->flag);
        break;
    case ITEM_NATS:
        if (it->flag) {
            log_info("worker %s: connected to NATS", s->cfg.worker_id);
            publish_status(s, "hello");
        } else {
            log_warn("worker %s: NATS unreachable; jobs keep running, "
                     "results are published when it is back",
                     s->cfg.worker_id);
        }
        break;
    }
    free(it->reason);
    free(it->job_keys);
    free(it);
}

static void drop_item(void *arg, void *p)
{
    struct item *it = p;

    (void)arg;
    bus_msg_free(it->msg);
    free(it->reason);
    free(it->job_keys);
    free(it);
}

static void on_cancel_msg(void *arg, struct bus_msg *m)
{
    struct serve *s = arg;
    struct wire_cancel c;
    /* Stored before this worker subscribed: replayed (docs/nats.md). */
    uint64_t seq = bus_msg_stream_seq(m);
    bool replayed = seq > 0 && seq <= s->cancel_last_seq;

    if (replayed) {
        atomic_fetch_add(&s->cancels_replayed, 1);
    }
    if (seq > atomic_load(&s->cancel_seen_seq)) {
        atomic_store(&s->cancel_seen_seq, seq); /* one delivery thread */
    }
    if (wire_cancel_decode(bus_msg_data(m), bus_msg_len(m), &c) == ST_OK) {
        struct item *it = mem_zalloc(sizeof(*it));

        it->kind = ITEM_CANCEL;
        it->run_id = c.run_id;
        it->reason = c.reason; /* ownership moves to the item */
        c.reason = NULL;
        it->flag = replayed;
        it->n_job_keys = c.n_job_keys;
        it->job_keys = mem_calloc(c.n_job_keys + 1, sizeof(*it->job_keys));
        for (size_t i = 0; i < c.n_job_keys; i++) {
            it->job_keys[i] = job_key_hash(c.job_keys[i]);
        }
        wire_cancel_cleanup(&c);
        loopq_push(s->inbox, it);
    } else {
        log_warn("worker: ignoring an unreadable cancel message");
    }
    bus_msg_free(m);
}

static void on_nats_state(void *arg, bool connected)
{
    struct serve *s = arg;
    struct item *it = mem_zalloc(sizeof(*it));

    atomic_store(&s->nats_up, connected);
    it->kind = ITEM_NATS;
    it->flag = connected;
    loopq_push(s->inbox, it);
}

/* ---- Presence ----------------------------------------------------------- */

static void build_suites(struct serve *s)
{
    size_t n = registry_count();

    s->status.suites = mem_calloc(n + 1, sizeof(*s->status.suites));
    s->status.n_suites = n;
    for (size_t i = 0; i < n; i++) {
        const struct hf_suite *su = registry_at(i);
        struct wire_suite_info *si = &s->status.suites[i];
        size_t nt = registry_test_count(su);

        si->name = (char *)su->name;
        si->ns = (char *)registry_namespace(su);
        si->description = (char *)(su->description ? su->description : "");
        si->max_attempts = registry_max_attempts(su, NULL);
        si->test_timeout_ms = registry_test_timeout_ms(su, NULL);
        si->timeout_ms = registry_suite_timeout_ms(su);
        si->workflows =
            mem_calloc(registry_workflow_count(su) + 1, sizeof(*si->workflows));
        si->n_workflows = registry_workflow_count(su);
        for (size_t k = 0; k < si->n_workflows; k++) {
            si->workflows[k] = (char *)su->workflows[k].name;
        }
        si->tests = mem_calloc(nt + 1, sizeof(*si->tests));
        si->n_tests = nt;
        for (size_t k = 0; k < nt; k++) {
            si->tests[k].name = (char *)su->tests[k].name;
            si->tests[k].max_attempts =
                registry_max_attempts(su, &su->tests[k]);
            si->tests[k].timeout_ms =
                registry_test_timeout_ms(su, &su->tests[k]);
        }
    }
}

static void publish_status(struct serve *s, const char *kind)
{
    struct buf b;
    char subject[512];
    int64_t *runs = mem_calloc((size_t)s->running + 1, sizeof(*runs));
    size_t n_runs = 0;

    for (struct sjob *j = s->jobs; j; j = j->next) {
        runs[n_runs++] = j->job.run_id;
    }
    s->status.worker_id = s->cfg.worker_id;
    s->status.host = s->host;
    s->status.pool = s->cfg.pool;
    s->status.labels = s->cfg.labels.items;
    s->status.n_labels = s->cfg.labels.n;
    s->status.slots = (int32_t)s->cfg.concurrency;
    s->status.free_slots = (int32_t)(s->cfg.concurrency - s->running);
    s->status.version = (char *)SERVE_VERSION;
    s->status.started_unix_ms = s->started_unix_ms;
    s->status.sent_unix_ms = clock_real_ns() / CLOCK_NS_PER_MS;
    s->status.draining = s->draining;
    s->status.running_runs = runs;
    s->status.n_running_runs = n_runs;
    buf_init(&b, 0);
    wire_worker_encode(&s->status, &b);
    subjects_worker(s->cfg.worker_id, kind, subject, sizeof(subject));
    (void)bus_publish(s->bus, subject, b.data, b.len);
    buf_cleanup(&b);
    s->status.running_runs = NULL;
    s->status.n_running_runs = 0;
    free(runs);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    publish_status(arg, "heartbeat");
}

/* ---- Stopping ----------------------------------------------------------- */

static void on_final(evutil_socket_t fd, short what, void *arg)
{
    struct serve *s = arg;

    (void)fd;
    (void)what;
    log_warn("worker: %d result(s) still unpublished; stopping anyway (their "
             "jobs are redelivered)",
             s->running);
    event_base_loopbreak(s->base);
}

/* The drain ran out of time: the jobs still running go back to the queue
 * for another worker and their children are killed. Results already being
 * published get a last short while. */
static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct serve *s = arg;
    struct sjob *j = s->jobs;
    struct timeval tv = {10, 0};

    (void)fd;
    (void)what;
    while (j) {
        struct sjob *next = j->next;

        if (!j->publishing) {
            log_warn("worker: handing job %s back to the queue", j->job.job_id);
            (void)bus_msg_nak(j->msg, 0);
            job_unlink(s, j);
            job_free(j);
            release_slot(s);
        }
        j = next;
    }
    if (s->running > 0) {
        event_add(s->final_ev, &tv);
    }
}

static void start_drain(struct serve *s)
{
    struct timeval tv;

    if (s->draining) {
        return;
    }
    s->draining = true;
    atomic_store(&s->stopping, true);
    log_info("worker %s: draining: no new jobs; %d running, waiting up to "
             "%" PRId64 " s",
             s->cfg.worker_id, s->running, s->cfg.drain_ns / CLOCK_NS_PER_S);
    publish_status(s, "heartbeat");
    if (s->running == 0) {
        event_base_loopbreak(s->base);
        return;
    }
    tv.tv_sec = (time_t)(s->cfg.drain_ns / CLOCK_NS_PER_S);
    tv.tv_usec = (suseconds_t)((s->cfg.drain_ns % CLOCK_NS_PER_S) / 1000);
    event_add(s->drain_ev, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct serve *s = arg;

    (void)what;
    if (++s->signals > 1) {
        log_warn("worker: second signal: handing every job back now");
        on_drain_timeout(-1, 0, s);
        event_base_loopbreak(s->base);
        return;
    }
    log_info("worker: %s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    start_drain(s);
}

/* ---- Configuration ------------------------------------------------------ */

static struct opt *serve_opts(struct serve_cfg *c, size_t *n)
{
    static struct opt o[24];
    struct opt defs[] = {
        {"nats-url", "HANDOFF_NATS_URL", OPT_STRING, "nats://127.0.0.1:14222",
         "NATS server URL(s), comma-separated", &c->nats_url, 0, 0},
        {"nats-creds", "HANDOFF_NATS_CREDS", OPT_STRING, NULL,
         "NATS credentials file", &c->creds, 0, 0},
        {NULL, "HANDOFF_NATS_TOKEN", OPT_STRING, NULL,
         "NATS token (environment only)", &c->token, 0, 0},
        {NULL, "HANDOFF_NATS_USER", OPT_STRING, NULL,
         "NATS user (environment only)", &c->user, 0, 0},
        {NULL, "HANDOFF_NATS_PASSWORD", OPT_STRING, NULL,
         "NATS password (environment only)", &c->password, 0, 0},
        {"pool", "HANDOFF_WORKER_POOL", OPT_STRING, "default",
         "worker pool whose jobs to take", &c->pool, 0, 0},
        {"id", "HANDOFF_WORKER_ID", OPT_STRING, NULL,
         "worker id (default host-pid)", &c->worker_id, 0, 0},
        {"label", "HANDOFF_WORKER_LABELS", OPT_KV, NULL,
         "label KEY=VALUE (repeatable; variable: k=v,k2=v2)", &c->labels, 0, 0},
        {"concurrency", "HANDOFF_WORKER_CONCURRENCY", OPT_INT, "2",
         "suite runs at once", &c->concurrency, 1, 1024},
        {"heartbeat", "HANDOFF_WORKER_HEARTBEAT", OPT_DURATION, "2s",
         "presence heartbeat interval", &c->heartbeat_ns, 0, 0},
        {"drain-timeout", "HANDOFF_WORKER_DRAIN_TIMEOUT", OPT_DURATION, "30s",
         "on SIGTERM, time running jobs get before they are handed back",
         &c->drain_ns, 0, 0},
        {"ack-wait", "HANDOFF_JOB_ACK_WAIT", OPT_DURATION, "30s",
         "a job not acked or extended this long goes to another worker",
         &c->ack_wait_ns, 0, 0},
        {"max-deliver", "HANDOFF_JOB_MAX_DELIVER", OPT_INT, "5",
         "deliveries of one job at most", &c->max_deliver, 1, 100},
        {"kill-grace", "HANDOFF_KILL_GRACE", OPT_DURATION, "1s",
         "time a timed-out or cancelled test gets to return", &c->kill_grace_ns,
         0, 0},
        {"started-delay", "HANDOFF_WORKER_STARTED_DELAY", OPT_DURATION, "20ms",
         "a first attempt that ends sooner sends no JobStarted: its result "
         "carries the start",
         &c->started_delay_ns, 0, 0},
        {"output-cap", "HANDOFF_OUTPUT_CAP", OPT_INT, "1048576",
         "output bytes kept per test attempt", &c->output_cap, 1024,
         INT64_C(1) << 30},
        {"metrics-addr", "HANDOFF_WORKER_METRICS_ADDR", OPT_STRING, NULL,
         "address of the worker's /metrics and /healthz, e.g. "
         "127.0.0.1:9464 (off when empty)",
         &c->metrics_addr, 0, 0},
    };

    memcpy(o, defs, sizeof(defs));
    *n = sizeof(defs) / sizeof(defs[0]);
    return o;
}

static void serve_usage(FILE *f, const char *prog)
{
    struct serve_cfg c;
    size_t n;
    struct opt *o = serve_opts(&c, &n);

    fprintf(f, "usage: %s serve [flags]\n\nflags and environment:\n", prog);
    opts_usage(f, o, n);
}

/* ---- /metrics ------------------------------------------------------------ */

static double gauge_running(void *arg)
{
    return ((struct serve *)arg)->running;
}

static double gauge_free(void *arg)
{
    struct serve *s = arg;

    return (double)(s->cfg.concurrency - s->running);
}

static double gauge_nats(void *arg)
{
    return atomic_load(&((struct serve *)arg)->nats_up) ? 1 : 0;
}

static void on_metrics(struct httpd_req *req, void *arg)
{
    struct serve *s = arg;
    struct buf out;

    buf_init(&out, 0);
    metrics_render(s->metrics, &out);
    httpd_reply_text(req, 200, METRICS_CONTENT_TYPE, out.data, out.len);
    buf_cleanup(&out);
}

static void on_healthz(struct httpd_req *req, void *arg)
{
    struct serve *s = arg;
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"nats\":\"%s\"}",
                     s->draining ? "draining" : "ok",
                     atomic_load(&s->nats_up) ? "ok" : "unreachable");

    httpd_reply_json(req, 200, body, (size_t)n);
}

/* Starts the metrics endpoint when --metrics-addr is set. */
static int start_metrics(struct serve *s)
{
    static const char *const result[] = {"result"};
    static const char *const info[] = {"version", "pool"};
    struct metrics *m;
    int rc;

    if (!s->cfg.metrics_addr || !*s->cfg.metrics_addr) {
        return ST_OK;
    }
    m = s->metrics = metrics_new();
    rc = metrics_gauge_func(m, "handoff_worker_jobs_running",
                            "Jobs this worker holds (running or publishing).",
                            gauge_running, s);
    rc = rc ? rc
            : metrics_counter(m, "handoff_worker_jobs_finished_total",
                              "Jobs this worker finished, by result.", 1,
                              result, &s->m_finished);
    rc = rc ? rc
            : metrics_counter(m, "handoff_worker_jobs_dropped_total",
                              "Jobs dropped: unreadable, cancelled or "
                              "expired before they started.",
                              0, NULL, &s->m_dropped);
    rc = rc ? rc
            : metrics_gauge(m, "handoff_worker_slots",
                            "Suite runs this worker runs at once at most.", 0,
                            NULL, &s->m_slots);
    rc = rc ? rc
            : metrics_gauge_func(m, "handoff_worker_free_slots",
                                 "Slots free for new jobs.", gauge_free, s);
    rc = rc ? rc
            : metrics_gauge_func(m, "handoff_nats_connected",
                                 "1 while NATS is connected.", gauge_nats, s);
    rc = rc ? rc
            : metrics_counter(m, "handoff_worker_publish_retries_total",
                              "Publishes to JetStream retried (NATS away).", 0,
                              NULL, &s->m_retries);
    rc = rc ? rc
            : metrics_gauge(m, "handoff_worker_info",
                            "Always 1; version and pool in labels.", 2, info,
                            &s->m_info);
    if (rc != ST_OK) {
        return rc;
    }
    metrics_set(s->m_slots, 0, NULL, (double)s->cfg.concurrency);
    metrics_set(s->m_info, 2, (const char *[]){SERVE_VERSION, s->cfg.pool}, 1);
    rc = httpd_new(s->base, s->cfg.metrics_addr, 4096, &s->http);
    if (rc == ST_OK) {
        rc = httpd_route(s->http, "GET", "/metrics", on_metrics, s);
    }
    if (rc == ST_OK) {
        rc = httpd_route(s->http, "GET", "/healthz", on_healthz, s);
    }
    return rc;
}

/* ---- Main --------------------------------------------------------------- */

static int make_fetchers(struct serve *s)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wait_for_work */
    s->n_fetchers = registry_count();
    s->fetchers = mem_calloc(s->n_fetchers + 1, sizeof(*s->fetchers));
    for (size_t i = 0; i < s->n_fetchers; i++) {
        struct fetcher *f = &s->fetchers[i];
        const struct hf_suite *su = registry_at(i);

        f->s = s;
        f->suite = su;
        pthread_cond_init(&f->cond, &ca);
        subjects_job(s->cfg.pool, registry_namespace(su), su->name, f->subject,
                     sizeof(f->subject));
        subjects_job_consumer(s->cfg.pool, registry_namespace(su), su->name,
                              f->consumer, sizeof(f->consumer));
    }
    pthread_condattr_destroy(&ca);
    return ST_OK;
}

static void serve_cleanup(struct serve *s)
{
    atomic_store(&s->stopping, true);
    for (size_t i = 0; i < s->n_fetchers; i++) {
        sem_post(&s->tokens); /* wakes the fetchers waiting for a token */
    }
    pthread_mutex_lock(&s->fetch_lock);
    for (size_t i = 0; i < s->n_fetchers; i++) {
        /* and those waiting for work */
        pthread_cond_signal(&s->fetchers[i].cond);
    }
    pthread_mutex_unlock(&s->fetch_lock);
    if (s->setup_started) {
        pthread_join(s->setup_thread, NULL);
    }
    for (size_t i = 0; i < s->n_fetchers; i++) {
        bus_sub_free(s->fetchers[i].hint_sub);
        if (s->fetchers[i].started) {
            pthread_join(s->fetchers[i].thread, NULL);
        }
        bus_pull_free(s->fetchers[i].pull);
        pthread_cond_destroy(&s->fetchers[i].cond);
    }
    free(s->fetchers);
    if (s->pub_thread) {
        pthread_mutex_lock(&s->pub_lock);
        s->pub_stop = true;
        /* What is still queued gets a short chance, then is abandoned:
         * unacked jobs are redelivered, nothing is lost. */
        pthread_cond_signal(&s->pub_cond);
        pthread_mutex_unlock(&s->pub_lock);
    }
}

int serve_main(const char *prog, int argc, char **argv)
{
    static struct serve srv;
    struct serve *s = &srv;
    struct bus_config bc;
    size_t n_opts;
    struct opt *opts = serve_opts(&s->cfg, &n_opts);
    char err[2048];
    struct timeval hb;
    int rc = 1;

    mem_tune_for_service();
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            serve_usage(stdout, prog);
            return 0;
        }
    }
    if (opts_parse(opts, n_opts, argc, argv, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "%s serve: %s\n", prog, err);
        opts_free(opts, n_opts);
        return 2;
    }
    if (!registry_is_valid_name(s->cfg.pool)) {
        fprintf(stderr,
                "%s serve: --pool \"%s\": use 1-128 characters of "
                "[A-Za-z0-9_.-]\n",
                prog, s->cfg.pool);
        opts_free(opts, n_opts);
        return 2;
    }
    if (registry_count() == 0) {
        fprintf(stderr, "%s serve: no suites are linked into this worker\n",
                prog);
        opts_free(opts, n_opts);
        return 2;
    }
    s->prog = prog;
    gethostname(s->host, sizeof(s->host) - 1);
    if (!s->cfg.worker_id) {
        s->cfg.worker_id = mem_printf("%s-%ld", s->host, (long)getpid());
    }
    s->started_unix_ms = clock_real_ns() / CLOCK_NS_PER_MS;

    /* The zygote first: no thread may exist when it forks. */
    if (zygote_start(child_main, &s->zygote) != ST_OK) {
        goto out;
    }
    for (size_t i = 0; i < registry_count(); i++) {
        if (registry_workflow_count(registry_at(i)) > 0) {
            if (zygote_start(loadchild_main, &s->load_zygote) != ST_OK) {
                goto out;
            }
            break;
        }
    }
    evthread_use_pthreads();
    s->base = event_base_new();
    if (!s->base || zygote_attach(s->zygote, s->base) != ST_OK ||
        (s->load_zygote && zygote_attach(s->load_zygote, s->base) != ST_OK) ||
        loopq_new(s->base, on_item, s, &s->inbox) != ST_OK) {
        goto out;
    }
    sem_init(&s->tokens, 0, (unsigned)s->cfg.concurrency);
    pthread_mutex_init(&s->fetch_lock, NULL);
    pthread_mutex_init(&s->pub_lock, NULL);
    pthread_cond_init(&s->pub_cond, NULL);
    build_suites(s);
    make_fetchers(s);
    if (start_metrics(s) != ST_OK) {
        fprintf(stderr,
                "%s serve: --metrics-addr \"%s\": cannot serve "
                "metrics there (see the log)\n",
                prog, s->cfg.metrics_addr);
        rc = 2;
        goto out;
    }

    memset(&bc, 0, sizeof(bc));
    bc.url = s->cfg.nats_url;
    bc.name = s->cfg.worker_id;
    bc.creds_file = s->cfg.creds;
    bc.token = s->cfg.token;
    bc.user = s->cfg.user;
    bc.password = s->cfg.password;
    bc.on_state = on_nats_state;
    bc.arg = s;
    /* A job's few publishes (fetch, result, ack, events) go out from the
     * thread that makes them, not through nats.c's flusher thread. */
    bc.send_asap = true;
    if (bus_connect(&bc, &s->bus) != ST_OK) {
        fprintf(stderr, "%s serve: --nats-url \"%s\": cannot be used\n", prog,
                s->cfg.nats_url);
        rc = 2;
        goto out;
    }
    if (pthread_create(&s->pub_thread, NULL, pub_main, s) != 0 ||
        pthread_create(&s->setup_thread, NULL, setup_main, s) != 0) {
        goto out;
    }
    s->setup_started = true;

    s->heartbeat_ev = event_new(s->base, -1, EV_PERSIST, on_heartbeat, s);
    s->drain_ev = event_new(s->base, -1, 0, on_drain_timeout, s);
    s->final_ev = event_new(s->base, -1, 0, on_final, s);
    s->sigterm_ev = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sigint_ev = evsignal_new(s->base, SIGINT, on_signal, s);
    hb.tv_sec = (time_t)(s->cfg.heartbeat_ns / CLOCK_NS_PER_S);
    hb.tv_usec = (suseconds_t)((s->cfg.heartbeat_ns % CLOCK_NS_PER_S) / 1000);
    event_add(s->heartbeat_ev, &hb);
    event_add(s->sigterm_ev, NULL);
    event_add(s->sigint_ev, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_info("worker %s: started (pool %s, %zu suite(s), NATS %s)",
             s->cfg.worker_id, s->cfg.pool, s->n_fetchers, s->cfg.nats_url);
    publish_status(s, "hello");

    event_base_dispatch(s->base);

    log_info("worker %s: stopping", s->cfg.worker_id);
    publish_status(s, "bye");
    rc = 0;
out:
    serve_cleanup(s);
    if (s->pub_thread) {
        int64_t stop_at = clock_mono_ns() + 10 * CLOCK_NS_PER_S;

        /* The queue drains while NATS answers; after 10 s, abandon it. */
        while (clock_mono_ns() < stop_at) {
            bool empty;

            pthread_mutex_lock(&s->pub_lock);
            empty = s->pub_head == NULL;
            pthread_mutex_unlock(&s->pub_lock);
            if (empty) {
                break;
            }
            sleep_ns(50 * CLOCK_NS_PER_MS);
        }
        pthread_mutex_lock(&s->pub_lock);
        s->pub_abort = true;
        pthread_mutex_unlock(&s->pub_lock);
        pthread_join(s->pub_thread, NULL);
    }
    while (s->jobs) {
        struct sjob *j = s->jobs;

        s->jobs = j->next;
        /* The publisher thread has ended: the message is ours again. */
        if (!j->publishing) {
            (void)bus_msg_nak(j->msg, 0);
        }
        job_free(j);
    }
    bus_sub_free(s->cancel_sub);
    if (s->bus) {
        (void)bus_flush(s->bus, 2000);
    }
    loopq_free(s->inbox, drop_item);
    bus_free(s->bus);
    for (size_t i = 0; i < s->status.n_suites; i++) {
        free(s->status.suites[i].tests);
        free(s->status.suites[i].workflows);
    }
    free(s->status.suites);
    free(s->cancelled_runs.slots);
    free(s->cancelled_jobs.slots);
    if (s->heartbeat_ev) {
        event_free(s->heartbeat_ev);
        event_free(s->drain_ev);
        event_free(s->final_ev);
        event_free(s->sigterm_ev);
        event_free(s->sigint_ev);
    }
    httpd_free(s->http);
    metrics_free(s->metrics);
    zygote_free(s->zygote);
    zygote_free(s->load_zygote);
    if (s->base) {
        event_base_free(s->base);
    }
    opts_free(opts, n_opts);
    return rc;
}
