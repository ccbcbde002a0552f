/* The worker's command line, run as a user runs it: the example worker
 * binary with its real suites. Exit codes, error messages for bad input,
 * filters, and that each report format comes out. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

struct outcome {
    int status; /* exit status, or 128 + signal */
    char *out;
    char *err;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *data;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return data;
}

/* Runs bin with args (NULL-terminated), stdout and stderr to files. */
static struct outcome run_bin(const char *bin, const char *const *args)
{
    char out_path[] = "/tmp/handoff-cli-out-XXXXXX";
    char err_path[] = "/tmp/handoff-cli-err-XXXXXX";
    int out_fd = mkstemp(out_path);
    int err_fd = mkstemp(err_path);
    char path[1024];
    char *argv[32];
    int n = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;
    struct outcome o;

    assert_true(out_fd >= 0 && err_fd >= 0);
    snprintf(path, sizeof(path), "%s/%s", HANDOFF_BIN_DIR, bin);
    argv[n++] = path;
    for (; args[n - 1]; n++) {
        argv[n] = (char *)args[n - 1];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    assert_int_equal(posix_spawn(&pid, path, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    close(out_fd);
    close(err_fd);
    o.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    o.out = slurp(out_path);
    o.err = slurp(err_path);
    unlink(out_path);
    unlink(err_path);
    return o;
}

static struct outcome worker(const char *const *args)
{
    return run_bin("handoff-example-worker", args);
}

static void done(struct outcome *o)
{
    free(o->out);
    free(o->err);
}

static void expect(const struct outcome *o, int status, const char *where,
                   const char *needle)
{
    const char *hay = where[0] == 'o' ? o->out : o->err;

    if (o->status != status) {
        fail_msg("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", o->status,
                 status, o->out, o->err);
    }
    if (needle && !strstr(hay, needle)) {
        fail_msg("%s lacks \"%s\":\n%s", where, needle, hay);
    }
}

static void test_cli_lists_suites_and_tests(void **state)
{
    struct outcome o = worker((const char *[]){"list", NULL});

    (void)state;
    expect(&o, 0, "out", "selftest (namespace handoff, 10 tests)");
    expect(&o, 0, "out", "    test_flaky_passes_on_second_attempt\n");
    expect(&o, 0, "out", "httpapi (namespace examples");
    done(&o);
}

static void test_cli_lists_suites_as_json(void **state)
{
    struct outcome o = worker((const char *[]){"list", "--json", NULL});
    json_error_t jerr;
    json_t *root;
    json_t *suite = NULL;
    size_t i;
    json_t *v;

    (void)state;
    expect(&o, 0, "out", NULL);
    root = json_loads(o.out, 0, &jerr);
    assert_non_null(root);
    assert_true(json_is_array(root));
    json_array_foreach(root, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "name")), "selftest") ==
            0) {
            suite = v;
        }
    }
    assert_non_null(suite);
    assert_string_equal(json_string_value(json_object_get(suite, "namespace")),
                        "handoff");
    assert_int_equal(json_array_size(json_object_get(suite, "tests")), 10);
    json_decref(root);
    done(&o);
}

static void test_cli_names_known_suites_for_an_unknown_one(void **state)
{
    struct outcome o = worker((const char *[]){"run", "nosuch", NULL});

    (void)state;
    expect(&o, 2, "err", "unknown suite \"nosuch\"; known suites: ");
    expect(&o, 2, "err", "selftest");
    done(&o);
}

static void test_cli_names_known_flags_for_an_unknown_one(void **state)
{
    struct outcome o =
        worker((const char *[]){"run", "selftest", "--bogus", NULL});

    (void)state;
    expect(&o, 2, "err", "unknown flag --bogus; known flags: --run, --skip");
    done(&o);
}

static void test_cli_rejects_bad_input_with_exit_2(void **state)
{
    static const struct {
        const char *args[6];
        const char *message;
    } cases[] = {
        {{"run", "selftest", "--run", "(", NULL},
         "--run \"(\": invalid regular expression"},
        {{"run", "selftest", "--skip", "a[", NULL},
         "--skip \"a[\": invalid regular expression"},
        {{"run", "selftest", "--run", "^nomatch$", NULL},
         "the filters select no test"},
        {{"run", "selftest", "--count", "0", NULL}, "--count \"0\""},
        {{"run", "selftest", "--count", "x", NULL}, "--count \"x\""},
        {{"run", "selftest", "--param", "novalue", NULL},
         "--param \"novalue\": want KEY=VALUE"},
        {{"run", "selftest", "--timeout", "soon", NULL},
         "--timeout \"soon\": not a duration"},
        {{"run", "selftest", "--run", NULL}, "flag --run needs a value"},
        {{"run", NULL}, "name at least one suite"},
        {{"frobnicate", NULL}, "unknown command \"frobnicate\""},
        {{"list", "--verbose", NULL}, "unknown flag --verbose"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outcome o = worker(cases[i].args);

        expect(&o, 2, "err", cases[i].message);
        assert_string_equal(o.out, "");
        done(&o);
    }
}

static void test_cli_exits_0_when_nothing_fails(void **state)
{
    struct outcome o = worker((const char *[]){"run", "selftest", "--run",
                                               "pass|skip|values|flaky", NULL});

    (void)state;
    expect(&o, 0, "out", "ok  \thandoff/selftest\t");
    done(&o);
}

static void test_cli_exits_1_when_a_test_fails(void **state)
{
    struct outcome o = worker((const char *[]){"run", "selftest", NULL});

    (void)state;
    expect(&o, 1, "out", "--- FAIL: test_check_fails");
    expect(&o, 1, "out", "--- FAIL: test_segfault");
    expect(&o, 1, "out", "SIGSEGV");
    expect(&o, 1, "out", "Assertion");
    expect(&o, 1, "out", "FAIL\thandoff/selftest\t");
    /* Passing tests are quiet without -v. */
    assert_null(strstr(o.out, "test_pass"));
    done(&o);
}

static void test_cli_skip_flag_leaves_the_rest(void **state)
{
    struct outcome o = worker(
        (const char *[]){"run", "selftest", "-v", "--skip",
                         "fail|segfault|abort|timeout|require|soft", NULL});

    (void)state;
    expect(&o, 0, "out", "--- PASS: test_pass");
    expect(&o, 0, "out", "--- SKIP: test_segfault");
    expect(&o, 0, "out", "filtered out by --skip");
    done(&o);
}

static void test_cli_writes_test2json_events(void **state)
{
    struct outcome o = worker((const char *[]){"run", "selftest", "--json",
                                               "--run", "pass|check", NULL});
    char *line;
    char *save = NULL;
    int events = 0;
    bool saw_fail = false;
    bool saw_pass = false;

    (void)state;
    expect(&o, 1, "out", "\"Action\":\"start\"");
    for (line = strtok_r(o.out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *ev = json_loads(line, 0, &jerr);
        const char *action;

        if (!ev) {
            fail_msg("not JSON: %s", line);
        }
        action = json_string_value(json_object_get(ev, "Action"));
        assert_non_null(action);
        assert_non_null(json_object_get(ev, "Time"));
        assert_string_equal(json_string_value(json_object_get(ev, "Package")),
                            "handoff/selftest");
        if (strcmp(action, "fail") == 0 && json_object_get(ev, "Test")) {
            saw_fail = true;
        }
        if (strcmp(action, "pass") == 0 && json_object_get(ev, "Test")) {
            saw_pass = true;
        }
        events++;
        json_decref(ev);
    }
    assert_true(saw_fail);
    assert_true(saw_pass);
    assert_true(events > 6);
    done(&o);
}

static void test_cli_writes_junit_file(void **state)
{
    char path[] = "/tmp/handoff-cli-junit-XXXXXX";
    int fd = mkstemp(path);
    struct outcome o;
    char *xml;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    o = worker((const char *[]){"run", "selftest", "--junit", path, NULL});
    expect(&o, 1, "out", NULL);
    xml = slurp(path);
    assert_non_null(strstr(xml, "<testsuites"));
    assert_non_null(strstr(xml, "name=\"test_segfault\""));
    assert_non_null(strstr(xml, "<error"));
    assert_non_null(strstr(xml, "<failure"));
    assert_non_null(strstr(xml, "<skipped"));
    free(xml);
    unlink(path);
    done(&o);
}

static void test_cli_refuses_duplicate_suites_at_start(void **state)
{
    struct outcome o =
        run_bin("handoff-dup-worker", (const char *[]){"list", NULL});

    (void)state;
    expect(&o, 2, "err", "duplicate suite name twice");
    done(&o);
}

static void test_cli_passes_params_to_tests(void **state)
{
    /* base_url points the httpapi suite at a deployment instead of its own
     * server: a closed port makes the health check fail. */
    struct outcome ok =
        worker((const char *[]){"run", "httpapi", "--run", "health", NULL});
    struct outcome bad =
        worker((const char *[]){"run", "httpapi", "--run", "health", "--param",
                                "base_url=http://127.0.0.1:1", NULL});

    (void)state;
    expect(&ok, 0, "out", "ok  \texamples/httpapi");
    expect(&bad, 1, "out", "127.0.0.1:1");
    done(&ok);
    done(&bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_lists_suites_and_tests),
        cmocka_unit_test(test_cli_lists_suites_as_json),
        cmocka_unit_test(test_cli_names_known_suites_for_an_unknown_one),
        cmocka_unit_test(test_cli_names_known_flags_for_an_unknown_one),
        cmocka_unit_test(test_cli_rejects_bad_input_with_exit_2),
        cmocka_unit_test(test_cli_exits_0_when_nothing_fails),
        cmocka_unit_test(test_cli_exits_1_when_a_test_fails),
        cmocka_unit_test(test_cli_skip_flag_leaves_the_rest),
        cmocka_unit_test(test_cli_writes_test2json_events),
        cmocka_unit_test(test_cli_writes_junit_file),
        cmocka_unit_test(test_cli_refuses_duplicate_suites_at_start),
        cmocka_unit_test(test_cli_passes_params_to_tests),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
