/* httpc's private parts shared by httpc.c (the client) and httpc_metrics.c
 * (the per-name aggregates). */
#ifndef HANDOFF_HTTPC_INT_H
#define HANDOFF_HTTPC_INT_H

#include "httpc.h"

/* cfg with its zero fields replaced by the defaults. Returns 0, or
 * ST_INVALID for a value out of range. */
MUST_CHECK int httpc_config_resolve(const struct httpc_config *cfg,
                                    struct httpc_config *out);

/* Adds one finished request to the stats of the len bytes at name,
 * created on first use, or to "other" once m is full. Returns the name it
 * was recorded under, owned by m. */
const char *httpc_metrics_record(struct httpc_metrics *m, const char *name,
                                 size_t len, const struct httpc_response *r);

#endif
