//! A response after its creation: retrieve, delete, cancel (background responses), and its
//! input items. A response still running is shown as its run is now: its status, and the
//! output its run has written so far.

use std::time::Duration;

use axum::extract::State;
use serde_json::{json, Value};

use super::super::common::{self, ListQuery};
use super::super::extract::{Path, Query};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{ConversationId, ResponseId};
use assistants_core::model::response;
use assistants_core::model::{Message, ResponseObject, RunStep};
use assistants_worker::transitions::{self, TransitionError};

/// Statuses a response's row holds once its run has ended.
const FINISHED: [&str; 4] = ["completed", "incomplete", "failed", "cancelled"];

/// How long a cancel waits for the run to stop before it answers with the response as it is.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// The response as it is now, stored or not (the create request answers with it either way).
pub(super) async fn current(
    state: &AppState,
    project: &str,
    id: &ResponseId,
) -> ApiResult<ResponseObject> {
    let mut doc = state.store.get::<ResponseObject>(project, id).await?;
    if FINISHED.contains(&doc.status()) {
        return Ok(doc);
    }
    let run_id = response::run_id(id);
    let Some((run, rec)) = state.store.run_and_record(project, &run_id).await? else {
        return Ok(doc);
    };
    if run.status.is_terminal() {
        // Ended between the two reads: the row has it now.
        return Ok(state.store.get::<ResponseObject>(project, id).await?);
    }
    let steps = state.store.by_run::<RunStep>(&run_id).await?;
    let messages = state.store.by_run::<Message>(&run_id).await?;
    let output = assistants_worker::responses::output(&steps, &messages, &rec);
    assistants_worker::responses::apply_run(&mut doc, &run, output);
    // A response that is not in the background is in progress from its creation.
    if doc.status() == "queued" && doc.get("background") != Some(&json!(true)) {
        doc.set("status", json!("in_progress"));
    }
    Ok(doc)
}

/// A stored response of the project (`store: false` ones are not retrievable).
async fn stored(state: &AppState, project: &str, id: &ResponseId) -> ApiResult<ResponseObject> {
    let doc = current(state, project, id).await?;
    if !doc.stored() {
        return Err(ApiError::not_found("response", id));
    }
    Ok(doc)
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct RetrieveQuery {
    stream: Option<String>,
}

pub(super) async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ResponseId>,
    Query(q): Query<RetrieveQuery>,
) -> ApiResult<axum::Json<Value>> {
    if q.stream.as_deref() == Some("true") {
        return Err(ApiError::invalid(
            "stream",
            "Resuming a response's event stream is not supported by this server yet; retrieve the response without 'stream' to poll it.",
        ));
    }
    Ok(axum::Json(stored(&state, &project, &id).await?.to_value()))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ResponseId>,
) -> ApiResult<axum::Json<Value>> {
    stored(&state, &project, &id).await?;
    state.store.delete_response(&project, &id).await?;
    Ok(axum::Json(
        json!({"id": id, "object": "response", "deleted": true}),
    ))
}

/// Cancels a background response: it ends as `cancelled` (the answer waits a little for that,
/// then shows the response as it is). Cancelling one that already ended changes nothing.
pub(super) async fn cancel(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ResponseId>,
) -> ApiResult<axum::Json<Value>> {
    let doc = stored(&state, &project, &id).await?;
    if doc.get("background") != Some(&json!(true)) {
        return Err(ApiError::invalid(
            "response_id",
            "Only responses created with background=true can be cancelled.",
        ));
    }
    if FINISHED.contains(&doc.status()) {
        return Ok(axum::Json(doc.to_value()));
    }
    let conversation = doc
        .get("conversation")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .and_then(|c| ConversationId::parse(c).ok());
    let thread = response::lock_thread(&id, conversation.as_ref());
    let run_id = response::run_id(&id);
    let sub = state
        .runs
        .bus
        .subscribe(&run_id)
        .await
        .map_err(|e| ApiError::internal("subscribing to a response's events", e))?;
    match transitions::cancel(&state.runs, &project, &thread, &run_id).await {
        // It ended meanwhile: show how.
        Ok(_) | Err(TransitionError::NotCancellable(_)) => {}
        Err(e) => return Err(e.into()),
    }
    super::wait::until_ended(&state, &project, &id, sub, Some(CANCEL_WAIT)).await?;
    Ok(axum::Json(current(&state, &project, &id).await?.to_value()))
}

/// The response's input items (newest first unless `order=asc`).
pub(super) async fn input_items(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ResponseId>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    stored(&state, &project, &id).await?;
    let params = q.params(20, 100)?;
    let page = state.store.response_items(&project, &id, &params).await?;
    Ok(common::list_envelope(page, |i| &i.id))
}
