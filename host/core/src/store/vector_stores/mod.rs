//! Vector-store membership, file batches, ingestion leases and chunks.
//!
//! A store's and a batch's `file_counts` and `usage_bytes` are never stored: they are counted from
//! `vector_store_files` on every read, so they are true at every moment by construction.
//! Ingestion is claimed through a lease with a fencing token (`lease_token`): a node that dies
//! mid-file loses its lease and another node reclaims the file, and a result written under an
//! outdated token (the file was cancelled, removed or re-attached meanwhile) is discarded.

mod batches;
mod ingest;
mod removal;
mod snapshots;

pub(crate) use ingest::FILES_PER_QUERY;
pub use snapshots::{Recorded, SearchSnapshot};

use sqlx::any::AnyRow;
use sqlx::Row;

use super::error::{StoreError, StoreResult};
use super::{ListParams, Page, Store, Val};
use crate::model::ids::{now, FileId};
use crate::model::IngestStatus;

/// A file's membership of a vector store, as stored.
#[derive(Debug, Clone)]
pub struct VsFileRow {
    pub vector_store_id: String,
    pub file_id: String,
    pub batch_id: Option<String>,
    pub created_at: i64,
    pub status: IngestStatus,
    pub usage_bytes: i64,
    pub last_error: Option<serde_json::Value>,
    pub chunking_strategy: serde_json::Value,
    pub attributes: Option<serde_json::Value>,
}

const VS_FILE_COLS: &str = "vector_store_id, id, batch_id, created_at, status, usage_bytes, \
                            last_error, chunking_strategy, attributes";

/// A stored ingestion status; one outside the set is a corrupt row, not some other status.
fn ingest_status(s: String) -> StoreResult<IngestStatus> {
    s.parse()
        .map_err(|e| StoreError::internal("reading a vector-store file's status", e))
}

fn vs_file_row(r: &AnyRow) -> StoreResult<VsFileRow> {
    let json = |s: Option<String>| -> StoreResult<Option<serde_json::Value>> {
        Ok(s.map(|s| serde_json::from_str(&s)).transpose()?)
    };
    Ok(VsFileRow {
        vector_store_id: r.try_get(0)?,
        file_id: r.try_get(1)?,
        batch_id: r.try_get(2)?,
        created_at: r.try_get(3)?,
        status: ingest_status(r.try_get(4)?)?,
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

impl FileCounts {
    /// Counts `n` more files with the stored status `status` (a status outside the set is a
    /// corrupt row, an error).
    pub(crate) fn add(&mut self, status: String, n: i64) -> StoreResult<()> {
        self.total += n;
        match ingest_status(status)? {
            IngestStatus::InProgress => self.in_progress += n,
            IngestStatus::Completed => self.completed += n,
            IngestStatus::Failed => self.failed += n,
            IngestStatus::Cancelled => self.cancelled += n,
        }
        Ok(())
    }
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
pub(crate) struct ChunkRow {
    /// The chunk's row number: the index keeps it instead of the text, which is read back
    /// ([`Store::chunk_texts`]) only for the results a search returns.
    pub seq: i64,
    pub file_id: String,
    pub text: String,
    /// Little-endian f32s ([`vector_bytes`]), when the store was embedded.
    pub embedding: Option<Vec<u8>>,
}

/// A completed file of a store, as a search index keeps track of it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedFile {
    pub id: String,
    pub attributes: Option<serde_json::Value>,
    /// The store's index generation when its chunks were written: it moves whenever they are
    /// replaced.
    pub stamp: i64,
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
pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// How often a file is retried after its ingesting node vanished before it is marked failed.
pub(crate) const MAX_INGEST_ATTEMPTS: i64 = 3;

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

    pub async fn attach_file_in(
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
    pub async fn vs_usable_in(&self, tx: &mut super::Tx, vs_id: &str) -> StoreResult<bool> {
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
    pub async fn vs_has_file_in(
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

    pub async fn touch_store_in(&self, tx: &mut super::Tx, vs_id: &str) -> StoreResult<()> {
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
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(vs_file_row).transpose()
    }

    pub async fn list_vs_files(
        &self,
        project: &str,
        vs_id: &str,
        batch_id: Option<&str>,
        status: Option<IngestStatus>,
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
                .fetch_all(self.read())
                .await?
            }
            Some(b) => {
                sqlx::query(
                    "SELECT status, COUNT(*), CAST(COALESCE(SUM(usage_bytes), 0) AS BIGINT) FROM vector_store_files \
                     WHERE vector_store_id = $1 AND batch_id = $2 GROUP BY status",
                )
                .bind(vs_id.to_string())
                .bind(b.to_string())
                .fetch_all(self.read())
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
            counts.add(status, n)?;
        }
        Ok((counts, bytes))
    }
}

impl Store {
    /// When a store expires (`expires_after` days after it was last active: changed or
    /// searched), if it does.
    pub async fn vs_expires_at(&self, vs_id: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT body, last_active_at FROM vector_stores WHERE id = $1")
            .bind(vs_id.to_string())
            .fetch_optional(self.read())
            .await?
            .ok_or_else(|| StoreError::not_found("vector store", vs_id))?;
        let body: serde_json::Value = serde_json::from_str(&row.try_get::<String, _>(0)?)?;
        Ok(expires_at(body.get("expires_after"), row.try_get(1)?))
    }

    pub async fn vs_last_active(&self, vs_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT last_active_at FROM vector_stores WHERE id = $1")
            .bind(vs_id.to_string())
            .fetch_optional(self.read())
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
                .fetch_optional(self.read())
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
        .fetch_all(self.read())
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
            .fetch_one(self.read())
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
        .execute(self.write())
        .await?;
        Ok(())
    }
}
