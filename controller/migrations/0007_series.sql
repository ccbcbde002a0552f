-- Migration 7: soak series (docs/api.md, Series): one run request repeated
-- N times, for a duration, or until the first failure, with a pause
-- between runs. The scheduler thread of every replica drives them; a run
-- of a series is created only by the transaction that moves runs_started
-- from the value it read (a guarded UPDATE), so each run starts once.

CREATE TABLE series (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    suite text NOT NULL,
    namespace text NOT NULL,
    request jsonb NOT NULL,             -- the run request, as for a run
    max_runs int CHECK (max_runs >= 1), -- "repeat"
    duration_ms bigint CHECK (duration_ms > 0),
    until_failure boolean NOT NULL DEFAULT false,
    pause_ms bigint NOT NULL DEFAULT 0 CHECK (pause_ms >= 0),
    state text NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'finished', 'cancelled')),
    stop_reason text CHECK (stop_reason IN ('repeat', 'duration', 'failure',
                                            'cancelled', 'error')),
    detail text,
    runs_started int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT series_has_an_end
        CHECK (max_runs IS NOT NULL OR duration_ms IS NOT NULL)
);

-- The driver's poll: series still running.
CREATE INDEX series_running ON series (id) WHERE state = 'running';

-- runs.series_id exists since migration 1; now it points somewhere.
ALTER TABLE runs ADD CONSTRAINT runs_series_fk FOREIGN KEY (series_id)
    REFERENCES series ON DELETE SET NULL;
CREATE INDEX runs_series ON runs (series_id, id DESC)
    WHERE series_id IS NOT NULL;

-- The series object: its fields, a summary of its runs, and the runs.
CREATE OR REPLACE FUNCTION handoff_series_json(s series) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH r AS (SELECT * FROM runs WHERE series_id = s.id)
    SELECT jsonb_build_object(
        'id', s.id, 'suite', s.suite, 'namespace', s.namespace,
        'request', s.request, 'repeat', s.max_runs,
        'duration_ms', s.duration_ms, 'until_failure', s.until_failure,
        'pause_ms', s.pause_ms, 'state', s.state,
        'stop_reason', s.stop_reason, 'detail', s.detail,
        'runs_started', s.runs_started,
        'created_at', handoff_ts(s.created_at),
        'ends_at', handoff_ts(s.created_at +
                              s.duration_ms * interval '1 millisecond'),
        'finished_at', handoff_ts(s.finished_at),
        'summary', (SELECT jsonb_build_object(
            'runs', count(*),
            'active', count(*) FILTER (WHERE state IN ('queued', 'running')),
            'passed', count(*) FILTER (WHERE result = 'passed'),
            'failed', count(*) FILTER (WHERE result = 'failed'),
            'error', count(*) FILTER (WHERE result = 'error'),
            'flaky', count(*) FILTER (WHERE flaky),
            'first_failure', min(id) FILTER (WHERE result IN ('failed',
                                                              'error')),
            'duration_ms', round(extract(epoch FROM
                coalesce(s.finished_at, now()) - s.created_at) * 1000))
            FROM r),
        'runs', coalesce((SELECT jsonb_agg(jsonb_build_object(
            'id', r.id, 'state', r.state, 'result', r.result,
            'flaky', r.flaky, 'created_at', handoff_ts(r.created_at),
            'finished_at', handoff_ts(r.finished_at)) ORDER BY r.id)
            FROM r), '[]'::jsonb))
$$;
