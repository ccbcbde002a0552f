/* JUnit XML as Jenkins, GitLab and GitHub actions read it.
 *
 * One <testsuite> per suite run, named like the go-test package
 * ("namespace/suite"), its timestamp the start in UTC without a zone
 * suffix (the form the common JUnit schema allows); one <testcase
 * classname="namespace.suite"> per test entry (GitLab shows classname as
 * the suite and keys tests on classname+name). The final attempt decides
 * the testcase: <failure> for a failed assertion, <error> for a crash,
 * timeout, cancel or an attempt that never finished, <skipped> with the
 * reason. The log of a failed or errored attempt is the body of its
 * <failure>/<error> (where Jenkins, GitLab and the GitHub actions show
 * it), not repeated in <system-out>; a passed or skipped test's log is its
 * <system-out>. Earlier attempts appear as Surefire's rerun elements, each
 * with its log in <system-out>, which Jenkins counts as flakes:
 * <flakyFailure>/<flakyError> when the test finally passed,
 * <rerunFailure>/<rerunError> when it did not.
 *
 * A soft failure is counted as passed, like the suite run counts it: a
 * <failure> would fail the CI job for a suite that passed, a <skipped>
 * would misname it. It stays visible as a testcase property
 * soft_failure=true and a first <system-out> line saying so, followed by
 * the log. A setup or teardown that did not pass gets a testcase of its
 * own ("setup", "teardown") with <error>; a run-level reason (suite
 * timeout, cancel) goes to the suite's <system-err>. Counts in the
 * attributes are computed from the testcases written, so they always
 * match. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"
#include "report_int.h"
#include "xmlw.h"

struct junit_counts {
    size_t tests;
    size_t failures;
    size_t errors;
    size_t skipped;
    double time_s;
};

/* Text content. */
static void xml_escape(struct buf *b, const char *s, size_t n)
{
    xmlw_escape(b, s, n, false);
}

/* An attribute value. */
static void xml_str(struct buf *b, const char *s)
{
    xmlw_attr(b, s);
}

/* The first non-blank line of text, trimmed, at most 200 bytes: the
 * message attribute of a failure. */
static void first_line(struct buf *b, const char *text)
{
    const char *p = text ? text : "";
    size_t n;

    while (*p == ' ' || *p == '\n' || *p == '\t') {
        p++;
    }
    n = strcspn(p, "\n");
    if (n > 200) {
        n = 200;
        while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    xmlw_escape(b, p, n, true);
}

/* The <failure> (an assertion failed) or <error> (anything else that is
 * not a pass or a skip) of a test's final attempt, holding its log. a is
 * NULL for a test entry without attempts. */
static void outcome_element(struct buf *b, const struct result_attempt *a)
{
    bool failed = a && a->result == RESULT_FAILED;
    const char *tag = failed ? "failure" : "error";

    buf_addf(b, "      <%s message=\"", tag);
    if (!a) {
        buf_adds(b, "did not run");
    } else if (a->result == RESULT_NONE) {
        buf_adds(b, "did not finish");
    } else if (!failed && a->reason) {
        xml_str(b, a->reason);
    } else {
        first_line(b, buf_str(&a->log));
    }
    buf_addf(b, "\" type=\"%s\">", tag);
    if (a) {
        xml_escape(b, buf_str(&a->log), a->log.len);
        if (!failed && a->reason) {
            buf_adds(b, "handoff: error: ");
            xml_escape(b, a->reason, strlen(a->reason));
            buf_addc(b, '\n');
        }
    }
    buf_addf(b, "</%s>\n", tag);
}

/* Earlier attempts of a retried test. */
static void rerun_element(struct buf *b, const struct result_attempt *a,
                          bool finally_passed)
{
    const char *tag;

    if (a->result == RESULT_ERROR) {
        tag = finally_passed ? "flakyError" : "rerunError";
    } else {
        tag = finally_passed ? "flakyFailure" : "rerunFailure";
    }
    buf_addf(b, "      <%s message=\"", tag);
    if (a->result == RESULT_ERROR && a->reason) {
        xml_str(b, a->reason);
    } else {
        first_line(b, buf_str(&a->log));
    }
    buf_addf(b, "\" type=\"%s\">\n        <system-out>",
             a->result == RESULT_ERROR ? "error" : "failure");
    xml_escape(b, buf_str(&a->log), a->log.len);
    buf_addf(b, "</system-out>\n      </%s>\n", tag);
}

static void testcase(struct buf *b, const char *classname,
                     const struct result_test *t, struct junit_counts *c)
{
    const struct result_attempt *last = result_test_final(t);
    enum result_kind k = last ? last->result : RESULT_NONE;
    bool soft = result_test_is_soft_failure(t);
    struct buf inner;
    int64_t ns = 0;

    for (size_t i = 0; i < t->n_attempts; i++) {
        ns += t->attempts[i].duration_ns;
    }
    c->tests++;
    c->time_s += (double)ns / 1e9;
    buf_init(&inner, 0);
    if (soft) {
        buf_adds(&inner, "      <properties><property name=\"soft_failure\" "
                         "value=\"true\"/></properties>\n");
    } else if (k == RESULT_FAILED) {
        c->failures++;
        outcome_element(&inner, last);
    } else if (k == RESULT_ERROR || k == RESULT_NONE) {
        c->errors++;
        outcome_element(&inner, last);
    } else if (k == RESULT_SKIPPED) {
        c->skipped++;
        buf_adds(&inner, "      <skipped message=\"");
        xml_str(&inner, last->reason ? last->reason : "skipped");
        buf_adds(&inner, "\"/>\n");
    }
    for (size_t i = 0; i + 1 < t->n_attempts; i++) {
        if (t->attempts[i].result == RESULT_FAILED ||
            t->attempts[i].result == RESULT_ERROR) {
            rerun_element(&inner, &t->attempts[i], k == RESULT_PASSED);
        }
    }
    /* A failure or error element already holds the log. */
    if (last && (soft || ((k == RESULT_PASSED || k == RESULT_SKIPPED) &&
                          last->log.len))) {
        buf_adds(&inner, "      <system-out>");
        if (soft) {
            buf_addf(&inner,
                     "handoff: soft failure (%s), does not fail the "
                     "suite\n",
                     result_kind_str(k));
        }
        xml_escape(&inner, buf_str(&last->log), last->log.len);
        buf_adds(&inner, "</system-out>\n");
    }
    buf_adds(b, "    <testcase classname=\"");
    xml_str(b, classname);
    buf_adds(b, "\" name=\"");
    xml_str(b, t->name);
    if (inner.len) {
        buf_addf(b, "\" time=\"%.3f\">\n", (double)ns / 1e9);
        buf_add(b, inner.data, inner.len);
        buf_adds(b, "    </testcase>\n");
    } else {
        buf_addf(b, "\" time=\"%.3f\"/>\n", (double)ns / 1e9);
    }
    buf_cleanup(&inner);
}

static void phase_case(struct buf *b, const char *classname, const char *name,
                       const struct result_phase *p, struct junit_counts *c)
{
    if (!p->ran || p->result == RESULT_PASSED) {
        return;
    }
    c->tests++;
    c->errors++;
    c->time_s += (double)p->duration_ns / 1e9;
    buf_adds(b, "    <testcase classname=\"");
    xml_str(b, classname);
    buf_addf(b, "\" name=\"%s\" time=\"%.3f\">\n      <error message=\"", name,
             (double)p->duration_ns / 1e9);
    if (p->reason) {
        xml_str(b, p->reason);
    } else {
        buf_addf(b, "%s %s", name, result_kind_str(p->result));
    }
    buf_adds(b, "\" type=\"error\">");
    xml_escape(b, buf_str(&p->log), p->log.len);
    buf_adds(b, "</error>\n    </testcase>\n");
}

static void suite(struct buf *out, const struct result_suite *s,
                  const char *hostname, struct junit_counts *total)
{
    struct junit_counts c = {0};
    struct buf cases;
    struct result_counts rc;
    char pkg[REPORT_PKG_MAX];
    char classname[REPORT_PKG_MAX];
    char stamp[32];
    time_t secs = (time_t)(s->start_unix_ns / 1000000000);
    struct tm tm;

    report_package_name(s->ns, s->name, pkg, sizeof(pkg));
    snprintf(classname, sizeof(classname), "%s%s%s", s->ns ? s->ns : "",
             s->ns && *s->ns ? "." : "", s->name);
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    result_suite_counts(s, &rc);

    buf_init(&cases, 0);
    phase_case(&cases, classname, "setup", &s->setup, &c);
    for (size_t i = 0; i < s->n_tests; i++) {
        testcase(&cases, classname, &s->tests[i], &c);
    }
    phase_case(&cases, classname, "teardown", &s->teardown, &c);

    buf_adds(out, "  <testsuite name=\"");
    xml_str(out, pkg);
    buf_addf(out,
             "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
             "skipped=\"%zu\" time=\"%.3f\" timestamp=\"%s\" hostname=\"",
             c.tests, c.failures, c.errors, c.skipped,
             (double)s->duration_ns / 1e9, stamp);
    xml_str(out, hostname ? hostname : "localhost");
    buf_adds(out, "\">\n    <properties>\n");
    buf_adds(out, "      <property name=\"namespace\" value=\"");
    xml_str(out, s->ns);
    buf_adds(out, "\"/>\n      <property name=\"suite\" value=\"");
    xml_str(out, s->name);
    buf_addf(out,
             "\"/>\n      <property name=\"result\" value=\"%s\"/>\n"
             "      <property name=\"flaky\" value=\"%zu\"/>\n"
             "      <property name=\"soft_failures\" value=\"%zu\"/>\n"
             "    </properties>\n",
             result_kind_str(s->result), rc.flaky, rc.soft_failures);
    buf_add(out, cases.data ? cases.data : "", cases.len);
    if (s->log.len) {
        buf_adds(out, "    <system-out>");
        xml_escape(out, s->log.data, s->log.len);
        buf_adds(out, "</system-out>\n");
    }
    if (s->reason) {
        buf_adds(out, "    <system-err>handoff: run ");
        xml_str(out, result_kind_str(s->result));
        buf_adds(out, ": ");
        xml_str(out, s->reason);
        buf_adds(out, "</system-err>\n");
    }
    buf_adds(out, "  </testsuite>\n");
    buf_cleanup(&cases);
    total->tests += c.tests;
    total->failures += c.failures;
    total->errors += c.errors;
    total->skipped += c.skipped;
    total->time_s += (double)s->duration_ns / 1e9;
}

int report_junit_write(FILE *out, const struct result_suite *const *suites,
                       size_t n, const char *hostname)
{
    struct junit_counts total = {0};
    struct buf body;
    struct buf head;
    int rc = ST_OK;

    buf_init(&body, 0);
    buf_init(&head, 0);
    for (size_t i = 0; i < n; i++) {
        suite(&body, suites[i], hostname, &total);
    }
    buf_addf(&head,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<testsuites name=\"handoff\" tests=\"%zu\" failures=\"%zu\" "
             "errors=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n",
             total.tests, total.failures, total.errors, total.skipped,
             total.time_s);
    if (fwrite(head.data, 1, head.len, out) != head.len ||
        (body.len && fwrite(body.data, 1, body.len, out) != body.len) ||
        fputs("</testsuites>\n", out) == EOF || fflush(out) != 0) {
        rc = ST_IO;
    }
    buf_cleanup(&body);
    buf_cleanup(&head);
    return rc;
}
