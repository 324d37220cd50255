-- Responses (the Responses surface). A response is driven by the run engine as a run (its id
-- is the response's with the `run_` prefix); this row is the response as clients see it:
-- the request's fields from creation, and its status, output and usage once the run ends
-- (written in the run's ending transaction). Its input items are in `items`.

CREATE TABLE responses (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);

-- A run's messages are read when it ends and when a response's output is shown; without
-- this, each of those scanned every message.
CREATE INDEX messages_run ON messages(run_id);
