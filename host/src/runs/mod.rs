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
pub mod llm;
pub mod model;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::messages::Message;
use crate::error::ApiResult;
use crate::ids::now;
use crate::store::{ListParams, Order, Store, Val};
use bus::{Delivery, EventBus, RunQueue, StreamEvent};
use model::{EngineRecord, Next, OpenToolStep, Run, RunStatus, RunStep};

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
/// [`close_open_steps`] records.
pub fn end_idle(
    run: &mut Run,
    engine: &mut EngineRecord,
    status: RunStatus,
) -> Option<OpenToolStep> {
    run.set_status(status, now());
    run.usage = Some(model::usage(engine.prompt_tokens, engine.completion_tokens));
    engine.next = Next::Done;
    engine.open_tool_step.take()
}

/// Ends the run's open steps (and in-progress messages) with `status` (`cancelled`,
/// `expired`, `failed`, or `completed` for steps of an incomplete run), and publishes it.
/// Every step gets its usage: the LLM call's for `open` (the tool step waiting for outputs),
/// zero for the others.
pub async fn close_open_steps(
    store: &Store,
    project: &str,
    run: &Run,
    status: &str,
    open: Option<&OpenToolStep>,
    bus: &dyn EventBus,
) -> ApiResult<()> {
    let t = now();
    let params = ListParams {
        limit: 100,
        order: Order::Desc,
        after: None,
        before: None,
    };
    let steps = store
        .list::<RunStep>(project, Some(("run_id", &run.id)), vec![], &params)
        .await?;
    for s in steps
        .items
        .into_iter()
        .filter(|s| s.status == "in_progress")
    {
        let s = store
            .update::<RunStep>(project, &s.id, |s| {
                s.status = status.to_string();
                s.usage = Some(match open.filter(|o| o.id == s.id) {
                    Some(o) => model::usage(o.prompt_tokens, o.completion_tokens),
                    None => model::usage(0, 0),
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
                Ok(())
            })
            .await?;
        bus.publish(
            &run.id,
            StreamEvent::new(&format!("thread.run.step.{status}"), &s),
        )
        .await;
    }
    let msgs = store
        .list::<Message>(
            project,
            Some(("thread_id", &run.thread_id)),
            vec![("run_id", Val::Text(run.id.clone()))],
            &params,
        )
        .await?;
    for m in msgs.items.into_iter().filter(|m| m.status == "in_progress") {
        let m = store
            .update::<Message>(project, &m.id, |m| {
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
                Ok(())
            })
            .await?;
        bus.publish(&run.id, StreamEvent::new("thread.message.incomplete", &m))
            .await;
    }
    Ok(())
}

/// Runs queued deliveries through the engine, at most `concurrency` at a time.
pub fn spawn_worker_pool(
    engine: Arc<engine::Engine>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    concurrency: usize,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                _ = stop.cancelled() => break,
                p = permits.clone().acquire_owned() => p.expect("never closed"),
            };
            let delivery = tokio::select! {
                _ = stop.cancelled() => break,
                d = rx.recv() => match d { Some(d) => d, None => break },
            };
            let engine = engine.clone();
            tasks.spawn(async move {
                if let Err(e) = engine.drive(&delivery.run_id).await {
                    tracing::error!(run_id = %delivery.run_id, error = format!("{e:#}"), "driving a run failed; it will be retried");
                }
                if let Some(ack) = delivery.ack {
                    ack.await;
                }
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        // Runs in flight stop at their next await point; their leases lapse and another
        // worker (or this one after a restart) resumes them from the last persisted step.
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

async fn sweep(store: &Store, handle: &RunsHandle) -> ApiResult<()> {
    for id in store.due_runs(5, 100).await? {
        tracing::info!(run_id = %id, "re-queueing a run no worker holds");
        if let Err(e) = handle.queue.enqueue(&id).await {
            tracing::warn!(run_id = %id, error = format!("{e:#}"), "could not queue a run");
        }
    }
    for (project, thread, id) in store.expired_runs(100).await? {
        let mut expired = None;
        let run = store
            .update_run(&project, &thread, &id, |run, engine| {
                if run.status().is_active() && run.expires_at.is_some_and(|e| e < now()) {
                    expired = Some(end_idle(run, engine, RunStatus::Expired));
                }
                Ok(())
            })
            .await?;
        if let Some(open) = expired {
            close_open_steps(
                store,
                &project,
                &run,
                "expired",
                open.as_ref(),
                &*handle.bus,
            )
            .await?;
            handle
                .bus
                .publish(&run.id, StreamEvent::new(RunStatus::Expired.event(), &run))
                .await;
        }
    }
    Ok(())
}
