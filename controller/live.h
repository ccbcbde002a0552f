/* live: the live view of runs, GET /api/v1/runs/{id}/events as Server-Sent
 * Events (docs/api.md). Workers publish each run's progress on core NATS
 * (handoff.events.<run>); every controller replica receives all of it and
 * hands each event to the streams open for that run on this replica. When a
 * run ends, whichever replica ended it publishes handoff.runs.<id>.done,
 * and every replica sends run_end and closes that run's streams. Live
 * events are best effort (core NATS); a periodic check of open runs in the
 * database makes sure no stream waits forever for a run_end it missed.
 * Loop thread, except live_publish_done (any thread). */
#ifndef HANDOFF_LIVE_H
#define HANDOFF_LIVE_H

#include <stdint.h>

#include "status.h"

struct bus;
struct dbpool;
struct event_base;
struct httpd_req;
struct live;

MUST_CHECK int live_new(struct event_base *base, struct bus *bus,
                        struct dbpool *pool, struct live **out);
/* Answers req with the event stream of run id_text (404 for no such run;
 * run_end at once for a run that has ended). */
void live_attach(struct live *l, struct httpd_req *req, const char *id_text);
/* Ends every stream and frees l. NULL does nothing. */
void live_free(struct live *l);

/* Tells every replica that run_id ended. Any thread. */
void live_publish_done(struct bus *bus, int64_t run_id, const char *state,
                       const char *result, const char *reason);

#endif
