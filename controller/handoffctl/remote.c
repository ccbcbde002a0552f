/* The controller's HTTP API over libcurl: one easy handle per client,
 * reused so requests share the connection. Plain requests have a connect
 * and a total timeout and a body cap; the event stream has no total
 * timeout but gives up when nothing arrives for idle_timeout_ms (the
 * controller sends keep-alive comments), checked from the progress
 * callback, which libcurl calls about once a second even on a silent
 * connection. The same callback ends a transfer when *stop is set. */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "remote.h"
#include "remote_int.h"
#include "sse.h"

/* Bytes of an error body kept for the message. */
#define REMOTE_MAX_ERROR_BODY ((size_t)64 << 10)

struct remote {
    CURL *curl;
    char *url;         /* no trailing slash */
    char *auth_header; /* "Authorization: Bearer ..." or NULL */
    char *user_agent;
    int64_t connect_timeout_ms;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    size_t max_body;
    size_t max_line;
    const volatile sig_atomic_t *stop;
    char curl_error[CURL_ERROR_SIZE];
};

/* One transfer in progress. */
struct xfer {
    struct remote *r;
    struct buf body; /* capped */
    bool over_cap;
    int64_t last_data_ns; /* monotonic: when bytes last arrived */
    /* Event stream only: */
    bool stream;
    long status; /* once known */
    struct sse sse;
    remote_event_fn fn;
    void *arg;
    int fn_rc;
    bool run_ended;
    bool bad_line;
    bool idle;
};

static void set_error(struct remote_error *err, int http_status,
                      const char *fmt, ...) MEM_PRINTF(3, 4);

static void set_error(struct remote_error *err, int http_status,
                      const char *fmt, ...)
{
    va_list ap;

    err->http_status = http_status;
    err->code[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* Printable ASCII only: what may go into a header value. */
static bool is_header_safe(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) {
            return false;
        }
    }
    return true;
}

static bool url_is_valid(const char *url)
{
    const char *host;

    if (strncasecmp(url, "http://", 7) == 0) {
        host = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        host = url + 8;
    } else {
        return false;
    }
    if (*host == '\0' || *host == '/' || *host == '?' || *host == '#') {
        return false;
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return false;
        }
    }
    return strchr(url, '?') == NULL && strchr(url, '#') == NULL;
}

int remote_new(const struct remote_config *cfg, struct remote **out,
               struct remote_error *err)
{
    struct remote *r;
    size_t len;

    if (!cfg->url || !url_is_valid(cfg->url)) {
        set_error(err, 0,
                  "the controller URL \"%s\" is not an http:// or "
                  "https:// URL (e.g. http://127.0.0.1:8080)",
                  cfg->url ? cfg->url : "");
        return ST_INVALID;
    }
    if (cfg->token && (!*cfg->token || !is_header_safe(cfg->token) ||
                       strchr(cfg->token, ' '))) {
        set_error(err, 0,
                  "HANDOFF_TOKEN holds characters a bearer token cannot "
                  "have (spaces, control characters or non-ASCII)");
        return ST_INVALID;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        set_error(err, 0, "cannot initialise libcurl");
        return ST_INTERNAL;
    }
    r = mem_zalloc(sizeof(*r));
    r->curl = curl_easy_init();
    if (!r->curl) {
        free(r);
        curl_global_cleanup();
        set_error(err, 0, "cannot initialise libcurl");
        return ST_INTERNAL;
    }
    r->url = mem_strdup(cfg->url);
    len = strlen(r->url);
    while (len > 0 && r->url[len - 1] == '/') {
        r->url[--len] = '\0';
    }
    if (cfg->token) {
        r->auth_header = mem_printf("Authorization: Bearer %s", cfg->token);
    }
    r->user_agent =
        mem_strdup(cfg->user_agent ? cfg->user_agent : "handoffctl");
    r->connect_timeout_ms = cfg->connect_timeout_ms > 0
                                ? cfg->connect_timeout_ms
                                : REMOTE_CONNECT_TIMEOUT_MS;
    r->request_timeout_ms = cfg->request_timeout_ms > 0
                                ? cfg->request_timeout_ms
                                : REMOTE_REQUEST_TIMEOUT_MS;
    r->idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms
                                                  : REMOTE_IDLE_TIMEOUT_MS;
    r->max_body = cfg->max_body ? cfg->max_body : REMOTE_MAX_BODY;
    r->max_line = cfg->max_line ? cfg->max_line : REMOTE_MAX_LINE;
    r->stop = cfg->stop;
    *out = r;
    return ST_OK;
}

void remote_free(struct remote *r)
{
    if (!r) {
        return;
    }
    curl_easy_cleanup(r->curl);
    free(r->url);
    free(r->auth_header);
    free(r->user_agent);
    free(r);
    curl_global_cleanup();
}

const char *remote_url(const struct remote *r)
{
    return r->url;
}

static bool stopped(const struct remote *r)
{
    return r->stop && *r->stop;
}

/* ---- Transfers -------------------------------------------------------- */

static int on_sse_event(void *arg, const char *type, const char *data,
                        size_t len, const char *id)
{
    struct xfer *x = arg;
    struct remote_event ev;
    char why[256];
    int rc;

    rc = remote_json_event(type, data, len, &ev, why, sizeof(why));
    if (rc != ST_OK) {
        log_debug("event stream: skipping event %s (id %s): %s", type, id, why);
        return 0;
    }
    x->fn_rc = x->fn(x->arg, &ev);
    if (ev.kind == REMOTE_EVENT_RUN_END) {
        x->run_ended = true;
    }
    remote_event_cleanup(&ev);
    return x->fn_rc || x->run_ended ? 1 : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;

    (void)data;
    x->last_data_ns = clock_mono_ns();
    return size * n;
}

static size_t on_write(char *data, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;

    x->last_data_ns = clock_mono_ns();
    if (x->stream) {
        if (x->status == 0) {
            curl_easy_getinfo(x->r->curl, CURLINFO_RESPONSE_CODE, &x->status);
        }
        if (x->status != 200) {
            /* An error answer: its start is enough for the message. */
            if (buf_append(&x->body, data, len) != ST_OK) {
                log_debug("event stream: error answer cut at %zu bytes",
                          x->body.len);
            }
            return len;
        }
        /* Returning less than len ends the transfer (CURLE_WRITE_ERROR);
         * the flags say why. */
        if (sse_feed(&x->sse, data, len, on_sse_event, x) != 0) {
            x->bad_line = !x->fn_rc && !x->run_ended;
            return 0;
        }
        return len;
    }
    if (buf_append(&x->body, data, len) != ST_OK) {
        x->over_cap = true;
        return 0;
    }
    return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (stopped(x->r)) {
        return 1;
    }
    if (x->stream && clock_mono_ns() - x->last_data_ns >
                         x->r->idle_timeout_ms * CLOCK_NS_PER_MS) {
        x->idle = true;
        return 1;
    }
    return 0;
}

static void xfer_init(struct xfer *x, struct remote *r, bool stream)
{
    memset(x, 0, sizeof(*x));
    x->r = r;
    x->stream = stream;
    buf_init(&x->body, stream ? REMOTE_MAX_ERROR_BODY : r->max_body);
    sse_init(&x->sse, r->max_line);
    x->last_data_ns = clock_mono_ns();
}

static void xfer_cleanup(struct xfer *x)
{
    buf_cleanup(&x->body);
    sse_cleanup(&x->sse);
}

/* The message of an error answer: the API's, or the body's first line.
 * Control characters from the network stay off the terminal. */
static void error_answer(struct remote_error *err, long status,
                         const struct buf *body)
{
    const char *text = buf_str(body);
    size_t n;

    err->http_status = (int)status;
    err->code[0] = '\0';
    if (!remote_json_error(body->data, body->len, err)) {
        while (*text == ' ' || *text == '\n' || *text == '\r' ||
               *text == '\t') {
            text++;
        }
        n = strcspn(text, "\r\n");
        if (n > 200) {
            n = 200;
        }
        if (n == 0) {
            snprintf(err->message, sizeof(err->message), "HTTP %ld", status);
        } else {
            snprintf(err->message, sizeof(err->message), "%.*s", (int)n, text);
        }
    }
    for (char *p = err->message; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    for (char *p = err->code; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
}

/* Status for a finished exchange with HTTP status code status. */
static int status_of_answer(struct remote *r, long status,
                            const struct buf *body, struct remote_error *err)
{
    if (status >= 200 && status < 300) {
        return ST_OK;
    }
    if (status >= 400 && status < 500) {
        error_answer(err, status, body);
        return status == 404   ? ST_NOT_FOUND
               : status == 409 ? ST_CONFLICT
                               : ST_INVALID;
    }
    if (status >= 500 && status < 600) {
        struct remote_error api;

        error_answer(&api, status, body);
        set_error(err, (int)status,
                  "the controller at %s is unavailable: HTTP %ld%s%s: %s",
                  r->url, status, api.code[0] ? " " : "", api.code,
                  api.message);
        return ST_UPSTREAM;
    }
    set_error(err, (int)status,
              "the controller at %s answered with HTTP status %ld, which "
              "the API does not use",
              r->url, status);
    return ST_PROTOCOL;
}

/* curl_slist_append fails only when out of memory, which aborts here as
 * everywhere else (mem.h). */
static struct curl_slist *add_header(struct curl_slist *list, const char *h)
{
    struct curl_slist *l = curl_slist_append(list, h);

    if (!l) {
        fprintf(stderr, "handoffctl: out of memory\n");
        abort();
    }
    return l;
}

/* Sets the options every transfer has. Returns the header list (the caller
 * frees it after the transfer). */
static struct curl_slist *prepare(struct remote *r, struct xfer *x,
                                  const char *url, const char *method,
                                  const struct buf *body,
                                  const char *idempotency_key)
{
    struct curl_slist *headers = NULL;
    CURL *c = r->curl;

    curl_easy_reset(c);
    r->curl_error[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_error);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, r->user_agent);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)r->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    if (x->stream) {
        curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        headers = add_header(headers, "Accept: text/event-stream");
        headers = add_header(headers, "Cache-Control: no-cache");
    } else {
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->request_timeout_ms);
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
        headers = add_header(headers, "Accept: application/json");
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        /* PATCH and DELETE (schedules): POST's options below carry the
         * body, this the method. */
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? buf_str(body) : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(body ? body->len : 0));
        if (body) {
            headers = add_header(headers, "Content-Type: application/json");
        }
        /* No "Expect: 100-continue" round trip for small bodies. */
        headers = add_header(headers, "Expect:");
    }
    if (r->auth_header) {
        headers = add_header(headers, r->auth_header);
    }
    if (idempotency_key) {
        char *h = mem_printf("Idempotency-Key: %s", idempotency_key);

        headers = add_header(headers, h);
        free(h);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    return headers;
}

/* Status for a transfer libcurl could not complete. */
static int status_of_failure(struct remote *r, struct xfer *x, CURLcode cc,
                             const char *what, struct remote_error *err)
{
    const char *detail =
        r->curl_error[0] ? r->curl_error : curl_easy_strerror(cc);
    curl_off_t connect_us = 0;

    if (stopped(r)) {
        set_error(err, 0, "interrupted");
        return ST_CANCELLED;
    }
    if (x->over_cap) {
        set_error(err, 0,
                  "the controller's answer to %s is over the limit of %zu "
                  "bytes",
                  what, x->body.max);
        return ST_PROTOCOL;
    }
    /* A timeout after the connection was made is the controller being
     * slow; before, it is the controller being unreachable. */
    curl_easy_getinfo(r->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
    if (cc == CURLE_OPERATION_TIMEDOUT && connect_us > 0) {
        char limit[32];

        clock_format_duration(r->request_timeout_ms * CLOCK_NS_PER_MS, limit,
                              sizeof(limit));
        set_error(err, 0, "the controller at %s did not answer %s within %s",
                  r->url, what, limit);
        return ST_TIMEOUT;
    }
    set_error(err, 0, "cannot reach the controller at %s: %s", r->url, detail);
    return ST_UPSTREAM;
}

/* A plain request: method on path (with query), optional JSON body. On
 * success raw (if not NULL) and *answer hold the body. */
static int request(struct remote *r, const char *method, const char *path,
                   const struct buf *body, const char *idempotency_key,
                   struct buf *answer, struct remote_error *err)
{
    char *url = mem_printf("%s%s", r->url, path);
    char *what = mem_printf("%s %s", method, path);
    struct curl_slist *headers;
    struct xfer x;
    long status = 0;
    CURLcode cc;
    int rc;

    xfer_init(&x, r, false);
    headers = prepare(r, &x, url, method, body, idempotency_key);
    cc = curl_easy_perform(r->curl);
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    log_debug("%s %s: HTTP %ld, %zu bytes, %s", method, url, status, x.body.len,
              cc == CURLE_OK ? "ok" : curl_easy_strerror(cc));
    if (cc != CURLE_OK) {
        rc = status_of_failure(r, &x, cc, what, err);
    } else {
        rc = status_of_answer(r, status, &x.body, err);
    }
    if (rc == ST_OK) {
        buf_reset(answer);
        buf_add(answer, x.body.data, x.body.len);
    }
    curl_slist_free_all(headers);
    xfer_cleanup(&x);
    free(what);
    free(url);
    return rc;
}

/* path + "/" + id, URL-escaped, + tail. */
static char *run_path(struct remote *r, const char *id, const char *tail)
{
    char *escaped = curl_easy_escape(r->curl, id, (int)strlen(id));
    char *path;

    if (!escaped) {
        /* Only on out-of-memory, which mem_* would abort on too. */
        abort();
    }
    path = mem_printf("/api/v1/runs/%s%s", escaped, tail);
    curl_free(escaped);
    return path;
}

static int bad_answer(struct remote *r, const char *what, const char *want,
                      const char *why, struct remote_error *err)
{
    set_error(err, 0,
              "the controller at %s answered %s with something that is "
              "not %s: %s",
              r->url, what, want, why);
    return ST_PROTOCOL;
}

/* Decodes a run answer of request what. */
static int run_answer(struct remote *r, const char *what, struct buf *body,
                      bool detail, struct remote_run *out, struct buf *raw,
                      struct remote_error *err)
{
    char why[512];

    if (remote_json_run(body->data, body->len, detail, out, why, sizeof(why)) !=
        ST_OK) {
        return bad_answer(r, what, "a run", why, err);
    }
    if (raw) {
        buf_reset(raw);
        buf_add(raw, body->data, body->len);
    }
    return ST_OK;
}

int remote_start_run(struct remote *r, const struct remote_run_request *req,
                     struct remote_run *out, struct buf *raw,
                     struct remote_error *err)
{
    struct buf body;
    struct buf answer;
    char why[256];
    int rc;

    if (req->idempotency_key &&
        (!*req->idempotency_key || !is_header_safe(req->idempotency_key))) {
        set_error(err, 0,
                  "the idempotency key must be printable ASCII (no control "
                  "characters)");
        return ST_INVALID;
    }
    buf_init(&body, 0);
    buf_init(&answer, 0);
    rc = remote_json_run_request(req, &body, why, sizeof(why));
    if (rc != ST_OK) {
        set_error(err, 0, "%s", why);
        goto out;
    }
    rc = request(r, "POST", "/api/v1/runs", &body, req->idempotency_key,
                 &answer, err);
    if (rc == ST_OK) {
        rc = run_answer(r, "POST /api/v1/runs", &answer, false, out, raw, err);
    }
out:
    buf_cleanup(&answer);
    buf_cleanup(&body);
    return rc;
}

int remote_get_run(struct remote *r, const char *id, struct remote_run *out,
                   struct buf *raw, struct remote_error *err)
{
    char *path = run_path(r, id, "");
    char *what = mem_printf("GET %s", path);
    struct buf answer;
    int rc;

    buf_init(&answer, 0);
    rc = request(r, "GET", path, NULL, NULL, &answer, err);
    if (rc == ST_OK) {
        rc = run_answer(r, what, &answer, true, out, raw, err);
    }
    buf_cleanup(&answer);
    free(what);
    free(path);
    return rc;
}

int remote_get_load_report(struct remote *r, const char *id, struct buf *out,
                           struct remote_error *err)
{
    char *path = run_path(r, id, "/load");
    int rc = request(r, "GET", path, NULL, NULL, out, err);

    free(path);
    return rc;
}

int remote_cancel_run(struct remote *r, const char *id, const char *reason,
                      struct remote_run *out, struct buf *raw,
                      struct remote_error *err)
{
    char *path = run_path(r, id, "/cancel");
    char *what = mem_printf("POST %s", path);
    struct buf body;
    struct buf answer;
    char why[256];
    int rc = ST_OK;

    buf_init(&body, 0);
    buf_init(&answer, 0);
    if (reason) {
        rc = remote_json_cancel(reason, &body, why, sizeof(why));
        if (rc != ST_OK) {
            set_error(err, 0, "%s", why);
        }
    }
    if (rc == ST_OK) {
        rc =
            request(r, "POST", path, reason ? &body : NULL, NULL, &answer, err);
    }
    if (rc == ST_OK) {
        rc = run_answer(r, what, &answer, false, out, raw, err);
    }
    buf_cleanup(&answer);
    buf_cleanup(&body);
    free(what);
    free(path);
    return rc;
}

static void add_query(struct remote *r, struct buf *q, const char *key,
                      const char *value)
{
    char *escaped;

    if (!value) {
        return;
    }
    escaped = curl_easy_escape(r->curl, value, (int)strlen(value));
    if (!escaped) {
        abort();
    }
    buf_addf(q, "%c%s=%s", q->len ? '&' : '?', key, escaped);
    curl_free(escaped);
}

int remote_list_runs(struct remote *r, const struct remote_run_query *q,
                     struct remote_run_page *out, struct buf *raw,
                     struct remote_error *err)
{
    struct buf query;
    struct buf answer;
    char limit[32];
    char *path;
    char why[512];
    int rc;

    buf_init(&query, 0);
    buf_init(&answer, 0);
    add_query(r, &query, "suite", q->suite);
    add_query(r, &query, "namespace", q->ns);
    add_query(r, &query, "state", q->state);
    add_query(r, &query, "result", q->result);
    add_query(r, &query, "since", q->since);
    add_query(r, &query, "until", q->until);
    if (q->limit > 0) {
        snprintf(limit, sizeof(limit), "%" PRId64, q->limit);
        add_query(r, &query, "limit", limit);
    }
    add_query(r, &query, "cursor", q->cursor);
    path = mem_printf("/api/v1/runs%s", buf_str(&query));
    rc = request(r, "GET", path, NULL, NULL, &answer, err);
    if (rc == ST_OK && remote_json_run_page(answer.data, answer.len, out, why,
                                            sizeof(why)) != ST_OK) {
        rc = bad_answer(r, "GET /api/v1/runs", "a list of runs", why, err);
    }
    if (rc == ST_OK && raw) {
        buf_reset(raw);
        buf_add(raw, answer.data, answer.len);
    }
    free(path);
    buf_cleanup(&answer);
    buf_cleanup(&query);
    return rc;
}

int remote_list_suites(struct remote *r, struct remote_suite_list *out,
                       struct buf *raw, struct remote_error *err)
{
    struct buf answer;
    char why[512];
    int rc;

    buf_init(&answer, 0);
    rc = request(r, "GET", "/api/v1/suites", NULL, NULL, &answer, err);
    if (rc == ST_OK && remote_json_suites(answer.data, answer.len, out, why,
                                          sizeof(why)) != ST_OK) {
        rc = bad_answer(r, "GET /api/v1/suites", "a list of suites", why, err);
    }
    if (rc == ST_OK && raw) {
        buf_reset(raw);
        buf_add(raw, answer.data, answer.len);
    }
    buf_cleanup(&answer);
    return rc;
}

int remote_list_workers(struct remote *r, struct remote_worker_list *out,
                        struct buf *raw, struct remote_error *err)
{
    struct buf answer;
    char why[512];
    int rc;

    buf_init(&answer, 0);
    rc = request(r, "GET", "/api/v1/workers", NULL, NULL, &answer, err);
    if (rc == ST_OK && remote_json_workers(answer.data, answer.len, out, why,
                                           sizeof(why)) != ST_OK) {
        rc =
            bad_answer(r, "GET /api/v1/workers", "a list of workers", why, err);
    }
    if (rc == ST_OK && raw) {
        buf_reset(raw);
        buf_add(raw, answer.data, answer.len);
    }
    buf_cleanup(&answer);
    return rc;
}

int remote_follow_run(struct remote *r, const char *id, remote_event_fn fn,
                      void *arg, struct remote_error *err)
{
    char *path = run_path(r, id, "/events");
    char *url = mem_printf("%s%s", r->url, path);
    struct curl_slist *headers;
    struct xfer x;
    CURLcode cc;
    int rc;

    xfer_init(&x, r, true);
    x.fn = fn;
    x.arg = arg;
    headers = prepare(r, &x, url, "GET", NULL, NULL);
    cc = curl_easy_perform(r->curl);
    if (x.status == 0) {
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &x.status);
    }
    log_debug("GET %s: HTTP %ld, %s", url, x.status,
              cc == CURLE_OK ? "closed" : curl_easy_strerror(cc));
    if (x.fn_rc) {
        rc = x.fn_rc;
        set_error(err, 0, "stopped following the event stream");
    } else if (x.run_ended) {
        rc = ST_OK;
    } else if (stopped(r)) {
        set_error(err, 0, "interrupted");
        rc = ST_CANCELLED;
    } else if (x.idle) {
        char limit[32];

        clock_format_duration(r->idle_timeout_ms * CLOCK_NS_PER_MS, limit,
                              sizeof(limit));
        set_error(err, 0, "nothing arrived on the event stream for %s", limit);
        rc = ST_TIMEOUT;
    } else if (x.bad_line) {
        set_error(err, 0, "the event stream sent a line over %zu bytes",
                  r->max_line);
        rc = ST_PROTOCOL;
    } else if (x.status != 0 && x.status != 200) {
        rc = status_of_answer(r, x.status, &x.body, err);
        if (rc == ST_OK) {
            set_error(err, (int)x.status,
                      "the event stream answered HTTP %ld without events",
                      x.status);
            rc = ST_PROTOCOL;
        }
    } else if (cc == CURLE_OK) {
        set_error(err, 0, "the event stream ended before the run did");
        rc = ST_UPSTREAM;
    } else {
        rc = status_of_failure(r, &x, cc, "the event stream", err);
        if (rc == ST_TIMEOUT) {
            rc = ST_UPSTREAM;
        }
    }
    curl_slist_free_all(headers);
    xfer_cleanup(&x);
    free(url);
    free(path);
    return rc;
}

/* ---- Schedules ---------------------------------------------------------- */

static char *schedule_path(struct remote *r, const char *name)
{
    char *escaped = curl_easy_escape(r->curl, name, (int)strlen(name));
    char *path;

    if (!escaped) {
        abort(); /* out of memory, as in run_path */
    }
    path = mem_printf("/api/v1/schedules/%s", escaped);
    curl_free(escaped);
    return path;
}

/* Sends method on path with body (may be NULL) and decodes a schedule. */
static int schedule_call(struct remote *r, const char *method, const char *path,
                         const struct buf *body, struct remote_schedule *out,
                         struct buf *raw, struct remote_error *err)
{
    struct buf answer;
    char why[512];
    int rc;

    buf_init(&answer, 0);
    rc = request(r, method, path, body, NULL, &answer, err);
    if (rc == ST_OK && remote_json_schedule(answer.data, answer.len, out, why,
                                            sizeof(why)) != ST_OK) {
        char *what = mem_printf("%s %s", method, path);

        rc = bad_answer(r, what, "a schedule", why, err);
        free(what);
    }
    if (rc == ST_OK && raw) {
        buf_reset(raw);
        buf_add(raw, answer.data, answer.len);
    }
    buf_cleanup(&answer);
    return rc;
}

int remote_create_schedule(struct remote *r,
                           const struct remote_schedule_request *req,
                           struct remote_schedule *out, struct buf *raw,
                           struct remote_error *err)
{
    struct buf body;
    char why[256];
    int rc;

    buf_init(&body, 0);
    rc = remote_json_schedule_request(req, &body, why, sizeof(why));
    if (rc != ST_OK) {
        set_error(err, 0, "%s", why);
    } else {
        rc =
            schedule_call(r, "POST", "/api/v1/schedules", &body, out, raw, err);
    }
    buf_cleanup(&body);
    return rc;
}

int remote_get_schedule(struct remote *r, const char *name,
                        struct remote_schedule *out, struct buf *raw,
                        struct remote_error *err)
{
    char *path = schedule_path(r, name);
    int rc = schedule_call(r, "GET", path, NULL, out, raw, err);

    free(path);
    return rc;
}

int remote_enable_schedule(struct remote *r, const char *name, bool enabled,
                           struct remote_schedule *out, struct buf *raw,
                           struct remote_error *err)
{
    char *path = schedule_path(r, name);
    struct buf body;
    int rc;

    buf_init(&body, 0);
    buf_adds(&body, enabled ? "{\"enabled\":true}" : "{\"enabled\":false}");
    rc = schedule_call(r, "PATCH", path, &body, out, raw, err);
    buf_cleanup(&body);
    free(path);
    return rc;
}

int remote_delete_schedule(struct remote *r, const char *name,
                           struct remote_error *err)
{
    char *path = schedule_path(r, name);
    struct buf answer;
    int rc;

    buf_init(&answer, 0);
    rc = request(r, "DELETE", path, NULL, NULL, &answer, err);
    buf_cleanup(&answer);
    free(path);
    return rc;
}

int remote_list_schedules(struct remote *r, struct remote_schedule_list *out,
                          struct buf *raw, struct remote_error *err)
{
    struct buf answer;
    char why[512];
    int rc;

    buf_init(&answer, 0);
    rc = request(r, "GET", "/api/v1/schedules", NULL, NULL, &answer, err);
    if (rc == ST_OK && remote_json_schedules(answer.data, answer.len, out, why,
                                             sizeof(why)) != ST_OK) {
        rc = bad_answer(r, "GET /api/v1/schedules", "a list of schedules", why,
                        err);
    }
    if (rc == ST_OK && raw) {
        buf_reset(raw);
        buf_add(raw, answer.data, answer.len);
    }
    buf_cleanup(&answer);
    return rc;
}
