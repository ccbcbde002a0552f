/* Report writers. A run is seen as a stream of events (what `go test -v`
 * prints, as it happens); the streaming writers (go-test text, test2json)
 * consume events, JUnit XML is written from the finished results. */
#ifndef HANDOFF_REPORT_H
#define HANDOFF_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "result.h"

enum report_event_kind {
    REPORT_SUITE_START, /* suite, ns, time */
    REPORT_TEST_RUN,    /* test, attempt, max_attempts */
    REPORT_OUTPUT,      /* output of test (or of the suite when test is
                            NULL: setup, teardown, runner notes) */
    REPORT_TEST_END,    /* test, attempt, result, soft_failure, flaky,
                            retry, elapsed_ns, reason */
    REPORT_SUITE_END,   /* result, elapsed_ns, reason */
};

/* One event. Every pointer is borrowed for the call. */
struct report_event {
    enum report_event_kind kind;
    int64_t time_unix_ns; /* when it happened */
    const char *suite;    /* suite name */
    const char *ns;       /* suite namespace */
    const char *test;     /* test name; NULL for suite-level events */
    int attempt;          /* 1-based */
    int max_attempts;
    enum result_kind result;
    bool soft_failure; /* TEST_END: failure that does not count */
    bool flaky;        /* TEST_END: passed after failing */
    bool retry;        /* TEST_END: another attempt follows */
    int64_t elapsed_ns;
    const char *output; /* OUTPUT: text, whole lines, each ending
                                   in '\n', already indented as go test
                                   shows it */
    size_t output_len;
    const char *reason; /* TEST_END / SUITE_END: why, or NULL */
};

/* A writer of a streaming format. */
struct reporter {
    void (*on_event)(struct reporter *r, const struct report_event *ev);
    /* Writes what is pending (a summary) and releases the reporter. */
    void (*free)(struct reporter *r);
};

/* Sends ev to r. r may be NULL (nothing happens). */
void report_emit(struct reporter *r, const struct report_event *ev);
/* Finishes and releases r; NULL does nothing. */
void report_free(struct reporter *r);

/* Text in the style of `go test` on out (borrowed; must outlive r). With
 * verbose, like `go test -v`: every test's === RUN, output and --- line.
 * Without, only failing tests with their output, and per suite the final
 * ok/FAIL line. */
struct reporter *report_text_new(FILE *out, bool verbose);

/* Go's test2json event stream (`go test -json`) on out (borrowed). */
struct reporter *report_test2json_new(FILE *out);

/* Writes JUnit XML for the finished suites to out. hostname may be NULL.
 * Returns 0 or ST_IO. */
MUST_CHECK int report_junit_write(FILE *out,
                                  const struct result_suite *const *suites,
                                  size_t n, const char *hostname);

/* The package name a suite has in the go-test and test2json formats:
 * "namespace/suite", or the suite name when the namespace is empty. Writes
 * into out (outlen bytes) and returns out. */
char *report_package_name(const char *ns, const char *suite, char *out,
                          size_t outlen);

#endif
