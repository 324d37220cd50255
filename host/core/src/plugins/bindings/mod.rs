//! The one place `bindgen!` runs: host-side bindings of the plugin worlds, one module per
//! released contract version (`wit/v0.1.0` here, `wit/v0.2.0` in [`v0_2`]). Exports are async so
//! calls can be bounded by epoch deadlines and timeouts; host imports (logging, config) are
//! plain synchronous functions of the call state.
//!
//! The host speaks every listed version: the rest of the host uses v0.1.0's tool types (v0.2.0's
//! `types` interface has the same shapes and is bound to the same Rust types) and the engine's
//! own strategy types. The run engine persists strategy events and actions in its own types
//! (`model::engine`), never these: the conversions below are the one place the two meet, so
//! editing the WIT cannot change the format of stored runs.

/// The conversions between the engine's strategy types and a version's bindings that are
/// the same in every version: expanded inside a module where `wit` is that version's
/// `strategy` interface and `m` is `crate::model::engine`. Each is a plain field-by-field
/// copy; exhaustive matches make a WIT change that adds a case fail to compile here rather
/// than at a run.
macro_rules! shared_strategy_conversions {
    () => {
        impl From<&m::ToolCall> for wit::ToolCall {
            fn from(c: &m::ToolCall) -> Self {
                wit::ToolCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments_json: c.arguments_json.clone(),
                }
            }
        }

        impl From<wit::ToolCall> for m::ToolCall {
            fn from(c: wit::ToolCall) -> Self {
                m::ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments_json: c.arguments_json,
                }
            }
        }

        impl From<&m::ToolResult> for wit::ToolResult {
            fn from(r: &m::ToolResult) -> Self {
                wit::ToolResult {
                    tool_call_id: r.tool_call_id.clone(),
                    output: r.output.clone(),
                    is_error: r.is_error,
                }
            }
        }

        impl From<&m::Event> for wit::Event {
            fn from(e: &m::Event) -> Self {
                let results = |rs: &[m::ToolResult]| rs.iter().map(Into::into).collect();
                match e {
                    m::Event::Start => wit::Event::Start,
                    m::Event::LlmCompleted(r) => wit::Event::LlmCompleted(r.into()),
                    m::Event::ToolsCompleted(rs) => wit::Event::ToolsCompleted(results(rs)),
                    m::Event::OutputsSubmitted(rs) => wit::Event::OutputsSubmitted(results(rs)),
                }
            }
        }

        impl From<&m::RunInput> for wit::RunInput {
            fn from(i: &m::RunInput) -> Self {
                wit::RunInput {
                    model: i.model.clone(),
                    instructions: i.instructions.clone(),
                    messages: i.messages.iter().map(Into::into).collect(),
                    tools: i
                        .tools
                        .iter()
                        .map(|t| wit::RunTool {
                            spec: (&t.spec).into(),
                            location: match t.location {
                                m::ToolLocation::Server => wit::ToolLocation::Server,
                                m::ToolLocation::Client => wit::ToolLocation::Client,
                            },
                        })
                        .collect(),
                    tool_choice_json: i.tool_choice_json.clone(),
                    response_format_json: i.response_format_json.clone(),
                    limits: wit::RunLimits {
                        max_prompt_tokens: i.limits.max_prompt_tokens,
                        max_completion_tokens: i.limits.max_completion_tokens,
                        temperature: i.limits.temperature,
                        top_p: i.limits.top_p,
                        parallel_tool_calls: i.limits.parallel_tool_calls,
                    },
                }
            }
        }

        impl From<wit::LlmRequest> for m::LlmRequest {
            fn from(r: wit::LlmRequest) -> Self {
                m::LlmRequest {
                    messages: r.messages.into_iter().map(Into::into).collect(),
                    tools: r.tools.into_iter().map(Into::into).collect(),
                    tool_choice_json: r.tool_choice_json,
                    response_format_json: r.response_format_json,
                    stop: r.stop,
                }
            }
        }

        impl From<wit::PublishMode> for m::PublishMode {
            fn from(mode: wit::PublishMode) -> Self {
                match mode {
                    wit::PublishMode::Message => m::PublishMode::Message,
                    wit::PublishMode::Silent => m::PublishMode::Silent,
                    wit::PublishMode::AfterMarker(s) => m::PublishMode::AfterMarker(s),
                }
            }
        }

        /// Every action but `call-llm`, whose shape differs between versions.
        fn action(a: wit::Action, call_llm: impl FnOnce(CallLlm) -> m::Action) -> m::Action {
            let calls = |cs: Vec<wit::ToolCall>| cs.into_iter().map(Into::into).collect();
            match a {
                wit::Action::CallLlm(call) => call_llm(call),
                wit::Action::CallTools(cs) => m::Action::CallTools(calls(cs)),
                wit::Action::RequireClientAction(cs) => m::Action::RequireClientAction(calls(cs)),
                wit::Action::EmitMessage(text) => m::Action::EmitMessage(text),
                wit::Action::Finish(reason) => m::Action::Finish(match reason {
                    wit::FinishReason::Completed => m::FinishReason::Completed,
                    wit::FinishReason::MaxCompletionTokens => m::FinishReason::MaxCompletionTokens,
                    wit::FinishReason::MaxPromptTokens => m::FinishReason::MaxPromptTokens,
                }),
                wit::Action::Fail(message) => m::Action::Fail(message),
            }
        }

        impl From<wit::StepResult> for m::StepResult {
            fn from(r: wit::StepResult) -> Self {
                m::StepResult {
                    state: r.state,
                    action: r.action.into(),
                }
            }
        }
    };
}

pub mod v0_2;

pub mod tool {
    wasmtime::component::bindgen!({
        world: "tool-plugin",
        path: "../../wit/v0.1.0",
        exports: { default: async },
    });
}

pub mod strategy {
    wasmtime::component::bindgen!({
        world: "strategy-plugin",
        path: "../../wit/v0.1.0",
        exports: { default: async },
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
        path: "../../wit/v0.1.0",
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
        path: "../../wit/v0.1.0",
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

mod convert {
    //! Between the engine's types (`model::engine`) and v0.1.0's strategy bindings.

    use super::strategy::exports::assistants::plugin::strategy as wit;
    use super::tool::assistants::plugin::types as wit_types;
    use crate::model::engine as m;

    shared_strategy_conversions!();

    /// v0.1.0's `call-llm` payload: a tuple.
    type CallLlm = (wit::LlmRequest, wit::PublishMode);

    impl From<wit::Action> for m::Action {
        fn from(a: wit::Action) -> Self {
            action(a, |(request, mode)| {
                m::Action::CallLlm(request.into(), mode.into())
            })
        }
    }

    impl From<wit_types::ToolSpec> for m::ToolSpec {
        fn from(t: wit_types::ToolSpec) -> Self {
            m::ToolSpec {
                name: t.name,
                description: t.description,
                parameters_json: t.parameters_json,
                strict: t.strict,
            }
        }
    }

    impl From<&m::ToolSpec> for wit_types::ToolSpec {
        fn from(t: &m::ToolSpec) -> Self {
            wit_types::ToolSpec {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters_json: t.parameters_json.clone(),
                strict: t.strict,
            }
        }
    }

    impl From<&m::ChatMessage> for wit::ChatMessage {
        fn from(c: &m::ChatMessage) -> Self {
            wit::ChatMessage {
                role: c.role.clone(),
                content: c.content.clone(),
                tool_call_id: c.tool_call_id.clone(),
                tool_calls: c.tool_calls.iter().map(Into::into).collect(),
            }
        }
    }

    impl From<wit::ChatMessage> for m::ChatMessage {
        fn from(c: wit::ChatMessage) -> Self {
            m::ChatMessage {
                role: c.role,
                content: c.content,
                tool_call_id: c.tool_call_id,
                tool_calls: c.tool_calls.into_iter().map(Into::into).collect(),
            }
        }
    }

    impl From<&m::LlmResult> for wit::LlmResult {
        fn from(r: &m::LlmResult) -> Self {
            wit::LlmResult {
                text: r.text.clone(),
                tool_calls: r.tool_calls.iter().map(Into::into).collect(),
                finish_reason: r.finish_reason.clone(),
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
            }
        }
    }
}
