/* Go-compatible JSON string and number writing (see jsonw.h). */
#include "jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

void jsonw_string(struct buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    buf_addc(b, '"');
    while (i < len) {
        unsigned char c = p[i];
        size_t n;

        if (c >= 0x80) {
            n = utf8_seq_len(p + i, len - i);
            if (n == 0) {
                /* Like Go: each byte that starts no valid sequence. */
                buf_adds(b, "\\ufffd");
                i++;
            } else if (n == 3 && c == 0xE2 && p[i + 1] == 0x80 &&
                       (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
                buf_adds(b, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
                i += 3;
            } else {
                buf_add(b, s + i, n);
                i += n;
            }
            continue;
        }
        switch (c) {
        case '"':
            buf_adds(b, "\\\"");
            break;
        case '\\':
            buf_adds(b, "\\\\");
            break;
        case '\b':
            buf_adds(b, "\\b");
            break;
        case '\f':
            buf_adds(b, "\\f");
            break;
        case '\n':
            buf_adds(b, "\\n");
            break;
        case '\r':
            buf_adds(b, "\\r");
            break;
        case '\t':
            buf_adds(b, "\\t");
            break;
        case '<':
        case '>':
        case '&':
            buf_adds(b, "\\u00");
            buf_addc(b, hex[c >> 4]);
            buf_addc(b, hex[c & 15]);
            break;
        default:
            if (c < 0x20) {
                buf_adds(b, "\\u00");
                buf_addc(b, hex[c >> 4]);
                buf_addc(b, hex[c & 15]);
            } else {
                buf_addc(b, (char)c);
            }
        }
        i++;
    }
    buf_addc(b, '"');
}

/* The fewest significant digits (1-17) with which "%.*e" reads back as v:
 * strconv's shortest representation, found by trying. *exp10 gets the
 * decimal exponent of that form. */
static int shortest_digits(double v, int *exp10)
{
    char tmp[40];
    int digits;

    for (digits = 1; digits < 17; digits++) {
        snprintf(tmp, sizeof(tmp), "%.*e", digits - 1, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    snprintf(tmp, sizeof(tmp), "%.*e", digits - 1, v);
    *exp10 = atoi(strchr(tmp, 'e') + 1);
    return digits;
}

void jsonw_float64(struct buf *b, double v)
{
    double a = fabs(v);
    int exp10;
    int digits;

    if (!isfinite(v)) {
        buf_addc(b, '0');
        return;
    }
    if (v == 0) {
        buf_adds(b, signbit(v) ? "-0" : "0");
        return;
    }
    digits = shortest_digits(v, &exp10);
    if (a < 1e-6 || a >= 1e21) {
        char tmp[40];
        char *e;

        /* Go: "1e-07" becomes "1e-7"; mantissa without trailing zeros. */
        snprintf(tmp, sizeof(tmp), "%.*e", digits - 1, v);
        e = strchr(tmp, 'e');
        buf_add(b, tmp, (size_t)(e - tmp));
        buf_addf(b, "e%c%d", exp10 < 0 ? '-' : '+', abs(exp10));
        return;
    }
    buf_addf(b, "%.*f", digits - 1 - exp10 > 0 ? digits - 1 - exp10 : 0, v);
}
