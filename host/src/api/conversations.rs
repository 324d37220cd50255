//! `/conversations`: create (with initial items), retrieve, update metadata, delete; and its
//! items: add (up to 20 at a time), list, retrieve, delete.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{self, ListQuery, Patch};
use super::extract::{Json, Path, Query};
use super::items;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{now, ConversationId, ItemId};
use assistants_core::model::{Conversation, Item};

/// Most items one request adds, as OpenAI limits it.
const MAX_ITEMS_PER_REQUEST: usize = 20;

#[derive(Debug, Deserialize)]
struct CreateConversation {
    metadata: Option<Value>,
    items: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct UpdateConversation {
    #[serde(default)]
    metadata: Patch<Value>,
}

#[derive(Debug, Deserialize)]
struct AddItems {
    items: Option<Vec<Value>>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations", post(create))
        .route(
            "/conversations/{conversation_id}",
            get(retrieve).post(update).delete(remove),
        )
        .route(
            "/conversations/{conversation_id}/items",
            get(list_items).post(add_items),
        )
        .route(
            "/conversations/{conversation_id}/items/{item_id}",
            get(retrieve_item).delete(remove_item),
        )
}

/// Validates a batch of items for a conversation (at most 20, as OpenAI allows).
async fn prepare_items(
    state: &AppState,
    project: &str,
    conversation: &ConversationId,
    items: Vec<Value>,
) -> ApiResult<Vec<Item>> {
    if items.len() > MAX_ITEMS_PER_REQUEST {
        return Err(ApiError::invalid(
            "items",
            format!(
                "Invalid 'items': array too long. Expected an array with maximum length {MAX_ITEMS_PER_REQUEST}, but got an array with length {}.",
                items.len()
            ),
        ));
    }
    let mut items = items::normalize(state, project, "items", items).await?;
    for item in &mut items {
        item.conversation_id = Some(conversation.clone());
    }
    Ok(items)
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Json(req): Json<CreateConversation>,
) -> ApiResult<axum::Json<Conversation>> {
    let conversation = Conversation {
        id: ConversationId::new(),
        object: "conversation".into(),
        created_at: now(),
        metadata: common::metadata("metadata", req.metadata)?,
    };
    let items = prepare_items(
        &state,
        &project,
        &conversation.id,
        req.items.unwrap_or_default(),
    )
    .await?;
    let mut tx = state.store.begin().await?;
    state
        .store
        .insert_in(&mut tx, &project, &conversation, &[])
        .await?;
    state
        .store
        .insert_items_in(&mut tx, &project, &items)
        .await?;
    tx.commit().await?;
    Ok(axum::Json(conversation))
}

async fn retrieve(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ConversationId>,
) -> ApiResult<axum::Json<Conversation>> {
    Ok(axum::Json(
        state.store.get::<Conversation>(&project, &id).await?,
    ))
}

async fn update(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ConversationId>,
    Json(req): Json<UpdateConversation>,
) -> ApiResult<axum::Json<Conversation>> {
    // `metadata` is required here; `null` clears it.
    let Some(metadata) = common::metadata_patch(req.metadata)? else {
        return Err(ApiError::invalid(
            "metadata",
            "Missing required parameter: 'metadata'.",
        ));
    };
    let c = state
        .store
        .update::<Conversation, ApiError>(&project, &id, move |c| {
            c.metadata = metadata;
            Ok(())
        })
        .await?;
    Ok(axum::Json(c))
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ConversationId>,
) -> ApiResult<axum::Json<Value>> {
    state.store.delete_conversation(&project, &id).await?;
    Ok(axum::Json(
        json!({"id": id, "object": "conversation.deleted", "deleted": true}),
    ))
}

async fn add_items(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ConversationId>,
    Json(req): Json<AddItems>,
) -> ApiResult<axum::Json<Value>> {
    let Some(items) = req.items else {
        return Err(ApiError::invalid(
            "items",
            "Missing required parameter: 'items'.",
        ));
    };
    // 404 before validating items against a conversation that does not exist.
    state.store.get::<Conversation>(&project, &id).await?;
    let items = prepare_items(&state, &project, &id, items).await?;
    let mut tx = state.store.begin().await?;
    // Holds the conversation until commit, so a concurrent delete cannot leave these items
    // behind in a conversation that is gone.
    state
        .store
        .update_in::<Conversation, ApiError>(&mut tx, &project, &id, |_| Ok(()))
        .await?;
    state
        .store
        .insert_items_in(&mut tx, &project, &items)
        .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({
        "object": "list",
        "first_id": items.first().map(|i| &i.id),
        "last_id": items.last().map(|i| &i.id),
        "has_more": false,
        "data": items,
    })))
}

async fn list_items(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<ConversationId>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let params = q.params(20, 100)?;
    let page = state
        .store
        .conversation_items(&project, &id, &params)
        .await?;
    // Items exist only in a conversation of the project, so only an empty page needs the
    // lookup that tells "no items" from "no such conversation".
    if page.items.is_empty() {
        state.store.get::<Conversation>(&project, &id).await?;
    }
    Ok(common::list_envelope(page, |i| &i.id))
}

async fn retrieve_item(
    State(state): State<AppState>,
    Project(project): Project,
    Path((id, item_id)): Path<(ConversationId, ItemId)>,
) -> ApiResult<axum::Json<Item>> {
    state.store.get::<Conversation>(&project, &id).await?;
    Ok(axum::Json(
        state
            .store
            .conversation_item(&project, &id, &item_id)
            .await?,
    ))
}

/// Removes the item and answers with the conversation, as OpenAI does.
async fn remove_item(
    State(state): State<AppState>,
    Project(project): Project,
    Path((id, item_id)): Path<(ConversationId, ItemId)>,
) -> ApiResult<axum::Json<Conversation>> {
    let conversation = state.store.get::<Conversation>(&project, &id).await?;
    state
        .store
        .remove_conversation_item(&project, &id, &item_id)
        .await?;
    Ok(axum::Json(conversation))
}
