//! Remote MCP servers as an assistant's tools (an extension of the Assistants API: the
//! Responses API's `mcp` tool on assistants and runs, through the same client component): the
//! server's tools offered and called in runs, recorded as function calls with their output;
//! the headers kept sealed apart from the assistant, sent to that server only, never shown;
//! kept across a modification that does not mention them, cleared by `{}`, overridden by a
//! run's own tools; approvals refused (an assistant's run cannot wait for one).

use assistants_core::store::testing::admin_scalar;
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::mcp::FakeMcp;
use assistants_tests::{assert_error, json, TestApp};
use serde_json::Value;

use super::response_mcp::granted;

async fn count(app: &TestApp, sql: &str) -> i64 {
    admin_scalar(&app.settings().storage.database_url, sql)
        .await
        .unwrap()
}

/// The run's function calls, as its steps record them.
async fn calls(app: &TestApp, thread: &str, run: &Value) -> Vec<Value> {
    app.tool_calls(thread, run["id"].as_str().unwrap()).await
}

/// A run of `body` in which the model adds 1 and 1 with the server's `add`.
async fn answered(app: &TestApp, llm: &FakeLlm, thread: &str, body: Value) {
    llm.push(Reply::tool("add", r#"{"a":1,"b":1}"#));
    llm.push(Reply::text("Two."));
    let run = app.run_with(thread, body).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(calls(app, thread, &run).await[0]["function"]["output"], "2");
}

#[tokio::test]
async fn an_assistants_mcp_server_is_called_with_its_headers_which_are_never_shown() {
    let mcp = FakeMcp::start().await;
    let llm = FakeLlm::start().await;
    let app = granted(&llm, &mcp).await;
    let secret = "Bearer sk-mcp-asst-0123456789";
    let tool = json!({"type": "mcp", "server_label": "calc", "server_url": mcp.url,
                      "headers": {"Authorization": secret},
                      "allowed_tools": ["add", "echo_header"]});
    let (s, asst) = app
        .post("/assistants", json!({"model": "m", "tools": [tool]}))
        .await;
    assert_eq!(s, 200, "{asst}");
    assert_eq!(asst["tools"][0]["headers"], Value::Null, "{asst}");
    assert_eq!(asst["tools"][0]["server_label"], "calc");
    let id = asst["id"].as_str().unwrap().to_string();
    let (_, shown) = app.get(&format!("/assistants/{id}")).await;
    assert!(!shown.to_string().contains("sk-mcp"), "{shown}");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM assistants WHERE body LIKE '%sk-mcp%'"
        )
        .await,
        0,
        "not in the assistant's document"
    );
    let kept = format!("SELECT COUNT(*) FROM mcp_headers WHERE owner_id = '{id}'");
    assert_eq!(count(&app, &kept).await, 1, "kept apart");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM mcp_headers WHERE sealed LIKE '%sk-mcp%'"
        )
        .await,
        0,
        "and sealed"
    );

    // A run: the server's tools are offered and called with the assistant's headers.
    let thread = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "What is 2 + 3?"}]}),
        )
        .await;
    llm.push(Reply::tool("add", r#"{"a":2,"b":3}"#));
    llm.push(Reply::tool("echo_header", r#"{"name":"authorization"}"#));
    llm.push(Reply::text("It is 5."));
    let run = app.run_with(&thread, json!({"assistant_id": id})).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["tools"][0]["headers"], Value::Null, "{run}");
    let offered: Vec<String> = llm.requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(offered, ["add", "echo_header"], "allowed_tools filters");
    let made = calls(&app, &thread, &run).await;
    assert_eq!(made[0]["type"], "function");
    assert_eq!(made[0]["function"]["name"], "add");
    assert_eq!(made[0]["function"]["output"], "5");
    assert_eq!(made[0]["mcp"]["server_label"], "calc");
    // The sandboxed client never read the header: the echo came back masked.
    let echoed = made[1]["function"]["output"].as_str().unwrap();
    assert!(!echoed.contains("sk-mcp"), "{echoed}");
    let sent = mcp.header_values("authorization");
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|v| v.as_deref() == Some(secret)),
        "{sent:?}"
    );
    assert!(!llm
        .requests()
        .iter()
        .any(|q| q.to_string().contains("sk-mcp")));
    let run_id = run["id"].as_str().unwrap();
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM runs WHERE id = '{run_id}' AND engine LIKE '%sealed_headers%'")
        )
        .await,
        0,
        "the run's copy is dropped when it ends"
    );

    // Modified with the tools as shown (no headers): the kept ones stay.
    let (s, e) = app
        .post(
            &format!("/assistants/{id}"),
            json!({"tools": shown["tools"]}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(count(&app, &kept).await, 1);
    answered(&app, &llm, &thread, json!({"assistant_id": id})).await;
    assert_eq!(
        mcp.header_values("authorization")
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some(secret)
    );

    // A run's own tools bring their own headers.
    let mut own = shown["tools"][0].clone();
    own["headers"] = json!({"Authorization": "Bearer sk-mcp-run-only"});
    answered(
        &app,
        &llm,
        &thread,
        json!({"assistant_id": id, "tools": [own]}),
    )
    .await;
    assert_eq!(
        mcp.header_values("authorization")
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some("Bearer sk-mcp-run-only")
    );

    // `headers: {}` clears them.
    let mut cleared = shown["tools"][0].clone();
    cleared["headers"] = json!({});
    let (s, e) = app
        .post(&format!("/assistants/{id}"), json!({"tools": [cleared]}))
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(count(&app, &kept).await, 0);
    answered(&app, &llm, &thread, json!({"assistant_id": id})).await;
    assert_eq!(
        mcp.header_values("authorization").last().cloned().flatten(),
        None
    );

    // Deleted with the assistant.
    let with = json!({"model": "m", "tools": [tool]});
    let other = app.create("/assistants", with).await;
    let kept_other = format!("SELECT COUNT(*) FROM mcp_headers WHERE owner_id = '{other}'");
    assert_eq!(count(&app, &kept_other).await, 1);
    assert_eq!(app.delete(&format!("/assistants/{other}")).await.0, 200);
    assert_eq!(count(&app, &kept_other).await, 0);
}

#[tokio::test]
async fn an_assistants_mcp_tool_is_refused_where_it_could_not_run() {
    let mcp = FakeMcp::start().await;
    let llm = FakeLlm::start().await;
    let app = granted(&llm, &mcp).await;
    let server = |extra: Value| {
        let mut t = json!({"type": "mcp", "server_label": "calc", "server_url": mcp.url});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    let refused = |tools: Value, param: &'static str| {
        let app = &app;
        async move {
            let (s, e) = app
                .post("/assistants", json!({"model": "m", "tools": tools}))
                .await;
            assert_eq!(s, 400, "{e}");
            assert_eq!(assert_error(&e)["param"], param, "{e}");
            e
        }
    };
    // Runs of assistants cannot wait for approvals.
    let e = refused(
        json!([server(json!({"require_approval": "always"}))]),
        "tools[0].require_approval",
    )
    .await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Responses API"),
        "{e}"
    );
    refused(
        json!([server(json!({})), server(json!({}))]),
        "tools[1].server_label",
    )
    .await;
    refused(
        json!([server(
            json!({"server_url": "https://elsewhere.example.com/mcp"})
        )]),
        "tools[0].server_url",
    )
    .await;
    // `never` is what an assistant's server does anyway.
    let (s, e) = app
        .post(
            "/assistants",
            json!({"model": "m", "tools": [server(json!({"require_approval": "never"}))]}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    // Not granted at all: the tool type is refused, on runs too.
    let plain = TestApp::spawn_with_llm(&llm, |_| {}).await;
    let (s, e) = plain
        .post(
            "/assistants",
            json!({"model": "m", "tools": [server(json!({}))]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "tools[0].type");
    let asst = plain.create("/assistants", json!({"model": "m"})).await;
    let thread = plain.create("/threads", json!({})).await;
    let (s, e) = plain
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "tools": [server(json!({}))]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "tools[0].type");
}
