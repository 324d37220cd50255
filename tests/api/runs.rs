//! Runs end to end against a scripted upstream: status machine, event order, tool calls
//! (client functions and plugin tools), every run parameter reaching the model, limits,
//! failures, cancel, expiry, the thread lock, strategies, and resuming after a restart.

use std::time::Duration;

use assistants_core::store::keys::Scope;
use assistants_core::store::Store;
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::fixtures::test_plugin;
use assistants_tests::{assert_error, json, TestApp};
use serde_json::Value;

async fn setup(llm: &FakeLlm) -> TestApp {
    TestApp::spawn_with_llm(llm, |_| {}).await
}

/// An assistant (with `extra` fields) and a thread holding one user message.
async fn assistant_and_thread(app: &TestApp, extra: Value) -> (String, String) {
    let mut body = json!({"model": "gpt-test", "instructions": "Be brief."});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let asst = app.create("/assistants", body).await;
    let thread = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "What is 2+3?"}]}),
        )
        .await;
    (asst, thread)
}

fn events(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(e, _)| e.as_str()).collect()
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

#[tokio::test]
async fn a_simple_run_completes_with_the_answer_usage_and_steps() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("It is 5.").usage(42, 7));
    let app = setup(&llm).await;
    let (asst, thread) = assistant_and_thread(&app, json!({"temperature": 0.5})).await;
    let (s, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    assert_eq!(s, 200, "{run}");
    assert_eq!(run["object"], "thread.run");
    assert_eq!(run["status"], "queued");
    assert_eq!(
        run["expires_at"].as_i64().unwrap(),
        run["created_at"].as_i64().unwrap() + 600
    );
    assert!(run["usage"].is_null());
    let run_id = run["id"].as_str().unwrap();
    assert!(run_id.starts_with("run_"));
    let done = app.wait_run(&thread, run_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        done["expires_at"].is_null()
            && done["completed_at"].is_i64()
            && done["started_at"].is_i64()
    );
    assert_eq!(
        done["usage"],
        json!({"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49})
    );

    let (_, msgs) = app
        .get(&format!("/threads/{thread}/messages?order=desc"))
        .await;
    let answer = &msgs["data"][0];
    assert_eq!(answer["role"], "assistant");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["run_id"], run_id);
    assert_eq!(answer["assistant_id"], asst.as_str());
    assert_eq!(answer["content"][0]["text"]["value"], "It is 5.");
    let (_, by_run) = app
        .get(&format!("/threads/{thread}/messages?run_id={run_id}"))
        .await;
    assert_eq!(by_run["data"].as_array().unwrap().len(), 1);

    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps"))
        .await;
    let steps = steps["data"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["type"], "message_creation");
    assert_eq!(steps[0]["status"], "completed");
    assert_eq!(
        steps[0]["step_details"]["message_creation"]["message_id"],
        answer["id"]
    );
    assert_eq!(steps[0]["usage"]["total_tokens"], 49);
    let (s, one) = app
        .get(&format!(
            "/threads/{thread}/runs/{run_id}/steps/{}",
            steps[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(one["id"], steps[0]["id"]);

    // What the model saw: the instructions as system message, the thread, the parameters.
    let req = llm.last_request();
    assert_eq!(req["model"], "gpt-test");
    assert_eq!(req["temperature"], 0.5);
    assert_eq!(req["stream"], true);
    assert_eq!(
        req["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        req["messages"][1],
        json!({"role": "user", "content": "What is 2+3?"})
    );
    assert!(req.get("tools").is_none());

    let (_, list) = app.get(&format!("/threads/{thread}/runs")).await;
    assert_eq!(list["data"][0]["id"], run_id);
}

#[tokio::test]
async fn a_streamed_run_sends_events_in_the_order_sdks_expect() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("Hello there friend"));
    let app = setup(&llm).await;
    let (asst, thread) = assistant_and_thread(&app, json!({})).await;
    let (s, evs) = app
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    assert_eq!(s, 200);
    let names = events(&evs);
    let deltas = names
        .iter()
        .filter(|n| **n == "thread.message.delta")
        .count();
    assert!(deltas >= 2, "{names:?}");
    let mut expected = vec![
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
    ];
    expected.extend(std::iter::repeat_n("thread.message.delta", deltas));
    expected.extend([
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]);
    assert_eq!(names, expected);
    assert_eq!(evs[0].1["status"], "queued");
    assert_eq!(evs.last().unwrap().1, "[DONE]");
    // The message step names its message before the message exists; deltas concatenate.
    let msg_id = evs[5].1["id"].as_str().unwrap();
    assert_eq!(
        evs[3].1["step_details"]["message_creation"]["message_id"],
        msg_id
    );
    assert_eq!(evs[5].1["content"], json!([]));
    let text: String = evs
        .iter()
        .filter(|(e, _)| e == "thread.message.delta")
        .map(|(_, d)| {
            assert_eq!(d["id"], msg_id);
            d["delta"]["content"][0]["text"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "Hello there friend");
    let completed = &evs[names.len() - 2].1;
    assert_eq!(completed["status"], "completed");
    assert!(completed["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // create-thread-and-run streams start with the thread.
    llm.push(Reply::text("Hi"));
    let (_, evs) = app
        .stream(
            "/threads/runs",
            json!({"assistant_id": asst, "stream": true,
                   "thread": {"messages": [{"role": "user", "content": "hey"}]}}),
        )
        .await;
    let names = events(&evs);
    assert_eq!(names[0], "thread.created");
    assert_eq!(names[1], "thread.run.created");
    assert_eq!(evs[1].1["thread_id"], evs[0].1["id"]);
    assert_eq!(names[names.len() - 2], "thread.run.completed");
}

#[tokio::test]
async fn client_function_calls_wait_for_outputs_and_continue_the_same_run() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool("get_weather", r#"{"city":"Paris"}"#));
    llm.push(Reply::text("Sunny in Paris."));
    let app = setup(&llm).await;
    let (asst, thread) = assistant_and_thread(&app, json!({"tools": [weather_tool()]})).await;
    let (_, evs) = app
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    let names = events(&evs);
    assert_eq!(
        names,
        [
            "thread.run.created",
            "thread.run.queued",
            "thread.run.in_progress",
            "thread.run.step.created",
            "thread.run.step.in_progress",
            "thread.run.step.delta",
            "thread.run.step.delta",
            "thread.run.requires_action",
            "done"
        ]
    );
    let first = &evs[5].1;
    assert!(
        first["delta"].get("id").is_none(),
        "no id inside a step delta"
    );
    let call = &first["delta"]["step_details"]["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let call_id = call["id"].as_str().unwrap().to_string();
    assert!(call_id.starts_with("call_"));
    let more = &evs[6].1["delta"]["step_details"]["tool_calls"][0];
    assert!(
        more["function"].get("name").is_none(),
        "the name is sent once"
    );
    let args = format!(
        "{}{}",
        call["function"]["arguments"].as_str().unwrap(),
        more["function"]["arguments"].as_str().unwrap()
    );
    assert_eq!(args, r#"{"city":"Paris"}"#);

    let run = &evs[7].1;
    assert_eq!(run["status"], "requires_action");
    let run_id = run["id"].as_str().unwrap();
    let required = &run["required_action"];
    assert_eq!(required["type"], "submit_tool_outputs");
    assert_eq!(
        required["submit_tool_outputs"]["tool_calls"][0]["id"],
        call_id.as_str()
    );
    assert_eq!(
        required["submit_tool_outputs"]["tool_calls"][0]["function"]["arguments"],
        args.as_str()
    );

    // The thread is locked meanwhile.
    let (s, e) = app
        .post(
            &format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": "x"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(assert_error(&e)["message"]
        .as_str()
        .unwrap()
        .contains(run_id));
    let (s, _) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    assert_eq!(s, 400);

    // Wrong outputs are refused and change nothing.
    let path = format!("/threads/{thread}/runs/{run_id}/submit_tool_outputs");
    let (s, _) = app
        .post(
            &path,
            json!({"tool_outputs": [{"tool_call_id": "call_nope", "output": "x"}]}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = app.post(&path, json!({"tool_outputs": []})).await;
    assert_eq!(s, 400);

    let (s, evs) = app
        .stream(&path, json!({"stream": true, "tool_outputs": [{"tool_call_id": call_id, "output": "22C sunny"}]}))
        .await;
    assert_eq!(s, 200);
    let names = events(&evs);
    assert_eq!(
        &names[..4],
        [
            "thread.run.queued",
            "thread.run.in_progress",
            "thread.run.step.completed",
            "thread.run.step.created"
        ]
    );
    assert_eq!(names[names.len() - 2..], ["thread.run.completed", "done"]);
    let tool_step = &evs[2].1;
    assert_eq!(tool_step["type"], "tool_calls");
    assert_eq!(
        tool_step["step_details"]["tool_calls"][0]["function"]["output"],
        "22C sunny"
    );
    assert_eq!(tool_step["usage"]["total_tokens"], 45);

    // The model got the call and its output back.
    let req = llm.last_request();
    let msgs = req["messages"].as_array().unwrap();
    let n = msgs.len();
    assert_eq!(msgs[n - 2]["role"], "assistant");
    assert_eq!(msgs[n - 2]["tool_calls"][0]["id"], call_id.as_str());
    assert_eq!(
        msgs[n - 1],
        json!({"role": "tool", "content": "22C sunny", "tool_call_id": call_id})
    );
    assert_eq!(req["tools"][0]["function"]["name"], "get_weather");

    let (s, e) = app
        .post(
            &path,
            json!({"tool_outputs": [{"tool_call_id": call_id, "output": "x"}]}),
        )
        .await;
    assert_eq!(s, 400, "outputs only in requires_action: {e}");
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps?order=asc"))
        .await;
    let kinds: Vec<&str> = steps["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["tool_calls", "message_creation"]);
}

/// An assistant that lists a plugin twice offers the model its tools once, under their own
/// names (not two `calculator__calculate`).
#[tokio::test]
async fn a_plugin_listed_twice_is_offered_once() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("ok"));
    let app = setup(&llm).await;
    let (asst, thread) = assistant_and_thread(
        &app,
        json!({"tools": [{"type": "calculator"}, {"type": "calculator"}]}),
    )
    .await;
    let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let mut offered: Vec<String> = llm.requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    offered.sort();
    assert_eq!(offered, ["calculate", "convert_units"], "{offered:?}");
}

#[tokio::test]
async fn plugin_tools_run_server_side_and_are_recorded_as_function_steps() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool("calculate", r#"{"expression":"(2+3)*4"}"#));
    llm.push(Reply::text("The answer is 20."));
    let app = setup(&llm).await;
    let (asst, thread) =
        assistant_and_thread(&app, json!({"tools": [{"type": "calculator"}]})).await;
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap();
    let done = app.wait_run(&thread, run_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let first = &llm.requests()[0];
    let offered: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        offered.contains(&"calculate") && offered.contains(&"convert_units"),
        "{offered:?}"
    );
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps?order=asc"))
        .await;
    let call = &steps["data"][0]["step_details"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "calculate");
    assert_eq!(call["function"]["output"], "20");
    assert_eq!(steps["data"][0]["status"], "completed");
    assert_eq!(llm.last_message_text(), "20");

    // A call of a tool the run does not offer goes back to the model as an error.
    llm.push(Reply::tool("rm_rf", "{}"));
    llm.push(Reply::text("Sorry."));
    let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(done["status"], "completed");
    let out = llm.last_message_text();
    assert!(out.contains("unknown tool"), "{out}");
}

#[tokio::test]
async fn run_parameters_are_applied_not_just_echoed() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let (asst, thread) =
        assistant_and_thread(&app, json!({"tools": [weather_tool()], "temperature": 1.0})).await;
    app.post(
        &format!("/threads/{thread}/messages"),
        json!({"role": "assistant", "content": "Earlier answer"}),
    )
    .await;
    app.post(
        &format!("/threads/{thread}/messages"),
        json!({"role": "user", "content": "Newest question"}),
    )
    .await;
    let schema = json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}});
    let (s, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({
                "assistant_id": asst,
                "model": "other-model",
                "instructions": "Override.",
                "additional_instructions": "Also this.",
                "additional_messages": [{"role": "user", "content": "Extra message"}],
                "temperature": 0.2, "top_p": 0.9,
                "max_completion_tokens": 300,
                "truncation_strategy": {"type": "last_messages", "last_messages": 2},
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": false,
                "response_format": schema,
                "metadata": {"k": "v"},
            }),
        )
        .await;
    assert_eq!(s, 200, "{run}");
    assert_eq!(run["model"], "other-model");
    assert_eq!(run["instructions"], "Override.\n\nAlso this.");
    assert_eq!(
        run["truncation_strategy"],
        json!({"type": "last_messages", "last_messages": 2})
    );
    let done = app.wait_run(&thread, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let req = llm.last_request();
    assert_eq!(req["model"], "other-model");
    assert_eq!(req["temperature"], 0.2);
    assert!((req["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(req["max_tokens"], 300);
    assert_eq!(req["parallel_tool_calls"], false);
    assert_eq!(
        req["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(req["response_format"], schema);
    let msgs = req["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["content"], "Override.\n\nAlso this.");
    // last_messages 2: the newest question and the additional message only.
    let contents: Vec<&str> = msgs[1..]
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["Newest question", "Extra message"]);

    // tool_choice none: the tools stay described but the model may not call them.
    app.run_with(
        &thread,
        json!({"assistant_id": asst, "tool_choice": "none", "tools": []}),
    )
    .await;
    assert!(llm.last_request().get("tools").is_none());

    // Bad parameters are 400s naming the parameter.
    for (body, param) in [
        (
            json!({"assistant_id": asst, "max_prompt_tokens": 10}),
            "max_prompt_tokens",
        ),
        (
            json!({"assistant_id": asst, "truncation_strategy": {"type": "middle"}}),
            "truncation_strategy",
        ),
        (
            json!({"assistant_id": asst, "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"assistant_id": asst, "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice.function.name",
        ),
        (
            json!({"assistant_id": asst, "temperature": 3}),
            "temperature",
        ),
        (
            json!({"assistant_id": asst, "tools": [{"type": "no_such_plugin"}]}),
            "tools[0].type",
        ),
    ] {
        let (s, e) = app.post(&format!("/threads/{thread}/runs"), body).await;
        assert_eq!(s, 400, "{e}");
        assert_eq!(assert_error(&e)["param"], param);
    }
    let (s, e) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": "asst_missing"}),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    let (s, _) = app
        .post(
            "/threads/thread_missing/runs",
            json!({"assistant_id": asst}),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn token_limits_end_runs_incomplete() {
    let llm = FakeLlm::start().await;
    llm.push(
        Reply::text("A long answer that was cut")
            .finish("length")
            .usage(20, 256),
    );
    let app = setup(&llm).await;
    let (asst, thread) = assistant_and_thread(&app, json!({})).await;
    let done = app
        .run_with(
            &thread,
            json!({"assistant_id": asst, "max_completion_tokens": 256}),
        )
        .await;
    assert_eq!(done["status"], "incomplete", "{done}");
    assert_eq!(
        done["incomplete_details"]["reason"],
        "max_completion_tokens"
    );
    assert_eq!(done["usage"]["completion_tokens"], 256);
    let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
    assert_eq!(msgs["data"][0]["status"], "incomplete");
    assert_eq!(
        msgs["data"][0]["incomplete_details"]["reason"],
        "max_tokens"
    );

    // A prompt over max_prompt_tokens (counted with a real tokenizer) never reaches the model.
    let before = llm.requests().len();
    let long = "token ".repeat(400);
    let t2 = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": long}]}),
        )
        .await;
    let done = app
        .run_with(&t2, json!({"assistant_id": asst, "max_prompt_tokens": 256}))
        .await;
    assert_eq!(done["status"], "incomplete", "{done}");
    assert_eq!(done["incomplete_details"]["reason"], "max_prompt_tokens");
    assert_eq!(llm.requests().len(), before);
}

#[tokio::test]
async fn upstream_failures_fail_the_run_with_the_right_code_and_are_retried_first() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await; // one retry
    let (asst, thread) = assistant_and_thread(&app, json!({})).await;
    llm.push(Reply::error(500));
    llm.push(Reply::error(502));
    let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["last_error"]["code"], "server_error");
    assert!(done["failed_at"].is_i64() && done["expires_at"].is_null());

    llm.push(Reply::error(429));
    llm.push(Reply::error(429));
    let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(done["last_error"]["code"], "rate_limit_exceeded", "{done}");

    // One transient failure is retried transparently.
    llm.push(Reply::error(503));
    llm.push(Reply::text("Recovered."));
    let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(done["status"], "completed", "{done}");

    // A streamed run that fails ends with the failed event, then done.
    llm.push(Reply::error(400));
    let (_, evs) = app
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    let names = events(&evs);
    assert_eq!(names[names.len() - 2..], ["thread.run.failed", "done"]);
}

#[tokio::test]
async fn cancel_ends_runs_promptly_from_every_cancellable_status() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let (asst, thread) = assistant_and_thread(&app, json!({"tools": [weather_tool()]})).await;

    // In progress, mid-stream: the upstream call is abandoned.
    // The answer would take 12 s to stream: a run that ends cancelled well before that was
    // aborted mid-call (the bound below is that margin, not a performance target).
    llm.push(Reply::text("one two three four five six").chunk_delay(Duration::from_secs(2)));
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    // Cancel once the model call is in flight (the upstream has the request).
    for _ in 0..500 {
        if !llm.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(llm.requests().len(), 1, "the model call started");
    let started = std::time::Instant::now();
    let (s, r) = app
        .post(
            &format!("/threads/{thread}/runs/{run_id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert!(matches!(
        r["status"].as_str(),
        Some("cancelling" | "cancelled")
    ));
    let done = app.wait_run(&thread, &run_id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["cancelled_at"].is_i64());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let (s, e) = app
        .post(
            &format!("/threads/{thread}/runs/{run_id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 400, "a finished run cannot be cancelled: {e}");

    // Waiting for tool outputs.
    llm.push(Reply::tool("get_weather", r#"{"city":"Oslo"}"#));
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.wait_run(&thread, &run_id).await["status"],
        "requires_action"
    );
    let (_, r) = app
        .post(
            &format!("/threads/{thread}/runs/{run_id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(r["status"], "cancelled");
    // Terminal runs and steps carry usage: here the tool-call turn's.
    assert_eq!(r["usage"]["total_tokens"], 45, "{r}");
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps"))
        .await;
    assert_eq!(steps["data"][0]["status"], "cancelled");
    assert_eq!(steps["data"][0]["usage"]["total_tokens"], 45);
    // The thread is free again.
    let (s, _) = app
        .post(
            &format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": "next"}),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn runs_waiting_for_outputs_expire() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool("get_weather", r#"{"city":"Rome"}"#));
    let app = TestApp::spawn_with_llm(&llm, |s| s.runs.expiry_secs = 1).await;
    let (asst, thread) = assistant_and_thread(&app, json!({"tools": [weather_tool()]})).await;
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap();
    assert_eq!(
        run["expires_at"].as_i64().unwrap() - run["created_at"].as_i64().unwrap(),
        1
    );
    let mut status = Value::Null;
    for _ in 0..100 {
        let (_, r) = app.get(&format!("/threads/{thread}/runs/{run_id}")).await;
        status = r["status"].clone();
        if status == "expired" {
            assert!(r["expires_at"].is_null());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "expired");
    let (s, _) = app
        .post(
            &format!("/threads/{thread}/runs/{run_id}/submit_tool_outputs"),
            json!({"tool_outputs": []}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn the_react_strategy_drives_tools_through_text_and_streams_only_the_answer() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("I should just answer."));
    llm.push(Reply::text(
        "Thought: I need to add.\nAction: calculate\nAction Input: {\"expression\": \"2+3\"}",
    ));
    llm.push(Reply::text(
        "Thought: I know it now.\nFinal Answer: It is 5.",
    ));
    let app = setup(&llm).await;
    let (asst, thread) = assistant_and_thread(
        &app,
        json!({"tools": [{"type": "calculator"}], "metadata": {"strategy": "react"}}),
    )
    .await;
    let (_, evs) = app
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    let names = events(&evs);
    assert_eq!(
        names[names.len() - 2..],
        ["thread.run.completed", "done"],
        "{names:?}"
    );
    let streamed: String = evs
        .iter()
        .filter(|(e, _)| e == "thread.message.delta")
        .map(|(_, d)| {
            d["delta"]["content"][0]["text"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(streamed, "It is 5.");
    let reqs = llm.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert!(r.get("tools").is_none(), "ReAct offers no native tools");
        assert_eq!(r["stop"], json!(["Observation:"]));
    }
    assert!(reqs[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("calculate"));
    // The format error was fed back, then the observation.
    let second = reqs[1]["messages"].to_string();
    assert!(second.contains("Invalid format"), "{second}");
    let third = reqs[2]["messages"].to_string();
    assert!(third.contains("Observation: 5"), "{third}");

    let run_id = evs[0].1["id"].as_str().unwrap();
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps?order=asc"))
        .await;
    let steps = steps["data"].as_array().unwrap();
    assert_eq!(steps[0]["type"], "tool_calls");
    assert_eq!(
        steps[0]["step_details"]["tool_calls"][0]["function"]["output"],
        "5"
    );
    assert_eq!(steps[1]["type"], "message_creation");
    let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
    assert_eq!(msgs["data"][0]["content"][0]["text"]["value"], "It is 5.");

    // An unknown strategy is refused when the run is created.
    let bad = app
        .create(
            "/assistants",
            json!({"model": "m", "metadata": {"strategy": "nope"}}),
        )
        .await;
    let (s, e) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": bad}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(assert_error(&e)["param"], "metadata.strategy");
}

#[tokio::test]
async fn a_run_interrupted_by_a_restart_resumes_without_duplicates() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("slow answer").delay(Duration::from_secs(3)));
    // No grace period: the node stops mid-call (with one, it would let the call finish).
    let app = TestApp::spawn_with_llm(&llm, |s| s.shutdown_grace_secs = 0).await;
    let (asst, thread) = assistant_and_thread(&app, json!({})).await;
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    for _ in 0..100 {
        if !llm.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(llm.requests().len(), 1, "the LLM call is in flight");
    // The node stops mid-call; the next one picks the run up from its last persisted step.
    llm.push(Reply::text("fresh answer"));
    let app = app.restart().await;
    let done = app.wait_run(&thread, &run_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, msgs) = app
        .get(&format!("/threads/{thread}/messages?run_id={run_id}"))
        .await;
    let msgs = msgs["data"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["content"][0]["text"]["value"], "fresh answer");
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps"))
        .await;
    assert_eq!(steps["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn run_endpoints_answer_errors_in_the_envelope() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let (asst, thread) = assistant_and_thread(&app, json!({})).await;
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap();
    app.wait_run(&thread, run_id).await;
    let (s, e) = app.get(&format!("/threads/{thread}/runs/run_nope")).await;
    assert_eq!(s, 404);
    assert_eq!(
        assert_error(&e)["message"],
        "No run found with id 'run_nope'."
    );
    let other = app.create("/threads", json!({})).await;
    let (s, _) = app.get(&format!("/threads/{other}/runs/{run_id}")).await;
    assert_eq!(s, 404, "a run is only found under its own thread");
    let (s, e) = app
        .get(&format!(
            "/threads/{thread}/runs/{run_id}/steps?include[]=bogus"
        ))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps?include[]=step_details.tool_calls[*].file_search.results[*].content"))
        .await;
    assert_eq!(s, 200);
    let (s, r) = app
        .post(
            &format!("/threads/{thread}/runs/{run_id}"),
            json!({"metadata": {"a": "b"}}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["metadata"], json!({"a": "b"}));
    let (s, _) = app
        .post(&format!("/threads/{thread}/runs"), json!({}))
        .await;
    assert_eq!(s, 400, "assistant_id is required");
}

#[tokio::test]
async fn a_strategy_dropped_into_the_plugins_dir_is_used_by_its_id() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("from the echo strategy"));
    let app = TestApp::spawn_with_llm(&llm, |s| {
        s.plugins.dir = Some(env!("TEST_PLUGINS_DIR").into());
    })
    .await;
    let (asst, thread) =
        assistant_and_thread(&app, json!({"metadata": {"strategy": "echo-strategy"}})).await;
    let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
    assert_eq!(
        msgs["data"][0]["content"][0]["text"]["value"],
        "from the echo strategy"
    );

    // The server default applies to assistants that name no strategy.
    let app2 = TestApp::spawn_with_llm(&llm, |s| {
        s.plugins.dir = Some(env!("TEST_PLUGINS_DIR").into());
        s.runs.default_strategy = "echo-strategy".into();
    })
    .await;
    let (asst, thread) = assistant_and_thread(&app2, json!({"tools": [weather_tool()]})).await;
    llm.push(Reply::text("plain"));
    let (_, run) = app2
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let done = app2.wait_run(&thread, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    // echo-strategy offers no native tools, unlike `native`.
    assert!(llm.last_request().get("tools").is_none());
}

/// A component in the plugins directory cannot take a built-in's id, even one that is not
/// loaded for want of grants: it would receive the grants meant for the built-in.
#[tokio::test]
async fn a_plugin_in_the_directory_cannot_take_a_built_in_id() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("TEST_PLUGINS_DIR"));
    let manifest = std::fs::read_to_string(src.join("echo-strategy.toml")).unwrap();
    for id in ["weather", "impostor"] {
        std::fs::copy(
            src.join("echo-strategy.wasm"),
            dir.path().join(format!("{id}.wasm")),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(format!("{id}.toml")),
            manifest.replace("id = \"echo-strategy\"", &format!("id = \"{id}\"")),
        )
        .unwrap();
    }
    let llm = FakeLlm::start().await;
    let path = dir.path().to_path_buf();
    let app = TestApp::spawn_with_llm(&llm, move |s| s.plugins.dir = Some(path)).await;
    let (_, plugins) = app.get("/plugins").await;
    let kinds: Vec<(&str, &str)> = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["kind"].as_str().unwrap_or("")))
        .collect();
    assert!(
        kinds.contains(&("impostor", "strategy")),
        "the same component under its own id loads: {kinds:?}"
    );
    assert!(
        !kinds.contains(&("weather", "strategy")),
        "the built-in weather id is not taken over: {kinds:?}"
    );
}

/// An assistant with the `swap` plugin (the reload-v1/-v2 components answer `version` with
/// their version) and a `pause` function, and a thread.
async fn swap_assistant(app: &TestApp) -> (String, String) {
    let pause = json!({"type": "function", "function": {"name": "pause", "parameters": {"type": "object", "properties": {}}}});
    assistant_and_thread(app, json!({"tools": [pause, {"type": "swap"}]})).await
}

/// Runs the assistant once, asserting that `swap` answered `expected`.
async fn run_swap(app: &TestApp, llm: &FakeLlm, (asst, thread): &(String, String), expected: &str) {
    llm.push(Reply::tool("version", "{}"));
    llm.push(Reply::text("done"));
    let run = app.run_with(thread, json!({"assistant_id": asst})).await;
    assert_eq!(run["status"], "completed", "{run}");
    let id = run["id"].as_str().unwrap();
    assert_eq!(app.function_output(thread, id, "version").await, expected);
}

/// A run of the assistant waits for the client while `swap` is v1; `replace` swaps in v2.
/// The run in flight then finishes on v1, and a new run uses v2. Returns v2 as listed.
async fn swap_during_a_run<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    llm: &FakeLlm,
    (asst, thread): &(String, String),
    replace: impl FnOnce() -> F,
) -> Value {
    let v1 = app.wait_plugin("swap", |s, _| s == 200).await;
    llm.push(Reply::tool("pause", "{}"));
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run1 = run["id"].as_str().unwrap().to_string();
    let waiting = app.wait_run(thread, &run1).await;
    assert_eq!(waiting["status"], "requires_action", "{waiting}");

    replace().await;
    let v2 = app
        .wait_plugin("swap", |_, p| p["digest"] != v1["digest"])
        .await;
    assert_eq!(
        v2["description"],
        "Answers which version of the component is serving (v2)."
    );

    // The run in flight finishes on the component it started with.
    llm.push(Reply::tool("version", "{}"));
    llm.push(Reply::text("done"));
    app.submit_first_output(thread, &waiting, "ok").await;
    assert_eq!(app.wait_run(thread, &run1).await["status"], "completed");
    assert_eq!(app.function_output(thread, &run1, "version").await, "v1");

    // New runs use the new one.
    run_swap(app, llm, &(asst.clone(), thread.clone()), "v2").await;
    v2
}

#[tokio::test]
async fn plugins_directory_changes_take_effect_while_runs_keep_their_component() {
    let dir = tempfile::tempdir().unwrap();
    let install = |version: &str| {
        // The manifest first, then the component: a scan may see them in between, and waits
        // for both to settle.
        let (wasm, manifest) = test_plugin(&format!("reload-{version}"), "swap");
        std::fs::write(dir.path().join("swap.toml"), manifest).unwrap();
        std::fs::write(dir.path().join("swap.wasm"), wasm).unwrap();
    };
    install("v1");
    let llm = FakeLlm::start().await;
    let path = dir.path().to_path_buf();
    let app = TestApp::spawn_with_llm(&llm, move |s| {
        s.plugins.dir = Some(path);
        s.plugins.reload_secs = Some(1);
    })
    .await;
    let v1 = app.wait_plugin("swap", |s, _| s == 200).await;
    let swap = swap_assistant(&app).await;
    let v2 = swap_during_a_run(&app, &llm, &swap, || async { install("v2") }).await;

    // A broken new version is refused, said so, and v2 keeps serving.
    std::fs::write(dir.path().join("swap.wasm"), b"\0asm but not really").unwrap();
    let refused = app
        .wait_plugin("swap", |_, p| p.get("update_refused").is_some())
        .await;
    assert_eq!(refused["digest"], v2["digest"]);
    let why = refused["update_refused"].as_str().unwrap();
    assert!(why.contains("failed to parse WebAssembly module"), "{why}");
    run_swap(&app, &llm, &swap, "v2").await;

    // Fixed, it serves again; removed, it is gone.
    install("v1");
    app.wait_plugin("swap", |_, p| {
        p["digest"] == v1["digest"] && p.get("update_refused").is_none()
    })
    .await;
    std::fs::remove_file(dir.path().join("swap.wasm")).unwrap();
    std::fs::remove_file(dir.path().join("swap.toml")).unwrap();
    app.wait_plugin("swap", |s, _| s == 404).await;
}

#[tokio::test]
async fn uploaded_plugins_need_an_admin_key_and_take_effect_at_once() {
    let llm = FakeLlm::start().await;
    let mut app = TestApp::spawn_with_llm(&llm, |_| {}).await;
    let (v1, v1_manifest) = test_plugin("reload-v1", "swap");

    // Open mode manages nothing.
    let (s, e) = app.put_plugin("swap", v1.clone(), &v1_manifest).await;
    assert_eq!(s, 403, "{e}");
    assert!(
        assert_error(&e)["message"]
            .as_str()
            .unwrap()
            .contains("--admin"),
        "{e}"
    );

    let store = Store::connect(&app.database_url).await.unwrap();
    let (_, team) = store.create_key("team").await.unwrap();
    let (_, admin) = store.create_key_with("ops", Scope::Admin).await.unwrap();
    // The server notices that keys exist within a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.key = team.clone();
    let (s, e) = app.put_plugin("swap", v1.clone(), &v1_manifest).await;
    assert_eq!(s, 403, "a project key manages nothing: {e}");
    let (s, _) = app.delete("/plugins/calculator").await;
    assert_eq!(s, 403);

    app.key = admin.clone();
    let (s, e) = app.put_plugin("other", v1.clone(), &v1_manifest).await;
    assert_eq!(
        (s.as_u16(), assert_error(&e)["param"].clone()),
        (400, json!("manifest")),
        "{e}"
    );
    let (calc, calc_manifest) = test_plugin("reload-v1", "calculator");
    let (s, e) = app.put_plugin("calculator", calc, &calc_manifest).await;
    assert_eq!(s, 409, "a built-in's id: {e}");
    let (s, e) = app
        .put_plugin("swap", b"\0asm but not really".to_vec(), &v1_manifest)
        .await;
    assert_eq!(
        (s.as_u16(), assert_error(&e)["param"].clone()),
        (400, json!("component")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("refused"),
        "{e}"
    );
    assert_eq!(
        app.get("/plugins/swap").await.0,
        404,
        "nothing refused is installed"
    );

    // Installed: listed at once, to every project's key.
    let (s, put) = app.put_plugin("swap", v1, &v1_manifest).await;
    assert_eq!(s, 200, "{put}");
    app.key = team;
    let (s, listed) = app.get("/plugins/swap").await;
    assert_eq!((s.as_u16(), &listed["digest"]), (200, &put["digest"]));
    let team_swap = swap_assistant(&app).await;
    run_swap(&app, &llm, &team_swap, "v1").await;

    // Replaced while a run is in flight: the run keeps v1, new runs get v2. (The admin key
    // is also a key of its own project, where this assistant lives.)
    app.key = admin.clone();
    let swap = swap_assistant(&app).await;
    let (v2, v2_manifest) = test_plugin("reload-v2", "swap");
    let v2_listed = swap_during_a_run(&app, &llm, &swap, || async {
        let (s, e) = app.put_plugin("swap", v2, &v2_manifest).await;
        assert_eq!(s, 200, "{e}");
    })
    .await;

    // A broken new version is refused and v2 keeps serving.
    let (s, e) = app
        .put_plugin("swap", b"\0asm".to_vec(), &v2_manifest)
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        app.get("/plugins/swap").await.1["digest"],
        v2_listed["digest"]
    );

    // Uploads outlive a restart.
    app = app.restart().await;
    app.key = admin;
    let (_, after) = app.get("/plugins/swap").await;
    assert_eq!(after["digest"], v2_listed["digest"], "{after}");
    run_swap(&app, &llm, &swap, "v2").await;

    // Removed: gone; built-ins are not removed this way.
    let (s, e) = app.delete("/plugins/calculator").await;
    assert_eq!(s, 409, "{e}");
    let (s, deleted) = app.delete("/plugins/swap").await;
    assert_eq!(s, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({"id": "swap", "object": "plugin.deleted", "deleted": true})
    );
    assert_eq!(app.get("/plugins/swap").await.0, 404);
    assert_eq!(app.delete("/plugins/swap").await.0, 404);
}

/// An id has one source: a directory file for an uploaded id is refused while the upload
/// serves, and serves once the upload is deleted; an upload for an id the directory serves is
/// refused.
#[tokio::test]
async fn an_id_is_served_by_the_upload_or_the_directory_file_never_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut app = TestApp::spawn_with(move |s| {
        s.plugins.dir = Some(path);
        s.plugins.reload_secs = Some(1);
    })
    .await;
    let store = Store::connect(&app.database_url).await.unwrap();
    let (_, admin) = store.create_key_with("ops", Scope::Admin).await.unwrap();
    app.key = admin;
    let (v1, v1_manifest) = test_plugin("reload-v1", "swap");
    let (s, put) = app.put_plugin("swap", v1, &v1_manifest).await;
    assert_eq!(s, 200, "{put}");

    let (v2, v2_manifest) = test_plugin("reload-v2", "swap");
    std::fs::write(dir.path().join("swap.toml"), &v2_manifest).unwrap();
    std::fs::write(dir.path().join("swap.wasm"), &v2).unwrap();
    // Three scans see the file (it settles after two); the upload keeps serving.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(app.get("/plugins/swap").await.1["digest"], put["digest"]);

    // Deleted, the directory's file serves; an upload for its id is now refused.
    assert_eq!(app.delete("/plugins/swap").await.0, 200);
    let served = app
        .wait_plugin("swap", |s, p| s == 200 && p["digest"] != put["digest"])
        .await;
    assert_eq!(
        served["description"],
        "Answers which version of the component is serving (v2)."
    );
    let (v1, v1_manifest) = test_plugin("reload-v1", "swap");
    let (s, e) = app.put_plugin("swap", v1, &v1_manifest).await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plugins directory"),
        "{e}"
    );
}

#[tokio::test]
async fn models_are_routed_to_their_upstream() {
    let default = FakeLlm::start().await;
    let local = FakeLlm::start().await;
    default.push(Reply::text("from default"));
    local.push(Reply::text("from local"));
    let route = local.url.clone();
    let app = TestApp::spawn_with_llm(&default, move |s| {
        s.llm.routes = vec![assistants_core::llm::LlmRoute {
            model: None,
            prefix: Some("llama".into()),
            base_url: route,
            api_key: None,
        }];
    })
    .await;
    let (asst, thread) = assistant_and_thread(&app, json!({})).await;
    for model in ["llama-3-8b", "gpt-test"] {
        let done = app
            .run_with(&thread, json!({"assistant_id": asst, "model": model}))
            .await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    assert_eq!(local.requests().len(), 1);
    assert_eq!(local.last_request()["model"], "llama-3-8b");
    assert_eq!(default.requests().len(), 1);
    assert_eq!(default.last_request()["model"], "gpt-test");
}

/// A vector store holding one small file, ingested.
pub(crate) async fn store_with_notes(app: &TestApp) -> (String, String) {
    let file = app
        .upload_ok(
            "notes.txt",
            "Field notes. The zanzibarquokka is a small marsupial that eats mango peel near the harbor lighthouse.",
        )
        .await;
    let vs = app
        .create(
            "/vector_stores",
            json!({"name": "notes", "file_ids": [file]}),
        )
        .await;
    app.wait_vs_file(&vs, &file).await;
    (vs, file)
}

#[tokio::test]
async fn file_search_runs_record_results_and_answers_cite_them_exactly() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let (vs, file) = store_with_notes(&app).await;
    let (asst, thread) = assistant_and_thread(
        &app,
        json!({
            "tools": [{"type": "file_search", "file_search": {"max_num_results": 3}}],
            "tool_resources": {"file_search": {"vector_store_ids": [vs]}},
        }),
    )
    .await;
    let answer = "It eats mango peel【0:0†notes.txt】.";
    llm.push(Reply::tool(
        "file_search",
        r#"{"query":"zanzibarquokka food"}"#,
    ));
    llm.push(Reply::text(answer));
    let (_, evs) = app
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    let names = events(&evs);
    assert_eq!(
        names[names.len() - 2..],
        ["thread.run.completed", "done"],
        "{names:?}"
    );
    // Streamed as a file_search call, not as a function.
    let first_call = evs
        .iter()
        .find(|(e, _)| e == "thread.run.step.delta")
        .map(|(_, d)| d["delta"]["step_details"]["tool_calls"][0].clone())
        .unwrap();
    assert_eq!(first_call["type"], "file_search");
    // The model saw labelled passages.
    let seen = llm.last_message_text();
    assert!(seen.starts_with("【0:0†notes.txt】"), "{seen}");
    assert!(seen.contains("mango peel"));

    // The step lists the results; content only with include[].
    let run_id = evs[0].1["id"].as_str().unwrap();
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps?order=asc"))
        .await;
    let call = &steps["data"][0]["step_details"]["tool_calls"][0];
    assert_eq!(call["type"], "file_search", "{call}");
    let result = &call["file_search"]["results"][0];
    assert_eq!(result["file_id"], file.as_str());
    assert_eq!(result["file_name"], "notes.txt");
    assert!(result["score"].as_f64().unwrap() > 0.0);
    assert!(result.get("content").is_none());
    assert_eq!(
        call["file_search"]["ranking_options"]["ranker"],
        "default_2024_08_21"
    );
    let (_, with) = app
        .get(&format!(
            "/threads/{thread}/runs/{run_id}/steps?order=asc&include[]=step_details.tool_calls[*].file_search.results[*].content"
        ))
        .await;
    let content = &with["data"][0]["step_details"]["tool_calls"][0]["file_search"]["results"][0]
        ["content"][0];
    assert!(
        content["text"].as_str().unwrap().contains("mango peel"),
        "{content}"
    );

    // The label in the answer is a file_citation slicing exactly the label.
    let (_, msgs) = app
        .get(&format!("/threads/{thread}/messages?run_id={run_id}"))
        .await;
    let text = &msgs["data"][0]["content"][0]["text"];
    assert_eq!(text["value"], answer);
    let ann = &text["annotations"][0];
    assert_eq!(ann["type"], "file_citation");
    assert_eq!(ann["file_citation"]["file_id"], file.as_str());
    let chars: Vec<char> = answer.chars().collect();
    let (s, e) = (
        ann["start_index"].as_u64().unwrap() as usize,
        ann["end_index"].as_u64().unwrap() as usize,
    );
    assert_eq!(chars[s..e].iter().collect::<String>(), "【0:0†notes.txt】");
    assert_eq!(ann["text"], "【0:0†notes.txt】");
    // The streamed answer carried the same annotation in a delta before it completed.
    let at = names
        .iter()
        .position(|n| *n == "thread.message.completed")
        .unwrap();
    let ann_delta = &evs[at - 1].1["delta"]["content"][0]["text"]["annotations"][0];
    assert_eq!(ann_delta["start_index"], ann["start_index"]);
    assert_eq!(ann_delta["index"], 0);
}

#[tokio::test]
async fn file_search_honours_max_num_results_and_needs_stores() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let mut files = Vec::new();
    for i in 0..4 {
        files.push(
            app.upload_ok(&format!("doc{i}.txt"), format!("quokka report number {i}"))
                .await,
        );
    }
    let vs = app
        .create("/vector_stores", json!({"name": "many", "file_ids": files}))
        .await;
    for f in &files {
        app.wait_vs_file(&vs, f).await;
    }
    let (asst, thread) = assistant_and_thread(
        &app,
        json!({"tools": [{"type": "file_search", "file_search": {"max_num_results": 2}}]}),
    )
    .await;
    // The thread's store is searched too (tool_resources of the thread).
    app.post(
        &format!("/threads/{thread}"),
        json!({"tool_resources": {"file_search": {"vector_store_ids": [vs]}}}),
    )
    .await;
    llm.push(Reply::tool("file_search", r#"{"query":"quokka report"}"#));
    llm.push(Reply::text("Done."));
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap();
    assert_eq!(app.wait_run(&thread, run_id).await["status"], "completed");
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run_id}/steps?order=asc"))
        .await;
    let results = steps["data"][0]["step_details"]["tool_calls"][0]["file_search"]["results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 2, "{results:?}");

    // Without any vector store the model is told so, and the run goes on.
    let t2 = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    llm.push(Reply::tool("file_search", r#"{"query":"anything"}"#));
    llm.push(Reply::text("Nothing attached."));
    let (_, run) = app
        .post(
            &format!("/threads/{t2}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    assert_eq!(
        app.wait_run(&t2, run["id"].as_str().unwrap()).await["status"],
        "completed"
    );
    let said = llm.last_message_text();
    assert!(said.contains("no vector stores"), "{said}");
}

#[tokio::test]
async fn file_search_attachments_fill_the_threads_store_created_on_demand() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let first = app
        .upload_ok(
            "manual.txt",
            "The flux capacitor needs 1.21 gigawatts to operate.",
        )
        .await;
    let second = app
        .upload_ok("care.txt", "Water the zanzibar fern twice a week.")
        .await;
    let attach = |f: &str| json!([{"file_id": f, "tools": [{"type": "file_search"}]}]);
    let thread = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "Read this", "attachments": attach(&first)}]}),
        )
        .await;
    let (_, t) = app.get(&format!("/threads/{thread}")).await;
    let vs = t["tool_resources"]["file_search"]["vector_store_ids"][0]
        .as_str()
        .expect("a thread store was created for the attachment")
        .to_string();
    let (_, store) = app.get(&format!("/vector_stores/{vs}")).await;
    assert_eq!(
        store["expires_after"],
        json!({"anchor": "last_active_at", "days": 7})
    );
    // A later message's attachment goes into the same store.
    let (s, _) = app
        .post(
            &format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": "and this", "attachments": attach(&second)}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, t) = app.get(&format!("/threads/{thread}")).await;
    assert_eq!(
        t["tool_resources"]["file_search"]["vector_store_ids"],
        json!([vs])
    );
    let (_, files) = app.get(&format!("/vector_stores/{vs}/files")).await;
    assert_eq!(files["data"].as_array().unwrap().len(), 2);
    // If the thread's store is deleted, the next attachment gets a new one.
    let other = app.create("/threads", json!({})).await;
    let (s, _) = app
        .post(
            &format!("/threads/{other}/messages"),
            json!({"role": "user", "content": "x", "attachments": attach(&second)}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, t2) = app.get(&format!("/threads/{other}")).await;
    let gone = t2["tool_resources"]["file_search"]["vector_store_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.delete(&format!("/vector_stores/{gone}")).await.0, 200);
    let (s, e) = app
        .post(
            &format!("/threads/{other}/messages"),
            json!({"role": "user", "content": "y", "attachments": attach(&first)}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let (_, t2) = app.get(&format!("/threads/{other}")).await;
    let fresh = t2["tool_resources"]["file_search"]["vector_store_ids"][0]
        .as_str()
        .unwrap();
    assert_ne!(fresh, gone);

    // A run right away finds the attached text (it waits for ingestion before searching).
    let asst = app
        .create(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "file_search"}]}),
        )
        .await;
    llm.push(Reply::tool(
        "file_search",
        r#"{"query":"gigawatts flux capacitor"}"#,
    ));
    llm.push(Reply::text("1.21 gigawatts【0:0†manual.txt】."));
    let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let seen = llm.last_message_text();
    assert!(seen.contains("1.21 gigawatts"), "{seen}");
    let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
    assert_eq!(
        msgs["data"][0]["content"][0]["text"]["annotations"][0]["file_citation"]["file_id"],
        first.as_str()
    );
}

/// A small web site on 127.0.0.1 for web_retrieval: a page, redirects, a JSON search endpoint.
pub(crate) async fn web_site() -> String {
    use axum::routing::get;
    let page = "<html><head><title>Quokka Facts</title><script>var secret = 'SCRIPT-TEXT';</script>\
        <style>.x { color: red }</style></head><body><nav>Home | About</nav><h1>Quokkas</h1>\
        <p>Quokkas &amp; wallabies eat leaves.</p><p>They live on Rottnest&nbsp;Island.</p></body></html>";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let search_base = base.clone();
    let app = axum::Router::new()
        .route(
            "/page",
            get(move || async move { ([("content-type", "text/html; charset=utf-8")], page) }),
        )
        .route(
            "/moved",
            get(|| async { (axum::http::StatusCode::FOUND, [("location", "/page")], "") }),
        )
        .route(
            "/to-metadata",
            get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "http://169.254.169.254/latest/meta-data")],
                    "",
                )
            }),
        )
        .route(
            "/search",
            get(move || {
                let base = search_base.clone();
                async move {
                    axum::Json(json!({"results": [
                        {"url": format!("{base}/page"), "title": "Quokka Facts", "content": "All about quokkas."}
                    ]}))
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test]
async fn web_retrieval_reads_granted_pages_and_answers_cite_them() {
    let site = web_site().await;
    let llm = FakeLlm::start().await;
    // Not granted: the built-in plugin does not load, and assistants cannot enable it.
    let closed = setup(&llm).await;
    let (s, e) = closed
        .post(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "web_retrieval"}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");

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
    let (asst, thread) =
        assistant_and_thread(&app, json!({"tools": [{"type": "web_retrieval"}]})).await;
    // The model searches, fetches through a redirect, then answers citing the page.
    llm.push(Reply::tool("web_search", r#"{"query":"quokka diet"}"#));
    llm.push(Reply::tool(
        "web_fetch",
        &json!({"url": format!("{site}/moved")}).to_string(),
    ));
    llm.push(Reply::text("They eat leaves【1:0†Quokka Facts】."));
    let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let reqs = llm.requests();
    let tool_out = |i: usize| {
        reqs[i]["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let search = tool_out(1);
    assert!(search.starts_with("【0:0†Quokka Facts】"), "{search}");
    let page = tool_out(2);
    assert!(page.starts_with("【1:0†Quokka Facts】"), "{page}");
    assert!(
        page.contains(&format!("{site}/page")),
        "the final URL after the redirect: {page}"
    );
    assert!(page.contains("Quokkas & wallabies eat leaves."), "{page}");
    assert!(page.contains("Rottnest Island"), "{page}");
    assert!(
        !page.contains("SCRIPT-TEXT")
            && !page.contains("color: red")
            && !page.contains("Home | About"),
        "{page}"
    );

    let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
    let text = &msgs["data"][0]["content"][0]["text"];
    let ann = &text["annotations"][0];
    assert_eq!(ann["type"], "url_citation", "{text}");
    assert_eq!(ann["url"], format!("{site}/page"));
    assert_eq!(ann["title"], "Quokka Facts");
    let value: Vec<char> = text["value"].as_str().unwrap().chars().collect();
    let (s, e) = (
        ann["start_index"].as_u64().unwrap() as usize,
        ann["end_index"].as_u64().unwrap() as usize,
    );
    assert_eq!(
        value[s..e].iter().collect::<String>(),
        "【1:0†Quokka Facts】"
    );

    // A redirect into the metadata range and an ungranted host are refused by the host.
    llm.push(Reply::tool(
        "web_fetch",
        &json!({"url": format!("{site}/to-metadata")}).to_string(),
    ));
    llm.push(Reply::text("Could not."));
    llm.push(Reply::tool("web_fetch", r#"{"url":"http://example.com/"}"#));
    llm.push(Reply::text("Could not either."));
    for _ in 0..2 {
        let done = app.run_with(&thread, json!({"assistant_id": asst})).await;
        assert_eq!(done["status"], "completed", "{done}");
        let out = llm.last_message_text();
        assert!(
            out.starts_with("error:") && out.contains("refused"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn expired_vector_stores_are_refused_for_search_and_file_search() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let file = app.upload_ok("old.txt", "An old note about quokkas.").await;
    let vs = app
        .create(
            "/vector_stores",
            json!({"file_ids": [file], "expires_after": {"anchor": "last_active_at", "days": 1}}),
        )
        .await;
    app.wait_vs_file(&vs, &file).await;
    let (s, _) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "quokkas"}),
        )
        .await;
    assert_eq!(s, 200, "a live store is searchable");
    // Two days without use.
    assistants_core::store::testing::admin_execute(
        &app.settings().storage.database_url,
        &format!(
            "UPDATE vector_stores SET last_active_at = last_active_at - 172800 WHERE id = '{vs}'"
        ),
    )
    .await
    .unwrap();
    let (_, store) = app.get(&format!("/vector_stores/{vs}")).await;
    assert_eq!(store["status"], "expired");
    let (s, e) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "quokkas"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(assert_error(&e)["message"]
        .as_str()
        .unwrap()
        .contains("expired"));

    // A run's file_search tells the model instead of searching it.
    let (asst, thread) = assistant_and_thread(
        &app,
        json!({"tools": [{"type": "file_search"}],
               "tool_resources": {"file_search": {"vector_store_ids": [vs]}}}),
    )
    .await;
    llm.push(Reply::tool("file_search", r#"{"query":"quokkas"}"#));
    llm.push(Reply::text("That store has expired."));
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    assert_eq!(
        app.wait_run(&thread, run["id"].as_str().unwrap()).await["status"],
        "completed"
    );
    let out = llm.last_message_text();
    assert!(out.contains("has expired"), "{out}");
}
