/* UTF-8 validation and repair. Test output is arbitrary bytes; PostgreSQL
 * text, JSON and XML need valid UTF-8 without NUL. */
#ifndef HANDOFF_UTF8_H
#define HANDOFF_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes at s
 * (n of them available) do not start one. Overlong forms, surrogates and
 * code points above U+10FFFF are invalid. */
size_t utf8_seq_len(const unsigned char *s, size_t n);

/* True when s[0..n) is valid UTF-8 without NUL bytes. */
bool utf8_is_clean(const char *s, size_t n);

/* Appends s[0..n) to out with each invalid byte and each NUL replaced by
 * U+FFFD. */
void utf8_append_clean(struct buf *out, const char *s, size_t n);

/* Appends the NUL-terminated UTF-8 s to out for a terminal: C0 and C1
 * control characters (which could move the cursor or change colors) and
 * invalid bytes become '?'. Returns the code points written. */
size_t utf8_append_printable(struct buf *out, const char *s);

/* A clean, NUL-terminated copy of s[0..n); free() it. */
char *utf8_clean_dup(const char *s, size_t n);

#endif
