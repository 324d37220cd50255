//! A response's `tools`, validated in the Responses shape (errors name its parameters) and
//! brought to the shape the run engine knows (the Assistants tool list), with what the
//! built-in tools carry beside it: `file_search`'s vector stores and code_interpreter's files.
//!
//! | Responses tool | engine tool |
//! | --- | --- |
//! | `{type: function, name, description, parameters, strict}` | `{type: function, function: {…}}` |
//! | `{type: file_search, vector_store_ids, max_num_results, ranking_options, filters}` | `{type: file_search, file_search: {max_num_results, ranking_options, filters}}` + the stores |
//! | `{type: code_interpreter, container: "auto" \| {type: auto, file_ids}}` | `{type: code_interpreter}` + the files |
//! | `{type: web_search}`, `{type: web_search_preview}` | the web retrieval plugin, where the operator granted it |
//! | `{type: mcp, server_label, server_url, headers, allowed_tools, require_approval}` | a server the run lists and calls through the `mcp` component (mcp.rs) |
//! | `{type: "<plugin id>"}` | the same (documented extension) |

use serde_json::{json, Map, Value};

use super::super::{common, tool_list};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{FileId, VectorStoreId};
use assistants_core::model::mcp::McpServer;
use assistants_core::model::{FileObject, VectorStoreDoc};
use assistants_core::plugins::ProjectRef;
use assistants_core::search::Filter;
use assistants_worker::responses::WEB_PLUGIN;

/// A response's tools as the engine takes them.
#[derive(Debug, Default)]
pub struct EngineTools {
    /// In the Assistants shape the engine and `common::tools` know.
    pub tools: Vec<Value>,
    /// `file_search`'s vector stores.
    pub vector_store_ids: Vec<VectorStoreId>,
    /// code_interpreter's files (`container.file_ids`).
    pub code_file_ids: Vec<FileId>,
    /// Remote MCP servers (`mcp` tools).
    pub mcp: Vec<McpServer>,
}

/// Validates `tools` (named `param`) and translates them.
pub async fn translate(
    state: &AppState,
    project: &str,
    caller: &ProjectRef,
    param: &str,
    v: Option<Value>,
) -> ApiResult<EngineTools> {
    let Some(list) = tool_list::tool_array(param, v)? else {
        return Ok(EngineTools::default());
    };
    let mut out = EngineTools::default();
    for (i, t) in list.into_iter().enumerate() {
        let at = format!("{param}[{i}]");
        let Value::Object(t) = t else {
            return Err(ApiError::invalid(
                &at,
                format!("Invalid type for '{at}': expected an object."),
            ));
        };
        let kind = t.get("type").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                format!("{at}.type"),
                format!("Missing required parameter: '{at}.type'."),
            )
        })?;
        match kind {
            "function" => out.tools.push(function(&at, &t)?),
            "file_search" => {
                let (tool, stores) = file_search(state, project, &at, &t).await?;
                out.tools.push(tool);
                for s in stores {
                    if !out.vector_store_ids.contains(&s) {
                        out.vector_store_ids.push(s);
                    }
                }
            }
            "code_interpreter" => {
                out.code_file_ids
                    .extend(container_files(state, project, &at, t.get("container")).await?);
                out.tools.push(json!({"type": "code_interpreter"}));
            }
            "web_search" | "web_search_preview" => {
                let granted = state.plugins.get(WEB_PLUGIN).is_some_and(|p| p.is_tool());
                if !granted {
                    return Err(ApiError::invalid(
                        format!("{at}.type"),
                        format!(
                            "The '{kind}' tool is not available on this server: it is served by the \
                             '{WEB_PLUGIN}' plugin, which the operator has not granted any hosts."
                        ),
                    ));
                }
                plugin(state, caller, &at, WEB_PLUGIN, &mut out)?;
            }
            "mcp" => {
                let server = super::super::mcp_tool::server(state, caller, &at, &t)?;
                if out.mcp.iter().any(|s| s.label == server.label) {
                    return Err(ApiError::invalid(
                        format!("{at}.server_label"),
                        format!(
                            "Invalid '{at}.server_label': two mcp tools are labelled '{}'.",
                            server.label
                        ),
                    ));
                }
                out.mcp.push(server);
            }
            other
                if state
                    .plugins
                    .get(other)
                    .is_some_and(|p| p.is_offered_tool()) =>
            {
                plugin(state, caller, &at, other, &mut out)?
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!(
                        "Invalid value for '{at}.type': unknown tool type '{other}'. Supported: \
                         function, file_search, code_interpreter, web_search, mcp{}.",
                        state
                            .plugins
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
    let names: Vec<&str> = out
        .tools
        .iter()
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .collect();
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return Err(ApiError::invalid(
            param,
            format!(
                "Invalid '{param}': two function tools are named '{}'.",
                dup.1
            ),
        ));
    }
    Ok(out)
}

fn plugin(
    state: &AppState,
    caller: &ProjectRef,
    at: &str,
    id: &str,
    out: &mut EngineTools,
) -> ApiResult<()> {
    if !state.plugins.get(id).is_some_and(|p| p.allows(caller)) {
        return Err(common::not_for_project(&format!("{at}.type"), id));
    }
    if !out
        .tools
        .iter()
        .any(|t| t.get("type").and_then(Value::as_str) == Some(id))
    {
        out.tools.push(json!({ "type": id }));
    }
    Ok(())
}

fn function(at: &str, t: &Map<String, Value>) -> ApiResult<Value> {
    let name = t.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid(
            format!("{at}.name"),
            format!("Missing required parameter: '{at}.name'."),
        )
    })?;
    if !common::is_function_name(name) {
        return Err(ApiError::invalid(
            format!("{at}.name"),
            format!("Invalid '{at}.name': must be 1-64 characters of a-z, A-Z, 0-9, underscores and dashes."),
        ));
    }
    let mut f = json!({ "name": name });
    if let Some(d) = t.get("description").filter(|v| !v.is_null()) {
        let d = d.as_str().ok_or_else(|| {
            ApiError::invalid(
                format!("{at}.description"),
                format!("Invalid type for '{at}.description': expected a string."),
            )
        })?;
        f["description"] = json!(d);
    }
    if let Some(p) = t.get("parameters").filter(|v| !v.is_null()) {
        if !p.is_object() {
            return Err(ApiError::invalid(
                format!("{at}.parameters"),
                format!("Invalid type for '{at}.parameters': expected a JSON Schema object."),
            ));
        }
        f["parameters"] = p.clone();
    }
    match t.get("strict") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => f["strict"] = json!(b),
        Some(_) => {
            return Err(ApiError::invalid(
                format!("{at}.strict"),
                format!("Invalid type for '{at}.strict': expected a boolean."),
            ))
        }
    }
    Ok(json!({"type": "function", "function": f}))
}

async fn file_search(
    state: &AppState,
    project: &str,
    at: &str,
    t: &Map<String, Value>,
) -> ApiResult<(Value, Vec<VectorStoreId>)> {
    let param = format!("{at}.vector_store_ids");
    let ids: Vec<String> = match t.get("vector_store_ids") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ApiError::invalid(
                    &param,
                    format!("Invalid type for '{param}': expected an array of strings."),
                )
            })?,
        _ => {
            return Err(ApiError::invalid(
                &param,
                format!("Missing required parameter: '{param}'."),
            ))
        }
    };
    let stores =
        common::require_existing::<VectorStoreDoc>(&state.store, project, &param, &ids).await?;
    let mut options = json!({});
    if let Some(n) = t.get("max_num_results").filter(|v| !v.is_null()) {
        if !n.as_i64().is_some_and(|n| (1..=50).contains(&n)) {
            return Err(ApiError::invalid(
                format!("{at}.max_num_results"),
                format!("Invalid '{at}.max_num_results': expected an integer between 1 and 50."),
            ));
        }
        options["max_num_results"] = n.clone();
    }
    if let Some(r) = t.get("ranking_options").filter(|v| !v.is_null()) {
        tool_list::ranking_options(
            &format!("{at}.ranking_options"),
            r,
            &["auto", "default-2024-11-15", "default_2024_08_21"],
        )?;
        options["ranking_options"] = r.clone();
    }
    if let Some(f) = t.get("filters").filter(|v| !v.is_null()) {
        Filter::parse(&format!("{at}.filters"), f)?;
        options["filters"] = f.clone();
    }
    Ok((
        json!({"type": "file_search", "file_search": options}),
        stores,
    ))
}

/// code_interpreter's `container`: `"auto"` or `{type: "auto", file_ids}`. A container id
/// (OpenAI's containers API) names nothing here.
async fn container_files(
    state: &AppState,
    project: &str,
    at: &str,
    container: Option<&Value>,
) -> ApiResult<Vec<FileId>> {
    let param = format!("{at}.container");
    match container {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) if s == "auto" => Ok(vec![]),
        Some(Value::String(s)) => Err(ApiError::invalid(
            &param,
            format!("No container found with id '{s}': this server creates a container per conversation; use \"auto\"."),
        )),
        Some(Value::Object(c)) if c.get("type").and_then(Value::as_str) == Some("auto") => {
            let p = format!("{param}.file_ids");
            let ids: Vec<String> = match c.get("file_ids") {
                None | Some(Value::Null) => vec![],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        ApiError::invalid(
                            &p,
                            format!("Invalid type for '{p}': expected an array of strings."),
                        )
                    })?,
                Some(_) => {
                    return Err(ApiError::invalid(
                        &p,
                        format!("Invalid type for '{p}': expected an array of strings."),
                    ))
                }
            };
            common::require_existing::<FileObject>(&state.store, project, &p, &ids).await
        }
        Some(_) => Err(ApiError::invalid(
            &param,
            format!("Invalid '{param}': expected \"auto\" or {{\"type\": \"auto\", \"file_ids\": […]}}."),
        )),
    }
}
