//! Where guest code runs: threads of its own, at a lower OS priority than the rest of the
//! server.
//!
//! A guest is interrupted every epoch tick (`runtime::TICK`) and yields to its executor, so it never
//! holds a thread for longer; but many busy guests together would still take every tick of the
//! threads they share. On the server's own runtime that is the API's request handling and the
//! engine's I/O waiting behind a tenant's spinning tools (measured by the soak benchmark: the
//! other projects' p99 went from 5 ms to 290 ms). On these threads guests compete with each
//! other only, and the kernel gives the server's threads the CPU first when both want it.
//!
//! A call starts on the caller's thread: most calls finish within their first slice (one
//! tick at most), and moving every call to another thread cost more than the call itself
//! (plugins benchmark: instantiate + invoke 30 µs inline, 104 µs with the hop). A call that
//! yields — a busy guest at its tick, or one waiting on I/O or a sleep — is then moved here
//! whole (its store, the pre-instantiated component, its arguments and its timeout) and its
//! result comes back; if the caller stops waiting (a run cancelled), the call is aborted at
//! its next yield. So the server's threads give any call at most one tick.
//!
//! Calls made by demoted work (a project over its share: `shares`) go to threads of their own
//! at idle priority, like the rest of that work's CPU: a busy guest of such a project takes a
//! core only when nothing else wants it, and never delays another project's guest calls.

use std::future::Future;

use crate::lowprio::{self, LowPriority, Priority};

/// The guest threads: low-priority runtimes with one worker per core, one for demoted work.
pub(crate) struct GuestThreads {
    threads: LowPriority,
    demoted: LowPriority,
}

impl GuestThreads {
    pub fn new() -> anyhow::Result<GuestThreads> {
        Ok(GuestThreads {
            threads: LowPriority::new("plugin-guest")?,
            demoted: LowPriority::with_priority("plugin-guest-idle", Priority::Idle)?,
        })
    }

    /// Runs `call`: its first slice here, the rest (if any) on the guest threads (those of
    /// demoted work if the caller is such work).
    pub async fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let mut call = Box::pin(call);
        if let std::task::Poll::Ready(out) = futures::poll!(call.as_mut()) {
            return out;
        }
        let threads = if lowprio::relayed() {
            &self.demoted
        } else {
            &self.threads
        };
        // Only a panic in host code can come back as one (guest traps are values).
        threads.run(call).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::lowprio::thread;

    /// A call that yields once, then says where it went on.
    async fn call() -> String {
        tokio::task::yield_now().await;
        thread()
    }

    #[tokio::test]
    async fn a_call_goes_on_at_idle_priority_only_when_demoted_work_made_it() {
        let guests = Arc::new(GuestThreads::new().unwrap());
        assert_eq!(guests.run(call()).await, "plugin-guest");
        let low = LowPriority::new("test-demoted").unwrap();
        let relayed = guests.clone();
        let demoted = low.relay(async move { relayed.run(call()).await }).await;
        assert_eq!(demoted, "plugin-guest-idle");
    }
}
