//! `/responses/input_tokens` and `/responses/compact`: a prompt counted, a history compacted.

use assistants_tests::{assert_error, json, TestApp};
use serde_json::Value;

async fn count(app: &TestApp, body: Value) -> i64 {
    let (s, r) = app.post("/responses/input_tokens", body.clone()).await;
    assert_eq!(s, 200, "{body}: {r}");
    assert_eq!(r["object"], "response.input_tokens");
    r["input_tokens"].as_i64().unwrap()
}

#[tokio::test]
async fn input_tokens_counts_what_the_model_would_be_sent() {
    let app = TestApp::spawn().await;
    // One message: its text ("hello" is one o200k token) and 4 tokens of framing.
    assert_eq!(
        count(&app, json!({"model": "m", "input": "hello"})).await,
        5
    );
    // A string is one user message, whichever way it is written.
    let as_item = json!({"model": "m", "input": [{"role": "user",
        "content": [{"type": "input_text", "text": "hello"}]}]});
    assert_eq!(count(&app, as_item).await, 5);
    // Instructions are a system message; tools are offered with their schemas.
    let with_instructions = count(
        &app,
        json!({"model": "m", "input": "hello", "instructions": "Answer in French."}),
    )
    .await;
    assert!(with_instructions > 5 + 4, "{with_instructions}");
    let tool = json!({"type": "function", "name": "get_weather", "description": "Weather for a city.",
                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let with_tool = count(
        &app,
        json!({"model": "m", "input": "hello", "tools": [tool]}),
    )
    .await;
    assert!(with_tool > 5 + 10, "{with_tool}");

    // A conversation's items count as if they were given in the input.
    let history = vec![
        json!({"role": "user", "content": "What is the weather in Paris?"}),
        json!({"type": "function_call", "call_id": "call_1", "name": "get_weather",
               "arguments": "{\"city\":\"Paris\"}"}),
        json!({"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"}),
        json!({"role": "assistant", "content": "It is sunny and 21 C."}),
    ];
    let conv = app
        .create("/conversations", json!({"items": history}))
        .await;
    let in_conversation = count(
        &app,
        json!({"model": "m", "conversation": conv, "input": "And tomorrow?"}),
    )
    .await;
    let mut all = history.clone();
    all.push(json!({"role": "user", "content": "And tomorrow?"}));
    assert_eq!(
        in_conversation,
        count(&app, json!({"model": "m", "input": all})).await
    );
    assert_eq!(
        in_conversation,
        count(
            &app,
            json!({"model": "m", "conversation": {"id": conv}, "input": "And tomorrow?"})
        )
        .await
    );
}

#[tokio::test]
async fn input_tokens_refuses_bad_requests_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let conv = app.create("/conversations", json!({})).await;
    for (body, status, param) in [
        (json!({"input": 5}), 400, "input"),
        (
            json!({"input": [{"role": "robot", "content": "x"}]}),
            400,
            "input[0].role",
        ),
        (json!({"instructions": ["x"]}), 400, "instructions"),
        (
            json!({"input": "x", "tools": [{"type": "function", "name": "bad name"}]}),
            400,
            "tools[0].name",
        ),
        (
            json!({"input": "x", "tools": [{"type": "file_search"}]}),
            400,
            "tools[0].vector_store_ids",
        ),
        (
            json!({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs_missing"]}]}),
            400,
            "tools[0].vector_store_ids",
        ),
        (
            json!({"input": "x", "tools": [{"type": "code_interpreter", "container": "cntr_1"}]}),
            400,
            "tools[0].container",
        ),
        (
            json!({"input": "x", "tools": [{"type": "teleport"}]}),
            400,
            "tools[0].type",
        ),
        (
            json!({"input": "x", "tools": [
                {"type": "function", "name": "f"}, {"type": "function", "name": "f"}]}),
            400,
            "tools",
        ),
        (
            json!({"input": "x", "conversation": conv, "previous_response_id": "resp_1"}),
            400,
            "previous_response_id",
        ),
        (
            json!({"input": "x", "conversation": "conv_missing"}),
            404,
            "",
        ),
        (
            json!({"input": "x", "conversation": "thread_1"}),
            404,
            "conversation",
        ),
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            404,
            "previous_response_id",
        ),
    ] {
        let (s, e) = app.post("/responses/input_tokens", body.clone()).await;
        assert_eq!(s, status, "{body}: {e}");
        let e = assert_error(&e);
        if !param.is_empty() {
            assert_eq!(e["param"], param, "{body}");
        }
    }
    // A vector store and file that exist are fine.
    let vs = app.create("/vector_stores", json!({})).await;
    let file = app.upload_ok("data.csv", "a,b\n1,2\n").await;
    let n = count(
        &app,
        json!({"input": "x", "tools": [
            {"type": "file_search", "vector_store_ids": [vs], "max_num_results": 5},
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [file]}}]}),
    )
    .await;
    assert!(n > 5, "{n}");
}

#[tokio::test]
async fn compaction_keeps_the_users_words_and_summarises_the_rest() {
    use assistants_tests::fake_llm::{FakeLlm, Reply};
    let llm = FakeLlm::start().await;
    let app = TestApp::spawn_with_llm(&llm, |_| {}).await;
    llm.push(Reply::text("Paris."));
    let (_, first) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Capital of France?"}),
        )
        .await;
    llm.push(Reply::text("The user asked for capitals: France is Paris.").usage(40, 9));
    let (s, c) = app
        .post(
            "/responses/compact",
            json!({"model": "m", "previous_response_id": first["id"], "input": "And Italy?"}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["object"], "response.compaction");
    assert!(c["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(c["usage"]["input_tokens"], 40);
    assert_eq!(c["usage"]["output_tokens"], 9);
    // The model summarised the whole history, asked last to compact it.
    let sent = llm.last_request();
    let messages = sent["messages"].as_array().unwrap();
    let contents: Vec<&str> = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents[..3],
        ["Capital of France?", "Paris.", "And Italy?"],
        "{sent}"
    );
    assert!(
        contents[3].contains("CONTEXT CHECKPOINT COMPACTION"),
        "{sent}"
    );
    // The user's messages are kept; the rest is one compaction item.
    let output = c["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["message", "message", "compaction"], "{c}");
    assert_eq!(output[0]["content"][0]["text"], "Capital of France?");
    assert_eq!(output[1]["content"][0]["text"], "And Italy?");
    assert!(output[2]["id"].as_str().unwrap().starts_with("cmp_"));
    // The compacted history continues: the summary reaches the model as a system message.
    let mut input = output.clone();
    input.push(json!({"role": "user", "content": "Population?"}));
    llm.push(Reply::text("Rome has 2.8 million."));
    let (s, next) = app
        .post("/responses", json!({"model": "m", "input": input}))
        .await;
    assert_eq!(s, 200, "{next}");
    let sent = llm.last_request();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "user", "system", "user"], "{sent}");
    assert_eq!(
        sent["messages"][2]["content"],
        "Summary of the conversation before this point:\nThe user asked for capitals: France is Paris."
    );
    // Content this server did not make is refused.
    let (s, e) = app
        .post(
            "/responses",
            json!({"model": "m", "input": [{"type": "compaction", "encrypted_content": "gAAAA-opaque"}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "input[0].encrypted_content");
    let (s, e) = app.post("/responses/compact", json!({"input": "x"})).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "model");

    // The model rate limited (on every retry): worth retrying later, as its error says.
    llm.push(Reply::error(429));
    llm.push(Reply::error(429));
    let (s, e) = app
        .post("/responses/compact", json!({"model": "m", "input": "x"}))
        .await;
    assert_eq!(s, 503, "{e}");
    assert_eq!(assert_error(&e)["code"], "rate_limit_exceeded");
    // Any other failure is the server's.
    llm.push(Reply::error(400));
    let (s, e) = app
        .post("/responses/compact", json!({"model": "m", "input": "x"}))
        .await;
    assert_eq!(s, 500, "{e}");
    assert_eq!(assert_error(&e)["code"], "server_error");
}
