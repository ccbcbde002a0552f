/* The result model of one suite run: setup, tests with one entry per
 * attempt, teardown. Built by the runner, stored by the controller, read by
 * the report writers. */
#ifndef HANDOFF_RESULT_H
#define HANDOFF_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

/* Outcome of an attempt, a test, a phase or a suite run. FAILED means an
 * assertion failed; ERROR means the test or the infrastructure crashed, hung
 * or could not run: users act differently on each. */
enum result_kind {
    RESULT_NONE, /* not finished */
    RESULT_PASSED,
    RESULT_FAILED,
    RESULT_SKIPPED,
    RESULT_ERROR,
};

/* "passed", "failed", "skipped", "error", or "none". */
const char *result_kind_str(enum result_kind k);
/* Inverse of result_kind_str. Returns 0 or ST_INVALID. */
MUST_CHECK int result_kind_parse(const char *s, enum result_kind *out);

struct result_kv {
    char *key;
    char *value;
};

/* A named, timed section of a test with key/values. */
struct result_span {
    char *name;
    int64_t start_unix_ns;
    int64_t duration_ns; /* -1 while open */
    struct result_kv *attrs;
    size_t n_attrs;
};

/* One attempt of one test. */
struct result_attempt {
    int attempt; /* 1-based */
    enum result_kind result;
    bool soft_failure; /* a failure here does not fail the suite */
    int64_t start_unix_ns;
    int64_t duration_ns;
    char *reason;       /* why it errored or was skipped; may be NULL */
    struct buf log;     /* output as `go test -v` shows it */
    size_t log_dropped; /* bytes dropped by the per-test cap */
    struct result_kv *values;
    size_t n_values;
    struct result_span *spans;
    size_t n_spans;
};

struct result_test {
    char *name;
    struct result_attempt *attempts;
    size_t n_attempts;
};

/* Setup or teardown of a suite run. */
struct result_phase {
    bool ran;
    enum result_kind result; /* PASSED, FAILED or ERROR once ran */
    char *reason;
    struct buf log;
    int64_t start_unix_ns;
    int64_t duration_ns;
};

struct result_suite {
    char *name;
    char *ns; /* namespace */
    struct result_phase setup;
    struct result_phase teardown;
    struct result_test *tests;
    size_t n_tests;
    int64_t start_unix_ns;
    int64_t duration_ns;
    enum result_kind result; /* set by result_suite_finish */
    char *reason;            /* run-level reason (suite timeout, cancel) */
    struct buf log;          /* run-level output: runner notes and output
                                outside setup, tests and teardown */
};

/* Counts over the final attempt of each test. */
struct result_counts {
    size_t tests;
    size_t passed;
    size_t failed;
    size_t skipped;
    size_t errors;
    size_t soft_failures; /* failed or errored, but soft */
    size_t flaky;
    size_t attempts; /* all attempts of all tests */
};

void result_suite_init(struct result_suite *s, const char *name,
                       const char *ns);
void result_suite_cleanup(struct result_suite *s);

/* Appends a test entry and returns it (owned by s, valid until the next
 * result_suite_add_test). */
struct result_test *result_suite_add_test(struct result_suite *s,
                                          const char *name);
/* Appends an attempt numbered n_attempts + 1, result NONE, log capped at
 * log_cap bytes (0: no cap). Owned by t, valid until the next add. */
struct result_attempt *result_test_add_attempt(struct result_test *t,
                                               size_t log_cap);

/* Sets or replaces a key/value in an array. */
void result_kv_set(struct result_kv **kvs, size_t *n, const char *key,
                   const char *value);
/* Returns the value for key or NULL. */
const char *result_kv_get(const struct result_kv *kvs, size_t n,
                          const char *key);
void result_kv_free(struct result_kv *kvs, size_t n);

/* Appends a span and returns it (owned by a). */
struct result_span *result_attempt_add_span(struct result_attempt *a,
                                            const char *name,
                                            int64_t start_unix_ns);

/* The last attempt of t, or NULL if it has none. */
const struct result_attempt *result_test_final(const struct result_test *t);
/* The test's final outcome: its last attempt's, or NONE. */
enum result_kind result_test_result(const struct result_test *t);
/* True when an earlier attempt failed or errored and the last one passed. */
bool result_test_is_flaky(const struct result_test *t);
/* True when the final attempt failed or errored as a soft failure. */
bool result_test_is_soft_failure(const struct result_test *t);

void result_suite_counts(const struct result_suite *s,
                         struct result_counts *out);
/* Computes s->result from its phases and tests: ERROR if setup or teardown
 * did not pass, a run-level reason is set, or a test errored (not soft);
 * otherwise FAILED if a test failed (not soft); otherwise PASSED. */
void result_suite_finish(struct result_suite *s);
/* The exit status a runner gives for these suites: 0 when all passed, 1
 * otherwise. */
int result_exit_code(const struct result_suite *const *suites, size_t n);

#endif
