/* xmlw: text made safe for XML 1.0 and HTML, shared by the JUnit writers
 * and the HTML load report. */
#ifndef HANDOFF_XMLW_H
#define HANDOFF_XMLW_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Appends s[0..n) escaped for XML 1.0 (and so for HTML text and quoted
 * attributes): & < > " ' as entities. In an attribute (attr) line breaks
 * and tabs become character references so they survive attribute value
 * normalisation; in text they stay as they are. Characters XML cannot
 * carry (most control characters, U+FFFE, U+FFFF) are written as \xNN,
 * invalid UTF-8 as U+FFFD. Any thread. */
void xmlw_escape(struct buf *b, const char *s, size_t n, bool attr);

/* xmlw_escape of the NUL-terminated s as an attribute value; NULL writes
 * nothing. */
void xmlw_attr(struct buf *b, const char *s);

/* xmlw_escape of the NUL-terminated s as text; NULL writes nothing. */
void xmlw_text(struct buf *b, const char *s);

#endif
