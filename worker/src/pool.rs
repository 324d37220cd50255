//! The pieces every worker node runs: the pool that feeds queued runs to the engine, and the
//! sweeper that re-queues runs nobody holds and expires runs past `expires_at`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use assistants_core::bus::Delivery;
use assistants_core::model::ids::now;
use assistants_core::shares::Shares;
use assistants_core::store::{Store, StoreError, StoreResult};

use crate::fair::FairQueue;

/// Runs queued deliveries through the engine, at most `concurrency` at a time and at most
/// `per_project` of one project, starting waiting runs in turns between projects
/// ([`FairQueue`]).
///
/// A delivery held back by its project's cap is acknowledged at once (its RabbitMQ message
/// would otherwise hold a prefetch slot another project's run could use) and waits here; the
/// database still has the run queued, so if this node dies the sweeper queues it again for
/// another node. Other deliveries are acknowledged once their run has been driven.
///
/// When `lifecycle.draining` fires the pool takes no new deliveries (those it holds but did
/// not start are requeued or, already acknowledged, left to the sweeper) and lets the runs in
/// flight finish; those still going when `lifecycle.ending` fires are stopped at their next
/// await point and handed back: their leases are released, so another worker resumes them
/// from the last persisted step at once.
pub fn spawn_worker_pool(
    engine: Arc<crate::engine::Engine>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    concurrency: usize,
    per_project: usize,
    shares: Arc<Shares>,
    lifecycle: assistants_core::lifecycle::Lifecycle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut fair: FairQueue<Delivery> = FairQueue::new(per_project);
        // Run ids waiting here: the sweeper re-queues runs nobody holds, and a run already
        // waiting is not queued twice.
        let mut waiting_ids: HashSet<String> = HashSet::new();
        let mut tasks: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
        // Each running task's project, so its slot is given back however the task ends (a
        // panic included: its output is lost then, its id is not).
        let mut projects: HashMap<tokio::task::Id, String> = HashMap::new();
        let draining = lifecycle.draining.clone();
        loop {
            while tasks.len() < concurrency {
                let Some((project, delivery)) = fair.next() else {
                    break;
                };
                waiting_ids.remove(&delivery.run_id);
                let id = start(&mut tasks, &engine, &shares, &project, delivery);
                projects.insert(id, project);
            }
            let metrics = assistants_core::obs::metrics::metrics();
            metrics.runs_waiting(fair.waiting());
            tokio::select! {
                _ = draining.cancelled() => break,
                Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match ended {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "a run task failed");
                            e.id()
                        }
                    };
                    if let Some(project) = projects.remove(&id) {
                        fair.done(&project);
                    }
                }
                d = rx.recv() => {
                    let Some(mut delivery) = d else { break };
                    if !waiting_ids.insert(delivery.run_id.clone()) {
                        if let Some(ack) = delivery.ack.take() {
                            ack.await;
                        }
                        continue;
                    }
                    // A run that cannot be found is started anyway: the engine decides what a
                    // missing run means, in one place.
                    let project = engine
                        .store
                        .run_project(&delivery.run_id)
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    // Only a run held back by its project's cap gives up its message now; one
                    // waiting for a free slot keeps it, so the broker's prefetch still stops
                    // sending this full node more (another node takes them).
                    if fair.is_capped(&project) {
                        if let Some(ack) = delivery.ack.take() {
                            delivery.requeue = None;
                            ack.await;
                        }
                    }
                    fair.push(&project, delivery);
                }
            }
        }
        // Deliveries this node will not start go back to the queue now (RabbitMQ), not when
        // its connection closes at the end of the grace period.
        rx.close();
        let mut unstarted = fair.take_waiting();
        while let Ok(d) = rx.try_recv() {
            unstarted.push(d);
        }
        for d in unstarted {
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

/// Drives one run of `project` in its own task, within the project's share of the node (on
/// the low-priority threads if it is over it now); returns the task's id.
fn start(
    tasks: &mut tokio::task::JoinSet<()>,
    engine: &Arc<crate::engine::Engine>,
    shares: &Arc<Shares>,
    project: &str,
    delivery: Delivery,
) -> tokio::task::Id {
    if let Some(t) = delivery.enqueued_ms {
        let waited = (assistants_core::bus::now_ms() - t) as f64 / 1000.0;
        assistants_core::obs::metrics::metrics().run_phase("queue_wait", waited);
    }
    let engine = engine.clone();
    let (shares, project) = (shares.clone(), project.to_string());
    let drive = async move {
        let span = tracing::info_span!("run", run_id = %delivery.run_id, thread_id = tracing::field::Empty);
        if let Some(tp) = &delivery.traceparent {
            assistants_core::obs::telemetry::adopt_parent(&span, tp);
        }
        let drive = tracing::Instrument::instrument(engine.drive(&delivery.run_id), span);
        if let Err(e) = drive.await {
            tracing::error!(run_id = %delivery.run_id, error = format!("{e:#}"), "driving a run failed; it will be retried");
        }
        if let Some(ack) = delivery.ack {
            ack.await;
        }
    };
    tasks
        .spawn(async move { shares.serve(project, drive).await })
        .id()
}

/// Every second: queue runs that need a worker and have none, and expire runs past their
/// `expires_at` that no worker holds (those a worker holds it expires itself).
pub fn spawn_sweeper(
    store: Store,
    handle: crate::transitions::RunsHandle,
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

async fn sweep(store: &Store, handle: &crate::transitions::RunsHandle) -> StoreResult<()> {
    for id in store.due_runs(5, 100).await? {
        tracing::info!(run_id = %id, "re-queueing a run no worker holds");
        if let Err(e) = handle.queue.enqueue(&id).await {
            tracing::warn!(run_id = %id, error = format!("{e:#}"), "could not queue a run");
        }
    }
    for (project, thread, id) in store.expired_runs(100).await? {
        crate::transitions::end_idle_run(
            store,
            &*handle.bus,
            &project,
            &thread,
            &id,
            crate::transitions::Ending::Expired,
            |run| {
                Ok::<_, StoreError>(
                    run.status.is_active() && run.expires_at.is_some_and(|e| e < now()),
                )
            },
        )
        .await?;
    }
    Ok(())
}
