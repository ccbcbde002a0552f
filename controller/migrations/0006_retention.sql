-- Migration 6: retention policies and the runs they expire (docs/api.md,
-- Retention; the janitor in controller/janitor.c deletes them).

-- How long runs are kept: a suite's own policy, else its namespace's, else
-- the default (namespace and suite ''). The most specific policy applies
-- alone; max_runs counts the runs of each suite. No row at all: runs are
-- kept forever.
CREATE TABLE retention_policies (
    namespace text NOT NULL DEFAULT '', -- '': the default policy
    suite text NOT NULL DEFAULT '',     -- '': every suite of namespace
    max_age_ms bigint CHECK (max_age_ms > 0),
    max_runs int CHECK (max_runs >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, suite),
    CONSTRAINT retention_policies_scope CHECK (suite = '' OR namespace <> ''),
    CONSTRAINT retention_policies_limit
        CHECK (max_age_ms IS NOT NULL OR max_runs IS NOT NULL)
);

CREATE OR REPLACE FUNCTION handoff_retention_json(p retention_policies)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'namespace', nullif(p.namespace, ''), 'suite', nullif(p.suite, ''),
        'scope', CASE WHEN p.namespace = '' THEN 'default'
                      WHEN p.suite = '' THEN 'namespace' ELSE 'suite' END,
        'max_age', CASE WHEN p.max_age_ms IS NOT NULL
                        THEN p.max_age_ms || 'ms' END,
        'max_age_ms', p.max_age_ms, 'max_runs', p.max_runs,
        'created_at', handoff_ts(p.created_at),
        'updated_at', handoff_ts(p.updated_at))
$$;

-- Up to p_limit runs that their policy expires, oldest first; never a
-- queued or running one. The (suite, namespace) pairs are walked with a
-- loose index scan of runs_suite_namespace_id (one probe per pair, not a
-- scan of every run); max_runs finds the newest run past the limit by the
-- same index, and everything at or below its id goes.
CREATE OR REPLACE FUNCTION handoff_retention_expired(p_limit int)
RETURNS TABLE (id bigint)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE k(suite, namespace) AS (
        (SELECT r.suite, r.namespace FROM runs r
         ORDER BY r.suite, r.namespace LIMIT 1)
        UNION ALL
        SELECT n.suite, n.namespace FROM k, LATERAL (
            SELECT r.suite, r.namespace FROM runs r
            WHERE (r.suite, r.namespace) > (k.suite, k.namespace)
            ORDER BY r.suite, r.namespace LIMIT 1) n
    ), kp AS (
        SELECT k.suite, k.namespace, p.max_age_ms, p.max_runs
        FROM k CROSS JOIN LATERAL (
            SELECT * FROM retention_policies p
            WHERE p.namespace IN (k.namespace, '')
              AND p.suite IN (k.suite, '')
              AND (p.suite = '' OR p.namespace <> '')
            ORDER BY p.namespace DESC, p.suite DESC LIMIT 1) p
    ), kt AS (
        SELECT kp.*,
            -- OFFSET NULL would be OFFSET 0: no max_runs, no last_id.
            CASE WHEN kp.max_runs IS NOT NULL THEN
                (SELECT r.id FROM runs r
                 WHERE r.suite = kp.suite AND r.namespace = kp.namespace
                 ORDER BY r.id DESC OFFSET kp.max_runs LIMIT 1) END
                AS last_id,
            now() - kp.max_age_ms * interval '1 millisecond' AS cutoff
        FROM kp
    )
    SELECT x.id FROM kt CROSS JOIN LATERAL (
        SELECT r.id FROM runs r
        WHERE r.suite = kt.suite AND r.namespace = kt.namespace
          AND r.state NOT IN ('queued', 'running')
          AND (r.id <= kt.last_id OR r.created_at < kt.cutoff)
        ORDER BY r.id LIMIT p_limit) x
    ORDER BY x.id LIMIT p_limit
$$;

-- Deletes one batch of expired runs (their jobs, attempts and results go
-- by ON DELETE CASCADE; schedule ticks keep a NULL run_id) and says how
-- many rows of each went, for the janitor's metrics. One statement: the
-- counts and the delete see the same snapshot.
CREATE OR REPLACE FUNCTION handoff_retention_delete(p_limit int)
RETURNS TABLE (runs bigint, jobs bigint, job_attempts bigint,
               test_results bigint)
LANGUAGE sql VOLATILE AS $$
    WITH ids AS (
        SELECT array_agg(e.id) AS a FROM handoff_retention_expired(p_limit) e
    ), c AS (
        SELECT
            (SELECT count(*) FROM jobs j, ids WHERE j.run_id = ANY (ids.a)),
            (SELECT count(*) FROM job_attempts ja, ids
             WHERE ja.run_id = ANY (ids.a)),
            (SELECT count(*) FROM test_results t, ids
             WHERE t.run_id = ANY (ids.a))
    ), d AS (
        DELETE FROM runs r USING ids WHERE r.id = ANY (ids.a)
          AND r.state NOT IN ('queued', 'running')
        RETURNING r.id
    )
    SELECT (SELECT count(*) FROM d), c.* FROM c
$$;
