/* Two minimal HTTP/1.1 keep-alive clients on libevent, identical but for
 * the transport: raw non-blocking sockets with a persistent read event and
 * send() straight from the read callback, or bufferevents (an input
 * evbuffer read into and linearised for the parser, an output evbuffer
 * flushed from a write event). No coroutines, no metrics: the difference is
 * the transport's alone. */
#include "load_transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <http_parser.h>

#define TR_READ_BUF (64 * 1024)

struct tr_thread;

struct tr_conn {
    struct tr_thread *th;
    int fd;
    struct event ev;
    struct bufferevent *bev;
    http_parser parser;
    bool complete;
};

struct tr_thread {
    pthread_t tid;
    struct event_base *base;
    struct tr_conn *conns;
    int n;
    bool bufferevents;
    int port;
    int duration_s;
    uint64_t done;
    int failed;
    char *rbuf;
};

static const char tr_request[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n";

static http_parser_settings tr_settings;

static int tr_on_complete(http_parser *p)
{
    struct tr_conn *c = p->data;

    c->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

/* Feeds len bytes to the parser; on a complete response, counts it and
 * starts the next request. Returns -1 on a parse error. */
static int tr_feed(struct tr_conn *c, const char *data, size_t len)
{
    http_parser_execute(&c->parser, &tr_settings, data, len);
    if (c->complete) {
        c->th->done++;
        c->complete = false;
        http_parser_init(&c->parser, HTTP_RESPONSE);
        c->parser.data = c;
        if (c->th->bufferevents) {
            bufferevent_write(c->bev, tr_request, sizeof(tr_request) - 1);
        } else if (send(c->fd, tr_request, sizeof(tr_request) - 1,
                        MSG_NOSIGNAL) < 0) {
            return -1;
        }
        return 0;
    }
    return HTTP_PARSER_ERRNO(&c->parser) == HPE_OK ? 0 : -1;
}

static void tr_fail(struct tr_conn *c)
{
    c->th->failed++;
    event_base_loopbreak(c->th->base);
}

static void tr_raw_read(evutil_socket_t fd, short what, void *arg)
{
    struct tr_conn *c = arg;
    ssize_t n = recv(fd, c->th->rbuf, TR_READ_BUF, 0);

    (void)what;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0 || tr_feed(c, c->th->rbuf, (size_t)n) != 0) {
        tr_fail(c);
    }
}

static void tr_bev_read(struct bufferevent *bev, void *arg)
{
    struct tr_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    const unsigned char *data = evbuffer_pullup(in, (ev_ssize_t)len);

    if (tr_feed(c, (const char *)data, len) != 0) {
        tr_fail(c);
    }
    evbuffer_drain(in, len);
}

static void tr_bev_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        tr_fail(arg);
    }
}

static int tr_connect(struct tr_conn *c)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)c->th->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(c->fd);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    if (c->th->bufferevents) {
        c->bev = bufferevent_socket_new(c->th->base, c->fd, 0);
        if (c->bev == NULL) {
            return -1;
        }
        bufferevent_setcb(c->bev, tr_bev_read, NULL, tr_bev_event, c);
        bufferevent_enable(c->bev, EV_READ);
        bufferevent_write(c->bev, tr_request, sizeof(tr_request) - 1);
        return 0;
    }
    event_assign(&c->ev, c->th->base, c->fd, EV_READ | EV_PERSIST, tr_raw_read,
                 c);
    event_add(&c->ev, NULL);
    return send(c->fd, tr_request, sizeof(tr_request) - 1, MSG_NOSIGNAL) < 0
               ? -1
               : 0;
}

static void *tr_thread_main(void *arg)
{
    struct tr_thread *th = arg;
    struct timeval tv = {.tv_sec = th->duration_s};

    for (int i = 0; i < th->n; i++) {
        th->conns[i].th = th;
        th->conns[i].fd = -1;
        if (tr_connect(&th->conns[i]) != 0) {
            th->failed++;
            break;
        }
    }
    if (th->failed == 0) {
        event_base_loopexit(th->base, &tv);
        event_base_dispatch(th->base);
    }
    for (int i = 0; i < th->n; i++) {
        struct tr_conn *c = &th->conns[i];

        if (c->bev != NULL) {
            bufferevent_free(c->bev);
        } else if (c->fd >= 0) {
            event_del(&c->ev);
        }
        if (c->fd >= 0) {
            close(c->fd);
        }
    }
    return NULL;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int transport_run(int port, bool bufferevents, int conns, int threads,
                  int duration_s, double *rps, double *cpu_us)
{
    struct tr_thread *ths = calloc((size_t)threads, sizeof(*ths));
    uint64_t done = 0;
    int failed = 0;
    int started = 0;
    double cpu0 = cpu_s();

    if (ths == NULL) {
        return -1;
    }
    http_parser_settings_init(&tr_settings);
    tr_settings.on_message_complete = tr_on_complete;
    for (int i = 0; i < threads; i++) {
        struct tr_thread *th = &ths[i];

        th->n = conns / threads + (i < conns % threads);
        th->conns = calloc((size_t)th->n, sizeof(*th->conns));
        th->rbuf = malloc(TR_READ_BUF);
        th->base = event_base_new();
        th->bufferevents = bufferevents;
        th->port = port;
        th->duration_s = duration_s;
        if (th->conns == NULL || th->rbuf == NULL || th->base == NULL ||
            pthread_create(&th->tid, NULL, tr_thread_main, th) != 0) {
            failed++;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ths[i].tid, NULL);
        done += ths[i].done;
        failed += ths[i].failed;
    }
    for (int i = 0; i < threads; i++) {
        free(ths[i].conns);
        free(ths[i].rbuf);
        if (ths[i].base != NULL) {
            event_base_free(ths[i].base);
        }
    }
    free(ths);
    *rps = (double)done / duration_s;
    *cpu_us = (cpu_s() - cpu0) * 1e6 / (double)(done ? done : 1);
    return failed == 0 && done > 0 ? 0 : -1;
}
