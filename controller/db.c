/* db: PostgreSQL through libpq, blocking, one connection per struct db. The
 * only file that includes libpq-fe.h; db.h states what each status means. */
#include "db.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "clock.h"
#include "log.h"
#include "mem.h"

/* COPY rows are sent in blocks of this much: one libpq call per block,
 * not per row. */
#define DB_COPY_FLUSH_BYTES (64 * 1024)
/* Bytes of one server message, and of a statement naming a failure, in a
 * log line. */
#define DB_LOG_TEXT_MAX 300
#define DB_LOG_SQL_MAX 60
#define DB_WAIT_POLL_MS 100
/* db_transact's pause before a retry: random, up to this many ms per try
 * already made, so two transactions that deadlocked do not meet again. */
#define DB_RETRY_PAUSE_MS 20
/* Statements prepared per connection at most (the program has fewer than
 * this many distinct statements; the rest would run unprepared). */
#define DB_PREP_MAX 256
/* A connection on which prepared statements went missing this often (a
 * pooler in transaction mode between us and PostgreSQL) stops preparing. */
#define DB_PREP_MAX_LOSSES 3

/* A statement prepared on the current session, named "hf<gen>_<index>". */
struct prep {
    char *sql;
    uint64_t hash;
};

struct db {
    PGconn *conn;     /* NULL until the first connection attempt */
    char *dsn;        /* as given; never logged (it may hold a password) */
    bool down_logged; /* this outage has been logged */
    bool in_copy;     /* between db_copy_begin and its end */
    struct buf copy;  /* COPY rows not sent yet */
    char copy_label[DB_LOG_SQL_MAX + 8];
    char sqlstate[6]; /* of the last failure, or "" */
    /* Statements prepared on this session: db_exec runs each distinct
     * statement text as a named prepared statement, so PostgreSQL parses
     * and plans it once per connection, not once per call (measured: the
     * server's CPU per run created and stored is the controller's limit
     * under load). Cleared with every new session. */
    struct prep *preps;
    size_t n_preps;
    unsigned prep_gen; /* part of the names; bumped when preps is reset */
    int prep_losses;   /* times prepared statements went missing */
    bool prep_off;     /* too many losses: run everything unprepared */
};

struct db_res {
    PGresult *pg;
};

/* ---- Logging ----------------------------------------------------------- */

/* Copies the first line of s into out (cap bytes), cutting it at max
 * bytes with "...". Server and libpq messages end in a newline and go on
 * with hints on further lines. */
static void first_line(char *out, size_t cap, const char *s, size_t max)
{
    size_t n = 0;

    if (!s) {
        s = "";
    }
    while (*s == ' ' || *s == '\n' || *s == '\t') {
        s++;
    }
    while (s[n] && s[n] != '\n' && n < max && n + 4 < cap) {
        n++;
    }
    memcpy(out, s, n);
    if (s[n] && s[n] != '\n') {
        memcpy(out + n, "...", 4);
    } else {
        out[n] = '\0';
    }
}

/* What a log line says a failure was about: the caller's context, else
 * the start of the statement. */
static const char *label_of(char *out, size_t cap, const char *what,
                            const char *sql)
{
    if (what) {
        return what;
    }
    first_line(out, cap, sql, DB_LOG_SQL_MAX);
    return out;
}

/* Server notices (NOTICE, WARNING, and the FATAL a server sends before it
 * closes an idle connection) would go to stderr with libpq's default. */
static void on_notice(void *arg, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    char text[DB_LOG_TEXT_MAX + 8];
    enum log_level level = LOG_DEBUG;

    (void)arg;
    if (!sev) {
        sev = "NOTICE";
    }
    if (strcmp(sev, "WARNING") == 0) {
        level = LOG_WARN;
    } else if (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0) {
        level = LOG_INFO;
    }
    first_line(text, sizeof(text), msg ? msg : PQresultErrorMessage(res),
               DB_LOG_TEXT_MAX);
    log_msg(level, "db: server %s: %s", sev, text);
}

/* Logs that d's connection is down, once per outage. */
static void log_down(struct db *d, const char *label, const char *why)
{
    char text[DB_LOG_TEXT_MAX + 8];

    first_line(text, sizeof(text), why, DB_LOG_TEXT_MAX);
    if (d->down_logged) {
        log_debug("db: %s: PostgreSQL unavailable: %s", label, text);
        return;
    }
    d->down_logged = true;
    log_warn("db: %s: PostgreSQL unavailable: %s", label, text);
}

/* ---- Status of a result ------------------------------------------------ */

int db_sqlstate_status(const char *s)
{
    if (!s || strlen(s) != 5) {
        return ST_INTERNAL;
    }
    if (strcmp(s, "23505") == 0) {
        return ST_CONFLICT;
    }
    if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0) {
        return ST_UPSTREAM;
    }
    if (strcmp(s, "57014") == 0) {
        return ST_TIMEOUT;
    }
    if (strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 ||
        strcmp(s, "57P03") == 0) {
        return ST_UPSTREAM;
    }
    if (strncmp(s, "08", 2) == 0 || strncmp(s, "53", 2) == 0) {
        return ST_UPSTREAM;
    }
    if (strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0) {
        return ST_INVALID;
    }
    return ST_INTERNAL;
}

static bool is_serialization(const char *sqlstate)
{
    return sqlstate &&
           (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0);
}

static bool conn_ok(const struct db *d)
{
    return d->conn && PQstatus(d->conn) == CONNECTION_OK;
}

/* Classifies a failed result (res may be NULL: nothing could be sent) and
 * logs it once. */
static int failure(struct db *d, const PGresult *res, const char *label)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg =
        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail =
        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *where = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
    char text[DB_LOG_TEXT_MAX + 8];
    char more[DB_LOG_TEXT_MAX + 8];
    char ctx[DB_LOG_TEXT_MAX + 8];
    int rc;

    snprintf(d->sqlstate, sizeof(d->sqlstate), "%s", state ? state : "");
    if (!conn_ok(d)) {
        /* Whatever the server said last (57P01 "terminating connection"),
         * what counts is that the connection is gone. */
        log_down(d, label, msg ? msg : PQerrorMessage(d->conn));
        return ST_UPSTREAM;
    }
    rc = state ? db_sqlstate_status(state) : ST_INTERNAL;
    first_line(text, sizeof(text), msg ? msg : PQerrorMessage(d->conn),
               DB_LOG_TEXT_MAX);
    /* The detail names the key of a duplicate or missing row; a CHECK or
     * NOT NULL detail repeats the whole row, user data and all. */
    if (detail && strncmp(detail, "Failing row contains", 20) == 0) {
        detail = NULL;
    }
    first_line(more, sizeof(more), detail, DB_LOG_TEXT_MAX);
    first_line(ctx, sizeof(ctx), where, DB_LOG_TEXT_MAX);
    /* A unique violation is how callers learn that a row exists (an
     * idempotent repeat), and a serialization failure is contention that
     * gets retried: neither is worth a warning by itself. */
    log_msg(rc == ST_INTERNAL                              ? LOG_ERROR
            : rc == ST_CONFLICT || is_serialization(state) ? LOG_INFO
                                                           : LOG_WARN,
            "db: %s: SQLSTATE %s: %s%s%s%s%s%s", label, state ? state : "none",
            text, *more ? " (" : "", more, *more ? ")" : "", *ctx ? "; " : "",
            ctx);
    return rc;
}

/* Brings the connection back to idle after a statement that left it in a
 * COPY state, dropping what comes. */
static void drain(PGconn *conn)
{
    PGresult *res;

    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);

        PQclear(res);
        if (PQstatus(conn) != CONNECTION_OK || st == PGRES_COPY_BOTH) {
            break;
        }
        if (st == PGRES_COPY_IN &&
            PQputCopyEnd(conn, "not expected by the client") < 0) {
            break;
        }
        if (st == PGRES_COPY_OUT) {
            char *row = NULL;
            int n;

            while ((n = PQgetCopyData(conn, &row, 0)) > 0) {
                PQfreemem(row);
            }
            if (n == -2) {
                break;
            }
        }
    }
}

/* The status of a statement's result (res may be NULL), logged on
 * failure. */
static int check_result(struct db *d, const PGresult *res, const char *label)
{
    switch (res ? PQresultStatus(res) : PGRES_FATAL_ERROR) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        return ST_OK;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
        drain(d->conn);
        log_error("db: %s: a COPY through db_exec: use db_copy_begin", label);
        return ST_INTERNAL;
    default:
        return failure(d, res, label);
    }
}

/* 0 when d can take a statement now. */
static int check_usable(struct db *d, const char *label)
{
    d->sqlstate[0] = '\0';
    if (d->in_copy) {
        log_error("db: %s: a COPY is in progress on this connection", label);
        return ST_INTERNAL;
    }
    if (!conn_ok(d)) {
        log_down(d, label,
                 d->conn ? PQerrorMessage(d->conn) : "not connected yet");
        return ST_UPSTREAM;
    }
    return ST_OK;
}

/* ---- Connections ------------------------------------------------------- */

static int check_dsn(const char *dsn)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn ? dsn : "", &err);

    if (!opts) {
        char text[DB_LOG_TEXT_MAX + 8];

        first_line(text, sizeof(text), err ? err : "out of memory",
                   DB_LOG_TEXT_MAX);
        log_error("db: malformed connection string: %s", text);
        PQfreemem(err);
        return ST_INVALID;
    }
    PQconninfoFree(opts);
    return ST_OK;
}

/* Settings a DSN may override come before "dbname" (the DSN, expanded
 * in place: a repeated keyword takes the last value); client_encoding
 * comes after it: we always send UTF-8. */
#define DB_CONN_PARAMS 9
static const char *const conn_keys[DB_CONN_PARAMS] = {
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "fallback_application_name",
    "dbname",
    "client_encoding",
    NULL,
};

static void conn_values(const char **out, const char *connect_timeout,
                        const char *dsn)
{
    const char *values[DB_CONN_PARAMS] = {
        connect_timeout, "1", "30", "10", "3", "handoff", dsn, "UTF8", NULL,
    };

    memcpy(out, values, sizeof(values));
}

int db_new(const char *dsn, struct db **out)
{
    struct db *d;

    if (check_dsn(dsn) != ST_OK) {
        return ST_INVALID;
    }
    d = mem_zalloc(sizeof(*d));
    d->dsn = mem_strdup(dsn ? dsn : "");
    buf_init(&d->copy, 0);
    *out = d;
    return ST_OK;
}

/* Forgets the prepared statements (the session that held them is gone or
 * no longer holds them); new names keep clear of any that remain. */
static void preps_forget(struct db *d)
{
    for (size_t i = 0; i < d->n_preps; i++) {
        free(d->preps[i].sql);
    }
    d->n_preps = 0;
    d->prep_gen++;
}

int db_reset(struct db *d)
{
    preps_forget(d);
    if (d->in_copy) {
        d->in_copy = false;
        buf_reset(&d->copy);
    }
    d->sqlstate[0] = '\0';
    if (d->conn) {
        PQreset(d->conn);
    } else {
        const char *values[DB_CONN_PARAMS];

        conn_values(values, "10", d->dsn);
        d->conn = PQconnectdbParams(conn_keys, values, 1);
        if (!d->conn) {
            log_down(d, "connect", "libpq is out of memory");
            return ST_UPSTREAM;
        }
        /* Kept by PQreset: the hooks belong to the PGconn. */
        PQsetNoticeReceiver(d->conn, on_notice, NULL);
    }
    if (!conn_ok(d)) {
        log_down(d, "connect", PQerrorMessage(d->conn));
        return ST_UPSTREAM;
    }
    if (d->down_logged) {
        log_info("db: connected to PostgreSQL again");
        d->down_logged = false;
    }
    return ST_OK;
}

int db_connect(const char *dsn, struct db **out)
{
    struct db *d = NULL;
    int rc = db_new(dsn, &d);

    if (rc != ST_OK) {
        return rc;
    }
    rc = db_reset(d);
    if (rc != ST_OK) {
        db_free(d);
        return rc;
    }
    *out = d;
    return ST_OK;
}

void db_free(struct db *d)
{
    if (!d) {
        return;
    }
    if (d->conn) {
        PQfinish(d->conn);
    }
    buf_cleanup(&d->copy);
    preps_forget(d);
    free(d->preps);
    free(d->dsn);
    free(d);
}

bool db_is_ok(struct db *d)
{
    struct pollfd pfd = {.events = POLLIN};

    if (!conn_ok(d)) {
        return false;
    }
    if (d->in_copy) {
        return true;
    }
    /* An idle connection has nothing to read unless the server sent a
     * notice or is saying goodbye: a FATAL message, then end of file,
     * which a second read finds. */
    pfd.fd = PQsocket(d->conn);
    for (int i = 0; i < 4 && pfd.fd >= 0 && poll(&pfd, 1, 0) > 0; i++) {
        PGnotify *n;

        if (!PQconsumeInput(d->conn) || !conn_ok(d)) {
            log_down(d, "idle connection", PQerrorMessage(d->conn));
            return false;
        }
        while ((n = PQnotifies(d->conn)) != NULL) {
            PQfreemem(n);
        }
    }
    return conn_ok(d);
}

const char *db_last_sqlstate(const struct db *d)
{
    return d->sqlstate;
}

/* ---- Statements -------------------------------------------------------- */

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    }
    return h;
}

/* The failure that says a prepared statement is not (or no longer)
 * usable: 26000, it does not exist (a pooler gave us another session);
 * 0A000, "cached plan must not change result type" (a table changed
 * under it, e.g. a newer replica migrated). */
static bool is_prep_lost(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    return state &&
           (strcmp(state, "26000") == 0 || strcmp(state, "0A000") == 0);
}

/* Runs sql as this session's prepared statement, preparing it first if
 * it is new; unprepared when the cache is full or off. */
static PGresult *exec_prepared(struct db *d, const char *sql, int nparams,
                               const char *const *values)
{
    uint64_t h = hash_sql(sql);
    char name[32];
    size_t i = 0;
    PGresult *res;

    if (d->prep_off) {
        return PQexecParams(d->conn, sql, nparams, NULL, values, NULL, NULL, 0);
    }
    while (i < d->n_preps &&
           (d->preps[i].hash != h || strcmp(d->preps[i].sql, sql) != 0)) {
        i++;
    }
    if (i == d->n_preps && i == DB_PREP_MAX) {
        return PQexecParams(d->conn, sql, nparams, NULL, values, NULL, NULL, 0);
    }
    snprintf(name, sizeof(name), "hf%u_%zu", d->prep_gen, i);
    if (i == d->n_preps) {
        res = PQprepare(d->conn, name, sql, nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            return res; /* the statement's own error, reported as such */
        }
        PQclear(res);
        if (!d->preps) {
            d->preps = mem_calloc(DB_PREP_MAX, sizeof(*d->preps));
        }
        d->preps[i].sql = mem_strdup(sql);
        d->preps[i].hash = h;
        d->n_preps++;
    }
    res = PQexecPrepared(d->conn, name, nparams, values, NULL, NULL, 0);
    if (is_prep_lost(res)) {
        preps_forget(d);
        if (++d->prep_losses >= DB_PREP_MAX_LOSSES) {
            d->prep_off = true;
            log_warn("db: prepared statements keep going missing (a "
                     "connection pooler in transaction mode?); this "
                     "connection runs statements unprepared from now on");
        }
        /* Outside a transaction nothing was done: run it again. Inside,
         * the transaction failed and its owner retries or reports. */
        if (PQtransactionStatus(d->conn) == PQTRANS_IDLE) {
            PQclear(res);
            res = PQexecParams(d->conn, sql, nparams, NULL, values, NULL, NULL,
                               0);
        }
    }
    return res;
}

int db_exec_ctx(struct db *d, const char *what, const char *sql, int nparams,
                const char *const *values, struct db_res **out)
{
    char buf[DB_LOG_SQL_MAX + 8];
    const char *label = label_of(buf, sizeof(buf), what, sql);
    PGresult *res;
    int rc = check_usable(d, label);

    if (rc != ST_OK) {
        return rc;
    }
    if (nparams < 0 || nparams > 65535 || (nparams > 0 && !values)) {
        log_error("db: %s: bad parameter list (%d parameters)", label, nparams);
        return ST_INVALID;
    }
    res = exec_prepared(d, sql, nparams, values);
    rc = check_result(d, res, label);
    if (rc == ST_OK && out) {
        struct db_res *r = mem_alloc(sizeof(*r));

        r->pg = res;
        *out = r;
        return ST_OK;
    }
    PQclear(res);
    return rc;
}

int db_exec(struct db *d, const char *sql, int nparams,
            const char *const *values, struct db_res **out)
{
    return db_exec_ctx(d, NULL, sql, nparams, values, out);
}

int db_exec_script(struct db *d, const char *what, const char *sql)
{
    char buf[DB_LOG_SQL_MAX + 8];
    const char *label = label_of(buf, sizeof(buf), what, sql);
    PGresult *res;
    int rc = check_usable(d, label);

    if (rc != ST_OK) {
        return rc;
    }
    /* The simple query protocol: the one that takes several statements
     * (PQexecParams refuses them). */
    res = PQexec(d->conn, sql);
    rc = check_result(d, res, label);
    PQclear(res);
    return rc;
}

/* ---- Results ----------------------------------------------------------- */

size_t db_res_rows(const struct db_res *res)
{
    return res ? (size_t)PQntuples(res->pg) : 0;
}

size_t db_res_cols(const struct db_res *res)
{
    return res ? (size_t)PQnfields(res->pg) : 0;
}

static bool in_range(const struct db_res *res, size_t row, size_t col)
{
    return res && row < (size_t)PQntuples(res->pg) &&
           col < (size_t)PQnfields(res->pg);
}

const char *db_res_get(const struct db_res *res, size_t row, size_t col)
{
    if (!in_range(res, row, col) || PQgetisnull(res->pg, (int)row, (int)col)) {
        return NULL;
    }
    return PQgetvalue(res->pg, (int)row, (int)col);
}

bool db_res_is_null(const struct db_res *res, size_t row, size_t col)
{
    return db_res_get(res, row, col) == NULL;
}

int db_res_int64(const struct db_res *res, size_t row, size_t col, int64_t *out)
{
    const char *s = db_res_get(res, row, col);
    char *end;
    long long v;

    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9'))) {
        return ST_INVALID;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    _Static_assert(sizeof(long long) == sizeof(int64_t), "long long");
    if (errno != 0 || *end != '\0') {
        return ST_INVALID;
    }
    *out = (int64_t)v;
    return ST_OK;
}

int db_res_col(const struct db_res *res, const char *name)
{
    return res ? PQfnumber(res->pg, name) : -1;
}

int64_t db_res_affected(const struct db_res *res)
{
    const char *s = res ? PQcmdTuples(res->pg) : "";

    return *s ? (int64_t)strtoll(s, NULL, 10) : 0;
}

void db_res_free(struct db_res *res)
{
    if (!res) {
        return;
    }
    PQclear(res->pg);
    free(res);
}

/* ---- Transactions ------------------------------------------------------ */

int db_begin(struct db *d)
{
    int rc = check_usable(d, "BEGIN");

    if (rc != ST_OK) {
        return rc;
    }
    if (PQtransactionStatus(d->conn) != PQTRANS_IDLE) {
        log_error("db: BEGIN: a transaction is open already");
        return ST_INTERNAL;
    }
    return db_exec_ctx(d, "BEGIN", "BEGIN", 0, NULL, NULL);
}

int db_commit(struct db *d)
{
    PGresult *res;
    int rc = check_usable(d, "COMMIT");

    if (rc != ST_OK) {
        return rc;
    }
    switch (PQtransactionStatus(d->conn)) {
    case PQTRANS_INTRANS:
        break;
    case PQTRANS_INERROR:
        /* The server would answer COMMIT with success and the tag
         * "ROLLBACK": a failure the caller ignored must not look like a
         * commit. */
        log_error("db: COMMIT: a statement of the transaction failed "
                  "before; rolled back");
        db_rollback(d);
        return ST_INTERNAL;
    default:
        log_error("db: COMMIT: no transaction is open");
        return ST_INTERNAL;
    }
    res = PQexec(d->conn, "COMMIT");
    rc = check_result(d, res, "COMMIT");
    if (rc == ST_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        log_error("db: COMMIT: the server answered %s", PQcmdStatus(res));
        rc = ST_INTERNAL;
    }
    PQclear(res);
    return rc;
}

static int copy_finish(struct db *d, const char *abort_reason, int own_rc);

void db_rollback(struct db *d)
{
    PGresult *res;
    PGTransactionStatusType ts;

    if (!d || !d->conn) {
        return;
    }
    if (d->in_copy) {
        (void)copy_finish(d, "rolled back by the client", ST_OK);
    }
    if (!conn_ok(d)) {
        return;
    }
    ts = PQtransactionStatus(d->conn);
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR) {
        return;
    }
    res = PQexec(d->conn, "ROLLBACK");
    (void)check_result(d, res, "ROLLBACK");
    PQclear(res);
}

bool db_in_transaction(struct db *d)
{
    PGTransactionStatusType ts;

    if (!conn_ok(d)) {
        return false;
    }
    if (d->in_copy) {
        return true;
    }
    ts = PQtransactionStatus(d->conn);
    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
}

static void pause_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int db_transact(struct db *d, int (*fn)(struct db *d, void *arg), void *arg)
{
    uint64_t seed = (uint64_t)clock_mono_ns() ^ (uint64_t)(uintptr_t)d;
    int rc = ST_INTERNAL;

    for (int try = 1; try <= DB_TRANSACT_TRIES; try++) {
        bool retry;

        rc = db_begin(d);
        if (rc != ST_OK) {
            return rc;
        }
        rc = fn(d, arg);
        if (rc == ST_OK) {
            rc = db_commit(d);
        }
        /* Read before ROLLBACK, which clears it. */
        retry =
            rc == ST_UPSTREAM && conn_ok(d) && is_serialization(d->sqlstate);
        if (rc != ST_OK) {
            db_rollback(d);
        }
        if (!retry) {
            return rc;
        }
        if (try == DB_TRANSACT_TRIES) {
            log_warn("db: transaction aborted by the server %d times in a "
                     "row (serialization failure or deadlock); giving up",
                     DB_TRANSACT_TRIES);
        } else {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            log_debug("db: retrying the transaction (try %d of %d)", try + 1,
                      DB_TRANSACT_TRIES);
            pause_ms(1 + (int64_t)((seed >> 33) %
                                   (uint64_t)(DB_RETRY_PAUSE_MS * try)));
        }
    }
    return rc;
}

/* ---- COPY -------------------------------------------------------------- */

void db_copy_escape(struct buf *b, const char *field)
{
    const char *p = field;

    if (!field) {
        buf_add(b, "\\N", 2);
        return;
    }
    for (;;) {
        size_t n = strcspn(p, "\\\t\n\r");

        buf_add(b, p, n);
        p += n;
        switch (*p) {
        case '\0':
            return;
        case '\\':
            buf_add(b, "\\\\", 2);
            break;
        case '\t':
            buf_add(b, "\\t", 2);
            break;
        case '\n':
            buf_add(b, "\\n", 2);
            break;
        default: /* '\r' */
            buf_add(b, "\\r", 2);
            break;
        }
        p++;
    }
}

/* Ends the COPY on d. With abort_reason NULL, asks the server to store
 * what was sent; otherwise tells it to drop everything. Returns the
 * server's verdict (logged), or own_rc when the only failure is the one
 * our abort_reason caused. */
static int copy_finish(struct db *d, const char *abort_reason, int own_rc)
{
    PGresult *res;
    bool have = false;
    int rc = ST_OK;

    d->in_copy = false;
    buf_reset(&d->copy);
    /* -1 when the server ended the COPY already (it refused a row) or the
     * connection is gone: the results below say which. */
    (void)PQputCopyEnd(d->conn, abort_reason);
    while ((res = PQgetResult(d->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);

        if (st == PGRES_COPY_IN) {
            PQclear(res);
            if (PQputCopyEnd(d->conn, abort_reason) < 0) {
                break;
            }
            continue;
        }
        if (!have) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            have = true;
            if (abort_reason && st == PGRES_FATAL_ERROR && state &&
                strcmp(state, "57014") == 0 && conn_ok(d)) {
                rc = own_rc;
            } else {
                rc = check_result(d, res, d->copy_label);
            }
        }
        PQclear(res);
    }
    if (!have) {
        rc = failure(d, NULL, d->copy_label);
    }
    return rc;
}

int db_copy_begin(struct db *d, const char *sql)
{
    char label[DB_LOG_SQL_MAX + 8];
    PGresult *res;
    int rc;

    label_of(label, sizeof(label), NULL, sql);
    rc = check_usable(d, label);
    if (rc != ST_OK) {
        return rc;
    }
    res = PQexecParams(d->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_COPY_IN) {
        PQclear(res);
        d->in_copy = true;
        buf_reset(&d->copy);
        snprintf(d->copy_label, sizeof(d->copy_label), "%s", label);
        return ST_OK;
    }
    rc = check_result(d, res, label);
    PQclear(res);
    if (rc == ST_OK) {
        log_error("db: %s: not a COPY ... FROM STDIN", label);
        rc = ST_INTERNAL;
    }
    return rc;
}

/* Sends the buffered rows. On failure the COPY is over. */
static int copy_flush(struct db *d)
{
    size_t off = 0;

    while (off < d->copy.len) {
        size_t n = d->copy.len - off;

        if (n > 1024 * 1024) {
            n = 1024 * 1024;
        }
        if (PQputCopyData(d->conn, d->copy.data + off, (int)n) != 1) {
            return copy_finish(d, "the client could not send", ST_UPSTREAM);
        }
        off += n;
    }
    buf_reset(&d->copy);
    return ST_OK;
}

int db_copy_row(struct db *d, int n, const char *const *fields)
{
    if (!d->in_copy) {
        log_error("db: COPY row: no COPY in progress");
        return ST_INTERNAL;
    }
    if (n < 1 || !fields) {
        log_error("db: %s: a row of %d fields", d->copy_label, n);
        (void)copy_finish(d, "the client sent a bad row", ST_INVALID);
        return ST_INVALID;
    }
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            buf_addc(&d->copy, '\t');
        }
        db_copy_escape(&d->copy, fields[i]);
    }
    buf_addc(&d->copy, '\n');
    if (d->copy.len >= DB_COPY_FLUSH_BYTES) {
        return copy_flush(d);
    }
    return ST_OK;
}

int db_copy_end(struct db *d)
{
    int rc;

    if (!d->in_copy) {
        log_error("db: COPY end: no COPY in progress");
        return ST_INTERNAL;
    }
    rc = copy_flush(d);
    if (rc != ST_OK) {
        return rc;
    }
    return copy_finish(d, NULL, ST_OK);
}

/* ---- Start-up ---------------------------------------------------------- */

int db_wait_ready(const char *dsn, int64_t timeout_ms)
{
    const char *values[DB_CONN_PARAMS];
    int64_t deadline = clock_mono_ns() / CLOCK_NS_PER_MS + timeout_ms;

    if (check_dsn(dsn) != ST_OK) {
        return ST_INVALID;
    }
    conn_values(values, "2", dsn);
    for (;;) {
        int64_t now;

        switch (PQpingParams(conn_keys, values, 1)) {
        case PQPING_OK:
            return ST_OK;
        case PQPING_NO_ATTEMPT:
            log_error("db: cannot try to reach PostgreSQL: bad settings");
            return ST_INVALID;
        default: /* no response, or starting up or shutting down */
            break;
        }
        now = clock_mono_ns() / CLOCK_NS_PER_MS;
        if (now >= deadline) {
            log_warn("db: PostgreSQL not accepting connections after %lld "
                     "ms",
                     (long long)timeout_ms);
            return ST_TIMEOUT;
        }
        pause_ms(deadline - now < DB_WAIT_POLL_MS ? deadline - now
                                                  : DB_WAIT_POLL_MS);
    }
}
