//! One live interpreter: an instance of the Python module with its WASI context, running
//! notebook cells one after another (variables, imports and files persist between them).
//!
//! The guest's filesystem: `/usr/local/lib` (the standard library zip) and matplotlib's data,
//! read-only; `/tmp`, the session's own scratch directory; `/mnt/data`, the thread's files,
//! read-write. Nothing else of the host, and no network (WASI preview 1 cannot open sockets).
//!
//! A cell is the module's `turn` export over the cell's UTF-8 source: the guest runs it in
//! `__main__` and echoes a final expression as the interactive interpreter does. Its stdout and
//! stderr are kept up to the output cap and the rest is counted and dropped (the guest's writes
//! always succeed, so a chatty cell is truncated, not failed). A cell that runs past its
//! deadline, traps or is abandoned leaves the instance unusable: the session is then
//! [`Session::is_broken`] and its owner drops it (and restores the last good state, if any).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::{
    Engine, InstancePre, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, TypedFunc,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::artifact::Installed;

/// Where the guest finds things.
pub(crate) const GUEST_LIB: &str = "/usr/local/lib";
pub(crate) const GUEST_MPL_DATA: &str = "/usr/local/lib/python315.zip/matplotlib/mpl-data";
pub(crate) const GUEST_TMP: &str = "/tmp";
pub const GUEST_DATA: &str = "/mnt/data";
/// The interpreter's `argv[0]` (the guest reads its own argv on its first cell).
const ARGV0: &str = "/usr/local/bin/python.wasm";

/// A module ready to instantiate, with its imports resolved.
#[derive(Clone)]
pub struct Python {
    pub engine: Engine,
    pub pre: InstancePre<CellState>,
}

impl Python {
    /// `module` linked: WASI preview 1 and the tool bridge (`host.call`, which answers "no host
    /// is bound" until the interpreter offers tools to the guest).
    pub fn link(engine: &Engine, module: &Module) -> anyhow::Result<Python> {
        let mut linker: Linker<CellState> = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut CellState| &mut s.wasi)?;
        linker.func_wrap(
            "host",
            "call",
            |_: wasmtime::Caller<'_, CellState>, _: i32, _: i32, _: i32, _: i32| -> i32 { -1 },
        )?;
        let pre = linker.instantiate_pre(module)?;
        Ok(Python {
            engine: engine.clone(),
            pre,
        })
    }
}

/// Limits one session runs under.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Linear memory, bytes (at least the module's initial 40 MiB).
    pub memory_bytes: usize,
    /// Open files and directories at once (WASI descriptors; each is a host descriptor).
    pub open_files: usize,
    /// Output kept per stream per cell.
    pub output_bytes: usize,
}

/// The host directories a session sees.
#[derive(Debug, Clone)]
pub struct Mounts {
    pub installed: Installed,
    /// Scratch space, the guest's `/tmp`.
    pub tmp: std::path::PathBuf,
    /// The thread's files, the guest's `/mnt/data`.
    pub data: std::path::PathBuf,
}

/// What a store holds for the guest.
pub struct CellState {
    pub(super) wasi: WasiP1Ctx,
    limits: StoreLimits,
    /// When the running cell must stop (checked at every epoch tick).
    deadline: Instant,
    /// Why the running cell must stop now, when its owner says so ([`Session::stopper`]).
    stop: Stopper,
}

/// Stops a session's running cell from outside (at its next epoch tick), with a reason.
#[derive(Clone, Default)]
pub(crate) struct Stopper(Arc<Mutex<Option<String>>>);

impl Stopper {
    pub fn stop(&self, why: String) {
        *self.0.lock().expect("stopper lock") = Some(why);
    }

    fn reason(&self) -> Option<String> {
        self.0.lock().expect("stopper lock").clone()
    }

    fn clear(&self) {
        *self.0.lock().expect("stopper lock") = None;
    }
}

/// How a cell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellStatus {
    /// Ran to its end.
    Ok,
    /// Raised an exception (the traceback is on stderr); the session goes on.
    Exception,
    /// Called `sys.exit(code)`; the session goes on.
    Exit(i32),
    /// Called `exit()` or `quit()`: the session ends after this cell.
    Quit,
    /// Ran past its deadline; the session is broken.
    Timeout,
    /// Stopped by its owner (its files went over the disk quota); the session is broken.
    Stopped(String),
    /// Trapped (a fault in the guest or the host); the session is broken.
    Trapped(String),
}

/// One cell's result.
#[derive(Debug, Clone)]
pub struct CellOutcome {
    pub status: CellStatus,
    pub stdout: String,
    pub stderr: String,
    /// Bytes of output dropped past the cap, both streams.
    pub dropped: u64,
    pub elapsed: Duration,
}

/// A live interpreter.
pub struct Session {
    store: Store<CellState>,
    memory: Memory,
    turn: TypedFunc<(i32, i32), i32>,
    alloc: TypedFunc<i32, i32>,
    stdout: Captured,
    stderr: Captured,
    broken: bool,
    ended: bool,
    open_files: usize,
    /// Descriptors the mounts take after stdio (the guest's first free one is 3 + this).
    preopens: u32,
}

impl Session {
    /// A fresh interpreter over `mounts`.
    pub async fn start(
        python: &Python,
        mounts: &Mounts,
        limits: &SessionLimits,
    ) -> anyhow::Result<Session> {
        let stdout = Captured::new(limits.output_bytes);
        let stderr = Captured::new(limits.output_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&[ARGV0])
            .env("HOME", GUEST_TMP)
            .env("TMPDIR", GUEST_TMP)
            // zoneinfo reads the tzdata package inside the zip.
            .env("PYTHONTZPATH", "")
            .env("MPLBACKEND", "Agg")
            .env("MPLCONFIGDIR", "/tmp/.matplotlib")
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // The order matters to the guest: its libc resolves a path against the longest
        // matching preopen, and a restored memory image remembers them by position.
        let lib = mounts.installed.lib_dir();
        wasi.preopened_dir(&lib, GUEST_LIB, FsPerms::ReadOnly)
            .map_err(|e| anyhow::anyhow!("mounting {}: {e}", lib.display()))?;
        let mut preopens = 1;
        let mpl = mounts.installed.mpl_data();
        if mpl.is_dir() {
            preopens += 1;
            wasi.preopened_dir(&mpl, GUEST_MPL_DATA, FsPerms::ReadOnly)
                .map_err(|e| anyhow::anyhow!("mounting {}: {e}", mpl.display()))?;
        }
        for (host, guest) in [(&mounts.tmp, GUEST_TMP), (&mounts.data, GUEST_DATA)] {
            preopens += 1;
            std::fs::create_dir_all(host)?;
            wasi.preopened_dir(host, guest, FsPerms::ReadWrite)
                .map_err(|e| anyhow::anyhow!("mounting {}: {e}", host.display()))?;
        }
        let mut wasi = wasi.build_p1();
        wasmtime_wasi::WasiView::ctx(&mut wasi)
            .table
            .set_max_capacity(limits.open_files);
        let state = CellState {
            wasi,
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(1)
                .memories(1)
                .tables(1)
                // A failed `memory.grow` is a NULL from malloc, which Python turns into
                // MemoryError; the session lives on.
                .trap_on_grow_failure(false)
                .build(),
            deadline: Instant::now() + Duration::from_secs(60),
            stop: Stopper::default(),
        };
        let mut store = Store::new(&python.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline || ctx.data().stop.reason().is_some() {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
        let instance = python.pre.instantiate_async(&mut store).await?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("the interpreter exports no memory")?;
        let turn = instance.get_typed_func::<(i32, i32), i32>(&mut store, "turn")?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut store, "host_alloc")?;
        Ok(Session {
            store,
            memory,
            turn,
            alloc,
            stdout,
            stderr,
            broken: false,
            ended: false,
            open_files: limits.open_files,
            preopens,
        })
    }

    /// A broken session (a cell timed out, trapped or was abandoned) must not run again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The lowest descriptor the guest's own opens get.
    pub(crate) fn first_free_fd(&self) -> u32 {
        3 + self.preopens
    }

    /// The guest called `exit()`: the session is over.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended
    }

    /// Bytes of linear memory in use.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// The guest's linear memory: between cells, an image of the whole session
    /// (`snapshot`).
    pub fn image(&self) -> &[u8] {
        self.memory.data(&self.store)
    }

    /// Makes a fresh instance's memory an image of `len` bytes that `fill` writes (a template
    /// or a snapshot of the same module), before its first cell.
    pub(crate) async fn load_image(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        const WASM_PAGE: usize = 65536;
        let have = self.memory.data_size(&self.store);
        if !len.is_multiple_of(WASM_PAGE) || len < have {
            anyhow::bail!("an image of {len} bytes does not fit this module's memory");
        }
        if len > have {
            self.memory
                .grow_async(&mut self.store, ((len - have) / WASM_PAGE) as u64)
                .await
                .map_err(|e| anyhow::anyhow!("the image does not fit the memory limit: {e}"))?;
        }
        fill(self.memory.data_mut(&mut self.store))
    }

    /// What stops this session's running cell from outside.
    pub(crate) fn stopper(&self) -> Stopper {
        self.store.data().stop.clone()
    }

    /// Runs one cell of `code` with `timeout`. If the returned future is dropped before it
    /// finishes, the session is left broken.
    pub async fn cell(&mut self, code: &str, timeout: Duration) -> CellOutcome {
        let started = Instant::now();
        self.stdout.reset();
        self.stderr.reset();
        if self.broken || self.ended {
            return self.outcome(CellStatus::Trapped("the session has ended".into()), started);
        }
        // Pessimistic until the cell returns: a cell abandoned half-way broke the session.
        self.broken = true;
        self.store.data_mut().deadline = started + timeout;
        self.store.data().stop.clear();
        let status = match self.run(code.as_bytes(), timeout).await {
            Ok(code) => {
                self.broken = false;
                match code {
                    0 => CellStatus::Ok,
                    1 => CellStatus::Exception,
                    256.. => {
                        self.ended = true;
                        CellStatus::Quit
                    }
                    n => CellStatus::Exit(n & 0xff),
                }
            }
            Err(Stop::Timeout) => CellStatus::Timeout,
            Err(Stop::Trap(e)) => {
                let stopped = self.store.data().stop.reason();
                if let (Some(why), Some(&wasmtime::Trap::Interrupt)) =
                    (stopped, e.downcast_ref::<wasmtime::Trap>())
                {
                    CellStatus::Stopped(why)
                } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
                    CellStatus::Timeout
                } else if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    // `os._exit(n)`: the guest is gone, cleanly.
                    self.broken = false;
                    self.ended = true;
                    CellStatus::Exit(exit.0)
                } else if table_full(&e) {
                    // WASI preview 1 in wasmtime traps when the descriptor table is full
                    // (there is no EMFILE): the cell ends with the session, the host's
                    // descriptors stay bounded.
                    CellStatus::Trapped(format!(
                        "too many open files: a session may hold {} descriptors at once",
                        self.open_files
                    ))
                } else {
                    CellStatus::Trapped(format!("{e:#}"))
                }
            }
        };
        self.outcome(status, started)
    }

    async fn run(&mut self, code: &[u8], timeout: Duration) -> Result<i32, Stop> {
        let len =
            i32::try_from(code.len()).map_err(|_| Stop::Trap(anyhow::anyhow!("cell too large")))?;
        // The epoch callback stops a computing guest at its deadline; this stops one waiting
        // in the host (a sleep), a little later.
        let work = async {
            let ptr = self.alloc.call_async(&mut self.store, len).await?;
            // A null pointer (no memory for the code) makes the guest raise MemoryError.
            let ptr = if ptr != 0
                && self
                    .memory
                    .write(&mut self.store, ptr as usize, code)
                    .is_ok()
            {
                ptr
            } else {
                0
            };
            self.turn.call_async(&mut self.store, (ptr, len)).await
        };
        match tokio::time::timeout(timeout + Duration::from_millis(500), work).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(Stop::Trap(e.into())),
            Err(_) => Err(Stop::Timeout),
        }
    }

    fn outcome(&self, status: CellStatus, started: Instant) -> CellOutcome {
        let (stdout, d1) = self.stdout.take();
        let (stderr, d2) = self.stderr.take();
        CellOutcome {
            status,
            stdout,
            stderr,
            dropped: d1 + d2,
            elapsed: started.elapsed(),
        }
    }
}

enum Stop {
    Timeout,
    Trap(anyhow::Error),
}

/// Whether a trap came from a full WASI descriptor table.
fn table_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    })
}

/// A guest output stream kept up to a cap: writes always succeed, bytes past the cap are
/// counted and dropped.
#[derive(Clone)]
struct Captured(Arc<Mutex<CapturedInner>>);

struct CapturedInner {
    bytes: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl Captured {
    fn new(cap: usize) -> Captured {
        Captured(Arc::new(Mutex::new(CapturedInner {
            bytes: Vec::new(),
            cap,
            dropped: 0,
        })))
    }

    fn reset(&self) {
        let mut inner = self.0.lock().expect("capture lock");
        inner.bytes.clear();
        inner.dropped = 0;
    }

    /// The text so far (lossy UTF-8; a multi-byte character cut by the cap is dropped) and
    /// how many bytes were dropped.
    fn take(&self) -> (String, u64) {
        let mut inner = self.0.lock().expect("capture lock");
        let bytes = std::mem::take(&mut inner.bytes);
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        (text, std::mem::take(&mut inner.dropped))
    }

    fn write(&self, buf: &[u8]) {
        let mut inner = self.0.lock().expect("capture lock");
        let room = inner.cap.saturating_sub(inner.bytes.len());
        let kept = room.min(buf.len());
        inner.bytes.extend_from_slice(&buf[..kept]);
        inner.dropped += (buf.len() - kept) as u64;
    }
}

impl wasmtime_wasi::cli::IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for Captured {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
