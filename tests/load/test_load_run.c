/* Load runs against a real HTTP server of our own (tests/load/loadtarget.c)
 * with controllable latency, errors and stalls: the executors' counts and
 * rates, coordinated omission, dropped iterations, thresholds that pass,
 * fail and abort, steps and checks, the lifecycle hooks and env files.
 * These run for seconds each and want the CPU, so ctest runs them one at
 * a time with the integration tests (they need no stack). */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "clock.h"
#include "engine.h"
#include "loadrun.h"
#include "loadtarget.h"

#define S(n) ((int64_t)(n)*CLOCK_NS_PER_S)
#define MS(n) ((int64_t)(n)*CLOCK_NS_PER_MS)

static void wf_get(struct engine_vu *vu)
{
    httpc_get(engine_vu_http(vu), engine_vu_data(vu));
}

static uint64_t total_requests(const struct engine_result *r)
{
    uint64_t n = 0;

    for (size_t i = 0; i < httpc_metrics_count(r->http); i++) {
        n += httpc_metrics_at(r->http, i)->requests;
    }
    return n;
}

static struct hist *latency_of(const struct engine_result *r)
{
    struct httpc_metrics *sum = httpc_metrics_sum(r->http);
    struct hist *h =
        hist_copy(httpc_metrics_at(sum, 0)->timings[HTTPC_T_LATENCY]);

    httpc_metrics_free(sum);
    return h;
}

static void run_ok(struct engine_config *cfg, struct engine_result *res)
{
    assert_int_equal(engine_run(cfg, res), 0);
}

/* constant-arrival-rate 1,000/s for 10 s: the schedule has exactly 10,000
 * starts; at least 99 % of them complete, and every one is accounted for
 * as completed, interrupted or dropped. The points add up to the total
 * and the server saw every request. */
static void test_constant_arrival_rate_is_accurate(void **state)
{
    struct loadtarget *t = loadtarget_start(NULL);
    struct engine_config cfg = {0};
    struct engine_result res;
    uint64_t sum = 0;

    (void)state;
    assert_non_null(t);
    cfg.executor = ENGINE_CONSTANT_ARRIVAL_RATE;
    cfg.workflow = wf_get;
    cfg.data = (void *)loadtarget_url(t);
    cfg.rate = 1000;
    cfg.duration_ns = S(10);
    cfg.graceful_stop_ns = S(5);
    cfg.pre_allocated_vus = 20;
    cfg.max_vus = 500;
    cfg.threads = 2;
    run_ok(&cfg, &res);
    assert_int_equal(res.iterations + res.interrupted + res.dropped, 10000);
    assert_in_range(res.iterations, 9900, 10000);
    assert_int_equal(total_requests(&res), res.iterations + res.interrupted);
    assert_int_equal(loadtarget_requests(t), total_requests(&res));
    for (size_t i = 0; i < res.n_points; i++) {
        sum += res.points[i].requests;
    }
    assert_int_equal(sum, total_requests(&res));
    assert_in_range(res.n_points, 10, 17);
    engine_result_cleanup(&res);
    loadtarget_stop(t);
}

/* The server freezes for 1 s once. Under an arrival-rate executor with VUs
 * to spare, the requests that arrive meanwhile wait and p99 shows the
 * stall; a closed loop of one VU sends nothing meanwhile, records one
 * slow request among thousands, and its p99 hides the stall: coordinated
 * omission, which the open model avoids. */
static void test_arrival_rate_latency_shows_a_stall(void **state)
{
    struct loadtarget_config tc = {.stall_after_ms = 1000, .stall_ms = 1000};
    struct loadtarget *t = loadtarget_start(&tc);
    struct engine_config cfg = {0};
    struct engine_result res;
    struct hist *lat;

    (void)state;
    assert_non_null(t);
    cfg.executor = ENGINE_CONSTANT_ARRIVAL_RATE;
    cfg.workflow = wf_get;
    cfg.data = (void *)loadtarget_url(t);
    cfg.rate = 200;
    cfg.duration_ns = S(4);
    cfg.graceful_stop_ns = S(5);
    cfg.pre_allocated_vus = 10;
    cfg.max_vus = 400;
    cfg.threads = 1;
    run_ok(&cfg, &res);
    assert_int_equal(res.dropped, 0);
    lat = latency_of(&res);
    /* ~200 of ~800 requests waited between 0 and 1 s. */
    assert_true(hist_value_at_percentile(lat, 99) >= MS(500));
    assert_true(hist_value_at_percentile(lat, 50) < MS(500));
    hist_free(lat);
    engine_result_cleanup(&res);
    loadtarget_stop(t);

    t = loadtarget_start(&tc);
    assert_non_null(t);
    memset(&cfg, 0, sizeof(cfg));
    cfg.executor = ENGINE_CONSTANT_VUS;
    cfg.workflow = wf_get;
    cfg.data = (void *)loadtarget_url(t);
    cfg.vus = 1;
    cfg.duration_ns = S(3);
    cfg.graceful_stop_ns = S(5);
    run_ok(&cfg, &res);
    lat = latency_of(&res);
    assert_true(hist_max(lat) >= MS(900)); /* the one that waited */
    assert_true(hist_value_at_percentile(lat, 99) < MS(500));
    hist_free(lat);
    engine_result_cleanup(&res);
    loadtarget_stop(t);
}

/* A 1 s stall makes the arrival-rate executor start VUs to keep the rate;
 * once the server answers again they sit idle and are let go (after 5 s),
 * so the process does not keep the peak's memory. */
static void test_arrival_rate_lets_idle_vus_go(void **state)
{
    struct loadtarget_config tc = {.stall_after_ms = 500, .stall_ms = 1000};
    struct loadtarget *t = loadtarget_start(&tc);
    struct engine_config cfg = {0};
    struct engine_result res;

    (void)state;
    assert_non_null(t);
    cfg.executor = ENGINE_CONSTANT_ARRIVAL_RATE;
    cfg.workflow = wf_get;
    cfg.data = (void *)loadtarget_url(t);
    cfg.rate = 100;
    cfg.duration_ns = S(9);
    cfg.graceful_stop_ns = S(2);
    cfg.pre_allocated_vus = 2;
    cfg.max_vus = 300;
    cfg.threads = 1;
    run_ok(&cfg, &res);
    assert_int_equal(res.dropped, 0);
    assert_true(res.vus_max >= 50); /* the stall needed ~100 */
    assert_true(res.n_points >= 9);
    /* Let go 5 s after the stall ended (second 1.5), so from second 7 on
     * the alive count drops to what the rate needs. The lowest of those
     * seconds, not one of them: a busy machine that stalls this process
     * later (sanitizers, a loaded CI runner) makes it start a few VUs
     * again, which then live their own 5 s. */
    {
        int lowest = INT_MAX;

        for (size_t i = 7; i < res.n_points; i++) {
            lowest = res.points[i].vus_alive < lowest ? res.points[i].vus_alive
                                                      : lowest;
        }
        assert_true(lowest <= 10);
    }
    engine_result_cleanup(&res);
    loadtarget_stop(t);
}

/* Two bursts of 600 ms iterations 7 s apart, quick ones between: the
 * first burst's VUs sit idle, are let go after 5 s, and the second burst
 * makes new ones (init runs again). Their ids are those let go: every id
 * stays within 1..max_vus. */
static int64_t g_ids_t0;
static atomic_int g_ids_inits;
static atomic_int g_ids_max;

static void wf_ids_init(struct engine_vu *vu)
{
    (void)vu;
    atomic_fetch_add(&g_ids_inits, 1);
}

static void wf_ids_burst(struct engine_vu *vu)
{
    int64_t t = clock_mono_ns() - g_ids_t0;
    int id = engine_vu_id(vu);
    int max = atomic_load(&g_ids_max);

    while (id > max && !atomic_compare_exchange_weak(&g_ids_max, &max, id)) {
    }
    if (t < MS(500) || (t > MS(7500) && t < MS(8000))) {
        engine_sleep(vu, MS(600));
    }
}

static void test_arrival_rate_reuses_the_ids_of_vus_let_go(void **state)
{
    struct engine_config cfg = {0};
    struct engine_result res;

    (void)state;
    atomic_store(&g_ids_inits, 0);
    atomic_store(&g_ids_max, 0);
    cfg.executor = ENGINE_CONSTANT_ARRIVAL_RATE;
    cfg.workflow = wf_ids_burst;
    cfg.init = wf_ids_init;
    cfg.rate = 40;
    cfg.duration_ns = S(9);
    cfg.graceful_stop_ns = S(2);
    cfg.pre_allocated_vus = 1;
    cfg.max_vus = 30;
    cfg.threads = 1;
    g_ids_t0 = clock_mono_ns();
    run_ok(&cfg, &res);
    assert_int_equal(res.dropped, 0);
    /* About 24 VUs a burst: some were made again. */
    assert_true(atomic_load(&g_ids_inits) > 30);
    assert_true(atomic_load(&g_ids_max) >= 20);
    assert_true(atomic_load(&g_ids_max) <= 30);
    engine_result_cleanup(&res);
}

/* One VU at most, 50 ms per response, 100 starts per second: most starts
 * find no VU and are dropped; each start is counted once. */
static void test_arrival_rate_counts_dropped_iterations(void **state)
{
    struct loadtarget_config tc = {.delay_ms = 50};
    struct loadtarget *t = loadtarget_start(&tc);
    struct engine_config cfg = {0};
    struct engine_result res;

    (void)state;
    assert_non_null(t);
    cfg.executor = ENGINE_CONSTANT_ARRIVAL_RATE;
    cfg.workflow = wf_get;
    cfg.data = (void *)loadtarget_url(t);
    cfg.rate = 100;
    cfg.duration_ns = S(2);
    cfg.graceful_stop_ns = S(2);
    cfg.max_vus = 1;
    run_ok(&cfg, &res);
    assert_int_equal(res.iterations + res.interrupted + res.dropped, 200);
    assert_true(res.dropped >= 100);
    assert_true(res.iterations >= 20);
    assert_int_equal(res.vus_max, 1);
    engine_result_cleanup(&res);
    loadtarget_stop(t);
}

/* 0 -> 100/s over 2 s, then 100/s for 1 s: 100 + 100 starts. */
static void test_ramping_arrival_rate_follows_its_stages(void **state)
{
    struct loadtarget *t = loadtarget_start(NULL);
    struct engine_stage st[] = {{S(2), 100}, {S(1), 100}};
    struct engine_config cfg = {0};
    struct engine_result res;

    (void)state;
    assert_non_null(t);
    cfg.executor = ENGINE_RAMPING_ARRIVAL_RATE;
    cfg.workflow = wf_get;
    cfg.data = (void *)loadtarget_url(t);
    cfg.rate = 0;
    cfg.stages = st;
    cfg.n_stages = 2;
    cfg.graceful_stop_ns = S(2);
    cfg.pre_allocated_vus = 5;
    cfg.max_vus = 50;
    cfg.threads = 2;
    run_ok(&cfg, &res);
    assert_int_equal(res.iterations + res.interrupted + res.dropped, 200);
    assert_int_equal(res.dropped, 0);
    /* The first second has a quarter of the ramp's starts. */
    assert_in_range(res.points[0].iterations, 20, 30);
    engine_result_cleanup(&res);
    loadtarget_stop(t);
}

/* 0 -> 4 VUs over 1 s, 4 for 2 s, down to 0 over 1 s. The gauge is read
 * at each second's end: at 2 s, inside the plateau, it must be 4. */
static void test_ramping_vus_follows_its_stages(void **state)
{
    struct loadtarget_config tc = {.delay_ms = 10};
    struct loadtarget *t = loadtarget_start(&tc);
    struct engine_stage st[] = {{S(1), 4}, {S(2), 4}, {S(1), 0}};
    struct engine_config cfg = {0};
    struct engine_result res;
    int top = 0;

    (void)state;
    assert_non_null(t);
    cfg.executor = ENGINE_RAMPING_VUS;
    cfg.workflow = wf_get;
    cfg.data = (void *)loadtarget_url(t);
    cfg.stages = st;
    cfg.n_stages = 3;
    cfg.graceful_stop_ns = S(1);
    cfg.graceful_ramp_down_ns = S(30); /* the 10 ms iterations end */
    cfg.threads = 2;
    run_ok(&cfg, &res);
    assert_int_equal(res.vus_max, 4);
    for (size_t i = 0; i < res.n_points; i++) {
        top = res.points[i].vus > top ? res.points[i].vus : top;
    }
    assert_int_equal(top, 4);
    assert_true(res.points[0].vus < 4 || res.points[1].vus == 4);
    assert_int_equal(res.points[1].vus, 4);
    /* 10 ms requests by 4 VUs at most over 4 s: 1,600 at most. */
    assert_in_range(res.iterations, 200, 1600);
    assert_int_equal(res.points[res.n_points - 1].vus, 0);
    engine_result_cleanup(&res);
    loadtarget_stop(t);
}

static void test_iterations_executors_run_exactly_their_count(void **state)
{
    struct loadtarget *t = loadtarget_start(NULL);
    struct engine_config cfg = {0};
    struct engine_result res;

    (void)state;
    assert_non_null(t);
    cfg.executor = ENGINE_PER_VU_ITERATIONS;
    cfg.workflow = wf_get;
    cfg.data = (void *)loadtarget_url(t);
    cfg.vus = 3;
    cfg.iterations = 5;
    cfg.threads = 2;
    run_ok(&cfg, &res);
    assert_int_equal(res.iterations, 15);
    assert_int_equal(total_requests(&res), 15);
    engine_result_cleanup(&res);

    cfg.executor = ENGINE_SHARED_ITERATIONS;
    cfg.vus = 4;
    cfg.iterations = 17;
    run_ok(&cfg, &res);
    assert_int_equal(res.iterations, 17);
    assert_int_equal(loadtarget_requests(t), 32);
    engine_result_cleanup(&res);
    loadtarget_stop(t);
}

/* ---- Through loadrun: the hf_* API, thresholds, report ---------------- */

static struct loadtarget *g_target;
static atomic_int g_inits;
static atomic_int g_finis;
static atomic_int g_teardowns;
static char g_teardown_saw[64];

static void h_setup(hf_vu *vu)
{
    const hf_http_response *r = hf_http_get(vu, loadtarget_url(g_target));

    hf_setup_data_set(vu, "token-42", 8);
    assert_int_equal(hf_vu_id(vu), 0);
    assert_int_equal(r->status, 200);
}

static void *h_shared(const void *data, size_t len)
{
    char *s = malloc(len + 8);

    snprintf(s, len + 8, "shared:%.*s", (int)len, (const char *)data);
    return s;
}

static void h_init(hf_vu *vu)
{
    atomic_fetch_add(&g_inits, 1);
    hf_vu_set_state(vu, malloc(16));
}

static void h_fini(hf_vu *vu)
{
    atomic_fetch_add(&g_finis, 1);
    free(hf_vu_state(vu));
}

static void h_teardown(hf_vu *vu)
{
    size_t len;
    const char *d = hf_vu_setup_data(vu, &len);

    atomic_fetch_add(&g_teardowns, 1);
    snprintf(g_teardown_saw, sizeof(g_teardown_saw), "%.*s", (int)len, d);
}

static void h_browse(hf_vu *vu)
{
    size_t len;
    const char *d = hf_vu_setup_data(vu, &len);
    const hf_http_response *r;
    char url[128];

    hf_check(vu, "setup data", len == 8 && strcmp(d, "token-42") == 0);
    hf_check(vu, "shared", strcmp(hf_vu_shared(vu), "shared:token-42") == 0);
    hf_check(vu, "param", strcmp(hf_vu_param(vu, "WHO"), "param") == 0);
    hf_step(vu, "home");
    r = hf_http_get(vu, loadtarget_url(g_target));
    hf_check(vu, "home is 200", r->status == 200);
    hf_step(vu, "item");
    snprintf(url, sizeof(url), "%s?id=%d", loadtarget_url(g_target),
             hf_vu_id(vu));
    r = hf_http_request(
        vu, &(struct hf_http_request){.url = url, .name = "GET item"});
    hf_check(vu, "item is 200", r->status == 200);
}

static const struct hf_suite suite = {.name = "loadtest"};

static json_t *run_workflow(const struct hf_workflow *wf,
                            struct loadrun_opts *lo, int want_rc)
{
    json_t *report = NULL;
    char err[512] = "";
    int rc = loadrun_run(&suite, wf, lo, NULL, &report, err, sizeof(err));

    if (rc != want_rc) {
        fail_msg("loadrun_run: %d (%s)", rc, err);
    }
    return report;
}

static const json_t *find_named(const json_t *arr, const char *key,
                                const char *value, const char *key2,
                                const char *value2)
{
    size_t i;
    const json_t *o;

    json_array_foreach(arr, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, key)), value) == 0 &&
            (key2 == NULL || strcmp(json_string_value(json_object_get(o, key2)),
                                    value2) == 0)) {
            return o;
        }
    }
    fail_msg("no %s=%s in the report", key, value);
    return NULL;
}

static json_int_t jint(const json_t *o, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(o, path1);

    if (path2 != NULL) {
        v = json_object_get(v, path2);
    }
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void test_lifecycle_steps_checks_and_report(void **state)
{
    struct hf_workflow wf = {.name = "browse",
                             .fn = h_browse,
                             .setup = h_setup,
                             .shared = h_shared,
                             .free_shared = free,
                             .init = h_init,
                             .fini = h_fini,
                             .teardown = h_teardown};
    char key[] = "WHO";
    char value[] = "param";
    struct result_kv kv = {.key = key, .value = value};
    struct loadrun_opts lo = {0};
    json_t *r;
    const json_t *item;
    size_t i;
    const json_t *c;

    (void)state;
    g_target = loadtarget_start(NULL);
    assert_non_null(g_target);
    lo.engine.executor = ENGINE_PER_VU_ITERATIONS;
    lo.engine.vus = 3;
    lo.engine.iterations = 4;
    lo.params = &kv;
    lo.n_params = 1;
    lo.id = "test-run";
    r = run_workflow(&wf, &lo, 0);
    assert_string_equal(json_string_value(json_object_get(r, "schema")),
                        "handoff.load.report/1");
    assert_string_equal(json_string_value(json_object_get(r, "result")),
                        "passed");
    assert_string_equal(json_string_value(json_object_get(r, "id")),
                        "test-run");
    assert_int_equal(jint(r, "iterations", "completed"), 12);
    assert_int_equal(atomic_load(&g_inits), 3);
    assert_int_equal(atomic_load(&g_finis), 3);
    assert_int_equal(atomic_load(&g_teardowns), 1);
    assert_string_equal(g_teardown_saw, "token-42");
    /* Every check passed on every iteration. */
    json_array_foreach(json_object_get(r, "checks"), i, c)
    {
        assert_int_equal(jint(c, "passes", NULL), 12);
        assert_int_equal(jint(c, "fails", NULL), 0);
    }
    assert_int_equal(json_array_size(json_object_get(r, "checks")), 5);
    item = find_named(json_object_get(r, "requests"), "step", "item", "name",
                      "GET item");
    assert_int_equal(jint(item, "count", NULL), 12);
    assert_int_equal(jint(item, "status", "200"), 12);
    find_named(json_object_get(r, "requests"), "step", "home", "name", "GET /");
    find_named(json_object_get(r, "steps"), "name", "home", NULL, NULL);
    /* Setup's request is not part of the run: 24 + 1 reached the server. */
    assert_int_equal(jint(r, "totals", "count"), 24);
    assert_int_equal(loadtarget_requests(g_target), 25);
    json_decref(r);
    loadtarget_stop(g_target);
}

static void h_get(hf_vu *vu)
{
    const hf_http_response *r = hf_http_get(vu, loadtarget_url(g_target));

    hf_check(vu, "status is 200", r->status == 200);
}

static const json_t *threshold_named(const json_t *r, const char *source)
{
    return find_named(json_object_get(r, "thresholds"), "source", source, NULL,
                      NULL);
}

/* Every fifth response is a 500. */
static void test_thresholds_pass_fail_and_abort(void **state)
{
    struct loadtarget_config tc = {.error_rate = 0.2};
    const char *const ths[] = {
        "http_req_failed: rate<0.1", "http_req_failed: rate<0.5",
        "checks{check:status is 200}: rate>0.7", "http_reqs: count==50", NULL};
    const char *const abort_th[] = {"http_req_failed: rate<0.1 abort_on_fail",
                                    NULL};
    struct hf_workflow wf = {.name = "get", .fn = h_get};
    struct loadrun_opts lo = {0};
    json_t *r;
    const json_t *th;
    int64_t t0;

    (void)state;
    g_target = loadtarget_start(&tc);
    assert_non_null(g_target);
    lo.engine.executor = ENGINE_SHARED_ITERATIONS;
    lo.engine.vus = 2;
    lo.engine.iterations = 50;
    lo.thresholds = ths;
    r = run_workflow(&wf, &lo, 0);
    assert_string_equal(json_string_value(json_object_get(r, "result")),
                        "failed");
    th = threshold_named(r, "http_req_failed: rate<0.1");
    assert_false(json_is_true(json_object_get(th, "passed")));
    assert_true(json_real_value(json_object_get(th, "observed")) > 0.19 &&
                json_real_value(json_object_get(th, "observed")) < 0.21);
    assert_true(json_is_true(json_object_get(
        threshold_named(r, "http_req_failed: rate<0.5"), "passed")));
    assert_true(json_is_true(json_object_get(
        threshold_named(r, "checks{check:status is 200}: rate>0.7"),
        "passed")));
    assert_true(json_is_true(
        json_object_get(threshold_named(r, "http_reqs: count==50"), "passed")));
    json_decref(r);

    /* The same failure with abort_on_fail stops a 30 s run within
     * seconds. */
    memset(&lo, 0, sizeof(lo));
    lo.engine.executor = ENGINE_CONSTANT_VUS;
    lo.engine.vus = 2;
    lo.engine.duration_ns = S(30);
    lo.engine.graceful_stop_ns = S(1);
    lo.thresholds = abort_th;
    t0 = clock_mono_ns();
    r = run_workflow(&wf, &lo, 0);
    assert_true(clock_mono_ns() - t0 < S(10));
    assert_string_equal(json_string_value(json_object_get(r, "result")),
                        "aborted");
    assert_non_null(strstr(
        json_string_value(json_object_get(r, "abort_reason")), "rate<0.1"));
    json_decref(r);

    /* A bad threshold is refused before anything runs. */
    {
        const char *const bad[] = {"http_req_duration: p(95)<3xx", NULL};
        char err[512];

        lo.thresholds = bad;
        assert_int_equal(loadrun_check_thresholds(&wf, &lo, err, sizeof(err)),
                         ST_INVALID);
        assert_non_null(strstr(err, "3xx"));
    }
    loadtarget_stop(g_target);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_env_files_and_their_precedence(void **state)
{
    char dir[] = "/tmp/handoff-env-XXXXXX";
    char path[128];
    struct result_kv *kvs = NULL;
    size_t n = 0;
    char err[256];

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/env.default", dir);
    write_text(path, "# defaults\nA=default\nB=\"default b\"\nexport C=c # "
                     "comment\n\n");
    assert_int_equal(loadrun_read_env(path, &kvs, &n, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/.env", dir);
    write_text(path, "A='from env'\n");
    assert_int_equal(loadrun_read_env(path, &kvs, &n, err, sizeof(err)), 0);
    assert_string_equal(result_kv_get(kvs, n, "A"), "from env");
    assert_string_equal(result_kv_get(kvs, n, "B"), "default b");
    assert_string_equal(result_kv_get(kvs, n, "C"), "c");
    result_kv_free(kvs, n);
    kvs = NULL;
    n = 0;
    write_text(path, "GOOD=1\nthis line is bad\n");
    assert_int_equal(loadrun_read_env(path, &kvs, &n, err, sizeof(err)),
                     ST_INVALID);
    assert_non_null(strstr(err, ".env:2"));
    result_kv_free(kvs, n);
    kvs = NULL;
    n = 0;
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(loadrun_read_env(path, &kvs, &n, err, sizeof(err)),
                     ST_NOT_FOUND);
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

/* ---- HTTPS ---------------------------------------------------------------- */

static int g_tls_status;
static char g_tls_error[160];
static int64_t g_tls_hs[2];
static bool g_tls_reused[2];

static void wf_tls(struct engine_vu *vu)
{
    for (int i = 0; i < 2; i++) {
        const struct httpc_response *r =
            httpc_get(engine_vu_http(vu), engine_vu_data(vu));

        g_tls_status = r->status;
        snprintf(g_tls_error, sizeof(g_tls_error), "%s", r->error_text);
        g_tls_hs[i] = r->timings_ns[HTTPC_T_TLS_HANDSHAKING];
        g_tls_reused[i] = r->reused;
    }
}

static void tls_get(struct loadtarget *t, const char *ca, bool insecure)
{
    struct engine_config cfg = {0};
    struct engine_result res;

    cfg.executor = ENGINE_PER_VU_ITERATIONS;
    cfg.workflow = wf_tls;
    cfg.data = (void *)loadtarget_url(t);
    cfg.vus = 1;
    cfg.iterations = 1;
    cfg.http.tls_ca_file = ca;
    cfg.http.tls_insecure = insecure;
    g_tls_status = -1;
    g_tls_error[0] = '\0';
    run_ok(&cfg, &res);
    engine_result_cleanup(&res);
}

/* A self-signed certificate for localhost, made with the openssl command,
 * as CA file; then the system store (which does not trust it), then no
 * verification at all. */
static void test_https_verifies_and_keeps_alive(void **state)
{
    char dir[] = "/tmp/handoff-tls-XXXXXX";
    char cmd[1024];
    char cert[128];
    char key[128];
    struct loadtarget_config tc = {0};
    struct loadtarget *t;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -days 1 -subj /CN=localhost -addext "
             "subjectAltName=DNS:localhost -keyout %s -out %s 2>/dev/null",
             key, cert);
    assert_int_equal(system(cmd), 0);
    tc.tls_cert = cert;
    tc.tls_key = key;
    t = loadtarget_start(&tc);
    assert_non_null(t);
    assert_non_null(strstr(loadtarget_url(t), "https://localhost:"));

    tls_get(t, cert, false);
    assert_int_equal(g_tls_status, 200);
    assert_true(g_tls_hs[0] > 0); /* a handshake, timed */
    assert_false(g_tls_reused[0]);
    assert_true(g_tls_reused[1]); /* kept alive: no second one */
    assert_int_equal(g_tls_hs[1], 0);

    tls_get(t, NULL, false);
    assert_int_equal(g_tls_status, 0);
    assert_non_null(strstr(g_tls_error, "certificate"));

    tls_get(t, NULL, true);
    assert_int_equal(g_tls_status, 200);
    assert_int_equal(loadtarget_requests(t), 4);
    loadtarget_stop(t);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- The command: handoff-example-worker load ------------------------- */

static int run_cmd(const char *cmd)
{
    int st = system(cmd);

    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *read_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);

    if (j == NULL) {
        fail_msg("%s: %s", path, e.text);
    }
    return j;
}

static void test_load_command_reports_and_exit_status(void **state)
{
    char dir[] = "/tmp/handoff-loadcli-XXXXXX";
    char cmd[2048];
    char path[256];
    struct stat st;
    json_t *r;
    struct loadtarget *t = loadtarget_start(NULL);

    (void)state;
    assert_non_null(t);
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd),
             "%s/handoff-example-worker load get --param TARGET_URL=%s "
             "--rate 50 --duration 2s --max-vus 10 --json %s/r.json --html "
             "%s/r.html --junit %s/r.xml --threshold 'http_reqs: count>=90' "
             ">%s/out.txt 2>%s/err.txt",
             HANDOFF_BIN_DIR, loadtarget_url(t), dir, dir, dir, dir, dir);
    assert_int_equal(run_cmd(cmd), 0);
    snprintf(path, sizeof(path), "%s/r.json", dir);
    r = read_json(path);
    assert_string_equal(json_string_value(json_object_get(r, "result")),
                        "passed");
    assert_int_equal(jint(r, "iterations", "completed"), 100);
    assert_int_equal(jint(r, "totals", "count"), 100);
    assert_int_equal(loadtarget_requests(t), 100);
    assert_true(json_array_size(json_object_get(r, "series")) >= 2);
    json_decref(r);
    snprintf(path, sizeof(path), "%s/r.html", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 1000);
    snprintf(cmd, sizeof(cmd), "xmllint --noout %s/r.xml", dir);
    assert_int_equal(run_cmd(cmd), 0);
    /* The live line went to stderr, the summary to stdout. */
    snprintf(cmd, sizeof(cmd),
             "grep -q 'rps' %s/err.txt && grep -q "
             "'http_req_duration' %s/out.txt",
             dir, dir);
    assert_int_equal(run_cmd(cmd), 0);

    /* A threshold that fails: exit status 1. */
    snprintf(cmd, sizeof(cmd),
             "%s/handoff-example-worker load get --param TARGET_URL=%s "
             "--iterations 5 --threshold 'http_reqs: count>5' --quiet "
             ">/dev/null",
             HANDOFF_BIN_DIR, loadtarget_url(t));
    assert_int_equal(run_cmd(cmd), 1);
    /* Bad input: exit status 2, and nothing ran. */
    snprintf(cmd, sizeof(cmd),
             "%s/handoff-example-worker load get --param TARGET_URL=%s "
             "--stages 10s:x 2>/dev/null",
             HANDOFF_BIN_DIR, loadtarget_url(t));
    assert_int_equal(run_cmd(cmd), 2);
    snprintf(cmd, sizeof(cmd),
             "%s/handoff-example-worker load get --executor nope "
             "2>/dev/null",
             HANDOFF_BIN_DIR);
    assert_int_equal(run_cmd(cmd), 2);
    assert_int_equal(loadtarget_requests(t), 105);
    /* --graceful-ramp-down: ramping-vus only, a duration, in the report's
     * executor and its summary. */
    snprintf(cmd, sizeof(cmd),
             "%s/handoff-example-worker load get --param TARGET_URL=%s "
             "--rate 10 --duration 1s --graceful-ramp-down 1s 2>%s/err.txt",
             HANDOFF_BIN_DIR, loadtarget_url(t), dir);
    assert_int_equal(run_cmd(cmd), 2);
    snprintf(cmd, sizeof(cmd),
             "grep -q 'graceful-ramp-down is for ramping-vus only (the "
             "executor is constant-arrival-rate)' %s/err.txt",
             dir);
    assert_int_equal(run_cmd(cmd), 0);
    snprintf(cmd, sizeof(cmd),
             "%s/handoff-example-worker load get --param TARGET_URL=%s "
             "--stages 300ms:2 --graceful-ramp-down soon 2>/dev/null",
             HANDOFF_BIN_DIR, loadtarget_url(t));
    assert_int_equal(run_cmd(cmd), 2);
    assert_int_equal(loadtarget_requests(t), 105);
    snprintf(cmd, sizeof(cmd),
             "%s/handoff-example-worker load get --param TARGET_URL=%s "
             "--stages 300ms:2 --graceful-ramp-down 1500ms --quiet --json "
             "%s/ramp.json >%s/out.txt",
             HANDOFF_BIN_DIR, loadtarget_url(t), dir, dir);
    assert_int_equal(run_cmd(cmd), 0);
    snprintf(path, sizeof(path), "%s/ramp.json", dir);
    r = read_json(path);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(r, "executor"), "type")),
                        "ramping-vus");
    assert_true(
        json_number_value(json_object_get(json_object_get(r, "executor"),
                                          "graceful_ramp_down_ms")) == 1500);
    json_decref(r);
    snprintf(cmd, sizeof(cmd), "grep -q 'graceful ramp-down 1.50s' %s/out.txt",
             dir);
    assert_int_equal(run_cmd(cmd), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(run_cmd(cmd), 0);
    loadtarget_stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_arrival_rate_is_accurate),
        cmocka_unit_test(test_arrival_rate_latency_shows_a_stall),
        cmocka_unit_test(test_arrival_rate_counts_dropped_iterations),
        cmocka_unit_test(test_arrival_rate_lets_idle_vus_go),
        cmocka_unit_test(test_arrival_rate_reuses_the_ids_of_vus_let_go),
        cmocka_unit_test(test_ramping_arrival_rate_follows_its_stages),
        cmocka_unit_test(test_ramping_vus_follows_its_stages),
        cmocka_unit_test(test_iterations_executors_run_exactly_their_count),
        cmocka_unit_test(test_lifecycle_steps_checks_and_report),
        cmocka_unit_test(test_thresholds_pass_fail_and_abort),
        cmocka_unit_test(test_env_files_and_their_precedence),
        cmocka_unit_test(test_https_verifies_and_keeps_alive),
        cmocka_unit_test(test_load_command_reports_and_exit_status),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
