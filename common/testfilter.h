/* testfilter: Go's -run/-skip selection of tests by POSIX extended regular
 * expressions on their names, shared by the local runner, the worker and
 * the controller (which checks a run request against the catalog). */
#ifndef HANDOFF_TESTFILTER_H
#define HANDOFF_TESTFILTER_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "status.h"

struct testfilter {
    bool has_run;
    bool has_skip;
    regex_t run;
    regex_t skip;
    char *run_text;
    char *skip_text;
};

/* Compiles the expressions; NULL or "" means none. Returns 0, or
 * ST_INVALID with a message naming the flag/field and the regex error in
 * err (the caller's words for them: run_name, skip_name, e.g. "--run" or
 * "field \"run\""). */
MUST_CHECK int testfilter_init(struct testfilter *f, const char *run,
                               const char *skip, const char *run_name,
                               const char *skip_name, char *err, size_t errlen);
void testfilter_cleanup(struct testfilter *f);

/* True when the test runs: it matches run (if any) and not skip (if any). */
bool testfilter_selects(const struct testfilter *f, const char *name);

/* Why name does not run ("filtered out by --run X"), in out; NULL when it
 * runs. run_name/skip_name as for testfilter_init. */
const char *testfilter_reason(const struct testfilter *f, const char *name,
                              const char *run_name, const char *skip_name,
                              char *out, size_t outlen);

#endif
