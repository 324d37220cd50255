//! The run's messages and steps as the API shows them, built from the run being driven.

use super::*;

impl Engine {
    pub(super) fn message(&self, ctx: &Ctx, id: &MessageId) -> Message {
        Message {
            id: id.clone(),
            object: "thread.message".into(),
            created_at: now(),
            thread_id: ctx.run.thread_id.clone(),
            status: MessageStatus::InProgress,
            incomplete_details: None,
            completed_at: None,
            incomplete_at: None,
            role: "assistant".into(),
            content: vec![],
            assistant_id: Some(ctx.run.assistant_id.clone()),
            run_id: Some(ctx.run.id.clone()),
            attachments: vec![],
            metadata: Default::default(),
        }
    }

    pub(super) fn run_step(&self, ctx: &Ctx, id: &StepId, kind: &str, details: Value) -> RunStep {
        RunStep {
            id: id.clone(),
            object: "thread.run.step".into(),
            created_at: now(),
            run_id: ctx.run.id.clone(),
            assistant_id: ctx.run.assistant_id.clone(),
            thread_id: ctx.run.thread_id.clone(),
            kind: kind.into(),
            status: StepStatus::InProgress,
            cancelled_at: None,
            completed_at: None,
            expired_at: None,
            failed_at: None,
            last_error: None,
            step_details: details,
            usage: None,
            metadata: Default::default(),
        }
    }

    /// Whether the model's function `name` is the file_search tool (recorded in its own
    /// step shape, as the SDKs expect, rather than as a function call).
    pub(super) fn is_file_search(ctx: &Ctx, name: &str) -> bool {
        ctx.rec
            .tools
            .iter()
            .any(|b| b.exposed == name && b.plugin == FILE_SEARCH)
    }

    /// A call as a step lists it before its result is known.
    pub(super) fn call_entry(ctx: &Ctx, c: &ToolCall) -> Value {
        if Self::is_file_search(ctx, &c.name) {
            json!({"id": c.id, "type": "file_search", "file_search": {}})
        } else if Self::is_code_interpreter(ctx, &c.name) {
            let input = super::interpreter::code_of(&c.arguments_json)
                .unwrap_or_else(|_| c.arguments_json.clone());
            super::interpreter::entry(&c.id, &input, None)
        } else {
            json!({"id": c.id, "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments_json, "output": null}})
        }
    }

    /// A `tool_calls` step with these calls (outputs not yet known).
    pub(super) fn tool_step(&self, ctx: &Ctx, id: &StepId, calls: &[ToolCall]) -> RunStep {
        let calls: Vec<Value> = calls.iter().map(|c| Self::call_entry(ctx, c)).collect();
        self.run_step(
            ctx,
            id,
            "tool_calls",
            json!({"type": "tool_calls", "tool_calls": calls}),
        )
    }
}
