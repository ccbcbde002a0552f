/* api: the controller's HTTP routes (docs/api.md). Handlers check what
 * they can on the loop (bodies, paths), hand database work to the pool
 * (store.c) and answer from its result. Loop thread. */
#ifndef HANDOFF_API_H
#define HANDOFF_API_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

struct bus;
struct cmetrics;
struct dbpool;
struct httpd;
struct live;

struct api_deps {
    struct bus *bus;
    struct dbpool *pool;
    struct live *live;
    struct cmetrics *metrics;
    int64_t flaky_window; /* runs GET .../flaky looks at; 0: the default */
    /* Readiness as /readyz reports it; read on the loop thread. */
    bool (*nats_ready)(void *arg);
    bool (*postgres_ready)(void *arg);
    bool (*redis_ready)(void *arg);
    /* False until migrations have run: data routes answer 503. */
    bool (*schema_ready)(void *arg);
    void *arg;
};

struct api;

/* Adds every route to srv. deps is copied; what it points to is borrowed
 * until api_free. */
MUST_CHECK int api_new(struct httpd *srv, const struct api_deps *deps,
                       struct api **out);
void api_free(struct api *a);

#endif
