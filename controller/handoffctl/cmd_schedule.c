/* handoffctl schedule create|list|show|pause|resume|delete: the schedules
 * of the controller (docs/handoffctl.md, docs/scheduling.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctl.h"
#include "mem.h"
#include "table.h"

static const char schedule_usage[] =
    "usage: %s schedule <create|list|show|pause|resume|delete> ...\n"
    "  schedule create NAME SUITE --expr EXPR [flags]  create a schedule\n"
    "  schedule list                                   list schedules\n"
    "  schedule show NAME                              one schedule, its "
    "last ticks\n"
    "  schedule pause NAME | resume NAME               stop or restart its "
    "ticks\n"
    "  schedule delete NAME                            delete it (its runs "
    "stay)\n"
    "`%s schedule <sub> --help` shows a subcommand's flags.\n";

static void print_schedule(const struct remote_schedule *s, bool ticks)
{
    char next[40];

    ctl_format_time(s->next_fire_ns, next, sizeof(next));
    printf("schedule %s: %s/%s \"%s\" (%s), %s, next %s, %lld run(s)\n",
           s->name, s->ns ? s->ns : "-", s->suite ? s->suite : "-",
           s->expression ? s->expression : "-",
           s->time_zone ? s->time_zone : "UTC",
           s->enabled ? "enabled" : "paused", next, (long long)s->runs_fired);
    if (!ticks || s->n_ticks == 0) {
        return;
    }
    {
        static const char *const headers[] = {"TICK", "OUTCOME", "RUN",
                                              "DETAIL"};
        struct table t;

        table_init(&t, 4, headers);
        for (size_t i = 0; i < s->n_ticks; i++) {
            const struct remote_schedule_tick *k = &s->ticks[i];
            char when[40];
            char *outcome = k->reason
                                ? mem_printf("%s (%s)", k->outcome, k->reason)
                                : mem_strdup(k->outcome);

            ctl_format_time(k->tick_ns, when, sizeof(when));
            table_add(
                &t, (const char *const[]){when, outcome, k->run_id, k->detail});
            free(outcome);
        }
        table_print(&t, stdout);
        table_cleanup(&t);
    }
}

/* Splits "NAMESPACE/SUITE"; *ns is NULL for a plain SUITE. Returns 0 or
 * CTL_EXIT_USAGE. */
static int split_suite(const struct ctl *ctl, const char *arg, char **ns,
                       char **suite)
{
    const char *slash = strchr(arg, '/');

    if (!slash) {
        *ns = NULL;
        *suite = mem_strdup(arg);
        return 0;
    }
    if (slash == arg || !slash[1] || strchr(slash + 1, '/')) {
        fprintf(stderr,
                "%s schedule create: \"%s\": want SUITE or "
                "NAMESPACE/SUITE\n",
                ctl->prog, arg);
        return CTL_EXIT_USAGE;
    }
    *ns = mem_strndup(arg, (size_t)(slash - arg));
    *suite = mem_strdup(slash + 1);
    return 0;
}

static int sub_create(struct ctl *ctl, int argc, char **argv)
{
    struct remote_schedule_request req = {0};
    struct opt_kv params = {0};
    char *expr = NULL, *tz = NULL, *overlap = NULL, *catch_up = NULL;
    char *end_at = NULL, *run_re = NULL, *skip_re = NULL, *pool = NULL;
    char *reference = NULL, *environment = NULL, *ns = NULL, *suite = NULL;
    int64_t max_runs = 0, timeout_ns = 0;
    bool paused = false, json = false;
    const struct opt opts[] = {
        {"expr", NULL, OPT_STRING, NULL,
         "cron (5 or 6 fields), @daily..., or @every 30s (required)", &expr, 0,
         0},
        {"tz", NULL, OPT_STRING, NULL, "IANA time zone (default UTC)", &tz, 0,
         0},
        {"overlap", NULL, OPT_STRING, NULL,
         "forbid (default: skip a tick while a run is active) or allow",
         &overlap, 0, 0},
        {"catch-up", NULL, OPT_STRING, NULL,
         "skip (default) or one: missed ticks after an outage", &catch_up, 0,
         0},
        {"max-runs", NULL, OPT_INT, NULL, "end after this many runs", &max_runs,
         1, 2147483647},
        {"end-at", NULL, OPT_STRING, NULL, "no tick after this RFC 3339 time",
         &end_at, 0, 0},
        {"paused", NULL, OPT_BOOL, NULL, "create it paused", &paused, 0, 0},
        {"run", NULL, OPT_STRING, NULL, "run only tests matching (POSIX ERE)",
         &run_re, 0, 0},
        {"skip", NULL, OPT_STRING, NULL, "skip tests matching (POSIX ERE)",
         &skip_re, 0, 0},
        {"param", NULL, OPT_KV, NULL, "a run parameter KEY=VALUE (repeatable)",
         &params, 0, 0},
        {"pool", NULL, OPT_STRING, NULL, "the worker pool", &pool, 0, 0},
        {"reference", NULL, OPT_STRING, NULL, "a commit or deploy id",
         &reference, 0, 0},
        {"environment", NULL, OPT_STRING, NULL, "e.g. the cluster's name",
         &environment, 0, 0},
        {"timeout", NULL, OPT_DURATION, NULL, "suite run timeout, e.g. 10m",
         &timeout_ns, 0, 0},
        {"json", NULL, OPT_BOOL, NULL, "the schedule as the API answers", &json,
         0, 0},
    };
    const struct ctl_cmd cmd = {
        .name = "schedule create",
        .synopsis = "NAME SUITE --expr EXPR [flags]",
        .summary = "Creates schedule NAME that runs SUITE (or "
                   "NAMESPACE/SUITE) at each tick of EXPR.",
        .n_args = 2,
        .opts = opts,
        .n_opts = sizeof(opts) / sizeof(opts[0]),
    };
    const char *args[2] = {NULL, NULL};
    struct remote_schedule s;
    struct remote_error err;
    struct buf raw;
    int rc;
    int st;

    buf_init(&raw, 0);
    rc = ctl_parse(ctl, &cmd, argc, argv, args);
    if (rc != 0) {
        rc = rc == CTL_HELP ? CTL_EXIT_OK : rc;
        goto out;
    }
    if (!expr) {
        fprintf(stderr, "%s schedule create: --expr is required\n", ctl->prog);
        rc = CTL_EXIT_USAGE;
        goto out;
    }
    rc = split_suite(ctl, args[1], &ns, &suite);
    rc = rc ? rc : ctl_connect(ctl, "schedule create");
    if (rc != 0) {
        goto out;
    }
    req.name = args[0];
    req.expression = expr;
    req.time_zone = tz;
    req.overlap_policy = overlap;
    req.catch_up = catch_up;
    req.end_at = end_at;
    req.max_runs = max_runs;
    req.paused = paused;
    req.run.suite = suite;
    req.run.ns = ns;
    req.run.run_filter = run_re;
    req.run.skip_filter = skip_re;
    req.run.params = params.items;
    req.run.n_params = params.n;
    req.run.pool = pool;
    req.run.reference = reference;
    req.run.environment = environment;
    req.run.timeout_ns = timeout_ns;
    st = remote_create_schedule(ctl->remote, &req, &s, &raw, &err);
    if (st != ST_OK) {
        rc = ctl_fail(ctl, "schedule create", st, &err);
        goto out;
    }
    if (json) {
        ctl_print_json(&raw);
    } else {
        print_schedule(&s, false);
    }
    remote_schedule_cleanup(&s);
out:
    free(ns);
    free(suite);
    buf_cleanup(&raw);
    opts_free(opts, sizeof(opts) / sizeof(opts[0]));
    return rc;
}

static void list_row(struct table *t, const struct remote_schedule *s)
{
    char next[40];
    char fired[24];
    const struct remote_schedule_tick *k = s->n_ticks ? &s->ticks[0] : NULL;
    char *last =
        k ? mem_printf("%s%s%s", k->reason ? k->reason : k->outcome,
                       k->run_id ? " run " : "", k->run_id ? k->run_id : "")
          : NULL;

    ctl_format_time(s->next_fire_ns, next, sizeof(next));
    snprintf(fired, sizeof(fired), "%lld", (long long)s->runs_fired);
    table_add(t, (const char *const[]){
                     s->name, s->suite, s->expression, s->time_zone,
                     s->enabled ? "yes" : "paused", next, fired, last});
    free(last);
}

/* list, and show/pause/resume/delete NAME. */
static int sub_simple(struct ctl *ctl, const char *sub, int argc, char **argv)
{
    static const char *const headers[] = {"NAME", "SUITE",    "EXPRESSION",
                                          "ZONE", "ENABLED",  "NEXT",
                                          "RUNS", "LAST TICK"};
    bool json = false;
    const struct opt opts[] = {
        {"json", NULL, OPT_BOOL, NULL, "print the API's answer", &json, 0, 0},
    };
    bool list = strcmp(sub, "list") == 0;
    char *name = mem_printf("schedule %s", sub);
    const struct ctl_cmd cmd = {
        .name = name,
        .synopsis = list ? "[flags]" : "NAME [flags]",
        .summary = list ? "Lists the schedules with their next tick."
                        : "Shows, pauses, resumes or deletes schedule NAME.",
        .n_args = list ? 0 : 1,
        .opts = opts,
        .n_opts = 1,
    };
    const char *args[1] = {NULL};
    struct remote_schedule s = {0};
    struct remote_schedule_list l = {0};
    struct remote_error err;
    struct buf raw;
    int rc;
    int st;

    buf_init(&raw, 0);
    rc = ctl_parse(ctl, &cmd, argc, argv, list ? NULL : args);
    if (rc != 0) {
        rc = rc == CTL_HELP ? CTL_EXIT_OK : rc;
        goto out;
    }
    rc = ctl_connect(ctl, name);
    if (rc != 0) {
        goto out;
    }
    if (list) {
        st = remote_list_schedules(ctl->remote, &l, &raw, &err);
    } else if (strcmp(sub, "show") == 0) {
        st = remote_get_schedule(ctl->remote, args[0], &s, &raw, &err);
    } else if (strcmp(sub, "delete") == 0) {
        st = remote_delete_schedule(ctl->remote, args[0], &err);
    } else {
        st = remote_enable_schedule(ctl->remote, args[0],
                                    strcmp(sub, "resume") == 0, &s, &raw, &err);
    }
    if (st != ST_OK) {
        rc = ctl_fail(ctl, name, st, &err);
        goto out;
    }
    if (json && raw.len) {
        ctl_print_json(&raw);
    } else if (list && l.n == 0) {
        fprintf(stderr, "%s schedule list: no schedules\n", ctl->prog);
    } else if (list) {
        struct table t;

        table_init(&t, sizeof(headers) / sizeof(headers[0]), headers);
        for (size_t i = 0; i < l.n; i++) {
            list_row(&t, &l.schedules[i]);
        }
        table_print(&t, stdout);
        table_cleanup(&t);
    } else if (strcmp(sub, "delete") == 0) {
        printf("schedule %s deleted\n", args[0]);
    } else {
        print_schedule(&s, strcmp(sub, "show") == 0);
    }
out:
    remote_schedule_cleanup(&s);
    remote_schedule_list_cleanup(&l);
    buf_cleanup(&raw);
    free(name);
    return rc;
}

int cmd_schedule(struct ctl *ctl, int argc, char **argv)
{
    static const char *const simple[] = {"list",   "show",   "pause",
                                         "resume", "delete", NULL};

    if (argc >= 1 && strcmp(argv[0], "create") == 0) {
        return sub_create(ctl, argc - 1, argv + 1);
    }
    for (size_t i = 0; argc >= 1 && simple[i]; i++) {
        if (strcmp(argv[0], simple[i]) == 0) {
            return sub_simple(ctl, simple[i], argc - 1, argv + 1);
        }
    }
    if (argc >= 1 &&
        (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf(schedule_usage, ctl->prog, ctl->prog);
        return CTL_EXIT_OK;
    }
    fprintf(stderr, schedule_usage, ctl->prog, ctl->prog);
    return CTL_EXIT_USAGE;
}
