/* httpd: the HTTP/1.1 server of the controller (API, web UI, event
 * streams) and of the worker's /metrics, on libevent's evhttp: routes with
 * {param} segments, JSON errors, replies made later from the loop, and
 * Server-Sent Events. evhttp's types stay inside httpd.c.
 *
 * Threads: everything here runs on the thread of the event_base the server
 * was made with (the loop thread), handlers and callbacks included.
 *
 * Errors are always JSON, {"error":{"code":"...","message":"..."}}, even
 * those evhttp produces itself (request line or headers it cannot parse:
 * 400 bad_request; body over the limit: 413 body_too_large; a method it
 * does not know: 501 not_implemented). docs/api.md lists the codes.
 *
 * jansson, the controller's JSON library, appears in one function
 * (httpd_reply_json_value) as a forward-declared struct: callers that use
 * jansson pass a json_t *, others need not include it. */
#ifndef HANDOFF_HTTPD_H
#define HANDOFF_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "status.h"

struct event_base;
struct json_t;

struct httpd;
/* One request, owned by the server. A handler's req stays valid until one
 * reply call releases it: httpd_reply_json, httpd_reply_json_value,
 * httpd_reply_error, httpd_reply_text or httpd_sse_start. That call may be
 * made inside the handler or later, from the loop thread (after a database
 * task, say). Every request gets exactly one such call, also when its
 * client has gone away meanwhile (the reply is then dropped and the call
 * only releases req); no function may be called on req after it. */
struct httpd_req;
/* One Server-Sent Events stream (httpd_sse_start). */
struct httpd_sse;

/* Default for max_body: the API's HANDOFF_HTTP_MAX_BODY default. */
#define HTTPD_MAX_BODY_DEFAULT ((size_t)1 << 20)
/* Request line plus headers may not exceed this (400 bad_request). */
#define HTTPD_MAX_HEADERS ((size_t)64 << 10)
/* Default I/O timeout (httpd_set_timeout). */
#define HTTPD_TIMEOUT_DEFAULT_S 60
/* Default cap on the data a stream holds for a client that does not read
 * (httpd_set_sse_buffer_max). */
#define HTTPD_SSE_BUFFER_DEFAULT ((size_t)1 << 20)

/* Listens on addr: "127.0.0.1:8080", "[::1]:8080", "localhost:8080"
 * (127.0.0.1; other host names are refused: no DNS at start-up), or ":8080"
 * for every IPv4 interface; port 0 picks a free port (httpd_port). Request bodies over max_body bytes (1..SIZE_MAX/4) are
 * answered 413 body_too_large. Returns 0 and *out, ST_INVALID for an
 * address or max_body that is wrong (logged), or ST_IO when the address
 * cannot be bound, e.g. the port is taken (logged with the reason).
 * Requests without a route are answered 404 until httpd_route adds some. */
MUST_CHECK int httpd_new(struct event_base *base, const char *addr,
                         size_t max_body, struct httpd **out);

/* The port the server listens on (the one picked for port 0). */
uint16_t httpd_port(const struct httpd *srv);

/* Sets the I/O timeout in seconds (default HTTPD_TIMEOUT_DEFAULT_S) for
 * connections accepted from now on: an idle keep-alive connection, a client
 * that stalls while sending its request or while it is sent a reply, and a
 * request left unanswered that long after its handler returned (its
 * connection is closed; the reply, when made, is dropped). Streams have no
 * idle limit; only a stalled write ends them. seconds <= 0 means none. */
void httpd_set_timeout(struct httpd *srv, int seconds);

/* Sets how many bytes of events a stream may hold for a client that reads
 * too slowly before it is closed (default HTTPD_SSE_BUFFER_DEFAULT), for
 * streams started from now on. */
void httpd_set_sse_buffer_max(struct httpd *srv, size_t bytes);

/* Closes the listening socket and every connection, then frees srv.
 * Requests waiting for their reply become gone (their reply calls still
 * have to be made, and only release them); each open stream's on_close
 * runs before this returns (httpd_sse_end must still be called). Not from a
 * handler or callback of srv. The event_base must outlive every request and
 * stream released after this. NULL does nothing. */
void httpd_free(struct httpd *srv);

/* Routes requests with method ("GET", "POST", "PUT", "PATCH", "DELETE",
 * "HEAD", "OPTIONS") and a path matching pattern to handler(req, arg).
 * A pattern is a path of segments, each literal text or {name} (one
 * non-empty segment, percent-decoded, read with httpd_req_param); the last
 * may be {name...} (the rest of the path, possibly empty, decoded, slashes
 * kept). "/api/v1/runs/{id}/tests/{name}" matches
 * "/api/v1/runs/42/tests/test%2Fa" with id "42" and name "test/a". When
 * several patterns match a path, literal segments beat {name} and {name}
 * beats {name...}, from the left. A GET route also answers HEAD. A path that
 * matches routes of other methods only is answered 405 method_not_allowed
 * with an Allow header; a path that matches none, 404 not_found; a path
 * that is not valid percent-encoding, 400 bad_request. pattern is copied.
 * Returns 0, ST_INVALID for a bad method or pattern (logged), or
 * ST_CONFLICT if method and pattern are routed already. */
MUST_CHECK int httpd_route(struct httpd *srv, const char *method,
                           const char *pattern,
                           void (*handler)(struct httpd_req *req, void *arg),
                           void *arg);

/* Request accessors. Strings they return are borrowed: valid until req is
 * released. */

/* "GET", "POST", ... (HEAD requests routed to a GET handler say "HEAD"). */
const char *httpd_req_method(const struct httpd_req *req);
/* The path as the client sent it, still percent-encoded, without the
 * query. */
const char *httpd_req_path(const struct httpd_req *req);
/* The decoded value of the pattern's {name}, or NULL if the pattern has no
 * such segment. */
const char *httpd_req_param(const struct httpd_req *req, const char *name);
/* The decoded value of the first key=value pair of the query string with
 * that (decoded) key, "" for a bare key ("?verbose"), NULL if absent.
 * '+' decodes to a space. */
const char *httpd_req_query(const struct httpd_req *req, const char *key);
/* The value of a request header (name is case-insensitive), or NULL if
 * absent or the client has gone away. */
const char *httpd_req_header(const struct httpd_req *req, const char *name);
/* The request body, complete (evhttp reads it all before the handler
 * runs), NUL-terminated after *len bytes; "" with *len 0 when there is none
 * or the client has gone away. len may be NULL. */
const char *httpd_req_body(struct httpd_req *req, size_t *len);
/* The client's address ("127.0.0.1", "::1") and, if port is not NULL, its
 * port. */
const char *httpd_req_peer(const struct httpd_req *req, uint16_t *port);
/* True when the Accept header lists text/html with a non-zero quality:
 * a browser that wants the web UI rather than JSON. */
bool httpd_req_wants_html(const struct httpd_req *req);
/* True once the client has gone away (closed the connection, or the
 * server timed it out or was freed): a reply would be dropped. Useful to
 * stop work early; the reply call is still required to release req. */
bool httpd_req_is_gone(const struct httpd_req *req);

/* Replies. Each releases req (see struct httpd_req) and returns 0 when the
 * reply went to the connection, or ST_IO when the client had gone away and
 * the reply was dropped. status is 200..599. Content-Length is set. */

/* Adds a response header (Location, Allow, Cache-Control, ...) to the
 * coming reply; it does not release req. value is copied. Returns 0, or
 * ST_INVALID for a name that is not a token or a value with CR or LF:
 * nothing is added, so a value from outside cannot inject headers (callers
 * may ignore the code when a missing header is acceptable). After the
 * client has gone away it returns 0 and does nothing. */
int httpd_reply_header(struct httpd_req *req, const char *name,
                       const char *value);
/* Replies with json[0..len) as application/json. The text is sent as is:
 * the caller makes it valid JSON. */
int httpd_reply_json(struct httpd_req *req, int status, const char *json,
                     size_t len);
/* Replies with value (a json_t *, borrowed) serialized compactly as
 * application/json. */
int httpd_reply_json_value(struct httpd_req *req, int status,
                           const struct json_t *value);
/* Replies with exactly {"error":{"code":"<code>","message":"<message>"}}
 * where message is printf(fmt, ...); both are JSON-escaped (invalid UTF-8
 * becomes U+FFFD). code is one of the codes docs/api.md lists. */
int httpd_reply_error(struct httpd_req *req, int status, const char *code,
                      const char *fmt, ...) MEM_PRINTF(4, 5);
/* Replies with body[0..len) and Content-Type content_type (none if NULL;
 * "text/html; charset=utf-8" for a page). body may be NULL when len is 0. */
int httpd_reply_text(struct httpd_req *req, int status,
                     const char *content_type, const char *body, size_t len);

/* Server-Sent Events. */

/* Answers req with a 200 text/event-stream (chunked, Cache-Control:
 * no-cache, Connection: close) that stays open for httpd_sse_send, and
 * releases req. Returns the stream, or NULL when the client has already
 * gone away (then nothing else happens: on_close never runs). The caller
 * owns the stream and must end it with httpd_sse_end, exactly once.
 *
 * on_close(sse, arg) runs exactly once if the stream dies before
 * httpd_sse_end: the client went away, a write stalled past the timeout, the
 * client read too slowly (httpd_set_sse_buffer_max), or httpd_free. It runs
 * on the loop thread, never from inside httpd_sse_send or httpd_sse_comment,
 * and may call httpd_sse_end(sse) (nothing else may be called on sse after
 * that). Sends on a dead stream fail with ST_IO. */
struct httpd_sse *
httpd_sse_start(struct httpd_req *req,
                void (*on_close)(struct httpd_sse *sse, void *arg), void *arg);
/* Sends one event: "event: <event>" (if event is not NULL), "id: <id>" (if
 * id is not NULL), one "data: " line per line of data[0..len) (split at
 * "\r\n", "\n" or "\r", so the client gets data back whole), and a blank
 * line. Returns 0, ST_INVALID if event or id contains CR or LF (nothing
 * sent), or ST_IO if the stream is dead or this event would take it over
 * its buffer limit: the stream is then closed and on_close follows from
 * the loop. */
int httpd_sse_send(struct httpd_sse *sse, const char *event, const char *id,
                   const char *data, size_t len);
/* Sends a comment line (": text", one per line of text): a keep-alive that
 * clients ignore. Returns like httpd_sse_send. */
int httpd_sse_comment(struct httpd_sse *sse, const char *text);
/* True until the stream dies or is ended. */
bool httpd_sse_is_open(const struct httpd_sse *sse);
/* Ends the stream (if still open, after the events already sent) and
 * frees sse; on_close will not run after this. NULL does nothing. */
void httpd_sse_end(struct httpd_sse *sse);

#endif
