/* loadjson: report sections from merged metrics (see loadjson.h). */
#include "loadjson.h"

#include <stdio.h>

#include "clock.h"

static json_t *ms(int64_t ns)
{
    return json_real((double)ns / 1e6);
}

json_t *loadjson_time(int64_t unix_ns)
{
    char buf[CLOCK_RFC3339_LEN];

    return json_string(clock_format_rfc3339(unix_ns, CLOCK_UTC, 0, buf));
}

json_t *loadjson_stats(const struct hist *h)
{
    static const struct {
        const char *key;
        double p;
    } pcts[] = {{"p10", 10}, {"p25", 25}, {"p50", 50}, {"p75", 75},
                {"p90", 90}, {"p95", 95}, {"p99", 99}, {"p99_9", 99.9}};
    json_t *o = json_object();

    json_object_set_new(o, "count", json_integer((json_int_t)hist_count(h)));
    json_object_set_new(o, "min", ms(hist_min(h)));
    json_object_set_new(o, "mean", json_real(hist_mean(h) / 1e6));
    json_object_set_new(o, "max", ms(hist_max(h)));
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        json_object_set_new(o, pcts[i].key,
                            ms(hist_value_at_percentile(h, pcts[i].p)));
    }
    json_object_set_new(o, "p100", ms(hist_max(h)));
    return o;
}

static double per_s(uint64_t n, int64_t elapsed_ns)
{
    return elapsed_ns > 0 ? (double)n * 1e9 / (double)elapsed_ns : 0;
}

json_t *loadjson_request(const struct httpc_stats *s, int64_t elapsed_ns)
{
    json_t *o = json_object();
    json_t *status = json_object();
    json_t *classes = json_object();
    json_t *errors = json_object();
    json_t *timings = json_object();
    json_t *buckets = json_array();
    uint64_t cls[6] = {0};
    struct hist_range ranges[16];
    size_t nr;

    json_object_set_new(o, "step", json_string(s->step));
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "count", json_integer((json_int_t)s->requests));
    json_object_set_new(o, "failed", json_integer((json_int_t)s->failed));
    json_object_set_new(o, "rate", json_real(per_s(s->requests, elapsed_ns)));
    json_object_set_new(o, "bytes_sent",
                        json_integer((json_int_t)s->bytes_sent));
    json_object_set_new(o, "bytes_received",
                        json_integer((json_int_t)s->bytes_received));
    for (int code = 0; code < HTTPC_STATUS_SLOTS; code++) {
        char key[16];

        if (s->status[code] == 0) {
            continue;
        }
        snprintf(key, sizeof(key), "%d", code);
        json_object_set_new(status, key,
                            json_integer((json_int_t)s->status[code]));
        cls[code / 100 < 6 ? code / 100 : 0] += s->status[code];
    }
    for (int k = 1; k < 6; k++) {
        char key[8];

        if (cls[k] == 0) {
            continue;
        }
        snprintf(key, sizeof(key), "%dxx", k);
        json_object_set_new(classes, key, json_integer((json_int_t)cls[k]));
    }
    for (int e = 1; e < HTTPC_ERR_COUNT; e++) {
        if (s->errors[e] != 0) {
            json_object_set_new(errors, httpc_error_str(e),
                                json_integer((json_int_t)s->errors[e]));
        }
    }
    for (int t = 0; t < HTTPC_T_COUNT; t++) {
        json_object_set_new(timings, httpc_timing_str(t),
                            loadjson_stats(s->timings[t]));
    }
    nr = hist_auto_buckets(s->timings[HTTPC_T_LATENCY],
                           sizeof(ranges) / sizeof(ranges[0]), ranges);
    for (size_t i = 0; i < nr; i++) {
        json_t *b = json_object();

        json_object_set_new(b, "low", ms(ranges[i].low));
        json_object_set_new(b, "high", ms(ranges[i].high));
        json_object_set_new(b, "count",
                            json_integer((json_int_t)ranges[i].count));
        json_array_append_new(buckets, b);
    }
    json_object_set_new(o, "status", status);
    json_object_set_new(o, "status_classes", classes);
    json_object_set_new(o, "errors", errors);
    json_object_set_new(o, "timings", timings);
    json_object_set_new(o, "buckets", buckets);
    return o;
}

void loadjson_body(json_t *r, const struct snap *s, int64_t elapsed_ns,
                   int vus_max)
{
    json_t *it = json_object();
    json_t *checks = json_array();
    json_t *steps = json_array();
    json_t *reqs = json_array();
    json_t *vus = json_object();
    struct httpc_metrics *sum = httpc_metrics_sum(s->http);
    size_t n = httpc_metrics_count(s->http);

    json_object_set_new(it, "completed",
                        json_integer((json_int_t)s->iterations));
    json_object_set_new(it, "interrupted",
                        json_integer((json_int_t)s->interrupted));
    json_object_set_new(it, "dropped", json_integer((json_int_t)s->dropped));
    json_object_set_new(it, "rate",
                        json_real(per_s(s->iterations, elapsed_ns)));
    json_object_set_new(it, "duration", loadjson_stats(s->iteration_ns));
    json_object_set_new(r, "iterations", it);
    json_object_set_new(vus, "max", json_integer(vus_max));
    json_object_set_new(r, "vus", vus);
    for (size_t i = 0; i < s->n_checks; i++) {
        json_t *o = json_object();

        json_object_set_new(o, "name", json_string(s->checks[i].name));
        json_object_set_new(o, "passes",
                            json_integer((json_int_t)s->checks[i].passes));
        json_object_set_new(o, "fails",
                            json_integer((json_int_t)s->checks[i].fails));
        json_array_append_new(checks, o);
    }
    json_object_set_new(r, "checks", checks);
    for (size_t i = 0; i < s->n_steps; i++) {
        json_t *o = json_object();

        json_object_set_new(o, "name", json_string(s->steps[i].name));
        json_object_set_new(o, "duration",
                            loadjson_stats(s->steps[i].duration_ns));
        json_array_append_new(steps, o);
    }
    json_object_set_new(r, "steps", steps);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(
            reqs, loadjson_request(httpc_metrics_at(s->http, i), elapsed_ns));
    }
    json_object_set_new(r, "requests", reqs);
    json_object_set_new(r, "totals",
                        loadjson_request(httpc_metrics_at(sum, 0), elapsed_ns));
    httpc_metrics_free(sum);
}

json_t *loadjson_threshold(const struct threshold *t, const struct snap *s,
                           int64_t elapsed_ns, bool *passed)
{
    struct threshold_eval ev = threshold_evaluate(t, s, elapsed_ns);
    json_t *o = json_object();

    json_object_set_new(o, "source", json_string(threshold_source(t)));
    json_object_set_new(o, "metric", json_string(threshold_metric(t)));
    json_object_set_new(o, "condition", json_string(threshold_condition(t)));
    json_object_set_new(o, "observed", json_real(ev.observed));
    json_object_set_new(o, "passed", json_boolean(ev.passed));
    json_object_set_new(o, "has_data", json_boolean(ev.has_data));
    json_object_set_new(o, "abort_on_fail",
                        json_boolean(threshold_abort_on_fail(t)));
    *passed = ev.passed;
    return o;
}

json_t *loadjson_point(const struct snap *second, int64_t t_ns,
                       int64_t interval_ns)
{
    struct httpc_metrics *sum = httpc_metrics_sum(second->http);
    const struct httpc_stats *all = httpc_metrics_at(sum, 0);
    const struct hist *lat = all->timings[HTTPC_T_LATENCY];
    uint64_t passed = 0;
    uint64_t failed = 0;
    json_t *o = json_object();

    for (size_t i = 0; i < second->n_checks; i++) {
        passed += second->checks[i].passes;
        failed += second->checks[i].fails;
    }
    json_object_set_new(o, "t", json_real((double)t_ns / 1e9));
    json_object_set_new(o, "vus", json_integer(second->vus));
    json_object_set_new(o, "iterations",
                        json_integer((json_int_t)second->iterations));
    json_object_set_new(o, "dropped",
                        json_integer((json_int_t)second->dropped));
    json_object_set_new(o, "requests", json_integer((json_int_t)all->requests));
    json_object_set_new(o, "failed", json_integer((json_int_t)all->failed));
    json_object_set_new(o, "rps",
                        json_real((double)all->requests * 1e9 /
                                  (double)(interval_ns > 0 ? interval_ns : 1)));
    json_object_set_new(o, "checks_passed", json_integer((json_int_t)passed));
    json_object_set_new(o, "checks_failed", json_integer((json_int_t)failed));
    json_object_set_new(o, "p50", ms(hist_value_at_percentile(lat, 50)));
    json_object_set_new(o, "p95", ms(hist_value_at_percentile(lat, 95)));
    json_object_set_new(o, "p99", ms(hist_value_at_percentile(lat, 99)));
    json_object_set_new(o, "max", ms(hist_max(lat)));
    httpc_metrics_free(sum);
    return o;
}
