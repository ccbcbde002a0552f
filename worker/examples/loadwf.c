/* Example load-test workflows (docs/load.md).
 *
 *   get     one GET of TARGET_URL per iteration (a run param, or the
 *           environment variable): what the load benchmarks run.
 *   browse  two steps against TARGET_URL, with checks and a think time,
 *           to show steps, checks and per-VU state.
 *
 *   handoff-example-worker load get --param TARGET_URL=http://127.0.0.1:8080/ \
 *       --vus 50 --duration 30s
 */
#include <handoff.h>
#include <stdio.h>
#include <stdlib.h>

/* Looked up once per VU: the variable lookup is not free, the request
 * loop should be. */
static void init_target(hf_vu *vu)
{
    const char *url = hf_vu_param(vu, "TARGET_URL");

    hf_vu_set_state(vu, (void *)(url ? url : "http://127.0.0.1:8080/"));
}

static void get(hf_vu *vu)
{
    const hf_http_response *r = hf_http_get(vu, hf_vu_state(vu));

    hf_check(vu, "status is 2xx", r->status >= 200 && r->status < 300);
}

static void browse(hf_vu *vu)
{
    const char *base = hf_vu_state(vu);
    const hf_http_response *r;
    char url[1024];

    hf_step(vu, "home");
    r = hf_http_get(vu, base);
    hf_check(vu, "home is 200", r->status == 200);
    hf_step(vu, "item");
    snprintf(url, sizeof(url), "%s?item=%d", base, hf_vu_id(vu) % 10);
    r = hf_http_request(
        vu, &(struct hf_http_request){.url = url, .name = "GET item"});
    hf_check(vu, "item has a body", r->body_len > 0);
    hf_step(vu, NULL);
    hf_sleep(vu, 100); /* think time */
}

HF_SUITE(
    load, .namespace = "examples",
    .description = "Load-test workflows against TARGET_URL",
    .workflows = HF_WORKFLOWS(
        HF_WORKFLOW(get, .init = init_target,
                    .description = "one GET of TARGET_URL per iteration",
                    .thresholds = HF_THRESHOLDS("http_req_failed: rate<0.01")),
        HF_WORKFLOW(browse, .init = init_target,
                    .description = "two steps with checks and a pause",
                    .thresholds = HF_THRESHOLDS(
                        "checks: rate>0.99",
                        "http_req_duration{step:home}: p(95)<500ms"))));
