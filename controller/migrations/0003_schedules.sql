-- Migration 3: schedules, the ticks they fired or skipped, and the link
-- from a run to the schedule that fired it (docs/scheduling.md).

-- A recurring run request. The run fields have the columns and meaning of
-- the runs table; next_fire_at is the next tick (NULL: paused, or ended by
-- max_runs or end_at). Replicas advance it with a guarded UPDATE
-- (WHERE next_fire_at = the tick they read), so a tick is handled once.
CREATE TABLE schedules (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    suite text NOT NULL,
    namespace text NOT NULL,
    pool text NOT NULL DEFAULT 'default',
    expression text NOT NULL,           -- cron, @daily, @every 30s
    time_zone text NOT NULL DEFAULT 'UTC',
    enabled boolean NOT NULL DEFAULT true,
    run_filter text,
    skip_filter text,
    params jsonb NOT NULL DEFAULT '{}',
    initiated_by text NOT NULL DEFAULT '',
    reference text NOT NULL DEFAULT '',
    environment text NOT NULL DEFAULT '',
    count int NOT NULL DEFAULT 1 CHECK (count >= 1),
    max_attempts int CHECK (max_attempts >= 1), -- NULL: the suite's
    timeout_ms bigint CHECK (timeout_ms > 0),   -- NULL: the suite's
    test_timeout_ms bigint CHECK (test_timeout_ms > 0),
    queue_timeout_ms bigint CHECK (queue_timeout_ms > 0),
    overlap_policy text NOT NULL DEFAULT 'forbid'
        CHECK (overlap_policy IN ('forbid', 'allow')),
    catch_up text NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'one')),
    max_runs int CHECK (max_runs >= 1),
    end_at timestamptz,
    runs_fired int NOT NULL DEFAULT 0,
    next_fire_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The scheduler's poll: enabled schedules by next tick.
CREATE INDEX schedules_due ON schedules (next_fire_at)
    WHERE enabled AND next_fire_at IS NOT NULL;

-- Each tick a schedule reached, once: the primary key is what makes a
-- second replica's attempt at the same tick fail.
CREATE TABLE schedule_ticks (
    schedule_id bigint NOT NULL REFERENCES schedules ON DELETE CASCADE,
    tick_at timestamptz NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('fired', 'skipped')),
    reason text CHECK (reason IN ('overlap', 'redis_down', 'missed',
                                  'error')),
    detail text,
    run_id bigint REFERENCES runs ON DELETE SET NULL,
    controller text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, tick_at),
    CONSTRAINT schedule_ticks_reason
        CHECK ((outcome = 'fired') = (reason IS NULL))
);

CREATE INDEX schedule_ticks_run ON schedule_ticks (run_id)
    WHERE run_id IS NOT NULL;

-- runs.schedule_id exists since migration 1; now it points somewhere.
ALTER TABLE runs ADD CONSTRAINT runs_schedule_fk FOREIGN KEY (schedule_id)
    REFERENCES schedules ON DELETE SET NULL;
CREATE INDEX runs_schedule ON runs (schedule_id, id DESC)
    WHERE schedule_id IS NOT NULL;

-- The schedule object of the API: its fields, next tick, last runs and
-- last ticks.
CREATE OR REPLACE FUNCTION handoff_schedule_json(s schedules) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', s.id, 'name', s.name, 'suite', s.suite,
        'namespace', s.namespace, 'pool', s.pool,
        'expression', s.expression, 'time_zone', s.time_zone,
        'enabled', s.enabled, 'run', s.run_filter, 'skip', s.skip_filter,
        'params', s.params, 'initiated_by', s.initiated_by,
        'reference', s.reference, 'environment', s.environment,
        'count', s.count, 'max_attempts', s.max_attempts,
        'timeout_ms', s.timeout_ms, 'test_timeout_ms', s.test_timeout_ms,
        'queue_timeout_ms', s.queue_timeout_ms,
        'overlap_policy', s.overlap_policy, 'catch_up', s.catch_up,
        'max_runs', s.max_runs, 'end_at', handoff_ts(s.end_at),
        'runs_fired', s.runs_fired,
        'next_fire_at', handoff_ts(s.next_fire_at),
        'created_at', handoff_ts(s.created_at),
        'updated_at', handoff_ts(s.updated_at),
        'last_runs', coalesce((SELECT jsonb_agg(jsonb_build_object(
            'id', r.id, 'state', r.state, 'result', r.result,
            'created_at', handoff_ts(r.created_at)) ORDER BY r.id DESC)
            FROM (SELECT * FROM runs WHERE schedule_id = s.id
                  ORDER BY id DESC LIMIT 10) r), '[]'::jsonb),
        'last_ticks', coalesce((SELECT jsonb_agg(jsonb_build_object(
            'tick_at', handoff_ts(t.tick_at), 'outcome', t.outcome,
            'reason', t.reason, 'detail', t.detail, 'run_id', t.run_id)
            ORDER BY t.tick_at DESC)
            FROM (SELECT * FROM schedule_ticks WHERE schedule_id = s.id
                  ORDER BY tick_at DESC LIMIT 20) t), '[]'::jsonb))
$$;

-- The schedule's fields as a request body (the API's field names), for
-- PATCH, which merges a patch over it and validates the whole again.
CREATE OR REPLACE FUNCTION handoff_schedule_body(s schedules) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'name', s.name, 'suite', s.suite, 'namespace', s.namespace,
        'pool', s.pool, 'expression', s.expression,
        'time_zone', s.time_zone, 'enabled', s.enabled,
        'run', s.run_filter, 'skip', s.skip_filter, 'params', s.params,
        'initiated_by', s.initiated_by, 'reference', s.reference,
        'environment', s.environment, 'count', s.count,
        'max_attempts', s.max_attempts,
        'timeout', s.timeout_ms || 'ms',
        'test_timeout', s.test_timeout_ms || 'ms',
        'queue_timeout', s.queue_timeout_ms || 'ms',
        'overlap_policy', s.overlap_policy, 'catch_up', s.catch_up,
        'max_runs', s.max_runs, 'end_at', handoff_ts(s.end_at)))
$$;

-- The run request a tick of s makes (POST /api/v1/runs fields, trigger
-- "schedule"), parsed by the same code as the API's.
CREATE OR REPLACE FUNCTION handoff_schedule_run_request(s schedules)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'suite', s.suite, 'namespace', s.namespace, 'pool', s.pool,
        'run', s.run_filter, 'skip', s.skip_filter, 'params', s.params,
        'initiated_by', CASE WHEN s.initiated_by = ''
                             THEN 'schedule:' || s.name
                             ELSE s.initiated_by END,
        'reference', s.reference, 'environment', s.environment,
        'count', s.count, 'max_attempts', s.max_attempts,
        'timeout', s.timeout_ms || 'ms',
        'test_timeout', s.test_timeout_ms || 'ms',
        'queue_timeout', s.queue_timeout_ms || 'ms',
        'trigger', 'schedule'))
$$;
