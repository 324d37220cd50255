//! `/mcp`: the installed tool plugins as an MCP server (streamable HTTP), so MCP clients —
//! agents, IDEs, other servers' `mcp` tools — can call the sandboxed tools. An extension of
//! the API, served by rmcp's streamable HTTP transport.
//!
//! Each HTTP request is authenticated like the rest of the API (`Authorization: Bearer KEY`,
//! answered 401 in the OpenAI error envelope without one) and sees only the tools its project
//! may use. The server is stateless — no `Mcp-Session-Id`, answers as plain JSON — so any API
//! node serves any request. Tools are named as a run would offer them all at once (`<plugin
//! id>__<tool>` where names collide) and run under the same limits, with calls counted against
//! the project's share of the plugin pools. Retrieval tools are not offered (their searches
//! need a run's vector stores), nor the Responses API's own MCP client.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use assistants_core::plugins::bindings::CallContext;
use assistants_core::plugins::manifest::Kind;
use assistants_core::plugins::{error_text, OfferedTool, ProjectRef};

use crate::auth::Project;
use crate::error::ApiResult;
use crate::state::AppState;

/// The `/mcp` route: authentication, then rmcp's transport over [`PluginTools`].
pub fn router(state: AppState) -> Router<AppState> {
    // Requests are authenticated by API key below (open mode exists on loopback only), so
    // rmcp's Host check, meant for unauthenticated local servers, would only refuse proxies.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts()
        .with_cancellation_token(state.lifecycle.ending.child_token());
    let tools = PluginTools {
        state: state.clone(),
    };
    let service: StreamableHttpService<PluginTools, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(tools.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Resolves the caller's project from its API key and hands it to the handler (rmcp passes
/// the request's parts, extensions included, into each call's context).
async fn authenticate(
    State(state): State<AppState>,
    Project(project): Project,
    mut request: Request,
    next: Next,
) -> ApiResult<Response> {
    let caller = super::common::plugin_caller(&state, &project).await?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The MCP server's handler: the tool plugins the caller's project may use.
#[derive(Clone)]
struct PluginTools {
    state: AppState,
}

impl PluginTools {
    /// The caller of a request, as [`authenticate`] resolved it.
    fn caller(context: &RequestContext<RoleServer>) -> Result<ProjectRef, ErrorData> {
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ProjectRef>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the request was not authenticated", None))
    }

    /// The tools offered to `caller`, named as one run offering them all would name them.
    fn offered(&self, caller: &ProjectRef) -> Vec<OfferedTool> {
        let ids: Vec<String> = self
            .state
            .plugins
            .list()
            .into_iter()
            .filter(|p| p.manifest.kind == Kind::Tool && p.is_offered_tool() && p.allows(caller))
            .map(|p| p.manifest.id.clone())
            .collect();
        self.state.plugins.offered_tools(&ids, &[])
    }
}

impl ServerHandler for PluginTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("assistants", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The tool plugins installed on this assistants server, each call run in a fresh \
                 WebAssembly sandbox.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = Self::caller(&context)?;
        let tools = self
            .offered(&caller)
            .into_iter()
            .map(|t| {
                let schema = match serde_json::from_str(&t.spec.parameters_json) {
                    Ok(serde_json::Value::Object(map)) => map,
                    // Validated as an object schema when the plugin loaded.
                    _ => JsonObject::new(),
                };
                Tool::new(t.exposed_name, t.spec.description, schema)
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = Self::caller(&context)?;
        let name = request.name.to_string();
        let Some(tool) = self
            .offered(&caller)
            .into_iter()
            .find(|t| t.exposed_name == name)
        else {
            // The MCP specification's answer to an unknown tool: a protocol error.
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {name}"),
                None,
            ));
        };
        let arguments =
            serde_json::Value::Object(request.arguments.unwrap_or_default()).to_string();
        let ctx = CallContext {
            tool_call_id: assistants_core::model::ids::new_id(
                assistants_core::model::ids::IdKind::ToolCall,
            ),
            run_id: None,
            thread_id: None,
            assistant_id: None,
            vector_store_ids: vec![],
            options_json: serde_json::json!({"tool": {"type": tool.plugin.manifest.id}})
                .to_string(),
        };
        let (outcome, _) = self
            .state
            .plugins
            .invoke_recorded(
                &tool.plugin,
                Some(&caller.id),
                ctx,
                &tool.spec.name,
                &arguments,
            )
            .await;
        // A tool's own failure is a result the model reads (`isError`), not a protocol error.
        let result = match outcome {
            Ok(out) => CallToolResult::success(vec![ContentBlock::text(out.text)]),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(error_text(&e))]),
        };
        Ok(result.into())
    }
}
