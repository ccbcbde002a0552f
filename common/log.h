/* The programs' own log: one line per event on stderr, with time, level and
 * program name. Test output never goes here. */
#ifndef HANDOFF_LOG_H
#define HANDOFF_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "mem.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

/* Sets the program name printed on each line (borrowed: pass a literal or
 * storage that outlives logging) and the lowest level written. Call once at
 * start-up, before other threads exist. */
void log_setup(const char *program, enum log_level level);
/* Parses "debug", "info", "warn", "error" or "off". Returns false if name is
 * none of them. */
bool log_parse_level(const char *name, enum log_level *out);
bool log_enabled(enum log_level level);

/* Each writes one line; safe from any thread. */
void log_msg(enum log_level level, const char *fmt, ...) MEM_PRINTF(2, 3);
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    MEM_PRINTF(2, 0);
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
