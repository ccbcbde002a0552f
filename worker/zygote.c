/* The zygote process and the worker's handle on it. They talk over a
 * SOCK_SEQPACKET socketpair in fixed-size records (both ends are the same
 * binary); the zygote passes each child's two descriptors with SCM_RIGHTS. */
#define _GNU_SOURCE /* signalfd, close_range, MSG_CMSG_CLOEXEC */

#include "zygote.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

enum zygote_op { ZOP_SPAWN = 1, ZOP_KILL, ZOP_SPAWNED, ZOP_FAILED, ZOP_EXITED };

struct zygote_rec {
    uint8_t op;
    uint64_t id;
    int32_t pid;
    int32_t arg; /* ZOP_KILL: signal; ZOP_EXITED: status */
};

struct zygote_entry {
    uint64_t id;
    pid_t pid; /* 0 until spawned */
    const struct zygote_child_ops *ops;
    void *arg;
};

struct zygote {
    int fd;
    pid_t pid;
    bool dead;
    struct event *ev;
    uint64_t next_id;
    struct zygote_entry *entries;
    size_t n_entries;
};

/* ---- The zygote process ----------------------------------------------- */

struct zchild {
    uint64_t id;
    pid_t pid;
};

static int send_rec(int fd, const struct zygote_rec *rec, const int *fds,
                    int nfds)
{
    struct iovec iov = {.iov_base = (void *)rec, .iov_len = sizeof(*rec)};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct msghdr msg;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        struct cmsghdr *cm;

        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    }
    for (;;) {
        if (sendmsg(fd, &msg, MSG_NOSIGNAL) >= 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

static void zygote_fork_child(int sock, int sfd, uint64_t id,
                              void (*child_main)(int), struct zchild **kids,
                              size_t *n_kids)
{
    struct zygote_rec rec = {.op = ZOP_FAILED, .id = id};
    int ctl[2] = {-1, -1};
    int out[2] = {-1, -1};
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0 ||
        pipe2(out, O_CLOEXEC) != 0) {
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        goto fail;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);

        close(sock);
        close(sfd);
        close(ctl[0]);
        close(out[0]);
        setpgid(0, 0);
        if (devnull >= 0) {
            dup2(devnull, 0);
            close(devnull);
        }
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(out[1]);
        child_main(ctl[1]);
    }
    /* Both sides set the group so signals reach it whichever runs first. */
    setpgid(pid, pid);
    close(ctl[1]);
    close(out[1]);
    *kids = mem_reallocarray(*kids, *n_kids + 1, sizeof(**kids));
    (*kids)[*n_kids].id = id;
    (*kids)[(*n_kids)++].pid = pid;
    rec.op = ZOP_SPAWNED;
    rec.pid = pid;
    send_rec(sock, &rec, (int[]){ctl[0], out[0]}, 2);
    close(ctl[0]);
    close(out[0]);
    return;
fail:
    for (int i = 0; i < 2; i++) {
        if (ctl[i] >= 0) {
            close(ctl[i]);
        }
        if (out[i] >= 0) {
            close(out[i]);
        }
    }
    send_rec(sock, &rec, NULL, 0);
}

static void zygote_reap(int sock, struct zchild *kids, size_t *n_kids)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid <= 0) {
            return;
        }
        /* Whatever the test left running in its group goes too. */
        kill(-pid, SIGKILL);
        for (size_t i = 0; i < *n_kids; i++) {
            if (kids[i].pid == pid) {
                struct zygote_rec rec = {.op = ZOP_EXITED,
                                         .id = kids[i].id,
                                         .pid = pid,
                                         .arg = status};

                kids[i] = kids[--*n_kids];
                send_rec(sock, &rec, NULL, 0);
                break;
            }
        }
    }
}

static void zygote_main(int sock, void (*child_main)(int))
{
    struct zchild *kids = NULL;
    size_t n_kids = 0;
    sigset_t mask;
    int sfd;

    /* The terminal's Ctrl-C reaches the worker's process group; the
     * zygote ends when the worker closes the socket, not before. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        _exit(4);
    }
    for (;;) {
        struct pollfd pfd[2] = {{.fd = sock, .events = POLLIN},
                                {.fd = sfd, .events = POLLIN}};
        struct zygote_rec rec;
        ssize_t n;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (pfd[1].revents & POLLIN) {
            struct signalfd_siginfo si;

            while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
            }
            zygote_reap(sock, kids, &n_kids);
        }
        if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            continue;
        }
        n = recv(sock, &rec, sizeof(rec), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n != (ssize_t)sizeof(rec)) {
            break; /* the worker is gone */
        }
        if (rec.op == ZOP_SPAWN) {
            zygote_fork_child(sock, sfd, rec.id, child_main, &kids, &n_kids);
        } else if (rec.op == ZOP_KILL) {
            for (size_t i = 0; i < n_kids; i++) {
                if (kids[i].id == rec.id) {
                    kill(-kids[i].pid, rec.arg);
                }
            }
        }
    }
    for (size_t i = 0; i < n_kids; i++) {
        kill(-kids[i].pid, SIGKILL);
    }
    for (size_t i = 0; i < n_kids; i++) {
        waitpid(kids[i].pid, NULL, 0);
    }
    _exit(0);
}

int zygote_start(void (*child_main)(int ctl_fd), struct zygote **out)
{
    int sv[2];
    pid_t pid;
    struct zygote *z;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        log_error("zygote: socketpair: %s", strerror(errno));
        return ST_IO;
    }
    /* Unflushed stdio would be written again by every child. */
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        log_error("zygote: fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return ST_IO;
    }
    if (pid == 0) {
        close(sv[0]);
        /* Keep 0-2 and the socket; children must not inherit the rest. */
        if (sv[1] != 3) {
            dup2(sv[1], 3);
            close(sv[1]);
        }
        close_range(4, ~0U, 0);
        zygote_main(3, child_main);
    }
    close(sv[1]);
    z = mem_zalloc(sizeof(*z));
    z->fd = sv[0];
    z->pid = pid;
    z->next_id = 1;
    fcntl(z->fd, F_SETFL, fcntl(z->fd, F_GETFL) | O_NONBLOCK);
    *out = z;
    return ST_OK;
}

static struct zygote_entry *find_entry(struct zygote *z, uint64_t id)
{
    for (size_t i = 0; i < z->n_entries; i++) {
        if (z->entries[i].id == id) {
            return &z->entries[i];
        }
    }
    return NULL;
}

static void drop_entry(struct zygote *z, struct zygote_entry *e)
{
    *e = z->entries[--z->n_entries];
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* The zygote died (it should not: it runs no user code). Children it
 * forked are orphans now: kill their groups and report them ended. */
static void zygote_lost(struct zygote *z)
{
    log_error("zygote: the helper process that forks child runners died; "
              "no more suite runs can start in this worker");
    z->dead = true;
    event_del(z->ev);
    while (z->n_entries > 0) {
        struct zygote_entry e = z->entries[0];

        drop_entry(z, &z->entries[0]);
        if (e.pid == 0) {
            e.ops->spawned(e.arg, 0, 0, -1, -1);
        } else {
            kill(-e.pid, SIGKILL);
            e.ops->exited(e.arg, SIGKILL);
        }
    }
}

static void handle_rec(struct zygote *z, const struct zygote_rec *rec, int *fds,
                       int nfds)
{
    struct zygote_entry *e = find_entry(z, rec->id);

    if (!e) {
        for (int i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        return;
    }
    if (rec->op == ZOP_SPAWNED && nfds == 2) {
        e->pid = rec->pid;
        set_nonblock(fds[0]);
        set_nonblock(fds[1]);
        e->ops->spawned(e->arg, 1, rec->pid, fds[0], fds[1]);
    } else if (rec->op == ZOP_EXITED) {
        struct zygote_entry copy = *e;

        drop_entry(z, e);
        copy.ops->exited(copy.arg, rec->arg);
    } else {
        struct zygote_entry copy = *e;

        for (int i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        drop_entry(z, e);
        copy.ops->spawned(copy.arg, 0, 0, -1, -1);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct zygote *z = arg;

    (void)what;
    for (;;) {
        struct zygote_rec rec;
        struct iovec iov = {.iov_base = &rec, .iov_len = sizeof(rec)};
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(4 * sizeof(int))];
        } ctl;
        struct msghdr msg;
        struct cmsghdr *cm;
        int fds[4];
        int nfds = 0;
        ssize_t n;

        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                for (size_t i = 0; i < k && nfds < 4; i++) {
                    memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int),
                           sizeof(int));
                }
            }
        }
        if (n != (ssize_t)sizeof(rec)) {
            for (int i = 0; i < nfds; i++) {
                close(fds[i]);
            }
            zygote_lost(z);
            return;
        }
        handle_rec(z, &rec, fds, nfds);
    }
}

int zygote_attach(struct zygote *z, struct event_base *base)
{
    z->ev = event_new(base, z->fd, EV_READ | EV_PERSIST, on_readable, z);
    if (!z->ev || event_add(z->ev, NULL) != 0) {
        log_error("zygote: cannot watch the helper's socket");
        return ST_INTERNAL;
    }
    return ST_OK;
}

int zygote_spawn(struct zygote *z, const struct zygote_child_ops *ops,
                 void *arg, uint64_t *out_id)
{
    struct zygote_rec rec = {.op = ZOP_SPAWN, .id = z->next_id};

    if (z->dead || send_rec(z->fd, &rec, NULL, 0) != 0) {
        return ST_UPSTREAM;
    }
    z->entries =
        mem_reallocarray(z->entries, z->n_entries + 1, sizeof(*z->entries));
    z->entries[z->n_entries].id = z->next_id;
    z->entries[z->n_entries].pid = 0;
    z->entries[z->n_entries].ops = ops;
    z->entries[z->n_entries].arg = arg;
    z->n_entries++;
    *out_id = z->next_id++;
    return ST_OK;
}

void zygote_kill(struct zygote *z, uint64_t id, int sig)
{
    struct zygote_rec rec = {.op = ZOP_KILL, .id = id, .arg = sig};

    if (!z->dead) {
        send_rec(z->fd, &rec, NULL, 0);
    }
}

void zygote_forget(struct zygote *z, uint64_t id)
{
    struct zygote_entry *e = find_entry(z, id);

    if (e) {
        /* A spawned reply still on its way carries descriptors that
         * handle_rec closes when it finds no entry. */
        drop_entry(z, e);
    }
}

size_t zygote_live(const struct zygote *z)
{
    return z->n_entries;
}

void zygote_free(struct zygote *z)
{
    if (!z) {
        return;
    }
    if (z->ev) {
        event_free(z->ev);
    }
    close(z->fd);
    while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    free(z->entries);
    free(z);
}
