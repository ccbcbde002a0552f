/* sse: a parser for Server-Sent Events (the WHATWG text/event-stream
 * format), fed bytes as they arrive. No I/O here; lines and event data have
 * a hard cap because the bytes come from the network. */
#ifndef HANDOFF_SSE_H
#define HANDOFF_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "status.h"

/* Called once per complete event. type is the "event:" field ("message"
 * when the event had none); data is the joined "data:" lines without the
 * last newline (NUL-terminated, data_len bytes, may hold NULs); id is the
 * last "id:" seen in the stream ("" if none). All borrowed for the call.
 * Returns 0 to go on; any other value stops sse_feed, which returns it. */
typedef int (*sse_event_fn)(void *arg, const char *type, const char *data,
                            size_t data_len, const char *id);

struct sse {
    struct buf line; /* the line being read */
    struct buf data; /* data of the event being read */
    struct buf type; /* event type of the event being read */
    struct buf id;   /* last event id */
    bool after_cr;   /* the last byte fed was '\r' */
    bool first_line; /* a BOM may still come */
    bool broken;     /* a cap was exceeded: feeds fail */
    size_t max_line; /* bytes per line and per event's data */
};

/* Prepares caller storage; max_line 0 means 1 MiB. */
void sse_init(struct sse *p, size_t max_line);
void sse_cleanup(struct sse *p);

/* Parses n more bytes of the stream and calls fn for each event they
 * complete. Lines may end in "\r\n", "\n" or "\r", split anywhere across
 * feeds; comment lines (":...", keep-alives) are skipped. Returns 0;
 * ST_TOO_LARGE when a line or an event's data exceeds max_line (every
 * later feed fails the same way); or fn's non-zero return. */
MUST_CHECK int sse_feed(struct sse *p, const char *bytes, size_t n,
                        sse_event_fn fn, void *arg);

#endif
