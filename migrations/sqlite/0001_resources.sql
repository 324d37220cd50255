-- Resources of the Assistants API v2 (everything except runs).
-- Every object row carries its project; `seq` is the insertion order that lists and cursors use,
-- `body` holds the object's JSON fields that are never filtered on.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE assistants (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX assistants_project ON assistants(project_id, seq);

CREATE TABLE threads (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);

CREATE TABLE messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    thread_id   TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    run_id      TEXT,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX messages_thread ON messages(thread_id, seq);

CREATE TABLE files (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    purpose     TEXT NOT NULL,
    -- Set when the file was uploaded with expires_after; the janitor deletes it after that.
    expires_at  BIGINT,
    body        TEXT NOT NULL
);
CREATE INDEX files_project ON files(project_id, seq);
CREATE INDEX files_expiry ON files(expires_at);

-- Parsed text of a file, computed once and shared by every vector store that holds the file.
CREATE TABLE file_texts (
    file_id     TEXT PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
    text        TEXT NOT NULL
);

CREATE TABLE uploads (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- When a pending upload stops accepting parts; the janitor removes its parts after that.
    expires_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX uploads_expiry ON uploads(expires_at);

CREATE TABLE upload_parts (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    upload_id   TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    bytes       BIGINT NOT NULL
);

CREATE TABLE vector_stores (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    project_id       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_active_at   BIGINT NOT NULL,
    -- Bumped whenever the searchable chunk set changes, so search caches know when to reload.
    index_generation BIGINT NOT NULL DEFAULT 0,
    body             TEXT NOT NULL
);
CREATE INDEX vector_stores_project ON vector_stores(project_id, seq);

-- A file attached to a store. Its wire id is the file id; status counts are derived from here,
-- so a store's and a batch's file_counts are true at every moment.
CREATE TABLE vector_store_files (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    vector_store_id   TEXT NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    id                TEXT NOT NULL,
    project_id        TEXT NOT NULL,
    batch_id          TEXT,
    created_at        BIGINT NOT NULL,
    status            TEXT NOT NULL,
    usage_bytes       BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT,
    chunking_strategy TEXT NOT NULL,
    attributes        TEXT,
    -- Ingestion lease: a node that claims the file sets this; an expired lease is reclaimable,
    -- so a node that dies mid-ingestion does not strand the file in_progress.
    lease_until       BIGINT,
    -- Random per claim and cleared by every re-attach or cancel: only the holder of the
    -- current claim may write the result. `attempts` counts claims since the last attach.
    lease_token       BIGINT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    UNIQUE (vector_store_id, id)
);
CREATE INDEX vector_store_files_store ON vector_store_files(vector_store_id, seq);
CREATE INDEX vector_store_files_file ON vector_store_files(id);
CREATE INDEX vector_store_files_status ON vector_store_files(status, lease_until);
CREATE INDEX vector_store_files_batch ON vector_store_files(batch_id);

CREATE TABLE file_batches (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    vector_store_id  TEXT NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    project_id       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    cancelled_at     BIGINT
);

CREATE TABLE chunks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    vector_store_id  TEXT NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    file_id          TEXT NOT NULL,
    chunk_index      BIGINT NOT NULL,
    tokens           BIGINT NOT NULL,
    text             TEXT NOT NULL
);
CREATE INDEX chunks_store_file ON chunks(vector_store_id, file_id);

-- Where deleted objects stood in their lists, so a cursor naming one still pages correctly
-- (SDK loops that delete as they iterate ask for the page after a deleted id).
CREATE TABLE tombstones (
    tbl         TEXT NOT NULL,
    parent      TEXT NOT NULL,
    id          TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    deleted_at  BIGINT NOT NULL,
    PRIMARY KEY (tbl, parent, id)
);
CREATE INDEX tombstones_age ON tombstones(deleted_at);
