/* The end-of-test summary of a load run, for a terminal.
 *
 * Laid out as k6's (labels with dotted leaders, ✓/✗ per threshold and
 * check) with what go-heavy's report asks for added: successful and failed
 * iterations, status codes and classes, percentiles up to p99.9 and the
 * latency distribution per step and request. Values line up in columns
 * within 100 columns; names are shown in full (they are what users search
 * for) and cleaned of control characters, which could drive the terminal. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "loadreport.h"
#include "utf8.h"

#define BAR_COLS 40
#define LEADER_COLS 15 /* "label ........: " up to the colon */

/* SGR codes: only written when color is on. */
#define C_BOLD "1"
#define C_DIM "2"
#define C_RED "31"
#define C_GREEN "32"
#define C_YELLOW "33"
#define C_CYAN "36"

struct text {
    struct buf *b;
    bool color;
};

static void sgr(struct text *t, const char *code)
{
    if (t->color) {
        buf_addf(t->b, "\033[%sm", code);
    }
}

static void sgr_reset(struct text *t)
{
    if (t->color) {
        buf_adds(t->b, "\033[0m");
    }
}

/* Columns s takes: one per code point (names are not expected to hold
 * double-width characters; they would only shift a column). */
static size_t cols(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static void pad(struct text *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf_addc(t->b, ' ');
    }
}

/* A name from the report, cleaned for the terminal. */
static size_t clean(struct text *t, const char *s)
{
    return utf8_append_printable(t->b, s);
}

/* "    label ......: " with the label at indent. */
static void leader(struct text *t, int indent, const char *label)
{
    size_t n = cols(label);

    pad(t, (size_t)indent);
    buf_adds(t->b, label);
    buf_addc(t->b, ' ');
    sgr(t, C_DIM);
    for (size_t i = n + 1; i < LEADER_COLS; i++) {
        buf_addc(t->b, '.');
    }
    sgr_reset(t);
    buf_adds(t->b, ": ");
}

/* s right-aligned in width columns. */
static void right(struct text *t, const char *s, size_t width)
{
    size_t n = cols(s);

    pad(t, n < width ? width - n : 0);
    buf_adds(t->b, s);
}

static void heading(struct text *t, const char *title)
{
    const char *d = buf_str(t->b);

    if (t->b->len < 2 || memcmp(d + t->b->len - 2, "\n\n", 2) != 0) {
        buf_addc(t->b, '\n');
    }
    buf_adds(t->b, "  ");
    sgr(t, C_BOLD);
    buf_addf(t->b, "█ %s", title);
    sgr_reset(t);
    buf_adds(t->b, "\n\n");
}

static void mark(struct text *t, bool ok)
{
    sgr(t, ok ? C_GREEN : C_RED);
    buf_adds(t->b, ok ? "✓" : "✗");
    sgr_reset(t);
}

static void fmt_bytes(char *out, size_t n, uint64_t bytes)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;

    while (v >= 1000 && u + 1 < sizeof(units) / sizeof(*units)) {
        v /= 1000;
        u++;
    }
    if (u == 0) {
        snprintf(out, n, "%llu B", (unsigned long long)bytes);
    } else {
        snprintf(out, n, "%.1f %s", v, units[u]);
    }
}

/* "avg=1.20ms min=... med=... max=... p(90)=... p(95)=..." as k6 prints a
 * trend, for iteration and step durations. */
static void trend(struct text *t, const struct loadreport_stats *s)
{
    const struct {
        const char *name;
        double v;
    } f[] = {{"avg", s->mean}, {"min", s->min},   {"med", s->p50},
             {"max", s->max},  {"p(90)", s->p90}, {"p(95)", s->p95}};
    char v[32];

    if (s->count == 0) {
        buf_adds(t->b, "none");
        return;
    }
    for (size_t i = 0; i < sizeof(f) / sizeof(*f); i++) {
        loadreport_fmt_ms(v, sizeof(v), f[i].v);
        buf_addf(t->b, "%s%s=%s", i ? " " : "", f[i].name, v);
    }
}

/* Appends one part of a list after a leader at indent, separated by sep
 * and breaking the line before a part that would pass 100 columns (one
 * column kept for the separator's comma). *col starts at 0. */
static void part(struct text *t, size_t *col, int indent, const char *sep,
                 const char *s)
{
    size_t start = (size_t)indent + LEADER_COLS + 2;
    size_t n = cols(s);

    if (*col == 0) {
        *col = start;
    } else if (*col + n + cols(sep) > 99) {
        buf_add(t->b, sep, strcspn(sep, " "));
        buf_addc(t->b, '\n');
        pad(t, start);
        *col = start;
    } else {
        buf_adds(t->b, sep);
        *col += cols(sep);
    }
    buf_adds(t->b, s);
    *col += n;
}

static void executor_line(struct text *t, const struct loadreport_executor *e)
{
    char parts[LOADREPORT_EXECUTOR_PARTS][LOADREPORT_PART_MAX];
    size_t n = loadreport_executor_parts(e, parts);
    size_t col = 0;
    struct buf s;

    buf_init(&s, 0);
    leader(t, 4, "executor");
    for (size_t i = 0; i < n; i++) {
        buf_reset(&s);
        utf8_append_printable(&s, parts[i]);
        part(t, &col, 4, ", ", buf_str(&s));
    }
    buf_addc(t->b, '\n');
    buf_cleanup(&s);
}

static void run_section(struct text *t, const struct loadreport *r)
{
    const struct loadreport_executor *e = &r->executor;
    bool ok = strcmp(r->result, "passed") == 0;
    size_t failed = 0;
    char v[32];

    for (size_t i = 0; i < r->n_thresholds; i++) {
        failed += !r->thresholds[i].passed;
    }
    buf_adds(t->b, "\n  ");
    sgr(t, C_BOLD);
    buf_adds(t->b, "█ LOAD RUN  ");
    clean(t, r->suite);
    buf_adds(t->b, *r->suite ? "/" : "");
    clean(t, r->workflow);
    sgr_reset(t);
    buf_adds(t->b, "\n\n");

    leader(t, 4, "test id");
    clean(t, r->id);
    buf_addc(t->b, '\n');
    leader(t, 4, "result");
    mark(t, ok);
    buf_addc(t->b, ' ');
    sgr(t, ok ? C_GREEN : C_RED);
    buf_adds(t->b, r->result);
    sgr_reset(t);
    if (*r->abort_reason) {
        buf_adds(t->b, ": ");
        clean(t, r->abort_reason);
    } else if (failed) {
        buf_addf(t->b, ": %zu of %zu thresholds failed", failed,
                 r->n_thresholds);
    }
    buf_addc(t->b, '\n');
    leader(t, 4, "started");
    clean(t, r->started_at);
    buf_addc(t->b, '\n');
    leader(t, 4, "total time");
    loadreport_fmt_ms(v, sizeof(v), r->duration_ms);
    buf_adds(t->b, v);
    buf_addc(t->b, '\n');

    executor_line(t, e);
    if (r->shards > 1) {
        leader(t, 4, "shards");
        buf_addf(t->b, "%llu\n", (unsigned long long)r->shards);
    }
    if (r->vus_max) {
        leader(t, 4, "VUs");
        buf_addf(t->b, "max %llu\n", (unsigned long long)r->vus_max);
    }
}

static void iterations_section(struct text *t, const struct loadreport *r)
{
    const struct loadreport_executor *e = &r->executor;

    heading(t, "WORKFLOW ITERATIONS");
    leader(t, 4, "successful");
    buf_addf(t->b, "%llu completed  %.1f/s\n", (unsigned long long)r->completed,
             r->iterations_rate);
    leader(t, 4, "failed");
    if (r->interrupted || r->dropped) {
        sgr(t, C_RED);
    }
    buf_addf(t->b, "%llu", (unsigned long long)(r->interrupted + r->dropped));
    sgr_reset(t);
    buf_addf(t->b, " (interrupted %llu, dropped %llu)\n",
             (unsigned long long)r->interrupted,
             (unsigned long long)r->dropped);
    leader(t, 4, "duration");
    trend(t, &r->iteration_duration);
    buf_addc(t->b, '\n');
    if (r->dropped) {
        buf_adds(t->b, "\n    ");
        sgr(t, C_YELLOW);
        buf_addf(t->b,
                 "⚠ WARNING: %llu iterations were dropped: no VU was free "
                 "to start them",
                 (unsigned long long)r->dropped);
        if (e->max_vus) {
            buf_addf(t->b, " (max %llu VUs)", (unsigned long long)e->max_vus);
        }
        buf_adds(t->b, ".\n      Latencies may be under-reported: raise max "
                       "VUs until nothing is dropped.");
        sgr_reset(t);
        buf_addc(t->b, '\n');
    }
}

/* A ✓/✗ line: the name, a dotted leader to col, then what follows. */
static void mark_line(struct text *t, bool ok, const char *name, size_t col)
{
    size_t n;

    buf_adds(t->b, "    ");
    mark(t, ok);
    buf_addc(t->b, ' ');
    n = clean(t, name);
    if (n + 2 > col) {
        buf_addc(t->b, '\n');
        n = 0;
        pad(t, 6);
    }
    buf_addc(t->b, ' ');
    sgr(t, C_DIM);
    for (size_t i = n + 1; i < col; i++) {
        buf_addc(t->b, '.');
    }
    sgr_reset(t);
    buf_addc(t->b, ' ');
}

static void thresholds_section(struct text *t, const struct loadreport *r)
{
    char v[64];

    if (r->n_thresholds == 0) {
        return;
    }
    heading(t, "THRESHOLDS");
    for (size_t i = 0; i < r->n_thresholds; i++) {
        const struct loadreport_threshold *th = &r->thresholds[i];

        mark_line(t, th->passed, th->source, 62);
        loadreport_fmt_observed(v, sizeof(v), th);
        buf_adds(t->b, "observed ");
        sgr(t, th->passed ? C_GREEN : C_RED);
        buf_adds(t->b, v);
        sgr_reset(t);
        buf_addc(t->b, '\n');
    }
}

static void checks_section(struct text *t, const struct loadreport *r)
{
    char v[32];

    if (r->n_checks == 0) {
        return;
    }
    heading(t, "CHECKS");
    for (size_t i = 0; i < r->n_checks; i++) {
        const struct loadreport_check *c = &r->checks[i];
        uint64_t total = c->passes + c->fails;

        mark_line(t, c->fails == 0, c->name, 50);
        loadreport_fmt_pct(v, sizeof(v),
                           total ? (double)c->passes / (double)total : 0);
        right(t, v, 8);
        buf_addf(t->b, "  %10llu ✓ ", (unsigned long long)c->passes);
        if (c->fails) {
            sgr(t, C_RED);
        }
        buf_addf(t->b, "%10llu ✗", (unsigned long long)c->fails);
        sgr_reset(t);
        buf_addc(t->b, '\n');
    }
}

/* One row of the percentile table: label, then min avg p50 p90 p95 p99
 * p99.9 max, 9 columns each. */
static void stats_row(struct text *t, const char *label,
                      const struct loadreport_stats *s)
{
    const double v[] = {s->min, s->mean, s->p50,   s->p90,
                        s->p95, s->p99,  s->p99_9, s->max};
    size_t n = cols(label);
    char f[32];

    pad(t, 8);
    buf_adds(t->b, label);
    pad(t, n < 18 ? 18 - n : 1);
    for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++) {
        loadreport_fmt_ms(f, sizeof(f), v[i]);
        right(t, f, 9);
    }
    buf_addc(t->b, '\n');
}

/* The latency distribution as bars scaled to the largest bucket, drawn in
 * eighths of a column so small buckets still show. */
static void buckets(struct text *t, const struct loadreport_request *q)
{
    static const char *const eighths[] = {"",  "▏", "▎", "▍",
                                          "▌", "▋", "▊", "▉"};
    uint64_t max = 0;
    uint64_t total = 0;
    char lo[32];
    char hi[32];
    char range[80];
    char pct[32];

    for (size_t i = 0; i < q->n_buckets; i++) {
        max = q->buckets[i].count > max ? q->buckets[i].count : max;
        total += q->buckets[i].count;
    }
    if (max == 0) {
        return;
    }
    pad(t, 8);
    sgr(t, C_DIM);
    buf_adds(t->b, "latency distribution (http_req_latency)");
    sgr_reset(t);
    buf_addc(t->b, '\n');
    for (size_t i = 0; i < q->n_buckets; i++) {
        const struct loadreport_bucket *bk = &q->buckets[i];
        double share = (double)bk->count / (double)max;
        long units = lround(share * BAR_COLS * 8);
        size_t drawn = 0;

        if (units == 0 && bk->count) {
            units = 1;
        }
        loadreport_fmt_ms(lo, sizeof(lo), bk->low_ms);
        loadreport_fmt_ms(hi, sizeof(hi), bk->high_ms);
        snprintf(range, sizeof(range), "%s – %s", lo, hi);
        pad(t, 8);
        right(t, range, 20);
        buf_adds(t->b, " │");
        sgr(t, C_CYAN);
        for (long u = units; u >= 8; u -= 8) {
            buf_adds(t->b, "█");
            drawn++;
        }
        buf_adds(t->b, eighths[units % 8]);
        drawn += units % 8 != 0;
        sgr_reset(t);
        pad(t, BAR_COLS - drawn);
        loadreport_fmt_pct(pct, sizeof(pct),
                           total ? (double)bk->count / (double)total : 0);
        buf_addf(t->b, " %9llu ", (unsigned long long)bk->count);
        right(t, pct, 8);
        buf_addc(t->b, '\n');
    }
}

/* A request's block: counts, status codes, errors, percentiles and the
 * distribution. breakdown adds the timing phases (for the totals). */
static void request_block(struct text *t, const struct loadreport_request *q,
                          bool breakdown)
{
    static const char *const phases[] = {
        [LOADREPORT_BLOCKED] = "blocked",
        [LOADREPORT_CONNECTING] = "connecting",
        [LOADREPORT_TLS] = "tls handshake",
        [LOADREPORT_SENDING] = "sending",
        [LOADREPORT_WAITING] = "waiting",
        [LOADREPORT_RECEIVING] = "receiving",
    };
    char v[32];
    char w[32];

    leader(t, 8, "requests");
    buf_addf(t->b, "%llu  %.1f/s  failed ", (unsigned long long)q->count,
             q->rate);
    loadreport_fmt_pct(v, sizeof(v),
                       q->count ? (double)q->failed / (double)q->count : 0);
    if (q->failed) {
        sgr(t, C_RED);
    }
    buf_addf(t->b, "%s (%llu)", v, (unsigned long long)q->failed);
    sgr_reset(t);
    buf_addc(t->b, '\n');
    if (q->n_status) {
        size_t col = 0;

        leader(t, 8, "status");
        for (size_t i = 0; i < q->n_status; i++) {
            const struct loadreport_count *c = &q->status[i];

            /* "0": requests that got no response (docs/load.md). */
            snprintf(v, sizeof(v), "%s × %llu",
                     strcmp(c->key, "0") == 0 ? "no response" : c->key,
                     (unsigned long long)c->n);
            part(t, &col, 8, "  ", v);
        }
        buf_addc(t->b, '\n');
    }
    if (q->n_classes) {
        size_t col = 0;
        struct buf s;

        buf_init(&s, 0);
        leader(t, 8, "classes");
        for (size_t i = 0; i < q->n_classes; i++) {
            buf_reset(&s);
            utf8_append_printable(&s, q->classes[i].key);
            buf_addf(&s, " %llu", (unsigned long long)q->classes[i].n);
            part(t, &col, 8, "  ", buf_str(&s));
        }
        buf_cleanup(&s);
        buf_addc(t->b, '\n');
    }
    if (q->n_errors) {
        leader(t, 8, "errors");
        sgr(t, C_RED);
        for (size_t i = 0; i < q->n_errors; i++) {
            buf_adds(t->b, i ? "  " : "");
            clean(t, q->errors[i].key);
            buf_addf(t->b, " %llu", (unsigned long long)q->errors[i].n);
        }
        sgr_reset(t);
        buf_addc(t->b, '\n');
    }
    if (breakdown && (q->bytes_sent || q->bytes_received)) {
        leader(t, 8, "data");
        fmt_bytes(v, sizeof(v), q->bytes_sent);
        fmt_bytes(w, sizeof(w), q->bytes_received);
        buf_addf(t->b, "%s sent, %s received\n", v, w);
    }
    if (q->count == 0) {
        return;
    }
    pad(t, 26);
    sgr(t, C_DIM);
    buf_adds(t->b, "      min      avg      p50      p90      p95      p99"
                   "    p99.9      max");
    sgr_reset(t);
    buf_addc(t->b, '\n');
    stats_row(t, "http_req_latency", &q->timings[LOADREPORT_LATENCY]);
    stats_row(t, "http_req_duration", &q->timings[LOADREPORT_DURATION]);
    for (int i = LOADREPORT_BLOCKED; breakdown && i < LOADREPORT_TIMING_COUNT;
         i++) {
        if (q->has_timing[i] && q->timings[i].count) {
            char label[32];

            snprintf(label, sizeof(label), "  %s", phases[i]);
            stats_row(t, label, &q->timings[i]);
        }
    }
    buf_addc(t->b, '\n');
    if (q->n_buckets) {
        buckets(t, q);
        buf_addc(t->b, '\n');
    }
}

static const struct loadreport_step *find_step(const struct loadreport *r,
                                               const char *name)
{
    for (size_t i = 0; i < r->n_steps; i++) {
        if (strcmp(r->steps[i].name, name) == 0) {
            return &r->steps[i];
        }
    }
    return NULL;
}

static void step_header(struct text *t, const struct loadreport *r,
                        const char *step)
{
    const struct loadreport_step *s = find_step(r, step);

    buf_adds(t->b, "    ");
    sgr(t, C_BOLD);
    if (*step) {
        buf_adds(t->b, "step ");
        clean(t, step);
    } else {
        buf_adds(t->b, "(before the first step)");
    }
    sgr_reset(t);
    buf_addc(t->b, '\n');
    if (s) {
        leader(t, 6, "step duration");
        trend(t, &s->duration);
        buf_addc(t->b, '\n');
    }
    buf_addc(t->b, '\n');
}

/* Requests grouped by step, steps in the order their first request came,
 * then steps without requests. Without any named step the step lines are
 * left out. */
static void requests_section(struct text *t, const struct loadreport *r)
{
    bool named = r->n_steps > 0;

    for (size_t i = 0; i < r->n_requests && !named; i++) {
        named = *r->requests[i].step != '\0';
    }
    heading(t, "REQUESTS");
    for (size_t i = 0; i < r->n_requests; i++) {
        const char *step = r->requests[i].step;
        bool seen = false;

        for (size_t j = 0; j < i && !seen; j++) {
            seen = strcmp(r->requests[j].step, step) == 0;
        }
        if (seen) {
            continue;
        }
        if (named) {
            step_header(t, r, step);
        }
        for (size_t j = i; j < r->n_requests; j++) {
            const struct loadreport_request *q = &r->requests[j];

            if (strcmp(q->step, step) != 0) {
                continue;
            }
            pad(t, named ? 6 : 4);
            sgr(t, C_BOLD);
            clean(t, q->name);
            sgr_reset(t);
            buf_addc(t->b, '\n');
            request_block(t, q, false);
        }
    }
    for (size_t i = 0; i < r->n_steps; i++) {
        bool has = false;

        for (size_t j = 0; j < r->n_requests && !has; j++) {
            has = strcmp(r->requests[j].step, r->steps[i].name) == 0;
        }
        if (!has) {
            step_header(t, r, r->steps[i].name);
        }
    }
    if (r->n_requests == 0 && r->n_steps == 0) {
        buf_adds(t->b, "    none\n");
    }
    heading(t, "ALL REQUESTS");
    request_block(t, &r->totals, true);
}

int loadreport_text(const struct json_t *report, struct buf *out, bool color,
                    char *err, size_t errlen)
{
    struct loadreport *r = NULL;
    struct text t = {.b = out, .color = color};
    int rc = loadreport_parse(report, &r, err, errlen);

    if (rc != ST_OK) {
        return rc;
    }
    if (!out) {
        loadreport_free(r);
        return ST_INVALID;
    }
    run_section(&t, r);
    iterations_section(&t, r);
    thresholds_section(&t, r);
    checks_section(&t, r);
    requests_section(&t, r);
    loadreport_free(r);
    return ST_OK;
}
