/* flaky: tests that both passed and failed over a suite's last runs, or
 * failed and then passed within one (docs/api.md, GET
 * /api/v1/suites/{name}/flaky). The rule itself is SQL (migration 0005);
 * this module checks the request and reads the answer. Database threads. */
#ifndef HANDOFF_FLAKY_H
#define HANDOFF_FLAKY_H

#include <stdint.h>

#include "status.h"

struct db;
struct store_reply;

/* The window when neither the controller nor the request names one. */
#define FLAKY_DEFAULT_WINDOW 20
/* The largest window a request may ask for. */
#define FLAKY_MAX_WINDOW 1000

/* GET /api/v1/suites/{name}/flaky: suite is the path text; ns and window
 * the query values (NULL: absent; window then default_window). Fills out
 * with 200 and the JSON, or 400 (bad window), 404 (unknown suite, naming
 * close ones), 409 (suite in several namespaces: give ?namespace=) or
 * 5xx. */
void flaky_get(struct db *d, const char *suite, const char *ns,
               const char *window, int64_t default_window,
               struct store_reply *out);

/* Flaky tests per suite of the catalog over the last window runs, as
 * "namespace\tsuite\tcount\n" lines (*lines: caller frees). Returns 0 or a
 * database status (*lines untouched). */
MUST_CHECK int flaky_counts(struct db *d, int64_t window, char **lines);

#endif
