//! Conversations' and responses' items (`items`): item ids are not unique (an item sent back
//! as input keeps its id), so items are read and removed within their conversation, never by
//! the generic by-id document calls.

use sqlx::Row;

use super::docs::RawDoc;
use super::error::{StoreError, StoreResult};
use super::list::ListScope;
use super::{ListParams, Page, Store, Tx};
use crate::model::{Conversation, Item};

/// Whose items [`Store::latest_items`] reads.
#[derive(Debug, Clone, Copy)]
pub enum ItemsOf<'a> {
    Conversation(&'a str),
    /// A response's input items.
    Response(&'a str),
}

impl Store {
    /// Inserts items in order (their `seq` is their order in the conversation).
    pub async fn insert_items_in(
        &self,
        tx: &mut Tx,
        project: &str,
        items: &[Item],
    ) -> StoreResult<()> {
        for item in items {
            self.insert_in(tx, project, item, &[]).await?;
        }
        Ok(())
    }

    /// One page of a conversation's items, as stored (their wire JSON).
    pub async fn conversation_items(
        &self,
        project: &str,
        conversation: &str,
        params: &ListParams,
    ) -> StoreResult<Page<RawDoc>> {
        let scope = ListScope {
            table: "items",
            project,
            parent: Some(("conversation_id", conversation)),
            filters: vec![],
            tombstone_parent: conversation,
        };
        self.list_rows(&scope, "id, body", params, super::docs::raw_doc)
            .await
    }

    /// The newest `limit` items of a conversation or of a response's input, oldest first (the
    /// context a response's model sees).
    pub async fn latest_items(
        &self,
        project: &str,
        of: ItemsOf<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Item>> {
        let (column, id) = match of {
            ItemsOf::Conversation(id) => ("conversation_id", id),
            ItemsOf::Response(id) => ("response_id", id),
        };
        let sql = format!(
            "SELECT body FROM items WHERE project_id = $1 AND {column} = $2 \
             ORDER BY seq DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(project.to_string())
            .bind(id.to_string())
            .bind(limit)
            .fetch_all(self.read())
            .await?;
        let mut items = rows
            .iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>(0)?)?))
            .collect::<StoreResult<Vec<Item>>>()?;
        items.reverse();
        Ok(items)
    }

    /// One page of a response's input items, as stored.
    pub async fn response_items(
        &self,
        project: &str,
        response: &str,
        params: &ListParams,
    ) -> StoreResult<Page<RawDoc>> {
        let scope = ListScope {
            table: "items",
            project,
            parent: Some(("response_id", response)),
            filters: vec![],
            tombstone_parent: response,
        };
        self.list_rows(&scope, "id, body", params, super::docs::raw_doc)
            .await
    }

    /// An item of the conversation (the latest, should the same id have been added twice).
    pub async fn conversation_item(
        &self,
        project: &str,
        conversation: &str,
        id: &str,
    ) -> StoreResult<Item> {
        let row = sqlx::query(
            "SELECT body, response_id, created_at FROM items \
             WHERE project_id = $1 AND conversation_id = $2 AND id = $3 ORDER BY seq DESC LIMIT 1",
        )
        .bind(project.to_string())
        .bind(conversation.to_string())
        .bind(id.to_string())
        .fetch_optional(self.read())
        .await?
        .ok_or_else(|| StoreError::not_found("item", id))?;
        let mut item: Item = serde_json::from_str(&row.try_get::<String, _>(0)?)?;
        item.conversation_id = Some(
            crate::model::ids::ConversationId::parse(conversation)
                .map_err(|e| StoreError::internal("a stored conversation id", e))?,
        );
        item.response_id = row
            .try_get::<Option<String>, _>(1)?
            .and_then(|r| crate::model::ids::ResponseId::parse(&r).ok());
        item.created_at = row.try_get(2)?;
        Ok(item)
    }

    /// The latest item of the project with this id, wherever it belongs (`item_reference`).
    pub async fn find_item(&self, project: &str, id: &str) -> StoreResult<Option<Item>> {
        let row = sqlx::query(
            "SELECT body FROM items WHERE project_id = $1 AND id = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(self.read())
        .await?;
        match row {
            Some(r) => Ok(Some(serde_json::from_str(&r.try_get::<String, _>(0)?)?)),
            None => Ok(None),
        }
    }

    /// Takes an item out of a conversation: an item a response made stays with the response
    /// (its input items, its output), one added directly is deleted. 404 if the conversation
    /// has no such item.
    pub async fn remove_conversation_item(
        &self,
        project: &str,
        conversation: &str,
        id: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "SELECT seq, response_id FROM items \
             WHERE project_id = $1 AND conversation_id = $2 AND id = $3",
        )
        .bind(project.to_string())
        .bind(conversation.to_string())
        .bind(id.to_string())
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::not_found("item", id));
        }
        let mut last = 0;
        for r in &rows {
            let seq: i64 = r.try_get(0)?;
            last = last.max(seq);
            let sql = if r.try_get::<Option<String>, _>(1)?.is_some() {
                "UPDATE items SET conversation_id = NULL WHERE seq = $1"
            } else {
                "DELETE FROM items WHERE seq = $1"
            };
            sqlx::query(sql).bind(seq).execute(&mut *tx).await?;
        }
        self.tombstone_in(&mut tx, "items", conversation, id, project, last)
            .await?;
        tx.commit().await
    }

    /// Deletes a conversation: items added to it directly go with it, the items of its
    /// responses stay with those responses. 404 if there is no such conversation.
    pub async fn delete_conversation(&self, project: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "DELETE FROM conversations WHERE id = $1 AND project_id = $2 RETURNING seq",
        )
        .bind(id.to_string())
        .bind(project.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("conversation", id))?;
        let seq: i64 = row.try_get(0)?;
        sqlx::query("DELETE FROM items WHERE conversation_id = $1 AND response_id IS NULL")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE items SET conversation_id = NULL WHERE conversation_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        self.tombstone_in(
            &mut tx,
            <Conversation as super::Doc>::TABLE,
            "",
            id,
            project,
            seq,
        )
        .await?;
        tx.commit().await
    }
}
