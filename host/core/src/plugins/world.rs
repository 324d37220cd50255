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
    /// The most slots one plugin, or one project, may hold at once ([`World::share`]).
    share: usize,
    /// Each project's share of the slots, created on its first call.
    projects: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// The permits one call holds: its plugin's share, its project's share, a pool slot.
pub(super) struct Slot {
    _plugin: tokio::sync::OwnedSemaphorePermit,
    _project: Option<tokio::sync::OwnedSemaphorePermit>,
    _pool: tokio::sync::OwnedSemaphorePermit,
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
            share: (pool.instances as usize / 4).max(1),
            projects: Default::default(),
        })
    }

    /// Pool slots held by calls right now.
    pub(super) fn in_use(&self, pool: u32) -> usize {
        (pool as usize).saturating_sub(self.slots.available_permits())
    }

    /// The most slots one plugin or one project may hold: a quarter of the pool, so a plugin
    /// whose calls hang, or a project flooding calls, leaves most of it to everyone else.
    pub(super) fn share(&self) -> usize {
        self.share
    }

    /// Waits until `deadline` for the project's share (calls inside a project's run), the
    /// plugin's share and a pool slot, in that order; waiters are served first come, first
    /// served at each step.
    pub(super) async fn slot_for(
        &self,
        plugin: &Plugin,
        project: Option<&str>,
        deadline: Duration,
    ) -> Result<Slot, String> {
        let project_share = project.map(|p| {
            let mut shares = self.projects.lock().expect("project shares poisoned");
            shares
                .entry(p.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.share)))
                .clone()
        });
        // The project's share first: a flooding project's surplus calls then wait in their
        // own project's queue, not in the plugin's queue ahead of other projects' calls.
        let acquire = async {
            let project_permit = match project_share {
                Some(s) => Some(s.acquire_owned().await),
                None => None,
            };
            let plugin_permit = plugin.slots.clone().acquire_owned().await;
            let pool = self.slots.clone().acquire_owned().await;
            (plugin_permit, project_permit, pool)
        };
        match tokio::time::timeout(deadline, acquire).await {
            Ok((Ok(plugin), project, Ok(pool))) => Ok(Slot {
                _plugin: plugin,
                _project: project.transpose().map_err(|e| e.to_string())?,
                _pool: pool,
            }),
            _ => Err(format!(
                "the server is busy: every instance slot this call may use (its plugin's and \
                 project's share of {} of the pool) is in use; try again",
                self.share
            )),
        }
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
