/* Internals shared by child.c (the child's main loop) and api.c (the hf_*
 * functions user code calls). Both only ever run inside a child runner. */
#ifndef HANDOFF_CHILD_INT_H
#define HANDOFF_CHILD_INT_H

#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "child.h"
#include "handoff.h"
#include "ipc.h"
#include "result.h"

/* Caps on what one message carries; the supervisor checks them again. */
#define CHILD_MAX_LOG 65536
#define CHILD_MAX_KEY 256
#define CHILD_MAX_VALUE 8192
#define CHILD_MAX_SPAN_ATTRS 64

struct child {
    int ctl; /* from the supervisor: plan, cancel */
    int out; /* to the supervisor: a dup of stdout */
    uint8_t prefix[IPC_PREFIX_LEN];
    pthread_mutex_t lock; /* guards wbuf, pend and writes to out */
    struct buf wbuf;
    /* Frames held back to go out with the next one in a single write
     * (send_locked): a step's end joins the next step's start. Never more
     * than one atomic pipe write. */
    uint8_t pend[IPC_PIPE_FRAME_MAX];
    size_t pend_len;
    int64_t polled_mono_ns; /* last look at ctl between steps */
    struct buf rbuf;        /* bytes read from ctl, not yet framed */
    const struct hf_suite *suite;
    struct plan plan;
    bool cancelled; /* run-level cancel received */
    uint64_t tempdir_seq;
};

struct child_cleanup {
    void (*fn)(hf_t *t, void *arg);
    void *arg;
};

struct child_env {
    char *name;
    char *old; /* NULL when it was unset */
};

struct hf_span {
    hf_t *t;
    char *name;
    int64_t start_unix_ns;
    int64_t start_mono_ns;
    struct result_kv *attrs;
    size_t n_attrs;
};

struct hf_t {
    struct child *child;
    const char *name;
    enum ipc_phase phase;
    int attempt;
    bool failed;
    bool skipped;
    bool soft;
    bool in_cleanup;
    jmp_buf *jump;    /* where a fatal call unwinds to */
    pthread_t thread; /* the thread running the test */
    int64_t deadline_mono_ns;
    struct child_cleanup *cleanups;
    size_t n_cleanups;
    struct child_env *envs;
    size_t n_envs;
    char **tempdirs;
    size_t n_tempdirs;
    struct result_kv *values;
    size_t n_values;
    struct hf_span **spans; /* open spans */
    size_t n_spans;
};

/* Sends one frame built by fill (called with wbuf under the lock). Any
 * thread. A failed write means the supervisor is gone: the child exits. */
void child_send_log(struct child *c, const char *text);
void child_send_simple(struct child *c, uint8_t type);
void child_send_value(struct child *c, const char *key, const char *value);
void child_send_span(struct child *c, const struct hf_span *s,
                     int64_t duration_ns);
void child_send_deadline(struct child *c, int64_t deadline_mono_ns);
/* Reads pending supervisor messages without blocking; sets cancelled. */
void child_poll(struct child *c);

/* Undoes what an attempt changed in the process: ends open spans, restores
 * the environment, removes temporary directories, frees the lists. */
void api_end_attempt(hf_t *t);

/* Stops the running test: unwinds to the runner (test thread) or ends the
 * calling thread (any other thread). */
void child_stop(hf_t *t) __attribute__((noreturn));

#endif
