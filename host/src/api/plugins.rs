//! `GET /plugins` and `GET /plugins/{id}`: installed tool plugins with their tools and
//! schemas, and the host's code interpreter with its status. An extension of the Assistants
//! API (the real one has no such endpoint); the list uses the standard list envelope so
//! SDK-style clients can read it.

use axum::extract::State;
use axum::routing::get;
use axum::Router;

use super::extract::Path;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list))
        .route("/plugins/{plugin_id}", get(retrieve))
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
) -> ApiResult<impl axum::response::IntoResponse> {
    let caller = super::common::plugin_caller(&state, &project).await?;
    let mut items: Vec<serde_json::Value> = state
        .plugins
        .list()
        .iter()
        .filter(|p| p.allows(&caller))
        .map(|p| serde_json::to_value(p.info()).unwrap_or_default())
        .collect();
    items.push(state.interpreter.info());
    let page = assistants_core::store::Page {
        items,
        has_more: false,
    };
    Ok(super::common::list_envelope(page, |p| {
        p["id"].as_str().unwrap_or_default()
    }))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let caller = super::common::plugin_caller(&state, &project).await?;
    if id == assistants_core::interpreter::TOOL {
        return Ok(axum::Json(state.interpreter.info()));
    }
    state
        .plugins
        .get(&id)
        .filter(|p| p.allows(&caller))
        .map(|p| axum::Json(serde_json::to_value(p.info()).unwrap_or_default()))
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("No plugin found with id '{id}'."),
            )
        })
}
