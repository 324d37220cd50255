//! `/responses` (the Responses surface): create (create.rs; JSON, SSE or background),
//! retrieve, delete, cancel and input items (stored.rs), the event stream (stream.rs; translate.rs turns run events into it),
//! compaction of a long history (compact.rs),
//! waiting for a response to finish (wait.rs), its tools (tools.rs; its remote MCP servers in
//! mcp.rs; its `tool_choice` in choice.rs), and here
//! `POST /responses/input_tokens`, which counts a request's prompt as the engine will send
//! it — instructions, the context's items, the input, and the tools offered — with the real
//! tokenizer.
//!
//! A response is a run of the engine (`assistants_core::model::response` says how the two are
//! tied); its output is projected from the run by `assistants_worker::responses`.

mod choice;
mod compact;
mod create;
mod current;
mod mcp;
mod stored;
mod stream;
mod tools;
mod translate;
mod wait;

use axum::extract::State;
use axum::routing::{get, post};
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
use assistants_core::model::ids::{ConversationId, ResponseId};
use assistants_core::model::{Conversation, FileObject, Item, ResponseObject};

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
    Router::new()
        .route("/responses", post(create::create))
        .route("/responses/input_tokens", post(input_tokens))
        .route("/responses/compact", post(compact::compact))
        .route(
            "/responses/{response_id}",
            get(stored::retrieve).delete(stored::delete),
        )
        .route("/responses/{response_id}/cancel", post(stored::cancel))
        .route(
            "/responses/{response_id}/input_items",
            get(stored::input_items),
        )
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
    let (conversation, previous) =
        context_params(&state, &project, req.conversation, req.previous_response_id).await?;
    let mut context = assistants_worker::items::context(
        &state.store,
        &project,
        conversation.as_ref(),
        previous.as_ref(),
        None,
    )
    .await?;
    context.extend(input(&state, &project, req.input).await?);
    let caller = common::plugin_caller(&state, &project).await?;
    let tools = tools::translate(&state, &project, &caller, "tools", req.tools).await?;
    let specs = tool_specs(&state, &project, &tools).await?;
    let input_tokens = assistants_core::lowprio::spawn_blocking(move || {
        assistants_worker::input::prompt_tokens(&instructions, &context, &specs)
    })
    .await
    .map_err(|e| ApiError::internal("counting tokens", e))?;
    Ok(axum::Json(
        json!({"object": "response.input_tokens", "input_tokens": input_tokens}),
    ))
}

/// `input`: a string (one user message) or a list of items.
async fn input(state: &AppState, project: &str, v: Option<Value>) -> ApiResult<Vec<Item>> {
    items::normalize(state, project, "input", input_list(v)?).await
}

/// `input` as a list of items from the client, not yet validated.
fn input_list(v: Option<Value>) -> ApiResult<Vec<Value>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![json!({"role": "user", "content": s})]),
        Some(Value::Array(list)) => Ok(list),
        Some(_) => Err(ApiError::invalid(
            "input",
            "Invalid type for 'input': expected a string or an array of items.",
        )),
    }
}

/// `conversation` and `previous_response_id`, checked: they exclude each other, as OpenAI has
/// it, and each must name an object of the project (a response not stored names none).
async fn context_params(
    state: &AppState,
    project: &str,
    conversation: Option<Value>,
    previous: Option<String>,
) -> ApiResult<(Option<ConversationId>, Option<ResponseId>)> {
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
    let previous = previous.filter(|s| !s.is_empty());
    if conversation.is_some() && previous.is_some() {
        return Err(ApiError::invalid(
            "previous_response_id",
            "Mutually exclusive parameters: 'previous_response_id' and 'conversation'. Ensure you are only providing one of them.",
        ));
    }
    let previous = match previous {
        None => None,
        Some(id) => {
            let not_found = || {
                ApiError::not_found("response", &id.escape_debug().to_string())
                    .with_param("previous_response_id")
            };
            let typed = ResponseId::parse(&id).map_err(|_| not_found())?;
            match state.store.find::<ResponseObject>(project, &typed).await? {
                Some(r) if r.stored() && r.finished() => Some(typed),
                // Its output is not there yet: continuing it now would lose the answer.
                Some(r) if r.stored() => {
                    return Err(ApiError::invalid(
                        "previous_response_id",
                        format!(
                        "Previous response with id '{typed}' is still {}; wait for it to finish.",
                        r.status().replace('_', " ")
                    ),
                    ))
                }
                _ => return Err(not_found()),
            }
        }
    };
    let conversation = match conversation {
        None => None,
        Some(id) => {
            let typed = ConversationId::parse(&id).map_err(|_| {
                ApiError::not_found("conversation", &id.escape_debug().to_string())
                    .with_param("conversation")
            })?;
            state
                .store
                .get::<Conversation>(project, &typed)
                .await
                .map_err(|e| ApiError::from(e).with_param("conversation"))?;
            Some(typed)
        }
    };
    Ok((conversation, previous))
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
                if let Some(spec) = assistants_worker::input::function_spec(t) {
                    client_functions.push(spec.name.clone());
                    specs.push(spec);
                }
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
