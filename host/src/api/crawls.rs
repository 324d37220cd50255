//! `/vector_stores/{id}/crawls`: web sites crawled into a vector store (an extension of the
//! API, shaped like file batches). Creating one records it with its root URLs queued; the
//! crawl workers (`assistants_core::crawl::worker`) fetch the pages through the `crawler`
//! component and attach each as a file with its `url`, `title`, `crawled_at` and `depth`.

use assistants_core::crawl::spec::{CrawlRequest, CrawlSpec};
use assistants_core::crawl::CRAWLER;
use assistants_core::model::ids::{CrawlId, VectorStoreId};
use assistants_core::model::{CrawlStatus, VectorStoreDoc};
use assistants_core::plugins::Plugin;
use assistants_core::store::crawls::{CrawlRow, PageRow};
use assistants_core::store::Page;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{self, ListQuery};
use super::extract::{Json, Path, Query};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vector_stores/{vs}/crawls", get(list).post(create))
        .route("/vector_stores/{vs}/crawls/{crawl_id}", get(retrieve))
        .route("/vector_stores/{vs}/crawls/{crawl_id}/cancel", post(cancel))
        .route(
            "/vector_stores/{vs}/crawls/{crawl_id}/recrawl",
            post(recrawl),
        )
        .route("/vector_stores/{vs}/crawls/{crawl_id}/pages", get(pages))
}

/// A crawl as the API shows it: its options, its pass, counts of its pages and of its files'
/// ingestion.
async fn view(state: &AppState, row: CrawlRow) -> ApiResult<Value> {
    let pages = state.store.page_counts(&row).await?;
    let files = state.store.crawl_file_counts(&row).await?;
    // Pollers wait for `completed` to search: a pass whose pages are still being ingested
    // is not done yet.
    let status = match row.status {
        CrawlStatus::Completed if files.in_progress > 0 => CrawlStatus::InProgress,
        s => s,
    };
    let spec = &row.spec;
    Ok(json!({
        "id": row.id,
        "object": "vector_store.crawl",
        "created_at": row.created_at,
        "vector_store_id": row.vector_store_id,
        "status": status,
        "root_urls": spec.root_urls,
        "max_depth": spec.max_depth,
        "max_pages": spec.max_pages,
        "same_domain": spec.same_domain,
        "include_patterns": spec.include_patterns,
        "exclude_patterns": spec.exclude_patterns,
        "recrawl_interval_seconds": spec.recrawl_interval_seconds,
        "chunking_strategy": spec.chunking_strategy,
        "pass": row.pass,
        "pass_started_at": row.pass_started_at,
        "pass_ended_at": row.pass_ended_at,
        "next_crawl_at": row.next_pass_at,
        "page_counts": pages,
        "file_counts": files,
        "last_error": row.last_error,
    }))
}

fn page_view(p: PageRow) -> Value {
    json!({
        "object": "vector_store.crawl.page",
        "url": p.url,
        "depth": p.depth,
        "status": p.status,
        "reason": p.reason,
        "file_id": p.file_id.filter(|_| p.file_attached),
        "title": p.title,
        "crawled_at": p.crawled_at,
    })
}

/// The crawler component, loaded once the operator grants it sites, and usable by `project`.
async fn crawler(state: &AppState, project: &str) -> ApiResult<std::sync::Arc<Plugin>> {
    let crawler = state.plugins.get(CRAWLER).ok_or_else(|| {
        ApiError::bad_request(
            "Crawls need the crawler component, which this server loads once its operator \
             grants it the sites to crawl ([plugins.grants.crawler] hosts = [...]).",
        )
    })?;
    if !crawler.allows(&common::plugin_caller(state, project).await?) {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "This project may not crawl: the operator's grant of the crawler names other projects.",
        ));
    }
    Ok(crawler)
}

async fn load(state: &AppState, project: &str, vs: &str, id: &str) -> ApiResult<CrawlRow> {
    state.store.get::<VectorStoreDoc>(project, vs).await?;
    state
        .store
        .crawl(project, vs, id)
        .await?
        .ok_or_else(|| ApiError::not_found("vector store crawl", id))
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Path(vs): Path<VectorStoreId>,
    Json(req): Json<CrawlRequest>,
) -> ApiResult<axum::Json<Value>> {
    let chunking = common::chunking_strategy("chunking_strategy", req.chunking_strategy.as_ref())?;
    let spec =
        CrawlSpec::validate(req, chunking).map_err(|e| ApiError::invalid(e.param, e.message))?;
    state.store.get::<VectorStoreDoc>(&project, &vs).await?;
    let crawler = crawler(&state, &project).await?;
    for (i, root) in spec.root_urls.iter().enumerate() {
        let url = url::Url::parse(root).map_err(|e| ApiError::internal("a validated URL", e))?;
        let (host, port) = (
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0),
        );
        if !crawler.may_reach(host, port) {
            return Err(ApiError::invalid(
                format!("root_urls[{i}]"),
                format!(
                    "Invalid 'root_urls[{i}]': {host} is not among the sites the operator \
                     grants the crawler ([plugins.grants.crawler] hosts)."
                ),
            ));
        }
    }
    super::quota::room_for_chunks(&state, &project).await?;
    let id = CrawlId::new();
    state.store.create_crawl(&project, &vs, &id, &spec).await?;
    state.crawls.notify();
    Ok(axum::Json(
        view(&state, load(&state, &project, &vs, &id).await?).await?,
    ))
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    Path(vs): Path<VectorStoreId>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let params = q.params(20, 100)?;
    state.store.get::<VectorStoreDoc>(&project, &vs).await?;
    let page = state.store.list_crawls(&project, &vs, &params).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for row in page.items {
        items.push(view(&state, row).await?);
    }
    let page = Page {
        items,
        has_more: page.has_more,
    };
    Ok(common::list_envelope(page, |v| {
        v["id"].as_str().unwrap_or_default()
    }))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, id)): Path<(VectorStoreId, CrawlId)>,
) -> ApiResult<axum::Json<Value>> {
    let row = load(&state, &project, &vs, &id).await?;
    Ok(axum::Json(view(&state, row).await?))
}

async fn cancel(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, id)): Path<(VectorStoreId, CrawlId)>,
) -> ApiResult<axum::Json<Value>> {
    load(&state, &project, &vs, &id).await?;
    if !state.store.cancel_crawl(&project, &vs, &id).await? {
        return Err(ApiError::bad_request(format!(
            "Crawl {id} has finished with no re-crawl due, or was cancelled; there is nothing to cancel."
        )));
    }
    Ok(axum::Json(
        view(&state, load(&state, &project, &vs, &id).await?).await?,
    ))
}

/// Starts another pass now: changed pages are replaced, pages gone are removed.
async fn recrawl(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, id)): Path<(VectorStoreId, CrawlId)>,
) -> ApiResult<axum::Json<Value>> {
    let row = load(&state, &project, &vs, &id).await?;
    crawler(&state, &project).await?;
    if !state.store.start_pass(&project, &vs, &id).await? {
        let why = match row.status {
            CrawlStatus::Cancelled => "was cancelled; create a new crawl instead",
            _ => "is in progress",
        };
        return Err(ApiError::bad_request(format!(
            "Crawl {id} {why}; a re-crawl starts when no pass is running."
        )));
    }
    state.crawls.notify();
    Ok(axum::Json(
        view(&state, load(&state, &project, &vs, &id).await?).await?,
    ))
}

#[derive(Debug, Deserialize)]
struct PagesQuery {
    limit: Option<String>,
    /// The URL of the last page of the previous page of results.
    after: Option<String>,
}

/// The URLs the crawl reached in the order it found them, with what became of each.
async fn pages(
    State(state): State<AppState>,
    Project(project): Project,
    Path((vs, id)): Path<(VectorStoreId, CrawlId)>,
    Query(q): Query<PagesQuery>,
) -> ApiResult<axum::Json<Value>> {
    let limit = match q.limit.as_deref() {
        None | Some("") => 20,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("Invalid 'limit': expected 1 to 100, got '{s}'."),
                )
            })?,
    };
    let row = load(&state, &project, &vs, &id).await?;
    let page = state
        .store
        .crawl_pages(&row, q.after.as_deref(), limit)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "after",
                "Invalid 'after': the crawl has no page with that URL.",
            )
        })?;
    let data: Vec<Value> = page.items.into_iter().map(page_view).collect();
    Ok(axum::Json(json!({
        "object": "list",
        "first_id": data.first().map(|p| p["url"].clone()),
        "last_id": data.last().map(|p| p["url"].clone()),
        "has_more": page.has_more,
        "data": data,
    })))
}
