/* runreq: the body of POST /api/v1/runs, parsed and checked field by field
 * (docs/api.md). Everything a client sends is validated here, on the loop,
 * before anything touches the database: an error names the field and what
 * is wrong with it. */
#ifndef HANDOFF_RUNREQ_H
#define HANDOFF_RUNREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"
#include "status.h"
#include "wire.h"

#define RUNREQ_MAX_PARAMS 100
#define RUNREQ_MAX_TEXT 256 /* initiated_by, reference, environment */
#define RUNREQ_MAX_REGEX 1024
#define RUNREQ_MAX_PARAM_KEY 256
#define RUNREQ_MAX_PARAM_VALUE 8192

struct run_request {
    char *suite;
    char *ns;          /* NULL: the suite's */
    char *run_filter;  /* NULL: all */
    char *skip_filter; /* NULL: none */
    struct result_kv *params;
    size_t n_params;
    char *initiated_by; /* never NULL after parsing */
    char *reference;
    char *environment;
    char *pool;               /* "default" when absent */
    char *trigger;            /* "api" when absent */
    int max_attempts;         /* 0: the suite's */
    int count;                /* 1 when absent */
    int64_t timeout_ms;       /* 0: the suite's */
    int64_t test_timeout_ms;  /* 0: the suite's */
    int64_t queue_timeout_ms; /* default 10 minutes */
    struct wire_load *load;   /* a load run (docs/load.md), or NULL */
};

/* The error of a refused request: an API error code ("malformed_json",
 * "unknown_field", "invalid_argument") and a message. */
struct runreq_error {
    const char *code;
    char message[512];
};

/* Fills err (code, printf message) and returns ST_INVALID: for parsers of
 * bodies that hold a run request (schedules, series). */
int runreq_fail(struct runreq_error *err, const char *code, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));

/* Parses body into out (caller storage; runreq_cleanup). allow_schedule
 * lets the trigger be "schedule" (the scheduler's own requests). Returns 0,
 * or ST_INVALID with err filled and out untouched. */
MUST_CHECK int runreq_parse(const char *body, size_t len, bool allow_schedule,
                            struct run_request *out, struct runreq_error *err);
/* runreq_parse, and with allow_load a "load" section (docs/load.md) is
 * accepted too: POST /api/v1/runs only, schedules and series refuse it as
 * an unknown field. */
MUST_CHECK int runreq_parse_ex(const char *body, size_t len,
                               bool allow_schedule, bool allow_load,
                               struct run_request *out,
                               struct runreq_error *err);
void runreq_cleanup(struct run_request *r);

#endif
