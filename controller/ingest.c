/* The ingest thread: batches of JobStarted/JobResult messages (and the
 * LoadSnapshots of distributed load runs: loadstore.c) into PostgreSQL,
 * one transaction per batch (see ingest.h).
 *
 * Per batch, in one transaction:
 *   - started: a job_attempts row (running), earlier running attempts of
 *     the job marked lost, the job and run marked running;
 *   - result: the job_attempts row completed (a repeat of a completed
 *     attempt changes nothing: that is the idempotency), its test rows
 *     COPY'd, the job marked done if no other attempt finished it first,
 *     and the run ended once all its jobs are done. A short first attempt
 *     sends no started (the worker's --started-delay): the attempt, job
 *     and run then take their start from the result.
 * Each of these is one statement for the whole batch, its rows passed as
 * array parameters, rather than several per message: PostgreSQL spends
 * far less per run that way. The end state is the one of applying
 * the messages one at a time (every started and every result's attempt
 * row in message order, then the jobs and runs the new results finish,
 * in message order); what that order decides when one job appears more
 * than once in a batch is worked out beforehand (plan_batch).
 * A message that cannot be decoded is logged and acked: redelivering it
 * would block the pipeline forever. */
#include "ingest.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "clock.h"
#include "db.h"
#include "loadstore.h"
#include "log.h"
#include "mem.h"
#include "cmetrics.h"
#include "result.h"
#include "subjects.h"
#include "wire.h"

#define INGEST_FETCH_WAIT_MS 500

struct ingest {
    struct ingest_config cfg;
    char *dsn;
    struct bus *bus;
    struct cmetrics *metrics;
    struct ingest_hooks hooks;
    pthread_t thread;
    atomic_bool stop;
    struct db *db;
    struct bus_pull *pull;
    int64_t unknown_warned_mono_ns; /* the last warning about unknown jobs */
};

/* How often at most the ingester warns about results of unknown jobs. */
#define INGEST_UNKNOWN_WARN_NS (60 * CLOCK_NS_PER_S)

/* One decoded message of a batch. */
struct imsg {
    struct bus_msg *msg;
    enum { IM_POISON, IM_STARTED, IM_RESULT, IM_LOAD } kind;
    struct wire_started started;
    struct wire_load_snapshot load; /* a load shard's second */
    struct result_suite result;
    struct wire_result_meta meta;
    /* From plan_batch, which only looks at the batch: */
    bool first_start;  /* started: the attempt's first started, no result of
                          it before: it may insert the attempt's row */
    bool lost_later;   /* started, first_start: a later started of the job
                          has a higher attempt, which makes this one lost */
    bool first_result; /* result: the attempt's first result in the batch */
    /* From the database, set again at each try of the batch: */
    bool is_new;        /* result: first time this attempt ended */
    bool is_load;       /* result, is_new: its job belongs to a load run */
    bool unknown;       /* result, not new: this database has no such job */
    bool finishes_job;  /* result: it marked its job done */
    int64_t job_run_id; /* finishes_job: the job's run */
};

/* A run that ended in the current batch, reported after commit. */
struct ended {
    int64_t run_id;
    char ns[160];
    char suite[160];
    char state[16];
    char result[16];
};

/* A started or result message's place in the batch, sorted by job: the
 * messages of one job, in batch order, are next to each other. */
struct by_job {
    const char *job_id;
    size_t i; /* index in the batch */
};

/* One batch of messages. */
struct batch {
    struct imsg *msgs;
    size_t n;
    struct by_job *jobs; /* n_jobs started and result messages */
    size_t n_jobs;
    struct ended *ended; /* runs that ended, as many as msgs at most */
    size_t n_ended;
};

static void imsg_cleanup(struct imsg *m)
{
    if (m->kind == IM_STARTED) {
        wire_started_cleanup(&m->started);
    } else if (m->kind == IM_RESULT) {
        result_suite_cleanup(&m->result);
        wire_result_meta_cleanup(&m->meta);
    } else if (m->kind == IM_LOAD) {
        wire_load_snapshot_cleanup(&m->load);
    }
    bus_msg_free(m->msg);
}

static void decode(struct imsg *m)
{
    const char *subj = bus_msg_subject(m->msg);
    size_t n = strlen(subj);

    m->kind = IM_POISON;
    if (n > 8 && strcmp(subj + n - 8, ".started") == 0) {
        if (wire_started_decode(bus_msg_data(m->msg), bus_msg_len(m->msg),
                                &m->started) == ST_OK) {
            m->kind = IM_STARTED;
        }
    } else if (n > 7 && strcmp(subj + n - 7, ".result") == 0) {
        if (wire_result_decode(bus_msg_data(m->msg), bus_msg_len(m->msg),
                               &m->result, &m->meta) == ST_OK) {
            m->kind = IM_RESULT;
        }
    } else if (n > 5 && strcmp(subj + n - 5, ".load") == 0) {
        if (wire_load_snapshot_decode(bus_msg_data(m->msg), bus_msg_len(m->msg),
                                      &m->load) == ST_OK) {
            m->kind = IM_LOAD;
        }
    }
    if (m->kind == IM_POISON) {
        log_error("ingest: dropping an unreadable message on %s (%zu bytes)",
                  subj, bus_msg_len(m->msg));
    }
}

/* ---- SQL ---------------------------------------------------------------- */

static void fmt_i64(char *out, size_t len, int64_t v)
{
    snprintf(out, len, "%" PRId64, v);
}

/* A Unix-nanosecond time as a timestamptz literal PostgreSQL reads, or
 * NULL for 0 (unknown). */
static const char *fmt_ts(char *out, int64_t unix_ns)
{
    if (unix_ns <= 0) {
        return NULL;
    }
    return clock_format_rfc3339(unix_ns, CLOCK_UTC, 1, out);
}

/* ---- Planning ----------------------------------------------------------- */

static const char *job_of(const struct imsg *m)
{
    return m->kind == IM_STARTED ? m->started.job_id : m->meta.job_id;
}

static int32_t attempt_of(const struct imsg *m)
{
    return m->kind == IM_STARTED ? m->started.job_attempt : m->meta.job_attempt;
}

static int by_job_cmp(const void *a, const void *b)
{
    const struct by_job *x = a;
    const struct by_job *y = b;
    int c = strcmp(x->job_id, y->job_id);

    if (c != 0) {
        return c;
    }
    return (x->i > y->i) - (x->i < y->i);
}

/* The end of the group of job entries that starts at from. */
static size_t job_group_end(const struct batch *b, size_t from)
{
    size_t end = from + 1;

    while (end < b->n_jobs &&
           strcmp(b->jobs[end].job_id, b->jobs[from].job_id) == 0) {
        end++;
    }
    return end;
}

/* Decides what the order of the batch decides, before any statement:
 * applied one message at a time, a started inserts its attempt's row only
 * if no started or result of that attempt came before it (the row exists
 * then), and the row it inserts ends up lost if a later started of the
 * job has a higher attempt, unless a result of the attempt completes it
 * (then the result's row wins either way). Only the first result of an
 * attempt can be new. Rows that exist before the batch are the database's
 * business: store_started marks them lost as each started would. */
static void plan_batch(struct batch *b)
{
    b->n_jobs = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct imsg *m = &b->msgs[i];

        m->first_start = false;
        m->lost_later = false;
        m->first_result = false;
        if (m->kind == IM_STARTED || m->kind == IM_RESULT) {
            b->jobs[b->n_jobs].job_id = job_of(m);
            b->jobs[b->n_jobs].i = i;
            b->n_jobs++;
        }
    }
    qsort(b->jobs, b->n_jobs, sizeof(*b->jobs), by_job_cmp);
    for (size_t g = 0, end; g < b->n_jobs; g = end) {
        end = job_group_end(b, g);
        for (size_t p = g; p < end; p++) {
            struct imsg *m = &b->msgs[b->jobs[p].i];
            int32_t attempt = attempt_of(m);
            bool started_before = false;
            bool result_before = false;

            for (size_t q = g; q < p; q++) {
                const struct imsg *o = &b->msgs[b->jobs[q].i];

                if (attempt_of(o) == attempt) {
                    started_before |= o->kind == IM_STARTED;
                    result_before |= o->kind == IM_RESULT;
                }
            }
            if (m->kind == IM_RESULT) {
                m->first_result = !result_before;
                continue;
            }
            m->first_start = !started_before && !result_before;
            for (size_t q = p + 1; q < end && m->first_start; q++) {
                const struct imsg *o = &b->msgs[b->jobs[q].i];

                m->lost_later |=
                    o->kind == IM_STARTED && attempt_of(o) > attempt;
            }
        }
    }
}

/* ---- Array parameters --------------------------------------------------- */

#define COLS_MAX 14

/* The columns of a set-based statement: one PostgreSQL array literal per
 * parameter ({"a",NULL,"b"}), a row at a time. The statement unnests them
 * side by side. */
struct cols {
    struct buf col[COLS_MAX];
    int n;
    size_t rows;
};

static void cols_init(struct cols *c, int n)
{
    assert(n <= COLS_MAX);
    c->n = n;
    c->rows = 0;
    for (int i = 0; i < n; i++) {
        buf_init(&c->col[i], 0);
        buf_addc(&c->col[i], '{');
    }
}

static void cols_cleanup(struct cols *c)
{
    for (int i = 0; i < c->n; i++) {
        buf_cleanup(&c->col[i]);
    }
}

/* The column i, ready for its next element. */
static struct buf *col(struct cols *c, int i)
{
    struct buf *b = &c->col[i];

    if (b->len > 1) {
        buf_addc(b, ',');
    }
    return b;
}

/* A text element, NULL for SQL NULL. Inside double quotes only '"' and
 * '\' need a backslash. */
static void col_text(struct cols *c, int i, const char *s)
{
    struct buf *b = col(c, i);

    if (!s) {
        buf_adds(b, "NULL");
        return;
    }
    buf_addc(b, '"');
    while (*s) {
        size_t k = strcspn(s, "\"\\");

        buf_add(b, s, k);
        s += k;
        if (*s) {
            buf_addc(b, '\\');
            buf_addc(b, *s++);
        }
    }
    buf_addc(b, '"');
}

static void col_i64(struct cols *c, int i, int64_t v)
{
    buf_addf(col(c, i), "%" PRId64, v);
}

static void col_bool(struct cols *c, int i, bool v)
{
    buf_addc(col(c, i), v ? 't' : 'f');
}

/* Milliseconds from nanoseconds, as the former double precision
 * parameters had them. */
static void col_ms(struct cols *c, int i, int64_t ns)
{
    buf_addf(col(c, i), "%.3f", (double)ns / 1e6);
}

static void col_ts(struct cols *c, int i, int64_t unix_ns)
{
    char ts[CLOCK_RFC3339_LEN];

    col_text(c, i, fmt_ts(ts, unix_ns));
}

/* Runs sql with the arrays as $1..$n, unless there are no rows, and frees
 * them. Returns 0 or db_exec's status; *res (NULL when nothing ran) as
 * db_exec's out. */
static int cols_exec(struct db *d, struct cols *c, const char *what,
                     const char *sql, struct db_res **res)
{
    const char *p[COLS_MAX];
    int rc = ST_OK;

    *res = NULL;
    if (c->rows > 0) {
        for (int i = 0; i < c->n; i++) {
            buf_addc(&c->col[i], '}');
            p[i] = buf_str(&c->col[i]);
        }
        rc = db_exec_ctx(d, what, sql, c->n, p, res);
    }
    cols_cleanup(c);
    return rc;
}

/* The message index in column col_ord of row of res: a statement returns
 * the ord it was given for the rows it changed. */
static int res_index(const struct batch *b, const struct db_res *res,
                     size_t row, size_t col_ord, size_t *out)
{
    int64_t v;

    if (db_res_int64(res, row, col_ord, &v) != ST_OK || v < 0 ||
        (uint64_t)v >= b->n) {
        log_error("ingest: a statement returned a bad message index");
        return ST_INTERNAL;
    }
    *out = (size_t)v;
    return ST_OK;
}

/* ---- Statements --------------------------------------------------------- */

/* Every started of the batch: the attempts' rows (lost at once when a
 * later started of the job supersedes them, see plan_batch), the job's
 * earlier running attempts that existed before the batch marked lost, the
 * jobs and runs marked running. A job this database does not know
 * (another installation on the same NATS, a purged run) is ignored. Per
 * job the last started gives the worker and start time and the highest
 * attempt counts; per run the first started gives started_at and the last
 * last_started_at, as one statement per message did. */
static int store_started(struct db *d, const struct batch *b)
{
    struct cols c;
    struct db_res *res = NULL;
    int rc;

    cols_init(&c, 8);
    for (size_t i = 0; i < b->n; i++) {
        const struct imsg *m = &b->msgs[i];

        if (m->kind != IM_STARTED) {
            continue;
        }
        col_text(&c, 0, m->started.job_id);
        col_i64(&c, 1, m->started.job_attempt);
        col_i64(&c, 2, m->started.run_id);
        col_text(&c, 3, m->started.worker_id);
        col_ts(&c, 4, m->started.started_unix_ns);
        col_bool(&c, 5, m->first_start);
        col_bool(&c, 6, m->lost_later);
        col_i64(&c, 7, (int64_t)i);
        c.rows++;
    }
    /* The sub-statements share one snapshot: "lost" does not see the rows
     * "ins" inserts, whose state plan_batch decided. */
    rc = cols_exec(
        d, &c, "ingest: started",
        "WITH s AS (SELECT * FROM unnest($1::text[], $2::int[], "
        "$3::bigint[], $4::text[], $5::timestamptz[], $6::bool[], "
        "$7::bool[], $8::int[]) AS t(job_id, job_attempt, run_id, "
        "worker_id, started_at, first_start, lost_later, ord)), "
        "ins AS (INSERT INTO job_attempts (job_id, job_attempt, run_id, "
        "worker_id, state, started_at, finished_at, result, reason) "
        "SELECT job_id, job_attempt, run_id, worker_id, "
        "CASE WHEN lost_later THEN 'lost' ELSE 'running' END, "
        "coalesce(started_at, now()), "
        "CASE WHEN lost_later THEN now() END, "
        "CASE WHEN lost_later THEN 'error' END, "
        "CASE WHEN lost_later THEN 'lost: worker ' || "
        "coalesce(worker_id, '?') || ' stopped answering; the job "
        "went to another worker' END "
        "FROM s WHERE first_start AND EXISTS (SELECT 1 FROM jobs "
        "WHERE id = s.job_id AND run_id = s.run_id) "
        "ON CONFLICT (job_id, job_attempt) DO NOTHING), "
        "lost AS (UPDATE job_attempts a SET state = 'lost', "
        "finished_at = now(), result = 'error', reason = 'lost: worker ' || "
        "coalesce(a.worker_id, '?') || ' stopped answering; the job "
        "went to another worker' "
        "FROM (SELECT job_id, max(job_attempt) AS job_attempt FROM s "
        "GROUP BY job_id) m WHERE a.job_id = m.job_id "
        "AND a.job_attempt < m.job_attempt AND a.state = 'running'), "
        "j AS (UPDATE jobs SET state = CASE WHEN jobs.state = 'done' "
        "THEN jobs.state ELSE 'running' END, "
        "attempts = greatest(jobs.attempts, l.max_attempt), "
        "worker_id = CASE WHEN jobs.state = 'done' THEN jobs.worker_id "
        "ELSE l.worker_id END, started_at = coalesce(l.started_at, now()), "
        /* A job a worker started was published: the controller's batched
         * mark (store_flush_published) skips rows locked here. */
        "published_at = coalesce(jobs.published_at, now()) "
        "FROM (SELECT DISTINCT ON (job_id) job_id, worker_id, started_at, "
        "max(job_attempt) OVER (PARTITION BY job_id) AS max_attempt "
        "FROM s ORDER BY job_id, ord DESC) l WHERE jobs.id = l.job_id) "
        "UPDATE runs SET state = 'running', started_at = "
        "coalesce(runs.started_at, f.first_at, now()), "
        "last_started_at = coalesce(f.last_at, now()) "
        "FROM (SELECT run_id, (array_agg(started_at ORDER BY ord))[1] "
        "AS first_at, (array_agg(started_at ORDER BY ord DESC))[1] "
        /* Only a started of a job of the run: a message naming a job
         * that does not exist (deleted, or not what a worker sends)
         * changes no run. */
        "AS last_at FROM s WHERE EXISTS (SELECT 1 FROM jobs "
        "WHERE id = s.job_id AND run_id = s.run_id) GROUP BY run_id) f "
        "WHERE runs.id = f.run_id AND runs.state IN ('queued', 'running')",
        &res);
    db_res_free(res);
    return rc;
}

static char *phase_json(const struct result_phase *p)
{
    json_t *o = json_pack("{s:b, s:s, s:f, s:s?, s:s}", "ran", p->ran, "result",
                          result_kind_str(p->result), "duration_ms",
                          (double)p->duration_ns / 1e6, "reason", p->reason,
                          "log", buf_str(&p->log));
    char *text = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    return text;
}

/* Marks the results not stored whose job this database does not have:
 * not a redelivery but a result of another installation's job (two
 * sharing a NATS account take each other's results: docs/nats.md) or of
 * a run deleted meanwhile. Costs a query only when some result was not
 * new. */
static int find_unknown(struct db *d, struct batch *b)
{
    struct cols c;
    struct db_res *res = NULL;
    int rc;

    cols_init(&c, 2);
    for (size_t i = 0; i < b->n; i++) {
        struct imsg *m = &b->msgs[i];

        m->unknown = false;
        if (m->kind == IM_RESULT && m->first_result && !m->is_new) {
            col_text(&c, 0, m->meta.job_id);
            col_i64(&c, 1, (int64_t)i);
            c.rows++;
        }
    }
    /* No row: cols_exec runs nothing. */
    rc = cols_exec(d, &c, "ingest: unknown jobs",
                   "SELECT t.ord FROM unnest($1::text[], $2::int[]) AS "
                   "t(job_id, ord) WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE "
                   "id = t.job_id)",
                   &res);
    for (size_t row = 0; rc == ST_OK && row < db_res_rows(res); row++) {
        size_t i;

        rc = res_index(b, res, row, 0, &i);
        if (rc == ST_OK) {
            b->msgs[i].unknown = true;
        }
    }
    db_res_free(res);
    return rc;
}

/* Completes the attempt of the first result of each attempt in the batch
 * and sets is_new (and is_load) on those it completed: a repeated result
 * (a redelivery after a lost ack) changes nothing. */
static int store_results(struct db *d, struct batch *b)
{
    struct cols c;
    struct db_res *res = NULL;
    int rc;

    cols_init(&c, 14);
    for (size_t i = 0; i < b->n; i++) {
        struct imsg *m = &b->msgs[i];
        const struct result_suite *s = &m->result;
        char *setup;
        char *teardown;

        m->is_new = false;
        m->is_load = false;
        if (m->kind != IM_RESULT || !m->first_result) {
            continue;
        }
        setup = phase_json(&s->setup);
        teardown = phase_json(&s->teardown);
        col_text(&c, 0, m->meta.job_id);
        col_i64(&c, 1, m->meta.job_attempt);
        col_i64(&c, 2, m->meta.run_id);
        col_text(&c, 3, m->meta.worker_id);
        col_text(&c, 4, result_kind_str(s->result));
        col_text(&c, 5, s->reason);
        col_bool(&c, 6, m->meta.cancelled);
        col_bool(&c, 7, m->meta.timed_out);
        col_ts(&c, 8, s->start_unix_ns);
        col_ms(&c, 9, s->duration_ns);
        col_text(&c, 10, setup);
        col_text(&c, 11, teardown);
        col_text(&c, 12, buf_str(&s->log));
        col_i64(&c, 13, (int64_t)i);
        c.rows++;
        free(setup);
        free(teardown);
    }
    /* RETURNING yields the attempts that were not done yet. Whether the job
     * is a load run's spares loadstore_result a query for the others. */
    rc = cols_exec(
        d, &c, "ingest: results",
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::int[], "
        "$3::bigint[], $4::text[], $5::text[], $6::text[], $7::bool[], "
        "$8::bool[], $9::timestamptz[], $10::double precision[], "
        "$11::jsonb[], $12::jsonb[], $13::text[], $14::int[]) "
        "AS t(job_id, job_attempt, run_id, worker_id, result, reason, "
        "cancelled, timed_out, started_at, duration_ms, setup, teardown, "
        "log, ord)), "
        "up AS (INSERT INTO job_attempts AS a (job_id, job_attempt, run_id, "
        "worker_id, state, result, reason, cancelled, timed_out, "
        "started_at, finished_at, duration_ms, setup, teardown, log) "
        "SELECT job_id, job_attempt, run_id, worker_id, 'done', result, "
        "reason, cancelled, timed_out, started_at, now(), duration_ms, "
        "setup, teardown, log FROM r "
        "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = r.job_id) "
        "ON CONFLICT (job_id, job_attempt) DO UPDATE SET "
        "state = 'done', result = EXCLUDED.result, "
        "reason = EXCLUDED.reason, cancelled = EXCLUDED.cancelled, "
        "timed_out = EXCLUDED.timed_out, "
        "worker_id = EXCLUDED.worker_id, "
        "started_at = coalesce(a.started_at, EXCLUDED.started_at), "
        "finished_at = EXCLUDED.finished_at, "
        "duration_ms = EXCLUDED.duration_ms, setup = EXCLUDED.setup, "
        "teardown = EXCLUDED.teardown, log = EXCLUDED.log "
        "WHERE a.state <> 'done' RETURNING a.job_id, a.job_attempt) "
        "SELECT r.ord, EXISTS (SELECT 1 FROM jobs j JOIN load_runs l "
        "ON l.run_id = j.run_id WHERE j.id = r.job_id) "
        "FROM up JOIN r USING (job_id, job_attempt)",
        &res);
    for (size_t row = 0; rc == ST_OK && row < db_res_rows(res); row++) {
        size_t i;

        rc = res_index(b, res, row, 0, &i);
        if (rc == ST_OK) {
            const char *load = db_res_get(res, row, 1);

            b->msgs[i].is_new = true;
            b->msgs[i].is_load = load && strcmp(load, "t") == 0;
        }
    }
    db_res_free(res);
    return rc ? rc : find_unknown(d, b);
}

static char *kv_json(const struct result_kv *kv, size_t n)
{
    json_t *o = json_object();
    char *text;

    for (size_t i = 0; i < n; i++) {
        json_object_set_new(o, kv[i].key, json_string(kv[i].value));
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static char *spans_json(const struct result_attempt *a)
{
    json_t *arr = json_array();
    char *text;

    for (size_t i = 0; i < a->n_spans; i++) {
        const struct result_span *sp = &a->spans[i];
        char ts[CLOCK_RFC3339_LEN];
        json_t *attrs = json_object();

        for (size_t k = 0; k < sp->n_attrs; k++) {
            json_object_set_new(attrs, sp->attrs[k].key,
                                json_string(sp->attrs[k].value));
        }
        json_array_append_new(
            arr,
            json_pack("{s:s, s:s, s:f, s:o}", "name", sp->name, "started_at",
                      clock_format_rfc3339(sp->start_unix_ns, CLOCK_UTC, 0, ts),
                      "duration_ms", (double)sp->duration_ns / 1e6, "attrs",
                      attrs));
    }
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

/* Whether a test attempt of a new result of the batch set values or
 * spans. */
static bool batch_has_extras(const struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct imsg *m = &b->msgs[i];

        for (size_t t = 0;
             m->kind == IM_RESULT && m->is_new && t < m->result.n_tests; t++) {
            const struct result_test *test = &m->result.tests[t];

            for (size_t k = 0; k < test->n_attempts; k++) {
                if (test->attempts[k].n_values || test->attempts[k].n_spans) {
                    return true;
                }
            }
        }
    }
    return false;
}

/* COPYs the test rows of every new result of the batch. A batch where no
 * test set values or spans leaves those columns to their defaults ('{}',
 * '[]'): PostgreSQL then parses no JSON per row. */
static int copy_tests(struct db *d, const struct batch *b)
{
    bool any = false;
    bool extras;
    int rc;

    for (size_t i = 0; i < b->n; i++) {
        any = any || (b->msgs[i].kind == IM_RESULT && b->msgs[i].is_new &&
                      b->msgs[i].result.n_tests > 0);
    }
    if (!any) {
        return ST_OK;
    }
    extras = batch_has_extras(b);
#define TEST_ROW_COLS                                                          \
    "run_id, job_id, job_attempt, seq, name, attempt, result, soft_failure, "  \
    "started_at, duration_ms, reason, log, log_dropped"
    rc = db_copy_begin(d, extras ? "COPY test_results (" TEST_ROW_COLS
                                   ", \"values\", spans) FROM STDIN"
                                 : "COPY test_results (" TEST_ROW_COLS
                                   ") FROM STDIN");
#undef TEST_ROW_COLS
    for (size_t i = 0; i < b->n && rc == ST_OK; i++) {
        const struct imsg *m = &b->msgs[i];
        char run[24];
        char job_attempt[24];

        if (m->kind != IM_RESULT || !m->is_new) {
            continue;
        }
        fmt_i64(run, sizeof(run), m->meta.run_id);
        fmt_i64(job_attempt, sizeof(job_attempt), m->meta.job_attempt);
        for (size_t t = 0; t < m->result.n_tests && rc == ST_OK; t++) {
            const struct result_test *test = &m->result.tests[t];

            for (size_t k = 0; k < test->n_attempts && rc == ST_OK; k++) {
                const struct result_attempt *a = &test->attempts[k];
                char seq[24];
                char att[24];
                char dur[32];
                char dropped[24];
                char ts[CLOCK_RFC3339_LEN];
                /* Most tests set no values and no spans: no jansson. */
                char *values =
                    a->n_values ? kv_json(a->values, a->n_values) : NULL;
                char *spans = a->n_spans ? spans_json(a) : NULL;
                const char *f[15];

                fmt_i64(seq, sizeof(seq), (int64_t)t);
                fmt_i64(att, sizeof(att), a->attempt);
                snprintf(dur, sizeof(dur), "%.3f",
                         (double)a->duration_ns / 1e6);
                fmt_i64(dropped, sizeof(dropped), (int64_t)a->log_dropped);
                f[0] = run;
                f[1] = m->meta.job_id;
                f[2] = job_attempt;
                f[3] = seq;
                f[4] = test->name;
                f[5] = att;
                f[6] = result_kind_str(a->result);
                f[7] = a->soft_failure ? "t" : "f";
                f[8] = fmt_ts(ts, a->start_unix_ns);
                f[9] = dur;
                f[10] = a->reason;
                f[11] = buf_str(&a->log);
                f[12] = dropped;
                f[13] = values ? values : "{}";
                f[14] = spans ? spans : "[]";
                rc = db_copy_row(d, extras ? 15 : 13, f);
                free(values);
                free(spans);
            }
        }
    }
    if (rc == ST_OK) {
        rc = db_copy_end(d);
    }
    return rc;
}

/* Marks done the jobs of the new results among messages [lo, hi), the
 * first new result of a job winning, unless another attempt finished the
 * job before. Sets finishes_job and job_run_id. */
static int finish_jobs(struct db *d, struct batch *b, size_t lo, size_t hi)
{
    struct cols c;
    struct db_res *res = NULL;
    int rc;

    cols_init(&c, 6);
    for (size_t g = 0, end; g < b->n_jobs; g = end) {
        end = job_group_end(b, g);
        for (size_t k = g; k < end; k++) {
            size_t i = b->jobs[k].i;
            const struct imsg *m = &b->msgs[i];

            if (i >= lo && i < hi && m->kind == IM_RESULT && m->is_new) {
                col_text(&c, 0, m->meta.job_id);
                col_text(&c, 1, result_kind_str(m->result.result));
                col_i64(&c, 2, m->meta.job_attempt);
                col_text(&c, 3, m->meta.worker_id);
                col_i64(&c, 4, (int64_t)i);
                col_ts(&c, 5, m->result.start_unix_ns);
                c.rows++;
                break;
            }
        }
    }
    for (size_t i = lo; i < hi; i++) {
        b->msgs[i].finishes_job = false;
    }
    rc = cols_exec(d, &c, "ingest: jobs done",
                   "UPDATE jobs j SET state = 'done', result = f.result, "
                   "finished_at = now(), worker_id = f.worker_id, "
                   "attempts = greatest(j.attempts, f.job_attempt), "
                   "published_at = coalesce(j.published_at, now()), "
                   /* No JobStarted for a short first attempt (the
                    * worker's --started-delay): its start. */
                   "started_at = coalesce(j.started_at, f.started_at) "
                   "FROM unnest($1::text[], $2::text[], $3::int[], "
                   "$4::text[], $5::int[], $6::timestamptz[]) AS "
                   "f(job_id, result, job_attempt, worker_id, ord, "
                   "started_at) "
                   "WHERE j.id = f.job_id AND j.state <> 'done' "
                   "RETURNING f.ord, j.run_id",
                   &res);
    for (size_t row = 0; rc == ST_OK && row < db_res_rows(res); row++) {
        size_t i;

        rc = res_index(b, res, row, 0, &i);
        if (rc == ST_OK &&
            db_res_int64(res, row, 1, &b->msgs[i].job_run_id) != ST_OK) {
            log_error("ingest: job %s has no run", b->msgs[i].meta.job_id);
            rc = ST_INTERNAL;
        }
        if (rc == ST_OK) {
            b->msgs[i].finishes_job = true;
        }
    }
    db_res_free(res);
    return rc;
}

/* Whether the result at i, which finished its job, is the one the run it
 * names ends with if all the run's jobs are done once [lo, hi) finished
 * theirs. One statement per message checked that run after each job
 * finished, so the run ended with the first of its results after which
 * no job of it finished any more. (Its results are in general the ones
 * of its jobs, but one that names another run than its job's, not what a
 * worker sends, is counted as it was.) */
static bool ends_run(const struct batch *b, size_t lo, size_t hi, size_t i)
{
    int64_t run = b->msgs[i].meta.run_id;
    size_t last = lo; /* where the run's last job finished */

    for (size_t k = lo; k < hi; k++) {
        if (b->msgs[k].finishes_job && b->msgs[k].job_run_id == run) {
            last = k;
        }
    }
    if (i < last) {
        return false;
    }
    for (size_t k = last; k < i; k++) {
        if (b->msgs[k].finishes_job && b->msgs[k].meta.run_id == run) {
            return false;
        }
    }
    return true;
}

static const char *run_state_of(const struct imsg *m)
{
    return m->meta.cancelled   ? "cancelled"
           : m->meta.timed_out ? "timed_out"
                               : "finished";
}

/* Ends the runs whose jobs are all done once the results [lo, hi) finished
 * theirs, but not load runs: those end by their own rules (loadstore.c).
 * Adds them to b->ended in batch order. */
static int finish_runs(struct db *d, struct batch *b, size_t lo, size_t hi)
{
    struct cols c;
    struct db_res *res = NULL;
    int rc;

    cols_init(&c, 13);
    for (size_t i = lo; i < hi; i++) {
        const struct imsg *m = &b->msgs[i];
        struct result_counts n;

        if (!m->finishes_job || !ends_run(b, lo, hi, i)) {
            continue;
        }
        result_suite_counts(&m->result, &n);
        col_i64(&c, 0, m->meta.run_id);
        col_text(&c, 1, run_state_of(m));
        col_text(&c, 2, result_kind_str(m->result.result));
        col_text(&c, 3, m->result.reason);
        col_i64(&c, 4, (int64_t)n.tests);
        col_i64(&c, 5, (int64_t)n.passed);
        col_i64(&c, 6, (int64_t)n.failed);
        col_i64(&c, 7, (int64_t)n.skipped);
        col_i64(&c, 8, (int64_t)n.errors);
        col_i64(&c, 9, (int64_t)n.soft_failures);
        col_i64(&c, 10, (int64_t)n.flaky);
        col_i64(&c, 11, (int64_t)i);
        col_ts(&c, 12, m->result.start_unix_ns);
        c.rows++;
    }
    rc = cols_exec(
        d, &c, "ingest: runs done",
        "WITH e AS (UPDATE runs r SET state = f.state, result = f.result, "
        "reason = coalesce(f.reason, r.cancel_reason), "
        "finished_at = now(), "
        "started_at = coalesce(r.started_at, f.started_at, now()), "
        "tests_total = f.total, tests_passed = f.passed, "
        "tests_failed = f.failed, tests_skipped = f.skipped, "
        "tests_error = f.errors, soft_failures = f.soft_failures, "
        "tests_flaky = f.flaky, flaky = f.flaky > 0 "
        "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], "
        "$5::int[], $6::int[], $7::int[], $8::int[], $9::int[], $10::int[], "
        "$11::int[], $12::int[], $13::timestamptz[]) AS f(run_id, state, "
        "result, reason, total, passed, failed, skipped, errors, "
        "soft_failures, flaky, ord, started_at) "
        "WHERE r.id = f.run_id AND r.state IN ('queued', 'running') "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id "
        "AND j.state <> 'done') "
        "AND NOT EXISTS (SELECT 1 FROM load_runs l WHERE l.run_id = r.id) "
        "RETURNING f.ord, r.namespace, r.suite) "
        "SELECT ord, namespace, suite FROM e ORDER BY ord",
        &res);
    for (size_t row = 0; rc == ST_OK && row < db_res_rows(res); row++) {
        struct ended *out = &b->ended[b->n_ended];
        const struct imsg *m;
        size_t i;

        rc = res_index(b, res, row, 0, &i);
        if (rc != ST_OK) {
            break;
        }
        m = &b->msgs[i];
        out->run_id = m->meta.run_id;
        snprintf(out->ns, sizeof(out->ns), "%s", db_res_get(res, row, 1));
        snprintf(out->suite, sizeof(out->suite), "%s", db_res_get(res, row, 2));
        snprintf(out->state, sizeof(out->state), "%s", run_state_of(m));
        snprintf(out->result, sizeof(out->result), "%s",
                 result_kind_str(m->result.result));
        b->n_ended++;
    }
    db_res_free(res);
    return rc;
}

/* The jobs and runs the new results finish, then what the results of load
 * runs do (loadstore_result). Such a result goes on its own, after those
 * before it and before those after it: loadstore_result adds jobs to and
 * ends the run its message names, which one statement per message saw in
 * that order. Load runs have few results, so the batch stays in one piece
 * otherwise. */
static int finish_results(struct db *d, struct batch *b,
                          struct loadstore_fx *fx)
{
    size_t lo = 0;
    int rc = ST_OK;

    for (size_t i = 0; i <= b->n && rc == ST_OK; i++) {
        const struct imsg *m = i < b->n ? &b->msgs[i] : NULL;
        bool load = m && m->kind == IM_RESULT && m->is_new && m->is_load;

        if (m && !load) {
            continue;
        }
        rc = finish_jobs(d, b, lo, i);
        if (rc == ST_OK) {
            rc = finish_runs(d, b, lo, i);
        }
        if (rc == ST_OK && load) {
            rc = finish_jobs(d, b, i, i + 1);
        }
        if (rc == ST_OK && load) {
            rc = finish_runs(d, b, i, i + 1);
        }
        if (rc == ST_OK && load) {
            rc = loadstore_result(d, &m->result, &m->meta, fx);
        }
        lo = i + 1;
    }
    return rc;
}

/* Writes the batch in one transaction. Returns 0 or the failing status (the
 * transaction is rolled back). b->ended: the runs that ended. */
static int write_batch(struct ingest *in, struct batch *b,
                       struct loadstore_fx *fx)
{
    struct db *d = in->db;
    int rc = db_begin(d);

    b->n_ended = 0;
    loadstore_fx_cleanup(fx);
    loadstore_fx_init(fx);
    for (size_t i = 0; i < b->n && rc == ST_OK; i++) {
        if (b->msgs[i].kind == IM_LOAD) {
            rc = loadstore_snapshot(d, &b->msgs[i].load, fx);
        }
    }
    if (rc == ST_OK) {
        rc = store_started(d, b);
    }
    if (rc == ST_OK) {
        rc = store_results(d, b);
    }
    if (rc == ST_OK) {
        rc = copy_tests(d, b);
    }
    if (rc == ST_OK) {
        rc = finish_results(d, b, fx);
    }
    if (rc == ST_OK) {
        rc = loadstore_advance(d, fx);
    }
    if (rc == ST_OK) {
        rc = db_commit(d);
    } else {
        db_rollback(d);
    }
    if (rc != ST_OK) {
        b->n_ended = 0;
    }
    return rc;
}

/* ---- The thread ----------------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int ensure_pipeline(struct ingest *in)
{
    struct bus_consumer_config cc = {
        .stream = SUBJECTS_RESULTS_STREAM,
        .name = SUBJECTS_RESULTS_CONSUMER,
        .filter = SUBJECTS_RESULTS_ALL,
        .ack_wait_ns = in->cfg.ack_wait_ns,
        .max_ack_pending = 20000,
    };
    int rc;

    if (!in->db) {
        rc = db_connect(in->dsn, &in->db);
        if (rc != ST_OK) {
            return rc;
        }
    }
    if (!in->pull) {
        rc = bus_ensure_consumer(in->bus, &cc);
        if (rc == ST_OK) {
            rc = bus_pull_bind(in->bus, SUBJECTS_RESULTS_STREAM,
                               SUBJECTS_RESULTS_CONSUMER, &in->pull);
        }
        return rc;
    }
    return ST_OK;
}

/* A result whose job this database does not have: counted, and said in
 * the log at most once a minute. */
static void unknown_job(struct ingest *in, const struct imsg *m)
{
    int64_t now = clock_mono_ns();

    if (in->metrics) {
        metrics_inc(in->metrics->ingest_unknown, 0, NULL, 1);
    }
    if (in->unknown_warned_mono_ns == 0 ||
        now - in->unknown_warned_mono_ns >= INGEST_UNKNOWN_WARN_NS) {
        in->unknown_warned_mono_ns = now;
        log_warn("ingest: a result for job %s (run %" PRId64 ", worker %s), "
                 "which this database does not have, was dropped: its run "
                 "was deleted, or another Handoff installation shares this "
                 "NATS account and the two take each other's results; give "
                 "each installation its own account (docs/nats.md)",
                 m->meta.job_id, m->meta.run_id, m->meta.worker_id);
    }
}

static void count_kind(struct ingest *in, const char *kind)
{
    if (in->metrics) {
        metrics_inc(in->metrics->ingest_messages, 1, (const char *[]){kind}, 1);
    }
}

/* Tests run and flaky tests of one newly stored result. */
static void count_tests(struct ingest *in, const struct result_suite *s)
{
    static const enum result_kind kinds[] = {RESULT_PASSED, RESULT_FAILED,
                                             RESULT_SKIPPED, RESULT_ERROR};
    struct result_counts c;
    size_t by_kind[4] = {0, 0, 0, 0};

    if (!in->metrics) {
        return;
    }
    for (size_t i = 0; i < s->n_tests; i++) {
        enum result_kind k = result_test_result(&s->tests[i]);

        for (size_t j = 0; j < 4; j++) {
            if (k == kinds[j]) {
                by_kind[j]++;
            }
        }
    }
    for (size_t j = 0; j < 4; j++) {
        if (by_kind[j]) {
            metrics_inc(
                in->metrics->tests_run, 3,
                (const char *[]){s->ns, s->name, result_kind_str(kinds[j])},
                (double)by_kind[j]);
        }
    }
    result_suite_counts(s, &c);
    if (c.flaky) {
        metrics_inc(in->metrics->tests_flaky, 2,
                    (const char *[]){s->ns, s->name}, (double)c.flaky);
    }
}

static void *ingest_main(void *arg)
{
    struct ingest *in = arg;
    size_t cap = (size_t)in->cfg.batch;
    struct bus_msg **raw = mem_calloc(cap, sizeof(*raw));
    struct batch b = {
        .msgs = mem_calloc(cap, sizeof(*b.msgs)),
        .jobs = mem_calloc(cap, sizeof(*b.jobs)),
        .ended = mem_calloc(cap, sizeof(*b.ended)),
    };
    struct loadstore_fx fx;
    int64_t backoff = 100;
    bool logged = false;

    loadstore_fx_init(&fx);
    while (!atomic_load(&in->stop)) {
        size_t n = 0;
        int rc = ensure_pipeline(in);

        if (rc != ST_OK) {
            if (!logged) {
                log_warn("ingest: not ready yet (%s); retrying",
                         status_str(rc));
                logged = true;
            }
            sleep_ms(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        logged = false;
        backoff = 100;
        rc = bus_pull_fetch(in->pull, (int)cap, INGEST_FETCH_WAIT_MS, raw, &n);
        if (rc != ST_OK || n == 0) {
            if (rc != ST_TIMEOUT) {
                sleep_ms(200);
            }
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            memset(&b.msgs[i], 0, sizeof(b.msgs[i]));
            b.msgs[i].msg = raw[i];
            decode(&b.msgs[i]);
        }
        b.n = n;
        plan_batch(&b);
        /* Retry this batch until it commits: acking only after a commit is
         * what makes a database outage lose nothing. */
        for (;;) {
            int64_t t0 = clock_mono_ns();

            rc = write_batch(in, &b, &fx);
            if (rc == ST_OK) {
                if (in->metrics) {
                    metrics_observe(in->metrics->ingest_batch, 0, NULL,
                                    (double)(clock_mono_ns() - t0) / 1e9);
                }
                break;
            }
            if (in->metrics) {
                metrics_inc(in->metrics->ingest_errors, 1,
                            (const char *[]){status_str(rc)}, 1);
            }
            if (!logged) {
                log_warn("ingest: batch of %zu not stored (%s); retrying "
                         "until PostgreSQL takes it",
                         n, status_str(rc));
                logged = true;
            }
            if (atomic_load(&in->stop)) {
                break;
            }
            for (size_t i = 0; i < n; i++) {
                (void)bus_msg_in_progress(b.msgs[i].msg);
            }
            if (rc == ST_UPSTREAM) {
                db_reset(in->db);
            }
            sleep_ms(backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
        }
        if (rc == ST_OK) {
            int64_t now = clock_real_ns();

            if (logged) {
                log_info("ingest: storing results again");
                logged = false;
            }
            backoff = 100;
            for (size_t i = 0; i < n; i++) {
                const struct imsg *m = &b.msgs[i];

                (void)bus_msg_ack(m->msg);
                if (m->kind == IM_RESULT) {
                    int64_t end =
                        m->result.start_unix_ns + m->result.duration_ns;

                    count_kind(in, "result");
                    if (m->unknown) {
                        unknown_job(in, m);
                    } else if (!m->is_new && in->metrics) {
                        metrics_inc(in->metrics->ingest_duplicates, 0, NULL, 1);
                    } else {
                        count_tests(in, &m->result);
                    }
                    if (in->metrics && m->result.start_unix_ns > 0 &&
                        now > end) {
                        metrics_observe(in->metrics->ingest_lag, 0, NULL,
                                        (double)(now - end) / 1e9);
                    }
                } else if (m->kind == IM_STARTED) {
                    count_kind(in, "started");
                } else if (m->kind == IM_LOAD) {
                    count_kind(in, "load");
                } else {
                    count_kind(in, "unreadable");
                }
            }
            loadstore_after_commit(in->db, in->bus, &fx);
            for (size_t i = 0; i < fx.n_ended && in->hooks.run_ended; i++) {
                in->hooks.run_ended(in->hooks.arg, fx.ended[i].run_id,
                                    fx.ended[i].ns, fx.ended[i].suite,
                                    fx.ended[i].state, fx.ended[i].result);
            }
            for (size_t i = 0; i < b.n_ended && in->hooks.run_ended; i++) {
                const struct ended *e = &b.ended[i];

                in->hooks.run_ended(in->hooks.arg, e->run_id, e->ns, e->suite,
                                    e->state, e->result);
            }
        }
        for (size_t i = 0; i < n; i++) {
            imsg_cleanup(&b.msgs[i]);
        }
        b.n = 0;
    }
    loadstore_fx_cleanup(&fx);
    free(raw);
    free(b.msgs);
    free(b.jobs);
    free(b.ended);
    return NULL;
}

int ingest_start(const struct ingest_config *cfg, struct bus *bus,
                 struct cmetrics *m, const struct ingest_hooks *h,
                 struct ingest **out)
{
    struct ingest *in = mem_zalloc(sizeof(*in));

    in->cfg = *cfg;
    if (in->cfg.batch <= 0) {
        in->cfg.batch = 256;
    }
    if (in->cfg.ack_wait_ns <= 0) {
        in->cfg.ack_wait_ns = 60 * CLOCK_NS_PER_S;
    }
    in->dsn = mem_strdup(cfg->dsn);
    in->cfg.dsn = in->dsn;
    in->bus = bus;
    in->metrics = m;
    if (h) {
        in->hooks = *h;
    }
    if (pthread_create(&in->thread, NULL, ingest_main, in) != 0) {
        free(in->dsn);
        free(in);
        return ST_INTERNAL;
    }
    *out = in;
    return ST_OK;
}

void ingest_stop(struct ingest *in)
{
    if (!in) {
        return;
    }
    atomic_store(&in->stop, true);
    pthread_join(in->thread, NULL);
    bus_pull_free(in->pull);
    db_free(in->db);
    free(in->dsn);
    free(in);
}
