/* subjects: the names Handoff uses on NATS, defined once (docs/nats.md).
 * Suite, namespace and pool names may contain '.', which NATS reads as a
 * token separator, so they are escaped in subjects ('.' -> "%2E") and in
 * consumer names (anything but [A-Za-z0-9] -> "_XX"). */
#ifndef HANDOFF_SUBJECTS_H
#define HANDOFF_SUBJECTS_H

#include <stddef.h>
#include <stdint.h>

#define SUBJECTS_JOBS_STREAM "HANDOFF_JOBS"
#define SUBJECTS_JOBS_ALL "handoff.jobs.>"
#define SUBJECTS_RESULTS_STREAM "HANDOFF_RESULTS"
#define SUBJECTS_RESULTS_ALL "handoff.results.>"
#define SUBJECTS_RESULTS_CONSUMER "ingest"
#define SUBJECTS_EVENTS_ALL "handoff.events.>"
#define SUBJECTS_WORKERS_ALL "handoff.workers.>"
#define SUBJECTS_CANCEL "handoff.control.cancel"
#define SUBJECTS_CANCELS_STREAM "HANDOFF_CANCELS"
#define SUBJECTS_RUN_DONE_ALL "handoff.runs.*.done"

/* Each writes into out (outlen bytes) and returns out. */
char *subjects_job(const char *pool, const char *ns, const char *suite,
                   char *out, size_t outlen);
char *subjects_job_consumer(const char *pool, const char *ns, const char *suite,
                            char *out, size_t outlen);
char *subjects_events(int64_t run_id, char *out, size_t outlen);
/* handoff.events.<run>.load: a load run's merged seconds, for its live
 * view. */
char *subjects_load_points(int64_t run_id, char *out, size_t outlen);
/* kind: "started" or "result". */
char *subjects_results(int64_t run_id, const char *kind, char *out,
                       size_t outlen);
/* kind: "hello", "heartbeat" or "bye". */
char *subjects_worker(const char *worker_id, const char *kind, char *out,
                      size_t outlen);
char *subjects_run_done(int64_t run_id, char *out, size_t outlen);
/* The Nats-Msg-Id of a message about a job: "<job id>@<created ms>" for the
 * job itself (kind NULL), "<job id>@<created ms>/<attempt>/<kind>" for what
 * a worker publishes about one attempt. The job's creation time makes the
 * id unique beyond one database: run ids start again at 1 in a new
 * database, and JetStream would otherwise drop a new job as a duplicate of
 * an old one published within its duplicate window. */
char *subjects_msg_id(const char *job_id, int64_t created_unix_ms, int attempt,
                      const char *kind, char *out, size_t outlen);

#endif
