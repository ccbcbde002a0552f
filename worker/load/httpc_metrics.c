/* httpc's per-name aggregates: an open-addressing table of keys over a
 * bounded array of stats, each with one histogram per timing. A key is
 * the step, a NUL and the request name: "\0GET /" outside any step. */
#include "httpc_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"

struct httpc_metrics {
    struct hist_config hist;
    size_t max_names;
    struct httpc_stats **entries; /* in order of first use */
    char **keys;                  /* entries[i]'s key, owning step and name */
    size_t *name_lens;            /* key lengths */
    uint64_t *hashes;
    size_t n;
    uint32_t *index; /* entry + 1, 0 = empty; a power of two >= 2 max */
    size_t index_len;
    struct httpc_stats *other;
    uint64_t folded;
    bool warned;
};

static const char *const error_texts[] = {
#define HTTPC_ERROR_TEXT(name, text) text,
    HTTPC_ERROR_MAP(HTTPC_ERROR_TEXT)
#undef HTTPC_ERROR_TEXT
};

static const char *const timing_texts[] = {
#define HTTPC_TIMING_TEXT(name, text) text,
    HTTPC_TIMING_MAP(HTTPC_TIMING_TEXT)
#undef HTTPC_TIMING_TEXT
};

const char *httpc_error_str(enum httpc_error e)
{
    return (unsigned)e < HTTPC_ERR_COUNT ? error_texts[e] : "unknown";
}

const char *httpc_timing_str(enum httpc_timing t)
{
    return (unsigned)t < HTTPC_T_COUNT ? timing_texts[t] : "unknown";
}

int httpc_config_resolve(const struct httpc_config *cfg,
                         struct httpc_config *out)
{
    struct httpc_config c;

    memset(&c, 0, sizeof(c));
    if (cfg != NULL) {
        c = *cfg;
    }
    if (c.timeout_ns < 0 || c.dns_ttl_ns < 0 ||
        c.max_header_bytes > HTTPC_MAX_HEADER_LIMIT || c.max_names == 1 ||
        c.max_names > 100000) {
        return ST_INVALID;
    }
    if (c.timeout_ns == 0) {
        c.timeout_ns = HTTPC_TIMEOUT_DEFAULT_NS;
    }
    if (c.max_header_bytes == 0) {
        c.max_header_bytes = HTTPC_MAX_HEADER_DEFAULT;
    }
    if (c.max_body_bytes == 0) {
        c.max_body_bytes = HTTPC_MAX_BODY_DEFAULT;
    }
    if (c.max_names == 0) {
        c.max_names = HTTPC_MAX_NAMES_DEFAULT;
    }
    if (c.dns_ttl_ns == 0) {
        c.dns_ttl_ns = HTTPC_DNS_TTL_DEFAULT_NS;
    }
    if (c.hist.highest_value == 0 && c.hist.significant_digits == 0 &&
        c.hist.sub_bucket_bits == 0) {
        c.hist.highest_value = INT64_C(3600) * 1000000000;
        c.hist.significant_digits = HIST_DEFAULT_DIGITS;
    }
    *out = c;
    return 0;
}

int httpc_metrics_new(const struct httpc_config *cfg,
                      struct httpc_metrics **out)
{
    struct httpc_config c;
    struct httpc_metrics *m;
    struct hist *probe = NULL;

    if (httpc_config_resolve(cfg, &c) != 0 || hist_new(&c.hist, &probe) != 0) {
        return ST_INVALID;
    }
    m = mem_zalloc(sizeof(*m));
    m->hist = hist_get_config(probe); /* normalised: see snap_new */
    hist_free(probe);
    m->max_names = c.max_names;
    m->entries = mem_calloc(m->max_names, sizeof(*m->entries));
    m->keys = mem_calloc(m->max_names, sizeof(*m->keys));
    m->name_lens = mem_calloc(m->max_names, sizeof(*m->name_lens));
    m->hashes = mem_calloc(m->max_names, sizeof(*m->hashes));
    m->index_len = 4;
    while (m->index_len < 2 * m->max_names) {
        m->index_len *= 2;
    }
    m->index = mem_calloc(m->index_len, sizeof(*m->index));
    *out = m;
    return 0;
}

static void stats_free(struct httpc_stats *s)
{
    for (int t = 0; t < HTTPC_T_COUNT; t++) {
        hist_free(s->timings[t]);
    }
    free(s);
}

void httpc_metrics_free(struct httpc_metrics *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        stats_free(m->entries[i]);
        free(m->keys[i]);
    }
    free(m->entries);
    free(m->keys);
    free(m->name_lens);
    free(m->hashes);
    free(m->index);
    free(m);
}

/* FNV-1a, 64 bits. */
static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* The index slot holding name, or the empty slot where it would go. */
static size_t index_probe(const struct httpc_metrics *m, const char *name,
                          size_t len, uint64_t h)
{
    size_t mask = m->index_len - 1;
    size_t i = (size_t)h & mask;

    for (;;) {
        uint32_t e = m->index[i];

        if (e == 0) {
            return i;
        }
        if (m->hashes[e - 1] == h && m->name_lens[e - 1] == len &&
            memcmp(m->keys[e - 1], name, len) == 0) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

/* Appends a new entry for the key of len bytes at index slot; m has
 * room. */
static struct httpc_stats *entry_add(struct httpc_metrics *m, size_t slot,
                                     const char *key, size_t len, uint64_t h)
{
    struct httpc_stats *s = mem_zalloc(sizeof(*s));
    char *k = mem_alloc(len + 1); /* NUL-terminated: the name's end */

    memcpy(k, key, len);
    k[len] = '\0';

    s->step = k;
    s->name = k + strlen(k) + 1;
    m->keys[m->n] = k;
    for (int t = 0; t < HTTPC_T_COUNT; t++) {
        /* The configuration was checked by httpc_metrics_new. */
        if (hist_new(&m->hist, &s->timings[t]) != 0) {
            abort();
        }
    }
    m->entries[m->n] = s;
    m->name_lens[m->n] = len;
    m->hashes[m->n] = h;
    m->n++;
    m->index[slot] = (uint32_t)m->n;
    return s;
}

/* The key "\0other" that folded requests go to. */
static const char other_key[] = "\0" HTTPC_OTHER_NAME;
#define OTHER_KEY_LEN (sizeof(other_key) - 1)

/* The stats of the key of len bytes, created when new, telling whether it
 * was folded into "other". */
static struct httpc_stats *slot_lookup(struct httpc_metrics *m, const char *key,
                                       size_t len, bool *folded)
{
    uint64_t h = name_hash(key, len);
    size_t slot = index_probe(m, key, len, h);
    bool is_other = len == OTHER_KEY_LEN && memcmp(key, other_key, len) == 0;

    *folded = false;
    if (m->index[slot] != 0) {
        return m->entries[m->index[slot] - 1];
    }
    if (is_other) {
        m->other = entry_add(m, slot, key, len, h);
        return m->other;
    }
    /* The last entry is kept for "other". */
    if (m->n + 1 < m->max_names) {
        return entry_add(m, slot, key, len, h);
    }
    *folded = true;
    if (!m->warned) {
        m->warned = true;
        log_warn("load: more than %zu request names; the rest are recorded "
                 "as \"%s\" (set a name on requests whose URLs carry ids)",
                 m->max_names - 1, HTTPC_OTHER_NAME);
    }
    if (m->other == NULL) {
        h = name_hash(other_key, OTHER_KEY_LEN);
        slot = index_probe(m, other_key, OTHER_KEY_LEN, h);
        m->other = entry_add(m, slot, other_key, OTHER_KEY_LEN, h);
    }
    return m->other;
}

/* Writes step's key with name into b, or into a fresh allocation returned
 * in *heap (to free) when b is too small. Returns the key; *len its
 * length. */
static const char *make_key(char *b, size_t cap, const char *step,
                            const char *name, size_t name_len, size_t *len,
                            char **heap)
{
    size_t step_len = strlen(step);
    char *k = b;

    *len = step_len + 1 + name_len;
    *heap = NULL;
    if (*len > cap) {
        k = *heap = mem_alloc(*len);
    }
    memcpy(k, step, step_len);
    k[step_len] = '\0';
    memcpy(k + step_len + 1, name, name_len);
    return k;
}

static void record_timing(struct hist *h, int64_t ns)
{
    /* Cannot fail: ns >= 0 and counts stay far below 2^64. */
    if (hist_record(h, ns < 0 ? 0 : ns) != 0) {
        abort();
    }
}

const char *httpc_metrics_record(struct httpc_metrics *m, const char *step,
                                 const char *name, size_t name_len,
                                 const struct httpc_response *r)
{
    char kb[256];
    char *heap;
    size_t len;
    const char *key =
        make_key(kb, sizeof(kb), step, name, name_len, &len, &heap);
    bool folded;
    struct httpc_stats *s = slot_lookup(m, key, len, &folded);

    free(heap);
    m->folded += folded;
    s->requests++;
    if (r->error != HTTPC_ERR_NONE || r->status < 200 || r->status > 399) {
        s->failed++;
    }
    s->errors[r->error]++;
    s->status[r->status > 0 && r->status < HTTPC_STATUS_SLOTS ? r->status
                                                              : 0]++;
    s->bytes_sent += r->bytes_sent;
    s->bytes_received += r->bytes_received;
    for (int t = 0; t < HTTPC_T_COUNT; t++) {
        record_timing(s->timings[t], r->timings_ns[t]);
    }
    return s->name;
}

/* Adds s's aggregates to d's. */
static void stats_add(struct httpc_stats *d, const struct httpc_stats *s)
{
    d->requests += s->requests;
    d->failed += s->failed;
    for (int e = 0; e < HTTPC_ERR_COUNT; e++) {
        d->errors[e] += s->errors[e];
    }
    for (int c = 0; c < HTTPC_STATUS_SLOTS; c++) {
        d->status[c] += s->status[c];
    }
    d->bytes_sent += s->bytes_sent;
    d->bytes_received += s->bytes_received;
    for (int t = 0; t < HTTPC_T_COUNT; t++) {
        /* Same configuration, and counts far below 2^64. */
        if (hist_merge(d->timings[t], s->timings[t]) != 0) {
            abort();
        }
    }
}

int httpc_metrics_merge(struct httpc_metrics *dst,
                        const struct httpc_metrics *src)
{
    if (dst->hist.highest_value != src->hist.highest_value ||
        dst->hist.significant_digits != src->hist.significant_digits ||
        dst->hist.sub_bucket_bits != src->hist.sub_bucket_bits) {
        return ST_INVALID;
    }
    for (size_t i = 0; i < src->n; i++) {
        const struct httpc_stats *s = src->entries[i];
        bool folded;
        struct httpc_stats *d =
            slot_lookup(dst, src->keys[i], src->name_lens[i], &folded);

        if (folded) {
            dst->folded += s->requests;
        }
        stats_add(d, s);
    }
    dst->folded += src->folded;
    return 0;
}

struct httpc_metrics *httpc_metrics_sum(const struct httpc_metrics *m)
{
    struct httpc_metrics *sum = mem_zalloc(sizeof(*sum));
    struct httpc_stats *d;
    bool folded;

    sum->hist = m->hist;
    sum->max_names = 2;
    sum->entries = mem_calloc(2, sizeof(*sum->entries));
    sum->keys = mem_calloc(2, sizeof(*sum->keys));
    sum->name_lens = mem_calloc(2, sizeof(*sum->name_lens));
    sum->hashes = mem_calloc(2, sizeof(*sum->hashes));
    sum->index_len = 4;
    sum->index = mem_calloc(sum->index_len, sizeof(*sum->index));
    d = slot_lookup(sum, "", 1, &folded); /* step "", name "" */
    for (size_t i = 0; i < m->n; i++) {
        stats_add(d, m->entries[i]);
    }
    return sum;
}

size_t httpc_metrics_count(const struct httpc_metrics *m)
{
    return m->n;
}

const struct httpc_stats *httpc_metrics_at(const struct httpc_metrics *m,
                                           size_t i)
{
    return i < m->n ? m->entries[i] : NULL;
}

const struct httpc_stats *httpc_metrics_find(const struct httpc_metrics *m,
                                             const char *name)
{
    return httpc_metrics_find_step(m, "", name);
}

const struct httpc_stats *httpc_metrics_find_step(const struct httpc_metrics *m,
                                                  const char *step,
                                                  const char *name)
{
    char kb[256];
    char *heap;
    size_t len;
    const char *key =
        make_key(kb, sizeof(kb), step, name, strlen(name), &len, &heap);
    size_t slot = index_probe(m, key, len, name_hash(key, len));

    free(heap);
    return m->index[slot] ? m->entries[m->index[slot] - 1] : NULL;
}

void httpc_metrics_reset(struct httpc_metrics *m)
{
    for (size_t i = 0; i < m->n; i++) {
        struct httpc_stats *s = m->entries[i];

        s->requests = s->failed = s->bytes_sent = s->bytes_received = 0;
        memset(s->errors, 0, sizeof(s->errors));
        memset(s->status, 0, sizeof(s->status));
        for (int t = 0; t < HTTPC_T_COUNT; t++) {
            hist_reset(s->timings[t]);
        }
    }
    m->folded = 0;
}

uint64_t httpc_metrics_folded(const struct httpc_metrics *m)
{
    return m->folded;
}

struct httpc_stats *httpc_metrics_slot(struct httpc_metrics *m,
                                       const char *step, const char *name,
                                       bool *folded)
{
    char kb[256];
    char *heap;
    size_t len;
    const char *key =
        make_key(kb, sizeof(kb), step, name, strlen(name), &len, &heap);
    struct httpc_stats *s = slot_lookup(m, key, len, folded);

    free(heap);
    return s;
}

void httpc_metrics_add_folded(struct httpc_metrics *m, uint64_t n)
{
    m->folded += n;
}

struct hist_config httpc_metrics_hist_config(const struct httpc_metrics *m)
{
    return m->hist;
}
