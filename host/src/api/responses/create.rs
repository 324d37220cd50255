//! `POST /responses`: a request validated whole, then the response, its input items, its run
//! (and the run's lock thread) written in one transaction and the run queued. The answer is
//! the finished response (the default: the request waits for the run), its event stream
//! (`stream: true`), or the queued response at once (`background: true`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::{common, pins};
use super::{choice, context_params, current, input, mcp, stream, tools, wait};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::bus::Subscription;
use assistants_core::model::ids::ConversationId;
use assistants_core::model::ids::{now, ResponseId};
use assistants_core::model::response::{self, ResponseBinding, INCLUDE_FILE_SEARCH_RESULTS};
use assistants_core::model::{Item, ResponseObject, Run, RunStatus};
use assistants_core::store::StoreError;
use assistants_worker::transitions::{self, Pins};

use super::super::extract::Json;

/// `include[]` values OpenAI defines. Only file_search results change what this server
/// returns; the others name content it does not produce (logprobs, encrypted reasoning) or
/// already shows, and are accepted.
const INCLUDE: [&str; 7] = [
    INCLUDE_FILE_SEARCH_RESULTS,
    "web_search_call.action.sources",
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
    "message.input_image.image_url",
    "message.output_text.logprobs",
    "reasoning.encrypted_content",
];

/// How long a background response may take before it expires (a day).
const BACKGROUND_EXPIRY_SECS: i64 = 24 * 60 * 60;

/// `reasoning.effort` values OpenAI defines (sent upstream as `reasoning_effort`).
const EFFORTS: [&str; 7] = ["none", "minimal", "low", "medium", "high", "xhigh", "max"];

/// The fields of a create request. Unknown fields are ignored, as OpenAI's SDKs send new ones
/// before servers know them.
#[derive(Debug, Deserialize)]
pub(super) struct CreateResponse {
    model: Option<String>,
    input: Option<Value>,
    instructions: Option<Value>,
    previous_response_id: Option<String>,
    conversation: Option<Value>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_output_tokens: Option<i64>,
    max_tool_calls: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    text: Option<Value>,
    truncation: Option<String>,
    include: Option<Vec<String>>,
    metadata: Option<Value>,
    store: Option<bool>,
    background: Option<bool>,
    stream: Option<bool>,
    user: Option<String>,
    safety_identifier: Option<String>,
    prompt_cache_key: Option<String>,
    reasoning: Option<Value>,
}

/// A validated response, ready to write.
pub(super) struct Prepared {
    pub(super) doc: ResponseObject,
    run: Run,
    /// What its run is pinned to (the engine record is made from them when it is written).
    pins: Pins,
    /// Its input items (with their response and conversation set).
    pub(super) items: Vec<Item>,
    conversation: Option<ConversationId>,
    stream: bool,
    background: bool,
}

pub(super) async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CreateResponse>,
) -> ApiResult<Response> {
    let p = prepare(&state, &project, req).await?;
    let (id, stream, background) = (p.doc.id.clone(), p.stream, p.background);
    let tools = p.pins.tools.clone();
    let (doc, sub) = start(&state, &project, p, stream || !background).await?;
    match sub {
        None => Ok(axum::Json(doc.to_value()).into_response()),
        Some(sub) if stream => Ok(stream::respond(&state, &project, doc, tools, sub)),
        Some(sub) => {
            wait::until_ended(&state, &project, &id, sub, None).await?;
            let done = current::current(&state, &project, &id).await?;
            Ok(axum::Json(done.to_value()).into_response())
        }
    }
}

/// Validates a create request whole; nothing is written.
pub(super) async fn prepare(
    state: &AppState,
    project: &str,
    req: CreateResponse,
) -> ApiResult<Prepared> {
    let model = match req.model {
        Some(m) if !m.trim().is_empty() => m,
        Some(_) => {
            return Err(ApiError::invalid(
                "model",
                "Invalid 'model': must be a non-empty string.",
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "model",
                "Missing required parameter: 'model'.",
            ))
        }
    };
    let instructions = match req.instructions {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            common::max_chars("instructions", &Some(s.clone()), 256_000)?;
            Some(s)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "instructions",
                "Invalid type for 'instructions': expected a string.",
            ))
        }
    };
    let (conversation, previous) =
        context_params(state, project, req.conversation, req.previous_response_id).await?;
    let mut items = input(state, project, req.input).await?;
    if items.is_empty() && conversation.is_none() && previous.is_none() {
        return Err(ApiError::invalid(
            "input",
            "Missing required parameter: 'input'.",
        ));
    }
    let caller = common::plugin_caller(state, project).await?;
    let mut given_tools = req.tools.clone().unwrap_or(json!([]));
    super::super::mcp_tool::redact(&mut given_tools);
    let engine_tools = tools::translate(state, project, &caller, "tools", req.tools).await?;
    mcp::check_answers(
        state,
        project,
        conversation.as_ref(),
        previous.as_ref(),
        &items,
        &engine_tools.mcp,
    )
    .await?;
    let tool_choice = choice::tool_choice(req.tool_choice.clone(), &engine_tools)?;
    let temperature = common::number_in("temperature", req.temperature, 0.0, 2.0)?;
    let top_p = common::number_in("top_p", req.top_p, 0.0, 1.0)?;
    if let Some(n) = req.max_output_tokens.filter(|n| *n < 16) {
        return Err(ApiError::invalid(
            "max_output_tokens",
            format!("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {n} instead."),
        ));
    }
    if let Some(n) = req.max_tool_calls.filter(|n| *n < 1) {
        return Err(ApiError::invalid(
            "max_tool_calls",
            format!("Invalid 'max_tool_calls': expected an integer of at least 1, got {n}."),
        ));
    }
    let (text, response_format) = text_format(req.text)?;
    let truncation = match req.truncation.as_deref() {
        None | Some("disabled") => "disabled",
        Some("auto") => "auto",
        Some(t) => {
            return Err(ApiError::invalid(
                "truncation",
                format!("Invalid 'truncation': expected 'auto' or 'disabled', got '{t}'."),
            ))
        }
    };
    let include = req.include.unwrap_or_default();
    if let Some(bad) = include.iter().find(|i| !INCLUDE.contains(&i.as_str())) {
        return Err(ApiError::invalid(
            "include",
            format!(
                "Invalid 'include' value '{bad}'. Supported values: {}.",
                INCLUDE.join(", ")
            ),
        ));
    }
    let effort = reasoning_effort(req.reasoning.as_ref())?;
    let metadata = common::metadata("metadata", req.metadata)?;
    let background = req.background.unwrap_or(false);
    let store = req.store.unwrap_or(true);
    if background && !store {
        return Err(ApiError::invalid(
            "background",
            "Background responses must be stored: 'background' requires 'store' to be true.",
        ));
    }
    // The strategy: `metadata.strategy` (as on an assistant; documented extension), else the
    // server default.
    let strategy_id = metadata
        .get("strategy")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| state.settings.runs.default_strategy.clone());
    let strategy = pins::strategy(state, &caller, &strategy_id, "metadata.strategy", |id| {
        format!("The strategy '{id}' is not installed.")
    })?;
    let bindings = pins::tools(state, &caller, &engine_tools.tools, "tools")?;

    let id = ResponseId::new();
    let created_at = now();
    for item in &mut items {
        item.response_id = Some(id.clone());
        item.conversation_id = conversation.clone();
        item.created_at = created_at;
    }
    let mut doc = ResponseObject {
        id: id.clone(),
        created_at,
        fields: Default::default(),
    };
    for (k, v) in [
        ("object", json!("response")),
        (
            "status",
            json!(if background { "queued" } else { "in_progress" }),
        ),
        ("background", json!(background)),
        ("completed_at", Value::Null),
        ("error", Value::Null),
        ("incomplete_details", Value::Null),
        ("instructions", json!(instructions)),
        ("max_output_tokens", json!(req.max_output_tokens)),
        ("max_tool_calls", json!(req.max_tool_calls)),
        ("model", json!(model)),
        ("output", json!([])),
        (
            "parallel_tool_calls",
            json!(req.parallel_tool_calls.unwrap_or(true)),
        ),
        ("previous_response_id", json!(previous)),
        (
            "conversation",
            json!(conversation.as_ref().map(|c| json!({"id": c}))),
        ),
        (
            "reasoning",
            json!({"effort": req.reasoning.as_ref().and_then(|r| r.get("effort")), "summary": null}),
        ),
        ("service_tier", json!("default")),
        ("store", json!(store)),
        ("temperature", json!(temperature.unwrap_or(1.0))),
        ("text", text),
        ("tool_choice", req.tool_choice.unwrap_or(json!("auto"))),
        ("tools", given_tools),
        ("top_logprobs", json!(0)),
        ("top_p", json!(top_p.unwrap_or(1.0))),
        ("truncation", json!(truncation)),
        ("usage", Value::Null),
        ("user", json!(req.user)),
        ("safety_identifier", json!(req.safety_identifier)),
        ("prompt_cache_key", json!(req.prompt_cache_key)),
        ("metadata", json!(metadata)),
    ] {
        doc.set(k, v);
    }
    let run = Run {
        id: response::run_id(&id),
        object: "thread.run".into(),
        created_at,
        thread_id: response::lock_thread(&id, conversation.as_ref()),
        assistant_id: response::run_assistant(&id),
        status: RunStatus::Queued,
        required_action: None,
        last_error: None,
        // A background response is for work that takes long: it gets a day, not a run's
        // expiry (which a waiting client's request also bounds).
        expires_at: Some(
            created_at
                + if background {
                    state.settings.runs.expiry_secs.max(BACKGROUND_EXPIRY_SECS)
                } else {
                    state.settings.runs.expiry_secs
                },
        ),
        started_at: None,
        cancelled_at: None,
        failed_at: None,
        completed_at: None,
        incomplete_details: None,
        model,
        instructions: instructions.unwrap_or_default(),
        tools: engine_tools.tools,
        metadata,
        usage: None,
        temperature,
        top_p,
        max_prompt_tokens: None,
        max_completion_tokens: req.max_output_tokens,
        truncation_strategy: json!({"type": "auto", "last_messages": null}),
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        response_format,
        reasoning_effort: effort,
    };
    let pins = Pins {
        strategy: strategy.manifest.id.clone(),
        digest: strategy.digest.clone(),
        tools: bindings,
        vector_store_ids: engine_tools.vector_store_ids,
        code_file_ids: Some(
            engine_tools
                .code_file_ids
                .iter()
                .map(|f| f.to_string())
                .collect(),
        ),
        include_content: include.iter().any(|i| i == INCLUDE_FILE_SEARCH_RESULTS),
        response: Some(ResponseBinding {
            id: id.clone(),
            conversation: conversation.clone(),
            previous,
            include,
            background,
            max_tool_calls: req.max_tool_calls.map(|n| n.min(u32::MAX as i64) as u32),
            reasoning: Vec::new(),
            arguments: Default::default(),
            mcp: engine_tools
                .mcp
                .into_iter()
                .map(|mut server| {
                    // The record keeps the client's headers sealed for this response.
                    server.seal_headers(&state.seal, id.as_str());
                    server
                })
                .collect(),
            mcp_lists: Vec::new(),
            mcp_answers: Default::default(),
        }),
        mcp: Vec::new(),
    };

    Ok(Prepared {
        doc,
        run,
        pins,
        items,
        conversation,
        stream: req.stream.unwrap_or(false),
        background,
    })
}

/// Writes a prepared response — its lock thread, run, input items and row, in one
/// transaction — and queues its run; returns the response as written. With `listen`, the
/// run's events are subscribed to before the run can start, so a stream or a waiting request
/// misses none.
pub(super) async fn start(
    state: &AppState,
    project: &str,
    p: Prepared,
    listen: bool,
) -> ApiResult<(ResponseObject, Option<Subscription>)> {
    let Prepared {
        doc,
        mut run,
        pins,
        items,
        conversation,
        ..
    } = p;
    let engine = transitions::create(&mut run, pins);
    let mut tx = state.store.begin().await?;
    state
        .store
        .ensure_lock_thread_in(&mut tx, project, &run.thread_id)
        .await?;
    match state
        .store
        .insert_run_in(&mut tx, project, &run, &engine)
        .await
    {
        Err(StoreError::ThreadLocked { .. }) => {
            return Err(ApiError::invalid(
                "conversation",
                format!(
                    "Another response is in progress in conversation '{}'; wait for it to finish, then try again.",
                    conversation.map(|c| c.to_string()).unwrap_or_default()
                ),
            ))
        }
        other => other?,
    }
    state
        .store
        .insert_items_in(&mut tx, project, &items)
        .await?;
    state.store.insert_in(&mut tx, project, &doc, &[]).await?;
    let sub = if listen {
        Some(state.subscribe(&run.id).await?)
    } else {
        None
    };
    tx.commit().await?;
    state.runs.enqueue(&run.id).await;
    Ok((doc, sub))
}

/// `reasoning.effort`, checked; the model gets it as `reasoning_effort`.
fn reasoning_effort(v: Option<&Value>) -> ApiResult<Option<String>> {
    let effort = match v.and_then(|r| r.get("effort")) {
        None | Some(Value::Null) => return Ok(None),
        Some(e) => e,
    };
    match effort.as_str() {
        Some(e) if EFFORTS.contains(&e) => Ok(Some(e.to_string())),
        _ => Err(ApiError::invalid(
            "reasoning.effort",
            format!(
                "Invalid 'reasoning.effort': expected one of {}.",
                EFFORTS.join(", ")
            ),
        )),
    }
}

/// `text.format` → the `text` the response shows and the engine's `response_format`.
fn text_format(v: Option<Value>) -> ApiResult<(Value, Value)> {
    let format = match v.as_ref().and_then(|t| t.get("format")) {
        None | Some(Value::Null) => json!({"type": "text"}),
        Some(f) => f.clone(),
    };
    let verbosity = v
        .as_ref()
        .and_then(|t| t.get("verbosity"))
        .cloned()
        .unwrap_or(json!("medium"));
    let engine = match format.get("type").and_then(Value::as_str) {
        Some("text") => json!({"type": "text"}),
        Some("json_object") => json!({"type": "json_object"}),
        Some("json_schema") => {
            let name = format.get("name").and_then(Value::as_str).ok_or_else(|| {
                ApiError::invalid(
                    "text.format.name",
                    "Missing required parameter: 'text.format.name'.",
                )
            })?;
            let schema = format.get("schema").cloned().ok_or_else(|| {
                ApiError::invalid(
                    "text.format.schema",
                    "Missing required parameter: 'text.format.schema'.",
                )
            })?;
            if !schema.is_object() {
                return Err(ApiError::invalid(
                    "text.format.schema",
                    "Invalid type for 'text.format.schema': expected an object.",
                ));
            }
            let mut js = json!({"name": name, "schema": schema});
            for k in ["description", "strict"] {
                if let Some(x) = format.get(k) {
                    js[k] = x.clone();
                }
            }
            json!({"type": "json_schema", "json_schema": js})
        }
        _ => {
            return Err(ApiError::invalid(
                "text.format.type",
                "Invalid 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
            ))
        }
    };
    Ok((
        json!({"format": format, "verbosity": verbosity}),
        common::response_format(Some(engine))?,
    ))
}
