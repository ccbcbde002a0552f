/* table: text tables for terminals, columns padded to their widest cell,
 * like `kubectl get` and `docker ps`. Cells come from the network, so
 * control characters are shown as '?'. */
#ifndef HANDOFF_TABLE_H
#define HANDOFF_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table {
    size_t n_cols;
    size_t n_rows; /* the header row included */
    char **cells;  /* n_rows * n_cols, owned */
    size_t *width; /* per column, in characters */
};

/* Prepares caller storage with a header row of n_cols names (copied). */
void table_init(struct table *t, size_t n_cols, const char *const *headers);
void table_cleanup(struct table *t);
/* Appends a row of n_cols cells (copied; NULL or "" shows as "-"). */
void table_add(struct table *t, const char *const *cells);
/* Writes the rows to out, columns two spaces apart, the last unpadded. */
void table_print(const struct table *t, FILE *out);

#endif
