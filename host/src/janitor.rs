//! Periodic clean-up, on every node (each step is idempotent, so nodes racing is harmless):
//! - files whose `expires_after` has passed are deleted, as the real API does, from every
//!   vector store and with their bytes;
//! - uploads past their hour release their parts' bytes (a pending one becomes `expired`);
//! - tombstones older than a day are forgotten (cursors naming long-deleted objects then 400).

use assistants_core::model::UploadStatus;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use assistants_core::blobs::{file_key, Blobs};
use assistants_core::search::SearchIndexes;
use assistants_core::store::Store;

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

/// How long a deleted object can still serve as a list cursor.
const TOMBSTONE_TTL_SECS: i64 = 86_400;

/// Runs every clean-up once; returns how many files were deleted.
pub async fn sweep(store: &Store, blobs: &Blobs, search: &SearchIndexes) -> anyhow::Result<usize> {
    let deleted = sweep_files(store, blobs, search).await?;
    sweep_uploads(store, blobs).await?;
    store.purge_tombstones(TOMBSTONE_TTL_SECS).await?;
    Ok(deleted)
}

async fn sweep_uploads(store: &Store, blobs: &Blobs) -> anyhow::Result<()> {
    use assistants_core::model::Upload;
    loop {
        let batch = store
            .expired_uploads(assistants_core::model::ids::now(), 100)
            .await?;
        if batch.is_empty() {
            return Ok(());
        }
        for (project, id) in batch {
            let expired = store
                .update::<Upload, assistants_core::store::StoreError>(&project, &id, |u| {
                    if u.status == UploadStatus::Pending {
                        u.status = UploadStatus::Expired;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = expired {
                tracing::warn!(upload_id = %id, error = %e, "could not mark upload expired");
            }
            blobs.delete_prefix(&format!("uploads/{id}")).await?;
            store.delete_upload_parts(&id).await?;
        }
    }
}

/// Deletes every expired file; returns how many were deleted.
async fn sweep_files(
    store: &Store,
    blobs: &Blobs,
    search: &SearchIndexes,
) -> anyhow::Result<usize> {
    let mut deleted = 0;
    loop {
        let batch = store
            .expired_files(assistants_core::model::ids::now(), 100)
            .await?;
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
