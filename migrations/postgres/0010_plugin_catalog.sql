-- Keys that may manage the server itself (upload and remove plugins) besides their project's
-- objects: 'admin'. Keys created before this migration are project keys.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'project';

-- Components uploaded through the API (`PUT /v1/plugins/{id}`), by content digest, with the
-- manifest they were last uploaded with; the bytes are in the object store at
-- `plugins/{digest}.wasm`. Kept after they are replaced or removed, so a run pinned to one
-- loads it on any node.
CREATE TABLE plugin_components (
    digest      TEXT PRIMARY KEY,
    plugin_id   TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- The uploaded plugins installed now, each with its manifest: every node serves these
-- (`plugins::catalog`).
CREATE TABLE plugin_catalog (
    plugin_id   TEXT PRIMARY KEY,
    digest      TEXT NOT NULL REFERENCES plugin_components(digest),
    manifest    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
