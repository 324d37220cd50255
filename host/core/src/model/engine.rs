//! The engine record: a run's persisted progress (the `engine` column), and the strategy
//! events and actions it holds.
//!
//! These are the engine's own types, not the WIT bindings of the strategy world: a stored run
//! must load whatever the plugin contract becomes, so the plugin host converts between the two
//! beside its `bindgen!` (`plugins::strategy`), and a WIT change cannot change stored runs. The
//! serde shapes are those the bindings had when records were first written (externally tagged
//! variants, snake_case fields); `tests` below loads such a record.

use super::ids::{MessageId, StepId, VectorStoreId};
use serde::{Deserialize, Serialize};

/// A message of the conversation, as the model should see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    /// For `role: tool`: the call this message answers.
    pub tool_call_id: Option<String>,
    /// For `role: assistant`: the tool calls the model made in this turn.
    pub tool_calls: Vec<ToolCall>,
}

/// A call of a tool, by the model or by the strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments_json: String,
}

/// A tool as a model is offered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters_json: String,
    pub strict: bool,
}

/// A request to the chat-completions model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRequest {
    pub messages: Vec<ChatMessage>,
    /// Tools offered for native function calling (empty for text protocols like ReAct).
    pub tools: Vec<ToolSpec>,
    pub tool_choice_json: String,
    pub response_format_json: String,
    /// Stop sequences, e.g. `Observation:` for ReAct.
    pub stop: Vec<String>,
}

/// What of a streaming answer clients see while the call runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PublishMode {
    /// Everything, as message deltas of the run's answer.
    Message,
    /// Nothing (the strategy emits a message itself once it has parsed the text).
    Silent,
    /// Only what follows this marker (e.g. `Final Answer:`).
    AfterMarker(String),
}

/// What the LLM answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResult {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// The outcome of one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub tool_call_id: String,
    pub output: String,
    /// The tool failed; `output` says why.
    pub is_error: bool,
}

/// What just happened, as the strategy is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The run starts (first step).
    Start,
    /// The LLM call of the previous action finished.
    LlmCompleted(LlmResult),
    /// The server-side tool calls of the previous action finished.
    ToolsCompleted(Vec<ToolResult>),
    /// The client submitted outputs for the calls of `RequireClientAction`.
    OutputsSubmitted(Vec<ToolResult>),
}

/// Why a strategy finished a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    Completed,
    MaxCompletionTokens,
    MaxPromptTokens,
}

/// The one thing the engine does next, as a strategy chose it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Call the LLM and report back with `LlmCompleted`.
    CallLlm(LlmRequest, PublishMode),
    /// Run these server-side tools and report back with `ToolsCompleted`.
    CallTools(Vec<ToolCall>),
    /// Ask the client for these calls' outputs (`requires_action`).
    RequireClientAction(Vec<ToolCall>),
    /// Add an assistant message with this text, then step again with the same event.
    EmitMessage(String),
    /// End the run.
    Finish(FinishReason),
    /// End the run as `failed` with this message.
    Fail(String),
}

/// Whether a tool runs in the host's sandbox or is answered by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolLocation {
    Server,
    Client,
}

/// A tool the run may use: its spec and who executes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTool {
    pub spec: ToolSpec,
    pub location: ToolLocation,
}

/// Limits and sampling the run asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLimits {
    pub max_prompt_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub parallel_tool_calls: bool,
}

/// Everything about a run a strategy sees that does not change between steps (built afresh
/// for each step, never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct RunInput {
    pub model: String,
    pub instructions: String,
    /// The conversation after truncation, oldest first.
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<RunTool>,
    pub tool_choice_json: String,
    pub response_format_json: String,
    pub limits: RunLimits,
}

/// A strategy's answer to one step: its next opaque state and its action.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub state: Vec<u8>,
    pub action: Action,
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
    /// A tool of a remote MCP server, called through the `mcp` component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<super::mcp::McpTool>,
}

/// Ids chosen before an action is performed, so performing it again after a crash updates
/// the same message and steps instead of adding new ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionIds {
    pub message_step: StepId,
    pub message: MessageId,
    pub tool_step: StepId,
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
    pub vector_store_ids: Vec<VectorStoreId>,
    /// The run's own code_interpreter files (create-thread-and-run's `tool_resources`),
    /// which replace the assistant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_file_ids: Option<Vec<String>>,
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
    /// File ids of figures code_interpreter displayed since the last answer message: the next
    /// one shows them as `image_file` parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Files the code wrote that answers linked as `sandbox:/mnt/data/…`, kept as files of the
    /// project: `file_path` annotations point at them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sandbox_files: Vec<SandboxFile>,
    /// The response this run produces (a run of the Responses surface), if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<super::response::ResponseBinding>,
    /// The remote MCP servers of an assistant's run (the extension `mcp` tool of assistants
    /// and runs); a response's run keeps its own in `response`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<super::mcp::McpServer>,
}

/// A `sandbox:` path an answer linked, and the file that now holds what was there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxFile {
    /// The path as written after `sandbox:`, e.g. `/mnt/data/report.csv`.
    pub path: String,
    pub file_id: String,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenToolStep {
    pub id: StepId,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// An engine record serialised for the store ([`EngineRecord::to_json`]).
///
/// Made before a transaction opens wherever the record does not change inside it: a record
/// can be large (the strategy's state, the model request of the next action), and inside a
/// write transaction SQLite's one writer, and every other project's write, waits for it.
pub struct EngineJson(String);

impl EngineJson {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl EngineRecord {
    pub fn to_json(&self) -> serde_json::Result<EngineJson> {
        serde_json::to_string(self).map(EngineJson)
    }

    /// The run's remote MCP servers: its response's, or an assistant run's own.
    pub fn mcp_servers(&self) -> &[super::mcp::McpServer] {
        match &self.response {
            Some(r) => &r.mcp,
            None => &self.mcp,
        }
    }

    pub fn mcp_servers_mut(&mut self) -> &mut Vec<super::mcp::McpServer> {
        match &mut self.response {
            Some(r) => &mut r.mcp,
            None => &mut self.mcp,
        }
    }

    /// How many more calls of the server's tools a response may make (`max_tool_calls`);
    /// `None` when unbounded.
    pub fn tool_calls_left(&self) -> Option<u32> {
        let max = self.response.as_ref()?.max_tool_calls?;
        Some(max.saturating_sub(self.plugin_calls.values().sum()))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine records as the first release's code wrote them (its strategy events and actions
    /// were the WIT bindings' own serde shapes): one record per `Next` case, every event and
    /// action variant among them. Runs in flight when a server is upgraded must load, and must
    /// be written back unchanged.
    const RECORDS_V1: &str = include_str!("fixtures/engine-records-v1.json");

    #[test]
    fn records_written_by_the_first_release_load_and_round_trip() {
        let stored: serde_json::Value = serde_json::from_str(RECORDS_V1).unwrap();
        let records: Vec<EngineRecord> = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(records.len(), 16);
        assert_eq!(serde_json::to_value(&records).unwrap(), stored);
        assert!(matches!(
            &records[4].next,
            Next::Step { event: Event::ToolsCompleted(r) } if r[0].output == "sunny"
        ));
        let Next::Perform { action, .. } = &records[8].next else {
            panic!("expected a Perform record");
        };
        assert!(matches!(
            &**action,
            Action::CallLlm(req, PublishMode::AfterMarker(m))
                if m == "Final Answer:" && req.stop == ["Observation:"]
        ));
        assert_eq!(records[0].state_bytes(), vec![1, 2, 3]);
    }
}
