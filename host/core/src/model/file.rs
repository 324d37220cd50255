//! An uploaded file's record (its bytes live in the blob store).

use super::ids::FileId;
use serde::{Deserialize, Serialize};

use super::status::FileStatus;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileObject {
    pub id: FileId,
    pub object: String,
    pub bytes: i64,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    pub filename: String,
    pub purpose: String,
    pub status: FileStatus,
    pub status_details: Option<String>,
}
