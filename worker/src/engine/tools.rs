//! The tool action: plugin tools run in the sandbox (file_search recorded in its own step
//! shape, with its hits kept as citable sources), code_interpreter calls in the thread's
//! session, and calls handed to the client (`requires_action`).

use super::*;
use assistants_core::interpreter as interp;
use assistants_core::plugins::bindings::SearchHit;

/// How a server-side call is recorded in its step.
enum Recorded {
    /// As a function call with its output.
    Function,
    /// In the `file_search` shape, with the options it ran with and its hits (citable).
    FileSearch(Value, Vec<SearchHit>),
    /// By this entry (a code_interpreter call with its outputs).
    Replace(Value),
}

impl Engine {
    /// The step that shows `calls`: the open one from the LLM call that made them, or a new
    /// one (strategies like ReAct choose calls from text, with no step streamed yet).
    pub(super) async fn ensure_tool_step(
        &self,
        ctx: &mut Ctx,
        calls: &[ToolCall],
        ids: &ActionIds,
    ) -> EngineResult<Option<StepId>> {
        if let Some(open) = &ctx.rec.open_tool_step {
            if let Some(step) = self.store.find::<RunStep>(&ctx.project, &open.id).await? {
                let known: Vec<&str> = step
                    .step_details
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.get("id").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                if calls.iter().all(|c| known.contains(&c.id.as_str())) {
                    return Ok(Some(open.id.clone()));
                }
            }
        }
        let step = self.tool_step(ctx, &ids.tool_step, calls);
        let existed = self
            .store
            .find::<RunStep>(&ctx.project, &ids.tool_step)
            .await?
            .is_some();
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(None);
        };
        if !existed {
            self.store.upsert_in(&mut tx, &ctx.project, &step).await?;
        }
        ctx.rec.open_tool_step = Some(OpenToolStep {
            id: ids.tool_step.clone(),
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        self.commit(tx, ctx, false).await?;
        if !existed {
            self.publish(ctx, "thread.run.step.created", &step).await;
            self.publish(ctx, "thread.run.step.in_progress", &step)
                .await;
            let named: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut entry = Self::call_entry(ctx, c);
                    entry["index"] = json!(i);
                    entry
                })
                .collect();
            let delta = json!({"id": step.id, "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": named}}});
            self.publish(ctx, "thread.run.step.delta", &delta).await;
        }
        Ok(Some(ids.tool_step.clone()))
    }

    /// Writes outputs into the open tool step; completes it when every call has one. Returns
    /// the events to publish (inside the caller's transaction).
    pub(super) async fn record_outputs(
        &self,
        tx: &mut Tx,
        ctx: &mut Ctx,
        results: &[ToolResult],
        replacements: &std::collections::HashMap<String, Value>,
    ) -> EngineResult<Vec<StreamEvent>> {
        let Some(open) = ctx.rec.open_tool_step.clone() else {
            return Ok(vec![]);
        };
        let Some(mut step) = self
            .store
            .find_in::<RunStep>(tx, &ctx.project, &open.id)
            .await?
        else {
            return Ok(vec![]);
        };
        if let Some(list) = step
            .step_details
            .get_mut("tool_calls")
            .and_then(Value::as_array_mut)
        {
            for c in list.iter_mut() {
                let id = c
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(entry) = replacements.get(&id) {
                    *c = entry.clone();
                } else if let Some(r) = results.iter().find(|r| r.tool_call_id == id) {
                    c["function"]["output"] = json!(r.output);
                }
            }
        }
        let answered = |c: &Value| {
            !c["function"]["output"].is_null()
                || c.pointer("/file_search/results").is_some()
                || c.pointer("/code_interpreter/outputs").is_some()
        };
        let done = step
            .step_details
            .get("tool_calls")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().all(answered));
        let mut events = Vec::new();
        if done {
            step.status = StepStatus::Completed;
            step.completed_at = Some(now());
            step.usage = Some(usage(open.prompt_tokens, open.completion_tokens));
            ctx.rec.open_tool_step = None;
            let mut shown = serde_json::to_value(&step)?;
            if !ctx.rec.include_content {
                assistants_core::model::run::strip_result_content(&mut shown);
            }
            events.push(StreamEvent::new("thread.run.step.completed", &shown));
        }
        self.store.upsert_in(tx, &ctx.project, &step).await?;
        Ok(events)
    }

    /// Applies the client's outputs to the waiting tool step before the strategy sees them.
    pub(super) async fn close_tool_step(
        &self,
        ctx: &mut Ctx,
        results: &[ToolResult],
    ) -> EngineResult<bool> {
        if ctx.rec.open_tool_step.is_none() {
            return Ok(true);
        }
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(false);
        };
        let events = self
            .record_outputs(&mut tx, ctx, results, &Default::default())
            .await?;
        self.commit(tx, ctx, false).await?;
        for e in events {
            self.send(ctx, e).await;
        }
        Ok(true)
    }

    pub(super) async fn call_tools(
        &self,
        ctx: &mut Ctx,
        calls: Vec<ToolCall>,
        ids: &ActionIds,
    ) -> EngineResult<Flow> {
        if self.ensure_tool_step(ctx, &calls, ids).await?.is_none() {
            return Ok(Flow::Interrupted);
        }
        // Each call's options: the tool entry that enabled its plugin, and its sequence among
        // this run's calls of that plugin (file_search labels its passages with it).
        let allowed = crate::choice::resolve(&ctx.run.tool_choice, &ctx.rec.tools).allowed;
        let mut prepared = Vec::with_capacity(calls.len());
        for call in calls {
            let mut binding = ctx
                .rec
                .tools
                .iter()
                .find(|b| b.exposed == call.name)
                .cloned();
            // A call the model was not offered (a strategy that chose it from text) is
            // answered with an error instead of being run: past a response's
            // `max_tool_calls`, or outside what `tool_choice` allows.
            let refused = if binding.is_none() {
                None
            } else if ctx.rec.tool_calls_left() == Some(0) {
                Some("this response reached its max_tool_calls")
            } else if allowed.as_ref().is_some_and(|a| !a.contains(&call.name)) {
                Some("tool_choice does not allow it")
            } else {
                None
            };
            if refused.is_some() {
                binding = None;
            }
            let mut options = json!({});
            if let (Some(b), Some(response)) = (&binding, &mut ctx.rec.response) {
                // Its item shows the query; the step keeps only the results.
                if b.plugin == FILE_SEARCH {
                    response
                        .arguments
                        .insert(call.id.clone(), call.arguments_json.clone());
                }
            }
            if let Some(b) = &binding {
                let n = ctx.rec.plugin_calls.entry(b.plugin.clone()).or_insert(0);
                let entry = ctx
                    .run
                    .tools
                    .iter()
                    .find(|t| t.get("type").and_then(Value::as_str) == Some(b.plugin.as_str()))
                    .cloned()
                    .unwrap_or_else(|| json!({"type": b.plugin}));
                options = json!({"tool": entry, "sequence": *n});
                *n += 1;
            }
            let server = binding
                .as_ref()
                .and_then(|b| b.mcp.as_ref())
                .and_then(|m| mcp::server_of(ctx, &m.server));
            prepared.push((call, binding, options, refused, server));
        }
        // Every retrieval tool (file_search or a third party's) searches what was attached.
        let searches = |b: &ToolBinding| {
            b.plugin == FILE_SEARCH
                || self.plugins.get(&b.plugin).is_some_and(|p| {
                    p.manifest.kind == assistants_core::plugins::manifest::Kind::RetrievalTool
                })
        };
        if prepared
            .iter()
            .any(|(_, b, _, _, _)| b.as_ref().is_some_and(searches))
        {
            self.wait_for_ingestion(ctx).await;
        }
        let run_one = |(call, binding, options, refused, server): (
            ToolCall,
            Option<ToolBinding>,
            Value,
            Option<&'static str>,
            Option<assistants_core::model::mcp::McpServer>,
        )| {
            let mcp_context = mcp::call_context(ctx, &call);
            // A response's run tells plugins the response; its thread and assistant are the
            // engine's own, not the client's.
            let (run_id, thread_id, assistant_id) = match &ctx.rec.response {
                Some(r) => (r.id.to_string(), None, None),
                None => (
                    ctx.run.id.to_string(),
                    Some(ctx.run.thread_id.to_string()),
                    Some(ctx.run.assistant_id.to_string()),
                ),
            };
            let context = CallContext {
                tool_call_id: call.id.clone(),
                run_id: Some(run_id),
                thread_id,
                assistant_id,
                vector_store_ids: ctx
                    .rec
                    .vector_store_ids
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
                options_json: options.to_string(),
            };
            let plugins = self.plugins.clone();
            let place = binding
                .as_ref()
                .filter(|b| b.plugin == interp::TOOL)
                .map(|_| interpreter::Place {
                    interpreter: self.interpreter.clone(),
                    store: self.store.clone(),
                    blobs: self.blobs.clone(),
                    limits: self.limits,
                    project: ctx.project.clone(),
                    run: ctx.run.clone(),
                    code_file_ids: ctx.rec.code_file_ids.clone(),
                });
            let project = ctx.project.clone();
            async move {
                if let Some(m) = binding.as_ref().and_then(|b| b.mcp.clone()) {
                    let b = binding.as_ref().expect("bound");
                    let (result, entry) = match server {
                        // A call that needs the client's approval is never run unasked (a
                        // strategy that chose it from text gets this answer).
                        _ if m.approval => mcp::refused(&call, &m),
                        Some(server) => {
                            mcp::call_tool(&plugins, &project, &server, b, &call, mcp_context).await
                        }
                        None => mcp::missing_server(&call, &m),
                    };
                    return (result, Recorded::Replace(entry), vec![]);
                }
                if let Some(place) = place {
                    let (result, entry) = interpreter::call(&place, &call).await;
                    return (result, Recorded::Replace(entry), vec![]);
                }
                let (outcome, hits) = match &binding {
                    None => (
                        Err(match refused {
                            Some(why) => format!("tool '{}' not called: {why}", call.name),
                            None => format!(
                                "unknown tool '{}': this run offers no such tool",
                                call.name
                            ),
                        }),
                        vec![],
                    ),
                    Some(b) => match plugins.by_digest(&b.digest).await {
                        Err(e) => (
                            Err(format!(
                                "the tool's plugin '{}' is not available: {e:#}",
                                b.plugin
                            )),
                            vec![],
                        ),
                        Ok(plugin) => {
                            let span = tracing::info_span!(
                                "plugin.call",
                                plugin = %b.plugin,
                                tool = %b.tool
                            );
                            let (r, hits) = plugins
                                .invoke_recorded(
                                    &plugin,
                                    Some(&project),
                                    context,
                                    &b.tool,
                                    &call.arguments_json,
                                )
                                .instrument(span)
                                .await;
                            let r = r.map(|o| {
                                let sources = crate::citations::labelled_sources(&o);
                                (o.text, sources)
                            });
                            (r.map_err(|e| error_text(&e)), hits)
                        }
                    },
                };
                let mut sources = Vec::new();
                let result = match outcome {
                    Ok((text, labelled)) => {
                        sources = labelled;
                        ToolResult {
                            tool_call_id: call.id.clone(),
                            output: text,
                            is_error: false,
                        }
                    }
                    Err(e) => ToolResult {
                        tool_call_id: call.id.clone(),
                        output: format!("error: {e}"),
                        is_error: true,
                    },
                };
                let recorded = match binding.as_ref() {
                    Some(b) if b.plugin == FILE_SEARCH => Recorded::FileSearch(options, hits),
                    _ => Recorded::Function,
                };
                (result, recorded, sources)
            }
        };
        let work = async {
            if ctx.run.parallel_tool_calls {
                futures::future::join_all(prepared.into_iter().map(run_one)).await
            } else {
                let mut out = Vec::new();
                for c in prepared {
                    out.push(run_one(c).await);
                }
                out
            }
        };
        let started = std::time::Instant::now();
        let outcomes = tokio::select! {
            r = work => r,
            _ = ctx.stop.cancelled() => return Ok(Flow::Interrupted),
        };
        assistants_core::obs::metrics::metrics()
            .run_phase("tools", started.elapsed().as_secs_f64());
        // file_search calls are recorded with their results; the passages become the run's
        // citable sources.
        let mut replacements = std::collections::HashMap::new();
        let mut results = Vec::with_capacity(outcomes.len());
        for (result, recorded, sources) in outcomes {
            // Passages a tool labelled and annotated (web pages, files) become citable;
            // file_search's are its recorded hits (below), whatever it annotated.
            if !matches!(recorded, Recorded::FileSearch(..)) {
                ctx.rec.sources.extend(sources);
            }
            if let Recorded::Replace(entry) = recorded {
                // Figures a cell displayed go into the next answer message.
                let shown = entry
                    .pointer("/code_interpreter/outputs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.pointer("/image/file_id").and_then(Value::as_str));
                ctx.rec.images.extend(shown.map(str::to_string));
                replacements.insert(result.tool_call_id.clone(), entry);
            } else if let Recorded::FileSearch(options, hits) = recorded {
                let sequence = options["sequence"].as_u64().unwrap_or(0) as u32;
                let ranking = options
                    .pointer("/tool/file_search/ranking_options")
                    .cloned()
                    .unwrap_or_default();
                let entry = json!({
                    "id": result.tool_call_id,
                    "type": "file_search",
                    "file_search": {
                        "ranking_options": {
                            "ranker": ranking.get("ranker").and_then(Value::as_str)
                                .filter(|r| *r != "auto").unwrap_or("default_2024_08_21"),
                            "score_threshold": ranking.get("score_threshold").and_then(Value::as_f64).unwrap_or(0.0),
                        },
                        // `attributes` (an extension here; the Responses API has them) tell
                        // a crawled page's URL.
                        "results": hits.iter().map(|h| json!({
                            "file_id": h.file_id,
                            "file_name": h.filename,
                            "score": h.score,
                            "content": [{"type": "text", "text": h.text}],
                            "attributes": attributes_of(h),
                        })).collect::<Vec<_>>(),
                    },
                });
                for (i, h) in hits.iter().enumerate() {
                    let (url, title) = crate::citations::page_of(&attributes_of(h));
                    ctx.rec.sources.push(Source {
                        sequence,
                        index: i as u32,
                        file_id: h.file_id.clone(),
                        filename: h.filename.clone(),
                        url,
                        title,
                    });
                }
                replacements.insert(result.tool_call_id.clone(), entry);
            }
            results.push(result);
        }
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(Flow::Interrupted);
        };
        let events = self
            .record_outputs(&mut tx, ctx, &results, &replacements)
            .await?;
        ctx.rec.next = Next::Step {
            event: Event::ToolsCompleted(results),
        };
        self.commit(tx, ctx, false).await?;
        for e in events {
            self.send(ctx, e).await;
        }
        Ok(Flow::Continue)
    }

    /// Waits (up to a minute) until no file of the run's vector stores is still being
    /// ingested, so a search right after files were attached finds them, as users expect.
    pub(super) async fn wait_for_ingestion(&self, ctx: &Ctx) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        for vs in &ctx.rec.vector_store_ids {
            loop {
                match self.store.file_counts(vs, None).await {
                    Ok((counts, _)) if counts.in_progress > 0 => {}
                    _ => break,
                }
                if std::time::Instant::now() >= deadline || ctx.stop.is_cancelled() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    pub(super) async fn require_action(
        &self,
        ctx: &mut Ctx,
        calls: Vec<ToolCall>,
        ids: &ActionIds,
    ) -> EngineResult<()> {
        if calls.is_empty() {
            return self
                .fail(
                    ctx,
                    "server_error",
                    format!(
                        "the strategy '{}' asked the client for no tool calls",
                        ctx.rec.strategy
                    ),
                )
                .await;
        }
        if self.ensure_tool_step(ctx, &calls, ids).await?.is_none() {
            return self.interrupted(ctx).await;
        }
        if ctx.rec.response.is_some() {
            // A response does not wait for its client: it completes with its function calls,
            // which the client answers in its next request.
            return self
                .end(ctx, Ending::Completed, RunStatus::InProgress)
                .await;
        }
        transitions::require_action(&mut ctx.run, &mut ctx.rec, &calls);
        if !self.save(ctx, RunStatus::InProgress, true).await? {
            return self.interrupted(ctx).await;
        }
        self.publish(ctx, RunStatus::RequiresAction.event(), &ctx.run)
            .await;
        assistants_core::obs::metrics::metrics().run_finished(RunStatus::RequiresAction.as_str());
        Ok(())
    }
}

/// A search hit's file attributes (a JSON object; `{}` if the host sent none).
fn attributes_of(hit: &assistants_core::plugins::bindings::SearchHit) -> Value {
    serde_json::from_str(&hit.attributes_json)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}
