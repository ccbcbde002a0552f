/* db: the controller's one module on top of libpq (PostgreSQL 15). PGconn
 * and PGresult stay inside db.c; callers see status codes and these
 * handles. docs/database.md describes the schema and the threading model.
 *
 * A struct db is one connection, used by one thread at a time. Every call
 * blocks on the network, so the libevent loop thread never makes any of
 * them: it hands work to controller/dbpool.h. Values always travel as
 * parameters ($1..$n, text format), never spliced into SQL text.
 *
 * What the status of a call that talks to the server means:
 *   0            done.
 *   ST_UPSTREAM  retryable. Either the connection is down or was lost
 *                (SQLSTATE class 08, 57P01-57P03 server shut down or
 *                starting, class 53 out of resources such as too many
 *                connections; db_is_ok is then false: db_reset before
 *                trying again), or the server rolled the transaction back
 *                to keep it consistent: serialization failure (40001) or
 *                deadlock (40P01). Either way, run the whole transaction
 *                again (db_transact does for the second kind). A connection
 *                lost during COMMIT leaves it unknown whether the
 *                transaction committed: make such writes idempotent.
 *   ST_CONFLICT  unique violation (23505): the row exists already.
 *   ST_INVALID   the server refused the data: data exceptions (22xxx: bad
 *                input syntax, invalid UTF-8, out of range) and integrity
 *                violations (23xxx: not null, foreign key, check).
 *   ST_TIMEOUT   the statement was cancelled (57014, statement_timeout).
 *   ST_INTERNAL  anything else: a mistake in our SQL (42xxx), a statement
 *                sent in a transaction that already failed (25P02), misuse
 *                of this API.
 * The failure is logged here, once, with its SQLSTATE, the server's
 * message and the caller's context (db_exec_ctx); callers act on the code
 * and do not log it again. While a connection stays down, further calls on
 * it fail at once with ST_UPSTREAM without logging again. */
#ifndef HANDOFF_DB_H
#define HANDOFF_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

struct db;
struct db_res;

/* Tries of db_transact in all (the first run and two retries). */
#define DB_TRANSACT_TRIES 3

/* ---- Connections ------------------------------------------------------ */

/* Connects to dsn, a libpq connection string ("host=127.0.0.1 port=5432
 * dbname=handoff user=postgres") or URI ("postgresql://..."). Unless dsn
 * says otherwise: connect_timeout=10, client_encoding=UTF8, TCP keepalives
 * (a dead peer is noticed in about a minute), application_name=handoff.
 * Returns 0 and *out (free with db_free), ST_INVALID for a malformed dsn,
 * or ST_UPSTREAM when the server cannot be reached or refuses the login
 * (logged once). Any thread; blocks up to connect_timeout. */
MUST_CHECK int db_connect(const char *dsn, struct db **out);

/* Makes a handle for dsn without connecting: db_is_ok is false and every
 * call fails with ST_UPSTREAM until db_reset succeeds. For owners that must
 * hold a handle while the server is away (dbpool). Returns 0 and *out, or
 * ST_INVALID for a malformed dsn. Does not block. */
MUST_CHECK int db_new(const char *dsn, struct db **out);

/* Closes the connection (a transaction still open is rolled back by the
 * server) and frees d. NULL does nothing. */
void db_free(struct db *d);

/* (Re)connects d with the same settings, after a connection loss or for a
 * handle from db_new. Whatever was in progress on the old connection is
 * gone (an open transaction was rolled back). Returns 0, or ST_UPSTREAM
 * (logged when the connection goes from up to down, not at each retry).
 * Blocks up to connect_timeout. */
int db_reset(struct db *d);

/* True while the connection is usable as far as can be told without a
 * round trip: it also reads what the server may have sent on an idle
 * connection, so a server that shut down or closed the connection is
 * noticed here. A dead network path is noticed only by the next
 * statement (or by TCP keepalives). */
bool db_is_ok(struct db *d);

/* The SQLSTATE of the last failed call on d ("40001"), or "" after a
 * success or for a failure that has none (connection loss, misuse). */
const char *db_last_sqlstate(const struct db *d);

/* ---- Statements ------------------------------------------------------- */

/* Runs one statement (no ';'-separated lists) with nparams text parameters
 * $1..$n from values (NULL entries are SQL NULL; values may be NULL when
 * nparams is 0). Strings must be UTF-8 (the server refuses anything else
 * with ST_INVALID). On success, if out is not NULL, *out is the result
 * (rows of a SELECT or RETURNING; free with db_res_free); out may be NULL
 * to drop it. Returns 0 or a status from the list above. A caller that
 * does not care (a best-effort update) may ignore the status: the failure
 * is logged. */
int db_exec(struct db *d, const char *sql, int nparams,
            const char *const *values, struct db_res **out);

/* db_exec with what, a short text naming the caller's context ("run 42:
 * store", "ingest job 42.0"), in the failure's log line. */
int db_exec_ctx(struct db *d, const char *what, const char *sql, int nparams,
                const char *const *values, struct db_res **out);

/* Runs a script: several statements separated by ';', without parameters
 * or results (schema migrations). Stops at the first failing statement;
 * outside a transaction the statements run in one implicit transaction.
 * Returns 0 or a status from the list above. */
MUST_CHECK int db_exec_script(struct db *d, const char *what, const char *sql);

/* ---- Results ---------------------------------------------------------- */

/* Rows and columns of res; 0 for a NULL res. */
size_t db_res_rows(const struct db_res *res);
size_t db_res_cols(const struct db_res *res);

/* The text of a value, borrowed until db_res_free: NULL for SQL NULL or a
 * row or column out of range. Booleans are "t"/"f"; bytea is "\x..."
 * hex. */
const char *db_res_get(const struct db_res *res, size_t row, size_t col);
/* True for SQL NULL (and out of range). */
bool db_res_is_null(const struct db_res *res, size_t row, size_t col);
/* Parses an integer value (int, bigint, or text holding a decimal
 * integer) into *out. Returns 0, or ST_INVALID for NULL, out of range or
 * not an integer (*out untouched). */
MUST_CHECK int db_res_int64(const struct db_res *res, size_t row, size_t col,
                            int64_t *out);
/* The index of the column called name (as PQfnumber: unquoted names
 * match case-insensitively, "quoted" ones exactly), or -1. */
int db_res_col(const struct db_res *res, const char *name);
/* Rows an INSERT, UPDATE, DELETE, MERGE, SELECT or COPY touched (the
 * command tag's count), 0 when the command has none. */
int64_t db_res_affected(const struct db_res *res);
/* NULL does nothing. */
void db_res_free(struct db_res *res);

/* ---- Transactions ----------------------------------------------------- */

/* BEGIN. Returns 0, ST_INTERNAL when a transaction is open already (or a
 * COPY is in progress), or a status from the list above. */
MUST_CHECK int db_begin(struct db *d);

/* COMMIT. Returns 0, or ST_INTERNAL when no transaction is open or it had
 * failed already (the server then rolls back: a statement's failure was
 * ignored), or a status from the list above (ST_UPSTREAM for a
 * serialization failure at commit or a lost connection: see above). Either
 * way the transaction is over when this returns. */
MUST_CHECK int db_commit(struct db *d);

/* Ends the open transaction without its changes, abandoning a COPY in
 * progress first. Does nothing when no transaction is open or the
 * connection is gone (the server then rolls back by itself); a failure is
 * logged. */
void db_rollback(struct db *d);

/* True between db_begin and the end of that transaction (a failed one
 * included), and while a COPY is in progress: what db_rollback ends. No
 * round trip. */
bool db_in_transaction(struct db *d);

/* Runs fn(d, arg) in a transaction: BEGIN, fn, then COMMIT if fn returned
 * 0, else ROLLBACK. When the server aborts the transaction with a
 * serialization failure or a deadlock (fn or COMMIT got ST_UPSTREAM with
 * 40001 or 40P01), all of it runs again after a short random pause, up to
 * DB_TRANSACT_TRIES times in all; fn must therefore have no effect outside
 * the transaction. A lost connection is not retried. For SERIALIZABLE,
 * fn's first statement is SET TRANSACTION ISOLATION LEVEL SERIALIZABLE.
 * Returns 0 (committed), fn's status, or db_begin's or db_commit's. */
MUST_CHECK int db_transact(struct db *d, int (*fn)(struct db *d, void *arg),
                           void *arg);

/* ---- Bulk load (COPY ... FROM STDIN, text format) --------------------- */

/* Starts sql, a "COPY table (col, ...) FROM STDIN" statement (text format,
 * the default). Returns 0, or a status from the list above with nothing in
 * progress. While the COPY runs, only db_copy_row, db_copy_end and
 * db_rollback may be called on d. */
MUST_CHECK int db_copy_begin(struct db *d, const char *sql);

/* Sends one row of n fields (NULL entries are SQL NULL), escaped for the
 * text format. Rows are buffered and sent in blocks of about 64 KiB, so
 * the server's verdict on the data mostly comes from db_copy_end. Returns
 * 0, ST_INVALID for n < 1, ST_INTERNAL when no COPY is in progress, or a
 * status from the list above; on failure the COPY is abandoned (nothing
 * from it is stored; an enclosing transaction has failed): do not call
 * db_copy_end. */
MUST_CHECK int db_copy_row(struct db *d, int n, const char *const *fields);

/* Sends the rest and ends the COPY. Returns 0 (all rows stored, or in the
 * enclosing transaction), ST_INTERNAL when no COPY is in progress, or a
 * status from the list above (nothing from the COPY is stored). */
MUST_CHECK int db_copy_end(struct db *d);

/* ---- Start-up --------------------------------------------------------- */

/* Polls every 100 ms until the server at dsn accepts connections (it
 * answers, is not starting up or shutting down; the login itself is not
 * tried), for up to timeout_ms. Returns 0, ST_TIMEOUT, or ST_INVALID for a
 * malformed dsn. Any thread; blocks. */
MUST_CHECK int db_wait_ready(const char *dsn, int64_t timeout_ms);

/* ---- Pure helpers (no connection; exposed for tests) ------------------ */

/* The status an SQLSTATE stands for, as in the list above ("23505" ->
 * ST_CONFLICT). NULL or malformed -> ST_INTERNAL. */
int db_sqlstate_status(const char *sqlstate);

/* Appends field to b escaped for COPY's text format: backslash, tab,
 * newline and carriage return as \\, \t, \n, \r; NULL as \N. Other bytes
 * go as they are. b must have no cap. */
void db_copy_escape(struct buf *b, const char *field);

#endif
