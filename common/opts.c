/* Flags and environment variables. */
#include "opts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "mem.h"

static const char *source_name(const struct opt *o, bool from_flag, char *buf,
                               size_t len)
{
    if (from_flag) {
        snprintf(buf, len, "--%s", o->name);
    } else {
        snprintf(buf, len, "%s", o->env ? o->env : "(default)");
    }
    return buf;
}

static int add_kv(struct opt_kv *kv, const char *text, const char *src,
                  char *err, size_t errlen)
{
    const char *p = text;

    while (*p) {
        size_t n = strcspn(p, ",");
        char *item = mem_strndup(p, n);
        char *eq = strchr(item, '=');

        if (!eq || eq == item) {
            snprintf(err, errlen, "%s \"%s\": want KEY=VALUE", src, item);
            free(item);
            return ST_INVALID;
        }
        *eq = '\0';
        result_kv_set(&kv->items, &kv->n, item, eq + 1);
        free(item);
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    return ST_OK;
}

static int set_value(const struct opt *o, const char *v, bool from_flag,
                     char *err, size_t errlen)
{
    char src[128];
    char *end;
    int64_t i;

    source_name(o, from_flag, src, sizeof(src));
    switch (o->kind) {
    case OPT_STRING:
        free(*(char **)o->out);
        *(char **)o->out = mem_strdup(v);
        return ST_OK;
    case OPT_INT:
        errno = 0;
        i = strtoll(v, &end, 10);
        if (errno || end == v || *end || i < o->min || i > o->max) {
            snprintf(err, errlen,
                     "%s \"%s\": want an integer from %" PRId64 " to %" PRId64,
                     src, v, o->min, o->max);
            return ST_INVALID;
        }
        *(int64_t *)o->out = i;
        return ST_OK;
    case OPT_DURATION:
        if (clock_parse_duration(v, &i) != ST_OK || i <= 0) {
            snprintf(err, errlen,
                     "%s \"%s\": not a duration (use e.g. 30s, 5m, 1h30m)", src,
                     v);
            return ST_INVALID;
        }
        *(int64_t *)o->out = i;
        return ST_OK;
    case OPT_BOOL:
        if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
            strcasecmp(v, "yes") == 0) {
            *(bool *)o->out = true;
        } else if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 ||
                   strcasecmp(v, "no") == 0) {
            *(bool *)o->out = false;
        } else {
            snprintf(err, errlen, "%s \"%s\": want true or false", src, v);
            return ST_INVALID;
        }
        return ST_OK;
    case OPT_KV:
        return add_kv(o->out, v, src, err, errlen);
    }
    return ST_INVALID;
}

static void known_flags(const struct opt *opts, size_t n, char *out,
                        size_t outlen)
{
    size_t at = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && at < outlen; i++) {
        if (opts[i].name) {
            at += (size_t)snprintf(out + at, outlen - at, "%s--%s",
                                   at ? ", " : "", opts[i].name);
        }
    }
}

int opts_parse(const struct opt *opts, size_t n, int argc, char **argv,
               char *err, size_t errlen)
{
    bool *from_flag = mem_calloc(n + 1, sizeof(*from_flag));
    int rc = ST_OK;

    for (int a = 0; a < argc && rc == ST_OK; a++) {
        const char *arg = argv[a];
        const char *name;
        const char *eq;
        size_t len;
        size_t k;

        if (arg[0] != '-' || arg[1] == '\0') {
            snprintf(err, errlen, "unexpected argument \"%s\"", arg);
            rc = ST_INVALID;
            break;
        }
        name = arg + (arg[1] == '-' ? 2 : 1);
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        for (k = 0; k < n; k++) {
            if (opts[k].name && strlen(opts[k].name) == len &&
                strncmp(opts[k].name, name, len) == 0) {
                break;
            }
        }
        if (k == n) {
            char known[2048];

            known_flags(opts, n, known, sizeof(known));
            snprintf(err, errlen, "unknown flag %.*s; known flags: %s",
                     (int)(len + (size_t)(name - arg)), arg, known);
            rc = ST_INVALID;
            break;
        }
        if (eq) {
            rc = set_value(&opts[k], eq + 1, true, err, errlen);
        } else if (opts[k].kind == OPT_BOOL) {
            *(bool *)opts[k].out = true;
        } else if (a + 1 < argc) {
            rc = set_value(&opts[k], argv[++a], true, err, errlen);
        } else {
            snprintf(err, errlen, "flag --%s needs a value", opts[k].name);
            rc = ST_INVALID;
        }
        from_flag[k] = true;
    }
    for (size_t k = 0; k < n && rc == ST_OK; k++) {
        const char *v = opts[k].env ? getenv(opts[k].env) : NULL;

        if (from_flag[k]) {
            continue;
        }
        if (v && *v) {
            rc = set_value(&opts[k], v, false, err, errlen);
        } else if (opts[k].def) {
            rc = set_value(&opts[k], opts[k].def, false, err, errlen);
        }
    }
    free(from_flag);
    return rc;
}

void opts_free(const struct opt *opts, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (opts[k].kind == OPT_STRING) {
            free(*(char **)opts[k].out);
            *(char **)opts[k].out = NULL;
        } else if (opts[k].kind == OPT_KV) {
            struct opt_kv *kv = opts[k].out;

            result_kv_free(kv->items, kv->n);
            kv->items = NULL;
            kv->n = 0;
        }
    }
}

void opts_usage(FILE *f, const struct opt *opts, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        char flag[64] = "";

        if (opts[k].name) {
            snprintf(flag, sizeof(flag), "--%s", opts[k].name);
        }
        fprintf(f, "  %-24s %-32s %s", flag, opts[k].env ? opts[k].env : "",
                opts[k].help);
        if (opts[k].def && *opts[k].def) {
            fprintf(f, " (default %s)", opts[k].def);
        }
        fputc('\n', f);
    }
}
