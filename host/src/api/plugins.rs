//! `GET /plugins` and `GET /plugins/{id}`: installed tool plugins with their tools and
//! schemas (and why a newer version was refused, if it was), and the host's code interpreter
//! with its status. An extension of the Assistants
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
        .map(|p| info(&state, p))
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
        .map(|p| axum::Json(info(&state, &p)))
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("No plugin found with id '{id}'."),
            )
        })
}

/// A plugin as listed: its info, and `update_refused` while a newer file of it in the plugins
/// directory was refused (this one keeps serving until a fixed file replaces it).
fn info(state: &AppState, plugin: &assistants_core::plugins::Plugin) -> serde_json::Value {
    let mut v = serde_json::to_value(plugin.info()).unwrap_or_default();
    if let Some(why) = state.plugins.update_refused(&plugin.manifest.id) {
        v["update_refused"] = why.into();
    }
    v
}
