//! `assistants-host`: a self-hosted server for the OpenAI Assistants API v2.
//!
//! Map of the crate:
//! - [`config`]: command line, environment and TOML settings; each subsystem owns its settings
//!   type, this only assembles them.
//! - [`api`]: the HTTP surface, one module per resource; handlers validate, then call the store
//!   or a run transition (`assistants_worker::transitions`).
//! - [`state`]: what handlers share ([`state::AppState`]).
//! - [`auth`]: API keys → projects.
//! - [`janitor`]: periodic clean-up of expired files, uploads, tombstones and responses not
//!   to be kept.
//! - [`ops`]: `/healthz`, `/readyz`, Prometheus `/metrics`.
//! - [`playground`]: the web playground at `/playground` (assets embedded in the binary).
//! - [`serve`]: the HTTP server loop (connection cap, header-read and idle timeouts).
//! - [`error`]: the one mapping from failures to status codes and OpenAI error envelopes.
//! - [`crawl_cli`]: `assistants crawl …` (a crawl recorded for the nodes to carry out).
//! - [`plugin_cli`]: `assistants plugins …` (list, check, call, test fixtures, new from a
//!   template).
//!
//! Below it: `assistants-worker` (the run engine and every run transition) and
//! `assistants-core` (domain model, store, blobs, search, ingestion, LLM client, plugin host,
//! run queue and events, lifecycle, metrics), which both the API and the engine depend on.
//!
//! [`start`] wires them together for a bound listener and a shutdown future, which is how the
//! binary and the integration tests both run the server.

pub(crate) mod api;
pub(crate) mod auth;
pub mod config;
pub mod crawl_cli;
pub(crate) mod error;
pub mod janitor;
pub(crate) mod ops;
pub(crate) mod playground;
pub mod plugin_cli;
pub mod serve;
pub(crate) mod state;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use assistants_core::lifecycle::Lifecycle;
use assistants_core::{blobs, bus, ingest, llm, plugins, search, store};
use assistants_worker::{engine, pool, transitions};

use crate::config::Settings;
use crate::state::AppState;

/// Opens storage, migrates, and serves on `listener` until `shutdown` resolves; unless
/// `settings.runs.worker` is off, this node also drives runs.
///
/// Shutdown is graceful and bounded ([`Lifecycle`]): when `shutdown` resolves the node
/// drains — readiness fails, no new connections or runs are taken, requests, streams and runs
/// in flight get `shutdown_grace_secs` to finish. Then streams still open end with an `error`
/// event, runs still in flight are handed back (another worker resumes them from their last
/// persisted step), ingestion stops between files (a file in progress is picked up again
/// through its lease), and this returns.
pub async fn start(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_node(settings, Some(listener), shutdown).await
}

/// A worker-only node: drives runs and ingests files, serves no API; on `listener`, if given,
/// it serves the operations endpoints (`/healthz`, `/readyz`, `/metrics`).
pub async fn start_worker(
    settings: Settings,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_node(settings, listener, shutdown).await
}

async fn run_node(
    settings: Settings,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = store::Store::connect(&settings.storage.database_url).await?;
    store.migrate().await?;
    let blobs = blobs::Blobs::open(
        settings.storage.object_store_url.as_deref(),
        &settings.storage.data_dir,
    )?;
    blobs
        .check()
        .await
        .context("the object store is not usable")?;

    let stop = CancellationToken::new();
    let lifecycle = Lifecycle::default();
    let mut plugin_settings = settings.plugins.clone();
    if plugin_settings.cache_dir.is_none() {
        plugin_settings.cache_dir = Some(settings.storage.data_dir.join("plugin-cache"));
    }
    let llm = Arc::new(llm::Llm::new(&settings.llm)?);
    let embedder: Option<Arc<dyn llm::Embeddings>> = match &settings.llm.embedding_model {
        Some(model) => Some(Arc::new(llm::UpstreamEmbeddings {
            llm: llm.clone(),
            model: model.clone(),
        })),
        None => {
            tracing::info!(
                "no embeddings model configured: vector-store search is lexical (BM25) only"
            );
            None
        }
    };
    // Large stores' indexes are persisted next to the files, so a restarted or another node
    // loads them instead of reading every chunk.
    let mut search = search::SearchIndexes::new(embedder);
    if settings.search_snapshot_min_chunks > 0 {
        search = search.with_snapshots(blobs.clone(), settings.search_snapshot_min_chunks);
    }
    let search = Arc::new(search);
    let plugin_search = Arc::new(search::PluginSearch {
        store: store.clone(),
        indexes: search.clone(),
    });
    // Run events and the run queue: in-process unless distributed mode names Redis/RabbitMQ.
    let bus: Arc<dyn bus::EventBus> = match &settings.runs.events_url {
        Some(url) => Arc::new(bus::distributed::RedisBus::connect(url, stop.clone()).await?),
        None => Arc::new(bus::LocalBus::default()),
    };
    // Plugins uploaded through the API are served by every node: kept in the database and
    // the object store, announced on the bus.
    let catalog = Arc::new(assistants_core::catalog::SharedCatalog {
        store: store.clone(),
        blobs: blobs.clone(),
        bus: bus.clone(),
    });
    // Subscribed before loading, so no change announced meanwhile is missed.
    let catalog_nudges = bus.subscribe(bus::PLUGINS_CHANNEL).await?;
    let plugins = Arc::new(
        plugins::PluginHost::load_with(&plugin_settings, Some(plugin_search), Some(catalog))
            .await?,
    );
    let ingest = ingest::IngestHandle::default();
    // Ingestion reads documents through the parser components and embeds chunks.
    let workers = ingest::spawn_workers(
        settings.ingest_concurrency,
        ingest::Deps {
            store: store.clone(),
            blobs: blobs.clone(),
            parsers: plugins.clone(),
            search: search.clone(),
            limits: settings.limits,
        },
        ingest.clone(),
        // No new files once the node drains; the one in progress is abandoned at the end.
        lifecycle.draining.clone(),
    );

    // Crawls are driven where runs are: worker nodes (and the embedded default).
    let crawls = assistants_core::crawl::CrawlHandle::default();
    let mut crawl_workers = Vec::new();
    if settings.runs.worker {
        crawl_workers = assistants_core::crawl::worker::spawn_workers(
            assistants_core::crawl::Deps {
                store: store.clone(),
                blobs: blobs.clone(),
                plugins: plugins.clone(),
                ingest: ingest.clone(),
                limits: settings.limits,
                settings: settings.crawl,
            },
            crawls.clone(),
            // A draining node hands its crawls back; another node resumes them.
            lifecycle.draining.clone(),
        );
    }

    let mut run_tasks = Vec::new();
    // What gets the grace period on shutdown: the HTTP server and the worker pool.
    let draining_tasks = tokio_util::task::TaskTracker::new();
    let (local_queue, deliveries) = bus::LocalQueue::new();
    let queue: Arc<dyn bus::RunQueue> = match &settings.runs.queue_url {
        Some(url) => {
            let name = &settings.runs.queue_name;
            let q = bus::distributed::RabbitQueue::connect(url, name).await?;
            if settings.runs.worker {
                run_tasks.push(bus::distributed::spawn_rabbit_consumer(
                    url.clone(),
                    name.clone(),
                    settings.runs.concurrency.min(u16::MAX as usize) as u16,
                    local_queue.sender(),
                    lifecycle.clone(),
                    stop.clone(),
                ));
            }
            Arc::new(q)
        }
        None => Arc::new(local_queue),
    };
    let handle = transitions::RunsHandle {
        bus: bus.clone(),
        queue,
        store: store.clone(),
    };
    // Cells run where runs are driven; an API-only node only reports the tool's status.
    let interpreter = if settings.runs.worker {
        assistants_core::interpreter::service::CodeInterpreter::start(
            settings.code_interpreter.clone(),
            plugins::cache::CacheKey::load(plugin_settings.cache_key_file.as_deref()),
            Some(blobs.clone()),
        )
    } else {
        assistants_core::interpreter::service::CodeInterpreter::unavailable(
            settings.code_interpreter.clone(),
            "this node serves the API only; worker nodes run code_interpreter cells",
            Some(blobs.clone()),
        )
    };
    let seal = assistants_core::seal::SealKey::load(settings.secrets_key_file.as_deref())?;
    // Components added, replaced or removed in the plugins directory, or uploaded through the
    // API on any node, take effect while the node runs; runs already started keep theirs
    // (pinned by digest).
    let reload_every = match plugin_settings.reload_secs.unwrap_or(2) {
        0 => None,
        secs => Some(std::time::Duration::from_secs(secs)),
    };
    let watcher = plugins
        .clone()
        .watch(reload_every, Some(catalog_nudges), stop.clone());
    let janitor = janitor::Janitor {
        store: store.clone(),
        blobs: blobs.clone(),
        interpreter: interpreter.clone(),
    }
    .spawn(stop.clone());
    // Whose work the node's cores do first: requests and runs of the projects within their share.
    let shares = Arc::new(assistants_core::shares::Shares::new()?);
    if settings.runs.worker {
        let engine = Arc::new(engine::Engine {
            seal: seal.clone(),
            store: store.clone(),
            plugins: plugins.clone(),
            interpreter: interpreter.clone(),
            blobs: blobs.clone(),
            limits: settings.limits,
            llm: llm.clone(),
            bus: bus.clone(),
            lease_secs: settings.runs.lease_secs,
            held: Default::default(),
        });
        let pool = pool::spawn_worker_pool(
            engine,
            deliveries,
            settings.runs.concurrency,
            settings
                .limits
                .max_runs
                .unwrap_or(settings.runs.concurrency),
            shares.clone(),
            lifecycle.clone(),
        );
        draining_tasks.spawn(async move {
            let _ = pool.await;
        });
        // A draining node re-queues nothing: its own released runs go to other workers.
        run_tasks.push(pool::spawn_sweeper(
            store.clone(),
            handle.clone(),
            lifecycle.draining.clone(),
        ));
    }

    let grace = std::time::Duration::from_secs(settings.shutdown_grace_secs);
    let drain_delay = std::time::Duration::from_secs(settings.drain_delay_secs);
    let state = AppState::new(state::AppParts {
        store,
        blobs,
        settings: Arc::new(settings),
        auth: Arc::new(auth::Auth::default()),
        ingest,
        crawls,
        search,
        plugins,
        interpreter,
        seal,
        runs: handle,
        lifecycle: lifecycle.clone(),
        shares,
    });
    match listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "listening");
            if state.settings.runs.api {
                secure(&state.store, addr, state.settings.allow_open).await?;
            }
            let limits = state.settings.connections;
            let router = if state.settings.runs.api {
                api::router(state)
            } else {
                ops::router().with_state(state)
            };
            // The listener stays open `drain_delay` into draining: /readyz answers 503 meanwhile,
            // so balancers stop routing here before connections would be refused.
            let draining = lifecycle.draining.clone();
            draining_tasks.spawn(serve::serve(listener, router, limits, async move {
                draining.cancelled().await;
                tokio::time::sleep(drain_delay).await;
            }));
        }
        None => tracing::info!("worker node running"),
    }
    draining_tasks.close();
    shutdown.await;
    tracing::info!(grace_secs = grace.as_secs(), "draining");
    lifecycle.draining.cancel();
    tokio::select! {
        _ = draining_tasks.wait() => {}
        _ = tokio::time::sleep(grace.max(drain_delay)) => {}
    }
    lifecycle.ending.cancel();
    // Streams end and runs are handed back within moments of `ending`.
    if tokio::time::timeout(std::time::Duration::from_secs(5), draining_tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still open 5 s after the grace period; stopping anyway");
    }
    stop.cancel();
    // Background tasks get a moment to stop on their own (connections closed politely); then
    // they are aborted: a file still being ingested is abandoned (its lease lapses and another
    // node, or this one after a restart, ingests it again).
    let mut rest: Vec<tokio::task::JoinHandle<()>> = workers;
    rest.extend(crawl_workers);
    rest.extend(run_tasks);
    rest.push(janitor);
    rest.push(watcher);
    let aborts: Vec<_> = rest.iter().map(|t| t.abort_handle()).collect();
    let all = futures::future::join_all(rest);
    if tokio::time::timeout(std::time::Duration::from_secs(2), all)
        .await
        .is_err()
    {
        for a in aborts {
            a.abort();
        }
    }
    Ok(())
}

/// An API node reachable beyond loopback never starts open (see [`auth::secure_exposed_start`]);
/// a key it creates is printed here, once, to the console and not to the log.
async fn secure(
    store: &store::Store,
    addr: std::net::SocketAddr,
    allow_open: bool,
) -> anyhow::Result<()> {
    if let auth::Exposure::KeyCreated(id, key) =
        auth::secure_exposed_start(store, addr, allow_open).await?
    {
        tracing::warn!(%addr, key_id = %id, "no API key existed and this server is reachable beyond loopback: created one for the default project");
        eprintln!(
            "\nThis server listens on {addr} and had no API key, so it created one for the default\n\
             project. It is shown only this once; clients send it as `Authorization: Bearer KEY`:\n\n\
             \x20   {key}\n\n\
             (Manage keys with `assistants keys`; to serve without keys here, pass --allow-open.)\n"
        );
    }
    Ok(())
}
