//! The distributed implementations of the run queue and event bus: RabbitMQ (through lapin)
//! and Redis pub/sub (through the `redis` crate).
//!
//! Queue: one durable queue of run ids. Messages are persistent and published with publisher
//! confirms; workers consume with a prefetch equal to how many runs they drive at once and
//! ack a message only after the engine returned, i.e. after everything the run did was
//! persisted. A worker that dies leaves its messages unacked, and RabbitMQ redelivers them.
//! Connections that drop are re-established with back-off; meanwhile the sweeper keeps runs
//! moving from the database, which stays the source of truth.
//!
//! Events: every node subscribes once to `assistants:run:*` and fans messages out to its local
//! subscribers (`LocalBus`); publishing is one `PUBLISH` per event. A node's own events travel
//! through Redis as well, so every listener sees one order per run. Redis keeps nothing: a
//! stream that misses events while Redis restarts falls back to reading the run's status from
//! the database (the host's SSE responses do this, `assistants_host` `api/runs/sse.rs`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::{Delivery, EventBus, LocalBus, RunQueue, StreamEvent, Subscription};

const CHANNEL_PREFIX: &str = "assistants:run:";

async fn open_channel(url: &str, queue: &str) -> lapin::Result<(Connection, Channel)> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((conn, channel))
}

/// Publishes run ids to RabbitMQ.
pub struct RabbitQueue {
    url: String,
    queue: String,
    /// The publishing connection and channel, re-opened after a failure.
    publisher: Mutex<Option<(Connection, Channel)>>,
}

impl RabbitQueue {
    /// Connects (so a wrong URL fails at startup) and declares the queue.
    pub async fn connect(url: &str, queue: &str) -> anyhow::Result<RabbitQueue> {
        let q = RabbitQueue {
            url: url.to_string(),
            queue: queue.to_string(),
            publisher: Mutex::new(None),
        };
        q.publish_channel().await.map_err(|e| {
            anyhow::anyhow!(
                "connecting to RabbitMQ at {}: {e}",
                crate::redact::redact_url(url)
            )
        })?;
        Ok(q)
    }

    async fn publish_channel(&self) -> lapin::Result<Channel> {
        let mut guard = self.publisher.lock().await;
        if let Some((conn, ch)) = guard.as_ref() {
            if conn.status().connected() && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let (conn, ch) = open_channel(&self.url, &self.queue).await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *guard = Some((conn, ch.clone()));
        Ok(ch)
    }

    async fn try_publish(&self, run_id: &str) -> anyhow::Result<()> {
        let ch = self.publish_channel().await?;
        let mut headers = FieldTable::default();
        if let Some(tp) = crate::obs::telemetry::current_traceparent() {
            headers.insert("traceparent".into(), AMQPValue::LongString(tp.into()));
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_timestamp(super::now_ms() as u64)
            .with_headers(headers);
        let confirm = ch
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                run_id.as_bytes(),
                // delivery_mode 2: persistent, survives a broker restart. The timestamp
                // (milliseconds, not the AMQP convention of seconds) times the queue wait.
                properties,
            )
            .await?
            .await?;
        anyhow::ensure!(confirm.is_ack(), "RabbitMQ did not confirm the message");
        Ok(())
    }

    /// Deletes the queue (test clean-up and operator tooling).
    pub async fn delete(url: &str, queue: &str) -> anyhow::Result<()> {
        let (conn, ch) = open_channel(url, queue).await?;
        ch.queue_delete(queue.into(), QueueDeleteOptions::default())
            .await?;
        let _ = conn.close(200, "bye".into()).await;
        Ok(())
    }
}

#[async_trait::async_trait]
impl RunQueue for RabbitQueue {
    async fn enqueue(&self, run_id: &str) -> anyhow::Result<()> {
        if let Err(first) = self.try_publish(run_id).await {
            // One fresh connection before giving up: the sweeper handles the rest.
            tracing::warn!(error = %first, "publishing to RabbitMQ failed; reconnecting");
            *self.publisher.lock().await = None;
            self.try_publish(run_id).await?;
        }
        Ok(())
    }

    async fn ready(&self) -> anyhow::Result<()> {
        self.depth().await.map(|_| ())
    }

    /// A passive declare answers with the queue's ready-message count (and proves the
    /// connection; `publish_channel` reopens one that dropped).
    async fn depth(&self) -> anyhow::Result<Option<u64>> {
        let ch = self.publish_channel().await?;
        let q = ch
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        // A failed passive declare closes the channel; `publish_channel` sees that and opens
        // a fresh one next time (resetting it here could close one a publisher just opened).
        Ok(Some(u64::from(q?.message_count())))
    }
}

/// Consumes run ids from RabbitMQ into the worker pool, reconnecting with back-off. When the
/// node drains it cancels its consumer (RabbitMQ sends it nothing more) but keeps the
/// connection until `stop`, so runs in flight can still ack; messages the pool will not start
/// are requeued at once.
pub fn spawn_rabbit_consumer(
    url: String,
    queue: String,
    prefetch: u16,
    tx: mpsc::UnboundedSender<Delivery>,
    lifecycle: crate::lifecycle::Lifecycle,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let session = async {
                let (conn, ch) = open_channel(&url, &queue).await?;
                ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
                let mut consumer = ch
                    .basic_consume(
                        queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                tracing::info!(queue = %queue, prefetch, "consuming runs from RabbitMQ");
                loop {
                    let d = tokio::select! {
                        d = consumer.next() => match d { Some(d) => d?, None => break },
                        _ = lifecycle.draining.cancelled() => {
                            let _ = ch
                                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                                .await;
                            tracing::info!("draining: no more runs taken from RabbitMQ");
                            // Keep the connection for the acks of runs in flight.
                            stop.cancelled().await;
                            break;
                        }
                    };
                    let run_id = String::from_utf8_lossy(&d.data).into_owned();
                    let enqueued_ms = d.properties.timestamp().map(|t| t as i64);
                    let traceparent = d.properties.headers().as_ref().and_then(|h| {
                        match h.inner().get("traceparent") {
                            Some(AMQPValue::LongString(s)) => Some(s.to_string()),
                            _ => None,
                        }
                    });
                    let acker = d.acker.clone();
                    let ack: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
                        if let Err(e) = acker.ack(BasicAckOptions::default()).await {
                            tracing::warn!(error = %e, "could not ack a run message; it will be redelivered");
                        }
                    });
                    let acker = d.acker.clone();
                    let requeue: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
                        let _ = acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            })
                            .await;
                    });
                    if let Err(unsent) = tx.send(Delivery {
                        run_id,
                        ack: Some(ack),
                        requeue: Some(requeue),
                        enqueued_ms,
                        traceparent,
                    }) {
                        if let Some(r) = unsent.0.requeue {
                            r.await;
                        }
                        break;
                    }
                }
                let _ = conn.close(200, "stopping".into()).await;
                Ok::<_, lapin::Error>(())
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                r = session => match r {
                    Ok(()) if tx.is_closed() => return,
                    Ok(()) => tracing::warn!("the RabbitMQ consumer ended; reconnecting"),
                    Err(e) => tracing::warn!(error = %e, ?backoff, "RabbitMQ connection lost; reconnecting"),
                },
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

/// Run events through Redis pub/sub, delivered to this node's subscribers.
pub struct RedisBus {
    local: Arc<LocalBus>,
    conn: redis::aio::ConnectionManager,
}

impl RedisBus {
    /// Connects, subscribes to every run channel, and keeps the subscription alive until
    /// `stop`. Fails if Redis cannot be reached at startup.
    pub async fn connect(url: &str, stop: CancellationToken) -> anyhow::Result<RedisBus> {
        let redacted = crate::redact::redact_url(url);
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("invalid Redis URL {redacted}: {e}"))?;
        let conn = redis::aio::ConnectionManager::new(client.clone())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Redis at {redacted}: {e}"))?;
        let local = Arc::new(LocalBus::default());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let listener_local = local.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                let session = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await?;
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(run_id) = msg.get_channel_name().strip_prefix(CHANNEL_PREFIX)
                        else {
                            continue;
                        };
                        let payload: String = match msg.get_payload() {
                            Ok(p) => p,
                            Err(_) => continue,
                        };
                        match serde_json::from_str::<StreamEvent>(&payload) {
                            Ok(ev) => listener_local.deliver(run_id, ev),
                            Err(e) => tracing::warn!(error = %e, "unreadable run event on Redis"),
                        }
                    }
                    Ok::<_, redis::RedisError>(())
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = session => if let Err(e) = r {
                        tracing::warn!(error = %e, "Redis subscription lost; resubscribing");
                    },
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .map_err(|_| anyhow::anyhow!("subscribing to Redis at {redacted} timed out"))?
            .map_err(|_| anyhow::anyhow!("the Redis subscriber stopped"))?;
        Ok(RedisBus { local, conn })
    }
}

#[async_trait::async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, run_id: &str, event: StreamEvent) {
        let payload = match serde_json::to_string(&event) {
            Ok(p) => p,
            Err(_) => return,
        };
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(format!("{CHANNEL_PREFIX}{run_id}"))
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!(run_id, error = %e, "could not publish a run event to Redis");
        }
    }

    async fn subscribe(&self, run_id: &str) -> anyhow::Result<Subscription> {
        Ok(self.local.subscribe_local(run_id))
    }

    async fn ready(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
