/* loadcli: the worker's `load` command (docs/load.md). */
#ifndef HANDOFF_LOADCLI_H
#define HANDOFF_LOADCLI_H

#include <stdio.h>

/* Runs `load` with argv after the command name (argv[0] is the workflow).
 * Returns the exit status: 0 passed, 1 failed or aborted, 2 usage. */
int loadcli_main(const char *prog, int argc, char **argv);
/* The command's flags, for the worker's help. */
void loadcli_usage(FILE *f);

#endif
