/* loadjson: the parts of the load report (docs/load.md, schema
 * handoff.load.report/1) built from merged metrics, shared by the local run
 * (loadrun.c) and the controller, which builds a distributed run's report
 * from its shards' merged snapshots. */
#ifndef HANDOFF_LOADJSON_H
#define HANDOFF_LOADJSON_H

#include <stdint.h>

#include <jansson.h>

#include "hist.h"
#include "httpc.h"
#include "snap.h"
#include "threshold.h"

/* STATS of h (durations in ms). New reference. */
json_t *loadjson_stats(const struct hist *h);
/* REQUEST of s over a run of elapsed_ns. New reference. */
json_t *loadjson_request(const struct httpc_stats *s, int64_t elapsed_ns);
/* Sets "iterations", "vus", "checks", "steps", "requests" and "totals" of
 * report r from the run's merged metrics s. */
void loadjson_body(json_t *r, const struct snap *s, int64_t elapsed_ns,
                   int vus_max);
/* One entry of "thresholds": t evaluated on s. New reference; *passed says
 * the outcome. */
json_t *loadjson_threshold(const struct threshold *t, const struct snap *s,
                           int64_t elapsed_ns, bool *passed);
/* A POINT of "series" from one second's merged metrics: t_ns since the
 * start at the interval's end, interval_ns its length. New reference. */
json_t *loadjson_point(const struct snap *second, int64_t t_ns,
                       int64_t interval_ns);
/* RFC 3339 UTC text of a Unix time, as the report writes times. */
json_t *loadjson_time(int64_t unix_ns);

#endif
