/* A growable byte buffer, always NUL-terminated, with an optional hard cap
 * for data that comes from outside. */
#ifndef HANDOFF_BUF_H
#define HANDOFF_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "mem.h"
#include "status.h"

struct buf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len; 0 = none */
};

/* Prepares caller storage. max_len 0 means no cap. */
void buf_init(struct buf *b, size_t max_len);
/* Releases the memory; b may be reused after buf_init. */
void buf_cleanup(struct buf *b);
/* Empties b, keeping its memory. */
void buf_reset(struct buf *b);

/* Appends. Return 0, or ST_TOO_LARGE when the cap would be exceeded, in which
 * case nothing is appended. */
MUST_CHECK int buf_append(struct buf *b, const void *data, size_t len);
MUST_CHECK int buf_puts(struct buf *b, const char *s);
MUST_CHECK int buf_putc(struct buf *b, char c);
MUST_CHECK int buf_printf(struct buf *b, const char *fmt, ...) MEM_PRINTF(2, 3);
MUST_CHECK int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
    MEM_PRINTF(2, 0);

/* Unchecked forms for buffers without a cap (max 0), which cannot fail. */
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...) MEM_PRINTF(2, 3);

/* Appends n bytes of unspecified value (for the caller to fill) and returns
 * where they start. Buffers without a cap only. */
void *buf_extend(struct buf *b, size_t n);

/* Returns the contents, never NULL ("" when empty). Borrowed. */
const char *buf_str(const struct buf *b);
/* Hands the contents to the caller (free() them) and empties b. */
char *buf_detach(struct buf *b);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);

#endif
