//! Responses end to end against a scripted upstream: an answer, function calls answered in
//! the next request, the chain and conversation as context (one response at a time in a
//! conversation), background polling and cancel, `store: false`, budgets, upstream failures, and bad
//! requests. The server's tools are in response_tools.rs, streams in response_streams.rs.

use std::time::Duration;

use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::{assert_error, json, TestApp};
use serde_json::Value;

pub(crate) async fn setup(llm: &FakeLlm) -> TestApp {
    TestApp::spawn_with_llm(llm, |_| {}).await
}

pub(crate) fn weather() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}})
}

pub(crate) fn text_of(r: &Value) -> String {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// The roles (and tool call ids) of the messages the upstream was last sent.
fn roles(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) async fn poll(app: &TestApp, id: &str) -> Value {
    for _ in 0..400 {
        let (s, r) = app.get(&format!("/responses/{id}")).await;
        assert_eq!(s, 200, "{r}");
        if !matches!(r["status"].as_str(), Some("queued" | "in_progress")) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("response {id} did not finish");
}

#[tokio::test]
async fn a_response_answers_and_is_kept_until_deleted() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("Hello there, friend.").usage(12, 5));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "gpt-test", "input": "Say hello.", "instructions": "Be warm.",
                   "metadata": {"k": "v"}, "temperature": 0.5, "reasoning": {"effort": "low"}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let id = r["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"), "{id}");
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "gpt-test");
    assert_eq!(r["instructions"], "Be warm.");
    assert_eq!(r["metadata"]["k"], "v");
    assert_eq!(r["temperature"], 0.5);
    assert_eq!(r["error"], Value::Null);
    assert!(r["completed_at"].as_i64().unwrap() >= r["created_at"].as_i64().unwrap());
    assert_eq!(text_of(&r), "Hello there, friend.");
    let item = &r["output"][0];
    assert!(item["id"].as_str().unwrap().starts_with("msg_"), "{item}");
    assert_eq!(item["role"], "assistant");
    assert_eq!(item["status"], "completed");
    assert_eq!(item["content"][0]["type"], "output_text");
    assert_eq!(r["usage"]["input_tokens"], 12);
    assert_eq!(r["usage"]["output_tokens"], 5);
    assert_eq!(r["usage"]["total_tokens"], 17);
    // The model got the instructions and the input, with the request's parameters.
    let sent = llm.last_request();
    assert_eq!(roles(&sent), ["system", "user"]);
    assert_eq!(sent["messages"][1]["content"], "Say hello.");
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["reasoning_effort"], "low");
    assert_eq!(r["reasoning"]["effort"], "low");
    assert_eq!(sent["model"], "gpt-test");

    // Retrieved as it was returned; its input listed.
    let (s, again) = app.get(&format!("/responses/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(again, r);
    let (s, items) = app.get(&format!("/responses/{id}/input_items")).await;
    assert_eq!(s, 200, "{items}");
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"].as_array().unwrap().len(), 1);
    assert_eq!(items["data"][0]["role"], "user");
    assert_eq!(items["data"][0]["content"][0]["text"], "Say hello.");
    assert_eq!(items["first_id"], items["data"][0]["id"]);

    // Deleted: gone, and its id no longer continues anything.
    let (s, d) = app.delete(&format!("/responses/{id}")).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d, json!({"id": id, "object": "response", "deleted": true}));
    let (s, e) = app.get(&format!("/responses/{id}")).await;
    assert_eq!(s, 404);
    assert_error(&e);
    let (s, e) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "more", "previous_response_id": id}),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    assert_eq!(assert_error(&e)["param"], "previous_response_id");
}

#[tokio::test]
async fn function_calls_end_a_response_and_their_outputs_continue_the_chain() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::tool("get_weather", r#"{"city":"Paris"}"#));
    let (s, first) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Weather in Paris?", "tools": [weather()]}),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["status"], "completed");
    let call = &first["output"][0];
    assert_eq!(call["type"], "function_call", "{first}");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(call["status"], "completed");
    let call_id = call["call_id"].as_str().unwrap();
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    // The model was offered the function in chat-completions shape.
    let offered = &llm.last_request()["tools"][0];
    assert_eq!(offered["function"]["name"], "get_weather");

    llm.push(Reply::text("Sunny in Paris."));
    let (s, second) = app
        .post(
            "/responses",
            json!({"model": "m", "previous_response_id": first["id"], "tools": [weather()],
                   "input": [{"type": "function_call_output", "call_id": call_id,
                              "output": "sunny, 24 C"}]}),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(text_of(&second), "Sunny in Paris.");
    assert_eq!(second["previous_response_id"], first["id"]);
    // The chain is the context: the question, the call, its output.
    let sent = llm.last_request();
    assert_eq!(roles(&sent), ["user", "assistant", "tool"], "{sent}");
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["id"].as_str(),
        Some(call_id)
    );
    assert_eq!(sent["messages"][2]["content"], "sunny, 24 C");
    assert_eq!(sent["messages"][2]["tool_call_id"].as_str(), Some(call_id));
}

#[tokio::test]
async fn a_conversation_gathers_each_responses_input_and_output() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let conv = app.create("/conversations", json!({})).await;
    llm.push(Reply::text("Paris."));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "conversation": conv, "input": "Capital of France?"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["conversation"]["id"], conv.as_str());
    llm.push(Reply::text("About 2 million."));
    let (s, r2) = app
        .post(
            "/responses",
            json!({"model": "m", "conversation": {"id": conv}, "input": "Population?"}),
        )
        .await;
    assert_eq!(s, 200, "{r2}");
    // The second response saw the first exchange.
    let sent = llm.last_request();
    let contents: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["Capital of France?", "Paris.", "Population?"],
        "{sent}"
    );
    let (_, items) = app
        .get(&format!("/conversations/{conv}/items?order=asc"))
        .await;
    let shown: Vec<(String, String)> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["role"].as_str().unwrap().to_string(),
                i["content"][0]["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("user".into(), "Capital of France?".into()),
            ("assistant".into(), "Paris.".into()),
            ("user".into(), "Population?".into()),
            ("assistant".into(), "About 2 million.".into()),
        ]
    );
    // The answer item in the conversation is the response's output item.
    assert_eq!(items["data"][3]["id"], r2["output"][0]["id"]);
}

#[tokio::test]
async fn a_background_response_is_polled_and_can_be_cancelled() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("Done in the background.").delay(Duration::from_millis(300)));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Work.", "background": true}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "queued");
    assert_eq!(r["background"], true);
    let done = poll(&app, r["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(text_of(&done), "Done in the background.");
    // Cancelling a finished response changes nothing.
    let (s, again) = app
        .post(
            &format!("/responses/{}/cancel", r["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["status"], "completed");

    llm.push(Reply::text("never").delay(Duration::from_secs(30)));
    let (_, slow) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Slow.", "background": true}),
        )
        .await;
    let id = slow["id"].as_str().unwrap();
    let (s, c) = app
        .post(&format!("/responses/{id}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200, "{c}");
    let c = if c["status"] == "cancelled" {
        c
    } else {
        poll(&app, id).await
    };
    assert_eq!(c["status"], "cancelled", "{c}");

    // Only background responses can be cancelled.
    llm.push(Reply::text("quick"));
    let (_, fg) = app
        .post("/responses", json!({"model": "m", "input": "Quick."}))
        .await;
    let (s, e) = app
        .post(
            &format!("/responses/{}/cancel", fg["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_error(&e);
}

#[tokio::test]
async fn a_response_not_stored_is_returned_but_not_kept() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("Ephemeral."));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Hi.", "store": false}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["store"], false);
    assert_eq!(text_of(&r), "Ephemeral.");
    let id = r["id"].as_str().unwrap();
    let (s, _) = app.get(&format!("/responses/{id}")).await;
    assert_eq!(s, 404);
    let (s, _) = app.get(&format!("/responses/{id}/input_items")).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn budgets_and_upstream_failures_end_a_response_as_openai_does() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("A long answer cut").finish("length"));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Tell me everything.", "max_output_tokens": 16}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "incomplete", "{r}");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(r["max_output_tokens"], 16);
    assert_eq!(llm.last_request()["max_tokens"], 16);

    llm.push(Reply::error(400));
    let (s, r) = app
        .post("/responses", json!({"model": "m", "input": "Fail."}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["error"]["code"].is_string(), "{r}");
    assert!(r["error"]["message"].is_string(), "{r}");
}

#[tokio::test]
async fn bad_create_requests_are_refused_naming_the_parameter() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    for (body, param) in [
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": 1}),
            "max_output_tokens",
        ),
        (
            json!({"model": "m", "input": "x", "temperature": 3}),
            "temperature",
        ),
        (
            json!({"model": "m", "input": "x", "include": ["everything"]}),
            "include",
        ),
        (
            json!({"model": "m", "input": "x", "truncation": "sometimes"}),
            "truncation",
        ),
        (
            json!({"model": "m", "input": "x", "reasoning": {"effort": "extreme"}}),
            "reasoning.effort",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}),
            "text.format.name",
        ),
        (
            json!({"model": "m", "input": "x", "background": true, "store": false}),
            "background",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "nope"}}),
            "tool_choice.name",
        ),
        (
            json!({"model": "m", "input": "x", "metadata": {"strategy": "no-such-strategy"}}),
            "metadata.strategy",
        ),
    ] {
        let (s, e) = app.post("/responses", body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert_eq!(assert_error(&e)["param"], param, "{body}");
    }
    // Nothing was sent upstream.
    assert!(llm.requests().is_empty());
    let (s, e) = app.get("/responses/resp_missing").await;
    assert_eq!(s, 404);
    assert_error(&e);
    let (s, _) = app.get("/responses/thread_abc").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn structured_output_reaches_the_model_as_a_json_schema() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text(r#"{"city":"Paris"}"#));
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"], "additionalProperties": false});
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Where?", "text": {"format": {
                "type": "json_schema", "name": "place", "schema": schema, "strict": true}}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["text"]["format"]["name"], "place");
    let sent = llm.last_request();
    assert_eq!(sent["response_format"]["type"], "json_schema", "{sent}");
    assert_eq!(sent["response_format"]["json_schema"]["name"], "place");
    assert_eq!(sent["response_format"]["json_schema"]["strict"], true);
    assert_eq!(text_of(&r), r#"{"city":"Paris"}"#);
}

#[tokio::test]
async fn a_conversation_runs_one_response_at_a_time() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let conv = app.create("/conversations", json!({})).await;
    llm.push(Reply::text("slow").delay(Duration::from_millis(1500)));
    let (s, first) = app
        .post(
            "/responses",
            json!({"model": "m", "conversation": conv, "input": "One.", "background": true}),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    let (s, e) = app
        .post(
            "/responses",
            json!({"model": "m", "conversation": conv, "input": "Two."}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "conversation");
    // The refused request left nothing behind in the conversation.
    let (_, items) = app.get(&format!("/conversations/{conv}/items")).await;
    assert_eq!(items["data"].as_array().unwrap().len(), 1, "{items}");
    // The engine's lock is no thread a client can see.
    let lock = format!("thread_{}", conv.strip_prefix("conv_").unwrap());
    let (s, _) = app.get(&format!("/threads/{lock}")).await;
    assert_eq!(s, 404);
    // Nor are its run and messages reachable through the thread routes.
    let run = format!(
        "run_{}",
        first["id"].as_str().unwrap().strip_prefix("resp_").unwrap()
    );
    for path in [
        format!("/threads/{lock}/runs"),
        format!("/threads/{lock}/runs/{run}"),
        format!("/threads/{lock}/runs/{run}/steps"),
        format!("/threads/{lock}/messages"),
    ] {
        let (s, e) = app.get(&path).await;
        assert_eq!(s, 404, "{path}: {e}");
    }
    let (s, _) = app
        .post(&format!("/threads/{lock}/runs/{run}/cancel"), json!({}))
        .await;
    assert_eq!(s, 404);
    // A response still running cannot be continued yet: its answer is not there.
    let (s, e) = app
        .post(
            "/responses",
            json!({"model": "m", "previous_response_id": first["id"], "input": "And?"}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "previous_response_id");
    assert_eq!(
        poll(&app, first["id"].as_str().unwrap()).await["status"],
        "completed"
    );
    llm.push(Reply::text("Now."));
    let (s, second) = app
        .post(
            "/responses",
            json!({"model": "m", "conversation": conv, "input": "Two."}),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["status"], "completed");
}
