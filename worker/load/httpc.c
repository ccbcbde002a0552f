/* httpc: the HTTP/1.1 client of virtual users. One raw non-blocking socket
 * per conn with a persistent read event; requests are written straight
 * from the coroutine (no EV_WRITE round unless the socket buffer is full)
 * and responses parsed by libhttp-parser in the read callback, on the
 * loop's stack, out of one read buffer per client: a conn owns no read
 * buffer and a coroutine's stack only holds the request set-up. The
 * coroutine is resumed once per response. bufferevents were measured and
 * not taken: docs/load.md. */
#include "httpc_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "coro.h"
#include "log.h"
#include "mem.h"

#ifndef HANDOFF_VERSION
#define HANDOFF_VERSION "0.1"
#endif

/* One read per readiness fills this much; shared by every conn of a client
 * because a response is parsed as it arrives. */
#define HTTPC_READ_BUF (64 * 1024)
#define HTTPC_DNS_CACHE_MAX 256
#define HTTPC_HOST_MAX 256

struct dns_entry {
    char *host;
    struct sockaddr_storage addr; /* port 0 */
    socklen_t len;
    int64_t expires_ns;
};

/* One evdns lookup. It outlives a conn that stops waiting for it (timeout,
 * cancel): conn is then NULL and the callback frees it. */
struct dns_wait {
    struct httpc_client *client;
    struct httpc_conn *conn;
    bool done;
    int result; /* EVUTIL_EAI_* */
    struct sockaddr_storage addr;
    socklen_t len;
};

struct httpc_client {
    struct event_base *base;
    struct httpc_config cfg;
    char *resolv_conf;
    char *user_agent;
    char *tls_ca_file;
    struct httpc_metrics *metrics;
    char *rbuf; /* HTTPC_READ_BUF */
    const struct timeval *common_timeout;
    struct evdns_base *dns; /* made on the first name to resolve */
    struct dns_entry *dns_cache;
    size_t n_dns;
    size_t dns_next;    /* entry to replace when the cache is full */
    size_t dns_pending; /* lookups whose callback has not run yet */
    http_parser_settings settings;
    size_t n_conns;
    SSL_CTX *tls; /* made on the first https request */
};

/* The parts of a request URL, pointing into it. */
struct target {
    bool tls;
    char host[HTTPC_HOST_MAX];
    uint16_t port;
    const char *path; /* "/" when the URL has none */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
};

enum conn_phase { PH_IDLE, PH_DNS, PH_CONNECT, PH_SEND, PH_WAIT };

/* A conn's growable buffer, as struct buf but grown in its coroutine's
 * memory (coro_alloc): what a VU's requests and responses needed goes
 * away with the VU instead of staying in the heap's fragmented pages.
 * NUL-terminated once anything was added; data is NULL before. */
struct cbuf {
    char *data;
    size_t len; /* not counting the NUL */
    size_t cap;
};

struct httpc_conn {
    struct httpc_client *client;
    struct coro *co;
    int fd;                   /* -1 while there is no connection */
    SSL *ssl;                 /* https: the TLS session on fd */
    SSL_SESSION *tls_session; /* the last one, to resume */
    bool readable;            /* hev fired since it was added (TLS handshake) */
    struct event hev;         /* EV_READ, one-shot: TLS wants to read */
    bool waiting;             /* the coroutine is suspended in conn_wait */
    bool writable;            /* wev fired since it was added */
    bool cancelled;           /* httpc_conn_cancel */
    bool in_request;          /* between httpc_request's start and return */
    enum conn_phase phase;
    struct event rev;        /* EV_READ | EV_PERSIST while fd is open */
    struct event wev;        /* EV_WRITE: connect, full socket buffer */
    struct event tev;        /* the request's deadline */
    struct cbuf origin_host; /* where the open connection goes */
    uint16_t origin_port;
    bool origin_tls;
    struct cbuf out;  /* the request's bytes */
    struct cbuf name; /* the default metric name */
    const char *step; /* httpc_conn_set_context: "" for none */
    int64_t lag_ns;
    /* The last request without headers or body, kept parsed and written
     * out: a VU repeating a request skips both. t points into url. */
    bool last_valid;
    char last_method[16];
    struct cbuf last_url;
    struct target last_t;
    struct cbuf hdrs; /* response headers: name\0value\0... */
    size_t *hdr_offs; /* 2 per header, into hdrs */
    size_t n_hdr_offs;
    size_t hdr_offs_cap;
    struct httpc_header *hdr_list;
    size_t hdr_list_cap;
    struct cbuf body;
    char errtext[160];
    http_parser parser;
    struct httpc_response resp;
    /* The request in progress. */
    enum httpc_error err;
    bool complete; /* the final response has been parsed */
    bool got_byte; /* a response byte arrived */
    bool reusable; /* the connection may carry the next request */
    bool head;     /* HEAD: no body whatever the headers say */
    bool discard;  /* keep no body */
    int hdr_state; /* 0 none, 1 in a field, 2 in a value */
    size_t header_bytes;
    int64_t t_first_ns;
    int64_t t_done_ns;
    int64_t deadline_ns;
    struct dns_wait *dns;
};

/* httpc_error_str and httpc_timing_str are in httpc_metrics.c, with
 * the aggregates the controller links too. */

/* ---- Buffers ------------------------------------------------------------ */

/* Room for extra more bytes and the NUL. Capacities are powers of two
 * from 64: in the VU's memory, only the last block grows in place, and
 * doubling keeps what the moves leave behind below the final size. */
static void cbuf_reserve(struct httpc_conn *c, struct cbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap = 64;

    if (need > b->cap) {
        for (cap = b->cap ? b->cap : cap; cap < need; cap *= 2) {
        }
        b->data = coro_realloc(c->co, b->data, b->cap, cap);
        b->cap = cap;
    }
}

static void cbuf_add(struct httpc_conn *c, struct cbuf *b, const void *data,
                     size_t len)
{
    cbuf_reserve(c, b, len);
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
}

static void cbuf_adds(struct httpc_conn *c, struct cbuf *b, const char *s)
{
    cbuf_add(c, b, s, strlen(s));
}

static void cbuf_addc(struct httpc_conn *c, struct cbuf *b, char ch)
{
    cbuf_add(c, b, &ch, 1);
}

static void cbuf_reset(struct cbuf *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

static void cbuf_cleanup(struct httpc_conn *c, struct cbuf *b)
{
    coro_release(c->co, b->data, b->cap);
    memset(b, 0, sizeof(*b));
}

/* ---- Waiting and waking ------------------------------------------------ */

/* Suspends the conn's coroutine until a callback wakes it. Callers loop on
 * their own condition: any event of the request wakes it. */
static void conn_wait(struct httpc_conn *c)
{
    c->waiting = true;
    coro_yield(c->co);
}

/* Resumes the coroutine if it waits. The coroutine may start the next
 * request and change anything in c, so a callback calls this last. */
static void conn_wake(struct httpc_conn *c)
{
    if (c->waiting) {
        c->waiting = false;
        coro_resume(c->co);
    }
}

static void set_error(struct httpc_conn *c, enum httpc_error kind,
                      const char *fmt, ...) MEM_PRINTF(3, 4);

/* Records the request's first error; later ones are consequences. */
static void set_error(struct httpc_conn *c, enum httpc_error kind,
                      const char *fmt, ...)
{
    va_list ap;

    if (c->err != HTTPC_ERR_NONE) {
        return;
    }
    c->err = kind;
    va_start(ap, fmt);
    vsnprintf(c->errtext, sizeof(c->errtext), fmt, ap);
    va_end(ap);
}

static void conn_close(struct httpc_conn *c)
{
    if (c->fd < 0) {
        return;
    }
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->hev);
    if (c->ssl != NULL) {
        SSL_free(c->ssl); /* no close_notify: the socket closes now */
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
    cbuf_reset(&c->origin_host);
}

/* ---- Response parsing (loop stack) --------------------------------------- */

static int header_room(struct httpc_conn *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > c->client->cfg.max_header_bytes) {
        set_error(c, HTTPC_ERR_PARSE, "response headers over %zu bytes",
                  c->client->cfg.max_header_bytes);
        return -1;
    }
    return 0;
}

static void header_mark(struct httpc_conn *c)
{
    if (c->n_hdr_offs == c->hdr_offs_cap) {
        size_t cap = c->hdr_offs_cap ? 2 * c->hdr_offs_cap : 32;

        /* No overflow: max_header_bytes bounds the count. */
        c->hdr_offs = coro_realloc(c->co, c->hdr_offs,
                                   c->hdr_offs_cap * sizeof(*c->hdr_offs),
                                   cap * sizeof(*c->hdr_offs));
        c->hdr_offs_cap = cap;
    }
    c->hdr_offs[c->n_hdr_offs++] = c->hdrs.len;
}

static int on_status(http_parser *p, const char *at, size_t len)
{
    (void)at;
    return header_room(p->data, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct httpc_conn *c = p->data;

    if (header_room(c, len) != 0) {
        return -1;
    }
    if (c->hdr_state != 1) {
        if (c->hdr_state == 2) {
            cbuf_addc(c, &c->hdrs, '\0');
        }
        header_mark(c);
        c->hdr_state = 1;
    }
    cbuf_add(c, &c->hdrs, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct httpc_conn *c = p->data;

    if (header_room(c, len) != 0) {
        return -1;
    }
    if (c->hdr_state != 2) {
        cbuf_addc(c, &c->hdrs, '\0');
        header_mark(c);
        c->hdr_state = 2;
    }
    cbuf_add(c, &c->hdrs, at, len);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct httpc_conn *c = p->data;

    if (c->hdr_state == 1) {
        /* A field without a value. */
        cbuf_addc(c, &c->hdrs, '\0');
        header_mark(c);
    }
    if (c->hdr_state != 0) {
        cbuf_addc(c, &c->hdrs, '\0');
    }
    c->hdr_state = 0;
    return c->head ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct httpc_conn *c = p->data;
    size_t max = c->client->cfg.max_body_bytes;
    size_t keep = 0;

    c->resp.body_bytes += len;
    if (!c->discard && c->body.len < max) {
        keep = len < max - c->body.len ? len : max - c->body.len;
        cbuf_add(c, &c->body, at, keep);
    }
    if (keep < len) {
        c->resp.body_truncated = true;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct httpc_conn *c = p->data;

    if (p->status_code >= 100 && p->status_code < 200 &&
        p->status_code != 101) {
        /* An interim response (100 Continue, 103 Early Hints): the final
         * one follows on the same connection. */
        cbuf_reset(&c->hdrs);
        c->n_hdr_offs = 0;
        c->header_bytes = 0;
        return 0;
    }
    c->complete = true;
    /* After a 101 the connection speaks another protocol: not ours. */
    c->reusable = http_should_keep_alive(p) != 0 && !p->upgrade;
    /* Anything after the response is not ours: stop there. */
    http_parser_pause(p, 1);
    return 0;
}

static void parse(struct httpc_conn *c, const char *data, size_t len)
{
    size_t used =
        http_parser_execute(&c->parser, &c->client->settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

    if (c->complete) {
        if (used < len) {
            c->reusable = false;
        }
        return;
    }
    if (e != HPE_OK) {
        set_error(c, HTTPC_ERR_PARSE, "malformed response: %s",
                  http_errno_description(e));
    }
}

/* The server closed the connection. */
static void parse_eof(struct httpc_conn *c)
{
    if (c->got_byte && c->err == HTTPC_ERR_NONE) {
        /* A body delimited by the connection's end completes here. */
        http_parser_execute(&c->parser, &c->client->settings, NULL, 0);
    }
    if (c->complete) {
        c->reusable = false;
        return;
    }
    set_error(c, HTTPC_ERR_RESET, "%s",
              c->got_byte ? "connection closed in the middle of the response"
                          : "connection closed before the response");
}

/* The connection is open and no request uses it: a readable socket means
 * the server closed it (or sent what nobody asked for). */
static void drain_idle(struct httpc_conn *c)
{
    ssize_t n;

    if (c->ssl != NULL) {
        /* TLS 1.3 sends session tickets after the handshake: read and
         * drop them; anything else ends the connection. */
        int r = SSL_read(c->ssl, c->client->rbuf, HTTPC_READ_BUF);

        if (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ) {
            return;
        }
        conn_close(c);
        return;
    }
    n = recv(c->fd, c->client->rbuf, HTTPC_READ_BUF, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    conn_close(c);
}

/* One read from the connection into buf: recv, or SSL_read under TLS.
 * Returns the bytes read, 0 at the end of the stream, -1 with errno
 * EAGAIN when nothing is there yet, or -2 with the error set. */
static ssize_t conn_read(struct httpc_conn *c, char *buf, size_t len)
{
    ssize_t n;

    if (c->ssl != NULL) {
        int r = SSL_read(c->ssl, buf, (int)len);
        int e;

        if (r > 0) {
            return r;
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            errno = EAGAIN;
            return -1;
        }
        /* A server that closes without close_notify is common: EOF. */
        if (e == SSL_ERROR_ZERO_RETURN ||
            (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
            ERR_clear_error();
            return 0;
        }
        set_error(c, HTTPC_ERR_TLS, "TLS read: %s",
                  ERR_reason_error_string(ERR_get_error()));
        ERR_clear_error();
        return -2;
    }
    n = recv(c->fd, buf, len, 0);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        set_error(c, HTTPC_ERR_RESET, "recv: %s", strerror(errno));
        return -2;
    }
    if (n < 0 && errno == EWOULDBLOCK) {
        errno = EAGAIN;
    }
    return n;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct httpc_conn *c = arg;
    char *rbuf = c->client->rbuf;

    (void)what;
    if (!c->in_request || c->phase < PH_SEND) {
        drain_idle(c);
        return;
    }
    (void)fd;
    for (;;) {
        ssize_t n = conn_read(c, rbuf, HTTPC_READ_BUF);

        if (n > 0) {
            if (!c->got_byte) {
                c->got_byte = true;
                c->t_first_ns = clock_mono_ns();
            }
            c->resp.bytes_received += (uint64_t)n;
            parse(c, rbuf, (size_t)n);
            if (c->complete || c->err != HTTPC_ERR_NONE) {
                break;
            }
            /* TLS may hold decrypted bytes the socket no longer has:
             * read on until it says it wants more. */
            if (n < HTTPC_READ_BUF && c->ssl == NULL) {
                return; /* the rest comes with a later event */
            }
        } else if (n == 0) {
            parse_eof(c);
            break;
        } else if (n == -2) {
            break;
        } else if (errno == EAGAIN) {
            return;
        }
    }
    if (c->complete) {
        c->t_done_ns = clock_mono_ns();
    }
    conn_wake(c);
}

static void on_tls_readable(evutil_socket_t fd, short what, void *arg)
{
    struct httpc_conn *c = arg;

    (void)fd;
    (void)what;
    c->readable = true;
    conn_wake(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct httpc_conn *c = arg;

    (void)fd;
    (void)what;
    c->writable = true;
    conn_wake(c);
}

static void add_deadline(struct httpc_conn *c, int64_t timeout_ns)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(timeout_ns / 1000000000);
    tv.tv_usec = (suseconds_t)((timeout_ns % 1000000000 + 999) / 1000);
    event_add(&c->tev, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct httpc_conn *c = arg;
    int64_t left = c->deadline_ns - clock_mono_ns();

    (void)fd;
    (void)what;
    /* libevent's clock is CLOCK_MONOTONIC_COARSE: a timer may fire a tick
     * early. */
    if (left > 0) {
        add_deadline(c, left);
        return;
    }
    set_error(c, HTTPC_ERR_TIMEOUT, "no complete response in time");
    conn_wake(c);
}

/* ---- Client -------------------------------------------------------------- */

int httpc_client_new(struct event_base *base, const struct httpc_config *cfg,
                     struct httpc_client **out)
{
    struct httpc_client *c;
    struct httpc_config rc;
    struct timeval tv;

    if (base == NULL || out == NULL || httpc_config_resolve(cfg, &rc) != 0) {
        return ST_INVALID;
    }
    c = mem_zalloc(sizeof(*c));
    if (httpc_metrics_new(&rc, &c->metrics) != 0) {
        free(c);
        return ST_INVALID;
    }
    c->base = base;
    c->cfg = rc;
    if (rc.resolv_conf != NULL) {
        c->resolv_conf = mem_strdup(rc.resolv_conf);
    }
    c->user_agent =
        mem_strdup(rc.user_agent ? rc.user_agent : "handoff/" HANDOFF_VERSION);
    c->cfg.resolv_conf = c->resolv_conf;
    if (rc.tls_ca_file != NULL) {
        c->tls_ca_file = mem_strdup(rc.tls_ca_file);
    }
    c->cfg.tls_ca_file = c->tls_ca_file;
    c->cfg.user_agent = c->user_agent;
    c->rbuf = mem_alloc(HTTPC_READ_BUF);
    /* Every request with the default timeout shares one timer queue: O(1)
     * instead of a heap operation per request. */
    tv.tv_sec = (time_t)(rc.timeout_ns / 1000000000);
    tv.tv_usec = (suseconds_t)(rc.timeout_ns % 1000000000 / 1000);
    c->common_timeout = event_base_init_common_timeout(base, &tv);
    c->dns_cache = mem_calloc(HTTPC_DNS_CACHE_MAX, sizeof(*c->dns_cache));
    http_parser_settings_init(&c->settings);
    c->settings.on_status = on_status;
    c->settings.on_header_field = on_header_field;
    c->settings.on_header_value = on_header_value;
    c->settings.on_headers_complete = on_headers_complete;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
    *out = c;
    return 0;
}

void httpc_client_free(struct httpc_client *c)
{
    if (c == NULL) {
        return;
    }
    assert(c->n_conns == 0);
    if (c->dns != NULL) {
        /* Lookups given up on were cancelled; evdns reports that from the
         * loop, and each report frees its record. One pass delivers them,
         * before the evdns base goes away. */
        if (c->dns_pending > 0) {
            event_base_loop(c->base, EVLOOP_NONBLOCK);
        }
        evdns_base_free(c->dns, 0);
    }
    for (size_t i = 0; i < c->n_dns; i++) {
        free(c->dns_cache[i].host);
    }
    free(c->dns_cache);
    if (c->tls != NULL) {
        SSL_CTX_free(c->tls);
    }
    httpc_metrics_free(c->metrics);
    free(c->rbuf);
    free(c->resolv_conf);
    free(c->tls_ca_file);
    free(c->user_agent);
    free(c);
}

struct httpc_metrics *httpc_client_metrics(struct httpc_client *c)
{
    return c->metrics;
}

struct httpc_metrics *httpc_client_swap_metrics(struct httpc_client *c,
                                                struct httpc_metrics *fresh)
{
    struct httpc_metrics *old = c->metrics;

    c->metrics = fresh;
    return old;
}

/* ---- Conn ---------------------------------------------------------------- */

struct httpc_conn *httpc_conn_new(struct httpc_client *cl, struct coro *co)
{
    struct httpc_conn *c = coro_alloc(co, sizeof(*c));

    memset(c, 0, sizeof(*c));
    c->client = cl;
    c->co = co;
    c->fd = -1;
    c->step = "";
    evtimer_assign(&c->tev, cl->base, on_deadline, c);
    cl->n_conns++;
    return c;
}

void httpc_conn_free(struct httpc_conn *c)
{
    if (c == NULL) {
        return;
    }
    assert(!c->in_request);
    conn_close(c);
    event_del(&c->tev);
    cbuf_cleanup(c, &c->origin_host);
    cbuf_cleanup(c, &c->last_url);
    cbuf_cleanup(c, &c->out);
    cbuf_cleanup(c, &c->name);
    cbuf_cleanup(c, &c->hdrs);
    cbuf_cleanup(c, &c->body);
    coro_release(c->co, c->hdr_offs, c->hdr_offs_cap * sizeof(*c->hdr_offs));
    coro_release(c->co, c->hdr_list, c->hdr_list_cap * sizeof(*c->hdr_list));
    if (c->tls_session != NULL) {
        SSL_SESSION_free(c->tls_session);
    }
    c->client->n_conns--;
    coro_release(c->co, c, sizeof(*c));
}

void httpc_conn_set_context(struct httpc_conn *c, const char *step,
                            int64_t lag_ns)
{
    c->step = step != NULL ? step : "";
    c->lag_ns = lag_ns > 0 ? lag_ns : 0;
}

void httpc_conn_cancel(struct httpc_conn *c)
{
    c->cancelled = true;
    if (c->in_request) {
        set_error(c, HTTPC_ERR_CANCELLED, "cancelled");
        conn_wake(c);
    }
}

void httpc_conn_reset_cancel(struct httpc_conn *c)
{
    assert(!c->in_request);
    c->cancelled = false;
}

/* ---- Name resolution ----------------------------------------------------- */

static void on_dns(int result, struct evutil_addrinfo *res, void *arg)
{
    struct dns_wait *w = arg;

    w->client->dns_pending--;
    if (w->conn == NULL) {
        if (res != NULL) {
            evutil_freeaddrinfo(res);
        }
        free(w);
        return;
    }
    w->done = true;
    w->result = result;
    if (result == 0 && res != NULL && res->ai_addrlen <= sizeof(w->addr)) {
        memcpy(&w->addr, res->ai_addr, res->ai_addrlen);
        w->len = (socklen_t)res->ai_addrlen;
    } else if (result == 0) {
        w->result = EVUTIL_EAI_FAIL;
    }
    if (res != NULL) {
        evutil_freeaddrinfo(res);
    }
    conn_wake(w->conn);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    }
}

static void dns_remember(struct httpc_client *cl, const char *host,
                         const struct sockaddr_storage *ss, socklen_t len)
{
    struct dns_entry *e;

    if (cl->n_dns < HTTPC_DNS_CACHE_MAX) {
        e = &cl->dns_cache[cl->n_dns++];
    } else {
        e = &cl->dns_cache[cl->dns_next];
        cl->dns_next = (cl->dns_next + 1) % HTTPC_DNS_CACHE_MAX;
        free(e->host);
    }
    e->host = mem_strdup(host);
    e->addr = *ss;
    e->len = len;
    e->expires_ns = clock_mono_ns() + cl->cfg.dns_ttl_ns;
}

static int dns_setup(struct httpc_client *cl)
{
    const char *path = cl->resolv_conf ? cl->resolv_conf : "/etc/resolv.conf";

    cl->dns = evdns_base_new(cl->base, 0);
    if (cl->dns == NULL) {
        return -1;
    }
    /* Also loads /etc/hosts. A missing file leaves a default name server
     * on 127.0.0.1; that is evdns's choice and what resolvers do. */
    evdns_base_resolv_conf_parse(cl->dns, DNS_OPTIONS_ALL, path);
    return 0;
}

/* Fills *ss (port included) for host: numeric, cached, or asked of evdns
 * while the coroutine waits. Returns 0, or -1 with the error set. */
static int resolve(struct httpc_conn *c, const struct target *t,
                   struct sockaddr_storage *ss, socklen_t *len)
{
    struct httpc_client *cl = c->client;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    struct evutil_addrinfo hints;
    struct dns_wait *w;
    int64_t now;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, t->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        *len = sizeof(*sin);
        set_port(ss, t->port);
        return 0;
    }
    if (inet_pton(AF_INET6, t->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        *len = sizeof(*sin6);
        set_port(ss, t->port);
        return 0;
    }
    now = clock_mono_ns();
    for (size_t i = 0; i < cl->n_dns; i++) {
        if (strcmp(cl->dns_cache[i].host, t->host) == 0 &&
            cl->dns_cache[i].expires_ns > now) {
            *ss = cl->dns_cache[i].addr;
            *len = cl->dns_cache[i].len;
            set_port(ss, t->port);
            return 0;
        }
    }
    if (cl->dns == NULL && dns_setup(cl) != 0) {
        set_error(c, HTTPC_ERR_DNS, "%s: cannot set up the resolver", t->host);
        return -1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    w = mem_zalloc(sizeof(*w));
    w->client = cl;
    w->conn = c;
    cl->dns_pending++;
    c->phase = PH_DNS;
    c->dns = w;
    /* NULL when it answered at once (numeric, /etc/hosts, an error): the
     * callback has run then, without resuming anyone. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(cl->dns, t->host, NULL, &hints, on_dns, w);
    while (!w->done && c->err == HTTPC_ERR_NONE) {
        conn_wait(c);
    }
    c->dns = NULL;
    if (!w->done) {
        /* Timed out or cancelled: evdns reports the cancellation later,
         * and on_dns frees w then. */
        w->conn = NULL;
        evdns_getaddrinfo_cancel(req);
        return -1;
    }
    if (w->result != 0) {
        set_error(c, HTTPC_ERR_DNS, "%s: %s", t->host,
                  evutil_gai_strerror(w->result));
        free(w);
        return -1;
    }
    *ss = w->addr;
    *len = w->len;
    free(w);
    set_port(ss, 0);
    dns_remember(cl, t->host, ss, *len);
    set_port(ss, t->port);
    return 0;
}

/* ---- Connecting and sending (coroutine stack) ---------------------------- */

/* Waits until wev fires, the response completes or an error is set. */
static void wait_writable(struct httpc_conn *c)
{
    c->writable = false;
    event_add(&c->wev, NULL);
    while (!c->writable && !c->complete && c->err == HTTPC_ERR_NONE) {
        conn_wait(c);
    }
    event_del(&c->wev);
}

/* Waits until hev fires (the socket is readable while TLS wants to read
 * outside the response phase), or an error is set. */
static void wait_tls_readable(struct httpc_conn *c)
{
    c->readable = false;
    event_add(&c->hev, NULL);
    while (!c->readable && !c->complete && c->err == HTTPC_ERR_NONE) {
        conn_wait(c);
    }
    event_del(&c->hev);
}

/* The client's TLS context: system trust store, TLS 1.2 at least, peer
 * verified unless the configuration says otherwise. */
static SSL_CTX *tls_ctx(struct httpc_conn *c)
{
    struct httpc_client *cl = c->client;

    if (cl->tls != NULL) {
        return cl->tls;
    }
    cl->tls = SSL_CTX_new(TLS_client_method());
    if (cl->tls == NULL) {
        return NULL;
    }
    SSL_CTX_set_min_proto_version(cl->tls, TLS1_2_VERSION);
    SSL_CTX_set_mode(cl->tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (cl->cfg.tls_ca_file != NULL) {
        SSL_CTX_load_verify_locations(cl->tls, cl->cfg.tls_ca_file, NULL);
    } else {
        SSL_CTX_set_default_verify_paths(cl->tls);
    }
    SSL_CTX_set_verify(cl->tls,
                       cl->cfg.tls_insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       NULL);
    /* Sessions are resumed per connection slot: a new connection of the
     * same VU to the same origin skips the full handshake. */
    SSL_CTX_set_session_cache_mode(cl->tls, SSL_SESS_CACHE_CLIENT);
    return cl->tls;
}

/* Runs the TLS handshake on the connected socket, with SNI and the host
 * name checked against the certificate. Returns 0, or -1 with the error
 * set. */
static int tls_handshake(struct httpc_conn *c, const struct target *t)
{
    SSL_CTX *ctx = tls_ctx(c);

    if (ctx == NULL || (c->ssl = SSL_new(ctx)) == NULL) {
        set_error(c, HTTPC_ERR_TLS, "cannot set up TLS");
        return -1;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, t->host);
    if (!c->client->cfg.tls_insecure) {
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(c->ssl, t->host);
    }
    if (c->tls_session != NULL) {
        SSL_set_session(c->ssl, c->tls_session);
    }
    for (;;) {
        int r = SSL_connect(c->ssl);
        int e;

        if (r == 1) {
            break;
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            wait_tls_readable(c);
        } else if (e == SSL_ERROR_WANT_WRITE) {
            wait_writable(c);
        } else {
            long v = SSL_get_verify_result(c->ssl);

            set_error(c, HTTPC_ERR_TLS, "TLS handshake with %s: %s", t->host,
                      v != X509_V_OK ? X509_verify_cert_error_string(v)
                      : ERR_peek_error() != 0
                          ? ERR_reason_error_string(ERR_peek_error())
                          : "connection closed");
            ERR_clear_error();
            return -1;
        }
        if (c->err != HTTPC_ERR_NONE) {
            return -1;
        }
    }
    if (c->tls_session != NULL) {
        SSL_SESSION_free(c->tls_session);
    }
    c->tls_session = SSL_get1_session(c->ssl);
    return 0;
}

static int conn_connect(struct httpc_conn *c, const struct target *t,
                        const struct sockaddr_storage *ss, socklen_t len)
{
    int one = 1;
    int soerr = 0;
    socklen_t soerr_len = sizeof(soerr);

    c->fd =
        socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        set_error(c, HTTPC_ERR_CONNECT, "socket: %s", strerror(errno));
        return -1;
    }
    /* Requests go out in one write; Nagle would only delay them. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&c->rev, c->client->base, c->fd, EV_READ | EV_PERSIST,
                 on_readable, c);
    event_assign(&c->wev, c->client->base, c->fd, EV_WRITE, on_writable, c);
    event_assign(&c->hev, c->client->base, c->fd, EV_READ, on_tls_readable, c);
    c->phase = PH_CONNECT;
    if (connect(c->fd, (const struct sockaddr *)ss, len) != 0) {
        if (errno != EINPROGRESS) {
            set_error(c, HTTPC_ERR_CONNECT, "connect to %s:%u: %s", t->host,
                      t->port, strerror(errno));
            return -1;
        }
        wait_writable(c);
        if (c->err != HTTPC_ERR_NONE) {
            return -1;
        }
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) != 0) {
            soerr = errno;
        }
        if (soerr != 0) {
            set_error(c, HTTPC_ERR_CONNECT, "connect to %s:%u: %s", t->host,
                      t->port, strerror(soerr));
            return -1;
        }
    }
    event_add(&c->rev, NULL);
    return 0;
}

/* Writes the request. Returns 0, or -1 with the error set; *send_failed
 * tells a failed write (the connection was dead) from other errors. */
static int conn_send(struct httpc_conn *c, bool *send_failed)
{
    size_t off = 0;

    *send_failed = false;
    while (off < c->out.len && !c->complete && c->err == HTTPC_ERR_NONE) {
        ssize_t n;

        if (c->ssl != NULL) {
            int r =
                SSL_write(c->ssl, c->out.data + off, (int)(c->out.len - off));
            int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);

            if (r > 0) {
                off += (size_t)r;
            } else if (e == SSL_ERROR_WANT_WRITE) {
                wait_writable(c);
            } else if (e == SSL_ERROR_WANT_READ) {
                wait_tls_readable(c);
            } else {
                set_error(c, HTTPC_ERR_RESET, "TLS write: %s",
                          ERR_reason_error_string(ERR_get_error()));
                ERR_clear_error();
                *send_failed = true;
            }
            continue;
        }
        n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (n >= 0) {
            off += (size_t)n;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait_writable(c);
        } else if (errno != EINTR) {
            set_error(c, HTTPC_ERR_RESET, "send: %s", strerror(errno));
            *send_failed = true;
        }
    }
    c->resp.bytes_sent += off;
    return c->err == HTTPC_ERR_NONE ? 0 : -1;
}

/* ---- Requests ------------------------------------------------------------ */

static bool is_token(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch <= ' ' || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch)) {
            return false;
        }
    }
    return true;
}

static bool is_field_value(const char *s)
{
    for (; *s; s++) {
        if (*s == '\r' || *s == '\n') {
            return false;
        }
    }
    return true;
}

static int parse_target(struct httpc_conn *c, const char *url, struct target *t)
{
    struct http_parser_url u;
    size_t len = url ? strlen(url) : 0;
    const char *scheme;
    size_t scheme_len;
    size_t host_len;

    memset(t, 0, sizeof(*t));
    http_parser_url_init(&u);
    if (url == NULL || len > 65535 ||
        http_parser_parse_url(url, len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST))) {
        set_error(c, HTTPC_ERR_INVALID, "not an absolute http(s) URL");
        return -1;
    }
    scheme = url + u.field_data[UF_SCHEMA].off;
    scheme_len = u.field_data[UF_SCHEMA].len;
    if (scheme_len == 5 && strncasecmp(scheme, "https", 5) == 0) {
        t->tls = true;
    } else if (!(scheme_len == 4 && strncasecmp(scheme, "http", 4) == 0)) {
        set_error(c, HTTPC_ERR_INVALID, "scheme %.*s is not http or https",
                  (int)scheme_len, scheme);
        return -1;
    }
    host_len = u.field_data[UF_HOST].len;
    if (host_len == 0 || host_len >= sizeof(t->host) ||
        (u.field_set & (1 << UF_USERINFO))) {
        set_error(c, HTTPC_ERR_INVALID, "bad host in URL");
        return -1;
    }
    memcpy(t->host, url + u.field_data[UF_HOST].off, host_len);
    t->host[host_len] = '\0';
    t->port = (u.field_set & (1 << UF_PORT)) ? u.port : (t->tls ? 443 : 80);
    if (t->port == 0) {
        set_error(c, HTTPC_ERR_INVALID, "port 0 in URL");
        return -1;
    }
    if (u.field_set & (1 << UF_PATH)) {
        t->path = url + u.field_data[UF_PATH].off;
        t->path_len = u.field_data[UF_PATH].len;
    } else {
        t->path = "/";
        t->path_len = 1;
    }
    if (u.field_set & (1 << UF_QUERY)) {
        t->query = url + u.field_data[UF_QUERY].off;
        t->query_len = u.field_data[UF_QUERY].len;
    }
    return 0;
}

/* Writes the request line, headers and body into c->out. */
static int build_request(struct httpc_conn *c, const struct httpc_request *req,
                         const char *method, const struct target *t)
{
    struct cbuf *b = &c->out;
    bool v6 = strchr(t->host, ':') != NULL;
    bool default_port = t->port == (t->tls ? 443 : 80);

    if (!is_token(method)) {
        set_error(c, HTTPC_ERR_INVALID, "bad method");
        return -1;
    }
    cbuf_reset(b);
    cbuf_adds(c, b, method);
    cbuf_addc(c, b, ' ');
    cbuf_add(c, b, t->path, t->path_len);
    if (t->query != NULL) {
        cbuf_addc(c, b, '?');
        cbuf_add(c, b, t->query, t->query_len);
    }
    cbuf_add(c, b, " HTTP/1.1\r\nHost: ", 17);
    if (v6) {
        cbuf_addc(c, b, '[');
    }
    cbuf_adds(c, b, t->host);
    if (v6) {
        cbuf_addc(c, b, ']');
    }
    if (!default_port) {
        char port[8];
        size_t i = sizeof(port);
        unsigned v = t->port;

        do {
            port[--i] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        port[--i] = ':';
        cbuf_add(c, b, port + i, sizeof(port) - i);
    }
    cbuf_add(c, b, "\r\n", 2);
    if (c->client->user_agent[0] != '\0') {
        cbuf_add(c, b, "User-Agent: ", 12);
        cbuf_adds(c, b, c->client->user_agent);
        cbuf_add(c, b, "\r\n", 2);
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct httpc_header *h = &req->headers[i];

        if (h->name == NULL || h->value == NULL || !is_token(h->name) ||
            !is_field_value(h->value)) {
            set_error(c, HTTPC_ERR_INVALID, "bad request header");
            return -1;
        }
        cbuf_adds(c, b, h->name);
        cbuf_add(c, b, ": ", 2);
        cbuf_adds(c, b, h->value);
        cbuf_add(c, b, "\r\n", 2);
    }
    if (req->body_len > 0 || strcmp(method, "POST") == 0 ||
        strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
        char cl[40];
        int n =
            snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", req->body_len);

        cbuf_add(c, b, cl, (size_t)n);
    }
    cbuf_add(c, b, "\r\n", 2);
    if (req->body_len > 0) {
        cbuf_add(c, b, req->body, req->body_len);
    }
    return 0;
}

/* Clears what a request leaves in c and c->resp. */
static void request_reset(struct httpc_conn *c)
{
    struct httpc_response *r = &c->resp;

    memset(r, 0, sizeof(*r));
    c->err = HTTPC_ERR_NONE;
    c->errtext[0] = '\0';
    c->complete = false;
    c->got_byte = false;
    c->reusable = false;
    c->hdr_state = 0;
    c->header_bytes = 0;
    c->n_hdr_offs = 0;
    c->t_first_ns = 0;
    c->t_done_ns = 0;
    cbuf_reset(&c->hdrs);
    cbuf_reset(&c->body);
}

static void arm_deadline(struct httpc_conn *c, int64_t start_ns,
                         int64_t timeout_ns)
{
    if (timeout_ns <= 0 || timeout_ns == c->client->cfg.timeout_ns) {
        c->deadline_ns = start_ns + c->client->cfg.timeout_ns;
        event_add(&c->tev, c->client->common_timeout);
        return;
    }
    c->deadline_ns = start_ns + timeout_ns;
    add_deadline(c, timeout_ns);
}

/* Points the response at the headers and body gathered. */
static void finish_response(struct httpc_conn *c)
{
    struct httpc_response *r = &c->resp;
    size_t n = c->n_hdr_offs / 2;

    r->error = c->err;
    r->error_text = c->errtext;
    r->status = c->err == HTTPC_ERR_NONE ? (int)c->parser.status_code : 0;
    if (n > c->hdr_list_cap) {
        c->hdr_list = coro_realloc(c->co, c->hdr_list,
                                   c->hdr_list_cap * sizeof(*c->hdr_list),
                                   n * sizeof(*c->hdr_list));
        c->hdr_list_cap = n;
    }
    for (size_t i = 0; i < n && c->hdrs.data != NULL; i++) {
        c->hdr_list[i].name = c->hdrs.data + c->hdr_offs[2 * i];
        c->hdr_list[i].value = c->hdrs.data + c->hdr_offs[2 * i + 1];
    }
    r->headers = c->hdr_list;
    r->n_headers = c->complete ? n : 0;
    r->body = c->body.data != NULL ? c->body.data : "";
    r->body_len = c->body.len;
}

static bool is_idempotent(const char *method)
{
    static const char *const ok[] = {"GET",    "HEAD",  "OPTIONS",
                                     "DELETE", "TRACE", "PUT"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (strcmp(method, ok[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Parses req's URL and writes the request and the default name out. A
 * simple request (no headers, no body) is kept for the next call: its URL
 * is copied first and t points into the copy. */
static int prepare(struct httpc_conn *c, const struct httpc_request *req,
                   const char *method, bool simple, struct target *t)
{
    const char *url = req->url;

    c->last_valid = false;
    if (simple) {
        cbuf_reset(&c->last_url);
        cbuf_adds(c, &c->last_url, req->url);
        url = c->last_url.data;
    }
    cbuf_reset(&c->name);
    if (parse_target(c, url, t) != 0) {
        return -1;
    }
    cbuf_adds(c, &c->name, method);
    cbuf_addc(c, &c->name, ' ');
    cbuf_add(c, &c->name, t->path, t->path_len);
    if (build_request(c, req, method, t) != 0) {
        return -1;
    }
    if (simple) {
        c->last_valid = true;
        memcpy(c->last_method, method, strlen(method) + 1);
        c->last_t = *t;
    }
    return 0;
}

const struct httpc_response *httpc_request(struct httpc_conn *c,
                                           const struct httpc_request *req)
{
    struct httpc_client *cl = c->client;
    struct httpc_response *r = &c->resp;
    const char *method = req->method ? req->method : "GET";
    struct target t;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    bool simple = req->n_headers == 0 && req->body_len == 0 &&
                  req->url != NULL && strlen(method) < sizeof(c->last_method);
    int64_t t0 = clock_mono_ns();
    int64_t t_ready = t0;
    int64_t t_conn = t0;
    int64_t t_tls = t0;
    int64_t t_sent = t0;
    bool retried = false;
    bool send_failed = false;
    const char *name;
    size_t name_len;

    assert(coro_current() == c->co && !c->in_request);
    request_reset(c);
    c->in_request = true;
    c->head = strcmp(method, "HEAD") == 0;
    c->discard = req->discard_body;
    if (c->cancelled) {
        set_error(c, HTTPC_ERR_CANCELLED, "cancelled");
    }
    if (c->err != HTTPC_ERR_NONE) {
        goto done;
    }
    if (simple && c->last_valid && strcmp(c->last_method, method) == 0 &&
        strcmp(c->last_url.data, req->url) == 0) {
        t = c->last_t; /* c->out and c->name hold it already */
    } else if (prepare(c, req, method, simple, &t) != 0) {
        goto done;
    }
    arm_deadline(c, t0, req->timeout_ns);
again:
    if (c->fd >= 0 && c->origin_port == t.port && c->origin_tls == t.tls &&
        strcmp(c->origin_host.data, t.host) == 0) {
        r->reused = true;
        t_ready = t_conn = t_tls = clock_mono_ns();
    } else {
        conn_close(c);
        r->reused = false;
        if (resolve(c, &t, &ss, &sslen) != 0) {
            goto done;
        }
        t_ready = clock_mono_ns();
        if (conn_connect(c, &t, &ss, sslen) != 0) {
            t_conn = t_tls = clock_mono_ns();
            goto done;
        }
        t_conn = t_tls = clock_mono_ns();
        if (t.tls) {
            int hs = tls_handshake(c, &t);

            t_tls = clock_mono_ns();
            if (hs != 0) {
                goto done;
            }
        }
        cbuf_adds(c, &c->origin_host, t.host);
        c->origin_port = t.port;
        c->origin_tls = t.tls;
    }
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->phase = PH_SEND;
    if (conn_send(c, &send_failed) == 0) {
        t_sent = clock_mono_ns();
        c->phase = PH_WAIT;
        while (!c->complete && c->err == HTTPC_ERR_NONE) {
            conn_wait(c);
        }
    } else {
        t_sent = clock_mono_ns();
    }
    /* A kept-alive connection the server closed meanwhile fails before any
     * byte of a response: once, try again on a new one, as browsers do
     * with requests that are safe to repeat. */
    if (r->reused && !retried && is_idempotent(method) &&
        (send_failed || (c->err == HTTPC_ERR_RESET && !c->got_byte))) {
        retried = true;
        conn_close(c);
        request_reset(c);
        goto again;
    }
done:
    event_del(&c->tev);
    c->in_request = false;
    c->phase = PH_IDLE;
    if (c->err != HTTPC_ERR_NONE || !c->reusable) {
        conn_close(c);
    }
    finish_response(c);
    r->timings_ns[HTTPC_T_BLOCKED] = t_ready - t0;
    r->timings_ns[HTTPC_T_CONNECTING] = r->reused ? 0 : t_conn - t_ready;
    r->timings_ns[HTTPC_T_TLS_HANDSHAKING] = r->reused ? 0 : t_tls - t_conn;
    r->timings_ns[HTTPC_T_SENDING] = t_sent > t_tls ? t_sent - t_tls : 0;
    if (c->got_byte) {
        int64_t end = c->complete ? c->t_done_ns : clock_mono_ns();

        r->timings_ns[HTTPC_T_WAITING] = c->t_first_ns - t_sent;
        r->timings_ns[HTTPC_T_RECEIVING] = end - c->t_first_ns;
    } else if (c->err != HTTPC_ERR_NONE && t_sent > t0) {
        r->timings_ns[HTTPC_T_WAITING] = clock_mono_ns() - t_sent;
    }
    r->timings_ns[HTTPC_T_DURATION] = r->timings_ns[HTTPC_T_SENDING] +
                                      r->timings_ns[HTTPC_T_WAITING] +
                                      r->timings_ns[HTTPC_T_RECEIVING];
    r->timings_ns[HTTPC_T_LATENCY] = c->lag_ns +
                                     r->timings_ns[HTTPC_T_BLOCKED] +
                                     r->timings_ns[HTTPC_T_CONNECTING] +
                                     r->timings_ns[HTTPC_T_TLS_HANDSHAKING] +
                                     r->timings_ns[HTTPC_T_DURATION];
    if (req->name != NULL) {
        name = req->name;
        name_len = strlen(name);
    } else if (c->name.len > 0) {
        name = c->name.data;
        name_len = c->name.len;
    } else {
        name = "invalid";
        name_len = strlen(name);
    }
    r->name = name;
    if (c->err != HTTPC_ERR_CANCELLED) {
        r->name = httpc_metrics_record(cl->metrics, c->step, name, name_len, r);
    }
    return r;
}

const struct httpc_response *httpc_get(struct httpc_conn *conn, const char *url)
{
    struct httpc_request req;

    memset(&req, 0, sizeof(req));
    req.url = url;
    return httpc_request(conn, &req);
}

const char *httpc_response_header(const struct httpc_response *r,
                                  const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return NULL;
}
