/* jsonr: reading JSON documents that come from outside (files, other
 * processes) field by field, each checked for presence and type. The first
 * fault is kept with the path of the field ("requests[1].timings.p95:
 * missing") so a reader can check a whole object and test once at the
 * end; getters after a fault still return their defaults, never crash. */
#ifndef HANDOFF_JSONR_H
#define HANDOFF_JSONR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

struct json_t; /* jansson's json_t */

struct jsonr {
    char path[256]; /* where the reader is: ".requests[1].timings" */
    size_t path_len;
    bool failed;
    char *err; /* the first fault; caller's storage, may be NULL */
    size_t errlen;
};

/* Prepares r; err (errlen bytes, may be NULL) receives the first fault,
 * NUL-terminated, and is emptied here. */
void jsonr_init(struct jsonr *r, char *err, size_t errlen);

/* Appends to the path (".key", "[3]"); returns the length jsonr_pop goes
 * back to. A path longer than the buffer is cut, which only shortens a
 * message. */
size_t jsonr_push(struct jsonr *r, const char *fmt, ...) MEM_PRINTF(2, 3);
void jsonr_pop(struct jsonr *r, size_t mark);

/* Records a fault at path.key (key may be NULL) unless one is recorded. */
void jsonr_fault(struct jsonr *r, const char *key, const char *fmt, ...)
    MEM_PRINTF(3, 4);

/* Getters for obj[key], obj an object. A missing required field or a
 * present one of the wrong type is a fault; the default is returned then
 * and for a missing optional field. Strings are borrowed from obj. */
const char *jsonr_str(struct jsonr *r, const struct json_t *obj,
                      const char *key, bool required); /* default "" */
/* An integer >= 0; default 0. */
uint64_t jsonr_count(struct jsonr *r, const struct json_t *obj, const char *key,
                     bool required);
/* A number; nonneg rejects values below 0. Default 0. */
double jsonr_num(struct jsonr *r, const struct json_t *obj, const char *key,
                 bool required, bool nonneg);
/* A number or null, required: false for null (and *out 0). */
bool jsonr_num_or_null(struct jsonr *r, const struct json_t *obj,
                       const char *key, double *out);
/* A boolean, required; default false. */
bool jsonr_bool(struct jsonr *r, const struct json_t *obj, const char *key);
/* An object or an array; NULL when missing or mistyped. */
struct json_t *jsonr_obj(struct jsonr *r, const struct json_t *obj,
                         const char *key, bool required);
/* *n is its size (0 when NULL is returned). */
struct json_t *jsonr_arr(struct jsonr *r, const struct json_t *obj,
                         const char *key, bool required, size_t *n);

/* The i-th element of arr (named key in the path), which must be an
 * object; the path points at it until jsonr_pop(r, *mark). NULL after a
 * fault. */
struct json_t *jsonr_elem(struct jsonr *r, const struct json_t *arr,
                          const char *key, size_t i, size_t *mark);

#endif
