-- Search indexes are brought up to date per file instead of rebuilt: a completed file's
-- `content_generation` is the store's index generation at which its chunks were written, so
-- a node compares its index's files with the store's list to learn which chunks to drop and
-- which to read (`search::index`). Files completed before this migration read as 0, which is
-- as good: a node starting on this release has no index yet.
ALTER TABLE vector_store_files ADD COLUMN content_generation BIGINT NOT NULL DEFAULT 0;

-- The newest persisted index of a large store (`search::snapshots`): the object it is in and
-- the generation it was taken at. A node without the store's index loads it and brings it up
-- to date from the file list (reading only files changed since) instead of reading every chunk.
CREATE TABLE search_snapshots (
    vector_store_id TEXT PRIMARY KEY REFERENCES vector_stores(id) ON DELETE CASCADE,
    generation      BIGINT NOT NULL,
    blob_key        TEXT NOT NULL,
    chunks          BIGINT NOT NULL,
    bytes           BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
