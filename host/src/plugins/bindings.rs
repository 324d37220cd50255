//! The one place `bindgen!` runs: host-side bindings of the plugin worlds, generated from
//! `wit/v0.1.0`. Exports are async so calls can be bounded by epoch deadlines and timeouts;
//! host imports (logging, config) are plain synchronous functions of the call state. The
//! strategy world's types derive serde: the run engine persists events and actions as JSON.

pub mod tool {
    wasmtime::component::bindgen!({
        world: "tool-plugin",
        path: "../wit/v0.1.0",
        exports: { default: async },
        // The run engine persists strategy events and actions (which embed these types).
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub mod strategy {
    wasmtime::component::bindgen!({
        world: "strategy-plugin",
        path: "../wit/v0.1.0",
        exports: { default: async },
        // The run engine persists each step's event and action in the run's engine record.
        additional_derives: [serde::Serialize, serde::Deserialize],
        // One set of shared types and one logging host implementation for every world.
        with: {
            "assistants:plugin/types": super::tool::assistants::plugin::types,
            "assistants:plugin/logging": super::tool::assistants::plugin::logging,
        },
    });
}

pub mod retrieval {
    wasmtime::component::bindgen!({
        world: "retrieval-tool-plugin",
        path: "../wit/v0.1.0",
        imports: { "assistants:plugin/vector-store.search": async },
        exports: { default: async },
        with: {
            "assistants:plugin/types": super::tool::assistants::plugin::types,
            "assistants:plugin/logging": super::tool::assistants::plugin::logging,
            "assistants:plugin/config": super::tool::assistants::plugin::config,
        },
    });
}

pub mod parser {
    wasmtime::component::bindgen!({
        world: "parser-plugin",
        path: "../wit/v0.1.0",
        exports: { default: async },
        with: {
            "assistants:plugin/logging": super::tool::assistants::plugin::logging,
        },
    });
}

pub use parser::exports::assistants::plugin::parser::ParseError;
pub use parser::{ParserPlugin, ParserPluginPre};
pub use retrieval::assistants::plugin::vector_store::{SearchHit, SearchRequest};
pub use retrieval::{RetrievalToolPlugin, RetrievalToolPluginPre};
pub use strategy::exports::assistants::plugin::strategy::{
    Action, ChatMessage, Event, FinishReason, LlmRequest, LlmResult, PublishMode, RunInput,
    RunLimits, RunTool, StepResult, ToolCall, ToolLocation, ToolResult,
};
pub use strategy::{StrategyPlugin, StrategyPluginPre};
pub use tool::assistants::plugin::types::{
    Annotation, CallContext, FileCitation, ToolError, ToolOutput, ToolSpec, UrlCitation,
};
pub use tool::{ToolPlugin, ToolPluginPre};
