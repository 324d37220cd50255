//! `/threads/{thread_id}/messages`: create, list (with `run_id`), retrieve, modify, delete.

use assistants_core::model::MessageStatus;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{self, ListQuery, Patch};
use super::extract::{Json, Path, Query};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{now, MessageId, RunId, ThreadId};
use assistants_core::model::FileObject;
use assistants_core::model::Message;
use assistants_core::model::Thread;
use assistants_core::store::{Tx, Val};

#[derive(Debug, Deserialize)]
pub struct CreateMessage {
    pub role: String,
    pub content: Value,
    pub attachments: Option<Value>,
    pub metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ModifyMessage {
    #[serde(default)]
    metadata: Patch<Value>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/threads/{thread_id}/messages", get(list).post(create))
        .route(
            "/threads/{thread_id}/messages/{message_id}",
            get(retrieve).post(modify).delete(remove),
        )
}

/// The most characters of text a message may hold, as in OpenAI's API.
pub const MAX_CONTENT_CHARS: usize = 256_000;

/// Turns request content (a string or an array of parts) into stored content parts.
fn content_parts(param: &str, content: Value) -> ApiResult<(Vec<Value>, Vec<String>)> {
    let mut referenced = Vec::new();
    let text = |s: String| json!({"type": "text", "text": {"value": s, "annotations": []}});
    let parts = match content {
        Value::String(s) => vec![text(s)],
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let at = format!("{param}[{i}]");
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => match item.get("text") {
                        Some(Value::String(s)) => out.push(text(s.clone())),
                        _ => {
                            return Err(ApiError::invalid(
                                format!("{at}.text"),
                                format!("Invalid '{at}.text': expected a string."),
                            ))
                        }
                    },
                    Some("image_file") => {
                        let id = item
                            .get("image_file")
                            .and_then(|f| f.get("file_id"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                ApiError::invalid(
                                    format!("{at}.image_file.file_id"),
                                    format!(
                                        "Missing required parameter: '{at}.image_file.file_id'."
                                    ),
                                )
                            })?;
                        referenced.push(id.to_string());
                        out.push(item);
                    }
                    Some("image_url") => {
                        let url = item
                            .get("image_url")
                            .and_then(|f| f.get("url"))
                            .and_then(Value::as_str);
                        if !url.is_some_and(|u| {
                            u.starts_with("http://")
                                || u.starts_with("https://")
                                || u.starts_with("data:")
                        }) {
                            return Err(ApiError::invalid(format!("{at}.image_url.url"), format!("Invalid '{at}.image_url.url': expected an http(s) or data URL.")));
                        }
                        out.push(item);
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            format!("{at}.type"),
                            format!(
                            "Invalid '{at}.type': expected 'text', 'image_file' or 'image_url'."
                        ),
                        ))
                    }
                }
            }
            out
        }
        Value::Array(_) => {
            return Err(ApiError::invalid(
                param,
                format!("Invalid '{param}': expected a non-empty array."),
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                param,
                format!(
                    "Invalid type for '{param}': expected a string or an array of content parts."
                ),
            ))
        }
    };
    let chars: usize = parts
        .iter()
        .filter_map(|p| p["text"]["value"].as_str())
        .map(|t| t.chars().count())
        .sum();
    if chars > MAX_CONTENT_CHARS {
        return Err(ApiError::invalid(
            param,
            format!(
                "Invalid '{param}': string too long. Expected a string with maximum length \
                 {MAX_CONTENT_CHARS}, but got a string with length {chars} instead."
            ),
        )
        .with_code("string_above_max_length"));
    }
    Ok((parts, referenced))
}

fn attachments(param: &str, v: Option<Value>) -> ApiResult<(Vec<Value>, Vec<String>)> {
    let list = match v {
        None | Some(Value::Null) => return Ok((Vec::new(), Vec::new())),
        Some(Value::Array(l)) => l,
        Some(_) => {
            return Err(ApiError::invalid(
                param,
                format!("Invalid type for '{param}': expected an array."),
            ))
        }
    };
    let mut ids = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let at = format!("{param}[{i}]");
        let id = a.get("file_id").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                format!("{at}.file_id"),
                format!("Missing required parameter: '{at}.file_id'."),
            )
        })?;
        if let Some(tools) = a.get("tools").filter(|t| !t.is_null()) {
            let ok = tools.as_array().is_some_and(|ts| {
                ts.iter().all(|t| {
                    matches!(
                        t.get("type").and_then(Value::as_str),
                        Some("file_search" | "code_interpreter")
                    )
                })
            });
            if !ok {
                return Err(ApiError::invalid(format!("{at}.tools"), format!("Invalid '{at}.tools': expected tools of type 'file_search' or 'code_interpreter'.")));
            }
        }
        ids.push(id.to_string());
    }
    Ok((list, ids))
}

/// Validates a message request into a ready-to-insert message (no writes).
pub async fn prepare(
    state: &AppState,
    project: &str,
    thread_id: &ThreadId,
    req: CreateMessage,
    param: &str,
) -> ApiResult<Message> {
    let p = |s: &str| {
        if param.is_empty() {
            s.to_string()
        } else {
            format!("{param}.{s}")
        }
    };
    if req.role != "user" && req.role != "assistant" {
        return Err(ApiError::invalid(
            p("role"),
            format!(
                "Invalid value for '{}': expected 'user' or 'assistant'.",
                p("role")
            ),
        ));
    }
    let (content, mut files) = content_parts(&p("content"), req.content)?;
    let (attachments, attached) = attachments(&p("attachments"), req.attachments)?;
    files.extend(attached);
    common::require_existing::<FileObject>(&state.store, project, &p("attachments"), &files)
        .await?;
    let created_at = now();
    Ok(Message {
        id: MessageId::new(),
        object: "thread.message".into(),
        created_at,
        thread_id: thread_id.clone(),
        status: MessageStatus::Completed,
        incomplete_details: None,
        completed_at: Some(created_at),
        incomplete_at: None,
        role: req.role,
        content,
        assistant_id: None,
        run_id: None,
        attachments,
        metadata: common::metadata(&p("metadata"), req.metadata)?,
    })
}

/// Inserts a prepared message inside a transaction.
pub async fn insert_in(state: &AppState, tx: &mut Tx, project: &str, m: &Message) -> ApiResult<()> {
    state.store.insert_in(tx, project, m, &[]).await?;
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Path(thread_id): Path<ThreadId>,
    Json(req): Json<CreateMessage>,
) -> ApiResult<axum::Json<Message>> {
    let m = prepare(&state, &project, &thread_id, req, "").await?;
    let files = super::attachments::file_search_files(&m);
    if !files.is_empty() {
        // The message and its files' place in the thread's vector store, in one transaction.
        let mut tx = state.store.begin().await?;
        // attach_to_thread_store locks the thread row first (a 404 if it is not ours); the
        // lock check then reads through the same transaction.
        super::attachments::attach_to_thread_store(&state, &mut tx, &project, &thread_id, &files)
            .await?;
        if let Some(run) = state
            .store
            .active_run_in(&mut tx, &project, &thread_id)
            .await?
        {
            return Err(ApiError::thread_locked(&thread_id, &run));
        }
        insert_in(&state, &mut tx, &project, &m).await?;
        tx.commit().await?;
        state.ingest.notify();
        return Ok(axum::Json(m));
    }
    // The thread lock, in the same statement as the insert: no message lands in a thread while
    // a run is active there (on SQLite the single writer makes this exact).
    let inserted = state
        .store
        .insert_under_unless::<Thread, _>(
            &project,
            &thread_id,
            &m,
            &[],
            assistants_core::store::runs::NO_ACTIVE_RUN,
        )
        .await?;
    if inserted == 0 {
        return Err(match state.store.active_run(&project, &thread_id).await? {
            Some(run) => ApiError::thread_locked(&thread_id, &run),
            None => ApiError::not_found("thread", &thread_id),
        });
    }
    Ok(axum::Json(m))
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    Path(thread_id): Path<ThreadId>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let params = q.params(20, 100)?;
    let mut filters = vec![];
    let run_id = match q.run_id.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(RunId::parse(r).map_err(|_| {
            ApiError::invalid(
                "run_id",
                format!("Invalid 'run_id': '{}'.", r.escape_debug()),
            )
        })?),
    };
    if let Some(run) = run_id {
        filters.push(("run_id", Val::Text(run.into())));
    }
    common::require_thread(&state, &project, &thread_id).await?;
    let page = state
        .store
        .list_raw::<Message>(&project, Some(("thread_id", &thread_id)), filters, &params)
        .await?;
    Ok(common::list_envelope(page, |m| &m.id))
}

async fn get_in_thread(
    state: &AppState,
    project: &str,
    thread_id: &str,
    id: &str,
) -> ApiResult<Message> {
    common::require_thread(state, project, thread_id).await?;
    let m = state.store.get::<Message>(project, id).await?;
    if m.thread_id != thread_id {
        return Err(ApiError::not_found("message", id));
    }
    Ok(m)
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, id)): Path<(ThreadId, MessageId)>,
) -> ApiResult<axum::Json<Message>> {
    Ok(axum::Json(
        get_in_thread(&state, &project, &thread_id, &id).await?,
    ))
}

async fn modify(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, id)): Path<(ThreadId, MessageId)>,
    Json(req): Json<ModifyMessage>,
) -> ApiResult<axum::Json<Message>> {
    let metadata = common::metadata_patch(req.metadata)?;
    common::require_thread(&state, &project, &thread_id).await?;
    let m = state
        .store
        .update::<Message, ApiError>(&project, &id, move |m| {
            if m.thread_id != thread_id {
                return Err(ApiError::not_found("message", &m.id));
            }
            if let Some(md) = metadata {
                m.metadata = md;
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(m))
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path((thread_id, id)): Path<(ThreadId, MessageId)>,
) -> ApiResult<axum::Json<Value>> {
    get_in_thread(&state, &project, &thread_id, &id).await?;
    state.store.delete::<Message>(&project, &id).await?;
    Ok(axum::Json(
        json!({"id": id, "object": "thread.message.deleted", "deleted": true}),
    ))
}
