//! The LLM action: one streamed chat completion, its text published as message deltas and its
//! tool calls as step deltas, and the message the answer is written to.

use super::*;
use crate::responses;
use assistants_core::model::response::Reasoning;

/// How one streamed LLM call ended.
pub(super) enum StreamEnd {
    /// The upstream finished the answer (the caller closes what it opened).
    Finished,
    /// The run was taken away mid-call (cancelled, or the lease lost).
    TakenAway,
    /// The upstream failed: the run fails with its code and message.
    Upstream(LlmError),
}

/// A response that used up its `max_tool_calls` is offered only the client's functions (the
/// budget counts the server's tools, as OpenAI's counts its built-in ones).
fn without_server_tools(body: &mut Value, rec: &EngineRecord) {
    let server = |t: &Value| {
        let name = t.pointer("/function/name").and_then(Value::as_str);
        name.is_some_and(|n| rec.tools.iter().any(|b| b.exposed == n))
    };
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(list)) = obj.get_mut("tools") {
        list.retain(|t| !server(t));
        if list.is_empty() {
            // No tools left: nothing to choose or call in parallel (upstreams refuse both
            // without tools).
            for k in ["tools", "tool_choice", "parallel_tool_calls"] {
                obj.remove(k);
            }
        }
    }
    if obj.get("tool_choice").is_some_and(server) {
        obj.insert("tool_choice".into(), json!("auto"));
    }
}

impl Engine {
    pub(super) async fn call_llm(
        &self,
        ctx: &mut Ctx,
        req: &LlmRequest,
        mode: PublishMode,
        ids: &ActionIds,
    ) -> EngineResult<Flow> {
        // Budgets: the prompt of this call must fit what is left of max_prompt_tokens; the
        // answer may use what is left of max_completion_tokens.
        let prompt_estimate = {
            let req = req.clone();
            blocking("counting prompt tokens", move || {
                input::request_tokens(&req)
            })
            .await? as u64
        };
        if let Some(max) = ctx.run.max_prompt_tokens {
            if ctx.rec.prompt_tokens + prompt_estimate > max as u64 {
                self.incomplete(ctx, "max_prompt_tokens").await?;
                return Ok(Flow::Continue);
            }
        }
        let max_tokens = ctx
            .run
            .max_completion_tokens
            .map(|m| (m as u64).saturating_sub(ctx.rec.completion_tokens));
        if max_tokens == Some(0) {
            self.incomplete(ctx, "max_completion_tokens").await?;
            return Ok(Flow::Continue);
        }
        let mut body = input::request(&ctx.run, req, max_tokens);
        if ctx.rec.tool_calls_left() == Some(0) {
            without_server_tools(&mut body, &ctx.rec);
        }
        let mode = match mode {
            PublishMode::Message => Mode::Message,
            PublishMode::Silent => Mode::Silent,
            PublishMode::AfterMarker(m) => Mode::AfterMarker(m),
        };
        let mut progress = Progress::default();
        let mut calls = Assembler::default();
        let started = std::time::Instant::now();
        let outcome = {
            let stop = ctx.stop.clone();
            let model = body.get("model").and_then(|m| m.as_str()).unwrap_or("");
            let span = tracing::info_span!("llm.chat", model);
            let streaming = self
                .stream_llm(ctx, &body, mode, ids, &mut progress, &mut calls)
                .instrument(span);
            tokio::select! {
                r = streaming => Some(r),
                _ = stop.cancelled() => None,
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let model = body.get("model").and_then(Value::as_str).unwrap_or("");
        let result = match &outcome {
            None => Some("cancelled"),
            Some(Ok(StreamEnd::Upstream(e))) => Some(e.code()),
            Some(Ok(_)) => Some("ok"),
            Some(Err(_)) => None,
        };
        if let Some(result) = result {
            let m = assistants_core::obs::metrics::metrics();
            m.llm_call("chat", model, result, seconds);
            m.run_phase("llm", seconds);
        }
        match outcome {
            None => {
                self.keep_partial(ctx, ids, &progress).await;
                return Ok(Flow::Interrupted);
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(StreamEnd::TakenAway)) => return Ok(Flow::Interrupted),
            Some(Ok(StreamEnd::Finished)) => {}
            Some(Ok(StreamEnd::Upstream(e))) => {
                self.keep_partial(ctx, ids, &progress).await;
                self.fail(ctx, e.code(), e.message().to_string()).await?;
                return Ok(Flow::Continue);
            }
        }

        let tool_calls: Vec<ToolCall> = calls
            .finish()
            .into_iter()
            .zip(progress.call_ids.iter())
            .map(|(c, id)| ToolCall {
                id: id.clone(),
                name: c.name,
                arguments_json: c.arguments,
            })
            .collect();
        let (prompt, completion) = match progress.usage {
            Some(usage) => usage,
            // Servers that do not report usage: count it ourselves.
            None => {
                let args: String = tool_calls
                    .iter()
                    .map(|c| c.arguments_json.as_str())
                    .collect();
                let answer = format!("{}{args}", progress.text);
                let count = blocking("counting answer tokens", move || {
                    assistants_core::tokens::count_tokens(&answer)
                });
                (prompt_estimate, count.await? as u64)
            }
        };
        ctx.rec.prompt_tokens += prompt;
        ctx.rec.completion_tokens += completion;
        let finish_reason = progress.finish_reason.clone().unwrap_or_else(|| {
            if tool_calls.is_empty() {
                "stop".into()
            } else {
                "tool_calls".into()
            }
        });
        let cut_off = finish_reason == "length";
        if progress.message_open {
            self.keep_sandbox_files(ctx, &progress.published).await;
        }

        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(Flow::Interrupted);
        };
        let mut events = Vec::new();
        if progress.message_open {
            let step_usage = (!progress.tool_step_open).then_some((prompt, completion));
            events = self
                .close_message(&mut tx, ctx, ids, &progress.published, cut_off, step_usage)
                .await?;
        }
        if progress.tool_step_open {
            let mut step = self.tool_step(ctx, &ids.tool_step, &tool_calls);
            if let Some(existing) = self
                .store
                .find_in::<RunStep>(&mut tx, &ctx.project, &ids.tool_step)
                .await?
            {
                step.created_at = existing.created_at;
            }
            self.store.upsert_in(&mut tx, &ctx.project, &step).await?;
            ctx.rec.open_tool_step = Some(OpenToolStep {
                id: ids.tool_step.clone(),
                prompt_tokens: prompt,
                completion_tokens: completion,
            });
        }
        let mut reasoning_done = None;
        if let (false, Some(response)) = (progress.reasoning.is_empty(), &mut ctx.rec.response) {
            let id = responses::reasoning_id(&ids.message);
            // It came before the answer this call wrote, else before its first tool call.
            let before = if progress.published.is_empty() {
                progress.call_ids.first().cloned()
            } else {
                Some(ids.message.to_string())
            };
            reasoning_done = Some(json!({"id": id, "text": progress.reasoning}));
            response.reasoning.push(Reasoning {
                id,
                text: progress.reasoning.clone(),
                before,
            });
        }
        ctx.rec.next = Next::Step {
            event: Event::LlmCompleted(LlmResult {
                text: progress.text.clone(),
                tool_calls,
                finish_reason,
                prompt_tokens: prompt as u32,
                completion_tokens: completion as u32,
            }),
        };
        self.commit(tx, ctx, false).await?;
        if let Some(done) = reasoning_done {
            self.publish(ctx, responses::REASONING_DONE, &done).await;
        }
        for e in events {
            self.send(ctx, e).await;
        }
        Ok(Flow::Continue)
    }

    /// Streams one LLM call, publishing message text and tool-call deltas as they arrive.
    /// Returns how the stream ended.
    pub(super) async fn stream_llm(
        &self,
        ctx: &mut Ctx,
        body: &Value,
        mode: Mode,
        ids: &ActionIds,
        p: &mut Progress,
        calls: &mut Assembler,
    ) -> EngineResult<StreamEnd> {
        use futures::StreamExt;
        let mut stream = match self.llm.stream(body).await {
            Ok(s) => s,
            Err(e) => return Ok(StreamEnd::Upstream(e)),
        };
        let mut filter = Filter::new(mode);
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Ok(StreamEnd::Upstream(e)),
            };
            if chunk.usage.is_some() {
                p.usage = chunk.usage;
            }
            if chunk.finish_reason.is_some() {
                p.finish_reason = chunk.finish_reason;
            }
            if !chunk.reasoning.is_empty() && ctx.rec.response.is_some() {
                // Only a response shows reasoning (as a `reasoning` item); a run has no place
                // for it on the Assistants wire.
                p.reasoning.push_str(&chunk.reasoning);
                let delta =
                    json!({"id": responses::reasoning_id(&ids.message), "delta": chunk.reasoning});
                self.publish(ctx, responses::REASONING_DELTA, &delta).await;
            }
            if !chunk.content.is_empty() {
                p.text.push_str(&chunk.content);
                let visible = filter.push(&chunk.content);
                // Text after tool calls started belongs to no message (one active step at a
                // time); the strategy still gets it in the result.
                if !visible.is_empty() && !p.tool_step_open {
                    if !p.message_open {
                        if !self.open_message(ctx, ids).await? {
                            return Ok(StreamEnd::TakenAway);
                        }
                        p.message_open = true;
                    }
                    p.published.push_str(&visible);
                    let delta = json!({
                        "id": ids.message,
                        "object": "thread.message.delta",
                        "delta": {"content": [{"index": 0, "type": "text", "text": {"value": visible}}]},
                    });
                    self.publish(ctx, "thread.message.delta", &delta).await;
                }
            }
            for fragment in chunk.tool_calls {
                if !p.tool_step_open {
                    if p.message_open {
                        // Close the answer so far before the tool step starts.
                        self.keep_sandbox_files(ctx, &p.published).await;
                        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
                            return Ok(StreamEnd::TakenAway);
                        };
                        let events = self
                            .close_message(&mut tx, ctx, ids, &p.published, false, None)
                            .await?;
                        tx.commit().await?;
                        for e in events {
                            self.send(ctx, e).await;
                        }
                        p.message_open = false;
                    }
                    let step = self.tool_step(ctx, &ids.tool_step, &[]);
                    let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
                        return Ok(StreamEnd::TakenAway);
                    };
                    self.store.upsert_in(&mut tx, &ctx.project, &step).await?;
                    tx.commit().await?;
                    self.publish(ctx, "thread.run.step.created", &step).await;
                    self.publish(ctx, "thread.run.step.in_progress", &step)
                        .await;
                    p.tool_step_open = true;
                }
                let added = calls.push(fragment);
                let call = if added.first {
                    let id = new_id(IdKind::ToolCall);
                    p.call_ids.push(id.clone());
                    if Self::is_file_search(ctx, &added.name) {
                        // Its arguments are the model's query, not shown in file_search steps.
                        p.file_search_positions.push(added.position);
                        json!({"index": added.position, "id": id, "type": "file_search", "file_search": {}})
                    } else if Self::is_code_interpreter(ctx, &added.name) {
                        // Shown as the code itself, decoded from the JSON as it arrives.
                        let code = super::interpreter::streamed_code(&added.arguments);
                        p.code_positions.insert(
                            added.position,
                            (added.arguments.clone(), code.chars().count()),
                        );
                        json!({"index": added.position, "id": id, "type": "code_interpreter",
                               "code_interpreter": {"input": code, "outputs": []}})
                    } else {
                        json!({"index": added.position, "id": id, "type": "function",
                               "function": {"name": added.name, "arguments": added.arguments, "output": null}})
                    }
                } else if p.file_search_positions.contains(&added.position)
                    || (added.arguments.is_empty() && added.name.is_empty())
                {
                    continue;
                } else if let Some((so_far, sent)) = p.code_positions.get_mut(&added.position) {
                    so_far.push_str(&added.arguments);
                    let code = super::interpreter::streamed_code(so_far);
                    let new: String = code.chars().skip(*sent).collect();
                    if new.is_empty() {
                        continue;
                    }
                    *sent += new.chars().count();
                    json!({"index": added.position, "type": "code_interpreter",
                           "code_interpreter": {"input": new}})
                } else {
                    // Strings concatenate on the client: send only what is new.
                    let mut function = json!({"arguments": added.arguments});
                    if !added.name.is_empty() {
                        function["name"] = json!(added.name);
                    }
                    json!({"index": added.position, "type": "function", "function": function})
                };
                let delta = json!({
                    "id": ids.tool_step,
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
                });
                self.publish(ctx, "thread.run.step.delta", &delta).await;
            }
        }
        // A message left open (stream ended) is closed by the caller with the final usage.
        Ok(StreamEnd::Finished)
    }

    /// Saves the text an interrupted call had streamed into its message (best-effort; the
    /// message is then marked incomplete when the run ends).
    pub(super) async fn keep_partial(&self, ctx: &Ctx, ids: &ActionIds, p: &Progress) {
        if !p.message_open {
            return;
        }
        let result: EngineResult<()> = async {
            // Fenced like every engine write: only while the run is still ours.
            let Some((mut tx, _)) = self.store.engine_tx(&ctx.run.id, ctx.token).await? else {
                return Ok(());
            };
            let Some(mut m) = self
                .store
                .find_in::<Message>(&mut tx, &ctx.project, &ids.message)
                .await?
            else {
                return Ok(());
            };
            m.content =
                vec![json!({"type": "text", "text": {"value": p.published, "annotations": []}})];
            self.store.upsert_in(&mut tx, &ctx.project, &m).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(run_id = %ctx.run.id, error = %e, "could not keep the partial answer");
        }
    }

    /// Creates the message step and the (empty, in-progress) message of an answer, and
    /// announces both.
    pub(super) async fn open_message(&self, ctx: &mut Ctx, ids: &ActionIds) -> EngineResult<bool> {
        let step = self.run_step(
            ctx,
            &ids.message_step,
            "message_creation",
            json!({"type": "message_creation", "message_creation": {"message_id": ids.message}}),
        );
        let msg = self.message(ctx, &ids.message);
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(false);
        };
        self.store.upsert_in(&mut tx, &ctx.project, &step).await?;
        self.store.upsert_in(&mut tx, &ctx.project, &msg).await?;
        tx.commit().await?;
        self.publish(ctx, "thread.run.step.created", &step).await;
        self.publish(ctx, "thread.run.step.in_progress", &step)
            .await;
        self.publish(ctx, "thread.message.created", &msg).await;
        self.publish(ctx, "thread.message.in_progress", &msg).await;
        Ok(true)
    }

    /// Completes (or, cut off by the token limit, marks incomplete) the answer message and
    /// its step, inside `tx`; returns the events to publish after the commit.
    pub(super) async fn close_message(
        &self,
        tx: &mut Tx,
        ctx: &mut Ctx,
        ids: &ActionIds,
        text: &str,
        cut_off: bool,
        step_usage: Option<(u64, u64)>,
    ) -> EngineResult<Vec<StreamEvent>> {
        let t = now();
        let mut msg = self.message(ctx, &ids.message);
        if let Some(existing) = self
            .store
            .find_in::<Message>(tx, &ctx.project, &ids.message)
            .await?
        {
            msg.created_at = existing.created_at;
        }
        let mut annotations = crate::citations::annotations(text, &ctx.rec.sources);
        // Links to files the code wrote (`sandbox:/mnt/data/…`), kept before this transaction.
        annotations.extend(crate::code_files::file_path_annotations(
            text,
            &ctx.rec.sandbox_files,
        ));
        annotations.sort_by_key(|a| a["start_index"].as_u64());
        msg.content =
            vec![json!({"type": "text", "text": {"value": text, "annotations": annotations}})];
        let mut events = Vec::new();
        // Figures code_interpreter displayed since the last answer follow its text, and reach
        // streaming clients in one delta before the message completes.
        let images: Vec<Value> = std::mem::take(&mut ctx.rec.images)
            .into_iter()
            .map(|id| json!({"type": "image_file", "image_file": {"file_id": id}}))
            .collect();
        if !images.is_empty() {
            let indexed: Vec<Value> = images
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    let mut part = part.clone();
                    part["index"] = json!(i + 1);
                    part
                })
                .collect();
            msg.content.extend(images);
            events.push(StreamEvent::new(
                "thread.message.delta",
                &json!({"id": ids.message, "object": "thread.message.delta",
                        "delta": {"content": indexed}}),
            ));
        }
        if !annotations.is_empty() {
            // Streamed text got no annotations as it went; they arrive in one delta before the
            // message completes (the SDKs merge them by index into the text part).
            let indexed: Vec<Value> = annotations
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let mut a = a.clone();
                    a["index"] = json!(i);
                    a
                })
                .collect();
            events.push(StreamEvent::new(
                "thread.message.delta",
                &json!({"id": ids.message, "object": "thread.message.delta",
                        "delta": {"content": [{"index": 0, "type": "text", "text": {"annotations": indexed}}]}}),
            ));
        }
        let msg_event = if cut_off {
            msg.status = MessageStatus::Incomplete;
            msg.incomplete_at = Some(t);
            msg.incomplete_details = Some(json!({"reason": "max_tokens"}));
            "thread.message.incomplete"
        } else {
            msg.status = MessageStatus::Completed;
            msg.completed_at = Some(t);
            "thread.message.completed"
        };
        let mut step = self.run_step(
            ctx,
            &ids.message_step,
            "message_creation",
            json!({"type": "message_creation", "message_creation": {"message_id": ids.message}}),
        );
        if let Some(existing) = self
            .store
            .find_in::<RunStep>(tx, &ctx.project, &ids.message_step)
            .await?
        {
            step.created_at = existing.created_at;
        }
        step.status = StepStatus::Completed;
        step.completed_at = Some(t);
        let (p, c) = step_usage.unwrap_or((0, 0));
        step.usage = Some(usage(p, c));
        self.store.upsert_in(tx, &ctx.project, &msg).await?;
        self.store.upsert_in(tx, &ctx.project, &step).await?;
        events.push(StreamEvent::new(msg_event, &msg));
        events.push(StreamEvent::new("thread.run.step.completed", &step));
        Ok(events)
    }

    pub(super) async fn emit_message(
        &self,
        ctx: &mut Ctx,
        text: &str,
        ids: &ActionIds,
        event: Event,
    ) -> EngineResult<Flow> {
        if !self.open_message(ctx, ids).await? {
            return Ok(Flow::Interrupted);
        }
        let delta = json!({"id": ids.message, "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text}}]}});
        self.publish(ctx, "thread.message.delta", &delta).await;
        self.keep_sandbox_files(ctx, text).await;
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(Flow::Interrupted);
        };
        let events = self
            .close_message(&mut tx, ctx, ids, text, false, None)
            .await?;
        ctx.rec.next = Next::Step { event };
        self.commit(tx, ctx, false).await?;
        for e in events {
            self.send(ctx, e).await;
        }
        Ok(Flow::Continue)
    }
}
