//! Strategy plugins: the `strategy` export, a pure step function the host drives through a
//! run (see `wit/strategy.wit`).
//!
//! Implement [`Strategy`]: the SDK keeps your state between steps (JSON, opaque to the host)
//! and exports it with [`export_strategy!`](crate::export_strategy):
//!
//! ```ignore
//! use assistants_plugin::strategy::{Action, Event, FinishReason, RunInput, Strategy};
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Turns(u32);
//!
//! struct Echo;
//!
//! impl Strategy for Echo {
//!     type State = Turns;
//!     fn next(input: &RunInput, turns: &mut Turns, event: Event) -> Result<Action, String> {
//!         turns.0 += 1;
//!         Ok(match event {
//!             Event::Start => Action::EmitMessage(format!("{} messages", input.messages.len())),
//!             _ => Action::Finish(FinishReason::Completed),
//!         })
//!     }
//! }
//!
//! assistants_plugin::export_strategy!(Echo);
//! ```

#[doc(hidden)]
pub mod bindings {
    world_bindings!("strategy-plugin", "export_strategy", "assistants_plugin::strategy::bindings", {
        "assistants:plugin/types@0.2.0": assistants_plugin::tool::bindings::assistants::plugin::types,
        "assistants:plugin/logging@0.2.0": assistants_plugin::tool::bindings::assistants::plugin::logging,
    });
}

pub use crate::tool::ToolSpec;
/// The raw export, for strategies that keep their state themselves; most implement
/// [`Strategy`] instead.
pub use bindings::exports::assistants::plugin::strategy::Guest;
pub use bindings::exports::assistants::plugin::strategy::{
    Action, ChatMessage, Event, FinishReason, LlmCall, LlmRequest, LlmResult, LlmStop, PublishMode,
    Role, RunInput, RunLimits, RunTool, StepResult, ToolCall, ToolLocation, ToolResult,
};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A strategy as a state machine: given the run, its state so far and what just happened, the
/// one thing the host should do next. The SDK restores `State` before each step (`Default`
/// on the first) and saves it after, as JSON; the host persists it with the run, so a run
/// survives restarts. Keep it small: the host refuses more than 1 MiB.
pub trait Strategy {
    type State: Default + Serialize + DeserializeOwned;

    /// The next action. An `Err` ends the run as `failed` with this text as its
    /// `last_error.message`.
    fn next(input: &RunInput, state: &mut Self::State, event: Event) -> Result<Action, String>;
}

impl<S: Strategy> Guest for S {
    fn step(input: RunInput, state: Vec<u8>, event: Event) -> Result<StepResult, String> {
        let mut st: S::State = if state.is_empty() {
            S::State::default()
        } else {
            serde_json::from_slice(&state).map_err(|e| format!("corrupt strategy state: {e}"))?
        };
        let action = S::next(&input, &mut st, event)?;
        let state = serde_json::to_vec(&st).map_err(|e| format!("strategy state: {e}"))?;
        Ok(StepResult { state, action })
    }
}

impl ChatMessage {
    /// A message with text only.
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            tool_call_id: None,
            tool_calls: Vec::new(),
        }
    }

    /// The model's turn that called `calls` (with whatever text came with them).
    pub fn tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage {
            tool_calls: calls,
            ..ChatMessage::new(Role::Assistant, content)
        }
    }

    /// A tool's output, answering the call `result.tool_call_id`.
    pub fn tool_result(result: ToolResult) -> ChatMessage {
        ChatMessage {
            tool_call_id: Some(result.tool_call_id),
            ..ChatMessage::new(Role::Tool, result.output)
        }
    }
}

impl LlmRequest {
    /// A request of `messages` with nothing else: no tools, `tool_choice` and response format
    /// `auto`, no stop sequences.
    pub fn new(messages: Vec<ChatMessage>) -> LlmRequest {
        LlmRequest {
            messages,
            tools: Vec::new(),
            tool_choice_json: "\"auto\"".into(),
            response_format_json: "\"auto\"".into(),
            stop: Vec::new(),
        }
    }
}

impl Action {
    /// Call the LLM with `request`, streaming its text as the answer.
    pub fn call_llm(request: LlmRequest, publish: PublishMode) -> Action {
        Action::CallLlm(LlmCall { request, publish })
    }
}

impl RunInput {
    /// The messages a turn starts from: the run's instructions as a system message (if any),
    /// then the thread's messages.
    pub fn conversation(&self) -> Vec<ChatMessage> {
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        if !self.instructions.is_empty() {
            messages.push(ChatMessage::new(Role::System, self.instructions.clone()));
        }
        messages.extend(self.messages.iter().cloned());
        messages
    }

    /// Whether the tool `name` is answered by the client (`requires_action`) rather than run
    /// by the host. Names the run does not offer count as server-side: the host answers them
    /// with an error the model can read.
    pub fn is_client_tool(&self, name: &str) -> bool {
        self.tools
            .iter()
            .any(|t| t.spec.name == name && t.location == ToolLocation::Client)
    }
}
