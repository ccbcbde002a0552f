/* Half of a worker that links two suites with the same name: hf_main must
 * refuse to start (tests/unit/test_cli.c). */
#include <handoff.h>

static void test_one(hf_t *t)
{
    (void)t;
}

HF_SUITE(twice, .tests = HF_TESTS(HF_TEST(test_one)));

int main(int argc, char **argv)
{
    return hf_main(argc, argv);
}
