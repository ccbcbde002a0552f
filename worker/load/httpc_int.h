/* httpc's private parts shared by httpc.c (the client) and httpc_metrics.c
 * (the per-name aggregates). */
#ifndef HANDOFF_HTTPC_INT_H
#define HANDOFF_HTTPC_INT_H

#include "httpc.h"

/* cfg with its zero fields replaced by the defaults. Returns 0, or
 * ST_INVALID for a value out of range. */
MUST_CHECK int httpc_config_resolve(const struct httpc_config *cfg,
                                    struct httpc_config *out);

/* Adds one finished request to the stats of step (NUL-terminated, "" for
 * none) and the len bytes at name, created on first use, or to "other"
 * once m is full. Returns the name it was recorded under, owned by m. */
const char *httpc_metrics_record(struct httpc_metrics *m, const char *step,
                                 const char *name, size_t len,
                                 const struct httpc_response *r);

/* The stats of (step, name), created on first use (or "other" once m is
 * full; *folded tells), for decoders that fill aggregates directly. Owned
 * by m. */
struct httpc_stats *httpc_metrics_slot(struct httpc_metrics *m,
                                       const char *step, const char *name,
                                       bool *folded);
/* Adds n to the count of requests folded into "other". */
void httpc_metrics_add_folded(struct httpc_metrics *m, uint64_t n);
/* The histogram configuration every stats of m uses. */
struct hist_config httpc_metrics_hist_config(const struct httpc_metrics *m);

#endif
