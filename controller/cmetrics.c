/* The controller's metric families. */
#include "cmetrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,  0.1,    0.25,  0.5,  1,
                                        2.5,   5,      10,    30,   60};

/* Emits "namespace\tsuite\tvalue\n" lines as series. */
static void collect_suite_lines(const char *p, struct metrics_sink *sink)
{
    while (p && *p) {
        const char *tab1 = strchr(p, '\t');
        const char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        const char *nl = tab2 ? strchr(tab2 + 1, '\n') : NULL;
        char ns[160];
        char suite[160];

        if (!nl) {
            break;
        }
        snprintf(ns, sizeof(ns), "%.*s", (int)(tab1 - p), p);
        snprintf(suite, sizeof(suite), "%.*s", (int)(tab2 - tab1 - 1),
                 tab1 + 1);
        metrics_sink_put(sink, 2, (const char *[]){ns, suite},
                         strtod(tab2 + 1, NULL));
        p = nl + 1;
    }
}

static void collect_running(void *arg, struct metrics_sink *sink)
{
    collect_suite_lines(((struct cmetrics *)arg)->running, sink);
}

static void collect_flaky(void *arg, struct metrics_sink *sink)
{
    collect_suite_lines(((struct cmetrics *)arg)->flaky, sink);
}

/* Emits field `field` (1-based after the pool) of each pools line. */
static void collect_pool_field(struct cmetrics *cm, struct metrics_sink *sink,
                               int field)
{
    const char *p = cm->pools;

    while (p && *p) {
        const char *nl = strchr(p, '\n');
        const char *f = p;
        char pool[160];
        size_t n = strcspn(p, "\t\n");

        if (!nl) {
            break;
        }
        snprintf(pool, sizeof(pool), "%.*s", (int)n, p);
        for (int i = 0; i < field && f < nl; i++) {
            f = strchr(f, '\t');
            f = f ? f + 1 : nl;
        }
        if (f < nl) {
            metrics_sink_put(sink, 1, (const char *[]){pool}, strtod(f, NULL));
        }
        p = nl + 1;
    }
}

static void collect_queued(void *arg, struct metrics_sink *sink)
{
    collect_pool_field(arg, sink, 1);
}

static void collect_alive(void *arg, struct metrics_sink *sink)
{
    collect_pool_field(arg, sink, 2);
}

static void collect_slots(void *arg, struct metrics_sink *sink)
{
    collect_pool_field(arg, sink, 3);
}

static void collect_free(void *arg, struct metrics_sink *sink)
{
    collect_pool_field(arg, sink, 4);
}

void cmetrics_set_pools(struct cmetrics *cm, char *lines)
{
    free(cm->pools);
    cm->pools = lines;
}

void cmetrics_set_flaky(struct cmetrics *cm, char *lines)
{
    free(cm->flaky);
    cm->flaky = lines;
}

void cmetrics_set_running(struct cmetrics *cm, char *lines)
{
    free(cm->running);
    cm->running = lines;
}

int cmetrics_init(struct cmetrics *cm, const char *version)
{
    static const char *const run_labels[] = {"namespace", "suite_name",
                                             "trigger"};
    static const char *const result_labels[] = {"namespace", "suite_name",
                                                "result"};
    static const char *const finished_labels[] = {"namespace", "suite_name",
                                                  "result", "state"};
    static const char *const suite_labels[] = {"namespace", "suite_name"};
    static const char *const kind[] = {"kind"};
    static const char *const reason[] = {"reason"};
    static const char *const http_labels[] = {"method", "route", "status"};
    static const char *const route[] = {"route"};
    static const char *const ver[] = {"version"};
    static const char *const pool[] = {"pool"};
    static const char *const schedule[] = {"schedule"};
    struct metrics *m;
    int rc;

    memset(cm, 0, sizeof(*cm));
    m = cm->reg = metrics_new();
    rc = metrics_counter(m, "handoff_runs_created_total",
                         "Suite runs created, by how they were triggered.", 3,
                         run_labels, &cm->runs_created);
    rc = rc ? rc
            : metrics_counter(m, "handoff_testsuites_started_total",
                              "Suite runs, counted when they end, by result "
                              "(the original Handoff's name and meaning).",
                              3, result_labels, &cm->suites_started);
    rc = rc ? rc
            : metrics_counter(m, "handoff_runs_finished_total",
                              "Suite runs that ended, by result and final "
                              "state.",
                              4, finished_labels, &cm->runs_finished);
    rc = rc ? rc
            : metrics_counter(m, "handoff_tests_run_total",
                              "Tests run, by final result of each test.", 3,
                              result_labels, &cm->tests_run);
    rc = rc ? rc
            : metrics_counter(m, "handoff_tests_flaky_total",
                              "Tests that failed and then passed in a run.", 2,
                              suite_labels, &cm->tests_flaky);
    rc = rc ? rc
            : metrics_gauge_collect(m, "handoff_tests_flaky",
                                    "Tests flaky over the last runs of each "
                                    "suite (HANDOFF_FLAKY_WINDOW).",
                                    2, suite_labels, collect_flaky, cm);
    rc = rc ? rc
            : metrics_counter(m, "handoff_retention_deleted_total",
                              "Rows the retention janitor deleted, by kind "
                              "(runs, jobs, job_attempts, test_results).",
                              1, kind, &cm->retention_deleted);
    rc = rc ? rc
            : metrics_gauge_collect(m, "handoff_testsuites_running",
                                    "Suite runs running now.", 2, suite_labels,
                                    collect_running, cm);
    rc = rc ? rc
            : metrics_gauge_collect(m, "handoff_jobs_queue_depth",
                                    "Jobs published and waiting for a "
                                    "worker, by pool.",
                                    1, pool, collect_queued, cm);
    rc = rc ? rc
            : metrics_gauge_collect(m, "handoff_workers_alive",
                                    "Workers whose heartbeats arrive, by "
                                    "pool.",
                                    1, pool, collect_alive, cm);
    rc = rc ? rc
            : metrics_gauge_collect(m, "handoff_workers_slots",
                                    "Job slots of live workers, by pool.", 1,
                                    pool, collect_slots, cm);
    rc = rc ? rc
            : metrics_gauge_collect(m, "handoff_workers_free_slots",
                                    "Free job slots of live workers, by "
                                    "pool.",
                                    1, pool, collect_free, cm);
    rc = rc ? rc
            : metrics_gauge(m, "handoff_jobs_outbox",
                            "Jobs stored but not yet published to NATS.", 0,
                            NULL, &cm->jobs_outbox);
    rc = rc ? rc
            : metrics_counter(m, "handoff_ingest_messages_total",
                              "Result messages stored, by kind.", 1, kind,
                              &cm->ingest_messages);
    rc = rc ? rc
            : metrics_counter(m, "handoff_ingest_duplicates_total",
                              "Results of an attempt already stored "
                              "(redeliveries), ignored.",
                              0, NULL, &cm->ingest_duplicates);
    rc = rc ? rc
            : metrics_counter(m, "handoff_ingest_unknown_jobs_total",
                              "Results of jobs this database does not have "
                              "(a deleted run, or another installation on "
                              "the same NATS account), dropped.",
                              0, NULL, &cm->ingest_unknown);
    rc = rc ? rc
            : metrics_counter(m, "handoff_ingest_errors_total",
                              "Batches that could not be stored (retried).", 1,
                              reason, &cm->ingest_errors);
    rc = rc ? rc
            : metrics_histogram(m, "handoff_ingest_batch_seconds",
                                "Time to store one batch of results.", 0, NULL,
                                sizeof(latency_bounds) /
                                    sizeof(latency_bounds[0]),
                                latency_bounds, &cm->ingest_batch);
    rc = rc ? rc
            : metrics_histogram(
                  m, "handoff_ingest_lag_seconds",
                  "Time from a run's end on the worker to its "
                  "result stored.",
                  0, NULL, sizeof(latency_bounds) / sizeof(latency_bounds[0]),
                  latency_bounds, &cm->ingest_lag);
    rc = rc ? rc
            : metrics_counter(m, "handoff_schedule_fires_total",
                              "Schedule ticks that created a run, on this "
                              "replica.",
                              1, schedule, &cm->schedule_fires);
    rc = rc ? rc
            : metrics_counter(m, "handoff_schedule_skips_total",
                              "Schedule ticks this replica did not fire, by "
                              "reason (overlap, lock_held, redis_down, "
                              "missed, error).",
                              1, reason, &cm->schedule_skips);
    rc = rc ? rc
            : metrics_histogram(
                  m, "handoff_schedule_fire_lag_seconds",
                  "Time from a schedule's tick to its run created.", 0, NULL,
                  sizeof(latency_bounds) / sizeof(latency_bounds[0]),
                  latency_bounds, &cm->schedule_fire_lag);
    rc = rc ? rc
            : metrics_counter(m, "handoff_http_requests_total",
                              "HTTP requests answered.", 3, http_labels,
                              &cm->http_requests);
    rc = rc ? rc
            : metrics_histogram(m, "handoff_http_request_duration_seconds",
                                "Time to answer an HTTP request.", 1, route,
                                sizeof(latency_bounds) /
                                    sizeof(latency_bounds[0]),
                                latency_bounds, &cm->http_duration);
    rc =
        rc ? rc
           : metrics_gauge(m, "handoff_nats_connected",
                           "1 while NATS is connected.", 0, NULL, &cm->nats_up);
    rc = rc ? rc
            : metrics_gauge(m, "handoff_postgres_up",
                            "1 while PostgreSQL is reachable.", 0, NULL,
                            &cm->postgres_up);
    rc =
        rc ? rc
           : metrics_gauge(m, "handoff_redis_up", "1 while Redis is reachable.",
                           0, NULL, &cm->redis_up);
    rc = rc ? rc
            : metrics_gauge(m, "handoff_build_info",
                            "Always 1; the version in a label.", 1, ver,
                            &cm->build_info);
    if (rc == ST_OK) {
        metrics_set(cm->build_info, 1, (const char *[]){version}, 1);
    }
    return rc;
}

void cmetrics_cleanup(struct cmetrics *cm)
{
    metrics_free(cm->reg);
    free(cm->running);
    free(cm->pools);
    free(cm->flaky);
    memset(cm, 0, sizeof(*cm));
}

void cmetrics_run_ended(struct cmetrics *cm, const char *ns, const char *suite,
                        const char *state, const char *result)
{
    metrics_inc(cm->suites_started, 3, (const char *[]){ns, suite, result}, 1);
    metrics_inc(cm->runs_finished, 4,
                (const char *[]){ns, suite, result, state}, 1);
}
