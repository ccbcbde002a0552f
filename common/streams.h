/* streams: the JetStream streams Handoff keeps (docs/nats.md), defined
 * once. The controller and the workers each create or update them at
 * start-up (bus_ensure_stream), whichever comes first. */
#ifndef HANDOFF_STREAMS_H
#define HANDOFF_STREAMS_H

#include <stddef.h>

#include "bus.h"

/* How long the record of a cancel is kept: longer than any job can wait in
 * the queue (a run's queue_timeout is at most 168 h), so a worker that
 * takes a cancelled run's job, however late it started, knows. */
#define STREAMS_CANCEL_MAX_AGE_H (8 * 24)

/* The streams, in the order to create them; *n gets their number. */
const struct bus_stream_config *streams_all(size_t *n);

#endif
