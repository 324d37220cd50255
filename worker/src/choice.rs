//! What a run's `tool_choice` means for the model: which of the offered tools it may call,
//! and the `tool_choice` of its chat-completions request. The API stored the choice in the
//! engine's shape (`api::responses::choice` for responses, `api::runs` for runs):
//! - `none` / `auto` / `required` and `{type: function, function: {name}}` go to the model as
//!   they are;
//! - a tool type (`file_search`, `code_interpreter`, a plugin's id) names that tool's function
//!   (its first, for a plugin with several), and `{type: mcp, server_label, name?}` the
//!   server's tool (its first, without a name) — the model must call it first, and may call
//!   any tool after, as OpenAI's forced choices go;
//! - `{type: allowed_tools, mode, tools}` lets the model call only the listed tools, with the
//!   mode (`auto` / `required`) as the model's choice.
//!
//! A forced tool that the run does not offer after all (an MCP server whose listing failed, or
//! that has no such tool) leaves the model required to call one of the others.

use std::collections::HashSet;

use serde_json::{json, Value};

use assistants_core::model::engine::ToolBinding;

/// The run's choice as the model gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The function names the model may call; `None`: every tool offered.
    pub allowed: Option<HashSet<String>>,
    /// The request's `tool_choice`, as JSON text.
    pub json: String,
}

/// `tool_choice` (a run's, in the engine's shape) among the run's tool bindings.
pub fn resolve(tc: &Value, tools: &[ToolBinding]) -> Choice {
    let open = |json: String| Choice {
        allowed: None,
        json,
    };
    match tc.get("type").and_then(Value::as_str) {
        None | Some("function") => open(tc.to_string()),
        Some("allowed_tools") => {
            let entries = tc.get("tools").and_then(Value::as_array);
            let allowed = entries
                .into_iter()
                .flatten()
                .flat_map(|e| names(e, tools))
                .collect();
            let mode = tc.get("mode").and_then(Value::as_str).unwrap_or("auto");
            Choice {
                allowed: Some(allowed),
                json: json!(mode).to_string(),
            }
        }
        Some(_) => match names(tc, tools).first() {
            Some(first) => open(named(first)),
            None => open(json!("required").to_string()),
        },
    }
}

/// The function names one `{type, ...}` entry selects among the run's tools.
fn names(entry: &Value, tools: &[ToolBinding]) -> Vec<String> {
    let text = |k: &str| entry.get(k).and_then(Value::as_str);
    let selects = |b: &ToolBinding| match text("type") {
        Some("mcp") => b.mcp.as_ref().is_some_and(|m| {
            Some(m.server.as_str()) == text("server_label")
                && text("name").is_none_or(|n| n == m.name)
        }),
        Some(kind) => b.plugin == kind && b.mcp.is_none(),
        None => false,
    };
    match text("type") {
        Some("function") => entry
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .into_iter()
            .collect(),
        _ => tools
            .iter()
            .filter(|b| selects(b))
            .map(|b| b.exposed.clone())
            .collect(),
    }
}

fn named(function: &str) -> String {
    json!({"type": "function", "function": {"name": function}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use assistants_core::model::mcp::McpTool;

    fn binding(exposed: &str, plugin: &str, mcp: Option<(&str, &str)>) -> ToolBinding {
        ToolBinding {
            exposed: exposed.into(),
            plugin: plugin.into(),
            digest: "d".into(),
            tool: exposed.into(),
            mcp: mcp.map(|(server, name)| McpTool {
                server: server.into(),
                name: name.into(),
                description: String::new(),
                parameters_json: "{}".into(),
                approval: false,
            }),
        }
    }

    fn choice(tc: Value) -> Choice {
        let tools = [
            binding("file_search", "file_search", None),
            binding("add", "mcp", Some(("calc", "add"))),
            binding("mul", "mcp", Some(("calc", "mul"))),
            binding("calc_add", "mcp", Some(("other", "add"))),
        ];
        resolve(&tc, &tools)
    }

    fn set(names: &[&str]) -> Option<HashSet<String>> {
        Some(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn modes_and_functions_go_to_the_model_unchanged() {
        assert_eq!(choice(json!("required")).json, "\"required\"");
        assert_eq!(choice(json!("none")).allowed, None);
        let f = json!({"type": "function", "function": {"name": "f"}});
        assert_eq!(choice(f.clone()).json, f.to_string());
    }

    #[test]
    fn a_tool_type_names_its_function() {
        assert_eq!(
            choice(json!({"type": "file_search"})).json,
            named("file_search")
        );
        // A type the run has no binding for (its plugin is gone): some tool is required.
        assert_eq!(choice(json!({"type": "calculator"})).json, "\"required\"");
    }

    #[test]
    fn an_mcp_choice_names_the_tool_or_the_servers_first() {
        let one = choice(json!({"type": "mcp", "server_label": "other", "name": "add"}));
        assert_eq!(one.allowed, None);
        assert_eq!(one.json, named("calc_add"));
        let server = choice(json!({"type": "mcp", "server_label": "calc"}));
        assert_eq!(server.allowed, None);
        assert_eq!(server.json, named("add"));
        // A tool the server did not list: some tool is required, every tool stays.
        let gone = choice(json!({"type": "mcp", "server_label": "calc", "name": "div"}));
        assert_eq!(gone.allowed, None);
        assert_eq!(gone.json, "\"required\"");
    }

    #[test]
    fn allowed_tools_restrict_and_keep_the_mode() {
        let c = choice(
            json!({"type": "allowed_tools", "mode": "required", "tools": [
                {"type": "function", "function": {"name": "lookup"}},
                {"type": "mcp", "server_label": "calc", "name": "mul"},
                {"type": "file_search"},
            ]}),
        );
        assert_eq!(c.allowed, set(&["lookup", "mul", "file_search"]));
        assert_eq!(c.json, "\"required\"");
    }
}
