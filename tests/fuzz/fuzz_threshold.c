/* libFuzzer target for threshold_parse and threshold_evaluate: any bytes
 * must be refused with a one-line message and nothing allocated, or parse
 * into a threshold whose canonical text parses back the same and which
 * evaluates on an empty and on a filled snap without trouble. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpc_int.h"
#include "mem.h"
#include "snap.h"
#include "threshold.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct snap *empty;
static struct snap *filled;

static void request(struct snap *s, const char *step, const char *name,
                    int status, int64_t ns)
{
    struct httpc_response r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.error = status == 0 ? HTTPC_ERR_RESET : HTTPC_ERR_NONE;
    for (int t = 0; t < HTTPC_T_COUNT; t++) {
        r.timings_ns[t] = ns / (t + 1);
    }
    r.bytes_sent = 10;
    r.bytes_received = 100;
    (void)httpc_metrics_record(s->http, step, name, strlen(name), &r);
}

static void make_snaps(void)
{
    if (snap_new(NULL, &empty) != 0 || snap_new(NULL, &filled) != 0) {
        abort();
    }
    for (int i = 0; i < 50; i++) {
        request(filled, "", "GET /", 200, INT64_C(1000) << (i % 30));
        request(filled, "checkout", "login", i % 7 ? 200 : 503, i * 100000);
        request(filled, "checkout", "a,b", i % 5 ? 302 : 0, 7);
        snap_check(filled, "status is 200", i % 3 != 0);
        snap_check(filled, "ok", true);
        snap_step(filled, "login", i * 1000000);
        snap_iteration(filled, INT64_C(1) << (i % 40));
    }
    filled->dropped = 4;
    filled->vus = 3;
    filled->vus_max = 9;
}

static void check_eval(const struct threshold *t, const struct snap *s)
{
    static const int64_t elapsed[] = {0, -1, 1, 1000000000, INT64_MAX};

    for (size_t i = 0; i < sizeof(elapsed) / sizeof(elapsed[0]); i++) {
        struct threshold_eval ev = threshold_evaluate(t, s, elapsed[i]);

        if (!isfinite(ev.observed) || ev.observed < 0 ||
            (!ev.has_data && (!ev.passed || ev.observed != 0))) {
            abort();
        }
    }
}

/* The canonical text, with abort_on_fail and its delay, must parse into
 * the same threshold. */
static void check_round_trip(const struct threshold *t)
{
    int64_t delay = threshold_abort_delay_ns(t);
    char *text;
    struct threshold *u = NULL;
    char err[THRESHOLD_ERR_SIZE];
    int64_t diff;

    if (threshold_abort_on_fail(t)) {
        text =
            mem_printf("%s: %s abort_on_fail=%llds%lldns", threshold_metric(t),
                       threshold_condition(t), (long long)(delay / 1000000000),
                       (long long)(delay % 1000000000));
    } else {
        text =
            mem_printf("%s: %s", threshold_metric(t), threshold_condition(t));
    }
    if (threshold_parse(text, &u, err, sizeof(err)) != 0 ||
        strcmp(threshold_metric(u), threshold_metric(t)) != 0 ||
        strcmp(threshold_condition(u), threshold_condition(t)) != 0 ||
        threshold_abort_on_fail(u) != threshold_abort_on_fail(t)) {
        abort();
    }
    /* Delays go through a double: equal to within its precision. */
    diff = threshold_abort_delay_ns(u) - delay;
    if (diff < 0) {
        diff = -diff;
    }
    if ((double)diff > (double)delay * 1e-15 + 1) {
        abort();
    }
    threshold_free(u);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[THRESHOLD_TEXT_MAX + 64];
    char err[THRESHOLD_ERR_SIZE];
    char small[16];
    struct threshold *t = NULL;
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;

    if (empty == NULL) {
        make_snaps();
    }
    memcpy(text, data, n);
    text[n] = '\0';
    memset(err, 0x7f, sizeof(err));
    if (threshold_parse(text, &t, err, sizeof(err)) != 0) {
        if (t != NULL || memchr(err, '\0', sizeof(err)) == NULL ||
            strncmp(err, "threshold \"", 11) != 0 || strchr(err, '\n') ||
            threshold_parse(text, &t, small, sizeof(small)) != ST_INVALID ||
            strlen(small) != sizeof(small) - 1 ||
            threshold_parse(text, &t, NULL, 0) != ST_INVALID) {
            abort();
        }
        return 0;
    }
    if (strcmp(threshold_source(t), text) != 0 ||
        threshold_metric(t)[0] == '\0' || threshold_condition(t)[0] == '\0' ||
        threshold_abort_delay_ns(t) < 0 ||
        (!threshold_abort_on_fail(t) && threshold_abort_delay_ns(t) != 0)) {
        abort();
    }
    check_round_trip(t);
    check_eval(t, empty);
    check_eval(t, filled);
    threshold_free(t);
    return 0;
}
