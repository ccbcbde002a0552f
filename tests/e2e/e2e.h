/* e2e: what the end-to-end tests share. Each test binary gets a database
 * and a worker pool of its own on the stack of deploy/stack.sh, starts
 * controllers and workers as the programs users run (logs in /tmp), talks
 * to them over HTTP and checks PostgreSQL directly. One environment per
 * process: the module keeps it in E2E.
 *
 * The functions fail the running cmocka test (fail_msg / assert_*) when
 * something they need does not happen; e2e_setup and e2e_teardown return
 * -1 instead, for cmocka's group setup and teardown. */
#ifndef HANDOFF_E2E_H
#define HANDOFF_E2E_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "db.h"

#define E2E_MAX_PROCS 16

struct e2e_proc {
    pid_t pid; /* 0 once stopped */
    char name[64];
    char log[160]; /* its stdout and stderr */
};

struct e2e_env {
    char pool[64];   /* the worker pool of this test binary */
    char dbname[64]; /* its database, dropped by e2e_teardown */
    char dsn[512];   /* HANDOFF_PG_DSN with dbname=dbname */
    struct e2e_proc procs[E2E_MAX_PROCS];
    size_t n_procs;
    struct db *db; /* a connection to dbname, for checks */
};

extern struct e2e_env E2E;

/* Creates the database "handoff_<prefix>_<pid>", names the pool
 * "<prefix><pid>" and connects E2E.db. needs_redis: also require
 * HANDOFF_REDIS_URL. Returns 0 or -1 (with a message on stderr). */
int e2e_setup(const char *prefix, int needs_redis);
/* Stops every process (SIGTERM, in reverse order of start), drops the
 * database. Returns -1 when a process exited other than 0 (its log is
 * printed), else 0. */
int e2e_teardown(void);

void e2e_sleep_ms(long ms);
/* A TCP port free on 127.0.0.1 now. */
int e2e_free_port(void);

/* Starts bin with args (NULL-ended, may be NULL) and the environment plus
 * env's "K=V" entries (replacing inherited ones of the same name). */
struct e2e_proc *e2e_spawn(const char *name, const char *bin,
                           const char *const *args, const char *const *env);
/* A controller on a free port, on the test's database, logging at info;
 * env: extra "K=V" entries or NULL. Writes its base URL to url. */
struct e2e_proc *e2e_start_controller(const char *name, const char *const *env,
                                      char *url, size_t url_len);
/* handoff-test-worker serve in the test's pool, id name, with quick
 * heartbeats, drain and kill grace; args: extra flags or NULL. */
struct e2e_proc *e2e_start_worker(const char *name, int concurrency,
                                  const char *const *args);
/* The started process called name that still runs, or NULL. */
struct e2e_proc *e2e_proc_named(const char *name);
/* Sends sig and waits (SIGKILL after 20 s); returns the exit status or
 * 128 + the signal. */
int e2e_proc_stop(struct e2e_proc *p, int sig);
void e2e_print_log(const struct e2e_proc *p);
void e2e_print_logs(void);

/* Waits until the controller at url answers /readyz 200 and its catalog
 * lists every worker of workers (NULL-ended); fails the test after 60 s. */
int e2e_await_ready(const char *url, const char *const *workers);

struct e2e_http {
    long status; /* 0: no answer */
    struct buf body;
    char location[256];
};

/* One request; body may be NULL; header: one extra "Name: value" or
 * NULL. The caller cleans up h.body. */
struct e2e_http e2e_request(const char *base, const char *method,
                            const char *path, const char *body,
                            const char *header);
/* h's body as JSON (the caller decrefs); fails the test if it is not. */
json_t *e2e_json_of(const struct e2e_http *h);
/* The string at key, or "(null)". */
const char *e2e_str_of(const json_t *o, const char *key);

/* count(*)-style: the integer sql (with at most one parameter) returns. */
int64_t e2e_sql_count(const char *sql, const char *arg);
/* deploy/stack.sh cmd service (stop-service, start-service ...). */
void e2e_stack(const char *cmd, const char *service);

#endif
