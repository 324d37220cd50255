//! Test support: [`TestApp`] starts the real server in-process on `127.0.0.1:0` and drives it
//! over HTTP, like an SDK would.
//!
//! The backend comes from the environment so one suite covers every deployment:
//! - default: embedded SQLite and local files in a temporary directory;
//! - `ASSISTANTS_TEST_DATABASE_URL=postgres://…/db`: each app gets its own fresh database
//!   created next to `db` (and dropped afterwards), so tests stay isolated and parallel;
//! - `ASSISTANTS_TEST_OBJECT_STORE_URL=s3://bucket`: file bytes go to that S3-compatible store
//!   (endpoint and keys from the usual `AWS_*` variables), each app under its own prefix.

pub mod bench;
pub mod fake_llm;
pub mod fixtures;
pub mod mcp;
pub mod server_process;
pub mod site;

use std::time::Duration;

use assistants_host::config::Settings;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

pub use serde_json::json;

pub struct TestApp {
    /// e.g. `http://127.0.0.1:41234/v1`
    pub base: String,
    /// The server root without `/v1`.
    pub root: String,
    pub client: reqwest::Client,
    /// Bearer token sent with every request (any value works while no key exists).
    pub key: String,
    pub database_url: String,
    settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg_drop: Option<(String, String)>,
    /// A RabbitMQ queue (URL, name) this app's cluster owns, deleted when it is dropped.
    queue_drop: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// Where the distributed tests find their services: the environment, else the machine's
/// standard local ports.
pub fn distributed_urls() -> (String, String, String) {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    (
        env(
            "ASSISTANTS_TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        ),
        env(
            "ASSISTANTS_TEST_QUEUE_URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        ),
        env("ASSISTANTS_TEST_EVENTS_URL", "redis://127.0.0.1:6379"),
    )
}

fn random_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server whose runs call `llm`, with settings adjusted by `tweak`.
    pub async fn spawn_with_llm(
        llm: &fake_llm::FakeLlm,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let url = llm.url.clone();
        Self::spawn_with(move |s| {
            s.llm.base_url = url;
            // Keep retry back-off short in tests; the retry tests set their own count.
            s.llm.max_retries = 1;
            tweak(s)
        })
        .await
    }

    /// The first node of a distributed deployment: a fresh PostgreSQL database, its own
    /// RabbitMQ queue and Redis for events (see [`distributed_urls`]); runs call `llm`. Add
    /// nodes with [`TestApp::spawn_peer`].
    pub async fn spawn_distributed(
        llm: &fake_llm::FakeLlm,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let (pg, amqp, redis) = distributed_urls();
        let (admin, name) = create_pg_database(&pg).await;
        let db = format!("{}/{}", pg.rsplit_once('/').unwrap().0, name);
        let queue = format!("assistants-test-{}", random_suffix());
        let (amqp2, queue2) = (amqp.clone(), queue.clone());
        let mut app = Self::spawn_with_llm(llm, move |s| {
            s.storage.database_url = db;
            s.runs.queue_url = Some(amqp2);
            s.runs.queue_name = queue2;
            s.runs.events_url = Some(redis);
            tweak(s)
        })
        .await;
        app.pg_drop = Some((admin, name));
        app.queue_drop = Some((amqp, queue));
        app
    }

    /// Another node of this app's deployment: same database, blobs, queue and event bus, its
    /// own process state and port; `tweak` sets its role (e.g. `s.runs.worker = false`).
    pub async fn spawn_peer(&self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = self.settings.clone();
        if settings.storage.object_store_url.is_none() {
            settings.storage.object_store_url = Some(format!(
                "file://{}",
                self.settings.storage.data_dir.join("files").display()
            ));
        }
        settings.storage.data_dir = dir.path().to_path_buf();
        tweak(&mut settings);
        Self::start(settings, dir).await
    }

    /// Starts a server with settings adjusted by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::for_data_dir(dir.path().to_path_buf());
        // Many test servers run at once; a small instance pool keeps their reserved address
        // space modest.
        settings.plugins.instances = Some(16);
        // Compiled components are cached by content hash; sharing the cache across test servers
        // saves compiling the same built-in plugins for each one.
        settings.plugins.cache_dir =
            Some(std::env::temp_dir().join("assistants-test-plugin-cache"));
        let mut pg_drop = None;
        if let Ok(url) = std::env::var("ASSISTANTS_TEST_DATABASE_URL") {
            let (admin, name) = create_pg_database(&url).await;
            settings.storage.database_url = format!("{}/{}", url.rsplit_once('/').unwrap().0, name);
            pg_drop = Some((admin, name));
        }
        if let Ok(url) = std::env::var("ASSISTANTS_TEST_OBJECT_STORE_URL") {
            settings.storage.object_store_url =
                Some(format!("{}/{}", url.trim_end_matches('/'), random_suffix()));
        }
        tweak(&mut settings);
        let mut app = Self::start(settings, dir).await;
        app.pg_drop = pg_drop;
        app
    }

    async fn start(settings: Settings, dir: tempfile::TempDir) -> TestApp {
        // `ASSISTANTS_TEST_LOG=debug cargo test …` shows the server's log for a failing test.
        if let Ok(filter) = std::env::var("ASSISTANTS_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        // On the settings' address (loopback unless a test says otherwise), any free port.
        let listener = tokio::net::TcpListener::bind((settings.listen.ip(), 0))
            .await
            .expect("bind");
        let mut addr = listener.local_addr().unwrap();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let database_url = settings.storage.database_url.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(assistants_host::start(settings.clone(), listener, async {
            let _ = rx.await;
        }));
        let root = format!("http://{addr}");
        let mut app = TestApp {
            base: format!("{root}/v1"),
            root,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            key: "test".into(),
            database_url,
            settings,
            shutdown: Some(tx),
            server: Some(server),
            pg_drop: None,
            queue_drop: None,
            _dir: dir,
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&mut self) {
        // Generous: dozens of test servers start at once on a two-core machine.
        for _ in 0..1200 {
            if let Ok(r) = self
                .client
                .get(format!("{}/healthz", self.root))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            if self.server.as_ref().is_some_and(|h| h.is_finished()) {
                let result = self.server.take().unwrap().await;
                panic!("the server stopped while starting: {result:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become ready within 30 s");
    }

    /// Stops the server and starts a new one on the same data, as after a restart.
    pub async fn restart(mut self) -> TestApp {
        let settings = self.settings.clone();
        self.stop().await;
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        let mut app = Self::start(settings, dir).await;
        app.pg_drop = self.pg_drop.take();
        app.queue_drop = self.queue_drop.take();
        app
    }

    /// Signals the server to shut down (as SIGTERM does) without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn stop(&mut self) {
        self.begin_stop();
        if let Some(h) = self.server.take() {
            h.await
                .expect("server task")
                .expect("server exited cleanly");
        }
    }

    /// The settings the server runs with (to open its store or blobs from a test).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A janitor over this app's storage, to run a sweep when a test says (the app's own
    /// runs every minute).
    pub async fn janitor(&self) -> assistants_host::janitor::Janitor {
        use assistants_core::interpreter::service::CodeInterpreter;
        let s = &self.settings;
        let store = assistants_core::store::Store::connect(&s.storage.database_url)
            .await
            .unwrap();
        let blobs = assistants_core::blobs::Blobs::open(
            s.storage.object_store_url.as_deref(),
            &s.storage.data_dir,
        )
        .unwrap();
        let interpreter = CodeInterpreter::unavailable(
            s.code_interpreter.clone(),
            "the test's janitor runs no cells",
            Some(blobs.clone()),
        );
        assistants_host::janitor::Janitor {
            store,
            blobs,
            interpreter,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.bearer_auth(&self.key)
            .header("OpenAI-Beta", "assistants=v2")
    }

    async fn decode(resp: reqwest::Response) -> (StatusCode, Value) {
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::decode(
            self.auth(self.client.get(self.url(path)))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Self::decode(
            self.auth(self.client.post(self.url(path)))
                .json(&body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// POSTs with `stream: true` semantics and collects the whole SSE response as
    /// (event, data) pairs; `data` is JSON, or the string `[DONE]`.
    pub async fn stream(&self, path: &str, body: Value) -> (StatusCode, Vec<(String, Value)>) {
        let resp = self
            .auth(self.client.post(self.url(path)))
            .json(&body)
            .send()
            .await
            .expect("POST");
        sse_or_json(resp).await
    }

    /// GETs an SSE response and collects it as (event, data) pairs (a JSON answer is one
    /// `("json", body)` pair).
    pub async fn get_stream(&self, path: &str) -> (StatusCode, Vec<(String, Value)>) {
        let resp = self
            .auth(self.client.get(self.url(path)))
            .send()
            .await
            .expect("GET");
        sse_or_json(resp).await
    }

    /// Every tool call of a run's steps, oldest step first.
    pub async fn tool_calls(&self, thread: &str, run: &str) -> Vec<Value> {
        let (_, steps) = self
            .get(&format!("/threads/{thread}/runs/{run}/steps?order=asc"))
            .await;
        steps["data"]
            .as_array()
            .expect("a list of steps")
            .iter()
            .flat_map(|s| {
                s["step_details"]["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Answers the first call a run waiting in `requires_action` asks for with `output`.
    pub async fn submit_first_output(&self, thread: &str, waiting: &Value, output: &str) {
        let run = waiting["id"].as_str().expect("a run");
        let call = &waiting["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"];
        let (s, e) = self
            .post(
                &format!("/threads/{thread}/runs/{run}/submit_tool_outputs"),
                json!({"tool_outputs": [{"tool_call_id": call, "output": output}]}),
            )
            .await;
        assert_eq!(s, 200, "{e}");
    }

    /// The output of the run's call of the function (or plugin tool) `name`.
    pub async fn function_output(&self, thread: &str, run: &str, name: &str) -> String {
        let calls = self.tool_calls(thread, run).await;
        let call = calls
            .iter()
            .find(|c| c["function"]["name"] == name)
            .unwrap_or_else(|| panic!("the run did not call {name}: {calls:?}"));
        call["function"]["output"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Starts a run of `assistant` on `thread` and polls it to its end: (run id, final run).
    pub async fn run_to_end(&self, thread: &str, assistant: &str) -> (String, Value) {
        let done = self
            .run_with(thread, json!({"assistant_id": assistant}))
            .await;
        (done["id"].as_str().expect("a run id").to_string(), done)
    }

    /// Starts a run on `thread` with the request `body` and polls it to its end (see
    /// [`TestApp::wait_run`]): the final run.
    pub async fn run_with(&self, thread: &str, body: Value) -> Value {
        let run = self.create(&format!("/threads/{thread}/runs"), body).await;
        self.wait_run(thread, &run).await
    }

    /// Polls a run until it leaves queued/in_progress/cancelling (30 s at most).
    pub async fn wait_run(&self, thread: &str, run: &str) -> Value {
        self.wait_run_within(thread, run, Duration::from_secs(30))
            .await
    }

    /// Polls a run until it leaves queued/in_progress/cancelling, for at most `limit` (runs
    /// that do real work, such as the code interpreter's first pandas import on a busy machine).
    pub async fn wait_run_within(&self, thread: &str, run: &str, limit: Duration) -> Value {
        let mut last = Value::Null;
        for _ in 0..(limit.as_millis() / 50).max(1) {
            let (s, v) = self.get(&format!("/threads/{thread}/runs/{run}")).await;
            assert_eq!(s, 200, "{v}");
            if !matches!(
                v["status"].as_str(),
                Some("queued" | "in_progress" | "cancelling")
            ) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run} did not settle: {last}");
    }

    /// A file's bytes (`GET /files/{id}/content`), which must be there.
    pub async fn file_content(&self, file_id: &str) -> Vec<u8> {
        let r = self
            .auth(
                self.client
                    .get(self.url(&format!("/files/{file_id}/content"))),
            )
            .send()
            .await
            .expect("the content request");
        assert_eq!(r.status(), 200, "content of {file_id}");
        r.bytes().await.expect("the content").to_vec()
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let rb = self
            .auth(self.client.post(self.url(path)))
            .header("content-type", "application/json");
        Self::decode(rb.body(body).send().await.expect("POST")).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        Self::decode(
            self.auth(self.client.delete(self.url(path)))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    /// `PUT /plugins/{id}`: uploads a component and its manifest (with this app's key).
    pub async fn put_plugin(&self, id: &str, wasm: Vec<u8>, manifest: &str) -> (StatusCode, Value) {
        let form = reqwest::multipart::Form::new()
            .text("manifest", manifest.to_string())
            .part(
                "component",
                reqwest::multipart::Part::bytes(wasm).file_name(format!("{id}.wasm")),
            );
        Self::decode(
            self.client
                .put(self.url(&format!("/plugins/{id}")))
                .bearer_auth(&self.key)
                .multipart(form)
                .send()
                .await
                .expect("PUT plugin"),
        )
        .await
    }

    /// `GET /plugins/{id}` until `done(status, plugin)`, within 30 s.
    pub async fn wait_plugin(&self, id: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        for _ in 0..300 {
            let (status, plugin) = self.get(&format!("/plugins/{id}")).await;
            if done(status.as_u16(), &plugin) {
                return plugin;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("plugin {id} did not change as expected");
    }

    /// `POST /files` as the SDKs send it (multipart, `purpose` first).
    pub async fn upload(
        &self,
        filename: &str,
        bytes: Vec<u8>,
        purpose: &str,
    ) -> (StatusCode, Value) {
        let form = reqwest::multipart::Form::new()
            .text("purpose", purpose.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string()),
            );
        Self::decode(
            self.client
                .post(self.url("/files"))
                .bearer_auth(&self.key)
                .multipart(form)
                .send()
                .await
                .expect("upload"),
        )
        .await
    }

    /// Uploads and returns the new file id, asserting success.
    pub async fn upload_ok(&self, filename: &str, bytes: impl Into<Vec<u8>>) -> String {
        let (s, v) = self.upload(filename, bytes.into(), "assistants").await;
        assert_eq!(s, 200, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Creates an object and returns its id, asserting success.
    pub async fn create(&self, path: &str, body: Value) -> String {
        let (s, v) = self.post(path, body).await;
        assert_eq!(s, 200, "POST {path}: {v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Polls a vector-store file until it leaves `in_progress`; returns it.
    pub async fn wait_vs_file(&self, vs: &str, file: &str) -> Value {
        for _ in 0..600 {
            let (s, v) = self.get(&format!("/vector_stores/{vs}/files/{file}")).await;
            assert_eq!(s, 200, "{v}");
            if v["status"] != "in_progress" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("vector store file {file} stayed in_progress");
    }

    /// Polls a vector store until no file is in progress; returns it.
    pub async fn wait_vs(&self, vs: &str) -> Value {
        for _ in 0..600 {
            let (s, v) = self.get(&format!("/vector_stores/{vs}")).await;
            assert_eq!(s, 200, "{v}");
            if v["file_counts"]["in_progress"] == 0 {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("vector store {vs} stayed in_progress");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let pg = self.pg_drop.take();
        let queue = self.queue_drop.take();
        if pg.is_none() && queue.is_none() {
            return;
        }
        // Best effort: a leftover test database or queue is harmless, and Drop cannot await.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some((admin, name)) = pg {
                    let _ = assistants_core::store::testing::admin_execute(
                        &admin,
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    )
                    .await;
                }
                if let Some((url, name)) = queue {
                    let _ =
                        assistants_core::bus::distributed::RabbitQueue::delete(&url, &name).await;
                }
            });
        })
        .join()
        .ok();
    }
}

async fn create_pg_database(url: &str) -> (String, String) {
    let name = format!("assistants_test_{}", random_suffix());
    assistants_core::store::testing::admin_execute(url, &format!("CREATE DATABASE {name}"))
        .await
        .expect("creating a test database (is PostgreSQL running?)");
    (url.to_string(), name)
}

/// Asserts the OpenAI error envelope and returns the error object.
#[track_caller]
pub fn assert_error(v: &Value) -> &Value {
    let e = &v["error"];
    assert!(e["message"].is_string(), "no error message in {v}");
    assert!(e["type"].is_string(), "no error type in {v}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "param/code must be present: {v}"
    );
    e
}

/// Parses an SSE body into (event, data) pairs, checking the framing SDKs rely on: every
/// event has a name and exactly one `data:` line.
/// An answer that is an SSE stream as (event, data) pairs, or JSON as one `("json", body)`.
async fn sse_or_json(resp: reqwest::Response) -> (StatusCode, Vec<(String, Value)>) {
    let status = resp.status();
    let is_sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    let text = resp.text().await.expect("body");
    if !is_sse {
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return (status, vec![("json".into(), v)]);
    }
    (status, parse_sse(&text))
}

pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for frame in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let mut event = None;
        let mut data = Vec::new();
        for line in frame.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push(d.to_string());
            } else if line.starts_with(':') {
                continue;
            } else {
                panic!("unexpected SSE line {line:?} in {frame:?}");
            }
        }
        if event.is_none() && data.is_empty() {
            continue;
        }
        assert_eq!(data.len(), 1, "one data line per event: {frame:?}");
        let data = &data[0];
        let v = serde_json::from_str(data).unwrap_or(Value::String(data.clone()));
        out.push((event.expect("every event is named"), v));
    }
    out
}
