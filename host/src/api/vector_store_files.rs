//! `/vector_stores/{id}/files` and `/vector_stores/{id}/file_batches`: attaching files for
//! ingestion, their status, attributes and parsed content, and batches of them.
//!
//! A vector-store file's id is the file id. Attaching only records the file as `in_progress`;
//! the ingestion workers (see `assistants_core::ingest`) take it from there.

use assistants_core::model::IngestStatus;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{self, ListQuery};
use super::extract::{Json, Path, Query};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{now, FileBatchId, FileId, VectorStoreId};
use assistants_core::model::FileObject;
use assistants_core::model::VectorStoreDoc;
use assistants_core::store::vector_stores::VsFileRow;

#[derive(Debug, Deserialize)]
struct CreateFile {
    file_id: String,
    chunking_strategy: Option<Value>,
    attributes: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct UpdateAttributes {
    attributes: Value,
}

#[derive(Debug, Deserialize)]
struct CreateBatch {
    file_ids: Option<Vec<String>>,
    files: Option<Vec<CreateFile>>,
    chunking_strategy: Option<Value>,
    attributes: Option<Value>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vector_stores/{vs}/files", get(list).post(create))
        .route(
            "/vector_stores/{vs}/files/{file_id}",
            get(retrieve).post(update).delete(remove),
        )
        .route("/vector_stores/{vs}/files/{file_id}/content", get(content))
        .route("/vector_stores/{vs}/file_batches", post(create_batch))
        .route(
            "/vector_stores/{vs}/file_batches/{batch_id}",
            get(get_batch),
        )
        .route(
            "/vector_stores/{vs}/file_batches/{batch_id}/cancel",
            post(cancel_batch),
        )
        .route(
            "/vector_stores/{vs}/file_batches/{batch_id}/files",
            get(list_batch_files),
        )
}

fn wire(r: VsFileRow) -> Value {
    json!({
        "id": r.file_id,
        "object": "vector_store.file",
        "usage_bytes": r.usage_bytes,
        "created_at": r.created_at,
        "vector_store_id": r.vector_store_id,
        "status": r.status,
        "last_error": r.last_error,
        "chunking_strategy": r.chunking_strategy,
        "attributes": r.attributes.unwrap_or_else(|| json!({})),
    })
}

fn status_filter(f: &Option<String>) -> ApiResult<Option<IngestStatus>> {
    match f.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::invalid(
                "filter",
                format!("Invalid 'filter': '{s}'. Expected in_progress, completed, failed or cancelled."),
            )
        }),
    }
}

async fn require_store(state: &AppState, project: &str, vs: &str) -> ApiResult<()> {
    state.store.get::<VectorStoreDoc>(project, vs).await?;
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Path(vs): Path<VectorStoreId>,
    Json(req): Json<CreateFile>,
) -> ApiResult<axum::Json<Value>> {
    let strategy = common::chunking_strategy("chunking_strategy", req.chunking_strategy.as_ref())?;
    let attributes = common::attributes("attributes", req.attributes.as_ref())?;
    require_store(&state, &project, &vs).await?;
    super::quota::room_for_chunks(&state, &project).await?;
    let file_id =
        common::require_one::<FileObject>(&state.store, &project, "file_id", &req.file_id).await?;
    let row = state
        .store
        .attach_file(
            &project,
            &vs,
            &file_id,
            None,
            &strategy,
            attributes.as_ref(),
        )
        .await?;
    state.ingest.notify();
    Ok(axum::Json(wire(row)))
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    Path(vs): Path<VectorStoreId>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let params = q.params(20, 100)?;
    let status = status_filter(&q.filter)?;
    require_store(&state, &project, &vs).await?;
    let page = state
        .store
        .list_vs_files(&project, &vs, None, status, &params)
        .await?
        .map(wire);
    Ok(common::list_envelope(page, |v| {
        v["id"].as_str().unwrap_or_default()
    }))
}

async fn load(state: &AppState, project: &str, vs: &str, file_id: &str) -> ApiResult<VsFileRow> {
    require_store(state, project, vs).await?;
    state
        .store
        .vs_file(project, vs, file_id)
        .await?
        .ok_or_else(|| ApiError::not_found("vector store file", file_id))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, file_id)): Path<(VectorStoreId, FileId)>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(wire(
        load(&state, &project, &vs, &file_id).await?,
    )))
}

async fn update(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, file_id)): Path<(VectorStoreId, FileId)>,
    Json(req): Json<UpdateAttributes>,
) -> ApiResult<axum::Json<Value>> {
    let attrs =
        common::attributes("attributes", Some(&req.attributes))?.unwrap_or_else(|| json!({}));
    require_store(&state, &project, &vs).await?;
    let row = state
        .store
        .set_vs_file_attributes(&project, &vs, &file_id, &attrs)
        .await?
        .ok_or_else(|| ApiError::not_found("vector store file", &file_id))?;
    Ok(axum::Json(wire(row)))
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, file_id)): Path<(VectorStoreId, FileId)>,
) -> ApiResult<axum::Json<Value>> {
    require_store(&state, &project, &vs).await?;
    if !state.store.detach_file(&project, &vs, &file_id).await? {
        return Err(ApiError::not_found("vector store file", &file_id));
    }
    Ok(axum::Json(
        json!({"id": file_id, "object": "vector_store.file.deleted", "deleted": true}),
    ))
}

async fn content(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, file_id)): Path<(VectorStoreId, FileId)>,
) -> ApiResult<axum::Json<Value>> {
    let row = load(&state, &project, &vs, &file_id).await?;
    let data = match (row.status, state.store.file_text(&file_id).await?) {
        (IngestStatus::Completed, Some(text)) => vec![json!({"type": "text", "text": text})],
        _ => vec![],
    };
    Ok(axum::Json(json!({
        "object": "vector_store.file_content.page",
        "data": data,
        "has_more": false,
        "next_page": null,
    })))
}

/// A batch as the API reports it, or 404 if the store has no such batch in the project.
async fn batch_view(state: &AppState, project: &str, vs: &str, batch_id: &str) -> ApiResult<Value> {
    let (created_at, cancelled_at) = state
        .store
        .batch(project, vs, batch_id)
        .await?
        .ok_or_else(|| ApiError::not_found("vector store file batch", batch_id))?;
    let (counts, _) = state.store.file_counts(vs, Some(batch_id)).await?;
    // Python pollers wait on file_counts.in_progress, Node pollers on status: both settle together.
    let status = if cancelled_at.is_some() {
        IngestStatus::Cancelled
    } else if counts.in_progress > 0 {
        IngestStatus::InProgress
    } else if counts.total > 0 && counts.failed == counts.total {
        IngestStatus::Failed
    } else {
        IngestStatus::Completed
    };
    Ok(json!({
        "id": batch_id,
        "object": "vector_store.files_batch",
        "created_at": created_at,
        "vector_store_id": vs,
        "status": status,
        "file_counts": counts,
    }))
}

async fn create_batch(
    State(state): State<AppState>,
    Project(project): Project,
    Path(vs): Path<VectorStoreId>,
    Json(req): Json<CreateBatch>,
) -> ApiResult<axum::Json<Value>> {
    let strategy = common::chunking_strategy("chunking_strategy", req.chunking_strategy.as_ref())?;
    let attributes = common::attributes("attributes", req.attributes.as_ref())?;
    let mut files: Vec<(String, Value, Option<Value>)> = Vec::new();
    match (req.file_ids, req.files) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "files",
                "Give either 'file_ids' or 'files', not both.",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "file_ids",
                "Missing required parameter: 'file_ids'.",
            ))
        }
        (Some(ids), None) => {
            for id in ids {
                files.push((id, strategy.clone(), attributes.clone()));
            }
        }
        (None, Some(list)) => {
            for (i, f) in list.into_iter().enumerate() {
                let s = match f.chunking_strategy {
                    Some(s) => common::chunking_strategy(
                        &format!("files[{i}].chunking_strategy"),
                        Some(&s),
                    )?,
                    None => strategy.clone(),
                };
                let a =
                    common::attributes(&format!("files[{i}].attributes"), f.attributes.as_ref())?
                        .or_else(|| attributes.clone());
                files.push((f.file_id, s, a));
            }
        }
    }
    if files.is_empty() || files.len() > 2000 {
        return Err(ApiError::invalid(
            "file_ids",
            "Invalid 'file_ids': expected 1 to 2000 files.",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|(id, _, _)| seen.insert(id.clone()));
    require_store(&state, &project, &vs).await?;
    super::quota::room_for_chunks(&state, &project).await?;
    let ids: Vec<String> = files.iter().map(|(id, _, _)| id.clone()).collect();
    let ids =
        common::require_existing::<FileObject>(&state.store, &project, "file_ids", &ids).await?;
    let files: Vec<(FileId, Value, Option<Value>)> = ids
        .into_iter()
        .zip(files)
        .map(|(id, (_, s, a))| (id, s, a))
        .collect();
    let batch_id = FileBatchId::new();
    let created_at = now();
    state
        .store
        .create_batch(&project, &vs, &batch_id, created_at, &files)
        .await?;
    state.ingest.notify();
    Ok(axum::Json(
        batch_view(&state, &project, &vs, &batch_id).await?,
    ))
}

async fn get_batch(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, batch_id)): Path<(VectorStoreId, FileBatchId)>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(
        batch_view(&state, &project, &vs, &batch_id).await?,
    ))
}

async fn cancel_batch(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, batch_id)): Path<(VectorStoreId, FileBatchId)>,
) -> ApiResult<axum::Json<Value>> {
    if !state.store.cancel_batch(&project, &vs, &batch_id).await? {
        // Unknown (404 from the view) or finished, which cannot be cancelled any more.
        batch_view(&state, &project, &vs, &batch_id).await?;
        return Err(ApiError::bad_request(format!(
            "Batch {batch_id} has already finished and cannot be cancelled."
        )));
    }
    Ok(axum::Json(
        batch_view(&state, &project, &vs, &batch_id).await?,
    ))
}

async fn list_batch_files(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, batch_id)): Path<(VectorStoreId, FileBatchId)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let params = q.params(20, 100)?;
    let status = status_filter(&q.filter)?;
    state
        .store
        .batch(&project, &vs, &batch_id)
        .await?
        .ok_or_else(|| ApiError::not_found("vector store file batch", &batch_id))?;
    let page = state
        .store
        .list_vs_files(&project, &vs, Some(&batch_id), status, &params)
        .await?
        .map(wire);
    Ok(common::list_envelope(page, |v| {
        v["id"].as_str().unwrap_or_default()
    }))
}
