//! The smallest useful strategy: on `start` it asks the LLM with the instructions and the
//! thread's messages (streaming the answer as the message); on `llm-completed` it finishes.
//! Its state counts steps, to show state round-trips through the host.

wit_bindgen::generate!({ world: "strategy-plugin", path: "../../../wit/v0.1.0" });

use exports::assistants::plugin::strategy::{
    Action, ChatMessage, Event, FinishReason, Guest, LlmRequest, PublishMode, RunInput, StepResult,
};

struct Echo;

impl Guest for Echo {
    fn step(input: RunInput, state: Vec<u8>, event: Event) -> Result<StepResult, String> {
        let steps = state.first().copied().unwrap_or(0) + 1;
        let action = match event {
            Event::Start => {
                let mut messages = vec![ChatMessage {
                    role: "system".into(),
                    content: input.instructions.clone(),
                    tool_call_id: None,
                    tool_calls: vec![],
                }];
                messages.extend(input.messages);
                Action::CallLlm((
                    LlmRequest {
                        messages,
                        tools: vec![],
                        tool_choice_json: input.tool_choice_json,
                        response_format_json: input.response_format_json,
                        stop: vec![],
                    },
                    PublishMode::Message,
                ))
            }
            Event::LlmCompleted(result) if result.finish_reason == "length" => {
                Action::Finish(FinishReason::MaxCompletionTokens)
            }
            Event::LlmCompleted(_) => Action::Finish(FinishReason::Completed),
            _ => return Err("echo-strategy only handles start and llm-completed".into()),
        };
        Ok(StepResult {
            state: vec![steps],
            action,
        })
    }
}

export!(Echo);
