//! `GET /plugins` and `GET /plugins/{id}`: installed tool plugins with their tools and
//! schemas (and why a newer version was refused, if it was), and the host's code interpreter
//! with its status. `PUT /plugins/{id}` and `DELETE /plugins/{id}`, for admin keys: upload a
//! component (installed on every node, `plugins::catalog`) and remove an uploaded one. An
//! extension of the Assistants API (the real one has no such endpoint); the list uses the
//! standard list envelope so SDK-style clients can read it.

use axum::extract::State;
use axum::routing::get;
use axum::Router;

use super::extract::Path;
use super::form::Form;
use crate::auth::{Admin, Project};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use assistants_core::plugins::catalog::MAX_COMPONENT_BYTES;

pub fn router() -> Router<AppState> {
    Router::new().route("/plugins", get(list)).route(
        "/plugins/{plugin_id}",
        get(retrieve).put(upload).delete(remove),
    )
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

/// `PUT /plugins/{id}`: a multipart form with the component (`component`, a `.wasm` file) and
/// its manifest (`manifest`, TOML text or file). Loaded here first: a component that does not
/// load is refused (400, with why) and whatever served the id keeps serving.
async fn upload(
    State(state): State<AppState>,
    Admin(by): Admin,
    Path(id): Path<String>,
    mut form: Form,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let mut component = None;
    let mut manifest = None;
    let read: ApiResult<()> = async {
        while let Some(part) = form.next_part().await? {
            match part.name().unwrap_or("") {
                "component" => {
                    component = Some(part.bytes("component", MAX_COMPONENT_BYTES).await?)
                }
                "manifest" => manifest = Some(part.text("manifest").await?),
                // Unknown parts are ignored, like unknown JSON keys.
                _ => form.ignore(part).await?,
            }
        }
        Ok(())
    }
    .await;
    if read.is_err() {
        form.drain().await;
    }
    read?;
    let component = component.ok_or_else(|| {
        ApiError::invalid("component", "Missing required parameter: 'component'.")
    })?;
    let manifest = manifest
        .ok_or_else(|| ApiError::invalid("manifest", "Missing required parameter: 'manifest'."))?;
    let plugin = state.plugins.install(&id, &component, &manifest).await?;
    tracing::info!(%id, digest = %plugin.digest, project = %by, "plugin uploaded");
    Ok(axum::Json(info(&state, &plugin)))
}

/// `DELETE /plugins/{id}`: removes an uploaded plugin from every node (runs pinned to it
/// finish with it). Built-in plugins and the plugins directory's are not removed this way.
async fn remove(
    State(state): State<AppState>,
    Admin(by): Admin,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    if !state.plugins.uninstall(&id).await? {
        return Err(match state.plugins.get(&id) {
            Some(_) => ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "The plugin '{id}' was not uploaded through the API (it is built in, or \
                     served from the plugins directory): it cannot be removed here."
                ),
            ),
            None => ApiError::new(
                ErrorKind::NotFound,
                format!("No plugin found with id '{id}'."),
            ),
        });
    }
    tracing::info!(%id, project = %by, "uploaded plugin deleted");
    Ok(axum::Json(serde_json::json!({
        "id": id,
        "object": "plugin.deleted",
        "deleted": true,
    })))
}
