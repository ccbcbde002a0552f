/* The database layer without a server: COPY text escaping, SQLSTATE to
 * status mapping, argument checks, the built-in migration list, and what a
 * handle that never connected answers. No network: nothing here connects
 * (tests/integration/test_db.c does). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "db.h"
#include "dbpool.h"
#include "log.h"
#include "migrate.h"
#include "status.h"

/* A DSN that would reach nothing; only db_new sees it, which never
 * connects. */
#define NOWHERE "host=127.0.0.1 port=1 dbname=none user=none"

static char *escaped(const char *field)
{
    struct buf b;

    buf_init(&b, 0);
    db_copy_escape(&b, field);
    return buf_detach(&b);
}

static void check_escape(const char *field, const char *want)
{
    char *got = escaped(field);

    assert_string_equal(got, want);
    free(got);
}

static void test_db_copy_escape_writes_the_text_format(void **state)
{
    (void)state;
    check_escape(NULL, "\\N");
    check_escape("", "");
    check_escape("plain text", "plain text");
    check_escape("a\tb", "a\\tb");
    check_escape("a\nb", "a\\nb");
    check_escape("a\rb", "a\\rb");
    check_escape("a\\b", "a\\\\b");
    /* The literal text \N must not read back as NULL, nor \. as the end
     * of data. */
    check_escape("\\N", "\\\\N");
    check_escape("\\.", "\\\\.");
    check_escape("\\", "\\\\");
    check_escape("\t\n\r\\", "\\t\\n\\r\\\\");
    check_escape("\n\n", "\\n\\n");
    /* Other bytes go as they are: UTF-8, other control characters. */
    check_escape("h\xc3\xa9llo \xe2\x9c\x93", "h\xc3\xa9llo \xe2\x9c\x93");
    check_escape("\b\f\v\x01", "\b\f\v\x01");
}

static void test_db_copy_escape_appends_to_what_is_there(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    db_copy_escape(&b, "1");
    buf_addc(&b, '\t');
    db_copy_escape(&b, NULL);
    buf_addc(&b, '\t');
    db_copy_escape(&b, "x\ty");
    assert_string_equal(buf_str(&b), "1\t\\N\tx\\ty");
    buf_cleanup(&b);
}

static void test_db_sqlstate_status_maps_classes(void **state)
{
    static const struct {
        const char *sqlstate;
        int status;
    } cases[] = {
        {"23505", ST_CONFLICT},  /* unique_violation */
        {"23502", ST_INVALID},   /* not_null_violation */
        {"23503", ST_INVALID},   /* foreign_key_violation */
        {"23514", ST_INVALID},   /* check_violation */
        {"22021", ST_INVALID},   /* character_not_in_repertoire */
        {"22P02", ST_INVALID},   /* invalid_text_representation */
        {"22003", ST_INVALID},   /* numeric_value_out_of_range */
        {"40001", ST_UPSTREAM},  /* serialization_failure */
        {"40P01", ST_UPSTREAM},  /* deadlock_detected */
        {"08006", ST_UPSTREAM},  /* connection_failure */
        {"08001", ST_UPSTREAM},  /* sqlclient_unable_to_establish... */
        {"57P01", ST_UPSTREAM},  /* admin_shutdown */
        {"57P02", ST_UPSTREAM},  /* crash_shutdown */
        {"57P03", ST_UPSTREAM},  /* cannot_connect_now */
        {"53300", ST_UPSTREAM},  /* too_many_connections */
        {"57014", ST_TIMEOUT},   /* query_canceled */
        {"40002", ST_INTERNAL},  /* integrity constraint at commit... */
        {"42601", ST_INTERNAL},  /* syntax_error */
        {"42P01", ST_INTERNAL},  /* undefined_table */
        {"25P02", ST_INTERNAL},  /* in_failed_sql_transaction */
        {"57P04", ST_INTERNAL},  /* database_dropped */
        {"XX000", ST_INTERNAL},  /* internal_error */
        {"", ST_INTERNAL},       /* none */
        {"2350", ST_INTERNAL},   /* too short */
        {"235050", ST_INTERNAL}, /* too long */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (db_sqlstate_status(cases[i].sqlstate) != cases[i].status) {
            fail_msg("SQLSTATE \"%s\": got %s, want %s", cases[i].sqlstate,
                     status_str(db_sqlstate_status(cases[i].sqlstate)),
                     status_str(cases[i].status));
        }
    }
    assert_int_equal(db_sqlstate_status(NULL), ST_INTERNAL);
}

static void test_db_refuses_malformed_connection_strings(void **state)
{
    static const char *const bad[] = {
        "host",
        "host=127.0.0.1 nonsense=1",
        "host='unterminated",
        "postgresql://[::1",
    };
    struct db *d = NULL;
    struct dbpool *p = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(db_new(bad[i], &d), ST_INVALID);
        assert_null(d);
        assert_int_equal(db_connect(bad[i], &d), ST_INVALID);
        assert_null(d);
        assert_int_equal(db_wait_ready(bad[i], 1000), ST_INVALID);
        /* The pool checks the string before it starts anything. */
        assert_int_equal(dbpool_new(NULL, bad[i], 2, &p), ST_INVALID);
        assert_null(p);
    }
}

static void test_dbpool_refuses_bad_thread_counts(void **state)
{
    struct dbpool *p = NULL;

    (void)state;
    assert_int_equal(dbpool_new(NULL, NOWHERE, 0, &p), ST_INVALID);
    assert_int_equal(dbpool_new(NULL, NOWHERE, -1, &p), ST_INVALID);
    assert_int_equal(dbpool_new(NULL, NOWHERE, DBPOOL_MAX_THREADS + 1, &p),
                     ST_INVALID);
    assert_null(p);
    dbpool_free(NULL);
}

static void test_db_unconnected_handle_fails_fast_with_upstream(void **state)
{
    const char *params[2] = {"1", NULL};
    const char *row[1] = {"x"};
    struct db_res *res = NULL;
    struct db *d = NULL;

    (void)state;
    assert_int_equal(db_new(NOWHERE, &d), ST_OK);
    assert_false(db_is_ok(d));
    assert_false(db_in_transaction(d));
    assert_int_equal(db_exec(d, "SELECT $1, $2", 2, params, &res), ST_UPSTREAM);
    assert_null(res);
    assert_int_equal(db_exec_ctx(d, "unit test", "SELECT 1", 0, NULL, NULL),
                     ST_UPSTREAM);
    assert_int_equal(db_exec_script(d, NULL, "SELECT 1; SELECT 2"),
                     ST_UPSTREAM);
    assert_int_equal(db_begin(d), ST_UPSTREAM);
    assert_int_equal(db_commit(d), ST_UPSTREAM);
    db_rollback(d);
    assert_int_equal(db_copy_begin(d, "COPY t FROM STDIN"), ST_UPSTREAM);
    assert_int_equal(db_copy_row(d, 1, row), ST_INTERNAL);
    assert_int_equal(db_copy_end(d), ST_INTERNAL);
    assert_string_equal(db_last_sqlstate(d), "");
    db_free(d);
    db_free(NULL);
}

static void test_db_res_accessors_accept_no_result(void **state)
{
    int64_t v = 7;

    (void)state;
    assert_int_equal(db_res_rows(NULL), 0);
    assert_int_equal(db_res_cols(NULL), 0);
    assert_null(db_res_get(NULL, 0, 0));
    assert_true(db_res_is_null(NULL, 0, 0));
    assert_int_equal(db_res_int64(NULL, 0, 0, &v), ST_INVALID);
    assert_int_equal(v, 7);
    assert_int_equal(db_res_col(NULL, "id"), -1);
    assert_int_equal(db_res_affected(NULL), 0);
    db_res_free(NULL);
}

static void test_migrate_builtin_list_is_ordered_from_one(void **state)
{
    size_t n = 0;
    const struct migration *m = migrate_builtin(&n);

    (void)state;
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i].version, (int)i + 1);
        assert_non_null(m[i].name);
        assert_true(strlen(m[i].name) > 0);
        assert_non_null(m[i].sql);
    }
    assert_string_equal(m[0].name, "schema");
    assert_non_null(strstr(m[0].sql, "CREATE TABLE runs ("));
    assert_non_null(strstr(m[0].sql, "CREATE TABLE test_results ("));
    /* The list ends with a terminator past n. */
    assert_null(m[n].sql);
}

static void test_migrate_refuses_a_list_out_of_order(void **state)
{
    static const struct migration twice[] = {
        {1, "a", "SELECT 1"},
        {1, "b", "SELECT 1"},
    };
    static const struct migration backwards[] = {
        {2, "a", "SELECT 1"},
        {1, "b", "SELECT 1"},
    };
    static const struct migration zero[] = {
        {0, "a", "SELECT 1"},
    };
    struct db *d = NULL;

    (void)state;
    assert_int_equal(db_new(NOWHERE, &d), ST_OK);
    /* Refused before anything is sent: the handle is not connected. */
    assert_int_equal(migrate_apply(d, twice, 2), ST_INTERNAL);
    assert_int_equal(migrate_apply(d, backwards, 2), ST_INTERNAL);
    assert_int_equal(migrate_apply(d, zero, 1), ST_INTERNAL);
    /* A good list gets as far as the (missing) server. */
    assert_int_equal(migrate_apply(d, zero + 0, 0), ST_UPSTREAM);
    db_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_copy_escape_writes_the_text_format),
        cmocka_unit_test(test_db_copy_escape_appends_to_what_is_there),
        cmocka_unit_test(test_db_sqlstate_status_maps_classes),
        cmocka_unit_test(test_db_refuses_malformed_connection_strings),
        cmocka_unit_test(test_dbpool_refuses_bad_thread_counts),
        cmocka_unit_test(test_db_unconnected_handle_fails_fast_with_upstream),
        cmocka_unit_test(test_db_res_accessors_accept_no_result),
        cmocka_unit_test(test_migrate_builtin_list_is_ordered_from_one),
        cmocka_unit_test(test_migrate_refuses_a_list_out_of_order),
    };

    /* The failures these tests provoke are logged; keep the output to
     * the verdicts. */
    log_setup("test_db", LOG_OFF);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
