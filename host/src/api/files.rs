//! `/files`: multipart upload (streamed to the blob store), list, retrieve, delete, content.

use assistants_core::model::FileStatus;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::common::{self, ListQuery};
use super::extract::{Path, Query};
use super::form::Form;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::blobs::file_key;
use assistants_core::model::ids::{now, FileId};
use assistants_core::model::FileObject;
use assistants_core::store::Val;

/// Purposes a client may upload with.
pub const PURPOSES: &[&str] = &[
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

pub fn router() -> Router<AppState> {
    Router::new()
        // Uploads are read through `Form`, which streams the file part and bounds the rest;
        // axum's 2 MB body cap (for its own extractors) does not apply to it.
        .route("/files", get(list).post(create))
        .route("/files/{file_id}", get(retrieve).delete(remove))
        .route("/files/{file_id}/content", get(content))
}

pub fn check_purpose(p: &str) -> ApiResult<()> {
    if PURPOSES.contains(&p) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "purpose",
            format!(
                "Invalid value for 'purpose': '{p}'. Expected one of {}.",
                PURPOSES.join(", ")
            ),
        ))
    }
}

/// Rejects names that are empty, too long, or could be read as a path.
pub fn check_filename(param: &str, name: &str) -> ApiResult<()> {
    let bad = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(ApiError::invalid(
            param,
            format!(
                "Invalid filename '{}': it must be 1-255 bytes with no path separators or control characters.",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    mut form: Form,
) -> ApiResult<axum::Json<FileObject>> {
    let id = FileId::new();
    let key = file_key(&id);
    let mut purpose = None;
    let mut expires_seconds: Option<String> = None;
    let mut stored: Option<(String, u64)> = None;

    let outcome: ApiResult<()> = async {
        let room =
            super::quota::room_for_bytes(&state, &project, state.settings.max_upload_bytes, true)
                .await?;
        while let Some(part) = form.next_part().await? {
            match part.name().unwrap_or("") {
                "file" => {
                    if stored.is_some() {
                        return Err(ApiError::invalid(
                            "file",
                            "Only one 'file' part is allowed.",
                        ));
                    }
                    let filename = part.file_name().unwrap_or("").to_string();
                    check_filename("file", &filename)?;
                    let stream = part.into_stream();
                    let n = state
                        .blobs
                        .put_stream(&key, Box::pin(stream), room.limit)
                        .await
                        .map_err(|e| room.put_error("file", e))?;
                    stored = Some((filename, n));
                }
                "purpose" => purpose = Some(part.text("purpose").await?),
                "expires_after[seconds]" => {
                    expires_seconds = Some(part.text("expires_after.seconds").await?)
                }
                // Unknown parts are ignored, like unknown JSON keys.
                _ => form.ignore(part).await?,
            }
        }
        Ok(())
    }
    .await;
    if outcome.is_err() {
        form.drain().await;
    }

    let result = async {
        outcome?;
        let (filename, bytes) = stored.clone().ok_or_else(|| ApiError::invalid("file", "Missing required parameter: 'file'."))?;
        let purpose = purpose.ok_or_else(|| ApiError::invalid("purpose", "Missing required parameter: 'purpose'."))?;
        check_purpose(&purpose)?;
        let created_at = now();
        let expires_at = match expires_seconds {
            None => None,
            Some(s) => match s.trim().parse::<i64>() {
                Ok(n) if (3600..=2_592_000).contains(&n) => Some(created_at + n),
                _ => {
                    return Err(ApiError::invalid(
                        "expires_after.seconds",
                        "Invalid 'expires_after.seconds': expected an integer between 3600 and 2592000.",
                    ))
                }
            },
        };
        let file = FileObject {
            id: id.clone(),
            object: "file".into(),
            bytes: bytes as i64,
            created_at,
            expires_at,
            filename,
            purpose: purpose.clone(),
            status: FileStatus::Processed,
            status_details: None,
        };
        let expiry = ("expires_at", expires_at.map_or(Val::OptInt(None), |t| Val::OptInt(Some(t))));
        state.store.insert(&project, &file, &[("purpose", Val::Text(purpose)), expiry]).await?;
        Ok(file)
    }
    .await;

    match result {
        Ok(file) => Ok(axum::Json(file)),
        Err(e) => {
            // Nothing half-written survives a refused upload.
            if stored.is_some() {
                if let Err(cleanup) = state.blobs.delete(&key).await {
                    tracing::warn!(file_id = %id, error = %cleanup, "could not delete bytes of a refused upload");
                }
            }
            Err(e)
        }
    }
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let params = q.params(10_000, 10_000)?;
    let mut filters = Vec::new();
    if let Some(p) = q.purpose.filter(|p| !p.is_empty()) {
        filters.push(("purpose", Val::Text(p)));
    }
    let page = state
        .store
        .list_raw::<FileObject>(&project, None, filters, &params)
        .await?;
    Ok(common::list_envelope(page, |f| &f.id))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<FileId>,
) -> ApiResult<axum::Json<FileObject>> {
    Ok(axum::Json(
        state.store.get::<FileObject>(&project, &id).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<FileId>,
) -> ApiResult<axum::Json<Value>> {
    if !state.store.delete_file_everywhere(&project, &id).await? {
        return Err(ApiError::not_found("file", &id));
    }
    // (Search indexes of the stores it was in see their generation move and drop it.)
    // The row is gone first: a failed blob delete leaves an unreachable object, never a dangling file.
    if let Err(e) = state.blobs.delete(&file_key(&id)).await {
        tracing::warn!(file_id = %id, error = %e, "file deleted but its bytes could not be removed");
    }
    Ok(axum::Json(
        json!({"id": id, "object": "file", "deleted": true}),
    ))
}

async fn content(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<FileId>,
) -> ApiResult<Response> {
    let file = state.store.get::<FileObject>(&project, &id).await?;
    let stream = state.blobs.get_stream(&file_key(&id)).await?;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, file.bytes)
        .header(
            header::CONTENT_DISPOSITION,
            // RFC 5987 form: filenames may be any UTF-8, header values may not.
            format!(
                "attachment; filename*=UTF-8''{}",
                url::form_urlencoded::byte_serialize(file.filename.as_bytes()).collect::<String>()
            ),
        )
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal("building the download response", e))
}
