/* Load reports (common/loadreport*.c, common/loaddiff.c) rendered from the
 * fixtures in tests/data/load/: a passing closed-model run (passed.json),
 * an open-model run that failed its thresholds with 503s and timeouts
 * (failed.json), an aborted run that dropped iterations over several steps
 * (dropped.json) and one whose names carry markup, quotes, separators and
 * control characters (hostile.json). The text is checked line by line,
 * the JUnit with xmllint, the HTML for self-containment and escaping, the
 * reader against broken documents (every field of a fixture removed or
 * replaced in turn) and the comparison against known changes. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "buf.h"
#include "loaddiff.h"
#include "loadreport.h"

#define LOAD_DIR HANDOFF_TEST_DATA_DIR "/load/"

static json_t *fixture(const char *name)
{
    char path[512];
    json_error_t je;
    json_t *doc;

    snprintf(path, sizeof(path), LOAD_DIR "%s", name);
    doc = json_load_file(path, 0, &je);
    if (!doc) {
        fail_msg("%s:%d: %s", path, je.line, je.text);
    }
    return doc;
}

/* The value at a path of keys and array indexes ("requests.0.count"),
 * borrowed; fails the test when there is none. */
static json_t *at(json_t *root, const char *path)
{
    char copy[256];
    char *save = NULL;
    json_t *v = root;

    snprintf(copy, sizeof(copy), "%s", path);
    for (char *k = strtok_r(copy, ".", &save); k && v;
         k = strtok_r(NULL, ".", &save)) {
        v = json_is_array(v) ? json_array_get(v, strtoul(k, NULL, 10))
                             : json_object_get(v, k);
    }
    if (!v) {
        fail_msg("no %s", path);
    }
    return v;
}

/* Sets the last key of path in its parent (object or array) to v (taken),
 * or removes it when v is NULL. */
static void set(json_t *root, const char *path, json_t *v)
{
    char parent[256];
    const char *dot = strrchr(path, '.');
    const char *key = dot ? dot + 1 : path;
    json_t *p = root;

    if (dot) {
        snprintf(parent, sizeof(parent), "%.*s", (int)(dot - path), path);
        p = at(root, parent);
    }
    if (json_is_array(p)) {
        size_t i = strtoul(key, NULL, 10);

        if (v) {
            json_array_set_new(p, i, v);
        } else {
            json_array_remove(p, i);
        }
    } else if (v) {
        json_object_set_new(p, key, v);
    } else {
        json_object_del(p, key);
    }
}

static void scale(json_t *root, const char *path, double f)
{
    json_t *v = at(root, path);

    if (json_is_integer(v)) {
        json_integer_set(v, (json_int_t)((double)json_integer_value(v) * f));
    } else {
        json_real_set(v, json_real_value(v) * f);
    }
}

/* The renderers, as one switch for table-driven tests. */
enum view { TEXT, TEXT_COLOR, JUNIT, HTML };

static int render(enum view view, const json_t *doc, struct buf *out, char *err,
                  size_t errlen)
{
    switch (view) {
    case TEXT:
        return loadreport_text(doc, out, false, err, errlen);
    case TEXT_COLOR:
        return loadreport_text(doc, out, true, err, errlen);
    case JUNIT:
        return loadreport_junit(doc, out, err, errlen);
    case HTML:
    default:
        return loadreport_html(doc, out, err, errlen);
    }
}

static char *render_fixture(enum view view, const char *name)
{
    json_t *doc = fixture(name);
    struct buf out;
    char err[256];

    buf_init(&out, 0);
    assert_int_equal(render(view, doc, &out, err, sizeof(err)), ST_OK);
    json_decref(doc);
    return buf_detach(&out);
}

static void assert_has(const char *text, const char *want)
{
    if (!strstr(text, want)) {
        fail_msg("missing \"%s\" in:\n%s", want, text);
    }
}

static void assert_lacks(const char *text, const char *unwanted)
{
    const char *at_ = strstr(text, unwanted);

    if (at_) {
        fail_msg("unexpected \"%s\" at: %.120s", unwanted, at_);
    }
}

static size_t count_of(const char *text, const char *s)
{
    size_t n = 0;

    for (const char *p = strstr(text, s); p; p = strstr(p + 1, s)) {
        n++;
    }
    return n;
}

/* The widest line in code points. */
static size_t widest_line(const char *text)
{
    size_t widest = 0;
    size_t n = 0;

    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            widest = n > widest ? n : widest;
            n = 0;
        } else if (((unsigned char)*p & 0xC0) != 0x80) {
            n++;
        }
    }
    return n > widest ? n : widest;
}

/* --- reading --- */

static void test_parse_reads_every_section(void **state)
{
    json_t *doc = fixture("failed.json");
    struct loadreport *r = NULL;
    char err[256];

    (void)state;
    assert_int_equal(loadreport_parse(doc, &r, err, sizeof(err)), ST_OK);
    assert_string_equal(err, "");
    assert_string_equal(r->suite, "shop");
    assert_string_equal(r->workflow, "checkout");
    assert_string_equal(r->result, "failed");
    assert_string_equal(r->executor.type, "constant-arrival-rate");
    assert_int_equal(r->executor.max_vus, 200);
    assert_int_equal(r->shards, 2);
    assert_int_equal(r->completed, 14996);
    assert_int_equal(r->interrupted, 4);
    assert_int_equal(r->n_checks, 2);
    assert_int_equal(r->n_steps, 2);
    assert_int_equal(r->n_requests, 2);
    assert_int_equal(r->n_thresholds, 4);
    assert_int_equal(r->n_series, 30);
    assert_string_equal(r->requests[1].name, "GET /orders/{id}");
    assert_int_equal(r->requests[1].failed, 412);
    /* Status codes come sorted by number whatever the document's order. */
    assert_int_equal(r->requests[1].n_status, 3);
    assert_string_equal(r->requests[1].status[0].key, "0");
    assert_string_equal(r->requests[1].status[1].key, "200");
    assert_string_equal(r->requests[1].status[2].key, "503");
    assert_int_equal(r->requests[1].n_errors, 1);
    assert_true(r->requests[0].has_timing[LOADREPORT_WAITING]);
    assert_int_equal(r->requests[0].n_buckets, 8);
    assert_false(r->thresholds[0].passed);
    assert_true(r->thresholds[2].passed);
    assert_int_equal(r->series[29].t_s, 30);
    loadreport_free(r);
    loadreport_free(NULL);
    json_decref(doc);
}

static void test_parse_ignores_unknown_fields(void **state)
{
    json_t *doc = fixture("passed.json");
    struct loadreport *r = NULL;

    (void)state;
    set(doc, "future", json_pack("{s:[i,i]}", "x", 1, 2));
    set(doc, "requests.0.future", json_string("y"));
    set(doc, "totals.timings.http_req_future", json_object());
    set(doc, "series.0.p99_99", json_real(1.5));
    assert_int_equal(loadreport_parse(doc, &r, NULL, 0), ST_OK);
    loadreport_free(r);
    json_decref(doc);
}

static void test_parse_leaves_optional_fields_out(void **state)
{
    json_t *doc = fixture("passed.json");
    struct loadreport *r = NULL;
    char err[256];

    (void)state;
    set(doc, "ended_at", NULL);
    set(doc, "abort_reason", NULL);
    set(doc, "shards", NULL);
    set(doc, "vus", NULL);
    set(doc, "executor", json_pack("{s:s}", "type", "constant-vus"));
    set(doc, "requests.0.errors", NULL);
    set(doc, "requests.0.bytes_sent", NULL);
    set(doc, "requests.0.timings.http_req_blocked", NULL);
    assert_int_equal(loadreport_parse(doc, &r, err, sizeof(err)), ST_OK);
    assert_string_equal(r->ended_at, "");
    assert_int_equal(r->vus_max, 0);
    assert_false(r->requests[0].has_timing[LOADREPORT_BLOCKED]);
    loadreport_free(r);
    json_decref(doc);
}

struct broken {
    const char *path;  /* what is changed */
    const char *value; /* JSON to put there; NULL removes it */
    const char *err;   /* the message */
};

static const struct broken broken_docs[] = {
    {"schema", "\"handoff.load.report/2\"",
     "schema: \"handoff.load.report/2\" is not handoff.load.report/1"},
    {"schema", "1", "schema: not a string"},
    {"schema", NULL, "schema: missing"},
    {"id", NULL, "id: missing"},
    {"duration_ms", "\"10s\"", "duration_ms: not a number"},
    {"duration_ms", "-1", "duration_ms: not a number >= 0"},
    {"result", "\"maybe\"",
     "result: \"maybe\" is not passed, failed, aborted or error"},
    {"executor", "[]", "executor: not an object"},
    {"executor.type", NULL, "executor.type: missing"},
    {"executor.stages", "[{\"duration_ms\": 1}]",
     "executor.stages[0].target: missing"},
    {"iterations.dropped", "1.5", "iterations.dropped: not an integer >= 0"},
    {"iterations.duration", "[]", "iterations.duration: not an object"},
    {"iterations.duration.p99_9", NULL, "iterations.duration.p99_9: missing"},
    {"checks.0.fails", "-3", "checks[0].fails: not an integer >= 0"},
    {"requests", "{}", "requests: not an array"},
    {"requests.0", "\"GET /\"", "requests[0]: not an object"},
    {"requests.0.count", "\"12\"", "requests[0].count: not an integer >= 0"},
    {"requests.0.name", "null", "requests[0].name: not a string"},
    {"requests.0.status", "{\"abc\": 1}",
     "requests[0].status: key \"abc\" is not a status code"},
    {"requests.0.status.200", "true",
     "requests[0].status.200: not an integer >= 0"},
    {"requests.0.timings.http_req_latency.p95", NULL,
     "requests[0].timings.http_req_latency.p95: missing"},
    {"requests.0.timings.http_req_latency", NULL,
     "requests[0].timings.http_req_latency: missing"},
    {"requests.0.timings.http_req_waiting", "7",
     "requests[0].timings.http_req_waiting: not an object"},
    {"requests.0.buckets.0.high", "0.001",
     "requests[0].buckets[0].high: below low"},
    {"totals", NULL, "totals: missing"},
    {"totals.rate", "null", "totals.rate: not a number"},
    {"thresholds.1.passed", "\"yes\"", "thresholds[1].passed: not a boolean"},
    {"series.3", "5", "series[3]: not an object"},
    {"series.3.rps", NULL, "series[3].rps: missing"},
};

static void test_invalid_documents_name_the_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(broken_docs) / sizeof(*broken_docs); i++) {
        const struct broken *b = &broken_docs[i];
        json_t *doc = fixture("failed.json");
        json_t *v = NULL;

        if (b->value) {
            v = json_loads(b->value, JSON_DECODE_ANY, NULL);
            assert_non_null(v);
        }
        set(doc, b->path, v);
        for (enum view w = TEXT; w <= HTML; w++) {
            struct buf out;
            char err[256];

            buf_init(&out, 0);
            if (render(w, doc, &out, err, sizeof(err)) != ST_PROTOCOL) {
                fail_msg("%s: accepted", b->path);
            }
            if (strcmp(err, b->err) != 0) {
                fail_msg("%s: got \"%s\", want \"%s\"", b->path, err, b->err);
            }
            /* Nothing is written for a document that is refused. */
            assert_int_equal(out.len, 0);
            buf_cleanup(&out);
        }
        json_decref(doc);
    }
}

static void test_invalid_arguments(void **state)
{
    json_t *arr = json_array();
    struct loadreport *r = NULL;
    struct buf out;
    char err[64];

    (void)state;
    buf_init(&out, 0);
    assert_int_equal(loadreport_parse(NULL, &r, err, sizeof(err)), ST_INVALID);
    assert_int_equal(loadreport_text(NULL, &out, false, NULL, 0), ST_INVALID);
    assert_int_equal(loadreport_html(arr, &out, err, sizeof(err)), ST_PROTOCOL);
    assert_string_equal(err, "document: not a JSON object");
    /* A short err buffer is cut, still terminated. */
    assert_int_equal(loadreport_junit(arr, &out, err, 5), ST_PROTOCOL);
    assert_string_equal(err, "docu");
    assert_int_equal(out.len, 0);
    json_decref(arr);
}

/* Every value of a fixture, in turn, removed and replaced with null, a
 * string, a negative number and an empty array: each renderer accepts the
 * document or refuses it with a message, and never crashes (ASan runs
 * this too). */
/* A document is read the same way by every view: only one that reads
 * is rendered by each. */
static void check_all_views(const json_t *doc)
{
    struct loadreport *r = NULL;
    char err[256];
    int rc = loadreport_parse(doc, &r, err, sizeof(err));

    assert_true(rc == ST_OK || rc == ST_PROTOCOL);
    if (rc != ST_OK) {
        assert_true(err[0] != '\0');
        return;
    }
    loadreport_free(r);
    for (enum view w = TEXT; w <= HTML; w++) {
        struct buf out;

        buf_init(&out, 0);
        assert_int_equal(render(w, doc, &out, err, sizeof(err)), ST_OK);
        assert_true(out.len > 0);
        buf_cleanup(&out);
    }
}

static void mutate_all(json_t *root, json_t *node, size_t *cases)
{
    static const char *const replacements[] = {NULL, "null", "\"x\"",
                                               "-1", "[]",   "{}"};
    const char *key;
    json_t *child;
    json_t *keys;
    size_t i;

    if (json_is_array(node)) {
        /* The first element stands for the others. */
        if (json_array_size(node)) {
            mutate_all(root, json_array_get(node, 0), cases);
        }
        return;
    }
    if (!json_is_object(node)) {
        return;
    }
    /* Restoring a removed key moves it to the end: walk a snapshot. */
    keys = json_array();
    json_object_foreach(node, key, child)
    {
        json_array_append_new(keys, json_string(key));
    }
    json_array_foreach(keys, i, child)
    {
        const char *k = json_string_value(child);
        json_t *saved = json_incref(json_object_get(node, k));

        for (size_t r = 0; r < sizeof(replacements) / sizeof(*replacements);
             r++) {
            json_t *v = replacements[r]
                            ? json_loads(replacements[r], JSON_DECODE_ANY, NULL)
                            : NULL;

            if (v) {
                json_object_set_new(node, k, v);
            } else {
                json_object_del(node, k);
            }
            check_all_views(root);
            (*cases)++;
        }
        json_object_set_new(node, k, saved);
        mutate_all(root, saved, cases);
    }
    json_decref(keys);
}

static void test_no_document_crashes_a_renderer(void **state)
{
    json_t *doc = fixture("dropped.json");
    size_t cases = 0;

    (void)state;
    /* Fewer series points and buckets keep the walk fast. */
    while (json_array_size(at(doc, "series")) > 2) {
        json_array_remove(at(doc, "series"), 2);
    }
    mutate_all(doc, doc, &cases);
    print_message("%zu documents\n", cases);
    assert_true(cases > 500);
    json_decref(doc);
}

/* --- text --- */

static void test_text_summarises_a_passing_run(void **state)
{
    char *s = render_fixture(TEXT, "passed.json");

    (void)state;
    assert_has(s, "█ LOAD RUN  examples/get\n");
    assert_has(s, "test id .......: 7f3c9a52-1d4e-4b8a-9c61-2a5e0f1b7d30\n");
    assert_has(s, "result ........: ✓ passed\n");
    assert_has(s, "total time ....: 20.0s\n");
    assert_has(s, "executor ......: constant-vus, 10 VUs, 20s, graceful "
                  "stop 30s\n");
    assert_has(s, "successful ....: 19840 completed  991.8/s\n");
    assert_has(s, "failed ........: 0 (interrupted 0, dropped 0)\n");
    assert_has(s, "duration ......: avg=1.25ms min=310µs med=1.00ms "
                  "max=11.0ms p(90)=1.80ms p(95)=2.30ms\n");
    assert_has(s, "✓ http_req_failed: rate<0.01 ....");
    assert_has(s, "... observed 0.00%\n");
    assert_has(s, "✓ http_req_duration: p(95)<200ms ....");
    assert_has(s, "... observed 1.89ms\n");
    assert_has(s, "✓ status is 200 ....");
    assert_has(s, " 100.00%       19840 ✓          0 ✗\n");
    /* Without steps there are no step headings. */
    assert_lacks(s, "step ");
    assert_has(s, "    GET /\n");
    assert_has(s, "requests ......: 19840  991.8/s  failed 0.00% (0)\n");
    assert_has(s, "status ........: 200 × 19840\n");
    assert_has(s, "classes .......: 2xx 19840\n");
    assert_has(s, "      min      avg      p50      p90      p95      p99"
                  "    p99.9      max\n");
    assert_has(s, "        http_req_latency      275µs   1.11ms    886µs   "
                  "1.59ms   2.04ms   3.54ms   6.64ms   9.74ms\n");
    assert_has(s, "        http_req_duration     254µs   1.02ms    820µs   "
                  "1.48ms   1.89ms   3.28ms   6.15ms   9.02ms\n");
    assert_has(s, "latency distribution (http_req_latency)\n");
    assert_has(s, "     275µs – 430µs │██████████          ");
    assert_has(s, "   1587    8.00%\n");
    assert_has(s, "671µs – 1.05ms │████████████████████████████████████████"
                  "      6348   32.00%\n");
    assert_has(s, "█ ALL REQUESTS");
    assert_has(s, "data ..........: 3.6 MB sent, 47.6 MB received\n");
    assert_has(s, "          waiting             234µs");
    /* A phase nothing was measured in (no TLS) is left out. */
    assert_lacks(s, "tls handshake");
    assert_lacks(s, "WARNING");
    assert_lacks(s, "\033");
    assert_true(widest_line(s) <= 100);
    free(s);
}

/* A ramping-vus run's summary gives its graceful ramp-down; a negative
 * one is refused, naming the field. */
static void test_text_gives_the_graceful_ramp_down(void **state)
{
    json_t *doc = fixture("passed.json");
    json_t *ex = json_object_get(doc, "executor");
    struct buf out;
    char err[256];

    (void)state;
    json_object_set_new(ex, "type", json_string("ramping-vus"));
    json_object_set_new(ex, "graceful_ramp_down_ms", json_real(10000));
    buf_init(&out, 0);
    assert_int_equal(render(TEXT, doc, &out, err, sizeof(err)), ST_OK);
    assert_has(buf_str(&out), "executor ......: ramping-vus, 10 VUs, 20s, "
                              "graceful stop 30s, graceful ramp-down 10s\n");
    buf_reset(&out);
    json_object_set_new(ex, "graceful_ramp_down_ms", json_real(-1));
    assert_int_equal(render(TEXT, doc, &out, err, sizeof(err)), ST_PROTOCOL);
    assert_non_null(strstr(err, "executor.graceful_ramp_down_ms"));
    buf_cleanup(&out);
    json_decref(doc);
}

static void test_text_shows_failed_thresholds_and_errors(void **state)
{
    char *s = render_fixture(TEXT, "failed.json");

    (void)state;
    assert_has(s, "result ........: ✗ failed: 2 of 4 thresholds failed\n");
    assert_has(s, "executor ......: constant-arrival-rate, 500 iterations/s, "
                  "50 pre-allocated VUs, max 200 VUs,\n"
                  "                     30s, graceful stop 30s\n");
    assert_has(s, "shards ........: 2\n");
    assert_has(s, "failed ........: 4 (interrupted 4, dropped 0)\n");
    assert_has(s, "✗ http_req_duration{name:POST /login}: p(95)<200ms ...");
    assert_has(s, "... observed 309ms\n");
    assert_has(s, "✗ http_req_failed: rate<0.01 ...");
    assert_has(s, "... observed 1.37%\n");
    assert_has(s, "✓ checks{check:logged in}: rate>0.99 ...");
    assert_has(s, "... observed 100.00%\n");
    assert_has(s, "... observed 30000\n");
    assert_has(s, "✗ orders listed ...");
    assert_has(s, "   97.25%       14588 ✓        412 ✗\n");
    assert_has(s, "    step login\n      step duration .: avg=182ms");
    assert_has(s, "    step orders\n");
    assert_has(s, "      GET /orders/{id}\n");
    assert_has(s, "requests ......: 15000  499.8/s  failed 2.75% (412)\n");
    assert_has(s, "status ........: no response × 31  200 × 14588  "
                  "503 × 381\n");
    assert_has(s, "classes .......: 2xx 14588  5xx 381\n");
    assert_has(s, "errors ........: timeout 31\n");
    assert_true(strstr(s, "step login") < strstr(s, "step orders"));
    assert_true(widest_line(s) <= 100);
    free(s);
}

static void test_text_warns_when_iterations_were_dropped(void **state)
{
    char *s = render_fixture(TEXT, "dropped.json");
    const char *login;
    const char *browse;
    const char *checkout;

    (void)state;
    assert_has(s, "result ........: ✗ aborted: threshold http_req_failed: "
                  "rate<0.05 failed (abort_on_fail)\n");
    assert_has(s, "stages 20s:300,40s:300");
    assert_has(s, "failed ........: 1340 (interrupted 100, dropped 1240)\n");
    assert_has(s, "⚠ WARNING: 1240 iterations were dropped: no VU was free "
                  "to start them (max 100 VUs).\n"
                  "      Latencies may be under-reported: raise max VUs "
                  "until nothing is dropped.\n");
    /* Steps in the order their requests came, then the step without any. */
    login = strstr(s, "    step login\n");
    browse = strstr(s, "    step browse\n");
    checkout = strstr(s, "    step checkout\n");
    assert_non_null(login);
    assert_true(login < browse && browse < checkout);
    assert_true(checkout < strstr(s, "    step think\n"));
    assert_int_equal(count_of(s, "    step browse\n"), 1);
    assert_has(s, "      GET /products/{id}\n");
    assert_has(s, "errors ........: timeout 150  connect 60\n");
    assert_true(widest_line(s) <= 100);
    free(s);
}

static void test_text_colors_only_when_asked(void **state)
{
    char *plain = render_fixture(TEXT, "failed.json");
    char *color = render_fixture(TEXT_COLOR, "failed.json");

    (void)state;
    assert_lacks(plain, "\033[");
    assert_has(color, "\033[31m✗\033[0m");
    assert_has(color, "\033[32m✓\033[0m");
    free(plain);
    free(color);
}

static void test_text_cleans_control_characters(void **state)
{
    char *s = render_fixture(TEXT, "hostile.json");

    (void)state;
    /* The step's ESC [31m would turn the terminal red. */
    assert_lacks(s, "\033");
    assert_has(s, "step step <b>&amp;</b>?[31m\n");
    assert_has(s, "GET /search?q=</script><script>alert(\"x\")</script>"
                  "&a='1'\xe2\x80\xa8<!--\n");
    free(s);
}

/* --- JUnit --- */

/* Runs xmllint on xml: --noout, or with --xpath expr into out. Returns
 * its exit status, or -1 when xmllint is not installed. */
static int xmllint(const char *xml, const char *xpath, char *out, size_t n)
{
    char path[] = "/tmp/handoff-test-loadreport-XXXXXX";
    char cmd[1024];
    int fd = mkstemp(path);
    FILE *f;
    int rc;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
    close(fd);
    if (xpath) {
        snprintf(cmd, sizeof(cmd), "xmllint --xpath '%s' %s 2>&1", xpath, path);
    } else {
        snprintf(cmd, sizeof(cmd), "xmllint --noout %s 2>&1", path);
    }
    f = popen(cmd, "r");
    assert_non_null(f);
    n = fread(out, 1, n - 1, f);
    out[n] = '\0';
    if (n && out[n - 1] == '\n') {
        out[n - 1] = '\0';
    }
    rc = pclose(f);
    unlink(path);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127) {
        return -1;
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

static void assert_xpath(const char *xml, const char *xpath, const char *want)
{
    char got[4096];

    assert_int_equal(xmllint(xml, xpath, got, sizeof(got)), 0);
    if (strcmp(got, want) != 0) {
        fail_msg("%s: got \"%s\", want \"%s\"", xpath, got, want);
    }
}

static void test_junit_is_well_formed_with_one_case_per_threshold(void **state)
{
    char *x = render_fixture(JUNIT, "failed.json");
    char out[4096];

    (void)state;
    if (xmllint(x, NULL, out, sizeof(out)) == -1) {
        free(x);
        skip();
    }
    assert_int_equal(xmllint(x, NULL, out, sizeof(out)), 0);
    assert_xpath(x, "count(//testsuite)", "1");
    assert_xpath(x, "string(//testsuite/@name)", "checkout");
    assert_xpath(x, "string(//testsuite/@timestamp)", "2026-11-24T09:30:00");
    assert_xpath(x, "count(//testcase)", "5");
    assert_xpath(x, "string(//testsuite/@tests)", "5");
    assert_xpath(x, "string(//testsuite/@failures)", "2");
    assert_xpath(x, "count(//testcase/failure)", "2");
    assert_xpath(x, "count(//testcase/error)", "0");
    assert_xpath(x, "string(//testcase[1]/@name)", "run");
    assert_xpath(x, "string(//testcase[1]/@classname)", "shop.checkout");
    assert_xpath(x,
                 "string(//testcase[@name=\"http_req_failed: rate<0.01\"]"
                 "/failure/@message)",
                 "observed 1.37%, want rate<0.01");
    assert_xpath(x,
                 "string(//property[@name=\"iterations_interrupted\"]"
                 "/@value)",
                 "4");
    free(x);
}

static void test_junit_run_case_errors_when_the_run_aborted(void **state)
{
    char *x = render_fixture(JUNIT, "dropped.json");
    char *ok = render_fixture(JUNIT, "passed.json");
    char out[64];

    (void)state;
    assert_has(x, "<testcase classname=\"shop.browse_and_buy\" name=\"run\" "
                  "time=\"45.200\">\n      <error message=\"aborted: "
                  "threshold http_req_failed: rate&lt;0.05 failed "
                  "(abort_on_fail)\" type=\"aborted\">");
    assert_has(x, "errors=\"1\"");
    assert_has(x, "<system-err>handoff: 1240 iterations were dropped");
    assert_lacks(ok, "<failure");
    assert_lacks(ok, "<error");
    assert_has(ok, "name=\"run\" time=\"20.004\"/>");
    if (xmllint(x, NULL, out, sizeof(out)) != -1) {
        assert_int_equal(xmllint(x, NULL, out, sizeof(out)), 0);
        assert_xpath(x, "count(//testcase/failure)", "3");
        assert_xpath(x, "string(//testsuite/@failures)", "3");
    }
    free(x);
    free(ok);
}

static void test_junit_escapes_names(void **state)
{
    char *x = render_fixture(JUNIT, "hostile.json");
    char out[4096];

    (void)state;
    assert_lacks(x, "</script>");
    assert_has(x, "<testsuite name=\"xss&quot;&lt;/script&gt;\"");
    assert_has(x, "GET /search?q=&lt;/script&gt;&lt;script&gt;alert(&quot;"
                  "x&quot;)&lt;/script&gt;&amp;a=&apos;1&apos;");
    if (xmllint(x, NULL, out, sizeof(out)) != -1) {
        assert_int_equal(xmllint(x, NULL, out, sizeof(out)), 0);
        assert_xpath(x, "string(//testsuite/@name)", "xss\"</script>");
    }
    free(x);
}

/* --- HTML --- */

/* Equal documents, numbers compared by value: the page writes 20004.0 as
 * 20004, as JavaScript does. */
static bool same_json(const json_t *a, const json_t *b)
{
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_number(a) && json_is_number(b)) {
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return false;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) {
            return false;
        }
        json_object_foreach((json_t *)a, key, v)
        {
            if (!same_json(v, json_object_get(b, key))) {
                return false;
            }
        }
        return true;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) {
            return false;
        }
        json_array_foreach(a, i, v)
        {
            if (!same_json(v, json_array_get(b, i))) {
                return false;
            }
        }
        return true;
    }
    return json_equal(a, b);
}

/* The embedded document: what lies between the JSON script's tags. */
static json_t *embedded(const char *html)
{
    static const char open[] =
        "<script type=\"application/json\" id=\"report-data\">";
    const char *start = strstr(html, open);
    const char *end;
    json_error_t je;
    json_t *doc;

    assert_non_null(start);
    start += strlen(open);
    end = strstr(start, "</script>");
    assert_non_null(end);
    doc = json_loadb(start, (size_t)(end - start), 0, &je);
    if (!doc) {
        fail_msg("embedded JSON: %s", je.text);
    }
    return doc;
}

static void test_html_is_self_contained(void **state)
{
    static const char *const fixtures[] = {"passed.json", "failed.json",
                                           "dropped.json", "hostile.json"};

    (void)state;
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(*fixtures); i++) {
        char *h = render_fixture(HTML, fixtures[i]);
        json_t *doc = fixture(fixtures[i]);
        json_t *got = embedded(h);

        assert_true(strncmp(h, "<!DOCTYPE html>\n", 16) == 0);
        assert_has(h, "</html>\n");
        /* Nothing to fetch: no URL, no external script, style or image. */
        assert_lacks(h, "http://");
        assert_lacks(h, "https://");
        assert_lacks(h, "src=");
        assert_lacks(h, "<link");
        assert_lacks(h, "@import");
        assert_lacks(h, "url(");
        assert_has(h, "content=\"default-src 'none'; style-src "
                      "'unsafe-inline'; script-src 'unsafe-inline'\"");
        /* The page carries the whole report, unknown fields included. */
        assert_true(same_json(doc, got));
        assert_has(h, "<figure id=\"chart-rps\">");
        assert_has(h, "<figure id=\"chart-latency\">");
        assert_has(h, "<figure id=\"chart-errors\">");
        assert_has(h, "<figure id=\"chart-vus\">");
        json_decref(got);
        json_decref(doc);
        free(h);
    }
}

static void test_html_tables_list_requests_checks_and_thresholds(void **state)
{
    char *h = render_fixture(HTML, "failed.json");

    (void)state;
    assert_has(h, "<title>shop/checkout — load run failed</title>");
    assert_has(h, "<span class=\"badge bad\" id=\"result\">failed</span>");
    assert_has(h, "<tr><td class=\"l\">login</td><td class=\"l\">POST "
                  "/login</td><td>15000</td><td>499.8/s</td><td>0.00%</td>"
                  "<td>104ms</td>");
    assert_has(h, "<td class=\"l\">GET /orders/{id}</td>");
    assert_has(h, "no response&#xD7;31");
    assert_has(h, "<span class=\"bad\">503&#xD7;381</span>");
    assert_has(h, "<span class=\"bad\">timeout&#xD7;31</span>");
    assert_has(h, "<td class=\"bad\">✗</td><td class=\"l\">http_req_failed: "
                  "rate&lt;0.01</td><td>1.37%</td>");
    assert_has(h, "<td class=\"l\">orders listed</td><td>97.25%</td>");
    assert_has(h, "<tr class=\"total\">");
    assert_has(h, "<table class=\"buckets\">");
    assert_has(h, "style=\"width:100.0%\"");
    assert_lacks(h, "id=\"dropped\"");
    free(h);
    h = render_fixture(HTML, "dropped.json");
    assert_has(h, "<div class=\"warn\" id=\"dropped\">1240 iterations were "
                  "dropped");
    assert_has(h, "<div class=\"warn\" id=\"abort\">Run aborted: threshold "
                  "http_req_failed: rate&lt;0.05 failed (abort_on_fail)");
    free(h);
}

static void test_html_escapes_hostile_names(void **state)
{
    char *h = render_fixture(HTML, "hostile.json");

    (void)state;
    /* The only </script> are the two script elements' own. */
    assert_int_equal(count_of(h, "</script"), 2);
    assert_int_equal(count_of(h, "<script"), 2);
    assert_lacks(h, "<!--");
    assert_lacks(h, "\xe2\x80\xa8\"");
    assert_lacks(h, "<b>&amp;");
    assert_has(h, "\\u003c/script\\u003e\\u003cscript\\u003ealert(\\\"x\\\")");
    assert_has(h, "\\u2028");
    assert_has(h, "<title>examples/xss&quot;&lt;/script&gt; — load run");
    assert_has(h, "<td class=\"l\">GET /search?q=&lt;/script&gt;&lt;script"
                  "&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;a=&apos;1"
                  "&apos;");
    assert_has(h, "<td class=\"l\">step &lt;b&gt;&amp;amp;&lt;/b&gt;\\x1b[31m"
                  "</td>");
    assert_has(h, "body has &quot;&lt;/script&gt;&quot; &amp; &lt;tag&gt;");
    free(h);
}

/* --- comparing --- */

static json_t *diff_of(json_t *a, json_t *b, double tolerance)
{
    json_t *d = NULL;
    char err[256];

    if (loaddiff(a, b, tolerance, &d, err, sizeof(err)) != ST_OK) {
        fail_msg("loaddiff: %s", err);
    }
    return d;
}

static bool flagged(json_t *d, const char *path)
{
    return json_is_true(at(d, path));
}

static void test_diff_flags_a_slower_p95(void **state)
{
    json_t *a = fixture("failed.json");
    json_t *b = fixture("failed.json");
    json_t *d;

    (void)state;
    scale(b, "requests.0.timings.http_req_latency.p95", 1.5);
    d = diff_of(a, b, -1);
    assert_string_equal(json_string_value(at(d, "schema")), LOADDIFF_SCHEMA);
    assert_true(json_real_value(at(d, "tolerance")) == 0.10);
    assert_true(loaddiff_has_regression(d));
    assert_int_equal(json_integer_value(at(d, "regressions")), 1);
    assert_true(flagged(d, "requests.0.regression"));
    assert_true(flagged(d, "requests.0.p95.regression"));
    assert_false(flagged(d, "requests.0.p99.regression"));
    assert_false(flagged(d, "requests.1.regression"));
    assert_string_equal(json_string_value(at(d, "requests.0.metric")),
                        "http_req_latency");
    assert_string_equal(json_string_value(at(d, "requests.0.change")),
                        "compared");
    assert_true(json_real_value(at(d, "requests.0.p95.relative")) > 0.49);
    assert_string_equal(json_string_value(at(d, "requests.0.reasons.0")),
                        "p95 +50.0% (334ms -> 501ms)");
    /* Within a wider tolerance it is no regression. */
    json_decref(d);
    d = diff_of(a, b, 0.6);
    assert_false(loaddiff_has_regression(d));
    json_decref(d);
    json_decref(a);
    json_decref(b);
}

static void test_diff_does_not_flag_improvements_or_noise(void **state)
{
    json_t *a = fixture("failed.json");
    json_t *b = fixture("failed.json");
    json_t *c = fixture("passed.json");
    json_t *e = fixture("passed.json");
    json_t *d;

    (void)state;
    scale(b, "requests.0.timings.http_req_latency.p95", 0.5);
    scale(b, "requests.0.timings.http_req_latency.p99", 0.5);
    scale(b, "requests.1.failed", 0.1);
    scale(b, "requests.1.timings.http_req_latency.p99", 1.08);
    d = diff_of(a, b, -1);
    assert_false(loaddiff_has_regression(d));
    assert_false(flagged(d, "requests.1.p99.regression"));
    assert_true(json_real_value(at(d, "requests.0.p95.delta")) < 0);
    json_decref(d);
    /* +30 % of 2 ms is below the 1 ms floor. */
    scale(e, "requests.0.timings.http_req_latency.p95", 1.3);
    d = diff_of(c, e, -1);
    assert_false(flagged(d, "requests.0.p95.regression"));
    json_decref(d);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(e);
}

static void test_diff_flags_a_higher_error_rate(void **state)
{
    json_t *a = fixture("failed.json");
    json_t *b = fixture("failed.json");
    json_t *d;

    (void)state;
    /* 412 -> 600 of 15000: 2.75 % -> 4.00 %, 1.25 points. */
    set(b, "requests.1.failed", json_integer(600));
    d = diff_of(a, b, -1);
    assert_true(flagged(d, "requests.1.error_rate.regression"));
    assert_string_equal(json_string_value(at(d, "requests.1.reasons.0")),
                        "error rate +1.25 points (2.75% -> 4.00%)");
    json_decref(d);
    /* 2 points of tolerance let it pass. */
    d = diff_of(a, b, 2.0);
    assert_false(flagged(d, "requests.1.error_rate.regression"));
    json_decref(d);
    json_decref(a);
    json_decref(b);
}

static void test_diff_lists_added_and_removed_requests(void **state)
{
    json_t *a = fixture("failed.json");
    json_t *b = fixture("failed.json");
    json_t *d;
    struct buf out;
    char err[256];

    (void)state;
    set(b, "requests.1.name", json_string("GET /orders"));
    d = diff_of(a, b, -1);
    assert_int_equal(json_array_size(at(d, "requests")), 3);
    assert_string_equal(json_string_value(at(d, "requests.1.change")),
                        "removed");
    assert_string_equal(json_string_value(at(d, "requests.1.name")),
                        "GET /orders/{id}");
    assert_true(json_is_null(at(d, "requests.1.p95.b")));
    assert_string_equal(json_string_value(at(d, "requests.2.change")), "added");
    assert_string_equal(json_string_value(at(d, "requests.2.name")),
                        "GET /orders");
    assert_true(json_is_null(at(d, "requests.2.p95.a")));
    assert_false(loaddiff_has_regression(d));

    buf_init(&out, 0);
    assert_int_equal(loaddiff_text(d, &out, err, sizeof(err)), ST_OK);
    assert_has(buf_str(&out),
               "\n  - orders · GET /orders/{id}  (removed: only in A)  "
               "[http_req_latency]\n      count 15000, p50 15.3ms, p95 "
               "42.3ms, p99 73.6ms, rate 499.8/s, errors 2.75%\n");
    assert_has(buf_str(&out), "\n  + orders · GET /orders  (added: only "
                              "in B)");
    assert_has(buf_str(&out), "\n  ✓ no regression\n");
    buf_cleanup(&out);
    json_decref(d);
    json_decref(a);
    json_decref(b);
}

static void test_diff_judges_the_rate_of_closed_models_only(void **state)
{
    json_t *a = fixture("passed.json");
    json_t *b = fixture("passed.json");
    json_t *c = fixture("failed.json");
    json_t *e = fixture("failed.json");
    json_t *d;

    (void)state;
    scale(b, "totals.rate", 0.8);
    d = diff_of(a, b, -1);
    assert_true(flagged(d, "totals.rate.regression"));
    json_decref(d);
    /* Under an arrival-rate executor the test sets the rate. */
    scale(e, "totals.rate", 0.8);
    d = diff_of(c, e, -1);
    assert_false(flagged(d, "totals.rate.regression"));
    json_decref(d);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(e);
}

static void test_diff_flags_a_worse_result_and_drops(void **state)
{
    json_t *a = fixture("passed.json");
    json_t *b = fixture("passed.json");
    json_t *d;
    struct buf out;
    char err[256];

    (void)state;
    set(b, "result", json_string("failed"));
    set(b, "iterations.dropped", json_integer(100));
    set(b, "executor.vus", json_integer(20));
    d = diff_of(a, b, -1);
    assert_true(flagged(d, "run.regression"));
    assert_string_equal(json_string_value(at(d, "run.reasons.0")),
                        "result passed -> failed");
    assert_string_equal(json_string_value(at(d, "run.reasons.1")),
                        "dropped iterations +0.50 points (0.00% -> 0.50%)");
    assert_string_equal(json_string_value(at(d, "warnings.0")),
                        "the executors' options differ: the load was not "
                        "the same");
    assert_string_equal(json_string_value(at(d, "warnings.1")),
                        "B dropped 100 iterations: its latencies may be "
                        "under-reported");
    buf_init(&out, 0);
    assert_int_equal(loaddiff_text(d, &out, err, sizeof(err)), ST_OK);
    assert_has(buf_str(&out), "\n  run  result passed -> failed\n");
    assert_has(buf_str(&out), "      dropped          0.00%       0.50%    "
                              "+0.50 pts           ✗ regression\n");
    assert_has(buf_str(&out), "⚠ the executors' options differ");
    assert_has(buf_str(&out), "\n  ✗ 1 regression\n");
    buf_cleanup(&out);
    json_decref(d);
    json_decref(a);
    json_decref(b);
}

static void test_diff_text_shows_both_runs_and_changes(void **state)
{
    json_t *a = fixture("failed.json");
    json_t *b = fixture("failed.json");
    json_t *d;
    struct buf out;
    char err[256];

    (void)state;
    set(b, "id", json_string("b-run"));
    scale(b, "requests.0.timings.http_req_latency.p99", 1.3);
    d = diff_of(a, b, -1);
    buf_init(&out, 0);
    assert_int_equal(loaddiff_text(d, &out, err, sizeof(err)), ST_OK);
    assert_has(buf_str(&out), "A (baseline) .: shop/checkout  failed  "
                              "2026-11-24T09:30:00.000Z\n"
                              "                    id "
                              "c1d2e3f4-0a1b-4c2d-8e3f-5a6b7c8d9e0f\n");
    assert_has(buf_str(&out), "B ............: shop/checkout  failed  "
                              "2026-11-24T09:30:00.000Z\n"
                              "                    id b-run\n");
    assert_has(buf_str(&out), "tolerance ....: p95/p99 10% slower (and at "
                              "least 1ms), error rate +0.10 points\n");
    assert_has(buf_str(&out), "\n  ✗ login · POST /login  "
                              "[http_req_latency]\n");
    assert_has(buf_str(&out), "      p99              755ms       981ms       "
                              "+226ms   +30.0%  ✗ regression\n");
    assert_has(buf_str(&out), "      p95              334ms       334ms       "
                              "  +0ms    +0.0%\n");
    assert_has(buf_str(&out), "      errors           2.75%       2.75%    "
                              "+0.00 pts\n");
    assert_has(buf_str(&out), "\n  ✓ all requests  [http_req_latency]\n");
    assert_true(widest_line(buf_str(&out)) <= 100);
    buf_cleanup(&out);
    json_decref(d);
    json_decref(a);
    json_decref(b);
}

static void test_diff_refuses_invalid_input(void **state)
{
    json_t *a = fixture("passed.json");
    json_t *b = fixture("passed.json");
    json_t *d = NULL;
    struct buf out;
    char err[256];

    (void)state;
    set(b, "requests.0.count", NULL);
    assert_int_equal(loaddiff(a, b, -1, &d, err, sizeof(err)), ST_PROTOCOL);
    assert_string_equal(err, "b: requests[0].count: missing");
    assert_null(d);
    assert_int_equal(loaddiff(b, a, -1, &d, err, sizeof(err)), ST_PROTOCOL);
    assert_string_equal(err, "a: requests[0].count: missing");
    assert_int_equal(loaddiff(a, a, 0.0 / 0.0, &d, err, sizeof(err)),
                     ST_INVALID);
    assert_int_equal(loaddiff(a, NULL, -1, &d, err, sizeof(err)), ST_INVALID);

    /* A diff document is checked before it is written as text. */
    d = diff_of(a, a, -1);
    buf_init(&out, 0);
    set(d, "requests.0.p95.a", json_string("1"));
    assert_int_equal(loaddiff_text(d, &out, err, sizeof(err)), ST_PROTOCOL);
    assert_string_equal(err, "requests[0].p95.a: not a number or null");
    set(d, "schema", json_string(LOADREPORT_SCHEMA));
    assert_int_equal(loaddiff_text(d, &out, err, sizeof(err)), ST_PROTOCOL);
    assert_string_equal(err, "schema: not handoff.load.diff/1");
    assert_false(loaddiff_has_regression(d));
    assert_int_equal(out.len, 0);
    assert_int_equal(loaddiff_text(NULL, &out, err, sizeof(err)), ST_INVALID);
    buf_cleanup(&out);
    json_decref(d);
    json_decref(a);
    json_decref(b);
}

static void test_formats_values(void **state)
{
    static const struct {
        double ms;
        const char *want;
    } ms[] = {{0, "0ms"},         {0.0005, "0.50µs"}, {0.21, "210µs"},
              {0.9996, "1.00ms"}, {1.5, "1.50ms"},    {12.34, "12.3ms"},
              {412.5, "412ms"},   {999.6, "1.00s"},   {12100, "12.1s"},
              {125000, "2m05s"},  {7380000, "2h03m"}};
    static const struct {
        double f;
        const char *want;
    } pct[] = {{0, "0.00%"},
               {0.00003, "<0.01%"},
               {0.0137, "1.37%"},
               {0.99999, ">99.99%"},
               {1, "100.00%"}};
    char v[32];

    (void)state;
    for (size_t i = 0; i < sizeof(ms) / sizeof(*ms); i++) {
        loadreport_fmt_ms(v, sizeof(v), ms[i].ms);
        assert_string_equal(v, ms[i].want);
    }
    for (size_t i = 0; i < sizeof(pct) / sizeof(*pct); i++) {
        loadreport_fmt_pct(v, sizeof(v), pct[i].f);
        assert_string_equal(v, pct[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_reads_every_section),
        cmocka_unit_test(test_parse_ignores_unknown_fields),
        cmocka_unit_test(test_parse_leaves_optional_fields_out),
        cmocka_unit_test(test_invalid_documents_name_the_field),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_no_document_crashes_a_renderer),
        cmocka_unit_test(test_text_summarises_a_passing_run),
        cmocka_unit_test(test_text_gives_the_graceful_ramp_down),
        cmocka_unit_test(test_text_shows_failed_thresholds_and_errors),
        cmocka_unit_test(test_text_warns_when_iterations_were_dropped),
        cmocka_unit_test(test_text_colors_only_when_asked),
        cmocka_unit_test(test_text_cleans_control_characters),
        cmocka_unit_test(test_junit_is_well_formed_with_one_case_per_threshold),
        cmocka_unit_test(test_junit_run_case_errors_when_the_run_aborted),
        cmocka_unit_test(test_junit_escapes_names),
        cmocka_unit_test(test_html_is_self_contained),
        cmocka_unit_test(test_html_tables_list_requests_checks_and_thresholds),
        cmocka_unit_test(test_html_escapes_hostile_names),
        cmocka_unit_test(test_diff_flags_a_slower_p95),
        cmocka_unit_test(test_diff_does_not_flag_improvements_or_noise),
        cmocka_unit_test(test_diff_flags_a_higher_error_rate),
        cmocka_unit_test(test_diff_lists_added_and_removed_requests),
        cmocka_unit_test(test_diff_judges_the_rate_of_closed_models_only),
        cmocka_unit_test(test_diff_flags_a_worse_result_and_drops),
        cmocka_unit_test(test_diff_text_shows_both_runs_and_changes),
        cmocka_unit_test(test_diff_refuses_invalid_input),
        cmocka_unit_test(test_formats_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
