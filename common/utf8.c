/* UTF-8 validation (RFC 3629) and repair with U+FFFD. */
#include "utf8.h"

#include <string.h>

size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80;
    unsigned hi = 0xBF;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) {
            lo = 0xA0; /* no overlong forms */
        } else if (c == 0xED) {
            hi = 0x9F; /* no surrogates */
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F; /* nothing above U+10FFFF */
        }
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return len;
}

bool utf8_is_clean(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t len = p[i] ? utf8_seq_len(p + i, n - i) : 0;

        if (len == 0) {
            return false;
        }
        i += len;
    }
    return true;
}

void utf8_append_clean(struct buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the pending valid run */
    size_t i = 0;

    while (i < n) {
        size_t len = p[i] ? utf8_seq_len(p + i, n - i) : 0;

        if (len == 0) {
            buf_add(out, s + run, i - run);
            buf_add(out, "\xEF\xBF\xBD", 3);
            i++;
            run = i;
        } else {
            i += len;
        }
    }
    buf_add(out, s + run, n - run);
}

char *utf8_clean_dup(const char *s, size_t n)
{
    struct buf b;

    buf_init(&b, 0);
    utf8_append_clean(&b, s, n);
    return buf_detach(&b);
}

size_t utf8_append_printable(struct buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    size_t n = 0;

    while (left) {
        size_t len = utf8_seq_len(p, left);

        if (len == 0) {
            len = 1;
            buf_addc(out, '?');
        } else if (*p < 0x20 || *p == 0x7f ||
                   (len == 2 && p[0] == 0xC2 && p[1] <= 0x9F)) {
            buf_addc(out, '?');
        } else {
            buf_add(out, p, len);
        }
        p += len;
        left -= len;
        n++;
    }
    return n;
}
