/* Schedules end to end (docs/scheduling.md), against the real
 * nats-server, PostgreSQL and Redis of deploy/stack.sh: three controller
 * replicas fire `@every 1s` schedules, checked in PostgreSQL: one run per
 * tick, also when a replica is killed -9; a burst of schedules sharing a
 * tick is prepared ahead and fires at the tick, once each, spread over the
 * replicas; a singleton whose runs outlast its period never overlaps;
 * Redis stopped for 5 s; controllers restarted under both catch-up
 * policies; bad schedules refused.
 *
 * Needs HANDOFF_NATS_URL, HANDOFF_PG_DSN, HANDOFF_REDIS_URL and
 * HANDOFF_STACK_DIR (tests/run.sh sets them). The test makes a database
 * and a worker pool of its own and removes everything at the end. */
#include <curl/curl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "clock.h"
#include "db.h"
#include "e2e.h"
#include "mem.h"

#define N_CTL 3

static struct {
    char url[N_CTL][96];
    struct e2e_proc *ctl[N_CTL];
} E;

/* Controllers look for due ticks every 100 ms here. */
static const char *const ctl_env[] = {"HANDOFF_SCHEDULE_POLL=100ms", NULL};

/* Starts controller i (0..N_CTL-1) on a new port. */
static void start_controller(int i)
{
    char name[32];

    snprintf(name, sizeof(name), "controller-%d", i + 1);
    E.ctl[i] = e2e_start_controller(name, ctl_env, E.url[i], sizeof(E.url[i]));
}

/* Polls until controller i answers /readyz with 200. */
static void await_ready(int i)
{
    if (e2e_await_ready(E.url[i], NULL) != 0) {
        fail_msg("controller %d not ready within 60 s", i + 1);
    }
}

/* ---- Processes ---------------------------------------------------------- */

/* ---- HTTP --------------------------------------------------------------- */

/* POSTs a schedule of the test's pool; extra is more JSON fields. */
static void create_schedule(const char *name, const char *expr,
                            const char *extra)
{
    char body[2048];
    struct e2e_http h;

    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"suite\":\"e2e\",\"namespace\":\"test\","
             "\"pool\":\"%s\",\"expression\":\"%s\",%s}",
             name, E2E.pool, expr, extra);
    h = e2e_request(E.url[0], "POST", "/api/v1/schedules", body, NULL);
    if (h.status != 201) {
        fail_msg("POST %s: %ld %s", body, h.status, buf_str(&h.body));
    }
    buf_cleanup(&h.body);
}

static void set_enabled(const char *name, bool on)
{
    char path[160];
    struct e2e_http h;

    snprintf(path, sizeof(path), "/api/v1/schedules/%s", name);
    h = e2e_request(E.url[0], "PATCH", path,
                    on ? "{\"enabled\":true}" : "{\"enabled\":false}", NULL);
    if (h.status != 200) {
        fail_msg("PATCH %s: %ld %s", path, h.status, buf_str(&h.body));
    }
    buf_cleanup(&h.body);
}

/* ---- SQL checks ----------------------------------------------------------- */

/* ---- SQL checks ----------------------------------------------------------- */

/* Runs of the named schedule, and its ticks matching cond. */
#define RUNS_OF                                                                \
    "SELECT count(*) FROM runs WHERE schedule_id = (SELECT id FROM "           \
    "schedules WHERE name = $1)"
#define TICKS_OF(cond)                                                         \
    "SELECT count(*) FROM schedule_ticks WHERE schedule_id = (SELECT id "      \
    "FROM schedules WHERE name = $1) AND " cond

/* Every fired tick of name has its own run and every run of name its own
 * tick: one run per tick, never two. Returns the number of runs. */
static int64_t check_one_run_per_tick(const char *name)
{
    int64_t runs = e2e_sql_count(RUNS_OF, name);

    assert_int_equal(e2e_sql_count(TICKS_OF("outcome = 'fired'"), name), runs);
    assert_int_equal(
        e2e_sql_count(TICKS_OF("run_id IN (SELECT id FROM runs)"), name), runs);
    assert_int_equal(
        e2e_sql_count("SELECT count(DISTINCT t.run_id) FROM schedule_ticks t "
                      "JOIN schedules s ON s.id = t.schedule_id WHERE s.name = "
                      "$1 AND t.outcome = 'fired'",
                      name),
        runs);
    return runs;
}

/* The database's clock, in ms. */
static int64_t db_now_ms(void)
{
    return e2e_sql_count("SELECT (extract(epoch FROM now()) * 1000)::bigint",
                         NULL);
}

/* Runs of name created between from_ms and to_ms (database clock). */
static int64_t runs_between(const char *name, int64_t from_ms, int64_t to_ms)
{
    char from[24];
    char to[24];
    const char *p[3] = {name, from, to};
    struct db_res *res = NULL;
    int64_t n = -1;

    snprintf(from, sizeof(from), "%" PRId64, from_ms);
    snprintf(to, sizeof(to), "%" PRId64, to_ms);
    assert_int_equal(db_exec(E2E.db,
                             RUNS_OF
                             " AND created_at BETWEEN timestamptz 'epoch' + "
                             "$2::bigint * interval '1 ms' AND timestamptz "
                             "'epoch' + $3::bigint * interval '1 ms'",
                             3, p, &res),
                     ST_OK);
    assert_int_equal(db_res_int64(res, 0, 0, &n), ST_OK);
    db_res_free(res);
    return n;
}

/* ---- Tests --------------------------------------------------------------- */

static void expect_refused(const char *method, const char *path,
                           const char *body, long status, const char *says)
{
    struct e2e_http h = e2e_request(E.url[1], method, path, body, NULL);

    if (h.status != status || !strstr(buf_str(&h.body), says)) {
        fail_msg("%s %s %s: %ld %s (want %ld and \"%s\")", method, path,
                 body ? body : "", h.status, buf_str(&h.body), status, says);
    }
    buf_cleanup(&h.body);
}

static void test_e2e_bad_schedules_get_4xx_and_leave_no_row(void **state)
{
    static const struct {
        const char *body;
        long status;
        const char *says;
    } cases[] = {
        {"{\"name\":\"bad1\",\"suite\":\"e2e\",\"expression\":\"61 * * * "
         "*\"}",
         400, "field \\\"expression\\\""},
        {"{\"name\":\"bad2\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"time_zone\":\"Mars/Olympus\"}",
         400, "field \\\"time_zone\\\""},
        {"{\"name\":\"bad3\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"colour\":\"red\"}",
         400, "unknown field \\\"colour\\\""},
        {"{\"name\":\"bad4\",\"suite\":\"e2f\",\"expression\":\"@daily\"}", 404,
         "unknown suite"},
        {"{\"name\":\"bad 5\",\"suite\":\"e2e\",\"expression\":\"@daily\"}",
         400, "field \\\"name\\\""},
        {"{\"name\":\"bad6\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"overlap_policy\":\"sometimes\"}",
         400, "overlap_policy"},
        {"{\"name\":\"bad7\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"trigger\":\"api\"}",
         400, "trigger"},
        {"{\"name\":\"bad8\",\"suite\":\"e2e\",\"expression\":\"@daily\","
         "\"run\":\"(\"}",
         400, "field \\\"run\\\""},
        {"[1]", 400, "malformed_json"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_refused("POST", "/api/v1/schedules", cases[i].body,
                       cases[i].status, cases[i].says);
    }
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM schedules WHERE name LIKE 'bad%'",
                      NULL),
        0);
    create_schedule("daily", "0 3 * * *", "\"time_zone\":\"Europe/Berlin\"");
    expect_refused("POST", "/api/v1/schedules",
                   "{\"name\":\"daily\",\"suite\":\"e2e\",\"expression\":"
                   "\"@daily\"}",
                   409, "exists already");
    expect_refused("PATCH", "/api/v1/schedules/daily", "{\"name\":\"other\"}",
                   400, "renamed");
    expect_refused("PATCH", "/api/v1/schedules/daily",
                   "{\"expression\":\"0 3 * *\"}", 400, "expression");
    expect_refused("GET", "/api/v1/schedules/nosuch", NULL, 404, "nosuch");
    /* 03:00 in Berlin, whatever the UTC offset of the day. */
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM schedules WHERE name = 'daily' AND "
                      "expression = '0 3 * * *' AND extract(hour FROM "
                      "next_fire_at AT TIME ZONE 'Europe/Berlin') = 3",
                      NULL),
        1);
    expect_refused("DELETE", "/api/v1/schedules/daily", NULL, 200, "deleted");
    expect_refused("DELETE", "/api/v1/schedules/daily", NULL, 404, "daily");
}

static void
test_e2e_every_second_fires_once_per_tick_on_three_replicas(void **state)
{
    int64_t runs;
    int64_t expected;

    (void)state;
    create_schedule("every1", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\"");
    e2e_sleep_ms(8000);
    /* A replica killed -9 midway, whatever locks it held. */
    assert_int_equal(e2e_proc_stop(E.ctl[2], SIGKILL), 128 + SIGKILL);
    e2e_sleep_ms(8000);
    set_enabled("every1", false);
    runs = check_one_run_per_tick("every1");
    /* Ticks from the first to the pause, one a second. */
    expected = e2e_sql_count(
        "SELECT floor(extract(epoch FROM s.updated_at - min(t.tick_at)))"
        "::bigint + 1 FROM schedules s JOIN schedule_ticks t ON "
        "t.schedule_id = s.id WHERE s.name = $1 GROUP BY s.updated_at",
        "every1");
    fprintf(stderr, "every1: %" PRId64 " runs for %" PRId64 " ticks\n", runs,
            expected);
    assert_true(expected >= 14);
    assert_true(runs >= expected - 1 && runs <= expected + 1);
    /* Consecutive ticks one second apart: none repeated, none lost. */
    assert_int_equal(
        e2e_sql_count(
            "SELECT count(*) FROM (SELECT tick_at - lag(tick_at) OVER "
            "(ORDER BY tick_at) AS gap FROM schedule_ticks t JOIN "
            "schedules s ON s.id = t.schedule_id WHERE s.name = $1) g "
            "WHERE gap <> interval '1 second'",
            "every1"),
        0);
    /* The lock went to more than one replica. */
    assert_true(
        e2e_sql_count(
            "SELECT count(DISTINCT controller) FROM schedule_ticks t "
            "JOIN schedules s ON s.id = t.schedule_id WHERE s.name = $1",
            "every1") >= 2);
    start_controller(2);
    await_ready(2);
}

#define BURST 300

static void
test_e2e_burst_sharing_a_tick_fires_once_each_at_the_tick(void **state)
{
    char body[512];
    int64_t first;

    (void)state;
    /* Every 5 s at the same second; in a pool nobody serves, so the runs
     * only queue: this is about firing. */
    for (int i = 0; i < BURST; i++) {
        struct e2e_http h;

        snprintf(body, sizeof(body),
                 "{\"name\":\"burst-%03d\",\"suite\":\"e2e\","
                 "\"namespace\":\"test\",\"pool\":\"nobody-%s\","
                 "\"run\":\"quick\",\"expression\":\"*/5 * * * * *\","
                 "\"overlap_policy\":\"allow\",\"queue_timeout\":\"30s\"}",
                 i, E2E.pool);
        h = e2e_request(E.url[i % N_CTL], "POST", "/api/v1/schedules", body,
                        NULL);
        if (h.status != 201) {
            fail_msg("POST %s: %ld %s", body, h.status, buf_str(&h.body));
        }
        buf_cleanup(&h.body);
    }
    /* Two whole ticks after the last schedule was made. */
    first = e2e_sql_count("SELECT (ceil(extract(epoch FROM now()) / 5) * 5 "
                          "* 1000)::bigint + 5000",
                          NULL);
    while (db_now_ms() < first + 5000 + 3000) {
        e2e_sleep_ms(500);
    }
    for (int k = 0; k < 2; k++) {
        char tick[24];
        const char *p[1] = {tick};
        struct db_res *res = NULL;

        snprintf(tick, sizeof(tick), "%" PRId64, first + 5000 * k);
        assert_int_equal(
            db_exec(E2E.db,
                    "SELECT count(*), count(DISTINCT t.schedule_id), "
                    "count(DISTINCT t.controller), min(r.created_at - "
                    "t.tick_at) >= interval '0', count(*) FILTER (WHERE "
                    "j.payload IS NULL) FROM schedule_ticks t JOIN "
                    "schedules s ON s.id = t.schedule_id JOIN runs r ON "
                    "r.id = t.run_id LEFT JOIN jobs j ON j.run_id = r.id "
                    "WHERE s.name LIKE 'burst-%' AND t.outcome = 'fired' "
                    "AND t.tick_at = timestamptz 'epoch' + $1::bigint * "
                    "interval '1 ms'",
                    1, p, &res),
            ST_OK);
        fprintf(stderr,
                "burst tick %d: %s runs of %s schedules by %s "
                "replicas\n",
                k, db_res_get(res, 0, 0), db_res_get(res, 0, 1),
                db_res_get(res, 0, 2));
        /* One run each, none before its tick, each with its job. */
        assert_string_equal(db_res_get(res, 0, 0), "300");
        assert_string_equal(db_res_get(res, 0, 1), "300");
        assert_string_equal(db_res_get(res, 0, 3), "t");
        assert_string_equal(db_res_get(res, 0, 4), "0");
        db_res_free(res);
    }
    /* Every tick of the burst went to more than one replica. */
    assert_true(e2e_sql_count("SELECT count(DISTINCT t.controller) FROM "
                              "schedule_ticks t JOIN schedules s ON s.id = "
                              "t.schedule_id WHERE s.name LIKE $1",
                              "burst-%") >= 2);
    assert_int_equal(e2e_sql_count("SELECT count(*) FROM (SELECT 1 FROM "
                                   "schedule_ticks t JOIN schedules s ON "
                                   "s.id = t.schedule_id WHERE s.name LIKE "
                                   "$1 GROUP BY t.schedule_id, t.tick_at "
                                   "HAVING count(*) > 1) d",
                                   "burst-%"),
                     0);
    assert_int_equal(db_exec(E2E.db,
                             "UPDATE schedules SET enabled = false, "
                             "next_fire_at = NULL WHERE name LIKE $1",
                             1, (const char *[]){"burst-%"}, NULL),
                     ST_OK);
}

static void test_e2e_singleton_never_overlaps_and_records_skips(void **state)
{
    int64_t until = clock_mono_ns() + 30 * CLOCK_NS_PER_S;
    int64_t runs;

    (void)state;
    create_schedule("single", "@every 1s",
                    "\"run\":\"sleep\",\"params\":{\"sleep_ms\":\"3000\"}");
    e2e_sleep_ms(12000);
    set_enabled("single", false);
    while (e2e_sql_count(RUNS_OF " AND state IN ('queued', 'running')",
                         "single") > 0) {
        assert_true(clock_mono_ns() < until);
        e2e_sleep_ms(200);
    }
    runs = check_one_run_per_tick("single");
    fprintf(stderr, "single: %" PRId64 " runs, %" PRId64 " overlaps\n", runs,
            e2e_sql_count(TICKS_OF("reason = 'overlap'"), "single"));
    assert_true(runs >= 2 && runs <= 4);
    /* No run was created before the one before it had ended. */
    assert_int_equal(
        e2e_sql_count(
            "SELECT count(*) FROM runs a JOIN runs b ON b.schedule_id "
            "= a.schedule_id AND b.id > a.id WHERE a.schedule_id = "
            "(SELECT id FROM schedules WHERE name = $1) AND "
            "b.created_at < a.finished_at",
            "single"),
        0);
    assert_int_equal(e2e_sql_count(RUNS_OF " AND result = 'passed'", "single"),
                     runs);
    assert_true(e2e_sql_count(TICKS_OF("reason = 'overlap'"), "single") >= 5);
}

static void test_e2e_redis_away_for_5s_fires_nothing_then_resumes(void **state)
{
    int64_t stopped_ms;
    int64_t started_ms;
    char body[256];
    struct e2e_http h;

    (void)state;
    create_schedule("gap", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\"");
    e2e_sleep_ms(3000);
    assert_true(e2e_sql_count(RUNS_OF, "gap") >= 2);
    e2e_stack("stop-service", "redis");
    stopped_ms = db_now_ms();
    e2e_sleep_ms(1000);
    /* Manual runs do not need Redis. */
    snprintf(body, sizeof(body),
             "{\"suite\":\"e2e\",\"pool\":\"%s\",\"run\":\"quick\"}", E2E.pool);
    h = e2e_request(E.url[1], "POST", "/api/v1/runs", body, NULL);
    assert_int_equal(h.status, 201);
    buf_cleanup(&h.body);
    e2e_sleep_ms(4000);
    started_ms = db_now_ms();
    e2e_stack("start-service", "redis");
    e2e_sleep_ms(4000);
    set_enabled("gap", false);
    check_one_run_per_tick("gap");
    /* Nothing fired while Redis was away (a tick already past its lock
     * may finish in the first 300 ms). */
    assert_int_equal(runs_between("gap", stopped_ms + 300, started_ms), 0);
    assert_true(e2e_sql_count(TICKS_OF("reason = 'redis_down'"), "gap") >= 3);
    /* Firing resumed. */
    assert_true(runs_between("gap", started_ms, db_now_ms()) >= 2);
}

static void test_e2e_max_runs_ends_and_patch_keeps_the_tick(void **state)
{
    int64_t until = clock_mono_ns() + 20 * CLOCK_NS_PER_S;
    struct e2e_http h;

    (void)state;
    create_schedule("twice", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\","
                    "\"max_runs\":2");
    while (e2e_sql_count("SELECT count(*) FROM schedules WHERE name = $1 AND "
                         "next_fire_at IS NULL",
                         "twice") == 0) {
        assert_true(clock_mono_ns() < until);
        e2e_sleep_ms(100);
    }
    e2e_sleep_ms(1500);
    assert_int_equal(check_one_run_per_tick("twice"), 2);
    /* A far-off schedule: a change of params keeps its next tick, a
     * change of expression moves it. */
    create_schedule("yearly", "@yearly", "\"run\":\"quick\"");
    h = e2e_request(E.url[1], "PATCH", "/api/v1/schedules/yearly",
                    "{\"params\":{\"k\":\"v\"},\"reference\":\"abc\"}", NULL);
    assert_int_equal(h.status, 200);
    assert_non_null(strstr(buf_str(&h.body), "\"reference\": \"abc\""));
    buf_cleanup(&h.body);
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM schedules WHERE name = "
                      "$1 AND next_fire_at = date_trunc('year', "
                      "now() AT TIME ZONE 'UTC' + interval '1 year') "
                      "AT TIME ZONE 'UTC' AND params = '{\"k\": "
                      "\"v\"}'",
                      "yearly"),
        1);
    h = e2e_request(E.url[2], "PATCH", "/api/v1/schedules/yearly",
                    "{\"expression\":\"@monthly\"}", NULL);
    assert_int_equal(h.status, 200);
    buf_cleanup(&h.body);
    assert_int_equal(
        e2e_sql_count("SELECT count(*) FROM schedules WHERE name = "
                      "$1 AND next_fire_at = date_trunc('month', "
                      "now() AT TIME ZONE 'UTC' + interval '1 month') "
                      "AT TIME ZONE 'UTC' AND reference = 'abc'",
                      "yearly"),
        1);
}

/* The first tick of name recorded after after_ms ("fired" or the skip
 * reason); checks the tick after it came one second later (no burst). */
static void first_tick_after(const char *name, int64_t after_ms, char *out,
                             size_t len)
{
    char after[24];
    const char *p[2] = {name, after};
    struct db_res *res = NULL;

    snprintf(after, sizeof(after), "%" PRId64, after_ms);
    assert_int_equal(
        db_exec(E2E.db,
                "SELECT coalesce(t.reason, t.outcome), (extract(epoch FROM "
                "lead(t.tick_at) OVER (ORDER BY t.tick_at) - t.tick_at) * "
                "1000)::bigint FROM schedule_ticks t JOIN schedules s ON "
                "s.id = t.schedule_id WHERE s.name = $1 AND t.recorded_at > "
                "timestamptz 'epoch' + $2::bigint * interval '1 ms' ORDER BY "
                "t.tick_at LIMIT 1",
                2, p, &res),
        ST_OK);
    assert_int_equal(db_res_rows(res), 1);
    snprintf(out, len, "%s", db_res_get(res, 0, 0));
    assert_string_equal(db_res_get(res, 0, 1), "1000");
    db_res_free(res);
}

static void test_e2e_restart_follows_catch_up_and_repeats_nothing(void **state)
{
    char first[32];
    int64_t down_ms;

    (void)state;
    create_schedule("cskip", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\"");
    create_schedule("cone", "@every 1s",
                    "\"run\":\"quick\",\"overlap_policy\":\"allow\","
                    "\"catch_up\":\"one\"");
    e2e_sleep_ms(3000);
    for (int i = 0; i < N_CTL; i++) {
        assert_int_equal(e2e_proc_stop(E.ctl[i], SIGTERM), 0);
    }
    down_ms = db_now_ms();
    e2e_sleep_ms(4000);
    for (int i = 0; i < N_CTL; i++) {
        start_controller(i);
    }
    await_ready(0);
    e2e_sleep_ms(4000);
    set_enabled("cskip", false);
    set_enabled("cone", false);
    check_one_run_per_tick("cskip");
    check_one_run_per_tick("cone");
    /* skip: the missed ticks pass as one skipped tick, no late run. */
    first_tick_after("cskip", down_ms, first, sizeof(first));
    assert_string_equal(first, "missed");
    assert_int_equal(e2e_sql_count(TICKS_OF("reason = 'missed'"), "cskip"), 1);
    /* one: a single run for all of them, then on time again. */
    first_tick_after("cone", down_ms, first, sizeof(first));
    assert_string_equal(first, "fired");
    /* No tick passed as missed. (A tick skipped for another reason, e.g.
     * Redis slower than its 1 s timeout on a loaded ASan run, is not the
     * catch-up policy's doing; it shows in the reason.) */
    assert_int_equal(e2e_sql_count(TICKS_OF("reason = 'missed'"), "cone"), 0);
    assert_true(e2e_sql_count(TICKS_OF("outcome = 'fired' AND recorded_at > "
                                       "now() - interval '3 seconds'"),
                              "cone") >= 2);
}

/* ---- Set-up and teardown ----------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (e2e_setup("sched", 1) != 0) {
        return -1;
    }
    for (int i = 0; i < N_CTL; i++) {
        start_controller(i);
    }
    e2e_start_worker("worker-a", 4, NULL);
    e2e_start_worker("worker-b", 4, NULL);
    if (e2e_await_ready(E.url[0], (const char *const[]){"worker-a", "worker-b",
                                                        NULL}) != 0) {
        return -1;
    }
    for (int i = 1; i < N_CTL; i++) {
        if (e2e_await_ready(E.url[i], NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return e2e_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2e_bad_schedules_get_4xx_and_leave_no_row),
        cmocka_unit_test(
            test_e2e_every_second_fires_once_per_tick_on_three_replicas),
        cmocka_unit_test(
            test_e2e_burst_sharing_a_tick_fires_once_each_at_the_tick),
        cmocka_unit_test(test_e2e_singleton_never_overlaps_and_records_skips),
        cmocka_unit_test(test_e2e_redis_away_for_5s_fires_nothing_then_resumes),
        cmocka_unit_test(test_e2e_restart_follows_catch_up_and_repeats_nothing),
        cmocka_unit_test(test_e2e_max_runs_ends_and_patch_keeps_the_tick),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
