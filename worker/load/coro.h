/* Coroutines for virtual users: a small mmap'd stack each, with a guard area
 * below it, run by a scheduler on one thread. Asymmetric: a coroutine yields
 * back to whoever resumed it. Design and measurements: docs/load.md. */
#ifndef HANDOFF_CORO_H
#define HANDOFF_CORO_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* Stack sizes in bytes. The default holds a workflow's own frames and the
 * HTTP client's request set-up: parsing and metrics run on the scheduler's
 * stack, not here. AddressSanitizer's redzones make frames several times
 * larger, so its builds get a larger default. */
#if defined(__SANITIZE_ADDRESS__)
#define CORO_STACK_DEFAULT (128 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_STACK_DEFAULT (128 * 1024)
#endif
#endif
#ifndef CORO_STACK_DEFAULT
#define CORO_STACK_DEFAULT (16 * 1024)
#endif
#define CORO_STACK_MIN (4 * 1024)
#define CORO_STACK_MAX (64 * 1024 * 1024)
/* The caller's memory in a coroutine's mapping (coro_new_with). */
#define CORO_MEM_MAX (16 * 1024 * 1024)
#define CORO_MEM_ALIGN 16

struct coro;

/* Name of the context switch compiled in: "x86_64-asm" or "ucontext". */
const char *coro_backend(void);

/* Creates a suspended coroutine that will run fn(arg) on a stack of
 * stack_bytes (0 for CORO_STACK_DEFAULT; rounded up to whole pages), with a
 * 64 KiB inaccessible guard below it. Running past the stack's end touches the
 * guard and the process dies of SIGSEGV instead of corrupting memory. The
 * stack is reserved, not committed: a coroutine costs the pages it has
 * touched. Returns 0 with *out owned by the caller (coro_free), ST_INVALID
 * for a size outside CORO_STACK_MIN..CORO_STACK_MAX, or ST_UPSTREAM when the
 * kernel refuses the mapping (out of address space or of map areas: each
 * coroutine takes two of vm.max_map_count's, 65530 by default). Any
 * thread; the coroutine then belongs to the thread that first resumes it. */
MUST_CHECK int coro_new(void (*fn)(void *arg), void *arg, size_t stack_bytes,
                        struct coro **out);

/* As coro_new, with mem_bytes more of the same mapping for the caller,
 * handed out by coro_alloc: what a coroutine's owner allocates there is
 * returned to the kernel with the stack by coro_free, whatever the heap
 * would have kept of it. The first near_bytes (at most half a page) share
 * the page that holds the stack's top, which the coroutine touches first:
 * small state that lives as long as the coroutine costs no page of its
 * own. The rest is reserved, not committed, like the stack. Returns as
 * coro_new, and ST_INVALID for mem_bytes over CORO_MEM_MAX or near_bytes
 * over mem_bytes or half a page. */
MUST_CHECK int coro_new_with(void (*fn)(void *arg), void *arg,
                             size_t stack_bytes, size_t near_bytes,
                             size_t mem_bytes, struct coro **out);

/* Sets the argument fn will get, before co is first resumed (for an arg
 * that lives in co's own memory). Owner thread. */
void coro_set_arg(struct coro *co, void *arg);

/* n bytes (not zeroed) aligned to CORO_MEM_ALIGN from co's memory, in the
 * order asked for; from the heap (mem_alloc) when it has no room left or
 * co is NULL. Never NULL. Release it with coro_release or coro_realloc,
 * before coro_free: heap blocks are freed then, co's own are kept for
 * reuse only when last, and all of them go with the mapping. Owner
 * thread. */
void *coro_alloc(struct coro *co, size_t n);
/* p (from coro_alloc or coro_realloc on co, old_n bytes, or NULL) grown or
 * shrunk to n bytes, its contents kept: in place when it is co's last
 * block and there is room, else moved. A heap block stays on the heap. */
void *coro_realloc(struct coro *co, void *p, size_t old_n, size_t n);
/* Gives p (n bytes as asked for, or NULL) back: see coro_alloc. */
void coro_release(struct coro *co, void *p, size_t n);

/* Releases co's stack and memory. co must not be running; it may be
 * finished or suspended (a suspended coroutine's frames are dropped without
 * running anything, so what they own leaks: wake it to unwind instead).
 * NULL does nothing. Owner thread. */
void coro_free(struct coro *co);

/* Switches from the scheduler to co and runs it until it yields or fn
 * returns. Must not be called from inside a coroutine, nor on a finished
 * one. Owner thread. */
void coro_resume(struct coro *co);

/* Switches from co, which must be the running coroutine, back to the
 * scheduler that resumed it; returns when co is resumed again. */
void coro_yield(struct coro *co);

/* True once fn has returned. */
bool coro_is_done(const struct coro *co);

/* The coroutine running on this thread, or NULL on the scheduler. */
struct coro *coro_current(void);

/* Bytes of co's stack reserved (excluding the guard). */
size_t coro_stack_size(const struct coro *co);

#endif
