-- Migration 8: the scheduler claims due schedules in batches, in the order
-- (next_fire_at, id), each claim going on from the last row it took
-- (docs/scheduling.md). With id in the index a claim starts where the
-- previous one stopped instead of walking again past the rows it or other
-- replicas already hold: thousands of schedules due at the same second
-- cost one pass over them.

DROP INDEX IF EXISTS schedules_due;
CREATE INDEX schedules_due ON schedules (next_fire_at, id)
    WHERE enabled AND next_fire_at IS NOT NULL;
