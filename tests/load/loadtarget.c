/* loadtarget: evhttp on its own loop thread. Error responses are chosen
 * by a counter, not by chance, so a rate of 0.1 is exactly every tenth
 * response. */
#include "loadtarget.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

struct loadtarget {
    struct loadtarget_config cfg;
    pthread_t tid;
    struct event_base *base;
    struct evhttp *http;
    struct event *stall_ev;
    struct event *wake_ev;
    atomic_bool stop;
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t errors;
    double error_acc;
    bool stall_armed;
    SSL_CTX *tls;
    char url[64];
};

struct pending {
    struct loadtarget *t;
    struct evhttp_request *req;
    struct event *ev;
};

static void reply(struct loadtarget *t, struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    int code = 200;

    t->error_acc += t->cfg.error_rate;
    if (t->error_acc >= 1.0) {
        t->error_acc -= 1.0;
        code = 500;
        atomic_fetch_add(&t->errors, 1);
    }
    evbuffer_add_printf(out, "%s\n", code == 200 ? "ok" : "error");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Internal Server Error",
                      out);
    evbuffer_free(out);
    atomic_fetch_add(&t->requests, 1);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;

    (void)fd;
    (void)what;
    reply(p->t, p->req);
    event_free(p->ev);
    free(p);
}

/* The stop-the-world pause: nothing on this loop runs meanwhile. */
static void on_stall(evutil_socket_t fd, short what, void *arg)
{
    struct loadtarget *t = arg;
    struct timespec ts = {.tv_sec = (time_t)(t->cfg.stall_ms / 1000),
                          .tv_nsec = (long)(t->cfg.stall_ms % 1000) * 1000000};

    (void)fd;
    (void)what;
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct loadtarget *t = arg;

    if (!t->stall_armed && t->cfg.stall_ms > 0) {
        struct timeval tv = {
            .tv_sec = (time_t)(t->cfg.stall_after_ms / 1000),
            .tv_usec = (suseconds_t)(t->cfg.stall_after_ms % 1000) * 1000};

        t->stall_armed = true;
        evtimer_add(t->stall_ev, &tv);
    }
    if (t->cfg.delay_ms > 0) {
        struct pending *p = calloc(1, sizeof(*p));
        struct timeval tv = {.tv_sec = (time_t)(t->cfg.delay_ms / 1000),
                             .tv_usec =
                                 (suseconds_t)(t->cfg.delay_ms % 1000) * 1000};

        p->t = t;
        p->req = req;
        p->ev = evtimer_new(t->base, on_delay, p);
        evtimer_add(p->ev, &tv);
        return;
    }
    reply(t, req);
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    struct loadtarget *t = arg;

    return bufferevent_openssl_socket_new(base, -1, SSL_new(t->tls),
                                          BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct loadtarget *t = arg;

    (void)fd;
    (void)what;
    if (atomic_load(&t->stop)) {
        event_base_loopbreak(t->base);
    }
}

static void *main_loop(void *arg)
{
    struct loadtarget *t = arg;

    event_base_dispatch(t->base);
    return NULL;
}

struct loadtarget *loadtarget_start(const struct loadtarget_config *cfg)
{
    struct loadtarget *t = calloc(1, sizeof(*t));
    struct evhttp_bound_socket *bound;
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);
    struct timeval tv = {.tv_usec = 20000};

    if (t == NULL) {
        return NULL;
    }
    if (cfg != NULL) {
        t->cfg = *cfg;
    }
    atomic_init(&t->stop, false);
    atomic_init(&t->requests, 0);
    atomic_init(&t->errors, 0);
    t->base = event_base_new();
    t->http = evhttp_new(t->base);
    evhttp_set_gencb(t->http, on_request, t);
    if (t->cfg.tls_cert != NULL) {
        t->tls = SSL_CTX_new(TLS_server_method());
        if (t->tls == NULL ||
            SSL_CTX_use_certificate_chain_file(t->tls, t->cfg.tls_cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(t->tls, t->cfg.tls_key,
                                        SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "loadtarget: cannot load %s and %s\n",
                    t->cfg.tls_cert, t->cfg.tls_key);
            evhttp_free(t->http);
            event_base_free(t->base);
            SSL_CTX_free(t->tls);
            free(t);
            return NULL;
        }
        evhttp_set_bevcb(t->http, tls_bev, t);
    }
    bound = evhttp_bind_socket_with_handle(t->http, "127.0.0.1", 0);
    if (bound == NULL || getsockname(evhttp_bound_socket_get_fd(bound),
                                     (struct sockaddr *)&ss, &len) != 0) {
        fprintf(stderr, "loadtarget: cannot listen on 127.0.0.1\n");
        evhttp_free(t->http);
        event_base_free(t->base);
        if (t->tls != NULL) {
            SSL_CTX_free(t->tls);
        }
        free(t);
        return NULL;
    }
    snprintf(t->url, sizeof(t->url), "%s://%s:%d/", t->tls ? "https" : "http",
             t->tls ? "localhost" : "127.0.0.1",
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
    t->stall_ev = evtimer_new(t->base, on_stall, t);
    t->wake_ev = event_new(t->base, -1, EV_PERSIST, on_wake, t);
    event_add(t->wake_ev, &tv);
    pthread_create(&t->tid, NULL, main_loop, t);
    return t;
}

void loadtarget_stop(struct loadtarget *t)
{
    if (t == NULL) {
        return;
    }
    atomic_store(&t->stop, true);
    pthread_join(t->tid, NULL);
    event_free(t->stall_ev);
    event_free(t->wake_ev);
    evhttp_free(t->http);
    event_base_free(t->base);
    if (t->tls != NULL) {
        SSL_CTX_free(t->tls);
    }
    free(t);
}

const char *loadtarget_url(const struct loadtarget *t)
{
    return t->url;
}

uint64_t loadtarget_requests(struct loadtarget *t)
{
    return atomic_load(&t->requests);
}

uint64_t loadtarget_errors(struct loadtarget *t)
{
    return atomic_load(&t->errors);
}
