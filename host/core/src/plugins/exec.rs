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

use std::future::Future;

/// How much lower than the server's threads guest threads run (`nice` steps; the kernel gives
/// a thread at +10 about a tenth of the CPU share of one at 0 when both are busy).
const NICENESS: i32 = 10;

/// The guest threads: a multi-threaded runtime with one worker per core.
pub(crate) struct GuestThreads {
    runtime: Option<tokio::runtime::Runtime>,
}

impl GuestThreads {
    pub fn new() -> anyhow::Result<GuestThreads> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("plugin-guest")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(GuestThreads {
            runtime: Some(runtime),
        })
    }

    /// Runs `call`: its first slice here, the rest (if any) on the guest threads.
    pub async fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let mut call = Box::pin(call);
        if let std::task::Poll::Ready(out) = futures::poll!(call.as_mut()) {
            return out;
        }
        let runtime = self.runtime.as_ref().expect("present until dropped");
        let mut task = AbortOnDrop(runtime.spawn(call));
        match (&mut task.0).await {
            Ok(out) => out,
            // Only a panic in host code gets here (guest traps are values); pass it on.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

impl Drop for GuestThreads {
    fn drop(&mut self) {
        // Dropped inside async code (tests, the end of `serve`): do not block on the workers.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Aborts the task when its owner stops waiting for it (drops this).
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lowers the calling thread's scheduling priority (Linux: `setpriority` on a thread id acts
/// on that thread only). Failure leaves the thread at normal priority, which is only slower
/// for the server, never less safe.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on integer arguments; no memory is shared with the kernel.
        #[allow(unsafe_code)]
        let failed = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, NICENESS) != 0
        };
        if failed {
            tracing::debug!("could not lower the priority of a plugin thread");
        }
    }
}
