//! Where a node is in its life (serving → draining → ending): the two tokens every long-lived
//! task of a node watches — the HTTP server, the worker pool, the queue consumer, streams.

use tokio_util::sync::CancellationToken;

/// Where a node is in its life. Both tokens start uncancelled.
#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Cancelled when the node is asked to stop (SIGTERM): readiness fails, the worker takes no
    /// new runs, the listener takes no new connections (after the drain delay), and work in
    /// flight has the grace period to finish.
    pub draining: CancellationToken,
    /// Cancelled when the grace period is over: open streams end now with a final `error`
    /// event, and runs still in flight are handed back to the queue.
    pub ending: CancellationToken,
}
