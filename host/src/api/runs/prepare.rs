//! Validating a run request: parameters, the assistant's defaults, `include[]`, and the
//! strategy and plugin tools pinned to the components installed now.

use super::super::{mcp_tool, pins, tool_list};
use super::*;
use assistants_core::model::ids::{AssistantId, RunId, VectorStoreId};

/// The only `include[]` value the API defines (file-search result content in steps).
pub const INCLUDE_FILE_SEARCH_CONTENT: &str =
    "step_details.tool_calls[*].file_search.results[*].content";

/// Parses and checks `include[]` from the raw query string.
pub(super) fn include(raw: &Option<String>) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        if k == "include[]" || k == "include" {
            if v != INCLUDE_FILE_SEARCH_CONTENT {
                return Err(ApiError::invalid(
                    "include",
                    format!("Invalid 'include[]' value '{v}'. Supported: {INCLUDE_FILE_SEARCH_CONTENT}."),
                ));
            }
            out.push(v.into_owned());
        }
    }
    Ok(out)
}

/// A validated run, ready to insert.
pub(super) struct Prepared {
    pub(super) run: Run,
    /// What the run is pinned to; the engine record is built from it when the run is created.
    pub(super) pins: Pins,
    pub(super) stream: bool,
}

pub(super) fn check_tokens(param: &str, v: Option<i64>) -> ApiResult<Option<i64>> {
    match v {
        Some(n) if n < 256 => Err(ApiError::invalid(
            param,
            format!("Invalid '{param}': must be at least 256, got {n}."),
        )),
        _ => Ok(v),
    }
}

pub(super) fn truncation(v: Option<Value>) -> ApiResult<Value> {
    let v = match v {
        None | Some(Value::Null) => return Ok(json!({"type": "auto", "last_messages": null})),
        Some(v) => v,
    };
    let bad = |m: &str| ApiError::invalid("truncation_strategy", m.to_string());
    match v.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(json!({"type": "auto", "last_messages": null})),
        Some("last_messages") => match v.get("last_messages") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n >= 1) => {
                Ok(json!({"type": "last_messages", "last_messages": n}))
            }
            _ => Err(bad(
                "Invalid 'truncation_strategy.last_messages': expected an integer of at least 1.",
            )),
        },
        _ => Err(bad(
            "Invalid 'truncation_strategy.type': expected 'auto' or 'last_messages'.",
        )),
    }
}

pub(crate) fn tool_choice(v: Option<Value>, tools: &[Value]) -> ApiResult<Value> {
    let v = match v {
        None | Some(Value::Null) => return Ok(Value::String("auto".into())),
        Some(v) => v,
    };
    if let Some(s) = v.as_str() {
        return match s {
            "none" | "auto" | "required" => Ok(v),
            _ => Err(ApiError::invalid(
                "tool_choice",
                format!("Invalid 'tool_choice': expected 'none', 'auto', 'required' or a tool, got '{s}'."),
            )),
        };
    }
    let kind = v.get("type").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid(
            "tool_choice.type",
            "Missing required parameter: 'tool_choice.type'.",
        )
    })?;
    if kind == "function" {
        let name = v
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::invalid(
                    "tool_choice.function.name",
                    "Missing required parameter: 'tool_choice.function.name'.",
                )
            })?;
        let known = tools.iter().any(|t| {
            t.get("type").and_then(Value::as_str) == Some("function")
                && t.get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    == Some(name)
        });
        if !known {
            return Err(ApiError::invalid(
                "tool_choice.function.name",
                format!("Invalid 'tool_choice': the run has no function tool named '{name}'."),
            ));
        }
        return Ok(v);
    }
    if !tools
        .iter()
        .any(|t| t.get("type").and_then(Value::as_str) == Some(kind))
    {
        return Err(ApiError::invalid(
            "tool_choice.type",
            format!("Invalid 'tool_choice': the run has no tool of type '{kind}'."),
        ));
    }
    Ok(v)
}

/// `a` then the ids of `b` not in `a`, in order.
pub(super) fn union(a: &[VectorStoreId], b: &[VectorStoreId]) -> Vec<VectorStoreId> {
    let mut out = a.to_vec();
    for id in b {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// `file_search.vector_store_ids` of a `tool_resources` value (one this server validated when
/// it was written, so every entry is a vector store id).
pub(super) fn store_ids(resources: &Value) -> Vec<VectorStoreId> {
    resources
        .pointer("/file_search/vector_store_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().and_then(|s| VectorStoreId::parse(s).ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Validates the parameters, applies the assistant's defaults, and pins the strategy and the
/// plugin tools to the components installed now.
pub(super) async fn prepare(
    state: &AppState,
    project: &str,
    thread_id: &ThreadId,
    p: RunParams,
    additional_instructions: Option<String>,
) -> ApiResult<Prepared> {
    // An id of another kind names no assistant: 404 without a query.
    let assistant_id = AssistantId::parse(&p.assistant_id)
        .map_err(|_| ApiError::not_found("assistant", &p.assistant_id))?;
    let asst = state.store.get::<Assistant>(project, &assistant_id).await?;
    if let Some(m) = &p.model {
        if m.trim().is_empty() {
            return Err(ApiError::invalid(
                "model",
                "Invalid 'model': must be a non-empty string.",
            ));
        }
    }
    common::max_chars("instructions", &p.instructions, 256_000)?;
    common::max_chars("additional_instructions", &additional_instructions, 256_000)?;
    let caller = common::plugin_caller(state, project).await?;
    let (tools, mcp) = match p.tools {
        Some(Value::Null) | None => {
            // The assistant's servers again: the operator's grants may have changed since.
            let mcp = tool_list::mcp_servers("tools", &asst.tools, state, &caller)?;
            (asst.tools.clone(), mcp)
        }
        Some(t) => {
            let t = tool_list::tools("tools", Some(t), state, &caller)?;
            (t.list, t.mcp)
        }
    };
    let run_id = RunId::new();
    let kept = if mcp.iter().any(|e| !e.headers_given) {
        state.store.mcp_headers(&asst.id).await?
    } else {
        Vec::new()
    };
    let mcp = mcp_tool::run_servers(
        state,
        "tools",
        asst.id.as_str(),
        run_id.as_str(),
        mcp,
        &kept,
    )?;
    let temperature =
        common::number_in("temperature", p.temperature, 0.0, 2.0)?.or(asst.temperature);
    let top_p = common::number_in("top_p", p.top_p, 0.0, 1.0)?.or(asst.top_p);
    let response_format = match p.response_format {
        None | Some(Value::Null) => asst.response_format.clone(),
        Some(v) => common::response_format(Some(v))?,
    };
    let max_prompt_tokens = check_tokens("max_prompt_tokens", p.max_prompt_tokens)?;
    let max_completion_tokens = check_tokens("max_completion_tokens", p.max_completion_tokens)?;
    let truncation_strategy = truncation(p.truncation_strategy)?;
    let tool_choice = tool_choice(p.tool_choice, &tools)?;
    let metadata = common::metadata("metadata", p.metadata)?;
    if let Some(e) = &p.reasoning_effort {
        if !matches!(e.as_str(), "minimal" | "low" | "medium" | "high") {
            return Err(ApiError::invalid(
                "reasoning_effort",
                format!(
                    "Invalid 'reasoning_effort': expected minimal, low, medium or high, got '{e}'."
                ),
            ));
        }
    }

    // The strategy: the assistant's `metadata.strategy`, else the server default.
    let strategy_id = asst
        .metadata
        .get("strategy")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| state.settings.runs.default_strategy.clone());
    let strategy = pins::strategy(state, &caller, &strategy_id, "metadata.strategy", |id| {
        format!("The assistant's strategy '{id}' is not installed.")
    })?;
    let bindings = pins::tools(state, &caller, &tools, "tools")?;

    let mut instructions = p
        .instructions
        .or_else(|| asst.instructions.clone())
        .unwrap_or_default();
    if let Some(extra) = additional_instructions.filter(|s| !s.is_empty()) {
        if !instructions.is_empty() {
            instructions.push_str("\n\n");
        }
        instructions.push_str(&extra);
    }
    let created_at = now();
    let run = Run {
        id: run_id,
        object: "thread.run".into(),
        created_at,
        thread_id: thread_id.clone(),
        assistant_id: asst.id.clone(),
        // `transitions::create` sets the first status.
        status: RunStatus::Queued,
        required_action: None,
        last_error: None,
        expires_at: Some(created_at + state.settings.runs.expiry_secs),
        started_at: None,
        cancelled_at: None,
        failed_at: None,
        completed_at: None,
        incomplete_details: None,
        model: p.model.unwrap_or_else(|| asst.model.clone()),
        instructions,
        tools,
        metadata,
        usage: None,
        temperature,
        top_p,
        max_prompt_tokens,
        max_completion_tokens,
        truncation_strategy,
        tool_choice,
        parallel_tool_calls: p.parallel_tool_calls.unwrap_or(true),
        response_format,
        reasoning_effort: p.reasoning_effort.or(asst.reasoning_effort.clone()),
    };
    let pins = Pins {
        strategy: strategy.manifest.id.clone(),
        digest: strategy.digest.clone(),
        tools: bindings,
        vector_store_ids: store_ids(&asst.tool_resources),
        code_file_ids: None,
        include_content: false,
        response: None,
        mcp,
    };
    Ok(Prepared {
        run,
        pins,
        stream: p.stream.unwrap_or(false),
    })
}
