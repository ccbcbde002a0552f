/* The load engine's constant-vus executor: VUs over several threads
 * against an evhttp server on 127.0.0.1 (its own thread), metrics merged
 * from the threads, VU identity, graceful stop and the hard stop after it,
 * workflows that never block, and configuration checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        cmocka_unit_test(test_engine_refuses_bad_configurations),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
