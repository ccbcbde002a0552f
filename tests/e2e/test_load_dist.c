/* Distributed load runs end to end (docs/load.md): a controller and two
 * workers of deploy/stack.sh's servers, an HTTP target in this process
 * (tests/load/loadtarget.c). A run over two shards adds up to what the
 * shards reported and to what the target served; an abort_on_fail
 * threshold and a cancel stop every shard; a killed worker's shard is
 * reported lost; two runs compare over the API and with handoffctl; VU
 * ids do not overlap across shards; ramping-vus' graceful ramp-down cuts
 * iterations short; a shard picked up late joins the common timeline. */
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "clock.h"
#include "e2e.h"
#include "loadtarget.h"

extern char **environ;

static struct {
    char url[96];
    struct loadtarget *target;
    int64_t first_run; /* the passing run, for the diff */
} E;

static const char *const ctl_env[] = {"HANDOFF_SWEEP_INTERVAL=1s", NULL};
/* One job at a time each, so two shards run on two workers; a silent
 * worker's job goes elsewhere after 2 s. */
static const char *const worker_args[] = {"--ack-wait", "2s", NULL};

/* Starts a load run; returns its id. */
static int64_t start_load(const char *load_json)
{
    char body[4096];
    struct e2e_http h;
    json_t *j;
    int64_t id;

    snprintf(body, sizeof(body),
             "{\"suite\":\"e2eload\",\"namespace\":\"test\",\"pool\":\"%s\","
             "\"params\":{\"TARGET_URL\":\"%s\"},\"load\":%s}",
             E2E.pool, loadtarget_url(E.target), load_json);
    h = e2e_request(E.url, "POST", "/api/v1/runs", body, NULL);
    if (h.status != 201) {
        fail_msg("POST %s: %ld %s", body, h.status, buf_str(&h.body));
    }
    j = e2e_json_of(&h);
    id = json_integer_value(json_object_get(j, "id"));
    assert_true(id > 0);
    json_decref(j);
    buf_cleanup(&h.body);
    return id;
}

static json_t *get_json(const char *path, long want)
{
    struct e2e_http h = e2e_request(E.url, "GET", path, NULL, NULL);
    json_t *j;

    if (h.status != want) {
        fail_msg("GET %s: %ld, want %ld: %s", path, h.status, want,
                 buf_str(&h.body));
    }
    j = e2e_json_of(&h);
    buf_cleanup(&h.body);
    return j;
}

static json_t *await_end(int64_t id, int timeout_s)
{
    int64_t until = clock_mono_ns() + timeout_s * CLOCK_NS_PER_S;
    char path[64];

    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64, id);
    for (;;) {
        json_t *j = get_json(path, 200);
        const char *state = e2e_str_of(j, "state");

        if (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0) {
            return j;
        }
        json_decref(j);
        if (clock_mono_ns() > until) {
            e2e_print_logs();
            fail_msg("run %" PRId64 " did not end within %d s", id, timeout_s);
        }
        e2e_sleep_ms(200);
    }
}

/* Waits until run id has merged at least n seconds. */
static void await_points(int64_t id, int64_t n, int timeout_s)
{
    int64_t until = clock_mono_ns() + timeout_s * CLOCK_NS_PER_S;
    char run[24];

    snprintf(run, sizeof(run), "%" PRId64, id);
    while (e2e_sql_count("SELECT count(*) FROM load_points WHERE run_id = "
                         "$1::bigint",
                         run) < n) {
        if (clock_mono_ns() > until) {
            e2e_print_logs();
            fail_msg("run %" PRId64 ": fewer than %" PRId64 " seconds merged",
                     id, n);
        }
        e2e_sleep_ms(100);
    }
}

static json_t *report_of(int64_t id)
{
    char path[64];

    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64 "/load", id);
    return get_json(path, 200);
}

static int64_t int_at(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v)) {
        fail_msg("no integer \"%s\"", key);
    }
    return json_integer_value(v);
}

static void test_load_two_shards_add_up(void **state)
{
    uint64_t served0 = loadtarget_requests(E.target);
    int64_t id;
    json_t *run;
    json_t *rep;
    json_t *shards;
    json_t *s;
    json_t *p;
    size_t i;
    int64_t sum_requests = 0;
    int64_t sum_iterations = 0;
    int64_t series_requests = 0;
    int64_t total;
    char path[64];

    (void)state;
    id = start_load("{\"workflow\":\"hit\",\"executor\":"
                    "\"constant-arrival-rate\",\"rate\":200,\"duration\":"
                    "\"3s\",\"pre_allocated_vus\":4,\"max_vus\":40,"
                    "\"shards\":2,\"thresholds\":[\"checks: rate>0.99\"]}");
    E.first_run = id;
    /* The live view: the stream ends with the run, having carried the
     * merged seconds. */
    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64 "/events", id);
    {
        struct e2e_http ev = e2e_request(E.url, "GET", path, NULL, NULL);

        assert_int_equal(ev.status, 200);
        assert_non_null(strstr(buf_str(&ev.body), "event: load_point"));
        assert_non_null(strstr(buf_str(&ev.body), "\"requests\":"));
        assert_non_null(strstr(buf_str(&ev.body), "event: run_end"));
        buf_cleanup(&ev.body);
    }
    run = await_end(id, 90);
    assert_string_equal(e2e_str_of(run, "state"), "finished");
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    json_decref(run);
    rep = report_of(id);
    assert_string_equal(e2e_str_of(rep, "schema"), "handoff.load.report/1");
    assert_string_equal(e2e_str_of(rep, "result"), "passed");
    assert_int_equal(int_at(rep, "shards"), 2);
    shards = json_object_get(rep, "shard_results");
    assert_int_equal(json_array_size(shards), 2);
    if (strcmp(e2e_str_of(json_array_get(shards, 0), "worker"),
               e2e_str_of(json_array_get(shards, 1), "worker")) == 0) {
        e2e_print_logs();
        fail_msg("both shards ran on %s",
                 e2e_str_of(json_array_get(shards, 0), "worker"));
    }
    json_array_foreach(shards, i, s)
    {
        assert_string_equal(e2e_str_of(s, "state"), "done");
        assert_true(int_at(s, "requests") > 0);
        sum_requests += int_at(s, "requests");
        sum_iterations += int_at(s, "iterations");
    }
    total = int_at(json_object_get(rep, "totals"), "count");
    /* The merge of the per-second snapshots equals what the shards
     * counted themselves, and what the target served (setup and teardown
     * made one request each, outside the run's metrics). */
    assert_int_equal(total, sum_requests);
    assert_int_equal(int_at(json_object_get(rep, "iterations"), "completed"),
                     sum_iterations);
    assert_int_equal((int64_t)(loadtarget_requests(E.target) - served0),
                     total + 2);
    /* 200/s for 3 s, split over two shards. */
    assert_true(total >= 560 && total <= 640);
    json_array_foreach(json_object_get(rep, "series"), i, p)
    {
        series_requests += int_at(p, "requests");
    }
    assert_int_equal(series_requests, total);
    assert_true(json_array_size(json_object_get(rep, "series")) >= 3);
    assert_int_equal(
        int_at(json_array_get(json_object_get(rep, "checks"), 0), "fails"), 0);
    assert_true(json_array_size(json_object_get(rep, "thresholds")) == 1);
    json_decref(rep);
}

static void test_load_threshold_aborts_every_shard(void **state)
{
    int64_t id;
    int64_t t0;
    json_t *run;
    json_t *rep;
    json_t *s;
    size_t i;

    (void)state;
    id = start_load("{\"workflow\":\"hit\",\"rate\":100,\"duration\":\"60s\","
                    "\"max_vus\":20,\"shards\":2,\"graceful_stop\":\"1s\","
                    "\"thresholds\":[\"http_reqs: count<150 "
                    "abort_on_fail\"]}");
    t0 = clock_mono_ns();
    run = await_end(id, 60);
    assert_true(clock_mono_ns() - t0 < 30 * CLOCK_NS_PER_S);
    assert_string_equal(e2e_str_of(run, "state"), "finished");
    assert_string_equal(e2e_str_of(run, "result"), "failed");
    assert_non_null(strstr(e2e_str_of(run, "reason"), "abort_on_fail"));
    json_decref(run);
    rep = report_of(id);
    assert_string_equal(e2e_str_of(rep, "result"), "aborted");
    json_array_foreach(json_object_get(rep, "shard_results"), i, s)
    {
        assert_string_equal(e2e_str_of(s, "state"), "aborted");
    }
    assert_false(json_is_true(json_object_get(
        json_array_get(json_object_get(rep, "thresholds"), 0), "passed")));
    json_decref(rep);
}

static void test_load_cancel_stops_every_shard(void **state)
{
    int64_t id;
    int64_t t0;
    char path[64];
    struct e2e_http h;
    json_t *run;
    json_t *rep;
    json_t *s;
    size_t i;

    (void)state;
    id = start_load("{\"workflow\":\"hit\",\"vus\":4,\"duration\":\"60s\","
                    "\"shards\":2,\"graceful_stop\":\"1s\"}");
    await_points(id, 1, 30);
    snprintf(path, sizeof(path), "/api/v1/runs/%" PRId64 "/cancel", id);
    t0 = clock_mono_ns();
    h = e2e_request(E.url, "POST", path, "{\"reason\":\"enough\"}", NULL);
    assert_int_equal(h.status, 202);
    buf_cleanup(&h.body);
    run = await_end(id, 30);
    assert_true(clock_mono_ns() - t0 < 15 * CLOCK_NS_PER_S);
    assert_string_equal(e2e_str_of(run, "state"), "cancelled");
    json_decref(run);
    rep = report_of(id);
    assert_string_equal(e2e_str_of(rep, "result"), "aborted");
    json_array_foreach(json_object_get(rep, "shard_results"), i, s)
    {
        assert_string_equal(e2e_str_of(s, "state"), "aborted");
    }
    json_decref(rep);
}

/* A check per VU id: 5 VUs over 2 shards (2 and 3 VUs) are ids 1..5,
 * each running its 3 iterations. */
static void test_load_vu_ids_are_unique_across_shards(void **state)
{
    int64_t id;
    json_t *run;
    json_t *rep;
    json_t *checks;
    json_t *c;
    size_t i;
    int seen[6] = {0};

    (void)state;
    id = start_load("{\"workflow\":\"vuid\",\"executor\":"
                    "\"per-vu-iterations\",\"vus\":5,\"iterations\":3,"
                    "\"shards\":2}");
    run = await_end(id, 60);
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    json_decref(run);
    rep = report_of(id);
    checks = json_object_get(rep, "checks");
    json_array_foreach(checks, i, c)
    {
        int n = 0;

        if (sscanf(e2e_str_of(c, "name"), "vu %d", &n) != 1 || n < 1 || n > 5) {
            fail_msg("unexpected check \"%s\"", e2e_str_of(c, "name"));
        }
        seen[n]++;
        assert_int_equal(int_at(c, "passes"), 3);
    }
    for (int n = 1; n <= 5; n++) {
        assert_int_equal(seen[n], 1);
    }
    assert_int_equal(int_at(json_object_get(rep, "iterations"), "completed"),
                     15);
    json_decref(rep);
}

/* ramping-vus with a VU per shard asleep for 30 s: the target falls to 0
 * and 200 ms later both iterations are cut short, so the run ends with
 * its stages, not 30 s of graceful stop later. A graceful_ramp_down for
 * an executor the setup job resolves to another is refused there. */
static void test_load_ramp_down_cuts_iterations_short(void **state)
{
    int64_t id;
    int64_t t0 = clock_mono_ns();
    json_t *run;
    json_t *rep;

    (void)state;
    id = start_load(
        "{\"workflow\":\"nap\",\"executor\":\"ramping-vus\",\"stages\":["
        "{\"duration\":\"1s\",\"target\":2},{\"duration\":\"1s\","
        "\"target\":2},{\"duration\":\"500ms\",\"target\":0},"
        "{\"duration\":\"1s\",\"target\":0}],\"graceful_ramp_down\":"
        "\"200ms\",\"graceful_stop\":\"30s\",\"shards\":2}");
    run = await_end(id, 90);
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    json_decref(run);
    assert_true(clock_mono_ns() - t0 < 25 * CLOCK_NS_PER_S);
    rep = report_of(id);
    assert_int_equal(int_at(json_object_get(rep, "iterations"), "completed"),
                     0);
    assert_int_equal(int_at(json_object_get(rep, "iterations"), "interrupted"),
                     2);
    assert_true(
        json_number_value(json_object_get(json_object_get(rep, "executor"),
                                          "graceful_ramp_down_ms")) == 200);
    assert_true(json_number_value(json_object_get(rep, "duration_ms")) < 15000);
    assert_int_equal(
        int_at(json_array_get(json_object_get(rep, "checks"), 0), "passes"), 2);
    json_decref(rep);

    id = start_load("{\"workflow\":\"hit\",\"duration\":\"1s\","
                    "\"graceful_ramp_down\":\"1s\",\"shards\":1}");
    run = await_end(id, 60);
    assert_string_equal(e2e_str_of(run, "result"), "error");
    assert_non_null(strstr(e2e_str_of(run, "reason"),
                           "\"load.graceful_ramp_down\": only for the "
                           "ramping-vus executor (this run's is "
                           "constant-vus)"));
    json_decref(run);
}

/* Three shards, two workers of one slot each: the third shard job waits
 * until a worker started two seconds into the run picks it up. Its
 * missed seconds come empty but for the starts they scheduled, counted
 * as dropped (10 a second), so the merged seconds 1 and 2 carry the
 * on-time shards' load and the late one's drops; every shard's second n
 * ends at n s of the common timeline; and the report says which shard
 * joined late. */
static void test_load_late_shard_joins_the_common_timeline(void **state)
{
    int64_t id;
    int64_t until;
    char run_s[24];
    json_t *run;
    json_t *rep;
    json_t *s;
    json_t *it;
    json_t *series;
    size_t i;
    int late = -1;
    struct e2e_proc *w;

    (void)state;
    id = start_load("{\"workflow\":\"hit\",\"executor\":"
                    "\"constant-arrival-rate\",\"rate\":30,\"duration\":"
                    "\"8s\",\"pre_allocated_vus\":3,\"max_vus\":30,"
                    "\"shards\":3,\"graceful_stop\":\"1s\"}");
    snprintf(run_s, sizeof(run_s), "%" PRId64, id);
    until = clock_mono_ns() + 60 * CLOCK_NS_PER_S;
    while (e2e_sql_count("SELECT count(*) FROM load_snapshots WHERE run_id = "
                         "$1::bigint AND second >= 2",
                         run_s) < 1) {
        if (clock_mono_ns() > until) {
            e2e_print_logs();
            fail_msg("run %" PRId64 ": no shard reached its second 2", id);
        }
        e2e_sleep_ms(100);
    }
    e2e_start_worker("worker-late", 1, worker_args);
    run = await_end(id, 90);
    assert_string_equal(e2e_str_of(run, "state"), "finished");
    assert_string_equal(e2e_str_of(run, "result"), "passed");
    json_decref(run);
    w = e2e_proc_named("worker-late");
    assert_non_null(w);
    (void)e2e_proc_stop(w, SIGTERM);
    rep = report_of(id);
    json_array_foreach(json_object_get(rep, "shard_results"), i, s)
    {
        assert_string_equal(e2e_str_of(s, "state"), "done");
        if (strncmp(e2e_str_of(s, "reason"), "late: joined ", 13) == 0) {
            assert_int_equal(late, -1);
            late = (int)int_at(s, "shard");
            assert_string_equal(e2e_str_of(s, "worker"), "worker-late");
        } else {
            assert_string_equal(e2e_str_of(s, "reason"), "");
            assert_int_equal(int_at(s, "iterations"), 80);
        }
    }
    if (late < 0) {
        e2e_print_logs();
        fail_msg("no shard reported joining late");
    }
    /* Every start of the schedule (80 a shard) is accounted for. */
    it = json_object_get(rep, "iterations");
    assert_int_equal(int_at(it, "completed") + int_at(it, "interrupted") +
                         int_at(it, "dropped"),
                     240);
    assert_true(int_at(it, "dropped") >= 20);
    series = json_object_get(rep, "series");
    assert_true(json_array_size(series) >= 8);
    assert_int_equal(int_at(json_array_get(series, 0), "dropped"), 10);
    assert_int_equal(int_at(json_array_get(series, 1), "dropped"), 10);
    assert_true(int_at(json_array_get(series, 0), "iterations") >= 15);
    json_decref(rep);
    /* Second n of every shard, the late one's included, ends at n s. */
    assert_int_equal(e2e_sql_count("SELECT count(*) FROM load_snapshots "
                                   "WHERE run_id = $1::bigint AND (t_ns <= "
                                   "(second - 1) * 1000000000::bigint OR "
                                   "t_ns > second * 1000000000::bigint)",
                                   run_s),
                     0);
    {
        char q[256];

        snprintf(q, sizeof(q),
                 "SELECT count(*) FROM load_snapshots WHERE run_id = "
                 "$1::bigint AND shard = %d AND second <= 2",
                 late + 1);
        assert_int_equal(e2e_sql_count(q, run_s), 2);
    }
}

static void test_load_killed_worker_shard_is_reported_lost(void **state)
{
    int64_t id;
    char run_s[24];
    struct db_res *res = NULL;
    char worker[64] = "";
    struct e2e_proc *victim;
    json_t *run;
    json_t *rep;
    json_t *lost;

    (void)state;
    id = start_load("{\"workflow\":\"hit\",\"rate\":50,\"duration\":\"6s\","
                    "\"max_vus\":10,\"shards\":2}");
    await_points(id, 1, 30);
    snprintf(run_s, sizeof(run_s), "%" PRId64, id);
    assert_int_equal(db_exec(E2E.db,
                             "SELECT worker_id FROM jobs WHERE run_id = "
                             "$1::bigint AND shard = 1",
                             1, (const char *[]){run_s}, &res),
                     0);
    assert_int_equal(db_res_rows(res), 1);
    snprintf(worker, sizeof(worker), "%s", db_res_get(res, 0, 0));
    db_res_free(res);
    victim = e2e_proc_named(worker);
    assert_non_null(victim);
    assert_int_equal(e2e_proc_stop(victim, SIGKILL), 128 + SIGKILL);
    run = await_end(id, 90);
    assert_string_equal(e2e_str_of(run, "state"), "finished");
    assert_string_equal(e2e_str_of(run, "result"), "error");
    assert_non_null(strstr(e2e_str_of(run, "reason"), "lost"));
    json_decref(run);
    rep = report_of(id);
    assert_string_equal(e2e_str_of(rep, "result"), "error");
    lost = json_object_get(rep, "shards_lost");
    assert_int_equal(json_array_size(lost), 1);
    assert_int_equal(int_at(json_array_get(lost, 0), "shard"), 0);
    /* What the lost shard sent before it died is in the totals. */
    assert_true(int_at(json_object_get(rep, "totals"), "count") > 0);
    json_decref(rep);
    {
        const char *again =
            strcmp(worker, "worker-a") == 0 ? "worker-a2" : "worker-b2";

        e2e_start_worker(again, 1, worker_args);
        assert_int_equal(
            e2e_await_ready(E.url, (const char *const[]){again, NULL}), 0);
    }
}

static int run_ctl(const char *const *args, const char *out_path)
{
    char bin[512];
    char *argv[24];
    size_t n = 0;
    pid_t pid;
    int status;
    posix_spawn_file_actions_t fa;

    snprintf(bin, sizeof(bin), "%s/handoffctl", HANDOFF_BIN_DIR);
    argv[n++] = bin;
    argv[n++] = (char *)"--url";
    argv[n++] = E.url;
    for (size_t i = 0; args[i]; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_load_diff_over_the_api_and_handoffctl(void **state)
{
    char path[128];
    char a[24];
    char out[64];
    json_t *d;
    struct e2e_http h;

    (void)state;
    assert_true(E.first_run > 0);
    snprintf(path, sizeof(path), "/api/v1/load/diff?a=%" PRId64 "&b=%" PRId64,
             E.first_run, E.first_run);
    d = get_json(path, 200);
    assert_string_equal(e2e_str_of(d, "schema"), "handoff.load.diff/1");
    json_decref(d);
    h = e2e_request(E.url, "GET", "/api/v1/load/diff?a=1&b=x", NULL, NULL);
    assert_int_equal(h.status, 400);
    buf_cleanup(&h.body);
    h = e2e_request(E.url, "GET", "/api/v1/load/diff?a=999999&b=999999", NULL,
                    NULL);
    assert_int_equal(h.status, 404);
    buf_cleanup(&h.body);
    snprintf(a, sizeof(a), "%" PRId64, E.first_run);
    snprintf(out, sizeof(out), "/tmp/handoff-diff-%d.txt", (int)getpid());
    assert_int_equal(run_ctl((const char *const[]){"diff", a, a, NULL}, out),
                     0);
    unlink(out);
}

static void test_load_bad_sections_get_400(void **state)
{
    static const struct {
        const char *load;
        long status;
        const char *want;
    } cases[] = {
        {"{\"workflow\":\"hit\",\"executor\":\"fast\"}", 400, "load.executor"},
        {"{\"workflow\":\"hit\",\"thresholds\":[\"http_req_duration: "
         "p(95)<3xx\"]}",
         400, "unknown unit"},
        {"{\"workflow\":\"hit\",\"speed\":1}", 400, "load.speed"},
        {"{\"executor\":\"constant-vus\"}", 400, "load.workflow"},
        {"{\"workflow\":\"hit\",\"vus\":0}", 400, "load.vus"},
        {"{\"workflow\":\"hit\",\"duration\":\"soon\"}", 400, "load.duration"},
        {"{\"workflow\":\"hit\",\"shards\":100000}", 400, "load.shards"},
        {"{\"workflow\":\"hit\",\"stages\":[{\"duration\":\"1s\"}]}", 400,
         "load.stages[0]"},
        {"{\"workflow\":\"hit\",\"executor\":\"constant-vus\","
         "\"graceful_ramp_down\":\"1s\"}",
         400, "load.graceful_ramp_down"},
        {"{\"workflow\":\"hit\",\"graceful_ramp_down\":\"-1s\"}", 400,
         "load.graceful_ramp_down"},
        {"{\"workflow\":\"nope\"}", 404,
         "suite test/e2eload has no workflow \\\"nope\\\" (it has: hit, nap, "
         "vuid)"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024];
        struct e2e_http h;

        snprintf(body, sizeof(body),
                 "{\"suite\":\"e2eload\",\"namespace\":\"test\",\"pool\":"
                 "\"%s\",\"load\":%s}",
                 E2E.pool, cases[i].load);
        h = e2e_request(E.url, "POST", "/api/v1/runs", body, NULL);
        if (h.status != cases[i].status ||
            strstr(buf_str(&h.body), cases[i].want) == NULL) {
            fail_msg("%s: %ld %s", body, h.status, buf_str(&h.body));
        }
        buf_cleanup(&h.body);
    }
}

static int group_setup(void **state)
{
    struct loadtarget_config tc = {0};

    (void)state;
    if (e2e_setup("ld", 0) != 0) {
        return -1;
    }
    E.target = loadtarget_start(&tc);
    if (E.target == NULL) {
        return -1;
    }
    e2e_start_controller("controller-1", ctl_env, E.url, sizeof(E.url));
    e2e_start_worker("worker-a", 1, worker_args);
    e2e_start_worker("worker-b", 1, worker_args);
    return e2e_await_ready(E.url,
                           (const char *const[]){"worker-a", "worker-b", NULL});
}

static int group_teardown(void **state)
{
    int rc;

    (void)state;
    rc = e2e_teardown();
    loadtarget_stop(E.target);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_bad_sections_get_400),
        cmocka_unit_test(test_load_two_shards_add_up),
        cmocka_unit_test(test_load_diff_over_the_api_and_handoffctl),
        cmocka_unit_test(test_load_threshold_aborts_every_shard),
        cmocka_unit_test(test_load_cancel_stops_every_shard),
        cmocka_unit_test(test_load_vu_ids_are_unique_across_shards),
        cmocka_unit_test(test_load_ramp_down_cuts_iterations_short),
        cmocka_unit_test(test_load_late_shard_joins_the_common_timeline),
        cmocka_unit_test(test_load_killed_worker_shard_is_reported_lost),
    };

    if (getenv("HANDOFF_E2E_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("HANDOFF_E2E_FILTER"));
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
