/* engine: runs virtual users. Each VU is a coroutine that runs a workflow,
 * straight-line C, once per iteration; T threads each run one libevent loop
 * with their share of the VUs, their own HTTP client and their own metrics,
 * merged when the run ends. This is the constant-vus executor; the others
 * and the plan for them: docs/load.md. */
#ifndef HANDOFF_ENGINE_H
#define HANDOFF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "httpc.h"
#include "status.h"

struct engine_vu;

#define ENGINE_THREADS_MAX 256
#define ENGINE_VUS_MAX 1000000

struct engine_config {
    /* Run once per iteration by each VU, on the VU's coroutine: it may
     * block in httpc_request and engine_sleep, which suspend this VU
     * only. A workflow that never blocks holds its thread's other VUs up
     * until it returns. */
    void (*workflow)(struct engine_vu *vu);
    void *data;               /* run-wide, for workflows: engine_vu_data */
    int vus;                  /* 1..ENGINE_VUS_MAX */
    int threads;              /* loop threads, 1..ENGINE_THREADS_MAX; 0: 1 */
    int64_t duration_ns;      /* no iteration starts after this */
    int64_t graceful_stop_ns; /* iterations still running then are given
                                 this long; then their requests and sleeps
                                 return at once (cancelled) */
    size_t stack_bytes;       /* per VU; 0: CORO_STACK_DEFAULT */
    struct httpc_config http; /* each thread's client; hist also sets the
                                 iteration histogram */
};

/* What a run measured, merged over its threads. */
struct engine_result {
    uint64_t iterations;        /* completed */
    uint64_t interrupted;       /* cut short by the end of graceful stop */
    int64_t elapsed_ns;         /* first start to the last VU's end */
    struct hist *iteration_ns;  /* iteration_duration */
    struct httpc_metrics *http; /* every request, by name */
};

/* Runs cfg->vus VUs for cfg->duration_ns and returns when every VU has
 * finished its last iteration. cfg is borrowed. Returns 0 with *out filled
 * (release it with engine_result_cleanup); ST_INVALID for a bad
 * configuration; ST_UPSTREAM when the VUs' stacks or the threads could not
 * be had (address space, vm.max_map_count: logged). Any thread; the run
 * uses threads of its own. */
MUST_CHECK int engine_run(const struct engine_config *cfg,
                          struct engine_result *out);
void engine_result_cleanup(struct engine_result *r);

/* For workflows, on their VU's coroutine. */

/* The VU's HTTP connection slot, for httpc_request. */
struct httpc_conn *engine_vu_http(struct engine_vu *vu);
/* 1..vus, unique in the run. */
int engine_vu_id(const struct engine_vu *vu);
/* This VU's iterations completed before the current one. */
uint64_t engine_vu_iteration(const struct engine_vu *vu);
/* cfg->data. */
void *engine_vu_data(const struct engine_vu *vu);
/* Suspends the VU for ns; returns early, at once, when the run's graceful
 * stop is over. */
void engine_sleep(struct engine_vu *vu, int64_t ns);

#endif
