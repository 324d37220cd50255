//! Discovery and loading: the built-in plugins and the operator's plugin directory, each
//! manifest checked against its grant, compiled (or taken from the cache), pre-instantiated in
//! its world and described; every loaded component archived by digest, so runs pinned to a
//! replaced component load it again (`by_digest`).

use super::*;

// `pub static BUILTIN_PLUGINS: &[(&str, &[u8], &str)]` — (file stem, component, manifest),
// built from `plugins/` by build.rs.
include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

impl PluginHost {
    /// Loads the built-in plugins and those in `settings.dir`. A plugin that fails to load is
    /// reported and skipped; the others still load.
    pub async fn load(settings: &PluginSettings) -> anyhow::Result<PluginHost> {
        Self::load_with(settings, None, None).await
    }

    /// [`PluginHost::load`] for a server: retrieval tools get `search` over the server's
    /// vector stores, and the uploaded plugins of `catalog` load beside the directory's.
    pub async fn load_with(
        settings: &PluginSettings,
        search: Option<Arc<dyn retrieval::VectorSearch>>,
        catalog: Option<Arc<dyn catalog::Catalog>>,
    ) -> anyhow::Result<PluginHost> {
        let caps = settings.caps;
        let budget = settings
            .memory_budget_mib
            .map_or_else(runtime::default_memory_budget, |mib| mib << 20);
        let instances = settings
            .instances
            .unwrap_or_else(|| runtime::default_instances(budget));
        let pool = PoolSize {
            instances,
            max_memory_mib: caps.memory_mib,
        };
        tracing::debug!(instances, budget_mib = budget >> 20, "plugin pools");
        let host = PluginHost {
            tools: World::new(pool, PluginEngine::tool_linker)?,
            retrieval_tools: World::new(pool, PluginEngine::retrieval_linker)?,
            strategies: World::new(pool, PluginEngine::strategy_linker)?,
            // Parsers are pure like strategies: WASI (empty) and logging only.
            parsers: World::new(pool, PluginEngine::strategy_linker)?,
            caps,
            cache: settings.cache_dir.clone().map(|dir| {
                cache::ArtifactCache::new(
                    dir,
                    cache::CacheKey::load(settings.cache_key_file.as_deref()),
                )
            }),
            plugins: Default::default(),
            sources: Default::default(),
            catalog,
            refused: Default::default(),
            search,
            pinned: Default::default(),
            settings: settings.clone(),
            instances,
            budget: MemoryBudget::new(budget),
            guests: exec::GuestThreads::new()?,
        };
        for (stem, wasm, manifest) in BUILTIN_PLUGINS {
            // A built-in plugin that needs grants (the weather example needs its API) stays
            // unloaded until the operator grants them.
            match host.prepare(wasm, manifest, settings, true).await {
                Ok(p) => host.update(|plugins| {
                    plugins.insert(p.manifest.id.clone(), Arc::new(p));
                }),
                Err(e) => tracing::info!(
                    plugin = stem,
                    reason = format!("{e:#}"),
                    "built-in plugin not loaded"
                ),
            }
        }
        // The catalog before the directory: an id uploaded before a restart stays the
        // upload's. One that cannot be read now is read again at the next reload tick.
        if let Err(e) = host.sync_catalog().await {
            tracing::warn!(error = format!("{e:#}"), "uploaded plugins not loaded yet");
        }
        host.scan(reload::Scan::Load).await?;
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
            .load_component(wasm, &digest, self.cache.as_ref())?;
        let not_world = |e: wasmtime::Error| {
            anyhow::Error::from(e).context(format!(
                "the component does not implement the world {}",
                manifest.world
            ))
        };
        let id: Arc<str> = Arc::from(manifest.id.as_str());
        let http = Arc::new(http_policy(&id, &manifest, &grant, &limits)?);
        let pre = world.instantiate_pre(&component, !http.hosts.is_empty())?;
        let version = manifest
            .version()
            .context("manifest names no world the host loads")?;
        let pre = Instance::new(manifest.kind, version, pre).map_err(not_world)?;
        let config: BTreeMap<String, String> = manifest
            .config
            .iter()
            .filter(|c| !c.secret)
            .filter_map(|c| grant.config.get(&c.key).map(|v| (c.key.clone(), v.clone())))
            .collect();
        let mut plugin = Plugin {
            http,
            id,
            manifest,
            digest,
            builtin,
            tools: Vec::new(),
            formats: Vec::new(),
            limits,
            projects: grant.projects.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(world.share())),
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
        if let Some(cache) = &self.cache {
            cache.archive(digest, wasm, manifest);
        }
    }

    /// The plugin with this component digest: the installed one, or the archived one a run was
    /// pinned to before the plugin was replaced (loaded again under today's grants).
    pub async fn by_digest(&self, digest: &str) -> anyhow::Result<Arc<Plugin>> {
        if let Some(p) = self.snapshot().values().find(|p| p.digest == digest) {
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
        let archived = self
            .cache
            .as_ref()
            .context("no plugin archive is configured")
            .and_then(|cache| cache.archived(digest));
        // Another node may have loaded it: an uploaded component is in the catalog for good.
        let (wasm, manifest) = match (archived, &self.catalog) {
            (Ok(found), _) => found,
            (Err(e), Some(catalog)) => catalog.component(digest).await?.ok_or(e)?,
            (Err(e), None) => return Err(e),
        };
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
            .slot_for(plugin, None, deadline)
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
}

/// The HTTP policy of a plugin: its (granted) hosts, the private-address grant, limits, and
/// the secret headers to inject.
fn http_policy(
    id: &Arc<str>,
    manifest: &Manifest,
    grant: &Grant,
    limits: &Effective,
) -> anyhow::Result<egress::HttpPolicy> {
    let mut secrets = Vec::new();
    for key in manifest.config.iter().filter(|c| c.secret) {
        let (Some(header), Some(value)) = (&key.inject_header, grant.config.get(&key.key)) else {
            continue;
        };
        let name = ::http::HeaderName::from_bytes(header.as_bytes()).with_context(|| {
            format!("config key '{}': '{header}' is not a header name", key.key)
        })?;
        let mut header_value =
            ::http::HeaderValue::from_str(&format!("{}{value}", key.value_prefix)).with_context(
                || {
                    format!(
                        "config key '{}': the granted value is not a valid header value",
                        key.key
                    )
                },
            )?;
        header_value.set_sensitive(true);
        secrets.push(egress::Secret {
            header: name,
            value: header_value,
            masked: vec![value.as_bytes().to_vec()],
            hosts: egress::SecretHosts::Patterns(manifest::secret_hosts(grant, key)),
        });
    }
    Ok(egress::HttpPolicy {
        plugin: id.clone(),
        hosts: manifest.allowed_hosts(grant),
        allow_private_addresses: grant.allow_private_addresses,
        max_response_bytes: limits.http_max_response_kib * 1024,
        permits: Arc::new(tokio::sync::Semaphore::new(
            limits.http_concurrency.max(1) as usize
        )),
        secrets,
    })
}

pub(super) fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
