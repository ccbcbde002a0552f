/* Cron schedules: 5- and 6-field expressions, @descriptors and @every,
 * evaluated in an IANA time zone. Syntax and DST rules: docs/cron.md. */
#ifndef HANDOFF_CRON_H
#define HANDOFF_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Longest expression cron_parse accepts, in bytes. */
#define CRON_EXPR_MAX 512
/* Room for any message cron_parse writes; shorter buffers get it cut. */
#define CRON_ERR_SIZE 256
/* cron_next looks this far ahead of its start, in seconds (10 years: the
 * rarest schedule, Feb 29, can wait 8 years across 2100). */
#define CRON_HORIZON_S (INT64_C(3660) * 86400)

/* A parsed schedule. Immutable once made: any thread may call cron_next on
 * it concurrently. */
struct cron;

/* Parses expr, to be evaluated in zone tz_name (NULL or "" means UTC).
 * Accepts 5 fields (minute hour day-of-month month day-of-week), 6 fields
 * with seconds first, @yearly @annually @monthly @weekly @daily @midnight
 * @hourly, and "@every <duration>" (Go syntax, at least 1s). On success
 * *out is a new schedule the caller releases with cron_free and 0 is
 * returned. Returns ST_INVALID when the expression or the zone name is
 * wrong, the expression can never fire (e.g. "0 0 30 2 *"), or the zone does
 * not exist; ST_IO when the zone database could not be read. On failure a
 * one-line message naming the field and the reason goes to err (errlen
 * bytes; CRON_ERR_SIZE is enough) and *out is untouched. Any thread. */
MUST_CHECK int cron_parse(const char *expr, const char *tz_name,
                          struct cron **out, char *err, size_t errlen);

/* The first fire time strictly after after_unix_ns, in Unix ns. Cron fire
 * times fall on whole seconds; for @every it is after_unix_ns plus the
 * interval, so pass the previous fire time to keep a steady cadence.
 * Returns -1 when there is none within CRON_HORIZON_S or the result would
 * not fit in int64 ns (after 2262). */
int64_t cron_next(const struct cron *c, int64_t after_unix_ns);

/* True for an @every schedule; its interval in ns goes to *interval_ns
 * (may be NULL). */
bool cron_is_every(const struct cron *c, int64_t *interval_ns);

/* Releases c; NULL does nothing. */
void cron_free(struct cron *c);

#endif
