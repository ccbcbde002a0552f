/* Test selection by -run/-skip regular expressions. */
#include "testfilter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

static int compile(regex_t *re, const char *text, const char *name, char *err,
                   size_t errlen)
{
    int rc = regcomp(re, text, REG_EXTENDED | REG_NOSUB);

    if (rc != 0) {
        char msg[256];

        regerror(rc, re, msg, sizeof(msg));
        snprintf(err, errlen, "%s \"%s\": invalid regular expression: %s", name,
                 text, msg);
        return ST_INVALID;
    }
    return ST_OK;
}

int testfilter_init(struct testfilter *f, const char *run, const char *skip,
                    const char *run_name, const char *skip_name, char *err,
                    size_t errlen)
{
    memset(f, 0, sizeof(*f));
    if (run && *run) {
        if (compile(&f->run, run, run_name, err, errlen) != ST_OK) {
            return ST_INVALID;
        }
        f->has_run = true;
        f->run_text = mem_strdup(run);
    }
    if (skip && *skip) {
        if (compile(&f->skip, skip, skip_name, err, errlen) != ST_OK) {
            testfilter_cleanup(f);
            return ST_INVALID;
        }
        f->has_skip = true;
        f->skip_text = mem_strdup(skip);
    }
    return ST_OK;
}

void testfilter_cleanup(struct testfilter *f)
{
    if (f->has_run) {
        regfree(&f->run);
    }
    if (f->has_skip) {
        regfree(&f->skip);
    }
    free(f->run_text);
    free(f->skip_text);
    memset(f, 0, sizeof(*f));
}

bool testfilter_selects(const struct testfilter *f, const char *name)
{
    if (f->has_run && regexec(&f->run, name, 0, NULL, 0) != 0) {
        return false;
    }
    return !(f->has_skip && regexec(&f->skip, name, 0, NULL, 0) == 0);
}

const char *testfilter_reason(const struct testfilter *f, const char *name,
                              const char *run_name, const char *skip_name,
                              char *out, size_t outlen)
{
    if (f->has_run && regexec(&f->run, name, 0, NULL, 0) != 0) {
        snprintf(out, outlen, "filtered out by %s %s", run_name, f->run_text);
        return out;
    }
    if (f->has_skip && regexec(&f->skip, name, 0, NULL, 0) == 0) {
        snprintf(out, outlen, "filtered out by %s %s", skip_name, f->skip_text);
        return out;
    }
    return NULL;
}
