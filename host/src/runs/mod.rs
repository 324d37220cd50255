//! Runs: the engine that drives them, the LLM upstream, and the event bus and queue that
//! connect API nodes and workers.
//!
//! - [`model`]: the run and run-step objects and the engine's persisted record;
//! - [`engine`]: claims a run and drives its strategy component step by step;
//! - [`input`]: what the strategy and the model see (thread messages, truncation, tools);
//! - [`llm`]: chat completions upstreams (async-openai), streaming and retries;
//! - [`bus`]: run events and the run queue, with the in-process implementations.
//!
//! This module also owns the pieces every node runs: the worker pool fed by the queue, and the
//! sweeper that re-queues runs nobody holds and expires runs past `expires_at`.

pub mod bus;
pub mod distributed;
pub mod engine;
pub mod input;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::engine::{EngineRecord, Next, OpenToolStep};
use crate::model::ids::now;
use crate::model::Message;
use crate::model::{Run, RunStatus, RunStep};
use crate::store::{Store, StoreError, StoreResult, Tx};
use bus::{Delivery, EventBus, RunQueue, StreamEvent};

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
    run.usage = Some(crate::model::run::usage(
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
            .upsert_in(tx, project, &m, &crate::store::message_columns(&m))
            .await?;
        events.push(StreamEvent::new("thread.message.incomplete", &m));
    }
    for mut s in store.by_run_in::<RunStep>(tx, &run.id).await? {
        if s.status != "in_progress" {
            continue;
        }
        s.status = status.to_string();
        s.usage = Some(match open.filter(|o| o.id == s.id) {
            Some(o) => crate::model::run::usage(o.prompt_tokens, o.completion_tokens),
            None => crate::model::run::usage(0, 0),
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
            .upsert_in(tx, project, &s, &crate::store::step_columns(&s))
            .await?;
        let mut shown = serde_json::to_value(&s)?;
        if !include_content {
            crate::model::run::strip_result_content(&mut shown);
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

/// Runs queued deliveries through the engine, at most `concurrency` at a time.
///
/// When `lifecycle.draining` fires the pool takes no new deliveries (those it was sent but did
/// not start are requeued) and lets the runs in flight finish; those still going when `lifecycle.ending` fires are stopped at their next
/// await point and handed back: their leases are released, so another worker resumes them
/// from the last persisted step at once.
pub fn spawn_worker_pool(
    engine: Arc<engine::Engine>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    concurrency: usize,
    lifecycle: crate::ops::Lifecycle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        let draining = lifecycle.draining.clone();
        loop {
            let permit = tokio::select! {
                _ = draining.cancelled() => break,
                p = permits.clone().acquire_owned() => p.expect("never closed"),
            };
            let delivery = tokio::select! {
                _ = draining.cancelled() => break,
                d = rx.recv() => match d { Some(d) => d, None => break },
            };
            if let Some(t) = delivery.enqueued_ms {
                let waited = (bus::now_ms() - t) as f64 / 1000.0;
                crate::ops::metrics::metrics().run_phase("queue_wait", waited);
            }
            let engine = engine.clone();
            tasks.spawn(async move {
                let span = tracing::info_span!("run", run_id = %delivery.run_id, thread_id = tracing::field::Empty);
                if let Some(tp) = &delivery.traceparent {
                    crate::ops::telemetry::adopt_parent(&span, tp);
                }
                let drive = tracing::Instrument::instrument(engine.drive(&delivery.run_id), span);
                if let Err(e) = drive.await {
                    tracing::error!(run_id = %delivery.run_id, error = format!("{e:#}"), "driving a run failed; it will be retried");
                }
                if let Some(ack) = delivery.ack {
                    ack.await;
                }
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        // Deliveries this node will not start go back to the queue now (RabbitMQ), not when
        // its connection closes at the end of the grace period.
        rx.close();
        while let Ok(d) = rx.try_recv() {
            if let Some(requeue) = d.requeue {
                requeue.await;
            }
        }
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, "draining: letting runs in flight finish");
        }
        tokio::select! {
            _ = async { while tasks.join_next().await.is_some() {} } => {}
            _ = lifecycle.ending.cancelled() => {
                tracing::info!(unfinished = tasks.len(), "grace period over: handing runs back");
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        engine.release_held().await;
    })
}

/// Every second: queue runs that need a worker and have none, and expire runs past their
/// `expires_at` that no worker holds (those a worker holds it expires itself).
pub fn spawn_sweeper(
    store: Store,
    handle: RunsHandle,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = sweep(&store, &handle).await {
                tracing::warn!(error = %e, "run sweep failed");
            }
        }
    })
}

async fn sweep(store: &Store, handle: &RunsHandle) -> StoreResult<()> {
    for id in store.due_runs(5, 100).await? {
        tracing::info!(run_id = %id, "re-queueing a run no worker holds");
        if let Err(e) = handle.queue.enqueue(&id).await {
            tracing::warn!(run_id = %id, error = format!("{e:#}"), "could not queue a run");
        }
    }
    for (project, thread, id) in store.expired_runs(100).await? {
        end_idle_run(
            store,
            &*handle.bus,
            &project,
            &thread,
            &id,
            RunStatus::Expired,
            |run| {
                Ok::<_, StoreError>(
                    run.status().is_active() && run.expires_at.is_some_and(|e| e < now()),
                )
            },
        )
        .await?;
    }
    Ok(())
}
