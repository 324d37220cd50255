//! File batches: create, read and cancel (their counts come from their files, like a store's).

use super::*;

impl Store {
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
        files: &[(FileId, serde_json::Value, Option<serde_json::Value>)],
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
        .fetch_optional(self.read())
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }
}
