/* Benchmarks of the load engine (one command each):
 *
 *   handoff-bench-load [http]    the engine (constant-vus, 50 VUs, one GET
 *                                per iteration, every metric recorded) vs
 *                                wrk -t2 -c50 vs hey -c 50, interleaved,
 *                                against one nginx on 127.0.0.1
 *   handoff-bench-load idle-vus  RSS per VU of 10,000 VUs parked in a sleep
 *   handoff-bench-load switch    coroutine round trip vs glibc swapcontext
 *   handoff-bench-load transport the engine vs two bare callback clients,
 *                                raw sockets and bufferevents
 *   handoff-bench-load soak      opt-in: constant-arrival-rate --rate R
 *                                (default 1,000/s) for --duration S
 *                                (default 3600) against nginx; RSS is
 *                                sampled every second and must stay within
 *                                5 % of its value after the first minute;
 *                                --stall-every S [--stall-ms MS, default
 *                                500] blocks each loop thread for MS every
 *                                S seconds (a busy neighbour's stall, on
 *                                demand: each makes the executor start
 *                                VUs, let go 5 s later) and prints the RSS
 *                                just before each stall
 *
 * Options: --rounds N, --duration SECONDS, --threads T (engine loop
 * threads), --nginx-workers W, --vus N. nginx runs as a child in its own
 * process group in a temporary directory, and is stopped whatever happens:
 * normal exit, error, SIGINT/SIGTERM/SIGHUP, or this process dying (it gets
 * SIGTERM through PR_SET_PDEATHSIG). The last line of each reports the
 * medians: `bench <name>: key=value ...`. */
#define _GNU_SOURCE /* prctl, mkdtemp */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "coro.h"
#include "engine.h"
#include "httpc.h"
#include "load_transport.h"

#define MAX_ROUNDS 21
#define BODY_BYTES 612 /* nginx's own index.html */

struct opts {
    int rounds;
    int duration_s;
    int threads;
    int nginx_workers;
    int vus;
    double rate;
    int stall_every_s;
    int stall_ms;
};

/* ---- nginx ---------------------------------------------------------------- */

static char nginx_dir[64];
static volatile pid_t nginx_pid = -1; /* also its process group */

static void nginx_kill(int sig)
{
    if (nginx_pid > 0) {
        kill(-nginx_pid, sig);
    }
}

static void on_signal(int sig)
{
    nginx_kill(SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fwrite(text, 1, len, f) != len) {
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    chmod(path, 0644);
    return fclose(f) == 0 ? 0 : -1;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static bool port_answers(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static void rm_tree(void)
{
    static const char *const files[] = {"nginx.conf", "html/index.html",
                                        "error.log", "nginx.pid"};
    static const char *const dirs[] = {"html", "tmp", ""};
    char p[128];

    if (nginx_dir[0] == '\0') {
        return;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", nginx_dir, files[i]);
        unlink(p);
    }
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", nginx_dir, dirs[i]);
        rmdir(p);
    }
    nginx_dir[0] = '\0';
}

static void nginx_stop(void)
{
    int status;
    int64_t deadline = clock_mono_ns() + 5 * CLOCK_NS_PER_S;

    if (nginx_pid > 0) {
        nginx_kill(SIGTERM);
        while (waitpid(nginx_pid, &status, WNOHANG) == 0) {
            if (clock_mono_ns() > deadline) {
                nginx_kill(SIGKILL);
                waitpid(nginx_pid, &status, 0);
                break;
            }
            usleep(10000);
        }
        /* Workers that outlived their master, if any. */
        nginx_kill(SIGKILL);
        nginx_pid = -1;
    }
    rm_tree();
}

/* Starts nginx with workers worker processes serving BODY_BYTES at / on a
 * free port; returns the port, or -1. */
static int nginx_start(int workers)
{
    char conf[2048];
    char path[128];
    char body[BODY_BYTES];
    int port = free_port();
    int n;
    pid_t pid;
    int64_t deadline;

    strcpy(nginx_dir, "/tmp/handoff-bench-nginx-XXXXXX");
    if (port < 0 || mkdtemp(nginx_dir) == NULL) {
        nginx_dir[0] = '\0';
        return -1;
    }
    /* nginx's workers run as nobody when started by root. */
    chmod(nginx_dir, 0755);
    snprintf(path, sizeof(path), "%s/html", nginx_dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/tmp", nginx_dir);
    mkdir(path, 0755);
    memset(body, 'x', sizeof(body));
    snprintf(path, sizeof(path), "%s/html/index.html", nginx_dir);
    if (write_file(path, body, sizeof(body)) != 0) {
        return -1;
    }
    n = snprintf(conf, sizeof(conf),
                 "daemon off;\n"
                 "worker_processes %d;\n"
                 "pid %s/nginx.pid;\n"
                 "error_log %s/error.log warn;\n"
                 "events { worker_connections 4096; }\n"
                 "http {\n"
                 "  access_log off;\n"
                 "  keepalive_requests 1000000000;\n"
                 "  client_body_temp_path %s/tmp;\n"
                 "  proxy_temp_path %s/tmp;\n"
                 "  fastcgi_temp_path %s/tmp;\n"
                 "  uwsgi_temp_path %s/tmp;\n"
                 "  scgi_temp_path %s/tmp;\n"
                 "  server {\n"
                 "    listen 127.0.0.1:%d;\n"
                 "    root %s/html;\n"
                 "    location / { }\n"
                 "  }\n"
                 "}\n",
                 workers, nginx_dir, nginx_dir, nginx_dir, nginx_dir, nginx_dir,
                 nginx_dir, nginx_dir, port, nginx_dir);
    snprintf(path, sizeof(path), "%s/nginx.conf", nginx_dir);
    if (n >= (int)sizeof(conf) || write_file(path, conf, (size_t)n) != 0) {
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        char errlog[160];
        int null = open("/dev/null", O_RDWR);

        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(null, 0);
        dup2(null, 1);
        snprintf(errlog, sizeof(errlog), "%s/error.log", nginx_dir);
        execlp("nginx", "nginx", "-c", path, "-p", nginx_dir, "-e", errlog,
               (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    nginx_pid = pid;
    deadline = clock_mono_ns() + 5 * CLOCK_NS_PER_S;
    while (!port_answers(port)) {
        int status;

        if (waitpid(pid, &status, WNOHANG) == pid) {
            nginx_pid = -1;
            fprintf(stderr, "nginx exited at start-up (see %s/error.log)\n",
                    nginx_dir);
            return -1;
        }
        if (clock_mono_ns() > deadline) {
            fprintf(stderr, "nginx did not answer on port %d\n", port);
            return -1;
        }
        usleep(5000);
    }
    return port;
}

/* ---- Running the other tools ---------------------------------------------- */

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Runs argv with stdout captured into out (size n); returns its exit
 * status, or -1, and its CPU time (user + system) in *cpu_s. */
static int run_capture(char *const argv[], char *out, size_t n, double *cpu_s)
{
    struct rusage ru;

    int fds[2];
    pid_t pid;
    size_t len = 0;
    int status;

    if (pipe(fds) != 0) {
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);

        dup2(fds[1], 1);
        dup2(null, 2);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        ssize_t r = read(fds[0], out + len, n - 1 - len);

        if (r > 0 && len + (size_t)r < n - 1) {
            len += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r > 0) {
            len += (size_t)r; /* full: drain the rest */
            char sink[4096];
            while (read(fds[0], sink, sizeof(sink)) > 0) {
            }
            break;
        } else {
            break;
        }
    }
    out[len] = '\0';
    close(fds[0]);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    *cpu_s = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The number after "Requests/sec:" in out, or -1. */
static double parse_rps(const char *out)
{
    const char *p = strstr(out, "Requests/sec:");

    return p ? strtod(p + strlen("Requests/sec:"), NULL) : -1;
}

/* A tool's figures: requests per second, and CPU time per request. */
struct figures {
    double rps;
    double cpu_us; /* client CPU (user + system) per request */
};

static int run_wrk(const char *url, int duration_s, struct figures *f)
{
    double cpu;
    char d[16];
    char out[8192];
    char *argv[] = {
        (char *)"wrk", (char *)"-t2", (char *)"-c50", (char *)"-d", d,
        (char *)url,   NULL};

    snprintf(d, sizeof(d), "%ds", duration_s);
    if (run_capture(argv, out, sizeof(out), &cpu) != 0) {
        return -1;
    }
    if (strstr(out, "Non-2xx") || strstr(out, "Socket errors")) {
        fprintf(stderr, "wrk reported errors:\n%s", out);
    }
    f->rps = parse_rps(out);
    f->cpu_us = cpu * 1e6 / (f->rps * duration_s);
    return f->rps > 0 ? 0 : -1;
}

static int run_hey(const char *url, int duration_s, struct figures *f)
{
    double cpu;
    char d[16];
    static char out[1 << 16];
    char *argv[] = {(char *)"hey", (char *)"-c", (char *)"50", (char *)"-z", d,
                    (char *)url,   NULL};

    snprintf(d, sizeof(d), "%ds", duration_s);
    if (run_capture(argv, out, sizeof(out), &cpu) != 0) {
        return -1;
    }
    if (strstr(out, "Error distribution")) {
        fprintf(stderr, "hey reported errors\n");
    }
    f->rps = parse_rps(out);
    f->cpu_us = cpu * 1e6 / (f->rps * duration_s);
    return f->rps > 0 ? 0 : -1;
}

/* ---- The engine ------------------------------------------------------------ */

static void wf_get(struct engine_vu *vu)
{
    httpc_get(engine_vu_http(vu), engine_vu_data(vu));
}

struct engine_figures {
    double rps;
    double cpu_us;
    uint64_t requests;
    uint64_t failed;
    int64_t p50_ns;
    int64_t p99_ns;
};

static int run_engine(const char *url, const struct opts *o,
                      struct engine_figures *f)
{
    struct engine_config cfg;
    struct engine_result res;
    const struct httpc_stats *s;
    struct rusage ru0;
    struct rusage ru1;

    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_get;
    cfg.data = (void *)url;
    cfg.vus = o->vus;
    cfg.threads = o->threads;
    cfg.duration_ns = (int64_t)o->duration_s * CLOCK_NS_PER_S;
    cfg.graceful_stop_ns = 5 * CLOCK_NS_PER_S;
    getrusage(RUSAGE_SELF, &ru0);
    if (engine_run(&cfg, &res) != 0) {
        return -1;
    }
    getrusage(RUSAGE_SELF, &ru1);
    memset(f, 0, sizeof(*f));
    s = httpc_metrics_find(res.http, "GET /");
    if (s != NULL) {
        f->requests = s->requests;
        f->failed = s->failed;
        f->p50_ns = hist_value_at_percentile(s->timings[HTTPC_T_DURATION], 50);
        f->p99_ns = hist_value_at_percentile(s->timings[HTTPC_T_DURATION], 99);
        f->rps = (double)s->requests / ((double)res.elapsed_ns / 1e9);
        f->cpu_us = (tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime) +
                     tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime)) *
                    1e6 / (double)(s->requests ? s->requests : 1);
    }
    if (s == NULL || f->failed > 0) {
        fprintf(stderr, "engine: %llu of %llu requests failed\n",
                (unsigned long long)f->failed, (unsigned long long)f->requests);
    }
    engine_result_cleanup(&res);
    return 0;
}

/* ---- Statistics ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];

    memcpy(s, v, (size_t)n * sizeof(*v));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ---- The example worker's `get` workflow --------------------------------- */

/* `handoff-example-worker load get` as a user runs it: the hf_* layer,
 * the CLI, the JSON report. Requests per second from its report. */
static int run_worker(const char *url, const struct opts *o, struct figures *f)
{
    static char out[1 << 17];
    char param[128];
    char vus[16];
    char dur[16];
    char threads[16];
    char json_path[] = "/tmp/handoff-bench-get-XXXXXX";
    char *argv[] = {(char *)HANDOFF_BIN_DIR "/handoff-example-worker",
                    (char *)"load",
                    (char *)"get",
                    (char *)"--param",
                    param,
                    (char *)"--vus",
                    vus,
                    (char *)"--duration",
                    dur,
                    (char *)"--threads",
                    threads,
                    (char *)"--quiet",
                    (char *)"--json",
                    json_path,
                    NULL};
    double cpu;
    json_t *r;
    int fd = mkstemp(json_path);
    int rc = -1;

    if (fd < 0) {
        return -1;
    }
    close(fd);
    snprintf(param, sizeof(param), "TARGET_URL=%s", url);
    snprintf(vus, sizeof(vus), "%d", o->vus);
    snprintf(dur, sizeof(dur), "%ds", o->duration_s);
    snprintf(threads, sizeof(threads), "%d", o->threads);
    if (run_capture(argv, out, sizeof(out), &cpu) == 0 &&
        (r = json_load_file(json_path, 0, NULL)) != NULL) {
        json_t *t = json_object_get(r, "totals");
        double n = (double)json_integer_value(json_object_get(t, "count"));
        double ms = json_number_value(json_object_get(r, "duration_ms"));

        f->rps = ms > 0 ? n * 1000 / ms : 0;
        f->cpu_us = n > 0 ? cpu * 1e6 / n : 0;
        rc = f->rps > 0 && json_integer_value(json_object_get(t, "failed")) == 0
                 ? 0
                 : -1;
        json_decref(r);
    }
    unlink(json_path);
    return rc;
}

/* ---- Subcommands ------------------------------------------------------------ */

static int bench_http(const struct opts *o)
{
    double eng[MAX_ROUNDS];
    double wkr[MAX_ROUNDS];
    double wrk[MAX_ROUNDS];
    double hey[MAX_ROUNDS];
    double eng_cpu[MAX_ROUNDS];
    double wkr_cpu[MAX_ROUNDS];
    double wrk_cpu[MAX_ROUNDS];
    double hey_cpu[MAX_ROUNDS];
    char url[64];
    int port = nginx_start(o->nginx_workers);
    int rc = 1;
    double e;
    double g;
    double w;
    double h;

    if (port < 0) {
        fprintf(stderr, "cannot start nginx\n");
        goto out;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    fprintf(stderr,
            "nginx: %d worker(s) on port %d; %d rounds of %d s; engine: %d "
            "VUs on %d thread(s), switch %s\n",
            o->nginx_workers, port, o->rounds, o->duration_s, o->vus,
            o->threads, coro_backend());
    for (int r = 0; r < o->rounds; r++) {
        struct engine_figures f = {0};
        struct figures fw = {0};
        struct figures fh = {0};
        struct figures fg = {0};

        /* Rotate the order so that no tool always follows the same one. */
        for (int k = 0; k < 4; k++) {
            int step = (r + k) % 4;

            if ((step == 0 && run_engine(url, o, &f) != 0) ||
                (step == 1 && run_wrk(url, o->duration_s, &fw) != 0) ||
                (step == 2 && run_hey(url, o->duration_s, &fh) != 0) ||
                (step == 3 && run_worker(url, o, &fg) != 0)) {
                fprintf(stderr, "%s failed (wrk and hey installed?)\n",
                        step == 0   ? "the engine"
                        : step == 1 ? "wrk"
                        : step == 2 ? "hey"
                                    : "handoff-example-worker load get");
                goto out;
            }
        }
        wkr[r] = fg.rps;
        wkr_cpu[r] = fg.cpu_us;
        eng[r] = f.rps;
        eng_cpu[r] = f.cpu_us;
        wrk[r] = fw.rps;
        wrk_cpu[r] = fw.cpu_us;
        hey[r] = fh.rps;
        hey_cpu[r] = fh.cpu_us;
        fprintf(stderr,
                "round %d: engine %.0f req/s (%.2f us CPU/req, p50 %.0f us, "
                "p99 %.0f us, %llu failed), wrk %.0f (%.2f us CPU/req), "
                "hey %.0f (%.2f us CPU/req), worker get %.0f (%.2f us "
                "CPU/req)\n",
                r + 1, eng[r], eng_cpu[r], (double)f.p50_ns / 1e3,
                (double)f.p99_ns / 1e3, (unsigned long long)f.failed, wrk[r],
                wrk_cpu[r], hey[r], hey_cpu[r], wkr[r], wkr_cpu[r]);
    }
    e = median(eng, o->rounds);
    g = median(wkr, o->rounds);
    w = median(wrk, o->rounds);
    h = median(hey, o->rounds);
    printf("client CPU per request (us, median): engine=%.2f worker_get=%.2f "
           "wrk=%.2f hey=%.2f\n",
           median(eng_cpu, o->rounds), median(wkr_cpu, o->rounds),
           median(wrk_cpu, o->rounds), median(hey_cpu, o->rounds));
    printf("bench load_http: worker_get_rps=%.0f engine_rps=%.0f wrk_rps=%.0f "
           "hey_rps=%.0f ratio_wrk=%.2f ratio_hey=%.2f engine_ratio_wrk=%.2f "
           "goal_wrk=0.9 goal_hey=3\n",
           g, e, w, h, g / w, g / h, e / w);
    rc = 0;
out:
    nginx_stop();
    return rc;
}

/* The engine against the two bare transports, same nginx, interleaved. */
static int bench_transport(const struct opts *o)
{
    double rps[3][MAX_ROUNDS];
    double cpu[3][MAX_ROUNDS];
    static const char *const names[3] = {"raw", "bufferevent", "engine"};
    char url[64];
    int port = nginx_start(o->nginx_workers);
    int rc = 1;

    if (port < 0) {
        fprintf(stderr, "cannot start nginx\n");
        goto out;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    for (int r = 0; r < o->rounds; r++) {
        for (int k = 0; k < 3; k++) {
            int step = (r + k) % 3;
            struct engine_figures f;
            int err;

            if (step == 2) {
                err = run_engine(url, o, &f);
                rps[2][r] = f.rps;
                cpu[2][r] = f.cpu_us;
            } else {
                err =
                    transport_run(port, step == 1, o->vus, o->threads,
                                  o->duration_s, &rps[step][r], &cpu[step][r]);
            }
            if (err != 0) {
                fprintf(stderr, "%s client failed\n", names[step]);
                goto out;
            }
        }
        fprintf(stderr,
                "round %d: raw %.0f req/s (%.2f us CPU/req), bufferevent %.0f "
                "(%.2f), engine %.0f (%.2f)\n",
                r + 1, rps[0][r], cpu[0][r], rps[1][r], cpu[1][r], rps[2][r],
                cpu[2][r]);
    }
    printf("bench load_transport: raw_rps=%.0f bufferevent_rps=%.0f "
           "engine_rps=%.0f raw_cpu_us=%.2f bufferevent_cpu_us=%.2f "
           "engine_cpu_us=%.2f\n",
           median(rps[0], o->rounds), median(rps[1], o->rounds),
           median(rps[2], o->rounds), median(cpu[0], o->rounds),
           median(cpu[1], o->rounds), median(cpu[2], o->rounds));
    rc = 0;
out:
    nginx_stop();
    return rc;
}

static atomic_int parked;

static void wf_idle(struct engine_vu *vu)
{
    atomic_fetch_add(&parked, 1);
    engine_sleep(vu, 3600 * CLOCK_NS_PER_S);
}

static long rss_kib(void)
{
    long pages = 0;
    long rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL) {
        return -1;
    }
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
        rss = -1;
    }
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

struct sampler {
    int vus;
    long rss_kib;
};

/* Waits until every VU is parked, then reads the RSS. */
static void *sample_rss(void *arg)
{
    struct sampler *s = arg;
    int64_t deadline = clock_mono_ns() + 60 * CLOCK_NS_PER_S;

    while (atomic_load(&parked) < s->vus && clock_mono_ns() < deadline) {
        usleep(10000);
    }
    usleep(100000); /* the last VU reaches its sleep */
    s->rss_kib = rss_kib();
    return NULL;
}

static int bench_idle(const struct opts *o)
{
    struct engine_config cfg;
    struct engine_result res;
    struct sampler s = {.vus = o->vus, .rss_kib = -1};
    pthread_t tid;
    long before;
    int64_t wait_s = 5;

    memset(&cfg, 0, sizeof(cfg));
    cfg.workflow = wf_idle;
    cfg.vus = o->vus;
    cfg.threads = 1;
    /* Long enough for the sampler; then the sleeps are cut short. */
    cfg.duration_ns = wait_s * CLOCK_NS_PER_S;
    before = rss_kib();
    pthread_create(&tid, NULL, sample_rss, &s);
    if (engine_run(&cfg, &res) != 0) {
        pthread_join(tid, NULL);
        fprintf(stderr, "engine_run failed\n");
        return 1;
    }
    pthread_join(tid, NULL);
    if (atomic_load(&parked) < o->vus || s.rss_kib < 0) {
        fprintf(stderr, "only %d of %d VUs parked\n", atomic_load(&parked),
                o->vus);
        engine_result_cleanup(&res);
        return 1;
    }
    fprintf(stderr,
            "%d VUs parked in a sleep: RSS %ld KiB before, %ld KiB parked; "
            "stack %d KiB reserved per VU (+ guard page), %llu interrupted\n",
            o->vus, before, s.rss_kib, CORO_STACK_DEFAULT / 1024,
            (unsigned long long)res.interrupted);
    printf("bench load_idle_vus: vus=%d rss_per_vu_kib=%.2f goal_kib=16\n",
           o->vus, (double)(s.rss_kib - before) / o->vus);
    engine_result_cleanup(&res);
    return 0;
}

/* ---- Soak ------------------------------------------------------------------ */

/* Stalls on demand: soak_second bumps the epoch, and the first iteration
 * each loop thread runs after that blocks its thread for stall_ms, as a
 * descheduled process would. */
static atomic_int stall_epoch;
static int stall_ms;
static _Thread_local int stall_seen;

static void wf_soak(struct engine_vu *vu)
{
    int epoch = atomic_load(&stall_epoch);

    if (epoch != stall_seen) {
        stall_seen = epoch;
        usleep((useconds_t)stall_ms * 1000);
    }
    httpc_get(engine_vu_http(vu), engine_vu_data(vu));
}

struct soak {
    int64_t warmup_ns;
    long base_kib; /* RSS at the end of the warm-up */
    long max_kib;  /* after it */
    long last_kib;
    uint64_t requests;
    uint64_t failed;
    uint64_t dropped;
    int vus_alive_max;
    int stall_every_s;
    long stall_rss_kib;  /* before the last stall */
    int stall_vus_max;   /* VUs alive at most since the last stall */
    int stall_vus_floor; /* VUs alive when it began */
};

static bool soak_second(void *arg, const struct engine_point *pt,
                        const struct snap *second, const struct snap *total,
                        char *reason, size_t reason_len)
{
    struct soak *s = arg;
    long rss = rss_kib();

    (void)second;
    (void)total;
    (void)reason;
    (void)reason_len;
    s->requests += pt->requests;
    s->failed += pt->failed;
    s->dropped += pt->dropped;
    s->last_kib = rss;
    if (pt->vus_alive > s->vus_alive_max) {
        s->vus_alive_max = pt->vus_alive;
    }
    if (pt->t_ns <= s->warmup_ns) {
        s->base_kib = rss;
    } else if (rss > s->max_kib) {
        s->max_kib = rss;
    }
    if ((pt->t_ns / CLOCK_NS_PER_S) % 60 == 0) {
        fprintf(stderr, "%6.0fs  rss %ld KiB  rps %llu  p99 %.2f ms  vus %d\n",
                (double)pt->t_ns / 1e9, rss, (unsigned long long)pt->requests,
                (double)pt->p99_ns / 1e6, pt->vus_alive);
    }
    if (pt->vus_alive > s->stall_vus_max) {
        s->stall_vus_max = pt->vus_alive;
    }
    if (s->stall_every_s > 0 &&
        (pt->t_ns / CLOCK_NS_PER_S) % s->stall_every_s == 0) {
        /* The previous spike's VUs have been let go by now: what RSS kept
         * of them, per VU started. */
        int made = s->stall_vus_max - s->stall_vus_floor;

        fprintf(stderr,
                "stall at %4.0fs: rss %ld KiB (%+ld since the last stall, "
                "whose spike started %d VUs: %.2f KiB per VU), vus %d\n",
                (double)pt->t_ns / 1e9, rss,
                s->stall_rss_kib > 0 ? rss - s->stall_rss_kib : 0, made,
                s->stall_rss_kib > 0 && made > 0
                    ? (double)(rss - s->stall_rss_kib) / made
                    : 0.0,
                pt->vus_alive);
        s->stall_rss_kib = rss;
        s->stall_vus_max = pt->vus_alive;
        s->stall_vus_floor = pt->vus_alive;
        atomic_fetch_add(&stall_epoch, 1);
    }
    return false;
}

static int bench_soak(const struct opts *o)
{
    struct engine_config cfg;
    struct engine_result res;
    struct soak s;
    char url[64];
    int port = nginx_start(o->nginx_workers);
    double growth;
    double end_growth;
    int rc = 1;

    if (port < 0) {
        fprintf(stderr, "cannot start nginx\n");
        goto out;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    memset(&s, 0, sizeof(s));
    s.stall_every_s = o->stall_every_s;
    stall_ms = o->stall_ms;
    s.warmup_ns =
        (o->duration_s >= 600 ? 60 : o->duration_s / 10) * CLOCK_NS_PER_S;
    memset(&cfg, 0, sizeof(cfg));
    cfg.executor = ENGINE_CONSTANT_ARRIVAL_RATE;
    cfg.workflow = wf_soak;
    cfg.data = url;
    cfg.rate = o->rate;
    cfg.duration_ns = (int64_t)o->duration_s * CLOCK_NS_PER_S;
    cfg.graceful_stop_ns = 5 * CLOCK_NS_PER_S;
    cfg.pre_allocated_vus = 20;
    cfg.max_vus = 1000;
    cfg.threads = o->threads;
    cfg.on_second = soak_second;
    cfg.on_second_arg = &s;
    fprintf(stderr, "soak: %.0f/s for %d s against nginx on port %d\n", o->rate,
            o->duration_s, port);
    if (engine_run(&cfg, &res) != 0) {
        fprintf(stderr, "engine_run failed\n");
        goto out;
    }
    engine_result_cleanup(&res);
    /* Peak and end, against the RSS after the warm-up: a stall on a shared
     * machine starts VUs (vus_max), whose memory is given back once they
     * idle; the end figure shows what stayed. */
    growth = s.base_kib > 0
                 ? 100.0 * (double)(s.max_kib - s.base_kib) / (double)s.base_kib
                 : 0;
    end_growth = s.base_kib > 0 ? 100.0 * (double)(s.last_kib - s.base_kib) /
                                      (double)s.base_kib
                                : 0;
    printf("bench load_soak: duration_s=%d rate=%.0f requests=%llu "
           "failed=%llu dropped=%llu rss_base_kib=%ld rss_max_kib=%ld "
           "rss_end_kib=%ld vus_max=%d growth_pct=%.2f end_growth_pct=%.2f "
           "goal_pct=5\n",
           o->duration_s, o->rate, (unsigned long long)s.requests,
           (unsigned long long)s.failed, (unsigned long long)s.dropped,
           s.base_kib, s.max_kib, s.last_kib, s.vus_alive_max, growth,
           end_growth);
    rc = 0;
out:
    nginx_stop();
    return rc;
}

#define SWITCH_TRIPS 2000000

static struct coro *ping_co;
static ucontext_t uc_main;
static ucontext_t uc_co;

static void ping_coro(void *arg)
{
    (void)arg;
    for (;;) {
        coro_yield(ping_co);
    }
}

static void ping_ucontext(void)
{
    for (;;) {
        swapcontext(&uc_co, &uc_main);
    }
}

static int bench_switch(const struct opts *o)
{
    double co_ns[MAX_ROUNDS];
    double uc_ns[MAX_ROUNDS];
    size_t stack_bytes = 64 * 1024;
    void *stack = malloc(stack_bytes);

    if (coro_new(ping_coro, NULL, 0, &ping_co) != 0 || stack == NULL) {
        free(stack);
        return 1;
    }
    getcontext(&uc_co);
    uc_co.uc_stack.ss_sp = stack;
    uc_co.uc_stack.ss_size = stack_bytes;
    uc_co.uc_link = NULL;
    makecontext(&uc_co, ping_ucontext, 0);
    for (int r = 0; r < o->rounds; r++) {
        int64_t t0 = clock_mono_ns();

        for (int i = 0; i < SWITCH_TRIPS; i++) {
            coro_resume(ping_co);
        }
        co_ns[r] = (double)(clock_mono_ns() - t0) / SWITCH_TRIPS;
        t0 = clock_mono_ns();
        for (int i = 0; i < SWITCH_TRIPS; i++) {
            swapcontext(&uc_main, &uc_co);
        }
        uc_ns[r] = (double)(clock_mono_ns() - t0) / SWITCH_TRIPS;
        fprintf(stderr,
                "round %d: %s %.1f ns, swapcontext %.1f ns per round "
                "trip\n",
                r + 1, coro_backend(), co_ns[r], uc_ns[r]);
    }
    printf("bench load_switch: backend=%s round_trip_ns=%.1f "
           "swapcontext_round_trip_ns=%.1f ratio=%.1f\n",
           coro_backend(), median(co_ns, o->rounds), median(uc_ns, o->rounds),
           median(uc_ns, o->rounds) / median(co_ns, o->rounds));
    coro_free(ping_co);
    free(stack);
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.rounds = 5,
                     .duration_s = 5,
                     .threads = 2,
                     .nginx_workers = 1,
                     .vus = 0};
    const char *cmd = "http";
    int i = 1;

    if (argc > 1 && argv[1][0] != '-') {
        cmd = argv[1];
        i = 2;
    }
    /* Flags take one value each: the loop steps over flag and value. */
    while (i < argc) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        int bad = 0;

        if (strcmp(argv[i], "--rounds") == 0) {
            bad = parse_int(v, 1, MAX_ROUNDS, &o.rounds);
        } else if (strcmp(argv[i], "--duration") == 0) {
            bad = parse_int(v, 1, 86400, &o.duration_s);
        } else if (strcmp(argv[i], "--threads") == 0) {
            bad = parse_int(v, 1, ENGINE_THREADS_MAX, &o.threads);
        } else if (strcmp(argv[i], "--nginx-workers") == 0) {
            bad = parse_int(v, 1, 64, &o.nginx_workers);
        } else if (strcmp(argv[i], "--vus") == 0) {
            bad = parse_int(v, 1, ENGINE_VUS_MAX, &o.vus);
        } else if (strcmp(argv[i], "--rate") == 0) {
            int r = 0;

            bad = parse_int(v, 1, 1000000, &r);
            o.rate = r;
        } else if (strcmp(argv[i], "--stall-every") == 0) {
            bad = parse_int(v, 1, 86400, &o.stall_every_s);
        } else if (strcmp(argv[i], "--stall-ms") == 0) {
            bad = parse_int(v, 1, 60000, &o.stall_ms);
        } else {
            bad = -1;
        }
        if (bad != 0) {
            fprintf(stderr,
                    "usage: %s [http|idle-vus|switch|transport|soak] "
                    "[--rounds N] [--duration S] [--threads T] "
                    "[--nginx-workers W] [--vus N] [--rate R] "
                    "[--stall-every S] [--stall-ms MS]\n",
                    argv[0]);
            return 2;
        }
        i += 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(cmd, "http") == 0) {
        o.vus = o.vus ? o.vus : 50;
        return bench_http(&o);
    }
    if (strcmp(cmd, "idle-vus") == 0) {
        o.vus = o.vus ? o.vus : 10000;
        return bench_idle(&o);
    }
    if (strcmp(cmd, "transport") == 0) {
        o.vus = o.vus ? o.vus : 50;
        return bench_transport(&o);
    }
    if (strcmp(cmd, "switch") == 0) {
        return bench_switch(&o);
    }
    if (strcmp(cmd, "soak") == 0) {
        bool dur_given = false;

        for (int k = 1; k < argc; k++) {
            dur_given |= strcmp(argv[k], "--duration") == 0;
        }
        o.duration_s = dur_given ? o.duration_s : 3600;
        o.rate = o.rate > 0 ? o.rate : 1000;
        o.stall_ms = o.stall_ms ? o.stall_ms : 500;
        return bench_soak(&o);
    }
    fprintf(stderr, "unknown benchmark %s\n", cmd);
    return 2;
}
