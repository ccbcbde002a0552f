/* remote: the controller's HTTP API (docs/api.md) as handoffctl uses it.
 * libcurl stays in remote.c and jansson in remote_json.c; neither library's
 * types leave this module. Answers are untrusted: bodies and event-stream
 * lines have hard caps, and every JSON field is read defensively (missing,
 * null or wrongly typed reads as absent; nothing is half-filled on
 * failure). One thread: a struct remote and what it returns are used by the
 * thread that made them. */
#ifndef HANDOFF_REMOTE_H
#define HANDOFF_REMOTE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "report.h"
#include "result.h"
#include "status.h"

#define REMOTE_CONNECT_TIMEOUT_MS 5000
#define REMOTE_REQUEST_TIMEOUT_MS 30000
#define REMOTE_IDLE_TIMEOUT_MS 60000
#define REMOTE_MAX_BODY ((size_t)64 << 20)
#define REMOTE_MAX_LINE ((size_t)1 << 20)

struct remote;

struct remote_config {
    const char *url;            /* base URL: http://host:port[/prefix] */
    const char *token;          /* bearer token, or NULL */
    const char *user_agent;     /* or NULL */
    int64_t connect_timeout_ms; /* 0: REMOTE_CONNECT_TIMEOUT_MS */
    int64_t request_timeout_ms; /* whole request; 0: the default */
    int64_t idle_timeout_ms;    /* event stream silent this long: give up */
    size_t max_body;            /* bytes; 0: REMOTE_MAX_BODY */
    size_t max_line;            /* event-stream line; 0: REMOTE_MAX_LINE */
    /* When *stop becomes non-zero (a signal handler sets it), a transfer
     * in progress ends with ST_CANCELLED. May be NULL. */
    const volatile sig_atomic_t *stop;
};

/* Why a call failed, ready to show to a user. */
struct remote_error {
    int http_status;    /* 0: no answer */
    char code[64];      /* the API's error code ("not_found"), or "" */
    char message[1024]; /* the API's message, or what went wrong */
};

/* Every call below returns one of:
 *   0             done; outs written
 *   ST_INVALID    the controller refused the request (HTTP 4xx other than
 *                 404 and 409): err holds its status, code and message
 *   ST_NOT_FOUND  HTTP 404 (no such run or suite; message names matches)
 *   ST_CONFLICT   HTTP 409 (e.g. cancelling a run that ended)
 *   ST_UPSTREAM   the controller could not be reached, or answered 5xx
 *   ST_TIMEOUT    no complete answer within the request timeout
 *   ST_PROTOCOL   an answer that is not what the API describes
 *                 (malformed JSON, over the body cap, odd status)
 *   ST_CANCELLED  *stop was set
 * err is written on every failure and only then; outs only on success. */

/* Checks cfg (the URL must be http:// or https://, the token printable)
 * and makes a client. Strings in cfg are copied. Returns 0, or ST_INVALID
 * with err->message saying what is wrong. */
MUST_CHECK int remote_new(const struct remote_config *cfg, struct remote **out,
                          struct remote_error *err);
/* NULL does nothing. */
void remote_free(struct remote *r);
/* The base URL without a trailing slash. Borrowed from r. */
const char *remote_url(const struct remote *r);

/* ---- Runs ------------------------------------------------------------- */

/* POST /api/v1/runs. Pointers are borrowed; NULL or 0 leaves a field out
 * of the request (the controller's default). */
struct remote_run_request {
    const char *suite; /* required */
    const char *ns;
    const char *run_filter;
    const char *skip_filter;
    const struct result_kv *params;
    size_t n_params;
    const char *initiated_by;
    const char *reference;
    const char *environment;
    const char *pool;
    const char *trigger; /* "api", "cli" or "ui" */
    int64_t max_attempts;
    int64_t count;
    int64_t timeout_ns;          /* sent as a Go duration */
    int64_t test_timeout_ns;     /* sent as a Go duration */
    int64_t queue_timeout_ns;    /* sent as a Go duration */
    const char *idempotency_key; /* the Idempotency-Key header */
};

/* Counts of a run (absent: present false, all zero). */
struct remote_counts {
    bool present;
    int64_t tests;
    int64_t passed;
    int64_t failed;
    int64_t skipped;
    int64_t errors;
    int64_t soft_failures;
    int64_t flaky;
};

struct remote_job {
    char *id;
    char *state;
    char *worker;
    int64_t attempts; /* -1: absent */
};

/* A run object. Strings are NULL when absent. */
struct remote_run {
    char *id; /* the id as text ("42"); never NULL once decoded */
    char *suite;
    char *ns;
    char *pool;
    char *state;  /* queued, running, finished, cancelled, timed_out */
    char *result; /* passed, failed, error; NULL before the run ended */
    char *reason;
    char *trigger;
    char *initiated_by;
    char *reference;
    char *environment;
    char *run_filter;
    char *skip_filter;
    struct result_kv *params;
    size_t n_params;
    int64_t count;        /* -1: absent */
    int64_t max_attempts; /* -1: absent (the suite's) */
    int64_t timeout_ms;   /* -1: absent */
    int64_t test_timeout_ms;
    int64_t queue_timeout_ms;
    int64_t created_ns; /* Unix ns; 0: absent */
    int64_t started_ns;
    int64_t finished_ns;
    int64_t duration_ns; /* -1: absent */
    bool flaky;
    struct remote_counts counts;
    struct remote_job *jobs;
    size_t n_jobs;
    /* The run's setup, tests with every attempt, teardown and log, as
     * GET /api/v1/runs/{id} gives them; detail.name and detail.ns are the
     * suite's, detail.result and detail.reason the run's. has_detail is
     * false (detail empty) for list entries and POST answers. */
    bool has_detail;
    struct result_suite detail;
    /* List entries only: the object as received, compact JSON. */
    char *json;
};

/* Releases what run holds; the storage may be decoded into again. */
void remote_run_cleanup(struct remote_run *run);
/* True once state is finished, cancelled or timed_out. */
bool remote_run_has_ended(const struct remote_run *run);
/* True when the run finished and its result is passed. */
bool remote_run_has_passed(const struct remote_run *run);
/* The run's outcome as a result kind: PASSED, FAILED, ERROR (also for a
 * cancelled or timed-out run, or an unknown result once ended), NONE
 * before it ended. */
enum result_kind remote_run_result(const struct remote_run *run);

/* Starts a run. raw, if not NULL, receives the answer's body. */
MUST_CHECK int remote_start_run(struct remote *r,
                                const struct remote_run_request *req,
                                struct remote_run *out, struct buf *raw,
                                struct remote_error *err);
/* GET /api/v1/runs/{id}: the run with its detail. */
MUST_CHECK int remote_get_run(struct remote *r, const char *id,
                              struct remote_run *out, struct buf *raw,
                              struct remote_error *err);
/* POST /api/v1/runs/{id}/cancel; reason may be NULL. */
/* GET /api/v1/runs/{id}/load: a load run's report (JSON) into out. */
MUST_CHECK int remote_get_load_report(struct remote *r, const char *id,
                                      struct buf *out,
                                      struct remote_error *err);
MUST_CHECK int remote_cancel_run(struct remote *r, const char *id,
                                 const char *reason, struct remote_run *out,
                                 struct buf *raw, struct remote_error *err);

/* GET /api/v1/runs query; NULL and 0 leave a parameter out. */
struct remote_run_query {
    const char *suite;
    const char *ns;
    const char *state;
    const char *result;
    const char *since; /* RFC 3339 */
    const char *until;
    int64_t limit;
    const char *cursor;
};

struct remote_run_page {
    struct remote_run *runs;
    size_t n_runs;
    char *next_cursor; /* NULL on the last page */
};

/* One page of runs, newest first. */
MUST_CHECK int remote_list_runs(struct remote *r,
                                const struct remote_run_query *q,
                                struct remote_run_page *out, struct buf *raw,
                                struct remote_error *err);
void remote_run_page_cleanup(struct remote_run_page *p);

/* ---- Live events ------------------------------------------------------ */

enum remote_event_kind {
    REMOTE_EVENT_REPORT,  /* suite_start ... suite_end: see report */
    REMOTE_EVENT_RUN_END, /* the run ended: state, result, reason */
};

/* One event of GET /api/v1/runs/{id}/events. Strings NULL when absent. */
struct remote_event {
    enum remote_event_kind kind;
    /* REPORT: the event as the report writers take it; its pointers point
     * into the strings below. suite and ns are the event's, which may be
     * NULL: callers that know the run fill them in. */
    struct report_event report;
    char *job_id;
    int64_t seq; /* -1: absent */
    char *suite;
    char *ns;
    char *test;
    char *output;
    size_t output_len;
    char *reason;
    char *state; /* RUN_END */
    char *result;
};

/* Called for each event, in stream order; ev is borrowed for the call.
 * Returns 0 to go on; another value ends remote_follow_run with it. */
typedef int (*remote_event_fn)(void *arg, const struct remote_event *ev);

/* Follows GET /api/v1/runs/{id}/events: calls fn for each event until
 * run_end (fn sees it too), then returns 0. The stream has no overall
 * timeout, but when nothing at all (not even a keep-alive comment) arrives
 * for idle_timeout_ms it returns ST_TIMEOUT. A stream that closes before
 * run_end gives ST_UPSTREAM; a line over max_line ST_PROTOCOL; fn's
 * non-zero return is passed back. Events whose data is not valid JSON, or
 * of an unknown kind, are skipped: live events are best effort and the
 * stored run is the record. */
MUST_CHECK int remote_follow_run(struct remote *r, const char *id,
                                 remote_event_fn fn, void *arg,
                                 struct remote_error *err);

/* ---- Catalog ---------------------------------------------------------- */

struct remote_suite {
    char *name;
    char *ns;
    char *description;
    char *pool;   /* the pool whose workers announced this version */
    char **tests; /* test names */
    size_t n_tests;
    char **workers; /* ids of workers that have it */
    size_t n_workers;
    int64_t last_seen_ns; /* 0: absent */
};

struct remote_suite_list {
    struct remote_suite *suites;
    size_t n;
};

/* GET /api/v1/suites. */
MUST_CHECK int remote_list_suites(struct remote *r,
                                  struct remote_suite_list *out,
                                  struct buf *raw, struct remote_error *err);
void remote_suite_list_cleanup(struct remote_suite_list *l);

struct remote_worker {
    char *id;
    char *host;
    char *pool;
    char *version;
    struct result_kv *labels;
    size_t n_labels;
    int64_t slots;      /* -1: absent */
    int64_t free_slots; /* -1: absent */
    bool draining;
    int alive;            /* 1, 0, or -1 when absent */
    int64_t started_ns;   /* 0: absent */
    int64_t last_seen_ns; /* 0: absent */
    size_t n_suites;
    size_t n_running_runs;
};

struct remote_worker_list {
    struct remote_worker *workers;
    size_t n;
};

/* GET /api/v1/workers. */
MUST_CHECK int remote_list_workers(struct remote *r,
                                   struct remote_worker_list *out,
                                   struct buf *raw, struct remote_error *err);
void remote_worker_list_cleanup(struct remote_worker_list *l);

/* A schedule to create (POST /api/v1/schedules). run holds its run
 * fields (suite required; trigger and idempotency_key unused); NULL and 0
 * leave a field to the controller's default. */
struct remote_schedule_request {
    const char *name;
    const char *expression;
    const char *time_zone;
    const char *overlap_policy; /* "forbid" or "allow" */
    const char *catch_up;       /* "skip" or "one" */
    const char *end_at;         /* RFC 3339 */
    int64_t max_runs;
    bool paused;
    struct remote_run_request run;
};

struct remote_schedule_tick {
    int64_t tick_ns;
    char *outcome; /* "fired" or "skipped" */
    char *reason;  /* why skipped, or NULL */
    char *detail;
    char *run_id; /* the run fired, or NULL */
};

struct remote_schedule {
    char *name;
    char *suite;
    char *ns;
    char *pool;
    char *expression;
    char *time_zone;
    char *overlap_policy;
    char *catch_up;
    bool enabled;
    int64_t next_fire_ns; /* 0: none (paused or ended) */
    int64_t runs_fired;
    struct remote_schedule_tick *ticks; /* newest first */
    size_t n_ticks;
};

struct remote_schedule_list {
    struct remote_schedule *schedules;
    size_t n;
};

/* POST /api/v1/schedules. */
MUST_CHECK int remote_create_schedule(struct remote *r,
                                      const struct remote_schedule_request *req,
                                      struct remote_schedule *out,
                                      struct buf *raw,
                                      struct remote_error *err);
/* GET /api/v1/schedules/{name}. */
MUST_CHECK int remote_get_schedule(struct remote *r, const char *name,
                                   struct remote_schedule *out, struct buf *raw,
                                   struct remote_error *err);
/* PATCH /api/v1/schedules/{name} with enabled set to enabled (pause,
 * resume). */
MUST_CHECK int remote_enable_schedule(struct remote *r, const char *name,
                                      bool enabled, struct remote_schedule *out,
                                      struct buf *raw,
                                      struct remote_error *err);
/* DELETE /api/v1/schedules/{name}. */
MUST_CHECK int remote_delete_schedule(struct remote *r, const char *name,
                                      struct remote_error *err);
/* GET /api/v1/schedules. */
MUST_CHECK int remote_list_schedules(struct remote *r,
                                     struct remote_schedule_list *out,
                                     struct buf *raw, struct remote_error *err);
void remote_schedule_cleanup(struct remote_schedule *s);
void remote_schedule_list_cleanup(struct remote_schedule_list *l);

#endif
