/* `worker load WORKFLOW [flags]`: a local load run, with a live line every
 * second on stderr, the end-of-test summary on stdout, the reports asked
 * for, and the exit status from the thresholds. */
#include "loadcli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "clock.h"
#include "loadreport.h"
#include "loadrun.h"
#include "mem.h"
#include "registry.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2

static volatile sig_atomic_t stop_flag;

static void on_sigint(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct lc_opts {
    const char *executor;
    const char *vus;
    const char *duration;
    const char *rate;
    const char *time_unit;
    const char *pre_allocated;
    const char *max_vus;
    const char *stages;
    const char *iterations;
    const char *graceful_stop;
    const char *graceful_ramp_down;
    const char *threads;
    const char *stack;
    const char *timeout;
    const char *ca_file;
    const char *service_dir;
    const char *json;
    const char *html;
    const char *junit;
    const char *thresholds[LOADRUN_MAX_THRESHOLDS + 1];
    size_t n_thresholds;
    struct result_kv *params;
    size_t n_params;
    bool no_thresholds;
    bool quiet;
    bool insecure;
    bool color;
};

void loadcli_usage(FILE *f)
{
    fprintf(
        f,
        "load WORKFLOW flags (WORKFLOW or SUITE/WORKFLOW):\n"
        "  --executor NAME          constant-vus, ramping-vus, "
        "constant-arrival-rate,\n"
        "                           ramping-arrival-rate, per-vu-iterations, "
        "shared-iterations\n"
        "                           (default: from the flags given, as k6 "
        "does)\n"
        "  --vus N                  VUs (arrival-rate: pre-allocated)\n"
        "  --duration D             e.g. 30s, 5m (iterations executors: max "
        "duration)\n"
        "  --rate R                 iterations per time unit (arrival-rate)\n"
        "  --time-unit D            the rate's unit (default 1s)\n"
        "  --pre-allocated-vus N    arrival-rate: VUs made before the start\n"
        "  --max-vus N              arrival-rate: VUs at most (more starts "
        "are dropped)\n"
        "  --stages S               ramping: DURATION:TARGET[,...], e.g. "
        "30s:100,1m:100,10s:0\n"
        "  --iterations N           per-vu-iterations (per VU), "
        "shared-iterations (in all)\n"
        "  --graceful-stop D        time running iterations get at the end "
        "(default 30s)\n"
        "  --graceful-ramp-down D   ramping-vus: time a VU the falling "
        "target no longer\n"
        "                           wants gets to end its iteration "
        "(default 30s; 0: cut\n"
        "                           it at once)\n"
        "  --threshold T            e.g. 'http_req_duration: p(95)<300ms' "
        "(repeatable)\n"
        "  --no-thresholds          ignore the workflow's own thresholds\n"
        "  --param KEY=VALUE        a variable for hf_vu_param (repeatable)\n"
        "  --service-dir DIR        read DIR/.env and DIR/env.default\n"
        "  --threads N              event-loop threads (default: the CPUs)\n"
        "  --stack BYTES            stack per VU (default 16384)\n"
        "  --timeout D              per request (default 60s)\n"
        "  --ca-file FILE           https: trust these PEM certificates, "
        "not the system's\n"
        "  --insecure               https: do not verify certificates\n"
        "  --json FILE, --html FILE, --junit FILE   reports\n"
        "  --quiet                  no live line\n"
        "exit status: 0 thresholds passed, 1 a threshold failed or the run "
        "was aborted,\n"
        "2 usage error\n");
}

static int usage_err(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_err(const char *prog, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s load: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

static int parse_flags(const char *prog, int argc, char **argv,
                       struct lc_opts *o)
{
    struct {
        const char *name;
        const char **dst;
    } vals[] = {{"executor", &o->executor},
                {"vus", &o->vus},
                {"duration", &o->duration},
                {"rate", &o->rate},
                {"time-unit", &o->time_unit},
                {"pre-allocated-vus", &o->pre_allocated},
                {"max-vus", &o->max_vus},
                {"stages", &o->stages},
                {"iterations", &o->iterations},
                {"graceful-stop", &o->graceful_stop},
                {"graceful-ramp-down", &o->graceful_ramp_down},
                {"threads", &o->threads},
                {"stack", &o->stack},
                {"timeout", &o->timeout},
                {"ca-file", &o->ca_file},
                {"service-dir", &o->service_dir},
                {"json", &o->json},
                {"html", &o->html},
                {"junit", &o->junit}};

    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        bool matched = false;
        int rc;

        for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
            rc = cli_flag_value(argc, argv, &i, vals[k].name, &v);
            if (rc < 0) {
                return usage_err(prog, "--%s needs a value", vals[k].name);
            }
            if (rc > 0) {
                *vals[k].dst = v;
                matched = true;
                break;
            }
        }
        if (matched) {
            continue;
        }
        rc = cli_flag_value(argc, argv, &i, "threshold", &v);
        if (rc < 0) {
            return usage_err(prog, "--threshold needs a value");
        }
        if (rc > 0) {
            if (o->n_thresholds == LOADRUN_MAX_THRESHOLDS) {
                return usage_err(prog, "too many --threshold flags");
            }
            o->thresholds[o->n_thresholds++] = v;
            continue;
        }
        rc = cli_flag_value(argc, argv, &i, "param", &v);
        if (rc < 0) {
            return usage_err(prog, "--param needs KEY=VALUE");
        }
        if (rc > 0) {
            const char *eq = strchr(v, '=');
            char *key;

            if (eq == NULL || eq == v) {
                return usage_err(prog, "--param \"%s\": want KEY=VALUE", v);
            }
            key = mem_strndup(v, (size_t)(eq - v));
            result_kv_set(&o->params, &o->n_params, key, eq + 1);
            free(key);
            continue;
        }
        if (strcmp(argv[i], "--no-thresholds") == 0) {
            o->no_thresholds = true;
        } else if (strcmp(argv[i], "--insecure") == 0) {
            o->insecure = true;
        } else if (strcmp(argv[i], "--quiet") == 0 ||
                   strcmp(argv[i], "-q") == 0) {
            o->quiet = true;
        } else {
            return usage_err(prog,
                             "unknown flag \"%s\" (%s help lists the flags)",
                             argv[i], prog);
        }
    }
    return 0;
}

static int num_flag(const char *prog, const char *flag, const char *v,
                    double min, double max, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !isfinite(d) || d < min ||
        d > max) {
        fprintf(stderr, "%s load: --%s \"%s\": want a number from %g to %g\n",
                prog, flag, v, min, max);
        return EXIT_USAGE;
    }
    *out = d;
    return 0;
}

static int int_flag(const char *prog, const char *flag, const char *v,
                    double min, double max, double *out)
{
    int rc = num_flag(prog, flag, v, min, max, out);

    if (rc == 0 && floor(*out) != *out) {
        fprintf(stderr, "%s load: --%s \"%s\": want a whole number\n", prog,
                flag, v);
        return EXIT_USAGE;
    }
    return rc;
}

static int dur_flag(const char *prog, const char *flag, const char *v,
                    int64_t *out)
{
    if (clock_parse_duration(v, out) != 0) {
        fprintf(stderr,
                "%s load: --%s \"%s\": not a duration (use e.g. 30s, 5m, "
                "1h30m)\n",
                prog, flag, v);
        return EXIT_USAGE;
    }
    return 0;
}

/* The executor and its options, from the flags over the workflow's
 * defaults; k6's inference when no executor is named. */
static int build_engine(const char *prog, const struct lc_opts *o,
                        const struct hf_workflow *wf, struct engine_config *e,
                        struct engine_stage *stages)
{
    const char *executor = o->executor ? o->executor : wf->executor;
    const char *duration = o->duration ? o->duration : wf->duration;
    const char *stage_s = o->stages ? o->stages : wf->stages;
    double d;
    int rc = 0;
    char err[256];
    bool has_rate = o->rate != NULL || wf->rate > 0;
    bool has_iter = o->iterations != NULL || wf->iterations > 0;

    memset(e, 0, sizeof(*e));
    e->vus = wf->vus > 0 ? wf->vus : 1;
    e->rate = wf->rate;
    e->max_vus = wf->max_vus;
    e->iterations = wf->iterations > 0 ? (uint64_t)wf->iterations : 0;
    e->graceful_stop_ns = INT64_C(30) * CLOCK_NS_PER_S;
    e->graceful_ramp_down_ns = INT64_C(30) * CLOCK_NS_PER_S;
    if (o->vus != NULL &&
        (rc = int_flag(prog, "vus", o->vus, 1, ENGINE_VUS_MAX, &d)) == 0) {
        e->vus = (int)d;
    }
    if (rc == 0 && o->rate != NULL &&
        (rc = num_flag(prog, "rate", o->rate, 0, 1e9, &d)) == 0) {
        e->rate = d;
    }
    if (rc == 0 && o->max_vus != NULL &&
        (rc = int_flag(prog, "max-vus", o->max_vus, 1, ENGINE_VUS_MAX, &d)) ==
            0) {
        e->max_vus = (int)d;
    }
    if (rc == 0 && o->pre_allocated != NULL &&
        (rc = int_flag(prog, "pre-allocated-vus", o->pre_allocated, 0,
                       ENGINE_VUS_MAX, &d)) == 0) {
        e->pre_allocated_vus = (int)d;
    }
    if (rc == 0 && o->iterations != NULL &&
        (rc = int_flag(prog, "iterations", o->iterations, 1, 1e15, &d)) == 0) {
        e->iterations = (uint64_t)d;
    }
    if (rc == 0 && duration != NULL) {
        rc = dur_flag(prog, "duration", duration, &e->duration_ns);
    }
    if (rc == 0 && o->time_unit != NULL) {
        rc = dur_flag(prog, "time-unit", o->time_unit, &e->time_unit_ns);
        if (rc == 0 && e->time_unit_ns <= 0) {
            return usage_err(prog, "--time-unit \"%s\": must be above 0",
                             o->time_unit);
        }
    }
    if (rc == 0 && o->graceful_stop != NULL) {
        rc = dur_flag(prog, "graceful-stop", o->graceful_stop,
                      &e->graceful_stop_ns);
    }
    if (rc == 0 && o->graceful_ramp_down != NULL) {
        rc = dur_flag(prog, "graceful-ramp-down", o->graceful_ramp_down,
                      &e->graceful_ramp_down_ns);
    }
    if (rc == 0 && o->timeout != NULL) {
        rc = dur_flag(prog, "timeout", o->timeout, &e->http.timeout_ns);
    }
    e->http.tls_ca_file = o->ca_file;
    e->http.tls_insecure = o->insecure;
    if (rc == 0 && o->threads != NULL &&
        (rc = int_flag(prog, "threads", o->threads, 1, ENGINE_THREADS_MAX,
                       &d)) == 0) {
        e->threads = (int)d;
    }
    if (rc == 0 && o->stack != NULL &&
        (rc = int_flag(prog, "stack", o->stack, 4096, 64 << 20, &d)) == 0) {
        e->stack_bytes = (size_t)d;
    }
    if (rc != 0) {
        return rc;
    }
    if (stage_s != NULL) {
        int n = engine_stages_parse(stage_s, stages, ENGINE_STAGES_MAX, err,
                                    sizeof(err));

        if (n < 0) {
            return usage_err(prog, "--stages: %s", err);
        }
        e->stages = stages;
        e->n_stages = (size_t)n;
    }
    if (executor != NULL) {
        if (engine_executor_parse(executor, &e->executor) != 0) {
            return usage_err(prog,
                             "--executor \"%s\": unknown; known: "
                             "constant-vus, ramping-vus, "
                             "constant-arrival-rate, ramping-arrival-rate, "
                             "per-vu-iterations, shared-iterations",
                             executor);
        }
    } else if (has_rate) {
        e->executor = stage_s ? ENGINE_RAMPING_ARRIVAL_RATE
                              : ENGINE_CONSTANT_ARRIVAL_RATE;
    } else if (stage_s != NULL) {
        e->executor = ENGINE_RAMPING_VUS;
    } else if (duration != NULL) {
        e->executor = ENGINE_CONSTANT_VUS;
    } else {
        e->executor = ENGINE_SHARED_ITERATIONS;
        if (!has_iter) {
            e->iterations = 1;
        }
    }
    /* k6 takes gracefulRampDown on ramping-vus only. */
    if (o->graceful_ramp_down != NULL && e->executor != ENGINE_RAMPING_VUS) {
        return usage_err(prog,
                         "--graceful-ramp-down is for ramping-vus only (the "
                         "executor is %s)",
                         engine_executor_str(e->executor));
    }
    /* What each executor needs, said plainly before anything runs. */
    switch (e->executor) {
    case ENGINE_CONSTANT_VUS:
        if (e->duration_ns <= 0) {
            return usage_err(prog, "constant-vus needs --duration");
        }
        break;
    case ENGINE_RAMPING_VUS:
    case ENGINE_RAMPING_ARRIVAL_RATE:
        if (e->n_stages == 0) {
            return usage_err(prog, "%s needs --stages",
                             engine_executor_str(e->executor));
        }
        for (size_t i = 0; i < e->n_stages; i++) {
            if (e->stages[i].duration_ns <= 0) {
                return usage_err(prog, "--stages: stage durations must be "
                                       "above 0");
            }
        }
        if (e->executor == ENGINE_RAMPING_VUS) {
            e->vus = o->vus ? e->vus : 0;
        }
        break;
    case ENGINE_PER_VU_ITERATIONS:
    case ENGINE_SHARED_ITERATIONS:
        if (e->iterations == 0) {
            e->iterations = 1;
        }
        break;
    default:
        break;
    }
    if (e->executor == ENGINE_CONSTANT_ARRIVAL_RATE ||
        e->executor == ENGINE_RAMPING_ARRIVAL_RATE) {
        if (e->executor == ENGINE_CONSTANT_ARRIVAL_RATE && e->rate <= 0) {
            return usage_err(prog, "constant-arrival-rate needs --rate "
                                   "above 0");
        }
        if (e->executor == ENGINE_CONSTANT_ARRIVAL_RATE &&
            e->duration_ns <= 0) {
            return usage_err(prog, "constant-arrival-rate needs "
                                   "--duration");
        }
        if (e->executor == ENGINE_RAMPING_ARRIVAL_RATE && !o->rate &&
            wf->rate <= 0) {
            e->rate = 0;
        }
        if (e->pre_allocated_vus == 0) {
            e->pre_allocated_vus = o->vus || wf->vus ? e->vus : 1;
        }
        if (e->max_vus == 0) {
            /* k6 makes max VUs the pre-allocated ones; a little room to
             * absorb a slow second keeps drops for real overload. */
            e->max_vus = e->pre_allocated_vus;
        }
        if (e->max_vus < e->pre_allocated_vus) {
            return usage_err(prog, "--max-vus is below --pre-allocated-vus");
        }
    }
    if (e->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        e->threads = n > 0 ? (int)(n < ENGINE_THREADS_MAX ? n : 1) : 1;
    }
    return 0;
}

static int write_file(const char *prog, const char *path, const char *data,
                      size_t len)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "%s load: cannot write %s: %s\n", prog, path,
                strerror(errno));
        return EXIT_USAGE;
    }
    return 0;
}

/* Writes the reports asked for. Returns 0 or EXIT_USAGE. */
static int write_reports(const char *prog, const struct lc_opts *o,
                         json_t *report)
{
    char err[512];
    int rc = 0;

    if (o->json != NULL) {
        char *s = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        rc = s ? write_file(prog, o->json, s, strlen(s)) : EXIT_USAGE;
        free(s);
    }
    if (rc == 0 && o->html != NULL) {
        struct buf b;

        buf_init(&b, 0);
        if (loadreport_html(report, &b, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s load: HTML report: %s\n", prog, err);
            rc = EXIT_USAGE;
        } else {
            rc = write_file(prog, o->html, b.data, b.len);
        }
        buf_cleanup(&b);
    }
    if (rc == 0 && o->junit != NULL) {
        struct buf b;

        buf_init(&b, 0);
        if (loadreport_junit(report, &b, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s load: JUnit report: %s\n", prog, err);
            rc = EXIT_USAGE;
        } else {
            rc = write_file(prog, o->junit, b.data, b.len);
        }
        buf_cleanup(&b);
    }
    return rc;
}

int loadcli_main(const char *prog, int argc, char **argv)
{
    struct lc_opts o;
    struct loadrun_opts lo;
    struct engine_stage *stages = NULL;
    const struct hf_suite *suite;
    const struct hf_workflow *wf;
    json_t *report = NULL;
    char err[1024];
    int rc;
    struct sigaction sa;
    struct buf b;

    memset(&o, 0, sizeof(o));
    if (argc < 1 || argv[0][0] == '-') {
        fprintf(stderr, "%s load: name a workflow first\n", prog);
        loadcli_usage(stderr);
        return EXIT_USAGE;
    }
    if (registry_find_workflow(argv[0], &suite, &wf, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s load: %s\n", prog, err);
        return EXIT_USAGE;
    }
    rc = parse_flags(prog, argc - 1, argv + 1, &o);
    stages = mem_calloc(ENGINE_STAGES_MAX, sizeof(*stages));
    memset(&lo, 0, sizeof(lo));
    if (rc == 0) {
        rc = build_engine(prog, &o, wf, &lo.engine, stages);
    }
    if (rc != 0) {
        goto done;
    }
    lo.thresholds = o.thresholds;
    lo.no_thresholds = o.no_thresholds;
    lo.params = o.params;
    lo.n_params = o.n_params;
    lo.service_dir = o.service_dir;
    lo.live = o.quiet ? NULL : stderr;
    if (loadrun_check_thresholds(wf, &lo, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s load: %s\n", prog, err);
        rc = EXIT_USAGE;
        goto done;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!o.quiet) {
        fprintf(stderr, "load %s/%s: %s\n", suite->name, wf->name,
                engine_executor_str(lo.engine.executor));
    }
    rc = loadrun_run(suite, wf, &lo, &stop_flag, &report, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s load: %s\n", prog, err);
        rc = rc == ST_INVALID ? EXIT_USAGE : EXIT_FAILED;
        goto done;
    }
    buf_init(&b, 0);
    if (loadreport_text(report, &b, isatty(STDOUT_FILENO) == 1, err,
                        sizeof(err)) == 0) {
        fwrite(b.data, 1, b.len, stdout);
        fflush(stdout);
    } else {
        fprintf(stderr, "%s load: summary: %s\n", prog, err);
    }
    buf_cleanup(&b);
    rc = write_reports(prog, &o, report);
    if (rc == 0) {
        const char *result =
            json_string_value(json_object_get(report, "result"));

        rc = result != NULL && strcmp(result, "passed") == 0 ? 0 : EXIT_FAILED;
    }
done:
    json_decref(report);
    free(stages);
    result_kv_free(o.params, o.n_params);
    return rc;
}
