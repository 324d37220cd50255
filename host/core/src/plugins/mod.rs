//! The plugin host: loads tool, retrieval-tool and strategy components, checks their manifests
//! against the operator's grants, and runs their calls in the sandbox (`runtime`).
//!
//! Lifecycle of a plugin: bytes + manifest → content digest → compiled component (from the
//! on-disk cache when possible) → `InstancePre` (imports resolved once) → `describe()` once
//! to learn its tools → registered under its id. Each `invoke` (or `step`) then instantiates
//! from the `InstancePre` into a fresh store, calls, and drops the store. Every loaded
//! component is also archived by digest, so a run that recorded the digest it started with
//! gets the same component back (`by_digest`) even after the operator replaced the plugin.

pub mod bindings;
pub mod cache;
pub mod catalog;
mod config;
pub mod egress;
pub(crate) mod exec;
mod instance;
mod logging;
pub mod manifest;
mod naming;
pub use naming::OfferedTool;
mod outcome;
mod parser;
mod registry;
mod reload;
pub use reload::Reload;
mod secrets;
pub use registry::BUILTIN_PLUGINS;
pub mod retrieval;
pub mod runtime;
mod strategy;
mod tool;
mod world;

use outcome::{annotation_size, call_outcome, cap_error, cap_text, describe_trap};
use world::World;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use bindings::{CallContext, ParseError, ToolError, ToolOutput, ToolSpec};
use instance::Instance;
use manifest::{Caps, Effective, Grant, Kind, Manifest};
use runtime::{CallState, MemoryBudget, MemoryStop, PluginEngine, PoolSize};

/// How the plugin host is configured (from the server settings).
#[derive(Debug, Clone, Default)]
pub struct PluginSettings {
    /// Directory of operator plugins (`NAME.wasm` + `NAME.toml`).
    pub dir: Option<PathBuf>,
    /// Where compiled components are cached (and loaded components archived).
    pub cache_dir: Option<PathBuf>,
    /// The key file that authenticates the cache [default: `$HOME/.config/assistants/plugin-cache.key`];
    /// keep it outside the data directory.
    pub cache_key_file: Option<PathBuf>,
    /// Grants per plugin id.
    pub grants: BTreeMap<String, Grant>,
    /// Concurrent calls per world [default: one per 8 MiB of the memory budget, 16 to 1000].
    pub instances: Option<u32>,
    /// Linear memory of all calls in flight together, in MiB [default: half the memory the
    /// process may use].
    pub memory_budget_mib: Option<u64>,
    /// Operator caps on every plugin's limits.
    pub caps: Caps,
    /// How often the plugins directory is scanned for changes, and the catalog of uploaded
    /// plugins read, in seconds; 0: never (directory changes need a restart; uploads arrive
    /// by bus event only) [default: 2].
    pub reload_secs: Option<u64>,
}

/// A loaded, callable plugin.
pub struct Plugin {
    pub manifest: Manifest,
    /// sha256 of the component bytes.
    pub digest: String,
    pub builtin: bool,
    pub tools: Vec<ToolSpec>,
    /// File extensions a parser plugin reads (empty for other kinds).
    pub formats: Vec<String>,
    pub limits: Effective,
    /// The projects (ids or names) that may use it, from the grant; `None`: every project.
    pub projects: Option<Vec<String>>,
    /// The plugin's share of its world's instance slots ([`world::World::share`]).
    slots: Arc<tokio::sync::Semaphore>,
    config: Arc<BTreeMap<String, String>>,
    http: Arc<egress::HttpPolicy>,
    id: Arc<str>,
    pre: Instance,
}

/// A project as plugin allow-lists name it: by id or by name (`keys create --project NAME`).
#[derive(Debug, Clone)]
pub struct ProjectRef {
    pub id: String,
    pub name: Option<String>,
}

impl Plugin {
    /// Whether the operator's grant lets this plugin reach `host:port` (before DNS: the
    /// address is checked again when a request goes out).
    pub fn may_reach(&self, host: &str, port: u16) -> bool {
        egress::host_matches(&self.http.hosts, host, port)
    }

    /// Whether its grant opens private addresses (where secrets may go over plain http).
    pub fn allows_private_addresses(&self) -> bool {
        self.http.allow_private_addresses
    }

    /// Whether `project` may use this plugin (the operator's `projects` allow-list).
    pub fn allows(&self, project: &ProjectRef) -> bool {
        self.projects.as_ref().is_none_or(|list| {
            list.iter()
                .any(|p| *p == project.id || project.name.as_deref() == Some(p.as_str()))
        })
    }
}

/// Most text a parser may return for one document (it is stored and tokenised host-side).
pub(crate) const MAX_PARSED_TEXT: usize = 32 * 1024 * 1024;

/// Largest strategy state a step may return; it is persisted after every step.
pub(crate) const MAX_STRATEGY_STATE: usize = 1024 * 1024;
/// Longest error text a strategy step may return; it becomes the run's `last_error.message`.
pub(crate) const MAX_STRATEGY_ERROR: usize = 8 * 1024;

/// How a plugin is listed by `GET /v1/plugins` and `assistants plugins list`.
#[derive(Debug, Serialize)]
pub struct PluginInfo {
    pub id: String,
    pub object: &'static str,
    pub version: String,
    pub kind: Kind,
    pub description: String,
    pub digest: String,
    pub builtin: bool,
    pub tools: Vec<serde_json::Value>,
    pub limits: Effective,
}

/// Built-in components the host calls itself: the MCP client (for `mcp` tools naming remote
/// servers) and the crawler (for vector-store crawls). Tools by their world, but never offered
/// as tools of their own: not to models, not as an assistant's tool type, not over `/mcp`.
pub const HOST_COMPONENTS: [&str; 2] = [crate::model::mcp::PLUGIN, "crawler"];

impl Plugin {
    /// Whether it implements a tool world (what tool calls and `describe` need).
    pub fn is_tool(&self) -> bool {
        matches!(self.manifest.kind, Kind::Tool | Kind::RetrievalTool)
    }

    /// Whether assistants, responses and MCP clients may use its tools: a tool that is not one
    /// of the [`HOST_COMPONENTS`].
    pub fn is_offered_tool(&self) -> bool {
        self.is_tool() && !HOST_COMPONENTS.contains(&self.manifest.id.as_str())
    }

    pub fn info(&self) -> PluginInfo {
        PluginInfo {
            id: self.manifest.id.clone(),
            object: "plugin",
            version: self.manifest.version.clone(),
            kind: self.manifest.kind,
            description: self.manifest.description.clone(),
            digest: self.digest.clone(),
            builtin: self.builtin,
            tools: self
                .tools
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "name": t.name,
                        "description": t.description,
                        "parameters": serde_json::from_str::<serde_json::Value>(&t.parameters_json).unwrap_or_default(),
                        "strict": t.strict,
                    })
                })
                .collect(),
            limits: self.limits,
        }
    }
}

pub struct PluginHost {
    tools: World,
    retrieval_tools: World,
    strategies: World,
    parsers: World,
    caps: Caps,
    cache: Option<cache::ArtifactCache>,
    /// The plugins serving, by id: a snapshot replaced whole when the directory changes
    /// (`reload`), so readers never wait on a reload.
    plugins: std::sync::RwLock<Arc<HashMap<String, Arc<Plugin>>>>,
    /// Where the plugins serving came from (the directory as last scanned, the catalog as
    /// last synced); locked by whatever changes what serves, one change at a time.
    sources: tokio::sync::Mutex<Sources>,
    /// The uploaded plugins every node serves (none in tools without a server).
    catalog: Option<Arc<dyn catalog::Catalog>>,
    /// Per id, why its newer file in the directory was refused (the old one keeps serving).
    refused: std::sync::Mutex<HashMap<String, String>>,
    /// Vector-store search for retrieval tools (none in tools that load plugins without a
    /// server, such as `assistants plugins call`).
    search: Option<Arc<dyn retrieval::VectorSearch>>,
    /// Plugins loaded again by digest for runs pinned to a component no longer installed.
    pinned: tokio::sync::Mutex<HashMap<String, Arc<Plugin>>>,
    /// The settings the host was loaded with (grants apply to plugins loaded by digest too).
    settings: PluginSettings,
    /// Instance slots per world.
    instances: u32,
    /// Memory of all calls in flight, across worlds.
    budget: Arc<MemoryBudget>,
    /// Where guest code runs.
    guests: exec::GuestThreads,
}

/// The sources of operator plugins besides the built-ins, as this node last saw them.
#[derive(Default)]
struct Sources {
    dir: reload::DirState,
    catalog: catalog::CatalogState,
}

/// Why a call failed, for the model (`tool-error`) and the logs.
pub fn error_text(e: &ToolError) -> String {
    match e {
        ToolError::InvalidArguments(m) => format!("invalid arguments: {m}"),
        ToolError::UnknownTool(m) => format!("unknown tool: {m}"),
        ToolError::Failed(m) => m.clone(),
    }
}

impl PluginHost {
    fn store(&self, plugin: &Plugin) -> wasmtime::Store<CallState> {
        self.store_with(plugin, plugin.http.clone())
    }

    /// A call's store whose outgoing HTTP follows `http` (the plugin's policy, or that policy
    /// with a call's own headers).
    fn store_with(
        &self,
        plugin: &Plugin,
        http: Arc<egress::HttpPolicy>,
    ) -> wasmtime::Store<CallState> {
        let state = CallState::new(
            plugin.id.clone(),
            plugin.config.clone(),
            plugin.limits.memory_mib,
            http,
            self.budget.clone(),
        );
        runtime::call_store(
            &self.world(plugin.manifest.kind).engine.engine,
            state,
            Duration::from_millis(plugin.limits.timeout_ms),
        )
    }

    fn world(&self, kind: Kind) -> &World {
        match kind {
            Kind::Tool => &self.tools,
            Kind::RetrievalTool => &self.retrieval_tools,
            Kind::Strategy => &self.strategies,
            Kind::Parser => &self.parsers,
        }
    }

    /// The plugins serving now.
    fn snapshot(&self) -> Arc<HashMap<String, Arc<Plugin>>> {
        self.plugins.read().expect("plugins lock poisoned").clone()
    }

    /// Changes the plugins serving: `f` edits a copy, which then replaces them at once.
    fn update(&self, f: impl FnOnce(&mut HashMap<String, Arc<Plugin>>)) {
        let mut serving = self.plugins.write().expect("plugins lock poisoned");
        let mut next = HashMap::clone(&serving);
        f(&mut next);
        *serving = Arc::new(next);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Plugin>> {
        self.snapshot().get(id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Plugin>> {
        let mut all: Vec<_> = self.snapshot().values().cloned().collect();
        all.sort_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
        all
    }

    /// Instance slots of `kind`'s world held by calls right now (of its pool of
    /// `instances`), for operators and tests.
    pub fn slots_in_use(&self, kind: manifest::Kind) -> usize {
        self.world(kind).in_use(self.instances)
    }

    /// The memory budget of all calls in flight: (bytes charged now, limit).
    pub fn memory_in_use(&self) -> (u64, u64) {
        (self.budget.in_use(), self.budget.limit())
    }

    /// Whether any plugin is limited to some projects (only then does a caller's project
    /// name need looking up).
    pub fn restricts_projects(&self) -> bool {
        self.snapshot().values().any(|p| p.projects.is_some())
    }
}
