/* handoffctl run: starts a run on the controller and, with --wait, follows
 * it to its end, printing what the local runner prints (the live events go
 * through the same report writers) and exiting like it. When the live
 * stream is lost, the run is polled until it ends and the stored run fills
 * in what the stream did not show (replay.h). Ctrl-C stops following, not
 * the run. */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "cmd.h"
#include "mem.h"
#include "replay.h"
#include "report.h"

/* Polling while waiting: the first poll at once, then from 0.5 s doubling
 * to 5 s. */
#define RUN_POLL_FIRST_MS 500
#define RUN_POLL_MAX_MS 5000

struct run_flags {
    char *ns;
    char *run_re;
    char *skip_re;
    struct opt_kv params;
    char *initiated_by;
    char *reference;
    char *environment;
    int64_t max_attempts;
    int64_t timeout_ns;
    int64_t test_timeout_ns;
    int64_t queue_timeout_ns;
    int64_t count;
    char *pool;
    char *idempotency_key;
    bool wait;
    bool json;
    char *junit;
    bool verbose;
};

static const char run_summary[] =
    "Starts a run of SUITE (NAMESPACE/SUITE also works) on the controller.\n"
    "Without --wait it prints the run's id on stdout (its URL on stderr) and\n"
    "exits 0. With --wait it follows the run's live events and prints them\n"
    "as the local runner does (go test style; -v for every test; --json for\n"
    "Go's test2json stream), writes --junit FILE from the stored run, and\n"
    "exits 0 when the run passed, 1 when it failed, errored, was cancelled\n"
    "or timed out.";

static const char run_details[] =
    "If the event stream drops or stays silent (HANDOFF_IDLE_TIMEOUT), the\n"
    "run is polled until it ends and the stored run supplies what was not\n"
    "shown. Ctrl-C (or SIGTERM) while waiting stops following and prints\n"
    "the run's id; the run goes on (`handoffctl cancel RUN` cancels it).\n";

/* "$USER@host", the default of --initiated-by. */
static char *default_initiator(void)
{
    const char *user = getenv("USER");
    char host[256] = "";

    if (!user || !*user) {
        struct passwd *pw = getpwuid(getuid());

        user = pw && pw->pw_name ? pw->pw_name : "unknown";
    }
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0]) {
        snprintf(host, sizeof(host), "localhost");
    }
    /* The controller keeps 256 bytes of it. */
    return mem_printf("%.100s@%.100s", user, host);
}

/* ---- Following -------------------------------------------------------- */

struct follow {
    const char *suite; /* for every event: the run's */
    const char *ns;
    struct reporter *rep;
    struct replay replay;
};

static void follow_emit(struct follow *fl, struct report_event *ev)
{
    ev->suite = fl->suite;
    ev->ns = fl->ns;
    report_emit(fl->rep, ev);
    replay_note(&fl->replay, ev);
}

static int on_live_event(void *arg, const struct remote_event *ev)
{
    struct follow *fl = arg;
    struct report_event e;

    if (ev->kind != REMOTE_EVENT_REPORT) {
        return 0;
    }
    e = ev->report;
    /* Joining late (or a lost first event): the writers need a start. */
    if (!fl->replay.started && e.kind != REPORT_SUITE_START) {
        struct report_event start = {.kind = REPORT_SUITE_START};

        start.time_unix_ns = e.time_unix_ns;
        follow_emit(fl, &start);
    }
    follow_emit(fl, &e);
    return 0;
}

/* Polls the run until it has ended; *out then holds it. Failures to reach
 * the controller are retried for idle_ns (a controller restart should not
 * fail a CI job); other failures end the wait. */
static int wait_until_ended(struct ctl *ctl, const char *id,
                            struct remote_run *out, struct remote_error *err)
{
    int64_t delay_ms = 0;
    int64_t failing_since = 0;

    for (;;) {
        struct remote_run run;
        int rc;

        if (delay_ms > 0 && !ctl_sleep_ms(delay_ms)) {
            snprintf(err->message, sizeof(err->message), "interrupted");
            err->http_status = 0;
            err->code[0] = '\0';
            return ST_CANCELLED;
        }
        rc = remote_get_run(ctl->remote, id, &run, NULL, err);
        if (rc == ST_OK) {
            if (remote_run_has_ended(&run)) {
                *out = run;
                return ST_OK;
            }
            remote_run_cleanup(&run);
            failing_since = 0;
        } else if (rc == ST_UPSTREAM || rc == ST_TIMEOUT) {
            int64_t now = clock_mono_ns();

            if (!failing_since) {
                failing_since = now;
                fprintf(stderr, "%s run: %s; retrying\n", ctl->prog,
                        err->message);
            } else if (now - failing_since >= ctl->idle_ns) {
                return rc;
            }
        } else {
            return rc;
        }
        delay_ms = delay_ms == 0                    ? RUN_POLL_FIRST_MS
                   : delay_ms * 2 > RUN_POLL_MAX_MS ? RUN_POLL_MAX_MS
                                                    : delay_ms * 2;
    }
}

static int stopped_following(struct ctl *ctl, const char *id)
{
    fprintf(stderr,
            "\n%s run: stopped following run %s; the run goes on.\n"
            "  see it:    %s show %s\n"
            "  cancel it: %s cancel %s\n",
            ctl->prog, id, ctl->prog, id, ctl->prog, id);
    return ctl_exit_code(ST_CANCELLED);
}

static int wait_for_run(struct ctl *ctl, const struct run_flags *f,
                        const struct remote_run *started)
{
    struct follow fl = {
        .suite = started->suite ? started->suite : "",
        .ns = started->ns ? started->ns : "",
    };
    struct remote_run final;
    struct remote_error err;
    int rc;
    int st;

    replay_init(&fl.replay);
    fl.rep = f->json ? report_test2json_new(stdout)
                     : report_text_new(stdout, f->verbose);
    st = remote_follow_run(ctl->remote, started->id, on_live_event, &fl, &err);
    if (st == ST_CANCELLED) {
        report_free(fl.rep);
        rc = stopped_following(ctl, started->id);
        goto free_replay;
    }
    if (st != ST_OK) {
        fprintf(stderr, "%s run: %s; polling run %s until it ends\n", ctl->prog,
                err.message, started->id);
    }
    st = wait_until_ended(ctl, started->id, &final, &err);
    if (st == ST_CANCELLED) {
        report_free(fl.rep);
        rc = stopped_following(ctl, started->id);
        goto free_replay;
    }
    if (st != ST_OK) {
        report_free(fl.rep);
        rc = ctl_fail(ctl, "run", st, &err);
        goto free_replay;
    }
    replay_run(&fl.replay, &final, fl.rep);
    report_free(fl.rep);
    fprintf(stderr, "%s run: run %s %s%s%s%s%s\n", ctl->prog, final.id,
            final.state, final.result ? ", result " : "",
            final.result ? final.result : "", final.reason ? ": " : "",
            final.reason ? final.reason : "");
    rc = remote_run_has_passed(&final) ? CTL_EXIT_OK : CTL_EXIT_FAILED;
    if (f->junit) {
        int jrc = ctl_write_junit(ctl, "run", f->junit, &final);

        if (jrc) {
            rc = jrc;
        }
    }
    remote_run_cleanup(&final);
free_replay:
    replay_cleanup(&fl.replay);
    return rc;
}

/* ---- The command ------------------------------------------------------ */

/* Splits "NAMESPACE/SUITE" when given so. Returns 0 or CTL_EXIT_USAGE. */
static int split_suite(struct ctl *ctl, const char *arg, struct run_flags *f,
                       char **suite)
{
    const char *slash = strchr(arg, '/');

    if (!slash) {
        *suite = mem_strdup(arg);
        return 0;
    }
    if (slash == arg || !slash[1] || strchr(slash + 1, '/')) {
        fprintf(stderr, "%s run: \"%s\": want SUITE or NAMESPACE/SUITE\n",
                ctl->prog, arg);
        return CTL_EXIT_USAGE;
    }
    if (f->ns && (strlen(f->ns) != (size_t)(slash - arg) ||
                  strncmp(f->ns, arg, (size_t)(slash - arg)) != 0)) {
        fprintf(stderr,
                "%s run: \"%s\" and --namespace %s name different "
                "namespaces\n",
                ctl->prog, arg, f->ns);
        return CTL_EXIT_USAGE;
    }
    free(f->ns);
    f->ns = mem_strndup(arg, (size_t)(slash - arg));
    *suite = mem_strdup(slash + 1);
    return 0;
}

int cmd_run(struct ctl *ctl, int argc, char **argv)
{
    struct run_flags f = {0};
    const struct opt opts[] = {
        {"namespace", NULL, OPT_STRING, NULL,
         "the suite's namespace (when two namespaces have it)", &f.ns, 0, 0},
        {"run", NULL, OPT_STRING, NULL,
         "run only tests whose name matches (POSIX ERE)", &f.run_re, 0, 0},
        {"skip", NULL, OPT_STRING, NULL,
         "skip tests whose name matches (POSIX ERE)", &f.skip_re, 0, 0},
        {"param", NULL, OPT_KV, NULL, "a run parameter KEY=VALUE (repeatable)",
         &f.params, 0, 0},
        {"initiated-by", NULL, OPT_STRING, NULL,
         "who starts it (default $USER@host)", &f.initiated_by, 0, 0},
        {"reference", NULL, OPT_STRING, NULL, "a commit or deploy id",
         &f.reference, 0, 0},
        {"environment", NULL, OPT_STRING, NULL, "e.g. the cluster's name",
         &f.environment, 0, 0},
        {"max-attempts", NULL, OPT_INT, NULL,
         "attempts per failing test, 1-100 (default: the suite's)",
         &f.max_attempts, 1, 100},
        {"timeout", NULL, OPT_DURATION, NULL,
         "suite run timeout, e.g. 10m (default: the suite's)", &f.timeout_ns, 0,
         0},
        {"test-timeout", NULL, OPT_DURATION, NULL,
         "timeout per test attempt, e.g. 30s", &f.test_timeout_ns, 0, 0},
        {"queue-timeout", NULL, OPT_DURATION, NULL,
         "how long the run may wait for a worker (controller default 10m)",
         &f.queue_timeout_ns, 0, 0},
        {"count", NULL, OPT_INT, NULL, "runs of each test, 1-1000", &f.count, 1,
         1000},
        {"pool", NULL, OPT_STRING, NULL, "the worker pool (default: default)",
         &f.pool, 0, 0},
        {"idempotency-key", NULL, OPT_STRING, NULL,
         "a retried request with this key starts nothing new",
         &f.idempotency_key, 0, 0},
        {"wait", NULL, OPT_BOOL, NULL,
         "follow the run to its end; exit 0 passed, 1 not", &f.wait, 0, 0},
        {"json", NULL, OPT_BOOL, NULL,
         "the run as JSON; with --wait Go's test2json stream", &f.json, 0, 0},
        {"junit", NULL, OPT_STRING, NULL,
         "with --wait: write a JUnit XML report to this file", &f.junit, 0, 0},
        {"v", NULL, OPT_BOOL, NULL, "with --wait: every test, like go test -v",
         &f.verbose, 0, 0},
        {"verbose", NULL, OPT_BOOL, NULL, "the same as -v", &f.verbose, 0, 0},
    };
    const struct ctl_cmd cmd = {
        .name = "run",
        .synopsis = "SUITE [flags]",
        .summary = run_summary,
        .details = run_details,
        .n_args = 1,
        .opts = opts,
        .n_opts = sizeof(opts) / sizeof(opts[0]),
    };
    const char *args[1] = {NULL};
    char *suite = NULL;
    char *initiator = NULL;
    struct remote_run_request req = {0};
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
    if (f.junit && !f.wait) {
        fprintf(stderr,
                "%s run: --junit needs --wait (the report is written when "
                "the run ends; `%s show RUN --junit FILE` writes one later)\n",
                ctl->prog, ctl->prog);
        rc = CTL_EXIT_USAGE;
        goto free_flags;
    }
    rc = split_suite(ctl, args[0], &f, &suite);
    if (rc != 0) {
        goto free_flags;
    }
    if (!f.initiated_by) {
        initiator = default_initiator();
    }
    rc = ctl_connect(ctl, "run");
    if (rc != 0) {
        goto free_suite;
    }
    if (f.wait) {
        ctl_catch_signals();
    }
    req.suite = suite;
    req.ns = f.ns;
    req.run_filter = f.run_re;
    req.skip_filter = f.skip_re;
    req.params = f.params.items;
    req.n_params = f.params.n;
    req.initiated_by = f.initiated_by ? f.initiated_by : initiator;
    req.reference = f.reference;
    req.environment = f.environment;
    req.pool = f.pool;
    req.trigger = "cli";
    req.max_attempts = f.max_attempts;
    req.count = f.count;
    req.timeout_ns = f.timeout_ns;
    req.test_timeout_ns = f.test_timeout_ns;
    req.queue_timeout_ns = f.queue_timeout_ns;
    req.idempotency_key = f.idempotency_key;
    st = remote_start_run(ctl->remote, &req, &run, &raw, &err);
    if (st == ST_CANCELLED) {
        fprintf(stderr, "%s run: interrupted before the controller answered\n",
                ctl->prog);
        rc = ctl_exit_code(st);
        goto free_suite;
    }
    if (st != ST_OK) {
        rc = ctl_fail(ctl, "run", st, &err);
        goto free_suite;
    }
    if (!f.wait && f.json) {
        ctl_print_json(&raw);
    } else if (!f.wait) {
        printf("%s\n", run.id);
    }
    fprintf(stderr, "%s run: run %s of %s%s%s (%s): %s/api/v1/runs/%s\n",
            ctl->prog, run.id, run.ns ? run.ns : "", run.ns ? "/" : "",
            run.suite ? run.suite : suite, run.state ? run.state : "started",
            remote_url(ctl->remote), run.id);
    rc = f.wait ? wait_for_run(ctl, &f, &run) : CTL_EXIT_OK;
    remote_run_cleanup(&run);
free_suite:
    free(initiator);
    free(suite);
free_flags:
    buf_cleanup(&raw);
    opts_free(opts, sizeof(opts) / sizeof(opts[0]));
    return rc;
}
