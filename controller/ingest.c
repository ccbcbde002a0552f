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
 *     and the run ended once all its jobs are done.
 * A message that cannot be decoded is logged and acked: redelivering it
 * would block the pipeline forever. */
#include "ingest.h"

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
};

/* One decoded message of a batch. */
struct imsg {
    struct bus_msg *msg;
    enum { IM_POISON, IM_STARTED, IM_RESULT, IM_LOAD } kind;
    struct wire_started started;
    struct wire_load_snapshot load; /* a load shard's second */
    struct result_suite result;
    struct wire_result_meta meta;
    bool is_new; /* result: first time this attempt ended */
};

/* A run that ended in the current batch, reported after commit. */
struct ended {
    int64_t run_id;
    char ns[160];
    char suite[160];
    char state[16];
    char result[16];
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

static int apply_started(struct db *d, const struct wire_started *s)
{
    char attempt[24];
    char run[24];
    char ts[CLOCK_RFC3339_LEN];
    const char *started = fmt_ts(ts, s->started_unix_ns);
    const char *p[5];
    int rc;

    fmt_i64(attempt, sizeof(attempt), s->job_attempt);
    fmt_i64(run, sizeof(run), s->run_id);
    p[0] = s->job_id;
    p[1] = attempt;
    p[2] = run;
    p[3] = s->worker_id;
    p[4] = started;
    /* A job this database does not know (another installation on the same
     * NATS, a purged run) is ignored. */
    rc = db_exec(d,
                 "INSERT INTO job_attempts (job_id, job_attempt, run_id, "
                 "worker_id, state, started_at) "
                 "SELECT $1, $2::int, $3::bigint, $4, 'running', "
                 "coalesce($5::timestamptz, now()) "
                 "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1) "
                 "ON CONFLICT (job_id, job_attempt) DO NOTHING",
                 5, p, NULL);
    if (rc) {
        return rc;
    }
    rc = db_exec(d,
                 "UPDATE job_attempts SET state = 'lost', finished_at = now(), "
                 "result = 'error', reason = 'lost: worker ' || "
                 "coalesce(worker_id, '?') || ' stopped answering; the job "
                 "went to another worker' "
                 "WHERE job_id = $1 AND job_attempt < $2::int "
                 "AND state = 'running'",
                 2, p, NULL);
    if (rc) {
        return rc;
    }
    rc = db_exec(d,
                 "UPDATE jobs SET state = CASE WHEN state = 'done' THEN state "
                 "ELSE 'running' END, attempts = greatest(attempts, $2::int), "
                 "worker_id = CASE WHEN state = 'done' THEN worker_id "
                 "ELSE $3 END, started_at = coalesce($4::timestamptz, now()) "
                 "WHERE id = $1",
                 4, (const char *[]){p[0], p[1], p[3], p[4]}, NULL);
    if (rc) {
        return rc;
    }
    return db_exec(d,
                   "UPDATE runs SET state = 'running', started_at = "
                   "coalesce(started_at, $2::timestamptz, now()), "
                   "last_started_at = coalesce($2::timestamptz, now()) "
                   "WHERE id = $1::bigint AND state IN ('queued', 'running')",
                   2, (const char *[]){run, started}, NULL);
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

static int upsert_attempt(struct db *d, struct imsg *m)
{
    const struct result_suite *s = &m->result;
    char attempt[24];
    char run[24];
    char dur[32];
    char ts[CLOCK_RFC3339_LEN];
    char *setup = phase_json(&s->setup);
    char *teardown = phase_json(&s->teardown);
    const char *p[13];
    struct db_res *res = NULL;
    int rc;

    fmt_i64(attempt, sizeof(attempt), m->meta.job_attempt);
    fmt_i64(run, sizeof(run), m->meta.run_id);
    snprintf(dur, sizeof(dur), "%.3f", (double)s->duration_ns / 1e6);
    p[0] = m->meta.job_id;
    p[1] = attempt;
    p[2] = run;
    p[3] = m->meta.worker_id;
    p[4] = result_kind_str(s->result);
    p[5] = s->reason;
    p[6] = m->meta.cancelled ? "true" : "false";
    p[7] = m->meta.timed_out ? "true" : "false";
    p[8] = fmt_ts(ts, s->start_unix_ns);
    p[9] = dur;
    p[10] = setup;
    p[11] = teardown;
    p[12] = buf_str(&s->log);
    /* RETURNING yields a row only when this attempt was not done yet: a
     * repeated result (a redelivery after a lost ack) changes nothing. */
    rc = db_exec(d,
                 "INSERT INTO job_attempts AS a (job_id, job_attempt, run_id, "
                 "worker_id, state, result, reason, cancelled, timed_out, "
                 "started_at, finished_at, duration_ms, setup, teardown, log) "
                 "SELECT $1, $2::int, $3::bigint, $4, 'done', $5, $6, "
                 "$7::bool, $8::bool, $9::timestamptz, now(), "
                 "$10::double precision, $11::jsonb, $12::jsonb, $13 "
                 "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1) "
                 "ON CONFLICT (job_id, job_attempt) DO UPDATE SET "
                 "state = 'done', result = EXCLUDED.result, "
                 "reason = EXCLUDED.reason, cancelled = EXCLUDED.cancelled, "
                 "timed_out = EXCLUDED.timed_out, "
                 "worker_id = EXCLUDED.worker_id, "
                 "started_at = coalesce(a.started_at, EXCLUDED.started_at), "
                 "finished_at = EXCLUDED.finished_at, "
                 "duration_ms = EXCLUDED.duration_ms, setup = EXCLUDED.setup, "
                 "teardown = EXCLUDED.teardown, log = EXCLUDED.log "
                 "WHERE a.state <> 'done' RETURNING 1",
                 13, p, &res);
    if (rc == ST_OK) {
        m->is_new = db_res_rows(res) == 1;
    }
    db_res_free(res);
    free(setup);
    free(teardown);
    return rc;
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

/* COPYs the test rows of every new result of the batch. */
static int copy_tests(struct db *d, struct imsg *msgs, size_t n)
{
    bool any = false;
    int rc;

    for (size_t i = 0; i < n; i++) {
        any = any || (msgs[i].kind == IM_RESULT && msgs[i].is_new &&
                      msgs[i].result.n_tests > 0);
    }
    if (!any) {
        return ST_OK;
    }
    rc = db_copy_begin(d, "COPY test_results (run_id, job_id, job_attempt, "
                          "seq, name, attempt, result, soft_failure, "
                          "started_at, duration_ms, reason, log, log_dropped, "
                          "\"values\", spans) FROM STDIN");
    for (size_t i = 0; i < n && rc == ST_OK; i++) {
        const struct imsg *m = &msgs[i];
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
                char *values = kv_json(a->values, a->n_values);
                char *spans = spans_json(a);
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
                f[13] = values;
                f[14] = spans;
                rc = db_copy_row(d, 15, f);
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

/* Marks the job done (first attempt to finish wins) and ends the run when
 * all its jobs are done. */
static int finish_job(struct db *d, const struct imsg *m, struct ended *out,
                      bool *ended)
{
    const struct result_suite *s = &m->result;
    struct result_counts c;
    char attempt[24];
    char run[24];
    char counts[7][24];
    const char *p[16];
    struct db_res *res = NULL;
    const char *state = m->meta.cancelled   ? "cancelled"
                        : m->meta.timed_out ? "timed_out"
                                            : "finished";
    int rc;

    *ended = false;
    fmt_i64(attempt, sizeof(attempt), m->meta.job_attempt);
    fmt_i64(run, sizeof(run), m->meta.run_id);
    p[0] = m->meta.job_id;
    p[1] = result_kind_str(s->result);
    p[2] = attempt;
    p[3] = m->meta.worker_id;
    rc = db_exec(d,
                 "UPDATE jobs SET state = 'done', result = $2, "
                 "finished_at = now(), worker_id = $4, "
                 "attempts = greatest(attempts, $3::int) "
                 "WHERE id = $1 AND state <> 'done' RETURNING run_id",
                 4, p, &res);
    if (rc != ST_OK || db_res_rows(res) == 0) {
        db_res_free(res);
        return rc;
    }
    db_res_free(res);
    res = NULL;
    result_suite_counts(s, &c);
    fmt_i64(counts[0], 24, (int64_t)c.tests);
    fmt_i64(counts[1], 24, (int64_t)c.passed);
    fmt_i64(counts[2], 24, (int64_t)c.failed);
    fmt_i64(counts[3], 24, (int64_t)c.skipped);
    fmt_i64(counts[4], 24, (int64_t)c.errors);
    fmt_i64(counts[5], 24, (int64_t)c.soft_failures);
    fmt_i64(counts[6], 24, (int64_t)c.flaky);
    p[0] = run;
    p[1] = state;
    p[2] = result_kind_str(s->result);
    p[3] = s->reason;
    for (int i = 0; i < 7; i++) {
        p[4 + i] = counts[i];
    }
    rc = db_exec(d,
                 "UPDATE runs r SET state = $2, result = $3, "
                 "reason = coalesce($4, r.cancel_reason), "
                 "finished_at = now(), "
                 "started_at = coalesce(r.started_at, now()), "
                 "tests_total = $5::int, tests_passed = $6::int, "
                 "tests_failed = $7::int, tests_skipped = $8::int, "
                 "tests_error = $9::int, soft_failures = $10::int, "
                 "tests_flaky = $11::int, flaky = $11::int > 0 "
                 "WHERE r.id = $1::bigint AND r.state IN ('queued', 'running') "
                 "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id "
                 "AND j.state <> 'done') "
                 /* a load run ends by its own rules: loadstore.c */
                 "AND NOT EXISTS (SELECT 1 FROM load_runs l WHERE l.run_id = "
                 "r.id) "
                 "RETURNING r.namespace, r.suite",
                 11, p, &res);
    if (rc == ST_OK && db_res_rows(res) == 1) {
        out->run_id = m->meta.run_id;
        snprintf(out->ns, sizeof(out->ns), "%s", db_res_get(res, 0, 0));
        snprintf(out->suite, sizeof(out->suite), "%s", db_res_get(res, 0, 1));
        snprintf(out->state, sizeof(out->state), "%s", state);
        snprintf(out->result, sizeof(out->result), "%s",
                 result_kind_str(s->result));
        *ended = true;
    }
    db_res_free(res);
    return rc;
}

/* Writes the batch in one transaction. Returns 0 or the failing status (the
 * transaction is rolled back). ended/n_ended: runs that ended. */
static int write_batch(struct ingest *in, struct imsg *msgs, size_t n,
                       struct ended *ended, size_t *n_ended,
                       struct loadstore_fx *fx)
{
    struct db *d = in->db;
    int rc = db_begin(d);

    *n_ended = 0;
    loadstore_fx_cleanup(fx);
    loadstore_fx_init(fx);
    for (size_t i = 0; i < n && rc == ST_OK; i++) {
        msgs[i].is_new = false;
        if (msgs[i].kind == IM_STARTED) {
            rc = apply_started(d, &msgs[i].started);
        } else if (msgs[i].kind == IM_RESULT) {
            rc = upsert_attempt(d, &msgs[i]);
        } else if (msgs[i].kind == IM_LOAD) {
            rc = loadstore_snapshot(d, &msgs[i].load, fx);
        }
    }
    if (rc == ST_OK) {
        rc = copy_tests(d, msgs, n);
    }
    for (size_t i = 0; i < n && rc == ST_OK; i++) {
        bool done = false;

        if (msgs[i].kind == IM_RESULT && msgs[i].is_new) {
            rc = finish_job(d, &msgs[i], &ended[*n_ended], &done);
            if (done) {
                (*n_ended)++;
            }
            if (rc == ST_OK) {
                rc = loadstore_result(d, &msgs[i].result, &msgs[i].meta, fx);
            }
        }
    }
    if (rc == ST_OK) {
        rc = loadstore_advance(d, fx);
    }
    if (rc == ST_OK) {
        rc = db_commit(d);
    } else {
        db_rollback(d);
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
    struct imsg *msgs = mem_calloc(cap, sizeof(*msgs));
    struct ended *ended = mem_calloc(cap, sizeof(*ended));
    struct loadstore_fx fx;
    int64_t backoff = 100;
    bool logged = false;

    loadstore_fx_init(&fx);
    while (!atomic_load(&in->stop)) {
        size_t n = 0;
        size_t n_ended = 0;
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
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg = raw[i];
            decode(&msgs[i]);
        }
        /* Retry this batch until it commits: acking only after a commit is
         * what makes a database outage lose nothing. */
        for (;;) {
            int64_t t0 = clock_mono_ns();

            rc = write_batch(in, msgs, n, ended, &n_ended, &fx);
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
                (void)bus_msg_in_progress(msgs[i].msg);
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
                (void)bus_msg_ack(msgs[i].msg);
                if (msgs[i].kind == IM_RESULT) {
                    int64_t end = msgs[i].result.start_unix_ns +
                                  msgs[i].result.duration_ns;

                    count_kind(in, "result");
                    if (!msgs[i].is_new && in->metrics) {
                        metrics_inc(in->metrics->ingest_duplicates, 0, NULL, 1);
                    } else {
                        count_tests(in, &msgs[i].result);
                    }
                    if (in->metrics && msgs[i].result.start_unix_ns > 0 &&
                        now > end) {
                        metrics_observe(in->metrics->ingest_lag, 0, NULL,
                                        (double)(now - end) / 1e9);
                    }
                } else if (msgs[i].kind == IM_STARTED) {
                    count_kind(in, "started");
                } else if (msgs[i].kind == IM_LOAD) {
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
            for (size_t i = 0; i < n_ended && in->hooks.run_ended; i++) {
                in->hooks.run_ended(in->hooks.arg, ended[i].run_id, ended[i].ns,
                                    ended[i].suite, ended[i].state,
                                    ended[i].result);
            }
        }
        for (size_t i = 0; i < n; i++) {
            imsg_cleanup(&msgs[i]);
        }
    }
    loadstore_fx_cleanup(&fx);
    free(raw);
    free(msgs);
    free(ended);
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
