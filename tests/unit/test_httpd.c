/* The HTTP server: a server on 127.0.0.1 (port 0) in this process, its
 * loop on a thread, driven by raw sockets from the test thread so that
 * every byte on the wire is the test's choice (garbage, pipelining, a
 * client that stops reading). Loopback only. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "buf.h"
#include "clock.h"
#include "httpd.h"
#include "log.h"

#define MAX_BODY 65536
#define SSE_BUFFER_MAX (256 * 1024)

static struct {
    struct event_base *base;
    struct httpd *srv;
    pthread_t thread;
    uint16_t port;
} S;

/* Checks made on the loop thread, where cmocka's asserts (a longjmp to
 * the test thread) cannot run: failures are counted, and the test thread
 * asserts the count is 0. */
static atomic_int loop_failures;
#define LOOP_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed on the loop: %s\n", __FILE__, \
                    __LINE__, #cond);                                          \
            atomic_fetch_add(&loop_failures, 1);                               \
        }                                                                      \
    } while (0)

/* What handlers saw, for the test thread. */
static atomic_int slow_gone_done;
static atomic_int slow_gone_seen_gone;
static atomic_int slow_gone_reply_rc;
static atomic_int forever_closed;
static atomic_int forever_sends_after_close;
static atomic_int flood_closed;
static atomic_int flood_capped;
static atomic_long flood_bytes;
static atomic_int header_bad_rc;
static atomic_int header_bad_name_rc;

/* Handlers (loop thread). */

static void on_echo(struct httpd_req *req, void *arg)
{
    const char *x = httpd_req_header(req, "X-Test");
    const char *missing = httpd_req_query(req, "missing");
    json_t *o;

    (void)arg;
    o = json_pack(
        "{s:s?, s:s?, s:s?, s:s?, s:s?, s:o, s:s?, s:s, s:s, s:s}", "id",
        httpd_req_param(req, "id"), "name", httpd_req_param(req, "name"),
        "suite", httpd_req_query(req, "suite"), "flag",
        httpd_req_query(req, "flag"), "header", x, "missing",
        missing ? json_string(missing) : json_null(), "rest",
        httpd_req_param(req, "path"), "method", httpd_req_method(req), "peer",
        httpd_req_peer(req, NULL), "path", httpd_req_path(req));
    LOOP_CHECK(o != NULL);
    httpd_reply_json_value(req, 200, o);
    json_decref(o);
}

static void on_list(struct httpd_req *req, void *arg)
{
    static const char body[] = "{\"runs\":[]}";

    (void)arg;
    httpd_reply_json(req, 200, body, sizeof(body) - 1);
}

static void on_stats(struct httpd_req *req, void *arg)
{
    (void)arg;
    httpd_reply_text(req, 200, "text/plain", "stats", 5);
}

static void on_create(struct httpd_req *req, void *arg)
{
    size_t len;
    const char *body = httpd_req_body(req, &len);
    json_error_t err;
    json_t *o = json_loadb(body, len, 0, &err);

    (void)arg;
    if (!o || !json_is_object(o)) {
        json_decref(o);
        httpd_reply_error(req, 400, "malformed_json",
                          "the body is not a JSON object: \"%.12s\"\n(%s)",
                          body, o ? "not an object" : err.text);
        return;
    }
    LOOP_CHECK(httpd_reply_header(req, "Location", "/api/v1/runs/1") == 0);
    httpd_reply_json_value(req, 201, o);
    json_decref(o);
}

static void on_headers(struct httpd_req *req, void *arg)
{
    (void)arg;
    atomic_store(&header_bad_rc,
                 httpd_reply_header(req, "X-Bad", "a\r\nInjected: yes"));
    atomic_store(&header_bad_name_rc, httpd_reply_header(req, "Bad Name", "x"));
    LOOP_CHECK(httpd_reply_header(req, "X-Good", "yes") == 0);
    httpd_reply_text(req, 204, NULL, NULL, 0);
}

static void on_html(struct httpd_req *req, void *arg)
{
    bool html = httpd_req_wants_html(req);

    (void)arg;
    httpd_reply_text(req, 200, html ? "text/html; charset=utf-8" : "text/plain",
                     html ? "html" : "json", 4);
}

/* A reply made from a timer, after the handler returned. */
struct later {
    struct httpd_req *req;
    struct event *ev;
    bool check_gone;
};

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    struct later *l = arg;
    static const char body[] = "{\"slow\":true}";
    int rc;

    (void)fd;
    (void)what;
    if (l->check_gone) {
        atomic_store(&slow_gone_seen_gone, httpd_req_is_gone(l->req));
        /* Accessors stay usable on a gone request. */
        LOOP_CHECK(strcmp(httpd_req_path(l->req), "/slow-gone") == 0);
        LOOP_CHECK(httpd_req_header(l->req, "Host") == NULL);
    }
    rc = httpd_reply_json(l->req, 200, body, sizeof(body) - 1);
    if (l->check_gone) {
        atomic_store(&slow_gone_reply_rc, rc);
        atomic_store(&slow_gone_done, 1);
    }
    event_free(l->ev);
    free(l);
}

static void reply_later(struct httpd_req *req, int ms, bool check_gone)
{
    struct later *l = calloc(1, sizeof(*l));
    struct timeval tv = {0, ms * 1000};

    l->req = req;
    l->check_gone = check_gone;
    l->ev = evtimer_new(S.base, on_later, l);
    evtimer_add(l->ev, &tv);
}

static void on_slow(struct httpd_req *req, void *arg)
{
    (void)arg;
    reply_later(req, 50, false);
}

static void on_slow_gone(struct httpd_req *req, void *arg)
{
    (void)arg;
    reply_later(req, 300, true);
}

/* Streams. */
struct stream {
    struct httpd_sse *sse;
    struct event *ev;
    int step;
};

static void stream_free(struct stream *st)
{
    if (st->ev) {
        event_free(st->ev);
    }
    free(st);
}

static void on_events_step(evutil_socket_t fd, short what, void *arg)
{
    struct stream *st = arg;
    static const char two[] = "two\nlines\r\nthree";

    (void)fd;
    (void)what;
    LOOP_CHECK(httpd_sse_send(st->sse, "b", NULL, two, sizeof(two) - 1) == 0);
    LOOP_CHECK(httpd_sse_comment(st->sse, "keep-alive") == 0);
    LOOP_CHECK(httpd_sse_send(st->sse, NULL, NULL, "", 0) == 0);
    LOOP_CHECK(httpd_sse_send(st->sse, NULL, "3", "last", 4) == 0);
    LOOP_CHECK(httpd_sse_send(st->sse, "bad\nname", NULL, "x", 1) ==
               ST_INVALID);
    httpd_sse_end(st->sse);
    stream_free(st);
}

static void on_events_close(struct httpd_sse *sse, void *arg)
{
    (void)sse;
    (void)arg;
    LOOP_CHECK(!"the client of /events went away");
}

static void on_events(struct httpd_req *req, void *arg)
{
    struct stream *st = calloc(1, sizeof(*st));
    struct timeval tv = {0, 20000};

    (void)arg;
    st->sse = httpd_sse_start(req, on_events_close, st);
    LOOP_CHECK(st->sse != NULL);
    LOOP_CHECK(httpd_sse_send(st->sse, "a", "1", "one", 3) == 0);
    st->ev = evtimer_new(S.base, on_events_step, st);
    evtimer_add(st->ev, &tv);
}

static void on_forever_tick(evutil_socket_t fd, short what, void *arg)
{
    struct stream *st = arg;
    char data[32];

    (void)fd;
    (void)what;
    snprintf(data, sizeof(data), "{\"tick\":%d}", st->step++);
    if (httpd_sse_send(st->sse, "tick", NULL, data, strlen(data)) != 0) {
        atomic_fetch_add(&forever_sends_after_close, 1);
    }
}

static void on_forever_close(struct httpd_sse *sse, void *arg)
{
    struct stream *st = arg;

    atomic_fetch_add(&forever_closed, 1);
    LOOP_CHECK(!httpd_sse_is_open(sse));
    LOOP_CHECK(httpd_sse_send(sse, "x", NULL, "y", 1) == ST_IO);
    httpd_sse_end(sse); /* allowed inside on_close */
    stream_free(st);
}

static void on_forever(struct httpd_req *req, void *arg)
{
    struct stream *st = calloc(1, sizeof(*st));
    struct timeval tv = {0, 10000};

    (void)arg;
    st->sse = httpd_sse_start(req, on_forever_close, st);
    LOOP_CHECK(st->sse != NULL);
    st->ev = event_new(S.base, -1, EV_PERSIST, on_forever_tick, st);
    event_add(st->ev, &tv);
}

static void on_flood_tick(evutil_socket_t fd, short what, void *arg)
{
    struct stream *st = arg;
    static char data[16384];

    (void)fd;
    (void)what;
    if (!data[0]) {
        memset(data, 'z', sizeof(data));
    }
    for (int i = 0; i < 8 && !atomic_load(&flood_capped); i++) {
        int rc = httpd_sse_send(st->sse, "flood", NULL, data, sizeof(data));

        if (rc == ST_IO) {
            atomic_store(&flood_capped, 1);
        } else {
            LOOP_CHECK(rc == 0);
            atomic_fetch_add(&flood_bytes, (long)sizeof(data));
        }
    }
}

static void on_flood_close(struct httpd_sse *sse, void *arg)
{
    struct stream *st = arg;

    (void)sse;
    atomic_fetch_add(&flood_closed, 1);
    httpd_sse_end(st->sse);
    stream_free(st);
}

static void on_flood(struct httpd_req *req, void *arg)
{
    struct stream *st = calloc(1, sizeof(*st));
    struct timeval tv = {0, 1000};

    (void)arg;
    st->sse = httpd_sse_start(req, on_flood_close, st);
    LOOP_CHECK(st->sse != NULL);
    st->ev = event_new(S.base, -1, EV_PERSIST, on_flood_tick, st);
    event_add(st->ev, &tv);
}

/* The server. */

static void *loop_main(void *arg)
{
    (void)arg;
    event_base_loop(S.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int server_start(void **state)
{
    static const struct {
        const char *method;
        const char *pattern;
        void (*fn)(struct httpd_req *, void *);
    } routes[] = {
        {"GET", "/api/v1/runs", on_list},
        {"POST", "/api/v1/runs", on_create},
        {"GET", "/api/v1/runs/{id}/tests/{name}", on_echo},
        {"GET", "/runs/{id}", on_echo},
        {"GET", "/runs/stats", on_stats},
        {"GET", "/files/{path...}", on_echo},
        {"GET", "/headers", on_headers},
        {"GET", "/html", on_html},
        {"GET", "/slow", on_slow},
        {"GET", "/slow-gone", on_slow_gone},
        {"GET", "/events", on_events},
        {"GET", "/events-forever", on_forever},
        {"GET", "/events-flood", on_flood},
    };

    (void)state;
    if (evthread_use_pthreads() != 0) {
        return -1;
    }
    S.base = event_base_new();
    if (httpd_new(S.base, "127.0.0.1:0", MAX_BODY, &S.srv) != 0) {
        return -1;
    }
    httpd_set_sse_buffer_max(S.srv, SSE_BUFFER_MAX);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (httpd_route(S.srv, routes[i].method, routes[i].pattern,
                        routes[i].fn, NULL) != 0) {
            return -1;
        }
    }
    S.port = httpd_port(S.srv);
    return pthread_create(&S.thread, NULL, loop_main, NULL);
}

/* Each test ends with the loop's checks. */
static int loop_checked(void **state)
{
    (void)state;
    return atomic_load(&loop_failures) == 0 ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    event_base_loopbreak(S.base);
    pthread_join(S.thread, NULL);
    httpd_free(S.srv);
    event_base_free(S.base);
    libevent_global_shutdown();
    return 0;
}

/* A blocking client. */

struct conn {
    int fd;
    struct buf in;
};

struct response {
    int status;
    char *head; /* status line and headers */
    char *body;
    size_t body_len;
};

static void conn_open_port(struct conn *c, uint16_t port, int rcvbuf)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    if (rcvbuf) {
        assert_int_equal(
            setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)),
            0);
    }
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    buf_init(&c->in, 0);
    buf_adds(&c->in, "");
}

static void conn_open(struct conn *c)
{
    conn_open_port(c, S.port, 0);
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    buf_cleanup(&c->in);
}

/* Sends all of data; returns false if the server closed on us. */
static bool conn_send(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

        if (n <= 0) {
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static bool conn_sends(struct conn *c, const char *s)
{
    return conn_send(c, s, strlen(s));
}

/* Reads more; returns false on EOF, reset or timeout. */
static bool conn_fill(struct conn *c)
{
    char chunk[16384];
    ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);

    if (n <= 0) {
        return false;
    }
    buf_add(&c->in, chunk, (size_t)n);
    return true;
}

/* Waits for s in the input; returns its offset or -1 at EOF. */
static long conn_wait_for(struct conn *c, const char *s)
{
    for (;;) {
        const char *p = strstr(buf_str(&c->in), s);

        if (p) {
            return p - c->in.data;
        }
        if (!conn_fill(c)) {
            return -1;
        }
    }
}

static bool conn_wait_bytes(struct conn *c, size_t n)
{
    while (c->in.len < n) {
        if (!conn_fill(c)) {
            return false;
        }
    }
    return true;
}

static const char *header_of(const struct response *r, const char *name,
                             char *out, size_t outlen)
{
    size_t n = strlen(name);

    for (const char *p = strstr(r->head, "\r\n"); p && p[2];
         p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 2 + n + 1;
            const char *end = strstr(v, "\r\n");

            while (*v == ' ') {
                v++;
            }
            snprintf(out, outlen, "%.*s", (int)(end - v), v);
            return out;
        }
    }
    return NULL;
}

static void response_free(struct response *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Reads one response; returns false if the connection ended first. */
static bool conn_response(struct conn *c, struct response *r, bool head_req)
{
    char v[64];
    long eoh;
    struct buf body;

    memset(r, 0, sizeof(*r));
    eoh = conn_wait_for(c, "\r\n\r\n");
    if (eoh < 0) {
        return false;
    }
    r->head = strndup(c->in.data, (size_t)eoh + 2);
    buf_consume(&c->in, (size_t)eoh + 4);
    assert_int_equal(strncmp(r->head, "HTTP/1.1 ", 9), 0);
    r->status = atoi(r->head + 9);
    buf_init(&body, 0);
    buf_adds(&body, "");
    if (head_req || r->status == 204) {
        /* no body */
    } else if (header_of(r, "Transfer-Encoding", v, sizeof(v))) {
        assert_string_equal(v, "chunked");
        for (;;) {
            long eol = conn_wait_for(c, "\r\n");
            size_t size;

            assert_true(eol >= 0);
            size = strtoul(c->in.data, NULL, 16);
            buf_consume(&c->in, (size_t)eol + 2);
            assert_true(conn_wait_bytes(c, size + 2));
            buf_add(&body, c->in.data, size);
            buf_consume(&c->in, size + 2);
            if (size == 0) {
                break;
            }
        }
    } else if (header_of(r, "Content-Length", v, sizeof(v))) {
        size_t size = strtoul(v, NULL, 10);

        assert_true(conn_wait_bytes(c, size));
        buf_add(&body, c->in.data, size);
        buf_consume(&c->in, size);
    } else {
        while (conn_fill(c)) {
        }
        buf_add(&body, c->in.data, c->in.len);
        buf_reset(&c->in);
    }
    r->body_len = body.len;
    r->body = buf_detach(&body);
    return true;
}

/* One request on a new connection. */
static void request(const char *method, const char *target, const char *headers,
                    const char *body, struct response *r)
{
    struct conn c;
    struct buf req;

    buf_init(&req, 0);
    buf_addf(&req, "%s %s HTTP/1.1\r\nHost: test\r\n%s", method, target,
             headers ? headers : "");
    if (body) {
        buf_addf(&req, "Content-Length: %zu\r\n", strlen(body));
    }
    buf_adds(&req, "\r\n");
    if (body) {
        buf_adds(&req, body);
    }
    conn_open(&c);
    assert_true(conn_send(&c, req.data, req.len));
    assert_true(conn_response(&c, r, strcmp(method, "HEAD") == 0));
    conn_close(&c);
    buf_cleanup(&req);
}

static void get(const char *target, struct response *r)
{
    request("GET", target, NULL, NULL, r);
}

/* Polls flag until it reaches want or 10 s pass. */
static bool wait_until(atomic_int *flag, int want)
{
    int64_t deadline = clock_mono_ns() + 10 * CLOCK_NS_PER_S;

    while (atomic_load(flag) < want) {
        struct timespec ts = {0, 5000000};

        if (clock_mono_ns() > deadline) {
            return false;
        }
        nanosleep(&ts, NULL);
    }
    return true;
}

static const char *json_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Tests. */

static void test_httpd_routes_and_decodes_path_and_query(void **state)
{
    struct response r;
    json_t *o;
    char v[64];

    (void)state;
    request("GET",
            "/api/v1/runs/42/tests/test%2Fa%20b%25%E2%9C%93+"
            "?suite=x%20y+z&flag&suite=second&e=",
            "X-Test: hello\r\n", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_of(&r, "Content-Type", v, sizeof(v)),
                        "application/json");
    o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_str(o, "id"), "42");
    assert_string_equal(json_str(o, "name"), "test/a b%\xe2\x9c\x93+");
    assert_string_equal(json_str(o, "suite"), "x y z");
    assert_string_equal(json_str(o, "flag"), "");
    assert_true(json_is_null(json_object_get(o, "missing")));
    assert_string_equal(json_str(o, "header"), "hello");
    assert_string_equal(json_str(o, "method"), "GET");
    assert_string_equal(json_str(o, "peer"), "127.0.0.1");
    assert_string_equal(json_str(o, "path"),
                        "/api/v1/runs/42/tests/test%2Fa%20b%25%E2%9C%93+");
    json_decref(o);
    response_free(&r);

    /* Literal segments beat {name}. */
    get("/runs/stats", &r);
    assert_string_equal(r.body, "stats");
    response_free(&r);
    get("/runs/7", &r);
    assert_non_null(strstr(r.body, "\"id\":\"7\""));
    response_free(&r);

    /* {path...} takes the rest, slashes and all, possibly nothing. */
    get("/files/a/b%20c/", &r);
    o = json_loads(r.body, 0, NULL);
    assert_string_equal(json_str(o, "rest"), "a/b c/");
    json_decref(o);
    response_free(&r);
    get("/files", &r);
    o = json_loads(r.body, 0, NULL);
    assert_string_equal(json_str(o, "rest"), "");
    json_decref(o);
    response_free(&r);

    /* An empty segment is no {name}. */
    get("/runs/", &r);
    assert_int_equal(r.status, 404);
    response_free(&r);
}

static void test_httpd_refuses_bad_percent_encoding(void **state)
{
    static const char *const targets[] = {
        "/api/v1/runs/%zz/tests/x",
        "/api/v1/runs/%00/tests/x",
        "/api/v1/runs/1/tests/%4",
        "/api/v1/runs?suite=%g1",
    };
    struct response r;

    (void)state;
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        get(targets[i], &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "{\"error\":{\"code\":\"bad_request\""));
        response_free(&r);
    }
}

static void test_httpd_answers_404_as_json(void **state)
{
    struct response r;
    char v[64];

    (void)state;
    get("/nope", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(header_of(&r, "Content-Type", v, sizeof(v)),
                        "application/json");
    assert_string_equal(r.body, "{\"error\":{\"code\":\"not_found\","
                                "\"message\":\"no such resource: /nope\"}}");
    response_free(&r);
}

static void test_httpd_answers_405_with_allow(void **state)
{
    struct response r;
    char v[64];

    (void)state;
    request("DELETE", "/api/v1/runs", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header_of(&r, "Allow", v, sizeof(v)),
                        "GET, HEAD, POST");
    assert_string_equal(r.body,
                        "{\"error\":{\"code\":\"method_not_allowed\","
                        "\"message\":\"DELETE is not allowed on /api/v1/runs "
                        "(allowed: GET, HEAD, POST)\"}}");
    response_free(&r);

    request("POST", "/runs/7", NULL, "{}", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header_of(&r, "Allow", v, sizeof(v)), "GET, HEAD");
    response_free(&r);

    /* HEAD is served by the GET route, without a body. */
    request("HEAD", "/api/v1/runs", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_of(&r, "Content-Length", v, sizeof(v)), "11");
    response_free(&r);
}

static void test_httpd_answers_413_as_json(void **state)
{
    struct conn c;
    struct response r;
    char *big = malloc(MAX_BODY * 2);
    char head[256];
    char v[64];

    (void)state;
    memset(big, ' ', MAX_BODY * 2);
    snprintf(head, sizeof(head),
             "POST /api/v1/runs HTTP/1.1\r\nHost: t\r\n"
             "Content-Length: %d\r\n\r\n",
             MAX_BODY * 2);
    conn_open(&c);
    assert_true(conn_sends(&c, head));
    assert_true(conn_send(&c, big, MAX_BODY * 2));
    assert_true(conn_response(&c, &r, false));
    assert_int_equal(r.status, 413);
    assert_string_equal(header_of(&r, "Content-Type", v, sizeof(v)),
                        "application/json");
    assert_string_equal(r.body, "{\"error\":{\"code\":\"body_too_large\","
                                "\"message\":\"request body over the limit "
                                "of 65536 bytes\"}}");
    response_free(&r);
    conn_close(&c);

    /* A body at the limit is fine (and then not valid JSON). */
    big[MAX_BODY] = '\0';
    big[0] = '[';
    request("POST", "/api/v1/runs", NULL, big, &r);
    assert_int_equal(r.status, 400);
    response_free(&r);
    free(big);
}

static void test_httpd_handler_reports_malformed_json(void **state)
{
    struct response r;
    json_t *o;

    (void)state;
    request("POST", "/api/v1/runs", NULL, "{\"suite\": ", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "{\"error\":{\"code\":\"malformed_json\","
                                   "\"message\":\"the body is not a JSON "
                                   "object: \\\"{\\\"suite\\\": \\\"\\n("));
    o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 1);
    assert_int_equal(json_object_size(json_object_get(o, "error")), 2);
    json_decref(o);
    response_free(&r);

    request("POST", "/api/v1/runs", NULL, "{\"suite\":\"selftest\"}", &r);
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.head, "\r\nLocation: /api/v1/runs/1\r\n"));
    assert_string_equal(r.body, "{\"suite\":\"selftest\"}");
    response_free(&r);
}

static void test_httpd_accepts_a_chunked_body(void **state)
{
    struct conn c;
    struct response r;

    (void)state;
    conn_open(&c);
    assert_true(conn_sends(&c, "POST /api/v1/runs HTTP/1.1\r\nHost: t\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"
                               "5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n"));
    assert_true(conn_response(&c, &r, false));
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "{\"a\":1}");
    response_free(&r);
    conn_close(&c);
}

static void test_httpd_reply_headers_refuse_injection(void **state)
{
    struct response r;

    (void)state;
    get("/headers", &r);
    assert_int_equal(r.status, 204);
    assert_non_null(strstr(r.head, "\r\nX-Good: yes\r\n"));
    assert_null(strstr(r.head, "Injected"));
    assert_null(strstr(r.head, "X-Bad"));
    assert_int_equal(atomic_load(&header_bad_rc), ST_INVALID);
    assert_int_equal(atomic_load(&header_bad_name_rc), ST_INVALID);
    response_free(&r);
}

static void test_httpd_negotiates_html(void **state)
{
    static const struct {
        const char *accept;
        const char *want;
    } cases[] = {
        {"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n", "html"},
        {"Accept: application/json\r\n", "json"},
        {"Accept: */*\r\n", "json"},
        {"Accept: text/html;q=0, application/json\r\n", "json"},
        {"Accept: application/json, TEXT/HTML ; level=1; q=0.5\r\n", "html"},
        {"", "json"},
    };
    struct response r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        request("GET", "/html", cases[i].accept, NULL, &r);
        assert_string_equal(r.body, cases[i].want);
        response_free(&r);
    }
}

static void test_httpd_replies_after_the_handler_returns(void **state)
{
    struct response r;
    int64_t start = clock_mono_ns();

    (void)state;
    get("/slow", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"slow\":true}");
    /* libevent's timers run on CLOCK_MONOTONIC_COARSE (4 ms ticks here):
     * allow for one tick against our precise clock. */
    assert_true(clock_mono_ns() - start >= 45 * CLOCK_NS_PER_MS);
    response_free(&r);
}

static void test_httpd_drops_a_reply_to_a_client_gone(void **state)
{
    struct conn c;

    (void)state;
    conn_open(&c);
    assert_true(conn_sends(&c, "GET /slow-gone HTTP/1.1\r\nHost: t\r\n\r\n"));
    /* Give the server time to run the handler, then go away. */
    {
        struct timespec ts = {0, 50000000};

        nanosleep(&ts, NULL);
    }
    conn_close(&c);
    assert_true(wait_until(&slow_gone_done, 1));
    assert_int_equal(atomic_load(&slow_gone_seen_gone), 1);
    assert_int_equal(atomic_load(&slow_gone_reply_rc), ST_IO);
}

static void test_httpd_keeps_connections_alive_and_pipelined(void **state)
{
    struct conn c;
    struct response r;

    (void)state;
    conn_open(&c);
    for (int i = 0; i < 3; i++) {
        assert_true(conn_sends(&c, "GET /api/v1/runs HTTP/1.1\r\nHost: t\r\n"
                                   "\r\n"));
        assert_true(conn_response(&c, &r, false));
        assert_int_equal(r.status, 200);
        response_free(&r);
    }
    /* Pipelined, the first one answered after its handler returned: the
     * second arrives while the first waits. */
    assert_true(conn_sends(&c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /runs/stats HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(conn_response(&c, &r, false));
    assert_string_equal(r.body, "{\"slow\":true}");
    response_free(&r);
    assert_true(conn_response(&c, &r, false));
    assert_string_equal(r.body, "stats");
    response_free(&r);
    assert_true(conn_response(&c, &r, false));
    assert_int_equal(r.status, 404);
    response_free(&r);
    /* And once more after a pause while the first one waits. */
    assert_true(conn_sends(&c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
    {
        struct timespec ts = {0, 10000000};

        nanosleep(&ts, NULL);
    }
    assert_true(conn_sends(&c, "GET /runs/stats HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(conn_response(&c, &r, false));
    assert_string_equal(r.body, "{\"slow\":true}");
    response_free(&r);
    assert_true(conn_response(&c, &r, false));
    assert_string_equal(r.body, "stats");
    response_free(&r);
    conn_close(&c);
}

static void test_httpd_streams_events_then_ends(void **state)
{
    struct response r;
    char v[64];

    (void)state;
    get("/events", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_of(&r, "Content-Type", v, sizeof(v)),
                        "text/event-stream");
    assert_string_equal(header_of(&r, "Cache-Control", v, sizeof(v)),
                        "no-cache");
    assert_string_equal(r.body, "event: a\nid: 1\ndata: one\n\n"
                                "event: b\ndata: two\ndata: lines\n"
                                "data: three\n\n"
                                ": keep-alive\n\n"
                                "data: \n\n"
                                "id: 3\ndata: last\n\n");
    response_free(&r);
}

static void test_httpd_sse_client_leaving_calls_on_close_once(void **state)
{
    struct conn c;
    struct response r;
    struct timespec ts = {0, 100000000};

    (void)state;
    conn_open(&c);
    assert_true(conn_sends(&c, "GET /events-forever HTTP/1.1\r\nHost: t\r\n"
                               "\r\n"));
    assert_true(conn_wait_for(&c, "{\"tick\":2}") > 0);
    conn_close(&c);
    assert_true(wait_until(&forever_closed, 1));
    /* Some more loop turns: still once, and no send after it. */
    nanosleep(&ts, NULL);
    get("/api/v1/runs", &r);
    response_free(&r);
    assert_int_equal(atomic_load(&forever_closed), 1);
    assert_int_equal(atomic_load(&forever_sends_after_close), 0);
}

static void test_httpd_closes_a_stream_its_client_does_not_read(void **state)
{
    struct conn c;

    (void)state;
    /* A small receive buffer so that the kernel holds little for it. */
    conn_open_port(&c, S.port, 4096);
    assert_true(conn_sends(&c, "GET /events-flood HTTP/1.1\r\nHost: t\r\n"
                               "\r\n"));
    assert_true(wait_until(&flood_closed, 1));
    assert_int_equal(atomic_load(&flood_capped), 1);
    /* It was closed when an event no longer fitted its buffer: what it
     * accepted is that buffer, less one event, plus what the kernel took;
     * not without bound. */
    assert_true(atomic_load(&flood_bytes) > SSE_BUFFER_MAX - 2 * 16384);
    assert_true(atomic_load(&flood_bytes) < 64L * 1024 * 1024);
    /* The stream is cut: reading ends without the terminating chunk. */
    while (conn_fill(&c)) {
        if (c.in.len > 1 << 20) {
            buf_reset(&c.in);
        }
    }
    conn_close(&c);
    assert_int_equal(atomic_load(&flood_closed), 1);
}

/* Sends junk and reads the answer: a JSON error with want_status. A client
 * still sending when the server refuses it may see a reset instead, so
 * for junk over the limits (may_reset) no answer is also fine. */
static void send_junk(const char *junk, size_t len, int want_status,
                      bool may_reset)
{
    struct conn c;
    struct response r;
    bool answered;

    conn_open(&c);
    answered = conn_send(&c, junk, len) && conn_response(&c, &r, false);
    if (!answered) {
        assert_true(may_reset);
    } else {
        assert_int_equal(r.status, want_status);
        assert_non_null(strstr(r.head, "\r\nContent-Type: application/json"));
        assert_non_null(strstr(r.head, "\r\nConnection: close"));
        assert_int_equal(strncmp(r.body, "{\"error\":{\"code\":\"", 18), 0);
        response_free(&r);
    }
    conn_close(&c);
}

static void test_httpd_survives_garbage_and_huge_headers(void **state)
{
#define JUNK(s, status)                                                        \
    {                                                                          \
        s, sizeof(s) - 1, status                                               \
    }
    static const struct {
        const char *data;
        size_t len;
        int status;
    } junk[] = {
        JUNK("GARBAGE\r\n\r\n", 400),
        JUNK("GET / HTTP/9.9\r\n\r\n", 400),
        JUNK("GET /api/v1/runs HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        JUNK("GET /api/v1/runs HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        /* evhttp takes a malformed chunk for a body over the limit */
        JUNK("POST /api/v1/runs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
             "\r\nzz\r\n",
             413),
        JUNK("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        JUNK(" \r\n\r\n", 400),
        JUNK("GET /\0x HTTP/1.1\r\n\r\n", 400),
        JUNK("FOO /api/v1/runs HTTP/1.1\r\n\r\n", 501),
    };
#undef JUNK
    struct response r;
    size_t big_len = 300 * 1024;
    char *big = malloc(big_len + 64);

    (void)state;
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        send_junk(junk[i].data, junk[i].len, junk[i].status, false);
    }

    /* A header over the limit, and a request line over it. */
    memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memset(big + 23, 'a', big_len);
    memcpy(big + 23 + big_len, "\r\n\r\n", 4);
    send_junk(big, 23 + big_len + 4, 400, true);
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', big_len);
    memcpy(big + 5 + big_len, " HTTP/1.1\r\n\r\n", 13);
    send_junk(big, 5 + big_len + 13, 400, true);
    free(big);

    get("/api/v1/runs", &r);
    assert_int_equal(r.status, 200);
    response_free(&r);
}

static void noop_handler(struct httpd_req *req, void *arg)
{
    (void)arg;
    httpd_reply_text(req, 200, NULL, NULL, 0);
}

static void test_httpd_refuses_bad_addresses_and_routes(void **state)
{
    static const char *const bad[] = {
        "nonsense",     "127.0.0.1",    "127.0.0.1:99999", "127.0.0.1:",
        "[::1",         "[::1]80",      "::1:80",          "",
        "256.1.1.1:80", "127.0.0.1:8x", "example.com:80",
    };
    struct event_base *base = event_base_new();
    struct httpd *srv = NULL;
    char taken[32];

    (void)state;
    log_setup("test_httpd", LOG_OFF);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(httpd_new(base, bad[i], MAX_BODY, &srv), ST_INVALID);
    }
    assert_int_equal(httpd_new(base, NULL, MAX_BODY, &srv), ST_INVALID);
    assert_int_equal(httpd_new(base, "127.0.0.1:0", 0, &srv), ST_INVALID);
    snprintf(taken, sizeof(taken), "127.0.0.1:%u", (unsigned)S.port);
    assert_int_equal(httpd_new(base, taken, MAX_BODY, &srv), ST_IO);
    assert_null(srv);

    assert_int_equal(httpd_new(base, "[::1]:0", MAX_BODY, &srv) == 0 ||
                         httpd_new(base, ":0", MAX_BODY, &srv) == 0,
                     true);
    assert_int_equal(httpd_route(srv, "GETS", "/a", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(httpd_route(srv, "TRACE", "/a", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "a", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "/a/{x}/{x}", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "/a/{}", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "/a/{x-y}", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "/a/{x", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "/a/b{x}", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "/a/%20", noop_handler, NULL),
                     ST_INVALID);
    assert_int_equal(
        httpd_route(srv, "GET", "/a/{rest...}/b", noop_handler, NULL),
        ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "/a/{x}", NULL, NULL), ST_INVALID);
    assert_int_equal(httpd_route(srv, "GET", "/a/{x}", noop_handler, NULL), 0);
    assert_int_equal(httpd_route(srv, "GET", "/a/{y}", noop_handler, NULL),
                     ST_CONFLICT);
    assert_int_equal(httpd_route(srv, "POST", "/a/{y}", noop_handler, NULL), 0);
    assert_int_equal(httpd_route(srv, "GET", "/a/b", noop_handler, NULL), 0);
    log_setup("test_httpd", LOG_INFO);
    httpd_free(srv);
    httpd_free(NULL);
    event_base_free(base);
}

/* httpd_free with a request waiting for its reply and an open stream; all
 * on this thread with a loop of its own. */
static struct httpd_req *held_req;
static struct httpd_sse *held_sse;
static int held_closed;

static void on_hold(struct httpd_req *req, void *arg)
{
    (void)arg;
    held_req = req;
}

static void on_held_close(struct httpd_sse *sse, void *arg)
{
    (void)arg;
    assert_ptr_equal(sse, held_sse);
    held_closed++;
}

static void on_hold_stream(struct httpd_req *req, void *arg)
{
    (void)arg;
    held_sse = httpd_sse_start(req, on_held_close, NULL);
    assert_non_null(held_sse);
}

static void test_httpd_free_ends_waiting_requests_and_streams(void **state)
{
    struct event_base *base = event_base_new();
    struct httpd *srv;
    struct conn a;
    struct conn b;
    int64_t deadline = clock_mono_ns() + 5 * CLOCK_NS_PER_S;

    (void)state;
    assert_int_equal(httpd_new(base, "127.0.0.1:0", MAX_BODY, &srv), 0);
    assert_int_equal(httpd_route(srv, "GET", "/hold", on_hold, NULL), 0);
    assert_int_equal(
        httpd_route(srv, "GET", "/hold-stream", on_hold_stream, NULL), 0);
    conn_open_port(&a, httpd_port(srv), 0);
    conn_open_port(&b, httpd_port(srv), 0);
    assert_true(conn_sends(&a, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(conn_sends(&b, "GET /hold-stream HTTP/1.1\r\nHost: t\r\n\r\n"));
    while ((!held_req || !held_sse) && clock_mono_ns() < deadline) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    assert_non_null(held_req);
    assert_non_null(held_sse);
    assert_false(httpd_req_is_gone(held_req));
    assert_int_equal(httpd_sse_send(held_sse, NULL, NULL, "x", 1), 0);

    httpd_free(srv);
    assert_int_equal(held_closed, 1);
    assert_true(httpd_req_is_gone(held_req));
    assert_int_equal(httpd_sse_send(held_sse, NULL, NULL, "x", 1), ST_IO);
    assert_int_equal(httpd_reply_json(held_req, 200, "{}", 2), ST_IO);
    httpd_sse_end(held_sse);
    assert_int_equal(held_closed, 1);
    /* Both clients see their connection end. */
    while (conn_fill(&a)) {
    }
    while (conn_fill(&b)) {
    }
    conn_close(&a);
    conn_close(&b);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_httpd_routes_and_decodes_path_and_query,
                                  loop_checked),
        cmocka_unit_test_teardown(test_httpd_refuses_bad_percent_encoding,
                                  loop_checked),
        cmocka_unit_test_teardown(test_httpd_answers_404_as_json, loop_checked),
        cmocka_unit_test_teardown(test_httpd_answers_405_with_allow,
                                  loop_checked),
        cmocka_unit_test_teardown(test_httpd_answers_413_as_json, loop_checked),
        cmocka_unit_test_teardown(test_httpd_handler_reports_malformed_json,
                                  loop_checked),
        cmocka_unit_test_teardown(test_httpd_accepts_a_chunked_body,
                                  loop_checked),
        cmocka_unit_test_teardown(test_httpd_reply_headers_refuse_injection,
                                  loop_checked),
        cmocka_unit_test_teardown(test_httpd_negotiates_html, loop_checked),
        cmocka_unit_test_teardown(test_httpd_replies_after_the_handler_returns,
                                  loop_checked),
        cmocka_unit_test_teardown(test_httpd_drops_a_reply_to_a_client_gone,
                                  loop_checked),
        cmocka_unit_test_teardown(
            test_httpd_keeps_connections_alive_and_pipelined, loop_checked),
        cmocka_unit_test_teardown(test_httpd_streams_events_then_ends,
                                  loop_checked),
        cmocka_unit_test_teardown(
            test_httpd_sse_client_leaving_calls_on_close_once, loop_checked),
        cmocka_unit_test_teardown(
            test_httpd_closes_a_stream_its_client_does_not_read, loop_checked),
        cmocka_unit_test_teardown(test_httpd_survives_garbage_and_huge_headers,
                                  loop_checked),
        cmocka_unit_test_teardown(test_httpd_refuses_bad_addresses_and_routes,
                                  loop_checked),
        cmocka_unit_test_teardown(
            test_httpd_free_ends_waiting_requests_and_streams, loop_checked),
    };

    log_setup("test_httpd", getenv("HTTPD_DEBUG") ? LOG_DEBUG : LOG_INFO);
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
