//! Run transitions: every change of a run's status, in one place.
//!
//! The API and the engine both move runs between statuses; they do it by calling these
//! functions, which keep a run, its engine record and its unfinished messages and steps
//! consistent in one transaction, and publish the events clients see.

use std::sync::Arc;

use assistants_core::bus::{EventBus, RunQueue, StreamEvent};
use assistants_core::model::engine::{EngineRecord, Next, OpenToolStep};
use assistants_core::model::ids::now;
use assistants_core::model::Message;
use assistants_core::model::{Run, RunStatus, RunStep};
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

/// Ends a run that no worker holds (waiting for the client, or unclaimed) in a terminal
/// `status`: usage so far, no next step. Returns the open tool step, whose usage
/// [`close_unfinished_in`] records.
pub fn end_idle(
    run: &mut Run,
    engine: &mut EngineRecord,
    status: RunStatus,
) -> Option<OpenToolStep> {
    run.set_status(status, now());
    run.usage = Some(assistants_core::model::run::usage(
        engine.prompt_tokens,
        engine.completion_tokens,
    ));
    engine.next = Next::Done;
    engine.open_tool_step.take()
}

/// Ends the run's in-progress messages (as `incomplete`) and steps (as `status`: `cancelled`,
/// `expired`, `failed`, or `completed` for an incomplete run) inside `tx`, the transaction
/// that makes the run terminal, so a terminal run never keeps unfinished children. Returns the
/// events to publish after the commit, messages before steps (the order clients track them).
/// Every step gets its usage: the LLM call's for `open` (the tool step waiting for outputs),
/// zero for the others.
pub async fn close_unfinished_in(
    store: &Store,
    tx: &mut Tx,
    project: &str,
    run: &Run,
    status: &str,
    open: Option<&OpenToolStep>,
    include_content: bool,
) -> StoreResult<Vec<StreamEvent>> {
    let t = now();
    let mut events = Vec::new();
    for mut m in store.by_run_in::<Message>(tx, &run.id).await? {
        if m.status != "in_progress" {
            continue;
        }
        m.status = "incomplete".into();
        m.incomplete_at = Some(t);
        m.completed_at = None;
        let reason = match status {
            "cancelled" => "run_cancelled",
            "expired" => "run_expired",
            "failed" => "run_failed",
            _ => "max_tokens",
        };
        m.incomplete_details = Some(serde_json::json!({ "reason": reason }));
        store
            .upsert_in(
                tx,
                project,
                &m,
                &assistants_core::store::message_columns(&m),
            )
            .await?;
        events.push(StreamEvent::new("thread.message.incomplete", &m));
    }
    for mut s in store.by_run_in::<RunStep>(tx, &run.id).await? {
        if s.status != "in_progress" {
            continue;
        }
        s.status = status.to_string();
        s.usage = Some(match open.filter(|o| o.id == s.id) {
            Some(o) => assistants_core::model::run::usage(o.prompt_tokens, o.completion_tokens),
            None => assistants_core::model::run::usage(0, 0),
        });
        match status {
            "cancelled" => s.cancelled_at = Some(t),
            "expired" => s.expired_at = Some(t),
            "failed" => {
                s.failed_at = Some(t);
                s.last_error = run.last_error.clone();
            }
            _ => s.completed_at = Some(t),
        }
        store
            .upsert_in(tx, project, &s, &assistants_core::store::step_columns(&s))
            .await?;
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
    status: RunStatus,
    decide: impl FnOnce(&Run) -> Result<bool, E>,
) -> Result<(Run, bool), E> {
    let mut tx = store.begin().await?;
    let (mut run, mut engine) = store
        .lock_run_in(&mut tx, project, thread_id, run_id)
        .await?;
    if !decide(&run)? {
        return Ok((run, false));
    }
    let open = end_idle(&mut run, &mut engine, status);
    let step_status = match status {
        RunStatus::Cancelled => "cancelled",
        RunStatus::Expired => "expired",
        RunStatus::Failed => "failed",
        _ => "completed",
    };
    let events = close_unfinished_in(
        store,
        &mut tx,
        project,
        &run,
        step_status,
        open.as_ref(),
        engine.include_content,
    )
    .await?;
    store.write_run_in(&mut tx, &run, &engine, None).await?;
    tx.commit().await?;
    for e in events {
        bus.publish(&run.id, e).await;
    }
    bus.publish(&run.id, StreamEvent::new(status.event(), &run))
        .await;
    Ok((run, true))
}
