//! Remote MCP servers a response may use (the Responses API's `mcp` tool) or an assistant's run
//! (the same tool as an extension of assistants and runs, never waiting for approvals), and
//! the tools the engine found on them.
//!
//! A response names its servers in `tools` (`server_label`, `server_url`, `headers`,
//! `allowed_tools`, `require_approval`); the API validates them into [`McpServer`]s kept in the
//! run's engine record. An assistant keeps its servers' headers sealed to it (never shown), and
//! each of its runs gets them sealed again to the run. At the start of the run the engine lists each server's tools (or
//! reuses a listing from the context, as OpenAI does) through the `mcp` client component and
//! offers the allowed ones to the model as functions ([`McpTool`], on the run's tool
//! bindings). A call of a tool that needs approval ends the response with an
//! `mcp_approval_request`; the next response's `mcp_approval_response` runs it (or tells the
//! model it was declined) before the model is asked again.
//!
//! `headers` are secrets: the record keeps them sealed (`crate::seal`), the engine hands them
//! to the plugin host for requests to the server's own host and port only (never to the
//! component), the response object never shows them, and they are dropped from the record
//! when the run ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::seal::{SealError, SealKey};

/// The plugin id of the MCP client component.
pub const PLUGIN: &str = "mcp";

/// One server of a response's `tools`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct McpServer {
    pub label: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The client's headers, sent to the server only and never shown. In memory only: the
    /// record keeps them sealed ([`McpServer::seal_headers`]); read from a record written
    /// before they were (an older release), never written.
    #[serde(default, skip_serializing)]
    pub headers: BTreeMap<String, String>,
    /// The headers sealed for the response (`crate::seal`), until the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_headers: Option<String>,
    /// Why this node could not open the sealed headers (another secrets key): calls fail
    /// with it instead of going out without the client's credentials.
    #[serde(skip)]
    pub unreadable: Option<String>,
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

impl McpServer {
    /// What sealed headers are bound to: their owner (the response, the run, the assistant)
    /// and this server (its label and URL), so they open for no other owner and are sent to no
    /// other server.
    fn seal_context(&self, owner: &str) -> String {
        format!("{owner}\n{}\n{}", self.label, self.url)
    }

    /// Seals the headers for `owner` (the record keeps them so).
    pub fn seal_headers(&mut self, key: &SealKey, owner: &str) {
        if !self.headers.is_empty() {
            let plain = serde_json::to_vec(&self.headers).expect("a map of strings");
            self.sealed_headers = Some(key.seal(&self.seal_context(owner), &plain));
        }
    }

    /// Opens the sealed headers for the worker that makes the calls; where that fails the
    /// calls will (`unreadable`). Headers a record from an older release kept in clear are
    /// sealed now, so the record's next write holds them sealed.
    pub fn open_headers(&mut self, key: &SealKey, owner: &str) {
        let Some(sealed) = &self.sealed_headers else {
            self.seal_headers(key, owner);
            return;
        };
        let opened = key
            .open(&self.seal_context(owner), sealed)
            .ok()
            .and_then(|plain| serde_json::from_slice(&plain).ok());
        match opened {
            Some(headers) => self.headers = headers,
            None => self.unreadable = Some(SealError.to_string()),
        }
    }

    /// Drops the headers, sealed or not (the run has ended).
    pub fn forget_headers(&mut self) {
        self.headers.clear();
        self.sealed_headers = None;
    }
}

/// Shows the headers' names only: a record printed in a log must not carry the secrets.
impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("label", &self.label)
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("sealed", &self.sealed_headers.is_some())
            .field("allowed", &self.allowed)
            .field("approval", &self.approval)
            .field("digest", &self.digest)
            .field("listed", &self.listed)
            .finish_non_exhaustive()
    }
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

/// Longest function name a model is offered.
const MAX_NAME: usize = 64;

/// A tool's `name` as a function name a model accepts: `a-z A-Z 0-9 _ -`, at most 64
/// characters.
pub fn function_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME)
        .collect()
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
    fn headers_are_sealed_for_one_response_and_server() {
        let key = SealKey::from_bytes(&[1; 32]);
        let mut server: McpServer = serde_json::from_value(serde_json::json!({
            "label": "docs", "url": "https://mcp.example.com/mcp", "approval": "always",
            "digest": "d"}))
        .unwrap();
        server
            .headers
            .insert("authorization".into(), "Bearer sk-x".into());
        server.seal_headers(&key, "resp_1");
        let stored = serde_json::to_string(&server).unwrap();
        assert!(!stored.contains("sk-x"), "{stored}");
        let mut back: McpServer = serde_json::from_str(&stored).unwrap();
        back.open_headers(&key, "resp_1");
        assert_eq!(back.headers, server.headers);
        // Another node's key, another response, or another server: not opened, and said so.
        for (key, response, url) in [
            (
                SealKey::from_bytes(&[2; 32]),
                "resp_1",
                "https://mcp.example.com/mcp",
            ),
            (
                SealKey::from_bytes(&[1; 32]),
                "resp_2",
                "https://mcp.example.com/mcp",
            ),
            (
                SealKey::from_bytes(&[1; 32]),
                "resp_1",
                "https://evil.example.com/mcp",
            ),
        ] {
            let mut other: McpServer = serde_json::from_str(&stored).unwrap();
            other.url = url.into();
            other.open_headers(&key, response);
            assert!(other.headers.is_empty());
            assert!(other.unreadable.is_some());
        }
        // A record from before sealing (headers in clear) is sealed when a worker opens it.
        let mut legacy: McpServer = serde_json::from_value(serde_json::json!({
            "label": "docs", "url": "https://mcp.example.com/mcp", "approval": "always",
            "digest": "d", "headers": {"authorization": "Bearer sk-x"}}))
        .unwrap();
        legacy.open_headers(&key, "resp_1");
        assert!(legacy.sealed_headers.is_some());
        assert!(!serde_json::to_string(&legacy).unwrap().contains("sk-x"));
    }

    #[test]
    fn request_and_call_ids_derive_from_each_other() {
        assert_eq!(call_of_request("mcpr_abc"), "call_abc");
        assert_eq!(request_of_call("call_abc"), "mcpr_abc");
    }
}
