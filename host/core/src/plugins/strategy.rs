//! The strategy world: one step of a strategy component in a fresh sandbox, converting the
//! engine's types to the bindings and back (`bindings`).

use super::*;

impl PluginHost {
    /// Runs one step of a strategy in a fresh sandbox. Errors (the strategy's own, a trap, a
    /// limit, an oversize state) come back as text for the run's `last_error`.
    pub async fn step(
        &self,
        plugin: &Plugin,
        input: &crate::model::engine::RunInput,
        state: &[u8],
        event: &crate::model::engine::Event,
    ) -> Result<crate::model::engine::StepResult, String> {
        if plugin.manifest.kind != Kind::Strategy {
            return Err(format!("{} is not a strategy plugin", plugin.manifest.id));
        }
        let limits = plugin.limits;
        let slot = self
            .world(plugin.manifest.kind)
            .slot_for(
                plugin,
                None,
                Duration::from_millis(plugin.limits.timeout_ms),
            )
            .await?;
        let mut store = self.store(plugin);
        let (pre, input, state, event) = (
            plugin.pre.clone(),
            input.clone(),
            state.to_vec(),
            event.clone(),
        );
        let timeout = Duration::from_millis(limits.timeout_ms) + runtime::TICK * 5;
        let (store, outcome) = self
            .guests
            .run(async move {
                // The slot goes with the store: both are free only once the call has ended.
                let _slot = slot;
                let call = pre.step(&mut store, &input, &state, &event);
                let outcome = tokio::time::timeout(timeout, call).await;
                (store, outcome)
            })
            .await;
        store.data().flush_stdio();
        let label = call_outcome(&outcome, store.data().limits.memory_stop);
        crate::obs::metrics::metrics().plugin_call(&plugin.id, "strategy", label);
        let result = match outcome {
            Err(_) => Err(format!(
                "the strategy did not finish a step within {} ms",
                limits.timeout_ms
            )),
            Ok(Err(trap)) => Err(
                describe_trap(&trap, &limits, store.data().limits.memory_stop)
                    .replace("the tool", "the strategy"),
            ),
            // The strategy's own error text is bounded: it becomes `last_error.message`.
            Ok(Ok(r)) => r.map_err(|e| cap_text(e, MAX_STRATEGY_ERROR)),
        }?;
        if result.state.len() > MAX_STRATEGY_STATE {
            return Err(format!(
                "the strategy returned {} bytes of state; the limit is {MAX_STRATEGY_STATE}",
                result.state.len()
            ));
        }
        Ok(result)
    }
}
