//! Threads the kernel schedules after the server's own: a tokio runtime whose workers run at
//! a lower OS priority (`nice` +10, or idle priority: [`Priority`]).
//!
//! Work that may take a lot of CPU on a tenant's behalf runs here, so that when the cores are
//! saturated the server's normal threads (request handling, the engine's I/O) get them first:
//! guest code (`plugins::exec`), and the requests and runs of a project over its share of the
//! node (`shares`). When the CPU is idle these threads run at full speed;
//! the priority only decides who waits when both want a core.
//!
//! Work that holds something other work waits for (a turn at SQLite's one writer, any pooled
//! database connection: `store::held`) must not starve on these threads meanwhile: that is
//! priority inversion, and measured it made the other projects' writes slower than with no
//! demotion at all. So [`LowPriority::relay`] does not hand its work over whole: it polls the
//! work on these threads except while the work is [`critical`] (holds such a thing), when the
//! normal thread that awaits it polls it instead.
//! (Unprivileged processes cannot raise a thread's priority again, so moving the polls is the
//! way to lend the work the caller's priority.) Where such a stretch ends (a query's rows
//! taken, a transaction committed) the work yields once ([`back_to_low`]), so what it computes
//! next runs on these threads again, not at the caller's priority until it next waits.
//! The blocking work it starts while not critical goes to this runtime's blocking pool, whose
//! threads run at the same priority ([`spawn_blocking`], [`on_low_pool`]).

mod relay;

use std::future::Future;

pub use relay::{
    back_to_low, critical, on_low_pool, relayed, spawn_blocking, BackToLow, Critical, OnLowPool,
};
#[cfg(test)]
pub(crate) use relay::{critical_now, thread};

/// How much lower than the server's threads these threads run (`nice` steps; the kernel gives
/// a thread at +10 about a tenth of the CPU share of one at 0 when both are busy).
const NICENESS: i32 = 10;

/// How far below the server's threads a [`LowPriority`] runtime's threads run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// `nice` +10: about a tenth of a normal thread's share of a core when both are busy.
    Low,
    /// `SCHED_IDLE`: a core only when no other thread wants it. The kernel also counts a core
    /// that runs only such threads as idle when it places a waking thread, and lets the waking
    /// thread preempt at once, so these threads add no wake-up latency to the others (a core
    /// busy with a `nice` +10 thread is not idle: a waking thread may queue behind it).
    Idle,
}

/// A multi-threaded runtime with one worker per core, at lower priority.
pub struct LowPriority {
    runtime: Option<tokio::runtime::Runtime>,
}

impl LowPriority {
    /// Starts the runtime at [`Priority::Low`]; its threads are named `name`.
    pub fn new(name: &str) -> anyhow::Result<LowPriority> {
        LowPriority::with_priority(name, Priority::Low)
    }

    /// Starts the runtime at `priority`; its threads are named `name`.
    pub fn with_priority(name: &str, priority: Priority) -> anyhow::Result<LowPriority> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .on_thread_start(move || lower_priority(priority))
            .enable_all()
            .build()?;
        Ok(LowPriority {
            runtime: Some(runtime),
        })
    }

    /// Runs `work` to its end on these threads and returns its output. If the caller stops
    /// waiting (drops this future), the work is aborted at its next yield; a panic in it is
    /// passed on to the caller.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let runtime = self.runtime.as_ref().expect("present until dropped");
        let mut task = AbortOnDrop(runtime.spawn(work));
        match (&mut task.0).await {
            Ok(out) => out,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Runs `work` to its end: each poll on these threads, except while the work is
    /// [`critical`], when it is polled on the awaiting thread instead. Dropping the returned
    /// future drops the work (at the end of a poll in progress).
    ///
    /// Polled here, the work still sees the runtime it was relayed from as its own: what it
    /// spawns (a pooled connection going back to its pool, a lease watch, an HTTP client's
    /// connection task) runs there at normal priority, not here where it would hold what
    /// others wait for at this priority.
    pub fn relay<F>(&self, work: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .expect("present until dropped")
            .handle()
            .clone();
        relay::Relay::new(runtime, work)
    }
}

impl Drop for LowPriority {
    fn drop(&mut self) {
        // Dropped inside async code (tests, the end of `serve`): do not block on the workers.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Aborts the task when its owner stops waiting for it (drops this).
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lowers the calling thread's scheduling priority (Linux: `setpriority` and
/// `sched_setscheduler` on a thread id act on that thread only). Failure leaves the thread at
/// normal priority, which is only slower for the server, never less safe.
fn lower_priority(priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on integers and a parameter struct that lives across the
        // call; the kernel keeps no reference to it.
        #[allow(unsafe_code)]
        let failed = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
            let status = match priority {
                Priority::Low => libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICENESS),
                Priority::Idle => {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param)
                }
            };
            status != 0
        };
        if failed {
            tracing::debug!(
                ?priority,
                "could not lower the priority of a low-priority thread"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_low_priority_threads_and_panics_reach_the_caller() {
        let low = LowPriority::new("test-low").unwrap();
        let name = low
            .run(async { std::thread::current().name().map(str::to_string) })
            .await;
        assert_eq!(name.as_deref(), Some("test-low"));
        #[cfg(target_os = "linux")]
        {
            // SAFETY: getpriority on the calling thread id; integers only.
            #[allow(unsafe_code)]
            let nice = low
                .run(async {
                    unsafe {
                        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                        libc::getpriority(libc::PRIO_PROCESS, tid)
                    }
                })
                .await;
            assert_eq!(nice, NICENESS);
            let idle = LowPriority::with_priority("test-idle", Priority::Idle).unwrap();
            // SAFETY: sched_getscheduler on the calling thread; integers only.
            #[allow(unsafe_code)]
            let policy = idle
                .run(async { unsafe { libc::sched_getscheduler(0) } })
                .await;
            assert_eq!(policy, libc::SCHED_IDLE);
        }
        let caught = tokio::spawn(async move { low.run(async { panic!("in the work") }).await });
        assert!(caught.await.unwrap_err().is_panic());
    }
}
