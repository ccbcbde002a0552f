/* The scheduler's thread (see scheduler.h and docs/scheduling.md). It blocks
 * on PostgreSQL and Redis, which is why it is not on the loop. */
#include "scheduler.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bgthread.h"
#include "clock.h"
#include "cmetrics.h"
#include "cron.h"
#include "db.h"
#include "kv.h"
#include "log.h"
#include "mem.h"
#include "runreq.h"
#include "schedules.h"
#include "series.h"
#include "store.h"

#define SCHEDULER_MAX_DUE 100
#define SCHEDULER_MAX_LEASES 1024
#define SCHEDULER_KEY_MAX 256
/* A lease's token: the replica's id and the tick. */
#define SCHEDULER_TOKEN_MAX 128

/* The lease this replica holds for the active run of a singleton. */
struct lease {
    char key[SCHEDULER_KEY_MAX];
    char token[SCHEDULER_TOKEN_MAX];
    int64_t run_id;
};

struct scheduler {
    struct scheduler_config cfg;
    struct bgthread bg; /* its thread, connections and lock token */
    struct lease *leases;
    size_t n_leases;
    int64_t leases_renewed_mono_ns;
};

/* One due schedule as the poll read it. */
struct due {
    char id[24];
    char name[SCHEDULES_MAX_NAME + 1];
    char *expression;
    char *time_zone;
    char *next_text; /* next_fire_at as the database wrote it: the guard */
    int64_t next_ms;
    int64_t now_ms; /* the database's clock */
    bool forbid;
    bool catch_up_one;
    int64_t max_runs; /* 0: none */
    int64_t runs_fired;
    int64_t end_at_ms; /* 0: none */
    char *request;     /* the run request, JSON */
};

/* What one tick ends as. */
struct outcome {
    int64_t tick_ms;
    int64_t next_ms;    /* -1: none (ended) */
    bool last_run;      /* firing it reaches max_runs */
    const char *reason; /* why it is skipped; NULL: fired */
    char detail[640];
};

static void due_cleanup(struct due *d)
{
    free(d->expression);
    free(d->time_zone);
    free(d->next_text);
    free(d->request);
}

static void count_skip(struct scheduler *s, const char *reason)
{
    metrics_inc(s->cfg.metrics->schedule_skips, 1, (const char *[]){reason}, 1);
}

/* ---- Recording a tick ---------------------------------------------------- */

/* Moves the schedule past the tick if it still holds d's next tick: 0,
 * ST_CONFLICT when another replica moved it first, or a database status. */
static int advance(struct db *db, const struct due *d, const struct outcome *o,
                   bool fired)
{
    char next[24];
    const char *p[4] = {d->id, d->next_text, next, fired ? "1" : "0"};
    struct db_res *res = NULL;
    int rc;

    snprintf(next, sizeof(next), "%" PRId64, o->next_ms);
    if (o->next_ms < 0 || (fired && o->last_run)) {
        p[2] = NULL;
    }
    rc = db_exec(db,
                 "UPDATE schedules SET next_fire_at = timestamptz 'epoch' + "
                 "$3::bigint * interval '1 millisecond', runs_fired = "
                 "runs_fired + $4::int WHERE id = $1::bigint AND "
                 "next_fire_at = $2::timestamptz AND enabled",
                 4, p, &res);
    if (rc == ST_OK && db_res_affected(res) != 1) {
        rc = ST_CONFLICT;
    }
    db_res_free(res);
    return rc;
}

static int insert_tick(struct db *db, struct scheduler *s, const struct due *d,
                       const struct outcome *o, int64_t run_id)
{
    char tick[24];
    char run[24];
    const char *p[6] = {d->id,     tick,      o->reason ? "skipped" : "fired",
                        o->reason, o->detail, run_id > 0 ? run : NULL};

    snprintf(tick, sizeof(tick), "%" PRId64, o->tick_ms);
    snprintf(run, sizeof(run), "%" PRId64, run_id);
    if (!o->detail[0]) {
        p[4] = NULL;
    }
    return db_exec(
        db,
        "INSERT INTO schedule_ticks (schedule_id, tick_at, "
        "outcome, reason, detail, run_id, controller) VALUES "
        "($1::bigint, timestamptz 'epoch' + $2::bigint * "
        "interval '1 millisecond', $3, $4, $5, $6::bigint, $7)",
        7, (const char *[]){p[0], p[1], p[2], p[3], p[4], p[5], s->bg.id},
        NULL);
}

/* Records a skipped tick and advances, in one transaction. */
static void skip_tick(struct scheduler *s, const struct due *d,
                      const struct outcome *o)
{
    int rc = db_begin(s->bg.db);

    rc = rc ? rc : advance(s->bg.db, d, o, false);
    rc = rc ? rc : insert_tick(s->bg.db, s, d, o, 0);
    rc = rc ? rc : db_commit(s->bg.db);
    if (rc != ST_OK) {
        db_rollback(s->bg.db);
        return;
    }
    count_skip(s, o->reason);
    log_info("scheduler: %s: tick %" PRId64 " skipped (%s%s%s)", d->name,
             o->tick_ms, o->reason, o->detail[0] ? ": " : "", o->detail);
}

/* ---- Firing ------------------------------------------------------------ */

struct fire_tx {
    struct scheduler *s;
    const struct due *d;
    const struct outcome *o;
};

static int fire_in_transaction(struct db *db, int64_t run_id, void *arg)
{
    struct fire_tx *f = arg;
    char run[24];
    const char *p[2] = {run, f->d->id};
    int rc = advance(db, f->d, f->o, true);

    snprintf(run, sizeof(run), "%" PRId64, run_id);
    rc = rc ? rc : insert_tick(db, f->s, f->d, f->o, run_id);
    rc = rc ? rc
            : db_exec(db,
                      "UPDATE runs SET schedule_id = $2::bigint WHERE id = "
                      "$1::bigint",
                      2, p, NULL);
    return rc;
}

static void keep_lease(struct scheduler *s, const char *key, const char *token,
                       int64_t run_id)
{
    struct lease *l;

    if (s->n_leases >= SCHEDULER_MAX_LEASES) {
        return; /* it expires; the database check still holds */
    }
    s->leases = mem_reallocarray(s->leases, s->n_leases + 1, sizeof(*l));
    l = &s->leases[s->n_leases++];
    snprintf(l->key, sizeof(l->key), "%s", key);
    snprintf(l->token, sizeof(l->token), "%s", token);
    l->run_id = run_id;
}

/* Whether a run of the schedule is queued or running: 0 and *active, or a
 * database status. */
static int has_active_run(struct scheduler *s, const struct due *d,
                          bool *active, int64_t *run_id)
{
    const char *p[1] = {d->id};
    struct db_res *res = NULL;
    int rc = db_exec(s->bg.db,
                     "SELECT id FROM runs WHERE schedule_id = $1::bigint AND "
                     "state IN ('queued', 'running') LIMIT 1",
                     1, p, &res);

    if (rc == ST_OK) {
        *active = db_res_rows(res) > 0;
        if (!*active || db_res_int64(res, 0, 0, run_id) != ST_OK) {
            *run_id = 0;
        }
    }
    db_res_free(res);
    return rc;
}

/* For a singleton: 0 when no run of it is active and the lease is ours
 * (key and token filled); ST_CONFLICT when the tick was skipped (and
 * recorded) here; another status when it must be tried again. */
static int take_lease(struct scheduler *s, const struct due *d,
                      struct outcome *o, char *key, char *token)
{
    bool active = false;
    int64_t run_id = 0;
    int rc = has_active_run(s, d, &active, &run_id);

    if (rc != ST_OK) {
        return rc;
    }
    if (active) {
        o->reason = "overlap";
        snprintf(o->detail, sizeof(o->detail), "run %" PRId64 " is active",
                 run_id);
        skip_tick(s, d, o);
        return ST_CONFLICT;
    }
    snprintf(key, SCHEDULER_KEY_MAX, "handoff:sched:%s:lease", d->name);
    snprintf(token, SCHEDULER_TOKEN_MAX, "%s:%" PRId64, s->bg.id, o->tick_ms);
    rc = kv_lock(s->bg.kv, key, token, SCHEDULER_LEASE_TTL_MS);
    if (rc == ST_OK) {
        return ST_OK;
    }
    o->reason = rc == ST_CONFLICT ? "overlap" : "redis_down";
    snprintf(o->detail, sizeof(o->detail), "%s",
             rc == ST_CONFLICT ? "another replica holds the run's lease"
                               : "Redis did not answer");
    skip_tick(s, d, o);
    return ST_CONFLICT;
}

static void fired(struct scheduler *s, const struct due *d,
                  const struct outcome *o, const struct store_reply *r)
{
    struct cmetrics *m = s->cfg.metrics;
    double lag = (double)(clock_real_ns() / CLOCK_NS_PER_MS - o->tick_ms) / 1e3;

    metrics_inc(m->schedule_fires, 1, (const char *[]){d->name}, 1);
    metrics_observe(m->schedule_fire_lag, 0, NULL, lag < 0 ? 0 : lag);
    metrics_inc(m->runs_created, 3,
                (const char *[]){r->ns, r->suite, "schedule"}, 1);
    log_info("scheduler: %s: tick %" PRId64 " fired run %" PRId64
             " (lag %.3f s)",
             d->name, o->tick_ms, r->run_id, lag);
}

/* Creates the tick's run under the tick lock (taken by the caller).
 * Returns false when the tick was neither fired nor recorded (another
 * replica moved the schedule, or the database failed): the caller then
 * releases the lock so the tick can be tried again. */
static bool fire(struct scheduler *s, const struct due *d, struct outcome *o)
{
    struct run_request req;
    struct runreq_error err = {0};
    struct store_reply reply = {0};
    struct fire_tx f = {s, d, o};
    struct store_run_hook hook = {fire_in_transaction, &f, true};
    char key[SCHEDULER_KEY_MAX] = "";
    char token[SCHEDULER_TOKEN_MAX] = "";
    int rc = d->forbid ? take_lease(s, d, o, key, token) : ST_OK;
    bool done = true;

    if (rc != ST_OK) {
        return rc == ST_CONFLICT;
    }
    if (runreq_parse(d->request, strlen(d->request), true, &req, &err) !=
        ST_OK) {
        o->reason = "error";
        snprintf(o->detail, sizeof(o->detail), "%s", err.message);
        skip_tick(s, d, o);
        goto unlease;
    }
    store_create_run_ex(s->bg.db, s->cfg.bus, &req, NULL, &hook, &reply);
    runreq_cleanup(&req);
    if (reply.status == 201) {
        fired(s, d, o, &reply);
        if (key[0]) {
            keep_lease(s, key, token, reply.run_id);
        }
        store_reply_cleanup(&reply);
        return true;
    }
    done = false;
    if (reply.status >= 400 && reply.status < 500 && reply.status != 409) {
        /* The suite left the catalog, or its filters select nothing now:
         * the tick is recorded, not retried forever. */
        o->reason = "error";
        snprintf(o->detail, sizeof(o->detail), "%s", reply.error_message);
        skip_tick(s, d, o);
        done = true;
    }
    store_reply_cleanup(&reply);
unlease:
    if (key[0] && kv_unlock(s->bg.kv, key, token) == ST_UPSTREAM) {
        log_debug("scheduler: %s: lease left to expire", d->name);
    }
    return done;
}

/* ---- One due schedule -------------------------------------------------- */

static void handle_due(struct scheduler *s, const struct due *d)
{
    struct cron *c = NULL;
    struct outcome o = {0};
    char err[CRON_ERR_SIZE];
    char key[SCHEDULER_KEY_MAX];
    bool several = false;
    bool behind;
    int64_t second;
    int64_t next;
    int rc;

    if (cron_parse(d->expression, d->time_zone, &c, err, sizeof(err)) !=
        ST_OK) {
        o.tick_ms = d->next_ms;
        o.next_ms = -1;
        o.reason = "error";
        snprintf(o.detail, sizeof(o.detail), "%s", err);
        skip_tick(s, d, &o);
        return;
    }
    o.tick_ms = schedules_last_due(c, d->next_ms * CLOCK_NS_PER_MS,
                                   d->now_ms * CLOCK_NS_PER_MS, &several) /
                CLOCK_NS_PER_MS;
    second =
        several ? schedules_next_tick(c, d->next_ms * CLOCK_NS_PER_MS, 0) : -1;
    /* Behind: the controllers were away (the oldest due tick is past the
     * grace, or the one after it is overdue by more than the slack). A
     * slow poll, or a tick lock left by a replica that died, only makes
     * ticks late: they fire one by one, oldest first. */
    behind = d->now_ms - d->next_ms > SCHEDULER_GRACE_MS ||
             (second >= 0 &&
              d->now_ms - second / CLOCK_NS_PER_MS > SCHEDULER_SLACK_MS);
    if (!behind) {
        o.tick_ms = d->next_ms;
    }
    /* From the tick, not from now: @every keeps its cadence. */
    next = schedules_next_tick(c, o.tick_ms * CLOCK_NS_PER_MS,
                               d->end_at_ms * CLOCK_NS_PER_MS);
    o.next_ms = next < 0 ? -1 : next / CLOCK_NS_PER_MS;
    o.last_run = d->max_runs > 0 && d->runs_fired + 1 >= d->max_runs;
    cron_free(c);
    if (behind && !d->catch_up_one) {
        o.reason = "missed";
        snprintf(o.detail, sizeof(o.detail),
                 "the ticks from %" PRId64 " to %" PRId64 " (Unix ms) "
                 "passed while no controller could fire them (catch_up "
                 "skip)",
                 d->next_ms, o.tick_ms);
        skip_tick(s, d, &o);
        return;
    }
    snprintf(key, sizeof(key), "handoff:sched:%s:%" PRId64, d->name, o.tick_ms);
    rc = kv_lock(s->bg.kv, key, s->bg.id, SCHEDULER_LOCK_TTL_MS);
    if (rc == ST_CONFLICT) {
        count_skip(s, "lock_held");
        return;
    }
    if (rc != ST_OK) {
        /* Nothing fires without the lock; the tick is recorded (once,
         * by whichever replica's transaction wins) and passed. */
        o.reason = "redis_down";
        snprintf(o.detail, sizeof(o.detail), "Redis did not answer");
        skip_tick(s, d, &o);
        return;
    }
    if (!fire(s, d, &o) && kv_unlock(s->bg.kv, key, s->bg.id) == ST_UPSTREAM) {
        log_debug("scheduler: %s: tick lock left to expire", d->name);
    }
}

/* ---- Polls ------------------------------------------------------------- */

static char *dup_col(const struct db_res *res, size_t row, size_t col)
{
    const char *v = db_res_get(res, row, col);

    return mem_strdup(v ? v : "");
}

static int64_t int_col(const struct db_res *res, size_t row, size_t col)
{
    int64_t v = 0;

    if (db_res_is_null(res, row, col) ||
        db_res_int64(res, row, col, &v) != ST_OK) {
        return 0;
    }
    return v;
}

static void read_due(const struct db_res *res, size_t i, struct due *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", db_res_get(res, i, 0));
    snprintf(d->name, sizeof(d->name), "%s", db_res_get(res, i, 1));
    d->expression = dup_col(res, i, 2);
    d->time_zone = dup_col(res, i, 3);
    d->next_text = dup_col(res, i, 4);
    d->next_ms = int_col(res, i, 5);
    d->now_ms = int_col(res, i, 6);
    d->forbid = strcmp(db_res_get(res, i, 7), "forbid") == 0;
    d->catch_up_one = strcmp(db_res_get(res, i, 8), "one") == 0;
    d->max_runs = int_col(res, i, 9);
    d->runs_fired = int_col(res, i, 10);
    d->end_at_ms = int_col(res, i, 11);
    d->request = dup_col(res, i, 12);
}

/* Fires (or skips) the due ticks, up to SCHEDULER_MAX_DUE; returns how
 * many it read, so the caller polls again at once when more may be due.
 * Ticks due at the same time come in an order of this replica's own (a
 * hash of name and replica id): replicas start on different schedules
 * instead of queueing on the same locks. */
static size_t poll_due(struct scheduler *s)
{
    struct db_res *res = NULL;
    struct due due[SCHEDULER_MAX_DUE];
    size_t n = 0;
    int rc = db_exec_ctx(
        s->bg.db, "scheduler: due ticks",
        "SELECT s.id, s.name, s.expression, s.time_zone, "
        "s.next_fire_at::text, (extract(epoch FROM s.next_fire_at) * "
        "1000)::bigint, (extract(epoch FROM now()) * 1000)::bigint, "
        "s.overlap_policy, s.catch_up, s.max_runs, s.runs_fired, "
        "(extract(epoch FROM s.end_at) * 1000)::bigint, "
        "handoff_schedule_run_request(s)::text FROM schedules s "
        "WHERE s.enabled AND s.next_fire_at <= now() "
        "ORDER BY s.next_fire_at, hashtext(s.name || $1) LIMIT 100",
        1, (const char *[]){s->bg.id}, &res);

    for (size_t i = 0; rc == ST_OK && i < db_res_rows(res); i++) {
        read_due(res, i, &due[n++]);
    }
    db_res_free(res);
    for (size_t i = 0; i < n; i++) {
        if (!bgthread_stopping(&s->bg)) {
            handle_due(s, &due[i]);
        }
        due_cleanup(&due[i]);
    }
    return n;
}

/* Renews the leases of runs still active and releases the others. */
static void renew_leases(struct scheduler *s)
{
    size_t kept = 0;

    for (size_t i = 0; i < s->n_leases; i++) {
        struct lease *l = &s->leases[i];
        char run[24];
        const char *p[1] = {run};
        struct db_res *res = NULL;
        bool active = true;
        int rc;

        snprintf(run, sizeof(run), "%" PRId64, l->run_id);
        if (db_exec(s->bg.db,
                    "SELECT state IN ('queued', 'running') FROM runs "
                    "WHERE id = $1::bigint",
                    1, p, &res) == ST_OK) {
            active = db_res_rows(res) == 1 &&
                     strcmp(db_res_get(res, 0, 0), "t") == 0;
        }
        db_res_free(res);
        rc = active
                 ? kv_renew(s->bg.kv, l->key, l->token, SCHEDULER_LEASE_TTL_MS)
                 : kv_unlock(s->bg.kv, l->key, l->token);
        /* Kept while the run is active and Redis may still hold it. */
        if (active && rc != ST_NOT_FOUND) {
            s->leases[kept++] = *l;
        }
    }
    s->n_leases = kept;
}

static void *scheduler_main(void *arg)
{
    struct scheduler *s = arg;

    while (!bgthread_stopping(&s->bg)) {
        bool more = false;

        if (bgthread_db_ready(&s->bg, s->cfg.schema_ready, s->cfg.arg)) {
            if (clock_mono_ns() - s->leases_renewed_mono_ns >= CLOCK_NS_PER_S) {
                renew_leases(s);
                s->leases_renewed_mono_ns = clock_mono_ns();
            }
            more = poll_due(s) == SCHEDULER_MAX_DUE;
            if (!bgthread_stopping(&s->bg)) {
                series_drive(s->bg.db, s->cfg.bus, s->cfg.metrics);
            }
        }
        if (!more) {
            bgthread_nap(&s->bg, s->cfg.poll_ms);
        }
    }
    return NULL;
}

/* ---- Start and stop ---------------------------------------------------- */

int scheduler_start(const struct scheduler_config *cfg, struct scheduler **out)
{
    struct scheduler *s = mem_zalloc(sizeof(*s));
    int rc;

    s->cfg = *cfg;
    if (s->cfg.poll_ms <= 0) {
        s->cfg.poll_ms = 200;
    }
    rc = bgthread_start(&s->bg, cfg->pg_dsn, cfg->redis_url,
                        cfg->redis_password, scheduler_main, s);
    if (rc != ST_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return ST_OK;
}

void scheduler_stop(struct scheduler *s)
{
    if (!s) {
        return;
    }
    bgthread_stop(&s->bg);
    free(s->leases);
    free(s);
}
