/* libFuzzer target for cron_parse and cron_next: the first byte picks a
 * zone from a small list, the rest is the expression. It must be refused
 * with a message or parse, and what parses must give strictly later fire
 * times, on whole seconds, from starts around DST changes and at the ends
 * of the int64 range. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const zones[] = {
    "UTC",        "Europe/Berlin",  "America/New_York", "Australia/Lord_Howe",
    "Asia/Tokyo", "America/Havana", "Pacific/Apia",     "Europe/Dublin",
    "",           "No/Such_Zone",   "../etc/passwd",
};

#define S INT64_C(1000000000)

static const int64_t starts[] = {
    0,
    INT64_MIN,
    INT64_MAX - 5 * S,
    1743292800 * S, /* 2025-03-30 00:00 UTC: Berlin springs forward */
    1761436800 * S, /* 2025-10-26 00:00 UTC: Berlin falls back */
    1762052400 * S, /* 2025-11-02 03:00 UTC: New York falls back */
    1325239200 * S, /* 2011-12-30 10:00 UTC: Samoa skips a day */
    4102444800 * S, /* 2100-01-01: footer rules, not a leap year */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char expr[CRON_EXPR_MAX + 64];
    char err[CRON_ERR_SIZE];
    struct cron *c = NULL;
    const char *zone;
    size_t n;

    if (size == 0) {
        return 0;
    }
    zone = zones[data[0] % (sizeof(zones) / sizeof(zones[0]))];
    n = size - 1 < sizeof(expr) - 1 ? size - 1 : sizeof(expr) - 1;
    memcpy(expr, data + 1, n);
    expr[n] = '\0';
    memset(err, 0x7f, sizeof(err));
    if (cron_parse(expr, zone, &c, err, sizeof(err)) != 0) {
        if (c || !memchr(err, '\0', sizeof(err)) || err[0] == '\0') {
            abort();
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        int64_t t = starts[i];

        for (int k = 0; k < 4; k++) {
            int64_t next = cron_next(c, t);

            if (next == -1) {
                break;
            }
            if (next <= t || (!cron_is_every(c, NULL) && next % S != 0)) {
                abort();
            }
            t = next;
        }
    }
    cron_free(c);
    return 0;
}
