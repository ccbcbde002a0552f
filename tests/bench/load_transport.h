/* Minimal callback-driven HTTP clients, for measuring the load engine's
 * transport choice: raw sockets with a persistent read event (what httpc
 * does, minus coroutines and metrics) against libevent bufferevents. */
#ifndef HANDOFF_LOAD_TRANSPORT_H
#define HANDOFF_LOAD_TRANSPORT_H

#include <stdbool.h>

/* Keeps conns keep-alive connections to 127.0.0.1:port busy with GET / over
 * threads loop threads for duration_s, one request in flight per
 * connection. Returns 0 with *rps (responses per second) and *cpu_us (this
 * process's CPU time per response), or -1 on any error. */
int transport_run(int port, bool bufferevents, int conns, int threads,
                  int duration_s, double *rps, double *cpu_us);

#endif
