//! Items (the Responses surface's context: messages, function calls and their outputs) as the
//! model sees them, in chat-completions terms.
//!
//! - a message becomes a message of its role (`developer` as `system`, which every
//!   OpenAI-compatible upstream accepts); its parts become text, images and files as
//!   bracketed references, as Assistants messages render them;
//! - a `compaction` item (`POST /responses/compact`) becomes a system message with its summary;
//! - `function_call` items become the `tool_calls` of an assistant message (consecutive calls
//!   are one turn, as the model made them), and `function_call_output` a `tool` message;
//! - the server's own tool calls (`file_search_call`, `code_interpreter_call`, …) and
//!   `reasoning` are not replayed: what they found reached the model as it answered, and the
//!   answer that follows them carries it.

use serde_json::Value;

use assistants_core::model::engine::{ChatMessage, ToolCall};
use assistants_core::model::ids::{ConversationId, ResponseId};
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

/// The chat messages for `items`, oldest first.
pub fn chat_messages(items: &[Item]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(items.len());
    for item in items {
        match item.kind() {
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer") => "system",
                    Some(r) => r,
                    None => continue,
                };
                out.push(ChatMessage {
                    role: role.to_string(),
                    content: render(item.get("content")),
                    tool_call_id: None,
                    tool_calls: vec![],
                });
            }
            "function_call" => {
                let call = ToolCall {
                    id: text(item, "call_id"),
                    name: text(item, "name"),
                    arguments_json: text(item, "arguments"),
                };
                match out.last_mut() {
                    // A call right after another call (or after the turn's text) is part of
                    // the same assistant turn.
                    Some(m) if m.role == "assistant" && m.tool_call_id.is_none() => {
                        m.tool_calls.push(call)
                    }
                    _ => out.push(ChatMessage {
                        role: "assistant".into(),
                        content: String::new(),
                        tool_call_id: None,
                        tool_calls: vec![call],
                    }),
                }
            }
            "compaction" => {
                let content = item.get("encrypted_content").and_then(Value::as_str);
                if let Some(summary) = content.and_then(response::compaction_summary) {
                    out.push(ChatMessage {
                        role: "system".into(),
                        content: format!(
                            "Summary of the conversation before this point:\n{summary}"
                        ),
                        tool_call_id: None,
                        tool_calls: vec![],
                    });
                }
            }
            "function_call_output" => out.push(ChatMessage {
                role: "tool".into(),
                content: match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    other => render(other),
                },
                tool_call_id: Some(text(item, "call_id")),
                tool_calls: vec![],
            }),
            _ => {}
        }
    }
    out
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
        let m = chat_messages(&items);
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
}
