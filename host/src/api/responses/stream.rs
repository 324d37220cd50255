//! A response's event stream: the run's events, as the engine publishes them for any run,
//! translated into the Responses stream — `response.*` events in OpenAI's order, each with a
//! `sequence_number` one above the last.
//!
//! | run event | response events |
//! | --- | --- |
//! | (created) | `response.created` (and `response.queued` in the background) |
//! | `thread.run.in_progress` | `response.in_progress` |
//! | `thread.message.created` | `output_item.added` (message), `content_part.added` |
//! | `thread.message.delta` | `output_text.delta`, `output_text.annotation.added` |
//! | `thread.message.completed` / `.incomplete` | `output_text.done`, `content_part.done`, `output_item.done` |
//! | `thread.run.step.delta`, a new call | `output_item.added` and the tool's `in_progress` event |
//! | `thread.run.step.delta`, more arguments | `function_call_arguments.delta` (or the tool's own delta) |
//! | `thread.run.step.completed` | per call: its `.done` / `searching` / `completed` events, `output_item.done` |
//! | `engine.reasoning.delta` (responses only) | `output_item.added` (reasoning), `content_part.added`, `reasoning_text.delta` |
//! | the next item, or `engine.reasoning.done` | `reasoning_text.done`, `content_part.done`, `output_item.done` |
//! | the run's end | `response.completed` / `.incomplete` / `.failed`, carrying the finished response |
//!
//! The SDKs rebuild the response from these events and check every `output_index` and
//! `content_index` against what they built, so an item is announced before anything refers
//! to it, and indexes are positions in the order items were announced — the order of the
//! run's steps, which is the order of the finished response's output.

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::translate::Translator;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::bus::Subscription;
use assistants_core::model::engine::ToolBinding;
use assistants_core::model::response;
use assistants_core::model::ResponseObject;

/// How long a stream waits for an event before it checks the run in the database.
const CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// The SSE answer to a streamed create: `response.created`, then the run's events translated
/// until the response ends.
pub(super) fn respond(
    state: &AppState,
    project: &str,
    doc: ResponseObject,
    tools: Vec<ToolBinding>,
    sub: Subscription,
) -> Response {
    sse(Translator::new(state, project, doc, tools), sub)
}

/// A background response's stream again (`GET /responses/{id}?stream=true`): its recorded run
/// events translated as they were the first time — the same events under the same sequence
/// numbers — from `starting_after` on, then its live events until it ends.
pub(super) async fn resume(
    state: &AppState,
    project: &str,
    doc: ResponseObject,
    starting_after: Option<u64>,
) -> ApiResult<Response> {
    if doc.get("background") != Some(&json!(true)) {
        return Err(ApiError::invalid(
            "stream",
            "Only responses created with background=true can be streamed again; retrieve this one without 'stream'.",
        ));
    }
    // A finished background response whose events the janitor pruned.
    if doc.finished() && state.store.response_events_pruned(&doc.id).await? {
        return Err(ApiError::invalid(
            "stream",
            format!(
                "The events of this response are no longer kept (they are pruned {} hours after \
                 it ends); retrieve it without 'stream'.",
                response::EVENTS_KEPT_SECS / 3600
            ),
        ));
    }
    let run_id = response::run_id(&doc.id);
    let tools = match state.store.run_and_record(project, &run_id).await? {
        Some((_, rec)) => rec.tools,
        None => Vec::new(),
    };
    // Listen first, then read the record: an event published in between is in both, and the
    // live copy is skipped by its position.
    let sub = state.subscribe(&run_id).await?;
    let recorded = state.store.response_events(&doc.id).await?;
    let mut t = Translator::new(state, project, as_created(doc), tools);
    t.skip_through = starting_after;
    for e in &recorded {
        if t.ended {
            break;
        }
        t.translate(e).await;
        t.replayed_through = e.recorded.unwrap_or(t.replayed_through);
    }
    // Not ended yet: the rest comes live (the engine commits a run's end before it records and
    // publishes the ending's events, so a run already ended may still have events on the way;
    // a stream silent for a while checks the run, `Translator::check`).
    Ok(sse(t, sub))
}

/// The response as `response.created` first showed it.
fn as_created(mut doc: ResponseObject) -> ResponseObject {
    doc.set("status", json!("queued"));
    doc.set("output", json!([]));
    for k in ["usage", "error", "incomplete_details", "completed_at"] {
        doc.set(k, Value::Null);
    }
    doc
}

/// Frames the translator's events as SSE, fed by the run's live events until it ends.
fn sse(t: Translator, sub: Subscription) -> Response {
    let stream = futures::stream::unfold((t, sub), |(mut t, mut sub)| async move {
        loop {
            if let Some((kind, body)) = t.out.pop_front() {
                let seq = body["sequence_number"].as_u64().unwrap_or(0);
                if t.skip_through.is_some_and(|after| seq <= after) {
                    continue;
                }
                let frame = SseEvent::default().event(&kind).data(body.to_string());
                return Some((Ok::<_, Infallible>(frame), (t, sub)));
            }
            if t.ended {
                return None;
            }
            let next = tokio::select! {
                biased;
                next = tokio::time::timeout(CHECK, sub.recv()) => next,
                _ = t.state.lifecycle.ending.cancelled() => Ok(None),
            };
            match next {
                Ok(Some(e)) if e.recorded.is_some_and(|n| n <= t.replayed_through) => {}
                Ok(Some(e)) => t.translate(&e).await,
                Ok(None) => {
                    t.emit(
                        "error",
                        json!({"code": "server_error", "param": null, "message":
                            "This server is shutting down. The response is not lost: retrieve it later (another worker finishes it)."}),
                    );
                    t.ended = true;
                }
                Err(_) => t.check().await,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
