/* hf_main: the worker binary's command line. `list` shows the suites
 * compiled in, `run` runs suites locally with the same isolation a
 * distributed worker uses. Exit status: 0 nothing failed, 1 a test failed
 * or errored, 2 usage or configuration error. */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "handoff.h"
#include "log.h"
#include "mem.h"
#include "cli.h"
#include "loadcli.h"
#include "registry.h"
#include "report.h"
#include "result.h"
#include "runner.h"
#include "serve.h"
#include "testfilter.h"
#include "zygote.h"

#define CLI_USAGE 2

struct cli_run {
    const struct hf_suite **suites;
    size_t n_suites;
    const char *run_re;
    const char *skip_re;
    int count;
    bool json;
    bool verbose;
    const char *junit;
    struct result_kv *params;
    size_t n_params;
    int max_attempts;
    int64_t suite_timeout_ns;
    int64_t test_timeout_ns;
    int64_t kill_grace_ns;
    size_t output_cap;
};

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s <command> [flags]\n"
            "\n"
            "commands:\n"
            "  list [--json]           the suites and tests in this binary\n"
            "  run SUITE... [flags]    run suites locally\n"
            "  load WORKFLOW [flags]   run a load test locally (flags "
            "below)\n"
            "  serve [flags]           run as a distributed worker (serve "
            "--help)\n"
            "  help                    this text\n"
            "\n"
            "run flags:\n"
            "  --run REGEX             run only tests whose name matches "
            "(POSIX ERE)\n"
            "  --skip REGEX            skip tests whose name matches\n"
            "  --count N               run each test N times (default 1)\n"
            "  -v, --verbose           print every test, like go test -v\n"
            "  --json                  write Go's test2json event stream\n"
            "  --junit FILE            also write a JUnit XML report\n"
            "  --param KEY=VALUE       a run parameter (repeatable)\n"
            "  --max-attempts N        attempts per failing test\n"
            "  --timeout DURATION      suite run timeout, e.g. 10m\n"
            "  --test-timeout DURATION timeout per test attempt, e.g. 30s\n"
            "  --kill-grace DURATION   time a timed-out test gets to return "
            "(default 1s)\n"
            "  --output-cap BYTES      output kept per test (default "
            "1048576)\n"
            "\n"
            "exit status: 0 nothing failed, 1 a test failed or errored, "
            "2 usage error\n",
            prog);
}

static const char *prog_name(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');

    return slash ? slash + 1 : argv0;
}

/* ---- list ------------------------------------------------------------- */

static int cmd_list(int argc, char **argv, const char *prog)
{
    bool json = false;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "%s list: unknown flag %s; known flags: --json\n",
                    prog, argv[i]);
            return CLI_USAGE;
        }
    }
    if (json) {
        json_t *arr = json_array();
        char *text;

        for (size_t i = 0; i < registry_count(); i++) {
            const struct hf_suite *s = registry_at(i);
            json_t *tests = json_array();
            json_t *wfs = json_array();
            size_t n = registry_test_count(s);

            for (size_t j = 0; j < n; j++) {
                const struct hf_test *t = &s->tests[j];

                json_array_append_new(
                    tests,
                    json_pack("{s:s, s:i, s:I}", "name", t->name,
                              "max_attempts", registry_max_attempts(s, t),
                              "timeout_ms",
                              (json_int_t)registry_test_timeout_ms(s, t)));
            }
            json_array_append_new(
                arr,
                json_pack(
                    "{s:s, s:s, s:s, s:b, s:b, s:i, s:I, s:I, s:o}", "name",
                    s->name, "namespace", registry_namespace(s), "description",
                    s->description ? s->description : "", "has_setup",
                    s->setup != NULL, "has_teardown", s->teardown != NULL,
                    "max_attempts", registry_max_attempts(s, NULL),
                    "test_timeout_ms",
                    (json_int_t)registry_test_timeout_ms(s, NULL), "timeout_ms",
                    (json_int_t)registry_suite_timeout_ms(s), "tests", tests));
            for (size_t j = 0; j < registry_workflow_count(s); j++) {
                const struct hf_workflow *w = &s->workflows[j];

                json_array_append_new(
                    wfs, json_pack("{s:s, s:s}", "name", w->name, "description",
                                   w->description ? w->description : ""));
            }
            json_object_set_new(json_array_get(arr, json_array_size(arr) - 1),
                                "workflows", wfs);
        }
        text = json_dumps(arr, JSON_INDENT(2));
        puts(text);
        free(text);
        json_decref(arr);
        return 0;
    }
    for (size_t i = 0; i < registry_count(); i++) {
        const struct hf_suite *s = registry_at(i);
        size_t n = registry_test_count(s);

        printf("%s (namespace %s, %zu test%s)%s%s\n", s->name,
               registry_namespace(s), n, n == 1 ? "" : "s",
               s->description ? ": " : "",
               s->description ? s->description : "");
        for (size_t j = 0; j < n; j++) {
            printf("    %s\n", s->tests[j].name);
        }
        for (size_t j = 0; j < registry_workflow_count(s); j++) {
            const struct hf_workflow *w = &s->workflows[j];

            printf("    workflow %s%s%s\n", w->name, w->description ? ": " : "",
                   w->description ? w->description : "");
        }
    }
    return 0;
}

/* ---- run: flags ------------------------------------------------------- */

int cli_flag_value(int argc, char **argv, int *i, const char *name,
                   const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);

    if (a[0] != '-') {
        return 0;
    }
    a += a[1] == '-' ? 2 : 1;
    if (strncmp(a, name, n) != 0) {
        return 0;
    }
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') {
        return 0;
    }
    if (*i + 1 >= argc) {
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

static bool flag_bool(const char *arg, const char *name)
{
    const char *a = arg;

    if (a[0] != '-') {
        return false;
    }
    a += a[1] == '-' ? 2 : 1;
    return strcmp(a, name) == 0;
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        return ST_INVALID;
    }
    *out = v;
    return ST_OK;
}

static const char *const run_flags =
    "--run, --skip, --count, -v, --json, --junit, --param, --max-attempts, "
    "--timeout, --test-timeout, --kill-grace, --output-cap";

static int parse_duration_flag(const char *prog, const char *flag,
                               const char *v, int64_t *out)
{
    if (clock_parse_duration(v, out) != ST_OK || *out <= 0) {
        fprintf(stderr,
                "%s run: %s \"%s\": not a duration (use e.g. 30s, 5m, "
                "1h30m)\n",
                prog, flag, v);
        return CLI_USAGE;
    }
    return 0;
}

static int apply_value_flag(const char *prog, const char *name, const char *v,
                            struct cli_run *o)
{
    long n;

    if (strcmp(name, "run") == 0) {
        o->run_re = v;
    } else if (strcmp(name, "skip") == 0) {
        o->skip_re = v;
    } else if (strcmp(name, "junit") == 0) {
        o->junit = v;
    } else if (strcmp(name, "count") == 0) {
        if (parse_int(v, 1, 1000000, &n) != ST_OK) {
            fprintf(stderr,
                    "%s run: --count \"%s\": want an integer from 1 "
                    "to 1000000\n",
                    prog, v);
            return CLI_USAGE;
        }
        o->count = (int)n;
    } else if (strcmp(name, "max-attempts") == 0) {
        if (parse_int(v, 1, 100, &n) != ST_OK) {
            fprintf(stderr,
                    "%s run: --max-attempts \"%s\": want an integer "
                    "from 1 to 100\n",
                    prog, v);
            return CLI_USAGE;
        }
        o->max_attempts = (int)n;
    } else if (strcmp(name, "output-cap") == 0) {
        if (parse_int(v, 1024, 1L << 30, &n) != ST_OK) {
            fprintf(stderr,
                    "%s run: --output-cap \"%s\": want bytes from "
                    "1024 to 1073741824\n",
                    prog, v);
            return CLI_USAGE;
        }
        o->output_cap = (size_t)n;
    } else if (strcmp(name, "timeout") == 0) {
        return parse_duration_flag(prog, "--timeout", v, &o->suite_timeout_ns);
    } else if (strcmp(name, "test-timeout") == 0) {
        return parse_duration_flag(prog, "--test-timeout", v,
                                   &o->test_timeout_ns);
    } else if (strcmp(name, "kill-grace") == 0) {
        return parse_duration_flag(prog, "--kill-grace", v, &o->kill_grace_ns);
    } else {
        const char *eq = strchr(v, '=');
        char *key;

        if (!eq || eq == v) {
            fprintf(stderr, "%s run: --param \"%s\": want KEY=VALUE\n", prog,
                    v);
            return CLI_USAGE;
        }
        key = mem_strndup(v, (size_t)(eq - v));
        result_kv_set(&o->params, &o->n_params, key, eq + 1);
        free(key);
    }
    return 0;
}

static int parse_run_flags(int argc, char **argv, const char *prog,
                           struct cli_run *o)
{
    static const char *const value_flags[] = {
        "run",     "skip",         "junit",      "count", "max-attempts",
        "timeout", "test-timeout", "kill-grace", "param", "output-cap"};

    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        const char *name = NULL;
        int rc = 0;

        if (argv[i][0] != '-' || strcmp(argv[i], "-") == 0) {
            const struct hf_suite *s = registry_find(argv[i]);

            if (!s) {
                char names[4096];

                registry_names(names, sizeof(names));
                fprintf(stderr,
                        "%s run: unknown suite \"%s\"; known suites: "
                        "%s\n",
                        prog, argv[i], names);
                return CLI_USAGE;
            }
            o->suites = mem_reallocarray(o->suites, o->n_suites + 1,
                                         sizeof(*o->suites));
            o->suites[o->n_suites++] = s;
            continue;
        }
        if (flag_bool(argv[i], "v") || flag_bool(argv[i], "verbose")) {
            o->verbose = true;
            continue;
        }
        if (flag_bool(argv[i], "json")) {
            o->json = true;
            continue;
        }
        for (size_t k = 0; k < sizeof(value_flags) / sizeof(value_flags[0]);
             k++) {
            rc = cli_flag_value(argc, argv, &i, value_flags[k], &v);
            if (rc != 0) {
                name = value_flags[k];
                break;
            }
        }
        if (!name) {
            fprintf(stderr, "%s run: unknown flag %s; known flags: %s\n", prog,
                    argv[i], run_flags);
            return CLI_USAGE;
        }
        if (rc < 0) {
            fprintf(stderr, "%s run: flag %s needs a value\n", prog, argv[i]);
            return CLI_USAGE;
        }
        rc = apply_value_flag(prog, name, v, o);
        if (rc) {
            return rc;
        }
    }
    if (o->n_suites == 0) {
        char names[4096];

        registry_names(names, sizeof(names));
        fprintf(stderr, "%s run: name at least one suite; known suites: %s\n",
                prog, names);
        return CLI_USAGE;
    }
    return 0;
}

/* ---- run: execution --------------------------------------------------- */

struct cli_loop {
    struct event_base *base;
    struct reporter *reporter;
    struct runner *current;
    int interrupts;
};

static void on_event(void *arg, const struct report_event *ev)
{
    struct cli_loop *l = arg;

    report_emit(l->reporter, ev);
}

static void on_done(void *arg, struct runner *r)
{
    struct cli_loop *l = arg;

    (void)r;
    event_base_loopbreak(l->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct cli_loop *l = arg;

    (void)what;
    if (++l->interrupts > 1) {
        fprintf(stderr, "\ninterrupted again: stopping now\n");
        _exit(130);
    }
    fprintf(stderr, "\n%s: stopping the run (again to stop at once)\n",
            sig == SIGINT ? "interrupt" : "terminated");
    if (l->current) {
        runner_cancel(l->current, "interrupted");
    }
}

static int write_junit(const char *prog, const char *path,
                       const struct result_suite *const *res, size_t n)
{
    char *tmp = mem_printf("%s.tmp.%ld", path, (long)getpid());
    char host[256] = "";
    FILE *f = fopen(tmp, "w");
    int rc;

    gethostname(host, sizeof(host) - 1);
    if (!f) {
        fprintf(stderr, "%s run: --junit %s: %s\n", prog, path,
                strerror(errno));
        free(tmp);
        return CLI_USAGE;
    }
    rc = report_junit_write(f, res, n, host);
    if (fclose(f) != 0 || rc != ST_OK || rename(tmp, path) != 0) {
        fprintf(stderr, "%s run: --junit %s: cannot write the report: %s\n",
                prog, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return CLI_USAGE;
    }
    free(tmp);
    return 0;
}

/* Decides per test whether it runs. Returns the number selected; reasons
 * get a string for each test filtered out. */
static size_t select_tests(const struct hf_suite *s, const struct testfilter *f,
                           char **reasons)
{
    size_t n = registry_test_count(s);
    size_t selected = 0;

    for (size_t i = 0; i < n; i++) {
        char why[512];
        const char *reason = testfilter_reason(f, s->tests[i].name, "--run",
                                               "--skip", why, sizeof(why));

        if (reason) {
            reasons[i] = mem_strdup(reason);
        } else {
            selected++;
        }
    }
    return selected;
}

static int run_suites(struct cli_run *o, const char *prog, struct zygote *z,
                      struct event_base *base)
{
    struct testfilter filter;
    bool have_filter = false;
    char err[512];
    char ***reasons = mem_calloc(o->n_suites, sizeof(*reasons));
    struct runner **runners = mem_calloc(o->n_suites, sizeof(*runners));
    const struct result_suite **results =
        mem_calloc(o->n_suites, sizeof(*results));
    struct cli_loop loop = {0};
    struct event *sigint = NULL;
    struct event *sigterm = NULL;
    size_t selected = 0;
    size_t ran = 0;
    int rc = 0;

    if (testfilter_init(&filter, o->run_re, o->skip_re, "--run", "--skip", err,
                        sizeof(err)) != ST_OK) {
        fprintf(stderr, "%s run: %s\n", prog, err);
        rc = CLI_USAGE;
        goto out;
    }
    have_filter = true;
    for (size_t i = 0; i < o->n_suites; i++) {
        reasons[i] =
            mem_calloc(registry_test_count(o->suites[i]), sizeof(**reasons));
        selected += select_tests(o->suites[i], &filter, reasons[i]);
    }
    if (selected == 0) {
        fprintf(stderr, "%s run: the filters select no test (--run %s%s%s)\n",
                prog, o->run_re ? o->run_re : "(none)",
                o->skip_re ? ", --skip " : "", o->skip_re ? o->skip_re : "");
        rc = CLI_USAGE;
        goto out;
    }

    loop.base = base;
    loop.reporter = o->json ? report_test2json_new(stdout)
                            : report_text_new(stdout, o->verbose);
    sigint = evsignal_new(loop.base, SIGINT, on_signal, &loop);
    sigterm = evsignal_new(loop.base, SIGTERM, on_signal, &loop);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    for (size_t i = 0; i < o->n_suites && loop.interrupts == 0; i++) {
        struct runner_config cfg = {
            .suite = o->suites[i],
            .skip_reasons = (const char *const *)reasons[i],
            .params = o->params,
            .n_params = o->n_params,
            .count = o->count,
            .max_attempts = o->max_attempts,
            .test_timeout_ns = o->test_timeout_ns,
            .suite_timeout_ns = o->suite_timeout_ns,
            .kill_grace_ns = o->kill_grace_ns,
            .output_cap = o->output_cap,
            .on_event = on_event,
            .on_done = on_done,
            .arg = &loop,
        };

        if (runner_start(loop.base, z, &cfg, &runners[i]) != ST_OK) {
            fprintf(stderr, "%s run: cannot start suite %s (see log)\n", prog,
                    o->suites[i]->name);
            rc = 1;
            break;
        }
        loop.current = runners[i];
        event_base_dispatch(loop.base);
        loop.current = NULL;
        results[ran++] = runner_result(runners[i]);
    }
    fflush(stdout);
    if (o->junit && ran > 0) {
        int jrc = write_junit(prog, o->junit, results, ran);

        if (jrc) {
            rc = jrc;
        }
    }
    if (rc == 0) {
        rc = result_exit_code(results, ran);
        if (ran < o->n_suites) {
            rc = 1;
        }
    }
out:
    report_free(loop.reporter);
    for (size_t i = 0; i < o->n_suites; i++) {
        runner_free(runners[i]);
        if (reasons[i]) {
            size_t n = registry_test_count(o->suites[i]);

            for (size_t j = 0; j < n; j++) {
                free(reasons[i][j]);
            }
            free(reasons[i]);
        }
    }
    if (sigint) {
        event_free(sigint);
        event_free(sigterm);
    }
    if (have_filter) {
        testfilter_cleanup(&filter);
    }
    free(reasons);
    free(runners);
    free(results);
    return rc;
}

static int cmd_run(int argc, char **argv, const char *prog)
{
    struct cli_run o = {0};
    struct zygote *z = NULL;
    struct event_base *base = NULL;
    int rc;

    rc = parse_run_flags(argc, argv, prog, &o);
    if (rc == 0) {
        /* Before any thread exists: the zygote forks the child runners. */
        base = event_base_new();
        if (!base || zygote_start(child_main, &z) != ST_OK ||
            zygote_attach(z, base) != ST_OK) {
            fprintf(stderr, "%s run: cannot start the child runner helper\n",
                    prog);
            rc = CLI_USAGE;
        } else {
            rc = run_suites(&o, prog, z, base);
        }
    }
    /* The zygote's event lives on base: free it first. */
    zygote_free(z);
    if (base) {
        event_base_free(base);
    }
    result_kv_free(o.params, o.n_params);
    free(o.suites);
    return rc;
}

int hf_main(int argc, char **argv)
{
    const char *prog = argc > 0 ? prog_name(argv[0]) : "handoff-worker";
    char err[512];
    enum log_level level = LOG_WARN;
    const char *env_level = getenv("HANDOFF_LOG_LEVEL");

    if (env_level && !log_parse_level(env_level, &level)) {
        fprintf(stderr,
                "%s: HANDOFF_LOG_LEVEL \"%s\": want debug, info, "
                "warn, error or off\n",
                prog, env_level);
        return CLI_USAGE;
    }
    log_setup(prog, level);
    if (registry_check(err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return CLI_USAGE;
    }
    if (argc < 2) {
        usage(stderr, prog);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "list") == 0) {
        return cmd_list(argc - 2, argv + 2, prog);
    }
    if (strcmp(argv[1], "run") == 0) {
        return cmd_run(argc - 2, argv + 2, prog);
    }
    if (strcmp(argv[1], "serve") == 0) {
        return serve_main(prog, argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "load") == 0) {
        return loadcli_main(prog, argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout, prog);
        fputc('\n', stdout);
        loadcli_usage(stdout);
        return 0;
    }
    fprintf(stderr,
            "%s: unknown command \"%s\"; known commands: list, run, "
            "load, serve, help\n",
            prog, argv[1]);
    return CLI_USAGE;
}
