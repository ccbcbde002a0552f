/* loadjob: supervises the child process of one load job (see loadjob.h):
 * sends it the job, relays its per-second snapshots, keeps the tail of its
 * output, kills it at its deadline or after a cancel's grace, and reports
 * how it ended once it has exited. */
#include "loadjob.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "clock.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "zygote.h"

#define LOADJOB_OUTPUT_TAIL 8192

struct loadjob {
    struct event_base *base;
    struct zygote *z;
    uint64_t id;
    struct loadjob_ops ops;
    int ctl;
    int out;
    bool spawned;
    bool exited;
    bool reported;
    struct event *ctl_ev;
    struct event *out_ev;
    struct event *deadline_ev;
    struct event *kill_ev;
    struct buf plan;
    struct buf rbuf;
    struct buf output;
    struct buf done; /* the LOADJOB_DONE payload, once received */
    bool got_done;
    char *cancel_reason; /* to send once spawned */
};

static void write_blocking(int fd, const struct buf *b)
{
    int fl = fcntl(fd, F_GETFL);

    (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (ipc_write_all(fd, b->data, b->len) != 0) {
        log_debug("worker: load child's control socket: %s", strerror(errno));
    }
    (void)fcntl(fd, F_SETFL, fl);
}

static void send_cancel(struct loadjob *j, const char *reason)
{
    struct buf b;

    buf_init(&b, 0);
    ipc_begin(&b, IPC_CANCEL);
    ipc_put_str(&b, reason, 1024);
    ipc_finish(&b);
    write_blocking(j->ctl, &b);
    buf_cleanup(&b);
}

static void keep_output(struct loadjob *j, const char *data, size_t n)
{
    buf_add(&j->output, data, n);
    if (j->output.len > 2 * LOADJOB_OUTPUT_TAIL) {
        buf_consume(&j->output, j->output.len - LOADJOB_OUTPUT_TAIL);
    }
}

/* Handles complete frames in rbuf. Returns false on a malformed one. */
static bool handle_frames(struct loadjob *j)
{
    for (;;) {
        uint8_t type;
        const uint8_t *payload;
        size_t plen;
        size_t flen;
        int r = ipc_frame_peek(j->rbuf.data, j->rbuf.len, &type, &payload,
                               &plen, &flen);

        if (r < 0) {
            return false;
        }
        if (r == 0) {
            return true;
        }
        if (type == LOADJOB_SNAP) {
            struct ipc_reader rd;
            int64_t second;
            int64_t t_ns;

            ipc_reader_init(&rd, payload, plen);
            second = ipc_get_i64(&rd);
            t_ns = ipc_get_i64(&rd);
            if (rd.failed || second < 1 || t_ns < 0) {
                return false;
            }
            if (j->ops.snapshot != NULL) {
                j->ops.snapshot(j->ops.arg, second, t_ns, rd.p,
                                (size_t)(rd.end - rd.p));
            }
        } else if (type == LOADJOB_DONE && !j->got_done) {
            buf_reset(&j->done);
            buf_add(&j->done, payload, plen);
            j->got_done = true;
        } else {
            return false;
        }
        buf_consume(&j->rbuf, flen);
    }
}

/* Reads what is there. Returns false at the end or on garbage. */
static bool read_ctl(struct loadjob *j)
{
    char tmp[65536];

    for (;;) {
        ssize_t n = read(j->ctl, tmp, sizeof(tmp));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (n <= 0) {
            return false;
        }
        buf_add(&j->rbuf, tmp, (size_t)n);
        if (!handle_frames(j)) {
            log_warn("worker: a load child sent a malformed frame; killing "
                     "it");
            zygote_kill(j->z, j->id, SIGKILL);
            return false;
        }
    }
}

static bool read_out(struct loadjob *j)
{
    char tmp[8192];

    for (;;) {
        ssize_t n = read(j->out, tmp, sizeof(tmp));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (n <= 0) {
            return false;
        }
        keep_output(j, tmp, (size_t)n);
    }
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
    struct loadjob *j = arg;

    (void)fd;
    (void)what;
    if (!read_ctl(j)) {
        event_del(j->ctl_ev);
    }
}

static void on_out(evutil_socket_t fd, short what, void *arg)
{
    struct loadjob *j = arg;

    (void)fd;
    (void)what;
    if (!read_out(j)) {
        event_del(j->out_ev);
    }
}

static void on_kill(evutil_socket_t fd, short what, void *arg)
{
    struct loadjob *j = arg;

    (void)fd;
    (void)what;
    if (!j->exited) {
        log_warn("worker: killing a load child that did not stop in time");
        zygote_kill(j->z, j->id, SIGKILL);
    }
}

static void report(struct loadjob *j, enum loadjob_outcome o,
                   const char *reason)
{
    struct loadjob_result r;

    memset(&r, 0, sizeof(r));
    r.outcome = o;
    r.reason = reason;
    r.output = buf_str(&j->output);
    j->reported = true;
    j->ops.done(j->ops.arg, &r);
}

/* Reports the child's LOADJOB_DONE. Returns false when it is malformed. */
static bool report_done(struct loadjob *j)
{
    struct ipc_reader rd;
    struct loadjob_result r;
    uint32_t n;

    memset(&r, 0, sizeof(r));
    ipc_reader_init(&rd, j->done.data, j->done.len);
    r.outcome = ipc_get_u8(&rd);
    r.reason = ipc_get_str(&rd, NULL);
    r.seconds = ipc_get_i64(&rd);
    n = ipc_get_u32(&rd);
    if (rd.failed || r.outcome > LOADJOB_ERROR || r.seconds < 0 ||
        (size_t)(rd.end - rd.p) < n) {
        return false;
    }
    r.setup_data = n ? rd.p : NULL;
    r.setup_len = n;
    rd.p += n;
    n = ipc_get_u32(&rd);
    if (rd.failed || (size_t)(rd.end - rd.p) < n) {
        return false;
    }
    r.spec = n ? rd.p : NULL;
    r.spec_len = n;
    rd.p += n;
    r.total = rd.p < rd.end ? rd.p : NULL;
    r.total_len = (size_t)(rd.end - rd.p);
    r.output = buf_str(&j->output);
    j->reported = true;
    j->ops.done(j->ops.arg, &r);
    return true;
}

static void on_spawned(void *arg, int ok, pid_t pid, int ctl_fd, int out_fd)
{
    struct loadjob *j = arg;

    (void)pid;
    if (!ok) {
        j->exited = true;
        report(j, LOADJOB_ERROR, "could not start a child process");
        return;
    }
    j->spawned = true;
    j->ctl = ctl_fd;
    j->out = out_fd;
    write_blocking(j->ctl, &j->plan);
    if (j->cancel_reason != NULL) {
        send_cancel(j, j->cancel_reason);
    }
    j->ctl_ev = event_new(j->base, j->ctl, EV_READ | EV_PERSIST, on_ctl, j);
    j->out_ev = event_new(j->base, j->out, EV_READ | EV_PERSIST, on_out, j);
    event_add(j->ctl_ev, NULL);
    event_add(j->out_ev, NULL);
}

static void on_exited(void *arg, int status)
{
    struct loadjob *j = arg;
    char why[256];

    j->exited = true;
    if (j->spawned) {
        (void)read_ctl(j);
        (void)read_out(j);
        event_del(j->ctl_ev);
        event_del(j->out_ev);
    }
    if (j->got_done && report_done(j)) {
        return;
    }
    if (WIFSIGNALED(status)) {
        snprintf(why, sizeof(why),
                 "the load process was killed by signal %d (%s)",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        snprintf(why, sizeof(why),
                 "the load process exited with status %d without a result",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    report(j, LOADJOB_ERROR, why);
}

static const struct zygote_child_ops child_ops = {
    .spawned = on_spawned,
    .exited = on_exited,
};

int loadjob_start(struct event_base *base, struct zygote *z, const void *job,
                  size_t len, int64_t deadline_mono_ns,
                  const struct loadjob_ops *ops, struct loadjob **out)
{
    struct loadjob *j = mem_zalloc(sizeof(*j));

    j->base = base;
    j->z = z;
    j->ops = *ops;
    j->ctl = -1;
    j->out = -1;
    buf_init(&j->plan, 0);
    buf_init(&j->rbuf, 0);
    buf_init(&j->output, 0);
    buf_init(&j->done, 0);
    ipc_begin(&j->plan, IPC_PLAN);
    buf_add(&j->plan, job, len);
    ipc_finish(&j->plan);
    j->kill_ev = evtimer_new(base, on_kill, j);
    j->deadline_ev = evtimer_new(base, on_kill, j);
    if (deadline_mono_ns > 0) {
        int64_t left = deadline_mono_ns - clock_mono_ns();
        struct timeval tv;

        if (left < 0) {
            left = 0;
        }
        tv.tv_sec = (time_t)(left / CLOCK_NS_PER_S);
        tv.tv_usec = (suseconds_t)((left % CLOCK_NS_PER_S) / 1000);
        evtimer_add(j->deadline_ev, &tv);
    }
    if (zygote_spawn(z, &child_ops, j, &j->id) != ST_OK) {
        j->exited = true;
        loadjob_free(j);
        return ST_UPSTREAM;
    }
    *out = j;
    return ST_OK;
}

void loadjob_cancel(struct loadjob *j, const char *reason, int64_t grace_ns)
{
    struct timeval tv;

    if (j == NULL || j->exited) {
        return;
    }
    if (j->spawned) {
        send_cancel(j, reason);
    } else if (j->cancel_reason == NULL) {
        j->cancel_reason = mem_strdup(reason);
    }
    tv.tv_sec = (time_t)(grace_ns / CLOCK_NS_PER_S);
    tv.tv_usec = (suseconds_t)((grace_ns % CLOCK_NS_PER_S) / 1000);
    evtimer_add(j->kill_ev, &tv);
}

void loadjob_free(struct loadjob *j)
{
    if (j == NULL) {
        return;
    }
    if (!j->exited) {
        zygote_kill(j->z, j->id, SIGKILL);
        zygote_forget(j->z, j->id);
    }
    if (j->ctl_ev != NULL) {
        event_free(j->ctl_ev);
    }
    if (j->out_ev != NULL) {
        event_free(j->out_ev);
    }
    event_free(j->kill_ev);
    event_free(j->deadline_ev);
    if (j->ctl >= 0) {
        close(j->ctl);
    }
    if (j->out >= 0) {
        close(j->out);
    }
    buf_cleanup(&j->plan);
    buf_cleanup(&j->rbuf);
    buf_cleanup(&j->output);
    buf_cleanup(&j->done);
    free(j->cancel_reason);
    free(j);
}
