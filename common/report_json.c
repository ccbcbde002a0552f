/* Go's test2json event stream, as `go test -json` writes it: one JSON
 * object per line, fields in Go's order (Time, Action, Package, Test,
 * Elapsed, Output) with Go's omitempty rules and string escaping. The
 * output events carry exactly the lines `go test -v` style output would
 * show (report_text.c in verbose mode), one event per line, and like
 * test2json a line longer than 1024 bytes goes out in several events, so
 * tools that render `go test -json` (gotestsum, CI plugins) render
 * Handoff runs. An error is a "fail" action: test2json has no other.
 *
 * Attribution follows test2json: "=== RUN", the test's output, its "---"
 * line and the runner's notes after it carry the Test; the final PASS/FAIL
 * and ok/FAIL lines do not. Two differences, both deliberate: suite-level
 * output (setup, teardown, runner notes) never carries a Test, where
 * test2json, parsing text, would give output after a test's "---" line to
 * that test; and a test's pass/fail/skip event follows its last note at
 * once instead of waiting for the next "=== RUN" line. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsonw.h"
#include "mem.h"
#include "report.h"
#include "report_int.h"

struct json_reporter {
    struct reporter base;
    FILE *out;
    char pkg[REPORT_PKG_MAX];
    struct buf test_out; /* output of the running test */
    struct buf lines;    /* text to turn into output events */
    struct buf ev;       /* scratch: one event */
};

/* test2json's output buffer: longer lines are split (lineBuffer). */
#define JSON_OUTPUT_CHUNK 1024

/* Writes one event. test may be NULL; elapsed < 0 leaves Elapsed out. */
static void write_event(struct json_reporter *j, int64_t time_ns,
                        const char *action, const char *test, double elapsed,
                        const char *output, size_t output_len)
{
    char ts[CLOCK_RFC3339_LEN];

    buf_reset(&j->ev);
    clock_format_rfc3339(time_ns, CLOCK_LOCAL, 1, ts);
    buf_adds(&j->ev, "{\"Time\":\"");
    buf_adds(&j->ev, ts);
    buf_adds(&j->ev, "\",\"Action\":\"");
    buf_adds(&j->ev, action);
    buf_adds(&j->ev, "\",\"Package\":");
    jsonw_string(&j->ev, j->pkg, strlen(j->pkg));
    if (test) {
        buf_adds(&j->ev, ",\"Test\":");
        jsonw_string(&j->ev, test, strlen(test));
    }
    if (elapsed >= 0) {
        buf_adds(&j->ev, ",\"Elapsed\":");
        jsonw_float64(&j->ev, elapsed);
    }
    if (output) {
        buf_adds(&j->ev, ",\"Output\":");
        jsonw_string(&j->ev, output, output_len);
    }
    buf_adds(&j->ev, "}\n");
    fwrite(j->ev.data, 1, j->ev.len, j->out);
}

/* Where test2json cuts a full buffer of n bytes: before a UTF-8 lead byte
 * whose sequence does not fit (Go's trimUTF8). */
static size_t trim_utf8(const unsigned char *b, size_t n)
{
    for (size_t i = 1; i < 4 && i <= n; i++) {
        unsigned char c = b[n - i];

        if ((c & 0xC0) != 0x80) {
            if (((c & 0xE0) == 0xC0 && i < 2) ||
                ((c & 0xF0) == 0xE0 && i < 3) ||
                ((c & 0xF8) == 0xF0 && i < 4)) {
                return n - i;
            }
            break;
        }
    }
    return n;
}

/* One output event per line of j->lines (each ending in '\n'), a long
 * line in pieces of at most JSON_OUTPUT_CHUNK bytes. */
static void write_lines(struct json_reporter *j, int64_t time_ns,
                        const char *test)
{
    const char *p = j->lines.data;
    const char *end = p + j->lines.len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);

        if (n > JSON_OUTPUT_CHUNK) {
            n = trim_utf8((const unsigned char *)p, JSON_OUTPUT_CHUNK);
        }
        write_event(j, time_ns, "output", test, -1, p, n);
        p += n;
    }
    buf_reset(&j->lines);
}

static void json_event(struct reporter *r, const struct report_event *ev)
{
    struct json_reporter *j = (struct json_reporter *)r;
    const char *action;

    buf_reset(&j->lines);
    switch (ev->kind) {
    case REPORT_SUITE_START:
        report_package_name(ev->ns, ev->suite, j->pkg, sizeof(j->pkg));
        write_event(j, ev->time_unix_ns, "start", NULL, -1, NULL, 0);
        break;
    case REPORT_TEST_RUN:
        buf_reset(&j->test_out);
        write_event(j, ev->time_unix_ns, "run", ev->test, -1, NULL, 0);
        buf_addf(&j->lines, "=== RUN   %s\n", ev->test);
        write_lines(j, ev->time_unix_ns, ev->test);
        break;
    case REPORT_OUTPUT:
        buf_add(&j->lines, ev->output, ev->output_len);
        if (ev->output_len && ev->output[ev->output_len - 1] != '\n') {
            buf_addc(&j->lines, '\n');
        }
        if (ev->test) {
            buf_add(&j->test_out, j->lines.data, j->lines.len);
        }
        write_lines(j, ev->time_unix_ns, ev->test);
        break;
    case REPORT_TEST_END:
        report_end_line(&j->lines, ev);
        report_note_lines(&j->lines, ev, buf_str(&j->test_out));
        write_lines(j, ev->time_unix_ns, ev->test);
        action = ev->result == RESULT_PASSED    ? "pass"
                 : ev->result == RESULT_SKIPPED ? "skip"
                                                : "fail";
        write_event(j, ev->time_unix_ns, action, ev->test,
                    report_test_elapsed_s(ev->elapsed_ns), NULL, 0);
        buf_reset(&j->test_out);
        break;
    case REPORT_SUITE_END:
        report_summary_lines(&j->lines, ev, j->pkg);
        write_lines(j, ev->time_unix_ns, NULL);
        write_event(j, ev->time_unix_ns,
                    ev->result == RESULT_PASSED ? "pass" : "fail", NULL,
                    report_pkg_elapsed_s(ev->elapsed_ns), NULL, 0);
        break;
    }
    if (ev->kind != REPORT_OUTPUT) {
        fflush(j->out);
    }
}

static void json_free(struct reporter *r)
{
    struct json_reporter *j = (struct json_reporter *)r;

    fflush(j->out);
    buf_cleanup(&j->test_out);
    buf_cleanup(&j->lines);
    buf_cleanup(&j->ev);
    free(j);
}

struct reporter *report_test2json_new(FILE *out)
{
    struct json_reporter *j = mem_zalloc(sizeof(*j));

    j->base.on_event = json_event;
    j->base.free = json_free;
    j->out = out;
    buf_init(&j->test_out, 0);
    buf_init(&j->lines, 0);
    buf_init(&j->ev, 0);
    return &j->base;
}
