//! Politeness towards the sites crawled: per host, at most `per_host` requests in flight and
//! request starts at least the site's delay apart. One gate per node, shared by every crawl
//! it drives, so two crawls of one site take turns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Longest delay a site's `crawl-delay` may impose between two requests.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

struct Host {
    slots: Arc<Semaphore>,
    /// When the next request to the host may start.
    next: tokio::sync::Mutex<Instant>,
}

/// The node's gate.
pub struct HostGate {
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

impl HostGate {
    pub fn new(per_host: usize) -> HostGate {
        HostGate {
            per_host: per_host.max(1),
            hosts: Mutex::default(),
        }
    }

    /// Waits for a turn at `origin` (`scheme://host:port`): a free slot, then `delay` after
    /// the previous request started. The slot is held until the permit drops.
    pub async fn enter(&self, origin: &str, delay: Duration) -> OwnedSemaphorePermit {
        let host = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            // Hosts no request waits for, holds a slot of or must still keep a delay from
            // are forgotten, so the map holds only busy sites.
            let now = Instant::now();
            hosts.retain(|_, h| {
                Arc::strong_count(h) > 1
                    || h.slots.available_permits() < self.per_host
                    || h.next.try_lock().is_ok_and(|next| *next > now)
            });
            hosts
                .entry(origin.to_string())
                .or_insert_with(|| {
                    Arc::new(Host {
                        slots: Arc::new(Semaphore::new(self.per_host)),
                        next: tokio::sync::Mutex::new(Instant::now()),
                    })
                })
                .clone()
        };
        let permit = host
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the gate's semaphores are never closed");
        let mut next = host.next.lock().await;
        tokio::time::sleep_until(*next).await;
        *next = Instant::now() + delay.min(MAX_DELAY);
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only orderings and lower bounds are asserted: a busy machine makes things later, never
    // earlier.
    #[tokio::test]
    async fn requests_to_one_host_start_a_delay_apart_and_others_do_not_wait() {
        let gate = Arc::new(HostGate::new(2));
        let delay = Duration::from_millis(300);
        let start = Instant::now();
        let a = gate.enter("http://a", delay).await;
        let b = gate.enter("http://a", delay).await;
        assert!(start.elapsed() >= delay, "the second waited for the delay");
        drop(b);
        // A third request to `a` waits out a long delay; another host goes first.
        let long = Duration::from_secs(30);
        let c = gate.enter("http://c", long).await;
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter("http://c", long).await })
        };
        let other = gate.enter("http://b", long).await;
        assert!(!waiting.is_finished(), "still waiting for c's delay");
        waiting.abort();
        drop((c, other));

        // Both slots of `d` are taken: a third request waits for one to be given back.
        let d1 = gate.enter("http://d", Duration::ZERO).await;
        let d2 = gate.enter("http://d", Duration::ZERO).await;
        let third = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter("http://d", Duration::ZERO).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!third.is_finished(), "no slot free");
        drop(d1);
        drop(third.await.unwrap());
        drop((d2, a));

        // Nothing in flight at `e` any more, but its delay still holds.
        drop(gate.enter("http://e", delay).await);
        let before = Instant::now();
        drop(gate.enter("http://e", delay).await);
        assert!(
            before.elapsed() >= delay * 9 / 10,
            "kept after the host went idle"
        );
    }
}
