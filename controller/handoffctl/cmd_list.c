/* handoffctl runs, suites and workers: lists as tables, or the API's JSON
 * with --json. runs pages through the API with its cursor when --limit
 * asks for more than one page holds. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cmd.h"
#include "jsonw.h"
#include "mem.h"
#include "table.h"

/* Runs per request: the API's maximum page. */
#define LIST_PAGE_MAX 500

/* --since/--until: RFC 3339 as is, or a duration meaning that long ago.
 * Returns the text to send (owned) or NULL after printing why. */
static char *time_flag(const struct ctl *ctl, const char *flag,
                       const char *value)
{
    int64_t ns;
    char out[CLOCK_RFC3339_LEN];

    if (clock_parse_rfc3339(value, &ns) == ST_OK) {
        return mem_strdup(value);
    }
    if (clock_parse_duration(value, &ns) == ST_OK) {
        return mem_strdup(
            clock_format_rfc3339(clock_real_ns() - ns, CLOCK_UTC, 0, out));
    }
    fprintf(stderr,
            "%s runs: --%s \"%s\": want an RFC 3339 time "
            "(2026-11-23T10:00:00Z) or a duration ago (24h)\n",
            ctl->prog, flag, value);
    return NULL;
}

static void runs_table(const struct remote_run *runs, size_t n)
{
    static const char *const headers[] = {
        "ID",    "SUITE",   "STATE",   "RESULT",
        "TESTS", "P/F/E/S", "CREATED", "DURATION",
    };
    struct table t;

    table_init(&t, sizeof(headers) / sizeof(headers[0]), headers);
    for (size_t i = 0; i < n; i++) {
        const struct remote_run *r = &runs[i];
        char suite[600];
        char tests[32] = "";
        char pfes[128] = "";
        char created[40];
        char duration[64];
        const char *cells[8];

        snprintf(suite, sizeof(suite), "%s%s%s", r->ns ? r->ns : "",
                 r->ns ? "/" : "", r->suite ? r->suite : "?");
        if (r->counts.present) {
            snprintf(tests, sizeof(tests), "%" PRId64, r->counts.tests);
            snprintf(pfes, sizeof(pfes),
                     "%" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64,
                     r->counts.passed, r->counts.failed, r->counts.errors,
                     r->counts.skipped);
        }
        cells[0] = r->id;
        cells[1] = suite;
        cells[2] = r->state;
        cells[3] = r->result;
        cells[4] = tests;
        cells[5] = pfes;
        cells[6] = ctl_format_time(r->created_ns, created, sizeof(created));
        cells[7] =
            ctl_format_duration(r->duration_ns, duration, sizeof(duration));
        table_add(&t, cells);
    }
    table_print(&t, stdout);
    table_cleanup(&t);
}

/* {"runs": [...], "next_cursor": ...} from the entries of every page. */
static void runs_json(const struct remote_run *runs, size_t n,
                      const char *next_cursor)
{
    struct buf b;

    buf_init(&b, 0);
    buf_adds(&b, "{\"runs\":[");
    for (size_t i = 0; i < n; i++) {
        buf_addf(&b, "%s%s", i ? "," : "", runs[i].json ? runs[i].json : "{}");
    }
    buf_adds(&b, "]");
    if (next_cursor) {
        buf_adds(&b, ",\"next_cursor\":");
        jsonw_string(&b, next_cursor, strlen(next_cursor));
    }
    buf_adds(&b, "}");
    ctl_print_json(&b);
    buf_cleanup(&b);
}

int cmd_runs(struct ctl *ctl, int argc, char **argv)
{
    char *suite = NULL;
    char *ns = NULL;
    char *state = NULL;
    char *result = NULL;
    char *since = NULL;
    char *until = NULL;
    int64_t limit = 0;
    bool json = false;
    const struct opt opts[] = {
        {"suite", NULL, OPT_STRING, NULL, "only runs of this suite", &suite, 0,
         0},
        {"namespace", NULL, OPT_STRING, NULL, "only runs in this namespace",
         &ns, 0, 0},
        {"state", NULL, OPT_STRING, NULL,
         "queued, running, finished, cancelled or timed_out", &state, 0, 0},
        {"result", NULL, OPT_STRING, NULL, "passed, failed or error", &result,
         0, 0},
        {"since", NULL, OPT_STRING, NULL,
         "created at or after: RFC 3339, or a duration ago (24h)", &since, 0,
         0},
        {"until", NULL, OPT_STRING, NULL, "created before: the same forms",
         &until, 0, 0},
        {"limit", NULL, OPT_INT, "50", "how many runs, newest first", &limit, 1,
         1000000},
        {"json", NULL, OPT_BOOL, NULL, "the runs as the API gives them (JSON)",
         &json, 0, 0},
    };
    const struct ctl_cmd cmd = {
        .name = "runs",
        .synopsis = "[flags]",
        .summary = "Lists runs, newest first. P/F/E/S are the tests that "
                   "passed, failed, errored\nand were skipped.",
        .n_args = 0,
        .opts = opts,
        .n_opts = sizeof(opts) / sizeof(opts[0]),
    };
    struct remote_run *all = NULL;
    size_t n_all = 0;
    char *cursor = NULL;
    char *since_q = NULL;
    char *until_q = NULL;
    size_t got = 0;
    struct remote_error err;
    int rc;

    rc = ctl_parse(ctl, &cmd, argc, argv, NULL);
    if (rc != 0) {
        rc = rc == CTL_HELP ? CTL_EXIT_OK : rc;
        goto free_flags;
    }
    if ((since && !(since_q = time_flag(ctl, "since", since))) ||
        (until && !(until_q = time_flag(ctl, "until", until)))) {
        rc = CTL_EXIT_USAGE;
        goto free_flags;
    }
    rc = ctl_connect(ctl, "runs");
    if (rc != 0) {
        goto free_flags;
    }
    do {
        struct remote_run_query q = {
            .suite = suite,
            .ns = ns,
            .state = state,
            .result = result,
            .since = since_q,
            .until = until_q,
            .limit = limit - (int64_t)n_all,
            .cursor = cursor,
        };
        struct remote_run_page page;
        int st;

        if (q.limit > LIST_PAGE_MAX) {
            q.limit = LIST_PAGE_MAX;
        }
        st = remote_list_runs(ctl->remote, &q, &page, NULL, &err);
        if (st != ST_OK) {
            rc = ctl_fail(ctl, "runs", st, &err);
            goto free_runs;
        }
        got = page.n_runs;
        all = mem_reallocarray(all, n_all + got + 1, sizeof(*all));
        for (size_t i = 0; i < got; i++) {
            /* Never more than asked for, whatever the page holds. */
            if ((int64_t)n_all < limit) {
                all[n_all++] = page.runs[i];
            } else {
                remote_run_cleanup(&page.runs[i]);
            }
        }
        page.n_runs = 0;
        free(cursor);
        cursor = page.next_cursor;
        page.next_cursor = NULL;
        remote_run_page_cleanup(&page);
        /* got == 0: an empty page with a cursor would loop for ever. */
    } while (cursor && got > 0 && (int64_t)n_all < limit);
    if (json) {
        runs_json(all, n_all, cursor);
    } else if (n_all == 0) {
        fprintf(stderr, "%s runs: no runs match\n", ctl->prog);
    } else {
        runs_table(all, n_all);
    }
free_runs:
    for (size_t i = 0; i < n_all; i++) {
        remote_run_cleanup(&all[i]);
    }
    free(all);
    free(cursor);
free_flags:
    free(since_q);
    free(until_q);
    opts_free(opts, sizeof(opts) / sizeof(opts[0]));
    return rc;
}

static void join(struct buf *b, char *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf_addf(b, "%s%s", i ? "," : "", items[i]);
    }
}

int cmd_suites(struct ctl *ctl, int argc, char **argv)
{
    bool json = false;
    const struct opt opts[] = {
        {"json", NULL, OPT_BOOL, NULL, "the catalog as the API gives it (JSON)",
         &json, 0, 0},
    };
    const struct ctl_cmd cmd = {
        .name = "suites",
        .synopsis = "[flags]",
        .summary = "Lists the suites the workers announce, one line per pool "
                   "that has the suite,\nwith its number of tests there and "
                   "the workers that have it.",
        .opts = opts,
        .n_opts = 1,
    };
    static const char *const headers[] = {"NAMESPACE/NAME", "POOL", "TESTS",
                                          "WORKERS"};
    struct remote_suite_list l;
    struct remote_error err;
    struct buf raw;
    int rc;
    int st;

    buf_init(&raw, 0);
    rc = ctl_parse(ctl, &cmd, argc, argv, NULL);
    if (rc != 0) {
        rc = rc == CTL_HELP ? CTL_EXIT_OK : rc;
        goto free_flags;
    }
    rc = ctl_connect(ctl, "suites");
    if (rc != 0) {
        goto free_flags;
    }
    st = remote_list_suites(ctl->remote, &l, &raw, &err);
    if (st != ST_OK) {
        rc = ctl_fail(ctl, "suites", st, &err);
        goto free_flags;
    }
    if (json) {
        ctl_print_json(&raw);
    } else if (l.n == 0) {
        fprintf(stderr, "%s suites: no suites (no worker has announced one)\n",
                ctl->prog);
    } else {
        struct table t;
        struct buf name;
        struct buf workers;
        char tests[32];

        buf_init(&name, 0);
        buf_init(&workers, 0);
        table_init(&t, 4, headers);
        for (size_t i = 0; i < l.n; i++) {
            const struct remote_suite *s = &l.suites[i];
            const char *cells[4];

            buf_reset(&name);
            buf_reset(&workers);
            buf_addf(&name, "%s%s%s", s->ns ? s->ns : "", s->ns ? "/" : "",
                     s->name);
            join(&workers, s->workers, s->n_workers);
            snprintf(tests, sizeof(tests), "%zu", s->n_tests);
            cells[0] = buf_str(&name);
            cells[1] = s->pool && *s->pool ? s->pool : "-";
            cells[2] = tests;
            cells[3] = buf_str(&workers);
            table_add(&t, cells);
        }
        table_print(&t, stdout);
        table_cleanup(&t);
        buf_cleanup(&name);
        buf_cleanup(&workers);
    }
    remote_suite_list_cleanup(&l);
free_flags:
    buf_cleanup(&raw);
    opts_free(opts, sizeof(opts) / sizeof(opts[0]));
    return rc;
}

static void worker_row(struct table *t, const struct remote_worker *w)
{
    char slots[64];
    char seen[40];
    struct buf labels;
    const char *cells[7];

    buf_init(&labels, 0);
    for (size_t i = 0; i < w->n_labels; i++) {
        buf_addf(&labels, "%s%s=%s", i ? "," : "", w->labels[i].key,
                 w->labels[i].value);
    }
    if (w->slots >= 0) {
        snprintf(slots, sizeof(slots), "%" PRId64 "/%" PRId64,
                 w->free_slots >= 0 ? w->free_slots : 0, w->slots);
    } else {
        snprintf(slots, sizeof(slots), "-");
    }
    cells[0] = w->id;
    cells[1] = w->host;
    cells[2] = w->pool;
    cells[3] = slots;
    cells[4] = w->alive < 0  ? "-"
               : !w->alive   ? "no"
               : w->draining ? "draining"
                             : "yes";
    cells[5] = ctl_format_time(w->last_seen_ns, seen, sizeof(seen));
    cells[6] = buf_str(&labels);
    table_add(t, cells);
    buf_cleanup(&labels);
}

int cmd_workers(struct ctl *ctl, int argc, char **argv)
{
    bool json = false;
    const struct opt opts[] = {
        {"json", NULL, OPT_BOOL, NULL, "the workers as the API gives them",
         &json, 0, 0},
    };
    const struct ctl_cmd cmd = {
        .name = "workers",
        .synopsis = "[flags]",
        .summary = "Lists the workers the controller knows. SLOTS is "
                   "free/total; ALIVE is yes\nwhile heartbeats arrive, "
                   "draining when it takes no new jobs.",
        .opts = opts,
        .n_opts = 1,
    };
    static const char *const headers[] = {
        "ID", "HOST", "POOL", "SLOTS", "ALIVE", "LAST SEEN", "LABELS",
    };
    struct remote_worker_list l;
    struct remote_error err;
    struct buf raw;
    int rc;
    int st;

    buf_init(&raw, 0);
    rc = ctl_parse(ctl, &cmd, argc, argv, NULL);
    if (rc != 0) {
        rc = rc == CTL_HELP ? CTL_EXIT_OK : rc;
        goto free_flags;
    }
    rc = ctl_connect(ctl, "workers");
    if (rc != 0) {
        goto free_flags;
    }
    st = remote_list_workers(ctl->remote, &l, &raw, &err);
    if (st != ST_OK) {
        rc = ctl_fail(ctl, "workers", st, &err);
        goto free_flags;
    }
    if (json) {
        ctl_print_json(&raw);
    } else if (l.n == 0) {
        fprintf(stderr, "%s workers: no workers\n", ctl->prog);
    } else {
        struct table t;

        table_init(&t, sizeof(headers) / sizeof(headers[0]), headers);
        for (size_t i = 0; i < l.n; i++) {
            worker_row(&t, &l.workers[i]);
        }
        table_print(&t, stdout);
        table_cleanup(&t);
    }
    remote_worker_list_cleanup(&l);
free_flags:
    buf_cleanup(&raw);
    opts_free(opts, sizeof(opts) / sizeof(opts[0]));
    return rc;
}
