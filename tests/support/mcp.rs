//! A fake MCP server for the tests of the Responses API's `mcp` tool: the real `rmcp` server
//! (streamable HTTP, sessions with `Mcp-Session-Id`) on `127.0.0.1:0`, serving four tools.
//!
//! - `add` (`{a, b}` numbers, read-only): the sum as text (`2 + 3` → `5`);
//! - `echo_header` (`{name}`, read-only): the value of that HTTP header on the call's request
//!   (and, after a line break, the part after its auth scheme, `Bearer <token>`), or
//!   `(absent)`, so a test can prove what the plugin's requests carried (and what not);
//! - `fail` (no arguments): a tool-level error (`isError`), `the tool failed on purpose`;
//! - `delete_file` (`{path}`, destructive): `deleted {path}`, for approval tests.
//!
//! Missing or mistyped arguments are tool-level errors saying what is wrong; an unknown tool is
//! a JSON-RPC error (`-32602`) naming it. Every `tools/list` and `tools/call` is recorded, with
//! the headers of its HTTP request, so tests can assert what the client sent.
//!
//! The handler is written against `ServerHandler` by hand (no `#[tool]` macros), so it depends
//! on as little of rmcp's API as possible.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::http::request::Parts;
use axum::http::HeaderMap;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

/// What the server has received.
#[derive(Default)]
struct Record {
    /// Every `tools/call`: (tool name, arguments object).
    calls: Vec<(String, Value)>,
    /// How many `tools/list` requests arrived.
    lists: usize,
    /// The HTTP headers of each `tools/list` or `tools/call` request, in arrival order.
    headers: Vec<HeaderMap>,
}

/// Locks the record. A test that panicked while holding it must not hide its own failure
/// behind a poisoned lock in the next assertion, so poisoning is ignored.
fn lock(record: &Mutex<Record>) -> MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake MCP server; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeMcp {
    /// The server's endpoint, e.g. `http://127.0.0.1:41234/mcp`.
    pub url: String,
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    /// Cancels the server (HTTP listener and open sessions) when dropped.
    _stop: Arc<DropGuard>,
}

impl FakeMcp {
    /// Starts the server on `127.0.0.1:0` in a task of the current runtime.
    pub async fn start() -> FakeMcp {
        let record = Arc::new(Mutex::new(Record::default()));
        let stop = CancellationToken::new();
        let handler = Handler {
            record: record.clone(),
        };
        // The defaults are what a real deployment answers: sessions (`Mcp-Session-Id`), event
        // streams for answers, and `Host` checked against loopback names (any port).
        let config =
            StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
        let service: StreamableHttpService<Handler, LocalSessionManager> =
            StreamableHttpService::new(
                move || Ok(handler.clone()),
                Arc::new(LocalSessionManager::default()),
                config,
            );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake MCP server to a loopback port");
        let addr = listener
            .local_addr()
            .expect("the fake MCP server's address");
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        FakeMcp {
            url: format!("http://{addr}/mcp"),
            addr,
            record,
            _stop: Arc::new(stop.drop_guard()),
        }
    }

    /// `127.0.0.1:PORT`, as an operator's grant of this server lists it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every `tools/call` received so far: (tool name, arguments object; `{}` when none).
    pub fn calls(&self) -> Vec<(String, Value)> {
        lock(&self.record).calls.clone()
    }

    /// How many `tools/list` requests were received.
    pub fn lists(&self) -> usize {
        lock(&self.record).lists
    }

    /// The value of header `name` on each HTTP request that reached the handler for
    /// `tools/list` or `tools/call`, in order (`None` where the request did not carry it).
    pub fn header_values(&self, name: &str) -> Vec<Option<String>> {
        let name = name.to_ascii_lowercase();
        lock(&self.record)
            .headers
            .iter()
            .map(|headers| header_value(headers, &name))
            .collect()
    }
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    // An invalid header name is simply absent (`HeaderMap::get` does not panic on it).
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The headers of the HTTP request a call came in: rmcp's streamable HTTP transport puts the
/// request's `http::request::Parts` into the context's extensions.
fn request_headers(context: &RequestContext<RoleServer>) -> HeaderMap {
    context
        .extensions
        .get::<Parts>()
        .map(|parts| parts.headers.clone())
        .unwrap_or_default()
}

/// One per MCP session (the service makes one for each `initialize`); all share the record.
#[derive(Clone)]
struct Handler {
    record: Arc<Mutex<Record>>,
}

fn schema(v: Value) -> JsonObject {
    match v {
        Value::Object(map) => map,
        other => panic!("a tool's input schema is a JSON object: {other}"),
    }
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "add",
            "Adds two numbers.",
            schema(json!({
                "type": "object",
                "properties": {
                    "a": {"type": "number", "description": "The first number."},
                    "b": {"type": "number", "description": "The second number."}
                },
                "required": ["a", "b"]
            })),
        )
        .with_annotations(ToolAnnotations::new().read_only(true)),
        Tool::new(
            "echo_header",
            "Returns the value of the HTTP header `name` that this request carried.",
            schema(json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "A header name, e.g. `authorization`."}
                },
                "required": ["name"]
            })),
        )
        .with_annotations(ToolAnnotations::new().read_only(true)),
        Tool::new(
            "fail",
            "Always fails.",
            schema(json!({"type": "object", "properties": {}, "required": []})),
        ),
        Tool::new(
            "delete_file",
            "Deletes a file.",
            schema(json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file to delete."}
                },
                "required": ["path"]
            })),
        )
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(true)),
    ]
}

fn number(args: &JsonObject, key: &str) -> Result<f64, String> {
    match args.get(key) {
        None => Err(format!("missing argument `{key}` (a number)")),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("argument `{key}` must be a number, not {v}")),
    }
}

fn string<'a>(args: &'a JsonObject, key: &str) -> Result<&'a str, String> {
    match args.get(key) {
        None => Err(format!("missing argument `{key}` (a string)")),
        Some(v) => v
            .as_str()
            .ok_or_else(|| format!("argument `{key}` must be a string, not {v}")),
    }
}

fn add(args: &JsonObject) -> Result<String, String> {
    let (a, b) = (number(args, "a")?, number(args, "b")?);
    // f64's Display prints whole numbers without a fraction: 2 + 3 → "5", 0.5 + 1 → "1.5".
    Ok(format!("{}", a + b))
}

/// Runs tool `name`: its text, or the text of a tool-level error; `None` for an unknown tool.
fn run(name: &str, args: &JsonObject, headers: &HeaderMap) -> Option<Result<String, String>> {
    Some(match name {
        "add" => add(args),
        "echo_header" => string(args, "name").map(|header| {
            match header_value(headers, &header.to_ascii_lowercase()) {
                // A credential with its scheme is echoed whole and bare, as servers' error
                // messages often quote the token alone.
                Some(v) => match v.split_once(' ') {
                    Some((_, token)) => format!("{v}\n{token}"),
                    None => v,
                },
                None => "(absent)".to_string(),
            }
        }),
        "fail" => Err("the tool failed on purpose".to_string()),
        "delete_file" => string(args, "path").map(|path| format!("deleted {path}")),
        _ => return None,
    })
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("fake-mcp", "0.1.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let headers = request_headers(&context);
        {
            let mut record = lock(&self.record);
            record.lists += 1;
            record.headers.push(headers);
        }
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let headers = request_headers(&context);
        let name = request.name.to_string();
        let args = request.arguments.unwrap_or_default();
        {
            // Recorded before running, so calls that fail are asserted on too.
            let mut record = lock(&self.record);
            record
                .calls
                .push((name.clone(), Value::Object(args.clone())));
            record.headers.push(headers.clone());
        }
        let Some(outcome) = run(&name, &args, &headers) else {
            // The MCP specification's answer to an unknown tool: a protocol error, not a result.
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {name}"),
                None,
            ));
        };
        let result = match outcome {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(why) => CallToolResult::error(vec![ContentBlock::text(why)]),
        };
        Ok(result.into())
    }
}
