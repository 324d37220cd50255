//! The `tools` of assistants and runs validated (≤ 128 entries, well-formed built-in tools,
//! `{"type": "<plugin id>"}` of a plugin open to the caller, remote MCP servers as the
//! Responses API's `mcp` tool gives them), and the pieces the Responses surface's tools share
//! with them: `ranking_options`.

use serde_json::Value;

use super::common;
use super::mcp_tool::{self, McpEntry};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::mcp;
use assistants_core::plugins::ProjectRef;

/// Most tools one assistant, run or response may offer, as OpenAI allows.
pub const MAX_TOOLS: usize = 128;

/// A `tools` parameter (named `param`) as its entries: `None` when absent or null; an array of
/// at most [`MAX_TOOLS`] (assistants, runs and responses alike).
pub fn tool_array(param: &str, v: Option<Value>) -> ApiResult<Option<Vec<Value>>> {
    let list = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ApiError::invalid(
                param,
                format!("Invalid type for '{param}': expected an array."),
            ))
        }
    };
    if list.len() > MAX_TOOLS {
        return Err(ApiError::invalid(
            param,
            format!("Invalid '{param}': at most {MAX_TOOLS} tools are allowed."),
        ));
    }
    Ok(Some(list))
}

/// Tool types the server knows besides plugin tools.
const BUILTIN_TOOLS: &[&str] = &["code_interpreter", "file_search", "function", "mcp"];

/// An assistant's or run's `tools`, validated: the entries as they are kept and shown (an
/// `mcp` entry without its secrets), and the remote MCP servers among them.
pub struct Tools {
    pub list: Vec<Value>,
    pub mcp: Vec<McpEntry>,
}

/// Validates an assistant's or run's `tools` array (≤ 128 entries, well-formed built-in tools,
/// `{"type": "<plugin id>"}` of an installed plugin, `{"type": "mcp", …}` servers).
pub fn tools(
    param: &str,
    v: Option<Value>,
    state: &AppState,
    caller: &ProjectRef,
) -> ApiResult<Tools> {
    let Some(mut list) = tool_array(param, v)? else {
        return Ok(Tools {
            list: Vec::new(),
            mcp: Vec::new(),
        });
    };
    let plugins = &state.plugins;
    for (i, t) in list.iter().enumerate() {
        let at = format!("{param}[{i}]");
        let kind = t.get("type").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                format!("{at}.type"),
                format!("Missing required parameter: '{at}.type'."),
            )
        })?;
        match kind {
            "function" => function_tool(&at, t)?,
            "file_search" => file_search_tool(&at, t)?,
            "code_interpreter" => {}
            // Validated with the others below (`mcp_servers`).
            mcp::PLUGIN => {}
            plugin if plugins.get(plugin).is_some_and(|p| p.is_offered_tool()) => {
                if !plugins.get(plugin).is_some_and(|p| p.allows(caller)) {
                    return Err(common::not_for_project(&format!("{at}.type"), plugin));
                }
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!(
                    "Invalid value for '{at}.type': unknown tool type '{other}'. Supported: {}{}.",
                    BUILTIN_TOOLS.join(", "),
                    plugins
                        .list()
                        .iter()
                        .filter(|p| p.is_offered_tool() && p.allows(caller))
                        .map(|p| format!(", {}", p.manifest.id))
                        .collect::<String>()
                ),
                ))
            }
        }
    }
    let mcp = mcp_servers(param, &list, state, caller)?;
    for t in &mut list {
        mcp_tool::redact_entry(t);
    }
    Ok(Tools { list, mcp })
}

/// The `mcp` entries of `tools` (named `param`) validated into servers (also those an
/// assistant kept: the operator's grants may have changed since). Their runs cannot wait for
/// a client's approval, so `require_approval` is `never`, which is also its default here.
pub fn mcp_servers(
    param: &str,
    tools: &[Value],
    state: &AppState,
    caller: &ProjectRef,
) -> ApiResult<Vec<McpEntry>> {
    let mut out: Vec<McpEntry> = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some(mcp::PLUGIN) {
            continue;
        }
        let at = format!("{param}[{i}]");
        let Some(entry) = t.as_object() else {
            return Err(ApiError::invalid(
                at.clone(),
                format!("Invalid type for '{at}': expected an object."),
            ));
        };
        let mut entry = entry.clone();
        match entry.get("require_approval") {
            None | Some(Value::Null) => {
                entry.insert("require_approval".into(), "never".into());
            }
            Some(Value::String(s)) if s == "never" => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    format!("{at}.require_approval"),
                    format!(
                        "Invalid '{at}.require_approval': an assistant's runs do not wait for \
                         approvals, so only 'never' (the default here) is accepted; approvals \
                         are available on the Responses API."
                    ),
                ))
            }
        }
        let server = mcp_tool::server(state, caller, &at, &entry)?;
        if out.iter().any(|e| e.server.label == server.label) {
            return Err(ApiError::invalid(
                format!("{at}.server_label"),
                format!(
                    "Invalid '{at}.server_label': '{}' labels another MCP server of these tools.",
                    server.label
                ),
            ));
        }
        let given = |k: &str| entry.get(k).is_some_and(|v| !v.is_null());
        out.push(McpEntry {
            headers_given: given("headers") || given("authorization"),
            server,
        });
    }
    Ok(out)
}

fn function_tool(at: &str, t: &Value) -> ApiResult<()> {
    let f = t.get("function").filter(|f| f.is_object()).ok_or_else(|| {
        ApiError::invalid(
            format!("{at}.function"),
            format!("Missing required parameter: '{at}.function'."),
        )
    })?;
    let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid(
            format!("{at}.function.name"),
            format!("Missing required parameter: '{at}.function.name'."),
        )
    })?;
    if !common::is_function_name(name) {
        return Err(ApiError::invalid(
            format!("{at}.function.name"),
            format!("Invalid '{at}.function.name': must be 1-64 characters of a-z, A-Z, 0-9, underscores and dashes."),
        ));
    }
    if let Some(p) = f.get("parameters") {
        if !p.is_object() {
            return Err(ApiError::invalid(
                format!("{at}.function.parameters"),
                format!(
                    "Invalid type for '{at}.function.parameters': expected a JSON Schema object."
                ),
            ));
        }
    }
    Ok(())
}

fn file_search_tool(at: &str, t: &Value) -> ApiResult<()> {
    let Some(fs) = t.get("file_search").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    if let Some(n) = fs.get("max_num_results").filter(|v| !v.is_null()) {
        if !n.as_i64().is_some_and(|n| (1..=50).contains(&n)) {
            return Err(ApiError::invalid(
                format!("{at}.file_search.max_num_results"),
                "Invalid 'max_num_results': expected an integer between 1 and 50.",
            ));
        }
    }
    if let Some(r) = fs.get("ranking_options").filter(|v| !v.is_null()) {
        ranking_options(
            &format!("{at}.file_search.ranking_options"),
            r,
            &["auto", "default_2024_08_21"],
        )?;
    }
    Ok(())
}

/// Validated `ranking_options`.
pub struct Ranking {
    /// `score_threshold` (0 when absent).
    pub threshold: f64,
    /// The ranker (`auto` when absent).
    pub ranker: String,
}

/// Validates `ranking_options`.
pub fn ranking_options(param: &str, r: &Value, rankers: &[&str]) -> ApiResult<Ranking> {
    let ranker = r
        .get("ranker")
        .and_then(Value::as_str)
        .unwrap_or("auto")
        .to_string();
    let threshold = threshold(param, r, rankers)?;
    Ok(Ranking { threshold, ranker })
}

fn threshold(param: &str, r: &Value, rankers: &[&str]) -> ApiResult<f64> {
    if let Some(ranker) = r.get("ranker").filter(|v| !v.is_null()) {
        if !ranker.as_str().is_some_and(|s| rankers.contains(&s)) {
            return Err(ApiError::invalid(
                format!("{param}.ranker"),
                format!(
                    "Invalid '{param}.ranker': expected one of {}.",
                    rankers.join(", ")
                ),
            ));
        }
    }
    match r.get("score_threshold").filter(|v| !v.is_null()) {
        None => Ok(0.0),
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => Ok(t),
            _ => Err(ApiError::invalid(
                format!("{param}.score_threshold"),
                format!("Invalid '{param}.score_threshold': expected a number between 0 and 1."),
            )),
        },
    }
}
