//! Run events (the SSE stream) and the run queue, behind two small traits with in-process
//! implementations for the embedded mode.
//!
//! Events: whoever changes a run (the engine, or the API on cancel and submit) publishes the
//! wire event on the run's channel; SSE responses subscribe to it before the run is queued, so
//! they miss nothing. Control travels the same way: the engine driving a run listens on its
//! channel and aborts when it sees `thread.run.cancelling`.
//!
//! Queue: a run id on the queue means "this run needs a worker". It is only a nudge: the
//! database lease decides who drives a run, and the sweeper re-queues runs nobody took, so a
//! lost or duplicated queue message delays a run but never loses or doubles it.

pub mod distributed;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;

/// The channel on which a node announces that the plugin catalog changed (`crate::catalog`);
/// run ids never take this name.
pub const PLUGINS_CHANNEL: &str = "plugins";

/// One SSE event: its name and its JSON payload (already serialised, one line).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StreamEvent {
    pub event: String,
    pub data: String,
    /// Its position among the recorded events of a background response's run (listeners
    /// that replayed the record skip what they already had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<i64>,
}

impl StreamEvent {
    pub fn new(event: &str, data: &impl serde::Serialize) -> StreamEvent {
        StreamEvent {
            event: event.to_string(),
            data: serde_json::to_string(data).unwrap_or_else(|_| "null".into()),
            recorded: None,
        }
    }
}

/// Receives a run's events until dropped.
pub struct Subscription {
    pub rx: mpsc::UnboundedReceiver<StreamEvent>,
    _guard: Option<Box<dyn Send + Sync>>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Option<StreamEvent> {
        self.rx.recv().await
    }
}

#[async_trait::async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes an event on a run's channel (best-effort: events are for live listeners; the
    /// database has the truth).
    async fn publish(&self, run_id: &str, event: StreamEvent);
    /// Starts receiving a run's events; events published after this returns are delivered.
    async fn subscribe(&self, run_id: &str) -> anyhow::Result<Subscription>;
    /// Whether events flow (readiness); in-process always.
    async fn ready(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

type Subscribers = Mutex<HashMap<String, Vec<(u64, mpsc::UnboundedSender<StreamEvent>)>>>;

/// Fan-out within this process.
#[derive(Default)]
pub struct LocalBus {
    subs: Arc<Subscribers>,
    next_id: std::sync::atomic::AtomicU64,
}

struct Unsubscribe {
    subs: Weak<Subscribers>,
    run_id: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let Some(subs) = self.subs.upgrade() else {
            return;
        };
        let mut map = subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(&self.run_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(&self.run_id);
            }
        }
    }
}

impl LocalBus {
    pub(crate) fn deliver(&self, run_id: &str, event: StreamEvent) {
        let map = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get(run_id) {
            for (_, tx) in list {
                let _ = tx.send(event.clone());
            }
        }
    }

    pub(crate) fn subscribe_local(&self, run_id: &str) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(run_id.to_string())
            .or_default()
            .push((id, tx));
        Subscription {
            rx,
            _guard: Some(Box::new(Unsubscribe {
                subs: Arc::downgrade(&self.subs),
                run_id: run_id.to_string(),
                id,
            })),
        }
    }

    #[cfg(test)]
    fn channels(&self) -> usize {
        self.subs.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, run_id: &str, event: StreamEvent) {
        self.deliver(run_id, event);
    }

    async fn subscribe(&self, run_id: &str) -> anyhow::Result<Subscription> {
        Ok(self.subscribe_local(run_id))
    }
}

/// A run id taken off the queue, with what to do once the worker is done with it.
pub struct Delivery {
    pub run_id: String,
    /// Acknowledges the message (RabbitMQ) once the run's progress is persisted.
    pub ack: Option<futures::future::BoxFuture<'static, ()>>,
    /// Returns the message to the queue unstarted (RabbitMQ; a draining worker's backlog).
    pub requeue: Option<futures::future::BoxFuture<'static, ()>>,
    /// When the run was put on the queue (Unix milliseconds), for the `queue_wait` metric.
    pub enqueued_ms: Option<i64>,
    /// The W3C `traceparent` of the span that queued the run (traces cross the queue).
    pub traceparent: Option<String>,
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[async_trait::async_trait]
pub trait RunQueue: Send + Sync {
    async fn enqueue(&self, run_id: &str) -> anyhow::Result<()>;
    /// Whether runs can be queued (readiness); in-process always.
    async fn ready(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Messages waiting for a worker, if the queue can tell.
    async fn depth(&self) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }
}

/// The in-process queue: an unbounded channel into this node's worker pool. Nothing is lost
/// on a restart that the sweeper would not find again in the database.
pub struct LocalQueue {
    tx: mpsc::UnboundedSender<Delivery>,
}

impl LocalQueue {
    pub fn new() -> (LocalQueue, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (LocalQueue { tx }, rx)
    }

    /// The worker pool's intake, for a distributed queue's consumer to feed.
    pub fn sender(&self) -> mpsc::UnboundedSender<Delivery> {
        self.tx.clone()
    }
}

#[async_trait::async_trait]
impl RunQueue for LocalQueue {
    async fn enqueue(&self, run_id: &str) -> anyhow::Result<()> {
        self.tx
            .send(Delivery {
                run_id: run_id.to_string(),
                ack: None,
                requeue: None,
                enqueued_ms: Some(now_ms()),
                traceparent: crate::obs::telemetry::current_traceparent(),
            })
            .map_err(|_| anyhow::anyhow!("the run worker has stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_events_in_order_and_unsubscribe_on_drop() {
        let bus = LocalBus::default();
        let mut a = bus.subscribe("run_1").await.unwrap();
        let b = bus.subscribe("run_1").await.unwrap();
        bus.publish("run_2", StreamEvent::new("x", &1)).await;
        for i in 0..3 {
            bus.publish("run_1", StreamEvent::new("e", &i)).await;
        }
        for i in 0..3 {
            assert_eq!(a.recv().await.unwrap().data, i.to_string());
        }
        drop(b);
        assert_eq!(bus.channels(), 1);
        drop(a);
        assert_eq!(bus.channels(), 0);
    }
}
