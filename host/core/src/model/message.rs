//! A message of a thread, written by a client or by a run.

use super::ids::{AssistantId, MessageId, RunId, ThreadId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::status::MessageStatus;
use super::Metadata;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub object: String,
    pub created_at: i64,
    pub thread_id: ThreadId,
    pub status: MessageStatus,
    pub incomplete_details: Option<Value>,
    pub completed_at: Option<i64>,
    pub incomplete_at: Option<i64>,
    pub role: String,
    pub content: Vec<Value>,
    pub assistant_id: Option<AssistantId>,
    pub run_id: Option<RunId>,
    pub attachments: Vec<Value>,
    pub metadata: Metadata,
}
