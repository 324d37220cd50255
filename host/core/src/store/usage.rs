//! What a project holds, counted from the rows themselves (for storage quotas).

use sqlx::Row;

use super::error::StoreResult;
use super::Store;
use crate::limits::Usage;

impl Store {
    /// A project's files and their bytes (plus the parts of its pending uploads, which become
    /// files), and the chunks of its vector stores.
    pub async fn project_usage(&self, project: &str) -> StoreResult<Usage> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM files WHERE project_id = $1), \
               CAST((SELECT COALESCE(SUM(bytes), 0) FROM files WHERE project_id = $1) AS BIGINT), \
               CAST((SELECT COALESCE(SUM(p.bytes), 0) FROM upload_parts p \
                  JOIN uploads u ON u.id = p.upload_id WHERE u.project_id = $1) AS BIGINT), \
               (SELECT COUNT(*) FROM chunks c \
                  JOIN vector_stores v ON v.id = c.vector_store_id WHERE v.project_id = $1)",
        )
        .bind(project.to_string())
        .fetch_one(self.read())
        .await?;
        // SUM is NUMERIC on PostgreSQL, hence the casts.
        let get = |i: usize| -> StoreResult<u64> { Ok(row.try_get::<i64, _>(i)?.max(0) as u64) };
        Ok(Usage {
            files: get(0)?,
            bytes: get(1)? + get(2)?,
            chunks: get(3)?,
        })
    }
}
