-- What the janitor needs to clean up after responses without reading their bodies:
-- `stored` (written from the body on every write of the row, `Doc::columns`) is 0 for a
-- response created with `store: false` (and a compaction's): it is deleted, with its run, a
-- while after `ended_at`, when its run ended (null while it runs); `events_until` is when a
-- finished background response's recorded events are pruned (set back to null once they
-- are), so both indexes hold only what is still to clean up. The two times are written in
-- the transaction that ends the run (`Store::response_ended_in`); rows that ended before
-- this migration get their `completed_at`, or their creation time.
ALTER TABLE responses ADD COLUMN stored BIGINT NOT NULL DEFAULT 1;
ALTER TABLE responses ADD COLUMN ended_at BIGINT;
ALTER TABLE responses ADD COLUMN events_until BIGINT;
UPDATE responses SET stored = 0 WHERE body::json ->> 'store' = 'false';
UPDATE responses SET ended_at = COALESCE((body::json ->> 'completed_at')::bigint, created_at)
    WHERE body::json ->> 'status' IN ('completed', 'incomplete', 'failed', 'cancelled');
CREATE INDEX responses_unstored ON responses(ended_at) WHERE stored = 0;
UPDATE responses SET events_until = ended_at + 86400
    WHERE ended_at IS NOT NULL AND body::json ->> 'background' = 'true';
CREATE INDEX responses_events ON responses(events_until) WHERE events_until IS NOT NULL;
