/* Framing of the messages between a child runner and its supervisor: a
 * 5-byte header (payload length, little-endian u32; type, u8) and a payload
 * of fixed-width integers and length-prefixed, NUL-terminated strings. The
 * child is our code, but it shares its process with user code that may
 * scribble on memory, so the supervisor validates every frame.
 *
 * Child to supervisor, frames travel in the same pipe as the child's stdout
 * and stderr, each behind an 11-byte prefix (0x1e 'H' 'F' and the child's
 * 8-byte random nonce from its plan), so output and reports arrive in the
 * one order they happened. A frame with its prefix is at most PIPE_BUF
 * bytes, which the kernel writes atomically, so a user thread writing at
 * the same time cannot split it; longer messages go as IPC_CONT pieces
 * followed by the final piece. Supervisor to child (the plan, cancel), a
 * socket carries plain frames. */
#ifndef HANDOFF_IPC_H
#define HANDOFF_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define IPC_HEADER_LEN 5
/* Largest payload either side accepts. */
#define IPC_MAX_PAYLOAD (4u * 1024 * 1024)
#define IPC_SYNC_BYTE 0x1e
#define IPC_NONCE_LEN 8
#define IPC_PREFIX_LEN (3 + IPC_NONCE_LEN)
/* Largest frame, prefix included, written to the output pipe in one go. */
#define IPC_PIPE_FRAME_MAX 4096

/* Child to supervisor. */
enum ipc_c2s {
    IPC_PHASE_START = 1, /* u8 phase, u32 entry, u32 attempt,
                            i64 start_mono_ns, i64 deadline_mono_ns,
                            i64 start_unix_ns */
    IPC_LOG,             /* str text (formatted "file:line: msg") */
    IPC_RAW_NOTE,        /* str text: a runner note for the output */
    IPC_SOFT,            /* (empty): the attempt's failure is soft */
    IPC_VALUE,           /* str key, str value */
    IPC_SPAN,            /* str name, i64 start_unix_ns, i64 duration_ns,
                            u32 n, n x (str key, str value) */
    IPC_DEADLINE,        /* i64 deadline_mono_ns */
    IPC_PHASE_END,       /* u8 result, i64 duration_ns, str reason */
    IPC_DONE,            /* (empty): plan finished, exiting */
    IPC_CONT,            /* a piece of a longer message; the piece with the
                            real type ends it */
};

/* Supervisor to child. */
enum ipc_s2c {
    IPC_PLAN = 64, /* see child.c: plan_encode/plan_decode */
    IPC_CANCEL,    /* str reason: stop the run */
};

enum ipc_phase { IPC_PHASE_SETUP, IPC_PHASE_TEST, IPC_PHASE_TEARDOWN };

/* Writing: ipc_begin, puts, ipc_finish; the frame is then in b. */
void ipc_begin(struct buf *b, uint8_t type);
void ipc_put_u8(struct buf *b, uint8_t v);
void ipc_put_u32(struct buf *b, uint32_t v);
void ipc_put_i64(struct buf *b, int64_t v);
/* s may be NULL (written as empty). At most max bytes of it are written;
 * longer text is cut at a UTF-8 boundary. */
void ipc_put_str(struct buf *b, const char *s, size_t max);
void ipc_finish(struct buf *b);

/* Reading a payload. Getters return zero values once the reader has failed;
 * check ipc_reader_ok at the end. */
struct ipc_reader {
    const uint8_t *p;
    const uint8_t *end;
    bool failed;
};

void ipc_reader_init(struct ipc_reader *r, const void *payload, size_t len);
uint8_t ipc_get_u8(struct ipc_reader *r);
uint32_t ipc_get_u32(struct ipc_reader *r);
int64_t ipc_get_i64(struct ipc_reader *r);
/* Returns a NUL-terminated string inside the payload (borrowed), "" on
 * failure. */
const char *ipc_get_str(struct ipc_reader *r, size_t *len);
/* True when every get succeeded and the payload was consumed exactly. */
bool ipc_reader_ok(const struct ipc_reader *r);

/* Finds the first complete frame in data[0..len). Returns 1 and sets *type,
 * *payload, *payload_len, *frame_len when one is there; 0 when more bytes
 * are needed; -1 when the header announces more than IPC_MAX_PAYLOAD. */
int ipc_frame_peek(const void *data, size_t len, uint8_t *type,
                   const uint8_t **payload, size_t *payload_len,
                   size_t *frame_len);

/* Writes the prefix for nonce into out (IPC_PREFIX_LEN bytes). */
void ipc_prefix(const uint8_t nonce[IPC_NONCE_LEN], uint8_t *out);

/* Writes all of data to fd, retrying on EINTR and partial writes (blocking
 * fd). Returns 0 or -1 with errno. */
int ipc_write_all(int fd, const void *data, size_t len);

#endif
