/* Allocation that cannot fail: out-of-memory aborts here, so callers carry
 * no NOMEM branches. */
#ifndef HANDOFF_MEM_H
#define HANDOFF_MEM_H

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define MEM_PRINTF(fmt_index, first_arg)                                       \
    __attribute__((format(printf, fmt_index, first_arg)))
#else
#define MEM_PRINTF(fmt_index, first_arg)
#endif

/* Each returns memory the caller owns and releases with free(). They never
 * return NULL: on exhaustion the process aborts with a message. Any thread. */
void *mem_alloc(size_t size);
void *mem_zalloc(size_t size);
/* Zeroed array of n elements of size bytes; aborts on overflow. */
void *mem_calloc(size_t n, size_t size);
void *mem_realloc(void *p, size_t size);
/* Array growth with overflow check: room for n elements of size bytes. */
void *mem_reallocarray(void *p, size_t n, size_t size);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);
char *mem_printf(const char *fmt, ...) MEM_PRINTF(1, 2);
char *mem_vprintf(const char *fmt, va_list ap) MEM_PRINTF(1, 0);

/* For the long-running services (controller, worker serve), first thing
 * in main: glibc without fastbins. With them every request of 1 KiB or
 * more (a growing buffer, a result message) first merges all the freed
 * small chunks back (malloc_consolidate): 20-30 % of the worker's loop
 * thread in the throughput benchmark, and 10 % of the controller's;
 * without them the thread caches still serve small requests. */
void mem_tune_for_service(void);

#endif
