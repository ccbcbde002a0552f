/* Line-oriented log on stderr. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clock.h"

static const char *log_program = "handoff";
static enum log_level log_min = LOG_INFO;

static const char *const log_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_setup(const char *program, enum log_level level)
{
    if (program) {
        log_program = program;
    }
    log_min = level;
}

bool log_parse_level(const char *name, enum log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error",
                                        "off"};

    for (int i = 0; i <= LOG_OFF; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

bool log_enabled(enum log_level level)
{
    return level >= log_min && level < LOG_OFF;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    char ts[CLOCK_RFC3339_LEN];
    char line[2048];
    int n;

    if (!log_enabled(level)) {
        return;
    }
    clock_format_rfc3339(clock_real_ns(), CLOCK_UTC, 0, ts);
    n = snprintf(line, sizeof(line), "%s %-5s %s: ", ts, log_names[level],
                 log_program);
    if (n > 0 && (size_t)n < sizeof(line)) {
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    }
    /* One fputs per line keeps lines whole across threads: stdio locks the
     * stream for the call. */
    n = (int)strlen(line);
    if (n < (int)sizeof(line) - 1) {
        line[n] = '\n';
        line[n + 1] = '\0';
    } else {
        line[sizeof(line) - 2] = '\n';
    }
    fputs(line, stderr);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}
