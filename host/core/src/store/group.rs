//! Group commit for SQLite's single writer.
//!
//! SQLite serialises writers, so at high concurrency single-row inserts queue behind one
//! connection and each pays for its own pool hand-off and commit. Here one task owns the write
//! path for those inserts: it drains every insert waiting in its channel, runs them in one
//! transaction and commits once, then answers each caller. Throughput rises with load while a
//! lone request still commits immediately (the batch is whatever is already waiting; nothing
//! waits for a batch to fill).
//!
//! Only single statements go through here. A statement that fails (say a constraint) is rolled
//! back by SQLite on its own and only its caller sees the error; the others still commit. If the
//! commit itself fails, every caller in the batch gets the error and nothing of it was written.
//! PostgreSQL has real concurrent writers and does not use this.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::error::{StoreError, StoreResult};
use super::lanes::{Lane, WriterLanes};
use super::{bind_all, Val};

/// Most statements committed together; bounds how long the first caller of a batch waits.
const MAX_BATCH: usize = 256;

struct Job {
    sql: String,
    args: Vec<Val>,
    done: oneshot::Sender<StoreResult<u64>>,
}

#[derive(Clone)]
pub(crate) struct GroupWriter {
    jobs: mpsc::Sender<Job>,
}

impl GroupWriter {
    /// Starts the writer task on `pool` (the single-connection write pool). It ends when every
    /// `GroupWriter` clone is dropped.
    pub(crate) fn spawn(pool: AnyPool, lanes: WriterLanes) -> GroupWriter {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, lanes, rx));
        GroupWriter { jobs }
    }

    /// Executes one statement, returning its affected row count once it is committed.
    pub(crate) async fn execute(&self, sql: String, args: Vec<Val>) -> StoreResult<u64> {
        let (done, wait) = oneshot::channel();
        let closed = || StoreError::internal("group commit", "the writer task has stopped");
        self.jobs
            .send(Job { sql, args, done })
            .await
            .map_err(|_| closed())?;
        wait.await.map_err(|_| closed())?
    }
}

async fn run(pool: AnyPool, lanes: WriterLanes, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Inserts here are clients' (messages, objects): the interactive lane.
        let turn = lanes.turn(Lane::Interactive).await;
        let results = commit(&pool, &batch).await;
        drop(turn);
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.done.send(result);
        }
    }
}

async fn commit(pool: &AnyPool, batch: &[Job]) -> Vec<StoreResult<u64>> {
    let fail_all = |e: sqlx::Error| {
        let e = StoreError::from(e);
        batch.iter().map(|_| Err(e.clone())).collect()
    };
    let mut tx = match super::begin_write(pool, super::Backend::Sqlite).await {
        Ok(tx) => tx,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let q = bind_all(sqlx::query(&job.sql), &job.args);
        results.push(
            q.execute(&mut *tx)
                .await
                .map(|r| r.rows_affected())
                .map_err(StoreError::from),
        );
    }
    match tx.commit().await {
        Ok(()) => results,
        Err(e) => fail_all(e),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::store::{Doc, ListParams, Store};

    #[derive(Serialize, Deserialize)]
    struct Row {
        id: String,
        created_at: i64,
    }

    impl Doc for Row {
        type Id = crate::model::ids::ThreadId;
        const TABLE: &'static str = "threads";
        const NAME: &'static str = "row";
        fn id(&self) -> &str {
            &self.id
        }
        fn created_at(&self) -> i64 {
            self.created_at
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_insert_fails_alone_and_the_rest_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
            .insert(
                "p",
                &Row {
                    id: "dup".into(),
                    created_at: 1,
                },
                &[],
            )
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            // One of the concurrent inserts collides with an existing id.
            let id = if i == 100 {
                "dup".to_string()
            } else {
                format!("r{i}")
            };
            tasks.push(tokio::spawn(async move {
                store.insert("p", &Row { id, created_at: i }, &[]).await
            }));
        }
        let mut failures = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                failures += 1;
            }
        }
        assert_eq!(failures, 1);
        let all = store
            .list::<Row>(
                "p",
                None,
                vec![],
                &ListParams {
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(all.items.len(), 200, "199 new rows and the original");
    }
}

#[cfg(test)]
mod lock_tests {
    use crate::store::Store;
    use sqlx::Row;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_process_waits_for_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let a = Store::connect(&url).await.unwrap();
        a.migrate().await.unwrap();
        let b = Store::connect(&url).await.unwrap();
        let t: i64 = sqlx::query("PRAGMA busy_timeout")
            .fetch_one(&b.write)
            .await
            .unwrap()
            .get(0);
        assert_eq!(t, 10_000, "the connection pragmas are applied");
        let mut tx = a.begin().await.unwrap();
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ('x', 'x', 0)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let hold = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            tx.commit().await.unwrap();
        });
        b.create_key("other")
            .await
            .expect("waits for the lock instead of failing");
        hold.await.unwrap();
    }
}
