/* A small TZif reader (RFC 8536, versions 1-4) with conversions that take
 * the zone as an argument. Chosen over ICU's ucal: ICU brings a 30 MB data
 * library and C++ runtime, carries its own copy of the tz database (so it can
 * disagree with the system's tzdata that Debian keeps current), and its
 * calendar objects are mutable, so each thread would need its own. The
 * reader is one file with no dependencies and reads the files glibc reads. */
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define SECS_PER_DAY INT64_C(86400)
/* RFC 8536 bounds on a type's UT offset: -24:59:59 .. +25:59:59. */
#define UTOFF_MIN (-89999)
#define UTOFF_MAX 93599
/* Every offset lies strictly within +-OFFSET_REACH_S of UTC. */
#define OFFSET_REACH_S (26 * 3600)
#define FOOTER_MAX 255
/* Years tz_from_local clamps to, inside TZ_LIMIT_S. */
#define YEAR_REACH 30000
#define TZIF_HEADER_LEN 44

struct tz_type {
    int32_t utoff_s;
    bool is_dst;
    char abbr[TZ_ABBR_SIZE];
};

/* A POSIX TZ rule date: Jn (1-365, no Feb 29), n (0-365) or Mm.w.d. */
enum tz_rule_kind { RULE_JULIAN, RULE_ZERO_BASED, RULE_MONTH_WEEK };

struct tz_rule {
    enum tz_rule_kind kind;
    int day;        /* Jn, n: the number; Mm.w.d: weekday d, 0 = Sunday */
    int week;       /* Mm.w.d: 1-5, 5 = last */
    int month;      /* Mm.w.d: 1-12 */
    int32_t time_s; /* local time of day of the change, -167h..167h */
};

/* The TZ string of a v2+ file: local time after the last transition. */
struct tz_footer {
    bool present;
    bool has_dst;
    struct tz_type std;
    struct tz_type dst;
    struct tz_rule start; /* into DST, in standard time */
    struct tz_rule end;   /* out of DST, in DST */
};

struct tz {
    char name[TZ_NAME_MAX + 1];
    int64_t *at_s;    /* transition instants, strictly ascending */
    uint8_t *type_of; /* types index in force from each transition */
    size_t n_at;
    struct tz_type *types; /* at least one; types[0] before the first */
    size_t n_types;
    struct tz_footer footer;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    MEM_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies at most 64 bytes of untrusted s for a message, printable ASCII
 * only. */
static void quote(char *dst, size_t dstlen, const char *s)
{
    size_t n = 0;

    for (; *s && n + 4 < dstlen && n < 64; s++) {
        dst[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    }
    if (*s && n + 4 <= dstlen) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if (a % b != 0 && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

static int64_t clamp_s(int64_t s)
{
    if (s < -TZ_LIMIT_S) {
        return -TZ_LIMIT_S;
    }
    return s > TZ_LIMIT_S ? TZ_LIMIT_S : s;
}

/* Howard Hinnant's days_from_civil and civil_from_days: exact for the
 * proleptic Gregorian calendar with eras of 400 years. */
int64_t tz_days_from_civil(int year, int month, int day)
{
    int64_t y = (int64_t)year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);

    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = m;
    *year = (int)(yoe + era * 400 + (m <= 2));
}

static bool is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int tz_days_in_month(int year, int month)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (month == 2 && is_leap(year)) {
        return 29;
    }
    return len[(month - 1) % 12];
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday_of(int64_t days)
{
    return (int)(days - floor_div(days + 4, 7) * 7 + 4);
}

/* ---- POSIX TZ strings (the footer) ---- */

/* Reads up to max_digits digits as a number no greater than max. */
static bool parse_num(const char **sp, int max_digits, int max, int *out)
{
    const char *s = *sp;
    int v = 0;
    int n = 0;

    while (*s >= '0' && *s <= '9' && n < max_digits) {
        v = v * 10 + (*s++ - '0');
        n++;
    }
    if (n == 0 || v > max) {
        return false;
    }
    *sp = s;
    *out = v;
    return true;
}

/* [+-]hh[:mm[:ss]] with hh <= max_hours, as signed seconds. */
static bool parse_hms(const char **sp, int max_hours, int32_t *out)
{
    const char *s = *sp;
    int sign = 1;
    int h = 0;
    int m = 0;
    int sec = 0;

    if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
    }
    if (!parse_num(&s, 3, max_hours, &h)) {
        return false;
    }
    if (*s == ':') {
        s++;
        if (!parse_num(&s, 2, 59, &m)) {
            return false;
        }
        if (*s == ':') {
            s++;
            if (!parse_num(&s, 2, 59, &sec)) {
                return false;
            }
        }
    }
    *sp = s;
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
}

/* An abbreviation: three or more letters, or <...> of [A-Za-z0-9+-]. */
static bool parse_abbr(const char **sp, char out[TZ_ABBR_SIZE])
{
    const char *s = *sp;
    bool quoted = *s == '<';
    size_t n = 0;

    if (quoted) {
        s++;
    }
    for (;; s++) {
        bool alpha = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z');
        bool other = (*s >= '0' && *s <= '9') || *s == '+' || *s == '-';

        if (!alpha && !(quoted && other)) {
            break;
        }
        if (n < TZ_ABBR_SIZE - 1) {
            out[n] = *s;
        }
        n++;
    }
    out[n < TZ_ABBR_SIZE ? n : TZ_ABBR_SIZE - 1] = '\0';
    if (quoted && *s++ != '>') {
        return false;
    }
    if (n < 3) {
        return false;
    }
    *sp = s;
    return true;
}

static bool parse_rule(const char **sp, struct tz_rule *r)
{
    const char *s = *sp;

    r->time_s = 2 * 3600;
    r->week = 0;
    r->month = 0;
    if (*s == 'J') {
        s++;
        r->kind = RULE_JULIAN;
        if (!parse_num(&s, 3, 365, &r->day) || r->day < 1) {
            return false;
        }
    } else if (*s == 'M') {
        s++;
        r->kind = RULE_MONTH_WEEK;
        if (!parse_num(&s, 2, 12, &r->month) || r->month < 1 || *s++ != '.' ||
            !parse_num(&s, 1, 5, &r->week) || r->week < 1 || *s++ != '.' ||
            !parse_num(&s, 1, 6, &r->day)) {
            return false;
        }
    } else {
        r->kind = RULE_ZERO_BASED;
        if (!parse_num(&s, 3, 365, &r->day)) {
            return false;
        }
    }
    /* RFC 8536 (version 3) widens the time to -167..167 hours. */
    if (*s == '/') {
        s++;
        if (!parse_hms(&s, 167, &r->time_s)) {
            return false;
        }
    }
    *sp = s;
    return true;
}

/* Parses a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3". The sign
 * of POSIX offsets is inverted: "CET-1" is one hour east of UTC. */
static bool parse_footer(const char *s, struct tz_footer *f)
{
    int32_t off = 0;

    memset(f, 0, sizeof(*f));
    if (!parse_abbr(&s, f->std.abbr) || !parse_hms(&s, 24, &off)) {
        return false;
    }
    f->std.utoff_s = -off;
    f->present = true;
    if (*s == '\0') {
        return true;
    }
    if (!parse_abbr(&s, f->dst.abbr)) {
        return false;
    }
    f->has_dst = true;
    f->dst.is_dst = true;
    f->dst.utoff_s = f->std.utoff_s + 3600;
    if (*s != ',' && *s != '\0') {
        if (!parse_hms(&s, 24, &off)) {
            return false;
        }
        f->dst.utoff_s = -off;
    }
    if (*s == '\0') {
        /* No rules: the POSIX default, today's US rules (as glibc). */
        s = ",M3.2.0,M11.1.0";
    }
    if (*s++ != ',' || !parse_rule(&s, &f->start) || *s++ != ',' ||
        !parse_rule(&s, &f->end)) {
        return false;
    }
    return *s == '\0';
}

/* The rule's moment in year, as seconds of local time (in the offset in
 * force before the change) since 1970-01-01 00:00. */
static int64_t rule_local_s(const struct tz_rule *r, int year)
{
    int64_t jan1 = tz_days_from_civil(year, 1, 1);
    int64_t day = jan1;

    switch (r->kind) {
    case RULE_JULIAN:
        day = jan1 + r->day - 1 + (is_leap(year) && r->day >= 60);
        break;
    case RULE_ZERO_BASED:
        day = jan1 + r->day;
        break;
    case RULE_MONTH_WEEK: {
        int64_t first = tz_days_from_civil(year, r->month, 1);
        int64_t end = first + tz_days_in_month(year, r->month);

        day = first + (r->day - weekday_of(first) + 7) % 7 + (r->week - 1) * 7;
        while (day >= end) {
            day -= 7;
        }
        break;
    }
    }
    return day * SECS_PER_DAY + r->time_s;
}

/* The footer's changes nearest u: the last at or before u (and whether it
 * starts DST) and the first after. Two years either side cover rule times
 * of up to 167 hours. Where a change out of DST and one into DST coincide
 * (DST all year, "EST5EDT,0/0,J365/25"), DST wins. */
static void footer_around(const struct tz_footer *f, int64_t u, int64_t *prev_s,
                          bool *prev_dst, int64_t *next_s)
{
    int64_t best_prev = INT64_MIN;
    int64_t best_next = INT64_MAX;
    bool dst = false;
    int year;
    int month;
    int day;

    tz_civil_from_days(floor_div(clamp_s(u), SECS_PER_DAY), &year, &month,
                       &day);
    for (int y = year - 2; y <= year + 2; y++) {
        int64_t t[2];

        t[0] = rule_local_s(&f->start, y) - f->std.utoff_s;
        t[1] = rule_local_s(&f->end, y) - f->dst.utoff_s;
        for (int k = 0; k < 2; k++) {
            if (t[k] <= u) {
                if (t[k] > best_prev || (t[k] == best_prev && k == 0)) {
                    best_prev = t[k];
                    dst = k == 0;
                }
            } else if (t[k] < best_next) {
                best_next = t[k];
            }
        }
    }
    *prev_s = best_prev;
    *prev_dst = dst;
    *next_s = best_next;
}

/* The type in force at u and the span [*begin, *end) it holds over. */
static const struct tz_type *lookup(const struct tz *z, int64_t u,
                                    int64_t *begin, int64_t *end)
{
    const struct tz_footer *f = &z->footer;
    int64_t last = z->n_at ? z->at_s[z->n_at - 1] : INT64_MIN;
    int64_t prev_s;
    int64_t next_s;
    bool prev_dst;

    if (z->n_at && u < last) {
        size_t lo = 0;
        size_t hi = z->n_at;

        /* First transition after u: at_s[lo]. */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (z->at_s[mid] <= u) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        *end = z->at_s[lo];
        if (lo == 0) {
            *begin = INT64_MIN;
            return &z->types[0];
        }
        *begin = z->at_s[lo - 1];
        return &z->types[z->type_of[lo - 1]];
    }
    *begin = last;
    *end = INT64_MAX;
    if (!f->present) {
        return &z->types[z->n_at ? z->type_of[z->n_at - 1] : 0];
    }
    if (!f->has_dst) {
        return &f->std;
    }
    footer_around(f, u, &prev_s, &prev_dst, &next_s);
    if (prev_s > *begin) {
        *begin = prev_s;
    }
    *end = next_s;
    return prev_dst ? &f->dst : &f->std;
}

void tz_span_at(const struct tz *z, int64_t unix_s, struct tz_span *out)
{
    int64_t begin;
    int64_t end;
    int64_t b2;
    int64_t e2;
    const struct tz_type *t = lookup(z, clamp_s(unix_s), &begin, &end);

    out->begin_s = begin;
    out->end_s = end;
    out->utoff_s = t->utoff_s;
    out->is_dst = t->is_dst;
    out->prev_utoff_s = t->utoff_s;
    if (begin != INT64_MIN) {
        out->prev_utoff_s = lookup(z, begin - 1, &b2, &e2)->utoff_s;
    }
}

void tz_to_local(const struct tz *z, int64_t unix_s, struct tz_tm *out)
{
    int64_t begin;
    int64_t end;
    const struct tz_type *t = lookup(z, clamp_s(unix_s), &begin, &end);
    int64_t local = clamp_s(unix_s) + t->utoff_s;
    int64_t days = floor_div(local, SECS_PER_DAY);
    int sod = (int)(local - days * SECS_PER_DAY);

    tz_civil_from_days(days, &out->year, &out->month, &out->day);
    out->hour = sod / 3600;
    out->minute = sod / 60 % 60;
    out->second = sod % 60;
    out->wday = weekday_of(days);
    out->yday = (int)(days - tz_days_from_civil(out->year, 1, 1));
    out->utoff_s = t->utoff_s;
    out->is_dst = t->is_dst;
    memcpy(out->abbr, t->abbr, sizeof(out->abbr));
}

int tz_from_local(const struct tz *z, const struct tz_tm *local, int64_t out[2])
{
    int64_t month0 = (int64_t)local->month - 1;
    int64_t year = (int64_t)local->year + floor_div(month0, 12);
    int month = (int)(month0 - floor_div(month0, 12) * 12) + 1;
    int64_t local_s;
    int64_t u;
    int n = 0;

    if (year < -YEAR_REACH || year > YEAR_REACH) {
        year = year < 0 ? -YEAR_REACH : YEAR_REACH;
    }
    local_s = tz_days_from_civil((int)year, month, 1) + local->day - 1;
    local_s = clamp_s(local_s * SECS_PER_DAY + (int64_t)local->hour * 3600 +
                      (int64_t)local->minute * 60 + local->second);
    /* Any instant showing local_s lies within OFFSET_REACH_S of it: visit
     * every span there and keep those whose offset maps local_s into them. */
    u = local_s - OFFSET_REACH_S;
    for (;;) {
        struct tz_span sp;
        int64_t cand;

        tz_span_at(z, u, &sp);
        cand = local_s - sp.utoff_s;
        if (cand >= sp.begin_s && cand < sp.end_s && n < 2) {
            out[n++] = cand;
        }
        if (sp.end_s > local_s + OFFSET_REACH_S) {
            break;
        }
        u = sp.end_s;
    }
    return n;
}

/* ---- TZif files ---- */

struct tzif_header {
    int version; /* 1, 2, 3, 4 ... */
    uint32_t isutcnt;
    uint32_t isstdcnt;
    uint32_t leapcnt;
    uint32_t timecnt;
    uint32_t typecnt;
    uint32_t charcnt;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool read_header(const uint8_t *p, size_t len, struct tzif_header *h)
{
    if (len < TZIF_HEADER_LEN || memcmp(p, "TZif", 4) != 0) {
        return false;
    }
    h->version = p[4] == 0 ? 1 : p[4] - '0';
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    return true;
}

static uint64_t block_len(const struct tzif_header *h, int time_len)
{
    return (uint64_t)h->timecnt * (uint64_t)(time_len + 1) +
           (uint64_t)h->typecnt * 6 + h->charcnt +
           (uint64_t)h->leapcnt * (uint64_t)(time_len + 4) + h->isstdcnt +
           h->isutcnt;
}

/* Parses one data block (time_len 4 for v1, 8 for v2+) into z. */
static int read_block(struct tz *z, const struct tzif_header *h,
                      const uint8_t *p, int time_len, char *err, size_t errlen)
{
    const uint8_t *idx = p + (size_t)h->timecnt * (size_t)time_len;
    const uint8_t *info = idx + h->timecnt;
    const char *chars = (const char *)(info + (size_t)h->typecnt * 6);

    if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0 ||
        (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt)) {
        set_err(err, errlen, "inconsistent counts in header");
        return ST_IO;
    }
    if (h->leapcnt != 0) {
        set_err(err, errlen,
                "leap-second (\"right/\") zones are not "
                "supported");
        return ST_IO;
    }
    z->n_at = h->timecnt;
    z->at_s = mem_calloc(z->n_at, sizeof(*z->at_s));
    z->type_of = mem_calloc(z->n_at, sizeof(*z->type_of));
    z->n_types = h->typecnt;
    z->types = mem_calloc(z->n_types, sizeof(*z->types));
    for (size_t i = 0; i < z->n_at; i++) {
        const uint8_t *t = p + i * (size_t)time_len;

        z->at_s[i] = time_len == 8 ? be64(t) : (int64_t)(int32_t)be32(t);
        z->type_of[i] = idx[i];
        if (i > 0 && z->at_s[i] <= z->at_s[i - 1]) {
            set_err(err, errlen, "transition times are not ascending");
            return ST_IO;
        }
        if (idx[i] >= h->typecnt) {
            set_err(err, errlen, "transition type out of range");
            return ST_IO;
        }
    }
    for (size_t i = 0; i < z->n_types; i++) {
        const uint8_t *t = info + i * 6;
        int32_t utoff = (int32_t)be32(t);
        size_t desig = t[5];
        size_t n;

        if (utoff < UTOFF_MIN || utoff > UTOFF_MAX || t[4] > 1 ||
            desig >= h->charcnt) {
            set_err(err, errlen, "bad local time type %zu", i);
            return ST_IO;
        }
        n = strnlen(chars + desig, h->charcnt - desig);
        if (n == h->charcnt - desig) {
            set_err(err, errlen, "unterminated abbreviation");
            return ST_IO;
        }
        z->types[i].utoff_s = utoff;
        z->types[i].is_dst = t[4];
        snprintf(z->types[i].abbr, sizeof(z->types[i].abbr), "%.*s",
                 (int)(n < TZ_ABBR_SIZE ? n : TZ_ABBR_SIZE - 1), chars + desig);
    }
    return 0;
}

static int parse_tzif(struct tz *z, const uint8_t *p, size_t len, char *err,
                      size_t errlen)
{
    struct tzif_header h;
    uint64_t v1_len;
    uint64_t v2_len;
    const uint8_t *footer;
    const uint8_t *nl;
    char text[FOOTER_MAX + 1];
    size_t rest;
    int rc;

    if (!read_header(p, len, &h)) {
        set_err(err, errlen, "not a TZif file");
        return ST_IO;
    }
    v1_len = block_len(&h, 4);
    if (v1_len > len - TZIF_HEADER_LEN) {
        set_err(err, errlen, "truncated TZif data");
        return ST_IO;
    }
    if (h.version < 2) {
        return read_block(z, &h, p + TZIF_HEADER_LEN, 4, err, errlen);
    }
    /* v2+: skip the 32-bit block; the second header and 64-bit block follow,
     * then the footer. */
    p += TZIF_HEADER_LEN + v1_len;
    len -= TZIF_HEADER_LEN + v1_len;
    if (!read_header(p, len, &h)) {
        set_err(err, errlen, "missing second TZif header");
        return ST_IO;
    }
    v2_len = block_len(&h, 8);
    if (v2_len > len - TZIF_HEADER_LEN) {
        set_err(err, errlen, "truncated TZif data");
        return ST_IO;
    }
    rc = read_block(z, &h, p + TZIF_HEADER_LEN, 8, err, errlen);
    if (rc) {
        return rc;
    }
    footer = p + TZIF_HEADER_LEN + v2_len;
    rest = len - TZIF_HEADER_LEN - (size_t)v2_len;
    if (rest == 0) {
        return 0;
    }
    nl = rest > 1 ? memchr(footer + 1, '\n', rest - 1) : NULL;
    if (footer[0] != '\n' || !nl || (size_t)(nl - footer - 1) > FOOTER_MAX) {
        set_err(err, errlen, "bad TZ string footer");
        return ST_IO;
    }
    memcpy(text, footer + 1, (size_t)(nl - footer - 1));
    text[nl - footer - 1] = '\0';
    if (text[0] != '\0' && !parse_footer(text, &z->footer)) {
        char q[80];

        quote(q, sizeof(q), text);
        set_err(err, errlen, "bad TZ string footer \"%s\"", q);
        return ST_IO;
    }
    return 0;
}

static struct tz *tz_alloc(const char *name)
{
    struct tz *z = mem_zalloc(sizeof(*z));

    snprintf(z->name, sizeof(z->name), "%s", name);
    return z;
}

int tz_new_from_tzif(const char *name, const void *data, size_t len,
                     struct tz **out, char *err, size_t errlen)
{
    struct tz *z = tz_alloc(name);
    char why[128] = "";
    char q[80];
    int rc;

    rc = parse_tzif(z, data, len, why, sizeof(why));
    if (rc) {
        quote(q, sizeof(q), name);
        set_err(err, errlen, "time zone \"%s\": %s", q, why);
        goto fail;
    }
    *out = z;
    return 0;

fail:
    tz_free(z);
    return rc;
}

bool tz_is_valid_name(const char *name)
{
    size_t n = strnlen(name, TZ_NAME_MAX + 1);

    if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || name[n - 1] == '/') {
        return false;
    }
    /* '.' is not in the alphabet, so "." and ".." components cannot occur
     * and the name cannot climb out of the zoneinfo directory. */
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-' ||
                  c == '/';

        if (!ok || (c == '/' && name[i + 1] == '/')) {
            return false;
        }
    }
    return true;
}

static struct tz *tz_utc(const char *name)
{
    struct tz *z = tz_alloc(name);

    z->n_types = 1;
    z->types = mem_zalloc(sizeof(*z->types));
    snprintf(z->types[0].abbr, sizeof(z->types[0].abbr), "UTC");
    z->footer.present = true;
    z->footer.std = z->types[0];
    return z;
}

/* Reads the whole regular file at path, at most TZ_FILE_MAX bytes. */
static int read_file(const char *path, uint8_t **data, size_t *len, char *err,
                     size_t errlen)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    int fd = -1;
    int rc = 0;

    /* O_NONBLOCK: a FIFO planted in the directory must not hang us. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = (errno == ENOENT || errno == ENOTDIR) ? ST_NOT_FOUND : ST_IO;
        set_err(err, errlen, "%s", strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ST_NOT_FOUND;
        set_err(err, errlen, "not a zone file");
        goto out_close;
    }
    if (st.st_size > TZ_FILE_MAX) {
        rc = ST_IO;
        set_err(err, errlen, "file larger than %d bytes", TZ_FILE_MAX);
        goto out_close;
    }
    buf = mem_alloc((size_t)st.st_size + 1);
    while (got <= (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = ST_IO;
            set_err(err, errlen, "%s", strerror(errno));
            goto out_free;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    *data = buf;
    *len = got;
    buf = NULL;

out_free:
    free(buf);
out_close:
    close(fd);
out:
    return rc;
}

int tz_new(const char *name, struct tz **out, char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR");
    uint8_t *data = NULL;
    char *path = NULL;
    char why[128] = "";
    char q[80];
    size_t len = 0;
    int rc;

    if (!name || !tz_is_valid_name(name)) {
        quote(q, sizeof(q), name ? name : "(null)");
        set_err(err, errlen,
                "invalid time zone name \"%s\": use an IANA name such as "
                "\"Europe/Berlin\"",
                q);
        return ST_INVALID;
    }
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
        *out = tz_utc(name);
        return 0;
    }
    if (!dir || dir[0] != '/') {
        dir = TZ_DEFAULT_DIR;
    }
    path = mem_printf("%s/%s", dir, name);
    rc = read_file(path, &data, &len, why, sizeof(why));
    quote(q, sizeof(q), name);
    if (rc == ST_NOT_FOUND) {
        set_err(err, errlen, "unknown time zone \"%s\"", q);
        goto out;
    }
    if (rc) {
        set_err(err, errlen, "time zone \"%s\": %s", q, why);
        goto out;
    }
    rc = tz_new_from_tzif(name, data, len, out, err, errlen);

out:
    free(data);
    free(path);
    return rc;
}

void tz_free(struct tz *z)
{
    if (!z) {
        return;
    }
    free(z->at_s);
    free(z->type_of);
    free(z->types);
    free(z);
}

const char *tz_name(const struct tz *z)
{
    return z->name;
}
