//! Responses' own rows besides their items: deleting a response with what it made, the lock
//! threads of their runs (`model::response`), the recorded events of background
//! responses, which a client may stream again from any point, and what the janitor finds to
//! clean up (responses not to be kept, events past their time, deleted conversations' lock
//! threads).

use sqlx::Row;

use super::error::{StoreError, StoreResult};
use super::runs::ACTIVE_SQL;
use super::{Store, Tx, Val};
use crate::bus::StreamEvent;
use crate::model::ids::{now, ConversationId, ResponseId, ThreadId};
use crate::model::response;
use crate::model::ResponseObject;

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

    /// Records a background response's run event at position `n`, fenced like the engine's
    /// writes: only while the run exists and, for a worker (`token`), while its lease is the
    /// worker's (or was given up: the ending's events follow the last write); `None` for an
    /// ending written where no worker holds the run. A position taken already keeps its
    /// event, so a worker that lost its lease can neither add to the record nor rewrite it,
    /// and nothing is recorded for a response deleted while it ran. Whether it was recorded.
    pub async fn record_response_event(
        &self,
        response: &ResponseId,
        token: Option<i64>,
        n: i64,
        event: &StreamEvent,
    ) -> StoreResult<bool> {
        let mut args = vec![
            Val::Text(response.to_string()),
            Val::Int(n),
            Val::Text(event.event.clone()),
            Val::Text(event.data.clone()),
            Val::Text(response::run_id(response).to_string()),
        ];
        let fence = match token {
            Some(t) => {
                args.push(Val::Int(t));
                " AND (lease_token = $6 OR lease_token IS NULL)"
            }
            None => "",
        };
        self.execute_one(
            format!(
                "INSERT INTO response_events (response_id, n, event, data) \
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM runs WHERE id = $5{fence}) \
                 ON CONFLICT (response_id, n) DO NOTHING"
            ),
            args,
        )
        .await
        .map(|inserted| inserted > 0)
    }

    /// The position of the last recorded event of a response (-1 if none).
    pub async fn last_response_event(&self, response: &ResponseId) -> StoreResult<i64> {
        let row = sqlx::query("SELECT MAX(n) FROM response_events WHERE response_id = $1")
            .bind(response.to_string())
            .fetch_one(self.read())
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(-1))
    }

    /// A response's recorded events, in order, each with its position.
    pub async fn response_events(&self, response: &ResponseId) -> StoreResult<Vec<StreamEvent>> {
        let rows = sqlx::query(
            "SELECT n, event, data FROM response_events WHERE response_id = $1 ORDER BY n",
        )
        .bind(response.to_string())
        .fetch_all(self.read())
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

    /// Responses created with `store: false` whose run ended before `before` (at most
    /// `limit`): their project, id and conversation.
    pub async fn unstored_responses(
        &self,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<(String, ResponseId, Option<ConversationId>)>> {
        let rows = sqlx::query(
            "SELECT project_id, body FROM responses WHERE stored = 0 AND ended_at < $1 \
             ORDER BY ended_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.read())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let body: String = r.try_get(1)?;
            // A body that does not read cannot be one of ours; it stays for an operator.
            let Ok(doc) = serde_json::from_str::<ResponseObject>(&body) else {
                tracing::warn!("a response row whose body does not read was left in place");
                continue;
            };
            let conversation = doc
                .get("conversation")
                .and_then(|c| c.get("id"))
                .and_then(|c| c.as_str())
                .and_then(|c| ConversationId::parse(c).ok());
            out.push((r.try_get(0)?, doc.id, conversation));
        }
        Ok(out)
    }

    /// Records, in the transaction that ends its run, when a response ended (`at`) and, for a
    /// background one, until when its recorded events are kept.
    pub async fn response_ended_in(
        &self,
        tx: &mut Tx,
        id: &ResponseId,
        at: i64,
        background: bool,
    ) -> StoreResult<()> {
        let events_until = background.then_some(at + response::EVENTS_KEPT_SECS);
        sqlx::query("UPDATE responses SET ended_at = $1, events_until = $2 WHERE id = $3")
            .bind(at)
            .bind(events_until)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Whether the janitor pruned this response's recorded events.
    pub async fn response_events_pruned(&self, response: &ResponseId) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM responses WHERE id = $1 AND events_until IS NULL",
        )
        .bind(response.to_string())
        .fetch_one(self.read())
        .await?;
        Ok(n > 0)
    }

    /// Forgets the recorded events of background responses whose time for being streamed
    /// again is over (`model::response::EVENTS_KEPT_SECS`), up to `limit` responses; how many.
    pub async fn prune_response_events(&self, now: i64, limit: i64) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM responses WHERE events_until < $1 ORDER BY events_until LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            sqlx::query("DELETE FROM response_events WHERE response_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE responses SET events_until = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Deletes the lock threads of deleted conversations once no response runs in them
    /// (their runs, steps and messages go with them), up to `limit`; the threads deleted,
    /// whose code_interpreter sessions are to be forgotten. Found through the conversations'
    /// tombstones, so only recent deletions are looked at (a response still running when its
    /// conversation was deleted ends within a day).
    pub async fn sweep_conversation_locks(&self, limit: i64) -> StoreResult<Vec<ThreadId>> {
        let mut tx = self.begin().await?;
        let idle = |thread: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM runs u WHERE u.thread_id = {thread} \
                 AND u.status IN {ACTIVE_SQL})"
            )
        };
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT h.id FROM tombstones t JOIN threads h ON h.id = 'thread_' || substr(t.id, 6) \
             WHERE t.tbl = 'conversations' AND h.project_id = 'responses:' || t.project_id \
             AND {} LIMIT $1",
            idle("h.id")
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut deleted = Vec::with_capacity(ids.len());
        for id in &ids {
            // Checked again in the delete itself: a run that started meanwhile keeps it.
            let gone: Option<String> = sqlx::query_scalar(&format!(
                "DELETE FROM threads WHERE id = $1 AND {} RETURNING id",
                idle("threads.id")
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            deleted.extend(gone);
        }
        tx.commit().await?;
        Ok(deleted
            .iter()
            .filter_map(|t| ThreadId::parse(t).ok())
            .collect())
    }
}
