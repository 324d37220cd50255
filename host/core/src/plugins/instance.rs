//! A pre-instantiated component: one world at one contract version. The calls of each world
//! (describe and invoke, step, formats and parse) are the same whatever version a component was
//! built against; this is the one place that tells the versions apart, converting to what the
//! host speaks (v0.1.0's tool types, the engine's strategy types).

use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::bindings::{self, v0_2, CallContext, ParseError, ToolError, ToolOutput, ToolSpec};
use super::manifest::{Kind, WitVersion};
use super::runtime::CallState;
use crate::model::engine as m;

/// Cheap to clone: a call takes its own copy to the guest threads.
#[derive(Clone)]
pub(super) enum Instance {
    Tool(bindings::ToolPluginPre<CallState>),
    ToolV2(v0_2::ToolPluginPre<CallState>),
    Retrieval(bindings::RetrievalToolPluginPre<CallState>),
    RetrievalV2(v0_2::RetrievalToolPluginPre<CallState>),
    Strategy(bindings::StrategyPluginPre<CallState>),
    StrategyV2(v0_2::StrategyPluginPre<CallState>),
    Parser(bindings::ParserPluginPre<CallState>),
    ParserV2(v0_2::ParserPluginPre<CallState>),
}

/// Instantiates `$pre` into `$store` and calls `$call` on the export `$export`.
macro_rules! call {
    ($pre:expr, $store:expr, $export:ident . $call:ident ( $($arg:expr),* )) => {
        $pre.instantiate_async(&mut *$store)
            .await?
            .$export()
            .$call(&mut *$store, $($arg),*)
            .await
    };
}

impl Instance {
    /// Checks that `pre`'s component exports `kind`'s world at `version`.
    pub(super) fn new(
        kind: Kind,
        version: WitVersion,
        pre: InstancePre<CallState>,
    ) -> wasmtime::Result<Instance> {
        use WitVersion::*;
        Ok(match (kind, version) {
            (Kind::Tool, V0_1) => Instance::Tool(bindings::ToolPluginPre::new(pre)?),
            (Kind::Tool, V0_2) => Instance::ToolV2(v0_2::ToolPluginPre::new(pre)?),
            (Kind::RetrievalTool, V0_1) => {
                Instance::Retrieval(bindings::RetrievalToolPluginPre::new(pre)?)
            }
            (Kind::RetrievalTool, V0_2) => {
                Instance::RetrievalV2(v0_2::RetrievalToolPluginPre::new(pre)?)
            }
            (Kind::Strategy, V0_1) => Instance::Strategy(bindings::StrategyPluginPre::new(pre)?),
            (Kind::Strategy, V0_2) => Instance::StrategyV2(v0_2::StrategyPluginPre::new(pre)?),
            (Kind::Parser, V0_1) => Instance::Parser(bindings::ParserPluginPre::new(pre)?),
            (Kind::Parser, V0_2) => Instance::ParserV2(v0_2::ParserPluginPre::new(pre)?),
        })
    }

    /// Whether calls may search vector stores (the retrieval tool world).
    pub(super) fn searches(&self) -> bool {
        matches!(self, Instance::Retrieval(_) | Instance::RetrievalV2(_))
    }

    /// Instantiates a tool component (plain or retrieval) into `store` and calls `describe`.
    pub(super) async fn describe(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Vec<ToolSpec>> {
        match self {
            Instance::Tool(pre) => call!(pre, store, assistants_plugin_tool.call_describe()),
            Instance::ToolV2(pre) => call!(pre, store, assistants_plugin_tool.call_describe()),
            Instance::Retrieval(pre) => call!(pre, store, assistants_plugin_tool.call_describe()),
            Instance::RetrievalV2(pre) => {
                call!(pre, store, assistants_plugin_tool.call_describe())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Instantiates a tool component into `store` and calls `invoke`.
    pub(super) async fn invoke(
        &self,
        store: &mut Store<CallState>,
        ctx: &CallContext,
        tool: &str,
        arguments: &str,
    ) -> wasmtime::Result<Result<ToolOutput, ToolError>> {
        match self {
            Instance::Tool(pre) => call!(
                pre,
                store,
                assistants_plugin_tool.call_invoke(ctx, tool, arguments)
            ),
            Instance::ToolV2(pre) => call!(
                pre,
                store,
                assistants_plugin_tool.call_invoke(ctx, tool, arguments)
            ),
            Instance::Retrieval(pre) => call!(
                pre,
                store,
                assistants_plugin_tool.call_invoke(ctx, tool, arguments)
            ),
            Instance::RetrievalV2(pre) => call!(
                pre,
                store,
                assistants_plugin_tool.call_invoke(ctx, tool, arguments)
            ),
            _ => Ok(Err(ToolError::UnknownTool("not a tool plugin".into()))),
        }
    }

    /// Instantiates a strategy component into `store` and calls `step`, in the engine's types.
    pub(super) async fn step(
        &self,
        store: &mut Store<CallState>,
        input: &m::RunInput,
        state: &[u8],
        event: &m::Event,
    ) -> wasmtime::Result<Result<m::StepResult, String>> {
        match self {
            Instance::Strategy(pre) => {
                let (input, event) = (input.into(), event.into());
                let step = call!(
                    pre,
                    store,
                    assistants_plugin_strategy.call_step(&input, state, &event)
                )?;
                Ok(step.map(Into::into))
            }
            Instance::StrategyV2(pre) => {
                let (input, event) = (input.into(), event.into());
                let step = call!(
                    pre,
                    store,
                    assistants_plugin_strategy.call_step(&input, state, &event)
                )?;
                Ok(step.map(Into::into))
            }
            _ => Ok(Err("not a strategy plugin".into())),
        }
    }

    /// Instantiates a parser component into `store` and calls `formats`.
    pub(super) async fn formats(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Vec<String>> {
        match self {
            Instance::Parser(pre) => call!(pre, store, assistants_plugin_parser.call_formats()),
            Instance::ParserV2(pre) => call!(pre, store, assistants_plugin_parser.call_formats()),
            _ => Ok(Vec::new()),
        }
    }

    /// Instantiates a parser component into `store` and calls `parse`.
    pub(super) async fn parse(
        &self,
        store: &mut Store<CallState>,
        filename: &str,
        content: &[u8],
    ) -> wasmtime::Result<Result<String, ParseError>> {
        match self {
            Instance::Parser(pre) => call!(
                pre,
                store,
                assistants_plugin_parser.call_parse(filename, content)
            ),
            Instance::ParserV2(pre) => Ok(call!(
                pre,
                store,
                assistants_plugin_parser.call_parse(filename, content)
            )?
            .map_err(Into::into)),
            _ => Ok(Err(ParseError::Unsupported("not a parser plugin".into()))),
        }
    }
}
