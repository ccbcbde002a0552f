/* loadreq: the "load" section of POST /api/v1/runs (docs/api.md), parsed
 * and checked field by field into the setup job's LoadSpec. */
#ifndef HANDOFF_LOADREQ_H
#define HANDOFF_LOADREQ_H

#include <jansson.h>

#include "runreq.h"
#include "status.h"
#include "wire.h"

#define LOADREQ_MAX_SHARDS 1000

/* Parses v (the value of "load"; borrowed) into *out (owned by the caller,
 * wire_load_free), phase setup, shards the requested K (0: one per worker
 * of the pool). Returns 0, or ST_INVALID with err naming the field
 * ("load.thresholds[1]: ..."). */
MUST_CHECK int loadreq_parse(json_t *v, struct wire_load **out,
                             struct runreq_error *err);

#endif
