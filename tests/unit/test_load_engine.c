/* The load engine: VUs over several threads against an evhttp server on
 * 127.0.0.1 (its own thread), metrics merged from the threads, VU identity
 * and id ranges, graceful stop and the hard stop after it, ramping-vus'
 * graceful ramp-down, a start offset (a late shard), workflows that never
 * block, and configuration checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "clock.h"
#include "engine.h"

struct server {
    pthread_t tid;
    struct event_base *base;
    struct evhttp *http;
    struct event *tick;
    atomic_bool stop;
    int port;
    char url[64];
};

static void on_request(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evbuffer_new();

    (void)arg;
    evbuffer_add(out, "hello", 5);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)what;
    if (atomic_load(&s->stop)) {
        event_base_loopbreak(s->base);
    }
}

static void *server_main(void *arg)
{
    struct server *s = arg;

    event_base_dispatch(s->base);
    return NULL;
}

static void server_start(struct server *s)
{
    struct evhttp_bound_socket *bound;
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);
    struct timeval tv = {.tv_usec = 10000};

    memset(s, 0, sizeof(*s));
    atomic_init(&s->stop, false);
    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    evhttp_set_gencb(s->http, on_request, NULL);
    bound = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    assert_non_null(bound);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bound),
                                 (struct sockaddr *)&ss, &len),
                     0);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d/hello", s->port);
    s->tick = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    event_add(s->tick, &tv);
    assert_int_equal(pthread_create(&s->tid, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->tid, NULL);
    event_free(s->tick);
    evhttp_free(s->http);
    event_base_free(s->base);
}

static void wf_get(struct engine_vu *vu)
{
    const struct server *s = engine_vu_data(vu);

    httpc_get(engine_vu_http(vu), s->url);
}

static void test_engine_runs_vus_on_threads_and_merges_metrics(void **state)
{
    struct server s;
    struct engine_config cfg;
    struct engine_result res;
    const struct httpc_stats *st;

    (void)state;
    server_start(&s);
    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_get;
    cfg.data = &s;
    cfg.vus = 8;
    cfg.threads = 3;
    cfg.duration_ns = 300 * CLOCK_NS_PER_MS;
    cfg.graceful_stop_ns = 5 * CLOCK_NS_PER_S;
    assert_int_equal(engine_run(&cfg, &res), 0);
    server_stop(&s);
    st = httpc_metrics_find(res.http, "GET /hello");
    assert_non_null(st);
    assert_true(res.iterations > 8);
    assert_int_equal(res.interrupted, 0);
    /* One request per iteration, every one of them recorded once. */
    assert_int_equal(st->requests, res.iterations);
    assert_int_equal(st->failed, 0);
    assert_int_equal(st->status[200], res.iterations);
    assert_int_equal(hist_count(st->timings[HTTPC_T_DURATION]), res.iterations);
    assert_int_equal(hist_count(res.iteration_ns), res.iterations);
    assert_true(res.elapsed_ns >= 300 * CLOCK_NS_PER_MS);
    assert_true(res.elapsed_ns < 5 * CLOCK_NS_PER_S);
    /* Shorter than a second: only the last hand-over counts its VUs. */
    assert_int_equal(res.vus_max, 8);
    engine_result_cleanup(&res);
}

struct ids {
    pthread_mutex_t lock;
    int seen[64];
    int bad_data;
};

static void wf_ids(struct engine_vu *vu)
{
    struct ids *ids = engine_vu_data(vu);
    int id = engine_vu_id(vu);

    pthread_mutex_lock(&ids->lock);
    if (id >= 1 && id < 64 && engine_vu_iteration(vu) == 0) {
        ids->seen[id]++;
    }
    pthread_mutex_unlock(&ids->lock);
    engine_sleep(vu, 20 * CLOCK_NS_PER_MS);
}

static void test_engine_gives_each_vu_an_id_and_the_run_data(void **state)
{
    struct ids ids;
    struct engine_config cfg;
    struct engine_result res;

    (void)state;
    memset(&ids, 0, sizeof(ids));
    pthread_mutex_init(&ids.lock, NULL);
    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_ids;
    cfg.data = &ids;
    cfg.vus = 10;
    cfg.threads = 4;
    cfg.duration_ns = 100 * CLOCK_NS_PER_MS;
    cfg.graceful_stop_ns = CLOCK_NS_PER_S;
    assert_int_equal(engine_run(&cfg, &res), 0);
    for (int id = 1; id <= 10; id++) {
        assert_int_equal(ids.seen[id], 1);
    }
    assert_int_equal(ids.seen[11], 0);
    /* 20 ms sleeps for 100 ms: about 5 iterations each. */
    assert_true(res.iterations >= 30);
    assert_true(res.iterations <= 70);
    assert_int_equal(res.interrupted, 0);
    assert_true(hist_min(res.iteration_ns) >= 19 * CLOCK_NS_PER_MS);
    engine_result_cleanup(&res);
    pthread_mutex_destroy(&ids.lock);
}

static void wf_sleep_long(struct engine_vu *vu)
{
    engine_sleep(vu, 3600 * CLOCK_NS_PER_S);
}

static void test_engine_hard_stop_interrupts_what_is_left(void **state)
{
    struct engine_config cfg;
    struct engine_result res;
    int64_t t0 = clock_mono_ns();

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_sleep_long;
    cfg.vus = 50;
    cfg.threads = 2;
    cfg.duration_ns = 50 * CLOCK_NS_PER_MS;
    cfg.graceful_stop_ns = 50 * CLOCK_NS_PER_MS;
    assert_int_equal(engine_run(&cfg, &res), 0);
    assert_true(clock_mono_ns() - t0 < 2 * CLOCK_NS_PER_S);
    assert_true(res.elapsed_ns >= 100 * CLOCK_NS_PER_MS);
    assert_int_equal(res.iterations, 0);
    assert_int_equal(res.interrupted, 50);
    engine_result_cleanup(&res);
}

static void wf_sleep_150ms(struct engine_vu *vu)
{
    engine_sleep(vu, 150 * CLOCK_NS_PER_MS);
}

static void test_engine_graceful_stop_lets_iterations_finish(void **state)
{
    struct engine_config cfg;
    struct engine_result res;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_sleep_150ms;
    cfg.vus = 6;
    cfg.threads = 2;
    cfg.duration_ns = 100 * CLOCK_NS_PER_MS;
    cfg.graceful_stop_ns = 2 * CLOCK_NS_PER_S;
    assert_int_equal(engine_run(&cfg, &res), 0);
    assert_int_equal(res.iterations, 6);
    assert_int_equal(res.interrupted, 0);
    assert_true(res.elapsed_ns >= 150 * CLOCK_NS_PER_MS);
    assert_true(res.elapsed_ns < CLOCK_NS_PER_S);
    engine_result_cleanup(&res);
}

static atomic_long spins;

static void wf_spin(struct engine_vu *vu)
{
    (void)vu;
    atomic_fetch_add(&spins, 1);
}

static void test_engine_stops_workflows_that_never_block(void **state)
{
    struct engine_config cfg;
    struct engine_result res;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_spin;
    cfg.vus = 3;
    cfg.duration_ns = 50 * CLOCK_NS_PER_MS;
    assert_int_equal(engine_run(&cfg, &res), 0);
    assert_true(res.iterations > 0);
    assert_int_equal(res.iterations, (uint64_t)atomic_load(&spins));
    assert_true(res.elapsed_ns < CLOCK_NS_PER_S);
    engine_result_cleanup(&res);
}

/* ---- Graceful ramp-down (ramping-vus) -------------------------------- */

static atomic_int cut_seen;

/* Sleeps far longer than any test runs, then tells whether the sleep was
 * cut short. */
static void wf_sleep_then_look(struct engine_vu *vu)
{
    engine_sleep(vu, 3600 * CLOCK_NS_PER_S);
    if (engine_vu_interrupted(vu)) {
        atomic_fetch_add(&cut_seen, 1);
    }
}

/* Two VUs start hour-long sleeps; the target falls to 0 with 50 ms of
 * graceful ramp-down: both iterations are cut short and counted as
 * interrupted, and the run ends with its stages, not 30 s of graceful
 * stop later. */
static void
test_engine_ramp_down_interrupts_iterations_past_their_grace(void **state)
{
    const struct engine_stage st[] = {{100 * CLOCK_NS_PER_MS, 2},
                                      {200 * CLOCK_NS_PER_MS, 2},
                                      {100 * CLOCK_NS_PER_MS, 0},
                                      {300 * CLOCK_NS_PER_MS, 0}};
    struct engine_config cfg;
    struct engine_result res;

    (void)state;
    atomic_store(&cut_seen, 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.executor = ENGINE_RAMPING_VUS;
    cfg.workflow = wf_sleep_then_look;
    cfg.stages = st;
    cfg.n_stages = 4;
    cfg.threads = 2;
    cfg.graceful_stop_ns = 30 * CLOCK_NS_PER_S;
    cfg.graceful_ramp_down_ns = 50 * CLOCK_NS_PER_MS;
    assert_int_equal(engine_run(&cfg, &res), 0);
    assert_int_equal(res.iterations, 0);
    assert_int_equal(res.interrupted, 2);
    assert_int_equal(atomic_load(&cut_seen), 2);
    assert_true(res.elapsed_ns < 10 * CLOCK_NS_PER_S);
    engine_result_cleanup(&res);
}

/* A port that takes connections (the kernel's backlog) and never answers:
 * a request to it waits until cancelled. */
static int hang_listen(char *url, size_t len)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(url, len, "http://127.0.0.1:%d/hang", ntohs(sa.sin_port));
    return fd;
}

struct comeback {
    const struct server *server;
    char hang_url[64];
    atomic_int calls;
    atomic_int first_error;
};

/* The first iteration hangs on a request; the others are quick. */
static void wf_hang_once(struct engine_vu *vu)
{
    struct comeback *cb = engine_vu_data(vu);

    if (atomic_fetch_add(&cb->calls, 1) == 0) {
        const struct httpc_response *r =
            httpc_get(engine_vu_http(vu), cb->hang_url);

        atomic_store(&cb->first_error, (int)r->error);
    } else {
        httpc_get(engine_vu_http(vu), cb->server->url);
    }
}

/* The target falls to 0 while the VU's request hangs; with no graceful
 * ramp-down (0) the request is cancelled at once and the iteration
 * counted as interrupted. When the target rises again the same VU runs
 * iterations whose requests go through: the cancel did not stick. */
static void
test_engine_ramp_down_cancels_a_request_and_the_vu_comes_back(void **state)
{
    const struct engine_stage st[] = {
        {50 * CLOCK_NS_PER_MS, 1}, {200 * CLOCK_NS_PER_MS, 1},
        {50 * CLOCK_NS_PER_MS, 0}, {300 * CLOCK_NS_PER_MS, 0},
        {50 * CLOCK_NS_PER_MS, 1}, {300 * CLOCK_NS_PER_MS, 1}};
    struct server s;
    struct comeback cb;
    struct engine_config cfg;
    struct engine_result res;
    const struct httpc_stats *ok;
    int hang_fd;

    (void)state;
    server_start(&s);
    memset(&cb, 0, sizeof(cb));
    cb.server = &s;
    atomic_init(&cb.calls, 0);
    atomic_init(&cb.first_error, -1);
    hang_fd = hang_listen(cb.hang_url, sizeof(cb.hang_url));
    memset(&cfg, 0, sizeof(cfg));
    cfg.executor = ENGINE_RAMPING_VUS;
    cfg.workflow = wf_hang_once;
    cfg.data = &cb;
    cfg.stages = st;
    cfg.n_stages = 6;
    cfg.threads = 1;
    cfg.graceful_stop_ns = 30 * CLOCK_NS_PER_S;
    cfg.graceful_ramp_down_ns = 0;
    assert_int_equal(engine_run(&cfg, &res), 0);
    server_stop(&s);
    close(hang_fd);
    assert_int_equal(atomic_load(&cb.first_error), HTTPC_ERR_CANCELLED);
    assert_int_equal(res.interrupted, 1);
    assert_true(res.iterations >= 1);
    ok = httpc_metrics_find(res.http, "GET /hello");
    assert_non_null(ok);
    assert_true(ok->requests >= 1);
    assert_int_equal(ok->failed, 0);
    /* The cancelled request is not recorded. */
    assert_null(httpc_metrics_find(res.http, "GET /hang"));
    engine_result_cleanup(&res);
}

/* ---- VU ids ----------------------------------------------------------- */

static void test_engine_numbers_vus_after_the_id_base(void **state)
{
    const struct engine_stage st[] = {{CLOCK_NS_PER_S, 3.2},
                                      {CLOCK_NS_PER_S, 0}};
    struct ids ids;
    struct engine_config cfg;
    struct engine_result res;

    (void)state;
    memset(&ids, 0, sizeof(ids));
    pthread_mutex_init(&ids.lock, NULL);
    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_ids;
    cfg.data = &ids;
    cfg.vus = 5;
    cfg.threads = 2;
    cfg.vu_id_base = 40;
    cfg.duration_ns = 50 * CLOCK_NS_PER_MS;
    cfg.graceful_stop_ns = CLOCK_NS_PER_S;
    assert_int_equal(engine_vus_max(&cfg), 5);
    assert_int_equal(engine_run(&cfg, &res), 0);
    engine_result_cleanup(&res);
    for (int id = 0; id < 64; id++) {
        assert_int_equal(ids.seen[id], id >= 41 && id <= 45 ? 1 : 0);
    }
    pthread_mutex_destroy(&ids.lock);
    /* How many ids a run uses, by executor. */
    cfg.executor = ENGINE_RAMPING_VUS;
    cfg.vus = 1;
    cfg.stages = st;
    cfg.n_stages = 2;
    assert_int_equal(engine_vus_max(&cfg), 4);
    cfg.vus = 0;
    memset(&cfg.stages, 0, sizeof(cfg.stages));
    cfg.stages = (const struct engine_stage[]){{CLOCK_NS_PER_S, 0}};
    cfg.n_stages = 1;
    assert_int_equal(engine_vus_max(&cfg), 0);
    cfg.executor = ENGINE_CONSTANT_ARRIVAL_RATE;
    cfg.rate = 10;
    cfg.pre_allocated_vus = 7;
    cfg.max_vus = 0;
    assert_int_equal(engine_vus_max(&cfg), 7);
    cfg.max_vus = 9;
    assert_int_equal(engine_vus_max(&cfg), 9);
    cfg.max_vus = -1;
    assert_int_equal(engine_vus_max(&cfg), 0);
    assert_int_equal(engine_vus_max(NULL), 0);
}

/* ---- Start offset (a shard that joins late) -------------------------- */

/* constant-arrival-rate 100/s for 2 s joined 1.5 s late: the 150 starts
 * scheduled before the join are dropped, the last 50 run; the seconds keep
 * the common numbering: second 1 (missed) carries its 100 drops and
 * nothing else, second 2 the other 50 and the 50 iterations. */
static void test_engine_start_offset_drops_the_starts_it_missed(void **state)
{
    struct engine_config cfg;
    struct engine_result res;
    uint64_t dropped = 0;

    (void)state;
    atomic_store(&spins, 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.executor = ENGINE_CONSTANT_ARRIVAL_RATE;
    cfg.workflow = wf_spin;
    cfg.rate = 100;
    cfg.duration_ns = 2 * CLOCK_NS_PER_S;
    cfg.max_vus = 2;
    cfg.threads = 2;
    cfg.start_offset_ns = 1500 * CLOCK_NS_PER_MS;
    assert_int_equal(engine_run(&cfg, &res), 0);
    assert_int_equal(res.dropped, 150);
    assert_int_equal(res.iterations, 50);
    assert_int_equal(res.interrupted, 0);
    assert_true(res.elapsed_ns >= 2 * CLOCK_NS_PER_S);
    assert_true(res.n_points >= 2);
    assert_int_equal(res.points[0].second, 1);
    assert_true(res.points[0].t_ns == CLOCK_NS_PER_S);
    assert_int_equal(res.points[0].dropped, 100);
    assert_int_equal(res.points[0].iterations, 0);
    assert_int_equal(res.points[0].vus_alive, 0);
    assert_int_equal(res.points[1].second, 2);
    assert_int_equal(res.points[1].dropped, 50);
    assert_int_equal(res.points[1].iterations, 50);
    for (size_t i = 0; i < res.n_points; i++) {
        dropped += res.points[i].dropped;
    }
    assert_int_equal(dropped, 150);
    engine_result_cleanup(&res);

    /* Joined after the end: every start is dropped, nothing runs, and
     * each second of the duration is still a point. */
    cfg.start_offset_ns = 10 * CLOCK_NS_PER_S;
    assert_int_equal(engine_run(&cfg, &res), 0);
    assert_int_equal(res.dropped, 200);
    assert_int_equal(res.iterations, 0);
    assert_true(res.n_points >= 2);
    assert_true(res.points[0].second == 1 && res.points[0].dropped == 100);
    assert_true(res.points[1].second == 2 && res.points[1].dropped == 100);
    for (size_t i = 2; i < res.n_points; i++) {
        assert_int_equal(res.points[i].dropped + res.points[i].iterations, 0);
    }
    engine_result_cleanup(&res);
}

static atomic_int early_starts;
static atomic_bool first_done;

/* Counts the VUs that start before any has finished an iteration. */
static void wf_count_early(struct engine_vu *vu)
{
    if (engine_vu_iteration(vu) == 0 && !atomic_load(&first_done)) {
        atomic_fetch_add(&early_starts, 1);
    }
    engine_sleep(vu, 200 * CLOCK_NS_PER_MS);
    atomic_store(&first_done, true);
}

/* ramping-vus from 0 to 4 over the first second, then 4 for a second:
 * joined 1 s late, the ramp is over and all four VUs start at once (from
 * the start, one starts every 250 ms, after the first one's 200 ms
 * iteration); the missed second is an empty point. */
static void test_engine_start_offset_keeps_to_the_stages(void **state)
{
    const struct engine_stage st[] = {{CLOCK_NS_PER_S, 4}, {CLOCK_NS_PER_S, 4}};
    struct engine_config cfg;
    struct engine_result res;

    (void)state;
    atomic_store(&early_starts, 0);
    atomic_store(&first_done, false);
    memset(&cfg, 0, sizeof(cfg));
    cfg.executor = ENGINE_RAMPING_VUS;
    cfg.workflow = wf_count_early;
    cfg.stages = st;
    cfg.n_stages = 2;
    cfg.threads = 1;
    cfg.graceful_stop_ns = 5 * CLOCK_NS_PER_S;
    cfg.graceful_ramp_down_ns = 5 * CLOCK_NS_PER_S;
    cfg.start_offset_ns = CLOCK_NS_PER_S;
    assert_int_equal(engine_run(&cfg, &res), 0);
    assert_int_equal(atomic_load(&early_starts), 4);
    assert_true(res.n_points >= 2);
    assert_int_equal(res.points[0].second, 1);
    assert_int_equal(res.points[0].iterations, 0);
    assert_int_equal(res.points[0].vus, 0);
    assert_int_equal(res.points[1].second, 2);
    assert_true(res.points[1].iterations >= 4);
    assert_int_equal(res.interrupted, 0);
    engine_result_cleanup(&res);
}

static void test_engine_refuses_bad_configurations(void **state)
{
    struct engine_config cfg;
    struct engine_result res;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_spin;
    cfg.vus = 0;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.vus = 1;
    cfg.threads = -1;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.threads = 1;
    cfg.duration_ns = -1;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.duration_ns = 0;
    cfg.stack_bytes = 10;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.stack_bytes = 0;
    cfg.http.max_names = 1;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.http.max_names = 0;
    cfg.graceful_ramp_down_ns = -1;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.graceful_ramp_down_ns = 0;
    cfg.vu_id_base = -1;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.vu_id_base = INT_MAX; /* ids would overflow */
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.vu_id_base = 0;
    cfg.start_offset_ns = -1;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    cfg.start_offset_ns = 0;
    cfg.workflow = NULL;
    assert_int_equal(engine_run(&cfg, &res), ST_INVALID);
    assert_int_equal(engine_run(NULL, &res), ST_INVALID);
    engine_result_cleanup(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_runs_vus_on_threads_and_merges_metrics),
        cmocka_unit_test(test_engine_gives_each_vu_an_id_and_the_run_data),
        cmocka_unit_test(test_engine_hard_stop_interrupts_what_is_left),
        cmocka_unit_test(test_engine_graceful_stop_lets_iterations_finish),
        cmocka_unit_test(test_engine_stops_workflows_that_never_block),
        cmocka_unit_test(
            test_engine_ramp_down_interrupts_iterations_past_their_grace),
        cmocka_unit_test(
            test_engine_ramp_down_cancels_a_request_and_the_vu_comes_back),
        cmocka_unit_test(test_engine_numbers_vus_after_the_id_base),
        cmocka_unit_test(test_engine_start_offset_drops_the_starts_it_missed),
        cmocka_unit_test(test_engine_start_offset_keeps_to_the_stages),
        cmocka_unit_test(test_engine_refuses_bad_configurations),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
