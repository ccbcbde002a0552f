/* kv: the controller's one module on top of hiredis (Redis 6+). Redis
 * holds the locks that make a schedule fire once across controller
 * replicas (docs/scheduling.md). redisContext and redisReply stay inside
 * kv.c. A struct kv is one connection for one thread at a time; every call
 * has a timeout, and a broken connection is re-established by the next
 * call. */
#ifndef HANDOFF_KV_H
#define HANDOFF_KV_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

struct kv;

/* Parses url ("redis://host:port[/db]", password from HANDOFF_REDIS_PASSWORD
 * by the caller) and prepares a connection; connecting happens lazily.
 * Returns 0 and *out, or ST_INVALID for a bad URL. */
MUST_CHECK int kv_new(const char *url, const char *password, int64_t timeout_ms,
                      struct kv **out);
void kv_free(struct kv *k);

/* PING. Returns 0 or ST_UPSTREAM. */
MUST_CHECK int kv_ping(struct kv *k);

/* SET key value NX PX ttl_ms: 0 when this call took the key, ST_CONFLICT
 * when someone holds it, ST_UPSTREAM when Redis could not answer. */
MUST_CHECK int kv_lock(struct kv *k, const char *key, const char *token,
                       int64_t ttl_ms);
/* Deletes key only if it still holds token (a Lua compare-and-delete).
 * Returns 0 (deleted), ST_NOT_FOUND (gone or someone else's) or
 * ST_UPSTREAM. */
MUST_CHECK int kv_unlock(struct kv *k, const char *key, const char *token);
/* Extends key's expiry to ttl_ms only if it still holds token. Returns 0,
 * ST_NOT_FOUND (lost it) or ST_UPSTREAM. */
MUST_CHECK int kv_renew(struct kv *k, const char *key, const char *token,
                        int64_t ttl_ms);

#endif
