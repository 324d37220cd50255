//! Items (the Responses surface's context: messages, function calls and their outputs) as the
//! model sees them, in chat-completions terms.
//!
//! - a message becomes a message of its role (`developer` as `system`, which every
//!   OpenAI-compatible upstream accepts); its parts become text, images and files as
//!   bracketed references, as Assistants messages render them;
//! - a `compaction` item (`POST /responses/compact`) becomes a system message with its summary;
//! - `function_call` items become the `tool_calls` of an assistant message (the calls of one
//!   turn are one message, as the model made them), and `function_call_output` a `tool`
//!   message after them;
//! - MCP calls are replayed as a call (under the name the model was offered the tool by) and
//!   its result (`mcp_call`), and so is an approval request once it is answered — by its call
//!   in a later response, by a refusal, or by the engine's `answers` for the calls this
//!   response's input approved — in the turn where the model asked (a request nobody answered
//!   is dropped: a call without a result is no valid turn);
//!   listings and approval responses themselves say nothing to the model;
//! - the server's other tool calls (`file_search_call`, `code_interpreter_call`, …) and
//!   `reasoning` are not replayed: what they found reached the model as it answered, and the
//!   answer that follows them carries it.

use serde_json::Value;

use std::collections::BTreeMap;

use assistants_core::model::engine::{ChatMessage, ToolBinding, ToolCall};
use assistants_core::model::ids::{ConversationId, ResponseId};
use assistants_core::model::mcp;
use assistants_core::model::response;
use assistants_core::model::{Item, ResponseObject};
use assistants_core::store::{ItemsOf, Store, StoreResult};

/// Most items a response's context holds (the newest; an over-long history is cut from the
/// front, as a thread's is).
pub const MAX_CONTEXT_ITEMS: usize = 2000;

/// The items a response continues, oldest first: its conversation's, or the chain of
/// responses before it (each one's input, then its output; earlier `instructions` are not
/// carried over, as OpenAI documents), then `own` (a response's input, when it has no
/// conversation: a conversation's items include it). A response of the chain that is gone
/// ends it.
pub async fn context(
    store: &Store,
    project: &str,
    conversation: Option<&ConversationId>,
    previous: Option<&ResponseId>,
    own: Option<&ResponseId>,
) -> StoreResult<Vec<Item>> {
    let cap = MAX_CONTEXT_ITEMS as i64;
    let mut out: Vec<Item> = Vec::new();
    if let Some(c) = conversation {
        out = store
            .latest_items(project, ItemsOf::Conversation(c), cap)
            .await?;
    } else {
        // Newest first, each response's items in order.
        let mut chain: Vec<Vec<Item>> = Vec::new();
        let (mut next, mut count) = (previous.cloned(), 0);
        while let Some(id) = next.take() {
            let Some(r) = store.find::<ResponseObject>(project, &id).await? else {
                break;
            };
            let mut items = store
                .latest_items(project, ItemsOf::Response(&id), cap)
                .await?;
            let output = r.get("output").and_then(Value::as_array);
            items.extend(output.into_iter().flatten().filter_map(Item::from_wire));
            count += items.len();
            chain.push(items);
            if count >= MAX_CONTEXT_ITEMS {
                break;
            }
            next = r
                .get("previous_response_id")
                .and_then(Value::as_str)
                .and_then(|p| ResponseId::parse(p).ok());
        }
        out.extend(chain.into_iter().rev().flatten());
    }
    if let Some(own) = own.filter(|_| conversation.is_none()) {
        out.extend(
            store
                .latest_items(project, ItemsOf::Response(own), cap)
                .await?,
        );
    }
    if out.len() > MAX_CONTEXT_ITEMS {
        out.drain(..out.len() - MAX_CONTEXT_ITEMS);
    }
    Ok(out)
}

/// The chat messages for `items`, oldest first; `answers` tells the model about approval
/// requests answered in this response (by request id); `tools` are the run's, whose names the
/// model was offered MCP tools under.
pub fn chat_messages(
    items: &[Item],
    answers: &BTreeMap<String, String>,
    tools: &[ToolBinding],
) -> Vec<ChatMessage> {
    let mut answered = answers.clone();
    for item in items {
        let request = item.get("approval_request_id").and_then(Value::as_str);
        match (item.kind(), request) {
            ("mcp_call", Some(r)) => {
                answered.insert(r.to_string(), mcp_result(item));
            }
            ("mcp_approval_response", Some(r))
                if item.get("approve").and_then(Value::as_bool) != Some(true) =>
            {
                let reason = item.get("reason").and_then(Value::as_str);
                answered.entry(r.to_string()).or_insert_with(|| {
                    format!(
                        "The user declined to run this tool call{}.",
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    )
                });
            }
            _ => {}
        }
    }
    let mut t = Transcript::default();
    for item in items {
        match item.kind() {
            "mcp_approval_request" => {
                if let Some(told) = answered.get(item.id.as_str()) {
                    let call_id = mcp::call_of_request(item.id.as_str());
                    t.call(mcp_call(item, &call_id, tools));
                    t.result(&call_id, told.clone());
                }
            }
            "mcp_call" if item.get("approval_request_id").is_none_or(Value::is_null) => {
                let id = item.id.as_str();
                let call_id = format!("call_{}", id.split_once('_').map_or(id, |(_, t)| t));
                t.call(mcp_call(item, &call_id, tools));
                t.result(&call_id, mcp_result(item));
            }
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer") => "system",
                    Some(r) => r,
                    None => continue,
                };
                t.message(role, render(item.get("content")));
            }
            "function_call" => t.call(ToolCall {
                id: text(item, "call_id"),
                name: text(item, "name"),
                arguments_json: text(item, "arguments"),
            }),
            "compaction" => {
                let content = item.get("encrypted_content").and_then(Value::as_str);
                if let Some(summary) = content.and_then(response::compaction_summary) {
                    t.message(
                        "system",
                        format!("Summary of the conversation before this point:\n{summary}"),
                    );
                }
            }
            "function_call_output" => t.result(
                &text(item, "call_id"),
                match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    other => render(other),
                },
            ),
            _ => {}
        }
    }
    t.finish()
}

/// Chat messages as they are built, so that every assistant message with calls is followed by
/// the results of exactly those calls — what upstreams require, however the items interleave:
/// - the calls of one turn gather in one assistant message (after the turn's text, if any); a
///   call once every call of the open turn has its result starts the next turn (the model
///   made it after seeing those results);
/// - results wait for the turn to end, in the order they came (a function call and an MCP call
///   answered in the next request each have their result in a different place);
/// - a message while a call of the open turn still waits for its result is held until the
///   turn ends (a client that sent its next message before a function's output);
/// - a result of no open call is dropped, and a call nobody answered is told so when its turn
///   ends (a history cut at the front, or a client that never sent an output).
#[derive(Default)]
struct Transcript {
    out: Vec<ChatMessage>,
    /// The open turn's call ids, each with whether its result came.
    calls: Vec<(String, bool)>,
    /// Its results so far.
    results: Vec<ChatMessage>,
    /// Messages that came while it waited for results.
    held: Vec<ChatMessage>,
}

/// What the model is told of a call that got no result.
const NO_RESULT: &str = "(no output was given for this call)";

impl Transcript {
    fn answered(&self) -> bool {
        self.calls.iter().all(|(_, done)| *done)
    }

    fn call(&mut self, call: ToolCall) {
        if !self.calls.is_empty() && self.answered() {
            self.close();
        }
        let id = call.id.clone();
        match self.out.last_mut() {
            Some(m) if m.role == "assistant" && m.tool_call_id.is_none() => m.tool_calls.push(call),
            _ => self.out.push(ChatMessage {
                role: "assistant".into(),
                content: String::new(),
                tool_call_id: None,
                tool_calls: vec![call],
            }),
        }
        self.calls.push((id, false));
    }

    fn result(&mut self, call_id: &str, content: String) {
        let Some(open) = self
            .calls
            .iter_mut()
            .find(|(id, done)| id == call_id && !*done)
        else {
            return;
        };
        open.1 = true;
        self.results.push(tool_message(call_id, content));
        if self.answered() && !self.held.is_empty() {
            self.close();
        }
    }

    fn message(&mut self, role: &str, content: String) {
        let message = ChatMessage {
            role: role.to_string(),
            content,
            tool_call_id: None,
            tool_calls: vec![],
        };
        if self.answered() {
            self.close();
            self.out.push(message);
        } else {
            self.held.push(message);
        }
    }

    /// Ends the open turn: its results follow its calls (a call without one is told so),
    /// then the messages held meanwhile.
    fn close(&mut self) {
        for (id, done) in std::mem::take(&mut self.calls) {
            if !done {
                self.results.push(tool_message(&id, NO_RESULT.to_string()));
            }
        }
        self.out.append(&mut self.results);
        self.out.append(&mut self.held);
    }

    fn finish(mut self) -> Vec<ChatMessage> {
        self.close();
        self.out
    }
}

fn tool_message(call_id: &str, content: String) -> ChatMessage {
    ChatMessage {
        role: "tool".into(),
        content,
        tool_call_id: Some(call_id.to_string()),
        tool_calls: vec![],
    }
}

/// An MCP call as the model made it: under the name it was offered the tool by (the run's
/// binding; a tool of a server this run does not use, under its name made valid).
fn mcp_call(item: &Item, call_id: &str, tools: &[ToolBinding]) -> ToolCall {
    let (server, name) = (text(item, "server_label"), text(item, "name"));
    let exposed = tools
        .iter()
        .find(|b| {
            b.mcp
                .as_ref()
                .is_some_and(|m| m.server == server && m.name == name)
        })
        .map_or_else(|| mcp::function_name(&name), |b| b.exposed.clone());
    ToolCall {
        id: call_id.to_string(),
        name: exposed,
        arguments_json: text(item, "arguments"),
    }
}

/// What an `mcp_call` item tells the model: its output, or its error.
fn mcp_result(item: &Item) -> String {
    match (item.get("output"), item.get("error")) {
        (Some(Value::String(out)), _) => out.clone(),
        (_, Some(Value::String(e))) => format!("error: {e}"),
        (_, Some(e)) if !e.is_null() => {
            // As the model was told when the call failed: the message, or the tool's text.
            let content = e.get("content").and_then(Value::as_array);
            let texts: Vec<&str> = content
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("text").and_then(Value::as_str))
                .collect();
            let told = match e.get("message").and_then(Value::as_str) {
                Some(m) => m.to_string(),
                None if !texts.is_empty() => texts.join("\n"),
                None => e.to_string(),
            };
            format!("error: {told}")
        }
        _ => String::new(),
    }
}

fn text(item: &Item, key: &str) -> String {
    item.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The text of a list of content parts.
fn render(content: Option<&Value>) -> String {
    let Some(parts) = content.and_then(Value::as_array) else {
        return String::new();
    };
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let s = |key: &str| p.get(key).and_then(Value::as_str);
        match s("type") {
            Some("input_text" | "output_text") => out.push(s("text").unwrap_or("").to_string()),
            Some("refusal") => out.push(s("refusal").unwrap_or("").to_string()),
            Some("input_image") => match (s("file_id"), s("image_url")) {
                (Some(f), _) => out.push(format!("[image file {f}]")),
                (None, Some(u)) if !u.starts_with("data:") => out.push(format!("[image {u}]")),
                _ => out.push("[image]".into()),
            },
            Some("input_file") => match (s("file_id"), s("filename"), s("file_url")) {
                (Some(f), _, _) => out.push(format!("[attached file {f}]")),
                (None, Some(name), _) => out.push(format!("[attached file {name}]")),
                (None, None, Some(u)) => out.push(format!("[attached file {u}]")),
                _ => out.push("[attached file]".into()),
            },
            _ => {}
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use assistants_core::model::ids::ItemId;
    use serde_json::json;

    fn item(v: Value) -> Item {
        let Value::Object(fields) = v else { panic!() };
        Item {
            id: ItemId::new(),
            fields,
            conversation_id: None,
            response_id: None,
            created_at: 0,
        }
    }

    #[test]
    fn calls_and_outputs_become_one_turn_and_tool_messages() {
        let items = [
            item(json!({"type": "message", "role": "developer",
                        "content": [{"type": "input_text", "text": "Be brief."}]})),
            item(json!({"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Weather in Paris and Rome?"},
                {"type": "input_file", "file_id": "file-1"}]})),
            item(json!({"type": "reasoning", "summary": []})),
            item(
                json!({"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"city\":\"Paris\"}"}),
            ),
            item(
                json!({"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{\"city\":\"Rome\"}"}),
            ),
            item(json!({"type": "function_call_output", "call_id": "c1", "output": "sunny"})),
            item(json!({"type": "function_call_output", "call_id": "c2",
                        "output": [{"type": "input_text", "text": "rain"}]})),
            item(json!({"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": "Sunny; rain.", "annotations": []}]})),
        ];
        let m = chat_messages(&items, &BTreeMap::new(), &[]);
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "tool", "tool", "assistant"]
        );
        assert_eq!(
            m[1].content,
            "Weather in Paris and Rome?\n[attached file file-1]"
        );
        assert_eq!(m[2].tool_calls.len(), 2);
        assert_eq!(m[2].tool_calls[1].arguments_json, "{\"city\":\"Rome\"}");
        assert_eq!(m[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(m[4].content, "rain");
        assert_eq!(m[5].content, "Sunny; rain.");
    }

    #[test]
    fn a_turn_mixing_function_and_mcp_calls_has_each_result_after_the_calls() {
        let mut request = item(
            json!({"type": "mcp_approval_request", "server_label": "docs",
                                      "name": "search.pages", "arguments": "{\"q\":\"x\"}"}),
        );
        request.id = ItemId::parse("mcpr_123").unwrap();
        let items = [
            item(json!({"type": "message", "role": "user",
                        "content": [{"type": "input_text", "text": "Look it up."}]})),
            item(json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"})),
            request,
            item(json!({"type": "function_call_output", "call_id": "c1", "output": "ok"})),
            item(
                json!({"type": "mcp_approval_response", "approval_request_id": "mcpr_123",
                        "approve": true}),
            ),
        ];
        let answers = BTreeMap::from([("mcpr_123".to_string(), "3 pages".to_string())]);
        let tools = [ToolBinding {
            exposed: "search_pages".into(),
            plugin: mcp::PLUGIN.into(),
            digest: "d".into(),
            tool: "call_tool".into(),
            mcp: Some(mcp::McpTool {
                server: "docs".into(),
                name: "search.pages".into(),
                description: String::new(),
                parameters_json: "{}".into(),
                approval: true,
            }),
        }];
        let m = chat_messages(&items, &answers, &tools);
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "tool"]);
        let names: Vec<&str> = m[1].tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["f", "search_pages"],
            "the name the model was offered"
        );
        assert_eq!(m[2].tool_call_id.as_deref(), Some("call_123"));
        assert_eq!(m[2].content, "3 pages");
        assert_eq!(m[3].tool_call_id.as_deref(), Some("c1"));
        // Without the server's binding (a later response without it), a valid name still.
        let m = chat_messages(&items, &answers, &[]);
        assert_eq!(m[1].tool_calls[1].name, "search_pages");
    }

    #[test]
    fn turns_follow_the_results_they_came_after_and_messages_wait_for_outputs() {
        let call = |id: &str| {
            item(json!({"type": "function_call", "call_id": id, "name": "f", "arguments": "{}"}))
        };
        let output =
            |id: &str| item(json!({"type": "function_call_output", "call_id": id, "output": id}));
        let user = |t: &str| {
            item(json!({"type": "message", "role": "user",
                        "content": [{"type": "input_text", "text": t}]}))
        };
        let shape = |items: &[Item]| -> Vec<String> {
            chat_messages(items, &BTreeMap::new(), &[])
                .iter()
                .map(|m| match (&m.tool_call_id, m.tool_calls.len()) {
                    (Some(id), _) => format!("tool {id}: {}", m.content),
                    (None, 0) => format!("{}: {}", m.role, m.content),
                    (None, n) => format!("{} calls {n}", m.role),
                })
                .collect()
        };
        // A call made after the previous one's result is a turn of its own.
        assert_eq!(
            shape(&[call("c1"), output("c1"), call("c2"), output("c2")]),
            [
                "assistant calls 1",
                "tool c1: c1",
                "assistant calls 1",
                "tool c2: c2"
            ]
        );
        // A message sent before an output waits for it.
        assert_eq!(
            shape(&[user("a"), call("c1"), user("b"), output("c1")]),
            ["user: a", "assistant calls 1", "tool c1: c1", "user: b"]
        );
        // An output of no call is dropped; a call without output is told so.
        assert_eq!(
            shape(&[output("gone"), user("a"), call("c1"), user("b")]),
            [
                "user: a",
                "assistant calls 1",
                &format!("tool c1: {NO_RESULT}"),
                "user: b"
            ]
        );
    }
}
