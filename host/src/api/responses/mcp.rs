//! A response's MCP approval answers checked against its context. Its `mcp` tools are
//! validated by `api::mcp_tool`, shared with assistants and runs.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::{ConversationId, ResponseId};
use assistants_core::model::mcp::McpServer;
use assistants_core::model::Item;

fn invalid(param: String, message: String) -> ApiError {
    ApiError::invalid(param, message)
}

/// Refuses an `mcp_approval_response` in `items` that answers no approval request of the
/// context (the conversation's items, or the chain of `previous_response_id`), and an
/// approval whose server is not among this request's `servers` (the call could not be made).
pub async fn check_answers(
    state: &AppState,
    project: &str,
    conversation: Option<&ConversationId>,
    previous: Option<&ResponseId>,
    items: &[Item],
    servers: &[McpServer],
) -> ApiResult<()> {
    let answers: Vec<(usize, &str, bool)> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| i.kind() == "mcp_approval_response")
        .filter_map(|(n, i)| {
            let approved = i.get("approve").and_then(Value::as_bool) == Some(true);
            Some((n, i.get("approval_request_id")?.as_str()?, approved))
        })
        .collect();
    if answers.is_empty() {
        return Ok(());
    }
    let context =
        assistants_worker::items::context(&state.store, project, conversation, previous, None)
            .await?;
    for (n, request, approved) in answers {
        let param = format!("input[{n}].approval_request_id");
        let asked = context
            .iter()
            .find(|i| i.kind() == "mcp_approval_request" && i.id.as_str() == request);
        let Some(asked) = asked else {
            return Err(invalid(
                param,
                format!(
                    "No MCP approval request '{request}' in this response's context: answer a \
                     request of the previous response or of the conversation."
                ),
            ));
        };
        let label = asked
            .get("server_label")
            .and_then(Value::as_str)
            .unwrap_or("");
        if approved && !servers.iter().any(|s| s.label == label) {
            return Err(invalid(
                param,
                format!(
                    "The approved call of MCP approval request '{request}' needs its server: \
                     give the mcp tool labelled '{label}' in 'tools' again."
                ),
            ));
        }
    }
    Ok(())
}
