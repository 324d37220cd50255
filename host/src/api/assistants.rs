//! `/assistants`: create, list, retrieve, modify, delete.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use super::common::{self, ListQuery, Patch};
use super::extract::{Json, Path, Query};
use super::mcp_tool;
use super::tool_resources::{self, Inline};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{now, AssistantId};
use assistants_core::model::Assistant;

#[derive(Debug, Deserialize)]
struct CreateAssistant {
    model: String,
    name: Option<String>,
    description: Option<String>,
    instructions: Option<String>,
    tools: Option<Value>,
    tool_resources: Option<Value>,
    metadata: Option<Value>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    response_format: Option<Value>,
    reasoning_effort: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ModifyAssistant {
    model: Option<String>,
    #[serde(default)]
    name: Patch<String>,
    #[serde(default)]
    description: Patch<String>,
    #[serde(default)]
    instructions: Patch<String>,
    tools: Option<Value>,
    #[serde(default)]
    tool_resources: Patch<Value>,
    #[serde(default)]
    metadata: Patch<Value>,
    #[serde(default)]
    temperature: Patch<f64>,
    #[serde(default)]
    top_p: Patch<f64>,
    #[serde(default)]
    response_format: Patch<Value>,
    #[serde(default)]
    reasoning_effort: Patch<String>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assistants", get(list).post(create))
        .route(
            "/assistants/{assistant_id}",
            get(retrieve).post(modify).delete(remove),
        )
}

fn check_texts(
    name: &Option<String>,
    description: &Option<String>,
    instructions: &Option<String>,
) -> ApiResult<()> {
    common::max_chars("name", name, 256)?;
    common::max_chars("description", description, 512)?;
    common::max_chars("instructions", instructions, 256_000)
}

fn check_model(model: &str) -> ApiResult<()> {
    if model.trim().is_empty() {
        return Err(ApiError::invalid(
            "model",
            "Invalid 'model': must be a non-empty string.",
        ));
    }
    Ok(())
}

fn check_effort(e: &Option<String>) -> ApiResult<()> {
    match e.as_deref() {
        None | Some("minimal" | "low" | "medium" | "high") => Ok(()),
        Some(other) => Err(ApiError::invalid(
            "reasoning_effort",
            format!(
                "Invalid 'reasoning_effort': expected minimal, low, medium or high, got '{other}'."
            ),
        )),
    }
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CreateAssistant>,
) -> ApiResult<axum::Json<Assistant>> {
    check_model(&req.model)?;
    check_texts(&req.name, &req.description, &req.instructions)?;
    check_effort(&req.reasoning_effort)?;
    let caller = common::plugin_caller(&state, &project).await?;
    let tools = super::tool_list::tools("tools", req.tools, &state, &caller)?;
    let metadata = common::metadata("metadata", req.metadata)?;
    let temperature = common::number_in("temperature", req.temperature, 0.0, 2.0)?;
    let top_p = common::number_in("top_p", req.top_p, 0.0, 1.0)?;
    let response_format = common::response_format(req.response_format)?;
    let mut tx = state.store.begin().await?;
    let tool_resources = tool_resources::resolve(
        &state,
        &project,
        req.tool_resources,
        Inline::Create(&mut tx),
    )
    .await?;
    let id = AssistantId::new();
    // The headers of its MCP servers are kept apart from its tools, sealed to it.
    let headers = mcp_tool::assistant_headers(&state, id.as_str(), &tools.mcp, &[]);
    state
        .store
        .set_mcp_headers_in(&mut tx, &id, &headers)
        .await?;
    let a = Assistant {
        id,
        object: "assistant".into(),
        created_at: now(),
        name: req.name,
        description: req.description,
        model: req.model,
        instructions: req.instructions,
        tools: tools.list,
        tool_resources,
        metadata,
        temperature: temperature.or(Some(1.0)),
        top_p: top_p.or(Some(1.0)),
        response_format,
        reasoning_effort: req.reasoning_effort,
    };
    state.store.insert_in(&mut tx, &project, &a, &[]).await?;
    tx.commit().await?;
    state.ingest.notify();
    Ok(axum::Json(a))
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let page = state
        .store
        .list_raw::<Assistant>(&project, None, vec![], &q.params(20, 100)?)
        .await?;
    Ok(common::list_envelope(page, |a| &a.id))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<AssistantId>,
) -> ApiResult<axum::Json<Assistant>> {
    Ok(axum::Json(
        state.store.get::<Assistant>(&project, &id).await?,
    ))
}

async fn modify(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<AssistantId>,
    Json(req): Json<ModifyAssistant>,
) -> ApiResult<axum::Json<Assistant>> {
    // Validate everything before touching the stored object, so a bad field changes nothing.
    if let Some(m) = &req.model {
        check_model(m)?;
    }
    let as_opt = |p: &Patch<String>| match p {
        Patch::Value(v) => Some(v.clone()),
        _ => None,
    };
    check_texts(
        &as_opt(&req.name),
        &as_opt(&req.description),
        &as_opt(&req.instructions),
    )?;
    if let Patch::Value(e) = &req.reasoning_effort {
        check_effort(&Some(e.clone()))?;
    }
    let caller = common::plugin_caller(&state, &project).await?;
    let mut tools = req
        .tools
        .map(|t| super::tool_list::tools("tools", Some(t), &state, &caller))
        .transpose()?;
    let mcp = tools.as_mut().map(|t| std::mem::take(&mut t.mcp));
    let metadata = common::metadata_patch(req.metadata)?;
    let num = |p: Patch<f64>, name: &str, hi: f64| -> ApiResult<Patch<f64>> {
        if let Patch::Value(x) = p {
            common::number_in(name, Some(x), 0.0, hi)?;
        }
        Ok(p)
    };
    let temperature = num(req.temperature, "temperature", 2.0)?;
    let top_p = num(req.top_p, "top_p", 1.0)?;
    let response_format = match req.response_format {
        Patch::Absent => None,
        Patch::Null => Some(Value::String("auto".into())),
        Patch::Value(v) => Some(common::response_format(Some(v))?),
    };
    // `null` clears every list; an object changes only the lists it names.
    let tool_resources = match req.tool_resources {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(v) => Some(Some(
            tool_resources::Change::resolve(&state, &project, v).await?,
        )),
    };
    let mut tx = state.store.begin().await?;
    let a = state
        .store
        .update_in::<Assistant, ApiError>(&mut tx, &project, &id, move |a| {
            if let Some(m) = req.model {
                a.model = m;
            }
            req.name.apply(&mut a.name);
            req.description.apply(&mut a.description);
            req.instructions.apply(&mut a.instructions);
            req.reasoning_effort.apply(&mut a.reasoning_effort);
            if let Some(t) = tools {
                a.tools = t.list;
            }
            if let Some(m) = metadata {
                a.metadata = m;
            }
            temperature.apply(&mut a.temperature);
            top_p.apply(&mut a.top_p);
            if let Some(r) = response_format {
                a.response_format = r;
            }
            match &tool_resources {
                None => {}
                Some(None) => a.tool_resources = serde_json::json!({}),
                Some(Some(patch)) => patch.apply(&mut a.tool_resources),
            }
            Ok(())
        })
        .await?;
    // Its MCP servers' headers: given now, or kept for a server given without them; read
    // and written under the assistant's lock, so concurrent changes do not mix.
    if let Some(entries) = mcp {
        let kept = state.store.mcp_headers_in(&mut tx, &id).await?;
        let headers = mcp_tool::assistant_headers(&state, id.as_str(), &entries, &kept);
        state
            .store
            .set_mcp_headers_in(&mut tx, &id, &headers)
            .await?;
    }
    tx.commit().await?;
    Ok(axum::Json(a))
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<AssistantId>,
) -> ApiResult<axum::Json<Value>> {
    let mut tx = state.store.begin().await?;
    state
        .store
        .delete_in::<Assistant>(&mut tx, &project, &id)
        .await?;
    state.store.set_mcp_headers_in(&mut tx, &id, &[]).await?;
    tx.commit().await?;
    Ok(axum::Json(
        serde_json::json!({"id": id, "object": "assistant.deleted", "deleted": true}),
    ))
}
