/* Clocks, RFC 3339 timestamps and Go-style durations. */
#include "clock.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clock_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CLOCK_NS_PER_S + ts.tv_nsec;
}

int64_t clock_real_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * CLOCK_NS_PER_S + ts.tv_nsec;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

char *clock_format_rfc3339(int64_t unix_ns, enum clock_zone zone, int nano_trim,
                           char *out)
{
    time_t secs = (time_t)floor_div(unix_ns, CLOCK_NS_PER_S);
    long frac = (long)(unix_ns - (int64_t)secs * CLOCK_NS_PER_S);
    struct tm tm;
    char date[32];
    char fracs[16] = "";
    char offs[16] = "Z";
    size_t n;

    if (zone == CLOCK_LOCAL) {
        localtime_r(&secs, &tm);
    } else {
        gmtime_r(&secs, &tm);
    }
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    if (nano_trim) {
        if (frac) {
            snprintf(fracs, sizeof(fracs), ".%09ld", frac);
            n = strlen(fracs);
            while (n > 1 && fracs[n - 1] == '0') {
                fracs[--n] = '\0';
            }
        }
    } else {
        snprintf(fracs, sizeof(fracs), ".%03ld", frac / 1000000);
    }
    if (zone == CLOCK_LOCAL && tm.tm_gmtoff != 0) {
        int off = (int)(tm.tm_gmtoff / 60) % (24 * 60);
        char sign = off < 0 ? '-' : '+';

        if (off < 0) {
            off = -off;
        }
        snprintf(offs, sizeof(offs), "%c%02d:%02d", sign, off / 60, off % 60);
    }
    snprintf(out, CLOCK_RFC3339_LEN, "%.19s%.10s%.6s", date, fracs, offs);
    return out;
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) {
            return ST_INVALID;
        }
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return ST_OK;
}

static int expect_char(const char **p, char c)
{
    if (**p != c) {
        return ST_INVALID;
    }
    (*p)++;
    return ST_OK;
}

int clock_parse_rfc3339(const char *s, int64_t *out_unix_ns)
{
    const char *p = s;
    int year, mon, day, hour, min, sec;
    int64_t frac_ns = 0;
    int64_t off_s = 0;
    struct tm tm;
    time_t t;

    if (parse_digits(&p, 4, &year) || expect_char(&p, '-') ||
        parse_digits(&p, 2, &mon) || expect_char(&p, '-') ||
        parse_digits(&p, 2, &day)) {
        return ST_INVALID;
    }
    if (*p != 'T' && *p != 't' && *p != ' ') {
        return ST_INVALID;
    }
    p++;
    if (parse_digits(&p, 2, &hour) || expect_char(&p, ':') ||
        parse_digits(&p, 2, &min) || expect_char(&p, ':') ||
        parse_digits(&p, 2, &sec)) {
        return ST_INVALID;
    }
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
        sec > 60) {
        return ST_INVALID;
    }
    if (*p == '.') {
        int64_t scale = CLOCK_NS_PER_S / 10;

        p++;
        if (!isdigit((unsigned char)*p)) {
            return ST_INVALID;
        }
        while (isdigit((unsigned char)*p)) {
            frac_ns += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;

        p++;
        if (parse_digits(&p, 2, &oh) || expect_char(&p, ':') ||
            parse_digits(&p, 2, &om) || oh > 23 || om > 59) {
            return ST_INVALID;
        }
        off_s = sign * (oh * 3600 + om * 60);
    } else {
        return ST_INVALID;
    }
    if (*p != '\0') {
        return ST_INVALID;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (tm.tm_mday != day) {
        return ST_INVALID; /* 31 April and the like were normalised */
    }
    *out_unix_ns = ((int64_t)t - off_s) * CLOCK_NS_PER_S + frac_ns;
    return ST_OK;
}

struct duration_unit {
    const char *name;
    int64_t ns;
};

static const struct duration_unit duration_units[] = {
    {"ns", 1},
    {"us", CLOCK_NS_PER_US},
    {"\xc2\xb5s", CLOCK_NS_PER_US}, /* µs, as Go accepts */
    {"ms", CLOCK_NS_PER_MS},
    {"s", CLOCK_NS_PER_S},
    {"m", 60 * CLOCK_NS_PER_S},
    {"h", 3600 * CLOCK_NS_PER_S},
};

int clock_parse_duration(const char *s, int64_t *out_ns)
{
    const char *p = s;
    int64_t total = 0;

    if (!s || !*s) {
        return ST_INVALID;
    }
    if (strcmp(s, "0") == 0) {
        *out_ns = 0;
        return ST_OK;
    }
    while (*p) {
        int64_t whole = 0;
        double frac = 0;
        double scale = 0.1;
        int digits = 0;
        const struct duration_unit *unit = NULL;
        size_t best = 0;
        int64_t part;

        while (isdigit((unsigned char)*p)) {
            if (whole > (INT64_MAX - 9) / 10) {
                return ST_INVALID;
            }
            whole = whole * 10 + (*p - '0');
            p++;
            digits++;
        }
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p)) {
                frac += (*p - '0') * scale;
                scale /= 10;
                p++;
                digits++;
            }
        }
        if (digits == 0) {
            return ST_INVALID;
        }
        for (size_t i = 0;
             i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
            size_t n = strlen(duration_units[i].name);

            if (strncmp(p, duration_units[i].name, n) == 0 && n > best) {
                unit = &duration_units[i];
                best = n;
            }
        }
        if (!unit) {
            return ST_INVALID;
        }
        p += best;
        if (whole > INT64_MAX / unit->ns) {
            return ST_INVALID;
        }
        part = whole * unit->ns + (int64_t)(frac * (double)unit->ns + 0.5);
        if (part < 0 || total > INT64_MAX - part) {
            return ST_INVALID;
        }
        total += part;
    }
    *out_ns = total;
    return ST_OK;
}

char *clock_format_duration(int64_t ns, char *out, size_t outlen)
{
    int64_t h, m;
    double s;

    if (ns == 0) {
        snprintf(out, outlen, "0s");
    } else if (ns < CLOCK_NS_PER_US) {
        snprintf(out, outlen, "%" PRId64 "ns", ns);
    } else if (ns < CLOCK_NS_PER_MS) {
        snprintf(out, outlen, "%gus", (double)ns / CLOCK_NS_PER_US);
    } else if (ns < CLOCK_NS_PER_S) {
        snprintf(out, outlen, "%gms", (double)ns / CLOCK_NS_PER_MS);
    } else {
        h = ns / (3600 * CLOCK_NS_PER_S);
        m = (ns / (60 * CLOCK_NS_PER_S)) % 60;
        s = (double)(ns % (60 * CLOCK_NS_PER_S)) / CLOCK_NS_PER_S;
        if (h) {
            snprintf(out, outlen, "%" PRId64 "h%" PRId64 "m%gs", h, m, s);
        } else if (m) {
            snprintf(out, outlen, "%" PRId64 "m%gs", m, s);
        } else {
            snprintf(out, outlen, "%gs", s);
        }
    }
    return out;
}
