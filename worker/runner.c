/* The supervisor of one suite run (see runner.h). One child at a time; the
 * plan is a list of entries (test, attempts), and pos is the first entry
 * not yet finished. A new child gets the plan from pos on. */
#define _GNU_SOURCE /* sigabbrev_np */

#include "runner.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "fsutil.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "registry.h"
#include "zygote.h"

/* Children that die outside any step, in a row, before the run gives up. */
#define RUNNER_MAX_IDLE_DEATHS 3
/* Longest "last output" quoted in a crash reason. */
#define RUNNER_TAIL_MAX 300
#define RUNNER_MAX_VALUES 1000
#define RUNNER_MAX_SPANS 1000

enum rstep { STEP_NONE, STEP_SETUP, STEP_TEST, STEP_TEARDOWN };

struct rchild {
    bool active; /* spawn requested, exit not yet seen */
    bool spawned;
    uint64_t zid;
    pid_t pid;
    int ctl; /* to the child: plan, cancel */
    int out; /* from the child: output and reports */
    struct event *out_ev;
    uint8_t prefix[IPC_PREFIX_LEN];
    struct buf in;   /* bytes read from out, not yet handled */
    struct buf cont; /* pieces of a long report so far */
    struct buf line; /* output bytes of an unfinished line */
    bool out_eof;
    bool done; /* IPC_DONE received */
    bool killed;
    char *kill_reason;
    enum rstep step; /* the step running now */
    size_t entry;    /* STEP_TEST: the plan entry */
    size_t test;     /* STEP_TEST: index in result.tests */
    int64_t step_start_mono_ns;
    int64_t deadline_mono_ns;
    bool progressed; /* a step started in this child */
};

struct runner {
    struct event_base *base;
    struct zygote *z;
    struct runner_config cfg;
    const struct hf_suite *suite;
    struct result_suite result;
    struct plan plan;
    size_t *entry_test;    /* plan entry -> index in result.tests */
    size_t pos;            /* first unfinished plan entry */
    uint32_t next_attempt; /* first attempt of entry pos in the next
                                   child (1 unless a crash ended one) */
    struct rchild child;
    struct event *kill_timer; /* step deadline + grace */
    struct event *suite_timer;
    struct event *cancel_timer; /* grace after a cancel */
    struct event *done_ev;
    bool setup_failed; /* no more tests; teardown still due */
    bool teardown_done;
    bool cancelling;
    bool timed_out; /* the suite timer stopped the run */
    bool finished;
    int idle_deaths;
    int64_t start_mono_ns;
    char *tempdir;
};

static const struct zygote_child_ops runner_child_ops;

static void emit(struct runner *r, struct report_event *ev)
{
    ev->suite = r->result.name;
    ev->ns = r->result.ns;
    if (!ev->time_unix_ns) {
        ev->time_unix_ns = clock_real_ns();
    }
    if (r->cfg.on_event) {
        r->cfg.on_event(r->cfg.arg, ev);
    }
}

static int entry_max_attempts(const struct runner *r, size_t entry)
{
    return (int)r->plan.entries[entry].max_attempts;
}

/* ---- Output ----------------------------------------------------------- */

/* The buffer output goes to now, and the test it belongs to (or NULL). */
static struct buf *output_target(struct runner *r, const char **test,
                                 struct result_attempt **attempt)
{
    struct rchild *c = &r->child;

    *test = NULL;
    *attempt = NULL;
    switch (c->step) {
    case STEP_SETUP:
        return &r->result.setup.log;
    case STEP_TEARDOWN:
        return &r->result.teardown.log;
    case STEP_TEST: {
        struct result_test *t = &r->result.tests[c->test];

        *test = t->name;
        *attempt = &t->attempts[t->n_attempts - 1];
        return &(*attempt)->log;
    }
    case STEP_NONE:
        break;
    }
    return &r->result.log;
}

/* Records text (whole lines) as output of the current step and emits it. */
static void add_output(struct runner *r, const char *text, size_t len)
{
    const char *test;
    struct result_attempt *a;
    struct buf *dst = output_target(r, &test, &a);
    struct report_event ev = {.kind = REPORT_OUTPUT};

    if (len == 0) {
        return;
    }
    if (buf_append(dst, text, len) != ST_OK) {
        /* Over the per-test cap: counted, and reported at the end. */
        if (a) {
            a->log_dropped += len;
        }
        return;
    }
    ev.test = test;
    ev.attempt = a ? a->attempt : 0;
    ev.output = text;
    ev.output_len = len;
    emit(r, &ev);
}

/* A runner note on its own line: "    handoff: ...". */
static void add_note(struct runner *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_note(struct runner *r, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    char *line;

    va_start(ap, fmt);
    msg = mem_vprintf(fmt, ap);
    va_end(ap);
    line = mem_printf("    handoff: %s\n", msg);
    add_output(r, line, strlen(line));
    free(line);
    free(msg);
}

/* Raw output bytes from the child's stdout/stderr: passed on by line. */
static void add_raw(struct runner *r, const char *data, size_t len)
{
    struct buf *line = &r->child.line;
    const char *nl = memrchr(data, '\n', len);

    if (!nl) {
        buf_add(line, data, len);
        return;
    }
    if (line->len) {
        buf_add(line, data, (size_t)(nl - data) + 1);
        add_output(r, line->data, line->len);
        buf_reset(line);
    } else {
        add_output(r, data, (size_t)(nl - data) + 1);
    }
    buf_add(line, nl + 1, len - (size_t)(nl - data) - 1);
}

static void flush_line(struct runner *r)
{
    struct buf *line = &r->child.line;

    if (line->len) {
        buf_addc(line, '\n');
        add_output(r, line->data, line->len);
        buf_reset(line);
    }
}

/* A log line from hf_log: indented as go test shows t.Log output, with
 * continuation lines indented further. */
static void add_log(struct runner *r, const char *text, size_t len)
{
    struct buf b;

    buf_init(&b, 0);
    buf_adds(&b, "    ");
    for (size_t i = 0; i < len; i++) {
        buf_addc(&b, text[i]);
        if (text[i] == '\n' && i + 1 < len) {
            buf_adds(&b, "        ");
        }
    }
    if (b.data[b.len - 1] != '\n') {
        buf_addc(&b, '\n');
    }
    add_output(r, b.data, b.len);
    buf_cleanup(&b);
}

/* ---- Timers ----------------------------------------------------------- */

static void arm_at(struct event *ev, int64_t when_mono_ns)
{
    int64_t left = when_mono_ns - clock_mono_ns();
    struct timeval tv;

    if (left < 0) {
        left = 0;
    }
    tv.tv_sec = (time_t)(left / CLOCK_NS_PER_S);
    tv.tv_usec = (suseconds_t)((left % CLOCK_NS_PER_S) / 1000);
    event_add(ev, &tv);
}

static void kill_child(struct runner *r, const char *reason)
{
    struct rchild *c = &r->child;

    if (!c->active || !c->spawned || c->killed) {
        return;
    }
    c->killed = true;
    c->kill_reason = mem_strdup(reason);
    zygote_kill(r->z, c->zid, SIGKILL);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
    struct runner *r = arg;
    char d[32];
    char *reason;

    (void)fd;
    (void)what;
    clock_format_duration(
        r->child.deadline_mono_ns - r->child.step_start_mono_ns, d, sizeof(d));
    reason = mem_printf("timed out after %s; killed", d);
    kill_child(r, reason);
    free(reason);
}

/* ---- Finishing -------------------------------------------------------- */

static void on_done_ev(evutil_socket_t fd, short what, void *arg)
{
    struct runner *r = arg;

    (void)fd;
    (void)what;
    if (r->cfg.on_done) {
        r->cfg.on_done(r->cfg.arg, r);
    }
}

static void remove_tempdir(struct runner *r)
{
    if (r->tempdir) {
        fs_remove_tree(r->tempdir);
        free(r->tempdir);
        r->tempdir = NULL;
    }
}

static void finish(struct runner *r)
{
    struct report_event ev = {.kind = REPORT_SUITE_END};

    if (r->finished) {
        return;
    }
    r->finished = true;
    event_del(r->kill_timer);
    event_del(r->suite_timer);
    event_del(r->cancel_timer);
    remove_tempdir(r);
    r->result.duration_ns = clock_mono_ns() - r->start_mono_ns;
    result_suite_finish(&r->result);
    ev.result = r->result.result;
    ev.elapsed_ns = r->result.duration_ns;
    ev.reason = r->result.reason;
    emit(r, &ev);
    event_active(r->done_ev, EV_TIMEOUT, 0);
}

/* ---- Steps ------------------------------------------------------------ */

static void skip_entry(struct runner *r, size_t entry, const char *reason)
{
    struct result_test *t = &r->result.tests[r->entry_test[entry]];
    struct result_attempt *a;
    struct report_event ev = {.kind = REPORT_TEST_RUN};
    enum rstep saved = r->child.step;
    size_t saved_test = r->child.test;

    a = result_test_add_attempt(t, r->cfg.output_cap);
    a->start_unix_ns = clock_real_ns();
    a->result = RESULT_SKIPPED;
    a->reason = mem_strdup(reason);
    ev.test = t->name;
    ev.attempt = a->attempt;
    ev.max_attempts = entry_max_attempts(r, entry);
    emit(r, &ev);
    r->child.step = STEP_TEST;
    r->child.test = r->entry_test[entry];
    add_note(r, "skipped: %s", reason);
    r->child.step = saved;
    r->child.test = saved_test;
    memset(&ev, 0, sizeof(ev));
    ev.kind = REPORT_TEST_END;
    ev.test = t->name;
    ev.attempt = a->attempt;
    ev.max_attempts = entry_max_attempts(r, entry);
    ev.result = RESULT_SKIPPED;
    ev.reason = reason;
    emit(r, &ev);
}

static void skip_remaining(struct runner *r, const char *reason)
{
    while (r->pos < r->plan.n_entries) {
        skip_entry(r, r->pos++, reason);
    }
    r->next_attempt = 1;
}

/* Ends the current test attempt with result and tells the reporters. */
static void end_test_attempt(struct runner *r, enum result_kind result,
                             int64_t duration_ns, const char *reason)
{
    struct rchild *c = &r->child;
    struct result_test *t = &r->result.tests[c->test];
    struct result_attempt *a = &t->attempts[t->n_attempts - 1];
    int max = entry_max_attempts(r, c->entry);
    bool bad = result == RESULT_FAILED || result == RESULT_ERROR;
    struct report_event ev = {.kind = REPORT_TEST_END};

    flush_line(r);
    a->result = result;
    a->duration_ns = duration_ns;
    if (reason && *reason) {
        a->reason = mem_strdup(reason);
    }
    if (a->log_dropped) {
        size_t max_len = a->log.max;
        char *note = mem_printf("    handoff: output truncated: %zu bytes "
                                "dropped (cap %zu bytes per test)\n",
                                a->log_dropped, max_len);

        a->log.max = 0;
        buf_adds(&a->log, note);
        a->log.max = max_len;
        ev.kind = REPORT_OUTPUT;
        ev.test = t->name;
        ev.attempt = a->attempt;
        ev.output = note;
        ev.output_len = strlen(note);
        emit(r, &ev);
        free(note);
        memset(&ev, 0, sizeof(ev));
        ev.kind = REPORT_TEST_END;
    }
    ev.test = t->name;
    ev.attempt = a->attempt;
    ev.max_attempts = max;
    ev.result = result;
    ev.soft_failure = a->soft_failure && bad;
    ev.retry = bad && a->attempt < max && !r->cancelling;
    ev.flaky = result == RESULT_PASSED && result_test_is_flaky(t);
    ev.elapsed_ns = duration_ns;
    ev.reason = a->reason;
    c->step = STEP_NONE;
    event_del(r->kill_timer);
    if (ev.retry) {
        r->next_attempt = (uint32_t)a->attempt + 1;
    } else {
        r->pos = c->entry + 1;
        r->next_attempt = 1;
    }
    emit(r, &ev);
}

static void end_phase(struct runner *r, struct result_phase *p,
                      enum result_kind result, int64_t duration_ns,
                      const char *reason)
{
    flush_line(r);
    p->result = result;
    p->duration_ns = duration_ns;
    if (reason && *reason) {
        free(p->reason);
        p->reason = mem_strdup(reason);
    }
    r->child.step = STEP_NONE;
    event_del(r->kill_timer);
}

static void setup_did_not_pass(struct runner *r)
{
    struct result_phase *p = &r->result.setup;
    char *why;

    r->setup_failed = true;
    if (p->result == RESULT_SKIPPED) {
        why = mem_printf("setup skipped the suite%s%s", p->reason ? ": " : "",
                         p->reason ? p->reason : "");
    } else {
        why = mem_printf("setup %s%s%s", result_kind_str(p->result),
                         p->reason ? ": " : "", p->reason ? p->reason : "");
    }
    skip_remaining(r, why);
    free(why);
    if (p->result == RESULT_SKIPPED) {
        /* A deliberate skip of the whole suite is not a failure. */
        p->result = RESULT_PASSED;
    }
}

/* ---- Control messages ------------------------------------------------- */

static int handle_phase_start(struct runner *r, struct ipc_reader *rd)
{
    struct rchild *c = &r->child;
    uint8_t phase = ipc_get_u8(rd);
    uint32_t entry = ipc_get_u32(rd);
    uint32_t attempt = ipc_get_u32(rd);
    int64_t start_mono = ipc_get_i64(rd);
    int64_t deadline = ipc_get_i64(rd);
    int64_t start_unix = ipc_get_i64(rd);

    if (!ipc_reader_ok(rd) || c->step != STEP_NONE) {
        return ST_PROTOCOL;
    }
    c->step_start_mono_ns = start_mono;
    c->deadline_mono_ns = deadline;
    c->progressed = true;
    if (phase == IPC_PHASE_SETUP) {
        r->result.setup.ran = true;
        r->result.setup.start_unix_ns = start_unix;
        c->step = STEP_SETUP;
    } else if (phase == IPC_PHASE_TEARDOWN) {
        r->result.teardown.ran = true;
        r->result.teardown.start_unix_ns = start_unix;
        c->step = STEP_TEARDOWN;
    } else if (phase == IPC_PHASE_TEST) {
        struct report_event ev = {.kind = REPORT_TEST_RUN};
        struct result_test *t;
        struct result_attempt *a;

        /* The child runs the plan in order: anything else is corruption. */
        if (entry != r->pos || attempt < 1 ||
            (int)attempt > entry_max_attempts(r, entry)) {
            return ST_PROTOCOL;
        }
        c->step = STEP_TEST;
        c->entry = entry;
        c->test = r->entry_test[entry];
        t = &r->result.tests[c->test];
        a = result_test_add_attempt(t, r->cfg.output_cap);
        a->attempt = (int)attempt;
        a->start_unix_ns = start_unix;
        ev.test = t->name;
        ev.attempt = (int)attempt;
        ev.max_attempts = entry_max_attempts(r, entry);
        ev.time_unix_ns = start_unix;
        emit(r, &ev);
    } else {
        return ST_PROTOCOL;
    }
    arm_at(r->kill_timer, deadline + r->cfg.kill_grace_ns);
    return ST_OK;
}

static int handle_phase_end(struct runner *r, struct ipc_reader *rd)
{
    struct rchild *c = &r->child;
    uint8_t result = ipc_get_u8(rd);
    int64_t duration = ipc_get_i64(rd);
    const char *reason = ipc_get_str(rd, NULL);

    if (!ipc_reader_ok(rd) || c->step == STEP_NONE ||
        (result != RESULT_PASSED && result != RESULT_FAILED &&
         result != RESULT_SKIPPED && result != RESULT_ERROR)) {
        return ST_PROTOCOL;
    }
    switch (c->step) {
    case STEP_SETUP:
        end_phase(r, &r->result.setup, result, duration, reason);
        if (result != RESULT_PASSED) {
            setup_did_not_pass(r);
        }
        break;
    case STEP_TEARDOWN:
        end_phase(r, &r->result.teardown, result, duration, reason);
        r->teardown_done = true;
        break;
    case STEP_TEST:
        if (r->cancelling &&
            (result == RESULT_PASSED || result == RESULT_SKIPPED)) {
            /* It stopped because of the cancel: it did not finish. */
            char *why = mem_printf("interrupted: %s", r->result.reason);

            end_test_attempt(r, RESULT_ERROR, duration, why);
            free(why);
        } else {
            end_test_attempt(r, result, duration, reason);
        }
        break;
    case STEP_NONE:
        break;
    }
    return ST_OK;
}

static struct result_attempt *current_attempt(struct runner *r)
{
    struct result_test *t;

    if (r->child.step != STEP_TEST) {
        return NULL;
    }
    t = &r->result.tests[r->child.test];
    return &t->attempts[t->n_attempts - 1];
}

static int handle_span(struct runner *r, struct ipc_reader *rd)
{
    struct result_attempt *a = current_attempt(r);
    const char *name = ipc_get_str(rd, NULL);
    int64_t start = ipc_get_i64(rd);
    int64_t duration = ipc_get_i64(rd);
    uint32_t n = ipc_get_u32(rd);
    struct result_span *sp = NULL;

    if (n > 1024) {
        return ST_PROTOCOL;
    }
    if (a && a->n_spans < RUNNER_MAX_SPANS) {
        sp = result_attempt_add_span(a, name, start);
        sp->duration_ns = duration;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *k = ipc_get_str(rd, NULL);
        const char *v = ipc_get_str(rd, NULL);

        if (sp && !rd->failed) {
            result_kv_set(&sp->attrs, &sp->n_attrs, k, v);
        }
    }
    return ipc_reader_ok(rd) ? ST_OK : ST_PROTOCOL;
}

static int handle_frame(struct runner *r, uint8_t type, const uint8_t *p,
                        size_t len)
{
    struct ipc_reader rd;
    struct result_attempt *a;

    ipc_reader_init(&rd, p, len);
    switch (type) {
    case IPC_PHASE_START:
        return handle_phase_start(r, &rd);
    case IPC_PHASE_END:
        return handle_phase_end(r, &rd);
    case IPC_LOG: {
        size_t n;
        const char *text = ipc_get_str(&rd, &n);

        if (!ipc_reader_ok(&rd)) {
            return ST_PROTOCOL;
        }
        flush_line(r);
        add_log(r, text, n);
        return ST_OK;
    }
    case IPC_SOFT:
        a = current_attempt(r);
        if (a) {
            a->soft_failure = true;
        }
        return ST_OK;
    case IPC_VALUE: {
        const char *k = ipc_get_str(&rd, NULL);
        const char *v = ipc_get_str(&rd, NULL);

        if (!ipc_reader_ok(&rd)) {
            return ST_PROTOCOL;
        }
        a = current_attempt(r);
        if (a && a->n_values < RUNNER_MAX_VALUES) {
            result_kv_set(&a->values, &a->n_values, k, v);
        }
        return ST_OK;
    }
    case IPC_SPAN:
        return handle_span(r, &rd);
    case IPC_DEADLINE:
        r->child.deadline_mono_ns = ipc_get_i64(&rd);
        if (!ipc_reader_ok(&rd)) {
            return ST_PROTOCOL;
        }
        if (r->child.step != STEP_NONE) {
            arm_at(r->kill_timer,
                   r->child.deadline_mono_ns + r->cfg.kill_grace_ns);
        }
        return ST_OK;
    case IPC_DONE:
        r->child.done = true;
        return ST_OK;
    default:
        return ST_PROTOCOL;
    }
}

/* Handles one report; long ones arrive as IPC_CONT pieces first. */
static int handle_piece(struct runner *r, uint8_t type, const uint8_t *p,
                        size_t len)
{
    struct rchild *c = &r->child;
    int rc;

    if (type == IPC_CONT || c->cont.len > 0) {
        if (c->cont.len + len > IPC_MAX_PAYLOAD) {
            return ST_PROTOCOL;
        }
        buf_add(&c->cont, p, len);
        if (type == IPC_CONT) {
            return ST_OK;
        }
        rc = handle_frame(r, type, (const uint8_t *)c->cont.data, c->cont.len);
        buf_reset(&c->cont);
        return rc;
    }
    return handle_frame(r, type, p, len);
}

/* Splits what was read from the child into output and reports, in order.
 * With at_eof, an unfinished prefix at the end is output after all. */
static void parse_stream(struct runner *r, bool at_eof)
{
    struct rchild *c = &r->child;
    size_t off = 0;

    while (off < c->in.len) {
        const char *p = c->in.data + off;
        size_t avail = c->in.len - off;
        const char *mark = memchr(p, IPC_SYNC_BYTE, avail);
        uint8_t type;
        const uint8_t *payload;
        size_t plen;
        size_t flen;
        int rc;

        if (mark != p) {
            size_t n = mark ? (size_t)(mark - p) : avail;

            add_raw(r, p, n);
            off += n;
            continue;
        }
        if (avail < IPC_PREFIX_LEN && memcmp(p, c->prefix, avail) == 0 &&
            !at_eof) {
            break; /* maybe a prefix: wait for the rest */
        }
        if (avail < IPC_PREFIX_LEN ||
            memcmp(p, c->prefix, IPC_PREFIX_LEN) != 0) {
            add_raw(r, p, 1); /* a 0x1e the test printed */
            off++;
            continue;
        }
        rc = ipc_frame_peek(p + IPC_PREFIX_LEN, avail - IPC_PREFIX_LEN, &type,
                            &payload, &plen, &flen);
        if (rc == 0 && !at_eof) {
            break;
        }
        if (rc <= 0 || handle_piece(r, type, payload, plen) != ST_OK) {
            log_warn("runner: suite %s: malformed report from the child "
                     "runner; killing it",
                     r->result.name);
            kill_child(r, "the child runner sent a malformed report "
                          "(memory corruption in the test?)");
            off = c->in.len;
            break;
        }
        off += IPC_PREFIX_LEN + flen;
    }
    buf_consume(&c->in, off);
}

/* Reads what the pipe holds now and handles it. */
static void read_out(struct runner *r)
{
    struct rchild *c = &r->child;
    char tmp[65536];

    while (c->out >= 0 && !c->out_eof) {
        ssize_t n = read(c->out, tmp, sizeof(tmp));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            /* Every writer is gone; the exit report comes separately. */
            c->out_eof = true;
            event_del(c->out_ev);
            break;
        }
        buf_add(&c->in, tmp, (size_t)n);
        parse_stream(r, false);
        if ((size_t)n < sizeof(tmp)) {
            break;
        }
    }
}

static void on_out(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_out(arg);
}

/* ---- Child lifecycle -------------------------------------------------- */

static void spawn_child(struct runner *r);

static void close_child(struct runner *r)
{
    struct rchild *c = &r->child;

    if (c->out_ev) {
        event_free(c->out_ev);
    }
    if (c->ctl >= 0) {
        close(c->ctl);
    }
    if (c->out >= 0) {
        close(c->out);
    }
    buf_cleanup(&c->in);
    buf_cleanup(&c->cont);
    buf_cleanup(&c->line);
    free(c->kill_reason);
    memset(c, 0, sizeof(*c));
    c->ctl = -1;
    c->out = -1;
}

static void on_spawned(void *arg, int ok, pid_t pid, int ctl_fd, int out_fd)
{
    struct runner *r = arg;
    struct rchild *c = &r->child;
    struct buf b;

    if (!ok) {
        c->active = false;
        add_note(r, "could not start a child runner");
        free(r->result.reason);
        r->result.reason = mem_strdup("could not start a child runner");
        skip_remaining(r, "no child runner");
        finish(r);
        return;
    }
    c->spawned = true;
    c->pid = pid;
    c->ctl = ctl_fd;
    c->out = out_fd;
    c->out_ev = event_new(r->base, out_fd, EV_READ | EV_PERSIST, on_out, r);
    event_add(c->out_ev, NULL);
    if (getrandom(r->plan.nonce, sizeof(r->plan.nonce), 0) !=
        (ssize_t)sizeof(r->plan.nonce)) {
        /* Only uniqueness matters here, not secrecy. */
        uint64_t v = (uint64_t)clock_mono_ns() ^ ((uint64_t)pid << 32);

        memcpy(r->plan.nonce, &v, sizeof(r->plan.nonce));
    }
    ipc_prefix(r->plan.nonce, c->prefix);

    r->plan.run_setup = !r->setup_failed && r->suite->setup != NULL;
    if (r->pos < r->plan.n_entries) {
        r->plan.entries[r->pos].first_attempt = r->next_attempt;
    }
    buf_init(&b, 0);
    plan_encode(&b, &r->plan, r->pos);
    /* The child reads its plan at once; a short blocking write is fine. */
    {
        int flags = fcntl(ctl_fd, F_GETFL);

        fcntl(ctl_fd, F_SETFL, flags & ~O_NONBLOCK);
        if (ipc_write_all(ctl_fd, b.data, b.len) != 0) {
            kill_child(r, "could not send the plan to the child runner");
        }
        fcntl(ctl_fd, F_SETFL, flags);
    }
    buf_cleanup(&b);
}

static char *describe_exit(int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);

        return mem_printf("killed by signal SIG%s (%s)%s",
                          abbrev ? abbrev : "?", strsignal(sig),
                          WCOREDUMP(status) ? ", core dumped" : "");
    }
    if (WIFEXITED(status)) {
        return mem_printf("the process exited with status %d (exit() "
                          "called while it ran)",
                          WEXITSTATUS(status));
    }
    return mem_printf("ended with wait status %d", status);
}

/* The last non-empty line of text that is not a runner note. */
static char *last_line(const struct buf *log)
{
    const char *s = buf_str(log);
    size_t end = log->len;

    while (end > 0) {
        size_t start = end;
        size_t e = end;

        while (e > 0 && (s[e - 1] == '\n' || s[e - 1] == ' ')) {
            e--;
        }
        start = e;
        while (start > 0 && s[start - 1] != '\n') {
            start--;
        }
        if (e > start) {
            const char *p = s + start;
            size_t n = e - start;

            while (n > 0 && *p == ' ') {
                p++;
                n--;
            }
            if (strncmp(p, "handoff: ", 9) != 0) {
                if (n > RUNNER_TAIL_MAX) {
                    p += n - RUNNER_TAIL_MAX;
                    n = RUNNER_TAIL_MAX;
                }
                return mem_strndup(p, n);
            }
        }
        end = start;
    }
    return NULL;
}

/* The child ended while a step ran: that step errors with the reason. */
static void step_died(struct runner *r, int status)
{
    struct rchild *c = &r->child;
    char *how = c->killed ? mem_strdup(c->kill_reason) : describe_exit(status);
    struct buf *log;
    const char *test;
    struct result_attempt *a;
    char *tail;
    char *reason;
    int64_t duration = clock_mono_ns() - c->step_start_mono_ns;

    flush_line(r);
    log = output_target(r, &test, &a);
    tail = last_line(log);
    reason =
        tail ? mem_printf("%s; last output: %s", how, tail) : mem_strdup(how);
    switch (c->step) {
    case STEP_SETUP:
        end_phase(r, &r->result.setup, RESULT_ERROR, duration, reason);
        setup_did_not_pass(r);
        break;
    case STEP_TEARDOWN:
        end_phase(r, &r->result.teardown, RESULT_ERROR, duration, reason);
        r->teardown_done = true;
        break;
    case STEP_TEST:
        end_test_attempt(r, RESULT_ERROR, duration, reason);
        break;
    case STEP_NONE:
        break;
    }
    free(how);
    free(tail);
    free(reason);
}

static void on_exited(void *arg, int status)
{
    struct runner *r = arg;
    struct rchild *c = &r->child;
    bool in_step;

    /* Reports and output still in the pipe came before the exit. */
    read_out(r);
    parse_stream(r, true);
    flush_line(r);
    in_step = c->step != STEP_NONE;
    if (in_step) {
        step_died(r, status);
        r->idle_deaths = 0;
    } else if (!c->done) {
        char *how =
            c->killed ? mem_strdup(c->kill_reason) : describe_exit(status);

        add_note(r, "child runner ended between steps: %s", how);
        free(how);
        r->idle_deaths = c->progressed ? 0 : r->idle_deaths + 1;
    }
    close_child(r);

    if (r->cancelling) {
        skip_remaining(r, r->result.reason ? r->result.reason : "cancelled");
    }
    if (r->idle_deaths >= RUNNER_MAX_IDLE_DEATHS) {
        free(r->result.reason);
        r->result.reason = mem_strdup("the child runner keeps dying before "
                                      "it runs anything");
        skip_remaining(r, r->result.reason);
        finish(r);
        return;
    }
    if (r->pos < r->plan.n_entries ||
        (!r->teardown_done && r->suite->teardown &&
         (r->result.setup.ran || !r->suite->setup))) {
        add_note(r, "starting a new child runner%s",
                 r->suite->setup && !r->setup_failed ? " (setup runs again)"
                                                     : "");
        spawn_child(r);
        return;
    }
    finish(r);
}

static const struct zygote_child_ops runner_child_ops = {
    .spawned = on_spawned,
    .exited = on_exited,
};

static void spawn_child(struct runner *r)
{
    struct rchild *c = &r->child;

    close_child(r);
    c->active = true;
    if (zygote_spawn(r->z, &runner_child_ops, r, &c->zid) != ST_OK) {
        c->active = false;
        free(r->result.reason);
        r->result.reason = mem_strdup("the zygote is gone: no child runner");
        skip_remaining(r, r->result.reason);
        finish(r);
    }
}

/* ---- Cancel and suite timeout ----------------------------------------- */

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
    struct runner *r = arg;

    (void)fd;
    (void)what;
    if (r->child.step == STEP_TEST) {
        kill_child(r, r->result.reason ? r->result.reason : "cancelled");
    }
}

void runner_cancel(struct runner *r, const char *reason)
{
    struct rchild *c = &r->child;

    if (r->finished || r->cancelling) {
        return;
    }
    r->cancelling = true;
    free(r->result.reason);
    r->result.reason = mem_strdup(reason ? reason : "cancelled");
    add_note(r, "run stopping: %s", r->result.reason);
    if (c->spawned && c->ctl >= 0) {
        struct buf b;

        buf_init(&b, 0);
        ipc_begin(&b, IPC_CANCEL);
        ipc_put_str(&b, r->result.reason, 1024);
        ipc_finish(&b);
        /* Best effort: a full socket means the child is not reading, and
         * the grace timer kills it anyway. */
        if (write(c->ctl, b.data, b.len) < 0) {
            log_debug("runner: cancel message not sent: %s", strerror(errno));
        }
        buf_cleanup(&b);
    }
    arm_at(r->cancel_timer, clock_mono_ns() + r->cfg.kill_grace_ns);
}

static void on_suite_timer(evutil_socket_t fd, short what, void *arg)
{
    struct runner *r = arg;
    char d[32];
    char *reason;

    (void)fd;
    (void)what;
    clock_format_duration(r->cfg.suite_timeout_ns, d, sizeof(d));
    reason = mem_printf("suite timed out after %s", d);
    if (!r->cancelling) {
        r->timed_out = true;
    }
    runner_cancel(r, reason);
    free(reason);
}

/* ---- Start and free --------------------------------------------------- */

/* A run's temporary directory is only named here; the first hf_tempdir
 * of the run makes it (api.c), and finish removes it if it exists. Most
 * suites never ask for one, and a mkdir and a tree walk per job were a
 * tenth of a worker's CPU with short suites (ext4 allocating inodes).
 * The names are predictable, so they live in a directory of this process
 * (mkdtemp, 0700) that nobody else can write to, one per parent directory,
 * removed when the process exits. A process killed (SIGKILL, the OOM
 * killer) cannot remove its base: the first base a process makes in a
 * parent removes those of dead ones there (sweep_stale_bases). */
#define RUNNER_TEMP_BASES 8

static struct {
    pthread_mutex_t lock;
    bool at_exit; /* remove_temp_bases registered */
    size_t n;
    char *parent[RUNNER_TEMP_BASES];
    char *base[RUNNER_TEMP_BASES];
    pid_t owner[RUNNER_TEMP_BASES]; /* the process that made it: a forked
                                       child inherits it, never removes it */
    int lock_fd[RUNNER_TEMP_BASES]; /* the base, flock'd while we live */
    uint64_t seq;
} temp_bases = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void remove_temp_bases(void)
{
    for (size_t i = 0; i < temp_bases.n; i++) {
        if (temp_bases.owner[i] == getpid()) {
            fs_remove_tree(temp_bases.base[i]);
            if (temp_bases.lock_fd[i] >= 0) {
                close(temp_bases.lock_fd[i]);
            }
        }
        free(temp_bases.base[i]);
        free(temp_bases.parent[i]);
    }
    temp_bases.n = 0;
}

/* Removes the bases under parent that belong to nobody any more: named
 * handoff-<pid>-XXXXXX, ours (uid), not locked (a base's process holds an
 * flock on it while it lives: that holds across pid namespaces sharing the
 * directory) and its pid gone (bases of older versions took no lock).
 * Best effort. */
static void sweep_stale_bases(const char *parent)
{
    DIR *dir = opendir(parent);
    struct dirent *e;

    while (dir && (e = readdir(dir)) != NULL) {
        int pid = 0;
        int end = 0;
        char *path;
        struct stat st;
        int fd;

        if (sscanf(e->d_name, "handoff-%d-%n", &pid, &end) != 1 || end == 0 ||
            strlen(e->d_name + end) != 6 || pid <= 0 || pid == getpid()) {
            continue;
        }
        path = mem_printf("%s/%s", parent, e->d_name);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
            flock(fd, LOCK_EX | LOCK_NB) == 0 && kill(pid, 0) != 0 &&
            errno == ESRCH) {
            fs_remove_tree(path);
        }
        if (fd >= 0) {
            close(fd);
        }
        free(path);
    }
    if (dir) {
        closedir(dir);
    }
}

/* The private directory under parent, made on first use; NULL on error
 * (errno set) or when there are too many parents. Under the lock. */
static const char *temp_base(const char *parent)
{
    char *tmpl;
    int fd;

    for (size_t i = 0; i < temp_bases.n; i++) {
        if (strcmp(temp_bases.parent[i], parent) == 0) {
            return temp_bases.base[i];
        }
    }
    if (temp_bases.n == RUNNER_TEMP_BASES) {
        errno = EMFILE;
        return NULL;
    }
    sweep_stale_bases(parent);
    tmpl = mem_printf("%s/handoff-%d-XXXXXX", parent, (int)getpid());
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    fd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)flock(fd, LOCK_EX | LOCK_NB); /* ours alone: it is new */
    }
    if (!temp_bases.at_exit) {
        temp_bases.at_exit = true;
        atexit(remove_temp_bases);
    }
    temp_bases.parent[temp_bases.n] = mem_strdup(parent);
    temp_bases.owner[temp_bases.n] = getpid();
    temp_bases.lock_fd[temp_bases.n] = fd;
    temp_bases.base[temp_bases.n++] = tmpl;
    return tmpl;
}

static int make_tempdir(struct runner *r)
{
    const char *parent = r->cfg.tempdir_parent;
    const char *base;
    int err;

    if (!parent || !*parent) {
        parent = getenv("TMPDIR");
    }
    if (!parent || !*parent) {
        parent = "/tmp";
    }
    pthread_mutex_lock(&temp_bases.lock);
    base = temp_base(parent);
    err = errno;
    if (base) {
        r->tempdir = mem_printf("%s/%s-%" PRIu64, base, r->result.name,
                                ++temp_bases.seq);
    }
    pthread_mutex_unlock(&temp_bases.lock);
    if (!base) {
        log_error("runner: suite %s: cannot create a temporary directory "
                  "in %s: %s",
                  r->result.name, parent, strerror(err));
        return ST_IO;
    }
    return ST_OK;
}

static void build_plan(struct runner *r)
{
    const struct hf_suite *s = r->suite;
    size_t n = registry_test_count(s);
    int count = r->cfg.count > 0 ? r->cfg.count : 1;
    size_t selected = 0;

    for (size_t i = 0; i < n; i++) {
        struct result_test *t =
            result_suite_add_test(&r->result, s->tests[i].name);

        (void)t;
        if (!r->cfg.skip_reasons || !r->cfg.skip_reasons[i]) {
            selected++;
        }
    }
    r->plan.suite = mem_strdup(s->name);
    r->plan.tempdir_root = mem_strdup(r->tempdir);
    r->plan.run_teardown = true;
    for (size_t i = 0; i < r->cfg.n_params; i++) {
        result_kv_set(&r->plan.params, &r->plan.n_params, r->cfg.params[i].key,
                      r->cfg.params[i].value);
    }
    r->plan.entries =
        mem_calloc(selected * (size_t)count + 1, sizeof(*r->plan.entries));
    r->entry_test =
        mem_calloc(selected * (size_t)count + 1, sizeof(*r->entry_test));
    for (int round = 0; round < count; round++) {
        for (size_t i = 0; i < n; i++) {
            const struct hf_test *test = &s->tests[i];
            struct plan_entry *e;
            int64_t timeout = r->cfg.test_timeout_ns;

            if (r->cfg.skip_reasons && r->cfg.skip_reasons[i]) {
                continue;
            }
            e = &r->plan.entries[r->plan.n_entries];
            e->test_index = (uint32_t)i;
            e->first_attempt = 1;
            e->max_attempts = (uint32_t)(r->cfg.max_attempts > 0
                                             ? r->cfg.max_attempts
                                             : registry_max_attempts(s, test));
            if (timeout <= 0) {
                timeout = registry_test_timeout_ms(s, test) * CLOCK_NS_PER_MS;
            }
            e->timeout_ns = timeout;
            r->entry_test[r->plan.n_entries] =
                round == 0 ? i
                           : (result_suite_add_test(&r->result, test->name),
                              r->result.n_tests - 1);
            r->plan.n_entries++;
        }
    }
}

static void copy_config(struct runner *r, const struct runner_config *cfg)
{
    size_t n = registry_test_count(cfg->suite);
    const char **reasons = NULL;
    struct result_kv *params = NULL;
    size_t n_params = 0;

    r->cfg = *cfg;
    if (cfg->skip_reasons) {
        reasons = mem_calloc(n, sizeof(*reasons));
        for (size_t i = 0; i < n; i++) {
            reasons[i] =
                cfg->skip_reasons[i] ? mem_strdup(cfg->skip_reasons[i]) : NULL;
        }
    }
    for (size_t i = 0; i < cfg->n_params; i++) {
        result_kv_set(&params, &n_params, cfg->params[i].key,
                      cfg->params[i].value);
    }
    r->cfg.skip_reasons = reasons;
    r->cfg.params = params;
    r->cfg.n_params = n_params;
    r->cfg.tempdir_parent =
        cfg->tempdir_parent ? mem_strdup(cfg->tempdir_parent) : NULL;
    if (r->cfg.kill_grace_ns <= 0) {
        r->cfg.kill_grace_ns = RUNNER_DEFAULT_KILL_GRACE_NS;
    }
    if (r->cfg.output_cap == 0) {
        r->cfg.output_cap = RUNNER_DEFAULT_OUTPUT_CAP;
    }
    if (r->cfg.suite_timeout_ns <= 0) {
        r->cfg.suite_timeout_ns =
            registry_suite_timeout_ms(cfg->suite) * CLOCK_NS_PER_MS;
    }
}

int runner_start(struct event_base *base, struct zygote *z,
                 const struct runner_config *cfg, struct runner **out)
{
    struct runner *r = mem_zalloc(sizeof(*r));
    struct report_event ev = {.kind = REPORT_SUITE_START};
    size_t n;

    r->base = base;
    r->z = z;
    r->suite = cfg->suite;
    r->child.ctl = -1;
    r->child.out = -1;
    r->next_attempt = 1;
    copy_config(r, cfg);
    result_suite_init(&r->result, cfg->suite->name,
                      registry_namespace(cfg->suite));
    if (make_tempdir(r) != ST_OK) {
        runner_free(r);
        return ST_IO;
    }
    build_plan(r);
    r->kill_timer = evtimer_new(base, on_kill_timer, r);
    r->suite_timer = evtimer_new(base, on_suite_timer, r);
    r->cancel_timer = evtimer_new(base, on_cancel_timer, r);
    r->done_ev = event_new(base, -1, 0, on_done_ev, r);
    r->start_mono_ns = clock_mono_ns();
    r->result.start_unix_ns = clock_real_ns();

    ev.time_unix_ns = r->result.start_unix_ns;
    emit(r, &ev);
    n = registry_test_count(r->suite);
    for (size_t i = 0; r->cfg.skip_reasons && i < n; i++) {
        if (r->cfg.skip_reasons[i]) {
            struct report_event sev = {.kind = REPORT_TEST_RUN};
            struct result_attempt *a =
                result_test_add_attempt(&r->result.tests[i], 0);

            a->start_unix_ns = clock_real_ns();
            a->result = RESULT_SKIPPED;
            a->reason = mem_strdup(r->cfg.skip_reasons[i]);
            sev.test = r->result.tests[i].name;
            sev.attempt = 1;
            sev.max_attempts = 1;
            emit(r, &sev);
            memset(&sev, 0, sizeof(sev));
            sev.kind = REPORT_TEST_END;
            sev.test = r->result.tests[i].name;
            sev.attempt = 1;
            sev.max_attempts = 1;
            sev.result = RESULT_SKIPPED;
            sev.reason = a->reason;
            emit(r, &sev);
        }
    }
    arm_at(r->suite_timer, r->start_mono_ns + r->cfg.suite_timeout_ns);
    r->child.active = true;
    if (zygote_spawn(z, &runner_child_ops, r, &r->child.zid) != ST_OK) {
        r->child.active = false;
        runner_free(r);
        return ST_UPSTREAM;
    }
    *out = r;
    return ST_OK;
}

struct result_suite *runner_result(struct runner *r)
{
    return &r->result;
}

bool runner_timed_out(const struct runner *r)
{
    return r->timed_out;
}

bool runner_is_done(const struct runner *r)
{
    return r->finished;
}

void runner_free(struct runner *r)
{
    size_t n;

    if (!r) {
        return;
    }
    if (r->child.active) {
        /* The zygote reaps it; nobody listens for the exit any more. */
        zygote_kill(r->z, r->child.zid, SIGKILL);
        zygote_forget(r->z, r->child.zid);
    }
    close_child(r);
    if (r->kill_timer) {
        event_free(r->kill_timer);
        event_free(r->suite_timer);
        event_free(r->cancel_timer);
        event_free(r->done_ev);
    }
    remove_tempdir(r);
    n = registry_test_count(r->suite);
    if (r->cfg.skip_reasons) {
        for (size_t i = 0; i < n; i++) {
            free((char *)r->cfg.skip_reasons[i]);
        }
        free((void *)r->cfg.skip_reasons);
    }
    result_kv_free((struct result_kv *)r->cfg.params, r->cfg.n_params);
    free((char *)r->cfg.tempdir_parent);
    plan_cleanup(&r->plan);
    free(r->entry_test);
    result_suite_cleanup(&r->result);
    free(r);
}
