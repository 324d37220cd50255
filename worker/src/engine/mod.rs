//! The run engine: claims a run and drives its strategy component until the run waits for the
//! client or ends.
//!
//! The loop alternates two persisted states (`model::Next`): *Step* — call the strategy with
//! an event, persist its new state and chosen action — and *Perform* — do the action (stream
//! the LLM, run plugin tools, ask the client, add a message), persist the outcome as the next
//! event. Every write is fenced by the run's lease token (`Store::engine_tx`) and checks the
//! status the engine expects, so an API transition (cancel) or a successor worker always wins.
//! Ids of the messages and steps an action creates are chosen and persisted before it runs,
//! so an action repeated after a crash rewrites the same rows instead of adding new ones.
//!
//! This module owns the claim, the lease watcher and the loop; the actions are [`llm`] (stream
//! a chat completion into a message and tool-call deltas) and [`tools`] (plugin tools in the
//! sandbox, or calls handed to the client), with [`interpreter`] for the code_interpreter
//! tool; [`wire`] builds the messages and steps they show.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::input;
use crate::publish::{Filter, Mode};
use crate::transitions::{self, Ending};
use assistants_core::bus::{EventBus, StreamEvent};
use assistants_core::llm::calls::Assembler;
use assistants_core::llm::{Llm, LlmError};
use assistants_core::lowprio::AbortOnDrop;
use assistants_core::model::engine::{
    Action, ActionIds, EngineJson, EngineRecord, Event, FinishReason, LlmRequest, LlmResult, Next,
    OpenToolStep, PublishMode, RunInput, Source, ToolBinding, ToolCall, ToolResult,
};
use assistants_core::model::ids::{new_id, now, IdKind, MessageId, StepId};
use assistants_core::model::run::{usage, Run, RunStatus, RunStep};
use assistants_core::model::{Message, MessageStatus, StepStatus};
use assistants_core::plugins::bindings::CallContext;
use assistants_core::plugins::{error_text, Plugin, PluginHost};
use assistants_core::store::{Store, StoreError, Tx};

mod interpreter;
mod llm;
mod mcp;
mod tools;
mod wire;

/// The plugin id whose calls are recorded in the `file_search` step shape and cited.
const FILE_SEARCH: &str = "file_search";
/// Strategy steps one run may take: a guard against strategies that never finish.
const MAX_STEPS: u32 = 1000;

pub struct Engine {
    pub store: Store,
    pub plugins: Arc<PluginHost>,
    /// The code_interpreter tool's sessions on this node.
    pub interpreter: Arc<assistants_core::interpreter::service::CodeInterpreter>,
    /// File bytes (the code_interpreter's input files).
    pub blobs: assistants_core::blobs::Blobs,
    /// Projects' storage quotas, which the code_interpreter's output files count against.
    pub limits: assistants_core::limits::ProjectLimits,
    pub llm: Arc<Llm>,
    pub bus: Arc<dyn EventBus>,
    /// Opens the client secrets runs keep sealed (an MCP server's headers).
    pub seal: Arc<assistants_core::seal::SealKey>,
    /// How long a claim lasts without renewal (the watcher renews it every third of that):
    /// how soon another worker resumes the runs of a worker that died.
    pub lease_secs: i64,
    /// Leases this node holds (run id → token), handed back on shutdown so another node (or
    /// this one after a restart) resumes the runs at once instead of after the lease lapses.
    pub held: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// A claimed run being driven.
struct Ctx {
    project: String,
    run: Run,
    rec: EngineRecord,
    token: i64,
    /// Fired when the run is being cancelled or the lease was lost.
    stop: CancellationToken,
    /// The position of the next recorded event (background responses).
    recorded: std::sync::atomic::AtomicI64,
}

/// Whether the loop goes on after an action.
enum Flow {
    Continue,
    /// The run was interrupted (cancel, lost lease): find out how and end accordingly.
    Interrupted,
}

/// What an LLM call produced so far (kept by the caller, so an aborted call's text survives).
#[derive(Default)]
struct Progress {
    text: String,
    published: String,
    message_open: bool,
    tool_step_open: bool,
    call_ids: Vec<String>,
    /// Calls (by position) shown as file_search, whose argument fragments are not streamed.
    file_search_positions: Vec<usize>,
    /// Calls (by position) shown as code_interpreter: their arguments so far, and how much of
    /// the code in them was streamed as `input`.
    code_positions: std::collections::HashMap<usize, (String, usize)>,
    finish_reason: Option<String>,
    usage: Option<(u64, u64)>,
    /// Reasoning the model streamed (kept for responses, which show it as an item).
    reasoning: String,
}

/// Why driving a run stopped with an error: its state could not be read or written, or its
/// events could not be listened to. The run is left as last persisted and is retried (the
/// sweeper re-queues it once its lease lapses). What goes wrong *in* a run — the upstream,
/// a strategy, a tool — is not an error here: it ends the run as `failed`, or becomes a tool
/// result the strategy sees.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("listening to the run's events: {0:#}")]
    Events(anyhow::Error),
    #[error("serialising a run step: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0} stopped: {1}")]
    Blocking(&'static str, tokio::task::JoinError),
}

type EngineResult<T> = Result<T, EngineError>;

/// Runs CPU-bound work (tokenising a history) on the blocking pool, so a long prompt cannot
/// stall the async threads that serve every other run and request (a demoted run's on the
/// low-priority pool: `lowprio::spawn_blocking`).
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> EngineResult<T> {
    assistants_core::lowprio::spawn_blocking(work)
        .await
        .map_err(|e| EngineError::Blocking(what, e))
}

fn new_ids() -> ActionIds {
    ActionIds {
        message_step: StepId::new(),
        message: MessageId::new(),
        tool_step: StepId::new(),
    }
}

impl Engine {
    /// Drives a run if it needs a worker and nobody else holds it; returns once it waits for
    /// the client, ends, or is taken away.
    pub async fn drive(&self, run_id: &str) -> EngineResult<()> {
        let Some(claim) = self.store.claim_run(run_id, self.lease_secs).await? else {
            return Ok(());
        };
        self.held_leases().insert(run_id.to_string(), claim.token);
        // Every log line of this run carries its thread too (the worker's span has the run id).
        tracing::Span::current().record("thread_id", claim.run.thread_id.as_str());
        let stop = CancellationToken::new();
        let watcher = match self.watch(run_id, claim.token, stop.clone()).await {
            Ok(w) => w,
            Err(e) => {
                self.held_leases().remove(run_id);
                return Err(e);
            }
        };
        // A background response's record goes on after what earlier attempts recorded.
        let recorded = match claim.engine.response.as_ref().filter(|r| r.background) {
            Some(r) => match self.store.last_response_event(&r.id).await {
                Ok(n) => n + 1,
                Err(e) => {
                    self.held_leases().remove(run_id);
                    return Err(e.into());
                }
            },
            None => 0,
        };
        let mut rec = claim.engine;
        // The headers were sealed to the response, or to the run of an assistant.
        let owner = match &rec.response {
            Some(r) => r.id.to_string(),
            None => claim.run.id.to_string(),
        };
        for server in rec.mcp_servers_mut() {
            server.open_headers(&self.seal, &owner);
        }
        let mut ctx = Ctx {
            project: claim.project,
            run: claim.run,
            rec,
            token: claim.token,
            stop,
            recorded: recorded.into(),
        };
        let result = self.run_loop(&mut ctx).await;
        drop(watcher);
        self.held_leases().remove(run_id);
        result
    }

    fn held_leases(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, i64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives back the leases of runs this node was driving when it stopped (their tasks are
    /// gone; the persisted record says where each run resumes).
    pub async fn release_held(&self) {
        let held: Vec<(String, i64)> = self.held_leases().drain().collect();
        for (run_id, token) in held {
            if let Err(e) = self.store.release_lease(&run_id, token).await {
                tracing::warn!(run_id, error = %e, "could not hand back a run lease");
            }
        }
    }

    /// Renews the lease while the run is driven, and fires `stop` when the run is being
    /// cancelled (heard on the bus at once, or seen at the next renewal) or the lease is lost.
    /// The watcher stops when the drive ends, however it ends (an error or a panic must not
    /// leave a task renewing the lease of a run nobody drives).
    async fn watch(
        &self,
        run_id: &str,
        token: i64,
        stop: CancellationToken,
    ) -> EngineResult<AbortOnDrop<()>> {
        let mut sub = self
            .bus
            .subscribe(run_id)
            .await
            .map_err(EngineError::Events)?;
        let store = self.store.clone();
        let id = run_id.to_string();
        let lease_secs = self.lease_secs;
        Ok(AbortOnDrop(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_millis(lease_secs as u64 * 1000 / 3));
            tick.tick().await;
            let mut listening = true;
            let mut renewed = std::time::Instant::now();
            loop {
                tokio::select! {
                    ev = sub.recv(), if listening => match ev {
                        Some(e) if e.event == RunStatus::Cancelling.event() => stop.cancel(),
                        Some(_) => {}
                        None => listening = false,
                    },
                    _ = tick.tick() => match store.renew_lease(&id, token, lease_secs).await {
                        Ok(Some(RunStatus::Cancelling)) | Ok(None) => stop.cancel(),
                        Ok(Some(_)) => renewed = std::time::Instant::now(),
                        Err(e) => {
                            tracing::warn!(run_id = %id, error = %e, "could not renew a run lease");
                            // Past the lease another worker may own the run: stop driving it.
                            if renewed.elapsed() >= Duration::from_secs(lease_secs as u64) {
                                stop.cancel();
                            }
                        }
                    },
                }
            }
        })))
    }

    async fn publish(&self, ctx: &Ctx, event: &str, data: &impl serde::Serialize) {
        self.send(ctx, StreamEvent::new(event, data)).await;
    }

    /// Publishes an event of the run. A background response's events are recorded first, in
    /// order, so that a client can stream it again from any point.
    async fn send(&self, ctx: &Ctx, mut event: StreamEvent) {
        if ctx.rec.response.as_ref().is_some_and(|r| r.background) {
            let n = ctx
                .recorded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::responses::record(&self.store, &ctx.rec, Some(ctx.token), n, &mut event).await;
        }
        self.bus.publish(&ctx.run.id, event).await;
    }

    /// A fenced write transaction, if the lease is ours and the run is in `expected`.
    async fn tx(&self, ctx: &mut Ctx, expected: RunStatus) -> EngineResult<Option<Tx>> {
        let Some((tx, locked)) = self.store.engine_tx(&ctx.run.id, ctx.token).await? else {
            return Ok(None);
        };
        if locked.status != expected {
            return Ok(None);
        }
        // Metadata belongs to the API (modify run); never write back a stale copy.
        ctx.run.metadata = locked.run.metadata;
        Ok(Some(tx))
    }

    /// Writes the run and engine record and commits; `release` gives the lease up.
    async fn commit(&self, tx: Tx, ctx: &Ctx, release: bool) -> EngineResult<()> {
        let engine = ctx.rec.to_json()?;
        self.commit_json(tx, ctx, &engine, release).await
    }

    /// [`Engine::commit`] with the engine record serialised already.
    async fn commit_json(
        &self,
        mut tx: Tx,
        ctx: &Ctx,
        engine: &EngineJson,
        release: bool,
    ) -> EngineResult<()> {
        let lease = if release { 0 } else { self.lease_secs };
        self.store
            .write_run_in(&mut tx, &ctx.run, engine, Some(lease))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Persists the run as it is now (`release` gives the lease up); false if the run was
    /// taken away or moved by the API.
    async fn save(&self, ctx: &mut Ctx, expected: RunStatus, release: bool) -> EngineResult<bool> {
        // The record does not change in the transaction (the run's metadata may): serialised
        // before it opens, so that SQLite's writer does not wait for it (`EngineJson`).
        let engine = ctx.rec.to_json()?;
        match self.tx(ctx, expected).await? {
            Some(tx) => {
                self.commit_json(tx, ctx, &engine, release).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn run_loop(&self, ctx: &mut Ctx) -> EngineResult<()> {
        match ctx.run.status {
            RunStatus::Cancelling => return self.interrupted(ctx).await,
            RunStatus::Queued => {
                transitions::start(&mut ctx.run);
                if !self.save(ctx, RunStatus::Queued, false).await? {
                    return self.interrupted(ctx).await;
                }
                self.publish(ctx, RunStatus::InProgress.event(), &ctx.run)
                    .await;
            }
            _ => {}
        }
        let strategy = match self.plugins.by_digest(&ctx.rec.digest).await {
            Ok(p) => p,
            Err(e) => {
                let msg = format!(
                    "the run's strategy '{}' (component {}) is not available: {e:#}",
                    ctx.rec.strategy, ctx.rec.digest
                );
                return self.fail(ctx, "server_error", msg).await;
            }
        };
        // The run's MCP servers: their tools listed and bound, a response's approved calls run.
        if !self.mcp_prelude(ctx).await? {
            return self.interrupted(ctx).await;
        }
        let input =
            input::build(&self.store, &self.plugins, &ctx.project, &ctx.run, &ctx.rec).await?;
        let (truncation, max_prompt) = (
            ctx.run.truncation_strategy.clone(),
            ctx.run.max_prompt_tokens,
        );
        let input = blocking("fitting the history", move || {
            input::fit(input, &truncation, max_prompt)
        })
        .await?;
        loop {
            if ctx.stop.is_cancelled() {
                return self.interrupted(ctx).await;
            }
            if ctx.run.expires_at.is_some_and(|e| e <= now()) {
                return self.end(ctx, Ending::Expired, RunStatus::InProgress).await;
            }
            let flow = match ctx.rec.next.clone() {
                Next::Done | Next::AwaitOutputs => return Ok(()),
                Next::Step { event } => self.step(ctx, &strategy, &input, event).await?,
                Next::Perform { action, event, ids } => match *action {
                    Action::CallLlm(req, mode) => match self.fresh_ids(ctx, &ids).await? {
                        Some(ids) => self.call_llm(ctx, &req, mode, &ids).await?,
                        None => Flow::Interrupted,
                    },
                    Action::CallTools(calls) => self.call_tools(ctx, calls, &ids).await?,
                    Action::RequireClientAction(calls) => {
                        return self.require_action(ctx, calls, &ids).await
                    }
                    Action::EmitMessage(text) => match self.fresh_ids(ctx, &ids).await? {
                        Some(ids) => self.emit_message(ctx, &text, &ids, event).await?,
                        None => Flow::Interrupted,
                    },
                    Action::Finish(reason) => return self.finish(ctx, reason).await,
                    Action::Fail(msg) => {
                        let msg =
                            format!("the strategy '{}' failed the run: {msg}", ctx.rec.strategy);
                        return self.fail(ctx, "server_error", msg).await;
                    }
                },
            };
            if let Flow::Interrupted = flow {
                return self.interrupted(ctx).await;
            }
        }
    }

    /// The ids to perform an answer-producing action under. Normally the ones chosen with
    /// the action; but if an earlier attempt left its message or steps behind (the worker died
    /// or the action failed half-way), those are deleted and the action runs again under new
    /// ids. Live streams are told the old ones ended, so they never see one message streamed
    /// twice, and the thread never keeps a half-written duplicate. `None`: the run was taken
    /// away.
    async fn fresh_ids(&self, ctx: &mut Ctx, ids: &ActionIds) -> EngineResult<Option<ActionIds>> {
        let message = self
            .store
            .find::<Message>(&ctx.project, &ids.message)
            .await?;
        let mut steps = Vec::new();
        for id in [&ids.message_step, &ids.tool_step] {
            if let Some(s) = self.store.find::<RunStep>(&ctx.project, id).await? {
                steps.push(s);
            }
        }
        if message.is_none() && steps.is_empty() {
            return Ok(Some(ids.clone()));
        }
        tracing::info!(run_id = %ctx.run.id, "repeating an interrupted action under new ids");
        let fresh = new_ids();
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(None);
        };
        self.store
            .delete_unfinished_in(
                &mut tx,
                &ctx.run.id,
                &ids.message,
                &[&ids.message_step, &ids.tool_step],
            )
            .await?;
        if let Next::Perform { ids: stored, .. } = &mut ctx.rec.next {
            *stored = fresh.clone();
        }
        self.commit(tx, ctx, false).await?;
        if let Some(mut m) = message.filter(|m| m.status == MessageStatus::InProgress) {
            m.status = MessageStatus::Incomplete;
            m.incomplete_at = Some(now());
            m.incomplete_details = Some(json!({"reason": "run_failed"}));
            self.publish(ctx, "thread.message.incomplete", &m).await;
        }
        for mut s in steps
            .into_iter()
            .filter(|s| s.status == StepStatus::InProgress)
        {
            s.status = StepStatus::Cancelled;
            s.cancelled_at = Some(now());
            s.usage = Some(usage(0, 0));
            self.publish(ctx, "thread.run.step.cancelled", &s).await;
        }
        Ok(Some(fresh))
    }

    /// Calls the strategy with `event` and persists its state and chosen action.
    async fn step(
        &self,
        ctx: &mut Ctx,
        strategy: &Plugin,
        input: &RunInput,
        event: Event,
    ) -> EngineResult<Flow> {
        if let Event::OutputsSubmitted(results) = &event {
            if !self.close_tool_step(ctx, results).await? {
                return Ok(Flow::Interrupted);
            }
        }
        ctx.rec.steps += 1;
        if ctx.rec.steps > MAX_STEPS {
            let msg = format!(
                "the strategy '{}' took more than {MAX_STEPS} steps",
                ctx.rec.strategy
            );
            self.fail(ctx, "server_error", msg).await?;
            return Ok(Flow::Continue);
        }
        let state = ctx.rec.state_bytes();
        let result = tokio::select! {
            r = self.plugins.step(strategy, input, &state, &event)
                .instrument(tracing::info_span!("strategy.step", strategy = %strategy.manifest.id)) => r,
            _ = ctx.stop.cancelled() => return Ok(Flow::Interrupted),
        };
        match result {
            Err(msg) => {
                let msg = format!("the strategy '{}' failed: {msg}", ctx.rec.strategy);
                self.fail(ctx, "server_error", msg).await?;
                Ok(Flow::Continue)
            }
            Ok(r) => {
                ctx.rec.set_state(&r.state);
                ctx.rec.next = Next::Perform {
                    action: Box::new(r.action),
                    event,
                    ids: new_ids(),
                };
                Ok(if self.save(ctx, RunStatus::InProgress, false).await? {
                    Flow::Continue
                } else {
                    Flow::Interrupted
                })
            }
        }
    }

    /// The run was stopped from outside: end it as cancelled if that is what happened; if the
    /// lease was lost, another worker owns it now and there is nothing to do.
    async fn interrupted(&self, ctx: &mut Ctx) -> EngineResult<()> {
        let Some((tx, locked)) = self.store.engine_tx(&ctx.run.id, ctx.token).await? else {
            return Ok(());
        };
        drop(tx);
        match locked.status {
            RunStatus::Cancelling => {
                self.end(ctx, Ending::Cancelled, RunStatus::Cancelling)
                    .await
            }
            s if s.is_active() => {
                // Spurious stop: hand the run back; the sweeper queues it again.
                if let Some(tx) = self.tx(ctx, s).await? {
                    transitions::hand_back(&mut ctx.run, s);
                    self.commit(tx, ctx, true).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Ends the run as `ending` says, if it is still in `expected` and ours.
    async fn end(&self, ctx: &mut Ctx, ending: Ending, expected: RunStatus) -> EngineResult<()> {
        let Some(mut tx) = self.tx(ctx, expected).await? else {
            // Moved meanwhile (a cancel landed) or taken away: end it the way that happened,
            // rather than sit on the lease until it lapses.
            if expected != RunStatus::Cancelling {
                return Box::pin(self.interrupted(ctx)).await;
            }
            return Ok(());
        };
        // The run and its unfinished children end in one transaction.
        let events = transitions::end_in(
            &self.store,
            &mut tx,
            &ctx.project,
            &mut ctx.run,
            &mut ctx.rec,
            &ending,
        )
        .await?;
        self.commit(tx, ctx, true).await?;
        for e in events {
            self.send(ctx, e).await;
        }
        let status = ending.status();
        tracing::info!(run_id = %ctx.run.id, status = %status, "run ended");
        let m = assistants_core::obs::metrics::metrics();
        m.run_finished(status.as_str());
        m.run_phase("total", (now() - ctx.run.created_at) as f64);
        Ok(())
    }

    async fn fail(&self, ctx: &mut Ctx, code: &str, message: String) -> EngineResult<()> {
        tracing::warn!(run_id = %ctx.run.id, code, %message, "run failed");
        let ending = Ending::Failed {
            code: code.to_string(),
            message,
        };
        self.end(ctx, ending, RunStatus::InProgress).await
    }

    async fn incomplete(&self, ctx: &mut Ctx, reason: &str) -> EngineResult<()> {
        let ending = Ending::Incomplete {
            reason: reason.to_string(),
        };
        self.end(ctx, ending, RunStatus::InProgress).await
    }

    async fn finish(&self, ctx: &mut Ctx, reason: FinishReason) -> EngineResult<()> {
        match reason {
            FinishReason::Completed => {
                self.end(ctx, Ending::Completed, RunStatus::InProgress)
                    .await
            }
            FinishReason::MaxCompletionTokens => {
                self.incomplete(ctx, "max_completion_tokens").await
            }
            FinishReason::MaxPromptTokens => self.incomplete(ctx, "max_prompt_tokens").await,
        }
    }
}
