/* Durations and RFC 3339 timestamps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"

static void test_clock_parses_go_durations(void **state)
{
    static const struct {
        const char *text;
        int64_t ns;
    } ok[] = {
        {"0", 0},
        {"1ns", 1},
        {"1us", 1000},
        {"1\xc2\xb5s", 1000},
        {"250ms", 250 * CLOCK_NS_PER_MS},
        {"1.5s", 1500 * CLOCK_NS_PER_MS},
        {"30s", 30 * CLOCK_NS_PER_S},
        {"5m", 300 * CLOCK_NS_PER_S},
        {"1h30m", 5400 * CLOCK_NS_PER_S},
        {"2h45m30.5s", (9930 * CLOCK_NS_PER_S) + 500 * CLOCK_NS_PER_MS},
        {".5s", 500 * CLOCK_NS_PER_MS},
    };
    static const char *const bad[] = {
        "",    "s",     "10",     "1x",
        "-1s", "1.s.s", "1h 30m", "99999999999999999999h",
        "1m-", "ms"};
    int64_t ns;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ns = -7;
        assert_int_equal(clock_parse_duration(ok[i].text, &ns), ST_OK);
        if (ns != ok[i].ns) {
            fail_msg("%s: got %lld want %lld", ok[i].text, (long long)ns,
                     (long long)ok[i].ns);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ns = -7;
        if (clock_parse_duration(bad[i], &ns) != ST_INVALID) {
            fail_msg("\"%s\" accepted", bad[i]);
        }
        assert_true(ns == -7);
    }
}

static void test_clock_formats_durations_briefly(void **state)
{
    char out[32];

    (void)state;
    assert_string_equal(clock_format_duration(0, out, sizeof(out)), "0s");
    assert_string_equal(
        clock_format_duration(300 * CLOCK_NS_PER_MS, out, sizeof(out)),
        "300ms");
    assert_string_equal(
        clock_format_duration(90 * CLOCK_NS_PER_S, out, sizeof(out)), "1m30s");
    assert_string_equal(
        clock_format_duration(3600 * CLOCK_NS_PER_S, out, sizeof(out)),
        "1h0m0s");
}

static void test_clock_formats_and_parses_rfc3339(void **state)
{
    char out[CLOCK_RFC3339_LEN];
    int64_t ns = 0;
    int64_t t = INT64_C(1795338245) * CLOCK_NS_PER_S + 120000000;

    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    assert_string_equal(clock_format_rfc3339(t, CLOCK_UTC, 1, out),
                        "2026-11-22T09:04:05.12Z");
    assert_string_equal(clock_format_rfc3339(t, CLOCK_UTC, 0, out),
                        "2026-11-22T09:04:05.120Z");
    assert_string_equal(clock_format_rfc3339(t - 120000000, CLOCK_UTC, 1, out),
                        "2026-11-22T09:04:05Z");
    assert_int_equal(clock_parse_rfc3339("2026-11-22T09:04:05.12Z", &ns),
                     ST_OK);
    assert_true(ns == t);
    assert_int_equal(clock_parse_rfc3339("2026-11-22T10:04:05.12+01:00", &ns),
                     ST_OK);
    assert_true(ns == t);
    assert_int_equal(clock_parse_rfc3339("2026-02-30T00:00:00Z", &ns),
                     ST_INVALID);
    assert_int_equal(clock_parse_rfc3339("2026-11-22", &ns), ST_INVALID);
    assert_int_equal(clock_parse_rfc3339("2026-11-22T09:04:05", &ns),
                     ST_INVALID);
    assert_int_equal(clock_parse_rfc3339("2026-11-22T09:04:05Zjunk", &ns),
                     ST_INVALID);
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    assert_string_equal(clock_format_rfc3339(t, CLOCK_LOCAL, 1, out),
                        "2026-11-22T10:04:05.12+01:00");
}

static void test_clock_monotonic_time_moves_forward(void **state)
{
    int64_t a = clock_mono_ns();
    int64_t b = clock_mono_ns();

    (void)state;
    assert_true(b >= a);
    assert_true(clock_real_ns() > INT64_C(1700000000) * CLOCK_NS_PER_S);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_parses_go_durations),
        cmocka_unit_test(test_clock_formats_durations_briefly),
        cmocka_unit_test(test_clock_formats_and_parses_rfc3339),
        cmocka_unit_test(test_clock_monotonic_time_moves_forward),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
