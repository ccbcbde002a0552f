/* schedules: the schedule objects of the API (docs/api.md, "Schedules"):
 * the body of POST and PATCH /api/v1/schedules checked field by field, and
 * the rows in PostgreSQL. The firing of ticks is sched.c's. Each function
 * with a struct db runs on a database thread and answers like store.h's. */
#ifndef HANDOFF_SCHEDULES_H
#define HANDOFF_SCHEDULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runreq.h"
#include "status.h"
#include "store.h"

#define SCHEDULES_MAX_NAME 128

struct cron;
struct db;

/* A schedule as a request describes it. */
struct schedule_def {
    char *name;
    char *expression;
    char *time_zone; /* "UTC" when absent */
    bool enabled;
    bool overlap_allow; /* overlap_policy "allow"; else "forbid" */
    bool catch_up_one;  /* catch_up "one"; else "skip" */
    int max_runs;       /* 0: no limit */
    int64_t end_at_ns;  /* 0: none */
    struct run_request run;
};

/* Parses a schedule body into out (caller storage; schedules_def_cleanup)
 * and, when cron_out is not NULL, the parsed expression (caller frees it
 * with cron_free). The run fields are those of POST /api/v1/runs, checked
 * by runreq_parse; "trigger" is refused. Returns 0, or ST_INVALID with err
 * naming the field (out untouched). Any thread (reads zone files). */
MUST_CHECK int schedules_parse(const char *body, size_t len,
                               struct schedule_def *out, struct cron **cron_out,
                               struct runreq_error *err);
void schedules_def_cleanup(struct schedule_def *s);

/* The first tick of c strictly after after_ns, or -1 when there is none
 * or it falls after end_at_ns (0: no end). Ticks are whole milliseconds. */
int64_t schedules_next_tick(const struct cron *c, int64_t after_ns,
                            int64_t end_at_ns);

/* The latest tick of c at or before now_ns, given next_ns, the schedule's
 * stored next tick (due: next_ns <= now_ns). *several is true when that
 * is not next_ns: ticks were missed. Returns next_ns when it is not due. */
int64_t schedules_last_due(const struct cron *c, int64_t next_ns,
                           int64_t now_ns, bool *several);

/* The routes: POST (201 and Location), GET list, GET one, PATCH (merges
 * the patch over the stored fields and validates the whole), DELETE. name
 * is the path text (checked here). */
void schedules_create(struct db *d, const char *body, size_t len,
                      struct store_reply *out);
void schedules_list(struct db *d, struct store_reply *out);
void schedules_get(struct db *d, const char *name, struct store_reply *out);
void schedules_patch(struct db *d, const char *name, const char *body,
                     size_t len, struct store_reply *out);
void schedules_delete(struct db *d, const char *name, struct store_reply *out);

#endif
