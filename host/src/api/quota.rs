//! Storage quotas at the edge: what a project holds is counted before a request adds to it,
//! and a request that would go over is refused with 429 `insufficient_quota` before it writes
//! (and streamed uploads get their byte bound and its error here).
//! Nothing is counted when the operator set no storage quota.

use assistants_core::blobs::{BlobError, PutError};
use assistants_core::limits::{QuotaExceeded, Usage};

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;

/// The project's usage, when any storage quota is set.
async fn usage(state: &AppState, project: &str) -> ApiResult<Option<Usage>> {
    if !state.settings.limits.limits_storage() {
        return Ok(None);
    }
    Ok(Some(state.store.project_usage(project).await?))
}

/// How many bytes a streamed upload may write, and whether that bound is the project's quota
/// (then going past it is a quota error, not a too-large one).
pub struct ByteRoom {
    pub limit: u64,
    quota: Option<u64>,
}

impl ByteRoom {
    /// Refuses `bytes` that do not fit.
    pub fn require(&self, bytes: u64) -> ApiResult<()> {
        match self.quota {
            Some(limit) if bytes > self.limit => Err(QuotaExceeded::Bytes { limit }.into()),
            _ => Ok(()),
        }
    }

    /// The error for a failed streamed write of `param` under this room.
    pub fn put_error(&self, param: &str, e: PutError) -> ApiError {
        match (e, self.quota) {
            (PutError::TooLarge { .. }, Some(limit)) => QuotaExceeded::Bytes { limit }.into(),
            (e, _) => put_error(param, e),
        }
    }
}

/// Room for the bytes of a new file or upload part, at most `upload_limit`; with `new_file`,
/// the project must also have room for one more file.
pub async fn room_for_bytes(
    state: &AppState,
    project: &str,
    upload_limit: u64,
    new_file: bool,
) -> ApiResult<ByteRoom> {
    let limits = state.settings.limits;
    let Some(usage) = usage(state, project).await? else {
        return Ok(ByteRoom {
            limit: upload_limit,
            quota: None,
        });
    };
    let adding = Usage {
        files: new_file as u64,
        ..Usage::default()
    };
    limits.check(usage, adding)?;
    Ok(match limits.bytes_left(usage) {
        Some(left) if left < upload_limit => ByteRoom {
            limit: left,
            quota: limits.max_storage_bytes,
        },
        _ => ByteRoom {
            limit: upload_limit,
            quota: None,
        },
    })
}

/// Refuses one more file when the project is at its files quota (bytes were counted already,
/// as upload parts).
pub async fn room_for_file(state: &AppState, project: &str) -> ApiResult<()> {
    if let Some(usage) = usage(state, project).await? {
        let adding = Usage {
            files: 1,
            ..Usage::default()
        };
        state.settings.limits.check(usage, adding)?;
    }
    Ok(())
}

/// Refuses new vector-store files when the project's chunks already fill its quota (a file
/// that would go over once chunked fails its ingestion instead).
pub async fn room_for_chunks(state: &AppState, project: &str) -> ApiResult<()> {
    if let Some(usage) = usage(state, project).await? {
        state.settings.limits.may_add_chunks(usage)?;
    }
    Ok(())
}

/// Maps a failed streamed write to the client-facing error.
fn put_error(param: &str, e: PutError) -> ApiError {
    match e {
        PutError::TooLarge { limit } => ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("File is too large: the maximum upload size is {limit} bytes."),
        )
        .with_code("file_too_large"),
        PutError::Source(msg) => {
            ApiError::invalid(param, format!("Could not read the uploaded file: {msg}."))
        }
        PutError::Store(e) => ApiError::from(BlobError::from(e)),
    }
}
