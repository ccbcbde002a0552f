/* Retention policies over the API (see retention.h). */
#include "retention.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "db.h"
#include "mem.h"
#include "store.h"

#define RETENTION_ERR 400

static int fail(const char **code, const char *c, char *err, size_t err_len,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(const char **code, const char *c, char *err, size_t err_len,
                const char *fmt, ...)
{
    va_list ap;

    *code = c;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return ST_INVALID;
}

/* A namespace or suite name as runs have them: 1-128 of [A-Za-z0-9_.-]. */
static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= 128 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789_.-") == n;
}

/* "30d", or a Go duration ("720h", "90m"). */
static bool parse_age(const char *text, int64_t *out_ms)
{
    size_t n = strlen(text);
    int64_t ns = 0;

    if (n >= 2 && n <= 7 && text[n - 1] == 'd' &&
        strspn(text, "0123456789") == n - 1) {
        int64_t days = strtoll(text, NULL, 10);

        if (days < 1 || days > RETENTION_MAX_AGE_MS / (24 * 3600 * 1000)) {
            return false;
        }
        *out_ms = days * 24 * 3600 * 1000;
        return true;
    }
    if (clock_parse_duration(text, &ns) != ST_OK || ns < CLOCK_NS_PER_S ||
        ns / CLOCK_NS_PER_MS > RETENTION_MAX_AGE_MS) {
        return false;
    }
    *out_ms = ns / CLOCK_NS_PER_MS;
    return true;
}

static int get_name(json_t *obj, const char *key, char *out, size_t len,
                    const char **code, char *err, size_t err_len)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v)) {
        out[0] = '\0';
        return ST_OK;
    }
    if (!json_is_string(v) || !valid_name(json_string_value(v))) {
        return fail(code, "invalid_argument", err, err_len,
                    "field \"%s\": want a name of 1-128 of [A-Za-z0-9_.-], "
                    "or null",
                    key);
    }
    snprintf(out, len, "%s", json_string_value(v));
    return ST_OK;
}

int retention_parse(const char *body, size_t len, struct retention_policy *out,
                    const char **code, char *err, size_t err_len)
{
    static const char *const known[] = {"namespace", "suite", "max_age",
                                        "max_runs"};
    struct retention_policy p = {0};
    json_error_t jerr;
    json_t *obj =
        json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *v;
    const char *key;
    int rc = ST_OK;

    if (!obj) {
        return fail(code, "malformed_json", err, err_len,
                    "the body is not valid JSON: %s (line %d)", jerr.text,
                    jerr.line);
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        return fail(code, "malformed_json", err, err_len,
                    "the body must be a JSON object: {\"namespace\", "
                    "\"suite\", \"max_age\", \"max_runs\"}");
    }
    json_object_foreach(obj, key, v)
    {
        bool ok = false;

        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            ok = ok || strcmp(key, known[i]) == 0;
        }
        if (!ok) {
            rc = fail(code, "unknown_field", err, err_len,
                      "unknown field \"%.100s\" (known: namespace, suite, "
                      "max_age, max_runs)",
                      key);
            goto out;
        }
    }
    rc = get_name(obj, "namespace", p.ns, sizeof(p.ns), code, err, err_len);
    rc = rc ? rc
            : get_name(obj, "suite", p.suite, sizeof(p.suite), code, err,
                       err_len);
    if (rc) {
        goto out;
    }
    if (p.suite[0] && !p.ns[0]) {
        rc = fail(code, "invalid_argument", err, err_len,
                  "field \"suite\" needs \"namespace\" (a suite's policy is "
                  "for the suite in one namespace)");
        goto out;
    }
    v = json_object_get(obj, "max_age");
    if (v && !json_is_null(v) &&
        (!json_is_string(v) ||
         !parse_age(json_string_value(v), &p.max_age_ms))) {
        rc = fail(code, "invalid_argument", err, err_len,
                  "field \"max_age\": want a duration from 1s to 100 years, "
                  "e.g. \"30d\", \"720h\" or \"90m\"");
        goto out;
    }
    v = json_object_get(obj, "max_runs");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > RETENTION_MAX_RUNS) {
            rc = fail(code, "invalid_argument", err, err_len,
                      "field \"max_runs\": want an integer from 1 to %d",
                      RETENTION_MAX_RUNS);
            goto out;
        }
        p.max_runs = json_integer_value(v);
    }
    if (!p.max_age_ms && !p.max_runs) {
        rc = fail(code, "invalid_argument", err, err_len,
                  "a policy needs \"max_age\", \"max_runs\" or both (DELETE "
                  "removes a policy)");
        goto out;
    }
    *out = p;
out:
    json_decref(obj);
    return rc;
}

void retention_list(struct db *d, struct store_reply *out)
{
    memset(out, 0, sizeof(*out));
    (void)store_reply_json(
        d, "retention: list",
        "SELECT jsonb_build_object('policies', coalesce(jsonb_agg("
        "handoff_retention_json(p) ORDER BY p.namespace, p.suite), "
        "'[]'::jsonb))::text FROM retention_policies p",
        0, NULL, 200, "", out);
}

void retention_put(struct db *d, const char *body, size_t len,
                   struct store_reply *out)
{
    struct retention_policy p;
    const char *code = NULL;
    char age[24];
    char runs[24];
    struct db_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (retention_parse(body, len, &p, &code, out->error_message,
                        sizeof(out->error_message)) != ST_OK) {
        out->status = RETENTION_ERR;
        out->error_code = code;
        return;
    }
    snprintf(age, sizeof(age), "%" PRId64, p.max_age_ms);
    snprintf(runs, sizeof(runs), "%" PRId64, p.max_runs);
    rc = db_exec_ctx(
        d, "retention: put",
        "INSERT INTO retention_policies AS p (namespace, suite, max_age_ms, "
        "max_runs) VALUES ($1, $2, $3::bigint, $4::int) ON CONFLICT "
        "(namespace, suite) DO UPDATE SET max_age_ms = EXCLUDED.max_age_ms, "
        "max_runs = EXCLUDED.max_runs, updated_at = now() RETURNING "
        "handoff_retention_json(p)::text, p.xmax = 0",
        4,
        (const char *[]){p.ns, p.suite, p.max_age_ms ? age : NULL,
                         p.max_runs ? runs : NULL},
        &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else {
        out->status = strcmp(db_res_get(res, 0, 1), "t") == 0 ? 201 : 200;
        out->body = mem_strdup(db_res_get(res, 0, 0));
    }
    db_res_free(res);
}

void retention_delete(struct db *d, const char *ns, const char *suite,
                      struct store_reply *out)
{
    struct db_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((ns && !valid_name(ns)) || (suite && !valid_name(suite))) {
        store_reply_error(out, 400, "invalid_argument",
                          "query parameters namespace and suite: names of "
                          "1-128 of [A-Za-z0-9_.-]");
        return;
    }
    if (suite && !ns) {
        store_reply_error(out, 400, "invalid_argument",
                          "query parameter suite needs namespace");
        return;
    }
    rc = db_exec_ctx(d, "retention: delete",
                     "DELETE FROM retention_policies p WHERE namespace = $1 "
                     "AND suite = $2 RETURNING jsonb_build_object('deleted', "
                     "handoff_retention_json(p))::text",
                     2, (const char *[]){ns ? ns : "", suite ? suite : ""},
                     &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else if (db_res_rows(res) == 0) {
        store_reply_error(out, 404, "not_found",
                          "no retention policy for %s%s%s%s",
                          ns ? "namespace " : "the default scope", ns ? ns : "",
                          suite ? ", suite " : "", suite ? suite : "");
    } else {
        out->status = 200;
        out->body = mem_strdup(db_res_get(res, 0, 0));
    }
    db_res_free(res);
}
