//! A response after its creation: retrieve (or stream again, background responses), delete,
//! cancel (background responses), and its input items. A response still running is shown as its run is now: its status, and the
//! output its run has written so far.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::super::common::{self, ListQuery};
use super::super::extract::{Path, Query};
use super::current;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{ConversationId, ResponseId};
use assistants_core::model::response;
use assistants_core::model::ResponseObject;
use assistants_worker::transitions::{self, TransitionError};

/// How long a cancel waits for the run to stop before it answers with the response as it is.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// A stored response of the project (`store: false` ones are not retrievable).
async fn stored(state: &AppState, project: &str, id: &ResponseId) -> ApiResult<ResponseObject> {
    let doc = current::current(state, project, id).await?;
    if !doc.stored() {
        return Err(ApiError::not_found("response", id));
    }
    Ok(doc)
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct RetrieveQuery {
    stream: Option<String>,
    starting_after: Option<String>,
}

/// The response, or (`stream=true`, background responses) its event stream again, from
/// `starting_after` on.
pub(super) async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ResponseId>,
    Query(q): Query<RetrieveQuery>,
) -> ApiResult<Response> {
    let doc = stored(&state, &project, &id).await?;
    match q.stream.as_deref() {
        None | Some("false") => return Ok(axum::Json(doc.to_value()).into_response()),
        Some("true") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "stream",
                format!("Invalid 'stream': expected true or false, got '{other}'."),
            ))
        }
    }
    let starting_after = match q.starting_after.as_deref() {
        None | Some("") => None,
        Some(n) => Some(n.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "starting_after",
                format!("Invalid 'starting_after': expected a sequence number, got '{n}'."),
            )
        })?),
    };
    super::stream::resume(&state, &project, doc, starting_after).await
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ResponseId>,
) -> ApiResult<axum::Json<Value>> {
    let doc = stored(&state, &project, &id).await?;
    state.store.delete_response(&project, &id).await?;
    if doc.get("conversation").is_none_or(Value::is_null) {
        // Its own lock thread went with it: so does its code_interpreter session. (A
        // conversation's session stays for the conversation's other responses.)
        let thread = response::lock_thread(&id, None);
        state.interpreter.forget(thread.as_str()).await;
    }
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
    if doc.finished() {
        return Ok(axum::Json(doc.to_value()));
    }
    let conversation = doc
        .get("conversation")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .and_then(|c| ConversationId::parse(c).ok());
    let thread = response::lock_thread(&id, conversation.as_ref());
    let run_id = response::run_id(&id);
    let sub = state.subscribe(&run_id).await?;
    match transitions::cancel(&state.runs, &project, &thread, &run_id).await {
        // It ended meanwhile: show how.
        Ok(_) | Err(TransitionError::NotCancellable(_)) => {}
        Err(e) => return Err(e.into()),
    }
    super::wait::until_ended(&state, &project, &id, sub, Some(CANCEL_WAIT)).await?;
    Ok(axum::Json(
        current::current(&state, &project, &id).await?.to_value(),
    ))
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
