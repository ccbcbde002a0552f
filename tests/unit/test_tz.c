/* The TZif reader: known offsets, far-future footer rules, local-time
 * lookups with gaps and repeats, name checks, malformed files, and an
 * agreement check against glibc for every zone on the system. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "tz.h"

static int64_t at_s(const char *rfc3339)
{
    int64_t ns = 0;

    if (clock_parse_rfc3339(rfc3339, &ns) != 0) {
        fail_msg("bad timestamp in test: %s", rfc3339);
    }
    return ns / CLOCK_NS_PER_S;
}

static struct tz *load(const char *name)
{
    struct tz *z = NULL;
    char err[256] = "";

    if (tz_new(name, &z, err, sizeof(err)) != 0) {
        fail_msg("%s: %s", name, err);
    }
    return z;
}

static void test_tz_reports_known_offsets(void **state)
{
    static const struct {
        const char *zone;
        const char *instant;
        int32_t utoff_s;
        bool is_dst;
        const char *abbr;
        const char *local; /* YYYY-MM-DD HH:MM:SS */
    } cases[] = {
        {"Europe/Berlin", "2025-01-15T12:00:00Z", 3600, false, "CET",
         "2025-01-15 13:00:00"},
        {"Europe/Berlin", "2025-07-15T12:00:00Z", 7200, true, "CEST",
         "2025-07-15 14:00:00"},
        {"Europe/Berlin", "2025-03-30T00:59:59Z", 3600, false, "CET",
         "2025-03-30 01:59:59"},
        {"Europe/Berlin", "2025-03-30T01:00:00Z", 7200, true, "CEST",
         "2025-03-30 03:00:00"},
        {"Europe/Berlin", "1945-06-01T12:00:00Z", 10800, true, "CEMT",
         "1945-06-01 15:00:00"},
        {"America/New_York", "2025-01-15T12:00:00Z", -18000, false, "EST",
         "2025-01-15 07:00:00"},
        {"America/New_York", "2025-07-15T12:00:00Z", -14400, true, "EDT",
         "2025-07-15 08:00:00"},
        {"Australia/Lord_Howe", "2025-01-15T12:00:00Z", 39600, true, "+11",
         "2025-01-15 23:00:00"},
        {"Australia/Lord_Howe", "2025-07-15T12:00:00Z", 37800, false, "+1030",
         "2025-07-15 22:30:00"},
        {"Asia/Tokyo", "2025-07-15T12:00:00Z", 32400, false, "JST",
         "2025-07-15 21:00:00"},
        {"Asia/Tokyo", "1949-07-01T00:00:00Z", 36000, true, "JDT",
         "1949-07-01 10:00:00"},
        {"Asia/Kolkata", "2025-07-15T12:00:00Z", 19800, false, "IST",
         "2025-07-15 17:30:00"},
        {"Pacific/Apia", "2011-12-30T09:59:59Z", -36000, true, "-10",
         "2011-12-29 23:59:59"},
        {"Pacific/Apia", "2011-12-30T10:00:00Z", 50400, true, "+14",
         "2011-12-31 00:00:00"},
        /* Negative DST: Irish winter time is the "daylight" one. */
        {"Europe/Dublin", "2025-01-15T12:00:00Z", 0, true, "GMT",
         "2025-01-15 12:00:00"},
        {"Europe/Dublin", "2025-07-15T12:00:00Z", 3600, false, "IST",
         "2025-07-15 13:00:00"},
        /* Past the last transition in the file: the footer's rules. */
        {"Europe/Berlin", "2100-01-01T00:00:00Z", 3600, false, "CET",
         "2100-01-01 01:00:00"},
        {"Europe/Berlin", "2100-07-01T00:00:00Z", 7200, true, "CEST",
         "2100-07-01 02:00:00"},
        {"Europe/Berlin", "2100-03-28T01:00:00Z", 7200, true, "CEST",
         "2100-03-28 03:00:00"},
        {"Europe/Berlin", "2100-10-31T00:59:59Z", 7200, true, "CEST",
         "2100-10-31 02:59:59"},
        {"Europe/Berlin", "2100-10-31T01:00:00Z", 3600, false, "CET",
         "2100-10-31 02:00:00"},
        {"America/New_York", "2200-07-01T00:00:00Z", -14400, true, "EDT",
         "2200-06-30 20:00:00"},
        {"America/New_York", "2100-11-07T06:00:00Z", -18000, false, "EST",
         "2100-11-07 01:00:00"},
        {"Australia/Lord_Howe", "2100-01-15T00:00:00Z", 39600, true, "+11",
         "2100-01-15 11:00:00"},
        {"Australia/Lord_Howe", "2100-04-03T15:00:00Z", 37800, false, "+1030",
         "2100-04-04 01:30:00"},
        {"Australia/Lord_Howe", "2100-10-02T15:30:00Z", 39600, true, "+11",
         "2100-10-03 02:30:00"},
        {"Europe/Dublin", "2100-01-15T12:00:00Z", 0, true, "GMT",
         "2100-01-15 12:00:00"},
        {"Asia/Tokyo", "2250-01-01T00:00:00Z", 32400, false, "JST",
         "2250-01-01 09:00:00"},
        {"UTC", "2025-07-15T12:00:00Z", 0, false, "UTC", "2025-07-15 12:00:00"},
        {"Etc/UTC", "1900-01-01T00:00:00Z", 0, false, "UTC",
         "1900-01-01 00:00:00"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tz *z = load(cases[i].zone);
        struct tz_tm tm;
        char local[64];

        tz_to_local(z, at_s(cases[i].instant), &tm);
        snprintf(local, sizeof(local), "%04d-%02d-%02d %02d:%02d:%02d", tm.year,
                 tm.month, tm.day, tm.hour, tm.minute, tm.second);
        if (tm.utoff_s != cases[i].utoff_s || tm.is_dst != cases[i].is_dst ||
            strcmp(tm.abbr, cases[i].abbr) != 0 ||
            strcmp(local, cases[i].local) != 0) {
            fail_msg("%s at %s: got %d %d %s %s", cases[i].zone,
                     cases[i].instant, tm.utoff_s, tm.is_dst, tm.abbr, local);
        }
        assert_string_equal(tz_name(z), cases[i].zone);
        tz_free(z);
    }
}

static void test_tz_fills_weekday_and_day_of_year(void **state)
{
    struct tz *z = load("UTC");
    struct tz_tm tm;

    (void)state;
    tz_to_local(z, at_s("2024-12-31T23:59:59Z"), &tm);
    assert_int_equal(tm.yday, 365);
    assert_int_equal(tm.wday, 2); /* Tuesday */
    tz_to_local(z, 0, &tm);
    assert_int_equal(tm.wday, 4); /* Thursday */
    assert_int_equal(tm.year, 1970);
    tz_to_local(z, -1, &tm);
    assert_int_equal(tm.year, 1969);
    assert_int_equal(tm.wday, 3);
    assert_int_equal(tm.second, 59);
    /* Out of range instants clamp instead of overflowing. */
    tz_to_local(z, INT64_MAX, &tm);
    assert_true(tm.year > 30000 && tm.year < 40000);
    tz_to_local(z, INT64_MIN, &tm);
    assert_true(tm.year < -30000 && tm.year > -40000);
    tz_free(z);
}

static void test_tz_reports_spans_between_transitions(void **state)
{
    struct tz *berlin = load("Europe/Berlin");
    struct tz *tokyo = load("Asia/Tokyo");
    struct tz_span sp;

    (void)state;
    tz_span_at(berlin, at_s("2025-07-01T00:00:00Z"), &sp);
    assert_true(sp.begin_s == at_s("2025-03-30T01:00:00Z"));
    assert_true(sp.end_s == at_s("2025-10-26T01:00:00Z"));
    assert_int_equal(sp.utoff_s, 7200);
    assert_int_equal(sp.prev_utoff_s, 3600);
    assert_true(sp.is_dst);
    tz_span_at(berlin, at_s("2090-12-01T00:00:00Z"), &sp);
    assert_true(sp.begin_s == at_s("2090-10-29T01:00:00Z"));
    assert_true(sp.end_s == at_s("2091-03-25T01:00:00Z"));
    assert_int_equal(sp.prev_utoff_s, 7200);
    tz_span_at(tokyo, at_s("2025-07-01T00:00:00Z"), &sp);
    assert_true(sp.end_s == INT64_MAX);
    assert_int_equal(sp.utoff_s, 32400);
    tz_free(berlin);
    tz_free(tokyo);
}

static int local_to_utc(const struct tz *z, int year, int month, int day,
                        int hour, int minute, int64_t out[2])
{
    struct tz_tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.year = year;
    tm.month = month;
    tm.day = day;
    tm.hour = hour;
    tm.minute = minute;
    return tz_from_local(z, &tm, out);
}

static void test_tz_maps_local_time_to_zero_one_or_two_instants(void **state)
{
    struct tz *berlin = load("Europe/Berlin");
    struct tz *ny = load("America/New_York");
    struct tz *lh = load("Australia/Lord_Howe");
    struct tz *apia = load("Pacific/Apia");
    int64_t u[2];

    (void)state;
    assert_int_equal(local_to_utc(berlin, 2025, 3, 30, 2, 30, u), 0);
    assert_int_equal(local_to_utc(berlin, 2025, 3, 30, 3, 0, u), 1);
    assert_true(u[0] == at_s("2025-03-30T01:00:00Z"));
    assert_int_equal(local_to_utc(berlin, 2025, 10, 26, 2, 30, u), 2);
    assert_true(u[0] == at_s("2025-10-26T00:30:00Z"));
    assert_true(u[1] == at_s("2025-10-26T01:30:00Z"));
    assert_int_equal(local_to_utc(berlin, 2025, 10, 26, 3, 0, u), 1);
    assert_true(u[0] == at_s("2025-10-26T02:00:00Z"));
    /* Normalised: March 32 is April 1, month 13 is next January. */
    assert_int_equal(local_to_utc(berlin, 2025, 3, 32, 12, 0, u), 1);
    assert_true(u[0] == at_s("2025-04-01T10:00:00Z"));
    assert_int_equal(local_to_utc(berlin, 2025, 13, 1, 0, 0, u), 1);
    assert_true(u[0] == at_s("2026-01-01T00:00:00+01:00"));
    assert_int_equal(local_to_utc(ny, 2025, 11, 2, 1, 30, u), 2);
    assert_true(u[0] == at_s("2025-11-02T01:30:00-04:00"));
    assert_true(u[1] == at_s("2025-11-02T01:30:00-05:00"));
    assert_int_equal(local_to_utc(ny, 2025, 3, 9, 2, 0, u), 0);
    /* Lord Howe moves by half an hour. */
    assert_int_equal(local_to_utc(lh, 2025, 10, 5, 2, 15, u), 0);
    assert_int_equal(local_to_utc(lh, 2025, 10, 5, 2, 30, u), 1);
    assert_int_equal(local_to_utc(lh, 2025, 4, 6, 1, 45, u), 2);
    assert_true(u[1] - u[0] == 1800);
    /* Samoa skipped all of 2011-12-30. */
    assert_int_equal(local_to_utc(apia, 2011, 12, 30, 12, 0, u), 0);
    assert_int_equal(local_to_utc(apia, 2011, 12, 31, 0, 0, u), 1);
    /* Far future, and a wild year that clamps. */
    assert_int_equal(local_to_utc(berlin, 2100, 10, 31, 2, 30, u), 2);
    assert_int_equal(local_to_utc(berlin, 2000000000, 1, 1, 0, 0, u), 1);
    tz_free(berlin);
    tz_free(ny);
    tz_free(lh);
    tz_free(apia);
}

static void test_tz_checks_zone_names(void **state)
{
    static const char *const good[] = {
        "UTC",       "Europe/Berlin", "America/Argentina/Buenos_Aires",
        "Etc/GMT+5", "Etc/GMT-14",    "America/Port-au-Prince"};
    static const char *const bad[] = {"",
                                      "/etc/passwd",
                                      "../etc/passwd",
                                      "Europe/../Asia/Tokyo",
                                      "Europe//Berlin",
                                      "Europe/Berlin/",
                                      "./UTC",
                                      "Europe/Berlin\n",
                                      "Eu rope",
                                      "zone.tab",
                                      "Europe\\Berlin",
                                      "Europe/Berlin;rm"};
    char err[256];
    char longname[TZ_NAME_MAX + 2];
    struct tz *z = (struct tz *)&err;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(tz_is_valid_name(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tz_is_valid_name(bad[i])) {
            fail_msg("\"%s\" accepted", bad[i]);
        }
        err[0] = '\0';
        assert_int_equal(tz_new(bad[i], &z, err, sizeof(err)), ST_INVALID);
        assert_non_null(strstr(err, "invalid time zone name"));
    }
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(tz_is_valid_name(longname));
    longname[TZ_NAME_MAX] = '\0';
    assert_true(tz_is_valid_name(longname));
    assert_int_equal(tz_new(NULL, &z, err, sizeof(err)), ST_INVALID);
    assert_int_equal(tz_new("Mars/Olympus", &z, err, sizeof(err)),
                     ST_NOT_FOUND);
    assert_string_equal(err, "unknown time zone \"Mars/Olympus\"");
    assert_int_equal(tz_new("Europe", &z, err, sizeof(err)), ST_NOT_FOUND);
    assert_int_equal(tz_new("Europe/Berlin/x", &z, NULL, 0), ST_NOT_FOUND);
    assert_ptr_equal(z, (struct tz *)&err);
    tz_free(NULL);
}

static void test_tz_builds_utc_without_a_zone_file(void **state)
{
    char dir[] = "/tmp/test_tz_XXXXXX";
    char path[64];
    char err[256];
    const char *old = getenv("TZDIR");
    char *saved = old ? strdup(old) : NULL;
    struct tz *z = NULL;
    struct tz_tm tm;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    setenv("TZDIR", dir, 1);
    z = load("UTC");
    tz_to_local(z, 86400, &tm);
    assert_int_equal(tm.utoff_s, 0);
    assert_int_equal(tm.day, 2);
    tz_free(z);
    z = load("Etc/UTC");
    tz_free(z);
    assert_int_equal(tz_new("Europe/Berlin", &z, err, sizeof(err)),
                     ST_NOT_FOUND);
    /* A file that is not TZif. */
    snprintf(path, sizeof(path), "%s/Bogus", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a zone\n", f);
    fclose(f);
    assert_int_equal(tz_new("Bogus", &z, err, sizeof(err)), ST_IO);
    assert_string_equal(err, "time zone \"Bogus\": not a TZif file");
    /* Larger than any zone file: refused before reading. */
    assert_int_equal(truncate(path, TZ_FILE_MAX + 1), 0);
    assert_int_equal(tz_new("Bogus", &z, err, sizeof(err)), ST_IO);
    assert_non_null(strstr(err, "file larger than"));
    unlink(path);
    rmdir(dir);
    /* A relative TZDIR is ignored. */
    setenv("TZDIR", "relative/dir", 1);
    z = load("Europe/Berlin");
    tz_free(z);
    if (saved) {
        setenv("TZDIR", saved, 1);
    } else {
        unsetenv("TZDIR");
    }
    free(saved);
}

/* ---- Hand-made TZif data ---- */

struct tzif {
    int version; /* 1, 2, 3 */
    size_t n_at;
    const int64_t *at;
    const uint8_t *idx;
    size_t n_types;
    const int32_t *utoff;
    const uint8_t *isdst;
    const uint8_t *desig;
    const char *chars; /* NUL-separated */
    size_t n_chars;
    uint32_t leapcnt;
    const char *footer; /* v2+: NULL writes no footer at all */
};

static size_t put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

static size_t put_header(uint8_t *p, int version, const uint32_t counts[6])
{
    size_t n = 0;

    memcpy(p, "TZif", 4);
    p[4] = version == 1 ? 0 : (uint8_t)('0' + version);
    memset(p + 5, 0, 15);
    n = 20;
    for (int i = 0; i < 6; i++) {
        n += put32(p + n, counts[i]);
    }
    return n;
}

static size_t put_block(uint8_t *p, const struct tzif *t, int time_len)
{
    size_t n = 0;

    for (size_t i = 0; i < t->n_at; i++) {
        if (time_len == 8) {
            n += put32(p + n, (uint32_t)((uint64_t)t->at[i] >> 32));
        }
        n += put32(p + n, (uint32_t)t->at[i]);
    }
    if (t->n_at) {
        memcpy(p + n, t->idx, t->n_at);
        n += t->n_at;
    }
    for (size_t i = 0; i < t->n_types; i++) {
        n += put32(p + n, (uint32_t)t->utoff[i]);
        p[n++] = t->isdst[i];
        p[n++] = t->desig[i];
    }
    memcpy(p + n, t->chars, t->n_chars);
    n += t->n_chars;
    memset(p + n, 0, t->leapcnt * (size_t)(time_len + 4));
    n += t->leapcnt * (size_t)(time_len + 4);
    return n;
}

static size_t build(const struct tzif *t, uint8_t *p)
{
    uint32_t counts[6] = {0,
                          0,
                          t->leapcnt,
                          (uint32_t)t->n_at,
                          (uint32_t)t->n_types,
                          (uint32_t)t->n_chars};
    static const uint32_t slim[6] = {0, 0, 0, 0, 1, 1};
    size_t n;

    if (t->version == 1) {
        n = put_header(p, 1, counts);
        return n + put_block(p + n, t, 4);
    }
    /* A v1 block with one type, as zic -b slim writes. */
    n = put_header(p, t->version, slim);
    memset(p + n, 0, 7);
    n += 7;
    n += put_header(p + n, t->version, counts);
    n += put_block(p + n, t, 8);
    if (t->footer) {
        n += (size_t)sprintf((char *)p + n, "\n%s\n", t->footer);
    }
    return n;
}

static const int64_t two_at[] = {1000, 2000};
static const uint8_t two_idx[] = {1, 0};
static const int32_t two_utoff[] = {-3600, 7200};
static const uint8_t two_isdst[] = {0, 1};
static const uint8_t two_desig[] = {0, 4};
static const char two_chars[] = "AAA\0BBBB";

static struct tzif two_types(int version, const char *footer)
{
    struct tzif t = {
        version,   2,         two_at,    two_idx,           2, two_utoff,
        two_isdst, two_desig, two_chars, sizeof(two_chars), 0, footer};

    return t;
}

static struct tz *from_tzif(const struct tzif *t)
{
    uint8_t buf[1024];
    size_t n = build(t, buf);
    struct tz *z = NULL;
    char err[256] = "";

    if (tz_new_from_tzif("Test/Zone", buf, n, &z, err, sizeof(err)) != 0) {
        fail_msg("hand-made TZif refused: %s", err);
    }
    return z;
}

static int32_t offset_at(const struct tz *z, int64_t u)
{
    struct tz_tm tm;

    tz_to_local(z, u, &tm);
    return tm.utoff_s;
}

static void test_tz_reads_version_1_files(void **state)
{
    struct tzif t = two_types(1, NULL);
    struct tz *z = from_tzif(&t);
    struct tz_tm tm;
    struct tz_span sp;

    (void)state;
    /* Before the first transition: type 0. */
    assert_int_equal(offset_at(z, 999), -3600);
    tz_to_local(z, 1000, &tm);
    assert_int_equal(tm.utoff_s, 7200);
    assert_true(tm.is_dst);
    assert_string_equal(tm.abbr, "BBBB");
    assert_int_equal(offset_at(z, 1999), 7200);
    /* After the last with no footer: the last type, for ever. */
    assert_int_equal(offset_at(z, 2000), -3600);
    tz_span_at(z, INT64_C(5000000000), &sp);
    assert_true(sp.begin_s == 2000 && sp.end_s == INT64_MAX);
    assert_int_equal(sp.prev_utoff_s, 7200);
    tz_span_at(z, 0, &sp);
    assert_true(sp.begin_s == INT64_MIN && sp.end_s == 1000);
    assert_int_equal(sp.prev_utoff_s, -3600);
    tz_free(z);
    /* A v2 file whose footer is empty behaves the same. */
    t = two_types(2, "");
    z = from_tzif(&t);
    assert_int_equal(offset_at(z, INT64_C(5000000000)), -3600);
    tz_free(z);
}

static void test_tz_applies_footer_rules_after_the_last_transition(void **state)
{
    static const int32_t utoff[] = {0};
    static const uint8_t zero[] = {0};
    struct tzif t = {3, 0, NULL, NULL, 1, utoff, zero, zero, "LMT", 4, 0, NULL};
    struct tz *z;
    struct tz_tm tm;

    (void)state;
    /* Jn skips Feb 29, n counts it; times may be negative. */
    t.footer = "XST-2<+0330>-3:30,J60/1:30,300/-1";
    z = from_tzif(&t);
    assert_int_equal(offset_at(z, at_s("2024-02-29T23:29:59Z")), 7200);
    tz_to_local(z, at_s("2024-02-29T23:30:00Z"), &tm);
    assert_int_equal(tm.utoff_s, 12600);
    assert_string_equal(tm.abbr, "+0330");
    assert_true(tm.is_dst);
    assert_int_equal(offset_at(z, at_s("2023-02-28T23:30:00Z")), 12600);
    assert_int_equal(offset_at(z, at_s("2023-02-28T23:29:59Z")), 7200);
    /* Day 300 of 2024 is Oct 27; at -1:00 it is Oct 26 23:00 (DST). */
    assert_int_equal(offset_at(z, at_s("2024-10-26T19:29:59Z")), 12600);
    assert_int_equal(offset_at(z, at_s("2024-10-26T19:30:00Z")), 7200);
    tz_free(z);

    /* DST all year (RFC 8536 example): no flapping at the year end. */
    t.footer = "EST5EDT,0/0,J365/25";
    z = from_tzif(&t);
    assert_int_equal(offset_at(z, at_s("2025-01-01T04:59:59Z")), -14400);
    assert_int_equal(offset_at(z, at_s("2025-01-01T05:00:00Z")), -14400);
    assert_int_equal(offset_at(z, at_s("2025-07-01T05:00:00Z")), -14400);
    assert_int_equal(offset_at(z, at_s("2025-12-31T23:00:00Z")), -14400);
    tz_free(z);

    /* No rules given: the POSIX default M3.2.0,M11.1.0. */
    t.footer = "EST5EDT";
    z = from_tzif(&t);
    assert_int_equal(offset_at(z, at_s("2030-03-10T06:59:59Z")), -18000);
    assert_int_equal(offset_at(z, at_s("2030-03-10T07:00:00Z")), -14400);
    assert_int_equal(offset_at(z, at_s("2030-11-03T06:00:00Z")), -18000);
    tz_free(z);

    /* Southern hemisphere, explicit times with seconds, quoted names. */
    t.footer = "<-04>4<-03>,M9.1.6/24,M4.1.6/24:00:00";
    z = from_tzif(&t);
    assert_int_equal(offset_at(z, at_s("2030-01-15T00:00:00Z")), -10800);
    assert_int_equal(offset_at(z, at_s("2030-07-15T00:00:00Z")), -14400);
    tz_free(z);

    /* The footer takes over only after the last transition. */
    t = two_types(2, "CCC-5");
    z = from_tzif(&t);
    assert_int_equal(offset_at(z, 1500), 7200);
    assert_int_equal(offset_at(z, 2000), 18000);
    tz_free(z);
}

static void test_tz_accepts_and_refuses_tz_strings(void **state)
{
    static const char *const good[] = {"UTC0",
                                       "<+0330>-3:30",
                                       "EST5EDT4,M3.2.0/2:00:00,M11.1.0/2",
                                       "AAA-1BBB,J1/0,J365/24",
                                       "AAA1BBB,0/-167,365/167",
                                       "<-00>0",
                                       "IST-1GMT0,M10.5.0,M3.5.0/1",
                                       "AAA+24:59:59"};
    static const char *const bad[] = {"A0",
                                      "EST",
                                      "EST5EDT,M13.1.0,M11.1.0",
                                      "EST5EDT,M3.6.0,M11.1.0",
                                      "EST5EDT,M3.2.7,M11.1.0",
                                      "EST5EDT,J0,J365",
                                      "EST5EDT,366,1",
                                      "EST5EDT,M3.2.0/168,M11.1.0",
                                      "EST25",
                                      "<AB>1",
                                      "<ABC1",
                                      "EST5EDT,M3.2.0",
                                      "EST5EDT,M3.2.0,M11.1.0x",
                                      "EST5:60",
                                      "EST5EDT,M0.1.0,M11.1.0",
                                      "EST5EDT,M3.0.0,M11.1.0",
                                      "EST5EDT,x,y",
                                      "EST5EDT25,M3.2.0,M11.1.0",
                                      "EST5ED",
                                      "5EST"};
    static const int32_t utoff[] = {0};
    static const uint8_t zero[] = {0};
    struct tzif t = {2, 0, NULL, NULL, 1, utoff, zero, zero, "LMT", 4, 0, NULL};
    uint8_t buf[1024];
    char err[256];
    struct tz *z;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        t.footer = good[i];
        z = from_tzif(&t);
        tz_free(z);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n;

        t.footer = bad[i];
        n = build(&t, buf);
        z = NULL;
        if (tz_new_from_tzif("Test/Bad", buf, n, &z, err, sizeof(err)) !=
            ST_IO) {
            fail_msg("footer \"%s\" accepted", bad[i]);
        }
        assert_null(z);
        assert_non_null(strstr(err, "bad TZ string footer"));
    }
}

static void expect_refused(const uint8_t *buf, size_t n, const char *want)
{
    struct tz *z = NULL;
    char err[256] = "";

    if (tz_new_from_tzif("Test/Bad", buf, n, &z, err, sizeof(err)) != ST_IO) {
        fail_msg("accepted; wanted \"%s\"", want);
    }
    assert_null(z);
    if (!strstr(err, want)) {
        fail_msg("message \"%s\" lacks \"%s\"", err, want);
    }
}

static void test_tz_refuses_malformed_tzif_data(void **state)
{
    static const int64_t back_at[] = {2000, 1000};
    static const uint8_t bad_idx[] = {1, 2};
    static const int32_t wild_utoff[] = {-3600, 100000};
    static const uint8_t far_desig[] = {0, 40};
    static const char unterminated[] = {'A', 'A', 'A'};
    uint8_t buf[1024];
    struct tzif t;
    size_t n;

    (void)state;
    expect_refused((const uint8_t *)"TZif", 4, "not a TZif file");
    memset(buf, 0, sizeof(buf));
    expect_refused(buf, 100, "not a TZif file");
    t = two_types(2, "CET-1");
    t.leapcnt = 1;
    n = build(&t, buf);
    expect_refused(buf, n, "leap-second");
    t = two_types(2, "CET-1");
    t.at = back_at;
    n = build(&t, buf);
    expect_refused(buf, n, "not ascending");
    t = two_types(1, NULL);
    t.idx = bad_idx;
    n = build(&t, buf);
    expect_refused(buf, n, "transition type out of range");
    t = two_types(2, "CET-1");
    t.utoff = wild_utoff;
    n = build(&t, buf);
    expect_refused(buf, n, "bad local time type 1");
    t = two_types(2, "CET-1");
    t.desig = far_desig;
    n = build(&t, buf);
    expect_refused(buf, n, "bad local time type 1");
    t = two_types(2, "CET-1");
    t.chars = unterminated;
    t.n_chars = sizeof(unterminated);
    t.desig = (const uint8_t[]){0, 0};
    n = build(&t, buf);
    expect_refused(buf, n, "unterminated abbreviation");
    t = two_types(2, "CET-1");
    t.n_types = 0;
    t.n_at = 0;
    n = build(&t, buf);
    expect_refused(buf, n, "inconsistent counts");
    t = two_types(2, "CET-1");
    n = build(&t, buf);
    expect_refused(buf, n - 1, "bad TZ string footer"); /* no final \n */
    buf[n - 7] = 'x'; /* the \n before "CET-1" */
    expect_refused(buf, n, "bad TZ string footer");
    t = two_types(1, NULL);
    n = build(&t, buf);
    expect_refused(buf, n - 1, "truncated");
}

/* Every prefix of a real file either loads or is refused cleanly (the
 * sanitizers judge the reads). */
static void test_tz_survives_every_truncation_of_a_real_file(void **state)
{
    FILE *f = fopen("/usr/share/zoneinfo/America/New_York", "rb");
    uint8_t buf[8192];
    size_t n;
    int ok = 0;

    (void)state;
    if (!f) {
        skip();
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (size_t len = 0; len <= n; len++) {
        struct tz *z = NULL;
        int rc = tz_new_from_tzif("Cut", buf, len, &z, NULL, 0);

        assert_true(rc == 0 || rc == ST_IO);
        if (rc == 0) {
            ok++;
            assert_int_equal(offset_at(z, at_s("2025-07-01T00:00:00Z")),
                             -14400);
            tz_free(z);
        }
    }
    /* The whole file, and the file without its footer. */
    assert_int_equal(ok, 2);
}

/* ---- Agreement with glibc, zone by zone ---- */

static long glibc_offset(int64_t u)
{
    time_t t = (time_t)u;
    struct tm tm;

    localtime_r(&t, &tm);
    return tm.tm_gmtoff;
}

/* Walks every span of every zone in tzdata.zi from 1900 to 2200 and checks
 * its offsets against glibc's localtime_r at both ends, and a spread of
 * instants in between, broken down. */
static void test_tz_agrees_with_glibc_for_every_zone(void **state)
{
    const int64_t from = at_s("1900-01-01T00:00:00Z");
    const int64_t to = at_s("2200-01-01T00:00:00Z");
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    FILE *list = fopen("/usr/share/zoneinfo/tzdata.zi", "r");
    char line[512];
    int zones = 0;

    (void)state;
    if (!list) {
        skip();
    }
    while (fgets(line, sizeof(line), list)) {
        char name[256];
        char env[300];
        struct tz *z;
        int64_t u = from;

        if (sscanf(line, "Z %255s", name) != 1) {
            continue;
        }
        z = load(name);
        snprintf(env, sizeof(env), ":%s", name);
        setenv("TZ", env, 1);
        tzset();
        while (u < to) {
            struct tz_span sp;

            tz_span_at(z, u, &sp);
            if (sp.begin_s > u || sp.end_s <= u ||
                glibc_offset(u) != sp.utoff_s ||
                (sp.begin_s > from &&
                 glibc_offset(sp.begin_s - 1) != sp.prev_utoff_s) ||
                (sp.end_s < to && glibc_offset(sp.end_s - 1) != sp.utoff_s)) {
                fail_msg("%s: span at %lld [%lld, %lld) offset %d prev %d, "
                         "glibc %ld",
                         name, (long long)u, (long long)sp.begin_s,
                         (long long)sp.end_s, sp.utoff_s, sp.prev_utoff_s,
                         glibc_offset(u));
            }
            u = sp.end_s;
        }
        for (u = from; u < to; u += 86400 * 97 + 3607) {
            time_t t = (time_t)u;
            struct tm want;
            struct tz_tm got;

            localtime_r(&t, &want);
            tz_to_local(z, u, &got);
            if (want.tm_year + 1900 != got.year ||
                want.tm_mon + 1 != got.month || want.tm_mday != got.day ||
                want.tm_hour != got.hour || want.tm_min != got.minute ||
                want.tm_sec != got.second || want.tm_wday != got.wday ||
                want.tm_yday != got.yday || want.tm_isdst != got.is_dst ||
                strcmp(want.tm_zone, got.abbr) != 0) {
                fail_msg("%s at %lld: glibc %s, ours %s", name, (long long)u,
                         want.tm_zone, got.abbr);
            }
        }
        tz_free(z);
        zones++;
    }
    fclose(list);
    if (saved) {
        setenv("TZ", saved, 1);
    } else {
        unsetenv("TZ");
    }
    tzset();
    free(saved);
    assert_true(zones > 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tz_reports_known_offsets),
        cmocka_unit_test(test_tz_fills_weekday_and_day_of_year),
        cmocka_unit_test(test_tz_reports_spans_between_transitions),
        cmocka_unit_test(test_tz_maps_local_time_to_zero_one_or_two_instants),
        cmocka_unit_test(test_tz_checks_zone_names),
        cmocka_unit_test(test_tz_builds_utc_without_a_zone_file),
        cmocka_unit_test(test_tz_reads_version_1_files),
        cmocka_unit_test(
            test_tz_applies_footer_rules_after_the_last_transition),
        cmocka_unit_test(test_tz_accepts_and_refuses_tz_strings),
        cmocka_unit_test(test_tz_refuses_malformed_tzif_data),
        cmocka_unit_test(test_tz_survives_every_truncation_of_a_real_file),
        cmocka_unit_test(test_tz_agrees_with_glibc_for_every_zone),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
