-- Fewer index entries per run.
--
-- A run's row is inserted once and updated once or twice (state changes
-- are never HOT: state is in partial indexes' predicates), and each such
-- write adds an entry to every index whose predicate holds. Three of them
-- served no reader:
--   - runs_queued_created and runs_running_deadline: the sweeper's
--     conditions (created_at + queue_timeout_ms, last_started_at +
--     timeout_ms) differ per row, so no index on the column can bound
--     them; runs_active (state) finds the same working set.
--   - the unique constraint on idempotency_key indexed every run, though
--     most have no key: a partial unique index keeps the promise (a second
--     run with a key is refused, 23505 as before) for the runs that have
--     one.
-- Creating the index locks runs against writes while it is built (one
-- scan; seconds on millions of runs).

DROP INDEX IF EXISTS runs_queued_created;
DROP INDEX IF EXISTS runs_running_deadline;
ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_idempotency_key_key;
CREATE UNIQUE INDEX IF NOT EXISTS runs_idempotency_key ON runs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
