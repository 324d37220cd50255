//! What can go wrong in the store, said without HTTP: the API maps these to status codes and
//! wire messages in one place (`error.rs`), the engine and ingestion decide what they mean
//! for a run or a file.

/// A store failure. Cheap to clone: SQLite's group commit hands one failure to every waiter of
/// a batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No object of this kind with this id in the project (or it belongs to another one).
    #[error("no {kind} with id '{id}'")]
    NotFound { kind: &'static str, id: String },
    /// A row the statement refers to was deleted concurrently (a foreign key failed).
    #[error("an object this statement refers to no longer exists")]
    Vanished,
    /// A concurrent change won (a unique key failed).
    #[error("the object was changed concurrently")]
    Conflict,
    /// The thread already has an active run (the one-active-run-per-thread index).
    #[error("thread {thread_id} already has an active run {run_id}")]
    ThreadLocked { thread_id: String, run_id: String },
    /// A list cursor (`after`/`before`) names no object of the list, live or recently deleted.
    #[error("cursor '{id}' names no object of this list")]
    UnknownCursor { param: &'static str, id: String },
    /// The database cannot be reached right now (pool exhausted or closed, I/O).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a failed statement, a stored document that does not decode.
    #[error("{context}: {cause}")]
    Internal {
        context: &'static str,
        cause: String,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn not_found(kind: &'static str, id: &str) -> StoreError {
        StoreError::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    pub fn internal(context: &'static str, cause: impl std::fmt::Display) -> StoreError {
        StoreError::Internal {
            context,
            cause: cause.to_string(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            match db.kind() {
                sqlx::error::ErrorKind::ForeignKeyViolation => return StoreError::Vanished,
                sqlx::error::ErrorKind::UniqueViolation => return StoreError::Conflict,
                _ => {}
            }
        }
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::internal("database error", other),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        // Only documents this server wrote are decoded here.
        StoreError::internal("stored JSON could not be decoded", e)
    }
}
