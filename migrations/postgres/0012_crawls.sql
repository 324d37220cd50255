-- Crawls of web sites into vector stores (an extension of the API: /vector_stores/{id}/crawls).
-- A crawl is driven by one node at a time under a lease with a fencing token, like ingestion:
-- a node that dies mid-crawl loses its lease and another node resumes from the pages below.
CREATE TABLE crawls (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    vector_store_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- in_progress (a pass is under way) | completed | failed | cancelled
    status          TEXT NOT NULL,
    -- The validated request (root URLs, depth, limits, patterns, re-crawl interval), JSON.
    spec            TEXT NOT NULL,
    -- The current (or last) pass over the site, from 1; a re-crawl is another pass.
    pass            BIGINT NOT NULL DEFAULT 1,
    pass_started_at BIGINT NOT NULL,
    pass_ended_at   BIGINT,
    -- What this pass has fetched so far (pages and body bytes), for its bounds.
    pages_fetched   BIGINT NOT NULL DEFAULT 0,
    bytes_fetched   BIGINT NOT NULL DEFAULT 0,
    -- 1 once this pass cannot reach everything (a page kept for a passing failure, a link
    -- left out for a full queue): pages it missed are then not taken for gone.
    truncated       BIGINT NOT NULL DEFAULT 0,
    -- When the next pass is due (a re-crawl interval was given and the crawl is not cancelled).
    next_pass_at    BIGINT,
    last_error      TEXT,
    lease_until     BIGINT,
    lease_token     BIGINT,
    -- Claims since the pass started: a pass interrupted too often fails.
    attempts        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX crawls_store ON crawls(vector_store_id, seq);
CREATE INDEX crawls_work ON crawls(status, lease_until);
CREATE INDEX crawls_due ON crawls(next_pass_at);

-- Every URL a crawl reached: the frontier of the current pass (status queued), what became of
-- each page, and the vector-store file that holds it. A page's file is replaced when its
-- content changes and removed when it disappears.
CREATE TABLE crawl_pages (
    seq          BIGSERIAL PRIMARY KEY,
    crawl_id     TEXT NOT NULL,
    url          TEXT NOT NULL,
    depth        BIGINT NOT NULL,
    -- The last pass that reached it.
    pass         BIGINT NOT NULL,
    -- queued | stored | unchanged | redirected | skipped | failed | removed | cancelled
    status       TEXT NOT NULL,
    reason       TEXT,
    file_id      TEXT,
    content_hash TEXT,
    title        TEXT,
    crawled_at   BIGINT,
    UNIQUE (crawl_id, url)
);
CREATE INDEX crawl_pages_frontier ON crawl_pages(crawl_id, status, depth, seq);
CREATE INDEX crawl_pages_file ON crawl_pages(file_id);
