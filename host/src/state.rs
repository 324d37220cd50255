//! What every request handler may use: [`AppState`], the node's handles, and the narrower
//! states the operations endpoints and the key check take from it.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::Auth;
use crate::config::Settings;
use crate::ops::OpsState;
use assistants_core::blobs::Blobs;
use assistants_core::ingest::IngestHandle;
use assistants_core::search::SearchIndexes;
use assistants_core::store::Store;

/// Everything a handler may use, behind one `Arc`: axum clones the state for every request
/// and extractor, and cloning the parts one by one (pools, channels, cancellation tokens,
/// whose clone takes a lock) showed in profiles of the cheapest requests.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The node's handles, each cheap to clone on its own for a task that outlives a request.
pub struct AppParts {
    pub store: Store,
    pub blobs: Blobs,
    pub settings: Arc<Settings>,
    pub auth: Arc<Auth>,
    pub ingest: IngestHandle,
    /// Wakes this node's crawl workers.
    pub crawls: assistants_core::crawl::CrawlHandle,
    pub search: Arc<SearchIndexes>,
    pub plugins: Arc<assistants_core::plugins::PluginHost>,
    /// The code_interpreter tool (its status for `GET /v1/plugins`).
    pub interpreter: Arc<assistants_core::interpreter::service::CodeInterpreter>,
    /// Seals clients' secrets the store keeps (an MCP server's headers).
    pub seal: Arc<assistants_core::seal::SealKey>,
    pub runs: assistants_worker::transitions::RunsHandle,
    /// Draining and ending signals of graceful shutdown.
    pub lifecycle: assistants_core::lifecycle::Lifecycle,
    /// Each project's recent share of the node, and the threads for those over it.
    pub shares: Arc<assistants_core::shares::Shares>,
}

impl AppState {
    /// Listens to a run's events (before the run can start, where a stream or a waiting
    /// request must miss none).
    pub async fn subscribe(
        &self,
        run_id: &str,
    ) -> crate::error::ApiResult<assistants_core::bus::Subscription> {
        self.runs
            .bus
            .subscribe(run_id)
            .await
            .map_err(|e| crate::error::ApiError::internal("subscribing to run events", e))
    }
}

impl FromRef<AppState> for OpsState {
    fn from_ref(s: &AppState) -> OpsState {
        OpsState {
            store: s.store.clone(),
            lifecycle: s.lifecycle.clone(),
            queue: s.runs.queue.clone(),
            bus: s.runs.bus.clone(),
        }
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(s: &AppState) -> Store {
        s.store.clone()
    }
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(s: &AppState) -> Arc<Auth> {
        s.auth.clone()
    }
}
