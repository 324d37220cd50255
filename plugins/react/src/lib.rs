//! The `react` strategy: the ReAct text protocol, for models served without native tool calling.
//!
//! The model is told the tools and the format in the system prompt and answers in text:
//!
//! ```text
//! Thought: what to do next
//! Action: tool_name
//! Action Input: {"json": "arguments"}
//! ```
//!
//! The host stops generation at `Observation:` (a stop sequence), the strategy parses the action
//! and asks the host to run it (server-side plugin tools) or the client to answer it (function
//! tools, `requires_action`); the result comes back as `Observation: …` on the next turn. When
//! the model writes `Final Answer: …`, only that part streams to the client as the message
//! (`publish-mode::after-marker`). Text that follows neither form is fed back to the model as
//! a format error, twice; a third time the text is taken as the answer, since a model that
//! cannot follow the protocol is better heard than failed.
//!
//! State (JSON, kept by the SDK between steps): the scratchpad of this run (thoughts, actions, observations), the turn and
//! format-error counts, and whether an answer was emitted.

use assistants_plugin::strategy::{
    Action, ChatMessage, Event, FinishReason, LlmRequest, LlmStop, PublishMode, Role, RunInput,
    Strategy, ToolCall, ToolResult,
};
use serde::{Deserialize, Serialize};

const FINAL: &str = "Final Answer:";
const OBSERVATION: &str = "Observation:";
const MAX_TURNS: u32 = 32;
const MAX_FORMAT_ERRORS: u32 = 2;

#[derive(Default, Serialize, Deserialize)]
struct State {
    scratchpad: String,
    turns: u32,
    format_errors: u32,
    emitted: bool,
}

/// What the model's text says to do.
#[derive(Debug, PartialEq)]
enum Parsed {
    Final(String),
    Act { tool: String, input: String },
    Invalid(String),
}

fn parse(text: &str) -> Parsed {
    if let Some(at) = text.find(FINAL) {
        return Parsed::Final(text[at + FINAL.len()..].trim().to_string());
    }
    let field = |name: &str| -> Option<&str> {
        let at = text.find(name)?;
        let rest = &text[at + name.len()..];
        Some(rest)
    };
    let Some(after_action) = field("Action:") else {
        return Parsed::Invalid(format!(
            "Invalid format: write either 'Action:' and 'Action Input:' lines, or '{FINAL}' followed by your answer."
        ));
    };
    let tool = after_action.lines().next().unwrap_or("").trim();
    let tool = tool.trim_matches(|c| c == '`' || c == '"' || c == '\'');
    if tool.is_empty() {
        return Parsed::Invalid("Invalid format: 'Action:' must name a tool.".into());
    }
    let Some(after_input) = field("Action Input:") else {
        return Parsed::Invalid(
            "Invalid format: 'Action:' must be followed by an 'Action Input:' line with JSON arguments."
                .into(),
        );
    };
    let raw = after_input
        .split(OBSERVATION)
        .next()
        .unwrap_or("")
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    let input = if raw.is_empty() { "{}" } else { raw };
    match serde_json::from_str::<serde_json::Value>(input) {
        Ok(v) if v.is_object() => Parsed::Act {
            tool: tool.to_string(),
            input: v.to_string(),
        },
        _ => Parsed::Invalid(format!(
            "Invalid format: the Action Input must be a JSON object, got: {input}"
        )),
    }
}

struct React;

impl Strategy for React {
    type State = State;

    fn next(input: &RunInput, st: &mut State, event: Event) -> Result<Action, String> {
        next(input, st, event)
    }
}

fn next(input: &RunInput, st: &mut State, event: Event) -> Result<Action, String> {
    match event {
        Event::Start => ask(input, st),
        Event::LlmCompleted(r) => {
            let finish = if r.stop == LlmStop::Length {
                FinishReason::MaxCompletionTokens
            } else {
                FinishReason::Completed
            };
            if st.emitted {
                return Ok(Action::Finish(finish));
            }
            match parse(&r.text) {
                // Streamed already, by the host, as the text after the marker.
                Parsed::Final(_) => Ok(Action::Finish(finish)),
                Parsed::Act { tool, input: args } => {
                    st.scratchpad.push_str(r.text.trim_end());
                    st.scratchpad.push('\n');
                    let call = ToolCall {
                        id: format!("call_react{:03}x{:012}", st.turns, st.scratchpad.len()),
                        name: tool.clone(),
                        arguments_json: args,
                    };
                    Ok(if input.is_client_tool(&tool) {
                        Action::RequireClientAction(vec![call])
                    } else {
                        Action::CallTools(vec![call])
                    })
                }
                Parsed::Invalid(_) if finish == FinishReason::MaxCompletionTokens => {
                    Ok(Action::Finish(finish))
                }
                Parsed::Invalid(why) if st.format_errors < MAX_FORMAT_ERRORS => {
                    st.format_errors += 1;
                    st.scratchpad.push_str(r.text.trim_end());
                    st.scratchpad.push_str(&format!("\n{OBSERVATION} {why}\n"));
                    ask(input, st)
                }
                Parsed::Invalid(_) => {
                    st.emitted = true;
                    Ok(Action::EmitMessage(r.text.trim().to_string()))
                }
            }
        }
        Event::ToolsCompleted(results) | Event::OutputsSubmitted(results) => {
            observe(st, &results);
            ask(input, st)
        }
    }
}

fn observe(st: &mut State, results: &[ToolResult]) {
    for r in results {
        let output = if r.is_error {
            format!("Error: {}", r.output)
        } else {
            r.output.clone()
        };
        st.scratchpad
            .push_str(&format!("{OBSERVATION} {}\n", output.trim()));
    }
}

fn system_prompt(input: &RunInput) -> String {
    let mut p = String::new();
    if !input.instructions.is_empty() {
        p.push_str(&input.instructions);
        p.push_str("\n\n");
    }
    if input.tools.is_empty() || input.tool_choice_json == "\"none\"" {
        p.push_str(&format!(
            "Answer the user. Write your answer after '{FINAL}' on its own line, like:\n\
             Thought: what I know\n{FINAL} the answer\n"
        ));
        return p;
    }
    p.push_str("You can use these tools:\n\n");
    for t in &input.tools {
        p.push_str(&format!(
            "{}: {}\n  arguments (JSON Schema): {}\n",
            t.spec.name, t.spec.description, t.spec.parameters_json
        ));
    }
    let names: Vec<&str> = input.tools.iter().map(|t| t.spec.name.as_str()).collect();
    p.push_str(&format!(
        "\nUse this format:\n\n\
         Thought: think about what to do\n\
         Action: the tool to use, one of [{}]\n\
         Action Input: the tool's arguments as one JSON object\n\
         {OBSERVATION} the tool's result (written for you; never write it yourself)\n\
         ... (Thought / Action / Action Input / Observation can repeat)\n\
         Thought: I now know the answer\n\
         {FINAL} the answer to the user\n",
        names.join(", ")
    ));
    p
}

fn ask(input: &RunInput, st: &mut State) -> Result<Action, String> {
    st.turns += 1;
    if st.turns > MAX_TURNS {
        return Err(format!(
            "the model took {MAX_TURNS} ReAct turns without a final answer"
        ));
    }
    let mut messages = vec![ChatMessage::new(Role::System, system_prompt(input))];
    messages.extend(input.messages.iter().cloned());
    if !st.scratchpad.is_empty() {
        messages.push(ChatMessage::new(
            Role::User,
            format!(
                "Your work so far (the user has not seen it):\n{}\nContinue with the next Thought.",
                st.scratchpad
            ),
        ));
    }
    Ok(Action::call_llm(
        LlmRequest {
            messages,
            // The protocol is text: no native tools are offered.
            tools: vec![],
            tool_choice_json: "\"none\"".into(),
            response_format_json: input.response_format_json.clone(),
            stop: vec![OBSERVATION.into()],
        },
        PublishMode::AfterMarker(FINAL.into()),
    ))
}

assistants_plugin::export_strategy!(React);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_final_answers_and_format_errors() {
        assert_eq!(
            parse("Thought: add\nAction: calculate\nAction Input: {\"expression\": \"1+1\"}\n"),
            Parsed::Act {
                tool: "calculate".into(),
                input: "{\"expression\":\"1+1\"}".into()
            }
        );
        assert_eq!(
            parse("Thought: done\nFinal Answer: 2"),
            Parsed::Final("2".into())
        );
        assert!(matches!(parse("just text"), Parsed::Invalid(_)));
        assert!(matches!(
            parse("Action: calculate\nAction Input: not json"),
            Parsed::Invalid(_)
        ));
        assert_eq!(
            parse("Action: `now`\nAction Input:"),
            Parsed::Act {
                tool: "now".into(),
                input: "{}".into()
            }
        );
    }
}
