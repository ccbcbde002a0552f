/* Allocation wrappers that abort on exhaustion. */
#include "mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__) /* from the headers above */
#include <malloc.h>
#endif

static void mem_exhausted(size_t size)
{
    fprintf(stderr, "handoff: out of memory allocating %zu bytes\n", size);
    abort();
}

void *mem_alloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p) {
        mem_exhausted(size);
    }
    return p;
}

void *mem_zalloc(size_t size)
{
    return mem_calloc(1, size);
}

void *mem_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p) {
        mem_exhausted(n * size);
    }
    return p;
}

void *mem_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);

    if (!q) {
        mem_exhausted(size);
    }
    return q;
}

void *mem_reallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        mem_exhausted(SIZE_MAX);
    }
    return mem_realloc(p, n * size);
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}

char *mem_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = mem_alloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *mem_vprintf(const char *fmt, va_list ap)
{
    char small[256];
    va_list ap2;
    int n;
    char *p;

    /* Most strings fit the stack buffer: one formatting pass. */
    va_copy(ap2, ap);
    n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        /* Only an invalid format gets here; keep the caller going. */
        return mem_strdup("(format error)");
    }
    p = mem_alloc((size_t)n + 1);
    if ((size_t)n < sizeof(small)) {
        memcpy(p, small, (size_t)n + 1);
    } else {
        vsnprintf(p, (size_t)n + 1, fmt, ap);
    }
    return p;
}

char *mem_printf(const char *fmt, ...)
{
    va_list ap;
    char *p;

    va_start(ap, fmt);
    p = mem_vprintf(fmt, ap);
    va_end(ap);
    return p;
}

void mem_tune_for_service(void)
{
#if defined(__GLIBC__)
    (void)mallopt(M_MXFAST, 0);
#endif
}
