/* loadreq: the load section of a run request (see loadreq.h). */
#include "loadreq.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"
#include "threshold.h"

static const char *const known[] = {
    "workflow",     "executor",   "vus",           "duration",
    "rate",         "time_unit",  "stages",        "pre_allocated_vus",
    "max_vus",      "iterations", "graceful_stop", "graceful_ramp_down",
    "max_duration", "thresholds", "shards",
};

static const char *const executors[] = {
    "constant-vus",         "ramping-vus",       "constant-arrival-rate",
    "ramping-arrival-rate", "per-vu-iterations", "shared-iterations",
};

static bool is_name(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= 128;
}

/* A whole number min..max; absent or null leaves *out. */
static int get_num(json_t *o, const char *key, double min, double max,
                   bool integer, double *out, struct runreq_error *err)
{
    json_t *v = json_object_get(o, key);
    double d;

    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_number(v)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"load.%s\": want a number", key);
    }
    d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max || (integer && d != floor(d))) {
        return runreq_fail(err, "invalid_argument",
                           "field \"load.%s\": want %s from %g to %g", key,
                           integer ? "a whole number" : "a number", min, max);
    }
    *out = d;
    return ST_OK;
}

/* A Go-style duration string; absent or null leaves *out_ms. */
static int get_dur(json_t *o, const char *key, int64_t min_ms, int64_t *out_ms,
                   struct runreq_error *err)
{
    json_t *v = json_object_get(o, key);
    int64_t ns;

    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_string(v) ||
        clock_parse_duration(json_string_value(v), &ns) != ST_OK || ns < 0 ||
        ns > INT64_C(30) * 24 * 3600 * CLOCK_NS_PER_S) {
        return runreq_fail(err, "invalid_argument",
                           "field \"load.%s\": not a duration (\"30s\", "
                           "\"1m30s\") of at most 720h",
                           key);
    }
    if (ns / CLOCK_NS_PER_MS < min_ms) {
        return runreq_fail(err, "invalid_argument",
                           "field \"load.%s\": must be at least %" PRId64 "ms",
                           key, min_ms);
    }
    *out_ms = ns / CLOCK_NS_PER_MS;
    return ST_OK;
}

static int get_stages(json_t *o, struct wire_load *l, struct runreq_error *err)
{
    json_t *v = json_object_get(o, "stages");
    size_t i;
    json_t *st;

    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 ||
        json_array_size(v) > WIRE_LOAD_STAGES_MAX) {
        return runreq_fail(err, "invalid_argument",
                           "field \"load.stages\": want an array of 1 to %d "
                           "{\"duration\": \"30s\", \"target\": 10} objects",
                           WIRE_LOAD_STAGES_MAX);
    }
    l->stages = mem_calloc(json_array_size(v) + 1, sizeof(*l->stages));
    json_array_foreach(v, i, st)
    {
        json_t *d = json_object_get(st, "duration");
        json_t *t = json_object_get(st, "target");
        int64_t ns;

        if (!json_is_object(st) || json_object_size(st) != 2 ||
            !json_is_string(d) || !json_is_number(t) ||
            clock_parse_duration(json_string_value(d), &ns) != ST_OK ||
            ns < CLOCK_NS_PER_MS || !isfinite(json_number_value(t)) ||
            json_number_value(t) < 0 || json_number_value(t) > 1e9) {
            return runreq_fail(err, "invalid_argument",
                               "field \"load.stages[%zu]\": want "
                               "{\"duration\": a duration of 1ms or more, "
                               "\"target\": a number 0..1e9}",
                               i);
        }
        l->stages[i].duration_ms = ns / CLOCK_NS_PER_MS;
        l->stages[i].target = json_number_value(t);
        l->n_stages++;
    }
    return ST_OK;
}

static int get_thresholds(json_t *o, struct wire_load *l,
                          struct runreq_error *err)
{
    json_t *v = json_object_get(o, "thresholds");
    size_t i;
    json_t *t;

    l->thresholds =
        mem_calloc(WIRE_LOAD_THRESHOLDS_MAX + 1, sizeof(*l->thresholds));
    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_array(v) || json_array_size(v) > WIRE_LOAD_THRESHOLDS_MAX) {
        return runreq_fail(err, "invalid_argument",
                           "field \"load.thresholds\": want an array of at "
                           "most %d strings",
                           WIRE_LOAD_THRESHOLDS_MAX);
    }
    json_array_foreach(v, i, t)
    {
        char msg[THRESHOLD_ERR_SIZE];
        struct threshold *th = NULL;

        if (!json_is_string(t) ||
            strlen(json_string_value(t)) != json_string_length(t)) {
            return runreq_fail(err, "invalid_argument",
                               "field \"load.thresholds[%zu]\": want a "
                               "string",
                               i);
        }
        if (threshold_parse(json_string_value(t), &th, msg, sizeof(msg)) !=
            ST_OK) {
            return runreq_fail(err, "invalid_argument",
                               "field \"load.thresholds[%zu]\": %s", i, msg);
        }
        threshold_free(th);
        l->thresholds[l->n_thresholds++] = mem_strdup(json_string_value(t));
    }
    return ST_OK;
}

int loadreq_parse(json_t *v, struct wire_load **out, struct runreq_error *err)
{
    struct wire_load *l;
    const char *key;
    json_t *val;
    json_t *wf;
    json_t *ex;
    double d;
    int rc = ST_INVALID;

    if (!json_is_object(v)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"load\": want an object");
    }
    json_object_foreach(v, key, val)
    {
        bool ok = false;

        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            ok = ok || strcmp(key, known[i]) == 0;
        }
        if (!ok) {
            return runreq_fail(err, "unknown_field",
                               "unknown field \"load.%.100s\"", key);
        }
    }
    wf = json_object_get(v, "workflow");
    if (!json_is_string(wf) || !is_name(json_string_value(wf))) {
        return runreq_fail(err, "invalid_argument",
                           "field \"load.workflow\" is required: a workflow "
                           "name of 1-128 characters of [A-Za-z0-9_.-]");
    }
    ex = json_object_get(v, "executor");
    if (ex && !json_is_null(ex)) {
        bool ok = false;

        for (size_t i = 0;
             json_is_string(ex) && i < sizeof(executors) / sizeof(executors[0]);
             i++) {
            ok = ok || strcmp(json_string_value(ex), executors[i]) == 0;
        }
        if (!ok) {
            return runreq_fail(err, "invalid_argument",
                               "field \"load.executor\": want one of "
                               "constant-vus, ramping-vus, "
                               "constant-arrival-rate, ramping-arrival-rate, "
                               "per-vu-iterations, shared-iterations");
        }
    }
    l = mem_zalloc(sizeof(*l));
    l->workflow = mem_strdup(json_string_value(wf));
    l->executor =
        mem_strdup(ex && json_is_string(ex) ? json_string_value(ex) : "");
    l->phase = WIRE_LOAD_SETUP;
    l->graceful_stop_ms = -1;
    l->graceful_ramp_down_ms = -1;
    d = 0;
    if (get_num(v, "vus", 1, 1e6, true, &d, err)) {
        goto out;
    }
    l->vus = (int32_t)d;
    d = 0;
    if (get_num(v, "rate", 0, 1e9, false, &d, err)) {
        goto out;
    }
    if (json_object_get(v, "rate") && d <= 0) {
        runreq_fail(err, "invalid_argument",
                    "field \"load.rate\": must be above 0");
        goto out;
    }
    l->rate = d;
    d = 0;
    if (get_num(v, "pre_allocated_vus", 0, 1e6, true, &d, err)) {
        goto out;
    }
    l->pre_allocated_vus = (int32_t)d;
    d = 0;
    if (get_num(v, "max_vus", 1, 1e6, true, &d, err)) {
        goto out;
    }
    l->max_vus = (int32_t)d;
    d = 0;
    if (get_num(v, "iterations", 1, 1e15, true, &d, err)) {
        goto out;
    }
    l->iterations = (uint64_t)d;
    d = 0;
    if (get_num(v, "shards", 1, LOADREQ_MAX_SHARDS, true, &d, err)) {
        goto out;
    }
    l->shards = (int32_t)d;
    if (get_dur(v, "duration", 1, &l->duration_ms, err) ||
        get_dur(v, "time_unit", 1, &l->time_unit_ms, err) ||
        get_dur(v, "graceful_stop", 0, &l->graceful_stop_ms, err) ||
        get_dur(v, "graceful_ramp_down", 0, &l->graceful_ramp_down_ms, err) ||
        get_dur(v, "max_duration", 1, &l->max_duration_ms, err) ||
        get_stages(v, l, err) || get_thresholds(v, l, err)) {
        goto out;
    }
    /* k6 takes it on ramping-vus only. Without an executor the setup job
     * resolves one (the workflow's, then k6's rules) and refuses it
     * there. */
    if (l->graceful_ramp_down_ms >= 0 && *l->executor &&
        strcmp(l->executor, "ramping-vus") != 0) {
        runreq_fail(err, "invalid_argument",
                    "field \"load.graceful_ramp_down\": only for the "
                    "ramping-vus executor (this one is %s)",
                    l->executor);
        goto out;
    }
    *out = l;
    l = NULL;
    rc = ST_OK;
out:
    wire_load_free(l);
    return rc;
}
