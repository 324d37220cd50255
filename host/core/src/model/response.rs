//! Responses (the Responses surface), and what ties one to the run that produces it.
//!
//! A response is a run of the engine over items: the engine claims, drives, fences, resumes
//! and ends it like any run, with the same strategies, tools, queue and leases. What the run
//! needs besides is derived from the response id, so nothing has to map one to the other:
//!
//! - its run is `run_<tail>` (the tail is the response id without `resp_`);
//! - its lock: runs belong to a thread, and a thread has one active run at a time. A response
//!   in a conversation runs on `thread_<tail of the conversation>`, so a conversation has one
//!   response in progress at a time, as a thread has one run; any other on
//!   `thread_<tail of the response>`. These threads are rows under a project key of their own
//!   ([`lock_project`]) that no request carries, so no Assistants call ever finds one;
//! - its assistant is `asst_<tail>`, which names no assistant (a run's field, unused).
//!
//! The engine writes the run's messages and steps as for any run; the worker projects them
//! into output items (`assistants_worker::responses`) and, in the transaction that ends the
//! run, writes the finished response ([`ResponseObject`]) and adds its items to its
//! conversation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{AssistantId, ConversationId, ResponseId, RunId, ThreadId};
use super::RunStatus;

/// How long a finished background response can still be streamed again: its recorded events
/// are pruned after that (a day; `responses.events_until`, set when it ends).
pub const EVENTS_KEPT_SECS: i64 = 24 * 60 * 60;

/// The statuses a response's row holds once its run has ended.
pub const FINISHED: [&str; 4] = ["completed", "incomplete", "failed", "cancelled"];

/// A response as clients see it: the request's fields from creation, and the status, output
/// and usage written when its run ends. Stored whole (`responses.body`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseObject {
    pub id: ResponseId,
    pub created_at: i64,
    /// The other wire fields (`object`, `status`, `model`, `output`, `usage`, …).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl ResponseObject {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.fields.insert(key.to_string(), value);
    }

    pub fn status(&self) -> &str {
        self.get("status").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether the client asked not to keep it (`store: false`): not retrievable afterwards.
    pub fn stored(&self) -> bool {
        self.get("store").and_then(Value::as_bool).unwrap_or(true)
    }

    /// Its run has ended: the row holds its final status and output.
    pub fn finished(&self) -> bool {
        FINISHED.contains(&self.status())
    }

    /// The id, `created_at` and every other field as one JSON object (the wire shape).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// What the engine keeps about the response a run produces (in its engine record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseBinding {
    pub id: ResponseId,
    /// The conversation its input and output items are added to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationId>,
    /// The response it continues (its chain's items are the context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ResponseId>,
    /// `include[]` values that add to the output (`file_search_call.results`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Created with `background: true`: its run's events are recorded, so it can be streamed
    /// again from any point.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// Most calls of the server's tools the response may make (`max_tool_calls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<u32>,
    /// The reasoning the model streamed, in order, each before the item it preceded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<Reasoning>,
    /// The arguments of server-side calls whose run step does not keep them (file_search
    /// keeps only its results), by call id: their items show the query.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub arguments: std::collections::BTreeMap<String, String>,
    /// Its remote MCP servers (`mcp` tools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<super::mcp::McpServer>,
    /// The `mcp_list_tools` items this response made, in order (they open its output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_lists: Vec<Value>,
    /// What the model is told about the approval requests this response's input answered, by
    /// request id: the approved call's result, or that it was declined.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mcp_answers: std::collections::BTreeMap<String, String>,
}

/// Reasoning text a model streamed during one of a response's LLM calls (a `reasoning` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// The item's id (`rs_` + the tail of the answer message id chosen for that call).
    pub id: String,
    pub text: String,
    /// The item it came before: the call's answer message, or its first tool call; `None`
    /// when the call produced neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// The `include[]` value that adds file_search results to `file_search_call` items.
pub const INCLUDE_FILE_SEARCH_RESULTS: &str = "file_search_call.results";

/// A compaction item's content for `summary`. Not encrypted, unlike OpenAI's: a self-hosted
/// server's clients own their conversations, and a summary they edit only changes their own
/// context. Versioned, so the format can change without misreading older items.
pub fn compaction_content(summary: &str) -> String {
    use base64::Engine as _;
    format!(
        "{COMPACTION_V1}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(summary)
    )
}

/// The summary in a compaction item's content; `None` if this server did not make it.
pub fn compaction_summary(content: &str) -> Option<String> {
    use base64::Engine as _;
    let encoded = content.strip_prefix(COMPACTION_V1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

const COMPACTION_V1: &str = "asst-compaction-v1.";

/// The run that produces the response.
pub fn run_id(response: &ResponseId) -> RunId {
    // A typed id's tail is id characters, so the parse cannot fail.
    RunId::parse(&format!("run_{}", response.tail())).expect("a run id")
}

/// The response a run produces, if it is a response's run (`run_<tail>` of `resp_<tail>`).
pub fn response_of(run: &RunId) -> ResponseId {
    ResponseId::parse(&format!("resp_{}", run.tail())).expect("a response id")
}

/// The thread a response's run locks: its conversation's, or its own.
pub fn lock_thread(response: &ResponseId, conversation: Option<&ConversationId>) -> ThreadId {
    let tail = conversation.map_or(response.tail(), |c| c.tail());
    ThreadId::parse(&format!("thread_{tail}")).expect("a thread id")
}

/// The assistant field of a response's run (names no assistant).
pub fn run_assistant(response: &ResponseId) -> AssistantId {
    AssistantId::parse(&format!("asst_{}", response.tail())).expect("an assistant id")
}

/// The project key the lock threads of `project`'s responses are stored under: never a
/// project id (those are `proj_…`), so no request's project finds them.
pub fn lock_project(project: &str) -> String {
    format!("responses:{project}")
}

/// A response's status for its run's.
pub fn status_of(run: RunStatus) -> &'static str {
    match run {
        RunStatus::Queued => "queued",
        // A response never waits for the client (its function calls end it), and one being
        // cancelled is still running until it is.
        RunStatus::InProgress | RunStatus::RequiresAction | RunStatus::Cancelling => "in_progress",
        RunStatus::Completed => "completed",
        RunStatus::Incomplete => "incomplete",
        RunStatus::Cancelled => "cancelled",
        RunStatus::Failed | RunStatus::Expired => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_responses_run_and_lock_are_derived_from_its_id() {
        let r = ResponseId::new();
        let run = run_id(&r);
        assert_eq!(run.tail(), r.tail());
        assert_eq!(response_of(&run), r);
        assert_eq!(lock_thread(&r, None).tail(), r.tail());
        let c = ConversationId::new();
        assert_eq!(lock_thread(&r, Some(&c)).tail(), c.tail());
        assert!(!lock_project("proj_x").starts_with("proj_"));
    }

    #[test]
    fn a_compaction_round_trips_and_foreign_content_is_refused() {
        let summary = "The user plans a trip to Lyon; budget 800 €.";
        assert_eq!(
            compaction_summary(&compaction_content(summary)).as_deref(),
            Some(summary)
        );
        assert_eq!(compaction_summary("gAAAAABencrypted-by-openai"), None);
        assert_eq!(compaction_summary("asst-compaction-v1.%%%"), None);
    }
}
