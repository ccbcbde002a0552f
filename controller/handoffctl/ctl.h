/* ctl: what handoffctl's commands share: exit codes, flag parsing (with
 * the connection settings every command takes), the client, error
 * messages, signals, and report and JSON output. handoffctl has one
 * thread; only the signal handler runs beside it. */
#ifndef HANDOFF_CTL_H
#define HANDOFF_CTL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "opts.h"
#include "remote.h"

/* handoffctl's exit status (docs/handoffctl.md). */
enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAILED = 1,      /* run --wait: the run failed, errored, was
                            cancelled or timed out */
    CTL_EXIT_USAGE = 2,       /* bad flags, or a request the controller
                            refused (4xx: unknown suite or run, ...) */
    CTL_EXIT_UNAVAILABLE = 3, /* the controller is unreachable, answered
                                 5xx, or answered outside the API */
    CTL_EXIT_SIGNAL = 128,    /* + the signal: run --wait stopped
                                 following (the run goes on) */
};

/* ctl_parse's answer to --help: usage printed, exit 0. */
#define CTL_HELP (-1)

/* A command, for parsing and --help. */
struct ctl_cmd {
    const char *name;     /* "run" */
    const char *synopsis; /* "SUITE [flags]" */
    const char *summary;  /* what it does, one paragraph */
    const char *details;  /* more for --help, or NULL */
    size_t n_args;        /* positional arguments it takes, exactly */
    const struct opt *opts;
    size_t n_opts;
};

#define CTL_SHARED_OPTS 3

/* Settings every command has, and the client made from them. */
struct ctl {
    const char *prog;      /* program name for messages */
    char *url;             /* --url, HANDOFF_URL */
    char *token;           /* HANDOFF_TOKEN */
    int64_t idle_ns;       /* HANDOFF_IDLE_TIMEOUT */
    struct remote *remote; /* after ctl_connect */
    struct opt shared[CTL_SHARED_OPTS];
};

void ctl_init(struct ctl *ctl, const char *prog);
void ctl_cleanup(struct ctl *ctl);

/* Parses argv[0..argc) (what follows the command name) for cmd: its
 * flags, the shared ones (--url and the variables HANDOFF_URL,
 * HANDOFF_TOKEN, HANDOFF_IDLE_TIMEOUT) and exactly cmd->n_args positional
 * arguments, stored in args (pointers into argv). Flags and arguments may
 * mix; "--" ends the flags. An OPT_KV flag takes one KEY=VALUE per use,
 * commas included in the value. Returns 0; CTL_HELP after printing the
 * usage on stdout for --help or -h; or CTL_EXIT_USAGE after printing what
 * is wrong on stderr. On return the outs of cmd's opts hold what was
 * parsed (the caller frees them with opts_free). */
int ctl_parse(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv,
              const char **args);
/* Writes cmd's usage, flags and environment. */
void ctl_usage(const struct ctl *ctl, const struct ctl_cmd *cmd, FILE *out);

/* Makes ctl->remote from the parsed settings. Returns 0, or
 * CTL_EXIT_USAGE after printing why (a bad URL or token). */
int ctl_connect(struct ctl *ctl, const char *cmd);

/* The exit status for a remote_* status (see remote.h). */
int ctl_exit_code(int st);
/* Prints err for a failed call of cmd on stderr, with a hint where one
 * helps, and returns ctl_exit_code(st). */
int ctl_fail(const struct ctl *ctl, const char *cmd, int st,
             const struct remote_error *err);

/* From here on SIGINT and SIGTERM set the stop flag instead of killing;
 * a second signal kills as usual. */
void ctl_catch_signals(void);
/* The flag the handlers set (the signal's number), for remote_config. */
const volatile sig_atomic_t *ctl_stop_flag(void);
/* Sleeps ms milliseconds, less if a signal sets the stop flag. Returns
 * false when stopped. */
bool ctl_sleep_ms(int64_t ms);

/* Writes run's JUnit XML to path, atomically (a temporary file renamed).
 * run must have its detail. Returns 0, or CTL_EXIT_USAGE after printing
 * why. */
int ctl_write_junit(const struct ctl *ctl, const char *cmd, const char *path,
                    const struct remote_run *run);
/* Writes a JSON answer as received to stdout, ending in a newline. */
void ctl_print_json(const struct buf *raw);
/* A time for tables and headers: "2026-11-23T10:00:00Z" (UTC, seconds),
 * "-" when ns is 0. Writes into out (at least 32 bytes); returns out. */
char *ctl_format_time(int64_t ns, char *out, size_t len);
/* A duration in Go style ("1.306s"), "-" when ns < 0. Returns out. */
char *ctl_format_duration(int64_t ns, char *out, size_t len);

#endif
