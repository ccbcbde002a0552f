/* handoffctl show and cancel: one run. show prints the run's header and
 * its tests in go-test text, replayed from the stored run through the same
 * writer the local runner uses. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "mem.h"
#include "replay.h"
#include "report.h"

static void header_line(const char *name, const char *value)
{
    char *clean;

    if (!value || !*value) {
        return;
    }
    /* Values come from the network: no control characters on the
     * terminal. */
    clean = mem_strdup(value);
    for (char *p = clean; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    printf("%-12s %s\n", name, clean);
    free(clean);
}

static void time_line(const char *name, int64_t ns)
{
    char t[40];

    if (ns) {
        header_line(name, ctl_format_time(ns, t, sizeof(t)));
    }
}

static void print_header(const struct remote_run *run)
{
    struct buf b;
    char d[64];

    buf_init(&b, 0);
    buf_addf(&b, "%s%s%s", run->ns ? run->ns : "", run->ns ? "/" : "",
             run->suite ? run->suite : "?");
    printf("run %s: %s\n", run->id, buf_str(&b));
    header_line("state", run->state);
    header_line("result", run->result);
    header_line("reason", run->reason);
    buf_reset(&b);
    if (run->trigger) {
        buf_adds(&b, run->trigger);
    }
    if (run->initiated_by && *run->initiated_by) {
        buf_addf(&b, "%sby %s", b.len ? ", " : "", run->initiated_by);
    }
    header_line("trigger", buf_str(&b));
    header_line("reference", run->reference);
    header_line("environment", run->environment);
    header_line("pool", run->pool);
    buf_reset(&b);
    for (size_t i = 0; i < run->n_params; i++) {
        buf_addf(&b, "%s%s=%s", i ? " " : "", run->params[i].key,
                 run->params[i].value);
    }
    header_line("params", buf_str(&b));
    buf_reset(&b);
    if (run->run_filter) {
        buf_addf(&b, "--run %s", run->run_filter);
    }
    if (run->skip_filter) {
        buf_addf(&b, "%s--skip %s", b.len ? " " : "", run->skip_filter);
    }
    header_line("filters", buf_str(&b));
    time_line("created", run->created_ns);
    time_line("started", run->started_ns);
    time_line("finished", run->finished_ns);
    if (run->duration_ns >= 0) {
        header_line("duration",
                    ctl_format_duration(run->duration_ns, d, sizeof(d)));
    }
    if (run->counts.present) {
        const struct remote_counts *c = &run->counts;

        buf_reset(&b);
        buf_addf(&b,
                 "%" PRId64 ": %" PRId64 " passed, %" PRId64 " failed, "
                 "%" PRId64 " error, %" PRId64 " skipped",
                 c->tests, c->passed, c->failed, c->errors, c->skipped);
        if (c->soft_failures || c->flaky) {
            buf_addf(&b, " (%" PRId64 " soft failure%s, %" PRId64 " flaky)",
                     c->soft_failures, c->soft_failures == 1 ? "" : "s",
                     c->flaky);
        }
        header_line("tests", buf_str(&b));
    }
    buf_reset(&b);
    for (size_t i = 0; i < run->n_jobs; i++) {
        if (run->jobs[i].worker) {
            buf_addf(&b, "%s%s", b.len ? ", " : "", run->jobs[i].worker);
        }
    }
    header_line("workers", buf_str(&b));
    buf_cleanup(&b);
}

int cmd_show(struct ctl *ctl, int argc, char **argv)
{
    bool json = false;
    bool verbose = false;
    char *junit = NULL;
    const struct opt opts[] = {
        {"json", NULL, OPT_BOOL, NULL, "the run as the API gives it (JSON)",
         &json, 0, 0},
        {"junit", NULL, OPT_STRING, NULL,
         "write a JUnit XML report of the run to this file", &junit, 0, 0},
        {"v", NULL, OPT_BOOL, NULL,
         "every test attempt with its log, like go test -v", &verbose, 0, 0},
        {"verbose", NULL, OPT_BOOL, NULL, "the same as -v", &verbose, 0, 0},
    };
    const struct ctl_cmd cmd = {
        .name = "show",
        .synopsis = "RUN [flags]",
        .summary = "Shows a run: its settings and times, then its tests as "
                   "go test prints them\n(failures only; -v for every "
                   "attempt with its log). Exits 0 whatever the run's\n"
                   "result.",
        .n_args = 1,
        .opts = opts,
        .n_opts = sizeof(opts) / sizeof(opts[0]),
    };
    const char *args[1] = {NULL};
    struct remote_run run;
    struct remote_error err;
    struct buf raw;
    int rc;
    int st;

    buf_init(&raw, 0);
    rc = ctl_parse(ctl, &cmd, argc, argv, args);
    if (rc != 0) {
        rc = rc == CTL_HELP ? CTL_EXIT_OK : rc;
        goto free_flags;
    }
    rc = ctl_connect(ctl, "show");
    if (rc != 0) {
        goto free_flags;
    }
    st = remote_get_run(ctl->remote, args[0], &run, json ? &raw : NULL, &err);
    if (st != ST_OK) {
        rc = ctl_fail(ctl, "show", st, &err);
        goto free_flags;
    }
    if (json) {
        ctl_print_json(&raw);
    } else {
        struct replay rp;
        struct reporter *rep;

        print_header(&run);
        printf("\n");
        fflush(stdout);
        replay_init(&rp);
        rep = report_text_new(stdout, verbose);
        replay_run(&rp, &run, rep);
        report_free(rep);
        replay_cleanup(&rp);
        if (!remote_run_has_ended(&run)) {
            printf("(run %s has not ended: these are its results so far)\n",
                   run.id);
        }
    }
    fflush(stdout);
    if (junit) {
        rc = ctl_write_junit(ctl, "show", junit, &run);
    }
    remote_run_cleanup(&run);
free_flags:
    buf_cleanup(&raw);
    opts_free(opts, sizeof(opts) / sizeof(opts[0]));
    return rc;
}

int cmd_cancel(struct ctl *ctl, int argc, char **argv)
{
    char *reason = NULL;
    bool json = false;
    const struct opt opts[] = {
        {"reason", NULL, OPT_STRING, NULL, "why (kept with the run)", &reason,
         0, 0},
        {"json", NULL, OPT_BOOL, NULL, "print the run as the API answers it",
         &json, 0, 0},
    };
    const struct ctl_cmd cmd = {
        .name = "cancel",
        .synopsis = "RUN [flags]",
        .summary = "Cancels a run: a queued run at once; a running one is "
                   "told to stop (the running\ntest gets a grace period, "
                   "the rest are skipped, teardown runs). A run that\nhas "
                   "already ended gives exit 2.",
        .n_args = 1,
        .opts = opts,
        .n_opts = sizeof(opts) / sizeof(opts[0]),
    };
    const char *args[1] = {NULL};
    struct remote_run run;
    struct remote_error err;
    struct buf raw;
    int rc;
    int st;

    buf_init(&raw, 0);
    rc = ctl_parse(ctl, &cmd, argc, argv, args);
    if (rc != 0) {
        rc = rc == CTL_HELP ? CTL_EXIT_OK : rc;
        goto free_flags;
    }
    rc = ctl_connect(ctl, "cancel");
    if (rc != 0) {
        goto free_flags;
    }
    st = remote_cancel_run(ctl->remote, args[0], reason, &run, &raw, &err);
    if (st != ST_OK) {
        rc = ctl_fail(ctl, "cancel", st, &err);
        goto free_flags;
    }
    if (json) {
        ctl_print_json(&raw);
    } else if (remote_run_has_ended(&run)) {
        printf("run %s %s\n", run.id, run.state);
    } else {
        printf("run %s: cancel requested (state %s)\n", run.id,
               run.state ? run.state : "unknown");
    }
    remote_run_cleanup(&run);
free_flags:
    buf_cleanup(&raw);
    opts_free(opts, sizeof(opts) / sizeof(opts[0]));
    return rc;
}
