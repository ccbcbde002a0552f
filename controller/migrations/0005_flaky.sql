-- Migration 5: flaky tests across a suite's last runs (docs/api.md,
-- GET /api/v1/suites/{name}/flaky, and the handoff_tests_flaky gauge).
--
-- A test is flaky over a window of the last K ended runs of a suite when
-- its final result was passed in one of them and failed (or error) in
-- another, or when it failed and then passed within one run. Both read
-- the last K runs by runs_suite_namespace_id and their results by
-- test_results_run_name: no new index is needed.

-- One row per (run, test) of the window that ran the test (not only
-- skipped it): the test's final result, whether any attempt failed, and
-- its attempts as evidence.
CREATE OR REPLACE FUNCTION handoff_flaky_runs(p_ns text, p_suite text,
                                              p_window int)
RETURNS TABLE (run_id bigint, created_at timestamptz, name text,
               final text, any_failed boolean, attempts jsonb)
LANGUAGE sql STABLE AS $$
    WITH w AS (
        SELECT r.id, r.created_at FROM runs r
        WHERE r.suite = p_suite AND r.namespace = p_ns
          AND r.state NOT IN ('queued', 'running')
        ORDER BY r.id DESC LIMIT p_window
    )
    SELECT t.run_id, min(w.created_at), t.name,
        (array_agg(t.result ORDER BY t.job_attempt DESC, t.seq DESC,
                   t.attempt DESC))[1],
        bool_or(t.result IN ('failed', 'error')),
        jsonb_agg(jsonb_build_object(
            'job_attempt', t.job_attempt, 'attempt', t.attempt,
            'result', t.result, 'reason', t.reason)
            ORDER BY t.job_attempt, t.seq, t.attempt)
    FROM w JOIN test_results t ON t.run_id = w.id
    GROUP BY t.run_id, t.name
    HAVING bool_or(t.result <> 'skipped') -- filtered out: no evidence
$$;

-- The flaky tests of a suite over its last p_window ended runs.
CREATE OR REPLACE FUNCTION handoff_flaky_json(p_ns text, p_suite text,
                                              p_window int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH pr AS (
        SELECT f.*, (f.final = 'passed' AND f.any_failed) AS in_run
        FROM handoff_flaky_runs(p_ns, p_suite, p_window) f
    ), t AS (
        SELECT pr.name,
            count(*) FILTER (WHERE pr.final = 'passed') AS passed,
            count(*) FILTER (WHERE pr.final IN ('failed', 'error')) AS failed,
            count(*) FILTER (WHERE pr.in_run) AS flaky_runs
        FROM pr GROUP BY pr.name
    )
    SELECT jsonb_build_object(
        'suite', p_suite, 'namespace', p_ns, 'window', p_window,
        'runs', (SELECT count(*) FROM (
            SELECT 1 FROM runs r
            WHERE r.suite = p_suite AND r.namespace = p_ns
              AND r.state NOT IN ('queued', 'running')
            ORDER BY r.id DESC LIMIT p_window) w),
        'tests', coalesce((SELECT jsonb_agg(jsonb_build_object(
            'name', t.name, 'passed_runs', t.passed,
            'failed_runs', t.failed, 'flaky_runs', t.flaky_runs,
            'runs', (SELECT jsonb_agg(jsonb_build_object(
                'id', pr.run_id, 'result', pr.final, 'flaky', pr.in_run,
                'created_at', handoff_ts(pr.created_at),
                'attempts', pr.attempts) ORDER BY pr.run_id DESC)
                FROM pr WHERE pr.name = t.name))
            ORDER BY t.name)
            FROM t WHERE (t.passed > 0 AND t.failed > 0) OR t.flaky_runs > 0),
            '[]'::jsonb))
$$;

-- Flaky tests per suite of the catalog, for the gauge: the same rule
-- without the evidence.
CREATE OR REPLACE FUNCTION handoff_flaky_counts(p_window int)
RETURNS TABLE (namespace text, suite text, flaky bigint)
LANGUAGE sql STABLE AS $$
    SELECT s.namespace, s.name, (
        SELECT count(*) FROM (
            SELECT f.name FROM handoff_flaky_runs(s.namespace, s.name,
                                                  p_window) f
            GROUP BY f.name
            HAVING (bool_or(f.final = 'passed') AND
                    bool_or(f.final IN ('failed', 'error')))
                OR bool_or(f.final = 'passed' AND f.any_failed)) x)
    FROM suites s
$$;
