/* Reading a handoff.load.report/1 document into struct loadreport. The
 * document comes from files and other processes: every field is checked
 * before use and a fault is reported with the path of the field, so the
 * renderers never see a missing or mistyped value. */
#include "loadreport.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonr.h"
#include "mem.h"

static const char *const timing_names[LOADREPORT_TIMING_COUNT] = {
    "http_req_duration",   "http_req_latency",         "http_req_blocked",
    "http_req_connecting", "http_req_tls_handshaking", "http_req_sending",
    "http_req_waiting",    "http_req_receiving",
};

const char *loadreport_timing_name(enum loadreport_timing t)
{
    if ((unsigned)t >= LOADREPORT_TIMING_COUNT) {
        return "";
    }
    return timing_names[t];
}

/* An array's elements: zeroed room for n of size bytes, or NULL. */
static void *items(size_t n, size_t size)
{
    return n ? mem_calloc(n, size) : NULL;
}

static void parse_stats(struct jsonr *p, const json_t *obj, const char *key,
                        bool required, struct loadreport_stats *s,
                        bool *present)
{
    const json_t *o = jsonr_obj(p, obj, key, required);
    size_t mark;

    memset(s, 0, sizeof(*s));
    if (present) {
        *present = o != NULL;
    }
    if (!o) {
        return;
    }
    mark = jsonr_push(p, ".%s", key);
    s->count = jsonr_count(p, o, "count", true);
    s->min = jsonr_num(p, o, "min", true, true);
    s->mean = jsonr_num(p, o, "mean", true, true);
    s->max = jsonr_num(p, o, "max", true, true);
    s->p10 = jsonr_num(p, o, "p10", true, true);
    s->p25 = jsonr_num(p, o, "p25", true, true);
    s->p50 = jsonr_num(p, o, "p50", true, true);
    s->p75 = jsonr_num(p, o, "p75", true, true);
    s->p90 = jsonr_num(p, o, "p90", true, true);
    s->p95 = jsonr_num(p, o, "p95", true, true);
    s->p99 = jsonr_num(p, o, "p99", true, true);
    s->p99_9 = jsonr_num(p, o, "p99_9", true, true);
    s->p100 = jsonr_num(p, o, "p100", true, true);
    jsonr_pop(p, mark);
}

static bool is_status_code(const char *s)
{
    size_t n = strspn(s, "0123456789");

    return n >= 1 && n <= 3 && s[n] == '\0';
}

static int count_by_code(const void *a, const void *b)
{
    const struct loadreport_count *x = a;
    const struct loadreport_count *y = b;

    return atoi(x->key) - atoi(y->key);
}

/* An object of counts ("status", "status_classes", "errors"). codes: the
 * keys are HTTP status codes, sorted numerically. */
static void parse_counts(struct jsonr *p, const json_t *obj, const char *key,
                         bool required, bool codes,
                         struct loadreport_count **out, size_t *n_out)
{
    const json_t *o = jsonr_obj(p, obj, key, required);
    const char *k;
    json_t *v;
    size_t mark;
    size_t n = 0;

    *out = NULL;
    *n_out = 0;
    if (!o || json_object_size(o) == 0) {
        return;
    }
    *out = items(json_object_size(o), sizeof(**out));
    mark = jsonr_push(p, ".%s", key);
    json_object_foreach((json_t *)o, k, v)
    {
        if (codes && !is_status_code(k)) {
            jsonr_fault(p, NULL, "key \"%.20s\" is not a status code", k);
            break;
        }
        (*out)[n].key = k;
        (*out)[n].n = jsonr_count(p, o, k, true);
        n++;
    }
    jsonr_pop(p, mark);
    *n_out = n;
    if (codes && n > 1) {
        qsort(*out, n, sizeof(**out), count_by_code);
    }
}

static void parse_request(struct jsonr *p, const json_t *o,
                          struct loadreport_request *r)
{
    const json_t *timings;
    const json_t *arr;
    size_t mark;

    r->step = jsonr_str(p, o, "step", true);
    r->name = jsonr_str(p, o, "name", true);
    r->count = jsonr_count(p, o, "count", true);
    r->failed = jsonr_count(p, o, "failed", true);
    r->rate = jsonr_num(p, o, "rate", true, true);
    r->bytes_sent = jsonr_count(p, o, "bytes_sent", false);
    r->bytes_received = jsonr_count(p, o, "bytes_received", false);
    parse_counts(p, o, "status", true, true, &r->status, &r->n_status);
    parse_counts(p, o, "status_classes", true, false, &r->classes,
                 &r->n_classes);
    parse_counts(p, o, "errors", false, false, &r->errors, &r->n_errors);
    timings = jsonr_obj(p, o, "timings", true);
    if (timings) {
        mark = jsonr_push(p, ".timings");
        for (int t = 0; t < LOADREPORT_TIMING_COUNT; t++) {
            /* Only the two durations every view shows are required; the
             * breakdown is extra detail. */
            parse_stats(p, timings, timing_names[t],
                        t == LOADREPORT_DURATION || t == LOADREPORT_LATENCY,
                        &r->timings[t], &r->has_timing[t]);
        }
        jsonr_pop(p, mark);
    }
    arr = jsonr_arr(p, o, "buckets", true, &r->n_buckets);
    r->buckets = items(r->n_buckets, sizeof(*r->buckets));
    for (size_t i = 0; i < r->n_buckets && !p->failed; i++) {
        struct loadreport_bucket *b = &r->buckets[i];
        const json_t *e = jsonr_elem(p, arr, "buckets", i, &mark);

        if (e) {
            b->low_ms = jsonr_num(p, e, "low", true, true);
            b->high_ms = jsonr_num(p, e, "high", true, true);
            b->count = jsonr_count(p, e, "count", true);
            if (b->high_ms < b->low_ms) {
                jsonr_fault(p, "high", "below low");
            }
        }
        jsonr_pop(p, mark);
    }
}

static void request_cleanup(struct loadreport_request *r)
{
    free(r->status);
    free(r->classes);
    free(r->errors);
    free(r->buckets);
}

static void parse_executor(struct jsonr *p, const json_t *doc,
                           struct loadreport_executor *e)
{
    const json_t *o = jsonr_obj(p, doc, "executor", true);
    const json_t *arr;
    size_t mark;

    e->type = "";
    if (!o) {
        return;
    }
    mark = jsonr_push(p, ".executor");
    /* Each executor has options of its own (docs/load.md, "Executors"):
     * only the type is always there. */
    e->type = jsonr_str(p, o, "type", true);
    e->vus = jsonr_count(p, o, "vus", false);
    e->max_vus = jsonr_count(p, o, "max_vus", false);
    e->pre_allocated_vus = jsonr_count(p, o, "pre_allocated_vus", false);
    e->rate = jsonr_num(p, o, "rate", false, true);
    e->time_unit_ms = jsonr_num(p, o, "time_unit_ms", false, true);
    e->iterations = jsonr_count(p, o, "iterations", false);
    e->duration_ms = jsonr_num(p, o, "duration_ms", false, true);
    e->graceful_stop_ms = jsonr_num(p, o, "graceful_stop_ms", false, true);
    e->graceful_ramp_down_ms =
        jsonr_num(p, o, "graceful_ramp_down_ms", false, true);
    arr = jsonr_arr(p, o, "stages", false, &e->n_stages);
    e->stages = items(e->n_stages, sizeof(*e->stages));
    for (size_t i = 0; i < e->n_stages && !p->failed; i++) {
        size_t em;
        const json_t *s = jsonr_elem(p, arr, "stages", i, &em);

        if (s) {
            e->stages[i].duration_ms =
                jsonr_num(p, s, "duration_ms", true, true);
            e->stages[i].target = jsonr_num(p, s, "target", true, true);
        }
        jsonr_pop(p, em);
    }
    jsonr_pop(p, mark);
}

static void parse_iterations(struct jsonr *p, const json_t *doc,
                             struct loadreport *r)
{
    const json_t *o = jsonr_obj(p, doc, "iterations", true);
    size_t mark;

    if (!o) {
        return;
    }
    mark = jsonr_push(p, ".iterations");
    r->completed = jsonr_count(p, o, "completed", true);
    r->interrupted = jsonr_count(p, o, "interrupted", true);
    r->dropped = jsonr_count(p, o, "dropped", true);
    r->iterations_rate = jsonr_num(p, o, "rate", true, true);
    parse_stats(p, o, "duration", true, &r->iteration_duration, NULL);
    jsonr_pop(p, mark);
}

static void parse_point(struct jsonr *p, const json_t *e,
                        struct loadreport_point *pt)
{
    pt->t_s = jsonr_num(p, e, "t", true, true);
    pt->vus = jsonr_count(p, e, "vus", true);
    pt->iterations = jsonr_count(p, e, "iterations", true);
    pt->dropped = jsonr_count(p, e, "dropped", true);
    pt->requests = jsonr_count(p, e, "requests", true);
    pt->failed = jsonr_count(p, e, "failed", true);
    pt->rps = jsonr_num(p, e, "rps", true, true);
    pt->checks_passed = jsonr_count(p, e, "checks_passed", true);
    pt->checks_failed = jsonr_count(p, e, "checks_failed", true);
    pt->p50_ms = jsonr_num(p, e, "p50", true, true);
    pt->p95_ms = jsonr_num(p, e, "p95", true, true);
    pt->p99_ms = jsonr_num(p, e, "p99", true, true);
    pt->max_ms = jsonr_num(p, e, "max", true, true);
}

static void parse_lists(struct jsonr *p, const json_t *doc,
                        struct loadreport *r)
{
    const json_t *arr;
    const json_t *e;
    size_t mark;

    arr = jsonr_arr(p, doc, "checks", true, &r->n_checks);
    r->checks = items(r->n_checks, sizeof(*r->checks));
    for (size_t i = 0; i < r->n_checks && !p->failed; i++) {
        if ((e = jsonr_elem(p, arr, "checks", i, &mark))) {
            r->checks[i].name = jsonr_str(p, e, "name", true);
            r->checks[i].passes = jsonr_count(p, e, "passes", true);
            r->checks[i].fails = jsonr_count(p, e, "fails", true);
        }
        jsonr_pop(p, mark);
    }
    arr = jsonr_arr(p, doc, "steps", true, &r->n_steps);
    r->steps = items(r->n_steps, sizeof(*r->steps));
    for (size_t i = 0; i < r->n_steps && !p->failed; i++) {
        if ((e = jsonr_elem(p, arr, "steps", i, &mark))) {
            r->steps[i].name = jsonr_str(p, e, "name", true);
            parse_stats(p, e, "duration", true, &r->steps[i].duration, NULL);
        }
        jsonr_pop(p, mark);
    }
    arr = jsonr_arr(p, doc, "requests", true, &r->n_requests);
    r->requests = items(r->n_requests, sizeof(*r->requests));
    for (size_t i = 0; i < r->n_requests && !p->failed; i++) {
        if ((e = jsonr_elem(p, arr, "requests", i, &mark))) {
            parse_request(p, e, &r->requests[i]);
        }
        jsonr_pop(p, mark);
    }
    if ((e = jsonr_obj(p, doc, "totals", true)) && !p->failed) {
        mark = jsonr_push(p, ".totals");
        parse_request(p, e, &r->totals);
        jsonr_pop(p, mark);
    }
    arr = jsonr_arr(p, doc, "thresholds", true, &r->n_thresholds);
    r->thresholds = items(r->n_thresholds, sizeof(*r->thresholds));
    for (size_t i = 0; i < r->n_thresholds && !p->failed; i++) {
        struct loadreport_threshold *t = &r->thresholds[i];

        if ((e = jsonr_elem(p, arr, "thresholds", i, &mark))) {
            t->source = jsonr_str(p, e, "source", true);
            t->metric = jsonr_str(p, e, "metric", true);
            t->condition = jsonr_str(p, e, "condition", true);
            t->observed = jsonr_num(p, e, "observed", true, false);
            t->passed = jsonr_bool(p, e, "passed");
            t->abort_on_fail = jsonr_bool(p, e, "abort_on_fail");
        }
        jsonr_pop(p, mark);
    }
    arr = jsonr_arr(p, doc, "series", true, &r->n_series);
    r->series = items(r->n_series, sizeof(*r->series));
    for (size_t i = 0; i < r->n_series && !p->failed; i++) {
        if ((e = jsonr_elem(p, arr, "series", i, &mark))) {
            parse_point(p, e, &r->series[i]);
        }
        jsonr_pop(p, mark);
    }
}

static bool is_result(const char *s)
{
    return strcmp(s, "passed") == 0 || strcmp(s, "failed") == 0 ||
           strcmp(s, "aborted") == 0 || strcmp(s, "error") == 0;
}

int loadreport_parse(const struct json_t *doc, struct loadreport **out,
                     char *err, size_t errlen)
{
    struct jsonr p;
    struct loadreport *r;
    const char *schema;
    const json_t *vus;

    jsonr_init(&p, err, errlen);
    if (!doc || !out) {
        jsonr_fault(&p, NULL, "missing");
        return ST_INVALID;
    }
    if (!json_is_object(doc)) {
        jsonr_fault(&p, NULL, "not a JSON object");
        return ST_PROTOCOL;
    }
    schema = jsonr_str(&p, doc, "schema", true);
    if (!p.failed && strcmp(schema, LOADREPORT_SCHEMA) != 0) {
        jsonr_fault(&p, "schema", "\"%.60s\" is not " LOADREPORT_SCHEMA,
                    schema);
    }
    if (p.failed) {
        return ST_PROTOCOL;
    }

    r = mem_zalloc(sizeof(*r));
    r->id = jsonr_str(&p, doc, "id", true);
    r->suite = jsonr_str(&p, doc, "suite", true);
    r->workflow = jsonr_str(&p, doc, "workflow", true);
    r->started_at = jsonr_str(&p, doc, "started_at", true);
    r->ended_at = jsonr_str(&p, doc, "ended_at", false);
    r->duration_ms = jsonr_num(&p, doc, "duration_ms", true, true);
    r->result = jsonr_str(&p, doc, "result", true);
    if (!p.failed && !is_result(r->result)) {
        jsonr_fault(&p, "result",
                    "\"%.20s\" is not passed, failed, aborted or error",
                    r->result);
    }
    r->abort_reason = jsonr_str(&p, doc, "abort_reason", false);
    parse_executor(&p, doc, &r->executor);
    r->shards = jsonr_count(&p, doc, "shards", false);
    parse_iterations(&p, doc, r);
    if ((vus = jsonr_obj(&p, doc, "vus", false))) {
        size_t mark = jsonr_push(&p, ".vus");

        r->vus_max = jsonr_count(&p, vus, "max", true);
        jsonr_pop(&p, mark);
    }
    if (!p.failed) {
        parse_lists(&p, doc, r);
    }
    if (p.failed) {
        loadreport_free(r);
        return ST_PROTOCOL;
    }
    *out = r;
    return ST_OK;
}

void loadreport_free(struct loadreport *r)
{
    if (!r) {
        return;
    }
    free(r->executor.stages);
    free(r->checks);
    free(r->steps);
    for (size_t i = 0; i < r->n_requests; i++) {
        request_cleanup(&r->requests[i]);
    }
    free(r->requests);
    request_cleanup(&r->totals);
    free(r->thresholds);
    free(r->series);
    free(r);
}

void loadreport_fmt_ms(char *out, size_t n, double ms)
{
    double s = ms / 1000;

    if (!(ms > 0)) {
        snprintf(out, n, "0ms");
    } else if (ms < 0.001) {
        snprintf(out, n, "%.2fµs", ms * 1000);
    } else if (ms < 0.9995) {
        snprintf(out, n, "%.0fµs", ms * 1000);
    } else if (ms < 9.995) {
        snprintf(out, n, "%.2fms", ms);
    } else if (ms < 99.95) {
        snprintf(out, n, "%.1fms", ms);
    } else if (ms < 999.5) {
        snprintf(out, n, "%.0fms", ms);
    } else if (s < 9.995) {
        snprintf(out, n, "%.2fs", s);
    } else if (s < 59.95) {
        snprintf(out, n, "%.1fs", s);
    } else if (s < 3600) {
        long t = lround(s);

        snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    } else {
        long m = lround(s / 60);

        snprintf(out, n, "%ldh%02ldm", m / 60, m % 60);
    }
}

void loadreport_fmt_pct(char *out, size_t n, double fraction)
{
    double pct = fraction * 100;

    if (pct > 0 && pct < 0.005) {
        snprintf(out, n, "<0.01%%");
    } else if (pct < 100 && pct >= 99.995) {
        snprintf(out, n, ">99.99%%");
    } else {
        snprintf(out, n, "%.2f%%", pct);
    }
}

/* k6's rule: a threshold on a Rate metric (http_req_failed, checks) is a
 * share, on a counter a per-second rate; duration aggregations keep ms. */
void loadreport_fmt_observed(char *out, size_t n,
                             const struct loadreport_threshold *th)
{
    static const char *const durations[] = {
        "http_req_duration",   "http_req_latency",         "http_req_blocked",
        "http_req_connecting", "http_req_tls_handshaking", "http_req_sending",
        "http_req_waiting",    "http_req_receiving",       "iteration_duration",
        "step_duration",
    };
    size_t mlen = strcspn(th->metric, "{ ");
    size_t alen = strcspn(th->condition, "<>=! ");
    bool is_duration = false;
    bool is_rate = alen == 4 && strncmp(th->condition, "rate", 4) == 0;
    bool is_count = (alen == 5 && strncmp(th->condition, "count", 5) == 0) ||
                    (alen == 5 && strncmp(th->condition, "value", 5) == 0);

    for (size_t i = 0; i < sizeof(durations) / sizeof(*durations); i++) {
        is_duration =
            is_duration || (strlen(durations[i]) == mlen &&
                            strncmp(th->metric, durations[i], mlen) == 0);
    }
    if (is_rate &&
        ((mlen == 15 && strncmp(th->metric, "http_req_failed", 15) == 0) ||
         (mlen == 6 && strncmp(th->metric, "checks", 6) == 0))) {
        loadreport_fmt_pct(out, n, th->observed);
    } else if (is_rate) {
        snprintf(out, n, "%.2f/s", th->observed);
    } else if (is_duration && !is_count) {
        loadreport_fmt_ms(out, n, th->observed);
    } else {
        snprintf(out, n, "%g", th->observed);
    }
}

/* An executor option's duration as written in a test: "30s", "1m", else
 * as any duration. */
static void fmt_config_ms(char *out, size_t n, double ms)
{
    if (ms >= 60000 && fmod(ms, 60000) == 0) {
        snprintf(out, n, "%.0fm", ms / 60000);
    } else if (ms >= 1000 && fmod(ms, 1000) == 0) {
        snprintf(out, n, "%.0fs", ms / 1000);
    } else {
        loadreport_fmt_ms(out, n, ms);
    }
}

size_t loadreport_executor_parts(const struct loadreport_executor *e,
                                 char (*parts)[LOADREPORT_PART_MAX])
{
    size_t n = 0;
    size_t len;
    char v[32];

    snprintf(parts[n++], LOADREPORT_PART_MAX, "%s", e->type);
    if (e->rate > 0) {
        if (e->time_unit_ms == 0 || e->time_unit_ms == 1000) {
            snprintf(parts[n++], LOADREPORT_PART_MAX, "%g iterations/s",
                     e->rate);
        } else {
            fmt_config_ms(v, sizeof(v), e->time_unit_ms);
            snprintf(parts[n++], LOADREPORT_PART_MAX, "%g iterations/%s",
                     e->rate, v);
        }
    }
    if (e->vus) {
        snprintf(parts[n++], LOADREPORT_PART_MAX, "%llu VUs",
                 (unsigned long long)e->vus);
    }
    if (e->pre_allocated_vus) {
        snprintf(parts[n++], LOADREPORT_PART_MAX, "%llu pre-allocated VUs",
                 (unsigned long long)e->pre_allocated_vus);
    }
    if (e->max_vus) {
        snprintf(parts[n++], LOADREPORT_PART_MAX, "max %llu VUs",
                 (unsigned long long)e->max_vus);
    }
    if (e->iterations) {
        snprintf(parts[n++], LOADREPORT_PART_MAX, "%llu iterations",
                 (unsigned long long)e->iterations);
    }
    if (e->n_stages) {
        char *s = parts[n++];

        snprintf(s, LOADREPORT_PART_MAX, "stages ");
        for (size_t i = 0; i < e->n_stages; i++) {
            fmt_config_ms(v, sizeof(v), e->stages[i].duration_ms);
            len = strlen(s);
            /* Room for this stage and a ",..." after it. */
            if (len + strlen(v) + 32 >= LOADREPORT_PART_MAX) {
                snprintf(s + len, LOADREPORT_PART_MAX - len, ",...");
                break;
            }
            snprintf(s + len, LOADREPORT_PART_MAX - len, "%s%s:%g",
                     i ? "," : "", v, e->stages[i].target);
        }
    } else if (e->duration_ms > 0) {
        fmt_config_ms(parts[n++], LOADREPORT_PART_MAX, e->duration_ms);
    }
    if (e->graceful_stop_ms > 0) {
        fmt_config_ms(v, sizeof(v), e->graceful_stop_ms);
        snprintf(parts[n++], LOADREPORT_PART_MAX, "graceful stop %s", v);
    }
    if (e->graceful_ramp_down_ms > 0) {
        fmt_config_ms(v, sizeof(v), e->graceful_ramp_down_ms);
        snprintf(parts[n++], LOADREPORT_PART_MAX, "graceful ramp-down %s", v);
    }
    return n;
}
