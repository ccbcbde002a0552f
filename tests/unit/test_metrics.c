/* Prometheus metrics: exact text output, escaping, histograms, threads,
 * the series cap, name checks, and promtool's verdict on the output. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"

static char *render(struct metrics *m)
{
    struct buf b;

    buf_init(&b, 0);
    buf_adds(&b, "");
    metrics_render(m, &b);
    return buf_detach(&b);
}

static double queue_depth(void *arg)
{
    return *(double *)arg;
}

static void test_metrics_renders_a_small_registry_exactly(void **state)
{
    static const char *const run_labels[] = {"namespace", "suite_name",
                                             "result"};
    static const char *const pool[] = {"pool"};
    static const double bounds[] = {0.005, 0.1, 1, 2.5};
    struct metrics *m = metrics_new();
    struct metrics_family *tests_run;
    struct metrics_family *running;
    struct metrics_family *lat;
    struct metrics_family *idle;
    struct metrics_family *unused;
    double depth = 7;
    char *text;

    (void)state;
    assert_int_equal(metrics_counter(m, "handoff_tests_run_total",
                                     "Tests run, by result.", 3, run_labels,
                                     &tests_run),
                     0);
    assert_int_equal(metrics_gauge(m, "handoff_testsuites_running",
                                   "Suite runs in progress.", 0, NULL,
                                   &running),
                     0);
    assert_int_equal(metrics_histogram(m, "handoff_job_duration_seconds",
                                       "Job run time.", 1, pool, 4, bounds,
                                       &lat),
                     0);
    assert_int_equal(metrics_counter(m, "handoff_idle_total",
                                     "Never incremented.", 0, NULL, &idle),
                     0);
    assert_int_equal(metrics_counter(m, "handoff_unused_total",
                                     "Labelled, never used.", 1, pool, &unused),
                     0);
    assert_int_equal(metrics_gauge_func(m, "handoff_queue_depth",
                                        "Jobs waiting.", queue_depth, &depth),
                     0);

    metrics_inc(tests_run, 3,
                (const char *const[]){"handoff", "selftest", "passed"}, 1);
    metrics_inc(tests_run, 3,
                (const char *const[]){"handoff", "selftest", "passed"}, 2);
    metrics_inc(tests_run, 3,
                (const char *const[]){"handoff", "selftest", "failed"}, 1);
    metrics_inc(tests_run, 3,
                (const char *const[]){"examples", "httpapi", "passed"}, 1);
    metrics_set(running, 0, NULL, 4);
    metrics_add(running, 0, NULL, -1.5);
    metrics_observe(lat, 1, (const char *const[]){"default"}, 0.004);
    metrics_observe(lat, 1, (const char *const[]){"default"}, 0.1);
    metrics_observe(lat, 1, (const char *const[]){"default"}, 3);
    metrics_observe(lat, 1, (const char *const[]){"big"}, 1);

    text = render(m);
    assert_string_equal(
        text,
        "# HELP handoff_idle_total Never incremented.\n"
        "# TYPE handoff_idle_total counter\n"
        "handoff_idle_total 0\n"
        "# HELP handoff_job_duration_seconds Job run time.\n"
        "# TYPE handoff_job_duration_seconds histogram\n"
        "handoff_job_duration_seconds_bucket{pool=\"big\",le=\"0.005\"} 0\n"
        "handoff_job_duration_seconds_bucket{pool=\"big\",le=\"0.1\"} 0\n"
        "handoff_job_duration_seconds_bucket{pool=\"big\",le=\"1\"} 1\n"
        "handoff_job_duration_seconds_bucket{pool=\"big\",le=\"2.5\"} 1\n"
        "handoff_job_duration_seconds_bucket{pool=\"big\",le=\"+Inf\"} 1\n"
        "handoff_job_duration_seconds_sum{pool=\"big\"} 1\n"
        "handoff_job_duration_seconds_count{pool=\"big\"} 1\n"
        "handoff_job_duration_seconds_bucket{pool=\"default\",le=\"0.005\"} "
        "1\n"
        "handoff_job_duration_seconds_bucket{pool=\"default\",le=\"0.1\"} 2\n"
        "handoff_job_duration_seconds_bucket{pool=\"default\",le=\"1\"} 2\n"
        "handoff_job_duration_seconds_bucket{pool=\"default\",le=\"2.5\"} 2\n"
        "handoff_job_duration_seconds_bucket{pool=\"default\",le=\"+Inf\"} "
        "3\n"
        "handoff_job_duration_seconds_sum{pool=\"default\"} 3.104\n"
        "handoff_job_duration_seconds_count{pool=\"default\"} 3\n"
        "# HELP handoff_queue_depth Jobs waiting.\n"
        "# TYPE handoff_queue_depth gauge\n"
        "handoff_queue_depth 7\n"
        "# HELP handoff_tests_run_total Tests run, by result.\n"
        "# TYPE handoff_tests_run_total counter\n"
        "handoff_tests_run_total{namespace=\"examples\",suite_name=\"httpapi\","
        "result=\"passed\"} 1\n"
        "handoff_tests_run_total{namespace=\"handoff\",suite_name="
        "\"selftest\",result=\"failed\"} 1\n"
        "handoff_tests_run_total{namespace=\"handoff\",suite_name="
        "\"selftest\",result=\"passed\"} 3\n"
        "# HELP handoff_testsuites_running Suite runs in progress.\n"
        "# TYPE handoff_testsuites_running gauge\n"
        "handoff_testsuites_running 2.5\n");
    free(text);

    /* The callback is read at each render. */
    depth = 9;
    text = render(m);
    assert_non_null(strstr(text, "\nhandoff_queue_depth 9\n"));
    free(text);
    metrics_free(m);
}

static void test_metrics_escapes_label_values_and_help(void **state)
{
    static const char *const labels[] = {"test", "detail"};
    struct metrics *m = metrics_new();
    struct metrics_family *f;
    char *text;

    (void)state;
    assert_int_equal(metrics_counter(m, "x_total",
                                     "Back\\slash in \"help\" stays.", 2,
                                     labels, &f),
                     0);
    metrics_inc(f, 2, (const char *const[]){"a\\b", "say \"hi\"\nbye"}, 1);
    metrics_inc(f, 2, (const char *const[]){NULL, "\xff\xfe"}, 1);
    text = render(m);
    assert_string_equal(
        text, "# HELP x_total Back\\\\slash in \"help\" stays.\n"
              "# TYPE x_total counter\n"
              "x_total{test=\"\",detail=\"\xef\xbf\xbd\xef\xbf\xbd\"} 1\n"
              "x_total{test=\"a\\\\b\",detail=\"say \\\"hi\\\"\\nbye\"} 1\n");
    free(text);
    metrics_free(m);
}

static void test_metrics_cuts_long_label_values(void **state)
{
    static const char *const labels[] = {"v"};
    struct metrics *m = metrics_new();
    struct metrics_family *f;
    char value[METRICS_MAX_VALUE_LEN + 100];
    char *text;
    char *start;

    (void)state;
    memset(value, 'x', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    assert_int_equal(metrics_gauge(m, "g", "A gauge.", 1, labels, &f), 0);
    metrics_set(f, 1, (const char *const[]){value}, 1);
    /* A second long value with the same first bytes is the same series. */
    value[METRICS_MAX_VALUE_LEN + 5] = 'y';
    metrics_set(f, 1, (const char *const[]){value}, 2);
    text = render(m);
    start = strstr(text, "g{v=\"");
    assert_non_null(start);
    assert_int_equal(strspn(start + 5, "x"), METRICS_MAX_VALUE_LEN);
    assert_string_equal(start + 5 + METRICS_MAX_VALUE_LEN, "\"} 2\n");
    free(text);
    metrics_free(m);
}

static void test_metrics_histogram_bounds_are_inclusive(void **state)
{
    static const double bounds[] = {1, 2};
    struct metrics *m = metrics_new();
    struct metrics_family *h;
    char *text;

    (void)state;
    assert_int_equal(
        metrics_histogram(m, "h_seconds", "H.", 0, NULL, 2, bounds, &h), 0);
    metrics_observe(h, 0, NULL, 1);        /* le="1" */
    metrics_observe(h, 0, NULL, 1.000001); /* le="2" */
    metrics_observe(h, 0, NULL, 2);        /* le="2" */
    metrics_observe(h, 0, NULL, INFINITY); /* +Inf only */
    metrics_observe(h, 0, NULL, NAN);      /* ignored */
    metrics_observe(h, 0, NULL, -5);       /* le="1" */
    text = render(m);
    assert_string_equal(text, "# HELP h_seconds H.\n"
                              "# TYPE h_seconds histogram\n"
                              "h_seconds_bucket{le=\"1\"} 2\n"
                              "h_seconds_bucket{le=\"2\"} 4\n"
                              "h_seconds_bucket{le=\"+Inf\"} 5\n"
                              "h_seconds_sum +Inf\n"
                              "h_seconds_count 5\n");
    free(text);
    metrics_free(m);
}

static void test_metrics_formats_values_prometheus_can_parse(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {-3, "-3"},
        {123456789012, "123456789012"},
        {999999999999999, "999999999999999"},
        {1e15, "1e+15"},
        {0.1, "0.1"},
        {2.5, "2.5"},
        {1.0 / 3, "0.3333333333333333"},
        {1.5e-7, "1.5e-07"},
        {-0.25, "-0.25"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_reset(&b);
        metrics_format_value(&b, cases[i].v);
        assert_string_equal(buf_str(&b), cases[i].text);
        if (isfinite(cases[i].v)) {
            assert_true(strtod(buf_str(&b), NULL) == cases[i].v);
        }
    }
    buf_cleanup(&b);
}

struct hammer {
    struct metrics_family *f;
    struct metrics_family *h;
    int id;
};

#define HAMMER_ROUNDS 100000

static void *hammer(void *arg)
{
    struct hammer *w = arg;
    const char *results[] = {"passed", "failed"};

    for (int i = 0; i < HAMMER_ROUNDS; i++) {
        const char *v[] = {results[i % 2]};

        metrics_inc(w->f, 1, v, 1);
        if (i % 10 == 0) {
            metrics_observe(w->h, 0, NULL, 0.5);
        }
    }
    return NULL;
}

static void test_metrics_counts_exactly_from_four_threads(void **state)
{
    static const char *const labels[] = {"result"};
    static const double bounds[] = {1};
    struct metrics *m = metrics_new();
    struct hammer w[4];
    pthread_t t[4];
    char *text;

    (void)state;
    assert_int_equal(metrics_counter(m, "c_total", "C.", 1, labels, &w[0].f),
                     0);
    assert_int_equal(
        metrics_histogram(m, "d_seconds", "D.", 0, NULL, 1, bounds, &w[0].h),
        0);
    for (int i = 0; i < 4; i++) {
        w[i] = w[0];
        w[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    /* Render while they run: it must not crash or deadlock. */
    for (int i = 0; i < 20; i++) {
        free(render(m));
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    text = render(m);
    assert_non_null(strstr(text, "c_total{result=\"passed\"} 200000\n"));
    assert_non_null(strstr(text, "c_total{result=\"failed\"} 200000\n"));
    assert_non_null(strstr(text, "d_seconds_count 40000\n"));
    assert_non_null(strstr(text, "d_seconds_sum 20000\n"));
    free(text);
    metrics_free(m);
}

static void test_metrics_caps_series_and_keeps_the_existing_ones(void **state)
{
    static const char *const labels[] = {"suite"};
    struct metrics *m = metrics_new();
    struct metrics_family *f;
    char *text;
    char name[16];

    (void)state;
    assert_int_equal(metrics_counter(m, "runs_total", "R.", 1, labels, &f), 0);
    metrics_set_max_series(f, 3);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        metrics_inc(f, 1, (const char *const[]){name}, 1);
    }
    metrics_inc(f, 1, (const char *const[]){"s1"}, 5);
    text = render(m);
    assert_string_equal(text, "# HELP runs_total R.\n"
                              "# TYPE runs_total counter\n"
                              "runs_total{suite=\"s0\"} 1\n"
                              "runs_total{suite=\"s1\"} 6\n"
                              "runs_total{suite=\"s2\"} 1\n");
    free(text);
    metrics_free(m);
}

static void test_metrics_ignores_negative_counter_increments(void **state)
{
    struct metrics *m = metrics_new();
    struct metrics_family *f;
    char *text;

    (void)state;
    assert_int_equal(metrics_counter(m, "n_total", "N.", 0, NULL, &f), 0);
    metrics_inc(f, 0, NULL, 2);
    metrics_inc(f, 0, NULL, -1);
    metrics_inc(f, 0, NULL, NAN);
    text = render(m);
    assert_non_null(strstr(text, "\nn_total 2\n"));
    free(text);
    metrics_free(m);
}

static void collect_pools(void *arg, struct metrics_sink *sink)
{
    (void)arg;
    metrics_sink_put(sink, 1, (const char *const[]){"gpu"}, 1);
    metrics_sink_put(sink, 1, (const char *const[]){"default"}, 3);
    metrics_sink_put(sink, 1, (const char *const[]){"gpu"}, 2); /* wins */
}

static void test_metrics_collect_callback_emits_labelled_series(void **state)
{
    static const char *const labels[] = {"pool"};
    struct metrics *m = metrics_new();
    char *text;

    (void)state;
    assert_int_equal(metrics_gauge_collect(m, "workers", "Workers by pool.", 1,
                                           labels, collect_pools, NULL),
                     0);
    for (int i = 0; i < 2; i++) {
        text = render(m);
        assert_string_equal(text, "# HELP workers Workers by pool.\n"
                                  "# TYPE workers gauge\n"
                                  "workers{pool=\"default\"} 3\n"
                                  "workers{pool=\"gpu\"} 2\n");
        free(text);
    }
    metrics_free(m);
}

static void test_metrics_rejects_bad_names_and_labels(void **state)
{
    static const char *const ok[] = {"a"};
    static const char *const reserved[] = {"__a"};
    static const char *const twice[] = {"a", "a"};
    static const char *const bad[] = {"A"};
    static const char *const le[] = {"le"};
    static const double bounds[] = {1, 2};
    static const double unsorted[] = {2, 1};
    struct metrics *m = metrics_new();
    struct metrics_family *f;

    (void)state;
    log_setup("test_metrics", LOG_OFF);
    assert_int_equal(metrics_counter(m, "runs", "R.", 0, NULL, &f), ST_INVALID);
    assert_int_equal(metrics_counter(m, "_total", "R.", 0, NULL, &f),
                     ST_INVALID);
    assert_int_equal(metrics_gauge(m, "runs_total", "R.", 0, NULL, &f),
                     ST_INVALID);
    assert_int_equal(metrics_gauge(m, "Runs", "R.", 0, NULL, &f), ST_INVALID);
    assert_int_equal(metrics_gauge(m, "9runs", "R.", 0, NULL, &f), ST_INVALID);
    assert_int_equal(metrics_gauge(m, "a:b", "R.", 0, NULL, &f), ST_INVALID);
    assert_int_equal(metrics_gauge(m, "", "R.", 0, NULL, &f), ST_INVALID);
    assert_int_equal(metrics_gauge(m, "jobs_count", "J.", 0, NULL, &f),
                     ST_INVALID);
    assert_int_equal(metrics_gauge(m, "g", "", 0, NULL, &f), ST_INVALID);
    assert_int_equal(metrics_gauge(m, "g", "two\nlines", 0, NULL, &f),
                     ST_INVALID);
    assert_int_equal(metrics_gauge(m, "g", "G.", 1, reserved, &f), ST_INVALID);
    assert_int_equal(metrics_gauge(m, "g", "G.", 2, twice, &f), ST_INVALID);
    assert_int_equal(metrics_gauge(m, "g", "G.", 1, bad, &f), ST_INVALID);
    assert_int_equal(
        metrics_gauge(m, "g", "G.", METRICS_MAX_LABELS + 1, ok, &f),
        ST_INVALID);
    assert_int_equal(metrics_histogram(m, "h", "H.", 1, le, 2, bounds, &f),
                     ST_INVALID);
    assert_int_equal(metrics_histogram(m, "h", "H.", 0, NULL, 2, unsorted, &f),
                     ST_INVALID);
    assert_int_equal(metrics_histogram(m, "h", "H.", 0, NULL, 0, bounds, &f),
                     ST_INVALID);
    assert_int_equal(metrics_histogram(m, "h", "H.", 0, NULL, 1,
                                       (const double[]){INFINITY}, &f),
                     ST_INVALID);
    assert_int_equal(metrics_gauge_func(m, "q", "Q.", NULL, NULL), ST_INVALID);

    /* Names, and the names histograms' samples take, are unique. */
    assert_int_equal(metrics_histogram(m, "h", "H.", 1, ok, 2, bounds, &f), 0);
    assert_int_equal(metrics_gauge(m, "h", "G.", 0, NULL, &f), ST_CONFLICT);
    assert_int_equal(
        metrics_histogram(m, "h_count", "G.", 0, NULL, 2, bounds, &f),
        ST_CONFLICT);
    assert_int_equal(metrics_counter(m, "h_total", "T.", 0, NULL, &f), 0);
    assert_int_equal(metrics_counter(m, "h_total", "T.", 0, NULL, &f),
                     ST_CONFLICT);
    log_setup("test_metrics", LOG_INFO);
    metrics_free(m);
}

/* Runs promtool check metrics on text; returns its exit status, with its
 * output in out. Fails the test if promtool cannot run: deploy/install.sh
 * installs it, and a missing checker must not pass silently. */
static int promtool_check(const char *text, char *out, size_t outlen)
{
    char path[] = "/tmp/handoff-metrics-XXXXXX";
    char cmd[256];
    FILE *f;
    FILE *p;
    size_t n;
    int fd;
    int status;

    assert_int_equal(system("command -v promtool >/dev/null 2>&1"), 0);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    status = pclose(p);
    unlink(path);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_metrics_output_passes_promtool(void **state)
{
    static const char *const run_labels[] = {"namespace", "suite_name",
                                             "result"};
    static const char *const labels[] = {"pool", "detail"};
    static const double bounds[] = {0.001, 0.01, 0.1, 1, 10};
    struct metrics *m = metrics_new();
    struct metrics_family *c;
    struct metrics_family *g;
    struct metrics_family *h;
    double depth = 0.5;
    char out[4096];
    char *text;

    (void)state;
    assert_int_equal(metrics_counter(m, "handoff_tests_run_total",
                                     "Tests run, by result.", 3, run_labels,
                                     &c),
                     0);
    assert_int_equal(metrics_gauge(m, "handoff_workers_connected",
                                   "Connected workers \\ by pool.", 2, labels,
                                   &g),
                     0);
    assert_int_equal(metrics_histogram(m, "handoff_request_duration_seconds",
                                       "HTTP request duration.", 2, labels, 5,
                                       bounds, &h),
                     0);
    assert_int_equal(metrics_gauge_func(m, "handoff_queue_depth",
                                        "Jobs waiting.", queue_depth, &depth),
                     0);
    metrics_inc(c, 3, (const char *const[]){"handoff", "selftest", "passed"},
                1e6);
    metrics_inc(c, 3, (const char *const[]){"handoff", "sel\"f", "failed"},
                0.5);
    metrics_set(g, 2, (const char *const[]){"a\\b", "line\nbreak"}, NAN);
    metrics_set(g, 2, (const char *const[]){"b", "\xc3\x28"}, -INFINITY);
    metrics_set(g, 2, (const char *const[]){"c", ""}, 1e300);
    metrics_observe(h, 2, (const char *const[]){"default", "x"}, 0.0004);
    metrics_observe(h, 2, (const char *const[]){"default", "x"}, 123);
    metrics_observe(h, 2, (const char *const[]){"gpu", "y"}, 1.5e-9);
    text = render(m);
    if (promtool_check(text, out, sizeof(out)) != 0) {
        print_error("promtool check metrics:\n%s\non:\n%s", out, text);
        fail();
    }
    free(text);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_renders_a_small_registry_exactly),
        cmocka_unit_test(test_metrics_escapes_label_values_and_help),
        cmocka_unit_test(test_metrics_cuts_long_label_values),
        cmocka_unit_test(test_metrics_histogram_bounds_are_inclusive),
        cmocka_unit_test(test_metrics_formats_values_prometheus_can_parse),
        cmocka_unit_test(test_metrics_counts_exactly_from_four_threads),
        cmocka_unit_test(test_metrics_caps_series_and_keeps_the_existing_ones),
        cmocka_unit_test(test_metrics_ignores_negative_counter_increments),
        cmocka_unit_test(test_metrics_collect_callback_emits_labelled_series),
        cmocka_unit_test(test_metrics_rejects_bad_names_and_labels),
        cmocka_unit_test(test_metrics_output_passes_promtool),
    };

    log_setup("test_metrics", LOG_INFO);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
