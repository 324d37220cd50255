//! The translation of a response's run events into the Responses stream (the table in
//! stream.rs): which output items exist, in the order they were announced, and the events
//! that announce, extend and close them, numbered one above the last.

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Value};

use crate::state::AppState;
use assistants_core::bus::StreamEvent;
use assistants_core::model::engine::ToolBinding;
use assistants_core::model::ids::{ItemId, ResponseId};
use assistants_core::model::response;
use assistants_core::model::{FileObject, Message, ResponseObject, Run};
use assistants_worker::responses as projection;

/// What an announced output item is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Message,
    Function,
    FileSearch,
    WebSearch,
    Code,
    /// A plugin tool the server ran, or a remote MCP server's tool (an `mcp_call` item).
    Plugin,
    /// A call of an MCP tool that waits for the client's approval.
    Approval,
    /// An MCP server's tools being listed.
    ListTools,
    Reasoning,
}

/// An output item announced to the stream.
#[derive(Debug)]
struct Slot {
    item_id: String,
    kind: Kind,
    /// The tool call's id (calls), to find the slot again when its step completes.
    call_id: String,
    text: String,
    annotations: usize,
    done: bool,
}

/// The translation of one response's run events.
pub(super) struct Translator {
    pub(super) state: AppState,
    project: String,
    id: ResponseId,
    snapshot: ResponseObject,
    tools: Vec<ToolBinding>,
    seq: u64,
    slots: Vec<Slot>,
    /// A call's slot by (step id, the call's index in the step), for deltas that carry no id.
    calls: HashMap<(String, u64), usize>,
    filenames: HashMap<String, String>,
    pub(super) out: VecDeque<(String, Value)>,
    pub(super) ended: bool,
    /// Events up to this sequence number are not sent (a resumed stream's `starting_after`).
    pub(super) skip_through: Option<u64>,
    /// The position of the last recorded event already translated (live copies are skipped).
    pub(super) replayed_through: i64,
}

impl Translator {
    pub(super) fn new(
        state: &AppState,
        project: &str,
        doc: ResponseObject,
        tools: Vec<ToolBinding>,
    ) -> Self {
        let mut t = Translator {
            state: state.clone(),
            project: project.to_string(),
            id: doc.id.clone(),
            snapshot: doc,
            tools,
            seq: 0,
            slots: Vec::new(),
            calls: HashMap::new(),
            filenames: HashMap::new(),
            out: VecDeque::new(),
            ended: false,
            skip_through: None,
            replayed_through: -1,
        };
        let created = t.snapshot.to_value();
        t.emit("response.created", json!({ "response": created }));
        if t.snapshot.status() == "queued" {
            t.emit("response.queued", json!({ "response": created }));
        }
        t
    }

    pub(super) fn emit(&mut self, kind: &str, mut body: Value) {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        self.out.push_back((kind.to_string(), body));
    }

    /// The bus was silent: if the run ended meanwhile (an event lost), end as it did.
    pub(super) async fn check(&mut self) {
        let run_id = response::run_id(&self.id);
        match self.state.store.find::<Run>(&self.project, &run_id).await {
            Ok(Some(run)) if run.status.is_terminal() => self.finish(run.status.event()).await,
            Ok(Some(_)) => {}
            _ => self.ended = true,
        }
    }

    pub(super) async fn translate(&mut self, e: &StreamEvent) {
        let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
        match e.event.as_str() {
            "thread.run.in_progress" => {
                self.snapshot.set("status", json!("in_progress"));
                let response = self.snapshot.to_value();
                self.emit("response.in_progress", json!({ "response": response }));
            }
            projection::REASONING_DELTA => {
                let id = data["id"].as_str().unwrap_or("").to_string();
                let delta = data["delta"].as_str().unwrap_or("");
                self.reasoning_delta(&id, delta);
            }
            projection::REASONING_DONE => self.close_reasoning(),
            projection::MCP_LIST_STARTED => {
                let id = data["id"].as_str().unwrap_or("").to_string();
                if self.slot_of_item(&id).is_none() {
                    let i = self.add_slot(id.clone(), Kind::ListTools, "", data.clone());
                    self.emit(
                        "response.mcp_list_tools.in_progress",
                        json!({"item_id": id, "output_index": i}),
                    );
                }
            }
            projection::MCP_LIST_DONE => {
                let id = data["id"].as_str().unwrap_or("").to_string();
                let i = match self.slot_of_item(&id) {
                    Some(i) => i,
                    None => self.add_slot(id.clone(), Kind::ListTools, "", data.clone()),
                };
                if !self.slots[i].done {
                    self.slots[i].done = true;
                    let outcome = if data["error"].is_null() {
                        "response.mcp_list_tools.completed"
                    } else {
                        "response.mcp_list_tools.failed"
                    };
                    self.emit(outcome, json!({"item_id": id, "output_index": i}));
                    self.emit(
                        "response.output_item.done",
                        json!({"output_index": i, "item": data}),
                    );
                }
            }
            // The run's tools changed (its MCP servers' tools were bound): calls are shown
            // by what they call.
            projection::TOOLS_BOUND => {
                let run_id = response::run_id(&self.id);
                if let Ok(Some((_, rec))) = self
                    .state
                    .store
                    .run_and_record(&self.project, &run_id)
                    .await
                {
                    self.tools = rec.tools;
                }
            }
            "thread.message.created" => {
                let id = data["id"].as_str().unwrap_or("").to_string();
                self.open_message(&id);
            }
            "thread.message.delta" => self.message_delta(&data).await,
            "thread.message.completed" | "thread.message.incomplete" => {
                if let Ok(m) = serde_json::from_value::<Message>(data) {
                    self.close_message(&m).await;
                }
            }
            "thread.run.step.delta" => {
                let step = data["id"].as_str().unwrap_or("").to_string();
                let calls = data.pointer("/delta/step_details/tool_calls");
                for call in calls.and_then(Value::as_array).into_iter().flatten() {
                    self.call_delta(&step, call);
                }
            }
            "thread.run.step.completed" => {
                let calls = data.pointer("/step_details/tool_calls").cloned();
                if let Some(Value::Array(calls)) = calls {
                    self.close_calls(&calls).await;
                }
            }
            "error" => {
                let err = data.get("error").cloned().unwrap_or(data);
                self.emit(
                    "error",
                    json!({"code": err["code"], "message": err["message"], "param": err["param"]}),
                );
                self.ended = true;
            }
            other if other.starts_with("thread.run.") => {
                let ended = other
                    .strip_prefix("thread.run.")
                    .and_then(|s| s.parse::<assistants_core::model::RunStatus>().ok())
                    .is_some_and(|s| s.is_terminal());
                if ended {
                    self.finish(other).await;
                }
            }
            _ => {}
        }
    }

    /// The finished response, announced as its status says; the stream ends.
    async fn finish(&mut self, run_event: &str) {
        self.ended = true;
        let kind = match run_event {
            "thread.run.completed" => "response.completed",
            "thread.run.incomplete" => "response.incomplete",
            "thread.run.failed" | "thread.run.expired" => "response.failed",
            // A cancelled response has no event of its own: the stream ends.
            _ => return,
        };
        match super::current::current(&self.state, &self.project, &self.id).await {
            Ok(doc) => {
                let response = doc.to_value();
                self.emit(kind, json!({ "response": response }));
            }
            Err(e) => {
                let body = e.body();
                self.emit(
                    "error",
                    json!({"code": "server_error", "param": null,
                           "message": format!("The response ended but could not be read: {}",
                                              body["error"]["message"].as_str().unwrap_or(""))}),
                )
            }
        }
    }

    fn slot_of_item(&self, item_id: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.item_id == item_id)
    }

    fn add_slot(&mut self, item_id: String, kind: Kind, call_id: &str, item: Value) -> usize {
        let index = self.slots.len();
        self.slots.push(Slot {
            item_id,
            kind,
            call_id: call_id.to_string(),
            text: String::new(),
            annotations: 0,
            done: false,
        });
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        index
    }

    /// Reasoning streamed by the model: a `reasoning` item, announced with its first text.
    fn reasoning_delta(&mut self, id: &str, delta: &str) {
        let i = match self.slot_of_item(id) {
            Some(i) => i,
            None => {
                let item = json!({"id": id, "type": "reasoning", "status": "in_progress",
                                  "summary": [], "content": []});
                let i = self.add_slot(id.to_string(), Kind::Reasoning, "", item);
                self.emit(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": i, "content_index": 0,
                           "part": {"type": "reasoning_text", "text": ""}}),
                );
                i
            }
        };
        if self.slots[i].done {
            return;
        }
        self.slots[i].text.push_str(delta);
        self.emit(
            "response.reasoning_text.delta",
            json!({"item_id": id, "output_index": i, "content_index": 0, "delta": delta}),
        );
    }

    /// Closes the reasoning item still open, if any: what comes next (an answer, a call, the
    /// end of the model's turn) follows it.
    fn close_reasoning(&mut self) {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| s.kind == Kind::Reasoning && !s.done)
        else {
            return;
        };
        self.slots[i].done = true;
        let (id, text) = (self.slots[i].item_id.clone(), self.slots[i].text.clone());
        self.emit(
            "response.reasoning_text.done",
            json!({"item_id": id, "output_index": i, "content_index": 0, "text": text}),
        );
        self.emit(
            "response.content_part.done",
            json!({"item_id": id, "output_index": i, "content_index": 0,
                   "part": {"type": "reasoning_text", "text": text}}),
        );
        self.emit(
            "response.output_item.done",
            json!({"output_index": i, "item": projection::reasoning_item(&id, &text)}),
        );
    }

    fn open_message(&mut self, id: &str) -> usize {
        if let Some(i) = self.slot_of_item(id) {
            return i;
        }
        self.close_reasoning();
        let item = json!({"id": id, "type": "message", "status": "in_progress",
                          "role": "assistant", "content": []});
        let i = self.add_slot(id.to_string(), Kind::Message, "", item);
        self.emit(
            "response.content_part.added",
            json!({"item_id": id, "output_index": i, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        );
        i
    }

    async fn message_delta(&mut self, data: &Value) {
        let id = data["id"].as_str().unwrap_or("").to_string();
        let i = self.open_message(&id);
        let parts = data.pointer("/delta/content").and_then(Value::as_array);
        for part in parts.into_iter().flatten() {
            if part["type"] != "text" {
                continue;
            }
            if let Some(delta) = part.pointer("/text/value").and_then(Value::as_str) {
                self.slots[i].text.push_str(delta);
                self.emit(
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": i, "content_index": 0,
                           "delta": delta, "logprobs": []}),
                );
            }
            let annotations = part.pointer("/text/annotations").and_then(Value::as_array);
            for a in annotations.into_iter().flatten() {
                let Some(mut a) = projection::annotation(a, &[]) else {
                    continue;
                };
                self.name_file(&mut a).await;
                let n = self.slots[i].annotations;
                self.slots[i].annotations += 1;
                self.emit(
                    "response.output_text.annotation.added",
                    json!({"item_id": id, "output_index": i, "content_index": 0,
                           "annotation_index": n, "annotation": a}),
                );
            }
        }
    }

    /// Fills a `file_citation`'s file name (run events carry only the file id).
    async fn name_file(&mut self, a: &mut Value) {
        let Some(file_id) = a.get("file_id").and_then(Value::as_str).map(str::to_string) else {
            return;
        };
        if a.get("filename").is_none_or(|f| f == "") && a["type"] == "file_citation" {
            if !self.filenames.contains_key(&file_id) {
                let name = match self
                    .state
                    .store
                    .find::<FileObject>(&self.project, &file_id)
                    .await
                {
                    Ok(Some(f)) => f.filename,
                    _ => String::new(),
                };
                self.filenames.insert(file_id.clone(), name);
            }
            a["filename"] = json!(self.filenames[&file_id]);
        }
    }

    async fn close_message(&mut self, m: &Message) {
        let i = self.open_message(&m.id);
        if self.slots[i].done {
            return;
        }
        self.slots[i].done = true;
        let mut item = projection::message_item(m, &[]);
        if let Some(parts) = item["content"].as_array_mut() {
            for part in parts {
                if let Some(list) = part["annotations"].as_array_mut() {
                    for a in list {
                        self.name_file(a).await;
                    }
                }
            }
        }
        let part = item.pointer("/content/0").cloned().unwrap_or_else(|| {
            json!({"type": "output_text", "text": self.slots[i].text,
                                      "annotations": [], "logprobs": []})
        });
        self.emit(
            "response.output_text.done",
            json!({"item_id": m.id, "output_index": i, "content_index": 0,
                   "text": part["text"], "logprobs": []}),
        );
        self.emit(
            "response.content_part.done",
            json!({"item_id": m.id, "output_index": i, "content_index": 0, "part": part}),
        );
        self.emit(
            "response.output_item.done",
            json!({"output_index": i, "item": item}),
        );
    }

    /// Announces the call `call` (a step's entry with its id) unless it was; its slot.
    fn announce_call(&mut self, call: &Value) -> Option<usize> {
        let call_id = call["id"].as_str()?;
        if let Some(i) = self.slots.iter().position(|s| s.call_id == call_id) {
            return Some(i);
        }
        self.close_reasoning();
        let item_kind = projection::call_item_type(call, &self.tools);
        let kind = match item_kind {
            "file_search_call" => Kind::FileSearch,
            "code_interpreter_call" => Kind::Code,
            "function_call" => Kind::Function,
            "web_search_call" => Kind::WebSearch,
            "mcp_approval_request" => Kind::Approval,
            _ => Kind::Plugin,
        };
        let item_id = ItemId::for_call(item_kind, call_id).to_string();
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let item = match kind {
            Kind::Function => json!({"id": item_id, "type": item_kind, "status": "in_progress",
                "call_id": call_id, "name": name, "arguments": ""}),
            Kind::FileSearch => json!({"id": item_id, "type": item_kind,
                "status": "in_progress", "queries": [], "results": null}),
            Kind::WebSearch => json!({"id": item_id, "type": item_kind,
                "status": "in_progress", "action": {"type": "search", "query": ""}}),
            Kind::Code => json!({"id": item_id, "type": item_kind, "status": "in_progress",
                "code": "", "container_id": "auto", "outputs": []}),
            Kind::Approval => {
                let (server, name) = projection::mcp_names(call, &self.tools);
                json!({"id": item_id, "type": item_kind, "server_label": server,
                       "name": name, "arguments": ""})
            }
            Kind::Plugin | Kind::Message | Kind::Reasoning | Kind::ListTools => {
                let (server, name) = projection::mcp_names(call, &self.tools);
                json!({"id": item_id, "type": item_kind, "status": "in_progress",
                       "server_label": server, "name": name, "arguments": ""})
            }
        };
        let i = self.add_slot(item_id.clone(), kind, call_id, item);
        let started = match kind {
            Kind::FileSearch => Some("response.file_search_call.in_progress"),
            Kind::WebSearch => Some("response.web_search_call.in_progress"),
            Kind::Code => Some("response.code_interpreter_call.in_progress"),
            Kind::Plugin => Some("response.mcp_call.in_progress"),
            _ => None,
        };
        if let Some(started) = started {
            self.emit(started, json!({"item_id": item_id, "output_index": i}));
        }
        Some(i)
    }

    /// A call's entry in a step delta: a new call (it has an id) is announced; more of one
    /// streams its arguments or code.
    fn call_delta(&mut self, step: &str, call: &Value) {
        let index = call["index"].as_u64().unwrap_or(0);
        if let Some(i) = self.announce_call(call) {
            self.calls.insert((step.to_string(), index), i);
        }
        let Some(&i) = self.calls.get(&(step.to_string(), index)) else {
            return;
        };
        let item_id = self.slots[i].item_id.clone();
        let (kind, delta) = match self.slots[i].kind {
            Kind::Function => (
                "response.function_call_arguments.delta",
                call.pointer("/function/arguments"),
            ),
            Kind::Plugin => (
                "response.mcp_call_arguments.delta",
                call.pointer("/function/arguments"),
            ),
            Kind::Code => (
                "response.code_interpreter_call_code.delta",
                call.pointer("/code_interpreter/input"),
            ),
            _ => return,
        };
        if let Some(delta) = delta.and_then(Value::as_str).filter(|d| !d.is_empty()) {
            self.emit(
                kind,
                json!({"item_id": item_id, "output_index": i, "delta": delta}),
            );
        }
    }

    /// The calls of a completed step: each one's closing events, with the item as the
    /// finished response will show it.
    async fn close_calls(&mut self, calls: &[Value]) {
        let run_id = response::run_id(&self.id);
        let rec = match self
            .state
            .store
            .run_and_record(&self.project, &run_id)
            .await
        {
            Ok(Some((_, rec))) => rec,
            _ => return,
        };
        for call in calls {
            // Announced now if the stream never saw it start.
            let Some(i) = self.announce_call(call) else {
                continue;
            };
            if self.slots[i].done {
                continue;
            }
            self.slots[i].done = true;
            let item = projection::call_item(call, &rec);
            let item_id = self.slots[i].item_id.clone();
            let at = json!({"item_id": item_id, "output_index": i});
            let with = |extra: Value| {
                let mut v = at.clone();
                for (k, x) in extra.as_object().into_iter().flatten() {
                    v[k] = x.clone();
                }
                v
            };
            match self.slots[i].kind {
                Kind::Function => self.emit(
                    "response.function_call_arguments.done",
                    with(json!({"name": item["name"], "arguments": item["arguments"]})),
                ),
                Kind::FileSearch => {
                    self.emit("response.file_search_call.searching", at.clone());
                    self.emit("response.file_search_call.completed", at.clone());
                }
                Kind::WebSearch => {
                    self.emit("response.web_search_call.searching", at.clone());
                    self.emit("response.web_search_call.completed", at.clone());
                }
                Kind::Code => {
                    self.emit(
                        "response.code_interpreter_call_code.done",
                        with(json!({"code": item["code"]})),
                    );
                    self.emit("response.code_interpreter_call.interpreting", at.clone());
                    self.emit("response.code_interpreter_call.completed", at.clone());
                }
                Kind::Plugin => {
                    self.emit(
                        "response.mcp_call_arguments.done",
                        with(json!({"arguments": item["arguments"]})),
                    );
                    let outcome = if item["status"] == "failed" {
                        "response.mcp_call.failed"
                    } else {
                        "response.mcp_call.completed"
                    };
                    self.emit(outcome, at.clone());
                }
                Kind::Message | Kind::Reasoning | Kind::Approval | Kind::ListTools => {}
            }
            self.emit(
                "response.output_item.done",
                json!({"output_index": i, "item": item}),
            );
        }
    }
}
