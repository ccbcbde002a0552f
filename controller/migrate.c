/* migrate: applies the compiled-in migrations (migrate_builtin, generated
 * by the build from controller/migrations/) under an advisory lock, one
 * transaction each. */
#include "migrate.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "db.h"
#include "log.h"

static const char sql_create_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version int PRIMARY KEY, "
    "name text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now())";

int migrate_version(struct db *d, int *out)
{
    struct db_res *res = NULL;
    int64_t v = 0;
    int rc;

    /* Two statements: one that names a missing table does not parse. */
    rc = db_exec_ctx(d, "migrate: version",
                     "SELECT to_regclass('schema_migrations') IS NOT NULL", 0,
                     NULL, &res);
    if (rc != ST_OK) {
        return rc;
    }
    if (strcmp(db_res_get(res, 0, 0), "t") == 0) {
        db_res_free(res);
        res = NULL;
        rc = db_exec_ctx(d, "migrate: version",
                         "SELECT coalesce(max(version), 0) FROM "
                         "schema_migrations",
                         0, NULL, &res);
        if (rc == ST_OK && db_res_int64(res, 0, 0, &v) != ST_OK) {
            rc = ST_INTERNAL;
        }
    }
    db_res_free(res);
    if (rc == ST_OK) {
        *out = (int)v;
    }
    return rc;
}

/* Migrations must come ascending from version 1: the build checks the file
 * names, this checks any list. */
static bool list_is_ordered(const struct migration *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i].version < 1 || !list[i].name || !list[i].sql ||
            (i > 0 && list[i].version <= list[i - 1].version)) {
            log_error("migrate: migration list out of order at entry %zu", i);
            return false;
        }
    }
    return true;
}

/* Refuses a database that is not UTF8: everything we store is UTF-8, and
 * only a UTF8 database makes the server check it (SQL_ASCII takes any
 * byte). */
static int check_encoding(struct db *d)
{
    struct db_res *res = NULL;
    int rc =
        db_exec_ctx(d, "migrate: encoding",
                    "SELECT current_setting('server_encoding')", 0, NULL, &res);

    if (rc == ST_OK && strcmp(db_res_get(res, 0, 0), "UTF8") != 0) {
        log_error("migrate: the database's encoding is %s; Handoff needs a "
                  "UTF8 database (CREATE DATABASE ... ENCODING 'UTF8' "
                  "TEMPLATE template0)",
                  db_res_get(res, 0, 0));
        rc = ST_INVALID;
    }
    db_res_free(res);
    return rc;
}

/* Warns about recorded migrations whose name differs from ours: the
 * database was migrated by a build with other migrations under the same
 * numbers. */
static int check_names(struct db *d, const struct migration *list, size_t n)
{
    struct db_res *res = NULL;
    int rc = db_exec_ctx(d, "migrate: names",
                         "SELECT version, name FROM schema_migrations "
                         "ORDER BY version",
                         0, NULL, &res);

    for (size_t r = 0; rc == ST_OK && r < db_res_rows(res); r++) {
        int64_t v;

        if (db_res_int64(res, r, 0, &v) != ST_OK) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (list[i].version == v &&
                strcmp(list[i].name, db_res_get(res, r, 1)) != 0) {
                log_warn("migrate: version %d is recorded as \"%s\" but "
                         "this build calls it \"%s\"",
                         list[i].version, db_res_get(res, r, 1), list[i].name);
            }
        }
    }
    db_res_free(res);
    return rc;
}

static int apply_one(struct db *d, const struct migration *m)
{
    char what[128];
    char version[16];
    const char *p[2] = {version, m->name};
    int rc;

    snprintf(what, sizeof(what), "migration %04d_%s", m->version, m->name);
    snprintf(version, sizeof(version), "%d", m->version);
    rc = db_begin(d);
    if (rc == ST_OK) {
        rc = db_exec_script(d, what, m->sql);
    }
    if (rc == ST_OK) {
        rc = db_exec_ctx(d, what,
                         "INSERT INTO schema_migrations (version, name) "
                         "VALUES ($1::int, $2)",
                         2, p, NULL);
    }
    if (rc == ST_OK) {
        rc = db_commit(d);
    }
    if (rc != ST_OK) {
        db_rollback(d);
        log_error("migrate: %s failed (%s) and was rolled back; the schema "
                  "stays at version %d",
                  what, status_str(rc), m->version - 1);
        return rc == ST_UPSTREAM ? ST_UPSTREAM : ST_INTERNAL;
    }
    log_info("migrate: applied %s", what);
    return ST_OK;
}

int migrate_apply(struct db *d, const struct migration *list, size_t n)
{
    char key[24];
    const char *p[1] = {key};
    int64_t t0 = clock_mono_ns();
    int known = n > 0 ? list[n - 1].version : 0;
    int current = 0;
    int applied = 0;
    int rc;

    if (!list_is_ordered(list, n)) {
        return ST_INTERNAL;
    }
    if (db_in_transaction(d)) {
        log_error("migrate: called inside a transaction");
        return ST_INTERNAL;
    }
    rc = check_encoding(d);
    if (rc != ST_OK) {
        return rc;
    }
    snprintf(key, sizeof(key), "%" PRId64, MIGRATE_LOCK_KEY);
    /* A session lock, held across the migrations' own transactions and
     * released with the session if this process dies. */
    rc = db_exec_ctx(d, "migrate: lock", "SELECT pg_advisory_lock($1::bigint)",
                     1, p, NULL);
    if (rc != ST_OK) {
        return rc;
    }
    /* Under the lock: concurrent CREATE TABLE IF NOT EXISTS can fail. */
    rc = db_exec_script(d, "migrate: schema_migrations", sql_create_table);
    if (rc == ST_OK) {
        rc = migrate_version(d, &current);
    }
    if (rc == ST_OK) {
        rc = check_names(d, list, n);
    }
    if (rc == ST_OK && current > known) {
        log_error("migrate: the database schema is at version %d, newer than "
                  "this controller knows (%d): a newer controller migrated "
                  "it. Run that version or newer, or use another database",
                  current, known);
        rc = ST_CONFLICT;
    }
    for (size_t i = 0; i < n && rc == ST_OK; i++) {
        if (list[i].version > current) {
            rc = apply_one(d, &list[i]);
            applied += rc == ST_OK;
        }
    }
    /* Gone with the session anyway when the connection is. */
    if (db_is_ok(d)) {
        (void)db_exec_ctx(d, "migrate: unlock",
                          "SELECT pg_advisory_unlock($1::bigint)", 1, p, NULL);
    }
    if (rc == ST_OK) {
        log_info("migrate: schema at version %d (%d applied, %" PRId64 " ms)",
                 applied > 0 ? known : current, applied,
                 (clock_mono_ns() - t0) / CLOCK_NS_PER_MS);
    }
    return rc;
}

int migrate_run(struct db *d)
{
    size_t n = 0;
    const struct migration *list = migrate_builtin(&n);

    return migrate_apply(d, list, n);
}
