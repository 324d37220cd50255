//! The code interpreter as a node offers it: whether it is available (installed, compiled,
//! template ready), and the live sessions, one per thread, that runs' `code_interpreter`
//! calls execute in.
//!
//! Availability is decided in the background at start-up: a server without the artifact
//! starts at once and says why the tool is unavailable; one with the artifact but no compiled
//! module compiles it (about a minute) while serving, then loads or builds the template
//! (`live`), and calls made meanwhile are told so.
//!
//! Sessions: a thread's variables, imports and files persist between its calls and runs.
//! After each cell that returned, the session is snapshotted to the object store (`persist`)
//! before the call's result is given back, so what a run recorded survives the worker: a
//! restarted node or another worker restores the thread's session from it, and a node whose
//! live session is older than the stored snapshot (the thread ran elsewhere meanwhile)
//! replaces it. A cell that times out, traps or overfills the disk rolls the session back
//! to its last snapshot, and the model is told. Live sessions are bounded on a node —
//! `max_sessions`, a memory budget, an idle time and a lifetime — and dropping one loses
//! nothing that was snapshotted. Cells run on guest threads of their own at low priority
//! (`plugins::exec`), one per thread at a time, at most `max_cells` at once.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::artifact::Installed;
use super::engine;
use super::live::{Live, Opening, Origin, Template};
use super::persist::{Head, Persist};
use super::report::{after_cell, open_fds, take_figures, CellReport};
use super::session::{CellStatus, Mounts, Python};
pub use super::settings::InterpreterSettings;
use super::snapshot::{disk_use, DiskUse};
pub use super::status::Availability;
use crate::blobs::Blobs;
use crate::plugins::cache::CacheKey;
use crate::plugins::exec::GuestThreads;

/// Snapshots in `blobs`, under the recipe this build and `settings`' template make.
fn persist(settings: &InterpreterSettings, blobs: Option<Blobs>) -> Option<Persist> {
    let template = settings.template.clone().unwrap_or_default();
    blobs.map(|b| Persist::new(b, super::artifact::WHEEL.sha256, &template))
}

type Slot = Arc<tokio::sync::Mutex<Option<Live>>>;

/// The node's code interpreter.
pub struct CodeInterpreter {
    settings: InterpreterSettings,
    state: Mutex<State>,
    sessions: Mutex<HashMap<String, Slot>>,
    cells: tokio::sync::Semaphore,
    guests: Option<GuestThreads>,
    /// Where snapshots go; none keeps sessions on this node only.
    persist: Option<Persist>,
}

enum State {
    Preparing,
    Ready(Ready),
    Unavailable(String),
}

#[derive(Clone)]
struct Ready {
    python: Arc<Python>,
    installed: Installed,
    template: Option<Arc<Template>>,
}

impl CodeInterpreter {
    /// Starts deciding availability in the background (loading or compiling the module,
    /// then the template). Snapshots go to `blobs` when given.
    pub fn start(
        settings: InterpreterSettings,
        key: CacheKey,
        blobs: Option<Blobs>,
    ) -> Arc<CodeInterpreter> {
        let initial = if !settings.enabled {
            State::Unavailable("code_interpreter is disabled on this server".into())
        } else {
            match Installed::find(&settings.dir) {
                Ok(_) => State::Preparing,
                Err(e) => State::Unavailable(format!("{e:#}")),
            }
        };
        let preparing = matches!(initial, State::Preparing);
        let guests = match preparing.then(GuestThreads::new).transpose() {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "no guest threads for the code interpreter");
                None
            }
        };
        let persist = persist(&settings, blobs);
        if preparing {
            // Sessions of an earlier process are in their snapshots, not in these
            // directories.
            let _ = std::fs::remove_dir_all(&settings.sessions_dir);
        }
        let this = Arc::new(CodeInterpreter {
            cells: tokio::sync::Semaphore::new(settings.max_cells.max(1)),
            settings,
            state: Mutex::new(initial),
            sessions: Mutex::new(HashMap::new()),
            guests,
            persist,
        });
        match &*this.state.lock().expect("state lock") {
            State::Unavailable(why) => {
                tracing::info!(reason = %why, "code_interpreter is unavailable")
            }
            _ => {
                let me = this.clone();
                let runtime = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || me.prepare(&key, &runtime));
            }
        }
        this
    }

    /// One that runs nothing here, for `reason` (it still forgets deleted threads' snapshots
    /// in `blobs`).
    pub fn unavailable(
        settings: InterpreterSettings,
        reason: &str,
        blobs: Option<Blobs>,
    ) -> Arc<CodeInterpreter> {
        let persist = persist(&settings, blobs);
        Arc::new(CodeInterpreter {
            cells: tokio::sync::Semaphore::new(1),
            settings,
            state: Mutex::new(State::Unavailable(reason.to_string())),
            sessions: Mutex::new(HashMap::new()),
            guests: None,
            persist,
        })
    }

    /// Loads (or compiles) the module, then the template; blocking.
    fn prepare(&self, key: &CacheKey, runtime: &tokio::runtime::Handle) {
        let loaded = (|| -> anyhow::Result<(Arc<Python>, Installed)> {
            let installed = Installed::find(&self.settings.dir)?;
            let engine = engine::engine()?;
            // Logs when it has to compile; hashes the module once.
            let module = engine::compiled(&engine, &installed, key)?;
            Ok((Arc::new(Python::link(&engine, &module)?), installed))
        })();
        let next = match loaded {
            Ok((python, installed)) => {
                let template = runtime.block_on(self.on_guests(super::live::node_template(
                    self.settings.clone(),
                    self.persist.clone(),
                    python.clone(),
                    installed.clone(),
                )));
                tracing::info!(dir = %installed.root.display(), template = template.is_some(), "code_interpreter is ready");
                State::Ready(Ready {
                    python,
                    installed,
                    template,
                })
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "code_interpreter is unavailable");
                State::Unavailable(format!("the code interpreter did not load: {e:#}"))
            }
        };
        *self.state.lock().expect("state lock") = next;
    }

    /// Runs `work` on the guest threads (the caller's, without them).
    async fn on_guests<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> T {
        match &self.guests {
            Some(g) => g.run(work).await,
            None => work.await,
        }
    }

    pub fn availability(&self) -> Availability {
        match &*self.state.lock().expect("state lock") {
            State::Ready(..) => Availability::Ready,
            State::Preparing => Availability::Preparing,
            State::Unavailable(why) => Availability::Unavailable(why.clone()),
        }
    }

    fn disk_limit(&self) -> DiskUse {
        DiskUse {
            bytes: self.settings.disk_mib << 20,
            entries: self.settings.disk_entries,
        }
    }

    /// The directory holding `thread`'s `tmp/` and `data/`.
    fn thread_dir(&self, thread: &str) -> PathBuf {
        self.settings.sessions_dir.join(thread)
    }

    fn opening(&self, ready: &Ready, thread: &str) -> Opening {
        let dir = self.thread_dir(thread);
        Opening {
            python: ready.python.clone(),
            mounts: Mounts {
                installed: ready.installed.clone(),
                tmp: dir.join("tmp"),
                data: dir.join("data"),
            },
            limits: self.settings.session_limits(),
            persist: self.persist.clone(),
            template: ready.template.clone(),
            dir,
        }
    }

    /// The thread's stored snapshot (none when snapshots are off). An error is one the
    /// model reads: starting anew would overwrite state that may well exist.
    async fn head(&self, thread: &str) -> Result<Option<Head>, String> {
        let Some(persist) = self.persist.as_ref() else {
            return Ok(None);
        };
        persist.head(thread).await.map_err(|e| {
            tracing::warn!(
                thread,
                error = format!("{e:#}"),
                "could not read a code_interpreter snapshot"
            );
            format!("the session's stored state could not be read ({e:#}); try again")
        })
    }

    /// Opens `thread`'s session into `guard` (from its snapshot, or new); whether a snapshot
    /// existed and was lost.
    async fn open(
        &self,
        ready: &Ready,
        thread: &str,
        guard: &mut Option<Live>,
    ) -> Result<bool, String> {
        let head = self.head(thread).await?;
        let had = head.is_some();
        let opening = self.opening(ready, thread);
        let thread_id = thread.to_string();
        let (live, origin) = self
            .on_guests(async move { opening.open(head, &thread_id).await })
            .await
            .map_err(|e| format!("the code interpreter could not start: {e:#}"))?;
        *guard = Some(live);
        Ok(had && origin == Origin::New)
    }

    /// Runs `code` in `thread`'s session (restored or started if it has none live here);
    /// `before` runs first, with the session's directory in place (it copies input files
    /// in). `Err` is a reason the tool could not run at all, for the model.
    pub async fn run_cell(
        &self,
        thread: &str,
        code: &str,
        before: impl Future<Output = ()>,
    ) -> Result<CellReport, String> {
        let ready = match &*self.state.lock().expect("state lock") {
            State::Ready(r) => r.clone(),
            State::Preparing => {
                return Err("the code interpreter is still being prepared on this server; try again in a minute".into())
            }
            State::Unavailable(why) => return Err(why.clone()),
        };
        let slot = self.slot(thread);
        // The thread's lock first (its calls run one at a time), then a cell permit.
        let mut guard = slot.clone().lock_owned().await;
        let _permit = self
            .cells
            .acquire()
            .await
            .map_err(|_| "the server is shutting down".to_string())?;
        let now = Instant::now();
        // A cell abandoned half-way (its run was cancelled) left its session broken.
        let expired = guard.as_ref().is_some_and(|l| {
            now.duration_since(l.last_used) > self.settings.idle
                || now.duration_since(l.started) > self.settings.lifetime
                || l.session.is_broken()
                || l.session.has_ended()
        });
        if expired {
            *guard = None;
        }
        // The thread may have run on another node since: the stored snapshot is its state.
        // (Unreadable, it is taken as current: the live session is the best state known.)
        let live = guard.as_ref().map(|l| (l.id.clone(), l.seq));
        if let (Some((id, seq)), Some(_)) = (live, &self.persist) {
            let current = match self.head(thread).await {
                Ok(Some(h)) => h.session == id && h.seq == seq,
                Ok(None) => seq == 0,
                Err(_) => true,
            };
            if !current {
                *guard = None;
            }
        }
        let mut lost = false;
        if guard.is_none() {
            lost = self.open(&ready, thread, &mut guard).await?;
        }
        before.await;
        let dir = self.thread_dir(thread);
        let limit = self.disk_limit();
        let stopper = guard.as_ref().expect("a live session").session.stopper();
        let watch = crate::lowprio::AbortOnDrop(tokio::spawn(super::live::watch_disk(
            dir.clone(),
            limit,
            stopper,
        )));
        let timeout = self.settings.cell_timeout;
        let code = code.to_string();
        let open_files = self.settings.open_files;
        let recipe = self.persist.as_ref().map(|p| p.recipe().to_string());
        let work_dir = dir.clone();
        // The cell runs on the guest threads with the session's lock held; the guard comes
        // back with the outcome and, after a good cell, the next snapshot.
        let work = async move {
            let live = guard.as_mut().expect("a live session");
            let mut outcome = live.session.cell(&code, timeout).await;
            let mut capture = None;
            if matches!(
                outcome.status,
                CellStatus::Ok | CellStatus::Exception | CellStatus::Exit(_)
            ) {
                let after = after_cell(live.session.first_free_fd(), open_files);
                let after = live.session.cell(&after, Duration::from_secs(30)).await;
                let fds = open_fds(&after.stdout);
                let used = disk_use(&work_dir, limit);
                if live.session.is_broken() {
                    // Saving its figures broke the session (a full descriptor table, say):
                    // the cell is rolled back with it.
                    outcome.status = after.status;
                } else if used.bytes > limit.bytes || used.entries > limit.entries {
                    outcome.status = CellStatus::Stopped(super::live::over_quota(limit));
                } else if let Some(recipe) = recipe.filter(|_| !live.session.is_broken()) {
                    capture = Some(live.capture(&recipe, &work_dir, fds));
                }
            }
            live.last_used = Instant::now();
            (guard, outcome, capture)
        };
        let (mut guard, outcome, capture) = self.on_guests(work).await;
        drop(watch);
        let figures = dir.join("tmp/.figures");
        let images = tokio::task::spawn_blocking(move || take_figures(&figures))
            .await
            .unwrap_or_default();
        let mut reset = None;
        match &outcome.status {
            CellStatus::Quit => {
                *guard = None;
                self.forget_stored(thread).await;
            }
            _ if guard.as_ref().is_some_and(|l| l.session.has_ended()) => {
                *guard = None;
                self.forget_stored(thread).await;
            }
            CellStatus::Timeout | CellStatus::Trapped(_) | CellStatus::Stopped(_) => {
                // Back to the last snapshot now, so the model hears where it stands.
                *guard = None;
                if self.persist.is_some() {
                    reset = Some(match self.open(&ready, thread, &mut guard).await {
                        Ok(_) if guard.as_ref().is_some_and(|l| l.head.is_some()) => {
                            Origin::Restored
                        }
                        Ok(_) => Origin::New,
                        Err(e) => {
                            // The next call restores it.
                            tracing::warn!(thread, error = %e, "could not roll a code_interpreter session back yet");
                            Origin::Restored
                        }
                    });
                }
            }
            _ => {}
        }
        let capture = match capture {
            Some(Err(e)) => {
                tracing::warn!(
                    thread,
                    error = format!("{e:#}"),
                    "could not take a code_interpreter snapshot"
                );
                None
            }
            other => other,
        };
        if let (Some(Ok(capture)), Some(persist), Some(live)) =
            (capture, &self.persist, guard.as_mut())
        {
            let mut head = capture.head;
            let saved = persist
                .save(
                    thread,
                    &mut head,
                    capture.memory,
                    &dir,
                    (&mut live.stored, &live.shared),
                    live.head.as_ref(),
                )
                .await;
            match saved {
                Ok(()) => {
                    live.seq = head.seq;
                    live.head = Some(head);
                    live.hashes = capture.hashes;
                }
                Err(e) => tracing::warn!(
                    thread,
                    error = format!("{e:#}"),
                    "could not snapshot a code_interpreter session"
                ),
            }
        }
        drop(guard);
        self.evict().await;
        Ok(CellReport {
            outcome,
            images,
            reset,
            lost,
        })
    }

    async fn forget_stored(&self, thread: &str) {
        if let Some(p) = &self.persist {
            if let Err(e) = p.forget(thread).await {
                tracing::warn!(
                    thread,
                    error = format!("{e:#}"),
                    "could not remove a code_interpreter snapshot"
                );
            }
        }
    }

    /// Forgets `thread`'s session everywhere: its snapshot, and its live session and files
    /// here (the thread was deleted).
    pub async fn forget(&self, thread: &str) {
        let slot = self.sessions.lock().expect("sessions lock").remove(thread);
        if let Some(slot) = slot {
            *slot.lock().await = None;
        }
        self.forget_stored(thread).await;
        let dir = self.thread_dir(thread);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }

    /// The lock a thread's session lives under.
    fn slot(&self, thread: &str) -> Slot {
        self.sessions
            .lock()
            .expect("sessions lock")
            .entry(thread.to_string())
            .or_default()
            .clone()
    }

    /// Drops sessions past their idle time or lifetime, and the least recently used idle
    /// ones beyond `max_sessions` or the memory budget. Sessions in use are never touched.
    /// With snapshots on, a dropped session's directory goes too (its state is stored),
    /// removed under the thread's lock so no cell of it runs meanwhile.
    async fn evict(&self) {
        let victims: Vec<(String, Slot)> = {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            let now = Instant::now();
            let mut idle: Vec<(Instant, String, usize)> = Vec::new();
            let mut victims = Vec::new();
            let (mut memory, mut count) = (0usize, 0usize);
            sessions.retain(|thread, slot| {
                let Ok(guard) = slot.try_lock() else {
                    count += 1;
                    return true;
                };
                match guard.as_ref() {
                    None => false,
                    Some(l)
                        if now.duration_since(l.last_used) > self.settings.idle
                            || now.duration_since(l.started) > self.settings.lifetime =>
                    {
                        victims.push(thread.clone());
                        true
                    }
                    Some(l) => {
                        count += 1;
                        memory += l.session.memory_bytes();
                        idle.push((l.last_used, thread.clone(), l.session.memory_bytes()));
                        true
                    }
                }
            });
            let budget = (self.settings.memory_budget_mib << 20) as usize;
            idle.sort();
            for (_, thread, bytes) in idle {
                if count <= self.settings.max_sessions && memory <= budget {
                    break;
                }
                victims.push(thread);
                count -= 1;
                memory -= bytes;
            }
            victims
                .into_iter()
                .filter_map(|t| sessions.get(&t).cloned().map(|s| (t, s)))
                .collect()
        };
        for (thread, slot) in victims {
            let mut guard = slot.clone().lock_owned().await;
            *guard = None;
            if self.persist.is_some() {
                let dir = self.thread_dir(&thread);
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
            }
            let mut sessions = self.sessions.lock().expect("sessions lock");
            if sessions.get(&thread).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                sessions.remove(&thread);
            }
        }
    }

    /// How `GET /v1/plugins` lists it (`settings::describe`).
    pub fn info(&self) -> serde_json::Value {
        super::status::describe(&self.settings, self.availability(), self.persist.is_some())
    }

    /// The host directory that is `thread`'s `/mnt/data`.
    pub fn data_dir(&self, thread: &str) -> PathBuf {
        self.thread_dir(thread).join("data")
    }

    /// A file the thread's stored snapshot holds at `rel` under `/mnt/data` (for a link to
    /// a file whose session is no longer live here), at most `limit` bytes.
    pub async fn stored_file(&self, thread: &str, rel: &str, limit: u64) -> Option<Vec<u8>> {
        let persist = self.persist.as_ref()?;
        let head = self.head(thread).await.ok()??;
        let path = format!("data/{rel}");
        let entry = head
            .tree
            .files
            .iter()
            .find(|f| f.path == path && f.size <= limit)?;
        persist
            .object(&persist.thread_file(thread, &entry.sha256))
            .await
            .ok()
    }

    /// Live sessions on this node.
    pub fn live_sessions(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }
}
