//! `/responses` (the Responses surface). Built so far: `POST /responses/input_tokens`, which
//! counts a request's prompt as the engine will send it — instructions, the conversation's
//! items, the input, and the tools offered — with the real tokenizer.

mod tools;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::common;
use super::extract::Json;
use super::items;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::interpreter;
use assistants_core::model::engine::ToolSpec;
use assistants_core::model::ids::ConversationId;
use assistants_core::model::{Conversation, FileObject, Item};
use assistants_core::store::{ListParams, Order};

/// Most items of a conversation a request reads as context.
const MAX_CONTEXT_ITEMS: usize = 2000;
/// Items read per query while loading a conversation.
const CONTEXT_PAGE: i64 = 100;

/// The fields of a response request that decide its prompt (the rest are accepted and do
/// not change the count).
#[derive(Debug, Deserialize)]
struct CountRequest {
    input: Option<Value>,
    instructions: Option<Value>,
    previous_response_id: Option<String>,
    conversation: Option<Value>,
    tools: Option<Value>,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/responses/input_tokens", post(input_tokens))
}

async fn input_tokens(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CountRequest>,
) -> ApiResult<axum::Json<Value>> {
    let instructions = match req.instructions {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => {
            common::max_chars("instructions", &Some(s.clone()), 256_000)?;
            s
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "instructions",
                "Invalid type for 'instructions': expected a string.",
            ))
        }
    };
    let mut context = context(&state, &project, req.conversation, req.previous_response_id).await?;
    context.extend(input(&state, &project, req.input).await?);
    let caller = common::plugin_caller(&state, &project).await?;
    let tools = tools::translate(&state, &project, &caller, "tools", req.tools).await?;
    let specs = tool_specs(&state, &project, &tools).await?;
    let input_tokens = tokio::task::spawn_blocking(move || {
        assistants_worker::items::prompt_tokens(&instructions, &context, &specs)
    })
    .await
    .map_err(|e| ApiError::internal("counting tokens", e))?;
    Ok(axum::Json(
        json!({"object": "response.input_tokens", "input_tokens": input_tokens}),
    ))
}

/// `input`: a string (one user message) or a list of items.
async fn input(state: &AppState, project: &str, v: Option<Value>) -> ApiResult<Vec<Item>> {
    let list = match v {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::String(s)) => vec![json!({"role": "user", "content": s})],
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ApiError::invalid(
                "input",
                "Invalid type for 'input': expected a string or an array of items.",
            ))
        }
    };
    items::normalize(state, project, "input", list).await
}

/// The items a request continues: its conversation's (oldest first), or its previous
/// response's chain. The two exclude each other, as OpenAI has it.
async fn context(
    state: &AppState,
    project: &str,
    conversation: Option<Value>,
    previous: Option<String>,
) -> ApiResult<Vec<Item>> {
    let conversation = match conversation {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(Value::Object(c)) => match c.get("id") {
            Some(Value::String(id)) => Some(id.clone()),
            _ => {
                return Err(ApiError::invalid(
                    "conversation.id",
                    "Missing required parameter: 'conversation.id'.",
                ))
            }
        },
        Some(_) => {
            return Err(ApiError::invalid(
                "conversation",
                "Invalid type for 'conversation': expected a conversation id or an object with an 'id'.",
            ))
        }
    };
    if conversation.is_some() && previous.is_some() {
        return Err(ApiError::invalid(
            "previous_response_id",
            "Mutually exclusive parameters: 'previous_response_id' and 'conversation'. Ensure you are only providing one of them.",
        ));
    }
    if let Some(id) = previous.filter(|s| !s.is_empty()) {
        // Responses are not stored by this server yet: no id names one.
        return Err(
            ApiError::not_found("response", &id.escape_debug().to_string())
                .with_param("previous_response_id"),
        );
    }
    let Some(id) = conversation else {
        return Ok(vec![]);
    };
    let id = ConversationId::parse(&id).map_err(|_| {
        ApiError::not_found("conversation", &id.escape_debug().to_string())
            .with_param("conversation")
    })?;
    state.store.get::<Conversation>(project, &id).await?;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let params = ListParams {
            limit: CONTEXT_PAGE,
            order: Order::Asc,
            after: after.take(),
            before: None,
        };
        let page = state
            .store
            .conversation_items(project, &id, &params)
            .await?;
        for raw in &page.items {
            out.push(
                serde_json::from_str::<Item>(raw.body.get())
                    .map_err(|e| ApiError::internal("a stored item does not parse", e))?,
            );
        }
        if out.len() >= MAX_CONTEXT_ITEMS {
            // The newest are the ones that matter; an over-long history is cut from the front.
            let cut = out.len() - MAX_CONTEXT_ITEMS;
            out.drain(..cut);
        }
        match page.items.last() {
            Some(last) if page.has_more => after = Some(last.id.clone()),
            _ => break,
        }
    }
    Ok(out)
}

/// The tools as the model is offered them: client functions, plugin tools under the names
/// the engine gives them, and the code interpreter with its files.
async fn tool_specs(
    state: &AppState,
    project: &str,
    tools: &tools::EngineTools,
) -> ApiResult<Vec<ToolSpec>> {
    let mut specs = Vec::new();
    let mut client_functions = Vec::new();
    let mut plugin_ids = Vec::new();
    for t in &tools.tools {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                let f = &t["function"];
                let name = f["name"].as_str().unwrap_or_default().to_string();
                client_functions.push(name.clone());
                specs.push(ToolSpec {
                    name,
                    description: f["description"].as_str().unwrap_or_default().to_string(),
                    parameters_json: f
                        .get("parameters")
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
                        .to_string(),
                    strict: f["strict"].as_bool().unwrap_or(false),
                });
            }
            Some(interpreter::TOOL) => {
                let mut files = Vec::new();
                for id in &tools.code_file_ids {
                    let f = state.store.get::<FileObject>(project, id).await?;
                    files.push((f.id.to_string(), f.filename));
                }
                specs.push(interpreter::tool_spec(interpreter::TOOL, &files));
            }
            Some(kind) => plugin_ids.push(kind.to_string()),
            None => {}
        }
    }
    for offered in state.plugins.offered_tools(&plugin_ids, &client_functions) {
        specs.push(ToolSpec {
            name: offered.exposed_name,
            ..ToolSpec::from(offered.spec)
        });
    }
    Ok(specs)
}
