-- Migration 1: the first schema (docs/database.md).
--
-- Runs, their jobs (with the publish outbox), job attempts, test results,
-- the workers seen and the suite catalog they announce. Everything below a
-- run goes with it (ON DELETE CASCADE): a retention janitor deletes runs
-- and nothing else. Each foreign key has an index that starts with its
-- column, so those cascades never scan a table.
--
-- Runs in one transaction (migrate.c): no BEGIN/COMMIT here, and nothing
-- that refuses a transaction (CREATE INDEX CONCURRENTLY).

-- One execution of one suite (or load scenario). state and result are
-- apart: result is set once the run has ended.
CREATE TABLE runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    suite text NOT NULL,
    namespace text NOT NULL,
    pool text NOT NULL DEFAULT 'default',
    state text NOT NULL
        CHECK (state IN ('queued', 'running', 'finished', 'cancelled',
                         'timed_out')),
    result text CHECK (result IN ('passed', 'failed', 'error')),
    reason text,                        -- why it errored, was cancelled...
    trigger text NOT NULL CHECK (trigger IN ('api', 'cli', 'ui', 'schedule')),
    initiated_by text NOT NULL DEFAULT '',
    reference text NOT NULL DEFAULT '', -- commit, deploy id
    environment text NOT NULL DEFAULT '',
    params jsonb NOT NULL DEFAULT '{}',
    run_filter text,                    -- POSIX ERE, or NULL: all tests
    skip_filter text,
    count int NOT NULL DEFAULT 1 CHECK (count >= 1),
    max_attempts int CHECK (max_attempts >= 1), -- NULL: the suite's
    timeout_ms bigint NOT NULL CHECK (timeout_ms >= 0),
    test_timeout_ms bigint CHECK (test_timeout_ms >= 0),
    queue_timeout_ms bigint NOT NULL CHECK (queue_timeout_ms >= 0),
    idempotency_key text UNIQUE,        -- the Idempotency-Key header
    config jsonb NOT NULL,              -- the request as received, defaults in
    flaky boolean NOT NULL DEFAULT false,
    tests_total int NOT NULL DEFAULT 0,
    tests_passed int NOT NULL DEFAULT 0,
    tests_failed int NOT NULL DEFAULT 0,
    tests_skipped int NOT NULL DEFAULT 0,
    tests_error int NOT NULL DEFAULT 0,
    soft_failures int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    cancel_requested_at timestamptz,
    cancel_reason text,
    schedule_id bigint,                 -- the schedule that fired it (later)
    series_id bigint,                   -- its load series (later)
    -- The API's promise: result is null until the run has ended.
    CONSTRAINT runs_result_once_ended
        CHECK (result IS NULL OR state NOT IN ('queued', 'running'))
);

-- GET /api/v1/runs pages by id, newest first; the primary key serves the
-- unfiltered list, these the filtered ones, since/until and retention.
CREATE INDEX runs_suite_namespace_id ON runs (suite, namespace, id DESC);
CREATE INDEX runs_created_at ON runs (created_at);
-- Runs not ended yet: the sweeper's and the scheduler's working set.
CREATE INDEX runs_active ON runs (state)
    WHERE state IN ('queued', 'running');

-- The unit of work on the queue: one per functional run, K shards of a
-- load run. payload is the encoded job, so it can be published again; a
-- NULL published_at means it is still in the outbox.
CREATE TABLE jobs (
    id text PRIMARY KEY,                -- "<run>.<shard>"
    run_id bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
    shard int NOT NULL CHECK (shard >= 0),
    subject text NOT NULL,              -- handoff.jobs.<pool>.<ns>.<suite>
    payload bytea NOT NULL,
    published_at timestamptz,
    stream_seq bigint,                  -- JetStream sequence once published
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done')),
    attempts int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker_id text,
    result text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    -- Also the index behind run_id's cascade and "the jobs of a run".
    CONSTRAINT jobs_run_shard UNIQUE (run_id, shard)
);

-- The outbox scan: jobs stored but not yet published, oldest first.
CREATE INDEX jobs_outbox ON jobs (created_at) WHERE published_at IS NULL;

-- One delivery of a job to a worker (the JetStream delivery count). A lost
-- attempt is one whose worker stopped answering.
CREATE TABLE job_attempts (
    job_id text NOT NULL REFERENCES jobs ON DELETE CASCADE,
    job_attempt int NOT NULL CHECK (job_attempt >= 1),
    run_id bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
    worker_id text,
    state text NOT NULL CHECK (state IN ('running', 'done', 'lost')),
    result text,
    reason text,
    cancelled boolean NOT NULL DEFAULT false,
    timed_out boolean NOT NULL DEFAULT false,
    started_at timestamptz,
    finished_at timestamptz,
    duration_ms double precision,
    setup jsonb,                        -- {ran, result, duration_ms, ...}
    teardown jsonb,
    log text,                           -- the runner's own output
    PRIMARY KEY (job_id, job_attempt)
);

CREATE INDEX job_attempts_run ON job_attempts (run_id);

-- One row per attempt of a test within one job attempt. Written by COPY
-- in the ingester's batches; the key makes a repeated result a conflict.
-- No foreign key to job_attempts: it would cost a lookup per row of the
-- busiest table, and the ingester writes both in one transaction.
CREATE TABLE test_results (
    run_id bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
    job_id text NOT NULL,
    job_attempt int NOT NULL,
    seq int NOT NULL,                   -- the test's place in the suite
    name text NOT NULL,
    attempt int NOT NULL,               -- 1..max_attempts
    result text NOT NULL,               -- passed, failed, skipped, error
    soft_failure boolean NOT NULL DEFAULT false,
    started_at timestamptz,
    duration_ms double precision,
    reason text,
    log text NOT NULL DEFAULT '',
    log_dropped bigint NOT NULL DEFAULT 0, -- bytes cut from log
    "values" jsonb NOT NULL DEFAULT '{}',  -- key/values the test set
    spans jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (job_id, job_attempt, seq, attempt)
);

-- A run's tests by name (the detail endpoints), and run_id's cascade.
CREATE INDEX test_results_run_name ON test_results (run_id, name);

-- Workers as their heartbeats describe them; alive while last_seen is
-- recent.
CREATE TABLE workers (
    id text PRIMARY KEY,
    host text,
    pool text,
    labels jsonb NOT NULL DEFAULT '{}',
    slots int,
    free_slots int,
    draining boolean NOT NULL DEFAULT false,
    version text,
    suites jsonb NOT NULL DEFAULT '[]',       -- ["namespace/name", ...]
    running_runs jsonb NOT NULL DEFAULT '[]', -- [run id, ...]
    started_at timestamptz,
    last_seen timestamptz NOT NULL
);

-- The catalog: suites the workers announce, with their tests.
CREATE TABLE suites (
    namespace text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    max_attempts int,
    test_timeout_ms bigint,
    timeout_ms bigint,
    tests jsonb NOT NULL,               -- [{name, max_attempts, timeout_ms}]
    updated_at timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (namespace, name)
);
