//! A response's `tool_choice` beyond modes and functions: an MCP server's tool named, or the
//! model kept to a set of tools (`allowed_tools`) — what the model is offered and made to
//! call, a call of another tool refused, and every bad choice refused naming its parameter.

use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::json;
use assistants_tests::mcp::FakeMcp;
use serde_json::Value;

use super::response_mcp::{granted, tool_messages};

#[tokio::test]
async fn tool_choice_names_an_mcp_tool_or_restricts_the_model_to_allowed_tools() {
    let mcp = FakeMcp::start().await;
    let llm = FakeLlm::start().await;
    let app = granted(&llm, &mcp).await;
    let server = json!({"type": "mcp", "server_label": "calc", "server_url": mcp.url,
                        "require_approval": "never", "allowed_tools": ["add", "echo_header"]});
    let lookup = json!({"type": "function", "name": "lookup", "parameters": {"type": "object"}});
    let offered = |q: &Value| -> Vec<String> {
        q["tools"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };

    // One tool of one server: the model is made to call it, and sees every tool.
    llm.push(Reply::tool("add", r#"{"a":1,"b":2}"#));
    llm.push(Reply::text("3."));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "1 + 2?", "tools": [server, lookup],
                   "tool_choice": {"type": "mcp", "server_label": "calc", "name": "add"}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let first = &llm.requests()[0];
    assert_eq!(
        first["tool_choice"],
        json!({"type": "function", "function": {"name": "add"}})
    );
    assert_eq!(offered(first), ["lookup", "add", "echo_header"]);
    assert_eq!(
        r["tool_choice"],
        json!({"type": "mcp", "server_label": "calc", "name": "add"}),
        "echoed as given"
    );
    assert_eq!(r["output"][1]["output"], "3", "{r}");

    // allowed_tools: only the listed tools are offered, with the mode as the model's choice.
    let n = llm.requests().len();
    llm.push(Reply::text("Fine."));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "x", "tools": [server, lookup],
                   "tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [
                       {"type": "function", "name": "lookup"},
                       {"type": "mcp", "server_label": "calc", "name": "echo_header"}]}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let first = &llm.requests()[n];
    assert_eq!(first["tool_choice"], "required");
    assert_eq!(offered(first), ["lookup", "echo_header"]);

    // A tool outside allowed_tools that the model calls anyway is not run.
    llm.push(Reply::tool("add", r#"{"a":1,"b":1}"#));
    llm.push(Reply::text("Could not."));
    let calls_before = mcp.calls().len();
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "x", "tools": [server, lookup],
                   "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [
                       {"type": "function", "name": "lookup"}]}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(mcp.calls().len(), calls_before, "add was not called");
    let told = tool_messages(&llm);
    assert!(
        told.iter()
            .any(|t| t.contains("tool_choice does not allow it")),
        "{told:?}"
    );

    // Refusals name the parameter.
    for (choice, param) in [
        (
            json!({"type": "mcp", "server_label": "nope"}),
            "tool_choice.server_label",
        ),
        (json!({"type": "mcp"}), "tool_choice.server_label"),
        (
            json!({"type": "mcp", "server_label": "calc", "name": "div"}),
            "tool_choice.name",
        ),
        (
            json!({"type": "allowed_tools", "tools": [{"type": "function", "name": "lookup"}]}),
            "tool_choice.mode",
        ),
        (
            json!({"type": "allowed_tools", "mode": "auto", "tools": []}),
            "tool_choice.tools",
        ),
        (
            json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "nope"}]}),
            "tool_choice.tools[0].name",
        ),
        (
            json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "code_interpreter"}]}),
            "tool_choice.tools[0].type",
        ),
    ] {
        let (s, e) = app
            .post(
                "/responses",
                json!({"model": "m", "input": "x", "tools": [server, lookup], "tool_choice": choice}),
            )
            .await;
        assert_eq!(s, 400, "{choice}: {e}");
        assert_eq!(
            assistants_tests::assert_error(&e)["param"],
            param,
            "{choice}: {e}"
        );
    }
}
