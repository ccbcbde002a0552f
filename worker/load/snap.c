/* snap: counters, check and step tables and histograms of a load run, per
 * loop thread and per second. Check and step tables are small arrays
 * searched linearly: a workflow has a handful of each, and a lookup
 * compares a few short strings, cheaper than hashing for that size. */
#include "snap.h"

#include <stdlib.h>
#include <string.h>

#include "httpc_int.h"
#include "log.h"
#include "mem.h"
#include "utf8.h"

#define SNAP_OTHER "other"

struct snap_priv {
    struct snap pub; /* first: a struct snap * is a struct snap_priv * */
    struct hist_config hist;
    size_t checks_cap;
    size_t steps_cap;
    bool warned_checks;
    bool warned_steps;
};

static struct snap_priv *priv(struct snap *s)
{
    return (struct snap_priv *)s;
}

static const struct snap_priv *cpriv(const struct snap *s)
{
    return (const struct snap_priv *)s;
}

static struct hist *new_hist(const struct hist_config *cfg)
{
    struct hist *h = NULL;

    /* The configuration was checked by snap_new. */
    if (hist_new(cfg, &h) != 0) {
        abort();
    }
    return h;
}

int snap_new(const struct httpc_config *http, struct snap **out)
{
    struct httpc_config c;
    struct snap_priv *p;
    struct hist *probe = NULL;

    if (httpc_config_resolve(http, &c) != 0 || hist_new(&c.hist, &probe) != 0) {
        return ST_INVALID;
    }
    p = mem_zalloc(sizeof(*p));
    /* Normalised (bits, not digits), so that configurations compare equal
     * however they were written: a decoded snapshot carries bits. */
    p->hist = hist_get_config(probe);
    hist_free(probe);
    p->pub.iteration_ns = new_hist(&p->hist);
    if (httpc_metrics_new(&c, &p->pub.http) != 0) {
        abort(); /* same configuration */
    }
    *out = &p->pub;
    return 0;
}

void snap_free(struct snap *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n_checks; i++) {
        free(s->checks[i].name);
    }
    for (size_t i = 0; i < s->n_steps; i++) {
        free(s->steps[i].name);
        hist_free(s->steps[i].duration_ns);
    }
    free(s->checks);
    free(s->steps);
    hist_free(s->iteration_ns);
    httpc_metrics_free(s->http);
    free(priv(s));
}

void snap_reset(struct snap *s)
{
    s->iterations = s->interrupted = s->dropped = 0;
    s->vus = s->vus_max = 0;
    hist_reset(s->iteration_ns);
    httpc_metrics_reset(s->http);
    for (size_t i = 0; i < s->n_checks; i++) {
        s->checks[i].passes = s->checks[i].fails = 0;
    }
    for (size_t i = 0; i < s->n_steps; i++) {
        hist_reset(s->steps[i].duration_ns);
    }
}

static struct snap_check *check_slot(struct snap *s, const char *name)
{
    struct snap_priv *p = priv(s);

    for (size_t i = 0; i < s->n_checks; i++) {
        if (strcmp(s->checks[i].name, name) == 0) {
            return &s->checks[i];
        }
    }
    if (s->n_checks + 1 >= SNAP_MAX_CHECKS && strcmp(name, SNAP_OTHER) != 0) {
        if (!p->warned_checks) {
            p->warned_checks = true;
            log_warn("load: more than %d check names; the rest are counted "
                     "as \"%s\"",
                     SNAP_MAX_CHECKS - 1, SNAP_OTHER);
        }
        return check_slot(s, SNAP_OTHER);
    }
    if (s->n_checks == p->checks_cap) {
        p->checks_cap = p->checks_cap ? 2 * p->checks_cap : 8;
        s->checks = mem_realloc(s->checks, p->checks_cap * sizeof(*s->checks));
    }
    s->checks[s->n_checks] = (struct snap_check){.name = mem_strdup(name)};
    return &s->checks[s->n_checks++];
}

static struct snap_step *step_slot(struct snap *s, const char *name)
{
    struct snap_priv *p = priv(s);

    for (size_t i = 0; i < s->n_steps; i++) {
        if (strcmp(s->steps[i].name, name) == 0) {
            return &s->steps[i];
        }
    }
    if (s->n_steps + 1 >= SNAP_MAX_STEPS && strcmp(name, SNAP_OTHER) != 0) {
        if (!p->warned_steps) {
            p->warned_steps = true;
            log_warn("load: more than %d step names; the rest are counted "
                     "as \"%s\"",
                     SNAP_MAX_STEPS - 1, SNAP_OTHER);
        }
        return step_slot(s, SNAP_OTHER);
    }
    if (s->n_steps == p->steps_cap) {
        p->steps_cap = p->steps_cap ? 2 * p->steps_cap : 8;
        s->steps = mem_realloc(s->steps, p->steps_cap * sizeof(*s->steps));
    }
    s->steps[s->n_steps] = (struct snap_step){
        .name = mem_strdup(name), .duration_ns = new_hist(&p->hist)};
    return &s->steps[s->n_steps++];
}

static void record(struct hist *h, int64_t ns)
{
    /* Cannot fail: ns >= 0 and counts stay far below 2^64. */
    if (hist_record(h, ns < 0 ? 0 : ns) != 0) {
        abort();
    }
}

void snap_check(struct snap *s, const char *name, bool ok)
{
    struct snap_check *c = check_slot(s, name);

    if (ok) {
        c->passes++;
    } else {
        c->fails++;
    }
}

void snap_step(struct snap *s, const char *name, int64_t ns)
{
    record(step_slot(s, name)->duration_ns, ns);
}

void snap_iteration(struct snap *s, int64_t ns)
{
    record(s->iteration_ns, ns);
    s->iterations++;
}

int snap_merge(struct snap *dst, const struct snap *src)
{
    const struct hist_config *a = &cpriv(dst)->hist;
    const struct hist_config *b = &cpriv(src)->hist;

    if (a->highest_value != b->highest_value ||
        a->sub_bucket_bits != b->sub_bucket_bits ||
        a->significant_digits != b->significant_digits ||
        httpc_metrics_merge(dst->http, src->http) != 0) {
        return ST_INVALID;
    }
    dst->iterations += src->iterations;
    dst->interrupted += src->interrupted;
    dst->dropped += src->dropped;
    dst->vus = src->vus;
    dst->vus_max = src->vus_max > dst->vus_max ? src->vus_max : dst->vus_max;
    /* Same configurations and counts far below 2^64: cannot fail. */
    if (hist_merge(dst->iteration_ns, src->iteration_ns) != 0) {
        abort();
    }
    for (size_t i = 0; i < src->n_checks; i++) {
        const struct snap_check *c = &src->checks[i];
        struct snap_check *d;

        if (c->passes == 0 && c->fails == 0) {
            continue;
        }
        d = check_slot(dst, c->name);
        d->passes += c->passes;
        d->fails += c->fails;
    }
    for (size_t i = 0; i < src->n_steps; i++) {
        const struct snap_step *st = &src->steps[i];

        if (hist_count(st->duration_ns) == 0) {
            continue;
        }
        if (hist_merge(step_slot(dst, st->name)->duration_ns,
                       st->duration_ns) != 0) {
            abort();
        }
    }
    return 0;
}

const struct snap_check *snap_find_check(const struct snap *s, const char *name)
{
    for (size_t i = 0; i < s->n_checks; i++) {
        if (strcmp(s->checks[i].name, name) == 0) {
            return &s->checks[i];
        }
    }
    return NULL;
}

const struct snap_step *snap_find_step(const struct snap *s, const char *name)
{
    for (size_t i = 0; i < s->n_steps; i++) {
        if (strcmp(s->steps[i].name, name) == 0) {
            return &s->steps[i];
        }
    }
    return NULL;
}

/* ---- Wire form ---------------------------------------------------------
 *
 *   "HFS1"
 *   i64 highest_value, u32 sub_bucket_bits         (every histogram's)
 *   u64 iterations, interrupted, dropped; u32 vus, vus_max
 *   hist iteration_ns
 *   u32 n; n x (str name, u64 passes, u64 fails)     checks
 *   u32 n; n x (str name, hist duration_ns)          steps
 *   u64 folded; u32 n; n x request                   http
 *   request: str step, str name, u64 requests, failed, bytes_sent,
 *            bytes_received; u32 k; k x (u32 error, u64 count);
 *            u32 k; k x (u32 status, u64 count); 8 x hist (timings)
 *   str: u32 length, bytes (no NUL); hist: u32 length, hist_encode's form
 */

#define SNAP_STR_MAX 4096
/* Request names a decoded snapshot may hold (a worker keeps 64 by
 * default, HTTPC_MAX_NAMES_DEFAULT). */
#define SNAP_HTTP_MAX 1024

static void put_u32(struct buf *b, uint32_t v)
{
    unsigned char *p = buf_extend(b, 4);

    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put_u64(struct buf *b, uint64_t v)
{
    unsigned char *p = buf_extend(b, 8);

    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put_str(struct buf *b, const char *s)
{
    size_t n = strlen(s);

    if (n > SNAP_STR_MAX) {
        n = SNAP_STR_MAX;
    }
    put_u32(b, (uint32_t)n);
    buf_add(b, s, n);
}

static int put_hist(struct buf *b, const struct hist *h)
{
    struct buf tmp;
    int rc;

    buf_init(&tmp, 0);
    rc = hist_encode(h, &tmp);
    if (rc == ST_OK) {
        put_u32(b, (uint32_t)tmp.len);
        buf_add(b, tmp.data, tmp.len);
    }
    buf_cleanup(&tmp);
    return rc;
}

static bool stats_empty(const struct httpc_stats *st)
{
    return st->requests == 0 && hist_count(st->timings[0]) == 0;
}

int snap_encode(const struct snap *s, struct buf *out)
{
    struct buf b;
    struct hist_config hc = hist_get_config(s->iteration_ns);
    size_t n;
    uint32_t k;
    int rc = ST_OK;

    buf_init(&b, 0);
    buf_add(&b, SNAP_WIRE_MAGIC, 4);
    put_u64(&b, (uint64_t)hc.highest_value);
    put_u32(&b, (uint32_t)hc.sub_bucket_bits);
    put_u64(&b, s->iterations);
    put_u64(&b, s->interrupted);
    put_u64(&b, s->dropped);
    put_u32(&b, (uint32_t)(s->vus < 0 ? 0 : s->vus));
    put_u32(&b, (uint32_t)(s->vus_max < 0 ? 0 : s->vus_max));
    rc = put_hist(&b, s->iteration_ns);
    k = 0;
    for (size_t i = 0; i < s->n_checks; i++) {
        k += s->checks[i].passes || s->checks[i].fails;
    }
    put_u32(&b, k);
    for (size_t i = 0; i < s->n_checks; i++) {
        if (s->checks[i].passes || s->checks[i].fails) {
            put_str(&b, s->checks[i].name);
            put_u64(&b, s->checks[i].passes);
            put_u64(&b, s->checks[i].fails);
        }
    }
    k = 0;
    for (size_t i = 0; i < s->n_steps; i++) {
        k += hist_count(s->steps[i].duration_ns) != 0;
    }
    put_u32(&b, k);
    for (size_t i = 0; i < s->n_steps && rc == ST_OK; i++) {
        if (hist_count(s->steps[i].duration_ns) != 0) {
            put_str(&b, s->steps[i].name);
            rc = put_hist(&b, s->steps[i].duration_ns);
        }
    }
    n = httpc_metrics_count(s->http);
    put_u64(&b, httpc_metrics_folded(s->http));
    k = 0;
    for (size_t i = 0; i < n; i++) {
        k += !stats_empty(httpc_metrics_at(s->http, i));
    }
    put_u32(&b, k);
    for (size_t i = 0; i < n && rc == ST_OK; i++) {
        const struct httpc_stats *st = httpc_metrics_at(s->http, i);
        uint32_t ke = 0;
        uint32_t ks = 0;

        if (stats_empty(st)) {
            continue;
        }
        put_str(&b, st->step);
        put_str(&b, st->name);
        put_u64(&b, st->requests);
        put_u64(&b, st->failed);
        put_u64(&b, st->bytes_sent);
        put_u64(&b, st->bytes_received);
        for (int e = 0; e < HTTPC_ERR_COUNT; e++) {
            ke += st->errors[e] != 0;
        }
        put_u32(&b, ke);
        for (int e = 0; e < HTTPC_ERR_COUNT; e++) {
            if (st->errors[e] != 0) {
                put_u32(&b, (uint32_t)e);
                put_u64(&b, st->errors[e]);
            }
        }
        for (int c = 0; c < HTTPC_STATUS_SLOTS; c++) {
            ks += st->status[c] != 0;
        }
        put_u32(&b, ks);
        for (int c = 0; c < HTTPC_STATUS_SLOTS; c++) {
            if (st->status[c] != 0) {
                put_u32(&b, (uint32_t)c);
                put_u64(&b, st->status[c]);
            }
        }
        for (int t = 0; t < HTTPC_T_COUNT && rc == ST_OK; t++) {
            rc = put_hist(&b, st->timings[t]);
        }
    }
    if (rc == ST_OK) {
        if (out->max && out->len + b.len > out->max) {
            rc = ST_TOO_LARGE;
        } else {
            buf_add(out, b.data, b.len);
        }
    }
    buf_cleanup(&b);
    return rc;
}

/* A bounds-checked reader: once failed, every get returns 0. */
struct rd {
    const unsigned char *p;
    const unsigned char *end;
    bool failed;
    size_t budget; /* histogram heap still allowed */
};

static bool rd_need(struct rd *r, size_t n)
{
    if (r->failed || (size_t)(r->end - r->p) < n) {
        r->failed = true;
        return false;
    }
    return true;
}

static uint32_t get_u32(struct rd *r)
{
    uint32_t v = 0;

    if (!rd_need(r, 4)) {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)r->p[i] << (8 * i);
    }
    r->p += 4;
    return v;
}

static uint64_t get_u64(struct rd *r)
{
    uint64_t v = 0;

    if (!rd_need(r, 8)) {
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)r->p[i] << (8 * i);
    }
    r->p += 8;
    return v;
}

/* A NUL-terminated copy in tmp (room for SNAP_STR_MAX + 1), or NULL. */
static const char *get_str(struct rd *r, char *tmp)
{
    uint32_t n = get_u32(r);

    if (n > SNAP_STR_MAX || !rd_need(r, n) ||
        !utf8_is_clean((const char *)r->p, n) ||
        memchr(r->p, '\0', n) != NULL) {
        r->failed = true;
        return NULL;
    }
    memcpy(tmp, r->p, n);
    tmp[n] = '\0';
    r->p += n;
    return tmp;
}

/* Decodes a histogram with configuration like's into a new one. */
static struct hist *get_hist(struct rd *r, const struct hist *like)
{
    uint32_t n = get_u32(r);
    struct hist *h = NULL;
    size_t size = hist_memory_size(like);

    if (!rd_need(r, n) || size > r->budget) {
        r->failed = true;
        return NULL;
    }
    if (hist_decode(r->p, n, &h) != ST_OK) {
        r->failed = true;
        return NULL;
    }
    r->p += n;
    r->budget -= size;
    if (!hist_has_same_config(h, like)) {
        hist_free(h);
        r->failed = true;
        return NULL;
    }
    return h;
}

/* Adds the next histogram into dst (same configuration). */
static void merge_hist(struct rd *r, struct hist *dst)
{
    struct hist *h = get_hist(r, dst);

    if (h != NULL) {
        if (hist_merge(dst, h) != ST_OK) {
            r->failed = true;
        }
        hist_free(h);
    }
}

/* Adds b to *a, failing on overflow. */
static void add_u64(struct rd *r, uint64_t *a, uint64_t b)
{
    if (*a > UINT64_MAX - b) {
        r->failed = true;
        return;
    }
    *a += b;
}

static void decode_request(struct rd *r, struct snap *s)
{
    char step_buf[SNAP_STR_MAX + 1];
    char name_buf[SNAP_STR_MAX + 1];
    const char *step = get_str(r, step_buf);
    const char *name = get_str(r, name_buf);
    struct httpc_stats *st;
    bool folded;
    uint32_t k;

    if (step == NULL || name == NULL) {
        return;
    }
    /* One canonical form: each (step, name) once, never empty, errors
     * and codes in increasing order without zero counts. */
    if (httpc_metrics_find_step(s->http, step, name) != NULL) {
        r->failed = true;
        return;
    }
    st = httpc_metrics_slot(s->http, step, name, &folded);
    if (folded) {
        r->failed = true;
        return;
    }
    add_u64(r, &st->requests, get_u64(r));
    add_u64(r, &st->failed, get_u64(r));
    add_u64(r, &st->bytes_sent, get_u64(r));
    add_u64(r, &st->bytes_received, get_u64(r));
    k = get_u32(r);
    if (k > HTTPC_ERR_COUNT) {
        r->failed = true;
    }
    for (uint32_t i = 0, prev = 0; i < k && !r->failed; i++) {
        uint32_t e = get_u32(r);
        uint64_t n;

        if (e >= HTTPC_ERR_COUNT || (i > 0 && e <= prev)) {
            r->failed = true;
            break;
        }
        n = get_u64(r);
        r->failed = r->failed || n == 0;
        add_u64(r, &st->errors[e], n);
        prev = e;
    }
    k = get_u32(r);
    if (k > HTTPC_STATUS_SLOTS) {
        r->failed = true;
    }
    for (uint32_t i = 0, prev = 0; i < k && !r->failed; i++) {
        uint32_t c = get_u32(r);
        uint64_t n;

        if (c >= HTTPC_STATUS_SLOTS || (i > 0 && c <= prev)) {
            r->failed = true;
            break;
        }
        n = get_u64(r);
        r->failed = r->failed || n == 0;
        add_u64(r, &st->status[c], n);
        prev = c;
    }
    for (int t = 0; t < HTTPC_T_COUNT && !r->failed; t++) {
        merge_hist(r, st->timings[t]);
    }
    if (!r->failed && stats_empty(st)) {
        r->failed = true;
    }
}

int snap_decode(const void *data, size_t len, struct snap **out)
{
    struct rd r = {.p = data,
                   .end = (const unsigned char *)data + len,
                   .budget = SNAP_DECODE_MAX_MEMORY};
    struct httpc_config hc;
    struct snap *s = NULL;
    uint32_t vus;
    uint32_t vus_max;
    uint32_t n;
    uint64_t folded;
    char name_buf[SNAP_STR_MAX + 1];

    if (data == NULL || len < 4 || memcmp(data, SNAP_WIRE_MAGIC, 4) != 0) {
        return ST_PROTOCOL;
    }
    r.p += 4;
    memset(&hc, 0, sizeof(hc));
    hc.hist.highest_value = (int64_t)get_u64(&r);
    hc.hist.sub_bucket_bits = (int)get_u32(&r);
    if (r.failed || hc.hist.highest_value <= 0 ||
        hc.hist.highest_value > HIST_VALUE_LIMIT ||
        hc.hist.sub_bucket_bits <= 0 ||
        hc.hist.sub_bucket_bits > HIST_BITS_MAX) {
        return ST_PROTOCOL;
    }
    /* The names a snapshot may carry: the decoder keeps them all apart. */
    hc.max_names = SNAP_HTTP_MAX;
    if (snap_new(&hc, &s) != ST_OK) {
        return ST_PROTOCOL;
    }
    if (hist_get_config(s->iteration_ns).highest_value !=
        hc.hist.highest_value) {
        r.failed = true; /* not the normalised form an encoder writes */
    }
    s->iterations = get_u64(&r);
    s->interrupted = get_u64(&r);
    s->dropped = get_u64(&r);
    vus = get_u32(&r);
    vus_max = get_u32(&r);
    if (vus > INT32_MAX || vus_max > INT32_MAX) {
        r.failed = true;
    }
    s->vus = (int)vus;
    s->vus_max = (int)vus_max;
    merge_hist(&r, s->iteration_ns);
    n = get_u32(&r);
    if (n >= SNAP_MAX_CHECKS) {
        r.failed = true;
    }
    for (uint32_t i = 0; i < n && !r.failed; i++) {
        const char *name = get_str(&r, name_buf);
        struct snap_check *c;

        if (name == NULL || snap_find_check(s, name) != NULL) {
            r.failed = true;
            break;
        }
        c = check_slot(s, name);
        add_u64(&r, &c->passes, get_u64(&r));
        add_u64(&r, &c->fails, get_u64(&r));
        r.failed = r.failed || (c->passes == 0 && c->fails == 0);
    }
    n = get_u32(&r);
    if (n >= SNAP_MAX_STEPS) {
        r.failed = true;
    }
    for (uint32_t i = 0; i < n && !r.failed; i++) {
        const char *name = get_str(&r, name_buf);
        struct snap_step *st;

        if (name == NULL || snap_find_step(s, name) != NULL) {
            r.failed = true;
            break;
        }
        st = step_slot(s, name);
        merge_hist(&r, st->duration_ns);
        r.failed = r.failed || hist_count(st->duration_ns) == 0;
    }
    folded = get_u64(&r);
    n = get_u32(&r);
    if (n >= SNAP_HTTP_MAX) {
        r.failed = true;
    }
    /* Each request's eight histograms are allocated before they are
     * read: charge them up front. */
    for (uint32_t i = 0; i < n && !r.failed; i++) {
        size_t cost = HTTPC_T_COUNT * hist_memory_size(s->iteration_ns);

        if (cost > r.budget) {
            r.failed = true;
            break;
        }
        r.budget -= cost;
        decode_request(&r, s);
    }
    if (!r.failed) {
        httpc_metrics_add_folded(s->http, folded);
    }
    if (r.failed || r.p != r.end) {
        snap_free(s);
        return ST_PROTOCOL;
    }
    *out = s;
    return ST_OK;
}

struct snap *snap_new_like(const struct snap *like)
{
    struct httpc_config hc;
    struct snap *s = NULL;

    memset(&hc, 0, sizeof(hc));
    hc.hist = cpriv(like)->hist;
    hc.max_names = SNAP_HTTP_MAX;
    if (snap_new(&hc, &s) != ST_OK) {
        abort(); /* like's configuration was valid */
    }
    return s;
}
