//! Parts of pending uploads: which part ids belong to an upload and how large each is.

use std::collections::HashMap;

use sqlx::Row;

use super::Store;
use crate::error::ApiResult;

impl Store {
    pub async fn insert_upload_part(
        &self,
        upload_id: &str,
        part_id: &str,
        created_at: i64,
        bytes: i64,
    ) -> ApiResult<()> {
        sqlx::query(
            "INSERT INTO upload_parts (id, upload_id, created_at, bytes) VALUES ($1, $2, $3, $4)",
        )
        .bind(part_id.to_string())
        .bind(upload_id.to_string())
        .bind(created_at)
        .bind(bytes)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Part id → size in bytes.
    pub async fn upload_parts(&self, upload_id: &str) -> ApiResult<HashMap<String, i64>> {
        let rows = sqlx::query("SELECT id, bytes FROM upload_parts WHERE upload_id = $1")
            .bind(upload_id.to_string())
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
