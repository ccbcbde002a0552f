/* A mutex-protected FIFO plus event_active to wake the loop. */
#include "loopq.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

#include "mem.h"

struct loopq {
    pthread_mutex_t lock;
    void **items; /* ring buffer */
    size_t cap;
    size_t head; /* next to pop */
    size_t len;
    struct event *ev;
    void (*cb)(void *arg, void *item);
    void *arg;
};

static void *pop(struct loopq *q)
{
    void *item = NULL;

    pthread_mutex_lock(&q->lock);
    if (q->len > 0) {
        item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    pthread_mutex_unlock(&q->lock);
    return item;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct loopq *q = arg;
    size_t n;

    (void)fd;
    (void)what;
    /* Only what was queued at wake-up: a busy producer cannot starve the
     * loop's other events. A later push wakes the loop again. */
    pthread_mutex_lock(&q->lock);
    n = q->len;
    pthread_mutex_unlock(&q->lock);
    while (n-- > 0) {
        void *item = pop(q);

        if (!item) {
            break;
        }
        q->cb(q->arg, item);
    }
}

int loopq_new(struct event_base *base, void (*cb)(void *arg, void *item),
              void *arg, struct loopq **out)
{
    struct loopq *q = mem_zalloc(sizeof(*q));

    pthread_mutex_init(&q->lock, NULL);
    q->cb = cb;
    q->arg = arg;
    q->cap = 64;
    q->items = mem_calloc(q->cap, sizeof(*q->items));
    q->ev = event_new(base, -1, 0, on_wake, q);
    if (!q->ev) {
        loopq_free(q, NULL);
        return ST_INTERNAL;
    }
    *out = q;
    return ST_OK;
}

void loopq_push(struct loopq *q, void *item)
{
    pthread_mutex_lock(&q->lock);
    if (q->len == q->cap) {
        void **bigger = mem_calloc(q->cap * 2, sizeof(*bigger));

        for (size_t i = 0; i < q->len; i++) {
            bigger[i] = q->items[(q->head + i) % q->cap];
        }
        free(q->items);
        q->items = bigger;
        q->head = 0;
        q->cap *= 2;
    }
    q->items[(q->head + q->len) % q->cap] = item;
    q->len++;
    pthread_mutex_unlock(&q->lock);
    /* Thread-safe with evthread_use_pthreads; activating an already
     * active event is a no-op. */
    event_active(q->ev, EV_READ, 0);
}

size_t loopq_len(struct loopq *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void loopq_free(struct loopq *q, void (*drop)(void *arg, void *item))
{
    void *item;

    if (!q) {
        return;
    }
    if (q->ev) {
        event_free(q->ev);
    }
    while ((item = pop(q)) != NULL) {
        if (drop) {
            drop(q->arg, item);
        }
    }
    free(q->items);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
