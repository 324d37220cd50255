//! Parts of pending uploads: which part ids belong to an upload and how large each is.

use std::collections::HashMap;

use sqlx::Row;

use super::error::StoreResult;
use super::Store;

impl Store {
    /// Records a part unless the upload's parts would then exceed `declared` bytes (false).
    pub async fn insert_upload_part(
        &self,
        upload_id: &str,
        part_id: &str,
        created_at: i64,
        bytes: i64,
        declared: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO upload_parts (id, upload_id, created_at, bytes) SELECT $1, $2, $3, $4 \
             WHERE (SELECT COALESCE(SUM(bytes), 0) FROM upload_parts WHERE upload_id = $2) + $4 <= $5",
        )
        .bind(part_id.to_string())
        .bind(upload_id.to_string())
        .bind(created_at)
        .bind(bytes)
        .bind(declared)
        .execute(self.write())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// (project, id) of uploads past their expiry that still hold parts.
    pub async fn expired_uploads(
        &self,
        now: i64,
        limit: i64,
    ) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT u.project_id, u.id FROM uploads u WHERE u.expires_at < $1 \
             AND EXISTS (SELECT 1 FROM upload_parts p WHERE p.upload_id = u.id) LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Forgets an upload's parts (their bytes are deleted by the caller).
    pub async fn delete_upload_parts(&self, upload_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1")
            .bind(upload_id.to_string())
            .execute(self.write())
            .await?;
        Ok(())
    }

    /// Part id → size in bytes.
    pub async fn upload_parts(&self, upload_id: &str) -> StoreResult<HashMap<String, i64>> {
        let rows = sqlx::query("SELECT id, bytes FROM upload_parts WHERE upload_id = $1")
            .bind(upload_id.to_string())
            .fetch_all(self.read())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
