/* The log-linear histogram: error bound, percentiles against exact sorted
 * samples, exact merging, the wire form and its validation, clamping,
 * count_le, iteration and auto buckets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hist.h"

#define HOUR_NS INT64_C(3600000000000)
#define N_SAMPLES 100000

/* Percentiles Handoff reports, in per mille so exact ranks are integers:
 * p10 p25 p50 p75 p90 p95 p99 p99.9 p100. */
static const unsigned report_permille[] = {100, 250, 500, 750, 900,
                                           950, 990, 999, 1000};

/* ---- Samples ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

enum dist {
    DIST_UNIFORM,  /* 1 us .. 1 s */
    DIST_EXP_TAIL, /* exponential around 2 ms, 1 % Pareto tail to 1 h */
    DIST_CONSTANT,
    DIST_BIMODAL, /* around 1 ms and around 800 ms */
    DIST_SMALL,   /* 0 .. 299: the exact region */
    DIST_COUNT
};

static const char *const dist_names[DIST_COUNT] = {
    "uniform", "exponential+tail", "constant", "bimodal", "small"};

static int64_t dist_draw(enum dist d, uint64_t *s)
{
    double u;
    double v;

    switch (d) {
    case DIST_UNIFORM:
        return 1000 + (int64_t)(rng_next(s) % 999999000u);
    case DIST_EXP_TAIL:
        u = rng_unit(s);
        if (rng_unit(s) < 0.01) {
            v = 50e6 / pow(1.0 - u, 1.0 / 1.1);
        } else {
            v = 100e3 - log(1.0 - u) * 2e6;
        }
        return v > (double)HOUR_NS ? HOUR_NS : (int64_t)v;
    case DIST_CONSTANT:
        return 123456789;
    case DIST_BIMODAL:
        v = rng_unit(s) + rng_unit(s) + rng_unit(s) - 1.5;
        return rng_next(s) & 1 ? (int64_t)(1e6 + v * 2e5)
                               : (int64_t)(8e8 + v * 5e7);
    case DIST_SMALL:
        return (int64_t)(rng_next(s) % 300);
    case DIST_COUNT:
        break;
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* n samples of d, sorted. Caller frees. */
static int64_t *samples_new(enum dist d, size_t n, uint64_t seed, bool sort)
{
    int64_t *v = malloc(n * sizeof(*v));

    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        v[i] = dist_draw(d, &seed);
    }
    if (sort) {
        qsort(v, n, sizeof(*v), cmp_i64);
    }
    return v;
}

static struct hist *hist_of(const struct hist_config *cfg, const int64_t *v,
                            size_t n)
{
    struct hist *h = NULL;

    assert_int_equal(hist_new(cfg, &h), ST_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hist_record(h, v[i]), ST_OK);
    }
    return h;
}

/* got is the reported value for the exact sample: at or above it and above
 * by less than 2^-bits of it. */
static bool is_within_error(int64_t got, int64_t exact, unsigned bits)
{
    uint64_t d;

    if (got < exact) {
        return false;
    }
    d = (uint64_t)(got - exact);
    if (d > ((uint64_t)exact >> bits)) {
        return false;
    }
    return d == 0 || (d << bits) < (uint64_t)exact;
}

/* ---- Configuration, memory, error bound ---- */

static void test_hist_refuses_bad_configurations(void **state)
{
    struct hist_config bad[] = {
        {0, 0, 0},     {-1, 0, 0},    {HIST_VALUE_LIMIT + 1, 0, 0},
        {1000, 6, 0},  {1000, -1, 0}, {1000, 0, 18},
        {1000, 0, -3}, {1000, 2, 7},
    };
    struct hist *h = (struct hist *)&bad; /* must stay untouched */

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(hist_new(&bad[i], &h), ST_INVALID);
        assert_ptr_equal(h, (struct hist *)&bad);
    }
    assert_int_equal(hist_new(NULL, &h), ST_INVALID);
    assert_ptr_equal(h, (struct hist *)&bad);
    hist_free(NULL);
}

static void test_hist_digits_map_to_enough_bits(void **state)
{
    static const int expect_bits[] = {0, 4, 7, 10, 14, 17};
    struct hist_config cfg = {.highest_value = 1000};
    struct hist *h = NULL;

    (void)state;
    for (int d = 1; d <= HIST_DIGITS_MAX; d++) {
        cfg.significant_digits = d;
        assert_int_equal(hist_new(&cfg, &h), ST_OK);
        assert_int_equal(hist_get_config(h).sub_bucket_bits, expect_bits[d]);
        assert_int_equal(hist_get_config(h).significant_digits, 0);
        assert_int_equal(hist_get_config(h).highest_value, 1000);
        /* 2^-bits <= 10^-d, and one bit fewer would not do. */
        assert_true(ldexp(1.0, -expect_bits[d]) <= pow(10.0, -d));
        assert_true(ldexp(1.0, 1 - expect_bits[d]) > pow(10.0, -d));
        hist_free(h);
    }
    cfg.significant_digits = 0;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    assert_int_equal(hist_get_config(h).sub_bucket_bits, 7);
    hist_free(h);
}

static void test_hist_default_hour_in_ns_takes_tens_of_kib(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    struct hist *h = NULL;
    size_t size;

    (void)state;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    size = hist_memory_size(h);
    print_message("1 h in ns, 2 digits: %zu bytes\n", size);
    assert_true(size < 40 * 1024);
    hist_free(h);

    cfg.highest_value = HOUR_NS / 1000;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    print_message("1 h in us, 2 digits: %zu bytes\n", hist_memory_size(h));
    assert_true(hist_memory_size(h) < size);
    hist_free(h);
}

/* Checks the bound at v: the bucket holds v, is a power of two wide, exact
 * below 2^(bits+1), at most 2^-bits of its lowest value wide beyond. */
static void check_bucket_bound(const struct hist *h, unsigned bits, int64_t v)
{
    int64_t lo = hist_lowest_equivalent(h, v);
    int64_t hi = hist_highest_equivalent(h, v);
    uint64_t w = (uint64_t)(hi - lo) + 1;

    assert_true(lo <= v && v <= hi);
    assert_true((w & (w - 1)) == 0);
    if (v < (INT64_C(2) << bits)) {
        assert_int_equal(w, 1);
    } else {
        assert_true((w << bits) <= (uint64_t)lo);
    }
    assert_true(is_within_error(hi, v, bits));
    assert_int_equal(hist_lowest_equivalent(h, hi), lo);
    assert_int_equal(hist_highest_equivalent(h, lo), hi);
    if (lo > 0) {
        assert_int_equal(hist_highest_equivalent(h, lo - 1), lo - 1);
    }
}

static void test_hist_bucket_width_stays_within_the_error_bound(void **state)
{
    struct hist_config cfg = {.highest_value = HIST_VALUE_LIMIT};
    uint64_t seed = 42;

    (void)state;
    for (int bits = 1; bits <= HIST_BITS_MAX; bits++) {
        struct hist *h = NULL;

        cfg.sub_bucket_bits = bits;
        assert_int_equal(hist_new(&cfg, &h), ST_OK);
        for (int e = 0; e < 62; e++) {
            int64_t p2 = INT64_C(1) << e;

            check_bucket_bound(h, (unsigned)bits, p2);
            check_bucket_bound(h, (unsigned)bits, p2 - 1);
            check_bucket_bound(h, (unsigned)bits, p2 + 1);
        }
        for (int i = 0; i < 20000; i++) {
            int64_t v =
                (int64_t)(rng_next(&seed) >> (2 + rng_next(&seed) % 62));

            check_bucket_bound(h, (unsigned)bits, v);
        }
        check_bucket_bound(h, (unsigned)bits, HIST_VALUE_LIMIT);
        hist_free(h);
    }
}

/* ---- Percentiles and statistics ---- */

static void check_percentiles(enum dist d, size_t n, int digits)
{
    struct hist_config cfg = {.highest_value = HOUR_NS,
                              .significant_digits = digits};
    int64_t *v = samples_new(d, n, 1000 + (uint64_t)d, true);
    struct hist *h = hist_of(&cfg, v, n);
    unsigned bits = (unsigned)hist_get_config(h).sub_bucket_bits;

    for (size_t i = 0; i < sizeof(report_permille) / sizeof(unsigned); i++) {
        unsigned q = report_permille[i];
        uint64_t rank = ((uint64_t)q * n + 999) / 1000;
        int64_t exact = v[rank - 1];
        int64_t got = hist_value_at_percentile(h, q / 10.0);

        if (!is_within_error(got, exact, bits)) {
            fail_msg("%s digits %d p%g: got %lld, exact %lld", dist_names[d],
                     digits, q / 10.0, (long long)got, (long long)exact);
        }
    }
    assert_int_equal(hist_value_at_percentile(h, 0), v[0]);
    assert_int_equal(hist_value_at_percentile(h, 100), v[n - 1]);
    assert_int_equal(hist_min(h), v[0]);
    assert_int_equal(hist_max(h), v[n - 1]);
    assert_int_equal(hist_count(h), n);
    hist_free(h);
    free(v);
}

static void test_hist_percentiles_match_sorted_samples(void **state)
{
    (void)state;
    for (int d = 0; d < DIST_COUNT; d++) {
        for (int digits = 1; digits <= 3; digits++) {
            check_percentiles((enum dist)d, N_SAMPLES, digits);
            check_percentiles((enum dist)d, 12345, digits);
        }
        check_percentiles((enum dist)d, 1, 2);
        check_percentiles((enum dist)d, 7, 2);
    }
}

static void test_hist_percentiles_hold_at_five_digits(void **state)
{
    (void)state;
    check_percentiles(DIST_EXP_TAIL, N_SAMPLES, 4);
    check_percentiles(DIST_EXP_TAIL, N_SAMPLES, 5);
    check_percentiles(DIST_BIMODAL, N_SAMPLES, 5);
}

static void test_hist_percentile_clamps_odd_arguments(void **state)
{
    struct hist_config cfg = {.highest_value = 1000000};
    struct hist *h = NULL;

    (void)state;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    assert_int_equal(hist_value_at_percentile(h, 50), 0);
    assert_int_equal(hist_record(h, 5000), ST_OK);
    assert_int_equal(hist_record(h, 90000), ST_OK);
    assert_int_equal(hist_value_at_percentile(h, -5), 5000);
    assert_int_equal(hist_value_at_percentile(h, NAN), 5000);
    assert_int_equal(hist_value_at_percentile(h, 500), 90000);
    assert_int_equal(hist_value_at_percentile(h, INFINITY), 90000);
    /* The top bucket's highest value is above 90000: max caps it. */
    assert_int_equal(hist_value_at_percentile(h, 99.99), 90000);
    assert_true(hist_highest_equivalent(h, 90000) > 90000);
    hist_free(h);
}

static void test_hist_stats_are_exact_or_close(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};

    (void)state;
    for (int d = 0; d < DIST_COUNT; d++) {
        int64_t *v = samples_new((enum dist)d, N_SAMPLES, 7, false);
        struct hist *h = hist_of(&cfg, v, N_SAMPLES);
        double sum = 0;
        double sq = 0;
        double mean;
        double sd;

        for (size_t i = 0; i < N_SAMPLES; i++) {
            sum += (double)v[i];
        }
        mean = sum / N_SAMPLES;
        for (size_t i = 0; i < N_SAMPLES; i++) {
            sq += ((double)v[i] - mean) * ((double)v[i] - mean);
        }
        sd = sqrt(sq / N_SAMPLES);
        assert_true(fabs(hist_mean(h) - mean) <= 1e-9 * mean);
        /* Midpoints are off by at most half a bucket: 2^-8 relative. */
        if (!(fabs(hist_stddev(h) - sd) <= sd / 256 + mean / 256)) {
            fail_msg("%s: stddev %g, exact %g", dist_names[d], hist_stddev(h),
                     sd);
        }
        if (d == DIST_CONSTANT) {
            assert_true(hist_stddev(h) == 0.0);
            assert_true(hist_mean(h) == 123456789.0);
        }
        hist_free(h);
        free(v);
    }
}

static void test_hist_sum_is_exact_beyond_64_bits(void **state)
{
    struct hist_config cfg = {.highest_value = HIST_VALUE_LIMIT};
    struct hist *h = NULL;

    (void)state;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    /* 2^62-1 eight times overflows 64 bits; the mean must not. */
    assert_int_equal(hist_record_n(h, HIST_VALUE_LIMIT, 4), ST_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(hist_record(h, HIST_VALUE_LIMIT), ST_OK);
    }
    assert_true(hist_mean(h) == (double)HIST_VALUE_LIMIT);
    assert_int_equal(hist_record_n(h, 0, 8), ST_OK);
    assert_true(hist_mean(h) == (double)HIST_VALUE_LIMIT / 2);
    hist_free(h);
}

/* ---- Recording limits ---- */

static void test_hist_clamps_and_counts_values_above_highest(void **state)
{
    struct hist_config cfg = {.highest_value = 1000};
    struct hist *h = NULL;

    (void)state;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    assert_int_equal(hist_record(h, 10), ST_OK);
    assert_int_equal(hist_record(h, 5000), ST_OK);
    assert_int_equal(hist_record_n(h, INT64_MAX, 3), ST_OK);
    assert_int_equal(hist_record(h, 1000), ST_OK);
    assert_int_equal(hist_count(h), 6);
    assert_int_equal(hist_overflow_count(h), 4);
    assert_int_equal(hist_max(h), 1000);
    assert_int_equal(hist_value_at_percentile(h, 100), 1000);
    assert_int_equal(hist_count_le(h, 999), 1);
    assert_int_equal(hist_count_le(h, 1000), 6);
    assert_true(hist_mean(h) == (10.0 + 5 * 1000) / 6);
    hist_free(h);
}

static void test_hist_refuses_negative_values_and_total_overflow(void **state)
{
    struct hist_config cfg = {.highest_value = 1000};
    struct hist *h = NULL;
    struct hist *before;

    (void)state;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    assert_int_equal(hist_record(h, 7), ST_OK);
    before = hist_copy(h);
    assert_int_equal(hist_record(h, -1), ST_INVALID);
    assert_int_equal(hist_record_n(h, INT64_MIN, 5), ST_INVALID);
    assert_int_equal(hist_record_n(h, 3, 0), ST_OK);
    assert_true(hist_is_equal(h, before));
    assert_int_equal(hist_record_n(h, 3, UINT64_MAX), ST_TOO_LARGE);
    assert_true(hist_is_equal(h, before));
    assert_int_equal(hist_record_n(h, 3, UINT64_MAX - 1), ST_OK);
    assert_int_equal(hist_count(h), UINT64_MAX);
    assert_int_equal(hist_record(h, 3), ST_TOO_LARGE);
    assert_int_equal(hist_count(h), UINT64_MAX);
    hist_free(before);
    hist_free(h);
}

static void test_hist_record_n_equals_n_records(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    struct hist *a = NULL;
    struct hist *b = NULL;
    uint64_t seed = 5;

    (void)state;
    assert_int_equal(hist_new(&cfg, &a), ST_OK);
    assert_int_equal(hist_new(&cfg, &b), ST_OK);
    for (int i = 0; i < 2000; i++) {
        int64_t v = dist_draw(DIST_EXP_TAIL, &seed);
        uint64_t n = rng_next(&seed) % 5;

        assert_int_equal(hist_record_n(a, v, n), ST_OK);
        for (uint64_t j = 0; j < n; j++) {
            assert_int_equal(hist_record(b, v), ST_OK);
        }
    }
    assert_true(hist_is_equal(a, b));
    hist_free(a);
    hist_free(b);
}

static void test_hist_reset_and_copy(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    struct hist *empty = NULL;
    int64_t *v = samples_new(DIST_BIMODAL, 1000, 3, false);
    struct hist *h = hist_of(&cfg, v, 1000);
    struct hist *c = hist_copy(h);

    (void)state;
    assert_true(hist_is_equal(h, c));
    assert_int_equal(hist_memory_size(h), hist_memory_size(c));
    assert_int_equal(hist_new(&cfg, &empty), ST_OK);
    hist_reset(h);
    assert_true(hist_is_equal(h, empty));
    assert_false(hist_is_equal(h, c));
    assert_int_equal(hist_count(h), 0);
    assert_int_equal(hist_min(h), 0);
    assert_int_equal(hist_max(h), 0);
    assert_true(hist_mean(h) == 0.0 && hist_stddev(h) == 0.0);
    hist_free(empty);
    hist_free(c);
    hist_free(h);
    free(v);
}

/* ---- Merge ---- */

static void check_same_buckets(const struct hist *a, const struct hist *b)
{
    struct hist_iter ia;
    struct hist_iter ib;

    hist_iter_init(&ia, a);
    hist_iter_init(&ib, b);
    for (;;) {
        bool more = hist_iter_next(&ia);

        assert_int_equal(more, hist_iter_next(&ib));
        if (!more) {
            break;
        }
        assert_int_equal(ia.low, ib.low);
        assert_int_equal(ia.high, ib.high);
        assert_int_equal(ia.count, ib.count);
    }
}

static void test_hist_merge_of_random_shards_equals_the_whole(void **state)
{
    enum { K = 7 };
    struct hist_config cfg = {.highest_value = HOUR_NS};
    uint64_t seed = 99;

    (void)state;
    for (int d = 0; d < DIST_COUNT; d++) {
        int64_t *v = samples_new((enum dist)d, N_SAMPLES, 11, false);
        struct hist *whole = hist_of(&cfg, v, N_SAMPLES);
        struct hist *shard[K];
        struct hist *merged = NULL;

        for (int k = 0; k < K; k++) {
            assert_int_equal(hist_new(&cfg, &shard[k]), ST_OK);
        }
        for (size_t i = 0; i < N_SAMPLES; i++) {
            /* Uneven shards; shard 0 stays empty. */
            int k = 1 + (int)(rng_next(&seed) % (1 + rng_next(&seed) % 6));

            assert_int_equal(hist_record(shard[k], v[i]), ST_OK);
        }
        assert_int_equal(hist_new(&cfg, &merged), ST_OK);
        for (int k = K - 1; k >= 0; k--) {
            assert_int_equal(hist_merge(merged, shard[k]), ST_OK);
        }
        assert_true(hist_is_equal(merged, whole));
        check_same_buckets(merged, whole);
        assert_int_equal(hist_count(merged), hist_count(whole));
        assert_int_equal(hist_min(merged), hist_min(whole));
        assert_int_equal(hist_max(merged), hist_max(whole));
        assert_true(hist_mean(merged) == hist_mean(whole));
        assert_true(hist_stddev(merged) == hist_stddev(whole));
        for (size_t i = 0; i < sizeof(report_permille) / sizeof(unsigned);
             i++) {
            double p = report_permille[i] / 10.0;

            assert_int_equal(hist_value_at_percentile(merged, p),
                             hist_value_at_percentile(whole, p));
        }
        for (int k = 0; k < K; k++) {
            hist_free(shard[k]);
        }
        hist_free(merged);
        hist_free(whole);
        free(v);
    }
}

static void test_hist_merge_refuses_other_configs_and_overflow(void **state)
{
    struct hist_config cfg = {.highest_value = 1000};
    struct hist_config other_bits = {.highest_value = 1000,
                                     .sub_bucket_bits = 5};
    struct hist_config other_high = {.highest_value = 1001};
    struct hist *a = NULL;
    struct hist *b = NULL;
    struct hist *c = NULL;
    struct hist *before;

    (void)state;
    assert_int_equal(hist_new(&cfg, &a), ST_OK);
    assert_int_equal(hist_record(a, 17), ST_OK);
    before = hist_copy(a);
    assert_int_equal(hist_new(&other_bits, &b), ST_OK);
    assert_int_equal(hist_new(&other_high, &c), ST_OK);
    assert_false(hist_has_same_config(a, b));
    assert_false(hist_has_same_config(a, c));
    assert_int_equal(hist_merge(a, b), ST_INVALID);
    assert_int_equal(hist_merge(a, c), ST_INVALID);
    assert_true(hist_is_equal(a, before));
    hist_free(b);
    assert_int_equal(hist_new(&cfg, &b), ST_OK);
    assert_int_equal(hist_record_n(b, 900, UINT64_MAX), ST_OK);
    assert_int_equal(hist_merge(a, b), ST_TOO_LARGE);
    assert_true(hist_is_equal(a, before));
    /* Merging into itself doubles. */
    assert_int_equal(hist_merge(a, a), ST_OK);
    assert_int_equal(hist_count(a), 2);
    assert_int_equal(hist_count_le(a, 17), 2);
    hist_free(before);
    hist_free(a);
    hist_free(b);
    hist_free(c);
}

/* ---- count_le and iteration ---- */

static void test_hist_count_le_bounds_the_exact_count(void **state)
{
    struct hist_config cfg = {.highest_value = 1000000, .sub_bucket_bits = 3};
    int64_t *v = samples_new(DIST_SMALL, 5000, 8, true);
    struct hist *h;
    uint64_t seed = 1;

    (void)state;
    /* Spread the small samples over a range with wide buckets. */
    for (size_t i = 0; i < 5000; i++) {
        v[i] = v[i] * v[i] * 11;
    }
    h = hist_of(&cfg, v, 5000);
    for (int64_t t = -2; t < 300 * 300 * 11 + 50; t += 1 + t / 64) {
        uint64_t le = 0;
        uint64_t below_bucket = 0;
        int64_t lo = hist_lowest_equivalent(h, t < 0 ? 0 : t);
        uint64_t got = hist_count_le(h, t);

        for (size_t i = 0; i < 5000; i++) {
            le += v[i] <= t;
            below_bucket += v[i] < lo;
        }
        assert_true(got <= le);
        assert_true(got >= (t < 0 ? 0 : below_bucket));
        if (t >= hist_max(h) || t < hist_min(h) ||
            hist_highest_equivalent(h, t) == t) {
            assert_int_equal(got, le);
        }
    }
    /* Agreement with percentiles: p(q) <= t iff count_le(t) >= rank(q). */
    for (int i = 0; i < 3000; i++) {
        double p = 100.0 * (1.0 - rng_unit(&seed));
        int64_t t = (int64_t)(rng_next(&seed) % (300 * 300 * 11));
        uint64_t rank = (uint64_t)ceil(p / 100.0 * 5000);

        assert_int_equal(hist_value_at_percentile(h, p) <= t,
                         hist_count_le(h, t) >= rank);
    }
    hist_free(h);
    free(v);
}

static void test_hist_iterates_over_non_empty_buckets(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    int64_t *v = samples_new(DIST_EXP_TAIL, N_SAMPLES, 21, true);
    struct hist *h = hist_of(&cfg, v, N_SAMPLES);
    struct hist_iter it;
    struct hist *empty = NULL;
    uint64_t total = 0;
    int64_t prev_high = -1;
    size_t j = 0;

    (void)state;
    hist_iter_init(&it, h);
    while (hist_iter_next(&it)) {
        uint64_t exact = 0;

        assert_true(it.count > 0);
        assert_true(it.low > prev_high && it.low <= it.high);
        assert_int_equal(hist_lowest_equivalent(h, it.high), it.low);
        assert_int_equal(hist_highest_equivalent(h, it.low), it.high);
        while (j < N_SAMPLES && v[j] <= it.high) {
            assert_true(v[j] >= it.low);
            exact++;
            j++;
        }
        assert_int_equal(it.count, exact);
        total += it.count;
        prev_high = it.high;
    }
    assert_int_equal(j, N_SAMPLES);
    assert_int_equal(total, hist_count(h));
    assert_false(hist_iter_next(&it));

    assert_int_equal(hist_new(&cfg, &empty), ST_OK);
    hist_iter_init(&it, empty);
    assert_false(hist_iter_next(&it));
    hist_free(empty);
    hist_free(h);
    free(v);
}

/* ---- Auto buckets ---- */

static void check_auto_buckets(const struct hist *h, size_t n)
{
    struct hist_range r[64];
    size_t k = hist_auto_buckets(h, n, r);
    uint64_t sum = 0;

    assert_true(k >= 1 && k <= n);
    assert_true(r[0].low <= hist_min(h));
    assert_true(r[k - 1].high > hist_max(h));
    for (size_t i = 0; i < k; i++) {
        assert_true(r[i].low < r[i].high);
        if (i + 1 < k) {
            assert_int_equal(r[i].high, r[i + 1].low);
        }
        sum += r[i].count;
        assert_int_equal(sum, hist_count_le(h, r[i].high - 1));
    }
    assert_int_equal(sum, hist_count(h));
}

static void test_hist_auto_buckets_cover_every_count_once(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};

    (void)state;
    for (int d = 0; d < DIST_COUNT; d++) {
        int64_t *v = samples_new((enum dist)d, 20000, 31, false);
        struct hist *h = hist_of(&cfg, v, 20000);

        for (size_t n = 1; n <= 40; n++) {
            check_auto_buckets(h, n);
        }
        hist_free(h);
        free(v);
    }
}

static void test_hist_auto_buckets_handle_the_extremes(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    struct hist_range r[4];
    struct hist *h = NULL;

    (void)state;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    assert_int_equal(hist_auto_buckets(h, 4, r), 0);
    assert_int_equal(hist_record(h, 0), ST_OK);
    assert_int_equal(hist_auto_buckets(h, 0, r), 0);
    check_auto_buckets(h, 1);
    check_auto_buckets(h, 4);
    assert_int_equal(hist_record(h, HOUR_NS * 2), ST_OK);
    check_auto_buckets(h, 1);
    check_auto_buckets(h, 4);
    check_auto_buckets(h, 10);
    hist_free(h);

    cfg.highest_value = HIST_VALUE_LIMIT;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    assert_int_equal(hist_record(h, HIST_VALUE_LIMIT), ST_OK);
    check_auto_buckets(h, 1);
    check_auto_buckets(h, 3);
    assert_int_equal(hist_record(h, 0), ST_OK);
    for (size_t n = 1; n <= 64; n++) {
        check_auto_buckets(h, n);
    }
    hist_free(h);
}

static void test_hist_auto_buckets_pick_round_layouts(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    struct hist *h = NULL;
    struct hist_range r[10];
    size_t k;

    (void)state;
    /* Even spread: linear steps. */
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    for (int64_t v = 0; v < 1000000; v += 7) {
        assert_int_equal(hist_record(h, v), ST_OK);
    }
    k = hist_auto_buckets(h, 10, r);
    assert_int_equal(k, 10);
    for (size_t i = 0; i < k; i++) {
        assert_int_equal(r[i].low, (int64_t)i * 100000);
    }
    /* Decades apart: powers of ten. */
    hist_reset(h);
    for (int64_t v = 1000; v <= INT64_C(1000000000); v *= 10) {
        assert_int_equal(hist_record_n(h, v + v / 2, 10), ST_OK);
    }
    k = hist_auto_buckets(h, 10, r);
    assert_int_equal(k, 7);
    for (size_t i = 0; i < k; i++) {
        assert_int_equal(r[i].high, r[i].low * 10);
        assert_int_equal(r[i].count, 10);
    }
    /* Two modes decades apart land in separate ranges. */
    hist_reset(h);
    assert_int_equal(hist_record_n(h, 1000000, 50), ST_OK);
    assert_int_equal(hist_record_n(h, 1300000, 50), ST_OK);
    assert_int_equal(hist_record_n(h, 800000000, 100), ST_OK);
    k = hist_auto_buckets(h, 10, r);
    for (size_t i = 0; i < k; i++) {
        assert_true(r[i].count <= 100);
    }
    /* A narrow spread: linear steps no finer than four of its buckets. */
    hist_reset(h);
    for (int64_t v = 250000000; v < 280000000; v += 1000) {
        assert_int_equal(hist_record(h, v), ST_OK);
    }
    k = hist_auto_buckets(h, 10, r);
    assert_int_equal(k, 3);
    for (size_t i = 0; i < k; i++) {
        assert_int_equal(r[i].low, 250000000 + (int64_t)i * 10000000);
        assert_true(r[i].high - r[i].low >=
                    4 * (hist_highest_equivalent(h, hist_max(h)) -
                         hist_lowest_equivalent(h, hist_max(h)) + 1));
    }
    /* A single value: one narrow range. */
    hist_reset(h);
    assert_int_equal(hist_record_n(h, 4242, 9), ST_OK);
    k = hist_auto_buckets(h, 10, r);
    assert_int_equal(k, 1);
    assert_int_equal(r[0].low, 4242);
    assert_int_equal(r[0].high, 4243);
    hist_free(h);
}

/* ---- Wire form ---- */

static struct buf encode(const struct hist *h)
{
    struct buf b;

    buf_init(&b, 0);
    assert_int_equal(hist_encode(h, &b), ST_OK);
    return b;
}

/* Decoding data must fail, leaving out untouched. */
static void check_decode_fails(const void *data, size_t len)
{
    struct hist *sentinel = (struct hist *)&sentinel;
    struct hist *h = sentinel;
    int rc = hist_decode(data, len, &h);

    if (rc == ST_OK) {
        hist_free(h);
        fail_msg("decode of %zu bytes succeeded", len);
    }
    assert_int_equal(rc, ST_PROTOCOL);
    assert_ptr_equal(h, sentinel);
}

/* Decoding data either fails or gives a histogram that encodes back to the
 * same bytes (only canonical forms are accepted). */
static void check_decode_is_clean(const uint8_t *data, size_t len)
{
    struct hist *h = NULL;
    struct buf b;

    if (hist_decode(data, len, &h) != ST_OK) {
        return;
    }
    b = encode(h);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, data, len);
    hist_free(h);
    buf_cleanup(&b);
}

static void check_round_trip(const struct hist *h)
{
    struct buf b = encode(h);
    struct hist *d = NULL;
    struct buf again;

    assert_int_equal(hist_decode(b.data, b.len, &d), ST_OK);
    assert_true(hist_is_equal(h, d));
    again = encode(d);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);
    hist_free(d);
    buf_cleanup(&again);
    buf_cleanup(&b);
}

static void test_hist_round_trips_through_the_wire_form(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    struct hist *h = NULL;

    (void)state;
    for (int d = 0; d < DIST_COUNT; d++) {
        for (int digits = 1; digits <= HIST_DIGITS_MAX; digits++) {
            int64_t *v =
                samples_new((enum dist)d, 5000, 40 + (uint64_t)d, false);

            cfg.significant_digits = digits;
            h = hist_of(&cfg, v, 5000);
            check_round_trip(h);
            hist_free(h);
            free(v);
        }
    }
    cfg.significant_digits = 0;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    check_round_trip(h);
    assert_int_equal(hist_record(h, HOUR_NS + 1), ST_OK);
    check_round_trip(h);
    assert_int_equal(hist_record_n(h, 0, UINT64_MAX - 1), ST_OK);
    check_round_trip(h);
    hist_free(h);

    cfg.highest_value = HIST_VALUE_LIMIT;
    cfg.sub_bucket_bits = HIST_BITS_MAX;
    assert_int_equal(hist_new(&cfg, &h), ST_OK);
    assert_int_equal(hist_record_n(h, HIST_VALUE_LIMIT, 1u << 30), ST_OK);
    assert_int_equal(hist_record(h, 1), ST_OK);
    check_round_trip(h);
    hist_free(h);
}

static void test_hist_encode_appends_nothing_beyond_the_cap(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    int64_t *v = samples_new(DIST_UNIFORM, 1000, 2, false);
    struct hist *h = hist_of(&cfg, v, 1000);
    struct buf b;

    (void)state;
    buf_init(&b, 64);
    assert_int_equal(buf_puts(&b, "x"), ST_OK);
    assert_int_equal(hist_encode(h, &b), ST_TOO_LARGE);
    assert_string_equal(buf_str(&b), "x");
    buf_cleanup(&b);
    hist_free(h);
    free(v);
}

/* A hand-made encoding: header fields then pairs, as varints. */
struct wire {
    uint8_t data[256];
    size_t len;
};

static void wire_byte(struct wire *w, uint8_t b)
{
    w->data[w->len++] = b;
}

static void wire_varint(struct wire *w, uint64_t v)
{
    while (v >= 0x80) {
        wire_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    wire_byte(w, (uint8_t)v);
}

/* magic, version, bits, then highest total overflow min max sum_lo sum_hi
 * npairs and the pairs, from n varints. */
static struct wire wire_make(uint8_t magic, uint8_t version, uint8_t bits,
                             size_t n, ...)
{
    struct wire w = {.len = 0};
    va_list ap;

    wire_byte(&w, magic);
    wire_byte(&w, version);
    wire_byte(&w, bits);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        wire_varint(&w, va_arg(ap, uint64_t));
    }
    va_end(ap);
    return w;
}

#define U(x) ((uint64_t)(x))

static void test_hist_decode_accepts_hand_made_forms(void **state)
{
    struct hist *h = NULL;
    /* Values 3 and 5 at 7 bits (exact region), highest 1000. */
    struct wire w = wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5),
                              U(8), U(0), U(2), U(3), U(1), U(2), U(1));

    (void)state;
    assert_int_equal(hist_decode(w.data, w.len, &h), ST_OK);
    assert_int_equal(hist_count(h), 2);
    assert_int_equal(hist_min(h), 3);
    assert_int_equal(hist_max(h), 5);
    assert_true(hist_mean(h) == 4.0);
    check_decode_is_clean(w.data, w.len);
    hist_free(h);

    w = wire_make(0x48, 1, 7, 8, U(1000), U(0), U(0), U(0), U(0), U(0), U(0),
                  U(0));
    assert_int_equal(hist_decode(w.data, w.len, &h), ST_OK);
    assert_int_equal(hist_count(h), 0);
    hist_free(h);
}

/* At 1 bit, 8..11 share one bucket (index 6). */
static struct wire wire_wide(uint64_t highest, uint64_t total,
                             uint64_t overflow, uint64_t sum)
{
    return wire_make(0x48, 1, 1, 10, highest, total, overflow, U(8), U(11), sum,
                     U(0), U(1), U(6), total);
}

static void test_hist_decode_knows_which_sums_samples_can_have(void **state)
{
    struct hist *h = NULL;
    struct wire w;

    (void)state;
    /* Two samples, min 8 and max 11: the sum can only be 19. */
    w = wire_wide(100, 2, 0, 19);
    assert_int_equal(hist_decode(w.data, w.len, &h), ST_OK);
    hist_free(h);
    w = wire_wide(100, 2, 0, 18);
    check_decode_fails(w.data, w.len);
    w = wire_wide(100, 2, 0, 20);
    check_decode_fails(w.data, w.len);
    /* Three, two of them clamped to highest 11: 8 + 11 + 11. */
    w = wire_wide(11, 3, 2, 30);
    assert_int_equal(hist_decode(w.data, w.len, &h), ST_OK);
    assert_int_equal(hist_overflow_count(h), 2);
    hist_free(h);
    w = wire_wide(11, 3, 2, 29);
    check_decode_fails(w.data, w.len);
    /* All clamped yet min below highest. */
    w = wire_wide(11, 3, 3, 30);
    check_decode_fails(w.data, w.len);
    /* Clamped samples all sit in the top bucket: 3 + 100 + 100, not
     * 3 + 3 + 100 (exact buckets at 7 bits). */
    w = wire_make(0x48, 1, 7, 12, U(100), U(3), U(2), U(3), U(100), U(203),
                  U(0), U(2), U(3), U(1), U(97), U(2));
    assert_int_equal(hist_decode(w.data, w.len, &h), ST_OK);
    hist_free(h);
    w = wire_make(0x48, 1, 7, 12, U(100), U(3), U(2), U(3), U(100), U(106),
                  U(0), U(2), U(3), U(2), U(97), U(1));
    check_decode_fails(w.data, w.len);
    /* Three unclamped: 8 + 8..11 + 11. */
    for (uint64_t sum = 26; sum <= 31; sum++) {
        w = wire_wide(100, 3, 0, sum);
        if (sum < 27 || sum > 30) {
            check_decode_fails(w.data, w.len);
        } else {
            assert_int_equal(hist_decode(w.data, w.len, &h), ST_OK);
            hist_free(h);
        }
    }
}

static void test_hist_decode_refuses_malformed_forms(void **state)
{
    /* Each differs from the valid form above in one respect. */
    struct wire bad[] = {
        /* bad magic, bad versions */
        wire_make(0x49, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 0, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 2, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 255, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        /* bits out of range */
        wire_make(0x48, 1, 0, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 18, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        /* highest out of range */
        wire_make(0x48, 1, 7, 12, U(0), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(HIST_VALUE_LIMIT) + 1, U(2), U(0), U(3),
                  U(5), U(8), U(0), U(2), U(3), U(1), U(2), U(1)),
        /* total disagrees with the counts, both ways */
        wire_make(0x48, 1, 7, 12, U(1000), U(3), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(2)),
        /* oversized count; counts that wrap 64 bits */
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), UINT64_MAX, U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), UINT64_MAX, U(2), U(3)),
        /* zero count; zero delta (repeated index); index past the end */
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(0), U(2), U(2)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(3), U(6), U(0),
                  U(2), U(3), U(1), U(0), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(100000), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), UINT64_MAX, U(1)),
        /* min above max; min or max outside its bucket; max past highest */
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(5), U(3), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(2), U(5), U(7), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(6), U(9), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(4), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        /* sums no samples could have */
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(9), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(7), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(1),
                  U(2), U(3), U(1), U(2), U(1)),
        /* overflow beyond the total, or with max below highest */
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(3), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(1), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1)),
        /* one sample but min != max */
        wire_make(0x48, 1, 7, 10, U(1000), U(1), U(0), U(3), U(4), U(3), U(0),
                  U(1), U(3), U(1)),
        /* no pairs for a non-empty total; empty with leftovers */
        wire_make(0x48, 1, 7, 8, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(0)),
        wire_make(0x48, 1, 7, 8, U(1000), U(0), U(0), U(0), U(0), U(1), U(0),
                  U(0)),
        wire_make(0x48, 1, 7, 9, U(1000), U(0), U(0), U(0), U(0), U(0), U(0),
                  U(0), U(0)),
        /* more pairs announced than the bytes could hold */
        wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(200), U(3), U(1), U(2), U(1)),
    };
    struct wire w;
    struct hist *h = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_decode_fails(bad[i].data, bad[i].len);
    }

    /* Overlong varint (3 as 0x83 0x00), 11-byte varint, 10th byte past 64
     * bits, trailing byte. */
    w = wire_make(0x48, 1, 7, 3, U(1000), U(2), U(0));
    wire_byte(&w, 0x83);
    wire_byte(&w, 0x00);
    for (int i = 0; i < 8; i++) {
        wire_varint(&w, (uint64_t[]){5, 8, 0, 2, 3, 1, 2, 1}[i]);
    }
    check_decode_fails(w.data, w.len);
    w = wire_make(0x48, 1, 7, 0);
    for (int i = 0; i < 10; i++) {
        wire_byte(&w, 0x80);
    }
    wire_byte(&w, 0x01);
    check_decode_fails(w.data, w.len);
    w = wire_make(0x48, 1, 7, 0);
    for (int i = 0; i < 9; i++) {
        wire_byte(&w, 0xff);
    }
    wire_byte(&w, 0x02);
    check_decode_fails(w.data, w.len);
    w = wire_make(0x48, 1, 7, 12, U(1000), U(2), U(0), U(3), U(5), U(8), U(0),
                  U(2), U(3), U(1), U(2), U(1));
    wire_byte(&w, 0);
    check_decode_fails(w.data, w.len);

    check_decode_fails("", 0);
    check_decode_fails(NULL, 0);
    assert_int_equal(hist_decode(NULL, 5, &h), ST_INVALID);
    assert_int_equal(hist_decode(w.data, w.len, NULL), ST_INVALID);
    assert_null(h);
}

static void test_hist_decode_refuses_every_truncation(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    int64_t *v = samples_new(DIST_EXP_TAIL, 3000, 4, false);
    struct hist *h = hist_of(&cfg, v, 3000);
    struct buf b;

    (void)state;
    assert_int_equal(hist_record(h, HOUR_NS * 3), ST_OK);
    b = encode(h);
    for (size_t len = 0; len < b.len; len++) {
        check_decode_fails(b.data, len);
    }
    buf_cleanup(&b);
    hist_free(h);
    free(v);
}

static void test_hist_decode_of_corrupted_or_random_bytes_is_clean(void **state)
{
    struct hist_config cfg = {.highest_value = HOUR_NS};
    int64_t *v = samples_new(DIST_BIMODAL, 500, 4, false);
    struct hist *h = hist_of(&cfg, v, 500);
    struct buf b = encode(h);
    uint8_t *copy = malloc(b.len);
    uint8_t rnd[96];
    uint64_t seed = 77;

    (void)state;
    assert_non_null(copy);
    /* Every single-bit flip of a valid form. */
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, b.data, b.len);
            copy[i] ^= (uint8_t)(1u << bit);
            check_decode_is_clean(copy, b.len);
        }
    }
    /* Random multi-byte damage. */
    for (int i = 0; i < 20000; i++) {
        memcpy(copy, b.data, b.len);
        for (int j = 0; j < 1 + i % 4; j++) {
            copy[rng_next(&seed) % b.len] = (uint8_t)rng_next(&seed);
        }
        check_decode_is_clean(copy, b.len - (size_t)(i % 3));
    }
    /* Random bytes, half behind a valid magic and version. */
    for (int i = 0; i < 50000; i++) {
        size_t len = (size_t)(rng_next(&seed) % sizeof(rnd));

        for (size_t j = 0; j < len; j++) {
            rnd[j] = (uint8_t)rng_next(&seed);
        }
        if (i % 2 && len >= 3) {
            rnd[0] = 0x48;
            rnd[1] = 1;
            rnd[2] = (uint8_t)(1 + rnd[2] % HIST_BITS_MAX);
        }
        check_decode_is_clean(rnd, len);
    }
    free(copy);
    buf_cleanup(&b);
    hist_free(h);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_refuses_bad_configurations),
        cmocka_unit_test(test_hist_digits_map_to_enough_bits),
        cmocka_unit_test(test_hist_default_hour_in_ns_takes_tens_of_kib),
        cmocka_unit_test(test_hist_bucket_width_stays_within_the_error_bound),
        cmocka_unit_test(test_hist_percentiles_match_sorted_samples),
        cmocka_unit_test(test_hist_percentiles_hold_at_five_digits),
        cmocka_unit_test(test_hist_percentile_clamps_odd_arguments),
        cmocka_unit_test(test_hist_stats_are_exact_or_close),
        cmocka_unit_test(test_hist_sum_is_exact_beyond_64_bits),
        cmocka_unit_test(test_hist_clamps_and_counts_values_above_highest),
        cmocka_unit_test(test_hist_refuses_negative_values_and_total_overflow),
        cmocka_unit_test(test_hist_record_n_equals_n_records),
        cmocka_unit_test(test_hist_reset_and_copy),
        cmocka_unit_test(test_hist_merge_of_random_shards_equals_the_whole),
        cmocka_unit_test(test_hist_merge_refuses_other_configs_and_overflow),
        cmocka_unit_test(test_hist_count_le_bounds_the_exact_count),
        cmocka_unit_test(test_hist_iterates_over_non_empty_buckets),
        cmocka_unit_test(test_hist_auto_buckets_cover_every_count_once),
        cmocka_unit_test(test_hist_auto_buckets_handle_the_extremes),
        cmocka_unit_test(test_hist_auto_buckets_pick_round_layouts),
        cmocka_unit_test(test_hist_round_trips_through_the_wire_form),
        cmocka_unit_test(test_hist_encode_appends_nothing_beyond_the_cap),
        cmocka_unit_test(test_hist_decode_accepts_hand_made_forms),
        cmocka_unit_test(test_hist_decode_refuses_malformed_forms),
        cmocka_unit_test(test_hist_decode_knows_which_sums_samples_can_have),
        cmocka_unit_test(test_hist_decode_refuses_every_truncation),
        cmocka_unit_test(
            test_hist_decode_of_corrupted_or_random_bytes_is_clean),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
