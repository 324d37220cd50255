//! A multipart upload in progress, which becomes a file when completed.

use super::ids::UploadId;
use serde::{Deserialize, Serialize};

use super::file::FileObject;
use super::status::UploadStatus;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub id: UploadId,
    pub object: String,
    pub bytes: i64,
    pub created_at: i64,
    pub filename: String,
    pub purpose: String,
    pub status: UploadStatus,
    pub expires_at: i64,
    pub file: Option<FileObject>,
    /// Not in the spec's Upload object, but kept and echoed: SDKs ignore extra fields.
    pub mime_type: String,
}
