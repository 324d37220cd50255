//! Message attachments with the `file_search` tool: their files go into the thread's vector
//! store, which is created on demand (and expires after 7 days without use, as the real API's
//! thread stores do). Everything happens inside the caller's transaction, with the message.

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::FileId;
use assistants_core::model::Message;
use assistants_core::model::Thread;
use assistants_core::store::Tx;

/// File ids of the message's attachments that ask for file_search.
pub fn file_search_files(m: &Message) -> Vec<FileId> {
    m.attachments
        .iter()
        .filter(|a| {
            a.get("tools")
                .and_then(Value::as_array)
                .is_some_and(|tools| {
                    tools
                        .iter()
                        .any(|t| t.get("type").and_then(Value::as_str) == Some("file_search"))
                })
        })
        // Stored messages hold only ids checked when they were written.
        .filter_map(|a| a.get("file_id").and_then(Value::as_str))
        .filter_map(|id| FileId::parse(id).ok())
        .collect()
}

/// Adds `files` to the thread's vector store inside `tx`, creating the store when the thread
/// has none and recording it in the thread's `tool_resources`. Returns whether anything was
/// attached (the caller wakes ingestion after committing).
pub async fn attach_to_thread_store(
    state: &AppState,
    tx: &mut Tx,
    project: &str,
    thread_id: &str,
    files: &[FileId],
) -> ApiResult<bool> {
    if files.is_empty() {
        return Ok(false);
    }
    // Lock the thread row for the rest of the transaction, so concurrent attachments agree
    // on one store (a no-op update takes the lock on PostgreSQL; SQLite has one writer).
    let thread = state
        .store
        .update_in::<Thread, ApiError>(tx, project, thread_id, |_| Ok(()))
        .await?;
    let mut existing = thread
        .tool_resources
        .pointer("/file_search/vector_store_ids/0")
        .and_then(Value::as_str)
        .map(str::to_string);
    // A store that was deleted or has expired is replaced by a new one.
    if let Some(vs) = &existing {
        if !state.store.vs_usable_in(tx, vs).await? {
            existing = None;
        }
    }
    let strategy = super::common::auto_chunking();
    match existing {
        Some(vs) => {
            for f in files {
                if !state.store.vs_has_file_in(tx, &vs, f).await? {
                    state
                        .store
                        .attach_file_in(tx, project, &vs, f, None, &strategy, None)
                        .await?;
                }
            }
            state.store.touch_store_in(tx, &vs).await?;
        }
        None => {
            let vs = super::vector_stores::create_store_in(
                state,
                tx,
                project,
                None,
                Default::default(),
                Some(json!({"anchor": "last_active_at", "days": 7})),
                files,
                &strategy,
            )
            .await?;
            state
                .store
                .update_in::<Thread, ApiError>(tx, project, thread_id, |t| {
                    let mut resources = t.tool_resources.as_object().cloned().unwrap_or_default();
                    resources.insert("file_search".into(), json!({ "vector_store_ids": [vs.id] }));
                    t.tool_resources = Value::Object(resources);
                    Ok(())
                })
                .await?;
        }
    }
    Ok(true)
}
