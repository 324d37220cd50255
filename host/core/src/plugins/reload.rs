//! The plugins directory, watched: adding, replacing or removing `NAME.wasm` / `NAME.toml`
//! takes effect without a restart.
//!
//! The directory is scanned (at load, then every few seconds by [`PluginHost::watch`]); a
//! component whose files changed is loaded like at start-up — manifest, grant, compile,
//! `describe` — and only if that succeeds does it replace the one serving its id. A broken new
//! version is refused, logged and reported (`update_refused` in `GET /v1/plugins/{id}`), and
//! the old one keeps serving. Runs already started keep the component they were pinned to: the
//! old one stays loadable by digest from the archive (`by_digest`).
//!
//! Files are taken once they are settled: a change (or a removal) acts when two scans in a row
//! see the same sizes and modification times, so a component being copied in, or replaced file
//! by file, is not loaded half-written.

use std::collections::HashSet;
use std::time::SystemTime;

use super::*;

/// Sizes and modification times of a component and its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    wasm: (u64, SystemTime),
    toml: (u64, SystemTime),
}

impl Stamp {
    fn of(wasm: &Path, toml: &Path) -> std::io::Result<Stamp> {
        let at = |p: &Path| -> std::io::Result<(u64, SystemTime)> {
            let m = std::fs::metadata(p)?;
            Ok((m.len(), m.modified()?))
        };
        Ok(Stamp {
            wasm: at(wasm)?,
            toml: at(toml)?,
        })
    }
}

/// What the directory held at the last scans.
#[derive(Default)]
pub(super) struct DirState {
    /// Per component file: the stamp last acted on and the id it serves (none if refused).
    acted: HashMap<PathBuf, (Stamp, Option<String>)>,
    /// Per component file: a stamp seen once, acted on when the next scan sees it again. A
    /// removed file is pending as `None`.
    pending: HashMap<PathBuf, Option<Stamp>>,
    /// Files without a manifest, reported once.
    orphans: HashSet<PathBuf>,
}

impl DirState {
    /// Forgets the files refused so far, so the next scan tries them again (an id they
    /// declared may have become free).
    pub(super) fn retry_refused(&mut self) {
        self.acted.retain(|_, (_, served)| served.is_some());
    }

    /// The file that serves `id`, if one does.
    pub(super) fn file_serving(&self, id: &str) -> Option<&PathBuf> {
        self.acted
            .iter()
            .find(|(_, (_, served))| served.as_deref() == Some(id))
            .map(|(path, _)| path)
    }
}

/// What one scan changed, by plugin id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reload {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    /// What was refused (a component file's path, or `catalog:ID`), with why.
    pub refused: Vec<(String, String)>,
}

impl Reload {
    pub fn is_empty(&self) -> bool {
        self == &Reload::default()
    }
}

/// Whether a scan acts on what it sees at once (at load) or waits for files to settle.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    Load,
    Watch,
}

impl PluginHost {
    /// Scans the plugins directory once and applies what settled there since the last scan.
    pub async fn rescan(&self) -> anyhow::Result<Reload> {
        self.scan(Scan::Watch).await
    }

    pub(super) async fn scan(&self, mode: Scan) -> anyhow::Result<Reload> {
        let mut report = Reload::default();
        let Some(dir) = self.settings.dir.clone() else {
            return Ok(report);
        };
        // One change to what serves at a time: `sources.dir` is the directory as last acted on.
        let mut sources = self.sources.lock().await;
        let Listing {
            pairs: files,
            orphans,
        } = plugin_files(&dir)?;
        for path in orphans.difference(&sources.dir.orphans) {
            tracing::error!(path = %path.display(), "plugin has no manifest (NAME.toml) beside it; skipped");
        }
        sources.dir.orphans = orphans;

        let present: HashSet<&PathBuf> = files.iter().map(|(w, _)| w).collect();
        let gone: Vec<PathBuf> = sources
            .dir
            .acted
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if mode == Scan::Watch && sources.dir.pending.get(&path) != Some(&None) {
                sources.dir.pending.insert(path, None);
                continue;
            }
            sources.dir.pending.remove(&path);
            if let Some((_, Some(id))) = sources.dir.acted.remove(&path) {
                self.update(|plugins| {
                    plugins.remove(&id);
                });
                self.set_refused(&id, None);
                // An upload refused for this id may serve now.
                sources.catalog.retry(&id);
                tracing::info!(%id, path = %path.display(), "plugin removed");
                report.removed.push(id);
            }
        }

        for (wasm_path, toml_path) in files {
            let Ok(stamp) = Stamp::of(&wasm_path, &toml_path) else {
                continue; // changing under us: the next scan sees it settled
            };
            if sources.dir.acted.get(&wasm_path).map(|(s, _)| s) == Some(&stamp) {
                sources.dir.pending.remove(&wasm_path);
                continue;
            }
            if mode == Scan::Watch && sources.dir.pending.get(&wasm_path) != Some(&Some(stamp)) {
                sources.dir.pending.insert(wasm_path, Some(stamp));
                continue;
            }
            sources.dir.pending.remove(&wasm_path);
            let serving = sources
                .dir
                .acted
                .get(&wasm_path)
                .and_then(|(_, id)| id.clone());
            let outcome = self.load_file(&wasm_path, &toml_path, &sources).await;
            match outcome {
                Ok(plugin) => {
                    let id = plugin.manifest.id.clone();
                    tracing::info!(%id, digest = %plugin.digest, tools = plugin.tools.len(), path = %wasm_path.display(), "plugin loaded");
                    self.update(|plugins| {
                        // The file may now declare another id: the old one goes.
                        if let Some(old) = serving.as_ref().filter(|old| **old != id) {
                            plugins.remove(old);
                        }
                        plugins.insert(id.clone(), Arc::new(plugin));
                    });
                    if let Some(old) = serving.as_ref().filter(|old| **old != id) {
                        sources.catalog.retry(old);
                    }
                    self.set_refused(&id, None);
                    match serving {
                        Some(old) if old == id => report.replaced.push(id.clone()),
                        Some(old) => {
                            report.removed.push(old);
                            report.added.push(id.clone());
                        }
                        None => report.added.push(id.clone()),
                    }
                    sources.dir.acted.insert(wasm_path, (stamp, Some(id)));
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    match &serving {
                        Some(id) => {
                            tracing::error!(%id, path = %wasm_path.display(), error = %why, "new version of the plugin refused; the loaded one keeps serving");
                            self.set_refused(id, Some(why.clone()));
                        }
                        None => {
                            tracing::error!(path = %wasm_path.display(), error = %why, "plugin not loaded")
                        }
                    }
                    report.refused.push((wasm_path.display().to_string(), why));
                    // Remembered, so the same files are not tried again every scan.
                    sources.dir.acted.insert(wasm_path, (stamp, serving));
                }
            }
        }
        Ok(report)
    }

    /// Reads and prepares one component of the directory, refusing an id that is a built-in's
    /// or that another file of the directory serves.
    async fn load_file(
        &self,
        wasm_path: &Path,
        toml_path: &Path,
        sources: &Sources,
    ) -> anyhow::Result<Plugin> {
        let wasm = std::fs::read(wasm_path)?;
        let manifest = std::fs::read_to_string(toml_path)?;
        // Checked before compiling: a taken id needs no compile to be refused.
        let id = Manifest::parse(&manifest).context("invalid manifest")?.id;
        // Built-in ids stay the built-ins' even when one did not load (it waits for grants):
        // otherwise a component dropped into the directory under that id would receive the
        // grants and secrets the operator meant for the built-in.
        anyhow::ensure!(
            !builtin_ids().contains(&id),
            "the id '{id}' belongs to a built-in plugin"
        );
        if let Some(other) = sources.dir.file_serving(&id).filter(|p| *p != wasm_path) {
            anyhow::bail!(
                "a plugin with the id '{id}' is already loaded from {}",
                other.display()
            );
        }
        anyhow::ensure!(
            !sources.catalog.serves(&id),
            "a plugin with the id '{id}' was uploaded through the API; remove it there \
             (DELETE /v1/plugins/{id}) to serve it from the directory"
        );
        self.prepare(&wasm, &manifest, &self.settings, false).await
    }

    /// Why the newest file for `id` in the plugins directory was refused, while the component
    /// loaded before keeps serving.
    pub fn update_refused(&self, id: &str) -> Option<String> {
        self.refused
            .lock()
            .expect("refused lock poisoned")
            .get(id)
            .cloned()
    }

    pub(super) fn set_refused(&self, id: &str, why: Option<String>) {
        let mut refused = self.refused.lock().expect("refused lock poisoned");
        match why {
            Some(why) => refused.insert(id.to_string(), why),
            None => refused.remove(id),
        };
    }

    /// Keeps what serves in line with its sources until `stop`: the plugins directory is
    /// rescanned and the catalog synced every `every` (if set), and the catalog again at once
    /// whenever `nudges` delivers (another node changed it).
    pub fn watch(
        self: Arc<Self>,
        every: Option<Duration>,
        mut nudges: Option<crate::bus::Subscription>,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = every.map(|every| {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            });
            loop {
                let ticked = async {
                    match tick.as_mut() {
                        Some(tick) => {
                            tick.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                let nudged = async {
                    match nudges.as_mut() {
                        Some(n) => n.recv().await.is_some(),
                        None => std::future::pending().await,
                    }
                };
                let scan_dir = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticked => true,
                    open = nudged => {
                        if !open {
                            nudges = None;
                        }
                        false
                    }
                };
                if scan_dir {
                    if let Err(e) = self.rescan().await {
                        tracing::warn!(error = format!("{e:#}"), "plugins directory not scanned");
                    }
                }
                if let Err(e) = self.sync_catalog().await {
                    tracing::warn!(error = format!("{e:#}"), "plugin catalog not read");
                }
            }
        })
    }
}

/// The ids of the built-in plugins.
pub(super) fn builtin_ids() -> &'static HashSet<String> {
    static IDS: std::sync::OnceLock<HashSet<String>> = std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        BUILTIN_PLUGINS
            .iter()
            .filter_map(|(_, _, manifest)| Manifest::parse(manifest).ok().map(|m| m.id))
            .collect()
    })
}

/// What a plugins directory holds: `NAME.wasm` files with their `NAME.toml`, sorted, and those
/// without one.
#[derive(Default)]
struct Listing {
    pairs: Vec<(PathBuf, PathBuf)>,
    orphans: HashSet<PathBuf>,
}

fn plugin_files(dir: &Path) -> anyhow::Result<Listing> {
    let Listing {
        mut pairs,
        mut orphans,
    } = Listing::default();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading plugins dir {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
            continue;
        }
        let toml = path.with_extension("toml");
        if toml.exists() {
            pairs.push((path, toml));
        } else {
            orphans.insert(path);
        }
    }
    pairs.sort();
    Ok(Listing { pairs, orphans })
}
