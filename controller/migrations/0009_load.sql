-- Migration 9: distributed load runs (docs/load.md).
--
-- A load run is a setup job (shard 0 of jobs), K shard jobs (shards 1..K)
-- that the ingester creates once setup has reported, and a teardown job
-- (shard K+1) once every shard has ended. Shards send one snapshot a
-- second; the ingester stores each once per (run, shard, second), merges
-- the seconds every shard has delivered (or that no running shard can
-- deliver any more) into load_points, keeps the merged total, and builds
-- the report when every shard has ended. Everything goes with its run.

CREATE TABLE load_runs (
    run_id bigint PRIMARY KEY REFERENCES runs ON DELETE CASCADE,
    workflow text NOT NULL,
    shards_requested int NOT NULL DEFAULT 0
        CHECK (shards_requested >= 0),  -- 0: one per worker of the pool
    shards int CHECK (shards >= 1),     -- K, once the shard jobs exist
    thresholds jsonb NOT NULL DEFAULT '[]', -- the request's, then the
                                        -- workflow's own added by setup
    executor jsonb,                     -- the resolved executor (report)
    setup_data bytea,
    start_at_ns bigint,                 -- the shards' common start, Unix ns
    phase text NOT NULL DEFAULT 'setup'
        CHECK (phase IN ('setup', 'shards', 'teardown', 'done')),
    merged_through int NOT NULL DEFAULT 0, -- seconds merged into total
    total bytea,                        -- snap_encode of those seconds
    vus_max int NOT NULL DEFAULT 0,
    abort_reason text,                  -- a threshold with abort_on_fail
    report jsonb,                       -- handoff.load.report/1, at the end
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One second of one shard, as the shard sent it (snap_encode's form).
CREATE TABLE load_snapshots (
    run_id bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
    shard int NOT NULL CHECK (shard >= 0),
    second int NOT NULL CHECK (second >= 1),
    t_ns bigint NOT NULL,
    job_attempt int NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (run_id, shard, second)
);

-- The merged figures of one second (a POINT of the report's series).
CREATE TABLE load_points (
    run_id bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
    second int NOT NULL CHECK (second >= 1),
    point jsonb NOT NULL,
    PRIMARY KEY (run_id, second)
);

-- How each shard ended: done, aborted (cancel, threshold) or lost (its
-- worker died or its process crashed), with what it reported of itself.
CREATE TABLE load_shards (
    run_id bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
    shard int NOT NULL CHECK (shard >= 0),
    job_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('done', 'aborted', 'lost')),
    reason text,
    seconds bigint NOT NULL DEFAULT 0,
    total bytea,
    worker_id text,
    PRIMARY KEY (run_id, shard)
);

-- The workflows each suite of the catalog has, as workers announce them:
-- a load run's workflow is checked against them.
ALTER TABLE suites ADD COLUMN workflows jsonb NOT NULL DEFAULT '[]';
