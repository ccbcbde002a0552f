/* Formatting shared by the go-test text and test2json writers, which must
 * print the very same lines. */
#ifndef HANDOFF_REPORT_INT_H
#define HANDOFF_REPORT_INT_H

#include "buf.h"
#include "report.h"

/* Longest package name ("namespace/suite") the writers keep. */
#define REPORT_PKG_MAX 300

/* The `--- PASS: name (0.00s)` line, the time printed as Go's testing
 * package prints it. An error is a FAIL line: tools that read go test
 * output know no other word. So is a soft failure, with a note after it:
 * go test has no word for a failure that does not count, and hiding it as
 * a PASS would hide it from every tool; the package's ok line shows that
 * it did not fail the suite. */
void report_end_line(struct buf *b, const struct report_event *ev);

/* The runner's notes after a test's end line, each "    handoff: ...\n":
 * the error or skip reason (unless test_output already shows it), soft
 * failure, retry, flaky. */
void report_note_lines(struct buf *b, const struct report_event *ev,
                       const char *test_output);

/* The lines that end a package: "PASS" or "FAIL", then "ok  \t<pkg>\t1.234s"
 * or "FAIL\t<pkg>\t1.234s", with a run-level reason before them. */
void report_summary_lines(struct buf *b, const struct report_event *ev,
                          const char *pkg);

/* A test's Elapsed in test2json: what Go parses back from the "(0.12s)" of
 * its end line (0.12 for 125 ms). */
double report_test_elapsed_s(int64_t ns);

/* The package's Elapsed in test2json: the duration rounded to the
 * millisecond, halves up, as time.Duration.Round does (0.063 for 62.5 ms,
 * where the "ok" line, printed with %.3f, may say 0.062s: Go's own
 * inconsistency, kept). */
double report_pkg_elapsed_s(int64_t ns);

#endif
