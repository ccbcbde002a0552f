/* Schedule bodies and rows (see schedules.h). */
#include "schedules.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cron.h"
#include "db.h"
#include "mem.h"
#include "tz.h"

/* The fields of a body that are the schedule's own; every other field is a
 * run field and goes to runreq_parse. */
static const char *const own_fields[] = {
    "name",           "expression", "time_zone", "enabled",
    "overlap_policy", "catch_up",   "max_runs",  "end_at",
};

static bool is_own(const char *key)
{
    for (size_t i = 0; i < sizeof(own_fields) / sizeof(own_fields[0]); i++) {
        if (strcmp(key, own_fields[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool is_name(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= SCHEDULES_MAX_NAME;
}

/* A string field: absent or null gives NULL. */
static int get_string(json_t *obj, const char *key, size_t max,
                      const char **out, struct runreq_error *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"%s\": want a string of at most %zu bytes",
                           key, max);
    }
    *out = json_string_value(v);
    return ST_OK;
}

/* A string field that must be one of two words; absent gives false. */
static int get_choice(json_t *obj, const char *key, const char *no,
                      const char *yes, bool *out, struct runreq_error *err)
{
    const char *v;
    int rc = get_string(obj, key, 16, &v, err);

    if (rc != ST_OK || !v) {
        return rc;
    }
    if (strcmp(v, yes) != 0 && strcmp(v, no) != 0) {
        return runreq_fail(err, "invalid_argument",
                           "field \"%s\": want \"%s\" or \"%s\"", key, no, yes);
    }
    *out = strcmp(v, yes) == 0;
    return ST_OK;
}

static int get_own_fields(json_t *obj, struct schedule_def *s,
                          const char **name, const char **expr,
                          const char **zone, struct runreq_error *err)
{
    json_t *enabled = json_object_get(obj, "enabled");
    json_t *max_runs = json_object_get(obj, "max_runs");
    const char *end_at;
    int rc;

    rc = get_string(obj, "name", SCHEDULES_MAX_NAME, name, err);
    rc = rc ? rc : get_string(obj, "expression", CRON_EXPR_MAX, expr, err);
    rc = rc ? rc : get_string(obj, "time_zone", TZ_NAME_MAX, zone, err);
    rc = rc ? rc : get_string(obj, "end_at", 64, &end_at, err);
    rc = rc ? rc
            : get_choice(obj, "overlap_policy", "forbid", "allow",
                         &s->overlap_allow, err);
    rc = rc ? rc
            : get_choice(obj, "catch_up", "skip", "one", &s->catch_up_one, err);
    if (rc != ST_OK) {
        return rc;
    }
    if (enabled && !json_is_null(enabled) && !json_is_boolean(enabled)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"enabled\": want true or false");
    }
    s->enabled = !enabled || json_is_null(enabled) || json_is_true(enabled);
    if (max_runs && !json_is_null(max_runs)) {
        if (!json_is_integer(max_runs) || json_integer_value(max_runs) < 1 ||
            json_integer_value(max_runs) > INT_MAX) {
            return runreq_fail(
                err, "invalid_argument",
                "field \"max_runs\": want an integer from 1 to %d", INT_MAX);
        }
        s->max_runs = (int)json_integer_value(max_runs);
    }
    if (end_at && (clock_parse_rfc3339(end_at, &s->end_at_ns) != ST_OK ||
                   s->end_at_ns <= 0)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"end_at\": want an RFC 3339 time, e.g. "
                           "2026-12-31T23:00:00Z");
    }
    return ST_OK;
}

/* The run fields, as a body of their own for runreq_parse. */
static int parse_run_fields(json_t *obj, struct run_request *run,
                            struct runreq_error *err)
{
    json_t *rest = json_object();
    const char *key;
    json_t *val;
    char *text;
    int rc;

    json_object_foreach(obj, key, val)
    {
        if (!is_own(key)) {
            json_object_set(rest, key, val);
        }
    }
    text = json_dumps(rest, JSON_COMPACT);
    json_decref(rest);
    rc = runreq_parse(text, strlen(text), false, run, err);
    free(text);
    return rc;
}

static int check_timing(const char *expr, const char *zone, struct cron **out,
                        struct runreq_error *err)
{
    char msg[CRON_ERR_SIZE];
    struct tz *z = NULL;
    int rc;

    if (!tz_is_valid_name(zone)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"time_zone\": \"%.64s\" is not a zone name "
                           "(want an IANA name such as Europe/Berlin)",
                           zone);
    }
    rc = tz_new(zone, &z, msg, sizeof(msg));
    tz_free(z);
    if (rc != ST_OK) {
        return runreq_fail(err, "invalid_argument", "field \"time_zone\": %s",
                           msg);
    }
    if (cron_parse(expr, zone, out, msg, sizeof(msg)) != ST_OK) {
        return runreq_fail(err, "invalid_argument", "field \"expression\": %s",
                           msg);
    }
    return ST_OK;
}

int schedules_parse(const char *body, size_t len, struct schedule_def *out,
                    struct cron **cron_out, struct runreq_error *err)
{
    json_error_t jerr;
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    struct schedule_def s;
    struct cron *c = NULL;
    const char *name = NULL;
    const char *expr = NULL;
    const char *zone = NULL;
    int rc = ST_INVALID;

    memset(&s, 0, sizeof(s));
    if (!obj) {
        runreq_fail(err, "malformed_json",
                    "the body is not valid JSON: %s (line %d)", jerr.text,
                    jerr.line);
        goto out;
    }
    if (!json_is_object(obj)) {
        runreq_fail(err, "malformed_json", "the body must be a JSON object");
        goto out;
    }
    if (json_object_get(obj, "trigger")) {
        runreq_fail(err, "unknown_field",
                    "unknown field \"trigger\" (a schedule's runs have trigger "
                    "\"schedule\")");
        goto out;
    }
    if (parse_run_fields(obj, &s.run, err) != ST_OK ||
        get_own_fields(obj, &s, &name, &expr, &zone, err) != ST_OK) {
        goto out;
    }
    if (!name || !is_name(name)) {
        runreq_fail(err, "invalid_argument",
                    "field \"name\" is required: 1-%d characters of "
                    "[A-Za-z0-9_.-]",
                    SCHEDULES_MAX_NAME);
        goto out;
    }
    if (!expr) {
        runreq_fail(err, "invalid_argument",
                    "field \"expression\" is required (e.g. \"*/5 * * * *\", "
                    "\"@hourly\", \"@every 30s\")");
        goto out;
    }
    if (check_timing(expr, zone ? zone : "UTC", &c, err) != ST_OK) {
        goto out;
    }
    s.name = mem_strdup(name);
    s.expression = mem_strdup(expr);
    s.time_zone = mem_strdup(zone ? zone : "UTC");
    *out = s;
    memset(&s, 0, sizeof(s));
    if (cron_out) {
        *cron_out = c;
        c = NULL;
    }
    rc = ST_OK;
out:
    cron_free(c);
    schedules_def_cleanup(&s);
    json_decref(obj);
    return rc;
}

void schedules_def_cleanup(struct schedule_def *s)
{
    free(s->name);
    free(s->expression);
    free(s->time_zone);
    runreq_cleanup(&s->run);
    memset(s, 0, sizeof(*s));
}

int64_t schedules_next_tick(const struct cron *c, int64_t after_ns,
                            int64_t end_at_ns)
{
    int64_t t = cron_next(c, after_ns);

    if (t < 0) {
        return -1;
    }
    /* Whole milliseconds, so the tick round-trips through the database
     * exactly (cron ticks are whole seconds; @every ones carry the
     * creation time's fraction). */
    t -= t % CLOCK_NS_PER_MS;
    if (t <= after_ns) {
        t += CLOCK_NS_PER_MS;
    }
    if (end_at_ns > 0 && t > end_at_ns) {
        return -1;
    }
    return t;
}

/* Walks from tick t_ns to the last tick at or before now_ns. */
static int64_t walk_to(const struct cron *c, int64_t t_ns, int64_t now_ns)
{
    for (int i = 0; i < 100000; i++) {
        int64_t n = schedules_next_tick(c, t_ns, 0);

        if (n < 0 || n > now_ns) {
            break;
        }
        t_ns = n;
    }
    return t_ns;
}

int64_t schedules_last_due(const struct cron *c, int64_t next_ns,
                           int64_t now_ns, bool *several)
{
    int64_t last_ns = next_ns;
    int64_t iv = 0;

    if (now_ns <= next_ns) {
        *several = false;
        return next_ns;
    }
    if (cron_is_every(c, &iv) && iv >= CLOCK_NS_PER_MS) {
        int64_t k = (now_ns - next_ns) / iv;

        *several = k > 0;
        return next_ns + k * iv;
    }
    /* Back from now in doubling windows: a long outage costs no walk over
     * every tick it missed. */
    for (int k = 0; k < 40; k++) {
        int64_t from = now_ns - (CLOCK_NS_PER_S << k);
        int64_t t;

        if (from <= next_ns) {
            last_ns = walk_to(c, next_ns, now_ns);
            break;
        }
        t = schedules_next_tick(c, from, 0);
        if (t >= 0 && t <= now_ns) {
            last_ns = walk_to(c, t, now_ns);
            break;
        }
    }
    *several = last_ns > next_ns;
    return last_ns;
}

/* ---- Rows --------------------------------------------------------------- */

#define COLUMNS 23

/* The text parameters of a schedule's columns, in the order of the INSERT
 * and UPDATE below; next_ns < 0 stores no next tick. */
struct row_params {
    const char *p[COLUMNS];
    char num[7][24];
    char *params;
};

static void row_params_init(struct row_params *rp, const struct schedule_def *s,
                            const char *ns, int64_t next_ns)
{
    const struct run_request *r = &s->run;
    json_t *o = json_object();

    for (size_t i = 0; i < r->n_params; i++) {
        json_object_set_new(o, r->params[i].key,
                            json_string(r->params[i].value));
    }
    rp->params = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    snprintf(rp->num[0], 24, "%d", r->count);
    snprintf(rp->num[1], 24, "%d", r->max_attempts);
    snprintf(rp->num[2], 24, "%" PRId64, r->timeout_ms);
    snprintf(rp->num[3], 24, "%" PRId64, r->test_timeout_ms);
    snprintf(rp->num[4], 24, "%" PRId64, r->queue_timeout_ms);
    snprintf(rp->num[5], 24, "%d", s->max_runs);
    snprintf(rp->num[6], 24, "%" PRId64, next_ns / CLOCK_NS_PER_MS);
    rp->p[0] = s->name;
    rp->p[1] = r->suite;
    rp->p[2] = ns;
    rp->p[3] = r->pool;
    rp->p[4] = s->expression;
    rp->p[5] = s->time_zone;
    rp->p[6] = s->enabled ? "true" : "false";
    rp->p[7] = r->run_filter;
    rp->p[8] = r->skip_filter;
    rp->p[9] = rp->params;
    rp->p[10] = r->initiated_by;
    rp->p[11] = r->reference;
    rp->p[12] = r->environment;
    rp->p[13] = rp->num[0];
    rp->p[14] = r->max_attempts ? rp->num[1] : NULL;
    rp->p[15] = r->timeout_ms ? rp->num[2] : NULL;
    rp->p[16] = r->test_timeout_ms ? rp->num[3] : NULL;
    rp->p[17] = rp->num[4];
    rp->p[18] = s->overlap_allow ? "allow" : "forbid";
    rp->p[19] = s->catch_up_one ? "one" : "skip";
    rp->p[20] = s->max_runs ? rp->num[5] : NULL;
    rp->p[21] = NULL;
    rp->p[22] = next_ns >= 0 ? rp->num[6] : NULL;
}

static void set_end_at(struct row_params *rp, const struct schedule_def *s,
                       char *text)
{
    if (s->end_at_ns > 0) {
        rp->p[21] = clock_format_rfc3339(s->end_at_ns, CLOCK_UTC, 1, text);
    }
}

/* The first tick of a new or re-timed schedule, or -1 (paused, ended). */
static int64_t first_tick(const struct schedule_def *s, const struct cron *c,
                          int runs_fired)
{
    int64_t now = clock_real_ns();

    if (!s->enabled || (s->max_runs && runs_fired >= s->max_runs)) {
        return -1;
    }
    return schedules_next_tick(c, now - now % CLOCK_NS_PER_MS, s->end_at_ns);
}

static void reply_schedule(struct db *d, const char *name, int status,
                           struct store_reply *out)
{
    char not_found[SCHEDULES_MAX_NAME + 32];

    snprintf(not_found, sizeof(not_found), "no schedule \"%s\"", name);
    if (store_reply_json(d, "schedules: get",
                         "SELECT handoff_schedule_json(s)::text FROM "
                         "schedules s WHERE name = $1",
                         1, (const char *[]){name}, status, not_found,
                         out) == ST_OK &&
        strlen(name) + 20 < sizeof(out->location)) {
        snprintf(out->location, sizeof(out->location), "/api/v1/schedules/%s",
                 name);
    }
}

/* Parses body and checks its suite; 0, or out holds the answer. */
static int parse_and_check(struct db *d, const char *body, size_t len,
                           struct schedule_def *s, struct cron **c, char *ns,
                           size_t ns_len, struct store_reply *out)
{
    struct runreq_error err = {0};

    if (schedules_parse(body, len, s, c, &err) != ST_OK) {
        store_reply_error(out, 400, err.code, "%s", err.message);
        return ST_INVALID;
    }
    if (store_check_suite(d, &s->run, ns, ns_len, out) != ST_OK) {
        schedules_def_cleanup(s);
        cron_free(*c);
        *c = NULL;
        return ST_INVALID;
    }
    return ST_OK;
}

void schedules_create(struct db *d, const char *body, size_t len,
                      struct store_reply *out)
{
    struct schedule_def s;
    struct cron *c = NULL;
    struct row_params rp = {0};
    char ns[160];
    char end[CLOCK_RFC3339_LEN];
    int rc;

    memset(out, 0, sizeof(*out));
    if (parse_and_check(d, body, len, &s, &c, ns, sizeof(ns), out) != ST_OK) {
        return;
    }
    row_params_init(&rp, &s, ns, first_tick(&s, c, 0));
    set_end_at(&rp, &s, end);
    rc = db_exec(d,
                 "INSERT INTO schedules (name, suite, namespace, pool, "
                 "expression, time_zone, enabled, run_filter, skip_filter, "
                 "params, initiated_by, reference, environment, count, "
                 "max_attempts, timeout_ms, test_timeout_ms, "
                 "queue_timeout_ms, overlap_policy, catch_up, max_runs, "
                 "end_at, next_fire_at) VALUES ($1, $2, $3, $4, $5, $6, "
                 "$7::bool, $8, $9, $10::jsonb, $11, $12, $13, $14::int, "
                 "$15::int, $16::bigint, $17::bigint, $18::bigint, $19, $20, "
                 "$21::int, $22::timestamptz, timestamptz 'epoch' + "
                 "$23::bigint * interval '1 millisecond')",
                 COLUMNS, rp.p, NULL);
    if (rc == ST_CONFLICT) {
        store_reply_error(
            out, 409, "conflict",
            "a schedule named \"%s\" exists already (PATCH it, or "
            "DELETE it first)",
            s.name);
    } else if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else {
        reply_schedule(d, s.name, 201, out);
    }
    free(rp.params);
    cron_free(c);
    schedules_def_cleanup(&s);
}

void schedules_list(struct db *d, struct store_reply *out)
{
    memset(out, 0, sizeof(*out));
    (void)store_reply_json(
        d, "schedules: list",
        "SELECT jsonb_build_object('schedules', coalesce(jsonb_agg("
        "handoff_schedule_json(s) ORDER BY s.name), '[]'::jsonb))::text "
        "FROM schedules s",
        0, NULL, 200, "", out);
}

void schedules_get(struct db *d, const char *name, struct store_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (!name || !is_name(name)) {
        store_reply_error(out, 404, "not_found", "no schedule \"%.64s\"",
                          name ? name : "");
        return;
    }
    reply_schedule(d, name, 200, out);
    out->location[0] = '\0';
}

/* The stored body of name with the patch merged over it (a null in the
 * patch resets the field to its default). Returns 0 and *merged (caller
 * frees), or fills out. */
static int merged_body(struct db *d, const char *name, const char *patch,
                       size_t len, char **merged, struct store_reply *out)
{
    const char *p[1] = {name};
    struct db_res *res = NULL;
    json_error_t jerr;
    json_t *have = NULL;
    json_t *want = json_loadb(patch, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *new_name = json_object_get(want, "name");
    const char *key;
    json_t *val;
    int rc;

    if (!json_is_object(want)) {
        store_reply_error(out, 400, "malformed_json",
                          "the body must be a JSON object");
        json_decref(want);
        return ST_INVALID;
    }
    if (new_name && !(json_is_string(new_name) &&
                      strcmp(json_string_value(new_name), name) == 0)) {
        store_reply_error(
            out, 400, "invalid_argument",
            "field \"name\": a schedule cannot be renamed (create "
            "another and delete this one)");
        json_decref(want);
        return ST_INVALID;
    }
    rc = db_exec(d,
                 "SELECT handoff_schedule_body(s)::text FROM schedules s "
                 "WHERE name = $1 FOR UPDATE",
                 1, p, &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else if (db_res_rows(res) == 0) {
        store_reply_error(out, 404, "not_found", "no schedule \"%s\"", name);
        rc = ST_NOT_FOUND;
    } else {
        have = json_loads(db_res_get(res, 0, 0), 0, &jerr);
        if (!json_is_object(have)) {
            json_decref(have);
            have = json_object(); /* cannot be: then every field is asked */
        }
        json_object_foreach(want, key, val)
        {
            if (json_is_null(val)) {
                json_object_del(have, key);
            } else {
                json_object_set(have, key, val);
            }
        }
        *merged = json_dumps(have, JSON_COMPACT);
        json_decref(have);
    }
    db_res_free(res);
    json_decref(want);
    return rc;
}

/* Whether the stored timing of name differs from s (a new next tick is
 * due: expression, zone, enabled, end or run limit), or the schedule has
 * no next tick now. */
static int timing_changed(struct db *d, const struct schedule_def *s,
                          bool *changed, int *runs_fired)
{
    char max_runs[24];
    char end[CLOCK_RFC3339_LEN];
    const char *p[6] = {s->name,
                        s->expression,
                        s->time_zone,
                        s->enabled ? "true" : "false",
                        s->max_runs ? max_runs : NULL,
                        NULL};
    struct db_res *res = NULL;
    int64_t fired = 0;
    int rc;

    snprintf(max_runs, sizeof(max_runs), "%d", s->max_runs);
    if (s->end_at_ns > 0) {
        p[5] = clock_format_rfc3339(s->end_at_ns, CLOCK_UTC, 1, end);
    }
    rc = db_exec(d,
                 "SELECT expression <> $2 OR time_zone <> $3 OR "
                 "enabled <> $4::bool OR max_runs IS DISTINCT FROM $5::int "
                 "OR end_at IS DISTINCT FROM $6::timestamptz OR "
                 "next_fire_at IS NULL, runs_fired FROM schedules WHERE "
                 "name = $1",
                 6, p, &res);

    if (rc == ST_OK && db_res_rows(res) == 1) {
        *changed = strcmp(db_res_get(res, 0, 0), "t") == 0;
        rc = db_res_int64(res, 0, 1, &fired);
        *runs_fired = (int)fired;
    } else if (rc == ST_OK) {
        rc = ST_NOT_FOUND;
    }
    db_res_free(res);
    return rc;
}

static int update_row(struct db *d, const struct schedule_def *s,
                      const struct cron *c, const char *ns)
{
    struct row_params rp = {0};
    char end[CLOCK_RFC3339_LEN];
    const char *p[COLUMNS + 1];
    bool changed = false;
    int fired = 0;
    int rc = timing_changed(d, s, &changed, &fired);

    if (rc != ST_OK) {
        return rc;
    }
    row_params_init(&rp, s, ns, first_tick(s, c, fired));
    set_end_at(&rp, s, end);
    memcpy(p, rp.p, sizeof(rp.p));
    /* Unchanged timing keeps the stored tick: a PATCH of params must not
     * move or repeat it. */
    p[COLUMNS] = changed || !s->enabled ? "true" : "false";
    rc = db_exec(d,
                 "UPDATE schedules SET suite = $2, namespace = $3, pool = $4, "
                 "expression = $5, time_zone = $6, enabled = $7::bool, "
                 "run_filter = $8, skip_filter = $9, params = $10::jsonb, "
                 "initiated_by = $11, reference = $12, environment = $13, "
                 "count = $14::int, max_attempts = $15::int, timeout_ms = "
                 "$16::bigint, test_timeout_ms = $17::bigint, "
                 "queue_timeout_ms = $18::bigint, overlap_policy = $19, "
                 "catch_up = $20, max_runs = $21::int, end_at = "
                 "$22::timestamptz, next_fire_at = CASE WHEN $24::bool THEN "
                 "timestamptz 'epoch' + $23::bigint * interval "
                 "'1 millisecond' ELSE next_fire_at END, updated_at = now() "
                 "WHERE name = $1",
                 COLUMNS + 1, p, NULL);
    free(rp.params);
    return rc;
}

void schedules_patch(struct db *d, const char *name, const char *body,
                     size_t len, struct store_reply *out)
{
    struct schedule_def s;
    struct cron *c = NULL;
    char *merged = NULL;
    char ns[160];
    int rc;

    memset(out, 0, sizeof(*out));
    if (!name || !is_name(name)) {
        store_reply_error(out, 404, "not_found", "no schedule \"%.64s\"",
                          name ? name : "");
        return;
    }
    rc = db_begin(d);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
        return;
    }
    if (merged_body(d, name, body, len, &merged, out) != ST_OK ||
        parse_and_check(d, merged, strlen(merged), &s, &c, ns, sizeof(ns),
                        out) != ST_OK) {
        db_rollback(d);
        free(merged);
        return;
    }
    rc = update_row(d, &s, c, ns);
    rc = rc ? rc : db_commit(d);
    if (rc != ST_OK) {
        db_rollback(d);
        store_reply_db_error(out, rc);
    } else {
        reply_schedule(d, name, 200, out);
        out->location[0] = '\0';
    }
    free(merged);
    cron_free(c);
    schedules_def_cleanup(&s);
}

void schedules_delete(struct db *d, const char *name, struct store_reply *out)
{
    const char *p[1] = {name};
    struct db_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!name || !is_name(name)) {
        store_reply_error(out, 404, "not_found", "no schedule \"%.64s\"",
                          name ? name : "");
        return;
    }
    rc = db_exec(d, "DELETE FROM schedules WHERE name = $1 RETURNING id", 1, p,
                 &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else if (db_res_rows(res) == 0) {
        store_reply_error(out, 404, "not_found", "no schedule \"%s\"", name);
    } else {
        json_t *o = json_pack("{s:s}", "deleted", name);

        out->status = 200;
        out->body = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    db_res_free(res);
}
