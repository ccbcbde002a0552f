/* series: soak series, one run request repeated N times, for a duration,
 * or until the first run that does not pass, with a pause between runs
 * (docs/api.md, Series). The API functions run on database threads; the
 * driver on the scheduler's thread of every replica, where a run of a
 * series is created only by the transaction that moves its runs_started
 * from the value the driver read, so each run starts once across
 * replicas and two runs of a series are never active together. */
#ifndef HANDOFF_SERIES_H
#define HANDOFF_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct bus;
struct cmetrics;
struct db;
struct store_reply;

/* Limits of a series' fields. */
#define SERIES_MAX_REPEAT 10000
/* until_failure without repeat or duration stops after this many runs. */
#define SERIES_DEFAULT_REPEAT 1000
#define SERIES_MAX_DURATION_MS (INT64_C(30) * 24 * 3600 * 1000)
#define SERIES_MAX_PAUSE_MS (INT64_C(24) * 3600 * 1000)

/* POST /api/v1/series: a run request (as POST /api/v1/runs) plus repeat,
 * duration, until_failure and pause. 201 with the series, or 400/404/409
 * with nothing stored. */
void series_create(struct db *d, const char *body, size_t len,
                   struct store_reply *out);

/* GET /api/v1/series (the newest 50) and /api/v1/series/{id} (id: the
 * path text, checked here). */
void series_list(struct db *d, struct store_reply *out);
void series_get(struct db *d, const char *id, struct store_reply *out);

/* POST /api/v1/series/{id}/cancel: no further run starts; a run in
 * progress goes on. 200 with the series, 404, or 409 when it has ended. */
void series_cancel(struct db *d, const char *id, struct store_reply *out);

/* One pass of the driver: ends the series that are done and starts the
 * next run of those whose pause is over. Scheduler thread. */
void series_drive(struct db *d, struct bus *bus, struct cmetrics *metrics);

#endif
