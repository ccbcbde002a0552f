/* Coroutines of the load engine: switching, completion, many coroutines at
 * once, stacks kept apart, the floating-point control state, the guard below
 * the stack (in a child that must die of SIGSEGV), AddressSanitizer (no
 * false reports across switches; a real overflow on a coroutine stack
 * still reported), and the memory a coroutine's owner allocates in its
 * mapping (coro_alloc). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "coro.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

struct pingpong {
    struct coro *co;
    int trace[16];
    int n;
};

static void pingpong_fn(void *arg)
{
    struct pingpong *p = arg;

    for (int i = 0; i < 3; i++) {
        p->trace[p->n++] = 100 + i;
        coro_yield(p->co);
    }
    p->trace[p->n++] = 199;
}

static void test_coro_resume_and_yield_alternate(void **state)
{
    struct pingpong p;

    (void)state;
    memset(&p, 0, sizeof(p));
    assert_int_equal(coro_new(pingpong_fn, &p, 0, &p.co), 0);
    assert_null(coro_current());
    for (int i = 0; i < 4; i++) {
        assert_false(coro_is_done(p.co));
        p.trace[p.n++] = i;
        coro_resume(p.co);
    }
    assert_true(coro_is_done(p.co));
    assert_int_equal(p.n, 8);
    {
        static const int want[] = {0, 100, 1, 101, 2, 102, 3, 199};

        assert_memory_equal(p.trace, want, sizeof(want));
    }
    assert_null(coro_current());
    coro_free(p.co);
}

static struct coro *seen_current;

static void current_fn(void *arg)
{
    (void)arg;
    seen_current = coro_current();
}

static void test_coro_current_is_the_running_coroutine(void **state)
{
    struct coro *co;

    (void)state;
    assert_int_equal(coro_new(current_fn, NULL, 0, &co), 0);
    coro_resume(co);
    assert_ptr_equal(seen_current, co);
    assert_true(coro_is_done(co));
    assert_null(coro_current());
    coro_free(co);
    coro_free(NULL);
}

static void test_coro_new_refuses_bad_sizes(void **state)
{
    struct coro *co = NULL;

    (void)state;
    assert_int_equal(coro_new(current_fn, NULL, 100, &co), ST_INVALID);
    assert_int_equal(
        coro_new(current_fn, NULL, (size_t)CORO_STACK_MAX + 1, &co),
        ST_INVALID);
    assert_int_equal(coro_new(NULL, NULL, 0, &co), ST_INVALID);
    assert_null(co);
    assert_int_equal(coro_new(current_fn, NULL, 5000, &co), 0);
    assert_true(coro_stack_size(co) >= 5000);
    coro_free(co);
}

/* Each coroutine keeps a private array on its own stack across switches. */
#define MANY 2000
#define MANY_ROUNDS 20

struct many {
    struct coro *co;
    unsigned id;
    unsigned sum;
};

static void many_fn(void *arg)
{
    struct many *m = arg;
    volatile unsigned local[64];

    for (unsigned i = 0; i < 64; i++) {
        local[i] = m->id * 64 + i;
    }
    for (int r = 0; r < MANY_ROUNDS; r++) {
        coro_yield(m->co);
        for (unsigned i = 0; i < 64; i++) {
            m->sum += local[i] == m->id * 64 + i;
        }
    }
}

static void test_coro_many_coroutines_keep_their_stacks_apart(void **state)
{
    struct many *ms = calloc(MANY, sizeof(*ms));

    (void)state;
    assert_non_null(ms);
    for (unsigned i = 0; i < MANY; i++) {
        ms[i].id = i;
        assert_int_equal(coro_new(many_fn, &ms[i], 0, &ms[i].co), 0);
    }
    for (int r = 0; r <= MANY_ROUNDS; r++) {
        for (unsigned i = 0; i < MANY; i++) {
            coro_resume(ms[(i * 7919) % MANY].co);
        }
    }
    for (unsigned i = 0; i < MANY; i++) {
        assert_true(coro_is_done(ms[i].co));
        assert_int_equal(ms[i].sum, 64 * MANY_ROUNDS);
        coro_free(ms[i].co);
    }
    free(ms);
}

static void suspended_fn(void *arg)
{
    char buf[256];

    memset(buf, (int)(uintptr_t)arg, sizeof(buf));
    coro_yield(coro_current());
    abort(); /* never resumed: freed while suspended */
}

static void test_coro_free_drops_a_suspended_coroutine(void **state)
{
    (void)state;
    /* Freed suspended, then new stacks are likely mapped at the same
     * addresses: under ASan, nothing stale may remain poisoned there. */
    for (int i = 0; i < 200; i++) {
        struct coro *co;

        assert_int_equal(coro_new(suspended_fn, (void *)(uintptr_t)i, 0, &co),
                         0);
        coro_resume(co);
        assert_false(coro_is_done(co));
        coro_free(co);
    }
}

/* Uses about depth KiB of stack. */
static unsigned recurse(unsigned depth)
{
    volatile char frame[1024];

    frame[0] = (char)depth;
    frame[sizeof(frame) - 1] = (char)depth;
    if (depth == 0) {
        return (unsigned)frame[0];
    }
    return recurse(depth - 1) + (unsigned)frame[sizeof(frame) - 1];
}

struct deep {
    struct coro *co;
    unsigned depth;
    unsigned result;
};

static void deep_fn(void *arg)
{
    struct deep *d = arg;

    d->result = recurse(d->depth);
    coro_yield(d->co);
    d->result += recurse(d->depth);
}

static void test_coro_uses_most_of_its_stack(void **state)
{
    struct deep d = {.depth = TEST_ASAN ? 16 : 48};

    (void)state;
    /* 48 KiB of frames in a 64 KiB stack. */
    assert_int_equal(coro_new(deep_fn, &d, 64 * 1024, &d.co), 0);
    coro_resume(d.co);
    coro_resume(d.co);
    assert_true(coro_is_done(d.co));
    assert_true(d.result > 0);
    coro_free(d.co);
}

static volatile unsigned forever_limit = UINT32_MAX;

static unsigned forever(unsigned n)
{
    volatile char frame[512];

    frame[0] = (char)n;
    if (n == forever_limit) {
        return 0;
    }
    return forever(n + 1) + (unsigned)frame[0];
}

static void overflow_fn(void *arg)
{
    (void)arg;
    forever(0);
}

static void big_frame_fn(void *arg)
{
    /* One frame larger than a page: still caught by the 64 KiB guard. */
    volatile char frame[40 * 1024];

    (void)arg;
    frame[0] = 1;
    frame[sizeof(frame) - 1] = 1;
}

/* Runs fn on a 16 KiB coroutine stack in a child; returns its wait status. */
static int run_in_child(void (*fn)(void *arg))
{
    pid_t pid = fork();
    int status = 0;

    assert_true(pid >= 0);
    if (pid == 0) {
        struct coro *co;

        /* ASan reports a SEGV itself and exits 1; this test wants the
         * plain signal. */
        signal(SIGSEGV, SIG_DFL);
        if (coro_new(fn, NULL, 16 * 1024, &co) != 0) {
            _exit(3);
        }
        coro_resume(co);
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

static void test_coro_stack_overflow_dies_of_sigsegv(void **state)
{
    int status;

    (void)state;
    status = run_in_child(overflow_fn);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    status = run_in_child(big_frame_fn);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

struct fp {
    struct coro *co;
    int seen[3];
};

static void fp_fn(void *arg)
{
    struct fp *f = arg;

    f->seen[0] = fegetround();
    fesetround(FE_UPWARD);
    coro_yield(f->co);
    f->seen[1] = fegetround();
    fesetround(FE_TOWARDZERO);
}

static void test_coro_keeps_floating_point_modes_apart(void **state)
{
    struct fp f;

    (void)state;
    memset(&f, 0, sizeof(f));
    assert_int_equal(coro_new(fp_fn, &f, 0, &f.co), 0);
    fesetround(FE_DOWNWARD);
    coro_resume(f.co);
    /* The coroutine starts with the default mode, and its own mode does
     * not leak into the scheduler nor the scheduler's into it. */
    assert_int_equal(f.seen[0], FE_TONEAREST);
    assert_int_equal(fegetround(), FE_DOWNWARD);
    fesetround(FE_TONEAREST);
    coro_resume(f.co);
    assert_int_equal(f.seen[1], FE_UPWARD);
    assert_int_equal(fegetround(), FE_TONEAREST);
    coro_free(f.co);
}

static volatile int asan_index = 16;
static volatile char asan_sink;

static void asan_overflow_fn(void *arg)
{
    volatile char small[16];
    volatile char *volatile p = small; /* past UBSan's bounds check, to ASan */

    (void)arg;
    small[0] = 0;
    coro_yield(coro_current());
    p[asan_index] = 1; /* one past the end */
    asan_sink = small[0];
}

static void test_coro_asan_sees_coroutine_stacks(void **state)
{
    int fds[2];
    pid_t pid;
    int status;
    char out[8192];
    size_t len = 0;
    ssize_t n;

    (void)state;
    /* ASan's swapcontext interceptor clears the shadow of the stack it
     * switches to, redzones included: with the ucontext switch, overflows
     * on coroutine stacks go unseen (a false negative, never a false
     * report). */
    if (!TEST_ASAN || strcmp(coro_backend(), "ucontext") == 0) {
        skip();
    }
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct coro *co;

        dup2(fds[1], 2);
        close(fds[0]);
        if (coro_new(asan_overflow_fn, NULL, 0, &co) != 0) {
            _exit(3);
        }
        coro_resume(co);
        coro_resume(co);
        _exit(0);
    }
    close(fds[1]);
    while ((n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0) {
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    waitpid(pid, &status, 0);
    /* Reported as what it is, on the coroutine's stack. */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    assert_non_null(strstr(out, "stack-buffer-overflow"));
}

static void idle_fn(void *arg)
{
    (void)arg;
}

static bool in_block(const void *p, const void *lo, size_t n)
{
    return (const char *)p >= (const char *)lo &&
           (const char *)p < (const char *)lo + n;
}

/* Blocks come from the mapping in the order asked for, aligned; what does
 * not fit comes from the heap (LeakSanitizer checks it is freed by
 * coro_release), and so does everything for a coroutine without memory. */
static void test_coro_alloc_uses_the_mapping_then_the_heap(void **state)
{
    struct coro *co;
    struct coro *bare;
    char *a;
    char *b;
    char *c;
    char *big;
    char *d;

    (void)state;
    assert_int_equal(coro_new_with(idle_fn, NULL, 0, 256, 256 + 4096, &co), 0);
    a = coro_alloc(co, 100);
    b = coro_alloc(co, 100);
    assert_ptr_equal(b, a + 112);
    assert_int_equal((uintptr_t)a % CORO_MEM_ALIGN, 0);
    memset(a, 1, 100);
    memset(b, 2, 100);
    big = coro_alloc(co, 8192); /* more than is left */
    assert_false(in_block(big, a, 256 + 4096));
    memset(big, 3, 8192);
    c = coro_alloc(co, 4096); /* what is left still serves */
    assert_ptr_equal(c, b + 112);
    memset(c, 4, 4096);
    d = coro_alloc(co, 64); /* 32 bytes left */
    assert_false(in_block(d, a, 256 + 4096));
    coro_release(co, d, 64);
    coro_release(co, big, 8192);
    coro_release(co, c, 4096);
    coro_release(co, b, 100);
    coro_release(co, a, 100);
    coro_free(co);

    assert_int_equal(coro_new(idle_fn, NULL, 0, &bare), 0);
    a = coro_alloc(bare, 16);
    a = coro_realloc(bare, a, 16, 32);
    coro_release(bare, a, 32);
    coro_free(bare);
    a = coro_alloc(NULL, 16);
    coro_release(NULL, a, 16);
}

/* The last block grows in place and, released, is handed out again; any
 * other block moves when it grows, its contents kept; a heap block stays
 * on the heap. */
static void test_coro_realloc_grows_the_last_block_in_place(void **state)
{
    struct coro *co;
    char *a;
    char *b;
    char *h;

    (void)state;
    assert_int_equal(coro_new_with(idle_fn, NULL, 0, 0, 8192, &co), 0);
    a = coro_alloc(co, 32);
    strcpy(a, "abc");
    assert_ptr_equal(coro_realloc(co, a, 32, 64), a);
    assert_ptr_equal(coro_realloc(co, a, 64, 48), a); /* shrinks in place */
    b = coro_alloc(co, 16);
    assert_ptr_equal(b, a + 64);
    a = coro_realloc(co, a, 64, 128);
    assert_ptr_equal(a, b + 16);
    assert_string_equal(a, "abc");
    coro_release(co, a, 128);
    assert_ptr_equal(coro_alloc(co, 128), a);
    h = coro_alloc(co, 16384); /* no room: the heap */
    strcpy(h, "def");
    h = coro_realloc(co, h, 16384, 32);
    assert_false(in_block(h, b - 64, 8192));
    assert_string_equal(h, "def");
    coro_release(co, h, 32);
    coro_free(co); /* a and b go with the mapping */
}

struct near_probe {
    uintptr_t local;
};

static void near_fn(void *arg)
{
    struct near_probe *np = arg;
    volatile char local = 0;

    np->local = (uintptr_t)&local;
}

/* The first near_bytes share the page the stack's first frames touch: a
 * coroutine that keeps its state there costs one page while idle. */
static void test_coro_near_memory_shares_the_stack_top_page(void **state)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct near_probe np = {0};
    struct coro *co;
    char *first;

    (void)state;
    /* ASan may move locals to a fake stack. */
    if (TEST_ASAN) {
        skip();
    }
    assert_int_equal(coro_new_with(near_fn, NULL, 0, 1024, 1024, &co), 0);
    first = coro_alloc(co, 1024);
    coro_set_arg(co, &np);
    coro_resume(co);
    assert_true(coro_is_done(co));
    assert_int_equal((uintptr_t)first / page, np.local / page);
    coro_free(co);
}

static void test_coro_new_with_refuses_bad_sizes(void **state)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct coro *co = NULL;

    (void)state;
    assert_int_equal(coro_new_with(idle_fn, NULL, 0, 100, 50, &co), ST_INVALID);
    assert_int_equal(coro_new_with(idle_fn, NULL, 0, page, 2 * page, &co),
                     ST_INVALID);
    assert_int_equal(
        coro_new_with(idle_fn, NULL, 0, 0, (size_t)CORO_MEM_MAX + 1, &co),
        ST_INVALID);
    assert_null(co);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coro_resume_and_yield_alternate),
        cmocka_unit_test(test_coro_current_is_the_running_coroutine),
        cmocka_unit_test(test_coro_new_refuses_bad_sizes),
        cmocka_unit_test(test_coro_many_coroutines_keep_their_stacks_apart),
        cmocka_unit_test(test_coro_free_drops_a_suspended_coroutine),
        cmocka_unit_test(test_coro_uses_most_of_its_stack),
        cmocka_unit_test(test_coro_stack_overflow_dies_of_sigsegv),
        cmocka_unit_test(test_coro_keeps_floating_point_modes_apart),
        cmocka_unit_test(test_coro_asan_sees_coroutine_stacks),
        cmocka_unit_test(test_coro_alloc_uses_the_mapping_then_the_heap),
        cmocka_unit_test(test_coro_realloc_grows_the_last_block_in_place),
        cmocka_unit_test(test_coro_near_memory_shares_the_stack_top_page),
        cmocka_unit_test(test_coro_new_with_refuses_bad_sizes),
    };

    fprintf(stderr, "coroutine switch: %s\n", coro_backend());
    return cmocka_run_group_tests(tests, NULL, NULL);
}
