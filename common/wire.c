/* Encoding and decoding of the wire messages with protobuf-c. */
#include "wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "event.pb-c.h"
#include "job.pb-c.h"
#include "load.pb-c.h"
#include "mem.h"
#include "result.pb-c.h"
#include "utf8.h"
#include "worker.pb-c.h"

/* Caps on decoded collections: far above real use, far below what would
 * hurt. NATS caps a message at 8 MiB anyway. */
#define WIRE_MAX_ITEMS 1000000

static char *clean(const char *s)
{
    return utf8_clean_dup(s ? s : "", s ? strlen(s) : 0);
}

/* protobuf-c wants char * for strings it only reads when packing. */
static char *str_in(const char *s)
{
    return (char *)(s ? s : "");
}

static void pack_into(const ProtobufCMessage *m, struct buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);

    protobuf_c_message_pack(m, buf_extend(out, n));
}

static bool result_ok(int r)
{
    return r >= HANDOFF__V1__RESULT__RESULT_NONE &&
           r <= HANDOFF__V1__RESULT__RESULT_ERROR;
}

/* ---- Load specifications ---------------------------------------------- */

struct wire_load *wire_load_dup(const struct wire_load *l)
{
    struct wire_load *d;

    if (l == NULL) {
        return NULL;
    }
    d = mem_zalloc(sizeof(*d));
    *d = *l;
    d->workflow = mem_strdup(l->workflow ? l->workflow : "");
    d->executor = mem_strdup(l->executor ? l->executor : "");
    d->stages = mem_calloc(l->n_stages + 1, sizeof(*d->stages));
    if (l->n_stages > 0) {
        memcpy(d->stages, l->stages, l->n_stages * sizeof(*d->stages));
    }
    d->setup_data = mem_alloc(l->setup_len + 1);
    if (l->setup_len > 0) {
        memcpy(d->setup_data, l->setup_data, l->setup_len);
    }
    d->thresholds = mem_calloc(l->n_thresholds + 1, sizeof(*d->thresholds));
    for (size_t i = 0; i < l->n_thresholds; i++) {
        d->thresholds[i] = mem_strdup(l->thresholds[i]);
    }
    return d;
}

void wire_load_free(struct wire_load *l)
{
    if (l == NULL) {
        return;
    }
    free(l->workflow);
    free(l->executor);
    free(l->stages);
    free(l->setup_data);
    for (size_t i = 0; i < l->n_thresholds; i++) {
        free(l->thresholds[i]);
    }
    free(l->thresholds);
    free(l);
}

/* Fills m from l; what m points to is borrowed from l or allocated in the
 * arrays returned through stages/pstages (to free after packing). */
static void load_to_pb(const struct wire_load *l, Handoff__V1__LoadSpec *m,
                       Handoff__V1__LoadStage **stages,
                       Handoff__V1__LoadStage ***pstages)
{
    handoff__v1__load_spec__init(m);
    m->workflow = str_in(l->workflow);
    m->phase = (Handoff__V1__LoadSpec__Phase)l->phase;
    m->executor = str_in(l->executor);
    m->vus = l->vus;
    m->duration_ms = l->duration_ms;
    m->rate = l->rate;
    m->time_unit_ms = l->time_unit_ms;
    *stages = mem_calloc(l->n_stages + 1, sizeof(**stages));
    *pstages = mem_calloc(l->n_stages + 1, sizeof(**pstages));
    for (size_t i = 0; i < l->n_stages; i++) {
        handoff__v1__load_stage__init(&(*stages)[i]);
        (*stages)[i].duration_ms = l->stages[i].duration_ms;
        (*stages)[i].target = l->stages[i].target;
        (*pstages)[i] = &(*stages)[i];
    }
    m->n_stages = l->n_stages;
    m->stages = *pstages;
    m->pre_allocated_vus = l->pre_allocated_vus;
    m->max_vus = l->max_vus;
    m->iterations = l->iterations;
    m->graceful_stop_ms = l->graceful_stop_ms;
    m->graceful_ramp_down_ms = l->graceful_ramp_down_ms;
    m->max_duration_ms = l->max_duration_ms;
    m->shard = l->shard;
    m->shards = l->shards;
    m->start_at_unix_ns = l->start_at_unix_ns;
    m->setup_data.data = l->setup_data;
    m->setup_data.len = l->setup_data ? l->setup_len : 0;
    m->n_thresholds = l->n_thresholds;
    m->thresholds = l->thresholds;
}

static bool finite_nonneg(double v)
{
    return isfinite(v) && v >= 0;
}

/* A LoadSpec duration that must be set (>= 0): at most the API's. Those
 * below 0 meaning "unset" (graceful stop and ramp-down) are only capped. */
static bool load_dur_ok(int64_t ms)
{
    return ms >= 0 && ms <= WIRE_LOAD_DURATION_MAX_MS;
}

/* A checked copy of an untrusted LoadSpec, or NULL. */
static struct wire_load *load_from_pb(const Handoff__V1__LoadSpec *m)
{
    struct wire_load *l;

    if (m->phase < HANDOFF__V1__LOAD_SPEC__PHASE__PHASE_SHARD ||
        m->phase > HANDOFF__V1__LOAD_SPEC__PHASE__PHASE_TEARDOWN ||
        !*m->workflow || !load_dur_ok(m->duration_ms) ||
        !finite_nonneg(m->rate) || !load_dur_ok(m->time_unit_ms) ||
        m->n_stages > WIRE_LOAD_STAGES_MAX ||
        !load_dur_ok(m->max_duration_ms) ||
        m->graceful_stop_ms > WIRE_LOAD_DURATION_MAX_MS ||
        m->graceful_ramp_down_ms > WIRE_LOAD_DURATION_MAX_MS || m->shards < 0 ||
        m->shards > WIRE_LOAD_SHARDS_MAX || m->shard < 0 ||
        (m->shards > 0 && m->shard >= m->shards) ||
        m->setup_data.len > WIRE_LOAD_SETUP_MAX ||
        m->n_thresholds > WIRE_LOAD_THRESHOLDS_MAX) {
        return NULL;
    }
    for (size_t i = 0; i < m->n_stages; i++) {
        if (!load_dur_ok(m->stages[i]->duration_ms) ||
            !finite_nonneg(m->stages[i]->target)) {
            return NULL;
        }
    }
    for (size_t i = 0; i < m->n_thresholds; i++) {
        if (strlen(m->thresholds[i]) > WIRE_LOAD_THRESHOLD_LEN_MAX) {
            return NULL;
        }
    }
    l = mem_zalloc(sizeof(*l));
    l->workflow = clean(m->workflow);
    l->phase = (enum wire_load_phase)m->phase;
    l->executor = clean(m->executor);
    l->vus = m->vus;
    l->duration_ms = m->duration_ms;
    l->rate = m->rate;
    l->time_unit_ms = m->time_unit_ms;
    l->stages = mem_calloc(m->n_stages + 1, sizeof(*l->stages));
    for (size_t i = 0; i < m->n_stages; i++) {
        l->stages[i].duration_ms = m->stages[i]->duration_ms;
        l->stages[i].target = m->stages[i]->target;
    }
    l->n_stages = m->n_stages;
    l->pre_allocated_vus = m->pre_allocated_vus;
    l->max_vus = m->max_vus;
    l->iterations = m->iterations;
    l->graceful_stop_ms = m->graceful_stop_ms;
    l->graceful_ramp_down_ms =
        m->graceful_ramp_down_ms < 0 ? -1 : m->graceful_ramp_down_ms;
    l->max_duration_ms = m->max_duration_ms;
    l->shard = m->shard;
    l->shards = m->shards;
    l->start_at_unix_ns = m->start_at_unix_ns;
    l->setup_data = mem_alloc(m->setup_data.len + 1);
    if (m->setup_data.len > 0) {
        memcpy(l->setup_data, m->setup_data.data, m->setup_data.len);
    }
    l->setup_len = m->setup_data.len;
    l->thresholds = mem_calloc(m->n_thresholds + 1, sizeof(*l->thresholds));
    for (size_t i = 0; i < m->n_thresholds; i++) {
        l->thresholds[i] = clean(m->thresholds[i]);
    }
    l->n_thresholds = m->n_thresholds;
    return l;
}

static void *bytes_dup(const ProtobufCBinaryData *b, size_t *len)
{
    void *p = mem_alloc(b->len + 1);

    if (b->len > 0) {
        memcpy(p, b->data, b->len);
    }
    *len = b->len;
    return p;
}

void wire_load_snapshot_encode(const struct wire_load_snapshot *s,
                               struct buf *out)
{
    Handoff__V1__LoadSnapshot m = HANDOFF__V1__LOAD_SNAPSHOT__INIT;

    m.run_id = s->run_id;
    m.job_id = str_in(s->job_id);
    m.job_attempt = s->job_attempt;
    m.shard = s->shard;
    m.second = s->second;
    m.t_ns = s->t_ns;
    m.snap.data = s->snap;
    m.snap.len = s->snap ? s->snap_len : 0;
    pack_into(&m.base, out);
}

int wire_load_snapshot_decode(const void *data, size_t len,
                              struct wire_load_snapshot *out)
{
    Handoff__V1__LoadSnapshot *m =
        handoff__v1__load_snapshot__unpack(NULL, len, data);
    struct wire_load_snapshot s;

    if (!m) {
        return ST_PROTOCOL;
    }
    if (m->run_id <= 0 || !*m->job_id || m->job_attempt < 1 || m->shard < 0 ||
        m->second < 1 || m->second > 10000000 || m->t_ns < 0) {
        handoff__v1__load_snapshot__free_unpacked(m, NULL);
        return ST_PROTOCOL;
    }
    memset(&s, 0, sizeof(s));
    s.run_id = m->run_id;
    s.job_id = clean(m->job_id);
    s.job_attempt = m->job_attempt;
    s.shard = m->shard;
    s.second = m->second;
    s.t_ns = m->t_ns;
    s.snap = bytes_dup(&m->snap, &s.snap_len);
    handoff__v1__load_snapshot__free_unpacked(m, NULL);
    *out = s;
    return ST_OK;
}

void wire_load_snapshot_cleanup(struct wire_load_snapshot *s)
{
    free(s->job_id);
    free(s->snap);
    memset(s, 0, sizeof(*s));
}

/* ---- Jobs ------------------------------------------------------------- */

void wire_job_encode(const struct wire_job *j, struct buf *out)
{
    Handoff__V1__Job m = HANDOFF__V1__JOB__INIT;
    Handoff__V1__Param *params = mem_calloc(j->n_params + 1, sizeof(*params));
    Handoff__V1__Param **pp = mem_calloc(j->n_params + 1, sizeof(*pp));
    Handoff__V1__LoadSpec spec;
    Handoff__V1__LoadStage *stages = NULL;
    Handoff__V1__LoadStage **pstages = NULL;

    m.job_id = str_in(j->job_id);
    m.run_id = j->run_id;
    m.suite = str_in(j->suite);
    m.namespace_ = str_in(j->ns);
    for (size_t i = 0; i < j->n_params; i++) {
        handoff__v1__param__init(&params[i]);
        params[i].key = j->params[i].key;
        params[i].value = j->params[i].value;
        pp[i] = &params[i];
    }
    m.n_params = j->n_params;
    m.params = pp;
    m.run_filter = str_in(j->run_filter);
    m.skip_filter = str_in(j->skip_filter);
    m.max_attempts = j->max_attempts;
    m.timeout_ms = j->timeout_ms;
    m.test_timeout_ms = j->test_timeout_ms;
    m.created_unix_ms = j->created_unix_ms;
    m.count = j->count;
    m.shard = j->shard;
    m.shards = j->shards;
    m.not_after_unix_ms = j->not_after_unix_ms;
    if (j->load != NULL) {
        load_to_pb(j->load, &spec, &stages, &pstages);
        m.load = &spec;
    }
    pack_into(&m.base, out);
    free(params);
    free(pp);
    free(stages);
    free(pstages);
}

int wire_job_decode(const void *data, size_t len, struct wire_job *out)
{
    Handoff__V1__Job *m = handoff__v1__job__unpack(NULL, len, data);
    struct wire_job j;

    if (!m) {
        return ST_PROTOCOL;
    }
    if (!*m->job_id || m->run_id <= 0 || !*m->suite || m->max_attempts < 0 ||
        m->max_attempts > 100 || m->timeout_ms < 0 || m->test_timeout_ms < 0 ||
        m->count < 0 || m->count > 1000000 || m->shard < 0 || m->shards < 0 ||
        m->n_params > WIRE_MAX_ITEMS) {
        handoff__v1__job__free_unpacked(m, NULL);
        return ST_PROTOCOL;
    }
    memset(&j, 0, sizeof(j));
    j.job_id = clean(m->job_id);
    j.run_id = m->run_id;
    j.suite = clean(m->suite);
    j.ns = clean(m->namespace_);
    for (size_t i = 0; i < m->n_params; i++) {
        char *k = clean(m->params[i]->key);
        char *v = clean(m->params[i]->value);

        result_kv_set(&j.params, &j.n_params, k, v);
        free(k);
        free(v);
    }
    j.run_filter = clean(m->run_filter);
    j.skip_filter = clean(m->skip_filter);
    j.max_attempts = m->max_attempts;
    j.timeout_ms = m->timeout_ms;
    j.test_timeout_ms = m->test_timeout_ms;
    j.created_unix_ms = m->created_unix_ms;
    j.count = m->count;
    j.shard = m->shard;
    j.shards = m->shards;
    j.not_after_unix_ms = m->not_after_unix_ms;
    if (m->load != NULL) {
        j.load = load_from_pb(m->load);
        if (j.load == NULL) {
            handoff__v1__job__free_unpacked(m, NULL);
            wire_job_cleanup(&j);
            return ST_PROTOCOL;
        }
    }
    handoff__v1__job__free_unpacked(m, NULL);
    *out = j;
    return ST_OK;
}

void wire_job_cleanup(struct wire_job *j)
{
    free(j->job_id);
    free(j->suite);
    free(j->ns);
    result_kv_free(j->params, j->n_params);
    free(j->run_filter);
    free(j->skip_filter);
    wire_load_free(j->load);
    memset(j, 0, sizeof(*j));
}

void wire_cancel_encode(const struct wire_cancel *c, struct buf *out)
{
    Handoff__V1__Cancel m = HANDOFF__V1__CANCEL__INIT;

    m.run_id = c->run_id;
    m.reason = str_in(c->reason);
    m.job_keys = c->job_keys;
    m.n_job_keys = c->n_job_keys;
    pack_into(&m.base, out);
}

int wire_cancel_decode(const void *data, size_t len, struct wire_cancel *out)
{
    Handoff__V1__Cancel *m = handoff__v1__cancel__unpack(NULL, len, data);

    if (!m) {
        return ST_PROTOCOL;
    }
    if (m->run_id <= 0 || m->n_job_keys > WIRE_CANCEL_MAX_KEYS) {
        handoff__v1__cancel__free_unpacked(m, NULL);
        return ST_PROTOCOL;
    }
    memset(out, 0, sizeof(*out));
    out->run_id = m->run_id;
    out->reason = clean(m->reason);
    if (m->n_job_keys > 0) {
        out->job_keys = mem_calloc(m->n_job_keys, sizeof(*out->job_keys));
        for (size_t i = 0; i < m->n_job_keys; i++) {
            out->job_keys[i] = clean(m->job_keys[i]);
        }
        out->n_job_keys = m->n_job_keys;
    }
    handoff__v1__cancel__free_unpacked(m, NULL);
    return ST_OK;
}

void wire_cancel_cleanup(struct wire_cancel *c)
{
    free(c->reason);
    for (size_t i = 0; i < c->n_job_keys; i++) {
        free(c->job_keys[i]);
    }
    free(c->job_keys);
    memset(c, 0, sizeof(*c));
}

/* ---- Results ---------------------------------------------------------- */

/* Everything allocated to build one JobResult, freed together. */
struct packer {
    void **blocks;
    size_t n;
};

static void *pk_alloc(struct packer *pk, size_t size)
{
    void *p = mem_zalloc(size);

    pk->blocks = mem_reallocarray(pk->blocks, pk->n + 1, sizeof(*pk->blocks));
    pk->blocks[pk->n++] = p;
    return p;
}

static void pk_free(struct packer *pk)
{
    for (size_t i = 0; i < pk->n; i++) {
        free(pk->blocks[i]);
    }
    free(pk->blocks);
}

static Handoff__V1__KeyValue **pk_kvs(struct packer *pk,
                                      const struct result_kv *kvs, size_t n)
{
    Handoff__V1__KeyValue **pp = pk_alloc(pk, (n + 1) * sizeof(*pp));
    Handoff__V1__KeyValue *items = pk_alloc(pk, (n + 1) * sizeof(*items));

    for (size_t i = 0; i < n; i++) {
        handoff__v1__key_value__init(&items[i]);
        items[i].key = kvs[i].key;
        items[i].value = kvs[i].value;
        pp[i] = &items[i];
    }
    return pp;
}

static Handoff__V1__Phase *pk_phase(struct packer *pk,
                                    const struct result_phase *p)
{
    Handoff__V1__Phase *m = pk_alloc(pk, sizeof(*m));

    handoff__v1__phase__init(m);
    m->ran = p->ran;
    m->result = (Handoff__V1__Result)p->result;
    m->reason = str_in(p->reason);
    m->log = (char *)buf_str(&p->log);
    m->start_unix_ns = p->start_unix_ns;
    m->duration_ns = p->duration_ns;
    return m;
}

static Handoff__V1__Attempt *pk_attempt(struct packer *pk,
                                        const struct result_attempt *a)
{
    Handoff__V1__Attempt *m = pk_alloc(pk, sizeof(*m));

    handoff__v1__attempt__init(m);
    m->attempt = a->attempt;
    m->result = (Handoff__V1__Result)a->result;
    m->soft_failure = a->soft_failure;
    m->start_unix_ns = a->start_unix_ns;
    m->duration_ns = a->duration_ns;
    m->reason = str_in(a->reason);
    m->log = (char *)buf_str(&a->log);
    m->log_dropped = a->log_dropped;
    m->n_values = a->n_values;
    m->values = pk_kvs(pk, a->values, a->n_values);
    m->n_spans = a->n_spans;
    m->spans = pk_alloc(pk, (a->n_spans + 1) * sizeof(*m->spans));
    for (size_t i = 0; i < a->n_spans; i++) {
        Handoff__V1__Span *sp = pk_alloc(pk, sizeof(*sp));

        handoff__v1__span__init(sp);
        sp->name = a->spans[i].name;
        sp->start_unix_ns = a->spans[i].start_unix_ns;
        sp->duration_ns = a->spans[i].duration_ns;
        sp->n_attrs = a->spans[i].n_attrs;
        sp->attrs = pk_kvs(pk, a->spans[i].attrs, a->spans[i].n_attrs);
        m->spans[i] = sp;
    }
    return m;
}

void wire_result_encode(const struct result_suite *s,
                        const struct wire_result_meta *meta, struct buf *out)
{
    Handoff__V1__JobResult m = HANDOFF__V1__JOB_RESULT__INIT;
    struct packer pk = {0};
    Handoff__V1__LoadSpec spec;
    Handoff__V1__LoadStage *stages = NULL;
    Handoff__V1__LoadStage **pstages = NULL;

    m.job_id = str_in(meta->job_id);
    m.run_id = meta->run_id;
    m.job_attempt = meta->job_attempt;
    m.worker_id = str_in(meta->worker_id);
    m.suite = str_in(s->name);
    m.namespace_ = str_in(s->ns);
    m.result = (Handoff__V1__Result)s->result;
    m.reason = str_in(s->reason);
    m.cancelled = meta->cancelled;
    m.timed_out = meta->timed_out;
    m.start_unix_ns = s->start_unix_ns;
    m.duration_ns = s->duration_ns;
    m.setup = pk_phase(&pk, &s->setup);
    m.teardown = pk_phase(&pk, &s->teardown);
    m.log = (char *)buf_str(&s->log);
    m.load_setup_data.data = meta->load_setup_data;
    m.load_setup_data.len = meta->load_setup_data ? meta->load_setup_len : 0;
    if (meta->load_spec != NULL) {
        load_to_pb(meta->load_spec, &spec, &stages, &pstages);
        m.load_spec = &spec;
    }
    m.load_total.data = meta->load_total;
    m.load_total.len = meta->load_total ? meta->load_total_len : 0;
    m.load_seconds = meta->load_seconds;
    m.n_tests = s->n_tests;
    m.tests = pk_alloc(&pk, (s->n_tests + 1) * sizeof(*m.tests));
    for (size_t i = 0; i < s->n_tests; i++) {
        const struct result_test *t = &s->tests[i];
        Handoff__V1__TestResult *tm = pk_alloc(&pk, sizeof(*tm));

        handoff__v1__test_result__init(tm);
        tm->name = t->name;
        tm->n_attempts = t->n_attempts;
        tm->attempts =
            pk_alloc(&pk, (t->n_attempts + 1) * sizeof(*tm->attempts));
        for (size_t j = 0; j < t->n_attempts; j++) {
            tm->attempts[j] = pk_attempt(&pk, &t->attempts[j]);
        }
        m.tests[i] = tm;
    }
    pack_into(&m.base, out);
    pk_free(&pk);
    free(stages);
    free(pstages);
}

static void kvs_from(struct result_kv **kvs, size_t *n,
                     Handoff__V1__KeyValue **in, size_t n_in)
{
    for (size_t i = 0; i < n_in; i++) {
        char *k = clean(in[i]->key);
        char *v = clean(in[i]->value);

        result_kv_set(kvs, n, k, v);
        free(k);
        free(v);
    }
}

static void log_from(struct buf *b, const char *s)
{
    buf_reset(b);
    if (s) {
        utf8_append_clean(b, s, strlen(s));
    }
}

static int phase_from(struct result_phase *p, const Handoff__V1__Phase *m)
{
    if (!m) {
        return ST_OK;
    }
    if (!result_ok(m->result)) {
        return ST_PROTOCOL;
    }
    p->ran = m->ran;
    p->result = (enum result_kind)m->result;
    p->reason = *m->reason ? clean(m->reason) : NULL;
    log_from(&p->log, m->log);
    p->start_unix_ns = m->start_unix_ns;
    p->duration_ns = m->duration_ns;
    return ST_OK;
}

static int attempt_from(struct result_attempt *a, const Handoff__V1__Attempt *m)
{
    if (!result_ok(m->result) || m->attempt < 1 ||
        m->n_values > WIRE_MAX_ITEMS || m->n_spans > WIRE_MAX_ITEMS) {
        return ST_PROTOCOL;
    }
    a->attempt = m->attempt;
    a->result = (enum result_kind)m->result;
    a->soft_failure = m->soft_failure;
    a->start_unix_ns = m->start_unix_ns;
    a->duration_ns = m->duration_ns;
    a->reason = *m->reason ? clean(m->reason) : NULL;
    log_from(&a->log, m->log);
    a->log_dropped = m->log_dropped;
    kvs_from(&a->values, &a->n_values, m->values, m->n_values);
    for (size_t i = 0; i < m->n_spans; i++) {
        const Handoff__V1__Span *sm = m->spans[i];
        char *name = clean(sm->name);
        struct result_span *sp =
            result_attempt_add_span(a, name, sm->start_unix_ns);

        free(name);
        sp->duration_ns = sm->duration_ns;
        if (sm->n_attrs > WIRE_MAX_ITEMS) {
            return ST_PROTOCOL;
        }
        kvs_from(&sp->attrs, &sp->n_attrs, sm->attrs, sm->n_attrs);
    }
    return ST_OK;
}

int wire_result_decode(const void *data, size_t len, struct result_suite *s,
                       struct wire_result_meta *meta)
{
    Handoff__V1__JobResult *m =
        handoff__v1__job_result__unpack(NULL, len, data);
    char *name;
    char *ns;
    int rc = ST_PROTOCOL;

    if (!m) {
        return ST_PROTOCOL;
    }
    name = clean(m->suite);
    ns = clean(m->namespace_);
    result_suite_init(s, name, ns);
    free(name);
    free(ns);
    memset(meta, 0, sizeof(*meta));
    if (!*m->job_id || m->run_id <= 0 || m->job_attempt < 1 ||
        !result_ok(m->result) || m->n_tests > WIRE_MAX_ITEMS) {
        goto fail;
    }
    s->result = (enum result_kind)m->result;
    s->reason = *m->reason ? clean(m->reason) : NULL;
    s->start_unix_ns = m->start_unix_ns;
    s->duration_ns = m->duration_ns;
    log_from(&s->log, m->log);
    if (phase_from(&s->setup, m->setup) != ST_OK ||
        phase_from(&s->teardown, m->teardown) != ST_OK) {
        goto fail;
    }
    for (size_t i = 0; i < m->n_tests; i++) {
        const Handoff__V1__TestResult *tm = m->tests[i];
        char *tname = clean(tm->name);
        struct result_test *t = result_suite_add_test(s, tname);

        free(tname);
        if (tm->n_attempts > WIRE_MAX_ITEMS) {
            goto fail;
        }
        for (size_t j = 0; j < tm->n_attempts; j++) {
            struct result_attempt *a = result_test_add_attempt(t, 0);

            if (attempt_from(a, tm->attempts[j]) != ST_OK) {
                goto fail;
            }
        }
    }
    meta->job_id = clean(m->job_id);
    meta->run_id = m->run_id;
    meta->job_attempt = m->job_attempt;
    meta->worker_id = clean(m->worker_id);
    meta->cancelled = m->cancelled;
    meta->timed_out = m->timed_out;
    if (m->load_setup_data.len > WIRE_LOAD_SETUP_MAX || m->load_seconds < 0) {
        wire_result_meta_cleanup(meta);
        goto fail;
    }
    if (m->load_spec != NULL) {
        meta->load_spec = load_from_pb(m->load_spec);
        if (meta->load_spec == NULL) {
            wire_result_meta_cleanup(meta);
            goto fail;
        }
    }
    if (m->load_setup_data.len > 0) {
        meta->load_setup_data =
            bytes_dup(&m->load_setup_data, &meta->load_setup_len);
    }
    if (m->load_total.len > 0) {
        meta->load_total = bytes_dup(&m->load_total, &meta->load_total_len);
    }
    meta->load_seconds = m->load_seconds;
    rc = ST_OK;
    handoff__v1__job_result__free_unpacked(m, NULL);
    return rc;
fail:
    result_suite_cleanup(s);
    handoff__v1__job_result__free_unpacked(m, NULL);
    return rc;
}

void wire_result_meta_cleanup(struct wire_result_meta *m)
{
    free(m->job_id);
    free(m->worker_id);
    free(m->load_setup_data);
    wire_load_free(m->load_spec);
    free(m->load_total);
    memset(m, 0, sizeof(*m));
}

void wire_started_encode(const struct wire_started *s, struct buf *out)
{
    Handoff__V1__JobStarted m = HANDOFF__V1__JOB_STARTED__INIT;

    m.job_id = str_in(s->job_id);
    m.run_id = s->run_id;
    m.job_attempt = s->job_attempt;
    m.worker_id = str_in(s->worker_id);
    m.started_unix_ns = s->started_unix_ns;
    pack_into(&m.base, out);
}

int wire_started_decode(const void *data, size_t len, struct wire_started *out)
{
    Handoff__V1__JobStarted *m =
        handoff__v1__job_started__unpack(NULL, len, data);

    if (!m) {
        return ST_PROTOCOL;
    }
    if (!*m->job_id || m->run_id <= 0 || m->job_attempt < 1) {
        handoff__v1__job_started__free_unpacked(m, NULL);
        return ST_PROTOCOL;
    }
    out->job_id = clean(m->job_id);
    out->run_id = m->run_id;
    out->job_attempt = m->job_attempt;
    out->worker_id = clean(m->worker_id);
    out->started_unix_ns = m->started_unix_ns;
    handoff__v1__job_started__free_unpacked(m, NULL);
    return ST_OK;
}

void wire_started_cleanup(struct wire_started *s)
{
    free(s->job_id);
    free(s->worker_id);
    memset(s, 0, sizeof(*s));
}

/* ---- Live events ------------------------------------------------------ */

void wire_event_encode(const struct report_event *ev, int64_t run_id,
                       const char *job_id, int32_t job_attempt, uint64_t seq,
                       struct buf *out)
{
    Handoff__V1__Event m = HANDOFF__V1__EVENT__INIT;

    m.run_id = run_id;
    m.job_id = str_in(job_id);
    m.seq = seq;
    m.kind = (Handoff__V1__Event__Kind)(ev->kind + 1);
    m.time_unix_ns = ev->time_unix_ns;
    m.suite = str_in(ev->suite);
    m.namespace_ = str_in(ev->ns);
    m.test = str_in(ev->test);
    m.attempt = ev->attempt;
    m.max_attempts = ev->max_attempts;
    m.result = (Handoff__V1__Result)ev->result;
    m.soft_failure = ev->soft_failure;
    m.flaky = ev->flaky;
    m.retry = ev->retry;
    m.elapsed_ns = ev->elapsed_ns;
    m.reason = str_in(ev->reason);
    m.job_attempt = job_attempt;
    if (ev->output) {
        /* The event's output is not NUL-terminated: copy it. */
        m.output = mem_strndup(ev->output, ev->output_len);
    } else {
        m.output = str_in(NULL);
    }
    pack_into(&m.base, out);
    if (ev->output) {
        free(m.output);
    }
}

static int event_of(const Handoff__V1__Event *m, struct wire_event *out)
{
    struct wire_event e;

    if (m->kind < HANDOFF__V1__EVENT__KIND__KIND_SUITE_START ||
        m->kind > HANDOFF__V1__EVENT__KIND__KIND_SUITE_END ||
        !result_ok(m->result) || m->run_id <= 0) {
        return ST_PROTOCOL;
    }
    memset(&e, 0, sizeof(e));
    e.run_id = m->run_id;
    e.job_id = clean(m->job_id);
    e.seq = m->seq;
    e.job_attempt = m->job_attempt;
    e.suite = clean(m->suite);
    e.ns = clean(m->namespace_);
    e.test = *m->test ? clean(m->test) : NULL;
    e.output = clean(m->output);
    e.reason = *m->reason ? clean(m->reason) : NULL;
    e.ev.kind = (enum report_event_kind)(m->kind - 1);
    e.ev.time_unix_ns = m->time_unix_ns;
    e.ev.suite = e.suite;
    e.ev.ns = e.ns;
    e.ev.test = e.test;
    e.ev.attempt = m->attempt;
    e.ev.max_attempts = m->max_attempts;
    e.ev.result = (enum result_kind)m->result;
    e.ev.soft_failure = m->soft_failure;
    e.ev.flaky = m->flaky;
    e.ev.retry = m->retry;
    e.ev.elapsed_ns = m->elapsed_ns;
    e.ev.output = e.ev.kind == REPORT_OUTPUT ? e.output : NULL;
    e.ev.output_len = e.ev.output ? strlen(e.output) : 0;
    e.ev.reason = e.reason;
    *out = e;
    return ST_OK;
}

int wire_event_decode(const void *data, size_t len, struct wire_event *out)
{
    Handoff__V1__Event *m = handoff__v1__event__unpack(NULL, len, data);
    int rc;

    if (!m) {
        return ST_PROTOCOL;
    }
    rc = event_of(m, out);
    handoff__v1__event__free_unpacked(m, NULL);
    return rc;
}

void wire_event_batch_add(struct buf *batch, const void *event, size_t len)
{
    uint8_t head[1 + 10];
    size_t n = 0;
    size_t v = len;

    /* The protobuf encoding of one element of a repeated message field 1:
     * its tag, its length as a varint, its bytes. */
    head[n++] = 0x0A;
    do {
        head[n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    buf_add(batch, head, n);
    buf_add(batch, event, len);
}

int wire_events_decode(const void *data, size_t len, struct wire_event **out,
                       size_t *n)
{
    Handoff__V1__EventBatch *b;
    struct wire_event *ev;
    int rc = ST_OK;

    *out = NULL;
    *n = 0;
    if (len == 0 || ((const uint8_t *)data)[0] != 0x0A) {
        ev = mem_alloc(sizeof(*ev));
        rc = wire_event_decode(data, len, ev);
        if (rc != ST_OK) {
            free(ev);
            return rc;
        }
        *out = ev;
        *n = 1;
        return ST_OK;
    }
    b = handoff__v1__event_batch__unpack(NULL, len, data);
    if (!b || b->n_events == 0) {
        if (b) {
            handoff__v1__event_batch__free_unpacked(b, NULL);
        }
        return ST_PROTOCOL;
    }
    ev = mem_calloc(b->n_events, sizeof(*ev));
    for (size_t i = 0; i < b->n_events && rc == ST_OK; i++) {
        rc = event_of(b->events[i], &ev[i]);
        if (rc != ST_OK) {
            for (size_t k = 0; k < i; k++) {
                wire_event_cleanup(&ev[k]);
            }
        }
    }
    if (rc == ST_OK) {
        *out = ev;
        *n = b->n_events;
    } else {
        free(ev);
    }
    handoff__v1__event_batch__free_unpacked(b, NULL);
    return rc;
}

void wire_event_cleanup(struct wire_event *e)
{
    free(e->job_id);
    free(e->suite);
    free(e->ns);
    free(e->test);
    free(e->output);
    free(e->reason);
    memset(e, 0, sizeof(*e));
}

/* ---- Worker presence -------------------------------------------------- */

void wire_worker_encode(const struct wire_worker *w, struct buf *out)
{
    Handoff__V1__WorkerStatus m = HANDOFF__V1__WORKER_STATUS__INIT;
    struct packer pk = {0};
    Handoff__V1__Label **labels =
        pk_alloc(&pk, (w->n_labels + 1) * sizeof(*labels));

    m.worker_id = str_in(w->worker_id);
    m.host = str_in(w->host);
    m.pool = str_in(w->pool);
    for (size_t i = 0; i < w->n_labels; i++) {
        Handoff__V1__Label *l = pk_alloc(&pk, sizeof(*l));

        handoff__v1__label__init(l);
        l->key = w->labels[i].key;
        l->value = w->labels[i].value;
        labels[i] = l;
    }
    m.n_labels = w->n_labels;
    m.labels = labels;
    m.n_suites = w->n_suites;
    m.suites = pk_alloc(&pk, (w->n_suites + 1) * sizeof(*m.suites));
    for (size_t i = 0; i < w->n_suites; i++) {
        const struct wire_suite_info *si = &w->suites[i];
        Handoff__V1__SuiteInfo *sm = pk_alloc(&pk, sizeof(*sm));

        handoff__v1__suite_info__init(sm);
        sm->name = str_in(si->name);
        sm->namespace_ = str_in(si->ns);
        sm->description = str_in(si->description);
        sm->max_attempts = si->max_attempts;
        sm->test_timeout_ms = si->test_timeout_ms;
        sm->timeout_ms = si->timeout_ms;
        sm->n_workflows = si->n_workflows;
        sm->workflows = si->workflows;
        sm->n_tests = si->n_tests;
        sm->tests = pk_alloc(&pk, (si->n_tests + 1) * sizeof(*sm->tests));
        for (size_t j = 0; j < si->n_tests; j++) {
            Handoff__V1__TestInfo *tm = pk_alloc(&pk, sizeof(*tm));

            handoff__v1__test_info__init(tm);
            tm->name = str_in(si->tests[j].name);
            tm->max_attempts = si->tests[j].max_attempts;
            tm->timeout_ms = si->tests[j].timeout_ms;
            sm->tests[j] = tm;
        }
        m.suites[i] = sm;
    }
    m.slots = w->slots;
    m.free_slots = w->free_slots;
    m.version = str_in(w->version);
    m.started_unix_ms = w->started_unix_ms;
    m.sent_unix_ms = w->sent_unix_ms;
    m.draining = w->draining;
    m.n_running_runs = w->n_running_runs;
    m.running_runs = w->running_runs;
    pack_into(&m.base, out);
    pk_free(&pk);
}

int wire_worker_decode(const void *data, size_t len, struct wire_worker *out)
{
    Handoff__V1__WorkerStatus *m =
        handoff__v1__worker_status__unpack(NULL, len, data);
    struct wire_worker w;

    if (!m) {
        return ST_PROTOCOL;
    }
    if (!*m->worker_id || m->slots < 0 || m->free_slots < 0 ||
        m->n_suites > WIRE_MAX_ITEMS || m->n_labels > WIRE_MAX_ITEMS ||
        m->n_running_runs > WIRE_MAX_ITEMS) {
        handoff__v1__worker_status__free_unpacked(m, NULL);
        return ST_PROTOCOL;
    }
    memset(&w, 0, sizeof(w));
    w.worker_id = clean(m->worker_id);
    w.host = clean(m->host);
    w.pool = clean(m->pool);
    for (size_t i = 0; i < m->n_labels; i++) {
        char *k = clean(m->labels[i]->key);
        char *v = clean(m->labels[i]->value);

        result_kv_set(&w.labels, &w.n_labels, k, v);
        free(k);
        free(v);
    }
    w.suites = mem_calloc(m->n_suites + 1, sizeof(*w.suites));
    w.n_suites = m->n_suites;
    for (size_t i = 0; i < m->n_suites; i++) {
        const Handoff__V1__SuiteInfo *sm = m->suites[i];
        struct wire_suite_info *si = &w.suites[i];

        si->name = clean(sm->name);
        si->ns = clean(sm->namespace_);
        si->description = clean(sm->description);
        si->max_attempts = sm->max_attempts;
        si->test_timeout_ms = sm->test_timeout_ms;
        si->timeout_ms = sm->timeout_ms;
        si->workflows = mem_calloc(sm->n_workflows + 1, sizeof(*si->workflows));
        for (size_t j = 0; j < sm->n_workflows && j < WIRE_MAX_ITEMS; j++) {
            si->workflows[si->n_workflows++] = clean(sm->workflows[j]);
        }
        si->tests = mem_calloc(sm->n_tests + 1, sizeof(*si->tests));
        si->n_tests = sm->n_tests;
        for (size_t j = 0; j < sm->n_tests; j++) {
            si->tests[j].name = clean(sm->tests[j]->name);
            si->tests[j].max_attempts = sm->tests[j]->max_attempts;
            si->tests[j].timeout_ms = sm->tests[j]->timeout_ms;
        }
    }
    w.slots = m->slots;
    w.free_slots = m->free_slots;
    w.version = clean(m->version);
    w.started_unix_ms = m->started_unix_ms;
    w.sent_unix_ms = m->sent_unix_ms;
    w.draining = m->draining;
    w.n_running_runs = m->n_running_runs;
    w.running_runs = mem_calloc(m->n_running_runs + 1, sizeof(*w.running_runs));
    if (m->n_running_runs) {
        memcpy(w.running_runs, m->running_runs,
               m->n_running_runs * sizeof(*w.running_runs));
    }
    handoff__v1__worker_status__free_unpacked(m, NULL);
    *out = w;
    return ST_OK;
}

void wire_worker_cleanup(struct wire_worker *w)
{
    free(w->worker_id);
    free(w->host);
    free(w->pool);
    result_kv_free(w->labels, w->n_labels);
    for (size_t i = 0; i < w->n_suites; i++) {
        struct wire_suite_info *si = &w->suites[i];

        for (size_t j = 0; j < si->n_tests; j++) {
            free(si->tests[j].name);
        }
        free(si->tests);
        for (size_t j = 0; j < si->n_workflows; j++) {
            free(si->workflows[j]);
        }
        free(si->workflows);
        free(si->name);
        free(si->ns);
        free(si->description);
    }
    free(w->suites);
    free(w->version);
    free(w->running_runs);
    memset(w, 0, sizeof(*w));
}
