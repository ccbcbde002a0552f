/* Framing between child and supervisor: round trips, partial and oversized
 * frames, truncated and corrupt payloads, plans. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "child.h"
#include "ipc.h"

static void test_ipc_round_trips_every_field_type(void **state)
{
    struct buf b;
    uint8_t type = 0;
    const uint8_t *payload;
    size_t plen;
    size_t flen;
    struct ipc_reader r;
    size_t slen;

    (void)state;
    buf_init(&b, 0);
    ipc_begin(&b, IPC_VALUE);
    ipc_put_u8(&b, 200);
    ipc_put_u32(&b, 0xdeadbeef);
    ipc_put_i64(&b, -42);
    ipc_put_str(&b, "hello", SIZE_MAX);
    ipc_put_str(&b, NULL, SIZE_MAX);
    ipc_finish(&b);
    assert_int_equal(
        ipc_frame_peek(b.data, b.len, &type, &payload, &plen, &flen), 1);
    assert_int_equal(type, IPC_VALUE);
    assert_int_equal(flen, b.len);
    ipc_reader_init(&r, payload, plen);
    assert_int_equal(ipc_get_u8(&r), 200);
    assert_int_equal(ipc_get_u32(&r), 0xdeadbeef);
    assert_true(ipc_get_i64(&r) == -42);
    assert_string_equal(ipc_get_str(&r, &slen), "hello");
    assert_int_equal(slen, 5);
    assert_string_equal(ipc_get_str(&r, NULL), "");
    assert_true(ipc_reader_ok(&r));
    buf_cleanup(&b);
}

static void test_ipc_waits_for_whole_frames_and_refuses_huge_ones(void **state)
{
    struct buf b;
    uint8_t type;
    const uint8_t *payload;
    size_t plen;
    size_t flen;
    uint8_t huge[5] = {0xff, 0xff, 0xff, 0x7f, IPC_LOG};

    (void)state;
    buf_init(&b, 0);
    ipc_begin(&b, IPC_LOG);
    ipc_put_str(&b, "a line", SIZE_MAX);
    ipc_finish(&b);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(
            ipc_frame_peek(b.data, n, &type, &payload, &plen, &flen), 0);
    }
    assert_int_equal(
        ipc_frame_peek(huge, sizeof(huge), &type, &payload, &plen, &flen), -1);
    buf_cleanup(&b);
}

static void
test_ipc_reader_fails_on_truncated_or_unterminated_input(void **state)
{
    uint8_t bad_str[] = {3, 0, 0, 0, 'a', 'b', 'c', 'd'}; /* no NUL */
    uint8_t short_str[] = {9, 0, 0, 0, 'a', 0};
    uint8_t extra[] = {1, 2};
    struct ipc_reader r;

    (void)state;
    ipc_reader_init(&r, bad_str, sizeof(bad_str));
    assert_string_equal(ipc_get_str(&r, NULL), "");
    assert_false(ipc_reader_ok(&r));

    ipc_reader_init(&r, short_str, sizeof(short_str));
    ipc_get_str(&r, NULL);
    assert_false(ipc_reader_ok(&r));
    /* Once failed, getters return zero values. */
    assert_int_equal(ipc_get_u32(&r), 0);

    ipc_reader_init(&r, extra, sizeof(extra));
    assert_int_equal(ipc_get_u8(&r), 1);
    assert_false(ipc_reader_ok(&r)); /* a byte left over */
    ipc_reader_init(&r, extra, 1);
    assert_true(ipc_get_i64(&r) == 0);
    assert_false(ipc_reader_ok(&r));
}

static void test_ipc_cuts_long_strings_at_utf8_boundaries(void **state)
{
    struct buf b;
    struct ipc_reader r;
    size_t len;
    const char *s;

    (void)state;
    buf_init(&b, 0);
    ipc_begin(&b, IPC_LOG);
    /* "aé" is 61 c3 a9: a cut at 2 bytes would split the é. */
    ipc_put_str(&b, "a\xc3\xa9z", 2);
    ipc_finish(&b);
    ipc_reader_init(&r, b.data + IPC_HEADER_LEN, b.len - IPC_HEADER_LEN);
    s = ipc_get_str(&r, &len);
    assert_int_equal(len, 1);
    assert_string_equal(s, "a");
    buf_cleanup(&b);
}

static void make_plan(struct plan *p)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->nonce, "12345678", IPC_NONCE_LEN);
    p->suite = (char *)"selftest";
    p->tempdir_root = (char *)"/tmp/x";
    p->run_setup = true;
    p->run_teardown = false;
    p->base = 0;
    p->entries = calloc(3, sizeof(*p->entries));
    p->n_entries = 3;
    for (uint32_t i = 0; i < 3; i++) {
        p->entries[i].test_index = i * 2;
        p->entries[i].first_attempt = 1 + i;
        p->entries[i].max_attempts = 3;
        p->entries[i].timeout_ns = 1000 + i;
    }
    result_kv_set(&p->params, &p->n_params, "env", "staging");
}

static void test_plan_round_trips_from_any_position(void **state)
{
    struct plan p;
    struct plan q;
    struct buf b;

    (void)state;
    make_plan(&p);
    buf_init(&b, 0);
    plan_encode(&b, &p, 1);
    assert_int_equal(
        plan_decode(b.data + IPC_HEADER_LEN, b.len - IPC_HEADER_LEN, &q),
        ST_OK);
    assert_memory_equal(q.nonce, "12345678", IPC_NONCE_LEN);
    assert_string_equal(q.suite, "selftest");
    assert_string_equal(q.tempdir_root, "/tmp/x");
    assert_true(q.run_setup);
    assert_false(q.run_teardown);
    assert_int_equal(q.base, 1);
    assert_int_equal(q.n_entries, 2);
    assert_int_equal(q.entries[0].test_index, 2);
    assert_int_equal(q.entries[1].first_attempt, 3);
    assert_true(q.entries[1].timeout_ns == 1002);
    assert_string_equal(result_kv_get(q.params, q.n_params, "env"), "staging");
    plan_cleanup(&q);
    result_kv_free(p.params, p.n_params);
    free(p.entries);
    buf_cleanup(&b);
}

static void test_plan_decode_rejects_every_truncation_and_garbage(void **state)
{
    struct plan p;
    struct plan q;
    struct buf b;
    const uint8_t *payload;
    size_t plen;
    uint32_t seed = 12345;

    (void)state;
    make_plan(&p);
    buf_init(&b, 0);
    plan_encode(&b, &p, 0);
    payload = (const uint8_t *)b.data + IPC_HEADER_LEN;
    plen = b.len - IPC_HEADER_LEN;
    for (size_t n = 0; n < plen; n++) {
        assert_int_equal(plan_decode(payload, n, &q), ST_PROTOCOL);
    }
    /* Random corruption never crashes or leaks; it may still decode. */
    for (int round = 0; round < 2000; round++) {
        uint8_t *copy = malloc(plen);

        memcpy(copy, payload, plen);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % plen] = (uint8_t)(seed >> 16);
        }
        if (plan_decode(copy, plen, &q) == ST_OK) {
            plan_cleanup(&q);
        }
        free(copy);
    }
    result_kv_free(p.params, p.n_params);
    free(p.entries);
    buf_cleanup(&b);
}

static void test_ipc_prefix_carries_the_nonce(void **state)
{
    uint8_t nonce[IPC_NONCE_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t out[IPC_PREFIX_LEN];

    (void)state;
    ipc_prefix(nonce, out);
    assert_int_equal(out[0], IPC_SYNC_BYTE);
    assert_int_equal(out[1], 'H');
    assert_int_equal(out[2], 'F');
    assert_memory_equal(out + 3, nonce, IPC_NONCE_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipc_round_trips_every_field_type),
        cmocka_unit_test(test_ipc_waits_for_whole_frames_and_refuses_huge_ones),
        cmocka_unit_test(
            test_ipc_reader_fails_on_truncated_or_unterminated_input),
        cmocka_unit_test(test_ipc_cuts_long_strings_at_utf8_boundaries),
        cmocka_unit_test(test_plan_round_trips_from_any_position),
        cmocka_unit_test(test_plan_decode_rejects_every_truncation_and_garbage),
        cmocka_unit_test(test_ipc_prefix_carries_the_nonce),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
