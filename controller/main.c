/* handoff-controller: HTTP API, result ingestion, outbox, sweeper and
 * worker catalog (docs/controller.md). Any number of replicas may run
 * against the same NATS, PostgreSQL and Redis.
 *
 * Threads: the main thread runs the libevent loop (HTTP, timers, live
 * streams); database work runs on the pool's threads; the ingest thread
 * stores results; a setup thread runs migrations and creates the streams,
 * retrying until the servers are there; a health thread pings Redis; the
 * scheduler thread fires schedule ticks (scheduler.h); the janitor thread
 * deletes runs the retention policies expire (janitor.h). */
#include <event2/event.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "bus.h"
#include "clock.h"
#include "cmetrics.h"
#include "db.h"
#include "dbpool.h"
#include "flaky.h"
#include "httpd.h"
#include "ingest.h"
#include "janitor.h"
#include "kv.h"
#include "live.h"
#include "log.h"
#include "loopq.h"
#include "mem.h"
#include "migrate.h"
#include "opts.h"
#include "scheduler.h"
#include "store.h"
#include "streams.h"
#include "subjects.h"
#include "wire.h"

#define CONTROLLER_VERSION "0.1.0"
#define CATALOG_QUEUE "handoff-catalog"
/* Suites of a worker are re-stored this often even if unchanged, so a
 * catalog row deleted by hand comes back. */
#define CATALOG_REFRESH_NS (60 * CLOCK_NS_PER_S)

struct cfg {
    char *http_addr;
    int64_t http_max_body;
    char *nats_url;
    char *nats_creds;
    char *nats_token;
    char *nats_user;
    char *nats_password;
    char *pg_dsn;
    char *redis_url;
    char *redis_password;
    int64_t db_threads;
    int64_t sweep_ns;
    int64_t outbox_ns;
    int64_t results_ack_wait_ns;
    int64_t ingest_batch;
    int64_t schedule_poll_ns;
    int64_t flaky_window;
    int64_t flaky_gauge_ns;
    int64_t retention_ns;
    int64_t retention_batch;
    int64_t retention_pause_ns;
    char *log_level;
};

struct seen_worker {
    char *id;
    uint64_t suites_hash;
    int64_t stored_mono_ns;
};

struct ctl {
    struct cfg cfg;
    struct event_base *base;
    struct bus *bus;
    struct dbpool *pool;
    struct cmetrics metrics;
    struct httpd *http;
    struct api *api;
    struct live *live;
    struct ingest *ingest;
    struct scheduler *sched;
    struct janitor *janitor;
    struct loopq *inbox; /* heartbeats from NATS */
    struct bus_sub *workers_sub;
    pthread_t setup_thread;
    pthread_t health_thread;
    bool threads_started;
    atomic_bool stop;
    atomic_bool schema_ready;
    atomic_bool streams_ready;
    atomic_bool nats_up;
    atomic_bool redis_up;
    struct event *outbox_ev;
    struct event *sweep_ev;
    struct event *gauges_ev;
    struct event *flaky_ev;
    struct event *sigterm_ev;
    struct event *sigint_ev;
    bool outbox_busy;
    bool sweep_busy;
    bool gauges_busy;
    bool flaky_busy;
    struct seen_worker *seen;
    size_t n_seen;
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- Readiness ---------------------------------------------------------- */

static bool ready_nats(void *arg)
{
    struct ctl *c = arg;

    return atomic_load(&c->nats_up) && atomic_load(&c->streams_ready);
}

static bool ready_pg(void *arg)
{
    return dbpool_is_up(((struct ctl *)arg)->pool);
}

static bool ready_redis(void *arg)
{
    return atomic_load(&((struct ctl *)arg)->redis_up);
}

static bool ready_schema(void *arg)
{
    return atomic_load(&((struct ctl *)arg)->schema_ready);
}

static void on_nats_state(void *arg, bool connected)
{
    struct ctl *c = arg;

    atomic_store(&c->nats_up, connected);
    metrics_set(c->metrics.nats_up, 0, NULL, connected ? 1 : 0);
    if (connected) {
        log_info("controller: connected to NATS");
    } else {
        log_warn("controller: NATS unreachable; runs are stored and "
                 "published when it is back");
    }
}

/* ---- Set-up and health threads ----------------------------------------- */

static void *setup_main(void *arg)
{
    struct ctl *c = arg;
    bool logged_db = false;
    bool logged_nats = false;

    while (!atomic_load(&c->stop) &&
           !(atomic_load(&c->schema_ready) && atomic_load(&c->streams_ready))) {
        if (!atomic_load(&c->schema_ready)) {
            struct db *d = NULL;
            int rc = db_connect(c->cfg.pg_dsn, &d);

            if (rc == ST_OK) {
                rc = migrate_run(d);
            }
            db_free(d);
            if (rc == ST_OK) {
                atomic_store(&c->schema_ready, true);
                log_info("controller: database schema is current");
            } else if (!logged_db) {
                log_warn("controller: database not ready (%s); retrying",
                         status_str(rc));
                logged_db = true;
            }
        }
        if (!atomic_load(&c->streams_ready)) {
            size_t n;
            const struct bus_stream_config *streams = streams_all(&n);
            int rc = ST_OK;

            for (size_t i = 0; i < n && rc == ST_OK; i++) {
                rc = bus_ensure_stream(c->bus, &streams[i]);
            }
            if (rc == ST_OK) {
                atomic_store(&c->streams_ready, true);
            } else if (!logged_nats) {
                log_warn("controller: cannot set up streams yet (%s); "
                         "retrying",
                         status_str(rc));
                logged_nats = true;
            }
        }
        if (!(atomic_load(&c->schema_ready) &&
              atomic_load(&c->streams_ready))) {
            sleep_ms(500);
        }
    }
    return NULL;
}

static void *health_main(void *arg)
{
    struct ctl *c = arg;
    struct kv *kv = NULL;

    if (kv_new(c->cfg.redis_url, c->cfg.redis_password, 1000, &kv) != ST_OK) {
        return NULL;
    }
    while (!atomic_load(&c->stop)) {
        bool up = kv_ping(kv) == ST_OK;

        atomic_store(&c->redis_up, up);
        metrics_set(c->metrics.redis_up, 0, NULL, up ? 1 : 0);
        metrics_set(c->metrics.postgres_up, 0, NULL,
                    dbpool_is_up(c->pool) ? 1 : 0);
        for (int i = 0; i < 20 && !atomic_load(&c->stop); i++) {
            sleep_ms(100);
        }
    }
    kv_free(kv);
    return NULL;
}

/* ---- Ends of runs (ingest and sweeper threads) -------------------------- */

static void run_ended(void *arg, int64_t run_id, const char *ns,
                      const char *suite, const char *state, const char *result)
{
    struct ctl *c = arg;

    live_publish_done(c->bus, run_id, state, result, NULL);
    cmetrics_run_ended(&c->metrics, ns, suite, state, result);
}

/* ---- Periodic database tasks -------------------------------------------- */

struct periodic {
    struct ctl *c;
    int rc;
    int published;
    char *running;
    char *pools;
    char *flaky;
    int64_t outbox;
};

static void outbox_work(struct db *d, void *arg)
{
    struct periodic *p = arg;

    p->rc = store_publish_outbox(d, p->c->bus, &p->published);
}

static void outbox_done(void *arg)
{
    struct periodic *p = arg;

    if (p->published > 0) {
        log_info("outbox: published %d job(s) stored while NATS was away",
                 p->published);
    }
    p->c->outbox_busy = false;
    free(p);
}

static void sweep_work(struct db *d, void *arg)
{
    struct periodic *p = arg;

    p->rc = store_sweep(d, p->c->bus, run_ended, p->c);
}

static void sweep_done(void *arg)
{
    struct periodic *p = arg;

    p->c->sweep_busy = false;
    free(p);
}

static void gauges_work(struct db *d, void *arg)
{
    struct periodic *p = arg;

    p->rc = store_gauges(d, &p->running, &p->pools, &p->outbox);
}

static void gauges_done(void *arg)
{
    struct periodic *p = arg;
    struct cmetrics *m = &p->c->metrics;

    if (p->rc == ST_OK) {
        cmetrics_set_running(m, p->running);
        cmetrics_set_pools(m, p->pools);
        metrics_set(m->jobs_outbox, 0, NULL, (double)p->outbox);
    }
    p->c->gauges_busy = false;
    free(p);
}

static void flaky_work(struct db *d, void *arg)
{
    struct periodic *p = arg;

    p->rc = flaky_counts(d, p->c->cfg.flaky_window, &p->flaky);
}

static void flaky_done(void *arg)
{
    struct periodic *p = arg;

    if (p->rc == ST_OK) {
        cmetrics_set_flaky(&p->c->metrics, p->flaky);
    }
    p->c->flaky_busy = false;
    free(p);
}

static void run_periodic(struct ctl *c, bool *busy,
                         void (*work)(struct db *, void *),
                         void (*done)(void *))
{
    struct periodic *p;

    if (*busy || !atomic_load(&c->schema_ready)) {
        return;
    }
    p = mem_zalloc(sizeof(*p));
    p->c = c;
    *busy = true;
    if (dbpool_submit(c->pool, work, done, p) != ST_OK) {
        *busy = false;
        free(p);
    }
}

static void on_outbox(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;

    (void)fd;
    (void)what;
    if (atomic_load(&c->nats_up) && atomic_load(&c->streams_ready)) {
        run_periodic(c, &c->outbox_busy, outbox_work, outbox_done);
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;

    (void)fd;
    (void)what;
    run_periodic(c, &c->sweep_busy, sweep_work, sweep_done);
}

static void on_gauges(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;

    (void)fd;
    (void)what;
    run_periodic(c, &c->gauges_busy, gauges_work, gauges_done);
}

static void on_flaky_gauge(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;

    (void)fd;
    (void)what;
    run_periodic(c, &c->flaky_busy, flaky_work, flaky_done);
}

/* ---- Worker catalog ----------------------------------------------------- */

struct heartbeat {
    struct ctl *c;
    struct wire_worker w;
    bool bye;
    bool changed;
};

static void heartbeat_work(struct db *d, void *arg)
{
    struct heartbeat *h = arg;

    if (store_worker_seen(d, &h->w, h->changed, h->bye) != ST_OK) {
        log_debug("catalog: worker %s not stored this time", h->w.worker_id);
    }
}

static void heartbeat_done(void *arg)
{
    struct heartbeat *h = arg;

    wire_worker_cleanup(&h->w);
    free(h);
}

static uint64_t suites_hash(const struct wire_worker *w)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < w->n_suites; i++) {
        const struct wire_suite_info *s = &w->suites[i];
        const char *parts[3] = {s->ns, s->name, s->description};

        for (int k = 0; k < 3; k++) {
            for (const char *p = parts[k]; *p; p++) {
                h = (h ^ (unsigned char)*p) * 1099511628211ULL;
            }
            h = (h ^ 0xff) * 1099511628211ULL;
        }
        for (size_t t = 0; t < s->n_tests; t++) {
            for (const char *p = s->tests[t].name; *p; p++) {
                h = (h ^ (unsigned char)*p) * 1099511628211ULL;
            }
            h = (h ^ (uint64_t)s->tests[t].timeout_ms) * 1099511628211ULL;
            h = (h ^ (uint64_t)s->tests[t].max_attempts) * 1099511628211ULL;
        }
    }
    return h;
}

/* Whether the worker's suites must be stored now; remembers it. */
static bool suites_changed(struct ctl *c, const struct wire_worker *w)
{
    uint64_t h = suites_hash(w);
    int64_t now = clock_mono_ns();

    for (size_t i = 0; i < c->n_seen; i++) {
        if (strcmp(c->seen[i].id, w->worker_id) == 0) {
            if (c->seen[i].suites_hash == h &&
                now - c->seen[i].stored_mono_ns < CATALOG_REFRESH_NS) {
                return false;
            }
            c->seen[i].suites_hash = h;
            c->seen[i].stored_mono_ns = now;
            return true;
        }
    }
    /* Bounded: forget the oldest when too many ids were seen. */
    if (c->n_seen >= 10000) {
        free(c->seen[0].id);
        c->seen[0] = c->seen[--c->n_seen];
    }
    c->seen = mem_reallocarray(c->seen, c->n_seen + 1, sizeof(*c->seen));
    c->seen[c->n_seen].id = mem_strdup(w->worker_id);
    c->seen[c->n_seen].suites_hash = h;
    c->seen[c->n_seen].stored_mono_ns = now;
    c->n_seen++;
    return true;
}

static void on_heartbeat_item(void *arg, void *item)
{
    struct ctl *c = arg;
    struct heartbeat *h = item;

    if (!atomic_load(&c->schema_ready)) {
        heartbeat_done(h);
        return;
    }
    h->changed = suites_changed(c, &h->w);
    if (dbpool_submit(c->pool, heartbeat_work, heartbeat_done, h) != ST_OK) {
        heartbeat_done(h);
    }
}

static void drop_heartbeat(void *arg, void *item)
{
    (void)arg;
    heartbeat_done(item);
}

static void on_worker_msg(void *arg, struct bus_msg *m)
{
    struct ctl *c = arg;
    struct heartbeat *h = mem_zalloc(sizeof(*h));
    const char *subj = bus_msg_subject(m);
    size_t n = strlen(subj);

    h->c = c;
    if (wire_worker_decode(bus_msg_data(m), bus_msg_len(m), &h->w) != ST_OK) {
        log_warn("catalog: ignoring an unreadable worker message on %s", subj);
        free(h);
    } else {
        h->bye = n > 4 && strcmp(subj + n - 4, ".bye") == 0;
        loopq_push(c->inbox, h);
    }
    bus_msg_free(m);
}

/* ---- Start and stop ----------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct ctl *c = arg;

    (void)what;
    log_info("controller: %s received, stopping",
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(c->base);
}

static struct opt *ctl_opts(struct cfg *g, size_t *n)
{
    static struct opt o[32];
    struct opt defs[] = {
        {"http-addr", "HANDOFF_HTTP_ADDR", OPT_STRING, "127.0.0.1:8080",
         "address of the HTTP API, web UI and /metrics", &g->http_addr, 0, 0},
        {"http-max-body", "HANDOFF_HTTP_MAX_BODY", OPT_INT, "1048576",
         "largest request body in bytes", &g->http_max_body, 1024,
         INT64_C(1) << 30},
        {"nats-url", "HANDOFF_NATS_URL", OPT_STRING, "nats://127.0.0.1:14222",
         "NATS server URL(s)", &g->nats_url, 0, 0},
        {"nats-creds", "HANDOFF_NATS_CREDS", OPT_STRING, NULL,
         "NATS credentials file", &g->nats_creds, 0, 0},
        {NULL, "HANDOFF_NATS_TOKEN", OPT_STRING, NULL,
         "NATS token (environment only)", &g->nats_token, 0, 0},
        {NULL, "HANDOFF_NATS_USER", OPT_STRING, NULL,
         "NATS user (environment only)", &g->nats_user, 0, 0},
        {NULL, "HANDOFF_NATS_PASSWORD", OPT_STRING, NULL,
         "NATS password (environment only)", &g->nats_password, 0, 0},
        {"pg-dsn", "HANDOFF_PG_DSN", OPT_STRING,
         "host=127.0.0.1 port=15432 dbname=handoff user=postgres",
         "PostgreSQL connection string (password: PGPASSWORD)", &g->pg_dsn, 0,
         0},
        {"redis-url", "HANDOFF_REDIS_URL", OPT_STRING,
         "redis://127.0.0.1:16379", "Redis URL", &g->redis_url, 0, 0},
        {NULL, "HANDOFF_REDIS_PASSWORD", OPT_STRING, NULL,
         "Redis password (environment only)", &g->redis_password, 0, 0},
        {"db-threads", "HANDOFF_DB_THREADS", OPT_INT, "4",
         "database connections for the API", &g->db_threads, 1, 64},
        {"sweep-interval", "HANDOFF_SWEEP_INTERVAL", OPT_DURATION, "5s",
         "how often timed-out runs are looked for", &g->sweep_ns, 0, 0},
        {"outbox-interval", "HANDOFF_OUTBOX_INTERVAL", OPT_DURATION, "1s",
         "how often unpublished jobs are retried", &g->outbox_ns, 0, 0},
        {"results-ack-wait", "HANDOFF_RESULTS_ACK_WAIT", OPT_DURATION, "60s",
         "redelivery time of an unstored result", &g->results_ack_wait_ns, 0,
         0},
        {"ingest-batch", "HANDOFF_INGEST_BATCH", OPT_INT, "256",
         "results stored per transaction", &g->ingest_batch, 1, 10000},
        {"schedule-poll", "HANDOFF_SCHEDULE_POLL", OPT_DURATION, "200ms",
         "how often due schedule ticks are looked for", &g->schedule_poll_ns, 0,
         0},
        {"flaky-window", "HANDOFF_FLAKY_WINDOW", OPT_INT, "20",
         "last runs of a suite in which flaky tests are looked for",
         &g->flaky_window, 1, FLAKY_MAX_WINDOW},
        {"flaky-gauge-interval", "HANDOFF_FLAKY_GAUGE_INTERVAL", OPT_DURATION,
         "30s", "how often handoff_tests_flaky is computed", &g->flaky_gauge_ns,
         0, 0},
        {"retention-interval", "HANDOFF_RETENTION_INTERVAL", OPT_DURATION, "1m",
         "how often the janitor deletes runs retention policies expire",
         &g->retention_ns, 0, 0},
        {"retention-batch", "HANDOFF_RETENTION_BATCH", OPT_INT, "500",
         "runs the janitor deletes per transaction", &g->retention_batch, 1,
         10000},
        {"retention-pause", "HANDOFF_RETENTION_PAUSE", OPT_DURATION, "100ms",
         "pause of the janitor between two batches", &g->retention_pause_ns, 0,
         0},
        {"log-level", "HANDOFF_LOG_LEVEL", OPT_STRING, "info",
         "debug, info, warn or error", &g->log_level, 0, 0},
    };

    _Static_assert(sizeof(defs) <= sizeof(o), "ctl_opts: o is too small");
    memcpy(o, defs, sizeof(defs));
    *n = sizeof(defs) / sizeof(defs[0]);
    return o;
}

static void add_timer(struct ctl *c, struct event **ev,
                      void (*fn)(evutil_socket_t, short, void *), int64_t ns)
{
    struct timeval tv = {(time_t)(ns / CLOCK_NS_PER_S),
                         (suseconds_t)((ns % CLOCK_NS_PER_S) / 1000)};

    *ev = event_new(c->base, -1, EV_PERSIST, fn, c);
    event_add(*ev, &tv);
}

static int start(struct ctl *c)
{
    struct bus_config bc = {0};
    struct api_deps deps = {0};
    struct ingest_config ic = {0};
    struct ingest_hooks hooks = {.run_ended = run_ended, .arg = c};
    struct scheduler_config sc = {0};
    struct janitor_config jc = {0};
    int rc;

    evthread_use_pthreads();
    c->base = event_base_new();
    if (!c->base || cmetrics_init(&c->metrics, CONTROLLER_VERSION) != ST_OK ||
        loopq_new(c->base, on_heartbeat_item, c, &c->inbox) != ST_OK) {
        return 1;
    }
    rc = httpd_new(c->base, c->cfg.http_addr, (size_t)c->cfg.http_max_body,
                   &c->http);
    if (rc != ST_OK) {
        fprintf(stderr,
                "handoff-controller: cannot serve HTTP on %s (see "
                "the log)\n",
                c->cfg.http_addr);
        return 2;
    }
    bc.url = c->cfg.nats_url;
    bc.name = "handoff-controller";
    bc.creds_file = c->cfg.nats_creds;
    bc.token = c->cfg.nats_token;
    bc.user = c->cfg.nats_user;
    bc.password = c->cfg.nats_password;
    bc.on_state = on_nats_state;
    bc.arg = c;
    if (bus_connect(&bc, &c->bus) != ST_OK) {
        fprintf(stderr,
                "handoff-controller: --nats-url \"%s\" cannot be "
                "used\n",
                c->cfg.nats_url);
        return 2;
    }
    if (dbpool_new(c->base, c->cfg.pg_dsn, (int)c->cfg.db_threads, &c->pool) !=
            ST_OK ||
        live_new(c->base, c->bus, c->pool, &c->live) != ST_OK) {
        return 1;
    }
    deps.bus = c->bus;
    deps.pool = c->pool;
    deps.live = c->live;
    deps.metrics = &c->metrics;
    deps.flaky_window = c->cfg.flaky_window;
    deps.nats_ready = ready_nats;
    deps.postgres_ready = ready_pg;
    deps.redis_ready = ready_redis;
    deps.schema_ready = ready_schema;
    deps.arg = c;
    if (api_new(c->http, &deps, &c->api) != ST_OK) {
        return 1;
    }
    if (bus_subscribe(c->bus, SUBJECTS_WORKERS_ALL, CATALOG_QUEUE,
                      on_worker_msg, c, &c->workers_sub) != ST_OK) {
        log_warn("controller: cannot subscribe to worker heartbeats yet");
    }
    ic.dsn = c->cfg.pg_dsn;
    ic.batch = (int)c->cfg.ingest_batch;
    ic.ack_wait_ns = c->cfg.results_ack_wait_ns;
    if (ingest_start(&ic, c->bus, &c->metrics, &hooks, &c->ingest) != ST_OK ||
        pthread_create(&c->setup_thread, NULL, setup_main, c) != 0 ||
        pthread_create(&c->health_thread, NULL, health_main, c) != 0) {
        return 1;
    }
    c->threads_started = true;
    sc.pg_dsn = c->cfg.pg_dsn;
    sc.redis_url = c->cfg.redis_url;
    sc.redis_password = c->cfg.redis_password;
    sc.poll_ms = c->cfg.schedule_poll_ns / CLOCK_NS_PER_MS;
    sc.bus = c->bus;
    sc.metrics = &c->metrics;
    sc.schema_ready = ready_schema;
    sc.arg = c;
    if (scheduler_start(&sc, &c->sched) != ST_OK) {
        fprintf(stderr,
                "handoff-controller: --redis-url \"%s\" cannot be "
                "used\n",
                c->cfg.redis_url);
        return 2;
    }
    jc.pg_dsn = c->cfg.pg_dsn;
    jc.redis_url = c->cfg.redis_url;
    jc.redis_password = c->cfg.redis_password;
    jc.interval_ms = c->cfg.retention_ns / CLOCK_NS_PER_MS;
    jc.batch = c->cfg.retention_batch;
    jc.pause_ms = c->cfg.retention_pause_ns / CLOCK_NS_PER_MS;
    jc.metrics = &c->metrics;
    jc.schema_ready = ready_schema;
    jc.arg = c;
    if (janitor_start(&jc, &c->janitor) != ST_OK) {
        fprintf(stderr, "handoff-controller: cannot start the retention "
                        "janitor\n");
        return 2;
    }
    add_timer(c, &c->outbox_ev, on_outbox, c->cfg.outbox_ns);
    add_timer(c, &c->sweep_ev, on_sweep, c->cfg.sweep_ns);
    add_timer(c, &c->gauges_ev, on_gauges, 5 * CLOCK_NS_PER_S);
    add_timer(c, &c->flaky_ev, on_flaky_gauge, c->cfg.flaky_gauge_ns);
    c->sigterm_ev = evsignal_new(c->base, SIGTERM, on_signal, c);
    c->sigint_ev = evsignal_new(c->base, SIGINT, on_signal, c);
    event_add(c->sigterm_ev, NULL);
    event_add(c->sigint_ev, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_info("controller: serving on http://%s (NATS %s)", c->cfg.http_addr,
             c->cfg.nats_url);
    return 0;
}

/* The last published marks (store_flush_published), before the pool
 * closes its connections. */
static void flush_published_work(struct db *d, void *arg)
{
    (void)arg;
    (void)store_flush_published(d);
}

static void stop(struct ctl *c)
{
    atomic_store(&c->stop, true);
    /* Connections first (streams close), then what feeds the loop. */
    httpd_free(c->http);
    bus_sub_free(c->workers_sub);
    if (c->threads_started) {
        pthread_join(c->setup_thread, NULL);
        pthread_join(c->health_thread, NULL);
    }
    scheduler_stop(c->sched);
    janitor_stop(c->janitor);
    ingest_stop(c->ingest);
    if (c->pool &&
        dbpool_submit(c->pool, flush_published_work, NULL, NULL) != ST_OK) {
        log_warn("controller: published marks not written (the outbox "
                 "publishes those jobs again; NATS drops the repeats)");
    }
    dbpool_free(c->pool);
    live_free(c->live);
    api_free(c->api);
    loopq_free(c->inbox, drop_heartbeat);
    if (c->bus) {
        (void)bus_flush(c->bus, 2000);
    }
    bus_free(c->bus);
    if (bus_shutdown(2000) != ST_OK) {
        log_warn("controller: NATS client threads did not stop in time");
    }
    for (struct event **ev = &c->outbox_ev; ev <= &c->sigint_ev; ev++) {
        if (*ev) {
            event_free(*ev);
        }
    }
    for (size_t i = 0; i < c->n_seen; i++) {
        free(c->seen[i].id);
    }
    free(c->seen);
    cmetrics_cleanup(&c->metrics);
    if (c->base) {
        event_base_free(c->base);
    }
}

int main(int argc, char **argv)
{
    static struct ctl c;
    size_t n;
    struct opt *opts = ctl_opts(&c.cfg, &n);
    char err[2048];
    enum log_level level;
    int rc;

    mem_tune_for_service();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: handoff-controller [flags]\n\nflags and "
                   "environment:\n");
            opts_usage(stdout, opts, n);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("handoff-controller %s\n", CONTROLLER_VERSION);
            return 0;
        }
    }
    if (opts_parse(opts, n, argc - 1, argv + 1, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "handoff-controller: %s\n", err);
        opts_free(opts, n);
        return 2;
    }
    if (!log_parse_level(c.cfg.log_level, &level)) {
        fprintf(stderr,
                "handoff-controller: --log-level \"%s\": want debug, "
                "info, warn, error or off\n",
                c.cfg.log_level);
        opts_free(opts, n);
        return 2;
    }
    log_setup("handoff-controller", level);
    rc = start(&c);
    if (rc == 0) {
        event_base_dispatch(c.base);
        log_info("controller: stopped");
    }
    stop(&c);
    opts_free(opts, n);
    return rc;
}
