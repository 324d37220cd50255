//! The tool worlds (plain and retrieval): one tool call in a fresh sandbox, with the searches
//! a retrieval tool made recorded for the run.

use super::*;

impl PluginHost {
    /// Runs one tool call in a fresh sandbox. Every failure — bad arguments, a trap, the time
    /// or memory limit, an oversize result — comes back as a `ToolError` for the model; the
    /// host is never affected.
    pub async fn invoke(
        &self,
        plugin: &Plugin,
        ctx: CallContext,
        tool: &str,
        arguments: &str,
    ) -> Result<ToolOutput, ToolError> {
        self.invoke_recorded(plugin, None, ctx, tool, arguments)
            .await
            .0
    }

    /// [`PluginHost::invoke`] on behalf of `project` (whose calls share a quarter of the pool),
    /// also returning every vector-store hit the call's searches got (retrieval tools; empty
    /// for others), as the run engine records them.
    pub async fn invoke_recorded(
        &self,
        plugin: &Plugin,
        project: Option<&str>,
        ctx: CallContext,
        tool: &str,
        arguments: &str,
    ) -> (Result<ToolOutput, ToolError>, Vec<bindings::SearchHit>) {
        self.invoke_with(plugin, project, ctx, tool, arguments, None)
            .await
    }

    /// [`PluginHost::invoke_recorded`] whose requests to one host also carry `headers` (a
    /// caller's secrets for that host: never seen by the guest, masked in responses).
    pub async fn invoke_with(
        &self,
        plugin: &Plugin,
        project: Option<&str>,
        ctx: CallContext,
        tool: &str,
        arguments: &str,
        headers: Option<&egress::CallHeaders>,
    ) -> (Result<ToolOutput, ToolError>, Vec<bindings::SearchHit>) {
        let limits = plugin.limits;
        if arguments.len() as u64 > limits.max_args_kib * 1024 {
            return (
                Err(ToolError::InvalidArguments(format!(
                    "the arguments are {} bytes; this tool accepts at most {} KiB",
                    arguments.len(),
                    limits.max_args_kib
                ))),
                vec![],
            );
        }
        if !plugin.is_tool() {
            return (
                Err(ToolError::UnknownTool(format!(
                    "{} is not a tool plugin",
                    plugin.manifest.id
                ))),
                vec![],
            );
        }
        let started = Instant::now();
        let world = self.world(plugin.manifest.kind);
        let deadline = Duration::from_millis(limits.timeout_ms);
        let slot = match world.slot_for(plugin, project, deadline).await {
            Ok(slot) => slot,
            Err(e) => return (Err(ToolError::Failed(e)), vec![]),
        };
        let mut store = match headers {
            Some(h) => self.store_with(plugin, Arc::new(plugin.http.with_call_headers(h))),
            None => self.store(plugin),
        };
        if plugin.pre.searches() {
            store.data_mut().retrieval.granted =
                self.search.clone().map(|search| retrieval::CallRetrieval {
                    search,
                    vector_store_ids: ctx.vector_store_ids.clone(),
                    hits: Vec::new(),
                    searches: 0,
                });
        }
        // The epoch deadline stops guest code; the timeout also bounds time spent in host
        // calls (a guest sleeping in WASI), with a small margin so the trap usually wins.
        let timeout = Duration::from_millis(limits.timeout_ms) + runtime::TICK * 5;
        let (pre, name, args) = (plugin.pre.clone(), tool.to_string(), arguments.to_string());
        let (mut store, outcome) = self
            .guests
            .run(async move {
                // The slot goes with the store: both are free only once the call has ended.
                let _slot = slot;
                let call = pre.invoke(&mut store, &ctx, &name, &args);
                let outcome = tokio::time::timeout(timeout, call).await;
                (store, outcome)
            })
            .await;
        store.data().flush_stdio();
        let elapsed = started.elapsed();
        let memory_hit = store.data().limits.memory_stop;
        let mut label = call_outcome(&outcome, memory_hit);
        let result = match outcome {
            Err(_) => Err(ToolError::Failed(format!(
                "the tool did not finish within its time limit of {} ms",
                limits.timeout_ms
            ))),
            Ok(Err(trap)) => Err(ToolError::Failed(describe_trap(&trap, &limits, memory_hit))),
            Ok(Ok(r)) => r,
        };
        let result = result.and_then(|out| {
            let size = out.text.len() + out.annotations.iter().map(annotation_size).sum::<usize>();
            if size as u64 > limits.max_result_kib * 1024 {
                label = "too_large";
                return Err(ToolError::Failed(format!(
                    "the tool's result is {size} bytes; the limit is {} KiB",
                    limits.max_result_kib
                )));
            }
            Ok(out)
        });
        // An error is text the guest chose, like a result: bounded by the same limit before
        // it is logged, stored in a step or sent to the model.
        let result = result.map_err(|e| cap_error(e, limits.max_result_kib as usize * 1024));
        crate::obs::metrics::metrics().plugin_call(&plugin.id, "tool", label);
        match &result {
            Ok(_) => tracing::debug!(plugin = %plugin.id, tool, ?elapsed, "tool call finished"),
            Err(e) => {
                let shown = cap_text(error_text(e), logging::MAX_LOG_BYTES);
                tracing::info!(plugin = %plugin.id, tool, ?elapsed, error = %shown.escape_debug(), "tool call failed")
            }
        }
        let hits = store
            .data_mut()
            .retrieval
            .granted
            .take()
            .map(|r| r.hits)
            .unwrap_or_default();
        (result, hits)
    }
}
