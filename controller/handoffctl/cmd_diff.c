/* handoffctl diff: compares two load runs (docs/load.md, "Comparing
 * runs"): each side a run id (its report from GET /api/v1/runs/{id}/load)
 * or a report file (`worker load --json`); prints loaddiff's text and
 * exits 1 when a regression is flagged. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "loaddiff.h"
#include "mem.h"

/* A report file is anything that names an existing file or looks like a
 * path; a run id is digits. */
static bool is_file_arg(const char *s)
{
    struct stat st;

    return strchr(s, '/') != NULL || strchr(s, '.') != NULL ||
           stat(s, &st) == 0;
}

/* The report named by arg, or NULL with the exit status in *rc. */
static json_t *load_side(struct ctl *ctl, const char *which, const char *arg,
                         int *rc)
{
    json_error_t jerr;
    json_t *j;

    if (is_file_arg(arg)) {
        j = json_load_file(arg, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL) {
            fprintf(stderr, "%s diff: %s %s: %s (line %d)\n", ctl->prog, which,
                    arg, jerr.text, jerr.line);
            *rc = CTL_EXIT_USAGE;
        }
        return j;
    }
    {
        struct remote_error err;
        struct buf raw;
        int st;

        if (ctl->remote == NULL && (*rc = ctl_connect(ctl, "diff")) != 0) {
            return NULL;
        }
        buf_init(&raw, 0);
        st = remote_get_load_report(ctl->remote, arg, &raw, &err);
        if (st != ST_OK) {
            *rc = ctl_fail(ctl, "diff", st, &err);
            buf_cleanup(&raw);
            return NULL;
        }
        j = json_loadb(raw.data, raw.len, 0, &jerr);
        buf_cleanup(&raw);
        if (j == NULL) {
            fprintf(stderr, "%s diff: run %s: the report is not JSON: %s\n",
                    ctl->prog, arg, jerr.text);
            *rc = CTL_EXIT_UNAVAILABLE;
        }
        return j;
    }
}

int cmd_diff(struct ctl *ctl, int argc, char **argv)
{
    char *tolerance = NULL;
    bool json = false;
    const struct opt opts[] = {
        {"tolerance", NULL, OPT_STRING, NULL,
         "how much worse counts as a regression: 0.1 = 10 % for latencies "
         "and rates, 0.1 points for the error rate (default 0.1)",
         &tolerance, 0, 0},
        {"json", NULL, OPT_BOOL, NULL,
         "print the diff as JSON (handoff.load.diff/1)", &json, 0, 0},
    };
    const struct ctl_cmd cmd = {
        .name = "diff",
        .synopsis = "A B [flags]",
        .summary = "Compares load run B with the baseline A, per step and "
                   "request: the change of\nlatency percentiles, rate and "
                   "error rate, regressions beyond the tolerance\nflagged. "
                   "A and B are run ids or JSON report files. Exit 1 when a "
                   "regression\nis flagged.",
        .n_args = 2,
        .opts = opts,
        .n_opts = sizeof(opts) / sizeof(opts[0]),
    };
    const char *args[2] = {NULL, NULL};
    json_t *a = NULL;
    json_t *b = NULL;
    json_t *diff = NULL;
    double tol = -1;
    char err[512];
    struct buf out;
    int rc;

    buf_init(&out, 0);
    rc = ctl_parse(ctl, &cmd, argc, argv, args);
    if (rc != 0) {
        rc = rc == CTL_HELP ? CTL_EXIT_OK : rc;
        goto done;
    }
    if (tolerance != NULL) {
        char *end;

        errno = 0;
        tol = strtod(tolerance, &end);
        if (errno != 0 || *end != '\0' || !(tol >= 0 && tol < 1000)) {
            fprintf(stderr,
                    "%s diff: --tolerance \"%s\": want a number from 0 to "
                    "1000\n",
                    ctl->prog, tolerance);
            rc = CTL_EXIT_USAGE;
            goto done;
        }
    }
    a = load_side(ctl, "A", args[0], &rc);
    if (a != NULL) {
        b = load_side(ctl, "B", args[1], &rc);
    }
    if (a == NULL || b == NULL) {
        goto done;
    }
    if (loaddiff(a, b, tol, &diff, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "%s diff: %s\n", ctl->prog, err);
        rc = CTL_EXIT_USAGE;
        goto done;
    }
    if (json) {
        char *text = json_dumps(diff, JSON_INDENT(2));

        printf("%s\n", text);
        free(text);
    } else if (loaddiff_text(diff, &out, err, sizeof(err)) == ST_OK) {
        fwrite(out.data, 1, out.len, stdout);
    }
    rc = loaddiff_has_regression(diff) ? CTL_EXIT_FAILED : CTL_EXIT_OK;
done:
    json_decref(a);
    json_decref(b);
    json_decref(diff);
    buf_cleanup(&out);
    opts_free(opts, sizeof(opts) / sizeof(opts[0]));
    return rc;
}
