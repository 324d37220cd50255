//! `/vector_stores`: create (attaching files), list, retrieve, modify, delete, and search.
//!
//! `file_counts`, `usage_bytes` and `status` are derived from the store's files on every read.

use assistants_core::model::VectorStoreStatus;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{self, ListQuery, Metadata, Patch};
use super::extract::{Json, Path, Query};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{now, FileId, VectorStoreId};
use assistants_core::model::FileObject;
use assistants_core::model::VectorStoreDoc;
use assistants_core::search::{Filter, SearchRequest, MAX_QUERIES, MAX_QUERY_BYTES};
use assistants_core::store::{Tx, Val};

#[derive(Debug, Serialize)]
pub struct VectorStore {
    pub id: VectorStoreId,
    pub object: &'static str,
    pub created_at: i64,
    pub name: Option<String>,
    pub usage_bytes: i64,
    pub file_counts: assistants_core::store::vector_stores::FileCounts,
    pub status: VectorStoreStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<Value>,
    pub expires_at: Option<i64>,
    pub last_active_at: Option<i64>,
    pub metadata: Metadata,
}

#[derive(Debug, Deserialize)]
struct CreateVectorStore {
    file_ids: Option<Vec<String>>,
    name: Option<String>,
    expires_after: Option<Value>,
    chunking_strategy: Option<Value>,
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ModifyVectorStore {
    #[serde(default)]
    name: Patch<String>,
    #[serde(default)]
    expires_after: Patch<Value>,
    #[serde(default)]
    metadata: Patch<Value>,
}

#[derive(Debug, Deserialize)]
struct SearchBody {
    query: Value,
    max_num_results: Option<i64>,
    filters: Option<Value>,
    ranking_options: Option<Value>,
    #[allow(dead_code)]
    // Query rewriting needs an LLM; accepted and ignored like the real API's default.
    rewrite_query: Option<bool>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vector_stores", get(list).post(create))
        .route(
            "/vector_stores/{vector_store_id}",
            get(retrieve).post(modify).delete(remove),
        )
        .route("/vector_stores/{vector_store_id}/search", post(search))
}

fn expires_after(v: Option<Value>) -> ApiResult<Option<Value>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let anchor_ok = v.get("anchor").and_then(Value::as_str) == Some("last_active_at");
    let days = v
        .get("days")
        .and_then(Value::as_i64)
        .filter(|d| (1..=365).contains(d));
    match (anchor_ok, days) {
        (true, Some(d)) => Ok(Some(json!({"anchor": "last_active_at", "days": d}))),
        _ => Err(ApiError::invalid(
            "expires_after",
            "Invalid 'expires_after': expected {\"anchor\": \"last_active_at\", \"days\": 1..365}.",
        )),
    }
}

/// Reads a store with its derived fields.
/// The 400 for using a store past its `expires_after`.
pub fn expired(id: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Vector store {id} has expired; create a new one with the same files."
    ))
}

pub async fn load(state: &AppState, project: &str, id: &str) -> ApiResult<VectorStore> {
    let doc = state.store.get::<VectorStoreDoc>(project, id).await?;
    view(state, doc).await
}

async fn view(state: &AppState, doc: VectorStoreDoc) -> ApiResult<VectorStore> {
    let (counts, usage_bytes) = state.store.file_counts(&doc.id, None).await?;
    let last_active_at = state.store.vs_last_active(&doc.id).await?;
    let expires_at = assistants_core::store::vector_stores::expires_at(
        doc.expires_after.as_ref(),
        last_active_at,
    );
    let status = if expires_at.is_some_and(|t| now() > t) {
        VectorStoreStatus::Expired
    } else if counts.in_progress > 0 {
        VectorStoreStatus::InProgress
    } else {
        VectorStoreStatus::Completed
    };
    Ok(VectorStore {
        id: doc.id,
        object: "vector_store",
        created_at: doc.created_at,
        name: doc.name,
        usage_bytes,
        file_counts: counts,
        status,
        expires_after: doc.expires_after,
        expires_at,
        last_active_at: Some(last_active_at),
        metadata: doc.metadata,
    })
}

/// Creates a store with `file_ids` attached, inside the caller's transaction. The caller has
/// checked the files exist (`common::require_existing`) and notifies ingestion after commit.
pub async fn create_store_in(
    state: &AppState,
    tx: &mut Tx,
    project: &str,
    name: Option<String>,
    metadata: Metadata,
    expires_after: Option<Value>,
    file_ids: &[FileId],
    strategy: &Value,
) -> ApiResult<VectorStoreDoc> {
    let created_at = now();
    let doc = VectorStoreDoc {
        id: VectorStoreId::new(),
        created_at,
        name,
        metadata,
        expires_after,
    };
    state
        .store
        .insert_in(
            tx,
            project,
            &doc,
            &[("last_active_at", Val::Int(created_at))],
        )
        .await?;
    for f in file_ids {
        state
            .store
            .attach_file_in(tx, project, &doc.id, f, None, strategy, None)
            .await?;
    }
    state.store.touch_store_in(tx, &doc.id).await?;
    Ok(doc)
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CreateVectorStore>,
) -> ApiResult<axum::Json<VectorStore>> {
    let metadata = common::metadata("metadata", req.metadata)?;
    let expires = expires_after(req.expires_after)?;
    common::max_chars("name", &req.name, 256)?;
    let file_ids = req.file_ids.unwrap_or_default();
    if file_ids.len() > 500 {
        return Err(ApiError::invalid(
            "file_ids",
            "Invalid 'file_ids': at most 500 files are allowed.",
        ));
    }
    let strategy = common::chunking_strategy("chunking_strategy", req.chunking_strategy.as_ref())?;
    let file_ids =
        common::require_existing::<FileObject>(&state.store, &project, "file_ids", &file_ids)
            .await?;
    if !file_ids.is_empty() {
        super::quota::room_for_chunks(&state, &project).await?;
    }
    let mut tx = state.store.begin().await?;
    let doc = create_store_in(
        &state, &mut tx, &project, req.name, metadata, expires, &file_ids, &strategy,
    )
    .await?;
    tx.commit().await?;
    if !file_ids.is_empty() {
        state.ingest.notify();
    }
    Ok(axum::Json(view(&state, doc).await?))
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let page = state
        .store
        .list::<VectorStoreDoc>(&project, None, vec![], &q.params(20, 100)?)
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for d in page.items {
        items.push(view(&state, d).await?);
    }
    let page = assistants_core::store::Page {
        items,
        has_more: page.has_more,
    };
    Ok(common::list_envelope(page, |v| &v.id))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<VectorStoreId>,
) -> ApiResult<axum::Json<VectorStore>> {
    Ok(axum::Json(load(&state, &project, &id).await?))
}

async fn modify(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<VectorStoreId>,
    Json(req): Json<ModifyVectorStore>,
) -> ApiResult<axum::Json<VectorStore>> {
    let metadata = common::metadata_patch(req.metadata)?;
    if let Patch::Value(n) = &req.name {
        common::max_chars("name", &Some(n.clone()), 256)?;
    }
    let expires = match req.expires_after {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(v) => Some(expires_after(Some(v))?),
    };
    let doc = state
        .store
        .update::<VectorStoreDoc, ApiError>(&project, &id, move |d| {
            req.name.apply(&mut d.name);
            if let Some(m) = metadata {
                d.metadata = m;
            }
            if let Some(e) = expires {
                d.expires_after = e;
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(view(&state, doc).await?))
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<VectorStoreId>,
) -> ApiResult<axum::Json<Value>> {
    let Some(crawled) = state.store.delete_vector_store(&project, &id).await? else {
        return Err(ApiError::not_found("vector store", &id));
    };
    state.blobs.delete_files(&crawled).await;
    state.search.forget(&id).await;
    Ok(axum::Json(
        json!({"id": id, "object": "vector_store.deleted", "deleted": true}),
    ))
}

async fn search(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<VectorStoreId>,
    Json(req): Json<SearchBody>,
) -> ApiResult<axum::Json<Value>> {
    let queries: Vec<String> = match &req.query {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|q| q.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::invalid(
                    "query",
                    "Invalid 'query': expected a string or an array of strings.",
                )
            })?,
        _ => {
            return Err(ApiError::invalid(
                "query",
                "Invalid 'query': expected a string or an array of strings.",
            ))
        }
    };
    if queries.len() > MAX_QUERIES {
        return Err(ApiError::invalid(
            "query",
            format!("Invalid 'query': at most {MAX_QUERIES} queries are allowed."),
        ));
    }
    if queries.iter().any(|q| q.len() > MAX_QUERY_BYTES) {
        return Err(ApiError::invalid(
            "query",
            format!("Invalid 'query': a query may be at most {MAX_QUERY_BYTES} bytes long."),
        ));
    }
    if queries.iter().all(|q| q.trim().is_empty()) {
        return Err(ApiError::invalid(
            "query",
            "Invalid 'query': must not be empty.",
        ));
    }
    let max = req.max_num_results.unwrap_or(10);
    if !(1..=50).contains(&max) {
        return Err(ApiError::invalid(
            "max_num_results",
            "Invalid 'max_num_results': expected an integer between 1 and 50.",
        ));
    }
    // `ranker: "none"` re-ranks no oversampled vector candidates (less work, rougher recall).
    let (threshold, rerank) = match req.ranking_options.as_ref().filter(|v| !v.is_null()) {
        Some(r) => {
            let r = super::tool_list::ranking_options(
                "ranking_options",
                r,
                &["none", "auto", "default-2024-11-15"],
            )?;
            (r.threshold, r.ranker != "none")
        }
        None => (0.0, true),
    };
    let filter = req
        .filters
        .as_ref()
        .filter(|v| !v.is_null())
        .map(|f| Filter::parse("filters", f))
        .transpose()?;
    let vs = state.store.get::<VectorStoreDoc>(&project, &id).await?;
    if state
        .store
        .vs_expires_at(&vs.id)
        .await?
        .is_some_and(|t| now() > t)
    {
        return Err(expired(&vs.id));
    }
    state.store.mark_store_active(&vs.id).await?;
    let hits = state
        .search
        .search(
            &state.store,
            &vs.id,
            &SearchRequest {
                queries: &queries,
                max_results: max as usize,
                threshold,
                filter: filter.as_ref(),
                rerank,
                query_vector: &Default::default(),
            },
        )
        .await?;
    let data: Vec<Value> = hits
        .into_iter()
        .map(|h| {
            json!({
                "file_id": h.file_id,
                "filename": h.filename,
                "score": h.score,
                "attributes": h.attributes.unwrap_or_else(|| json!({})),
                "content": [{"type": "text", "text": h.text}],
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": data,
        "has_more": false,
        "next_page": null,
    })))
}
