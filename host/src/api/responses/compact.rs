//! `POST /responses/compact`: a long history made short enough to continue.
//!
//! The algorithm: the history is the request's context (the chain before
//! `previous_response_id`, then `input`). The user's own messages are kept word for word —
//! they are what was asked, and usually small. Everything else (the assistant's answers, tool
//! calls and their outputs) is replaced by a summary the model writes: a response of the
//! engine (not stored) over the whole history followed by [`PROMPT`]. The result lists the
//! kept user messages, then one `compaction` item holding the summary; given as the `input` of
//! the next request (instead of `previous_response_id`), the model sees the user's messages and
//! a system message with the summary. The summary's tokens are the compaction's usage.
//!
//! The item's `encrypted_content` is the summary, encoded and versioned but not encrypted
//! (`model::response::compaction_content`): this server's clients own their histories.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Value};

use super::create::{self, CreateResponse};
use super::{current, wait};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use assistants_core::model::ids::ItemId;
use assistants_core::model::response;
use assistants_core::model::Item;

use super::super::extract::Json;

/// What the model is asked to write in place of the history.
pub const PROMPT: &str = "You are performing a CONTEXT CHECKPOINT COMPACTION. Write a summary \
of the conversation so far that lets you continue it without the full history: the user's \
goals and constraints, what was decided, the facts and results found (tool outputs, file \
contents, numbers, names), what remains open and what to do next. Write notes for yourself, \
complete but concise; do not answer the user.";

#[derive(Debug, Deserialize)]
pub(super) struct CompactRequest {
    model: Option<Value>,
    input: Option<Value>,
    previous_response_id: Option<String>,
    instructions: Option<Value>,
}

pub(super) async fn compact(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CompactRequest>,
) -> ApiResult<axum::Json<Value>> {
    let mut input = super::input_list(req.input)?;
    let given = input.len();
    input.push(json!({"role": "user", "content": PROMPT}));
    // A response like any other (validated the same way, errors naming the same parameters),
    // not stored: it exists to write the summary.
    let summarise: CreateResponse = serde_json::from_value(json!({
        "model": req.model,
        "input": input,
        "previous_response_id": req.previous_response_id,
        "instructions": req.instructions,
        "store": false,
    }))
    // `model` is the one field left unchecked by the extractor.
    .map_err(|_| ApiError::invalid("model", "Invalid type for 'model': expected a string."))?;
    let p = create::prepare(&state, &project, summarise).await?;
    // The user's messages the compacted history keeps: the chain's, then the input's.
    let previous = p
        .doc
        .get("previous_response_id")
        .and_then(Value::as_str)
        .and_then(|id| assistants_core::model::ids::ResponseId::parse(id).ok());
    let mut history =
        assistants_worker::items::context(&state.store, &project, None, previous.as_ref(), None)
            .await?;
    history.extend(p.items.iter().take(given).cloned());
    let kept: Vec<Value> = history
        .iter()
        .filter(|i| is_user_message(i))
        .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
        .collect();

    let id = p.doc.id.clone();
    let (_, sub) = create::start(&state, &project, p, true).await?;
    let sub = sub.expect("subscribed when asked to");
    wait::until_ended(&state, &project, &id, sub, None).await?;
    let done = current::current(&state, &project, &id).await?;
    if done.status() != "completed" {
        let error = done.get("error").filter(|e| !e.is_null());
        let why = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("the model's answer was cut off");
        // The model's own failure says how: a rate limit is worth retrying later (503, which
        // the SDKs retry); anything else failed on this side.
        let (kind, code) = match error.and_then(|e| e.get("code")).and_then(Value::as_str) {
            Some("rate_limit_exceeded") => (ErrorKind::Unavailable, "rate_limit_exceeded"),
            _ => (ErrorKind::Internal, "server_error"),
        };
        let mut e = ApiError::new(kind, format!("The history could not be compacted: {why}"));
        e.code = Some(code);
        return Err(e);
    }
    let summary: String = done
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o["type"] == "message")
        .flat_map(|o| o["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_string))
        .collect();
    let mut output = kept;
    output.push(json!({
        "id": ItemId::of_type("compaction"),
        "type": "compaction",
        "encrypted_content": response::compaction_content(summary.trim()),
    }));
    Ok(axum::Json(json!({
        "id": id,
        "object": "response.compaction",
        "output": output,
        "created_at": done.created_at,
        "usage": done.get("usage").cloned().unwrap_or(Value::Null),
    })))
}

fn is_user_message(i: &Item) -> bool {
    i.kind() == "message" && i.get("role").and_then(Value::as_str) == Some("user")
}
