//! Operating a node over HTTP: liveness and readiness endpoints, and the Prometheus scrape of
//! the metrics every subsystem records (`assistants_core::obs::metrics`).
//!
//! - `GET /healthz`: the process answers (liveness; never touches a dependency).
//! - `GET /readyz`: 200 when the database answers and the node is not draining, 503 otherwise;
//!   the body also reports the run queue and the event bus. Those two do not make a node
//!   unready: they are shared by every node (one broker blip would take all of them out of
//!   rotation) and losing them loses no run (the sweeper re-queues from the database, streams
//!   fall back to it). The status is `degraded` then.
//! - `GET /metrics`: OpenMetrics text.
//!
//! These sit outside `/v1` and need no API key: they reveal no user data, and probes and
//! scrapers do not carry keys. Operators who expose a node publicly filter them at the proxy.

use assistants_core::model::RunStatus;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use std::sync::Arc;

use axum::extract::FromRef;

use assistants_core::bus::{EventBus, RunQueue};
use assistants_core::lifecycle::Lifecycle;
use assistants_core::obs::metrics;
use assistants_core::store::Store;

/// What the operations endpoints read: the database, the node's lifecycle, the queue and bus.
#[derive(Clone)]
pub struct OpsState {
    pub store: Store,
    pub lifecycle: Lifecycle,
    pub queue: Arc<dyn RunQueue>,
    pub bus: Arc<dyn EventBus>,
}

/// Each readiness check gets this long; a dependency that hangs is as unready as one that fails.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The operations routes, for any router state the [`OpsState`] can be taken from.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    OpsState: FromRef<S>,
{
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
}

async fn check<F>(f: F) -> Result<(), String>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let (database, queue, events) = tokio::join!(
        check(async { state.store.ping().await.map_err(anyhow::Error::from) }),
        check(state.queue.ready()),
        check(state.bus.ready()),
    );
    let draining = state.lifecycle.draining.is_cancelled();
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let ready = !draining && database.is_ok();
    let status = if draining {
        "draining"
    } else if !ready {
        "unready"
    } else if queue.is_err() || events.is_err() {
        "degraded"
    } else {
        "ready"
    };
    let body = json!({
        "status": status,
        "checks": {
            "database": show(&database),
            "queue": show(&queue),
            "events": show(&events),
        }
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn scrape(State(state): State<OpsState>) -> Response {
    let m = metrics::metrics();
    // Shared state is read at scrape time; a failure leaves the last values in place.
    match state.store.active_run_counts().await {
        Ok(counts) => {
            for status in RunStatus::ACTIVE {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == status.as_str())
                    .map_or(0, |(_, n)| *n);
                m.runs_active
                    .get_or_create(&metrics::StatusLabels {
                        status: status.to_string(),
                    })
                    .set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count runs"),
    }
    if let Ok(Ok(Some(depth))) = tokio::time::timeout(CHECK_TIMEOUT, state.queue.depth()).await {
        m.queue_depth.set(depth as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

/// Counts every request by matched route, method and status, and times it to the response head.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    // Bounded label values: extension methods (any token is one) count as "other".
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = metrics::metrics();
    m.http_seconds
        .get_or_create(&metrics::RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .get_or_create(&metrics::HttpLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}
