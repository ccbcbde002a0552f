/* loadchild: the child side of a load job (loadjob.h): reads the job,
 * resolves the executor against the workflow's defaults (k6's rules, as
 * `worker load` does), takes this shard's share of the load and its range
 * of VU ids, waits for the common start (or, late, joins the common
 * timeline), runs it and streams each second's snapshot to the
 * supervisor; or runs setup or teardown alone. */
#include "loadjob.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "engine.h"
#include "ipc.h"
#include "loadrun.h"
#include "mem.h"
#include "registry.h"
#include "snap.h"
#include "wire.h"

/* A shard that starts less than this after the common start counts as on
 * time and starts its own timeline then, as every shard does once its VUs
 * are set up; later, it joins the common timeline (docs/load.md). */
#define LOADCHILD_LATE_MIN_NS (100 * CLOCK_NS_PER_MS)
#define LOADCHILD_GRACE_DEFAULT_MS 30000

struct lc {
    int ctl;
    pthread_mutex_t lock; /* writes to ctl */
    volatile sig_atomic_t stop;
    char stop_reason[512];
    struct snap *total;
    int64_t seconds;
    bool has_job;
    struct wire_job job;
    struct buf rbuf;
};

static void gone(void)
{
    _exit(3);
}

static void send_frame(struct lc *c, const struct buf *b)
{
    const char *p = b->data;
    size_t len = b->len;

    pthread_mutex_lock(&c->lock);
    while (len > 0) {
        ssize_t n = send(c->ctl, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            gone();
        }
        p += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Handles the frames in rbuf. Returns false on a malformed one. */
static bool handle_frames(struct lc *c)
{
    for (;;) {
        uint8_t type;
        const uint8_t *payload;
        size_t plen;
        size_t flen;
        int r = ipc_frame_peek(c->rbuf.data, c->rbuf.len, &type, &payload,
                               &plen, &flen);

        if (r < 0) {
            return false;
        }
        if (r == 0) {
            return true;
        }
        if (type == IPC_PLAN && !c->has_job) {
            if (wire_job_decode(payload, plen, &c->job) != ST_OK ||
                c->job.load == NULL) {
                return false;
            }
            c->has_job = true;
        } else if (type == IPC_CANCEL) {
            struct ipc_reader rd;
            const char *why;

            ipc_reader_init(&rd, payload, plen);
            why = ipc_get_str(&rd, NULL);
            snprintf(c->stop_reason, sizeof(c->stop_reason), "%s",
                     *why ? why : "cancelled");
            c->stop = 1;
        }
        buf_consume(&c->rbuf, flen);
    }
}

static void read_some(struct lc *c)
{
    char tmp[65536];
    ssize_t n;

    do {
        n = recv(c->ctl, tmp, sizeof(tmp), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        gone();
    }
    buf_add(&c->rbuf, tmp, (size_t)n);
    if (!handle_frames(c)) {
        gone();
    }
}

/* Reads cancels while the load runs. */
static void *reader_main(void *arg)
{
    struct lc *c = arg;

    for (;;) {
        read_some(c);
    }
    return NULL;
}

static void send_done(struct lc *c, enum loadjob_outcome o, const char *reason,
                      const void *setup, size_t setup_len,
                      const struct wire_load *resolved)
{
    struct buf b;
    struct buf spec;
    struct buf total;

    buf_init(&b, 0);
    buf_init(&spec, 0);
    buf_init(&total, 0);
    if (resolved != NULL) {
        struct wire_job j = c->job;

        j.load = (struct wire_load *)resolved;
        wire_job_encode(&j, &spec);
    }
    if (c->total != NULL && snap_encode(c->total, &total) != ST_OK) {
        buf_reset(&total);
    }
    ipc_begin(&b, LOADJOB_DONE);
    ipc_put_u8(&b, (uint8_t)o);
    ipc_put_str(&b, reason, 4096);
    ipc_put_i64(&b, c->seconds);
    ipc_put_u32(&b, (uint32_t)setup_len);
    if (setup_len > 0) {
        buf_add(&b, setup, setup_len);
    }
    ipc_put_u32(&b, (uint32_t)spec.len);
    buf_add(&b, spec.data, spec.len);
    buf_add(&b, total.data, total.len);
    ipc_finish(&b);
    if (b.len - IPC_HEADER_LEN > IPC_MAX_PAYLOAD) {
        buf_reset(&b);
        ipc_begin(&b, LOADJOB_DONE);
        ipc_put_u8(&b, LOADJOB_ERROR);
        ipc_put_str(&b, "the shard's result is larger than 4 MiB", 4096);
        ipc_put_i64(&b, c->seconds);
        ipc_put_u32(&b, 0);
        ipc_put_u32(&b, 0);
        ipc_finish(&b);
    }
    send_frame(c, &b);
    buf_cleanup(&b);
    buf_cleanup(&spec);
    buf_cleanup(&total);
}

/* ---- Resolving and sharding -------------------------------------------- */

/* k6's execution segments: shard i of k gets this much of n, and the
 * shares add up to n. */
static int64_t seg(int64_t n, int i, int k)
{
    return (int64_t)((__int128)n * (i + 1) / k - (__int128)n * i / k);
}

/* The executor of l (request fields first, then the workflow's defaults,
 * then k6's rules), into out (a full copy of l with every field set). */
static int resolve(const struct wire_load *l, const struct hf_workflow *wf,
                   struct wire_load **out, char *err, size_t errlen)
{
    struct wire_load *r = wire_load_dup(l);
    enum engine_executor ex;
    const char *exs = *l->executor ? l->executor : wf->executor;
    bool has_rate = l->rate > 0 || wf->rate > 0;
    bool has_dur = l->duration_ms > 0 || wf->duration != NULL;

    if (r->vus <= 0) {
        r->vus = wf->vus > 0 ? wf->vus : 1;
    }
    if (r->rate <= 0) {
        r->rate = wf->rate;
    }
    if (r->max_vus <= 0) {
        r->max_vus = wf->max_vus;
    }
    if (r->iterations == 0 && wf->iterations > 0) {
        r->iterations = (uint64_t)wf->iterations;
    }
    if (r->duration_ms <= 0 && wf->duration != NULL) {
        int64_t ns;

        if (clock_parse_duration(wf->duration, &ns) != ST_OK) {
            snprintf(err, errlen,
                     "the workflow's duration \"%s\" is not a "
                     "duration",
                     wf->duration);
            wire_load_free(r);
            return ST_INVALID;
        }
        r->duration_ms = ns / CLOCK_NS_PER_MS;
    }
    if (r->n_stages == 0 && wf->stages != NULL) {
        struct engine_stage st[ENGINE_STAGES_MAX];
        int n =
            engine_stages_parse(wf->stages, st, ENGINE_STAGES_MAX, err, errlen);

        if (n < 0) {
            wire_load_free(r);
            return ST_INVALID;
        }
        free(r->stages);
        r->stages = mem_calloc((size_t)n + 1, sizeof(*r->stages));
        for (int i = 0; i < n; i++) {
            r->stages[i].duration_ms = st[i].duration_ns / CLOCK_NS_PER_MS;
            r->stages[i].target = st[i].target;
        }
        r->n_stages = (size_t)n;
    }
    if (r->graceful_stop_ms < 0) {
        r->graceful_stop_ms = LOADCHILD_GRACE_DEFAULT_MS;
    }
    if (exs != NULL) {
        if (engine_executor_parse(exs, &ex) != ST_OK) {
            snprintf(err, errlen, "unknown executor \"%s\"", exs);
            wire_load_free(r);
            return ST_INVALID;
        }
    } else if (has_rate) {
        ex = r->n_stages ? ENGINE_RAMPING_ARRIVAL_RATE
                         : ENGINE_CONSTANT_ARRIVAL_RATE;
    } else if (r->n_stages) {
        ex = ENGINE_RAMPING_VUS;
    } else if (has_dur) {
        ex = ENGINE_CONSTANT_VUS;
    } else {
        ex = ENGINE_SHARED_ITERATIONS;
        if (r->iterations == 0) {
            r->iterations = 1;
        }
    }
    /* k6 takes gracefulRampDown on ramping-vus only. */
    if (ex == ENGINE_RAMPING_VUS && r->graceful_ramp_down_ms < 0) {
        r->graceful_ramp_down_ms = LOADCHILD_GRACE_DEFAULT_MS;
    } else if (ex != ENGINE_RAMPING_VUS && r->graceful_ramp_down_ms >= 0) {
        snprintf(err, errlen,
                 "field \"load.graceful_ramp_down\": only for the "
                 "ramping-vus executor (this run's is %s)",
                 engine_executor_str(ex));
        wire_load_free(r);
        return ST_INVALID;
    }
    free(r->executor);
    r->executor = mem_strdup(engine_executor_str(ex));
    /* The workflow's own thresholds go back to the controller, which
     * evaluates them with the request's on the merged data. */
    for (size_t i = 0; i < r->n_thresholds; i++) {
        free(r->thresholds[i]);
    }
    free(r->thresholds);
    r->n_thresholds = 0;
    r->thresholds =
        mem_calloc(WIRE_LOAD_THRESHOLDS_MAX + 1, sizeof(*r->thresholds));
    for (size_t i = 0; wf->thresholds != NULL && wf->thresholds[i] != NULL &&
                       i < WIRE_LOAD_THRESHOLDS_MAX;
         i++) {
        r->thresholds[r->n_thresholds++] = mem_strdup(wf->thresholds[i]);
    }
    *out = r;
    return ST_OK;
}

/* Shard i's engine configuration from the resolved r, stages in stages
 * (room for r's). Returns false when the shard's share is nothing (it then
 * has nothing to run). */
static bool shard_config(const struct wire_load *r, int i,
                         struct engine_config *e, struct engine_stage *stages)
{
    int k = r->shards > 0 ? r->shards : 1;
    bool vu_based;

    memset(e, 0, sizeof(*e));
    if (engine_executor_parse(r->executor, &e->executor) != ST_OK) {
        return false;
    }
    e->vus = (int)seg(r->vus, i, k);
    e->duration_ns = r->duration_ms * CLOCK_NS_PER_MS;
    e->graceful_stop_ns = r->graceful_stop_ms * CLOCK_NS_PER_MS;
    e->graceful_ramp_down_ns =
        (r->graceful_ramp_down_ms >= 0 ? r->graceful_ramp_down_ms
                                       : LOADCHILD_GRACE_DEFAULT_MS) *
        CLOCK_NS_PER_MS;
    e->time_unit_ns = r->time_unit_ms * CLOCK_NS_PER_MS;
    e->rate = r->rate / k;
    e->pre_allocated_vus = (int)seg(r->pre_allocated_vus, i, k);
    e->max_vus = (int)seg(r->max_vus, i, k);
    e->iterations = r->iterations;
    vu_based = e->executor == ENGINE_CONSTANT_VUS ||
               e->executor == ENGINE_RAMPING_VUS ||
               e->executor == ENGINE_PER_VU_ITERATIONS;
    for (size_t s = 0; s < r->n_stages; s++) {
        stages[s].duration_ns = r->stages[s].duration_ms * CLOCK_NS_PER_MS;
        stages[s].target = vu_based
                               ? (double)seg(llround(r->stages[s].target), i, k)
                               : r->stages[s].target / k;
    }
    e->stages = stages;
    e->n_stages = r->n_stages;
    if (e->executor == ENGINE_PER_VU_ITERATIONS && r->max_duration_ms > 0) {
        e->duration_ns = r->max_duration_ms * CLOCK_NS_PER_MS;
    }
    if (e->executor == ENGINE_SHARED_ITERATIONS) {
        e->iterations = (uint64_t)seg((int64_t)r->iterations, i, k);
        if (e->iterations == 0) {
            return false;
        }
        if (e->vus < 1) {
            e->vus = 1;
        }
        if ((uint64_t)e->vus > e->iterations) {
            e->vus = (int)e->iterations;
        }
        if (r->max_duration_ms > 0) {
            e->duration_ns = r->max_duration_ms * CLOCK_NS_PER_MS;
        }
    }
    if (e->executor == ENGINE_CONSTANT_ARRIVAL_RATE ||
        e->executor == ENGINE_RAMPING_ARRIVAL_RATE) {
        /* Every shard needs a VU to start its share of iterations. */
        if (e->max_vus < 1) {
            e->max_vus = e->pre_allocated_vus > 0 ? e->pre_allocated_vus : 1;
        }
    } else if (e->executor != ENGINE_RAMPING_VUS && e->vus < 1) {
        return false;
    }
    {
        /* As `worker load` does: a loop per CPU (at most 8). */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        e->threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
    }
    return true;
}

/* This shard's engine configuration (shard_config), with VU ids after
 * those of the shards before it: ids are unique across the run, 1-based
 * and dense within each shard. */
static bool shard_engine(const struct wire_load *r, struct engine_config *e,
                         struct engine_stage *stages)
{
    struct engine_config before;
    int64_t base = 0;

    for (int j = 0; j < r->shard; j++) {
        if (shard_config(r, j, &before, stages)) {
            base += engine_vus_max(&before);
        }
    }
    if (!shard_config(r, r->shard, e, stages)) {
        return false;
    }
    /* At most WIRE_LOAD_SHARDS_MAX shards of ENGINE_VUS_MAX VUs each
     * (engine_vus_max is 0 above that): within an int. */
    e->vu_id_base = (int)base;
    return true;
}

/* How long e's iterations may start for: the engine's rules. */
static int64_t planned_ns(const struct engine_config *e)
{
    int64_t sum = 0;

    if (e->executor == ENGINE_RAMPING_VUS ||
        e->executor == ENGINE_RAMPING_ARRIVAL_RATE) {
        for (size_t i = 0; i < e->n_stages; i++) {
            sum += e->stages[i].duration_ns;
        }
        return sum;
    }
    if ((e->executor == ENGINE_PER_VU_ITERATIONS ||
         e->executor == ENGINE_SHARED_ITERATIONS) &&
        e->duration_ns == 0) {
        return ENGINE_MAX_DURATION_DEFAULT_NS;
    }
    return e->duration_ns;
}

/* ---- Running ---------------------------------------------------------- */

static bool on_second(void *arg, const struct engine_point *pt,
                      const struct snap *second, const struct snap *total,
                      char *reason, size_t reason_len)
{
    struct lc *c = arg;
    struct buf b;
    struct buf s;

    (void)total;
    (void)reason;
    (void)reason_len;
    buf_init(&b, 0);
    buf_init(&s, 0);
    /* Numbered on the common timeline: a late shard's first ones are the
     * seconds it missed, empty. */
    c->seconds = pt->second;
    if (snap_encode(second, &s) == ST_OK &&
        s.len + 16 + IPC_HEADER_LEN <= IPC_MAX_PAYLOAD) {
        ipc_begin(&b, LOADJOB_SNAP);
        ipc_put_i64(&b, pt->second);
        ipc_put_i64(&b, pt->t_ns);
        buf_add(&b, s.data, s.len);
        ipc_finish(&b);
        send_frame(c, &b);
    }
    if (c->total == NULL) {
        c->total = snap_new_like(second);
    }
    if (snap_merge(c->total, second) != ST_OK) {
        abort(); /* one engine, one configuration */
    }
    buf_cleanup(&b);
    buf_cleanup(&s);
    return false;
}

/* Sleeps until the common start, or a cancel. */
static void wait_start(struct lc *c, int64_t start_unix_ns)
{
    while (!c->stop) {
        int64_t left = start_unix_ns - clock_real_ns();
        struct timespec ts;

        if (left <= 0) {
            return;
        }
        if (left > 50 * CLOCK_NS_PER_MS) {
            left = 50 * CLOCK_NS_PER_MS;
        }
        ts.tv_sec = 0;
        ts.tv_nsec = (long)left;
        nanosleep(&ts, NULL);
    }
}

static void run_job(struct lc *c)
{
    const struct wire_load *l = c->job.load;
    const struct hf_suite *suite = registry_find(c->job.suite);
    const struct hf_workflow *wf = NULL;
    struct wire_load *r = NULL;
    struct loadrun_opts o;
    struct engine_stage *stages = NULL;
    char err[1024] = "";
    pthread_t reader;

    for (size_t i = 0; suite != NULL && i < registry_workflow_count(suite);
         i++) {
        if (strcmp(suite->workflows[i].name, l->workflow) == 0) {
            wf = &suite->workflows[i];
        }
    }
    if (wf == NULL) {
        snprintf(err, sizeof(err), "suite %s has no workflow \"%s\"",
                 c->job.suite, l->workflow);
        send_done(c, LOADJOB_ERROR, err, NULL, 0, NULL);
        return;
    }
    memset(&o, 0, sizeof(o));
    o.params = c->job.params;
    o.n_params = c->job.n_params;
    o.no_thresholds = true;
    if (pthread_create(&reader, NULL, reader_main, c) != 0) {
        send_done(c, LOADJOB_ERROR, "no thread for the control socket", NULL, 0,
                  NULL);
        return;
    }
    pthread_detach(reader);
    if (l->phase == WIRE_LOAD_SETUP) {
        void *data = NULL;
        size_t len = 0;

        if (resolve(l, wf, &r, err, sizeof(err)) != ST_OK) {
            send_done(c, LOADJOB_ERROR, err, NULL, 0, NULL);
        } else if (loadrun_setup(suite, wf, &o, &data, &len, err,
                                 sizeof(err)) != ST_OK) {
            send_done(c, LOADJOB_ERROR, err, NULL, 0, r);
        } else if (len > WIRE_LOAD_SETUP_MAX) {
            snprintf(err, sizeof(err),
                     "setup data of %zu bytes is over the limit of %d", len,
                     WIRE_LOAD_SETUP_MAX);
            send_done(c, LOADJOB_ERROR, err, NULL, 0, r);
        } else {
            send_done(c, LOADJOB_OK, "", data, len, r);
        }
        free(data);
        wire_load_free(r);
        return;
    }
    if (l->phase == WIRE_LOAD_TEARDOWN) {
        if (loadrun_teardown(suite, wf, &o, l->setup_data, l->setup_len, err,
                             sizeof(err)) != ST_OK) {
            send_done(c, LOADJOB_ERROR, err, NULL, 0, NULL);
        } else {
            send_done(c, LOADJOB_OK, "", NULL, 0, NULL);
        }
        return;
    }
    stages = mem_calloc(l->n_stages + 1, sizeof(*stages));
    if (!shard_engine(l, &o.engine, stages)) {
        send_done(c, LOADJOB_OK, "", NULL, 0, NULL); /* nothing to run */
    } else {
        json_t *report = NULL;
        char late[256] = "";
        int64_t late_ns;
        int rc;

        wait_start(c, l->start_at_unix_ns);
        if (c->stop) {
            send_done(c, LOADJOB_ABORTED, c->stop_reason, NULL, 0, NULL);
            free(stages);
            return;
        }
        /* Late (no free slot in time): join the common timeline rather
         * than start one of its own, so that second n is every shard's
         * second n. The run's report says so in this shard's reason. */
        late_ns =
            l->start_at_unix_ns > 0 ? clock_real_ns() - l->start_at_unix_ns : 0;
        if (late_ns >= LOADCHILD_LATE_MIN_NS) {
            o.engine.start_offset_ns = late_ns;
            snprintf(late, sizeof(late),
                     "late: joined %.1f s after the common start%s",
                     (double)late_ns / 1e9,
                     late_ns >= planned_ns(&o.engine)
                         ? ", after the end of its duration: it ran nothing"
                         : "");
        }
        o.given_setup_data = true;
        o.setup_data = l->setup_data;
        o.setup_len = l->setup_len;
        o.no_teardown = true;
        o.on_second = on_second;
        o.on_second_arg = c;
        o.id = c->job.job_id;
        rc = loadrun_run(suite, wf, &o, &c->stop, &report, err, sizeof(err));
        if (rc != ST_OK) {
            send_done(c, LOADJOB_ERROR, err, NULL, 0, NULL);
        } else if (c->stop) {
            send_done(c, LOADJOB_ABORTED, c->stop_reason, NULL, 0, NULL);
        } else {
            send_done(c, LOADJOB_OK, late, NULL, 0, NULL);
        }
        json_decref(report);
    }
    free(stages);
}

void loadchild_main(int ctl_fd)
{
    static struct lc c;
    static const int defaults[] = {SIGSEGV, SIGBUS,  SIGFPE, SIGILL,
                                   SIGABRT, SIGPIPE, SIGINT, SIGTERM};
    sigset_t none;
    int fl;

    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        signal(defaults[i], SIG_DFL);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    c.ctl = ctl_fd;
    fl = fcntl(ctl_fd, F_GETFL);
    if (fl >= 0) {
        (void)fcntl(ctl_fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    pthread_mutex_init(&c.lock, NULL);
    buf_init(&c.rbuf, 0);
    while (!c.has_job) {
        read_some(&c);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    run_job(&c);
    fflush(NULL);
    _exit(0);
}
