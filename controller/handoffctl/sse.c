/* Server-Sent Events parsing, as the WHATWG HTML standard's "event stream
 * interpretation" describes it, minus what a client of one known server
 * does not need (the retry field is ignored). */
#include "sse.h"

#include <string.h>

#define SSE_DEFAULT_MAX_LINE ((size_t)1 << 20)
#define SSE_MAX_TYPE 256

void sse_init(struct sse *p, size_t max_line)
{
    memset(p, 0, sizeof(*p));
    p->max_line = max_line ? max_line : SSE_DEFAULT_MAX_LINE;
    buf_init(&p->line, p->max_line);
    buf_init(&p->data, p->max_line);
    buf_init(&p->type, SSE_MAX_TYPE);
    buf_init(&p->id, SSE_MAX_TYPE);
    p->first_line = true;
}

void sse_cleanup(struct sse *p)
{
    buf_cleanup(&p->line);
    buf_cleanup(&p->data);
    buf_cleanup(&p->type);
    buf_cleanup(&p->id);
}

static bool field_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

static int dispatch(struct sse *p, sse_event_fn fn, void *arg)
{
    int rc = 0;

    /* An event without data lines is not dispatched (the standard's rule),
     * and its type is forgotten. */
    if (p->data.len > 0) {
        p->data.len--; /* the newline after the last data line */
        p->data.data[p->data.len] = '\0';
        rc = fn(arg, p->type.len ? buf_str(&p->type) : "message",
                buf_str(&p->data), p->data.len, buf_str(&p->id));
    }
    buf_reset(&p->data);
    buf_reset(&p->type);
    return rc;
}

static int process_line(struct sse *p, sse_event_fn fn, void *arg)
{
    const char *line = p->line.data ? p->line.data : "";
    size_t len = p->line.len;
    const char *colon;
    const char *value;
    size_t name_len;
    size_t value_len;

    if (p->first_line) {
        p->first_line = false;
        if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3;
            len -= 3;
        }
    }
    if (len == 0) {
        return dispatch(p, fn, arg);
    }
    if (line[0] == ':') {
        return 0;
    }
    colon = memchr(line, ':', len);
    name_len = colon ? (size_t)(colon - line) : len;
    value = colon ? colon + 1 : line + len;
    value_len = len - (size_t)(value - line);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (field_is(line, name_len, "data")) {
        if (buf_append(&p->data, value, value_len) != ST_OK ||
            buf_putc(&p->data, '\n') != ST_OK) {
            p->broken = true;
        }
    } else if (field_is(line, name_len, "event")) {
        buf_reset(&p->type);
        if (buf_append(&p->type, value, value_len) != ST_OK) {
            p->broken = true;
        }
    } else if (field_is(line, name_len, "id") &&
               !memchr(value, '\0', value_len)) {
        buf_reset(&p->id);
        if (buf_append(&p->id, value, value_len) != ST_OK) {
            p->broken = true;
        }
    }
    return p->broken ? ST_TOO_LARGE : 0;
}

int sse_feed(struct sse *p, const char *bytes, size_t n, sse_event_fn fn,
             void *arg)
{
    size_t i = 0;
    int rc = 0;

    if (p->broken) {
        return ST_TOO_LARGE;
    }
    while (i < n && rc == 0) {
        size_t seg = 0;
        char c;

        if (p->after_cr && bytes[i] == '\n') {
            /* The second half of a "\r\n" split across feeds. */
            p->after_cr = false;
            i++;
            continue;
        }
        p->after_cr = false;
        while (i + seg < n && bytes[i + seg] != '\n' &&
               bytes[i + seg] != '\r') {
            seg++;
        }
        if (buf_append(&p->line, bytes + i, seg) != ST_OK) {
            p->broken = true;
            return ST_TOO_LARGE;
        }
        i += seg;
        if (i == n) {
            break;
        }
        c = bytes[i++];
        if (c == '\r') {
            if (i < n && bytes[i] == '\n') {
                i++;
            } else if (i == n) {
                p->after_cr = true;
            }
        }
        rc = process_line(p, fn, arg);
        buf_reset(&p->line);
    }
    return p->broken ? ST_TOO_LARGE : rc;
}
