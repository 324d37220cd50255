//! A crawl's work: claims and their lease, the frontier, and the page results written with
//! the files they make or delete, every write fenced by the crawl's lease token.

use super::*;

impl Store {
    /// Claims a crawl in progress that no node holds (never held, handed back, or its holder's
    /// lease lapsed) for `lease_secs`.
    pub async fn claim_crawl(&self, lease_secs: i64) -> StoreResult<Option<CrawlJob>> {
        for _ in 0..8 {
            let t = now();
            let pick = sqlx::query(
                "SELECT id FROM crawls c WHERE status = 'in_progress' \
                 AND (lease_until IS NULL OR lease_until < $1) \
                 AND EXISTS (SELECT 1 FROM vector_stores v WHERE v.id = c.vector_store_id) \
                 ORDER BY seq LIMIT 1",
            )
            .bind(t)
            .fetch_optional(self.read())
            .await?;
            let Some(pick) = pick else { return Ok(None) };
            let id: String = pick.try_get(0)?;
            let token: i64 = rand::random();
            let sql = format!(
                "UPDATE crawls SET lease_until = $1, lease_token = $2, attempts = attempts + 1 \
                 WHERE id = $3 AND status = 'in_progress' AND (lease_until IS NULL OR lease_until < $4) \
                 RETURNING {CRAWL_COLS}, attempts"
            );
            let row = sqlx::query(&sql)
                .bind(t + lease_secs)
                .bind(token)
                .bind(id)
                .bind(t)
                .fetch_optional(self.write())
                .await?;
            // Another node took it first: pick again.
            let Some(r) = row else { continue };
            return Ok(Some(CrawlJob {
                crawl: crawl_row(&r)?,
                token,
                attempts: r.try_get(13)?,
            }));
        }
        Ok(None)
    }

    /// Extends the lease; false if it was lost (taken over, cancelled, or the pass ended).
    pub async fn renew_crawl(&self, job: &CrawlJob, lease_secs: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE crawls SET lease_until = $1 WHERE id = $2 AND lease_token = $3 \
             AND status = 'in_progress'",
        )
        .bind(now() + lease_secs)
        .bind(job.crawl.id.clone())
        .bind(job.token)
        .execute(self.write())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hands the crawl back (this node is stopping): another node may claim it at once.
    pub async fn release_crawl(&self, job: &CrawlJob) -> StoreResult<()> {
        sqlx::query(
            "UPDATE crawls SET lease_until = NULL, lease_token = NULL, attempts = attempts - 1 \
             WHERE id = $1 AND lease_token = $2",
        )
        .bind(job.crawl.id.clone())
        .bind(job.token)
        .execute(self.write())
        .await?;
        Ok(())
    }

    /// The next queued pages of the pass, nearest the roots first.
    pub async fn frontier(&self, job: &CrawlJob, limit: i64) -> StoreResult<Vec<PageRow>> {
        let sql = format!(
            "SELECT {} FROM crawl_pages p WHERE p.crawl_id = $2 AND p.status = 'queued' \
             AND p.pass = $3 ORDER BY p.depth, p.seq LIMIT $4",
            page_cols("$1")
        );
        let rows = sqlx::query(&sql)
            .bind(job.crawl.vector_store_id.clone())
            .bind(job.crawl.id.clone())
            .bind(job.crawl.pass)
            .bind(limit)
            .fetch_all(self.read())
            .await?;
        rows.iter().map(page_row).collect()
    }

    /// One page of the crawl, if it has reached that URL.
    pub async fn crawl_page(&self, job: &CrawlJob, url: &str) -> StoreResult<Option<PageRow>> {
        let sql = format!(
            "SELECT {} FROM crawl_pages p WHERE p.crawl_id = $2 AND p.url = $3",
            page_cols("$1")
        );
        let row = sqlx::query(&sql)
            .bind(job.crawl.vector_store_id.clone())
            .bind(job.crawl.id.clone())
            .bind(url.to_string())
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(page_row).transpose()
    }

    /// Takes the write lock on the crawl row if this node still holds the crawl, counting
    /// what a fetch took from the pass's bounds; false if the crawl was taken over, cancelled
    /// or its pass ended.
    async fn fence_in(
        &self,
        tx: &mut Tx,
        job: &CrawlJob,
        pages: i64,
        bytes: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE crawls SET pages_fetched = pages_fetched + $1, bytes_fetched = bytes_fetched + $2 \
             WHERE id = $3 AND lease_token = $4 AND status = 'in_progress' \
             AND EXISTS (SELECT 1 FROM vector_stores v WHERE v.id = crawls.vector_store_id)",
        )
        .bind(pages)
        .bind(bytes)
        .bind(job.crawl.id.clone())
        .bind(job.token)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes one fetch's results: each page's row and file (attached to the store for
    /// ingestion, the file it replaces deleted) and the links it queues, in one transaction
    /// fenced by the lease. `None` if this node no longer holds the crawl (nothing written);
    /// otherwise the ids of the files deleted, whose bytes the caller removes.
    pub async fn record_pages(
        &self,
        job: &CrawlJob,
        write: &CrawlWrite,
    ) -> StoreResult<Option<Vec<String>>> {
        let crawl = &job.crawl;
        let mut tx = self.begin_background().await?;
        if !self
            .fence_in(&mut tx, job, write.pages_fetched, write.bytes_fetched)
            .await?
        {
            return Ok(None);
        }
        // A page kept because its outcome may be passing (a fetch error, a 5xx, robots.txt
        // unreadable) may link to pages this pass then does not reach: those are not gone.
        let passing = write.pages.iter().any(|p| {
            matches!(p.file, FileChange::Keep)
                && matches!(p.status, PageStatus::Failed | PageStatus::Skipped)
        });
        if passing {
            self.mark_incomplete_in(&mut tx, job).await?;
        }
        let mut deleted = Vec::new();
        for page in &write.pages {
            let old: Option<String> =
                sqlx::query("SELECT file_id FROM crawl_pages WHERE crawl_id = $1 AND url = $2")
                    .bind(crawl.id.clone())
                    .bind(page.url.clone())
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?
                    .flatten();
            let file_id = match &page.file {
                FileChange::Keep => old.clone(),
                FileChange::Remove => None,
                FileChange::Replace(new) => {
                    self.insert_in(
                        &mut tx,
                        &crawl.project_id,
                        &new.file,
                        &[
                            ("purpose", Val::Text(new.file.purpose.clone())),
                            ("expires_at", Val::OptInt(None)),
                        ],
                    )
                    .await?;
                    self.attach_file_in(
                        &mut tx,
                        &crawl.project_id,
                        &crawl.vector_store_id,
                        &new.file.id,
                        None,
                        &crawl.spec.chunking_strategy,
                        Some(&new.attributes),
                    )
                    .await?;
                    Some(new.file.id.to_string())
                }
            };
            if let Some(old) = old.filter(|o| Some(o) != file_id.as_ref()) {
                if self
                    .delete_file_everywhere_in(&mut tx, &crawl.project_id, &old)
                    .await?
                {
                    deleted.push(old);
                }
            }
            sqlx::query(
                "INSERT INTO crawl_pages (crawl_id, url, depth, pass, status, reason, file_id, \
                 content_hash, title, crawled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (crawl_id, url) DO UPDATE SET depth = excluded.depth, \
                 pass = excluded.pass, status = excluded.status, reason = excluded.reason, \
                 file_id = excluded.file_id, \
                 content_hash = CASE WHEN excluded.file_id IS NULL THEN NULL \
                 ELSE COALESCE(excluded.content_hash, crawl_pages.content_hash) END, \
                 title = COALESCE(excluded.title, crawl_pages.title), \
                 crawled_at = COALESCE(excluded.crawled_at, crawl_pages.crawled_at)",
            )
            .bind(crawl.id.clone())
            .bind(page.url.clone())
            .bind(page.depth)
            .bind(crawl.pass)
            .bind(page.status.as_str())
            .bind(page.reason.clone())
            .bind(file_id.clone())
            // A page without a file has no stored copy to compare the next pass against.
            .bind(file_id.as_ref().and(page.content_hash.clone()))
            .bind(page.title.clone())
            .bind(page.crawled_at)
            .execute(&mut *tx)
            .await?;
        }
        if !write.links.is_empty() {
            self.queue_links_in(&mut tx, job, &write.links, write.link_depth)
                .await?;
        }
        self.touch_store_in(&mut tx, &crawl.vector_store_id).await?;
        tx.commit().await?;
        Ok(Some(deleted))
    }

    /// Queues links for the pass (those it has not reached yet), up to the queue's cap; a
    /// link left out for a full queue that the pass has not reached makes it incomplete.
    async fn queue_links_in(
        &self,
        tx: &mut Tx,
        job: &CrawlJob,
        links: &[String],
        depth: i64,
    ) -> StoreResult<()> {
        let crawl = &job.crawl;
        let queued: i64 = sqlx::query(
            "SELECT COUNT(*) FROM crawl_pages WHERE crawl_id = $1 AND pass = $2 AND status = 'queued'",
        )
        .bind(crawl.id.clone())
        .bind(crawl.pass)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        let mut room = (queue_cap(crawl.spec.max_pages) - queued).max(0);
        for url in links {
            if room == 0 {
                let reached = sqlx::query(
                    "SELECT 1 FROM crawl_pages WHERE crawl_id = $1 AND url = $2 AND pass = $3",
                )
                .bind(crawl.id.clone())
                .bind(url.clone())
                .bind(crawl.pass)
                .fetch_optional(&mut **tx)
                .await?;
                if reached.is_none() {
                    return self.mark_incomplete_in(tx, job).await;
                }
                continue;
            }
            let added = sqlx::query(
                "INSERT INTO crawl_pages (crawl_id, url, depth, pass, status) \
                 VALUES ($1, $2, $3, $4, 'queued') \
                 ON CONFLICT (crawl_id, url) DO UPDATE SET depth = excluded.depth, \
                 pass = excluded.pass, status = 'queued', reason = NULL \
                 WHERE crawl_pages.pass < excluded.pass",
            )
            .bind(crawl.id.clone())
            .bind(url.clone())
            .bind(depth)
            .bind(crawl.pass)
            .execute(&mut **tx)
            .await?;
            room -= added.rows_affected() as i64;
        }
        Ok(())
    }

    /// Records that the pass will not reach everything it could: at its end, pages it did
    /// not reach are not taken for gone.
    async fn mark_incomplete_in(&self, tx: &mut Tx, job: &CrawlJob) -> StoreResult<()> {
        sqlx::query("UPDATE crawls SET truncated = 1 WHERE id = $1")
            .bind(job.crawl.id.clone())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Marks the pass's queued pages skipped (a bound of the pass was reached); `None` if this
    /// node no longer holds the crawl.
    pub async fn skip_queued(&self, job: &CrawlJob, reason: &str) -> StoreResult<Option<()>> {
        let mut tx = self.begin_background().await?;
        if !self.fence_in(&mut tx, job, 0, 0).await? {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE crawl_pages SET status = 'skipped', reason = $1 \
             WHERE crawl_id = $2 AND pass = $3 AND status = 'queued'",
        )
        .bind(reason.to_string())
        .bind(job.crawl.id.clone())
        .bind(job.crawl.pass)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(()))
    }

    /// Ends the pass. When it reached everything it could (`complete`, no link left out for
    /// a full queue, no page kept for a passing failure), pages an earlier pass
    /// found but this one did not reach are no longer linked: their files are deleted and the
    /// rest forgotten. The crawl is `completed`, or `failed` (with `error`, else a general
    /// message) when it has no page stored; the next pass is scheduled if the crawl re-crawls. `None` if this node no longer
    /// holds the crawl; else the ids of the files deleted.
    pub async fn finish_pass(
        &self,
        job: &CrawlJob,
        complete: bool,
        error: Option<(&str, &str)>,
    ) -> StoreResult<Option<Vec<String>>> {
        let crawl = &job.crawl;
        let mut tx = self.begin_background().await?;
        if !self.fence_in(&mut tx, job, 0, 0).await? {
            return Ok(None);
        }
        let mut deleted = Vec::new();
        let truncated: i64 = sqlx::query("SELECT truncated FROM crawls WHERE id = $1")
            .bind(crawl.id.clone())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if complete && truncated == 0 {
            let gone = sqlx::query(
                "SELECT url, file_id FROM crawl_pages WHERE crawl_id = $1 AND pass < $2",
            )
            .bind(crawl.id.clone())
            .bind(crawl.pass)
            .fetch_all(&mut *tx)
            .await?;
            for r in gone {
                let url: String = r.try_get(0)?;
                let Some(file) = r.try_get::<Option<String>, _>(1)? else {
                    continue;
                };
                if self
                    .delete_file_everywhere_in(&mut tx, &crawl.project_id, &file)
                    .await?
                {
                    deleted.push(file);
                }
                sqlx::query(
                    "UPDATE crawl_pages SET status = 'removed', reason = 'no longer linked', \
                     file_id = NULL, content_hash = NULL, pass = $1 WHERE crawl_id = $2 AND url = $3",
                )
                .bind(crawl.pass)
                .bind(crawl.id.clone())
                .bind(url)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM crawl_pages WHERE crawl_id = $1 AND pass < $2")
                .bind(crawl.id.clone())
                .bind(crawl.pass)
                .execute(&mut *tx)
                .await?;
        }
        let holding: i64 = sqlx::query(
            "SELECT COUNT(*) FROM crawl_pages WHERE crawl_id = $1 AND file_id IS NOT NULL",
        )
        .bind(crawl.id.clone())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let t = now();
        // Nothing stored is a failure whatever the reason (the node that saw the roots' may
        // have died): the pages list says why each was not stored.
        let (status, last_error) = match (holding, error) {
            (0, error) => {
                let (code, message) = error.unwrap_or((
                    "crawl_failed",
                    "No page could be stored; the crawl's pages say why.",
                ));
                let error = serde_json::json!({"code": code, "message": message});
                (CrawlStatus::Failed, Some(error.to_string()))
            }
            _ => (CrawlStatus::Completed, None),
        };
        let next = crawl.spec.recrawl_interval_seconds.map(|s| t + s as i64);
        sqlx::query(
            "UPDATE crawls SET status = $1, last_error = $2, pass_ended_at = $3, next_pass_at = $4, \
             lease_until = NULL, lease_token = NULL WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(last_error)
        .bind(t)
        .bind(next)
        .bind(crawl.id.clone())
        .execute(&mut *tx)
        .await?;
        if !deleted.is_empty() {
            self.touch_store_in(&mut tx, &crawl.vector_store_id).await?;
        }
        tx.commit().await?;
        Ok(Some(deleted))
    }

    /// Ends the crawl `failed` (it cannot go on: its store is gone, it was interrupted too
    /// often); nothing if this node no longer holds it.
    pub async fn fail_crawl(&self, job: &CrawlJob, code: &str, message: &str) -> StoreResult<()> {
        let mut tx = self.begin_background().await?;
        let done = sqlx::query(
            "UPDATE crawls SET status = 'failed', last_error = $1, pass_ended_at = $2, \
             next_pass_at = NULL, lease_until = NULL, lease_token = NULL \
             WHERE id = $3 AND lease_token = $4 AND status = 'in_progress'",
        )
        .bind(serde_json::json!({"code": code, "message": message}).to_string())
        .bind(now())
        .bind(job.crawl.id.clone())
        .bind(job.token)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            sqlx::query(
                "UPDATE crawl_pages SET status = 'cancelled' WHERE crawl_id = $1 AND status = 'queued'",
            )
            .bind(job.crawl.id.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
