//! The database: one [`Store`] over sqlx's `Any` driver serves SQLite and PostgreSQL alike.
//!
//! Handlers never see sqlx. They call typed methods here (`get`, `insert`, `list`, … for documents
//! and the resource-specific modules below), which keeps every SQL string in this directory.
//! The SQL is written once in the dialect both databases accept (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`); the few places that differ ask [`Store::backend`].
//!
//! SQLite has one writer at a time. Rather than let connections race for the write lock and
//! fail with `SQLITE_BUSY` (deferred transactions that upgrade from read to write do not wait),
//! SQLite gets a write pool of exactly one connection, which serialises writers in-process, and
//! a separate read pool for concurrent readers (WAL lets them run beside the writer).

mod checkpoint;
pub mod crawls;
mod docs;
mod error;
mod group;
mod held;
mod items;
pub mod keys;
mod lanes;
mod list;
pub mod mcp_headers;
mod plugins;
mod responses;
pub mod runs;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
mod uploads;
mod usage;
pub mod vector_stores;

pub use docs::Doc;
pub use error::{StoreError, StoreResult};
pub use items::ItemsOf;
pub use list::{ListEnvelope, ListParams, Order, Page};

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

/// Which SQL database is behind the pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    /// Reached through [`Store::read`] and [`Store::write`] (see `held`).
    read_pool: AnyPool,
    write_pool: AnyPool,
    backend: Backend,
    /// Group commit of single-row inserts (SQLite only; see `group`).
    group: Option<group::GroupWriter>,
    /// Turns at SQLite's one writer, clients' writes first (see `lanes`); none on PostgreSQL.
    lanes: Option<lanes::WriterLanes>,
    /// Keeps the SQLite checkpointer running while any clone of the store lives.
    _checkpointer: Option<std::sync::Arc<tokio_util::sync::DropGuard>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). Does not migrate.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("unsupported database URL scheme (use postgres:// or sqlite://): {url}");
        };
        match backend {
            Backend::Postgres => {
                let opts = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .with_context(|| format!("connecting to {}", crate::redact::redact_url(url)))?;
                Ok(Store {
                    read_pool: pool.clone(),
                    write_pool: pool,
                    backend,
                    group: None,
                    lanes: None,
                    _checkpointer: None,
                })
            }
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                if let Some(dir) = sqlite_path(&url).and_then(|p| p.parent().map(|d| d.to_owned()))
                {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(&dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                    }
                }
                let opts = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                // No ping before handing out a connection: a SQLite connection is a handle to a
                // local file, not a socket that can drop, and the ping is a round trip to the
                // connection's thread on every request.
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| Box::pin(async move { sqlite_pragmas(conn).await }))
                    .connect_with(opts.clone())
                    .await
                    .with_context(|| format!("opening {url}"))?;
                // WAL is a property of the database file: set once, readers then never block the writer.
                write.execute("PRAGMA journal_mode = WAL").await?;
                let opts_for_checkpoints = opts.clone();
                let read = AnyPoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| Box::pin(async move { sqlite_pragmas(conn).await }))
                    .connect_with(opts)
                    .await?;
                let lanes = lanes::WriterLanes::default();
                let group = Some(group::GroupWriter::spawn(write.clone(), lanes.clone()));
                let checkpointer = checkpoint::spawn(opts_for_checkpoints).await?;
                Ok(Store {
                    read_pool: read,
                    write_pool: write,
                    backend,
                    group,
                    lanes: Some(lanes),
                    _checkpointer: Some(std::sync::Arc::new(checkpointer)),
                })
            }
        }
    }

    /// Applies the migrations for this backend (idempotent).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.write_pool)
            .await
            .context("running database migrations")?;
        Ok(())
    }

    /// The read pool for one query (see `held`: the caller stays critical until it ends).
    pub(crate) fn read(&self) -> held::Held<'_> {
        held::Held::new(&self.read_pool)
    }

    /// The write pool for one statement outside a transaction (see `held`).
    pub(crate) fn write(&self) -> held::Held<'_> {
        held::Held::new(&self.write_pool)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// ` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose single writer already serialises.
    fn lock_rows(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Cheap liveness probe of the database.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.read()).await?;
        Ok(())
    }
}

async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    // NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the last
    // commits) and avoids an fsync per commit; foreign keys drive the cascading deletes;
    // checkpoints run in the background (see `checkpoint`), not inside a commit. The WAL file
    // is cut back to 64 MiB after checkpoints: without a limit it keeps the size of the largest
    // burst of writes (measured: 9 GB after writing a million embedded chunks).
    conn.execute(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;",
    )
    .await
    .map(|_| ())
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// An open write transaction. Handlers compose several writes into one atomic unit with it
/// (a thread and its first messages) without seeing sqlx.
pub struct Tx(
    pub(crate) sqlx::Transaction<'static, sqlx::Any>,
    /// The turn at SQLite's writer, given up after the transaction ends (fields drop in order).
    Option<lanes::Turn>,
    /// The caller stays critical while it holds the connection (see `held`); on SQLite the
    /// turn is critical from the moment it is asked for, on PostgreSQL (no turns) this is.
    crate::lowprio::Critical,
);

impl Tx {
    pub async fn commit(self) -> StoreResult<()> {
        let Tx(tx, turn, critical) = self;
        tx.commit().await?;
        drop(turn);
        drop(critical);
        crate::lowprio::back_to_low().await;
        Ok(())
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Store {
    /// Starts a write transaction.
    ///
    /// On SQLite the transaction takes the write lock up front (`BEGIN IMMEDIATE`): a deferred
    /// transaction that reads first and writes later fails at once with "database is locked"
    /// when another process (say `assistants keys create` beside a running server) holds the
    /// lock, whereas an immediate one waits for it under the busy timeout.
    pub async fn begin(&self) -> StoreResult<Tx> {
        self.begin_in(lanes::Lane::Interactive).await
    }

    /// [`Store::begin`] for background work (the run engine, ingestion): on SQLite it waits
    /// while clients' writes are waiting (see `lanes`).
    pub(crate) async fn begin_background(&self) -> StoreResult<Tx> {
        self.begin_in(lanes::Lane::Background).await
    }

    async fn begin_in(&self, lane: lanes::Lane) -> StoreResult<Tx> {
        let critical = crate::lowprio::critical();
        let turn = match &self.lanes {
            Some(lanes) => Some(lanes.turn(lane).await),
            None => None,
        };
        let tx = begin_write(&self.write_pool, self.backend).await?;
        Ok(Tx(tx, turn, critical))
    }
}

/// A value bound to a `$n` placeholder in the generic document queries.
#[derive(Debug, Clone)]
pub enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    OptBytes(Option<Vec<u8>>),
}

fn bind<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    v: &Val,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match v {
        Val::Text(s) => q.bind(s.clone()),
        Val::OptText(s) => q.bind(s.clone()),
        Val::Int(i) => q.bind(*i),
        Val::OptInt(i) => q.bind(*i),
        Val::OptBytes(b) => q.bind(b.clone()),
    }
}

/// A write transaction on `pool`, immediate on SQLite (see [`Store::begin`]).
async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

/// Binds every value in order.
fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &[Val],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for v in args {
        q = bind(q, v);
    }
    q
}

/// A migrated SQLite store in a temporary directory holding vector store `vs_1` of project
/// `p`: where the store's unit tests start.
#[cfg(test)]
pub(crate) async fn test_store_with_vs() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    sqlx::query(
        "INSERT INTO vector_stores (id, project_id, created_at, last_active_at, body) \
         VALUES ('vs_1', 'p', 0, 0, '{}')",
    )
    .execute(store.write())
    .await
    .unwrap();
    (store, dir)
}

#[cfg(test)]
mod tests {
    /// Both backends must apply the same migration versions, or one silently lags the other.
    #[test]
    fn sqlite_and_postgres_migrations_list_the_same_versions() {
        let versions = |m: &sqlx::migrate::Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            versions(&super::SQLITE_MIGRATIONS),
            versions(&super::POSTGRES_MIGRATIONS)
        );
        assert!(super::SQLITE_MIGRATIONS.iter().next().is_some());
    }
}
