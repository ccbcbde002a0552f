/* snap's wire form (snap_encode / snap_decode): what a distributed shard
 * sends each second decodes to the same metrics, merges to the same total,
 * and anything malformed is refused without a leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "httpc_int.h"
#include "snap.h"

static void record(struct snap *s, const char *step, const char *name,
                   int status, int64_t ns)
{
    struct httpc_response r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.error = status == 0 ? HTTPC_ERR_CONNECT : HTTPC_ERR_NONE;
    r.bytes_sent = 100;
    r.bytes_received = 250;
    for (int t = 0; t < HTTPC_T_COUNT; t++) {
        r.timings_ns[t] = ns + t * 1000;
    }
    (void)httpc_metrics_record(s->http, step, name, strlen(name), &r);
}

/* A snapshot with a bit of everything, varied by seed. */
static struct snap *sample(int seed)
{
    struct snap *s = NULL;

    assert_int_equal(snap_new(NULL, &s), 0);
    for (int i = 0; i < 50 + seed; i++) {
        snap_iteration(s, 1000000 + i * 12345 + seed);
        snap_check(s, "status is 200", i % 7 != 0);
        snap_step(s, i % 2 ? "login" : "browse", 500000 + i * 1000);
        record(s, "", "GET /", i % 10 ? 200 : 503, 200000 + i * 777);
        record(s, "login", "POST /login", 201, 900000 + i * 31);
    }
    record(s, "", "GET /", 0, 5000000);
    s->dropped = 3 + (uint64_t)seed;
    s->interrupted = 1;
    s->vus = 7;
    s->vus_max = 9 + seed;
    return s;
}

static void assert_same(const struct snap *a, const struct snap *b)
{
    assert_true(a->iterations == b->iterations);
    assert_true(a->interrupted == b->interrupted);
    assert_true(a->dropped == b->dropped);
    assert_int_equal(a->vus, b->vus);
    assert_int_equal(a->vus_max, b->vus_max);
    assert_true(hist_is_equal(a->iteration_ns, b->iteration_ns));
    for (size_t i = 0; i < a->n_checks; i++) {
        const struct snap_check *c = snap_find_check(b, a->checks[i].name);

        assert_non_null(c);
        assert_true(c->passes == a->checks[i].passes);
        assert_true(c->fails == a->checks[i].fails);
    }
    for (size_t i = 0; i < a->n_steps; i++) {
        const struct snap_step *st = snap_find_step(b, a->steps[i].name);

        assert_non_null(st);
        assert_true(hist_is_equal(st->duration_ns, a->steps[i].duration_ns));
    }
    assert_int_equal(httpc_metrics_count(a->http),
                     httpc_metrics_count(b->http));
    for (size_t i = 0; i < httpc_metrics_count(a->http); i++) {
        const struct httpc_stats *x = httpc_metrics_at(a->http, i);
        const struct httpc_stats *y =
            httpc_metrics_find_step(b->http, x->step, x->name);

        assert_non_null(y);
        assert_true(x->requests == y->requests && x->failed == y->failed);
        assert_true(x->bytes_sent == y->bytes_sent &&
                    x->bytes_received == y->bytes_received);
        assert_memory_equal(x->status, y->status, sizeof(x->status));
        assert_memory_equal(x->errors, y->errors, sizeof(x->errors));
        for (int t = 0; t < HTTPC_T_COUNT; t++) {
            assert_true(hist_is_equal(x->timings[t], y->timings[t]));
        }
    }
}

static void test_snap_decodes_to_what_was_encoded(void **state)
{
    struct snap *s = sample(0);
    struct snap *d = NULL;
    struct buf a;
    struct buf b;

    (void)state;
    buf_init(&a, 0);
    buf_init(&b, 0);
    assert_int_equal(snap_encode(s, &a), 0);
    assert_int_equal(snap_decode(a.data, a.len, &d), 0);
    assert_same(s, d);
    /* One canonical form: encoding the decoded snapshot gives the same
     * bytes. */
    assert_int_equal(snap_encode(d, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    snap_free(s);
    snap_free(d);
    buf_cleanup(&a);
    buf_cleanup(&b);
}

static void test_snap_empty_round_trips(void **state)
{
    struct snap *s = NULL;
    struct snap *d = NULL;
    struct buf a;

    (void)state;
    buf_init(&a, 0);
    assert_int_equal(snap_new(NULL, &s), 0);
    assert_int_equal(snap_encode(s, &a), 0);
    assert_int_equal(snap_decode(a.data, a.len, &d), 0);
    assert_same(s, d);
    assert_int_equal(httpc_metrics_count(d->http), 0);
    snap_free(s);
    snap_free(d);
    buf_cleanup(&a);
}

static void
test_snap_merge_of_decoded_shards_equals_merge_of_originals(void **state)
{
    struct snap *a = sample(1);
    struct snap *b = sample(2);
    struct snap *want = snap_new_like(a);
    struct snap *got = snap_new_like(a);
    struct snap *da = NULL;
    struct snap *db = NULL;
    struct buf ea;
    struct buf eb;

    (void)state;
    buf_init(&ea, 0);
    buf_init(&eb, 0);
    assert_int_equal(snap_encode(a, &ea), 0);
    assert_int_equal(snap_encode(b, &eb), 0);
    assert_int_equal(snap_decode(ea.data, ea.len, &da), 0);
    assert_int_equal(snap_decode(eb.data, eb.len, &db), 0);
    assert_int_equal(snap_merge(want, a), 0);
    assert_int_equal(snap_merge(want, b), 0);
    assert_int_equal(snap_merge(got, da), 0);
    assert_int_equal(snap_merge(got, db), 0);
    assert_same(want, got);
    assert_true(got->iterations == a->iterations + b->iterations);
    snap_free(a);
    snap_free(b);
    snap_free(da);
    snap_free(db);
    snap_free(want);
    snap_free(got);
    buf_cleanup(&ea);
    buf_cleanup(&eb);
}

static void test_snap_decode_refuses_every_truncation_and_garbage(void **state)
{
    struct snap *s = sample(3);
    struct snap *d = NULL;
    struct buf a;
    unsigned char *copy;

    (void)state;
    buf_init(&a, 0);
    assert_int_equal(snap_encode(s, &a), 0);
    for (size_t n = 0; n < a.len; n++) {
        assert_int_equal(snap_decode(a.data, n, &d), ST_PROTOCOL);
    }
    copy = malloc(a.len + 1);
    memcpy(copy, a.data, a.len);
    copy[a.len] = 0;
    assert_int_equal(snap_decode(copy, a.len + 1, &d), ST_PROTOCOL);
    copy[0] = 'X';
    assert_int_equal(snap_decode(copy, a.len, &d), ST_PROTOCOL);
    /* Flipping any single byte either still decodes or is refused. */
    for (size_t i = 4; i < a.len; i++) {
        memcpy(copy, a.data, a.len);
        copy[i] ^= 0xff;
        if (snap_decode(copy, a.len, &d) == 0) {
            snap_free(d);
        }
    }
    d = NULL;
    assert_int_equal(snap_decode(NULL, 0, &d), ST_PROTOCOL);
    assert_null(d);
    free(copy);
    snap_free(s);
    buf_cleanup(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snap_decodes_to_what_was_encoded),
        cmocka_unit_test(test_snap_empty_round_trips),
        cmocka_unit_test(
            test_snap_merge_of_decoded_shards_equals_merge_of_originals),
        cmocka_unit_test(test_snap_decode_refuses_every_truncation_and_garbage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
