//! Crawls of web sites into vector stores: the crawl rows (options, pass, lease), their pages
//! (the frontier and what became of every URL), and the page results written with the files
//! they make, in transactions fenced by the crawl's lease token.
//!
//! One node drives a crawl at a time: it claims the crawl with a lease and a random token, and
//! every write of a result first updates the crawl row where the token still matches and the
//! crawl is still in progress. A node that lost its lease, or a crawl cancelled meanwhile,
//! writes nothing; a node that died leaves its lease to lapse and another node resumes from
//! the queued pages.

use sqlx::any::AnyRow;
use sqlx::Row;

mod work;

use super::error::{StoreError, StoreResult};
use super::vector_stores::FileCounts;
use super::{ListParams, Page, Store, Tx, Val};
use crate::crawl::spec::CrawlSpec;
use crate::model::ids::now;
use crate::model::{CrawlStatus, FileObject, PageStatus};

/// A crawl as stored.
#[derive(Debug, Clone)]
pub struct CrawlRow {
    pub id: String,
    pub vector_store_id: String,
    pub project_id: String,
    pub created_at: i64,
    pub status: CrawlStatus,
    pub spec: CrawlSpec,
    pub pass: i64,
    pub pass_started_at: i64,
    pub pass_ended_at: Option<i64>,
    pub pages_fetched: i64,
    pub bytes_fetched: i64,
    pub next_pass_at: Option<i64>,
    pub last_error: Option<serde_json::Value>,
}

const CRAWL_COLS: &str = "id, vector_store_id, project_id, created_at, status, spec, pass, \
                          pass_started_at, pass_ended_at, pages_fetched, bytes_fetched, \
                          next_pass_at, last_error";

fn crawl_row(r: &AnyRow) -> StoreResult<CrawlRow> {
    let status: String = r.try_get(4)?;
    let error: Option<String> = r.try_get(12)?;
    Ok(CrawlRow {
        id: r.try_get(0)?,
        vector_store_id: r.try_get(1)?,
        project_id: r.try_get(2)?,
        created_at: r.try_get(3)?,
        status: status
            .parse()
            .map_err(|e| StoreError::internal("reading a crawl's status", e))?,
        spec: serde_json::from_str(&r.try_get::<String, _>(5)?)?,
        pass: r.try_get(6)?,
        pass_started_at: r.try_get(7)?,
        pass_ended_at: r.try_get(8)?,
        pages_fetched: r.try_get(9)?,
        bytes_fetched: r.try_get(10)?,
        next_pass_at: r.try_get(11)?,
        last_error: error.map(|e| serde_json::from_str(&e)).transpose()?,
    })
}

/// A crawl claimed by this node; `token` fences every write of its results.
#[derive(Debug, Clone)]
pub struct CrawlJob {
    pub crawl: CrawlRow,
    pub token: i64,
    /// Claims since the pass started (this one included).
    pub attempts: i64,
}

/// One URL of a crawl, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRow {
    pub url: String,
    pub depth: i64,
    pub pass: i64,
    pub status: PageStatus,
    pub reason: Option<String>,
    pub file_id: Option<String>,
    pub content_hash: Option<String>,
    pub title: Option<String>,
    pub crawled_at: Option<i64>,
    /// Whether `file_id` is still in the crawl's vector store (a client may have removed it).
    pub file_attached: bool,
}

fn page_row(r: &AnyRow) -> StoreResult<PageRow> {
    let status: String = r.try_get(3)?;
    Ok(PageRow {
        url: r.try_get(0)?,
        depth: r.try_get(1)?,
        pass: r.try_get(2)?,
        status: status
            .parse()
            .map_err(|e| StoreError::internal("reading a crawl page's status", e))?,
        reason: r.try_get(4)?,
        file_id: r.try_get(5)?,
        content_hash: r.try_get(6)?,
        title: r.try_get(7)?,
        crawled_at: r.try_get(8)?,
        file_attached: r.try_get::<i64, _>(9)? > 0,
    })
}

/// The page columns, and whether the page's file is attached to the store (`$vs`).
fn page_cols(vs: &str) -> String {
    format!(
        "p.url, p.depth, p.pass, p.status, p.reason, p.file_id, p.content_hash, p.title, \
         p.crawled_at, (SELECT COUNT(*) FROM vector_store_files f \
         WHERE f.vector_store_id = {vs} AND f.id = p.file_id)"
    )
}

/// A page's new file: its row and bytes are written by the caller's pass, the row here.
#[derive(Debug, Clone)]
pub struct NewPageFile {
    pub file: FileObject,
    pub attributes: serde_json::Value,
}

/// What happens to the file a page had.
#[derive(Debug, Clone)]
pub enum FileChange {
    Keep,
    /// Its file is deleted (the page is gone, or no longer stored).
    Remove,
    /// A new file holds the page (its bytes already stored); the old one is deleted.
    Replace(NewPageFile),
}

/// One page's result.
#[derive(Debug, Clone)]
pub struct PageWrite {
    pub url: String,
    pub depth: i64,
    pub status: PageStatus,
    pub reason: Option<String>,
    /// Set when the page was fetched and stored or found unchanged.
    pub content_hash: Option<String>,
    pub title: Option<String>,
    pub crawled_at: Option<i64>,
    pub file: FileChange,
}

/// What one fetch produced: counted against the pass's bounds, with the rows it decides
/// (the page, and where a redirect led) and the links it found.
#[derive(Debug, Clone, Default)]
pub struct CrawlWrite {
    pub pages_fetched: i64,
    pub bytes_fetched: i64,
    pub pages: Vec<PageWrite>,
    /// Links to queue for this pass, at this depth.
    pub links: Vec<String>,
    pub link_depth: i64,
}

/// Counts of a pass's pages by status.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, PartialEq, Eq)]
pub struct PageCounts {
    pub queued: i64,
    pub stored: i64,
    pub unchanged: i64,
    pub redirected: i64,
    pub skipped: i64,
    pub failed: i64,
    pub removed: i64,
    pub cancelled: i64,
    pub total: i64,
}

/// A pass's queue holds at most this many pages beyond what it may still fetch: links past
/// that are not followed (the pass could not reach them anyway).
fn queue_cap(max_pages: u32) -> i64 {
    (2 * i64::from(max_pages)).max(100)
}

impl Store {
    /// Records a new crawl, its first pass queued at its root URLs.
    pub async fn create_crawl(
        &self,
        project: &str,
        vs_id: &str,
        id: &str,
        spec: &CrawlSpec,
    ) -> StoreResult<()> {
        let t = now();
        let mut tx = self.begin().await?;
        // Only into a store that still exists (it may be deleted after the caller looked).
        let made = sqlx::query(
            "INSERT INTO crawls (id, vector_store_id, project_id, created_at, status, spec, pass, \
             pass_started_at) SELECT $1, $2, $3, $4, 'in_progress', $5, 1, $4 \
             WHERE EXISTS (SELECT 1 FROM vector_stores WHERE id = $2 AND project_id = $3)",
        )
        .bind(id.to_string())
        .bind(vs_id.to_string())
        .bind(project.to_string())
        .bind(t)
        .bind(serde_json::to_string(spec)?)
        .execute(&mut *tx)
        .await?;
        if made.rows_affected() == 0 {
            return Err(StoreError::not_found("vector store", vs_id));
        }
        self.queue_roots_in(&mut tx, id, spec, 1).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn queue_roots_in(
        &self,
        tx: &mut Tx,
        crawl_id: &str,
        spec: &CrawlSpec,
        pass: i64,
    ) -> StoreResult<()> {
        for url in &spec.root_urls {
            sqlx::query(
                "INSERT INTO crawl_pages (crawl_id, url, depth, pass, status) \
                 VALUES ($1, $2, 0, $3, 'queued') \
                 ON CONFLICT (crawl_id, url) DO UPDATE SET depth = 0, pass = excluded.pass, \
                 status = 'queued', reason = NULL",
            )
            .bind(crawl_id.to_string())
            .bind(url.clone())
            .bind(pass)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// A crawl of the store in the project.
    pub async fn crawl(
        &self,
        project: &str,
        vs_id: &str,
        id: &str,
    ) -> StoreResult<Option<CrawlRow>> {
        let sql = format!(
            "SELECT {CRAWL_COLS} FROM crawls WHERE id = $1 AND vector_store_id = $2 AND project_id = $3"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(vs_id.to_string())
            .bind(project.to_string())
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(crawl_row).transpose()
    }

    /// The store's crawls, a page at a time.
    pub async fn list_crawls(
        &self,
        project: &str,
        vs_id: &str,
        params: &ListParams,
    ) -> StoreResult<Page<CrawlRow>> {
        let scope = super::list::ListScope {
            table: "crawls",
            project,
            parent: Some(("vector_store_id", vs_id)),
            filters: Vec::new(),
            tombstone_parent: vs_id,
        };
        self.list_rows(&scope, CRAWL_COLS, params, crawl_row).await
    }

    /// The project of the vector store, if it exists (the `assistants crawl` command names
    /// only the store).
    pub async fn vector_store_project(&self, vs_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT project_id FROM vector_stores WHERE id = $1")
            .bind(vs_id.to_string())
            .fetch_optional(self.read())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// How many of the current pass's pages are in each status.
    pub async fn page_counts(&self, crawl: &CrawlRow) -> StoreResult<PageCounts> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) FROM crawl_pages WHERE crawl_id = $1 AND pass = $2 GROUP BY status",
        )
        .bind(crawl.id.clone())
        .bind(crawl.pass)
        .fetch_all(self.read())
        .await?;
        let mut c = PageCounts::default();
        for r in rows {
            let status: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            let status: PageStatus = status
                .parse()
                .map_err(|e| StoreError::internal("reading a crawl page's status", e))?;
            c.total += n;
            *match status {
                PageStatus::Queued => &mut c.queued,
                PageStatus::Stored => &mut c.stored,
                PageStatus::Unchanged => &mut c.unchanged,
                PageStatus::Redirected => &mut c.redirected,
                PageStatus::Skipped => &mut c.skipped,
                PageStatus::Failed => &mut c.failed,
                PageStatus::Removed => &mut c.removed,
                PageStatus::Cancelled => &mut c.cancelled,
            } += n;
        }
        Ok(c)
    }

    /// Ingestion counts of the files the crawl holds in its store.
    pub async fn crawl_file_counts(&self, crawl: &CrawlRow) -> StoreResult<FileCounts> {
        let rows = sqlx::query(
            "SELECT f.status, COUNT(*) FROM vector_store_files f \
             JOIN crawl_pages p ON p.file_id = f.id \
             WHERE p.crawl_id = $1 AND f.vector_store_id = $2 GROUP BY f.status",
        )
        .bind(crawl.id.clone())
        .bind(crawl.vector_store_id.clone())
        .fetch_all(self.read())
        .await?;
        let mut c = FileCounts::default();
        for r in rows {
            c.add(r.try_get(0)?, r.try_get(1)?)?;
        }
        Ok(c)
    }

    /// The crawl's pages in the order they were found, `limit` after the page with URL
    /// `after` (if given), and whether more follow.
    pub async fn crawl_pages(
        &self,
        crawl: &CrawlRow,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Option<Page<PageRow>>> {
        let start = match after {
            None => 0,
            Some(url) => {
                let row =
                    sqlx::query("SELECT seq FROM crawl_pages WHERE crawl_id = $1 AND url = $2")
                        .bind(crawl.id.clone())
                        .bind(url.to_string())
                        .fetch_optional(self.read())
                        .await?;
                match row {
                    Some(r) => r.try_get(0)?,
                    None => return Ok(None),
                }
            }
        };
        let sql = format!(
            "SELECT {} FROM crawl_pages p WHERE p.crawl_id = $2 AND p.seq > $3 ORDER BY p.seq LIMIT $4",
            page_cols("$1")
        );
        let rows = sqlx::query(&sql)
            .bind(crawl.vector_store_id.clone())
            .bind(crawl.id.clone())
            .bind(start)
            .bind(limit + 1)
            .fetch_all(self.read())
            .await?;
        let mut items = rows.iter().map(page_row).collect::<StoreResult<Vec<_>>>()?;
        let has_more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        Ok(Some(Page { items, has_more }))
    }

    /// Cancels a crawl: its pass stops (queued pages become `cancelled`) and no other pass
    /// follows. Pages already stored stay. False if there is nothing to stop (already
    /// cancelled, or finished with no re-crawl due).
    pub async fn cancel_crawl(&self, project: &str, vs_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE crawls SET status = 'cancelled', next_pass_at = NULL, lease_until = NULL, \
             lease_token = NULL, pass_ended_at = COALESCE(pass_ended_at, $1) \
             WHERE id = $2 AND vector_store_id = $3 AND project_id = $4 \
             AND (status = 'in_progress' OR next_pass_at IS NOT NULL)",
        )
        .bind(now())
        .bind(id.to_string())
        .bind(vs_id.to_string())
        .bind(project.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE crawl_pages SET status = 'cancelled' WHERE crawl_id = $1 AND status = 'queued'",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Starts the crawl's next pass now (a re-crawl) if it is between passes; false if a pass
    /// is running or the crawl was cancelled.
    pub async fn start_pass(&self, project: &str, vs_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let started = self
            .start_pass_in(&mut tx, id, Some((project, vs_id)), None)
            .await?;
        tx.commit().await?;
        Ok(started)
    }

    /// Starts the next pass of the crawl `id` if it is between passes (and, with `due`, only
    /// if its re-crawl is due by then): its roots queued again; the pages of earlier passes
    /// keep their files until this pass decides about them.
    async fn start_pass_in(
        &self,
        tx: &mut Tx,
        id: &str,
        owner: Option<(&str, &str)>,
        due: Option<i64>,
    ) -> StoreResult<bool> {
        let (project, vs) = owner.unwrap_or(("", ""));
        let row = sqlx::query(
            "UPDATE crawls SET status = 'in_progress', pass = pass + 1, pass_started_at = $1, \
             pass_ended_at = NULL, pages_fetched = 0, bytes_fetched = 0, truncated = 0, \
             next_pass_at = NULL, \
             last_error = NULL, lease_until = NULL, lease_token = NULL, attempts = 0 \
             WHERE id = $2 AND status IN ('completed', 'failed') \
             AND ($3 = '' OR (project_id = $3 AND vector_store_id = $4)) \
             AND ($5 < 0 OR (next_pass_at IS NOT NULL AND next_pass_at <= $5)) \
             RETURNING pass, spec",
        )
        .bind(now())
        .bind(id.to_string())
        .bind(project.to_string())
        .bind(vs.to_string())
        .bind(due.unwrap_or(-1))
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let pass: i64 = row.try_get(0)?;
        let spec: CrawlSpec = serde_json::from_str(&row.try_get::<String, _>(1)?)?;
        self.queue_roots_in(tx, id, &spec, pass).await?;
        Ok(true)
    }

    /// Starts the passes of crawls whose re-crawl is due; how many started.
    pub async fn start_due_passes(&self) -> StoreResult<usize> {
        let t = now();
        let due = sqlx::query(
            "SELECT id FROM crawls WHERE next_pass_at IS NOT NULL AND next_pass_at <= $1 LIMIT 32",
        )
        .bind(t)
        .fetch_all(self.read())
        .await?;
        let mut started = 0;
        for r in due {
            let id: String = r.try_get(0)?;
            let mut tx = self.begin_background().await?;
            if self.start_pass_in(&mut tx, &id, None, Some(t)).await? {
                started += 1;
            }
            tx.commit().await?;
        }
        Ok(started)
    }

    /// The files a store's crawls hold (deleted with the store).
    pub(crate) async fn crawl_files_of_store_in(
        &self,
        tx: &mut Tx,
        vs_id: &str,
    ) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT p.file_id FROM crawl_pages p JOIN crawls c ON c.id = p.crawl_id \
             WHERE c.vector_store_id = $1 AND p.file_id IS NOT NULL",
        )
        .bind(vs_id.to_string())
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

#[cfg(test)]
mod tests;
