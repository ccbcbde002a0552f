/* The child runner's main loop: read the plan, run setup, the planned test
 * attempts and teardown, reporting each step to the supervisor before and
 * after it happens, so that a crash is always attributed to the step that
 * was running. */
#include "child_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "mem.h"
#include "registry.h"

/* ---- Plan encoding ---------------------------------------------------- */

#define PLAN_RUN_SETUP 1u
#define PLAN_RUN_TEARDOWN 2u

void plan_encode(struct buf *b, const struct plan *p, size_t from)
{
    ipc_begin(b, IPC_PLAN);
    for (int i = 0; i < IPC_NONCE_LEN; i++) {
        ipc_put_u8(b, p->nonce[i]);
    }
    ipc_put_str(b, p->suite, SIZE_MAX);
    ipc_put_str(b, p->tempdir_root, SIZE_MAX);
    ipc_put_u8(b, (uint8_t)((p->run_setup ? PLAN_RUN_SETUP : 0) |
                            (p->run_teardown ? PLAN_RUN_TEARDOWN : 0)));
    ipc_put_u32(b, (uint32_t)p->n_params);
    for (size_t i = 0; i < p->n_params; i++) {
        ipc_put_str(b, p->params[i].key, SIZE_MAX);
        ipc_put_str(b, p->params[i].value, SIZE_MAX);
    }
    ipc_put_u32(b, (uint32_t)(p->base + from));
    ipc_put_u32(b, (uint32_t)(p->n_entries - from));
    for (size_t i = from; i < p->n_entries; i++) {
        const struct plan_entry *e = &p->entries[i];

        ipc_put_u32(b, e->test_index);
        ipc_put_u32(b, e->first_attempt);
        ipc_put_u32(b, e->max_attempts);
        ipc_put_i64(b, e->timeout_ns);
    }
    ipc_finish(b);
}

int plan_decode(const void *payload, size_t len, struct plan *out)
{
    struct ipc_reader r;
    struct plan p;
    uint8_t flags;
    uint32_t n;

    memset(&p, 0, sizeof(p));
    ipc_reader_init(&r, payload, len);
    for (int i = 0; i < IPC_NONCE_LEN; i++) {
        p.nonce[i] = ipc_get_u8(&r);
    }
    p.suite = mem_strdup(ipc_get_str(&r, NULL));
    p.tempdir_root = mem_strdup(ipc_get_str(&r, NULL));
    flags = ipc_get_u8(&r);
    p.run_setup = (flags & PLAN_RUN_SETUP) != 0;
    p.run_teardown = (flags & PLAN_RUN_TEARDOWN) != 0;
    n = ipc_get_u32(&r);
    /* Each parameter takes at least 10 bytes: a count that big is a lie. */
    if (n > len / 10) {
        goto fail;
    }
    for (uint32_t i = 0; i < n && !r.failed; i++) {
        const char *k = ipc_get_str(&r, NULL);
        const char *v = ipc_get_str(&r, NULL);

        result_kv_set(&p.params, &p.n_params, k, v);
    }
    p.base = ipc_get_u32(&r);
    n = ipc_get_u32(&r);
    if (n > len / 20) {
        goto fail;
    }
    p.entries = mem_calloc(n ? n : 1, sizeof(*p.entries));
    p.n_entries = n;
    for (uint32_t i = 0; i < n; i++) {
        p.entries[i].test_index = ipc_get_u32(&r);
        p.entries[i].first_attempt = ipc_get_u32(&r);
        p.entries[i].max_attempts = ipc_get_u32(&r);
        p.entries[i].timeout_ns = ipc_get_i64(&r);
    }
    if (!ipc_reader_ok(&r)) {
        goto fail;
    }
    *out = p;
    return ST_OK;
fail:
    plan_cleanup(&p);
    return ST_PROTOCOL;
}

void plan_cleanup(struct plan *p)
{
    free(p->suite);
    free(p->tempdir_root);
    result_kv_free(p->params, p->n_params);
    free(p->entries);
    memset(p, 0, sizeof(*p));
}

/* ---- Talking to the supervisor ---------------------------------------- */

static void supervisor_gone(void)
{
    /* Nobody is left to report to; the zygote kills the process group. */
    _exit(3);
}

static void write_out(struct child *c, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(c->out, p, len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            supervisor_gone();
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Writes piece after the held-back bytes, in one write when they fit in
 * an atomic pipe write (else two); with hold, keeps it back instead when
 * there is room. */
static void put_piece(struct child *c, const uint8_t *piece, size_t len,
                      bool hold)
{
    if (c->pend_len == 0 && !hold) {
        write_out(c, piece, len);
        return;
    }
    if (c->pend_len + len <= sizeof(c->pend)) {
        memcpy(c->pend + c->pend_len, piece, len);
        c->pend_len += len;
        if (!hold) {
            write_out(c, c->pend, c->pend_len);
            c->pend_len = 0;
        }
        return;
    }
    if (c->pend_len > 0) {
        write_out(c, c->pend, c->pend_len);
        c->pend_len = 0;
    }
    if (hold && len <= sizeof(c->pend)) {
        memcpy(c->pend, piece, len);
        c->pend_len = len;
        return;
    }
    write_out(c, piece, len);
}

/* Sends the frame in wbuf, after any held back; the caller holds the lock.
 * stdio is flushed first so that output written before this report
 * precedes it in the pipe. Each piece (prefix, header, payload) fits in
 * PIPE_BUF: one atomic write, never split by a user thread's output. With
 * hold (a step's end: nothing the supervisor waits on) a frame that fits
 * is kept back to go out with the next one, which halves the writes, and
 * the supervisor's wake-ups, of a suite of quick tests. */
static void send_frame_locked(struct child *c, bool hold)
{
    enum { CHUNK = IPC_PIPE_FRAME_MAX - IPC_PREFIX_LEN - IPC_HEADER_LEN };
    const uint8_t *payload = (const uint8_t *)c->wbuf.data + IPC_HEADER_LEN;
    size_t left = c->wbuf.len - IPC_HEADER_LEN;
    uint8_t type = (uint8_t)c->wbuf.data[4];
    uint8_t piece[IPC_PIPE_FRAME_MAX];

    fflush(stdout);
    fflush(stderr);
    memcpy(piece, c->prefix, IPC_PREFIX_LEN);
    do {
        size_t n = left > CHUNK ? CHUNK : left;
        uint8_t *h = piece + IPC_PREFIX_LEN;

        for (int i = 0; i < 4; i++) {
            h[i] = (uint8_t)((uint32_t)n >> (8 * i));
        }
        h[4] = left > CHUNK ? IPC_CONT : type;
        memcpy(h + IPC_HEADER_LEN, payload, n);
        put_piece(c, piece, IPC_PREFIX_LEN + IPC_HEADER_LEN + n,
                  hold && left == n);
        payload += n;
        left -= n;
    } while (left > 0);
}

static void send_locked(struct child *c)
{
    send_frame_locked(c, false);
}

void child_send_log(struct child *c, const char *text)
{
    pthread_mutex_lock(&c->lock);
    ipc_begin(&c->wbuf, IPC_LOG);
    ipc_put_str(&c->wbuf, text, CHILD_MAX_LOG);
    ipc_finish(&c->wbuf);
    send_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void child_send_simple(struct child *c, uint8_t type)
{
    pthread_mutex_lock(&c->lock);
    ipc_begin(&c->wbuf, type);
    ipc_finish(&c->wbuf);
    send_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void child_send_value(struct child *c, const char *key, const char *value)
{
    pthread_mutex_lock(&c->lock);
    ipc_begin(&c->wbuf, IPC_VALUE);
    ipc_put_str(&c->wbuf, key, CHILD_MAX_KEY);
    ipc_put_str(&c->wbuf, value, CHILD_MAX_VALUE);
    ipc_finish(&c->wbuf);
    send_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void child_send_span(struct child *c, const struct hf_span *s,
                     int64_t duration_ns)
{
    size_t n =
        s->n_attrs < CHILD_MAX_SPAN_ATTRS ? s->n_attrs : CHILD_MAX_SPAN_ATTRS;

    pthread_mutex_lock(&c->lock);
    ipc_begin(&c->wbuf, IPC_SPAN);
    ipc_put_str(&c->wbuf, s->name, CHILD_MAX_KEY);
    ipc_put_i64(&c->wbuf, s->start_unix_ns);
    ipc_put_i64(&c->wbuf, duration_ns);
    ipc_put_u32(&c->wbuf, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ipc_put_str(&c->wbuf, s->attrs[i].key, CHILD_MAX_KEY);
        ipc_put_str(&c->wbuf, s->attrs[i].value, CHILD_MAX_VALUE);
    }
    ipc_finish(&c->wbuf);
    send_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void child_send_deadline(struct child *c, int64_t deadline_mono_ns)
{
    pthread_mutex_lock(&c->lock);
    ipc_begin(&c->wbuf, IPC_DEADLINE);
    ipc_put_i64(&c->wbuf, deadline_mono_ns);
    ipc_finish(&c->wbuf);
    send_locked(c);
    pthread_mutex_unlock(&c->lock);
}

static void send_phase_start(struct child *c, enum ipc_phase phase,
                             uint32_t entry, int attempt, int64_t start,
                             int64_t deadline)
{
    pthread_mutex_lock(&c->lock);
    ipc_begin(&c->wbuf, IPC_PHASE_START);
    ipc_put_u8(&c->wbuf, (uint8_t)phase);
    ipc_put_u32(&c->wbuf, entry);
    ipc_put_u32(&c->wbuf, (uint32_t)attempt);
    ipc_put_i64(&c->wbuf, start);
    ipc_put_i64(&c->wbuf, deadline);
    ipc_put_i64(&c->wbuf, clock_real_ns());
    ipc_finish(&c->wbuf);
    send_locked(c);
    pthread_mutex_unlock(&c->lock);
}

static void send_phase_end(struct child *c, enum result_kind result,
                           int64_t duration_ns, const char *reason)
{
    pthread_mutex_lock(&c->lock);
    ipc_begin(&c->wbuf, IPC_PHASE_END);
    ipc_put_u8(&c->wbuf, (uint8_t)result);
    ipc_put_i64(&c->wbuf, duration_ns);
    ipc_put_str(&c->wbuf, reason, CHILD_MAX_LOG);
    ipc_finish(&c->wbuf);
    /* Out with the next step's start (or the end of the suite), which
     * follows before any user code runs. */
    send_frame_locked(c, true);
    pthread_mutex_unlock(&c->lock);
}

/* Handles the frames in rbuf. Returns false on a malformed frame. */
static bool handle_frames(struct child *c)
{
    for (;;) {
        uint8_t type;
        const uint8_t *payload;
        size_t plen;
        size_t flen;
        int rc = ipc_frame_peek(c->rbuf.data, c->rbuf.len, &type, &payload,
                                &plen, &flen);

        if (rc == 0) {
            return true;
        }
        if (rc < 0) {
            return false;
        }
        if (type == IPC_CANCEL) {
            c->cancelled = true;
        } else if (type == IPC_PLAN && !c->plan.suite) {
            if (plan_decode(payload, plen, &c->plan) != ST_OK) {
                return false;
            }
        } else {
            return false;
        }
        buf_consume(&c->rbuf, flen);
    }
}

/* Reads from ctl; with block, waits for at least one byte. */
static void read_ctl(struct child *c, bool block)
{
    char tmp[65536];

    for (;;) {
        ssize_t n = recv(c->ctl, tmp, sizeof(tmp), block ? 0 : MSG_DONTWAIT);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            supervisor_gone();
        }
        buf_add(&c->rbuf, tmp, (size_t)n);
        if (!handle_frames(c)) {
            supervisor_gone();
        }
        if (block) {
            return;
        }
    }
}

void child_poll(struct child *c)
{
    if (!c->cancelled) {
        read_ctl(c, false);
    }
}

/* Between steps: a cancel waiting on ctl? Looked for at most every
 * millisecond: a suite of quick tests does not pay a system call each. */
static void poll_between_steps(struct child *c)
{
    int64_t now = clock_mono_ns();

    if (now - c->polled_mono_ns >= CLOCK_NS_PER_MS) {
        c->polled_mono_ns = now;
        child_poll(c);
    }
}

/* ---- Running user code ------------------------------------------------ */

void child_stop(hf_t *t)
{
    if (t->jump && pthread_equal(pthread_self(), t->thread)) {
        longjmp(*t->jump, 1);
    }
    child_send_log(t->child,
                   "handoff: a fatal call outside the test's own thread "
                   "marks the test failed and ends only that thread");
    pthread_exit(NULL);
}

/* Runs fn and then the cleanups, each unwound to on a fatal call. */
static void run_with_cleanups(hf_t *t, void (*fn)(hf_t *t))
{
    jmp_buf jb;

    t->thread = pthread_self();
    t->jump = &jb;
    if (setjmp(jb) == 0) {
        fn(t);
    }
    t->in_cleanup = true;
    while (t->n_cleanups > 0) {
        struct child_cleanup cl = t->cleanups[--t->n_cleanups];
        jmp_buf cj;

        t->jump = &cj;
        if (setjmp(cj) == 0) {
            cl.fn(t, cl.arg);
        }
    }
    t->jump = NULL;
    api_end_attempt(t);
}

/* Runs one step (setup, an attempt, teardown) and reports its outcome. */
static enum result_kind run_step(struct child *c, enum ipc_phase phase,
                                 uint32_t entry, const char *name,
                                 void (*fn)(hf_t *t), int attempt,
                                 int64_t timeout_ns)
{
    hf_t t;
    int64_t start = clock_mono_ns();
    enum result_kind result = RESULT_PASSED;
    char *reason = NULL;
    int64_t duration;

    memset(&t, 0, sizeof(t));
    t.child = c;
    t.name = name;
    t.phase = phase;
    t.attempt = attempt;
    t.deadline_mono_ns = start + timeout_ns;
    send_phase_start(c, phase, entry, attempt, start, t.deadline_mono_ns);
    run_with_cleanups(&t, fn);
    duration = clock_mono_ns() - start;
    if (clock_mono_ns() > t.deadline_mono_ns) {
        char d[32];

        clock_format_duration(t.deadline_mono_ns - start, d, sizeof(d));
        result = RESULT_ERROR;
        reason = mem_printf("timed out after %s", d);
    } else if (t.failed) {
        result = RESULT_FAILED;
    } else if (t.skipped) {
        result = RESULT_SKIPPED;
    }
    send_phase_end(c, result, duration, reason);
    free(reason);
    return result;
}

static void reset_signals(void)
{
    static const int defaults[] = {SIGSEGV, SIGBUS,  SIGFPE,  SIGILL, SIGABRT,
                                   SIGTRAP, SIGSYS,  SIGPIPE, SIGINT, SIGTERM,
                                   SIGQUIT, SIGCHLD, SIGHUP};
    sigset_t none;

    /* Sanitizer runtimes and the zygote install handlers and masks; user
     * code must crash the plain way so the supervisor sees the signal. */
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        signal(defaults[i], SIG_DFL);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void child_main(int ctl_fd)
{
    static struct child c;
    const struct hf_suite *s;
    bool setup_ok = true;

    reset_signals();
    c.ctl = ctl_fd;
    /* A private copy of stdout: user code may close or redirect fd 1. */
    c.out = fcntl(1, F_DUPFD_CLOEXEC, 100);
    if (c.out < 0) {
        supervisor_gone();
    }
    pthread_mutex_init(&c.lock, NULL);
    buf_init(&c.wbuf, 0);
    buf_init(&c.rbuf, 0);
    while (!c.plan.suite) {
        read_ctl(&c, true);
    }
    ipc_prefix(c.plan.nonce, c.prefix);
    s = registry_find(c.plan.suite);
    if (!s) {
        supervisor_gone();
    }
    c.suite = s;
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (c.plan.run_setup && s->setup) {
        int64_t timeout = registry_test_timeout_ms(s, NULL) * CLOCK_NS_PER_MS;

        setup_ok = run_step(&c, IPC_PHASE_SETUP, 0, "setup", s->setup, 1,
                            timeout) == RESULT_PASSED;
    }
    for (size_t i = 0; setup_ok && i < c.plan.n_entries; i++) {
        const struct plan_entry *e = &c.plan.entries[i];
        const struct hf_test *test = &s->tests[e->test_index];
        int attempt = (int)e->first_attempt;

        poll_between_steps(&c);
        if (c.cancelled) {
            break;
        }
        for (;;) {
            enum result_kind r =
                run_step(&c, IPC_PHASE_TEST, c.plan.base + (uint32_t)i,
                         test->name, test->fn, attempt, e->timeout_ns);

            if ((r != RESULT_FAILED && r != RESULT_ERROR) ||
                attempt >= (int)e->max_attempts) {
                break;
            }
            poll_between_steps(&c);
            if (c.cancelled) {
                break;
            }
            attempt++;
        }
    }
    if (c.plan.run_teardown && s->teardown) {
        int64_t timeout = registry_test_timeout_ms(s, NULL) * CLOCK_NS_PER_MS;

        run_step(&c, IPC_PHASE_TEARDOWN, 0, "teardown", s->teardown, 1,
                 timeout);
    }
    child_send_simple(&c, IPC_DONE);
    fflush(NULL);
    _exit(0);
}
