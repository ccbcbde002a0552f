/* Message framing between child runner and supervisor. */
#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void ipc_begin(struct buf *b, uint8_t type)
{
    static const uint8_t header[IPC_HEADER_LEN] = {0};

    buf_reset(b);
    buf_add(b, header, sizeof(header));
    b->data[4] = (char)type;
}

void ipc_put_u8(struct buf *b, uint8_t v)
{
    buf_add(b, &v, 1);
}

void ipc_put_u32(struct buf *b, uint32_t v)
{
    uint8_t le[4];

    for (int i = 0; i < 4; i++) {
        le[i] = (uint8_t)(v >> (8 * i));
    }
    buf_add(b, le, sizeof(le));
}

void ipc_put_i64(struct buf *b, int64_t v)
{
    uint64_t u = (uint64_t)v;
    uint8_t le[8];

    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(u >> (8 * i));
    }
    buf_add(b, le, sizeof(le));
}

void ipc_put_str(struct buf *b, const char *s, size_t max)
{
    size_t len = s ? strlen(s) : 0;

    if (len > max) {
        len = max;
        /* Do not leave half a UTF-8 sequence at the cut. */
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) {
            len--;
        }
    }
    ipc_put_u32(b, (uint32_t)len);
    if (len) {
        buf_add(b, s, len);
    }
    buf_addc(b, '\0');
}

void ipc_finish(struct buf *b)
{
    uint32_t len = (uint32_t)(b->len - IPC_HEADER_LEN);

    for (int i = 0; i < 4; i++) {
        b->data[i] = (char)(uint8_t)(len >> (8 * i));
    }
}

void ipc_reader_init(struct ipc_reader *r, const void *payload, size_t len)
{
    r->p = payload;
    r->end = r->p + len;
    r->failed = false;
}

static bool need(struct ipc_reader *r, size_t n)
{
    if (r->failed || (size_t)(r->end - r->p) < n) {
        r->failed = true;
        return false;
    }
    return true;
}

uint8_t ipc_get_u8(struct ipc_reader *r)
{
    if (!need(r, 1)) {
        return 0;
    }
    return *r->p++;
}

uint32_t ipc_get_u32(struct ipc_reader *r)
{
    uint32_t v = 0;

    if (!need(r, 4)) {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)r->p[i] << (8 * i);
    }
    r->p += 4;
    return v;
}

int64_t ipc_get_i64(struct ipc_reader *r)
{
    uint64_t v = 0;

    if (!need(r, 8)) {
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)r->p[i] << (8 * i);
    }
    r->p += 8;
    return (int64_t)v;
}

const char *ipc_get_str(struct ipc_reader *r, size_t *len)
{
    uint32_t n = ipc_get_u32(r);
    const char *s;

    if (!need(r, (size_t)n + 1) || r->p[n] != '\0') {
        r->failed = true;
        if (len) {
            *len = 0;
        }
        return "";
    }
    s = (const char *)r->p;
    r->p += (size_t)n + 1;
    if (len) {
        *len = n;
    }
    return s;
}

bool ipc_reader_ok(const struct ipc_reader *r)
{
    return !r->failed && r->p == r->end;
}

int ipc_frame_peek(const void *data, size_t len, uint8_t *type,
                   const uint8_t **payload, size_t *payload_len,
                   size_t *frame_len)
{
    const uint8_t *d = data;
    uint32_t plen = 0;

    if (len < IPC_HEADER_LEN) {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        plen |= (uint32_t)d[i] << (8 * i);
    }
    if (plen > IPC_MAX_PAYLOAD) {
        return -1;
    }
    if (len - IPC_HEADER_LEN < plen) {
        return 0;
    }
    *type = d[4];
    *payload = d + IPC_HEADER_LEN;
    *payload_len = plen;
    *frame_len = IPC_HEADER_LEN + (size_t)plen;
    return 1;
}

void ipc_prefix(const uint8_t nonce[IPC_NONCE_LEN], uint8_t *out)
{
    out[0] = IPC_SYNC_BYTE;
    out[1] = 'H';
    out[2] = 'F';
    memcpy(out + 3, nonce, IPC_NONCE_LEN);
}

int ipc_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
