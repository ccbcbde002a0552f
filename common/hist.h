/* Log-linear histogram of non-negative integer values (latencies in any
 * unit) in the style of HdrHistogram: fixed memory, O(1) recording, exact
 * merging and a compact wire form. Layout and format: docs/histogram.md. */
#ifndef HANDOFF_HIST_H
#define HANDOFF_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

/* Largest highest_value a configuration may ask for (about 4.6e18; an hour
 * in ns is 3.6e12). Leaves headroom so range bounds never overflow. */
#define HIST_VALUE_LIMIT ((INT64_C(1) << 62) - 1)
/* Precision limits: 1..5 significant digits or 1..17 sub-bucket bits. */
#define HIST_DIGITS_MAX 5
#define HIST_BITS_MAX 17
/* Handoff's default precision: 2 digits, i.e. 7 bits, error < 0.79 %. */
#define HIST_DEFAULT_DIGITS 2

/* Precision: every power-of-two range [2^e, 2^(e+1)) with e >= bits is cut
 * into 2^bits equal sub-buckets; values below 2^(bits+1) are kept exactly.
 * A bucket's width is therefore at most 2^-bits of its lowest value, and a
 * value reported for a bucket (its highest value) exceeds any sample in it
 * by less than 2^-bits of that sample:
 *
 *     digits  bits  relative error below    digits  bits  error below
 *          1     4  6.25 %                       4    14  0.0062 %
 *          2     7  0.79 %  (default)            5    17  0.00077 %
 *          3    10  0.098 %
 *
 * Set exactly one of significant_digits and sub_bucket_bits, or neither for
 * the default. digits d picks the smallest bits with 2^-bits <= 10^-d. */
struct hist_config {
    int64_t highest_value;  /* 1..HIST_VALUE_LIMIT; larger values clamp */
    int significant_digits; /* 1..HIST_DIGITS_MAX, or 0 */
    int sub_bucket_bits;    /* 1..HIST_BITS_MAX, or 0 */
};

/* A histogram. Not thread-safe: one thread records into it and reads it; the
 * load engine keeps one per thread and merges them. Distinct histograms may
 * be used from distinct threads freely. */
struct hist;

/* One non-empty bucket, as hist_iter_next yields it. */
struct hist_iter {
    const struct hist *h; /* private */
    size_t next;          /* private: next bucket index to look at */
    int64_t low;          /* lowest value that falls in the bucket */
    int64_t high;         /* highest value that falls in it, inclusive */
    uint64_t count;       /* samples in it, >= 1 */
};

/* A human-friendly range of values [low, high) and the samples in it. */
struct hist_range {
    int64_t low;
    int64_t high; /* exclusive */
    uint64_t count;
};

/* Allocates an empty histogram of fixed size for cfg (borrowed). Returns 0
 * with *out owned by the caller (hist_free), or ST_INVALID when cfg is out
 * of range. Any thread. */
MUST_CHECK int hist_new(const struct hist_config *cfg, struct hist **out);
/* Releases h. NULL does nothing. */
void hist_free(struct hist *h);
/* Empties h, keeping its configuration and memory. */
void hist_reset(struct hist *h);
/* Returns a new histogram equal to h, owned by the caller. */
struct hist *hist_copy(const struct hist *h);
/* Bytes h occupies on the heap, fixed from hist_new on. An hour in ns at
 * the default precision takes about 36 KiB. */
size_t hist_memory_size(const struct hist *h);

/* Records value once, or count times. Values above the configured highest
 * value are recorded as the highest value and counted by
 * hist_overflow_count. count 0 records nothing. Constant time, no
 * allocation. Returns 0; ST_INVALID for a negative value, or ST_TOO_LARGE
 * when the total count would pass UINT64_MAX; h is unchanged then. */
MUST_CHECK int hist_record(struct hist *h, int64_t value);
MUST_CHECK int hist_record_n(struct hist *h, int64_t value, uint64_t count);

/* Adds src's samples to dst, exactly: merging shards gives the histogram of
 * all their samples. src is borrowed. Returns 0; ST_INVALID when the two
 * configurations differ (highest value or precision), ST_TOO_LARGE when the
 * total count would pass UINT64_MAX; dst is unchanged then. */
MUST_CHECK int hist_merge(struct hist *dst, const struct hist *src);

/* True when a and b have the same configuration, samples and statistics. */
bool hist_is_equal(const struct hist *a, const struct hist *b);
/* True when a and b can be merged. */
bool hist_has_same_config(const struct hist *a, const struct hist *b);

/* The configuration as normalised by hist_new (sub_bucket_bits set,
 * significant_digits 0). */
struct hist_config hist_get_config(const struct hist *h);

/* Statistics. The count, overflow count, min, max and mean are exact (the
 * sum is kept in 128 bits); stddev uses bucket midpoints around the exact
 * mean. All are 0 for an empty histogram. */
uint64_t hist_count(const struct hist *h);
/* Samples that were above the highest value and clamped to it. */
uint64_t hist_overflow_count(const struct hist *h);
int64_t hist_min(const struct hist *h);
int64_t hist_max(const struct hist *h);
double hist_mean(const struct hist *h);
double hist_stddev(const struct hist *h);

/* The value at percentile p (0..100; outside clamps, NaN counts as 0) by
 * nearest rank: rank = ceil(p / 100 * count), at least 1. Returns the
 * highest value of the bucket holding the sample of that rank, but never
 * more than the exact max, so the result is >= the exact sample and above
 * it by less than the relative error of the precision. p = 0 returns the
 * exact min, p = 100 the exact max, an empty histogram 0. */
int64_t hist_value_at_percentile(const struct hist *h, double p);

/* Samples whose bucket lies entirely at or below value, or all of them when
 * value >= max: a lower bound of the exact count, which it misses only by
 * samples of value's own bucket, i.e. within the relative error below
 * value. It agrees with hist_value_at_percentile: for 0 < p <= 100,
 * hist_value_at_percentile(h, p) <= v exactly when hist_count_le(h, v) >=
 * rank(p). */
uint64_t hist_count_le(const struct hist *h, int64_t value);

/* Lowest and highest values recorded into the same bucket as value (after
 * clamping; negative values are taken as 0). */
int64_t hist_lowest_equivalent(const struct hist *h, int64_t value);
int64_t hist_highest_equivalent(const struct hist *h, int64_t value);

/* Iterates over the non-empty buckets in increasing order:
 *     hist_iter_init(&it, h);
 *     while (hist_iter_next(&it)) { use it.low, it.high, it.count }
 * h must not change during the iteration. */
void hist_iter_init(struct hist_iter *it, const struct hist *h);
bool hist_iter_next(struct hist_iter *it);

/* Fills out (room for n) with at most n contiguous ranges with round bounds
 * that cover min..max, each with its count, for a latency distribution
 * table. Candidates: multiples of a step 1, 2 or 5 x 10^k at least four of
 * the widest buckets wide, and runs of the series 1-2-5, 1-3 and 1 x 10^k;
 * a run too long for n keeps a window of it and lumps the head and the
 * tail into one range each. The candidate whose squared range counts add
 * up to the least (the most even spread) wins. Each bucket is counted once,
 * in the range holding its highest value clamped to [min, max], so the
 * counts add up to hist_count(h) and the counts below a bound b to
 * hist_count_le(h, b - 1). Returns the number of ranges written: 0 for an
 * empty histogram or n 0, else 1..min(n, 64). */
size_t hist_auto_buckets(const struct hist *h, size_t n,
                         struct hist_range *out);

/* Appends h's portable binary form to out. Returns 0, or ST_TOO_LARGE when
 * out's cap would be exceeded, in which case nothing is appended. */
MUST_CHECK int hist_encode(const struct hist *h, struct buf *out);
/* Decodes the len bytes at data (borrowed, untrusted) as written by
 * hist_encode. Everything is validated, and only the canonical encoding is
 * accepted; the allocation is the fixed size of the configuration it
 * carries (at most about 46 MiB for the finest one). Returns 0 with *out
 * owned by the caller; ST_PROTOCOL for malformed or inconsistent bytes, or
 * ST_INVALID for a NULL out or NULL data with len > 0, with *out untouched.
 * Any thread. */
MUST_CHECK int hist_decode(const void *data, size_t len, struct hist **out);

#endif
