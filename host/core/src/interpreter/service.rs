//! The code interpreter as a node offers it: whether it is available (installed, compiled),
//! and the live sessions, one per thread, that runs' `code_interpreter` calls execute in.
//!
//! Availability is decided in the background at start-up: a server without the artifact
//! starts at once and says why the tool is unavailable; one with the artifact but no compiled
//! module compiles it (about a minute) while serving, and calls made meanwhile are told so.
//!
//! Sessions: a thread's variables, imports and files persist between its calls (and its runs)
//! while its session lives: at most `max_sessions` per node (the least recently used idle one
//! makes room), each ended after `idle` without a call or `lifetime` after it started, as
//! OpenAI's do. A session whose cell timed out or trapped is dropped at once; the thread's
//! next call starts a fresh one and says so. Cells run on guest threads of their own at low
//! priority (`plugins::exec`), one per thread at a time, at most `max_cells` at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::artifact::Installed;
use super::engine;
use super::session::{CellOutcome, CellStatus, Mounts, Python, Session, SessionLimits};
use crate::plugins::cache::CacheKey;
use crate::plugins::exec::GuestThreads;

/// What an operator configures (`[code_interpreter]`, `--code-interpreter-*`).
#[derive(Debug, Clone)]
pub struct InterpreterSettings {
    pub enabled: bool,
    /// Where `assistants code-interpreter install` put it.
    pub dir: PathBuf,
    /// Per-thread working directories (`/tmp`, `/mnt/data`).
    pub sessions_dir: PathBuf,
    pub memory_mib: u64,
    pub cell_timeout: Duration,
    /// Output kept per stream per cell.
    pub output_kib: usize,
    pub open_files: usize,
    /// Live sessions per node.
    pub max_sessions: usize,
    /// Cells running at once on this node.
    pub max_cells: usize,
    pub idle: Duration,
    pub lifetime: Duration,
}

impl InterpreterSettings {
    /// The defaults for a data directory.
    pub fn for_data_dir(data_dir: &std::path::Path) -> InterpreterSettings {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        InterpreterSettings {
            enabled: true,
            dir: data_dir.join("code-interpreter"),
            sessions_dir: data_dir.join("code-interpreter-sessions"),
            memory_mib: 1024,
            cell_timeout: Duration::from_secs(120),
            output_kib: 64,
            open_files: 256,
            max_sessions: 16,
            max_cells: cores,
            idle: Duration::from_secs(20 * 60),
            lifetime: Duration::from_secs(60 * 60),
        }
    }
}

/// Whether the tool can run here, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Installed, being compiled for this machine.
    Preparing,
    /// Not offered: disabled, not installed, or failed to load (the reason says which).
    Unavailable(String),
}

/// One call's result as the engine records it.
#[derive(Debug, Clone)]
pub struct CellReport {
    pub outcome: CellOutcome,
    /// PNGs of the matplotlib figures the cell left open (in figure order), which the
    /// notebook would have displayed; the figures are closed.
    pub images: Vec<Vec<u8>>,
}

/// Saves and closes the figures a cell left open, as a notebook displays them; prints
/// nothing and leaves no name behind. Run after each cell that returned.
const SAVE_FIGURES: &str = "def __assistants_save_figures():
    import sys, os
    plt = sys.modules.get('matplotlib.pyplot')
    if plt is None:
        return
    os.makedirs('/tmp/.figures', exist_ok=True)
    for n in plt.get_fignums()[:MAX]:
        plt.figure(n).savefig(f'/tmp/.figures/{n:06d}.png', format='png')
    plt.close('all')
__assistants_save_figures()
del __assistants_save_figures
";
/// Figures kept per cell, and the largest PNG taken.
const MAX_FIGURES: usize = 10;
const MAX_FIGURE_BYTES: u64 = 16 << 20;

struct Live {
    session: Session,
    started: Instant,
    last_used: Instant,
}

/// The node's code interpreter.
pub struct CodeInterpreter {
    settings: InterpreterSettings,
    state: Mutex<State>,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Live>>>>>,
    cells: tokio::sync::Semaphore,
    guests: Option<GuestThreads>,
}

enum State {
    Preparing,
    Ready(Arc<Python>, Installed),
    Unavailable(String),
}

impl CodeInterpreter {
    /// Starts deciding availability in the background (loading or compiling the module).
    pub fn start(settings: InterpreterSettings, key: CacheKey) -> Arc<CodeInterpreter> {
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
        let this = Arc::new(CodeInterpreter {
            cells: tokio::sync::Semaphore::new(settings.max_cells.max(1)),
            settings,
            state: Mutex::new(initial),
            sessions: Mutex::new(HashMap::new()),
            guests,
        });
        match &*this.state.lock().expect("state lock") {
            State::Unavailable(why) => {
                tracing::info!(reason = %why, "code_interpreter is unavailable")
            }
            _ => {
                let me = this.clone();
                tokio::task::spawn_blocking(move || me.prepare(&key));
            }
        }
        this
    }

    /// One that runs nothing here, for `reason`.
    pub fn unavailable(settings: InterpreterSettings, reason: &str) -> Arc<CodeInterpreter> {
        Arc::new(CodeInterpreter {
            cells: tokio::sync::Semaphore::new(1),
            settings,
            state: Mutex::new(State::Unavailable(reason.to_string())),
            sessions: Mutex::new(HashMap::new()),
            guests: None,
        })
    }

    /// Loads (or compiles) the module; blocking.
    fn prepare(&self, key: &CacheKey) {
        let loaded = (|| -> anyhow::Result<(Arc<Python>, Installed)> {
            let installed = Installed::find(&self.settings.dir)?;
            let engine = engine::engine()?;
            // Logs when it has to compile; hashes the module once.
            let module = engine::compiled(&engine, &installed, key)?;
            Ok((Arc::new(Python::link(&engine, &module)?), installed))
        })();
        let next = match loaded {
            Ok((python, installed)) => {
                tracing::info!(dir = %installed.root.display(), "code_interpreter is ready");
                State::Ready(python, installed)
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "code_interpreter is unavailable");
                State::Unavailable(format!("the code interpreter did not load: {e:#}"))
            }
        };
        *self.state.lock().expect("state lock") = next;
    }

    pub fn availability(&self) -> Availability {
        match &*self.state.lock().expect("state lock") {
            State::Ready(..) => Availability::Ready,
            State::Preparing => Availability::Preparing,
            State::Unavailable(why) => Availability::Unavailable(why.clone()),
        }
    }

    /// Runs `code` in `thread`'s session (started if it has none). `Err` is a reason the
    /// tool could not run at all, for the model.
    pub async fn run_cell(&self, thread: &str, code: &str) -> Result<CellReport, String> {
        let (python, installed) = match &*self.state.lock().expect("state lock") {
            State::Ready(p, i) => (p.clone(), i.clone()),
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
        if guard.is_none() {
            let mounts = Mounts {
                installed,
                tmp: self.settings.sessions_dir.join(thread).join("tmp"),
                data: self.data_dir(thread),
            };
            let limits = SessionLimits {
                memory_bytes: (self.settings.memory_mib << 20) as usize,
                open_files: self.settings.open_files,
                output_bytes: self.settings.output_kib << 10,
            };
            let session = Session::start(&python, &mounts, &limits)
                .await
                .map_err(|e| format!("the code interpreter could not start: {e:#}"))?;
            *guard = Some(Live {
                session,
                started: now,
                last_used: now,
            });
        }
        let timeout = self.settings.cell_timeout;
        let code = code.to_string();
        let save = SAVE_FIGURES.replace("MAX", &MAX_FIGURES.to_string());
        // The cell runs on the guest threads with the session's lock held; the session comes
        // back with the outcome (or not at all, if it broke).
        let work = async move {
            let live = guard.as_mut().expect("a live session");
            let outcome = live.session.cell(&code, timeout).await;
            if matches!(
                outcome.status,
                CellStatus::Ok | CellStatus::Exception | CellStatus::Exit(_)
            ) {
                live.session.cell(&save, Duration::from_secs(30)).await;
            }
            live.last_used = Instant::now();
            if live.session.is_broken() || live.session.has_ended() {
                *guard = None;
            }
            outcome
        };
        let outcome = match &self.guests {
            Some(g) => g.run(work).await,
            None => work.await,
        };
        let figures = self.settings.sessions_dir.join(thread).join("tmp/.figures");
        let images = tokio::task::spawn_blocking(move || take_figures(&figures))
            .await
            .unwrap_or_default();
        self.evict();
        Ok(CellReport { outcome, images })
    }

    /// The lock a thread's session lives under.
    fn slot(&self, thread: &str) -> Arc<tokio::sync::Mutex<Option<Live>>> {
        self.sessions
            .lock()
            .expect("sessions lock")
            .entry(thread.to_string())
            .or_default()
            .clone()
    }

    /// Drops sessions past their idle time or lifetime, and the least recently used idle
    /// ones beyond `max_sessions`. Sessions in use are never touched.
    fn evict(&self) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let now = Instant::now();
        let mut idle: Vec<(Instant, String)> = Vec::new();
        sessions.retain(|thread, slot| {
            let Ok(mut guard) = slot.try_lock() else {
                return true;
            };
            match guard.as_ref() {
                None => false,
                Some(l)
                    if now.duration_since(l.last_used) > self.settings.idle
                        || now.duration_since(l.started) > self.settings.lifetime =>
                {
                    *guard = None;
                    false
                }
                Some(l) => {
                    idle.push((l.last_used, thread.clone()));
                    true
                }
            }
        });
        let busy = sessions.len() - idle.len();
        let over = (busy + idle.len()).saturating_sub(self.settings.max_sessions);
        idle.sort();
        for (_, thread) in idle.into_iter().take(over) {
            sessions.remove(&thread);
        }
    }

    /// How `GET /v1/plugins` lists it: in the plugins' shape, with its status (`ready`,
    /// `preparing`, `unavailable` and why) and limits.
    pub fn info(&self) -> serde_json::Value {
        let spec = super::tool_spec(super::TOOL, &[]);
        let (status, reason) = match self.availability() {
            Availability::Ready => ("ready", None),
            Availability::Preparing => ("preparing", None),
            Availability::Unavailable(why) => ("unavailable", Some(why)),
        };
        let s = &self.settings;
        serde_json::json!({
            "id": super::TOOL,
            "object": "plugin",
            "version": super::artifact::WHEEL.version,
            "kind": "tool",
            "description": "Python (CPython 3.15 with numpy, pandas, matplotlib …) in a WebAssembly sandbox, one stateful session per thread.",
            "digest": format!("sha256:{}", super::artifact::WHEEL.sha256),
            "builtin": true,
            "tools": [{
                "name": spec.name,
                "description": spec.description,
                "parameters": serde_json::from_str::<serde_json::Value>(&spec.parameters_json).unwrap_or_default(),
                "strict": spec.strict,
            }],
            "limits": {
                "memory_mib": s.memory_mib,
                "timeout_ms": s.cell_timeout.as_millis() as u64,
                "output_kib": s.output_kib,
                "open_files": s.open_files,
                "max_sessions": s.max_sessions,
                "max_cells": s.max_cells,
                "idle_secs": s.idle.as_secs(),
                "lifetime_secs": s.lifetime.as_secs(),
            },
            "status": status,
            "status_reason": reason,
        })
    }

    /// The host directory that is `thread`'s `/mnt/data`.
    pub fn data_dir(&self, thread: &str) -> PathBuf {
        self.settings.sessions_dir.join(thread).join("data")
    }

    /// Live sessions on this node.
    pub fn live_sessions(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }
}

/// The PNGs in `dir` in name order (at most [`MAX_FIGURES`], each at most
/// [`MAX_FIGURE_BYTES`]), removed as they are read.
fn take_figures(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    let mut images = Vec::new();
    for path in paths {
        let small = std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_FIGURE_BYTES);
        if small && images.len() < MAX_FIGURES {
            if let Ok(bytes) = std::fs::read(&path) {
                images.push(bytes);
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    images
}

/// The tool result the model reads for a cell: its output, and what happened if it did not
/// simply finish.
pub fn result_text(report: &CellReport) -> String {
    let o = &report.outcome;
    let mut text = o.stdout.clone();
    if !o.stderr.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&o.stderr);
    }
    if o.dropped > 0 {
        text.push_str(&format!(
            "\n[output truncated: {} more bytes were not kept]",
            o.dropped
        ));
    }
    let note = match &o.status {
        CellStatus::Ok | CellStatus::Exception | CellStatus::Exit(0) => None,
        CellStatus::Exit(n) => Some(format!("[the code exited with status {n}]")),
        CellStatus::Quit => Some("[the code called exit(): the session ended; the next call starts a new one]".to_string()),
        CellStatus::Timeout => Some(format!(
            "[execution timed out after {} s; the session was reset: earlier variables and imports are gone, files in /mnt/data remain]",
            o.elapsed.as_secs().max(1)
        )),
        CellStatus::Trapped(why) => Some(format!(
            "[execution failed: {why}; the session was reset: earlier variables and imports are gone, files in /mnt/data remain]"
        )),
    };
    if let Some(note) = note {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&note);
    }
    text
}
