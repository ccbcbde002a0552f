/* The VUs' HTTP client against a scripted server on 127.0.0.1 that runs on
 * the same event loop: bodies by length, chunks and end of connection,
 * keep-alive reuse and retry, servers that close, stall or answer
 * garbage, refused connections, DNS failures (from an in-process DNS
 * server), caps, timings, cancellation, and the per-name metrics. The
 * requests run on a coroutine; checks run after it, on the test's stack. */
#define _GNU_SOURCE /* strcasestr */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "buf.h"
#include "clock.h"
#include "coro.h"
#include "httpc.h"

/* ---- A scripted HTTP server ---------------------------------------------- */

enum srv_mode {
    SRV_RESPOND,       /* answer each request, keep the connection */
    SRV_RESPOND_CLOSE, /* answer, then close (without saying so) */
    SRV_CLOSE,         /* close on the request, no answer */
    SRV_STALL,         /* read the request, answer nothing */
};

struct srv;

struct srv_conn {
    struct srv *srv;
    int fd;
    struct event ev;
    struct buf in;
};

#define SRV_CONNS 16

struct srv {
    struct event_base *base;
    int lfd;
    int port;
    struct event lev;
    enum srv_mode mode;
    const char *response;
    size_t response_len;
    int accepted;
    int requests;
    struct buf last_request;
    struct srv_conn *conns[SRV_CONNS];
};

static void srv_conn_close(struct srv_conn *sc)
{
    struct srv *s = sc->srv;

    for (int i = 0; i < SRV_CONNS; i++) {
        if (s->conns[i] == sc) {
            s->conns[i] = NULL;
        }
    }
    event_del(&sc->ev);
    close(sc->fd);
    buf_cleanup(&sc->in);
    free(sc);
}

/* Length of the first complete request in sc->in, or 0. */
static size_t srv_request_len(struct srv_conn *sc)
{
    const char *head_end = strstr(buf_str(&sc->in), "\r\n\r\n");
    const char *cl;
    size_t head;
    size_t body = 0;

    if (head_end == NULL) {
        return 0;
    }
    head = (size_t)(head_end - sc->in.data) + 4;
    cl = strcasestr(sc->in.data, "\r\nContent-Length:");
    if (cl != NULL && cl < head_end) {
        body = strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10);
    }
    return sc->in.len >= head + body ? head + body : 0;
}

static void srv_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct srv_conn *sc = arg;
    struct srv *s = sc->srv;
    char tmp[4096];
    ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
    size_t len;

    (void)what;
    if (n <= 0) {
        srv_conn_close(sc);
        return;
    }
    buf_add(&sc->in, tmp, (size_t)n);
    while ((len = srv_request_len(sc)) > 0) {
        s->requests++;
        buf_reset(&s->last_request);
        buf_add(&s->last_request, sc->in.data, len);
        buf_consume(&sc->in, len);
        if (s->mode == SRV_CLOSE) {
            srv_conn_close(sc);
            return;
        }
        if (s->mode == SRV_STALL) {
            continue;
        }
        assert_int_equal(send(fd, s->response, s->response_len, MSG_NOSIGNAL),
                         (ssize_t)s->response_len);
        if (s->mode == SRV_RESPOND_CLOSE) {
            srv_conn_close(sc);
            return;
        }
    }
}

static void srv_on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    struct srv_conn *sc;
    int cfd = accept(fd, NULL, NULL);

    (void)what;
    if (cfd < 0) {
        return;
    }
    evutil_make_socket_nonblocking(cfd);
    sc = calloc(1, sizeof(*sc));
    assert_non_null(sc);
    sc->srv = s;
    sc->fd = cfd;
    buf_init(&sc->in, 0);
    event_assign(&sc->ev, s->base, cfd, EV_READ | EV_PERSIST, srv_on_read, sc);
    event_add(&sc->ev, NULL);
    s->accepted++;
    for (int i = 0; i < SRV_CONNS; i++) {
        if (s->conns[i] == NULL) {
            s->conns[i] = sc;
            break;
        }
    }
}

static void srv_start(struct srv *s, struct event_base *base)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->base = base;
    buf_init(&s->last_request, 0);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    evutil_make_socket_nonblocking(s->lfd);
    event_assign(&s->lev, base, s->lfd, EV_READ | EV_PERSIST, srv_on_accept, s);
    event_add(&s->lev, NULL);
}

static void srv_stop(struct srv *s)
{
    for (int i = 0; i < SRV_CONNS; i++) {
        if (s->conns[i] != NULL) {
            srv_conn_close(s->conns[i]);
        }
    }
    event_del(&s->lev);
    close(s->lfd);
    buf_cleanup(&s->last_request);
}

static void srv_script(struct srv *s, enum srv_mode mode, const char *response)
{
    s->mode = mode;
    s->response = response;
    s->response_len = response ? strlen(response) : 0;
}

/* ---- The fixture: loop, server, client, one coroutine ---------------------- */

/* What a response held, copied out of the conn for checking later. */
struct result {
    int status;
    enum httpc_error error;
    char error_text[160];
    char name[64];
    char body[512];
    size_t body_len;
    uint64_t body_bytes;
    bool body_truncated;
    size_t n_headers;
    char server_header[64];
    int64_t timings_ns[HTTPC_T_COUNT];
    uint64_t bytes_sent;
    uint64_t bytes_received;
    bool reused;
    int64_t wall_ns; /* around the call */
};

#define MAX_RESULTS 16

struct fx {
    struct event_base *base;
    struct srv srv;
    struct httpc_client *client;
    struct httpc_conn *conn;
    struct coro *co;
    void (*body)(struct fx *fx);
    char url[128];
    struct result res[MAX_RESULTS];
    int n;
    void *data;
};

static void fx_init(struct fx *fx, const struct httpc_config *cfg)
{
    memset(fx, 0, sizeof(*fx));
    fx->base = event_base_new();
    assert_non_null(fx->base);
    srv_start(&fx->srv, fx->base);
    assert_int_equal(httpc_client_new(fx->base, cfg, &fx->client), 0);
    snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%d/path?q=1",
             fx->srv.port);
}

static void fx_cleanup(struct fx *fx)
{
    httpc_client_free(fx->client);
    srv_stop(&fx->srv);
    event_base_free(fx->base);
}

static void fx_main(void *arg)
{
    struct fx *fx = arg;

    fx->body(fx);
}

/* Runs body on a coroutine until it returns, with the loop turning. */
static void fx_run(struct fx *fx, void (*body)(struct fx *fx))
{
    int64_t deadline = clock_mono_ns() + 10 * CLOCK_NS_PER_S;

    fx->body = body;
    assert_int_equal(coro_new(fx_main, fx, 0, &fx->co), 0);
    fx->conn = httpc_conn_new(fx->client, fx->co);
    coro_resume(fx->co);
    while (!coro_is_done(fx->co)) {
        assert_true(clock_mono_ns() < deadline);
        event_base_loop(fx->base, EVLOOP_ONCE);
    }
    httpc_conn_free(fx->conn);
    coro_free(fx->co);
    fx->conn = NULL;
    fx->co = NULL;
}

/* On the coroutine: one request, its response copied into fx->res. */
static void fx_request(struct fx *fx, const struct httpc_request *req)
{
    struct result *out = &fx->res[fx->n < MAX_RESULTS - 1 ? fx->n++ : fx->n];
    int64_t t0 = clock_mono_ns();
    const struct httpc_response *r = httpc_request(fx->conn, req);
    const char *server;

    out->wall_ns = clock_mono_ns() - t0;
    out->status = r->status;
    out->error = r->error;
    snprintf(out->error_text, sizeof(out->error_text), "%s", r->error_text);
    snprintf(out->name, sizeof(out->name), "%s", r->name);
    out->body_len = r->body_len;
    memcpy(out->body, r->body,
           r->body_len < sizeof(out->body) - 1 ? r->body_len + 1
                                               : sizeof(out->body) - 1);
    out->body_bytes = r->body_bytes;
    out->body_truncated = r->body_truncated;
    out->n_headers = r->n_headers;
    server = httpc_response_header(r, "server");
    snprintf(out->server_header, sizeof(out->server_header), "%s",
             server ? server : "");
    memcpy(out->timings_ns, r->timings_ns, sizeof(out->timings_ns));
    out->bytes_sent = r->bytes_sent;
    out->bytes_received = r->bytes_received;
    out->reused = r->reused;
}

static void fx_get(struct fx *fx, const char *url)
{
    struct httpc_request req = {.url = url};

    fx_request(fx, &req);
}

static void body_get_once(struct fx *fx)
{
    fx_get(fx, fx->url);
}

static void body_get_three(struct fx *fx)
{
    for (int i = 0; i < 3; i++) {
        fx_get(fx, fx->url);
    }
}

static const struct httpc_stats *stats_of(struct fx *fx, const char *name)
{
    return httpc_metrics_find(httpc_client_metrics(fx->client), name);
}

/* ---- Bodies ------------------------------------------------------------------ */

#define HELLO_RESPONSE                                                         \
    "HTTP/1.1 200 OK\r\nServer: scripted\r\nContent-Length: 5\r\n\r\nhello"

static void test_httpc_get_reads_a_content_length_body(void **state)
{
    struct fx fx;
    const struct result *r;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND, HELLO_RESPONSE);
    fx_run(&fx, body_get_once);
    r = &fx.res[0];
    assert_int_equal(r->error, HTTPC_ERR_NONE);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "hello");
    assert_int_equal(r->body_len, 5);
    assert_false(r->body_truncated);
    assert_int_equal(r->n_headers, 2);
    assert_string_equal(r->server_header, "scripted");
    assert_string_equal(r->name, "GET /path");
    assert_int_equal(r->bytes_received, strlen(HELLO_RESPONSE));
    assert_int_equal(r->bytes_sent, fx.srv.last_request.len);
    assert_false(r->reused);
    assert_non_null(strstr(buf_str(&fx.srv.last_request),
                           "GET /path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:"));
    assert_non_null(
        strstr(buf_str(&fx.srv.last_request), "\r\nUser-Agent: handoff/"));
    fx_cleanup(&fx);
}

static void test_httpc_reuses_the_kept_alive_connection(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND, HELLO_RESPONSE);
    fx_run(&fx, body_get_three);
    assert_int_equal(fx.srv.accepted, 1);
    assert_int_equal(fx.srv.requests, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.res[i].status, 200);
        assert_int_equal(fx.res[i].reused, i > 0);
        assert_int_equal(fx.res[i].timings_ns[HTTPC_T_CONNECTING] > 0, i == 0);
    }
    fx_cleanup(&fx);
}

static void test_httpc_reads_a_chunked_body(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND,
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n"
               "Trailer: x\r\n\r\n");
    fx_run(&fx, body_get_three);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.res[i].status, 200);
        assert_string_equal(fx.res[i].body, "hello world");
        assert_int_equal(fx.res[i].body_bytes, 11);
    }
    assert_int_equal(fx.srv.accepted, 1);
    fx_cleanup(&fx);
}

static void test_httpc_reads_a_body_ended_by_the_close(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND_CLOSE,
               "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
    fx_run(&fx, body_get_three);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.res[i].error, HTTPC_ERR_NONE);
        assert_string_equal(fx.res[i].body, "until the end");
        assert_false(fx.res[i].reused);
    }
    assert_int_equal(fx.srv.accepted, 3);
    fx_cleanup(&fx);
}

static void body_head(struct fx *fx)
{
    struct httpc_request req = {.method = "HEAD", .url = fx->url};

    fx_request(fx, &req);
    fx_request(fx, &req);
}

static void test_httpc_head_expects_no_body(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND,
               "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    fx_run(&fx, body_head);
    assert_int_equal(fx.res[0].status, 200);
    assert_int_equal(fx.res[0].body_len, 0);
    assert_int_equal(fx.res[1].status, 200);
    assert_true(fx.res[1].reused);
    assert_string_equal(fx.res[0].name, "HEAD /path");
    fx_cleanup(&fx);
}

static void test_httpc_skips_interim_responses(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND,
               "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
               "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    fx_run(&fx, body_get_three);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.res[i].status, 201);
        assert_string_equal(fx.res[i].body, "ok");
        assert_int_equal(fx.res[i].n_headers, 1);
    }
    fx_cleanup(&fx);
}

static void body_post(struct fx *fx)
{
    static const struct httpc_header hdrs[] = {
        {"Content-Type", "application/json"}, {"X-Trace", "abc"}};
    struct httpc_request req = {.method = "POST",
                                .url = fx->url,
                                .name = "create",
                                .headers = hdrs,
                                .n_headers = 2,
                                .body = "{\"a\":1}",
                                .body_len = 7};

    fx_request(fx, &req);
}

static void test_httpc_sends_headers_and_body(void **state)
{
    struct fx fx;
    const char *sent;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND, HELLO_RESPONSE);
    fx_run(&fx, body_post);
    sent = buf_str(&fx.srv.last_request);
    assert_int_equal(fx.res[0].status, 200);
    assert_string_equal(fx.res[0].name, "create");
    assert_non_null(strstr(sent, "POST /path?q=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(sent, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(sent, "\r\nX-Trace: abc\r\n"));
    assert_non_null(strstr(sent, "\r\nContent-Length: 7\r\n\r\n{\"a\":1}"));
    assert_non_null(stats_of(&fx, "create"));
    fx_cleanup(&fx);
}

/* ---- Servers that misbehave ---------------------------------------------- */

static void
test_httpc_retries_once_when_a_kept_alive_connection_died(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    /* Keep-alive by the headers, closed by the server after each answer:
     * the next request finds the connection dead and goes again on a new
     * one, without an error. */
    srv_script(&fx.srv, SRV_RESPOND_CLOSE, HELLO_RESPONSE);
    fx_run(&fx, body_get_three);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.res[i].error, HTTPC_ERR_NONE);
        assert_int_equal(fx.res[i].status, 200);
        assert_false(fx.res[i].reused);
    }
    assert_int_equal(fx.srv.accepted, 3);
    assert_int_equal(stats_of(&fx, "GET /path")->requests, 3);
    assert_int_equal(stats_of(&fx, "GET /path")->failed, 0);
    fx_cleanup(&fx);
}

static void test_httpc_close_without_response_is_a_reset(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_CLOSE, NULL);
    fx_run(&fx, body_get_once);
    assert_int_equal(fx.res[0].error, HTTPC_ERR_RESET);
    assert_int_equal(fx.res[0].status, 0);
    assert_non_null(strstr(fx.res[0].error_text, "closed"));
    assert_int_equal(stats_of(&fx, "GET /path")->errors[HTTPC_ERR_RESET], 1);
    assert_int_equal(stats_of(&fx, "GET /path")->failed, 1);
    fx_cleanup(&fx);
}

static void test_httpc_close_mid_body_is_a_reset(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND_CLOSE,
               "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort");
    fx_run(&fx, body_get_once);
    assert_int_equal(fx.res[0].error, HTTPC_ERR_RESET);
    assert_non_null(strstr(fx.res[0].error_text, "middle"));
    fx_cleanup(&fx);
}

static void body_timeout(struct fx *fx)
{
    struct httpc_request req = {.url = fx->url,
                                .timeout_ns = 100 * CLOCK_NS_PER_MS};

    fx_request(fx, &req);
}

static void test_httpc_stalled_server_times_out(void **state)
{
    struct fx fx;
    const struct result *r;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_STALL, NULL);
    fx_run(&fx, body_timeout);
    r = &fx.res[0];
    assert_int_equal(r->error, HTTPC_ERR_TIMEOUT);
    assert_int_equal(r->status, 0);
    assert_true(r->wall_ns >= 100 * CLOCK_NS_PER_MS);
    assert_true(r->wall_ns < 2 * CLOCK_NS_PER_S);
    /* The time waited shows as waiting. */
    assert_true(r->timings_ns[HTTPC_T_WAITING] >= 90 * CLOCK_NS_PER_MS);
    assert_int_equal(stats_of(&fx, "GET /path")->errors[HTTPC_ERR_TIMEOUT], 1);
    fx_cleanup(&fx);
}

static void test_httpc_refused_connection_is_a_connect_error(void **state)
{
    struct fx fx;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)state;
    /* A port that was free a moment ago and has no listener. */
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    fx_init(&fx, NULL);
    snprintf(fx.url, sizeof(fx.url), "http://127.0.0.1:%d/x",
             ntohs(a.sin_port));
    fx_run(&fx, body_get_once);
    assert_int_equal(fx.res[0].error, HTTPC_ERR_CONNECT);
    assert_non_null(strstr(fx.res[0].error_text, "refused"));
    assert_int_equal(stats_of(&fx, "GET /x")->errors[HTTPC_ERR_CONNECT], 1);
    fx_cleanup(&fx);
}

static void test_httpc_malformed_responses_are_parse_errors(void **state)
{
    static const char *const bad[] = {
        "garbage\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        /* One response, two headers that disagree on the length. */
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
         "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct fx fx;

        fx_init(&fx, NULL);
        srv_script(&fx.srv, SRV_RESPOND, bad[i]);
        fx_run(&fx, body_get_once);
        if (fx.res[0].error != HTTPC_ERR_PARSE) {
            fail_msg("response %zu: error %s (%s), status %d", i,
                     httpc_error_str(fx.res[0].error), fx.res[0].error_text,
                     fx.res[0].status);
        }
        assert_int_equal(fx.res[0].status, 0);
        fx_cleanup(&fx);
    }
}

static void test_httpc_caps_headers_and_bodies(void **state)
{
    struct httpc_config cfg = {.max_header_bytes = 1024, .max_body_bytes = 4};
    char response[8192];
    struct fx fx;

    (void)state;
    fx_init(&fx, &cfg);
    snprintf(response, sizeof(response),
             "HTTP/1.1 200 OK\r\nX-Big: %02000d\r\nContent-Length: 2\r\n\r\n"
             "ok",
             0);
    srv_script(&fx.srv, SRV_RESPOND, response);
    fx_run(&fx, body_get_once);
    assert_int_equal(fx.res[0].error, HTTPC_ERR_PARSE);
    assert_non_null(strstr(fx.res[0].error_text, "over 1024"));
    fx_cleanup(&fx);

    fx_init(&fx, &cfg);
    srv_script(&fx.srv, SRV_RESPOND,
               "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
    fx_run(&fx, body_get_three);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.res[i].status, 200);
        assert_string_equal(fx.res[i].body, "0123");
        assert_int_equal(fx.res[i].body_bytes, 10);
        assert_true(fx.res[i].body_truncated);
    }
    /* The rest was read: the connection stayed usable. */
    assert_int_equal(fx.srv.accepted, 1);
    fx_cleanup(&fx);
}

static void body_invalid(struct fx *fx)
{
    static const struct httpc_header inject[] = {{"X-A", "b\r\nX-Evil: 1"}};
    struct httpc_request req = {
        .url = fx->url, .headers = inject, .n_headers = 1};

    fx_get(fx, "not a url");
    fx_get(fx, "ftp://127.0.0.1/");
    fx_request(fx, &req);
    req.headers = NULL;
    req.n_headers = 0;
    req.method = "GE T";
    fx_request(fx, &req);
}

static void test_httpc_refuses_bad_urls_methods_and_headers(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND, HELLO_RESPONSE);
    fx_run(&fx, body_invalid);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fx.res[i].error, HTTPC_ERR_INVALID);
    }
    assert_int_equal(fx.srv.requests, 0);
    assert_string_equal(fx.res[2].name, "GET /path");
    fx_cleanup(&fx);
}

/* https against a server that speaks plain HTTP and waits for a request:
 * the handshake never completes, and the request ends in its timeout (or
 * a TLS error, when the server answers the hello with garbage). HTTPS
 * itself: tests/load/test_load_run.c. */
static void test_httpc_https_to_a_plain_server_is_a_tls_error(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    snprintf(fx.url, sizeof(fx.url), "https://127.0.0.1:%d/", fx.srv.port);
    fx_run(&fx, body_get_once);
    assert_true(fx.res[0].error == HTTPC_ERR_TLS ||
                fx.res[0].error == HTTPC_ERR_TIMEOUT);
    assert_int_equal(fx.res[0].status, 0);
    assert_int_equal(fx.srv.accepted, 1);
    fx_cleanup(&fx);
}

/* ---- DNS -------------------------------------------------------------------- */

/* Answers A queries for "app.test" with 127.0.0.1; nothing else exists. */
static void dns_answer(struct evdns_server_request *req, void *arg)
{
    int *queries = arg;
    bool found = false;
    bool any = false;

    (*queries)++;
    for (int i = 0; i < req->nquestions; i++) {
        const struct evdns_server_question *q = req->questions[i];

        if (strcasecmp(q->name, "app.test") == 0) {
            found = true;
            if (q->type == EVDNS_TYPE_A) {
                uint32_t ip = htonl(INADDR_LOOPBACK);

                evdns_server_request_add_a_reply(req, q->name, 1, &ip, 60);
                any = true;
            }
        }
    }
    (void)any;
    evdns_server_request_respond(req, found ? 0 : DNS_ERR_NOTEXIST);
}

struct dns_fx {
    int fd;
    struct evdns_server_port *port;
    char conf[64];
    int queries;
};

static void dns_start(struct dns_fx *d, struct event_base *base)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    char text[64];
    int cfd;

    memset(d, 0, sizeof(*d));
    d->fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(bind(d->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(d->fd, (struct sockaddr *)&a, &len), 0);
    evutil_make_socket_nonblocking(d->fd);
    d->port = evdns_add_server_port_with_base(base, d->fd, 0, dns_answer,
                                              &d->queries);
    assert_non_null(d->port);
    strcpy(d->conf, "/tmp/handoff-test-resolv-XXXXXX");
    cfd = mkstemp(d->conf);
    assert_true(cfd >= 0);
    snprintf(text, sizeof(text), "nameserver 127.0.0.1:%d\n",
             ntohs(a.sin_port));
    assert_int_equal(write(cfd, text, strlen(text)), (ssize_t)strlen(text));
    close(cfd);
}

static void dns_stop(struct dns_fx *d)
{
    evdns_close_server_port(d->port);
    close(d->fd);
    unlink(d->conf);
}

static void body_dns(struct fx *fx)
{
    char url[128];
    struct srv *s = &fx->srv;

    snprintf(url, sizeof(url), "http://app.test:%d/a", s->port);
    fx_get(fx, url);
    fx_get(fx, url);
    snprintf(url, sizeof(url), "http://missing.test:%d/b", s->port);
    fx_get(fx, url);
}

static void test_httpc_resolves_names_and_reports_dns_errors(void **state)
{
    struct dns_fx d;
    struct httpc_config cfg = {0};
    struct fx fx;
    int base_queries;

    (void)state;
    fx_init(&fx, NULL);
    httpc_client_free(fx.client);
    dns_start(&d, fx.base);
    cfg.resolv_conf = d.conf;
    assert_int_equal(httpc_client_new(fx.base, &cfg, &fx.client), 0);
    srv_script(&fx.srv, SRV_RESPOND, HELLO_RESPONSE);
    fx_run(&fx, body_dns);
    assert_int_equal(fx.res[0].status, 200);
    assert_true(fx.res[0].timings_ns[HTTPC_T_BLOCKED] > 0);
    assert_int_equal(fx.res[1].status, 200);
    assert_int_equal(fx.res[2].error, HTTPC_ERR_DNS);
    assert_non_null(strstr(fx.res[2].error_text, "missing.test"));
    /* The second request used the cache (and the kept connection). */
    base_queries = d.queries;
    assert_true(base_queries >= 2);
    assert_true(fx.res[1].reused);
    assert_int_equal(stats_of(&fx, "GET /b")->errors[HTTPC_ERR_DNS], 1);
    fx_cleanup(&fx);
    dns_stop(&d);
}

/* ---- Timings, cancellation, metrics ---------------------------------------- */

static void test_httpc_timings_are_sane(void **state)
{
    struct fx fx;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND, HELLO_RESPONSE);
    fx_run(&fx, body_get_three);
    for (int i = 0; i < 3; i++) {
        const int64_t *t = fx.res[i].timings_ns;
        int64_t phases = 0;

        for (int k = 0; k < HTTPC_T_COUNT; k++) {
            assert_true(t[k] >= 0);
        }
        assert_int_equal(t[HTTPC_T_TLS_HANDSHAKING], 0);
        assert_int_equal(t[HTTPC_T_DURATION], t[HTTPC_T_SENDING] +
                                                  t[HTTPC_T_WAITING] +
                                                  t[HTTPC_T_RECEIVING]);
        assert_true(t[HTTPC_T_WAITING] > 0);
        for (int k = HTTPC_T_BLOCKED; k < HTTPC_T_COUNT; k++) {
            phases += t[k];
        }
        /* The phases lie within the call and, once the name's histograms
         * exist (the first request makes them), cover most of it. */
        assert_true(phases <= fx.res[i].wall_ns);
        if (i > 0 && phases * 2 < fx.res[i].wall_ns) {
            fail_msg("request %d: phases %lld ns of %lld ns", i,
                     (long long)phases, (long long)fx.res[i].wall_ns);
        }
    }
    fx_cleanup(&fx);
}

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fx *fx = arg;

    (void)fd;
    (void)what;
    httpc_conn_cancel(fx->conn);
}

static void test_httpc_cancel_ends_the_request_unrecorded(void **state)
{
    struct fx fx;
    struct event ev;
    struct timeval tv = {.tv_usec = 50000};

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_STALL, NULL);
    evtimer_assign(&ev, fx.base, on_cancel_timer, &fx);
    evtimer_add(&ev, &tv);
    fx_run(&fx, body_get_three);
    assert_int_equal(fx.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.res[i].error, HTTPC_ERR_CANCELLED);
    }
    assert_true(fx.res[0].wall_ns >= 40 * CLOCK_NS_PER_MS);
    /* Once cancelled, nothing is sent any more. */
    assert_int_equal(fx.srv.requests, 1);
    assert_null(stats_of(&fx, "GET /path"));
    fx_cleanup(&fx);
}

static void body_names(struct fx *fx)
{
    char url[128];

    for (int i = 0; i < 4; i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/users/%d?x=%d",
                 fx->srv.port, i, i);
        fx_get(fx, url);
    }
    for (int i = 0; i < 2; i++) {
        struct httpc_request req = {.url = url, .name = "user"};

        fx_request(fx, &req);
    }
}

static void test_httpc_metrics_are_kept_by_name(void **state)
{
    struct fx fx;
    const struct httpc_stats *s;
    const struct httpc_metrics *m;
    uint64_t sent = 0;

    (void)state;
    fx_init(&fx, NULL);
    srv_script(&fx.srv, SRV_RESPOND,
               "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    fx_run(&fx, body_names);
    m = httpc_client_metrics(fx.client);
    assert_int_equal(httpc_metrics_count(m), 5);
    assert_int_equal(httpc_metrics_folded(m), 0);
    s = stats_of(&fx, "GET /users/2");
    assert_non_null(s);
    assert_int_equal(s->requests, 1);
    assert_int_equal(s->failed, 1); /* 404 */
    assert_int_equal(s->status[404], 1);
    assert_int_equal(s->errors[HTTPC_ERR_NONE], 1);
    assert_int_equal(hist_count(s->timings[HTTPC_T_DURATION]), 1);
    assert_int_equal(hist_min(s->timings[HTTPC_T_WAITING]),
                     fx.res[2].timings_ns[HTTPC_T_WAITING]);
    s = stats_of(&fx, "user");
    assert_int_equal(s->requests, 2);
    for (int i = 4; i < 6; i++) {
        sent += fx.res[i].bytes_sent;
    }
    assert_int_equal(s->bytes_sent, sent);
    assert_int_equal(s->bytes_received,
                     2 * strlen("HTTP/1.1 404 Not Found\r\n"
                                "Content-Length: 0\r\n\r\n"));
    assert_string_equal(httpc_metrics_at(m, 0)->name, "GET /users/0");
    fx_cleanup(&fx);
}

static void test_httpc_metrics_fold_names_past_the_cap(void **state)
{
    struct httpc_config cfg = {.max_names = 3};
    struct fx fx;
    const struct httpc_metrics *m;
    struct httpc_metrics *total;

    (void)state;
    fx_init(&fx, &cfg);
    srv_script(&fx.srv, SRV_RESPOND, HELLO_RESPONSE);
    fx_run(&fx, body_names);
    m = httpc_client_metrics(fx.client);
    /* Two names, then "other" for the rest. */
    assert_int_equal(httpc_metrics_count(m), 3);
    assert_non_null(stats_of(&fx, "GET /users/0"));
    assert_non_null(stats_of(&fx, "GET /users/1"));
    assert_null(stats_of(&fx, "GET /users/2"));
    assert_int_equal(stats_of(&fx, HTTPC_OTHER_NAME)->requests, 4);
    assert_int_equal(httpc_metrics_folded(m), 4);
    assert_string_equal(fx.res[3].name, HTTPC_OTHER_NAME);

    /* Merging twice into a set with room keeps names apart and sums. */
    assert_int_equal(httpc_metrics_new(NULL, &total), 0);
    assert_int_equal(httpc_metrics_merge(total, m), 0);
    assert_int_equal(httpc_metrics_merge(total, m), 0);
    assert_int_equal(httpc_metrics_count(total), 3);
    assert_int_equal(httpc_metrics_find(total, "GET /users/0")->requests, 2);
    assert_int_equal(httpc_metrics_find(total, HTTPC_OTHER_NAME)->requests, 8);
    assert_int_equal(hist_count(httpc_metrics_find(total, HTTPC_OTHER_NAME)
                                    ->timings[HTTPC_T_DURATION]),
                     8);
    assert_int_equal(httpc_metrics_folded(total), 8);
    httpc_metrics_free(total);
    fx_cleanup(&fx);
}

static void test_httpc_config_is_checked(void **state)
{
    struct event_base *base = event_base_new();
    struct httpc_client *c = NULL;
    struct httpc_config bad1 = {.max_header_bytes = HTTPC_MAX_HEADER_LIMIT + 1};
    struct httpc_config bad2 = {.max_names = 1};
    struct httpc_config bad3 = {.hist = {.highest_value = -1}};

    (void)state;
    assert_int_equal(httpc_client_new(base, &bad1, &c), ST_INVALID);
    assert_int_equal(httpc_client_new(base, &bad2, &c), ST_INVALID);
    assert_int_equal(httpc_client_new(base, &bad3, &c), ST_INVALID);
    assert_int_equal(httpc_client_new(NULL, NULL, &c), ST_INVALID);
    assert_null(c);
    assert_string_equal(httpc_error_str(HTTPC_ERR_TIMEOUT), "timeout");
    assert_string_equal(httpc_timing_str(HTTPC_T_WAITING), "http_req_waiting");
    assert_string_equal(httpc_error_str(HTTPC_ERR_COUNT), "unknown");
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_httpc_get_reads_a_content_length_body),
        cmocka_unit_test(test_httpc_reuses_the_kept_alive_connection),
        cmocka_unit_test(test_httpc_reads_a_chunked_body),
        cmocka_unit_test(test_httpc_reads_a_body_ended_by_the_close),
        cmocka_unit_test(test_httpc_head_expects_no_body),
        cmocka_unit_test(test_httpc_skips_interim_responses),
        cmocka_unit_test(test_httpc_sends_headers_and_body),
        cmocka_unit_test(
            test_httpc_retries_once_when_a_kept_alive_connection_died),
        cmocka_unit_test(test_httpc_close_without_response_is_a_reset),
        cmocka_unit_test(test_httpc_close_mid_body_is_a_reset),
        cmocka_unit_test(test_httpc_stalled_server_times_out),
        cmocka_unit_test(test_httpc_refused_connection_is_a_connect_error),
        cmocka_unit_test(test_httpc_malformed_responses_are_parse_errors),
        cmocka_unit_test(test_httpc_caps_headers_and_bodies),
        cmocka_unit_test(test_httpc_refuses_bad_urls_methods_and_headers),
        cmocka_unit_test(test_httpc_https_to_a_plain_server_is_a_tls_error),
        cmocka_unit_test(test_httpc_resolves_names_and_reports_dns_errors),
        cmocka_unit_test(test_httpc_timings_are_sane),
        cmocka_unit_test(test_httpc_cancel_ends_the_request_unrecorded),
        cmocka_unit_test(test_httpc_metrics_are_kept_by_name),
        cmocka_unit_test(test_httpc_metrics_fold_names_past_the_cap),
        cmocka_unit_test(test_httpc_config_is_checked),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
