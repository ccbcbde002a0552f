/* bus: Handoff's one module on top of nats.c (core NATS and JetStream).
 * natsStatus, natsMsg and the rest stay inside bus.c; callers see status
 * codes and these handles.
 *
 * Threads: nats.c delivers subscription callbacks and connection events on
 * its own threads. Every function here may be called from any thread unless
 * it says otherwise; callbacks say which thread they run on. Hand work to a
 * libevent loop with loopq (loopq.h). */
#ifndef HANDOFF_BUS_H
#define HANDOFF_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct bus;
struct bus_msg;
struct bus_sub;
struct bus_pull;

struct bus_config {
    const char *url;        /* "nats://127.0.0.1:4222"; comma-separated
                                   list allowed */
    const char *name;       /* connection name shown by the server */
    const char *creds_file; /* NATS credentials file, or NULL */
    const char *token;      /* auth token, or NULL (from env, not
                                   flags) */
    const char *user;       /* user/password auth, or NULL */
    const char *password;
    /* Reports the connection's state: once with the outcome of the first
     * connect attempt (on the caller's thread, before bus_connect
     * returns), then at each change, down or back up, on a nats.c
     * thread. Never twice in a row with the same value, never once
     * bus_free has started. Must not call bus_free. May be NULL. */
    void (*on_state)(void *arg, bool connected);
    void *arg;
    /* Each publish written to the socket by the publishing thread rather
     * than handed to nats.c's flusher thread: no thread wake-up per
     * message. For connections that publish a message at a time (a
     * worker); bulk publishers (the ingester's acks) do better with the
     * flusher's batching. */
    bool send_asap;
};

/* Connects. If the server is unreachable, keeps retrying in the background
 * (with backoff, forever) and returns 0 anyway: the bus then reports
 * disconnected and publishes fail with ST_UPSTREAM until it connects. Also
 * reconnects forever after a connection loss, buffering core publishes
 * (and acks) meanwhile; JetStream calls fail with ST_UPSTREAM whenever it
 * is disconnected. Subscriptions and pulls survive reconnects. Returns 0
 * and *out, or ST_INVALID for a bad URL (want nats:// or tls://, comma-
 * separated) or an unreadable credentials file. */
MUST_CHECK int bus_connect(const struct bus_config *cfg, struct bus **out);
/* Flushes (acks included), closes and frees. Async publishes still
 * unconfirmed are dropped (and logged). Subscriptions, pulls and messages
 * made on b must be freed first. Not from a bus callback. NULL does
 * nothing. */
void bus_free(struct bus *b);
bool bus_is_connected(struct bus *b);
/* True once nats.c has closed the connection for good on its own (it does
 * so when the server refuses the credentials twice in a row on reconnect):
 * it will never connect again and every call fails with ST_UPSTREAM. The
 * program should then exit, or free the bus and connect anew. on_state
 * has said "down" already. Any thread. */
bool bus_is_dead(struct bus *b);
/* Waits until everything published so far reached the server. Returns 0,
 * ST_TIMEOUT or ST_UPSTREAM. */
int bus_flush(struct bus *b, int64_t timeout_ms);
/* Releases nats.c's process-wide threads and memory, waiting up to
 * timeout_ms (0: as long as it takes). Call once at exit, after every bus
 * is freed, not from a bus callback. Returns 0, ST_TIMEOUT (the rest is
 * released in the background) or ST_INVALID. */
MUST_CHECK int bus_shutdown(int64_t timeout_ms);

/* ---- Core NATS -------------------------------------------------------- */

/* Publishes data (borrowed for the call) on subject. Returns 0, ST_INVALID,
 * ST_TOO_LARGE (over the server's max payload) or ST_UPSTREAM (never
 * connected yet, or the reconnect buffer is full). Not acknowledged: at
 * most once. */
int bus_publish(struct bus *b, const char *subject, const void *data,
                size_t len);

/* Subscribes to subject (wildcards allowed); with queue, as a member of
 * that queue group. cb runs on a nats.c thread, in order for one
 * subscription, and takes ownership of m (bus_msg_free). Returns 0 and
 * *out, or ST_INVALID / ST_UPSTREAM. */
MUST_CHECK int bus_subscribe(struct bus *b, const char *subject,
                             const char *queue,
                             void (*cb)(void *arg, struct bus_msg *m),
                             void *arg, struct bus_sub **out);
/* Unsubscribes and frees; after it returns cb is not running and will not
 * run again. Not from cb itself (it would wait for itself). NULL does
 * nothing. */
void bus_sub_free(struct bus_sub *s);

/* ---- JetStream: streams and consumers --------------------------------- */

enum bus_retention { BUS_RETAIN_LIMITS, BUS_RETAIN_WORK_QUEUE };

struct bus_stream_config {
    const char *name;
    const char *subjects; /* one subject filter, e.g. "handoff.jobs.>" */
    enum bus_retention retention;
    int64_t max_age_ns;          /* 0: unlimited */
    int64_t duplicate_window_ns; /* Nats-Msg-Id de-duplication window */
    int replicas;                /* 0 or 1 on a single server */
    int64_t max_msgs;            /* 0: unlimited; the oldest go first */
};

/* Creates the stream, or updates it when it exists with another
 * configuration. Idempotent; safe for several processes at once. Returns
 * 0, ST_UPSTREAM (no server, no JetStream) or ST_CONFLICT (the server
 * refused the update, e.g. a retention change). */
MUST_CHECK int bus_ensure_stream(struct bus *b,
                                 const struct bus_stream_config *cfg);

struct bus_consumer_config {
    const char *stream;
    const char *name;    /* durable name: [A-Za-z0-9_-] */
    const char *filter;  /* filter subject */
    int64_t ack_wait_ns; /* redelivery after this without an ack */
    int max_deliver;     /* 0: unlimited */
    int max_ack_pending; /* 0: the server's default */
};

/* Creates the durable pull consumer (explicit acks, deliver all), or
 * updates what may be updated. Idempotent; safe for several processes at
 * once. Returns 0, ST_INVALID, ST_NOT_FOUND (no such stream), ST_UPSTREAM
 * or ST_CONFLICT (the server refused, e.g. an overlapping filter on a
 * work-queue stream, or a push consumer of that name exists). */
MUST_CHECK int bus_ensure_consumer(struct bus *b,
                                   const struct bus_consumer_config *cfg);

/* Number of messages a consumer has not delivered yet plus those delivered
 * and not acked, for queue-depth metrics. Returns 0 or ST_UPSTREAM /
 * ST_NOT_FOUND. */
MUST_CHECK int bus_consumer_pending(struct bus *b, const char *stream,
                                    const char *name, uint64_t *out_pending,
                                    uint64_t *out_ack_pending);

/* ---- JetStream: publishing -------------------------------------------- */

/* Publishes to a stream and waits up to timeout_ms for the server's
 * acknowledgement. With msg_id, sets Nats-Msg-Id: a repeat within the
 * stream's duplicate window is acknowledged and dropped. Returns 0,
 * ST_UPSTREAM (disconnected, no stream), ST_TIMEOUT (the message may or
 * may not be stored: retry with the same msg_id), ST_TOO_LARGE,
 * ST_CONFLICT (the stream refused it) or ST_INVALID. */
MUST_CHECK int bus_js_publish(struct bus *b, const char *subject,
                              const void *data, size_t len, const char *msg_id,
                              int64_t timeout_ms);

/* Publishes without waiting; bus_js_publish_wait waits until every pending
 * one is acknowledged. For bulk loads and benchmarks. publish_async
 * returns 0, ST_UPSTREAM (disconnected) or ST_TIMEOUT (4096 unconfirmed
 * for 5 s). publish_wait returns 0 when all since the last wait were
 * stored, ST_UPSTREAM when some were refused (no stream...), ST_TIMEOUT
 * when some are still unconfirmed after timeout_ms: those are given up
 * and their fate is unknown. One thread at a time per bus. */
MUST_CHECK int bus_js_publish_async(struct bus *b, const char *subject,
                                    const void *data, size_t len,
                                    const char *msg_id);
MUST_CHECK int bus_js_publish_wait(struct bus *b, int64_t timeout_ms);

/* ---- JetStream: pulling ----------------------------------------------- */

/* Binds to an existing durable pull consumer; never creates one. Freeing
 * the pull never deletes the consumer (others share it). Returns 0 and
 * *out, or ST_UPSTREAM / ST_NOT_FOUND / ST_INVALID. */
MUST_CHECK int bus_pull_bind(struct bus *b, const char *stream,
                             const char *consumer, struct bus_pull **out);
/* Fetches up to batch messages, waiting up to timeout_ms for the first.
 * Blocking: call from a thread of your own, not the loop, and from one
 * thread at a time per pull. Messages go to msgs (caller-provided array
 * of batch slots), the caller owns each. Returns 0 with *n >= 1,
 * ST_TIMEOUT with *n == 0 when none came, ST_UPSTREAM with *n == 0 when
 * the connection was down for all of timeout_ms (it waits for it to come
 * back rather than fail at once), or ST_INVALID. */
MUST_CHECK int bus_pull_fetch(struct bus_pull *p, int batch, int64_t timeout_ms,
                              struct bus_msg **msgs, size_t *n);
/* Stops pulling. Messages already fetched stay valid and can still be
 * acked: the binding lives until the last of them is freed. The consumer
 * stays on the server. NULL does nothing. */
void bus_pull_free(struct bus_pull *p);

/* ---- JetStream: replaying -------------------------------------------- */

/* Subscribes to the messages of stream on subject: first every one the
 * stream keeps, then each new one as it is stored. An ordered consumer:
 * ephemeral, in order, re-created by nats.c after a gap or a reconnect,
 * so none stored is missed. cb as for bus_subscribe (no acks: the
 * consumer needs none); bus_msg_stream_seq gives each message's stream
 * sequence. *last_seq: the sequence of the last message the stream held
 * just before (0: none), written before cb can run: those up to it are
 * the replay, those after it new. Free with bus_sub_free (which deletes
 * the consumer). Returns 0, ST_NOT_FOUND (no such stream), ST_UPSTREAM or
 * ST_INVALID. */
MUST_CHECK int bus_js_replay(struct bus *b, const char *stream,
                             const char *subject,
                             void (*cb)(void *arg, struct bus_msg *m),
                             void *arg, uint64_t *last_seq,
                             struct bus_sub **out);

/* ---- Messages --------------------------------------------------------- */

const char *bus_msg_subject(const struct bus_msg *m);
const void *bus_msg_data(const struct bus_msg *m);
size_t bus_msg_len(const struct bus_msg *m);
/* A header's value (borrowed from m), or NULL. */
const char *bus_msg_header(const struct bus_msg *m, const char *key);
/* JetStream delivery count (1 on first delivery), or 0 for a core
 * message. */
uint64_t bus_msg_delivered(const struct bus_msg *m);
/* Stream sequence of a JetStream message, or 0. */
uint64_t bus_msg_stream_seq(const struct bus_msg *m);

/* Acknowledgements of a JetStream message. ack, nak, in_progress and term
 * are sent without waiting (buffered while reconnecting; bus_flush or
 * bus_free sends them); ack_sync waits up to timeout_ms for the server to
 * confirm. A repeated ack, nak or term after a successful one does
 * nothing. Return 0, ST_UPSTREAM, ST_TIMEOUT (ack_sync), or ST_INVALID for
 * a core message. Any thread, one at a time per message. */
int bus_msg_ack(struct bus_msg *m);
MUST_CHECK int bus_msg_ack_sync(struct bus_msg *m, int64_t timeout_ms);
/* Asks for redelivery, after delay_ms (0: at once). */
int bus_msg_nak(struct bus_msg *m, int64_t delay_ms);
/* Resets the ack wait: the job is still being worked on. */
int bus_msg_in_progress(struct bus_msg *m);
/* Stops redelivery for good. */
int bus_msg_term(struct bus_msg *m);
void bus_msg_free(struct bus_msg *m);

#endif
