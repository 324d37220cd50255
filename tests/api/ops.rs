//! Operations: liveness, readiness, metrics, graceful shutdown; the playground's assets.

use std::time::{Duration, Instant};

use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::{json, TestApp};

async fn thread_with_message(app: &TestApp) -> String {
    app.create(
        "/threads",
        json!({"messages": [{"role": "user", "content": "Hello?"}]}),
    )
    .await
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let llm = FakeLlm::start().await;
    let app = TestApp::spawn_with_llm(&llm, |_| {}).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");

    let ready = app
        .client
        .get(format!("{}/readyz", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    for check in ["database", "queue", "events"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }

    // One run, so every family has a sample.
    llm.push(Reply::text("Hi there."));
    let asst = app
        .create("/assistants", json!({"model": "gpt-metrics"}))
        .await;
    let thread = thread_with_message(&app).await;
    let (status, events) = app
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(events.iter().any(|(e, _)| e == "thread.run.completed"));

    let resp = app
        .client
        .get(format!("{}/metrics", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let sample = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"))
    };
    // Routes are patterns, not paths (bounded label values).
    assert!(
        sample(
            r#"assistants_http_requests_total{method="POST",route="/v1/threads/{thread_id}/runs",status="200"}"#
        ) >= 1.0
    );
    assert!(sample(r#"assistants_runs_finished_total{status="completed"}"#) >= 1.0);
    assert!(
        sample(r#"assistants_llm_requests_total{call="chat",model="gpt-metrics",outcome="ok"}"#)
            >= 1.0
    );
    assert!(
        sample(r#"assistants_plugin_calls_total{plugin="native",kind="strategy",outcome="ok"}"#)
            >= 2.0,
        "start and LLM-completed steps"
    );
    for phase in ["queue_wait", "llm", "total"] {
        assert!(
            sample(&format!(
                r#"assistants_run_phase_duration_seconds_count{{phase="{phase}"}}"#
            )) >= 1.0
        );
    }
    assert!(
        sample(r#"assistants_llm_request_duration_seconds_count{call="chat",model="gpt-metrics"}"#)
            >= 1.0
    );
    // Read from the database at scrape time: nothing of this app's is active.
    assert!(text.contains(r#"assistants_runs_active{status="queued"} "#));
    assert!(text.trim_end().ends_with("# EOF"));
}

/// SIGTERM with runs in flight: a run that finishes within the grace period streams to its
/// end; a longer one's stream ends with an `error` event and `done` once the grace period is
/// over, and the run is handed back — after a restart it completes, with one message.
#[tokio::test]
async fn shutdown_finishes_short_runs_and_hands_back_long_ones() {
    let llm = FakeLlm::start().await;
    let app = TestApp::spawn_with_llm(&llm, |s| s.shutdown_grace_secs = 3).await;
    let asst = app
        .create("/assistants", json!({"model": "gpt-test"}))
        .await;
    let (short_thread, long_thread) = (
        thread_with_message(&app).await,
        thread_with_message(&app).await,
    );
    // The short run answers after 1.5 s; the long one streams a word every 0.5 s for 20 s.
    llm.push(Reply::text("Short answer.").delay(Duration::from_millis(1500)));
    let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    llm.push(Reply::text(&words.join(" ")).chunk_delay(Duration::from_millis(500)));
    llm.push(Reply::text("Resumed after the restart."));

    let stream = |thread: String| {
        let client = app.client.clone();
        let url = app.url(&format!("/threads/{thread}/runs"));
        let key = app.key.clone();
        let asst = asst.clone();
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"assistant_id": asst, "stream": true}))
                .send()
                .await
                .unwrap();
            assistants_tests::parse_sse(&resp.text().await.unwrap())
        })
    };
    let short = stream(short_thread.clone());
    wait_for(|| llm.requests().len() == 1).await;
    let long = stream(long_thread.clone());
    wait_for(|| llm.requests().len() == 2).await;

    let mut app = app;
    let started = Instant::now();
    app.begin_stop();
    let short = short.await.unwrap();
    let long = long.await.unwrap();
    let names = |events: &[(String, serde_json::Value)]| -> Vec<String> {
        events.iter().map(|(e, _)| e.clone()).collect()
    };
    let short_names = names(&short);
    assert!(
        short_names.ends_with(&["thread.run.completed".into(), "done".into()]),
        "{short_names:?}"
    );
    let long_names = names(&long);
    assert!(
        long_names.ends_with(&["error".into(), "done".into()]),
        "{long_names:?}"
    );
    assert!(long_names.contains(&"thread.message.delta".to_string()));
    let (_, error) = &long[long.len() - 2];
    assert_eq!(error["error"]["type"], "server_error", "{error}");
    app.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3 + 5 + 5),
        "shutdown is bounded by the grace period: {took:?}"
    );

    // Handed back: a restarted node resumes the long run from its last step.
    let app = app.restart().await;
    let runs = app.get(&format!("/threads/{long_thread}/runs")).await.1;
    let run_id = runs["data"][0]["id"].as_str().unwrap().to_string();
    let run = app.wait_run(&long_thread, &run_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let messages = app
        .get(&format!("/threads/{long_thread}/messages?run_id={run_id}"))
        .await
        .1;
    let data = messages["data"].as_array().unwrap();
    assert_eq!(
        data.len(),
        1,
        "the interrupted message was replaced, not duplicated: {messages}"
    );
    assert_eq!(
        data[0]["content"][0]["text"]["value"],
        "Resumed after the restart."
    );
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached in 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With a drain delay, a stopping node keeps answering for a moment, and `/readyz` says it is
/// draining (503) so a load balancer takes it out of rotation before connections are refused.
#[tokio::test]
async fn readiness_fails_while_a_node_drains() {
    let mut app = TestApp::spawn_with(|s| s.drain_delay_secs = 2).await;
    let url = format!("{}/readyz", app.root);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    app.begin_stop();
    let deadline = Instant::now() + Duration::from_secs(2);
    let body = loop {
        let resp = app.client.get(&url).send().await.expect("still listening");
        if resp.status() == 503 {
            break resp.json::<serde_json::Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "readiness never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["status"], "draining", "{body}");
    assert_eq!(body["checks"]["database"], "ok");
    app.stop().await;
    assert!(
        app.client.get(&url).send().await.is_err(),
        "the listener is closed once the node stopped"
    );
}

/// `/playground` is served from the binary — its page, script and style, each with its type
/// and a policy that holds the page to this origin — to anyone (it holds no data: the page
/// sends the key the user enters like any client).
#[tokio::test]
async fn the_playground_is_served_from_the_binary_under_a_same_origin_policy() {
    let app = TestApp::spawn().await;
    for (path, kind, has) in [
        (
            "/playground",
            "text/html",
            "<script type=\"module\" src=\"/playground/app.js\">",
        ),
        (
            "/playground/app.js",
            "text/javascript",
            "async function api(",
        ),
        ("/playground/app.css", "text/css", "[data-theme=\"dark\"]"),
    ] {
        let resp = app
            .client
            .get(format!("{}{path}", app.root))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
            "{path}: {policy}"
        );
        let body = resp.text().await.unwrap();
        assert!(body.contains(has), "{path}");
        // Nothing is fetched from elsewhere.
        assert!(!body.contains("https://"), "{path} names another origin");
    }
}
