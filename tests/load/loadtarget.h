/* loadtarget: an HTTP server for load tests, on 127.0.0.1 in a thread of
 * its own, whose latency, errors and stalls the test controls: a fixed
 * delay per response (a timer: the server stays responsive), a share of
 * 500 responses, and a stall that freezes its event loop outright, as a
 * stop-the-world pause does, so every request meanwhile waits in the
 * kernel. */
#ifndef HANDOFF_LOADTARGET_H
#define HANDOFF_LOADTARGET_H

#include <stdint.h>

struct loadtarget;

struct loadtarget_config {
    int64_t delay_ms;  /* before each response */
    double error_rate; /* 0..1: share of responses that are 500 */
    /* Freeze the loop for stall_ms once, stall_after_ms after the first
     * request (0 0: never). */
    int64_t stall_after_ms;
    int64_t stall_ms;
    /* https: a PEM certificate and key (both NULL: plain http). */
    const char *tls_cert;
    const char *tls_key;
};

/* Starts a server; returns NULL (and says why on stderr) when it cannot. */
struct loadtarget *loadtarget_start(const struct loadtarget_config *cfg);
void loadtarget_stop(struct loadtarget *t);
/* "http://127.0.0.1:PORT/" (https://localhost:PORT/ with TLS) */
const char *loadtarget_url(const struct loadtarget *t);
/* Requests answered so far, and how many of them with 500. */
uint64_t loadtarget_requests(struct loadtarget *t);
uint64_t loadtarget_errors(struct loadtarget *t);

#endif
