//! Responses' own rows besides their items: deleting a response with what it made, the lock
//! threads of their runs (`model::response`), and the recorded events of background
//! responses, which a client may stream again from any point.

use sqlx::Row;

use super::error::{StoreError, StoreResult};
use super::{Store, Tx, Val};
use crate::bus::StreamEvent;
use crate::model::ids::{now, ResponseId, ThreadId};
use crate::model::response;

impl Store {
    /// Deletes a response with its input items and the run that produced it (its steps and
    /// messages, and its own lock thread). 404 if there is no such response.
    pub async fn delete_response(&self, project: &str, id: &ResponseId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM responses WHERE id = $1 AND project_id = $2 RETURNING seq")
            .bind(id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::not_found("response", id))?;
        // Its items in a conversation stay there (they are the conversation's history too).
        sqlx::query("DELETE FROM items WHERE response_id = $1 AND conversation_id IS NULL")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE items SET response_id = NULL WHERE response_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM response_events WHERE response_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let run = response::run_id(id);
        sqlx::query("DELETE FROM messages WHERE run_id = $1")
            .bind(run.to_string())
            .execute(&mut *tx)
            .await?;
        // Its steps go with it (`ON DELETE CASCADE`).
        sqlx::query("DELETE FROM runs WHERE id = $1 AND project_id = $2")
            .bind(run.to_string())
            .bind(project.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM threads WHERE id = $1 AND project_id = $2")
            .bind(response::lock_thread(id, None).to_string())
            .bind(response::lock_project(project))
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Inserts the lock thread of a response's run if it is not there yet (a conversation's
    /// is shared by its responses).
    pub async fn ensure_lock_thread_in(
        &self,
        tx: &mut Tx,
        project: &str,
        thread: &ThreadId,
    ) -> StoreResult<()> {
        let body = serde_json::json!({"id": thread, "object": "thread", "created_at": now(),
            "tool_resources": {}, "metadata": {}});
        sqlx::query(
            "INSERT INTO threads (id, project_id, created_at, body) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(thread.to_string())
        .bind(response::lock_project(project))
        .bind(now())
        .bind(body.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records a background response's run event at position `n` (a position taken already
    /// keeps its event: a worker that lost its lease cannot rewrite the record).
    pub async fn record_response_event(
        &self,
        response: &ResponseId,
        n: i64,
        event: &StreamEvent,
    ) -> StoreResult<()> {
        self.execute_one(
            "INSERT INTO response_events (response_id, n, event, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (response_id, n) DO NOTHING"
                .to_string(),
            vec![
                Val::Text(response.to_string()),
                Val::Int(n),
                Val::Text(event.event.clone()),
                Val::Text(event.data.clone()),
            ],
        )
        .await?;
        Ok(())
    }

    /// The position of the last recorded event of a response (-1 if none).
    pub async fn last_response_event(&self, response: &ResponseId) -> StoreResult<i64> {
        let row = sqlx::query("SELECT MAX(n) FROM response_events WHERE response_id = $1")
            .bind(response.to_string())
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(-1))
    }

    /// A response's recorded events, in order, each with its position.
    pub async fn response_events(&self, response: &ResponseId) -> StoreResult<Vec<StreamEvent>> {
        let rows = sqlx::query(
            "SELECT n, event, data FROM response_events WHERE response_id = $1 ORDER BY n",
        )
        .bind(response.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StreamEvent {
                    recorded: Some(r.try_get(0)?),
                    event: r.try_get(1)?,
                    data: r.try_get(2)?,
                })
            })
            .collect()
    }
}
