/* httpc: the HTTP/1.1 client virtual users call. A request blocks only the
 * calling coroutine; the socket work happens on the thread's libevent loop.
 * Every request is recorded, without user code, into the client's metrics:
 * per request name, counts, status codes, error kinds, bytes and k6's
 * timing phases in log-linear histograms. Design: docs/load.md. */
#ifndef HANDOFF_HTTPC_H
#define HANDOFF_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "status.h"

struct coro;
struct event_base;

/* What went wrong with a request, or NONE. X(name, text). */
#define HTTPC_ERROR_MAP(X)                                                     \
    X(NONE, "none")                                                            \
    X(INVALID, "invalid")     /* bad URL, method or header: nothing sent */    \
    X(DNS, "dns")             /* the host name did not resolve */              \
    X(CONNECT, "connect")     /* refused, unreachable, ... */                  \
    X(TLS, "tls")             /* handshake, certificate or TLS failure */      \
    X(TIMEOUT, "timeout")     /* the request's deadline passed */              \
    X(RESET, "reset")         /* closed or reset before the response ended */  \
    X(PARSE, "parse")         /* not HTTP/1.x, or past a size cap */           \
    X(CANCELLED, "cancelled") /* httpc_conn_cancel; not recorded */

enum httpc_error {
#define HTTPC_ERROR_ENUM(name, text) HTTPC_ERR_##name,
    HTTPC_ERROR_MAP(HTTPC_ERROR_ENUM)
#undef HTTPC_ERROR_ENUM
        HTTPC_ERR_COUNT
};

/* Timings of one request, named as k6 names their metrics. duration is
 * sending + waiting + receiving. latency runs from the request's intended
 * start to its end: the call, moved earlier by the conn's lag (see
 * httpc_conn_set_context), so it holds blocked and connecting too and,
 * under arrival-rate executors, how late the iteration started. blocked runs from the call to the moment a
 * connection is ready to connect or to reuse (DNS included); connecting
 * from connect() to the TCP handshake's end; waiting from the request's
 * last byte written to the response's first byte read (time to first
 * byte); receiving from there to the response's end. Phases that did not
 * happen (connecting on a reused connection) are 0. */
#define HTTPC_TIMING_MAP(X)                                                    \
    X(DURATION, "http_req_duration")                                           \
    X(LATENCY, "http_req_latency")                                             \
    X(BLOCKED, "http_req_blocked")                                             \
    X(CONNECTING, "http_req_connecting")                                       \
    X(TLS_HANDSHAKING, "http_req_tls_handshaking")                             \
    X(SENDING, "http_req_sending")                                             \
    X(WAITING, "http_req_waiting")                                             \
    X(RECEIVING, "http_req_receiving")

enum httpc_timing {
#define HTTPC_TIMING_ENUM(name, text) HTTPC_T_##name,
    HTTPC_TIMING_MAP(HTTPC_TIMING_ENUM)
#undef HTTPC_TIMING_ENUM
        HTTPC_T_COUNT
};

/* Texts of the two enums; "unknown" out of range. */
const char *httpc_error_str(enum httpc_error e);
const char *httpc_timing_str(enum httpc_timing t);

/* Defaults taken for fields left 0. */
#define HTTPC_TIMEOUT_DEFAULT_NS (INT64_C(60) * 1000000000)
#define HTTPC_MAX_HEADER_DEFAULT (64 * 1024)
#define HTTPC_MAX_HEADER_LIMIT (80 * 1024) /* libhttp-parser's own cap */
#define HTTPC_MAX_BODY_DEFAULT (1024 * 1024)
#define HTTPC_MAX_NAMES_DEFAULT 64
#define HTTPC_DNS_TTL_DEFAULT_NS (INT64_C(300) * 1000000000)

struct httpc_config {
    int64_t timeout_ns;      /* whole request, connect included */
    size_t max_header_bytes; /* response status line and headers; more is
                                a PARSE error. At most
                                HTTPC_MAX_HEADER_LIMIT */
    size_t max_body_bytes;   /* kept per response; the rest is read,
                                counted and dropped (body_truncated) */
    size_t max_names;        /* request names kept apart, "other" included;
                                at least 2 */
    int64_t dns_ttl_ns;      /* how long a resolved address is reused */
    const char *resolv_conf; /* NULL: /etc/resolv.conf and /etc/hosts */
    const char *user_agent;  /* NULL: "handoff/<version>"; "" sends none */
    /* https: certificates are checked against the system's trust store
     * (or tls_ca_file, a PEM bundle) and the URL's host name, unless
     * tls_insecure (self-signed test systems). */
    const char *tls_ca_file;
    bool tls_insecure;
    struct hist_config hist; /* timings in ns; all 0: 1 h at 2 digits */
};

/* A header, for requests (borrowed) and responses (owned by the conn). */
struct httpc_header {
    const char *name;
    const char *value;
};

struct httpc_request {
    const char *method; /* NULL: "GET" */
    const char *url;    /* http://host[:port][/path][?query] */
    const char *name;   /* metric name; NULL: method + " " + path without
                           the query, e.g. "GET /users/42". Set it when
                           URLs carry ids, or every id becomes a name */
    const struct httpc_header *headers; /* extra request headers */
    size_t n_headers;
    const void *body; /* sent with a Content-Length */
    size_t body_len;
    int64_t timeout_ns; /* 0: the client's */
    bool discard_body;  /* count the body's bytes but keep none */
};

/* The outcome of a request. Owned by the conn; valid until its next
 * request or httpc_conn_free. */
struct httpc_response {
    int status;             /* 0 when error is not NONE */
    enum httpc_error error; /* NONE, or why status is 0 */
    const char *error_text; /* detail for the log; "" when none */
    const char *name;       /* the metric name it was recorded under */
    const char *body;       /* NUL-terminated; "" when none */
    size_t body_len;        /* bytes in body */
    uint64_t body_bytes;    /* bytes of body received, kept or not */
    bool body_truncated;    /* more than max_body_bytes or discarded */
    const struct httpc_header *headers; /* in arrival order */
    size_t n_headers;
    int64_t timings_ns[HTTPC_T_COUNT];
    uint64_t bytes_sent;     /* on the wire: request line, headers, body */
    uint64_t bytes_received; /* on the wire: everything read */
    bool reused;             /* sent on a kept-alive connection */
};

/* Aggregates of one request name. */
#define HTTPC_STATUS_SLOTS 600 /* status[code]; codes >= 600 go to [0] */
struct httpc_stats {
    const char *step; /* the conn's step when recorded; "" for none */
    const char *name;
    uint64_t requests; /* recorded: completed or failed, not cancelled */
    uint64_t failed;   /* an error, or a status outside 200..399 */
    uint64_t errors[HTTPC_ERR_COUNT];
    uint64_t status[HTTPC_STATUS_SLOTS];
    uint64_t bytes_sent;
    uint64_t bytes_received;
    struct hist *timings[HTTPC_T_COUNT];
};

/* Per-(step, name) aggregates, capped: past max_names - 1 distinct pairs,
 * requests are folded into one with step "" and name HTTPC_OTHER_NAME,
 * with one warning. */
#define HTTPC_OTHER_NAME "other"
struct httpc_metrics;

struct httpc_client;
struct httpc_conn;

/* Creates a client on base: one per loop thread. cfg (may be NULL for the
 * defaults) is copied. Returns 0 with *out owned by the caller, or
 * ST_INVALID for a bad configuration. The client's loop thread only, from
 * here on. */
MUST_CHECK int httpc_client_new(struct event_base *base,
                                const struct httpc_config *cfg,
                                struct httpc_client **out);
/* Frees the client and its metrics. Every conn must be freed first. NULL
 * does nothing. */
void httpc_client_free(struct httpc_client *c);
/* The client's metrics, owned by it. */
struct httpc_metrics *httpc_client_metrics(struct httpc_client *c);
/* Makes fresh (same configuration, owned by the client from now on) the
 * client's metrics and returns the previous ones, owned by the caller:
 * how a loop thread hands over a second's delta. */
struct httpc_metrics *httpc_client_swap_metrics(struct httpc_client *c,
                                                struct httpc_metrics *fresh);

/* A connection slot for one coroutine (a VU): at most one TCP connection,
 * kept alive between requests to the same scheme, host and port, and
 * replaced when another origin is asked for. The conn and its buffers are
 * allocated in co's own memory while it has room (coro_alloc), so they go
 * with co's mapping: free the conn before co. Costs about 1.3 KiB until the
 * first request. */
struct httpc_conn *httpc_conn_new(struct httpc_client *c, struct coro *co);
/* What the next requests on conn are recorded under: step (borrowed until
 * the next call; NULL or "" for none) and lag_ns, how much later than
 * intended the caller started (>= 0; added to http_req_latency). */
void httpc_conn_set_context(struct httpc_conn *conn, const char *step,
                            int64_t lag_ns);
/* Closes and frees conn. Not while a request on it is in progress (cancel
 * it and let it return first). NULL does nothing. */
void httpc_conn_free(struct httpc_conn *conn);
/* From the loop, outside the coroutine: a request in progress on conn
 * returns at once with HTTPC_ERR_CANCELLED (the coroutine runs before this
 * returns), and so does every later one until httpc_conn_reset_cancel. */
void httpc_conn_cancel(struct httpc_conn *conn);
/* Lets requests on conn run again after httpc_conn_cancel (a VU whose
 * iteration was cut short goes on to others). Not while a request on it
 * is in progress. */
void httpc_conn_reset_cancel(struct httpc_conn *conn);

/* Sends req on conn and suspends the calling coroutine, conn's, until the
 * response has been read, an error happened or the timeout passed. Records
 * the request in the client's metrics unless it was cancelled. Never
 * returns NULL: failures come back as a response with error set. req is
 * borrowed for the call. Only from conn's coroutine. */
const struct httpc_response *httpc_request(struct httpc_conn *conn,
                                           const struct httpc_request *req);
/* GET url with the defaults. */
const struct httpc_response *httpc_get(struct httpc_conn *conn,
                                       const char *url);
/* The value of r's first header called name (case-insensitive), or NULL. */
const char *httpc_response_header(const struct httpc_response *r,
                                  const char *name);

/* An empty set of metrics for cfg (NULL: defaults), e.g. to merge per-thread
 * metrics into. Returns 0 with *out owned by the caller, or ST_INVALID. */
MUST_CHECK int httpc_metrics_new(const struct httpc_config *cfg,
                                 struct httpc_metrics **out);
void httpc_metrics_free(struct httpc_metrics *m);
/* Adds src's aggregates to dst's, name by name (src is borrowed), folding
 * names past dst's cap into "other". Returns 0, or ST_INVALID when their
 * histogram configurations differ (dst unchanged then). */
MUST_CHECK int httpc_metrics_merge(struct httpc_metrics *dst,
                                   const struct httpc_metrics *src);
/* Names held, "other" included once used; entries 0..count-1 in the order
 * they first appeared. Borrowed from m. */
size_t httpc_metrics_count(const struct httpc_metrics *m);
const struct httpc_stats *httpc_metrics_at(const struct httpc_metrics *m,
                                           size_t i);
/* The stats of name outside any step, or NULL. */
const struct httpc_stats *httpc_metrics_find(const struct httpc_metrics *m,
                                             const char *name);
/* The stats of (step, name), or NULL. */
const struct httpc_stats *httpc_metrics_find_step(const struct httpc_metrics *m,
                                                  const char *step,
                                                  const char *name);
/* A new set (owned by the caller) with one entry, step "" and name "",
 * that adds up every entry of m. */
struct httpc_metrics *httpc_metrics_sum(const struct httpc_metrics *m);
/* Empties m, keeping its names and memory. */
void httpc_metrics_reset(struct httpc_metrics *m);
/* Requests recorded under "other" because the cap was reached. */
uint64_t httpc_metrics_folded(const struct httpc_metrics *m);

#endif
