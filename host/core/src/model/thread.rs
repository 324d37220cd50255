//! A thread: the conversation runs read and write messages in.

use super::ids::ThreadId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Metadata;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Thread {
    pub id: ThreadId,
    pub object: String,
    pub created_at: i64,
    pub tool_resources: Value,
    pub metadata: Metadata,
}
