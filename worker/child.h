/* The child runner: the process, forked by the zygote, that runs a suite's
 * user code (setup, tests, teardown) following a plan from its supervisor,
 * and reports each step over the control socket (ipc.h). */
#ifndef HANDOFF_CHILD_H
#define HANDOFF_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ipc.h"
#include "result.h"

/* One test to run: its index in the suite and its attempts. */
struct plan_entry {
    uint32_t test_index;
    uint32_t first_attempt; /* 1-based */
    uint32_t max_attempts;
    int64_t timeout_ns;
};

/* What a child is asked to do. entries[i] has the run-wide entry number
 * base + i, which the child reports back. */
struct plan {
    uint8_t nonce[IPC_NONCE_LEN]; /* marks the child's reports in its output */
    char *suite;
    struct result_kv *params;
    size_t n_params;
    char *tempdir_root; /* hf_tempdir makes directories inside */
    bool run_setup;     /* false when the suite has none */
    bool run_teardown;
    uint32_t base;
    struct plan_entry *entries;
    size_t n_entries;
};

/* Encodes p's entries [from, n_entries) as an IPC_PLAN frame into b. */
void plan_encode(struct buf *b, const struct plan *p, size_t from);
/* Decodes an IPC_PLAN payload into out (caller storage, released with
 * plan_cleanup). Returns 0 or ST_PROTOCOL. */
MUST_CHECK int plan_decode(const void *payload, size_t len, struct plan *out);
void plan_cleanup(struct plan *p);

/* Runs in the freshly forked child with the control socket (plan and
 * cancel arrive there); reports go to stdout's pipe. Never returns: exits 0
 * after reporting IPC_DONE. */
void child_main(int ctl_fd) __attribute__((noreturn));

#endif
