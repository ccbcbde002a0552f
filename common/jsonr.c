/* Checked reading of untrusted JSON with field paths (see jsonr.h). */
#include "jsonr.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

void jsonr_init(struct jsonr *r, char *err, size_t errlen)
{
    r->path[0] = '\0';
    r->path_len = 0;
    r->failed = false;
    r->err = err;
    r->errlen = errlen;
    if (err && errlen) {
        err[0] = '\0';
    }
}

size_t jsonr_push(struct jsonr *r, const char *fmt, ...)
{
    size_t mark = r->path_len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(r->path + mark, sizeof(r->path) - mark, fmt, ap);
    va_end(ap);
    if (n > 0) {
        r->path_len += (size_t)n;
        if (r->path_len >= sizeof(r->path)) {
            r->path_len = sizeof(r->path) - 1;
        }
    }
    return mark;
}

void jsonr_pop(struct jsonr *r, size_t mark)
{
    r->path_len = mark;
    r->path[mark] = '\0';
}

void jsonr_fault(struct jsonr *r, const char *key, const char *fmt, ...)
{
    const char *path = r->path[0] == '.' ? r->path + 1 : r->path;
    va_list ap;
    int n;

    if (r->failed) {
        return;
    }
    r->failed = true;
    if (!r->err || r->errlen == 0) {
        return;
    }
    if (!*path && !key) {
        path = "document";
    }
    n = snprintf(r->err, r->errlen, "%s%s%s: ", path, key && *path ? "." : "",
                 key ? key : "");
    if (n < 0 || (size_t)n >= r->errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* obj[key] of any type, or NULL after a fault when required. */
static json_t *member(struct jsonr *r, const json_t *obj, const char *key,
                      bool required)
{
    json_t *v = json_object_get(obj, key);

    if (!v && required) {
        jsonr_fault(r, key, "missing");
    }
    return v;
}

const char *jsonr_str(struct jsonr *r, const json_t *obj, const char *key,
                      bool required)
{
    json_t *v = member(r, obj, key, required);

    if (v && !json_is_string(v)) {
        jsonr_fault(r, key, "not a string");
        return "";
    }
    return v ? json_string_value(v) : "";
}

uint64_t jsonr_count(struct jsonr *r, const json_t *obj, const char *key,
                     bool required)
{
    json_t *v = member(r, obj, key, required);

    if (!v) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        jsonr_fault(r, key, "not an integer >= 0");
        return 0;
    }
    return (uint64_t)json_integer_value(v);
}

double jsonr_num(struct jsonr *r, const json_t *obj, const char *key,
                 bool required, bool nonneg)
{
    json_t *v = member(r, obj, key, required);
    double d;

    if (!v) {
        return 0;
    }
    if (!json_is_number(v)) {
        jsonr_fault(r, key, "not a number");
        return 0;
    }
    d = json_number_value(v);
    if (!isfinite(d) || (nonneg && d < 0)) {
        jsonr_fault(r, key, "not a number >= 0");
        return 0;
    }
    return d;
}

bool jsonr_num_or_null(struct jsonr *r, const json_t *obj, const char *key,
                       double *out)
{
    json_t *v = member(r, obj, key, true);

    *out = 0;
    if (!v || json_is_null(v)) {
        return false;
    }
    if (!json_is_number(v)) {
        jsonr_fault(r, key, "not a number or null");
        return false;
    }
    *out = json_number_value(v);
    return true;
}

bool jsonr_bool(struct jsonr *r, const json_t *obj, const char *key)
{
    json_t *v = member(r, obj, key, true);

    if (v && !json_is_boolean(v)) {
        jsonr_fault(r, key, "not a boolean");
        return false;
    }
    return json_is_true(v);
}

json_t *jsonr_obj(struct jsonr *r, const json_t *obj, const char *key,
                  bool required)
{
    json_t *v = member(r, obj, key, required);

    if (v && !json_is_object(v)) {
        jsonr_fault(r, key, "not an object");
        return NULL;
    }
    return v;
}

json_t *jsonr_arr(struct jsonr *r, const json_t *obj, const char *key,
                  bool required, size_t *n)
{
    json_t *v = member(r, obj, key, required);

    *n = 0;
    if (v && !json_is_array(v)) {
        jsonr_fault(r, key, "not an array");
        return NULL;
    }
    *n = v ? json_array_size(v) : 0;
    return v;
}

json_t *jsonr_elem(struct jsonr *r, const json_t *arr, const char *key,
                   size_t i, size_t *mark)
{
    json_t *v = json_array_get(arr, i);

    *mark = jsonr_push(r, ".%s[%zu]", key, i);
    if (r->failed) {
        return NULL;
    }
    if (!json_is_object(v)) {
        jsonr_fault(r, NULL, "not an object");
        return NULL;
    }
    return v;
}
