//! `/threads/{thread_id}/runs` and `/threads/runs`: create (optionally streamed), list,
//! retrieve, modify, cancel, submit tool outputs, and run steps.
//!
//! Handlers validate and record; the run engine (`assistants_worker`) does the work. A streamed
//! request subscribes to the run's events *before* the run is queued, so the response carries
//! every event from `thread.run.created` to the terminal one, then `done`.

mod prepare;
mod sse;

pub(crate) use prepare::tool_choice;
use prepare::{include, prepare, store_ids, union, Prepared};
use sse::respond;
use std::collections::HashSet;
use std::convert::Infallible;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{self, ListQuery};
use super::extract::{Json, Path, Query};
use super::messages::{self, CreateMessage};
use super::threads::{self, CreateThread};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::bus::{StreamEvent, Subscription};
use assistants_core::model::engine::ToolResult;
use assistants_core::model::ids::{now, RunId, StepId, ThreadId};
use assistants_core::model::status::event_ends_stream;
use assistants_core::model::Assistant;
use assistants_core::model::Thread;
use assistants_core::model::{Run, RunStatus, RunStep};
use assistants_worker::transitions::{self, Pins};

/// Parameters shared by create-run and create-thread-and-run.
#[derive(Debug, Deserialize)]
struct RunParams {
    assistant_id: String,
    model: Option<String>,
    instructions: Option<String>,
    tools: Option<Value>,
    metadata: Option<Value>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stream: Option<bool>,
    max_prompt_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    truncation_strategy: Option<Value>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<Value>,
    reasoning_effort: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CreateRun {
    #[serde(flatten)]
    params: RunParams,
    additional_instructions: Option<String>,
    additional_messages: Option<Vec<CreateMessage>>,
}

#[derive(Debug, Deserialize)]
struct CreateThreadAndRun {
    #[serde(flatten)]
    params: RunParams,
    thread: Option<CreateThread>,
    /// Python SDK 1.26.0 sends this as `tool` from `create_and_run_stream`.
    #[serde(alias = "tool")]
    tool_resources: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ModifyRun {
    #[serde(default)]
    metadata: common::Patch<Value>,
}

#[derive(Debug, Deserialize)]
struct SubmitToolOutputs {
    tool_outputs: Vec<ToolOutputIn>,
    stream: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ToolOutputIn {
    tool_call_id: Option<String>,
    output: Option<String>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/threads/runs", post(create_thread_and_run))
        .route("/threads/{thread_id}/runs", get(list).post(create))
        .route(
            "/threads/{thread_id}/runs/{run_id}",
            get(retrieve).post(modify),
        )
        .route("/threads/{thread_id}/runs/{run_id}/cancel", post(cancel))
        .route(
            "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
            post(submit_tool_outputs),
        )
        .route("/threads/{thread_id}/runs/{run_id}/steps", get(list_steps))
        .route(
            "/threads/{thread_id}/runs/{run_id}/steps/{step_id}",
            get(retrieve_step),
        )
}

/// `code_interpreter.file_ids` of a `tool_resources` value this server validated.
fn code_file_ids(resources: &Value) -> Vec<String> {
    resources
        .pointer("/code_interpreter/file_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The thread a run starts on.
enum OnThread {
    /// An existing thread (checked to exist in the project).
    Existing,
    /// A thread created in the run's own transaction (create-thread-and-run), whose stores
    /// the run searches: those of `tool_resources` if the request gave them (they replace the
    /// assistant's), else the assistant's, and the thread's own in either case.
    New {
        thread: threads::NewThread,
        tool_resources: Option<Value>,
    },
}

/// Inserts a prepared run (with its additional messages, and the new thread it starts on, in
/// the same transaction) and queues it.
async fn start(
    state: &AppState,
    project: &str,
    prepared: Prepared,
    additional: Vec<assistants_core::model::Message>,
    on: OnThread,
) -> ApiResult<Response> {
    let Prepared {
        mut run,
        mut pins,
        stream,
    } = prepared;
    let mut initial = Vec::new();
    if let OnThread::Existing = on {
        // The thread must exist in the project (checked before the transaction: on PostgreSQL
        // a read on another pooled connection while holding one can starve the pool).
        let thread_exists = state
            .store
            .existing::<Thread>(project, &[run.thread_id.to_string()])
            .await?;
        if thread_exists.is_empty() {
            return Err(ApiError::not_found("thread", &run.thread_id));
        }
    }
    let mut tx = state.store.begin().await?;
    let mut attached = false;
    if let OnThread::New {
        thread,
        tool_resources,
    } = on
    {
        let thread = threads::insert_in(state, &mut tx, project, thread).await?;
        run.thread_id = thread.id.clone();
        pins.vector_store_ids = match &tool_resources {
            Some(r) => union(&store_ids(r), &store_ids(&thread.tool_resources)),
            None => union(&pins.vector_store_ids, &store_ids(&thread.tool_resources)),
        };
        if let Some(r) = &tool_resources {
            pins.code_file_ids = Some(code_file_ids(r));
        }
        initial.push(StreamEvent::new("thread.created", &thread));
        attached = true;
    }
    // The additional messages go first, then the run.
    let mut files = Vec::new();
    for m in &additional {
        messages::insert_in(state, &mut tx, project, m).await?;
        files.extend(super::attachments::file_search_files(m));
    }
    let filled =
        super::attachments::attach_to_thread_store(state, &mut tx, project, &run.thread_id, &files)
            .await?;
    attached |= filled;
    if filled {
        // The run searches the thread store its additional messages just filled (or created).
        if let Some(t) = state
            .store
            .find_in::<Thread>(&mut tx, project, &run.thread_id)
            .await?
        {
            pins.vector_store_ids = union(&pins.vector_store_ids, &store_ids(&t.tool_resources));
        }
    }
    let engine = transitions::create(&mut run, pins);
    state
        .store
        .insert_run_in(&mut tx, project, &run, &engine)
        .await?;
    // Subscribe before the run can start, so the stream misses nothing.
    let sub = if stream {
        Some(state.subscribe(&run.id).await?)
    } else {
        None
    };
    tx.commit().await?;
    if attached {
        state.ingest.notify();
    }
    state.runs.enqueue(&run.id).await;
    initial.push(StreamEvent::new("thread.run.created", &run));
    initial.push(StreamEvent::new("thread.run.queued", &run));
    Ok(respond(state, project, &run, initial, sub))
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Path(thread_id): Path<ThreadId>,
    RawQuery(raw): RawQuery,
    Json(req): Json<CreateRun>,
) -> ApiResult<Response> {
    let include = include(&raw)?;
    let mut prepared = prepare(
        &state,
        &project,
        &thread_id,
        req.params,
        req.additional_instructions,
    )
    .await?;
    prepared.pins.include_content = !include.is_empty();
    let thread = state.store.get::<Thread>(&project, &thread_id).await?;
    prepared.pins.vector_store_ids = union(
        &prepared.pins.vector_store_ids,
        &store_ids(&thread.tool_resources),
    );
    let mut additional = Vec::new();
    for (i, m) in req
        .additional_messages
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        additional.push(
            messages::prepare(
                &state,
                &project,
                &thread_id,
                m,
                &format!("additional_messages[{i}]"),
            )
            .await?,
        );
    }
    start(&state, &project, prepared, additional, OnThread::Existing).await
}

async fn create_thread_and_run(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CreateThreadAndRun>,
) -> ApiResult<Response> {
    // Everything is validated before anything is written; the thread, its messages and the
    // run are then written in one transaction, so a failure leaves nothing behind.
    let override_resources = match req.tool_resources {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            super::tool_resources::resolve(
                &state,
                &project,
                Some(v),
                super::tool_resources::Inline::Refuse,
            )
            .await?,
        ),
    };
    let thread_id = ThreadId::new();
    let prepared = prepare(&state, &project, &thread_id, req.params, None).await?;
    let thread = threads::prepare(
        &state,
        &project,
        thread_id,
        req.thread.unwrap_or(CreateThread {
            messages: None,
            tool_resources: None,
            metadata: None,
        }),
    )
    .await?;
    let on = OnThread::New {
        thread,
        tool_resources: override_resources,
    };
    start(&state, &project, prepared, Vec::new(), on).await
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    Path(thread_id): Path<ThreadId>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let params = q.params(20, 100)?;
    common::require_thread(&state, &project, &thread_id).await?;
    let page = state
        .store
        .list_raw::<Run>(&project, Some(("thread_id", &thread_id)), vec![], &params)
        .await?;
    Ok(common::list_envelope(page, |r| &r.id))
}

async fn get_run(state: &AppState, project: &str, thread_id: &str, id: &str) -> ApiResult<Run> {
    common::require_thread(state, project, thread_id).await?;
    let run = state.store.get::<Run>(project, id).await?;
    if run.thread_id != thread_id {
        return Err(ApiError::not_found("run", id));
    }
    Ok(run)
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, id)): Path<(ThreadId, RunId)>,
) -> ApiResult<axum::Json<Run>> {
    Ok(axum::Json(
        get_run(&state, &project, &thread_id, &id).await?,
    ))
}

async fn modify(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, id)): Path<(ThreadId, RunId)>,
    Json(req): Json<ModifyRun>,
) -> ApiResult<axum::Json<Run>> {
    let metadata = common::metadata_patch(req.metadata)?;
    common::require_thread(&state, &project, &thread_id).await?;
    let run = state
        .store
        .update_run::<ApiError>(&project, &thread_id, &id, |run, _| {
            if let Some(m) = metadata {
                run.metadata = m;
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(run))
}

async fn cancel(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, id)): Path<(ThreadId, RunId)>,
) -> ApiResult<axum::Json<Run>> {
    common::require_thread(&state, &project, &thread_id).await?;
    let run = transitions::cancel(&state.runs, &project, &thread_id, &id).await?;
    Ok(axum::Json(run))
}

async fn submit_tool_outputs(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, id)): Path<(ThreadId, RunId)>,
    Json(req): Json<SubmitToolOutputs>,
) -> ApiResult<Response> {
    let mut results = Vec::with_capacity(req.tool_outputs.len());
    let mut seen = HashSet::new();
    for (i, o) in req.tool_outputs.into_iter().enumerate() {
        let call_id = o.tool_call_id.ok_or_else(|| {
            ApiError::invalid(
                format!("tool_outputs[{i}].tool_call_id"),
                format!("Missing required parameter: 'tool_outputs[{i}].tool_call_id'."),
            )
        })?;
        if !seen.insert(call_id.clone()) {
            return Err(ApiError::invalid(
                format!("tool_outputs[{i}].tool_call_id"),
                format!("Duplicate tool_call_id '{call_id}' in tool_outputs."),
            ));
        }
        results.push(ToolResult {
            tool_call_id: call_id,
            output: o.output.unwrap_or_default(),
            is_error: false,
        });
    }
    let stream = req.stream.unwrap_or(false);
    // Subscribe before the run is queued again (see the module docs).
    common::require_thread(&state, &project, &thread_id).await?;
    let sub = if stream {
        Some(state.subscribe(&id).await?)
    } else {
        None
    };
    let run =
        transitions::submit_tool_outputs(&state.runs, &project, &thread_id, &id, results).await?;
    let initial = vec![StreamEvent::new(RunStatus::Queued.event(), &run)];
    Ok(respond(&state, &project, &run, initial, sub))
}

async fn list_steps(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, run_id)): Path<(ThreadId, RunId)>,
    RawQuery(raw): RawQuery,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let with_content = !include(&raw)?.is_empty();
    let page = state
        .store
        .list_raw::<RunStep>(
            &project,
            Some(("run_id", &run_id)),
            vec![],
            &q.params(20, 100)?,
        )
        .await?;
    // Steps exist only under their run; check the run belongs to the thread.
    get_run(&state, &project, &thread_id, &run_id).await?;
    let page = page.map(|raw| {
        let mut step: Value = serde_json::from_str(raw.body.get()).unwrap_or_default();
        if !with_content {
            assistants_core::model::run::strip_result_content(&mut step);
        }
        (raw.id, step)
    });
    let page = assistants_core::store::Page {
        items: page.items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        has_more: page.has_more,
    };
    Ok(common::list_envelope(page, |s| {
        s.get("id").and_then(Value::as_str).unwrap_or("")
    }))
}

async fn retrieve_step(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, run_id, step_id)): Path<(ThreadId, RunId, StepId)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<axum::Json<Value>> {
    let with_content = !include(&raw)?.is_empty();
    get_run(&state, &project, &thread_id, &run_id).await?;
    let step = state.store.get::<RunStep>(&project, &step_id).await?;
    if step.run_id != run_id {
        return Err(ApiError::not_found("run step", &step_id));
    }
    let mut step = serde_json::to_value(step)?;
    if !with_content {
        assistants_core::model::run::strip_result_content(&mut step);
    }
    Ok(axum::Json(step))
}
