//! Remote MCP servers in a run (`model::mcp`). Before the strategy's first step the prelude
//! lists each server's tools — for a response, or finds a listing in the context, as OpenAI
//! reuses one — and binds the allowed ones as functions the model is offered; a response's run
//! then runs the calls its input approved (`mcp_approval_response`). During the run, calls of
//! MCP tools go to the `mcp` component ([`call_tool`]), with the client's headers for that
//! server only.

use super::*;
use crate::responses::{MCP_LIST_DONE, MCP_LIST_STARTED, TOOLS_BOUND};
use assistants_core::model::ids::{stable_tail, ItemId};
use assistants_core::model::mcp::{self, McpServer, McpTool};
use assistants_core::model::Item;
use assistants_core::plugins::egress::CallHeaders;
use assistants_core::store::ItemsOf;

impl Engine {
    /// Lists the response's MCP servers not listed yet and runs the calls its input approved;
    /// `false` if the run was taken away meanwhile.
    pub(super) async fn mcp_prelude(&self, ctx: &mut Ctx) -> EngineResult<bool> {
        if ctx.rec.response.is_none() {
            return self.assistant_mcp_prelude(ctx).await;
        }
        let Some(binding) = ctx.rec.response.clone().filter(|b| !b.mcp.is_empty()) else {
            return Ok(true);
        };
        let context = crate::items::context(
            &self.store,
            &ctx.project,
            binding.conversation.as_ref(),
            binding.previous.as_ref(),
            Some(&binding.id),
        )
        .await?;
        for (i, server) in binding.mcp.iter().enumerate() {
            if server.listed {
                continue;
            }
            let (tools, item) = match listed_in(&context, &server.label) {
                Some(tools) => (tools, None),
                None => {
                    // Derived from the run and the server, so a run resumed mid-listing
                    // announces the same item again.
                    let call = format!("call_{}-{i}", ctx.run.id.tail());
                    let id = ItemId::for_call("mcp_list_tools", &call);
                    let started = json!({"id": id, "type": "mcp_list_tools",
                        "server_label": server.label, "tools": [], "error": null});
                    self.publish(ctx, MCP_LIST_STARTED, &started).await;
                    let listed = tokio::select! {
                        r = list(self, ctx, server) => r,
                        _ = ctx.stop.cancelled() => return Ok(false),
                    };
                    let (tools, error) = match listed {
                        Ok(tools) => (tools, Value::Null),
                        Err(e) => (vec![], json!(e)),
                    };
                    let shown = allowed(server, &tools);
                    let item = json!({"id": id, "type": "mcp_list_tools",
                        "server_label": server.label, "tools": shown, "error": error});
                    (tools, Some(item))
                }
            };
            bind(ctx, server, &allowed(server, &tools));
            let response = ctx.rec.response.as_mut().expect("a response's run");
            response.mcp[i].listed = true;
            if let Some(item) = &item {
                response.mcp_lists.push(item.clone());
            }
            if !self.save(ctx, RunStatus::InProgress, false).await? {
                return Ok(false);
            }
            if let Some(item) = item {
                self.publish(ctx, MCP_LIST_DONE, &item).await;
            }
            self.publish(ctx, TOOLS_BOUND, &json!({})).await;
        }
        self.approved_calls(ctx, &binding.id, &context).await
    }

    /// An assistant's run: each server's tools listed and bound, once (a run resumed after
    /// a server was listed keeps what it bound). A server that cannot be listed offers no
    /// tools; the run goes on without them, as a response's does.
    async fn assistant_mcp_prelude(&self, ctx: &mut Ctx) -> EngineResult<bool> {
        for i in 0..ctx.rec.mcp.len() {
            let server = ctx.rec.mcp[i].clone();
            if server.listed {
                continue;
            }
            let listed = tokio::select! {
                r = list(self, ctx, &server) => r,
                _ = ctx.stop.cancelled() => return Ok(false),
            };
            let tools = listed.unwrap_or_else(|e| {
                tracing::warn!(server = %server.label, error = %e, "an MCP server's tools could not be listed; the run goes on without them");
                vec![]
            });
            bind(ctx, &server, &allowed(&server, &tools));
            ctx.rec.mcp[i].listed = true;
            if !self.save(ctx, RunStatus::InProgress, false).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs the calls this response's input approved, and tells the model about the declined
    /// ones (each answer kept by request id, so a resumed run does not repeat it).
    async fn approved_calls(
        &self,
        ctx: &mut Ctx,
        response: &assistants_core::model::ids::ResponseId,
        context: &[Item],
    ) -> EngineResult<bool> {
        let own = self
            .store
            .latest_items(
                &ctx.project,
                ItemsOf::Response(response),
                crate::items::MAX_CONTEXT_ITEMS as i64,
            )
            .await?;
        for answer in own.iter().filter(|i| i.kind() == "mcp_approval_response") {
            let Some(request_id) = answer.get("approval_request_id").and_then(Value::as_str) else {
                continue;
            };
            let known = ctx.rec.response.as_ref().expect("a response's run");
            let ran_before = context.iter().any(|i| {
                i.kind() == "mcp_call"
                    && i.get("approval_request_id").and_then(Value::as_str) == Some(request_id)
            });
            if known.mcp_answers.contains_key(request_id) || ran_before {
                continue;
            }
            let Some(request) = context
                .iter()
                .find(|i| i.kind() == "mcp_approval_request" && i.id.as_str() == request_id)
            else {
                continue;
            };
            let text = |k: &str| request.get(k).and_then(Value::as_str).unwrap_or("");
            let told = if answer.get("approve").and_then(Value::as_bool) == Some(true) {
                let tool = ctx
                    .rec
                    .tools
                    .iter()
                    .find(|b| {
                        b.mcp.as_ref().is_some_and(|m| {
                            m.server == text("server_label") && m.name == text("name")
                        })
                    })
                    .cloned();
                match tool {
                    None => format!(
                        "error: the tool '{}' of the MCP server '{}' is not among this response's tools",
                        text("name"),
                        text("server_label")
                    ),
                    Some(tool) => {
                        let call = ToolCall {
                            id: mcp::call_of_request(request_id),
                            name: tool.exposed.clone(),
                            arguments_json: text("arguments").to_string(),
                        };
                        match self.run_approved(ctx, &tool, call, request_id).await? {
                            Some(told) => told,
                            None => return Ok(false),
                        }
                    }
                }
            } else {
                let reason = answer.get("reason").and_then(Value::as_str);
                format!(
                    "The user declined to run this tool call{}.",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                )
            };
            let response = ctx.rec.response.as_mut().expect("a response's run");
            response.mcp_answers.insert(request_id.to_string(), told);
            if !self.save(ctx, RunStatus::InProgress, false).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One approved call in a step of its own (an `mcp_call` item with its
    /// `approval_request_id`); what the model is told, `None` if the run was taken away.
    async fn run_approved(
        &self,
        ctx: &mut Ctx,
        tool: &ToolBinding,
        call: ToolCall,
        request_id: &str,
    ) -> EngineResult<Option<String>> {
        let m = tool.mcp.as_ref().expect("an MCP tool");
        let mut entry = Self::call_entry(ctx, &call);
        entry["mcp"] = json!({"server_label": m.server, "name": m.name, "error": null,
                              "approval_request_id": request_id});
        // Named after the run and the request, so a run resumed mid-call rewrites this step
        // instead of adding a second one.
        let step_id = StepId::parse(&format!(
            "step_{}-{}",
            ctx.run.id.tail(),
            stable_tail(request_id)
        ))
        .expect("a step id");
        let mut step = self.run_step(
            ctx,
            &step_id,
            "tool_calls",
            json!({"type": "tool_calls", "tool_calls": [entry.clone()]}),
        );
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(None);
        };
        self.store.upsert_in(&mut tx, &ctx.project, &step).await?;
        self.commit(tx, ctx, false).await?;
        self.publish(ctx, "thread.run.step.created", &step).await;
        // Announced before it runs: a slow server's call shows as in progress.
        let mut shown = entry.clone();
        shown["index"] = json!(0);
        let delta = json!({"id": step.id, "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [shown]}}});
        self.publish(ctx, "thread.run.step.delta", &delta).await;
        let server = server_of(ctx, &m.server);
        let (result, mut done) = match server {
            Some(server) => {
                let called = call_tool(
                    &self.plugins,
                    &ctx.project,
                    &server,
                    tool,
                    &call,
                    call_context(ctx, &call),
                );
                tokio::select! {
                    r = called => r,
                    _ = ctx.stop.cancelled() => return Ok(None),
                }
            }
            None => missing_server(&call, m),
        };
        done["mcp"]["approval_request_id"] = json!(request_id);
        step.step_details = json!({"type": "tool_calls", "tool_calls": [done]});
        step.status = StepStatus::Completed;
        step.completed_at = Some(now());
        step.usage = Some(usage(0, 0));
        let Some(mut tx) = self.tx(ctx, RunStatus::InProgress).await? else {
            return Ok(None);
        };
        self.store.upsert_in(&mut tx, &ctx.project, &step).await?;
        *ctx.rec.plugin_calls.entry(mcp::PLUGIN.into()).or_insert(0) += 1;
        // The answer is kept with the finished step, in one write: a run resumed after this
        // never makes the call again (one resumed before it does: at least once).
        let response = ctx.rec.response.as_mut().expect("a response's run");
        response
            .mcp_answers
            .insert(request_id.to_string(), result.output.clone());
        self.commit(tx, ctx, false).await?;
        self.publish(ctx, "thread.run.step.completed", &step).await;
        Ok(Some(result.output))
    }
}

/// The call's context for the component (a response's run tells it the response only).
pub(super) fn call_context(ctx: &Ctx, call: &ToolCall) -> CallContext {
    let run_id = match &ctx.rec.response {
        Some(r) => r.id.to_string(),
        None => ctx.run.id.to_string(),
    };
    CallContext {
        tool_call_id: call.id.clone(),
        run_id: Some(run_id),
        thread_id: None,
        assistant_id: None,
        vector_store_ids: vec![],
        options_json: "{}".into(),
    }
}

/// The run's server labelled `label`.
pub(super) fn server_of(ctx: &Ctx, label: &str) -> Option<McpServer> {
    ctx.rec
        .mcp_servers()
        .iter()
        .find(|s| s.label == label)
        .cloned()
}

/// The answer to a call whose server is not among the run's tools.
pub(super) fn missing_server(call: &ToolCall, m: &McpTool) -> (ToolResult, Value) {
    let message = format!(
        "the MCP server '{}' is not among this run's tools",
        m.server
    );
    entry_of(
        call,
        m,
        Err(json!({"type": "http_error", "code": 400, "message": message})),
    )
}

/// The answer to a call of a tool that needs approval, which nobody gave.
pub(super) fn refused(call: &ToolCall, m: &McpTool) -> (ToolResult, Value) {
    let message = format!(
        "the tool '{}' needs the user's approval before it runs; it was not run",
        m.name
    );
    entry_of(
        call,
        m,
        Err(json!({"type": "http_error", "code": 403, "message": message})),
    )
}

/// The server's URL, and the client's headers bound to its host and port; why not, where
/// this node could not open the headers.
fn target(server: &McpServer) -> Result<(Value, CallHeaders), String> {
    if let Some(why) = &server.unreadable {
        return Err(format!("the client's headers for this MCP server: {why}"));
    }
    let options = json!({"tool": {"type": "mcp", "server_label": server.label,
                                  "server_url": server.url}});
    let parsed = url::Url::parse(&server.url).ok();
    let headers = CallHeaders {
        host: parsed
            .as_ref()
            .and_then(|u| u.host_str())
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: parsed
            .as_ref()
            .and_then(|u| u.port_or_known_default())
            .unwrap_or(443),
        headers: server
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Ok((options, headers))
}

/// Lists `server`'s tools through the component: the tools, or why not.
async fn list(engine: &Engine, ctx: &Ctx, server: &McpServer) -> Result<Vec<Value>, String> {
    let plugin = engine
        .plugins
        .by_digest(&server.digest)
        .await
        .map_err(|e| format!("the MCP client is not available: {e:#}"))?;
    let (options, headers) = target(server)?;
    let call = ToolCall {
        id: new_id(IdKind::ToolCall),
        name: "list_tools".into(),
        arguments_json: "{}".into(),
    };
    let mut context = call_context(ctx, &call);
    context.options_json = options.to_string();
    let (outcome, _) = engine
        .plugins
        .invoke_with(
            &plugin,
            Some(&ctx.project),
            context,
            "list_tools",
            "{}",
            Some(&headers),
        )
        .instrument(tracing::info_span!("mcp.list_tools", server = %server.label))
        .await;
    let text = outcome.map_err(|e| error_text(&e))?.text;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the MCP client's answer is not JSON: {e}"))?;
    Ok(v["tools"].as_array().cloned().unwrap_or_default())
}

/// Calls an MCP tool through the component: the result the model sees and the step's entry
/// (the function call with its output, and the `mcp` details its item shows).
pub(super) async fn call_tool(
    plugins: &PluginHost,
    project: &str,
    server: &McpServer,
    tool: &ToolBinding,
    call: &ToolCall,
    mut context: CallContext,
) -> (ToolResult, Value) {
    let m = tool.mcp.as_ref().expect("an MCP tool");
    let arguments: Value = if call.arguments_json.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(&call.arguments_json) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let message = "the arguments are not a JSON object";
                return entry_of(
                    call,
                    m,
                    Err(json!({"type": "mcp_protocol_error", "code": -32602, "message": message})),
                );
            }
        }
    };
    let plugin = match plugins.by_digest(&tool.digest).await {
        Ok(p) => p,
        Err(e) => {
            let message = format!("the MCP client is not available: {e:#}");
            return entry_of(
                call,
                m,
                Err(json!({"type": "http_error", "code": 503, "message": message})),
            );
        }
    };
    let (options, headers) = match target(server) {
        Ok(t) => t,
        Err(message) => {
            return entry_of(
                call,
                m,
                Err(json!({"type": "http_error", "code": 500, "message": message})),
            )
        }
    };
    context.options_json = options.to_string();
    let args = json!({"name": m.name, "arguments": arguments}).to_string();
    let (outcome, _) = plugins
        .invoke_with(
            &plugin,
            Some(project),
            context,
            "call_tool",
            &args,
            Some(&headers),
        )
        .instrument(tracing::info_span!("mcp.call", server = %m.server, tool = %m.name))
        .await;
    let answer: Value = match outcome {
        Ok(out) => serde_json::from_str(&out.text).unwrap_or(Value::Null),
        Err(e) => json!({"error": {"type": "http_error", "code": 502, "message": error_text(&e)}}),
    };
    let outcome = match (answer.get("output"), answer.get("error")) {
        (Some(Value::String(out)), _) => Ok(out.clone()),
        (_, Some(err)) => {
            let mut err = err.clone();
            if let Some(text) = answer.get("text").and_then(Value::as_str) {
                err["text"] = json!(text);
            }
            Err(err)
        }
        _ => Err(json!({"type": "mcp_protocol_error", "code": -32603,
                        "message": "the MCP client gave no answer"})),
    };
    entry_of(call, m, outcome)
}

/// A call's result and step entry from its outcome (`Err`: the error in the Responses shape,
/// with `text` the tool's own words when it reported the failure).
fn entry_of(call: &ToolCall, m: &McpTool, outcome: Result<String, Value>) -> (ToolResult, Value) {
    let (output, error) = match outcome {
        Ok(out) => (out, Value::Null),
        Err(mut err) => {
            let said = err
                .as_object_mut()
                .and_then(|o| o.remove("text"))
                .and_then(|t| t.as_str().map(str::to_string));
            let why = said.unwrap_or_else(|| {
                let code = err.get("code").map(Value::to_string).unwrap_or_default();
                let message = err.get("message").and_then(Value::as_str).unwrap_or("");
                match err["type"].as_str() {
                    Some("http_error") => format!("HTTP {code}: {message}"),
                    _ => format!("MCP error {code}: {message}"),
                }
            });
            (format!("error: {why}"), err)
        }
    };
    let result = ToolResult {
        tool_call_id: call.id.clone(),
        output: output.clone(),
        is_error: !error.is_null(),
    };
    let entry = json!({"id": call.id, "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json, "output": output},
        "mcp": {"server_label": m.server, "name": m.name, "error": error,
                "approval_request_id": null}});
    (result, entry)
}

/// The tools of the newest successful listing of `label` in the context.
fn listed_in(context: &[Item], label: &str) -> Option<Vec<Value>> {
    context
        .iter()
        .rev()
        .find(|i| {
            i.kind() == "mcp_list_tools"
                && i.get("server_label").and_then(Value::as_str) == Some(label)
                && i.get("error").is_none_or(Value::is_null)
        })
        .and_then(|i| i.get("tools").and_then(Value::as_array).cloned())
}

/// The tools `allowed_tools` lets through.
fn allowed(server: &McpServer, tools: &[Value]) -> Vec<Value> {
    tools
        .iter()
        .filter(|t| {
            server
                .allowed
                .as_ref()
                .is_none_or(|f| f.matches(name_of(t), read_only(t)))
        })
        .cloned()
        .collect()
}

fn name_of(t: &Value) -> &str {
    t["name"].as_str().unwrap_or("")
}

fn read_only(t: &Value) -> bool {
    t.pointer("/annotations/readOnlyHint")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Binds `tools` of `server` as functions the model is offered: under their own names, or
/// `<label>__<name>` where another tool has the name already.
fn bind(ctx: &mut Ctx, server: &McpServer, tools: &[Value]) {
    for t in tools {
        let name = name_of(t);
        if name.is_empty() {
            continue;
        }
        let taken = |n: &str, ctx: &Ctx| {
            ctx.rec.tools.iter().any(|b| b.exposed == n)
                || ctx
                    .run
                    .tools
                    .iter()
                    .any(|f| f.pointer("/function/name").and_then(Value::as_str) == Some(n))
        };
        let candidates = [
            mcp::function_name(name),
            mcp::function_name(&format!("{}__{name}", server.label)),
        ];
        let Some(exposed) = candidates.into_iter().find(|n| !taken(n, ctx)) else {
            tracing::warn!(server = %server.label, tool = name, "an MCP tool's name is taken; it is not offered");
            continue;
        };
        // The client's `server_description` tells the model what the server is for.
        let own = t["description"].as_str().unwrap_or("");
        let description = match server.description.as_deref().filter(|d| !d.is_empty()) {
            Some(about) if own.is_empty() => format!("(MCP server '{}': {about})", server.label),
            Some(about) => format!("{own}\n\n(MCP server '{}': {about})", server.label),
            None => own.to_string(),
        };
        let parameters = t
            .get("input_schema")
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        ctx.rec.tools.push(ToolBinding {
            exposed,
            plugin: mcp::PLUGIN.into(),
            digest: server.digest.clone(),
            tool: "call_tool".into(),
            mcp: Some(McpTool {
                server: server.label.clone(),
                name: name.to_string(),
                description,
                parameters_json: parameters.to_string(),
                approval: server.approval.required(name, read_only(t)),
            }),
        });
    }
}
