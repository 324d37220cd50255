//! Periodic clean-up, on every node (each step is idempotent, so nodes racing is harmless):
//! - files whose `expires_after` has passed are deleted, as the real API does, from every
//!   vector store and with their bytes;
//! - uploads past their hour release their parts' bytes (a pending one becomes `expired`);
//! - tombstones older than a day are forgotten (cursors naming long-deleted objects then 400);
//! - responses created with `store: false` (and compactions) are deleted with their run a
//!   while after they ended; a background response's recorded events are pruned a day after
//!   it ended (`model::response::EVENTS_KEPT_SECS`); a deleted conversation's lock thread goes
//!   once no response runs in it — each with its code_interpreter session;
//! - persisted search indexes no store records are deleted after an hour
//!   (`search::sweep_snapshots`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use assistants_core::blobs::{file_key, Blobs};
use assistants_core::interpreter::service::CodeInterpreter;
use assistants_core::model::ids::now;
use assistants_core::model::{response, UploadStatus};
use assistants_core::store::{Store, StoreError};

const EVERY: Duration = Duration::from_secs(60);

/// How long a deleted object can still serve as a list cursor.
const TOMBSTONE_TTL_SECS: i64 = 86_400;

/// How long a `store: false` response is kept after it ended: whoever created it has had its
/// answer by then (the request that waited for it, or the stream).
pub const UNSTORED_KEPT_SECS: i64 = 600;

/// Rows cleaned up per query.
const BATCH: i64 = 100;

/// What the janitor cleans.
#[derive(Clone)]
pub struct Janitor {
    pub store: Store,
    pub blobs: Blobs,
    pub interpreter: Arc<CodeInterpreter>,
}

impl Janitor {
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.sweep().await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "janitor sweep failed; retrying later"
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = stop.cancelled() => return,
                }
            }
        })
    }

    /// Runs every clean-up once, each whatever the others did; returns how many files were
    /// deleted, or the first failure (after all of them ran; each is tried again next time).
    pub async fn sweep(&self) -> anyhow::Result<usize> {
        let deleted = sweep_files(&self.store, &self.blobs).await;
        let steps = [
            ("uploads", sweep_uploads(&self.store, &self.blobs).await),
            ("responses", self.sweep_responses().await),
            (
                "search snapshots",
                assistants_core::search::sweep_snapshots(
                    &self.store,
                    &self.blobs,
                    assistants_core::search::SNAPSHOT_ORPHAN_AGE,
                )
                .await
                .map(|_| ()),
            ),
            (
                "tombstones",
                self.store
                    .purge_tombstones(TOMBSTONE_TTL_SECS)
                    .await
                    .map(|_| ())
                    .map_err(Into::into),
            ),
        ];
        let mut failed = None;
        for (what, result) in steps {
            if let Err(e) = result {
                let e = e.context(format!("cleaning up {what}"));
                match failed {
                    // Returned (and logged by the caller); the others are logged here.
                    None => failed = Some(e),
                    Some(_) => tracing::warn!(error = format!("{e:#}"), "janitor step failed"),
                }
            }
        }
        match (deleted, failed) {
            (Ok(n), None) => Ok(n),
            (Err(e), _) | (Ok(_), Some(e)) => Err(e),
        }
    }

    async fn sweep_responses(&self) -> anyhow::Result<()> {
        loop {
            let batch = self
                .store
                .unstored_responses(now() - UNSTORED_KEPT_SECS, BATCH)
                .await?;
            if batch.is_empty() {
                break;
            }
            for (project, id, conversation) in batch {
                match self.store.delete_response(&project, &id).await {
                    Ok(()) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                if conversation.is_none() {
                    // Its own lock thread went with it; a conversation's stays for the rest.
                    let thread = response::lock_thread(&id, None);
                    self.interpreter.forget(thread.as_str()).await;
                }
            }
        }
        while self.store.prune_response_events(now(), BATCH).await? == BATCH as u64 {}
        loop {
            let threads = self.store.sweep_conversation_locks(BATCH).await?;
            for thread in &threads {
                self.interpreter.forget(thread.as_str()).await;
            }
            if (threads.len() as i64) < BATCH {
                return Ok(());
            }
        }
    }
}

async fn sweep_uploads(store: &Store, blobs: &Blobs) -> anyhow::Result<()> {
    use assistants_core::model::Upload;
    loop {
        let batch = store.expired_uploads(now(), BATCH).await?;
        if batch.is_empty() {
            return Ok(());
        }
        for (project, id) in batch {
            let expired = store
                .update::<Upload, StoreError>(&project, &id, |u| {
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
async fn sweep_files(store: &Store, blobs: &Blobs) -> anyhow::Result<usize> {
    let mut deleted = 0;
    loop {
        let batch = store.expired_files(now(), BATCH).await?;
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
    }
}
