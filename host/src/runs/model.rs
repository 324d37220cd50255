//! Runs and run steps as stored and sent on the wire, and the engine's persisted progress.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::common::Metadata;
use crate::plugins::bindings::{Action, Event};
pub use assistants_worker::status::RunStatus;

/// A run, exactly as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub thread_id: String,
    pub assistant_id: String,
    pub status: String,
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

crate::impl_doc!(Run, table = "runs", name = "run");

impl Run {
    pub fn status(&self) -> RunStatus {
        self.status.parse().unwrap_or(RunStatus::Failed)
    }

    /// Moves to `status`, keeping the timestamps the wire promises in step: `expires_at` is
    /// null once terminal, each terminal status sets its own `*_at`.
    pub fn set_status(&mut self, status: RunStatus, now: i64) {
        self.status = status.as_str().to_string();
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

/// A run step, exactly as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStep {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub run_id: String,
    pub assistant_id: String,
    pub thread_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub cancelled_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<Value>,
    pub step_details: Value,
    pub usage: Option<Value>,
    pub metadata: Metadata,
}

crate::impl_doc!(RunStep, table = "run_steps", name = "run step");

impl RunStep {
    /// The indexed columns of a step row besides the document itself.
    pub fn columns(&self) -> [(&'static str, crate::store::Val); 1] {
        [("run_id", crate::store::Val::Text(self.run_id.clone()))]
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

/// A tool the run offers the model that a plugin executes, pinned to the component digest the
/// run started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolBinding {
    /// The function name the model sees.
    pub exposed: String,
    pub plugin: String,
    pub digest: String,
    /// The tool's own name within the plugin.
    pub tool: String,
}

/// Ids chosen before an action is performed, so performing it again after a crash updates
/// the same message and steps instead of adding new ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionIds {
    pub message_step: String,
    pub message: String,
    pub tool_step: String,
}

/// What the engine does next with a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Next {
    /// Call the strategy with this event.
    Step { event: Event },
    /// Perform the action the strategy chose after `event`.
    Perform {
        action: Box<Action>,
        event: Event,
        ids: ActionIds,
    },
    /// Waiting in `requires_action` for the client's tool outputs.
    AwaitOutputs,
    /// Nothing: the run is terminal.
    Done,
}

/// The engine's persisted progress, written with every step (the `engine` column).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineRecord {
    /// Strategy plugin id and the component digest the run is pinned to.
    pub strategy: String,
    pub digest: String,
    /// The strategy's opaque state, base64.
    pub state: String,
    pub next: Next,
    pub tools: Vec<ToolBinding>,
    /// Vector stores the run's retrieval tools may search.
    pub vector_store_ids: Vec<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The `tool_calls` step whose calls still wait for outputs, with the usage of the LLM
    /// call that made them (added to the step when it completes).
    pub open_tool_step: Option<OpenToolStep>,
    /// Strategy steps taken, a guard against strategies that never finish.
    pub steps: u32,
    /// Passages file_search returned in this run, which labels in answers cite.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Calls made so far per plugin id (each call's `sequence` in its options).
    #[serde(default)]
    pub plugin_calls: std::collections::BTreeMap<String, u32>,
    /// `include[]` asked for file_search result content in streamed step events.
    #[serde(default)]
    pub include_content: bool,
}

/// One citable passage a tool returned in this run: label `【{sequence}:{index}†{filename}】`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    pub sequence: u32,
    pub index: u32,
    /// The cited file (file_search, or a plugin's `file` annotation); empty for web sources.
    pub file_id: String,
    /// The label's name part (file name, or page title).
    pub filename: String,
    /// A web source (a plugin's `url` annotation): cited as `url_citation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenToolStep {
    pub id: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl EngineRecord {
    pub fn state_bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.state)
            .unwrap_or_default()
    }

    pub fn set_state(&mut self, bytes: &[u8]) {
        use base64::Engine as _;
        self.state = base64::engine::general_purpose::STANDARD.encode(bytes);
    }
}
