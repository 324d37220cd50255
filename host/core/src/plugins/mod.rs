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
pub mod egress;
pub mod manifest;
mod naming;
mod outcome;
mod parser;
pub mod retrieval;
pub mod runtime;
mod strategy;
mod tool;
mod world;

pub use naming::{exposed_names, OfferedTool};
use outcome::{annotation_size, call_outcome, describe_trap};
use world::World;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use bindings::{
    CallContext, Event, ParseError, ParserPluginPre, RetrievalToolPluginPre, RunInput,
    StrategyPluginPre, ToolError, ToolOutput, ToolPluginPre, ToolSpec,
};
use manifest::{Caps, Effective, Grant, Kind, Manifest};
use runtime::{CallState, PluginEngine, PoolSize};

// `pub static BUILTIN_PLUGINS: &[(&str, &[u8], &str)]` — (file stem, component, manifest),
// built from `plugins/` by build.rs.
include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// How the plugin host is configured (from the server settings).
#[derive(Debug, Clone, Default)]
pub struct PluginSettings {
    /// Directory of operator plugins (`NAME.wasm` + `NAME.toml`).
    pub dir: Option<PathBuf>,
    /// Where compiled components are cached.
    pub cache_dir: Option<PathBuf>,
    /// Grants per plugin id.
    pub grants: BTreeMap<String, Grant>,
    /// Concurrent calls per world.
    pub instances: Option<u32>,
    /// Operator caps on every plugin's limits.
    pub caps: Caps,
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
    config: Arc<BTreeMap<String, String>>,
    http: Arc<egress::HttpPolicy>,
    id: Arc<str>,
    pre: Instance,
}

/// A pre-instantiated component of one of the worlds.
enum Instance {
    Tool(ToolPluginPre<CallState>),
    Retrieval(RetrievalToolPluginPre<CallState>),
    Strategy(StrategyPluginPre<CallState>),
    Parser(ParserPluginPre<CallState>),
}

impl Instance {
    /// Instantiates a tool component (plain or retrieval) into `store` and calls `describe`.
    async fn describe(
        &self,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<Vec<ToolSpec>> {
        match self {
            Instance::Tool(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .assistants_plugin_tool()
                    .call_describe(store)
                    .await
            }
            Instance::Retrieval(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .assistants_plugin_tool()
                    .call_describe(store)
                    .await
            }
            Instance::Strategy(_) | Instance::Parser(_) => Ok(Vec::new()),
        }
    }

    /// Instantiates a tool component into `store` and calls `invoke`.
    async fn invoke(
        &self,
        store: &mut wasmtime::Store<CallState>,
        ctx: &CallContext,
        tool: &str,
        arguments: &str,
    ) -> wasmtime::Result<Result<ToolOutput, ToolError>> {
        match self {
            Instance::Tool(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .assistants_plugin_tool()
                    .call_invoke(store, ctx, tool, arguments)
                    .await
            }
            Instance::Retrieval(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .assistants_plugin_tool()
                    .call_invoke(store, ctx, tool, arguments)
                    .await
            }
            Instance::Strategy(_) | Instance::Parser(_) => {
                Ok(Err(ToolError::UnknownTool("not a tool plugin".into())))
            }
        }
    }
}

/// Most text a parser may return for one document (it is stored and tokenised host-side).
pub const MAX_PARSED_TEXT: usize = 32 * 1024 * 1024;

/// Largest strategy state a step may return; it is persisted after every step.
pub const MAX_STRATEGY_STATE: usize = 1024 * 1024;

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

impl Plugin {
    /// Whether assistants can enable this plugin as a tool type.
    pub fn is_tool(&self) -> bool {
        matches!(self.manifest.kind, Kind::Tool | Kind::RetrievalTool)
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
    cache_dir: Option<PathBuf>,
    plugins: HashMap<String, Arc<Plugin>>,
    /// Vector-store search for retrieval tools (none in tools that load plugins without a
    /// server, such as `assistants plugins call`).
    search: Option<Arc<dyn retrieval::VectorSearch>>,
    /// Plugins loaded again by digest for runs pinned to a component no longer installed.
    pinned: tokio::sync::Mutex<HashMap<String, Arc<Plugin>>>,
    /// The settings the host was loaded with (grants apply to plugins loaded by digest too).
    settings: PluginSettings,
}

/// Why a call failed, for the model (`tool-error`) and the logs.
pub fn error_text(e: &ToolError) -> String {
    match e {
        ToolError::InvalidArguments(m) => format!("invalid arguments: {m}"),
        ToolError::UnknownTool(m) => format!("unknown tool: {m}"),
        ToolError::Failed(m) => m.clone(),
    }
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl PluginHost {
    /// Loads the built-in plugins and those in `settings.dir`. A plugin that fails to load is
    /// reported and skipped; the others still load.
    pub async fn load(settings: &PluginSettings) -> anyhow::Result<PluginHost> {
        Self::load_with_search(settings, None).await
    }

    /// [`PluginHost::load`], giving retrieval tools `search` over the server's vector stores.
    pub async fn load_with_search(
        settings: &PluginSettings,
        search: Option<Arc<dyn retrieval::VectorSearch>>,
    ) -> anyhow::Result<PluginHost> {
        let caps = settings.caps;
        let pool = PoolSize {
            instances: settings.instances.unwrap_or(1000),
            max_memory_mib: caps.memory_mib,
        };
        let mut host = PluginHost {
            tools: World::new(pool, PluginEngine::tool_linker)?,
            retrieval_tools: World::new(pool, PluginEngine::retrieval_linker)?,
            strategies: World::new(pool, PluginEngine::strategy_linker)?,
            // Parsers are pure like strategies: WASI (empty) and logging only.
            parsers: World::new(pool, PluginEngine::strategy_linker)?,
            caps,
            cache_dir: settings.cache_dir.clone(),
            plugins: HashMap::new(),
            search,
            pinned: Default::default(),
            settings: settings.clone(),
        };
        for (stem, wasm, manifest) in BUILTIN_PLUGINS {
            // A built-in plugin that needs grants (the weather example needs its API) stays
            // unloaded until the operator grants them.
            match host.prepare(wasm, manifest, settings, true).await {
                Ok(p) => {
                    host.plugins.insert(p.manifest.id.clone(), Arc::new(p));
                }
                Err(e) => tracing::info!(
                    plugin = stem,
                    reason = format!("{e:#}"),
                    "built-in plugin not loaded"
                ),
            }
        }
        if let Some(dir) = &settings.dir {
            for (wasm_path, toml_path) in plugin_files(dir)? {
                let result = async {
                    let wasm = std::fs::read(&wasm_path)?;
                    let manifest = std::fs::read_to_string(&toml_path)?;
                    host.prepare(&wasm, &manifest, settings, false).await
                }
                .await;
                match result {
                    Ok(p) if host.plugins.contains_key(&p.manifest.id) => {
                        tracing::error!(path = %wasm_path.display(), id = %p.manifest.id, "a plugin with this id is already loaded; skipped")
                    }
                    Ok(p) => {
                        tracing::info!(id = %p.manifest.id, digest = %p.digest, tools = p.tools.len(), "plugin loaded");
                        host.plugins.insert(p.manifest.id.clone(), Arc::new(p));
                    }
                    Err(e) => {
                        tracing::error!(path = %wasm_path.display(), error = format!("{e:#}"), "plugin not loaded")
                    }
                }
            }
        }
        Ok(host)
    }

    /// Validates and prepares one plugin: manifest, grants, world, and its tool list.
    pub async fn prepare(
        &self,
        wasm: &[u8],
        manifest: &str,
        settings: &PluginSettings,
        builtin: bool,
    ) -> anyhow::Result<Plugin> {
        let manifest_text = manifest;
        let manifest = Manifest::parse(manifest_text).context("invalid manifest")?;
        let grant = settings
            .grants
            .get(&manifest.id)
            .cloned()
            .unwrap_or_default();
        let (limits, warnings) =
            manifest::effective(&manifest, &grant, &self.caps).map_err(|missing| {
                anyhow::anyhow!(
                    "plugin '{}' requests more than it was granted: {}",
                    manifest.id,
                    missing.join("; ")
                )
            })?;
        for w in warnings {
            tracing::warn!(plugin = %manifest.id, "{w}");
        }
        let digest = digest(wasm);
        let world = self.world(manifest.kind);
        let component = world
            .engine
            .load_component(wasm, &digest, self.cache_dir.as_deref())?;
        let imports = |e: wasmtime::Error| {
            anyhow::Error::from(e)
                .context("the component imports something this kind of plugin may not use")
        };
        let not_world = |e: wasmtime::Error| {
            anyhow::Error::from(e).context(format!(
                "the component does not implement the world {}",
                manifest.world
            ))
        };
        let pre = world.linker.instantiate_pre(&component).map_err(imports)?;
        let pre = match manifest.kind {
            Kind::Tool => Instance::Tool(ToolPluginPre::new(pre).map_err(not_world)?),
            Kind::Strategy => Instance::Strategy(StrategyPluginPre::new(pre).map_err(not_world)?),
            Kind::RetrievalTool => {
                Instance::Retrieval(RetrievalToolPluginPre::new(pre).map_err(not_world)?)
            }
            Kind::Parser => Instance::Parser(ParserPluginPre::new(pre).map_err(not_world)?),
        };
        let config: BTreeMap<String, String> = manifest
            .config
            .iter()
            .filter(|c| !c.secret)
            .filter_map(|c| grant.config.get(&c.key).map(|v| (c.key.clone(), v.clone())))
            .collect();
        let id: Arc<str> = Arc::from(manifest.id.as_str());
        let http = Arc::new(http_policy(&id, &manifest, &grant, &limits)?);
        let mut plugin = Plugin {
            http,
            id,
            manifest,
            digest,
            builtin,
            tools: Vec::new(),
            formats: Vec::new(),
            limits,
            config: Arc::new(config),
            pre,
        };
        if plugin.is_tool() {
            plugin.tools = self.describe(&plugin).await?;
        }
        if plugin.manifest.kind == Kind::Parser {
            plugin.formats = self.formats(&plugin).await?;
        }
        self.archive(&plugin.digest, wasm, manifest_text);
        Ok(plugin)
    }

    /// Keeps the bytes and manifest of every plugin that loaded, by digest, so a run pinned to
    /// a component keeps working after the operator replaces or removes it. Best-effort.
    fn archive(&self, digest: &str, wasm: &[u8], manifest: &str) {
        let Some(dir) = &self.cache_dir else { return };
        let dir = dir.join("archive");
        let wasm_path = dir.join(format!("{digest}.wasm"));
        if wasm_path.exists() {
            return;
        }
        let result = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(&dir)?;
            for (path, bytes) in [
                (dir.join(format!("{digest}.toml")), manifest.as_bytes()),
                (wasm_path, wasm),
            ] {
                let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
                std::io::Write::write_all(&mut tmp, bytes)?;
                tmp.persist(path)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(
                digest,
                error = format!("{e:#}"),
                "could not archive a plugin for pinned runs"
            );
        }
    }

    /// The plugin with this component digest: the installed one, or the archived one a run was
    /// pinned to before the plugin was replaced (loaded again under today's grants).
    pub async fn by_digest(&self, digest: &str) -> anyhow::Result<Arc<Plugin>> {
        if let Some(p) = self.plugins.values().find(|p| p.digest == digest) {
            return Ok(p.clone());
        }
        let mut pinned = self.pinned.lock().await;
        if let Some(p) = pinned.get(digest) {
            return Ok(p.clone());
        }
        anyhow::ensure!(
            crate::model::ids::is_valid_id(digest),
            "'{digest}' is not a component digest"
        );
        let dir = self
            .cache_dir
            .as_ref()
            .context("no plugin archive is configured")?
            .join("archive");
        let wasm = std::fs::read(dir.join(format!("{digest}.wasm")))
            .with_context(|| format!("no component with digest {digest} was ever loaded here"))?;
        let manifest = std::fs::read_to_string(dir.join(format!("{digest}.toml")))?;
        let plugin = Arc::new(
            self.prepare(&wasm, &manifest, &self.settings, false)
                .await?,
        );
        anyhow::ensure!(
            plugin.digest == digest,
            "the archived component does not match its digest"
        );
        pinned.insert(digest.to_string(), plugin.clone());
        Ok(plugin)
    }

    async fn describe(&self, plugin: &Plugin) -> anyhow::Result<Vec<ToolSpec>> {
        let deadline = Duration::from_millis(plugin.limits.timeout_ms);
        let _slot = self
            .world(plugin.manifest.kind)
            .slot(deadline)
            .await
            .map_err(anyhow::Error::msg)?;
        let mut store = self.store(plugin);
        let call = async { plugin.pre.describe(&mut store).await };
        let tools = tokio::time::timeout(Duration::from_millis(plugin.limits.timeout_ms), call)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "describe() did not return within {} ms",
                    plugin.limits.timeout_ms
                )
            })??;
        store.data().flush_stdio();
        anyhow::ensure!(!tools.is_empty(), "describe() returned no tools");
        let mut seen = std::collections::HashSet::new();
        for t in &tools {
            let valid = !t.name.is_empty()
                && t.name.len() <= 64
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            anyhow::ensure!(
                valid,
                "tool name '{}' must be 1-64 characters of a-z, A-Z, 0-9, _ and -",
                t.name
            );
            anyhow::ensure!(
                seen.insert(t.name.clone()),
                "tool name '{}' is declared twice",
                t.name
            );
            let schema: serde_json::Value = serde_json::from_str(&t.parameters_json)
                .with_context(|| format!("tool '{}': parameters are not JSON", t.name))?;
            anyhow::ensure!(
                schema.get("type").and_then(|v| v.as_str()) == Some("object"),
                "tool '{}': the parameters schema must be a JSON Schema of type \"object\"",
                t.name
            );
        }
        Ok(tools)
    }

    fn store(&self, plugin: &Plugin) -> wasmtime::Store<CallState> {
        let state = CallState::new(
            plugin.id.clone(),
            plugin.config.clone(),
            plugin.limits.memory_mib,
            plugin.http.clone(),
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

    pub fn get(&self, id: &str) -> Option<Arc<Plugin>> {
        self.plugins.get(id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Plugin>> {
        let mut all: Vec<_> = self.plugins.values().cloned().collect();
        all.sort_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
        all
    }
}

/// The HTTP policy of a plugin: its (granted) hosts, the private-address grant, limits, and
/// the secret headers to inject.
fn http_policy(
    id: &Arc<str>,
    manifest: &Manifest,
    grant: &Grant,
    limits: &Effective,
) -> anyhow::Result<egress::HttpPolicy> {
    let mut inject = Vec::new();
    for key in manifest.config.iter().filter(|c| c.secret) {
        let (Some(header), Some(value)) = (&key.inject_header, grant.config.get(&key.key)) else {
            continue;
        };
        let name = ::http::HeaderName::from_bytes(header.as_bytes()).with_context(|| {
            format!("config key '{}': '{header}' is not a header name", key.key)
        })?;
        let mut value = ::http::HeaderValue::from_str(&format!("{}{value}", key.value_prefix))
            .with_context(|| {
                format!(
                    "config key '{}': the granted value is not a valid header value",
                    key.key
                )
            })?;
        value.set_sensitive(true);
        inject.push((name, value));
    }
    Ok(egress::HttpPolicy {
        plugin: id.clone(),
        hosts: manifest.allowed_hosts(grant),
        allow_private_addresses: grant.allow_private_addresses,
        max_response_bytes: limits.http_max_response_kib * 1024,
        permits: Arc::new(tokio::sync::Semaphore::new(
            limits.http_concurrency.max(1) as usize
        )),
        inject,
    })
}

/// `NAME.wasm` files of a directory that have a `NAME.toml` beside them.
fn plugin_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading plugins dir {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
            continue;
        }
        let toml = path.with_extension("toml");
        if toml.exists() {
            out.push((path, toml));
        } else {
            tracing::error!(path = %path.display(), "plugin has no manifest (NAME.toml) beside it; skipped");
        }
    }
    out.sort();
    Ok(out)
}
