//! The HTTP server loop: accepts connections up to a cap, serves each with hyper under a
//! header-read / idle timeout, and shuts down gracefully.
//!
//! `axum::serve` has neither a connection cap nor a timer (so hyper's header-read timeout never
//! runs): one client opening sockets and sending nothing, or a byte a minute, could hold every
//! file descriptor. Here a semaphore bounds open connections (past the cap, connections wait
//! in the kernel's backlog instead of being accepted), and hyper's HTTP/1 header-read timeout,
//! which also runs while a keep-alive connection waits for its next request, closes idle and
//! slow-header connections.
//!
//! A request body must keep arriving: a gap longer than the idle timeout between two of its
//! frames fails it (a client trickling a body a byte a minute would otherwise hold its
//! connection, its handler and, for an upload, a blob write for as long as it liked).
//!
//! A response sent before its request's body was read to the end (a body over its limit, a
//! request refused before its upload) carries `Connection: close`: hyper closes such a
//! connection rather than read the rest, and a client that had already written its whole body
//! would otherwise put the connection back in its pool and lose its next request on it (the
//! soak benchmark saw that as broken pipes on ordinary requests).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// Limits on the connections a node accepts.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long a keep-alive
    /// connection may sit idle before its next request.
    pub idle_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, asks every
/// connection to finish its request in flight, and returns when all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let idle = limits.idle_timeout;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // No Nagle delay: streamed tokens go out as they are written, not 40 ms later.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service = TowerToHyperService::new(tower::service_fn(move |req| {
            let router = router.clone();
            async move { Ok::<_, std::convert::Infallible>(respond(router, req, idle).await) }
        }));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves one request: its body must keep arriving (`idle` at most between frames), and the
/// response is marked `Connection: close` if the body was not read to its end.
async fn respond(
    router: Router,
    req: Request<Incoming>,
    idle: Duration,
) -> axum::response::Response {
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        return router
            .oneshot(req.map(Body::new))
            .await
            .unwrap_or_else(|e| match e {});
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let done = read_to_end.clone();
    let req = req.map(|inner| {
        Body::new(Paced {
            inner,
            done,
            idle,
            stall: None,
        })
    });
    let mut response = router.oneshot(req).await.unwrap_or_else(|e| match e {});
    if !read_to_end.load(Ordering::Acquire) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A request body that fails when the client stops sending it for `idle`, and records
/// whether it was read to its end.
struct Paced {
    inner: Incoming,
    done: Arc<AtomicBool>,
    idle: Duration,
    /// Fires `idle` after the last frame, or after the handler first asked for the body (a
    /// handler may take its time before reading; hyper sends `100 Continue` only then).
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The body stopped arriving.
#[derive(Debug)]
struct Stalled(Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body stopped arriving for {:?}", self.0)
    }
}

impl std::error::Error for Stalled {}

impl hyper::body::Body for Paced {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let idle = self.idle;
        match &polled {
            Poll::Pending => {
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if stall.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(Stalled(idle)))));
                }
                return Poll::Pending;
            }
            Poll::Ready(Some(_)) => {
                if let Some(stall) = self.stall.as_mut() {
                    stall.as_mut().reset(tokio::time::Instant::now() + idle);
                }
            }
            Poll::Ready(None) => {}
        }
        // Readers may stop at `is_end_stream` after the last frame instead of polling on.
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        polled.map(|frame| frame.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The default cap on open connections: 16,384, or fewer so that they and the server's own
/// files and sockets (database, blobs, plugins, upstreams: 256 kept aside) stay under the
/// process's open-files limit (often 1,024), past which `accept` fails.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    match soft {
        Some(n) => n.saturating_sub(256).clamp(64, 16_384),
        None => 16_384,
    }
}
