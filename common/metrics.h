/* metrics: Prometheus counters, gauges and histograms with fixed label
 * names, updated from any thread and rendered in the text exposition
 * format 0.0.4 for /metrics. Conventions (base units, _total, buckets):
 * docs/metrics.md. */
#ifndef HANDOFF_METRICS_H
#define HANDOFF_METRICS_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

/* The Content-Type of what metrics_render writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Labels a family may have. */
#define METRICS_MAX_LABELS 8
/* Default cap on the series (label value combinations) of one family. */
#define METRICS_MAX_SERIES_DEFAULT 1000
/* Longest label value kept, in bytes; longer ones are cut. */
#define METRICS_MAX_VALUE_LEN 256
/* Bucket bounds a histogram may have (+Inf comes on top). */
#define METRICS_MAX_BUCKETS 64

/* A registry: the families one process exposes. */
struct metrics;
/* One metric family: a name, a type, help text, label names and the
 * series (one per combination of label values) created as they are used.
 * Families live as long as their registry. */
struct metrics_family;
/* What a collect callback emits its series into (metrics_gauge_collect). */
struct metrics_sink;

/* Makes an empty registry. Any thread. */
struct metrics *metrics_new(void);
/* Frees the registry and its families. No other thread may use them any
 * more. NULL does nothing. */
void metrics_free(struct metrics *m);

/* Registration. Any thread, typically at start-up. Each returns 0 and *out,
 * ST_INVALID for a bad name, help, labels or buckets (logged), or
 * ST_CONFLICT when the name, or a name its samples use, is taken (logged).
 *
 * name: [a-z_][a-z0-9_]*, counters ending in _total and nothing else
 * ending in _total; histograms' own samples add _bucket, _sum and _count,
 * so only histograms may end in those. help: one line of text, required.
 * labels: n_labels (0..METRICS_MAX_LABELS) distinct names [a-z_][a-z0-9_]*,
 * not starting with "__", no "le" in a histogram; copied. */

/* A counter: only goes up (metrics_inc). */
MUST_CHECK int metrics_counter(struct metrics *m, const char *name,
                               const char *help, size_t n_labels,
                               const char *const labels[],
                               struct metrics_family **out);
/* A gauge: set, raised and lowered (metrics_set, metrics_add). */
MUST_CHECK int metrics_gauge(struct metrics *m, const char *name,
                             const char *help, size_t n_labels,
                             const char *const labels[],
                             struct metrics_family **out);
/* A histogram with n_bounds (1..METRICS_MAX_BUCKETS) finite, strictly
 * increasing upper bounds, in the base unit (seconds, bytes); a +Inf bucket
 * is added. bounds is copied. */
MUST_CHECK int metrics_histogram(struct metrics *m, const char *name,
                                 const char *help, size_t n_labels,
                                 const char *const labels[], size_t n_bounds,
                                 const double bounds[],
                                 struct metrics_family **out);
/* A gauge read at render time: fn(arg) gives its value (queue depth,
 * connected workers). fn runs on the thread calling metrics_render, with no
 * lock of the registry held (it may call metrics_* functions), and must not
 * block. */
MUST_CHECK int metrics_gauge_func(struct metrics *m, const char *name,
                                  const char *help, double (*fn)(void *arg),
                                  void *arg);
/* A labelled gauge read at render time: collect(arg, sink) calls
 * metrics_sink_put once per series. Same rules as metrics_gauge_func; the
 * series cap applies. */
MUST_CHECK int
metrics_gauge_collect(struct metrics *m, const char *name, const char *help,
                      size_t n_labels, const char *const labels[],
                      void (*collect)(void *arg, struct metrics_sink *sink),
                      void *arg);
/* Emits one series from a collect callback: values as for metrics_set. */
void metrics_sink_put(struct metrics_sink *sink, size_t n_values,
                      const char *const values[], double v);

/* Sets the cap on f's series (default METRICS_MAX_SERIES_DEFAULT, at least
 * 1). A use that would create a series beyond it is dropped, and logged
 * once per family, so that label values from outside cannot grow memory
 * without bound. Any thread. */
void metrics_set_max_series(struct metrics_family *f, size_t max);

/* Updates. Any thread; they never fail and never block for long (one mutex
 * per family). values holds n_values label values in the order of the
 * family's label names; n_values must equal their number (checked by
 * assert: a mismatch is the caller's bug). A value is copied when its
 * series is created, cut to METRICS_MAX_VALUE_LEN bytes, invalid UTF-8
 * replaced; NULL counts as "". The series is created on first use, at 0. */

/* Adds delta to a counter. A negative or NaN delta is ignored (and logged
 * once per family). */
void metrics_inc(struct metrics_family *f, size_t n_values,
                 const char *const values[], double delta);
/* Sets a gauge to v. */
void metrics_set(struct metrics_family *f, size_t n_values,
                 const char *const values[], double v);
/* Adds delta (which may be negative) to a gauge. */
void metrics_add(struct metrics_family *f, size_t n_values,
                 const char *const values[], double delta);
/* Records one observation v (in the family's base unit) in a histogram;
 * NaN is ignored. */
void metrics_observe(struct metrics_family *f, size_t n_values,
                     const char *const values[], double v);

/* Appends every family with at least one series to out (a buffer without
 * a cap), in the text exposition format 0.0.4: families sorted by name,
 * series by label values, "# HELP" and "# TYPE" lines, histograms as
 * cumulative _bucket{le="..."} series ending at le="+Inf", then _sum and
 * _count. Any thread. */
void metrics_render(struct metrics *m, struct buf *out);

/* Appends v the way the exposition format wants it: integers (below 1e15)
 * without exponent or fraction, "+Inf", "-Inf", "NaN", other values in the
 * shortest form that reads back exactly. */
void metrics_format_value(struct buf *out, double v);

#endif
