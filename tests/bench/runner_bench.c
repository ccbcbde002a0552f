/* Benchmarks of the local runner (one command each):
 *
 *   handoff-bench-runner overhead   10,000 no-op tests through the runner:
 *                                   per-test overhead, and its ratio to a
 *                                   bare loop calling the same functions
 *   handoff-bench-runner crash      100 tests that each segfault: time per
 *                                   replaced child
 *
 * Each measurement runs this binary's own `run SUITE` as a separate process
 * (the way users run it), interleaved with the reference, several rounds;
 * the last line reports medians. Other arguments go to hf_main, which is
 * what the measured runs use. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <handoff.h>

#define NOOP_TESTS 10000
#define CRASH_TESTS 100
#define ROUNDS 7

extern char **environ;

static void test_noop(hf_t *t)
{
    (void)t;
}

static volatile uintptr_t wild = 0x10;

static void test_segfault(hf_t *t)
{
    (void)t;
    *(volatile int *)wild = 1;
}

static struct hf_test *make_tests(int n, const char *prefix, void (*fn)(hf_t *))
{
    struct hf_test *tests = calloc((size_t)n + 1, sizeof(*tests));

    for (int i = 0; i < n; i++) {
        char name[64];

        snprintf(name, sizeof(name), "%s_%05d", prefix, i);
        tests[i].name = strdup(name);
        tests[i].fn = fn;
    }
    return tests;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs `self run suite` with stdout and stderr to /dev/null; returns the
 * wall time in seconds, or -1 if it could not run. */
static double time_run(const char *self, const char *suite, int want_status)
{
    char *argv[] = {(char *)self, (char *)"run", (char *)suite, NULL};
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;
    double t0 = now_s();
    double t;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, self, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    t = now_s() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != want_status) {
        fprintf(stderr, "run %s: unexpected exit status %d\n", suite, status);
        return -1;
    }
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The same functions called in a plain loop in this process. */
static double time_bare(const struct hf_test *tests, int n)
{
    double t0 = now_s();

    for (int rep = 0; rep < 100; rep++) {
        for (int i = 0; i < n; i++) {
            tests[i].fn(NULL);
            __asm__ volatile("" ::: "memory");
        }
    }
    return (now_s() - t0) / 100;
}

static int bench_overhead(const char *self, const struct hf_test *tests)
{
    double runner[ROUNDS];
    double bare[ROUNDS];
    double per_test_us;
    double bare_ns;

    for (int r = 0; r < ROUNDS; r++) {
        runner[r] = time_run(self, "noop10k", 0);
        bare[r] = time_bare(tests, NOOP_TESTS);
        if (runner[r] < 0) {
            return 1;
        }
        fprintf(stderr, "round %d: runner %.1f ms, bare loop %.3f ms\n", r + 1,
                runner[r] * 1e3, bare[r] * 1e3);
    }
    per_test_us = median(runner, ROUNDS) / NOOP_TESTS * 1e6;
    bare_ns = median(bare, ROUNDS) / NOOP_TESTS * 1e9;
    printf("bench local_runner_overhead: tests=%d rounds=%d "
           "per_test_us=%.2f bare_loop_per_test_ns=%.2f ratio_to_bare=%.0f "
           "goal_per_test_us=20 goal_met=%s\n",
           NOOP_TESTS, ROUNDS, per_test_us, bare_ns,
           per_test_us * 1e3 / (bare_ns > 0 ? bare_ns : 1e-3),
           per_test_us <= 20 ? "yes" : "no");
    return 0;
}

static int bench_crash(const char *self)
{
    double crash[ROUNDS];
    double per_child_ms;

    for (int r = 0; r < ROUNDS; r++) {
        crash[r] = time_run(self, "crash100", 1);
        if (crash[r] < 0) {
            return 1;
        }
        fprintf(stderr, "round %d: %d crashing tests in %.1f ms\n", r + 1,
                CRASH_TESTS, crash[r] * 1e3);
    }
    per_child_ms = median(crash, ROUNDS) / CRASH_TESTS * 1e3;
    printf("bench crash_isolation: tests=%d rounds=%d per_replaced_child_ms="
           "%.3f goal_ms=2 goal_met=%s\n",
           CRASH_TESTS, ROUNDS, per_child_ms, per_child_ms <= 2 ? "yes" : "no");
    return 0;
}

int main(int argc, char **argv)
{
    static struct hf_suite noop = {.name = "noop10k", .namespace = "bench"};
    static struct hf_suite crash = {.name = "crash100", .namespace = "bench"};
    struct hf_test *noop_tests = make_tests(NOOP_TESTS, "test_noop", test_noop);
    char self[4096];
    ssize_t n;

    noop.tests = noop_tests;
    crash.tests = make_tests(CRASH_TESTS, "test_segfault", test_segfault);
    hf_register_suite(&noop);
    hf_register_suite(&crash);
    if (argc == 2 &&
        (strcmp(argv[1], "overhead") == 0 || strcmp(argv[1], "crash") == 0)) {
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            perror("readlink /proc/self/exe");
            return 2;
        }
        self[n] = '\0';
        return strcmp(argv[1], "overhead") == 0
                   ? bench_overhead(self, noop_tests)
                   : bench_crash(self);
    }
    return hf_main(argc, argv);
}
