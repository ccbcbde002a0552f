/* What remote.c (libcurl) and remote_json.c (jansson) share: the API's
 * JSON, decoded and encoded without either library's types. Tests use these
 * directly to feed hostile answers. */
#ifndef HANDOFF_REMOTE_INT_H
#define HANDOFF_REMOTE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "remote.h"
#include "status.h"

/* Each decoder parses text[0..len) and fills out (caller storage) only on
 * success. Returns 0, or ST_PROTOCOL with why (whylen bytes) saying what
 * is wrong: not JSON, not an object, or a required field missing (a run's
 * id, a page's runs array). Optional fields that are missing, null or of
 * the wrong type read as absent; list entries that are not objects or lack
 * their id or name are left out. */
MUST_CHECK int remote_json_run(const char *text, size_t len, bool detail,
                               struct remote_run *out, char *why,
                               size_t whylen);
MUST_CHECK int remote_json_run_page(const char *text, size_t len,
                                    struct remote_run_page *out, char *why,
                                    size_t whylen);
MUST_CHECK int remote_json_suites(const char *text, size_t len,
                                  struct remote_suite_list *out, char *why,
                                  size_t whylen);
MUST_CHECK int remote_json_workers(const char *text, size_t len,
                                   struct remote_worker_list *out, char *why,
                                   size_t whylen);

/* Decodes one event-stream event: type is its "event:" field ("message"
 * when it had none: then the data's "kind" names it). Returns 0;
 * ST_NOT_FOUND for a kind handoffctl does not know (skip it); ST_PROTOCOL
 * when data is not a JSON object or lacks what the kind needs (a test
 * event without its test). */
MUST_CHECK int remote_json_event(const char *type, const char *data, size_t len,
                                 struct remote_event *out, char *why,
                                 size_t whylen);
void remote_event_cleanup(struct remote_event *ev);

/* Appends the body of POST /api/v1/runs to out. Returns 0, or ST_INVALID
 * with why naming the field whose text is not valid UTF-8. */
MUST_CHECK int remote_json_run_request(const struct remote_run_request *req,
                                       struct buf *out, char *why,
                                       size_t whylen);
/* Appends {"reason": reason} to out. Returns 0 or ST_INVALID. */
MUST_CHECK int remote_json_cancel(const char *reason, struct buf *out,
                                  char *why, size_t whylen);

/* A schedule object, and {"schedules": [...]}. */
MUST_CHECK int remote_json_schedule(const char *text, size_t len,
                                    struct remote_schedule *out, char *why,
                                    size_t whylen);
MUST_CHECK int remote_json_schedules(const char *text, size_t len,
                                     struct remote_schedule_list *out,
                                     char *why, size_t whylen);
/* Appends the body of POST /api/v1/schedules to out. Returns 0, or
 * ST_INVALID with why naming a field that is not valid UTF-8. */
MUST_CHECK int
remote_json_schedule_request(const struct remote_schedule_request *req,
                             struct buf *out, char *why, size_t whylen);

/* If text is the API's error object, copies its code and message into err
 * (truncated to fit) and returns true; otherwise leaves err alone. */
bool remote_json_error(const char *text, size_t len, struct remote_error *err);

#endif
