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

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

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
        Relay {
            shared: Arc::new(Shared {
                work: Mutex::new(Some(Box::pin(work))),
                state: Mutex::new(RelayState::default()),
                critical: Arc::new(AtomicUsize::new(0)),
            }),
            runtime,
            home: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

/// A turn at something other work waits for, held by the work being polled on this thread;
/// while any is held the work is polled at the caller's priority ([`LowPriority::relay`]).
/// Outside relayed work this holds nothing.
pub struct Critical(Option<Arc<AtomicUsize>>);

/// Marks the work being polled on this thread critical until the guard drops.
pub fn critical() -> Critical {
    let held = POLLING.with(|p| p.borrow().as_ref().map(|p| p.critical.clone()));
    if let Some(held) = &held {
        held.fetch_add(1, Ordering::AcqRel);
    }
    Critical(held)
}

impl Drop for Critical {
    fn drop(&mut self) {
        if let Some(held) = &self.0 {
            held.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Whether the relayed work being polled on this thread is critical now.
#[cfg(test)]
pub(crate) fn critical_now() -> bool {
    POLLING.with(|p| {
        p.borrow()
            .as_ref()
            .is_some_and(|p| p.critical.load(Ordering::Acquire) > 0)
    })
}

/// Yields once if the relayed work being polled on this thread is polled at its caller's
/// priority only because it was critical, and no longer is: its next poll goes back to the
/// low-priority threads. Awaited where a critical stretch ends (`store::held`, a
/// transaction's end); anywhere else it is ready at once.
///
/// Why: a poll runs until the work next waits, and after a query the work typically goes on
/// computing (rows decoded, a model request serialised) within the same poll. Measured in the
/// soak benchmark, demoted runs spent more than half their polling time on the normal threads
/// that way (docs/benchmarks.md).
pub fn back_to_low() -> BackToLow {
    BackToLow { yielded: false }
}

/// The future of [`back_to_low`].
pub struct BackToLow {
    yielded: bool,
}

impl Future for BackToLow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        let lent = POLLING.with(|p| {
            p.borrow()
                .as_ref()
                .is_some_and(|p| p.on_caller && p.critical.load(Ordering::Acquire) == 0)
        });
        if !lent {
            return Poll::Ready(());
        }
        self.yielded = true;
        // The work's waker: the awaiting task polls the relay next, which finds the work not
        // critical and schedules its poll on the low-priority threads.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The name of the thread the caller runs on: where the tests see work go.
#[cfg(test)]
pub(crate) fn thread() -> String {
    std::thread::current()
        .name()
        .unwrap_or_default()
        .to_string()
}

/// Whether this thread is polling relayed (demoted) work now.
pub fn relayed() -> bool {
    POLLING.with(|p| p.borrow().is_some())
}

/// Relayed work being polled on a thread.
#[derive(Clone)]
struct Polled {
    /// How many critical stretches the work is in.
    critical: Arc<AtomicUsize>,
    /// Polled by the awaiting task (because it was critical), not on the low-priority threads.
    on_caller: bool,
}

thread_local! {
    /// The relayed work being polled on this thread, if any.
    static POLLING: RefCell<Option<Polled>> = const { RefCell::new(None) };
}

type BoxedWork<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The relayed work and who polls it next. Lock order: `work`, then `state`.
struct Shared<T> {
    /// `None` once finished or dropped.
    work: Mutex<Option<BoxedWork<T>>>,
    state: Mutex<RelayState<T>>,
    critical: Arc<AtomicUsize>,
}

struct RelayState<T> {
    /// A poll is scheduled on the low-priority threads.
    scheduled: bool,
    /// The work was woken while that poll was scheduled: poll again after it.
    woken: bool,
    /// The awaiting future was dropped: the work goes once no poll holds it.
    dropped: bool,
    /// The work's output, or the panic of its poll on the low-priority threads.
    output: Option<std::thread::Result<T>>,
    /// The awaiting task.
    waker: Option<Waker>,
}

impl<T> Default for RelayState<T> {
    fn default() -> Self {
        RelayState {
            scheduled: false,
            woken: false,
            dropped: false,
            output: None,
            waker: None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in the work is passed on to the awaiting task; the relay's own state stays
    // consistent (every update is a single assignment).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets `POLLING` for one poll, and puts back what was there however the poll ends.
struct Polling(Option<Polled>);

impl Polling {
    fn enter(critical: &Arc<AtomicUsize>, on_caller: bool) -> Polling {
        let polled = Polled {
            critical: critical.clone(),
            on_caller,
        };
        Polling(POLLING.with(|p| p.borrow_mut().replace(polled)))
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        let outer = self.0.take();
        POLLING.with(|p| *p.borrow_mut() = outer);
    }
}

impl<T> Shared<T> {
    /// Polls the work once on this thread with `waker` (by the awaiting task if `on_caller`);
    /// its output once finished.
    fn poll_work(&self, waker: &Waker, on_caller: bool) -> Poll<Option<T>> {
        let mut work = lock(&self.work);
        let Some(w) = work.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = {
            let _polling = Polling::enter(&self.critical, on_caller);
            w.as_mut().poll(&mut Context::from_waker(waker))
        };
        match polled {
            Poll::Ready(out) => {
                *work = None;
                Poll::Ready(Some(out))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn wake_awaiting(state: &mut RelayState<T>) {
        if let Some(w) = state.waker.take() {
            w.wake();
        }
    }
}

/// The waker the work sees: a wake while a poll is scheduled is remembered for after it;
/// otherwise it wakes the awaiting task, which decides where the next poll happens.
struct WorkWaker<T>(Arc<Shared<T>>);

impl<T: Send + 'static> Wake for WorkWaker<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = lock(&self.0.state);
        if state.scheduled {
            state.woken = true;
        } else {
            Shared::wake_awaiting(&mut state);
        }
    }
}

struct Relay<T> {
    shared: Arc<Shared<T>>,
    /// The low-priority runtime.
    runtime: tokio::runtime::Handle,
    /// The runtime `relay` was called on, entered for every poll here.
    home: Option<tokio::runtime::Handle>,
}

impl<T: Send + 'static> Relay<T> {
    /// Polls the work once on the low-priority threads, then wakes the awaiting task if the
    /// work finished or was woken meanwhile.
    fn schedule(&self, waker: Waker) {
        let shared = self.shared.clone();
        let home = self.home.clone();
        self.runtime.spawn(async move {
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _home = home.as_ref().map(|h| h.enter());
                shared.poll_work(&waker, false)
            }));
            let mut state = lock(&shared.state);
            state.scheduled = false;
            match polled {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(out)) => state.output = out.map(Ok),
                Err(panic) => state.output = Some(Err(panic)),
            }
            if state.dropped {
                drop(state);
                lock(&shared.work).take();
                return;
            }
            if state.output.is_some() || std::mem::take(&mut state.woken) {
                Shared::wake_awaiting(&mut state);
            }
        });
    }
}

impl<T: Send + 'static> Future for Relay<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let waker: Waker = Arc::new(WorkWaker(self.shared.clone())).into();
        {
            let mut state = lock(&self.shared.state);
            match state.output.take() {
                Some(Ok(out)) => return Poll::Ready(out),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => {}
            }
            state.waker = Some(cx.waker().clone());
            if state.scheduled {
                return Poll::Pending;
            }
            if self.shared.critical.load(Ordering::Acquire) == 0 {
                state.scheduled = true;
                state.woken = false;
                drop(state);
                self.schedule(waker);
                return Poll::Pending;
            }
        }
        // Critical: this poll at the caller's priority.
        match self.shared.poll_work(&waker, true) {
            Poll::Ready(out) => Poll::Ready(out.expect("polled only until it finishes")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Relay<T> {
    /// The work goes with its owner: now, or when a poll in progress elsewhere ends.
    fn drop(&mut self) {
        lock(&self.shared.state).dropped = true;
        let work = match self.shared.work.try_lock() {
            Ok(work) => Some(work),
            // The work panicked in a poll (and is being passed on): drop it all the same.
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(mut work) = work {
            work.take();
        }
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
    use futures::FutureExt;

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

    #[tokio::test]
    async fn relayed_work_is_polled_on_the_caller_s_thread_while_critical() {
        let low = LowPriority::new("test-relay").unwrap();
        let (before, during, after, spawned) = low
            .relay(async {
                let before = thread();
                let held = critical();
                tokio::task::yield_now().await;
                let during = thread();
                drop(held);
                back_to_low().await;
                let after = thread();
                let spawned = tokio::spawn(async { thread() }).await.unwrap();
                (before, during, after, spawned)
            })
            .await;
        assert_eq!(before, "test-relay");
        assert_ne!(
            spawned, "test-relay",
            "spawned on the runtime it was relayed from"
        );
        assert_ne!(
            during, "test-relay",
            "polled where it is awaited while critical"
        );
        assert_eq!(
            after, "test-relay",
            "back on the low-priority threads as soon as the critical stretch ended"
        );
        assert!(!relayed(), "only inside relayed work");
        assert_eq!(
            low.relay(async { back_to_low().now_or_never() }).await,
            Some(()),
            "already on the low-priority threads: ready at once"
        );
        assert_eq!(
            back_to_low().now_or_never(),
            Some(()),
            "outside relayed work: ready at once"
        );
        let panicked = tokio::spawn(low.relay(async { panic!("in relayed work") }));
        assert!(panicked.await.unwrap_err().is_panic());
    }

    #[tokio::test]
    async fn dropping_a_relay_drops_its_work() {
        let low = LowPriority::new("test-relay-drop").unwrap();
        let alive = Arc::new(());
        let held = alive.clone();
        let relay = low.relay(async move {
            let _held = held;
            std::future::pending::<()>().await
        });
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), relay)
                .await
                .is_err()
        );
        // The timeout dropped the relay; its work (and what it held) goes too.
        for _ in 0..100 {
            if Arc::strong_count(&alive) == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("the work outlived its relay");
    }
}
