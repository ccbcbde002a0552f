/* Suite run results: construction, derived outcomes and counts. */
#include "result.h"

#include <stdlib.h>
#include <string.h>

static const char *const result_names[] = {"none", "passed", "failed",
                                           "skipped", "error"};

const char *result_kind_str(enum result_kind k)
{
    if ((unsigned)k >= sizeof(result_names) / sizeof(result_names[0])) {
        return "none";
    }
    return result_names[k];
}

int result_kind_parse(const char *s, enum result_kind *out)
{
    for (size_t i = 0; i < sizeof(result_names) / sizeof(result_names[0]);
         i++) {
        if (strcmp(s, result_names[i]) == 0) {
            *out = (enum result_kind)i;
            return ST_OK;
        }
    }
    return ST_INVALID;
}

static void phase_init(struct result_phase *p)
{
    memset(p, 0, sizeof(*p));
    buf_init(&p->log, 0);
}

static void phase_cleanup(struct result_phase *p)
{
    free(p->reason);
    buf_cleanup(&p->log);
}

void result_suite_init(struct result_suite *s, const char *name, const char *ns)
{
    memset(s, 0, sizeof(*s));
    s->name = mem_strdup(name ? name : "");
    s->ns = mem_strdup(ns ? ns : "");
    phase_init(&s->setup);
    phase_init(&s->teardown);
    buf_init(&s->log, 0);
}

void result_kv_free(struct result_kv *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

static void attempt_cleanup(struct result_attempt *a)
{
    free(a->reason);
    buf_cleanup(&a->log);
    result_kv_free(a->values, a->n_values);
    for (size_t i = 0; i < a->n_spans; i++) {
        free(a->spans[i].name);
        result_kv_free(a->spans[i].attrs, a->spans[i].n_attrs);
    }
    free(a->spans);
}

void result_suite_cleanup(struct result_suite *s)
{
    for (size_t i = 0; i < s->n_tests; i++) {
        struct result_test *t = &s->tests[i];

        for (size_t j = 0; j < t->n_attempts; j++) {
            attempt_cleanup(&t->attempts[j]);
        }
        free(t->attempts);
        free(t->name);
    }
    free(s->tests);
    phase_cleanup(&s->setup);
    phase_cleanup(&s->teardown);
    free(s->name);
    free(s->ns);
    free(s->reason);
    buf_cleanup(&s->log);
    memset(s, 0, sizeof(*s));
}

struct result_test *result_suite_add_test(struct result_suite *s,
                                          const char *name)
{
    struct result_test *t;

    s->tests = mem_reallocarray(s->tests, s->n_tests + 1, sizeof(*s->tests));
    t = &s->tests[s->n_tests++];
    memset(t, 0, sizeof(*t));
    t->name = mem_strdup(name);
    return t;
}

struct result_attempt *result_test_add_attempt(struct result_test *t,
                                               size_t log_cap)
{
    struct result_attempt *a;

    t->attempts =
        mem_reallocarray(t->attempts, t->n_attempts + 1, sizeof(*t->attempts));
    a = &t->attempts[t->n_attempts++];
    memset(a, 0, sizeof(*a));
    a->attempt = (int)t->n_attempts;
    buf_init(&a->log, log_cap);
    return a;
}

void result_kv_set(struct result_kv **kvs, size_t *n, const char *key,
                   const char *value)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*kvs)[i].key, key) == 0) {
            free((*kvs)[i].value);
            (*kvs)[i].value = mem_strdup(value);
            return;
        }
    }
    *kvs = mem_reallocarray(*kvs, *n + 1, sizeof(**kvs));
    (*kvs)[*n].key = mem_strdup(key);
    (*kvs)[*n].value = mem_strdup(value);
    (*n)++;
}

const char *result_kv_get(const struct result_kv *kvs, size_t n,
                          const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kvs[i].key, key) == 0) {
            return kvs[i].value;
        }
    }
    return NULL;
}

struct result_span *result_attempt_add_span(struct result_attempt *a,
                                            const char *name,
                                            int64_t start_unix_ns)
{
    struct result_span *sp;

    a->spans = mem_reallocarray(a->spans, a->n_spans + 1, sizeof(*a->spans));
    sp = &a->spans[a->n_spans++];
    memset(sp, 0, sizeof(*sp));
    sp->name = mem_strdup(name);
    sp->start_unix_ns = start_unix_ns;
    sp->duration_ns = -1;
    return sp;
}

const struct result_attempt *result_test_final(const struct result_test *t)
{
    return t->n_attempts ? &t->attempts[t->n_attempts - 1] : NULL;
}

enum result_kind result_test_result(const struct result_test *t)
{
    const struct result_attempt *a = result_test_final(t);

    return a ? a->result : RESULT_NONE;
}

static bool is_bad(enum result_kind k)
{
    return k == RESULT_FAILED || k == RESULT_ERROR;
}

bool result_test_is_flaky(const struct result_test *t)
{
    if (result_test_result(t) != RESULT_PASSED) {
        return false;
    }
    for (size_t i = 0; i + 1 < t->n_attempts; i++) {
        if (is_bad(t->attempts[i].result)) {
            return true;
        }
    }
    return false;
}

bool result_test_is_soft_failure(const struct result_test *t)
{
    const struct result_attempt *a = result_test_final(t);

    return a && a->soft_failure && is_bad(a->result);
}

void result_suite_counts(const struct result_suite *s,
                         struct result_counts *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < s->n_tests; i++) {
        const struct result_test *t = &s->tests[i];

        out->tests++;
        out->attempts += t->n_attempts;
        switch (result_test_result(t)) {
        case RESULT_PASSED:
            out->passed++;
            break;
        case RESULT_FAILED:
            out->failed++;
            break;
        case RESULT_SKIPPED:
            out->skipped++;
            break;
        case RESULT_ERROR:
            out->errors++;
            break;
        case RESULT_NONE:
            break;
        }
        if (result_test_is_soft_failure(t)) {
            out->soft_failures++;
        }
        if (result_test_is_flaky(t)) {
            out->flaky++;
        }
    }
}

void result_suite_finish(struct result_suite *s)
{
    bool error = s->reason != NULL;
    bool failed = false;

    if (s->setup.ran && s->setup.result != RESULT_PASSED) {
        error = true;
    }
    if (s->teardown.ran && s->teardown.result != RESULT_PASSED) {
        error = true;
    }
    for (size_t i = 0; i < s->n_tests; i++) {
        const struct result_test *t = &s->tests[i];
        enum result_kind k = result_test_result(t);

        if (result_test_is_soft_failure(t)) {
            continue;
        }
        if (k == RESULT_ERROR || k == RESULT_NONE) {
            error = true;
        } else if (k == RESULT_FAILED) {
            failed = true;
        }
    }
    s->result = error ? RESULT_ERROR : failed ? RESULT_FAILED : RESULT_PASSED;
}

int result_exit_code(const struct result_suite *const *suites, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (suites[i]->result != RESULT_PASSED) {
            return 1;
        }
    }
    return 0;
}
