//! An `mcp` tool entry — a remote MCP server — validated into the server a run may use
//! (`model::mcp::McpServer`): for the Responses API, and as an extension for assistants and
//! runs. `headers` and `authorization` are the client's secrets for that server: what is shown
//! of an entry never carries them ([`redact`]).
//!
//! A server is reachable only where the operator granted the `mcp` component its host
//! (`[plugins.grants.mcp] hosts = [...]`): checked here, so a request naming another server
//! is refused before anything runs, and again by the plugin host when a request goes out.

use serde_json::{Map, Value};

use super::common;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::mcp::{self, Approval, McpServer, ToolFilter};
use assistants_core::plugins::egress::MAX_CALL_HEADER_BYTES;
use assistants_core::plugins::ProjectRef;
use assistants_core::store::mcp_headers::SealedHeaders;

/// Most headers one server entry may carry; all of them (names and values) are within
/// `CallHeaders`' byte cap, which keeps scrubbing answers of them cheap.
const MAX_HEADERS: usize = 32;
/// Longest `server_description` (it goes to the model with each of the server's tools).
const MAX_DESCRIPTION: usize = 4096;
/// Headers the MCP client or HTTP itself sets (the protocol's, the connection's, proxies').
const RESERVED_HEADERS: [&str; 14] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "accept",
    "accept-encoding",
    "mcp-session-id",
    "mcp-protocol-version",
];

/// A remote MCP server of an assistant's or run's `tools` (an extension of the Assistants
/// API: the Responses API's `mcp` tool, never waiting for approvals).
pub struct McpEntry {
    /// With the headers the request gave, in clear until they are sealed.
    pub server: McpServer,
    /// Whether the entry gave `headers` or `authorization`: one without keeps the headers its
    /// assistant has for the same server.
    pub headers_given: bool,
}

fn invalid(param: String, message: String) -> ApiError {
    ApiError::invalid(param, message)
}

/// Validates one `{type: "mcp", …}` entry of `tools` (at `at`).
pub fn server(
    state: &AppState,
    caller: &ProjectRef,
    at: &str,
    t: &Map<String, Value>,
) -> ApiResult<McpServer> {
    let plugin = state
        .plugins
        .get(mcp::PLUGIN)
        .filter(|p| p.is_tool())
        .ok_or_else(|| {
            invalid(
                format!("{at}.type"),
                format!(
                    "The 'mcp' tool is not available on this server: remote MCP servers are \
                     reached through the '{}' plugin, which the operator has not granted any hosts.",
                    mcp::PLUGIN
                ),
            )
        })?;
    if !plugin.allows(caller) {
        return Err(common::not_for_project(&format!("{at}.type"), mcp::PLUGIN));
    }
    let label = match t.get("server_label") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            return Err(invalid(
                format!("{at}.server_label"),
                format!("Missing required parameter: '{at}.server_label'."),
            ))
        }
        Some(_) => {
            return Err(invalid(
                format!("{at}.server_label"),
                format!("Invalid type for '{at}.server_label': expected a string."),
            ))
        }
    };
    if !common::is_function_name(&label) {
        return Err(invalid(
            format!("{at}.server_label"),
            format!(
                "Invalid '{at}.server_label': must be 1-64 characters of a-z, A-Z, 0-9, \
                 underscores and dashes."
            ),
        ));
    }
    for other in ["connector_id", "tunnel_id"] {
        if t.get(other).is_some_and(|v| !v.is_null()) {
            return Err(invalid(
                format!("{at}.{other}"),
                format!(
                    "'{at}.{other}' is not supported by this server: give the server's \
                     'server_url' (and its credentials in 'headers')."
                ),
            ));
        }
    }
    let url = str_field(t, at, "server_url")?.ok_or_else(|| {
        invalid(
            format!("{at}.server_url"),
            format!("Missing required parameter: '{at}.server_url'."),
        )
    })?;
    let param = format!("{at}.server_url");
    // One exact host: no wildcard (the `url` crate accepts `*` in a host name, which a grant
    // pattern would then match as one) and no credentials in the URL (they go in `headers`).
    let parsed = url::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .filter(|u| !u.host_str().unwrap_or_default().contains('*'))
        .filter(|u| u.username().is_empty() && u.password().is_none())
        .ok_or_else(|| {
            invalid(
                param.clone(),
                format!(
                    "Invalid '{param}': expected an http or https URL naming one host, without \
                     credentials, got '{url}'."
                ),
            )
        })?;
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    if !plugin.may_reach(&host, port) {
        return Err(invalid(
            param,
            format!(
                "The MCP server at '{host}:{port}' is not one this server may reach: the \
                 operator grants the '{}' plugin its hosts.",
                mcp::PLUGIN
            ),
        ));
    }
    let headers = headers(t, at)?;
    if !headers.is_empty() && parsed.scheme() == "http" && !plugin.allows_private_addresses() {
        // The plugin host sends secrets in clear only to an address the grant makes private;
        // this grant has none, so they would never be sent.
        return Err(invalid(
            param,
            format!(
                "'{at}.headers' are sent only over https (or to a private address the operator \
                 grants): use an https 'server_url'."
            ),
        ));
    }
    let description = str_field(t, at, "server_description")?;
    common::max_chars(
        &format!("{at}.server_description"),
        &description,
        MAX_DESCRIPTION,
    )?;
    let allowed = match t.get("allowed_tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => Some(ToolFilter {
            tool_names: Some(names_of(names, &format!("{at}.allowed_tools"))?),
            read_only: None,
        }),
        Some(v) => Some(filter(v, &format!("{at}.allowed_tools"))?),
    };
    let approval = match t.get("require_approval") {
        None | Some(Value::Null) => Approval::Always,
        Some(Value::String(s)) if s == "always" => Approval::Always,
        Some(Value::String(s)) if s == "never" => Approval::Never,
        Some(Value::Object(o)) => {
            let p = format!("{at}.require_approval");
            if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "always" | "never")) {
                return Err(invalid(
                    format!("{p}.{k}"),
                    format!("Unknown parameter: '{p}.{k}'."),
                ));
            }
            let side = |k: &str| {
                o.get(k)
                    .filter(|v| !v.is_null())
                    .map(|v| filter(v, &format!("{p}.{k}")))
                    .transpose()
            };
            Approval::Filters {
                always: side("always")?,
                never: side("never")?,
            }
        }
        Some(_) => {
            return Err(invalid(
                format!("{at}.require_approval"),
                format!(
                    "Invalid '{at}.require_approval': expected 'always', 'never' or \
                     {{\"always\": {{…}}, \"never\": {{…}}}}."
                ),
            ))
        }
    };
    Ok(McpServer {
        label,
        url,
        description,
        headers,
        sealed_headers: None,
        unreadable: None,
        allowed,
        approval,
        digest: plugin.digest.clone(),
        listed: false,
    })
}

/// `headers` and `authorization` (a bearer token) as the headers to send.
fn headers(
    t: &Map<String, Value>,
    at: &str,
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    match t.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            if h.len() > MAX_HEADERS {
                return Err(invalid(
                    format!("{at}.headers"),
                    format!("Invalid '{at}.headers': at most {MAX_HEADERS} headers are allowed."),
                ));
            }
            for (name, value) in h {
                let p = format!("{at}.headers.{name}");
                let lower = name.to_ascii_lowercase();
                if axum::http::HeaderName::from_bytes(lower.as_bytes()).is_err()
                    || RESERVED_HEADERS.contains(&lower.as_str())
                {
                    return Err(invalid(
                        p,
                        format!(
                            "Invalid '{at}.headers': '{name}' cannot be sent to an MCP server."
                        ),
                    ));
                }
                let value = value.as_str().ok_or_else(|| {
                    invalid(
                        p.clone(),
                        format!("Invalid type for '{p}': expected a string."),
                    )
                })?;
                if axum::http::HeaderValue::from_str(value).is_err() {
                    return Err(invalid(
                        p.clone(),
                        format!("Invalid '{p}': a header value is visible characters only."),
                    ));
                }
                out.insert(lower, value.to_string());
            }
        }
        Some(_) => {
            return Err(invalid(
                format!("{at}.headers"),
                format!("Invalid type for '{at}.headers': expected an object of strings."),
            ))
        }
    }
    if let Some(token) = str_field(t, at, "authorization")? {
        let p = format!("{at}.authorization");
        if out.contains_key("authorization") {
            return Err(invalid(
                p,
                format!("'{at}.authorization' and an Authorization header in '{at}.headers' cannot both be given."),
            ));
        }
        let value = format!("Bearer {token}");
        if axum::http::HeaderValue::from_str(&value).is_err() {
            return Err(invalid(p.clone(), format!("Invalid '{p}'.")));
        }
        out.insert("authorization".into(), value);
    }
    let bytes: usize = out.iter().map(|(n, v)| n.len() + v.len()).sum();
    if bytes > MAX_CALL_HEADER_BYTES {
        return Err(invalid(
            format!("{at}.headers"),
            format!(
                "Invalid '{at}.headers': the headers (with 'authorization') are at most \
                 {MAX_CALL_HEADER_BYTES} bytes in all, got {bytes}."
            ),
        ));
    }
    Ok(out)
}

/// An `MCPToolFilter`: `{tool_names?, read_only?}` and nothing else.
fn filter(v: &Value, param: &str) -> ApiResult<ToolFilter> {
    let Value::Object(o) = v else {
        return Err(invalid(
            param.to_string(),
            format!(
                "Invalid type for '{param}': expected a list of tool names or a filter object."
            ),
        ));
    };
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "tool_names" | "read_only"))
    {
        return Err(invalid(
            format!("{param}.{k}"),
            format!("Unknown parameter: '{param}.{k}'."),
        ));
    }
    let tool_names = match o.get("tool_names") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(names_of(a, &format!("{param}.tool_names"))?),
        Some(_) => {
            return Err(invalid(
                format!("{param}.tool_names"),
                format!("Invalid type for '{param}.tool_names': expected an array of strings."),
            ))
        }
    };
    let read_only = match o.get("read_only") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(invalid(
                format!("{param}.read_only"),
                format!("Invalid type for '{param}.read_only': expected a boolean."),
            ))
        }
    };
    Ok(ToolFilter {
        tool_names,
        read_only,
    })
}

fn names_of(a: &[Value], param: &str) -> ApiResult<Vec<String>> {
    a.iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            invalid(
                param.to_string(),
                format!("Invalid type for '{param}': expected an array of strings."),
            )
        })
}

fn str_field(t: &Map<String, Value>, at: &str, key: &str) -> ApiResult<Option<String>> {
    match t.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            format!("{at}.{key}"),
            format!("Invalid type for '{at}.{key}': expected a string."),
        )),
    }
}

/// `tools` as they are shown: each `mcp` entry without the client's secrets.
pub fn redact(tools: &mut Value) {
    for t in tools.as_array_mut().into_iter().flatten() {
        redact_entry(t);
    }
}

/// One tool entry as it is shown: an `mcp` entry without the client's secrets.
pub fn redact_entry(t: &mut Value) {
    if t.get("type").and_then(Value::as_str) == Some("mcp") {
        if let Some(o) = t.as_object_mut() {
            o.remove("authorization");
            if o.get("headers").is_some_and(|h| !h.is_null()) {
                o.insert("headers".into(), Value::Null);
            }
        }
    }
}

/// The headers an assistant keeps once its tools are `entries`: those given now, sealed to
/// it; for a server given without any, what it kept for the same label and URL.
pub fn assistant_headers(
    state: &AppState,
    assistant: &str,
    entries: &[McpEntry],
    kept: &[SealedHeaders],
) -> Vec<SealedHeaders> {
    entries
        .iter()
        .filter_map(|e| {
            if !e.headers_given {
                return kept_for(kept, &e.server).cloned();
            }
            let mut server = e.server.clone();
            server.seal_headers(&state.seal, assistant);
            Some(SealedHeaders {
                label: server.label,
                url: server.url,
                sealed: server.sealed_headers?,
            })
        })
        .collect()
}

/// The servers a run of `assistant` uses, their headers sealed to the run: those given with
/// the run, else those the assistant keeps for the same server.
pub fn run_servers(
    state: &AppState,
    param: &str,
    assistant: &str,
    run: &str,
    entries: Vec<McpEntry>,
    kept: &[SealedHeaders],
) -> ApiResult<Vec<McpServer>> {
    entries
        .into_iter()
        .map(|e| {
            let mut server = e.server;
            if let Some(k) = kept_for(kept, &server).filter(|_| !e.headers_given) {
                server.sealed_headers = Some(k.sealed.clone());
                server.open_headers(&state.seal, assistant);
                if server.unreadable.is_some() {
                    return Err(ApiError::invalid(
                        param,
                        format!(
                            "The headers the assistant keeps for its MCP server '{}' cannot be \
                             opened by this server (its secrets key is not the one they were \
                             sealed with): give them again in the assistant's tools.",
                            server.label
                        ),
                    ));
                }
            }
            server.sealed_headers = None;
            server.seal_headers(&state.seal, run);
            Ok(server)
        })
        .collect()
}

fn kept_for<'a>(kept: &'a [SealedHeaders], server: &McpServer) -> Option<&'a SealedHeaders> {
    kept.iter()
        .find(|k| k.label == server.label && k.url == server.url)
}
