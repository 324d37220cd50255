//! The sandbox: one wasmtime `Engine` for all plugin worlds, a fresh `Store` per call.
//!
//! Engines use Cranelift, the pooling allocator (instantiation is a few microseconds once a
//! component is pre-instantiated) and epoch interruption driven by one ticker thread, so a
//! guest that loops forever is stopped at its deadline. A call's store carries a WASI context
//! with nothing in it — no preopened directories, environment, arguments, stdin or sockets —
//! bounded stdout/stderr capture, and `StoreLimits` for memory, instances and tables (memory also
//! charged to the host's budget for all calls, [`MemoryBudget`]). A store is
//! dropped after its call, trap or not, so no state (or corruption) carries over.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::tool::assistants::plugin::{config, logging};
use super::bindings::v0_2;
use super::config::GuestConfig;
use super::egress::{HttpPolicy, PluginHttpHooks};
use super::logging::GuestLog;

/// How often the epoch advances; deadlines are counted in these ticks, and a busy guest yields
/// its thread at each one. Short, so a call waiting behind busy guests on the guest threads
/// waits a few milliseconds per guest, not tens (soak benchmark: a run's p50 under hostile
/// load 211 ms at 10 ms ticks, 128 ms at 2 ms); a tick costs one atomic increment per engine.
pub(crate) const TICK: Duration = Duration::from_millis(2);
/// Captured guest stdout/stderr per call; beyond this, guest writes fail.
const STDIO_CAPACITY: usize = 64 * 1024;
/// The lowest bytes of a freed pool slot's memory (and table) that are reset in place rather
/// than decommitted. Rust guests put their 1 MiB stack below their data, so the pages a short
/// call dirties sit on both sides of the 1 MiB mark.
const KEEP_RESIDENT: usize = 2 << 20;
/// Largest in-memory size of one `wasi:http` fields resource (a request's or response's
/// headers); wasmtime's default (128 KiB) times thousands of handles was gigabytes.
pub(crate) const HTTP_FIELDS_BYTES: usize = 16 * 1024;

/// Host resources (streams, pollables, HTTP fields and bodies …) one call may hold at once.
/// They live in host memory, outside the guest's linear memory, so they are budgeted against
/// the call's memory limit: at most a quarter of it in full header maps, and never fewer than
/// a plain tool needs.
pub fn resource_cap(memory_mib: u64) -> usize {
    let quarter = (memory_mib as usize * 1024 * 1024) / 4;
    (quarter / HTTP_FIELDS_BYTES).clamp(256, 16_384)
}

/// What one call may create: a pool slot's size, and the call's store limits.
pub(crate) struct PerCall {
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
}

/// Measured: a Rust `wasm32-wasip2` component has 3 core instances, 1 memory and 2 tables; a
/// componentize-py one 14, 1 and 2. The margin is for other toolchains.
pub(crate) const PER_CALL: PerCall = PerCall {
    core_instances: 16,
    memories: 2,
    tables: 4,
};

/// Sizing of the instance pool (per engine).
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Concurrent calls per world.
    pub instances: u32,
    /// Upper bound of any one call's linear memory (the operator cap), in MiB.
    pub max_memory_mib: u64,
}

/// Whether a linker offers `wasi:http` (to tools with granted hosts) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Http {
    Linked,
    Sealed,
}

/// Whether a Linux kernel release (`/proc/sys/kernel/osrelease`, e.g. `6.8.0-45-generic`) has
/// the `PAGEMAP_SCAN` ioctl (6.7 and later).
fn has_pagemap_scan(release: &str) -> bool {
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    (major, minor) >= (6, 7)
}

/// An engine configured for plugins, with its epoch ticker.
#[derive(Clone)]
pub struct PluginEngine {
    pub engine: Engine,
}

impl PluginEngine {
    pub fn new(pool: PoolSize) -> anyhow::Result<PluginEngine> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        // The `gc` build feature is there for the code interpreter's engine; plugins get
        // neither GC nor exceptions (and so no GC heaps in the pool).
        config.wasm_gc(false).wasm_exceptions(false);
        let max_memory = (pool.max_memory_mib * 1024 * 1024) as usize;
        // Reserve only what the cap allows per memory (plus a guard), not the default 4 GiB:
        // every pool slot reserves its address space up front.
        config
            .memory_reservation(max_memory as u64)
            .memory_guard_size(32 << 20);
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(pool.instances)
            // Every slot is sized for the most one call may create, so a call holding a slot
            // never finds the pool's memories, tables or instances used up by others; a
            // component needing more is refused when it loads.
            .max_core_instances_per_component(PER_CALL.core_instances)
            .max_memories_per_component(PER_CALL.memories)
            .max_tables_per_component(PER_CALL.tables)
            .total_core_instances(pool.instances * PER_CALL.core_instances)
            .total_memories(pool.instances * PER_CALL.memories)
            .total_tables(pool.instances * PER_CALL.tables)
            .total_stacks(pool.instances)
            .max_memory_size(max_memory)
            .table_elements(100_000)
            .total_gc_heaps(0);
        // A freed slot is reset by copying back only the pages the call dirtied (found with
        // Linux's PAGEMAP_SCAN) instead of `madvise` over the whole slot: that syscall and the
        // TLB shootdowns it sends to the other cores were more than half of a short call's
        // cost, and the next call then faulted its pages back in. A warm slot keeps only what
        // was dirtied, at most this much, resident. Without PAGEMAP_SCAN wasmtime would
        // `memset` the whole region on every reset, slower than the `madvise`: keep that.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        if has_pagemap_scan(&release) {
            pooling
                .pagemap_scan(wasmtime::Enabled::Auto)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the plugin engine")?;
        start_ticker(engine.clone());
        Ok(PluginEngine { engine })
    }

    /// A linker with WASI (empty context) and the host interfaces of the tool worlds;
    /// `wasi:http` (whose hooks refuse what the grant does not allow) if `http` says so.
    pub(crate) fn tool_linker(&self, http: Http) -> anyhow::Result<Linker<CallState>> {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        if http == Http::Linked {
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        }
        // Every contract version's imports, each under its own versioned name.
        logging::add_to_linker::<CallState, HasSelf<GuestLog>>(&mut linker, |s| &mut s.log)?;
        config::add_to_linker::<CallState, HasSelf<GuestConfig>>(&mut linker, |s| &mut s.config)?;
        v0_2::logging::add_to_linker::<CallState, HasSelf<GuestLog>>(&mut linker, |s| &mut s.log)?;
        v0_2::config::add_to_linker::<CallState, HasSelf<GuestConfig>>(&mut linker, |s| {
            &mut s.config
        })?;
        Ok(linker)
    }

    /// A linker for retrieval tools: the tool world's imports plus `vector-store` search.
    pub(crate) fn retrieval_linker(&self, http: Http) -> anyhow::Result<Linker<CallState>> {
        let mut linker = self.tool_linker(http)?;
        super::bindings::retrieval::assistants::plugin::vector_store::add_to_linker::<
            CallState,
            HasSelf<super::retrieval::VectorStoreAccess>,
        >(&mut linker, |s| &mut s.retrieval)?;
        v0_2::vector_store::add_to_linker::<CallState, HasSelf<super::retrieval::VectorStoreAccess>>(
            &mut linker,
            |s| &mut s.retrieval,
        )?;
        Ok(linker)
    }

    /// A linker for strategies: WASI (empty context) and logging only. Strategies are pure, so
    /// a component that imports `wasi:http` or `config` does not load.
    pub(crate) fn strategy_linker(&self, _: Http) -> anyhow::Result<Linker<CallState>> {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        logging::add_to_linker::<CallState, HasSelf<GuestLog>>(&mut linker, |s| &mut s.log)?;
        v0_2::logging::add_to_linker::<CallState, HasSelf<GuestLog>>(&mut linker, |s| &mut s.log)?;
        Ok(linker)
    }

    /// Compiles `wasm`, or loads it from the authenticated on-disk cache, keyed by content
    /// hash and engine configuration.
    pub fn load_component(
        &self,
        wasm: &[u8],
        digest: &str,
        cache: Option<&super::cache::ArtifactCache>,
    ) -> anyhow::Result<Component> {
        match cache {
            Some(cache) => cache.compiled(
                &self.engine,
                wasm,
                digest,
                &super::cache::engine_tag(&self.engine),
            ),
            None => Ok(Component::new(&self.engine, wasm)?),
        }
    }
}

/// One thread advances the epoch of every engine (the plugin worlds' and the interpreter's).
pub(crate) fn start_ticker(engine: Engine) {
    static ENGINES: OnceLock<std::sync::Mutex<Vec<wasmtime::EngineWeak>>> = OnceLock::new();
    let engines = ENGINES.get_or_init(|| {
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                let mut list = ENGINES
                    .get()
                    .expect("initialised")
                    .lock()
                    .expect("ticker lock");
                list.retain(|weak| match weak.upgrade() {
                    Some(e) => {
                        e.increment_epoch();
                        true
                    }
                    None => false,
                });
            })
            .expect("spawning the epoch ticker");
        std::sync::Mutex::new(Vec::new())
    });
    engines.lock().expect("ticker lock").push(engine.weak());
}

/// What stopped a guest's memory from growing, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum MemoryStop {
    #[default]
    None,
    /// The call's own `memory_mib`.
    OwnLimit,
    /// The host's budget for all calls in flight ([`MemoryBudget`]).
    HostBudget,
}

/// Linear memory of every plugin call in flight on this node, across worlds, against one
/// budget: each call's limit bounds that call, this bounds them together, so many concurrent
/// calls cannot take the host's memory even when each stays within its own limit. A call is
/// charged as its memories grow (not for its limit up front, which would idle most of the
/// budget) and refunded when its store is dropped.
pub(crate) struct MemoryBudget {
    limit: u64,
    used: std::sync::atomic::AtomicU64,
}

impl MemoryBudget {
    pub fn new(limit_bytes: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit: limit_bytes,
            used: Default::default(),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged to calls in flight.
    pub(crate) fn in_use(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn charge(&self, bytes: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.limit)
            })
            .is_ok()
    }

    fn refund(&self, bytes: u64) {
        self.used
            .fetch_sub(bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The default budget: half the memory this process may use (the cgroup limit when it is
/// lower than the machine's memory), at least 256 MiB.
pub(crate) fn default_memory_budget() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())
    .min();
    let total = [meminfo, cgroup]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(4 << 30);
    (total / 2).max(256 << 20)
}

/// Pool slots per world for a memory budget: one per 8 MiB of it (small plugins use a few
/// MiB), between 16 and 1000.
pub(crate) fn default_instances(budget_bytes: u64) -> u32 {
    (budget_bytes / (8 << 20)).clamp(16, 1000) as u32
}

/// The store's limits, remembering what stopped a memory from growing, so the error the
/// model sees says so for certain rather than guessing from a trap message.
pub(crate) struct CallLimits {
    inner: StoreLimits,
    pub memory_stop: MemoryStop,
    budget: Arc<MemoryBudget>,
    /// Bytes this call's memories were charged to the budget.
    charged: u64,
}

impl Drop for CallLimits {
    fn drop(&mut self) {
        self.budget.refund(self.charged);
    }
}

impl wasmtime::ResourceLimiter for CallLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.memory_stop = MemoryStop::OwnLimit;
            return allowed;
        }
        let more = desired.saturating_sub(current) as u64;
        if !self.budget.charge(more) {
            self.memory_stop = MemoryStop::HostBudget;
            return Err(wasmtime::format_err!(
                "the host's memory budget for plugin calls is in use"
            ));
        }
        self.charged += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// What one call's store holds: the WASI context (empty but for captured stdio), the limits,
/// and one unit per host capability the plugin's world imports — logging, config, outgoing
/// HTTP (policy hooks over `wasi:http`), vector-store search for retrieval tools.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: CallLimits,
    plugin_id: Arc<str>,
    log: GuestLog,
    config: GuestConfig,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_hooks: PluginHttpHooks,
    /// For retrieval tools: the stores this call may search, and how.
    pub retrieval: super::retrieval::VectorStoreAccess,
}

impl CallState {
    pub fn new(
        plugin_id: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        memory_mib: u64,
        http: Arc<HttpPolicy>,
        budget: Arc<MemoryBudget>,
    ) -> CallState {
        let stdout = MemoryOutputPipe::new(STDIO_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = CallLimits {
            inner: StoreLimitsBuilder::new()
                .memory_size((memory_mib * 1024 * 1024) as usize)
                .instances(PER_CALL.core_instances as usize)
                .tables(PER_CALL.tables as usize)
                .memories(PER_CALL.memories as usize)
                .table_elements(100_000)
                .trap_on_grow_failure(true)
                .build(),
            memory_stop: MemoryStop::None,
            budget,
            charged: 0,
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(resource_cap(memory_mib));
        let mut http_ctx = wasmtime_wasi_http::WasiHttpCtx::new();
        http_ctx.set_field_size_limit(HTTP_FIELDS_BYTES);
        CallState {
            wasi,
            table,
            limits,
            log: GuestLog::new(plugin_id.clone()),
            config: GuestConfig::new(config),
            plugin_id,
            stdout,
            stderr,
            http: http_ctx,
            http_hooks: PluginHttpHooks::new(http),
            retrieval: Default::default(),
        }
    }

    /// Forwards what the guest printed to the log, tagged with the plugin id.
    pub(crate) fn flush_stdio(&self) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            if !bytes.is_empty() {
                let text = String::from_utf8_lossy(&bytes);
                tracing::info!(plugin = %self.plugin_id, stream, "{}", text.trim_end().escape_debug());
            }
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for CallState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// A store for one call with its limits and deadline set.
///
/// Guest code is interrupted every epoch tick: until the deadline it yields to the async
/// executor (so a looping guest never holds a runtime thread for more than a tick, and the
/// caller's timeout can fire), after it the call traps with `Interrupt`.
pub(crate) fn call_store(engine: &Engine, state: CallState, timeout: Duration) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    let deadline = std::time::Instant::now() + timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if std::time::Instant::now() >= deadline {
            Ok(wasmtime::UpdateDeadline::Interrupt)
        } else {
            Ok(wasmtime::UpdateDeadline::Yield(1))
        }
    });
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_scan_is_used_from_linux_6_7() {
        assert!(has_pagemap_scan("6.18.44-fc-v1272\n"));
        assert!(has_pagemap_scan("6.7.0"));
        assert!(has_pagemap_scan("7.0"));
        assert!(!has_pagemap_scan("6.6.30-generic"));
        assert!(!has_pagemap_scan("5.15.0-91-generic"));
        assert!(!has_pagemap_scan(""));
    }

    #[test]
    fn the_budget_charges_up_to_its_limit_and_refunds() {
        let budget = MemoryBudget::new(100);
        assert!(budget.charge(60));
        assert!(!budget.charge(41), "past the limit");
        assert!(budget.charge(40));
        assert_eq!(budget.in_use(), 100);
        budget.refund(100);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(default_instances(0), 16);
        assert_eq!(default_instances(12 << 30), 1000);
        assert_eq!(default_instances(1 << 30), 128);
        assert!(default_memory_budget() >= 256 << 20);
    }
}
