/* Suite "httpapi": end-to-end tests of an HTTP JSON API with libcurl, the way
 * users test their services. The service, a tiny "orders" API, lives in this
 * file too and runs on its own thread, so the suite runs anywhere;
 * `--param base_url=URL` points the same tests at a real deployment. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>

#include <handoff.h>

/* ---- Shared helpers --------------------------------------------------- */

/* Out of memory is not a test result anyone can act on: crash, and the
 * runner reports the test as errored. */
static void *must_alloc(size_t size)
{
    void *p = calloc(1, size);

    if (!p) {
        abort();
    }
    return p;
}

static char *must_strdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(must_alloc(n), s, n);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- The service under test: a tiny orders API ------------------------- */
/*
 *   GET    /healthz        200 {"status":"ok"}
 *   POST   /orders         {"item":"...","qty":N} -> 201 + the order, with
 *                          Location; 400 {"error":...} when invalid
 *   GET    /orders/{id}    200 + the order, or 404
 *   DELETE /orders/{id}    204, or 404
 *   GET    /slow?ms=N      200 {"slept_ms":N} after N ms (0..60000)
 *
 * An order is {"id","item","qty","status"}; its status goes from "pending"
 * to "confirmed" ORDERS_CONFIRM_MS after it was created, as an asynchronous
 * back end would. Every answer echoes the request's X-Request-Id.
 */

#define ORDERS_MAX_BODY 65536    /* request body bytes; more gets 413 */
#define ORDERS_MAX_HEADERS 16384 /* request header bytes */
#define ORDERS_CONFIRM_MS 150
#define ORDERS_MAX_ITEM 200 /* bytes */
#define ORDERS_MAX_QTY 1000
#define ORDERS_MAX_SLOW_MS 60000
#define ORDERS_MAX_REQUEST_ID 128

struct order {
    long long id;
    char *item;
    long long qty;
    int64_t created_ms; /* monotonic */
    struct order *next;
};

/* A /slow request waiting for its timer. */
struct slow_reply {
    struct orders_server *srv;
    struct evhttp_request *req;
    struct event *timer;
    long long ms;
    struct slow_reply *prev;
    struct slow_reply *next;
};

/* running and port are the test thread's. While the server runs, the rest
 * belongs to its thread; once orders_server_stop has joined that thread,
 * to the test thread again. */
struct orders_server {
    bool running;
    int port;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct order *orders;
    long long next_id;
    struct slow_reply *slow;
    unsigned long requests;
};

static const char *order_status(const struct order *o)
{
    return mono_ms() - o->created_ms >= ORDERS_CONFIRM_MS ? "confirmed"
                                                          : "pending";
}

static json_t *order_json(const struct order *o)
{
    return json_pack("{s:I, s:s, s:I, s:s}", "id", (json_int_t)o->id, "item",
                     o->item, "qty", (json_int_t)o->qty, "status",
                     order_status(o));
}

/* Answers with body (a reference we take over), or with no body when it is
 * NULL. */
static void reply(struct evhttp_request *req, int code, json_t *body)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *request_id = evhttp_find_header(in, "X-Request-Id");
    struct evbuffer *buf = NULL;

    /* evhttp_add_header refuses values with CR or LF, so a hostile id
     * cannot inject headers; the length cap keeps logs readable. */
    if (request_id && strlen(request_id) <= ORDERS_MAX_REQUEST_ID) {
        evhttp_add_header(out, "X-Request-Id", request_id);
    }
    if (body) {
        char *text = json_dumps(body, JSON_COMPACT);

        buf = evbuffer_new();
        if (!text || !buf) {
            abort();
        }
        evbuffer_add(buf, text, strlen(text));
        evhttp_add_header(out, "Content-Type", "application/json");
        free(text);
        json_decref(body);
    }
    evhttp_send_reply(req, code, NULL, buf);
    if (buf) {
        evbuffer_free(buf);
    }
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
    reply(req, code, json_pack("{s:s}", "error", msg));
}

static void reply_not_allowed(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(req, 405, "method not allowed");
}

static struct order *order_find(struct orders_server *s, long long id,
                                struct order ***link)
{
    struct order **p = &s->orders;

    while (*p && (*p)->id != id) {
        p = &(*p)->next;
    }
    if (link) {
        *link = p;
    }
    return *p;
}

static void order_free(struct order *o)
{
    free(o->item);
    free(o);
}

static void handle_create(struct orders_server *s, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t jerr;
    json_t *body;
    json_t *item;
    json_t *qty;
    struct order *o;
    char location[64];

    if (len == 0) {
        reply_error(req, 400, "empty body: want {\"item\":..., \"qty\":...}");
        return;
    }
    body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
    if (!body) {
        char msg[256];

        snprintf(msg, sizeof(msg), "body is not JSON: %s", jerr.text);
        reply_error(req, 400, msg);
        return;
    }
    item = json_object_get(body, "item");
    qty = json_object_get(body, "qty");
    if (!json_is_object(body)) {
        reply_error(req, 400, "body must be a JSON object");
    } else if (!json_is_string(item) || json_string_length(item) == 0 ||
               json_string_length(item) > ORDERS_MAX_ITEM) {
        reply_error(req, 400, "item: want a string of 1 to 200 bytes");
    } else if (!json_is_integer(qty) || json_integer_value(qty) < 1 ||
               json_integer_value(qty) > ORDERS_MAX_QTY) {
        reply_error(req, 400, "qty: want an integer from 1 to 1000");
    } else {
        o = must_alloc(sizeof(*o));
        o->id = s->next_id++;
        o->item = must_strdup(json_string_value(item));
        o->qty = json_integer_value(qty);
        o->created_ms = mono_ms();
        o->next = s->orders;
        s->orders = o;
        snprintf(location, sizeof(location), "/orders/%lld", o->id);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
                          location);
        reply(req, 201, order_json(o));
    }
    json_decref(body);
}

static void handle_order(struct orders_server *s, struct evhttp_request *req,
                         long long id)
{
    struct order **link;
    struct order *o = order_find(s, id, &link);

    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        if (o) {
            reply(req, 200, order_json(o));
        } else {
            reply_error(req, 404, "no such order");
        }
        break;
    case EVHTTP_REQ_DELETE:
        if (o) {
            *link = o->next;
            order_free(o);
            reply(req, 204, NULL);
        } else {
            reply_error(req, 404, "no such order");
        }
        break;
    default:
        reply_not_allowed(req, "GET, DELETE");
    }
}

static void slow_unlink(struct slow_reply *sr)
{
    if (sr->prev) {
        sr->prev->next = sr->next;
    } else {
        sr->srv->slow = sr->next;
    }
    if (sr->next) {
        sr->next->prev = sr->prev;
    }
}

static void slow_fire(evutil_socket_t fd, short what, void *arg)
{
    struct slow_reply *sr = arg;

    (void)fd;
    (void)what;
    slow_unlink(sr);
    /* If the client hung up meanwhile, evhttp kept the request for us and
     * this reply just frees it. */
    reply(sr->req, 200, json_pack("{s:I}", "slept_ms", (json_int_t)sr->ms));
    /* A fired one-shot timer is no longer known to the loop: freeing it
     * here is what libevent's own event_base_once does. */
    event_free(sr->timer);
    free(sr);
}

static void handle_slow(struct orders_server *s, struct evhttp_request *req)
{
    const char *query =
        evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    const char *ms_text;
    char *end = NULL;
    long long ms = -1;
    struct slow_reply *sr;
    struct timeval tv;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        reply_not_allowed(req, "GET");
        return;
    }
    /* evhttp_parse_query_str fills params, and empties it on failure. */
    if (query && evhttp_parse_query_str(query, &params) == 0) {
        ms_text = evhttp_find_header(&params, "ms");
        if (ms_text && *ms_text) {
            errno = 0;
            ms = strtoll(ms_text, &end, 10);
            if (errno || *end) {
                ms = -1;
            }
        }
        evhttp_clear_headers(&params);
    }
    if (ms < 0 || ms > ORDERS_MAX_SLOW_MS) {
        reply_error(req, 400, "ms: want an integer from 0 to 60000");
        return;
    }
    sr = must_alloc(sizeof(*sr));
    sr->srv = s;
    sr->req = req;
    sr->ms = ms;
    sr->timer = evtimer_new(s->base, slow_fire, sr);
    if (!sr->timer) {
        abort();
    }
    /* A timer, not a sleep: the loop goes on serving other requests. */
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    evtimer_add(sr->timer, &tv);
    sr->next = s->slow;
    if (s->slow) {
        s->slow->prev = sr;
    }
    s->slow = sr;
}

/* Parses "/orders/<id>"; returns the id, or -1 for any other path. */
static long long order_path_id(const char *path)
{
    static const char prefix[] = "/orders/";
    const char *digits;
    long long id = 0;

    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
        return -1;
    }
    digits = path + sizeof(prefix) - 1;
    /* 15 digits cannot overflow a long long. */
    if (!*digits || strlen(digits) > 15) {
        return -1;
    }
    for (const char *p = digits; *p; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        id = id * 10 + (*p - '0');
    }
    return id;
}

static void orders_route(struct evhttp_request *req, void *arg)
{
    struct orders_server *s = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    long long id;

    s->requests++;
    if (!path) {
        path = "/";
    }
    if (strcmp(path, "/healthz") == 0) {
        if (cmd == EVHTTP_REQ_GET) {
            reply(req, 200, json_pack("{s:s}", "status", "ok"));
        } else {
            reply_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/orders") == 0) {
        if (cmd == EVHTTP_REQ_POST) {
            handle_create(s, req);
        } else {
            reply_not_allowed(req, "POST");
        }
    } else if ((id = order_path_id(path)) >= 0) {
        handle_order(s, req, id);
    } else if (strcmp(path, "/slow") == 0) {
        handle_slow(s, req);
    } else {
        reply_error(req, 404, "no such endpoint");
    }
}

static void *orders_server_main(void *arg)
{
    struct orders_server *s = arg;
    sigset_t pipe_set;

    /* A client that hangs up before its answer (a test that timed out)
     * makes evhttp's write raise SIGPIPE in this thread, and the default
     * action would kill the whole test process. Blocked, the write fails
     * with EPIPE and evhttp just drops the connection. */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    event_base_dispatch(s->base);
    return NULL;
}

/* Starts the server on 127.0.0.1, on a port the kernel picks. Returns 0, or
 * -1 with the reason in err. */
static int orders_server_start(struct orders_server *s, char *err,
                               size_t errlen)
{
    struct evhttp_bound_socket *sock;
    struct sockaddr_in addr;
    socklen_t addrlen = sizeof(addr);
    int rc;

    memset(s, 0, sizeof(*s));
    s->next_id = 1;
    /* Before the base exists: a base made afterwards has locks and can be
     * woken, so that event_base_loopexit works from another thread. */
    if (evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "evthread_use_pthreads failed");
        return -1;
    }
    s->base = event_base_new();
    if (!s->base) {
        snprintf(err, errlen, "event_base_new failed");
        return -1;
    }
    s->http = evhttp_new(s->base);
    if (!s->http) {
        snprintf(err, errlen, "evhttp_new failed");
        goto free_base;
    }
    evhttp_set_max_body_size(s->http, ORDERS_MAX_BODY);
    evhttp_set_max_headers_size(s->http, ORDERS_MAX_HEADERS);
    evhttp_set_gencb(s->http, orders_route, s);
    sock = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    if (!sock) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1: %s",
                 strerror(errno));
        goto free_http;
    }
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&addr,
                    &addrlen) != 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto free_http;
    }
    s->port = ntohs(addr.sin_port);
    rc = pthread_create(&s->thread, NULL, orders_server_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        goto free_http;
    }
    s->running = true;
    return 0;
free_http:
    evhttp_free(s->http); /* also closes the listening socket */
free_base:
    event_base_free(s->base);
    s->http = NULL;
    s->base = NULL;
    return -1;
}

/* Stops the server thread and frees everything. Returns the number of
 * requests served. */
static unsigned long orders_server_stop(struct orders_server *s)
{
    if (!s->running) {
        return 0;
    }
    /* The base has locks (evthread_use_pthreads), so this wakes the loop
     * in its thread; it returns and the thread ends. */
    event_base_loopexit(s->base, NULL);
    pthread_join(s->thread, NULL);
    s->running = false;
    /* Requests still waiting in /slow get an answer: it frees the ones
     * whose client left, and evhttp_free closes the rest. */
    while (s->slow) {
        struct slow_reply *sr = s->slow;

        slow_unlink(sr);
        event_free(sr->timer);
        reply_error(sr->req, 503, "the server is shutting down");
        free(sr);
    }
    evhttp_free(s->http); /* the listener and every connection */
    event_base_free(s->base);
    while (s->orders) {
        struct order *o = s->orders;

        s->orders = o->next;
        order_free(o);
    }
    s->http = NULL;
    s->base = NULL;
    return s->requests;
}

/* ---- The client side: one request, with a deadline ---------------------- */

#define HTTP_MAX_BODY (1024 * 1024) /* response bytes kept; more fails */
#define HTTP_MAX_TIMEOUT_MS 10000   /* per request, deadline permitting */
/* Time a request leaves before the test's deadline: an attempt that is
 * still running at its deadline is reported as timed out, so its checks,
 * cleanups and report must fit in what is left. */
#define HTTP_RESERVE_MS 200
#define HTTP_CLEANUP_RESERVE_MS 20
#define HTTP_POLL_MS 50 /* how soon a request notices cancellation */

struct http_resp {
    long status;    /* 0: no response, see error */
    bool cancelled; /* no response: stopped by hf_cancelled */
    char *body;     /* NUL-terminated, never NULL */
    size_t body_len;
    int64_t elapsed_ms;
    char request_id[40]; /* the X-Request-Id we sent */
    char echoed_id[40];  /* the X-Request-Id that came back */
    char location[256];
    char content_type[128];
    char error[CURL_ERROR_SIZE + 64];
};

struct http_body {
    char *data;
    size_t len;
    size_t cap;
    bool over_cap;
};

/* The API's root, without a trailing slash. Set by setup, which runs in the
 * same child process as the tests, before them. */
static char base_url[1024];
static struct orders_server server;
static bool curl_ready;

static size_t http_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_body *b = arg;
    size_t n = size * nmemb;

    if (n > HTTP_MAX_BODY - b->len) {
        b->over_cap = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->data = realloc(b->data, cap);
        if (!b->data) {
            abort();
        }
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Runs the transfer, checking every HTTP_POLL_MS whether the test was
 * cancelled (Ctrl-C, a cancelled run), so that a slow request stops at once
 * rather than at its timeout. curl_easy_perform cannot be interrupted, and
 * its progress callback runs only once a second while no data flows.
 * Returns CURLE_OK, curl's error, or CURLE_ABORTED_BY_CALLBACK when
 * cancelled. */
static CURLcode http_run(hf_t *t, CURL *curl, bool cancellable)
{
    CURLM *multi = curl_multi_init();
    CURLcode rc = CURLE_OUT_OF_MEMORY; /* all a CURLM call fails with here */
    CURLMsg *msg;
    int running = 1;
    int queued;

    if (!multi) {
        return rc;
    }
    if (curl_multi_add_handle(multi, curl) != CURLM_OK) {
        goto free_multi;
    }
    while (running) {
        if (curl_multi_perform(multi, &running) != CURLM_OK) {
            goto remove_handle;
        }
        if (!running) {
            break;
        }
        if (curl_multi_poll(multi, NULL, 0, HTTP_POLL_MS, NULL) != CURLM_OK) {
            goto remove_handle;
        }
        if (cancellable && hf_cancelled(t)) {
            rc = CURLE_ABORTED_BY_CALLBACK;
            goto remove_handle;
        }
    }
    msg = curl_multi_info_read(multi, &queued);
    if (msg && msg->msg == CURLMSG_DONE) {
        rc = msg->data.result;
    }
remove_handle:
    curl_multi_remove_handle(multi, curl);
free_multi:
    curl_multi_cleanup(multi);
    return rc;
}

static void new_request_id(char *out, size_t outlen)
{
    unsigned char raw[8];
    uint64_t fallback = (uint64_t)mono_ms() ^ ((uint64_t)rand() << 20);

    if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
        memcpy(raw, &fallback, sizeof(raw));
    }
    snprintf(out, outlen, "hf-%02x%02x%02x%02x%02x%02x%02x%02x", raw[0], raw[1],
             raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]);
}

static void copy_header(CURL *curl, const char *name, char *out, size_t len)
{
    struct curl_header *h;

    if (curl_easy_header(curl, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK) {
        snprintf(out, len, "%s", h->value);
    }
}

static bool add_header(struct curl_slist **list, const char *header)
{
    struct curl_slist *grown = curl_slist_append(*list, header);

    if (!grown) {
        return false;
    }
    *list = grown;
    return true;
}

/* Sends method path (relative to base_url) with an optional JSON body and
 * fills out; out->body is the caller's to free. The request's timeout is
 * what the test has left minus a reserve (in_cleanup: a smaller one, and
 * no cancellation, because a cleanup is the last chance to undo). Logs the
 * exchange and records it as a span. */
static void http_perform(hf_t *t, const char *method, const char *path,
                         const char *body, bool in_cleanup,
                         struct http_resp *out)
{
    int64_t reserve_ms = in_cleanup ? HTTP_CLEANUP_RESERVE_MS : HTTP_RESERVE_MS;
    int64_t left_ms = hf_remaining_ms(t);
    int64_t timeout_ms = left_ms - reserve_ms;
    struct http_body got = {0};
    struct curl_slist *headers = NULL;
    char curl_err[CURL_ERROR_SIZE] = "";
    char id_header[64];
    char url[2048];
    char span_name[128];
    CURL *curl = NULL;
    curl_off_t total_us = 0;
    hf_span *span;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "%s%s", base_url, path);
    snprintf(span_name, sizeof(span_name), "%s %.*s", method,
             (int)strcspn(path, "?"), path);
    new_request_id(out->request_id, sizeof(out->request_id));
    /* The last request's id: when a test stops on a failed check, it is
     * the request to look for in the service's logs. */
    hf_set_value(t, "request_id", out->request_id);
    span = hf_span_start(t, span_name);
    hf_span_set(span, "http.method", "%s", method);
    hf_span_set(span, "url", "%s", url);
    hf_span_set(span, "request_id", "%s", out->request_id);

    if (timeout_ms > HTTP_MAX_TIMEOUT_MS) {
        timeout_ms = HTTP_MAX_TIMEOUT_MS;
    }
    if (timeout_ms <= 0) {
        snprintf(out->error, sizeof(out->error),
                 "not sent: %lld ms left before the test's deadline, %lld "
                 "kept for checks and cleanups",
                 (long long)left_ms, (long long)reserve_ms);
        goto done;
    }
    curl = curl_easy_init();
    snprintf(id_header, sizeof(id_header), "X-Request-Id: %s", out->request_id);
    if (!curl || !add_header(&headers, id_header) ||
        !add_header(&headers, "Accept: application/json") ||
        (body && !add_header(&headers, "Content-Type: application/json"))) {
        snprintf(out->error, sizeof(out->error), "curl: out of memory");
        goto done;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "handoff-example/httpapi");
    /* Without this curl uses signals (alarm for DNS timeouts, SIGPIPE
     * fiddling), which is unsafe in a process with other threads. */
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
    if (body || strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
                         (long)(body ? strlen(body) : 0));
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }

    rc = http_run(t, curl, !in_cleanup);
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME_T, &total_us);
    out->elapsed_ms = (int64_t)(total_us / 1000);
    if (rc != CURLE_OK) {
        if (got.over_cap) {
            snprintf(out->error, sizeof(out->error),
                     "response body over the %d-byte cap", HTTP_MAX_BODY);
        } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
            out->cancelled = true;
            snprintf(out->error, sizeof(out->error),
                     "stopped: the run was cancelled or the test's deadline "
                     "passed");
        } else {
            snprintf(out->error, sizeof(out->error), "%s",
                     curl_err[0] ? curl_err : curl_easy_strerror(rc));
        }
        goto done;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    copy_header(curl, "X-Request-Id", out->echoed_id, sizeof(out->echoed_id));
    copy_header(curl, "Location", out->location, sizeof(out->location));
    copy_header(curl, "Content-Type", out->content_type,
                sizeof(out->content_type));
done:
    out->body = got.data ? got.data : must_strdup("");
    out->body_len = got.len;
    if (out->status) {
        hf_span_set(span, "http.status", "%ld", out->status);
        /* The body of an error answer is usually the explanation. */
        hf_logf(t, "%s %s -> %ld (%lld ms, request %s)%s%.200s", method, url,
                out->status, (long long)out->elapsed_ms, out->request_id,
                out->status >= 400 ? ": " : "",
                out->status >= 400 ? out->body : "");
    } else {
        hf_span_set(span, "error", "%s", out->error);
        hf_logf(t, "%s %s -> no response (request %s): %s", method, url,
                out->request_id, out->error);
    }
    hf_span_end(span);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

static void http_resp_free(hf_t *t, void *arg)
{
    struct http_resp *r = arg;

    (void)t;
    free(r->body);
    free(r);
}

/* The run was cancelled mid-request: stop the test. The runner reports a
 * test that stops for a cancel as "error: interrupted". */
static void skip_cancelled(hf_t *t)
{
    hf_skip(t, "stopped before the end: the run was cancelled");
}

/* Sends a request; see http_perform. The response belongs to the test and
 * is freed after it ends, so a failed HF_REQUIRE_* leaks nothing. A
 * transport failure (refused, timed out) gives status 0 and the error; a
 * cancelled run stops the test. */
static struct http_resp *http_try(hf_t *t, const char *method, const char *path,
                                  const char *body)
{
    struct http_resp *r = must_alloc(sizeof(*r));

    http_perform(t, method, path, body, false, r);
    hf_cleanup(t, http_resp_free, r);
    if (r->cancelled) {
        skip_cancelled(t);
    }
    return r;
}

/* http_try for requests that must get an answer: stops the test if none
 * came. */
static struct http_resp *http_call(hf_t *t, const char *method,
                                   const char *path, const char *body)
{
    struct http_resp *r = http_try(t, method, path, body);

    if (r->status == 0) {
        hf_fatalf(t, "%s %s%s: %s", method, base_url, path, r->error);
    }
    return r;
}

static void json_release(hf_t *t, void *arg)
{
    (void)t;
    json_decref(arg);
}

/* The response's JSON body, freed after the test. Stops the test if the
 * body is not JSON. */
static json_t *resp_json(hf_t *t, const struct http_resp *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);

    if (!j) {
        hf_fatalf(t, "response of request %s is not JSON (%s): %.200s",
                  r->request_id, jerr.text, r->body);
    }
    hf_cleanup(t, json_release, j);
    return j;
}

/* A string field, or NULL when absent or not a string (the HF_CHECK_STR_*
 * macros show NULL as such). */
static const char *field_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* An integer field; stops the test when absent or not an integer. */
static long long field_int(hf_t *t, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    if (!json_is_integer(v)) {
        char *text = json_dumps(obj, JSON_COMPACT);

        hf_errorf(t, "field \"%s\": want an integer in %.200s", key,
                  text ? text : "(unprintable)");
        free(text);
        hf_fail_now(t);
    }
    return json_integer_value(v);
}

/* ---- Orders: creating them and always deleting them -------------------- */

struct order_ref {
    long long id;
};

static void delete_order_cleanup(hf_t *t, void *arg)
{
    struct order_ref *ref = arg;
    struct http_resp r;
    char path[64];

    snprintf(path, sizeof(path), "/orders/%lld", ref->id);
    http_perform(t, "DELETE", path, NULL, true, &r);
    /* 404: the test deleted it itself. Anything else leaves an order
     * behind in the system under test, which somebody should know. */
    if (r.status == 0) {
        hf_errorf(t, "cleanup: order %lld may be left behind: %s", ref->id,
                  r.error);
    } else if (r.status != 204 && r.status != 404) {
        hf_errorf(t,
                  "cleanup: order %lld may be left behind: DELETE "
                  "answered %ld",
                  ref->id, r.status);
    }
    free(r.body);
    free(ref);
}

/* Deletes order id when the test ends, whatever its outcome, and records
 * the id with the result. */
static void delete_order_later(hf_t *t, long long id)
{
    struct order_ref *ref = must_alloc(sizeof(*ref));

    ref->id = id;
    hf_cleanup(t, delete_order_cleanup, ref);
    hf_set_valuef(t, "order_id", "%lld", id);
}

/* Creates an order that is deleted after the test; returns its id. */
static long long create_order(hf_t *t, const char *item, long long qty)
{
    json_t *req = json_pack("{s:s, s:I}", "item", item, "qty", (json_int_t)qty);
    char *body = json_dumps(req, JSON_COMPACT);
    struct http_resp *r;
    long long id;

    json_decref(req);
    hf_cleanup_free(t, body);
    r = http_call(t, "POST", "/orders", body);
    HF_REQUIRE_INT(t, r->status, ==, 201);
    id = field_int(t, resp_json(t, r), "id");
    delete_order_later(t, id);
    return id;
}

/* ---- Setup and teardown ----------------------------------------------- */

static void setup(hf_t *t)
{
    const char *param = hf_param(t, "base_url");
    struct http_resp *r;

    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            hf_fatal(t, "curl_global_init failed");
        }
        curl_ready = true;
    }
    if (param && *param) {
        /* A real deployment: the suite starts nothing, and the tests must
         * be safe to run there (they delete what they create). */
        size_t n = strlen(param);

        while (n > 0 && param[n - 1] == '/') {
            n--;
        }
        if (strncmp(param, "http://", 7) != 0 &&
            strncmp(param, "https://", 8) != 0) {
            hf_fatalf(t, "base_url \"%s\": want an http:// or https:// URL",
                      param);
        }
        if (n >= sizeof(base_url)) {
            hf_fatalf(t, "base_url: longer than %zu bytes",
                      sizeof(base_url) - 1);
        }
        memcpy(base_url, param, n);
        base_url[n] = '\0';
        hf_logf(t, "testing the deployment at %s (parameter base_url)",
                base_url);
    } else if (!server.running) {
        char err[256];

        /* Each replacement child after a crash is a fresh process without
         * the server, and starts its own; the check above keeps a second
         * setup in the same process from starting another. */
        if (orders_server_start(&server, err, sizeof(err)) != 0) {
            hf_fatalf(t, "cannot start the orders API: %s", err);
        }
        snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d",
                 server.port);
        hf_logf(t,
                "orders API started at %s (set parameter base_url to "
                "test a deployment instead)",
                base_url);
    }
    /* One clear setup error instead of every test failing alike when the
     * service is down. */
    r = http_call(t, "GET", "/healthz", NULL);
    HF_REQUIRE_INT(t, r->status, ==, 200);
}

static void teardown(hf_t *t)
{
    if (server.running) {
        unsigned long n = orders_server_stop(&server);

        hf_logf(t, "orders API stopped after %lu requests", n);
    }
    if (curl_ready) {
        curl_global_cleanup();
        curl_ready = false;
    }
}

/* ---- Tests ------------------------------------------------------------ */

static void test_health_endpoint_answers_ok(hf_t *t)
{
    struct http_resp *r = http_call(t, "GET", "/healthz", NULL);

    HF_REQUIRE_INT(t, r->status, ==, 200);
    HF_CHECK_STR_CONTAINS(t, r->content_type, "application/json");
    HF_CHECK_STR_EQ(t, field_str(resp_json(t, r), "status"), "ok");
    /* Our request id comes back: the service's logs can be matched to
     * this test. */
    HF_CHECK_STR_EQ(t, r->echoed_id, r->request_id);
}

static void test_create_order_returns_201_and_id(hf_t *t)
{
    struct http_resp *r =
        http_call(t, "POST", "/orders", "{\"item\":\"widget\",\"qty\":3}");
    json_t *order;
    long long id;
    char want_location[64];

    HF_REQUIRE_INT(t, r->status, ==, 201);
    order = resp_json(t, r);
    id = field_int(t, order, "id");
    delete_order_later(t, id);
    HF_CHECK_INT(t, id, >, 0);
    HF_CHECK_STR_EQ(t, field_str(order, "item"), "widget");
    HF_CHECK_INT(t, field_int(t, order, "qty"), ==, 3);
    snprintf(want_location, sizeof(want_location), "/orders/%lld", id);
    HF_CHECK_STR_CONTAINS(t, r->location, want_location);
}

static void test_get_unknown_order_is_404(hf_t *t)
{
    struct http_resp *r = http_call(t, "GET", "/orders/999999999999", NULL);

    HF_CHECK_INT(t, r->status, ==, 404);
    HF_CHECK_NOT_NULL(t, field_str(resp_json(t, r), "error"));
    r = http_call(t, "GET", "/orders/not-a-number", NULL);
    HF_CHECK_INT(t, r->status, ==, 404);
}

static void test_create_order_rejects_bad_json(hf_t *t)
{
    static const struct {
        const char *what;
        const char *body;
    } cases[] = {
        {"not JSON", "{\"item\": \"widget\", \"qty\": 2"},
        {"empty body", ""},
        {"not an object", "[\"widget\", 2]"},
        {"item missing", "{\"qty\":2}"},
        {"qty missing", "{\"item\":\"widget\"}"},
        {"item empty", "{\"item\":\"\",\"qty\":2}"},
        {"qty a string", "{\"item\":\"widget\",\"qty\":\"2\"}"},
        {"qty zero", "{\"item\":\"widget\",\"qty\":0}"},
        {"qty negative", "{\"item\":\"widget\",\"qty\":-5}"},
    };

    /* Checks, not requires: one run shows every case that is wrong. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_resp *r = http_call(t, "POST", "/orders", cases[i].body);

        if (r->status == 201) {
            /* Accepted by mistake: still leave nothing behind. */
            json_t *order = json_loads(r->body, 0, NULL);

            if (json_is_integer(json_object_get(order, "id"))) {
                delete_order_later(
                    t, json_integer_value(json_object_get(order, "id")));
            }
            json_decref(order);
        }
        if (!HF_CHECK_INT(t, r->status, ==, 400)) {
            hf_logf(t, "case \"%s\" was not rejected", cases[i].what);
            continue;
        }
        HF_CHECK_NOT_NULL(t, field_str(resp_json(t, r), "error"));
    }
}

static void test_order_roundtrip_create_get_delete(hf_t *t)
{
    long long id = create_order(t, "gadget", 2);
    char path[64];
    struct http_resp *r;
    json_t *order;

    snprintf(path, sizeof(path), "/orders/%lld", id);
    r = http_call(t, "GET", path, NULL);
    HF_REQUIRE_INT(t, r->status, ==, 200);
    order = resp_json(t, r);
    HF_CHECK_INT(t, field_int(t, order, "id"), ==, id);
    HF_CHECK_STR_EQ(t, field_str(order, "item"), "gadget");
    HF_CHECK_INT(t, field_int(t, order, "qty"), ==, 2);

    r = http_call(t, "DELETE", path, NULL);
    HF_REQUIRE_INT(t, r->status, ==, 204);
    r = http_call(t, "GET", path, NULL);
    HF_CHECK_INT(t, r->status, ==, 404);
    r = http_call(t, "DELETE", path, NULL);
    HF_CHECK_INT(t, r->status, ==, 404);
}

#define POLL_INTERVAL_MS 25

static void test_new_order_is_confirmed_eventually(hf_t *t)
{
    long long id = create_order(t, "sprocket", 1);
    int64_t start_ms = mono_ms();
    char path[64];
    char status[32] = "";
    int polls = 0;

    snprintf(path, sizeof(path), "/orders/%lld", id);
    /* Poll against the deadline, never a fixed sleep. Stop while there is
     * time left to report: a stuck order should fail with its last status,
     * not come out as a timeout. */
    while (!hf_cancelled(t) &&
           hf_remaining_ms(t) > HTTP_RESERVE_MS + 2 * POLL_INTERVAL_MS) {
        struct http_resp r;
        json_t *order;

        /* Hundreds of polls: free each answer now rather than at the end
         * of the test, so no hf_* call may stop the test in between. */
        http_perform(t, "GET", path, NULL, false, &r);
        if (r.cancelled) {
            free(r.body);
            break;
        }
        order = json_loadb(r.body, r.body_len, 0, NULL);
        snprintf(status, sizeof(status), "%s",
                 r.status == 200 && field_str(order, "status")
                     ? field_str(order, "status")
                     : "(no status)");
        json_decref(order);
        free(r.body);
        polls++;
        if (strcmp(status, "confirmed") == 0) {
            hf_logf(t, "order %lld confirmed after %lld ms (%d polls)", id,
                    (long long)(mono_ms() - start_ms), polls);
            return;
        }
        HF_REQUIRE_STR_EQ(t, status, "pending");
        sleep_ms(POLL_INTERVAL_MS);
    }
    if (hf_cancelled(t)) {
        skip_cancelled(t);
    }
    hf_fatalf(t, "order %lld still \"%s\" after %lld ms (%d polls)", id, status,
              (long long)(mono_ms() - start_ms), polls);
}

static void test_slow_endpoint_answers_within_deadline(hf_t *t)
{
    const int64_t work_ms = 250;
    const int64_t sla_ms = 1000;
    struct http_resp *r;

    /* Only worth trying if the answer can come and still be reported. */
    HF_REQUIRE_INT(t, hf_remaining_ms(t), >, sla_ms + HTTP_RESERVE_MS);
    r = http_call(t, "GET", "/slow?ms=250", NULL);
    if (r->status == 404) {
        hf_skip(t, "this deployment has no /slow endpoint");
    }
    HF_REQUIRE_INT(t, r->status, ==, 200);
    HF_CHECK_INT(t, field_int(t, resp_json(t, r), "slept_ms"), ==, work_ms);
    HF_CHECK_INT(t, r->elapsed_ms, >=, work_ms);
    HF_CHECK_INT(t, r->elapsed_ms, <, sla_ms);
}

static void test_slow_request_is_cut_off_before_test_deadline(hf_t *t)
{
    int64_t budget_ms = hf_remaining_ms(t);
    struct http_resp *r;

    /* The answer would take 30 s, far past this attempt's deadline (see
     * .timeout_ms below): the request must give up on its own, early
     * enough for the test to report it. */
    r = http_try(t, "GET", "/slow?ms=30000", NULL);
    if (r->status == 404) {
        hf_skip(t, "this deployment has no /slow endpoint");
    }
    HF_CHECK_INT(t, r->status, ==, 0);
    HF_CHECK_STR_CONTAINS(t, r->error, "timed out");
    HF_CHECK_INT(t, r->elapsed_ms, <, budget_ms);
    HF_CHECK_INT(t, hf_remaining_ms(t), >, 0);
}

/* Laid out by hand: one field and one test per line read as a table. */
/* clang-format off */
HF_SUITE(httpapi,
         .namespace = "examples",
         .description = "An orders API over HTTP, tested with libcurl "
                        "(embedded server, or --param base_url=URL)",
         .setup = setup,
         .teardown = teardown,
         .test_timeout_ms = 10000,
         .tests = HF_TESTS(
             HF_TEST(test_health_endpoint_answers_ok),
             HF_TEST(test_create_order_returns_201_and_id),
             HF_TEST(test_get_unknown_order_is_404),
             HF_TEST(test_create_order_rejects_bad_json),
             HF_TEST(test_order_roundtrip_create_get_delete),
             HF_TEST(test_new_order_is_confirmed_eventually),
             HF_TEST(test_slow_endpoint_answers_within_deadline),
             HF_TEST(test_slow_request_is_cut_off_before_test_deadline,
                     .timeout_ms = 1000)));
/* clang-format on */
