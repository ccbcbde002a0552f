/* Suite registry. */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

static const struct hf_suite **registry_suites;
static size_t registry_n;

void hf_register_suite(const struct hf_suite *suite)
{
    registry_suites = mem_reallocarray(registry_suites, registry_n + 1,
                                       sizeof(*registry_suites));
    registry_suites[registry_n++] = suite;
}

void registry_reset(void)
{
    free(registry_suites);
    registry_suites = NULL;
    registry_n = 0;
}

size_t registry_count(void)
{
    return registry_n;
}

const struct hf_suite *registry_at(size_t i)
{
    return registry_suites[i];
}

const struct hf_suite *registry_find(const char *name)
{
    for (size_t i = 0; i < registry_n; i++) {
        if (registry_suites[i]->name &&
            strcmp(registry_suites[i]->name, name) == 0) {
            return registry_suites[i];
        }
    }
    return NULL;
}

void registry_names(char *out, size_t outlen)
{
    size_t used = 0;

    if (outlen == 0) {
        return;
    }
    out[0] = '\0';
    for (size_t i = 0; i < registry_n && used < outlen; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "",
                         registry_suites[i]->name);

        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
}

size_t registry_workflow_count(const struct hf_suite *s)
{
    size_t n = 0;

    while (s->workflows && s->workflows[n].name) {
        n++;
    }
    return n;
}

int registry_find_workflow(const char *name, const struct hf_suite **suite,
                           const struct hf_workflow **wf, char *err,
                           size_t errlen)
{
    const char *slash = strchr(name, '/');
    size_t found = 0;

    for (size_t i = 0; i < registry_n; i++) {
        const struct hf_suite *s = registry_suites[i];
        const char *wname = name;

        if (slash != NULL) {
            size_t len = (size_t)(slash - name);

            if (strlen(s->name) != len || strncmp(s->name, name, len) != 0) {
                continue;
            }
            wname = slash + 1;
        }
        for (size_t j = 0; j < registry_workflow_count(s); j++) {
            if (strcmp(s->workflows[j].name, wname) == 0) {
                if (found++ == 0) {
                    *suite = s;
                    *wf = &s->workflows[j];
                }
            }
        }
    }
    if (found == 1) {
        return ST_OK;
    }
    if (found > 1) {
        snprintf(err, errlen,
                 "workflow \"%s\" is in several suites: name it SUITE/%s", name,
                 name);
        return ST_CONFLICT;
    }
    {
        size_t off = 0;

        off += (size_t)snprintf(
            err, errlen, "no workflow \"%s\" in this binary; it has:", name);
        for (size_t i = 0; i < registry_n && off < errlen; i++) {
            const struct hf_suite *s = registry_suites[i];

            for (size_t j = 0; j < registry_workflow_count(s) && off < errlen;
                 j++) {
                off += (size_t)snprintf(err + off, errlen - off, " %s/%s",
                                        s->name, s->workflows[j].name);
            }
        }
    }
    return ST_NOT_FOUND;
}

size_t registry_test_count(const struct hf_suite *s)
{
    size_t n = 0;

    while (s->tests && s->tests[n].name) {
        n++;
    }
    return n;
}

const char *registry_namespace(const struct hf_suite *s)
{
    return s->namespace && *s->namespace ? s->namespace
                                         : REGISTRY_DEFAULT_NAMESPACE;
}

int registry_max_attempts(const struct hf_suite *s, const struct hf_test *t)
{
    if (t && t->max_attempts > 0) {
        return t->max_attempts;
    }
    return s->max_attempts > 0 ? s->max_attempts : 1;
}

int64_t registry_test_timeout_ms(const struct hf_suite *s,
                                 const struct hf_test *t)
{
    if (t && t->timeout_ms > 0) {
        return t->timeout_ms;
    }
    return s->test_timeout_ms > 0 ? s->test_timeout_ms
                                  : REGISTRY_DEFAULT_TEST_TIMEOUT_MS;
}

int64_t registry_suite_timeout_ms(const struct hf_suite *s)
{
    return s->timeout_ms > 0 ? s->timeout_ms
                             : REGISTRY_DEFAULT_SUITE_TIMEOUT_MS;
}

bool registry_is_valid_name(const char *name)
{
    size_t n = 0;

    if (!name) {
        return false;
    }
    for (const char *p = name; *p; p++, n++) {
        char c = *p;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= REGISTRY_MAX_NAME;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting a copy keeps this O(n log n): suites may hold thousands of tests. */
static int check_unique_tests(const struct hf_suite *s, size_t n, char *err,
                              size_t errlen)
{
    const char **names = mem_calloc(n, sizeof(*names));
    int rc = ST_OK;

    for (size_t i = 0; i < n; i++) {
        names[i] = s->tests[i].name;
    }
    qsort(names, n, sizeof(*names), cmp_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            snprintf(err, errlen, "suite %s: duplicate test name %s", s->name,
                     names[i]);
            rc = ST_INVALID;
            break;
        }
    }
    free(names);
    return rc;
}

static int check_suite(const struct hf_suite *s, char *err, size_t errlen)
{
    size_t n = registry_test_count(s);

    if (!registry_is_valid_name(s->name)) {
        snprintf(err, errlen,
                 "suite name \"%s\" is invalid: use 1-%d characters of "
                 "[A-Za-z0-9_.-]",
                 s->name ? s->name : "(null)", REGISTRY_MAX_NAME);
        return ST_INVALID;
    }
    if (s->namespace && *s->namespace &&
        !registry_is_valid_name(s->namespace)) {
        snprintf(err, errlen,
                 "suite %s: namespace \"%s\" is invalid: use 1-%d characters "
                 "of [A-Za-z0-9_.-]",
                 s->name, s->namespace, REGISTRY_MAX_NAME);
        return ST_INVALID;
    }
    if (n == 0 && registry_workflow_count(s) == 0) {
        snprintf(err, errlen, "suite %s has no tests and no workflows",
                 s->name);
        return ST_INVALID;
    }
    for (size_t i = 0; i < registry_workflow_count(s); i++) {
        const struct hf_workflow *w = &s->workflows[i];

        if (!registry_is_valid_name(w->name) || w->fn == NULL) {
            snprintf(err, errlen,
                     "suite %s: workflow \"%s\" needs a name of 1-%d "
                     "characters of [A-Za-z0-9_.-] and a function",
                     s->name, w->name, REGISTRY_MAX_NAME);
            return ST_INVALID;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->workflows[j].name, w->name) == 0) {
                snprintf(err, errlen, "suite %s: duplicate workflow %s",
                         s->name, w->name);
                return ST_INVALID;
            }
        }
    }
    if (s->max_attempts < 0 || s->test_timeout_ms < 0 || s->timeout_ms < 0) {
        snprintf(err, errlen,
                 "suite %s: max_attempts and timeouts must not be negative",
                 s->name);
        return ST_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        const struct hf_test *t = &s->tests[i];

        if (!t->fn) {
            snprintf(err, errlen, "suite %s: test %s has no function", s->name,
                     t->name);
            return ST_INVALID;
        }
        if (t->max_attempts < 0 || t->timeout_ms < 0) {
            snprintf(err, errlen,
                     "suite %s: test %s: max_attempts and timeout_ms must "
                     "not be negative",
                     s->name, t->name);
            return ST_INVALID;
        }
        if (!*t->name || strlen(t->name) > 256) {
            snprintf(err, errlen, "suite %s: test name \"%s\" is invalid",
                     s->name, t->name);
            return ST_INVALID;
        }
    }
    return check_unique_tests(s, n, err, errlen);
}

int registry_check(char *err, size_t errlen)
{
    for (size_t i = 0; i < registry_n; i++) {
        int rc = check_suite(registry_suites[i], err, errlen);

        if (rc) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(registry_suites[j]->name, registry_suites[i]->name) ==
                0) {
                snprintf(err, errlen,
                         "duplicate suite name %s: each suite linked into a "
                         "worker needs its own name",
                         registry_suites[i]->name);
                return ST_INVALID;
            }
        }
    }
    return ST_OK;
}
