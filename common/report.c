/* Dispatch to report writers, and what the formats share. */
#include "report.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "report_int.h"

void report_emit(struct reporter *r, const struct report_event *ev)
{
    if (r) {
        r->on_event(r, ev);
    }
}

void report_free(struct reporter *r)
{
    if (r) {
        r->free(r);
    }
}

char *report_package_name(const char *ns, const char *suite, char *out,
                          size_t outlen)
{
    if (ns && *ns) {
        snprintf(out, outlen, "%s/%s", ns, suite);
    } else {
        snprintf(out, outlen, "%s", suite);
    }
    return out;
}

/* Go's time.Duration.Seconds(), computed as Go does (whole seconds and the
 * rest apart), so that printf rounds the very same double Go's fmt rounds.
 * A negative duration (a wall clock step) counts as 0. */
static double go_seconds(int64_t ns)
{
    if (ns < 0) {
        ns = 0;
    }
    return (double)(ns / CLOCK_NS_PER_S) + (double)(ns % CLOCK_NS_PER_S) / 1e9;
}

/* A test's time as testing prints it: fmt "%.2f" (round half to even on
 * the binary value, as C's printf does too), "0.12" for 125 ms. */
static void test_seconds_text(int64_t ns, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.2f", go_seconds(ns));
}

double report_test_elapsed_s(int64_t ns)
{
    char text[64];

    test_seconds_text(ns, text, sizeof(text));
    return strtod(text, NULL);
}

double report_pkg_elapsed_s(int64_t ns)
{
    int64_t rest;

    if (ns < 0) {
        ns = 0;
    }
    /* time.Duration.Round(time.Millisecond): halves away from zero. */
    rest = ns % CLOCK_NS_PER_MS;
    ns -= rest;
    if (rest * 2 >= CLOCK_NS_PER_MS) {
        ns += CLOCK_NS_PER_MS;
    }
    return go_seconds(ns);
}

static const char *end_word(enum result_kind k)
{
    switch (k) {
    case RESULT_PASSED:
        return "PASS";
    case RESULT_SKIPPED:
        return "SKIP";
    default:
        return "FAIL";
    }
}

void report_end_line(struct buf *b, const struct report_event *ev)
{
    char secs[64];

    test_seconds_text(ev->elapsed_ns, secs, sizeof(secs));
    buf_addf(b, "--- %s: %s (%ss)\n", end_word(ev->result), ev->test, secs);
}

void report_note_lines(struct buf *b, const struct report_event *ev,
                       const char *test_output)
{
    if (ev->result == RESULT_ERROR && ev->reason && *ev->reason) {
        buf_addf(b, "    handoff: error: %s\n", ev->reason);
    } else if (ev->result == RESULT_SKIPPED && ev->reason && *ev->reason &&
               !(test_output && strstr(test_output, ev->reason))) {
        buf_addf(b, "    handoff: skipped: %s\n", ev->reason);
    }
    if (ev->soft_failure) {
        buf_adds(b, "    handoff: soft failure: does not fail the suite\n");
    }
    if (ev->retry) {
        buf_addf(b, "    handoff: attempt %d of %d failed, retrying\n",
                 ev->attempt, ev->max_attempts);
    }
    if (ev->flaky) {
        buf_addf(b, "    handoff: flaky: passed on attempt %d of %d\n",
                 ev->attempt, ev->max_attempts);
    }
}

void report_summary_lines(struct buf *b, const struct report_event *ev,
                          const char *pkg)
{
    /* cmd/go prints "%.3fs" of the unrounded duration. */
    double s = go_seconds(ev->elapsed_ns);

    if (ev->reason && *ev->reason) {
        buf_addf(b, "handoff: run %s: %s\n", result_kind_str(ev->result),
                 ev->reason);
    }
    if (ev->result == RESULT_PASSED) {
        buf_addf(b, "PASS\nok  \t%s\t%.3fs\n", pkg, s);
    } else {
        buf_addf(b, "FAIL\nFAIL\t%s\t%.3fs\n", pkg, s);
    }
}
