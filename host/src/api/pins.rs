//! What a new run is pinned to — its strategy component and the plugin tools offered to the
//! model, each by the digest installed now — for both surfaces that start runs (Assistants
//! runs and responses). A run keeps these pins whatever is installed later.

use serde_json::Value;

use super::common;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::interpreter;
use assistants_core::model::engine::ToolBinding;
use assistants_core::plugins::manifest::Kind;
use assistants_core::plugins::{Plugin, ProjectRef};

/// The strategy component `id` if it is installed and allowed to the caller; errors name
/// `param`.
pub fn strategy(
    state: &AppState,
    caller: &ProjectRef,
    id: &str,
    param: &str,
    missing: impl FnOnce(&str) -> String,
) -> ApiResult<std::sync::Arc<Plugin>> {
    let strategy = state
        .plugins
        .get(id)
        .filter(|p| p.manifest.kind == Kind::Strategy)
        .ok_or_else(|| {
            let known: Vec<String> = state
                .plugins
                .list()
                .iter()
                .filter(|p| p.manifest.kind == Kind::Strategy)
                .map(|p| p.manifest.id.clone())
                .collect();
            ApiError::invalid(
                param,
                format!(
                    "{} Installed strategies: {}.",
                    missing(id),
                    known.join(", ")
                ),
            )
        })?;
    if !strategy.allows(caller) {
        return Err(common::not_for_project(param, id));
    }
    Ok(strategy)
}

/// The plugin tools among `tools` (Assistants shape), named for the model and pinned to
/// today's components, and the code interpreter if asked for. A plugin not allowed to the
/// caller is refused, naming `param`.
pub fn tools(
    state: &AppState,
    caller: &ProjectRef,
    tools: &[Value],
    param: &str,
) -> ApiResult<Vec<ToolBinding>> {
    let client_functions: Vec<String> = tools
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| {
            t.pointer("/function/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    // Each plugin once, however often the list names it: twice would offer the model two
    // tools of one name (the Responses path dedups the same way).
    let mut plugin_ids: Vec<String> = Vec::new();
    for kind in tools
        .iter()
        .filter_map(|t| t.get("type").and_then(Value::as_str))
        // An `mcp` entry names a remote server, whose tools the engine binds once listed; the
        // components the host calls itself (the MCP client, the crawler) are never offered.
        .filter(|kind| state.plugins.get(kind).is_some_and(|p| p.is_offered_tool()))
    {
        if !plugin_ids.iter().any(|id| id == kind) {
            plugin_ids.push(kind.to_string());
        }
    }
    // Tools saved earlier may predate the operator's allow-list: checked at every pinning.
    if let Some(denied) = plugin_ids
        .iter()
        .find(|id| !state.plugins.get(id).is_some_and(|p| p.allows(caller)))
    {
        return Err(common::not_for_project(param, denied));
    }
    let mut bindings: Vec<ToolBinding> = state
        .plugins
        .offered_tools(&plugin_ids, &client_functions)
        .into_iter()
        .map(|o| ToolBinding {
            exposed: o.exposed_name,
            plugin: o.plugin.manifest.id.clone(),
            digest: o.plugin.digest.clone(),
            tool: o.spec.name,
            mcp: None,
        })
        .collect();
    // The code interpreter is the host's own tool: offered whenever it is asked for (if it is
    // unavailable here, its calls say why), under the name OpenAI's models know unless a
    // client function already has it.
    if tools
        .iter()
        .any(|t| t.get("type").and_then(Value::as_str) == Some(interpreter::TOOL))
    {
        let taken = client_functions.iter().any(|f| f == interpreter::TOOL)
            || bindings.iter().any(|b| b.exposed == interpreter::TOOL);
        bindings.push(ToolBinding {
            exposed: if taken {
                format!("{0}__{0}", interpreter::TOOL)
            } else {
                interpreter::TOOL.to_string()
            },
            plugin: interpreter::TOOL.to_string(),
            digest: String::new(),
            tool: interpreter::TOOL.to_string(),
            mcp: None,
        });
    }
    Ok(bindings)
}
