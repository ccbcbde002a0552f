/* Comparing two load reports (handoff.load.report/1): per step and request
 * the change of latency percentiles, rate and error rate, with regressions
 * flagged by the rules of docs/load.md, "Comparing runs". The result is a
 * JSON document of schema handoff.load.diff/1. */
#ifndef HANDOFF_LOADDIFF_H
#define HANDOFF_LOADDIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "status.h"

struct json_t; /* jansson's json_t */

#define LOADDIFF_SCHEMA "handoff.load.diff/1"
#define LOADDIFF_DEFAULT_TOLERANCE 0.10
/* Latency changes smaller than this never count as a regression: below a
 * millisecond run-to-run noise outweighs the relative change. */
#define LOADDIFF_MIN_DELTA_MS 1.0
/* Samples both runs need before their p95 (p99) is compared: with fewer,
 * the percentile is one of the few slowest requests, not a trend. */
#define LOADDIFF_MIN_COUNT_P95 20
#define LOADDIFF_MIN_COUNT_P99 100

/* Compares report a (the baseline) with report b (borrowed). tolerance is
 * relative for latencies and rates (0.10: 10 % worse) and in percentage
 * points for the error rate (0.10: 0.1 points higher); a negative
 * tolerance means LOADDIFF_DEFAULT_TOLERANCE. Returns 0 with *out (a new
 * reference, the caller's to json_decref); ST_PROTOCOL when a or b is not
 * a valid report, err naming which and the field ("b: requests[0].count:
 * missing"); ST_INVALID for NULL arguments or a tolerance that is NaN or
 * 1000 and more. err may be NULL. Any thread. */
MUST_CHECK int loaddiff(const struct json_t *a, const struct json_t *b,
                        double tolerance, struct json_t **out, char *err,
                        size_t errlen);

/* True when diff (a handoff.load.diff/1 document) flags any regression;
 * false for anything else. */
bool loaddiff_has_regression(const struct json_t *diff);

/* Appends diff as text for a terminal to out (a buffer without a cap):
 * the two runs, warnings, then per request the figures of both runs and
 * their change, regressions marked. Returns 0, or ST_PROTOCOL (err names
 * the field) when diff is not a valid handoff.load.diff/1 document, with
 * nothing appended; ST_INVALID for NULL arguments. Any thread. */
MUST_CHECK int loaddiff_text(const struct json_t *diff, struct buf *out,
                             char *err, size_t errlen);

#endif
