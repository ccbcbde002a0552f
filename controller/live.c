/* Live event streams (see live.h). */
#include "live.h"

#include <ctype.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "clock.h"
#include "db.h"
#include "dbpool.h"
#include "httpd.h"
#include "log.h"
#include "loopq.h"
#include "mem.h"
#include "store.h"
#include "subjects.h"
#include "wire.h"

#define LIVE_CHECK_S 5
#define LIVE_KEEPALIVE_S 15

struct stream {
    struct live *l;
    struct httpd_sse *sse;
    int64_t run_id;
    bool ended;
};

enum item_kind { ITEM_EVENT, ITEM_DONE };

struct item {
    enum item_kind kind;
    int64_t run_id;
    char *name; /* SSE event name */
    char *id;   /* SSE id, or NULL */
    char *data; /* JSON */
};

/* The subscriptions to one run's events, held while a stream follows it
 * or an attach for it is under way: a run nobody follows costs the
 * controller nothing (a functional run sends about two events per test). */
struct watch {
    int64_t run_id;
    int refs;
    struct bus_sub *events; /* handoff.events.<run> */
    struct bus_sub *load;   /* handoff.events.<run>.load */
};

struct live {
    struct event_base *base;
    struct bus *bus;
    struct dbpool *pool;
    struct loopq *inbox;
    struct watch *watches;
    size_t n_watches;
    struct bus_sub *done_sub;
    struct stream **streams;
    size_t n_streams;
    struct event *check_ev;
    struct event *keepalive_ev;
    bool checking;
};

static const char *const kind_names[] = {"suite_start", "test_run", "output",
                                         "test_end", "suite_end"};

/* ---- Watches ------------------------------------------------------------ */

static void on_event_msg(void *arg, struct bus_msg *m);

/* Takes a reference on run_id's watch, subscribing when it is the first.
 * Loop thread. Returns 0 or a bus status. */
static int watch_ref(struct live *l, int64_t run_id)
{
    char subject[96];
    struct watch w = {.run_id = run_id, .refs = 1};
    int rc;

    for (size_t i = 0; i < l->n_watches; i++) {
        if (l->watches[i].run_id == run_id) {
            l->watches[i].refs++;
            return ST_OK;
        }
    }
    subjects_events(run_id, subject, sizeof(subject));
    rc = bus_subscribe(l->bus, subject, NULL, on_event_msg, l, &w.events);
    if (rc == ST_OK) {
        subjects_load_points(run_id, subject, sizeof(subject));
        rc = bus_subscribe(l->bus, subject, NULL, on_event_msg, l, &w.load);
    }
    if (rc != ST_OK) {
        bus_sub_free(w.events);
        return rc;
    }
    l->watches =
        mem_reallocarray(l->watches, l->n_watches + 1, sizeof(*l->watches));
    l->watches[l->n_watches++] = w;
    return ST_OK;
}

static void watch_unref(struct live *l, int64_t run_id)
{
    for (size_t i = 0; i < l->n_watches; i++) {
        struct watch *w = &l->watches[i];

        if (w->run_id == run_id && --w->refs == 0) {
            /* Callbacks only queue items: waiting for one cannot block. */
            bus_sub_free(w->events);
            bus_sub_free(w->load);
            l->watches[i] = l->watches[--l->n_watches];
            return;
        }
    }
}

/* ---- Streams ------------------------------------------------------------ */

static void stream_remove(struct live *l, struct stream *s)
{
    for (size_t i = 0; i < l->n_streams; i++) {
        if (l->streams[i] == s) {
            l->streams[i] = l->streams[--l->n_streams];
            break;
        }
    }
    httpd_sse_end(s->sse);
    watch_unref(l, s->run_id);
    free(s);
}

static void on_stream_close(struct httpd_sse *sse, void *arg)
{
    struct stream *s = arg;

    (void)sse;
    stream_remove(s->l, s);
}

static char *done_json(int64_t run_id, const char *state, const char *result,
                       const char *reason)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s?, s:s?}", "run_id", (json_int_t)run_id,
                  "state", state, "result", result && *result ? result : NULL,
                  "reason", reason && *reason ? reason : NULL);
    char *text = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    return text;
}

static void end_run_streams(struct live *l, int64_t run_id, const char *data)
{
    size_t i = 0;

    while (i < l->n_streams) {
        struct stream *s = l->streams[i];

        if (s->run_id != run_id) {
            i++;
            continue;
        }
        (void)httpd_sse_send(s->sse, "run_end", NULL, data, strlen(data));
        stream_remove(l, s); /* the slot now holds another stream */
    }
}

static void on_item(void *arg, void *p)
{
    struct live *l = arg;
    struct item *it = p;

    if (it->kind == ITEM_DONE) {
        end_run_streams(l, it->run_id, it->data);
    } else {
        for (size_t i = 0; i < l->n_streams; i++) {
            struct stream *s = l->streams[i];

            if (s->run_id == it->run_id) {
                /* A failed send closes the stream; on_close removes it. */
                (void)httpd_sse_send(s->sse, it->name, it->id, it->data,
                                     strlen(it->data));
            }
        }
    }
    free(it->name);
    free(it->id);
    free(it->data);
    free(it);
}

static void drop_item(void *arg, void *p)
{
    struct item *it = p;

    (void)arg;
    free(it->name);
    free(it->id);
    free(it->data);
    free(it);
}

/* ---- From NATS (nats.c threads) ---------------------------------------- */

static char *event_json(const struct wire_event *e)
{
    char ts[CLOCK_RFC3339_LEN];
    json_t *o =
        json_pack("{s:I, s:s, s:I, s:s, s:s, s:i}", "run_id",
                  (json_int_t)e->run_id, "job_id", e->job_id, "seq",
                  (json_int_t)e->seq, "kind", kind_names[e->ev.kind], "time",
                  clock_format_rfc3339(e->ev.time_unix_ns, CLOCK_UTC, 0, ts),
                  "job_attempt", e->job_attempt);
    char *text;

    if (e->ev.test) {
        json_object_set_new(o, "test", json_string(e->ev.test));
    }
    if (e->ev.kind == REPORT_TEST_RUN || e->ev.kind == REPORT_TEST_END ||
        e->ev.kind == REPORT_OUTPUT) {
        json_object_set_new(o, "attempt", json_integer(e->ev.attempt));
        json_object_set_new(o, "max_attempts",
                            json_integer(e->ev.max_attempts));
    }
    if (e->ev.kind == REPORT_OUTPUT) {
        json_object_set_new(o, "output", json_string(e->output));
    }
    if (e->ev.kind == REPORT_TEST_END || e->ev.kind == REPORT_SUITE_END) {
        json_object_set_new(o, "result",
                            json_string(result_kind_str(e->ev.result)));
        json_object_set_new(o, "elapsed_ms",
                            json_real((double)e->ev.elapsed_ns / 1e6));
        if (e->ev.reason) {
            json_object_set_new(o, "reason", json_string(e->ev.reason));
        }
    }
    if (e->ev.kind == REPORT_TEST_END) {
        json_object_set_new(o, "soft_failure",
                            json_boolean(e->ev.soft_failure));
        json_object_set_new(o, "flaky", json_boolean(e->ev.flaky));
        json_object_set_new(o, "retry", json_boolean(e->ev.retry));
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* A merged second of a load run (handoff.events.<run>.load, JSON from
 * the ingester: loadstore.c), relayed as the SSE event load_point. */
static void on_load_point(struct live *l, struct bus_msg *m)
{
    json_t *o = json_loadb(bus_msg_data(m), bus_msg_len(m), 0, NULL);
    json_t *id = json_object_get(o, "run_id");

    if (json_is_object(o) && json_is_integer(id)) {
        struct item *it = mem_zalloc(sizeof(*it));

        it->kind = ITEM_EVENT;
        it->run_id = json_integer_value(id);
        it->name = mem_strdup("load_point");
        it->data = json_dumps(o, JSON_COMPACT);
        loopq_push(l->inbox, it);
    }
    json_decref(o);
}

static void on_event_msg(void *arg, struct bus_msg *m)
{
    struct live *l = arg;
    struct wire_event *ev;
    size_t n_ev;
    const char *subj = bus_msg_subject(m);
    size_t n = strlen(subj);

    if (n > 5 && strcmp(subj + n - 5, ".load") == 0) {
        on_load_point(l, m);
        bus_msg_free(m);
        return;
    }
    if (wire_events_decode(bus_msg_data(m), bus_msg_len(m), &ev, &n_ev) ==
        ST_OK) {
        for (size_t i = 0; i < n_ev; i++) {
            struct item *it = mem_zalloc(sizeof(*it));

            it->kind = ITEM_EVENT;
            it->run_id = ev[i].run_id;
            it->name = mem_strdup(kind_names[ev[i].ev.kind]);
            it->id = mem_printf("%" PRIu64, ev[i].seq);
            it->data = event_json(&ev[i]);
            loopq_push(l->inbox, it);
            wire_event_cleanup(&ev[i]);
        }
        free(ev);
    }
    bus_msg_free(m);
}

static void on_done_msg(void *arg, struct bus_msg *m)
{
    struct live *l = arg;
    json_error_t jerr;
    json_t *o = json_loadb(bus_msg_data(m), bus_msg_len(m), 0, &jerr);
    json_t *id = json_object_get(o, "run_id");

    if (json_is_integer(id)) {
        struct item *it = mem_zalloc(sizeof(*it));

        it->kind = ITEM_DONE;
        it->run_id = json_integer_value(id);
        it->data = mem_strndup(bus_msg_data(m), bus_msg_len(m));
        loopq_push(l->inbox, it);
    }
    json_decref(o);
    bus_msg_free(m);
}

void live_publish_done(struct bus *bus, int64_t run_id, const char *state,
                       const char *result, const char *reason)
{
    char subject[64];
    char *text = done_json(run_id, state, result, reason);

    subjects_run_done(run_id, subject, sizeof(subject));
    (void)bus_publish(bus, subject, text, strlen(text));
    free(text);
}

/* ---- Attaching ---------------------------------------------------------- */

struct attach {
    struct live *l;
    struct httpd_req *req;
    int64_t run_id;
    int rc;
    char state[32];
    char result[32];
    char reason[1024];
};

static void attach_work(struct db *d, void *arg)
{
    struct attach *a = arg;

    a->rc = store_run_state(d, a->run_id, a->state, sizeof(a->state), a->result,
                            sizeof(a->result), a->reason, sizeof(a->reason));
}

static bool is_final(const char *state)
{
    return strcmp(state, "queued") != 0 && strcmp(state, "running") != 0;
}

static void attach_done(void *arg)
{
    struct attach *a = arg;
    struct live *l = a->l;
    struct stream *s;

    if (a->rc == ST_NOT_FOUND) {
        httpd_reply_error(a->req, 404, "not_found", "no run %" PRId64,
                          a->run_id);
        watch_unref(l, a->run_id);
        free(a);
        return;
    }
    if (a->rc != ST_OK) {
        httpd_reply_error(a->req, 503, "unavailable",
                          "the database is not reachable");
        watch_unref(l, a->run_id);
        free(a);
        return;
    }
    s = mem_zalloc(sizeof(*s));
    s->l = l;
    s->run_id = a->run_id; /* the stream takes over the watch's ref */
    s->sse = httpd_sse_start(a->req, on_stream_close, s);
    if (!s->sse) {
        watch_unref(l, a->run_id);
        free(s);
        free(a);
        return;
    }
    l->streams =
        mem_reallocarray(l->streams, l->n_streams + 1, sizeof(*l->streams));
    l->streams[l->n_streams++] = s;
    if (is_final(a->state)) {
        char *data = done_json(a->run_id, a->state, a->result, a->reason);

        end_run_streams(l, a->run_id, data);
        free(data);
    } else {
        (void)httpd_sse_comment(s->sse, "following the run");
    }
    free(a);
}

void live_attach(struct live *l, struct httpd_req *req, const char *id_text)
{
    struct attach *a;
    char *end;
    long long id;

    if (!id_text || !isdigit((unsigned char)id_text[0]) ||
        (id = strtoll(id_text, &end, 10)) <= 0 || *end) {
        httpd_reply_error(req, 404, "not_found", "no run \"%.64s\"",
                          id_text ? id_text : "");
        return;
    }
    /* Subscribed before the run's state is read: an event after that
     * read reaches the stream. */
    if (watch_ref(l, id) != ST_OK) {
        httpd_reply_error(req, 503, "unavailable", "NATS is not reachable");
        return;
    }
    a = mem_zalloc(sizeof(*a));
    a->l = l;
    a->req = req;
    a->run_id = id;
    if (dbpool_submit(l->pool, attach_work, attach_done, a) != ST_OK) {
        httpd_reply_error(req, 503, "unavailable", "the controller is busy");
        watch_unref(l, id);
        free(a);
    }
}

/* ---- Periodic work ------------------------------------------------------ */

struct check {
    struct live *l;
    int64_t *ids;
    size_t n;
    char (*states)[32];
    char (*results)[32];
    char (*reasons)[256];
    int *rcs;
};

static void check_work(struct db *d, void *arg)
{
    struct check *c = arg;

    for (size_t i = 0; i < c->n; i++) {
        c->rcs[i] = store_run_state(d, c->ids[i], c->states[i], 32,
                                    c->results[i], 32, c->reasons[i], 256);
    }
}

static void check_done(void *arg)
{
    struct check *c = arg;

    for (size_t i = 0; i < c->n; i++) {
        if (c->rcs[i] == ST_OK && is_final(c->states[i])) {
            char *data = done_json(c->ids[i], c->states[i], c->results[i],
                                   c->reasons[i]);

            end_run_streams(c->l, c->ids[i], data);
            free(data);
        }
    }
    c->l->checking = false;
    free(c->ids);
    free(c->states);
    free(c->results);
    free(c->reasons);
    free(c->rcs);
    free(c);
}

/* The backstop for a missed handoff.runs.<id>.done. */
static void on_check(evutil_socket_t fd, short what, void *arg)
{
    struct live *l = arg;
    struct check *c;

    (void)fd;
    (void)what;
    if (l->n_streams == 0 || l->checking) {
        return;
    }
    c = mem_zalloc(sizeof(*c));
    c->l = l;
    c->ids = mem_calloc(l->n_streams, sizeof(*c->ids));
    for (size_t i = 0; i < l->n_streams; i++) {
        bool seen = false;

        for (size_t k = 0; k < c->n; k++) {
            seen = seen || c->ids[k] == l->streams[i]->run_id;
        }
        if (!seen) {
            c->ids[c->n++] = l->streams[i]->run_id;
        }
    }
    c->states = mem_calloc(c->n, sizeof(*c->states));
    c->results = mem_calloc(c->n, sizeof(*c->results));
    c->reasons = mem_calloc(c->n, sizeof(*c->reasons));
    c->rcs = mem_calloc(c->n, sizeof(*c->rcs));
    l->checking = true;
    if (dbpool_submit(l->pool, check_work, check_done, c) != ST_OK) {
        check_done(c);
    }
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct live *l = arg;

    (void)fd;
    (void)what;
    for (size_t i = 0; i < l->n_streams; i++) {
        (void)httpd_sse_comment(l->streams[i]->sse, "keep-alive");
    }
}

int live_new(struct event_base *base, struct bus *bus, struct dbpool *pool,
             struct live **out)
{
    struct live *l = mem_zalloc(sizeof(*l));
    struct timeval check = {LIVE_CHECK_S, 0};
    struct timeval keep = {LIVE_KEEPALIVE_S, 0};
    int rc;

    l->base = base;
    l->bus = bus;
    l->pool = pool;
    rc = loopq_new(base, on_item, l, &l->inbox);
    if (rc == ST_OK) {
        rc = bus_subscribe(bus, SUBJECTS_RUN_DONE_ALL, NULL, on_done_msg, l,
                           &l->done_sub);
    }
    if (rc != ST_OK) {
        live_free(l);
        return rc;
    }
    l->check_ev = event_new(base, -1, EV_PERSIST, on_check, l);
    l->keepalive_ev = event_new(base, -1, EV_PERSIST, on_keepalive, l);
    event_add(l->check_ev, &check);
    event_add(l->keepalive_ev, &keep);
    *out = l;
    return ST_OK;
}

void live_free(struct live *l)
{
    if (!l) {
        return;
    }
    bus_sub_free(l->done_sub);
    while (l->n_streams > 0) {
        stream_remove(l, l->streams[0]);
    }
    free(l->streams);
    while (l->n_watches > 0) { /* attaches that never came back */
        l->watches[0].refs = 1;
        watch_unref(l, l->watches[0].run_id);
    }
    free(l->watches);
    if (l->check_ev) {
        event_free(l->check_ev);
        event_free(l->keepalive_ev);
    }
    loopq_free(l->inbox, drop_item);
    free(l);
}
