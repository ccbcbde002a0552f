/* The JSON report of a load run (schema handoff.load.report/1, docs/load.md)
 * read into C and rendered as the end-of-test text summary, JUnit XML and a
 * self-contained HTML page. */
#ifndef HANDOFF_LOADREPORT_H
#define HANDOFF_LOADREPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

struct json_t; /* jansson's json_t */

#define LOADREPORT_SCHEMA "handoff.load.report/1"

/* A STATS object; every duration in ms, all 0 when count is 0. */
struct loadreport_stats {
    uint64_t count;
    double min;
    double mean;
    double max;
    double p10;
    double p25;
    double p50;
    double p75;
    double p90;
    double p95;
    double p99;
    double p99_9;
    double p100;
};

/* The timings of a request, in the order docs/load.md lists them. */
enum loadreport_timing {
    LOADREPORT_DURATION,
    LOADREPORT_LATENCY,
    LOADREPORT_BLOCKED,
    LOADREPORT_CONNECTING,
    LOADREPORT_TLS,
    LOADREPORT_SENDING,
    LOADREPORT_WAITING,
    LOADREPORT_RECEIVING,
    LOADREPORT_TIMING_COUNT
};

/* The metric name of t ("http_req_duration"). */
const char *loadreport_timing_name(enum loadreport_timing t);

/* One entry of "status", "status_classes" or "errors". */
struct loadreport_count {
    const char *key;
    uint64_t n;
};

struct loadreport_bucket {
    double low_ms;
    double high_ms;
    uint64_t count;
};

/* A REQUEST: one (step, name), or the totals. */
struct loadreport_request {
    const char *step;
    const char *name;
    uint64_t count;
    uint64_t failed;
    double rate; /* count per second */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    struct loadreport_count *status; /* by code, ascending */
    size_t n_status;
    struct loadreport_count *classes; /* "2xx"..., as in the document */
    size_t n_classes;
    struct loadreport_count *errors;
    size_t n_errors;
    struct loadreport_stats timings[LOADREPORT_TIMING_COUNT];
    bool has_timing[LOADREPORT_TIMING_COUNT];
    struct loadreport_bucket *buckets;
    size_t n_buckets;
};

struct loadreport_check {
    const char *name;
    uint64_t passes;
    uint64_t fails;
};

struct loadreport_step {
    const char *name;
    struct loadreport_stats duration;
};

struct loadreport_threshold {
    const char *source;
    const char *metric;
    const char *condition;
    double observed; /* in the metric's unit */
    bool passed;
    bool abort_on_fail;
};

/* One second of the run (a POINT). */
struct loadreport_point {
    double t_s; /* end of the interval, seconds since the start */
    uint64_t vus;
    uint64_t iterations;
    uint64_t dropped;
    uint64_t requests;
    uint64_t failed;
    double rps;
    uint64_t checks_passed;
    uint64_t checks_failed;
    double p50_ms; /* http_req_latency */
    double p95_ms;
    double p99_ms;
    double max_ms;
};

struct loadreport_stage {
    double duration_ms;
    double target;
};

/* Executor options; those the document leaves out are 0. */
struct loadreport_executor {
    const char *type;
    uint64_t vus;
    uint64_t max_vus;
    uint64_t pre_allocated_vus;
    double rate;
    double time_unit_ms;
    uint64_t iterations;
    double duration_ms;
    double graceful_stop_ms;
    double graceful_ramp_down_ms; /* ramping-vus */
    struct loadreport_stage *stages;
    size_t n_stages;
};

/* A report read by loadreport_parse. Strings are borrowed from the
 * document and live as long as it does. Optional fields the document
 * leaves out read as "" or 0. */
struct loadreport {
    const char *id;
    const char *suite;
    const char *workflow;
    const char *started_at;
    const char *ended_at;
    double duration_ms;
    const char *result; /* passed, failed, aborted or error */
    const char *abort_reason;
    struct loadreport_executor executor;
    uint64_t shards;
    uint64_t completed;
    uint64_t interrupted;
    uint64_t dropped;
    double iterations_rate; /* completed per second */
    struct loadreport_stats iteration_duration;
    uint64_t vus_max;
    struct loadreport_check *checks;
    size_t n_checks;
    struct loadreport_step *steps;
    size_t n_steps;
    struct loadreport_request *requests;
    size_t n_requests;
    struct loadreport_request totals;
    struct loadreport_threshold *thresholds;
    size_t n_thresholds;
    struct loadreport_point *series;
    size_t n_series;
};

/* Reads doc (borrowed; it must outlive *out) as a handoff.load.report/1
 * document. Fields the schema does not name are ignored. Returns 0 with
 * *out owned by the caller (loadreport_free); ST_PROTOCOL when doc is not
 * such a report (wrong schema, a field missing or of the wrong type, a
 * negative count), with the field's path and the fault in err
 * ("requests[1].timings.http_req_latency.p95: missing"); ST_INVALID for a
 * NULL doc or out. err may be NULL; it is always NUL-terminated when
 * errlen > 0. Any thread. */
MUST_CHECK int loadreport_parse(const struct json_t *doc,
                                struct loadreport **out, char *err,
                                size_t errlen);
/* Releases r; NULL does nothing. */
void loadreport_free(struct loadreport *r);

/* The renderers below take the document, read it as loadreport_parse does
 * (same returns and err), and append to out (a buffer without a cap) only
 * on success. Any thread. */

/* The end-of-test summary for a terminal, at most 100 columns wide for
 * ordinary names: run, iterations (with a warning when any were dropped),
 * thresholds, checks, then per step and request counts, status codes,
 * latency and duration statistics and the latency distribution. color adds
 * ANSI colors. */
MUST_CHECK int loadreport_text(const struct json_t *report, struct buf *out,
                               bool color, char *err, size_t errlen);

/* JUnit XML: one testsuite named after the workflow, one testcase per
 * threshold (a <failure> with the observed value when it failed) and a
 * testcase "run" with an <error> when the run was aborted or errored. */
MUST_CHECK int loadreport_junit(const struct json_t *report, struct buf *out,
                                char *err, size_t errlen);

/* One HTML page that needs nothing else (no network): the document
 * embedded, charts over the series drawn by inline JavaScript, tables
 * rendered here. */
MUST_CHECK int loadreport_html(const struct json_t *report, struct buf *out,
                               char *err, size_t errlen);

/* Value formatting shared with loaddiff, each into out (size n, NUL-
 * terminated): a duration in ms with a unit that fits ("812µs", "1.50ms",
 * "12.1s", "2m05s"); a fraction as a percentage with two decimals that
 * shows "<0.01%" and ">99.99%" rather than rounding to 0 or 100. */
void loadreport_fmt_ms(char *out, size_t n, double ms);
void loadreport_fmt_pct(char *out, size_t n, double fraction);
/* The executor's type and options as short phrases for a summary
 * ("constant-arrival-rate", "500 iterations/s", "max 200 VUs", "30s",
 * "graceful stop 30s", "graceful ramp-down 10s"), each NUL-terminated (cut
 * if need be) in parts. Returns how many were written. */
#define LOADREPORT_PART_MAX 128
#define LOADREPORT_EXECUTOR_PARTS 9
size_t loadreport_executor_parts(const struct loadreport_executor *e,
                                 char (*parts)[LOADREPORT_PART_MAX]);
/* A threshold's observed value in the unit of its metric and aggregation:
 * durations as loadreport_fmt_ms, rates of failures or checks as a
 * percentage, a counter's rate per second ("12.50/s"), counts and gauges
 * as numbers. */
void loadreport_fmt_observed(char *out, size_t n,
                             const struct loadreport_threshold *th);

#endif
