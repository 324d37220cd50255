//! Relayed work: polled on the low-priority threads except while critical (see the module
//! above), and what it hands to blocking pools.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// A turn at something other work waits for, held by the work being polled on this thread;
/// while any is held the work is polled at the caller's priority ([`super::LowPriority::relay`]).
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

/// Runs `work` on a blocking pool: the low-priority runtime's when called by relayed work
/// that is not critical, else the current runtime's (as `tokio::task::spawn_blocking`).
///
/// Why: relayed work sees the runtime it came from as its own (see
/// [`super::LowPriority::relay`]), so the CPU-bound work it handed to the blocking pool
/// (tokenising a history, ranking a search) ran at normal priority; and a pool thread that a
/// low-priority thread starts inherits its priority, so a normal pool thread started there
/// would serve every caller at nice +10 for as long as it lives. Work that is critical keeps
/// the normal pool: it holds what others wait for until this ends.
pub fn spawn_blocking<F, R>(work: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match low_runtime() {
        Some(low) => low.spawn_blocking(work),
        None => tokio::task::spawn_blocking(work),
    }
}

/// `work`, polled with the low-priority runtime as the current one whenever relayed work that
/// is not critical polls it, so what it spawns and hands to the blocking pool runs there;
/// elsewhere polled as it is. Only for work whose tasks serve it alone (a local file written
/// in parts): an HTTP client's connection task spawned there would serve other callers later
/// at low priority.
pub fn on_low_pool<F: Future>(work: F) -> OnLowPool<F> {
    OnLowPool {
        work: Box::pin(work),
    }
}

/// The future of [`on_low_pool`].
pub struct OnLowPool<F: Future> {
    work: Pin<Box<F>>,
}

impl<F: Future> Future for OnLowPool<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let low = low_runtime();
        let _entered = low.as_ref().map(|h| h.enter());
        self.work.as_mut().poll(cx)
    }
}

/// The low-priority runtime of the relayed work polled on this thread, if that work is not
/// critical now.
fn low_runtime() -> Option<tokio::runtime::Handle> {
    POLLING.with(|p| {
        p.borrow()
            .as_ref()
            .filter(|p| p.critical.load(Ordering::Acquire) == 0)
            .map(|p| p.low.clone())
    })
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
    /// The low-priority runtime it was relayed to.
    low: tokio::runtime::Handle,
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
    fn enter(
        critical: &Arc<AtomicUsize>,
        on_caller: bool,
        low: &tokio::runtime::Handle,
    ) -> Polling {
        let polled = Polled {
            critical: critical.clone(),
            on_caller,
            low: low.clone(),
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
    /// Polls the work relayed to `low` once on this thread with `waker` (by the awaiting task
    /// if `on_caller`); its output once finished.
    fn poll_work(
        &self,
        waker: &Waker,
        on_caller: bool,
        low: &tokio::runtime::Handle,
    ) -> Poll<Option<T>> {
        let mut work = lock(&self.work);
        let Some(w) = work.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = {
            let _polling = Polling::enter(&self.critical, on_caller, low);
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

/// The future of [`super::LowPriority::relay`].
pub(super) struct Relay<T> {
    shared: Arc<Shared<T>>,
    /// The low-priority runtime.
    runtime: tokio::runtime::Handle,
    /// The runtime `relay` was called on, entered for every poll here.
    home: Option<tokio::runtime::Handle>,
}

impl<T: Send + 'static> Relay<T> {
    /// `work`, relayed to the runtime `low` from the current one.
    pub(super) fn new<F>(low: tokio::runtime::Handle, work: F) -> Relay<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        Relay {
            shared: Arc::new(Shared {
                work: Mutex::new(Some(Box::pin(work))),
                state: Mutex::new(RelayState::default()),
                critical: Arc::new(AtomicUsize::new(0)),
            }),
            runtime: low,
            home: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Polls the work once on the low-priority threads, then wakes the awaiting task if the
    /// work finished or was woken meanwhile.
    fn schedule(&self, waker: Waker) {
        let shared = self.shared.clone();
        let home = self.home.clone();
        let low = self.runtime.clone();
        self.runtime.spawn(async move {
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _home = home.as_ref().map(|h| h.enter());
                shared.poll_work(&waker, false, &low)
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
        match self.shared.poll_work(&waker, true, &self.runtime) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lowprio::{LowPriority, NICENESS};
    use futures::FutureExt;

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

    /// The calling thread's name and niceness.
    fn where_and_how_nice() -> (String, i32) {
        #[cfg(target_os = "linux")]
        // SAFETY: getpriority on the calling thread id; integers only.
        #[allow(unsafe_code)]
        let nice = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::getpriority(libc::PRIO_PROCESS, tid)
        };
        #[cfg(not(target_os = "linux"))]
        let nice = NICENESS;
        (thread(), nice)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn relayed_work_s_blocking_work_runs_at_low_priority_unless_critical() {
        let low = LowPriority::new("test-pool").unwrap();
        let (blocking, critical_blocking, spawned) = low
            .relay(async {
                let blocking = spawn_blocking(where_and_how_nice).await.unwrap();
                let held = critical();
                let critical_blocking = spawn_blocking(where_and_how_nice).await.unwrap();
                drop(held);
                let spawned = on_low_pool(async {
                    let task = tokio::spawn(async { thread() }).await.unwrap();
                    let pool = tokio::task::spawn_blocking(where_and_how_nice)
                        .await
                        .unwrap();
                    (task, pool)
                })
                .await;
                (blocking, critical_blocking, spawned)
            })
            .await;
        assert_eq!(blocking, ("test-pool".to_string(), NICENESS));
        assert_ne!(
            critical_blocking.0, "test-pool",
            "critical: the normal pool"
        );
        assert_eq!(spawned.0, "test-pool", "a task spawned under on_low_pool");
        assert_eq!(spawned.1, ("test-pool".to_string(), NICENESS));
        let outside = spawn_blocking(thread).await.unwrap();
        assert_ne!(
            outside, "test-pool",
            "outside relayed work: the current pool"
        );
        let outside = on_low_pool(async { tokio::spawn(async { thread() }).await.unwrap() }).await;
        assert_ne!(outside, "test-pool");
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
