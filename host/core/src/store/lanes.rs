//! SQLite's one writer, served in two lanes: writes a client is waiting on (API requests)
//! go before background work (the run engine's transactions, ingestion results).
//!
//! SQLite has one writer at a time, and writers queue first come, first served for it. Under
//! load from busy tenants (the soak benchmark: hostile projects' runs, a dozen engine
//! transactions each) an ordinary project's "create message" waited behind every engine
//! transaction already queued (p99 15 → 307 ms). Here a transaction takes a turn at the writer
//! first: whenever the writer frees, an interactive waiter is served before any background
//! one — but never more than [`INTERACTIVE_STREAK`] in a row while background work waits, so a
//! flood of client writes slows runs and ingestion without stopping them. Statements that run
//! outside a transaction (lease renewals and the like) do not queue
//! here; they take the connection between turns.
//!
//! Work demoted for taking more than its project's share of the node (`shares`, `lowprio`)
//! waits in a third lane, after both others, but is served at least every
//! [`DEMOTED_EVERY`] turns: a tenant's flood of runs then delays its own writes, not the
//! other projects' runs.
//!
//! Holding a turn while waiting for another would deadlock, as holding the single connection
//! while waiting for it always has: a transaction never opens a second one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Whose write it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A client is waiting for it.
    Interactive,
    /// Background work: the run engine, ingestion.
    Background,
}

/// Interactive turns in a row at most while a background waiter waits.
const INTERACTIVE_STREAK: u32 = 4;
/// Turns given to others at most while a demoted waiter waits.
const DEMOTED_EVERY: u32 = 8;

#[derive(Default)]
struct State {
    held: bool,
    /// Interactive turns given since the last background one.
    streak: u32,
    /// Turns given to others since a demoted waiter was last served.
    passed_over: u32,
    interactive: VecDeque<oneshot::Sender<()>>,
    background: VecDeque<oneshot::Sender<()>>,
    /// Either lane's waiters from demoted work.
    demoted: VecDeque<oneshot::Sender<()>>,
}

/// The queue for the writer. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct WriterLanes {
    state: Arc<Mutex<State>>,
}

/// A turn at the writer, given to the next waiter when dropped. Work demoted to low priority
/// is polled at its caller's priority while it holds one (`lowprio::critical`): every other
/// writer waits for it.
pub(crate) struct Turn {
    lanes: WriterLanes,
    _critical: crate::lowprio::Critical,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.lanes.pass();
    }
}

/// A waiter; if it is dropped after being handed the turn, it passes the turn on.
struct Waiting {
    rx: Option<oneshot::Receiver<()>>,
    lanes: WriterLanes,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.lanes.pass();
            }
        }
    }
}

impl WriterLanes {
    /// Waits for a turn at the writer in `lane`.
    pub(crate) async fn turn(&self, lane: Lane) -> Turn {
        // Taken before waiting: the poll that receives the turn already runs at the caller's
        // priority, not only those after it.
        let critical = crate::lowprio::critical();
        let rx = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !state.held {
                state.held = true;
                return Turn {
                    lanes: self.clone(),
                    _critical: critical,
                };
            }
            let (tx, rx) = oneshot::channel();
            match lane {
                _ if crate::lowprio::relayed() => state.demoted.push_back(tx),
                Lane::Interactive => state.interactive.push_back(tx),
                Lane::Background => state.background.push_back(tx),
            }
            rx
        };
        let mut waiting = Waiting {
            rx: Some(rx),
            lanes: self.clone(),
        };
        let rx = waiting.rx.as_mut().expect("set above");
        // An error means the sender was dropped unsent, which `pass` never does.
        let _ = rx.await;
        waiting.rx = None;
        Turn {
            lanes: self.clone(),
            _critical: critical,
        }
    }

    /// Hands the writer to the next waiter, interactive first, then background, then demoted
    /// (each of the later ones served within its bound however busy the earlier are), or
    /// frees it.
    fn pass(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let demoted_due = !state.demoted.is_empty()
                && (state.passed_over >= DEMOTED_EVERY
                    || (state.interactive.is_empty() && state.background.is_empty()));
            let take_background = !demoted_due
                && !state.background.is_empty()
                && (state.streak >= INTERACTIVE_STREAK || state.interactive.is_empty());
            let next = if demoted_due {
                state.demoted.pop_front()
            } else if take_background {
                state.background.pop_front()
            } else {
                state.interactive.pop_front()
            };
            let Some(next) = next else {
                state.held = false;
                state.streak = 0;
                state.passed_over = 0;
                return;
            };
            // A waiter that gave up has closed its end: try the next.
            if next.send(()).is_ok() {
                if demoted_due {
                    state.passed_over = 0;
                } else {
                    state.streak = if take_background { 0 } else { state.streak + 1 };
                    if !state.demoted.is_empty() {
                        state.passed_over += 1;
                    }
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queues one waiter per (name, lane), in order; each records its name when served.
    async fn queue(
        lanes: &WriterLanes,
        order: &Arc<Mutex<Vec<&'static str>>>,
        waiters: impl IntoIterator<Item = (&'static str, Lane)>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for (name, lane) in waiters {
            let (lanes, order) = (lanes.clone(), order.clone());
            handles.push(tokio::spawn(async move {
                let _turn = lanes.turn(lane).await;
                order.lock().unwrap().push(name);
                tokio::task::yield_now().await;
            }));
            tokio::task::yield_now().await;
        }
        handles
    }

    #[tokio::test]
    async fn interactive_waiters_go_first_and_abandoned_turns_pass_on() {
        let lanes = WriterLanes::default();
        let first = lanes.turn(Lane::Background).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = queue(
            &lanes,
            &order,
            [
                ("bg1", Lane::Background),
                ("gone", Lane::Interactive),
                ("bg2", Lane::Background),
                ("api", Lane::Interactive),
            ],
        )
        .await;
        // One interactive waiter gives up before its turn.
        waiters.remove(1).abort();
        tokio::task::yield_now().await;
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["api", "bg1", "bg2"]);
        // A flood of interactive writes lets a background one through every few turns.
        let first = lanes.turn(Lane::Interactive).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiters = queue(
            &lanes,
            &order,
            std::iter::once(("bg", Lane::Background))
                .chain((0..6).map(|_| ("api", Lane::Interactive))),
        )
        .await;
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        // Four interactive turns, then the background one, then the rest.
        let seen = order.lock().unwrap().clone();
        let bg_at = seen.iter().position(|n| *n == "bg").unwrap();
        assert!(bg_at <= INTERACTIVE_STREAK as usize, "{seen:?}");
        // Free again.
        let _t = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            lanes.turn(Lane::Background),
        )
        .await
        .expect("the writer is free");
    }

    #[tokio::test]
    async fn demoted_work_waits_after_both_lanes_but_within_its_bound() {
        let lanes = WriterLanes::default();
        let low = crate::lowprio::LowPriority::new("test-lanes").unwrap();
        let first = lanes.turn(Lane::Interactive).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let demoted = {
            let (lanes, order) = (lanes.clone(), order.clone());
            tokio::spawn(low.relay(async move {
                let _turn = lanes.turn(Lane::Interactive).await;
                order.lock().unwrap().push("demoted");
            }))
        };
        while lanes.state.lock().unwrap().demoted.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let waiters = queue(
            &lanes,
            &order,
            (0..10)
                .map(|_| ("api", Lane::Interactive))
                .chain([("bg", Lane::Background)]),
        )
        .await;
        drop(first);
        demoted.await.unwrap();
        for w in waiters {
            w.await.unwrap();
        }
        let seen = order.lock().unwrap().clone();
        // Queued first, yet served only after `DEMOTED_EVERY` others' turns.
        assert_eq!(
            seen.iter().position(|n| *n == "demoted"),
            Some(DEMOTED_EVERY as usize),
            "{seen:?}"
        );
        assert_eq!(seen.len(), 12);
    }
}
