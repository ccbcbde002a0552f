/* httpc's per-name aggregates: an open-addressing table of request names
 * over a bounded array of stats, each with one histogram per timing. */
#include "httpc_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"

struct httpc_metrics {
    struct hist_config hist;
    size_t max_names;
    struct httpc_stats **entries; /* in order of first use */
    size_t *name_lens;
    uint64_t *hashes;
    size_t n;
    uint32_t *index; /* entry + 1, 0 = empty; a power of two >= 2 max */
    size_t index_len;
    struct httpc_stats *other;
    uint64_t folded;
    bool warned;
};

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
    hist_free(probe);
    m = mem_zalloc(sizeof(*m));
    m->hist = c.hist;
    m->max_names = c.max_names;
    m->entries = mem_calloc(m->max_names, sizeof(*m->entries));
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
    free(s->name);
    free(s);
}

void httpc_metrics_free(struct httpc_metrics *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        stats_free(m->entries[i]);
    }
    free(m->entries);
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
            memcmp(m->entries[e - 1]->name, name, len) == 0) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

/* Appends a new entry for name at index slot; m has room. */
static struct httpc_stats *entry_add(struct httpc_metrics *m, size_t slot,
                                     const char *name, size_t len, uint64_t h)
{
    struct httpc_stats *s = mem_zalloc(sizeof(*s));

    s->name = mem_strndup(name, len);
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

/* httpc_metrics_slot, telling whether name was folded into "other". */
static struct httpc_stats *
slot_lookup(struct httpc_metrics *m, const char *name, size_t len, bool *folded)
{
    uint64_t h = name_hash(name, len);
    size_t slot = index_probe(m, name, len, h);
    size_t other_len = strlen(HTTPC_OTHER_NAME);
    bool is_other =
        len == other_len && memcmp(name, HTTPC_OTHER_NAME, len) == 0;

    *folded = false;
    if (m->index[slot] != 0) {
        return m->entries[m->index[slot] - 1];
    }
    if (is_other) {
        m->other = entry_add(m, slot, name, len, h);
        return m->other;
    }
    /* The last entry is kept for "other". */
    if (m->n + 1 < m->max_names) {
        return entry_add(m, slot, name, len, h);
    }
    *folded = true;
    if (!m->warned) {
        m->warned = true;
        log_warn("load: more than %zu request names; the rest are recorded "
                 "as \"%s\" (set a name on requests whose URLs carry ids)",
                 m->max_names - 1, HTTPC_OTHER_NAME);
    }
    if (m->other == NULL) {
        h = name_hash(HTTPC_OTHER_NAME, other_len);
        slot = index_probe(m, HTTPC_OTHER_NAME, other_len, h);
        m->other = entry_add(m, slot, HTTPC_OTHER_NAME, other_len, h);
    }
    return m->other;
}

static void record_timing(struct hist *h, int64_t ns)
{
    /* Cannot fail: ns >= 0 and counts stay far below 2^64. */
    if (hist_record(h, ns < 0 ? 0 : ns) != 0) {
        abort();
    }
}

const char *httpc_metrics_record(struct httpc_metrics *m, const char *name,
                                 size_t len, const struct httpc_response *r)
{
    bool folded;
    struct httpc_stats *s = slot_lookup(m, name, len, &folded);

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
            slot_lookup(dst, s->name, src->name_lens[i], &folded);

        if (folded) {
            dst->folded += s->requests;
        }
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
    dst->folded += src->folded;
    return 0;
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
    size_t len = strlen(name);
    size_t slot = index_probe(m, name, len, name_hash(name, len));

    return m->index[slot] ? m->entries[m->index[slot] - 1] : NULL;
}

uint64_t httpc_metrics_folded(const struct httpc_metrics *m)
{
    return m->folded;
}
