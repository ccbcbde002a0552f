/* The suites compiled into this binary, as registered by HF_SUITE or
 * hf_register_suite, and their effective settings. Registration happens
 * before main (constructors); everything else runs on the main thread. */
#ifndef HANDOFF_REGISTRY_H
#define HANDOFF_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handoff.h"
#include "status.h"

#define REGISTRY_DEFAULT_NAMESPACE "default"
#define REGISTRY_DEFAULT_TEST_TIMEOUT_MS INT64_C(60000)
#define REGISTRY_DEFAULT_SUITE_TIMEOUT_MS INT64_C(3600000)
#define REGISTRY_MAX_NAME 128

/* Checks every registered suite: valid unique names, at least one test,
 * unique test names, sane settings. Returns 0, or ST_INVALID with a message
 * naming the suite and the problem in err. */
MUST_CHECK int registry_check(char *err, size_t errlen);

size_t registry_count(void);
/* The i-th suite in registration order; i < registry_count(). */
const struct hf_suite *registry_at(size_t i);
/* The suite named name, or NULL. */
const struct hf_suite *registry_find(const char *name);
/* Every suite name, comma-separated, into out (for error messages). */
void registry_names(char *out, size_t outlen);

size_t registry_test_count(const struct hf_suite *s);
size_t registry_workflow_count(const struct hf_suite *s);
/* The workflow called name ("WORKFLOW" or "SUITE/WORKFLOW"). Returns 0
 * with *suite and *wf set; ST_NOT_FOUND (err lists the workflows there
 * are) or ST_CONFLICT (the name is in several suites). */
MUST_CHECK int registry_find_workflow(const char *name,
                                      const struct hf_suite **suite,
                                      const struct hf_workflow **wf, char *err,
                                      size_t errlen);
const char *registry_namespace(const struct hf_suite *s);
int registry_max_attempts(const struct hf_suite *s, const struct hf_test *t);
int64_t registry_test_timeout_ms(const struct hf_suite *s,
                                 const struct hf_test *t);
int64_t registry_suite_timeout_ms(const struct hf_suite *s);

/* True when name is a valid suite or namespace name: 1-128 characters of
 * [A-Za-z0-9_.-]. */
bool registry_is_valid_name(const char *name);

/* Forgets every suite (unit tests only). */
void registry_reset(void);

#endif
