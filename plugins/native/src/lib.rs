//! The `native` strategy: OpenAI-style function calling, the default.
//!
//! Each turn asks the model with the run's messages, the tools as chat-completions `tools`, and
//! the transcript of this run so far. Tool calls the model makes are split by who executes
//! them: server-side plugin tools run first (`call-tools`), then the client's functions are
//! requested (`require-client-action`); their outputs go back to the model as `tool` messages.
//! The answer streams to the client as it is generated (`publish-mode::message`).
//!
//! State (JSON, kept by the SDK between steps): the transcript this run added (assistant tool-call turns and tool results),
//! client calls still to request, and the turn count that bounds tool loops.

use assistants_plugin::strategy::{
    Action, ChatMessage, Event, FinishReason, LlmRequest, LlmStop, PublishMode, RunInput, Strategy,
    ToolCall, ToolResult,
};
use serde::{Deserialize, Serialize};

/// More model turns than this in one run is a loop, not progress.
const MAX_TURNS: u32 = 64;

#[derive(Default, Serialize, Deserialize)]
struct State {
    transcript: Vec<ChatMessage>,
    pending_client: Vec<ToolCall>,
    turns: u32,
}

struct Native;

impl Strategy for Native {
    type State = State;

    fn next(input: &RunInput, st: &mut State, event: Event) -> Result<Action, String> {
        next(input, st, event)
    }
}

fn next(input: &RunInput, st: &mut State, event: Event) -> Result<Action, String> {
    match event {
        Event::Start => ask(input, st),
        Event::LlmCompleted(r) => {
            if r.tool_calls.is_empty() {
                return Ok(Action::Finish(if r.stop == LlmStop::Length {
                    FinishReason::MaxCompletionTokens
                } else {
                    FinishReason::Completed
                }));
            }
            st.transcript
                .push(ChatMessage::tool_calls(r.text, r.tool_calls.clone()));
            let (client, server): (Vec<ToolCall>, Vec<ToolCall>) = r
                .tool_calls
                .into_iter()
                .partition(|c| input.is_client_tool(&c.name));
            if server.is_empty() {
                Ok(Action::RequireClientAction(client))
            } else {
                st.pending_client = client;
                Ok(Action::CallTools(server))
            }
        }
        Event::ToolsCompleted(results) => {
            record(st, results);
            if st.pending_client.is_empty() {
                ask(input, st)
            } else {
                Ok(Action::RequireClientAction(std::mem::take(
                    &mut st.pending_client,
                )))
            }
        }
        Event::OutputsSubmitted(results) => {
            record(st, results);
            ask(input, st)
        }
    }
}

fn record(st: &mut State, results: Vec<ToolResult>) {
    st.transcript
        .extend(results.into_iter().map(ChatMessage::tool_result));
}

fn ask(input: &RunInput, st: &mut State) -> Result<Action, String> {
    st.turns += 1;
    if st.turns > MAX_TURNS {
        return Err(format!(
            "the model called tools for {MAX_TURNS} turns without answering"
        ));
    }
    let mut messages = input.conversation();
    messages.extend(st.transcript.iter().cloned());
    // A forced choice (`required`, a named function) applies to the first turn; after the
    // model has used a tool it must be free to answer, or it would loop.
    let tool_choice = if st.transcript.is_empty() || input.tool_choice_json == "\"none\"" {
        input.tool_choice_json.clone()
    } else {
        "\"auto\"".into()
    };
    Ok(Action::call_llm(
        LlmRequest {
            messages,
            tools: input.tools.iter().map(|t| t.spec.clone()).collect(),
            tool_choice_json: tool_choice,
            response_format_json: input.response_format_json.clone(),
            stop: vec![],
        },
        PublishMode::Message,
    ))
}

assistants_plugin::export_strategy!(Native);
