/* Handoff's status codes: one enum for the whole project. A code tells the
 * caller what to do next; the detail goes to the log. */
#ifndef HANDOFF_STATUS_H
#define HANDOFF_STATUS_H

/* X(name, text). ST_OK must stay first and zero. */
#define STATUS_MAP(X)                                                          \
    X(OK, "ok")                                                                \
    X(INVALID, "invalid argument")                                             \
    X(NOT_FOUND, "not found")                                                  \
    X(CONFLICT, "conflict")                                                    \
    X(TOO_LARGE, "too large")                                                  \
    X(IO, "input/output error")                                                \
    X(UPSTREAM, "upstream unavailable")                                        \
    X(TIMEOUT, "timed out")                                                    \
    X(CANCELLED, "cancelled")                                                  \
    X(PROTOCOL, "protocol error")                                              \
    X(INTERNAL, "internal error")

enum status {
#define STATUS_ENUM(name, text) ST_##name,
    STATUS_MAP(STATUS_ENUM)
#undef STATUS_ENUM
        ST_COUNT_
};

#if defined(__GNUC__)
#define MUST_CHECK __attribute__((warn_unused_result))
#else
#define MUST_CHECK
#endif

/* Returns the text of code, or "unknown status" for a value out of range. */
const char *status_str(int code);

#endif
