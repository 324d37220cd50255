//! A vector store's stored record (file counts and status are derived from its files on
//! read, never stored).

use super::ids::VectorStoreId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Metadata;

/// The stored part of a vector store; counts and status are added when it is read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VectorStoreDoc {
    pub id: VectorStoreId,
    pub created_at: i64,
    pub name: Option<String>,
    pub metadata: Metadata,
    pub expires_after: Option<Value>,
}
