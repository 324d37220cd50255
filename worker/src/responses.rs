//! A response's output, projected from what its run wrote, and the response finished when the
//! run ends.
//!
//! The engine writes a response's run like any run — answer messages, `tool_calls` steps —
//! and this module shows them as output items, in the order of the run's steps:
//!
//! | run writes | output item |
//! | --- | --- |
//! | `message_creation` step → its message | `message` with `output_text` parts and annotations |
//! | client function call | `function_call` (`fc_` + the call id's tail) |
//! | `file_search` call | `file_search_call` (`fs_…`): queries; results with `include[]` |
//! | the web retrieval plugin's call | `web_search_call` (`ws_…`) with its search action |
//! | code_interpreter call | `code_interpreter_call` (`ci_…`): code, logs, images |
//! | a remote MCP tool's call | `mcp_call` (`mcp_…`) with its server, output or error |
//! | a call of an MCP tool that needs approval (not run) | `mcp_approval_request` (`mcpr_…`) |
//! | another plugin's call (run by the server) | `mcp_call` (`mcp_…`), `server_label` the plugin id |
//! | an MCP server's tools listed (kept in the engine record) | `mcp_list_tools` (`mcpl_…`), first |
//! | reasoning the model streamed (kept in the engine record) | `reasoning` (`rs_…`), before what followed it |
//!
//! Item ids derive from the message and call ids, so what a stream announced while the run
//! went and what the finished response lists are the same items. [`finish_in`] runs in the
//! transaction that ends the run: the response gets its status, output, usage and error, and
//! its output items join its conversation — both or neither.

use serde_json::{json, Value};

use assistants_core::bus::StreamEvent;
use assistants_core::model::engine::{EngineRecord, Source, ToolBinding};
use assistants_core::model::ids::{now, ItemId, MessageId};
use assistants_core::model::response::{self, INCLUDE_FILE_SEARCH_RESULTS};
use assistants_core::model::{
    Conversation, Item, Message, MessageStatus, ResponseObject, Run, RunStep,
};
use assistants_core::store::{Store, StoreResult, Tx};

/// The plugin that serves OpenAI's `web_search` tool.
pub const WEB_PLUGIN: &str = "web_retrieval";

/// The engine's own events (on a response's run only) carrying reasoning as the model streams
/// it, and all of it once its LLM call ends; the stream shows them as a `reasoning` item.
pub const REASONING_DELTA: &str = "engine.reasoning.delta";
pub const REASONING_DONE: &str = "engine.reasoning.done";

/// The engine's own events (on a response's run) around an MCP server's tools being listed,
/// each carrying the `mcp_list_tools` item (with its `error` when the listing failed).
pub const MCP_LIST_STARTED: &str = "engine.mcp_list_tools.in_progress";
pub const MCP_LIST_DONE: &str = "engine.mcp_list_tools.done";
/// The engine's own event (on a response's run) after it bound more tools (an MCP server's):
/// a stream that shows calls by what they call reads the run's tools again.
pub const TOOLS_BOUND: &str = "engine.tools.bound";

/// The id of the reasoning item of the LLM call whose answer message is `message`.
pub fn reasoning_id(message: &MessageId) -> String {
    format!("rs_{}", message.tail())
}

/// A `reasoning` item.
pub fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "status": "completed", "summary": [],
           "content": [{"type": "reasoning_text", "text": text}]})
}

/// `usage` in the Responses shape.
pub fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    })
}

/// A response's output so far: its run's steps, in order, as items, with the reasoning the
/// model streamed before the item it preceded.
pub fn output(steps: &[RunStep], messages: &[Message], rec: &EngineRecord) -> Vec<Value> {
    // Each item with what made it (its message or call id), to place reasoning by.
    let mut out: Vec<(String, Value)> = Vec::new();
    for step in steps {
        match step.kind.as_str() {
            "message_creation" => {
                let id = step
                    .step_details
                    .pointer("/message_creation/message_id")
                    .and_then(Value::as_str);
                if let Some(m) = messages.iter().find(|m| Some(m.id.as_str()) == id) {
                    out.push((m.id.to_string(), message_item(m, &rec.sources)));
                }
            }
            "tool_calls" => {
                let calls = step.step_details["tool_calls"].as_array();
                for call in calls.into_iter().flatten() {
                    let id = call["id"].as_str().unwrap_or("").to_string();
                    out.push((id, call_item(call, rec)));
                }
            }
            _ => {}
        }
    }
    let reasoning = rec.response.iter().flat_map(|r| &r.reasoning);
    for r in reasoning {
        let item = (String::new(), reasoning_item(&r.id, &r.text));
        match r
            .before
            .as_ref()
            .and_then(|b| out.iter().position(|(made, _)| made == b))
        {
            Some(at) => out.insert(at, item),
            None => out.push(item),
        }
    }
    // The servers' tool lists were made before anything else.
    let lists = rec
        .response
        .iter()
        .flat_map(|r| r.mcp_lists.iter().cloned());
    lists.chain(out.into_iter().map(|(_, item)| item)).collect()
}

/// An answer message as a `message` item.
pub fn message_item(m: &Message, sources: &[Source]) -> Value {
    let status = match m.status {
        MessageStatus::InProgress => "in_progress",
        MessageStatus::Incomplete => "incomplete",
        MessageStatus::Completed => "completed",
    };
    let content: Vec<Value> = m
        .content
        .iter()
        .filter(|c| c["type"] == "text")
        .map(|c| {
            let annotations: Vec<Value> = c
                .pointer("/text/annotations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| annotation(a, sources))
                .collect();
            json!({
                "type": "output_text",
                "text": c.pointer("/text/value").and_then(Value::as_str).unwrap_or(""),
                "annotations": annotations,
                "logprobs": [],
            })
        })
        .collect();
    json!({"id": m.id, "type": "message", "status": status, "role": "assistant",
           "content": content})
}

/// An Assistants annotation in the Responses shape (which points into the text by index).
pub fn annotation(a: &Value, sources: &[Source]) -> Option<Value> {
    let end = a.get("end_index").cloned().unwrap_or(json!(0));
    match a.get("type").and_then(Value::as_str)? {
        "file_citation" => {
            let file_id = a.pointer("/file_citation/file_id")?.as_str()?;
            let filename = sources
                .iter()
                .find(|s| s.file_id == file_id)
                .map(|s| s.filename.clone())
                .unwrap_or_default();
            Some(
                json!({"type": "file_citation", "file_id": file_id, "filename": filename,
                        "index": end}),
            )
        }
        "url_citation" => Some(json!({
            "type": "url_citation",
            "url": a.get("url")?,
            "title": a.get("title").cloned().unwrap_or(json!("")),
            "start_index": a.get("start_index").cloned().unwrap_or(json!(0)),
            "end_index": end,
        })),
        "file_path" => Some(json!({
            "type": "file_path",
            "file_id": a.pointer("/file_path/file_id")?,
            "index": end,
        })),
        _ => None,
    }
}

/// The binding of a function name the model called, if a plugin serves it.
fn binding_of<'a>(tools: &'a [ToolBinding], name: &str) -> Option<&'a ToolBinding> {
    tools.iter().find(|b| b.exposed == name)
}

/// The plugin behind a function name the model called, if a plugin serves it.
pub fn plugin_of<'a>(tools: &'a [ToolBinding], name: &str) -> Option<&'a str> {
    binding_of(tools, name).map(|b| b.plugin.as_str())
}

/// What an `mcp_call` or `mcp_approval_request` item names: the server's label and the
/// tool's name there (a plugin's id and the function name for a plugin tool).
pub fn mcp_names(call: &Value, tools: &[ToolBinding]) -> (String, String) {
    let exposed = call
        .pointer("/function/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(m) = call.get("mcp") {
        let s = |k: &str| m[k].as_str().unwrap_or("").to_string();
        return (s("server_label"), s("name"));
    }
    match binding_of(tools, exposed) {
        Some(ToolBinding { mcp: Some(m), .. }) => (m.server.clone(), m.name.clone()),
        Some(b) => (b.plugin.clone(), exposed.to_string()),
        None => (String::new(), exposed.to_string()),
    }
}

/// The item type that shows a call of a `tool_calls` step (its entry: `file_search`,
/// `code_interpreter` or `function`), given the run's plugin tools. The stream announces a
/// call under the same type and id the finished response lists it with: both ask here.
pub fn call_item_type(call: &Value, tools: &[ToolBinding]) -> &'static str {
    match call["type"].as_str() {
        Some("file_search") => "file_search_call",
        Some("code_interpreter") => "code_interpreter_call",
        _ => {
            // An approved call carries its request; one that still needs approval is the
            // request.
            if call
                .pointer("/mcp/approval_request_id")
                .is_some_and(|r| !r.is_null())
            {
                return "mcp_call";
            }
            let name = call.pointer("/function/name").and_then(Value::as_str);
            match name.and_then(|n| binding_of(tools, n)) {
                None => "function_call",
                Some(b) if b.mcp.as_ref().is_some_and(|m| m.approval) => "mcp_approval_request",
                Some(b) if b.plugin == WEB_PLUGIN => "web_search_call",
                Some(_) => "mcp_call",
            }
        }
    }
}

/// A call of a `tool_calls` step as an output item.
pub fn call_item(call: &Value, rec: &EngineRecord) -> Value {
    let call_id = call["id"].as_str().unwrap_or("");
    let include_results = rec
        .response
        .as_ref()
        .is_some_and(|b| b.include.iter().any(|i| i == INCLUDE_FILE_SEARCH_RESULTS));
    let arguments = rec
        .response
        .as_ref()
        .and_then(|b| b.arguments.get(call_id))
        .map(String::as_str)
        .unwrap_or("");
    match call_item_type(call, &rec.tools) {
        "file_search_call" => {
            let done = call.pointer("/file_search/results").is_some();
            let results = call
                .pointer("/file_search/results")
                .and_then(Value::as_array)
                .filter(|_| include_results)
                .map(|hits| {
                    hits.iter()
                        .map(|h| {
                            json!({
                                "file_id": h["file_id"],
                                "filename": h["file_name"],
                                "score": h["score"],
                                "text": h.pointer("/content/0/text").cloned().unwrap_or(json!("")),
                                "attributes": h.get("attributes").cloned().unwrap_or(json!({})),
                            })
                        })
                        .collect::<Vec<_>>()
                });
            json!({
                "id": ItemId::for_call("file_search_call", call_id),
                "type": "file_search_call",
                "status": if done { "completed" } else { "searching" },
                "queries": query_of(arguments).map(|q| vec![q]).unwrap_or_default(),
                "results": results,
            })
        }
        "code_interpreter_call" => {
            let ci = &call["code_interpreter"];
            let outputs: Vec<Value> = ci["outputs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| match o["type"].as_str() {
                    Some("logs") => Some(json!({"type": "logs", "logs": o["logs"]})),
                    Some("image") => Some(json!({
                        "type": "image",
                        "url": format!("/v1/files/{}/content",
                            o.pointer("/image/file_id").and_then(Value::as_str).unwrap_or("")),
                    })),
                    _ => None,
                })
                .collect();
            json!({
                "id": ItemId::for_call("code_interpreter_call", call_id),
                "type": "code_interpreter_call",
                "status": if ci.get("outputs").is_some() { "completed" } else { "interpreting" },
                "code": ci["input"],
                "container_id": "auto",
                "outputs": outputs,
            })
        }
        kind => {
            let f = &call["function"];
            let name = f["name"].as_str().unwrap_or("");
            let args = f["arguments"].as_str().unwrap_or("");
            let output = f.get("output").filter(|o| !o.is_null());
            match kind {
                "function_call" => json!({
                    "id": ItemId::for_call("function_call", call_id),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": name,
                    "arguments": args,
                }),
                "web_search_call" => json!({
                    "id": ItemId::for_call("web_search_call", call_id),
                    "type": "web_search_call",
                    "status": if output.is_some() { "completed" } else { "searching" },
                    "action": web_action(args),
                }),
                "mcp_approval_request" => {
                    let (server, name) = mcp_names(call, &rec.tools);
                    json!({
                        "id": assistants_core::model::mcp::request_of_call(call_id),
                        "type": "mcp_approval_request",
                        "server_label": server,
                        "name": name,
                        "arguments": args,
                    })
                }
                _ => {
                    let (server, name) = mcp_names(call, &rec.tools);
                    // An MCP call keeps its error in the Responses shape; another plugin's
                    // failure is its text.
                    let error = match call.pointer("/mcp/error") {
                        Some(e) => e.clone(),
                        None => output
                            .filter(|o| o.as_str().is_some_and(|o| o.starts_with("error: ")))
                            .cloned()
                            .unwrap_or(Value::Null),
                    };
                    let failed = !error.is_null();
                    json!({
                        "id": ItemId::for_call("mcp_call", call_id),
                        "type": "mcp_call",
                        "status": if output.is_none() { "calling" } else if failed { "failed" } else { "completed" },
                        "server_label": server,
                        "name": name,
                        "arguments": args,
                        "output": if failed { Value::Null } else { output.cloned().unwrap_or(Value::Null) },
                        "error": error,
                        "approval_request_id": call.pointer("/mcp/approval_request_id").cloned().unwrap_or(Value::Null),
                    })
                }
            }
        }
    }
}

/// What a web retrieval call did, as a `web_search_call` action: a search, or a page read
/// (`web_fetch`'s `url`).
fn web_action(arguments: &str) -> Value {
    let v: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
    match v.get("url").and_then(Value::as_str) {
        Some(url) => json!({"type": "open_page", "url": url}),
        None => json!({"type": "search", "query": query_of(arguments).unwrap_or_default()}),
    }
}

/// The `query` argument of a search call.
fn query_of(arguments: &str) -> Option<String> {
    let v: Value = serde_json::from_str(arguments).ok()?;
    v.get("query").and_then(Value::as_str).map(str::to_string)
}

/// Records an event of a background response's run at position `n` before it is published,
/// while the worker's lease is `token` (`None`: no worker holds the run; best-effort: an
/// event that cannot be recorded is still published, and a stream replayed later lacks it).
/// Other runs' events are not recorded.
pub async fn record(
    store: &Store,
    rec: &EngineRecord,
    token: Option<i64>,
    n: i64,
    event: &mut StreamEvent,
) {
    let Some(r) = rec.response.as_ref().filter(|r| r.background) else {
        return;
    };
    match store.record_response_event(&r.id, token, n, event).await {
        Ok(true) => event.recorded = Some(n),
        // Fenced out (another worker holds the run, or it is gone): not ours to record.
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(response_id = %r.id, error = %e, "could not record a response event")
        }
    }
}

/// `response` as of its run: status, output, usage, error and incomplete details.
pub fn apply_run(response: &mut ResponseObject, run: &Run, output: Vec<Value>) {
    response.set("status", json!(response::status_of(run.status)));
    response.set("output", Value::Array(output));
    if let Some(u) = &run.usage {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        response.set("usage", usage(n("prompt_tokens"), n("completion_tokens")));
    }
    let error = match (&run.last_error, run.status) {
        (Some(e), _) => json!({"code": e["code"], "message": e["message"]}),
        (None, assistants_core::model::RunStatus::Expired) => json!({
            "code": "server_error",
            "message": "The response did not finish in time and expired.",
        }),
        _ => Value::Null,
    };
    response.set("error", error);
    let incomplete = run.incomplete_details.as_ref().map(|d| {
        let reason = match d["reason"].as_str() {
            Some("content_filter") => "content_filter",
            _ => "max_output_tokens",
        };
        json!({ "reason": reason })
    });
    response.set("incomplete_details", incomplete.unwrap_or(Value::Null));
    let completed = run.completed_at.filter(|_| run.status.is_terminal());
    response.set("completed_at", json!(completed));
}

/// Ends the response `run` produces, inside the transaction that ends the run: the response
/// as finished, and its output items added to its conversation. Returns the finished
/// response (what `response.completed` and its kin carry).
pub async fn finish_in(
    store: &Store,
    tx: &mut Tx,
    project: &str,
    run: &Run,
    rec: &EngineRecord,
) -> StoreResult<Option<ResponseObject>> {
    let Some(binding) = &rec.response else {
        return Ok(None);
    };
    let Some(mut doc) = store
        .find_in::<ResponseObject>(tx, project, &binding.id)
        .await?
    else {
        // Deleted while it ran: nothing to finish.
        return Ok(None);
    };
    let steps = store.by_run_in::<RunStep>(tx, &run.id).await?;
    let messages = store.by_run_in::<Message>(tx, &run.id).await?;
    let output = output(&steps, &messages, rec);
    let conversation = match &binding.conversation {
        // A conversation deleted while the response ran gets no items (held, so one deleted
        // now waits for them and takes them with it).
        Some(c) => store
            .hold_in::<Conversation>(tx, project, c)
            .await?
            .map(|_| c),
        None => None,
    };
    if let Some(conversation) = conversation {
        let items: Vec<Item> = output
            .iter()
            .filter_map(Item::from_wire)
            .map(|mut item| {
                // The conversation keeps its own copy; the response keeps its output.
                item.conversation_id = Some(conversation.clone());
                item.created_at = now();
                item
            })
            .collect();
        store.insert_items_in(tx, project, &items).await?;
    }
    apply_run(&mut doc, run, output);
    store.upsert_in(tx, project, &doc).await?;
    store
        .response_ended_in(tx, &binding.id, now(), binding.background)
        .await?;
    Ok(Some(doc))
}
