//! The crawl workers: each claims a crawl in progress and drives its pass, breadth-first from
//! the roots, until the frontier is empty or a bound of the pass is reached.
//!
//! Per page: the grant (only hosts the operator granted the `crawler` component), the site's
//! robots.txt (fetched once per claim through the same component), a turn at the host's gate
//! (politeness delay, per-host concurrency), the fetch, then one fenced write of the result:
//! a page that changed becomes a new vector-store file (the old one deleted), an unchanged page
//! keeps its file, a page gone (404/410) loses it, and the links found are queued. Work lives
//! in the database: a node that dies mid-crawl loses its lease and another resumes from the
//! queued pages (a page whose result was not written is fetched again).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::gate::HostGate;
use super::page::{decide, Pass, RobotsCache};
use super::{CrawlHandle, Deps, CRAWLER};
use crate::model::ids::now;
use crate::model::PageStatus;
use crate::store::crawls::{CrawlJob, PageRow};
use crate::store::StoreError;

/// How often idle workers look for crawls (and re-crawls due) they were not told about.
const POLL: Duration = Duration::from_secs(2);
/// Claims of one pass before it is given up (each a node that died or stopped mid-pass).
const MAX_ATTEMPTS: i64 = 5;
/// Pages of a crawl fetched at once (each still waits its turn at its host's gate).
const PARALLEL: usize = 4;

/// Starts `deps.settings.concurrency` workers that run until `stop` is cancelled.
pub fn spawn_workers(
    deps: Deps,
    handle: CrawlHandle,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let gate = Arc::new(HostGate::new(deps.settings.host_concurrency));
    (0..deps.settings.concurrency)
        .map(|_| {
            let (deps, gate, handle, stop) =
                (deps.clone(), gate.clone(), handle.clone(), stop.clone());
            tokio::spawn(async move { worker(deps, gate, handle, stop).await })
        })
        .collect()
}

async fn worker(deps: Deps, gate: Arc<HostGate>, handle: CrawlHandle, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        let woken = handle.wake.notified();
        // A node whose operator granted the crawler no site takes no crawl: another node may.
        if deps.plugins.get(CRAWLER).is_some() {
            if let Err(e) = deps.store.start_due_passes().await {
                tracing::warn!(error = %e, "starting re-crawls failed; retrying");
            }
            match deps
                .store
                .claim_crawl(deps.settings.lease_secs as i64)
                .await
            {
                Ok(Some(job)) => {
                    drive(&deps, &gate, job, &stop).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "claiming a crawl failed; retrying"),
            }
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn drive(deps: &Deps, gate: &HostGate, job: CrawlJob, stop: &CancellationToken) {
    use tracing::Instrument;
    let span = tracing::info_span!("crawl", crawl_id = %job.crawl.id,
        vector_store_id = %job.crawl.vector_store_id, pass = job.crawl.pass);
    async {
        if job.attempts > MAX_ATTEMPTS {
            let msg = "The crawl's pass was interrupted repeatedly; giving up.";
            if let Err(e) = deps.store.fail_crawl(&job, "server_error", msg).await {
                tracing::warn!(error = %e, "could not mark the crawl failed");
            }
            return;
        }
        // The lease is renewed while the pass runs; `lost` tells the pass it was not.
        let lost = CancellationToken::new();
        let lease = deps.settings.lease_secs as i64;
        // Renewed four times per lease: a slow database round trip does not lose it.
        let every = Duration::from_millis((lease as u64 * 1000 / 4).max(250));
        let renewing = {
            let (store, job, lost) = (deps.store.clone(), job.clone(), lost.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match store.renew_crawl(&job, lease).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => tracing::warn!(error = %e, "renewing the crawl's lease failed"),
                    }
                }
                lost.cancel();
            })
        };
        let halt = Halt { lost: &lost, stop };
        match run_pass(deps, gate, &job, &halt).await {
            Ok(()) => {}
            // The lease lapses and a node (maybe this one) resumes the pass.
            Err(e) => tracing::warn!(error = %e, "the crawl stopped on an error; it will resume"),
        }
        renewing.abort();
        if stop.is_cancelled() && !lost.is_cancelled() {
            // This node is stopping: another may take the crawl over at once.
            if let Err(e) = deps.store.release_crawl(&job).await {
                tracing::warn!(error = %e, "could not hand the crawl back; its lease will lapse");
            }
        }
    }
    .instrument(span)
    .await
}

/// Why a pass stops early: the node is stopping, or it no longer holds the crawl.
struct Halt<'a> {
    lost: &'a CancellationToken,
    stop: &'a CancellationToken,
}

impl Halt<'_> {
    fn now(&self) -> bool {
        self.lost.is_cancelled() || self.stop.is_cancelled()
    }
}

async fn run_pass(
    deps: &Deps,
    gate: &HostGate,
    job: &CrawlJob,
    halt: &Halt<'_>,
) -> Result<(), StoreError> {
    let Some(crawler) = deps.plugins.get(CRAWLER) else {
        return Ok(());
    };
    let pass = Pass {
        deps,
        gate,
        job,
        crawler,
        robots: RobotsCache::default(),
        problem: Default::default(),
    };
    let spec = &job.crawl.spec;
    let settings = &deps.settings;
    let deadline = job.crawl.pass_started_at + settings.max_pass_secs as i64;
    let max_bytes = (settings.max_pass_mib << 20) as i64;
    // What the pass fetched before this claim, then what this claim adds.
    let mut fetched = job.crawl.pages_fetched;
    let mut bytes = job.crawl.bytes_fetched;
    loop {
        if halt.now() {
            return Ok(());
        }
        // The frontier first: a pass that ends exactly at a bound reached everything.
        let room = (i64::from(spec.max_pages) - fetched).max(1);
        let batch = deps
            .store
            .frontier(job, room.min(PARALLEL as i64 * 2))
            .await?;
        if batch.is_empty() {
            return finish(&pass, true).await;
        }
        let bound = if fetched >= i64::from(spec.max_pages) {
            Some(format!("max_pages ({}) was reached", spec.max_pages))
        } else if bytes >= max_bytes {
            Some(format!(
                "the pass's byte budget ({} MiB) was reached",
                settings.max_pass_mib
            ))
        } else if now() >= deadline {
            Some(format!(
                "the pass's time limit ({} s) was reached",
                settings.max_pass_secs
            ))
        } else {
            None
        };
        if let Some(reason) = bound {
            if deps.store.skip_queued(job, &reason).await?.is_none() {
                return Ok(());
            }
            tracing::info!(%reason, "the crawl's pass stops at a bound");
            return finish(&pass, false).await;
        }
        use futures::StreamExt;
        // Every visit is seen to its end before an error stops the pass: one dropped midway
        // could leave a page's bytes stored without its row.
        let visits: Vec<_> = futures::stream::iter(batch)
            .map(|page| visit(&pass, page, halt))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for v in visits {
            let (pages, got) = v?;
            fetched += pages;
            bytes += got;
        }
    }
}

async fn finish(pass: &Pass<'_>, complete: bool) -> Result<(), StoreError> {
    let problem = pass
        .problem
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let message = problem.map(|p| format!("No page could be stored: {p}"));
    let error = message.as_deref().map(|m| ("crawl_failed", m));
    let store = &pass.deps.store;
    if let Some(deleted) = store.finish_pass(pass.job, complete, error).await? {
        pass.deps.blobs.delete_files(&deleted).await;
        tracing::info!(removed = deleted.len(), complete, "the crawl's pass ended");
    }
    Ok(())
}

/// Visits one queued page and writes what became of it; the pages it fetched (0 or 1) and
/// the bytes.
async fn visit(pass: &Pass<'_>, page: PageRow, halt: &Halt<'_>) -> Result<(i64, i64), StoreError> {
    if halt.now() {
        return Ok((0, 0));
    }
    let (write, new_file) = decide(pass, &page).await?;
    let counted = (write.pages_fetched, write.bytes_fetched);
    if page.depth == 0 {
        if let Some(p) = write.pages.iter().find(|p| {
            !matches!(
                p.status,
                PageStatus::Stored | PageStatus::Unchanged | PageStatus::Redirected
            )
        }) {
            let mut problem = pass.problem.lock().unwrap_or_else(|e| e.into_inner());
            problem.get_or_insert_with(|| {
                format!("{}: {}", p.url, p.reason.as_deref().unwrap_or("not stored"))
            });
        }
    }
    match pass.deps.store.record_pages(pass.job, &write).await {
        Ok(Some(deleted)) => {
            pass.deps.blobs.delete_files(&deleted).await;
            if new_file.is_some() {
                pass.deps.ingest.notify();
            }
            Ok(counted)
        }
        Ok(None) => {
            // Cancelled or taken over: what was fetched is not kept.
            halt.lost.cancel();
            if let Some(id) = new_file {
                pass.deps.blobs.delete_files(&[id]).await;
            }
            Ok((0, 0))
        }
        Err(e) => {
            if let Some(id) = new_file {
                pass.deps.blobs.delete_files(&[id]).await;
            }
            Err(e)
        }
    }
}
