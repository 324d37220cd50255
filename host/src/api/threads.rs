//! `/threads`: create (with initial messages), retrieve, modify, delete.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use super::common::{self, Patch};
use super::extract::{Json, Path};
use super::messages::{self, CreateMessage};
use super::tool_resources::{self, Inline};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{now, ThreadId};
use assistants_core::model::{Message, Thread};
use assistants_core::store::Tx;

#[derive(Debug, Deserialize)]
pub struct CreateThread {
    #[serde(default)]
    pub messages: Option<Vec<CreateMessage>>,
    pub tool_resources: Option<Value>,
    pub metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ModifyThread {
    #[serde(default)]
    tool_resources: Patch<Value>,
    #[serde(default)]
    metadata: Patch<Value>,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/threads", post(create)).route(
        "/threads/{thread_id}",
        get(retrieve).post(modify).delete(remove),
    )
}

/// A validated thread request: the new thread and its first messages, nothing written yet.
pub struct NewThread {
    thread: Thread,
    messages: Vec<Message>,
    tool_resources: Option<Value>,
}

/// Validates a thread request (its messages and metadata) without writing anything.
pub async fn prepare(
    state: &AppState,
    project: &str,
    id: ThreadId,
    req: CreateThread,
) -> ApiResult<NewThread> {
    let metadata = common::metadata("metadata", req.metadata)?;
    let thread = Thread {
        id,
        object: "thread".into(),
        created_at: now(),
        tool_resources: serde_json::json!({}),
        metadata,
    };
    let mut prepared = Vec::new();
    for (i, m) in req.messages.unwrap_or_default().into_iter().enumerate() {
        prepared.push(
            messages::prepare(state, project, &thread.id, m, &format!("messages[{i}]")).await?,
        );
    }
    Ok(NewThread {
        thread,
        messages: prepared,
        tool_resources: req.tool_resources,
    })
}

/// Writes a prepared thread, its inline vector stores, its messages and the store for their
/// attachments inside the caller's transaction (a thread alone, or with the run of
/// create-thread-and-run, so a failure of either leaves neither). The caller notifies
/// ingestion after committing.
pub async fn insert_in(
    state: &AppState,
    tx: &mut Tx,
    project: &str,
    new: NewThread,
) -> ApiResult<Thread> {
    let NewThread {
        thread,
        messages: prepared,
        tool_resources,
    } = new;
    let resources =
        tool_resources::resolve(state, project, tool_resources, Inline::Create(&mut *tx)).await?;
    let mut thread = Thread {
        tool_resources: resources,
        ..thread
    };
    state.store.insert_in(tx, project, &thread, &[]).await?;
    let mut files = Vec::new();
    for m in &prepared {
        messages::insert_in(state, tx, project, m).await?;
        files.extend(super::attachments::file_search_files(m));
    }
    if super::attachments::attach_to_thread_store(state, tx, project, &thread.id, &files).await? {
        // The thread now names the vector store created for its attachments.
        if let Some(t) = state
            .store
            .find_in::<Thread>(tx, project, &thread.id)
            .await?
        {
            thread = t;
        }
    }
    Ok(thread)
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CreateThread>,
) -> ApiResult<axum::Json<Thread>> {
    let new = prepare(&state, &project, ThreadId::new(), req).await?;
    let mut tx = state.store.begin().await?;
    let thread = insert_in(&state, &mut tx, &project, new).await?;
    tx.commit().await?;
    state.ingest.notify();
    Ok(axum::Json(thread))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ThreadId>,
) -> ApiResult<axum::Json<Thread>> {
    Ok(axum::Json(state.store.get::<Thread>(&project, &id).await?))
}

async fn modify(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ThreadId>,
    Json(req): Json<ModifyThread>,
) -> ApiResult<axum::Json<Thread>> {
    let metadata = common::metadata_patch(req.metadata)?;

    // `null` clears every list; an object changes only the lists it names.
    let tool_resources = match req.tool_resources {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(v) => Some(Some(
            tool_resources::Change::resolve(&state, &project, v).await?,
        )),
    };
    let t = state
        .store
        .update::<Thread, ApiError>(&project, &id, move |t| {
            if let Some(m) = metadata {
                t.metadata = m;
            }
            match &tool_resources {
                None => {}
                Some(None) => t.tool_resources = serde_json::json!({}),
                Some(Some(patch)) => patch.apply(&mut t.tool_resources),
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(t))
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ThreadId>,
) -> ApiResult<axum::Json<Value>> {
    // Messages go with the thread (ON DELETE CASCADE).
    state.store.delete::<Thread>(&project, &id).await?;
    // Its code_interpreter session: the stored snapshot, and the live one if it is here.
    state.interpreter.forget(id.as_str()).await;
    Ok(axum::Json(
        serde_json::json!({"id": id, "object": "thread.deleted", "deleted": true}),
    ))
}
