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
use crate::model::ids::{new_id, now, IdKind};
use crate::model::Thread;
use crate::state::AppState;

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

/// Creates a thread and its initial messages in one transaction (shared with create-and-run).
pub async fn create_thread(
    state: &AppState,
    project: &str,
    req: CreateThread,
) -> ApiResult<Thread> {
    let metadata = common::metadata("metadata", req.metadata)?;
    let msgs = req.messages.unwrap_or_default();
    let thread = Thread {
        id: new_id(IdKind::Thread),
        object: "thread".into(),
        created_at: now(),
        tool_resources: serde_json::json!({}),
        metadata,
    };
    let mut prepared = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.into_iter().enumerate() {
        prepared.push(
            messages::prepare(state, project, &thread.id, m, &format!("messages[{i}]")).await?,
        );
    }
    // Inline vector stores are created in the thread's transaction, after all else validated.
    let mut tx = state.store.begin().await?;
    let resources =
        tool_resources::resolve(state, project, req.tool_resources, Inline::Create(&mut tx))
            .await?;
    let mut thread = Thread {
        tool_resources: resources,
        ..thread
    };
    state
        .store
        .insert_in(&mut tx, project, &thread, &[])
        .await?;
    let mut files = Vec::new();
    for m in &prepared {
        messages::insert_in(state, &mut tx, project, m).await?;
        files.extend(super::attachments::file_search_files(m));
    }
    if super::attachments::attach_to_thread_store(state, &mut tx, project, &thread.id, &files)
        .await?
    {
        // The thread now names the vector store created for its attachments.
        if let Some(t) = state
            .store
            .find_in::<Thread>(&mut tx, project, &thread.id)
            .await?
        {
            thread = t;
        }
    }
    tx.commit().await?;
    state.ingest.notify();
    Ok(thread)
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CreateThread>,
) -> ApiResult<axum::Json<Thread>> {
    Ok(axum::Json(create_thread(&state, &project, req).await?))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Thread>> {
    Ok(axum::Json(state.store.get::<Thread>(&project, &id).await?))
}

async fn modify(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
    Json(req): Json<ModifyThread>,
) -> ApiResult<axum::Json<Thread>> {
    let metadata = common::metadata_patch(req.metadata)?;

    let tool_resources = match req.tool_resources {
        Patch::Absent => None,
        Patch::Null => Some(serde_json::json!({})),
        Patch::Value(v) => {
            Some(tool_resources::resolve(&state, &project, Some(v), Inline::Refuse).await?)
        }
    };
    let t = state
        .store
        .update::<Thread, ApiError>(&project, &id, move |t| {
            if let Some(m) = metadata {
                t.metadata = m;
            }
            if let Some(r) = tool_resources {
                t.tool_resources = r;
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(t))
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    // Messages go with the thread (ON DELETE CASCADE).
    state.store.delete::<Thread>(&project, &id).await?;
    Ok(axum::Json(
        serde_json::json!({"id": id, "object": "thread.deleted", "deleted": true}),
    ))
}
