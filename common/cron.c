/* Cron schedules: expressions parse into one bit set per field; the next
 * fire time is found by jumping field by field through the local calendar,
 * one span of constant UTC offset at a time, so gaps and repeats are seen
 * exactly where the zone has them. DST rules: docs/cron.md. */
#include "cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"
#include "tz.h"

#define SECS_PER_DAY INT64_C(86400)
/* Fields counted for the "expected 5 or 6" message. */
#define TOKENS_MAX 8
/* Numbers are read up to this; anything larger is out of range anyway. */
#define NUMBER_CAP 100000

enum cron_field {
    FIELD_SECOND,
    FIELD_MINUTE,
    FIELD_HOUR,
    FIELD_DOM,
    FIELD_MONTH,
    FIELD_DOW,
    FIELD_COUNT
};

struct field_info {
    const char *name;
    int min;
    int max;                  /* largest value written; 7 for day of week */
    int star_max;             /* where * and N/step stop */
    const char *const *names; /* three-letter names of min.., or NULL */
    int n_names;
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR",
                                          "MAY", "JUN", "JUL", "AUG",
                                          "SEP", "OCT", "NOV", "DEC"};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED",
                                        "THU", "FRI", "SAT"};

static const struct field_info field_info[FIELD_COUNT] = {
    [FIELD_SECOND] = {"second", 0, 59, 59, NULL, 0},
    [FIELD_MINUTE] = {"minute", 0, 59, 59, NULL, 0},
    [FIELD_HOUR] = {"hour", 0, 23, 23, NULL, 0},
    [FIELD_DOM] = {"day of month", 1, 31, 31, NULL, 0},
    [FIELD_MONTH] = {"month", 1, 12, 12, month_names, 12},
    [FIELD_DOW] = {"day of week", 0, 7, 6, dow_names, 7},
};

static const struct {
    const char *name;
    const char *fields;
} descriptors[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

struct cron {
    uint64_t bits[FIELD_COUNT]; /* bit v: value v matches; Sunday is bit 0 */
    bool dom_any;     /* day of month is * or ?: days match on weekday alone */
    bool dow_any;     /* day of week is * or ?: days match on date alone */
    bool wall_clock;  /* minute and hour without *: DST catch-up, no repeat */
    int64_t every_ns; /* > 0 for @every */
    struct tz *zone;
};

/* Where parsing is, for messages. */
struct parser {
    char *err;
    size_t errlen;
    int pos; /* field number as written, from 1 */
    enum cron_field field;
    const char *text; /* the whole field */
    size_t len;
};

struct token {
    const char *s;
    size_t len;
};

/* Copies at most 40 bytes of s[0..len) for a message, printable ASCII
 * only. */
static void quote(char *dst, size_t dstlen, const char *s, size_t len)
{
    size_t n = 0;
    size_t i = 0;

    for (; i < len && n + 4 < dstlen && n < 40; i++) {
        dst[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    }
    if (i < len && n + 4 <= dstlen) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

static int set_err(char *err, size_t errlen, const char *fmt, ...)
    MEM_PRINTF(3, 4);

/* Writes the message and returns ST_INVALID, for `return set_err(...)`. */
static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ST_INVALID;
}

static int field_err(const struct parser *p, const char *tok, size_t len,
                     const char *fmt, ...) MEM_PRINTF(4, 5);

/* `field 3 (day of month) "32": value out of range 1-31` */
static int field_err(const struct parser *p, const char *tok, size_t len,
                     const char *fmt, ...)
{
    char why[96];
    char q[48];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    quote(q, sizeof(q), tok, len);
    return set_err(p->err, p->errlen, "field %d (%s) \"%s\": %s", p->pos,
                   field_info[p->field].name, q, why);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* Case-insensitive comparison of s[0..len) with NUL-terminated word. */
static bool word_is(const char *s, size_t len, const char *word)
{
    size_t i = 0;

    for (; i < len && word[i]; i++) {
        if (upper(s[i]) != upper(word[i])) {
            return false;
        }
    }
    return i == len && word[i] == '\0';
}

/* Reads a number (capped at NUMBER_CAP) at *sp, advancing past it. */
static int read_number(const char **sp, const char *end)
{
    const char *s = *sp;
    int v = 0;

    while (s < end && is_digit(*s)) {
        v = v < NUMBER_CAP ? v * 10 + (*s - '0') : NUMBER_CAP;
        s++;
    }
    *sp = s;
    return v;
}

/* A number or, in month and day of week, a three-letter name. item is the
 * list item, quoted when the value is missing altogether. */
static int parse_value(const struct parser *p, const struct token *item,
                       const char **sp, const char *end, int *out)
{
    const struct field_info *fi = &field_info[p->field];
    const char *tok = *sp;
    const char *s = tok;
    int v;

    if (s < end && is_digit(*s)) {
        v = read_number(&s, end);
        if (v < fi->min || v > fi->max) {
            return field_err(p, tok, (size_t)(s - tok),
                             "value out of range %d-%d", fi->min, fi->max);
        }
    } else if (s < end && is_alpha(*s)) {
        while (s < end && is_alpha(*s)) {
            s++;
        }
        if (!fi->names) {
            return field_err(p, tok, (size_t)(s - tok), "not a number");
        }
        for (v = 0; v < fi->n_names; v++) {
            if (word_is(tok, (size_t)(s - tok), fi->names[v])) {
                break;
            }
        }
        if (v == fi->n_names) {
            return field_err(p, tok, (size_t)(s - tok),
                             "not a number or name (%s-%s)", fi->names[0],
                             fi->names[fi->n_names - 1]);
        }
        v += fi->min;
    } else if (s == end) {
        return field_err(p, item->s, item->len, "missing value");
    } else {
        return field_err(p, item->s, item->len, "unexpected character '%c'",
                         (*s >= 0x20 && *s < 0x7f) ? *s : '?');
    }
    *sp = s;
    *out = v;
    return 0;
}

/* One list item: *, ?, value or value-value, with an optional /step. */
static int parse_item(const struct parser *p, const struct token *item,
                      uint64_t *bits, bool *star, bool *step1)
{
    const struct field_info *fi = &field_info[p->field];
    const char *s = item->s;
    const char *end = item->s + item->len;
    bool single = false;
    int lo;
    int hi;
    int step = 1;
    int rc;

    if (item->len == 0) {
        return field_err(p, p->text, p->len, "empty list item");
    }
    *star = *s == '*' || *s == '?';
    if (*star) {
        if (*s == '?' && p->field != FIELD_DOM && p->field != FIELD_DOW) {
            return field_err(p, item->s, item->len,
                             "\"?\" is only allowed in day of month and "
                             "day of week");
        }
        s++;
        lo = fi->min;
        hi = fi->star_max;
    } else {
        rc = parse_value(p, item, &s, end, &lo);
        if (rc) {
            return rc;
        }
        hi = lo;
        single = true;
        if (s < end && *s == '-') {
            s++;
            rc = parse_value(p, item, &s, end, &hi);
            if (rc) {
                return rc;
            }
            if (lo > hi) {
                return field_err(p, item->s, item->len,
                                 "range start is after its end");
            }
            single = false;
        }
    }
    if (s < end && *s == '/') {
        s++;
        if (s == end) {
            return field_err(p, item->s, item->len, "missing step after \"/\"");
        }
        if (!is_digit(*s)) {
            return field_err(p, item->s, item->len, "step is not a number");
        }
        step = read_number(&s, end);
        if (step < 1) {
            return field_err(p, item->s, item->len, "step must be >= 1");
        }
        /* "5/15": from 5 every 15 to the end of the field. */
        if (single && hi < fi->star_max) {
            hi = fi->star_max;
        }
    }
    if (s != end) {
        return field_err(p, item->s, item->len, "unexpected character '%c'",
                         (*s >= 0x20 && *s < 0x7f) ? *s : '?');
    }
    for (int v = lo; v <= hi; v += step) {
        *bits |= UINT64_C(1) << v;
    }
    *step1 = step == 1;
    return 0;
}

/* Parses one field into c. */
static int parse_field(struct cron *c, struct parser *p)
{
    const char *s = p->text;
    const char *end = p->text + p->len;
    uint64_t bits = 0;
    bool any_star = false;
    bool star = false;
    bool step1 = false;
    int items = 0;
    int rc;

    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        struct token item = {s, (size_t)((comma ? comma : end) - s)};

        rc = parse_item(p, &item, &bits, &star, &step1);
        if (rc) {
            return rc;
        }
        any_star = any_star || star;
        items++;
        if (!comma) {
            break;
        }
        s = comma + 1;
    }
    if (p->field == FIELD_DOW && (bits >> 7 & 1)) {
        bits = (bits | 1) & ~(UINT64_C(1) << 7);
    }
    c->bits[p->field] = bits;
    if (p->field == FIELD_DOM) {
        c->dom_any = items == 1 && star && step1;
    } else if (p->field == FIELD_DOW) {
        c->dow_any = items == 1 && star && step1;
    } else if (p->field == FIELD_MINUTE || p->field == FIELD_HOUR) {
        c->wall_clock = c->wall_clock && !any_star;
    }
    return 0;
}

/* Splits s at spaces and tabs. Returns the number of words; the first
 * TOKENS_MAX go to tok. */
static int split(const char *s, size_t len, struct token tok[TOKENS_MAX])
{
    const char *end = s + len;
    int n = 0;

    while (s < end) {
        const char *w;

        while (s < end && (*s == ' ' || *s == '\t')) {
            s++;
        }
        if (s == end) {
            break;
        }
        w = s;
        while (s < end && *s != ' ' && *s != '\t') {
            s++;
        }
        if (n < TOKENS_MAX) {
            tok[n].s = w;
            tok[n].len = (size_t)(s - w);
        }
        n++;
    }
    return n;
}

/* Fails when no month in the schedule has a day it names: only possible
 * when day of week is * (else any weekday matches). */
static int check_fires(const struct cron *c, const struct token *dom,
                       const struct token *month, char *err, size_t errlen)
{
    char qd[48];
    char qm[48];

    if (!c->dow_any) {
        return 0;
    }
    for (int m = 1; m <= 12; m++) {
        uint64_t days = (UINT64_C(2) << tz_days_in_month(2000, m)) - 2;

        if ((c->bits[FIELD_MONTH] >> m & 1) && (c->bits[FIELD_DOM] & days)) {
            return 0;
        }
    }
    quote(qd, sizeof(qd), dom->s, dom->len);
    quote(qm, sizeof(qm), month->s, month->len);
    return set_err(err, errlen,
                   "never fires: day of month \"%s\" does not occur in "
                   "month \"%s\"",
                   qd, qm);
}

static int parse_fields(struct cron *c, const char *expr, size_t len, char *err,
                        size_t errlen)
{
    struct token tok[TOKENS_MAX];
    struct parser p = {err, errlen, 0, FIELD_SECOND, NULL, 0};
    int n = split(expr, len, tok);
    int first;
    int rc;

    if (n != 5 && n != 6) {
        return set_err(err, errlen, "expected 5 or 6 fields, got %d", n);
    }
    first = n == 6 ? FIELD_SECOND : FIELD_MINUTE;
    c->bits[FIELD_SECOND] = 1;
    c->wall_clock = true;
    for (int f = first; f < FIELD_COUNT; f++) {
        p.pos = f - first + 1;
        p.field = (enum cron_field)f;
        p.text = tok[f - first].s;
        p.len = tok[f - first].len;
        rc = parse_field(c, &p);
        if (rc) {
            return rc;
        }
    }
    return check_fires(c, &tok[FIELD_DOM - first], &tok[FIELD_MONTH - first],
                       err, errlen);
}

static int parse_every(struct cron *c, const struct token *tok, int n,
                       char *err, size_t errlen)
{
    char text[64];
    char q[48];

    if (n != 2) {
        return set_err(err, errlen,
                       "\"@every\" takes one duration, e.g. \"@every 5m\"");
    }
    quote(q, sizeof(q), tok[1].s, tok[1].len);
    if (tok[1].len >= sizeof(text)) {
        return set_err(err, errlen, "@every: invalid duration \"%s\"", q);
    }
    memcpy(text, tok[1].s, tok[1].len);
    text[tok[1].len] = '\0';
    if (clock_parse_duration(text, &c->every_ns) != 0) {
        return set_err(err, errlen,
                       "@every: invalid duration \"%s\" (use e.g. 30s, 5m, "
                       "1h30m)",
                       q);
    }
    if (c->every_ns < CLOCK_NS_PER_S) {
        return set_err(err, errlen,
                       "@every: interval \"%s\" is below the minimum of 1s", q);
    }
    return 0;
}

static int parse_expr(struct cron *c, const char *expr, char *err,
                      size_t errlen)
{
    struct token tok[TOKENS_MAX];
    size_t len = strlen(expr);
    int n = split(expr, len, tok);
    char q[48];

    if (n == 0) {
        return set_err(err, errlen, "empty expression");
    }
    if (tok[0].s[0] != '@') {
        return parse_fields(c, expr, len, err, errlen);
    }
    if (word_is(tok[0].s, tok[0].len, "@every")) {
        return parse_every(c, tok, n, err, errlen);
    }
    quote(q, sizeof(q), tok[0].s, tok[0].len);
    for (size_t i = 0; i < sizeof(descriptors) / sizeof(descriptors[0]); i++) {
        const char *f = descriptors[i].fields;

        if (!word_is(tok[0].s, tok[0].len, descriptors[i].name)) {
            continue;
        }
        if (n != 1) {
            return set_err(err, errlen, "\"%s\" takes no arguments", q);
        }
        return parse_fields(c, f, strlen(f), err, errlen);
    }
    return set_err(err, errlen, "unknown descriptor \"%s\"", q);
}

int cron_parse(const char *expr, const char *tz_name, struct cron **out,
               char *err, size_t errlen)
{
    struct cron *c = NULL;
    int rc;

    if (!expr) {
        return set_err(err, errlen, "empty expression");
    }
    if (strnlen(expr, CRON_EXPR_MAX + 1) > CRON_EXPR_MAX) {
        return set_err(err, errlen, "expression longer than %d bytes",
                       CRON_EXPR_MAX);
    }
    c = mem_zalloc(sizeof(*c));
    rc = parse_expr(c, expr, err, errlen);
    if (rc) {
        goto fail;
    }
    rc = tz_new(tz_name && *tz_name ? tz_name : "UTC", &c->zone, err, errlen);
    if (rc) {
        rc = rc == ST_IO ? ST_IO : ST_INVALID;
        goto fail;
    }
    *out = c;
    return 0;

fail:
    cron_free(c);
    return rc;
}

void cron_free(struct cron *c)
{
    if (!c) {
        return;
    }
    tz_free(c->zone);
    free(c);
}

bool cron_is_every(const struct cron *c, int64_t *interval_ns)
{
    if (c->every_ns > 0 && interval_ns) {
        *interval_ns = c->every_ns;
    }
    return c->every_ns > 0;
}

/* ---- Next fire time ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if (a % b != 0 && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

/* The smallest set bit of bits at or above from, or -1. */
static int next_bit(uint64_t bits, int from)
{
    uint64_t m;

    if (from >= 64) {
        return -1;
    }
    m = bits & (~UINT64_C(0) << from);
    if (!m) {
        return -1;
    }
#if defined(__GNUC__)
    return __builtin_ctzll(m);
#else
    for (int i = from;; i++) {
        if (m >> i & 1) {
            return i;
        }
    }
#endif
}

/* Vixie cron: when both day fields are restricted a day matches if either
 * does; when one is * only the other decides. */
static bool day_matches(const struct cron *c, int mday, int64_t days)
{
    int wday = (int)(days - floor_div(days + 4, 7) * 7 + 4);
    bool dom = c->bits[FIELD_DOM] >> mday & 1;
    bool dow = c->bits[FIELD_DOW] >> wday & 1;

    if (c->dom_any || c->dow_any) {
        return dom && dow;
    }
    return dom || dow;
}

/* Moves h:m:s to the first matching time of day at or after it. */
static bool next_time(const struct cron *c, int *hp, int *mp, int *sp)
{
    int h = *hp;
    int m = *mp;
    int s = *sp;

    while (h < 24) {
        int nh = next_bit(c->bits[FIELD_HOUR], h);
        int nm;
        int ns;

        if (nh < 0 || nh > 23) {
            return false;
        }
        if (nh != h) {
            h = nh;
            m = 0;
            s = 0;
        }
        nm = next_bit(c->bits[FIELD_MINUTE], m);
        if (nm < 0) {
            h++;
            m = 0;
            s = 0;
            continue;
        }
        if (nm != m) {
            m = nm;
            s = 0;
        }
        ns = next_bit(c->bits[FIELD_SECOND], s);
        if (ns < 0) {
            s = 0;
            if (++m == 60) {
                m = 0;
                h++;
            }
            continue;
        }
        *hp = h;
        *mp = m;
        *sp = ns;
        return true;
    }
    return false;
}

/* The first matching local time in [lo, hi), as local seconds since
 * 1970-01-01 00:00 (a calendar without zones). Jumps to the next matching
 * month, then day by day (at most 31 steps), then by time fields. */
static bool find_match(const struct cron *c, int64_t lo, int64_t hi,
                       int64_t *out)
{
    int64_t days = floor_div(lo, SECS_PER_DAY);
    int sod = (int)(lo - days * SECS_PER_DAY);
    int h = sod / 3600;
    int m = sod / 60 % 60;
    int s = sod % 60;
    int year;
    int month;
    int mday;

    tz_civil_from_days(days, &year, &month, &mday);
    while (days * SECS_PER_DAY < hi) {
        if (!(c->bits[FIELD_MONTH] >> month & 1)) {
            int next = next_bit(c->bits[FIELD_MONTH], month + 1);

            if (next < 0 || next > 12) {
                year++;
                next = next_bit(c->bits[FIELD_MONTH], 1);
            }
            month = next;
            mday = 1;
            days = tz_days_from_civil(year, month, 1);
            h = m = s = 0;
            continue;
        }
        if (day_matches(c, mday, days) && next_time(c, &h, &m, &s)) {
            int64_t t = days * SECS_PER_DAY + h * 3600 + m * 60 + s;

            if (t >= hi) {
                return false;
            }
            *out = t;
            return true;
        }
        days++;
        h = m = s = 0;
        if (++mday > tz_days_in_month(year, month)) {
            mday = 1;
            if (++month > 12) {
                month = 1;
                year++;
            }
        }
    }
    return false;
}

static int64_t to_ns(int64_t unix_s)
{
    if (unix_s > INT64_MAX / CLOCK_NS_PER_S ||
        unix_s < INT64_MIN / CLOCK_NS_PER_S) {
        return -1;
    }
    return unix_s * CLOCK_NS_PER_S;
}

int64_t cron_next(const struct cron *c, int64_t after_unix_ns)
{
    int64_t start = floor_div(after_unix_ns, CLOCK_NS_PER_S) + 1;
    int64_t limit = start + CRON_HORIZON_S;
    int64_t u = start;

    if (c->every_ns > 0) {
        if (after_unix_ns > INT64_MAX - c->every_ns) {
            return -1;
        }
        return after_unix_ns + c->every_ns;
    }
    /* Walk the spans of constant offset from start. Within one, local time
     * is u + offset, so a local-calendar search maps straight back. */
    for (;;) {
        struct tz_span sp;
        int64_t lo;
        int64_t end;
        int64_t found;

        tz_span_at(c->zone, u, &sp);
        lo = u + sp.utoff_s;
        if (c->wall_clock && sp.begin_s == u && sp.utoff_s > sp.prev_utoff_s &&
            find_match(c, u + sp.prev_utoff_s, lo, &found)) {
            /* A wall-clock time the gap skipped fires as the gap ends. */
            return to_ns(u);
        }
        if (c->wall_clock && sp.utoff_s < sp.prev_utoff_s &&
            lo < sp.begin_s + sp.prev_utoff_s) {
            /* Local times up to here already occurred before the fall back;
             * wall-clock times fire at their first occurrence only. */
            lo = sp.begin_s + sp.prev_utoff_s;
        }
        end = sp.end_s < limit ? sp.end_s : limit;
        if (lo < end + sp.utoff_s &&
            find_match(c, lo, end + sp.utoff_s, &found)) {
            return to_ns(found - sp.utoff_s);
        }
        if (sp.end_s >= limit) {
            return -1;
        }
        u = sp.end_s;
    }
}
