//! Periodic clean-up: deletes files whose `expires_after` has passed, as the real API does,
//! removing them from every vector store and deleting their bytes. Runs on every node; the
//! deletes are idempotent, so nodes racing on the same file is harmless.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::blobs::{file_key, Blobs};
use crate::search::SearchIndexes;
use crate::store::Store;

const EVERY: Duration = Duration::from_secs(60);

pub fn spawn(
    store: Store,
    blobs: Blobs,
    search: std::sync::Arc<SearchIndexes>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = sweep(&store, &blobs, &search).await {
                tracing::warn!(error = %e, "janitor sweep failed; retrying later");
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    })
}

/// Deletes every expired file; returns how many were deleted.
pub async fn sweep(
    store: &Store,
    blobs: &Blobs,
    search: &SearchIndexes,
) -> Result<usize, crate::error::ApiError> {
    let mut deleted = 0;
    loop {
        let batch = store.expired_files(crate::ids::now(), 100).await?;
        if batch.is_empty() {
            return Ok(deleted);
        }
        for (project, id) in batch {
            if store.delete_file_everywhere(&project, &id).await? {
                deleted += 1;
                tracing::info!(file_id = %id, "deleted expired file");
            }
            if let Err(e) = blobs.delete(&file_key(&id)).await {
                tracing::warn!(file_id = %id, error = %e, "expired file's bytes could not be removed");
            }
        }
        search.invalidate_all();
    }
}
