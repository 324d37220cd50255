//! A response's server-side tools, shown as OpenAI shows its own: file_search (queries,
//! results with `include[]`, file citations), web search through the web retrieval plugin
//! (search and page actions, URL citations), plugin tools as `mcp_call` items, and
//! `max_tool_calls`. (code_interpreter: tests/api/code_interpreter.rs.)

use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::{json, TestApp};
use serde_json::Value;

use super::response_runs::{setup, text_of, weather};

#[tokio::test]
async fn file_search_shows_its_queries_results_and_citations() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let (vs, file) = super::runs::store_with_notes(&app).await;
    llm.push(Reply::tool(
        "file_search",
        r#"{"query":"zanzibarquokka food"}"#,
    ));
    let answer = "It eats mango peel【0:0†notes.txt】.";
    llm.push(Reply::text(answer));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "What does the zanzibarquokka eat?",
                   "tools": [{"type": "file_search", "vector_store_ids": [vs]}],
                   "include": ["file_search_call.results"]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let call = &r["output"][0];
    assert_eq!(call["type"], "file_search_call", "{r}");
    assert!(call["id"].as_str().unwrap().starts_with("fs_"));
    assert_eq!(call["status"], "completed");
    assert_eq!(call["queries"], json!(["zanzibarquokka food"]));
    let hit = &call["results"][0];
    assert_eq!(hit["file_id"], file.as_str());
    assert_eq!(hit["filename"], "notes.txt");
    assert!(
        hit["text"].as_str().unwrap().contains("mango peel"),
        "{hit}"
    );
    let message = &r["output"][1];
    assert_eq!(message["type"], "message");
    let ann = &message["content"][0]["annotations"][0];
    assert_eq!(ann["type"], "file_citation", "{message}");
    assert_eq!(ann["file_id"], file.as_str());
    assert_eq!(ann["filename"], "notes.txt");

    // Without include[], the call shows no results.
    llm.push(Reply::tool("file_search", r#"{"query":"lighthouse"}"#));
    llm.push(Reply::text("Near the lighthouse."));
    let (_, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Where?",
                   "tools": [{"type": "file_search", "vector_store_ids": [vs]}]}),
        )
        .await;
    assert_eq!(r["output"][0]["results"], Value::Null, "{r}");
    assert_eq!(r["output"][0]["queries"], json!(["lighthouse"]));
}

#[tokio::test]
async fn plugin_tools_run_on_the_server_within_max_tool_calls() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::tool("calculate", r#"{"expression":"(2+3)*4"}"#));
    llm.push(Reply::tool("calculate", r#"{"expression":"1+1"}"#));
    llm.push(Reply::text("It is 20."));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "(2+3)*4?", "tools": [{"type": "calculator"}, weather()],
                   "max_tool_calls": 1}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["max_tool_calls"], 1);
    let kinds: Vec<&str> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["mcp_call", "mcp_call", "message"], "{r}");
    // The first call ran in the sandbox; it is shown as a call the server made, not as a
    // function call for the client to answer.
    let first = &r["output"][0];
    assert_eq!(first["server_label"], "calculator");
    assert_eq!(first["name"], "calculate");
    assert_eq!(first["output"], "20");
    assert_eq!(first["status"], "completed");
    // The budget spent, the model was offered only the client's function (the budget counts
    // the server's tools), and a server call it made anyway was not run.
    let requests = llm.requests();
    let offered = |r: &Value| -> Vec<String> {
        r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(offered(&requests[0]).len(), 3, "{}", requests[0]);
    assert_eq!(offered(&requests[1]), ["get_weather"], "{}", requests[1]);
    assert_eq!(requests[1]["tool_choice"], "auto");
    let second = &r["output"][1];
    assert_eq!(second["status"], "failed", "{second}");
    assert!(
        second["error"].as_str().unwrap().contains("max_tool_calls"),
        "{second}"
    );
    assert_eq!(text_of(&r), "It is 20.");
}

#[tokio::test]
async fn web_search_reads_granted_pages_and_cites_them() {
    let site = super::runs::web_site().await;
    let llm = FakeLlm::start().await;
    let host = site.trim_start_matches("http://").to_string();
    let search_url = format!("{site}/search");
    let app = TestApp::spawn_with_llm(&llm, move |s| {
        let mut grant = assistants_core::plugins::manifest::Grant {
            hosts: vec![host],
            allow_private_addresses: true,
            ..Default::default()
        };
        grant.config.insert("search_url".into(), search_url);
        s.plugins.grants.insert("web_retrieval".into(), grant);
    })
    .await;
    llm.push(Reply::tool("web_search", r#"{"query":"quokka diet"}"#));
    llm.push(Reply::tool(
        "web_fetch",
        &json!({"url": format!("{site}/page")}).to_string(),
    ));
    llm.push(Reply::text("They eat leaves【1:0†Quokka Facts】."));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "What do quokkas eat?", "tools": [{"type": "web_search"}]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let output = r["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["web_search_call", "web_search_call", "message"],
        "{r}"
    );
    assert!(output[0]["id"].as_str().unwrap().starts_with("ws_"));
    assert_eq!(output[0]["status"], "completed");
    assert_eq!(
        output[0]["action"],
        json!({"type": "search", "query": "quokka diet"})
    );
    assert_eq!(
        output[1]["action"],
        json!({"type": "open_page", "url": format!("{site}/page")})
    );
    let ann = &output[2]["content"][0]["annotations"][0];
    assert_eq!(ann["type"], "url_citation", "{r}");
    assert_eq!(ann["url"], format!("{site}/page"));
    assert_eq!(ann["title"], "Quokka Facts");
    let text = output[2]["content"][0]["text"].as_str().unwrap();
    let cited: String = text
        .chars()
        .skip(ann["start_index"].as_u64().unwrap() as usize)
        .take((ann["end_index"].as_u64().unwrap() - ann["start_index"].as_u64().unwrap()) as usize)
        .collect();
    assert_eq!(cited, "【1:0†Quokka Facts】");
    // The page's text reached the model.
    assert!(
        llm.last_message_text().contains("Rottnest"),
        "{}",
        llm.last_message_text()
    );

    // Not granted: the tool is refused before anything runs.
    let closed = setup(&llm).await;
    let (s, e) = closed
        .post(
            "/responses",
            json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assistants_tests::assert_error(&e)["param"], "tools[0].type");
}
