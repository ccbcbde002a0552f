/* Cron expressions: parsing, error messages, next fire times, DST rules
 * (docs/cron.md) and a brute-force cross-check of the field-jumping search. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "cron.h"
#include "tz.h"

#define NS CLOCK_NS_PER_S
/* Thursday 2026-01-15 10:17:23 UTC. */
#define START "2026-01-15T10:17:23Z"

static int64_t at(const char *rfc3339)
{
    int64_t ns = 0;

    if (clock_parse_rfc3339(rfc3339, &ns) != 0) {
        fail_msg("bad timestamp in test: %s", rfc3339);
    }
    return ns;
}

static struct cron *parse_ok(const char *expr, const char *zone)
{
    struct cron *c = NULL;
    char err[CRON_ERR_SIZE] = "";

    if (cron_parse(expr, zone, &c, err, sizeof(err)) != 0) {
        fail_msg("\"%s\" [%s] refused: %s", expr, zone ? zone : "UTC", err);
    }
    return c;
}

/* Checks that the fire times after from are exactly want (NULL-ended). */
static void check_seq(const char *expr, const char *zone, const char *from,
                      const char *const *want)
{
    struct cron *c = parse_ok(expr, zone);
    int64_t t = at(from);
    char prev_s[CLOCK_RFC3339_LEN];
    char got_s[CLOCK_RFC3339_LEN];

    for (size_t i = 0; want[i]; i++) {
        int64_t prev = t;

        t = cron_next(c, t);
        if (t != at(want[i])) {
            fail_msg("\"%s\" [%s] after %s: got %s, want %s", expr,
                     zone ? zone : "NULL",
                     clock_format_rfc3339(prev, CLOCK_UTC, 1, prev_s),
                     t < 0 ? "-1"
                           : clock_format_rfc3339(t, CLOCK_UTC, 1, got_s),
                     want[i]);
        }
    }
    cron_free(c);
}

/* check_seq with the wanted times inline. */
#define SEQ(expr, zone, from, ...)                                             \
    check_seq(expr, zone, from, (const char *const[]){__VA_ARGS__, NULL})

static void test_cron_finds_next_fire_of_valid_expressions(void **state)
{
    static const struct {
        const char *expr;
        const char *zone;
        const char *want;
    } cases[] = {
        {"* * * * *", NULL, "2026-01-15T10:18:00Z"},
        {"*/5 * * * *", "", "2026-01-15T10:20:00Z"},
        {"10-40/10 * * * *", "UTC", "2026-01-15T10:20:00Z"},
        {"7/15 * * * *", "UTC", "2026-01-15T10:22:00Z"},
        {"50-59/15 * * * *", "UTC", "2026-01-15T10:50:00Z"},
        {"0 */6 * * *", "UTC", "2026-01-15T12:00:00Z"},
        {"30 9 * * *", "UTC", "2026-01-16T09:30:00Z"},
        {"0 0 1 * *", "UTC", "2026-02-01T00:00:00Z"},
        {"0 0 31 * *", "UTC", "2026-01-31T00:00:00Z"},
        {"59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z"},
        {"@yearly", "UTC", "2027-01-01T00:00:00Z"},
        {"@annually", "UTC", "2027-01-01T00:00:00Z"},
        {"@monthly", "UTC", "2026-02-01T00:00:00Z"},
        {"@weekly", "UTC", "2026-01-18T00:00:00Z"},
        {"@daily", "UTC", "2026-01-16T00:00:00Z"},
        {"@midnight", "UTC", "2026-01-16T00:00:00Z"},
        {"@hourly", "UTC", "2026-01-15T11:00:00Z"},
        {"@HOURLY", "UTC", "2026-01-15T11:00:00Z"},
        {"  0\t12 *  * *  ", "UTC", "2026-01-15T12:00:00Z"},
        {"0,30 8-18 * * *", "UTC", "2026-01-15T10:30:00Z"},
        /* Names, case-insensitive, and 7 = Sunday. */
        {"0 12 * * MON-FRI", "UTC", "2026-01-15T12:00:00Z"},
        {"0 8 * * sat,Sun", "UTC", "2026-01-17T08:00:00Z"},
        {"0 0 * * 7", "UTC", "2026-01-18T00:00:00Z"},
        {"0 0 * * 5-7", "UTC", "2026-01-16T00:00:00Z"},
        {"0 0 * * 6-7", "UTC", "2026-01-17T00:00:00Z"},
        {"0 0 1 jan-MAR/2 *", "UTC", "2026-03-01T00:00:00Z"},
        {"0 0 1 FEB *", "UTC", "2026-02-01T00:00:00Z"},
        /* Day of month OR day of week when both are restricted. */
        {"0 0 13 * 5", "UTC", "2026-01-16T00:00:00Z"},
        {"0 0 13 * *", "UTC", "2026-02-13T00:00:00Z"},
        {"0 0 13 2 5", "UTC", "2026-02-06T00:00:00Z"},
        {"0 0 */2 * 1", "UTC", "2026-01-17T00:00:00Z"},
        {"0 0 ? * 1", "UTC", "2026-01-19T00:00:00Z"},
        {"0 0 20 * ?", "UTC", "2026-01-20T00:00:00Z"},
        {"0 0 */1 * 1", "UTC", "2026-01-19T00:00:00Z"},
        /* Seconds first in the 6-field form. */
        {"*/10 * * * * *", "UTC", "2026-01-15T10:17:30Z"},
        {"15,45 * * * * *", "UTC", "2026-01-15T10:17:45Z"},
        {"30 0 12 * * *", "UTC", "2026-01-15T12:00:30Z"},
        {"0 0 0 1 1 *", "UTC", "2027-01-01T00:00:00Z"},
        /* Leap years; 2100 is not one. */
        {"0 0 29 2 *", "UTC", "2028-02-29T00:00:00Z"},
        /* Zones. */
        {"0 9 * * *", "Asia/Tokyo", "2026-01-16T09:00:00+09:00"},
        {"0 9 * * *", "America/New_York", "2026-01-15T09:00:00-05:00"},
        {"30 1 * * *", "Australia/Lord_Howe", "2026-01-16T01:30:00+11:00"},
        {"0 0 1 1 *", "Etc/UTC", "2027-01-01T00:00:00Z"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cron *c = parse_ok(cases[i].expr, cases[i].zone);
        int64_t got = cron_next(c, at(START));
        char got_s[CLOCK_RFC3339_LEN];

        if (got != at(cases[i].want)) {
            fail_msg("\"%s\" [%s]: got %s, want %s", cases[i].expr,
                     cases[i].zone ? cases[i].zone : "NULL",
                     got < 0 ? "-1"
                             : clock_format_rfc3339(got, CLOCK_UTC, 1, got_s),
                     cases[i].want);
        }
        assert_false(cron_is_every(c, NULL));
        cron_free(c);
    }
}

static void test_cron_fires_strictly_after_the_given_instant(void **state)
{
    struct cron *c = parse_ok("* * * * *", "UTC");

    (void)state;
    assert_true(cron_next(c, at("2026-01-15T10:18:00Z")) ==
                at("2026-01-15T10:19:00Z"));
    assert_true(cron_next(c, at("2026-01-15T10:17:59.999999999Z")) ==
                at("2026-01-15T10:18:00Z"));
    assert_true(cron_next(c, at("1969-12-31T23:59:30Z")) == 0);
    cron_free(c);
}

static void test_cron_rejects_invalid_expressions_naming_the_field(void **state)
{
    static const struct {
        const char *expr;
        const char *zone;
        const char *want;
    } cases[] = {
        {"", NULL, "empty expression"},
        {" \t ", NULL, "empty expression"},
        {"* * * *", NULL, "expected 5 or 6 fields, got 4"},
        {"* * * * * * *", NULL, "expected 5 or 6 fields, got 7"},
        {"0 0 32 * *", NULL,
         "field 3 (day of month) \"32\": value out of range 1-31"},
        {"0 0 1-32 * *", NULL,
         "field 3 (day of month) \"32\": value out of range 1-31"},
        {"* * 0 * *", NULL,
         "field 3 (day of month) \"0\": value out of "
         "range 1-31"},
        {"60 * * * *", NULL,
         "field 1 (minute) \"60\": value out of range "
         "0-59"},
        {"* 24 * * *", NULL,
         "field 2 (hour) \"24\": value out of range "
         "0-23"},
        {"* * * 13 *", NULL,
         "field 4 (month) \"13\": value out of range "
         "1-12"},
        {"* * * * 8", NULL,
         "field 5 (day of week) \"8\": value out of range "
         "0-7"},
        {"60 * * * * *", NULL, "field 1 (second) \"60\": value out of range"},
        {"0 60 * * * *", NULL, "field 2 (minute) \"60\""},
        {"99999999999 * * * *", NULL, "value out of range 0-59"},
        {"*/0 * * * *", NULL, "field 1 (minute) \"*/0\": step must be >= 1"},
        {"* * 1-10/0 * *", NULL,
         "field 3 (day of month) \"1-10/0\": step "
         "must be >= 1"},
        {"*/ * * * *", NULL, "\"*/\": missing step after \"/\""},
        {"*/x * * * *", NULL, "\"*/x\": step is not a number"},
        {"1,,2 * * * *", NULL, "field 1 (minute) \"1,,2\": empty list item"},
        {"1, * * * *", NULL, "\"1,\": empty list item"},
        {"40-10 * * * *", NULL, "\"40-10\": range start is after its end"},
        {"5- * * * *", NULL, "\"5-\": missing value"},
        {"-5 * * * *", NULL, "\"-5\": unexpected character '-'"},
        {"1-5-7 * * * *", NULL, "\"1-5-7\": unexpected character '-'"},
        {"*/5/2 * * * *", NULL, "\"*/5/2\": unexpected character '/'"},
        {"** * * * *", NULL, "unexpected character '*'"},
        {"a * * * *", NULL, "field 1 (minute) \"a\": not a number"},
        {"* * * foo *", NULL,
         "field 4 (month) \"foo\": not a number or name (JAN-DEC)"},
        {"* * * * MONDAY", NULL,
         "field 5 (day of week) \"MONDAY\": not a number or name (SUN-SAT)"},
        {"* * * JAN-SUN *", NULL, "\"SUN\": not a number or name"},
        {"? * * * *", NULL,
         "\"?\" is only allowed in day of month and day "
         "of week"},
        {"0 0 L * *", NULL, "field 3 (day of month) \"L\": not a number"},
        {"0 0 1W * *", NULL, "\"1W\": unexpected character 'W'"},
        {"0 0 * * 1#2", NULL, "\"1#2\": unexpected character '#'"},
        {"*\x01 * * * *", NULL, "\"*?\": unexpected character '?'"},
        {"0 0 30 2 *", NULL,
         "never fires: day of month \"30\" does not occur in month \"2\""},
        {"0 0 31 4,6,9,11 *", NULL, "never fires"},
        {"0 0 30,31 FEB *", NULL, "never fires"},
        {"@fortnightly", NULL, "unknown descriptor \"@fortnightly\""},
        {"@", NULL, "unknown descriptor \"@\""},
        {"@daily 5", NULL, "\"@daily\" takes no arguments"},
        {"@every", NULL, "\"@every\" takes one duration"},
        {"@every 1m 2m", NULL, "\"@every\" takes one duration"},
        {"@every 500ms", NULL,
         "@every: interval \"500ms\" is below the minimum of 1s"},
        {"@every 0s", NULL, "below the minimum of 1s"},
        {"@every 5", NULL, "@every: invalid duration \"5\""},
        {"@every -5m", NULL, "invalid duration"},
        {"@every "
         "1111111111111111111111111111111111111111111111111111111111111111s",
         NULL, "invalid duration"},
        {"0 * * * *", "Mars/Olympus", "unknown time zone \"Mars/Olympus\""},
        {"0 * * * *", "../../etc/passwd", "invalid time zone name"},
        {"0 * * * *", "/etc/localtime", "invalid time zone name"},
        {"0 * * * *", "Europe", "unknown time zone \"Europe\""},
    };
    char err[CRON_ERR_SIZE];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cron *c = (struct cron *)&err; /* must stay untouched */

        err[0] = '\0';
        if (cron_parse(cases[i].expr, cases[i].zone, &c, err, sizeof(err)) !=
            ST_INVALID) {
            fail_msg("\"%s\" was not refused", cases[i].expr);
        }
        assert_ptr_equal(c, (struct cron *)&err);
        if (!strstr(err, cases[i].want)) {
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cases[i].expr, err,
                     cases[i].want);
        }
    }
}

static void
test_cron_refuses_overlong_expressions_and_tolerates_no_err(void **state)
{
    char expr[CRON_EXPR_MAX + 2];
    char err[CRON_ERR_SIZE] = "";
    char tiny[8];
    struct cron *c = NULL;

    (void)state;
    memset(expr, ' ', sizeof(expr) - 1);
    expr[sizeof(expr) - 1] = '\0';
    memcpy(expr, "* * * * *", 9);
    assert_int_equal(cron_parse(expr, NULL, &c, err, sizeof(err)), ST_INVALID);
    assert_non_null(strstr(err, "longer than 512 bytes"));
    expr[CRON_EXPR_MAX] = '\0'; /* exactly the limit: fine */
    assert_int_equal(cron_parse(expr, NULL, &c, err, sizeof(err)), 0);
    cron_free(c);
    assert_int_equal(cron_parse(NULL, NULL, &c, err, sizeof(err)), ST_INVALID);
    assert_int_equal(cron_parse("61 * * * *", NULL, &c, NULL, 0), ST_INVALID);
    assert_int_equal(cron_parse("61 * * * *", NULL, &c, tiny, sizeof(tiny)),
                     ST_INVALID);
    assert_string_equal(tiny, "field 1");
    cron_free(NULL);
}

static void
test_cron_fires_skipped_wall_clock_time_once_as_gap_ends(void **state)
{
    (void)state;
    /* Berlin, 2025-03-30: 02:00 CET becomes 03:00 CEST. */
    SEQ("30 2 * * *", "Europe/Berlin", "2025-03-29T00:00:00+01:00",
        "2025-03-29T02:30:00+01:00", "2025-03-30T03:00:00+02:00",
        "2025-03-31T02:30:00+02:00");
    SEQ("0 2,3 * * *", "Europe/Berlin", "2025-03-30T01:00:00+01:00",
        "2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00");
    SEQ("0 30 2 * * *", "Europe/Berlin", "2025-03-30T00:00:00+01:00",
        "2025-03-30T03:00:00+02:00");
    /* The same instant when asked from just before it. */
    SEQ("30 2 * * *", "Europe/Berlin", "2025-03-30T01:59:59.5+01:00",
        "2025-03-30T03:00:00+02:00");
    /* New York, 2025-03-09: 02:00 EST becomes 03:00 EDT. */
    SEQ("30 2 * * *", "America/New_York", "2025-03-08T12:00:00-05:00",
        "2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00");
    /* Lord Howe, 2025-10-05: 02:00 +1030 becomes 02:30 +11. */
    SEQ("15 2 * * *", "Australia/Lord_Howe", "2025-10-04T12:00:00+10:30",
        "2025-10-05T02:30:00+11:00", "2025-10-06T02:15:00+11:00");
    /* Havana skips midnight: @daily runs when the day starts, at 01:00. */
    SEQ("@daily", "America/Havana", "2025-03-08T12:00:00-05:00",
        "2025-03-09T01:00:00-04:00", "2025-03-10T00:00:00-04:00");
    /* Far future: the TZif footer rules. */
    SEQ("30 2 * * *", "Europe/Berlin", "2050-03-26T12:00:00+01:00",
        "2050-03-27T03:00:00+02:00", "2050-03-28T02:30:00+02:00");
    SEQ("30 2 * * *", "America/New_York", "2100-03-13T12:00:00-05:00",
        "2100-03-14T03:00:00-04:00");
}

static void
test_cron_fires_repeated_wall_clock_time_at_first_occurrence(void **state)
{
    (void)state;
    /* Berlin, 2025-10-26: 03:00 CEST becomes 02:00 CET. */
    SEQ("30 2 * * *", "Europe/Berlin", "2025-10-25T00:00:00+02:00",
        "2025-10-25T02:30:00+02:00", "2025-10-26T02:30:00+02:00",
        "2025-10-27T02:30:00+01:00");
    SEQ("30 2 * * *", "Europe/Berlin", "2025-10-26T02:45:00+02:00",
        "2025-10-27T02:30:00+01:00");
    SEQ("30 2 * * *", "Europe/Berlin", "2025-10-26T02:10:00+01:00",
        "2025-10-27T02:30:00+01:00");
    SEQ("0 0 1 1 *", "Europe/Berlin", "2025-03-01T00:00:00+01:00",
        "2026-01-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00");
    /* New York, 2025-11-02: 02:00 EDT becomes 01:00 EST. */
    SEQ("30 1 * * *", "America/New_York", "2025-11-01T12:00:00-04:00",
        "2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00");
    SEQ("30 2 * * *", "America/New_York", "2025-11-01T12:00:00-04:00",
        "2025-11-02T02:30:00-05:00");
    SEQ("0 0 1 1 *", "America/New_York", "2025-06-01T00:00:00-04:00",
        "2026-01-01T00:00:00-05:00");
    /* Lord Howe, 2025-04-06: 02:00 +11 becomes 01:30 +1030. */
    SEQ("45 1 * * *", "Australia/Lord_Howe", "2025-04-05T12:00:00+11:00",
        "2025-04-06T01:45:00+11:00", "2025-04-07T01:45:00+10:30");
    /* Havana repeats midnight. */
    SEQ("@daily", "America/Havana", "2025-11-01T12:00:00-04:00",
        "2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00");
    SEQ("0 * * * *", "Europe/Berlin", "2050-10-30T01:30:00+02:00",
        "2050-10-30T02:00:00+02:00", "2050-10-30T02:00:00+01:00");
}

static void test_cron_keeps_wildcard_jobs_on_real_time_across_dst(void **state)
{
    (void)state;
    SEQ("0 * * * *", "Europe/Berlin", "2025-03-30T00:30:00+01:00",
        "2025-03-30T01:00:00+01:00", "2025-03-30T03:00:00+02:00",
        "2025-03-30T04:00:00+02:00");
    SEQ("@hourly", "Europe/Berlin", "2025-10-26T01:30:00+02:00",
        "2025-10-26T02:00:00+02:00", "2025-10-26T02:00:00+01:00",
        "2025-10-26T03:00:00+01:00");
    SEQ("*/15 * * * *", "Europe/Berlin", "2025-03-30T01:40:00+01:00",
        "2025-03-30T01:45:00+01:00", "2025-03-30T03:00:00+02:00",
        "2025-03-30T03:15:00+02:00");
    SEQ("*/15 * * * *", "Europe/Berlin", "2025-10-26T02:40:00+02:00",
        "2025-10-26T02:45:00+02:00", "2025-10-26T02:00:00+01:00",
        "2025-10-26T02:15:00+01:00");
    /* Asked from inside the first occurrence: both halves still come. */
    SEQ("*/5 * * * *", "Europe/Berlin", "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:35:00+02:00");
    SEQ("*/5 * * * *", "Europe/Berlin", "2025-10-26T02:58:00+02:00",
        "2025-10-26T02:00:00+01:00", "2025-10-26T02:05:00+01:00");
    SEQ("0 * * * *", "America/New_York", "2025-03-09T00:30:00-05:00",
        "2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00",
        "2025-03-09T04:00:00-04:00");
    SEQ("0 * * * *", "America/New_York", "2025-11-02T00:30:00-04:00",
        "2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00",
        "2025-11-02T02:00:00-05:00");
    SEQ("*/15 * * * *", "America/New_York", "2025-03-09T01:40:00-05:00",
        "2025-03-09T01:45:00-05:00", "2025-03-09T03:00:00-04:00",
        "2025-03-09T03:15:00-04:00");
    SEQ("*/15 * * * *", "America/New_York", "2025-11-02T01:40:00-04:00",
        "2025-11-02T01:45:00-04:00", "2025-11-02T01:00:00-05:00",
        "2025-11-02T01:15:00-05:00");
    /* A * in minute or hour opts out of catch-up (Vixie cron). */
    SEQ("* 2 * * *", "Europe/Berlin", "2025-03-30T01:59:00+01:00",
        "2025-03-31T02:00:00+02:00");
    SEQ("0,30 * * * *", "Australia/Lord_Howe", "2025-10-05T01:40:00+10:30",
        "2025-10-05T02:30:00+11:00", "2025-10-05T03:00:00+11:00");
    SEQ("*/30 * * * *", "Australia/Lord_Howe", "2025-04-06T01:20:00+11:00",
        "2025-04-06T01:30:00+11:00", "2025-04-06T01:30:00+10:30",
        "2025-04-06T02:00:00+10:30");
    SEQ("0 0 1 1 *", "Asia/Tokyo", "2026-06-01T00:00:00+09:00",
        "2027-01-01T00:00:00+09:00");
}

static void test_cron_every_counts_elapsed_time(void **state)
{
    struct cron *c = parse_ok("@every 1h30m", "Europe/Berlin");
    int64_t interval = 0;
    int64_t t = at("2025-10-26T01:30:00+02:00");

    (void)state;
    assert_true(cron_is_every(c, &interval));
    assert_true(interval == 5400 * NS);
    t = cron_next(c, t);
    assert_true(t == at("2025-10-26T01:00:00Z"));
    t = cron_next(c, t);
    assert_true(t == at("2025-10-26T02:30:00Z"));
    assert_true(cron_next(c, t + 1) == at("2025-10-26T04:00:00Z") + 1);
    assert_true(cron_next(c, INT64_MAX - 1000) == -1);
    cron_free(c);
    SEQ("@EVERY 30s", "America/New_York", "2025-11-02T01:59:45-04:00",
        "2025-11-02T01:00:15-05:00", "2025-11-02T01:00:45-05:00");
    SEQ("@every 1s", NULL, "2026-01-01T00:00:00.25Z",
        "2026-01-01T00:00:01.25Z");
}

static void test_cron_finds_leap_days(void **state)
{
    (void)state;
    SEQ("0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z",
        "2032-02-29T00:00:00Z");
    /* 2100 is not a leap year: eight years from 2096 to 2104. */
    SEQ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z");
    SEQ("0 12 29 2 *", "Europe/Berlin", "2096-03-01T00:00:00Z",
        "2104-02-29T12:00:00+01:00");
    SEQ("0 0 28,29 2 *", "UTC", "2100-02-01T00:00:00Z", "2100-02-28T00:00:00Z",
        "2101-02-28T00:00:00Z");
}

static void test_cron_stays_within_int64_nanoseconds(void **state)
{
    struct cron *c = parse_ok("0 0 1 1 *", "Europe/Berlin");
    struct cron *s = parse_ok("* * * * * *", "UTC");
    int64_t t;

    (void)state;
    assert_true(cron_next(c, INT64_MAX) == -1);
    assert_true(cron_next(c, at("2262-01-01T00:00:00Z")) == -1);
    assert_true(cron_next(s, INT64_MAX - NS / 2) == -1);
    assert_true(cron_next(s, INT64_MAX - 3 * NS) == (INT64_MAX / NS - 2) * NS);
    /* Berlin kept local mean time then: only the bounds matter. */
    t = cron_next(c, INT64_MIN);
    assert_true(t > INT64_MIN && t < at("1678-01-02T00:00:00Z"));
    assert_true(t % NS == 0);
    assert_true(cron_next(s, INT64_MIN) == (INT64_MIN / NS) * NS);
    cron_free(c);
    cron_free(s);
}

/* ---- Brute force: every minute, judged by the rules in docs/cron.md ---- */

struct spec {
    char text[128];
    uint64_t bits[5]; /* minute, hour, day of month, month, day of week */
    bool dom_any;
    bool dow_any;
    bool wall_clock;
};

static uint32_t rng_state = 12345;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) % n;
}

/* Appends a random field over [lo, hi] to s->text and its set to *bits;
 * returns true when it used *. */
static bool gen_field(struct spec *s, int lo, int hi, uint64_t *bits, bool *any,
                      int star_weight)
{
    char part[48];
    int a = lo + (int)rnd((uint32_t)(hi - lo + 1));
    int b = a + (int)rnd((uint32_t)(hi - a + 1));
    int step = 1 + (int)rnd(7);
    int kind = (int)rnd(6 + (uint32_t)star_weight);
    bool star = false;

    *any = false;
    switch (kind) {
    case 0:
        snprintf(part, sizeof(part), "%d", a);
        *bits = UINT64_C(1) << a;
        break;
    case 1:
        snprintf(part, sizeof(part), "%d-%d", a, b);
        *bits = 0;
        for (int v = a; v <= b; v++) {
            *bits |= UINT64_C(1) << v;
        }
        break;
    case 2:
        snprintf(part, sizeof(part), "%d-%d/%d", a, b, step);
        *bits = 0;
        for (int v = a; v <= b; v += step) {
            *bits |= UINT64_C(1) << v;
        }
        break;
    case 3:
        snprintf(part, sizeof(part), "%d,%d", a, b);
        *bits = UINT64_C(1) << a | UINT64_C(1) << b;
        break;
    case 4:
        snprintf(part, sizeof(part), "*/%d", step);
        *bits = 0;
        for (int v = lo; v <= hi; v += step) {
            *bits |= UINT64_C(1) << v;
        }
        star = true;
        *any = step == 1;
        break;
    default:
        snprintf(part, sizeof(part), "*");
        *bits = 0;
        for (int v = lo; v <= hi; v++) {
            *bits |= UINT64_C(1) << v;
        }
        star = true;
        *any = true;
        break;
    }
    strcat(s->text, part);
    strcat(s->text, " ");
    return star;
}

/* A random 5-field spec; with force_hour >= 0 its hour field is that hour
 * (to land on a DST change). */
static void gen_spec(struct spec *s, int force_hour)
{
    bool any;
    bool star_min;
    bool star_hour;

    s->text[0] = '\0';
    star_min = gen_field(s, 0, 59, &s->bits[0], &any, 2);
    if (force_hour >= 0) {
        char part[16];

        snprintf(part, sizeof(part), "%d ", force_hour);
        strcat(s->text, part);
        s->bits[1] = UINT64_C(1) << force_hour;
        star_hour = false;
    } else {
        star_hour = gen_field(s, 0, 23, &s->bits[1], &any, 4);
    }
    gen_field(s, 1, 31, &s->bits[2], &s->dom_any, 12);
    gen_field(s, 1, 12, &s->bits[3], &any, 30);
    gen_field(s, 0, 6, &s->bits[4], &s->dow_any, 8);
    s->wall_clock = !star_min && !star_hour;
}

static bool spec_matches(const struct spec *s, const struct tz_tm *tm)
{
    bool dom = s->bits[2] >> tm->day & 1;
    bool dow = s->bits[4] >> tm->wday & 1;
    bool day = (s->dom_any || s->dow_any) ? dom && dow : dom || dow;

    return (s->bits[0] >> tm->minute & 1) && (s->bits[1] >> tm->hour & 1) &&
           (s->bits[3] >> tm->month & 1) && day && tm->second == 0;
}

/* Broken-down fields of local seconds l (a calendar without zones). */
static void local_tm(int64_t l, struct tz_tm *out)
{
    int64_t days = l / 86400 - (l % 86400 < 0);
    int64_t sod = l - days * 86400;

    tz_civil_from_days(days, &out->year, &out->month, &out->day);
    out->wday = (int)(((days + 4) % 7 + 7) % 7);
    out->hour = (int)(sod / 3600);
    out->minute = (int)(sod / 60 % 60);
    out->second = (int)(sod % 60);
}

/* The rules, stated per instant u (a whole minute; modern transitions are
 * on whole minutes too): u fires when its local time matches and, for a
 * wall-clock job, did not already occur before a fall back; a wall-clock
 * job also fires at the end of a gap in which one of its times fell. */
static bool brute_fires(const struct spec *s, const struct tz *z, int64_t u)
{
    struct tz_span sp;
    struct tz_tm tm;
    int64_t local;

    tz_span_at(z, u, &sp);
    tz_to_local(z, u, &tm);
    local = u + sp.utoff_s;
    if (s->wall_clock && sp.begin_s == u && sp.utoff_s > sp.prev_utoff_s) {
        for (int64_t l = u + sp.prev_utoff_s; l < local; l += 60) {
            struct tz_tm g;

            local_tm(l, &g);
            if (spec_matches(s, &g)) {
                return true;
            }
        }
    }
    if (!spec_matches(s, &tm)) {
        return false;
    }
    return !(s->wall_clock && sp.utoff_s < sp.prev_utoff_s &&
             local < sp.begin_s + sp.prev_utoff_s);
}

static void test_cron_matches_brute_force_minute_scan(void **state)
{
    static const char *const zones[] = {"Europe/Berlin",
                                        "America/New_York",
                                        "Australia/Lord_Howe",
                                        "America/Havana",
                                        "Pacific/Chatham",
                                        "Asia/Tokyo",
                                        "UTC"};
    const int64_t window = 6 * 86400;
    int checked = 0;

    (void)state;
    for (int i = 0; i < 600; i++) {
        const char *zone = zones[rnd(sizeof(zones) / sizeof(zones[0]))];
        struct tz *z = NULL;
        struct cron *c = NULL;
        struct spec s;
        struct tz_span sp;
        char err[CRON_ERR_SIZE];
        int64_t after;
        int64_t want = -1;
        int64_t got;
        int force_hour = -1;

        assert_int_equal(tz_new(zone, &z, err, sizeof(err)), 0);
        after = 1735689600 + (int64_t)rnd(4 * 365) * 86400 + rnd(86400);
        tz_span_at(z, after, &sp);
        if (rnd(3) && sp.end_s != INT64_MAX) {
            /* Start near the change, with its local hour half the time:
             * the gap or the repeated stretch starts at end + the smaller
             * offset. */
            struct tz_span sn;
            int64_t l;

            tz_span_at(z, sp.end_s, &sn);
            l = sp.end_s + (sn.utoff_s < sp.utoff_s ? sn.utoff_s : sp.utoff_s);
            force_hour =
                rnd(2) ? (int)((l % 86400 + 86400) % 86400 / 3600) : -1;
            after = sp.end_s - 3 * 3600 + (int64_t)rnd(5 * 3600);
        }
        gen_spec(&s, force_hour);
        if (cron_parse(s.text, zone, &c, err, sizeof(err)) != 0) {
            assert_non_null(strstr(err, "never fires"));
            tz_free(z);
            continue;
        }
        for (int64_t u = after - after % 60 + 60; u <= after + window;
             u += 60) {
            if (brute_fires(&s, z, u)) {
                want = u;
                break;
            }
        }
        got = cron_next(c, after * NS + (int64_t)rnd(1000) * 1000000);
        if (want >= 0 ? got != want * NS : got <= (after + window) * NS) {
            fail_msg("\"%s\" [%s] after %lld: got %lld, want %lld", s.text,
                     zone, (long long)after, (long long)(got / NS),
                     (long long)want);
        }
        checked += want >= 0;
        tz_free(z);
        cron_free(c);
    }
    assert_true(checked > 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_finds_next_fire_of_valid_expressions),
        cmocka_unit_test(test_cron_fires_strictly_after_the_given_instant),
        cmocka_unit_test(
            test_cron_rejects_invalid_expressions_naming_the_field),
        cmocka_unit_test(
            test_cron_refuses_overlong_expressions_and_tolerates_no_err),
        cmocka_unit_test(
            test_cron_fires_skipped_wall_clock_time_once_as_gap_ends),
        cmocka_unit_test(
            test_cron_fires_repeated_wall_clock_time_at_first_occurrence),
        cmocka_unit_test(test_cron_keeps_wildcard_jobs_on_real_time_across_dst),
        cmocka_unit_test(test_cron_every_counts_elapsed_time),
        cmocka_unit_test(test_cron_finds_leap_days),
        cmocka_unit_test(test_cron_stays_within_int64_nanoseconds),
        cmocka_unit_test(test_cron_matches_brute_force_minute_scan),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
