/* Text for the status codes of status.h. */
#include "status.h"

static const char *const status_texts[] = {
#define STATUS_TEXT(name, text) text,
    STATUS_MAP(STATUS_TEXT)
#undef STATUS_TEXT
};

const char *status_str(int code)
{
    if (code < 0 || code >= ST_COUNT_) {
        return "unknown status";
    }
    return status_texts[code];
}
