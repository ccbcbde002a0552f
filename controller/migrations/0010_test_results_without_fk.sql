-- test_results without its foreign key to runs.
--
-- The key cost a lookup in runs (SELECT ... FOR KEY SHARE) for every test
-- row the ingester COPYs: 72,000 per throughput benchmark, a fifth of
-- PostgreSQL's CPU per run once the rest of ingestion was set-based. The
-- rows are only written by the ingester, in the transaction that checks
-- their job (and so their run) exists, so the key guarded nothing it does
-- not. What it gave besides, ON DELETE CASCADE, a statement trigger keeps:
-- one DELETE of runs still takes their test rows (retention relies on it),
-- at a cost paid on deletes only.

ALTER TABLE test_results DROP CONSTRAINT IF EXISTS test_results_run_id_fkey;

CREATE OR REPLACE FUNCTION handoff_runs_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM test_results t USING gone g WHERE t.run_id = g.id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS runs_deleted_test_results ON runs;
CREATE TRIGGER runs_deleted_test_results
    AFTER DELETE ON runs REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION handoff_runs_deleted();
