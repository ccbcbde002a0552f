/* db, migrate and dbpool against a real PostgreSQL from deploy/stack.sh:
 * statements, error mapping, transactions, COPY, migrations (concurrent
 * ones too) and the pool across a server restart. Needs HANDOFF_PG_DSN and
 * HANDOFF_STACK_DIR (stack.sh env). Works in databases of its own,
 * handoff_test_<pid>[_*], dropped at the end. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "clock.h"
#include "db.h"
#include "dbpool.h"
#include "log.h"
#include "mem.h"
#include "migrate.h"

#define MAX_DATABASES 16
#define WAIT_MS 30000

static const char *base_dsn;           /* HANDOFF_PG_DSN */
static struct db *admin;               /* on base_dsn's database */
static struct db *conn;                /* on the test database */
static char test_dsn[1024];            /* the test database */
static char *databases[MAX_DATABASES]; /* made here, dropped at the end */
static size_t n_databases;
static struct event_base *base;

/* ---- Helpers ----------------------------------------------------------- */

static int64_t now_ms(void)
{
    return clock_mono_ns() / CLOCK_NS_PER_MS;
}

static void pause_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void exec_ok(struct db *d, const char *sql)
{
    int rc = db_exec(d, sql, 0, NULL, NULL);

    if (rc != ST_OK) {
        fail_msg("%s: %s", sql, status_str(rc));
    }
}

/* The integer in the first column of the first row of sql. */
static int64_t query_int(struct db *d, const char *sql)
{
    struct db_res *res = NULL;
    int64_t v = -1;

    assert_int_equal(db_exec(d, sql, 0, NULL, &res), ST_OK);
    assert_int_equal(db_res_int64(res, 0, 0, &v), ST_OK);
    db_res_free(res);
    return v;
}

/* A DSN for database name on the server of base_dsn. */
static void dsn_for(const char *name, char *out, size_t cap)
{
    if (strstr(base_dsn, "://")) {
        snprintf(out, cap, "%s%sdbname=%s", base_dsn,
                 strchr(base_dsn, '?') ? "&" : "?", name);
    } else {
        /* In a connection string the last of a repeated keyword wins. */
        snprintf(out, cap, "%s dbname=%s", base_dsn, name);
    }
}

/* Creates database handoff_test_<pid>[_suffix] (dropped by the group
 * teardown) and writes a DSN for it into out. */
static void make_database(const char *suffix, const char *options, char *out,
                          size_t cap)
{
    char name[128];
    char sql[512];

    assert_true(n_databases < MAX_DATABASES);
    snprintf(name, sizeof(name), "handoff_test_%d%s%s", (int)getpid(),
             suffix ? "_" : "", suffix ? suffix : "");
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s%s%s", name,
             options ? " " : "", options ? options : "");
    exec_ok(admin, sql);
    databases[n_databases++] = mem_strdup(name);
    dsn_for(name, out, cap);
}

/* Reconnects c if a server restart broke it. */
static void ensure_ok(struct db *c)
{
    if (!db_is_ok(c)) {
        assert_int_equal(db_reset(c), ST_OK);
    }
}

static int stack(const char *what)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "'%s/deploy/stack.sh' %s postgres >&2",
             HANDOFF_SOURCE_DIR, what);
    return system(cmd);
}

struct until {
    bool (*pred)(void *arg);
    void *arg;
    int64_t deadline_ms;
    bool met;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct until *u = arg;

    (void)fd;
    (void)what;
    if (u->pred(u->arg)) {
        u->met = true;
        event_base_loopbreak(base);
    } else if (now_ms() >= u->deadline_ms) {
        event_base_loopbreak(base);
    }
}

/* Runs the loop until pred holds (checked every 5 ms) or timeout_ms. */
static bool loop_until(bool (*pred)(void *arg), void *arg, int64_t timeout_ms)
{
    struct until u = {pred, arg, now_ms() + timeout_ms, false};
    struct timeval tv = {0, 5000};
    struct event *ev = event_new(base, -1, EV_PERSIST, on_tick, &u);

    assert_non_null(ev);
    assert_int_equal(event_add(ev, &tv), 0);
    if (pred(arg)) {
        u.met = true;
    } else {
        event_base_dispatch(base);
    }
    event_free(ev);
    return u.met;
}

/* ---- Connections ------------------------------------------------------- */

static void test_db_connect_to_nowhere_is_upstream(void **state)
{
    char dsn[1100];
    struct db *d = NULL;
    int64_t t0;

    (void)state;
    assert_int_equal(
        db_connect("host=127.0.0.1 port=1 user=postgres dbname=x", &d),
        ST_UPSTREAM);
    assert_null(d);
    /* The server answers, but refuses the login. */
    dsn_for("no_such_database_here", dsn, sizeof(dsn));
    assert_int_equal(db_connect(dsn, &d), ST_UPSTREAM);
    assert_null(d);

    assert_int_equal(db_wait_ready(base_dsn, 5000), ST_OK);
    t0 = now_ms();
    assert_int_equal(db_wait_ready("host=127.0.0.1 port=1", 300), ST_TIMEOUT);
    assert_in_range(now_ms() - t0, 300, 3000);
}

static void test_db_reset_reconnects_a_dropped_connection(void **state)
{
    struct db *d = NULL;
    char sql[128];
    int64_t pid;

    (void)state;
    assert_int_equal(db_connect(test_dsn, &d), ST_OK);
    pid = query_int(d, "SELECT pg_backend_pid()");
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld)",
             (long long)pid);
    exec_ok(conn, sql);
    /* The server's goodbye is noticed on the idle connection. */
    for (int64_t end = now_ms() + 5000; db_is_ok(d) && now_ms() < end;) {
        pause_ms(5);
    }
    assert_false(db_is_ok(d));
    assert_int_equal(db_exec(d, "SELECT 1", 0, NULL, NULL), ST_UPSTREAM);
    assert_int_equal(db_reset(d), ST_OK);
    assert_true(db_is_ok(d));
    assert_true(query_int(d, "SELECT pg_backend_pid()") != pid);
    db_free(d);
}

/* ---- Statements and results -------------------------------------------- */

static void test_db_exec_passes_params_null_and_unicode(void **state)
{
    static const char unicode[] =
        "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac "
        "\xf0\x9f\x8e\x89 'quote' \"dq\" \\ $1";
    const char *p[3] = {"1", NULL, unicode};
    const char *q[1] = {"\xff\xfe bad"};
    struct db_res *res = NULL;
    int64_t v = 0;

    (void)state;
    ensure_ok(conn);
    exec_ok(conn, "CREATE TABLE params (id int PRIMARY KEY, a text, b text)");
    assert_int_equal(db_exec(conn,
                             "INSERT INTO params (id, a, b) VALUES ($1, $2, "
                             "$3)",
                             3, p, NULL),
                     ST_OK);
    assert_int_equal(
        db_exec(conn, "SELECT id, a, b, length(b) FROM params", 0, NULL, &res),
        ST_OK);
    assert_int_equal(db_res_rows(res), 1);
    assert_int_equal(db_res_cols(res), 4);
    assert_string_equal(db_res_get(res, 0, 0), "1");
    assert_null(db_res_get(res, 0, 1));
    assert_true(db_res_is_null(res, 0, 1));
    assert_false(db_res_is_null(res, 0, 2));
    assert_string_equal(db_res_get(res, 0, 2), unicode);
    assert_int_equal(db_res_int64(res, 0, 3, &v), ST_OK);
    assert_int_equal(v, 30); /* characters, not bytes */
    assert_int_equal(db_res_col(res, "b"), 2);
    assert_int_equal(db_res_col(res, "B"), 2);
    assert_int_equal(db_res_col(res, "nope"), -1);
    assert_null(db_res_get(res, 1, 0));
    assert_null(db_res_get(res, 0, 4));
    v = 99;
    assert_int_equal(db_res_int64(res, 0, 1, &v), ST_INVALID); /* NULL */
    assert_int_equal(db_res_int64(res, 0, 2, &v), ST_INVALID); /* text */
    assert_int_equal(v, 99);
    db_res_free(res);

    /* Integers at the edges. */
    res = NULL;
    assert_int_equal(db_exec(conn,
                             "SELECT 9223372036854775807, "
                             "-9223372036854775808, "
                             "'9223372036854775808', '12x', '', ' 1', true",
                             0, NULL, &res),
                     ST_OK);
    assert_int_equal(db_res_int64(res, 0, 0, &v), ST_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(db_res_int64(res, 0, 1, &v), ST_OK);
    assert_true(v == INT64_MIN);
    for (size_t c = 2; c < 7; c++) {
        assert_int_equal(db_res_int64(res, 0, c, &v), ST_INVALID);
    }
    assert_string_equal(db_res_get(res, 0, 6), "t");
    db_res_free(res);

    /* Invalid UTF-8 in a parameter: refused by the server, no harm done. */
    assert_int_equal(db_exec(conn, "SELECT $1::text", 1, q, NULL), ST_INVALID);
    assert_string_equal(db_last_sqlstate(conn), "22021");
    assert_true(db_is_ok(conn));

    /* Rows touched. */
    res = NULL;
    assert_int_equal(db_exec(conn, "UPDATE params SET a = 'x'", 0, NULL, &res),
                     ST_OK);
    assert_int_equal(db_res_affected(res), 1);
    assert_int_equal(db_res_rows(res), 0);
    db_res_free(res);
    assert_string_equal(db_last_sqlstate(conn), "");
    exec_ok(conn, "DROP TABLE params");
}

static void expect_status(const char *sql, int status, const char *sqlstate)
{
    int rc = db_exec_ctx(conn, "test: expected failure", sql, 0, NULL, NULL);

    if (rc != status || strcmp(db_last_sqlstate(conn), sqlstate) != 0) {
        fail_msg("%s: got %s (%s), want %s (%s)", sql, status_str(rc),
                 db_last_sqlstate(conn), status_str(status), sqlstate);
    }
    assert_true(db_is_ok(conn));
}

static void test_db_maps_errors_to_statuses(void **state)
{
    (void)state;
    ensure_ok(conn);
    exec_ok(conn, "CREATE TABLE parent (id int PRIMARY KEY)");
    exec_ok(conn, "CREATE TABLE child (id int PRIMARY KEY, "
                  "parent int REFERENCES parent, "
                  "n int NOT NULL CHECK (n > 0))");
    exec_ok(conn, "INSERT INTO parent VALUES (1)");
    exec_ok(conn, "INSERT INTO child VALUES (1, 1, 1)");
    expect_status("INSERT INTO child VALUES (1, 1, 1)", ST_CONFLICT, "23505");
    expect_status("INSERT INTO child VALUES (2, 1, 0)", ST_INVALID, "23514");
    expect_status("INSERT INTO child VALUES (2, 1, NULL)", ST_INVALID, "23502");
    expect_status("INSERT INTO child VALUES (2, 7, 1)", ST_INVALID, "23503");
    expect_status("SELECT 'abc'::int", ST_INVALID, "22P02");
    expect_status("SELECT 1 / 0", ST_INVALID, "22012");
    expect_status("SELEC 1", ST_INTERNAL, "42601");
    expect_status("SELECT * FROM no_such_table", ST_INTERNAL, "42P01");
    /* One statement per db_exec: no stacking a second one on. */
    expect_status("SELECT 1; SELECT 2", ST_INTERNAL, "42601");
    exec_ok(conn, "SET statement_timeout = 50");
    expect_status("SELECT pg_sleep(5)", ST_TIMEOUT, "57014");
    exec_ok(conn, "RESET statement_timeout");
    /* A COPY through db_exec is refused, and the connection stays fine. */
    expect_status("COPY parent TO STDOUT", ST_INTERNAL, "");
    expect_status("COPY parent FROM STDIN", ST_INTERNAL, "");
    assert_int_equal(query_int(conn, "SELECT count(*) FROM child"), 1);
    exec_ok(conn, "DROP TABLE child, parent");
}

static void test_db_exec_script_runs_several_statements(void **state)
{
    (void)state;
    ensure_ok(conn);
    assert_int_equal(db_exec_script(conn, "test script",
                                    "CREATE TABLE s1 (x int);\n"
                                    "INSERT INTO s1 VALUES (1), (2);\n"
                                    "INSERT INTO s1 VALUES (3);"),
                     ST_OK);
    assert_int_equal(query_int(conn, "SELECT sum(x) FROM s1"), 6);
    /* Outside a transaction the script is one implicit transaction. */
    assert_int_equal(db_exec_script(conn, "test script",
                                    "INSERT INTO s1 VALUES (4); "
                                    "SELECT 1 / 0"),
                     ST_INVALID);
    assert_int_equal(query_int(conn, "SELECT sum(x) FROM s1"), 6);
    exec_ok(conn, "DROP TABLE s1");
}

/* db_exec prepares each statement once per session: the server shows it
 * in pg_prepared_statements, and the statement keeps working when the
 * session loses it (DEALLOCATE, as a pooler would) or when its table
 * changes shape under it (a migration by a newer replica). */
static void test_db_exec_prepares_and_survives_lost_statements(void **state)
{
    const char *sel = "SELECT * FROM p1 WHERE x >= $1::int ORDER BY x";
    const char *one[1] = {"2"};
    struct db_res *res = NULL;

    (void)state;
    ensure_ok(conn);
    exec_ok(conn, "CREATE TABLE p1 (x int)");
    exec_ok(conn, "INSERT INTO p1 VALUES (1), (2), (3)");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(db_exec(conn, sel, 1, one, &res), ST_OK);
        assert_int_equal(db_res_rows(res), 2);
        db_res_free(res);
    }
    assert_int_equal(query_int(conn, "SELECT count(*) FROM "
                                     "pg_prepared_statements WHERE statement "
                                     "LIKE 'SELECT * FROM p1 %'"),
                     1);
    /* Gone from the session. */
    assert_int_equal(db_exec_script(conn, "test", "DEALLOCATE ALL"), ST_OK);
    assert_int_equal(db_exec(conn, sel, 1, one, &res), ST_OK);
    assert_int_equal(db_res_rows(res), 2);
    db_res_free(res);
    /* Its result type changed. */
    assert_int_equal(db_exec(conn, sel, 1, one, &res), ST_OK);
    db_res_free(res);
    exec_ok(conn, "ALTER TABLE p1 ADD COLUMN y text DEFAULT 'new'");
    assert_int_equal(db_exec(conn, sel, 1, one, &res), ST_OK);
    assert_int_equal(db_res_cols(res), 2);
    assert_string_equal(db_res_get(res, 0, 1), "new");
    db_res_free(res);
    exec_ok(conn, "DROP TABLE p1");
}

/* ---- Transactions ------------------------------------------------------ */

static void test_db_transactions_commit_and_roll_back(void **state)
{
    struct db *other = NULL;

    (void)state;
    ensure_ok(conn);
    assert_int_equal(db_connect(test_dsn, &other), ST_OK);
    exec_ok(conn, "CREATE TABLE tx (id int PRIMARY KEY)");

    assert_int_equal(db_begin(conn), ST_OK);
    assert_true(db_in_transaction(conn));
    assert_int_equal(db_begin(conn), ST_INTERNAL);
    exec_ok(conn, "INSERT INTO tx VALUES (1)");
    assert_int_equal(query_int(other, "SELECT count(*) FROM tx"), 0);
    assert_int_equal(db_commit(conn), ST_OK);
    assert_false(db_in_transaction(conn));
    assert_int_equal(query_int(other, "SELECT count(*) FROM tx"), 1);

    assert_int_equal(db_begin(conn), ST_OK);
    exec_ok(conn, "INSERT INTO tx VALUES (2)");
    db_rollback(conn);
    assert_false(db_in_transaction(conn));
    assert_int_equal(query_int(other, "SELECT count(*) FROM tx"), 1);

    /* A failure the caller ignored: COMMIT must not pass for a commit. */
    assert_int_equal(db_begin(conn), ST_OK);
    exec_ok(conn, "INSERT INTO tx VALUES (3)");
    assert_int_equal(db_exec(conn, "INSERT INTO tx VALUES (1)", 0, NULL, NULL),
                     ST_CONFLICT);
    assert_int_equal(db_exec(conn, "INSERT INTO tx VALUES (4)", 0, NULL, NULL),
                     ST_INTERNAL); /* 25P02: the transaction has failed */
    assert_string_equal(db_last_sqlstate(conn), "25P02");
    assert_true(db_in_transaction(conn));
    assert_int_equal(db_commit(conn), ST_INTERNAL);
    assert_false(db_in_transaction(conn));
    assert_int_equal(query_int(other, "SELECT count(*) FROM tx"), 1);

    /* Nothing open. */
    assert_int_equal(db_commit(conn), ST_INTERNAL);
    db_rollback(conn);
    exec_ok(conn, "DROP TABLE tx");
    db_free(other);
}

enum interfere { INTERFERE_NEVER, INTERFERE_FIRST, INTERFERE_ALWAYS };

struct transact_case {
    struct db *other;
    int calls;
    enum interfere interfere;
    int fail_with; /* fn returns this after its update, if not 0 */
};

/* Takes a REPEATABLE READ snapshot, lets the other connection update the
 * row behind it, then updates the row too: 40001. */
static int bump(struct db *d, void *arg)
{
    struct transact_case *c = arg;
    int rc;

    c->calls++;
    rc = db_exec(d, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0, NULL,
                 NULL);
    if (rc == ST_OK) {
        rc = db_exec(d, "SELECT v FROM counter WHERE id = 1", 0, NULL, NULL);
    }
    if (rc == ST_OK && (c->interfere == INTERFERE_ALWAYS ||
                        (c->interfere == INTERFERE_FIRST && c->calls == 1))) {
        exec_ok(c->other, "UPDATE counter SET v = v + 100 WHERE id = 1");
    }
    if (rc == ST_OK) {
        rc = db_exec(d, "UPDATE counter SET v = v + 1 WHERE id = 1", 0, NULL,
                     NULL);
    }
    return rc == ST_OK ? c->fail_with : rc;
}

static void test_db_transact_retries_serialization_failures(void **state)
{
    struct transact_case c = {.interfere = INTERFERE_FIRST};

    (void)state;
    ensure_ok(conn);
    assert_int_equal(db_connect(test_dsn, &c.other), ST_OK);
    exec_ok(conn, "CREATE TABLE counter (id int PRIMARY KEY, v int)");
    exec_ok(conn, "INSERT INTO counter VALUES (1, 0)");

    /* Fails once, then commits. */
    assert_int_equal(db_transact(conn, bump, &c), ST_OK);
    assert_int_equal(c.calls, 2);
    assert_int_equal(query_int(conn, "SELECT v FROM counter"), 101);

    /* Fails every time: gives up after DB_TRANSACT_TRIES. */
    c.calls = 0;
    c.interfere = INTERFERE_ALWAYS;
    assert_int_equal(db_transact(conn, bump, &c), ST_UPSTREAM);
    assert_int_equal(c.calls, DB_TRANSACT_TRIES);
    assert_false(db_in_transaction(conn));
    assert_int_equal(query_int(conn, "SELECT v FROM counter"),
                     101 + 100 * DB_TRANSACT_TRIES);

    /* fn's own failure rolls back and is not retried. */
    c.calls = 0;
    c.interfere = INTERFERE_NEVER;
    c.fail_with = ST_NOT_FOUND;
    assert_int_equal(db_transact(conn, bump, &c), ST_NOT_FOUND);
    assert_int_equal(c.calls, 1);
    assert_int_equal(query_int(conn, "SELECT v FROM counter"),
                     101 + 100 * DB_TRANSACT_TRIES);
    exec_ok(conn, "DROP TABLE counter");
    db_free(c.other);
}

/* ---- COPY -------------------------------------------------------------- */

static void test_db_copy_round_trips_nasty_strings(void **state)
{
    static const char *const nasty[] = {
        "",
        NULL,
        "plain",
        "tab\there",
        "new\nline",
        "carriage\rreturn",
        "back\\slash",
        "\\N",
        "\\.",
        "\\",
        "end\\",
        "\\t\\n not escapes",
        "\n",
        "mixed \t\n\r\\ \xe2\x9c\x93 \xf0\x9f\x8e\x89",
        "\x01\x02\b\f\v",
        "'single' \"double\"",
    };
    size_t n = sizeof(nasty) / sizeof(nasty[0]);
    char *big = mem_alloc(300 * 1024 + 1);
    struct db_res *res = NULL;

    (void)state;
    ensure_ok(conn);
    for (size_t i = 0; i < 300 * 1024; i++) {
        big[i] = "ab\t\n\\c\r"[i % 7];
    }
    big[300 * 1024] = '\0';
    exec_ok(conn, "CREATE TABLE copied (id int PRIMARY KEY, s text)");
    assert_int_equal(db_copy_begin(conn, "COPY copied (id, s) FROM STDIN"),
                     ST_OK);
    assert_true(db_in_transaction(conn));
    for (size_t i = 0; i <= n; i++) {
        char id[16];
        const char *row[2] = {id, i < n ? nasty[i] : big};

        snprintf(id, sizeof(id), "%zu", i);
        assert_int_equal(db_copy_row(conn, 2, row), ST_OK);
    }
    assert_int_equal(db_copy_end(conn), ST_OK);
    assert_false(db_in_transaction(conn));
    assert_int_equal(
        db_exec(conn, "SELECT id, s FROM copied ORDER BY id", 0, NULL, &res),
        ST_OK);
    assert_int_equal(db_res_rows(res), n + 1);
    for (size_t i = 0; i < n; i++) {
        if (!nasty[i]) {
            assert_null(db_res_get(res, i, 1));
        } else {
            assert_non_null(db_res_get(res, i, 1));
            assert_string_equal(db_res_get(res, i, 1), nasty[i]);
        }
    }
    assert_string_equal(db_res_get(res, n, 1), big);
    db_res_free(res);
    exec_ok(conn, "DROP TABLE copied");
    free(big);
}

static void test_db_copy_refuses_bad_data_and_stays_usable(void **state)
{
    const char *bad_utf8[2] = {"2", "caf\xc3\x28"};
    const char *good[2] = {"1", "fine"};
    const char *not_int[2] = {"x", "fine"};

    (void)state;
    ensure_ok(conn);
    exec_ok(conn, "CREATE TABLE strict (id int PRIMARY KEY, s text)");

    /* Invalid UTF-8: the server's verdict comes at the end. */
    assert_int_equal(db_copy_begin(conn, "COPY strict FROM STDIN"), ST_OK);
    assert_int_equal(db_copy_row(conn, 2, good), ST_OK);
    assert_int_equal(db_copy_row(conn, 2, bad_utf8), ST_OK);
    assert_int_equal(db_copy_end(conn), ST_INVALID);
    assert_string_equal(db_last_sqlstate(conn), "22021");
    assert_true(db_is_ok(conn));
    assert_int_equal(query_int(conn, "SELECT count(*) FROM strict"), 0);

    /* A bad first row, then megabytes more: the server drops the rest
     * and says so at the end, or as soon as libpq notices; no hang. */
    {
        int rc = db_copy_begin(conn, "COPY strict FROM STDIN");
        int at = -1;

        assert_int_equal(rc, ST_OK);
        rc = db_copy_row(conn, 2, bad_utf8);
        for (int i = 0; rc == ST_OK && i < 200000; i++) {
            char id[16];
            const char *row[2] = {id, "padding padding padding padding"};

            snprintf(id, sizeof(id), "%d", i + 10);
            rc = db_copy_row(conn, 2, row);
            at = i;
        }
        if (rc == ST_OK) {
            rc = db_copy_end(conn);
            at = -1;
        }
        assert_int_equal(rc, ST_INVALID);
        fprintf(stderr, "test_db: a bad COPY row was reported by %s\n",
                at < 0 ? "db_copy_end" : "db_copy_row");
        assert_true(db_is_ok(conn));
        assert_false(db_in_transaction(conn));
        assert_int_equal(query_int(conn, "SELECT count(*) FROM strict"), 0);
    }

    /* Not an integer, inside a transaction: the transaction has failed. */
    assert_int_equal(db_begin(conn), ST_OK);
    assert_int_equal(db_copy_begin(conn, "COPY strict FROM STDIN"), ST_OK);
    assert_int_equal(db_copy_row(conn, 2, not_int), ST_OK);
    assert_int_equal(db_copy_end(conn), ST_INVALID);
    assert_true(db_in_transaction(conn));
    db_rollback(conn);
    assert_false(db_in_transaction(conn));

    /* Wrong use while a COPY runs, then the COPY still ends well. */
    assert_int_equal(db_copy_begin(conn, "COPY strict FROM STDIN"), ST_OK);
    assert_int_equal(db_exec(conn, "SELECT 1", 0, NULL, NULL), ST_INTERNAL);
    assert_int_equal(db_begin(conn), ST_INTERNAL);
    assert_int_equal(db_copy_begin(conn, "COPY strict FROM STDIN"),
                     ST_INTERNAL);
    assert_int_equal(db_copy_row(conn, 2, good), ST_OK);
    assert_int_equal(db_copy_end(conn), ST_OK);
    assert_int_equal(db_copy_end(conn), ST_INTERNAL);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM strict"), 1);

    /* Abandoned: a bad row count, and a rollback in the middle. */
    assert_int_equal(db_copy_begin(conn, "COPY strict FROM STDIN"), ST_OK);
    assert_int_equal(db_copy_row(conn, 0, good), ST_INVALID);
    assert_int_equal(db_copy_row(conn, 2, good), ST_INTERNAL);
    assert_true(db_is_ok(conn));
    assert_int_equal(db_begin(conn), ST_OK);
    exec_ok(conn, "DELETE FROM strict");
    assert_int_equal(db_copy_begin(conn, "COPY strict FROM STDIN"), ST_OK);
    assert_int_equal(db_copy_row(conn, 2, good), ST_OK);
    db_rollback(conn);
    assert_false(db_in_transaction(conn));
    assert_int_equal(query_int(conn, "SELECT count(*) FROM strict"), 1);

    /* Not a COPY FROM STDIN at all. */
    assert_int_equal(db_copy_begin(conn, "SELECT 1"), ST_INTERNAL);
    assert_int_equal(db_copy_begin(conn, "COPY strict TO STDOUT"), ST_INTERNAL);
    assert_int_equal(db_copy_begin(conn, "COPY nothing FROM STDIN"),
                     ST_INTERNAL);
    assert_true(db_is_ok(conn));
    exec_ok(conn, "DROP TABLE strict");
}

static void test_db_copy_loads_rows_fast(void **state)
{
    const int rows = 100000;
    const int inserts = 2000;
    int64_t t0;
    double copy_s;
    double insert_s;

    (void)state;
    ensure_ok(conn);
    exec_ok(conn, "CREATE TABLE bulk (id int, job text, log text, d float8)");
    t0 = clock_mono_ns();
    assert_int_equal(db_begin(conn), ST_OK);
    assert_int_equal(db_copy_begin(conn, "COPY bulk FROM STDIN"), ST_OK);
    for (int i = 0; i < rows; i++) {
        char id[16];
        const char *row[4] = {id, "42.0", "line one\nline\ttwo\n", "1.25"};

        snprintf(id, sizeof(id), "%d", i);
        assert_int_equal(db_copy_row(conn, 4, row), ST_OK);
    }
    assert_int_equal(db_copy_end(conn), ST_OK);
    assert_int_equal(db_commit(conn), ST_OK);
    copy_s = (double)(clock_mono_ns() - t0) / 1e9;
    assert_int_equal(query_int(conn, "SELECT count(*) FROM bulk"), rows);

    t0 = clock_mono_ns();
    assert_int_equal(db_begin(conn), ST_OK);
    for (int i = 0; i < inserts; i++) {
        char id[16];
        const char *p[4] = {id, "42.0", "line one\nline\ttwo\n", "1.25"};

        snprintf(id, sizeof(id), "%d", i);
        assert_int_equal(db_exec(conn,
                                 "INSERT INTO bulk VALUES ($1, $2, $3, $4)", 4,
                                 p, NULL),
                         ST_OK);
    }
    assert_int_equal(db_commit(conn), ST_OK);
    insert_s = (double)(clock_mono_ns() - t0) / 1e9;
    fprintf(stderr,
            "test_db: COPY %d rows in %.3f s (%.0f rows/s); %d single-row "
            "INSERTs in %.3f s (%.0f rows/s)\n",
            rows, copy_s, rows / copy_s, inserts, insert_s, inserts / insert_s);
    exec_ok(conn, "DROP TABLE bulk");
}

/* ---- Migrations -------------------------------------------------------- */

static size_t builtin_plus(struct migration *out, size_t cap,
                           const struct migration *extra)
{
    size_t n = 0;
    const struct migration *b = migrate_builtin(&n);

    assert_true(n + 1 <= cap);
    memcpy(out, b, n * sizeof(*b));
    if (extra) {
        out[n] = *extra;
        out[n].version = b[n - 1].version + 1;
        n++;
    }
    return n;
}

static void test_migrate_from_scratch_then_again_does_nothing(void **state)
{
    char dsn[1100];
    struct db *d = NULL;
    size_t n = 0;
    int version = -1;
    struct db_res *res = NULL;
    char *applied_at = NULL;
    int64_t t0;

    (void)state;
    (void)migrate_builtin(&n);
    make_database("scratch", NULL, dsn, sizeof(dsn));
    assert_int_equal(db_connect(dsn, &d), ST_OK);
    assert_int_equal(migrate_version(d, &version), ST_OK);
    assert_int_equal(version, 0);
    t0 = clock_mono_ns();
    assert_int_equal(migrate_run(d), ST_OK);
    fprintf(stderr, "test_db: migrations from scratch in %.1f ms\n",
            (double)(clock_mono_ns() - t0) / 1e6);
    assert_int_equal(migrate_version(d, &version), ST_OK);
    assert_int_equal(version, (int)n);
    assert_int_equal(db_exec(d,
                             "SELECT applied_at::text FROM "
                             "schema_migrations WHERE version = 1",
                             0, NULL, &res),
                     ST_OK);
    applied_at = mem_strdup(db_res_get(res, 0, 0));
    db_res_free(res);

    /* Again: nothing happens. */
    assert_int_equal(migrate_run(d), ST_OK);
    assert_int_equal(query_int(d, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)n);
    res = NULL;
    assert_int_equal(db_exec(d,
                             "SELECT applied_at::text FROM "
                             "schema_migrations WHERE version = 1",
                             0, NULL, &res),
                     ST_OK);
    assert_string_equal(db_res_get(res, 0, 0), applied_at);
    db_res_free(res);
    assert_int_equal(query_int(d,
                               "SELECT count(*) FROM pg_locks WHERE locktype = "
                               "'advisory'"),
                     0);
    free(applied_at);
    db_free(d);
}

static void test_migrate_schema_holds_a_run_and_cascades(void **state)
{
    char dsn[1100];
    struct db *d = NULL;
    struct db_res *res = NULL;
    char run[24];
    const char *p[1] = {run};
    const char *job[2] = {NULL, run};
    char job_id[32];
    int64_t id = 0;

    (void)state;
    make_database("schema", NULL, dsn, sizeof(dsn));
    assert_int_equal(db_connect(dsn, &d), ST_OK);
    assert_int_equal(migrate_run(d), ST_OK);
    assert_int_equal(
        db_exec(d,
                "INSERT INTO runs (suite, namespace, state, trigger, "
                "timeout_ms, queue_timeout_ms, config, idempotency_key) "
                "VALUES ('selftest', 'handoff', 'queued', 'api', 3600000, "
                "600000, '{}', 'key-1') RETURNING id",
                0, NULL, &res),
        ST_OK);
    assert_int_equal(db_res_int64(res, 0, 0, &id), ST_OK);
    db_res_free(res);
    snprintf(run, sizeof(run), "%lld", (long long)id);
    snprintf(job_id, sizeof(job_id), "%lld.0", (long long)id);
    job[0] = job_id;
    assert_int_equal(db_exec(d,
                             "INSERT INTO jobs (id, run_id, shard, subject, "
                             "payload) VALUES ($1, $2, 0, "
                             "'handoff.jobs.default.handoff.selftest', "
                             "'\\x0102')",
                             2, job, NULL),
                     ST_OK);
    assert_int_equal(db_exec(d,
                             "INSERT INTO job_attempts (job_id, job_attempt, "
                             "run_id, state) VALUES ($1, 1, $2, 'running')",
                             2, job, NULL),
                     ST_OK);
    assert_int_equal(db_exec(d,
                             "INSERT INTO test_results (run_id, job_id, "
                             "job_attempt, seq, name, attempt, result, "
                             "\"values\") VALUES ($2, $1, 1, 0, 'test_pass', "
                             "1, 'passed', '{\"request_id\": \"r-1\"}')",
                             2, job, NULL),
                     ST_OK);
    /* The outbox sees the unpublished job. */
    assert_int_equal(query_int(d, "SELECT count(*) FROM jobs WHERE "
                                  "published_at IS NULL"),
                     1);
    /* The constraints say what the API promises. */
    assert_int_equal(
        db_exec(d, "UPDATE runs SET result = 'passed'", 0, NULL, NULL),
        ST_INVALID); /* not ended */
    assert_int_equal(
        db_exec(d, "UPDATE runs SET state = 'lost'", 0, NULL, NULL),
        ST_INVALID);
    assert_int_equal(db_exec(d,
                             "UPDATE runs SET state = 'finished', "
                             "result = 'passed', finished_at = now()",
                             0, NULL, NULL),
                     ST_OK);
    assert_int_equal(
        db_exec(d,
                "INSERT INTO runs (suite, namespace, state, trigger, "
                "timeout_ms, queue_timeout_ms, config, idempotency_key) "
                "VALUES ('selftest', 'handoff', 'queued', 'api', 1, 1, '{}', "
                "'key-1')",
                0, NULL, NULL),
        ST_CONFLICT);
    assert_int_equal(
        db_exec(d,
                "INSERT INTO runs (suite, namespace, state, trigger, "
                "timeout_ms, queue_timeout_ms, config) VALUES ('s', 'n', "
                "'queued', 'carrier pigeon', 1, 1, '{}')",
                0, NULL, NULL),
        ST_INVALID);
    /* One DELETE takes everything below the run. */
    assert_int_equal(db_exec(d, "DELETE FROM runs WHERE id = $1", 1, p, NULL),
                     ST_OK);
    assert_int_equal(query_int(d, "SELECT (SELECT count(*) FROM jobs) + "
                                  "(SELECT count(*) FROM job_attempts) + "
                                  "(SELECT count(*) FROM test_results)"),
                     0);
    db_free(d);
}

struct migrator {
    const char *dsn;
    const struct migration *list;
    size_t n;
    pthread_barrier_t *start;
    int rc;
};

static void *migrate_thread(void *arg)
{
    struct migrator *m = arg;
    struct db *d = NULL;

    m->rc = db_connect(m->dsn, &d);
    pthread_barrier_wait(m->start);
    if (m->rc == ST_OK) {
        m->rc = migrate_apply(d, m->list, m->n);
    }
    db_free(d);
    return NULL;
}

static void test_migrate_concurrently_applies_each_version_once(void **state)
{
    /* Not idempotent on purpose: a second run would fail (the table
     * exists) and a double count would show. */
    static const struct migration once = {
        0, "side_effect",
        "CREATE TABLE applied_log (x int);\n"
        "INSERT INTO applied_log VALUES (1);\n"
        "SELECT pg_sleep(0.2);"};
    struct migration list[32];
    size_t n = builtin_plus(list, 32, &once);
    struct migrator m[4];
    pthread_t tid[4];
    pthread_barrier_t start;
    char dsn[1100];
    struct db *d = NULL;

    (void)state;
    make_database("concurrent", NULL, dsn, sizeof(dsn));
    pthread_barrier_init(&start, NULL, 4);
    for (int i = 0; i < 4; i++) {
        m[i] = (struct migrator){dsn, list, n, &start, -1};
        assert_int_equal(pthread_create(&tid[i], NULL, migrate_thread, &m[i]),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(m[i].rc, ST_OK);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(db_connect(dsn, &d), ST_OK);
    assert_int_equal(query_int(d, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)n);
    assert_int_equal(query_int(d, "SELECT count(*) FROM applied_log"), 1);
    db_free(d);
}

static void test_migrate_refuses_a_newer_database(void **state)
{
    char dsn[1100];
    struct db *d = NULL;
    size_t n = 0;

    (void)state;
    (void)migrate_builtin(&n);
    make_database("newer", NULL, dsn, sizeof(dsn));
    assert_int_equal(db_connect(dsn, &d), ST_OK);
    assert_int_equal(migrate_run(d), ST_OK);
    exec_ok(d, "INSERT INTO schema_migrations (version, name) VALUES "
               "(999, 'from_the_future')");
    assert_int_equal(migrate_run(d), ST_CONFLICT);
    /* The lock was let go, and the connection is fine. */
    assert_int_equal(query_int(d,
                               "SELECT count(*) FROM pg_locks WHERE locktype = "
                               "'advisory'"),
                     0);
    exec_ok(d, "DELETE FROM schema_migrations WHERE version = 999");
    assert_int_equal(migrate_run(d), ST_OK);
    db_free(d);
}

static void test_migrate_failed_migration_leaves_nothing(void **state)
{
    static const struct migration broken = {
        0, "broken", "CREATE TABLE half_done (x int);\nSELECT 1 / 0;"};
    struct migration list[32];
    size_t n = builtin_plus(list, 32, &broken);
    char dsn[1100];
    struct db *d = NULL;
    int version = -1;

    (void)state;
    make_database("broken", NULL, dsn, sizeof(dsn));
    assert_int_equal(db_connect(dsn, &d), ST_OK);
    assert_int_equal(migrate_apply(d, list, n), ST_INTERNAL);
    assert_int_equal(migrate_version(d, &version), ST_OK);
    assert_int_equal(version, (int)n - 1);
    assert_int_equal(query_int(d, "SELECT count(*) FROM pg_class WHERE "
                                  "relname = 'half_done'"),
                     0);
    assert_false(db_in_transaction(d));
    assert_int_equal(query_int(d,
                               "SELECT count(*) FROM pg_locks WHERE locktype = "
                               "'advisory'"),
                     0);
    db_free(d);
}

static void test_migrate_refuses_a_database_that_is_not_utf8(void **state)
{
    char dsn[1100];
    struct db *d = NULL;
    int version = -1;

    (void)state;
    make_database("ascii", "ENCODING 'SQL_ASCII' TEMPLATE template0", dsn,
                  sizeof(dsn));
    assert_int_equal(db_connect(dsn, &d), ST_OK);
    assert_int_equal(migrate_run(d), ST_INVALID);
    assert_int_equal(migrate_version(d, &version), ST_OK);
    assert_int_equal(version, 0);
    db_free(d);
}

/* ---- dbpool ------------------------------------------------------------ */

struct pool_run;

struct pool_task {
    struct pool_run *run;
    int i;
    atomic_int works;
    int dones;
    int rc;
    int64_t value;
    pthread_t worker;
};

struct pool_run {
    struct dbpool *pool;
    struct pool_task *tasks;
    int n;
    int done;      /* done callbacks so far */
    bool off_loop; /* a done ran on another thread */
    pthread_t loop;
    int resubmit_rc; /* what dbpool_submit said from a done, or -1 */
    bool try_resubmit;
};

static void pool_work(struct db *d, void *arg)
{
    struct pool_task *t = arg;
    char n[16];
    const char *p[1] = {n};
    struct db_res *res = NULL;

    snprintf(n, sizeof(n), "%d", t->i);
    t->worker = pthread_self();
    t->rc = db_exec(d, "SELECT $1::int * 2", 1, p, &res);
    if (t->rc == ST_OK && db_res_int64(res, 0, 0, &t->value) != ST_OK) {
        t->rc = ST_INTERNAL;
    }
    db_res_free(res);
    atomic_fetch_add(&t->works, 1);
}

static void pool_done(void *arg)
{
    struct pool_task *t = arg;
    struct pool_run *r = t->run;

    if (!pthread_equal(pthread_self(), r->loop)) {
        r->off_loop = true;
    }
    t->dones++;
    r->done++;
    if (r->try_resubmit) {
        r->resubmit_rc = dbpool_submit(r->pool, pool_work, pool_done, t);
    }
}

static bool all_done(void *arg)
{
    struct pool_run *r = arg;

    return r->done == r->n;
}

/* Submits n tasks on pool. */
static void submit_batch(struct pool_run *r, struct dbpool *pool, int n)
{
    *r = (struct pool_run){
        .pool = pool, .n = n, .loop = pthread_self(), .resubmit_rc = -1};
    r->tasks = mem_calloc((size_t)n, sizeof(*r->tasks));
    for (int i = 0; i < n; i++) {
        r->tasks[i].run = r;
        r->tasks[i].i = i;
        atomic_init(&r->tasks[i].works, 0);
        assert_int_equal(
            dbpool_submit(pool, pool_work, pool_done, &r->tasks[i]), ST_OK);
    }
}

/* Each task ran once and called back once on the loop thread; returns how
 * many got status rc. */
static int check_batch(struct pool_run *r, int rc)
{
    int got = 0;

    assert_false(r->off_loop);
    assert_int_equal(r->done, r->n);
    for (int i = 0; i < r->n; i++) {
        assert_int_equal(atomic_load(&r->tasks[i].works), 1);
        assert_int_equal(r->tasks[i].dones, 1);
        if (r->tasks[i].rc == rc) {
            got++;
        }
        if (r->tasks[i].rc == ST_OK) {
            assert_int_equal(r->tasks[i].value, 2 * i);
        }
    }
    return got;
}

static bool pool_up(void *arg)
{
    return dbpool_is_up(arg);
}

static bool pool_down(void *arg)
{
    return !dbpool_is_up(arg);
}

static void test_dbpool_runs_1000_tasks_done_once_on_the_loop(void **state)
{
    struct dbpool *pool = NULL;
    struct pool_run r;
    pthread_t seen[4];
    int n_seen = 0;
    int64_t t0;

    (void)state;
    assert_int_equal(dbpool_new(base, test_dsn, 4, &pool), ST_OK);
    assert_true(loop_until(pool_up, pool, WAIT_MS));
    t0 = clock_mono_ns();
    submit_batch(&r, pool, 1000);
    assert_true(dbpool_queue_len(pool) <= 1000);
    assert_true(loop_until(all_done, &r, WAIT_MS));
    fprintf(stderr,
            "test_db: 1000 pool tasks on 4 threads in %.1f ms, done "
            "callbacks included\n",
            (double)(clock_mono_ns() - t0) / 1e6);
    assert_int_equal(check_batch(&r, ST_OK), 1000);
    assert_int_equal(dbpool_queue_len(pool), 0);
    for (int i = 0; i < r.n; i++) {
        bool known = false;

        for (int k = 0; k < n_seen; k++) {
            known = known || pthread_equal(seen[k], r.tasks[i].worker);
        }
        if (!known) {
            assert_true(n_seen < 4);
            seen[n_seen++] = r.tasks[i].worker;
        }
    }
    assert_true(n_seen >= 2);
    free(r.tasks);
    dbpool_free(pool);
}

static void test_dbpool_free_runs_queued_tasks_and_their_done(void **state)
{
    struct dbpool *pool = NULL;
    struct pool_run r;

    (void)state;
    assert_int_equal(dbpool_new(base, test_dsn, 2, &pool), ST_OK);
    submit_batch(&r, pool, 300);
    /* The loop never runs: dbpool_free runs what is queued, then every
     * done, here; a submit from a done is refused. */
    r.try_resubmit = true;
    dbpool_free(pool);
    assert_int_equal(check_batch(&r, ST_OK), 300);
    assert_int_equal(r.resubmit_rc, ST_CANCELLED);
    free(r.tasks);
}

static void test_dbpool_survives_a_postgres_restart(void **state)
{
    struct dbpool *pool = NULL;
    struct pool_run r;
    int64_t t0;
    bool back = false;

    (void)state;
    assert_int_equal(dbpool_new(base, test_dsn, 2, &pool), ST_OK);
    submit_batch(&r, pool, 20);
    assert_true(loop_until(all_done, &r, WAIT_MS));
    assert_int_equal(check_batch(&r, ST_OK), 20);
    free(r.tasks);

    assert_int_equal(stack("stop-service"), 0);
    /* Idle threads notice within about a second. */
    assert_true(loop_until(pool_down, pool, 10000));
    t0 = now_ms();
    submit_batch(&r, pool, 20);
    assert_true(loop_until(all_done, &r, WAIT_MS));
    /* While PostgreSQL is away tasks still run, and fail fast. */
    assert_int_equal(check_batch(&r, ST_UPSTREAM), 20);
    assert_true(now_ms() - t0 < 5000);
    free(r.tasks);

    assert_int_equal(stack("start-service"), 0);
    t0 = now_ms();
    while (!back && now_ms() - t0 < WAIT_MS) {
        submit_batch(&r, pool, 1);
        assert_true(loop_until(all_done, &r, WAIT_MS));
        back = r.tasks[0].rc == ST_OK;
        free(r.tasks);
        if (!back) {
            pause_ms(50);
        }
    }
    assert_true(back);
    fprintf(stderr, "test_db: pool back %lld ms after the restart\n",
            (long long)(now_ms() - t0));
    submit_batch(&r, pool, 20);
    assert_true(loop_until(all_done, &r, WAIT_MS));
    assert_int_equal(check_batch(&r, ST_OK), 20);
    free(r.tasks);
    assert_true(dbpool_is_up(pool));
    dbpool_free(pool);
}

/* ---- Setup ------------------------------------------------------------- */

static int group_setup(void **state)
{
    struct db_res *res = NULL;
    char name[64];

    (void)state;
    if (db_connect(base_dsn, &admin) != ST_OK) {
        fprintf(stderr, "test_db: cannot connect to HANDOFF_PG_DSN\n");
        return -1;
    }
    make_database(NULL, NULL, test_dsn, sizeof(test_dsn));
    if (db_connect(test_dsn, &conn) != ST_OK ||
        db_exec(conn, "SELECT current_database()", 0, NULL, &res) != ST_OK) {
        return -1;
    }
    /* Never work in anybody else's database. */
    snprintf(name, sizeof(name), "handoff_test_%d", (int)getpid());
    if (strcmp(db_res_get(res, 0, 0), name) != 0) {
        fprintf(stderr, "test_db: connected to %s, not %s\n",
                db_res_get(res, 0, 0), name);
        db_res_free(res);
        return -1;
    }
    db_res_free(res);
    return 0;
}

static int group_teardown(void **state)
{
    int failed = 0;

    (void)state;
    db_free(conn);
    conn = NULL;
    if (admin && !db_is_ok(admin)) {
        (void)db_reset(admin);
    }
    for (size_t i = 0; i < n_databases; i++) {
        char sql[256];

        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                 databases[i]);
        if (!admin || db_exec(admin, sql, 0, NULL, NULL) != ST_OK) {
            fprintf(stderr, "test_db: could not drop database %s\n",
                    databases[i]);
            failed = -1;
        }
        free(databases[i]);
    }
    n_databases = 0;
    db_free(admin);
    admin = NULL;
    return failed;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_connect_to_nowhere_is_upstream),
        cmocka_unit_test(test_db_reset_reconnects_a_dropped_connection),
        cmocka_unit_test(test_db_exec_passes_params_null_and_unicode),
        cmocka_unit_test(test_db_maps_errors_to_statuses),
        cmocka_unit_test(test_db_exec_script_runs_several_statements),
        cmocka_unit_test(test_db_exec_prepares_and_survives_lost_statements),
        cmocka_unit_test(test_db_transactions_commit_and_roll_back),
        cmocka_unit_test(test_db_transact_retries_serialization_failures),
        cmocka_unit_test(test_db_copy_round_trips_nasty_strings),
        cmocka_unit_test(test_db_copy_refuses_bad_data_and_stays_usable),
        cmocka_unit_test(test_db_copy_loads_rows_fast),
        cmocka_unit_test(test_migrate_from_scratch_then_again_does_nothing),
        cmocka_unit_test(test_migrate_schema_holds_a_run_and_cascades),
        cmocka_unit_test(test_migrate_concurrently_applies_each_version_once),
        cmocka_unit_test(test_migrate_refuses_a_newer_database),
        cmocka_unit_test(test_migrate_failed_migration_leaves_nothing),
        cmocka_unit_test(test_migrate_refuses_a_database_that_is_not_utf8),
        cmocka_unit_test(test_dbpool_runs_1000_tasks_done_once_on_the_loop),
        cmocka_unit_test(test_dbpool_free_runs_queued_tasks_and_their_done),
        /* Last: it restarts the server under everybody's connections. */
        cmocka_unit_test(test_dbpool_survives_a_postgres_restart),
    };
    int failed;

    base_dsn = getenv("HANDOFF_PG_DSN");
    if (!base_dsn || !*base_dsn || !getenv("HANDOFF_STACK_DIR")) {
        fprintf(stderr,
                "test_db: FAIL: HANDOFF_PG_DSN and HANDOFF_STACK_DIR are not "
                "set. This test needs the local stack:\n"
                "  deploy/stack.sh up && eval \"$(deploy/stack.sh env)\"\n"
                "then run it again (or ctest -L integration).\n");
        return 1;
    }
    log_setup("test_db", LOG_WARN);
    /* Before the base: dbpool hands results to the loop from its
     * threads. */
    evthread_use_pthreads();
    base = event_base_new();
    if (!base) {
        fprintf(stderr, "test_db: no event base\n");
        return 1;
    }
    failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    event_base_free(base);
    libevent_global_shutdown();
    return failed;
}
