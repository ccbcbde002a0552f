/* loopq: hands items from any thread to a libevent loop. nats.c and the
 * database threads push; the loop's thread pops, in push order, in one
 * callback per wake-up. */
#ifndef HANDOFF_LOOPQ_H
#define HANDOFF_LOOPQ_H

#include <stddef.h>

#include "status.h"

struct event_base;
struct loopq;

/* Creates a queue whose items are handed to cb(arg, item) on base's
 * thread. Needs evthread_use_pthreads() before base was made. Returns 0 and
 * *out, or ST_INTERNAL. */
MUST_CHECK int loopq_new(struct event_base *base,
                         void (*cb)(void *arg, void *item), void *arg,
                         struct loopq **out);

/* Queues item (ownership passes to cb). Any thread. Never fails: the
 * queue grows as needed. */
void loopq_push(struct loopq *q, void *item);

/* Items queued and not yet handed to cb. Any thread. */
size_t loopq_len(struct loopq *q);

/* Frees q. Items still queued are handed to drop(arg, item), or leaked if
 * drop is NULL. Loop thread, when no other thread pushes any more. NULL does
 * nothing. */
void loopq_free(struct loopq *q, void (*drop)(void *arg, void *item));

#endif
