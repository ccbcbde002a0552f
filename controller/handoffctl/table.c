/* Padded text tables. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Characters of UTF-8 text: bytes that do not continue a sequence. */
static size_t text_width(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80) {
            n++;
        }
    }
    return n;
}

static char *clean_copy(const char *s)
{
    char *c = mem_strdup(s && *s ? s : "-");

    for (char *p = c; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    return c;
}

void table_init(struct table *t, size_t n_cols, const char *const *headers)
{
    memset(t, 0, sizeof(*t));
    t->n_cols = n_cols;
    t->width = mem_calloc(n_cols, sizeof(*t->width));
    table_add(t, headers);
}

void table_cleanup(struct table *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    free(t->width);
    memset(t, 0, sizeof(*t));
}

void table_add(struct table *t, const char *const *cells)
{
    char **row;

    t->cells = mem_reallocarray(t->cells, (t->n_rows + 1) * t->n_cols,
                                sizeof(*t->cells));
    row = t->cells + t->n_rows * t->n_cols;
    for (size_t c = 0; c < t->n_cols; c++) {
        size_t w;

        row[c] = clean_copy(cells[c]);
        w = text_width(row[c]);
        if (w > t->width[c]) {
            t->width[c] = w;
        }
    }
    t->n_rows++;
}

void table_print(const struct table *t, FILE *out)
{
    for (size_t r = 0; r < t->n_rows; r++) {
        char *const *row = t->cells + r * t->n_cols;

        for (size_t c = 0; c < t->n_cols; c++) {
            fputs(row[c], out);
            if (c + 1 < t->n_cols) {
                for (size_t w = text_width(row[c]); w < t->width[c] + 2; w++) {
                    fputc(' ', out);
                }
            }
        }
        fputc('\n', out);
    }
}
