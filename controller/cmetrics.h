/* cmetrics: the controller's metric families (docs/metrics.md), registered
 * once at start-up. The names Handoff users already query are kept:
 * handoff_testsuites_running, handoff_testsuites_started_total and
 * handoff_tests_run_total with labels namespace, suite_name, result. */
#ifndef HANDOFF_CMETRICS_H
#define HANDOFF_CMETRICS_H

#include "metrics.h"
#include "status.h"

struct cmetrics {
    struct metrics *reg;
    /* runs and tests */
    struct metrics_family *runs_created;   /* namespace, suite_name,
                                                 trigger */
    struct metrics_family *suites_started; /* namespace, suite_name,
                                                 result: counted when the
                                                 run ends, as the original
                                                 Handoff counts it */
    struct metrics_family *runs_finished;  /* namespace, suite_name,
                                                 result, state */
    struct metrics_family *tests_run;      /* namespace, suite_name,
                                                 result */
    struct metrics_family *tests_flaky;    /* namespace, suite_name */
    /* pipeline */
    struct metrics_family *jobs_queue_depth; /* gauge */
    struct metrics_family *jobs_outbox;      /* gauge */
    struct metrics_family *workers_alive;    /* gauge */
    struct metrics_family *ingest_messages;  /* kind */
    struct metrics_family *ingest_duplicates;
    struct metrics_family *ingest_unknown;
    struct metrics_family *ingest_errors; /* reason */
    struct metrics_family *ingest_batch;  /* histogram, seconds */
    struct metrics_family *ingest_lag;    /* histogram, seconds */
    /* schedules (docs/scheduling.md) */
    struct metrics_family *schedule_fires;    /* schedule */
    struct metrics_family *schedule_skips;    /* reason */
    struct metrics_family *schedule_fire_lag; /* histogram, seconds */
    /* retention (janitor.h) */
    struct metrics_family *retention_deleted; /* kind: runs, jobs,
                                                 job_attempts, test_results */
    /* HTTP */
    struct metrics_family *http_requests; /* method, route, status */
    struct metrics_family *http_duration; /* route; histogram */
    /* dependencies: 1 reachable, 0 not */
    struct metrics_family *nats_up;
    struct metrics_family *postgres_up;
    struct metrics_family *redis_up;
    struct metrics_family *build_info; /* version */
    /* Runs running per suite, "namespace\tsuite\tcount\n" lines, set by
     * cmetrics_set_running and read at render time. Loop thread. */
    char *running;
    /* "pool\tqueued\talive\tslots\tfree\n" lines, likewise. */
    char *pools;
    /* "namespace\tsuite\tflaky tests\n" lines, likewise. */
    char *flaky;
};

/* Registers every family in a new registry. Returns 0 or the status of the
 * first registration that failed (a bug: names are fixed). */
MUST_CHECK int cmetrics_init(struct cmetrics *cm, const char *version);
void cmetrics_cleanup(struct cmetrics *cm);

/* Replace the snapshots (lines as above; take ownership). Loop thread,
 * like rendering. */
void cmetrics_set_running(struct cmetrics *cm, char *lines);
void cmetrics_set_pools(struct cmetrics *cm, char *lines);
void cmetrics_set_flaky(struct cmetrics *cm, char *lines);

/* Counts a run that ended: suites started (by result), runs finished. */
void cmetrics_run_ended(struct cmetrics *cm, const char *ns, const char *suite,
                        const char *state, const char *result);

#endif
