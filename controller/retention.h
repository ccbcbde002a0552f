/* retention: the policies that say how long runs are kept (docs/api.md,
 * Retention): GET, PUT and DELETE /api/v1/retention. The janitor
 * (janitor.h) applies them. Database threads. */
#ifndef HANDOFF_RETENTION_H
#define HANDOFF_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct db;
struct store_reply;

/* The longest max_age a policy may have: 100 years, in ms. */
#define RETENTION_MAX_AGE_MS (INT64_C(100) * 365 * 24 * 3600 * 1000)
/* The largest max_runs. */
#define RETENTION_MAX_RUNS 100000000

/* A policy as a PUT body gives it. namespace and suite are "" for "any". */
struct retention_policy {
    char ns[129];
    char suite[129];
    int64_t max_age_ms; /* 0: none */
    int64_t max_runs;   /* 0: none */
};

/* Parses a PUT body: {"namespace", "suite", "max_age", "max_runs"}, at
 * least one of the last two. Returns 0 and *out, or ST_INVALID with code
 * ("malformed_json", "unknown_field", "invalid_argument") and a message
 * in err (err_len bytes). Pure: any thread. */
MUST_CHECK int retention_parse(const char *body, size_t len,
                               struct retention_policy *out, const char **code,
                               char *err, size_t err_len);

/* GET /api/v1/retention: every policy. */
void retention_list(struct db *d, struct store_reply *out);

/* PUT /api/v1/retention: creates (201) or replaces (200) the policy of
 * the body's scope. Bad bodies get 400 and change nothing. */
void retention_put(struct db *d, const char *body, size_t len,
                   struct store_reply *out);

/* DELETE /api/v1/retention?namespace=&suite= (NULL: absent, the default
 * policy's scope): 200 with the policy deleted, 404 when there is none,
 * 400 for a suite without a namespace. */
void retention_delete(struct db *d, const char *ns, const char *suite,
                      struct store_reply *out);

#endif
