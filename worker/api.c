/* The hf_* functions test code calls: logging, outcomes, cleanups,
 * deadlines, values, spans, environment, temporary directories and the
 * assertion helpers behind HF_CHECK_* / HF_REQUIRE_*. They run inside a
 * child runner only (child.c sets up the hf_t they get). */
#include "child_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "fsutil.h"
#include "mem.h"

/* Longest operand text shown in a failed check. */
#define API_MAX_SHOWN 512

static const char *base_name(const char *file)
{
    const char *slash = strrchr(file, '/');

    return slash ? slash + 1 : file;
}

static void vlog_at(hf_t *t, const char *file, int line, const char *fmt,
                    va_list ap) __attribute__((format(printf, 4, 0)));

static void vlog_at(hf_t *t, const char *file, int line, const char *fmt,
                    va_list ap)
{
    struct buf b;

    buf_init(&b, 0);
    buf_addf(&b, "%s:%d: ", base_name(file), line);
    {
        char *msg = mem_vprintf(fmt, ap);

        buf_adds(&b, msg);
        free(msg);
    }
    child_send_log(t->child, buf_str(&b));
    buf_cleanup(&b);
}

static void mark_failed(hf_t *t)
{
    pthread_mutex_lock(&t->child->lock);
    t->failed = true;
    pthread_mutex_unlock(&t->child->lock);
}

void hf_log_at(hf_t *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog_at(t, file, line, fmt, ap);
    va_end(ap);
}

void hf_error_at(hf_t *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog_at(t, file, line, fmt, ap);
    va_end(ap);
    mark_failed(t);
}

void hf_fatal_at(hf_t *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog_at(t, file, line, fmt, ap);
    va_end(ap);
    mark_failed(t);
    child_stop(t);
}

void hf_fail(hf_t *t)
{
    mark_failed(t);
}

void hf_fail_now(hf_t *t)
{
    mark_failed(t);
    child_stop(t);
}

void hf_skip_at(hf_t *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog_at(t, file, line, fmt, ap);
    va_end(ap);
    hf_skip_now(t);
}

void hf_skip_now(hf_t *t)
{
    pthread_mutex_lock(&t->child->lock);
    t->skipped = true;
    pthread_mutex_unlock(&t->child->lock);
    child_stop(t);
}

bool hf_failed(const hf_t *t)
{
    bool failed;

    pthread_mutex_lock(&t->child->lock);
    failed = t->failed;
    pthread_mutex_unlock(&t->child->lock);
    return failed;
}

bool hf_skipped(const hf_t *t)
{
    return t->skipped && !hf_failed(t);
}

void hf_soft_failure(hf_t *t)
{
    if (!t->soft) {
        t->soft = true;
        child_send_simple(t->child, IPC_SOFT);
    }
}

const char *hf_name(const hf_t *t)
{
    return t->name;
}

int hf_attempt(const hf_t *t)
{
    return t->attempt;
}

const char *hf_suite_name(const hf_t *t)
{
    return t->child->suite->name;
}

const char *hf_param(const hf_t *t, const char *key)
{
    const struct plan *p = &t->child->plan;

    return result_kv_get(p->params, p->n_params, key);
}

void hf_cleanup(hf_t *t, void (*fn)(hf_t *t, void *arg), const void *arg)
{
    t->cleanups =
        mem_reallocarray(t->cleanups, t->n_cleanups + 1, sizeof(*t->cleanups));
    t->cleanups[t->n_cleanups].fn = fn;
    t->cleanups[t->n_cleanups].arg = (void *)arg;
    t->n_cleanups++;
}

static void free_cleanup(hf_t *t, void *ptr)
{
    (void)t;
    free(ptr);
}

void hf_cleanup_free(hf_t *t, void *ptr)
{
    hf_cleanup(t, free_cleanup, ptr);
}

int64_t hf_deadline_ms(const hf_t *t)
{
    int64_t left = t->deadline_mono_ns - clock_mono_ns();

    return (clock_real_ns() + left) / CLOCK_NS_PER_MS;
}

int64_t hf_remaining_ms(const hf_t *t)
{
    int64_t left = t->deadline_mono_ns - clock_mono_ns();

    return left > 0 ? left / CLOCK_NS_PER_MS : 0;
}

int hf_cancel_fd(const hf_t *t)
{
    return t->child->ctl;
}

bool hf_cancelled(const hf_t *t)
{
    if (clock_mono_ns() >= t->deadline_mono_ns) {
        return true;
    }
    child_poll(t->child);
    return t->child->cancelled;
}

void hf_set_timeout_ms(hf_t *t, int64_t ms)
{
    if (ms <= 0) {
        hf_log_at(t, __FILE__, __LINE__,
                  "hf_set_timeout_ms(%" PRId64 ") ignored: must be > 0", ms);
        return;
    }
    t->deadline_mono_ns = clock_mono_ns() + ms * CLOCK_NS_PER_MS;
    child_send_deadline(t->child, t->deadline_mono_ns);
}

void hf_set_value(hf_t *t, const char *key, const char *value)
{
    if (!key || !*key) {
        return;
    }
    result_kv_set(&t->values, &t->n_values, key, value ? value : "");
    child_send_value(t->child, key, value ? value : "");
}

void hf_set_valuef(hf_t *t, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *value;

    va_start(ap, fmt);
    value = mem_vprintf(fmt, ap);
    va_end(ap);
    hf_set_value(t, key, value);
    free(value);
}

const char *hf_value(const hf_t *t, const char *key)
{
    return result_kv_get(t->values, t->n_values, key);
}

hf_span *hf_span_start(hf_t *t, const char *name)
{
    hf_span *s = mem_zalloc(sizeof(*s));

    s->t = t;
    s->name = mem_strdup(name ? name : "span");
    s->start_unix_ns = clock_real_ns();
    s->start_mono_ns = clock_mono_ns();
    t->spans = mem_reallocarray(t->spans, t->n_spans + 1, sizeof(*t->spans));
    t->spans[t->n_spans++] = s;
    return s;
}

void hf_span_set(hf_span *span, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *value;

    if (!span || !key || !*key) {
        return;
    }
    va_start(ap, fmt);
    value = mem_vprintf(fmt, ap);
    va_end(ap);
    result_kv_set(&span->attrs, &span->n_attrs, key, value);
    free(value);
}

void hf_span_end(hf_span *span)
{
    hf_t *t;

    if (!span) {
        return;
    }
    t = span->t;
    child_send_span(t->child, span, clock_mono_ns() - span->start_mono_ns);
    for (size_t i = 0; i < t->n_spans; i++) {
        if (t->spans[i] == span) {
            t->spans[i] = t->spans[--t->n_spans];
            break;
        }
    }
    free(span->name);
    result_kv_free(span->attrs, span->n_attrs);
    free(span);
}

int hf_setenv(hf_t *t, const char *name, const char *value)
{
    const char *old;
    struct child_env *e;

    if (!name || !*name || strchr(name, '=')) {
        return -1;
    }
    old = getenv(name);
    t->envs = mem_reallocarray(t->envs, t->n_envs + 1, sizeof(*t->envs));
    e = &t->envs[t->n_envs++];
    e->name = mem_strdup(name);
    e->old = old ? mem_strdup(old) : NULL;
    if (value) {
        setenv(name, value, 1);
    } else {
        unsetenv(name);
    }
    return 0;
}

const char *hf_tempdir(hf_t *t)
{
    struct child *c = t->child;
    char *path = mem_printf("%s/%s.%" PRIu64, c->plan.tempdir_root, t->name,
                            ++c->tempdir_seq);

    /* The run's directory is made by its first hf_tempdir (runner.c);
     * it exists already after a crashed child was replaced. */
    if ((mkdir(c->plan.tempdir_root, 0700) != 0 && errno != EEXIST) ||
        mkdir(path, 0700) != 0) {
        int err = errno;

        free(path);
        hf_fatal_at(t, __FILE__, __LINE__, "hf_tempdir: mkdir: %s",
                    strerror(err));
    }
    t->tempdirs =
        mem_reallocarray(t->tempdirs, t->n_tempdirs + 1, sizeof(*t->tempdirs));
    t->tempdirs[t->n_tempdirs++] = path;
    return path;
}

/* ---- Assertions ------------------------------------------------------- */

static void check_failed(hf_t *t, struct hf_site site, const char *text)
{
    struct buf b;

    buf_init(&b, 0);
    buf_addf(&b, "%s:%d: %s failed: %s", base_name(site.file), site.line,
             site.mode == HF_MODE_REQUIRE ? "require" : "check", text);
    child_send_log(t->child, buf_str(&b));
    buf_cleanup(&b);
    mark_failed(t);
    if (site.mode == HF_MODE_REQUIRE) {
        child_stop(t);
    }
}

/* Appends "\n<expr> = <value>" unless the expression is the value itself
 * (a literal), which would only repeat it. */
static void add_operand(struct buf *b, const char *expr, const char *value)
{
    if (strcmp(expr, value) == 0) {
        return;
    }
    buf_addf(b, "\n%s = %s", expr, value);
}

static int op_index(const char *op)
{
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};

    for (int i = 0; i < 6; i++) {
        if (strcmp(op, ops[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static bool compare(int op, int cmp)
{
    switch (op) {
    case 0:
        return cmp == 0;
    case 1:
        return cmp != 0;
    case 2:
        return cmp < 0;
    case 3:
        return cmp <= 0;
    case 4:
        return cmp > 0;
    default:
        return cmp >= 0;
    }
}

static bool bad_operator(hf_t *t, struct hf_site site, const char *op)
{
    char *text =
        mem_printf("unknown operator \"%s\" (use == != < <= > >=)", op);

    site.mode = HF_MODE_REQUIRE;
    check_failed(t, site, text);
    free(text);
    return false;
}

bool hf_check_bool(hf_t *t, struct hf_site site, const char *expr, bool ok)
{
    if (!ok) {
        check_failed(t, site, expr);
    }
    return ok;
}

static bool finish_compare(hf_t *t, struct hf_site site, bool ok,
                           const char *a_expr, const char *op,
                           const char *b_expr, const char *a_text,
                           const char *b_text)
{
    struct buf b;

    if (ok) {
        return true;
    }
    buf_init(&b, 0);
    buf_addf(&b, "%s %s %s", a_expr, op, b_expr);
    add_operand(&b, a_expr, a_text);
    add_operand(&b, b_expr, b_text);
    check_failed(t, site, buf_str(&b));
    buf_cleanup(&b);
    return false;
}

bool hf_check_int(hf_t *t, struct hf_site site, const char *a_expr,
                  const char *op, const char *b_expr, intmax_t a, intmax_t b)
{
    int o = op_index(op);
    char at[32];
    char bt[32];

    if (o < 0) {
        return bad_operator(t, site, op);
    }
    snprintf(at, sizeof(at), "%jd", a);
    snprintf(bt, sizeof(bt), "%jd", b);
    return finish_compare(t, site, compare(o, (a > b) - (a < b)), a_expr, op,
                          b_expr, at, bt);
}

bool hf_check_uint(hf_t *t, struct hf_site site, const char *a_expr,
                   const char *op, const char *b_expr, uintmax_t a, uintmax_t b)
{
    int o = op_index(op);
    char at[32];
    char bt[32];

    if (o < 0) {
        return bad_operator(t, site, op);
    }
    snprintf(at, sizeof(at), "%ju", a);
    snprintf(bt, sizeof(bt), "%ju", b);
    return finish_compare(t, site, compare(o, (a > b) - (a < b)), a_expr, op,
                          b_expr, at, bt);
}

/* A C string literal for s: quoted, escaped, cut at API_MAX_SHOWN bytes. */
static char *quote(const char *s)
{
    struct buf b;
    size_t n;

    if (!s) {
        return mem_strdup("NULL");
    }
    n = strlen(s);
    buf_init(&b, 0);
    buf_addc(&b, '"');
    for (size_t i = 0; i < n && i < API_MAX_SHOWN; i++) {
        unsigned char c = (unsigned char)s[i];

        switch (c) {
        case '"':
            buf_adds(&b, "\\\"");
            break;
        case '\\':
            buf_adds(&b, "\\\\");
            break;
        case '\n':
            buf_adds(&b, "\\n");
            break;
        case '\r':
            buf_adds(&b, "\\r");
            break;
        case '\t':
            buf_adds(&b, "\\t");
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                buf_addf(&b, "\\x%02x", c);
            } else {
                buf_addc(&b, (char)c);
            }
        }
    }
    buf_addc(&b, '"');
    if (n > API_MAX_SHOWN) {
        buf_addf(&b, "... (%zu bytes)", n);
    }
    return buf_detach(&b);
}

bool hf_check_str(hf_t *t, struct hf_site site, const char *a_expr,
                  const char *op, const char *b_expr, const char *a,
                  const char *b)
{
    bool ok;
    char *at;
    char *bt;

    if (strcmp(op, "contains") == 0) {
        ok = a && b && strstr(a, b) != NULL;
    } else {
        bool same = (a == NULL && b == NULL) ||
                    (a != NULL && b != NULL && strcmp(a, b) == 0);

        ok = strcmp(op, "==") == 0 ? same : !same;
    }
    if (ok) {
        return true;
    }
    at = quote(a);
    bt = quote(b);
    finish_compare(t, site, false, a_expr, op, b_expr, at, bt);
    free(at);
    free(bt);
    return false;
}

bool hf_check_mem(hf_t *t, struct hf_site site, const char *a_expr,
                  const char *op, const char *b_expr, const void *a,
                  const void *b, size_t len)
{
    const unsigned char *pa = a;
    const unsigned char *pb = b;
    size_t diff = len;
    bool same;
    struct buf m;

    if (!a || !b) {
        same = a == b;
    } else {
        for (size_t i = 0; i < len; i++) {
            if (pa[i] != pb[i]) {
                diff = i;
                break;
            }
        }
        same = diff == len;
    }
    if ((strcmp(op, "==") == 0) == same) {
        return true;
    }
    buf_init(&m, 0);
    buf_addf(&m, "%s %s %s (%zu bytes)", a_expr, op, b_expr, len);
    if (!a || !b) {
        buf_addf(&m, "\n%s = %s\n%s = %s", a_expr, a ? "(memory)" : "NULL",
                 b_expr, b ? "(memory)" : "NULL");
    } else if (!same) {
        buf_addf(&m, "\nfirst difference at byte %zu: 0x%02x != 0x%02x", diff,
                 pa[diff], pb[diff]);
    }
    check_failed(t, site, buf_str(&m));
    buf_cleanup(&m);
    return false;
}

bool hf_check_near(hf_t *t, struct hf_site site, const char *a_expr,
                   const char *b_expr, double a, double b, double tol)
{
    char at[64];
    char bt[64];
    struct buf m;

    if (fabs(a - b) <= tol) {
        return true;
    }
    snprintf(at, sizeof(at), "%.17g", a);
    snprintf(bt, sizeof(bt), "%.17g", b);
    buf_init(&m, 0);
    buf_addf(&m, "|%s - %s| <= %g", a_expr, b_expr, tol);
    add_operand(&m, a_expr, at);
    add_operand(&m, b_expr, bt);
    buf_addf(&m, "\ndifference = %g", fabs(a - b));
    check_failed(t, site, buf_str(&m));
    buf_cleanup(&m);
    return false;
}

bool hf_check_ptr(hf_t *t, struct hf_site site, const char *expr,
                  bool want_null, const void *p)
{
    char *text;

    if ((p == NULL) == want_null) {
        return true;
    }
    text = want_null ? mem_printf("%s == NULL\n%s = %p", expr, expr, p)
                     : mem_printf("%s != NULL", expr);
    check_failed(t, site, text);
    free(text);
    return false;
}

/* ---- End of an attempt (called by child.c) ---------------------------- */

void api_end_attempt(hf_t *t)
{
    while (t->n_spans) {
        hf_span_end(t->spans[t->n_spans - 1]);
    }
    free(t->spans);
    for (size_t i = t->n_envs; i-- > 0;) {
        struct child_env *e = &t->envs[i];

        if (e->old) {
            setenv(e->name, e->old, 1);
        } else {
            unsetenv(e->name);
        }
        free(e->name);
        free(e->old);
    }
    free(t->envs);
    for (size_t i = 0; i < t->n_tempdirs; i++) {
        fs_remove_tree(t->tempdirs[i]);
        free(t->tempdirs[i]);
    }
    free(t->tempdirs);
    free(t->cleanups);
    result_kv_free(t->values, t->n_values);
    t->spans = NULL;
    t->n_spans = 0;
    t->envs = NULL;
    t->n_envs = 0;
    t->tempdirs = NULL;
    t->n_tempdirs = 0;
    t->cleanups = NULL;
    t->n_cleanups = 0;
    t->values = NULL;
    t->n_values = 0;
}
