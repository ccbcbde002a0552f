/* The load section of a run request (controller/loadreq.c): every field
 * checked, errors naming the field, thresholds refused with the parser's
 * message, and POST /api/v1/runs alone accepting it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "loadreq.h"
#include "runreq.h"

static int parse(const char *load, struct wire_load **out,
                 struct runreq_error *err)
{
    json_t *v = json_loads(load, 0, NULL);
    int rc;

    assert_non_null(v);
    rc = loadreq_parse(v, out, err);
    json_decref(v);
    return rc;
}

static void test_loadreq_refuses_bad_fields_naming_them(void **state)
{
    static const struct {
        const char *load;
        const char *code;
        const char *message;
    } cases[] = {
        {"[]", "invalid_argument", "field \"load\": want an object"},
        {"{}", "invalid_argument", "field \"load.workflow\" is required"},
        {"{\"workflow\":\"a b\"}", "invalid_argument", "load.workflow"},
        {"{\"workflow\":\"w\",\"nope\":1}", "unknown_field",
         "unknown field \"load.nope\""},
        {"{\"workflow\":\"w\",\"executor\":\"fast\"}", "invalid_argument",
         "field \"load.executor\": want one of"},
        {"{\"workflow\":\"w\",\"vus\":1.5}", "invalid_argument",
         "field \"load.vus\": want a whole number"},
        {"{\"workflow\":\"w\",\"vus\":\"3\"}", "invalid_argument",
         "field \"load.vus\": want a number"},
        {"{\"workflow\":\"w\",\"rate\":0}", "invalid_argument",
         "field \"load.rate\": must be above 0"},
        {"{\"workflow\":\"w\",\"duration\":\"soon\"}", "invalid_argument",
         "field \"load.duration\": not a duration"},
        {"{\"workflow\":\"w\",\"time_unit\":\"0s\"}", "invalid_argument",
         "field \"load.time_unit\": must be at least 1ms"},
        {"{\"workflow\":\"w\",\"stages\":[]}", "invalid_argument",
         "field \"load.stages\""},
        {"{\"workflow\":\"w\",\"stages\":[{\"duration\":\"1s\",\"target\":1},"
         "{\"duration\":\"1s\",\"target\":-1}]}",
         "invalid_argument", "field \"load.stages[1]\""},
        {"{\"workflow\":\"w\",\"thresholds\":[\"http_req_duration: "
         "p(95)<3xx\"]}",
         "invalid_argument",
         "field \"load.thresholds[0]\": threshold \"http_req_duration: "
         "p(95)<3xx\": bad value \"3xx\""},
        {"{\"workflow\":\"w\",\"thresholds\":[1]}", "invalid_argument",
         "field \"load.thresholds[0]\": want a string"},
        {"{\"workflow\":\"w\",\"shards\":0}", "invalid_argument",
         "field \"load.shards\""},
        {"{\"workflow\":\"w\",\"max_vus\":2000000}", "invalid_argument",
         "field \"load.max_vus\""},
        {"{\"workflow\":\"w\",\"graceful_ramp_down\":\"soon\"}",
         "invalid_argument",
         "field \"load.graceful_ramp_down\": not a duration"},
        {"{\"workflow\":\"w\",\"graceful_ramp_down\":30}", "invalid_argument",
         "field \"load.graceful_ramp_down\": not a duration"},
        {"{\"workflow\":\"w\",\"executor\":\"constant-vus\","
         "\"graceful_ramp_down\":\"10s\"}",
         "invalid_argument",
         "field \"load.graceful_ramp_down\": only for the ramping-vus executor "
         "(this one is constant-vus)"},
        {"{\"workflow\":\"w\",\"graceful_rampdown\":\"10s\"}", "unknown_field",
         "unknown field \"load.graceful_rampdown\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wire_load *l = NULL;
        struct runreq_error err = {0};

        if (parse(cases[i].load, &l, &err) != ST_INVALID) {
            fail_msg("%s: accepted", cases[i].load);
        }
        assert_null(l);
        assert_string_equal(err.code, cases[i].code);
        if (strstr(err.message, cases[i].message) == NULL) {
            fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].load, err.message,
                     cases[i].message);
        }
    }
}

static void test_loadreq_accepts_a_full_section(void **state)
{
    struct wire_load *l = NULL;
    struct runreq_error err = {0};

    (void)state;
    assert_int_equal(
        parse("{\"workflow\":\"get\",\"executor\":\"ramping-arrival-rate\","
              "\"rate\":10,\"time_unit\":\"1s\",\"stages\":[{\"duration\":"
              "\"30s\",\"target\":100},{\"duration\":\"1m\",\"target\":0}],"
              "\"pre_allocated_vus\":5,\"max_vus\":100,\"graceful_stop\":"
              "\"0s\",\"thresholds\":[\"http_req_failed: rate<0.01 "
              "abort_on_fail\"],\"shards\":4}",
              &l, &err),
        ST_OK);
    assert_string_equal(l->workflow, "get");
    assert_int_equal(l->phase, WIRE_LOAD_SETUP);
    assert_string_equal(l->executor, "ramping-arrival-rate");
    assert_int_equal(l->n_stages, 2);
    assert_true(l->stages[0].duration_ms == 30000 &&
                l->stages[1].duration_ms == 60000);
    assert_true(l->graceful_stop_ms == 0);
    assert_int_equal(l->shards, 4);
    assert_int_equal(l->n_thresholds, 1);
    assert_true(l->graceful_ramp_down_ms < 0);
    wire_load_free(l);
    /* gracefulRampDown on ramping-vus, or with no executor named (the
     * setup job resolves it, and refuses it on any other). */
    assert_int_equal(parse("{\"workflow\":\"get\",\"executor\":\"ramping-vus\","
                           "\"stages\":[{\"duration\":\"10s\",\"target\":5}],"
                           "\"graceful_ramp_down\":\"1m30s\"}",
                           &l, &err),
                     ST_OK);
    assert_true(l->graceful_ramp_down_ms == 90000);
    wire_load_free(l);
    assert_int_equal(
        parse("{\"workflow\":\"get\",\"graceful_ramp_down\":\"0s\"}", &l, &err),
        ST_OK);
    assert_true(l->graceful_ramp_down_ms == 0);
    wire_load_free(l);
    /* Defaults: unset fields stay unset for the worker to resolve. */
    assert_int_equal(parse("{\"workflow\":\"get\"}", &l, &err), ST_OK);
    assert_string_equal(l->executor, "");
    assert_true(l->graceful_stop_ms < 0);
    assert_true(l->graceful_ramp_down_ms < 0);
    assert_int_equal(l->shards, 0);
    wire_load_free(l);
}

static void test_runreq_takes_load_only_where_allowed(void **state)
{
    static const char body[] =
        "{\"suite\":\"s\",\"load\":{\"workflow\":\"get\",\"vus\":2}}";
    struct run_request r;
    struct runreq_error err = {0};

    (void)state;
    assert_int_equal(runreq_parse_ex(body, strlen(body), false, true, &r, &err),
                     ST_OK);
    assert_non_null(r.load);
    assert_int_equal(r.load->vus, 2);
    runreq_cleanup(&r);
    assert_int_equal(runreq_parse(body, strlen(body), false, &r, &err),
                     ST_INVALID);
    assert_string_equal(err.code, "unknown_field");
    assert_non_null(strstr(err.message, "\"load\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loadreq_refuses_bad_fields_naming_them),
        cmocka_unit_test(test_loadreq_accepts_a_full_section),
        cmocka_unit_test(test_runreq_takes_load_only_where_allowed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
