//! Distributed mode: API nodes and workers sharing PostgreSQL, a RabbitMQ run queue and Redis
//! run events, in one test process. Every scenario puts the client on an API-only node, so the
//! run can only be driven by a worker node elsewhere and its events can only arrive through
//! Redis. Services come from `ASSISTANTS_TEST_DATABASE_URL` / `_QUEUE_URL` / `_EVENTS_URL`, or
//! the machine's standard local ports.

use std::time::Duration;

use assistants_core::store::keys::Scope;
use assistants_core::store::Store;
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::fixtures::test_plugin;
use assistants_tests::{json, TestApp};
use serde_json::Value;

/// A worker node (the first, owning the database and queue) and an API-only node.
async fn cluster(llm: &FakeLlm) -> (TestApp, TestApp) {
    let worker = TestApp::spawn_distributed(llm, |_| {}).await;
    let api = worker.spawn_peer(|s| s.runs.worker = false).await;
    (worker, api)
}

async fn setup(app: &TestApp, tools: Value) -> (String, String) {
    let asst = app
        .create("/assistants", json!({"model": "m", "tools": tools}))
        .await;
    let thread = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "weather in Paris?"}]}),
        )
        .await;
    (asst, thread)
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(e, _)| e.as_str()).collect()
}

#[tokio::test]
async fn a_client_streaming_from_an_api_node_sees_what_a_worker_node_produces() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("Streamed across nodes"));
    let (_worker, api) = cluster(&llm).await;
    let (asst, thread) = setup(&api, json!([])).await;
    let (s, evs) = api
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    assert_eq!(s, 200);
    let n = names(&evs);
    assert_eq!(
        &n[..3],
        [
            "thread.run.created",
            "thread.run.queued",
            "thread.run.in_progress"
        ],
        "{n:?}"
    );
    assert_eq!(n[n.len() - 2..], ["thread.run.completed", "done"]);
    let text: String = evs
        .iter()
        .filter(|(e, _)| e == "thread.message.delta")
        .map(|(_, d)| {
            d["delta"]["content"][0]["text"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "Streamed across nodes");
    assert_eq!(llm.requests().len(), 1);
}

#[tokio::test]
async fn tool_outputs_submitted_on_another_node_continue_the_run() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool("get_weather", r#"{"city":"Paris"}"#));
    llm.push(Reply::text("Sunny."));
    let (worker, api) = cluster(&llm).await;
    let tool = json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}});
    let (asst, thread) = setup(&api, json!([tool])).await;
    let (_, evs) = api
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    let n = names(&evs);
    assert_eq!(
        n[n.len() - 2..],
        ["thread.run.requires_action", "done"],
        "{n:?}"
    );
    let run = &evs[n.len() - 2].1;
    let run_id = run["id"].as_str().unwrap();
    let call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
        .as_str()
        .unwrap();
    // Submitted through the worker node's API this time; streamed from there.
    let (_, evs) = worker
        .stream(
            &format!("/threads/{thread}/runs/{run_id}/submit_tool_outputs"),
            json!({"stream": true, "tool_outputs": [{"tool_call_id": call, "output": "20C"}]}),
        )
        .await;
    let n = names(&evs);
    assert_eq!(n[n.len() - 2..], ["thread.run.completed", "done"], "{n:?}");
    let (_, msgs) = api
        .get(&format!("/threads/{thread}/messages?run_id={run_id}"))
        .await;
    assert_eq!(msgs["data"][0]["content"][0]["text"]["value"], "Sunny.");
}

#[tokio::test]
async fn cancel_on_an_api_node_stops_the_worker_promptly() {
    let llm = FakeLlm::start().await;
    // 16 s of streaming: ending cancelled well before that means the call was aborted.
    llm.push(Reply::text("a b c d e f g h").chunk_delay(Duration::from_secs(2)));
    let (_worker, api) = cluster(&llm).await;
    let (asst, thread) = setup(&api, json!([])).await;
    let (_, run) = api
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        if !llm.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    let (s, _) = api
        .post(
            &format!("/threads/{thread}/runs/{run_id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let done = api.wait_run(&thread, &run_id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn runs_spread_over_two_workers_all_complete_once() {
    let llm = FakeLlm::start().await;
    let (worker, api) = cluster(&llm).await;
    let _second = worker.spawn_peer(|_| {}).await;
    let asst = api.create("/assistants", json!({"model": "m"})).await;
    let mut runs = Vec::new();
    for i in 0..12 {
        let (s, run) = api
            .post(
                "/threads/runs",
                json!({"assistant_id": asst, "thread": {"messages": [{"role": "user", "content": format!("q{i}")}]}}),
            )
            .await;
        assert_eq!(s, 200, "{run}");
        runs.push((
            run["thread_id"].as_str().unwrap().to_string(),
            run["id"].as_str().unwrap().to_string(),
            i,
        ));
    }
    for (thread, run, i) in &runs {
        let done = api.wait_run(thread, run).await;
        assert_eq!(done["status"], "completed", "{done}");
        let (_, msgs) = api
            .get(&format!("/threads/{thread}/messages?run_id={run}"))
            .await;
        let msgs = msgs["data"].as_array().unwrap();
        assert_eq!(msgs.len(), 1, "one answer per run");
        assert_eq!(
            msgs[0]["content"][0]["text"]["value"],
            format!("echo: q{i}")
        );
    }
    assert_eq!(llm.requests().len(), 12, "each run called the model once");
}

#[tokio::test]
async fn a_stream_that_misses_events_still_ends_with_the_runs_outcome() {
    // This API node hears no events at all (in-process bus, while the worker publishes to
    // Redis): its stream must fall back to the database and still end properly.
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("done"));
    let worker = TestApp::spawn_distributed(&llm, |_| {}).await;
    let deaf = worker
        .spawn_peer(|s| {
            s.runs.worker = false;
            s.runs.events_url = None;
        })
        .await;
    let (asst, thread) = setup(&deaf, json!([])).await;
    let (_, evs) = deaf
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    let n = names(&evs);
    assert_eq!(
        n,
        [
            "thread.run.created",
            "thread.run.queued",
            "thread.run.completed",
            "done"
        ]
    );
    assert_eq!(evs[2].1["status"], "completed");
}

/// The `assistants` binary of this build (`cargo build --bin assistants`; `.ci/run` builds it
/// before this suite).
fn server_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("assistants");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bin assistants` first",
        bin.display()
    );
    bin
}

/// Starts `assistants worker` as a separate process on `api`'s deployment.
fn spawn_worker_process(
    api: &TestApp,
    llm: &FakeLlm,
    dir: &std::path::Path,
) -> std::process::Child {
    spawn_node_process(api, llm, dir, &["worker"])
}

/// Starts the `assistants` binary with `command` (a subcommand and its own flags) as a node of
/// `api`'s deployment; its log goes to `dir/node.log`.
fn spawn_node_process(
    api: &TestApp,
    llm: &FakeLlm,
    dir: &std::path::Path,
    command: &[&str],
) -> std::process::Child {
    spawn_configured_process(api, llm, dir, command, "")
}

/// [`spawn_node_process`] with more of the config file (`toml`, before its `[runs]` table).
fn spawn_configured_process(
    api: &TestApp,
    llm: &FakeLlm,
    dir: &std::path::Path,
    command: &[&str],
    toml: &str,
) -> std::process::Child {
    let s = api.settings();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!("{toml}\n[runs]\nqueue_name = {:?}\n", s.runs.queue_name),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    std::process::Command::new(server_bin())
        .arg("--config")
        .arg(&config)
        .args(command)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--database-url")
        .arg(&s.storage.database_url)
        .arg("--object-store-url")
        .arg(
            s.storage.object_store_url.clone().unwrap_or_else(|| {
                format!("file://{}", s.storage.data_dir.join("files").display())
            }),
        )
        .arg("--queue-url")
        .arg(s.runs.queue_url.as_deref().unwrap())
        .arg("--events-url")
        .arg(s.runs.events_url.as_deref().unwrap())
        .arg("--llm-base-url")
        .arg(&llm.url)
        .arg("--run-lease-secs")
        .arg("3")
        .env("ASSISTANTS_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting the assistants binary")
}

#[tokio::test]
async fn a_worker_process_killed_mid_run_leaves_a_run_that_completes_exactly_once() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool("calculate", r#"{"expression":"6*7"}"#));
    // The second model call is slow: the worker is killed while it streams.
    llm.push(Reply::text("The answer is 42.").chunk_delay(Duration::from_millis(800)));
    llm.push(Reply::text("The answer is 42."));
    let api = TestApp::spawn_distributed(&llm, |s| s.runs.worker = false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_worker_process(&api, &llm, dir.path());

    let asst = api
        .create(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "calculator"}]}),
        )
        .await;
    let thread = api
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "6 times 7?"}]}),
        )
        .await;
    let (_, run) = api
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    for _ in 0..600 {
        if llm.requests().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        llm.requests().len(),
        2,
        "the worker is in its second model call"
    );
    // Kill it once the answer has started streaming into its message.
    let mut streaming = false;
    for _ in 0..200 {
        let (_, msgs) = api
            .get(&format!("/threads/{thread}/messages?run_id={run_id}"))
            .await;
        if msgs["data"][0]["status"] == "in_progress" {
            streaming = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(streaming, "the answer message was opened");
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();
    let (_, r) = api.get(&format!("/threads/{thread}/runs/{run_id}")).await;
    assert_eq!(r["status"], "in_progress", "the run was mid-flight: {r}");

    let second_dir = tempfile::tempdir().unwrap();
    let mut second = spawn_worker_process(&api, &llm, second_dir.path());
    let done = api.wait_run(&thread, &run_id).await;
    second.kill().ok();
    second.wait().ok();
    let log = std::fs::read_to_string(second_dir.path().join("node.log")).unwrap_or_default();
    assert_eq!(done["status"], "completed", "{done}\n{log}");
    // The killed worker had opened the answer message: the survivor removed it and answered
    // under new ids instead of streaming into the old one.
    assert!(
        log.contains("repeating an interrupted action under new ids"),
        "{log}"
    );

    let (_, msgs) = api
        .get(&format!("/threads/{thread}/messages?run_id={run_id}"))
        .await;
    let msgs = msgs["data"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "exactly one answer: {msgs:?}");
    assert_eq!(msgs[0]["content"][0]["text"]["value"], "The answer is 42.");
    assert_eq!(msgs[0]["status"], "completed");
    let (_, steps) = api
        .get(&format!("/threads/{thread}/runs/{run_id}/steps?order=asc"))
        .await;
    let steps = steps["data"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s["type"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("tool_calls", "completed"),
            ("message_creation", "completed")
        ]
    );
    assert_eq!(
        steps[0]["step_details"]["tool_calls"][0]["function"]["output"],
        "42"
    );
    assert_eq!(
        llm.requests().len(),
        3,
        "only the interrupted call was repeated"
    );
}

/// A worker process with the stand-in interpreter installed at `install`, once its
/// code_interpreter is ready.
async fn interpreter_worker(
    api: &TestApp,
    llm: &FakeLlm,
    dir: &std::path::Path,
    install: &str,
) -> std::process::Child {
    let child = spawn_node_process(
        api,
        llm,
        dir,
        &["worker", "--code-interpreter-dir", install],
    );
    for _ in 0..400 {
        let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
        if log.contains("code_interpreter is ready") {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker's code_interpreter did not become ready");
}

/// A code_interpreter session outlives its worker: the snapshot taken after a cell, before
/// its step was recorded, is in the shared object store, so when the worker is killed
/// (SIGKILL) the thread's next run on another worker process finds the cell's state. (The
/// stand-in interpreter: `s C` keeps a byte in linear memory, `r` prints it.)
#[tokio::test]
async fn a_code_interpreter_session_survives_its_worker_being_killed() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool("code_interpreter", r#"{"code": "s Z"}"#));
    // The answer is slow: the worker is killed while it streams, after the cell.
    llm.push(Reply::text("Kept.").chunk_delay(Duration::from_millis(800)));
    llm.push(Reply::text("Kept."));
    llm.push(Reply::tool("code_interpreter", r#"{"code": "r"}"#));
    llm.push(Reply::text("It was Z."));
    let api = TestApp::spawn_distributed(&llm, |s| s.runs.worker = false).await;
    let install = tempfile::tempdir().unwrap();
    assistants_core::interpreter::testing::install_stand_in(install.path());
    let install = install.path().to_str().unwrap().to_string();
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = interpreter_worker(&api, &llm, first_dir.path(), &install).await;
    let (asst, thread) = setup(&api, json!([{"type": "code_interpreter"}])).await;
    let (_, run) = api
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    let mut streaming = false;
    for _ in 0..600 {
        let (_, msgs) = api
            .get(&format!("/threads/{thread}/messages?run_id={run_id}"))
            .await;
        if msgs["data"][0]["status"] == "in_progress" {
            streaming = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(streaming, "the answer after the cell was opened");
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();

    let second_dir = tempfile::tempdir().unwrap();
    let mut second = interpreter_worker(&api, &llm, second_dir.path(), &install).await;
    let done = api.wait_run(&thread, &run_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, run) = api
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let done = api.wait_run(&thread, run["id"].as_str().unwrap()).await;
    second.kill().ok();
    second.wait().ok();
    let log = std::fs::read_to_string(second_dir.path().join("node.log")).unwrap_or_default();
    assert_eq!(done["status"], "completed", "{done}\n{log}");
    let (_, steps) = api
        .get(&format!(
            "/threads/{thread}/runs/{}/steps?order=asc",
            run["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        steps["data"][0]["step_details"]["tool_calls"][0]["code_interpreter"]["outputs"][0]["logs"],
        "Z",
        "{steps}\n{log}"
    );
}

/// Traces cross processes: the API request that queues a run (a `serve --no-worker` process)
/// and the worker process that drives it export spans of one trace over OTLP/HTTP — the run,
/// its strategy steps and its LLM call are descendants of the request.
#[tokio::test]
async fn a_runs_trace_spans_the_api_node_the_queue_and_the_worker() {
    use std::sync::{Arc, Mutex};
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("traced"));
    // The collector: stores every OTLP/JSON export.
    let exports: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = exports.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::Json<Value>| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body.0);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    // The in-process node only owns the deployment (database, queue); it drives nothing.
    let owner = TestApp::spawn_distributed(&llm, |s| s.runs.worker = false).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let (api_dir, worker_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let otlp = ["--otlp-endpoint", &endpoint, "--otlp-protocol", "http/json"];
    let mut api = spawn_node_process(
        &owner,
        &llm,
        api_dir.path(),
        &[
            &["serve", "--no-worker", "--listen", &listen][..],
            &otlp[..],
        ]
        .concat(),
    );
    let mut worker = spawn_node_process(
        &owner,
        &llm,
        worker_dir.path(),
        &[&["worker"][..], &otlp[..]].concat(),
    );
    let base = format!("http://{listen}/v1");
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = client.post(format!("{base}{path}")).json(&body);
        async move { req.send().await?.json::<Value>().await }
    };
    // Up to a minute, as for the other server processes: a debug binary compiling the
    // built-in plugins on a busy machine has taken longer than ten seconds to listen.
    let mut asst = None;
    for _ in 0..600 {
        match post("/assistants", json!({"model": "m"})).await {
            Ok(a) => {
                asst = Some(a["id"].as_str().unwrap().to_string());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let asst = asst.expect("the API process started");
    let run = post(
        "/threads/runs",
        json!({"assistant_id": asst, "thread": {"messages": [{"role": "user", "content": "hi"}]}}),
    )
    .await
    .unwrap();
    let (thread, run_id) = (
        run["thread_id"].as_str().unwrap(),
        run["id"].as_str().unwrap(),
    );
    // The worker process may still be compiling the built-in plugins (a cold cache of its
    // own, a debug binary, a busy machine): it takes the run once it listens to the queue.
    let run = owner
        .wait_run_within(thread, run_id, Duration::from_secs(120))
        .await;
    assert_eq!(run["status"], "completed", "{run}");

    // SIGTERM flushes the exporters.
    for child in [&mut api, &mut worker] {
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
    }
    for child in [&mut api, &mut worker] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "a node did not exit on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let spans: Vec<Value> = exports
        .lock()
        .unwrap()
        .iter()
        .flat_map(|e| e["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let run_span = spans
        .iter()
        .find(|s| {
            s["name"] == "run"
                && s["attributes"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|kv| kv["key"] == "run_id" && kv["value"]["stringValue"] == run_id)
                })
        })
        .unwrap_or_else(|| panic!("no run span for {run_id} in {spans:#?}"));
    let trace = &run_span["traceId"];
    let in_trace: Vec<&str> = spans
        .iter()
        .filter(|s| &s["traceId"] == trace)
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    for name in ["request", "run", "strategy.step", "llm.chat"] {
        assert!(
            in_trace.contains(&name),
            "{name} missing from the run's trace: {in_trace:?}"
        );
    }
    let request = spans
        .iter()
        .find(|s| &s["traceId"] == trace && s["name"] == "request")
        .unwrap();
    assert_eq!(
        run_span["parentSpanId"], request["spanId"],
        "the worker's run span continues the API request's span"
    );
    // The upstream was told the trace too (W3C traceparent: 00-<trace id>-<span id>-<flags>).
    let trace_id = trace.as_str().unwrap().to_ascii_lowercase();
    let sent = llm.traceparents();
    assert!(
        sent.iter()
            .flatten()
            .any(|tp| tp.split('-').nth(1) == Some(trace_id.as_str())),
        "no LLM request carried the run's trace {trace_id}: {sent:?}"
    );
}

/// A plugin uploaded on one API node serves on every node: another API node that never polls
/// learns of it over the event bus; a run pinned to the first version finishes with it on a
/// worker that started after the replacement (and so loads it from the shared catalog, not
/// from a cache of its own); new runs get the new version; a removal reaches every node.
#[tokio::test]
async fn a_plugin_uploaded_on_one_node_serves_on_every_node_and_pinned_runs_keep_theirs() {
    let llm = FakeLlm::start().await;
    let mut api = TestApp::spawn_distributed(&llm, |s| s.runs.worker = false).await;
    let mut other = api
        .spawn_peer(|s| {
            s.runs.worker = false;
            s.plugins.reload_secs = Some(0);
        })
        .await;
    let mut worker = api.spawn_peer(|s| s.runs.worker = true).await;
    let store = Store::connect(&api.database_url).await.unwrap();
    let (_, admin) = store.create_key_with("ops", Scope::Admin).await.unwrap();
    api.key = admin.clone();
    other.key = admin;

    let (v1, v1_manifest) = test_plugin("reload-v1", "swap");
    let (s, put) = api.put_plugin("swap", v1, &v1_manifest).await;
    assert_eq!(s, 200, "{put}");
    other
        .wait_plugin("swap", |s, p| s == 200 && p["digest"] == put["digest"])
        .await;

    // A run on v1 waits for the client (the worker node drove it)...
    let pause = json!({"type": "function", "function": {"name": "pause", "parameters": {"type": "object", "properties": {}}}});
    let (asst, thread) = setup(&other, json!([pause, {"type": "swap"}])).await;
    llm.push(Reply::tool("pause", "{}"));
    let (_, run) = other
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run1 = run["id"].as_str().unwrap().to_string();
    let waiting = other.wait_run(&thread, &run1).await;
    assert_eq!(waiting["status"], "requires_action", "{waiting}");

    // ...while v2 is uploaded through the other node, and a new worker with a cache of its own
    // replaces the one that knew v1.
    let (v2, v2_manifest) = test_plugin("reload-v2", "swap");
    let (s, put2) = other.put_plugin("swap", v2, &v2_manifest).await;
    assert_eq!(s, 200, "{put2}");
    api.wait_plugin("swap", |_, p| p["digest"] == put2["digest"])
        .await;
    worker.stop().await;
    // Its cache holds the compiled components the test servers share (so it starts quickly)
    // but none of their archive, where v1 would be found.
    let cache = tempfile::tempdir().unwrap();
    let shared = api.settings().plugins.cache_dir.clone().unwrap();
    for entry in std::fs::read_dir(&shared).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::copy(&path, cache.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let cache_dir = cache.path().to_path_buf();
    let _worker2 = api
        .spawn_peer(move |s| {
            s.runs.worker = true;
            s.plugins.cache_dir = Some(cache_dir);
        })
        .await;

    llm.push(Reply::tool("version", "{}"));
    llm.push(Reply::text("done"));
    api.submit_first_output(&thread, &waiting, "ok").await;
    let done = api
        .wait_run_within(&thread, &run1, Duration::from_secs(120))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(api.function_output(&thread, &run1, "version").await, "v1");

    llm.push(Reply::tool("version", "{}"));
    llm.push(Reply::text("done"));
    let run2 = api.run_with(&thread, json!({"assistant_id": asst})).await;
    assert_eq!(run2["status"], "completed", "{run2}");
    let run2 = run2["id"].as_str().unwrap();
    assert_eq!(api.function_output(&thread, run2, "version").await, "v2");

    // Removed on one node, gone from the other.
    let (s, e) = api.delete("/plugins/swap").await;
    assert_eq!(s, 200, "{e}");
    other.wait_plugin("swap", |s, _| s == 404).await;
}

/// A crawl whose worker is killed (SIGKILL) mid-pass is resumed by another worker process
/// once the lease lapses: pages the first stored are not fetched again, the rest are, and
/// every page ends up in the store exactly once.
#[tokio::test]
async fn a_crawl_survives_its_worker_being_killed() {
    use assistants_core::plugins::manifest::Grant;
    use assistants_tests::site::TestSite;
    let site = TestSite::start().await;
    // Slow pages: the pass is still running when its worker dies.
    site.set_delay(Duration::from_millis(700));
    let llm = FakeLlm::start().await;
    let host = site.host.clone();
    // The API node checks crawls against its grant but drives none (no worker role).
    let api = TestApp::spawn_distributed(&llm, move |s| {
        s.runs.worker = false;
        s.plugins.grants.insert(
            "crawler".into(),
            Grant {
                hosts: vec![host],
                allow_private_addresses: true,
                ..Default::default()
            },
        );
    })
    .await;
    // The workers only crawl: a killed one holding a file's ingestion lease would keep that
    // file waiting for the lease (ingestion's own durability is tested apart); the API node
    // ingests.
    let toml = format!(
        "ingest_concurrency = 0\n\
         [plugins.grants.crawler]\nhosts = [\"{}\"]\nallow_private_addresses = true\n\
         [crawl]\ndelay_ms = 0\nlease_secs = 3\n",
        site.host
    );
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_configured_process(&api, &llm, dir.path(), &["worker"], &toml);
    let vs = api.create("/vector_stores", json!({})).await;
    // The operator's command records the crawl (the same grant in its config file); the
    // worker carries it out.
    let cli = |url: &str| {
        std::process::Command::new(server_bin())
            .arg("--config")
            .arg(dir.path().join("node.toml"))
            .args([
                "crawl",
                "--database-url",
                &api.settings().storage.database_url,
            ])
            .args(["--store", &vs, url])
            .output()
            .expect("running assistants crawl")
    };
    let refused = cli("https://example.com/");
    assert!(!refused.status.success(), "an ungranted site is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not among the sites granted"),
        "{refused:?}"
    );
    let made = cli(&format!("{}/docs/", site.url));
    assert!(made.status.success(), "{made:?}");
    let crawl = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(crawl.starts_with("vscrawl_"), "{crawl}");
    let path = format!("/vector_stores/{vs}/crawls/{crawl}");
    // Kill it once it has stored a page or two, mid-pass.
    let mut stored = 0;
    for _ in 0..1200 {
        let (_, c) = api.get(&path).await;
        stored = c["page_counts"]["stored"].as_i64().unwrap_or(0);
        if stored >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored >= 1, "the first worker stored nothing");
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();
    let (_, c) = api.get(&path).await;
    assert_eq!(c["status"], "in_progress", "the pass was mid-flight: {c}");
    assert!(c["page_counts"]["queued"].as_i64().unwrap() > 0, "{c}");
    let root_hits = site.hits("/docs/");

    let second_dir = tempfile::tempdir().unwrap();
    let mut second = spawn_configured_process(&api, &llm, second_dir.path(), &["worker"], &toml);
    let mut done = Value::Null;
    for _ in 0..1200 {
        let (_, c) = api.get(&path).await;
        done = c;
        if done["status"] != "in_progress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.kill().ok();
    second.wait().ok();
    let log = std::fs::read_to_string(second_dir.path().join("node.log")).unwrap_or_default();
    assert_eq!(done["status"], "completed", "{done}\n{log}");
    assert_eq!(done["pass"], 1, "resumed, not restarted");
    // /docs/, guide, deep, moved (via /old), changing, vanishing.
    assert_eq!(done["page_counts"]["stored"], 6, "{done}");
    assert_eq!(
        site.hits("/docs/"),
        root_hits,
        "a stored page is not fetched again"
    );
    let (_, files) = api
        .get(&format!("/vector_stores/{vs}/files?limit=100"))
        .await;
    let mut urls: Vec<&str> = files["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["attributes"]["url"].as_str().unwrap())
        .collect();
    urls.sort();
    let before = urls.len();
    urls.dedup();
    assert_eq!((before, urls.len()), (6, 6), "each page once: {urls:?}");
}
