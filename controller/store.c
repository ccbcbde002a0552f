/* The API's and background tasks' database work (see store.h). */
#include "store.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "bus.h"
#include "clock.h"
#include "db.h"
#include "jsonw.h"
#include "loadstore.h"
#include "log.h"
#include "mem.h"
#include "subjects.h"
#include "testfilter.h"
#include "wire.h"

#define STORE_MAX_LIMIT 500
#define STORE_DEFAULT_LIMIT 50
/* How old an unpublished job must be before the outbox publishes it. */
#define STORE_OUTBOX_GRACE "10 seconds"

void store_reply_cleanup(struct store_reply *r)
{
    free(r->body);
    r->body = NULL;
}

static void reply_error(struct store_reply *r, int status, const char *code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply_verror(struct store_reply *r, int status, const char *code,
                         const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void reply_verror(struct store_reply *r, int status, const char *code,
                         const char *fmt, va_list ap)
{
    r->status = status;
    r->error_code = code;
    vsnprintf(r->error_message, sizeof(r->error_message), fmt, ap);
}

void store_reply_error(struct store_reply *r, int status, const char *code,
                       const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    reply_verror(r, status, code, fmt, ap);
    va_end(ap);
}

static void reply_error(struct store_reply *r, int status, const char *code,
                        const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    reply_verror(r, status, code, fmt, ap);
    va_end(ap);
}

/* A database failure: 503 when PostgreSQL is away (the client may retry),
 * 500 otherwise. Nothing partial is left: callers run in transactions. */
static void reply_db_error(struct store_reply *r, int rc);

void store_reply_db_error(struct store_reply *r, int rc)
{
    reply_db_error(r, rc);
}

int store_reply_json(struct db *d, const char *what, const char *sql,
                     int nparams, const char *const *params, int status,
                     const char *not_found, struct store_reply *out)
{
    struct db_res *res = NULL;
    int rc = db_exec_ctx(d, what, sql, nparams, params, &res);

    if (rc != ST_OK) {
        reply_db_error(out, rc);
    } else if (db_res_rows(res) == 0) {
        reply_error(out, 404, "not_found", "%s", not_found);
        rc = ST_NOT_FOUND;
    } else {
        out->status = status;
        out->body = mem_strdup(db_res_get(res, 0, 0));
    }
    db_res_free(res);
    return rc;
}

static void reply_db_error(struct store_reply *r, int rc)
{
    if (rc == ST_UPSTREAM) {
        reply_error(r, 503, "unavailable",
                    "the database is not reachable; nothing was changed");
    } else {
        reply_error(r, 500, "internal", "database error (%s)", status_str(rc));
    }
}

static bool parse_id(const char *text, int64_t *out)
{
    char *end;
    long long v;

    if (!text || !*text || !isdigit((unsigned char)text[0])) {
        return false;
    }
    v = strtoll(text, &end, 10);
    if (*end || v <= 0) {
        return false;
    }
    *out = v;
    return true;
}

static void fmt_i64(char *out, size_t len, int64_t v)
{
    snprintf(out, len, "%" PRId64, v);
}

/* ---- Catalog lookups ---------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t *row;
    size_t d;

    if (la > 128 || lb > 128) {
        return 1000;
    }
    row = mem_calloc(lb + 1, sizeof(*row));
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (tolower((unsigned char)a[i - 1]) !=
                                 tolower((unsigned char)b[j - 1]));
            size_t best =
                row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;

            row[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    d = row[lb];
    free(row);
    return d;
}

/* "unknown suite X; did you mean: a/b, c/d?" or the known ones. */
static void suite_not_found(struct db *d, const struct run_request *req,
                            struct store_reply *out)
{
    struct db_res *res = NULL;
    struct buf close;
    struct buf all;
    size_t n_close = 0;

    buf_init(&close, 0);
    buf_init(&all, 0);
    if (db_exec(d, "SELECT DISTINCT namespace, name FROM suites ORDER BY 1, 2",
                0, NULL, &res) == ST_OK) {
        size_t len = strlen(req->suite);
        size_t limit = len < 6 ? 2 : len / 3;

        for (size_t i = 0; i < db_res_rows(res); i++) {
            const char *ns = db_res_get(res, i, 0);
            const char *name = db_res_get(res, i, 1);

            if (i < 20) {
                buf_addf(&all, "%s%s/%s", i ? ", " : "", ns, name);
            }
            if ((edit_distance(req->suite, name) <= limit ||
                 strstr(name, req->suite) || strstr(req->suite, name)) &&
                n_close < 5) {
                buf_addf(&close, "%s%s/%s", n_close ? ", " : "", ns, name);
                n_close++;
            }
        }
    }
    db_res_free(res);
    if (n_close) {
        reply_error(out, 404, "not_found",
                    "unknown suite \"%s%s%s\"; did you mean: %s?",
                    req->ns ? req->ns : "", req->ns ? "/" : "", req->suite,
                    buf_str(&close));
    } else {
        reply_error(out, 404, "not_found",
                    "unknown suite \"%s%s%s\"; known suites: %s",
                    req->ns ? req->ns : "", req->ns ? "/" : "", req->suite,
                    all.len ? buf_str(&all)
                            : "(none: no worker has announced "
                              "any yet)");
    }
    buf_cleanup(&close);
    buf_cleanup(&all);
}

struct suite_row {
    char ns[160];
    int64_t timeout_ms;
    json_t *tests;  /* array of {"name":...} */
    int64_t run_id; /* find_suite_and_id: a new run id */
};

/* One row per namespace that has the suite: the row of the request's pool
 * where that pool announced it, else the most recently seen of another
 * pool's (migration 12). $1 suite, $2 namespace or NULL, $3 pool or NULL. */
#define SUITE_ROWS                                                             \
    "(SELECT DISTINCT ON (namespace) namespace, tests, timeout_ms "            \
    "FROM suites WHERE name = $1 AND ($2::text IS NULL OR namespace = $2) "    \
    "ORDER BY namespace, coalesce(pool = $3, false) DESC, last_seen DESC) s "  \
    "ORDER BY namespace"

/* Finds the suite the request names, as the request's pool knows it.
 * Returns 0 (found), or replies with 404/409 and returns ST_NOT_FOUND, or
 * another status on database error. */
static int find_suite_ex(struct db *d, const struct run_request *req,
                         bool new_id, struct suite_row *out,
                         struct store_reply *reply)
{
    struct db_res *res = NULL;
    const char *p[3] = {req->suite, req->ns, req->pool};
    json_error_t jerr;
    int rc =
        db_exec(d,
                new_id ? "SELECT namespace, tests, timeout_ms, "
                         "nextval('runs_id_seq') FROM " SUITE_ROWS
                       : "SELECT namespace, tests, timeout_ms FROM " SUITE_ROWS,
                3, p, &res);

    if (rc != ST_OK) {
        db_res_free(res);
        return rc;
    }
    if (db_res_rows(res) == 0) {
        db_res_free(res);
        suite_not_found(d, req, reply);
        return ST_NOT_FOUND;
    }
    if (db_res_rows(res) > 1) {
        struct buf nss;

        buf_init(&nss, 0);
        for (size_t i = 0; i < db_res_rows(res); i++) {
            buf_addf(&nss, "%s%s", i ? ", " : "", db_res_get(res, i, 0));
        }
        reply_error(reply, 409, "conflict",
                    "suite \"%s\" exists in several namespaces (%s): give "
                    "\"namespace\"",
                    req->suite, buf_str(&nss));
        buf_cleanup(&nss);
        db_res_free(res);
        return ST_NOT_FOUND;
    }
    snprintf(out->ns, sizeof(out->ns), "%s", db_res_get(res, 0, 0));
    out->tests = json_loads(db_res_get(res, 0, 1), 0, &jerr);
    out->timeout_ms = 0;
    if (!db_res_is_null(res, 0, 2) &&
        db_res_int64(res, 0, 2, &out->timeout_ms) != ST_OK) {
        out->timeout_ms = 0;
    }
    out->run_id = 0;
    if (new_id && db_res_int64(res, 0, 3, &out->run_id) != ST_OK) {
        rc = ST_INTERNAL;
    }
    db_res_free(res);
    if (!json_is_array(out->tests)) {
        json_decref(out->tests);
        out->tests = json_array();
    }
    return rc;
}

static int find_suite(struct db *d, const struct run_request *req,
                      struct suite_row *out, struct store_reply *reply)
{
    return find_suite_ex(d, req, false, out, reply);
}

/* find_suite, and the new run's id from the same round trip (the job's
 * payload carries it, so it is needed before the insert). A request
 * refused after this leaves a gap in the ids, as a rolled-back insert
 * would. */
static int find_suite_and_id(struct db *d, const struct run_request *req,
                             struct suite_row *out, struct store_reply *reply)
{
    return find_suite_ex(d, req, true, out, reply);
}

/* The filters must select at least one test of the suite. */
static bool filters_select(const struct run_request *req, json_t *tests,
                           struct store_reply *reply)
{
    struct testfilter f;
    char err[400];
    size_t i;
    json_t *t;
    size_t selected = 0;

    if (testfilter_init(&f, req->run_filter, req->skip_filter, "field \"run\"",
                        "field \"skip\"", err, sizeof(err)) != ST_OK) {
        reply_error(reply, 400, "invalid_argument", "%s", err);
        return false;
    }
    json_array_foreach(tests, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));

        if (name && testfilter_selects(&f, name)) {
            selected++;
        }
    }
    testfilter_cleanup(&f);
    if (selected == 0) {
        reply_error(reply, 400, "invalid_argument",
                    "the filters (run \"%s\", skip \"%s\") select no test of "
                    "suite %s",
                    req->run_filter ? req->run_filter : "",
                    req->skip_filter ? req->skip_filter : "", req->suite);
        return false;
    }
    return true;
}

/* ---- Creating runs ------------------------------------------------------ */

static int run_json(struct db *d, int64_t id, char **out)
{
    char idt[24];
    const char *p[1] = {idt};
    struct db_res *res = NULL;
    int rc;

    fmt_i64(idt, sizeof(idt), id);
    rc =
        db_exec(d, "SELECT handoff_run_json(r)::text FROM runs r WHERE id = $1",
                1, p, &res);
    if (rc == ST_OK) {
        if (db_res_rows(res) == 1) {
            *out = mem_strdup(db_res_get(res, 0, 0));
        } else {
            rc = ST_NOT_FOUND;
        }
    }
    db_res_free(res);
    return rc;
}

/* The run a repeated Idempotency-Key started, if any. */
static int find_idempotent(struct db *d, const char *key,
                           struct store_reply *out, bool *found)
{
    const char *p[1] = {key};
    struct db_res *res = NULL;
    int rc = db_exec(d,
                     "SELECT id, handoff_run_json(r)::text, namespace, suite "
                     "FROM runs r WHERE idempotency_key = $1",
                     1, p, &res);

    *found = false;
    if (rc == ST_OK && db_res_rows(res) == 1) {
        *found = true;
        if (db_res_int64(res, 0, 0, &out->run_id) != ST_OK) {
            out->run_id = 0;
        }
        out->status = 200;
        out->body = mem_strdup(db_res_get(res, 0, 1));
        snprintf(out->ns, sizeof(out->ns), "%s", db_res_get(res, 0, 2));
        snprintf(out->suite, sizeof(out->suite), "%s", db_res_get(res, 0, 3));
        snprintf(out->location, sizeof(out->location), "/api/v1/runs/%" PRId64,
                 out->run_id);
    }
    db_res_free(res);
    return rc;
}

static char *hex_of(const char *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *hex = mem_alloc(2 * len + 1);

    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[(unsigned char)data[i] >> 4];
        hex[2 * i + 1] = digits[(unsigned char)data[i] & 15];
    }
    hex[2 * len] = '\0';
    return hex;
}

static char *params_json(const struct run_request *req)
{
    json_t *o = json_object();
    char *text;

    for (size_t i = 0; i < req->n_params; i++) {
        json_object_set_new(o, req->params[i].key,
                            json_string(req->params[i].value));
    }
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

static char *config_json(const struct run_request *req, const char *ns,
                         int64_t timeout_ms)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s?, s:s?, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:I, "
        "s:I, s:I}",
        "suite", req->suite, "namespace", ns, "run", req->run_filter, "skip",
        req->skip_filter, "initiated_by", req->initiated_by, "reference",
        req->reference, "environment", req->environment, "pool", req->pool,
        "trigger", req->trigger, "max_attempts", req->max_attempts, "count",
        req->count, "timeout_ms", (json_int_t)timeout_ms, "test_timeout_ms",
        (json_int_t)req->test_timeout_ms, "queue_timeout_ms",
        (json_int_t)req->queue_timeout_ms);
    char *text;

    json_object_set_new(o, "params", json_loads("{}", 0, NULL));
    for (size_t i = 0; i < req->n_params; i++) {
        json_object_set_new(json_object_get(o, "params"), req->params[i].key,
                            json_string(req->params[i].value));
    }
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

/* Jobs published by store_create_run_ex whose published_at is not written
 * yet: one UPDATE for many instead of one per POST. The outbox looks only
 * at jobs older than STORE_OUTBOX_GRACE, so a mark that is late by up to
 * STORE_PUBLISHED_FLUSH_MS (or lost with a crash: the outbox publishes the
 * job again under the same Nats-Msg-Id, which the server drops) changes
 * nothing a worker sees. */
#define STORE_PUBLISHED_MAX 256
#define STORE_PUBLISHED_FLUSH_MS 100

static struct {
    pthread_mutex_t lock;
    char ids[STORE_PUBLISHED_MAX][48];
    size_t n;
    int64_t first_mono_ms; /* when ids[0] was added */
} marks = {.lock = PTHREAD_MUTEX_INITIALIZER};

int store_flush_published(struct db *d)
{
    struct buf arr;
    const char *p[1];
    size_t n;
    int rc;

    buf_init(&arr, 0);
    pthread_mutex_lock(&marks.lock);
    n = marks.n;
    buf_addc(&arr, '{');
    for (size_t i = 0; i < n; i++) {
        /* Job ids are "<run>.<shard>": digits and a dot, no quoting. */
        buf_addf(&arr, "%s%s", i ? "," : "", marks.ids[i]);
    }
    buf_addc(&arr, '}');
    marks.n = 0;
    pthread_mutex_unlock(&marks.lock);
    if (n == 0) {
        buf_cleanup(&arr);
        return ST_OK;
    }
    p[0] = buf_str(&arr);
    /* SKIP LOCKED: a job the ingester is updating (a worker started or
     * finished it) gets its mark there; waiting for that transaction
     * held an API thread for tens of milliseconds. */
    rc = db_exec(d,
                 "UPDATE jobs SET published_at = now() WHERE id IN (SELECT id "
                 "FROM jobs WHERE id = ANY($1::text[]) AND published_at IS "
                 "NULL FOR UPDATE SKIP LOCKED)",
                 1, p, NULL);
    buf_cleanup(&arr);
    return rc;
}

/* Notes a published job; writes the marks when enough are waiting or the
 * oldest has waited STORE_PUBLISHED_FLUSH_MS. */
static void note_published(struct db *d, const char *job_id)
{
    int64_t now_ms = clock_mono_ns() / CLOCK_NS_PER_MS;
    bool flush;

    pthread_mutex_lock(&marks.lock);
    if (marks.n == STORE_PUBLISHED_MAX) {
        pthread_mutex_unlock(&marks.lock);
        (void)store_flush_published(d);
        pthread_mutex_lock(&marks.lock);
    }
    if (marks.n == 0) {
        marks.first_mono_ms = now_ms;
    }
    if (marks.n < STORE_PUBLISHED_MAX) {
        snprintf(marks.ids[marks.n++], sizeof(marks.ids[0]), "%s", job_id);
    }
    flush = marks.n >= STORE_PUBLISHED_MAX / 4 ||
            now_ms - marks.first_mono_ms >= STORE_PUBLISHED_FLUSH_MS;
    pthread_mutex_unlock(&marks.lock);
    if (flush) {
        (void)store_flush_published(d);
    }
}

/* Publishes the job and notes it published; a failure leaves it in the
 * outbox, which retries. */
static void publish_job(struct db *d, struct bus *bus, const char *job_id,
                        int64_t created_unix_ms, const char *subject,
                        const struct buf *payload)
{
    char msg_id[96];

    subjects_msg_id(job_id, created_unix_ms, 0, NULL, msg_id, sizeof(msg_id));
    if (bus_js_publish(bus, subject, payload->data, payload->len, msg_id,
                       2000) != ST_OK) {
        log_info("store: job %s stays in the outbox until NATS takes it",
                 job_id);
        return;
    }
    note_published(d, job_id);
}

static json_t *text_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *int_or_null(bool set, int64_t v)
{
    return set ? json_integer((json_int_t)v) : json_null();
}

/* The run object (handoff_run_json) of a run just created, from what was
 * stored: saves a query per POST. tests/e2e checks it equals GET's. */
static char *created_run_json(const struct run_request *req, const char *ns,
                              int64_t run_id, const char *job_id,
                              int64_t timeout_ms, const char *created_at)
{
    json_t *params = json_object();
    json_t *o;
    char *text;

    for (size_t i = 0; i < req->n_params; i++) {
        json_object_set_new(params, req->params[i].key,
                            json_string(req->params[i].value));
    }
    o = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:n, s:n, s:s, s:s, s:s, s:s, s:o, s:o, "
        "s:o, s:i, s:o, s:I, s:o, s:I, s:s, s:n, s:n, s:n, s:b, s:n, "
        "s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i}, "
        "s:[{s:s, s:s, s:i, s:n, s:n}]}",
        "id", (json_int_t)run_id, "suite", req->suite, "namespace", ns, "pool",
        req->pool, "state", "queued", "result", "reason", "trigger",
        req->trigger, "initiated_by", req->initiated_by, "reference",
        req->reference, "environment", req->environment, "params", params,
        "run", text_or_null(req->run_filter), "skip",
        text_or_null(req->skip_filter), "count", req->count, "max_attempts",
        int_or_null(req->max_attempts != 0, req->max_attempts), "timeout_ms",
        (json_int_t)timeout_ms, "test_timeout_ms",
        int_or_null(req->test_timeout_ms != 0, req->test_timeout_ms),
        "queue_timeout_ms", (json_int_t)req->queue_timeout_ms, "created_at",
        created_at, "started_at", "finished_at", "duration_ms", "flaky", 0,
        "cancel_requested_at", "counts", "tests", 0, "passed", 0, "failed", 0,
        "skipped", 0, "error", 0, "soft_failures", 0, "flaky", 0, "jobs", "id",
        job_id, "state", "queued", "attempts", 0, "worker", "result");
    if (!o) {
        return NULL;
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

int store_check_suite(struct db *d, const struct run_request *req, char *ns,
                      size_t ns_len, struct store_reply *out)
{
    struct suite_row suite = {0};
    int rc = find_suite(d, req, &suite, out);

    if (rc != ST_OK && rc != ST_NOT_FOUND) {
        reply_db_error(out, rc);
        return rc;
    }
    if (rc == ST_OK && !filters_select(req, suite.tests, out)) {
        rc = ST_NOT_FOUND;
    }
    if (rc == ST_OK) {
        snprintf(ns, ns_len, "%s", suite.ns);
    }
    json_decref(suite.tests);
    return rc;
}

int store_resolve_suite(struct db *d, const char *suite, const char *ns_in,
                        char *ns, size_t ns_len, struct store_reply *out)
{
    struct run_request req = {0};
    struct suite_row row = {0};
    int rc;

    /* find_suite reads only the suite, namespace and pool of a request;
     * without a pool, any pool's row. */
    req.suite = (char *)suite;
    req.ns = (char *)ns_in;
    rc = find_suite(d, &req, &row, out);
    if (rc != ST_OK && rc != ST_NOT_FOUND) {
        reply_db_error(out, rc);
    }
    if (rc == ST_OK) {
        snprintf(ns, ns_len, "%s", row.ns);
    }
    json_decref(row.tests);
    return rc;
}

void store_create_run(struct db *d, struct bus *bus,
                      const struct run_request *req,
                      const char *idempotency_key, struct store_reply *out)
{
    store_create_run_ex(d, bus, req, idempotency_key, NULL, out);
}

void store_create_run_ex(struct db *d, struct bus *bus,
                         const struct run_request *req,
                         const char *idempotency_key,
                         const struct store_run_hook *hook,
                         struct store_reply *out)
{
    struct suite_row suite = {0};
    struct wire_job job;
    struct buf payload;
    struct db_res *res = NULL;
    char *params = NULL;
    char *config = NULL;
    char *hex = NULL;
    char subject[512];
    char job_id[48];
    char num[8][24];
    const char *p[21];
    int64_t timeout_ms;
    int64_t now_ms = clock_real_ns() / CLOCK_NS_PER_MS;
    bool found = false;
    int rc;

    memset(out, 0, sizeof(*out));
    buf_init(&payload, 0);
    if (idempotency_key) {
        rc = find_idempotent(d, idempotency_key, out, &found);
        if (rc != ST_OK) {
            reply_db_error(out, rc);
            goto done;
        }
        if (found) {
            goto done;
        }
    }
    rc = find_suite_and_id(d, req, &suite, out);
    if (rc == ST_NOT_FOUND) {
        goto done;
    }
    if (rc != ST_OK) {
        reply_db_error(out, rc);
        goto done;
    }
    /* A load run runs a workflow, not tests: no filter applies. */
    if (!req->load && !filters_select(req, suite.tests, out)) {
        goto done;
    }
    timeout_ms = req->timeout_ms    ? req->timeout_ms
                 : suite.timeout_ms ? suite.timeout_ms
                                    : 3600 * 1000;
    params = params_json(req);
    config = config_json(req, suite.ns, timeout_ms);

    /* The run and its job in one statement (the id came with the suite):
     * atomic without a transaction of its own, unless a hook adds to
     * it. */
    out->run_id = suite.run_id;
    rc = hook ? db_begin(d) : ST_OK;
    if (rc != ST_OK) {
        out->run_id = 0;
        reply_db_error(out, rc);
        goto done;
    }

    snprintf(job_id, sizeof(job_id), "%" PRId64 ".0", out->run_id);
    memset(&job, 0, sizeof(job));
    job.job_id = job_id;
    job.run_id = out->run_id;
    job.suite = req->suite;
    job.ns = suite.ns;
    job.params = req->params;
    job.n_params = req->n_params;
    job.run_filter = req->run_filter;
    job.skip_filter = req->skip_filter;
    job.max_attempts = req->max_attempts;
    job.timeout_ms = timeout_ms;
    job.test_timeout_ms = req->test_timeout_ms;
    job.created_unix_ms = now_ms;
    job.count = req->count;
    job.shard = 0;
    job.shards = 1;
    job.not_after_unix_ms = now_ms + req->queue_timeout_ms;
    job.load = req->load; /* a load run's first job is its setup job */
    wire_job_encode(&job, &payload);
    subjects_job(req->pool, suite.ns, req->suite, subject, sizeof(subject));
    hex = hex_of(payload.data, payload.len);

    fmt_i64(num[0], 24, req->max_attempts);
    fmt_i64(num[1], 24, req->count);
    fmt_i64(num[2], 24, timeout_ms);
    fmt_i64(num[3], 24, req->test_timeout_ms);
    fmt_i64(num[4], 24, req->queue_timeout_ms);
    fmt_i64(num[5], 24, out->run_id);
    p[0] = req->suite;
    p[1] = suite.ns;
    p[2] = req->pool;
    p[3] = req->trigger;
    p[4] = req->initiated_by;
    p[5] = req->reference;
    p[6] = req->environment;
    p[7] = params;
    p[8] = req->run_filter;
    p[9] = req->skip_filter;
    p[10] = num[1];
    p[11] = req->max_attempts ? num[0] : NULL;
    p[12] = num[2];
    p[13] = req->test_timeout_ms ? num[3] : NULL;
    p[14] = num[4];
    p[15] = idempotency_key;
    p[16] = config;
    p[17] = num[5];
    p[18] = job_id;
    p[19] = subject;
    p[20] = hex;
    rc = db_exec(d,
                 "WITH r AS (INSERT INTO runs (id, suite, namespace, pool, "
                 "state, trigger, initiated_by, reference, environment, "
                 "params, run_filter, skip_filter, count, max_attempts, "
                 "timeout_ms, test_timeout_ms, queue_timeout_ms, "
                 "idempotency_key, config) OVERRIDING SYSTEM VALUE "
                 "VALUES ($18::bigint, $1, $2, $3, 'queued', $4, $5, $6, $7, "
                 "$8::jsonb, $9, $10, $11::int, $12::int, $13::bigint, "
                 "$14::bigint, $15::bigint, $16, $17::jsonb) "
                 "RETURNING created_at), "
                 "j AS (INSERT INTO jobs (id, run_id, shard, subject, payload) "
                 "SELECT $19, $18::bigint, 0, $20, decode($21, 'hex') FROM r "
                 "RETURNING 1) "
                 "SELECT handoff_ts(r.created_at) FROM r, j",
                 21, p, &res);
    if (rc == ST_OK && db_res_rows(res) != 1) {
        rc = ST_INTERNAL;
    }
    if (rc == ST_OK && hook) {
        rc = hook->in_transaction(d, out->run_id, hook->arg);
    }
    if (hook) {
        if (rc == ST_OK) {
            rc = db_commit(d);
        } else {
            db_rollback(d);
        }
    }
    if (rc == ST_CONFLICT && idempotency_key) {
        /* Another request with the same key won the race. */
        db_res_free(res);
        res = NULL;
        rc = find_idempotent(d, idempotency_key, out, &found);
        if (rc != ST_OK || !found) {
            reply_db_error(out, rc ? rc : ST_INTERNAL);
        }
        goto done;
    }
    if (rc == ST_CONFLICT && hook) {
        reply_error(out, 409, "conflict",
                    "the run was not created: what it depended on changed "
                    "meanwhile");
        out->run_id = 0;
        goto done;
    }
    if (rc != ST_OK) {
        reply_db_error(out, rc);
        out->run_id = 0;
        goto done;
    }
    /* Stored: from here on the run cannot be lost. */
    publish_job(d, bus, job_id, now_ms, subject, &payload);
    if (!(hook && hook->no_body)) {
        out->body = created_run_json(req, suite.ns, out->run_id, job_id,
                                     timeout_ms, db_res_get(res, 0, 0));
        if (!out->body) {
            reply_db_error(out, ST_INTERNAL);
            goto done;
        }
    }
    out->status = 201;
    out->created = true;
    snprintf(out->ns, sizeof(out->ns), "%s", suite.ns);
    snprintf(out->suite, sizeof(out->suite), "%s", req->suite);
    snprintf(out->location, sizeof(out->location), "/api/v1/runs/%" PRId64,
             out->run_id);
done:
    db_res_free(res);
    json_decref(suite.tests);
    buf_cleanup(&payload);
    free(params);
    free(config);
    free(hex);
}

/* ---- Creating runs in batches ------------------------------------------- */

void store_batch_run_cleanup(struct store_batch_run *r)
{
    runreq_cleanup(&r->req);
    free(r->error);
    free(r->subject);
    buf_cleanup(&r->payload);
    memset(r, 0, sizeof(*r));
}

/* A suite looked up once for a batch: found (rc 0) or refused. */
struct batch_suite {
    const char *suite; /* borrowed from the first item that named it */
    const char *ns;    /* likewise; NULL: any */
    int rc;            /* 0 or ST_NOT_FOUND */
    struct suite_row row;
    int status; /* the refusal's */
    char *error;
};

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void refuse(struct store_batch_run *r, int status, const char *message)
{
    r->status = status;
    free(r->error);
    r->error = mem_strdup(message);
}

/* The cache entry of r's suite, looked up now if it is new: NULL and *rc
 * for a database failure. */
static struct batch_suite *batch_suite(struct db *d, struct batch_suite **cache,
                                       size_t *n_cache,
                                       const struct run_request *req, int *rc)
{
    struct store_reply reply;
    struct batch_suite *bs;

    for (size_t k = 0; k < *n_cache; k++) {
        if (strcmp((*cache)[k].suite, req->suite) == 0 &&
            same_text((*cache)[k].ns, req->ns)) {
            return &(*cache)[k];
        }
    }
    memset(&reply, 0, sizeof(reply));
    *cache = mem_reallocarray(*cache, *n_cache + 1, sizeof(**cache));
    bs = &(*cache)[*n_cache];
    memset(bs, 0, sizeof(*bs));
    bs->suite = req->suite;
    bs->ns = req->ns;
    bs->rc = find_suite(d, req, &bs->row, &reply);
    if (bs->rc != ST_OK && bs->rc != ST_NOT_FOUND) {
        *rc = bs->rc;
        json_decref(bs->row.tests);
        return NULL;
    }
    (*n_cache)++;
    if (bs->rc == ST_NOT_FOUND) {
        bs->status = reply.status;
        bs->error = mem_strdup(reply.error_message);
    }
    return bs;
}

int store_batch_check(struct db *d, struct store_batch_run *runs, size_t n)
{
    struct batch_suite *cache = NULL;
    size_t n_cache = 0;
    int rc = ST_OK;

    for (size_t i = 0; rc == ST_OK && i < n; i++) {
        struct store_batch_run *r = &runs[i];
        struct store_reply reply;
        struct batch_suite *bs;

        if (r->status != 0) {
            continue;
        }
        bs = batch_suite(d, &cache, &n_cache, &r->req, &rc);
        if (!bs) {
            break;
        }
        if (bs->rc != ST_OK) {
            refuse(r, bs->status, bs->error);
            continue;
        }
        memset(&reply, 0, sizeof(reply));
        if (!filters_select(&r->req, bs->row.tests, &reply)) {
            refuse(r, reply.status, reply.error_message);
            continue;
        }
        snprintf(r->ns, sizeof(r->ns), "%s", bs->row.ns);
        r->timeout_ms = r->req.timeout_ms    ? r->req.timeout_ms
                        : bs->row.timeout_ms ? bs->row.timeout_ms
                                             : 3600 * 1000;
    }
    for (size_t k = 0; k < n_cache; k++) {
        json_decref(cache[k].row.tests);
        free(cache[k].error);
    }
    free(cache);
    return rc;
}

/* ---- JSON text for json_to_recordset, written straight into a buffer:
 * a batch has thousands of rows, and building them as jansson objects
 * first costs more than the statements. */

/* printf is too slow for thousands of rows of small pieces. */
static void json_key(struct buf *b, bool first, const char *key)
{
    if (!first) {
        buf_addc(b, ',');
    }
    buf_addc(b, '"');
    buf_adds(b, key);
    buf_adds(b, "\":");
}

static void json_number(struct buf *b, int64_t v)
{
    char digits[24];
    size_t n = sizeof(digits);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        digits[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        digits[--n] = '-';
    }
    buf_add(b, digits + n, sizeof(digits) - n);
}

static void json_text(struct buf *b, bool first, const char *key, const char *v)
{
    json_key(b, first, key);
    if (v) {
        jsonw_string(b, v, strlen(v));
    } else {
        buf_adds(b, "null");
    }
}

static void json_int(struct buf *b, const char *key, int64_t v)
{
    json_key(b, false, key);
    json_number(b, v);
}

/* 0 as null: the columns where 0 means "the suite's". */
static void json_int_or_null(struct buf *b, const char *key, int64_t v)
{
    json_key(b, false, key);
    if (v) {
        json_number(b, v);
    } else {
        buf_adds(b, "null");
    }
}

static void json_params(struct buf *b, const struct run_request *q)
{
    buf_addc(b, '{');
    for (size_t i = 0; i < q->n_params; i++) {
        if (i) {
            buf_addc(b, ',');
        }
        jsonw_string(b, q->params[i].key, strlen(q->params[i].key));
        buf_addc(b, ':');
        jsonw_string(b, q->params[i].value, strlen(q->params[i].value));
    }
    buf_addc(b, '}');
}

/* The object config_json makes (jsonb orders the keys). */
static void json_config(struct buf *b, const struct run_request *q,
                        const char *ns, int64_t timeout_ms)
{
    json_text(b, true, "suite", q->suite);
    json_text(b, false, "namespace", ns);
    if (q->run_filter) {
        json_text(b, false, "run", q->run_filter);
    }
    if (q->skip_filter) {
        json_text(b, false, "skip", q->skip_filter);
    }
    json_text(b, false, "initiated_by", q->initiated_by);
    json_text(b, false, "reference", q->reference);
    json_text(b, false, "environment", q->environment);
    json_text(b, false, "pool", q->pool);
    json_text(b, false, "trigger", q->trigger);
    json_int(b, "max_attempts", q->max_attempts);
    json_int(b, "count", q->count);
    json_int(b, "timeout_ms", timeout_ms);
    json_int(b, "test_timeout_ms", q->test_timeout_ms);
    json_int(b, "queue_timeout_ms", q->queue_timeout_ms);
    json_key(b, false, "params");
    json_params(b, q);
}

/* Appends r's row (run_id set) for the runs INSERT. */
static void batch_run_row(struct buf *b, const struct store_batch_run *r)
{
    const struct run_request *q = &r->req;

    buf_addc(b, '{');
    json_key(b, true, "id");
    json_number(b, r->run_id);
    json_text(b, false, "suite", q->suite);
    json_text(b, false, "ns", r->ns);
    json_text(b, false, "pool", q->pool);
    json_text(b, false, "trigger", q->trigger);
    json_text(b, false, "initiated_by", q->initiated_by);
    json_text(b, false, "reference", q->reference);
    json_text(b, false, "environment", q->environment);
    json_key(b, false, "params");
    json_params(b, q);
    json_text(b, false, "run_filter", q->run_filter);
    json_text(b, false, "skip_filter", q->skip_filter);
    json_int(b, "count", q->count);
    json_int_or_null(b, "max_attempts", q->max_attempts);
    json_int(b, "timeout_ms", r->timeout_ms);
    json_int_or_null(b, "test_timeout_ms", q->test_timeout_ms);
    json_int(b, "queue_timeout_ms", q->queue_timeout_ms);
    json_key(b, false, "config");
    buf_addc(b, '{');
    json_config(b, q, r->ns, r->timeout_ms);
    buf_addc(b, '}');
    json_int_or_null(b, "schedule_id", r->schedule_id);
    json_int(b, "created_ms", r->created_ms);
    buf_addc(b, '}');
}

/* Encodes r's job (run_id and created_ms set) and appends its row for the
 * jobs INSERT. */
static void batch_job_row(struct buf *b, struct store_batch_run *r)
{
    static const char digits[] = "0123456789abcdef";
    struct wire_job job;
    char job_id[48];
    char subject[512];
    char *hex;

    snprintf(job_id, sizeof(job_id), "%" PRId64 ".0", r->run_id);
    memset(&job, 0, sizeof(job));
    job.job_id = job_id;
    job.run_id = r->run_id;
    job.suite = r->req.suite;
    job.ns = r->ns;
    job.params = r->req.params;
    job.n_params = r->req.n_params;
    job.run_filter = r->req.run_filter;
    job.skip_filter = r->req.skip_filter;
    job.max_attempts = r->req.max_attempts;
    job.timeout_ms = r->timeout_ms;
    job.test_timeout_ms = r->req.test_timeout_ms;
    job.created_unix_ms = r->created_ms;
    job.count = r->req.count;
    job.shard = 0;
    job.shards = 1;
    job.not_after_unix_ms = r->created_ms + r->req.queue_timeout_ms;
    buf_reset(&r->payload);
    wire_job_encode(&job, &r->payload);
    subjects_job(r->req.pool, r->ns, r->req.suite, subject, sizeof(subject));
    free(r->subject);
    r->subject = mem_strdup(subject);
    buf_addc(b, '{');
    json_text(b, true, "id", job_id);
    json_int(b, "run_id", r->run_id);
    json_text(b, false, "subject", subject);
    json_key(b, false, "payload");
    buf_addc(b, '"');
    hex = buf_extend(b, 2 * r->payload.len);
    for (size_t i = 0; i < r->payload.len; i++) {
        hex[2 * i] = digits[(unsigned char)r->payload.data[i] >> 4];
        hex[2 * i + 1] = digits[(unsigned char)r->payload.data[i] & 15];
    }
    buf_adds(b, "\"}");
}

int store_batch_insert(struct db *d, struct store_batch_run *runs, size_t n)
{
    struct db_res *res = NULL;
    struct buf run_rows;
    struct buf job_rows;
    char count[24];
    int64_t now_ms = clock_real_ns() / CLOCK_NS_PER_MS;
    size_t m = 0;
    size_t k = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        m += runs[i].status == 0;
    }
    if (m == 0) {
        return ST_OK;
    }
    /* Ids first: each job message carries its run's id. */
    snprintf(count, sizeof(count), "%zu", m);
    rc = db_exec_ctx(d, "store: run ids",
                     "SELECT nextval(pg_get_serial_sequence('runs', 'id')) "
                     "FROM generate_series(1, $1::int)",
                     1, (const char *[]){count}, &res);
    if (rc == ST_OK && db_res_rows(res) != m) {
        rc = ST_INTERNAL;
    }
    buf_init(&run_rows, 0);
    buf_init(&job_rows, 0);
    buf_addc(&run_rows, '[');
    buf_addc(&job_rows, '[');
    for (size_t i = 0; rc == ST_OK && i < n; i++) {
        struct store_batch_run *r = &runs[i];

        if (r->status != 0) {
            continue;
        }
        if (db_res_int64(res, k, 0, &r->run_id) != ST_OK) {
            rc = ST_INTERNAL;
            break;
        }
        if (r->created_ms <= 0) {
            r->created_ms = now_ms;
        }
        if (k++) {
            buf_addc(&run_rows, ',');
            buf_addc(&job_rows, ',');
        }
        batch_run_row(&run_rows, r);
        batch_job_row(&job_rows, r);
    }
    db_res_free(res);
    buf_addc(&run_rows, ']');
    buf_addc(&job_rows, ']');
    /* created_at: not before the INSERT, nor before the time the run is
     * meant for (a tick the scheduler prepared ahead commits at the
     * tick). */
    rc = rc ? rc
            : db_exec_ctx(
                  d, "store: batch of runs",
                  "INSERT INTO runs (id, suite, namespace, pool, state, "
                  "trigger, initiated_by, reference, environment, params, "
                  "run_filter, skip_filter, count, max_attempts, timeout_ms, "
                  "test_timeout_ms, queue_timeout_ms, config, schedule_id, "
                  "created_at) OVERRIDING SYSTEM VALUE SELECT x.id, x.suite, "
                  "x.ns, x.pool, 'queued', x.trigger, x.initiated_by, "
                  "x.reference, x.environment, x.params, x.run_filter, "
                  "x.skip_filter, x.count, x.max_attempts, x.timeout_ms, "
                  "x.test_timeout_ms, x.queue_timeout_ms, x.config, "
                  "x.schedule_id, greatest(statement_timestamp(), "
                  "timestamptz 'epoch' + x.created_ms * interval "
                  "'1 millisecond') FROM json_to_recordset($1::json) AS "
                  "x(id bigint, suite text, ns text, pool text, trigger "
                  "text, initiated_by text, reference text, environment "
                  "text, params jsonb, run_filter text, skip_filter text, "
                  "count int, max_attempts int, timeout_ms bigint, "
                  "test_timeout_ms bigint, queue_timeout_ms bigint, config "
                  "jsonb, schedule_id bigint, created_ms bigint)",
                  1, (const char *[]){buf_str(&run_rows)}, NULL);
    rc = rc ? rc
            : db_exec_ctx(d, "store: batch of jobs",
                          "INSERT INTO jobs (id, run_id, shard, subject, "
                          "payload) SELECT x.id, x.run_id, 0, x.subject, "
                          "decode(x.payload, 'hex') FROM "
                          "json_to_recordset($1::json) AS x(id text, run_id "
                          "bigint, subject text, payload text)",
                          1, (const char *[]){buf_str(&job_rows)}, NULL);
    buf_cleanup(&run_rows);
    buf_cleanup(&job_rows);
    return rc;
}

void store_batch_publish(struct db *d, struct bus *bus,
                         const struct store_batch_run *runs, size_t n)
{
    struct buf ids;
    size_t sent = 0;
    size_t left = 0;

    buf_init(&ids, 0);
    buf_addc(&ids, '{');
    for (size_t i = 0; i < n; i++) {
        const struct store_batch_run *r = &runs[i];
        char job_id[48];
        char msg_id[96];

        if (r->status != 0 || r->run_id <= 0) {
            continue;
        }
        snprintf(job_id, sizeof(job_id), "%" PRId64 ".0", r->run_id);
        subjects_msg_id(job_id, r->created_ms, 0, NULL, msg_id, sizeof(msg_id));
        /* After a refusal (NATS away) the rest wait in the outbox. */
        if (left > 0 || bus_js_publish_async(bus, r->subject, r->payload.data,
                                             r->payload.len, msg_id) != ST_OK) {
            left++;
            continue;
        }
        buf_addf(&ids, "%s%s", sent ? "," : "", job_id);
        sent++;
    }
    buf_addc(&ids, '}');
    if (sent > 0 && bus_js_publish_wait(bus, 5000) != ST_OK) {
        left += sent;
        sent = 0;
    }
    if (sent > 0) {
        /* SKIP LOCKED: a job the outbox is publishing meanwhile (it may
         * see them between the commit and this) is marked by the outbox;
         * waiting for it would hold this thread for as long. */
        (void)db_exec_ctx(d, "store: jobs published",
                          "UPDATE jobs SET published_at = now() WHERE id IN "
                          "(SELECT id FROM jobs WHERE id = ANY($1::text[]) "
                          "FOR UPDATE SKIP LOCKED)",
                          1, (const char *[]){buf_str(&ids)}, NULL);
    }
    if (left > 0) {
        log_info("store: %zu jobs stay in the outbox until NATS takes them",
                 left);
    }
    buf_cleanup(&ids);
}

/* ---- Reading runs ------------------------------------------------------- */

static bool one_of(const char *v, const char *const *set)
{
    for (; *set; set++) {
        if (strcmp(v, *set) == 0) {
            return true;
        }
    }
    return false;
}

void store_list_runs(struct db *d, const struct store_list_query *q,
                     struct store_reply *out)
{
    static const char *const states[] = {"queued",    "running",   "finished",
                                         "cancelled", "timed_out", NULL};
    static const char *const results[] = {"passed", "failed", "error", NULL};
    char limit_text[24];
    char cursor_text[24];
    const char *p[8];
    struct db_res *res = NULL;
    struct buf body;
    int64_t limit = STORE_DEFAULT_LIMIT;
    int64_t cursor = 0;
    int64_t ts;
    size_t rows;
    int rc;

    memset(out, 0, sizeof(*out));
    if (q->limit && (!parse_id(q->limit, &limit) || limit > STORE_MAX_LIMIT)) {
        reply_error(out, 400, "invalid_argument",
                    "query \"limit\": want an integer from 1 to %d",
                    STORE_MAX_LIMIT);
        return;
    }
    if (q->cursor && !parse_id(q->cursor, &cursor)) {
        reply_error(out, 400, "invalid_argument",
                    "query \"cursor\": not a cursor this API gave");
        return;
    }
    if (q->state && !one_of(q->state, states)) {
        reply_error(out, 400, "invalid_argument",
                    "query \"state\": want queued, running, finished, "
                    "cancelled or timed_out");
        return;
    }
    if (q->result && !one_of(q->result, results)) {
        reply_error(out, 400, "invalid_argument",
                    "query \"result\": want passed, failed or error");
        return;
    }
    if ((q->since && clock_parse_rfc3339(q->since, &ts) != ST_OK) ||
        (q->until && clock_parse_rfc3339(q->until, &ts) != ST_OK)) {
        reply_error(out, 400, "invalid_argument",
                    "queries \"since\" and \"until\": want RFC 3339 times, "
                    "e.g. 2026-11-23T10:00:00Z");
        return;
    }
    fmt_i64(limit_text, sizeof(limit_text), limit + 1);
    fmt_i64(cursor_text, sizeof(cursor_text), cursor);
    p[0] = q->suite;
    p[1] = q->ns;
    p[2] = q->state;
    p[3] = q->result;
    p[4] = q->since;
    p[5] = q->until;
    p[6] = cursor ? cursor_text : NULL;
    p[7] = limit_text;
    rc = db_exec(d,
                 "SELECT id, handoff_run_json(r)::text FROM runs r WHERE "
                 "($1::text IS NULL OR suite = $1) AND "
                 "($2::text IS NULL OR namespace = $2) AND "
                 "($3::text IS NULL OR state = $3) AND "
                 "($4::text IS NULL OR result = $4) AND "
                 "($5::timestamptz IS NULL OR created_at >= $5) AND "
                 "($6::timestamptz IS NULL OR created_at < $6) AND "
                 "($7::bigint IS NULL OR id < $7) "
                 "ORDER BY id DESC LIMIT $8::int",
                 8, p, &res);
    if (rc != ST_OK) {
        db_res_free(res);
        reply_db_error(out, rc);
        return;
    }
    rows = db_res_rows(res);
    buf_init(&body, 0);
    buf_adds(&body, "{\"runs\":[");
    for (size_t i = 0; i < rows && (int64_t)i < limit; i++) {
        buf_addf(&body, "%s%s", i ? "," : "", db_res_get(res, i, 1));
    }
    buf_adds(&body, "]");
    if ((int64_t)rows > limit) {
        buf_addf(&body, ",\"next_cursor\":\"%s\"",
                 db_res_get(res, (size_t)limit - 1, 0));
    }
    buf_adds(&body, "}");
    db_res_free(res);
    out->status = 200;
    out->body = buf_detach(&body);
}

void store_get_run(struct db *d, const char *id, struct store_reply *out)
{
    int64_t run_id;
    char idt[24];
    const char *p[1] = {idt};
    struct db_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!parse_id(id, &run_id)) {
        reply_error(out, 404, "not_found",
                    "no run \"%.64s\" (run ids are "
                    "positive integers)",
                    id);
        return;
    }
    fmt_i64(idt, sizeof(idt), run_id);
    rc = db_exec(d, "SELECT handoff_run_detail_json($1::bigint)::text", 1, p,
                 &res);
    if (rc != ST_OK) {
        reply_db_error(out, rc);
    } else if (db_res_rows(res) != 1 || db_res_is_null(res, 0, 0)) {
        reply_error(out, 404, "not_found", "no run %" PRId64, run_id);
    } else {
        out->status = 200;
        out->body = mem_strdup(db_res_get(res, 0, 0));
        out->run_id = run_id;
    }
    db_res_free(res);
}

void store_get_test(struct db *d, const char *id, const char *name,
                    struct store_reply *out)
{
    int64_t run_id;
    char idt[24];
    const char *p[2] = {idt, name};
    struct db_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!parse_id(id, &run_id)) {
        reply_error(out, 404, "not_found", "no run \"%.64s\"", id);
        return;
    }
    fmt_i64(idt, sizeof(idt), run_id);
    rc = db_exec(d,
                 "SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1::bigint), "
                 "EXISTS (SELECT 1 FROM test_results WHERE run_id = "
                 "$1::bigint AND name = $2), "
                 "handoff_test_json($1::bigint, $2)::text",
                 2, p, &res);
    if (rc != ST_OK) {
        reply_db_error(out, rc);
    } else if (strcmp(db_res_get(res, 0, 0), "t") != 0) {
        reply_error(out, 404, "not_found", "no run %" PRId64, run_id);
    } else if (strcmp(db_res_get(res, 0, 1), "t") != 0) {
        reply_error(out, 404, "not_found",
                    "run %" PRId64 " has no result for test \"%.200s\" (yet)",
                    run_id, name);
    } else {
        out->status = 200;
        out->body = mem_strdup(db_res_get(res, 0, 2));
        out->run_id = run_id;
    }
    db_res_free(res);
}

/* A stored job's payload (hex, as encode(payload, 'hex') gives it) in
 * *data (*n bytes, the caller frees), and the Nats-Msg-Id of its first
 * publish in key: its id and its creation time, which the payload holds.
 * Returns false (logged) when the payload does not decode. */
static bool stored_job(const char *job_id, const char *hex, char **data,
                       size_t *n, char *key, size_t key_len)
{
    struct wire_job job;

    *n = strlen(hex) / 2;
    *data = mem_alloc(*n + 1);
    for (size_t k = 0; k < *n; k++) {
        unsigned int byte;

        if (sscanf(hex + 2 * k, "%2x", &byte) != 1) {
            byte = 0;
        }
        (*data)[k] = (char)byte;
    }
    if (wire_job_decode(*data, *n, &job) != ST_OK) {
        log_error("store: job %s has an unreadable payload", job_id);
        free(*data);
        *data = NULL;
        return false;
    }
    subjects_msg_id(job_id, job.created_unix_ms, 0, NULL, key, key_len);
    wire_job_cleanup(&job);
    return true;
}

/* ---- Cancelling --------------------------------------------------------- */

/* Tells the workers. The cancel is stored (stream HANDOFF_CANCELS): a
 * worker that starts or reconnects later replays it before it takes a job,
 * so it drops the run's job still in the queue however late it comes.
 * With NATS away the core publish waits in nats.c's reconnect buffer and
 * is stored once it is back. */
static void broadcast_cancel(struct bus *bus, int64_t run_id,
                             const char *reason, char **job_keys,
                             size_t n_job_keys)
{
    struct wire_cancel c = {.run_id = run_id,
                            .reason = (char *)reason,
                            .job_keys = job_keys,
                            .n_job_keys = n_job_keys};
    struct buf b;

    buf_init(&b, 0);
    wire_cancel_encode(&c, &b);
    /* Without job keys (a timeout: its queued job carries its deadline)
     * there is nothing a later worker needs: a core publish, which the
     * stream stores all the same while NATS is up, without a wait each
     * (the sweeper may time out thousands at once). */
    if (n_job_keys == 0) {
        (void)bus_publish(bus, SUBJECTS_CANCEL, b.data, b.len);
    } else if (bus_js_publish(bus, SUBJECTS_CANCEL, b.data, b.len, NULL,
                              2000) != ST_OK) {
        log_warn("store: the cancel of run %" PRId64 " is not stored yet; "
                 "sent when NATS is back",
                 run_id);
        (void)bus_publish(bus, SUBJECTS_CANCEL, b.data, b.len);
    }
    buf_cleanup(&b);
}

static int parse_cancel_body(const char *body, size_t len, char *reason,
                             size_t reason_len, struct store_reply *out)
{
    json_error_t jerr;
    json_t *o;
    const char *key;
    json_t *v;

    snprintf(reason, reason_len, "cancelled");
    if (!body || len == 0) {
        return ST_OK;
    }
    o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        reply_error(out, 400, "malformed_json",
                    "the body must be a JSON object (or empty)");
        return ST_INVALID;
    }
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "reason") != 0) {
            reply_error(out, 400, "unknown_field", "unknown field \"%.100s\"",
                        key);
            json_decref(o);
            return ST_INVALID;
        }
        if (!json_is_string(v) || json_string_length(v) > 1024) {
            reply_error(out, 400, "invalid_argument",
                        "field \"reason\": want a string of at most 1024 "
                        "bytes");
            json_decref(o);
            return ST_INVALID;
        }
        snprintf(reason, reason_len, "cancelled: %s", json_string_value(v));
    }
    json_decref(o);
    return ST_OK;
}

void store_cancel_run(struct db *d, struct bus *bus, const char *id,
                      const char *body, size_t len, struct store_reply *out)
{
    int64_t run_id;
    char idt[24];
    char reason[1100];
    const char *p[2] = {idt, reason};
    struct db_res *res = NULL;
    struct db_res *jobs = NULL;
    char **keys = NULL;
    size_t n_keys = 0;
    const char *state;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!parse_id(id, &run_id)) {
        reply_error(out, 404, "not_found", "no run \"%.64s\"", id);
        return;
    }
    if (parse_cancel_body(body, len, reason, sizeof(reason), out) != ST_OK) {
        return;
    }
    fmt_i64(idt, sizeof(idt), run_id);
    rc = db_begin(d);
    if (rc == ST_OK) {
        rc = db_exec(d,
                     "SELECT state, namespace, suite FROM runs WHERE id = "
                     "$1::bigint FOR UPDATE",
                     1, p, &res);
    }
    if (rc != ST_OK) {
        db_rollback(d);
        reply_db_error(out, rc);
        goto done;
    }
    if (db_res_rows(res) == 0) {
        db_rollback(d);
        reply_error(out, 404, "not_found", "no run %" PRId64, run_id);
        goto done;
    }
    state = db_res_get(res, 0, 0);
    snprintf(out->ns, sizeof(out->ns), "%s", db_res_get(res, 0, 1));
    snprintf(out->suite, sizeof(out->suite), "%s", db_res_get(res, 0, 2));
    if (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0) {
        db_rollback(d);
        reply_error(out, 409, "conflict",
                    "run %" PRId64 " has already ended (%s)", run_id, state);
        goto done;
    }
    /* The cancel names the run's jobs not done: a worker that takes one,
     * however late (it replays the stored cancels), drops it. */
    rc = db_exec(d,
                 "SELECT id, encode(payload, 'hex') FROM jobs WHERE run_id = "
                 "$1::bigint AND state <> 'done' ORDER BY shard",
                 1, p, &jobs);
    for (size_t i = 0; rc == ST_OK && i < db_res_rows(jobs); i++) {
        char key[96];
        char *data;
        size_t n;

        if (n_keys < WIRE_CANCEL_MAX_KEYS &&
            stored_job(db_res_get(jobs, i, 0), db_res_get(jobs, i, 1), &data,
                       &n, key, sizeof(key))) {
            free(data);
            keys = mem_reallocarray(keys, n_keys + 1, sizeof(*keys));
            keys[n_keys++] = mem_strdup(key);
        }
    }
    if (rc == ST_OK && strcmp(state, "queued") == 0) {
        /* Not started: it ends now; the workers drop its job. */
        rc = db_exec(d,
                     "UPDATE runs SET state = 'cancelled', result = 'error', "
                     "reason = $2, cancel_reason = $2, finished_at = now(), "
                     "cancel_requested_at = now() WHERE id = $1::bigint",
                     2, p, NULL);
    } else if (rc == ST_OK) {
        rc = db_exec(d,
                     "UPDATE runs SET cancel_requested_at = now(), "
                     "cancel_reason = $2 WHERE id = $1::bigint",
                     2, p, NULL);
    }
    if (rc == ST_OK) {
        rc = db_commit(d);
    } else {
        db_rollback(d);
    }
    if (rc != ST_OK) {
        reply_db_error(out, rc);
        goto done;
    }
    broadcast_cancel(bus, run_id, reason, keys, n_keys);
    out->run_id = run_id;
    rc = run_json(d, run_id, &out->body);
    if (rc != ST_OK) {
        reply_db_error(out, rc);
        goto done;
    }
    out->status = 202;
done:
    for (size_t i = 0; i < n_keys; i++) {
        free(keys[i]);
    }
    free(keys);
    db_res_free(jobs);
    db_res_free(res);
}

/* ---- Catalog ------------------------------------------------------------ */

static void single_json(struct db *d, const char *sql, struct store_reply *out)
{
    struct db_res *res = NULL;
    int rc = db_exec(d, sql, 0, NULL, &res);

    memset(out, 0, sizeof(*out));
    if (rc != ST_OK) {
        reply_db_error(out, rc);
    } else {
        out->status = 200;
        out->body = mem_strdup(db_res_get(res, 0, 0));
    }
    db_res_free(res);
}

void store_list_suites(struct db *d, struct store_reply *out)
{
    single_json(
        d,
        "SELECT jsonb_build_object('suites', coalesce(jsonb_agg("
        "jsonb_build_object('name', s.name, 'namespace', s.namespace, "
        "'description', s.description, 'max_attempts', s.max_attempts, "
        "'test_timeout_ms', s.test_timeout_ms, 'timeout_ms', s.timeout_ms, "
        "'tests', s.tests, 'workflows', s.workflows, "
        "'pool', s.pool, 'last_seen', handoff_ts(s.last_seen), "
        "'workers', (SELECT coalesce(jsonb_agg(w.id ORDER BY w.id), "
        "'[]'::jsonb) FROM workers w WHERE w.last_seen > now() - "
        "interval '10 seconds' AND w.pool = s.pool AND w.suites ? "
        "(s.namespace || '/' || s.name))) ORDER BY s.namespace, s.name, "
        "s.pool), '[]'::jsonb))::text FROM suites s",
        out);
}

void store_list_workers(struct db *d, struct store_reply *out)
{
    single_json(
        d,
        "SELECT jsonb_build_object('workers', coalesce(jsonb_agg("
        "jsonb_build_object('id', w.id, 'host', w.host, 'pool', w.pool, "
        "'labels', w.labels, 'slots', w.slots, 'free_slots', w.free_slots, "
        "'draining', w.draining, 'version', w.version, 'suites', w.suites, "
        "'running_runs', w.running_runs, 'started_at', "
        "handoff_ts(w.started_at), 'last_seen', handoff_ts(w.last_seen), "
        "'alive', w.last_seen > now() - interval '10 seconds') "
        "ORDER BY w.id), '[]'::jsonb))::text FROM workers w "
        "WHERE w.last_seen > now() - interval '1 day'",
        out);
}

int store_run_state(struct db *d, int64_t run_id, char *state, size_t state_len,
                    char *result, size_t result_len, char *reason,
                    size_t reason_len)
{
    char idt[24];
    const char *p[1] = {idt};
    struct db_res *res = NULL;
    int rc;

    fmt_i64(idt, sizeof(idt), run_id);
    rc = db_exec(d,
                 "SELECT state, coalesce(result, ''), coalesce(reason, '') "
                 "FROM runs WHERE id = $1::bigint",
                 1, p, &res);
    if (rc == ST_OK && db_res_rows(res) == 0) {
        rc = ST_NOT_FOUND;
    }
    if (rc == ST_OK) {
        snprintf(state, state_len, "%s", db_res_get(res, 0, 0));
        snprintf(result, result_len, "%s", db_res_get(res, 0, 1));
        snprintf(reason, reason_len, "%s", db_res_get(res, 0, 2));
    }
    db_res_free(res);
    return rc;
}

/* ---- Background tasks --------------------------------------------------- */

int store_publish_outbox(struct db *d, struct bus *bus, int *published)
{
    struct db_res *res = NULL;
    int rc;

    *published = 0;
    (void)store_flush_published(d);
    if (!bus_is_connected(bus)) {
        return ST_UPSTREAM;
    }
    rc = db_begin(d);
    if (rc == ST_OK) {
        /* SKIP LOCKED: replicas share the work instead of repeating it
         * (a repeat would be harmless: Nats-Msg-Id de-duplicates). Jobs
         * younger than the grace are still being published by the
         * transaction that stored them (the scheduler publishes
         * thousands at a tick): picking them up too would only repeat
         * that work, and walking them costs the whole tick. */
        rc = db_exec(d,
                     "SELECT j.id, j.subject, encode(j.payload, 'hex') "
                     "FROM jobs j JOIN runs r ON r.id = j.run_id "
                     "WHERE j.published_at IS NULL AND j.created_at < now() "
                     "- interval '" STORE_OUTBOX_GRACE "' AND r.state = "
                     "'queued' ORDER BY j.created_at LIMIT 200 "
                     "FOR UPDATE OF j SKIP LOCKED",
                     0, NULL, &res);
    }
    for (size_t i = 0; rc == ST_OK && i < db_res_rows(res); i++) {
        const char *p[1] = {db_res_get(res, i, 0)};
        char *data;
        size_t n;
        char msg_id[96];

        /* The id the first attempt used. */
        if (!stored_job(p[0], db_res_get(res, i, 2), &data, &n, msg_id,
                        sizeof(msg_id))) {
            continue;
        }
        if (bus_js_publish(bus, db_res_get(res, i, 1), data, n, msg_id, 2000) ==
            ST_OK) {
            rc =
                db_exec(d, "UPDATE jobs SET published_at = now() WHERE id = $1",
                        1, p, NULL);
            (*published)++;
        }
        free(data);
    }
    if (rc == ST_OK) {
        rc = db_commit(d);
    } else {
        db_rollback(d);
    }
    db_res_free(res);
    return rc;
}

int store_sweep(struct db *d, struct bus *bus,
                void (*ended)(void *arg, int64_t run_id, const char *ns,
                              const char *suite, const char *state,
                              const char *result),
                void *arg)
{
    struct db_res *res = NULL;
    int rc;

    /* Runs no worker took in their queue time, and runs whose latest job
     * attempt started longer ago than their timeout plus two minutes
     * (the worker is gone and no other took the job). One statement each:
     * replicas may sweep at once, each run ends once. */
    rc = db_exec(
        d,
        "UPDATE runs SET state = 'timed_out', result = 'error', "
        "finished_at = now(), reason = CASE WHEN state = 'queued' THEN "
        "'no worker started it within ' || (queue_timeout_ms / 1000) || "
        "' s (is a worker with this suite running in pool ' || pool || "
        "'?)' ELSE 'it did not finish within its timeout of ' || "
        "(timeout_ms / 1000) || ' s plus 120 s (its worker was lost?)' END "
        "WHERE (state = 'queued' AND created_at + queue_timeout_ms * "
        "interval '1 millisecond' < now()) OR (state = 'running' AND "
        "coalesce(last_started_at, started_at) + (timeout_ms + 120000) * "
        "interval '1 millisecond' < now()) "
        "RETURNING id, namespace, suite, state, result",
        0, NULL, &res);
    for (size_t i = 0; rc == ST_OK && i < db_res_rows(res); i++) {
        int64_t id;

        if (db_res_int64(res, i, 0, &id) != ST_OK) {
            continue;
        }
        log_info("sweeper: run %" PRId64 " timed out", id);
        /* A job still queued carries its deadline (not_after): no keys
         * needed to drop it. */
        broadcast_cancel(bus, id, "the run timed out", NULL, 0);
        if (ended) {
            ended(arg, id, db_res_get(res, i, 1), db_res_get(res, i, 2),
                  db_res_get(res, i, 3), db_res_get(res, i, 4));
        }
    }
    db_res_free(res);
    return rc;
}

int store_worker_seen(struct db *d, const struct wire_worker *w,
                      bool suites_changed, bool bye)
{
    json_t *labels = json_object();
    json_t *suites = json_array();
    json_t *runs = json_array();
    char *labels_text;
    char *suites_text;
    char *runs_text;
    char slots[24];
    char free_slots[24];
    char started[CLOCK_RFC3339_LEN];
    const char *p[11];
    int rc;

    for (size_t i = 0; i < w->n_labels; i++) {
        json_object_set_new(labels, w->labels[i].key,
                            json_string(w->labels[i].value));
    }
    for (size_t i = 0; i < w->n_suites; i++) {
        char name[320];

        snprintf(name, sizeof(name), "%s/%s", w->suites[i].ns,
                 w->suites[i].name);
        json_array_append_new(suites, json_string(name));
    }
    for (size_t i = 0; i < w->n_running_runs; i++) {
        json_array_append_new(runs, json_integer(w->running_runs[i]));
    }
    labels_text = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
    suites_text = json_dumps(suites, JSON_COMPACT);
    runs_text = json_dumps(runs, JSON_COMPACT);
    fmt_i64(slots, sizeof(slots), w->slots);
    fmt_i64(free_slots, sizeof(free_slots), w->free_slots);
    p[0] = w->worker_id;
    p[1] = w->host;
    p[2] = w->pool;
    p[3] = labels_text;
    p[4] = slots;
    p[5] = free_slots;
    p[6] = (w->draining || bye) ? "true" : "false";
    p[7] = w->version;
    p[8] = suites_text;
    p[9] = runs_text;
    p[10] = w->started_unix_ms > 0
                ? clock_format_rfc3339(w->started_unix_ms * CLOCK_NS_PER_MS,
                                       CLOCK_UTC, 0, started)
                : NULL;
    /* A worker saying bye is marked seen long ago: it is gone now. */
    rc =
        db_exec(d,
                "INSERT INTO workers (id, host, pool, labels, slots, "
                "free_slots, draining, version, suites, running_runs, "
                "started_at, last_seen) VALUES ($1, $2, $3, $4::jsonb, "
                "$5::int, $6::int, $7::bool, $8, $9::jsonb, $10::jsonb, "
                "$11::timestamptz, CASE WHEN $7::bool AND $12::bool THEN "
                "now() - interval '1 hour' ELSE now() END) "
                "ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, "
                "pool = EXCLUDED.pool, labels = EXCLUDED.labels, slots = "
                "EXCLUDED.slots, free_slots = EXCLUDED.free_slots, "
                "draining = EXCLUDED.draining, version = EXCLUDED.version, "
                "suites = EXCLUDED.suites, running_runs = "
                "EXCLUDED.running_runs, started_at = EXCLUDED.started_at, "
                "last_seen = EXCLUDED.last_seen",
                12,
                (const char *[]){p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7],
                                 p[8], p[9], p[10], bye ? "true" : "false"},
                NULL);
    const char *pool = w->pool ? w->pool : "";

    for (size_t i = 0; rc == ST_OK && suites_changed && i < w->n_suites; i++) {
        const struct wire_suite_info *si = &w->suites[i];
        json_t *tests = json_array();
        char *tests_text;
        char ma[24];
        char tt[24];
        char to[24];

        for (size_t k = 0; k < si->n_tests; k++) {
            json_array_append_new(
                tests,
                json_pack("{s:s, s:i, s:I}", "name", si->tests[k].name,
                          "max_attempts", si->tests[k].max_attempts,
                          "timeout_ms", (json_int_t)si->tests[k].timeout_ms));
        }
        tests_text = json_dumps(tests, JSON_COMPACT);
        fmt_i64(ma, sizeof(ma), si->max_attempts);
        fmt_i64(tt, sizeof(tt), si->test_timeout_ms);
        fmt_i64(to, sizeof(to), si->timeout_ms);
        /* The pool's row (migration 12); a row from before pools, which
         * no worker had, goes once a pool announces the suite. */
        rc = db_exec(d,
                     "WITH gone AS (DELETE FROM suites WHERE pool = '' AND "
                     "$8 <> '' AND namespace = $1 AND name = $2) "
                     "INSERT INTO suites (pool, namespace, name, description, "
                     "max_attempts, test_timeout_ms, timeout_ms, tests, "
                     "updated_at, last_seen) VALUES ($8, $1, $2, $3, $4::int, "
                     "$5::bigint, $6::bigint, $7::jsonb, now(), now()) "
                     "ON CONFLICT (pool, namespace, name) DO UPDATE SET "
                     "description = EXCLUDED.description, max_attempts = "
                     "EXCLUDED.max_attempts, test_timeout_ms = "
                     "EXCLUDED.test_timeout_ms, timeout_ms = "
                     "EXCLUDED.timeout_ms, tests = EXCLUDED.tests, "
                     "updated_at = CASE WHEN suites.tests IS DISTINCT FROM "
                     "EXCLUDED.tests THEN now() ELSE suites.updated_at END, "
                     "last_seen = now()",
                     8,
                     (const char *[]){si->ns, si->name, si->description, ma, tt,
                                      to, tests_text, pool},
                     NULL);
        if (rc == ST_OK) {
            rc = loadstore_catalog_workflows(d, pool, si); /* docs/load.md */
        }
        free(tests_text);
        json_decref(tests);
    }
    free(labels_text);
    free(suites_text);
    free(runs_text);
    json_decref(labels);
    json_decref(suites);
    json_decref(runs);
    return rc;
}

/* Appends every row of res as tab-separated fields, one line each. */
static void add_lines(struct buf *b, const struct db_res *res)
{
    for (size_t i = 0; i < db_res_rows(res); i++) {
        for (size_t c = 0; c < db_res_cols(res); c++) {
            buf_addf(b, "%s%s", c ? "\t" : "",
                     db_res_is_null(res, i, c) ? "0" : db_res_get(res, i, c));
        }
        buf_addc(b, '\n');
    }
}

int store_gauges(struct db *d, char **running, char **pools,
                 int64_t *outbox_jobs)
{
    struct db_res *res = NULL;
    struct buf run_lines;
    struct buf pool_lines;
    int rc;

    buf_init(&run_lines, 0);
    buf_init(&pool_lines, 0);
    rc = db_exec(d,
                 "SELECT namespace, suite, count(*) FROM runs WHERE "
                 "state = 'running' GROUP BY 1, 2",
                 0, NULL, &res);
    if (rc == ST_OK) {
        add_lines(&run_lines, res);
    }
    db_res_free(res);
    res = NULL;
    if (rc == ST_OK) {
        /* Every pool with live workers or waiting jobs. */
        rc = db_exec(
            d,
            "WITH q AS (SELECT r.pool, count(*) AS n FROM jobs j JOIN runs r "
            "ON r.id = j.run_id WHERE j.state = 'queued' AND r.state = "
            "'queued' AND j.published_at IS NOT NULL GROUP BY 1), "
            "w AS (SELECT pool, count(*) AS n, sum(slots) AS slots, "
            "sum(free_slots) AS free FROM workers WHERE last_seen > now() - "
            "interval '10 seconds' GROUP BY 1) "
            "SELECT coalesce(q.pool, w.pool), coalesce(q.n, 0), "
            "coalesce(w.n, 0), coalesce(w.slots, 0), coalesce(w.free, 0) "
            "FROM q FULL JOIN w ON w.pool = q.pool",
            0, NULL, &res);
        if (rc == ST_OK) {
            add_lines(&pool_lines, res);
        }
        db_res_free(res);
        res = NULL;
    }
    if (rc == ST_OK) {
        rc = db_exec(d,
                     "SELECT count(*) FROM jobs j JOIN runs r ON r.id = "
                     "j.run_id WHERE j.published_at IS NULL AND r.state = "
                     "'queued'",
                     0, NULL, &res);
        if (rc == ST_OK && db_res_int64(res, 0, 0, outbox_jobs) != ST_OK) {
            rc = ST_INTERNAL;
        }
        db_res_free(res);
    }
    if (rc != ST_OK) {
        buf_cleanup(&run_lines);
        buf_cleanup(&pool_lines);
        return rc;
    }
    *running = buf_detach(&run_lines);
    *pools = buf_detach(&pool_lines);
    return ST_OK;
}
