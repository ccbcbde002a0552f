/* engine: runs virtual users. Each VU is a coroutine that runs a workflow,
 * straight-line C, once per iteration; T threads each run one libevent loop
 * with their share of the VUs, their own HTTP client and their own metrics
 * (a struct snap), handed over every second and merged by the caller's
 * thread into per-second points and the run's total. The executors are
 * k6's: docs/load.md. */
#ifndef HANDOFF_ENGINE_H
#define HANDOFF_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "httpc.h"
#include "snap.h"
#include "status.h"

struct engine_vu;

#define ENGINE_THREADS_MAX 256
#define ENGINE_VUS_MAX 1000000
#define ENGINE_STAGES_MAX 1000
/* The iterations executors' max duration when none is given (k6's). */
#define ENGINE_MAX_DURATION_DEFAULT_NS (INT64_C(600) * 1000000000)

/* X(name, text) */
#define ENGINE_EXECUTOR_MAP(X)                                                 \
    X(CONSTANT_VUS, "constant-vus")                                            \
    X(RAMPING_VUS, "ramping-vus")                                              \
    X(CONSTANT_ARRIVAL_RATE, "constant-arrival-rate")                          \
    X(RAMPING_ARRIVAL_RATE, "ramping-arrival-rate")                            \
    X(PER_VU_ITERATIONS, "per-vu-iterations")                                  \
    X(SHARED_ITERATIONS, "shared-iterations")

enum engine_executor {
#define ENGINE_EXECUTOR_ENUM(name, text) ENGINE_##name,
    ENGINE_EXECUTOR_MAP(ENGINE_EXECUTOR_ENUM)
#undef ENGINE_EXECUTOR_ENUM
        ENGINE_EXECUTOR_COUNT
};

/* "constant-vus", ...; "unknown" out of range. */
const char *engine_executor_str(enum engine_executor e);
/* The executor named s. Returns 0, or ST_INVALID. */
MUST_CHECK int engine_executor_parse(const char *s, enum engine_executor *out);

/* A stage of a ramping executor: the target (VUs, or iterations per
 * time unit) is reached linearly over duration_ns from the previous one. */
struct engine_stage {
    int64_t duration_ns;
    double target;
};

/* Parses "30s:100,1m:100,10s:0" into out (room for max). Returns the count,
 * or -1 with a message naming the bad part in err. */
int engine_stages_parse(const char *s, struct engine_stage *out, size_t max,
                        char *err, size_t errlen);

/* One second of a run, merged over the threads. */
struct engine_point {
    int64_t second; /* 1, 2, ...: the interval [second - 1, second) s */
    int64_t t_ns;   /* since the start, at the end of the interval */
    int vus;        /* VUs in an iteration or looping at its end */
    int vus_alive;  /* VUs that existed at its end, busy or idle */
    uint64_t iterations;
    uint64_t dropped;
    uint64_t requests;
    uint64_t failed;
    uint64_t checks_passed;
    uint64_t checks_failed;
    int64_t p50_ns; /* http_req_latency of the interval */
    int64_t p95_ns;
    int64_t p99_ns;
    int64_t max_ns;
};

struct engine_config {
    enum engine_executor executor;
    /* Run once per iteration by each VU, on the VU's coroutine: it may
     * block in httpc_request and engine_sleep, which suspend this VU
     * only. A workflow that never blocks holds its thread's other VUs up
     * until it returns. */
    void (*workflow)(struct engine_vu *vu);
    /* Optional: once per VU, on its coroutine, before its first
     * iteration; and once per VU when the run is over (to free state). */
    void (*init)(struct engine_vu *vu);
    void (*fini)(struct engine_vu *vu);
    void *data; /* run-wide, for workflows: engine_vu_data */
    /* constant-vus, per-vu-iterations, shared-iterations: the VUs;
     * ramping-vus: the VUs at the start. */
    int vus;
    /* Arrival-rate executors: VUs made before the start, and at most. */
    int pre_allocated_vus;
    int max_vus;
    /* Arrival-rate executors: iterations per time_unit_ns (ramping: at
     * the start). time_unit_ns 0: one second. */
    double rate;
    int64_t time_unit_ns;
    /* Ramping executors. */
    const struct engine_stage *stages;
    size_t n_stages;
    /* per-vu-iterations: per VU; shared-iterations: in all. */
    uint64_t iterations;
    /* No iteration starts after this (ramping: the stages' sum is used;
     * iterations executors: their max duration). */
    int64_t duration_ns;
    int64_t graceful_stop_ns; /* iterations still running then are given
                                 this long; then their requests and sleeps
                                 return at once (interrupted) */
    /* ramping-vus (ignored by the others): a VU in an iteration that the
     * falling target no longer wants gets this long to finish it; then its
     * requests and sleeps return at once, the iteration counts as
     * interrupted and the VU parks (the target may want it again). 0: at
     * once, as k6 has it (callers default to 30 s). Checked every 50 ms;
     * the graceful stop ends it too. */
    int64_t graceful_ramp_down_ns;
    /* VU ids are vu_id_base + 1 .. vu_id_base + engine_vus_max(cfg): a
     * distributed run gives each shard a range of its own. >= 0. */
    int vu_id_base;
    /* >= 0: the run behaves as if it had started this long before it
     * does (a shard that joins a distributed run late): stage targets,
     * the arrival-rate schedule, the end of the duration, seconds and
     * points all keep to that earlier start. The whole seconds before it
     * are handed to on_second as points with nothing in them but the
     * arrival-rate starts they scheduled, counted as dropped, as are the
     * starts due in the part of the joining second before the join. An
     * offset past the duration acts as the duration: the run is over
     * before it begins. */
    int64_t start_offset_ns;
    int threads;              /* loop threads, 1..ENGINE_THREADS_MAX; 0: 1 */
    size_t stack_bytes;       /* per VU; 0: CORO_STACK_DEFAULT */
    struct httpc_config http; /* each thread's client; hist also sets the
                                 other histograms */
    /* Optional: the caller's thread, once per second and once for the last
     * (partial) second: the second's point, the second's own metrics (the
     * delta a distributed shard would send) and the run's total so far.
     * Returning true aborts the run (abort_reason is then taken from
     * reason, if set). */
    bool (*on_second)(void *arg, const struct engine_point *pt,
                      const struct snap *second, const struct snap *total,
                      char *reason, size_t reason_len);
    void *on_second_arg;
    /* Optional: set to non-zero (a signal handler may) to stop the run as
     * an abort: checked every 100 ms. */
    volatile sig_atomic_t *stop_flag;
};

/* What a run measured, merged over its threads. */
struct engine_result {
    uint64_t iterations;         /* completed */
    uint64_t interrupted;        /* cut short by the end of graceful stop */
    uint64_t dropped;            /* arrival-rate starts without a VU */
    int vus_max;                 /* VUs that existed at most */
    int64_t elapsed_ns;          /* first start to the last VU's end */
    int64_t started_unix_ns;     /* wall clock at the start */
    bool aborted;                /* on_second or stop_flag stopped it */
    char abort_reason[256];      /* why, when aborted */
    struct snap *total;          /* everything, merged */
    struct hist *iteration_ns;   /* total->iteration_ns */
    struct httpc_metrics *http;  /* total->http: every request */
    struct engine_point *points; /* one per second */
    size_t n_points;
};

/* The most VUs a run of cfg has at once, and so how many ids it uses:
 * arrival-rate executors their max_vus (at least pre_allocated_vus),
 * ramping-vus the highest of vus and the stage targets (rounded up), the
 * others vus. 0 for ramping-vus whose targets are all 0 (its one VU never
 * runs an iteration) and for executor options engine_run refuses. cfg is
 * borrowed; any thread. */
int engine_vus_max(const struct engine_config *cfg);

/* Runs the executor and returns when every VU has finished its last
 * iteration. cfg is borrowed. Returns 0 with *out filled (release it with
 * engine_result_cleanup); ST_INVALID for a bad configuration; ST_UPSTREAM
 * when the VUs' stacks or the threads could not be had (address space,
 * vm.max_map_count: logged). Any thread; the run uses threads of its
 * own. */
MUST_CHECK int engine_run(const struct engine_config *cfg,
                          struct engine_result *out);
void engine_result_cleanup(struct engine_result *r);

/* For workflows, on their VU's coroutine. */

/* The VU's HTTP connection slot, for httpc_request. */
struct httpc_conn *engine_vu_http(struct engine_vu *vu);
/* vu_id_base + 1 .. vu_id_base + VUs, unique in the run. */
int engine_vu_id(const struct engine_vu *vu);
/* This VU's iterations completed before the current one. */
uint64_t engine_vu_iteration(const struct engine_vu *vu);
/* cfg->data. */
void *engine_vu_data(const struct engine_vu *vu);
/* A pointer of the VU's own, NULL until set. */
void *engine_vu_state(const struct engine_vu *vu);
void engine_vu_set_state(struct engine_vu *vu, void *state);
/* n zeroed bytes that live as long as the VU, in its own memory while it
 * has room (else on the heap): they go back to the kernel with it when an
 * arrival-rate executor lets it go, where the heap would keep fragments.
 * Give them back with engine_vu_release, at the latest in fini. The VU's
 * thread only. */
void *engine_vu_alloc(struct engine_vu *vu, size_t n);
/* p of n bytes, from engine_vu_alloc (NULL does nothing). */
void engine_vu_release(struct engine_vu *vu, void *p, size_t n);
/* A pointer for the layer above the engine (the hf_* API), apart from the
 * workflow's own state. */
void *engine_vu_api(const struct engine_vu *vu);
void engine_vu_set_api(struct engine_vu *vu, void *api);
/* How late the current iteration started against its schedule
 * (arrival-rate executors; 0 for the others). */
int64_t engine_vu_lag_ns(const struct engine_vu *vu);
/* Starts the step name (copied): the previous one, if any, ends and its
 * duration is recorded; requests are recorded under it until the next
 * step or the iteration's end. NULL or "" ends the step. */
void engine_vu_step(struct engine_vu *vu, const char *name);
/* The current step, "" for none. */
const char *engine_vu_step_name(const struct engine_vu *vu);
/* Counts a pass (ok) or a fail of the check name. */
void engine_vu_check(struct engine_vu *vu, const char *name, bool ok);
/* Suspends the VU for ns; returns early, at once, when its iteration is
 * interrupted (engine_vu_interrupted). */
void engine_sleep(struct engine_vu *vu, int64_t ns);
/* True once the VU's current iteration is interrupted: the run's graceful
 * stop is over, or (ramping-vus) its graceful ramp-down is. Blocking calls
 * return at once, and the workflow should return. */
bool engine_vu_interrupted(const struct engine_vu *vu);

#endif
