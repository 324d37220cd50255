//! Group commit for SQLite's single writer.
//!
//! SQLite serialises writers, so at high concurrency single-row inserts queue behind one
//! connection and each pays for its own pool hand-off and commit. Here one task owns the write
//! path for those inserts: it drains every insert waiting in its channel, runs them in one
//! transaction and commits once, then answers each caller. Throughput rises with load while a
//! lone request still commits immediately (the batch is whatever is already waiting; nothing
//! waits for a batch to fill).
//!
//! The batch's statements travel to SQLite's connection thread a chunk at a time, as one
//! multi-statement query (same statement text together, `$n` renumbered), not one round trip
//! each: with each statement alone the writer spent most of its time waiting for the two
//! thread wake-ups around every insert, and the machine sat a third idle under load.
//!
//! Only single statements go through here. A statement that fails (say a constraint) is rolled
//! back by SQLite on its own and only its caller sees the error; the ones before it stand, the
//! ones after it run next, and all still commit. If the commit itself fails, every caller in the
//! batch gets the error and nothing of it was written.
//! PostgreSQL has real concurrent writers and does not use this.

use std::collections::VecDeque;

use futures::StreamExt;
use sqlx::{AnyPool, Either, Executor};
use tokio::sync::{mpsc, oneshot};

use super::error::{StoreError, StoreResult};
use super::lanes::{Lane, WriterLanes};
use super::{bind_all, Val};

/// Most statements committed together; bounds how long the first caller of a batch waits.
const MAX_BATCH: usize = 256;

/// Most statements sent to SQLite's connection thread as one query. Each query is a round trip
/// to that thread (a wake-up each way), which cost more than the inserts themselves when every
/// statement went alone.
const MAX_CHUNK: usize = 64;

/// Most parameters in one joined query, under SQLite's limit on a parameter's number (32,766).
const MAX_PARAMS: usize = 30_000;

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

    /// Executes one statement, returning its affected row count once it is committed. Its
    /// parameters are numbered `$1`, `$2`, …: a batch renumbers them to join statements (one
    /// written with `?` runs alone).
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
    let mut results: Vec<Option<StoreResult<u64>>> = batch.iter().map(|_| None).collect();
    let mut pending = plan(batch, (0..batch.len()).collect());
    while let Some(chunk) = pending.pop_front() {
        let (sql, args) = joined(batch, &chunk);
        let mut done = 0;
        let mut failed = None;
        {
            // The SQLite driver runs a query text's statements one after another, binding each
            // statement's `$n` against the whole argument list (what migrations rely on too).
            let query = bind_all(sqlx::query(&sql), &args);
            let mut stream = (&mut *tx).fetch_many(query);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Either::Left(r)) => {
                        results[chunk[done]] = Some(Ok(r.rows_affected()));
                        done += 1;
                    }
                    // No statement here returns rows; if one did, its rows are not asked for.
                    Ok(Either::Right(_)) => {}
                    Err(e) => {
                        failed = Some(StoreError::from(e));
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            // SQLite rolled back the failing statement alone; the ones before it stand and the
            // ones after it have not run yet.
            results[chunk[done]] = Some(Err(e));
            for rest in plan(batch, chunk[done + 1..].to_vec()).into_iter().rev() {
                pending.push_front(rest);
            }
        } else if done < chunk.len() {
            // Every statement reports its end; a short count means the driver stopped early.
            let e = StoreError::internal("group commit", "a statement of the batch did not report");
            return batch.iter().map(|_| Err(e.clone())).collect();
        }
    }
    match tx.commit().await {
        Ok(()) => results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::internal("group commit", "not run"))))
            .collect(),
        Err(e) => fail_all(e),
    }
}

/// Splits `jobs` (indices into `batch`) into chunks that each run as one multi-statement query:
/// jobs with the same SQL together, in chunks of a power of two up to [`MAX_CHUNK`], so that a
/// statement text's joined forms are few and stay in the connection's statement cache.
fn plan(batch: &[Job], jobs: Vec<usize>) -> VecDeque<Vec<usize>> {
    let mut by_sql: Vec<(&str, Vec<usize>)> = Vec::new();
    for i in jobs {
        let sql = batch[i].sql.as_str();
        match by_sql.iter_mut().find(|(s, _)| *s == sql) {
            Some((_, same)) => same.push(i),
            None => by_sql.push((sql, vec![i])),
        }
    }
    let mut chunks = VecDeque::new();
    for (_, mut same) in by_sql {
        while !same.is_empty() {
            let params = batch[same[0]].args.len().max(1);
            let most = if anonymous_params(&batch[same[0]].sql) {
                1
            } else {
                MAX_CHUNK
            };
            let fits = same.len().min(most).min(MAX_PARAMS / params).max(1);
            // The largest power of two that fits.
            let size = 1 << fits.ilog2();
            let rest = same.split_off(size);
            chunks.push_back(std::mem::replace(&mut same, rest));
        }
    }
    chunks
}

/// One query text for the chunk's statements, each statement's `$n` renumbered past the
/// parameters of the statements before it, and their arguments in the same order.
fn joined(batch: &[Job], chunk: &[usize]) -> (String, Vec<Val>) {
    if let [only] = chunk {
        return (batch[*only].sql.clone(), batch[*only].args.clone());
    }
    let mut sql = String::new();
    let mut args = Vec::new();
    for &i in chunk {
        renumber(&batch[i].sql, args.len(), &mut sql);
        // A newline first, so a trailing `--` comment cannot swallow the separator.
        sql.push_str("\n;\n");
        args.extend(batch[i].args.iter().cloned());
    }
    (sql, args)
}

/// Whether `sql` has a `?` parameter outside quotes, which SQLite numbers by position and
/// [`renumber`] cannot shift.
fn anonymous_params(sql: &str) -> bool {
    let mut quote = None;
    sql.chars().any(|c| {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '?') => return true,
            _ => {}
        }
        false
    })
}

/// Appends `sql` to `out` with every `$n` parameter outside quotes shifted by `offset`.
fn renumber(sql: &str, offset: usize, out: &mut String) {
    let mut quote = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '$') => {
                let mut n = String::new();
                while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                    n.push(d);
                    chars.next();
                }
                if let Ok(n) = n.parse::<usize>() {
                    out.push_str(&(n + offset).to_string());
                } else {
                    out.push_str(&n);
                }
            }
            _ => {}
        }
    }
}

/// A migrated SQLite store in a temporary directory, for this file's tests.
#[cfg(test)]
async fn migrated_store() -> (crate::store::Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::migrated_store;
    use crate::store::{Doc, ListParams};

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
        let (store, _dir) = migrated_store().await;
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
mod chunk_tests {
    use super::*;

    fn job(sql: &str, args: Vec<Val>) -> (Job, oneshot::Receiver<StoreResult<u64>>) {
        let (done, wait) = oneshot::channel();
        let job = Job {
            sql: sql.to_string(),
            args,
            done,
        };
        (job, wait)
    }

    #[test]
    fn parameters_are_renumbered_outside_quotes_only() {
        let mut out = String::new();
        renumber(
            "INSERT INTO t (a, b) SELECT $1, $12 WHERE x = '$3 it''s' AND \"$4\" = $2",
            10,
            &mut out,
        );
        assert_eq!(
            out,
            "INSERT INTO t (a, b) SELECT $11, $22 WHERE x = '$3 it''s' AND \"$4\" = $12"
        );
    }

    #[test]
    fn chunks_group_the_same_statement_in_powers_of_two() {
        let mut batch = Vec::new();
        for i in 0..45 {
            let sql = if i % 9 == 4 { "B $1" } else { "A $1 $2" };
            batch.push(job(sql, vec![Val::Int(1); if i % 9 == 4 { 1 } else { 2 }]).0);
        }
        let chunks = plan(&batch, (0..45).collect());
        let sizes: Vec<(String, usize)> = chunks
            .iter()
            .map(|c| (batch[c[0]].sql.clone(), c.len()))
            .collect();
        // 40 A's (32 + 8), then 5 B's (4 + 1), each chunk one statement text.
        let want = [("A $1 $2", 32), ("A $1 $2", 8), ("B $1", 4), ("B $1", 1)];
        assert_eq!(
            sizes,
            want.map(|(s, n)| (s.to_string(), n)).to_vec(),
            "{chunks:?}"
        );
        for c in &chunks {
            assert!(c.iter().all(|&i| batch[i].sql == batch[c[0]].sql));
        }
        let mut all: Vec<usize> = chunks.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..45).collect::<Vec<_>>(), "every job exactly once");
    }

    #[test]
    fn a_statement_with_question_mark_parameters_runs_alone() {
        assert!(anonymous_params("SELECT ? WHERE 1"));
        assert!(anonymous_params("SELECT ?2"));
        assert!(!anonymous_params("SELECT $1 WHERE a = '?' AND \"b?\" = 1"));
        let batch: Vec<Job> = (0..4).map(|_| job("Q ?", vec![Val::Int(0)]).0).collect();
        let chunks = plan(&batch, (0..4).collect());
        assert_eq!(chunks.len(), 4, "{chunks:?}");
    }

    #[test]
    fn a_chunk_never_exceeds_sqlites_parameter_numbers() {
        let batch: Vec<Job> = (0..8)
            .map(|_| job("X", vec![Val::Int(0); 10_000]).0)
            .collect();
        let chunks = plan(&batch, (0..8).collect());
        assert!(chunks.iter().all(|c| c.len() * 10_000 <= MAX_PARAMS));
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 8);
    }

    /// A constraint failure in the middle of a joined chunk fails that statement alone; the
    /// statements on both sides of it commit, with their own row counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_inside_a_chunk_fails_alone() {
        let (store, _dir) = migrated_store().await;
        let insert = "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)";
        let update = "UPDATE projects SET name = $1 WHERE id = $2";
        let ids = ["a", "b", "c", "b", "d", "e", "f", "g", "h", "c"];
        let mut batch = Vec::new();
        let mut waits = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let (j, w) = job(
                insert,
                vec![
                    Val::Text(id.to_string()),
                    Val::Text(format!("n{n}")),
                    Val::Int(n as i64),
                ],
            );
            batch.push(j);
            waits.push(w);
        }
        for id in ["a", "zz"] {
            let (j, w) = job(
                update,
                vec![Val::Text("renamed".into()), Val::Text(id.into())],
            );
            batch.push(j);
            waits.push(w);
        }
        let results = commit(&store.write_pool, &batch).await;
        let shown: Vec<Result<u64, ()>> =
            results.iter().map(|r| r.clone().map_err(|_| ())).collect();
        let ok = Ok::<u64, ()>;
        assert_eq!(
            shown,
            vec![
                ok(1),
                ok(1),
                ok(1),
                Err(()),
                ok(1),
                ok(1),
                ok(1),
                ok(1),
                ok(1),
                Err(()),
                ok(1),
                ok(0)
            ]
        );
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, name FROM projects WHERE id <> 'default' ORDER BY id")
                .fetch_all(store.read())
                .await
                .unwrap();
        let want: Vec<(String, String)> = [
            ("a", "renamed"),
            ("b", "n1"),
            ("c", "n2"),
            ("d", "n4"),
            ("e", "n5"),
            ("f", "n6"),
            ("g", "n7"),
            ("h", "n8"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(rows, want);
        drop(waits);
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
            .fetch_one(b.write())
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
