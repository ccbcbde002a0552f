/* bus: core NATS and JetStream through nats.c 3.4.1. The only file that
 * includes nats.h; docs/nats.md describes the streams, subjects and the ack
 * protocol built on it. */
#include "bus.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "clock.h"
#include "log.h"
#include "mem.h"

/* At most this many servers in a comma-separated URL list. */
#define BUS_MAX_SERVERS 32
/* Threads delivering the messages of every asynchronous subscription of
 * the process (nats.c's pool; a subscription stays on one of them). */
#define BUS_DELIVERY_THREADS 2
/* Reconnect delay: BUS_RECONNECT_BASE_MS doubled per failed pass over the
 * server list, capped at BUS_RECONNECT_MAX_MS, plus up to 25% jitter so a
 * fleet of workers does not reconnect in lockstep. */
#define BUS_RECONNECT_BASE_MS 100
#define BUS_RECONNECT_MAX_MS 5000
/* Core publishes buffered while reconnecting; past it they fail. */
#define BUS_RECONNECT_BUF_BYTES (8 * 1024 * 1024)
/* A dead server (no TCP reset) is noticed after about 3 pings. */
#define BUS_PING_INTERVAL_MS 5000
#define BUS_MAX_PINGS_OUT 3
/* JetStream API requests (stream and consumer management). */
#define BUS_JS_API_WAIT_MS 5000
/* Async publishes in flight before js_PublishAsync blocks, and how long it
 * blocks before giving up. */
#define BUS_ASYNC_MAX_PENDING 4096
#define BUS_ASYNC_STALL_MS 5000
/* bus_free's last flush. */
#define BUS_CLOSE_FLUSH_MS 2000
/* Create-or-update rounds when other processes race us. */
#define BUS_ENSURE_ROUNDS 5

enum bus_seen { BUS_SEEN_NONE, BUS_SEEN_DOWN, BUS_SEEN_UP };

struct bus {
    natsConnection *nc;
    jsCtx *js;
    void (*on_state)(void *arg, bool connected);
    void *arg;
    atomic_bool connected;
    atomic_bool ever_connected;
    atomic_bool dead; /* nats.c closed the connection on its own */
    /* An async publish has succeeded: nats.c's pending table exists. */
    atomic_bool async_used;
    /* Guards the fields below; cond is broadcast on every state change. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum bus_seen seen; /* last state reported through on_state */
    bool closing;       /* bus_free started: no more on_state */
    bool closed;        /* nats.c's closed callback has run */
    char url[256];      /* server of the current or last connection */
    /* Async publish failures since the last bus_js_publish_wait. */
    uint64_t async_errors;
    char async_error[160]; /* the first one's text */
};

struct bus_sub {
    natsSubscription *sub;
    void (*cb)(void *arg, struct bus_msg *m);
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;   /* nats.c's delivery thread has finished */
    bool replay; /* bus_js_replay: messages carry their stream sequence */
};

struct bus_pull {
    struct bus *bus;
    natsSubscription *sub;
    /* The owner's reference plus one per message not yet freed: nats.c's
     * acks go through the message's subscription, so it must outlive
     * them. */
    atomic_int refs;
    char *name; /* "stream/consumer", for logs */
};

struct bus_msg {
    natsMsg *msg;
    struct bus_pull *pull; /* NULL for a core message */
    uint64_t delivered;
    uint64_t stream_seq;
};

/* ---- Status ------------------------------------------------------------ */

/* The one place where nats.c's status and JetStream error codes become
 * Handoff's. */
static int bus_status(natsStatus s, jsErrCode jerr)
{
    /* jsErrCode has no zero member: switch on an int. */
    switch ((int)jerr) {
    case 0:
        break;
    case JSStreamNotFoundErr:
    case JSConsumerNotFoundErr:
        return ST_NOT_FOUND;
    case JSNotEnabledErr:
    case JSNotEnabledForAccountErr:
    case JSClusterNotAvailErr:
    case JSInsufficientResourcesErr:
        return ST_UPSTREAM;
    case JSStreamMessageExceedsMaximumErr:
        return ST_TOO_LARGE;
    case JSBadRequestErr:
    case JSInvalidJSONErr:
    case JSConsumerBadDurableNameErr:
    case JSConsumerNameTooLongErr:
        return ST_INVALID;
    default:
        /* The server refused: name in use with another config, a change
         * that cannot be made, an overlapping work-queue consumer. */
        return ST_CONFLICT;
    }
    switch (s) {
    case NATS_OK:
        return ST_OK;
    case NATS_TIMEOUT:
        return ST_TIMEOUT;
    case NATS_NOT_FOUND:
        return ST_NOT_FOUND;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_QUEUE_NAME:
    case NATS_INVALID_TIMEOUT:
    case NATS_ADDRESS_MISSING:
    case NATS_INVALID_SUBSCRIPTION:
        return ST_INVALID;
    case NATS_MAX_PAYLOAD:
        return ST_TOO_LARGE;
    case NATS_IO_ERROR:
    case NATS_CONNECTION_CLOSED:
    case NATS_NO_SERVER:
    case NATS_STALE_CONNECTION:
    case NATS_SECURE_CONNECTION_WANTED:
    case NATS_SECURE_CONNECTION_REQUIRED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
    case NATS_SSL_ERROR:
    case NATS_NO_SERVER_SUPPORT:
    case NATS_NOT_YET_CONNECTED:
    case NATS_DRAINING:
    case NATS_NO_RESPONDERS:
    case NATS_INSUFFICIENT_BUFFER: /* reconnect buffer full */
    case NATS_SLOW_CONSUMER:
    case NATS_MISSED_HEARTBEAT:
        return ST_UPSTREAM;
    case NATS_PROTOCOL_ERROR:
    case NATS_LINE_TOO_LONG:
    case NATS_MISMATCH:
        return ST_PROTOCOL;
    case NATS_ERR:
        /* A JetStream API error without a code, or a refusal by nats.c
         * itself (binding a pull to a push consumer). */
        return ST_CONFLICT;
    default:
        return ST_INTERNAL;
    }
}

/* Maps a failure, logs it once, returns the code. Connection trouble is
 * not logged here: the state callbacks log each change once. */
static int bus_fail(struct bus *b, const char *what, const char *name,
                    natsStatus s, jsErrCode jerr)
{
    int code = bus_status(s, jerr);
    const char *text = nats_GetLastError(NULL);

    if (code == ST_UPSTREAM && b && !atomic_load(&b->connected)) {
        return code;
    }
    if (s == NATS_NO_RESPONDERS) {
        /* nats.c then reports JSNotEnabledErr, which misleads. */
        log_warn("bus: %s %s: nobody answered: no stream takes this "
                 "subject, or JetStream is off",
                 what, name);
        return code;
    }
    if (!text || !*text) {
        text = natsStatus_GetText(s);
    }
    if (jerr) {
        log_warn("bus: %s %s: %s (JetStream error %d)", what, name, text,
                 (int)jerr);
    } else {
        log_warn("bus: %s %s: %s", what, name, text);
    }
    return code;
}

/* ---- Connection state -------------------------------------------------- */

/* Records a state change and reports it once. Runs on nats.c's callback
 * thread, or in bus_connect for a first connect that failed; the lock
 * keeps the two in order, so a quick success is not followed by a stale
 * "down". */
static void bus_set_state(struct bus *b, natsConnection *nc, bool up,
                          bool initial)
{
    bool report;

    pthread_mutex_lock(&b->lock);
    if (initial && b->seen != BUS_SEEN_NONE) {
        pthread_mutex_unlock(&b->lock);
        return;
    }
    atomic_store(&b->connected, up);
    if (up) {
        atomic_store(&b->ever_connected, true);
        if (nc) {
            /* Empty when the call fails: keep the last name then. */
            char url[sizeof(b->url)];

            if (natsConnection_GetConnectedUrl(nc, url, sizeof(url)) ==
                    NATS_OK &&
                url[0]) {
                memcpy(b->url, url, sizeof(url));
            }
        }
    }
    report = !b->closing && b->seen != (up ? BUS_SEEN_UP : BUS_SEEN_DOWN);
    if (report) {
        if (up) {
            log_info("bus: connected to %s", b->url);
        } else if (!initial) {
            log_warn("bus: lost the connection to %s; reconnecting", b->url);
        }
        b->seen = up ? BUS_SEEN_UP : BUS_SEEN_DOWN;
        if (b->on_state) {
            b->on_state(b->arg, up);
        }
    }
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void bus_on_connected(natsConnection *nc, void *closure)
{
    bus_set_state(closure, nc, true, false);
}

static void bus_on_disconnected(natsConnection *nc, void *closure)
{
    bus_set_state(closure, nc, false, false);
}

static void bus_on_closed(natsConnection *nc, void *closure)
{
    struct bus *b = closure;
    char url[sizeof(b->url)];
    bool ours;

    pthread_mutex_lock(&b->lock);
    ours = b->closing;
    memcpy(url, b->url, sizeof(url));
    pthread_mutex_unlock(&b->lock);
    if (!ours) {
        /* nats.c gave up on its own (an auth error repeated on reconnect,
         * say): nothing works until the process makes a new bus. */
        log_error("bus: the connection to %s was closed for good", url);
        atomic_store(&b->dead, true);
        bus_set_state(b, nc, false, false);
    }
    atomic_store(&b->connected, false);
    pthread_mutex_lock(&b->lock);
    b->closed = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void bus_on_error(natsConnection *nc, natsSubscription *sub,
                         natsStatus err, void *closure)
{
    (void)nc;
    (void)closure;
    /* nats.c reports a slow consumer once per episode, not per dropped
     * message. */
    if (err == NATS_SLOW_CONSUMER && sub) {
        log_warn("bus: subscriber on %s too slow: messages dropped",
                 natsSubscription_GetSubject(sub));
    } else {
        log_warn("bus: %s", natsStatus_GetText(err));
    }
}

/* A pseudo-random number for reconnect jitter: the clock and the
 * connection's address mixed by splitmix64. rand() is not thread-safe and
 * nats.c's generator is not exported. */
static uint64_t bus_jitter(const void *salt)
{
    uint64_t x = (uint64_t)clock_mono_ns() ^ (uint64_t)(uintptr_t)salt;

    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static int64_t bus_reconnect_delay(natsConnection *nc, int attempts,
                                   void *closure)
{
    int64_t ms = BUS_RECONNECT_BASE_MS;

    (void)nc;
    (void)closure;
    for (int i = 1; i < attempts && ms < BUS_RECONNECT_MAX_MS; i++) {
        ms *= 2;
    }
    if (ms > BUS_RECONNECT_MAX_MS) {
        ms = BUS_RECONNECT_MAX_MS;
    }
    return ms + (int64_t)(bus_jitter(nc) % (uint64_t)(ms / 4 + 1));
}

static void bus_on_async_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    struct bus *b = closure;

    (void)js;
    pthread_mutex_lock(&b->lock);
    if (b->async_errors++ == 0) {
        snprintf(b->async_error, sizeof(b->async_error), "%s",
                 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
    }
    pthread_mutex_unlock(&b->lock);
}

/* Waits until connected or deadline (monotonic ns). Returns whether
 * connected. */
static bool bus_wait_connected(struct bus *b, int64_t deadline_ns)
{
    bool up;

    pthread_mutex_lock(&b->lock);
    while (!(up = atomic_load(&b->connected)) && !b->closing) {
        struct timespec ts;

        if (clock_mono_ns() >= deadline_ns) {
            break;
        }
        ts.tv_sec = (time_t)(deadline_ns / CLOCK_NS_PER_S);
        ts.tv_nsec = (long)(deadline_ns % CLOCK_NS_PER_S);
        pthread_cond_timedwait(&b->cond, &b->lock, &ts);
    }
    pthread_mutex_unlock(&b->lock);
    return up;
}

/* ---- Connecting -------------------------------------------------------- */

/* nats.c takes almost anything as a URL ("foo" is host foo, port 4222), so
 * a typo would only show as a server that never answers. Accepts
 * [nats|tls]://[user[:pass]@]host[:port]. */
static bool bus_url_is_valid(const char *url)
{
    const char *p = url;
    const char *at;
    const char *colon;
    const char *end;

    if (strncmp(p, "nats://", 7) == 0) {
        p += 7;
    } else if (strncmp(p, "tls://", 6) == 0) {
        p += 6;
    } else {
        return false;
    }
    at = strrchr(p, '@');
    if (at) {
        p = at + 1;
    }
    end = p + strlen(p);
    if (*p == '[') {
        const char *close = strchr(p, ']');

        if (!close || close == p + 1) {
            return false;
        }
        colon = close[1] == ':' ? close + 1 : NULL;
        if (!colon && close[1] != '\0') {
            return false;
        }
    } else {
        colon = strchr(p, ':');
        if (colon == p || p == end) {
            return false;
        }
    }
    for (const char *h = p; h < (colon ? colon : end); h++) {
        if (*h == '/' || *h == '@' || (unsigned char)*h <= ' ') {
            return false;
        }
    }
    if (colon) {
        char *stop;
        long port;

        errno = 0;
        port = strtol(colon + 1, &stop, 10);
        if (errno || stop == colon + 1 || *stop != '\0' || port < 1 ||
            port > 65535) {
            return false;
        }
    }
    return true;
}

/* Splits "a, b" into trimmed URLs in copy (modified). Returns the count, or
 * -1 if one is empty or invalid, or there are too many. (Not strtok_r: it
 * would skip the empty item in "a,,b".) */
static int bus_split_urls(char *copy, const char **urls)
{
    int n = 0;
    char *tok = copy;

    for (;;) {
        char *comma = strchr(tok, ',');
        char *end = comma ? comma : tok + strlen(tok);

        while (end > tok && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }
        *end = '\0';
        while (*tok == ' ' || *tok == '\t') {
            tok++;
        }
        if (n == BUS_MAX_SERVERS || !bus_url_is_valid(tok)) {
            return -1;
        }
        urls[n++] = tok;
        if (!comma) {
            return n;
        }
        tok = comma + 1;
    }
}

/* nats.c reads the credentials file at each connect and, with retry on,
 * would retry a missing file forever: check it once here. */
static bool bus_creds_readable(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[64];
    size_t n;

    if (!f) {
        return false;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return n > 0;
}

static int bus_make_options(const struct bus_config *cfg, struct bus *b,
                            natsOptions **out)
{
    natsOptions *opts = NULL;
    char *copy = NULL;
    const char *urls[BUS_MAX_SERVERS];
    int n;
    natsStatus s;
    int rc = ST_INVALID;

    copy = mem_strdup(cfg->url);
    n = bus_split_urls(copy, urls);
    if (n <= 0) {
        log_error("bus: invalid NATS URL list '%s': want "
                  "nats://host[:port][, ...]",
                  cfg->url);
        goto out;
    }
    if (cfg->creds_file && !bus_creds_readable(cfg->creds_file)) {
        log_error("bus: cannot read the NATS credentials file %s",
                  cfg->creds_file);
        goto out;
    }
    snprintf(b->url, sizeof(b->url), "%s", urls[0]);

    /* nats.c spins up to 2,000 trylocks before it sleeps on a contended
     * lock (its default when the library opens itself). Where workers,
     * controller, nats-server and PostgreSQL share a few cores that spin
     * burns the CPU the lock holder needs: ~10 % of a worker's CPU in the
     * throughput benchmark. 0: sleep at once. Only the first call opens
     * the library; a later one (or one after nats_Close) changes nothing,
     * and natsOptions_Create reports a library that cannot open. */
    (void)nats_Open(0);
    /* Asynchronous subscriptions share a pool of delivery threads instead
     * of a thread each: the controller subscribes once per run a client
     * follows, a worker once per suite. Order per subscription holds;
     * every callback here only hands its message on. */
    (void)nats_SetMessageDeliveryPoolSize(BUS_DELIVERY_THREADS);
    s = natsOptions_Create(&opts);
    if (s == NATS_OK) {
        s = natsOptions_UseGlobalMessageDelivery(opts, true);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetServers(opts, urls, n);
    }
    if (s == NATS_OK && n > 1) {
        /* Spread a fleet over the list; nats.c randomizes by default. */
        s = natsOptions_SetNoRandomize(opts, false);
    }
    if (s == NATS_OK && cfg->send_asap) {
        s = natsOptions_SetSendAsap(opts, true);
    }
    if (s == NATS_OK && cfg->name) {
        s = natsOptions_SetName(opts, cfg->name);
    }
    if (s == NATS_OK && cfg->creds_file) {
        s = natsOptions_SetUserCredentialsFromFiles(opts, cfg->creds_file,
                                                    NULL);
    }
    if (s == NATS_OK && cfg->token) {
        s = natsOptions_SetToken(opts, cfg->token);
    }
    if (s == NATS_OK && cfg->user) {
        s = natsOptions_SetUserInfo(opts, cfg->user, cfg->password);
    }
    /* With a connected callback, a first connect that fails returns
     * NATS_NOT_YET_CONNECTED at once and retries in the background;
     * without one, natsConnection_Connect would block retrying. */
    if (s == NATS_OK) {
        s = natsOptions_SetRetryOnFailedConnect(opts, true, bus_on_connected,
                                                b);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetAllowReconnect(opts, true);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetMaxReconnect(opts, -1);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetCustomReconnectDelay(opts, bus_reconnect_delay,
                                                NULL);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectBufSize(opts, BUS_RECONNECT_BUF_BYTES);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetPingInterval(opts, BUS_PING_INTERVAL_MS);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetMaxPingsOut(opts, BUS_MAX_PINGS_OUT);
    }
    /* A request in flight when the connection drops fails at once instead
     * of waiting out its timeout. */
    if (s == NATS_OK) {
        s = natsOptions_SetFailRequestsOnDisconnect(opts, true);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetDisconnectedCB(opts, bus_on_disconnected, b);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectedCB(opts, bus_on_connected, b);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetClosedCB(opts, bus_on_closed, b);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetErrorHandler(opts, bus_on_error, b);
    }
    if (s != NATS_OK) {
        rc =
            bus_fail(NULL, "setting up connection options for", cfg->url, s, 0);
        goto out;
    }
    *out = opts;
    opts = NULL;
    rc = ST_OK;
out:
    natsOptions_Destroy(opts);
    free(copy);
    return rc;
}

int bus_connect(const struct bus_config *cfg, struct bus **out)
{
    struct bus *b = NULL;
    natsOptions *opts = NULL;
    jsOptions jo;
    pthread_condattr_t ca;
    natsStatus s;
    bool connected;
    int rc;

    if (!cfg || !cfg->url || !*cfg->url || !out) {
        return ST_INVALID;
    }
    b = mem_zalloc(sizeof(*b));
    b->on_state = cfg->on_state;
    b->arg = cfg->arg;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);

    rc = bus_make_options(cfg, b, &opts);
    if (rc != ST_OK) {
        goto fail_bus;
    }
    s = natsConnection_Connect(&b->nc, opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
        rc = bus_fail(NULL, "connecting to", cfg->url, s, 0);
        if (rc == ST_UPSTREAM) {
            /* Retry is on: what is left is a refusal that retrying cannot
             * fix. */
            rc = ST_INVALID;
        }
        goto fail_opts;
    }

    jsOptions_Init(&jo);
    jo.Wait = BUS_JS_API_WAIT_MS;
    jo.PublishAsync.MaxPending = BUS_ASYNC_MAX_PENDING;
    jo.PublishAsync.StallWait = BUS_ASYNC_STALL_MS;
    jo.PublishAsync.ErrHandler = bus_on_async_error;
    jo.PublishAsync.ErrHandlerClosure = b;
    connected = s == NATS_OK;
    s = natsConnection_JetStream(&b->js, b->nc, &jo);
    if (s != NATS_OK) {
        rc = bus_fail(NULL, "creating a JetStream context for", cfg->url, s, 0);
        goto fail_conn;
    }
    /* Reported only now that nothing can fail: on_state runs exactly once
     * for a bus_connect that succeeds, never for one that fails. */
    if (!connected) {
        /* nats.c has cleared the reason by now; its error handler and the
         * state change that follows tell the rest. */
        log_warn("bus: cannot connect to %s yet; retrying in the background",
                 cfg->url);
    }
    bus_set_state(b, connected ? b->nc : NULL, connected, true);
    natsOptions_Destroy(opts);
    *out = b;
    return ST_OK;

fail_conn:
    /* Not connected to anything the caller saw: close quietly. */
    pthread_mutex_lock(&b->lock);
    b->closing = true;
    pthread_mutex_unlock(&b->lock);
    natsConnection_Close(b->nc);
    pthread_mutex_lock(&b->lock);
    while (!b->closed) {
        pthread_cond_wait(&b->cond, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    natsConnection_Destroy(b->nc);
fail_opts:
    natsOptions_Destroy(opts);
fail_bus:
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
    return rc;
}

/* Drops async publishes still waiting for their ack. Returns how many. */
static int bus_drop_async_pending(struct bus *b)
{
    natsMsgList list = {0};
    int n;

    /* nats.c 3.4.1 dereferences its pending table without checking that
     * it exists, and it exists only after a first async publish. */
    if (!atomic_load(&b->async_used) ||
        js_PublishAsyncGetPendingList(&list, b->js) != NATS_OK) {
        return 0;
    }
    n = list.Count;
    natsMsgList_Destroy(&list);
    return n;
}

void bus_free(struct bus *b)
{
    int dropped;

    if (!b) {
        return;
    }
    pthread_mutex_lock(&b->lock);
    b->closing = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);

    /* nats.c's JetStream context does not free async messages still
     * pending, and may be inside our error handler right now. Taking the
     * pending list leaves only callbacks already running counted as
     * pending; waiting for "complete" then waits for exactly those. */
    dropped = bus_drop_async_pending(b);
    if (dropped > 0) {
        log_warn("bus: closing with %d async publishes unconfirmed", dropped);
    }
    (void)js_PublishAsyncComplete(b->js, NULL);

    if (atomic_load(&b->connected)) {
        /* Acks are fire-and-forget: make them reach the server. */
        (void)natsConnection_FlushTimeout(b->nc, BUS_CLOSE_FLUSH_MS);
    }
    natsConnection_Close(b->nc);
    /* Connection callbacks run on nats.c's thread, in order, closed last:
     * once it has run, none can touch b again. */
    pthread_mutex_lock(&b->lock);
    while (!b->closed) {
        pthread_cond_wait(&b->cond, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    jsCtx_Destroy(b->js);
    natsConnection_Destroy(b->nc);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

bool bus_is_connected(struct bus *b)
{
    return atomic_load(&b->connected);
}

bool bus_is_dead(struct bus *b)
{
    return atomic_load(&b->dead);
}

int bus_flush(struct bus *b, int64_t timeout_ms)
{
    natsStatus s;

    if (timeout_ms <= 0) {
        return ST_INVALID;
    }
    if (!atomic_load(&b->connected)) {
        return ST_UPSTREAM;
    }
    s = natsConnection_FlushTimeout(b->nc, timeout_ms);
    if (s == NATS_OK) {
        return ST_OK;
    }
    if (s == NATS_TIMEOUT) {
        return ST_TIMEOUT;
    }
    return bus_fail(b, "flushing to", "NATS", s, 0);
}

int bus_shutdown(int64_t timeout_ms)
{
    natsStatus s = nats_CloseAndWait(timeout_ms > 0 ? timeout_ms : 0);

    if (s == NATS_OK) {
        return ST_OK;
    }
    return s == NATS_TIMEOUT ? ST_TIMEOUT : ST_INVALID;
}

/* ---- Core NATS --------------------------------------------------------- */

/* nats.c checks subscription subjects but sends publish subjects as they
 * are: "a b" would go out as subject a with reply subject b. Tokens must be
 * non-empty and free of whitespace; wildcards only where allowed. */
static bool bus_subject_is_valid(const char *subject, bool wildcards)
{
    const char *tok = subject;

    if (!subject || !*subject) {
        return false;
    }
    for (const char *c = subject;; c++) {
        if (*c == '.' || *c == '\0') {
            size_t len = (size_t)(c - tok);

            if (len == 0) {
                return false;
            }
            if (len == 1 && (*tok == '*' || *tok == '>') &&
                (!wildcards || (*tok == '>' && *c != '\0'))) {
                return false;
            }
            if (*c == '\0') {
                return true;
            }
            tok = c + 1;
        } else if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            return false;
        }
    }
}

/* A header value: no control characters (CR LF would end the header). */
static bool bus_header_is_valid(const char *value)
{
    if (!*value) {
        return false;
    }
    for (const char *c = value; *c; c++) {
        if ((unsigned char)*c < ' ' || *c == 0x7f) {
            return false;
        }
    }
    return true;
}

int bus_publish(struct bus *b, const char *subject, const void *data,
                size_t len)
{
    natsStatus s;

    if (!bus_subject_is_valid(subject, false) || (len > 0 && !data)) {
        return ST_INVALID;
    }
    if (len > INT_MAX) {
        return ST_TOO_LARGE;
    }
    /* Before the first connect nats.c would buffer too; the contract is
     * that nothing is accepted until the bus has been up once. */
    if (!atomic_load(&b->ever_connected)) {
        return ST_UPSTREAM;
    }
    s = natsConnection_Publish(b->nc, subject, data, (int)len);
    if (s == NATS_OK) {
        return ST_OK;
    }
    return bus_fail(b, "publishing on", subject, s, 0);
}

static struct bus_msg *bus_msg_wrap(natsMsg *msg, struct bus_pull *pull)
{
    struct bus_msg *m = mem_zalloc(sizeof(*m));

    m->msg = msg;
    m->pull = pull;
    return m;
}

static void bus_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                       void *closure)
{
    struct bus_sub *s = closure;
    struct bus_msg *m = bus_msg_wrap(msg, NULL);

    (void)nc;
    (void)sub;
    if (s->replay) {
        jsMsgMetaData *meta = NULL;

        if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
            m->stream_seq = meta->Sequence.Stream;
            jsMsgMetaData_Destroy(meta);
        }
    }
    s->cb(s->arg, m);
}

/* Runs on the subscription's delivery thread after its last callback has
 * returned. */
static void bus_on_sub_complete(void *closure)
{
    struct bus_sub *s = closure;

    pthread_mutex_lock(&s->lock);
    s->done = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* A bus_sub for cb, before its nats.c subscription is made. */
static struct bus_sub *bus_sub_new(void (*cb)(void *arg, struct bus_msg *m),
                                   void *arg)
{
    struct bus_sub *s = mem_zalloc(sizeof(*s));

    s->cb = cb;
    s->arg = arg;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    return s;
}

/* Completes s once nats.c answered ns to making s->sub: returns 0 and *out,
 * or frees s and returns the failure (logged as what subject). */
static int bus_sub_made(struct bus *b, struct bus_sub *s, natsStatus ns,
                        jsErrCode jerr, const char *what, const char *subject,
                        struct bus_sub **out)
{
    /* Set before any close can happen (nats.c refuses it on a closed
     * subscription), so bus_sub_free can always wait for it. */
    if (ns == NATS_OK) {
        ns = natsSubscription_SetOnCompleteCB(s->sub, bus_on_sub_complete, s);
        if (ns != NATS_OK) {
            natsSubscription_Destroy(s->sub);
            s->sub = NULL;
        }
    }
    if (ns != NATS_OK) {
        int rc = bus_fail(b, what, subject, ns, jerr);

        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return rc;
    }
    *out = s;
    return ST_OK;
}

int bus_subscribe(struct bus *b, const char *subject, const char *queue,
                  void (*cb)(void *arg, struct bus_msg *m), void *arg,
                  struct bus_sub **out)
{
    struct bus_sub *s;
    natsStatus ns;

    if (!bus_subject_is_valid(subject, true) || !cb || !out ||
        (queue && !bus_subject_is_valid(queue, false))) {
        return ST_INVALID;
    }
    s = bus_sub_new(cb, arg);
    if (queue) {
        ns = natsConnection_QueueSubscribe(&s->sub, b->nc, subject, queue,
                                           bus_on_msg, s);
    } else {
        ns = natsConnection_Subscribe(&s->sub, b->nc, subject, bus_on_msg, s);
    }
    return bus_sub_made(b, s, ns, 0, "subscribing to", subject, out);
}

void bus_sub_free(struct bus_sub *s)
{
    if (!s) {
        return;
    }
    /* Core subscriptions are not durable: unsubscribing deletes nothing
     * on the server. A replay's consumer is an ephemeral push consumer:
     * natsSubscription_Unsubscribe would delete it with a JetStream
     * request, which can wait out its timeout while NATS is away (seen:
     * over a second); Destroy only unsubscribes, and the server drops the
     * consumer once its interest is gone. An error means it is closed
     * already (connection closed), and its delivery thread ends or has
     * ended all the same. */
    if (s->replay) {
        natsSubscription_Destroy(s->sub);
        s->sub = NULL;
    } else {
        (void)natsSubscription_Unsubscribe(s->sub);
    }
    pthread_mutex_lock(&s->lock);
    while (!s->done) {
        pthread_cond_wait(&s->cond, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    natsSubscription_Destroy(s->sub); /* NULL does nothing */
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int bus_js_replay(struct bus *b, const char *stream, const char *subject,
                  void (*cb)(void *arg, struct bus_msg *m), void *arg,
                  uint64_t *last_seq, struct bus_sub **out)
{
    jsStreamInfo *si = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    struct bus_sub *s;
    natsStatus ns;

    if (!stream || !*stream || !bus_subject_is_valid(subject, true) || !cb ||
        !last_seq || !out) {
        return ST_INVALID;
    }
    if (!atomic_load(&b->connected)) {
        return ST_UPSTREAM;
    }
    ns = js_GetStreamInfo(&si, b->js, stream, NULL, &jerr);
    if (ns != NATS_OK) {
        return bus_fail(b, "looking up stream", stream, ns, jerr);
    }
    /* Messages go oldest first (age, count), so the last one is there
     * whenever any is. */
    *last_seq = si->State.Msgs > 0 ? si->State.LastSeq : 0;
    jsStreamInfo_Destroy(si);
    s = bus_sub_new(cb, arg);
    s->replay = true;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    ns = js_Subscribe(&s->sub, b->js, subject, bus_on_msg, s, NULL, &so, &jerr);
    return bus_sub_made(b, s, ns, jerr, "replaying", subject, out);
}

/* ---- JetStream: streams and consumers ---------------------------------- */

static bool bus_stream_matches(const jsStreamConfig *have,
                               const struct bus_stream_config *want,
                               jsRetentionPolicy retention)
{
    if (have->SubjectsLen != 1 || !have->Subjects ||
        strcmp(have->Subjects[0], want->subjects) != 0) {
        return false;
    }
    if (have->Retention != retention || have->Storage != js_FileStorage ||
        have->MaxAge != want->max_age_ns) {
        return false;
    }
    /* 0 leaves the server's default: whatever it is, it matches. */
    if (want->duplicate_window_ns > 0 &&
        have->Duplicates != want->duplicate_window_ns) {
        return false;
    }
    if (want->replicas > 0 && have->Replicas != want->replicas) {
        return false;
    }
    if (want->max_msgs > 0 && have->MaxMsgs != want->max_msgs) {
        return false;
    }
    return true;
}

/* Fills sc from want, keeping what an operator may have set on the server
 * (limits, description) when base is given. Pointers borrow from want and
 * base. */
static void bus_stream_fill(jsStreamConfig *sc, const jsStreamConfig *base,
                            const struct bus_stream_config *want,
                            jsRetentionPolicy retention, const char **subjects)
{
    if (base) {
        *sc = *base;
    } else {
        jsStreamConfig_Init(sc);
    }
    sc->Name = want->name;
    subjects[0] = want->subjects;
    sc->Subjects = subjects;
    sc->SubjectsLen = 1;
    sc->Retention = retention;
    sc->Storage = js_FileStorage;
    sc->MaxAge = want->max_age_ns;
    if (want->duplicate_window_ns > 0) {
        sc->Duplicates = want->duplicate_window_ns;
    }
    if (want->replicas > 0) {
        sc->Replicas = want->replicas;
    }
    if (want->max_msgs > 0) {
        sc->MaxMsgs = want->max_msgs;
    }
}

int bus_ensure_stream(struct bus *b, const struct bus_stream_config *cfg)
{
    jsRetentionPolicy retention;
    const char *subjects[1];
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    if (!cfg || !cfg->name || !*cfg->name ||
        !bus_subject_is_valid(cfg->subjects, true) || cfg->max_age_ns < 0 ||
        cfg->duplicate_window_ns < 0 || cfg->replicas < 0 ||
        cfg->max_msgs < 0) {
        return ST_INVALID;
    }
    retention = cfg->retention == BUS_RETAIN_WORK_QUEUE ? js_WorkQueuePolicy
                                                        : js_LimitsPolicy;
    if (!atomic_load(&b->connected)) {
        return ST_UPSTREAM;
    }
    /* Look, then create or update. Another process may create the stream
     * between our look and our create: the server then says the name is
     * taken, and the next round looks again. */
    for (int round = 0; round < BUS_ENSURE_ROUNDS; round++) {
        s = js_GetStreamInfo(&si, b->js, cfg->name, NULL, &jerr);
        if (s == NATS_NOT_FOUND) {
            bus_stream_fill(&sc, NULL, cfg, retention, subjects);
            s = js_AddStream(NULL, b->js, &sc, NULL, &jerr);
            if (s == NATS_OK) {
                log_info("bus: created stream %s (%s)", cfg->name,
                         cfg->subjects);
                return ST_OK;
            }
            if (jerr == JSStreamNameExistErr) {
                continue;
            }
            return bus_fail(b, "creating stream", cfg->name, s, jerr);
        }
        if (s != NATS_OK) {
            return bus_fail(b, "looking up stream", cfg->name, s, jerr);
        }
        if (!si->Config) {
            jsStreamInfo_Destroy(si);
            log_warn("bus: stream %s: info without a configuration", cfg->name);
            return ST_PROTOCOL;
        }
        if (bus_stream_matches(si->Config, cfg, retention)) {
            jsStreamInfo_Destroy(si);
            return ST_OK;
        }
        bus_stream_fill(&sc, si->Config, cfg, retention, subjects);
        s = js_UpdateStream(NULL, b->js, &sc, NULL, &jerr);
        jsStreamInfo_Destroy(si);
        si = NULL;
        if (s == NATS_OK) {
            log_info("bus: updated stream %s", cfg->name);
            return ST_OK;
        }
        if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
            continue; /* deleted under us: create it */
        }
        return bus_fail(b, "updating stream", cfg->name, s, jerr);
    }
    log_warn("bus: stream %s keeps changing under us; gave up", cfg->name);
    return ST_CONFLICT;
}

static bool bus_str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static int64_t bus_want_max_deliver(const struct bus_consumer_config *cfg)
{
    return cfg->max_deliver > 0 ? cfg->max_deliver : -1;
}

static bool bus_consumer_matches(const jsConsumerConfig *have,
                                 const struct bus_consumer_config *want)
{
    int64_t md = have->MaxDeliver > 0 ? have->MaxDeliver : -1;

    return have->AckWait == want->ack_wait_ns &&
           md == bus_want_max_deliver(want) &&
           (want->max_ack_pending == 0 ||
            have->MaxAckPending == want->max_ack_pending) &&
           bus_str_eq(have->FilterSubject, want->filter);
}

static void bus_consumer_fill(jsConsumerConfig *cc,
                              const jsConsumerConfig *base,
                              const struct bus_consumer_config *want)
{
    if (base) {
        *cc = *base;
    } else {
        jsConsumerConfig_Init(cc);
        cc->DeliverPolicy = js_DeliverAll;
        cc->ReplayPolicy = js_ReplayInstant;
    }
    cc->Durable = want->name;
    cc->AckPolicy = js_AckExplicit;
    cc->AckWait = want->ack_wait_ns;
    cc->MaxDeliver = bus_want_max_deliver(want);
    if (want->max_ack_pending > 0) {
        cc->MaxAckPending = want->max_ack_pending;
    }
    cc->FilterSubject = want->filter;
}

int bus_ensure_consumer(struct bus *b, const struct bus_consumer_config *cfg)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    char name[256];

    if (!cfg || !cfg->stream || !*cfg->stream || !cfg->name || !*cfg->name ||
        !bus_subject_is_valid(cfg->filter, true) || cfg->ack_wait_ns <= 0 ||
        cfg->max_deliver < 0 || cfg->max_ack_pending < 0 ||
        strpbrk(cfg->name, ".*> \t")) {
        return ST_INVALID;
    }
    if (!atomic_load(&b->connected)) {
        return ST_UPSTREAM;
    }
    snprintf(name, sizeof(name), "%s/%s", cfg->stream, cfg->name);
    for (int round = 0; round < BUS_ENSURE_ROUNDS; round++) {
        s = js_GetConsumerInfo(&ci, b->js, cfg->stream, cfg->name, NULL, &jerr);
        /* nats.c: NATS_NOT_FOUND for a missing consumer, NATS_ERR with
         * the JetStream code for a missing stream. */
        if (jerr == JSStreamNotFoundErr) {
            return bus_fail(b, "creating consumer", name, s, jerr);
        }
        if (s == NATS_NOT_FOUND) {
            bus_consumer_fill(&cc, NULL, cfg);
            s = js_AddConsumer(NULL, b->js, cfg->stream, &cc, NULL, &jerr);
            if (s == NATS_OK) {
                log_info("bus: created consumer %s on %s", name, cfg->filter);
                return ST_OK;
            }
            if (jerr == JSConsumerNameExistErr ||
                jerr == JSConsumerExistingActiveErr) {
                continue;
            }
            return bus_fail(b, "creating consumer", name, s, jerr);
        }
        if (s != NATS_OK) {
            return bus_fail(b, "looking up consumer", name, s, jerr);
        }
        if (!ci->Config) {
            jsConsumerInfo_Destroy(ci);
            log_warn("bus: consumer %s: info without a configuration", name);
            return ST_PROTOCOL;
        }
        /* A push consumer or another ack policy under our name is not
         * ours to convert. */
        if (ci->Config->DeliverSubject && *ci->Config->DeliverSubject) {
            jsConsumerInfo_Destroy(ci);
            log_warn("bus: consumer %s exists as a push consumer", name);
            return ST_CONFLICT;
        }
        if (ci->Config->AckPolicy != js_AckExplicit) {
            jsConsumerInfo_Destroy(ci);
            log_warn("bus: consumer %s exists without explicit acks", name);
            return ST_CONFLICT;
        }
        if (bus_consumer_matches(ci->Config, cfg)) {
            jsConsumerInfo_Destroy(ci);
            return ST_OK;
        }
        bus_consumer_fill(&cc, ci->Config, cfg);
        s = js_UpdateConsumer(NULL, b->js, cfg->stream, &cc, NULL, &jerr);
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        if (s == NATS_OK) {
            log_info("bus: updated consumer %s", name);
            return ST_OK;
        }
        return bus_fail(b, "updating consumer", name, s, jerr);
    }
    log_warn("bus: consumer %s keeps changing under us; gave up", name);
    return ST_CONFLICT;
}

int bus_consumer_pending(struct bus *b, const char *stream, const char *name,
                         uint64_t *out_pending, uint64_t *out_ack_pending)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    char what[256];

    if (!stream || !*stream || !name || !*name || !out_pending ||
        !out_ack_pending) {
        return ST_INVALID;
    }
    if (!atomic_load(&b->connected)) {
        return ST_UPSTREAM;
    }
    s = js_GetConsumerInfo(&ci, b->js, stream, name, NULL, &jerr);
    if (s != NATS_OK && bus_status(s, jerr) == ST_NOT_FOUND) {
        return ST_NOT_FOUND; /* an answer, not a failure */
    }
    if (s != NATS_OK) {
        snprintf(what, sizeof(what), "%s/%s", stream, name);
        return bus_fail(b, "reading consumer", what, s, jerr);
    }
    *out_pending = ci->NumPending;
    *out_ack_pending = ci->NumAckPending > 0 ? (uint64_t)ci->NumAckPending : 0;
    jsConsumerInfo_Destroy(ci);
    return ST_OK;
}

/* ---- JetStream: publishing --------------------------------------------- */

int bus_js_publish(struct bus *b, const char *subject, const void *data,
                   size_t len, const char *msg_id, int64_t timeout_ms)
{
    jsPubOptions po;
    jsErrCode jerr = 0;
    natsStatus s;

    if (!bus_subject_is_valid(subject, false) || (len > 0 && !data) ||
        timeout_ms <= 0 || (msg_id && !bus_header_is_valid(msg_id))) {
        return ST_INVALID;
    }
    if (len > INT_MAX) {
        return ST_TOO_LARGE;
    }
    /* While disconnected nats.c would queue the request and let it time
     * out: fail at once instead, the caller retries. */
    if (!atomic_load(&b->connected)) {
        return ST_UPSTREAM;
    }
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.MaxWait = timeout_ms;
    s = js_Publish(NULL, b->js, subject, data, (int)len, &po, &jerr);
    if (s == NATS_OK) {
        return ST_OK;
    }
    if (s == NATS_TIMEOUT) {
        return ST_TIMEOUT;
    }
    return bus_fail(b, "publishing to JetStream on", subject, s, jerr);
}

int bus_js_publish_async(struct bus *b, const char *subject, const void *data,
                         size_t len, const char *msg_id)
{
    jsPubOptions po;
    natsStatus s;

    if (!bus_subject_is_valid(subject, false) || (len > 0 && !data) ||
        (msg_id && !bus_header_is_valid(msg_id))) {
        return ST_INVALID;
    }
    if (len > INT_MAX) {
        return ST_TOO_LARGE;
    }
    if (!atomic_load(&b->connected)) {
        return ST_UPSTREAM;
    }
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    s = js_PublishAsync(b->js, subject, data, (int)len, &po);
    if (s == NATS_OK) {
        atomic_store(&b->async_used, true);
        return ST_OK;
    }
    if (s == NATS_TIMEOUT) {
        /* Stalled: BUS_ASYNC_MAX_PENDING unconfirmed for too long. */
        return ST_TIMEOUT;
    }
    return bus_fail(b, "publishing to JetStream (async) on", subject, s, 0);
}

int bus_js_publish_wait(struct bus *b, int64_t timeout_ms)
{
    jsPubOptions po;
    natsStatus s;
    uint64_t errors;
    char first[sizeof(b->async_error)];

    if (timeout_ms <= 0) {
        return ST_INVALID;
    }
    jsPubOptions_Init(&po);
    po.MaxWait = timeout_ms;
    s = js_PublishAsyncComplete(b->js, &po);
    if (s == NATS_TIMEOUT) {
        /* Give up on the rest: nats.c would otherwise keep them (and count
         * them in the next wait) until an ack that may never come. */
        int dropped = bus_drop_async_pending(b);

        log_warn("bus: %d async publishes unconfirmed after %lld ms", dropped,
                 (long long)timeout_ms);
    }
    pthread_mutex_lock(&b->lock);
    errors = b->async_errors;
    memcpy(first, b->async_error, sizeof(first));
    b->async_errors = 0;
    b->async_error[0] = '\0';
    pthread_mutex_unlock(&b->lock);
    if (errors > 0) {
        log_warn("bus: %llu async publishes failed; first: %s",
                 (unsigned long long)errors, first);
    }
    if (s == NATS_TIMEOUT) {
        return ST_TIMEOUT;
    }
    if (s != NATS_OK) {
        return bus_fail(b, "waiting for async publishes to", "NATS", s, 0);
    }
    return errors > 0 ? ST_UPSTREAM : ST_OK;
}

/* ---- JetStream: pulling ------------------------------------------------ */

int bus_pull_bind(struct bus *b, const char *stream, const char *consumer,
                  struct bus_pull **out)
{
    struct bus_pull *p;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;
    int rc;

    if (!stream || !*stream || !consumer || !*consumer || !out) {
        return ST_INVALID;
    }
    /* Disconnected, nats.c's consumer lookup would time out and it would
     * bind blind: refuse instead. */
    if (!atomic_load(&b->connected)) {
        return ST_UPSTREAM;
    }
    p = mem_zalloc(sizeof(*p));
    p->bus = b;
    atomic_init(&p->refs, 1);
    p->name = mem_printf("%s/%s", stream, consumer);
    /* Stream and Consumer both set: nats.c binds to the existing consumer
     * and never creates one, so it never marks it for deletion either. */
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = consumer;
    so.ManualAck = true;
    s = js_PullSubscribe(&p->sub, b->js, NULL, NULL, NULL, &so, &jerr);
    if (s != NATS_OK) {
        if (bus_status(s, jerr) == ST_NOT_FOUND) {
            rc = ST_NOT_FOUND; /* an answer, not a failure */
        } else {
            rc = bus_fail(b, "binding to consumer", p->name, s, jerr);
        }
        free(p->name);
        free(p);
        return rc;
    }
    *out = p;
    return ST_OK;
}

static void bus_pull_unref(struct bus_pull *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1) {
        return;
    }
    /* Destroy, never Unsubscribe: on a subscription that created its
     * consumer, Unsubscribe deletes that consumer for every worker. */
    natsSubscription_Destroy(p->sub);
    free(p->name);
    free(p);
}

void bus_pull_free(struct bus_pull *p)
{
    if (p) {
        bus_pull_unref(p);
    }
}

int bus_pull_fetch(struct bus_pull *p, int batch, int64_t timeout_ms,
                   struct bus_msg **msgs, size_t *n)
{
    struct bus *b = p->bus;
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    int64_t deadline;
    int64_t left_ms;
    natsStatus s;

    if (batch <= 0 || timeout_ms <= 0 || !msgs || !n) {
        return ST_INVALID;
    }
    deadline = clock_mono_ns() + timeout_ms * CLOCK_NS_PER_MS;
    /* Disconnected, a fetch would only time out: wait for the connection
     * instead, which also keeps a caller's retry loop from spinning. */
    if (!bus_wait_connected(b, deadline)) {
        *n = 0;
        return ST_UPSTREAM;
    }
    left_ms = (deadline - clock_mono_ns()) / CLOCK_NS_PER_MS;
    if (left_ms <= 0) {
        *n = 0;
        return ST_TIMEOUT;
    }
    s = natsSubscription_Fetch(&list, p->sub, batch, left_ms, &jerr);
    if (s != NATS_OK) {
        *n = 0;
        if (!atomic_load(&b->connected)) {
            return ST_UPSTREAM;
        }
        if (s == NATS_TIMEOUT) {
            return ST_TIMEOUT;
        }
        return bus_fail(b, "fetching from", p->name, s, jerr);
    }
    for (int i = 0; i < list.Count; i++) {
        struct bus_msg *m = bus_msg_wrap(list.Msgs[i], p);
        jsMsgMetaData *meta = NULL;

        atomic_fetch_add(&p->refs, 1);
        if (natsMsg_GetMetaData(&meta, m->msg) == NATS_OK) {
            m->delivered = meta->NumDelivered;
            m->stream_seq = meta->Sequence.Stream;
            jsMsgMetaData_Destroy(meta);
        }
        list.Msgs[i] = NULL; /* now owned by m */
        msgs[i] = m;
    }
    *n = (size_t)list.Count;
    natsMsgList_Destroy(&list);
    return ST_OK;
}

/* ---- Messages ---------------------------------------------------------- */

const char *bus_msg_subject(const struct bus_msg *m)
{
    return natsMsg_GetSubject(m->msg);
}

const void *bus_msg_data(const struct bus_msg *m)
{
    return natsMsg_GetData(m->msg);
}

size_t bus_msg_len(const struct bus_msg *m)
{
    int len = natsMsg_GetDataLength(m->msg);

    return len > 0 ? (size_t)len : 0;
}

const char *bus_msg_header(const struct bus_msg *m, const char *key)
{
    const char *value = NULL;

    if (!key || natsMsgHeader_Get(m->msg, key, &value) != NATS_OK) {
        return NULL;
    }
    return value;
}

uint64_t bus_msg_delivered(const struct bus_msg *m)
{
    return m->delivered;
}

uint64_t bus_msg_stream_seq(const struct bus_msg *m)
{
    return m->stream_seq;
}

enum bus_ack { BUS_ACK, BUS_ACK_SYNC, BUS_NAK, BUS_IN_PROGRESS, BUS_TERM };

static int bus_msg_reply(struct bus_msg *m, enum bus_ack kind, int64_t arg)
{
    static const char *const names[] = {"ack", "ack", "nak", "in-progress",
                                        "term"};
    struct bus *b;
    jsOptions jo;
    jsErrCode jerr = 0;
    natsStatus s = NATS_OK;

    /* nats.c would dereference a core message's missing JetStream state
     * if it had a reply subject. */
    if (!m->pull) {
        return ST_INVALID;
    }
    b = m->pull->bus;
    switch (kind) {
    case BUS_ACK:
        s = natsMsg_Ack(m->msg, NULL);
        break;
    case BUS_ACK_SYNC:
        if (!atomic_load(&b->connected)) {
            return ST_UPSTREAM;
        }
        jsOptions_Init(&jo);
        jo.Wait = arg;
        s = natsMsg_AckSync(m->msg, &jo, &jerr);
        break;
    case BUS_NAK:
        s = arg > 0 ? natsMsg_NakWithDelay(m->msg, arg, NULL)
                    : natsMsg_Nak(m->msg, NULL);
        break;
    case BUS_IN_PROGRESS:
        s = natsMsg_InProgress(m->msg, NULL);
        break;
    case BUS_TERM:
        s = natsMsg_Term(m->msg, NULL);
        break;
    }
    if (s == NATS_OK) {
        return ST_OK;
    }
    if (s == NATS_TIMEOUT) {
        return ST_TIMEOUT;
    }
    return bus_fail(b, names[kind], m->pull->name, s, jerr);
}

int bus_msg_ack(struct bus_msg *m)
{
    return bus_msg_reply(m, BUS_ACK, 0);
}

int bus_msg_ack_sync(struct bus_msg *m, int64_t timeout_ms)
{
    if (timeout_ms <= 0) {
        return ST_INVALID;
    }
    return bus_msg_reply(m, BUS_ACK_SYNC, timeout_ms);
}

int bus_msg_nak(struct bus_msg *m, int64_t delay_ms)
{
    if (delay_ms < 0) {
        return ST_INVALID;
    }
    return bus_msg_reply(m, BUS_NAK, delay_ms);
}

int bus_msg_in_progress(struct bus_msg *m)
{
    return bus_msg_reply(m, BUS_IN_PROGRESS, 0);
}

int bus_msg_term(struct bus_msg *m)
{
    return bus_msg_reply(m, BUS_TERM, 0);
}

void bus_msg_free(struct bus_msg *m)
{
    if (!m) {
        return;
    }
    natsMsg_Destroy(m->msg);
    if (m->pull) {
        bus_pull_unref(m->pull);
    }
    free(m);
}
