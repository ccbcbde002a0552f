/* cli: what the worker's commands share for their flags. */
#ifndef HANDOFF_CLI_H
#define HANDOFF_CLI_H

/* Matches --name and -name, with the value in the next argument or after
 * '='. Returns 1 if argv[*i] is this flag (value set; *i advanced), 0 if
 * not, -1 if the value is missing. */
int cli_flag_value(int argc, char **argv, int *i, const char *name,
                   const char **value);

#endif
