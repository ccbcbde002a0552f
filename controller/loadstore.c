/* loadstore: distributed load runs in PostgreSQL (see loadstore.h). Runs
 * on the ingest thread inside a batch's transaction (and on API database
 * threads for the endpoints); the load row of a run is locked (FOR UPDATE)
 * while it changes, so replicas ingesting the same run take turns. */
#include "loadstore.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "clock.h"
#include "db.h"
#include "loaddiff.h"
#include "loadjson.h"
#include "log.h"
#include "mem.h"
#include "snap.h"
#include "subjects.h"
#include "threshold.h"

/* ---- Helpers ---------------------------------------------------------- */

static char *hex_of(const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    char *hex = mem_alloc(2 * len + 1);

    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[p[i] >> 4];
        hex[2 * i + 1] = digits[p[i] & 15];
    }
    hex[2 * len] = '\0';
    return hex;
}

static int hex_val(char c)
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

/* Decodes PostgreSQL's hex text into a new buffer; NULL for bad text. */
static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    unsigned char *out;

    if (n % 2 != 0) {
        return NULL;
    }
    out = mem_alloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int a = hex_val(hex[2 * i]);
        int b = hex_val(hex[2 * i + 1]);

        if (a < 0 || b < 0) {
            free(out);
            return NULL;
        }
        out[i] = (unsigned char)(a << 4 | b);
    }
    *len = n / 2;
    return out;
}

static void fmt_i64(char *out, size_t len, int64_t v)
{
    snprintf(out, len, "%" PRId64, v);
}

static void touch(struct loadstore_fx *fx, int64_t run_id)
{
    for (size_t i = 0; i < fx->n_runs; i++) {
        if (fx->runs[i] == run_id) {
            return;
        }
    }
    fx->runs = mem_reallocarray(fx->runs, fx->n_runs + 1, sizeof(*fx->runs));
    fx->runs[fx->n_runs++] = run_id;
}

void loadstore_fx_init(struct loadstore_fx *fx)
{
    memset(fx, 0, sizeof(*fx));
}

void loadstore_fx_cleanup(struct loadstore_fx *fx)
{
    for (size_t i = 0; i < fx->n_jobs; i++) {
        free(fx->jobs[i].id);
        free(fx->jobs[i].subject);
        buf_cleanup(&fx->jobs[i].payload);
    }
    for (size_t i = 0; i < fx->n_points; i++) {
        free(fx->points[i].json);
    }
    for (size_t i = 0; i < fx->n_cancels; i++) {
        free(fx->cancels[i].reason);
    }
    free(fx->runs);
    free(fx->jobs);
    free(fx->points);
    free(fx->cancels);
    free(fx->ended);
    memset(fx, 0, sizeof(*fx));
}

/* ---- Creating a load run ---------------------------------------------- */

int loadstore_create(struct db *d, int64_t run_id, void *arg)
{
    const struct wire_load *l = arg;
    json_t *ths = json_array();
    char run[24];
    char shards[24];
    char *text;
    int rc;

    for (size_t i = 0; i < l->n_thresholds; i++) {
        json_array_append_new(ths, json_string(l->thresholds[i]));
    }
    text = json_dumps(ths, JSON_COMPACT);
    fmt_i64(run, sizeof(run), run_id);
    fmt_i64(shards, sizeof(shards), l->shards);
    rc = db_exec(d,
                 "INSERT INTO load_runs (run_id, workflow, shards_requested, "
                 "thresholds) VALUES ($1::bigint, $2, $3::int, $4::jsonb)",
                 4, (const char *[]){run, l->workflow, shards, text}, NULL);
    free(text);
    json_decref(ths);
    return rc;
}

int loadstore_check_workflow(struct db *d, const struct run_request *req,
                             struct store_reply *out)
{
    char ns[160];
    struct db_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = store_resolve_suite(d, req->suite, req->ns, ns, sizeof(ns), out);
    if (rc != ST_OK) {
        return rc;
    }
    rc = db_exec(
        d,
        "SELECT workflows ? $3, coalesce((SELECT string_agg(w, ', ' "
        "ORDER BY w) FROM jsonb_array_elements_text(workflows) w), "
        "'') FROM suites WHERE namespace = $1 AND name = $2 "
        "ORDER BY coalesce(pool = $4, false) DESC, last_seen DESC "
        "LIMIT 1",
        4, (const char *[]){ns, req->suite, req->load->workflow, req->pool},
        &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else if (db_res_rows(res) != 1 ||
               strcmp(db_res_get(res, 0, 0), "t") != 0) {
        const char *have = db_res_rows(res) == 1 ? db_res_get(res, 0, 1) : "";

        store_reply_error(out, 404, "not_found",
                          "field \"load.workflow\": suite %s/%s has no "
                          "workflow \"%s\"%s%s%s",
                          ns, req->suite, req->load->workflow,
                          *have ? " (it has: " : " (it has none)", have,
                          *have ? ")" : "");
        rc = ST_NOT_FOUND;
    }
    db_res_free(res);
    return rc;
}

int loadstore_catalog_workflows(struct db *d, const char *pool,
                                const struct wire_suite_info *si)
{
    json_t *arr = json_array();
    char *text;
    int rc;

    for (size_t i = 0; i < si->n_workflows; i++) {
        json_array_append_new(arr, json_string(si->workflows[i]));
    }
    text = json_dumps(arr, JSON_COMPACT);
    rc = db_exec(d,
                 "UPDATE suites SET workflows = $3::jsonb WHERE pool = $4 "
                 "AND namespace = $1 AND name = $2 AND workflows IS DISTINCT "
                 "FROM $3::jsonb",
                 4, (const char *[]){si->ns, si->name, text, pool}, NULL);
    free(text);
    json_decref(arr);
    return rc;
}

/* ---- Snapshots --------------------------------------------------------- */

int loadstore_snapshot(struct db *d, const struct wire_load_snapshot *s,
                       struct loadstore_fx *fx)
{
    char run[24];
    char shard[24];
    char second[24];
    char t_ns[24];
    char attempt[24];
    char *hex = hex_of(s->snap, s->snap_len);
    struct db_res *res = NULL;
    int rc;

    fmt_i64(run, sizeof(run), s->run_id);
    fmt_i64(shard, sizeof(shard), (int64_t)s->shard + 1);
    fmt_i64(second, sizeof(second), s->second);
    fmt_i64(t_ns, sizeof(t_ns), s->t_ns);
    fmt_i64(attempt, sizeof(attempt), s->job_attempt);
    /* Only for a shard job of this run, while its shards run: anything
     * else (another installation's run, a late repeat) is dropped. */
    rc = db_exec(
        d,
        "INSERT INTO load_snapshots (run_id, shard, second, t_ns, "
        "job_attempt, data) SELECT $1::bigint, $2::int, $3::int, "
        "$4::bigint, $5::int, decode($6, 'hex') "
        "WHERE EXISTS (SELECT 1 FROM load_runs l JOIN jobs j ON "
        "j.run_id = l.run_id WHERE l.run_id = $1::bigint AND "
        "l.phase = 'shards' AND j.id = $7 AND j.shard = $2::int "
        "AND $2::int <= l.shards) "
        "ON CONFLICT (run_id, shard, second) DO NOTHING RETURNING 1",
        7, (const char *[]){run, shard, second, t_ns, attempt, hex, s->job_id},
        &res);
    if (rc == ST_OK && db_res_rows(res) == 1) {
        touch(fx, s->run_id);
    }
    db_res_free(res);
    free(hex);
    return rc;
}

/* ---- Jobs of a load run ------------------------------------------------ */

/* Inserts a job made from the setup job's message (template) with load
 * spec l, job shard number shard, and queues its publishing. */
static int add_job(struct db *d, int64_t run_id, const char *subject,
                   const struct wire_job *tmpl, const struct wire_load *l,
                   int shard, struct loadstore_fx *fx)
{
    struct wire_job j = *tmpl;
    struct loadstore_job *lj;
    char id[48];
    char run[24];
    char num[24];
    char *hex;
    int rc;

    snprintf(id, sizeof(id), "%" PRId64 ".%d", run_id, shard);
    j.job_id = id;
    j.shard = shard;
    j.shards = l->shards;
    j.created_unix_ms = clock_real_ns() / CLOCK_NS_PER_MS;
    j.not_after_unix_ms = 0;
    j.load = (struct wire_load *)l;
    fx->jobs = mem_reallocarray(fx->jobs, fx->n_jobs + 1, sizeof(*fx->jobs));
    lj = &fx->jobs[fx->n_jobs++];
    memset(lj, 0, sizeof(*lj));
    lj->id = mem_strdup(id);
    lj->subject = mem_strdup(subject);
    lj->created_ms = j.created_unix_ms;
    buf_init(&lj->payload, 0);
    wire_job_encode(&j, &lj->payload);
    hex = hex_of(lj->payload.data, lj->payload.len);
    fmt_i64(run, sizeof(run), run_id);
    fmt_i64(num, sizeof(num), shard);
    rc = db_exec(d,
                 "INSERT INTO jobs (id, run_id, shard, subject, payload) "
                 "VALUES ($1, $2::bigint, $3::int, $4, decode($5, 'hex')) "
                 "ON CONFLICT DO NOTHING",
                 5, (const char *[]){id, run, num, subject, hex}, NULL);
    free(hex);
    return rc;
}

/* The setup job's message and subject: the template of the others. */
static int load_template(struct db *d, int64_t run_id, struct wire_job *out,
                         char *subject, size_t subject_len)
{
    char run[24];
    struct db_res *res = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;
    int rc;

    fmt_i64(run, sizeof(run), run_id);
    rc = db_exec(d,
                 "SELECT subject, encode(payload, 'hex') FROM jobs WHERE "
                 "run_id = $1::bigint AND shard = 0",
                 1, (const char *[]){run}, &res);
    if (rc == ST_OK && db_res_rows(res) != 1) {
        rc = ST_NOT_FOUND;
    }
    if (rc == ST_OK) {
        snprintf(subject, subject_len, "%s", db_res_get(res, 0, 0));
        bytes = unhex(db_res_get(res, 0, 1), &len);
        if (bytes == NULL || wire_job_decode(bytes, len, out) != ST_OK ||
            out->load == NULL) {
            rc = ST_PROTOCOL;
        }
    }
    free(bytes);
    db_res_free(res);
    return rc;
}

static int end_run(struct db *d, int64_t run_id, const char *state,
                   const char *result, const char *reason,
                   struct loadstore_fx *fx)
{
    char run[24];
    struct db_res *res = NULL;
    int rc;

    fmt_i64(run, sizeof(run), run_id);
    rc = db_exec(d,
                 "UPDATE runs SET state = $2, result = $3, "
                 "reason = coalesce($4, reason), finished_at = now(), "
                 "started_at = coalesce(started_at, now()) "
                 "WHERE id = $1::bigint AND state IN ('queued', 'running') "
                 "RETURNING namespace, suite",
                 4, (const char *[]){run, state, result, reason}, &res);
    if (rc == ST_OK) {
        rc = db_exec(d,
                     "UPDATE load_runs SET phase = 'done' WHERE run_id = "
                     "$1::bigint",
                     1, (const char *[]){run}, NULL);
    }
    if (rc == ST_OK && db_res_rows(res) == 1) {
        struct loadstore_ended *e;

        fx->ended =
            mem_reallocarray(fx->ended, fx->n_ended + 1, sizeof(*fx->ended));
        e = &fx->ended[fx->n_ended++];
        memset(e, 0, sizeof(*e));
        e->run_id = run_id;
        snprintf(e->ns, sizeof(e->ns), "%s", db_res_get(res, 0, 0));
        snprintf(e->suite, sizeof(e->suite), "%s", db_res_get(res, 0, 1));
        snprintf(e->state, sizeof(e->state), "%s", state);
        snprintf(e->result, sizeof(e->result), "%s", result);
    }
    db_res_free(res);
    return rc;
}

static json_t *executor_json(const struct wire_load *l)
{
    json_t *o = json_object();
    json_t *stages = json_array();

    json_object_set_new(o, "type", json_string(l->executor));
    json_object_set_new(o, "vus", json_integer(l->vus));
    json_object_set_new(o, "max_vus", json_integer(l->max_vus));
    json_object_set_new(o, "pre_allocated_vus",
                        json_integer(l->pre_allocated_vus));
    json_object_set_new(o, "rate", json_real(l->rate));
    json_object_set_new(
        o, "time_unit_ms",
        json_real(l->time_unit_ms ? (double)l->time_unit_ms : 1000.0));
    json_object_set_new(o, "iterations",
                        json_integer((json_int_t)l->iterations));
    json_object_set_new(o, "duration_ms", json_real((double)l->duration_ms));
    json_object_set_new(o, "graceful_stop_ms",
                        json_real((double)l->graceful_stop_ms));
    if (strcmp(l->executor, "ramping-vus") == 0) {
        json_object_set_new(o, "graceful_ramp_down_ms",
                            json_real((double)(l->graceful_ramp_down_ms >= 0
                                                   ? l->graceful_ramp_down_ms
                                                   : 30000)));
    }
    for (size_t i = 0; i < l->n_stages; i++) {
        json_array_append_new(stages,
                              json_pack("{s:f, s:f}", "duration_ms",
                                        (double)l->stages[i].duration_ms,
                                        "target", l->stages[i].target));
    }
    json_object_set_new(o, "stages", stages);
    return o;
}

/* Setup has reported: the shard jobs, or the run's end. */
static int setup_done(struct db *d, int64_t run_id, struct db_res *row,
                      const struct result_suite *res,
                      const struct wire_result_meta *meta,
                      struct loadstore_fx *fx)
{
    struct wire_job tmpl;
    struct wire_load *spec = NULL;
    char subject[512];
    char run[24];
    char num[2][24];
    char *reason = NULL;
    char *ths = NULL;
    char *ex = NULL;
    char *setup_hex = NULL;
    json_t *arr = NULL;
    struct db_res *q = NULL;
    int64_t k = 0;
    int64_t start_at;
    bool cancelled = strcmp(db_res_get(row, 0, 9), "t") == 0;
    int rc;

    memset(&tmpl, 0, sizeof(tmpl));
    if (res->result != RESULT_PASSED || meta->load_spec == NULL) {
        reason = mem_printf("setup: %s",
                            res->reason ? res->reason : "did not succeed");
        rc = end_run(d, run_id, cancelled ? "cancelled" : "finished", "error",
                     reason, fx);
        free(reason);
        return rc;
    }
    rc = load_template(d, run_id, &tmpl, subject, sizeof(subject));
    if (rc == ST_NOT_FOUND || rc == ST_PROTOCOL) {
        wire_job_cleanup(&tmpl);
        return end_run(d, run_id, "finished", "error",
                       "the setup job's message cannot be read", fx);
    }
    if (rc != ST_OK) {
        wire_job_cleanup(&tmpl);
        return rc;
    }
    fmt_i64(run, sizeof(run), run_id);
    k = atoll(db_res_get(row, 0, 10));
    if (k <= 0) {
        rc = db_exec(d,
                     "SELECT count(*) FROM workers WHERE pool = $1 AND "
                     "NOT draining AND last_seen > now() - interval '10 "
                     "seconds' AND suites ? ($2 || '/' || $3)",
                     3,
                     (const char *[]){db_res_get(row, 0, 4),
                                      db_res_get(row, 0, 5),
                                      db_res_get(row, 0, 6)},
                     &q);
        if (rc == ST_OK && db_res_int64(q, 0, 0, &k) != ST_OK) {
            k = 0;
        }
        db_res_free(q);
        q = NULL;
        if (k < 1) {
            k = 1;
        }
        if (k > 1000) {
            k = 1000;
        }
    }
    spec = wire_load_dup(meta->load_spec);
    free(spec->setup_data);
    spec->setup_data = mem_alloc(meta->load_setup_len + 1);
    if (meta->load_setup_len > 0) {
        memcpy(spec->setup_data, meta->load_setup_data, meta->load_setup_len);
    }
    spec->setup_len = meta->load_setup_len;
    start_at = clock_real_ns() + LOADSTORE_START_DELAY_MS * CLOCK_NS_PER_MS;
    spec->start_at_unix_ns = start_at;
    spec->shards = (int32_t)k;
    spec->phase = cancelled ? WIRE_LOAD_TEARDOWN : WIRE_LOAD_SHARD;
    arr = json_array();
    for (size_t i = 0; i < meta->load_spec->n_thresholds; i++) {
        json_array_append_new(arr, json_string(meta->load_spec->thresholds[i]));
    }
    ths = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    arr = executor_json(spec);
    ex = json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(17));
    setup_hex = hex_of(spec->setup_data, spec->setup_len);
    fmt_i64(num[0], sizeof(num[0]), start_at);
    fmt_i64(num[1], sizeof(num[1]), k);
    rc = db_exec(d,
                 "UPDATE load_runs SET thresholds = thresholds || $2::jsonb, "
                 "executor = $3::jsonb, setup_data = decode($4, 'hex'), "
                 "start_at_ns = $5::bigint, shards = $6::int, "
                 "phase = CASE WHEN $7 THEN 'teardown' ELSE 'shards' END "
                 "WHERE run_id = $1::bigint",
                 7,
                 (const char *[]){run, ths, ex, setup_hex, num[0], num[1],
                                  cancelled ? "true" : "false"},
                 NULL);
    if (cancelled) {
        /* Cancelled during setup: no load, but teardown still runs. */
        if (rc == ST_OK) {
            rc = add_job(d, run_id, subject, &tmpl, spec, (int)k + 1, fx);
        }
    } else {
        for (int64_t i = 0; i < k && rc == ST_OK; i++) {
            spec->shard = (int32_t)i;
            rc = add_job(d, run_id, subject, &tmpl, spec, (int)i + 1, fx);
        }
    }
    json_decref(arr);
    free(ths);
    free(ex);
    free(setup_hex);
    wire_load_free(spec);
    wire_job_cleanup(&tmpl);
    return rc;
}

static int shard_done(struct db *d, int64_t run_id, int shard,
                      const struct result_suite *res,
                      const struct wire_result_meta *meta,
                      struct loadstore_fx *fx)
{
    char run[24];
    char num[24];
    char seconds[24];
    char *hex = meta->load_total
                    ? hex_of(meta->load_total, meta->load_total_len)
                    : NULL;
    const char *state = meta->cancelled                ? "aborted"
                        : res->result == RESULT_PASSED ? "done"
                                                       : "lost";
    int rc;

    fmt_i64(run, sizeof(run), run_id);
    fmt_i64(num, sizeof(num), shard);
    fmt_i64(seconds, sizeof(seconds), meta->load_seconds);
    rc = db_exec(d,
                 "INSERT INTO load_shards (run_id, shard, job_id, state, "
                 "reason, seconds, total, worker_id) VALUES ($1::bigint, "
                 "$2::int, $3, $4, $5, $6::bigint, decode($7, 'hex'), $8) "
                 "ON CONFLICT (run_id, shard) DO NOTHING",
                 8,
                 (const char *[]){run, num, meta->job_id, state, res->reason,
                                  seconds, hex, meta->worker_id},
                 NULL);
    free(hex);
    touch(fx, run_id);
    return rc;
}

/* The teardown job has reported: the run ends as its report says. */
static int teardown_done(struct db *d, int64_t run_id,
                         const struct result_suite *res,
                         struct loadstore_fx *fx)
{
    char run[24];
    struct db_res *q = NULL;
    int rc;

    fmt_i64(run, sizeof(run), run_id);
    rc = db_exec(d,
                 "SELECT coalesce(l.report->>'result', 'error'), "
                 "coalesce(l.report->>'abort_reason', ''), "
                 "r.cancel_requested_at IS NOT NULL AND l.abort_reason IS "
                 "NULL, coalesce(r.cancel_reason, '') FROM load_runs l "
                 "JOIN runs r ON r.id = l.run_id WHERE l.run_id = $1::bigint",
                 1, (const char *[]){run}, &q);
    if (rc == ST_OK && db_res_rows(q) == 1) {
        const char *result = db_res_get(q, 0, 0);
        const char *why = db_res_get(q, 0, 1);
        bool user_cancel = strcmp(db_res_get(q, 0, 2), "t") == 0;
        char *reason = NULL;

        if (res->result != RESULT_PASSED) {
            reason = mem_printf("%s%steardown: %s", why, *why ? "; " : "",
                                res->reason ? res->reason : "failed");
        } else if (*why) {
            reason = mem_strdup(why);
        }
        if (user_cancel) {
            rc = end_run(d, run_id, "cancelled", "error",
                         reason ? reason : db_res_get(q, 0, 3), fx);
        } else {
            rc = end_run(d, run_id, "finished",
                         strcmp(result, "passed") == 0  ? "passed"
                         : strcmp(result, "error") == 0 ? "error"
                                                        : "failed",
                         reason, fx);
        }
        free(reason);
    }
    db_res_free(q);
    return rc;
}

int loadstore_result(struct db *d, const struct result_suite *res,
                     const struct wire_result_meta *meta,
                     struct loadstore_fx *fx)
{
    struct db_res *row = NULL;
    int rc;
    int shard;
    int k;
    const char *phase;

    rc = db_exec(d,
                 "SELECT j.shard, l.phase, coalesce(l.shards, 0), r.state, "
                 "r.pool, r.namespace, r.suite, j.subject, l.workflow, "
                 "r.cancel_requested_at IS NOT NULL, l.shards_requested "
                 "FROM jobs j JOIN load_runs l ON l.run_id = j.run_id "
                 "JOIN runs r ON r.id = j.run_id WHERE j.id = $1 "
                 "FOR UPDATE OF l",
                 1, (const char *[]){meta->job_id}, &row);
    if (rc != ST_OK || db_res_rows(row) != 1) {
        db_res_free(row);
        return rc; /* not a load run's job */
    }
    shard = atoi(db_res_get(row, 0, 0));
    phase = db_res_get(row, 0, 1);
    k = atoi(db_res_get(row, 0, 2));
    if (strcmp(db_res_get(row, 0, 3), "queued") != 0 &&
        strcmp(db_res_get(row, 0, 3), "running") != 0) {
        rc = ST_OK; /* ended already (cancelled while queued) */
    } else if (shard == 0 && strcmp(phase, "setup") == 0) {
        rc = setup_done(d, meta->run_id, row, res, meta, fx);
    } else if (strcmp(phase, "shards") == 0 && shard >= 1 && shard <= k) {
        rc = shard_done(d, meta->run_id, shard, res, meta, fx);
    } else if (strcmp(phase, "teardown") == 0 && shard == k + 1) {
        rc = teardown_done(d, meta->run_id, res, fx);
    }
    db_res_free(row);
    return rc;
}

/* ---- Merging ----------------------------------------------------------- */

/* The thresholds of a run (JSON array text), parsed; bad ones skipped. */
static size_t parse_thresholds(int64_t run_id, const char *text,
                               struct threshold **out, size_t max)
{
    json_t *arr = json_loads(text, 0, NULL);
    size_t n = 0;
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        char err[THRESHOLD_ERR_SIZE];

        if (n >= max || !json_is_string(v)) {
            continue;
        }
        if (threshold_parse(json_string_value(v), &out[n], err, sizeof(err)) ==
            ST_OK) {
            n++;
        } else {
            log_warn("load: run %" PRId64 ": ignoring threshold: %s", run_id,
                     err);
        }
    }
    json_decref(arr);
    return n;
}

/* Shard summaries and lost shards from load_shards, for the report. */
static int shards_json(struct db *d, const char *run, json_t *report,
                       bool *any_lost, char *lost_reason, size_t lost_len)
{
    struct db_res *q = NULL;
    json_t *sums = json_array();
    json_t *lost = json_array();
    int rc = db_exec(d,
                     "SELECT shard, state, coalesce(reason, ''), seconds, "
                     "encode(total, 'hex'), coalesce(worker_id, ''), job_id "
                     "FROM load_shards WHERE run_id = $1::bigint ORDER BY "
                     "shard",
                     1, (const char *[]){run}, &q);

    *any_lost = false;
    for (size_t i = 0; rc == ST_OK && i < db_res_rows(q); i++) {
        json_t *o = json_object();
        int shard = atoi(db_res_get(q, i, 0)) - 1;
        const char *state = db_res_get(q, i, 1);
        size_t len = 0;
        unsigned char *bytes =
            db_res_is_null(q, i, 4) ? NULL : unhex(db_res_get(q, i, 4), &len);
        struct snap *tot = NULL;

        json_object_set_new(o, "shard", json_integer(shard));
        json_object_set_new(o, "job_id", json_string(db_res_get(q, i, 6)));
        json_object_set_new(o, "worker", json_string(db_res_get(q, i, 5)));
        json_object_set_new(o, "state", json_string(state));
        json_object_set_new(o, "reason", json_string(db_res_get(q, i, 2)));
        json_object_set_new(o, "seconds",
                            json_integer(atoll(db_res_get(q, i, 3))));
        if (bytes != NULL && len > 0 && snap_decode(bytes, len, &tot) == 0) {
            struct httpc_metrics *sum = httpc_metrics_sum(tot->http);
            const struct httpc_stats *all = httpc_metrics_at(sum, 0);

            json_object_set_new(o, "iterations",
                                json_integer((json_int_t)tot->iterations));
            json_object_set_new(o, "requests",
                                json_integer((json_int_t)all->requests));
            json_object_set_new(o, "failed",
                                json_integer((json_int_t)all->failed));
            httpc_metrics_free(sum);
            snap_free(tot);
        }
        free(bytes);
        json_array_append_new(sums, o);
        if (strcmp(state, "lost") == 0) {
            json_array_append_new(lost,
                                  json_pack("{s:i, s:s}", "shard", shard,
                                            "reason", db_res_get(q, i, 2)));
            if (!*any_lost) {
                snprintf(lost_reason, lost_len, "shard %d lost: %s", shard,
                         db_res_get(q, i, 2));
            }
            *any_lost = true;
        }
    }
    db_res_free(q);
    json_object_set_new(report, "shard_results", sums);
    json_object_set_new(report, "shards_lost", lost);
    return rc;
}

struct run_state {
    int64_t run_id;
    char run[24];
    int k;
    int64_t merged;
    int64_t start_at_ns;
    int vus_max;
    char *abort_reason;
    bool user_cancel;
    char cancel_reason[512];
    char workflow[160];
    char suite[160];
    char *executor;
    struct threshold *th[WIRE_LOAD_THRESHOLDS_MAX * 2];
    size_t n_th;
    struct snap *total;
    int64_t elapsed_ns; /* the last merged second's end */
};

static void run_state_cleanup(struct run_state *st)
{
    free(st->abort_reason);
    free(st->executor);
    for (size_t i = 0; i < st->n_th; i++) {
        threshold_free(st->th[i]);
    }
    snap_free(st->total);
}

/* Merges one complete second (rows [from, to) of q) into total. */
static int merge_second(struct db *d, struct run_state *st, struct db_res *q,
                        size_t from, size_t to, int64_t second,
                        struct loadstore_fx *fx)
{
    struct snap *sec = NULL;
    int vus = 0;
    int vus_max = 0;
    int64_t t_ns = 0;
    json_t *pt;
    char *text;
    char num[24];
    int rc;

    for (size_t i = from; i < to; i++) {
        size_t len = 0;
        unsigned char *bytes = unhex(db_res_get(q, i, 3), &len);
        struct snap *s = NULL;
        int64_t t = atoll(db_res_get(q, i, 2));

        if (bytes == NULL || snap_decode(bytes, len, &s) != ST_OK) {
            log_warn("load: run %" PRId64 ": an unreadable snapshot of "
                     "shard %s, second %" PRId64 " is left out",
                     st->run_id, db_res_get(q, i, 0), second);
            free(bytes);
            continue;
        }
        free(bytes);
        if (sec == NULL) {
            sec = snap_new_like(st->total ? st->total : s);
        }
        vus += s->vus;
        vus_max += s->vus_max;
        if (snap_merge(sec, s) != ST_OK) {
            log_warn("load: run %" PRId64 ": shard %s sent histograms of "
                     "another precision; left out",
                     st->run_id, db_res_get(q, i, 0));
        }
        t_ns = t > t_ns ? t : t_ns;
        snap_free(s);
    }
    if (sec == NULL) {
        return ST_OK;
    }
    sec->vus = vus;
    sec->vus_max = vus_max;
    if (st->total == NULL) {
        st->total = snap_new_like(sec);
    }
    if (snap_merge(st->total, sec) != ST_OK) {
        snap_free(sec);
        return ST_OK;
    }
    st->vus_max = vus_max > st->vus_max ? vus_max : st->vus_max;
    if (t_ns < st->elapsed_ns) {
        t_ns = st->elapsed_ns;
    }
    pt = loadjson_point(sec, t_ns, t_ns - st->elapsed_ns);
    st->elapsed_ns = t_ns;
    json_object_set_new(pt, "second", json_integer(second));
    text = json_dumps(pt, JSON_COMPACT | JSON_REAL_PRECISION(10));
    fmt_i64(num, sizeof(num), second);
    rc = db_exec(d,
                 "INSERT INTO load_points (run_id, second, point) VALUES "
                 "($1::bigint, $2::int, $3::jsonb) ON CONFLICT DO NOTHING",
                 3, (const char *[]){st->run, num, text}, NULL);
    json_object_set_new(pt, "run_id", json_integer(st->run_id));
    free(text);
    fx->points =
        mem_reallocarray(fx->points, fx->n_points + 1, sizeof(*fx->points));
    fx->points[fx->n_points].run_id = st->run_id;
    fx->points[fx->n_points].json = json_dumps(pt, JSON_COMPACT);
    fx->n_points++;
    json_decref(pt);
    snap_free(sec);
    /* abort_on_fail, on the merged data so far. */
    for (size_t i = 0; rc == ST_OK && st->abort_reason == NULL && i < st->n_th;
         i++) {
        struct threshold_eval e;

        if (!threshold_abort_on_fail(st->th[i]) ||
            st->elapsed_ns < threshold_abort_delay_ns(st->th[i])) {
            continue;
        }
        e = threshold_evaluate(st->th[i], st->total, st->elapsed_ns);
        if (!e.passed) {
            struct loadstore_cancel *c;

            st->abort_reason =
                mem_printf("threshold \"%s\" failed (observed "
                           "%g) with abort_on_fail",
                           threshold_source(st->th[i]), e.observed);
            fx->cancels = mem_reallocarray(fx->cancels, fx->n_cancels + 1,
                                           sizeof(*fx->cancels));
            c = &fx->cancels[fx->n_cancels++];
            c->run_id = st->run_id;
            c->reason = mem_strdup(st->abort_reason);
        }
    }
    return rc;
}

/* The report, once every shard has ended. */
static int finish_shards(struct db *d, struct run_state *st,
                         struct loadstore_fx *fx)
{
    json_t *r = json_object();
    json_t *ths = json_array();
    json_t *series = json_array();
    struct db_res *q = NULL;
    bool any_lost = false;
    bool th_failed = false;
    char lost_reason[512] = "";
    const char *result;
    const char *reason = "";
    char *text = NULL;
    struct wire_job tmpl;
    char subject[512];
    int rc;

    memset(&tmpl, 0, sizeof(tmpl));
    if (st->total == NULL) {
        struct httpc_config hc;

        memset(&hc, 0, sizeof(hc));
        if (snap_new(&hc, &st->total) != ST_OK) {
            abort(); /* the defaults are valid */
        }
    }
    rc =
        shards_json(d, st->run, r, &any_lost, lost_reason, sizeof(lost_reason));
    if (rc == ST_OK) {
        rc = db_exec(d,
                     "SELECT point::text FROM load_points WHERE run_id = "
                     "$1::bigint ORDER BY second",
                     1, (const char *[]){st->run}, &q);
    }
    for (size_t i = 0; rc == ST_OK && i < db_res_rows(q); i++) {
        json_t *p = json_loads(db_res_get(q, i, 0), 0, NULL);

        if (p != NULL) {
            json_object_del(p, "second");
            json_array_append_new(series, p);
        }
    }
    db_res_free(q);
    for (size_t i = 0; i < st->n_th; i++) {
        bool passed;

        json_array_append_new(ths, loadjson_threshold(st->th[i], st->total,
                                                      st->elapsed_ns, &passed));
        th_failed = th_failed || !passed;
    }
    if (any_lost) {
        result = "error";
        reason = lost_reason;
    } else if (st->abort_reason != NULL) {
        result = "aborted";
        reason = st->abort_reason;
    } else if (st->user_cancel) {
        result = "aborted";
        reason = *st->cancel_reason ? st->cancel_reason : "cancelled";
    } else {
        result = th_failed ? "failed" : "passed";
    }
    json_object_set_new(r, "schema", json_string("handoff.load.report/1"));
    json_object_set_new(r, "id", json_string(st->run));
    json_object_set_new(r, "suite", json_string(st->suite));
    json_object_set_new(r, "workflow", json_string(st->workflow));
    json_object_set_new(r, "started_at", loadjson_time(st->start_at_ns));
    json_object_set_new(r, "ended_at",
                        loadjson_time(st->start_at_ns + st->elapsed_ns));
    json_object_set_new(r, "duration_ms",
                        json_real((double)st->elapsed_ns / 1e6));
    json_object_set_new(r, "result", json_string(result));
    json_object_set_new(r, "abort_reason", json_string(reason));
    json_object_set_new(r, "executor",
                        st->executor ? json_loads(st->executor, 0, NULL)
                                     : json_object());
    json_object_set_new(r, "shards", json_integer(st->k));
    loadjson_body(r, st->total, st->elapsed_ns, st->vus_max);
    json_object_set_new(r, "thresholds", ths);
    json_object_set_new(r, "series", series);
    text = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (rc == ST_OK) {
        rc = db_exec(d,
                     "UPDATE load_runs SET report = $2::jsonb, phase = "
                     "'teardown' WHERE run_id = $1::bigint",
                     2, (const char *[]){st->run, text}, NULL);
    }
    if (rc == ST_OK) {
        rc = load_template(d, st->run_id, &tmpl, subject, sizeof(subject));
        if (rc == ST_OK) {
            struct db_res *sd = NULL;

            rc = db_exec(d,
                         "SELECT encode(setup_data, 'hex') FROM load_runs "
                         "WHERE run_id = $1::bigint",
                         1, (const char *[]){st->run}, &sd);
            if (rc == ST_OK && db_res_rows(sd) == 1 &&
                !db_res_is_null(sd, 0, 0)) {
                size_t len = 0;
                unsigned char *bytes = unhex(db_res_get(sd, 0, 0), &len);

                if (bytes != NULL) {
                    free(tmpl.load->setup_data);
                    tmpl.load->setup_data = bytes;
                    tmpl.load->setup_len = len;
                }
            }
            db_res_free(sd);
            tmpl.load->phase = WIRE_LOAD_TEARDOWN;
            tmpl.load->shards = st->k;
            if (rc == ST_OK) {
                rc = add_job(d, st->run_id, subject, &tmpl, tmpl.load,
                             st->k + 1, fx);
            }
        } else if (rc == ST_NOT_FOUND || rc == ST_PROTOCOL) {
            rc = end_run(d, st->run_id, "finished", "error",
                         "the setup job's message cannot be read", fx);
        }
    }
    wire_job_cleanup(&tmpl);
    free(text);
    json_decref(r);
    return rc;
}

static int advance_run(struct db *d, int64_t run_id, struct loadstore_fx *fx)
{
    struct run_state st;
    struct db_res *row = NULL;
    struct db_res *q = NULL;
    bool *ended = NULL;
    bool all_ended = true;
    char *total_hex = NULL;
    char num[3][24];
    size_t i = 0;
    int rc;

    memset(&st, 0, sizeof(st));
    st.run_id = run_id;
    fmt_i64(st.run, sizeof(st.run), run_id);
    rc = db_exec(d,
                 "SELECT l.phase, coalesce(l.shards, 0), l.merged_through, "
                 "encode(l.total, 'hex'), coalesce(l.start_at_ns, 0), "
                 "l.thresholds::text, l.vus_max, l.abort_reason, "
                 "r.cancel_requested_at IS NOT NULL, "
                 "coalesce(r.cancel_reason, ''), l.workflow, r.suite, "
                 "coalesce(l.executor::text, '{}') "
                 "FROM load_runs l JOIN runs r ON r.id = l.run_id "
                 "WHERE l.run_id = $1::bigint FOR UPDATE OF l",
                 1, (const char *[]){st.run}, &row);
    if (rc != ST_OK || db_res_rows(row) != 1 ||
        strcmp(db_res_get(row, 0, 0), "shards") != 0) {
        db_res_free(row);
        return rc;
    }
    st.k = atoi(db_res_get(row, 0, 1));
    st.merged = atoll(db_res_get(row, 0, 2));
    st.start_at_ns = atoll(db_res_get(row, 0, 4));
    st.n_th = parse_thresholds(run_id, db_res_get(row, 0, 5), st.th,
                               sizeof(st.th) / sizeof(st.th[0]));
    st.vus_max = atoi(db_res_get(row, 0, 6));
    st.abort_reason =
        db_res_is_null(row, 0, 7) ? NULL : mem_strdup(db_res_get(row, 0, 7));
    st.user_cancel = strcmp(db_res_get(row, 0, 8), "t") == 0;
    snprintf(st.cancel_reason, sizeof(st.cancel_reason), "%s",
             db_res_get(row, 0, 9));
    snprintf(st.workflow, sizeof(st.workflow), "%s", db_res_get(row, 0, 10));
    snprintf(st.suite, sizeof(st.suite), "%s", db_res_get(row, 0, 11));
    st.executor = mem_strdup(db_res_get(row, 0, 12));
    if (!db_res_is_null(row, 0, 3)) {
        size_t len = 0;
        unsigned char *bytes = unhex(db_res_get(row, 0, 3), &len);

        if (bytes == NULL || snap_decode(bytes, len, &st.total) != ST_OK) {
            log_error("load: run %" PRId64 ": the merged total cannot be "
                      "read; starting it again",
                      run_id);
            st.total = NULL;
        }
        free(bytes);
    }
    db_res_free(row);
    row = NULL;
    rc = db_exec(d,
                 "SELECT coalesce(max((point->>'t')::float8), 0) FROM "
                 "load_points WHERE run_id = $1::bigint",
                 1, (const char *[]){st.run}, &q);
    if (rc == ST_OK && db_res_rows(q) == 1) {
        st.elapsed_ns = (int64_t)llround(atof(db_res_get(q, 0, 0)) * 1e9);
    }
    db_res_free(q);
    q = NULL;
    ended = mem_calloc((size_t)st.k + 2, sizeof(*ended));
    if (rc == ST_OK) {
        rc = db_exec(d,
                     "SELECT shard FROM load_shards WHERE run_id = $1::bigint",
                     1, (const char *[]){st.run}, &q);
    }
    for (size_t r = 0; rc == ST_OK && r < db_res_rows(q); r++) {
        int s = atoi(db_res_get(q, r, 0));

        if (s >= 1 && s <= st.k) {
            ended[s] = true;
        }
    }
    db_res_free(q);
    q = NULL;
    for (int s = 1; s <= st.k; s++) {
        all_ended = all_ended && ended[s];
    }
    fmt_i64(num[0], sizeof(num[0]), st.merged);
    if (rc == ST_OK) {
        rc = db_exec(d,
                     "SELECT shard, second, t_ns, encode(data, 'hex') FROM "
                     "load_snapshots WHERE run_id = $1::bigint AND second > "
                     "$2::int ORDER BY second, shard",
                     2, (const char *[]){st.run, num[0]}, &q);
    }
    while (rc == ST_OK && i < db_res_rows(q)) {
        int64_t second = atoll(db_res_get(q, i, 1));
        size_t j = i;
        bool complete = true;
        bool *has = mem_calloc((size_t)st.k + 2, sizeof(*has));

        while (j < db_res_rows(q) && atoll(db_res_get(q, j, 1)) == second) {
            int s = atoi(db_res_get(q, j, 0));

            if (s >= 1 && s <= st.k) {
                has[s] = true;
            }
            j++;
        }
        for (int s = 1; s <= st.k; s++) {
            complete = complete && (has[s] || ended[s]);
        }
        free(has);
        /* Seconds go in order: a gap waits, unless no shard can fill it. */
        if (!complete || (second != st.merged + 1 && !all_ended)) {
            break;
        }
        rc = merge_second(d, &st, q, i, j, second, fx);
        st.merged = second;
        i = j;
    }
    db_res_free(q);
    if (rc == ST_OK && st.total != NULL) {
        struct buf b;

        buf_init(&b, 0);
        if (snap_encode(st.total, &b) == ST_OK) {
            total_hex = hex_of(b.data, b.len);
        }
        buf_cleanup(&b);
    }
    fmt_i64(num[0], sizeof(num[0]), st.merged);
    fmt_i64(num[1], sizeof(num[1]), st.vus_max);
    if (rc == ST_OK) {
        rc = db_exec(d,
                     "UPDATE load_runs SET merged_through = $2::int, "
                     "total = decode($3, 'hex'), vus_max = $4::int, "
                     "abort_reason = $5 WHERE run_id = $1::bigint",
                     5,
                     (const char *[]){st.run, num[0], total_hex, num[1],
                                      st.abort_reason},
                     NULL);
    }
    if (rc == ST_OK && all_ended) {
        rc = finish_shards(d, &st, fx);
    }
    free(total_hex);
    free(ended);
    run_state_cleanup(&st);
    return rc;
}

int loadstore_advance(struct db *d, struct loadstore_fx *fx)
{
    int rc = ST_OK;

    for (size_t i = 0; rc == ST_OK && i < fx->n_runs; i++) {
        rc = advance_run(d, fx->runs[i], fx);
    }
    return rc;
}

/* ---- After the commit -------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void loadstore_after_commit(struct db *d, struct bus *bus,
                            struct loadstore_fx *fx)
{
    for (size_t i = 0; i < fx->n_cancels; i++) {
        struct wire_cancel c = {.run_id = fx->cancels[i].run_id,
                                .reason = fx->cancels[i].reason};
        struct buf b;

        log_info("load: run %" PRId64 ": aborting every shard: %s", c.run_id,
                 c.reason);
        buf_init(&b, 0);
        wire_cancel_encode(&c, &b);
        (void)bus_publish(bus, SUBJECTS_CANCEL, b.data, b.len);
        buf_cleanup(&b);
    }
    for (size_t i = 0; i < fx->n_jobs; i++) {
        const struct loadstore_job *j = &fx->jobs[i];
        char msg_id[96];
        int rc = ST_UPSTREAM;

        subjects_msg_id(j->id, j->created_ms, 0, NULL, msg_id, sizeof(msg_id));
        /* The outbox publishes queued runs only; a load run's later jobs
         * are published here, retried while NATS is briefly away. */
        for (int attempt = 0; attempt < 25 && rc != ST_OK; attempt++) {
            if (attempt > 0) {
                sleep_ms(200);
            }
            rc = bus_js_publish(bus, j->subject, j->payload.data,
                                j->payload.len, msg_id, 2000);
        }
        if (rc != ST_OK) {
            log_error("load: job %s could not be published (%s); its run "
                      "will time out",
                      j->id, status_str(rc));
            continue;
        }
        (void)db_exec(d, "UPDATE jobs SET published_at = now() WHERE id = $1",
                      1, (const char *[]){j->id}, NULL);
    }
    for (size_t i = 0; i < fx->n_points; i++) {
        char subject[96];

        subjects_load_points(fx->points[i].run_id, subject, sizeof(subject));
        (void)bus_publish(bus, subject, fx->points[i].json,
                          strlen(fx->points[i].json));
    }
}

/* ---- API ------------------------------------------------------------------ */

static bool parse_run_id(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0) {
        return false;
    }
    *out = v;
    return true;
}

void loadstore_get_report(struct db *d, const char *id, struct store_reply *out)
{
    int64_t run_id;
    char run[24];
    char msg[96];

    memset(out, 0, sizeof(*out));
    if (!parse_run_id(id, &run_id)) {
        store_reply_error(out, 404, "not_found", "no run %s", id ? id : "");
        return;
    }
    fmt_i64(run, sizeof(run), run_id);
    snprintf(msg, sizeof(msg),
             "no load report for run %" PRId64 " (not a load run, or still "
             "running)",
             run_id);
    (void)store_reply_json(d, "load report",
                           "SELECT report::text FROM load_runs WHERE run_id = "
                           "$1::bigint AND report IS NOT NULL",
                           1, (const char *[]){run}, 200, msg, out);
}

/* The report of run id, or NULL with out filled as the error. */
static json_t *report_of(struct db *d, const char *which, const char *id,
                         struct store_reply *out)
{
    int64_t run_id;
    char run[24];
    struct db_res *res = NULL;
    json_t *r = NULL;
    int rc;

    if (!parse_run_id(id, &run_id)) {
        store_reply_error(out, 400, "invalid_argument",
                          "query \"%s\": want a run id", which);
        return NULL;
    }
    fmt_i64(run, sizeof(run), run_id);
    rc = db_exec(d,
                 "SELECT report::text FROM load_runs WHERE run_id = "
                 "$1::bigint AND report IS NOT NULL",
                 1, (const char *[]){run}, &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else if (db_res_rows(res) != 1) {
        store_reply_error(out, 404, "not_found",
                          "no load report for run %" PRId64, run_id);
    } else {
        r = json_loads(db_res_get(res, 0, 0), 0, NULL);
        if (r == NULL) {
            store_reply_error(out, 500, "internal",
                              "the report of run %" PRId64 " is unreadable",
                              run_id);
        }
    }
    db_res_free(res);
    return r;
}

void loadstore_diff(struct db *d, const char *a, const char *b,
                    const char *tolerance, struct store_reply *out)
{
    json_t *ra = NULL;
    json_t *rb = NULL;
    json_t *diff = NULL;
    double tol = -1;
    char err[512];

    memset(out, 0, sizeof(*out));
    if (tolerance != NULL) {
        char *end;

        errno = 0;
        tol = strtod(tolerance, &end);
        if (errno != 0 || *end != '\0' || !isfinite(tol) || tol < 0 ||
            tol >= 1000) {
            store_reply_error(out, 400, "invalid_argument",
                              "query \"tolerance\": want a number from 0 to "
                              "1000 (0.1: 10 %%)");
            return;
        }
    }
    if (a == NULL || b == NULL) {
        store_reply_error(out, 400, "invalid_argument",
                          "queries \"a\" and \"b\" (run ids) are required");
        return;
    }
    ra = report_of(d, "a", a, out);
    if (ra != NULL) {
        rb = report_of(d, "b", b, out);
    }
    if (ra != NULL && rb != NULL) {
        if (loaddiff(ra, rb, tol, &diff, err, sizeof(err)) != ST_OK) {
            store_reply_error(out, 500, "internal", "%s", err);
        } else {
            out->status = 200;
            out->body = json_dumps(diff, JSON_COMPACT);
        }
    }
    json_decref(diff);
    json_decref(ra);
    json_decref(rb);
}
