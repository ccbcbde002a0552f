/* cmd: handoffctl's commands, one function each. Each takes what follows
 * the command's name on the command line and returns the exit status
 * (enum ctl_exit). cmd_run.c holds run; cmd_show.c show and cancel;
 * cmd_list.c runs, suites and workers; cmd_schedule.c schedule;
 * cmd_diff.c diff. */
#ifndef HANDOFF_CMD_H
#define HANDOFF_CMD_H

#include "ctl.h"

int cmd_run(struct ctl *ctl, int argc, char **argv);
int cmd_runs(struct ctl *ctl, int argc, char **argv);
int cmd_show(struct ctl *ctl, int argc, char **argv);
int cmd_cancel(struct ctl *ctl, int argc, char **argv);
int cmd_suites(struct ctl *ctl, int argc, char **argv);
int cmd_workers(struct ctl *ctl, int argc, char **argv);
int cmd_schedule(struct ctl *ctl, int argc, char **argv);
int cmd_diff(struct ctl *ctl, int argc, char **argv);

#endif
