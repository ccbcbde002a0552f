/* The API's JSON (docs/api.md), read with jansson into handoffctl's
 * structs and written for requests. Everything read is untrusted: a field
 * that is missing, null or of another type than the API describes reads as
 * absent, so an older or newer controller never crashes the client. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "remote.h"
#include "remote_int.h"

/* Longest id or name handoffctl keeps from an answer. */
#define REMOTE_ID_MAX 256

/* ---- Reading fields ---------------------------------------------------- */

static json_t *get(const json_t *o, const char *key)
{
    return json_is_object(o) ? json_object_get(o, key) : NULL;
}

/* A copy of a string field, or NULL. Text after an embedded NUL is cut. */
static char *get_str(const json_t *o, const char *key)
{
    json_t *v = get(o, key);

    return json_is_string(v) ? mem_strdup(json_string_value(v)) : NULL;
}

static bool get_bool(const json_t *o, const char *key)
{
    const json_t *v = get(o, key);

    /* Not json_is_true(get(...)): GCC's -Wnull-dereference misreads the
     * macro once get() is inlined. */
    if (v == NULL) {
        return false;
    }
    return json_typeof(v) == JSON_TRUE;
}

/* A whole number within [0, INT64_MAX / 2], or absent. Reals that hold a
 * whole number count: JSON does not tell 3 from 3.0. */
static int64_t get_count(const json_t *o, const char *key, int64_t absent)
{
    json_t *v = get(o, key);
    double d;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);

        return i >= 0 && i <= INT64_MAX / 2 ? (int64_t)i : absent;
    }
    if (json_is_real(v)) {
        d = json_real_value(v);
        if (d >= 0 && d <= 9e15 && floor(d) == d) {
            return (int64_t)d;
        }
    }
    return absent;
}

/* Milliseconds (whole or fractional) as nanoseconds, or absent. */
static int64_t get_ms_as_ns(const json_t *o, const char *key, int64_t absent)
{
    json_t *v = get(o, key);
    double ms;

    if (!json_is_number(v)) {
        return absent;
    }
    ms = json_number_value(v);
    /* Up to ~100 days: any larger value is garbage, not a duration. */
    if (!(ms >= 0 && ms <= 9e9)) {
        return absent;
    }
    return (int64_t)llround(ms * 1e6);
}

/* An RFC 3339 time as Unix ns; 0 when absent or unparsable. */
static int64_t get_time(const json_t *o, const char *key)
{
    json_t *v = get(o, key);
    int64_t ns;

    if (!json_is_string(v) ||
        clock_parse_rfc3339(json_string_value(v), &ns) != ST_OK) {
        return 0;
    }
    return ns;
}

/* Text that may hold NULs (logs, output) appended whole to b. */
static void get_text(const json_t *o, const char *key, struct buf *b)
{
    json_t *v = get(o, key);

    if (json_is_string(v)) {
        buf_add(b, json_string_value(v), json_string_length(v));
    }
}

/* An object of strings as key/values; other values are left out, except
 * numbers and booleans, shown as JSON shows them. */
static void get_kv(const json_t *o, const char *key, struct result_kv **kvs,
                   size_t *n)
{
    json_t *obj = get(o, key);
    const char *k;
    json_t *v;

    if (!json_is_object(obj)) {
        return;
    }
    json_object_foreach(obj, k, v)
    {
        char num[64];

        if (json_is_string(v)) {
            result_kv_set(kvs, n, k, json_string_value(v));
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
            result_kv_set(kvs, n, k, num);
        } else if (json_is_real(v)) {
            snprintf(num, sizeof(num), "%g", json_real_value(v));
            result_kv_set(kvs, n, k, num);
        } else if (json_is_boolean(v)) {
            result_kv_set(kvs, n, k, json_is_true(v) ? "true" : "false");
        }
    }
}

/* The strings of an array field (other elements left out). */
static char **get_str_array(const json_t *o, const char *key, size_t *n)
{
    json_t *arr = get(o, key);
    char **out = NULL;
    size_t i;
    json_t *v;

    *n = 0;
    if (!json_is_array(arr)) {
        return NULL;
    }
    out = mem_calloc(json_array_size(arr) + 1, sizeof(*out));
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v)) {
            out[(*n)++] = mem_strdup(json_string_value(v));
        }
    }
    return out;
}

static void free_str_array(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i]);
    }
    free(a);
}

/* An id: a positive integer, or a non-empty string without control
 * characters of at most REMOTE_ID_MAX bytes. NULL otherwise. */
static char *id_text(const json_t *v)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        return mem_printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);

        if (len == 0 || len > REMOTE_ID_MAX || strlen(s) != len) {
            return NULL;
        }
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
                return NULL;
            }
        }
        return mem_strdup(s);
    }
    return NULL;
}

static enum result_kind parse_result(const char *s, enum result_kind unknown)
{
    enum result_kind k;

    if (!s || result_kind_parse(s, &k) != ST_OK) {
        return unknown;
    }
    return k;
}

static enum result_kind get_result(const json_t *o, const char *key,
                                   enum result_kind unknown)
{
    json_t *v = get(o, key);

    return parse_result(json_is_string(v) ? json_string_value(v) : NULL,
                        unknown);
}

/* Parses text into a JSON value, or says why not. */
static json_t *load(const char *text, size_t len, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text ? text : "", text ? len : 0,
                              JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);

    if (!root) {
        snprintf(why, whylen, "not valid JSON (line %d, column %d: %s)",
                 jerr.line, jerr.column, jerr.text);
    }
    return root;
}

/* ---- Runs ------------------------------------------------------------- */

void remote_run_cleanup(struct remote_run *run)
{
    free(run->id);
    free(run->suite);
    free(run->ns);
    free(run->pool);
    free(run->state);
    free(run->result);
    free(run->reason);
    free(run->trigger);
    free(run->initiated_by);
    free(run->reference);
    free(run->environment);
    free(run->run_filter);
    free(run->skip_filter);
    result_kv_free(run->params, run->n_params);
    for (size_t i = 0; i < run->n_jobs; i++) {
        free(run->jobs[i].id);
        free(run->jobs[i].state);
        free(run->jobs[i].worker);
    }
    free(run->jobs);
    result_suite_cleanup(&run->detail);
    free(run->json);
    memset(run, 0, sizeof(*run));
}

static bool state_is(const struct remote_run *run, const char *state)
{
    return run->state && strcmp(run->state, state) == 0;
}

bool remote_run_has_ended(const struct remote_run *run)
{
    return state_is(run, "finished") || state_is(run, "cancelled") ||
           state_is(run, "timed_out");
}

bool remote_run_has_passed(const struct remote_run *run)
{
    return state_is(run, "finished") && run->result &&
           strcmp(run->result, "passed") == 0;
}

enum result_kind remote_run_result(const struct remote_run *run)
{
    enum result_kind k;

    if (!remote_run_has_ended(run)) {
        return RESULT_NONE;
    }
    if (!state_is(run, "finished")) {
        return RESULT_ERROR;
    }
    k = parse_result(run->result, RESULT_ERROR);
    return k == RESULT_PASSED || k == RESULT_FAILED ? k : RESULT_ERROR;
}

static void decode_phase(const json_t *o, struct result_phase *p)
{
    if (!json_is_object(o)) {
        return;
    }
    p->ran = get_bool(o, "ran");
    p->result = get_result(o, "result", p->ran ? RESULT_ERROR : RESULT_NONE);
    p->reason = get_str(o, "reason");
    p->start_unix_ns = get_time(o, "started_at");
    p->duration_ns = get_ms_as_ns(o, "duration_ms", 0);
    get_text(o, "log", &p->log);
}

static void decode_span(const json_t *o, struct result_attempt *a)
{
    struct result_span *s;
    json_t *name = get(o, "name");

    if (!json_is_string(name)) {
        return;
    }
    s = result_attempt_add_span(a, json_string_value(name),
                                get_time(o, "started_at"));
    s->duration_ns = get_ms_as_ns(o, "duration_ms", -1);
    get_kv(o, "attrs", &s->attrs, &s->n_attrs);
}

static void decode_attempt(const json_t *o, struct result_test *t)
{
    struct result_attempt *a;
    json_t *spans;
    size_t i;
    json_t *v;
    int64_t n;

    if (!json_is_object(o)) {
        return;
    }
    a = result_test_add_attempt(t, 0);
    n = get_count(o, "attempt", 0);
    if (n >= 1 && n <= 1000000) {
        a->attempt = (int)n;
    }
    a->result = get_result(o, "result", RESULT_NONE);
    a->soft_failure = get_bool(o, "soft_failure");
    a->start_unix_ns = get_time(o, "started_at");
    a->duration_ns = get_ms_as_ns(o, "duration_ms", 0);
    a->reason = get_str(o, "reason");
    get_text(o, "log", &a->log);
    a->log_dropped = (size_t)get_count(o, "log_dropped", 0);
    get_kv(o, "values", &a->values, &a->n_values);
    spans = get(o, "spans");
    if (json_is_array(spans)) {
        json_array_foreach(spans, i, v)
        {
            decode_span(v, a);
        }
    }
}

static void decode_detail(const json_t *o, struct remote_run *run)
{
    struct result_suite *s = &run->detail;
    json_t *tests = get(o, "tests");
    size_t i;
    json_t *v;

    run->has_detail = true;
    decode_phase(get(o, "setup"), &s->setup);
    decode_phase(get(o, "teardown"), &s->teardown);
    get_text(o, "log", &s->log);
    if (json_is_array(tests)) {
        json_array_foreach(tests, i, v)
        {
            json_t *name = get(v, "name");
            json_t *attempts = get(v, "attempts");
            struct result_test *t;
            size_t j;
            json_t *a;

            if (!json_is_string(name)) {
                continue;
            }
            t = result_suite_add_test(s, json_string_value(name));
            if (json_is_array(attempts)) {
                json_array_foreach(attempts, j, a)
                {
                    decode_attempt(a, t);
                }
            }
        }
    }
    s->result = remote_run_result(run);
    s->reason = run->reason ? mem_strdup(run->reason) : NULL;
    s->start_unix_ns = run->started_ns ? run->started_ns : run->created_ns;
    if (run->duration_ns >= 0) {
        s->duration_ns = run->duration_ns;
    } else if (run->finished_ns && s->start_unix_ns &&
               run->finished_ns > s->start_unix_ns) {
        s->duration_ns = run->finished_ns - s->start_unix_ns;
    }
}

static void decode_counts(const json_t *o, struct remote_counts *c)
{
    if (!json_is_object(o)) {
        return;
    }
    c->present = true;
    c->tests = get_count(o, "tests", 0);
    c->passed = get_count(o, "passed", 0);
    c->failed = get_count(o, "failed", 0);
    c->skipped = get_count(o, "skipped", 0);
    c->errors = get_count(o, "error", 0);
    c->soft_failures = get_count(o, "soft_failures", 0);
    c->flaky = get_count(o, "flaky", 0);
}

static void decode_jobs(const json_t *arr, struct remote_run *run)
{
    size_t i;
    json_t *v;

    if (!json_is_array(arr)) {
        return;
    }
    run->jobs = mem_calloc(json_array_size(arr) + 1, sizeof(*run->jobs));
    json_array_foreach(arr, i, v)
    {
        struct remote_job *j = &run->jobs[run->n_jobs];

        if (!json_is_object(v)) {
            continue;
        }
        j->id = id_text(get(v, "id"));
        j->state = get_str(v, "state");
        j->worker = get_str(v, "worker");
        j->attempts = get_count(v, "attempts", -1);
        run->n_jobs++;
    }
}

/* Decodes a run object into run (zeroed storage). */
static int decode_run(const json_t *o, bool detail, struct remote_run *run,
                      char *why, size_t whylen)
{
    memset(run, 0, sizeof(*run));
    result_suite_init(&run->detail, NULL, NULL);
    if (!json_is_object(o)) {
        snprintf(why, whylen, "a run is not a JSON object");
        return ST_PROTOCOL;
    }
    run->id = id_text(get(o, "id"));
    if (!run->id) {
        snprintf(why, whylen, "a run without a valid \"id\"");
        return ST_PROTOCOL;
    }
    run->suite = get_str(o, "suite");
    run->ns = get_str(o, "namespace");
    run->pool = get_str(o, "pool");
    run->state = get_str(o, "state");
    run->result = get_str(o, "result");
    run->reason = get_str(o, "reason");
    run->trigger = get_str(o, "trigger");
    run->initiated_by = get_str(o, "initiated_by");
    run->reference = get_str(o, "reference");
    run->environment = get_str(o, "environment");
    run->run_filter = get_str(o, "run");
    run->skip_filter = get_str(o, "skip");
    get_kv(o, "params", &run->params, &run->n_params);
    run->count = get_count(o, "count", -1);
    run->max_attempts = get_count(o, "max_attempts", -1);
    run->timeout_ms = get_count(o, "timeout_ms", -1);
    run->test_timeout_ms = get_count(o, "test_timeout_ms", -1);
    run->queue_timeout_ms = get_count(o, "queue_timeout_ms", -1);
    run->created_ns = get_time(o, "created_at");
    run->started_ns = get_time(o, "started_at");
    run->finished_ns = get_time(o, "finished_at");
    run->duration_ns = get_ms_as_ns(o, "duration_ms", -1);
    run->flaky = get_bool(o, "flaky");
    decode_counts(get(o, "counts"), &run->counts);
    decode_jobs(get(o, "jobs"), run);
    free(run->detail.name);
    free(run->detail.ns);
    run->detail.name = mem_strdup(run->suite ? run->suite : "");
    run->detail.ns = mem_strdup(run->ns ? run->ns : "");
    if (detail) {
        decode_detail(o, run);
    }
    return ST_OK;
}

int remote_json_run(const char *text, size_t len, bool detail,
                    struct remote_run *out, char *why, size_t whylen)
{
    json_t *root = load(text, len, why, whylen);
    struct remote_run run;
    int rc;

    if (!root) {
        return ST_PROTOCOL;
    }
    rc = decode_run(root, detail, &run, why, whylen);
    if (rc == ST_OK) {
        *out = run;
    } else {
        remote_run_cleanup(&run);
    }
    json_decref(root);
    return rc;
}

void remote_run_page_cleanup(struct remote_run_page *p)
{
    for (size_t i = 0; i < p->n_runs; i++) {
        remote_run_cleanup(&p->runs[i]);
    }
    free(p->runs);
    free(p->next_cursor);
    memset(p, 0, sizeof(*p));
}

int remote_json_run_page(const char *text, size_t len,
                         struct remote_run_page *out, char *why, size_t whylen)
{
    json_t *root = load(text, len, why, whylen);
    json_t *runs;
    struct remote_run_page page = {0};
    json_t *cursor;
    size_t i;
    json_t *v;

    if (!root) {
        return ST_PROTOCOL;
    }
    runs = get(root, "runs");
    if (!json_is_array(runs)) {
        snprintf(why, whylen, "no \"runs\" array");
        json_decref(root);
        return ST_PROTOCOL;
    }
    page.runs = mem_calloc(json_array_size(runs) + 1, sizeof(*page.runs));
    json_array_foreach(runs, i, v)
    {
        struct remote_run *run = &page.runs[page.n_runs];
        char skipped[256];

        if (decode_run(v, false, run, skipped, sizeof(skipped)) != ST_OK) {
            log_debug("list of runs: entry %zu left out: %s", i, skipped);
            remote_run_cleanup(run);
            continue;
        }
        run->json = json_dumps(v, JSON_COMPACT);
        page.n_runs++;
    }
    cursor = get(root, "next_cursor");
    if (json_is_string(cursor) && json_string_length(cursor) > 0) {
        page.next_cursor = mem_strdup(json_string_value(cursor));
    }
    *out = page;
    json_decref(root);
    return ST_OK;
}

/* ---- Catalog ---------------------------------------------------------- */

void remote_suite_list_cleanup(struct remote_suite_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct remote_suite *s = &l->suites[i];

        free(s->name);
        free(s->ns);
        free(s->description);
        free(s->pool);
        free_str_array(s->tests, s->n_tests);
        free_str_array(s->workers, s->n_workers);
    }
    free(l->suites);
    memset(l, 0, sizeof(*l));
}

/* Test names of a suite: objects with a name (or bare strings). */
static void decode_suite_tests(const json_t *arr, struct remote_suite *s)
{
    size_t i;
    json_t *v;

    if (!json_is_array(arr)) {
        return;
    }
    s->tests = mem_calloc(json_array_size(arr) + 1, sizeof(*s->tests));
    json_array_foreach(arr, i, v)
    {
        json_t *name = json_is_string(v) ? v : get(v, "name");

        if (json_is_string(name)) {
            s->tests[s->n_tests++] = mem_strdup(json_string_value(name));
        }
    }
}

int remote_json_suites(const char *text, size_t len,
                       struct remote_suite_list *out, char *why, size_t whylen)
{
    json_t *root = load(text, len, why, whylen);
    json_t *arr;
    struct remote_suite_list l = {0};
    size_t i;
    json_t *v;

    if (!root) {
        return ST_PROTOCOL;
    }
    arr = get(root, "suites");
    if (!json_is_array(arr)) {
        snprintf(why, whylen, "no \"suites\" array");
        json_decref(root);
        return ST_PROTOCOL;
    }
    l.suites = mem_calloc(json_array_size(arr) + 1, sizeof(*l.suites));
    json_array_foreach(arr, i, v)
    {
        struct remote_suite *s = &l.suites[l.n];

        s->name = get_str(v, "name");
        if (!s->name) {
            continue;
        }
        s->ns = get_str(v, "namespace");
        s->description = get_str(v, "description");
        s->pool = get_str(v, "pool");
        decode_suite_tests(get(v, "tests"), s);
        s->workers = get_str_array(v, "workers", &s->n_workers);
        s->last_seen_ns = get_time(v, "last_seen");
        l.n++;
    }
    *out = l;
    json_decref(root);
    return ST_OK;
}

void remote_worker_list_cleanup(struct remote_worker_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct remote_worker *w = &l->workers[i];

        free(w->id);
        free(w->host);
        free(w->pool);
        free(w->version);
        result_kv_free(w->labels, w->n_labels);
    }
    free(l->workers);
    memset(l, 0, sizeof(*l));
}

static size_t array_size(const json_t *o, const char *key)
{
    json_t *v = get(o, key);

    return json_is_array(v) ? json_array_size(v) : 0;
}

int remote_json_workers(const char *text, size_t len,
                        struct remote_worker_list *out, char *why,
                        size_t whylen)
{
    json_t *root = load(text, len, why, whylen);
    json_t *arr;
    struct remote_worker_list l = {0};
    size_t i;
    json_t *v;

    if (!root) {
        return ST_PROTOCOL;
    }
    arr = get(root, "workers");
    if (!json_is_array(arr)) {
        snprintf(why, whylen, "no \"workers\" array");
        json_decref(root);
        return ST_PROTOCOL;
    }
    l.workers = mem_calloc(json_array_size(arr) + 1, sizeof(*l.workers));
    json_array_foreach(arr, i, v)
    {
        struct remote_worker *w = &l.workers[l.n];
        json_t *alive;

        w->id = id_text(get(v, "id"));
        if (!w->id) {
            continue;
        }
        w->host = get_str(v, "host");
        w->pool = get_str(v, "pool");
        w->version = get_str(v, "version");
        get_kv(v, "labels", &w->labels, &w->n_labels);
        w->slots = get_count(v, "slots", -1);
        w->free_slots = get_count(v, "free_slots", -1);
        w->draining = get_bool(v, "draining");
        alive = get(v, "alive");
        w->alive = json_is_boolean(alive) ? json_is_true(alive) : -1;
        w->started_ns = get_time(v, "started_at");
        w->last_seen_ns = get_time(v, "last_seen");
        w->n_suites = array_size(v, "suites");
        w->n_running_runs = array_size(v, "running_runs");
        l.n++;
    }
    *out = l;
    json_decref(root);
    return ST_OK;
}

/* ---- Events ----------------------------------------------------------- */

void remote_event_cleanup(struct remote_event *ev)
{
    free(ev->job_id);
    free(ev->suite);
    free(ev->ns);
    free(ev->test);
    free(ev->output);
    free(ev->reason);
    free(ev->state);
    free(ev->result);
    memset(ev, 0, sizeof(*ev));
}

static const struct {
    const char *name;
    enum report_event_kind kind;
} event_kinds[] = {
    {"suite_start", REPORT_SUITE_START}, {"test_run", REPORT_TEST_RUN},
    {"output", REPORT_OUTPUT},           {"test_end", REPORT_TEST_END},
    {"suite_end", REPORT_SUITE_END},
};

/* Fills the report event from the JSON fields; returns false when the
 * kind's required fields are missing. */
static bool decode_report(const json_t *o, struct remote_event *ev)
{
    struct report_event *r = &ev->report;
    json_t *output = get(o, "output");
    int64_t n;

    ev->suite = get_str(o, "suite");
    ev->ns = get_str(o, "namespace");
    ev->test = get_str(o, "test");
    ev->reason = get_str(o, "reason");
    if (json_is_string(output)) {
        /* Copied by length: output may hold NULs. */
        ev->output_len = json_string_length(output);
        ev->output = mem_alloc(ev->output_len + 1);
        memcpy(ev->output, json_string_value(output), ev->output_len);
        ev->output[ev->output_len] = '\0';
    }
    r->suite = ev->suite;
    r->ns = ev->ns;
    r->test = ev->test;
    r->reason = ev->reason;
    r->output = ev->output;
    r->output_len = ev->output_len;
    r->time_unix_ns = get_time(o, "time");
    if (!r->time_unix_ns) {
        r->time_unix_ns = clock_real_ns();
    }
    n = get_count(o, "attempt", 1);
    r->attempt = n >= 1 && n <= 1000000 ? (int)n : 1;
    n = get_count(o, "max_attempts", r->attempt);
    r->max_attempts = n >= r->attempt && n <= 1000000 ? (int)n : r->attempt;
    r->soft_failure = get_bool(o, "soft_failure");
    r->flaky = get_bool(o, "flaky");
    r->retry = get_bool(o, "retry");
    r->elapsed_ns = get_ms_as_ns(o, "elapsed_ms", -1);
    if (r->elapsed_ns < 0) {
        r->elapsed_ns = get_count(o, "elapsed_ns", 0);
    }
    switch (r->kind) {
    case REPORT_TEST_RUN:
        return ev->test != NULL;
    case REPORT_TEST_END:
        r->result = get_result(o, "result", RESULT_ERROR);
        return ev->test != NULL;
    case REPORT_OUTPUT:
        return ev->output != NULL;
    case REPORT_SUITE_END:
        r->result = get_result(o, "result", RESULT_ERROR);
        return true;
    case REPORT_SUITE_START:
        return true;
    }
    return false;
}

int remote_json_event(const char *type, const char *data, size_t len,
                      struct remote_event *out, char *why, size_t whylen)
{
    json_t *root = load(data, len, why, whylen);
    struct remote_event ev;
    const char *kind = type;
    json_t *kind_field;
    int rc = ST_NOT_FOUND;

    memset(&ev, 0, sizeof(ev));
    if (!root) {
        return ST_PROTOCOL;
    }
    if (!json_is_object(root)) {
        snprintf(why, whylen, "event data is not a JSON object");
        json_decref(root);
        return ST_PROTOCOL;
    }
    kind_field = get(root, "kind");
    if ((!kind || !*kind || strcmp(kind, "message") == 0) &&
        json_is_string(kind_field)) {
        kind = json_string_value(kind_field);
    }
    kind = kind ? kind : "";
    ev.job_id = get_str(root, "job_id");
    ev.seq = get_count(root, "seq", -1);
    if (strcmp(kind, "run_end") == 0) {
        ev.kind = REMOTE_EVENT_RUN_END;
        ev.state = get_str(root, "state");
        ev.result = get_str(root, "result");
        ev.reason = get_str(root, "reason");
        rc = ST_OK;
    }
    for (size_t i = 0;
         rc == ST_NOT_FOUND && i < sizeof(event_kinds) / sizeof(event_kinds[0]);
         i++) {
        if (strcmp(kind, event_kinds[i].name) == 0) {
            ev.kind = REMOTE_EVENT_REPORT;
            ev.report.kind = event_kinds[i].kind;
            rc = ST_OK;
            if (!decode_report(root, &ev)) {
                snprintf(why, whylen, "a %s event without its %s", kind,
                         ev.report.kind == REPORT_OUTPUT ? "output" : "test");
                rc = ST_PROTOCOL;
            }
        }
    }
    if (rc == ST_NOT_FOUND) {
        snprintf(why, whylen, "unknown event kind \"%.64s\"", kind);
    }
    if (rc == ST_OK) {
        *out = ev;
    } else {
        remote_event_cleanup(&ev);
    }
    json_decref(root);
    return rc;
}

/* ---- Requests --------------------------------------------------------- */

/* Sets key to the string s; false when s is not valid UTF-8. */
static bool set_str(json_t *o, const char *key, const char *s)
{
    json_t *v;

    if (!s) {
        return true;
    }
    v = json_string(s);
    return v && json_object_set_new(o, key, v) == 0;
}

static void set_duration(json_t *o, const char *key, int64_t ns)
{
    char text[64];

    if (ns > 0) {
        clock_format_duration(ns, text, sizeof(text));
        json_object_set_new(o, key, json_string(text));
    }
}

static void dump_into(json_t *o, struct buf *out)
{
    char *text = json_dumps(o, JSON_COMPACT);

    buf_adds(out, text);
    free(text);
}

int remote_json_run_request(const struct remote_run_request *req,
                            struct buf *out, char *why, size_t whylen)
{
    static const char *const names[] = {
        "suite",     "namespace",    "run",     "skip",        "pool",
        "reference", "initiated_by", "trigger", "environment",
    };
    const char *values[] = {
        req->suite,        req->ns,      req->run_filter,
        req->skip_filter,  req->pool,    req->reference,
        req->initiated_by, req->trigger, req->environment,
    };
    json_t *o = json_object();
    json_t *params = json_object();
    int rc = ST_OK;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && rc == ST_OK;
         i++) {
        if (!set_str(o, names[i], values[i])) {
            snprintf(why, whylen, "%s: not valid UTF-8", names[i]);
            rc = ST_INVALID;
        }
    }
    for (size_t i = 0; i < req->n_params && rc == ST_OK; i++) {
        /* json_object_set_new refuses a key that is not UTF-8 too. */
        if (!set_str(params, req->params[i].key, req->params[i].value)) {
            snprintf(why, whylen, "param %s: not valid UTF-8",
                     req->params[i].key);
            rc = ST_INVALID;
        }
    }
    if (rc == ST_OK) {
        if (req->n_params) {
            json_object_set(o, "params", params);
        }
        if (req->max_attempts > 0) {
            json_object_set_new(o, "max_attempts",
                                json_integer(req->max_attempts));
        }
        if (req->count > 0) {
            json_object_set_new(o, "count", json_integer(req->count));
        }
        set_duration(o, "timeout", req->timeout_ns);
        set_duration(o, "test_timeout", req->test_timeout_ns);
        set_duration(o, "queue_timeout", req->queue_timeout_ns);
        dump_into(o, out);
    }
    json_decref(params);
    json_decref(o);
    return rc;
}

int remote_json_cancel(const char *reason, struct buf *out, char *why,
                       size_t whylen)
{
    json_t *o = json_object();
    int rc = ST_OK;

    if (!set_str(o, "reason", reason)) {
        snprintf(why, whylen, "reason: not valid UTF-8");
        rc = ST_INVALID;
    } else {
        dump_into(o, out);
    }
    json_decref(o);
    return rc;
}

bool remote_json_error(const char *text, size_t len, struct remote_error *err)
{
    char why[256];
    json_t *root = load(text, len, why, sizeof(why));
    json_t *e = get(root, "error");
    json_t *message = get(e, "message");
    json_t *code = get(e, "code");
    bool ok = json_is_string(message);

    if (ok) {
        snprintf(err->message, sizeof(err->message), "%s",
                 json_string_value(message));
        snprintf(err->code, sizeof(err->code), "%s",
                 json_is_string(code) ? json_string_value(code) : "");
    }
    json_decref(root);
    return ok;
}

/* ---- Schedules ---------------------------------------------------------- */

void remote_schedule_cleanup(struct remote_schedule *s)
{
    for (size_t i = 0; i < s->n_ticks; i++) {
        free(s->ticks[i].outcome);
        free(s->ticks[i].reason);
        free(s->ticks[i].detail);
        free(s->ticks[i].run_id);
    }
    free(s->ticks);
    free(s->name);
    free(s->suite);
    free(s->ns);
    free(s->pool);
    free(s->expression);
    free(s->time_zone);
    free(s->overlap_policy);
    free(s->catch_up);
    memset(s, 0, sizeof(*s));
}

void remote_schedule_list_cleanup(struct remote_schedule_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        remote_schedule_cleanup(&l->schedules[i]);
    }
    free(l->schedules);
    memset(l, 0, sizeof(*l));
}

static void decode_ticks(const json_t *arr, struct remote_schedule *s)
{
    size_t i;
    json_t *v;

    if (!json_is_array(arr)) {
        return;
    }
    s->ticks = mem_calloc(json_array_size(arr) + 1, sizeof(*s->ticks));
    json_array_foreach(arr, i, v)
    {
        struct remote_schedule_tick *t = &s->ticks[s->n_ticks];

        t->outcome = get_str(v, "outcome");
        if (!t->outcome) {
            continue;
        }
        t->tick_ns = get_time(v, "tick_at");
        t->reason = get_str(v, "reason");
        t->detail = get_str(v, "detail");
        t->run_id = id_text(get(v, "run_id"));
        s->n_ticks++;
    }
}

/* Fills s from the object o; false when it has no name. */
static bool decode_schedule(const json_t *o, struct remote_schedule *s)
{
    memset(s, 0, sizeof(*s));
    s->name = get_str(o, "name");
    if (!s->name) {
        return false;
    }
    s->suite = get_str(o, "suite");
    s->ns = get_str(o, "namespace");
    s->pool = get_str(o, "pool");
    s->expression = get_str(o, "expression");
    s->time_zone = get_str(o, "time_zone");
    s->overlap_policy = get_str(o, "overlap_policy");
    s->catch_up = get_str(o, "catch_up");
    s->enabled = get_bool(o, "enabled");
    s->next_fire_ns = get_time(o, "next_fire_at");
    s->runs_fired = get_count(o, "runs_fired", 0);
    decode_ticks(get(o, "last_ticks"), s);
    return true;
}

int remote_json_schedule(const char *text, size_t len,
                         struct remote_schedule *out, char *why, size_t whylen)
{
    json_t *root = load(text, len, why, whylen);
    struct remote_schedule s;

    if (!root) {
        return ST_PROTOCOL;
    }
    if (!decode_schedule(root, &s)) {
        snprintf(why, whylen, "not a schedule object (no \"name\")");
        remote_schedule_cleanup(&s);
        json_decref(root);
        return ST_PROTOCOL;
    }
    *out = s;
    json_decref(root);
    return ST_OK;
}

int remote_json_schedules(const char *text, size_t len,
                          struct remote_schedule_list *out, char *why,
                          size_t whylen)
{
    json_t *root = load(text, len, why, whylen);
    struct remote_schedule_list l = {0};
    json_t *arr;
    size_t i;
    json_t *v;

    if (!root) {
        return ST_PROTOCOL;
    }
    arr = get(root, "schedules");
    if (!json_is_array(arr)) {
        snprintf(why, whylen, "no \"schedules\" array");
        json_decref(root);
        return ST_PROTOCOL;
    }
    l.schedules = mem_calloc(json_array_size(arr) + 1, sizeof(*l.schedules));
    json_array_foreach(arr, i, v)
    {
        if (decode_schedule(v, &l.schedules[l.n])) {
            l.n++;
        } else {
            remote_schedule_cleanup(&l.schedules[l.n]);
        }
    }
    *out = l;
    json_decref(root);
    return ST_OK;
}

int remote_json_schedule_request(const struct remote_schedule_request *req,
                                 struct buf *out, char *why, size_t whylen)
{
    static const char *const names[] = {
        "name",           "expression", "time_zone",
        "overlap_policy", "catch_up",   "end_at",
    };
    const char *values[] = {
        req->name,           req->expression, req->time_zone,
        req->overlap_policy, req->catch_up,   req->end_at,
    };
    struct buf run;
    json_error_t jerr;
    json_t *o = NULL;
    int rc;

    buf_init(&run, 0);
    rc = remote_json_run_request(&req->run, &run, why, whylen);
    if (rc == ST_OK) {
        o = json_loadb(run.data, run.len, 0, &jerr);
        rc = json_is_object(o) ? ST_OK : ST_INVALID;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && rc == ST_OK;
         i++) {
        if (!set_str(o, names[i], values[i])) {
            snprintf(why, whylen, "%s: not valid UTF-8", names[i]);
            rc = ST_INVALID;
        }
    }
    if (rc == ST_OK) {
        if (req->max_runs > 0) {
            json_object_set_new(o, "max_runs", json_integer(req->max_runs));
        }
        if (req->paused) {
            json_object_set_new(o, "enabled", json_false());
        }
        dump_into(o, out);
    }
    json_decref(o);
    buf_cleanup(&run);
    return rc;
}
