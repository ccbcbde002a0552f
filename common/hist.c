/* Log-linear histogram: bucket arithmetic, statistics and the wire form.
 * docs/histogram.md describes the layout, the error bound and the format. */
#include "hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* First bytes of the wire form: a magic byte and the format version. */
#define HIST_WIRE_MAGIC 0x48 /* 'H' */
#define HIST_WIRE_VERSION 1
/* Longest LEB128 varint of a uint64_t. */
#define HIST_VARINT_MAX 10
/* Header: magic, version, bits, then eight varints. */
#define HIST_HEADER_MAX (3 + 8 * HIST_VARINT_MAX)
/* Room for a round series of hist_auto_buckets: 0, 19 decades of up to
 * three values, and the saturated end. */
#define HIST_SERIES_MAX 64

_Static_assert(sizeof(unsigned long long) == 8, "clz needs 64-bit long long");

/* An unsigned 128-bit integer: the exact sum of up to 2^64 samples below
 * 2^62 stays below 2^126. */
struct hist_u128 {
    uint64_t hi;
    uint64_t lo;
};

struct hist {
    uint64_t highest;  /* values above clamp to this */
    uint64_t sub_mask; /* 2^(bits+1) - 1: values up to it are exact */
    unsigned bits;     /* log2 of sub-buckets per power of two */
    size_t len;        /* entries in counts */
    uint64_t total;
    uint64_t overflow; /* samples clamped to highest */
    uint64_t min;      /* UINT64_MAX while empty */
    uint64_t max;
    struct hist_u128 sum;
    uint64_t counts[];
};

/* Smallest bits with 2^-bits <= 10^-digits, for digits 0..5. */
static const unsigned hist_digits_bits[HIST_DIGITS_MAX + 1] = {0,  4,  7,
                                                               10, 14, 17};

static void u128_add(struct hist_u128 *a, struct hist_u128 b)
{
    a->lo += b.lo;
    a->hi += b.hi + (a->lo < b.lo);
}

/* a -= b; a must be at least b. */
static void u128_sub(struct hist_u128 *a, uint64_t b)
{
    a->hi -= a->lo < b;
    a->lo -= b;
}

static struct hist_u128 u128_mul(uint64_t a, uint64_t b)
{
    uint64_t a_lo = a & 0xffffffffu;
    uint64_t a_hi = a >> 32;
    uint64_t b_lo = b & 0xffffffffu;
    uint64_t b_hi = b >> 32;
    uint64_t ll = a_lo * b_lo;
    uint64_t lh = a_lo * b_hi;
    uint64_t hl = a_hi * b_lo;
    uint64_t hh = a_hi * b_hi;
    uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    struct hist_u128 r;

    r.lo = (mid << 32) | (ll & 0xffffffffu);
    r.hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return r;
}

static int u128_cmp(struct hist_u128 a, struct hist_u128 b)
{
    if (a.hi != b.hi) {
        return a.hi < b.hi ? -1 : 1;
    }
    if (a.lo != b.lo) {
        return a.lo < b.lo ? -1 : 1;
    }
    return 0;
}

static double u128_to_double(struct hist_u128 a)
{
    return (double)a.hi * 18446744073709551616.0 + (double)a.lo;
}

static inline unsigned hist_clz64(uint64_t v)
{
#if defined(__GNUC__)
    return (unsigned)__builtin_clzll(v);
#else
    unsigned n = 0;

    if (!(v >> 32)) {
        n += 32;
        v <<= 32;
    }
    if (!(v >> 48)) {
        n += 16;
        v <<= 16;
    }
    if (!(v >> 56)) {
        n += 8;
        v <<= 8;
    }
    if (!(v >> 60)) {
        n += 4;
        v <<= 4;
    }
    if (!(v >> 62)) {
        n += 2;
        v <<= 2;
    }
    if (!(v >> 63)) {
        n += 1;
    }
    return n;
#endif
}

/* The bucket of v is the position of its top bit above bits (0 for values
 * up to sub_mask, which has bit `bits` set so clz never sees 0); within it
 * the sub-bucket is v's top bits+1 bits. Buckets after the first use only
 * the upper half of their sub-buckets, so index = bucket * 2^bits + (v >>
 * bucket) is dense. No loop, division or floating point. */
static inline size_t hist_index_of(unsigned bits, uint64_t sub_mask, uint64_t v)
{
    unsigned bucket = 63u - hist_clz64(v | sub_mask) - bits;

    return (size_t)(((uint64_t)bucket << bits) + (v >> bucket));
}

static inline size_t hist_index(const struct hist *h, uint64_t v)
{
    return hist_index_of(h->bits, h->sub_mask, v);
}

static unsigned hist_index_bucket(const struct hist *h, size_t i)
{
    uint64_t b = (uint64_t)i >> h->bits;

    return b > 0 ? (unsigned)(b - 1) : 0;
}

static uint64_t hist_index_low(const struct hist *h, size_t i)
{
    unsigned bucket = hist_index_bucket(h, i);

    return ((uint64_t)i - ((uint64_t)bucket << h->bits)) << bucket;
}

static uint64_t hist_index_high(const struct hist *h, size_t i)
{
    unsigned bucket = hist_index_bucket(h, i);

    return hist_index_low(h, i) + ((UINT64_C(1) << bucket) - 1);
}

static uint64_t hist_clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
    if (v < lo) {
        return lo;
    }
    return v > hi ? hi : v;
}

/* Checks cfg and derives the precision in bits. */
static int hist_config_bits(const struct hist_config *cfg, unsigned *bits)
{
    if (!cfg || cfg->highest_value < 1 ||
        cfg->highest_value > HIST_VALUE_LIMIT) {
        return ST_INVALID;
    }
    if (cfg->significant_digits && cfg->sub_bucket_bits) {
        return ST_INVALID;
    }
    if (cfg->significant_digits) {
        if (cfg->significant_digits < 1 ||
            cfg->significant_digits > HIST_DIGITS_MAX) {
            return ST_INVALID;
        }
        *bits = hist_digits_bits[cfg->significant_digits];
        return ST_OK;
    }
    if (cfg->sub_bucket_bits) {
        if (cfg->sub_bucket_bits < 1 || cfg->sub_bucket_bits > HIST_BITS_MAX) {
            return ST_INVALID;
        }
        *bits = (unsigned)cfg->sub_bucket_bits;
        return ST_OK;
    }
    *bits = hist_digits_bits[HIST_DEFAULT_DIGITS];
    return ST_OK;
}

static size_t hist_len_for(unsigned bits, uint64_t highest)
{
    return hist_index_of(bits, (UINT64_C(2) << bits) - 1, highest) + 1;
}

static void hist_clear_stats(struct hist *h)
{
    h->total = 0;
    h->overflow = 0;
    h->min = UINT64_MAX;
    h->max = 0;
    h->sum.hi = 0;
    h->sum.lo = 0;
}

/* bits and highest must be valid. */
static struct hist *hist_alloc(unsigned bits, uint64_t highest)
{
    size_t len = hist_len_for(bits, highest);
    /* Zeroed by calloc: a large, mostly idle configuration costs no page
     * until it is used. */
    struct hist *h =
        mem_zalloc(sizeof(struct hist) + len * sizeof(h->counts[0]));

    h->highest = highest;
    h->sub_mask = (UINT64_C(2) << bits) - 1;
    h->bits = bits;
    h->len = len;
    hist_clear_stats(h);
    return h;
}

int hist_new(const struct hist_config *cfg, struct hist **out)
{
    unsigned bits;
    int rc = hist_config_bits(cfg, &bits);

    if (rc != ST_OK || !out) {
        return ST_INVALID;
    }
    *out = hist_alloc(bits, (uint64_t)cfg->highest_value);
    return ST_OK;
}

void hist_free(struct hist *h)
{
    free(h);
}

void hist_reset(struct hist *h)
{
    hist_clear_stats(h);
    memset(h->counts, 0, h->len * sizeof(h->counts[0]));
}

struct hist *hist_copy(const struct hist *h)
{
    struct hist *c = mem_alloc(hist_memory_size(h));

    memcpy(c, h, hist_memory_size(h));
    return c;
}

size_t hist_memory_size(const struct hist *h)
{
    return sizeof(struct hist) + h->len * sizeof(h->counts[0]);
}

int hist_record(struct hist *h, int64_t value)
{
    uint64_t v = (uint64_t)value;

    if (value < 0) {
        return ST_INVALID;
    }
    if (h->total == UINT64_MAX) {
        return ST_TOO_LARGE;
    }
    if (v > h->highest) {
        v = h->highest;
        h->overflow++;
    }
    h->counts[hist_index(h, v)]++;
    h->total++;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
    h->sum.lo += v;
    h->sum.hi += h->sum.lo < v;
    return ST_OK;
}

int hist_record_n(struct hist *h, int64_t value, uint64_t count)
{
    uint64_t v = (uint64_t)value;

    if (value < 0) {
        return ST_INVALID;
    }
    if (count == 0) {
        return ST_OK;
    }
    if (count > UINT64_MAX - h->total) {
        return ST_TOO_LARGE;
    }
    if (v > h->highest) {
        v = h->highest;
        h->overflow += count;
    }
    h->counts[hist_index(h, v)] += count;
    h->total += count;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
    u128_add(&h->sum, u128_mul(v, count));
    return ST_OK;
}

bool hist_has_same_config(const struct hist *a, const struct hist *b)
{
    return a->bits == b->bits && a->highest == b->highest;
}

int hist_merge(struct hist *dst, const struct hist *src)
{
    size_t end;

    if (!hist_has_same_config(dst, src)) {
        return ST_INVALID;
    }
    if (src->total > UINT64_MAX - dst->total) {
        return ST_TOO_LARGE;
    }
    if (src->total == 0) {
        return ST_OK;
    }
    /* Every bucket count is at most the total, so none can overflow. */
    end = hist_index(src, src->max);
    for (size_t i = hist_index(src, src->min); i <= end; i++) {
        dst->counts[i] += src->counts[i];
    }
    dst->total += src->total;
    dst->overflow += src->overflow;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
    u128_add(&dst->sum, src->sum);
    return ST_OK;
}

bool hist_is_equal(const struct hist *a, const struct hist *b)
{
    return hist_has_same_config(a, b) && a->total == b->total &&
           a->overflow == b->overflow && a->min == b->min && a->max == b->max &&
           a->sum.hi == b->sum.hi && a->sum.lo == b->sum.lo &&
           memcmp(a->counts, b->counts, a->len * sizeof(a->counts[0])) == 0;
}

struct hist_config hist_get_config(const struct hist *h)
{
    struct hist_config cfg = {
        .highest_value = (int64_t)h->highest,
        .significant_digits = 0,
        .sub_bucket_bits = (int)h->bits,
    };

    return cfg;
}

uint64_t hist_count(const struct hist *h)
{
    return h->total;
}

uint64_t hist_overflow_count(const struct hist *h)
{
    return h->overflow;
}

int64_t hist_min(const struct hist *h)
{
    return h->total ? (int64_t)h->min : 0;
}

int64_t hist_max(const struct hist *h)
{
    return (int64_t)h->max;
}

double hist_mean(const struct hist *h)
{
    if (h->total == 0) {
        return 0.0;
    }
    return u128_to_double(h->sum) / (double)h->total;
}

double hist_stddev(const struct hist *h)
{
    double mean = hist_mean(h);
    double acc = 0.0;
    size_t end;

    if (h->total == 0) {
        return 0.0;
    }
    end = hist_index(h, h->max);
    for (size_t i = hist_index(h, h->min); i <= end; i++) {
        uint64_t low;
        uint64_t mid;
        double d;

        if (!h->counts[i]) {
            continue;
        }
        low = hist_index_low(h, i);
        mid = low + (hist_index_high(h, i) - low) / 2;
        d = (double)hist_clamp(mid, h->min, h->max) - mean;
        acc += (double)h->counts[i] * d * d;
    }
    return sqrt(acc / (double)h->total);
}

/* Nearest rank, 1..total, for p in (0, 100). The slack keeps a product such
 * as 99.9 / 100 * 1000 = 999.0000000000001 from moving up one rank. */
static uint64_t hist_rank(uint64_t total, double p)
{
    double x = p / 100.0 * (double)total;
    uint64_t rank;

    if (x >= (double)total) {
        return total;
    }
    rank = (uint64_t)x;
    if ((double)rank < x - x * 1e-12) {
        rank++;
    }
    if (rank < 1) {
        rank = 1;
    }
    return rank > total ? total : rank;
}

int64_t hist_value_at_percentile(const struct hist *h, double p)
{
    uint64_t rank;
    uint64_t seen = 0;
    size_t end;

    if (h->total == 0) {
        return 0;
    }
    if (!(p > 0.0)) {
        return (int64_t)h->min;
    }
    if (p >= 100.0) {
        return (int64_t)h->max;
    }
    rank = hist_rank(h->total, p);
    end = hist_index(h, h->max);
    for (size_t i = hist_index(h, h->min); i <= end; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t high = hist_index_high(h, i);

            return (int64_t)(high < h->max ? high : h->max);
        }
    }
    return (int64_t)h->max;
}

uint64_t hist_count_le(const struct hist *h, int64_t value)
{
    uint64_t v = (uint64_t)value;
    uint64_t n = 0;
    size_t first;
    size_t i;

    if (h->total == 0 || value < 0 || v < h->min) {
        return 0;
    }
    if (v >= h->max) {
        return h->total;
    }
    /* min <= v < max <= highest: v's bucket counts only if v is its top. */
    first = hist_index(h, h->min);
    i = hist_index(h, v);
    if (hist_index_high(h, i) == v) {
        i++;
    }
    for (size_t j = first; j < i; j++) {
        n += h->counts[j];
    }
    return n;
}

static uint64_t hist_clamp_value(const struct hist *h, int64_t value)
{
    if (value < 0) {
        return 0;
    }
    return (uint64_t)value > h->highest ? h->highest : (uint64_t)value;
}

int64_t hist_lowest_equivalent(const struct hist *h, int64_t value)
{
    return (int64_t)hist_index_low(h,
                                   hist_index(h, hist_clamp_value(h, value)));
}

int64_t hist_highest_equivalent(const struct hist *h, int64_t value)
{
    return (int64_t)hist_index_high(h,
                                    hist_index(h, hist_clamp_value(h, value)));
}

void hist_iter_init(struct hist_iter *it, const struct hist *h)
{
    it->h = h;
    it->next = h->total ? hist_index(h, h->min) : h->len;
    it->low = 0;
    it->high = 0;
    it->count = 0;
}

bool hist_iter_next(struct hist_iter *it)
{
    const struct hist *h = it->h;
    size_t end;

    if (h->total == 0) {
        return false;
    }
    end = hist_index(h, h->max);
    while (it->next <= end) {
        size_t i = it->next++;

        if (h->counts[i]) {
            it->low = (int64_t)hist_index_low(h, i);
            it->high = (int64_t)hist_index_high(h, i);
            it->count = h->counts[i];
            return true;
        }
    }
    return false;
}

/* ---- Auto buckets ---- */

/* The non-empty buckets, each as its highest value clamped to [min, max],
 * with running counts: how hist_auto_buckets counts a range. */
struct hist_cum {
    uint64_t *val; /* ascending */
    uint64_t *cum; /* cum[i]: samples in the buckets before i */
    size_t n;
};

static void hist_cum_init(struct hist_cum *c, const struct hist *h)
{
    size_t first = hist_index(h, h->min);
    size_t end = hist_index(h, h->max);
    size_t n = 0;

    for (size_t i = first; i <= end; i++) {
        n += h->counts[i] != 0;
    }
    c->val = mem_calloc(n, sizeof(c->val[0]));
    c->cum = mem_calloc(n + 1, sizeof(c->cum[0]));
    c->n = 0;
    for (size_t i = first; i <= end; i++) {
        if (h->counts[i]) {
            c->val[c->n] = hist_clamp(hist_index_high(h, i), h->min, h->max);
            c->cum[c->n + 1] = c->cum[c->n] + h->counts[i];
            c->n++;
        }
    }
}

static void hist_cum_cleanup(struct hist_cum *c)
{
    free(c->val);
    free(c->cum);
}

/* Samples counted below bound x. */
static uint64_t hist_cum_below(const struct hist_cum *c, int64_t x)
{
    size_t lo = 0;
    size_t hi = c->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (c->val[mid] < (uint64_t)x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return c->cum[lo];
}

static uint64_t hist_sat_mul(uint64_t a, uint64_t b)
{
    if (a && b > (uint64_t)INT64_MAX / a) {
        return (uint64_t)INT64_MAX;
    }
    return a * b;
}

/* Bounds b[0] <= min < b[1] < ... < b[k] > max of one candidate layout. */
struct hist_bounds {
    int64_t b[HIST_SERIES_MAX + 1];
    size_t k; /* ranges */
};

/* Multiples of the smallest step 1, 2 or 5 x 10^j that needs at most n
 * ranges and spans at least four of the widest buckets: a bucket that
 * straddles a bound lands wholly on one side, which must not swing a
 * range's count by more than a quarter. A step above max and that width
 * needs one range, so this always succeeds. */
static void hist_bounds_linear(const struct hist *h, size_t n,
                               struct hist_bounds *out)
{
    static const unsigned mant[] = {1, 2, 5};
    size_t top = hist_index(h, h->max);
    uint64_t min_step = 1;
    uint64_t decade = 1;

    if (h->min != h->max) {
        min_step = 4 * (hist_index_high(h, top) - hist_index_low(h, top) + 1);
    }
    for (unsigned j = 0;; j = (j + 1) % 3) {
        uint64_t step = hist_sat_mul(decade, mant[j]);
        uint64_t lo = h->min / step;
        uint64_t hi = h->max / step;

        if (step >= min_step && hi - lo + 1 <= n) {
            out->k = (size_t)(hi - lo + 1);
            for (size_t i = 0; i <= out->k; i++) {
                out->b[i] = (int64_t)hist_sat_mul(lo + i, step);
            }
            return;
        }
        if (j == 2) {
            decade = hist_sat_mul(decade, 10);
        }
    }
}

/* 0, then m x 10^e for m in mant, ascending, ending with the first value
 * at INT64_MAX (saturated). Returns how many. */
static size_t hist_series(const unsigned *mant, size_t n_mant, uint64_t *vals)
{
    uint64_t scale = 1;
    size_t n = 0;

    vals[n++] = 0;
    for (;;) {
        for (size_t j = 0; j < n_mant; j++) {
            vals[n] = hist_sat_mul(scale, mant[j]);
            if (vals[n++] == (uint64_t)INT64_MAX) {
                return n;
            }
        }
        scale = hist_sat_mul(scale, 10);
    }
}

/* How much a layout lumps samples together: the sum of the squared range
 * counts, lowest when the samples spread evenly over many ranges. */
static double hist_lumpiness(const struct hist_cum *c,
                             const struct hist_bounds *bd)
{
    double sq = 0.0;

    for (size_t i = 0; i < bd->k; i++) {
        double n = (double)(hist_cum_below(c, bd->b[i + 1]) -
                            hist_cum_below(c, bd->b[i]));

        sq += n * n;
    }
    return sq;
}

/* Tries the layouts of one series: from the series value at or below min
 * to the one above max, in up to n ranges; when that takes more, a window
 * of consecutive values with the head and the tail lumped into one range
 * each, for every window position. Keeps in best the least lumpy one. */
static void hist_try_series(const struct hist *h, const struct hist_cum *c,
                            size_t n, const unsigned *mant, size_t n_mant,
                            struct hist_bounds *best, double *best_lumpiness)
{
    uint64_t vals[HIST_SERIES_MAX];
    size_t nv = hist_series(mant, n_mant, vals);
    size_t i0 = 0;
    size_t i1;

    while (vals[i0 + 1] <= h->min) {
        i0++;
    }
    i1 = i0 + 1;
    while (vals[i1] <= h->max) {
        i1++;
    }
    for (size_t a = i0; a < i1 && a < nv; a++) {
        struct hist_bounds bd;
        size_t j = a > i0 ? a : i0 + 1;
        double lumpiness;

        bd.k = 0;
        bd.b[0] = (int64_t)vals[i0];
        while (j < i1 && bd.k + 1 < n) {
            bd.b[++bd.k] = (int64_t)vals[j++];
        }
        bd.b[++bd.k] = (int64_t)vals[i1];
        lumpiness = hist_lumpiness(c, &bd);
        if (lumpiness < *best_lumpiness) {
            *best_lumpiness = lumpiness;
            *best = bd;
        }
        if (j == i1 && a == i0) {
            /* Everything fits without lumps. */
            break;
        }
    }
}

size_t hist_auto_buckets(const struct hist *h, size_t n, struct hist_range *out)
{
    static const unsigned m125[] = {1, 2, 5};
    static const unsigned m13[] = {1, 3};
    static const unsigned m1[] = {1};
    struct hist_cum c;
    struct hist_bounds best;
    double best_lumpiness;

    if (h->total == 0 || n == 0) {
        return 0;
    }
    /* No layout here has more ranges than a series has values. */
    if (n > HIST_SERIES_MAX) {
        n = HIST_SERIES_MAX;
    }
    hist_cum_init(&c, h);
    hist_bounds_linear(h, n, &best);
    best_lumpiness = hist_lumpiness(&c, &best);
    hist_try_series(h, &c, n, m125, 3, &best, &best_lumpiness);
    hist_try_series(h, &c, n, m13, 2, &best, &best_lumpiness);
    hist_try_series(h, &c, n, m1, 1, &best, &best_lumpiness);
    for (size_t i = 0; i < best.k; i++) {
        out[i].low = best.b[i];
        out[i].high = best.b[i + 1];
        out[i].count =
            hist_cum_below(&c, best.b[i + 1]) - hist_cum_below(&c, best.b[i]);
    }
    hist_cum_cleanup(&c);
    return best.k;
}

/* ---- Wire form ---- */

static size_t hist_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

int hist_encode(const struct hist *h, struct buf *out)
{
    uint64_t npairs = 0;
    uint8_t *tmp;
    size_t n = 0;
    size_t first = 0;
    size_t end = 0;
    uint64_t prev = 0;
    int rc;

    if (h->total) {
        first = hist_index(h, h->min);
        end = hist_index(h, h->max);
        for (size_t i = first; i <= end; i++) {
            npairs += h->counts[i] != 0;
        }
    }
    tmp = mem_alloc(HIST_HEADER_MAX + (size_t)npairs * 2 * HIST_VARINT_MAX);
    tmp[n++] = HIST_WIRE_MAGIC;
    tmp[n++] = HIST_WIRE_VERSION;
    tmp[n++] = (uint8_t)h->bits;
    n += hist_put_varint(tmp + n, h->highest);
    n += hist_put_varint(tmp + n, h->total);
    n += hist_put_varint(tmp + n, h->overflow);
    n += hist_put_varint(tmp + n, h->total ? h->min : 0);
    n += hist_put_varint(tmp + n, h->max);
    n += hist_put_varint(tmp + n, h->sum.lo);
    n += hist_put_varint(tmp + n, h->sum.hi);
    n += hist_put_varint(tmp + n, npairs);
    for (size_t i = first; npairs && i <= end; i++) {
        if (!h->counts[i]) {
            continue;
        }
        /* The first delta is the index itself. */
        n += hist_put_varint(tmp + n, i - prev);
        n += hist_put_varint(tmp + n, h->counts[i]);
        prev = i;
    }
    rc = buf_append(out, tmp, n);
    free(tmp);
    return rc;
}

/* Reads one LEB128 varint, refusing overlong forms and values past 64 bits
 * so that every value has exactly one encoding. */
static int hist_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < HIST_VARINT_MAX; i++) {
        uint8_t byte;

        if (*p == end) {
            return ST_PROTOCOL;
        }
        byte = *(*p)++;
        if (i == HIST_VARINT_MAX - 1 && byte > 1) {
            return ST_PROTOCOL;
        }
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            if (byte == 0 && i > 0) {
                return ST_PROTOCOL;
            }
            *out = v;
            return ST_OK;
        }
    }
    return ST_PROTOCOL;
}

struct hist_header {
    unsigned bits;
    uint64_t highest;
    uint64_t total;
    uint64_t overflow;
    uint64_t min;
    uint64_t max;
    struct hist_u128 sum;
    uint64_t npairs;
};

/* Reads and checks everything before the pairs, so that nothing is
 * allocated for a header that cannot be right. */
static int hist_decode_header(const uint8_t **p, const uint8_t *end,
                              struct hist_header *hd)
{
    uint64_t *fields[] = {&hd->highest, &hd->total, &hd->overflow,
                          &hd->min,     &hd->max,   &hd->sum.lo,
                          &hd->sum.hi,  &hd->npairs};

    if (end - *p < 3 || (*p)[0] != HIST_WIRE_MAGIC ||
        (*p)[1] != HIST_WIRE_VERSION) {
        return ST_PROTOCOL;
    }
    hd->bits = (*p)[2];
    *p += 3;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (hist_get_varint(p, end, fields[i]) != ST_OK) {
            return ST_PROTOCOL;
        }
    }
    if (hd->bits < 1 || hd->bits > HIST_BITS_MAX || hd->highest < 1 ||
        hd->highest > (uint64_t)HIST_VALUE_LIMIT) {
        return ST_PROTOCOL;
    }
    if (hd->total == 0) {
        bool zero = !hd->overflow && !hd->min && !hd->max && !hd->sum.lo &&
                    !hd->sum.hi && !hd->npairs;

        return zero ? ST_OK : ST_PROTOCOL;
    }
    if (hd->min > hd->max || hd->max > hd->highest ||
        hd->overflow > hd->total || (hd->overflow && hd->max != hd->highest) ||
        (hd->overflow == hd->total && hd->min != hd->max) ||
        (hd->total == 1 && hd->min != hd->max)) {
        return ST_PROTOCOL;
    }
    /* Each pair takes at least two bytes and one bucket. */
    if (hd->npairs < 1 || hd->npairs > (uint64_t)(end - *p) / 2 ||
        hd->npairs > hist_len_for(hd->bits, hd->highest)) {
        return ST_PROTOCOL;
    }
    return ST_OK;
}

/* Reads the pairs into h (empty, configured from hd) and checks them
 * against the header: indices in range and increasing, counts adding up to
 * the total, min and max in the first and last buckets, overflow within the
 * top bucket, and a sum that some set of samples with these buckets, min,
 * max and overflow could have. */
static int hist_decode_pairs(const uint8_t **p, const uint8_t *end,
                             const struct hist_header *hd, struct hist *h)
{
    struct hist_u128 lower = {0, 0};
    struct hist_u128 upper = {0, 0};
    uint64_t seen = 0;
    size_t first = 0;
    size_t idx = 0;
    uint64_t keep;

    for (uint64_t n = 0; n < hd->npairs; n++) {
        uint64_t delta;
        uint64_t count;

        if (hist_get_varint(p, end, &delta) != ST_OK ||
            hist_get_varint(p, end, &count) != ST_OK) {
            return ST_PROTOCOL;
        }
        if (n == 0) {
            if (delta >= h->len) {
                return ST_PROTOCOL;
            }
            idx = first = (size_t)delta;
        } else {
            if (delta == 0 || delta > h->len - 1 - idx) {
                return ST_PROTOCOL;
            }
            idx += (size_t)delta;
        }
        if (count == 0 || count > hd->total - seen) {
            return ST_PROTOCOL;
        }
        seen += count;
        h->counts[idx] = count;
        u128_add(&lower, u128_mul(count, hist_clamp(hist_index_low(h, idx),
                                                    hd->min, hd->max)));
        u128_add(&upper, u128_mul(count, hist_clamp(hist_index_high(h, idx),
                                                    hd->min, hd->max)));
    }
    if (*p != end || seen != hd->total || first != hist_index(h, hd->min) ||
        idx != hist_index(h, hd->max) ||
        hd->overflow > h->counts[hist_index(h, hd->highest)]) {
        return ST_PROTOCOL;
    }
    /* At least one sample is min and max(1, overflow) samples are max
     * (distinct ones unless min == max, as the header checks ensured). */
    keep = hd->overflow > 1 ? hd->overflow : 1;
    u128_add(&lower, u128_mul(keep, hd->max - hist_clamp(hist_index_low(h, idx),
                                                         hd->min, hd->max)));
    /* upper includes the first bucket's clamped top, so this cannot wrap. */
    u128_sub(&upper,
             hist_clamp(hist_index_high(h, first), hd->min, hd->max) - hd->min);
    if (u128_cmp(hd->sum, lower) < 0 || u128_cmp(hd->sum, upper) > 0) {
        return ST_PROTOCOL;
    }
    return ST_OK;
}

int hist_decode(const void *data, size_t len, struct hist **out)
{
    const uint8_t *p = data;
    const uint8_t *end;
    struct hist_header hd;
    struct hist *h = NULL;
    int rc;

    if (!out || (!data && len)) {
        return ST_INVALID;
    }
    if (len == 0) {
        return ST_PROTOCOL;
    }
    end = p + len;
    rc = hist_decode_header(&p, end, &hd);
    if (rc != ST_OK) {
        return rc;
    }
    h = hist_alloc(hd.bits, hd.highest);
    if (hd.total) {
        rc = hist_decode_pairs(&p, end, &hd, h);
        if (rc != ST_OK) {
            goto free_hist;
        }
        h->total = hd.total;
        h->overflow = hd.overflow;
        h->min = hd.min;
        h->max = hd.max;
        h->sum = hd.sum;
    } else if (p != end) {
        rc = ST_PROTOCOL;
        goto free_hist;
    }
    *out = h;
    return ST_OK;

free_hist:
    hist_free(h);
    return rc;
}
