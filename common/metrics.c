/* Prometheus metrics: a registry of families, each a hash table of series
 * under one mutex, rendered in the text exposition format 0.0.4. */
#include "metrics.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "utf8.h"

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

static const char *const metrics_type_names[] = {"counter", "gauge",
                                                 "histogram"};

struct metrics_series {
    struct metrics_series *next; /* in its hash chain */
    uint64_t hash;
    char **values; /* the family's n_labels label values */
    double value;  /* counter, gauge */
    /* Histograms: counts per bucket (not cumulative; the last is +Inf),
     * the sum and the number of observations. */
    uint64_t *buckets;
    double sum;
    uint64_t count;
};

struct metrics_family {
    enum metrics_type type;
    char *name;
    char *help;
    size_t n_labels;
    char *labels[METRICS_MAX_LABELS];
    size_t n_bounds;
    double *bounds;
    /* Render-time gauges: one of these, or neither. */
    double (*fn)(void *arg);
    void (*collect)(void *arg, struct metrics_sink *sink);
    void *arg;

    pthread_mutex_t mu;            /* guards what follows */
    struct metrics_series *single; /* an unlabelled family's series */
    struct metrics_series **table;
    size_t table_size; /* a power of two, or 0 */
    size_t n_series;
    size_t max_series;
    bool warned_cap;
    bool warned_delta;
};

struct metrics {
    pthread_mutex_t mu; /* guards the array; families are never removed */
    struct metrics_family **families;
    size_t n_families;
};

/* A collect callback's series go to a family of their own, made for one
 * render, so that concurrent renders do not mix them. */
struct metrics_sink {
    struct metrics_family *f;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = mem_zalloc(sizeof(*m));

    pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void metrics_series_free(struct metrics_series *s, size_t n_labels)
{
    for (size_t i = 0; i < n_labels; i++) {
        free(s->values[i]);
    }
    free(s->values);
    free(s->buckets);
    free(s);
}

static void metrics_family_free(struct metrics_family *f)
{
    for (size_t i = 0; i < f->table_size; i++) {
        struct metrics_series *s = f->table[i];

        while (s) {
            struct metrics_series *next = s->next;

            metrics_series_free(s, f->n_labels);
            s = next;
        }
    }
    free(f->table);
    for (size_t i = 0; i < f->n_labels; i++) {
        free(f->labels[i]);
    }
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void metrics_free(struct metrics *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n_families; i++) {
        metrics_family_free(m->families[i]);
    }
    free(m->families);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Registration. */

static bool metrics_is_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9')) {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_')) {
            return false;
        }
    }
    return true;
}

static bool metrics_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Why name, help and labels are not acceptable for a family of type t, or
 * NULL if they are. */
static const char *metrics_check(enum metrics_type t, const char *name,
                                 const char *help, size_t n_labels,
                                 const char *const labels[])
{
    static const char *const reserved[] = {"_bucket", "_sum", "_count"};

    if (!metrics_is_name(name)) {
        return "the name is not [a-z_][a-z0-9_]*";
    }
    if (t == METRICS_COUNTER &&
        (!metrics_ends_with(name, "_total") || strcmp(name, "_total") == 0)) {
        return "a counter's name ends in _total";
    }
    if (t != METRICS_COUNTER && metrics_ends_with(name, "_total")) {
        return "only counters' names end in _total";
    }
    for (size_t i = 0; t != METRICS_HISTOGRAM && i < 3; i++) {
        if (metrics_ends_with(name, reserved[i])) {
            return "only histograms' names end in _bucket, _sum or _count";
        }
    }
    if (!help || !*help || strchr(help, '\n')) {
        return "help is one line of text";
    }
    if (n_labels > METRICS_MAX_LABELS || (n_labels && !labels)) {
        return "too many labels";
    }
    for (size_t i = 0; i < n_labels; i++) {
        if (!metrics_is_name(labels[i]) || strncmp(labels[i], "__", 2) == 0) {
            return "a label name is not [a-z_][a-z0-9_]* or starts with __";
        }
        if (t == METRICS_HISTOGRAM && strcmp(labels[i], "le") == 0) {
            return "a histogram has a label le of its own";
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(labels[i], labels[j]) == 0) {
                return "a label name comes twice";
            }
        }
    }
    return NULL;
}

/* True when a sample of one family could carry the name of the other. */
static bool metrics_clash(const struct metrics_family *f, enum metrics_type t,
                          const char *name)
{
    static const char *const suffixes[] = {"", "_bucket", "_sum", "_count"};
    size_t nf = f->type == METRICS_HISTOGRAM ? 4 : 1;
    size_t nt = t == METRICS_HISTOGRAM ? 4 : 1;
    char a[256];
    char b[256];

    for (size_t i = 0; i < nf; i++) {
        snprintf(a, sizeof(a), "%s%s", f->name, suffixes[i]);
        for (size_t j = 0; j < nt; j++) {
            snprintf(b, sizeof(b), "%s%s", name, suffixes[j]);
            if (strcmp(a, b) == 0) {
                return true;
            }
        }
    }
    return false;
}

static uint64_t metrics_hash(size_t n, const char *const values[])
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p;
             p++) {
            h = (h ^ *p) * UINT64_C(1099511628211);
        }
        h = (h ^ 0xff) * UINT64_C(1099511628211); /* not in UTF-8 */
    }
    return h;
}

static struct metrics_series *metrics_series_new(struct metrics_family *f,
                                                 const char *const values[],
                                                 uint64_t hash)
{
    struct metrics_series *s = mem_zalloc(sizeof(*s));

    s->hash = hash;
    s->values = mem_calloc(f->n_labels ? f->n_labels : 1, sizeof(char *));
    for (size_t i = 0; i < f->n_labels; i++) {
        s->values[i] = mem_strdup(values[i]);
    }
    if (f->type == METRICS_HISTOGRAM) {
        s->buckets = mem_calloc(f->n_bounds + 1, sizeof(uint64_t));
    }
    return s;
}

/* Adds s to f's table, growing it. f->mu held (or f not shared yet). */
static void metrics_table_add(struct metrics_family *f,
                              struct metrics_series *s)
{
    if (f->n_series >= f->table_size) {
        size_t size = f->table_size ? f->table_size * 2 : 8;
        struct metrics_series **table = mem_calloc(size, sizeof(*table));

        for (size_t i = 0; i < f->table_size; i++) {
            struct metrics_series *e = f->table[i];

            while (e) {
                struct metrics_series *next = e->next;

                e->next = table[e->hash & (size - 1)];
                table[e->hash & (size - 1)] = e;
                e = next;
            }
        }
        free(f->table);
        f->table = table;
        f->table_size = size;
    }
    s->next = f->table[s->hash & (f->table_size - 1)];
    f->table[s->hash & (f->table_size - 1)] = s;
    f->n_series++;
}

/* What a family is made of besides its name, type, help and labels. */
struct metrics_extra {
    size_t n_bounds;
    const double *bounds;
    double (*fn)(void *arg);
    void (*collect)(void *arg, struct metrics_sink *sink);
    void *arg;
};

static int metrics_register(struct metrics *m, enum metrics_type t,
                            const char *name, const char *help, size_t n_labels,
                            const char *const labels[],
                            const struct metrics_extra *x,
                            struct metrics_family **out)
{
    size_t n_bounds = x ? x->n_bounds : 0;
    const double *bounds = x ? x->bounds : NULL;
    struct metrics_family *f;
    const char *why = metrics_check(t, name, help, n_labels, labels);

    if (!why && t == METRICS_HISTOGRAM) {
        if (n_bounds < 1 || n_bounds > METRICS_MAX_BUCKETS || !bounds) {
            why = "a histogram has 1 to 64 bucket bounds";
        }
        for (size_t i = 0; !why && i < n_bounds; i++) {
            if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
                why = "bucket bounds are finite and strictly increasing";
            }
        }
    }
    if (why) {
        log_error("metrics: cannot register %s: %s", name ? name : "(null)",
                  why);
        return ST_INVALID;
    }
    if (strlen(name) > 200) {
        log_error("metrics: cannot register %s: name too long", name);
        return ST_INVALID;
    }
    f = mem_zalloc(sizeof(*f));
    f->type = t;
    f->name = mem_strdup(name);
    f->help = mem_strdup(help);
    f->n_labels = n_labels;
    for (size_t i = 0; i < n_labels; i++) {
        f->labels[i] = mem_strdup(labels[i]);
    }
    if (t == METRICS_HISTOGRAM) {
        f->n_bounds = n_bounds;
        f->bounds = mem_calloc(n_bounds, sizeof(double));
        memcpy(f->bounds, bounds, n_bounds * sizeof(double));
    }
    if (x) {
        f->fn = x->fn;
        f->collect = x->collect;
        f->arg = x->arg;
    }
    f->max_series = METRICS_MAX_SERIES_DEFAULT;
    pthread_mutex_init(&f->mu, NULL);
    if (n_labels == 0 && !f->collect) {
        /* An unlabelled family has its one series from the start: a
         * counter that never moved still shows as 0. */
        f->single = metrics_series_new(f, NULL, metrics_hash(0, NULL));
        metrics_table_add(f, f->single);
    }

    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_families; i++) {
        if (metrics_clash(m->families[i], t, name)) {
            pthread_mutex_unlock(&m->mu);
            log_error("metrics: cannot register %s: it clashes with %s", name,
                      m->families[i]->name);
            metrics_family_free(f);
            return ST_CONFLICT;
        }
    }
    m->families =
        mem_reallocarray(m->families, m->n_families + 1, sizeof(*m->families));
    m->families[m->n_families++] = f;
    pthread_mutex_unlock(&m->mu);
    *out = f;
    return 0;
}

int metrics_counter(struct metrics *m, const char *name, const char *help,
                    size_t n_labels, const char *const labels[],
                    struct metrics_family **out)
{
    return metrics_register(m, METRICS_COUNTER, name, help, n_labels, labels,
                            NULL, out);
}

int metrics_gauge(struct metrics *m, const char *name, const char *help,
                  size_t n_labels, const char *const labels[],
                  struct metrics_family **out)
{
    return metrics_register(m, METRICS_GAUGE, name, help, n_labels, labels,
                            NULL, out);
}

int metrics_histogram(struct metrics *m, const char *name, const char *help,
                      size_t n_labels, const char *const labels[],
                      size_t n_bounds, const double bounds[],
                      struct metrics_family **out)
{
    struct metrics_extra x = {n_bounds, bounds, NULL, NULL, NULL};

    return metrics_register(m, METRICS_HISTOGRAM, name, help, n_labels, labels,
                            &x, out);
}

int metrics_gauge_func(struct metrics *m, const char *name, const char *help,
                       double (*fn)(void *arg), void *arg)
{
    struct metrics_extra x = {0, NULL, fn, NULL, arg};
    struct metrics_family *f;

    if (!fn) {
        return ST_INVALID;
    }
    return metrics_register(m, METRICS_GAUGE, name, help, 0, NULL, &x, &f);
}

int metrics_gauge_collect(struct metrics *m, const char *name, const char *help,
                          size_t n_labels, const char *const labels[],
                          void (*collect)(void *arg, struct metrics_sink *sink),
                          void *arg)
{
    struct metrics_extra x = {0, NULL, NULL, collect, arg};
    struct metrics_family *f;

    if (!collect) {
        return ST_INVALID;
    }
    return metrics_register(m, METRICS_GAUGE, name, help, n_labels, labels, &x,
                            &f);
}

void metrics_set_max_series(struct metrics_family *f, size_t max)
{
    pthread_mutex_lock(&f->mu);
    f->max_series = max ? max : 1;
    pthread_mutex_unlock(&f->mu);
}

/* Updates. */

/* The label values as stored: cut to METRICS_MAX_VALUE_LEN bytes, invalid
 * UTF-8 replaced. Values that need no change are used as they are; the
 * others are copied into tmp[i] (free them). */
static void metrics_normalize(size_t n, const char *const values[],
                              const char *norm[], char *tmp[])
{
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i] ? values[i] : "";
        size_t len = strnlen(v, METRICS_MAX_VALUE_LEN + 1);

        tmp[i] = NULL;
        if (len > METRICS_MAX_VALUE_LEN) {
            len = METRICS_MAX_VALUE_LEN;
            tmp[i] = utf8_clean_dup(v, len);
        } else if (!utf8_is_clean(v, len)) {
            tmp[i] = utf8_clean_dup(v, len);
        }
        norm[i] = tmp[i] ? tmp[i] : v;
    }
}

/* Finds or creates the series of values in f. f->mu held. Returns NULL
 * when the cap forbids a new one. */
static struct metrics_series *metrics_lookup(struct metrics_family *f,
                                             const char *const values[])
{
    uint64_t h = metrics_hash(f->n_labels, values);
    struct metrics_series *s;

    for (s = f->table ? f->table[h & (f->table_size - 1)] : NULL; s;
         s = s->next) {
        size_t i = 0;

        while (i < f->n_labels && strcmp(s->values[i], values[i]) == 0) {
            i++;
        }
        if (s->hash == h && i == f->n_labels) {
            return s;
        }
    }
    if (f->n_series >= f->max_series) {
        if (!f->warned_cap) {
            f->warned_cap = true;
            log_warn("metrics: %s has %zu series, its limit: uses that "
                     "would create more are dropped",
                     f->name, f->n_series);
        }
        return NULL;
    }
    s = metrics_series_new(f, values, h);
    metrics_table_add(f, s);
    return s;
}

enum metrics_op { OP_INC, OP_SET, OP_ADD, OP_OBSERVE };

static void metrics_update(struct metrics_family *f, size_t n_values,
                           const char *const values[], enum metrics_op op,
                           double v)
{
    const char *norm[METRICS_MAX_LABELS];
    char *tmp[METRICS_MAX_LABELS];
    struct metrics_series *s;

    assert(n_values == f->n_labels);
    assert(!f->fn && !f->collect);
    if (n_values != f->n_labels) {
        return;
    }
    if (isnan(v) && op == OP_OBSERVE) {
        return;
    }
    metrics_normalize(n_values, values, norm, tmp);
    pthread_mutex_lock(&f->mu);
    if (op == OP_INC && !(v >= 0)) {
        if (!f->warned_delta) {
            f->warned_delta = true;
            log_warn("metrics: %s: ignored a negative or NaN increment",
                     f->name);
        }
        s = NULL;
    } else {
        s = metrics_lookup(f, norm);
    }
    if (s) {
        switch (op) {
        case OP_INC:
        case OP_ADD:
            s->value += v;
            break;
        case OP_SET:
            s->value = v;
            break;
        case OP_OBSERVE: {
            size_t i = 0;

            while (i < f->n_bounds && !(v <= f->bounds[i])) {
                i++;
            }
            s->buckets[i]++;
            s->sum += v;
            s->count++;
            break;
        }
        }
    }
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n_values; i++) {
        free(tmp[i]);
    }
}

void metrics_inc(struct metrics_family *f, size_t n_values,
                 const char *const values[], double delta)
{
    assert(f->type == METRICS_COUNTER);
    metrics_update(f, n_values, values, OP_INC, delta);
}

void metrics_set(struct metrics_family *f, size_t n_values,
                 const char *const values[], double v)
{
    assert(f->type == METRICS_GAUGE);
    metrics_update(f, n_values, values, OP_SET, v);
}

void metrics_add(struct metrics_family *f, size_t n_values,
                 const char *const values[], double delta)
{
    assert(f->type == METRICS_GAUGE);
    metrics_update(f, n_values, values, OP_ADD, delta);
}

void metrics_observe(struct metrics_family *f, size_t n_values,
                     const char *const values[], double v)
{
    assert(f->type == METRICS_HISTOGRAM);
    metrics_update(f, n_values, values, OP_OBSERVE, v);
}

void metrics_sink_put(struct metrics_sink *sink, size_t n_values,
                      const char *const values[], double v)
{
    struct metrics_family *f = sink->f;
    const char *norm[METRICS_MAX_LABELS];
    char *tmp[METRICS_MAX_LABELS];
    struct metrics_series *s;

    assert(n_values == f->n_labels);
    if (n_values != f->n_labels) {
        return;
    }
    metrics_normalize(n_values, values, norm, tmp);
    /* lookup dedupes a series put twice: the last value wins. */
    pthread_mutex_lock(&f->mu);
    s = metrics_lookup(f, norm);
    if (s) {
        s->value = v;
    }
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n_values; i++) {
        free(tmp[i]);
    }
}

/* Rendering. */

void metrics_format_value(struct buf *out, double v)
{
    char s[40];

    if (isnan(v)) {
        buf_adds(out, "NaN");
    } else if (isinf(v)) {
        buf_adds(out, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        buf_addf(out, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(s, sizeof(s), "%.*g", prec, v);
            if (strtod(s, NULL) == v) {
                break;
            }
        }
        buf_adds(out, s);
    }
}

static void metrics_escape(struct buf *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\') {
            buf_adds(out, "\\\\");
        } else if (*s == '\n') {
            buf_adds(out, "\\n");
        } else if (*s == '"' && quote) {
            buf_adds(out, "\\\"");
        } else {
            buf_addc(out, *s);
        }
    }
}

/* Appends {a="x",b="y"[,le="..."]}, or nothing without labels. */
static void metrics_labels(struct buf *out, const struct metrics_family *f,
                           const struct metrics_series *s, const char *le)
{
    if (f->n_labels == 0 && !le) {
        return;
    }
    buf_addc(out, '{');
    for (size_t i = 0; i < f->n_labels; i++) {
        buf_addf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        metrics_escape(out, s->values[i], true);
        buf_addc(out, '"');
    }
    if (le) {
        buf_addf(out, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    }
    buf_addc(out, '}');
}

static void metrics_sample(struct buf *out, const struct metrics_family *f,
                           const char *suffix, const struct metrics_series *s,
                           const char *le, double v)
{
    buf_adds(out, f->name);
    buf_adds(out, suffix);
    metrics_labels(out, f, s, le);
    buf_addc(out, ' ');
    metrics_format_value(out, v);
    buf_addc(out, '\n');
}

/* Compares two series' label values in label order. */
static int metrics_values_cmp(const struct metrics_series *x,
                              const struct metrics_series *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(x->values[i], y->values[i]);

        if (c) {
            return c;
        }
    }
    return 0;
}

/* Sorts series by label values: a merge sort, because qsort's comparison
 * could not know the number of labels without global state. */
static void metrics_sort(struct metrics_series **v, size_t n, size_t n_labels,
                         struct metrics_series **tmp)
{
    size_t mid = n / 2;
    size_t i = 0;
    size_t j = mid;
    size_t k = 0;

    if (n < 2) {
        return;
    }
    metrics_sort(v, mid, n_labels, tmp);
    metrics_sort(v + mid, n - mid, n_labels, tmp);
    while (i < mid && j < n) {
        tmp[k++] =
            metrics_values_cmp(v[j], v[i], n_labels) < 0 ? v[j++] : v[i++];
    }
    while (i < mid) {
        tmp[k++] = v[i++];
    }
    while (j < n) {
        tmp[k++] = v[j++];
    }
    memcpy(v, tmp, n * sizeof(*v));
}

/* Renders f's series. f->mu held. */
static void metrics_render_family(struct metrics_family *f, struct buf *out)
{
    struct metrics_series **v;
    struct metrics_series **tmp;
    struct buf le;
    size_t n = 0;

    if (f->n_series == 0) {
        return;
    }
    v = mem_calloc(f->n_series, sizeof(*v));
    tmp = mem_calloc(f->n_series, sizeof(*tmp));
    for (size_t i = 0; i < f->table_size; i++) {
        for (struct metrics_series *s = f->table[i]; s; s = s->next) {
            v[n++] = s;
        }
    }
    metrics_sort(v, n, f->n_labels, tmp);
    buf_addf(out, "# HELP %s ", f->name);
    metrics_escape(out, f->help, false);
    buf_addf(out, "\n# TYPE %s %s\n", f->name, metrics_type_names[f->type]);
    buf_init(&le, 0);
    for (size_t i = 0; i < n; i++) {
        const struct metrics_series *s = v[i];
        uint64_t cum = 0;

        if (f->type != METRICS_HISTOGRAM) {
            metrics_sample(out, f, "", s, NULL, s->value);
            continue;
        }
        for (size_t b = 0; b <= f->n_bounds; b++) {
            cum += s->buckets[b];
            buf_reset(&le);
            if (b < f->n_bounds) {
                metrics_format_value(&le, f->bounds[b]);
            } else {
                buf_adds(&le, "+Inf");
            }
            metrics_sample(out, f, "_bucket", s, buf_str(&le), (double)cum);
        }
        metrics_sample(out, f, "_sum", s, NULL, s->sum);
        metrics_sample(out, f, "_count", s, NULL, (double)s->count);
    }
    buf_cleanup(&le);
    free(tmp);
    free(v);
}

/* Calls a collect family's callback, outside every lock, into a family
 * made for this render, renders that and frees it. */
static void metrics_render_collect(struct metrics_family *f, struct buf *out)
{
    struct metrics_family tmp;
    struct metrics_sink sink = {&tmp};

    memset(&tmp, 0, sizeof(tmp));
    tmp.type = METRICS_GAUGE;
    tmp.name = f->name;
    tmp.help = f->help;
    tmp.n_labels = f->n_labels;
    memcpy(tmp.labels, f->labels, sizeof(tmp.labels));
    pthread_mutex_init(&tmp.mu, NULL);
    pthread_mutex_lock(&f->mu);
    tmp.max_series = f->max_series;
    tmp.warned_cap = f->warned_cap;
    pthread_mutex_unlock(&f->mu);

    f->collect(f->arg, &sink);
    metrics_render_family(&tmp, out);

    pthread_mutex_lock(&f->mu);
    f->warned_cap = f->warned_cap || tmp.warned_cap;
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < tmp.table_size; i++) {
        while (tmp.table[i]) {
            struct metrics_series *next = tmp.table[i]->next;

            metrics_series_free(tmp.table[i], tmp.n_labels);
            tmp.table[i] = next;
        }
    }
    free(tmp.table);
    pthread_mutex_destroy(&tmp.mu);
}

static int metrics_family_cmp(const void *a, const void *b)
{
    const struct metrics_family *x = *(const struct metrics_family *const *)a;
    const struct metrics_family *y = *(const struct metrics_family *const *)b;

    return strcmp(x->name, y->name);
}

void metrics_render(struct metrics *m, struct buf *out)
{
    struct metrics_family **fams;
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = m->n_families;
    fams = mem_calloc(n ? n : 1, sizeof(*fams));
    if (n) {
        memcpy(fams, m->families, n * sizeof(*fams));
    }
    pthread_mutex_unlock(&m->mu);
    qsort(fams, n, sizeof(*fams), metrics_family_cmp);

    for (size_t i = 0; i < n; i++) {
        struct metrics_family *f = fams[i];

        if (f->collect) {
            metrics_render_collect(f, out);
            continue;
        }
        if (f->fn) {
            /* Outside every lock: fn may take locks of its own that other
             * threads hold while they update metrics. */
            double v = f->fn(f->arg);

            pthread_mutex_lock(&f->mu);
            f->single->value = v;
        } else {
            pthread_mutex_lock(&f->mu);
        }
        metrics_render_family(f, out);
        pthread_mutex_unlock(&f->mu);
    }
    free(fams);
}
