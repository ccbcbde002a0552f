/* wire: Handoff's messages on NATS (the .proto files in proto/), encoded
 * and decoded here and nowhere else, so protobuf-c's structs stay in wire.c.
 * Decoding treats the bytes as untrusted: sizes are checked, enums
 * range-checked, text repaired to clean UTF-8 (utf8.h), and nothing is
 * half-filled on failure. */
#ifndef HANDOFF_WIRE_H
#define HANDOFF_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "report.h"
#include "result.h"
#include "status.h"

/* ---- Jobs ------------------------------------------------------------- */

/* A load job's specification (proto/load.proto, docs/load.md). */
enum wire_load_phase {
    WIRE_LOAD_SHARD,
    WIRE_LOAD_SETUP,
    WIRE_LOAD_TEARDOWN,
};

#define WIRE_LOAD_STAGES_MAX 1000
#define WIRE_LOAD_THRESHOLDS_MAX 64
#define WIRE_LOAD_THRESHOLD_LEN_MAX 1024
/* Setup data travels in a job and a result: NATS' default message cap is
 * 1 MiB. */
#define WIRE_LOAD_SETUP_MAX (512 * 1024)
/* Shards of a load run at most (the API's limit): a shard's VU ids come
 * after those of every shard before it. */
#define WIRE_LOAD_SHARDS_MAX 1000
/* The longest duration a LoadSpec may carry, each of them (the API's
 * 720h): a stage, the duration, a time unit, a graceful stop or
 * ramp-down, a max duration. What a message carries is turned into
 * nanoseconds; this keeps every sum of them far from overflow. */
#define WIRE_LOAD_DURATION_MAX_MS (INT64_C(720) * 3600 * 1000)

struct wire_load_stage {
    int64_t duration_ms;
    double target;
};

struct wire_load {
    char *workflow;
    enum wire_load_phase phase;
    char *executor; /* "" unset */
    int32_t vus;    /* <= 0 unset */
    int64_t duration_ms;
    double rate;
    int64_t time_unit_ms;
    struct wire_load_stage *stages;
    size_t n_stages;
    int32_t pre_allocated_vus;
    int32_t max_vus;
    uint64_t iterations;
    int64_t graceful_stop_ms;      /* < 0 unset */
    int64_t graceful_ramp_down_ms; /* < 0 unset; ramping-vus only */
    int64_t max_duration_ms;
    int32_t shard; /* 0..shards-1 */
    int32_t shards;
    int64_t start_at_unix_ns;
    void *setup_data;
    size_t setup_len;
    char **thresholds;
    size_t n_thresholds;
};

/* A deep copy of l (NULL gives NULL), owned by the caller. */
struct wire_load *wire_load_dup(const struct wire_load *l);
/* Frees l and everything in it. NULL does nothing. */
void wire_load_free(struct wire_load *l);

struct wire_job {
    char *job_id; /* "<run id>.<shard>" */
    int64_t run_id;
    char *suite;
    char *ns;
    struct result_kv *params;
    size_t n_params;
    char *run_filter; /* "" for none */
    char *skip_filter;
    int32_t max_attempts;
    int64_t timeout_ms;
    int64_t test_timeout_ms;
    int64_t created_unix_ms;
    int32_t count;
    int32_t shard;
    int32_t shards;
    int64_t not_after_unix_ms; /* 0: no limit */
    struct wire_load *load;    /* a load run's job, or NULL */
};

/* Appends the encoded job to out. */
void wire_job_encode(const struct wire_job *j, struct buf *out);
/* Decodes into out (caller storage; wire_job_cleanup). Returns 0 or
 * ST_PROTOCOL (not a job, or a field out of range). */
MUST_CHECK int wire_job_decode(const void *data, size_t len,
                               struct wire_job *out);
void wire_job_cleanup(struct wire_job *j);

/* At most this many job keys in a Cancel (a load run has 1 + shards + 1
 * jobs; shards are at most 1000). */
#define WIRE_CANCEL_MAX_KEYS 1100

struct wire_cancel {
    int64_t run_id;
    char *reason;
    char **job_keys; /* subjects_msg_id(job, created, 0, NULL) each */
    size_t n_job_keys;
};

void wire_cancel_encode(const struct wire_cancel *c, struct buf *out);
MUST_CHECK int wire_cancel_decode(const void *data, size_t len,
                                  struct wire_cancel *out);
void wire_cancel_cleanup(struct wire_cancel *c);

/* ---- Results ---------------------------------------------------------- */

/* What a job result carries besides the suite run's result. */
struct wire_result_meta {
    char *job_id;
    int64_t run_id;
    int32_t job_attempt;
    char *worker_id;
    bool cancelled;
    bool timed_out;
    /* Load jobs (NULL / 0 when absent): a setup job's data and resolved
     * specification, a shard's total (snap_encode's form) and seconds. */
    void *load_setup_data;
    size_t load_setup_len;
    struct wire_load *load_spec;
    void *load_total;
    size_t load_total_len;
    int64_t load_seconds;
};

void wire_result_encode(const struct result_suite *s,
                        const struct wire_result_meta *meta, struct buf *out);
/* Decodes into s (initialised here; result_suite_cleanup) and meta
 * (wire_result_meta_cleanup). Returns 0 or ST_PROTOCOL. */
MUST_CHECK int wire_result_decode(const void *data, size_t len,
                                  struct result_suite *s,
                                  struct wire_result_meta *meta);
void wire_result_meta_cleanup(struct wire_result_meta *m);

/* A job attempt started (before its result). */
struct wire_started {
    char *job_id;
    int64_t run_id;
    int32_t job_attempt;
    char *worker_id;
    int64_t started_unix_ns;
};

void wire_started_encode(const struct wire_started *s, struct buf *out);
MUST_CHECK int wire_started_decode(const void *data, size_t len,
                                   struct wire_started *out);
void wire_started_cleanup(struct wire_started *s);

/* One second of one load shard (LoadSnapshot). */
struct wire_load_snapshot {
    int64_t run_id;
    char *job_id;
    int32_t job_attempt;
    int32_t shard;
    int64_t second; /* >= 1 */
    int64_t t_ns;
    void *snap; /* snap_encode's form; not decoded here */
    size_t snap_len;
};

void wire_load_snapshot_encode(const struct wire_load_snapshot *s,
                               struct buf *out);
/* Returns 0 or ST_PROTOCOL (out untouched then). */
MUST_CHECK int wire_load_snapshot_decode(const void *data, size_t len,
                                         struct wire_load_snapshot *out);
void wire_load_snapshot_cleanup(struct wire_load_snapshot *s);

/* ---- Live events ------------------------------------------------------ */

/* A decoded event: ev's pointers point into the strings owned here. */
struct wire_event {
    struct report_event ev;
    int64_t run_id;
    char *job_id;
    uint64_t seq;
    int32_t job_attempt;
    char *suite;
    char *ns;
    char *test;
    char *output;
    char *reason;
};

void wire_event_encode(const struct report_event *ev, int64_t run_id,
                       const char *job_id, int32_t job_attempt, uint64_t seq,
                       struct buf *out);
MUST_CHECK int wire_event_decode(const void *data, size_t len,
                                 struct wire_event *out);
void wire_event_cleanup(struct wire_event *e);

/* Appends one encoded Event (wire_event_encode's output) to an EventBatch
 * being built in batch. */
void wire_event_batch_add(struct buf *batch, const void *event, size_t len);
/* Decodes a message of handoff.events.<run>: an EventBatch or a single
 * Event. *out gets a malloc'd array of *n events (free each with
 * wire_event_cleanup, then the array). Returns 0, or ST_PROTOCOL with
 * nothing to free when any part is malformed. */
MUST_CHECK int wire_events_decode(const void *data, size_t len,
                                  struct wire_event **out, size_t *n);

/* ---- Worker presence -------------------------------------------------- */

struct wire_test_info {
    char *name;
    int32_t max_attempts;
    int64_t timeout_ms;
};

struct wire_suite_info {
    char *name;
    char *ns;
    char *description;
    struct wire_test_info *tests;
    size_t n_tests;
    int32_t max_attempts;
    int64_t test_timeout_ms;
    int64_t timeout_ms;
    char **workflows; /* load-test workflows' names */
    size_t n_workflows;
};

struct wire_worker {
    char *worker_id;
    char *host;
    char *pool;
    struct result_kv *labels;
    size_t n_labels;
    struct wire_suite_info *suites;
    size_t n_suites;
    int32_t slots;
    int32_t free_slots;
    char *version;
    int64_t started_unix_ms;
    int64_t sent_unix_ms;
    bool draining;
    int64_t *running_runs;
    size_t n_running_runs;
};

void wire_worker_encode(const struct wire_worker *w, struct buf *out);
MUST_CHECK int wire_worker_decode(const void *data, size_t len,
                                  struct wire_worker *out);
void wire_worker_cleanup(struct wire_worker *w);

#endif
