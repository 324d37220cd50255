//! The `tools` of assistants and runs validated (≤ 128 entries, well-formed built-in tools,
//! `{"type": "<plugin id>"}` of a plugin open to the caller), and the pieces the Responses
//! surface's tools share with them: function names, `ranking_options`, the plugin refusal.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
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
const BUILTIN_TOOLS: &[&str] = &["code_interpreter", "file_search", "function"];

/// Validates an assistant's or run's `tools` array (≤ 128 entries, well-formed built-in tools
/// or `{"type": "<plugin id>"}` of an installed plugin).
pub fn tools(
    param: &str,
    v: Option<Value>,
    plugins: &assistants_core::plugins::PluginHost,
    caller: &ProjectRef,
) -> ApiResult<Vec<Value>> {
    let Some(list) = tool_array(param, v)? else {
        return Ok(Vec::new());
    };
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
            // The MCP client serves the Responses API's `mcp` tools, which name their server.
            mcp::PLUGIN => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!(
                        "Invalid value for '{at}.type': 'mcp' tools are available on the \
                         Responses API (POST /v1/responses), not on assistants and runs."
                    ),
                ))
            }
            plugin if plugins.get(plugin).is_some_and(|p| p.is_tool()) => {
                if !plugins.get(plugin).is_some_and(|p| p.allows(caller)) {
                    return Err(not_for_project(&format!("{at}.type"), plugin));
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
                        .filter(|p| p.is_tool() && p.allows(caller))
                        .filter(|p| p.manifest.id != mcp::PLUGIN)
                        .map(|p| format!(", {}", p.manifest.id))
                        .collect::<String>()
                ),
                ))
            }
        }
    }
    Ok(list)
}

/// Whether `name` may name a function tool: 1-64 characters of `a-z A-Z 0-9 _ -`.
pub fn is_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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
    if !is_function_name(name) {
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

/// The error for a plugin the operator did not open to the caller's project.
pub fn not_for_project(param: &str, plugin: &str) -> ApiError {
    ApiError::invalid(
        param,
        format!("The plugin '{plugin}' is not available to this project."),
    )
}
