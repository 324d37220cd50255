//! Runs: the thread lock, worker leases with fencing, and the sweeps that find runs needing a
//! worker or past their expiry.
//!
//! The run engine never writes without proving it still holds the run: [`Store::engine_tx`]
//! opens a write transaction that re-reads the run's lease token under the write lock, and
//! hands the transaction back only if it is the caller's. A worker that stalled past its lease
//! (and was replaced) therefore cannot write a step, a message or a status over its successor.

use sqlx::Row;

use super::error::{StoreError, StoreResult};
use super::{Doc, Store, Tx};
use crate::model::engine::{EngineJson, EngineRecord};
use crate::model::ids::now;
use crate::model::{Run, RunStatus};

/// A run claimed by a worker.
pub struct Claim {
    pub project: String,
    pub run: Run,
    pub engine: EngineRecord,
    pub token: i64,
}

/// A run as the engine holds it inside an [`Store::engine_tx`] transaction.
pub struct Locked {
    pub status: RunStatus,
    pub run: Run,
}

pub(super) const ACTIVE_SQL: &str = "('queued', 'in_progress', 'requires_action', 'cancelling')";

/// The thread lock as an insert guard (see `Store::insert_under_unless`; `$P` is the thread).
pub const NO_ACTIVE_RUN: &str = " AND NOT EXISTS (SELECT 1 FROM runs WHERE thread_id = $P \
     AND status IN ('queued', 'in_progress', 'requires_action', 'cancelling'))";

impl Store {
    /// Inserts a new run. A run already active on the thread (the partial unique index) is a
    /// 400 naming it, as the real API answers.
    pub async fn insert_run_in(
        &self,
        tx: &mut Tx,
        project: &str,
        run: &Run,
        engine: &EngineRecord,
    ) -> StoreResult<()> {
        let result = sqlx::query(
            "INSERT INTO runs (id, project_id, thread_id, created_at, status, expires_at, \
             nudged_at, engine, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(run.id.to_string())
        .bind(project.to_string())
        .bind(run.thread_id.to_string())
        .bind(run.created_at)
        .bind(run.status.as_str())
        .bind(run.expires_at)
        .bind(now())
        .bind(serde_json::to_string(engine)?)
        .bind(serde_json::to_string(run)?)
        .execute(&mut **tx)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let active = self
                    .active_run(project, &run.thread_id)
                    .await?
                    .unwrap_or_default();
                Err(StoreError::ThreadLocked {
                    thread_id: run.thread_id.to_string(),
                    run_id: active,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The active run of a thread, if any. Reads through the read pool: it is also asked while
    /// a failed insert's transaction still holds SQLite's single write connection.
    pub async fn active_run(&self, project: &str, thread_id: &str) -> StoreResult<Option<String>> {
        let sql = format!(
            "SELECT id FROM runs WHERE thread_id = $1 AND project_id = $2 AND status IN {ACTIVE_SQL}"
        );
        let row = sqlx::query(&sql)
            .bind(thread_id.to_string())
            .bind(project.to_string())
            .fetch_optional(self.read())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The project a run belongs to (the worker pool schedules runs by project).
    pub async fn run_project(&self, run_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT project_id FROM runs WHERE id = $1")
            .bind(run_id.to_string())
            .fetch_optional(self.read())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// How many runs are in each active status (for the `runs_active` gauge).
    pub async fn active_run_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT status, COUNT(*) FROM runs WHERE status IN {ACTIVE_SQL} GROUP BY status"
        );
        sqlx::query(&sql)
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// [`Store::active_run`] inside `tx` (for a write that must not race a run's creation).
    pub async fn active_run_in(
        &self,
        tx: &mut Tx,
        project: &str,
        thread_id: &str,
    ) -> StoreResult<Option<String>> {
        let sql = format!(
            "SELECT id FROM runs WHERE thread_id = $1 AND project_id = $2 AND status IN {ACTIVE_SQL}"
        );
        let row = sqlx::query(&sql)
            .bind(thread_id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Read-modify-write of a run and its engine record by the API (submit outputs,
    /// metadata). The lease is left alone: the engine's fenced writes check the status it
    /// expects, so an API transition (say to `cancelling`) is never overwritten.
    pub async fn update_run<E: From<StoreError>>(
        &self,
        project: &str,
        thread_id: &str,
        run_id: &str,
        f: impl FnOnce(&mut Run, &mut EngineRecord) -> Result<(), E>,
    ) -> Result<Run, E> {
        let mut tx = self.begin().await?;
        let (mut run, mut engine) = self
            .lock_run_in(&mut tx, project, thread_id, run_id)
            .await?;
        f(&mut run, &mut engine)?;
        let json = engine.to_json().map_err(StoreError::from)?;
        self.write_run_in(&mut tx, &run, &json, None).await?;
        tx.commit().await?;
        Ok(run)
    }

    /// A run of the thread and its engine record, locked for update in `tx`; 404 if missing.
    pub async fn lock_run_in(
        &self,
        tx: &mut Tx,
        project: &str,
        thread_id: &str,
        run_id: &str,
    ) -> StoreResult<(Run, EngineRecord)> {
        let sql = format!(
            "SELECT body, engine FROM runs WHERE id = $1 AND project_id = $2 AND thread_id = $3{}",
            self.lock_rows()
        );
        let row = sqlx::query(&sql)
            .bind(run_id.to_string())
            .bind(project.to_string())
            .bind(thread_id.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found(Run::NAME, run_id))?;
        Ok((
            serde_json::from_str(&row.try_get::<String, _>(0)?)?,
            serde_json::from_str(&row.try_get::<String, _>(1)?)?,
        ))
    }

    /// The documents of a run's table (`messages` or `run_steps`) that belong to `run_id`, in
    /// insertion order, read inside `tx`.
    pub async fn by_run_in<D: Doc>(&self, tx: &mut Tx, run_id: &str) -> StoreResult<Vec<D>> {
        let sql = format!(
            "SELECT body FROM {} WHERE run_id = $1 ORDER BY seq",
            D::TABLE
        );
        let rows = sqlx::query(&sql)
            .bind(run_id.to_string())
            .fetch_all(&mut **tx)
            .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>(0)?)?))
            .collect()
    }

    /// A run and its engine record as they are now (read pool), if the run exists.
    pub async fn run_and_record(
        &self,
        project: &str,
        run_id: &str,
    ) -> StoreResult<Option<(Run, EngineRecord)>> {
        let row = sqlx::query("SELECT body, engine FROM runs WHERE id = $1 AND project_id = $2")
            .bind(run_id.to_string())
            .bind(project.to_string())
            .fetch_optional(self.read())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((
            serde_json::from_str(&row.try_get::<String, _>(0)?)?,
            serde_json::from_str(&row.try_get::<String, _>(1)?)?,
        )))
    }

    /// [`Store::by_run_in`] through the read pool (a run's output shown while it runs).
    pub async fn by_run<D: Doc>(&self, run_id: &str) -> StoreResult<Vec<D>> {
        let sql = format!(
            "SELECT body FROM {} WHERE run_id = $1 ORDER BY seq",
            D::TABLE
        );
        let rows = sqlx::query(&sql)
            .bind(run_id.to_string())
            .fetch_all(self.read())
            .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>(0)?)?))
            .collect()
    }

    /// Deletes what an interrupted attempt at an action left behind (its unfinished message
    /// and steps), inside `tx`, before the action is tried again under new ids.
    pub async fn delete_unfinished_in(
        &self,
        tx: &mut Tx,
        run_id: &str,
        message_id: &str,
        step_ids: &[&str],
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM messages WHERE id = $1 AND run_id = $2")
            .bind(message_id.to_string())
            .bind(run_id.to_string())
            .execute(&mut **tx)
            .await?;
        for id in step_ids {
            sqlx::query("DELETE FROM run_steps WHERE id = $1 AND run_id = $2")
                .bind(id.to_string())
                .bind(run_id.to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Writes a run's columns, body and engine record; `lease` (seconds) renews the lease,
    /// `Some(0)` releases it.
    pub async fn write_run_in(
        &self,
        tx: &mut Tx,
        run: &Run,
        engine: &EngineJson,
        lease: Option<i64>,
    ) -> StoreResult<()> {
        let (lease_sql, lease_val) = match lease {
            None => ("", None),
            Some(0) => (", lease_until = NULL, lease_token = NULL", None),
            Some(secs) => (", lease_until = $6", Some(now() + secs)),
        };
        let sql = format!(
            "UPDATE runs SET status = $1, expires_at = $2, engine = $3, body = $4{lease_sql} WHERE id = $5"
        );
        let mut q = sqlx::query(&sql)
            .bind(run.status.as_str())
            .bind(run.expires_at)
            .bind(engine.as_str())
            .bind(serde_json::to_string(run)?)
            .bind(run.id.to_string());
        if let Some(v) = lease_val {
            q = q.bind(v);
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }

    /// Claims a run that needs a worker (queued, in progress without a live lease, or
    /// cancelling): sets a fresh lease token and returns the run. `None` if it needs no worker
    /// or another one holds it.
    pub async fn claim_run(&self, run_id: &str, lease_secs: i64) -> StoreResult<Option<Claim>> {
        let token: i64 = rand::random::<i64>() & i64::MAX;
        let t = now();
        let row = sqlx::query(
            "UPDATE runs SET lease_until = $1, lease_token = $2 WHERE id = $3 \
             AND status IN ('queued', 'in_progress', 'cancelling') \
             AND (lease_until IS NULL OR lease_until < $4) RETURNING project_id, body, engine",
        )
        .bind(t + lease_secs)
        .bind(token)
        .bind(run_id.to_string())
        .bind(t)
        .fetch_optional(self.write())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Claim {
            project: row.try_get(0)?,
            run: serde_json::from_str(&row.try_get::<String, _>(1)?)?,
            engine: serde_json::from_str(&row.try_get::<String, _>(2)?)?,
            token,
        }))
    }

    /// Extends a held lease; returns the run's status, or `None` if the lease is no longer ours.
    pub async fn renew_lease(
        &self,
        run_id: &str,
        token: i64,
        lease_secs: i64,
    ) -> StoreResult<Option<RunStatus>> {
        let row = sqlx::query(
            "UPDATE runs SET lease_until = $1 WHERE id = $2 AND lease_token = $3 RETURNING status",
        )
        .bind(now() + lease_secs)
        .bind(run_id.to_string())
        .bind(token)
        .fetch_optional(self.write())
        .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .and_then(|s| s.parse().ok()))
    }

    /// Hands a held lease back (on shutdown) and marks the run for the sweeper at once.
    pub async fn release_lease(&self, run_id: &str, token: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE runs SET lease_until = NULL, lease_token = NULL, nudged_at = 0 \
             WHERE id = $1 AND lease_token = $2",
        )
        .bind(run_id.to_string())
        .bind(token)
        .execute(self.write())
        .await?;
        Ok(())
    }

    /// A write transaction for the engine, if it still holds the run's lease (see the module
    /// docs). The run comes back as stored, for its current status and metadata.
    pub async fn engine_tx(&self, run_id: &str, token: i64) -> StoreResult<Option<(Tx, Locked)>> {
        let mut tx = self.begin_background().await?;
        let sql = format!(
            "SELECT lease_token, body FROM runs WHERE id = $1{}",
            self.lock_rows()
        );
        let row = sqlx::query(&sql)
            .bind(run_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<Option<i64>, _>(0)? != Some(token) {
            return Ok(None);
        }
        let run: Run = serde_json::from_str(&row.try_get::<String, _>(1)?)?;
        Ok(Some((
            tx,
            Locked {
                status: run.status,
                run,
            },
        )))
    }

    /// Inserts or replaces a document by id (the engine writes the same message or step again
    /// when it repeats an action after a crash), with its indexed columns.
    pub async fn upsert_in<D: Doc>(&self, tx: &mut Tx, project: &str, doc: &D) -> StoreResult<()> {
        let cols = doc.columns();
        // The indexed columns follow the body (a response's end changes its `ended_at`).
        let updates: String = cols
            .iter()
            .map(|(c, _)| format!(", {c} = excluded.{c}"))
            .collect();
        let sql = format!(
            "{} ON CONFLICT (id) DO UPDATE SET body = excluded.body{updates}",
            super::docs::insert_sql::<D>(&cols)
        );
        let args = super::docs::insert_args(project, doc, &cols)?;
        super::bind_all(sqlx::query(&sql), &args)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Runs that need a worker but have none: not leased (or the lease ran out) and not put
    /// on the queue within `quiet_secs`. Marks them nudged now, so concurrent sweepers on other
    /// nodes do not queue them again.
    pub async fn due_runs(&self, quiet_secs: i64, limit: i64) -> StoreResult<Vec<String>> {
        let t = now();
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE status IN ('queued', 'in_progress', 'cancelling') \
             AND (lease_until IS NULL OR lease_until < $1) AND nudged_at < $2 LIMIT $3",
        )
        .bind(t)
        .bind(t - quiet_secs)
        .bind(limit)
        .fetch_all(self.read())
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            // Whoever bumps nudged_at first queues it.
            let bumped =
                sqlx::query("UPDATE runs SET nudged_at = $1 WHERE id = $2 AND nudged_at < $3")
                    .bind(t)
                    .bind(id.clone())
                    .bind(t - quiet_secs)
                    .execute(self.write())
                    .await?
                    .rows_affected();
            if bumped == 1 {
                due.push(id);
            }
        }
        Ok(due)
    }

    /// Records that a run was just put on the queue (see [`Store::due_runs`]).
    pub async fn mark_nudged(&self, run_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE runs SET nudged_at = $1 WHERE id = $2")
            .bind(now())
            .bind(run_id.to_string())
            .execute(self.write())
            .await?;
        Ok(())
    }

    /// Active runs past their `expires_at` that no live worker holds: (project, thread, run).
    pub async fn expired_runs(&self, limit: i64) -> StoreResult<Vec<(String, String, String)>> {
        let t = now();
        let sql = format!(
            "SELECT project_id, thread_id, id FROM runs WHERE status IN {ACTIVE_SQL} \
             AND expires_at < $1 AND (lease_until IS NULL OR lease_until < $1) LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(t)
            .bind(limit)
            .fetch_all(self.read())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }
}
