/* Unit tests of controller/schedules.c: schedule bodies (no database). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "cron.h"
#include "schedules.h"

static int parse(const char *body, struct schedule_def *s, struct cron **c,
                 struct runreq_error *err)
{
    memset(err, 0, sizeof(*err));
    return schedules_parse(body, strlen(body), s, c, err);
}

/* body must be refused with code and a message containing says. */
static void expect_refused(const char *body, const char *code, const char *says)
{
    struct schedule_def s;
    struct cron *c = NULL;
    struct runreq_error err;

    assert_int_equal(parse(body, &s, &c, &err), ST_INVALID);
    assert_null(c);
    assert_string_equal(err.code, code);
    if (!strstr(err.message, says)) {
        fail_msg("%s: message \"%s\" lacks \"%s\"", body, err.message, says);
    }
}

static void test_schedules_parse_accepts_a_full_body(void **state)
{
    struct schedule_def s;
    struct cron *c = NULL;
    struct runreq_error err;

    (void)state;
    assert_int_equal(
        parse("{\"name\":\"nightly\",\"suite\":\"selftest\",\"namespace\":"
              "\"handoff\",\"expression\":\"0 3 * * 1-5\",\"time_zone\":"
              "\"Europe/Berlin\",\"enabled\":false,\"overlap_policy\":"
              "\"allow\",\"catch_up\":\"one\",\"max_runs\":5,\"end_at\":"
              "\"2030-01-01T00:00:00Z\",\"params\":{\"k\":\"v\"},"
              "\"timeout\":\"90s\",\"run\":\"pass\"}",
              &s, &c, &err),
        ST_OK);
    assert_non_null(c);
    assert_string_equal(s.name, "nightly");
    assert_string_equal(s.expression, "0 3 * * 1-5");
    assert_string_equal(s.time_zone, "Europe/Berlin");
    assert_false(s.enabled);
    assert_true(s.overlap_allow);
    assert_true(s.catch_up_one);
    assert_int_equal(s.max_runs, 5);
    assert_int_equal(s.end_at_ns, INT64_C(1893456000) * CLOCK_NS_PER_S);
    assert_string_equal(s.run.suite, "selftest");
    assert_string_equal(s.run.ns, "handoff");
    assert_string_equal(s.run.run_filter, "pass");
    assert_int_equal(s.run.timeout_ms, 90000);
    assert_int_equal(s.run.n_params, 1);
    cron_free(c);
    schedules_def_cleanup(&s);
}

static void test_schedules_parse_defaults_to_utc_forbid_skip(void **state)
{
    struct schedule_def s;
    struct runreq_error err;

    (void)state;
    assert_int_equal(parse("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                           "\"@every 1s\"}",
                           &s, NULL, &err),
                     ST_OK);
    assert_string_equal(s.time_zone, "UTC");
    assert_true(s.enabled);
    assert_false(s.overlap_allow);
    assert_false(s.catch_up_one);
    assert_int_equal(s.max_runs, 0);
    assert_string_equal(s.run.trigger, "api");
    schedules_def_cleanup(&s);
}

static void test_schedules_parse_names_the_bad_field(void **state)
{
    (void)state;
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":\"@daily\","
                   "\"colour\":1}",
                   "unknown_field", "\"colour\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"61 * * * *\"}",
                   "invalid_argument", "field \"expression\": ");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\",\"time_zone\":\"Mars/Olympus\"}",
                   "invalid_argument", "field \"time_zone\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\",\"time_zone\":\"../etc/passwd\"}",
                   "invalid_argument", "field \"time_zone\"");
    expect_refused("{\"name\":\"a b\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\"}",
                   "invalid_argument", "field \"name\"");
    expect_refused("{\"suite\":\"s\",\"expression\":\"@daily\"}",
                   "invalid_argument", "field \"name\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\"}", "invalid_argument",
                   "field \"expression\"");
    expect_refused("{\"name\":\"a\",\"expression\":\"@daily\"}",
                   "invalid_argument", "field \"suite\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\",\"catch_up\":\"all\"}",
                   "invalid_argument", "field \"catch_up\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\",\"max_runs\":0}",
                   "invalid_argument", "field \"max_runs\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\",\"end_at\":\"tomorrow\"}",
                   "invalid_argument", "field \"end_at\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\",\"enabled\":\"yes\"}",
                   "invalid_argument", "field \"enabled\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\",\"trigger\":\"schedule\"}",
                   "unknown_field", "\"trigger\"");
    expect_refused("{\"name\":\"a\",\"suite\":\"s\",\"expression\":"
                   "\"@daily\",\"timeout\":\"soon\"}",
                   "invalid_argument", "field \"timeout\"");
    expect_refused("{\"name\":\"a\",\"name\":\"b\"}", "malformed_json", "");
    expect_refused("[]", "malformed_json", "object");
}

static void test_schedules_next_tick_is_whole_ms_within_end_at(void **state)
{
    struct cron *c = NULL;
    char err[CRON_ERR_SIZE];
    int64_t t0 = INT64_C(1763895600) * CLOCK_NS_PER_S + 123456789;

    (void)state;
    assert_int_equal(cron_parse("@every 1s", "UTC", &c, err, sizeof(err)),
                     ST_OK);
    assert_int_equal(schedules_next_tick(c, t0, 0),
                     t0 + CLOCK_NS_PER_S - 456789);
    assert_int_equal(schedules_next_tick(c, t0, t0 + CLOCK_NS_PER_S / 2), -1);
    cron_free(c);
    assert_int_equal(cron_parse("0 3 * * *", "UTC", &c, err, sizeof(err)),
                     ST_OK);
    /* 2025-11-23T11:00:00Z -> 2025-11-24T03:00:00Z */
    assert_int_equal(
        schedules_next_tick(c, INT64_C(1763895600) * CLOCK_NS_PER_S, 0),
        INT64_C(1763953200) * CLOCK_NS_PER_S);
    cron_free(c);
}

static void test_schedules_last_due_finds_the_latest_missed_tick(void **state)
{
    struct cron *c = NULL;
    char err[CRON_ERR_SIZE];
    int64_t s = CLOCK_NS_PER_S;
    int64_t base = INT64_C(1763856000) * s; /* 2025-11-23T00:00:00Z */
    bool several = true;

    (void)state;
    assert_int_equal(cron_parse("0 */10 * * * *", "UTC", &c, err, sizeof(err)),
                     ST_OK);
    /* On time: the stored tick itself. */
    assert_int_equal(schedules_last_due(c, base, base + s / 2, &several), base);
    assert_false(several);
    /* Down for two hours and a bit: the last of the twelve missed ticks. */
    assert_int_equal(
        schedules_last_due(c, base, base + 7200 * s + 5 * s, &several),
        base + 7200 * s);
    assert_true(several);
    /* Two ticks due, far apart from now. */
    assert_int_equal(schedules_last_due(c, base, base + 900 * s, &several),
                     base + 600 * s);
    assert_true(several);
    cron_free(c);
    assert_int_equal(cron_parse("@every 1s", "UTC", &c, err, sizeof(err)),
                     ST_OK);
    assert_int_equal(schedules_last_due(c, base + 250 * CLOCK_NS_PER_MS,
                                        base + 86400 * s, &several),
                     base + 86399 * s + 250 * CLOCK_NS_PER_MS);
    assert_true(several);
    cron_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedules_parse_accepts_a_full_body),
        cmocka_unit_test(test_schedules_parse_defaults_to_utc_forbid_skip),
        cmocka_unit_test(test_schedules_parse_names_the_bad_field),
        cmocka_unit_test(test_schedules_next_tick_is_whole_ms_within_end_at),
        cmocka_unit_test(test_schedules_last_due_finds_the_latest_missed_tick),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
