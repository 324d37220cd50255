//! Remote MCP servers a response may use (the Responses API's `mcp` tool), and the tools the
//! engine found on them.
//!
//! A response names its servers in `tools` (`server_label`, `server_url`, `headers`,
//! `allowed_tools`, `require_approval`); the API validates them into [`McpServer`]s kept in the
//! run's engine record. At the start of the run the engine lists each server's tools (or
//! reuses a listing from the context, as OpenAI does) through the `mcp` client component and
//! offers the allowed ones to the model as functions ([`McpTool`], on the run's tool
//! bindings). A call of a tool that needs approval ends the response with an
//! `mcp_approval_request`; the next response's `mcp_approval_response` runs it (or tells the
//! model it was declined) before the model is asked again.
//!
//! `headers` are secrets: the engine hands them to the plugin host for requests to the
//! server's own host and port only (never to the component), the response object never shows
//! them, and they are dropped from the record when the run ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The plugin id of the MCP client component.
pub const PLUGIN: &str = "mcp";

/// One server of a response's `tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpServer {
    pub label: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Sent to the server only; never shown; cleared when the run ends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `allowed_tools`: which of its tools are offered (`None`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<ToolFilter>,
    pub approval: Approval,
    /// The `mcp` component the run is pinned to.
    pub digest: String,
    /// Its tools were listed (or found in the context) and bound: the run's progress.
    #[serde(default)]
    pub listed: bool,
}

/// Tools chosen by name and/or by their `readOnlyHint` annotation (`MCPToolFilter`); a filter
/// that says nothing matches every tool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

impl ToolFilter {
    pub fn matches(&self, name: &str, read_only: bool) -> bool {
        self.tool_names
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
            && self.read_only.is_none_or(|r| r == read_only)
    }
}

/// `require_approval`: `always` (OpenAI's default), `never`, or filters. With filters a tool
/// the `never` filter matches runs without approval; every other tool needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Always,
    Never,
    Filters {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        always: Option<ToolFilter>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        never: Option<ToolFilter>,
    },
}

impl Approval {
    pub fn required(&self, name: &str, read_only: bool) -> bool {
        match self {
            Approval::Always => true,
            Approval::Never => false,
            Approval::Filters { always, never } => {
                let always_matches = always.as_ref().is_some_and(|f| f.matches(name, read_only));
                let never_matches = never.as_ref().is_some_and(|f| f.matches(name, read_only));
                always_matches || !never_matches
            }
        }
    }
}

/// A tool of an MCP server, as a run offers it (on its tool binding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    /// The server's label.
    pub server: String,
    /// The tool's name on the server (the model may see it prefixed, on a collision).
    pub name: String,
    pub description: String,
    /// Its input schema, as JSON text.
    pub parameters_json: String,
    /// A call needs the client's approval first.
    pub approval: bool,
}

/// The call id of the tool call an approval request (`mcpr_<tail>`) asks about
/// (`call_<tail>`), and back: derived, so neither needs storing beside the other.
pub fn call_of_request(request_id: &str) -> String {
    format!(
        "call_{}",
        request_id.strip_prefix("mcpr_").unwrap_or(request_id)
    )
}

/// The approval request id of a call (see [`call_of_request`]).
pub fn request_of_call(call_id: &str) -> String {
    format!("mcpr_{}", call_id.strip_prefix("call_").unwrap_or(call_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_follows_openai_rules() {
        assert!(Approval::Always.required("x", true));
        assert!(!Approval::Never.required("x", false));
        let read_only_free = Approval::Filters {
            always: None,
            never: Some(ToolFilter {
                tool_names: None,
                read_only: Some(true),
            }),
        };
        assert!(!read_only_free.required("add", true));
        assert!(read_only_free.required("delete_file", false));
        let named = Approval::Filters {
            always: Some(ToolFilter {
                tool_names: Some(vec!["delete_file".into()]),
                read_only: None,
            }),
            never: Some(ToolFilter::default()),
        };
        assert!(named.required("delete_file", false));
        assert!(!named.required("add", true));
    }

    #[test]
    fn request_and_call_ids_derive_from_each_other() {
        assert_eq!(call_of_request("mcpr_abc"), "call_abc");
        assert_eq!(request_of_call("call_abc"), "mcpr_abc");
    }
}
