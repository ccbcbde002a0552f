-- handoff_run_json in PL/pgSQL: the same object, half the cost.
--
-- As a LANGUAGE sql function that the planner cannot inline (it takes a
-- row and holds a subquery), its body was parsed and planned on every
-- statement that called it: 0.45 ms a call, the most expensive statement
-- of POST /api/v1/runs under load (pg_stat_statements). PL/pgSQL keeps
-- the plan of its subquery for the session: 0.22 ms (pgbench, prepared).

CREATE OR REPLACE FUNCTION handoff_run_json(r runs) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
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
            FROM jobs j WHERE j.run_id = r.id), '[]'::jsonb));
END
$$;
