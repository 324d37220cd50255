//! The MCP client behind the Responses API's `mcp` tool: lists and calls the tools of a remote
//! MCP server over streamable HTTP (JSON-RPC 2.0 POSTed to the server's URL; each answer is
//! JSON or an event stream). Every request goes through the host's outgoing-HTTP policy: only
//! the servers the operator granted, checked after DNS. Headers the client gave for the server
//! (`Authorization`, …) never reach this component: the host adds them to requests to that
//! server only and masks their values in what comes back.
//!
//! The component is a protocol adapter for the host, not a tool the model sees:
//!
//! - `list_tools` (`{}`) → `{"tools": [{name, description, input_schema, annotations}]}`,
//!   every page of the server's list; a failure is a `tool-error` whose text the host shows
//!   as the `mcp_list_tools` item's `error`.
//! - `call_tool` (`{"name", "arguments"}`) → `{"output": text}` or `{"error": {...}}` in the
//!   Responses API's shapes: `mcp_tool_execution_error` (the tool said `isError`, with its
//!   content), `mcp_protocol_error` (a JSON-RPC error, with its code), `http_error` (the
//!   server answered an HTTP error, or could not be reached: 502).
//!
//! The server is the `server_url` of the call's tool entry (`options-json`'s `tool`). Each
//! invocation opens a session (`initialize`, `notifications/initialized`), makes its request
//! and ends the session (`DELETE`), since nothing survives between invocations.

use assistants_plugin::log;
use assistants_plugin::tool::{CallContext, Tool, ToolError, ToolOutput, ToolSpec};
use serde_json::{json, Value};
use wstd::http::body::util::combinators::UnsyncBoxBody;
use wstd::http::body::Bytes;
use wstd::http::BodyExt;

/// The protocol revision asked for; servers answer with the one they speak.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// Most tools read from one server, and pages of its list followed.
const MAX_TOOLS: usize = 500;
const MAX_PAGES: usize = 20;
/// Most bytes of an HTTP error's body quoted in the error.
const ERROR_BODY_CHARS: usize = 300;

struct Mcp;

/// Why a request failed, in the Responses API's error shapes.
enum Failure {
    /// The server answered an HTTP error, or could not be reached (502).
    Http(u16, String),
    /// A JSON-RPC error.
    Protocol(i64, String),
}

impl Failure {
    fn to_json(&self) -> Value {
        match self {
            Failure::Http(code, message) => {
                json!({"type": "http_error", "code": code, "message": message})
            }
            Failure::Protocol(code, message) => {
                json!({"type": "mcp_protocol_error", "code": code, "message": message})
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Failure::Http(code, m) => format!("HTTP {code}: {m}"),
            Failure::Protocol(code, m) => format!("MCP error {code}: {m}"),
        }
    }
}

/// One session with a server.
struct Session {
    url: String,
    id: Option<String>,
    protocol: Option<String>,
    next_id: u64,
}

impl Session {
    async fn open(url: &str) -> Result<Session, Failure> {
        let mut s = Session {
            url: url.to_string(),
            id: None,
            protocol: None,
            next_id: 1,
        };
        let init = s
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "assistants", "version": env!("CARGO_PKG_VERSION")},
                }),
            )
            .await?;
        s.protocol = init
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        s.post(
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            None,
        )
        .await?;
        Ok(s)
    }

    /// Ends the session on the server (best effort: a server may not support it).
    async fn close(self) {
        let Some(id) = self.id else { return };
        let Ok(request) = wstd::http::Request::delete(self.url.as_str())
            .header("mcp-session-id", id)
            .body(wstd::http::Body::empty())
        else {
            return;
        };
        let _ = wstd::http::Client::new().send(request).await;
    }

    /// A JSON-RPC request; its `result`.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let answer = self.post(&message, Some(id)).await?.ok_or_else(|| {
            Failure::Protocol(-32603, format!("the server sent no answer to '{method}'"))
        })?;
        if let Some(e) = answer.get("error") {
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(-32603);
            let message = e.get("message").and_then(Value::as_str).unwrap_or("error");
            return Err(Failure::Protocol(code, message.to_string()));
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }

    /// POSTs one message; for a request (`id`), the answer with that id.
    async fn post(&mut self, message: &Value, id: Option<u64>) -> Result<Option<Value>, Failure> {
        let mut builder = wstd::http::Request::post(self.url.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("user-agent", "assistants-mcp/0.1");
        if let Some(session) = &self.id {
            builder = builder.header("mcp-session-id", session.as_str());
        }
        if let Some(p) = &self.protocol {
            builder = builder.header("mcp-protocol-version", p.as_str());
        }
        let request = builder
            .body(wstd::http::Body::from(message.to_string()))
            .map_err(|e| Failure::Http(400, format!("'{}' is not a valid URL: {e}", self.url)))?;
        let mut response = wstd::http::Client::new().send(request).await.map_err(|e| {
            let why = format!("{e:?}");
            Failure::Http(
                502,
                if why.contains("HttpRequestDenied") || why.contains("DestinationIpProhibited") {
                    format!(
                        "{} was refused by the server's network policy (not a granted MCP server)",
                        self.url
                    )
                } else {
                    format!("could not reach {}: {why}", self.url)
                },
            )
        })?;
        let header = |name: &str| webkit::header(response.headers(), name);
        if let Some(session) = header("mcp-session-id") {
            self.id = Some(session);
        }
        let content_type = header("content-type").unwrap_or_default();
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response.body_mut().contents().await.unwrap_or_default();
            let text: String = String::from_utf8_lossy(body)
                .chars()
                .take(ERROR_BODY_CHARS)
                .collect();
            return Err(Failure::Http(status, text.trim().to_string()));
        }
        let Some(id) = id else {
            return Ok(None);
        };
        if content_type.starts_with("text/event-stream") {
            let body = response.into_body().into_boxed_body();
            return read_events(body, id).await.map(Some);
        }
        let bytes = response
            .body_mut()
            .contents()
            .await
            .map_err(|e| Failure::Http(502, format!("reading the answer failed: {e:?}")))?;
        let v: Value = serde_json::from_slice(bytes).map_err(|e| {
            Failure::Protocol(-32700, format!("the server's answer is not JSON: {e}"))
        })?;
        answer_in(v, id)
            .map(Some)
            .ok_or_else(|| Failure::Protocol(-32603, "the server's answer has no response".into()))
    }
}

/// The response with `id` in a message or batch.
fn answer_in(v: Value, id: u64) -> Option<Value> {
    match v {
        Value::Array(batch) => batch.into_iter().find_map(|m| answer_in(m, id)),
        m if m.get("id").and_then(Value::as_u64) == Some(id)
            && (m.get("result").is_some() || m.get("error").is_some()) =>
        {
            Some(m)
        }
        _ => None,
    }
}

/// Reads an event stream until the response with `id` arrives (a server may keep the stream
/// open after it, or send notifications first).
async fn read_events(
    mut body: UnsyncBoxBody<Bytes, wstd::http::Error>,
    id: u64,
) -> Result<Value, Failure> {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let ended = match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    pending.extend_from_slice(&data);
                }
                false
            }
            Some(Err(e)) => {
                return Err(Failure::Http(
                    502,
                    format!("the event stream broke off: {e:?}"),
                ))
            }
            // A last event need not end with a blank line.
            None => {
                pending.extend_from_slice(b"\n\n");
                true
            }
        };
        while let Some((event, rest)) = split_event(&pending) {
            let data = event_data(event);
            pending = rest.to_vec();
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                if let Some(answer) = answer_in(v, id) {
                    return Ok(answer);
                }
            }
        }
        if ended {
            return Err(Failure::Protocol(
                -32603,
                "the event stream ended without the answer".into(),
            ));
        }
    }
}

/// The first complete event (up to a blank line) and what follows it.
fn split_event(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            let next = &buf[i + 1..];
            if next.first() == Some(&b'\n') {
                return Some((&buf[..i], &buf[i + 2..]));
            }
            if next.starts_with(b"\r\n") {
                return Some((&buf[..i], &buf[i + 3..]));
            }
        }
        i += 1;
    }
    None
}

/// The `data:` lines of an event, joined.
fn event_data(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(d) = line.strip_prefix("data:") {
            out.push(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    out.join("\n")
}

/// What a tool result's content says, as text for the model.
fn content_text(result: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| c.get(k).and_then(Value::as_str);
        match s("type") {
            Some("text") => parts.push(s("text").unwrap_or("").to_string()),
            Some("image") => parts.push(format!("[image {}]", s("mimeType").unwrap_or(""))),
            Some("audio") => parts.push(format!("[audio {}]", s("mimeType").unwrap_or(""))),
            Some("resource_link") => parts.push(format!("[resource {}]", s("uri").unwrap_or(""))),
            Some("resource") => {
                let r = &c["resource"];
                match r.get("text").and_then(Value::as_str) {
                    Some(t) => parts.push(t.to_string()),
                    None => parts.push(format!(
                        "[resource {}]",
                        r.get("uri").and_then(Value::as_str).unwrap_or("")
                    )),
                }
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        if let Some(structured) = result.get("structuredContent") {
            return structured.to_string();
        }
    }
    parts.join("\n")
}

/// The server's URL from the call's tool entry.
fn server_url(ctx: &CallContext) -> Result<String, ToolError> {
    let options: Value = serde_json::from_str(&ctx.options_json).unwrap_or(Value::Null);
    options
        .pointer("/tool/server_url")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ToolError::InvalidArguments("the call names no MCP server_url".into()))
}

async fn list_tools(url: &str) -> Result<Value, Failure> {
    let mut session = Session::open(url).await?;
    let mut tools: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = match session.request("tools/list", params).await {
            Ok(p) => p,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
        for t in page
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if tools.len() == MAX_TOOLS {
                break;
            }
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                continue;
            };
            tools.push(json!({
                "name": name,
                "description": t.get("description").cloned().unwrap_or(Value::Null),
                "input_schema": t.get("inputSchema").cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                "annotations": t.get("annotations").cloned().unwrap_or(Value::Null),
            }));
        }
        cursor = page
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        if cursor.is_none() || tools.len() == MAX_TOOLS {
            break;
        }
    }
    session.close().await;
    Ok(json!({ "tools": tools }))
}

async fn call_tool(url: &str, name: &str, arguments: Value) -> Value {
    let mut session = match Session::open(url).await {
        Ok(s) => s,
        Err(e) => return json!({"error": e.to_json()}),
    };
    let result = session
        .request("tools/call", json!({"name": name, "arguments": arguments}))
        .await;
    session.close().await;
    match result {
        Err(e) => json!({"error": e.to_json()}),
        Ok(r) if r.get("isError").and_then(Value::as_bool) == Some(true) => json!({
            "error": {"type": "mcp_tool_execution_error",
                      "content": r.get("content").cloned().unwrap_or(json!([]))},
            "text": content_text(&r),
        }),
        Ok(r) => json!({ "output": content_text(&r) }),
    }
}

impl Tool for Mcp {
    fn describe() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "list_tools".into(),
                description: "Lists the tools of the MCP server the call names.".into(),
                parameters_json: r#"{"type":"object","properties":{},"additionalProperties":false}"#.into(),
                strict: false,
            },
            ToolSpec {
                name: "call_tool".into(),
                description: "Calls a tool of the MCP server the call names.".into(),
                parameters_json: r#"{"type":"object","properties":{"name":{"type":"string"},"arguments":{"type":"object"}},"required":["name"]}"#.into(),
                strict: false,
            },
        ]
    }

    fn invoke(
        ctx: CallContext,
        name: String,
        arguments_json: String,
    ) -> Result<ToolOutput, ToolError> {
        let url = server_url(&ctx)?;
        let args: Value = serde_json::from_str(&arguments_json)
            .map_err(|e| ToolError::InvalidArguments(format!("arguments are not JSON: {e}")))?;
        let text = match name.as_str() {
            "list_tools" => {
                log::debug(&format!("tools/list {url}"));
                let tools = wstd::runtime::block_on(list_tools(&url))
                    .map_err(|e| ToolError::Failed(e.text()))?;
                tools.to_string()
            }
            "call_tool" => {
                let tool = args
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ToolError::InvalidArguments("'name' is required".into()))?
                    .to_string();
                let arguments = match args.get("arguments") {
                    None | Some(Value::Null) => json!({}),
                    Some(a) => a.clone(),
                };
                log::debug(&format!("tools/call {tool} {url}"));
                wstd::runtime::block_on(call_tool(&url, &tool, arguments)).to_string()
            }
            other => return Err(ToolError::UnknownTool(other.to_string())),
        };
        Ok(ToolOutput {
            text,
            annotations: vec![],
        })
    }
}

assistants_plugin::export_tool!(Mcp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_and_their_data_joined() {
        let buf = b"event: message\ndata: {\"a\":\ndata: 1}\n\nid: 2\r\ndata: x\r\n\r\nrest";
        let (first, rest) = split_event(buf).unwrap();
        assert_eq!(event_data(first), "{\"a\":\n1}");
        let (second, rest) = split_event(rest).unwrap();
        assert_eq!(event_data(second), "x");
        assert_eq!(rest, b"rest");
        assert!(split_event(rest).is_none());
    }

    #[test]
    fn the_answer_is_found_by_id_in_batches_and_notifications_are_skipped() {
        let batch = json!([{"jsonrpc": "2.0", "method": "notifications/progress"},
                           {"jsonrpc": "2.0", "id": 3, "result": {"ok": true}}]);
        assert_eq!(answer_in(batch, 3).unwrap()["result"]["ok"], true);
        assert!(answer_in(json!({"jsonrpc": "2.0", "id": 2, "result": {}}), 3).is_none());
    }

    #[test]
    fn content_becomes_text() {
        let r = json!({"content": [{"type": "text", "text": "5"},
                                   {"type": "resource", "resource": {"uri": "file:///a", "text": "body"}},
                                   {"type": "image", "mimeType": "image/png", "data": "…"}]});
        assert_eq!(content_text(&r), "5\nbody\n[image image/png]");
        assert_eq!(
            content_text(&json!({"content": [], "structuredContent": {"n": 1}})),
            "{\"n\":1}"
        );
    }
}
