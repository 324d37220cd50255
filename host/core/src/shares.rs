//! Whose work a node's cores do first: a project that has lately taken more than its share of
//! the node's time has its requests and runs served on the low-priority threads (`lowprio`),
//! so the kernel runs every other project's work first.
//!
//! Why: per-project caps bound how much work a tenant has in flight, not whose work the cores
//! do first. Without this a tenant with a dozen clients at once (runs whose tools return
//! megabytes, 2 MiB bodies, uploads, long messages) took the server's threads in turn with
//! everyone else's light requests, and the other projects' p99 grew several-fold (the soak
//! benchmark, docs/benchmarks.md).
//!
//! How: every request's handler (the host's `api::by_project`) and every run the node drives
//! (`assistants_worker::pool`) is timed poll by poll and the time charged to its project, in
//! a sum that decays with a time constant of [`TAU`] (a project keeping `c` cores busy holds
//! about `c` × `TAU`). A project is over its share when its sum is above either
//! - its part of the node (the cores over the projects charged lately): it takes more than
//!   it could if every project asked for as much; or
//! - twice the average project's: it takes clearly more than the others.
//!
//! A node's only project is never over its share, nor is anyone while the projects ask alike.
//! The work of a project over its share runs on the low-priority threads, which run at full
//! speed while the node has cores to spare (a project busy on an otherwise quiet node pays
//! only the hops between threads): nothing is refused or queued here (refusals are the quotas'
//! and caps' 429s). A project back within its share is served on the normal threads again
//! within about `TAU`. (Requiring both bounds was measured too: it demoted a little less, and
//! the soak benchmark's idle baseline got slower, its above-average projects no longer
//! spilling onto the extra threads; docs/benchmarks.md.)
//!
//! Polls are timed by the clock, not the thread's CPU time (a system call per poll): a poll
//! preempted by the kernel counts its wait too, so a project already demoted looks a little
//! busier than it is, and stays demoted a little longer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::lowprio::LowPriority;

/// The time constant of a project's charge: it weighs the last second or so.
const TAU: f64 = 1.0;
/// How often the average and the count of active projects are recomputed (and idle projects
/// forgotten): a request's check is then a lookup, whatever the number of projects.
const SWEEP: Duration = Duration::from_millis(100);
/// A project whose charge decayed below this (0.1 ms of handling) no longer counts as active.
const IDLE: f64 = 1e-4;
/// A request being handled charges its project at least this often, so a long one (an
/// upload) counts while it runs, not only when it ends.
const FLUSH: Duration = Duration::from_millis(5);

/// The node's time by project, and the low-priority threads.
pub struct Shares {
    cores: f64,
    low: LowPriority,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    charges: HashMap<String, Charge>,
    /// Projects charged lately, and their charges' sum, as of the last sweep.
    active: usize,
    total: f64,
    swept: Option<Instant>,
}

/// A decaying sum of seconds, as of `at`.
#[derive(Clone, Copy)]
struct Charge {
    secs: f64,
    at: Instant,
}

impl Charge {
    fn at(self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.at).as_secs_f64();
        self.secs * (-age / TAU).exp()
    }
}

impl Table {
    /// Counts the active projects and sums their charges, forgetting idle ones.
    fn sweep(&mut self, now: Instant) {
        if self.swept.is_some_and(|at| now.duration_since(at) < SWEEP) {
            return;
        }
        self.swept = Some(now);
        self.charges.retain(|_, c| c.at(now) >= IDLE);
        self.active = self.charges.len();
        self.total = self.charges.values().map(|c| c.at(now)).sum();
    }
}

impl Shares {
    /// Starts the low-priority threads; the node's cores are its available parallelism.
    pub fn new() -> anyhow::Result<Shares> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Shares::with_cores(cores as f64)
    }

    fn with_cores(cores: f64) -> anyhow::Result<Shares> {
        Ok(Shares {
            cores,
            low: LowPriority::new("project-low")?,
            table: Mutex::new(Table::default()),
        })
    }

    /// Whether `project` is over its share now.
    pub fn over_share(&self, project: &str) -> bool {
        let now = Instant::now();
        let mut table = self.table.lock().expect("shares poisoned");
        table.sweep(now);
        let Some(charge) = table.charges.get(project).map(|c| c.at(now)) else {
            return false;
        };
        if table.active < 2 {
            return false;
        }
        let part = self.cores * TAU / table.active as f64;
        let average = table.total / table.active as f64;
        charge > part.min(2.0 * average)
    }

    /// Adds `spent` to `project`'s charge.
    fn charge(&self, project: &str, spent: Duration) {
        let now = Instant::now();
        let mut table = self.table.lock().expect("shares poisoned");
        let secs = spent.as_secs_f64();
        match table.charges.get_mut(project) {
            Some(c) => {
                *c = Charge {
                    secs: c.at(now) + secs,
                    at: now,
                }
            }
            None => {
                table
                    .charges
                    .insert(project.to_string(), Charge { secs, at: now });
            }
        }
    }

    /// Runs `work` for `project`, charging it the time its polls take: relayed to the
    /// low-priority threads when the project is over its share now (polled here while it holds
    /// a database connection or SQLite's writer: `lowprio::critical`), else polled where it is
    /// awaited. The choice is made once, when the work starts: a run's for the whole run.
    pub async fn serve<F>(self: &Arc<Self>, project: String, work: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let over = self.over_share(&project);
        let metered = Metered {
            work: Box::pin(work),
            shares: Arc::clone(self),
            project,
            unflushed: Duration::ZERO,
        };
        if over {
            crate::obs::metrics::metrics().work_demoted.inc();
            self.low.relay(metered).await
        } else {
            metered.await
        }
    }
}

/// A future whose polls are timed and charged to a project.
struct Metered<F: Future> {
    work: Pin<Box<F>>,
    shares: Arc<Shares>,
    project: String,
    unflushed: Duration,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        let polled = self.work.as_mut().poll(cx);
        self.unflushed += started.elapsed();
        if polled.is_ready() || self.unflushed >= FLUSH {
            self.flush();
        }
        polled
    }
}

impl<F: Future> Metered<F> {
    fn flush(&mut self) {
        let spent = std::mem::take(&mut self.unflushed);
        if !spent.is_zero() {
            self.shares.charge(&self.project, spent);
        }
    }
}

impl<F: Future> Drop for Metered<F> {
    /// A request dropped midway (its client went away) still counts what it took.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares() -> Arc<Shares> {
        Arc::new(Shares::with_cores(2.0).unwrap())
    }

    /// Charges `secs` to `project` and lets the next check sweep.
    fn charge(s: &Shares, project: &str, secs: f64) {
        s.charge(project, Duration::from_secs_f64(secs));
        s.table.lock().unwrap().swept = None;
    }

    #[test]
    fn a_project_taking_far_more_than_the_others_is_over_its_share() {
        let s = shares();
        for p in ["a", "b", "c", "d"] {
            charge(&s, p, 0.02);
        }
        // Its part of the 2 cores is 0.4 (5 projects); twice the average 0.136.
        charge(&s, "heavy", 0.3);
        assert!(s.over_share("heavy"));
        for p in ["a", "b", "c", "d"] {
            assert!(!s.over_share(p), "{p}");
        }
        assert!(
            !s.over_share("new"),
            "a project never charged is within its share"
        );
    }

    #[test]
    fn a_node_s_only_project_is_never_over_its_share_and_two_are_held_to_their_part() {
        let s = shares();
        charge(&s, "alone", 1.9);
        assert!(!s.over_share("alone"));
        let s = shares();
        charge(&s, "light", 0.001);
        charge(&s, "busy", 0.9);
        // With two projects twice the average is the sum: only their part of the cores (1 of
        // 2) holds the busy one.
        assert!(!s.over_share("busy"));
        charge(&s, "busy", 0.5);
        assert!(s.over_share("busy"));
        assert!(!s.over_share("light"));
    }

    #[test]
    fn projects_asking_alike_are_all_within_their_share() {
        let s = shares();
        for (i, p) in ["a", "b", "c"].into_iter().enumerate() {
            charge(&s, p, 0.4 + i as f64 * 0.05);
        }
        assert!(["a", "b", "c"].iter().all(|p| !s.over_share(p)));
    }

    #[test]
    fn charges_decay_and_idle_projects_are_forgotten() {
        let s = shares();
        charge(&s, "a", 0.01);
        {
            let mut t = s.table.lock().unwrap();
            let c = t.charges.get_mut("a").unwrap();
            // Ten time constants ago: 0.01 × e^-10 is below `IDLE`.
            c.at -= Duration::from_secs_f64(10.0 * TAU);
            t.swept = None;
        }
        assert!(!s.over_share("a"));
        assert!(s.table.lock().unwrap().charges.is_empty());
    }

    #[tokio::test]
    async fn served_work_is_charged_and_over_share_work_runs_on_the_low_threads() {
        let s = shares();
        let thread = || std::thread::current().name().map(str::to_string);
        let busy = async {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(20) {
                std::hint::spin_loop();
            }
        };
        s.serve("heavy".into(), busy).await;
        let charged = s.table.lock().unwrap().charges["heavy"].secs;
        assert!(charged >= 0.02, "charged {charged}");
        let on = s.serve("heavy".into(), async move { thread() }).await;
        assert_ne!(
            on.as_deref(),
            Some("project-low"),
            "the only project is not demoted"
        );

        charge(&s, "heavy", 0.5);
        for p in ["a", "b", "c", "d", "e", "f"] {
            charge(&s, p, 0.001);
        }
        assert!(s.over_share("heavy"));
        let on = s.serve("heavy".into(), async move { thread() }).await;
        assert_eq!(on.as_deref(), Some("project-low"));
        let on = s.serve("a".into(), async move { thread() }).await;
        assert_ne!(on.as_deref(), Some("project-low"));
    }
}
