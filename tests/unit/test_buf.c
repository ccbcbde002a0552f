/* The growable buffer: appends, caps, formatting, consume, detach. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void test_buf_appends_and_stays_nul_terminated(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    assert_string_equal(buf_str(&b), "");
    buf_adds(&b, "abc");
    buf_addc(&b, '-');
    buf_addf(&b, "%d:%s", 42, "x");
    assert_string_equal(buf_str(&b), "abc-42:x");
    assert_int_equal(b.len, 8);
    buf_reset(&b);
    assert_string_equal(buf_str(&b), "");
    buf_cleanup(&b);
}

static void test_buf_formats_long_strings_in_two_passes(void **state)
{
    struct buf b;
    char big[5000];

    (void)state;
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_init(&b, 0);
    buf_adds(&b, "<");
    buf_addf(&b, "%s|%s", big, big);
    assert_int_equal(b.len, 1 + 2 * 4999 + 1);
    assert_int_equal(b.data[1 + 4999], '|');
    assert_int_equal(b.data[b.len], '\0');
    buf_cleanup(&b);
}

static void test_buf_refuses_appends_beyond_its_cap(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "12345"), ST_OK);
    assert_int_equal(buf_puts(&b, "6789"), ST_TOO_LARGE);
    assert_string_equal(buf_str(&b), "12345");
    assert_int_equal(buf_printf(&b, "%s", "abcd"), ST_TOO_LARGE);
    assert_string_equal(buf_str(&b), "12345");
    assert_int_equal(buf_printf(&b, "%d", 678), ST_OK);
    assert_string_equal(buf_str(&b), "12345678");
    assert_int_equal(buf_putc(&b, 'x'), ST_TOO_LARGE);
    buf_cleanup(&b);
}

static void test_buf_consumes_and_detaches(void **state)
{
    struct buf b;
    char *s;

    (void)state;
    buf_init(&b, 0);
    buf_adds(&b, "hello world");
    buf_consume(&b, 6);
    assert_string_equal(buf_str(&b), "world");
    buf_consume(&b, 100);
    assert_string_equal(buf_str(&b), "");
    buf_adds(&b, "kept");
    s = buf_detach(&b);
    assert_string_equal(s, "kept");
    assert_null(b.data);
    free(s);
    s = buf_detach(&b);
    assert_string_equal(s, "");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_appends_and_stays_nul_terminated),
        cmocka_unit_test(test_buf_formats_long_strings_in_two_passes),
        cmocka_unit_test(test_buf_refuses_appends_beyond_its_cap),
        cmocka_unit_test(test_buf_consumes_and_detaches),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
