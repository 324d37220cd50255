//! A scripted OpenAI-compatible chat-completions server for run tests.
//!
//! Tests push [`Reply`]s; each request to `/v1/chat/completions` takes the next one (or, when
//! the script is empty, echoes the last user message). Long-running benchmarks instead give a
//! responder that answers each request from its body, and nothing is recorded
//! ([`FakeLlm::with_responder`]). With `"stream": true` replies stream as
//! real upstreams do — content in chunks, tool calls in fragments, a usage chunk, `[DONE]` —
//! otherwise they come whole; either way with optional delays and HTTP errors. A benchmark can
//! also hold every answer until it releases them all at once ([`FakeLlm::hold`]). Every request
//! body is recorded so tests can assert what the run sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// Content, streamed one chunk per item.
    pub chunks: Vec<String>,
    /// Reasoning, streamed one chunk per item before the content.
    pub reasoning: Vec<String>,
    /// Tool calls (name, arguments), each streamed in two fragments.
    pub tool_calls: Vec<(String, String)>,
    pub finish_reason: Option<String>,
    /// (prompt, completion) tokens reported in the usage chunk.
    pub usage: Option<(u64, u64)>,
    /// Answer with this HTTP status and an error body instead.
    pub status: Option<u16>,
    /// Wait before answering.
    pub delay: Duration,
    /// Wait between chunks.
    pub chunk_delay: Duration,
}

impl Reply {
    pub fn text(s: &str) -> Reply {
        // Split into a few chunks, as a real stream would.
        let words: Vec<String> = s.split_inclusive(' ').map(str::to_string).collect();
        Reply {
            chunks: words,
            usage: Some((20, 10)),
            ..Default::default()
        }
    }

    pub fn tool(name: &str, args: &str) -> Reply {
        Reply {
            tool_calls: vec![(name.into(), args.into())],
            usage: Some((30, 15)),
            ..Default::default()
        }
    }

    pub fn error(status: u16) -> Reply {
        Reply {
            status: Some(status),
            ..Default::default()
        }
    }

    /// Streams `s` as reasoning (`reasoning_content`), word by word, before the answer.
    pub fn reasoning(mut self, s: &str) -> Reply {
        self.reasoning = s.split_inclusive(' ').map(str::to_string).collect();
        self
    }

    pub fn and_tool(mut self, name: &str, args: &str) -> Reply {
        self.tool_calls.push((name.into(), args.into()));
        self
    }

    pub fn usage(mut self, prompt: u64, completion: u64) -> Reply {
        self.usage = Some((prompt, completion));
        self
    }

    pub fn finish(mut self, reason: &str) -> Reply {
        self.finish_reason = Some(reason.into());
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    pub fn chunk_delay(mut self, d: Duration) -> Reply {
        self.chunk_delay = d;
        self
    }
}

/// Answers a request from its body (the soak benchmark's upstream).
pub type Responder = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    /// When set, answers every request and nothing is recorded.
    responder: Option<Responder>,
    requests: Vec<Value>,
    /// When each streamed answer started going out (for latency benchmarks).
    answered_at: Vec<std::time::Instant>,
    /// Bodies of `/embeddings` requests.
    embedding_requests: Vec<Value>,
    /// How many of the next `/embeddings` requests are refused (400, which is not retried).
    failing_embeddings: usize,
    /// The `traceparent` header of each chat request (None when absent).
    traceparents: Vec<Option<String>>,
    /// While closed, chat requests wait here before answering ([`FakeLlm::hold`]).
    gate: Option<tokio::sync::watch::Receiver<bool>>,
}

#[derive(Clone)]
pub struct FakeLlm {
    /// Base URL to configure (`…/v1`).
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    /// Chat requests waiting at the gate, and the gate's opener.
    held: Arc<std::sync::atomic::AtomicUsize>,
    opener: Arc<Mutex<Option<tokio::sync::watch::Sender<bool>>>>,
}

impl FakeLlm {
    pub async fn start() -> FakeLlm {
        Self::serve(Inner::default()).await
    }

    /// An upstream that answers every request with `responder` and records nothing, so it
    /// runs for as long as a benchmark needs in constant memory.
    pub async fn with_responder(responder: Responder) -> FakeLlm {
        Self::serve(Inner {
            responder: Some(responder),
            ..Default::default()
        })
        .await
    }

    async fn serve(inner: Inner) -> FakeLlm {
        let inner = Arc::new(Mutex::new(inner));
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/embeddings", post(embeddings))
            // Real upstreams take prompts of many megabytes (long contexts).
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .with_state((inner.clone(), held.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm {
            url,
            inner,
            held,
            opener: Default::default(),
        }
    }

    /// From now on, chat requests wait before answering until [`FakeLlm::release`], so a
    /// benchmark can have every run in the upstream at once before timing them.
    pub fn hold(&self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.inner.lock().unwrap().gate = Some(rx);
        *self.opener.lock().unwrap() = Some(tx);
    }

    /// Chat requests waiting at the gate now.
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets every held request (and every later one) answer.
    pub fn release(&self) {
        self.inner.lock().unwrap().gate = None;
        if let Some(tx) = self.opener.lock().unwrap().take() {
            let _ = tx.send(true);
        }
    }

    pub fn push(&self, r: Reply) {
        self.inner.lock().unwrap().script.push_back(r);
    }

    /// When each streamed answer started going out, in request order.
    pub fn answered_at(&self) -> Vec<std::time::Instant> {
        self.inner.lock().unwrap().answered_at.clone()
    }

    /// Every `/embeddings` request body received so far.
    pub fn embedding_requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().embedding_requests.clone()
    }

    /// Refuses the next `n` `/embeddings` requests with a 400.
    pub fn fail_embeddings(&self, n: usize) {
        self.inner.lock().unwrap().failing_embeddings = n;
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The `traceparent` header of each chat request, in order.
    pub fn traceparents(&self) -> Vec<Option<String>> {
        self.inner.lock().unwrap().traceparents.clone()
    }

    /// The text of the last message the model was sent (a tool's output, after a tool call).
    pub fn last_message_text(&self) -> String {
        self.last_request()["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    pub fn last_request(&self) -> Value {
        self.requests().pop().expect("the upstream got no request")
    }
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

type Shared = (Arc<Mutex<Inner>>, Arc<std::sync::atomic::AtomicUsize>);

async fn completions(
    State((inner, held)): State<Shared>,
    headers: axum::http::HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    let gate = inner.lock().unwrap().gate.clone();
    if let Some(mut gate) = gate {
        use std::sync::atomic::Ordering;
        held.fetch_add(1, Ordering::SeqCst);
        let _ = gate.wait_for(|open| *open).await;
        held.fetch_sub(1, Ordering::SeqCst);
    }
    let responder = inner.lock().unwrap().responder.clone();
    let reply = if let Some(respond) = responder {
        Some(respond(&body))
    } else {
        let mut g = inner.lock().unwrap();
        g.requests.push(body.clone());
        g.traceparents.push(
            headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        );
        g.script.pop_front()
    };
    let reply = reply.unwrap_or_else(|| {
        let last_user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        Reply::text(&format!("echo: {last_user}"))
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some(status) = reply.status {
        let code = axum::http::StatusCode::from_u16(status).unwrap();
        return (code, axum::Json(json!({"error": {"message": format!("scripted {status}"), "type": "server_error", "param": null, "code": null}}))).into_response();
    }
    let model = body["model"].as_str().unwrap_or("").to_string();
    let finish = reply.finish_reason.clone().unwrap_or_else(|| {
        if reply.tool_calls.is_empty() {
            "stop".into()
        } else {
            "tool_calls".into()
        }
    });
    if body["stream"] != true {
        return axum::Json(whole(&model, &reply, &finish)).into_response();
    }
    let mut events = vec![chunk(
        &model,
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    for r in &reply.reasoning {
        events.push(chunk(&model, json!({"reasoning_content": r}), None));
    }
    for c in &reply.chunks {
        events.push(chunk(&model, json!({"content": c}), None));
    }
    for (i, (name, args)) in reply.tool_calls.iter().enumerate() {
        let mid = args.len() / 2;
        let mid = (0..=mid)
            .rev()
            .find(|&m| args.is_char_boundary(m))
            .unwrap_or(0);
        events.push(chunk(&model, json!({"tool_calls": [{"index": i, "id": format!("up_{i}"), "type": "function", "function": {"name": name, "arguments": &args[..mid]}}]}), None));
        events.push(chunk(
            &model,
            json!({"tool_calls": [{"index": i, "function": {"arguments": &args[mid..]}}]}),
            None,
        ));
    }
    events.push(chunk(&model, json!({}), Some(&finish)));
    if let Some((p, c)) = reply.usage {
        events.push(json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}));
    }
    let delay = reply.chunk_delay;
    let stream = futures::stream::iter(events.into_iter().map(Some).chain([None])).then(
        move |e| async move {
            // tokio's sleep(0) still waits for the next timer tick (about 1 ms): skip it, or
            // an "instant" upstream would add a millisecond per chunk.
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(match e {
                Some(v) => Event::default().data(v.to_string()),
                None => Event::default().data("[DONE]"),
            })
        },
    );
    {
        let mut g = inner.lock().unwrap();
        if g.responder.is_none() {
            g.answered_at.push(std::time::Instant::now());
        }
    }
    Sse::new(stream).into_response()
}

/// Words the fake embedding model treats as one meaning (so vector search can find what
/// lexical search cannot).
const SYNONYMS: &[(&str, &str)] = &[("automobile", "car"), ("vehicle", "car"), ("cars", "car")];

/// A deterministic 256-dimension embedding: each word (after synonyms) adds to one dimension.
pub fn fake_embedding(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; 256];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let w = word.to_lowercase();
        let w = SYNONYMS
            .iter()
            .find(|(from, _)| *from == w)
            .map(|(_, to)| to.to_string())
            .unwrap_or(w);
        let h = w
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        v[(h % 256) as usize] += 1.0;
    }
    v
}

async fn embeddings(State((inner, _)): State<Shared>, body: axum::Json<Value>) -> Response {
    let body = body.0;
    {
        let mut inner = inner.lock().unwrap();
        inner.embedding_requests.push(body.clone());
        if inner.failing_embeddings > 0 {
            inner.failing_embeddings -= 1;
            let error = json!({"error": {"message": "refused for the test", "type": "invalid_request_error", "param": null, "code": null}});
            return (axum::http::StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": fake_embedding(t)}))
        .collect();
    axum::Json(json!({
        "object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": inputs.len(), "total_tokens": inputs.len()},
    }))
    .into_response()
}

/// A non-streamed completion of `reply`.
fn whole(model: &str, reply: &Reply, finish: &str) -> Value {
    let mut message = json!({"role": "assistant", "content": reply.chunks.concat()});
    if !reply.tool_calls.is_empty() {
        message["tool_calls"] = reply
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| {
                json!({"id": format!("up_{i}"), "type": "function",
                       "function": {"name": name, "arguments": args}})
            })
            .collect();
    }
    let (p, c) = reply.usage.unwrap_or((0, 0));
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
    })
}

use futures::StreamExt as _;
