/* NATS subject, stream and consumer names. */
#include "subjects.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Appends name to out as a subject token: '.', '*', '>' and whitespace
 * escaped as %XX so a name is always exactly one token. */
static size_t put_token(char *out, size_t at, size_t outlen, const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name;
         *p && at + 4 < outlen; p++) {
        if (*p == '.' || *p == '*' || *p == '>' || *p == '%' || *p <= ' ' ||
            *p >= 0x7f) {
            at += (size_t)snprintf(out + at, outlen - at, "%%%02X", *p);
        } else {
            out[at++] = (char)*p;
        }
    }
    out[at] = '\0';
    return at;
}

/* Appends name as part of a consumer name ([A-Za-z0-9_-] only). */
static size_t put_name(char *out, size_t at, size_t outlen, const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name;
         *p && at + 4 < outlen; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9')) {
            out[at++] = (char)*p;
        } else {
            at += (size_t)snprintf(out + at, outlen - at, "_%02X", *p);
        }
    }
    out[at] = '\0';
    return at;
}

static size_t put_lit(char *out, size_t at, size_t outlen, const char *s)
{
    size_t n = strlen(s);

    if (at + n >= outlen) {
        n = outlen - at - 1;
    }
    memcpy(out + at, s, n);
    out[at + n] = '\0';
    return at + n;
}

char *subjects_job(const char *pool, const char *ns, const char *suite,
                   char *out, size_t outlen)
{
    size_t at = put_lit(out, 0, outlen, "handoff.jobs.");

    at = put_token(out, at, outlen, pool);
    at = put_lit(out, at, outlen, ".");
    at = put_token(out, at, outlen, ns);
    at = put_lit(out, at, outlen, ".");
    put_token(out, at, outlen, suite);
    return out;
}

char *subjects_job_consumer(const char *pool, const char *ns, const char *suite,
                            char *out, size_t outlen)
{
    size_t at = put_lit(out, 0, outlen, "jobs-");

    at = put_name(out, at, outlen, pool);
    at = put_lit(out, at, outlen, "-");
    at = put_name(out, at, outlen, ns);
    at = put_lit(out, at, outlen, "-");
    put_name(out, at, outlen, suite);
    return out;
}

char *subjects_events(int64_t run_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "handoff.events.%" PRId64, run_id);
    return out;
}

char *subjects_load_points(int64_t run_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "handoff.events.%" PRId64 ".load", run_id);
    return out;
}

char *subjects_results(int64_t run_id, const char *kind, char *out,
                       size_t outlen)
{
    snprintf(out, outlen, "handoff.results.%" PRId64 ".%s", run_id, kind);
    return out;
}

char *subjects_worker(const char *worker_id, const char *kind, char *out,
                      size_t outlen)
{
    size_t at = put_lit(out, 0, outlen, "handoff.workers.");

    at = put_token(out, at, outlen, worker_id);
    at = put_lit(out, at, outlen, ".");
    put_lit(out, at, outlen, kind);
    return out;
}

char *subjects_run_done(int64_t run_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "handoff.runs.%" PRId64 ".done", run_id);
    return out;
}

char *subjects_msg_id(const char *job_id, int64_t created_unix_ms, int attempt,
                      const char *kind, char *out, size_t outlen)
{
    if (kind) {
        snprintf(out, outlen, "%s@%" PRId64 "/%d/%s", job_id, created_unix_ms,
                 attempt, kind);
    } else {
        snprintf(out, outlen, "%s@%" PRId64, job_id, created_unix_ms);
    }
    return out;
}
