/* snap: the mergeable unit of a load run's metrics. Each loop thread
 * records into its own snapshot and hands it over every second; the
 * reporter merges those deltas into the second's figures and into the
 * run's total, exactly (histograms merge bucket by bucket). A distributed
 * shard would send the same deltas. Metric names: docs/load.md. */
#ifndef HANDOFF_SNAP_H
#define HANDOFF_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "hist.h"
#include "httpc.h"
#include "status.h"

/* Distinct check names and step names kept; more are folded into
 * "other", with one warning. */
#define SNAP_MAX_CHECKS 256
#define SNAP_MAX_STEPS 256

struct snap_check {
    char *name;
    uint64_t passes;
    uint64_t fails;
};

struct snap_step {
    char *name;
    struct hist *duration_ns; /* its count is the step's count */
};

struct snap {
    uint64_t iterations;  /* completed */
    uint64_t interrupted; /* cut short by the end of graceful stop */
    uint64_t dropped;     /* arrival-rate starts with no VU to run them */
    int vus;              /* VUs active at the snapshot's end (a gauge) */
    int vus_max;          /* VUs that existed, at most */
    struct hist *iteration_ns;
    struct httpc_metrics *http; /* per (step, name) */
    struct snap_check *checks;  /* in first-seen order */
    size_t n_checks;
    struct snap_step *steps; /* in first-seen order */
    size_t n_steps;
};

/* An empty snapshot whose histograms (iterations, steps and the HTTP
 * client's) use http->hist, defaults resolved as httpc does. Returns 0
 * with *out owned by the caller, or ST_INVALID. */
MUST_CHECK int snap_new(const struct httpc_config *http, struct snap **out);
void snap_free(struct snap *s);
/* Empties s, keeping names' slots and memory (histograms reset). */
void snap_reset(struct snap *s);
/* Adds src to dst: counters add, histograms merge, vus takes src's,
 * vus_max the larger. Returns 0, or ST_INVALID when their histogram
 * configurations differ (dst unchanged then). */
MUST_CHECK int snap_merge(struct snap *dst, const struct snap *src);

/* Counts one pass or fail of the check name. */
void snap_check(struct snap *s, const char *name, bool ok);
/* Records one step of duration ns. */
void snap_step(struct snap *s, const char *name, int64_t ns);
/* Records one completed iteration of duration ns. */
void snap_iteration(struct snap *s, int64_t ns);

/* Lookups, NULL when absent. */
const struct snap_check *snap_find_check(const struct snap *s,
                                         const char *name);
const struct snap_step *snap_find_step(const struct snap *s, const char *name);

/* The wire form of a snapshot, what a distributed shard sends every second
 * (docs/load.md): little-endian, versioned by its magic, entries with no
 * counts left out. */
#define SNAP_WIRE_MAGIC "HFS1"
/* A decoded snapshot may not need more heap than this for its histograms:
 * bytes from the network never make a worker or controller allocate
 * without bound. */
#define SNAP_DECODE_MAX_MEMORY ((size_t)256 << 20)

/* Appends s's wire form to out. Returns 0, or ST_TOO_LARGE when out's cap
 * would be exceeded (out is then left as it was). */
MUST_CHECK int snap_encode(const struct snap *s, struct buf *out);
/* Decodes len bytes at data (borrowed, untrusted) as written by
 * snap_encode. Everything is checked: sizes against the input, counts
 * against the caps above, names for UTF-8, every histogram against the
 * snapshot's one configuration. Returns 0 with *out owned by the caller,
 * or ST_PROTOCOL with *out untouched and nothing left allocated. Any
 * thread. */
MUST_CHECK int snap_decode(const void *data, size_t len, struct snap **out);
/* An empty snapshot with the histogram configuration of like (for merging
 * decoded snapshots into). Owned by the caller. */
struct snap *snap_new_like(const struct snap *like);

#endif
