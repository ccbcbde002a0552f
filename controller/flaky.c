/* Flaky tests over a suite's last runs (see flaky.h). */
#include "flaky.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "mem.h"
#include "store.h"

/* A window from the query: 1..FLAKY_MAX_WINDOW, digits only. */
static bool parse_window(const char *text, int64_t *out)
{
    int64_t v = 0;

    if (!text || !*text || strlen(text) > 9) {
        return false;
    }
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > FLAKY_MAX_WINDOW) {
        return false;
    }
    *out = v;
    return true;
}

void flaky_get(struct db *d, const char *suite, const char *ns,
               const char *window, int64_t default_window,
               struct store_reply *out)
{
    char suite_ns[160];
    char wtext[24];
    int64_t w = default_window;
    struct db_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (window && !parse_window(window, &w)) {
        store_reply_error(out, 400, "invalid_argument",
                          "query parameter window: \"%.64s\" is not a whole "
                          "number of runs from 1 to %d",
                          window, FLAKY_MAX_WINDOW);
        return;
    }
    if (!suite || !*suite || strlen(suite) > 128 ||
        (ns && (!*ns || strlen(ns) > 128))) {
        store_reply_error(out, 400, "invalid_argument",
                          "suite and namespace names are 1-128 characters");
        return;
    }
    if (store_resolve_suite(d, suite, ns, suite_ns, sizeof(suite_ns), out) !=
        ST_OK) {
        return;
    }
    snprintf(wtext, sizeof(wtext), "%" PRId64, w);
    rc = db_exec_ctx(d, "flaky tests",
                     "SELECT handoff_flaky_json($1, $2, $3::int)::text", 3,
                     (const char *[]){suite_ns, suite, wtext}, &res);
    if (rc != ST_OK) {
        store_reply_db_error(out, rc);
    } else {
        out->status = 200;
        out->body = mem_strdup(db_res_get(res, 0, 0));
        snprintf(out->ns, sizeof(out->ns), "%s", suite_ns);
        snprintf(out->suite, sizeof(out->suite), "%s", suite);
    }
    db_res_free(res);
}

int flaky_counts(struct db *d, int64_t window, char **lines)
{
    char wtext[24];
    struct db_res *res = NULL;
    struct buf b;
    int rc;

    snprintf(wtext, sizeof(wtext), "%" PRId64, window);
    rc = db_exec_ctx(d, "flaky gauge",
                     "SELECT namespace, suite, flaky FROM "
                     "handoff_flaky_counts($1::int)",
                     1, (const char *[]){wtext}, &res);
    if (rc != ST_OK) {
        db_res_free(res);
        return rc;
    }
    buf_init(&b, 0);
    for (size_t i = 0; i < db_res_rows(res); i++) {
        buf_addf(&b, "%s\t%s\t%s\n", db_res_get(res, i, 0),
                 db_res_get(res, i, 1), db_res_get(res, i, 2));
    }
    db_res_free(res);
    *lines = mem_strdup(buf_str(&b));
    buf_cleanup(&b);
    return ST_OK;
}
