//! Removing files from stores and stores themselves: memberships, chunks and tombstones go in
//! one transaction; the files a store's crawls made go with the store.

use super::*;

impl Store {
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
        tx: &mut crate::store::Tx,
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
        let deleted = self
            .delete_file_everywhere_in(&mut tx, project, file_id)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// [`Store::delete_file_everywhere`] inside `tx`.
    pub(crate) async fn delete_file_everywhere_in(
        &self,
        tx: &mut crate::store::Tx,
        project: &str,
        file_id: &str,
    ) -> StoreResult<bool> {
        let stores = sqlx::query(
            "SELECT vector_store_id FROM vector_store_files WHERE id = $1 AND project_id = $2",
        )
        .bind(file_id.to_string())
        .bind(project.to_string())
        .fetch_all(&mut **tx)
        .await?;
        for r in &stores {
            let vs: String = r.try_get(0)?;
            self.detach_file_in(tx, project, &vs, file_id).await?;
        }
        let row = sqlx::query("DELETE FROM files WHERE id = $1 AND project_id = $2 RETURNING seq")
            .bind(file_id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        self.tombstone_in(tx, "files", "", file_id, project, row.try_get(0)?)
            .await?;
        Ok(true)
    }

    /// Deletes a vector store with its memberships, batches, chunks and crawls, and the files
    /// its crawls made (they belong to the crawl, not to anyone who uploaded them); `None` if
    /// there is no such store, else the ids of the files deleted, whose bytes the caller
    /// removes.
    pub async fn delete_vector_store(
        &self,
        project: &str,
        vs_id: &str,
    ) -> StoreResult<Option<Vec<String>>> {
        let mut tx = self.begin().await?;
        let seq = sqlx::query("SELECT seq FROM vector_stores WHERE id = $1 AND project_id = $2")
            .bind(vs_id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(seq) = seq else { return Ok(None) };
        // Stops its crawls first: this waits for a page write in flight (it holds its crawl's
        // row), and no later one passes its fence, so the files read next are all there are.
        sqlx::query(
            "UPDATE crawls SET status = 'cancelled', lease_token = NULL, lease_until = NULL, \
             next_pass_at = NULL WHERE vector_store_id = $1",
        )
        .bind(vs_id.to_string())
        .execute(&mut *tx)
        .await?;
        let crawled = self.crawl_files_of_store_in(&mut tx, vs_id).await?;
        for file in &crawled {
            self.delete_file_everywhere_in(&mut tx, project, file)
                .await?;
        }
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
            "DELETE FROM crawl_pages WHERE crawl_id IN \
             (SELECT id FROM crawls WHERE vector_store_id = $1)",
            "DELETE FROM crawls WHERE vector_store_id = $1",
            "DELETE FROM vector_stores WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(vs_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(crawled))
    }
}
