//! The Responses API's `mcp` tool against a real MCP server (rmcp's streamable HTTP server,
//! `assistants_tests::mcp`): tools listed into an `mcp_list_tools` item (and a listing in the
//! context reused), calls as `mcp_call` items with outputs and errors in OpenAI's shapes, the
//! approval round trip (`mcp_approval_request` → `mcp_approval_response`, approved or
//! declined), the stream's MCP events, the client's headers sent to the server but never seen
//! by the sandboxed client nor shown (nor kept in clear: the run's record holds them sealed
//! until it ends), and every refusal before anything runs.

use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::mcp::FakeMcp;
use assistants_tests::{json, TestApp};
use serde_json::Value;

use super::response_runs::text_of;

pub(crate) async fn granted(llm: &FakeLlm, mcp: &FakeMcp) -> TestApp {
    let host = mcp.host();
    TestApp::spawn_with_llm(llm, move |s| {
        let grant = assistants_core::plugins::manifest::Grant {
            hosts: vec![host],
            allow_private_addresses: true,
            ..Default::default()
        };
        s.plugins.grants.insert("mcp".into(), grant);
    })
    .await
}

fn kinds(r: &Value) -> Vec<String> {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap().to_string())
        .collect()
}

/// The tool messages the model was sent in its last request.
pub(crate) fn tool_messages(llm: &FakeLlm) -> Vec<String> {
    let requests = llm.requests();
    let last = requests.last().unwrap();
    last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn mcp_tools_are_listed_and_called_and_the_clients_headers_stay_host_side() {
    let mcp = FakeMcp::start().await;
    let llm = FakeLlm::start().await;
    let app = granted(&llm, &mcp).await;
    let secret = "Bearer sk-mcp-0123456789";
    llm.push(Reply::tool("add", r#"{"a":2,"b":3}"#));
    llm.push(Reply::tool("echo_header", r#"{"name":"authorization"}"#));
    llm.push(Reply::text("It is 5."));
    let tool = json!({"type": "mcp", "server_label": "calc", "server_url": mcp.url,
                      "require_approval": "never", "headers": {"Authorization": secret},
                      "allowed_tools": ["add", "echo_header"],
                      "server_description": "Adds numbers."});
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "What is 2 + 3?", "tools": [tool]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        kinds(&r),
        ["mcp_list_tools", "mcp_call", "mcp_call", "message"],
        "{r}"
    );
    let list = &r["output"][0];
    assert!(list["id"].as_str().unwrap().starts_with("mcpl_"), "{list}");
    assert_eq!(list["server_label"], "calc");
    assert_eq!(list["error"], Value::Null);
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["add", "echo_header"],
        "allowed_tools filters: {list}"
    );
    assert_eq!(list["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(list["tools"][0]["annotations"]["readOnlyHint"], true);

    let add = &r["output"][1];
    assert!(add["id"].as_str().unwrap().starts_with("mcp_"), "{add}");
    assert_eq!(add["status"], "completed", "{add}");
    assert_eq!(add["server_label"], "calc");
    assert_eq!(add["name"], "add");
    assert_eq!(add["arguments"], r#"{"a":2,"b":3}"#);
    assert_eq!(add["output"], "5");
    assert_eq!(add["error"], Value::Null);
    assert_eq!(add["approval_request_id"], Value::Null);
    assert_eq!(text_of(&r), "It is 5.");
    assert_eq!(
        mcp.calls(),
        [
            ("add".to_string(), json!({"a": 2, "b": 3})),
            ("echo_header".to_string(), json!({"name": "authorization"})),
        ]
    );

    // The server got the client's header on every request; the sandboxed client never read
    // it: the echo came back masked, so neither the model nor the item holds it.
    let sent = mcp.header_values("authorization");
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|v| v.as_deref() == Some(secret)),
        "{sent:?}"
    );
    let echoed = r["output"][2]["output"].as_str().unwrap();
    let token = secret.strip_prefix("Bearer ").unwrap();
    assert_eq!(
        echoed,
        format!("{}\n{}", "*".repeat(secret.len()), "*".repeat(token.len())),
        "the value and the bare token are masked"
    );
    assert!(!llm
        .requests()
        .iter()
        .any(|q| q.to_string().contains("sk-mcp")));
    // Nor does the response show it.
    assert_eq!(r["tools"][0]["headers"], Value::Null, "{}", r["tools"]);
    let (_, again) = app
        .get(&format!("/responses/{}", r["id"].as_str().unwrap()))
        .await;
    assert!(!again.to_string().contains("sk-mcp"), "{again}");
    assert_eq!(again["output"], r["output"]);

    // The model was offered the allowed tools as functions, with the server's schemas.
    let offered: Vec<String> = llm.requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(offered, ["add", "echo_header"]);
    assert_eq!(
        llm.requests()[0]["tools"][0]["function"]["parameters"]["required"],
        json!(["a", "b"])
    );
    // What the client said the server is for comes with each of its tools.
    let description = llm.requests()[0]["tools"][0]["function"]["description"].clone();
    assert!(
        description
            .as_str()
            .unwrap()
            .ends_with("(MCP server 'calc': Adds numbers.)"),
        "{description}"
    );
}

#[tokio::test]
async fn a_call_that_needs_approval_waits_for_the_next_response() {
    let mcp = FakeMcp::start().await;
    let llm = FakeLlm::start().await;
    let app = granted(&llm, &mcp).await;
    // `require_approval` defaults to "always".
    let tools = json!([{"type": "mcp", "server_label": "files", "server_url": mcp.url}]);
    llm.push(Reply::tool("delete_file", r#"{"path":"/tmp/old.txt"}"#));
    let (s, r1) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Delete /tmp/old.txt", "tools": tools}),
        )
        .await;
    assert_eq!(s, 200, "{r1}");
    assert_eq!(r1["status"], "completed");
    assert_eq!(
        kinds(&r1),
        ["mcp_list_tools", "mcp_approval_request"],
        "{r1}"
    );
    let request = &r1["output"][1];
    let request_id = request["id"].as_str().unwrap().to_string();
    assert!(request_id.starts_with("mcpr_"), "{request}");
    assert_eq!(request["server_label"], "files");
    assert_eq!(request["name"], "delete_file");
    assert_eq!(request["arguments"], r#"{"path":"/tmp/old.txt"}"#);
    assert!(mcp.calls().is_empty(), "nothing runs unapproved");

    // Approved: the call runs first, then the model answers with its result. The listing in
    // the context is reused (OpenAI lists a server once per conversation).
    llm.push(Reply::text("Deleted."));
    let (s, r2) = app
        .post(
            "/responses",
            json!({"model": "m", "previous_response_id": r1["id"],
                   "input": [{"type": "mcp_approval_response",
                              "approval_request_id": request_id, "approve": true}]}),
        )
        .await;
    assert_eq!(s, 400, "an approval needs its server among the tools: {r2}");
    assert_eq!(
        assistants_tests::assert_error(&r2)["param"],
        "input[0].approval_request_id"
    );
    let (s, r2) = app
        .post(
            "/responses",
            json!({"model": "m", "previous_response_id": r1["id"], "tools": tools,
                   "input": [{"type": "mcp_approval_response",
                              "approval_request_id": request_id, "approve": true}]}),
        )
        .await;
    assert_eq!(s, 200, "{r2}");
    assert_eq!(kinds(&r2), ["mcp_call", "message"], "{r2}");
    let call = &r2["output"][0];
    assert_eq!(call["approval_request_id"], request_id.as_str(), "{call}");
    assert_eq!(call["output"], "deleted /tmp/old.txt");
    assert_eq!(call["name"], "delete_file");
    assert_eq!(
        mcp.calls(),
        [("delete_file".to_string(), json!({"path": "/tmp/old.txt"}))]
    );
    assert_eq!(mcp.lists(), 1, "the listing was reused");
    assert_eq!(tool_messages(&llm), ["deleted /tmp/old.txt"]);
    let (_, items) = app
        .get(&format!(
            "/responses/{}/input_items",
            r2["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(items["data"][0]["type"], "mcp_approval_response", "{items}");

    // Declined: nothing runs; the model is told why.
    llm.push(Reply::tool("delete_file", r#"{"path":"/etc/hosts"}"#));
    let (_, r3) = app
        .post(
            "/responses",
            json!({"model": "m", "previous_response_id": r2["id"], "tools": tools,
                   "input": "Now delete /etc/hosts"}),
        )
        .await;
    assert_eq!(kinds(&r3), ["mcp_approval_request"], "{r3}");
    let second = r3["output"][0]["id"].as_str().unwrap().to_string();
    llm.push(Reply::text("Understood, I left it."));
    let (_, r4) = app
        .post(
            "/responses",
            json!({"model": "m", "previous_response_id": r3["id"], "tools": tools,
                   "input": [{"type": "mcp_approval_response", "approval_request_id": second,
                              "approve": false, "reason": "not that one"}]}),
        )
        .await;
    assert_eq!(kinds(&r4), ["message"], "{r4}");
    assert_eq!(mcp.calls().len(), 1, "a declined call never runs");
    let told = tool_messages(&llm);
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(
        told[1],
        "The user declined to run this tool call: not that one."
    );
}

#[tokio::test]
async fn mcp_failures_are_items_and_bad_tools_are_refused() {
    let mcp = FakeMcp::start().await;
    let llm = FakeLlm::start().await;
    let app = granted(&llm, &mcp).await;
    let tool = json!({"type": "mcp", "server_label": "t", "server_url": mcp.url,
                      "require_approval": {"never": {"read_only": false}}});
    llm.push(Reply::tool("fail", "{}"));
    llm.push(Reply::text("It failed."));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Try it.", "tools": [tool]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let call = &r["output"][1];
    assert_eq!(call["type"], "mcp_call", "{r}");
    assert_eq!(call["status"], "failed");
    assert_eq!(call["output"], Value::Null);
    assert_eq!(call["error"]["type"], "mcp_tool_execution_error", "{call}");
    assert_eq!(
        call["error"]["content"][0]["text"],
        "the tool failed on purpose"
    );
    assert_eq!(tool_messages(&llm), ["error: the tool failed on purpose"]);

    // A granted server that does not answer: the listing fails, the response goes on without
    // its tools.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let llm2 = FakeLlm::start().await;
    let app2 = TestApp::spawn_with_llm(&llm2, move |s| {
        let grant = assistants_core::plugins::manifest::Grant {
            hosts: vec![format!("127.0.0.1:{port}")],
            allow_private_addresses: true,
            ..Default::default()
        };
        s.plugins.grants.insert("mcp".into(), grant);
    })
    .await;
    llm2.push(Reply::text("No tools today."));
    let (s, r) = app2
        .post(
            "/responses",
            json!({"model": "m", "input": "Hi", "tools": [{"type": "mcp", "server_label": "gone",
                   "server_url": format!("http://127.0.0.1:{port}/mcp")}]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(kinds(&r), ["mcp_list_tools", "message"], "{r}");
    assert!(r["output"][0]["error"].as_str().is_some(), "{r}");
    assert_eq!(r["output"][0]["tools"], json!([]));
    assert!(llm2.requests()[0]
        .get("tools")
        .is_none_or(|t| t.as_array().is_none_or(Vec::is_empty)));

    // Refused before anything runs, naming the parameter.
    let refusals = [
        (
            json!({"type": "mcp", "server_label": "x", "server_url": "http://127.0.0.1:1/mcp"}),
            "tools[0].server_url",
        ),
        (
            json!({"type": "mcp", "server_url": mcp.url}),
            "tools[0].server_label",
        ),
        (
            json!({"type": "mcp", "server_label": "x"}),
            "tools[0].server_url",
        ),
        (
            json!({"type": "mcp", "server_label": "x", "connector_id": "connector_gmail"}),
            "tools[0].connector_id",
        ),
        (
            json!({"type": "mcp", "server_label": "x", "server_url": mcp.url,
                "headers": {"Mcp-Session-Id": "mine"}}),
            "tools[0].headers.Mcp-Session-Id",
        ),
        (
            json!({"type": "mcp", "server_label": "x", "server_url": mcp.url,
                "require_approval": "sometimes"}),
            "tools[0].require_approval",
        ),
        (
            json!({"type": "mcp", "server_label": "x", "server_url": mcp.url,
                "allowed_tools": {"names": ["add"]}}),
            "tools[0].allowed_tools.names",
        ),
    ];
    for (tool, param) in refusals {
        let (s, e) = app
            .post(
                "/responses",
                json!({"model": "m", "input": "x", "tools": [tool]}),
            )
            .await;
        assert_eq!(s, 400, "{tool}: {e}");
        assert_eq!(assistants_tests::assert_error(&e)["param"], param, "{e}");
    }
    let (s, e) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "x", "tools": [
                {"type": "mcp", "server_label": "x", "server_url": mcp.url},
                {"type": "mcp", "server_label": "x", "server_url": mcp.url}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        assistants_tests::assert_error(&e)["param"],
        "tools[1].server_label"
    );
    // An answer to no request of the context.
    let (s, e) = app
        .post(
            "/responses",
            json!({"model": "m", "input": [{"type": "mcp_approval_response",
                   "approval_request_id": "mcpr_nothing", "approve": true}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        assistants_tests::assert_error(&e)["param"],
        "input[0].approval_request_id"
    );
    // Not granted at all: the tool type is refused.
    let (s, e) = app2_without_grant(&llm)
        .await
        .post(
            "/responses",
            json!({"model": "m", "input": "x", "tools": [
                {"type": "mcp", "server_label": "x", "server_url": mcp.url}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assistants_tests::assert_error(&e)["param"], "tools[0].type");
    // An assistant's `mcp` tool names its server too (the MCP client is never a plugin tool).
    let (s, e) = app
        .post(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "mcp"}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        assistants_tests::assert_error(&e)["param"],
        "tools[0].server_label"
    );
}

async fn app2_without_grant(llm: &FakeLlm) -> TestApp {
    TestApp::spawn_with_llm(llm, |_| {}).await
}

#[tokio::test]
async fn a_streamed_mcp_response_sends_the_mcp_events_in_order() {
    let mcp = FakeMcp::start().await;
    let llm = FakeLlm::start().await;
    let app = granted(&llm, &mcp).await;
    llm.push(Reply::tool("add", r#"{"a":1,"b":1}"#));
    llm.push(Reply::text("Two."));
    let (s, evs) = app
        .stream(
            "/responses",
            json!({"model": "m", "input": "1 + 1?", "stream": true, "tools": [
                {"type": "mcp", "server_label": "calc", "server_url": mcp.url,
                 "require_approval": "never"}]}),
        )
        .await;
    assert_eq!(s, 200, "{evs:?}");
    let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
    let mut mcp_events: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.contains("mcp") || n.starts_with("response.output_item"))
        .collect();
    // However many fragments the arguments came in.
    mcp_events.dedup();
    assert_eq!(
        &mcp_events[..9],
        [
            "response.output_item.added",
            "response.mcp_list_tools.in_progress",
            "response.mcp_list_tools.completed",
            "response.output_item.done",
            "response.output_item.added",
            "response.mcp_call.in_progress",
            "response.mcp_call_arguments.delta",
            "response.mcp_call_arguments.done",
            "response.mcp_call.completed",
        ],
        "{names:?}"
    );
    for (i, (_, data)) in evs.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "{names:?}");
    }
    let done: Vec<&Value> = evs
        .iter()
        .filter(|(e, _)| e == "response.output_item.done")
        .map(|(_, d)| &d["item"])
        .collect();
    let (_, last) = evs.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    let output: Vec<&Value> = last["response"]["output"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(done, output, "the stream's items are the response's");
    assert_eq!(output[1]["output"], "2");
}

#[tokio::test]
async fn the_clients_headers_are_kept_sealed_while_the_response_runs_and_then_dropped() {
    use assistants_core::store::testing::admin_scalar;
    let mcp = FakeMcp::start().await;
    let llm = FakeLlm::start().await;
    let app = granted(&llm, &mcp).await;
    let url = app.settings().storage.database_url.clone();
    let count = |sql: String| {
        let url = url.clone();
        async move { admin_scalar(&url, &sql).await.unwrap() }
    };
    llm.push(Reply::tool("add", r#"{"a":1,"b":1}"#).delay(std::time::Duration::from_millis(1500)));
    llm.push(Reply::text("Two."));
    let tool = json!({"type": "mcp", "server_label": "calc", "server_url": mcp.url,
                      "require_approval": "never", "authorization": "sk-mcp-sealed-0123456789"});
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "1 + 1?", "tools": [tool], "background": true}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let tail = r["id"]
        .as_str()
        .unwrap()
        .strip_prefix("resp_")
        .unwrap()
        .to_string();
    let in_record = |what: &str| {
        format!("SELECT COUNT(*) FROM runs WHERE id = 'run_{tail}' AND engine LIKE '%{what}%'")
    };
    assert_eq!(count(in_record("sealed_headers")).await, 1);
    assert_eq!(count(in_record("sk-mcp")).await, 0, "never in clear");
    let done = super::response_runs::poll(&app, r["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["output"][1]["output"], "2",
        "the worker opened them: {done}"
    );
    assert_eq!(
        mcp.header_values("authorization")
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some("Bearer sk-mcp-sealed-0123456789")
    );
    assert_eq!(
        count(in_record("sealed_headers")).await,
        0,
        "dropped at the end"
    );
}
