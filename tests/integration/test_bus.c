/* bus against a real nats-server from deploy/stack.sh: connecting and
 * reconnecting, core pub/sub, streams, consumers, JetStream publish and
 * pull. Needs HANDOFF_NATS_URL and HANDOFF_STACK_DIR (stack.sh env). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nats/nats.h>

#include "bus.h"
#include "clock.h"
#include "log.h"

#define MAX_STREAMS 64
#define WAIT_MS 10000

extern char **environ;

static const char *nats_url;
static int run_id;                 /* keeps names apart across runs */
static struct bus *bus;            /* shared, connected */
static char *streams[MAX_STREAMS]; /* created, deleted at the end */
static size_t n_streams;

/* ---- Helpers ----------------------------------------------------------- */

static int64_t now_ms(void)
{
    return clock_mono_ns() / CLOCK_NS_PER_MS;
}

static void pause_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Polls pred every 5 ms until it holds or timeout_ms passes. */
static bool wait_until(bool (*pred)(void *arg), void *arg, int64_t timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    while (!pred(arg)) {
        if (now_ms() >= deadline) {
            return pred(arg);
        }
        pause_ms(5);
    }
    return true;
}

static bool bus_up(void *arg)
{
    return bus_is_connected(arg);
}

static bool bus_dead(void *arg)
{
    return bus_is_dead(arg);
}

/* A stream name of this run; remembered for deletion. */
static const char *stream_name(const char *what)
{
    char buf[128];

    snprintf(buf, sizeof(buf), "BT%d_%s", run_id, what);
    assert_true(n_streams < MAX_STREAMS);
    streams[n_streams] = strdup(buf);
    return streams[n_streams++];
}

static void subject(char *buf, size_t size, const char *fmt, ...)
    MEM_PRINTF(3, 4);

static void subject(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(buf, size, "bt%d.", run_id);

    va_start(ap, fmt);
    vsnprintf(buf + n, size - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A raw nats.c connection, to check what the server holds without going
 * through the module under test. */
struct raw {
    natsConnection *nc;
    jsCtx *js;
};

static void raw_open(struct raw *r)
{
    assert_int_equal(natsConnection_ConnectTo(&r->nc, nats_url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&r->js, r->nc, NULL), NATS_OK);
}

static void raw_close(struct raw *r)
{
    jsCtx_Destroy(r->js);
    natsConnection_Destroy(r->nc);
}

static uint64_t stream_msgs(const char *name)
{
    struct raw r;
    jsStreamInfo *si = NULL;
    uint64_t n;

    raw_open(&r);
    assert_int_equal(js_GetStreamInfo(&si, r.js, name, NULL, NULL), NATS_OK);
    n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    raw_close(&r);
    return n;
}

/* JetStream API requests the server has answered for the account. */
static uint64_t api_total(void)
{
    struct raw r;
    jsAccountInfo *ai = NULL;
    uint64_t n;

    raw_open(&r);
    assert_int_equal(js_GetAccountInfo(&ai, r.js, NULL, NULL), NATS_OK);
    n = ai->API.Total;
    jsAccountInfo_Destroy(ai);
    raw_close(&r);
    return n;
}

/* How many JetStream API requests fn(arg) makes, counted by the server:
 * a call that finds everything in place makes exactly one (the lookup). */
static uint64_t api_requests(int (*fn)(struct bus *, const void *),
                             const void *arg, int want_rc)
{
    uint64_t t1 = api_total();
    uint64_t t2 = api_total();
    uint64_t t3;

    assert_int_equal(fn(bus, arg), want_rc);
    t3 = api_total();
    /* t2 - t1 is what api_total costs itself. */
    return (t3 - t2) - (t2 - t1);
}

static int ensure_stream_fn(struct bus *b, const void *arg)
{
    return bus_ensure_stream(b, arg);
}

static int ensure_consumer_fn(struct bus *b, const void *arg)
{
    return bus_ensure_consumer(b, arg);
}

static jsConsumerInfo *consumer_info(const char *stream, const char *name)
{
    struct raw r;
    jsConsumerInfo *ci = NULL;
    natsStatus s;

    raw_open(&r);
    s = js_GetConsumerInfo(&ci, r.js, stream, name, NULL, NULL);
    raw_close(&r);
    return s == NATS_OK ? ci : NULL;
}

static void make_work_queue(const char *stream, const char *subjects)
{
    struct bus_stream_config sc = {
        .name = stream,
        .subjects = subjects,
        .retention = BUS_RETAIN_WORK_QUEUE,
        .duplicate_window_ns = 60 * CLOCK_NS_PER_S,
    };

    assert_int_equal(bus_ensure_stream(bus, &sc), ST_OK);
}

static void make_consumer(const char *stream, const char *name,
                          const char *filter, int64_t ack_wait_ms)
{
    struct bus_consumer_config cc = {
        .stream = stream,
        .name = name,
        .filter = filter,
        .ack_wait_ns = ack_wait_ms * CLOCK_NS_PER_MS,
        .max_deliver = 10,
    };

    assert_int_equal(bus_ensure_consumer(bus, &cc), ST_OK);
}

static void publish_n(const char *subj, int n, const char *id_prefix)
{
    for (int i = 0; i < n; i++) {
        char data[32];
        char id[64];

        snprintf(data, sizeof(data), "%d", i);
        snprintf(id, sizeof(id), "%s-%d", id_prefix, i);
        assert_int_equal(
            bus_js_publish(bus, subj, data, strlen(data), id, 5000), ST_OK);
    }
}

/* Fetches exactly one message, or fails the test. */
static struct bus_msg *fetch_one(struct bus_pull *p, int64_t timeout_ms)
{
    struct bus_msg *m = NULL;
    size_t n = 99;

    assert_int_equal(bus_pull_fetch(p, 1, timeout_ms, &m, &n), ST_OK);
    assert_int_equal(n, 1);
    return m;
}

static void expect_no_message(struct bus_pull *p, int64_t timeout_ms)
{
    struct bus_msg *m = NULL;
    size_t n = 99;

    assert_int_equal(bus_pull_fetch(p, 1, timeout_ms, &m, &n), ST_TIMEOUT);
    assert_int_equal(n, 0);
}

struct pending_want {
    const char *stream;
    const char *consumer;
    uint64_t pending;
    uint64_t ack_pending;
};

static bool pending_is(void *arg)
{
    struct pending_want *w = arg;
    uint64_t p = 0;
    uint64_t a = 0;

    return bus_consumer_pending(bus, w->stream, w->consumer, &p, &a) == ST_OK &&
           p == w->pending && a == w->ack_pending;
}

static void expect_pending(const char *stream, const char *consumer,
                           uint64_t pending, uint64_t ack_pending)
{
    struct pending_want w = {stream, consumer, pending, ack_pending};

    /* Acks are fire-and-forget: the server may count them a moment
     * later. */
    assert_true(wait_until(pending_is, &w, WAIT_MS));
}

/* on_state calls, in order. */
struct states {
    pthread_mutex_t lock;
    int n;
    bool seq[32];
};

static void record_state(void *arg, bool up)
{
    struct states *st = arg;

    pthread_mutex_lock(&st->lock);
    if (st->n < 32) {
        st->seq[st->n] = up;
    }
    st->n++;
    pthread_mutex_unlock(&st->lock);
}

static int states_n(struct states *st)
{
    int n;

    pthread_mutex_lock(&st->lock);
    n = st->n;
    pthread_mutex_unlock(&st->lock);
    return n;
}

struct states_want {
    struct states *st;
    int n;
};

static bool states_reach(void *arg)
{
    struct states_want *w = arg;

    return states_n(w->st) >= w->n;
}

static void expect_states(struct states *st, int n, const bool *seq)
{
    struct states_want w = {st, n};

    assert_true(wait_until(states_reach, &w, WAIT_MS));
    pthread_mutex_lock(&st->lock);
    assert_int_equal(st->n, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(st->seq[i], seq[i]);
    }
    pthread_mutex_unlock(&st->lock);
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* The nats-server of our own that runs now, or 0. */
static pid_t server_pid;

/* A nats-server of our own (core NATS only), output discarded; with
 * auth ("--auth TOKEN" or "--user U --pass P") when given. */
static pid_t start_server(int port, const char *auth)
{
    posix_spawn_file_actions_t fa;
    char args[256];
    char p[16];
    char *argv[16];
    int argc = 0;
    char *save = NULL;
    pid_t pid;

    snprintf(p, sizeof(p), "%d", port);
    snprintf(args, sizeof(args), "nats-server -a 127.0.0.1 -p %s %s", p,
             auth ? auth : "");
    for (char *tok = strtok_r(args, " ", &save); tok && argc < 15;
         tok = strtok_r(NULL, " ", &save)) {
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    assert_int_equal(
        posix_spawnp(&pid, "nats-server", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    server_pid = pid;
    return pid;
}

static void stop_server(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (pid == server_pid) {
        server_pid = 0;
    }
}

/* Teardown of the tests that start servers: a failed assertion leaves
 * the test early, and its server must not outlive it. */
static int kill_server(void **state)
{
    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
    return 0;
}

static bool port_open(void *arg)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool open;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t) * (int *)arg);
    open = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return open;
}

static int stack(const char *what)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "'%s/deploy/stack.sh' %s nats >&2",
             HANDOFF_SOURCE_DIR, what);
    return system(cmd);
}

/* ---- Connecting -------------------------------------------------------- */

static void test_bus_connect_rejects_bad_urls_and_credentials(void **state)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1:4222",
        "http://127.0.0.1:4222",
        "nats://127.0.0.1:99999",
        "nats://127.0.0.1:42x",
        "nats://",
        "nats://127.0.0.1:4222,,nats://127.0.0.1:4223",
        "nats://a b:4222",
    };
    struct bus_config cfg = {0};
    struct bus *b = NULL;

    (void)state;
    assert_int_equal(bus_connect(&cfg, &b), ST_INVALID);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg.url = bad[i];
        assert_int_equal(bus_connect(&cfg, &b), ST_INVALID);
    }
    assert_null(b); /* out is written only on success */
    cfg.url = nats_url;
    cfg.creds_file = "/nonexistent/handoff.creds";
    assert_int_equal(bus_connect(&cfg, &b), ST_INVALID);
}

static void test_bus_connect_uses_every_url_of_a_list(void **state)
{
    char urls[512];
    struct bus_config cfg = {.name = "test_bus list"};
    struct bus *b = NULL;

    (void)state;
    /* One dead server first and one live: the list is tried in turn (in
     * random order), so the connect succeeds at once. */
    snprintf(urls, sizeof(urls), " nats://127.0.0.1:%d , %s ", free_port(),
             nats_url);
    cfg.url = urls;
    assert_int_equal(bus_connect(&cfg, &b), ST_OK);
    assert_true(bus_is_connected(b));
    assert_int_equal(bus_flush(b, 2000), ST_OK);
    bus_free(b);
}

static void test_bus_connect_retries_until_the_server_appears(void **state)
{
    struct states st = {.lock = PTHREAD_MUTEX_INITIALIZER};
    static const bool down_up[] = {false, true};
    struct bus_stream_config sc = {.name = "X", .subjects = "x.>"};
    struct bus_pull *p = NULL;
    struct bus *b = NULL;
    char url[64];
    int port = free_port();
    uint64_t pend;
    uint64_t ackp;
    int64_t t0;
    pid_t pid;

    (void)state;
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", port);
    struct bus_config cfg = {.url = url,
                             .name = "test_bus retry",
                             .on_state = record_state,
                             .arg = &st};
    assert_int_equal(bus_connect(&cfg, &b), ST_OK);
    assert_false(bus_is_connected(b));
    expect_states(&st, 1, down_up);

    assert_int_equal(bus_publish(b, "x.y", "a", 1), ST_UPSTREAM);
    assert_int_equal(bus_flush(b, 100), ST_UPSTREAM);
    assert_int_equal(bus_js_publish(b, "x.y", "a", 1, NULL, 100), ST_UPSTREAM);
    assert_int_equal(bus_js_publish_async(b, "x.y", "a", 1, NULL), ST_UPSTREAM);
    assert_int_equal(bus_ensure_stream(b, &sc), ST_UPSTREAM);
    assert_int_equal(bus_pull_bind(b, "X", "c", &p), ST_UPSTREAM);
    assert_int_equal(bus_consumer_pending(b, "X", "c", &pend, &ackp),
                     ST_UPSTREAM);

    pid = start_server(port, NULL);
    t0 = now_ms();
    assert_true(wait_until(bus_up, b, WAIT_MS));
    print_message("connected %lld ms after the server started\n",
                  (long long)(now_ms() - t0));
    expect_states(&st, 2, down_up);
    assert_int_equal(bus_publish(b, "x.y", "a", 1), ST_OK);
    assert_int_equal(bus_flush(b, 2000), ST_OK);
    bus_free(b);
    /* bus_free reports nothing: no "down" for a close we asked for. */
    expect_states(&st, 2, down_up);
    stop_server(pid);

    /* A bus that never connected frees at once: the retry stops. */
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", free_port());
    cfg.on_state = NULL;
    assert_int_equal(bus_connect(&cfg, &b), ST_OK);
    assert_false(bus_is_connected(b));
    t0 = now_ms();
    bus_free(b);
    assert_true(now_ms() - t0 < 1000);
}

static void test_bus_authenticates_and_reports_a_final_refusal(void **state)
{
    struct states st = {.lock = PTHREAD_MUTEX_INITIALIZER};
    static const bool up_down[] = {true, false};
    static const bool up_down_down[] = {true, false, false};
    struct bus *b = NULL;
    char url[64];
    int port = free_port();
    pid_t pid;

    (void)state;
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", port);
    struct bus_config cfg = {.url = url,
                             .name = "test_bus auth",
                             .user = "handoff",
                             .password = "s3cret"};

    /* User and password. */
    pid = start_server(port, "--user handoff --pass s3cret");
    assert_true(wait_until(port_open, &port, WAIT_MS));
    assert_int_equal(bus_connect(&cfg, &b), ST_OK);
    assert_true(bus_is_connected(b));
    assert_int_equal(bus_flush(b, 2000), ST_OK);
    bus_free(b);
    stop_server(pid);

    /* A token; then the server comes back with another one. nats.c retries
     * an auth error once, then closes the connection for good: the bus
     * says so, and every call fails from then on. */
    pid = start_server(port, "--auth tok-1");
    assert_true(wait_until(port_open, &port, WAIT_MS));
    cfg.user = NULL;
    cfg.password = NULL;
    cfg.token = "tok-1";
    cfg.on_state = record_state;
    cfg.arg = &st;
    assert_int_equal(bus_connect(&cfg, &b), ST_OK);
    expect_states(&st, 1, up_down);
    assert_int_equal(bus_publish(b, "auth.x", "a", 1), ST_OK);
    assert_int_equal(bus_flush(b, 2000), ST_OK);
    stop_server(pid);
    pid = start_server(port, "--auth tok-2");
    expect_states(&st, 2, up_down);
    assert_false(bus_is_dead(b));
    assert_true(wait_until(bus_dead, b, WAIT_MS));
    assert_false(bus_is_connected(b));
    assert_int_equal(bus_flush(b, 100), ST_UPSTREAM);
    assert_int_equal(bus_js_publish(b, "auth.x", "a", 1, NULL, 100),
                     ST_UPSTREAM);
    bus_free(b);
    expect_states(&st, 2, up_down);

    /* Refused from the first attempt: the same, reported as "down". */
    b = NULL;
    assert_int_equal(bus_connect(&cfg, &b), ST_OK);
    expect_states(&st, 3, up_down_down);
    assert_true(wait_until(bus_dead, b, WAIT_MS));
    bus_free(b);
    stop_server(pid);
}

/* ---- Core NATS --------------------------------------------------------- */

#define CORE_N 200

struct inbox {
    pthread_mutex_t lock;
    int count;
    int seen[CORE_N];
    char last_subject[128];
    int bad; /* messages that broke an expectation */
    int delay_ms;
    atomic_int in_cb;
};

static void on_core_msg(void *arg, struct bus_msg *m)
{
    struct inbox *in = arg;
    char buf[16] = {0};
    size_t len = bus_msg_len(m);
    int i;

    atomic_fetch_add(&in->in_cb, 1);
    if (in->delay_ms) {
        pause_ms(in->delay_ms); /* a slow handler */
    }
    memcpy(buf, bus_msg_data(m), len < sizeof(buf) ? len : sizeof(buf) - 1);
    i = atoi(buf);
    pthread_mutex_lock(&in->lock);
    in->count++;
    if (i >= 0 && i < CORE_N) {
        in->seen[i]++;
    }
    snprintf(in->last_subject, sizeof(in->last_subject), "%s",
             bus_msg_subject(m));
    /* A core message has no JetStream state and cannot be acked. */
    if (bus_msg_delivered(m) != 0 || bus_msg_stream_seq(m) != 0 ||
        bus_msg_header(m, "Nats-Msg-Id") != NULL ||
        bus_msg_ack(m) != ST_INVALID || bus_msg_nak(m, 0) != ST_INVALID) {
        in->bad++;
    }
    pthread_mutex_unlock(&in->lock);
    bus_msg_free(m);
    atomic_fetch_sub(&in->in_cb, 1);
}

static int inbox_count(struct inbox *in)
{
    int n;

    pthread_mutex_lock(&in->lock);
    n = in->count;
    pthread_mutex_unlock(&in->lock);
    return n;
}

struct count_want {
    struct inbox *a;
    struct inbox *b; /* or NULL */
    int n;
};

static bool counts_reach(void *arg)
{
    struct count_want *w = arg;

    return inbox_count(w->a) + (w->b ? inbox_count(w->b) : 0) >= w->n;
}

static void test_bus_queue_group_delivers_each_message_once(void **state)
{
    static struct inbox q1 = {.lock = PTHREAD_MUTEX_INITIALIZER};
    static struct inbox q2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
    static struct inbox all = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct bus_sub *s1 = NULL;
    struct bus_sub *s2 = NULL;
    struct bus_sub *s3 = NULL;
    char subj[64];
    char wild[64];
    struct count_want wq = {&q1, &q2, CORE_N};
    struct count_want wa = {&all, NULL, CORE_N};

    (void)state;
    subject(subj, sizeof(subj), "q.jobs");
    subject(wild, sizeof(wild), "q.>");
    assert_int_equal(bus_subscribe(bus, subj, "workers", on_core_msg, &q1, &s1),
                     ST_OK);
    assert_int_equal(bus_subscribe(bus, subj, "workers", on_core_msg, &q2, &s2),
                     ST_OK);
    assert_int_equal(bus_subscribe(bus, wild, NULL, on_core_msg, &all, &s3),
                     ST_OK);
    /* Subscriptions reach the server before the publishes that follow. */
    assert_int_equal(bus_flush(bus, 2000), ST_OK);
    for (int i = 0; i < CORE_N; i++) {
        char data[16];

        snprintf(data, sizeof(data), "%d", i);
        assert_int_equal(bus_publish(bus, subj, data, strlen(data)), ST_OK);
    }
    assert_int_equal(bus_flush(bus, 2000), ST_OK);
    assert_true(wait_until(counts_reach, &wq, WAIT_MS));
    assert_true(wait_until(counts_reach, &wa, WAIT_MS));
    bus_sub_free(s1);
    bus_sub_free(s2);
    bus_sub_free(s3);

    /* After bus_sub_free the counts are final. */
    assert_int_equal(q1.count + q2.count, CORE_N);
    assert_int_equal(all.count, CORE_N);
    assert_true(q1.count > 0 && q2.count > 0);
    for (int i = 0; i < CORE_N; i++) {
        assert_int_equal(q1.seen[i] + q2.seen[i], 1);
        assert_int_equal(all.seen[i], 1);
    }
    assert_string_equal(all.last_subject, subj);
    assert_int_equal(q1.bad + q2.bad + all.bad, 0);
}

static void test_bus_sub_free_waits_for_a_running_callback(void **state)
{
    static struct inbox slow = {.lock = PTHREAD_MUTEX_INITIALIZER,
                                .delay_ms = 300};
    static struct inbox other = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct bus_sub *s = NULL;
    struct bus_sub *o = NULL;
    struct count_want w1 = {&other, NULL, 1};
    struct count_want w6 = {&other, NULL, 6};
    char subj[64];
    int64_t t0;

    (void)state;
    subject(subj, sizeof(subj), "slow");
    assert_int_equal(bus_subscribe(bus, subj, NULL, on_core_msg, &slow, &s),
                     ST_OK);
    assert_int_equal(bus_subscribe(bus, subj, NULL, on_core_msg, &other, &o),
                     ST_OK);
    assert_int_equal(bus_flush(bus, 2000), ST_OK);
    assert_int_equal(bus_publish(bus, subj, "1", 1), ST_OK);
    assert_true(wait_until(counts_reach, &w1, WAIT_MS));
    while (atomic_load(&slow.in_cb) == 0 && inbox_count(&slow) == 0) {
        pause_ms(1);
    }
    t0 = now_ms();
    bus_sub_free(s);
    /* It waited for the slow callback to return. */
    assert_int_equal(atomic_load(&slow.in_cb), 0);
    assert_int_equal(inbox_count(&slow), 1);
    print_message("bus_sub_free waited %lld ms for the callback\n",
                  (long long)(now_ms() - t0));

    /* And it never runs again: the other subscriber sees what follows. */
    for (int i = 2; i <= 6; i++) {
        assert_int_equal(bus_publish(bus, subj, "2", 1), ST_OK);
    }
    assert_int_equal(bus_flush(bus, 2000), ST_OK);
    assert_true(wait_until(counts_reach, &w6, WAIT_MS));
    bus_sub_free(o);
    assert_int_equal(inbox_count(&slow), 1);
    assert_int_equal(slow.bad + other.bad, 0);
}

static void test_bus_core_rejects_bad_arguments(void **state)
{
    static struct inbox in = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct bus_sub *s = NULL;
    size_t big = 2 * 1024 * 1024;
    char *data = calloc(1, big);

    (void)state;
    assert_int_equal(bus_publish(bus, "", "a", 1), ST_INVALID);
    assert_int_equal(bus_publish(bus, NULL, "a", 1), ST_INVALID);
    /* nats.c would send these as they are: "a b" is subject a, reply b. */
    assert_int_equal(bus_publish(bus, "a b", "a", 1), ST_INVALID);
    assert_int_equal(bus_publish(bus, "a..b", "a", 1), ST_INVALID);
    assert_int_equal(bus_publish(bus, "a.*", "a", 1), ST_INVALID);
    assert_int_equal(bus_publish(bus, "a.>", "a", 1), ST_INVALID);
    assert_int_equal(bus_publish(bus, "a.", "a", 1), ST_INVALID);
    assert_int_equal(bus_js_publish(bus, "a\tb", "a", 1, NULL, 100),
                     ST_INVALID);
    assert_int_equal(bus_js_publish(bus, "a.b", "a", 1, "id\r\nX: y", 100),
                     ST_INVALID);
    /* Over the server's max_payload (1 MiB by default). */
    assert_int_equal(bus_publish(bus, "bt.big", data, big), ST_TOO_LARGE);
    assert_int_equal(bus_subscribe(bus, "", NULL, on_core_msg, &in, &s),
                     ST_INVALID);
    assert_int_equal(bus_subscribe(bus, "a.b", "", on_core_msg, &in, &s),
                     ST_INVALID);
    assert_int_equal(bus_subscribe(bus, "a.b", NULL, NULL, &in, &s),
                     ST_INVALID);
    assert_int_equal(bus_subscribe(bus, "a b", NULL, on_core_msg, &in, &s),
                     ST_INVALID);
    assert_int_equal(bus_subscribe(bus, "a.>.b", NULL, on_core_msg, &in, &s),
                     ST_INVALID);
    assert_int_equal(bus_subscribe(bus, "a.b", "q q", on_core_msg, &in, &s),
                     ST_INVALID);
    assert_null(s);
    assert_int_equal(bus_flush(bus, 0), ST_INVALID);
    bus_sub_free(NULL);
    free(data);
}

/* ---- Streams and consumers --------------------------------------------- */

static void test_bus_ensure_stream_is_idempotent_and_updates(void **state)
{
    const char *name = stream_name("ENSURE");
    char subj[64];
    char other[64];
    struct raw r;
    jsStreamInfo *si = NULL;
    struct bus_stream_config sc = {
        .name = name,
        .retention = BUS_RETAIN_WORK_QUEUE,
        .max_age_ns = 3600 * CLOCK_NS_PER_S,
        .duplicate_window_ns = 120 * CLOCK_NS_PER_S,
    };

    (void)state;
    subject(subj, sizeof(subj), "ensure.>");
    sc.subjects = subj;
    assert_int_equal(bus_ensure_stream(bus, &sc), ST_OK);
    /* In place already: one lookup, no update. */
    assert_true(api_requests(ensure_stream_fn, &sc, ST_OK) == 1);

    /* A changed max age is applied; the rest stays. */
    sc.max_age_ns = 7200 * CLOCK_NS_PER_S;
    assert_true(api_requests(ensure_stream_fn, &sc, ST_OK) == 2);
    assert_true(api_requests(ensure_stream_fn, &sc, ST_OK) == 1);
    raw_open(&r);
    assert_int_equal(js_GetStreamInfo(&si, r.js, name, NULL, NULL), NATS_OK);
    assert_true(si->Config->MaxAge == 7200 * CLOCK_NS_PER_S);
    assert_true(si->Config->Duplicates == 120 * CLOCK_NS_PER_S);
    assert_int_equal(si->Config->Retention, js_WorkQueuePolicy);
    assert_int_equal(si->Config->Storage, js_FileStorage);
    jsStreamInfo_Destroy(si);
    raw_close(&r);

    /* The server refuses a retention change. */
    sc.retention = BUS_RETAIN_LIMITS;
    assert_int_equal(bus_ensure_stream(bus, &sc), ST_CONFLICT);

    /* A second stream over the same subjects. */
    sc.name = stream_name("OVERLAP");
    assert_int_equal(bus_ensure_stream(bus, &sc), ST_CONFLICT);

    subject(other, sizeof(other), "ensure2.>");
    sc.subjects = other;
    sc.name = "BAD.NAME";
    assert_int_equal(bus_ensure_stream(bus, &sc), ST_INVALID);
    sc.name = NULL;
    assert_int_equal(bus_ensure_stream(bus, &sc), ST_INVALID);
    assert_int_equal(bus_ensure_stream(bus, NULL), ST_INVALID);
}

static void test_bus_ensure_consumer_is_idempotent_and_updates(void **state)
{
    const char *name = stream_name("CONSUMER");
    char subj[64];
    char filter[64];
    jsConsumerInfo *ci;
    struct bus_consumer_config cc = {
        .stream = name,
        .name = "runner",
        .ack_wait_ns = 30 * CLOCK_NS_PER_S,
        .max_deliver = 5,
        .max_ack_pending = 100,
    };

    (void)state;
    subject(subj, sizeof(subj), "cons.>");
    subject(filter, sizeof(filter), "cons.pool.ns.suite");
    cc.filter = filter;
    make_work_queue(name, subj);
    assert_int_equal(bus_ensure_consumer(bus, &cc), ST_OK);
    assert_true(api_requests(ensure_consumer_fn, &cc, ST_OK) == 1);

    cc.ack_wait_ns = 10 * CLOCK_NS_PER_S;
    cc.max_deliver = 7;
    cc.max_ack_pending = 0; /* "server default": keeps what is there */
    assert_true(api_requests(ensure_consumer_fn, &cc, ST_OK) == 2);
    assert_true(api_requests(ensure_consumer_fn, &cc, ST_OK) == 1);
    ci = consumer_info(name, "runner");
    assert_non_null(ci);
    assert_true(ci->Config->AckWait == 10 * CLOCK_NS_PER_S);
    assert_true(ci->Config->MaxDeliver == 7);
    assert_true(ci->Config->MaxAckPending == 100);
    assert_int_equal(ci->Config->AckPolicy, js_AckExplicit);
    assert_null(ci->Config->DeliverSubject);
    assert_string_equal(ci->Config->FilterSubject, filter);
    jsConsumerInfo_Destroy(ci);

    /* Unlimited deliveries. */
    cc.max_deliver = 0;
    assert_int_equal(bus_ensure_consumer(bus, &cc), ST_OK);
    assert_true(api_requests(ensure_consumer_fn, &cc, ST_OK) == 1);
    ci = consumer_info(name, "runner");
    assert_non_null(ci);
    assert_true(ci->Config->MaxDeliver <= 0);
    jsConsumerInfo_Destroy(ci);

    /* A work queue takes one consumer per subject. */
    cc.name = "runner2";
    assert_int_equal(bus_ensure_consumer(bus, &cc), ST_CONFLICT);

    cc.stream = "BT_NO_SUCH_STREAM";
    assert_int_equal(bus_ensure_consumer(bus, &cc), ST_NOT_FOUND);
    cc.stream = name;
    cc.name = "bad.name";
    assert_int_equal(bus_ensure_consumer(bus, &cc), ST_INVALID);
    cc.name = "runner";
    cc.ack_wait_ns = 0;
    assert_int_equal(bus_ensure_consumer(bus, &cc), ST_INVALID);
}

struct racer {
    pthread_barrier_t *go;
    const struct bus_stream_config *sc;
    const struct bus_consumer_config *cc;
    int stream_rc;
    int consumer_rc;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->go);
    r->stream_rc = bus_ensure_stream(bus, r->sc);
    pthread_barrier_wait(r->go);
    r->consumer_rc = bus_ensure_consumer(bus, r->cc);
    return NULL;
}

static void test_bus_ensure_is_safe_when_callers_race(void **state)
{
    (void)state;
    for (int round = 0; round < 10; round++) {
        char what[32];
        char subj[64];
        char filter[64];
        pthread_barrier_t go;
        pthread_t t[2];
        struct racer r[2];
        struct bus_stream_config sc = {
            .retention = BUS_RETAIN_WORK_QUEUE,
            .duplicate_window_ns = 60 * CLOCK_NS_PER_S,
        };
        struct bus_stream_config sc2;
        struct bus_consumer_config cc = {
            .name = "shared",
            .ack_wait_ns = 30 * CLOCK_NS_PER_S,
        };

        snprintf(what, sizeof(what), "RACE%d", round);
        sc.name = stream_name(what);
        subject(subj, sizeof(subj), "race%d.>", round);
        subject(filter, sizeof(filter), "race%d.p.n.s", round);
        sc.subjects = subj;
        cc.stream = sc.name;
        cc.filter = filter;
        pthread_barrier_init(&go, NULL, 2);
        /* Odd rounds: the two want different max ages. The loser of the
         * create sees the name taken, looks again and updates. */
        sc2 = sc;
        sc2.max_age_ns = round % 2 ? 3600 * CLOCK_NS_PER_S : 0;
        for (int i = 0; i < 2; i++) {
            r[i] = (struct racer){&go, i ? &sc2 : &sc, &cc, -1, -1};
            assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(r[i].stream_rc, ST_OK);
            assert_int_equal(r[i].consumer_rc, ST_OK);
        }
        pthread_barrier_destroy(&go);
    }
}

/* ---- JetStream publishing ---------------------------------------------- */

static void test_bus_js_publish_stores_a_msg_id_once(void **state)
{
    const char *name = stream_name("DEDUP");
    char subj[64];
    char none[64];

    (void)state;
    subject(subj, sizeof(subj), "dedup.x");
    make_work_queue(name, subj);
    assert_int_equal(bus_js_publish(bus, subj, "a", 1, "job-1", 5000), ST_OK);
    assert_int_equal(bus_js_publish(bus, subj, "a", 1, "job-1", 5000), ST_OK);
    assert_int_equal(bus_js_publish(bus, subj, "b", 1, "job-2", 5000), ST_OK);
    assert_int_equal(bus_js_publish(bus, subj, "c", 1, NULL, 5000), ST_OK);
    assert_true(stream_msgs(name) == 3);

    /* No stream takes this subject: no responders, at once. */
    subject(none, sizeof(none), "nostream.x");
    assert_int_equal(bus_js_publish(bus, none, "a", 1, NULL, 5000),
                     ST_UPSTREAM);
    assert_int_equal(bus_js_publish(bus, subj, "a", 1, NULL, 0), ST_INVALID);
    assert_int_equal(bus_js_publish(bus, subj, "a", 1, "", 1000), ST_INVALID);
    assert_int_equal(bus_js_publish(bus, "", "a", 1, NULL, 1000), ST_INVALID);
}

static void test_bus_js_publish_async_confirms_10000(void **state)
{
    const char *name = stream_name("ASYNC");
    char subj[64];
    char none[64];
    int64_t t0;
    int64_t ms;

    (void)state;
    subject(subj, sizeof(subj), "async.x");
    make_work_queue(name, subj);
    t0 = now_ms();
    for (int i = 0; i < 10000; i++) {
        char data[16];

        snprintf(data, sizeof(data), "%d", i);
        assert_int_equal(
            bus_js_publish_async(bus, subj, data, strlen(data), NULL), ST_OK);
    }
    assert_int_equal(bus_js_publish_wait(bus, 30000), ST_OK);
    ms = now_ms() - t0;
    print_message("10000 async publishes confirmed in %lld ms\n",
                  (long long)ms);
    assert_true(stream_msgs(name) == 10000);

    /* Refusals are counted and reported by the wait, once. */
    subject(none, sizeof(none), "nostream.async");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bus_js_publish_async(bus, none, "x", 1, NULL), ST_OK);
    }
    assert_int_equal(bus_js_publish_wait(bus, 5000), ST_UPSTREAM);
    assert_int_equal(bus_js_publish_wait(bus, 5000), ST_OK);

    /* A wait too short to see all acks gives up on the rest; the next wait
     * starts clean. */
    for (int i = 0; i < 20000; i++) {
        assert_int_equal(bus_js_publish_async(bus, subj, "y", 1, NULL), ST_OK);
    }
    assert_int_equal(bus_js_publish_wait(bus, 1), ST_TIMEOUT);
    assert_int_equal(bus_js_publish_wait(bus, 5000), ST_OK);
    assert_int_equal(bus_js_publish_async(bus, "", "y", 1, NULL), ST_INVALID);
    assert_int_equal(bus_js_publish_wait(bus, 0), ST_INVALID);
}

/* ---- Pulling ----------------------------------------------------------- */

static void test_bus_pull_fetches_and_acks(void **state)
{
    const char *name = stream_name("PULL");
    char subj[64];
    struct bus_pull *p = NULL;
    struct bus_pull *q = NULL;
    struct bus_msg *msgs[10];
    size_t n = 0;
    uint64_t last_seq = 0;
    int64_t t0;

    (void)state;
    subject(subj, sizeof(subj), "pull.p.n.s");
    make_work_queue(name, subj);
    make_consumer(name, "c", subj, 30000);
    publish_n(subj, 5, "pull");

    assert_int_equal(bus_pull_bind(bus, name, "c", &p), ST_OK);
    assert_int_equal(bus_pull_fetch(p, 10, 2000, msgs, &n), ST_OK);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        char data[32];
        char id[32];

        snprintf(data, sizeof(data), "%zu", i);
        snprintf(id, sizeof(id), "pull-%zu", i);
        assert_int_equal(bus_msg_len(msgs[i]), strlen(data));
        assert_memory_equal(bus_msg_data(msgs[i]), data, strlen(data));
        assert_string_equal(bus_msg_subject(msgs[i]), subj);
        assert_string_equal(bus_msg_header(msgs[i], "Nats-Msg-Id"), id);
        assert_null(bus_msg_header(msgs[i], "No-Such-Header"));
        assert_true(bus_msg_delivered(msgs[i]) == 1);
        assert_true(bus_msg_stream_seq(msgs[i]) > last_seq);
        last_seq = bus_msg_stream_seq(msgs[i]);
        assert_int_equal(bus_msg_ack(msgs[i]), ST_OK);
        /* A second ack does nothing. */
        assert_int_equal(bus_msg_ack(msgs[i]), ST_OK);
        bus_msg_free(msgs[i]);
    }
    expect_pending(name, "c", 0, 0);
    assert_true(stream_msgs(name) == 0); /* work queue: acked is gone */

    t0 = now_ms();
    expect_no_message(p, 300);
    assert_true(now_ms() - t0 >= 250);

    publish_n(subj, 1, "pull-sync");
    msgs[0] = fetch_one(p, 2000);
    assert_int_equal(bus_msg_ack_sync(msgs[0], 2000), ST_OK);
    assert_int_equal(bus_msg_ack_sync(msgs[0], 0), ST_INVALID);
    bus_msg_free(msgs[0]);
    expect_pending(name, "c", 0, 0);

    assert_int_equal(bus_pull_fetch(p, 0, 100, msgs, &n), ST_INVALID);
    assert_int_equal(bus_pull_fetch(p, 1, 0, msgs, &n), ST_INVALID);
    assert_int_equal(bus_pull_bind(bus, name, "nobody", &q), ST_NOT_FOUND);
    assert_int_equal(bus_pull_bind(bus, "BT_NO_SUCH_STREAM", "c", &q),
                     ST_NOT_FOUND);
    assert_int_equal(bus_pull_bind(bus, name, "", &q), ST_INVALID);
    assert_null(q);
    bus_pull_free(p);
    bus_pull_free(NULL);
    bus_msg_free(NULL);
}

static void test_bus_unacked_message_comes_back_after_ack_wait(void **state)
{
    const char *name = stream_name("REDELIVER");
    char subj[64];
    struct bus_pull *p = NULL;
    struct bus_msg *m;
    uint64_t seq;
    int64_t t0;

    (void)state;
    subject(subj, sizeof(subj), "redeliver.p.n.s");
    make_work_queue(name, subj);
    make_consumer(name, "c", subj, 1000);
    publish_n(subj, 1, "redeliver");
    assert_int_equal(bus_pull_bind(bus, name, "c", &p), ST_OK);

    m = fetch_one(p, 2000);
    t0 = now_ms();
    assert_true(bus_msg_delivered(m) == 1);
    seq = bus_msg_stream_seq(m);
    bus_msg_free(m); /* no ack: a worker that died */

    m = fetch_one(p, 5000);
    print_message("redelivered after %lld ms (ack wait 1000 ms)\n",
                  (long long)(now_ms() - t0));
    assert_true(now_ms() - t0 >= 900);
    assert_true(bus_msg_delivered(m) == 2);
    assert_true(bus_msg_stream_seq(m) == seq);

    /* term: never again, however long we wait past the ack wait. */
    assert_int_equal(bus_msg_term(m), ST_OK);
    bus_msg_free(m);
    expect_no_message(p, 2500);
    expect_pending(name, "c", 0, 0);
    bus_pull_free(p);
}

static void test_bus_nak_redelivers_after_the_delay(void **state)
{
    const char *name = stream_name("NAK");
    char subj[64];
    struct bus_pull *p = NULL;
    struct bus_msg *m;
    int64_t t0;

    (void)state;
    subject(subj, sizeof(subj), "nak.p.n.s");
    make_work_queue(name, subj);
    make_consumer(name, "c", subj, 30000);
    publish_n(subj, 1, "nak");
    assert_int_equal(bus_pull_bind(bus, name, "c", &p), ST_OK);

    m = fetch_one(p, 2000);
    assert_int_equal(bus_msg_nak(m, 800), ST_OK);
    t0 = now_ms();
    bus_msg_free(m);
    expect_no_message(p, 300);
    m = fetch_one(p, 5000);
    print_message("nak(800 ms) redelivered after %lld ms\n",
                  (long long)(now_ms() - t0));
    assert_true(now_ms() - t0 >= 700);
    assert_true(bus_msg_delivered(m) == 2);

    /* Without a delay: at once (well before the 30 s ack wait). */
    assert_int_equal(bus_msg_nak(m, 0), ST_OK);
    assert_int_equal(bus_msg_nak(m, -1), ST_INVALID);
    bus_msg_free(m);
    t0 = now_ms();
    m = fetch_one(p, 5000);
    assert_true(now_ms() - t0 < 2000);
    assert_true(bus_msg_delivered(m) == 3);
    assert_int_equal(bus_msg_ack(m), ST_OK);
    bus_msg_free(m);
    expect_pending(name, "c", 0, 0);
    bus_pull_free(p);
}

static void test_bus_in_progress_holds_off_redelivery(void **state)
{
    const char *name = stream_name("PROGRESS");
    char subj[64];
    struct bus_pull *worker = NULL;
    struct bus_pull *other = NULL;
    struct bus_msg *m;
    int64_t t0;

    (void)state;
    subject(subj, sizeof(subj), "progress.p.n.s");
    make_work_queue(name, subj);
    make_consumer(name, "c", subj, 1000);
    publish_n(subj, 1, "progress");
    assert_int_equal(bus_pull_bind(bus, name, "c", &worker), ST_OK);
    assert_int_equal(bus_pull_bind(bus, name, "c", &other), ST_OK);

    m = fetch_one(worker, 2000);
    t0 = now_ms();
    /* 2.5 ack waits of work, reporting progress every 300 ms; the other
     * worker's fetches are the clock. */
    while (now_ms() - t0 < 2500) {
        assert_int_equal(bus_msg_in_progress(m), ST_OK);
        expect_no_message(other, 300);
    }
    assert_true(bus_msg_delivered(m) == 1);
    assert_int_equal(bus_msg_ack(m), ST_OK);
    bus_msg_free(m);
    expect_no_message(other, 1500);
    expect_pending(name, "c", 0, 0);
    bus_pull_free(worker);
    bus_pull_free(other);
}

static void test_bus_pull_free_keeps_the_shared_consumer(void **state)
{
    const char *name = stream_name("SHARED");
    char subj[64];
    struct bus_pull *p1 = NULL;
    struct bus_pull *p2 = NULL;
    struct bus_pull *p3 = NULL;
    struct bus_msg *m1;
    struct bus_msg *m2;
    jsConsumerInfo *ci;

    (void)state;
    subject(subj, sizeof(subj), "shared.p.n.s");
    make_work_queue(name, subj);
    make_consumer(name, "c", subj, 30000);
    publish_n(subj, 3, "shared");
    assert_int_equal(bus_pull_bind(bus, name, "c", &p1), ST_OK);
    assert_int_equal(bus_pull_bind(bus, name, "c", &p2), ST_OK);

    m1 = fetch_one(p1, 2000);
    bus_pull_free(p1);
    ci = consumer_info(name, "c");
    assert_non_null(ci);
    jsConsumerInfo_Destroy(ci);

    m2 = fetch_one(p2, 2000);
    assert_true(bus_msg_stream_seq(m2) != bus_msg_stream_seq(m1));
    /* m1 outlived its pull and can still be acked. */
    assert_int_equal(bus_msg_ack(m1), ST_OK);
    assert_int_equal(bus_msg_ack(m2), ST_OK);
    bus_msg_free(m1);
    bus_msg_free(m2);
    bus_pull_free(p2);

    /* With every binding gone the consumer is still there, with its
     * position: a new worker gets the third message. */
    ci = consumer_info(name, "c");
    assert_non_null(ci);
    jsConsumerInfo_Destroy(ci);
    assert_int_equal(bus_pull_bind(bus, name, "c", &p3), ST_OK);
    m1 = fetch_one(p3, 2000);
    assert_memory_equal(bus_msg_data(m1), "2", 1);
    assert_int_equal(bus_msg_ack(m1), ST_OK);
    bus_msg_free(m1);
    bus_pull_free(p3);
    expect_pending(name, "c", 0, 0);
}

static void test_bus_consumer_pending_counts(void **state)
{
    const char *name = stream_name("PENDING");
    char subj[64];
    struct bus_pull *p = NULL;
    struct bus_msg *msgs[2];
    size_t n = 0;
    uint64_t pend = 9;
    uint64_t ackp = 9;

    (void)state;
    subject(subj, sizeof(subj), "pending.p.n.s");
    make_work_queue(name, subj);
    make_consumer(name, "c", subj, 30000);
    publish_n(subj, 3, "pending");
    expect_pending(name, "c", 3, 0);

    assert_int_equal(bus_pull_bind(bus, name, "c", &p), ST_OK);
    assert_int_equal(bus_pull_fetch(p, 2, 2000, msgs, &n), ST_OK);
    assert_int_equal(n, 2);
    expect_pending(name, "c", 1, 2);
    assert_int_equal(bus_msg_ack(msgs[0]), ST_OK);
    expect_pending(name, "c", 1, 1);
    assert_int_equal(bus_msg_ack(msgs[1]), ST_OK);
    bus_msg_free(msgs[0]);
    bus_msg_free(msgs[1]);
    expect_pending(name, "c", 1, 0);
    bus_pull_free(p);

    assert_int_equal(bus_consumer_pending(bus, name, "nobody", &pend, &ackp),
                     ST_NOT_FOUND);
    assert_int_equal(
        bus_consumer_pending(bus, "BT_NO_SUCH_STREAM", "c", &pend, &ackp),
        ST_NOT_FOUND);
    assert_true(pend == 9 && ackp == 9); /* untouched on failure */
    assert_int_equal(bus_consumer_pending(bus, name, "c", NULL, &ackp),
                     ST_INVALID);
}

/* ---- Replaying ------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    int n;
    int data[8];     /* what each message said, in order */
    uint64_t seq[8]; /* its stream sequence */
    int ackable;     /* messages an ack did not refuse */
} replayed = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void on_replay_msg(void *arg, struct bus_msg *m)
{
    char buf[16] = {0};
    size_t len = bus_msg_len(m);

    (void)arg;
    memcpy(buf, bus_msg_data(m), len < sizeof(buf) ? len : sizeof(buf) - 1);
    pthread_mutex_lock(&replayed.lock);
    if (replayed.n < 8) {
        replayed.data[replayed.n] = atoi(buf);
        replayed.seq[replayed.n] = bus_msg_stream_seq(m);
        replayed.n++;
    }
    replayed.ackable += bus_msg_ack(m) != ST_INVALID;
    pthread_mutex_unlock(&replayed.lock);
    bus_msg_free(m);
}

static bool replayed_reach(void *arg)
{
    int n;

    pthread_mutex_lock(&replayed.lock);
    n = replayed.n;
    pthread_mutex_unlock(&replayed.lock);
    return n >= *(int *)arg;
}

/* What a stream keeps comes first, in order, with its sequences, then
 * what is stored later; a stream holds at most max_msgs. */
static void test_bus_js_replay_delivers_the_kept_then_the_new(void **state)
{
    const char *name = stream_name("REPLAY");
    char subj[64];
    struct bus_stream_config sc = {
        .name = name,
        .retention = BUS_RETAIN_LIMITS,
        .max_msgs = 3,
    };
    struct bus_sub *s = NULL;
    uint64_t last = 99;
    int want = 3;

    (void)state;
    subject(subj, sizeof(subj), "replay.cancel");
    sc.subjects = subj;
    assert_int_equal(bus_ensure_stream(bus, &sc), ST_OK);
    /* 0..4 published as sequences 1..5; the stream keeps 3, 4, 5. */
    for (int i = 0; i < 5; i++) {
        char data[8];

        snprintf(data, sizeof(data), "%d", i);
        assert_int_equal(
            bus_js_publish(bus, subj, data, strlen(data), NULL, 5000), ST_OK);
    }
    assert_int_equal(
        bus_js_replay(bus, name, subj, on_replay_msg, NULL, &last, &s), ST_OK);
    assert_int_equal(last, 5);
    assert_true(wait_until(replayed_reach, &want, WAIT_MS));
    /* A core publish on the subject is stored and delivered too. */
    assert_int_equal(bus_publish(bus, subj, "7", 1), ST_OK);
    want = 4;
    assert_true(wait_until(replayed_reach, &want, WAIT_MS));
    bus_sub_free(s);
    pthread_mutex_lock(&replayed.lock);
    assert_int_equal(replayed.n, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(replayed.data[i], i + 2);
        assert_int_equal(replayed.seq[i], (uint64_t)i + 3);
    }
    assert_int_equal(replayed.data[3], 7);
    assert_int_equal(replayed.seq[3], 6);  /* after last: new */
    assert_int_equal(replayed.ackable, 0); /* no acks on a replay */
    pthread_mutex_unlock(&replayed.lock);

    /* An empty stream: last 0. */
    sc.name = stream_name("REPLAY_EMPTY");
    subject(subj, sizeof(subj), "replay.empty");
    assert_int_equal(bus_ensure_stream(bus, &sc), ST_OK);
    s = NULL;
    assert_int_equal(
        bus_js_replay(bus, sc.name, subj, on_replay_msg, NULL, &last, &s),
        ST_OK);
    assert_int_equal(last, 0);
    bus_sub_free(s);

    s = NULL;
    assert_int_equal(bus_js_replay(bus, "BT_NO_SUCH_STREAM", subj,
                                   on_replay_msg, NULL, &last, &s),
                     ST_NOT_FOUND);
    assert_null(s);
    assert_int_equal(
        bus_js_replay(bus, name, "bad subject", on_replay_msg, NULL, &last, &s),
        ST_INVALID);
}

/* ---- Server restart ---------------------------------------------------- */

static void test_bus_survives_a_server_restart(void **state)
{
    static struct inbox in = {.lock = PTHREAD_MUTEX_INITIALIZER};
    static const bool up_down_up[] = {true, false, true};
    struct states st = {.lock = PTHREAD_MUTEX_INITIALIZER};
    const char *name = stream_name("RESTART");
    char subj[64];
    char core[64];
    struct bus_config cfg = {.url = nats_url,
                             .name = "test_bus restart",
                             .on_state = record_state,
                             .arg = &st};
    struct bus *b = NULL;
    struct bus_sub *s = NULL;
    struct bus_sub *replay = NULL;
    struct bus_stream_config sc = {.retention = BUS_RETAIN_LIMITS};
    char replay_subj[64];
    uint64_t last = 0;
    struct bus_pull *p = NULL;
    struct bus_msg *msgs[8];
    struct count_want w1 = {&in, NULL, 1};
    struct count_want w3 = {&in, NULL, 3};
    size_t n = 0;
    int attempts = 0;
    int rc;
    int64_t t0;

    (void)state;
    subject(subj, sizeof(subj), "restart.p.n.s");
    subject(core, sizeof(core), "restart.events");
    make_work_queue(name, subj);
    make_consumer(name, "c", subj, 30000);

    assert_int_equal(bus_connect(&cfg, &b), ST_OK);
    expect_states(&st, 1, up_down_up);
    assert_int_equal(bus_subscribe(b, core, NULL, on_core_msg, &in, &s), ST_OK);
    assert_int_equal(bus_pull_bind(b, name, "c", &p), ST_OK);
    sc.name = stream_name("RESTART_REPLAY");
    subject(replay_subj, sizeof(replay_subj), "restart.replay");
    sc.subjects = replay_subj;
    assert_int_equal(bus_ensure_stream(b, &sc), ST_OK);
    assert_int_equal(bus_js_replay(b, sc.name, replay_subj, on_replay_msg, NULL,
                                   &last, &replay),
                     ST_OK);
    assert_int_equal(bus_flush(b, 2000), ST_OK);
    assert_int_equal(bus_publish(b, core, "0", 1), ST_OK);
    assert_true(wait_until(counts_reach, &w1, WAIT_MS));
    for (int i = 0; i < 3; i++) {
        char id[32];

        snprintf(id, sizeof(id), "r-%d", i);
        assert_int_equal(bus_js_publish(b, subj, "before", 6, id, 5000), ST_OK);
    }

    assert_int_equal(stack("stop-service"), 0);
    expect_states(&st, 2, up_down_up);
    assert_false(bus_is_connected(b));
    assert_int_equal(bus_js_publish(b, subj, "x", 1, NULL, 1000), ST_UPSTREAM);
    t0 = now_ms();
    assert_int_equal(bus_pull_fetch(p, 1, 300, msgs, &n), ST_UPSTREAM);
    assert_int_equal(n, 0);
    assert_true(now_ms() - t0 >= 250); /* waited, did not spin */
    /* Core publishes are buffered until the connection is back. */
    assert_int_equal(bus_publish(b, core, "1", 1), ST_OK);
    /* Freeing a replay asks the server nothing: no wait for it while it
     * is away (a worker stopping during an outage). */
    t0 = now_ms();
    bus_sub_free(replay);
    print_message("replay freed in %lld ms with the server down\n",
                  (long long)(now_ms() - t0));
    assert_true(now_ms() - t0 < 1000);

    assert_int_equal(stack("start-service"), 0);
    t0 = now_ms();
    expect_states(&st, 3, up_down_up);
    print_message("reconnected %lld ms after the server was ready\n",
                  (long long)(now_ms() - t0));
    /* JetStream may answer a moment after the client reconnects. */
    for (;;) {
        attempts++;
        rc = bus_js_publish(b, subj, "after", 5, "r-3", 2000);
        if (rc == ST_OK || attempts == 50) {
            break;
        }
        pause_ms(100);
    }
    print_message("first JetStream publish after restart: %d attempt(s)\n",
                  attempts);
    assert_int_equal(rc, ST_OK);

    assert_int_equal(bus_publish(b, core, "2", 1), ST_OK);
    assert_int_equal(bus_flush(b, 2000), ST_OK);
    assert_true(wait_until(counts_reach, &w3, WAIT_MS));

    /* The stream kept what it had (file storage) and the pull still
     * works. */
    for (size_t got = 0; got < 4; got += n) {
        assert_int_equal(bus_pull_fetch(p, 4, 5000, msgs + got, &n), ST_OK);
    }
    for (int i = 0; i < 4; i++) {
        char id[32];

        snprintf(id, sizeof(id), "r-%d", i);
        assert_string_equal(bus_msg_header(msgs[i], "Nats-Msg-Id"), id);
        assert_int_equal(bus_msg_ack(msgs[i]), ST_OK);
        bus_msg_free(msgs[i]);
    }
    bus_pull_free(p);
    bus_sub_free(s);
    bus_free(b);
    assert_int_equal(in.bad, 0);
    assert_true(in.seen[0] == 1 && in.seen[1] == 1 && in.seen[2] == 1);
    expect_pending(name, "c", 0, 0);
}

static int restart_teardown(void **state)
{
    (void)state;
    /* Whatever failed above, leave the server running for the rest. */
    return stack("start-service") == 0 ? 0 : -1;
}

/* ---- Main -------------------------------------------------------------- */

static int group_setup(void **state)
{
    struct bus_config cfg = {.url = nats_url, .name = "test_bus"};

    (void)state;
    if (bus_connect(&cfg, &bus) != ST_OK || !bus_is_connected(bus)) {
        fprintf(stderr, "test_bus: cannot connect to %s\n", nats_url);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    struct raw r;
    int rc = 0;

    (void)state;
    bus_free(bus);
    if (natsConnection_ConnectTo(&r.nc, nats_url) != NATS_OK ||
        natsConnection_JetStream(&r.js, r.nc, NULL) != NATS_OK) {
        return -1;
    }
    for (size_t i = 0; i < n_streams; i++) {
        jsErrCode jerr = 0;
        natsStatus s = js_DeleteStream(r.js, streams[i], NULL, &jerr);

        if (s != NATS_OK && s != NATS_NOT_FOUND &&
            jerr != JSStreamNotFoundErr) {
            fprintf(stderr, "test_bus: cannot delete stream %s\n", streams[i]);
            rc = -1;
        }
        free(streams[i]);
    }
    raw_close(&r);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_connect_rejects_bad_urls_and_credentials),
        cmocka_unit_test(test_bus_connect_uses_every_url_of_a_list),
        cmocka_unit_test_teardown(
            test_bus_connect_retries_until_the_server_appears, kill_server),
        cmocka_unit_test_teardown(
            test_bus_authenticates_and_reports_a_final_refusal, kill_server),
        cmocka_unit_test(test_bus_queue_group_delivers_each_message_once),
        cmocka_unit_test(test_bus_sub_free_waits_for_a_running_callback),
        cmocka_unit_test(test_bus_core_rejects_bad_arguments),
        cmocka_unit_test(test_bus_ensure_stream_is_idempotent_and_updates),
        cmocka_unit_test(test_bus_ensure_consumer_is_idempotent_and_updates),
        cmocka_unit_test(test_bus_ensure_is_safe_when_callers_race),
        cmocka_unit_test(test_bus_js_publish_stores_a_msg_id_once),
        cmocka_unit_test(test_bus_js_publish_async_confirms_10000),
        cmocka_unit_test(test_bus_pull_fetches_and_acks),
        cmocka_unit_test(test_bus_unacked_message_comes_back_after_ack_wait),
        cmocka_unit_test(test_bus_nak_redelivers_after_the_delay),
        cmocka_unit_test(test_bus_in_progress_holds_off_redelivery),
        cmocka_unit_test(test_bus_pull_free_keeps_the_shared_consumer),
        cmocka_unit_test(test_bus_consumer_pending_counts),
        cmocka_unit_test(test_bus_js_replay_delivers_the_kept_then_the_new),
        cmocka_unit_test_teardown(test_bus_survives_a_server_restart,
                                  restart_teardown),
    };
    int failed;

    nats_url = getenv("HANDOFF_NATS_URL");
    if (!nats_url || !*nats_url || !getenv("HANDOFF_STACK_DIR")) {
        fprintf(stderr,
                "test_bus: FAIL: HANDOFF_NATS_URL and HANDOFF_STACK_DIR are "
                "not set. This test needs the local stack:\n"
                "  deploy/stack.sh up && eval \"$(deploy/stack.sh env)\"\n"
                "then run it again (or ctest -L integration).\n");
        return 1;
    }
    run_id = (int)getpid();
    log_setup("test_bus", LOG_INFO);
    failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    /* nats.c's threads and caches, so LeakSanitizer sees only ours. */
    if (bus_shutdown(10000) != ST_OK) {
        fprintf(stderr, "test_bus: nats.c did not shut down in 10 s\n");
        failed++;
    }
    return failed;
}
