/* libFuzzer target for snap_decode: a distributed shard's snapshot is
 * untrusted bytes from the network. They must decode or be refused, never
 * crash or leak; what decodes must encode back to the same bytes (one
 * canonical form) and merge with itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "snap.h"
#include "threshold.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct snap *s = NULL;
    struct snap *m;
    struct buf b;
    struct threshold *t = NULL;

    if (snap_decode(data, size, &s) != 0) {
        return 0;
    }
    buf_init(&b, 0);
    if (snap_encode(s, &b) != 0 || b.len != size ||
        memcmp(b.data, data, size) != 0) {
        abort();
    }
    m = snap_new_like(s);
    if (snap_merge(m, s) != 0 || snap_merge(m, s) != 0) {
        abort();
    }
    if (threshold_parse("http_req_duration: p(95)<300ms", &t, NULL, 0) == 0) {
        (void)threshold_evaluate(t, m, 1000000000);
        threshold_free(t);
    }
    snap_free(m);
    snap_free(s);
    buf_cleanup(&b);
    return 0;
}
