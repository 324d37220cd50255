//! The pieces every worker node runs: the pool that feeds queued runs to the engine, and the
//! sweeper that re-queues runs nobody holds and expires runs past `expires_at`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use assistants_core::bus::Delivery;
use assistants_core::model::ids::now;
use assistants_core::store::{Store, StoreError, StoreResult};

/// Runs queued deliveries through the engine, at most `concurrency` at a time.
///
/// When `lifecycle.draining` fires the pool takes no new deliveries (those it was sent but did
/// not start are requeued) and lets the runs in flight finish; those still going when `lifecycle.ending` fires are stopped at their next
/// await point and handed back: their leases are released, so another worker resumes them
/// from the last persisted step at once.
pub fn spawn_worker_pool(
    engine: Arc<crate::engine::Engine>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    concurrency: usize,
    lifecycle: assistants_core::lifecycle::Lifecycle,
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
                let waited = (assistants_core::bus::now_ms() - t) as f64 / 1000.0;
                assistants_core::obs::metrics::metrics().run_phase("queue_wait", waited);
            }
            let engine = engine.clone();
            tasks.spawn(async move {
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
