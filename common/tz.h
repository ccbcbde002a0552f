/* IANA time zones read from the system's TZif files, with conversions that
 * take the zone as an argument instead of the process-global TZ/tzset.
 * Format and rules: RFC 8536 (TZif v1-v4); design notes in docs/cron.md. */
#ifndef HANDOFF_TZ_H
#define HANDOFF_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Longest zone name accepted ("America/Argentina/ComodRivadavia" is 32). */
#define TZ_NAME_MAX 255
/* Room for an abbreviation ("CEST", "+1030"); longer ones are cut. */
#define TZ_ABBR_SIZE 16
/* Largest file tz_new reads; real zone files are under 4 KiB. */
#define TZ_FILE_MAX (256 * 1024)
/* Instants outside [-TZ_LIMIT_S, TZ_LIMIT_S] (about +-34,000 years) are
 * clamped to it by every function here, so calendar arithmetic cannot
 * overflow. */
#define TZ_LIMIT_S (INT64_C(1) << 40)

/* A loaded zone. Immutable once made: any thread may use it concurrently. */
struct tz;

/* A local wall-clock time with the offset that applies to it. */
struct tz_tm {
    int year;        /* e.g. 2026 */
    int month;       /* 1-12 */
    int day;         /* 1-31 */
    int hour;        /* 0-23 */
    int minute;      /* 0-59 */
    int second;      /* 0-59 */
    int wday;        /* 0 = Sunday .. 6 */
    int yday;        /* 0-365 */
    int32_t utoff_s; /* local time minus UTC, seconds */
    bool is_dst;
    char abbr[TZ_ABBR_SIZE]; /* "CET", "+1030"; NUL-terminated */
};

/* The stretch of time around an instant over which one offset applies:
 * [begin_s, end_s) in Unix seconds, bounded by transitions. */
struct tz_span {
    int64_t begin_s;      /* first instant; INT64_MIN when unbounded */
    int64_t end_s;        /* first instant after; INT64_MAX when unbounded */
    int32_t utoff_s;      /* offset in force, seconds east of UTC */
    int32_t prev_utoff_s; /* offset just before begin_s (= utoff_s if none) */
    bool is_dst;
};

/* True when name is acceptable as a zone name: 1..TZ_NAME_MAX characters
 * from [A-Za-z0-9_+-/], relative, without empty, "." or ".." components.
 * Says nothing about whether the zone exists. Any thread. */
bool tz_is_valid_name(const char *name);

/* Loads zone name ("Europe/Berlin") from the zoneinfo directory: $TZDIR
 * when set to an absolute path, else /usr/share/zoneinfo. "UTC" and
 * "Etc/UTC" are built in and need no file. On success *out is a new zone the
 * caller releases with tz_free. Returns 0; ST_INVALID for a bad name;
 * ST_NOT_FOUND when there is no such zone; ST_IO when the file cannot be
 * read or is not a usable TZif file. On failure a message goes to err
 * (errlen bytes, may be 0) and *out is untouched. Any thread. */
MUST_CHECK int tz_new(const char *name, struct tz **out, char *err,
                      size_t errlen);

/* As tz_new, but parses TZif bytes the caller already holds (data is
 * borrowed for the call). name is only recorded. Returns 0 or ST_IO. */
MUST_CHECK int tz_new_from_tzif(const char *name, const void *data, size_t len,
                                struct tz **out, char *err, size_t errlen);

/* Releases z; NULL does nothing. */
void tz_free(struct tz *z);

/* The name z was loaded under; valid while z lives. */
const char *tz_name(const struct tz *z);

/* The span of constant offset containing unix_s. */
void tz_span_at(const struct tz *z, int64_t unix_s, struct tz_span *out);

/* Local time at unix_s in zone z. */
void tz_to_local(const struct tz *z, int64_t unix_s, struct tz_tm *out);

/* The instants at which the wall clock in z shows the local time given by
 * year, month, day, hour, minute and second of local (other fields are
 * ignored; out-of-range fields are normalised, so day 32 is the 1st of the
 * next month). Writes them to out in ascending order and returns how many:
 * 0 when the time falls in a gap (spring forward), 2 when it is repeated
 * (fall back), else 1. A pathological zone with more than two is cut to the
 * earliest two. */
int tz_from_local(const struct tz *z, const struct tz_tm *local,
                  int64_t out[2]);

/* Proleptic Gregorian calendar arithmetic, exact over the TZ_LIMIT_S range.
 * Pure functions: any thread. */
/* Days from 1970-01-01 to year-month-day; month 1-12, day 1-31. */
int64_t tz_days_from_civil(int year, int month, int day);
/* The date days after 1970-01-01 (negative: before). */
void tz_civil_from_days(int64_t days, int *year, int *month, int *day);
/* Length of month (1-12) in year: 28-31. */
int tz_days_in_month(int year, int month);

#endif
