/* Load workflows of the end-to-end tests (tests/e2e/test_load_dist.c):
 * `hit` GETs TARGET_URL once per iteration; its setup fetches
 * TARGET_URL?setup and hands a token to every VU, which checks it arrived;
 * its teardown fetches TARGET_URL?teardown with the token. `vuid` counts
 * a check named after its VU id ("vu 3"); `nap` sleeps 30 s and checks
 * whether the sleep was cut short ("cut short"). */
#include <handoff.h>
#include <stdio.h>
#include <string.h>

#define TOKEN "setup-token-42"

static void init_target(hf_vu *vu)
{
    const char *url = hf_vu_param(vu, "TARGET_URL");

    hf_vu_set_state(vu, (void *)(url ? url : "http://127.0.0.1:1/"));
}

static void hit(hf_vu *vu)
{
    const hf_http_response *r = hf_http_get(vu, hf_vu_state(vu));
    size_t len = 0;
    const char *data = hf_vu_setup_data(vu, &len);

    hf_check(vu, "status is 200", r->status == 200);
    hf_check(vu, "setup data arrived",
             data != NULL && len == strlen(TOKEN) &&
                 memcmp(data, TOKEN, len) == 0);
}

static void setup(hf_vu *vu)
{
    const char *url = hf_vu_param(vu, "TARGET_URL");

    if (url != NULL) {
        (void)hf_http_get(vu, url);
    }
    hf_setup_data_set(vu, TOKEN, strlen(TOKEN));
}

static void teardown(hf_vu *vu)
{
    const char *url = hf_vu_param(vu, "TARGET_URL");

    if (url != NULL) {
        (void)hf_http_get(vu, url);
    }
}

static void vuid(hf_vu *vu)
{
    char name[32];

    snprintf(name, sizeof(name), "vu %d", hf_vu_id(vu));
    hf_check(vu, name, true);
    hf_sleep(vu, 10);
}

static void nap(hf_vu *vu)
{
    hf_sleep(vu, 30000);
    hf_check(vu, "cut short", hf_vu_stopping(vu));
}

HF_SUITE(e2eload, .namespace = "test",
         .description = "load workflows for the end-to-end tests",
         .workflows = HF_WORKFLOWS(HF_WORKFLOW(hit, .init = init_target,
                                               .setup = setup,
                                               .teardown = teardown),
                                   HF_WORKFLOW(vuid), HF_WORKFLOW(nap)));
