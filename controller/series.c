/* Soak series: the API and the driver (see series.h). */
#include "series.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cmetrics.h"
#include "db.h"
#include "log.h"
#include "mem.h"
#include "runreq.h"
#include "store.h"

#define SERIES_MAX_POLL 100

/* The series fields of a POST body, apart from its run request. */
struct series_def {
    int64_t repeat;      /* 0: none */
    int64_t duration_ms; /* 0: none */
    bool until_failure;
    int64_t pause_ms;
};

static bool parse_id(const char *text, int64_t *out)
{
    char *end;
    long long v;

    if (!text || !isdigit((unsigned char)text[0]) || strlen(text) > 18) {
        return false;
    }
    v = strtoll(text, &end, 10);
    if (*end || v <= 0) {
        return false;
    }
    *out = v;
    return true;
}

static int get_ms(json_t *obj, const char *key, int64_t min_ms, int64_t max_ms,
                  int64_t *out, struct store_reply *r)
{
    json_t *v = json_object_get(obj, key);
    int64_t ns = 0;

    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_string(v) ||
        clock_parse_duration(json_string_value(v), &ns) != ST_OK ||
        ns / CLOCK_NS_PER_MS < min_ms || ns / CLOCK_NS_PER_MS > max_ms) {
        store_reply_error(r, 400, "invalid_argument",
                          "field \"%s\": want a duration from %" PRId64
                          " ms to %" PRId64 " h, e.g. \"90s\" or \"1h30m\"",
                          key, min_ms, max_ms / (3600 * 1000));
        return ST_INVALID;
    }
    *out = ns / CLOCK_NS_PER_MS;
    return ST_OK;
}

/* Takes the series fields out of obj into def. */
static int take_def(json_t *obj, struct series_def *def, struct store_reply *r)
{
    json_t *v = json_object_get(obj, "repeat");

    memset(def, 0, sizeof(*def));
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > SERIES_MAX_REPEAT) {
            store_reply_error(r, 400, "invalid_argument",
                              "field \"repeat\": want an integer from 1 to %d",
                              SERIES_MAX_REPEAT);
            return ST_INVALID;
        }
        def->repeat = json_integer_value(v);
    }
    v = json_object_get(obj, "until_failure");
    if (v && !json_is_boolean(v)) {
        store_reply_error(r, 400, "invalid_argument",
                          "field \"until_failure\": want true or false");
        return ST_INVALID;
    }
    def->until_failure = v && json_is_true(v);
    if (get_ms(obj, "duration", 1000, SERIES_MAX_DURATION_MS, &def->duration_ms,
               r) ||
        get_ms(obj, "pause", 0, SERIES_MAX_PAUSE_MS, &def->pause_ms, r)) {
        return ST_INVALID;
    }
    if (!def->repeat && !def->duration_ms) {
        if (!def->until_failure) {
            store_reply_error(r, 400, "invalid_argument",
                              "a series needs \"repeat\", \"duration\" or "
                              "\"until_failure\"");
            return ST_INVALID;
        }
        def->repeat = SERIES_DEFAULT_REPEAT;
    }
    json_object_del(obj, "repeat");
    json_object_del(obj, "duration");
    json_object_del(obj, "until_failure");
    json_object_del(obj, "pause");
    return ST_OK;
}

static void reply_series(struct db *d, const char *sql, const char *id,
                         int status, struct store_reply *out)
{
    char not_found[160];

    snprintf(not_found, sizeof(not_found), "no series %s", id);
    (void)store_reply_json(d, "series", sql, 1, (const char *[]){id}, status,
                           not_found, out);
}

void series_create(struct db *d, const char *body, size_t len,
                   struct store_reply *out)
{
    struct series_def def;
    struct run_request req;
    struct runreq_error err = {0};
    json_error_t jerr;
    json_t *obj =
        json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    char *rest = NULL;
    char ns[160];
    char p_repeat[24];
    char p_duration[24];
    char p_pause[24];
    struct db_res *res = NULL;
    bool parsed = false;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(obj)) {
        store_reply_error(out, 400, "malformed_json",
                          "the body must be a JSON object: a run request "
                          "with \"repeat\", \"duration\", \"until_failure\" "
                          "and \"pause\"");
        goto done;
    }
    if (take_def(obj, &def, out) != ST_OK) {
        goto done;
    }
    rest = json_dumps(obj, JSON_COMPACT);
    if (!rest || runreq_parse(rest, strlen(rest), false, &req, &err) != ST_OK) {
        store_reply_error(out, 400, err.code ? err.code : "invalid_argument",
                          "%s", err.message);
        goto done;
    }
    parsed = true;
    if (store_check_suite(d, &req, ns, sizeof(ns), out) != ST_OK) {
        goto done;
    }
    /* The namespace as resolved now: a suite announced later in a second
     * namespace does not make the series' runs ambiguous. */
    json_object_set_new(obj, "namespace", json_string(ns));
    free(rest);
    rest = json_dumps(obj, JSON_COMPACT);
    snprintf(p_repeat, sizeof(p_repeat), "%" PRId64, def.repeat);
    snprintf(p_duration, sizeof(p_duration), "%" PRId64, def.duration_ms);
    snprintf(p_pause, sizeof(p_pause), "%" PRId64, def.pause_ms);
    rc = db_exec_ctx(
        d, "series: create",
        "INSERT INTO series AS s (suite, namespace, request, max_runs, "
        "duration_ms, until_failure, pause_ms) VALUES ($1, $2, $3::jsonb, "
        "$4::int, $5::bigint, $6::boolean, $7::bigint) RETURNING "
        "handoff_series_json(s)::text, s.id",
        7,
        (const char *[]){req.suite, ns, rest, def.repeat ? p_repeat : NULL,
                         def.duration_ms ? p_duration : NULL,
                         def.until_failure ? "true" : "false", p_pause},
        &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else {
        out->status = 201;
        out->body = mem_strdup(db_res_get(res, 0, 0));
        snprintf(out->location, sizeof(out->location), "/api/v1/series/%s",
                 db_res_get(res, 0, 1));
    }
    db_res_free(res);
done:
    if (parsed) {
        runreq_cleanup(&req);
    }
    free(rest);
    json_decref(obj);
}

void series_list(struct db *d, struct store_reply *out)
{
    memset(out, 0, sizeof(*out));
    (void)store_reply_json(
        d, "series: list",
        "SELECT jsonb_build_object('series', coalesce(jsonb_agg("
        "handoff_series_json(s) ORDER BY s.id DESC), '[]'::jsonb))::text "
        "FROM (SELECT * FROM series ORDER BY id DESC LIMIT 50) s",
        0, NULL, 200, "", out);
}

void series_get(struct db *d, const char *id, struct store_reply *out)
{
    int64_t v;

    memset(out, 0, sizeof(*out));
    if (!parse_id(id, &v)) {
        store_reply_error(out, 404, "not_found",
                          "no series \"%.64s\" (series ids are positive "
                          "integers)",
                          id ? id : "");
        return;
    }
    reply_series(d,
                 "SELECT handoff_series_json(s)::text FROM series s WHERE "
                 "s.id = $1::bigint",
                 id, 200, out);
}

void series_cancel(struct db *d, const char *id, struct store_reply *out)
{
    struct db_res *res = NULL;
    int64_t v;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!parse_id(id, &v)) {
        store_reply_error(out, 404, "not_found", "no series \"%.64s\"",
                          id ? id : "");
        return;
    }
    rc = db_exec_ctx(d, "series: cancel",
                     "UPDATE series SET state = 'cancelled', stop_reason = "
                     "'cancelled', finished_at = now() WHERE id = $1::bigint "
                     "AND state = 'running'",
                     1, (const char *[]){id}, &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
        db_res_free(res);
        return;
    }
    if (db_res_affected(res) == 0) {
        db_res_free(res);
        res = NULL;
        rc = db_exec_ctx(d, "series: cancel",
                         "SELECT 1 FROM series WHERE id = $1::bigint", 1,
                         (const char *[]){id}, &res);
        if (rc != ST_OK) {
            store_reply_db_error(out, rc);
        } else if (db_res_rows(res) == 0) {
            store_reply_error(out, 404, "not_found", "no series %s", id);
        } else {
            store_reply_error(out, 409, "conflict", "series %s has ended", id);
        }
        db_res_free(res);
        return;
    }
    db_res_free(res);
    reply_series(d,
                 "SELECT handoff_series_json(s)::text FROM series s WHERE "
                 "s.id = $1::bigint",
                 id, 200, out);
}

/* ---- The driver ---------------------------------------------------------- */

/* One running series as the poll read it. */
struct pending {
    char id[24];
    char started[24]; /* runs_started as read: the guard */
    char *request;
    int64_t max_runs; /* 0: none */
    bool until_failure;
    bool expired;  /* its duration is over */
    bool has_last; /* it has a run */
    bool last_active;
    bool last_passed;
    bool due; /* the pause after the last run is over */
};

/* Ends the series if nobody started a run since the poll. */
static void finish(struct db *d, const struct pending *p, const char *reason,
                   const char *detail)
{
    struct db_res *res = NULL;

    if (db_exec_ctx(d, "series: finish",
                    "UPDATE series SET state = 'finished', stop_reason = $3, "
                    "detail = $4, finished_at = now() WHERE id = $1::bigint "
                    "AND state = 'running' AND runs_started = $2::int",
                    4, (const char *[]){p->id, p->started, reason, detail},
                    &res) == ST_OK &&
        db_res_affected(res) == 1) {
        log_info("series %s: finished (%s%s%s)", p->id, reason,
                 detail ? ": " : "", detail ? detail : "");
    }
    db_res_free(res);
}

static int start_in_transaction(struct db *d, int64_t run_id, void *arg)
{
    const struct pending *p = arg;
    char run[24];
    struct db_res *res = NULL;
    int rc = db_exec(d,
                     "UPDATE series SET runs_started = runs_started + 1 WHERE "
                     "id = $1::bigint AND state = 'running' AND runs_started "
                     "= $2::int",
                     2, (const char *[]){p->id, p->started}, &res);

    if (rc == ST_OK && db_res_affected(res) != 1) {
        rc = ST_CONFLICT; /* another replica started it, or it ended */
    }
    db_res_free(res);
    snprintf(run, sizeof(run), "%" PRId64, run_id);
    return rc ? rc
              : db_exec(d,
                        "UPDATE runs SET series_id = $2::bigint WHERE id = "
                        "$1::bigint",
                        2, (const char *[]){run, p->id}, NULL);
}

static void start_run(struct db *d, struct bus *bus, struct cmetrics *m,
                      const struct pending *p)
{
    struct run_request req;
    struct runreq_error err = {0};
    struct store_reply reply = {0};
    struct store_run_hook hook = {start_in_transaction, (void *)p, true};

    if (runreq_parse(p->request, strlen(p->request), false, &req, &err) !=
        ST_OK) {
        finish(d, p, "error", err.message);
        return;
    }
    store_create_run_ex(d, bus, &req, NULL, &hook, &reply);
    if (reply.status == 201) {
        log_info("series %s: run %" PRId64 " started", p->id, reply.run_id);
        if (m) {
            metrics_inc(m->runs_created, 3,
                        (const char *[]){reply.ns, reply.suite, req.trigger},
                        1);
        }
    } else if (reply.status >= 400 && reply.status < 500 &&
               reply.status != 409) {
        /* The suite left the catalog, or its filters select nothing
         * now: the series ends rather than trying forever. */
        finish(d, p, "error", reply.error_message);
    }
    store_reply_cleanup(&reply);
    runreq_cleanup(&req);
}

static void read_pending(const struct db_res *res, size_t i, struct pending *p)
{
    const char *v;

    memset(p, 0, sizeof(*p));
    snprintf(p->id, sizeof(p->id), "%s", db_res_get(res, i, 0));
    snprintf(p->started, sizeof(p->started), "%s", db_res_get(res, i, 1));
    v = db_res_get(res, i, 2);
    p->request = mem_strdup(v ? v : "{}");
    if (db_res_is_null(res, i, 3) ||
        db_res_int64(res, i, 3, &p->max_runs) != ST_OK) {
        p->max_runs = 0;
    }
    p->until_failure = strcmp(db_res_get(res, i, 4), "t") == 0;
    p->expired = strcmp(db_res_get(res, i, 5), "t") == 0;
    p->has_last = !db_res_is_null(res, i, 6);
    v = db_res_get(res, i, 6);
    p->last_active =
        v && (strcmp(v, "queued") == 0 || strcmp(v, "running") == 0);
    v = db_res_get(res, i, 7);
    p->last_passed = v && strcmp(v, "passed") == 0;
    p->due = strcmp(db_res_get(res, i, 8), "t") == 0;
}

/* Handles one series as the poll read it. */
static void drive_one(struct db *d, struct bus *bus, struct cmetrics *metrics,
                      const struct pending *p)
{
    int64_t started = strtoll(p->started, NULL, 10);

    if (p->last_active) {
        /* Never two runs of a series at once. */
    } else if (p->has_last && p->until_failure && !p->last_passed) {
        finish(d, p, "failure", NULL);
    } else if (p->max_runs > 0 && started >= p->max_runs) {
        finish(d, p, "repeat", NULL);
    } else if (p->expired) {
        finish(d, p, "duration", NULL);
    } else if (p->due) {
        start_run(d, bus, metrics, p);
    }
}

void series_drive(struct db *d, struct bus *bus, struct cmetrics *metrics)
{
    char after[24] = "0";
    size_t n;

    /* Pages of SERIES_MAX_POLL by id, so every running series is seen. */
    do {
        struct db_res *res = NULL;
        struct pending p[SERIES_MAX_POLL];
        int rc = db_exec_ctx(
            d, "series: poll",
            "SELECT s.id, s.runs_started, s.request::text, s.max_runs, "
            "s.until_failure, s.duration_ms IS NOT NULL AND now() >= "
            "s.created_at + s.duration_ms * interval '1 millisecond', "
            "l.state, l.result, l.id IS NULL OR now() >= "
            "coalesce(l.finished_at, now()) + s.pause_ms * interval "
            "'1 millisecond' FROM series s LEFT JOIN LATERAL (SELECT r.id, "
            "r.state, r.result, r.finished_at FROM runs r WHERE r.series_id "
            "= s.id ORDER BY r.id DESC LIMIT 1) l ON true WHERE s.state = "
            "'running' AND s.id > $1::bigint ORDER BY s.id LIMIT 100",
            1, (const char *[]){after}, &res);

        n = 0;
        for (size_t i = 0;
             rc == ST_OK && i < db_res_rows(res) && i < SERIES_MAX_POLL; i++) {
            read_pending(res, i, &p[n++]);
        }
        db_res_free(res);
        for (size_t i = 0; i < n; i++) {
            drive_one(d, bus, metrics, &p[i]);
            free(p[i].request);
        }
        if (n > 0) {
            snprintf(after, sizeof(after), "%s", p[n - 1].id);
        }
    } while (n == SERIES_MAX_POLL);
}
