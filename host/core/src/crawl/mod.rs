//! Crawling web sites into vector stores (the `/vector_stores/{id}/crawls` extension).
//!
//! The pages are fetched by the `crawler` component, through the operator's grant like any
//! plugin request (DNS and address checks, response caps); this module holds what the host
//! decides: what a crawl asks for (`spec`), which URLs a site's robots.txt allows (`robots`),
//! the politeness towards each site (`gate`), and the workers that drive crawls, durable
//! through database leases like ingestion (`worker`). Each page becomes a vector-store file
//! that ingestion parses like an uploaded one.

pub mod gate;
mod page;
pub mod robots;
pub mod spec;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::blobs::Blobs;
use crate::ingest::IngestHandle;
use crate::limits::ProjectLimits;
use crate::plugins::PluginHost;
use crate::store::Store;

/// The id of the component that fetches pages.
pub const CRAWLER: &str = "crawler";

/// What the workers read from and write to.
#[derive(Clone)]
pub struct Deps {
    pub store: Store,
    pub blobs: Blobs,
    pub plugins: Arc<PluginHost>,
    /// Woken when a page's file is attached, so ingestion starts at once.
    pub ingest: IngestHandle,
    pub limits: ProjectLimits,
    pub settings: CrawlSettings,
}

/// What an operator sets for crawls (`[crawl]` in the config file).
#[derive(Debug, Clone, Copy)]
pub struct CrawlSettings {
    /// Crawls one node drives at once (0: this node drives none).
    pub concurrency: usize,
    /// Least time between two requests to one site, in milliseconds (a site's robots.txt
    /// `crawl-delay` may ask for more).
    pub delay_ms: u64,
    /// Requests to one site in flight at once, from one node.
    pub host_concurrency: usize,
    /// Longest pass over a site, in seconds: the rest of its pages wait for the next pass.
    pub max_pass_secs: u64,
    /// Most page bytes one pass fetches, in MiB.
    pub max_pass_mib: u64,
    /// How long a node's claim of a crawl lasts without renewal: after a node dies, its
    /// crawl waits this long before another node resumes it.
    pub lease_secs: u64,
}

impl Default for CrawlSettings {
    fn default() -> Self {
        CrawlSettings {
            concurrency: 2,
            delay_ms: 1000,
            host_concurrency: 2,
            max_pass_secs: 3600,
            max_pass_mib: 256,
            lease_secs: 60,
        }
    }
}

/// Whether the operator's grant of the crawler (its `hosts`) covers `url`'s host, as the
/// loaded component's egress checks it (for the `assistants crawl` command, which loads no
/// component).
pub fn granted(hosts: &[String], url: &url::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let port = url.port_or_known_default().unwrap_or(0);
    crate::plugins::egress::host_matches(hosts, host, port)
}

/// Wakes the node's crawl workers (a crawl was created or re-crawled here). Cheap to clone.
#[derive(Clone, Default)]
pub struct CrawlHandle {
    wake: Arc<Notify>,
}

impl CrawlHandle {
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }
}
