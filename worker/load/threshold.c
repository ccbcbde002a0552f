/* threshold: a hand-written scanner for k6's threshold strings, driven by a
 * table that says which tags and aggregations each metric takes, and their
 * evaluation on a struct snap. Grammar: docs/load.md, "Thresholds". */
#include "threshold.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mem.h"
#include "utf8.h"

#define NS_PER_MS 1e6
#define NS_PER_S 1e9
/* Digits a number may have: its value as mant / 10^scale stays exact in a
 * uint64 and 10^scale exact in a double. */
#define DIGITS_MAX 18
/* abort_on_fail=DELAY must fit in int64 ns with room to add to a start. */
#define DELAY_MAX_NS 1e18
/* How much of the text and of a token an error message quotes, in bytes. */
#define SNIP_SOURCE 96
#define SNIP_TOKEN 40

enum kind { KIND_DURATION, KIND_RATE, KIND_COUNTER, KIND_GAUGE };

/* Where a metric's figures come from in a struct snap. */
enum origin {
    FROM_HTTP_TIMING,
    FROM_ITERATION_NS,
    FROM_STEPS,
    FROM_HTTP_REQS,
    FROM_HTTP_FAILED,
    FROM_CHECKS,
    FROM_ITERATIONS,
    FROM_DROPPED,
    FROM_BYTES_SENT,
    FROM_BYTES_RECEIVED,
    FROM_VUS,
    FROM_VUS_MAX
};

enum tag { TAG_NAME, TAG_STEP, TAG_STATUS, TAG_CHECK, TAG_COUNT };

#define T_NAME (1u << TAG_NAME)
#define T_STEP (1u << TAG_STEP)
#define T_STATUS (1u << TAG_STATUS)
#define T_CHECK (1u << TAG_CHECK)

static const char *const tag_names[TAG_COUNT] = {"name", "step", "status",
                                                 "check"};

struct metric_def {
    const char *name;
    enum kind kind;
    enum origin origin;
    int timing;    /* FROM_HTTP_TIMING: an enum httpc_timing */
    unsigned tags; /* T_* it takes */
};

/* The HTTP timings come from httpc's own map so the names cannot drift. */
#define TIMING_METRIC(id, text)                                                \
    {text, KIND_DURATION, FROM_HTTP_TIMING, HTTPC_T_##id, T_NAME | T_STEP},

static const struct metric_def metric_defs[] = {
    HTTPC_TIMING_MAP(TIMING_METRIC){"iteration_duration", KIND_DURATION,
                                    FROM_ITERATION_NS, 0, 0},
    {"step_duration", KIND_DURATION, FROM_STEPS, 0, T_STEP},
    {"http_reqs", KIND_COUNTER, FROM_HTTP_REQS, 0, T_NAME | T_STEP | T_STATUS},
    {"http_req_failed", KIND_RATE, FROM_HTTP_FAILED, 0,
     T_NAME | T_STEP | T_STATUS},
    {"checks", KIND_RATE, FROM_CHECKS, 0, T_CHECK},
    {"iterations", KIND_COUNTER, FROM_ITERATIONS, 0, 0},
    {"dropped_iterations", KIND_COUNTER, FROM_DROPPED, 0, 0},
    {"data_sent", KIND_COUNTER, FROM_BYTES_SENT, 0, T_NAME | T_STEP},
    {"data_received", KIND_COUNTER, FROM_BYTES_RECEIVED, 0, T_NAME | T_STEP},
    {"vus", KIND_GAUGE, FROM_VUS, 0, 0},
    {"vus_max", KIND_GAUGE, FROM_VUS_MAX, 0, 0},
};

#undef TIMING_METRIC

#define N_METRICS (sizeof(metric_defs) / sizeof(metric_defs[0]))

enum agg {
    AGG_AVG,
    AGG_MIN,
    AGG_MAX,
    AGG_MED,
    AGG_P,
    AGG_COUNT,
    AGG_RATE,
    AGG_VALUE,
    AGG_N
};

static const char *const agg_names[AGG_N] = {"avg", "min",   "max",  "med",
                                             "p",   "count", "rate", "value"};

#define AGG_BIT(agg) (1u << (agg))

static const struct {
    const char *what; /* "a duration", for messages */
    unsigned aggs;
    const char *list; /* the aggregations it takes, for messages */
} kinds[] = {
    [KIND_DURATION] = {"a duration",
                       AGG_BIT(AGG_AVG) | AGG_BIT(AGG_MIN) | AGG_BIT(AGG_MAX) |
                           AGG_BIT(AGG_MED) | AGG_BIT(AGG_P) |
                           AGG_BIT(AGG_COUNT),
                       "avg, min, max, med, p(N) or count"},
    [KIND_RATE] = {"a rate", AGG_BIT(AGG_RATE), "rate"},
    [KIND_COUNTER] = {"a counter", AGG_BIT(AGG_COUNT) | AGG_BIT(AGG_RATE),
                      "count or rate"},
    [KIND_GAUGE] = {"a gauge", AGG_BIT(AGG_VALUE), "value"},
};

enum op { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE };

/* Two-character operators first, so "<=" is not read as "<". */
static const struct {
    const char *text;
    enum op op;
} ops[] = {
    {"<=", OP_LE}, {">=", OP_GE}, {"==", OP_EQ},
    {"!=", OP_NE}, {"<", OP_LT},  {">", OP_GT},
};

/* Duration units, as Go's time.ParseDuration spells them. */
static const struct {
    const char *text;
    double ns;
} units[] = {
    {"ns", 1},          {"us", 1e3}, {"\xc2\xb5s", 1e3}, /* U+00B5 MICRO SIGN */
    {"\xce\xbcs", 1e3}, /* U+03BC GREEK SMALL LETTER MU */
    {"ms", 1e6},        {"s", 1e9},  {"m", 60e9},        {"h", 3600e9},
};

#define UNITS_TEXT "ns, us, \xc2\xb5s, ms, s, m, h"

static const double pow10_table[DIGITS_MAX + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8, 1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

struct tag_sel {
    enum tag tag;
    char *value;
};

struct threshold {
    char *source;
    char *metric;    /* canonical: "http_req_duration{name:login}" */
    char *condition; /* canonical: "p(95)<300ms" */
    const struct metric_def *def;
    struct tag_sel tags[TAG_COUNT]; /* in the order given */
    size_t n_tags;
    const char *name;  /* tag values, borrowed from tags; NULL: any */
    const char *step;  /* "" selects requests made outside any step */
    const char *check; /* checks: one check by name */
    int status;        /* -1: any */
    enum agg agg;
    double percentile; /* AGG_P: 0 < percentile <= 100 */
    enum op op;
    double value; /* ns for a duration's time aggregations, else as is */
    bool abort_on_fail;
    int64_t abort_delay_ns;
};

struct parser {
    const char *s;
    size_t len;
    size_t i; /* where the scanner is */
    char *err;
    size_t errlen;
    struct threshold *t;
};

/* ---- messages ---- */

/* Appends s[0..n) to b quoted, escaped and cut after about cap bytes (at a
 * character boundary, with "..."), so a message stays one readable line
 * whatever the bytes. */
static void add_quoted(struct buf *b, const char *s, size_t n, size_t cap)
{
    size_t start = b->len;
    size_t i = 0;

    buf_addc(b, '"');
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);

        if (b->len - start >= cap) {
            buf_adds(b, "...");
            break;
        }
        if (c == '"' || c == '\\') {
            buf_addc(b, '\\');
            buf_addc(b, (char)c);
        } else if (c == '\t') {
            buf_adds(b, "\\t");
        } else if (c == '\n') {
            buf_adds(b, "\\n");
        } else if (c == '\r') {
            buf_adds(b, "\\r");
        } else if (k == 0 || c < 0x20 || c == 0x7f) {
            buf_addf(b, "\\x%02x", c);
            k = 1;
        } else {
            buf_add(b, s + i, k);
            i += k;
            continue;
        }
        i += k ? k : 1;
    }
    buf_addc(b, '"');
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The 1-based column of byte at, counted in characters: the text is valid
 * UTF-8 up to any place a message points at. */
static size_t col(const struct parser *p, size_t at)
{
    size_t n = 1;

    for (size_t i = 0; i < at && i < p->len; i++) {
        n += ((unsigned char)p->s[i] & 0xc0) != 0x80;
    }
    return n;
}

static int fail(const struct parser *p, const char *fmt, ...) MEM_PRINTF(2, 3);

/* Writes `threshold "TEXT": DETAIL` to the caller's err and returns
 * ST_INVALID, for `return fail(...)`. */
static int fail(const struct parser *p, const char *fmt, ...)
{
    struct buf b;
    char *detail;
    va_list ap;

    if (p->err == NULL || p->errlen == 0) {
        return ST_INVALID;
    }
    buf_init(&b, 0);
    buf_adds(&b, "threshold ");
    add_quoted(&b, p->s, p->len, SNIP_SOURCE);
    buf_adds(&b, ": ");
    va_start(ap, fmt);
    detail = mem_vprintf(fmt, ap);
    va_end(ap);
    buf_adds(&b, detail);
    snprintf(p->err, p->errlen, "%s", buf_str(&b));
    buf_cleanup(&b);
    free(detail);
    return ST_INVALID;
}

static int fail_at(const struct parser *p, size_t at, size_t n,
                   const char *what, const char *fmt, ...) MEM_PRINTF(5, 6);

/* `WHAT "TOKEN" at column N: DETAIL`, the token being the n bytes at at,
 * or up to the next space when n is 0; `unexpected end at column N:
 * DETAIL` when at is the end. */
static int fail_at(const struct parser *p, size_t at, size_t n,
                   const char *what, const char *fmt, ...)
{
    struct buf tok;
    char *detail;
    va_list ap;
    int rc;

    if (p->err == NULL || p->errlen == 0) {
        return ST_INVALID;
    }
    va_start(ap, fmt);
    detail = mem_vprintf(fmt, ap);
    va_end(ap);
    if (at >= p->len) {
        rc = fail(p, "unexpected end at column %zu: %s", col(p, at), detail);
        free(detail);
        return rc;
    }
    if (n == 0) {
        while (at + n < p->len && !is_space(p->s[at + n])) {
            n++;
        }
    }
    buf_init(&tok, 0);
    add_quoted(&tok, p->s + at, n, SNIP_TOKEN);
    rc = fail(p, "%s %s at column %zu: %s", what, buf_str(&tok), col(p, at),
              detail);
    buf_cleanup(&tok);
    free(detail);
    return rc;
}

/* ---- scanning ---- */

static void skip_space(struct parser *p)
{
    while (p->i < p->len && is_space(p->s[p->i])) {
        p->i++;
    }
}

static bool is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static size_t ident_len(const struct parser *p, size_t at)
{
    size_t n = 0;

    while (at + n < p->len && is_ident(p->s[at + n])) {
        n++;
    }
    return n;
}

static bool word_is(const struct parser *p, size_t at, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(p->s + at, w, n) == 0;
}

/* A unit's letters: ASCII letters and '_' (so that abort_on_fail reads as
 * one word), and the two micro signs. */
static size_t unit_len(const struct parser *p, size_t at)
{
    size_t n = 0;

    for (;;) {
        const char *c = p->s + at + n;
        size_t left = p->len - at - n;

        if (left >= 1 && ((*c >= 'a' && *c <= 'z') ||
                          (*c >= 'A' && *c <= 'Z') || *c == '_')) {
            n++;
        } else if (left >= 2 && ((c[0] == '\xc2' && c[1] == '\xb5') ||
                                 (c[0] == '\xce' && c[1] == '\xbc'))) {
            n += 2;
        } else {
            return n;
        }
    }
}

/* Levenshtein distance of two short words, for "did you mean"; large for
 * long ones. */
static size_t distance(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    size_t row[40];

    if (an >= 40 || bn >= 40) {
        return SIZE_MAX;
    }
    for (size_t j = 0; j <= bn; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= an; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);

            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            diag = up;
            row[j] = best;
        }
    }
    return row[bn];
}

enum number_rc { NUMBER_OK, NUMBER_NONE, NUMBER_TOO_LONG };

/* Reads DIGITS[.DIGITS] at p->i into mant / 10^scale, exactly, and moves
 * past it. A sign, an exponent or a lone dot are not part of it. */
static enum number_rc scan_number(struct parser *p, uint64_t *mant, int *scale)
{
    const char *s = p->s;
    size_t i = p->i;
    uint64_t m = 0;
    int digits = 0;
    int sc = 0;
    bool frac = false;

    if (i >= p->len || !is_digit(s[i])) {
        return NUMBER_NONE;
    }
    for (; i < p->len; i++) {
        if (s[i] == '.' && !frac && i + 1 < p->len && is_digit(s[i + 1])) {
            frac = true;
            continue;
        }
        if (!is_digit(s[i])) {
            break;
        }
        if (m != 0 || s[i] != '0') {
            digits++;
        }
        sc += frac;
        if (digits > DIGITS_MAX || sc > DIGITS_MAX) {
            return NUMBER_TOO_LONG;
        }
        m = m * 10 + (uint64_t)(s[i] - '0');
    }
    p->i = i;
    *mant = m;
    *scale = sc;
    return NUMBER_OK;
}

/* mant / 10^scale in units of unit: one rounding only while mant * unit
 * stays below 2^53, so 0.0015s is exactly 1500000 ns. */
static double number_value(uint64_t mant, int scale, double unit)
{
    return (double)mant * unit / pow10_table[scale];
}

enum amount { AMOUNT_PLAIN, AMOUNT_TIME, AMOUNT_DELAY };

static const char *const amount_expected[] = {
    [AMOUNT_PLAIN] = "expected a number >= 0, such as 0.01 or 100",
    [AMOUNT_TIME] =
        "expected a duration such as 300ms or 1.5s (units " UNITS_TEXT
        "; a bare number is ms)",
    [AMOUNT_DELAY] = "expected a duration with a unit, such as 10s or 1m30s "
                     "(units " UNITS_TEXT ")",
};

/* Reads the value of a condition or of abort_on_fail=: a plain number, or
 * for durations NUMBER[UNIT] and sequences like 1m30s (every part with a
 * unit; a lone bare number is ms for AMOUNT_TIME and refused for
 * AMOUNT_DELAY). Whitespace may come between a number and its unit.
 * Stores the value (ns for durations) in *out and its text without the
 * whitespace in *text, owned by the caller. what names it in messages. */
static int scan_amount(struct parser *p, enum amount kind, const char *what,
                       double *out, char **text)
{
    size_t at = p->i;
    double sum = 0;
    int parts = 0;
    struct buf b;

    for (;;) {
        uint64_t mant = 0;
        int scale = 0;
        enum number_rc rc = scan_number(p, &mant, &scale);
        size_t u;
        size_t n;
        size_t k;

        if (rc == NUMBER_TOO_LONG) {
            return fail_at(p, at, 0, what, "too many digits (at most %d)",
                           DIGITS_MAX);
        }
        if (rc == NUMBER_NONE) {
            return fail_at(p, at, 0, what, "%s", amount_expected[kind]);
        }
        u = p->i;
        while (u < p->len && is_space(p->s[u])) {
            u++;
        }
        n = unit_len(p, u);
        if (kind == AMOUNT_PLAIN && u != p->i) {
            n = 0; /* "rate<0.01 foo": foo is no unit but what follows */
        }
        if (n == 0 || word_is(p, u, n, "abort_on_fail")) {
            if (kind == AMOUNT_DELAY || (kind == AMOUNT_TIME && parts > 0)) {
                return fail_at(p, at, 0, what, "%s", amount_expected[kind]);
            }
            sum =
                number_value(mant, scale, kind == AMOUNT_TIME ? NS_PER_MS : 1);
            break;
        }
        if (kind == AMOUNT_PLAIN) {
            return fail_at(p, at, 0, what,
                           "%s takes a plain number, without a unit",
                           p->t->agg == AGG_COUNT  ? "a count"
                           : p->t->agg == AGG_RATE ? "a rate"
                                                   : "a value");
        }
        for (k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
            if (word_is(p, u, n, units[k].text)) {
                break;
            }
        }
        if (k == sizeof(units) / sizeof(units[0])) {
            return fail_at(p, at, 0, what, "unknown unit \"%.*s\" (%s)", (int)n,
                           p->s + u, UNITS_TEXT);
        }
        sum += number_value(mant, scale, units[k].ns);
        parts++;
        p->i = u + n;
        if (p->i >= p->len || !is_digit(p->s[p->i])) {
            break;
        }
    }
    if (p->i < p->len && !is_space(p->s[p->i])) {
        return fail_at(p, at, 0, what, "%s", amount_expected[kind]);
    }
    buf_init(&b, 0);
    for (size_t i = at; i < p->i; i++) {
        if (!is_space(p->s[i])) {
            buf_addc(&b, p->s[i]);
        }
    }
    *out = sum;
    *text = buf_detach(&b);
    return 0;
}

/* ---- parsing ---- */

/* fail_at's token lengths besides a byte count. */
#define TOK_WORD 0            /* up to the next space */
#define TOK_CHAR ((size_t)-1) /* one character */

static size_t char_len(const struct parser *p, size_t at)
{
    size_t n = utf8_seq_len((const unsigned char *)p->s + at, p->len - at);

    return n ? n : 1;
}

static int unexpected(const struct parser *p, size_t n, const char *expected)
{
    if (n == TOK_CHAR) {
        n = p->i < p->len ? char_len(p, p->i) : 0;
    }
    return fail_at(p, p->i, n, "unexpected", "expected %s", expected);
}

static int parse_metric(struct parser *p)
{
    size_t at = p->i;
    size_t n = ident_len(p, at);
    size_t best_d = 3;
    const char *best = NULL;

    if (n == 0) {
        return unexpected(p, TOK_WORD,
                          "a metric name, such as http_req_duration");
    }
    for (size_t k = 0; k < N_METRICS; k++) {
        if (word_is(p, at, n, metric_defs[k].name)) {
            p->t->def = &metric_defs[k];
            p->i += n;
            return 0;
        }
    }
    /* All of a misspelt name ("http-reqs"), not only its first word. */
    while (at + n < p->len && !is_space(p->s[at + n]) && p->s[at + n] != '{' &&
           p->s[at + n] != ':') {
        n++;
    }
    for (size_t k = 0; k < N_METRICS; k++) {
        size_t d = distance(p->s + at, n, metric_defs[k].name);

        if (d < best_d) {
            best_d = d;
            best = metric_defs[k].name;
        }
    }
    if (best != NULL) {
        return fail_at(p, at, n, "unknown metric", "did you mean %s?", best);
    }
    return fail_at(p, at, n, "unknown metric",
                   "metrics are the http_req_* timings (http_req_duration, "
                   "...), iteration_duration, step_duration, http_reqs, "
                   "http_req_failed, checks, iterations, dropped_iterations, "
                   "data_sent, data_received, vus and vus_max");
}

/* "name, step or status" */
static char *tags_text(unsigned tags)
{
    struct buf b;
    int n = 0;
    int seen = 0;

    for (int k = 0; k < TAG_COUNT; k++) {
        n += (tags >> k) & 1u;
    }
    buf_init(&b, 0);
    for (int k = 0; k < TAG_COUNT; k++) {
        if (tags & (1u << k)) {
            seen++;
            buf_adds(&b, seen == 1 ? "" : seen == n ? " or " : ", ");
            buf_adds(&b, tag_names[k]);
        }
    }
    return buf_detach(&b);
}

static int tag_not_taken(const struct parser *p, size_t at, size_t n,
                         enum tag tag)
{
    const struct metric_def *def = p->t->def;
    char *list;
    int rc;

    if (tag == TAG_STATUS && def->kind == KIND_DURATION) {
        return fail_at(p, at, n, "tag",
                       "does not apply to %s: timings are kept per request "
                       "name and step, not per status code (status applies "
                       "to http_reqs and http_req_failed)",
                       def->name);
    }
    if (def->tags == 0) {
        return fail_at(p, at, n, "tag", "%s takes no tags", def->name);
    }
    list = tags_text(def->tags);
    rc = fail_at(p, at, n, "tag", "does not apply to %s, which takes %s",
                 def->name, list);
    free(list);
    return rc;
}

/* Reads a tag's value: "quoted" (with \" and \\) or raw up to ',' or '}',
 * spaces around it dropped. Sets *span to its length in the text. */
static int parse_tag_value(struct parser *p, size_t open, enum tag tag,
                           char **out, size_t *span)
{
    size_t at = p->i;
    struct buf b;

    buf_init(&b, 0);
    if (at < p->len && p->s[at] == '"') {
        for (p->i++;; p->i++) {
            char c = p->i < p->len ? p->s[p->i] : '\0';

            if (p->i >= p->len) {
                buf_cleanup(&b);
                return fail(p, "unterminated quoted value at column %zu",
                            col(p, at));
            }
            if (c == '"') {
                p->i++;
                break;
            }
            if (c == '\\') {
                char e = p->i + 1 < p->len ? p->s[p->i + 1] : '\0';

                if (e != '"' && e != '\\') {
                    buf_cleanup(&b);
                    return fail_at(p, p->i, e ? 1 + char_len(p, p->i + 1) : 1,
                                   "unknown escape",
                                   "only \\\" and \\\\ are escapes in a "
                                   "quoted value");
                }
                c = e;
                p->i++;
            }
            buf_addc(&b, c);
        }
        *span = p->i - at;
    } else {
        size_t end;

        while (p->i < p->len && p->s[p->i] != ',' && p->s[p->i] != '}') {
            p->i++;
        }
        if (p->i >= p->len) {
            buf_cleanup(&b);
            return fail(p, "missing '}' to close the tags opened at column %zu",
                        col(p, open));
        }
        end = p->i;
        while (end > at && is_space(p->s[end - 1])) {
            end--;
        }
        buf_add(&b, p->s + at, end - at);
        *span = end - at;
    }
    if (b.len == 0 && tag != TAG_STEP) {
        buf_cleanup(&b);
        return fail(p, "empty value for tag %s at column %zu", tag_names[tag],
                    col(p, at));
    }
    *out = buf_detach(&b);
    return 0;
}

/* An HTTP status code as http_reqs counts them: 100..599, or 0 for
 * requests that got none (and codes past 599). */
static int parse_status(const char *v)
{
    size_t n = strlen(v);
    int code = 0;

    if (n == 0 || n > 3) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(v[i])) {
            return -1;
        }
        code = code * 10 + (v[i] - '0');
    }
    return code == 0 || (code >= 100 && code < HTTPC_STATUS_SLOTS) ? code : -1;
}

static int parse_tags(struct parser *p)
{
    struct threshold *t = p->t;
    size_t open = p->i;

    for (p->i++;;) {
        size_t at;
        size_t n;
        size_t span = 0;
        int tag;
        char *value = NULL;
        int rc;

        skip_space(p);
        at = p->i;
        n = ident_len(p, at);
        if (n == 0) {
            return unexpected(p, TOK_CHAR,
                              "a tag name: name, step, status or check");
        }
        for (tag = 0; tag < TAG_COUNT; tag++) {
            if (word_is(p, at, n, tag_names[tag])) {
                break;
            }
        }
        if (tag == TAG_COUNT) {
            return fail_at(p, at, n, "unknown tag",
                           "tags are name, step, status and check");
        }
        if (!(t->def->tags & (1u << tag))) {
            return tag_not_taken(p, at, n, (enum tag)tag);
        }
        for (size_t k = 0; k < t->n_tags; k++) {
            if (t->tags[k].tag == (enum tag)tag) {
                return fail_at(p, at, n, "tag", "given twice");
            }
        }
        p->i += n;
        skip_space(p);
        if (p->i >= p->len || p->s[p->i] != ':') {
            return unexpected(p, TOK_CHAR, "':' after the tag name");
        }
        p->i++;
        skip_space(p);
        at = p->i;
        rc = parse_tag_value(p, open, (enum tag)tag, &value, &span);
        if (rc != 0) {
            return rc;
        }
        /* Owned by t from here, so that every path below frees it. */
        t->tags[t->n_tags++] = (struct tag_sel){(enum tag)tag, value};
        switch ((enum tag)tag) {
        case TAG_NAME:
            t->name = value;
            break;
        case TAG_STEP:
            t->step = value;
            break;
        case TAG_CHECK:
            t->check = value;
            break;
        case TAG_STATUS:
            t->status = parse_status(value);
            if (t->status < 0) {
                return fail_at(p, at, span ? span : TOK_WORD, "bad status",
                               "expected an HTTP status code, 100..599, or 0 "
                               "for requests that got none");
            }
            break;
        case TAG_COUNT:
            break;
        }
        skip_space(p);
        if (p->i >= p->len) {
            return fail(p, "missing '}' to close the tags opened at column %zu",
                        col(p, open));
        }
        if (p->s[p->i] == '}') {
            p->i++;
            return 0;
        }
        if (p->s[p->i] != ',') {
            return unexpected(p, TOK_CHAR, "',' or '}' after a tag's value");
        }
        p->i++;
    }
}

static int parse_percentile(struct parser *p, struct buf *cond)
{
    size_t at;
    uint64_t mant = 0;
    uint64_t hundred = 100;
    int scale = 0;
    enum number_rc rc;

    skip_space(p);
    if (p->i >= p->len || p->s[p->i] != '(') {
        return unexpected(p, TOK_CHAR, "'(' after p, as in p(95)");
    }
    p->i++;
    skip_space(p);
    at = p->i;
    rc = scan_number(p, &mant, &scale);
    if (rc != NUMBER_OK) {
        return fail_at(p, at, TOK_WORD, "bad percentile",
                       "expected a number above 0 and at most 100, as in "
                       "p(99.9)");
    }
    for (int k = 0; k < scale && hundred <= UINT64_MAX / 10; k++) {
        hundred *= 10;
    }
    if (mant == 0 || mant > hundred) {
        return fail_at(p, at, p->i - at, "percentile",
                       "must be above 0 and at most 100");
    }
    p->t->percentile = number_value(mant, scale, 1);
    buf_addf(cond, "(%.*s)", (int)(p->i - at), p->s + at);
    skip_space(p);
    if (p->i >= p->len || p->s[p->i] != ')') {
        return unexpected(p, TOK_CHAR, "')' to close p(");
    }
    p->i++;
    return 0;
}

/* AGG OP VALUE, into t and its canonical text into cond. */
static int parse_condition(struct parser *p, struct buf *cond)
{
    struct threshold *t = p->t;
    const struct metric_def *def = t->def;
    size_t at = p->i;
    size_t n = ident_len(p, at);
    int agg;
    size_t k;
    char *text = NULL;
    int rc;

    if (n == 0) {
        return fail_at(p, at, TOK_WORD, "unexpected",
                       "expected an aggregation: %s, %s, takes %s", def->name,
                       kinds[def->kind].what, kinds[def->kind].list);
    }
    for (agg = 0; agg < AGG_N; agg++) {
        if (word_is(p, at, n, agg_names[agg])) {
            break;
        }
    }
    if (agg == AGG_N && n > 1 && p->s[at] == 'p' && is_digit(p->s[at + 1])) {
        return fail_at(p, at, n, "unknown aggregation",
                       "write a percentile as p(N), as in p(95)");
    }
    if (agg == AGG_N) {
        return fail_at(p, at, n, "unknown aggregation", "%s, %s, takes %s",
                       def->name, kinds[def->kind].what, kinds[def->kind].list);
    }
    if (!(kinds[def->kind].aggs & AGG_BIT(agg))) {
        return fail_at(p, at, n, "aggregation",
                       "does not apply to %s, %s, which takes %s", def->name,
                       kinds[def->kind].what, kinds[def->kind].list);
    }
    t->agg = (enum agg)agg;
    p->i += n;
    buf_adds(cond, agg_names[agg]);
    if (t->agg == AGG_P && (rc = parse_percentile(p, cond)) != 0) {
        return rc;
    }
    skip_space(p);
    for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        size_t len = strlen(ops[k].text);

        if (p->len - p->i >= len &&
            memcmp(p->s + p->i, ops[k].text, len) == 0) {
            break;
        }
    }
    if (k == sizeof(ops) / sizeof(ops[0])) {
        return unexpected(p, TOK_WORD, "an operator: <, <=, >, >=, == or !=");
    }
    t->op = ops[k].op;
    p->i += strlen(ops[k].text);
    buf_adds(cond, ops[k].text);
    skip_space(p);
    rc = scan_amount(p,
                     def->kind == KIND_DURATION && t->agg != AGG_COUNT
                         ? AMOUNT_TIME
                         : AMOUNT_PLAIN,
                     "bad value", &t->value, &text);
    if (rc != 0) {
        return rc;
    }
    buf_adds(cond, text);
    free(text);
    return 0;
}

/* [abort_on_fail[=DELAY]] and the end. */
static int parse_abort(struct parser *p)
{
    struct threshold *t = p->t;
    size_t at = p->i;
    size_t n = ident_len(p, at);

    if (at >= p->len) {
        return 0;
    }
    if (!word_is(p, at, n, "abort_on_fail")) {
        return unexpected(p, TOK_WORD, "abort_on_fail or the end");
    }
    t->abort_on_fail = true;
    p->i += n;
    skip_space(p);
    if (p->i < p->len && p->s[p->i] == '=') {
        double ns = 0;
        char *text = NULL;
        int rc;

        p->i++;
        skip_space(p);
        at = p->i;
        rc =
            scan_amount(p, AMOUNT_DELAY, "bad abort_on_fail delay", &ns, &text);
        if (rc != 0) {
            return rc;
        }
        free(text);
        if (ns > DELAY_MAX_NS) {
            return fail_at(p, at, p->i - at, "abort_on_fail delay",
                           "is too long (at most 1e18 ns, about 31 "
                           "years)");
        }
        t->abort_delay_ns = (int64_t)(ns + 0.5);
        skip_space(p);
    }
    if (p->i < p->len) {
        return unexpected(p, TOK_WORD, "the end after abort_on_fail");
    }
    return 0;
}

/* Whether a tag value must be quoted to read back the same. */
static bool needs_quotes(const char *v)
{
    size_t n = strlen(v);

    return n == 0 || is_space(v[0]) || is_space(v[n - 1]) ||
           strpbrk(v, ",}\"\\") != NULL;
}

static char *canonical_metric(const struct threshold *t)
{
    struct buf b;

    buf_init(&b, 0);
    buf_adds(&b, t->def->name);
    for (size_t k = 0; k < t->n_tags; k++) {
        const char *v = t->tags[k].value;

        buf_addc(&b, k == 0 ? '{' : ',');
        buf_adds(&b, tag_names[t->tags[k].tag]);
        buf_addc(&b, ':');
        if (!needs_quotes(v)) {
            buf_adds(&b, v);
            continue;
        }
        buf_addc(&b, '"');
        for (; *v; v++) {
            if (*v == '"' || *v == '\\') {
                buf_addc(&b, '\\');
            }
            buf_addc(&b, *v);
        }
        buf_addc(&b, '"');
    }
    if (t->n_tags > 0) {
        buf_addc(&b, '}');
    }
    return buf_detach(&b);
}

/* Refuses what no part of the grammar takes anywhere: invalid UTF-8 and
 * control characters other than the spaces. Columns count characters
 * from here on. */
static int check_bytes(const struct parser *p)
{
    for (size_t i = 0; i < p->len;) {
        unsigned char c = (unsigned char)p->s[i];
        size_t n = utf8_seq_len((const unsigned char *)p->s + i, p->len - i);

        if ((c < 0x20 && !is_space((char)c)) || c == 0x7f) {
            return fail(p, "control character 0x%02x at column %zu", c,
                        col(p, i));
        }
        if (n == 0) {
            return fail(p, "invalid UTF-8 at column %zu", col(p, i));
        }
        i += n;
    }
    return 0;
}

int threshold_parse(const char *text, struct threshold **out, char *err,
                    size_t errlen)
{
    struct parser p = {.s = "", .err = err, .errlen = errlen};
    struct threshold *t = NULL;
    struct buf cond;
    int rc;

    buf_init(&cond, 0);
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (text == NULL || out == NULL) {
        return fail(&p, "no threshold text or no place for the result");
    }
    p.s = text;
    p.len = strnlen(text, THRESHOLD_TEXT_MAX + 1);
    if (p.len > THRESHOLD_TEXT_MAX) {
        return fail(&p, "longer than %d bytes", THRESHOLD_TEXT_MAX);
    }
    rc = check_bytes(&p);
    if (rc != 0) {
        return rc;
    }
    t = mem_zalloc(sizeof(*t));
    t->status = -1;
    p.t = t;
    skip_space(&p);
    if (p.i >= p.len) {
        rc = fail(&p, "empty: expected METRIC: AGG OP VALUE, as in "
                      "\"http_req_failed: rate<0.01\"");
        goto fail;
    }
    rc = parse_metric(&p);
    if (rc != 0) {
        goto fail;
    }
    skip_space(&p);
    if (p.i < p.len && p.s[p.i] == '{' && (rc = parse_tags(&p)) != 0) {
        goto fail;
    }
    skip_space(&p);
    if (p.i >= p.len || p.s[p.i] != ':') {
        rc = unexpected(&p, TOK_WORD,
                        t->n_tags > 0
                            ? "':' between the metric and its condition"
                            : "'{' or ':' after the metric name");
        goto fail;
    }
    p.i++;
    skip_space(&p);
    rc = parse_condition(&p, &cond);
    if (rc != 0) {
        goto fail;
    }
    skip_space(&p);
    rc = parse_abort(&p);
    if (rc != 0) {
        goto fail;
    }
    t->source = mem_strdup(text);
    t->metric = canonical_metric(t);
    t->condition = buf_detach(&cond);
    *out = t;
    return 0;

fail:
    buf_cleanup(&cond);
    threshold_free(t);
    return rc;
}

void threshold_free(struct threshold *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t k = 0; k < t->n_tags; k++) {
        free(t->tags[k].value);
    }
    free(t->source);
    free(t->metric);
    free(t->condition);
    free(t);
}

const char *threshold_source(const struct threshold *t)
{
    return t->source;
}

const char *threshold_metric(const struct threshold *t)
{
    return t->metric;
}

const char *threshold_condition(const struct threshold *t)
{
    return t->condition;
}

bool threshold_abort_on_fail(const struct threshold *t)
{
    return t->abort_on_fail;
}

int64_t threshold_abort_delay_ns(const struct threshold *t)
{
    return t->abort_delay_ns;
}

/* ---- evaluation ---- */

static bool stats_match(const struct threshold *t, const struct httpc_stats *s)
{
    return (t->name == NULL || strcmp(s->name, t->name) == 0) &&
           (t->step == NULL ||
            strcmp(s->step != NULL ? s->step : "", t->step) == 0);
}

/* The merge of the matching histograms: borrowed while only one has
 * samples, a copy once a second one does. */
struct merged {
    const struct hist *h; /* NULL: no samples */
    struct hist *own;
};

static void merged_add(struct merged *m, const struct hist *h)
{
    if (h == NULL || hist_count(h) == 0) {
        return;
    }
    if (m->h == NULL) {
        m->h = h;
        return;
    }
    if (m->own == NULL) {
        m->own = hist_copy(m->h);
        m->h = m->own;
    }
    /* A snap's histograms share one configuration (snap_new), and counts
     * stay far below 2^64: cannot fail. */
    if (hist_merge(m->own, h) != 0) {
        abort();
    }
}

static void merge_durations(const struct threshold *t, const struct snap *m,
                            struct merged *out)
{
    size_t n;

    switch (t->def->origin) {
    case FROM_HTTP_TIMING:
        n = m->http != NULL ? httpc_metrics_count(m->http) : 0;
        for (size_t i = 0; i < n; i++) {
            const struct httpc_stats *s = httpc_metrics_at(m->http, i);

            if (stats_match(t, s)) {
                merged_add(out, s->timings[t->def->timing]);
            }
        }
        break;
    case FROM_ITERATION_NS:
        merged_add(out, m->iteration_ns);
        break;
    case FROM_STEPS:
        for (size_t i = 0; i < m->n_steps; i++) {
            if (t->step == NULL || strcmp(m->steps[i].name, t->step) == 0) {
                merged_add(out, m->steps[i].duration_ns);
            }
        }
        break;
    default:
        break;
    }
}

struct http_sums {
    uint64_t requests;
    uint64_t failed;
    uint64_t sent;
    uint64_t received;
};

static struct http_sums sum_http(const struct threshold *t,
                                 const struct snap *m)
{
    struct http_sums sums = {0, 0, 0, 0};
    size_t n = m->http != NULL ? httpc_metrics_count(m->http) : 0;

    for (size_t i = 0; i < n; i++) {
        const struct httpc_stats *s = httpc_metrics_at(m->http, i);

        if (!stats_match(t, s)) {
            continue;
        }
        if (t->status >= 0) {
            uint64_t c = s->status[t->status];

            /* A request with a status failed by that status alone: a
             * status means no error, and 0 means no status. */
            sums.requests += c;
            sums.failed += t->status >= 200 && t->status <= 399 ? 0 : c;
        } else {
            sums.requests += s->requests;
            sums.failed += s->failed;
        }
        sums.sent += s->bytes_sent;
        sums.received += s->bytes_received;
    }
    return sums;
}

static void sum_checks(const struct threshold *t, const struct snap *m,
                       uint64_t *passes, uint64_t *fails)
{
    for (size_t i = 0; i < m->n_checks; i++) {
        if (t->check == NULL || strcmp(m->checks[i].name, t->check) == 0) {
            *passes += m->checks[i].passes;
            *fails += m->checks[i].fails;
        }
    }
}

static uint64_t counter(const struct threshold *t, const struct snap *m)
{
    switch (t->def->origin) {
    case FROM_HTTP_REQS:
        return sum_http(t, m).requests;
    case FROM_BYTES_SENT:
        return sum_http(t, m).sent;
    case FROM_BYTES_RECEIVED:
        return sum_http(t, m).received;
    case FROM_ITERATIONS:
        return m->iterations;
    case FROM_DROPPED:
        return m->dropped;
    default:
        return 0;
    }
}

static bool compare(enum op op, double x, double v)
{
    switch (op) {
    case OP_LT:
        return x < v;
    case OP_LE:
        return x <= v;
    case OP_GT:
        return x > v;
    case OP_GE:
        return x >= v;
    case OP_EQ:
        return x == v;
    case OP_NE:
        return x != v;
    }
    return false;
}

/* The figure of a duration's aggregation, in ns (a count for count). */
static double duration_figure(const struct threshold *t, const struct hist *h)
{
    switch (t->agg) {
    case AGG_AVG:
        return hist_mean(h);
    case AGG_MIN:
        return (double)hist_min(h);
    case AGG_MAX:
        return (double)hist_max(h);
    case AGG_MED:
        return (double)hist_value_at_percentile(h, 50);
    case AGG_P:
        return (double)hist_value_at_percentile(h, t->percentile);
    default:
        return (double)hist_count(h);
    }
}

struct threshold_eval threshold_evaluate(const struct threshold *t,
                                         const struct snap *m,
                                         int64_t elapsed_ns)
{
    struct threshold_eval ev = {.passed = true, .has_data = false};
    struct merged merged = {NULL, NULL};
    uint64_t hits = 0; /* of a rate: passes, or failed requests */
    uint64_t fails = 0;
    uint64_t total = 0;
    struct http_sums sums;
    double x = 0;

    switch (t->def->kind) {
    case KIND_DURATION:
        merge_durations(t, m, &merged);
        if (t->agg == AGG_COUNT) {
            x = merged.h != NULL ? (double)hist_count(merged.h) : 0;
            ev.observed = x;
            ev.has_data = true;
        } else if (merged.h != NULL) {
            x = duration_figure(t, merged.h);
            ev.observed = x / NS_PER_MS;
            ev.has_data = true;
        }
        hist_free(merged.own);
        break;
    case KIND_RATE:
        if (t->def->origin == FROM_CHECKS) {
            sum_checks(t, m, &hits, &fails);
            total = hits + fails;
        } else {
            sums = sum_http(t, m);
            hits = sums.failed;
            total = sums.requests;
        }
        if (total > 0) {
            x = (double)hits / (double)total;
            ev.observed = x;
            ev.has_data = true;
        }
        break;
    case KIND_COUNTER:
        x = (double)counter(t, m);
        if (t->agg == AGG_RATE) {
            x = elapsed_ns > 0 ? x / ((double)elapsed_ns / NS_PER_S) : 0;
        }
        ev.observed = x;
        ev.has_data = t->agg == AGG_COUNT || elapsed_ns > 0;
        break;
    case KIND_GAUGE:
        x = t->def->origin == FROM_VUS ? m->vus : m->vus_max;
        ev.observed = x;
        ev.has_data = true;
        break;
    }
    if (ev.has_data) {
        ev.passed = compare(t->op, x, t->value);
    }
    return ev;
}
