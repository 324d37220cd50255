//! Plugins uploaded through the API (`PUT /v1/plugins/{id}`), served by every node.
//!
//! The catalog ([`Catalog`]: rows in the database, bytes in the object store, implemented by
//! `crate::catalog`) is the truth of which uploaded component serves each id. A node that
//! accepts an upload loads it first — manifest, grant, compile, `describe`, exactly as a file
//! of the plugins directory — so a broken component is refused with the reason and whatever
//! served the id keeps serving; only a component that loaded is written to the catalog. Every
//! node then brings what it serves in line with the catalog ([`PluginHost::sync_catalog`]):
//! at once when nudged over the event bus, and at each reload tick in case a nudge was lost.
//! Runs already started keep the component they were pinned to: any node loads it again by
//! digest from the catalog (`by_digest`), since the catalog keeps every component uploaded.
//!
//! An id has one source: built-in, the plugins directory, or the catalog. An upload for an id
//! another source serves is refused, and so is a directory file for an id the catalog serves.
//! Directories are each node's own, so that check is too: a node whose directory serves an
//! uploaded id keeps its file and logs the refused upload. At start the catalog is read before
//! the directory, so what served an id before a restart serves it after.

use super::reload::builtin_ids;
use super::*;

/// The largest component an upload may carry (a Python component with its interpreter is
/// about 40 MiB).
pub const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

/// One uploaded plugin installed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub id: String,
    /// sha256 of the component bytes.
    pub digest: String,
    pub manifest: String,
}

/// Where uploaded plugins are kept, shared by every node.
#[async_trait::async_trait]
pub trait Catalog: Send + Sync {
    /// The uploaded plugins installed now.
    async fn installed(&self) -> anyhow::Result<Vec<CatalogEntry>>;
    /// An uploaded component by digest (also one replaced or removed since): its bytes and its
    /// manifest; `None` if no component with this digest was uploaded.
    async fn component(&self, digest: &str) -> anyhow::Result<Option<(Vec<u8>, String)>>;
    /// Keeps a component and makes it the one installed under `entry.id`.
    async fn install(&self, entry: &CatalogEntry, wasm: &[u8]) -> anyhow::Result<()>;
    /// Uninstalls `id`; false if no uploaded plugin had it.
    async fn uninstall(&self, id: &str) -> anyhow::Result<bool>;
    /// Tells every node the catalog changed (best-effort: nodes also poll it).
    async fn announce(&self);
}

/// What this node serves from the catalog.
#[derive(Default)]
pub(super) struct CatalogState {
    /// Per id, the entry serving.
    served: HashMap<String, CatalogEntry>,
    /// Per id, an entry this node could not load: not tried again until the entry changes.
    refused: HashMap<String, CatalogEntry>,
}

impl CatalogState {
    pub(super) fn serves(&self, id: &str) -> bool {
        self.served.contains_key(id)
    }

    /// Forgets that the entry for `id` was refused, so the next sync tries it again (the
    /// directory file that held its id went).
    pub(super) fn retry(&mut self, id: &str) {
        self.refused.remove(id);
    }
}

/// Why an upload or removal was refused.
#[derive(Debug)]
pub enum CatalogError {
    /// The request is wrong: a bad manifest, a component that does not load here.
    Invalid {
        param: &'static str,
        message: String,
    },
    /// The id belongs to another source (a built-in, the plugins directory).
    Conflict(String),
    /// The server has no catalog, or it failed.
    Failed(anyhow::Error),
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogError::Invalid { message, .. } | CatalogError::Conflict(message) => {
                f.write_str(message)
            }
            CatalogError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl PluginHost {
    fn catalog(&self) -> Result<&Arc<dyn Catalog>, CatalogError> {
        self.catalog.as_ref().ok_or_else(|| {
            CatalogError::Failed(anyhow::anyhow!("this server keeps no plugin catalog"))
        })
    }

    /// Installs an uploaded component under `id`, replacing the uploaded one serving it: loaded
    /// here first (a component that does not load is refused and changes nothing), then kept
    /// in the catalog and announced to the other nodes.
    pub async fn install(
        &self,
        id: &str,
        wasm: &[u8],
        manifest: &str,
    ) -> Result<Arc<Plugin>, CatalogError> {
        let catalog = self.catalog()?;
        let parsed = Manifest::parse(manifest).map_err(|e| CatalogError::Invalid {
            param: "manifest",
            message: format!("Invalid plugin manifest: {e:#}"),
        })?;
        if parsed.id != id {
            return Err(CatalogError::Invalid {
                param: "manifest",
                message: format!(
                    "The manifest's id '{}' is not the id in the path '{id}'.",
                    parsed.id
                ),
            });
        }
        if builtin_ids().contains(id) {
            return Err(CatalogError::Conflict(format!(
                "The id '{id}' belongs to a built-in plugin."
            )));
        }
        // Held until the new component serves: one change to what serves at a time.
        let mut sources = self.sources.lock().await;
        if let Some(path) = sources.dir.file_serving(id) {
            return Err(CatalogError::Conflict(format!(
                "The plugin '{id}' is served from the plugins directory ({}); replace or remove \
                 that file instead.",
                path.display()
            )));
        }
        let plugin = self
            .prepare(wasm, manifest, &self.settings, false)
            .await
            .map_err(|e| CatalogError::Invalid {
                param: "component",
                message: format!("The plugin was refused: {e:#}"),
            })?;
        let entry = CatalogEntry {
            id: id.to_string(),
            digest: plugin.digest.clone(),
            manifest: manifest.to_string(),
        };
        catalog
            .install(&entry, wasm)
            .await
            .map_err(CatalogError::Failed)?;
        let plugin = Arc::new(plugin);
        self.update(|plugins| {
            plugins.insert(id.to_string(), plugin.clone());
        });
        self.set_refused(id, None);
        sources.catalog.refused.remove(id);
        sources.catalog.served.insert(id.to_string(), entry);
        drop(sources);
        catalog.announce().await;
        Ok(plugin)
    }

    /// Uninstalls the uploaded plugin `id` on every node; false if no uploaded plugin had it.
    /// Runs pinned to it finish with it.
    pub async fn uninstall(&self, id: &str) -> Result<bool, CatalogError> {
        let catalog = self.catalog()?;
        let mut sources = self.sources.lock().await;
        let removed = catalog.uninstall(id).await.map_err(CatalogError::Failed)?;
        sources.catalog.refused.remove(id);
        if sources.catalog.served.remove(id).is_some() {
            self.update(|plugins| {
                plugins.remove(id);
            });
            self.set_refused(id, None);
            // A directory file refused for this id may serve it now.
            sources.dir.retry_refused();
        }
        drop(sources);
        if removed {
            catalog.announce().await;
        }
        Ok(removed)
    }

    /// Brings the uploaded plugins this node serves in line with the catalog.
    pub async fn sync_catalog(&self) -> anyhow::Result<Reload> {
        let mut report = Reload::default();
        let Some(catalog) = self.catalog.clone() else {
            return Ok(report);
        };
        // Read under the lock: a catalog read before an upload or removal this node is
        // making would bring back what that replaces.
        let mut sources = self.sources.lock().await;
        let wanted: HashMap<String, CatalogEntry> = catalog
            .installed()
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        let gone: Vec<String> = sources
            .catalog
            .served
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            sources.catalog.served.remove(&id);
            self.update(|plugins| {
                plugins.remove(&id);
            });
            self.set_refused(&id, None);
            sources.dir.retry_refused();
            tracing::info!(%id, "uploaded plugin removed");
            report.removed.push(id);
        }
        sources
            .catalog
            .refused
            .retain(|id, _| wanted.contains_key(id));
        for (id, entry) in wanted {
            let state = &sources.catalog;
            if state.served.get(&id) == Some(&entry) || state.refused.get(&id) == Some(&entry) {
                continue;
            }
            let replacing = state.served.contains_key(&id);
            // A component that cannot be read now is tried again at the next sync; one that
            // does not load here is not, until its entry changes.
            let wasm = match catalog.component(&entry.digest).await {
                Ok(Some((wasm, _))) => Ok(wasm),
                Ok(None) => Err(anyhow::anyhow!(
                    "the catalog has no component {}",
                    entry.digest
                )),
                Err(e) => {
                    tracing::warn!(%id, error = format!("{e:#}"), "uploaded plugin not read; trying again later");
                    continue;
                }
            };
            let loaded = match wasm {
                Ok(wasm) => self.load_entry(&entry, &wasm, &sources).await,
                Err(e) => Err(e),
            };
            match loaded {
                Ok(plugin) => {
                    tracing::info!(%id, digest = %plugin.digest, "uploaded plugin loaded");
                    let plugin = Arc::new(plugin);
                    self.update(|plugins| {
                        plugins.insert(id.clone(), plugin);
                    });
                    self.set_refused(&id, None);
                    sources.catalog.refused.remove(&id);
                    sources.catalog.served.insert(id.clone(), entry);
                    if replacing {
                        report.replaced.push(id);
                    } else {
                        report.added.push(id);
                    }
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    tracing::error!(%id, digest = %entry.digest, error = %why, "uploaded plugin not loaded on this node");
                    if replacing {
                        self.set_refused(&id, Some(why.clone()));
                    }
                    report.refused.push((format!("catalog:{id}"), why));
                    sources.catalog.refused.insert(id, entry);
                }
            }
        }
        Ok(report)
    }

    /// Loads one catalog entry, unless another source serves its id.
    async fn load_entry(
        &self,
        entry: &CatalogEntry,
        wasm: &[u8],
        sources: &Sources,
    ) -> anyhow::Result<Plugin> {
        let id = &entry.id;
        anyhow::ensure!(
            !builtin_ids().contains(id),
            "the id '{id}' belongs to a built-in plugin"
        );
        if let Some(path) = sources.dir.file_serving(id) {
            anyhow::bail!(
                "the id '{id}' is served from the plugins directory ({})",
                path.display()
            );
        }
        let plugin = self
            .prepare(wasm, &entry.manifest, &self.settings, false)
            .await?;
        anyhow::ensure!(
            plugin.digest == entry.digest,
            "the stored component does not match its digest"
        );
        Ok(plugin)
    }
}
