/* handoffctl's shared command-line plumbing. */
#include "ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "mem.h"
#include "report.h"

static volatile sig_atomic_t ctl_signal;

void ctl_init(struct ctl *ctl, const char *prog)
{
    const struct opt shared[CTL_SHARED_OPTS] = {
        {"url", "HANDOFF_URL", OPT_STRING, "http://127.0.0.1:8080",
         "the controller's base URL", &ctl->url, 0, 0},
        {NULL, "HANDOFF_TOKEN", OPT_STRING, NULL,
         "bearer token sent to the controller (environment only)", &ctl->token,
         0, 0},
        {NULL, "HANDOFF_IDLE_TIMEOUT", OPT_DURATION, "60s",
         "run --wait: give up on a silent event stream or an\n"
         "                           unreachable controller after this long",
         &ctl->idle_ns, 0, 0},
    };

    memset(ctl, 0, sizeof(*ctl));
    ctl->prog = prog;
    memcpy(ctl->shared, shared, sizeof(shared));
}

void ctl_cleanup(struct ctl *ctl)
{
    remote_free(ctl->remote);
    ctl->remote = NULL;
    opts_free(ctl->shared, CTL_SHARED_OPTS);
}

/* What a flag's value looks like in the usage text. */
static const char *metavar(const struct opt *o)
{
    switch (o->kind) {
    case OPT_STRING:
        return " TEXT";
    case OPT_INT:
        return " N";
    case OPT_DURATION:
        return " DURATION";
    case OPT_KV:
        return " KEY=VALUE";
    case OPT_BOOL:
        break;
    }
    return "";
}

/* Flags one a line: "  --name VALUE   help (default d)". opts_usage's
 * layout has a column for variables, which these flags do not have. */
static void flag_lines(FILE *out, const struct opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char flag[64];

        if (!opts[i].name) {
            continue;
        }
        snprintf(flag, sizeof(flag), "%s%s%s",
                 strlen(opts[i].name) == 1 ? "-" : "--", opts[i].name,
                 metavar(&opts[i]));
        fprintf(out, "  %-24s %s", flag, opts[i].help);
        if (opts[i].def && *opts[i].def) {
            fprintf(out, " (default %s)", opts[i].def);
        }
        fputc('\n', out);
    }
}

void ctl_usage(const struct ctl *ctl, const struct ctl_cmd *cmd, FILE *out)
{
    fprintf(out, "usage: %s %s %s\n\n%s\n", ctl->prog, cmd->name, cmd->synopsis,
            cmd->summary);
    if (cmd->details) {
        fprintf(out, "\n%s", cmd->details);
    }
    fprintf(out, "\nflags:\n");
    flag_lines(out, cmd->opts, cmd->n_opts);
    flag_lines(out, ctl->shared, CTL_SHARED_OPTS);
    fprintf(out, "\nenvironment:\n");
    for (size_t i = 0; i < CTL_SHARED_OPTS; i++) {
        const struct opt *o = &ctl->shared[i];

        if (o->name) {
            fprintf(out, "  %-24s --%s when not given\n", o->env, o->name);
        } else {
            fprintf(out, "  %-24s %s", o->env, o->help);
            if (o->def) {
                fprintf(out, " (default %s)", o->def);
            }
            fputc('\n', out);
        }
    }
    fprintf(out,
            "\nexit status: 0 ok; 1 the run did not pass (run --wait); 2 "
            "usage error or a\nrequest the controller refused (4xx); 3 "
            "the controller is unreachable,\nanswered 5xx or something "
            "malformed; 130 interrupted. See `%s help`.\n",
            ctl->prog);
}

/* The opt that arg ("--name", "-name", "--name=value") names, or NULL. */
static const struct opt *find_opt(const struct opt *opts, size_t n,
                                  const char *arg)
{
    const char *name = arg + (arg[1] == '-' ? 2 : 1);
    size_t len = strcspn(name, "=");

    for (size_t i = 0; i < n; i++) {
        if (opts[i].name && strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

/* One KEY=VALUE of an OPT_KV flag. */
static int add_kv(const struct ctl *ctl, const struct ctl_cmd *cmd,
                  const struct opt *o, const char *text)
{
    struct opt_kv *kv = o->out;
    const char *eq = text ? strchr(text, '=') : NULL;
    char *key;

    if (!text) {
        fprintf(stderr, "%s %s: flag --%s needs a value\n", ctl->prog,
                cmd->name, o->name);
        return CTL_EXIT_USAGE;
    }
    if (!eq || eq == text) {
        fprintf(stderr, "%s %s: --%s \"%s\": want KEY=VALUE\n", ctl->prog,
                cmd->name, o->name, text);
        return CTL_EXIT_USAGE;
    }
    key = mem_strndup(text, (size_t)(eq - text));
    result_kv_set(&kv->items, &kv->n, key, eq + 1);
    free(key);
    return 0;
}

int ctl_parse(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv,
              const char **args)
{
    size_t n_all = cmd->n_opts + CTL_SHARED_OPTS;
    struct opt *all = mem_calloc(n_all, sizeof(*all));
    char **flags = mem_calloc((size_t)argc + 1, sizeof(*flags));
    int n_flags = 0;
    size_t n_args = 0;
    bool only_args = false;
    char err[2048];
    int rc = 0;

    if (cmd->n_opts) {
        memcpy(all, cmd->opts, cmd->n_opts * sizeof(*all));
    }
    memcpy(all + cmd->n_opts, ctl->shared, sizeof(ctl->shared));
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        const struct opt *o;

        if (!only_args && strcmp(a, "--") == 0) {
            only_args = true;
        } else if (only_args || a[0] != '-' || a[1] == '\0') {
            if (n_args == cmd->n_args) {
                fprintf(stderr,
                        "%s %s: unexpected argument \"%s\" (usage: "
                        "%s %s %s)\n",
                        ctl->prog, cmd->name, a, ctl->prog, cmd->name,
                        cmd->synopsis);
                rc = CTL_EXIT_USAGE;
            } else {
                args[n_args++] = a;
            }
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-help") == 0 ||
                   strcmp(a, "-h") == 0) {
            ctl_usage(ctl, cmd, stdout);
            rc = CTL_HELP;
        } else if ((o = find_opt(all, n_all, a)) && o->kind == OPT_KV) {
            /* opts would split the value on commas (its variable syntax);
             * a parameter's value may hold commas. */
            const char *eq = strchr(a, '=');

            rc = add_kv(ctl, cmd, o,
                        eq             ? eq + 1
                        : i + 1 < argc ? argv[++i]
                                       : NULL);
        } else {
            flags[n_flags++] = argv[i];
            if (o && o->kind != OPT_BOOL && !strchr(a, '=') && i + 1 < argc) {
                flags[n_flags++] = argv[++i];
            }
        }
    }
    if (rc == 0 &&
        opts_parse(all, n_all, n_flags, flags, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "%s %s: %s\n", ctl->prog, cmd->name, err);
        rc = CTL_EXIT_USAGE;
    }
    if (rc == 0 && n_args < cmd->n_args) {
        fprintf(stderr, "%s %s: missing argument (usage: %s %s %s)\n",
                ctl->prog, cmd->name, ctl->prog, cmd->name, cmd->synopsis);
        rc = CTL_EXIT_USAGE;
    }
    free(flags);
    free(all);
    return rc;
}

int ctl_connect(struct ctl *ctl, const char *cmd)
{
    char agent[64];
    struct remote_config cfg = {
        .url = ctl->url,
        .token = ctl->token,
        .user_agent = agent,
        .idle_timeout_ms = ctl->idle_ns / CLOCK_NS_PER_MS,
        .stop = ctl_stop_flag(),
    };
    struct remote_error err;
    int rc;

    snprintf(agent, sizeof(agent), "handoffctl/%s", HANDOFFCTL_VERSION);
    if (cfg.idle_timeout_ms <= 0) {
        cfg.idle_timeout_ms = 1;
    }
    rc = remote_new(&cfg, &ctl->remote, &err);
    if (rc != ST_OK) {
        fprintf(stderr, "%s %s: %s\n", ctl->prog, cmd, err.message);
        return CTL_EXIT_USAGE;
    }
    return 0;
}

int ctl_exit_code(int st)
{
    switch (st) {
    case ST_OK:
        return CTL_EXIT_OK;
    case ST_INVALID:
    case ST_NOT_FOUND:
    case ST_CONFLICT:
        return CTL_EXIT_USAGE;
    case ST_CANCELLED:
        return CTL_EXIT_SIGNAL + (ctl_signal ? (int)ctl_signal : SIGINT);
    default:
        return CTL_EXIT_UNAVAILABLE;
    }
}

int ctl_fail(const struct ctl *ctl, const char *cmd, int st,
             const struct remote_error *err)
{
    int code = ctl_exit_code(st);

    if (code == CTL_EXIT_USAGE && err->http_status) {
        fprintf(stderr, "%s %s: %s (HTTP %d%s%s)\n", ctl->prog, cmd,
                err->message, err->http_status, err->code[0] ? " " : "",
                err->code);
        if (err->http_status == 401 || err->http_status == 403) {
            fprintf(stderr, "%s %s: check HANDOFF_TOKEN\n", ctl->prog, cmd);
        }
    } else {
        fprintf(stderr, "%s %s: %s\n", ctl->prog, cmd, err->message);
    }
    return code;
}

static void on_signal(int sig)
{
    ctl_signal = sig;
}

void ctl_catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a sleep ends at once. SA_RESETHAND: a second signal
     * kills, for a user who really means it. */
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

const volatile sig_atomic_t *ctl_stop_flag(void)
{
    return &ctl_signal;
}

bool ctl_sleep_ms(int64_t ms)
{
    int64_t until = clock_mono_ns() + ms * CLOCK_NS_PER_MS;

    while (!ctl_signal) {
        int64_t left = until - clock_mono_ns();
        struct timespec ts;

        if (left <= 0) {
            break;
        }
        /* Short slices: a signal that lands between the check and the
         * sleep is seen within 100 ms. */
        if (left > 100 * CLOCK_NS_PER_MS) {
            left = 100 * CLOCK_NS_PER_MS;
        }
        ts.tv_sec = (time_t)(left / CLOCK_NS_PER_S);
        ts.tv_nsec = (long)(left % CLOCK_NS_PER_S);
        nanosleep(&ts, NULL);
    }
    return !ctl_signal;
}

int ctl_write_junit(const struct ctl *ctl, const char *cmd, const char *path,
                    const struct remote_run *run)
{
    const struct result_suite *suites[] = {&run->detail};
    const char *host = NULL;
    char *tmp = mem_printf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int rc = 0;

    if (!f) {
        fprintf(stderr, "%s %s: --junit %s: %s\n", ctl->prog, cmd, path,
                strerror(errno));
        free(tmp);
        return CTL_EXIT_USAGE;
    }
    /* The worker that ran it is the report's host. */
    if (run->n_jobs > 0 && run->jobs[0].worker) {
        host = run->jobs[0].worker;
    }
    if (report_junit_write(f, suites, 1, host) != ST_OK) {
        rc = CTL_EXIT_USAGE;
    }
    if (fclose(f) != 0 || rc != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "%s %s: --junit %s: cannot write the report: %s\n",
                ctl->prog, cmd, path, strerror(errno));
        unlink(tmp);
        rc = CTL_EXIT_USAGE;
    }
    free(tmp);
    return rc;
}

void ctl_print_json(const struct buf *raw)
{
    fwrite(buf_str(raw), 1, raw->len, stdout);
    if (raw->len == 0 || raw->data[raw->len - 1] != '\n') {
        fputc('\n', stdout);
    }
}

char *ctl_format_time(int64_t ns, char *out, size_t len)
{
    time_t secs = (time_t)(ns / CLOCK_NS_PER_S);
    struct tm tm;

    if (ns == 0 || !gmtime_r(&secs, &tm)) {
        snprintf(out, len, "-");
    } else {
        strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    return out;
}

char *ctl_format_duration(int64_t ns, char *out, size_t len)
{
    if (ns < 0) {
        snprintf(out, len, "-");
        return out;
    }
    /* Milliseconds are enough for people. */
    return clock_format_duration(ns - ns % CLOCK_NS_PER_MS, out, len);
}
