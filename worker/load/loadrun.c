/* loadrun: a local load run from the workflow to the JSON report, and the
 * hf_* load API the workflow calls (an hf_vu is the engine's VU). */
#include "loadrun.h"

#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "loadjson.h"
#include "log.h"
#include "mem.h"
#include "threshold.h"

/* What every VU of a run shares: cfg->data. */
struct lr_ctx {
    const struct hf_suite *suite;
    const struct hf_workflow *wf;
    const struct loadrun_opts *opts;
    struct result_kv *env; /* .env over env.default */
    size_t n_env;
    void *setup_data;
    size_t setup_len;
    bool in_setup; /* the setup or teardown VU */
    void *shared;
    struct threshold *th[LOADRUN_MAX_THRESHOLDS];
    size_t n_th;
    int64_t start_mono_ns;
    FILE *live;
};

/* Per VU, beside the workflow's state. */
struct lr_vu {
    hf_http_response resp;
};

static struct engine_vu *ev(hf_vu *vu)
{
    return (struct engine_vu *)vu;
}

static const struct engine_vu *cev(const hf_vu *vu)
{
    return (const struct engine_vu *)vu;
}

static struct lr_ctx *ctx_of(const hf_vu *vu)
{
    return engine_vu_data(cev(vu));
}

/* ---- The hf_* load API ------------------------------------------------ */

static const hf_http_response *fill(hf_vu *vu, const struct httpc_response *r)
{
    struct lr_vu *l = engine_vu_api(ev(vu));

    l->resp.status = r->status;
    l->resp.error =
        r->error == HTTPC_ERR_NONE ? NULL : httpc_error_str(r->error);
    l->resp.error_text = r->error_text;
    l->resp.body = r->body;
    l->resp.body_len = r->body_len;
    l->resp.duration_ms = (double)r->timings_ns[HTTPC_T_DURATION] / 1e6;
    l->resp.internal_ = r;
    return &l->resp;
}

const hf_http_response *hf_http_request(hf_vu *vu,
                                        const struct hf_http_request *in)
{
    struct httpc_request req;

    memset(&req, 0, sizeof(req));
    req.method = in->method;
    req.url = in->url;
    req.name = in->name;
    /* The two header structs have the same members in the same order. */
    req.headers = (const struct httpc_header *)in->headers;
    req.n_headers = in->n_headers;
    req.body = in->body;
    req.body_len = in->body_len;
    req.timeout_ns = in->timeout_ms > 0 ? in->timeout_ms * CLOCK_NS_PER_MS : 0;
    req.discard_body = in->discard_body;
    return fill(vu, httpc_request(engine_vu_http(ev(vu)), &req));
}

const hf_http_response *hf_http_get(hf_vu *vu, const char *url)
{
    return fill(vu, httpc_get(engine_vu_http(ev(vu)), url));
}

const hf_http_response *hf_http_post(hf_vu *vu, const char *url,
                                     const char *content_type, const void *body,
                                     size_t len)
{
    struct hf_http_header h = {"Content-Type", content_type};
    struct hf_http_request req = {.method = "POST",
                                  .url = url,
                                  .headers = content_type ? &h : NULL,
                                  .n_headers = content_type ? 1 : 0,
                                  .body = body,
                                  .body_len = len};

    return hf_http_request(vu, &req);
}

const char *hf_http_header(const hf_http_response *r, const char *name)
{
    return r->internal_ ? httpc_response_header(r->internal_, name) : NULL;
}

void hf_step(hf_vu *vu, const char *name)
{
    engine_vu_step(ev(vu), name);
}

bool hf_check(hf_vu *vu, const char *name, bool ok)
{
    engine_vu_check(ev(vu), name, ok);
    return ok;
}

void hf_sleep(hf_vu *vu, int64_t ms)
{
    engine_sleep(ev(vu), ms * CLOCK_NS_PER_MS);
}

int hf_vu_id(const hf_vu *vu)
{
    return ctx_of(vu)->in_setup ? 0 : engine_vu_id(cev(vu));
}

uint64_t hf_vu_iteration(const hf_vu *vu)
{
    return engine_vu_iteration(cev(vu));
}

void *hf_vu_state(const hf_vu *vu)
{
    return engine_vu_state(cev(vu));
}

void hf_vu_set_state(hf_vu *vu, void *state)
{
    engine_vu_set_state(ev(vu), state);
}

const char *hf_vu_param(const hf_vu *vu, const char *key)
{
    const struct lr_ctx *c = ctx_of(vu);
    const char *v = result_kv_get(c->opts->params, c->opts->n_params, key);

    if (v == NULL) {
        v = getenv(key);
    }
    if (v == NULL) {
        v = result_kv_get(c->env, c->n_env, key);
    }
    return v;
}

const void *hf_vu_setup_data(const hf_vu *vu, size_t *len)
{
    const struct lr_ctx *c = ctx_of(vu);

    if (len != NULL) {
        *len = c->setup_len;
    }
    return c->setup_data;
}

void hf_setup_data_set(hf_vu *vu, const void *data, size_t len)
{
    struct lr_ctx *c = ctx_of(vu);

    if (!c->in_setup) {
        log_warn("load: hf_setup_data_set outside setup is ignored");
        return;
    }
    free(c->setup_data);
    c->setup_data = mem_alloc(len + 1);
    memcpy(c->setup_data, data, len);
    ((char *)c->setup_data)[len] = '\0';
    c->setup_len = len;
}

void *hf_vu_shared(const hf_vu *vu)
{
    return ctx_of(vu)->shared;
}

bool hf_vu_stopping(const hf_vu *vu)
{
    return engine_vu_interrupted(cev(vu));
}

/* ---- Env files -------------------------------------------------------- */

int loadrun_read_env(const char *path, struct result_kv **kvs, size_t *n,
                     char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    int lineno = 0;

    if (f == NULL) {
        if (errno == ENOENT) {
            return ST_NOT_FOUND;
        }
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ST_INVALID;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line;
        char *eq;
        char *v;
        size_t len = strlen(line);

        lineno++;
        if (len > 0 && line[len - 1] != '\n' && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line longer than %zu bytes", path,
                     lineno, sizeof(line) - 1);
            fclose(f);
            return ST_INVALID;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0' || *p == '#') {
            continue;
        }
        if (strncmp(p, "export ", 7) == 0) {
            p += 7;
            while (isspace((unsigned char)*p)) {
                p++;
            }
        }
        eq = strchr(p, '=');
        if (eq == NULL || eq == p) {
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
            fclose(f);
            return ST_INVALID;
        }
        for (char *k = p; k < eq; k++) {
            if (isspace((unsigned char)*k)) {
                char *q = k;

                while (q < eq && isspace((unsigned char)*q)) {
                    q++;
                }
                if (q != eq) {
                    snprintf(err, errlen, "%s:%d: a space in the key", path,
                             lineno);
                    fclose(f);
                    return ST_INVALID;
                }
                *k = '\0';
                break;
            }
            if (!isalnum((unsigned char)*k) && *k != '_' && *k != '.') {
                snprintf(err, errlen,
                         "%s:%d: key characters are letters, digits, _ "
                         "and .",
                         path, lineno);
                fclose(f);
                return ST_INVALID;
            }
        }
        *eq = '\0';
        v = eq + 1;
        while (isspace((unsigned char)*v)) {
            v++;
        }
        len = strlen(v);
        if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
            v[len - 1] = '\0';
            v++;
        } else if (v[0] == '"' || v[0] == '\'') {
            snprintf(err, errlen, "%s:%d: unterminated quote", path, lineno);
            fclose(f);
            return ST_INVALID;
        } else {
            /* An unquoted value ends at a " #" comment. */
            char *hash = strstr(v, " #");

            if (hash != NULL) {
                *hash = '\0';
            }
            len = strlen(v);
            while (len > 0 && isspace((unsigned char)v[len - 1])) {
                v[--len] = '\0';
            }
        }
        result_kv_set(kvs, n, p, v);
    }
    fclose(f);
    return ST_OK;
}

/* .env over env.default, from dir. */
static int read_service_dir(struct lr_ctx *c, const char *dir, char *err,
                            size_t errlen)
{
    static const char *const files[] = {"env.default", ".env"};

    for (size_t i = 0; i < 2; i++) {
        char *path = mem_printf("%s/%s", dir, files[i]);
        int rc = loadrun_read_env(path, &c->env, &c->n_env, err, errlen);

        free(path);
        if (rc != ST_OK && rc != ST_NOT_FOUND) {
            return rc;
        }
    }
    return ST_OK;
}

/* ---- Thresholds ------------------------------------------------------- */

static int add_thresholds(struct lr_ctx *c, const char *const *list, char *err,
                          size_t errlen)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        if (c->n_th == LOADRUN_MAX_THRESHOLDS) {
            snprintf(err, errlen, "more than %d thresholds",
                     LOADRUN_MAX_THRESHOLDS);
            return ST_INVALID;
        }
        if (threshold_parse(list[i], &c->th[c->n_th], err, errlen) != 0) {
            return ST_INVALID;
        }
        c->n_th++;
    }
    return ST_OK;
}

static int parse_all(struct lr_ctx *c, const struct hf_workflow *wf,
                     const struct loadrun_opts *opts, char *err, size_t errlen)
{
    int rc = ST_OK;

    if (!opts->no_thresholds) {
        rc = add_thresholds(c, wf->thresholds, err, errlen);
    }
    if (rc == ST_OK) {
        rc = add_thresholds(c, opts->thresholds, err, errlen);
    }
    return rc;
}

static void free_thresholds(struct lr_ctx *c)
{
    for (size_t i = 0; i < c->n_th; i++) {
        threshold_free(c->th[i]);
    }
    c->n_th = 0;
}

int loadrun_check_thresholds(const struct hf_workflow *wf,
                             const struct loadrun_opts *opts, char *err,
                             size_t errlen)
{
    struct lr_ctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = parse_all(&c, wf, opts, err, errlen);
    free_thresholds(&c);
    return rc;
}

/* ---- The run ---------------------------------------------------------- */

static void vu_init(struct engine_vu *vu)
{
    const struct lr_ctx *c = engine_vu_data(vu);

    engine_vu_set_api(vu, engine_vu_alloc(vu, sizeof(struct lr_vu)));
    if (c->wf->init != NULL && !c->in_setup) {
        c->wf->init((hf_vu *)vu);
    }
}

static void vu_fini(struct engine_vu *vu)
{
    const struct lr_ctx *c = engine_vu_data(vu);

    if (c->wf->fini != NULL && !c->in_setup) {
        c->wf->fini((hf_vu *)vu);
    }
    engine_vu_release(vu, engine_vu_api(vu), sizeof(struct lr_vu));
    engine_vu_set_api(vu, NULL);
}

static void vu_workflow(struct engine_vu *vu)
{
    const struct lr_ctx *c = engine_vu_data(vu);

    c->wf->fn((hf_vu *)vu);
}

static void vu_setup(struct engine_vu *vu)
{
    const struct lr_ctx *c = engine_vu_data(vu);

    c->wf->setup((hf_vu *)vu);
}

static void vu_teardown(struct engine_vu *vu)
{
    const struct lr_ctx *c = engine_vu_data(vu);

    c->wf->teardown((hf_vu *)vu);
}

/* Runs setup or teardown on one VU of its own; its requests are not part
 * of the run's metrics (k6 keeps them apart too). */
static int run_phase(struct lr_ctx *c, void (*fn)(struct engine_vu *),
                     const struct engine_config *base)
{
    struct engine_config cfg;
    struct engine_result res;
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    cfg.executor = ENGINE_PER_VU_ITERATIONS;
    cfg.workflow = fn;
    cfg.init = vu_init;
    cfg.fini = vu_fini;
    cfg.data = c;
    cfg.vus = 1;
    cfg.iterations = 1;
    cfg.duration_ns = INT64_C(600) * CLOCK_NS_PER_S;
    cfg.threads = 1;
    cfg.stack_bytes = base->stack_bytes;
    cfg.http = base->http;
    c->in_setup = true;
    rc = engine_run(&cfg, &res);
    c->in_setup = false;
    if (rc == 0) {
        engine_result_cleanup(&res);
    }
    return rc;
}

static void live_line(struct lr_ctx *c, const struct engine_point *pt)
{
    double rps = (double)pt->requests;
    double err_pct =
        pt->requests ? 100.0 * (double)pt->failed / (double)pt->requests : 0;

    fprintf(c->live,
            "%6.0fs  vus %-6d  rps %-9.0f p50 %8.2fms  p95 %8.2fms  p99 "
            "%8.2fms  errors %" PRIu64 " (%.2f%%)  dropped %" PRIu64 "\n",
            (double)pt->t_ns / 1e9, pt->vus, rps, (double)pt->p50_ns / 1e6,
            (double)pt->p95_ns / 1e6, (double)pt->p99_ns / 1e6, pt->failed,
            err_pct, pt->dropped);
    fflush(c->live);
}

static bool on_second(void *arg, const struct engine_point *pt,
                      const struct snap *second, const struct snap *total,
                      char *reason, size_t reason_len)
{
    struct lr_ctx *c = arg;

    if (c->live != NULL) {
        live_line(c, pt);
    }
    if (c->opts->on_second != NULL &&
        c->opts->on_second(c->opts->on_second_arg, pt, second, total, reason,
                           reason_len)) {
        return true;
    }
    for (size_t i = 0; i < c->n_th; i++) {
        struct threshold_eval e;

        if (!threshold_abort_on_fail(c->th[i]) ||
            pt->t_ns < threshold_abort_delay_ns(c->th[i])) {
            continue;
        }
        e = threshold_evaluate(c->th[i], total, pt->t_ns);
        if (!e.passed) {
            snprintf(reason, reason_len,
                     "threshold \"%s\" failed (observed %g) with "
                     "abort_on_fail",
                     threshold_source(c->th[i]), e.observed);
            return true;
        }
    }
    return false;
}

/* ---- The JSON report -------------------------------------------------- */

static json_t *ms(int64_t ns)
{
    return json_real((double)ns / 1e6);
}

static json_t *executor_json(const struct engine_config *e)
{
    json_t *o = json_object();
    json_t *stages = json_array();

    json_object_set_new(o, "type",
                        json_string(engine_executor_str(e->executor)));
    json_object_set_new(o, "vus", json_integer(e->vus));
    json_object_set_new(o, "max_vus", json_integer(e->max_vus));
    json_object_set_new(o, "pre_allocated_vus",
                        json_integer(e->pre_allocated_vus));
    json_object_set_new(o, "rate", json_real(e->rate));
    json_object_set_new(o, "time_unit_ms",
                        ms(e->time_unit_ns ? e->time_unit_ns : CLOCK_NS_PER_S));
    json_object_set_new(o, "iterations",
                        json_integer((json_int_t)e->iterations));
    json_object_set_new(o, "duration_ms", ms(e->duration_ns));
    json_object_set_new(o, "graceful_stop_ms", ms(e->graceful_stop_ns));
    if (e->executor == ENGINE_RAMPING_VUS) {
        json_object_set_new(o, "graceful_ramp_down_ms",
                            ms(e->graceful_ramp_down_ns));
    }
    for (size_t i = 0; i < e->n_stages; i++) {
        json_t *s = json_object();

        json_object_set_new(s, "duration_ms", ms(e->stages[i].duration_ns));
        json_object_set_new(s, "target", json_real(e->stages[i].target));
        json_array_append_new(stages, s);
    }
    json_object_set_new(o, "stages", stages);
    return o;
}

static json_t *build_report(struct lr_ctx *c, const struct engine_config *e,
                            const struct engine_result *res, const char *id,
                            const char *result, const char *reason)
{
    json_t *r = json_object();
    json_t *ths = json_array();
    json_t *series = json_array();
    const struct snap *s = res->total;

    json_object_set_new(r, "schema", json_string("handoff.load.report/1"));
    json_object_set_new(r, "id", json_string(id));
    json_object_set_new(r, "suite", json_string(c->suite->name));
    json_object_set_new(r, "workflow", json_string(c->wf->name));
    json_object_set_new(r, "started_at", loadjson_time(res->started_unix_ns));
    json_object_set_new(r, "ended_at",
                        loadjson_time(res->started_unix_ns + res->elapsed_ns));
    json_object_set_new(r, "duration_ms", ms(res->elapsed_ns));
    json_object_set_new(r, "result", json_string(result));
    json_object_set_new(r, "abort_reason", json_string(reason));
    json_object_set_new(r, "executor", executor_json(e));
    json_object_set_new(r, "shards", json_integer(1));
    /* The sections a distributed run's report shares: loadjson.c. */
    loadjson_body(r, s, res->elapsed_ns, res->vus_max);
    for (size_t i = 0; i < c->n_th; i++) {
        bool passed;

        json_array_append_new(
            ths, loadjson_threshold(c->th[i], s, res->elapsed_ns, &passed));
    }
    json_object_set_new(r, "thresholds", ths);
    for (size_t i = 0; i < res->n_points; i++) {
        const struct engine_point *pt = &res->points[i];
        json_t *o = json_object();

        json_object_set_new(o, "t", json_real((double)pt->t_ns / 1e9));
        json_object_set_new(o, "vus", json_integer(pt->vus));
        json_object_set_new(o, "iterations",
                            json_integer((json_int_t)pt->iterations));
        json_object_set_new(o, "dropped",
                            json_integer((json_int_t)pt->dropped));
        json_object_set_new(o, "requests",
                            json_integer((json_int_t)pt->requests));
        json_object_set_new(o, "failed", json_integer((json_int_t)pt->failed));
        json_object_set_new(
            o, "rps",
            json_real(
                i == 0 ? (double)pt->requests * 1e9 /
                             (double)(pt->t_ns > 0 ? pt->t_ns : 1)
                       : (double)pt->requests * 1e9 /
                             (double)(pt->t_ns - res->points[i - 1].t_ns > 0
                                          ? pt->t_ns - res->points[i - 1].t_ns
                                          : 1)));
        json_object_set_new(o, "checks_passed",
                            json_integer((json_int_t)pt->checks_passed));
        json_object_set_new(o, "checks_failed",
                            json_integer((json_int_t)pt->checks_failed));
        json_object_set_new(o, "p50", ms(pt->p50_ns));
        json_object_set_new(o, "p95", ms(pt->p95_ns));
        json_object_set_new(o, "p99", ms(pt->p99_ns));
        json_object_set_new(o, "max", ms(pt->max_ns));
        json_array_append_new(series, o);
    }
    json_object_set_new(r, "series", series);
    return r;
}

static void make_id(char *out, size_t len)
{
    FILE *f = fopen("/dev/urandom", "rb");
    unsigned char b[16] = {0};

    if (f != NULL) {
        if (fread(b, 1, sizeof(b), f) != sizeof(b)) {
            memset(b, 0, sizeof(b));
        }
        fclose(f);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, len,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
             "%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

int loadrun_run(const struct hf_suite *suite, const struct hf_workflow *wf,
                const struct loadrun_opts *opts,
                volatile sig_atomic_t *stop_flag, json_t **report, char *err,
                size_t errlen)
{
    struct lr_ctx c;
    struct engine_config cfg = opts->engine;
    struct engine_result res;
    const char *dir = opts->service_dir ? opts->service_dir : wf->service_dir;
    char id[40];
    const char *result = "passed";
    int rc;

    memset(&c, 0, sizeof(c));
    c.suite = suite;
    c.wf = wf;
    c.opts = opts;
    c.live = opts->live;
    rc = parse_all(&c, wf, opts, err, errlen);
    if (rc == ST_OK && dir != NULL) {
        rc = read_service_dir(&c, dir, err, errlen);
    }
    if (rc != ST_OK) {
        goto done;
    }
    if (opts->given_setup_data) {
        c.setup_data = mem_alloc(opts->setup_len + 1);
        if (opts->setup_len > 0) {
            memcpy(c.setup_data, opts->setup_data, opts->setup_len);
        }
        ((char *)c.setup_data)[opts->setup_len] = '\0';
        c.setup_len = opts->setup_len;
    } else if (wf->setup != NULL) {
        rc = run_phase(&c, vu_setup, &cfg);
        if (rc != ST_OK) {
            snprintf(err, errlen, "setup could not run: %s", status_str(rc));
            goto done;
        }
    }
    if (wf->shared != NULL) {
        c.shared = wf->shared(c.setup_data, c.setup_len);
    }
    cfg.workflow = vu_workflow;
    cfg.init = vu_init;
    cfg.fini = vu_fini;
    cfg.data = &c;
    cfg.on_second = on_second;
    cfg.on_second_arg = &c;
    cfg.stop_flag = stop_flag;
    rc = engine_run(&cfg, &res);
    if (rc != ST_OK) {
        snprintf(err, errlen, "the run could not start: %s",
                 rc == ST_INVALID ? "invalid executor options"
                                  : status_str(rc));
        goto done;
    }
    if (wf->teardown != NULL && !opts->no_teardown &&
        run_phase(&c, vu_teardown, &cfg) != ST_OK) {
        log_warn("load: teardown could not run");
    }
    if (res.aborted) {
        result = "aborted";
    } else {
        for (size_t i = 0; i < c.n_th; i++) {
            if (!threshold_evaluate(c.th[i], res.total, res.elapsed_ns)
                     .passed) {
                result = "failed";
            }
        }
    }
    if (opts->id != NULL) {
        snprintf(id, sizeof(id), "%s", opts->id);
    } else {
        make_id(id, sizeof(id));
    }
    *report = build_report(&c, &cfg, &res, id, result, res.abort_reason);
    engine_result_cleanup(&res);
done:
    if (c.shared != NULL && wf->free_shared != NULL) {
        wf->free_shared(c.shared);
    }
    free(c.setup_data);
    free_thresholds(&c);
    result_kv_free(c.env, c.n_env);
    return rc;
}

/* ---- Setup and teardown alone (distributed runs) ---------------------- */

/* A context for one phase: params and the service directory, no
 * thresholds. */
static int phase_ctx(struct lr_ctx *c, const struct hf_suite *suite,
                     const struct hf_workflow *wf,
                     const struct loadrun_opts *opts, char *err, size_t errlen)
{
    const char *dir = opts->service_dir ? opts->service_dir : wf->service_dir;

    memset(c, 0, sizeof(*c));
    c->suite = suite;
    c->wf = wf;
    c->opts = opts;
    return dir != NULL ? read_service_dir(c, dir, err, errlen) : ST_OK;
}

int loadrun_setup(const struct hf_suite *suite, const struct hf_workflow *wf,
                  const struct loadrun_opts *opts, void **data, size_t *len,
                  char *err, size_t errlen)
{
    struct lr_ctx c;
    int rc = phase_ctx(&c, suite, wf, opts, err, errlen);

    if (rc == ST_OK && wf->setup != NULL) {
        rc = run_phase(&c, vu_setup, &opts->engine);
        if (rc != ST_OK) {
            snprintf(err, errlen, "setup could not run: %s", status_str(rc));
        }
    }
    if (rc == ST_OK) {
        *data = c.setup_data;
        *len = c.setup_len;
        c.setup_data = NULL;
    }
    free(c.setup_data);
    result_kv_free(c.env, c.n_env);
    return rc;
}

int loadrun_teardown(const struct hf_suite *suite, const struct hf_workflow *wf,
                     const struct loadrun_opts *opts, const void *data,
                     size_t len, char *err, size_t errlen)
{
    struct lr_ctx c;
    int rc = phase_ctx(&c, suite, wf, opts, err, errlen);

    if (rc == ST_OK && wf->teardown != NULL) {
        c.setup_data = mem_alloc(len + 1);
        if (len > 0) {
            memcpy(c.setup_data, data, len);
        }
        ((char *)c.setup_data)[len] = '\0';
        c.setup_len = len;
        rc = run_phase(&c, vu_teardown, &opts->engine);
        if (rc != ST_OK) {
            snprintf(err, errlen, "teardown could not run: %s", status_str(rc));
        }
    }
    free(c.setup_data);
    result_kv_free(c.env, c.n_env);
    return rc;
}
