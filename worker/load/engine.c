/* engine: the constant-vus executor over T loop threads. A thread owns its
 * event_base (lock-free: nothing crosses threads during the run), its HTTP
 * client and metrics, and its VUs' coroutines; the caller's thread merges
 * the threads' metrics at the end. */
#include "engine.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "coro.h"
#include "log.h"
#include "mem.h"

struct eng_thread;

struct engine_vu {
    struct eng_thread *th;
    struct coro *co;
    struct httpc_conn *http;
    struct event sleep_ev;
    int64_t wake_at_ns;
    bool sleeping;
    bool done;
    int id;
    uint64_t iteration;
};

/* Threads set up their VUs, report ready, and start together when the
 * caller says go (or all leave when one failed). */
enum eng_gate { GATE_WAIT, GATE_GO, GATE_ABORT };

struct eng_run {
    const struct engine_config *cfg;
    struct hist_config hist;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;          /* threads set up, guarded by lock */
    bool failed;        /* one of them failed, guarded by lock */
    enum eng_gate gate; /* guarded by lock */
};

struct eng_thread {
    struct eng_run *run;
    pthread_t tid;
    int index;
    struct event_base *base;
    struct httpc_client *http;
    struct hist *iteration_ns;
    struct engine_vu **vus;
    int n_vus;
    int n_done;
    struct event stop_ev; /* end of duration, then of graceful stop */
    bool stop_ev_set;
    bool stopping; /* no new iterations */
    bool hard;     /* graceful stop over: blocking calls return at once */
    bool grace_on; /* the stop timer now marks the end of graceful stop */
    int64_t start_ns;
    int64_t stop_at_ns;  /* end of duration */
    int64_t timer_at_ns; /* when stop_ev is due */
    int64_t end_ns;
    uint64_t iterations;
    uint64_t interrupted;
    int status; /* set-up outcome */
};

static void record(struct hist *h, int64_t ns)
{
    /* Cannot fail: ns >= 0 and counts stay far below 2^64. */
    if (hist_record(h, ns < 0 ? 0 : ns) != 0) {
        abort();
    }
}

/* Adds the timer ev for the monotonic time at_ns. */
static void add_timer(struct event *ev, int64_t at_ns)
{
    int64_t d = at_ns - clock_mono_ns();
    struct timeval tv;

    d = d > 0 ? d : 0;
    tv.tv_sec = (time_t)(d / CLOCK_NS_PER_S);
    tv.tv_usec = (suseconds_t)((d % CLOCK_NS_PER_S + 999) / 1000);
    event_add(ev, &tv);
}

/* libevent keeps time with CLOCK_MONOTONIC_COARSE (a tick of 1-4 ms) unless
 * asked for timerfds, which cost a system call whenever the next timeout
 * changes: a timer may fire a little early, and is then re-added for the
 * rest. */
static bool is_early(struct event *ev, int64_t at_ns)
{
    if (clock_mono_ns() >= at_ns) {
        return false;
    }
    add_timer(ev, at_ns);
    return true;
}

static void vu_main(void *arg)
{
    struct engine_vu *vu = arg;
    struct eng_thread *th = vu->th;

    while (!th->stopping) {
        int64_t t0 = clock_mono_ns();
        int64_t t1;

        th->run->cfg->workflow(vu);
        t1 = clock_mono_ns();
        if (th->hard) {
            th->interrupted++;
            break;
        }
        record(th->iteration_ns, t1 - t0);
        th->iterations++;
        vu->iteration++;
        /* A workflow that never blocks never lets the stop timer run. */
        if (t1 >= th->stop_at_ns) {
            th->stopping = true;
        }
    }
    vu->done = true;
    if (++th->n_done == th->n_vus) {
        th->end_ns = clock_mono_ns();
        event_base_loopbreak(th->base);
    }
}

static void on_sleep_done(evutil_socket_t fd, short what, void *arg)
{
    struct engine_vu *vu = arg;

    (void)fd;
    (void)what;
    if (vu->sleeping && !is_early(&vu->sleep_ev, vu->wake_at_ns)) {
        coro_resume(vu->co);
    }
}

/* Graceful stop is over: wake every VU blocked in a request or a sleep; all
 * their blocking calls now return at once. */
static void hard_stop(struct eng_thread *th)
{
    th->stopping = true;
    th->hard = true;
    for (int i = 0; i < th->n_vus; i++) {
        struct engine_vu *vu = th->vus[i];

        if (vu->done) {
            continue;
        }
        if (vu->sleeping) {
            event_del(&vu->sleep_ev);
            coro_resume(vu->co);
        } else {
            httpc_conn_cancel(vu->http);
        }
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct eng_thread *th = arg;
    int64_t grace = th->run->cfg->graceful_stop_ns;

    (void)fd;
    (void)what;
    if (is_early(&th->stop_ev, th->timer_at_ns)) {
        return;
    }
    /* Not !stopping: a VU that ends an iteration after the duration sets
     * stopping itself, and the others still get their graceful stop. */
    if (!th->grace_on && grace > 0) {
        th->grace_on = true;
        th->stopping = true;
        th->timer_at_ns = th->stop_at_ns + grace;
        add_timer(&th->stop_ev, th->timer_at_ns);
        return;
    }
    hard_stop(th);
}

static void vu_free(struct engine_vu *vu)
{
    if (vu == NULL) {
        return;
    }
    event_del(&vu->sleep_ev);
    httpc_conn_free(vu->http);
    coro_free(vu->co);
    free(vu);
}

static int thread_setup(struct eng_thread *th)
{
    const struct engine_config *cfg = th->run->cfg;
    struct event_config *ecfg = event_config_new();
    int n = cfg->vus / cfg->threads + (th->index < cfg->vus % cfg->threads);
    int rc;

    if (ecfg == NULL) {
        return ST_INTERNAL;
    }
    /* One thread uses the base: no locks. */
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
    th->base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (th->base == NULL) {
        log_error("load: thread %d: cannot create an event loop", th->index);
        return ST_INTERNAL;
    }
    rc = httpc_client_new(th->base, &cfg->http, &th->http);
    if (rc != 0) {
        return rc;
    }
    if (hist_new(&th->run->hist, &th->iteration_ns) != 0) {
        return ST_INVALID;
    }
    evtimer_assign(&th->stop_ev, th->base, on_stop, th);
    th->stop_ev_set = true;
    th->vus = mem_calloc((size_t)(n > 0 ? n : 1), sizeof(*th->vus));
    for (int i = 0; i < n; i++) {
        struct engine_vu *vu = mem_zalloc(sizeof(*vu));

        vu->th = th;
        vu->id = 1 + th->index + i * cfg->threads;
        rc = coro_new(vu_main, vu, cfg->stack_bytes, &vu->co);
        if (rc != 0) {
            log_error("load: cannot create VU %d's stack (%s): the address "
                      "space or vm.max_map_count (two maps per VU) ran out",
                      vu->id, status_str(rc));
            free(vu);
            return rc;
        }
        vu->http = httpc_conn_new(th->http, vu->co);
        evtimer_assign(&vu->sleep_ev, th->base, on_sleep_done, vu);
        th->vus[th->n_vus++] = vu;
    }
    return 0;
}

static void thread_run(struct eng_thread *th)
{
    th->start_ns = clock_mono_ns();
    th->stop_at_ns = th->start_ns + th->run->cfg->duration_ns;
    th->timer_at_ns = th->stop_at_ns;
    th->end_ns = th->start_ns;
    if (th->n_vus == 0) {
        return;
    }
    add_timer(&th->stop_ev, th->timer_at_ns);
    for (int i = 0; i < th->n_vus; i++) {
        coro_resume(th->vus[i]->co);
    }
    if (th->n_done < th->n_vus) {
        event_base_dispatch(th->base);
    }
    event_del(&th->stop_ev);
}

static void *thread_main(void *arg)
{
    struct eng_thread *th = arg;

    struct eng_run *run = th->run;
    enum eng_gate gate;

    th->status = thread_setup(th);
    pthread_mutex_lock(&run->lock);
    run->ready++;
    run->failed |= th->status != 0;
    pthread_cond_broadcast(&run->cond);
    while (run->gate == GATE_WAIT) {
        pthread_cond_wait(&run->cond, &run->lock);
    }
    gate = run->gate;
    pthread_mutex_unlock(&run->lock);
    if (gate == GATE_GO) {
        thread_run(th);
    }
    /* The VUs go now, on their thread; the client stays for the merge. */
    for (int i = 0; i < th->n_vus; i++) {
        vu_free(th->vus[i]);
    }
    th->n_vus = 0;
    return NULL;
}

static void thread_cleanup(struct eng_thread *th)
{
    free(th->vus);
    httpc_client_free(th->http);
    hist_free(th->iteration_ns);
    if (th->base != NULL) {
        event_base_free(th->base);
    }
}

static int check_config(const struct engine_config *cfg,
                        struct hist_config *hist)
{
    struct hist *probe = NULL;
    struct httpc_metrics *metrics = NULL;
    int rc;

    if (cfg == NULL || cfg->workflow == NULL || cfg->vus < 1 ||
        cfg->vus > ENGINE_VUS_MAX || cfg->threads < 0 ||
        cfg->threads > ENGINE_THREADS_MAX || cfg->duration_ns < 0 ||
        cfg->graceful_stop_ns < 0 ||
        (cfg->stack_bytes != 0 && (cfg->stack_bytes < CORO_STACK_MIN ||
                                   cfg->stack_bytes > CORO_STACK_MAX))) {
        return ST_INVALID;
    }
    *hist = cfg->http.hist;
    if (hist->highest_value == 0 && hist->significant_digits == 0 &&
        hist->sub_bucket_bits == 0) {
        hist->highest_value = INT64_C(3600) * CLOCK_NS_PER_S;
        hist->significant_digits = HIST_DEFAULT_DIGITS;
    }
    if (hist_new(hist, &probe) != 0) {
        return ST_INVALID;
    }
    hist_free(probe);
    rc = httpc_metrics_new(&cfg->http, &metrics);
    httpc_metrics_free(metrics);
    return rc == 0 ? 0 : ST_INVALID;
}

int engine_run(const struct engine_config *cfg_in, struct engine_result *out)
{
    struct engine_config cfg;
    struct eng_run run;
    struct eng_thread *ths = NULL;
    int started = 0;
    int rc;
    int64_t first = INT64_MAX;
    int64_t last = INT64_MIN;

    if (out == NULL || cfg_in == NULL) {
        return ST_INVALID;
    }
    memset(out, 0, sizeof(*out));
    memset(&run, 0, sizeof(run));
    cfg = *cfg_in;
    if (cfg.threads == 0) {
        cfg.threads = 1;
    }
    rc = check_config(&cfg, &run.hist);
    if (rc != 0) {
        return rc;
    }
    if (cfg.threads > cfg.vus) {
        cfg.threads = cfg.vus;
    }
    run.cfg = &cfg;
    /* Both configurations were checked: these cannot fail. */
    if (httpc_metrics_new(&cfg.http, &out->http) != 0 ||
        hist_new(&run.hist, &out->iteration_ns) != 0) {
        rc = ST_INTERNAL;
        goto done;
    }
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.cond, NULL);
    ths = mem_calloc((size_t)cfg.threads, sizeof(*ths));
    for (started = 0; started < cfg.threads; started++) {
        ths[started].run = &run;
        ths[started].index = started;
        if (pthread_create(&ths[started].tid, NULL, thread_main,
                           &ths[started]) != 0) {
            log_error("load: cannot start %d threads", cfg.threads);
            rc = ST_UPSTREAM;
            break;
        }
    }
    pthread_mutex_lock(&run.lock);
    while (rc == 0 && run.ready < cfg.threads) {
        pthread_cond_wait(&run.cond, &run.lock);
    }
    run.gate = rc == 0 && !run.failed ? GATE_GO : GATE_ABORT;
    pthread_cond_broadcast(&run.cond);
    pthread_mutex_unlock(&run.lock);
    for (int i = 0; i < started; i++) {
        pthread_join(ths[i].tid, NULL);
        if (ths[i].status != 0 && rc == 0) {
            rc = ths[i].status;
        }
    }
    for (int i = 0; i < started && rc == 0; i++) {
        struct eng_thread *th = &ths[i];

        out->iterations += th->iterations;
        out->interrupted += th->interrupted;
        first = th->start_ns < first ? th->start_ns : first;
        last = th->end_ns > last ? th->end_ns : last;
        if (hist_merge(out->iteration_ns, th->iteration_ns) != 0 ||
            httpc_metrics_merge(out->http, httpc_client_metrics(th->http)) !=
                0) {
            rc = ST_INTERNAL;
        }
    }
    out->elapsed_ns = rc == 0 ? last - first : 0;
    for (int i = 0; i < started; i++) {
        thread_cleanup(&ths[i]);
    }
    free(ths);
    pthread_cond_destroy(&run.cond);
    pthread_mutex_destroy(&run.lock);
done:
    if (rc != 0) {
        engine_result_cleanup(out);
    }
    return rc;
}

void engine_result_cleanup(struct engine_result *r)
{
    if (r == NULL) {
        return;
    }
    hist_free(r->iteration_ns);
    httpc_metrics_free(r->http);
    memset(r, 0, sizeof(*r));
}

struct httpc_conn *engine_vu_http(struct engine_vu *vu)
{
    return vu->http;
}

int engine_vu_id(const struct engine_vu *vu)
{
    return vu->id;
}

uint64_t engine_vu_iteration(const struct engine_vu *vu)
{
    return vu->iteration;
}

void *engine_vu_data(const struct engine_vu *vu)
{
    return vu->th->run->cfg->data;
}

void engine_sleep(struct engine_vu *vu, int64_t ns)
{
    assert(coro_current() == vu->co);
    if (vu->th->hard || ns <= 0) {
        return;
    }
    vu->wake_at_ns = clock_mono_ns() + ns;
    add_timer(&vu->sleep_ev, vu->wake_at_ns);
    vu->sleeping = true;
    coro_yield(vu->co);
    vu->sleeping = false;
    event_del(&vu->sleep_ev);
}
