/* threshold: k6-style pass/fail criteria of a load run, e.g.
 * "http_req_duration{name:login}: p(95)<300ms" or
 * "http_req_failed: rate<0.01 abort_on_fail=10s", parsed once and evaluated
 * on the run's merged metrics (a struct snap) at the end, and every second
 * for those that abort on failure. Grammar and metrics: docs/load.md. */
#ifndef HANDOFF_THRESHOLD_H
#define HANDOFF_THRESHOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snap.h"
#include "status.h"

/* Longest text threshold_parse accepts, in bytes. */
#define THRESHOLD_TEXT_MAX 1024
/* Room for any message threshold_parse writes; shorter buffers get it cut
 * (always NUL-terminated). */
#define THRESHOLD_ERR_SIZE 512

/* A parsed threshold. Immutable once made: any thread may read and
 * evaluate it concurrently. */
struct threshold;

/* Parses one threshold. Returns 0 with *out owned by the caller
 * (threshold_free), or ST_INVALID with *out untouched, nothing left
 * allocated, and a one-line message naming what is wrong and where (the
 * column counts characters from 1) written to err (at most errlen bytes,
 * NUL-terminated; err may be NULL when errlen is 0), e.g.
 * `threshold "http_req_duration: p(95)<3xx": bad value "3xx" at column
 * 26: unknown unit "xx" (ns, us, µs, ms, s, m, h)`. text is untrusted: any
 * bytes are handled; invalid UTF-8, control characters other than spaces
 * and texts longer than THRESHOLD_TEXT_MAX are refused. Any thread. */
MUST_CHECK int threshold_parse(const char *text, struct threshold **out,
                               char *err, size_t errlen);
/* Releases t; NULL does nothing. */
void threshold_free(struct threshold *t);

/* The text as given, and the metric with its tags and the condition in
 * a canonical form (spaces dropped, tags in the order given, values quoted
 * only when they must be): "http_req_duration{name:login}" and
 * "p(95)<300ms" for "http_req_duration{ name: login }: p(95) < 300 ms".
 * Borrowed from t. */
const char *threshold_source(const struct threshold *t);
const char *threshold_metric(const struct threshold *t);
const char *threshold_condition(const struct threshold *t);
bool threshold_abort_on_fail(const struct threshold *t);
/* How long after the start abort_on_fail waits before it applies; 0
 * without =DELAY. */
int64_t threshold_abort_delay_ns(const struct threshold *t);

/* The outcome of one evaluation. observed is in the metric's display
 * unit: milliseconds for durations, a fraction 0..1 for rates, per second
 * for rates of counters, the count for counts, the value for gauges. */
struct threshold_eval {
    bool passed;
    bool has_data; /* false when no sample matched (durations, rates) or
                      elapsed_ns <= 0 (a counter's rate): such a threshold
                      passes, observed 0. Counts and gauges always have
                      data: count 0 is compared as 0 */
    double observed;
};

/* Evaluates t on the merged metrics m of a run that has lasted elapsed_ns
 * (for counter rates). Percentiles come from the merge of every matching
 * histogram, never from averaging. Never fails. m is borrowed and must not
 * change during the call; the call may allocate a histogram briefly when
 * more than one matches. Any thread. */
struct threshold_eval threshold_evaluate(const struct threshold *t,
                                         const struct snap *m,
                                         int64_t elapsed_ns);

#endif
