/* migrate: brings the database schema to the version this binary knows, at
 * start-up. The migrations are controller/migrations/NNNN_name.sql,
 * compiled in by the build; version NNNN of one is its number. Each runs
 * in a transaction of its own, recorded in schema_migrations, all under a
 * PostgreSQL advisory lock so that controllers starting together apply
 * each migration once. docs/database.md has the procedure. */
#ifndef HANDOFF_MIGRATE_H
#define HANDOFF_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct db;

/* The session advisory lock (pg_advisory_lock) held while migrating: the
 * bytes of "handoff" as a bigint. */
#define MIGRATE_LOCK_KEY INT64_C(0x68616e646f6666)

struct migration {
    int version;      /* 1, 2, ...: strictly ascending in a list */
    const char *name; /* "schema": the file name without number and .sql */
    const char *sql;  /* statements separated by ';' */
};

/* The migrations compiled into this binary, ascending; *n gets their
 * number. Static storage. */
const struct migration *migrate_builtin(size_t *n);

/* Applies the built-in migrations the database lacks (migrate_apply).
 * Logs what it did. Returns as migrate_apply. */
MUST_CHECK int migrate_run(struct db *d);

/* Takes the advisory lock, creates schema_migrations if needed, and
 * applies each migration of list (n of them, ascending) whose version is
 * above the highest recorded, each in its own transaction with its row in
 * schema_migrations; then releases the lock. Re-running does nothing.
 * Returns 0; ST_CONFLICT when the database records a version above the
 * last of list (a newer controller migrated it: this one must not run
 * against it); ST_INVALID when the database is not UTF8; ST_INTERNAL for a
 * list out of order or a migration that failed (it left nothing behind:
 * the ones before it stay applied); or ST_UPSTREAM. Every refusal is
 * logged with what to do. d must have no transaction open. Blocks while
 * another controller migrates. */
MUST_CHECK int migrate_apply(struct db *d, const struct migration *list,
                             size_t n);

/* The highest version recorded in d's schema_migrations into *out (0 when
 * the table is missing or empty). Returns 0 or db's statuses. */
MUST_CHECK int migrate_version(struct db *d, int *out);

#endif
