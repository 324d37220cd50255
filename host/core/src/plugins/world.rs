//! A world's engine, linker and instance slots: each world (tool, retrieval tool, strategy,
//! parser) has its own, so one kind of plugin cannot exhaust another's pool.

use super::*;

/// One world's engine, its linker (imports resolved once) and its instance slots.
pub(super) struct World {
    pub(super) engine: PluginEngine,
    pub(super) linker: wasmtime::component::Linker<CallState>,
    /// One permit per pooled instance: calls beyond the pool wait here (within their
    /// deadline) instead of failing on an exhausted pool.
    slots: Arc<tokio::sync::Semaphore>,
}

impl World {
    pub(super) fn new(
        pool: PoolSize,
        linker: fn(&PluginEngine) -> anyhow::Result<wasmtime::component::Linker<CallState>>,
    ) -> anyhow::Result<World> {
        let engine = PluginEngine::new(pool)?;
        let linker = linker(&engine)?;
        Ok(World {
            engine,
            linker,
            slots: Arc::new(tokio::sync::Semaphore::new(pool.instances as usize)),
        })
    }

    /// Waits for a free instance slot until `deadline`.
    pub(super) async fn slot(
        &self,
        deadline: Duration,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, String> {
        // Fast path without a timer: the pool is rarely full.
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(deadline, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err("the server is busy: every plugin instance slot is in use; try again".into()),
        }
    }
}
