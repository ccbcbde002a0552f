-- The catalog per pool.
--
-- A suite was one row per (namespace, name), written by whichever worker
-- announced it last: two pools running different builds of a suite (a
-- staging pool ahead of production, say) overwrote each other's test
-- list, and a run was checked against whichever build spoke last. Now a
-- pool's workers write the pool's row; a run is checked against the row of
-- its own pool, or, when no worker of that pool has announced the suite,
-- against the most recently seen row of another pool (the run waits in its
-- pool's queue as before).
--
-- Rows from before get the pool of the last worker seen with the suite;
-- those no known worker has keep pool '' until a worker announces them.

ALTER TABLE suites ADD COLUMN pool text NOT NULL DEFAULT '';
UPDATE suites s SET pool = coalesce((
    SELECT w.pool FROM workers w
    WHERE w.pool IS NOT NULL AND w.suites ? (s.namespace || '/' || s.name)
    ORDER BY w.last_seen DESC LIMIT 1), '');
ALTER TABLE suites DROP CONSTRAINT suites_pkey;
ALTER TABLE suites ADD PRIMARY KEY (pool, namespace, name);
CREATE INDEX suites_name ON suites (name, namespace);

-- The flaky gauge counts a suite once, whatever pools announce it.
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
    FROM (SELECT DISTINCT namespace, name FROM suites) s
$$;
