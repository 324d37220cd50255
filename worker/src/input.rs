//! What a run shows its strategy and the model: the thread's messages after truncation, the
//! tools (client functions and plugin tools), and the chat-completions request built from a
//! strategy's `llm-request` with the run's parameters applied.

use serde_json::{json, Value};

use assistants_core::interpreter;
use assistants_core::model::engine::{
    ChatMessage, EngineRecord, LlmRequest, RunInput, RunLimits, RunTool, ToolLocation, ToolSpec,
};
use assistants_core::model::Run;
use assistants_core::model::{Item, Message};
use assistants_core::plugins::PluginHost;
use assistants_core::store::{ListParams, Order, Store, StoreResult};
use assistants_core::tokens::count_tokens;

/// Most thread messages a run reads (newest first) before truncation.
const MAX_HISTORY: i64 = 2000;
/// Messages read per query while building the history.
const HISTORY_PAGE: i64 = 50;
/// Most bytes of message text a run reads (newest first; the newest message always counts):
/// 2,000 messages of 256,000 characters would otherwise be gigabytes per step.
const MAX_HISTORY_BYTES: usize = 8 * 1024 * 1024;

/// Tokens a message costs beyond its text (role and framing), as OpenAI counts it.
const MESSAGE_OVERHEAD: usize = 4;

/// The text a message contributes to a prompt.
fn render(m: &Message) -> String {
    let mut parts = Vec::new();
    for c in &m.content {
        match c.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = c.pointer("/text/value").and_then(Value::as_str) {
                    parts.push(t.to_string());
                }
            }
            Some("image_file") => parts.push(format!(
                "[image file {}]",
                c.pointer("/image_file/file_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )),
            Some("image_url") => parts.push(format!(
                "[image {}]",
                c.pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )),
            _ => {}
        }
    }
    for a in &m.attachments {
        if let Some(id) = a.get("file_id").and_then(Value::as_str) {
            parts.push(format!("[attached file {id}]"));
        }
    }
    parts.join("\n")
}

pub fn message_tokens(m: &ChatMessage) -> usize {
    MESSAGE_OVERHEAD
        + count_tokens(&m.content)
        + m.tool_calls
            .iter()
            .map(|c| count_tokens(&c.name) + count_tokens(&c.arguments_json))
            .sum::<usize>()
}

/// Applies `truncation_strategy` and `max_prompt_tokens` to the thread's messages (oldest
/// first). `last_messages` keeps the newest n; `auto` drops messages from the middle — the
/// first message often sets the task, the newest carry the question — until the prompt fits.
pub fn truncate(
    mut messages: Vec<ChatMessage>,
    strategy: &Value,
    fixed_tokens: usize,
    max_prompt_tokens: Option<i64>,
) -> Vec<ChatMessage> {
    if strategy.get("type").and_then(Value::as_str) == Some("last_messages") {
        if let Some(n) = strategy.get("last_messages").and_then(Value::as_u64) {
            let n = n as usize;
            if messages.len() > n {
                messages.drain(..messages.len() - n);
            }
        }
    }
    let Some(budget) = max_prompt_tokens else {
        return messages;
    };
    let budget = budget.max(0) as usize;
    let mut total: usize = fixed_tokens + messages.iter().map(message_tokens).sum::<usize>();
    // Drop the second-oldest first (keeping the opening message), then the opening one; the
    // newest message always stays.
    while total > budget && messages.len() > 1 {
        let at = if messages.len() > 2 { 1 } else { 0 };
        total -= message_tokens(&messages[at]);
        messages.remove(at);
    }
    messages
}

/// The strategy's view of a run: the history (a thread's messages, or a response's items),
/// the tools and the request's parameters.
pub async fn build(
    store: &Store,
    plugins: &PluginHost,
    project: &str,
    run: &Run,
    engine: &EngineRecord,
) -> StoreResult<RunInput> {
    let messages = match &engine.response {
        // A response's context is items: its conversation's, or its chain's and its input.
        Some(b) => {
            let items = crate::items::context(
                store,
                project,
                b.conversation.as_ref(),
                b.previous.as_ref(),
                Some(&b.id),
            )
            .await?;
            crate::items::chat_messages(&items, &b.mcp_answers, &engine.tools)
        }
        None => thread_history(store, project, run).await?,
    };

    let mut tools = Vec::new();
    for spec in run.tools.iter().filter_map(function_spec) {
        tools.push(RunTool {
            spec,
            location: ToolLocation::Client,
        });
    }
    for b in &engine.tools {
        if b.plugin == interpreter::TOOL {
            let files: Vec<(String, String)> = crate::code_files::input_files(
                store,
                project,
                run,
                engine.code_file_ids.as_deref(),
            )
            .await?
            .into_iter()
            .map(|f| (f.id.to_string(), f.filename))
            .collect();
            tools.push(RunTool {
                spec: interpreter::tool_spec(&b.exposed, &files),
                location: ToolLocation::Server,
            });
            continue;
        }
        if let Some(m) = &b.mcp {
            // A tool of a remote MCP server: its spec as the server listed it. One that needs
            // approval is the client's to answer (the response ends with the request).
            tools.push(RunTool {
                spec: ToolSpec {
                    name: b.exposed.clone(),
                    description: m.description.clone(),
                    parameters_json: m.parameters_json.clone(),
                    strict: false,
                },
                location: if m.approval {
                    ToolLocation::Client
                } else {
                    ToolLocation::Server
                },
            });
            continue;
        }
        let Ok(plugin) = plugins.by_digest(&b.digest).await else {
            tracing::warn!(run_id = %run.id, plugin = %b.plugin, digest = %b.digest, "a pinned plugin is gone; its tools are not offered");
            continue;
        };
        if let Some(spec) = plugin.tools.iter().find(|t| t.name == b.tool) {
            tools.push(RunTool {
                spec: ToolSpec {
                    name: b.exposed.clone(),
                    ..ToolSpec::from(spec.clone())
                },
                location: ToolLocation::Server,
            });
        }
    }
    for t in &run.tools {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "function" && !engine.tools.iter().any(|b| b.plugin == kind) {
            tracing::warn!(run_id = %run.id, tool = kind, "no plugin implements this tool type on this server; it is not offered");
        }
    }

    let choice = crate::choice::resolve(&run.tool_choice, &engine.tools);
    if let Some(allowed) = &choice.allowed {
        tools.retain(|t| allowed.contains(&t.spec.name));
    }
    Ok(RunInput {
        model: run.model.clone(),
        instructions: run.instructions.clone(),
        messages,
        tools,
        tool_choice_json: choice.json,
        response_format_json: run.response_format.to_string(),
        limits: RunLimits {
            max_prompt_tokens: run.max_prompt_tokens.map(|n| n as u32),
            max_completion_tokens: run.max_completion_tokens.map(|n| n as u32),
            temperature: run.temperature.map(|t| t as f32),
            top_p: run.top_p.map(|t| t as f32),
            parallel_tool_calls: run.parallel_tool_calls,
        },
    })
}

/// A client function tool (`{type: function, function: {name, description, parameters,
/// strict}}`, the Assistants shape runs keep) as the model is offered it; `None` for other
/// tool types.
pub fn function_spec(t: &Value) -> Option<ToolSpec> {
    if t.get("type").and_then(Value::as_str) != Some("function") {
        return None;
    }
    let f = t.get("function").cloned().unwrap_or_default();
    let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Some(ToolSpec {
        name: text("name"),
        description: text("description"),
        parameters_json: f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
            .to_string(),
        strict: f.get("strict").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The thread's messages the run reads, oldest first: the newest up to [`MAX_HISTORY`] and
/// [`MAX_HISTORY_BYTES`], except those this run added (the strategy keeps its own transcript,
/// so a run resumed after a crash sees exactly what it saw before).
async fn thread_history(store: &Store, project: &str, run: &Run) -> StoreResult<Vec<ChatMessage>> {
    // Newest first, a page at a time, until the byte budget or the message count is reached:
    // a thread of 2,000 messages of 256,000 characters is never loaded whole.
    let mut messages: Vec<ChatMessage> = Vec::new();
    let (mut bytes, mut seen, mut after) = (0, 0, None);
    'pages: loop {
        let params = ListParams {
            limit: HISTORY_PAGE,
            order: Order::Desc,
            after: after.take(),
            before: None,
        };
        let page = store
            .list::<Message>(
                project,
                Some(("thread_id", &run.thread_id)),
                vec![],
                &params,
            )
            .await?;
        for m in &page.items {
            seen += 1;
            if m.run_id.as_deref() == Some(run.id.as_str()) {
                continue;
            }
            let content = render(m);
            bytes += content.len().max(1);
            // The newest message always goes in, whatever its size.
            if !messages.is_empty() && bytes > MAX_HISTORY_BYTES {
                break 'pages;
            }
            messages.push(ChatMessage {
                role: m.role.clone(),
                content,
                tool_call_id: None,
                tool_calls: vec![],
            });
            if seen >= MAX_HISTORY {
                break 'pages;
            }
        }
        match page.items.last() {
            Some(last) if page.has_more => after = Some(last.id.to_string()),
            _ => break,
        }
    }
    messages.reverse();
    Ok(messages)
}

/// `input` with the run's `truncation_strategy` and `max_prompt_tokens` applied. It counts
/// tokens of the whole history, so the engine runs it off the async threads.
pub fn fit(mut input: RunInput, strategy: &Value, max_prompt_tokens: Option<i64>) -> RunInput {
    let instructions_tokens = count_tokens(&input.instructions)
        + input
            .tools
            .iter()
            .map(|t| count_tokens(&t.spec.description) + count_tokens(&t.spec.parameters_json))
            .sum::<usize>();
    input.messages = truncate(
        std::mem::take(&mut input.messages),
        strategy,
        instructions_tokens,
        max_prompt_tokens,
    );
    input
}

/// The chat-completions request for a strategy's `llm-request`, with the run's model,
/// sampling and budget applied. `max_tokens` is what is left of `max_completion_tokens`.
pub fn request(run: &Run, req: &LlmRequest, max_tokens: Option<u64>) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let mut v = json!({"role": m.role, "content": m.content});
            if let Some(id) = &m.tool_call_id {
                v["tool_call_id"] = json!(id);
            }
            if !m.tool_calls.is_empty() {
                v["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}))
                    .collect();
                if m.content.is_empty() {
                    v["content"] = Value::Null;
                }
            }
            v
        })
        .collect();
    let mut body = json!({
        "model": run.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                let params: Value = serde_json::from_str(&t.parameters_json)
                    .unwrap_or_else(|_| json!({"type": "object"}));
                let mut f =
                    json!({"name": t.name, "description": t.description, "parameters": params});
                if t.strict {
                    f["strict"] = json!(true);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        if let Ok(tc) = serde_json::from_str::<Value>(&req.tool_choice_json) {
            body["tool_choice"] = tc;
        }
        body["parallel_tool_calls"] = json!(run.parallel_tool_calls);
    }
    if let Ok(rf) = serde_json::from_str::<Value>(&req.response_format_json) {
        if rf.is_object() {
            body["response_format"] = rf;
        }
    }
    if let Some(t) = run.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = run.top_p {
        body["top_p"] = json!(p);
    }
    if let Some(n) = max_tokens {
        body["max_tokens"] = json!(n);
    }
    if !req.stop.is_empty() {
        body["stop"] = json!(req.stop);
    }
    if let Some(e) = &run.reasoning_effort {
        body["reasoning_effort"] = json!(e);
    }
    body
}

/// Prompt tokens of a request to the model: the instructions as a system message, the items
/// as chat messages and the tools offered — as the engine counts a request before sending it.
pub fn prompt_tokens(instructions: &str, items: &[Item], tools: &[ToolSpec]) -> usize {
    let mut messages = Vec::with_capacity(items.len() + 1);
    if !instructions.is_empty() {
        messages.push(ChatMessage {
            role: "system".into(),
            content: instructions.to_string(),
            tool_call_id: None,
            tool_calls: vec![],
        });
    }
    messages.extend(crate::items::chat_messages(items, &Default::default(), &[]));
    request_tokens(&LlmRequest {
        messages,
        tools: tools.to_vec(),
        tool_choice_json: String::new(),
        response_format_json: String::new(),
        stop: vec![],
    })
}

/// Prompt tokens of a request, counted before sending it (for `max_prompt_tokens`).
pub fn request_tokens(req: &LlmRequest) -> usize {
    req.messages.iter().map(message_tokens).sum::<usize>()
        + req
            .tools
            .iter()
            .map(|t| {
                count_tokens(&t.name)
                    + count_tokens(&t.description)
                    + count_tokens(&t.parameters_json)
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> ChatMessage {
        ChatMessage {
            role: "user".into(),
            content: s.into(),
            tool_call_id: None,
            tool_calls: vec![],
        }
    }

    #[test]
    fn last_messages_keeps_the_newest() {
        let out = truncate(
            vec![msg("a"), msg("b"), msg("c")],
            &json!({"type": "last_messages", "last_messages": 2}),
            0,
            None,
        );
        assert_eq!(
            out.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
    }

    #[test]
    fn auto_drops_from_the_middle_until_the_prompt_fits() {
        let long = "word ".repeat(100);
        let msgs = vec![msg("first"), msg(&long), msg(&long), msg("last")];
        let out = truncate(msgs.clone(), &json!({"type": "auto"}), 0, Some(50));
        assert_eq!(
            out.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
            ["first", "last"]
        );
        assert_eq!(truncate(msgs, &json!({"type": "auto"}), 0, None).len(), 4);
        // The newest message stays even if it alone is over budget.
        assert_eq!(
            truncate(vec![msg(&long)], &json!({"type": "auto"}), 0, Some(1)).len(),
            1
        );
    }
}
