/* Coroutines: mmap'd stacks with a guard area, and the context switch.
 *
 * On x86_64 the switch is ten lines of assembly: it saves what the SysV ABI
 * makes callee-saved (rbx, rbp, r12-r15, rsp, the MXCSR and x87 control
 * words) and nothing else. glibc's swapcontext also saves and restores the
 * signal mask with a sigprocmask system call on every switch; a VU switches
 * twice per request. Measured (handoff-bench-load switch, Xeon VM, gcc -O2,
 * median of 7 runs of 2M round trips, one round trip = two switches):
 *
 *     x86_64-asm   coro_resume + coro_yield    about 9 ns per round trip
 *     ucontext     swapcontext x 2             about 600 ns per round trip
 *
 * i.e. ucontext alone would cost about a tenth of wrk's whole per-request
 * budget on this machine (2 cores / 95k req/s = 21 us of CPU per request,
 * shared with nginx). Other architectures, and x86_64 builds with CET
 * shadow stacks (which a hand-written switch would break), use ucontext.
 * Figures and the rest of the design: docs/load.md. */
#include "coro.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem.h"

/* -DCORO_FORCE_UCONTEXT selects the portable switch on x86_64 too (for
 * measuring it). */
#if defined(__x86_64__) && !defined(CORO_FORCE_UCONTEXT) &&                    \
    !(defined(__CET__) && (__CET__ & 2))
#define CORO_ASM 1
#else
#define CORO_ASM 0
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_ASAN 1
#endif
#endif
#ifndef CORO_ASAN
#define CORO_ASAN 0
#endif
#if CORO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* Lives at the top of its own mapping, above the stack: no allocation of
 * its own, and on the page the coroutine touches first anyway. */
struct coro {
#if CORO_ASM
    void *sp;        /* the coroutine's saved stack pointer */
    void *caller_sp; /* the scheduler's, while the coroutine runs */
#else
    ucontext_t ctx;
    ucontext_t caller_ctx;
#endif
    void (*fn)(void *arg);
    void *arg;
    void *map;          /* start of the mapping (the guard) */
    size_t map_bytes;   /* whole mapping */
    char *stack_lo;     /* lowest usable stack byte, above the guard */
    size_t stack_bytes; /* usable stack, up to this struct */
    char *mem_lo;       /* the caller's memory, right above this struct */
    size_t mem_bytes;
    size_t mem_used; /* bump offset; what lies above it is unused */
    bool done;
    bool running;
    /* For AddressSanitizer only (unused, and cheap, without it). */
    void *fake_stack;        /* ASan's fake stack of the coroutine */
    void *caller_fake_stack; /* and of the scheduler */
    const void *caller_lo;   /* the scheduler's stack */
    size_t caller_bytes;
};

/* The guard below each stack. A function whose frame is bigger than the
 * guard could jump over it (gcc probes big frames only with
 * -fstack-clash-protection), so it is generous: it costs address space,
 * not memory. */
#define CORO_GUARD_BYTES (64 * 1024)

static _Thread_local struct coro *current
    __attribute__((tls_model("initial-exec")));

#if CORO_ASM
/* coro_asm_swap(save, load): pushes the callee-saved registers and the two
 * floating-point control words on the current stack, stores the stack
 * pointer in *save, switches to load and pops the same from there.
 * coro_asm_start is where a new stack first "returns" to: it calls
 * r12(r13), i.e. coro_main(co), with the stack 16-byte aligned. The
 * endbr64 are no-ops on CPUs without indirect branch tracking. */
void coro_asm_swap(void **save, void *load);
void coro_asm_start(void);
__asm__(".text\n"
        ".p2align 4\n"
        ".globl coro_asm_swap\n"
        ".hidden coro_asm_swap\n"
        ".type coro_asm_swap,@function\n"
        "coro_asm_swap:\n"
        "    endbr64\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size coro_asm_swap, .-coro_asm_swap\n"
        ".p2align 4\n"
        ".globl coro_asm_start\n"
        ".hidden coro_asm_start\n"
        ".type coro_asm_start,@function\n"
        "coro_asm_start:\n"
        "    endbr64\n"
        "    movq %r13, %rdi\n"
        "    callq *%r12\n"
        "    ud2\n"
        ".size coro_asm_start, .-coro_asm_start\n");
#endif

/* ASan must hear of every stack switch, or it takes the other stack's frames
 * for a buffer overflow. start: before leaving a stack for [lo, lo+n); a
 * NULL save tells it the stack being left is finished. finish: on arrival;
 * it reports the stack we came from. */
static void asan_start(void **save, const void *lo, size_t n)
{
#if CORO_ASAN
    __sanitizer_start_switch_fiber(save, lo, n);
#else
    (void)save;
    (void)lo;
    (void)n;
#endif
}

static void asan_finish(void *save, const void **from_lo, size_t *from_n)
{
#if CORO_ASAN
    __sanitizer_finish_switch_fiber(save, from_lo, from_n);
#else
    (void)save;
    (void)from_lo;
    (void)from_n;
#endif
}

/* Switches from the coroutine back to its scheduler. */
static void switch_out(struct coro *co)
{
#if CORO_ASM
    coro_asm_swap(&co->sp, co->caller_sp);
#else
    swapcontext(&co->ctx, &co->caller_ctx);
#endif
}

static _Noreturn void coro_main(struct coro *co)
{
    /* First arrival: nothing saved for this stack yet. */
    asan_finish(NULL, &co->caller_lo, &co->caller_bytes);
    co->fn(co->arg);
    co->done = true;
    /* This stack is finished: ASan may drop its fake frames. */
    asan_start(NULL, co->caller_lo, co->caller_bytes);
    switch_out(co);
    abort(); /* a finished coroutine is never resumed */
}

#if !CORO_ASM
/* makecontext passes ints: the pointer travels in two halves. */
static void coro_ucontext_entry(unsigned hi, unsigned lo)
{
    uintptr_t p = ((uintptr_t)hi << 16 << 16) | (uintptr_t)lo;

    coro_main((struct coro *)p);
}
#endif

const char *coro_backend(void)
{
    return CORO_ASM ? "x86_64-asm" : "ucontext";
}

int coro_new(void (*fn)(void *arg), void *arg, size_t stack_bytes,
             struct coro **out)
{
    return coro_new_with(fn, arg, stack_bytes, 0, 0, out);
}

int coro_new_with(void (*fn)(void *arg), void *arg, size_t stack_bytes,
                  size_t near_bytes, size_t mem_bytes, struct coro **out)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t header = (sizeof(struct coro) + 63) & ~(size_t)63;
    size_t near;
    size_t far;
    size_t usable;
    size_t guard;
    size_t map_bytes;
    char *map;
    struct coro *co;

    if (stack_bytes == 0) {
        stack_bytes = CORO_STACK_DEFAULT;
    }
    if (fn == NULL || out == NULL || stack_bytes < CORO_STACK_MIN ||
        stack_bytes > CORO_STACK_MAX || mem_bytes > CORO_MEM_MAX ||
        near_bytes > mem_bytes || near_bytes > page / 2) {
        return ST_INVALID;
    }
    /* [guard][stack][this struct][near | far]: the struct and the near
     * part end on a page boundary, so that they share the page the
     * stack's first frames touch; the far part starts on a page of its
     * own and costs nothing until used. */
    near = (near_bytes + CORO_MEM_ALIGN - 1) & ~(size_t)(CORO_MEM_ALIGN - 1);
    far = (mem_bytes - near_bytes + page - 1) / page * page;
    usable = (stack_bytes + near + page - 1) / page * page;
    guard = (CORO_GUARD_BYTES + page - 1) / page * page;
    map_bytes = guard + usable + far;
    /* MAP_NORESERVE: nothing is committed until touched, which is what
     * makes 10,000 idle VUs cheap. */
    map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        return ST_UPSTREAM;
    }
    if (mprotect(map, guard, PROT_NONE) != 0) {
        munmap(map, map_bytes);
        return ST_UPSTREAM;
    }
    /* header is a multiple of 64 and map page-aligned: the cast through
     * void * states that the alignment is known. */
    co = (struct coro *)(void *)(map + guard + usable - near - header);
    memset(co, 0, sizeof(*co));
    co->fn = fn;
    co->arg = arg;
    co->map = map;
    co->map_bytes = map_bytes;
    co->stack_lo = map + guard;
    co->stack_bytes = (size_t)((char *)co - co->stack_lo);
    co->mem_lo = (char *)co + header;
    co->mem_bytes = near + far;
#if CORO_ASAN
    /* Unused memory is out of bounds, as the heap's would be. */
    ASAN_POISON_MEMORY_REGION(co->mem_lo, co->mem_bytes);
#endif
#if CORO_ASM
    {
        /* The first swap pops this frame: zeroed registers, default
         * control words (MXCSR 0x1f80: all exceptions masked,
         * round-to-nearest; x87 0x037f), then "returns" to
         * coro_asm_start with r12 = coro_main and r13 = co. The return
         * address sits at 8 mod 16 so that the call in coro_asm_start
         * sees the ABI's alignment. */
        uintptr_t top = (uintptr_t)co & ~(uintptr_t)15;
        uint64_t *ret = (uint64_t *)(top - 24);
        uint64_t *frame = ret - 7;
        uint32_t ctl[2] = {0x1f80, 0x037f};

        memset(frame, 0, 7 * sizeof(*frame));
        memcpy(&frame[0], ctl, sizeof(ctl));
        /* popped in order: control words, r15, r14, r13, r12, rbx, rbp */
        frame[3] = (uint64_t)(uintptr_t)co;        /* r13 */
        frame[4] = (uint64_t)(uintptr_t)coro_main; /* r12 */
        *ret = (uint64_t)(uintptr_t)coro_asm_start;
        co->sp = frame;
    }
#else
    if (getcontext(&co->ctx) != 0) {
        munmap(map, map_bytes);
        return ST_INTERNAL;
    }
    co->ctx.uc_stack.ss_sp = co->stack_lo;
    co->ctx.uc_stack.ss_size = co->stack_bytes;
    co->ctx.uc_link = NULL;
    makecontext(&co->ctx, (void (*)(void))coro_ucontext_entry, 2,
                (unsigned)((uintptr_t)co >> 16 >> 16),
                (unsigned)((uintptr_t)co & 0xffffffffu));
#endif
    *out = co;
    return 0;
}

void coro_free(struct coro *co)
{
    if (co == NULL) {
        return;
    }
    assert(!co->running);
#if CORO_ASAN
    /* Frames left on a suspended stack stay poisoned in ASan's shadow; a
     * later mapping at the same address would inherit that. */
    ASAN_UNPOISON_MEMORY_REGION(co->stack_lo, co->stack_bytes);
    ASAN_UNPOISON_MEMORY_REGION(co->mem_lo, co->mem_bytes);
#endif
    munmap(co->map, co->map_bytes);
}

void coro_set_arg(struct coro *co, void *arg)
{
    assert(!co->running && !co->done);
    co->arg = arg;
}

static size_t mem_round(size_t n)
{
    return (n + CORO_MEM_ALIGN - 1) & ~(size_t)(CORO_MEM_ALIGN - 1);
}

static bool mem_owns(const struct coro *co, const void *p)
{
    return co != NULL && (const char *)p >= co->mem_lo &&
           (const char *)p < co->mem_lo + co->mem_bytes;
}

void *coro_alloc(struct coro *co, size_t n)
{
    size_t r = mem_round(n > 0 ? n : 1);
    char *p;

    if (co == NULL || r > co->mem_bytes - co->mem_used) {
        return mem_alloc(n);
    }
    p = co->mem_lo + co->mem_used;
    co->mem_used += r;
#if CORO_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
    return p;
}

void *coro_realloc(struct coro *co, void *p, size_t old_n, size_t n)
{
    void *q;

    if (p == NULL) {
        return coro_alloc(co, n);
    }
    if (!mem_owns(co, p)) {
        return mem_realloc(p, n);
    }
    if (mem_round(n) <= mem_round(old_n)) {
        return p;
    }
    /* The last block grows in place while there is room. */
    if ((char *)p + mem_round(old_n) == co->mem_lo + co->mem_used &&
        mem_round(n) - mem_round(old_n) <= co->mem_bytes - co->mem_used) {
        co->mem_used += mem_round(n) - mem_round(old_n);
#if CORO_ASAN
        ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
        return p;
    }
    q = coro_alloc(co, n);
    memcpy(q, p, old_n < n ? old_n : n);
    coro_release(co, p, old_n);
    return q;
}

void coro_release(struct coro *co, void *p, size_t n)
{
    if (p == NULL) {
        return;
    }
    if (!mem_owns(co, p)) {
        free(p);
        return;
    }
    if ((char *)p + mem_round(n) == co->mem_lo + co->mem_used) {
        co->mem_used -= mem_round(n);
    }
#if CORO_ASAN
    ASAN_POISON_MEMORY_REGION(p, mem_round(n));
#endif
}

void coro_resume(struct coro *co)
{
    assert(current == NULL && !co->done && !co->running);
    current = co;
    co->running = true;
    asan_start(&co->caller_fake_stack, co->stack_lo, co->stack_bytes);
#if CORO_ASM
    coro_asm_swap(&co->caller_sp, co->sp);
#else
    swapcontext(&co->caller_ctx, &co->ctx);
#endif
    asan_finish(co->caller_fake_stack, NULL, NULL);
    co->running = false;
    current = NULL;
}

void coro_yield(struct coro *co)
{
    assert(current == co && co->running);
    asan_start(&co->fake_stack, co->caller_lo, co->caller_bytes);
    switch_out(co);
    asan_finish(co->fake_stack, &co->caller_lo, &co->caller_bytes);
}

bool coro_is_done(const struct coro *co)
{
    return co->done;
}

struct coro *coro_current(void)
{
    return current;
}

size_t coro_stack_size(const struct coro *co)
{
    return co->stack_bytes;
}
