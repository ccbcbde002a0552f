/* The scheduler's thread (see scheduler.h and docs/scheduling.md). It blocks
 * on PostgreSQL and Redis, which is why it is not on the loop. Ticks are
 * handled in batches: one transaction claims many due schedules, takes their
 * locks, and records their runs and ticks with a few set-based statements;
 * a batch of ticks still to come is prepared ahead and committed at the
 * tick. */
#include "scheduler.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bgthread.h"
#include "buf.h"
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

#define SCHEDULER_MAX_LEASES 1024
#define SCHEDULER_KEY_MAX 256
/* A lease's token: the replica's id and the tick. */
#define SCHEDULER_TOKEN_MAX 128
/* A run created ahead whose transaction commits later than this after its
 * tick (the preparation overran) gets the commit's time as created_at.
 * Below it created_at is the tick: rewriting thousands of rows for a few
 * ms would make the commit itself much later. */
#define SCHEDULER_LATE_MS 100
/* The last few ms before a tick are waited for in the database. */
#define SCHEDULER_WAKE_MS 5

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
    int64_t series_mono_ns;
    int64_t db_offset_ms; /* the database's clock minus ours */
    uint64_t seed;        /* this replica's, for its walks' pivots */
};

/* One due schedule as a claim read it. */
struct due {
    int64_t id;
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

/* What becomes of a claimed tick. */
enum fate {
    FATE_FIRE,  /* a run is created */
    FATE_SKIP,  /* recorded as skipped, with reason */
    FATE_LEAVE, /* not handled by this transaction: another one will */
};

/* One claimed tick and what this replica made of it. */
struct tick {
    struct due d;
    enum fate fate;
    bool early;         /* its time had not come when it was claimed */
    int64_t tick_ms;    /* the tick handled */
    int64_t next_ms;    /* the schedule's next tick; -1: none (ended) */
    bool last_run;      /* firing it reaches max_runs */
    const char *reason; /* FATE_SKIP: why */
    char *detail;       /* and the detail, or NULL */
    bool locked;        /* this replica holds the tick's lock */
    bool leased;        /* and the singleton's lease */
};

/* The ticks of one transaction; runs[i] is the run of ticks[i] (status 0
 * while it is to be created). */
struct txn {
    struct tick *ticks;
    struct store_batch_run *runs;
    size_t n;
    size_t cap;
    bool ahead;           /* prepared before its ticks */
    size_t recorded;      /* ticks fired or skipped */
    size_t fired;         /* of which fired */
    int64_t commit_at_ms; /* database clock: the latest tick recorded */
    /* The claims walk schedules in the order (next_fire_at, id): after
     * the last one claimed, up to the end of the range being walked. */
    int64_t after_ms;
    int64_t after_id;
    int64_t upto_ms;
    int64_t upto_id;
};

/* ---- Small helpers ------------------------------------------------------ */

static int64_t clamp_ms(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int64_t now_ms(void)
{
    return clock_real_ns() / CLOCK_NS_PER_MS;
}

/* The database's clock now, as far as the last reading tells. */
static int64_t db_now_ms(const struct scheduler *s)
{
    return now_ms() + s->db_offset_ms;
}

static void count_skip(struct scheduler *s, const char *reason)
{
    metrics_inc(s->cfg.metrics->schedule_skips, 1, (const char *[]){reason}, 1);
}

static void set_skip(struct tick *t, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_skip(struct tick *t, const char *reason, const char *fmt, ...)
{
    va_list ap;

    t->fate = FATE_SKIP;
    t->reason = reason;
    free(t->detail);
    va_start(ap, fmt);
    t->detail = mem_vprintf(fmt, ap);
    va_end(ap);
}

static void lock_key(const struct tick *t, char *out, size_t len)
{
    snprintf(out, len, "handoff:sched:%s:%" PRId64, t->d.name, t->tick_ms);
}

static void lease_key(const struct tick *t, char *key, char *token,
                      const char *id)
{
    snprintf(key, SCHEDULER_KEY_MAX, "handoff:sched:%s:lease", t->d.name);
    snprintf(token, SCHEDULER_TOKEN_MAX, "%s:%" PRId64, id, t->tick_ms);
}

static void tick_cleanup(struct tick *t)
{
    free(t->d.expression);
    free(t->d.time_zone);
    free(t->d.next_text);
    free(t->d.request);
    free(t->detail);
}

static void txn_cleanup(struct txn *t)
{
    for (size_t i = 0; i < t->n; i++) {
        tick_cleanup(&t->ticks[i]);
        store_batch_run_cleanup(&t->runs[i]);
    }
    free(t->ticks);
    free(t->runs);
    memset(t, 0, sizeof(*t));
}

/* ---- Claiming ------------------------------------------------------------ */

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

/* Pairs read from two integer columns of a result, sorted by the first,
 * for lookups without a scan per tick. */
struct id_pair {
    int64_t id;
    int64_t val;
};

static int cmp_pair(const void *a, const void *b)
{
    const struct id_pair *x = a;
    const struct id_pair *y = b;

    return (x->id > y->id) - (x->id < y->id);
}

static struct id_pair *read_pairs(const struct db_res *res, size_t *n)
{
    struct id_pair *p = mem_calloc(db_res_rows(res) + 1, sizeof(*p));

    *n = db_res_rows(res);
    for (size_t i = 0; i < *n; i++) {
        p[i].id = int_col(res, i, 0);
        p[i].val = db_res_cols(res) > 1 ? int_col(res, i, 1) : 0;
    }
    qsort(p, *n, sizeof(*p), cmp_pair);
    return p;
}

static const struct id_pair *find_pair(const struct id_pair *p, size_t n,
                                       int64_t id)
{
    struct id_pair key = {id, 0};

    return bsearch(&key, p, n, sizeof(*p), cmp_pair);
}

static void read_due(const struct db_res *res, size_t i, struct due *d)
{
    memset(d, 0, sizeof(*d));
    d->id = int_col(res, i, 0);
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

/* Claims (FOR UPDATE) up to max schedules of the range t is walking
 * ((next_fire_at, id) after t->after_*, up to t->upto_*) that no other
 * transaction holds, appending them to t. A tick still to come is claimed
 * only if it can be prepared: a singleton whose run is still active waits
 * for its tick, when the check is made again. Other replicas' rows are
 * skipped, so each takes its own share (skipping costs: replicas start
 * their walks at different places). */
static int claim(struct scheduler *s, struct txn *t, int64_t max)
{
    struct db_res *res = NULL;
    char p[5][24];
    size_t rows;
    int rc;

    snprintf(p[0], sizeof(p[0]), "%" PRId64, t->after_ms);
    snprintf(p[1], sizeof(p[1]), "%" PRId64, t->after_id);
    snprintf(p[2], sizeof(p[2]), "%" PRId64, t->upto_ms);
    snprintf(p[3], sizeof(p[3]), "%" PRId64, t->upto_id);
    snprintf(p[4], sizeof(p[4]), "%" PRId64, max);
    rc = db_exec_ctx(
        s->bg.db, "scheduler: claim",
        "SELECT s.id, s.name, s.expression, s.time_zone, "
        "s.next_fire_at::text, (extract(epoch FROM s.next_fire_at) * "
        "1000)::bigint, (extract(epoch FROM statement_timestamp()) * "
        "1000)::bigint, s.overlap_policy, s.catch_up, s.max_runs, "
        "s.runs_fired, (extract(epoch FROM s.end_at) * 1000)::bigint, "
        "handoff_schedule_run_request(s)::text FROM schedules s "
        "WHERE s.enabled AND s.next_fire_at IS NOT NULL AND "
        "(s.next_fire_at, s.id) > (timestamptz 'epoch' + $1::bigint * "
        "interval '1 millisecond', $2::bigint) AND (s.next_fire_at, s.id) "
        "<= (timestamptz 'epoch' + $3::bigint * interval '1 millisecond', "
        "$4::bigint) AND (s.next_fire_at <= statement_timestamp() OR "
        "s.overlap_policy = 'allow' OR NOT EXISTS (SELECT 1 FROM runs r "
        "WHERE r.schedule_id = s.id AND r.state IN ('queued', 'running'))) "
        "ORDER BY s.next_fire_at, s.id LIMIT $5::int "
        "FOR UPDATE OF s SKIP LOCKED",
        5, (const char *[]){p[0], p[1], p[2], p[3], p[4]}, &res);
    rows = rc == ST_OK ? db_res_rows(res) : 0;
    if (t->n + rows > t->cap) {
        t->cap = t->n + rows;
        t->ticks = mem_reallocarray(t->ticks, t->cap, sizeof(*t->ticks));
        t->runs = mem_reallocarray(t->runs, t->cap, sizeof(*t->runs));
    }
    for (size_t i = 0; i < rows; i++) {
        struct tick *k = &t->ticks[t->n];

        memset(k, 0, sizeof(*k));
        memset(&t->runs[t->n], 0, sizeof(t->runs[t->n]));
        t->runs[t->n].status = 409; /* until it is to fire */
        read_due(res, i, &k->d);
        t->after_ms = k->d.next_ms;
        t->after_id = k->d.id;
        t->n++;
    }
    db_res_free(res);
    return rc;
}

/* ---- Deciding ------------------------------------------------------------ */

/* Which tick of t->d to handle, and the schedule's next one; missed ticks
 * follow the catch-up policy. c may be NULL (a bad expression). */
static void plan(struct tick *t, const struct cron *c, const char *cron_err)
{
    const struct due *d = &t->d;
    bool several = false;
    bool behind;
    int64_t second;
    int64_t next;

    t->fate = FATE_FIRE;
    t->early = d->next_ms > d->now_ms;
    t->tick_ms = d->next_ms;
    t->next_ms = -1;
    if (!c) {
        set_skip(t, "error", "%s", cron_err);
        return;
    }
    t->tick_ms = schedules_last_due(c, d->next_ms * CLOCK_NS_PER_MS,
                                    d->now_ms * CLOCK_NS_PER_MS, &several) /
                 CLOCK_NS_PER_MS;
    second =
        several ? schedules_next_tick(c, d->next_ms * CLOCK_NS_PER_MS, 0) : -1;
    /* Behind: the controllers were away (the oldest due tick is past the
     * grace, or the one after it is overdue by more than the slack). A
     * slow batch, or a tick lock left by a replica that died, only makes
     * ticks late: they fire one by one, oldest first. */
    behind = d->now_ms - d->next_ms > SCHEDULER_GRACE_MS ||
             (second >= 0 &&
              d->now_ms - second / CLOCK_NS_PER_MS > SCHEDULER_SLACK_MS);
    if (!behind) {
        t->tick_ms = d->next_ms;
    }
    /* From the tick, not from now: @every keeps its cadence. */
    next = schedules_next_tick(c, t->tick_ms * CLOCK_NS_PER_MS,
                               d->end_at_ms * CLOCK_NS_PER_MS);
    t->next_ms = next < 0 ? -1 : next / CLOCK_NS_PER_MS;
    t->last_run = d->max_runs > 0 && d->runs_fired + 1 >= d->max_runs;
    if (behind && !d->catch_up_one) {
        set_skip(t, "missed",
                 "the ticks from %" PRId64 " to %" PRId64 " (Unix ms) passed "
                 "while no controller could fire them (catch_up skip)",
                 d->next_ms, t->tick_ms);
    }
}

static void plan_all(struct txn *t, size_t from)
{
    struct cron *c = NULL;
    const struct due *parsed = NULL; /* the schedule c was parsed for */
    char err[CRON_ERR_SIZE] = "";

    for (size_t i = from; i < t->n; i++) {
        const struct due *d = &t->ticks[i].d;

        /* Schedules made alike share one parse. */
        if (!parsed || strcmp(parsed->expression, d->expression) != 0 ||
            strcmp(parsed->time_zone, d->time_zone) != 0) {
            cron_free(c);
            c = NULL;
            if (cron_parse(d->expression, d->time_zone, &c, err, sizeof(err)) !=
                ST_OK) {
                c = NULL;
            }
            parsed = d;
        }
        plan(&t->ticks[i], c, err);
    }
    cron_free(c);
}

/* The lock's expiry: SCHEDULER_LOCK_TTL_MS after the tick, or after now
 * for a tick already past. */
static int64_t lock_ttl_ms(const struct tick *t)
{
    int64_t ahead = t->tick_ms - t->d.now_ms;

    return SCHEDULER_LOCK_TTL_MS + (ahead > 0 ? ahead : 0);
}

/* Takes the tick locks of the ticks to fire. Taken elsewhere: left to the
 * replica that has it (lock_held). Redis not answering: a due tick is
 * skipped (nothing fires without the lock); one still to come is left for
 * its time. After one failure the rest of the batch is not tried. */
static void take_locks(struct scheduler *s, struct txn *t, size_t from)
{
    bool down = false;

    for (size_t i = from; i < t->n; i++) {
        struct tick *k = &t->ticks[i];
        char key[SCHEDULER_KEY_MAX];
        int rc = ST_UPSTREAM;

        if (k->fate != FATE_FIRE) {
            continue;
        }
        lock_key(k, key, sizeof(key));
        if (!down) {
            rc = kv_lock(s->bg.kv, key, s->bg.id, lock_ttl_ms(k));
        }
        if (rc == ST_OK) {
            k->locked = true;
        } else if (rc == ST_CONFLICT) {
            k->fate = FATE_LEAVE;
            count_skip(s, "lock_held");
        } else {
            down = true;
            if (k->early) {
                k->fate = FATE_LEAVE;
            } else {
                set_skip(k, "redis_down", "Redis did not answer");
            }
        }
    }
}

/* For singletons: skips the ticks whose schedule has a run queued or
 * running, and takes the lease of the others. A lease held by another
 * replica skips a due tick (overlap) and leaves one still to come for its
 * time, when the run that lease was for has most likely been released. */
static int check_singletons(struct scheduler *s, struct txn *t, size_t from)
{
    struct buf ids;
    struct db_res *res = NULL;
    struct id_pair *active = NULL;
    size_t n_active = 0;
    bool down = false;
    int rc;

    buf_init(&ids, 0);
    buf_addc(&ids, '{');
    for (size_t i = from; i < t->n; i++) {
        if (t->ticks[i].fate == FATE_FIRE && t->ticks[i].d.forbid) {
            buf_addf(&ids, "%s%" PRId64, ids.len > 1 ? "," : "",
                     t->ticks[i].d.id);
        }
    }
    buf_addc(&ids, '}');
    if (ids.len == 2) {
        buf_cleanup(&ids);
        return ST_OK;
    }
    rc = db_exec_ctx(s->bg.db, "scheduler: active runs",
                     "SELECT schedule_id, min(id) FROM runs WHERE "
                     "schedule_id = ANY($1::bigint[]) AND state IN "
                     "('queued', 'running') GROUP BY schedule_id",
                     1, (const char *[]){buf_str(&ids)}, &res);
    buf_cleanup(&ids);
    if (rc == ST_OK) {
        active = read_pairs(res, &n_active);
    }
    db_res_free(res);
    for (size_t i = from; rc == ST_OK && i < t->n; i++) {
        struct tick *k = &t->ticks[i];
        const struct id_pair *run;
        char key[SCHEDULER_KEY_MAX];
        char token[SCHEDULER_TOKEN_MAX];
        int lrc = ST_UPSTREAM;

        if (k->fate != FATE_FIRE || !k->d.forbid) {
            continue;
        }
        run = find_pair(active, n_active, k->d.id);
        if (run) {
            set_skip(k, "overlap", "run %" PRId64 " is active", run->val);
            continue;
        }
        lease_key(k, key, token, s->bg.id);
        if (!down) {
            lrc = kv_lock(s->bg.kv, key, token, SCHEDULER_LEASE_TTL_MS);
        }
        if (lrc == ST_OK) {
            k->leased = true;
            continue;
        }
        down = down || lrc != ST_CONFLICT;
        if (k->early) {
            char lkey[SCHEDULER_KEY_MAX];

            lock_key(k, lkey, sizeof(lkey));
            if (k->locked && kv_unlock(s->bg.kv, lkey, s->bg.id) == ST_OK) {
                k->locked = false;
            }
            k->fate = FATE_LEAVE;
        } else if (lrc == ST_CONFLICT) {
            set_skip(k, "overlap", "another replica holds the run's lease");
        } else {
            set_skip(k, "redis_down", "Redis did not answer");
        }
    }
    free(active);
    return rc;
}

/* Parses the run request of each tick to fire, then checks them against
 * the catalog: a request that no longer fits (the suite left the catalog,
 * its filters select nothing) skips its tick with the API's message. */
static int make_runs(struct scheduler *s, struct txn *t, size_t from)
{
    int rc;

    for (size_t i = from; i < t->n; i++) {
        struct tick *k = &t->ticks[i];
        struct store_batch_run *r = &t->runs[i];
        struct runreq_error err = {0};

        if (k->fate != FATE_FIRE) {
            continue;
        }
        if (runreq_parse(k->d.request, strlen(k->d.request), true, &r->req,
                         &err) != ST_OK) {
            set_skip(k, "error", "%s", err.message);
            continue;
        }
        r->status = 0;
        r->schedule_id = k->d.id;
        r->created_ms = k->tick_ms;
    }
    rc = store_batch_check(s->bg.db, t->runs + from, t->n - from);
    for (size_t i = from; rc == ST_OK && i < t->n; i++) {
        if (t->ticks[i].fate == FATE_FIRE && t->runs[i].status != 0) {
            set_skip(&t->ticks[i], "error", "%s",
                     t->runs[i].error ? t->runs[i].error : "refused");
        }
    }
    return rc;
}

/* ---- Recording ----------------------------------------------------------- */

static json_t *ms_or_null(int64_t ms)
{
    return ms < 0 ? json_null() : json_integer((json_int_t)ms);
}

/* Moves each schedule whose tick is recorded past it, if it still holds
 * the tick read (the database guard); a tick whose schedule moved
 * meanwhile is left, with no run and no record. */
static int advance(struct scheduler *s, struct txn *t, size_t from)
{
    json_t *rows = json_array();
    struct db_res *res = NULL;
    char *text;
    int rc;

    for (size_t i = from; i < t->n; i++) {
        const struct tick *k = &t->ticks[i];
        bool fire = k->fate == FATE_FIRE;

        if (k->fate == FATE_LEAVE) {
            continue;
        }
        json_array_append_new(
            rows, json_pack("{s:I, s:s, s:o, s:i}", "id", (json_int_t)k->d.id,
                            "prev", k->d.next_text, "next_ms",
                            ms_or_null(fire && k->last_run ? -1 : k->next_ms),
                            "fired", fire ? 1 : 0));
    }
    if (json_array_size(rows) == 0) {
        json_decref(rows);
        return ST_OK;
    }
    text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    rc = db_exec_ctx(s->bg.db, "scheduler: advance",
                     "UPDATE schedules s SET next_fire_at = timestamptz "
                     "'epoch' + x.next_ms * interval '1 millisecond', "
                     "runs_fired = s.runs_fired + x.fired FROM "
                     "json_to_recordset($1::json) AS x(id bigint, prev "
                     "text, next_ms bigint, fired int) WHERE s.id = x.id "
                     "AND s.next_fire_at = x.prev::timestamptz AND "
                     "s.enabled RETURNING s.id",
                     1, (const char *[]){text}, &res);
    free(text);
    if (rc == ST_OK) {
        size_t n_moved = 0;
        struct id_pair *moved = read_pairs(res, &n_moved);

        for (size_t i = from; i < t->n; i++) {
            struct tick *k = &t->ticks[i];

            if (k->fate != FATE_LEAVE && !find_pair(moved, n_moved, k->d.id)) {
                k->fate = FATE_LEAVE;
            }
        }
        free(moved);
    }
    db_res_free(res);
    return rc;
}

static int insert_ticks(struct scheduler *s, struct txn *t, size_t from)
{
    json_t *rows = json_array();
    char *text;
    int rc;

    for (size_t i = from; i < t->n; i++) {
        const struct tick *k = &t->ticks[i];
        bool fire = k->fate == FATE_FIRE;

        if (k->fate == FATE_LEAVE) {
            continue;
        }
        json_array_append_new(
            rows,
            json_pack("{s:I, s:I, s:s?, s:s?, s:o}", "id", (json_int_t)k->d.id,
                      "tick_ms", (json_int_t)k->tick_ms, "reason",
                      fire ? NULL : k->reason, "detail",
                      fire ? NULL : k->detail, "run_id",
                      fire ? json_integer((json_int_t)t->runs[i].run_id)
                           : json_null()));
    }
    if (json_array_size(rows) == 0) {
        json_decref(rows);
        return ST_OK;
    }
    text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    rc = db_exec_ctx(
        s->bg.db, "scheduler: ticks",
        "INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, "
        "detail, run_id, controller, recorded_at) SELECT x.id, timestamptz "
        "'epoch' + x.tick_ms * interval '1 millisecond', CASE WHEN x.reason "
        "IS NULL THEN 'fired' ELSE 'skipped' END, x.reason, x.detail, "
        "x.run_id, $2, greatest(statement_timestamp(), timestamptz 'epoch' "
        "+ x.tick_ms * interval '1 millisecond') FROM "
        "json_to_recordset($1::json) AS x(id bigint, tick_ms bigint, reason "
        "text, detail text, run_id bigint)",
        2, (const char *[]){text, s->bg.id}, NULL);
    free(text);
    return rc;
}

/* Decides the ticks claimed from index from on, and records them in the
 * open transaction: the schedules advanced, the runs of the fired ones,
 * every tick handled. Returns 0 or a database status. */
static int handle(struct scheduler *s, struct txn *t, size_t from)
{
    int rc;

    plan_all(t, from);
    take_locks(s, t, from);
    rc = check_singletons(s, t, from);
    rc = rc ? rc : make_runs(s, t, from);
    rc = rc ? rc : advance(s, t, from);
    for (size_t i = from; rc == ST_OK && i < t->n; i++) {
        struct tick *k = &t->ticks[i];

        if (k->fate != FATE_FIRE) {
            t->runs[i].status = 409;
        }
        if (k->fate == FATE_LEAVE && k->leased) {
            char key[SCHEDULER_KEY_MAX];
            char token[SCHEDULER_TOKEN_MAX];

            /* Not this transaction's tick after all: its run's lease
             * would only make the next tick an overlap. */
            lease_key(k, key, token, s->bg.id);
            k->leased = kv_unlock(s->bg.kv, key, token) == ST_UPSTREAM;
        }
        if (k->fate == FATE_LEAVE) {
            continue;
        }
        t->recorded++;
        t->fired += k->fate == FATE_FIRE;
        if (k->tick_ms > t->commit_at_ms) {
            t->commit_at_ms = k->tick_ms;
        }
    }
    rc = rc ? rc : store_batch_insert(s->bg.db, t->runs + from, t->n - from);
    rc = rc ? rc : insert_ticks(s, t, from);
    return rc;
}

/* ---- Committing ---------------------------------------------------------- */

/* Releases the locks and leases of t's ticks: its transaction did not
 * commit, so they may be handled again at once. */
static void release(struct scheduler *s, struct txn *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct tick *k = &t->ticks[i];
        char key[SCHEDULER_KEY_MAX];
        char token[SCHEDULER_TOKEN_MAX];

        if (k->leased) {
            lease_key(k, key, token, s->bg.id);
            if (kv_unlock(s->bg.kv, key, token) == ST_UPSTREAM) {
                break; /* the rest expire */
            }
        }
        lock_key(k, key, sizeof(key));
        if (k->locked && kv_unlock(s->bg.kv, key, s->bg.id) == ST_UPSTREAM) {
            break;
        }
    }
}

/* Waits until the database's clock reaches the latest tick of t (never
 * firing before a tick), checks that Redis still answers (nothing fires
 * while it does not), and commits. Returns 0, ST_CANCELLED when the thread
 * stops meanwhile, ST_UPSTREAM when Redis did not answer, or a database
 * status. */
static int commit(struct scheduler *s, struct txn *t)
{
    char at[24];
    struct db_res *res = NULL;
    int64_t db_now = 0;
    int rc = ST_OK;

    /* Close to the tick by our clock, then to the tick by the database's,
     * which decides (ours may run ahead of it). */
    for (int64_t left = t->commit_at_ms - SCHEDULER_WAKE_MS - db_now_ms(s);
         t->ahead && left > 0;
         left = t->commit_at_ms - SCHEDULER_WAKE_MS - db_now_ms(s)) {
        if (bgthread_stopping(&s->bg)) {
            return ST_CANCELLED;
        }
        bgthread_nap(&s->bg, left);
    }
    if (t->ahead) {
        snprintf(at, sizeof(at), "%" PRId64, t->commit_at_ms);
        rc = db_exec_ctx(
            s->bg.db, "scheduler: wait for the tick",
            "SELECT pg_sleep(greatest(0, $1::bigint - extract(epoch FROM "
            "clock_timestamp()) * 1000) / 1000), (extract(epoch FROM "
            "clock_timestamp()) * 1000)::bigint",
            1, (const char *[]){at}, &res);
        db_now = rc == ST_OK ? int_col(res, 0, 1) : 0;
        db_res_free(res);
    }
    if (rc == ST_OK && t->fired > 0 && kv_ping(s->bg.kv) != ST_OK) {
        return ST_UPSTREAM;
    }
    if (rc == ST_OK && t->ahead && t->fired > 0 &&
        db_now - t->commit_at_ms > SCHEDULER_LATE_MS) {
        /* Prepared ahead but committed late: created_at says when the
         * run came to exist, not when it was meant to. */
        struct buf ids;

        buf_init(&ids, 0);
        buf_addc(&ids, '{');
        for (size_t i = 0; i < t->n; i++) {
            if (t->ticks[i].fate == FATE_FIRE) {
                buf_addf(&ids, "%s%" PRId64, ids.len > 1 ? "," : "",
                         t->runs[i].run_id);
            }
        }
        buf_addc(&ids, '}');
        rc = db_exec_ctx(s->bg.db, "scheduler: late runs",
                         "UPDATE runs SET created_at = statement_timestamp() "
                         "WHERE id = ANY($1::bigint[]) AND created_at < "
                         "statement_timestamp()",
                         1, (const char *[]){buf_str(&ids)}, NULL);
        buf_cleanup(&ids);
    }
    rc = rc ? rc : db_commit(s->bg.db);
    return rc;
}

static void keep_lease(struct scheduler *s, const struct tick *t,
                       int64_t run_id)
{
    struct lease *l;
    char key[SCHEDULER_KEY_MAX];
    char token[SCHEDULER_TOKEN_MAX];

    if (s->n_leases >= SCHEDULER_MAX_LEASES) {
        return; /* it expires; the database check still holds */
    }
    lease_key(t, key, token, s->bg.id);
    s->leases = mem_reallocarray(s->leases, s->n_leases + 1, sizeof(*l));
    l = &s->leases[s->n_leases++];
    snprintf(l->key, sizeof(l->key), "%s", key);
    snprintf(l->token, sizeof(l->token), "%s", token);
    l->run_id = run_id;
}

/* After the commit: the jobs go out first, then metrics and logs. */
static void committed(struct scheduler *s, struct txn *t)
{
    struct cmetrics *m = s->cfg.metrics;
    int64_t now = now_ms();

    store_batch_publish(s->bg.db, s->cfg.bus, t->runs, t->n);
    for (size_t i = 0; i < t->n; i++) {
        const struct tick *k = &t->ticks[i];
        const struct store_batch_run *r = &t->runs[i];
        double lag = (double)(now - k->tick_ms) / 1e3;

        if (k->fate == FATE_SKIP) {
            count_skip(s, k->reason);
            log_info("scheduler: %s: tick %" PRId64 " skipped (%s%s%s)",
                     k->d.name, k->tick_ms, k->reason, k->detail ? ": " : "",
                     k->detail ? k->detail : "");
            continue;
        }
        if (k->fate != FATE_FIRE) {
            continue;
        }
        if (k->leased) {
            keep_lease(s, k, r->run_id);
        }
        metrics_inc(m->schedule_fires, 1, (const char *[]){k->d.name}, 1);
        metrics_observe(m->schedule_fire_lag, 0, NULL, lag < 0 ? 0 : lag);
        metrics_inc(m->runs_created, 3,
                    (const char *[]){r->ns, r->req.suite, "schedule"}, 1);
        log_info("scheduler: %s: tick %" PRId64 " fired run %" PRId64
                 " (lag %.3f s)",
                 k->d.name, k->tick_ms, r->run_id, lag);
    }
}

/* ---- Transactions ------------------------------------------------------- */

/* What one transaction did. */
enum outcome {
    OUTCOME_NONE,     /* recorded no tick */
    OUTCOME_RECORDED, /* recorded ticks */
    OUTCOME_FAILED,   /* a database or Redis failure: try again later */
};

/* Where an ahead transaction walks: the schedules of its ticks from
 * (first_ms, pivot_id) on, then from the start up to there. */
struct walk {
    int64_t from_ms;  /* ticks after this */
    int64_t first_ms; /* the first of them */
    int64_t to_ms;    /* and up to this */
    int64_t pivot_id;
};

/* Handles ticks in one transaction. A due one (w NULL: the ticks up to
 * to_ms) takes one batch and commits at once; one ahead of its ticks (w)
 * claims batch after batch until none is left or the next batch would
 * end after the tick, and commits at the latest tick it recorded. */
static enum outcome run_txn(struct scheduler *s, int64_t to_ms,
                            const struct walk *w)
{
    struct txn t;
    bool ahead = w != NULL;
    bool wrapped = !ahead;
    int64_t max = SCHEDULER_BATCH;
    int rc;

    memset(&t, 0, sizeof(t));
    t.ahead = ahead;
    t.after_ms = ahead ? w->first_ms : 0;
    t.after_id = ahead ? w->pivot_id : 0;
    t.upto_ms = ahead ? w->to_ms : to_ms;
    t.upto_id = INT64_MAX;
    rc = db_begin(s->bg.db);
    while (rc == ST_OK && !bgthread_stopping(&s->bg)) {
        size_t from = t.n;
        int64_t started = clock_mono_ns();
        int64_t us_each;
        int64_t left_ms;
        bool more;

        rc = claim(s, &t, max);
        if (rc != ST_OK) {
            break;
        }
        /* A short claim ends the range; an ahead walk then goes on from
         * the start of its ticks up to its pivot. */
        more = (int64_t)(t.n - from) == max;
        if (!more && !wrapped) {
            wrapped = true;
            more = true;
            t.after_ms = w->from_ms;
            t.after_id = INT64_MAX;
            t.upto_ms = w->first_ms;
            t.upto_id = w->pivot_id;
        }
        if (t.n == from) {
            if (more) {
                continue;
            }
            break;
        }
        rc = handle(s, &t, from);
        if (rc != ST_OK || !ahead || !more || t.n >= SCHEDULER_MAX_TXN) {
            break;
        }
        /* The next batch, as large as what is left before the tick
         * allows at the pace of this one. */
        us_each = (clock_mono_ns() - started) / 1000 / (int64_t)(t.n - from);
        left_ms = t.commit_at_ms - db_now_ms(s);
        max = us_each > 0 ? left_ms * 1000 / us_each : SCHEDULER_BATCH;
        if (t.recorded > 0 && max < SCHEDULER_BATCH / 10) {
            break;
        }
        max = clamp_ms(max, SCHEDULER_BATCH / 10, SCHEDULER_BATCH);
    }
    if (rc == ST_OK && t.recorded > 0) {
        rc = commit(s, &t);
    }
    if (rc != ST_OK || t.recorded == 0) {
        db_rollback(s->bg.db);
        release(s, &t);
    } else {
        log_debug("scheduler: %zu ticks (%zu fired) committed %" PRId64
                  " ms after the latest",
                  t.recorded, t.fired, db_now_ms(s) - t.commit_at_ms);
        committed(s, &t);
    }
    txn_cleanup(&t);
    return rc != ST_OK       ? OUTCOME_FAILED
           : t.recorded == 0 ? OUTCOME_NONE
                             : OUTCOME_RECORDED;
}

/* ---- Rounds ------------------------------------------------------------- */

/* The oldest tick of an enabled schedule and the first still to come
 * (-1: none), and the database's clock, all in Unix ms. */
static int next_ticks(struct scheduler *s, int64_t *first_ms, int64_t *next_ms,
                      int64_t *now)
{
    struct db_res *res = NULL;
    int rc = db_exec_ctx(
        s->bg.db, "scheduler: next tick",
        "SELECT (SELECT (extract(epoch FROM min(next_fire_at)) * "
        "1000)::bigint FROM schedules WHERE enabled AND next_fire_at IS NOT "
        "NULL), (SELECT (extract(epoch FROM min(next_fire_at)) * "
        "1000)::bigint FROM schedules WHERE enabled AND next_fire_at > "
        "now()), (extract(epoch FROM now()) * 1000)::bigint",
        0, NULL, &res);

    if (rc == ST_OK) {
        *first_ms = db_res_is_null(res, 0, 0) ? -1 : int_col(res, 0, 0);
        *next_ms = db_res_is_null(res, 0, 1) ? -1 : int_col(res, 0, 1);
        *now = int_col(res, 0, 2);
        s->db_offset_ms = *now - now_ms();
    }
    db_res_free(res);
    return rc;
}

/* How long before the tick at w->first_ms to start preparing it: longer
 * for more ticks at that time (their count is asked only when the tick is
 * near). Sets w->pivot_id, where this replica starts its walk: a place of
 * its own among the ids of those ticks' schedules. */
static int64_t lead_ms(struct scheduler *s, struct walk *w)
{
    struct db_res *res = NULL;
    char first[24];
    char to[24];
    int64_t n = 0;
    int64_t lo = 0;
    int64_t hi = 0;

    snprintf(first, sizeof(first), "%" PRId64, w->first_ms);
    snprintf(to, sizeof(to), "%" PRId64, w->to_ms);
    if (db_exec_ctx(s->bg.db, "scheduler: ticks to come",
                    "SELECT count(*), min(id), max(id) FROM schedules WHERE "
                    "enabled AND next_fire_at BETWEEN timestamptz 'epoch' + "
                    "$1::bigint * interval '1 millisecond' AND timestamptz "
                    "'epoch' + $2::bigint * interval '1 millisecond'",
                    2, (const char *[]){first, to}, &res) == ST_OK) {
        n = int_col(res, 0, 0);
        lo = int_col(res, 0, 1);
        hi = int_col(res, 0, 2);
    }
    db_res_free(res);
    w->pivot_id = lo - 1;
    if (hi > lo) {
        uint64_t r = (uint64_t)clock_real_ns() ^ s->seed;

        /* splitmix64: the pivot differs between replicas and ticks. */
        r += UINT64_C(0x9e3779b97f4a7c15);
        r = (r ^ (r >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        r = (r ^ (r >> 27)) * UINT64_C(0x94d049bb133111eb);
        r ^= r >> 31;
        w->pivot_id = lo - 1 + (int64_t)(r % (uint64_t)(hi - lo + 1));
    }
    return clamp_ms(SCHEDULER_AHEAD_MIN_MS + n * SCHEDULER_AHEAD_US / 1000,
                    SCHEDULER_AHEAD_MIN_MS, SCHEDULER_AHEAD_MAX_MS);
}

/* Handles what is due now, then prepares the ticks about to come. Returns
 * how long to sleep: 0 when there may be more to do at once. */
static int64_t schedule_round(struct scheduler *s)
{
    int64_t poll = s->cfg.poll_ms;
    int64_t first = -1;
    int64_t next = -1;
    int64_t now = 0;
    int64_t lead;
    struct walk w;
    enum outcome o;

    if (next_ticks(s, &first, &next, &now) != ST_OK) {
        return poll;
    }
    if (first >= 0 && first <= now) {
        o = run_txn(s, now, NULL);
        if (o == OUTCOME_RECORDED) {
            return 0;
        }
        if (o == OUTCOME_FAILED) {
            return poll;
        }
    }
    if (next < 0) {
        return poll;
    }
    now = db_now_ms(s);
    if (next - now > SCHEDULER_AHEAD_MAX_MS) {
        return clamp_ms(next - SCHEDULER_AHEAD_MAX_MS - now, 1, poll);
    }
    w.from_ms = now;
    w.first_ms = next;
    w.to_ms = next + SCHEDULER_GROUP_MS;
    lead = lead_ms(s, &w);
    if (next - now > lead) {
        return clamp_ms(next - lead - now, 1, poll);
    }
    o = run_txn(s, 0, &w);
    if (o == OUTCOME_RECORDED) {
        return 0;
    }
    /* Nothing to prepare (others have it, or it must wait for its tick):
     * look again at the tick. */
    return clamp_ms(next - db_now_ms(s), 1, poll);
}

/* Renews the leases of runs still active and releases the others. */
static void renew_leases(struct scheduler *s)
{
    struct buf ids;
    struct db_res *res = NULL;
    struct id_pair *active = NULL;
    size_t n_active = 0;
    size_t kept = 0;
    int rc;

    if (s->n_leases == 0) {
        return;
    }
    buf_init(&ids, 0);
    buf_addc(&ids, '{');
    for (size_t i = 0; i < s->n_leases; i++) {
        buf_addf(&ids, "%s%" PRId64, i ? "," : "", s->leases[i].run_id);
    }
    buf_addc(&ids, '}');
    rc = db_exec_ctx(s->bg.db, "scheduler: leases",
                     "SELECT id FROM runs WHERE id = ANY($1::bigint[]) AND "
                     "state IN ('queued', 'running')",
                     1, (const char *[]){buf_str(&ids)}, &res);
    buf_cleanup(&ids);
    if (rc == ST_OK) {
        active = read_pairs(res, &n_active);
    }
    db_res_free(res);
    for (size_t i = 0; i < s->n_leases; i++) {
        struct lease *l = &s->leases[i];
        /* Unknown (the query failed): kept. */
        bool on = rc != ST_OK || find_pair(active, n_active, l->run_id);
        int krc =
            on ? kv_renew(s->bg.kv, l->key, l->token, SCHEDULER_LEASE_TTL_MS)
               : kv_unlock(s->bg.kv, l->key, l->token);

        /* Kept while the run is active and Redis may still hold it. */
        if (on && krc != ST_NOT_FOUND) {
            s->leases[kept++] = *l;
        }
    }
    free(active);
    s->n_leases = kept;
}

static void *scheduler_main(void *arg)
{
    struct scheduler *s = arg;

    while (!bgthread_stopping(&s->bg)) {
        int64_t nap = s->cfg.poll_ms;

        if (bgthread_db_ready(&s->bg, s->cfg.schema_ready, s->cfg.arg)) {
            if (clock_mono_ns() - s->leases_renewed_mono_ns >= CLOCK_NS_PER_S) {
                renew_leases(s);
                s->leases_renewed_mono_ns = clock_mono_ns();
            }
            nap = schedule_round(s);
            if (!bgthread_stopping(&s->bg) &&
                clock_mono_ns() - s->series_mono_ns >=
                    s->cfg.poll_ms * CLOCK_NS_PER_MS) {
                series_drive(s->bg.db, s->cfg.bus, s->cfg.metrics);
                s->series_mono_ns = clock_mono_ns();
            }
        }
        if (nap > 0) {
            bgthread_nap(&s->bg, nap);
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
    s->seed = (uint64_t)clock_real_ns() * UINT64_C(0x2545f4914f6cdd1d) ^
              (uint64_t)getpid();
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
