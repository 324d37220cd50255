//! The `native` strategy: OpenAI-style function calling, the default.
//!
//! Each turn asks the model with the run's messages, the tools as chat-completions `tools`, and
//! the transcript of this run so far. Tool calls the model makes are split by who executes
//! them: server-side plugin tools run first (`call-tools`), then the client's functions are
//! requested (`require-client-action`); their outputs go back to the model as `tool` messages.
//! The answer streams to the client as it is generated (`publish-mode::message`).
//!
//! State (JSON): the transcript this run added (assistant tool-call turns and tool results),
//! client calls still to request, and the turn count that bounds tool loops.

wit_bindgen::generate!({ world: "strategy-plugin", path: "../../wit/v0.1.0" });

use exports::assistants::plugin::strategy::{
    Action, ChatMessage, Event, FinishReason, Guest, LlmRequest, PublishMode, RunInput, StepResult,
    ToolCall, ToolLocation, ToolResult,
};
use serde::{Deserialize, Serialize};

/// More model turns than this in one run is a loop, not progress.
const MAX_TURNS: u32 = 64;

#[derive(Default, Serialize, Deserialize)]
struct State {
    transcript: Vec<Msg>,
    pending_client: Vec<Call>,
    turns: u32,
}

#[derive(Clone, Serialize, Deserialize)]
struct Msg {
    role: String,
    content: String,
    tool_call_id: Option<String>,
    tool_calls: Vec<Call>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Call {
    id: String,
    name: String,
    arguments: String,
}

impl From<&Call> for ToolCall {
    fn from(c: &Call) -> ToolCall {
        ToolCall {
            id: c.id.clone(),
            name: c.name.clone(),
            arguments_json: c.arguments.clone(),
        }
    }
}

impl From<ToolCall> for Call {
    fn from(c: ToolCall) -> Call {
        Call {
            id: c.id,
            name: c.name,
            arguments: c.arguments_json,
        }
    }
}

impl From<&Msg> for ChatMessage {
    fn from(m: &Msg) -> ChatMessage {
        ChatMessage {
            role: m.role.clone(),
            content: m.content.clone(),
            tool_call_id: m.tool_call_id.clone(),
            tool_calls: m.tool_calls.iter().map(ToolCall::from).collect(),
        }
    }
}

struct Native;

impl Guest for Native {
    fn step(input: RunInput, state: Vec<u8>, event: Event) -> Result<StepResult, String> {
        let mut st: State = if state.is_empty() {
            State::default()
        } else {
            serde_json::from_slice(&state).map_err(|e| format!("corrupt strategy state: {e}"))?
        };
        let action = next(&input, &mut st, event)?;
        let state = serde_json::to_vec(&st).map_err(|e| e.to_string())?;
        Ok(StepResult { state, action })
    }
}

fn next(input: &RunInput, st: &mut State, event: Event) -> Result<Action, String> {
    match event {
        Event::Start => ask(input, st),
        Event::LlmCompleted(r) => {
            if r.tool_calls.is_empty() {
                return Ok(Action::Finish(if r.finish_reason == "length" {
                    FinishReason::MaxCompletionTokens
                } else {
                    FinishReason::Completed
                }));
            }
            let calls: Vec<Call> = r.tool_calls.into_iter().map(Call::from).collect();
            st.transcript.push(Msg {
                role: "assistant".into(),
                content: r.text,
                tool_call_id: None,
                tool_calls: calls.clone(),
            });
            // A name the run does not offer is run "server-side", where the host answers it
            // with an error the model can read and correct.
            let (client, server): (Vec<Call>, Vec<Call>) = calls.into_iter().partition(|c| {
                input
                    .tools
                    .iter()
                    .any(|t| t.spec.name == c.name && t.location == ToolLocation::Client)
            });
            if server.is_empty() {
                Ok(Action::RequireClientAction(
                    client.iter().map(ToolCall::from).collect(),
                ))
            } else {
                st.pending_client = client;
                Ok(Action::CallTools(
                    server.iter().map(ToolCall::from).collect(),
                ))
            }
        }
        Event::ToolsCompleted(results) => {
            record(st, results);
            if st.pending_client.is_empty() {
                ask(input, st)
            } else {
                let pending = std::mem::take(&mut st.pending_client);
                Ok(Action::RequireClientAction(
                    pending.iter().map(ToolCall::from).collect(),
                ))
            }
        }
        Event::OutputsSubmitted(results) => {
            record(st, results);
            ask(input, st)
        }
    }
}

fn record(st: &mut State, results: Vec<ToolResult>) {
    for r in results {
        st.transcript.push(Msg {
            role: "tool".into(),
            content: r.output,
            tool_call_id: Some(r.tool_call_id),
            tool_calls: vec![],
        });
    }
}

fn ask(input: &RunInput, st: &mut State) -> Result<Action, String> {
    st.turns += 1;
    if st.turns > MAX_TURNS {
        return Err(format!(
            "the model called tools for {MAX_TURNS} turns without answering"
        ));
    }
    let mut messages = Vec::new();
    if !input.instructions.is_empty() {
        messages.push(ChatMessage {
            role: "system".into(),
            content: input.instructions.clone(),
            tool_call_id: None,
            tool_calls: vec![],
        });
    }
    messages.extend(input.messages.iter().cloned());
    messages.extend(st.transcript.iter().map(ChatMessage::from));
    // A forced choice (`required`, a named function) applies to the first turn; after the
    // model has used a tool it must be free to answer, or it would loop.
    let tool_choice = if st.transcript.is_empty() || input.tool_choice_json == "\"none\"" {
        input.tool_choice_json.clone()
    } else {
        "\"auto\"".into()
    };
    Ok(Action::CallLlm((
        LlmRequest {
            messages,
            tools: input.tools.iter().map(|t| t.spec.clone()).collect(),
            tool_choice_json: tool_choice,
            response_format_json: input.response_format_json.clone(),
            stop: vec![],
        },
        PublishMode::Message,
    )))
}

export!(Native);
