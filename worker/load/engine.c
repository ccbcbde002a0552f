/* engine: k6's executors over T loop threads. A thread owns its event_base
 * (lock-free: nothing crosses threads during the run but the second's
 * hand-over), its HTTP client, its VUs' coroutines and the snapshot they
 * record into. Every second each thread swaps its snapshot for an empty
 * one and queues the full one; the caller's thread merges the queued
 * deltas of a second once every thread has delivered it, into the second's
 * point and into the run's total.
 *
 * VU executors (constant-vus, ramping-vus, per-vu-iterations,
 * shared-iterations) make every VU before the start; a VU loops over
 * iterations and parks, suspended, while the executor does not want it
 * (ramping-vus above its target: one caught mid-iteration gets the
 * graceful ramp-down, then its iteration is cut short). Arrival-rate
 * executors keep idle VUs on a stack and start iteration k at its
 * scheduled time on thread k mod T: each thread follows the global
 * schedule and takes every T-th start, so the total is exact whatever T
 * is.
 *
 * VU ids: thread i's VU in slot j is 1 + i + j*T, so the ids are 1..VUs
 * whatever T is; a slot let go (retire_idle) is used again.
 *
 * A start offset (a late shard) moves the start into the past: start_ns
 * is then before the real start, and everything timed from it keeps to
 * the common timeline. */
#include "engine.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "coro.h"
#include "httpc_int.h"
#include "log.h"
#include "mem.h"

#define RAMP_TICK_NS (50 * CLOCK_NS_PER_MS)
#define STOP_POLL_NS (100 * CLOCK_NS_PER_MS)
#define ENGINE_SPARE_PER_THREAD 3
/* Arrival-rate VUs beyond the pre-allocated ones that sat idle this long
 * are let go: memory follows the concurrency the run needs now, not the
 * peak a stall once caused. */
#define RETIRE_IDLE_NS (5 * CLOCK_NS_PER_S)
/* A VU's memory beside its stack (coro_new_with): the VU and its
 * connection slot share the page of the stack's top; the buffers its
 * requests grow come after. What does not fit goes to the heap. */
#define VU_NEAR_BYTES 2048
#define VU_MEM_BYTES (VU_NEAR_BYTES + 16 * 1024)
/* Seconds of the series made room for before the start (reserve_points). */
#define SERIES_PLAN_MAX_S (24 * 3600)

struct eng_thread;

struct engine_vu {
    struct eng_thread *th;
    struct coro *co;
    struct httpc_conn *http;
    struct event sleep_ev;
    int64_t wake_at_ns;
    bool sleeping;
    bool parked; /* suspended until the executor wants it (or stop) */
    bool busy;   /* in an iteration */
    bool done;
    bool inited;
    bool retire; /* leave the idle stack for good */
    bool cut;    /* ramping-vus: its iteration is cut short (ramp-down) */
    int id;      /* 1..VUs in this run, before vu_id_base */
    int slot;    /* its place on its thread: id = 1 + index + slot * T */
    /* ramping-vus: when its graceful ramp-down ends, INT64_MAX while the
     * target wants it. */
    int64_t ramp_down_end_ns;
    int64_t idle_since_ns;
    uint64_t iteration;
    int64_t intended_ns; /* arrival-rate: the iteration's scheduled start */
    int64_t lag_ns;
    char *step; /* "" for none */
    size_t step_cap;
    int64_t step_start_ns;
    void *state;
    void *api;
    struct engine_vu *next_idle;
};

/* Threads set up their VUs, report ready, and start together when the
 * caller says go (or all leave when one failed). */
enum eng_gate { GATE_WAIT, GATE_GO, GATE_ABORT };

/* A second's snapshot of one thread, queued for the caller. */
struct eng_delta {
    struct eng_delta *next;
    uint64_t sec;
    int vus;
    struct snap *snap;
};

struct eng_run {
    const struct engine_config *cfg;
    struct httpc_config http;
    int n_threads;
    int max_vus; /* VUs at most, over all threads */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;          /* threads set up, guarded by lock */
    bool failed;        /* one of them failed, guarded by lock */
    enum eng_gate gate; /* guarded by lock */
    int64_t start_ns;   /* set before GO: the real start - the offset */
    /* Start offset: the second the run joins in (those before are
     * emitted empty) and, arrival-rate, the schedule's first start after
     * the join (those before are dropped). */
    uint64_t first_sec;
    uint64_t first_k;
    atomic_bool abort;
    atomic_uint_fast64_t shared_claimed; /* shared-iterations */
    /* Guarded by lock: */
    struct eng_delta *queue;
    struct eng_delta **queue_tail;
    /* Emptied deltas for reuse, oldest first: every one of the pool goes
     * round, so all their pages are touched in the first seconds rather
     * than the first time the caller's thread falls behind. */
    struct eng_delta *spare;
    struct eng_delta **spare_tail;
    int64_t *delivered; /* per thread: last second queued, or -1 */
    bool *finished;     /* per thread: its last delta is queued */
};

struct eng_thread {
    struct eng_run *run;
    pthread_t tid;
    int index;
    struct event_base *base;
    struct httpc_client *http;
    struct snap *cur;
    struct engine_vu **vus;
    int n_vus;
    int max_vus;     /* this thread's share */
    int pre_vus;     /* arrival-rate: its share of the pre-allocated */
    int vu_seq;      /* slots used so far */
    int vus_at_end;  /* n_vus when the run ended, before they were freed */
    int *free_slots; /* arrival-rate: slots of VUs let go, for reuse */
    int n_free_slots;
    int n_done;
    int n_active; /* busy, or looping unparked */
    struct engine_vu *idle;
    struct event stop_ev; /* end of duration, then of graceful stop */
    struct event tick_ev; /* second hand-over, abort check */
    struct event ramp_ev; /* ramping-vus target, arrival-rate starts */
    bool events_set;
    bool stopping; /* no new iterations */
    bool hard;     /* graceful stop over: blocking calls return at once */
    bool grace_on; /* the stop timer now marks the end of graceful stop */
    bool ended;    /* the loop left */
    int64_t start_ns;
    int64_t stop_at_ns;  /* end of duration */
    int64_t timer_at_ns; /* when stop_ev is due */
    int64_t end_ns;
    uint64_t sec; /* next second to hand over */
    /* Arrival-rate schedule: the next global start k (k mod T == index)
     * and its offset from the start. */
    uint64_t next_k;
    int64_t next_at_ns;
    int status; /* set-up outcome */
};

const char *engine_executor_str(enum engine_executor e)
{
    static const char *const names[] = {
#define ENGINE_EXECUTOR_TEXT(name, text) text,
        ENGINE_EXECUTOR_MAP(ENGINE_EXECUTOR_TEXT)
#undef ENGINE_EXECUTOR_TEXT
    };

    return (unsigned)e < ENGINE_EXECUTOR_COUNT ? names[e] : "unknown";
}

int engine_executor_parse(const char *s, enum engine_executor *out)
{
    for (int e = 0; e < ENGINE_EXECUTOR_COUNT; e++) {
        if (s != NULL && strcmp(s, engine_executor_str(e)) == 0) {
            *out = (enum engine_executor)e;
            return 0;
        }
    }
    return ST_INVALID;
}

int engine_stages_parse(const char *s, struct engine_stage *out, size_t max,
                        char *err, size_t errlen)
{
    size_t n = 0;
    const char *p = s;

    if (s == NULL || *s == '\0') {
        snprintf(err, errlen, "no stages: expected DURATION:TARGET[,...]");
        return -1;
    }
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char part[64];
        char *colon;
        char *num_end;
        double target;
        int64_t d;

        if (len == 0 || len >= sizeof(part)) {
            snprintf(err, errlen, "stage %zu: empty or too long", n + 1);
            return -1;
        }
        memcpy(part, p, len);
        part[len] = '\0';
        colon = strchr(part, ':');
        if (colon == NULL) {
            snprintf(err, errlen,
                     "stage %zu \"%s\": expected DURATION:TARGET, e.g. 30s:10",
                     n + 1, part);
            return -1;
        }
        *colon = '\0';
        if (clock_parse_duration(part, &d) != 0 || d < 0) {
            snprintf(err, errlen,
                     "stage %zu: bad duration \"%s\" (e.g. 30s, 1m30s)", n + 1,
                     part);
            return -1;
        }
        target = strtod(colon + 1, &num_end);
        if (colon[1] == '\0' || *num_end != '\0' || !isfinite(target) ||
            target < 0 || target > 1e9) {
            snprintf(err, errlen,
                     "stage %zu: bad target \"%s\" (a number >= 0)", n + 1,
                     colon + 1);
            return -1;
        }
        if (n == max) {
            snprintf(err, errlen, "more than %zu stages", max);
            return -1;
        }
        out[n].duration_ns = d;
        out[n].target = target;
        n++;
        p += len;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                snprintf(err, errlen, "a trailing comma after stage %zu", n);
                return -1;
            }
        }
    }
    return (int)n;
}

static bool is_arrival(enum engine_executor e)
{
    return e == ENGINE_CONSTANT_ARRIVAL_RATE ||
           e == ENGINE_RAMPING_ARRIVAL_RATE;
}

static bool is_ramping(enum engine_executor e)
{
    return e == ENGINE_RAMPING_VUS || e == ENGINE_RAMPING_ARRIVAL_RATE;
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

/* ---- Stages ----------------------------------------------------------- */

/* The ramping target at t_ns after the start, from start (the config's vus
 * or rate) through the stages; the last target holds after them. */
static double stage_target(const struct engine_config *cfg, double start,
                           int64_t t_ns)
{
    double from = start;

    for (size_t i = 0; i < cfg->n_stages; i++) {
        const struct engine_stage *st = &cfg->stages[i];

        if (t_ns < st->duration_ns) {
            return from +
                   (st->target - from) * (double)t_ns / (double)st->duration_ns;
        }
        t_ns -= st->duration_ns;
        from = st->target;
    }
    return from;
}

static int64_t stages_total_ns(const struct engine_config *cfg)
{
    int64_t sum = 0;

    for (size_t i = 0; i < cfg->n_stages; i++) {
        sum += cfg->stages[i].duration_ns;
    }
    return sum;
}

/* Arrival-rate: the offset from the start at which iteration k (from 0)
 * is due: the time the cumulative count of starts reaches k. Rates are
 * per ns; within a stage the rate is linear, so the count is quadratic in
 * time and each start has a closed form. Returns INT64_MAX when the
 * schedule never reaches k. */
static int64_t arrival_at(const struct engine_config *cfg, uint64_t k)
{
    double unit = (double)cfg->time_unit_ns;
    double r0 = cfg->rate / unit;
    double n0 = 0;
    int64_t t0 = 0;
    double want = (double)k;

    if (cfg->executor == ENGINE_CONSTANT_ARRIVAL_RATE) {
        return r0 > 0 ? (int64_t)(want / r0) : INT64_MAX;
    }
    for (size_t i = 0; i < cfg->n_stages; i++) {
        double d = (double)cfg->stages[i].duration_ns;
        double r1 = cfg->stages[i].target / unit;
        double n_stage = (r0 + r1) / 2 * d;

        if (want < n0 + n_stage || (i + 1 == cfg->n_stages && want == 0)) {
            double a = (r1 - r0) / (2 * d);
            double c = n0 - want;
            double t;

            if (c >= 0) {
                t = 0; /* due at the stage's start */
            } else if (fabs(a) < 1e-30) {
                t = r0 > 0 ? -c / r0 : 0;
            } else {
                /* a t^2 + r0 t + c = 0: the root where the count rises
                 * through want, in the numerically stable form. */
                double disc = r0 * r0 - 4 * a * c;

                disc = disc > 0 ? disc : 0;
                t = (2 * -c) / (r0 + sqrt(disc));
            }
            t = !(t > 0) ? 0 : (t > d ? d : t); /* NaN: 0 */
            return t0 + (int64_t)t;
        }
        n0 += n_stage;
        t0 += cfg->stages[i].duration_ns;
        r0 = r1;
    }
    return INT64_MAX;
}

/* Arrival-rate: how many starts the schedule has before t_ns (and before
 * the end of the duration): the first k due at t_ns or later, by binary
 * search, arrival_at being non-decreasing in k. */
static uint64_t starts_before(const struct engine_config *cfg, int64_t t_ns)
{
    uint64_t lo = 0;
    uint64_t hi = 1;

    if (t_ns > cfg->duration_ns) {
        t_ns = cfg->duration_ns;
    }
    if (t_ns <= 0) {
        return 0;
    }
    while (arrival_at(cfg, hi) < t_ns) {
        if (hi >= UINT64_C(1) << 62) {
            return hi; /* not a schedule anyone runs */
        }
        hi *= 2;
    }
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;

        if (arrival_at(cfg, mid) < t_ns) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* ---- VUs -------------------------------------------------------------- */

static void end_step(struct engine_vu *vu, int64_t now)
{
    if (vu->step[0] != '\0') {
        snap_step(vu->th->cur, vu->step, now - vu->step_start_ns);
        vu->step[0] = '\0';
    }
}

static void set_step(struct engine_vu *vu, const char *name, int64_t now)
{
    size_t len = name ? strlen(name) : 0;

    end_step(vu, now);
    if (len + 1 > vu->step_cap) {
        size_t cap = len + 1 > 32 ? len + 1 : 32;

        vu->step = coro_realloc(vu->co, vu->step, vu->step_cap, cap);
        vu->step_cap = cap;
    }
    memcpy(vu->step, name ? name : "", len + 1);
    vu->step_start_ns = now;
    httpc_conn_set_context(vu->http, vu->step, vu->lag_ns);
}

/* Runs one iteration. Returns false when the graceful stop ended it. An
 * iteration the graceful ramp-down cut short is counted as interrupted
 * and the VU goes on (it parks, the target being below it). */
static bool run_iteration(struct engine_vu *vu)
{
    struct eng_thread *th = vu->th;
    const struct engine_config *cfg = th->run->cfg;
    int64_t t0;
    int64_t t1;

    if (!vu->inited) {
        vu->inited = true;
        if (cfg->init != NULL) {
            set_step(vu, "", clock_mono_ns());
            cfg->init(vu);
            if (th->hard) {
                return false;
            }
        }
    }
    t0 = clock_mono_ns();
    vu->lag_ns = is_arrival(cfg->executor) && t0 > vu->intended_ns
                     ? t0 - vu->intended_ns
                     : 0;
    set_step(vu, "", t0);
    vu->ramp_down_end_ns = INT64_MAX;
    vu->busy = true;
    cfg->workflow(vu);
    vu->busy = false;
    t1 = clock_mono_ns();
    end_step(vu, t1);
    if (th->hard) {
        th->cur->interrupted++;
        return false;
    }
    if (vu->cut) {
        vu->cut = false;
        httpc_conn_reset_cancel(vu->http);
        th->cur->interrupted++;
        return true;
    }
    snap_iteration(th->cur, t1 - t0);
    vu->iteration++;
    /* A workflow that never blocks never lets the stop timer run. */
    if (t1 >= th->stop_at_ns) {
        th->stopping = true;
    }
    return true;
}

static void thread_finish(struct eng_thread *th);

static void vu_exit(struct engine_vu *vu)
{
    struct eng_thread *th = vu->th;

    vu->done = true;
    if (vu->retire) {
        return; /* its thread frees it; the run goes on */
    }
    if (++th->n_done == th->n_vus) {
        thread_finish(th);
    }
}

/* Suspends vu until the executor resumes it. */
static void park(struct engine_vu *vu)
{
    vu->parked = true;
    vu->th->n_active--;
    coro_yield(vu->co);
    vu->parked = false;
    vu->th->n_active++;
}

/* Whether a VU executor wants vu to start another iteration. */
static bool wants(struct engine_vu *vu)
{
    struct eng_thread *th = vu->th;
    struct eng_run *run = th->run;
    const struct engine_config *cfg = run->cfg;

    switch (cfg->executor) {
    case ENGINE_PER_VU_ITERATIONS:
        return vu->iteration < cfg->iterations;
    case ENGINE_SHARED_ITERATIONS:
        return atomic_fetch_add(&run->shared_claimed, 1) < cfg->iterations;
    default:
        return true;
    }
}

static bool above_target(struct engine_vu *vu, int64_t now)
{
    const struct engine_config *cfg = vu->th->run->cfg;

    return cfg->executor == ENGINE_RAMPING_VUS &&
           vu->id >
               (int)floor(stage_target(cfg, cfg->vus, now - vu->th->start_ns) +
                          1e-9);
}

static void vu_main(void *arg)
{
    struct engine_vu *vu = arg;
    struct eng_thread *th = vu->th;
    bool arrival = is_arrival(th->run->cfg->executor);

    th->n_active++;
    while (!th->stopping) {
        if (arrival) {
            /* Wait on the idle stack for a start. */
            vu->next_idle = th->idle;
            th->idle = vu;
            vu->idle_since_ns = clock_mono_ns();
            park(vu);
            if (th->stopping || vu->retire) {
                break;
            }
        } else if (above_target(vu, clock_mono_ns())) {
            park(vu);
            continue;
        } else if (!wants(vu)) {
            break;
        }
        if (!run_iteration(vu)) {
            break;
        }
    }
    th->n_active--;
    vu_exit(vu);
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

/* Makes a VU in a free slot of th (there is one: callers check n_vus
 * against max_vus). */
static int new_vu(struct eng_thread *th, struct engine_vu **out)
{
    const struct engine_config *cfg = th->run->cfg;
    struct engine_vu *vu;
    struct coro *co;
    int slot =
        th->n_free_slots > 0 ? th->free_slots[--th->n_free_slots] : th->vu_seq;
    int id = 1 + th->index + slot * th->run->n_threads;
    int rc;

    /* Everything a VU allocates lives in its stack's mapping, so that
     * letting it go (retire_idle) gives all of it back to the kernel: freed
     * to the heap, its small blocks would stay in pages shared with
     * longer-lived ones. */
    rc = coro_new_with(vu_main, NULL, cfg->stack_bytes, VU_NEAR_BYTES,
                       VU_MEM_BYTES, &co);
    if (rc != 0) {
        log_error("load: cannot create VU %d's stack (%s): the address "
                  "space or vm.max_map_count (two maps per VU) ran out",
                  cfg->vu_id_base + id, status_str(rc));
        if (slot != th->vu_seq) {
            th->free_slots[th->n_free_slots++] = slot;
        }
        return rc;
    }
    vu = coro_alloc(co, sizeof(*vu));
    memset(vu, 0, sizeof(*vu));
    coro_set_arg(co, vu);
    vu->co = co;
    vu->th = th;
    vu->id = id;
    vu->slot = slot;
    vu->ramp_down_end_ns = INT64_MAX;
    vu->step_cap = 32;
    vu->step = coro_alloc(co, vu->step_cap);
    vu->step[0] = '\0';
    vu->http = httpc_conn_new(th->http, vu->co);
    evtimer_assign(&vu->sleep_ev, th->base, on_sleep_done, vu);
    th->vus[th->n_vus++] = vu;
    if (slot == th->vu_seq) {
        th->vu_seq++;
    }
    *out = vu;
    return 0;
}

static void vu_free(struct engine_vu *vu, const struct engine_config *cfg)
{
    struct coro *co;

    if (vu == NULL) {
        return;
    }
    if (cfg->fini != NULL && vu->inited) {
        cfg->fini(vu);
    }
    co = vu->co;
    event_del(&vu->sleep_ev);
    httpc_conn_free(vu->http);
    coro_release(co, vu->step, vu->step_cap);
    coro_release(co, vu, sizeof(*vu));
    coro_free(co);
}

/* ---- Stopping --------------------------------------------------------- */

/* Resumes every parked VU: once stopping, they leave. */
static void wake_parked(struct eng_thread *th)
{
    th->idle = NULL;
    for (int i = 0; i < th->n_vus; i++) {
        struct engine_vu *vu = th->vus[i];

        if (!vu->done && vu->parked) {
            coro_resume(vu->co);
        }
    }
}

static void begin_stop(struct eng_thread *th)
{
    th->stopping = true;
    /* ramping-vus' ticks go on: a VU being ramped down still gets no more
     * than its graceful ramp-down (k6 caps that with the graceful stop,
     * and so does hard_stop). */
    if (th->run->cfg->executor != ENGINE_RAMPING_VUS) {
        event_del(&th->ramp_ev);
    }
    wake_parked(th);
    if (th->n_done == th->n_vus) {
        thread_finish(th); /* an arrival-rate thread that had no VU */
    }
}

/* Graceful stop is over: wake every VU blocked in a request or a sleep; all
 * their blocking calls now return at once. */
static void hard_stop(struct eng_thread *th)
{
    begin_stop(th);
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
        begin_stop(th);
        th->timer_at_ns = th->stop_at_ns + grace;
        add_timer(&th->stop_ev, th->timer_at_ns);
        return;
    }
    hard_stop(th);
}

/* ---- Seconds ---------------------------------------------------------- */

static struct eng_delta *new_delta(struct eng_run *run)
{
    struct eng_delta *d = mem_zalloc(sizeof(*d));

    /* The configuration was checked by engine_run. */
    if (snap_new(&run->http, &d->snap) != 0) {
        abort();
    }
    return d;
}

static struct eng_delta *take_spare(struct eng_run *run)
{
    struct eng_delta *d;

    pthread_mutex_lock(&run->lock);
    d = run->spare;
    if (d != NULL) {
        run->spare = d->next;
        if (run->spare == NULL) {
            run->spare_tail = &run->spare;
        }
        d->next = NULL;
    }
    pthread_mutex_unlock(&run->lock);
    return d;
}

/* Queues the thread's snapshot for the second th->sec and starts an empty
 * one. The deltas come from a fixed pool (ENGINE_SPARE_PER_THREAD per
 * thread): when the caller's thread falls behind and none is free, the
 * thread records on into the snapshot it has and hands it over at a later
 * tick, so that second's point holds a little more than a second, the
 * totals stay exact, and memory stays what it was at the start whatever
 * the run's length. Returns false when it had to wait (never when
 * final). */
static bool hand_over(struct eng_thread *th, bool final)
{
    struct eng_run *run = th->run;
    struct eng_delta *d = take_spare(run);
    struct snap *full = th->cur;

    if (d == NULL && !final) {
        return false;
    }
    if (d == NULL) {
        d = new_delta(run);
    }

    /* The delta takes the full snapshot; its empty one goes on. */
    th->cur = d->snap;
    d->snap = full;
    httpc_client_swap_metrics(th->http, th->cur->http);
    d->sec = th->sec;
    d->vus = th->n_active;
    full->vus = th->n_active;
    /* The last second's VUs are freed before it is handed over (their
     * fini may still record): it counts those that ended in it. */
    full->vus_max = final ? th->vus_at_end : th->n_vus;
    pthread_mutex_lock(&run->lock);
    *run->queue_tail = d;
    run->queue_tail = &d->next;
    run->delivered[th->index] = (int64_t)th->sec;
    run->finished[th->index] |= final;
    pthread_cond_broadcast(&run->cond);
    pthread_mutex_unlock(&run->lock);
    th->sec++;
    return true;
}

/* Lets go of arrival-rate VUs above the pre-allocated ones that have been
 * idle for RETIRE_IDLE_NS: each leaves its loop, and its stack and
 * connection are freed. */
static void retire_idle(struct eng_thread *th)
{
    const struct engine_config *cfg = th->run->cfg;
    int64_t now = clock_mono_ns();
    struct engine_vu **pp = &th->idle;
    bool any = false;

    while (*pp != NULL && th->n_vus > th->pre_vus) {
        struct engine_vu *vu = *pp;

        if (now - vu->idle_since_ns < RETIRE_IDLE_NS) {
            pp = &vu->next_idle;
            continue;
        }
        *pp = vu->next_idle;
        vu->retire = true;
        coro_resume(vu->co); /* it leaves its loop and finishes */
        for (int i = 0; i < th->n_vus; i++) {
            if (th->vus[i] == vu) {
                th->vus[i] = th->vus[--th->n_vus];
                break;
            }
        }
        th->free_slots[th->n_free_slots++] = vu->slot;
        vu_free(vu, cfg);
        any = true;
    }
#if defined(__GLIBC__)
    /* What did not fit in the VUs' own memory (a large body, TLS state)
     * came from this thread's heap arena: hand its free pages back. */
    if (any) {
        malloc_trim(0);
    }
#else
    (void)any;
#endif
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct eng_thread *th = arg;
    int64_t due = th->start_ns + (int64_t)(th->sec + 1) * CLOCK_NS_PER_S;

    (void)fd;
    (void)what;
    if (atomic_load(&th->run->abort) && !th->hard) {
        hard_stop(th);
        if (th->ended) {
            return;
        }
    }
    if (is_arrival(th->run->cfg->executor) && !th->stopping) {
        retire_idle(th);
    }
    if (clock_mono_ns() >= due && hand_over(th, false)) {
        due += CLOCK_NS_PER_S;
    }
    /* Every 100 ms for the abort flag; the hand-over on the second, or
     * 10 ms from now when it had to wait for a free delta. */
    {
        int64_t now = clock_mono_ns();
        int64_t next = now + STOP_POLL_NS;

        if (due <= now) {
            next = now + 10 * CLOCK_NS_PER_MS;
        } else if (due < next) {
            next = due;
        }
        add_timer(&th->tick_ev, next);
    }
}

/* ---- Executors' timers ------------------------------------------------ */

/* ramping-vus: vu's graceful ramp-down is over: its blocking calls return
 * at once until its iteration ends. */
static void cut_iteration(struct engine_vu *vu)
{
    vu->cut = true;
    if (vu->sleeping) {
        event_del(&vu->sleep_ev);
        coro_resume(vu->co);
    } else {
        httpc_conn_cancel(vu->http);
    }
}

/* ramping-vus, every RAMP_TICK_NS: resumes the parked VUs the target
 * wants again; starts the graceful ramp-down of each VU in an iteration
 * the target no longer wants, and cuts the iteration short when that is
 * over. The target can rise again meanwhile: the VU then goes on. */
static void on_ramp(evutil_socket_t fd, short what, void *arg)
{
    struct eng_thread *th = arg;
    int64_t grace = th->run->cfg->graceful_ramp_down_ns;
    int64_t now = clock_mono_ns();

    (void)fd;
    (void)what;
    for (int i = 0; i < th->n_vus && !th->hard; i++) {
        struct engine_vu *vu = th->vus[i];
        bool above;

        if (vu->done) {
            continue;
        }
        above = above_target(vu, now);
        if (vu->parked) {
            if (!above && !th->stopping) {
                coro_resume(vu->co);
            }
        } else if (vu->busy && !vu->cut) {
            if (!above) {
                vu->ramp_down_end_ns = INT64_MAX;
            } else if (vu->ramp_down_end_ns == INT64_MAX) {
                vu->ramp_down_end_ns =
                    grace < INT64_MAX - 1 - now ? now + grace : INT64_MAX - 1;
            }
            if (now >= vu->ramp_down_end_ns) {
                cut_iteration(vu);
            }
        }
    }
    if (!th->ended && !th->hard) {
        add_timer(&th->ramp_ev, now + RAMP_TICK_NS);
    }
}

/* Starts the iterations due by now, each on an idle VU, a new one, or
 * counted as dropped; then waits for the next. */
static void on_arrival(evutil_socket_t fd, short what, void *arg)
{
    struct eng_thread *th = arg;
    const struct engine_config *cfg = th->run->cfg;
    int64_t now = clock_mono_ns();

    (void)fd;
    (void)what;
    while (!th->stopping && th->next_at_ns != INT64_MAX &&
           th->start_ns + th->next_at_ns <= now &&
           th->next_at_ns < cfg->duration_ns) {
        struct engine_vu *vu = th->idle;

        if (vu == NULL && th->n_vus < th->max_vus) {
            if (new_vu(th, &vu) == 0) {
                coro_resume(vu->co); /* it parks itself on the idle stack */
            }
            vu = th->idle;
        }
        if (vu == NULL) {
            th->cur->dropped++;
        } else {
            th->idle = vu->next_idle;
            vu->intended_ns = th->start_ns + th->next_at_ns;
            coro_resume(vu->co);
        }
        th->next_k += (uint64_t)th->run->n_threads;
        th->next_at_ns = arrival_at(cfg, th->next_k);
        now = clock_mono_ns();
    }
    if (!th->stopping && th->next_at_ns < cfg->duration_ns) {
        add_timer(&th->ramp_ev, th->start_ns + th->next_at_ns);
    }
}

/* ---- Threads ---------------------------------------------------------- */

static int share(int total, int n, int index)
{
    return total / n + (index < total % n);
}

static int thread_setup(struct eng_thread *th)
{
    struct eng_run *run = th->run;
    const struct engine_config *cfg = run->cfg;
    struct event_config *ecfg = event_config_new();
    int n;
    int rc;

    if (ecfg == NULL) {
        return ST_INTERNAL;
    }
    /* One thread uses the base: no locks. Arrival-rate starts are timed:
     * the coarse clock libevent uses by default ticks every few ms, which
     * would show as lag in http_req_latency, so those loops pay for
     * timerfds. */
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
    if (is_arrival(cfg->executor)) {
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    }
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
    if (snap_new(&run->http, &th->cur) != 0) {
        return ST_INVALID;
    }
    httpc_metrics_free(httpc_client_swap_metrics(th->http, th->cur->http));
    evtimer_assign(&th->stop_ev, th->base, on_stop, th);
    evtimer_assign(&th->tick_ev, th->base, on_tick, th);
    evtimer_assign(&th->ramp_ev, th->base,
                   is_arrival(cfg->executor) ? on_arrival : on_ramp, th);
    th->events_set = true;
    th->max_vus = share(run->max_vus, run->n_threads, th->index);
    th->vus = mem_calloc((size_t)(th->max_vus > 0 ? th->max_vus : 1),
                         sizeof(*th->vus));
    th->pre_vus = share(cfg->pre_allocated_vus, run->n_threads, th->index);
    if (is_arrival(cfg->executor)) {
        th->free_slots = mem_calloc((size_t)(th->max_vus > 0 ? th->max_vus : 1),
                                    sizeof(*th->free_slots));
    }
    n = is_arrival(cfg->executor) ? th->pre_vus : th->max_vus;
    for (int i = 0; i < n; i++) {
        struct engine_vu *vu;

        rc = new_vu(th, &vu);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Every VU has left: the last second goes to the caller, the loop ends. */
static void thread_finish(struct eng_thread *th)
{
    if (th->ended) {
        return;
    }
    th->ended = true;
    th->end_ns = clock_mono_ns();
    event_base_loopbreak(th->base);
}

static void thread_run(struct eng_thread *th)
{
    struct eng_run *run = th->run;
    const struct engine_config *cfg = run->cfg;

    th->start_ns = run->start_ns;
    th->sec = run->first_sec;
    th->stop_at_ns = th->start_ns + cfg->duration_ns;
    th->timer_at_ns = th->stop_at_ns;
    th->end_ns = th->start_ns;
    /* Joined after the end (a start offset as long as the duration): no
     * VU starts an iteration. */
    th->stopping = clock_mono_ns() >= th->stop_at_ns;
    add_timer(&th->stop_ev, th->timer_at_ns);
    add_timer(&th->tick_ev, th->start_ns + STOP_POLL_NS);
    if (is_arrival(cfg->executor)) {
        /* This thread's first start k (k mod T == index) at or after the
         * join's. */
        uint64_t t = (uint64_t)run->n_threads;
        uint64_t i = (uint64_t)th->index;

        th->next_k =
            run->first_k <= i ? i : i + (run->first_k - i + t - 1) / t * t;
        th->next_at_ns = arrival_at(cfg, th->next_k);
    }
    for (int i = 0; i < th->n_vus; i++) {
        coro_resume(th->vus[i]->co);
    }
    if (is_arrival(cfg->executor)) {
        on_arrival(-1, 0, th);
    } else if (cfg->executor == ENGINE_RAMPING_VUS) {
        add_timer(&th->ramp_ev, th->start_ns + RAMP_TICK_NS);
    }
    /* VU executors end when their VUs have; arrival-rate ones when the
     * duration and graceful stop have, and the VUs with them. */
    if (!is_arrival(cfg->executor) && th->n_done == th->n_vus) {
        thread_finish(th);
    }
    if (!th->ended) {
        event_base_dispatch(th->base);
    }
    if (!th->ended) {
        th->end_ns = clock_mono_ns();
    }
    event_del(&th->stop_ev);
    event_del(&th->tick_ev);
    event_del(&th->ramp_ev);
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
    /* The VUs go now, on their thread (fini may use the loop). */
    th->vus_at_end = th->n_vus;
    for (int i = 0; i < th->n_vus; i++) {
        vu_free(th->vus[i], run->cfg);
    }
    th->n_vus = 0;
    if (gate == GATE_GO) {
        hand_over(th, true);
    } else {
        pthread_mutex_lock(&run->lock);
        run->finished[th->index] = true;
        pthread_cond_broadcast(&run->cond);
        pthread_mutex_unlock(&run->lock);
    }
    return NULL;
}

static void thread_cleanup(struct eng_thread *th)
{
    free(th->vus);
    free(th->free_slots);
    if (th->http != NULL) {
        /* The snapshot owns the metrics the client records into. */
        httpc_client_swap_metrics(th->http, NULL);
        httpc_client_free(th->http);
    }
    snap_free(th->cur);
    if (th->base != NULL) {
        event_base_free(th->base);
    }
}

/* ---- Configuration ---------------------------------------------------- */

/* The executor's options: checked, the defaults filled in, and the VUs it
 * needs at most in run->max_vus (0 for ramping-vus from 0 to 0). */
static int check_executor(struct engine_config *cfg, struct eng_run *run)
{
    bool arrival;

    if ((unsigned)cfg->executor >= ENGINE_EXECUTOR_COUNT || cfg->threads < 0 ||
        cfg->threads > ENGINE_THREADS_MAX || cfg->duration_ns < 0 ||
        cfg->graceful_stop_ns < 0 || cfg->graceful_ramp_down_ns < 0 ||
        cfg->vu_id_base < 0 || cfg->start_offset_ns < 0 ||
        cfg->n_stages > ENGINE_STAGES_MAX ||
        (cfg->n_stages > 0 && cfg->stages == NULL) ||
        (cfg->stack_bytes != 0 && (cfg->stack_bytes < CORO_STACK_MIN ||
                                   cfg->stack_bytes > CORO_STACK_MAX))) {
        return ST_INVALID;
    }
    arrival = is_arrival(cfg->executor);
    if (is_ramping(cfg->executor)) {
        double top = arrival ? cfg->rate : cfg->vus;

        if (cfg->n_stages == 0) {
            return ST_INVALID;
        }
        for (size_t i = 0; i < cfg->n_stages; i++) {
            if (cfg->stages[i].duration_ns <= 0 ||
                !isfinite(cfg->stages[i].target) || cfg->stages[i].target < 0) {
                return ST_INVALID;
            }
            top = cfg->stages[i].target > top ? cfg->stages[i].target : top;
        }
        cfg->duration_ns = stages_total_ns(cfg);
        if (!arrival) {
            if (cfg->vus < 0 || top > ENGINE_VUS_MAX) {
                return ST_INVALID;
            }
            run->max_vus = (int)ceil(top);
        }
    }
    if (arrival) {
        if (cfg->time_unit_ns == 0) {
            cfg->time_unit_ns = CLOCK_NS_PER_S;
        }
        if (cfg->time_unit_ns < 0 || !isfinite(cfg->rate) || cfg->rate < 0 ||
            (cfg->executor == ENGINE_CONSTANT_ARRIVAL_RATE && cfg->rate <= 0) ||
            cfg->pre_allocated_vus < 0 || cfg->max_vus < 0 ||
            cfg->max_vus > ENGINE_VUS_MAX) {
            return ST_INVALID;
        }
        if (cfg->max_vus < cfg->pre_allocated_vus) {
            cfg->max_vus = cfg->pre_allocated_vus;
        }
        if (cfg->max_vus < 1) {
            return ST_INVALID;
        }
        run->max_vus = cfg->max_vus;
    } else if (cfg->executor != ENGINE_RAMPING_VUS) {
        if (cfg->vus < 1 || cfg->vus > ENGINE_VUS_MAX) {
            return ST_INVALID;
        }
        run->max_vus = cfg->vus;
        if ((cfg->executor == ENGINE_PER_VU_ITERATIONS ||
             cfg->executor == ENGINE_SHARED_ITERATIONS) &&
            cfg->iterations == 0) {
            return ST_INVALID;
        }
    }
    if ((cfg->executor == ENGINE_PER_VU_ITERATIONS ||
         cfg->executor == ENGINE_SHARED_ITERATIONS) &&
        cfg->duration_ns == 0) {
        cfg->duration_ns = ENGINE_MAX_DURATION_DEFAULT_NS;
    }
    return 0;
}

static int check_config(struct engine_config *cfg, struct eng_run *run)
{
    struct snap *probe = NULL;

    if (cfg->workflow == NULL || check_executor(cfg, run) != 0) {
        return ST_INVALID;
    }
    if (run->max_vus < 1) {
        run->max_vus = 1; /* ramping from 0 to 0: one parked VU */
    }
    if (cfg->vu_id_base > INT_MAX - run->max_vus) {
        return ST_INVALID;
    }
    if (cfg->start_offset_ns > cfg->duration_ns) {
        cfg->start_offset_ns = cfg->duration_ns;
    }
    run->first_sec = (uint64_t)(cfg->start_offset_ns / CLOCK_NS_PER_S);
    if (is_arrival(cfg->executor)) {
        run->first_k = starts_before(cfg, cfg->start_offset_ns);
    }
    if (httpc_config_resolve(&cfg->http, &run->http) != 0 ||
        snap_new(&run->http, &probe) != 0) {
        return ST_INVALID;
    }
    snap_free(probe);
    return 0;
}

int engine_vus_max(const struct engine_config *cfg)
{
    struct engine_config c;
    struct eng_run run;

    if (cfg == NULL) {
        return 0;
    }
    c = *cfg;
    memset(&run, 0, sizeof(run));
    return check_executor(&c, &run) == 0 ? run.max_vus : 0;
}

/* ---- The caller's side ------------------------------------------------ */

struct reporter {
    struct eng_run *run;
    struct engine_result *out;
    struct snap *second; /* the second being merged */
    struct hist *latency;
    uint64_t next; /* next second to emit */
    size_t points_cap;
};

/* Merges the latency histograms of every request name of s into h. */
static void merge_latency(struct hist *h, const struct snap *s)
{
    size_t n = httpc_metrics_count(s->http);

    hist_reset(h);
    for (size_t i = 0; i < n; i++) {
        const struct httpc_stats *st = httpc_metrics_at(s->http, i);

        if (hist_merge(h, st->timings[HTTPC_T_LATENCY]) != 0) {
            abort(); /* one configuration for the run */
        }
    }
}

static void emit_point(struct reporter *rp, uint64_t second, int vus,
                       int vus_max, int64_t t_ns)
{
    struct engine_result *out = rp->out;
    const struct engine_config *cfg = rp->run->cfg;
    struct snap *s = rp->second;
    struct engine_point pt;
    size_t n = httpc_metrics_count(s->http);
    char reason[sizeof(out->abort_reason)] = "";

    memset(&pt, 0, sizeof(pt));
    pt.second = (int64_t)second;
    pt.t_ns = t_ns;
    pt.vus = vus;
    pt.vus_alive = vus_max;
    pt.iterations = s->iterations;
    pt.dropped = s->dropped;
    for (size_t i = 0; i < n; i++) {
        const struct httpc_stats *st = httpc_metrics_at(s->http, i);

        pt.requests += st->requests;
        pt.failed += st->failed;
    }
    for (size_t i = 0; i < s->n_checks; i++) {
        pt.checks_passed += s->checks[i].passes;
        pt.checks_failed += s->checks[i].fails;
    }
    merge_latency(rp->latency, s);
    pt.p50_ns = hist_value_at_percentile(rp->latency, 50);
    pt.p95_ns = hist_value_at_percentile(rp->latency, 95);
    pt.p99_ns = hist_value_at_percentile(rp->latency, 99);
    pt.max_ns = hist_max(rp->latency);
    s->vus = vus;
    s->vus_max = vus_max;
    if (snap_merge(out->total, s) != 0) {
        abort();
    }
    /* The last hand-over often comes just after a full second: a sliver
     * with nothing in it is not a point of its own. */
    if (pt.requests == 0 && pt.iterations == 0 && pt.dropped == 0 &&
        s->interrupted == 0 && out->n_points > 0 &&
        t_ns - out->points[out->n_points - 1].t_ns < 200 * CLOCK_NS_PER_MS) {
        snap_reset(s);
        return;
    }
    if (rp->points_cap == out->n_points) {
        rp->points_cap = rp->points_cap ? 2 * rp->points_cap : 64;
        out->points =
            mem_reallocarray(out->points, rp->points_cap, sizeof(*out->points));
    }
    out->points[out->n_points++] = pt;
    if (cfg->on_second != NULL &&
        cfg->on_second(cfg->on_second_arg, &pt, s, out->total, reason,
                       sizeof(reason)) &&
        !out->aborted) {
        out->aborted = true;
        snprintf(out->abort_reason, sizeof(out->abort_reason), "%s",
                 reason[0] ? reason : "aborted");
        atomic_store(&rp->run->abort, true);
    }
    snap_reset(s);
}

/* Emits every second all threads have delivered; returns true when every
 * thread has finished and everything was emitted. Called with lock held;
 * drops it while merging. */
static bool drain(struct reporter *rp)
{
    struct eng_run *run = rp->run;

    for (;;) {
        bool all_done = true;
        bool complete = true;
        struct eng_delta *mine = NULL;
        struct eng_delta **pp = &run->queue;
        int vus = 0;
        int vus_max = 0;
        bool any = false;

        for (int i = 0; i < run->n_threads; i++) {
            all_done &= run->finished[i];
            complete &=
                run->finished[i] || run->delivered[i] >= (int64_t)rp->next;
        }
        if (!complete) {
            return false;
        }
        /* Take this second's deltas (and any older stragglers). */
        while (*pp != NULL) {
            struct eng_delta *d = *pp;

            if (d->sec <= rp->next) {
                *pp = d->next;
                d->next = mine;
                mine = d;
                any = true;
            } else {
                pp = &d->next;
            }
        }
        run->queue_tail = &run->queue;
        while (*run->queue_tail != NULL) {
            run->queue_tail = &(*run->queue_tail)->next;
        }
        if (!any && all_done && run->queue == NULL) {
            return true;
        }
        pthread_mutex_unlock(&run->lock);
        for (struct eng_delta *d = mine; d != NULL; d = d->next) {
            vus += d->vus;
            vus_max += d->snap->vus_max;
            if (snap_merge(rp->second, d->snap) != 0) {
                abort();
            }
            snap_reset(d->snap);
        }
        if (any) {
            int64_t t = (int64_t)(rp->next + 1) * CLOCK_NS_PER_S;
            int64_t now = clock_mono_ns() - run->start_ns;

            emit_point(rp, rp->next + 1, vus, vus_max, t < now ? t : now);
            if (vus_max > rp->out->vus_max) {
                rp->out->vus_max = vus_max;
            }
        }
        pthread_mutex_lock(&run->lock);
        while (mine != NULL) {
            struct eng_delta *d = mine;

            mine = d->next;
            d->next = NULL;
            *run->spare_tail = d;
            run->spare_tail = &d->next;
        }
        rp->next++;
    }
}

/* The per-second series is kept for the report, a point (under 100
 * bytes) a second: 340 KiB for an hour. Room for the whole planned run
 * (duration and graceful stop, up to SERIES_PLAN_MAX_S) is made and
 * touched before the start, so that memory is what the run will need from
 * its first second and a soak's RSS stays flat unless something leaks; a
 * run that lasts longer grows it by doubling. */
static void reserve_points(struct reporter *rp)
{
    const struct engine_config *cfg = rp->run->cfg;
    int64_t s = cfg->duration_ns / CLOCK_NS_PER_S +
                cfg->graceful_stop_ns / CLOCK_NS_PER_S;
    size_t n = (size_t)(s < SERIES_PLAN_MAX_S ? s : SERIES_PLAN_MAX_S) + 2;
    volatile char *p;

    rp->points_cap = n;
    rp->out->points = mem_calloc(n, sizeof(*rp->out->points));
    /* calloc's pages may be the kernel's untouched zeroes, and a memset of
     * zeroes may be dropped by the compiler: a volatile store commits each
     * page. */
    p = (volatile char *)rp->out->points;
    for (size_t i = 0; i < n * sizeof(*rp->out->points); i += 1024) {
        p[i] = 0;
    }
}

/* A start offset: the whole seconds before the join are points of their
 * own with nothing in them but the arrival-rate starts they scheduled,
 * dropped; the starts due in the joining second before the join are
 * dropped in that second. */
static void emit_missed(struct reporter *rp)
{
    const struct engine_config *cfg = rp->run->cfg;
    bool arrival = is_arrival(cfg->executor);

    for (uint64_t s = 0; s < rp->run->first_sec; s++) {
        int64_t from = (int64_t)s * CLOCK_NS_PER_S;

        if (arrival) {
            rp->second->dropped = starts_before(cfg, from + CLOCK_NS_PER_S) -
                                  starts_before(cfg, from);
        }
        emit_point(rp, s + 1, 0, 0, from + CLOCK_NS_PER_S);
    }
    rp->next = rp->run->first_sec;
    if (arrival) {
        rp->second->dropped =
            rp->run->first_k -
            starts_before(cfg, (int64_t)rp->next * CLOCK_NS_PER_S);
    }
}

static void report_loop(struct eng_run *run, struct engine_result *out)
{
    const struct engine_config *cfg = run->cfg;
    struct reporter rp;

    memset(&rp, 0, sizeof(rp));
    rp.run = run;
    rp.out = out;
    reserve_points(&rp);
    if (snap_new(&run->http, &rp.second) != 0 ||
        hist_new(&run->http.hist, &rp.latency) != 0) {
        abort(); /* checked */
    }
    emit_missed(&rp);
    pthread_mutex_lock(&run->lock);
    for (;;) {
        struct timespec ts;
        int64_t until = clock_real_ns() + STOP_POLL_NS;

        if (drain(&rp)) {
            break;
        }
        if (cfg->stop_flag != NULL && *cfg->stop_flag && !out->aborted) {
            out->aborted = true;
            snprintf(out->abort_reason, sizeof(out->abort_reason),
                     "stopped by a signal");
            atomic_store(&run->abort, true);
        }
        ts.tv_sec = (time_t)(until / CLOCK_NS_PER_S);
        ts.tv_nsec = (long)(until % CLOCK_NS_PER_S);
        pthread_cond_timedwait(&run->cond, &run->lock, &ts);
    }
    pthread_mutex_unlock(&run->lock);
    snap_free(rp.second);
    hist_free(rp.latency);
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
    rc = check_config(&cfg, &run);
    if (rc != 0) {
        return rc;
    }
    run.n_threads = cfg.threads < run.max_vus ? cfg.threads : run.max_vus;
    run.cfg = &cfg;
    atomic_init(&run.abort, false);
    atomic_init(&run.shared_claimed, 0);
    if (snap_new(&run.http, &out->total) != 0) {
        return ST_INTERNAL;
    }
    run.delivered = mem_calloc((size_t)run.n_threads, sizeof(*run.delivered));
    run.finished = mem_calloc((size_t)run.n_threads, sizeof(*run.finished));
    for (int i = 0; i < run.n_threads; i++) {
        run.delivered[i] = -1;
    }
    run.queue_tail = &run.queue;
    run.spare_tail = &run.spare;
    for (int i = 0; i < ENGINE_SPARE_PER_THREAD * run.n_threads; i++) {
        struct eng_delta *d = new_delta(&run);

        *run.spare_tail = d;
        run.spare_tail = &d->next;
    }
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.cond, NULL);
    ths = mem_calloc((size_t)run.n_threads, sizeof(*ths));
    for (started = 0; started < run.n_threads; started++) {
        ths[started].run = &run;
        ths[started].index = started;
        if (pthread_create(&ths[started].tid, NULL, thread_main,
                           &ths[started]) != 0) {
            log_error("load: cannot start %d threads", run.n_threads);
            rc = ST_UPSTREAM;
            break;
        }
    }
    for (int i = started; i < run.n_threads; i++) {
        run.finished[i] = true;
    }
    pthread_mutex_lock(&run.lock);
    while (rc == 0 && run.ready < started) {
        pthread_cond_wait(&run.cond, &run.lock);
    }
    run.gate = rc == 0 && !run.failed ? GATE_GO : GATE_ABORT;
    run.start_ns = clock_mono_ns() - cfg.start_offset_ns;
    out->started_unix_ns = clock_real_ns() - cfg.start_offset_ns;
    pthread_cond_broadcast(&run.cond);
    pthread_mutex_unlock(&run.lock);
    if (run.gate == GATE_GO) {
        report_loop(&run, out);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ths[i].tid, NULL);
        if (ths[i].status != 0 && rc == 0) {
            rc = ths[i].status;
        }
    }
    for (int i = 0; i < started && rc == 0; i++) {
        first = ths[i].start_ns < first ? ths[i].start_ns : first;
        last = ths[i].end_ns > last ? ths[i].end_ns : last;
    }
    out->elapsed_ns = rc == 0 && started > 0 ? last - first : 0;
    out->iterations = out->total->iterations;
    out->interrupted = out->total->interrupted;
    out->dropped = out->total->dropped;
    out->iteration_ns = out->total->iteration_ns;
    out->http = out->total->http;
    for (int i = 0; i < started; i++) {
        thread_cleanup(&ths[i]);
    }
    while (run.queue != NULL) {
        struct eng_delta *d = run.queue;

        run.queue = d->next;
        snap_free(d->snap);
        free(d);
    }
    while (run.spare != NULL) {
        struct eng_delta *d = run.spare;

        run.spare = d->next;
        snap_free(d->snap);
        free(d);
    }
    free(ths);
    free(run.delivered);
    free(run.finished);
    pthread_cond_destroy(&run.cond);
    pthread_mutex_destroy(&run.lock);
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
    snap_free(r->total);
    free(r->points);
    memset(r, 0, sizeof(*r));
}

/* ---- For workflows ---------------------------------------------------- */

struct httpc_conn *engine_vu_http(struct engine_vu *vu)
{
    return vu->http;
}

int engine_vu_id(const struct engine_vu *vu)
{
    return vu->th->run->cfg->vu_id_base + vu->id;
}

uint64_t engine_vu_iteration(const struct engine_vu *vu)
{
    return vu->iteration;
}

void *engine_vu_data(const struct engine_vu *vu)
{
    return vu->th->run->cfg->data;
}

void *engine_vu_state(const struct engine_vu *vu)
{
    return vu->state;
}

void engine_vu_set_state(struct engine_vu *vu, void *state)
{
    vu->state = state;
}

void *engine_vu_alloc(struct engine_vu *vu, size_t n)
{
    void *p = coro_alloc(vu->co, n);

    memset(p, 0, n);
    return p;
}

void engine_vu_release(struct engine_vu *vu, void *p, size_t n)
{
    coro_release(vu->co, p, n);
}

void *engine_vu_api(const struct engine_vu *vu)
{
    return vu->api;
}

void engine_vu_set_api(struct engine_vu *vu, void *api)
{
    vu->api = api;
}

int64_t engine_vu_lag_ns(const struct engine_vu *vu)
{
    return vu->lag_ns;
}

void engine_vu_step(struct engine_vu *vu, const char *name)
{
    set_step(vu, name, clock_mono_ns());
}

const char *engine_vu_step_name(const struct engine_vu *vu)
{
    return vu->step;
}

void engine_vu_check(struct engine_vu *vu, const char *name, bool ok)
{
    snap_check(vu->th->cur, name != NULL ? name : "", ok);
}

bool engine_vu_interrupted(const struct engine_vu *vu)
{
    return vu->th->hard || vu->cut;
}

void engine_sleep(struct engine_vu *vu, int64_t ns)
{
    assert(coro_current() == vu->co);
    if (engine_vu_interrupted(vu) || ns <= 0) {
        return;
    }
    vu->wake_at_ns = clock_mono_ns() + ns;
    add_timer(&vu->sleep_ev, vu->wake_at_ns);
    vu->sleeping = true;
    coro_yield(vu->co);
    vu->sleeping = false;
    event_del(&vu->sleep_ev);
}
