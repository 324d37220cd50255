//! Runs and run steps.

use super::ids::{AssistantId, RunId, StepId, ThreadId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Metadata;
pub use crate::model::status::{RunStatus, StepStatus};

/// A run, exactly as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub object: String,
    pub created_at: i64,
    pub thread_id: ThreadId,
    pub assistant_id: AssistantId,
    pub status: RunStatus,
    pub required_action: Option<Value>,
    pub last_error: Option<Value>,
    pub expires_at: Option<i64>,
    pub started_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub incomplete_details: Option<Value>,
    pub model: String,
    pub instructions: String,
    pub tools: Vec<Value>,
    pub metadata: Metadata,
    pub usage: Option<Value>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_prompt_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub truncation_strategy: Value,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub response_format: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
}

/// A run step, exactly as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStep {
    pub id: StepId,
    pub object: String,
    pub created_at: i64,
    pub run_id: RunId,
    pub assistant_id: AssistantId,
    pub thread_id: ThreadId,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: StepStatus,
    pub cancelled_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<Value>,
    pub step_details: Value,
    pub usage: Option<Value>,
    pub metadata: Metadata,
}

impl Run {
    /// Moves to `status`, keeping the timestamps the wire promises in step: `expires_at` is
    /// null once terminal, each terminal status sets its own `*_at`.
    pub fn set_status(&mut self, status: RunStatus, now: i64) {
        self.status = status;
        match status {
            RunStatus::InProgress if self.started_at.is_none() => self.started_at = Some(now),
            RunStatus::Completed | RunStatus::Incomplete => self.completed_at = Some(now),
            RunStatus::Cancelled => self.cancelled_at = Some(now),
            RunStatus::Failed => self.failed_at = Some(now),
            _ => {}
        }
        if status != RunStatus::RequiresAction {
            self.required_action = None;
        }
        if status.is_terminal() {
            self.expires_at = None;
        }
    }
}

/// `{prompt_tokens, completion_tokens, total_tokens}`.
pub fn usage(prompt: u64, completion: u64) -> Value {
    serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}
/// Drops `content` from the file_search results of a step's tool calls (it is returned only
/// when `include[]` asks for it).
pub fn strip_result_content(step: &mut Value) {
    if let Some(calls) = step
        .pointer_mut("/step_details/tool_calls")
        .and_then(Value::as_array_mut)
    {
        for c in calls {
            if let Some(results) = c
                .pointer_mut("/file_search/results")
                .and_then(Value::as_array_mut)
            {
                for r in results {
                    if let Some(o) = r.as_object_mut() {
                        o.remove("content");
                    }
                }
            }
        }
    }
}
