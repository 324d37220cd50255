-- Runs and run steps. The wire object is `body`; the columns are what queries filter on and what
-- the run engine needs to claim, fence and resume a run.

CREATE TABLE runs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    project_id   TEXT NOT NULL,
    thread_id    TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    -- Mirrors body.status; the partial unique index below is the thread lock.
    status       TEXT NOT NULL,
    -- When an active run expires (body.expires_at), null once terminal.
    expires_at   BIGINT,
    -- Worker lease: the holder of lease_token drives the run until lease_until. Every engine
    -- write is fenced on the token, so a worker that lost its lease cannot write.
    lease_until  BIGINT,
    lease_token  BIGINT,
    -- When the run was last put on the queue, so the sweeper re-queues only runs nobody took.
    nudged_at    BIGINT NOT NULL,
    -- The engine's persisted progress (strategy, pinned digest, state, next action), JSON.
    engine       TEXT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX runs_thread ON runs(thread_id, seq);
CREATE INDEX runs_due ON runs(status, lease_until);
-- At most one active run per thread: adding messages or runs to a thread with one is refused.
CREATE UNIQUE INDEX runs_thread_lock ON runs(thread_id)
    WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');

CREATE TABLE run_steps (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    project_id   TEXT NOT NULL,
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX run_steps_run ON run_steps(run_id, seq);
