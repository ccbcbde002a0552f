/* HTTP routes of the controller (see api.h and docs/api.md). */
#include "api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cmetrics.h"
#include "db.h"
#include "dbpool.h"
#include "flaky.h"
#include "httpd.h"
#include "live.h"
#include "loadstore.h"
#include "log.h"
#include "mem.h"
#include "retention.h"
#include "runreq.h"
#include "schedules.h"
#include "series.h"
#include "store.h"

#define API_MAX_KEY 256

struct api {
    struct api_deps deps;
};

enum task_kind {
    TASK_CREATE,
    TASK_LIST,
    TASK_GET,
    TASK_TEST,
    TASK_CANCEL,
    TASK_SUITES,
    TASK_WORKERS,
    TASK_SCHED_CREATE,
    TASK_SCHED_LIST,
    TASK_SCHED_GET,
    TASK_SCHED_PATCH,
    TASK_SCHED_DELETE,
    TASK_FLAKY,
    TASK_RETENTION_LIST,
    TASK_RETENTION_PUT,
    TASK_RETENTION_DELETE,
    TASK_SERIES_CREATE,
    TASK_SERIES_LIST,
    TASK_SERIES_GET,
    TASK_SERIES_CANCEL,
    TASK_LOAD_GET,
    TASK_LOAD_DIFF,
};

/* One request waiting for the database. */
struct task {
    struct api *api;
    struct httpd_req *req;
    enum task_kind kind;
    const char *route; /* for metrics: the pattern */
    const char *method;
    int64_t t0;
    struct run_request run;
    char *idempotency_key;
    struct store_list_query query;
    char *strings[10]; /* copies the query points into */
    char *id;
    char *name;
    char *body;
    size_t body_len;
    struct store_reply reply;
};

static void observe(struct api *a, const char *method, const char *route,
                    int status, int64_t t0)
{
    char code[8];

    if (!a->deps.metrics) {
        return;
    }
    snprintf(code, sizeof(code), "%d", status);
    metrics_inc(a->deps.metrics->http_requests, 3,
                (const char *[]){method, route, code}, 1);
    metrics_observe(a->deps.metrics->http_duration, 1, (const char *[]){route},
                    (double)(clock_mono_ns() - t0) / 1e9);
}

static void task_free(struct task *t)
{
    runreq_cleanup(&t->run);
    free(t->idempotency_key);
    for (size_t i = 0; i < sizeof(t->strings) / sizeof(t->strings[0]); i++) {
        free(t->strings[i]);
    }
    free(t->id);
    free(t->name);
    free(t->body);
    store_reply_cleanup(&t->reply);
    free(t);
}

static void task_work(struct db *d, void *arg)
{
    struct task *t = arg;
    struct api_deps *deps = &t->api->deps;

    switch (t->kind) {
    case TASK_CREATE:
        if (t->run.load != NULL) {
            /* A load run: its load row in the run's transaction. */
            struct store_run_hook hook = {.in_transaction = loadstore_create,
                                          .arg = t->run.load};

            if (loadstore_check_workflow(d, &t->run, &t->reply) == ST_OK) {
                store_create_run_ex(d, deps->bus, &t->run, t->idempotency_key,
                                    &hook, &t->reply);
            }
        } else {
            store_create_run(d, deps->bus, &t->run, t->idempotency_key,
                             &t->reply);
        }
        break;
    case TASK_LOAD_GET:
        loadstore_get_report(d, t->id, &t->reply);
        break;
    case TASK_LOAD_DIFF:
        loadstore_diff(d, t->strings[0], t->strings[1], t->strings[2],
                       &t->reply);
        break;
    case TASK_LIST:
        store_list_runs(d, &t->query, &t->reply);
        break;
    case TASK_GET:
        store_get_run(d, t->id, &t->reply);
        break;
    case TASK_TEST:
        store_get_test(d, t->id, t->name, &t->reply);
        break;
    case TASK_CANCEL:
        store_cancel_run(d, deps->bus, t->id, t->body, t->body_len, &t->reply);
        if (t->reply.status == 202) {
            /* A queued run ended here; a running one ends when its
             * worker reports. Either way the live view learns it. */
            char state[32] = "";
            char result[32] = "";
            char reason[256] = "";

            if (store_run_state(d, t->reply.run_id, state, sizeof(state),
                                result, sizeof(result), reason,
                                sizeof(reason)) == ST_OK &&
                strcmp(state, "cancelled") == 0) {
                live_publish_done(deps->bus, t->reply.run_id, state, result,
                                  reason);
                t->reply.ended = true;
            }
        }
        break;
    case TASK_SUITES:
        store_list_suites(d, &t->reply);
        break;
    case TASK_WORKERS:
        store_list_workers(d, &t->reply);
        break;
    case TASK_SCHED_CREATE:
        schedules_create(d, t->body, t->body_len, &t->reply);
        break;
    case TASK_SCHED_LIST:
        schedules_list(d, &t->reply);
        break;
    case TASK_SCHED_GET:
        schedules_get(d, t->name, &t->reply);
        break;
    case TASK_SCHED_PATCH:
        schedules_patch(d, t->name, t->body, t->body_len, &t->reply);
        break;
    case TASK_SCHED_DELETE:
        schedules_delete(d, t->name, &t->reply);
        break;
    case TASK_FLAKY:
        flaky_get(d, t->name, t->strings[0], t->strings[1],
                  deps->flaky_window > 0 ? deps->flaky_window
                                         : FLAKY_DEFAULT_WINDOW,
                  &t->reply);
        break;
    case TASK_RETENTION_LIST:
        retention_list(d, &t->reply);
        break;
    case TASK_RETENTION_PUT:
        retention_put(d, t->body, t->body_len, &t->reply);
        break;
    case TASK_RETENTION_DELETE:
        retention_delete(d, t->strings[0], t->strings[1], &t->reply);
        break;
    case TASK_SERIES_CREATE:
        series_create(d, t->body, t->body_len, &t->reply);
        break;
    case TASK_SERIES_LIST:
        series_list(d, &t->reply);
        break;
    case TASK_SERIES_GET:
        series_get(d, t->id, &t->reply);
        break;
    case TASK_SERIES_CANCEL:
        series_cancel(d, t->id, &t->reply);
        break;
    }
}

static void task_done(void *arg)
{
    struct task *t = arg;
    struct api *a = t->api;
    struct store_reply *r = &t->reply;

    if (r->status >= 400 || r->status == 0) {
        if (r->status == 0) {
            r->status = 500;
            r->error_code = "internal";
            snprintf(r->error_message, sizeof(r->error_message),
                     "no answer was made");
        }
        httpd_reply_error(t->req, r->status, r->error_code, "%s",
                          r->error_message);
    } else {
        if (r->location[0] &&
            httpd_reply_header(t->req, "Location", r->location) != ST_OK) {
            log_warn("api: bad Location header %s", r->location);
        }
        httpd_reply_json(t->req, r->status, r->body, strlen(r->body));
    }
    if (a->deps.metrics && t->kind == TASK_CREATE && r->created) {
        metrics_inc(a->deps.metrics->runs_created, 3,
                    (const char *[]){r->ns, r->suite, t->run.trigger}, 1);
    }
    if (a->deps.metrics && t->kind == TASK_CANCEL && r->ended) {
        cmetrics_run_ended(a->deps.metrics, r->ns, r->suite, "cancelled",
                           "error");
    }
    observe(a, t->method, t->route, r->status, t->t0);
    task_free(t);
}

static bool check_ready(struct api *a, struct httpd_req *req)
{
    if (a->deps.schema_ready && !a->deps.schema_ready(a->deps.arg)) {
        httpd_reply_error(req, 503, "unavailable",
                          "the controller is starting: the database is not "
                          "ready yet");
        return false;
    }
    return true;
}

static const char *task_method(enum task_kind kind)
{
    switch (kind) {
    case TASK_CREATE:
    case TASK_CANCEL:
    case TASK_SCHED_CREATE:
    case TASK_SERIES_CREATE:
    case TASK_SERIES_CANCEL:
        return "POST";
    case TASK_SCHED_PATCH:
        return "PATCH";
    case TASK_RETENTION_PUT:
        return "PUT";
    case TASK_SCHED_DELETE:
    case TASK_RETENTION_DELETE:
        return "DELETE";
    default:
        return "GET";
    }
}

static struct task *task_new(struct api *a, struct httpd_req *req,
                             enum task_kind kind, const char *route)
{
    struct task *t = mem_zalloc(sizeof(*t));

    t->api = a;
    t->req = req;
    t->kind = kind;
    t->route = route;
    t->method = task_method(kind);
    t->t0 = clock_mono_ns();
    return t;
}

/* The task keeps a copy of the request's body (the request may be gone
 * when the database thread reads it). */
static void task_take_body(struct task *t)
{
    size_t len = 0;
    const char *body = httpd_req_body(t->req, &len);

    t->body = mem_strndup(body ? body : "", len);
    t->body_len = len;
}

static void submit(struct task *t)
{
    if (dbpool_submit(t->api->deps.pool, task_work, task_done, t) != ST_OK) {
        httpd_reply_error(t->req, 503, "unavailable",
                          "the controller cannot take more work now");
        observe(t->api, t->method, t->route, 503, t->t0);
        task_free(t);
    }
}

static char *dup_opt(const char *s)
{
    return s ? mem_strdup(s) : NULL;
}

/* ---- Handlers ----------------------------------------------------------- */

static bool valid_key(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > API_MAX_KEY) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static void on_create_run(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    struct task *t;
    struct runreq_error err = {0};
    size_t len;
    const char *body = httpd_req_body(req, &len);
    const char *key = httpd_req_header(req, "Idempotency-Key");
    int64_t t0 = clock_mono_ns();

    if (!check_ready(a, req)) {
        return;
    }
    if (key && !valid_key(key)) {
        httpd_reply_error(req, 400, "invalid_argument",
                          "header Idempotency-Key: 1-%d printable ASCII "
                          "characters without spaces",
                          API_MAX_KEY);
        observe(a, "POST", "/api/v1/runs", 400, t0);
        return;
    }
    t = task_new(a, req, TASK_CREATE, "/api/v1/runs");
    if (runreq_parse_ex(body, len, false, true, &t->run, &err) != ST_OK) {
        httpd_reply_error(req, 400, err.code, "%s", err.message);
        observe(a, "POST", "/api/v1/runs", 400, t0);
        task_free(t);
        return;
    }
    t->idempotency_key = dup_opt(key);
    submit(t);
}

static void on_list_runs(struct httpd_req *req, void *arg)
{
    static const char *const keys[] = {"suite", "namespace", "state", "result",
                                       "since", "until",     "limit", "cursor"};
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, TASK_LIST, "/api/v1/runs");
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        t->strings[i] = dup_opt(httpd_req_query(req, keys[i]));
    }
    t->query.suite = t->strings[0];
    t->query.ns = t->strings[1];
    t->query.state = t->strings[2];
    t->query.result = t->strings[3];
    t->query.since = t->strings[4];
    t->query.until = t->strings[5];
    t->query.limit = t->strings[6];
    t->query.cursor = t->strings[7];
    submit(t);
}

static void on_get_run(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, TASK_GET, "/api/v1/runs/{id}");
    t->id = dup_opt(httpd_req_param(req, "id"));
    submit(t);
}

static void on_get_test(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, TASK_TEST, "/api/v1/runs/{id}/tests/{name}");
    t->id = dup_opt(httpd_req_param(req, "id"));
    t->name = dup_opt(httpd_req_param(req, "name"));
    submit(t);
}

static void on_cancel_run(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, TASK_CANCEL, "/api/v1/runs/{id}/cancel");
    t->id = dup_opt(httpd_req_param(req, "id"));
    task_take_body(t);
    submit(t);
}

static void on_get_load(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, TASK_LOAD_GET, "/api/v1/runs/{id}/load");
    t->id = dup_opt(httpd_req_param(req, "id"));
    submit(t);
}

static void on_load_diff(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, TASK_LOAD_DIFF, "/api/v1/load/diff");
    t->strings[0] = dup_opt(httpd_req_query(req, "a"));
    t->strings[1] = dup_opt(httpd_req_query(req, "b"));
    t->strings[2] = dup_opt(httpd_req_query(req, "tolerance"));
    submit(t);
}

static void on_events(struct httpd_req *req, void *arg)
{
    struct api *a = arg;

    if (!check_ready(a, req)) {
        return;
    }
    observe(a, "GET", "/api/v1/runs/{id}/events", 200, clock_mono_ns());
    live_attach(a->deps.live, req, httpd_req_param(req, "id"));
}

static void on_suites(struct httpd_req *req, void *arg)
{
    struct api *a = arg;

    if (check_ready(a, req)) {
        submit(task_new(a, req, TASK_SUITES, "/api/v1/suites"));
    }
}

static void on_flaky(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, TASK_FLAKY, "/api/v1/suites/{name}/flaky");
    t->name = dup_opt(httpd_req_param(req, "name"));
    t->strings[0] = dup_opt(httpd_req_query(req, "namespace"));
    t->strings[1] = dup_opt(httpd_req_query(req, "window"));
    submit(t);
}

static void on_workers(struct httpd_req *req, void *arg)
{
    struct api *a = arg;

    if (check_ready(a, req)) {
        submit(task_new(a, req, TASK_WORKERS, "/api/v1/workers"));
    }
}

/* Schedules: the body and name are checked on a database thread
 * (schedules.c), which also reads zone files. */
static void on_schedule(struct httpd_req *req, void *arg, enum task_kind kind,
                        const char *route)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, kind, route);
    t->name = dup_opt(httpd_req_param(req, "name"));
    if (kind == TASK_SCHED_CREATE || kind == TASK_SCHED_PATCH) {
        task_take_body(t);
    }
    submit(t);
}

static void on_create_schedule(struct httpd_req *req, void *arg)
{
    on_schedule(req, arg, TASK_SCHED_CREATE, "/api/v1/schedules");
}

static void on_list_schedules(struct httpd_req *req, void *arg)
{
    on_schedule(req, arg, TASK_SCHED_LIST, "/api/v1/schedules");
}

static void on_get_schedule(struct httpd_req *req, void *arg)
{
    on_schedule(req, arg, TASK_SCHED_GET, "/api/v1/schedules/{name}");
}

static void on_patch_schedule(struct httpd_req *req, void *arg)
{
    on_schedule(req, arg, TASK_SCHED_PATCH, "/api/v1/schedules/{name}");
}

static void on_delete_schedule(struct httpd_req *req, void *arg)
{
    on_schedule(req, arg, TASK_SCHED_DELETE, "/api/v1/schedules/{name}");
}

/* Retention policies: bodies are checked on a database thread too. */
static void on_retention(struct httpd_req *req, void *arg, enum task_kind kind)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, kind, "/api/v1/retention");
    if (kind == TASK_RETENTION_PUT) {
        task_take_body(t);
    }
    if (kind == TASK_RETENTION_DELETE) {
        t->strings[0] = dup_opt(httpd_req_query(req, "namespace"));
        t->strings[1] = dup_opt(httpd_req_query(req, "suite"));
    }
    submit(t);
}

static void on_list_retention(struct httpd_req *req, void *arg)
{
    on_retention(req, arg, TASK_RETENTION_LIST);
}

static void on_put_retention(struct httpd_req *req, void *arg)
{
    on_retention(req, arg, TASK_RETENTION_PUT);
}

static void on_delete_retention(struct httpd_req *req, void *arg)
{
    on_retention(req, arg, TASK_RETENTION_DELETE);
}

/* Series: bodies are checked on a database thread, with the catalog. */
static void on_series(struct httpd_req *req, void *arg, enum task_kind kind,
                      const char *route)
{
    struct api *a = arg;
    struct task *t;

    if (!check_ready(a, req)) {
        return;
    }
    t = task_new(a, req, kind, route);
    t->id = dup_opt(httpd_req_param(req, "id"));
    if (kind == TASK_SERIES_CREATE) {
        task_take_body(t);
    }
    submit(t);
}

static void on_create_series(struct httpd_req *req, void *arg)
{
    on_series(req, arg, TASK_SERIES_CREATE, "/api/v1/series");
}

static void on_list_series(struct httpd_req *req, void *arg)
{
    on_series(req, arg, TASK_SERIES_LIST, "/api/v1/series");
}

static void on_get_series(struct httpd_req *req, void *arg)
{
    on_series(req, arg, TASK_SERIES_GET, "/api/v1/series/{id}");
}

static void on_cancel_series(struct httpd_req *req, void *arg)
{
    on_series(req, arg, TASK_SERIES_CANCEL, "/api/v1/series/{id}/cancel");
}

static void on_healthz(struct httpd_req *req, void *arg)
{
    static const char ok[] = "{\"status\":\"ok\"}";

    (void)arg;
    httpd_reply_json(req, 200, ok, sizeof(ok) - 1);
}

static void on_readyz(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    void *d = a->deps.arg;
    bool nats = a->deps.nats_ready && a->deps.nats_ready(d);
    bool pg = a->deps.postgres_ready && a->deps.postgres_ready(d);
    bool redis = a->deps.redis_ready && a->deps.redis_ready(d);
    bool schema = !a->deps.schema_ready || a->deps.schema_ready(d);
    bool ready = nats && pg && schema;
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"ready\":%s,\"nats\":\"%s\",\"postgres\":\"%s\","
                     "\"schema\":\"%s\",\"redis\":\"%s\"}",
                     ready ? "true" : "false", nats ? "ok" : "unreachable",
                     pg ? "ok" : "unreachable", schema ? "ok" : "migrating",
                     redis ? "ok" : "unreachable");

    httpd_reply_json(req, ready ? 200 : 503, body, (size_t)n);
}

static void on_metrics(struct httpd_req *req, void *arg)
{
    struct api *a = arg;
    struct buf out;

    buf_init(&out, 0);
    if (a->deps.metrics) {
        metrics_render(a->deps.metrics->reg, &out);
    }
    httpd_reply_text(req, 200, METRICS_CONTENT_TYPE, out.data, out.len);
    buf_cleanup(&out);
}

int api_new(struct httpd *srv, const struct api_deps *deps, struct api **out)
{
    struct api *a = mem_zalloc(sizeof(*a));
    static const struct {
        const char *method;
        const char *pattern;
        void (*fn)(struct httpd_req *, void *);
    } routes[] = {
        {"POST", "/api/v1/runs", on_create_run},
        {"GET", "/api/v1/runs", on_list_runs},
        {"GET", "/api/v1/runs/{id}", on_get_run},
        {"GET", "/api/v1/runs/{id}/tests/{name}", on_get_test},
        {"POST", "/api/v1/runs/{id}/cancel", on_cancel_run},
        {"GET", "/api/v1/runs/{id}/events", on_events},
        {"GET", "/api/v1/runs/{id}/load", on_get_load},
        {"GET", "/api/v1/load/diff", on_load_diff},
        {"GET", "/api/v1/suites", on_suites},
        {"GET", "/api/v1/suites/{name}/flaky", on_flaky},
        {"GET", "/api/v1/workers", on_workers},
        {"POST", "/api/v1/schedules", on_create_schedule},
        {"GET", "/api/v1/schedules", on_list_schedules},
        {"GET", "/api/v1/schedules/{name}", on_get_schedule},
        {"PATCH", "/api/v1/schedules/{name}", on_patch_schedule},
        {"DELETE", "/api/v1/schedules/{name}", on_delete_schedule},
        {"GET", "/api/v1/retention", on_list_retention},
        {"PUT", "/api/v1/retention", on_put_retention},
        {"DELETE", "/api/v1/retention", on_delete_retention},
        {"POST", "/api/v1/series", on_create_series},
        {"GET", "/api/v1/series", on_list_series},
        {"GET", "/api/v1/series/{id}", on_get_series},
        {"POST", "/api/v1/series/{id}/cancel", on_cancel_series},
        {"GET", "/healthz", on_healthz},
        {"GET", "/readyz", on_readyz},
        {"GET", "/metrics", on_metrics},
    };

    a->deps = *deps;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = httpd_route(srv, routes[i].method, routes[i].pattern,
                             routes[i].fn, a);

        if (rc != ST_OK) {
            free(a);
            return rc;
        }
    }
    *out = a;
    return ST_OK;
}

void api_free(struct api *a)
{
    free(a);
}
