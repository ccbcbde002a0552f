-- Migration 2: columns the API and sweeper need, and the JSON the API
-- answers with, built in the database (docs/api.md).
-- Columns the API and the sweeper need beyond the first schema.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS tests_flaky int NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS last_started_at timestamptz;
CREATE INDEX IF NOT EXISTS runs_running_deadline ON runs (last_started_at)
    WHERE state = 'running';
CREATE INDEX IF NOT EXISTS runs_queued_created ON runs (created_at)
    WHERE state = 'queued';
-- JSON of runs and their results, built where the data is (docs/api.md):
-- the API answers with these strings as they are.

CREATE OR REPLACE FUNCTION handoff_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- The run object of lists and details (no tests, no logs).
CREATE OR REPLACE FUNCTION handoff_run_json(r runs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', r.id, 'suite', r.suite, 'namespace', r.namespace,
        'pool', r.pool, 'state', r.state, 'result', r.result,
        'reason', r.reason, 'trigger', r.trigger,
        'initiated_by', r.initiated_by, 'reference', r.reference,
        'environment', r.environment, 'params', r.params,
        'run', r.run_filter, 'skip', r.skip_filter, 'count', r.count,
        'max_attempts', r.max_attempts, 'timeout_ms', r.timeout_ms,
        'test_timeout_ms', r.test_timeout_ms,
        'queue_timeout_ms', r.queue_timeout_ms,
        'created_at', handoff_ts(r.created_at),
        'started_at', handoff_ts(r.started_at),
        'finished_at', handoff_ts(r.finished_at),
        'duration_ms', CASE WHEN r.finished_at IS NOT NULL
            THEN round(extract(epoch FROM r.finished_at -
                 coalesce(r.started_at, r.created_at)) * 1000)::bigint END,
        'flaky', r.flaky,
        'cancel_requested_at', handoff_ts(r.cancel_requested_at),
        'counts', jsonb_build_object(
            'tests', r.tests_total, 'passed', r.tests_passed,
            'failed', r.tests_failed, 'skipped', r.tests_skipped,
            'error', r.tests_error, 'soft_failures', r.soft_failures,
            'flaky', r.tests_flaky),
        'jobs', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'id', j.id, 'state', j.state, 'attempts', j.attempts,
                'worker', j.worker_id, 'result', j.result) ORDER BY j.shard)
            FROM jobs j WHERE j.run_id = r.id), '[]'::jsonb))
$$;

-- The attempts of one test of a run, across job attempts, in order.
CREATE OR REPLACE FUNCTION handoff_test_json(p_run bigint, p_name text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH a AS (
        SELECT t.*, ja.worker_id
        FROM test_results t
        JOIN job_attempts ja ON ja.job_id = t.job_id
                            AND ja.job_attempt = t.job_attempt
        WHERE t.run_id = p_run AND t.name = p_name
        ORDER BY t.job_attempt, t.seq, t.attempt
    ), last AS (
        SELECT * FROM a ORDER BY job_attempt DESC, seq DESC, attempt DESC
        LIMIT 1
    )
    SELECT jsonb_build_object(
        'run_id', p_run, 'name', p_name,
        'result', (SELECT result FROM last),
        'soft_failure', coalesce((SELECT soft_failure FROM last), false),
        'flaky', coalesce((SELECT result = 'passed' FROM last), false)
                 AND EXISTS (SELECT 1 FROM a
                             WHERE a.result IN ('failed', 'error')),
        'attempts', coalesce((SELECT jsonb_agg(jsonb_build_object(
            'attempt', a.attempt, 'job_attempt', a.job_attempt,
            'worker', a.worker_id, 'result', a.result,
            'soft_failure', a.soft_failure,
            'started_at', handoff_ts(a.started_at),
            'duration_ms', a.duration_ms, 'reason', a.reason,
            'log', a.log, 'log_dropped', a.log_dropped,
            'values', a."values", 'spans', a.spans)
            ORDER BY a.job_attempt, a.seq, a.attempt) FROM a), '[]'::jsonb))
$$;

-- One run with setup, teardown, run log and every test with every attempt.
CREATE OR REPLACE FUNCTION handoff_run_detail_json(p_run bigint)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH r AS (SELECT * FROM runs WHERE id = p_run),
    ja AS (  -- the attempt whose result the run took (latest done)
        SELECT * FROM job_attempts
        WHERE run_id = p_run AND state = 'done'
        ORDER BY finished_at DESC NULLS LAST, job_attempt DESC LIMIT 1
    ), names AS (
        SELECT name, min(seq) AS first_seq FROM test_results
        WHERE run_id = p_run GROUP BY name
    )
    SELECT handoff_run_json(r.*) || jsonb_build_object(
        'setup', (SELECT setup FROM ja),
        'teardown', (SELECT teardown FROM ja),
        'log', (SELECT log FROM ja),
        'lost_attempts', coalesce((SELECT jsonb_agg(jsonb_build_object(
            'job_id', l.job_id, 'job_attempt', l.job_attempt,
            'worker', l.worker_id, 'reason', l.reason,
            'started_at', handoff_ts(l.started_at)) ORDER BY l.job_attempt)
            FROM job_attempts l WHERE l.run_id = p_run AND l.state = 'lost'),
            '[]'::jsonb),
        'tests', coalesce((SELECT jsonb_agg(handoff_test_json(p_run, n.name)
                                            ORDER BY n.first_seq)
                           FROM names n), '[]'::jsonb))
    FROM r
$$;
