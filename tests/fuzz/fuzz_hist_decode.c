/* libFuzzer target for hist_decode: untrusted bytes must decode cleanly or
 * be refused, and what decodes must encode back to the same bytes (only the
 * canonical form is accepted) and survive every reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs every reader over h; the sanitizers judge the arithmetic. */
static void exercise(const struct hist *h)
{
    static const double ps[] = {0, 10, 25, 50, 75, 90, 95, 99, 99.9, 100};
    struct hist_range ranges[12];
    struct hist_iter it;
    uint64_t total = 0;
    uint64_t ranged = 0;
    int64_t prev = -1;
    size_t k;

    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        int64_t v = hist_value_at_percentile(h, ps[i]);

        if (v < prev || v < hist_min(h) || v > hist_max(h)) {
            abort();
        }
        prev = v;
    }
    hist_iter_init(&it, h);
    while (hist_iter_next(&it)) {
        total += it.count;
        if (hist_count_le(h, it.high) != total) {
            abort();
        }
    }
    if (total != hist_count(h) || hist_count_le(h, hist_max(h)) != total ||
        hist_overflow_count(h) > total) {
        abort();
    }
    k = hist_auto_buckets(h, sizeof(ranges) / sizeof(ranges[0]), ranges);
    for (size_t i = 0; i < k; i++) {
        ranged += ranges[i].count;
    }
    if (ranged != total || (total && k == 0)) {
        abort();
    }
    if (total && (hist_mean(h) < (double)hist_min(h) * (1 - 1e-12) ||
                  hist_mean(h) > (double)hist_max(h) * (1 + 1e-12) ||
                  !(hist_stddev(h) >= 0))) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hist *h = NULL;
    struct hist *again = NULL;
    struct hist *doubled;
    struct buf out;

    if (hist_decode(data, size, &h) != ST_OK) {
        return 0;
    }
    buf_init(&out, 0);
    if (hist_encode(h, &out) != ST_OK) {
        abort();
    }
    if (out.len != size || memcmp(out.data, data, size) != 0) {
        abort();
    }
    if (hist_decode(out.data, out.len, &again) != ST_OK ||
        !hist_is_equal(h, again)) {
        abort();
    }
    exercise(h);
    doubled = hist_copy(h);
    if (hist_merge(doubled, h) == ST_OK) {
        if (hist_count(doubled) != 2 * hist_count(h)) {
            abort();
        }
        exercise(doubled);
    }
    hist_free(doubled);
    hist_free(again);
    hist_free(h);
    buf_cleanup(&out);
    return 0;
}
