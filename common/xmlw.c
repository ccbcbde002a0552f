/* XML and HTML escaping (see xmlw.h). */
#include "xmlw.h"

#include <string.h>

#include "utf8.h"

void xmlw_escape(struct buf *b, const char *s, size_t n, bool attr)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        size_t len;

        if (c >= 0x80) {
            len = utf8_seq_len(p + i, n - i);
            if (len == 0) {
                buf_adds(b, "\xEF\xBF\xBD");
                i++;
            } else if (len == 3 && c == 0xEF && p[i + 1] == 0xBF &&
                       (p[i + 2] == 0xBE || p[i + 2] == 0xBF)) {
                buf_adds(b, "\xEF\xBF\xBD");
                i += 3;
            } else {
                buf_add(b, s + i, len);
                i += len;
            }
            continue;
        }
        switch (c) {
        case '&':
            buf_adds(b, "&amp;");
            break;
        case '<':
            buf_adds(b, "&lt;");
            break;
        case '>':
            buf_adds(b, "&gt;");
            break;
        case '"':
            buf_adds(b, "&quot;");
            break;
        case '\'':
            buf_adds(b, "&apos;");
            break;
        case '\n':
            buf_adds(b, attr ? "&#10;" : "\n");
            break;
        case '\r':
            buf_adds(b, "&#13;");
            break;
        case '\t':
            buf_adds(b, attr ? "&#9;" : "\t");
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                buf_addf(b, "\\x%02x", c);
            } else {
                buf_addc(b, (char)c);
            }
        }
        i++;
    }
}

void xmlw_attr(struct buf *b, const char *s)
{
    if (s) {
        xmlw_escape(b, s, strlen(s), true);
    }
}

void xmlw_text(struct buf *b, const char *s)
{
    if (s) {
        xmlw_escape(b, s, strlen(s), false);
    }
}
