//! Vector-store membership, file batches, ingestion leases and chunks.
//!
//! A store's and a batch's `file_counts` and `usage_bytes` are never stored: they are counted from
//! `vector_store_files` on every read, so they are true at every moment by construction.
//! Ingestion is claimed through a lease with a fencing token (`lease_token`): a node that dies
//! mid-file loses its lease and another node reclaims the file, and a result written under an
//! outdated token (the file was cancelled, removed or re-attached meanwhile) is discarded.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::error::{StoreError, StoreResult};
use super::{ListParams, Page, Store, Val};
use crate::model::ids::now;

/// A file's membership of a vector store, as stored.
#[derive(Debug, Clone)]
pub struct VsFileRow {
    pub vector_store_id: String,
    pub file_id: String,
    pub batch_id: Option<String>,
    pub created_at: i64,
    pub status: String,
    pub usage_bytes: i64,
    pub last_error: Option<serde_json::Value>,
    pub chunking_strategy: serde_json::Value,
    pub attributes: Option<serde_json::Value>,
}

const VS_FILE_COLS: &str = "vector_store_id, id, batch_id, created_at, status, usage_bytes, \
                            last_error, chunking_strategy, attributes";

fn vs_file_row(r: &AnyRow) -> StoreResult<VsFileRow> {
    let json = |s: Option<String>| -> StoreResult<Option<serde_json::Value>> {
        Ok(s.map(|s| serde_json::from_str(&s)).transpose()?)
    };
    Ok(VsFileRow {
        vector_store_id: r.try_get(0)?,
        file_id: r.try_get(1)?,
        batch_id: r.try_get(2)?,
        created_at: r.try_get(3)?,
        status: r.try_get(4)?,
        usage_bytes: r.try_get(5)?,
        last_error: json(r.try_get(6)?)?,
        chunking_strategy: json(Some(r.try_get(7)?))?.unwrap_or_default(),
        attributes: json(r.try_get(8)?)?,
    })
}

/// Status counts of a store's or a batch's files.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, PartialEq, Eq)]
pub struct FileCounts {
    pub in_progress: i64,
    pub completed: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub total: i64,
}

/// A claimed ingestion job; `token` fences the result against concurrent changes.
#[derive(Debug, Clone)]
pub struct IngestJob {
    pub vector_store_id: String,
    pub file_id: String,
    pub project_id: String,
    pub chunking_strategy: serde_json::Value,
    /// Random per claim; a re-attach or cancel clears it, so a late result cannot land.
    pub token: i64,
    /// Claims of this file since it was (re-)attached.
    pub attempts: i64,
}

/// One chunk ready to be written.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub tokens: i64,
    pub text: String,
    /// Unit-length embedding, when the server has an embeddings model.
    pub embedding: Option<Vec<f32>>,
}

/// A stored chunk, as the search index loads it.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    /// The chunk's row number: the index keeps it instead of the text, which is read back
    /// ([`Store::chunk_texts`]) only for the results a search returns.
    pub seq: i64,
    pub file_id: String,
    pub text: String,
    /// Little-endian f32s ([`vector_bytes`]), when the store was embedded.
    pub embedding: Option<Vec<u8>>,
}

/// When a store with this `expires_after` (`{"anchor": "last_active_at", "days": n}`) that was
/// last active at `last_active_at` expires, if it does.
pub fn expires_at(expires_after: Option<&serde_json::Value>, last_active_at: i64) -> Option<i64> {
    expires_after
        .and_then(|e| e.get("days"))
        .and_then(serde_json::Value::as_i64)
        .map(|days| last_active_at + days * 86_400)
}

/// f32s as little-endian bytes (the `chunks.embedding` column).
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// How often a file is retried after its ingesting node vanished before it is marked failed.
pub const MAX_INGEST_ATTEMPTS: i64 = 3;

impl Store {
    /// Attaches a file to a store (or re-attaches it, restarting ingestion) in `in_progress`.
    pub async fn attach_file(
        &self,
        project: &str,
        vs_id: &str,
        file_id: &str,
        batch_id: Option<&str>,
        chunking_strategy: &serde_json::Value,
        attributes: Option<&serde_json::Value>,
    ) -> StoreResult<VsFileRow> {
        let mut tx = self.begin().await?;
        self.attach_file_in(
            &mut tx,
            project,
            vs_id,
            file_id,
            batch_id,
            chunking_strategy,
            attributes,
        )
        .await?;
        self.touch_store_in(&mut tx, vs_id).await?;
        tx.commit().await?;
        self.vs_file(project, vs_id, file_id).await?.ok_or_else(|| {
            StoreError::internal(
                "attach_file",
                "attached file vanished before it could be read",
            )
        })
    }

    pub(crate) async fn attach_file_in(
        &self,
        tx: &mut super::Tx,
        project: &str,
        vs_id: &str,
        file_id: &str,
        batch_id: Option<&str>,
        chunking_strategy: &serde_json::Value,
        attributes: Option<&serde_json::Value>,
    ) -> StoreResult<()> {
        let attrs = attributes.map(|a| a.to_string());
        sqlx::query(
            "INSERT INTO vector_store_files (vector_store_id, id, project_id, batch_id, created_at, \
             status, usage_bytes, chunking_strategy, attributes) \
             VALUES ($1, $2, $3, $4, $5, 'in_progress', 0, $6, $7) \
             ON CONFLICT (vector_store_id, id) DO UPDATE SET status = 'in_progress', \
             usage_bytes = 0, last_error = NULL, lease_until = NULL, lease_token = NULL, attempts = 0, \
             batch_id = excluded.batch_id, chunking_strategy = excluded.chunking_strategy, \
             attributes = COALESCE(excluded.attributes, vector_store_files.attributes)",
        )
        .bind(vs_id.to_string())
        .bind(file_id.to_string())
        .bind(project.to_string())
        .bind(batch_id.map(str::to_string))
        .bind(now())
        .bind(chunking_strategy.to_string())
        .bind(attrs)
                .execute(&mut **tx)
        .await?;
        // Chunks of an earlier attachment of the same file go; callers bump the store's
        // generation once for all the files they attach (`touch_store_in`).
        self.drop_chunks_in(tx, vs_id, Some(file_id)).await
    }

    async fn drop_chunks_in(
        &self,
        tx: &mut super::Tx,
        vs_id: &str,
        file_id: Option<&str>,
    ) -> StoreResult<()> {
        match file_id {
            Some(f) => {
                sqlx::query("DELETE FROM chunks WHERE vector_store_id = $1 AND file_id = $2")
                    .bind(vs_id.to_string())
                    .bind(f.to_string())
                    .execute(&mut **tx)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM chunks WHERE vector_store_id = $1")
                    .bind(vs_id.to_string())
                    .execute(&mut **tx)
                    .await?
            }
        };
        Ok(())
    }

    /// Marks the store active now and invalidates search caches of it.
    /// Whether a store exists and has not expired, read inside `tx`.
    pub(crate) async fn vs_usable_in(&self, tx: &mut super::Tx, vs_id: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT body, last_active_at FROM vector_stores WHERE id = $1")
            .bind(vs_id.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let body: serde_json::Value = serde_json::from_str(&row.try_get::<String, _>(0)?)?;
        let expires = expires_at(body.get("expires_after"), row.try_get(1)?);
        Ok(expires.is_none_or(|t| now() <= t))
    }

    /// Whether the file is attached to the store, read inside `tx`.
    pub(crate) async fn vs_has_file_in(
        &self,
        tx: &mut super::Tx,
        vs_id: &str,
        file_id: &str,
    ) -> StoreResult<bool> {
        let row =
            sqlx::query("SELECT 1 FROM vector_store_files WHERE vector_store_id = $1 AND id = $2")
                .bind(vs_id.to_string())
                .bind(file_id.to_string())
                .fetch_optional(&mut **tx)
                .await?;
        Ok(row.is_some())
    }

    pub(crate) async fn touch_store_in(&self, tx: &mut super::Tx, vs_id: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE vector_stores SET index_generation = index_generation + 1, \
             last_active_at = $1 WHERE id = $2",
        )
        .bind(now())
        .bind(vs_id.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn vs_file(
        &self,
        project: &str,
        vs_id: &str,
        file_id: &str,
    ) -> StoreResult<Option<VsFileRow>> {
        let sql = format!(
            "SELECT {VS_FILE_COLS} FROM vector_store_files \
             WHERE vector_store_id = $1 AND id = $2 AND project_id = $3"
        );
        let row = sqlx::query(&sql)
            .bind(vs_id.to_string())
            .bind(file_id.to_string())
            .bind(project.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(vs_file_row).transpose()
    }

    pub async fn list_vs_files(
        &self,
        project: &str,
        vs_id: &str,
        batch_id: Option<&str>,
        status: Option<&str>,
        params: &ListParams,
    ) -> StoreResult<Page<VsFileRow>> {
        let mut filters = Vec::new();
        if let Some(b) = batch_id {
            filters.push(("batch_id", Val::Text(b.to_string())));
        }
        if let Some(s) = status {
            filters.push(("status", Val::Text(s.to_string())));
        }
        let scope = super::list::ListScope {
            table: "vector_store_files",
            project,
            parent: Some(("vector_store_id", vs_id)),
            filters,
            tombstone_parent: vs_id,
        };
        self.list_rows(&scope, VS_FILE_COLS, params, vs_file_row)
            .await
    }

    /// Removes a file from one store with its chunks; false if it was not there.
    pub async fn detach_file(
        &self,
        project: &str,
        vs_id: &str,
        file_id: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let detached = self
            .detach_file_in(&mut tx, project, vs_id, file_id)
            .await?;
        tx.commit().await?;
        Ok(detached)
    }

    async fn detach_file_in(
        &self,
        tx: &mut super::Tx,
        project: &str,
        vs_id: &str,
        file_id: &str,
    ) -> StoreResult<bool> {
        let row = sqlx::query(
            "DELETE FROM vector_store_files WHERE vector_store_id = $1 AND id = $2 AND project_id = $3 \
             RETURNING seq",
        )
        .bind(vs_id.to_string())
        .bind(file_id.to_string())
        .bind(project.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        self.tombstone_in(
            tx,
            "vector_store_files",
            vs_id,
            file_id,
            project,
            row.try_get(0)?,
        )
        .await?;
        self.drop_chunks_in(tx, vs_id, Some(file_id)).await?;
        self.touch_store_in(tx, vs_id).await?;
        Ok(true)
    }

    /// Deletes a file and removes it from every store that holds it, in one transaction.
    pub async fn delete_file_everywhere(&self, project: &str, file_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let stores = sqlx::query(
            "SELECT vector_store_id FROM vector_store_files WHERE id = $1 AND project_id = $2",
        )
        .bind(file_id.to_string())
        .bind(project.to_string())
        .fetch_all(&mut *tx)
        .await?;
        for r in &stores {
            let vs: String = r.try_get(0)?;
            self.detach_file_in(&mut tx, project, &vs, file_id).await?;
        }
        let row = sqlx::query("DELETE FROM files WHERE id = $1 AND project_id = $2 RETURNING seq")
            .bind(file_id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        self.tombstone_in(&mut tx, "files", "", file_id, project, row.try_get(0)?)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn set_vs_file_attributes(
        &self,
        project: &str,
        vs_id: &str,
        file_id: &str,
        attributes: &serde_json::Value,
    ) -> StoreResult<Option<VsFileRow>> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE vector_store_files SET attributes = $1 \
             WHERE vector_store_id = $2 AND id = $3 AND project_id = $4",
        )
        .bind(attributes.to_string())
        .bind(vs_id.to_string())
        .bind(file_id.to_string())
        .bind(project.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        // Attributes feed search filters, so cached indexes of this store must reload them.
        self.touch_store_in(&mut tx, vs_id).await?;
        tx.commit().await?;
        self.vs_file(project, vs_id, file_id).await
    }

    /// Counts per status and the bytes of completed files, for a store or (with `batch_id`) a batch.
    pub async fn file_counts(
        &self,
        vs_id: &str,
        batch_id: Option<&str>,
    ) -> StoreResult<(FileCounts, i64)> {
        let rows = match batch_id {
            None => {
                sqlx::query(
                    "SELECT status, COUNT(*), CAST(COALESCE(SUM(usage_bytes), 0) AS BIGINT) FROM vector_store_files \
                     WHERE vector_store_id = $1 GROUP BY status",
                )
                .bind(vs_id.to_string())
                .fetch_all(&self.read)
                .await?
            }
            Some(b) => {
                sqlx::query(
                    "SELECT status, COUNT(*), CAST(COALESCE(SUM(usage_bytes), 0) AS BIGINT) FROM vector_store_files \
                     WHERE vector_store_id = $1 AND batch_id = $2 GROUP BY status",
                )
                .bind(vs_id.to_string())
                .bind(b.to_string())
                .fetch_all(&self.read)
                .await?
            }
        };
        let mut counts = FileCounts::default();
        let mut bytes = 0;
        for r in rows {
            let status: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            // SUM over BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot decode:
            // the query casts it back to BIGINT.
            let b: i64 = r.try_get(2)?;
            bytes += b;
            counts.total += n;
            match status.as_str() {
                "in_progress" => counts.in_progress += n,
                "completed" => counts.completed += n,
                "failed" => counts.failed += n,
                "cancelled" => counts.cancelled += n,
                other => tracing::warn!(status = other, "unknown vector store file status"),
            }
        }
        Ok((counts, bytes))
    }

    /// Cancels a batch: its files still in progress become `cancelled`. False if the batch is
    /// unknown or already finished (nothing is left to cancel); cancelling twice is fine.
    pub async fn cancel_batch(
        &self,
        project: &str,
        vs_id: &str,
        batch_id: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE file_batches SET cancelled_at = COALESCE(cancelled_at, $1) \
             WHERE id = $2 AND vector_store_id = $3 AND project_id = $4 AND (cancelled_at IS NOT NULL \
             OR EXISTS (SELECT 1 FROM vector_store_files f WHERE f.batch_id = $2 AND f.status = 'in_progress'))",
        )
        .bind(now())
        .bind(batch_id.to_string())
        .bind(vs_id.to_string())
        .bind(project.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE vector_store_files SET status = 'cancelled', lease_until = NULL, lease_token = NULL \
             WHERE batch_id = $1 AND status = 'in_progress'",
        )
        .bind(batch_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Creates a batch row and attaches its files, atomically.
    pub async fn create_batch(
        &self,
        project: &str,
        vs_id: &str,
        batch_id: &str,
        created_at: i64,
        files: &[(String, serde_json::Value, Option<serde_json::Value>)],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO file_batches (id, vector_store_id, project_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(batch_id.to_string())
        .bind(vs_id.to_string())
        .bind(project.to_string())
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        for (file_id, strategy, attrs) in files {
            self.attach_file_in(
                &mut tx,
                project,
                vs_id,
                file_id,
                Some(batch_id),
                strategy,
                attrs.as_ref(),
            )
            .await?;
        }
        self.touch_store_in(&mut tx, vs_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// (created_at, cancelled_at) of a batch of the store, if it exists.
    pub async fn batch(
        &self,
        project: &str,
        vs_id: &str,
        batch_id: &str,
    ) -> StoreResult<Option<(i64, Option<i64>)>> {
        let row = sqlx::query(
            "SELECT created_at, cancelled_at FROM file_batches \
             WHERE id = $1 AND vector_store_id = $2 AND project_id = $3",
        )
        .bind(batch_id.to_string())
        .bind(vs_id.to_string())
        .bind(project.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    /// Claims the oldest unleased in-progress file for `lease_secs` seconds.
    pub async fn claim_ingest(&self, lease_secs: i64) -> StoreResult<Option<IngestJob>> {
        let t = now();
        let token: i64 = rand::random();
        // On PostgreSQL, concurrent claimers skip rows another is claiming instead of all
        // picking the same one; SQLite's single writer serialises claims anyway.
        let skip_locked = match self.backend {
            super::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE vector_store_files SET lease_until = $1, lease_token = $3, attempts = attempts + 1 \
             WHERE status = 'in_progress' AND (lease_until IS NULL OR lease_until < $2) \
             AND seq = (SELECT seq FROM vector_store_files WHERE status = 'in_progress' \
                        AND (lease_until IS NULL OR lease_until < $2) ORDER BY seq LIMIT 1{skip_locked}) \
             RETURNING vector_store_id, id, project_id, chunking_strategy, attempts"
        );
        let row = sqlx::query(&sql)
            .bind(t + lease_secs)
            .bind(t)
            .bind(token)
            .fetch_optional(&self.write)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(IngestJob {
            vector_store_id: r.try_get(0)?,
            file_id: r.try_get(1)?,
            project_id: r.try_get(2)?,
            chunking_strategy: serde_json::from_str(&r.try_get::<String, _>(3)?)?,
            token,
            attempts: r.try_get(4)?,
        }))
    }

    /// Gives a claimed file back for another attempt after `retry_in_secs` (transient failure).
    pub async fn release_ingest(&self, job: &IngestJob, retry_in_secs: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE vector_store_files SET lease_until = $1 \
             WHERE vector_store_id = $2 AND id = $3 AND lease_token = $4 AND status = 'in_progress'",
        )
        .bind(now() + retry_in_secs)
        .bind(job.vector_store_id.clone())
        .bind(job.file_id.clone())
        .bind(job.token)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Writes the chunks and completes the file, unless the job was superseded (then false).
    pub async fn complete_ingest(
        &self,
        job: &IngestJob,
        chunks: &[NewChunk],
        usage_bytes: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE vector_store_files SET status = 'completed', usage_bytes = $1, lease_until = NULL, \
             lease_token = NULL \
             WHERE vector_store_id = $2 AND id = $3 AND lease_token = $4 AND status = 'in_progress'",
        )
        .bind(usage_bytes)
        .bind(job.vector_store_id.clone())
        .bind(job.file_id.clone())
        .bind(job.token)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        self.drop_chunks_in(&mut tx, &job.vector_store_id, Some(&job.file_id))
            .await?;
        // Many rows per statement: a large file has thousands of chunks, and on SQLite every
        // statement holds the single writer that all API writes wait for.
        const ROWS: usize = 100;
        for (batch_no, batch) in chunks.chunks(ROWS).enumerate() {
            let mut sql = String::from(
                "INSERT INTO chunks (vector_store_id, file_id, chunk_index, tokens, text, embedding) VALUES ",
            );
            let mut args = Vec::with_capacity(batch.len() * 6);
            for (i, c) in batch.iter().enumerate() {
                let n = args.len();
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6
                ));
                args.push(Val::Text(job.vector_store_id.clone()));
                args.push(Val::Text(job.file_id.clone()));
                args.push(Val::Int((batch_no * ROWS + i) as i64));
                args.push(Val::Int(c.tokens));
                args.push(Val::Text(c.text.clone()));
                args.push(Val::OptBytes(c.embedding.as_deref().map(vector_bytes)));
            }
            super::bind_all(sqlx::query(&sql), &args)
                .execute(&mut *tx)
                .await?;
        }
        self.touch_store_in(&mut tx, &job.vector_store_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks the file failed with `last_error`, unless the job was superseded.
    pub async fn fail_ingest(&self, job: &IngestJob, code: &str, message: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE vector_store_files SET status = 'failed', last_error = $1, lease_until = NULL, \
             lease_token = NULL \
             WHERE vector_store_id = $2 AND id = $3 AND lease_token = $4 AND status = 'in_progress'",
        )
        .bind(serde_json::json!({ "code": code, "message": message }).to_string())
        .bind(job.vector_store_id.clone())
        .bind(job.file_id.clone())
        .bind(job.token)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The generation of a store's searchable content; changes whenever chunks or attributes do.
    pub async fn index_generation(&self, vs_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT index_generation FROM vector_stores WHERE id = $1")
            .bind(vs_id.to_string())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("vector store", vs_id))?;
        Ok(row.try_get(0)?)
    }

    /// All chunks of a store in insertion order, streamed: a large store's chunks (text and
    /// embeddings) would not fit in memory at once next to the index being built from them.
    pub fn stream_chunks<'a>(
        &'a self,
        vs_id: &str,
    ) -> futures::stream::BoxStream<'a, StoreResult<ChunkRow>> {
        use futures::StreamExt;
        sqlx::query(
            "SELECT seq, file_id, text, embedding FROM chunks WHERE vector_store_id = $1 ORDER BY seq",
        )
        .bind(vs_id.to_string())
        .fetch(&self.read)
        .map(|row| {
            let r = row?;
            Ok(ChunkRow {
                seq: r.try_get(0)?,
                file_id: r.try_get(1)?,
                text: r.try_get(2)?,
                embedding: r.try_get(3)?,
            })
        })
        .boxed()
    }

    /// The text of the chunks with these row numbers (those still stored).
    pub async fn chunk_texts(
        &self,
        seqs: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, String>> {
        if seqs.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (1..=seqs.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT seq, text FROM chunks WHERE seq IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for s in seqs {
            q = q.bind(*s);
        }
        q.fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Attributes of every completed file of a store, for search filters.
    pub async fn store_file_attributes(
        &self,
        vs_id: &str,
    ) -> StoreResult<Vec<(String, Option<serde_json::Value>)>> {
        let rows = sqlx::query(
            "SELECT id, attributes FROM vector_store_files WHERE vector_store_id = $1 AND status = 'completed'",
        )
        .bind(vs_id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let a: Option<String> = r.try_get(1)?;
                Ok((
                    r.try_get(0)?,
                    a.map(|s| serde_json::from_str(&s)).transpose()?,
                ))
            })
            .collect()
    }

    /// The parsed text of a file, if it has been parsed.
    pub async fn file_text(&self, file_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT text FROM file_texts WHERE file_id = $1")
            .bind(file_id.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn put_file_text(&self, file_id: &str, text: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO file_texts (file_id, text) VALUES ($1, $2) \
             ON CONFLICT (file_id) DO UPDATE SET text = excluded.text",
        )
        .bind(file_id.to_string())
        .bind(text.to_string())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Deletes a vector store with its memberships, batches and chunks.
    pub async fn delete_vector_store(&self, project: &str, vs_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let seq = sqlx::query("SELECT seq FROM vector_stores WHERE id = $1 AND project_id = $2")
            .bind(vs_id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(seq) = seq else { return Ok(false) };
        self.tombstone_in(
            &mut tx,
            "vector_stores",
            "",
            vs_id,
            project,
            seq.try_get(0)?,
        )
        .await?;
        for sql in [
            "DELETE FROM chunks WHERE vector_store_id = $1",
            "DELETE FROM vector_store_files WHERE vector_store_id = $1",
            "DELETE FROM file_batches WHERE vector_store_id = $1",
            "DELETE FROM vector_stores WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(vs_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

impl Store {
    /// When the store last changed or was searched (the anchor of `expires_after`).
    /// When a store expires (`expires_after` days after it was last active), if it does.
    pub async fn vs_expires_at(&self, vs_id: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT body, last_active_at FROM vector_stores WHERE id = $1")
            .bind(vs_id.to_string())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("vector store", vs_id))?;
        let body: serde_json::Value = serde_json::from_str(&row.try_get::<String, _>(0)?)?;
        Ok(expires_at(body.get("expires_after"), row.try_get(1)?))
    }

    pub async fn vs_last_active(&self, vs_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT last_active_at FROM vector_stores WHERE id = $1")
            .bind(vs_id.to_string())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("vector store", vs_id))?;
        Ok(row.try_get(0)?)
    }
}

impl Store {
    /// Filenames of the given files (files of any project: callers pass ids they already scoped).
    pub async fn filenames<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> StoreResult<std::collections::HashMap<String, String>> {
        let mut out = std::collections::HashMap::new();
        for id in ids {
            let row = sqlx::query("SELECT body FROM files WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.read)
                .await?;
            if let Some(r) = row {
                let body: serde_json::Value = serde_json::from_str(&r.try_get::<String, _>(0)?)?;
                if let Some(name) = body.get("filename").and_then(|v| v.as_str()) {
                    out.insert(id.to_string(), name.to_string());
                }
            }
        }
        Ok(out)
    }
}

impl Store {
    /// (project, id) of up to `limit` files whose `expires_at` has passed.
    pub async fn expired_files(&self, now: i64, limit: i64) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT project_id, id FROM files WHERE expires_at IS NOT NULL AND expires_at < $1 LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

impl Store {
    /// Number of searchable chunks in a store (operators and benchmarks size stores by it).
    pub async fn chunk_count(&self, vs_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM chunks WHERE vector_store_id = $1")
            .bind(vs_id.to_string())
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get(0)?)
    }
}

impl Store {
    /// Records use of a store (searches keep it from expiring), at most once a minute so a busy
    /// store does not turn every search into a write.
    pub async fn mark_store_active(&self, vs_id: &str) -> StoreResult<()> {
        let t = now();
        if self.vs_last_active(vs_id).await? >= t - 60 {
            return Ok(());
        }
        sqlx::query(
            "UPDATE vector_stores SET last_active_at = $1 WHERE id = $2 AND last_active_at < $1",
        )
        .bind(t)
        .bind(vs_id.to_string())
        .execute(&self.write)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn store_with_file() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        sqlx::query(
            "INSERT INTO vector_stores (id, project_id, created_at, last_active_at, body) \
             VALUES ('vs_1', 'p', 0, 0, '{}')",
        )
        .execute(&store.write)
        .await
        .unwrap();
        (store, dir)
    }

    #[tokio::test]
    async fn a_result_from_before_a_reattach_is_discarded() {
        let (store, _dir) = store_with_file().await;
        let strategy = json!({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}});
        store
            .attach_file("p", "vs_1", "file-a", None, &strategy, None)
            .await
            .unwrap();
        let first = store.claim_ingest(300).await.unwrap().expect("claimable");
        // The client re-attaches the file while the first worker is still busy with it.
        store
            .attach_file("p", "vs_1", "file-a", None, &strategy, None)
            .await
            .unwrap();
        let second = store
            .claim_ingest(300)
            .await
            .unwrap()
            .expect("claimable again");
        assert_ne!(first.token, second.token);
        let chunk = |t: &str| {
            vec![NewChunk {
                tokens: 1,
                text: t.into(),
                embedding: None,
            }]
        };
        assert!(
            !store
                .complete_ingest(&first, &chunk("stale"), 5)
                .await
                .unwrap(),
            "stale result must not land"
        );
        assert!(store
            .complete_ingest(&second, &chunk("fresh"), 5)
            .await
            .unwrap());
        use futures::TryStreamExt;
        let chunks: Vec<ChunkRow> = store.stream_chunks("vs_1").try_collect().await.unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "fresh");
        let texts = store.chunk_texts(&[chunks[0].seq, 12345]).await.unwrap();
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[&chunks[0].seq], "fresh");
    }

    #[tokio::test]
    async fn a_released_file_is_claimable_after_its_backoff_only() {
        let (store, _dir) = store_with_file().await;
        let strategy = json!({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}});
        store
            .attach_file("p", "vs_1", "file-a", None, &strategy, None)
            .await
            .unwrap();
        let job = store.claim_ingest(300).await.unwrap().unwrap();
        assert!(store.claim_ingest(300).await.unwrap().is_none(), "leased");
        store.release_ingest(&job, -1).await.unwrap();
        let again = store.claim_ingest(300).await.unwrap().expect("released");
        assert_eq!(again.attempts, 2);
    }
}
