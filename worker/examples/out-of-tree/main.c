/* my-worker: every suite linked into this binary, run by Handoff's
 * command line (`my-worker list`, `my-worker run SUITE`). */
#include <handoff.h>

int main(int argc, char **argv)
{
    return hf_main(argc, argv);
}
