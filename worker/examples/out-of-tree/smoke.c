/* Suite "smoke": a first suite for a worker built out of tree. Replace the
 * tests with checks of your own service; the shapes stay the same. */
#include <stdio.h>
#include <string.h>

#include <handoff.h>

static void test_greeting_is_formatted(hf_t *t)
{
    char greeting[32];

    snprintf(greeting, sizeof(greeting), "hello, %s", "handoff");
    HF_CHECK_STR_EQ(t, greeting, "hello, handoff");
    HF_CHECK_UINT(t, strlen(greeting), ==, 14);
}

static void test_tempdir_keeps_what_is_written(hf_t *t)
{
    const char *dir = hf_tempdir(t); /* removed when the test ends */
    char path[4096];
    char line[64] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/state.txt", dir);
    f = fopen(path, "w");
    HF_REQUIRE_NOT_NULL(t, f);
    fputs("ready\n", f);
    HF_REQUIRE_INT(t, fclose(f), ==, 0);

    f = fopen(path, "r");
    HF_REQUIRE_NOT_NULL(t, f);
    if (!fgets(line, sizeof(line), f)) {
        hf_error(t, "the file is empty");
    }
    fclose(f);
    HF_CHECK_STR_EQ(t, line, "ready\n");
}

static void test_environment_defaults_to_local(hf_t *t)
{
    /* `my-worker run smoke --param env=staging` overrides it. */
    const char *env = hf_param(t, "env");

    if (!env) {
        env = "local";
    }
    hf_set_value(t, "env", env);
    hf_logf(t, "testing the %s environment", env);
    HF_CHECK_STR_EQ(t, hf_value(t, "env"), env);
}

/* Laid out by hand: one field and one test per line. */
/* clang-format off */
HF_SUITE(smoke,
         .namespace = "my-team",
         .description = "Does the worker build and run?",
         .tests = HF_TESTS(
             HF_TEST(test_greeting_is_formatted),
             HF_TEST(test_tempdir_keeps_what_is_written),
             HF_TEST(test_environment_defaults_to_local)));
/* clang-format on */
