//! A world's engine, linker and instance slots: each world (tool, retrieval tool, strategy,
//! parser) has its own, so one kind of plugin cannot exhaust another's pool.

use super::*;

/// One world's engine, its linkers (imports resolved once) and its instance slots.
pub(super) struct World {
    pub(super) engine: PluginEngine,
    /// Every import the world offers, `wasi:http` included (tools with granted hosts).
    linker: wasmtime::component::Linker<CallState>,
    /// The same without `wasi:http`: a plugin granted no host gets no HTTP resources at all.
    sealed: wasmtime::component::Linker<CallState>,
    /// One permit per pooled instance: calls beyond the pool wait here (within their
    /// deadline) instead of failing on an exhausted pool.
    slots: Arc<tokio::sync::Semaphore>,
}

impl World {
    pub(super) fn new(
        pool: PoolSize,
        linker: fn(
            &PluginEngine,
            runtime::Http,
        ) -> anyhow::Result<wasmtime::component::Linker<CallState>>,
    ) -> anyhow::Result<World> {
        let engine = PluginEngine::new(pool)?;
        Ok(World {
            linker: linker(&engine, runtime::Http::Linked)?,
            sealed: linker(&engine, runtime::Http::Sealed)?,
            engine,
            slots: Arc::new(tokio::sync::Semaphore::new(pool.instances as usize)),
        })
    }

    /// Resolves `component`'s imports. Without `http`, its `wasi:http` imports (a component
    /// built with an HTTP client imports them whether it calls them or not) trap when called
    /// and create nothing host-side; any other import the world lacks is an error.
    pub(super) fn instantiate_pre(
        &self,
        component: &wasmtime::component::Component,
        http: bool,
    ) -> anyhow::Result<wasmtime::component::InstancePre<CallState>> {
        let refused = |e: wasmtime::Error| {
            anyhow::Error::from(e)
                .context("the component imports something this kind of plugin may not use")
        };
        if http {
            return self.linker.instantiate_pre(component).map_err(refused);
        }
        if let Ok(pre) = self.sealed.instantiate_pre(component) {
            return Ok(pre);
        }
        // Resolvable with wasi:http linked, so wasi:http is all the sealed linker lacks.
        self.linker.instantiate_pre(component).map_err(refused)?;
        let mut stubbed = self.sealed.clone();
        stub_http_imports(&mut stubbed, component, &self.engine.engine)?;
        Ok(stubbed.instantiate_pre(component)?)
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

/// Defines the component's `wasi:http` imports as functions that trap and resources nobody can
/// create. (wasmtime's `define_unknown_imports_as_traps` would also shadow WASI interfaces the
/// component imports at a newer patch version than the linker's, breaking their types.)
fn stub_http_imports(
    linker: &mut wasmtime::component::Linker<CallState>,
    component: &wasmtime::component::Component,
    engine: &wasmtime::Engine,
) -> anyhow::Result<()> {
    use wasmtime::component::types::ComponentItem;
    use wasmtime::component::ResourceType;
    let ty = component.component_type();
    let instances: Vec<_> = ty
        .imports(engine)
        .filter_map(|(name, import)| match import.ty {
            ComponentItem::ComponentInstance(i) => Some((name, i)),
            _ => None,
        })
        .collect();
    // Resources an interface only re-exports (`use wasi:io/streams.{input-stream}`, or one
    // wasi:http interface using another's) keep their one definition: only resources seen
    // here for the first time are stubbed.
    let mut seen: Vec<ResourceType> = instances
        .iter()
        .filter(|(name, _)| !name.starts_with("wasi:http/"))
        .flat_map(|(_, i)| i.exports(engine))
        .filter_map(|(_, e)| match e.ty {
            ComponentItem::Resource(r) => Some(r),
            _ => None,
        })
        .collect();
    for (name, instance) in instances
        .iter()
        .filter(|(name, _)| name.starts_with("wasi:http/"))
    {
        let mut stub = linker.instance(name)?;
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(_) => {
                    let full = format!("{name}#{item}");
                    stub.func_new(item, move |_, _, _, _| {
                        Err(wasmtime::Error::msg(format!(
                            "unknown import: `{full}` has not been defined"
                        )))
                    })?;
                }
                ComponentItem::Resource(r) if !seen.contains(&r) => {
                    seen.push(r);
                    stub.resource(item, ResourceType::host::<()>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}
