/* Parsing and validation of run requests with jansson. */
#include "runreq.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "loadreq.h"
#include "mem.h"
#include "testfilter.h"

#define RUNREQ_DEFAULT_QUEUE_TIMEOUT_MS (10 * 60 * 1000)
#define RUNREQ_MAX_DURATION_MS (INT64_C(7) * 24 * 3600 * 1000)

static const char *const known_fields[] = {
    "suite",        "namespace",    "run",          "skip",
    "params",       "initiated_by", "reference",    "environment",
    "max_attempts", "timeout",      "test_timeout", "queue_timeout",
    "count",        "pool",         "trigger",      "load",
};

int runreq_fail(struct runreq_error *err, const char *code, const char *fmt,
                ...)
{
    va_list ap;

    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return ST_INVALID;
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
    return n >= 1 && n <= 128;
}

/* A string field: absent or null gives NULL; another type is an error. */
static int get_string(json_t *obj, const char *key, size_t max,
                      const char **out, struct runreq_error *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_string(v)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"%s\": want a string", key);
    }
    if (json_string_length(v) > max) {
        return runreq_fail(err, "invalid_argument",
                           "field \"%s\": longer than %zu bytes", key, max);
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"%s\": contains a NUL character", key);
    }
    *out = json_string_value(v);
    return ST_OK;
}

static int get_int(json_t *obj, const char *key, int min, int max, int *out,
                   struct runreq_error *err)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max) {
        return runreq_fail(err, "invalid_argument",
                           "field \"%s\": want an integer from %d to %d", key,
                           min, max);
    }
    *out = (int)json_integer_value(v);
    return ST_OK;
}

static int get_duration(json_t *obj, const char *key, int64_t *out_ms,
                        struct runreq_error *err)
{
    const char *text;
    int64_t ns;
    int rc = get_string(obj, key, 64, &text, err);

    if (rc || !text) {
        return rc;
    }
    if (clock_parse_duration(text, &ns) != ST_OK || ns <= 0) {
        return runreq_fail(
            err, "invalid_argument",
            "field \"%s\": not a duration: \"%s\" (use e.g. 90s, "
            "10m, 1h30m)",
            key, text);
    }
    if (ns / CLOCK_NS_PER_MS > RUNREQ_MAX_DURATION_MS || ns < CLOCK_NS_PER_MS) {
        return runreq_fail(err, "invalid_argument",
                           "field \"%s\": \"%s\" is out of range (1ms to 168h)",
                           key, text);
    }
    *out_ms = ns / CLOCK_NS_PER_MS;
    return ST_OK;
}

static int get_params(json_t *obj, struct run_request *r,
                      struct runreq_error *err)
{
    json_t *v = json_object_get(obj, "params");
    const char *key;
    json_t *val;

    if (!v || json_is_null(v)) {
        return ST_OK;
    }
    if (!json_is_object(v)) {
        return runreq_fail(err, "invalid_argument",
                           "field \"params\": want an object of strings");
    }
    if (json_object_size(v) > RUNREQ_MAX_PARAMS) {
        return runreq_fail(err, "invalid_argument",
                           "field \"params\": more than %d parameters",
                           RUNREQ_MAX_PARAMS);
    }
    json_object_foreach(v, key, val)
    {
        if (!*key || strlen(key) > RUNREQ_MAX_PARAM_KEY) {
            return runreq_fail(
                err, "invalid_argument",
                "field \"params\": a key is empty or longer than %d "
                "bytes",
                RUNREQ_MAX_PARAM_KEY);
        }
        if (!json_is_string(val)) {
            return runreq_fail(err, "invalid_argument",
                               "field \"params.%s\": want a string", key);
        }
        if (json_string_length(val) > RUNREQ_MAX_PARAM_VALUE ||
            strlen(json_string_value(val)) != json_string_length(val)) {
            return runreq_fail(err, "invalid_argument",
                               "field \"params.%s\": longer than %d bytes or "
                               "contains NUL",
                               key, RUNREQ_MAX_PARAM_VALUE);
        }
        result_kv_set(&r->params, &r->n_params, key, json_string_value(val));
    }
    return ST_OK;
}

static char *dup_or(const char *s, const char *def)
{
    return s ? mem_strdup(s) : def ? mem_strdup(def) : NULL;
}

static int check_filters(const char *run, const char *skip,
                         struct runreq_error *err)
{
    struct testfilter f;
    char msg[400];

    if (testfilter_init(&f, run, skip, "field \"run\"", "field \"skip\"", msg,
                        sizeof(msg)) != ST_OK) {
        return runreq_fail(err, "invalid_argument", "%s", msg);
    }
    testfilter_cleanup(&f);
    return ST_OK;
}

int runreq_parse(const char *body, size_t len, bool allow_schedule,
                 struct run_request *out, struct runreq_error *err)
{
    return runreq_parse_ex(body, len, allow_schedule, false, out, err);
}

int runreq_parse_ex(const char *body, size_t len, bool allow_schedule,
                    bool allow_load, struct run_request *out,
                    struct runreq_error *err)
{
    json_error_t jerr;
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    struct run_request r;
    const char *suite = NULL, *ns = NULL, *run = NULL, *skip = NULL;
    const char *by = NULL, *ref = NULL, *env = NULL, *pool = NULL;
    const char *trigger = NULL;
    const char *key;
    json_t *val;
    int rc = ST_INVALID;

    memset(&r, 0, sizeof(r));
    r.count = 1;
    r.queue_timeout_ms = RUNREQ_DEFAULT_QUEUE_TIMEOUT_MS;
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
    json_object_foreach(obj, key, val)
    {
        bool known = false;

        for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]);
             i++) {
            known = known || strcmp(key, known_fields[i]) == 0;
        }
        if (!known || (!allow_load && strcmp(key, "load") == 0)) {
            runreq_fail(err, "unknown_field", "unknown field \"%.100s\"", key);
            goto out;
        }
    }
    if (get_string(obj, "suite", 128, &suite, err) ||
        get_string(obj, "namespace", 128, &ns, err) ||
        get_string(obj, "run", RUNREQ_MAX_REGEX, &run, err) ||
        get_string(obj, "skip", RUNREQ_MAX_REGEX, &skip, err) ||
        get_string(obj, "initiated_by", RUNREQ_MAX_TEXT, &by, err) ||
        get_string(obj, "reference", RUNREQ_MAX_TEXT, &ref, err) ||
        get_string(obj, "environment", RUNREQ_MAX_TEXT, &env, err) ||
        get_string(obj, "pool", 128, &pool, err) ||
        get_string(obj, "trigger", 16, &trigger, err) ||
        get_int(obj, "max_attempts", 1, 100, &r.max_attempts, err) ||
        get_int(obj, "count", 1, 1000, &r.count, err) ||
        get_duration(obj, "timeout", &r.timeout_ms, err) ||
        get_duration(obj, "test_timeout", &r.test_timeout_ms, err) ||
        get_duration(obj, "queue_timeout", &r.queue_timeout_ms, err) ||
        get_params(obj, &r, err)) {
        goto out;
    }
    if (json_object_get(obj, "load") &&
        !json_is_null(json_object_get(obj, "load")) &&
        loadreq_parse(json_object_get(obj, "load"), &r.load, err) != ST_OK) {
        goto out;
    }
    if (!suite) {
        runreq_fail(err, "invalid_argument", "field \"suite\" is required");
        goto out;
    }
    if (!is_name(suite) || (ns && !is_name(ns)) || (pool && !is_name(pool))) {
        runreq_fail(err, "invalid_argument",
                    "fields \"suite\", \"namespace\" and \"pool\": use 1-128 "
                    "characters of [A-Za-z0-9_.-]");
        goto out;
    }
    if (trigger && strcmp(trigger, "api") != 0 && strcmp(trigger, "cli") != 0 &&
        strcmp(trigger, "ui") != 0 &&
        !(allow_schedule && strcmp(trigger, "schedule") == 0)) {
        runreq_fail(err, "invalid_argument",
                    "field \"trigger\": want \"api\", \"cli\" or \"ui\"");
        goto out;
    }
    if (check_filters(run, skip, err) != ST_OK) {
        goto out;
    }
    r.suite = mem_strdup(suite);
    r.ns = dup_or(ns, NULL);
    r.run_filter = run && *run ? mem_strdup(run) : NULL;
    r.skip_filter = skip && *skip ? mem_strdup(skip) : NULL;
    r.initiated_by = dup_or(by, "");
    r.reference = dup_or(ref, "");
    r.environment = dup_or(env, "");
    r.pool = dup_or(pool, "default");
    r.trigger = dup_or(trigger, "api");
    *out = r;
    memset(&r, 0, sizeof(r));
    rc = ST_OK;
out:
    runreq_cleanup(&r);
    json_decref(obj);
    return rc;
}

void runreq_cleanup(struct run_request *r)
{
    free(r->suite);
    free(r->ns);
    free(r->run_filter);
    free(r->skip_filter);
    result_kv_free(r->params, r->n_params);
    free(r->initiated_by);
    free(r->reference);
    free(r->environment);
    free(r->pool);
    free(r->trigger);
    wire_load_free(r->load);
    memset(r, 0, sizeof(*r));
}
