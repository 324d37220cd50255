//! A response's `tool_choice` (`ToolChoiceParam`), checked against its tools and brought to
//! the engine's shape, which `assistants_worker::choice` reads:
//! - `none` / `auto` / `required`, and a hosted tool's `{type}`, as for runs;
//! - `{type: function, name}` → `{type: function, function: {name}}` (the Assistants shape);
//! - `web_search` / `web_search_preview` → the type of the plugin that serves it;
//! - `{type: mcp, server_label, name?}` stays as it is: the server's tools are only known once
//!   the run has listed them;
//! - `{type: allowed_tools, mode, tools}` keeps its mode and the entries, each translated as
//!   above.

use serde_json::{json, Map, Value};

use super::super::runs;
use super::tools::EngineTools;
use crate::error::{ApiError, ApiResult};
use assistants_worker::responses::WEB_PLUGIN;

/// Most entries an `allowed_tools` choice may list: as many as tools a request may offer.
const MAX_ALLOWED: usize = super::super::tool_list::MAX_TOOLS;

pub fn tool_choice(v: Option<Value>, tools: &EngineTools) -> ApiResult<Value> {
    let Some(Value::Object(o)) = v else {
        return runs::tool_choice(v, &tools.tools);
    };
    if o.get("type").and_then(Value::as_str) == Some("allowed_tools") {
        return allowed_tools(o, tools);
    }
    entry("tool_choice", o, tools)
}

/// `{type: allowed_tools, mode, tools}`: the model may call only the listed tools.
fn allowed_tools(mut o: Map<String, Value>, tools: &EngineTools) -> ApiResult<Value> {
    let mode = match o.remove("mode") {
        Some(Value::String(m)) if m == "auto" || m == "required" => m,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "tool_choice.mode",
                "Missing required parameter: 'tool_choice.mode'.",
            ))
        }
        Some(m) => {
            return Err(ApiError::invalid(
                "tool_choice.mode",
                format!("Invalid 'tool_choice.mode': expected 'auto' or 'required', got {m}."),
            ))
        }
    };
    let list = match o.remove("tools") {
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_ALLOWED => list,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "tool_choice.tools",
                "Missing required parameter: 'tool_choice.tools'.",
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "tool_choice.tools",
                format!(
                    "Invalid 'tool_choice.tools': expected an array of 1 to {MAX_ALLOWED} tools."
                ),
            ))
        }
    };
    let mut entries = Vec::with_capacity(list.len());
    for (i, t) in list.into_iter().enumerate() {
        let at = format!("tool_choice.tools[{i}]");
        let Value::Object(t) = t else {
            return Err(ApiError::invalid(
                &at,
                format!("Invalid type for '{at}': expected an object."),
            ));
        };
        entries.push(entry(&at, t, tools)?);
    }
    Ok(json!({"type": "allowed_tools", "mode": mode, "tools": entries}))
}

/// One tool named by `{type, ...}` at `at` (the choice itself, or an `allowed_tools` entry).
fn entry(at: &str, mut o: Map<String, Value>, tools: &EngineTools) -> ApiResult<Value> {
    let kind = match o.get("type") {
        Some(Value::String(k)) => k.clone(),
        _ => {
            return Err(ApiError::invalid(
                format!("{at}.type"),
                format!("Missing required parameter: '{at}.type'."),
            ))
        }
    };
    let no_such = |what: String| {
        ApiError::invalid(
            format!("{at}.type"),
            format!("Invalid '{at}': 'tools' has no {what}."),
        )
    };
    match kind.as_str() {
        "function" => {
            let name = match o.remove("name") {
                Some(Value::String(n)) => n,
                _ => {
                    return Err(ApiError::invalid(
                        format!("{at}.name"),
                        format!("Missing required parameter: '{at}.name'."),
                    ))
                }
            };
            let offered = tools
                .tools
                .iter()
                .any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(&name));
            if !offered {
                return Err(ApiError::invalid(
                    format!("{at}.name"),
                    format!("Invalid '{at}': 'tools' has no function named '{name}'."),
                ));
            }
            o.insert("function".into(), json!({ "name": name }));
        }
        "web_search" | "web_search_preview" => {
            if !tools.tools.iter().any(|t| t["type"] == WEB_PLUGIN) {
                return Err(no_such(format!("tool of type '{kind}'")));
            }
            o.insert("type".into(), json!(WEB_PLUGIN));
        }
        "mcp" => return mcp(at, o, tools),
        _ => {
            if !tools.tools.iter().any(|t| t["type"] == kind) {
                return Err(no_such(format!("tool of type '{kind}'")));
            }
        }
    }
    Ok(Value::Object(o))
}

/// `{type: mcp, server_label, name?}`: one of the request's MCP servers; the name, when given,
/// must be one its `allowed_tools` lets through (the server itself is asked at run time).
fn mcp(at: &str, o: Map<String, Value>, tools: &EngineTools) -> ApiResult<Value> {
    let label = match o.get("server_label") {
        Some(Value::String(l)) => l.as_str(),
        _ => {
            return Err(ApiError::invalid(
                format!("{at}.server_label"),
                format!("Missing required parameter: '{at}.server_label'."),
            ))
        }
    };
    let Some(server) = tools.mcp.iter().find(|s| s.label == label) else {
        return Err(ApiError::invalid(
            format!("{at}.server_label"),
            format!("Invalid '{at}': 'tools' has no mcp server labelled '{label}'."),
        ));
    };
    let name = match o.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.as_str()),
        Some(_) => {
            return Err(ApiError::invalid(
                format!("{at}.name"),
                format!("Invalid type for '{at}.name': expected a string."),
            ))
        }
    };
    if let (Some(name), Some(names)) = (
        name,
        server.allowed.as_ref().and_then(|f| f.tool_names.as_ref()),
    ) {
        if !names.iter().any(|n| n == name) {
            return Err(ApiError::invalid(
                format!("{at}.name"),
                format!(
                    "Invalid '{at}': the tool '{name}' is not among the allowed_tools of the mcp \
                     server '{label}'."
                ),
            ));
        }
    }
    let mut out = json!({"type": "mcp", "server_label": label});
    if let Some(name) = name {
        out["name"] = json!(name);
    }
    Ok(out)
}
