/* The other half of the duplicate-suite worker. */
#include <handoff.h>

static void test_two(hf_t *t)
{
    (void)t;
}

HF_SUITE(twice, .tests = HF_TESTS(HF_TEST(test_two)));
