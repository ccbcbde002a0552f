/* opts: settings from flags and HANDOFF_* environment variables, with
 * defaults that point at the local stack. A flag wins over its variable,
 * the variable over the default. Secrets are variables only, never flags
 * (flags show in ps). Bad values are refused with a message naming the
 * flag or variable and what it wants; callers exit 2. */
#ifndef HANDOFF_OPTS_H
#define HANDOFF_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "result.h"
#include "status.h"

enum opt_kind {
    OPT_STRING,   /* out: char ** (owned by opts_free) */
    OPT_INT,      /* out: int64_t *, within [min, max] */
    OPT_DURATION, /* out: int64_t * nanoseconds, Go syntax, > 0 */
    OPT_BOOL,     /* out: bool *; a flag without value means true */
    OPT_KV,       /* out: struct opt_kv *; "k=v", repeatable; the
                       variable holds "k=v,k2=v2" */
};

struct opt_kv {
    struct result_kv *items;
    size_t n;
};

struct opt {
    const char *name; /* flag without dashes; NULL: variable only */
    const char *env;  /* HANDOFF_...; NULL: flag only */
    enum opt_kind kind;
    const char *def; /* default as text, or NULL */
    const char *help;
    void *out;
    int64_t min; /* OPT_INT bounds */
    int64_t max;
};

/* Parses argv[0..argc) (flags only: --name value, --name=value, -name)
 * and the environment into each opt's out. Returns 0, or ST_INVALID with a
 * message in err (an unknown flag names the known ones). */
MUST_CHECK int opts_parse(const struct opt *opts, size_t n, int argc,
                          char **argv, char *err, size_t errlen);
/* Frees what OPT_STRING and OPT_KV outs hold. */
void opts_free(const struct opt *opts, size_t n);
/* Writes one line per option: flag, variable, default, help. */
void opts_usage(FILE *f, const struct opt *opts, size_t n);

#endif
