//! The HTTP API: one module per resource, each exporting `router()`, merged here and mounted
//! both under `/v1` and at the root (older clients use a bare base URL); and `/mcp`, the tool
//! plugins as an MCP server.

pub mod assistants;
mod attachments;
pub mod common;
mod conversations;
mod crawls;
pub mod extract;
pub mod files;
mod form;
mod items;
mod mcp;
mod mcp_tool;
pub mod messages;
mod pins;
mod plugins;
mod quota;
mod responses;
pub mod runs;
pub mod threads;
mod tool_list;
mod tool_resources;
pub mod uploads;
pub mod vector_store_files;
pub mod vector_stores;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tracing::Instrument as _;

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;

/// How long SDK pollers should wait between polls; small so `*_and_poll` helpers finish fast.
const POLL_AFTER_MS: &str = "100";

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(assistants::router())
        .merge(threads::router())
        .merge(messages::router())
        .merge(files::router())
        .merge(uploads::router())
        .merge(vector_stores::router())
        .merge(vector_store_files::router())
        .merge(crawls::router())
        .merge(runs::router())
        .merge(plugins::router())
        .merge(conversations::router())
        .merge(responses::router())
        .layer(middleware::from_fn_with_state(state.clone(), by_project));
    Router::new()
        .merge(crate::ops::router())
        .merge(crate::playground::router())
        .merge(mcp::router(state.clone()))
        .nest("/v1", api.clone())
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(poll_after))
        .layer(middleware::from_fn(crate::ops::track_requests))
        // Request spans at info: they are the roots of exported traces (a run's trace starts
        // at the request that queued it).
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO),
            ),
        )
        .with_state(state)
}

/// For the resources' routes: finds the caller's project once (the handler's extractors take
/// it from the request) and handles the request within the project's share of the node
/// (`shares`). A request whose key does not resolve goes on as it is: its handler answers with
/// the error.
async fn by_project(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let bearer = crate::auth::bearer(req.headers());
    let Ok(access) = state.auth.access(&state.store, bearer).await else {
        return next.run(req).await;
    };
    let project = access.project.clone();
    req.extensions_mut().insert(access);
    // The handler may run on other threads: it keeps the request's span.
    let work = next.run(req).instrument(tracing::Span::current());
    state.shares.serve(project, work).await
}

/// Adds `openai-poll-after-ms` to successful GETs: the SDKs' pollers sleep for that long.
async fn poll_after(req: Request, next: Next) -> Response {
    let is_get = req.method() == axum::http::Method::GET;
    let mut resp = next.run(req).await;
    if is_get && resp.status().is_success() {
        resp.headers_mut().insert(
            "openai-poll-after-ms",
            HeaderValue::from_static(POLL_AFTER_MS),
        );
    }
    resp
}

async fn not_found(State(_): State<AppState>, req: Request) -> Response {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Invalid URL ({} {})", req.method(), req.uri().path()),
    )
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let mut r = ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!(
            "Method {} is not allowed for {}.",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}
