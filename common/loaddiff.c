/* Comparing two load reports (see loaddiff.h; the rules and the diff
 * schema are in docs/load.md, "Comparing runs").
 *
 * Only percentiles that both runs measured on enough samples are judged,
 * only changes past both the relative tolerance and an absolute floor
 * count, and the request rate is judged only where it measures the
 * system (closed-model executors): under an arrival-rate executor the
 * test sets the rate, so a change there says nothing about the server. */
#include "loaddiff.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jsonr.h"
#include "loadreport.h"
#include "utf8.h"

struct judge {
    double tolerance;
    bool closed_model; /* both runs' rates measure the system */
    size_t regressions;
};

static bool is_closed_model(const char *type)
{
    return strcmp(type, "constant-vus") == 0 ||
           strcmp(type, "ramping-vus") == 0 ||
           strcmp(type, "per-vu-iterations") == 0 ||
           strcmp(type, "shared-iterations") == 0;
}

static double error_rate(const struct loadreport_request *q)
{
    return q->count ? (double)q->failed / (double)q->count : 0;
}

/* A CHANGE object; a side without a value (added, removed) is null. */
static json_t *change(const double *a, const double *b, bool regression)
{
    json_t *o = json_object();

    json_object_set_new(o, "a", a ? json_real(*a) : json_null());
    json_object_set_new(o, "b", b ? json_real(*b) : json_null());
    json_object_set_new(o, "delta", a && b ? json_real(*b - *a) : json_null());
    json_object_set_new(o, "relative",
                        a && b && *a != 0 ? json_real((*b - *a) / *a)
                                          : json_null());
    json_object_set_new(o, "regression", json_boolean(regression));
    return o;
}

static void reason(json_t *reasons, const char *fmt, ...) MEM_PRINTF(2, 3);

static void reason(json_t *reasons, const char *fmt, ...)
{
    char s[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s, sizeof(s), fmt, ap);
    va_end(ap);
    json_array_append_new(reasons, json_string(s));
}

/* The timing whose percentiles are compared: http_req_latency, unless a
 * run did not record it. */
static enum loadreport_timing timing_of(const struct loadreport_request *a,
                                        const struct loadreport_request *b)
{
    if ((a && a->timings[LOADREPORT_LATENCY].count == 0) ||
        (b && b->timings[LOADREPORT_LATENCY].count == 0)) {
        return LOADREPORT_DURATION;
    }
    return LOADREPORT_LATENCY;
}

/* p95 or p99 of both runs: worse by more than the tolerance and by at
 * least the absolute floor, each run with at least min_count samples. */
static json_t *percentile(struct judge *j, const char *name,
                          const struct loadreport_stats *a,
                          const struct loadreport_stats *b, double va,
                          double vb, uint64_t min_count, json_t *reasons)
{
    bool worse = false;
    char fa[32];
    char fb[32];

    if (a && b) {
        worse = a->count >= min_count && b->count >= min_count &&
                vb - va >= LOADDIFF_MIN_DELTA_MS &&
                vb > va * (1 + j->tolerance);
        loadreport_fmt_ms(fa, sizeof(fa), va);
        loadreport_fmt_ms(fb, sizeof(fb), vb);
        if (worse && va > 0) {
            reason(reasons, "%s +%.1f%% (%s -> %s)", name, (vb - va) / va * 100,
                   fa, fb);
        } else if (worse) {
            reason(reasons, "%s %s -> %s", name, fa, fb);
        }
    }
    return change(a ? &va : NULL, b ? &vb : NULL, worse);
}

static json_t *entry(struct judge *j, const struct loadreport_request *a,
                     const struct loadreport_request *b, bool judge_rate)
{
    const struct loadreport_request *any = a ? a : b;
    enum loadreport_timing tm = timing_of(a, b);
    const struct loadreport_stats *sa = a ? &a->timings[tm] : NULL;
    const struct loadreport_stats *sb = b ? &b->timings[tm] : NULL;
    json_t *o = json_object();
    json_t *reasons = json_array();
    double ca = a ? (double)a->count : 0;
    double cb = b ? (double)b->count : 0;
    double ra = a ? a->rate : 0;
    double rb = b ? b->rate : 0;
    double ea = a ? error_rate(a) : 0;
    double eb = b ? error_rate(b) : 0;
    bool slower = false;
    bool failing = false;
    bool regression;
    char fa[32];
    char fb[32];

    json_object_set_new(o, "step", json_string(any->step));
    json_object_set_new(o, "name", json_string(any->name));
    json_object_set_new(o, "change",
                        json_string(a && b ? "compared"
                                    : a    ? "removed"
                                           : "added"));
    json_object_set_new(o, "metric", json_string(loadreport_timing_name(tm)));
    json_object_set_new(o, "count",
                        change(a ? &ca : NULL, b ? &cb : NULL, false));
    json_object_set_new(
        o, "p50", change(a ? &sa->p50 : NULL, b ? &sb->p50 : NULL, false));
    json_object_set_new(o, "p95",
                        percentile(j, "p95", sa, sb, sa ? sa->p95 : 0,
                                   sb ? sb->p95 : 0, LOADDIFF_MIN_COUNT_P95,
                                   reasons));
    json_object_set_new(o, "p99",
                        percentile(j, "p99", sa, sb, sa ? sa->p99 : 0,
                                   sb ? sb->p99 : 0, LOADDIFF_MIN_COUNT_P99,
                                   reasons));
    if (a && b && judge_rate && ra > 0 && rb < ra * (1 - j->tolerance)) {
        slower = true;
        reason(reasons, "rate %.1f%% (%.1f/s -> %.1f/s)", (rb - ra) / ra * 100,
               ra, rb);
    }
    json_object_set_new(o, "rate",
                        change(a ? &ra : NULL, b ? &rb : NULL, slower));
    if (a && b && eb - ea > j->tolerance / 100) {
        failing = true;
        loadreport_fmt_pct(fa, sizeof(fa), ea);
        loadreport_fmt_pct(fb, sizeof(fb), eb);
        reason(reasons, "error rate +%.2f points (%s -> %s)", (eb - ea) * 100,
               fa, fb);
    }
    json_object_set_new(o, "error_rate",
                        change(a ? &ea : NULL, b ? &eb : NULL, failing));
    regression = json_array_size(reasons) > 0;
    j->regressions += regression;
    json_object_set_new(o, "regression", json_boolean(regression));
    json_object_set_new(o, "reasons", reasons);
    return o;
}

static json_t *run_side(const struct loadreport *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:s}", "id", r->id,
                     "suite", r->suite, "workflow", r->workflow, "started_at",
                     r->started_at, "result", r->result, "duration_ms",
                     r->duration_ms, "executor", r->executor.type);
}

static double dropped_share(const struct loadreport *r)
{
    uint64_t all = r->completed + r->interrupted + r->dropped;

    return all ? (double)r->dropped / (double)all : 0;
}

static json_t *run_entry(struct judge *j, const struct loadreport *a,
                         const struct loadreport *b)
{
    json_t *reasons = json_array();
    json_t *o;
    bool result_worse =
        strcmp(a->result, "passed") == 0 && strcmp(b->result, "passed") != 0;
    double da = dropped_share(a);
    double db = dropped_share(b);
    bool dropping = db - da > j->tolerance / 100;
    char fa[32];
    char fb[32];

    if (result_worse) {
        reason(reasons, "result %s -> %s", a->result, b->result);
    }
    if (dropping) {
        loadreport_fmt_pct(fa, sizeof(fa), da);
        loadreport_fmt_pct(fb, sizeof(fb), db);
        reason(reasons, "dropped iterations +%.2f points (%s -> %s)",
               (db - da) * 100, fa, fb);
    }
    j->regressions += result_worse || dropping;
    o = json_pack("{s:b, s:o, s:{s:s, s:s}, s:o, s:o}", "regression",
                  result_worse || dropping, "reasons", reasons, "result", "a",
                  a->result, "b", b->result, "iterations_rate",
                  change(&a->iterations_rate, &b->iterations_rate, false),
                  "dropped_rate", change(&da, &db, dropping));
    return o;
}

static void warn(json_t *warnings, const char *fmt, ...) MEM_PRINTF(2, 3);

static void warn(json_t *warnings, const char *fmt, ...)
{
    char s[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s, sizeof(s), fmt, ap);
    va_end(ap);
    json_array_append_new(warnings, json_string(s));
}

/* What makes the comparison weaker, without being a regression. */
static json_t *warnings(const struct loadreport *a, const struct loadreport *b)
{
    const struct loadreport_executor *ea = &a->executor;
    const struct loadreport_executor *eb = &b->executor;
    json_t *w = json_array();

    if (strcmp(a->suite, b->suite) != 0 ||
        strcmp(a->workflow, b->workflow) != 0) {
        warn(w,
             "the runs are of different workflows: %.60s/%.60s and "
             "%.60s/%.60s",
             a->suite, a->workflow, b->suite, b->workflow);
    }
    if (strcmp(ea->type, eb->type) != 0) {
        warn(w, "the executors differ: %.40s and %.40s", ea->type, eb->type);
    } else if (ea->vus != eb->vus || ea->max_vus != eb->max_vus ||
               ea->rate != eb->rate || ea->time_unit_ms != eb->time_unit_ms ||
               ea->iterations != eb->iterations ||
               ea->duration_ms != eb->duration_ms ||
               ea->n_stages != eb->n_stages) {
        warn(w, "the executors' options differ: the load was not the same");
    }
    if (a->dropped) {
        warn(w,
             "A dropped %llu iterations: its latencies may be "
             "under-reported",
             (unsigned long long)a->dropped);
    }
    if (b->dropped) {
        warn(w,
             "B dropped %llu iterations: its latencies may be "
             "under-reported",
             (unsigned long long)b->dropped);
    }
    return w;
}

static const struct loadreport_request *
find_request(const struct loadreport *r, const struct loadreport_request *q)
{
    for (size_t i = 0; i < r->n_requests; i++) {
        if (strcmp(r->requests[i].step, q->step) == 0 &&
            strcmp(r->requests[i].name, q->name) == 0) {
            return &r->requests[i];
        }
    }
    return NULL;
}

int loaddiff(const struct json_t *a, const struct json_t *b, double tolerance,
             struct json_t **out, char *err, size_t errlen)
{
    struct loadreport *ra = NULL;
    struct loadreport *rb = NULL;
    struct judge j = {0};
    json_t *requests;
    json_t *d;
    json_t *run;
    char why[200];
    int rc;

    if (err && errlen) {
        err[0] = '\0';
    }
    if (!a || !b || !out || isnan(tolerance) || tolerance >= 1000) {
        if (err && errlen) {
            snprintf(err, errlen, "invalid arguments");
        }
        return ST_INVALID;
    }
    if ((rc = loadreport_parse(a, &ra, why, sizeof(why))) != ST_OK) {
        if (err && errlen) {
            snprintf(err, errlen, "a: %s", why);
        }
        return rc;
    }
    if ((rc = loadreport_parse(b, &rb, why, sizeof(why))) != ST_OK) {
        if (err && errlen) {
            snprintf(err, errlen, "b: %s", why);
        }
        loadreport_free(ra);
        return rc;
    }
    j.tolerance = tolerance < 0 ? LOADDIFF_DEFAULT_TOLERANCE : tolerance;
    j.closed_model = strcmp(ra->executor.type, rb->executor.type) == 0 &&
                     is_closed_model(ra->executor.type);

    requests = json_array();
    for (size_t i = 0; i < ra->n_requests; i++) {
        json_array_append_new(requests,
                              entry(&j, &ra->requests[i],
                                    find_request(rb, &ra->requests[i]), false));
    }
    for (size_t i = 0; i < rb->n_requests; i++) {
        if (!find_request(ra, &rb->requests[i])) {
            json_array_append_new(requests,
                                  entry(&j, NULL, &rb->requests[i], false));
        }
    }
    run = run_entry(&j, ra, rb);
    d = json_pack("{s:s, s:f, s:o, s:o, s:o, s:o, s:o, s:o}", "schema",
                  LOADDIFF_SCHEMA, "tolerance", j.tolerance, "a", run_side(ra),
                  "b", run_side(rb), "warnings", warnings(ra, rb), "run", run,
                  "requests", requests, "totals",
                  entry(&j, &ra->totals, &rb->totals, j.closed_model));
    json_object_set_new(d, "regressions",
                        json_integer((json_int_t)j.regressions));
    json_object_set_new(d, "regression", json_boolean(j.regressions > 0));
    loadreport_free(ra);
    loadreport_free(rb);
    *out = d;
    return ST_OK;
}

bool loaddiff_has_regression(const struct json_t *diff)
{
    const json_t *s = json_object_get(diff, "schema");

    return json_is_string(s) &&
           strcmp(json_string_value(s), LOADDIFF_SCHEMA) == 0 &&
           json_is_true(json_object_get(diff, "regression"));
}

/* Reading a diff back for the text. */

struct change_v {
    double a;
    double b;
    double delta;
    double relative;
    bool has_a;
    bool has_b;
    bool has_delta;
    bool has_relative;
    bool regression;
};

static void read_change(struct jsonr *p, const json_t *o, const char *key,
                        struct change_v *c)
{
    const json_t *v = jsonr_obj(p, o, key, true);
    size_t mark;

    memset(c, 0, sizeof(*c));
    if (!v) {
        return;
    }
    mark = jsonr_push(p, ".%s", key);
    c->has_a = jsonr_num_or_null(p, v, "a", &c->a);
    c->has_b = jsonr_num_or_null(p, v, "b", &c->b);
    c->has_delta = jsonr_num_or_null(p, v, "delta", &c->delta);
    c->has_relative = jsonr_num_or_null(p, v, "relative", &c->relative);
    c->regression = jsonr_bool(p, v, "regression");
    jsonr_pop(p, mark);
}

enum unit { U_COUNT, U_MS, U_RATE, U_PCT };

static void fmt_value(char *out, size_t n, enum unit u, double v)
{
    switch (u) {
    case U_MS:
        loadreport_fmt_ms(out, n, v);
        break;
    case U_RATE:
        snprintf(out, n, "%.1f/s", v);
        break;
    case U_PCT:
        loadreport_fmt_pct(out, n, v);
        break;
    case U_COUNT:
    default:
        snprintf(out, n, "%.0f", v);
        break;
    }
}

static void right(struct buf *b, const char *s, size_t width)
{
    size_t n = 0;

    for (const char *p = s; *p; p++) {
        n += ((unsigned char)*p & 0xC0) != 0x80;
    }
    for (; n < width; n++) {
        buf_addc(b, ' ');
    }
    buf_adds(b, s);
}

/* "      p95          2.00ms      2.70ms    +0.70ms   +35.0%  ✗ ...". */
static void change_row(struct buf *b, const char *label,
                       const struct change_v *c, enum unit u)
{
    char v[48];

    buf_addf(b, "      %-10s", label);
    if (c->has_a) {
        fmt_value(v, sizeof(v), u, c->a);
    } else {
        snprintf(v, sizeof(v), "-");
    }
    right(b, v, 12);
    if (c->has_b) {
        fmt_value(v, sizeof(v), u, c->b);
    } else {
        snprintf(v, sizeof(v), "-");
    }
    right(b, v, 12);
    if (c->has_delta && u == U_PCT) {
        snprintf(v, sizeof(v), "%+.2f pts", c->delta * 100);
        right(b, v, 13);
    } else if (c->has_delta) {
        char f[32];

        fmt_value(f, sizeof(f), u, fabs(c->delta));
        snprintf(v, sizeof(v), "%s%s", c->delta < 0 ? "-" : "+", f);
        right(b, v, 13);
    }
    if (c->has_relative && u != U_PCT) {
        snprintf(v, sizeof(v), "%+.1f%%", c->relative * 100);
        right(b, v, 9);
    } else if (c->regression) {
        right(b, "", 9);
    }
    buf_adds(b, c->regression ? "  ✗ regression\n" : "\n");
}

/* The one side of a request only one run has, on one line. */
static void side_line(struct buf *b, const struct change_v *c,
                      const char *const *labels, const enum unit *units,
                      size_t n)
{
    char v[48];

    buf_adds(b, "     ");
    for (size_t i = 0; i < n; i++) {
        fmt_value(v, sizeof(v), units[i], c[i].has_a ? c[i].a : c[i].b);
        buf_addf(b, " %s %s%s", labels[i], v, i + 1 < n ? "," : "\n");
    }
}

/* One entry of "requests" (or "totals"), validated before anything is
 * written. */
static void text_entry(struct jsonr *p, struct buf *b, const json_t *e,
                       bool total)
{
    static const char *const keys[] = {"count", "p50",  "p95",
                                       "p99",   "rate", "error_rate"};
    static const char *const labels[] = {"count", "p50",  "p95",
                                         "p99",   "rate", "errors"};
    static const enum unit units[] = {U_COUNT, U_MS, U_MS, U_MS, U_RATE, U_PCT};
    struct change_v c[6];
    struct buf line;
    const char *step = jsonr_str(p, e, "step", true);
    const char *name = jsonr_str(p, e, "name", true);
    const char *what = jsonr_str(p, e, "change", true);
    const char *metric = jsonr_str(p, e, "metric", true);
    bool regression = jsonr_bool(p, e, "regression");
    size_t n_reasons;
    const json_t *reasons = jsonr_arr(p, e, "reasons", true, &n_reasons);

    for (size_t i = 0; i < 6; i++) {
        read_change(p, e, keys[i], &c[i]);
    }
    for (size_t i = 0; i < n_reasons; i++) {
        if (!json_is_string(json_array_get(reasons, i))) {
            jsonr_fault(p, "reasons", "not an array of strings");
        }
    }
    if (p->failed) {
        return;
    }
    buf_init(&line, 0);
    buf_adds(&line, "\n  ");
    buf_adds(&line, regression                     ? "✗ "
                    : strcmp(what, "added") == 0   ? "+ "
                    : strcmp(what, "removed") == 0 ? "- "
                                                   : "✓ ");
    if (total) {
        buf_adds(&line, "all requests");
    } else {
        if (*step) {
            utf8_append_printable(&line, step);
            buf_adds(&line, " · ");
        }
        utf8_append_printable(&line, name);
    }
    if (strcmp(what, "compared") != 0) {
        buf_addf(&line, "  (%s)",
                 strcmp(what, "added") == 0 ? "added: only in B"
                                            : "removed: only in A");
    }
    buf_addf(&line, "  [%s]\n",
             strcmp(metric, "http_req_duration") == 0 ? "http_req_duration"
                                                      : "http_req_latency");
    if (strcmp(what, "compared") != 0) {
        side_line(&line, c, labels, units, 6);
    } else {
        buf_adds(&line, "                           A           B       "
                        "  change\n");
        for (size_t i = 0; i < 6; i++) {
            change_row(&line, labels[i], &c[i], units[i]);
        }
    }
    buf_add(b, buf_str(&line), line.len);
    buf_cleanup(&line);
}

int loaddiff_text(const struct json_t *diff, struct buf *out, char *err,
                  size_t errlen)
{
    struct jsonr p;
    struct buf b;
    const json_t *sides[2];
    const json_t *run;
    const json_t *arr;
    const json_t *warns;
    const json_t *e;
    struct change_v dropped;
    struct change_v itrate;
    size_t n;
    size_t n_warns;
    size_t mark;
    double tolerance;
    int regressions;

    jsonr_init(&p, err, errlen);
    if (!diff || !out) {
        jsonr_fault(&p, NULL, "missing");
        return ST_INVALID;
    }
    if (!json_is_object(diff)) {
        jsonr_fault(&p, NULL, "not a JSON object");
        return ST_PROTOCOL;
    }
    if (strcmp(jsonr_str(&p, diff, "schema", true), LOADDIFF_SCHEMA) != 0) {
        jsonr_fault(&p, "schema", "not " LOADDIFF_SCHEMA);
        return ST_PROTOCOL;
    }
    buf_init(&b, 0);
    tolerance = jsonr_num(&p, diff, "tolerance", true, true);
    regressions = (int)jsonr_count(&p, diff, "regressions", true);
    sides[0] = jsonr_obj(&p, diff, "a", true);
    sides[1] = jsonr_obj(&p, diff, "b", true);
    buf_adds(&b, "\n  █ COMPARING LOAD RUNS\n\n");
    for (int i = 0; i < 2 && !p.failed; i++) {
        const json_t *s = sides[i];

        mark = jsonr_push(&p, ".%s", i ? "b" : "a");
        buf_adds(&b, i ? "    B ............: " : "    A (baseline) .: ");
        utf8_append_printable(&b, jsonr_str(&p, s, "suite", true));
        buf_addc(&b, '/');
        utf8_append_printable(&b, jsonr_str(&p, s, "workflow", true));
        buf_adds(&b, "  ");
        utf8_append_printable(&b, jsonr_str(&p, s, "result", true));
        buf_adds(&b, "  ");
        utf8_append_printable(&b, jsonr_str(&p, s, "started_at", true));
        buf_adds(&b, "\n                    id ");
        utf8_append_printable(&b, jsonr_str(&p, s, "id", true));
        buf_addc(&b, '\n');
        jsonr_pop(&p, mark);
    }
    buf_addf(&b,
             "    tolerance ....: p95/p99 %.0f%% slower (and at least "
             "%gms), error rate +%.2f points\n",
             tolerance * 100, LOADDIFF_MIN_DELTA_MS, tolerance);
    warns = jsonr_arr(&p, diff, "warnings", true, &n_warns);
    for (size_t i = 0; i < n_warns && !p.failed; i++) {
        const json_t *w = json_array_get(warns, i);

        if (!json_is_string(w)) {
            jsonr_fault(&p, "warnings", "not an array of strings");
            break;
        }
        buf_adds(&b, i ? "      " : "\n    ⚠ ");
        utf8_append_printable(&b, json_string_value(w));
        buf_addc(&b, '\n');
    }

    run = jsonr_obj(&p, diff, "run", true);
    if (run) {
        mark = jsonr_push(&p, ".run");
        read_change(&p, run, "iterations_rate", &itrate);
        read_change(&p, run, "dropped_rate", &dropped);
        (void)jsonr_bool(&p, run, "regression");
        if ((e = jsonr_obj(&p, run, "result", true))) {
            size_t rm = jsonr_push(&p, ".result");
            const char *ra = jsonr_str(&p, e, "a", true);
            const char *rb = jsonr_str(&p, e, "b", true);

            buf_adds(&b, "\n  run  result ");
            utf8_append_printable(&b, ra);
            buf_adds(&b, " -> ");
            utf8_append_printable(&b, rb);
            buf_adds(&b, "\n                           A           B     "
                         "    change\n");
            jsonr_pop(&p, rm);
        }
        change_row(&b, "iter/s", &itrate, U_RATE);
        change_row(&b, "dropped", &dropped, U_PCT);
        jsonr_pop(&p, mark);
    }

    arr = jsonr_arr(&p, diff, "requests", true, &n);
    for (size_t i = 0; i < n && !p.failed; i++) {
        if ((e = jsonr_elem(&p, arr, "requests", i, &mark))) {
            text_entry(&p, &b, e, false);
        }
        jsonr_pop(&p, mark);
    }
    if ((e = jsonr_obj(&p, diff, "totals", true)) && !p.failed) {
        mark = jsonr_push(&p, ".totals");
        text_entry(&p, &b, e, true);
        jsonr_pop(&p, mark);
    }
    if (p.failed) {
        buf_cleanup(&b);
        return ST_PROTOCOL;
    }
    if (regressions) {
        buf_addf(&b, "\n  ✗ %d regression%s\n", regressions,
                 regressions == 1 ? "" : "s");
    } else {
        buf_adds(&b, "\n  ✓ no regression\n");
    }
    buf_add(out, buf_str(&b), b.len);
    buf_cleanup(&b);
    return ST_OK;
}
