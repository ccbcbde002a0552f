/* Redis access through hiredis 0.14 (synchronous API, one connection per
 * thread; 0.14 has no async timeouts, so the loop never calls Redis: the
 * callers do from their own threads). */
#include "kv.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "mem.h"

struct kv {
    char *host;
    int port;
    int db;
    char *password;
    struct timeval timeout;
    redisContext *ctx;
    bool logged_down;
};

static const char kv_unlock_lua[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";
static const char kv_renew_lua[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

int kv_new(const char *url, const char *password, int64_t timeout_ms,
           struct kv **out)
{
    const char *p;
    const char *rest;
    size_t hostlen;
    struct kv *k;
    char *end;
    long port = 6379;
    long db = 0;

    if (!url || strncmp(url, "redis://", 8) != 0) {
        return ST_INVALID;
    }
    p = url + 8;
    hostlen = strcspn(p, ":/");
    rest = p + hostlen;
    if (hostlen == 0) {
        return ST_INVALID;
    }
    if (*rest == ':') {
        port = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || port < 1 || port > 65535 ||
            (*end && *end != '/')) {
            return ST_INVALID;
        }
        rest = end;
    }
    if (*rest == '/' && rest[1]) {
        db = strtol(rest + 1, &end, 10);
        if (*end || db < 0 || db > 1000) {
            return ST_INVALID;
        }
    }
    k = mem_zalloc(sizeof(*k));
    k->host = mem_strndup(p, hostlen);
    k->port = (int)port;
    k->db = (int)db;
    k->password = password && *password ? mem_strdup(password) : NULL;
    k->timeout.tv_sec = timeout_ms / 1000;
    k->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    *out = k;
    return ST_OK;
}

void kv_free(struct kv *k)
{
    if (!k) {
        return;
    }
    if (k->ctx) {
        redisFree(k->ctx);
    }
    free(k->host);
    free(k->password);
    free(k);
}

static void drop(struct kv *k, const char *why)
{
    if (!k->logged_down) {
        log_warn("redis %s:%d: %s", k->host, k->port, why);
        k->logged_down = true;
    }
    if (k->ctx) {
        redisFree(k->ctx);
        k->ctx = NULL;
    }
}

/* Runs a command; a reply (caller frees) or NULL after dropping the
 * connection. */
static redisReply *command(struct kv *k, int argc, const char **argv)
{
    redisReply *r;

    if (!k->ctx) {
        k->ctx = redisConnectWithTimeout(k->host, k->port, k->timeout);
        if (!k->ctx || k->ctx->err) {
            drop(k, k->ctx ? k->ctx->errstr : "cannot connect");
            return NULL;
        }
        redisSetTimeout(k->ctx, k->timeout);
        if (k->password || k->db) {
            const char *auth[2] = {"AUTH", k->password};
            char dbtext[16];
            const char *sel[2] = {"SELECT", dbtext};

            if (k->password) {
                r = redisCommandArgv(k->ctx, 2, auth, NULL);
                if (!r || r->type == REDIS_REPLY_ERROR) {
                    drop(k, r ? r->str : "AUTH failed");
                    freeReplyObject(r);
                    return NULL;
                }
                freeReplyObject(r);
            }
            if (k->db) {
                snprintf(dbtext, sizeof(dbtext), "%d", k->db);
                r = redisCommandArgv(k->ctx, 2, sel, NULL);
                if (!r || r->type == REDIS_REPLY_ERROR) {
                    drop(k, r ? r->str : "SELECT failed");
                    freeReplyObject(r);
                    return NULL;
                }
                freeReplyObject(r);
            }
        }
        if (k->logged_down) {
            log_info("redis %s:%d: reachable again", k->host, k->port);
            k->logged_down = false;
        }
    }
    r = redisCommandArgv(k->ctx, argc, argv, NULL);
    if (!r) {
        drop(k, k->ctx->errstr[0] ? k->ctx->errstr : "no reply");
        return NULL;
    }
    return r;
}

int kv_ping(struct kv *k)
{
    const char *argv[1] = {"PING"};
    redisReply *r = command(k, 1, argv);
    int rc = ST_UPSTREAM;

    if (r && r->type == REDIS_REPLY_STATUS) {
        rc = ST_OK;
    }
    freeReplyObject(r);
    return rc;
}

int kv_lock(struct kv *k, const char *key, const char *token, int64_t ttl_ms)
{
    char ttl[32];
    const char *argv[6] = {"SET", key, token, "NX", "PX", ttl};
    redisReply *r;
    int rc;

    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    r = command(k, 6, argv);
    if (!r) {
        return ST_UPSTREAM;
    }
    if (r->type == REDIS_REPLY_STATUS) {
        rc = ST_OK;
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = ST_CONFLICT;
    } else {
        rc = ST_UPSTREAM;
    }
    freeReplyObject(r);
    return rc;
}

static int eval_owned(struct kv *k, const char *script, const char *key,
                      const char *token, const char *extra)
{
    const char *argv[6] = {"EVAL", script, "1", key, token, extra};
    redisReply *r = command(k, extra ? 6 : 5, argv);
    int rc;

    if (!r) {
        return ST_UPSTREAM;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        rc = r->integer == 1 ? ST_OK : ST_NOT_FOUND;
    } else {
        rc = ST_UPSTREAM;
    }
    freeReplyObject(r);
    return rc;
}

int kv_unlock(struct kv *k, const char *key, const char *token)
{
    return eval_owned(k, kv_unlock_lua, key, token, NULL);
}

int kv_renew(struct kv *k, const char *key, const char *token, int64_t ttl_ms)
{
    char ttl[32];

    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    return eval_owned(k, kv_renew_lua, key, token, ttl);
}
