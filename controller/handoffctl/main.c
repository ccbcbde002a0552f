/* handoffctl: the command-line client of the controller's HTTP API, for
 * people and for CI pipelines (`handoffctl run SUITE --wait --junit
 * report.xml` after a deploy). Depends on common/ only. Commands and exit
 * status: docs/handoffctl.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctl.h"
#include "log.h"

struct command {
    const char *name;
    int (*fn)(struct ctl *ctl, int argc, char **argv);
};

static const struct command commands[] = {
    {"run", cmd_run},           {"runs", cmd_runs},
    {"show", cmd_show},         {"cancel", cmd_cancel},
    {"suites", cmd_suites},     {"workers", cmd_workers},
    {"schedule", cmd_schedule}, {"diff", cmd_diff},
};

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--url URL] <command> [flags]\n"
            "\n"
            "The command-line client of the Handoff controller's HTTP API.\n"
            "\n"
            "commands:\n"
            "  run SUITE      start a run; --wait follows it to its end like "
            "a local run\n"
            "  runs           list runs, newest first\n"
            "  show RUN       a run with its tests\n"
            "  cancel RUN     cancel a run\n"
            "  suites         the suites workers announce\n"
            "  workers        the workers\n"
            "  schedule SUB   schedules: create, list, show, pause, resume, "
            "delete\n"
            "  diff A B       compare two load runs (run ids or report "
            "files)\n"
            "  version        handoffctl's version\n"
            "  help           this text\n"
            "\n"
            "`%s <command> --help` shows a command's flags.\n"
            "\n"
            "environment:\n"
            "  HANDOFF_URL           the controller (default "
            "http://127.0.0.1:8080; --url wins)\n"
            "  HANDOFF_TOKEN         bearer token sent with every request\n"
            "  HANDOFF_IDLE_TIMEOUT  run --wait: how long a silent event "
            "stream or an\n"
            "                        unreachable controller is waited for "
            "(default 60s)\n"
            "  HANDOFF_LOG_LEVEL     debug shows every request (default "
            "warn)\n"
            "\n"
            "exit status:\n"
            "  0    done; run --wait: the run passed\n"
            "  1    run --wait: the run failed, errored, was cancelled or "
            "timed out\n"
            "  2    usage error: bad flags or arguments, or a request the "
            "controller\n"
            "       refused (4xx: unknown suite or run, invalid value, run "
            "already ended)\n"
            "  3    the controller is unreachable, answered 5xx, or answered "
            "something\n"
            "       that is not what its API describes\n"
            "  130  run --wait interrupted by Ctrl-C (143: SIGTERM): "
            "handoffctl stopped\n"
            "       following; the run goes on\n",
            prog, prog);
}

static void known_commands(FILE *f)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "%s, ", commands[i].name);
    }
    fprintf(f, "version, help\n");
}

/* `handoffctl --url U run ...`: --url before the command (as kubectl and
 * most clients take it) is moved after the command name, where every
 * command parses it. Returns the new argc; argv is rearranged in place. */
static int hoist_url(int argc, char **argv)
{
    char *url_flag[2] = {NULL, NULL};
    int n = 0;

    if (argc >= 3 && strcmp(argv[1], "--url") == 0) {
        n = 2;
    } else if (argc >= 2 && strncmp(argv[1], "--url=", 6) == 0) {
        n = 1;
    }
    if (n == 0 || argc < 1 + n + 1) {
        return argc;
    }
    url_flag[0] = argv[1];
    url_flag[1] = n == 2 ? argv[2] : NULL;
    /* argv: prog, flag..., command, rest -> prog, command, flag..., rest */
    argv[1] = argv[1 + n];
    argv[2] = url_flag[0];
    if (n == 2) {
        argv[3] = url_flag[1];
    }
    return argc;
}

int main(int argc, char **argv)
{
    const char *prog = "handoffctl";
    const char *env_level = getenv("HANDOFF_LOG_LEVEL");
    enum log_level level = LOG_WARN;
    struct ctl ctl;
    int rc;

    if (env_level && *env_level && !log_parse_level(env_level, &level)) {
        fprintf(stderr,
                "%s: HANDOFF_LOG_LEVEL \"%s\": want debug, info, warn, "
                "error or off\n",
                prog, env_level);
        return CTL_EXIT_USAGE;
    }
    log_setup(prog, level);
    argc = hoist_url(argc, argv);
    if (argc < 2) {
        usage(stderr, prog);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout, prog);
        return CTL_EXIT_OK;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("handoffctl %s\n", HANDOFFCTL_VERSION);
        return CTL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            ctl_init(&ctl, prog);
            rc = commands[i].fn(&ctl, argc - 2, argv + 2);
            ctl_cleanup(&ctl);
            fflush(stdout);
            return rc;
        }
    }
    fprintf(stderr, "%s: unknown command \"%s\"; known commands: ", prog,
            argv[1]);
    known_commands(stderr);
    return CTL_EXIT_USAGE;
}
