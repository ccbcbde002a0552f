/* JUnit XML of a load run, for the CI systems that read the test suites'
 * JUnit files (Jenkins, GitLab, GitHub actions).
 *
 * As k6's jUnit summary has it, each threshold is a testcase named after
 * its source, with a <failure> giving the observed value when it failed:
 * thresholds are the run's pass/fail criteria. A testcase "run" comes
 * first and carries an <error> when the run was aborted or errored (what
 * the suite writer uses for a crash, timeout or cancel), so a run stopped
 * early fails the CI job even with no threshold defined. The testsuite is
 * named after the workflow, its classname "suite.workflow" (GitLab shows
 * classname as the suite); the run's figures are properties. Counts in the
 * attributes are computed from the testcases written. */
#include <stdio.h>
#include <string.h>

#include "loadreport.h"
#include "xmlw.h"

/* started_at as the common JUnit schema's timestamp: UTC without the
 * fraction and zone, or "" when it is not in the report's form. */
static void timestamp(char *out, size_t n, const char *started_at)
{
    static const char form[] = "dddd-dd-ddTdd:dd:dd";

    out[0] = '\0';
    for (size_t i = 0; i < sizeof(form) - 1; i++) {
        char c = started_at[i];

        if (form[i] == 'd' ? (c < '0' || c > '9') : c != form[i]) {
            return;
        }
    }
    snprintf(out, n, "%.19s", started_at);
}

static void property(struct buf *b, const char *name, const char *value)
{
    buf_addf(b, "      <property name=\"%s\" value=\"", name);
    xmlw_attr(b, value);
    buf_adds(b, "\"/>\n");
}

static void property_u(struct buf *b, const char *name, uint64_t value)
{
    buf_addf(b, "      <property name=\"%s\" value=\"%llu\"/>\n", name,
             (unsigned long long)value);
}

/* "observed 8.04%" and, in the body, the value as the report holds it. */
static void observed(struct buf *b, const struct loadreport_threshold *th,
                     bool raw)
{
    char v[64];

    loadreport_fmt_observed(v, sizeof(v), th);
    buf_addf(b, "observed %s", v);
    if (raw) {
        buf_addf(b, " (%.17g in the report)", th->observed);
    }
}

int loadreport_junit(const struct json_t *report, struct buf *out, char *err,
                     size_t errlen)
{
    struct loadreport *r = NULL;
    struct buf cases;
    struct buf classname;
    size_t failures = 0;
    size_t errors = 0;
    bool stopped;
    char stamp[32];
    int rc = loadreport_parse(report, &r, err, errlen);

    if (rc != ST_OK) {
        return rc;
    }
    if (!out) {
        loadreport_free(r);
        return ST_INVALID;
    }
    buf_init(&cases, 0);
    buf_init(&classname, 0);
    xmlw_attr(&classname, r->suite);
    buf_adds(&classname, *r->suite ? "." : "");
    xmlw_attr(&classname, r->workflow);

    stopped =
        strcmp(r->result, "aborted") == 0 || strcmp(r->result, "error") == 0;
    buf_addf(&cases,
             "    <testcase classname=\"%s\" name=\"run\" time=\"%.3f\"",
             buf_str(&classname), r->duration_ms / 1000);
    if (stopped) {
        errors++;
        buf_addf(&cases, ">\n      <error message=\"%s", r->result);
        if (*r->abort_reason) {
            buf_adds(&cases, ": ");
            xmlw_attr(&cases, r->abort_reason);
        }
        buf_addf(&cases, "\" type=\"%s\">run %s", r->result, r->result);
        if (*r->abort_reason) {
            buf_adds(&cases, ": ");
            xmlw_text(&cases, r->abort_reason);
        }
        buf_adds(&cases, "\n</error>\n    </testcase>\n");
    } else {
        buf_adds(&cases, "/>\n");
    }

    for (size_t i = 0; i < r->n_thresholds; i++) {
        const struct loadreport_threshold *th = &r->thresholds[i];

        buf_addf(&cases, "    <testcase classname=\"%s\" name=\"",
                 buf_str(&classname));
        xmlw_attr(&cases, th->source);
        if (th->passed) {
            buf_adds(&cases, "\" time=\"0.000\"/>\n");
            continue;
        }
        failures++;
        buf_adds(&cases, "\" time=\"0.000\">\n      <failure message=\"");
        observed(&cases, th, false);
        buf_adds(&cases, ", want ");
        xmlw_attr(&cases, th->condition);
        buf_adds(&cases, "\" type=\"threshold\">threshold ");
        xmlw_text(&cases, th->source);
        buf_adds(&cases, " failed: ");
        observed(&cases, th, true);
        buf_adds(&cases, th->abort_on_fail ? " (abort_on_fail)\n" : "\n");
        buf_adds(&cases, "</failure>\n    </testcase>\n");
    }

    timestamp(stamp, sizeof(stamp), r->started_at);
    buf_addf(out,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<testsuites name=\"handoff load\" tests=\"%zu\" "
             "failures=\"%zu\" errors=\"%zu\" skipped=\"0\" "
             "time=\"%.3f\">\n"
             "  <testsuite name=\"",
             r->n_thresholds + 1, failures, errors, r->duration_ms / 1000);
    xmlw_attr(out, r->workflow);
    buf_addf(out,
             "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
             "skipped=\"0\" time=\"%.3f\"",
             r->n_thresholds + 1, failures, errors, r->duration_ms / 1000);
    if (*stamp) {
        buf_addf(out, " timestamp=\"%s\"", stamp);
    }
    buf_adds(out, ">\n    <properties>\n");
    property(out, "id", r->id);
    property(out, "suite", r->suite);
    property(out, "workflow", r->workflow);
    property(out, "result", r->result);
    property(out, "executor", r->executor.type);
    property_u(out, "iterations_completed", r->completed);
    property_u(out, "iterations_interrupted", r->interrupted);
    property_u(out, "iterations_dropped", r->dropped);
    property_u(out, "http_reqs", r->totals.count);
    property_u(out, "http_reqs_failed", r->totals.failed);
    buf_adds(out, "    </properties>\n");
    buf_add(out, buf_str(&cases), cases.len);
    if (r->dropped) {
        buf_addf(out,
                 "    <system-err>handoff: %llu iterations were dropped: "
                 "latencies may be under-reported; raise max VUs"
                 "</system-err>\n",
                 (unsigned long long)r->dropped);
    }
    buf_adds(out, "  </testsuite>\n</testsuites>\n");
    buf_cleanup(&cases);
    buf_cleanup(&classname);
    loadreport_free(r);
    return ST_OK;
}
