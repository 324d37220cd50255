//! Where a store's persisted search index is (`search::snapshots`): one row per store, the
//! newest snapshot wins.

use super::*;

/// A persisted search index of a store.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSnapshot {
    /// The store's index generation the snapshot was taken at.
    pub generation: i64,
    pub blob_key: String,
    /// Chunks in the index, dead ones included (what the next snapshot is measured against).
    pub chunks: i64,
    pub bytes: i64,
}

/// What recording a snapshot did.
#[derive(Debug, PartialEq)]
pub enum Recorded {
    /// It is the store's snapshot now, replacing the one in this object, if any.
    Replaced(Option<String>),
    /// One at least as new was recorded first (or the store is gone): this one is not used.
    Stale,
}

impl Store {
    pub async fn search_snapshot(&self, vs_id: &str) -> StoreResult<Option<SearchSnapshot>> {
        let row = sqlx::query(
            "SELECT generation, blob_key, chunks, bytes FROM search_snapshots WHERE vector_store_id = $1",
        )
        .bind(vs_id.to_string())
        .fetch_optional(self.read())
        .await?;
        row.map(|r| {
            Ok(SearchSnapshot {
                generation: r.try_get(0)?,
                blob_key: r.try_get(1)?,
                chunks: r.try_get(2)?,
                bytes: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Records `snap` as the store's snapshot unless a newer one is recorded.
    pub(crate) async fn record_search_snapshot(
        &self,
        vs_id: &str,
        snap: &SearchSnapshot,
    ) -> StoreResult<Recorded> {
        let mut tx = self.begin_background().await?;
        // A no-op write locks the store's row (PostgreSQL; SQLite has one writer anyway), so two
        // nodes recording at once take turns and each reads the key it replaces.
        let locked = sqlx::query(
            "UPDATE vector_stores SET index_generation = index_generation WHERE id = $1",
        )
        .bind(vs_id.to_string())
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() == 0 {
            return Ok(Recorded::Stale);
        }
        let old: Option<String> =
            sqlx::query("SELECT blob_key FROM search_snapshots WHERE vector_store_id = $1")
                .bind(vs_id.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        // Conditional: an older snapshot never replaces a newer one.
        let done = sqlx::query(
            "INSERT INTO search_snapshots (vector_store_id, generation, blob_key, chunks, bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (vector_store_id) DO UPDATE SET generation = excluded.generation, \
             blob_key = excluded.blob_key, chunks = excluded.chunks, bytes = excluded.bytes, \
             created_at = excluded.created_at \
             WHERE search_snapshots.generation < excluded.generation",
        )
        .bind(vs_id.to_string())
        .bind(snap.generation)
        .bind(snap.blob_key.clone())
        .bind(snap.chunks)
        .bind(snap.bytes)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(Recorded::Stale);
        }
        tx.commit().await?;
        Ok(Recorded::Replaced(old))
    }

    /// Forgets the store's snapshot if it is still the one in `blob_key` (it did not load).
    pub(crate) async fn drop_search_snapshot(
        &self,
        vs_id: &str,
        blob_key: &str,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM search_snapshots WHERE vector_store_id = $1 AND blob_key = $2")
            .bind(vs_id.to_string())
            .bind(blob_key.to_string())
            .execute(self.write())
            .await?;
        Ok(())
    }
}
