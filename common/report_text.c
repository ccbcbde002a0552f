/* Output in the style of `go test` and `go test -v`.
 *
 * Verbose: every test's "=== RUN", its output as it happens, its end line
 * and the runner's notes; suite-level output (setup, teardown, runner
 * notes) as it happens. Quiet: only tests that failed or errored, each with
 * its output after the end line (so the reporter holds a test's output
 * until it ends), the end line of a flaky test that passed in the end,
 * suite-level output only when the suite did not pass, and
 * per suite the final ok/FAIL line. Unlike go test, output of passing
 * tests is not printed in quiet mode either: a passing suite prints one
 * line. */
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "report.h"
#include "report_int.h"

struct text_reporter {
    struct reporter base;
    FILE *out;
    bool verbose;
    char pkg[REPORT_PKG_MAX];
    struct buf test_out;  /* output of the running test */
    struct buf suite_out; /* quiet mode: suite-level output */
    struct buf line;      /* scratch */
};

static void put(struct text_reporter *t, const char *s, size_t n)
{
    if (n) {
        fwrite(s, 1, n, t->out);
    }
}

/* Output text, with a newline added if the producer left it off. */
static void add_output(struct buf *b, const struct report_event *ev)
{
    buf_add(b, ev->output, ev->output_len);
    if (ev->output_len && ev->output[ev->output_len - 1] != '\n') {
        buf_addc(b, '\n');
    }
}

static void text_event(struct reporter *r, const struct report_event *ev)
{
    struct text_reporter *t = (struct text_reporter *)r;
    bool bad = ev->result == RESULT_FAILED || ev->result == RESULT_ERROR;

    buf_reset(&t->line);
    switch (ev->kind) {
    case REPORT_SUITE_START:
        report_package_name(ev->ns, ev->suite, t->pkg, sizeof(t->pkg));
        buf_reset(&t->suite_out);
        break;
    case REPORT_TEST_RUN:
        buf_reset(&t->test_out);
        if (t->verbose) {
            buf_addf(&t->line, "=== RUN   %s\n", ev->test);
        }
        break;
    case REPORT_OUTPUT:
        if (!ev->test) {
            add_output(t->verbose ? &t->line : &t->suite_out, ev);
            break;
        }
        add_output(&t->test_out, ev);
        if (t->verbose) {
            add_output(&t->line, ev);
        }
        break;
    case REPORT_TEST_END:
        if (t->verbose) {
            report_end_line(&t->line, ev);
            report_note_lines(&t->line, ev, buf_str(&t->test_out));
        } else if (bad) {
            report_end_line(&t->line, ev);
            buf_add(&t->line, t->test_out.data, t->test_out.len);
            report_note_lines(&t->line, ev, buf_str(&t->test_out));
        } else if (ev->flaky) {
            /* Its failed attempts were shown: say how it ended. */
            report_end_line(&t->line, ev);
            report_note_lines(&t->line, ev, NULL);
        }
        buf_reset(&t->test_out);
        break;
    case REPORT_SUITE_END:
        if (!t->verbose && ev->result != RESULT_PASSED && t->suite_out.len) {
            buf_adds(&t->line, "handoff: output of setup, teardown and the "
                               "runner:\n");
            buf_add(&t->line, t->suite_out.data, t->suite_out.len);
        }
        report_summary_lines(&t->line, ev, t->pkg);
        break;
    }
    put(t, t->line.data, t->line.len);
    if (ev->kind != REPORT_OUTPUT) {
        fflush(t->out);
    }
}

static void text_free(struct reporter *r)
{
    struct text_reporter *t = (struct text_reporter *)r;

    fflush(t->out);
    buf_cleanup(&t->test_out);
    buf_cleanup(&t->suite_out);
    buf_cleanup(&t->line);
    free(t);
}

struct reporter *report_text_new(FILE *out, bool verbose)
{
    struct text_reporter *t = mem_zalloc(sizeof(*t));

    t->base.on_event = text_event;
    t->base.free = text_free;
    t->out = out;
    t->verbose = verbose;
    buf_init(&t->test_out, 0);
    buf_init(&t->suite_out, 0);
    buf_init(&t->line, 0);
    return &t->base;
}
