/* handoff-example-worker: the example suites linked into a worker. A real
 * worker looks the same: the suites' objects plus this one line. */
#include <handoff.h>

int main(int argc, char **argv)
{
    return hf_main(argc, argv);
}
