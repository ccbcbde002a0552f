/* HTTP server on evhttp (libevent 2.1): routing, JSON errors, replies made
 * after the handler returns, and Server-Sent Events. The evhttp behaviour
 * this depends on is described next to the code that depends on it. */
#include "httpd.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "buf.h"
#include "clock.h"
#include "jsonw.h"
#include "log.h"

/* Path segments and query pairs a request may have; more is refused. */
#define HTTPD_MAX_SEGMENTS 128
#define HTTPD_MAX_QUERY_PAIRS 128
/* Input a connection may buffer beyond a maximal request. */
#define HTTPD_INPUT_SLACK ((size_t)64 << 10)
/* evhttp's own error pages are about 200 bytes with their headers. */
#define HTTPD_EVHTTP_PAGE_MAX 2048

static const struct {
    const char *name;
    enum evhttp_cmd_type cmd;
    bool routable;
} httpd_methods[] = {
    /* In the order Allow lists them. */
    {"GET", EVHTTP_REQ_GET, true},          {"HEAD", EVHTTP_REQ_HEAD, true},
    {"POST", EVHTTP_REQ_POST, true},        {"PUT", EVHTTP_REQ_PUT, true},
    {"PATCH", EVHTTP_REQ_PATCH, true},      {"DELETE", EVHTTP_REQ_DELETE, true},
    {"OPTIONS", EVHTTP_REQ_OPTIONS, true},  {"TRACE", EVHTTP_REQ_TRACE, false},
    {"CONNECT", EVHTTP_REQ_CONNECT, false},
};
#define HTTPD_N_METHODS (sizeof(httpd_methods) / sizeof(httpd_methods[0]))
#define HTTPD_HEAD_INDEX 1

/* Ordered by specificity: a higher kind wins over a lower one. */
enum httpd_seg_kind { SEG_REST, SEG_PARAM, SEG_LITERAL };

struct httpd_seg {
    enum httpd_seg_kind kind;
    char *text; /* the literal, or the parameter's name */
};

struct httpd_route {
    size_t method; /* index into httpd_methods */
    char *pattern;
    struct httpd_seg *segs;
    size_t n_segs;
    void (*handler)(struct httpd_req *req, void *arg);
    void *arg;
};

struct httpd {
    struct event_base *base;
    struct evhttp *http;
    size_t max_body;
    uint16_t port;
    int timeout_s;
    size_t sse_buffer_max;
    struct httpd_route **routes;
    size_t n_routes;
};

struct httpd_kv {
    char *name;
    char *value;
};

struct httpd_req {
    /* The evhttp request while its client is connected and we have not
     * answered it; NULL once gone or answered. */
    struct evhttp_request *ev;
    struct evhttp_connection *evcon; /* ev's connection, while ev */
    struct httpd_sse *sse;           /* what req became, or NULL */
    const char *method;              /* static */
    char *path;                      /* raw, as sent */
    struct httpd_kv *params;
    size_t n_params;
    struct httpd_kv *query;
    size_t n_query;
    char peer[64];
    uint16_t peer_port;
    int64_t start_ns;
    size_t body_len;
    bool body_terminated; /* a NUL was appended to ev's input */
    bool in_handler;      /* its handler is running */
    bool replied;         /* answered inside its handler: free on return */
    bool watched;         /* our close callback is on the connection */
    /* Copied from the server so that req and its stream never need it:
     * both may outlive it. */
    struct event_base *base;
    int timeout_s;
    size_t sse_buffer_max;
};

struct httpd_sse {
    struct httpd_req *req; /* owned: freed with the stream */
    void (*on_close)(struct httpd_sse *sse, void *arg);
    void *arg;
    struct event *close_ev; /* closes a stream whose client is too slow */
    struct evbuffer *frame; /* one event being built */
    bool open;              /* not dead, not ended */
    bool capped;            /* closing: the client reads too slowly */
    bool in_on_close;       /* on_close is running */
    bool end_requested;     /* httpd_sse_end ran inside on_close */
};

static void httpd_on_request(struct evhttp_request *ev, void *arg);
static void httpd_on_output(struct evbuffer *out,
                            const struct evbuffer_cb_info *info, void *arg);

/* Listening. */

/* Splits "host:port", "[v6]:port" or ":port" into host (empty for any) and
 * port. Returns 0 or ST_INVALID. */
static int httpd_split_addr(const char *addr, char *host, size_t hostlen,
                            char *port, size_t portlen)
{
    const char *colon;
    const char *h = addr;
    size_t hlen;
    size_t plen;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');

        if (!close || close[1] != ':') {
            return ST_INVALID;
        }
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (hlen == 0) {
            return ST_INVALID;
        }
    } else {
        colon = strrchr(addr, ':');
        if (!colon) {
            return ST_INVALID;
        }
        hlen = (size_t)(colon - addr);
        if (memchr(addr, ':', hlen)) {
            return ST_INVALID; /* IPv6 without brackets */
        }
    }
    plen = strlen(colon + 1);
    if (hlen >= hostlen || plen == 0 || plen > 5 || plen >= portlen ||
        strspn(colon + 1, "0123456789") != plen ||
        strtol(colon + 1, NULL, 10) > 65535) {
        return ST_INVALID;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, colon + 1, plen + 1);
    return 0;
}

/* Binds and listens on addr; returns 0 and *out_fd, or ST_INVALID/ST_IO
 * (logged). */
static int httpd_listen(const char *addr, int *out_fd)
{
    char host[256];
    char port[8];
    struct addrinfo hints;
    struct addrinfo *ai = NULL;
    int fd = -1;
    int one = 1;
    int rc;

    if (!addr ||
        httpd_split_addr(addr, host, sizeof(host), port, sizeof(port)) != 0) {
        log_error("http: bad listen address \"%s\": want host:port, "
                  "[ipv6]:port or :port",
                  addr ? addr : "(null)");
        return ST_INVALID;
    }
    /* Numeric addresses only (and localhost): a listen address that needs
     * DNS would make start-up hang on an unreachable resolver. */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
    if (strcmp(host, "localhost") == 0) {
        snprintf(host, sizeof(host), "127.0.0.1");
    }
    rc = getaddrinfo(host[0] ? host : "0.0.0.0", port, &hints, &ai);
    if (rc != 0) {
        log_error("http: bad listen address \"%s\": %s", addr,
                  gai_strerror(rc));
        return ST_INVALID;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("http: cannot listen on %s: socket: %s", addr,
                  strerror(errno));
        rc = ST_IO;
        goto fail;
    }
    /* Restarts must not wait for TIME_WAIT connections of the last run. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        log_error("http: cannot listen on %s: SO_REUSEADDR: %s", addr,
                  strerror(errno));
        rc = ST_IO;
        goto fail;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = errno;

        log_error("http: cannot listen on %s: %s%s", addr, strerror(err),
                  err == EADDRINUSE ? " (another process has the port)" : "");
        rc = err == EADDRNOTAVAIL ? ST_INVALID : ST_IO;
        goto fail;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        log_error("http: cannot listen on %s: %s", addr, strerror(errno));
        rc = ST_IO;
        goto fail;
    }
    freeaddrinfo(ai);
    *out_fd = fd;
    return 0;

fail:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(ai);
    return rc;
}

static uint16_t httpd_fd_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* evhttp asks us for each connection's bufferevent: ours caps the input it
 * buffers (a client sending while its request waits for an answer, or
 * while it is sent a stream, is otherwise read without bound) and watches
 * the output for evhttp's own error pages (httpd_on_output). */
static struct bufferevent *httpd_make_bev(struct event_base *base, void *arg)
{
    struct httpd *srv = arg;
    /* No BEV_OPT_CLOSE_ON_FREE, as evhttp's own: it closes the socket. */
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);

    if (!bev) {
        return NULL; /* evhttp then tries one of its own */
    }
    /* evhttp waits until a body with a Content-Length is wholly in this
     * buffer before it takes it: the cap must leave room for that. */
    bufferevent_setwatermark(
        bev, EV_READ, 0, srv->max_body + HTTPD_MAX_HEADERS + HTTPD_INPUT_SLACK);
    evbuffer_add_cb(bufferevent_get_output(bev), httpd_on_output, srv);
    return bev;
}

int httpd_new(struct event_base *base, const char *addr, size_t max_body,
              struct httpd **out)
{
    struct httpd *srv = NULL;
    struct evhttp_bound_socket *sock;
    uint16_t all = 0;
    int fd = -1;
    int rc;

    if (max_body == 0 || max_body > SIZE_MAX / 4) {
        log_error("http: bad body limit %zu", max_body);
        return ST_INVALID;
    }
    rc = httpd_listen(addr, &fd);
    if (rc != 0) {
        return rc;
    }
    srv = mem_zalloc(sizeof(*srv));
    srv->base = base;
    srv->max_body = max_body;
    srv->timeout_s = HTTPD_TIMEOUT_DEFAULT_S;
    srv->sse_buffer_max = HTTPD_SSE_BUFFER_DEFAULT;
    srv->http = evhttp_new(base);
    if (!srv->http) {
        log_error("http: evhttp_new failed");
        rc = ST_INTERNAL;
        goto fail;
    }
    /* Every method evhttp knows reaches the router, which answers 405 with
     * Allow (evhttp itself would answer 501). */
    for (size_t i = 0; i < HTTPD_N_METHODS; i++) {
        all |= (uint16_t)httpd_methods[i].cmd;
    }
    evhttp_set_allowed_methods(srv->http, all);
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)max_body);
    evhttp_set_max_headers_size(srv->http, (ev_ssize_t)HTTPD_MAX_HEADERS);
    evhttp_set_default_content_type(srv->http, NULL);
    /* On a body over the limit, read (and drop) the rest of it before
     * answering 413: closing with unread input makes the kernel send a
     * reset that can destroy the answer before the client reads it. */
    evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_timeout(srv->http, srv->timeout_s);
    evhttp_set_bevcb(srv->http, httpd_make_bev, srv);
    evhttp_set_gencb(srv->http, httpd_on_request, srv);
    /* evhttp owns fd from here. (It fails only without memory, and then
     * may or may not have closed fd: better leak it than close it twice.) */
    sock = evhttp_accept_socket_with_handle(srv->http, fd);
    if (!sock) {
        log_error("http: cannot accept on %s", addr);
        rc = ST_IO;
        goto fail;
    }
    srv->port = httpd_fd_port(evhttp_bound_socket_get_fd(sock));
    log_info("http: listening on %s (port %u)", addr, (unsigned)srv->port);
    *out = srv;
    return 0;

fail:
    if (srv->http) {
        evhttp_free(srv->http);
    } else {
        close(fd);
    }
    free(srv);
    return rc;
}

uint16_t httpd_port(const struct httpd *srv)
{
    return srv->port;
}

void httpd_set_timeout(struct httpd *srv, int seconds)
{
    srv->timeout_s = seconds > 0 ? seconds : 0;
    evhttp_set_timeout(srv->http, seconds > 0 ? seconds : -1);
}

void httpd_set_sse_buffer_max(struct httpd *srv, size_t bytes)
{
    srv->sse_buffer_max = bytes;
}

static void httpd_route_free(struct httpd_route *r)
{
    for (size_t i = 0; i < r->n_segs; i++) {
        free(r->segs[i].text);
    }
    free(r->segs);
    free(r->pattern);
    free(r);
}

void httpd_free(struct httpd *srv)
{
    if (!srv) {
        return;
    }
    /* Frees every connection: our close callback marks each waiting
     * request gone and runs each open stream's on_close. */
    evhttp_free(srv->http);
    for (size_t i = 0; i < srv->n_routes; i++) {
        httpd_route_free(srv->routes[i]);
    }
    free(srv->routes);
    free(srv);
}

/* Routing. */

static bool httpd_is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

/* Parses pattern into r's segments. Returns 0 or ST_INVALID. */
static int httpd_parse_pattern(const char *pattern, struct httpd_route *r)
{
    const char *p;

    if (pattern[0] != '/') {
        return ST_INVALID;
    }
    p = pattern + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        struct httpd_seg seg = {SEG_LITERAL, NULL};

        if (r->n_segs == HTTPD_MAX_SEGMENTS) {
            return ST_INVALID;
        }
        if (n > 0 && p[0] == '{') {
            size_t name_len = n - 2;

            if (n < 3 || p[n - 1] != '}') {
                return ST_INVALID;
            }
            seg.kind = SEG_PARAM;
            if (name_len > 3 && memcmp(p + n - 4, "...", 3) == 0) {
                if (end) {
                    return ST_INVALID; /* {rest...} must be last */
                }
                seg.kind = SEG_REST;
                name_len -= 3;
            }
            for (size_t i = 0; i < name_len; i++) {
                if (!httpd_is_name_char(p[1 + i])) {
                    return ST_INVALID;
                }
            }
            seg.text = mem_strndup(p + 1, name_len);
            for (size_t i = 0; i < r->n_segs; i++) {
                if (r->segs[i].kind != SEG_LITERAL &&
                    strcmp(r->segs[i].text, seg.text) == 0) {
                    free(seg.text);
                    return ST_INVALID;
                }
            }
        } else {
            if (memchr(p, '{', n) || memchr(p, '}', n) || memchr(p, '%', n)) {
                return ST_INVALID;
            }
            seg.text = mem_strndup(p, n);
        }
        r->segs = mem_reallocarray(r->segs, r->n_segs + 1, sizeof(*r->segs));
        r->segs[r->n_segs++] = seg;
        if (!end) {
            return 0;
        }
        p = end + 1;
    }
}

/* True when a and b match the same paths. */
static bool httpd_same_shape(const struct httpd_route *a,
                             const struct httpd_route *b)
{
    if (a->n_segs != b->n_segs) {
        return false;
    }
    for (size_t i = 0; i < a->n_segs; i++) {
        if (a->segs[i].kind != b->segs[i].kind ||
            (a->segs[i].kind == SEG_LITERAL &&
             strcmp(a->segs[i].text, b->segs[i].text) != 0)) {
            return false;
        }
    }
    return true;
}

int httpd_route(struct httpd *srv, const char *method, const char *pattern,
                void (*handler)(struct httpd_req *req, void *arg), void *arg)
{
    struct httpd_route *r;
    size_t m = HTTPD_N_METHODS;

    for (size_t i = 0; method && i < HTTPD_N_METHODS; i++) {
        if (httpd_methods[i].routable &&
            strcmp(httpd_methods[i].name, method) == 0) {
            m = i;
        }
    }
    if (m == HTTPD_N_METHODS || !pattern || !handler) {
        log_error("http: cannot route %s %s: bad method",
                  method ? method : "(null)", pattern ? pattern : "(null)");
        return ST_INVALID;
    }
    r = mem_zalloc(sizeof(*r));
    r->method = m;
    r->pattern = mem_strdup(pattern);
    r->handler = handler;
    r->arg = arg;
    if (httpd_parse_pattern(pattern, r) != 0) {
        log_error("http: cannot route %s %s: bad pattern", method, pattern);
        httpd_route_free(r);
        return ST_INVALID;
    }
    for (size_t i = 0; i < srv->n_routes; i++) {
        if (srv->routes[i]->method == m &&
            httpd_same_shape(srv->routes[i], r)) {
            log_error("http: cannot route %s %s: %s routes it already", method,
                      pattern, srv->routes[i]->pattern);
            httpd_route_free(r);
            return ST_CONFLICT;
        }
    }
    srv->routes =
        mem_reallocarray(srv->routes, srv->n_routes + 1, sizeof(*srv->routes));
    srv->routes[srv->n_routes++] = r;
    return 0;
}

static int httpd_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes the percent-encoding of s[0..n) (and '+' as a space if
 * plus_space) into a new string. Returns NULL for a malformed escape or an
 * encoded NUL. */
static char *httpd_decode(const char *s, size_t n, bool plus_space)
{
    char *out = mem_alloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? httpd_hex(s[i + 1]) : -1;
            int lo = i + 2 < n ? httpd_hex(s[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '+' && plus_space) {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* The path split at '/' (raw) and decoded. */
struct httpd_path {
    const char *raw[HTTPD_MAX_SEGMENTS];
    size_t raw_len[HTTPD_MAX_SEGMENTS];
    char *dec[HTTPD_MAX_SEGMENTS];
    size_t n;
};

static void httpd_path_cleanup(struct httpd_path *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->dec[i]);
    }
}

/* Returns 0, ST_TOO_LARGE for too many segments, or ST_INVALID for bad
 * percent-encoding. path starts with '/'. */
static int httpd_path_split(const char *path, struct httpd_path *p)
{
    const char *s = path + 1;

    p->n = 0;
    for (;;) {
        const char *end = strchr(s, '/');
        size_t n = end ? (size_t)(end - s) : strlen(s);

        if (p->n == HTTPD_MAX_SEGMENTS) {
            return ST_TOO_LARGE;
        }
        p->raw[p->n] = s;
        p->raw_len[p->n] = n;
        p->dec[p->n] = httpd_decode(s, n, false);
        if (!p->dec[p->n]) {
            return ST_INVALID;
        }
        p->n++;
        if (!end) {
            return 0;
        }
        s = end + 1;
    }
}

static bool httpd_route_matches(const struct httpd_route *r,
                                const struct httpd_path *p)
{
    for (size_t i = 0; i < r->n_segs; i++) {
        if (r->segs[i].kind == SEG_REST) {
            return true; /* the rest, possibly nothing */
        }
        if (i >= p->n) {
            return false;
        }
        if (r->segs[i].kind == SEG_PARAM
                ? p->dec[i][0] == '\0'
                : strcmp(r->segs[i].text, p->dec[i]) != 0) {
            return false;
        }
    }
    return r->n_segs == p->n;
}

/* True when a is more specific than b (both match the same path). */
static bool httpd_route_beats(const struct httpd_route *a,
                              const struct httpd_route *b)
{
    for (size_t i = 0; i < a->n_segs && i < b->n_segs; i++) {
        if (a->segs[i].kind != b->segs[i].kind) {
            return a->segs[i].kind > b->segs[i].kind;
        }
    }
    return a->n_segs > b->n_segs;
}

/* Copies the route's parameters out of the path into req. */
static void httpd_bind_params(struct httpd_req *req,
                              const struct httpd_route *r,
                              const struct httpd_path *p)
{
    for (size_t i = 0; i < r->n_segs; i++) {
        struct httpd_kv kv;

        if (r->segs[i].kind == SEG_LITERAL) {
            continue;
        }
        kv.name = mem_strdup(r->segs[i].text);
        if (r->segs[i].kind == SEG_PARAM) {
            kv.value = mem_strdup(p->dec[i]);
        } else {
            struct buf rest;

            buf_init(&rest, 0);
            buf_adds(&rest, "");
            for (size_t j = i; j < p->n; j++) {
                buf_adds(&rest, p->dec[j]);
                if (j + 1 < p->n) {
                    buf_addc(&rest, '/');
                }
            }
            kv.value = buf_detach(&rest);
        }
        req->params = mem_reallocarray(req->params, req->n_params + 1,
                                       sizeof(*req->params));
        req->params[req->n_params++] = kv;
    }
}

/* Parses the raw query string into req->query. Returns 0 or ST_INVALID. */
static int httpd_parse_query(struct httpd_req *req, const char *q)
{
    while (q && *q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        struct httpd_kv kv;

        if (n > 0) {
            if (req->n_query == HTTPD_MAX_QUERY_PAIRS) {
                return ST_INVALID;
            }
            kv.name = httpd_decode(q, eq ? (size_t)(eq - q) : n, true);
            kv.value = eq ? httpd_decode(eq + 1, n - (size_t)(eq - q) - 1, true)
                          : mem_strdup("");
            if (!kv.name || !kv.value) {
                free(kv.name);
                free(kv.value);
                return ST_INVALID;
            }
            req->query = mem_reallocarray(req->query, req->n_query + 1,
                                          sizeof(*req->query));
            req->query[req->n_query++] = kv;
        }
        q = end ? end + 1 : NULL;
    }
    return 0;
}

/* Requests. */

static void httpd_req_free(struct httpd_req *req)
{
    for (size_t i = 0; i < req->n_params; i++) {
        free(req->params[i].name);
        free(req->params[i].value);
    }
    for (size_t i = 0; i < req->n_query; i++) {
        free(req->query[i].name);
        free(req->query[i].value);
    }
    free(req->params);
    free(req->query);
    free(req->path);
    free(req);
}

/* The access log: one debug line per request, written when it is
 * answered (or found gone, or its stream ends). */
static void httpd_access_log(const struct httpd_req *req, int status,
                             const char *note)
{
    char path[201];
    size_t n = 0;
    double ms;

    if (!log_enabled(LOG_DEBUG)) {
        return;
    }
    /* The path is the client's: keep control bytes out of the log. */
    for (const char *s = req->path; *s && n < sizeof(path) - 1; s++) {
        path[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    }
    path[n] = '\0';
    ms = (double)(clock_mono_ns() - req->start_ns) / 1e6;
    log_debug("http: %s %s %d %.1fms %s%s%s", req->method, path, status, ms,
              req->peer, note ? " " : "", note ? note : "");
}

/* Our close callback on the connection of a request that waits for its
 * answer or streams. evhttp runs it when the connection goes: the client
 * went away or timed out (evhttp then detaches the request from the
 * connection and frees it never: we do, or it leaks), or the connection
 * is freed with the request on it (evhttp_free, a capped stream: evhttp
 * frees the request right after this). */
static void httpd_sse_died(struct httpd_sse *sse, const char *why);

static void httpd_on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct httpd_req *req = arg;

    (void)evcon;
    req->watched = false;
    if (req->ev) {
        if (!evhttp_request_get_connection(req->ev)) {
            evhttp_request_free(req->ev);
        }
        req->ev = NULL;
        req->evcon = NULL;
    }
    if (req->sse) {
        httpd_sse_died(req->sse, req->sse->capped
                                     ? "(closed: the client reads too slowly)"
                                     : "(client gone)");
    }
}

/* evhttp completed (and is about to free) the request without us: only
 * when evhttp answered it itself. Let go of it and of the connection. */
static void httpd_on_ev_complete(struct evhttp_request *ev, void *arg)
{
    struct httpd_req *req = arg;

    (void)ev;
    evhttp_connection_set_closecb(req->evcon, NULL, NULL);
    req->watched = false;
    req->ev = NULL;
    req->evcon = NULL;
    if (req->sse) {
        httpd_sse_died(req->sse, "(ended by evhttp)");
    }
}

static void httpd_watch(struct httpd_req *req)
{
    evhttp_connection_set_closecb(req->evcon, httpd_on_conn_close, req);
    evhttp_request_set_on_complete_cb(req->ev, httpd_on_ev_complete, req);
    req->watched = true;
}

/* Before our final write on the connection: evhttp may free the connection
 * within that call, and must not call us about it. */
static void httpd_unwatch(struct httpd_req *req)
{
    if (req->watched) {
        evhttp_connection_set_closecb(req->evcon, NULL, NULL);
        evhttp_request_set_on_complete_cb(req->ev, NULL, NULL);
        req->watched = false;
    }
}

/* The handler returned without answering. evhttp stopped reading the
 * connection before it called us, so it would not notice the client going
 * away until the answer is written; read again to see the EOF. The read
 * callback must go too: evhttp's own treats any byte arriving now (a
 * pipelined request) as an illegal state and exits the process. Data read
 * meanwhile stays buffered (up to the watermark) for evhttp, which puts its
 * callbacks back once the answer is written. The read timeout now limits
 * how long the request may wait for its answer. */
static void httpd_wait_async(struct httpd_req *req)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(req->evcon);
    bufferevent_data_cb readcb;
    bufferevent_data_cb writecb;
    bufferevent_event_cb eventcb;
    void *cbarg;

    httpd_watch(req);
    bufferevent_getcb(bev, &readcb, &writecb, &eventcb, &cbarg);
    bufferevent_setcb(bev, NULL, writecb, eventcb, cbarg);
    bufferevent_enable(bev, EV_READ);
}

/* Releases req after its answer (or after finding it gone). */
static void httpd_release(struct httpd_req *req)
{
    if (req->in_handler) {
        req->replied = true;
    } else {
        httpd_req_free(req);
    }
}

/* Sends status and the output buffer already filled, and releases req. */
static int httpd_finish(struct httpd_req *req, int status)
{
    int rc = ST_IO;

    assert(!req->replied && !req->sse);
    assert(status >= 200 && status <= 599);
    if (req->ev) {
        struct evbuffer *out = evhttp_request_get_output_buffer(req->ev);
        char len[24];

        snprintf(len, sizeof(len), "%zu", evbuffer_get_length(out));
        evhttp_add_header(evhttp_request_get_output_headers(req->ev),
                          "Content-Length", len);
        httpd_unwatch(req);
        evhttp_send_reply(req->ev, status, NULL, NULL);
        req->ev = NULL;
        req->evcon = NULL;
        rc = 0;
        httpd_access_log(req, status, NULL);
    } else {
        httpd_access_log(req, status, "(dropped: client gone)");
    }
    httpd_release(req);
    return rc;
}

static int httpd_reply_body(struct httpd_req *req, int status,
                            const char *content_type, const char *body,
                            size_t len)
{
    if (req->ev) {
        if (content_type) {
            evhttp_add_header(evhttp_request_get_output_headers(req->ev),
                              "Content-Type", content_type);
        }
        if (len) {
            evbuffer_add(evhttp_request_get_output_buffer(req->ev), body, len);
        }
    }
    return httpd_finish(req, status);
}

int httpd_reply_text(struct httpd_req *req, int status,
                     const char *content_type, const char *body, size_t len)
{
    return httpd_reply_body(req, status, content_type, body, len);
}

int httpd_reply_json(struct httpd_req *req, int status, const char *json,
                     size_t len)
{
    return httpd_reply_body(req, status, "application/json", json, len);
}

int httpd_reply_json_value(struct httpd_req *req, int status,
                           const struct json_t *value)
{
    char *text;
    int rc;

    if (!req->ev) {
        return httpd_finish(req, status);
    }
    text = json_dumps(value, JSON_COMPACT);
    if (!text) {
        /* Only an invalid value (a NaN real, say): our bug, not the
         * client's. */
        log_error("http: %s %s: cannot serialize the answer", req->method,
                  req->path);
        return httpd_reply_error(req, 500, "internal",
                                 "cannot serialize the answer");
    }
    rc = httpd_reply_body(req, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

/* Appends {"error":{"code":...,"message":...}} to b. */
static void httpd_error_json(struct buf *b, const char *code,
                             const char *message)
{
    buf_adds(b, "{\"error\":{\"code\":");
    jsonw_string(b, code, strlen(code));
    buf_adds(b, ",\"message\":");
    jsonw_string(b, message, strlen(message));
    buf_adds(b, "}}");
}

int httpd_reply_error(struct httpd_req *req, int status, const char *code,
                      const char *fmt, ...)
{
    struct buf b;
    char *message;
    va_list ap;
    int rc;

    if (!req->ev) {
        return httpd_finish(req, status);
    }
    va_start(ap, fmt);
    message = mem_vprintf(fmt, ap);
    va_end(ap);
    buf_init(&b, 0);
    httpd_error_json(&b, code, message);
    rc = httpd_reply_body(req, status, "application/json", b.data, b.len);
    buf_cleanup(&b);
    free(message);
    return rc;
}

static bool httpd_is_token(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        if (!httpd_is_name_char(*s) && !strchr("!#$%&'*+-.^`|~", *s)) {
            return false;
        }
    }
    return true;
}

int httpd_reply_header(struct httpd_req *req, const char *name,
                       const char *value)
{
    if (!httpd_is_token(name) || strpbrk(value, "\r\n")) {
        return ST_INVALID;
    }
    if (req->ev && evhttp_add_header(evhttp_request_get_output_headers(req->ev),
                                     name, value) != 0) {
        return ST_INVALID;
    }
    return 0;
}

/* Accessors. */

const char *httpd_req_method(const struct httpd_req *req)
{
    return req->method;
}

const char *httpd_req_path(const struct httpd_req *req)
{
    return req->path;
}

static const char *httpd_kv_find(const struct httpd_kv *kv, size_t n,
                                 const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kv[i].name, name) == 0) {
            return kv[i].value;
        }
    }
    return NULL;
}

const char *httpd_req_param(const struct httpd_req *req, const char *name)
{
    return httpd_kv_find(req->params, req->n_params, name);
}

const char *httpd_req_query(const struct httpd_req *req, const char *key)
{
    return httpd_kv_find(req->query, req->n_query, key);
}

const char *httpd_req_header(const struct httpd_req *req, const char *name)
{
    if (!req->ev) {
        return NULL;
    }
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

const char *httpd_req_body(struct httpd_req *req, size_t *len)
{
    struct evbuffer *in;
    const char *p;

    if (!req->ev) {
        if (len) {
            *len = 0;
        }
        return "";
    }
    in = evhttp_request_get_input_buffer(req->ev);
    if (!req->body_terminated) {
        req->body_len = evbuffer_get_length(in);
        evbuffer_add(in, "", 1);
        req->body_terminated = true;
    }
    p = (const char *)evbuffer_pullup(in, -1);
    if (len) {
        *len = req->body_len;
    }
    return p ? p : "";
}

const char *httpd_req_peer(const struct httpd_req *req, uint16_t *port)
{
    if (port) {
        *port = req->peer_port;
    }
    return req->peer;
}

bool httpd_req_is_gone(const struct httpd_req *req)
{
    return req->ev == NULL;
}

bool httpd_req_wants_html(const struct httpd_req *req)
{
    const char *accept = httpd_req_header(req, "Accept");
    const char *p = accept;

    /* Accept: text/html,application/xhtml+xml;q=0.9,* / *;q=0.8 */
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *semi;
        size_t type_len;

        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        semi = memchr(p, ';', n);
        type_len = semi ? (size_t)(semi - p) : n;
        while (type_len > 0 &&
               (p[type_len - 1] == ' ' || p[type_len - 1] == '\t')) {
            type_len--;
        }
        if (type_len == 9 && strncasecmp(p, "text/html", 9) == 0) {
            double q = 1;

            for (const char *s = semi; s && s < p + n;
                 s = memchr(s + 1, ';', (size_t)(p + n - s - 1))) {
                const char *v = s + 1;

                while (*v == ' ' || *v == '\t') {
                    v++;
                }
                if ((v[0] == 'q' || v[0] == 'Q') && v[1] == '=') {
                    q = strtod(v + 2, NULL);
                }
            }
            return q > 0;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Dispatch. */

static void httpd_dispatch(struct httpd *srv, struct httpd_req *req,
                           enum evhttp_cmd_type cmd)
{
    struct httpd_path path;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req->ev);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    const struct httpd_route *best = NULL;
    bool allowed[HTTPD_N_METHODS] = {false};
    bool path_matched = false;
    int rc;

    path.n = 0;
    req->path = mem_strdup(raw ? raw : "");
    if (!raw || raw[0] != '/') {
        httpd_reply_error(req, 400, "bad_request",
                          "the request target is not a path");
        return;
    }
    rc = httpd_path_split(raw, &path);
    if (rc == ST_INVALID) {
        httpd_reply_error(req, 400, "bad_request",
                          "malformed percent-encoding in the path");
        goto done;
    }
    if (rc != 0) {
        httpd_reply_error(req, 404, "not_found", "no such resource: %.200s",
                          raw);
        goto done;
    }
    if (httpd_parse_query(req, evhttp_uri_get_query(uri)) != 0) {
        httpd_reply_error(req, 400, "bad_request",
                          "malformed query string (or over %d parameters)",
                          HTTPD_MAX_QUERY_PAIRS);
        goto done;
    }
    for (int pass = 0; pass < (cmd == EVHTTP_REQ_HEAD ? 2 : 1) && !best;
         pass++) {
        for (size_t i = 0; i < srv->n_routes; i++) {
            const struct httpd_route *r = srv->routes[i];
            /* HEAD falls back to GET routes on the second pass. */
            enum evhttp_cmd_type want =
                pass == 1 && cmd == EVHTTP_REQ_HEAD ? EVHTTP_REQ_GET : cmd;

            if (!httpd_route_matches(r, &path)) {
                continue;
            }
            path_matched = true;
            allowed[r->method] = true;
            if (httpd_methods[r->method].cmd == want &&
                (!best || httpd_route_beats(r, best))) {
                best = r;
            }
        }
    }
    if (!best) {
        struct buf allow;

        if (!path_matched) {
            httpd_reply_error(req, 404, "not_found", "no such resource: %.200s",
                              raw);
            goto done;
        }
        if (allowed[0]) {
            allowed[HTTPD_HEAD_INDEX] = true;
        }
        buf_init(&allow, 0);
        for (size_t i = 0; i < HTTPD_N_METHODS; i++) {
            if (allowed[i]) {
                buf_addf(&allow, "%s%s", allow.len ? ", " : "",
                         httpd_methods[i].name);
            }
        }
        evhttp_add_header(evhttp_request_get_output_headers(req->ev), "Allow",
                          buf_str(&allow));
        httpd_reply_error(req, 405, "method_not_allowed",
                          "%s is not allowed on %.200s (allowed: %s)",
                          req->method, raw, buf_str(&allow));
        buf_cleanup(&allow);
        goto done;
    }
    httpd_bind_params(req, best, &path);
    httpd_path_cleanup(&path);
    path.n = 0;
    req->in_handler = true;
    best->handler(req, best->arg);
    req->in_handler = false;
    if (req->replied) {
        httpd_req_free(req);
    } else if (!req->sse) {
        httpd_wait_async(req);
    }
done:
    httpd_path_cleanup(&path);
}

static void httpd_on_request(struct evhttp_request *ev, void *arg)
{
    struct httpd *srv = arg;
    struct httpd_req *req = mem_zalloc(sizeof(*req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(ev);
    char *peer = NULL;

    req->start_ns = clock_mono_ns();
    req->ev = ev;
    req->evcon = evhttp_request_get_connection(ev);
    req->base = srv->base;
    req->timeout_s = srv->timeout_s;
    req->sse_buffer_max = srv->sse_buffer_max;
    req->method = "?";
    for (size_t i = 0; i < HTTPD_N_METHODS; i++) {
        if (httpd_methods[i].cmd == cmd) {
            req->method = httpd_methods[i].name;
        }
    }
    evhttp_connection_get_peer(req->evcon, &peer, &req->peer_port);
    snprintf(req->peer, sizeof(req->peer), "%s", peer ? peer : "");
    httpd_dispatch(srv, req, cmd);
}

/* evhttp's own error pages. evhttp answers some requests itself, before
 * any handler runs, with an HTML page from evhttp_send_error: a request
 * line or headers it cannot parse (400), a body over the limit or a
 * malformed chunked body (413), an Expect it does not know (417), a method
 * it does not know (501). libevent 2.1 has no hook to change that page
 * (evhttp_set_errorcb came in 2.2). Such a page is written whole, by one
 * evhttp_send, into the connection's empty output buffer (evhttp reads no
 * request before the previous answer is fully written), and it ends the
 * connection. This callback on the output buffer recognizes it by its exact
 * shape and replaces it with our JSON error before the loop writes a byte
 * of it. httpd itself never writes a page of that shape. */
static const char httpd_page_tail[] = "</BODY></HTML>\n";

static const char *httpd_page_code(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 413:
        return "body_too_large";
    case 417:
        return "expectation_failed";
    case 501:
        return "not_implemented";
    default:
        return "http_error";
    }
}

static void httpd_on_output(struct evbuffer *out,
                            const struct evbuffer_cb_info *info, void *arg)
{
    const struct httpd *srv = arg;
    size_t tail_len = sizeof(httpd_page_tail) - 1;
    size_t len = evbuffer_get_length(out);
    char page[HTTPD_EVHTTP_PAGE_MAX + 1];
    char title[40];
    char *eoh;
    char *line;
    char *message;
    struct evbuffer_ptr pos;
    struct buf json;
    struct buf resp;
    int status;

    if (info->n_added == 0 || len < 64 || len > HTTPD_EVHTTP_PAGE_MAX ||
        evbuffer_ptr_set(out, &pos, len - tail_len, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(out, &pos, page, tail_len) !=
            (ev_ssize_t)tail_len ||
        memcmp(page, httpd_page_tail, tail_len) != 0) {
        return;
    }
    if (evbuffer_copyout(out, page, len) != (ev_ssize_t)len) {
        return;
    }
    page[len] = '\0';
    if (strncmp(page, "HTTP/1.1 ", 9) != 0 ||
        strspn(page + 9, "0123456789") != 3 || page[12] != ' ') {
        return;
    }
    status = atoi(page + 9);
    eoh = strstr(page, "\r\n\r\n");
    snprintf(title, sizeof(title), "<HTML><HEAD>\n<TITLE>%d ", status);
    if (!eoh || strncmp(eoh + 4, title, strlen(title)) != 0) {
        return;
    }
    eoh[2] = '\0'; /* the headers, each line ending in CRLF */
    if (!strstr(page, "\r\nContent-Type: text/html\r\n")) {
        return;
    }

    if (status == 413) {
        message = mem_printf("request body over the limit of %zu bytes",
                             srv->max_body);
    } else if (status == 400) {
        message = mem_printf("malformed HTTP request, or request line and "
                             "headers over %zu bytes",
                             HTTPD_MAX_HEADERS);
    } else {
        message = mem_printf("HTTP %d", status);
    }
    buf_init(&json, 0);
    httpd_error_json(&json, httpd_page_code(status), message);
    free(message);

    /* Keep evhttp's status line, Date and Connection: close. */
    buf_init(&resp, 0);
    line = page;
    while (*line) {
        char *crlf = strstr(line, "\r\n");
        char *next = crlf ? crlf + 2 : line + strlen(line);

        if (strncasecmp(line, "Content-Type:", 13) != 0 &&
            strncasecmp(line, "Content-Length:", 15) != 0) {
            buf_add(&resp, line, (size_t)(next - line));
        }
        line = next;
    }
    buf_addf(&resp,
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             json.len);
    buf_add(&resp, json.data, json.len);
    /* This modifies the buffer from its own callback: libevent runs the
     * callbacks again for it, and this one then finds no page. */
    evbuffer_drain(out, len);
    evbuffer_add(out, resp.data, resp.len);
    log_debug("http: answered %d %s (request refused by the HTTP parser)",
              status, httpd_page_code(status));
    buf_cleanup(&resp);
    buf_cleanup(&json);
}

/* Server-Sent Events. */

static void httpd_sse_free(struct httpd_sse *sse)
{
    event_free(sse->close_ev);
    evbuffer_free(sse->frame);
    httpd_req_free(sse->req);
    free(sse);
}

/* The stream died (the connection went, or evhttp ended the request):
 * tell the owner, once. */
static void httpd_sse_died(struct httpd_sse *sse, const char *why)
{
    if (!sse->open) {
        return;
    }
    sse->open = false;
    httpd_access_log(sse->req, 200, why);
    if (sse->on_close) {
        sse->in_on_close = true;
        sse->on_close(sse, sse->arg);
        sse->in_on_close = false;
    }
    if (sse->end_requested) {
        httpd_sse_free(sse);
    }
}

/* From the loop, after httpd_sse_send found the client too slow: drop the
 * connection and what it still holds. evhttp frees the request with it and
 * runs our close callback, hence on_close. */
static void httpd_sse_on_close_ev(evutil_socket_t fd, short what, void *arg)
{
    struct httpd_sse *sse = arg;

    (void)fd;
    (void)what;
    if (sse->open && sse->req->evcon) {
        evhttp_connection_free(sse->req->evcon);
    }
    /* If on_close ended the stream, sse is freed: the last use of this
     * event was its callback's start, and libevent does not touch a
     * non-persistent event after its callback returns. */
}

struct httpd_sse *
httpd_sse_start(struct httpd_req *req,
                void (*on_close)(struct httpd_sse *sse, void *arg), void *arg)
{
    struct httpd_sse *sse;
    struct evkeyvalq *h;
    struct timeval tv = {req->timeout_s, 0};

    assert(!req->replied && !req->sse);
    if (!req->ev) {
        httpd_access_log(req, 200, "(stream not started: client gone)");
        httpd_release(req);
        return NULL;
    }
    sse = mem_zalloc(sizeof(*sse));
    sse->req = req;
    sse->on_close = on_close;
    sse->arg = arg;
    sse->open = true;
    sse->frame = evbuffer_new();
    sse->close_ev = evtimer_new(req->base, httpd_sse_on_close_ev, sse);
    if (!sse->frame || !sse->close_ev) {
        /* libevent's allocations fail only when memory does. */
        log_error("http: out of memory starting an event stream");
        abort();
    }
    req->sse = sse;
    h = evhttp_request_get_output_headers(req->ev);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    /* One stream per connection: EventSource reconnects on a new one, and
     * the connection does not keep the read timeout streams go without. */
    evhttp_add_header(h, "Connection", "close");
    /* Proxies such as nginx must not buffer the stream. */
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    evhttp_send_reply_start(req->ev, 200, NULL);
    if (!req->watched) {
        httpd_watch(req);
    }
    /* A stream's client sends nothing: no read timeout, but a write that
     * stalls that long still ends it. */
    bufferevent_set_timeouts(evhttp_connection_get_bufferevent(req->evcon),
                             NULL, req->timeout_s > 0 ? &tv : NULL);
    return sse;
}

bool httpd_sse_is_open(const struct httpd_sse *sse)
{
    return sse->open && !sse->capped && sse->req->ev;
}

/* Sends the frame built in sse->frame, or closes a stream whose client is
 * too slow for it. */
static int httpd_sse_flush(struct httpd_sse *sse)
{
    struct bufferevent *bev =
        evhttp_connection_get_bufferevent(sse->req->evcon);
    size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
    size_t n = evbuffer_get_length(sse->frame);

    if (pending + n > sse->req->sse_buffer_max) {
        struct timeval now = {0, 0};

        evbuffer_drain(sse->frame, n);
        sse->capped = true;
        log_info("http: closing the event stream of %s %s to %s: it reads "
                 "too slowly (%zu bytes waiting)",
                 sse->req->method, sse->req->path, sse->req->peer, pending);
        evtimer_add(sse->close_ev, &now);
        return ST_IO;
    }
    evhttp_send_reply_chunk(sse->req->ev, sse->frame);
    return 0;
}

/* Appends each line of s[0..len) to the frame as "<prefix>line\n". */
static void httpd_sse_lines(struct evbuffer *frame, const char *prefix,
                            const char *s, size_t len)
{
    size_t i = 0;

    for (;;) {
        size_t j = i;

        while (j < len && s[j] != '\n' && s[j] != '\r') {
            j++;
        }
        evbuffer_add_printf(frame, "%s", prefix);
        evbuffer_add(frame, s + i, j - i);
        evbuffer_add(frame, "\n", 1);
        if (j == len) {
            return;
        }
        i = j + (s[j] == '\r' && j + 1 < len && s[j + 1] == '\n' ? 2 : 1);
    }
}

int httpd_sse_send(struct httpd_sse *sse, const char *event, const char *id,
                   const char *data, size_t len)
{
    if ((event && strpbrk(event, "\r\n")) || (id && strpbrk(id, "\r\n"))) {
        return ST_INVALID;
    }
    if (!httpd_sse_is_open(sse)) {
        return ST_IO;
    }
    if (event) {
        evbuffer_add_printf(sse->frame, "event: %s\n", event);
    }
    if (id) {
        evbuffer_add_printf(sse->frame, "id: %s\n", id);
    }
    httpd_sse_lines(sse->frame, "data: ", data ? data : "", data ? len : 0);
    evbuffer_add(sse->frame, "\n", 1);
    return httpd_sse_flush(sse);
}

int httpd_sse_comment(struct httpd_sse *sse, const char *text)
{
    if (!httpd_sse_is_open(sse)) {
        return ST_IO;
    }
    httpd_sse_lines(sse->frame, ": ", text ? text : "",
                    text ? strlen(text) : 0);
    evbuffer_add(sse->frame, "\n", 1);
    return httpd_sse_flush(sse);
}

void httpd_sse_end(struct httpd_sse *sse)
{
    struct httpd_req *req;

    if (!sse) {
        return;
    }
    if (sse->in_on_close) {
        sse->end_requested = true;
        return;
    }
    req = sse->req;
    if (sse->open && req->ev) {
        sse->open = false;
        httpd_unwatch(req);
        if (sse->capped) {
            /* Its client reads too slowly to get the end anyway. */
            evhttp_connection_free(req->evcon);
        } else {
            evhttp_send_reply_end(req->ev);
        }
        req->ev = NULL;
        req->evcon = NULL;
        httpd_access_log(req, 200, "(stream ended)");
    }
    httpd_sse_free(sse);
}
