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

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::input;
use crate::publish::{Filter, Mode};
use assistants_core::bus::{EventBus, StreamEvent};
use assistants_core::llm::calls::Assembler;
use assistants_core::llm::{Llm, LlmError};
use assistants_core::model::engine::{
    Action, ActionIds, EngineRecord, Event, FinishReason, LlmRequest, LlmResult, Next,
    OpenToolStep, PublishMode, RunInput, Source, ToolBinding, ToolCall, ToolResult,
};
use assistants_core::model::ids::{new_id, now, IdKind};
use assistants_core::model::run::{usage, Run, RunStatus, RunStep};
use assistants_core::model::Message;
use assistants_core::plugins::bindings::CallContext;
use assistants_core::plugins::{error_text, Plugin, PluginHost};
use assistants_core::store::{Store, Tx};

/// The plugin id whose calls are recorded in the `file_search` step shape and cited.
const FILE_SEARCH: &str = "file_search";
/// Strategy steps one run may take: a guard against strategies that never finish.
const MAX_STEPS: u32 = 1000;

pub struct Engine {
    pub store: Store,
    pub plugins: Arc<PluginHost>,
    pub llm: Arc<Llm>,
    pub bus: Arc<dyn EventBus>,
    /// How long a claim lasts without renewal (the watcher renews it every third of that):
    /// how soon another worker resumes the runs of a worker that died.
    pub lease_secs: i64,
    /// Leases this node holds (run id → token), handed back on shutdown so another node (or
    /// this one after a restart) resumes the runs at once instead of after the lease lapses.
    pub held: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// The lease watcher of a run: stopped when the drive ends, however it ends (an error or a
/// panic must not leave a task renewing the lease of a run nobody drives).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A claimed run being driven.
struct Ctx {
    project: String,
    run: Run,
    rec: EngineRecord,
    token: i64,
    /// Fired when the run is being cancelled or the lease was lost.
    stop: CancellationToken,
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
    finish_reason: Option<String>,
    usage: Option<(u64, u64)>,
}

fn new_ids() -> ActionIds {
    ActionIds {
        message_step: new_id(IdKind::Step),
        message: new_id(IdKind::Message),
        tool_step: new_id(IdKind::Step),
    }
}

/// The citable passages of a tool's output: each annotation whose indices cover a label
/// `【s:n†name】` in the text (a `url` annotation makes a web source, a `file` one a file source).
fn labelled_sources(out: &assistants_core::plugins::bindings::ToolOutput) -> Vec<Source> {
    use assistants_core::plugins::bindings::Annotation;
    let chars: Vec<char> = out.text.chars().collect();
    let label_at = |start: u32, end: u32| {
        let (s, e) = (start as usize, end as usize);
        (s < e && e <= chars.len())
            .then(|| chars[s..e].iter().collect::<String>())
            .and_then(|t| crate::citations::labels(&t).into_iter().next())
    };
    out.annotations
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let (start, end, file_id, url, title) = match a {
                Annotation::Url(u) => (
                    u.start_index,
                    u.end_index,
                    String::new(),
                    Some(u.url.clone()),
                    u.title.clone(),
                ),
                Annotation::File(f) => (f.start_index, f.end_index, f.file_id.clone(), None, None),
            };
            let label = label_at(start, end)?;
            Some(Source {
                sequence: label.sequence.unwrap_or(0),
                index: label.index.unwrap_or(i as u32),
                file_id,
                filename: label.filename,
                url,
                title,
            })
        })
        .collect()
}

/// Citation annotations for the labels in `text` that name a passage this run was given: by
/// its exact `sequence:index`, else by name (models garble numbers). File sources become
/// `file_citation`s, web sources `url_citation`s (the shape the Responses API uses).
fn citations(text: &str, sources: &[Source]) -> Vec<Value> {
    crate::citations::labels(text)
        .into_iter()
        .filter_map(|l| {
            let exact = sources.iter().find(|s| {
                Some(s.sequence) == l.sequence
                    && Some(s.index) == l.index
                    && s.filename == l.filename
            });
            let source = exact.or_else(|| sources.iter().find(|s| s.filename == l.filename))?;
            Some(match &source.url {
                Some(url) => json!({
                    "type": "url_citation",
                    "text": l.text,
                    "start_index": l.start_index,
                    "end_index": l.end_index,
                    "url": url,
                    "title": source.title.clone().unwrap_or_else(|| source.filename.clone()),
                }),
                None => json!({
                    "type": "file_citation",
                    "text": l.text,
                    "start_index": l.start_index,
                    "end_index": l.end_index,
                    "file_citation": {"file_id": source.file_id},
                }),
            })
        })
        .collect()
}

impl Engine {
    /// Drives a run if it needs a worker and nobody else holds it; returns once it waits for
    /// the client, ends, or is taken away.
    pub async fn drive(&self, run_id: &str) -> anyhow::Result<()> {
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
        let mut ctx = Ctx {
            project: claim.project,
            run: claim.run,
            rec: claim.engine,
            token: claim.token,
            stop,
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
    async fn watch(
        &self,
        run_id: &str,
        token: i64,
        stop: CancellationToken,
    ) -> anyhow::Result<AbortOnDrop> {
        let mut sub = self.bus.subscribe(run_id).await?;
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
        self.bus
            .publish(&ctx.run.id, StreamEvent::new(event, data))
            .await;
    }

    /// A fenced write transaction, if the lease is ours and the run is in `expected`.
    async fn tx(&self, ctx: &mut Ctx, expected: RunStatus) -> anyhow::Result<Option<Tx>> {
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
    async fn commit(&self, mut tx: Tx, ctx: &Ctx, release: bool) -> anyhow::Result<()> {
        let lease = if release { 0 } else { self.lease_secs };
        self.store
            .write_run_in(&mut tx, &ctx.run, &ctx.rec, Some(lease))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Persists the run as it is now; false if the run was taken away or moved by the API.
    async fn save(&self, ctx: &mut Ctx, expected: RunStatus) -> anyhow::Result<bool> {
        match self.tx(ctx, expected).await? {
            Some(tx) => {
                self.commit(tx, ctx, false).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn run_loop(&self, ctx: &mut Ctx) -> anyhow::Result<()> {
        match ctx.run.status() {
            RunStatus::Cancelling => return self.interrupted(ctx).await,
            RunStatus::Queued => {
                ctx.run.set_status(RunStatus::InProgress, now());
                if !self.save(ctx, RunStatus::Queued).await? {
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
        let input =
            input::build(&self.store, &self.plugins, &ctx.project, &ctx.run, &ctx.rec).await?;
        loop {
            if ctx.stop.is_cancelled() {
                return self.interrupted(ctx).await;
            }
            if ctx.run.expires_at.is_some_and(|e| e <= now()) {
                return self
                    .end(ctx, RunStatus::Expired, RunStatus::InProgress, "expired")
                    .await;
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
    async fn fresh_ids(&self, ctx: &mut Ctx, ids: &ActionIds) -> anyhow::Result<Option<ActionIds>> {
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
        if let Some(mut m) = message.filter(|m| m.status == "in_progress") {
            m.status = "incomplete".into();
            m.incomplete_at = Some(now());
            m.incomplete_details = Some(json!({"reason": "run_failed"}));
            self.publish(ctx, "thread.message.incomplete", &m).await;
        }
        for mut s in steps.into_iter().filter(|s| s.status == "in_progress") {
            s.status = "cancelled".into();
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
    ) -> anyhow::Result<Flow> {
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
                Ok(if self.save(ctx, RunStatus::InProgress).await? {
                    Flow::Continue
                } else {
                    Flow::Interrupted
                })
            }
        }
    }

    /// The run was stopped from outside: end it as cancelled if that is what happened; if the
    /// lease was lost, another worker owns it now and there is nothing to do.
    async fn interrupted(&self, ctx: &mut Ctx) -> anyhow::Result<()> {
        let Some((tx, locked)) = self.store.engine_tx(&ctx.run.id, ctx.token).await? else {
            return Ok(());
        };
        drop(tx);
        match locked.status {
            RunStatus::Cancelling => {
                self.end(
                    ctx,
                    RunStatus::Cancelled,
                    RunStatus::Cancelling,
                    "cancelled",
                )
                .await
            }
            s if s.is_active() => {
                // Spurious stop: hand the run back; the sweeper queues it again.
                if let Some(tx) = self.tx(ctx, s).await? {
                    ctx.run.status = s.as_str().into();
                    self.commit(tx, ctx, true).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Ends the run in a terminal `status`, closing its open steps as `step_status`.
    async fn end(
        &self,
        ctx: &mut Ctx,
        status: RunStatus,
        expected: RunStatus,
        step_status: &str,
    ) -> anyhow::Result<()> {
        let Some(mut tx) = self.tx(ctx, expected).await? else {
            // Moved meanwhile (a cancel landed) or taken away: end it the way that happened,
            // rather than sit on the lease until it lapses.
            if expected != RunStatus::Cancelling {
                return Box::pin(self.interrupted(ctx)).await;
            }
            return Ok(());
        };
        ctx.run.set_status(status, now());
        ctx.run.usage = Some(usage(ctx.rec.prompt_tokens, ctx.rec.completion_tokens));
        ctx.rec.next = Next::Done;
        let open = ctx.rec.open_tool_step.take();
        // The run and its unfinished children end in one transaction.
        let events = crate::transitions::close_unfinished_in(
            &self.store,
            &mut tx,
            &ctx.project,
            &ctx.run,
            step_status,
            open.as_ref(),
            ctx.rec.include_content,
        )
        .await?;
        self.commit(tx, ctx, true).await?;
        for e in events {
            self.bus.publish(&ctx.run.id, e).await;
        }
        self.publish(ctx, status.event(), &ctx.run).await;
        tracing::info!(run_id = %ctx.run.id, status = %status, "run ended");
        let m = assistants_core::obs::metrics::metrics();
        m.run_finished(&status.to_string());
        m.run_phase("total", (now() - ctx.run.created_at) as f64);
        Ok(())
    }

    async fn fail(&self, ctx: &mut Ctx, code: &str, message: String) -> anyhow::Result<()> {
        tracing::warn!(run_id = %ctx.run.id, code, %message, "run failed");
        ctx.run.last_error = Some(json!({"code": code, "message": message}));
        self.end(ctx, RunStatus::Failed, RunStatus::InProgress, "failed")
            .await
    }

    async fn incomplete(&self, ctx: &mut Ctx, reason: &str) -> anyhow::Result<()> {
        ctx.run.incomplete_details = Some(json!({ "reason": reason }));
        self.end(
            ctx,
            RunStatus::Incomplete,
            RunStatus::InProgress,
            "completed",
        )
        .await
    }

    async fn finish(&self, ctx: &mut Ctx, reason: FinishReason) -> anyhow::Result<()> {
        match reason {
            FinishReason::Completed => {
                self.end(
                    ctx,
                    RunStatus::Completed,
                    RunStatus::InProgress,
                    "completed",
                )
                .await
            }
            FinishReason::MaxCompletionTokens => {
                self.incomplete(ctx, "max_completion_tokens").await
            }
            FinishReason::MaxPromptTokens => self.incomplete(ctx, "max_prompt_tokens").await,
        }
    }

    fn message(&self, ctx: &Ctx, id: &str) -> Message {
        Message {
            id: id.to_string(),
            object: "thread.message".into(),
            created_at: now(),
            thread_id: ctx.run.thread_id.clone(),
            status: "in_progress".into(),
            incomplete_details: None,
            completed_at: None,
            incomplete_at: None,
            role: "assistant".into(),
            content: vec![],
            assistant_id: Some(ctx.run.assistant_id.clone()),
            run_id: Some(ctx.run.id.clone()),
            attachments: vec![],
            metadata: Default::default(),
        }
    }

    fn run_step(&self, ctx: &Ctx, id: &str, kind: &str, details: Value) -> RunStep {
        RunStep {
            id: id.to_string(),
            object: "thread.run.step".into(),
            created_at: now(),
            run_id: ctx.run.id.clone(),
            assistant_id: ctx.run.assistant_id.clone(),
            thread_id: ctx.run.thread_id.clone(),
            kind: kind.into(),
            status: "in_progress".into(),
            cancelled_at: None,
            completed_at: None,
            expired_at: None,
            failed_at: None,
            last_error: None,
            step_details: details,
            usage: None,
            metadata: Default::default(),
        }
    }

    /// Creates the message step and the (empty, in-progress) message of an answer, and
    /// announces both.
    async fn open_message(&self, ctx: &mut Ctx, ids: &ActionIds) -> anyhow::Result<bool> {
        let step = self.run_step(
            ctx,
            &ids.message_step,
            "message_creation",
            json!({"type": "message_creation", "message_creation": {"message_id": ids.message}}),
        );
        let msg = self.message(ctx, &ids.message);
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(false);
        };
        self.store
            .upsert_in(
                &mut tx,
                &ctx.project,
                &step,
                &assistants_core::store::step_columns(&step),
            )
            .await?;
        self.store
            .upsert_in(
                &mut tx,
                &ctx.project,
                &msg,
                &assistants_core::store::message_columns(&msg),
            )
            .await?;
        tx.commit().await?;
        self.publish(ctx, "thread.run.step.created", &step).await;
        self.publish(ctx, "thread.run.step.in_progress", &step)
            .await;
        self.publish(ctx, "thread.message.created", &msg).await;
        self.publish(ctx, "thread.message.in_progress", &msg).await;
        Ok(true)
    }

    /// Completes (or, cut off by the token limit, marks incomplete) the answer message and
    /// its step, inside `tx`; returns the events to publish after the commit.
    async fn close_message(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        ids: &ActionIds,
        text: &str,
        cut_off: bool,
        step_usage: Option<(u64, u64)>,
    ) -> anyhow::Result<Vec<StreamEvent>> {
        let t = now();
        let mut msg = self.message(ctx, &ids.message);
        if let Some(existing) = self
            .store
            .find_in::<Message>(tx, &ctx.project, &ids.message)
            .await?
        {
            msg.created_at = existing.created_at;
        }
        let annotations = citations(text, &ctx.rec.sources);
        msg.content =
            vec![json!({"type": "text", "text": {"value": text, "annotations": annotations}})];
        let mut events = Vec::new();
        if !annotations.is_empty() {
            // Streamed text got no annotations as it went; they arrive in one delta before the
            // message completes (the SDKs merge them by index into the text part).
            let indexed: Vec<Value> = annotations
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let mut a = a.clone();
                    a["index"] = json!(i);
                    a
                })
                .collect();
            events.push(StreamEvent::new(
                "thread.message.delta",
                &json!({"id": ids.message, "object": "thread.message.delta",
                        "delta": {"content": [{"index": 0, "type": "text", "text": {"annotations": indexed}}]}}),
            ));
        }
        let msg_event = if cut_off {
            msg.status = "incomplete".into();
            msg.incomplete_at = Some(t);
            msg.incomplete_details = Some(json!({"reason": "max_tokens"}));
            "thread.message.incomplete"
        } else {
            msg.status = "completed".into();
            msg.completed_at = Some(t);
            "thread.message.completed"
        };
        let mut step = self.run_step(
            ctx,
            &ids.message_step,
            "message_creation",
            json!({"type": "message_creation", "message_creation": {"message_id": ids.message}}),
        );
        if let Some(existing) = self
            .store
            .find_in::<RunStep>(tx, &ctx.project, &ids.message_step)
            .await?
        {
            step.created_at = existing.created_at;
        }
        step.status = "completed".into();
        step.completed_at = Some(t);
        let (p, c) = step_usage.unwrap_or((0, 0));
        step.usage = Some(usage(p, c));
        self.store
            .upsert_in(
                tx,
                &ctx.project,
                &msg,
                &assistants_core::store::message_columns(&msg),
            )
            .await?;
        self.store
            .upsert_in(
                tx,
                &ctx.project,
                &step,
                &assistants_core::store::step_columns(&step),
            )
            .await?;
        events.push(StreamEvent::new(msg_event, &msg));
        events.push(StreamEvent::new("thread.run.step.completed", &step));
        Ok(events)
    }

    async fn call_llm(
        &self,
        ctx: &mut Ctx,
        req: &LlmRequest,
        mode: PublishMode,
        ids: &ActionIds,
    ) -> anyhow::Result<Flow> {
        // Budgets: the prompt of this call must fit what is left of max_prompt_tokens; the
        // answer may use what is left of max_completion_tokens.
        let prompt_estimate = input::request_tokens(req) as u64;
        if let Some(max) = ctx.run.max_prompt_tokens {
            if ctx.rec.prompt_tokens + prompt_estimate > max as u64 {
                self.incomplete(ctx, "max_prompt_tokens").await?;
                return Ok(Flow::Continue);
            }
        }
        let max_tokens = ctx
            .run
            .max_completion_tokens
            .map(|m| (m as u64).saturating_sub(ctx.rec.completion_tokens));
        if max_tokens == Some(0) {
            self.incomplete(ctx, "max_completion_tokens").await?;
            return Ok(Flow::Continue);
        }
        let body = input::request(&ctx.run, req, max_tokens);
        let mode = match mode {
            PublishMode::Message => Mode::Message,
            PublishMode::Silent => Mode::Silent,
            PublishMode::AfterMarker(m) => Mode::AfterMarker(m),
        };
        let mut progress = Progress::default();
        let mut calls = Assembler::default();
        let started = std::time::Instant::now();
        let outcome = {
            let stop = ctx.stop.clone();
            let model = body.get("model").and_then(|m| m.as_str()).unwrap_or("");
            let span = tracing::info_span!("llm.chat", model);
            let streaming = self
                .stream_llm(ctx, &body, mode, ids, &mut progress, &mut calls)
                .instrument(span);
            tokio::select! {
                r = streaming => Some(r),
                _ = stop.cancelled() => None,
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let model = body.get("model").and_then(Value::as_str).unwrap_or("");
        let result = match &outcome {
            None => Some("cancelled"),
            Some(Ok(Err(e))) => Some(e.code()),
            Some(Ok(Ok(_))) => Some("ok"),
            Some(Err(_)) => None,
        };
        if let Some(result) = result {
            let m = assistants_core::obs::metrics::metrics();
            m.llm_call("chat", model, result, seconds);
            m.run_phase("llm", seconds);
        }
        match outcome {
            None => {
                self.keep_partial(ctx, ids, &progress).await;
                return Ok(Flow::Interrupted);
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(Ok(false))) => return Ok(Flow::Interrupted),
            Some(Ok(Ok(true))) => {}
            Some(Ok(Err(e))) => {
                self.keep_partial(ctx, ids, &progress).await;
                self.fail(ctx, e.code(), e.message().to_string()).await?;
                return Ok(Flow::Continue);
            }
        }

        let tool_calls: Vec<ToolCall> = calls
            .finish()
            .into_iter()
            .zip(progress.call_ids.iter())
            .map(|(c, id)| ToolCall {
                id: id.clone(),
                name: c.name,
                arguments_json: c.arguments,
            })
            .collect();
        let (prompt, completion) = progress.usage.unwrap_or_else(|| {
            // Servers that do not report usage: count it ourselves.
            let args: String = tool_calls
                .iter()
                .map(|c| c.arguments_json.as_str())
                .collect();
            (
                prompt_estimate,
                assistants_core::tokens::count_tokens(&format!("{}{args}", progress.text)) as u64,
            )
        });
        ctx.rec.prompt_tokens += prompt;
        ctx.rec.completion_tokens += completion;
        let finish_reason = progress.finish_reason.clone().unwrap_or_else(|| {
            if tool_calls.is_empty() {
                "stop".into()
            } else {
                "tool_calls".into()
            }
        });
        let cut_off = finish_reason == "length";

        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(Flow::Interrupted);
        };
        let mut events = Vec::new();
        if progress.message_open {
            let step_usage = (!progress.tool_step_open).then_some((prompt, completion));
            events = self
                .close_message(&mut tx, ctx, ids, &progress.published, cut_off, step_usage)
                .await?;
        }
        if progress.tool_step_open {
            let mut step = self.tool_step(ctx, &ids.tool_step, &tool_calls);
            if let Some(existing) = self
                .store
                .find_in::<RunStep>(&mut tx, &ctx.project, &ids.tool_step)
                .await?
            {
                step.created_at = existing.created_at;
            }
            self.store
                .upsert_in(
                    &mut tx,
                    &ctx.project,
                    &step,
                    &assistants_core::store::step_columns(&step),
                )
                .await?;
            ctx.rec.open_tool_step = Some(OpenToolStep {
                id: ids.tool_step.clone(),
                prompt_tokens: prompt,
                completion_tokens: completion,
            });
        }
        ctx.rec.next = Next::Step {
            event: Event::LlmCompleted(LlmResult {
                text: progress.text.clone(),
                tool_calls,
                finish_reason,
                prompt_tokens: prompt as u32,
                completion_tokens: completion as u32,
            }),
        };
        self.commit(tx, ctx, false).await?;
        for e in events {
            self.bus.publish(&ctx.run.id, e).await;
        }
        Ok(Flow::Continue)
    }

    /// Streams one LLM call, publishing message text and tool-call deltas as they arrive.
    /// `Ok(Ok(false))`: the run was taken away mid-call.
    async fn stream_llm(
        &self,
        ctx: &mut Ctx,
        body: &Value,
        mode: Mode,
        ids: &ActionIds,
        p: &mut Progress,
        calls: &mut Assembler,
    ) -> anyhow::Result<Result<bool, LlmError>> {
        use futures::StreamExt;
        let mut stream = match self.llm.stream(body).await {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let mut filter = Filter::new(mode);
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            if chunk.usage.is_some() {
                p.usage = chunk.usage;
            }
            if chunk.finish_reason.is_some() {
                p.finish_reason = chunk.finish_reason;
            }
            if !chunk.content.is_empty() {
                p.text.push_str(&chunk.content);
                let visible = filter.push(&chunk.content);
                // Text after tool calls started belongs to no message (one active step at a
                // time); the strategy still gets it in the result.
                if !visible.is_empty() && !p.tool_step_open {
                    if !p.message_open {
                        if !self.open_message(ctx, ids).await? {
                            return Ok(Ok(false));
                        }
                        p.message_open = true;
                    }
                    p.published.push_str(&visible);
                    let delta = json!({
                        "id": ids.message,
                        "object": "thread.message.delta",
                        "delta": {"content": [{"index": 0, "type": "text", "text": {"value": visible}}]},
                    });
                    self.publish(ctx, "thread.message.delta", &delta).await;
                }
            }
            for fragment in chunk.tool_calls {
                if !p.tool_step_open {
                    if p.message_open {
                        // Close the answer so far before the tool step starts.
                        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
                            return Ok(Ok(false));
                        };
                        let events = self
                            .close_message(&mut tx, ctx, ids, &p.published, false, None)
                            .await?;
                        tx.commit().await?;
                        for e in events {
                            self.bus.publish(&ctx.run.id, e).await;
                        }
                        p.message_open = false;
                    }
                    let step = self.tool_step(ctx, &ids.tool_step, &[]);
                    let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
                        return Ok(Ok(false));
                    };
                    self.store
                        .upsert_in(
                            &mut tx,
                            &ctx.project,
                            &step,
                            &assistants_core::store::step_columns(&step),
                        )
                        .await?;
                    tx.commit().await?;
                    self.publish(ctx, "thread.run.step.created", &step).await;
                    self.publish(ctx, "thread.run.step.in_progress", &step)
                        .await;
                    p.tool_step_open = true;
                }
                let added = calls.push(fragment);
                let call = if added.first {
                    let id = new_id(IdKind::ToolCall);
                    p.call_ids.push(id.clone());
                    if Self::is_file_search(ctx, &added.name) {
                        // Its arguments are the model's query, not shown in file_search steps.
                        p.file_search_positions.push(added.position);
                        json!({"index": added.position, "id": id, "type": "file_search", "file_search": {}})
                    } else {
                        json!({"index": added.position, "id": id, "type": "function",
                               "function": {"name": added.name, "arguments": added.arguments, "output": null}})
                    }
                } else if p.file_search_positions.contains(&added.position)
                    || (added.arguments.is_empty() && added.name.is_empty())
                {
                    continue;
                } else {
                    // Strings concatenate on the client: send only what is new.
                    let mut function = json!({"arguments": added.arguments});
                    if !added.name.is_empty() {
                        function["name"] = json!(added.name);
                    }
                    json!({"index": added.position, "type": "function", "function": function})
                };
                let delta = json!({
                    "id": ids.tool_step,
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
                });
                self.publish(ctx, "thread.run.step.delta", &delta).await;
            }
        }
        // A message left open (stream ended) is closed by the caller with the final usage.
        Ok(Ok(true))
    }

    /// Saves the text an interrupted call had streamed into its message (best-effort; the
    /// message is then marked incomplete when the run ends).
    async fn keep_partial(&self, ctx: &Ctx, ids: &ActionIds, p: &Progress) {
        if !p.message_open {
            return;
        }
        let result: anyhow::Result<()> = async {
            // Fenced like every engine write: only while the run is still ours.
            let Some((mut tx, _)) = self.store.engine_tx(&ctx.run.id, ctx.token).await? else {
                return Ok(());
            };
            let Some(mut m) = self
                .store
                .find_in::<Message>(&mut tx, &ctx.project, &ids.message)
                .await?
            else {
                return Ok(());
            };
            m.content =
                vec![json!({"type": "text", "text": {"value": p.published, "annotations": []}})];
            self.store
                .upsert_in(
                    &mut tx,
                    &ctx.project,
                    &m,
                    &assistants_core::store::message_columns(&m),
                )
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(run_id = %ctx.run.id, error = %e, "could not keep the partial answer");
        }
    }

    /// Whether the model's function `name` is the file_search tool (recorded in its own
    /// step shape, as the SDKs expect, rather than as a function call).
    fn is_file_search(ctx: &Ctx, name: &str) -> bool {
        ctx.rec
            .tools
            .iter()
            .any(|b| b.exposed == name && b.plugin == FILE_SEARCH)
    }

    /// A call as a step lists it before its result is known.
    fn call_entry(ctx: &Ctx, c: &ToolCall) -> Value {
        if Self::is_file_search(ctx, &c.name) {
            json!({"id": c.id, "type": "file_search", "file_search": {}})
        } else {
            json!({"id": c.id, "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments_json, "output": null}})
        }
    }

    /// A `tool_calls` step with these calls (outputs not yet known).
    fn tool_step(&self, ctx: &Ctx, id: &str, calls: &[ToolCall]) -> RunStep {
        let calls: Vec<Value> = calls.iter().map(|c| Self::call_entry(ctx, c)).collect();
        self.run_step(
            ctx,
            id,
            "tool_calls",
            json!({"type": "tool_calls", "tool_calls": calls}),
        )
    }

    /// The step that shows `calls`: the open one from the LLM call that made them, or a new
    /// one (strategies like ReAct choose calls from text, with no step streamed yet).
    async fn ensure_tool_step(
        &self,
        ctx: &mut Ctx,
        calls: &[ToolCall],
        ids: &ActionIds,
    ) -> anyhow::Result<Option<String>> {
        if let Some(open) = &ctx.rec.open_tool_step {
            if let Some(step) = self.store.find::<RunStep>(&ctx.project, &open.id).await? {
                let known: Vec<&str> = step
                    .step_details
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.get("id").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                if calls.iter().all(|c| known.contains(&c.id.as_str())) {
                    return Ok(Some(open.id.clone()));
                }
            }
        }
        let step = self.tool_step(ctx, &ids.tool_step, calls);
        let existed = self
            .store
            .find::<RunStep>(&ctx.project, &ids.tool_step)
            .await?
            .is_some();
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(None);
        };
        if !existed {
            self.store
                .upsert_in(
                    &mut tx,
                    &ctx.project,
                    &step,
                    &assistants_core::store::step_columns(&step),
                )
                .await?;
        }
        ctx.rec.open_tool_step = Some(OpenToolStep {
            id: ids.tool_step.clone(),
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        self.commit(tx, ctx, false).await?;
        if !existed {
            self.publish(ctx, "thread.run.step.created", &step).await;
            self.publish(ctx, "thread.run.step.in_progress", &step)
                .await;
            let named: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut entry = Self::call_entry(ctx, c);
                    entry["index"] = json!(i);
                    entry
                })
                .collect();
            let delta = json!({"id": step.id, "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": named}}});
            self.publish(ctx, "thread.run.step.delta", &delta).await;
        }
        Ok(Some(ids.tool_step.clone()))
    }

    /// Writes outputs into the open tool step; completes it when every call has one. Returns
    /// the events to publish (inside the caller's transaction).
    async fn record_outputs(
        &self,
        tx: &mut Tx,
        ctx: &mut Ctx,
        results: &[ToolResult],
        replacements: &std::collections::HashMap<String, Value>,
    ) -> anyhow::Result<Vec<StreamEvent>> {
        let Some(open) = ctx.rec.open_tool_step.clone() else {
            return Ok(vec![]);
        };
        let Some(mut step) = self
            .store
            .find_in::<RunStep>(tx, &ctx.project, &open.id)
            .await?
        else {
            return Ok(vec![]);
        };
        if let Some(list) = step
            .step_details
            .get_mut("tool_calls")
            .and_then(Value::as_array_mut)
        {
            for c in list.iter_mut() {
                let id = c
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(entry) = replacements.get(&id) {
                    *c = entry.clone();
                } else if let Some(r) = results.iter().find(|r| r.tool_call_id == id) {
                    c["function"]["output"] = json!(r.output);
                }
            }
        }
        let answered = |c: &Value| {
            !c["function"]["output"].is_null() || c.pointer("/file_search/results").is_some()
        };
        let done = step
            .step_details
            .get("tool_calls")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().all(answered));
        let mut events = Vec::new();
        if done {
            step.status = "completed".into();
            step.completed_at = Some(now());
            step.usage = Some(usage(open.prompt_tokens, open.completion_tokens));
            ctx.rec.open_tool_step = None;
            let mut shown = serde_json::to_value(&step)?;
            if !ctx.rec.include_content {
                assistants_core::model::run::strip_result_content(&mut shown);
            }
            events.push(StreamEvent::new("thread.run.step.completed", &shown));
        }
        self.store
            .upsert_in(
                tx,
                &ctx.project,
                &step,
                &assistants_core::store::step_columns(&step),
            )
            .await?;
        Ok(events)
    }

    /// Applies the client's outputs to the waiting tool step before the strategy sees them.
    async fn close_tool_step(&self, ctx: &mut Ctx, results: &[ToolResult]) -> anyhow::Result<bool> {
        if ctx.rec.open_tool_step.is_none() {
            return Ok(true);
        }
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(false);
        };
        let events = self
            .record_outputs(&mut tx, ctx, results, &Default::default())
            .await?;
        self.commit(tx, ctx, false).await?;
        for e in events {
            self.bus.publish(&ctx.run.id, e).await;
        }
        Ok(true)
    }

    async fn call_tools(
        &self,
        ctx: &mut Ctx,
        calls: Vec<ToolCall>,
        ids: &ActionIds,
    ) -> anyhow::Result<Flow> {
        if self.ensure_tool_step(ctx, &calls, ids).await?.is_none() {
            return Ok(Flow::Interrupted);
        }
        // Each call's options: the tool entry that enabled its plugin, and its sequence among
        // this run's calls of that plugin (file_search labels its passages with it).
        let mut prepared = Vec::with_capacity(calls.len());
        for call in calls {
            let binding = ctx
                .rec
                .tools
                .iter()
                .find(|b| b.exposed == call.name)
                .cloned();
            let mut options = json!({});
            if let Some(b) = &binding {
                let n = ctx.rec.plugin_calls.entry(b.plugin.clone()).or_insert(0);
                let entry = ctx
                    .run
                    .tools
                    .iter()
                    .find(|t| t.get("type").and_then(Value::as_str) == Some(b.plugin.as_str()))
                    .cloned()
                    .unwrap_or_else(|| json!({"type": b.plugin}));
                options = json!({"tool": entry, "sequence": *n});
                *n += 1;
            }
            prepared.push((call, binding, options));
        }
        if prepared
            .iter()
            .any(|(_, b, _)| b.as_ref().is_some_and(|b| b.plugin == FILE_SEARCH))
        {
            self.wait_for_ingestion(ctx).await;
        }
        let run_one = |(call, binding, options): (ToolCall, Option<ToolBinding>, Value)| {
            let context = CallContext {
                tool_call_id: call.id.clone(),
                run_id: Some(ctx.run.id.clone()),
                thread_id: Some(ctx.run.thread_id.clone()),
                assistant_id: Some(ctx.run.assistant_id.clone()),
                vector_store_ids: ctx.rec.vector_store_ids.clone(),
                options_json: options.to_string(),
            };
            let plugins = self.plugins.clone();
            async move {
                let (outcome, hits) = match &binding {
                    None => (
                        Err(format!(
                            "unknown tool '{}': this run offers no such tool",
                            call.name
                        )),
                        vec![],
                    ),
                    Some(b) => match plugins.by_digest(&b.digest).await {
                        Err(e) => (
                            Err(format!(
                                "the tool's plugin '{}' is not available: {e:#}",
                                b.plugin
                            )),
                            vec![],
                        ),
                        Ok(plugin) => {
                            let span = tracing::info_span!(
                                "plugin.call",
                                plugin = %b.plugin,
                                tool = %b.tool
                            );
                            let (r, hits) = plugins
                                .invoke_recorded(&plugin, context, &b.tool, &call.arguments_json)
                                .instrument(span)
                                .await;
                            let r = r.map(|o| {
                                let sources = labelled_sources(&o);
                                (o.text, sources)
                            });
                            (r.map_err(|e| error_text(&e)), hits)
                        }
                    },
                };
                let mut sources = Vec::new();
                let result = match outcome {
                    Ok((text, labelled)) => {
                        sources = labelled;
                        ToolResult {
                            tool_call_id: call.id.clone(),
                            output: text,
                            is_error: false,
                        }
                    }
                    Err(e) => ToolResult {
                        tool_call_id: call.id.clone(),
                        output: format!("error: {e}"),
                        is_error: true,
                    },
                };
                let file_search = binding
                    .as_ref()
                    .filter(|b| b.plugin == FILE_SEARCH)
                    .map(|_| (options, hits));
                (result, file_search, sources)
            }
        };
        let work = async {
            if ctx.run.parallel_tool_calls {
                futures::future::join_all(prepared.into_iter().map(run_one)).await
            } else {
                let mut out = Vec::new();
                for c in prepared {
                    out.push(run_one(c).await);
                }
                out
            }
        };
        let started = std::time::Instant::now();
        let outcomes = tokio::select! {
            r = work => r,
            _ = ctx.stop.cancelled() => return Ok(Flow::Interrupted),
        };
        assistants_core::obs::metrics::metrics()
            .run_phase("tools", started.elapsed().as_secs_f64());
        // file_search calls are recorded with their results; the passages become the run's
        // citable sources.
        let mut replacements = std::collections::HashMap::new();
        let mut results = Vec::with_capacity(outcomes.len());
        for (result, file_search, sources) in outcomes {
            // Passages a tool labelled and annotated (web pages, files) become citable.
            ctx.rec.sources.extend(sources);
            if let Some((options, hits)) = file_search {
                let sequence = options["sequence"].as_u64().unwrap_or(0) as u32;
                let ranking = options
                    .pointer("/tool/file_search/ranking_options")
                    .cloned()
                    .unwrap_or_default();
                let entry = json!({
                    "id": result.tool_call_id,
                    "type": "file_search",
                    "file_search": {
                        "ranking_options": {
                            "ranker": ranking.get("ranker").and_then(Value::as_str)
                                .filter(|r| *r != "auto").unwrap_or("default_2024_08_21"),
                            "score_threshold": ranking.get("score_threshold").and_then(Value::as_f64).unwrap_or(0.0),
                        },
                        "results": hits.iter().map(|h| json!({
                            "file_id": h.file_id,
                            "file_name": h.filename,
                            "score": h.score,
                            "content": [{"type": "text", "text": h.text}],
                        })).collect::<Vec<_>>(),
                    },
                });
                for (i, h) in hits.iter().enumerate() {
                    ctx.rec.sources.push(Source {
                        sequence,
                        index: i as u32,
                        file_id: h.file_id.clone(),
                        filename: h.filename.clone(),
                        url: None,
                        title: None,
                    });
                }
                replacements.insert(result.tool_call_id.clone(), entry);
            }
            results.push(result);
        }
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(Flow::Interrupted);
        };
        let events = self
            .record_outputs(&mut tx, ctx, &results, &replacements)
            .await?;
        ctx.rec.next = Next::Step {
            event: Event::ToolsCompleted(results),
        };
        self.commit(tx, ctx, false).await?;
        for e in events {
            self.bus.publish(&ctx.run.id, e).await;
        }
        Ok(Flow::Continue)
    }

    /// Waits (up to a minute) until no file of the run's vector stores is still being
    /// ingested, so a search right after files were attached finds them, as users expect.
    async fn wait_for_ingestion(&self, ctx: &Ctx) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        for vs in &ctx.rec.vector_store_ids {
            loop {
                match self.store.file_counts(vs, None).await {
                    Ok((counts, _)) if counts.in_progress > 0 => {}
                    _ => break,
                }
                if std::time::Instant::now() >= deadline || ctx.stop.is_cancelled() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn require_action(
        &self,
        ctx: &mut Ctx,
        calls: Vec<ToolCall>,
        ids: &ActionIds,
    ) -> anyhow::Result<()> {
        if calls.is_empty() {
            return self
                .fail(
                    ctx,
                    "server_error",
                    format!(
                        "the strategy '{}' asked the client for no tool calls",
                        ctx.rec.strategy
                    ),
                )
                .await;
        }
        if self.ensure_tool_step(ctx, &calls, ids).await?.is_none() {
            return self.interrupted(ctx).await;
        }
        ctx.run.set_status(RunStatus::RequiresAction, now());
        ctx.run.required_action = Some(json!({
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {"tool_calls": calls.iter().map(|c| json!({
                "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json},
            })).collect::<Vec<_>>()},
        }));
        ctx.rec.next = Next::AwaitOutputs;
        let Some(tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return self.interrupted(ctx).await;
        };
        self.commit(tx, ctx, true).await?;
        self.publish(ctx, RunStatus::RequiresAction.event(), &ctx.run)
            .await;
        assistants_core::obs::metrics::metrics().run_finished("requires_action");
        Ok(())
    }

    async fn emit_message(
        &self,
        ctx: &mut Ctx,
        text: &str,
        ids: &ActionIds,
        event: Event,
    ) -> anyhow::Result<Flow> {
        if !self.open_message(ctx, ids).await? {
            return Ok(Flow::Interrupted);
        }
        let delta = json!({"id": ids.message, "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text}}]}});
        self.publish(ctx, "thread.message.delta", &delta).await;
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(Flow::Interrupted);
        };
        let events = self
            .close_message(&mut tx, ctx, ids, text, false, None)
            .await?;
        ctx.rec.next = Next::Step { event };
        self.commit(tx, ctx, false).await?;
        for e in events {
            self.bus.publish(&ctx.run.id, e).await;
        }
        Ok(Flow::Continue)
    }
}
