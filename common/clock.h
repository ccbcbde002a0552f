/* Time: monotonic and wall clocks in nanoseconds, RFC 3339 formatting and
 * Go-style durations ("1h30m", "250ms"). */
#ifndef HANDOFF_CLOCK_H
#define HANDOFF_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define CLOCK_NS_PER_US INT64_C(1000)
#define CLOCK_NS_PER_MS INT64_C(1000000)
#define CLOCK_NS_PER_S INT64_C(1000000000)

/* CLOCK_MONOTONIC in ns: for intervals and deadlines. Any thread. */
int64_t clock_mono_ns(void);
/* CLOCK_REALTIME in ns since the Unix epoch: for timestamps. Any thread. */
int64_t clock_real_ns(void);

/* Room for the longest RFC 3339 text clock_format_rfc3339 writes. */
#define CLOCK_RFC3339_LEN 40

enum clock_zone { CLOCK_UTC, CLOCK_LOCAL };

/* Writes unix_ns as RFC 3339 into out (CLOCK_RFC3339_LEN bytes). With
 * nano_trim, fractional seconds are written to the nanosecond with trailing
 * zeros removed (Go's time.RFC3339Nano); otherwise to the millisecond.
 * Returns out. */
char *clock_format_rfc3339(int64_t unix_ns, enum clock_zone zone, int nano_trim,
                           char *out);

/* Parses an RFC 3339 timestamp ("2026-11-23T10:00:00Z", with optional
 * fraction and offset) into *out_unix_ns. Returns 0 or ST_INVALID. */
MUST_CHECK int clock_parse_rfc3339(const char *s, int64_t *out_unix_ns);

/* Parses a Go-style duration: a sequence of decimal numbers, each with an
 * optional fraction and a unit (ns, us, ms, s, m, h), e.g. "1h30m", "1.5s",
 * "300ms". A bare "0" is allowed. Negative values are refused. Returns 0, or
 * ST_INVALID with *out untouched. */
MUST_CHECK int clock_parse_duration(const char *s, int64_t *out_ns);

/* Formats ns as a short Go-style duration ("1m30s", "250ms", "0s") into out
 * of outlen bytes. Returns out. */
char *clock_format_duration(int64_t ns, char *out, size_t outlen);

#endif
