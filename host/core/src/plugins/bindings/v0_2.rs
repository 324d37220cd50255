//! Bindings of contract v0.2.0 (`wit/v0.2.0`) and its conversions to what the host speaks.
//!
//! What changed from v0.1.0 (see `wit/README.md`): the worlds declare the WASI and `wasi:http`
//! imports the host links; `call-llm` carries a record instead of a tuple; a chat message's role
//! and an LLM's stop reason are enums instead of strings. The `types` interface kept its shapes,
//! so it is bound to v0.1.0's Rust types (wasmtime checks component types by shape, not name)
//! and tool calls need no conversion at all. The imports (`logging`, `config`, `vector-store`)
//! are bound again because a linker serves each under its versioned name; their host sides
//! delegate to v0.1.0's (`logging.rs`, `config.rs`, `retrieval.rs`).

pub mod tool {
    wasmtime::component::bindgen!({
        world: "tool-plugin",
        path: "../../wit/v0.2.0",
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "assistants:plugin/types": super::super::tool::assistants::plugin::types,
        },
    });
}

pub mod strategy {
    wasmtime::component::bindgen!({
        world: "strategy-plugin",
        path: "../../wit/v0.2.0",
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
            "assistants:plugin/types": super::super::tool::assistants::plugin::types,
            "assistants:plugin/logging": super::tool::assistants::plugin::logging,
        },
    });
}

pub mod retrieval {
    wasmtime::component::bindgen!({
        world: "retrieval-tool-plugin",
        path: "../../wit/v0.2.0",
        imports: { "assistants:plugin/vector-store.search": async },
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "assistants:plugin/types": super::super::tool::assistants::plugin::types,
            "assistants:plugin/logging": super::tool::assistants::plugin::logging,
            "assistants:plugin/config": super::tool::assistants::plugin::config,
        },
    });
}

pub mod parser {
    wasmtime::component::bindgen!({
        world: "parser-plugin",
        path: "../../wit/v0.2.0",
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
            "assistants:plugin/logging": super::tool::assistants::plugin::logging,
        },
    });
}

pub use parser::{ParserPlugin, ParserPluginPre};
pub(crate) use retrieval::assistants::plugin::vector_store;
pub use retrieval::{RetrievalToolPlugin, RetrievalToolPluginPre};
pub use strategy::{StrategyPlugin, StrategyPluginPre};
pub use tool::assistants::plugin::{config, logging};
pub use tool::{ToolPlugin, ToolPluginPre};

use parser::exports::assistants::plugin::parser as wit_parser;

impl From<wit_parser::ParseError> for super::ParseError {
    fn from(e: wit_parser::ParseError) -> Self {
        match e {
            wit_parser::ParseError::Invalid(m) => super::ParseError::Invalid(m),
            wit_parser::ParseError::Unsupported(m) => super::ParseError::Unsupported(m),
        }
    }
}

impl From<vector_store::SearchRequest> for super::SearchRequest {
    fn from(r: vector_store::SearchRequest) -> Self {
        super::SearchRequest {
            vector_store_ids: r.vector_store_ids,
            query: r.query,
            max_results: r.max_results,
            score_threshold: r.score_threshold,
            filters_json: r.filters_json,
        }
    }
}

impl From<super::SearchHit> for vector_store::SearchHit {
    fn from(h: super::SearchHit) -> Self {
        vector_store::SearchHit {
            file_id: h.file_id,
            filename: h.filename,
            score: h.score,
            text: h.text,
            attributes_json: h.attributes_json,
        }
    }
}

impl From<logging::Level> for super::tool::assistants::plugin::logging::Level {
    fn from(level: logging::Level) -> Self {
        use super::tool::assistants::plugin::logging::Level as V1;
        match level {
            logging::Level::Trace => V1::Trace,
            logging::Level::Debug => V1::Debug,
            logging::Level::Info => V1::Info,
            logging::Level::Warn => V1::Warn,
            logging::Level::Error => V1::Error,
        }
    }
}

mod convert {
    //! Between the engine's types (`model::engine`) and v0.2.0's strategy bindings.

    use super::strategy::exports::assistants::plugin::strategy as wit;
    use crate::model::engine as m;

    shared_strategy_conversions!();

    /// v0.2.0's `call-llm` payload: a record.
    type CallLlm = wit::LlmCall;

    impl From<wit::Action> for m::Action {
        fn from(a: wit::Action) -> Self {
            action(a, |call| {
                m::Action::CallLlm(call.request.into(), call.publish.into())
            })
        }
    }

    /// The engine's roles are the chat-completions ones; `developer` (Responses input) is
    /// the system role, and anything else is read as the user's.
    fn role(role: &str) -> wit::Role {
        match role {
            "system" | "developer" => wit::Role::System,
            "assistant" => wit::Role::Assistant,
            "tool" => wit::Role::Tool,
            _ => wit::Role::User,
        }
    }

    impl From<&m::ChatMessage> for wit::ChatMessage {
        fn from(c: &m::ChatMessage) -> Self {
            wit::ChatMessage {
                role: role(&c.role),
                content: c.content.clone(),
                tool_call_id: c.tool_call_id.clone(),
                tool_calls: c.tool_calls.iter().map(Into::into).collect(),
            }
        }
    }

    impl From<wit::ChatMessage> for m::ChatMessage {
        fn from(c: wit::ChatMessage) -> Self {
            let role = match c.role {
                wit::Role::System => "system",
                wit::Role::User => "user",
                wit::Role::Assistant => "assistant",
                wit::Role::Tool => "tool",
            };
            m::ChatMessage {
                role: role.into(),
                content: c.content,
                tool_call_id: c.tool_call_id,
                tool_calls: c.tool_calls.into_iter().map(Into::into).collect(),
            }
        }
    }

    impl From<&m::LlmResult> for wit::LlmResult {
        fn from(r: &m::LlmResult) -> Self {
            // Chat completions' finish reasons; the legacy `function_call` is a tool call.
            let stop = match r.finish_reason.as_str() {
                "length" => wit::LlmStop::Length,
                "tool_calls" | "function_call" => wit::LlmStop::ToolCalls,
                "content_filter" => wit::LlmStop::ContentFilter,
                _ => wit::LlmStop::Stop,
            };
            wit::LlmResult {
                text: r.text.clone(),
                tool_calls: r.tool_calls.iter().map(Into::into).collect(),
                stop,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn roles_and_stop_reasons_map_both_ways() {
            for r in ["system", "user", "assistant", "tool"] {
                let msg = m::ChatMessage {
                    role: r.into(),
                    content: "x".into(),
                    tool_call_id: None,
                    tool_calls: vec![],
                };
                let back: m::ChatMessage = wit::ChatMessage::from(&msg).into();
                assert_eq!(back, msg);
            }
            assert_eq!(role("developer"), wit::Role::System);
            let result = |reason: &str| m::LlmResult {
                text: String::new(),
                tool_calls: vec![],
                finish_reason: reason.into(),
                prompt_tokens: 1,
                completion_tokens: 2,
            };
            let stop = |reason| wit::LlmResult::from(&result(reason)).stop;
            assert_eq!(stop("stop"), wit::LlmStop::Stop);
            assert_eq!(stop("length"), wit::LlmStop::Length);
            assert_eq!(stop("tool_calls"), wit::LlmStop::ToolCalls);
            assert_eq!(stop("content_filter"), wit::LlmStop::ContentFilter);
        }

        #[test]
        fn call_llm_carries_request_and_publish_mode() {
            let call = wit::Action::CallLlm(wit::LlmCall {
                request: wit::LlmRequest {
                    messages: vec![],
                    tools: vec![],
                    tool_choice_json: "\"auto\"".into(),
                    response_format_json: "\"auto\"".into(),
                    stop: vec!["Observation:".into()],
                },
                publish: wit::PublishMode::AfterMarker("Final Answer:".into()),
            });
            match m::Action::from(call) {
                m::Action::CallLlm(request, m::PublishMode::AfterMarker(marker)) => {
                    assert_eq!(request.stop, ["Observation:"]);
                    assert_eq!(marker, "Final Answer:");
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
    }
}
