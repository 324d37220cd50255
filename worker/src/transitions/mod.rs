//! Run transitions: every change of a run's status, in one place.
//!
//! The API (create, cancel, submit tool outputs), the sweeper (expire) and the engine (start,
//! require action, finish, fail, end) all move runs by calling these functions. Each keeps a
//! run, its engine record and its unfinished messages and steps consistent, and says which
//! events clients see. The callers own the transaction: the API's is a locked read-modify-write
//! (`Store::update_run`, `Store::lock_run_in`), the engine's is fenced by its lease
//! (`Store::engine_tx`); neither builds or edits an engine record itself.

use std::sync::Arc;

use serde_json::{json, Value};

use assistants_core::bus::{EventBus, RunQueue, StreamEvent};
use assistants_core::model::engine::{
    EngineRecord, Event, Next, OpenToolStep, ToolBinding, ToolCall, ToolResult,
};
use assistants_core::model::ids::{now, VectorStoreId};
use assistants_core::model::response::ResponseBinding;
use assistants_core::model::run::usage;
use assistants_core::model::{Message, MessageStatus, Run, RunStatus, RunStep, StepStatus};
use assistants_core::store::{Store, StoreError, StoreResult, Tx};

/// What API handlers need to start and signal runs.
#[derive(Clone)]
pub struct RunsHandle {
    pub bus: Arc<dyn EventBus>,
    pub queue: Arc<dyn RunQueue>,
    pub store: Store,
}

impl RunsHandle {
    /// Puts a run on the queue. A failure is logged, not returned: the run is in the database
    /// and the sweeper queues it again shortly.
    pub async fn enqueue(&self, run_id: &str) {
        if let Err(e) = self.queue.enqueue(run_id).await {
            tracing::warn!(
                run_id,
                error = format!("{e:#}"),
                "could not queue a run; the sweeper will"
            );
            return;
        }
        // The sweeper leaves recently queued runs alone.
        if let Err(e) = self.store.mark_nudged(run_id).await {
            tracing::warn!(run_id, error = %e, "could not record that a run was queued");
        }
    }
}

/// Why a transition asked for by a client was refused. The messages are the API's (OpenAI's
/// wording); the host maps each variant to its status code in one place.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Cannot cancel run with status '{0}'.")]
    NotCancellable(RunStatus),
    /// The run reached `requires_action` and left it again while a cancel was deciding.
    #[error("The run changed status while it was being cancelled; try again.")]
    Raced,
    #[error("Runs in status \"{0}\" do not accept tool outputs.")]
    NotAwaitingOutputs(RunStatus),
    #[error("No tool call found with id '{call}' waiting for output in run {run}.")]
    UnknownToolCall { call: String, run: String },
    #[error("Expected tool outputs for call ids {pending:?}, missing: {missing:?}.")]
    MissingToolOutputs {
        pending: Vec<String>,
        missing: Vec<String>,
    },
}

/// How a run ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Completed,
    /// Stopped by a budget: `reason` is `max_prompt_tokens` or `max_completion_tokens`.
    Incomplete {
        reason: String,
    },
    Failed {
        code: String,
        message: String,
    },
    Cancelled,
    Expired,
}

impl Ending {
    pub fn status(&self) -> RunStatus {
        match self {
            Ending::Completed => RunStatus::Completed,
            Ending::Incomplete { .. } => RunStatus::Incomplete,
            Ending::Failed { .. } => RunStatus::Failed,
            Ending::Cancelled => RunStatus::Cancelled,
            Ending::Expired => RunStatus::Expired,
        }
    }

    /// The status the run's unfinished steps end in (an incomplete run's steps completed).
    fn step_status(&self) -> StepStatus {
        match self {
            Ending::Cancelled => StepStatus::Cancelled,
            Ending::Expired => StepStatus::Expired,
            Ending::Failed { .. } => StepStatus::Failed,
            Ending::Completed | Ending::Incomplete { .. } => StepStatus::Completed,
        }
    }

    /// Why the run's unfinished messages are incomplete.
    fn message_reason(&self) -> &'static str {
        match self {
            Ending::Cancelled => "run_cancelled",
            Ending::Expired => "run_expired",
            Ending::Failed { .. } => "run_failed",
            Ending::Completed | Ending::Incomplete { .. } => "max_tokens",
        }
    }
}

/// What a new run is pinned to, decided by the surface that creates it.
pub struct Pins {
    /// The strategy plugin's id and the digest of its component today.
    pub strategy: String,
    pub digest: String,
    /// The plugin tools offered to the model, each pinned to its component.
    pub tools: Vec<ToolBinding>,
    /// The vector stores its `file_search` searches.
    pub vector_store_ids: Vec<VectorStoreId>,
    /// Its own code_interpreter files, replacing the assistant's (none: the assistant's).
    pub code_file_ids: Option<Vec<String>>,
    /// Whether file_search result content is shown in its steps (`include[]`).
    pub include_content: bool,
    /// The response the run produces (Responses surface).
    pub response: Option<ResponseBinding>,
    /// An assistant run's remote MCP servers, their headers sealed to the run.
    pub mcp: Vec<assistants_core::model::mcp::McpServer>,
}

/// A new run: `queued`, with the engine record that starts its strategy at the first step.
pub fn create(run: &mut Run, pins: Pins) -> EngineRecord {
    run.set_status(RunStatus::Queued, now());
    EngineRecord {
        strategy: pins.strategy,
        digest: pins.digest,
        state: String::new(),
        next: Next::Step {
            event: Event::Start,
        },
        tools: pins.tools,
        vector_store_ids: pins.vector_store_ids,
        code_file_ids: pins.code_file_ids,
        prompt_tokens: 0,
        completion_tokens: 0,
        open_tool_step: None,
        steps: 0,
        sources: Vec::new(),
        plugin_calls: Default::default(),
        include_content: pins.include_content,
        images: Vec::new(),
        sandbox_files: Vec::new(),
        response: pins.response,
        mcp: pins.mcp,
    }
}

/// A worker took a queued run.
pub fn start(run: &mut Run) {
    run.set_status(RunStatus::InProgress, now());
}

/// A worker stopped driving a run it was not asked to stop (the lease watcher fired
/// spuriously): the run goes back to the status the database holds, for the next worker.
pub fn hand_back(run: &mut Run, stored: RunStatus) {
    run.status = stored;
}

/// The strategy asked the client for `calls`: the run waits for their outputs, holding no
/// worker.
pub fn require_action(run: &mut Run, engine: &mut EngineRecord, calls: &[ToolCall]) {
    run.set_status(RunStatus::RequiresAction, now());
    run.required_action = Some(json!({
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {"tool_calls": calls.iter().map(|c| json!({
            "id": c.id, "type": "function",
            "function": {"name": c.name, "arguments": c.arguments_json},
        })).collect::<Vec<_>>()},
    }));
    engine.next = Next::AwaitOutputs;
}

/// Ends `run` inside `tx`, the transaction that writes it: terminal status and details, usage
/// so far, no next step, and its in-progress messages and steps ended with it. Returns the
/// events to publish after the commit: messages, then steps (the order clients track them),
/// then the run's own.
pub async fn end_in(
    store: &Store,
    tx: &mut Tx,
    project: &str,
    run: &mut Run,
    engine: &mut EngineRecord,
    ending: &Ending,
) -> StoreResult<Vec<StreamEvent>> {
    match ending {
        Ending::Failed { code, message } => {
            run.last_error = Some(json!({"code": code, "message": message}));
        }
        Ending::Incomplete { reason } => {
            run.incomplete_details = Some(json!({ "reason": reason }));
        }
        _ => {}
    }
    let status = ending.status();
    run.set_status(status, now());
    run.usage = Some(usage(engine.prompt_tokens, engine.completion_tokens));
    engine.next = Next::Done;
    // The client's headers for its MCP servers are kept only while the run may use them.
    for server in engine.mcp_servers_mut() {
        server.forget_headers();
    }
    let open = engine.open_tool_step.take();
    let mut events = close_unfinished_in(
        store,
        tx,
        project,
        run,
        ending,
        open.as_ref(),
        engine.include_content,
    )
    .await?;
    // A response's run: the response ends with it, in this transaction.
    crate::responses::finish_in(store, tx, project, run, engine).await?;
    events.push(StreamEvent::new(status.event(), &*run));
    Ok(events)
}

/// Ends the run's in-progress messages (as `incomplete`) and steps (as the ending says) inside
/// `tx`, so a terminal run never keeps unfinished children. Every step gets its usage: the LLM
/// call's for `open` (the tool step waiting for outputs), zero for the others.
async fn close_unfinished_in(
    store: &Store,
    tx: &mut Tx,
    project: &str,
    run: &Run,
    ending: &Ending,
    open: Option<&OpenToolStep>,
    include_content: bool,
) -> StoreResult<Vec<StreamEvent>> {
    let t = now();
    let mut events = Vec::new();
    for mut m in store.by_run_in::<Message>(tx, &run.id).await? {
        if m.status != MessageStatus::InProgress {
            continue;
        }
        m.status = MessageStatus::Incomplete;
        m.incomplete_at = Some(t);
        m.completed_at = None;
        m.incomplete_details = Some(json!({ "reason": ending.message_reason() }));
        store.upsert_in(tx, project, &m).await?;
        events.push(StreamEvent::new("thread.message.incomplete", &m));
    }
    let status = ending.step_status();
    for mut s in store.by_run_in::<RunStep>(tx, &run.id).await? {
        if s.status != StepStatus::InProgress {
            continue;
        }
        s.status = status;
        s.usage = Some(match open.filter(|o| o.id == s.id) {
            Some(o) => usage(o.prompt_tokens, o.completion_tokens),
            None => usage(0, 0),
        });
        match ending {
            Ending::Cancelled => s.cancelled_at = Some(t),
            Ending::Expired => s.expired_at = Some(t),
            Ending::Failed { .. } => {
                s.failed_at = Some(t);
                s.last_error = run.last_error.clone();
            }
            Ending::Completed | Ending::Incomplete { .. } => s.completed_at = Some(t),
        }
        store.upsert_in(tx, project, &s).await?;
        let mut shown = serde_json::to_value(&s)?;
        if !include_content {
            assistants_core::model::run::strip_result_content(&mut shown);
        }
        events.push(StreamEvent::new(
            &format!("thread.run.step.{status}"),
            &shown,
        ));
    }
    Ok(events)
}

/// Ends a run no worker holds, in one transaction with its unfinished children, if `decide`
/// (seeing the locked run) says so; publishes the events. Returns the run as stored, and
/// whether it was ended.
pub async fn end_idle_run<E: From<StoreError>>(
    store: &Store,
    bus: &dyn EventBus,
    project: &str,
    thread_id: &str,
    run_id: &str,
    ending: Ending,
    decide: impl FnOnce(&Run) -> Result<bool, E>,
) -> Result<(Run, bool), E> {
    let mut tx = store.begin().await?;
    let (mut run, mut engine) = store
        .lock_run_in(&mut tx, project, thread_id, run_id)
        .await?;
    if !decide(&run)? {
        return Ok((run, false));
    }
    let events = end_in(store, &mut tx, project, &mut run, &mut engine, &ending).await?;
    let json = engine.to_json().map_err(StoreError::from)?;
    store.write_run_in(&mut tx, &run, &json, None).await?;
    tx.commit().await?;
    // A background response's events are recorded, after what its run recorded so far. The
    // run has ended whatever happens next: a record that cannot be read now only loses these
    // events from a later replay.
    let mut next = match engine.response.as_ref().filter(|r| r.background) {
        Some(r) => match store.last_response_event(&r.id).await {
            Ok(last) => Some(last + 1),
            Err(e) => {
                tracing::warn!(response_id = %r.id, error = %e, "could not read a response's event record");
                None
            }
        },
        None => None,
    };
    for mut e in events {
        if let Some(n) = next.as_mut() {
            crate::responses::record(store, &engine, None, *n, &mut e).await;
            *n += 1;
        }
        bus.publish(&run.id, e).await;
    }
    Ok((run, true))
}

/// A client cancels a run. One waiting for the client (no worker holds it) ends here with its
/// open tool step; a queued or running one becomes `cancelling`, which the worker driving it
/// hears at once (or the next worker claiming it sees) and ends as `cancelled`.
pub async fn cancel(
    runs: &RunsHandle,
    project: &str,
    thread_id: &str,
    id: &str,
) -> Result<Run, TransitionError> {
    // Two rounds at most: a run that reaches requires_action between them is ended directly.
    for _ in 0..2 {
        let (run, ended) = end_idle_run(
            &runs.store,
            &*runs.bus,
            project,
            thread_id,
            id,
            Ending::Cancelled,
            |run| match run.status {
                RunStatus::RequiresAction => Ok(true),
                s if s.is_cancellable() => Ok(false),
                s => Err(TransitionError::NotCancellable(s)),
            },
        )
        .await?;
        if ended {
            return Ok(run);
        }
        let mut now_waiting = false;
        let run = runs
            .store
            .update_run::<TransitionError>(project, thread_id, id, |run, _| {
                match run.status {
                    RunStatus::RequiresAction => now_waiting = true,
                    s if s.is_cancellable() => run.set_status(RunStatus::Cancelling, now()),
                    s => return Err(TransitionError::NotCancellable(s)),
                }
                Ok(())
            })
            .await?;
        if now_waiting {
            continue;
        }
        runs.bus
            .publish(
                &run.id,
                StreamEvent::new(RunStatus::Cancelling.event(), &run),
            )
            .await;
        runs.enqueue(&run.id).await;
        return Ok(run);
    }
    Err(TransitionError::Raced)
}

/// A client submits the outputs of the calls a run waits for: all of them, each once. The run
/// is queued again with the outputs (in the order the calls were asked for) as its strategy's
/// next event; the worker that takes it completes the tool step first.
pub async fn submit_tool_outputs(
    runs: &RunsHandle,
    project: &str,
    thread_id: &str,
    id: &str,
    results: Vec<ToolResult>,
) -> Result<Run, TransitionError> {
    let run = runs
        .store
        .update_run::<TransitionError>(project, thread_id, id, |run, engine| {
            if run.status != RunStatus::RequiresAction {
                return Err(TransitionError::NotAwaitingOutputs(run.status));
            }
            let pending = pending_calls(run);
            if let Some(unknown) = results.iter().find(|r| !pending.contains(&r.tool_call_id)) {
                return Err(TransitionError::UnknownToolCall {
                    call: unknown.tool_call_id.clone(),
                    run: run.id.to_string(),
                });
            }
            let missing: Vec<String> = pending
                .iter()
                .filter(|p| !results.iter().any(|r| &r.tool_call_id == *p))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(TransitionError::MissingToolOutputs { pending, missing });
            }
            let ordered = pending
                .iter()
                .filter_map(|p| results.iter().find(|r| &r.tool_call_id == p).cloned())
                .collect();
            engine.next = Next::Step {
                event: Event::OutputsSubmitted(ordered),
            };
            run.set_status(RunStatus::Queued, now());
            Ok(())
        })
        .await?;
    runs.enqueue(&run.id).await;
    Ok(run)
}

/// The ids of the calls a run in `requires_action` waits for.
fn pending_calls(run: &Run) -> Vec<String> {
    run.required_action
        .as_ref()
        .and_then(|a| a.pointer("/submit_tool_outputs/tool_calls"))
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
