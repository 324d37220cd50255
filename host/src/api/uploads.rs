//! `/uploads`: large files in parts. Parts are stored as separate blobs as they arrive and
//! concatenated into a regular file on `complete`, which checks the declared size.

use assistants_core::model::{FileStatus, UploadStatus};
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::extract::{Json, Path};
use super::files::check_filename;
use super::form::Form;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use assistants_core::blobs::{file_key, part_key};
use assistants_core::model::ids::{now, FileId, UploadId, UploadPartId};
use assistants_core::model::{FileObject, Upload};
use assistants_core::store::Val;

/// How long an upload accepts parts, as in the real API.
const UPLOAD_TTL_SECS: i64 = 3600;

#[derive(Debug, Deserialize)]
struct CreateUpload {
    filename: String,
    purpose: String,
    bytes: i64,
    mime_type: String,
}

#[derive(Debug, Deserialize)]
struct CompleteUpload {
    part_ids: Vec<String>,
    #[allow(dead_code)] // Accepted for compatibility; parts are already checked by size and order.
    md5: Option<String>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/uploads", post(create))
        .route("/uploads/{upload_id}/parts", post(add_part))
        .route("/uploads/{upload_id}/complete", post(complete))
        .route("/uploads/{upload_id}/cancel", post(cancel))
}

/// The upload with `status` reflecting expiry.
async fn load(state: &AppState, project: &str, id: &str) -> ApiResult<Upload> {
    let mut u = state.store.get::<Upload>(project, id).await?;
    if u.status == UploadStatus::Pending && now() > u.expires_at {
        u.status = UploadStatus::Expired;
    }
    Ok(u)
}

fn require_pending(u: &Upload) -> ApiResult<()> {
    if u.status != UploadStatus::Pending {
        return Err(ApiError::bad_request(format!(
            "Upload {} is {} and no longer accepts changes.",
            u.id, u.status
        )));
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CreateUpload>,
) -> ApiResult<axum::Json<Upload>> {
    check_filename("filename", &req.filename)?;
    super::files::check_purpose(&req.purpose)?;
    let max = state.settings.max_upload_bytes as i64;
    if req.bytes <= 0 || req.bytes > max {
        return Err(ApiError::invalid(
            "bytes",
            format!("Invalid 'bytes': expected 1 to {max}, got {}.", req.bytes),
        ));
    }
    if req.mime_type.trim().is_empty() {
        return Err(ApiError::invalid(
            "mime_type",
            "Invalid 'mime_type': must be non-empty.",
        ));
    }
    // An upload that could never complete within the project's quotas is refused up front.
    super::quota::room_for_bytes(&state, &project, req.bytes as u64, true)
        .await?
        .require(req.bytes as u64)?;
    let created_at = now();
    let u = Upload {
        id: UploadId::new(),
        object: "upload".into(),
        bytes: req.bytes,
        created_at,
        filename: req.filename,
        purpose: req.purpose,
        status: UploadStatus::Pending,
        expires_at: created_at + UPLOAD_TTL_SECS,
        file: None,
        mime_type: req.mime_type,
    };
    state
        .store
        .insert(&project, &u, &[("expires_at", Val::Int(u.expires_at))])
        .await?;
    Ok(axum::Json(u))
}

async fn add_part(
    State(state): State<AppState>,
    Project(project): Project,
    Path(upload_id): Path<UploadId>,
    mut form: Form,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let result = add_part_to(&state, &project, &upload_id, &mut form).await;
    if result.is_err() {
        form.drain().await;
    }
    result.map(axum::Json)
}

async fn add_part_to(
    state: &AppState,
    project: &str,
    upload_id: &str,
    form: &mut Form,
) -> ApiResult<serde_json::Value> {
    let u = load(state, project, upload_id).await?;
    require_pending(&u)?;
    let part_id = UploadPartId::new();
    let key = part_key(upload_id, &part_id);
    let mut size = None;
    let streamed: ApiResult<()> = async {
        let limit = (u.bytes as u64).min(state.settings.max_upload_bytes);
        let room = super::quota::room_for_bytes(state, project, limit, false).await?;
        while let Some(part) = form.next_part().await? {
            if part.name() == Some("data") && size.is_none() {
                let stream = part.into_stream();
                let n = state
                    .blobs
                    .put_stream(&key, Box::pin(stream), room.limit)
                    .await
                    .map_err(|e| room.put_error("data", e))?;
                size = Some(n);
            } else {
                form.ignore(part).await?;
            }
        }
        Ok(())
    }
    .await;
    let created_at = now();
    let recorded = async {
        streamed?;
        let size =
            size.ok_or_else(|| ApiError::invalid("data", "Missing required parameter: 'data'."))?;
        if !state
            .store
            .insert_upload_part(upload_id, &part_id, created_at, size as i64, u.bytes)
            .await?
        {
            return Err(ApiError::invalid(
                "data",
                format!(
                    "The parts of upload {upload_id} would exceed its declared {} bytes.",
                    u.bytes
                ),
            ));
        }
        // A cancel or complete may have run while this part streamed in; it no longer counts.
        require_pending(&load(state, project, upload_id).await?)
    }
    .await;
    if let Err(e) = recorded {
        if size.is_some() {
            let _ = state.blobs.delete(&key).await;
        }
        return Err(e);
    }
    Ok(serde_json::json!({
        "id": part_id, "object": "upload.part", "created_at": created_at, "upload_id": upload_id,
    }))
}

async fn complete(
    State(state): State<AppState>,
    Project(project): Project,
    Path(upload_id): Path<UploadId>,
    Json(req): Json<CompleteUpload>,
) -> ApiResult<axum::Json<Upload>> {
    let u = load(&state, &project, &upload_id).await?;
    require_pending(&u)?;
    if req.part_ids.is_empty() {
        return Err(ApiError::invalid(
            "part_ids",
            "Invalid 'part_ids': at least one part is required.",
        ));
    }
    let known = state.store.upload_parts(&upload_id).await?;
    let mut total = 0i64;
    let mut seen = std::collections::HashSet::new();
    let mut parts = Vec::with_capacity(req.part_ids.len());
    for p in &req.part_ids {
        // An id of another kind is no part of this upload.
        let Some((id, size)) = UploadPartId::parse(p)
            .ok()
            .and_then(|id| known.get(id.as_str()).map(|size| (id, size)))
        else {
            return Err(ApiError::invalid(
                "part_ids",
                format!("Part '{p}' does not belong to upload {upload_id}."),
            ));
        };
        if !seen.insert(p) {
            return Err(ApiError::invalid(
                "part_ids",
                format!("Part '{p}' is listed twice."),
            ));
        }
        total += size;
        parts.push(id);
    }
    if total != u.bytes {
        return Err(ApiError::invalid(
            "part_ids",
            format!(
                "The parts add up to {total} bytes but the upload was created for {} bytes.",
                u.bytes
            ),
        ));
    }
    super::quota::room_for_file(&state, &project).await?;
    let file_id = FileId::new();
    let keys: Vec<String> = parts.iter().map(|p| part_key(&upload_id, p)).collect();
    let written = state.blobs.concat(&keys, &file_key(&file_id)).await?;
    let file = FileObject {
        id: file_id.clone(),
        object: "file".into(),
        bytes: written as i64,
        created_at: now(),
        expires_at: None,
        filename: u.filename.clone(),
        purpose: u.purpose.clone(),
        status: FileStatus::Processed,
        status_details: None,
    };
    // The file and the upload's completion commit together; a concurrent complete or cancel
    // that got there first wins and this attempt's bytes are removed.
    let done = async {
        let mut tx = state.store.begin().await?;
        let u = state
            .store
            .update_in::<Upload, ApiError>(&mut tx, &project, &upload_id, |u| {
                if u.status != UploadStatus::Pending {
                    return Err(ApiError::new(
                        ErrorKind::Conflict,
                        format!("Upload {} is already {}.", u.id, u.status),
                    ));
                }
                u.status = UploadStatus::Completed;
                u.file = Some(file.clone());
                Ok(())
            })
            .await?;
        state
            .store
            .insert_in(
                &mut tx,
                &project,
                &file,
                &[("purpose", Val::Text(file.purpose.clone()))],
            )
            .await?;
        tx.commit().await?;
        Ok::<_, ApiError>(u)
    }
    .await;
    match done {
        Ok(u) => {
            release_parts(&state, &upload_id).await;
            Ok(axum::Json(u))
        }
        Err(e) => {
            let _ = state.blobs.delete(&file_key(&file_id)).await;
            Err(e)
        }
    }
}

async fn cancel(
    State(state): State<AppState>,
    Project(project): Project,
    Path(upload_id): Path<UploadId>,
) -> ApiResult<axum::Json<Upload>> {
    let u = load(&state, &project, &upload_id).await?;
    require_pending(&u)?;
    let u = state
        .store
        .update::<Upload, ApiError>(&project, &upload_id, |u| {
            if u.status != UploadStatus::Pending {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!("Upload {} is already {}.", u.id, u.status),
                ));
            }
            u.status = UploadStatus::Cancelled;
            Ok(())
        })
        .await?;
    release_parts(&state, &upload_id).await;
    Ok(axum::Json(u))
}

/// Deletes a finished upload's part bytes and rows. Failures are only logged: the janitor
/// retries anything left once the upload has expired.
async fn release_parts(state: &AppState, upload_id: &str) {
    if let Err(e) = state
        .blobs
        .delete_prefix(&format!("uploads/{upload_id}"))
        .await
    {
        tracing::warn!(upload_id, error = %e, "could not delete upload parts; the janitor will");
        return;
    }
    if let Err(e) = state.store.delete_upload_parts(upload_id).await {
        tracing::warn!(upload_id, error = %e, "could not forget upload parts; the janitor will");
    }
}
