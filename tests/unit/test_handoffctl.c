/* handoffctl, run as a CI pipeline runs it, against a fake controller in
 * this process: libevent's evhttp on 127.0.0.1, its loop on a thread,
 * serving canned answers per docs/api.md, live event streams included
 * (one that ends, one that drops, one that goes silent). The expected
 * go-test and test2json output comes from feeding the very same events to
 * the report writers here, so "prints what the local runner prints" is
 * checked byte for byte. The client's parsers are also fed directly: the
 * SSE parser split at every byte, the JSON decoders every truncation of a
 * run and fields of the wrong type. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "clock.h"
#include "remote.h"
#include "remote_int.h"
#include "report.h"
#include "sse.h"

extern char **environ;

/* ---- Canned runs -------------------------------------------------------- */

/* One event of a run, as the local runner emits it. */
struct step {
    enum report_event_kind kind;
    const char *test;
    int attempt;      /* 0: 1 */
    int max_attempts; /* 0: attempt */
    enum result_kind result;
    bool soft_failure;
    bool flaky;
    bool retry;
    int64_t elapsed_ms;
    const char *output;
    const char *reason;
};

struct canned {
    int id;
    const char *suite;
    const char *ns;
    const char *result; /* once finished */
    const struct step *steps;
    size_t n_steps;
    size_t streamed; /* steps the live stream sends before run_end; fewer
                        than n_steps: the stream ends there, without it */
    bool silent;     /* the stream sends one comment, then nothing */
};

/* Every outcome: pass, fail, skip, soft failure, flaky (retried), crash,
 * timeout, with setup and teardown output. The run errored. */
static const struct step selftest_steps[] = {
    {.kind = REPORT_SUITE_START},
    {.kind = REPORT_OUTPUT,
     .output = "    selftest.c:10: setup: connecting to staging\n"},
    {.kind = REPORT_TEST_RUN, .test = "test_pass"},
    {.kind = REPORT_OUTPUT,
     .test = "test_pass",
     .output = "    selftest.c:16: hello\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_pass",
     .result = RESULT_PASSED,
     .elapsed_ms = 1},
    {.kind = REPORT_TEST_RUN, .test = "test_check_fails"},
    {.kind = REPORT_OUTPUT,
     .test = "test_check_fails",
     .output = "    selftest.c:25: check failed: x == 2\n"
               "        got:  1\n        want: 2\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_check_fails",
     .result = RESULT_FAILED,
     .elapsed_ms = 2},
    {.kind = REPORT_TEST_RUN, .test = "test_skip"},
    {.kind = REPORT_OUTPUT,
     .test = "test_skip",
     .output = "    selftest.c:30: not on staging\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_skip",
     .result = RESULT_SKIPPED,
     .reason = "not on staging"},
    {.kind = REPORT_TEST_RUN, .test = "test_soft_failure"},
    {.kind = REPORT_OUTPUT,
     .test = "test_soft_failure",
     .output = "    selftest.c:40: known issue #12\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_soft_failure",
     .result = RESULT_FAILED,
     .soft_failure = true},
    {.kind = REPORT_TEST_RUN, .test = "test_flaky", .max_attempts = 2},
    {.kind = REPORT_OUTPUT,
     .test = "test_flaky",
     .max_attempts = 2,
     .output = "    selftest.c:50: first attempt fails\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_flaky",
     .max_attempts = 2,
     .result = RESULT_FAILED,
     .retry = true,
     .elapsed_ms = 3},
    {.kind = REPORT_TEST_RUN,
     .test = "test_flaky",
     .attempt = 2,
     .max_attempts = 2},
    {.kind = REPORT_TEST_END,
     .test = "test_flaky",
     .attempt = 2,
     .max_attempts = 2,
     .result = RESULT_PASSED,
     .flaky = true,
     .elapsed_ms = 4},
    {.kind = REPORT_TEST_RUN, .test = "test_segfault"},
    {.kind = REPORT_OUTPUT,
     .test = "test_segfault",
     .output = "    selftest.c:60: about to crash\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_segfault",
     .result = RESULT_ERROR,
     .reason = "killed by signal SIGSEGV (segmentation fault)"},
    {.kind = REPORT_TEST_RUN, .test = "test_timeout"},
    {.kind = REPORT_TEST_END,
     .test = "test_timeout",
     .result = RESULT_ERROR,
     .elapsed_ms = 1000,
     .reason = "timed out after 1s"},
    {.kind = REPORT_OUTPUT, .output = "    selftest.c:90: teardown: done\n"},
    {.kind = REPORT_SUITE_END, .result = RESULT_ERROR, .elapsed_ms = 1306},
};

static const struct step passing_steps[] = {
    {.kind = REPORT_SUITE_START},
    {.kind = REPORT_TEST_RUN, .test = "test_pass"},
    {.kind = REPORT_OUTPUT,
     .test = "test_pass",
     .output = "    passing.c:5: fine\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_pass",
     .result = RESULT_PASSED,
     .elapsed_ms = 12},
    {.kind = REPORT_TEST_RUN, .test = "test_skip"},
    {.kind = REPORT_TEST_END,
     .test = "test_skip",
     .result = RESULT_SKIPPED,
     .reason = "filtered out by --skip"},
    {.kind = REPORT_SUITE_END, .result = RESULT_PASSED, .elapsed_ms = 20},
};

static const struct step dropping_steps[] = {
    {.kind = REPORT_SUITE_START},
    {.kind = REPORT_TEST_RUN, .test = "test_a"},
    {.kind = REPORT_OUTPUT, .test = "test_a", .output = "    d.c:1: a\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_a",
     .result = RESULT_PASSED,
     .elapsed_ms = 5},
    {.kind = REPORT_TEST_RUN, .test = "test_b"},
    {.kind = REPORT_OUTPUT, .test = "test_b", .output = "    d.c:2: b 1\n"},
    /* The stream drops here. */
    {.kind = REPORT_OUTPUT, .test = "test_b", .output = "    d.c:3: b 2\n"},
    {.kind = REPORT_TEST_END,
     .test = "test_b",
     .result = RESULT_FAILED,
     .elapsed_ms = 6},
    {.kind = REPORT_TEST_RUN, .test = "test_c"},
    {.kind = REPORT_TEST_END,
     .test = "test_c",
     .result = RESULT_PASSED,
     .elapsed_ms = 7},
    {.kind = REPORT_SUITE_END, .result = RESULT_FAILED, .elapsed_ms = 30},
};

#define N_STEPS(a) (sizeof(a) / sizeof((a)[0]))

static const struct canned canned_runs[] = {
    {42, "selftest", "handoff", "error", selftest_steps,
     N_STEPS(selftest_steps), N_STEPS(selftest_steps), false},
    {43, "passing", "handoff", "passed", passing_steps, N_STEPS(passing_steps),
     N_STEPS(passing_steps), false},
    {44, "dropping", "handoff", "failed", dropping_steps,
     N_STEPS(dropping_steps), 6, false},
    {45, "idle", "handoff", "passed", passing_steps, N_STEPS(passing_steps), 0,
     true},
};

static const struct canned *canned_by_id(int id)
{
    for (size_t i = 0; i < N_STEPS(canned_runs); i++) {
        if (canned_runs[i].id == id) {
            return &canned_runs[i];
        }
    }
    return NULL;
}

static const struct canned *canned_by_suite(const char *suite)
{
    for (size_t i = 0; i < N_STEPS(canned_runs); i++) {
        if (strcmp(canned_runs[i].suite, suite) == 0) {
            return &canned_runs[i];
        }
    }
    return NULL;
}

static int64_t base_ns(void)
{
    int64_t ns = 0;

    assert_int_equal(clock_parse_rfc3339("2026-11-23T10:00:00Z", &ns), 0);
    return ns;
}

/* Step i as the report writers take it, with the defaults handoffctl's
 * decoder applies to fields an event leaves out. */
static struct report_event step_event(const struct canned *c, size_t i)
{
    const struct step *s = &c->steps[i];
    struct report_event ev = {0};

    ev.kind = s->kind;
    ev.time_unix_ns = base_ns() + (int64_t)i * CLOCK_NS_PER_MS;
    ev.suite = c->suite;
    ev.ns = c->ns;
    ev.test = s->test;
    ev.attempt = s->attempt ? s->attempt : 1;
    ev.max_attempts = s->max_attempts ? s->max_attempts : ev.attempt;
    ev.result = s->result;
    ev.soft_failure = s->soft_failure;
    ev.flaky = s->flaky;
    ev.retry = s->retry;
    ev.elapsed_ns = s->elapsed_ms * CLOCK_NS_PER_MS;
    ev.output = s->output;
    ev.output_len = s->output ? strlen(s->output) : 0;
    ev.reason = s->reason;
    return ev;
}

enum format { TEXT, TEXT_VERBOSE, TEST2JSON };

/* What the local runner prints for the run's events. */
static char *expected_output(const struct canned *c, enum format format)
{
    char *data = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&data, &len);
    struct reporter *r;

    assert_non_null(f);
    r = format == TEST2JSON ? report_test2json_new(f)
                            : report_text_new(f, format == TEXT_VERBOSE);
    for (size_t i = 0; i < c->n_steps; i++) {
        struct report_event ev = step_event(c, i);

        report_emit(r, &ev);
    }
    report_free(r);
    fclose(f);
    return data;
}

static const char *const kind_names[] = {"suite_start", "test_run", "output",
                                         "test_end", "suite_end"};

static json_t *time_json(int64_t ns)
{
    char ts[CLOCK_RFC3339_LEN];

    return json_string(clock_format_rfc3339(ns, CLOCK_UTC, 0, ts));
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The SSE data of step i. */
static char *event_json(const struct canned *c, size_t i)
{
    struct report_event ev = step_event(c, i);
    json_t *o = json_object();
    char job[32];
    char *text;

    snprintf(job, sizeof(job), "%d.0", c->id);
    json_object_set_new(o, "run_id", json_integer(c->id));
    json_object_set_new(o, "job_id", json_string(job));
    json_object_set_new(o, "seq", json_integer((json_int_t)i + 1));
    json_object_set_new(o, "kind", json_string(kind_names[ev.kind]));
    json_object_set_new(o, "time", time_json(ev.time_unix_ns));
    json_object_set_new(o, "suite", json_string(c->suite));
    json_object_set_new(o, "namespace", json_string(c->ns));
    if (ev.test) {
        json_object_set_new(o, "test", json_string(ev.test));
        json_object_set_new(o, "attempt", json_integer(ev.attempt));
        json_object_set_new(o, "max_attempts", json_integer(ev.max_attempts));
    }
    if (ev.kind == REPORT_OUTPUT) {
        json_object_set_new(o, "output",
                            json_stringn(ev.output, ev.output_len));
    }
    if (ev.kind == REPORT_TEST_END || ev.kind == REPORT_SUITE_END) {
        json_object_set_new(o, "result",
                            json_string(result_kind_str(ev.result)));
        json_object_set_new(o, "elapsed_ms",
                            json_integer(c->steps[i].elapsed_ms));
        json_object_set_new(o, "reason", str_or_null(ev.reason));
    }
    if (ev.kind == REPORT_TEST_END) {
        json_object_set_new(o, "soft_failure", json_boolean(ev.soft_failure));
        json_object_set_new(o, "flaky", json_boolean(ev.flaky));
        json_object_set_new(o, "retry", json_boolean(ev.retry));
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* The event stream: every framing the format allows, in turn. */
static void add_sse_event(struct evbuffer *b, const struct canned *c, size_t i)
{
    char *data = event_json(c, i);
    const char *kind = kind_names[c->steps[i].kind];

    switch (i % 3) {
    case 0:
        evbuffer_add_printf(b, "event: %s\nid: %zu\ndata: %s\n\n", kind, i + 1,
                            data);
        break;
    case 1:
        evbuffer_add_printf(b, "event:%s\r\nid:%zu\r\ndata:%s\r\n\r\n", kind,
                            i + 1, data);
        break;
    default:
        evbuffer_add_printf(b,
                            ": keep-alive\nretry: 1000\nevent: %s\n"
                            "data: %s\n\n",
                            kind, data);
    }
    free(data);
}

static void append_log(json_t *o, const char *key, const char *text)
{
    json_t *old = json_object_get(o, key);
    char *joined;

    if (!text) {
        return;
    }
    joined = malloc(strlen(json_string_value(old)) + strlen(text) + 1);
    strcpy(joined, json_string_value(old));
    strcat(joined, text);
    json_object_set_new(o, key, json_string(joined));
    free(joined);
}

static json_t *phase_json(void)
{
    return json_pack("{s:b, s:s, s:i, s:n, s:s}", "ran", 1, "result", "passed",
                     "duration_ms", 1, "reason", "log", "");
}

/* The run object; with detail as GET /api/v1/runs/{id} gives it. Only
 * the first `upto` steps have happened; a run is finished once its
 * suite_end has. */
static json_t *run_object(const struct canned *c, bool detail, size_t upto)
{
    json_t *o = json_object();
    json_t *tests = json_array();
    json_t *attempt = NULL;
    json_t *setup = phase_json();
    json_t *teardown = phase_json();
    bool ended = upto == c->n_steps;
    bool seen_test = false;
    size_t n_tests = 0;
    int64_t passed = 0;
    int64_t failed = 0;
    int64_t skipped = 0;
    int64_t errors = 0;
    int64_t soft = 0;
    int64_t flaky = 0;
    char job[32];
    size_t i;
    json_t *t;

    for (i = 0; i < upto; i++) {
        const struct step *s = &c->steps[i];
        struct report_event ev = step_event(c, i);

        if (s->kind == REPORT_TEST_RUN) {
            seen_test = true;
            if (ev.attempt == 1) {
                json_array_append_new(tests, json_pack("{s:s, s:[]}", "name",
                                                       s->test, "attempts"));
            }
            t = json_array_get(tests, json_array_size(tests) - 1);
            attempt = json_pack("{s:i, s:i, s:s, s:n, s:b, s:o, s:i, s:n, "
                                "s:s, s:i, s:{}, s:[]}",
                                "attempt", ev.attempt, "job_attempt", 1,
                                "worker", "worker-a", "result", "soft_failure",
                                0, "started_at", time_json(ev.time_unix_ns),
                                "duration_ms", 0, "reason", "log", "",
                                "log_dropped", 0, "values", "spans");
            json_array_append_new(json_object_get(t, "attempts"), attempt);
        } else if (s->kind == REPORT_OUTPUT && s->test) {
            append_log(attempt, "log", s->output);
        } else if (s->kind == REPORT_OUTPUT) {
            append_log(seen_test ? teardown : setup, "log", s->output);
        } else if (s->kind == REPORT_TEST_END) {
            json_object_set_new(attempt, "result",
                                json_string(result_kind_str(s->result)));
            json_object_set_new(attempt, "soft_failure",
                                json_boolean(s->soft_failure));
            json_object_set_new(attempt, "duration_ms",
                                json_integer(s->elapsed_ms));
            json_object_set_new(attempt, "reason", str_or_null(s->reason));
        }
    }
    /* A value and a span, as tests record them. */
    t = json_array_get(tests, 0);
    if (t) {
        attempt = json_array_get(json_object_get(t, "attempts"), 0);
        json_object_set_new(json_object_get(attempt, "values"), "request_id",
                            json_string("req-7f3a"));
        json_array_append_new(json_object_get(attempt, "spans"),
                              json_pack("{s:s, s:o, s:f, s:{s:s}}", "name",
                                        "create order", "started_at",
                                        time_json(base_ns()), "duration_ms",
                                        12.5, "attrs", "http.status", "201"));
    }
    json_array_foreach(tests, i, t)
    {
        json_t *attempts = json_object_get(t, "attempts");
        json_t *last = json_array_get(attempts, json_array_size(attempts) - 1);
        const char *res = json_string_value(json_object_get(last, "result"));
        bool is_soft = json_is_true(json_object_get(last, "soft_failure"));
        bool is_flaky =
            res && strcmp(res, "passed") == 0 && json_array_size(attempts) > 1;

        n_tests++;
        if (!res) {
            continue;
        }
        passed += strcmp(res, "passed") == 0;
        failed += strcmp(res, "failed") == 0;
        skipped += strcmp(res, "skipped") == 0;
        errors += strcmp(res, "error") == 0;
        soft += is_soft;
        flaky += is_flaky;
        json_object_set_new(t, "result", json_string(res));
        json_object_set_new(t, "flaky", json_boolean(is_flaky));
        json_object_set_new(t, "soft_failure", json_boolean(is_soft));
    }
    snprintf(job, sizeof(job), "%d.0", c->id);
    json_object_set_new(o, "id", json_integer(c->id));
    json_object_set_new(o, "suite", json_string(c->suite));
    json_object_set_new(o, "namespace", json_string(c->ns));
    json_object_set_new(o, "pool", json_string("default"));
    json_object_set_new(o, "state",
                        json_string(ended  ? "finished"
                                    : upto ? "running"
                                           : "queued"));
    json_object_set_new(o, "result",
                        ended ? json_string(c->result) : json_null());
    json_object_set_new(o, "reason", json_null());
    json_object_set_new(o, "trigger", json_string("cli"));
    json_object_set_new(o, "initiated_by", json_string("ci@runner-7"));
    json_object_set_new(o, "reference", json_string("9f3c2e1"));
    json_object_set_new(o, "environment", json_string("staging"));
    json_object_set_new(
        o, "params",
        json_pack("{s:s}", "base_url", "https://staging.example.com"));
    json_object_set_new(o, "run", json_null());
    json_object_set_new(o, "skip", json_null());
    json_object_set_new(o, "count", json_integer(1));
    json_object_set_new(o, "max_attempts", json_null());
    json_object_set_new(o, "timeout_ms", json_integer(3600000));
    json_object_set_new(o, "test_timeout_ms", json_null());
    json_object_set_new(o, "queue_timeout_ms", json_integer(600000));
    json_object_set_new(o, "created_at", time_json(base_ns()));
    json_object_set_new(o, "started_at",
                        upto ? time_json(base_ns()) : json_null());
    json_object_set_new(
        o, "finished_at",
        ended ? time_json(base_ns() + (int64_t)upto * CLOCK_NS_PER_MS)
              : json_null());
    json_object_set_new(o, "duration_ms",
                        ended
                            ? json_integer(c->steps[c->n_steps - 1].elapsed_ms)
                            : json_null());
    json_object_set_new(o, "flaky", json_boolean(flaky > 0));
    json_object_set_new(
        o, "counts",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "tests",
                  (json_int_t)n_tests, "passed", (json_int_t)passed, "failed",
                  (json_int_t)failed, "skipped", (json_int_t)skipped, "error",
                  (json_int_t)errors, "soft_failures", (json_int_t)soft,
                  "flaky", (json_int_t)flaky));
    json_object_set_new(o, "jobs",
                        json_pack("[{s:s, s:s, s:i, s:s}]", "id", job, "state",
                                  ended ? "done" : "running", "attempts", 1,
                                  "worker", "worker-a"));
    if (detail) {
        json_object_set_new(o, "setup", setup);
        json_object_set_new(o, "teardown", teardown);
        json_object_set_new(o, "log", json_string(""));
        json_object_set_new(o, "tests", tests);
    } else {
        json_decref(setup);
        json_decref(teardown);
        json_decref(tests);
    }
    return o;
}

static char *run_text(const struct canned *c, bool detail, size_t upto)
{
    json_t *o = run_object(c, detail, upto);
    char *text = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    return text;
}

/* ---- The fake controller ------------------------------------------------ */

struct fake {
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    int port;
    char url[64];
    pthread_mutex_t mu; /* guards what follows */
    char *post_body;
    char *idempotency_key;
    char *authorization;
    char *cancel_body;
    char *queries[8];
    int n_queries;
    int polls[64]; /* GET /api/v1/runs/{id} per id */
    /* Streams left open. libevent hands a request whose client went away
     * back to its user, so each is ended (and so freed) at the stop. */
    struct evhttp_request *open_streams[8];
    int n_open_streams;
    struct evhttp_request *unanswered[8]; /* the same for plain requests */
    int n_unanswered;
    int streams[64];
    int cancels[64];
};

static struct fake fake;

static char *input_text(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *text = malloc(len + 1);

    evbuffer_remove(in, text, len);
    text[len] = '\0';
    return text;
}

static void replace(char **slot, const char *value)
{
    free(*slot);
    *slot = value ? strdup(value) : NULL;
}

static void reply(struct evhttp_request *req, int status, const char *body)
{
    struct evbuffer *b = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, status, status < 300 ? "OK" : "Error", b);
    evbuffer_free(b);
}

static void reply_error(struct evhttp_request *req, int status,
                        const char *code, const char *message)
{
    json_t *o =
        json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    char *text = json_dumps(o, JSON_COMPACT);

    reply(req, status, text);
    free(text);
    json_decref(o);
}

static void reply_run(struct evhttp_request *req, int status,
                      const struct canned *c, bool detail, size_t upto)
{
    char *text = run_text(c, detail, upto);

    reply(req, status, text);
    free(text);
}

static void on_post_run(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    char *body = input_text(req);
    json_t *o = json_loads(body, 0, NULL);
    const char *suite = json_string_value(json_object_get(o, "suite"));
    const struct canned *c = suite ? canned_by_suite(suite) : NULL;

    pthread_mutex_lock(&fake.mu);
    replace(&fake.post_body, body);
    replace(&fake.idempotency_key, evhttp_find_header(h, "Idempotency-Key"));
    replace(&fake.authorization, evhttp_find_header(h, "Authorization"));
    pthread_mutex_unlock(&fake.mu);
    if (suite && strcmp(suite, "garbage") == 0) {
        reply(req, 201, "{\"id\": 46, \"state\": \"queu");
    } else if (suite && strcmp(suite, "broken") == 0) {
        reply_error(req, 503, "unavailable", "PostgreSQL unreachable");
    } else if (!c) {
        reply_error(req, 404, "not_found",
                    "no suite \"nosuch\"; close matches: selftest, passing");
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
                          "/api/v1/runs/42");
        reply_run(req, 201, c, false, 0);
    }
    json_decref(o);
    free(body);
}

static void on_get_run(struct evhttp_request *req, int id)
{
    const struct canned *c = canned_by_id(id);
    int polls;

    pthread_mutex_lock(&fake.mu);
    polls = ++fake.polls[id % 64];
    pthread_mutex_unlock(&fake.mu);
    if (id == 99) {
        reply(req, 200, "{\"id\": 99, \"state\": \"finished\", \"tests\": [");
    } else if (id == 97 && fake.n_unanswered < 8) {
        /* Never answered: the client's request timeout must end it. */
        fake.unanswered[fake.n_unanswered++] = req;
    } else if (id == 96) {
        reply(req, 500, "\n<html>oops\x1b[2J</html>\n");
    } else if (id == 95) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
                          "/elsewhere");
        reply(req, 302, "");
    } else if (id == 98) {
        /* Every field of the wrong type. */
        reply(req, 200,
              "{\"id\": 98, \"suite\": 7, \"namespace\": [], \"state\": "
              "{\"x\": 1}, \"result\": 3, \"counts\": \"many\", \"params\": "
              "[1], \"jobs\": {}, \"created_at\": \"yesterday\", "
              "\"duration_ms\": -5, \"setup\": \"yes\", \"teardown\": "
              "{\"ran\": 1, \"log\": 5}, \"log\": null, \"tests\": [1, "
              "{\"name\": 5}, {\"name\": \"t\", \"attempts\": \"x\"}, "
              "{\"name\": \"u\", \"attempts\": [7, {\"result\": 3, \"log\": "
              "7, \"duration_ms\": \"fast\", \"attempt\": -1, \"spans\": "
              "{}, \"values\": [1]}, {\"result\": \"failed\", \"log\": "
              "\"    u.c:1: boom\\n\", \"spans\": [1, {\"name\": 2}, "
              "{\"name\": \"s\", \"attrs\": [\"a\"]}]}]}]}");
    } else if (!c) {
        reply_error(req, 404, "not_found", "no run with that id");
    } else if (c->streamed < c->n_steps && !c->silent && polls == 1) {
        /* The run whose stream drops is still running when first
         * polled. */
        reply_run(req, 200, c, true, c->streamed);
    } else {
        reply_run(req, 200, c, true, c->n_steps);
    }
}

static void on_events(struct evhttp_request *req, int id)
{
    const struct canned *c = canned_by_id(id);
    struct evbuffer *b;

    if (!c) {
        reply_error(req, 404, "not_found", "no run with that id");
        return;
    }
    pthread_mutex_lock(&fake.mu);
    fake.streams[id % 64]++;
    pthread_mutex_unlock(&fake.mu);
    b = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/event-stream");
    evhttp_send_reply_start(req, 200, "OK");
    evbuffer_add_printf(b, "\xEF\xBB\xBF: stream of run %d\n\n", id);
    if (c->silent) {
        /* Left open: the client must notice the silence itself. */
        evhttp_send_reply_chunk(req, b);
        evbuffer_free(b);
        assert_true(fake.n_open_streams < 8);
        fake.open_streams[fake.n_open_streams++] = req;
        return;
    }
    for (size_t i = 0; i < c->streamed; i++) {
        add_sse_event(b, c, i);
        /* Several chunks, so events arrive split across reads. */
        if (i % 4 == 3) {
            evhttp_send_reply_chunk(req, b);
        }
    }
    if (c->streamed == c->n_steps) {
        evbuffer_add_printf(b,
                            "event: run_end\ndata: {\"run_id\":%d,\"state\":"
                            "\"finished\",\"result\":\"%s\",\"reason\":null}"
                            "\n\n",
                            id, c->result);
    }
    evhttp_send_reply_chunk(req, b);
    evhttp_send_reply_end(req);
    evbuffer_free(b);
}

static void on_cancel(struct evhttp_request *req, int id)
{
    char *body = input_text(req);
    const struct canned *c = canned_by_id(id);

    pthread_mutex_lock(&fake.mu);
    replace(&fake.cancel_body, body);
    fake.cancels[id % 64]++;
    pthread_mutex_unlock(&fake.mu);
    if (id == 43) {
        reply_error(req, 409, "conflict", "run 43 already ended (finished)");
    } else if (!c) {
        reply_error(req, 404, "not_found", "no run with that id");
    } else {
        reply_run(req, 202, c, false, 3);
    }
    free(body);
}

static void on_list_runs(struct evhttp_request *req, const char *query)
{
    char *page;

    pthread_mutex_lock(&fake.mu);
    if (fake.n_queries < 8) {
        fake.queries[fake.n_queries++] = strdup(query ? query : "");
    }
    pthread_mutex_unlock(&fake.mu);
    if (query && strstr(query, "suite=garbage")) {
        reply(req, 200, "[1, 2");
        return;
    }
    if (query && strstr(query, "cursor=c2")) {
        char *a = run_text(&canned_runs[2], false, canned_runs[2].n_steps);
        char *b = run_text(&canned_runs[3], false, 0);

        page = malloc(strlen(a) + strlen(b) + 64);
        sprintf(page, "{\"runs\": [%s, %s]}", a, b);
        free(a);
        free(b);
    } else {
        char *a = run_text(&canned_runs[0], false, canned_runs[0].n_steps);
        char *b = run_text(&canned_runs[1], false, canned_runs[1].n_steps);

        /* A list entry that is no run is left out. */
        page = malloc(strlen(a) + strlen(b) + 128);
        sprintf(page,
                "{\"runs\": [%s, 17, {\"suite\": \"x\"}, %s], "
                "\"next_cursor\": \"c2\"}",
                a, b);
        free(a);
        free(b);
    }
    reply(req, 200, page);
    free(page);
}

static const char suites_json[] =
    "{\"suites\": [{\"name\": \"selftest\", \"namespace\": \"handoff\", "
    "\"description\": \"one test per outcome\", \"max_attempts\": 1, "
    "\"test_timeout_ms\": 60000, \"timeout_ms\": 3600000, \"tests\": "
    "[{\"name\": \"test_pass\", \"max_attempts\": 1, \"timeout_ms\": 60000}, "
    "{\"name\": \"test_fail\"}, {\"name\": \"test_skip\"}], \"workers\": "
    "[\"worker-a\", \"worker-b\"], \"pool\": \"default\", \"last_seen\": "
    "\"2026-11-23T10:00:05Z\"}, "
    "{\"name\": \"httpapi\", \"namespace\": \"examples\", \"pool\": \"gpu\", "
    "\"tests\": "
    "[{\"name\": \"a\"}, {\"name\": \"b\"}], \"workers\": []}, "
    "{\"name\": 5}, \"junk\", {\"name\": \"odd\", \"tests\": 3, "
    "\"workers\": [1, \"w\\u001b[31m\"]}]}";

static const char workers_json[] =
    "{\"workers\": [{\"id\": \"worker-a\", \"host\": \"ci-7\", \"pool\": "
    "\"default\", \"labels\": {\"zone\": \"a\", \"gpu\": true}, \"slots\": 4, "
    "\"free_slots\": 3, \"draining\": false, \"version\": \"0.1.0\", "
    "\"suites\": [\"handoff/selftest\"], \"running_runs\": [42], "
    "\"started_at\": \"2026-11-23T09:00:00Z\", \"last_seen\": "
    "\"2026-11-23T10:00:05.250Z\", \"alive\": true}, {\"id\": \"worker-b\", "
    "\"host\": 7, \"pool\": null, \"labels\": [1], \"slots\": \"four\", "
    "\"alive\": false}, {\"host\": \"no-id\"}, 12, {\"id\": \"worker-c\", "
    "\"slots\": 2, \"free_slots\": 0, \"draining\": true, \"alive\": true}]}";

static const char schedules_json[] =
    "{\"schedules\": [{\"name\": \"nightly\", \"suite\": \"selftest\", "
    "\"namespace\": \"handoff\", \"expression\": \"0 3 * * *\", "
    "\"time_zone\": \"Europe/Berlin\", \"enabled\": true, \"runs_fired\": "
    "12, \"next_fire_at\": \"2026-11-24T02:00:00.000Z\", \"last_ticks\": "
    "[{\"tick_at\": \"2026-11-23T02:00:00.000Z\", \"outcome\": \"fired\", "
    "\"run_id\": 812}]}, {\"name\": \"smoke\", \"enabled\": false, "
    "\"runs_fired\": \"x\", \"last_ticks\": [{\"outcome\": \"skipped\", "
    "\"reason\": \"overlap\"}, 3]}, {\"suite\": \"no-name\"}, 7]}";

/* The number after prefix in path, or -1. */
static int id_after(const char *path, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    char *end;
    long id;

    if (strncmp(path, prefix, n) != 0) {
        return -1;
    }
    id = strtol(path + n, &end, 10);
    if (end == path + n || id < 0 || id > 1000) {
        return -1;
    }
    *rest = end;
    return (int)id;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
    const char *rest = "";
    int id = id_after(path, "/api/v1/runs/", &rest);

    (void)arg;
    if (post && strcmp(path, "/api/v1/runs") == 0) {
        on_post_run(req);
    } else if (!post && strcmp(path, "/api/v1/runs") == 0) {
        on_list_runs(req, query);
    } else if (!post && id >= 0 && strcmp(rest, "") == 0) {
        on_get_run(req, id);
    } else if (!post && id >= 0 && strcmp(rest, "/events") == 0) {
        on_events(req, id);
    } else if (post && id >= 0 && strcmp(rest, "/cancel") == 0) {
        on_cancel(req, id);
    } else if (!post && strcmp(path, "/api/v1/suites") == 0) {
        reply(req, 200, suites_json);
    } else if (!post && strcmp(path, "/api/v1/workers") == 0) {
        reply(req, 200, workers_json);
    } else if (!post && strcmp(path, "/api/v1/schedules") == 0) {
        reply(req, 200, schedules_json);
    } else if (!post && strcmp(path, "/api/v1/broken") == 0) {
        reply(req, 500, "<html>oops</html>");
    } else {
        reply_error(req, 404, "not_found", "no such endpoint");
    }
}

static void *fake_loop(void *arg)
{
    (void)arg;
    event_base_loop(fake.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int fake_start(void **state)
{
    struct evhttp_bound_socket *sock;
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);

    (void)state;
    memset(&fake, 0, sizeof(fake));
    pthread_mutex_init(&fake.mu, NULL);
    if (evthread_use_pthreads() != 0) {
        return -1;
    }
    fake.base = event_base_new();
    fake.http = evhttp_new(fake.base);
    evhttp_set_allowed_methods(fake.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(fake.http, on_request, NULL);
    sock = evhttp_bind_socket_with_handle(fake.http, "127.0.0.1", 0);
    if (!sock || getsockname(evhttp_bound_socket_get_fd(sock),
                             (struct sockaddr *)&addr, &len) != 0) {
        return -1;
    }
    fake.port = ntohs(addr.sin_port);
    snprintf(fake.url, sizeof(fake.url), "http://127.0.0.1:%d", fake.port);
    return pthread_create(&fake.thread, NULL, fake_loop, NULL);
}

/* On the loop thread: evhttp is not for other threads. */
static void end_open_streams(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (int i = 0; i < fake.n_open_streams; i++) {
        evhttp_send_reply_end(fake.open_streams[i]);
    }
    fake.n_open_streams = 0;
    for (int i = 0; i < fake.n_unanswered; i++) {
        evhttp_send_reply(fake.unanswered[i], 503, "Stopping", NULL);
    }
    fake.n_unanswered = 0;
    event_base_loopbreak(fake.base);
}

static int fake_stop(void **state)
{
    struct timeval now = {0, 0};

    (void)state;
    event_base_once(fake.base, -1, EV_TIMEOUT, end_open_streams, NULL, &now);
    pthread_join(fake.thread, NULL);
    evhttp_free(fake.http);
    event_base_free(fake.base);
    free(fake.post_body);
    free(fake.idempotency_key);
    free(fake.authorization);
    free(fake.cancel_body);
    for (int i = 0; i < fake.n_queries; i++) {
        free(fake.queries[i]);
    }
    pthread_mutex_destroy(&fake.mu);
    libevent_global_shutdown();
    return 0;
}

/* ---- Running handoffctl ------------------------------------------------- */

struct outcome {
    int status; /* exit status, or 128 + signal */
    char *out;
    char *err;
    double seconds;
};

struct child {
    pid_t pid;
    char out_path[64];
    char err_path[64];
    int64_t start_ns;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *data;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return data;
}

/* Variables the child must not inherit: ours (each test sets its own)
 * and proxies, which would take the fake's 127.0.0.1 elsewhere. */
static bool is_filtered(const char *entry)
{
    static const char *const names[] = {
        "HANDOFF_",     "http_proxy=", "HTTP_PROXY=", "https_proxy=",
        "HTTPS_PROXY=", "all_proxy=",  "ALL_PROXY="};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strncmp(entry, names[i], strlen(names[i])) == 0) {
            return true;
        }
    }
    return false;
}

/* Starts handoffctl with args (NULL-terminated) and the environment
 * entries in env (NULL-terminated; HANDOFF_URL points at the fake unless
 * env sets it), stdout and stderr to files. */
static struct child start_ctl(const char *const *args, const char *const *env)
{
    struct child c;
    char path[1024];
    char url_env[128];
    char *argv[48];
    char *envp[512];
    int n = 0;
    int e = 0;
    bool has_url = false;
    posix_spawn_file_actions_t fa;
    int out_fd;
    int err_fd;

    snprintf(c.out_path, sizeof(c.out_path), "/tmp/handoffctl-out-XXXXXX");
    snprintf(c.err_path, sizeof(c.err_path), "/tmp/handoffctl-err-XXXXXX");
    out_fd = mkstemp(c.out_path);
    err_fd = mkstemp(c.err_path);
    assert_true(out_fd >= 0 && err_fd >= 0);
    snprintf(path, sizeof(path), "%s/handoffctl", HANDOFF_BIN_DIR);
    argv[n++] = path;
    for (; args[n - 1] && n < 47; n++) {
        argv[n] = (char *)args[n - 1];
    }
    argv[n] = NULL;
    for (char **p = environ; *p && e < 480; p++) {
        if (!is_filtered(*p)) {
            envp[e++] = *p;
        }
    }
    for (size_t i = 0; env && env[i]; i++) {
        has_url = has_url || strncmp(env[i], "HANDOFF_URL=", 12) == 0;
        envp[e++] = (char *)env[i];
    }
    if (!has_url) {
        snprintf(url_env, sizeof(url_env), "HANDOFF_URL=%s", fake.url);
        envp[e++] = url_env;
    }
    envp[e] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    c.start_ns = clock_mono_ns();
    assert_int_equal(posix_spawn(&c.pid, path, &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out_fd);
    close(err_fd);
    return c;
}

static struct outcome finish_ctl(struct child *c)
{
    struct outcome o;
    int status;

    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
    }
    o.seconds = (double)(clock_mono_ns() - c->start_ns) / 1e9;
    o.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    o.out = slurp(c->out_path);
    o.err = slurp(c->err_path);
    unlink(c->out_path);
    unlink(c->err_path);
    return o;
}

static struct outcome ctl_env(const char *const *args, const char *const *env)
{
    struct child c = start_ctl(args, env);

    return finish_ctl(&c);
}

static struct outcome ctl(const char *const *args)
{
    return ctl_env(args, NULL);
}

static void done(struct outcome *o)
{
    free(o->out);
    free(o->err);
}

static void expect(const struct outcome *o, int status, const char *where,
                   const char *needle)
{
    const char *hay = where[0] == 'o' ? o->out : o->err;

    if (o->status != status) {
        fail_msg("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", o->status,
                 status, o->out, o->err);
    }
    if (needle && !strstr(hay, needle)) {
        fail_msg("%s lacks \"%s\":\n%s", where, needle, hay);
    }
}

static void expect_equal_text(const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        fail_msg("output differs\n--- got:\n%s\n--- want:\n%s", got, want);
    }
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s);
    size_t m = strlen(tail);

    return n >= m && strcmp(s + n - m, tail) == 0;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* ---- run -------------------------------------------------------------- */

static void
test_run_wait_prints_go_test_text_and_exits_1_for_a_failed_run(void **state)
{
    struct outcome o = ctl((const char *[]){"run", "selftest", "--wait", NULL});
    char *want = expected_output(&canned_runs[0], TEXT);

    (void)state;
    expect(&o, 1, "err", "run 42 of handoff/selftest");
    expect_equal_text(o.out, want);
    /* What the text shows, spelled out for the reader. */
    assert_non_null(strstr(o.out, "--- FAIL: test_check_fails (0.00s)\n"
                                  "    selftest.c:25: check failed: x == 2"));
    assert_non_null(strstr(o.out, "handoff: error: killed by signal SIGSEGV"));
    assert_non_null(strstr(o.out, "handoff: flaky: passed on attempt 2 of 2"));
    assert_non_null(strstr(o.out, "FAIL\thandoff/selftest\t1.306s\n"));
    assert_null(strstr(o.out, "--- PASS: test_pass"));
    expect(&o, 1, "err", "run 42 finished, result error");
    free(want);
    done(&o);
}

static void test_run_wait_verbose_prints_every_test(void **state)
{
    struct outcome o =
        ctl((const char *[]){"run", "selftest", "--wait", "-v", NULL});
    char *want = expected_output(&canned_runs[0], TEXT_VERBOSE);

    (void)state;
    expect(&o, 1, "out",
           "=== RUN   test_pass\n    selftest.c:16: hello\n"
           "--- PASS: test_pass (0.00s)\n");
    expect_equal_text(o.out, want);
    free(want);
    done(&o);
}

static void test_run_wait_exits_0_for_a_passed_run(void **state)
{
    struct outcome o = ctl((const char *[]){"run", "passing", "--wait", NULL});
    char *want = expected_output(&canned_runs[1], TEXT);

    (void)state;
    expect(&o, 0, "out", "ok  \thandoff/passing\t0.020s\n");
    expect_equal_text(o.out, want);
    free(want);
    done(&o);
}

static void test_run_wait_json_writes_test2json_lines(void **state)
{
    struct outcome o =
        ctl((const char *[]){"run", "selftest", "--wait", "--json", NULL});
    char *want = expected_output(&canned_runs[0], TEST2JSON);
    char *save = NULL;
    int lines = 0;

    (void)state;
    expect(&o, 1, "out", "\"Action\":\"start\"");
    expect_equal_text(o.out, want);
    for (char *line = strtok_r(o.out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *ev = json_loads(line, 0, NULL);

        if (!ev) {
            fail_msg("not JSON: %s", line);
        }
        assert_non_null(json_string_value(json_object_get(ev, "Action")));
        assert_non_null(json_string_value(json_object_get(ev, "Time")));
        assert_string_equal(json_string_value(json_object_get(ev, "Package")),
                            "handoff/selftest");
        json_decref(ev);
        lines++;
    }
    assert_true(lines > 30);
    free(want);
    done(&o);
}

static void test_run_wait_junit_counts_match_the_run(void **state)
{
    char path[] = "/tmp/handoffctl-junit-XXXXXX";
    int fd = mkstemp(path);
    struct outcome o;
    char *xml;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    o = ctl(
        (const char *[]){"run", "selftest", "--wait", "--junit", path, NULL});
    expect(&o, 1, "out", NULL);
    xml = slurp(path);
    /* The run's counts: 7 tests, 2 passed, 2 failed (1 of them soft), 2
     * error, 1 skipped. JUnit counts a soft failure as passed. */
    assert_non_null(strstr(xml, "<testsuites name=\"handoff\" tests=\"7\" "
                                "failures=\"1\" errors=\"2\" skipped=\"1\""));
    assert_non_null(strstr(xml, "<testsuite name=\"handoff/selftest\" "
                                "tests=\"7\" failures=\"1\" errors=\"2\" "
                                "skipped=\"1\" time=\"1.306\""));
    assert_int_equal(count(xml, "<testcase "), 7);
    assert_non_null(strstr(xml, "<flakyFailure"));
    assert_non_null(strstr(xml, "name=\"soft_failure\" value=\"true\""));
    assert_non_null(strstr(xml, "hostname=\"worker-a\""));
    assert_non_null(strstr(xml, "selftest.c:25: check failed: x == 2"));
    free(xml);
    unlink(path);
    done(&o);
}

static void test_run_sends_the_flags_values_and_trigger_cli(void **state)
{
    struct outcome o =
        ctl_env((const char *[]){"run",
                                 "handoff/selftest",
                                 "--run",
                                 "pass|check",
                                 "--skip=slow",
                                 "--param",
                                 "base_url=https://a.example.com/x?a=1,b=2",
                                 "--param",
                                 "k=v",
                                 "--initiated-by",
                                 "deploy-bot",
                                 "--reference",
                                 "9f3c2e1",
                                 "--environment",
                                 "staging",
                                 "--max-attempts",
                                 "3",
                                 "--timeout",
                                 "10m",
                                 "--test-timeout",
                                 "90s",
                                 "--queue-timeout",
                                 "2m",
                                 "--count",
                                 "2",
                                 "--pool",
                                 "fast",
                                 "--idempotency-key",
                                 "deploy-4711",
                                 NULL},
                (const char *[]){"HANDOFF_TOKEN=s3cret", NULL});
    static const char *const documented[] = {
        "suite",        "namespace",    "run",          "skip",
        "params",       "initiated_by", "reference",    "environment",
        "max_attempts", "timeout",      "test_timeout", "queue_timeout",
        "count",        "pool",         "trigger",
    };
    json_t *body;
    const char *key;
    json_t *v;

    (void)state;
    expect(&o, 0, "out", NULL);
    assert_string_equal(o.out, "42\n");
    expect(&o, 0, "err", "/api/v1/runs/42");
    pthread_mutex_lock(&fake.mu);
    body = json_loads(fake.post_body, 0, NULL);
    assert_non_null(body);
    assert_string_equal(fake.idempotency_key, "deploy-4711");
    assert_string_equal(fake.authorization, "Bearer s3cret");
    pthread_mutex_unlock(&fake.mu);
    assert_string_equal(json_string_value(json_object_get(body, "suite")),
                        "selftest");
    assert_string_equal(json_string_value(json_object_get(body, "namespace")),
                        "handoff");
    assert_string_equal(json_string_value(json_object_get(body, "run")),
                        "pass|check");
    assert_string_equal(json_string_value(json_object_get(body, "skip")),
                        "slow");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(body, "params"), "base_url")),
                        "https://a.example.com/x?a=1,b=2");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(body, "params"), "k")),
                        "v");
    assert_string_equal(
        json_string_value(json_object_get(body, "initiated_by")), "deploy-bot");
    assert_string_equal(json_string_value(json_object_get(body, "reference")),
                        "9f3c2e1");
    assert_string_equal(json_string_value(json_object_get(body, "environment")),
                        "staging");
    assert_int_equal(json_integer_value(json_object_get(body, "max_attempts")),
                     3);
    assert_string_equal(json_string_value(json_object_get(body, "timeout")),
                        "10m0s");
    assert_string_equal(
        json_string_value(json_object_get(body, "test_timeout")), "1m30s");
    assert_string_equal(
        json_string_value(json_object_get(body, "queue_timeout")), "2m0s");
    assert_int_equal(json_integer_value(json_object_get(body, "count")), 2);
    assert_string_equal(json_string_value(json_object_get(body, "pool")),
                        "fast");
    assert_string_equal(json_string_value(json_object_get(body, "trigger")),
                        "cli");
    /* The API rejects unknown fields: only documented ones are sent. */
    json_object_foreach(body, key, v)
    {
        bool known = false;

        for (size_t i = 0; i < N_STEPS(documented); i++) {
            known = known || strcmp(key, documented[i]) == 0;
        }
        if (!known) {
            fail_msg("undocumented field \"%s\" sent", key);
        }
    }
    json_decref(body);
    done(&o);
}

static void test_run_defaults_initiated_by_and_sends_no_key(void **state)
{
    struct outcome o = ctl((const char *[]){"run", "passing", NULL});
    json_t *body;
    const char *by;

    (void)state;
    expect(&o, 0, "out", "43\n");
    pthread_mutex_lock(&fake.mu);
    body = json_loads(fake.post_body, 0, NULL);
    assert_null(fake.idempotency_key);
    assert_null(fake.authorization);
    pthread_mutex_unlock(&fake.mu);
    by = json_string_value(json_object_get(body, "initiated_by"));
    assert_non_null(by);
    assert_non_null(strchr(by, '@'));
    assert_string_equal(json_string_value(json_object_get(body, "trigger")),
                        "cli");
    assert_null(json_object_get(body, "namespace"));
    assert_null(json_object_get(body, "params"));
    assert_null(json_object_get(body, "count"));
    json_decref(body);
    done(&o);
}

static void test_run_json_without_wait_prints_the_run(void **state)
{
    struct outcome o = ctl((const char *[]){"run", "passing", "--json", NULL});
    json_t *run;

    (void)state;
    expect(&o, 0, "out", NULL);
    run = json_loads(o.out, 0, NULL);
    assert_non_null(run);
    assert_int_equal(json_integer_value(json_object_get(run, "id")), 43);
    assert_string_equal(json_string_value(json_object_get(run, "state")),
                        "queued");
    json_decref(run);
    done(&o);
}

static void
test_run_unknown_suite_prints_the_api_message_and_exits_2(void **state)
{
    struct outcome o = ctl((const char *[]){"run", "nosuch", "--wait", NULL});

    (void)state;
    expect(&o, 2, "err",
           "no suite \"nosuch\"; close matches: selftest, passing");
    expect(&o, 2, "err", "HTTP 404 not_found");
    assert_string_equal(o.out, "");
    done(&o);
}

static void test_run_exits_3_when_the_controller_is_unreachable(void **state)
{
    struct outcome a =
        ctl_env((const char *[]){"run", "selftest", "--wait", NULL},
                (const char *[]){"HANDOFF_URL=http://"
                                 "127.0.0.1:1",
                                 NULL});
    struct outcome b =
        ctl((const char *[]){"suites", "--url", "http://127.0.0.1:1/", NULL});

    (void)state;
    expect(&a, 3, "err", "cannot reach the controller at http://127.0.0.1:1");
    expect(&b, 3, "err", "cannot reach the controller at http://127.0.0.1:1");
    done(&a);
    done(&b);
}

static void test_run_exits_3_when_the_controller_answers_5xx(void **state)
{
    struct outcome o = ctl((const char *[]){"run", "broken", NULL});

    (void)state;
    expect(&o, 3, "err",
           "is unavailable: HTTP 503 unavailable: PostgreSQL "
           "unreachable");
    done(&o);
}

static void test_run_exits_3_on_a_malformed_answer(void **state)
{
    struct outcome a = ctl((const char *[]){"run", "garbage", NULL});
    struct outcome b = ctl((const char *[]){"show", "99", NULL});
    struct outcome c =
        ctl((const char *[]){"runs", "--suite", "garbage", NULL});

    (void)state;
    expect(&a, 3, "err",
           "answered POST /api/v1/runs with something that is "
           "not a run: not valid JSON");
    expect(&b, 3, "err", "not a run: not valid JSON");
    expect(&c, 3, "err", "not a list of runs");
    done(&a);
    done(&b);
    done(&c);
}

static void test_run_wait_polls_when_the_stream_drops(void **state)
{
    struct outcome o = ctl((const char *[]){"run", "dropping", "--wait", NULL});
    char *want = expected_output(&canned_runs[2], TEXT);

    (void)state;
    expect(&o, 1, "err",
           "the event stream ended before the run did; polling "
           "run 44 until it ends");
    /* Quiet output is the same as if nothing had dropped: test_b's
     * attempt is shown whole, from the stored run. */
    expect_equal_text(o.out, want);
    pthread_mutex_lock(&fake.mu);
    assert_true(fake.polls[44] >= 2);
    pthread_mutex_unlock(&fake.mu);
    free(want);
    done(&o);
}

static void
test_run_wait_verbose_after_a_drop_shows_each_test_once(void **state)
{
    struct outcome o =
        ctl((const char *[]){"run", "dropping", "--wait", "-v", NULL});
    char *want = expected_output(&canned_runs[2], TEXT_VERBOSE);

    (void)state;
    /* test_b started live and goes on from the stored run where the
     * stream left it: the reader sees no seam. */
    expect(&o, 1, "out",
           "=== RUN   test_b\n    d.c:2: b 1\n    d.c:3: b 2\n"
           "--- FAIL: test_b (0.01s)\n");
    assert_int_equal(count(o.out, "=== RUN   test_a\n"), 1);
    assert_int_equal(count(o.out, "=== RUN   test_b\n"), 1);
    expect_equal_text(o.out, want);
    free(want);
    done(&o);
}

static void test_run_wait_polls_when_the_stream_stays_silent(void **state)
{
    struct outcome o =
        ctl_env((const char *[]){"run", "idle", "--wait", NULL},
                (const char *[]){"HANDOFF_IDLE_TIMEOUT=1s", NULL});
    char *want = expected_output(&canned_runs[3], TEXT);

    (void)state;
    expect(&o, 0, "err", "nothing arrived on the event stream for 1s");
    /* Nothing came live: the whole run is replayed. */
    assert_non_null(strstr(want, "ok  \thandoff/idle\t0.020s"));
    expect_equal_text(o.out, want);
    assert_true(o.seconds < 15);
    free(want);
    done(&o);
}

static void
test_run_wait_ctrl_c_stops_following_without_cancelling(void **state)
{
    struct child c =
        start_ctl((const char *[]){"run", "idle", "--wait", NULL}, NULL);
    int64_t deadline = clock_mono_ns() + 20 * CLOCK_NS_PER_S;
    int streams_before;
    struct outcome o;

    (void)state;
    pthread_mutex_lock(&fake.mu);
    streams_before = fake.streams[45];
    pthread_mutex_unlock(&fake.mu);
    /* The stream opens after the run started: then it is following. */
    for (;;) {
        int streams;

        pthread_mutex_lock(&fake.mu);
        streams = fake.streams[45];
        pthread_mutex_unlock(&fake.mu);
        if (streams > streams_before) {
            break;
        }
        assert_true(clock_mono_ns() < deadline);
        usleep(10000);
    }
    assert_int_equal(kill(c.pid, SIGINT), 0);
    o = finish_ctl(&c);
    expect(&o, 130, "err", "stopped following run 45; the run goes on");
    expect(&o, 130, "err", "handoffctl cancel 45");
    pthread_mutex_lock(&fake.mu);
    assert_int_equal(fake.cancels[45], 0);
    pthread_mutex_unlock(&fake.mu);
    done(&o);
}

/* ---- show, runs, cancel, suites, workers -------------------------------- */

static void test_show_prints_header_and_replays_tests(void **state)
{
    struct outcome o = ctl((const char *[]){"show", "42", NULL});
    char *want = expected_output(&canned_runs[0], TEXT);

    (void)state;
    expect(&o, 0, "out", "run 42: handoff/selftest\n");
    expect(&o, 0, "out", "state        finished\n");
    expect(&o, 0, "out", "result       error\n");
    expect(&o, 0, "out", "trigger      cli, by ci@runner-7\n");
    expect(&o, 0, "out", "reference    9f3c2e1\n");
    expect(&o, 0, "out", "environment  staging\n");
    expect(&o, 0, "out", "params       base_url=https://staging.example.com\n");
    expect(&o, 0, "out", "created      2026-11-23T10:00:00Z\n");
    expect(&o, 0, "out", "duration     1.306s\n");
    expect(&o, 0, "out",
           "tests        7: 2 passed, 2 failed, 2 error, 1 skipped (1 soft "
           "failure, 1 flaky)\n");
    expect(&o, 0, "out", "workers      worker-a\n");
    /* The stored run replayed reads as the live run did. */
    if (!ends_with(o.out, want)) {
        fail_msg("show output does not end with the run's text\n--- got:\n%s"
                 "\n--- want (tail):\n%s",
                 o.out, want);
    }
    free(want);
    done(&o);
}

static void test_show_verbose_shows_every_attempt(void **state)
{
    struct outcome o = ctl((const char *[]){"show", "42", "-v", NULL});
    char *want = expected_output(&canned_runs[0], TEXT_VERBOSE);

    (void)state;
    expect(&o, 0, "out",
           "=== RUN   test_flaky\n    selftest.c:50: first "
           "attempt fails\n--- FAIL: test_flaky (0.00s)\n"
           "    handoff: attempt 1 of 2 failed, retrying\n"
           "=== RUN   test_flaky\n");
    assert_true(ends_with(o.out, want));
    free(want);
    done(&o);
}

static void test_show_json_prints_the_api_answer(void **state)
{
    struct outcome o = ctl((const char *[]){"show", "42", "--json", NULL});
    char *want = run_text(&canned_runs[0], true, canned_runs[0].n_steps);

    (void)state;
    expect(&o, 0, "out", NULL);
    assert_true(ends_with(o.out, "\n"));
    o.out[strlen(o.out) - 1] = '\0';
    assert_string_equal(o.out, want);
    free(want);
    done(&o);
}

static void test_show_writes_junit_and_refuses_unknown_runs(void **state)
{
    char path[] = "/tmp/handoffctl-junit-XXXXXX";
    int fd = mkstemp(path);
    struct outcome o;
    struct outcome missing;
    char *xml;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    o = ctl((const char *[]){"show", "43", "--junit", path, NULL});
    expect(&o, 0, "out", "ok  \thandoff/passing\t0.020s\n");
    xml = slurp(path);
    assert_non_null(strstr(xml, "tests=\"2\" failures=\"0\" errors=\"0\" "
                                "skipped=\"1\""));
    free(xml);
    unlink(path);
    missing = ctl((const char *[]){"show", "7", NULL});
    expect(&missing, 2, "err", "no run with that id (HTTP 404 not_found)");
    done(&o);
    done(&missing);
}

static void test_show_reads_wrongly_typed_fields_as_absent(void **state)
{
    struct outcome o = ctl((const char *[]){"show", "98", "-v", NULL});

    (void)state;
    expect(&o, 0, "out", "run 98: ?\n");
    expect(&o, 0, "out", "--- FAIL: u (0.00s)\n");
    expect(&o, 0, "out", "u.c:1: boom");
    expect(&o, 0, "out", "(run 98 has not ended");
    done(&o);
}

static void test_runs_pages_with_the_cursor(void **state)
{
    struct outcome o;
    char q0[256];
    char q1[256];
    int n0;

    (void)state;
    pthread_mutex_lock(&fake.mu);
    n0 = fake.n_queries;
    pthread_mutex_unlock(&fake.mu);
    o = ctl((const char *[]){"runs", "--limit", "3", "--suite", "selftest",
                             "--state", "finished", NULL});
    expect(&o, 0, "out",
           "ID  SUITE             STATE     RESULT  TESTS  P/F/E/S  "
           "CREATED               DURATION\n");
    expect(&o, 0, "out",
           "42  handoff/selftest  finished  error   7      2/2/2/1  "
           "2026-11-23T10:00:00Z  1.306s\n");
    expect(&o, 0, "out", "\n43  handoff/passing ");
    expect(&o, 0, "out", "\n44  handoff/dropping ");
    assert_null(strstr(o.out, "\n45 "));
    assert_int_equal(count(o.out, "\n"), 4);
    pthread_mutex_lock(&fake.mu);
    assert_int_equal(fake.n_queries, n0 + 2);
    snprintf(q0, sizeof(q0), "%s", fake.queries[n0]);
    snprintf(q1, sizeof(q1), "%s", fake.queries[n0 + 1]);
    pthread_mutex_unlock(&fake.mu);
    assert_string_equal(q0, "suite=selftest&state=finished&limit=3");
    assert_string_equal(q1, "suite=selftest&state=finished&limit=1&cursor=c2");
    done(&o);
}

static void test_runs_json_joins_the_pages(void **state)
{
    struct outcome o = ctl((const char *[]){"runs", "--json", NULL});
    json_t *root;
    json_t *runs;

    (void)state;
    expect(&o, 0, "out", NULL);
    root = json_loads(o.out, 0, NULL);
    assert_non_null(root);
    runs = json_object_get(root, "runs");
    assert_int_equal(json_array_size(runs), 4);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(runs, 3), "id")), 45);
    assert_null(json_object_get(root, "next_cursor"));
    json_decref(root);
    done(&o);
}

static void test_cancel_posts_the_reason_and_says_what_happened(void **state)
{
    struct outcome o = ctl((const char *[]){"cancel", "42", "--reason",
                                            "deploy rolled back", NULL});
    struct outcome ended;
    json_t *body;

    (void)state;
    expect(&o, 0, "out", "run 42: cancel requested (state running)\n");
    pthread_mutex_lock(&fake.mu);
    body = json_loads(fake.cancel_body, 0, NULL);
    pthread_mutex_unlock(&fake.mu);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "reason")),
                        "deploy rolled back");
    json_decref(body);
    ended = ctl((const char *[]){"cancel", "43", NULL});
    expect(&ended, 2, "err",
           "run 43 already ended (finished) (HTTP 409 conflict)");
    pthread_mutex_lock(&fake.mu);
    assert_string_equal(fake.cancel_body, "");
    pthread_mutex_unlock(&fake.mu);
    done(&o);
    done(&ended);
}

static void test_suites_prints_the_catalog(void **state)
{
    struct outcome o = ctl((const char *[]){"suites", NULL});
    struct outcome j = ctl((const char *[]){"suites", "--json", NULL});

    (void)state;
    expect(&o, 0, "out",
           "NAMESPACE/NAME    POOL     TESTS  WORKERS\n"
           "handoff/selftest  default  3      worker-a,worker-b\n"
           "examples/httpapi  gpu      2      -\n"
           "odd               -        0      w?[31m\n");
    expect(&j, 0, "out", "\"workers\": [\"worker-a\", \"worker-b\"]");
    done(&o);
    done(&j);
}

static void test_workers_prints_the_workers(void **state)
{
    struct outcome o = ctl((const char *[]){"workers", NULL});

    (void)state;
    expect(&o, 0, "out",
           "ID        HOST  POOL     SLOTS  ALIVE     LAST SEEN             "
           "LABELS\n"
           "worker-a  ci-7  default  3/4    yes       2026-11-23T10:00:05Z  "
           "zone=a,gpu=true\n"
           "worker-b  -     -        -      no        -                     "
           "-\n"
           "worker-c  -     -        0/2    draining  -                     "
           "-\n");
    done(&o);
}

static void test_schedule_list_prints_the_schedules(void **state)
{
    struct outcome o = ctl((const char *[]){"schedule", "list", NULL});

    (void)state;
    expect(&o, 0, "out",
           "NAME     SUITE     EXPRESSION  ZONE           ENABLED  NEXT     "
           "             RUNS  LAST TICK\n"
           "nightly  selftest  0 3 * * *   Europe/Berlin  yes      "
           "2026-11-24T02:00:00Z  12    fired run 812\n"
           "smoke    -         -           -              paused   -        "
           "             0     overlap\n");
    done(&o);
}

/* ---- Usage -------------------------------------------------------------- */

static void test_usage_errors_exit_2_naming_what_is_known(void **state)
{
    static const struct {
        const char *args[8];
        const char *message;
    } cases[] = {
        {{"frobnicate", NULL},
         "unknown command \"frobnicate\"; known commands: run, runs, show, "
         "cancel, suites, workers, schedule, diff, version, help"},
        {{"schedule", "frob", NULL}, "schedule create NAME SUITE --expr"},
        {{"schedule", "create", "n", "e2e", NULL}, "--expr is required"},
        {{"schedule", "create", "n", "a/b/c", "--expr", "@daily", NULL},
         "want SUITE or NAMESPACE/SUITE"},
        {{"schedule", "show", NULL}, "missing argument"},
        {{"run", "selftest", "--bogus", NULL},
         "unknown flag --bogus; known flags: --namespace, --run"},
        {{"runs", "--verbose", NULL}, "unknown flag --verbose"},
        {{"run", NULL}, "missing argument (usage: handoffctl run SUITE"},
        {{"show", "1", "2", NULL}, "unexpected argument \"2\""},
        {{"run", "selftest", "--count", "0", NULL},
         "--count \"0\": want an integer from 1 to 1000"},
        {{"run", "selftest", "--max-attempts", "101", NULL},
         "--max-attempts \"101\""},
        {{"run", "selftest", "--timeout", "soon", NULL},
         "--timeout \"soon\": not a duration"},
        {{"run", "selftest", "--param", "novalue", NULL},
         "--param \"novalue\": want KEY=VALUE"},
        {{"run", "selftest", "--junit", "x.xml", NULL}, "--junit needs --wait"},
        {{"run", "a/b/c", NULL}, "want SUITE or NAMESPACE/SUITE"},
        {{"run", "selftest", "--url", "ftp://x", NULL},
         "is not an http:// or https:// URL"},
        {{"runs", "--since", "last week", NULL},
         "--since \"last week\": want an RFC 3339 time"},
        {{"run", "selftest", "--wait", NULL}, "HANDOFF_TOKEN holds"},
        {{NULL}, "usage: handoffctl [--url URL] <command>"},
        /* --url before the command is the command's --url. */
        {{"--url", "ftp://x", "runs", NULL},
         "is not an http:// or https:// URL"},
        {{"--url=ftp://x", "suites", NULL},
         "is not an http:// or https:// URL"},
    };

    (void)state;
    for (size_t i = 0; i < N_STEPS(cases); i++) {
        const char *const *env =
            strcmp(cases[i].message, "HANDOFF_TOKEN holds") == 0
                ? (const char *[]){"HANDOFF_TOKEN=a\nb", NULL}
                : NULL;
        struct outcome o = ctl_env(cases[i].args, env);

        expect(&o, 2, "err", cases[i].message);
        assert_string_equal(o.out, "");
        done(&o);
    }
}

static void test_help_and_version_exit_0(void **state)
{
    struct outcome help = ctl((const char *[]){"--help", NULL});
    struct outcome run_help = ctl((const char *[]){"run", "--help", NULL});
    struct outcome runs_help = ctl((const char *[]){"runs", "-h", NULL});
    struct outcome version = ctl((const char *[]){"version", NULL});

    (void)state;
    expect(&help, 0, "out", "exit status:\n  0    done");
    expect(&help, 0, "out", "  3    the controller is unreachable");
    expect(&run_help, 0, "out", "usage: handoffctl run SUITE [flags]");
    expect(&run_help, 0, "out", "--idempotency-key TEXT");
    expect(&run_help, 0, "out", "HANDOFF_TOKEN");
    expect(&runs_help, 0, "out", "--limit N");
    expect(&version, 0, "out", "handoffctl ");
    done(&help);
    done(&run_help);
    done(&runs_help);
    done(&version);
}

static void test_diff_of_report_files_exits_1_on_a_regression(void **state)
{
    struct outcome same =
        ctl((const char *[]){"diff", HANDOFF_TEST_DATA_DIR "/load/passed.json",
                             HANDOFF_TEST_DATA_DIR "/load/passed.json", NULL});
    struct outcome worse =
        ctl((const char *[]){"diff", HANDOFF_TEST_DATA_DIR "/load/passed.json",
                             HANDOFF_TEST_DATA_DIR "/load/failed.json", NULL});
    struct outcome json = ctl((const char *[]){
        "diff", "--json", HANDOFF_TEST_DATA_DIR "/load/passed.json",
        HANDOFF_TEST_DATA_DIR "/load/passed.json", NULL});
    struct outcome missing =
        ctl((const char *[]){"diff", "/nonexistent/a.json", "b.json", NULL});

    (void)state;
    expect(&same, 0, "out", NULL);
    expect(&worse, 1, "out", NULL);
    expect(&json, 0, "out", "handoff.load.diff/1");
    expect(&missing, 2, "err", "diff: A /nonexistent/a.json");
    done(&same);
    done(&worse);
    done(&json);
    done(&missing);
}

/* ---- The parsers, fed directly ------------------------------------------ */

struct collected {
    struct buf text; /* "type|data|id\n" per event */
    int events;
};

static int collect(void *arg, const char *type, const char *data, size_t len,
                   const char *id)
{
    struct collected *c = arg;

    buf_addf(&c->text, "%s|", type);
    buf_add(&c->text, data, len);
    buf_addf(&c->text, "|%s\n", id);
    c->events++;
    return 0;
}

static void test_sse_parser_reads_events_split_at_every_byte(void **state)
{
    static const char stream[] = "\xEF\xBB\xBF: comment\n"
                                 "event: a\nid: 1\ndata: one\n\n"
                                 "event:b\r\ndata:two\r\ndata: lines\r\n\r\n"
                                 "data: no type\rid: 7\r\r"
                                 "event: ignored without data\n\n"
                                 "retry: 5\nunknown: x\nfield-only\ndata\n\n"
                                 ": keep-alive\n"
                                 "data: last\n\n";
    static const char want[] = "a|one|1\n"
                               "b|two\nlines|1\n"
                               "message|no type|7\n"
                               "message||7\n"
                               "message|last|7\n";

    (void)state;
    for (size_t cut = 0; cut < sizeof(stream) - 1; cut++) {
        for (size_t cut2 = cut; cut2 < sizeof(stream) - 1; cut2 += 7) {
            struct collected c = {0};
            struct sse p;

            buf_init(&c.text, 0);
            sse_init(&p, 0);
            assert_int_equal(sse_feed(&p, stream, cut, collect, &c), 0);
            assert_int_equal(
                sse_feed(&p, stream + cut, cut2 - cut, collect, &c), 0);
            assert_int_equal(sse_feed(&p, stream + cut2,
                                      sizeof(stream) - 1 - cut2, collect, &c),
                             0);
            if (strcmp(buf_str(&c.text), want) != 0) {
                fail_msg("cut at %zu and %zu:\n%s", cut, cut2,
                         buf_str(&c.text));
            }
            sse_cleanup(&p);
            buf_cleanup(&c.text);
        }
    }
}

static int stop_at_first(void *arg, const char *type, const char *data,
                         size_t len, const char *id)
{
    (void)arg;
    (void)type;
    (void)data;
    (void)len;
    (void)id;
    return 77;
}

static void test_sse_parser_caps_lines_and_passes_stops_back(void **state)
{
    struct collected c = {0};
    struct sse p;
    char line[200];

    (void)state;
    buf_init(&c.text, 0);
    sse_init(&p, 64);
    memset(line, 'x', sizeof(line));
    assert_int_equal(sse_feed(&p, "data: ", 6, collect, &c), 0);
    assert_int_equal(sse_feed(&p, line, sizeof(line), collect, &c),
                     ST_TOO_LARGE);
    assert_int_equal(sse_feed(&p, "\n\n", 2, collect, &c), ST_TOO_LARGE);
    assert_int_equal(c.events, 0);
    sse_cleanup(&p);
    sse_init(&p, 0);
    assert_int_equal(
        sse_feed(&p, "data: a\n\ndata: b\n\n", 18, stop_at_first, NULL), 77);
    sse_cleanup(&p);
    buf_cleanup(&c.text);
}

static void test_json_decoder_survives_every_truncation_of_a_run(void **state)
{
    char *text = run_text(&canned_runs[0], true, canned_runs[0].n_steps);
    size_t len = strlen(text);
    struct remote_run run;
    char why[256];

    (void)state;
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(remote_json_run(text, n, true, &run, why, sizeof(why)),
                         ST_PROTOCOL);
    }
    assert_int_equal(remote_json_run(text, len, true, &run, why, sizeof(why)),
                     ST_OK);
    assert_string_equal(run.id, "42");
    assert_int_equal(run.detail.n_tests, 7);
    assert_int_equal(run.detail.tests[4].n_attempts, 2);
    assert_int_equal(run.detail.tests[0].attempts[0].n_spans, 1);
    assert_int_equal(run.detail.tests[0].attempts[0].spans[0].duration_ns,
                     12500000);
    assert_int_equal(remote_run_result(&run), RESULT_ERROR);
    assert_true(remote_run_has_ended(&run));
    assert_false(remote_run_has_passed(&run));
    remote_run_cleanup(&run);
    free(text);
}

static int event(const char *type, const char *data, struct remote_event *ev)
{
    char why[256];

    return remote_json_event(type, data, strlen(data), ev, why, sizeof(why));
}

static void test_json_decoder_reads_wrong_types_as_absent(void **state)
{
    static const char *const docs[] = {
        "[]",
        "null",
        "{}",
        "{\"id\": -1}",
        "{\"id\": \"\"}",
        "{\"id\": \"a\\u0000b\"}",
        "{\"id\": \"a\\nb\"}",
        "{\"id\": 1.5}",
        "{\"id\": {}}",
    };
    struct remote_run run;
    struct remote_run_page page;
    struct remote_suite_list suites;
    struct remote_worker_list workers;
    struct remote_event ev;
    char why[256];
    static const char odd[] =
        "{\"id\": \"run-1\", \"suite\": [], \"state\": 1, \"counts\": "
        "{\"tests\": "
        "\"x\", \"passed\": -3, \"failed\": 2.0}, \"duration_ms\": 1e300, "
        "\"created_at\": 5, \"params\": {\"a\": 1, \"b\": [], \"c\": null}, "
        "\"jobs\": [1, {\"id\": 2}]}";

    (void)state;
    for (size_t i = 0; i < N_STEPS(docs); i++) {
        assert_int_equal(remote_json_run(docs[i], strlen(docs[i]), true, &run,
                                         why, sizeof(why)),
                         ST_PROTOCOL);
    }
    assert_int_equal(
        remote_json_run(odd, strlen(odd), true, &run, why, sizeof(why)), 0);
    assert_string_equal(run.id, "run-1");
    assert_null(run.suite);
    assert_null(run.state);
    assert_int_equal(run.counts.tests, 0);
    assert_int_equal(run.counts.passed, 0);
    assert_int_equal(run.counts.failed, 2);
    assert_int_equal(run.duration_ns, -1);
    assert_int_equal(run.created_ns, 0);
    assert_int_equal(run.n_params, 1);
    assert_int_equal(run.n_jobs, 1);
    assert_string_equal(run.jobs[0].id, "2");
    assert_false(remote_run_has_ended(&run));
    assert_int_equal(remote_run_result(&run), RESULT_NONE);
    remote_run_cleanup(&run);

    assert_int_equal(
        remote_json_run_page("{\"runs\": {}}", 12, &page, why, sizeof(why)),
        ST_PROTOCOL);
    assert_int_equal(
        remote_json_suites("{\"suites\": null}", 16, &suites, why, sizeof(why)),
        ST_PROTOCOL);
    assert_int_equal(remote_json_workers("{}", 2, &workers, why, sizeof(why)),
                     ST_PROTOCOL);
    assert_int_equal(event("test_run", "{\"attempt\": 1}", &ev), ST_PROTOCOL);
    assert_int_equal(event("output", "{\"test\": \"t\"}", &ev), ST_PROTOCOL);
    assert_int_equal(event("progress", "{}", &ev), ST_NOT_FOUND);
    assert_int_equal(event("test_end", "[1]", &ev), ST_PROTOCOL);
    /* No event name: the data's kind says it. */
    assert_int_equal(event("message",
                           "{\"kind\": \"output\", \"output\": "
                           "\"a\\u0000b\\n\", \"attempt\": \"x\", "
                           "\"elapsed_ms\": -1}",
                           &ev),
                     0);
    assert_int_equal(ev.kind, REMOTE_EVENT_REPORT);
    assert_int_equal(ev.report.kind, REPORT_OUTPUT);
    assert_int_equal(ev.report.output_len, 4);
    assert_memory_equal(ev.report.output, "a\0b\n", 4);
    assert_null(ev.report.test);
    assert_int_equal(ev.report.attempt, 1);
    assert_int_equal(ev.report.elapsed_ns, 0);
    remote_event_cleanup(&ev);
    assert_int_equal(event("run_end",
                           "{\"state\": \"cancelled\", \"reason\": "
                           "\"deploy rolled back\"}",
                           &ev),
                     0);
    assert_int_equal(ev.kind, REMOTE_EVENT_RUN_END);
    assert_string_equal(ev.state, "cancelled");
    assert_null(ev.result);
    remote_event_cleanup(&ev);
}

static int stop_following(void *arg, const struct remote_event *ev)
{
    int *events = arg;

    (void)ev;
    return ++*events == 3 ? 42 : 0;
}

static struct remote *client(size_t max_body, size_t max_line,
                             int64_t request_timeout_ms,
                             const volatile sig_atomic_t *stop)
{
    struct remote_config cfg = {
        .url = fake.url,
        .max_body = max_body,
        .max_line = max_line,
        .request_timeout_ms = request_timeout_ms,
        .idle_timeout_ms = 30000,
        .stop = stop,
    };
    struct remote_error err;
    struct remote *r = NULL;

    assert_int_equal(remote_new(&cfg, &r, &err), 0);
    return r;
}

/* Each way a request can fail, through the client's own API. */
static void test_client_reports_each_failure_with_its_status(void **state)
{
    static volatile sig_atomic_t stop_now = 1;
    struct remote *r = client(0, 0, 300, NULL);
    struct remote *tiny_body = client(100, 0, 0, NULL);
    struct remote *tiny_line = client(0, 64, 0, NULL);
    struct remote *stopped = client(0, 0, 0, &stop_now);
    struct remote_run run;
    struct remote_error err;
    char key[] = "k";
    char bad_value[] = "\xff\xfe";
    struct result_kv bad_param = {key, bad_value};
    struct remote_run_request req = {.suite = "passing"};
    int events = 0;

    (void)state;
    assert_int_equal(remote_get_run(r, "97", &run, NULL, &err), ST_TIMEOUT);
    assert_non_null(strstr(err.message, "did not answer GET "
                                        "/api/v1/runs/97 within 300ms"));
    assert_int_equal(remote_get_run(r, "96", &run, NULL, &err), ST_UPSTREAM);
    assert_non_null(strstr(err.message, "HTTP 500: <html>oops?[2J</html>"));
    assert_int_equal(remote_get_run(r, "95", &run, NULL, &err), ST_PROTOCOL);
    assert_non_null(strstr(err.message, "HTTP status 302"));
    assert_int_equal(remote_get_run(r, "7", &run, NULL, &err), ST_NOT_FOUND);
    assert_int_equal(err.http_status, 404);
    assert_string_equal(err.code, "not_found");
    assert_int_equal(remote_follow_run(r, "7", stop_following, &events, &err),
                     ST_NOT_FOUND);
    assert_int_equal(remote_cancel_run(r, "43", NULL, &run, NULL, &err),
                     ST_CONFLICT);
    assert_int_equal(remote_follow_run(r, "42", stop_following, &events, &err),
                     42);
    assert_int_equal(events, 3);
    assert_int_equal(remote_get_run(tiny_body, "42", &run, NULL, &err),
                     ST_PROTOCOL);
    assert_non_null(strstr(err.message, "over the limit of 100 bytes"));
    assert_int_equal(
        remote_follow_run(tiny_line, "42", stop_following, &events, &err),
        ST_PROTOCOL);
    assert_non_null(strstr(err.message, "a line over 64 bytes"));
    assert_int_equal(
        remote_follow_run(stopped, "45", stop_following, &events, &err),
        ST_CANCELLED);
    assert_int_equal(remote_get_run(stopped, "42", &run, NULL, &err),
                     ST_CANCELLED);
    req.params = &bad_param;
    req.n_params = 1;
    assert_int_equal(remote_start_run(r, &req, &run, NULL, &err), ST_INVALID);
    assert_string_equal(err.message, "param k: not valid UTF-8");
    req.n_params = 0;
    req.idempotency_key = "a\r\nX-Evil: 1";
    assert_int_equal(remote_start_run(r, &req, &run, NULL, &err), ST_INVALID);
    assert_int_equal(remote_cancel_run(r, "42", "\xc3", &run, NULL, &err),
                     ST_INVALID);
    remote_free(r);
    remote_free(tiny_body);
    remote_free(tiny_line);
    remote_free(stopped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_run_wait_prints_go_test_text_and_exits_1_for_a_failed_run),
        cmocka_unit_test(test_run_wait_verbose_prints_every_test),
        cmocka_unit_test(test_run_wait_exits_0_for_a_passed_run),
        cmocka_unit_test(test_run_wait_json_writes_test2json_lines),
        cmocka_unit_test(test_run_wait_junit_counts_match_the_run),
        cmocka_unit_test(test_run_sends_the_flags_values_and_trigger_cli),
        cmocka_unit_test(test_run_defaults_initiated_by_and_sends_no_key),
        cmocka_unit_test(test_run_json_without_wait_prints_the_run),
        cmocka_unit_test(
            test_run_unknown_suite_prints_the_api_message_and_exits_2),
        cmocka_unit_test(test_run_exits_3_when_the_controller_is_unreachable),
        cmocka_unit_test(test_run_exits_3_when_the_controller_answers_5xx),
        cmocka_unit_test(test_run_exits_3_on_a_malformed_answer),
        cmocka_unit_test(test_run_wait_polls_when_the_stream_drops),
        cmocka_unit_test(
            test_run_wait_verbose_after_a_drop_shows_each_test_once),
        cmocka_unit_test(test_run_wait_polls_when_the_stream_stays_silent),
        cmocka_unit_test(
            test_run_wait_ctrl_c_stops_following_without_cancelling),
        cmocka_unit_test(test_show_prints_header_and_replays_tests),
        cmocka_unit_test(test_show_verbose_shows_every_attempt),
        cmocka_unit_test(test_show_json_prints_the_api_answer),
        cmocka_unit_test(test_show_writes_junit_and_refuses_unknown_runs),
        cmocka_unit_test(test_show_reads_wrongly_typed_fields_as_absent),
        cmocka_unit_test(test_runs_pages_with_the_cursor),
        cmocka_unit_test(test_runs_json_joins_the_pages),
        cmocka_unit_test(test_cancel_posts_the_reason_and_says_what_happened),
        cmocka_unit_test(test_suites_prints_the_catalog),
        cmocka_unit_test(test_workers_prints_the_workers),
        cmocka_unit_test(test_schedule_list_prints_the_schedules),
        cmocka_unit_test(test_usage_errors_exit_2_naming_what_is_known),
        cmocka_unit_test(test_help_and_version_exit_0),
        cmocka_unit_test(test_diff_of_report_files_exits_1_on_a_regression),
        cmocka_unit_test(test_sse_parser_reads_events_split_at_every_byte),
        cmocka_unit_test(test_sse_parser_caps_lines_and_passes_stops_back),
        cmocka_unit_test(test_json_decoder_survives_every_truncation_of_a_run),
        cmocka_unit_test(test_json_decoder_reads_wrong_types_as_absent),
        cmocka_unit_test(test_client_reports_each_failure_with_its_status),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, fake_start, fake_stop);
}
