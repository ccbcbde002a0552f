/*
 * handoff.h - the Handoff test API.
 *
 * You write end-to-end tests as plain C functions that take an hf_t *, group
 * them into a suite with HF_SUITE, and link the file into a worker binary
 * whose main() calls hf_main(). The same binary runs the suites locally
 * (`worker run SUITE`) and as a distributed worker (`worker serve`).
 *
 *     #include <handoff.h>
 *
 *     static void test_health(hf_t *t)
 *     {
 *         int status = http_get_status("http://svc/healthz");
 *         HF_REQUIRE_INT(t, status, ==, 200);
 *         hf_logf(t, "healthy");
 *     }
 *
 *     HF_SUITE(smoke,
 *              .namespace = "payments",
 *              .description = "Is the payments API up?",
 *              .tests = HF_TESTS(HF_TEST(test_health)));
 *
 * and, in one file of the binary:
 *
 *     int main(int argc, char **argv) { return hf_main(argc, argv); }
 *
 * How a suite runs. A suite run happens in a child process that the runner
 * supervises; your code never runs in the supervising process. In that child
 * the runner calls setup, then each selected test in order, then teardown.
 * A test ends when its function returns or calls a fatal function (hf_fatal,
 * hf_fail_now, hf_skip_now, a failed HF_REQUIRE_*). Its cleanups then run,
 * last registered first, whatever the outcome.
 *
 * If a test crashes (a signal, abort(), a failed assert(), exit()) or
 * overruns its timeout, it gets the result "error" with the reason and the
 * tail of its output, and the runner replaces the child: setup runs again in
 * the new child before the remaining tests. Setup must therefore be
 * idempotent (safe to run more than once against the same system).
 *
 * Results. A test attempt is passed, failed (an assertion failed), skipped,
 * or error (it crashed or timed out). A failed or errored test is run again
 * up to its max_attempts; each attempt is kept. A test that failed and then
 * passed is reported flaky.
 *
 * Threads. The hf_* functions of a test must be called from the thread that
 * runs the test (the way Go's t.FailNow must be), except hf_log/hf_logf,
 * hf_error/hf_errorf and the HF_CHECK_* family, which any thread of the test
 * may call while the test is running.
 *
 * Output. Everything the test writes to stdout and stderr, and every hf_log
 * line, is captured per test in the order it happened, up to a per-test cap;
 * when the cap is hit the report says how much was dropped.
 *
 * Sharing state. Setup, the tests and teardown of one child run in one
 * process, in order, on one thread: setup may keep what the tests need (a
 * server's address, a client, a token) in file-scope variables. Each
 * replacement child starts from the worker's initial memory and runs setup
 * again, so nothing leaks from a crashed child into the next.
 *
 * Helper functions. hf_log, hf_error and the HF_CHECK_* macros record the
 * file:line where they are written. For a helper that should report its
 * caller's line (Go's t.Helper), make the helper a macro that passes
 * __FILE__ and __LINE__ to the *_at functions (hf_log_at, hf_error_at,
 * hf_fatal_at) or builds a struct hf_site for the hf_check_* functions.
 *
 * Names starting with hf_ and HF_ belong to this API. Anything else in the
 * library is internal and may change. The header is C11 (GCC or Clang: suites
 * register through constructor functions).
 */
#ifndef HANDOFF_H
#define HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define HF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define HF_NORETURN __attribute__((noreturn))
#define HF_API __attribute__((visibility("default")))
#else
#define HF_PRINTF(fmt, args)
#define HF_NORETURN
#define HF_API
#endif

#define HF_VERSION_MAJOR 0
#define HF_VERSION_MINOR 1
#define HF_VERSION_PATCH 0

/* The state of one running test attempt (Go's *testing.T). Also passed to
 * setup and teardown, where a failure means the phase failed. */
typedef struct hf_t hf_t;

/* A named, timed section of a test (see hf_span_start). */
typedef struct hf_span hf_span;

/* A test: a function and its name. Use HF_TEST(fn, ...options). */
struct hf_test {
    const char *name; /* the function's name */
    void (*fn)(hf_t *t);
    int max_attempts;   /* 0: the suite's */
    int64_t timeout_ms; /* 0: the suite's test_timeout_ms */
};

struct hf_workflow; /* a load-test workflow: see "Load tests" below */

/* A suite. Fields left zero take the defaults below. */
struct hf_suite {
    const char *name;      /* unique in the binary; [A-Za-z0-9_.-] */
    const char *namespace; /* grouping, e.g. a team; default "default" */
    const char *description;
    /* Optional. Run in the child before the first test and again in every
     * replacement child; a failure (hf_error, hf_fatal, a crash) skips every
     * test and makes the run's result error. */
    void (*setup)(hf_t *t);
    /* Optional. Runs after the last test whenever setup ran, also after a
     * failed setup; a failure makes the run's result error. */
    void (*teardown)(hf_t *t);
    const struct hf_test *tests; /* HF_TESTS(...): ends with a zero entry */
    int max_attempts;            /* per test; default 1 (no retries) */
    int64_t test_timeout_ms;     /* per attempt; default 60 000 (1 minute) */
    int64_t timeout_ms;          /* whole suite run; default 3 600 000 (1 h) */
    /* Optional: load-test workflows, HF_WORKFLOWS(...). A suite may have
     * workflows and no tests. */
    const struct hf_workflow *workflows;
};

/* HF_TEST(fn) or HF_TEST(fn, .max_attempts = 3, .timeout_ms = 5000). */
#define HF_TEST(...) HF_TEST_I(__VA_ARGS__, )
#define HF_TEST_I(func, ...)                                                   \
    {                                                                          \
        .name = #func, .fn = (func), __VA_ARGS__                               \
    }
/* The tests of a suite, in order: HF_TESTS(HF_TEST(a), HF_TEST(b)). */
#define HF_TESTS(...)                                                          \
    ((const struct hf_test[]){__VA_ARGS__, {.name = NULL, .fn = NULL}})

/* Defines suite `id` (a C identifier, also its name) and registers it when
 * the program starts, so linking the file into a worker is all it takes.
 * The remaining arguments are struct hf_suite field initialisers. */
#define HF_SUITE(id, ...)                                                      \
    static const struct hf_suite hf_suite_def_##id = {.name = #id,             \
                                                      __VA_ARGS__};            \
    __attribute__((constructor)) static void hf_suite_ctor_##id(void)          \
    {                                                                          \
        hf_register_suite(&hf_suite_def_##id);                                 \
    }

/* Registers a suite explicitly (HF_SUITE does this for you). Call before
 * hf_main. The suite and everything it points to is borrowed for the life of
 * the program. A duplicate or invalid suite is reported by hf_main, which
 * then exits with status 2. */
HF_API void hf_register_suite(const struct hf_suite *suite);

/* The worker's entry point: parses the command line (run, list, serve, help)
 * and returns the process exit status. Call it from main() and return its
 * value. */
HF_API int hf_main(int argc, char **argv);

/* ---- Logging ---------------------------------------------------------- */

/* Appends a line to the test's output, prefixed with the caller's file:line
 * as `go test` shows t.Log. */
#define hf_log(t, msg) hf_log_at((t), __FILE__, __LINE__, "%s", (msg))
#define hf_logf(t, ...) hf_log_at((t), __FILE__, __LINE__, __VA_ARGS__)
HF_API void hf_log_at(hf_t *t, const char *file, int line, const char *fmt, ...)
    HF_PRINTF(4, 5);

/* ---- Failing and skipping --------------------------------------------- */

/* Logs and marks the test failed; the test goes on. */
#define hf_error(t, msg) hf_error_at((t), __FILE__, __LINE__, "%s", (msg))
#define hf_errorf(t, ...) hf_error_at((t), __FILE__, __LINE__, __VA_ARGS__)
HF_API void hf_error_at(hf_t *t, const char *file, int line, const char *fmt,
                        ...) HF_PRINTF(4, 5);

/* Logs, marks the test failed and stops it (cleanups still run). */
#define hf_fatal(t, msg) hf_fatal_at((t), __FILE__, __LINE__, "%s", (msg))
#define hf_fatalf(t, ...) hf_fatal_at((t), __FILE__, __LINE__, __VA_ARGS__)
HF_API HF_NORETURN void hf_fatal_at(hf_t *t, const char *file, int line,
                                    const char *fmt, ...) HF_PRINTF(4, 5);

/* Marks the test failed; it goes on. */
HF_API void hf_fail(hf_t *t);
/* Marks the test failed and stops it. */
HF_API HF_NORETURN void hf_fail_now(hf_t *t);

/* Logs and stops the test, marking it skipped (unless it already failed). */
#define hf_skip(t, msg) hf_skip_at((t), __FILE__, __LINE__, "%s", (msg))
#define hf_skipf(t, ...) hf_skip_at((t), __FILE__, __LINE__, __VA_ARGS__)
HF_API HF_NORETURN void hf_skip_at(hf_t *t, const char *file, int line,
                                   const char *fmt, ...) HF_PRINTF(4, 5);
/* Stops the test, marking it skipped. */
HF_API HF_NORETURN void hf_skip_now(hf_t *t);

HF_API bool hf_failed(const hf_t *t);
HF_API bool hf_skipped(const hf_t *t);

/* Marks the test's failure as soft: if it fails, the suite run still
 * passes. For new tests against versions not yet deployed everywhere. */
HF_API void hf_soft_failure(hf_t *t);

/* ---- About the running test ------------------------------------------- */

/* The test's name ("setup"/"teardown" in those phases). Borrowed. */
HF_API const char *hf_name(const hf_t *t);
/* The attempt number, 1-based. */
HF_API int hf_attempt(const hf_t *t);
/* The suite's name. Borrowed. */
HF_API const char *hf_suite_name(const hf_t *t);
/* A run parameter (--param k=v locally, "params" of a run request), or NULL.
 * Borrowed for the suite run. */
HF_API const char *hf_param(const hf_t *t, const char *key);

/* ---- Cleanup ---------------------------------------------------------- */

/* Registers fn(t, arg) to run after the test, whatever its outcome. Cleanups
 * run last registered first; each registered one runs, and one may register
 * more. arg is passed back as given (const only so that string literals need
 * no cast). A cleanup may call hf_error; a fatal call inside a cleanup ends
 * that cleanup only. Cleanups count against the test's deadline. A crash or
 * a kill skips them: resources outside the process (rows, orders, cloud
 * objects) are then left for teardown to sweep. */
HF_API void hf_cleanup(hf_t *t, void (*fn)(hf_t *t, void *arg),
                       const void *arg);
/* Registers free(ptr) as a cleanup: memory the test allocates and gives up
 * at its end, whatever stops it. */
HF_API void hf_cleanup_free(hf_t *t, void *ptr);

/* ---- Deadline and cancellation ---------------------------------------- */

/* The attempt's deadline in milliseconds since the Unix epoch. */
HF_API int64_t hf_deadline_ms(const hf_t *t);
/* Milliseconds left before the deadline; 0 once it has passed. A test that
 * is still running at its deadline is reported "error: timed out", so leave
 * yourself a margin for cleanups and reporting. */
HF_API int64_t hf_remaining_ms(const hf_t *t);
/* True once the test should stop: its deadline passed, or the run was
 * cancelled or is shutting down. Long loops should check it and return. A
 * test that does not stop is killed after a grace period (default 1 s). A
 * test that returns because the run was cancelled is reported "error:
 * interrupted" (unless it failed). */
HF_API bool hf_cancelled(const hf_t *t);
/* A descriptor that becomes readable when the run is cancelled, for
 * poll()/select() loops and curl_multi_poll's extra descriptors: wait on it
 * with hf_remaining_ms() as the timeout. Never read from or close it. */
HF_API int hf_cancel_fd(const hf_t *t);
/* Sets the attempt's deadline to now + ms (ms > 0). */
HF_API void hf_set_timeout_ms(hf_t *t, int64_t ms);

/* ---- Values and spans, kept with the result --------------------------- */

/* Sets key to value (both copied) for this attempt: correlation ids, request
 * ids, anything that helps find the test's traces. Setting a key again
 * replaces its value. Kept even if the test crashes later. Keys are capped
 * at 256 bytes, values at 8 KiB, 1000 keys per attempt. */
HF_API void hf_set_value(hf_t *t, const char *key, const char *value);
/* hf_set_value with a printf-formatted value. */
HF_API void hf_set_valuef(hf_t *t, const char *key, const char *fmt, ...)
    HF_PRINTF(3, 4);
/* The value set for key in this attempt, or NULL. Borrowed until the value
 * changes or the test ends. */
HF_API const char *hf_value(const hf_t *t, const char *key);

/* Starts a named, timed section. The handle is valid until hf_span_end; an
 * open span is ended when the test ends. */
HF_API hf_span *hf_span_start(hf_t *t, const char *name);
/* Sets a key/value on the span; value is printf-formatted. */
HF_API void hf_span_set(hf_span *span, const char *key, const char *fmt, ...)
    HF_PRINTF(3, 4);
HF_API void hf_span_end(hf_span *span);

/* ---- Environment ------------------------------------------------------ */

/* Sets an environment variable for the rest of the test; the old value is
 * restored when the test ends. Returns 0, or -1 if name is invalid. */
HF_API int hf_setenv(hf_t *t, const char *name, const char *value);
/* Creates a new, empty directory for the test and returns its path
 * (borrowed until the test ends, when the directory and its contents are
 * removed). Each call gives a new directory. Fatal if it cannot be made. */
HF_API const char *hf_tempdir(hf_t *t);

/* ---- Assertions ------------------------------------------------------- */
/*
 * Two families with the same shapes: HF_CHECK_* marks the test failed and
 * goes on (returns true if the check held); HF_REQUIRE_* stops the test.
 * On failure the message shows the expression, both values and the
 * caller's file:line. Each operand is evaluated once.
 *
 *   HF_CHECK(t, cond)                  any scalar condition
 *   HF_CHECK_INT(t, a, op, b)          signed integers; op is one of
 *                                      == != < <= > >=
 *   HF_CHECK_UINT(t, a, op, b)         unsigned integers
 *   HF_CHECK_STR_EQ(t, a, b)           C strings (NULL-safe)
 *   HF_CHECK_STR_NE(t, a, b)
 *   HF_CHECK_STR_CONTAINS(t, s, sub)
 *   HF_CHECK_MEM_EQ(t, a, b, len)      bytes
 *   HF_CHECK_MEM_NE(t, a, b, len)
 *   HF_CHECK_NEAR(t, a, b, tol)        doubles: |a - b| <= tol
 *   HF_CHECK_NULL(t, p)
 *   HF_CHECK_NOT_NULL(t, p)
 */

enum hf_check_mode { HF_MODE_CHECK, HF_MODE_REQUIRE };

struct hf_site {
    const char *file;
    int line;
    enum hf_check_mode mode;
};

#define HF_SITE_(mode) ((struct hf_site){__FILE__, __LINE__, (mode)})

HF_API bool hf_check_bool(hf_t *t, struct hf_site site, const char *expr,
                          bool ok);
HF_API bool hf_check_int(hf_t *t, struct hf_site site, const char *a_expr,
                         const char *op, const char *b_expr, intmax_t a,
                         intmax_t b);
HF_API bool hf_check_uint(hf_t *t, struct hf_site site, const char *a_expr,
                          const char *op, const char *b_expr, uintmax_t a,
                          uintmax_t b);
HF_API bool hf_check_str(hf_t *t, struct hf_site site, const char *a_expr,
                         const char *op, const char *b_expr, const char *a,
                         const char *b);
HF_API bool hf_check_mem(hf_t *t, struct hf_site site, const char *a_expr,
                         const char *op, const char *b_expr, const void *a,
                         const void *b, size_t len);
HF_API bool hf_check_near(hf_t *t, struct hf_site site, const char *a_expr,
                          const char *b_expr, double a, double b, double tol);
HF_API bool hf_check_ptr(hf_t *t, struct hf_site site, const char *expr,
                         bool want_null, const void *p);

#define HF_ASSERT_BOOL_(t, m, cond)                                            \
    hf_check_bool((t), HF_SITE_(m), #cond, (cond) ? true : false)
#define HF_ASSERT_INT_(t, m, a, op, b)                                         \
    ((void)sizeof((a)op(b)), hf_check_int((t), HF_SITE_(m), #a, #op, #b,       \
                                          (intmax_t)(a), (intmax_t)(b)))
#define HF_ASSERT_UINT_(t, m, a, op, b)                                        \
    ((void)sizeof((a)op(b)), hf_check_uint((t), HF_SITE_(m), #a, #op, #b,      \
                                           (uintmax_t)(a), (uintmax_t)(b)))

#define HF_CHECK(t, cond) HF_ASSERT_BOOL_(t, HF_MODE_CHECK, cond)
#define HF_CHECK_INT(t, a, op, b) HF_ASSERT_INT_(t, HF_MODE_CHECK, a, op, b)
#define HF_CHECK_UINT(t, a, op, b) HF_ASSERT_UINT_(t, HF_MODE_CHECK, a, op, b)
#define HF_CHECK_STR_EQ(t, a, b)                                               \
    hf_check_str((t), HF_SITE_(HF_MODE_CHECK), #a, "==", #b, (a), (b))
#define HF_CHECK_STR_NE(t, a, b)                                               \
    hf_check_str((t), HF_SITE_(HF_MODE_CHECK), #a, "!=", #b, (a), (b))
#define HF_CHECK_STR_CONTAINS(t, s, sub)                                       \
    hf_check_str((t), HF_SITE_(HF_MODE_CHECK), #s, "contains", #sub, (s), (sub))
#define HF_CHECK_MEM_EQ(t, a, b, len)                                          \
    hf_check_mem((t), HF_SITE_(HF_MODE_CHECK), #a, "==", #b, (a), (b), (len))
#define HF_CHECK_MEM_NE(t, a, b, len)                                          \
    hf_check_mem((t), HF_SITE_(HF_MODE_CHECK), #a, "!=", #b, (a), (b), (len))
#define HF_CHECK_NEAR(t, a, b, tol)                                            \
    hf_check_near((t), HF_SITE_(HF_MODE_CHECK), #a, #b, (a), (b), (tol))
#define HF_CHECK_NULL(t, p)                                                    \
    hf_check_ptr((t), HF_SITE_(HF_MODE_CHECK), #p, true, (p))
#define HF_CHECK_NOT_NULL(t, p)                                                \
    hf_check_ptr((t), HF_SITE_(HF_MODE_CHECK), #p, false, (p))

#define HF_REQUIRE(t, cond) HF_ASSERT_BOOL_(t, HF_MODE_REQUIRE, cond)
#define HF_REQUIRE_INT(t, a, op, b) HF_ASSERT_INT_(t, HF_MODE_REQUIRE, a, op, b)
#define HF_REQUIRE_UINT(t, a, op, b)                                           \
    HF_ASSERT_UINT_(t, HF_MODE_REQUIRE, a, op, b)
#define HF_REQUIRE_STR_EQ(t, a, b)                                             \
    hf_check_str((t), HF_SITE_(HF_MODE_REQUIRE), #a, "==", #b, (a), (b))
#define HF_REQUIRE_STR_NE(t, a, b)                                             \
    hf_check_str((t), HF_SITE_(HF_MODE_REQUIRE), #a, "!=", #b, (a), (b))
#define HF_REQUIRE_STR_CONTAINS(t, s, sub)                                     \
    hf_check_str((t), HF_SITE_(HF_MODE_REQUIRE), #s, "contains", #sub, (s),    \
                 (sub))
#define HF_REQUIRE_MEM_EQ(t, a, b, len)                                        \
    hf_check_mem((t), HF_SITE_(HF_MODE_REQUIRE), #a, "==", #b, (a), (b), (len))
#define HF_REQUIRE_MEM_NE(t, a, b, len)                                        \
    hf_check_mem((t), HF_SITE_(HF_MODE_REQUIRE), #a, "!=", #b, (a), (b), (len))
#define HF_REQUIRE_NEAR(t, a, b, tol)                                          \
    hf_check_near((t), HF_SITE_(HF_MODE_REQUIRE), #a, #b, (a), (b), (tol))
#define HF_REQUIRE_NULL(t, p)                                                  \
    hf_check_ptr((t), HF_SITE_(HF_MODE_REQUIRE), #p, true, (p))
#define HF_REQUIRE_NOT_NULL(t, p)                                              \
    hf_check_ptr((t), HF_SITE_(HF_MODE_REQUIRE), #p, false, (p))

/* ---- Load tests: workflows run by virtual users ------------------------ */
/*
 * A workflow is straight-line C that a virtual user (VU) runs once per
 * iteration. Requests made with hf_http_* block the calling VU only: the
 * engine runs thousands of VUs as coroutines on a few threads, records
 * every request (timings, status, bytes) without user code, and
 * evaluates the thresholds on the merged data. Run one locally with
 * `worker load WORKFLOW [flags]` (worker help). Guide: docs/load.md.
 *
 *     static void get(hf_vu *vu)
 *     {
 *         const hf_http_response *r =
 *             hf_http_get(vu, hf_vu_param(vu, "TARGET_URL"));
 *         hf_check(vu, "status is 200", r->status == 200);
 *     }
 *
 *     HF_SUITE(api, .workflows = HF_WORKFLOWS(HF_WORKFLOW(get,
 *         .thresholds = HF_THRESHOLDS("http_req_failed: rate<0.01",
 *                                     "http_req_duration: p(95)<200ms"))));
 *
 * VU code runs on a small stack (16 KiB by default, --stack to change):
 * keep big buffers off it (malloc them in init). Do not block the thread
 * (sleep(), blocking sockets): use hf_sleep and hf_http_*.
 */

typedef struct hf_vu hf_vu;

struct hf_workflow {
    const char *name; /* unique in the binary; [A-Za-z0-9_.-] */
    void (*fn)(hf_vu *vu);
    /* Optional, once per run before any VU (once across all shards of a
     * distributed run), on a VU of its own: may make requests and hand
     * data to every VU with hf_setup_data_set. */
    void (*setup)(hf_vu *vu);
    /* Optional, once per process after setup: builds a read-only object
     * from setup's data (a parsed CSV of users...), hf_vu_shared, freed
     * with free_shared at the end. */
    void *(*shared)(const void *data, size_t len);
    void (*free_shared)(void *shared);
    /* Optional, per VU: before its first iteration, and at the end (to
     * free what init put in hf_vu_set_state). */
    void (*init)(hf_vu *vu);
    void (*fini)(hf_vu *vu);
    /* Optional, once per run after the last VU, with setup's data. */
    void (*teardown)(hf_vu *vu);
    /* HF_THRESHOLDS("METRIC[{tags}]: COND", ...): pass/fail criteria. */
    const char *const *thresholds;
    /* Defaults for what the command line or the run request leaves out:
     * an executor ("constant-vus", "ramping-vus", "constant-arrival-rate",
     * "ramping-arrival-rate", "per-vu-iterations", "shared-iterations"),
     * VUs, a duration ("30s"), a rate per second, max VUs, stages
     * ("30s:10,1m:10"), iterations. */
    const char *executor;
    int vus;
    const char *duration;
    double rate;
    int max_vus;
    const char *stages;
    long iterations;
    /* A directory whose .env and env.default supply hf_vu_param values
     * (relative to the working directory); --service-dir overrides. */
    const char *service_dir;
    const char *description;
};

/* HF_WORKFLOW(fn) or HF_WORKFLOW(fn, .init = ..., .vus = 10, ...). */
#define HF_WORKFLOW(...) HF_WORKFLOW_I(__VA_ARGS__, )
#define HF_WORKFLOW_I(func, ...)                                               \
    {                                                                          \
        .name = #func, .fn = (func), __VA_ARGS__                               \
    }
#define HF_WORKFLOWS(...)                                                      \
    ((const struct hf_workflow[]){__VA_ARGS__, {.name = NULL, .fn = NULL}})
#define HF_THRESHOLDS(...) ((const char *const[]){__VA_ARGS__, NULL})

struct hf_http_header {
    const char *name;
    const char *value;
};

struct hf_http_request {
    const char *method; /* NULL: "GET" */
    const char *url;    /* http://host[:port][/path][?query] */
    /* The name the request is recorded under; NULL: method + path without
     * the query ("GET /users/42"). Set it when URLs carry ids, or each id
     * becomes a name of its own. */
    const char *name;
    const struct hf_http_header *headers;
    size_t n_headers;
    const void *body; /* sent with a Content-Length */
    size_t body_len;
    int64_t timeout_ms; /* 0: 60 s */
    bool discard_body;  /* count the body's bytes but keep none */
};

/* A response, valid until the VU's next request. */
typedef struct hf_http_response {
    int status;             /* 0 when the request failed: see error */
    const char *error;      /* NULL, or "timeout", "connect", "dns", "reset",
                          "parse", "invalid", "tls", "cancelled" */
    const char *error_text; /* detail, "" when none */
    const char *body;       /* NUL-terminated; "" when none */
    size_t body_len;
    double duration_ms; /* sending + waiting + receiving */
    const void *internal_;
} hf_http_response;

/* Sends the request and suspends the VU until the response (or an error,
 * or the timeout). Never NULL. */
HF_API const hf_http_response *hf_http_request(hf_vu *vu,
                                               const struct hf_http_request *r);
HF_API const hf_http_response *hf_http_get(hf_vu *vu, const char *url);
/* POST with a body and a Content-Type (NULL: none). */
HF_API const hf_http_response *hf_http_post(hf_vu *vu, const char *url,
                                            const char *content_type,
                                            const void *body, size_t len);
/* The value of the response's first header called name, or NULL. */
HF_API const char *hf_http_header(const hf_http_response *r, const char *name);

/* Starts the step name: requests and checks from now on belong to it, and
 * its duration is recorded when the next step starts or the iteration
 * ends. NULL ends the current step. */
HF_API void hf_step(hf_vu *vu, const char *name);
/* Counts a pass or a fail of the check name; the VU goes on. Returns ok. */
HF_API bool hf_check(hf_vu *vu, const char *name, bool ok);
/* Suspends the VU for ms (returns early, at once, when its iteration is
 * interrupted: hf_vu_stopping). */
HF_API void hf_sleep(hf_vu *vu, int64_t ms);

/* 1..VUs, unique in the run (0 in setup and teardown). In a distributed
 * run, unique across the shards: each shard numbers its VUs after those
 * of the shards before it (shard i of K: the sum of shards 0..i-1's VUs,
 * then 1..its own). An arrival-rate VU that was let go (idle) gives its
 * id to the next one made. */
HF_API int hf_vu_id(const hf_vu *vu);
/* Iterations this VU completed before the current one. */
HF_API uint64_t hf_vu_iteration(const hf_vu *vu);
/* A pointer of the VU's own (set it in init). */
HF_API void *hf_vu_state(const hf_vu *vu);
HF_API void hf_vu_set_state(hf_vu *vu, void *state);
/* A variable: the run's params (--param), then the environment, then the
 * service directory's .env, then its env.default; NULL when none has it.
 * Borrowed for the run. */
HF_API const char *hf_vu_param(const hf_vu *vu, const char *key);
/* What setup stored, and its length (NULL, 0 when nothing). */
HF_API const void *hf_vu_setup_data(const hf_vu *vu, size_t *len);
/* In setup: stores data (copied) for every VU and teardown. */
HF_API void hf_setup_data_set(hf_vu *vu, const void *data, size_t len);
/* The workflow's shared object, or NULL. */
HF_API void *hf_vu_shared(const hf_vu *vu);
/* True once this VU's iteration is interrupted: the graceful stop ended,
 * or (ramping-vus) the graceful ramp-down of a VU the falling target no
 * longer wants. Requests and sleeps then return at once: the workflow
 * should return. */
HF_API bool hf_vu_stopping(const hf_vu *vu);

#endif
