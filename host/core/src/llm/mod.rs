//! LLM upstreams: OpenAI-compatible chat completions through async-openai, streamed.
//!
//! A model is routed by the config file's `[[llm.routes]]` (exact model name, then prefix) or
//! to the default upstream. Requests and chunks are plain JSON (async-openai's `byot`), so
//! servers that add or omit fields (vLLM, Ollama, llama.cpp) work, and every run parameter
//! reaches the upstream exactly as the run asked. A call that fails with 429 or 5xx before
//! anything streamed is retried with exponential backoff; once tokens have reached clients it
//! is not, since a retry would stream them twice.

pub mod calls;
mod embeddings;

pub use embeddings::{Embeddings, UpstreamEmbeddings};

use std::pin::Pin;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use crate::llm::calls::Fragment;

/// Where chat completions and embeddings go: the default upstream and per-model routes.
#[derive(Clone)]
pub struct LlmSettings {
    pub base_url: String,
    pub api_key: Option<String>,
    pub timeout: std::time::Duration,
    pub max_retries: u32,
    pub routes: Vec<LlmRoute>,
    pub embedding_model: Option<String>,
}

impl std::fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("routes", &self.routes)
            .field("embedding_model", &self.embedding_model)
            .finish()
    }
}

/// One upstream route (see [`LlmFileConfig::routes`]).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmRoute {
    pub model: Option<String>,
    pub prefix: Option<String>,
    pub base_url: String,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for LlmRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmRoute")
            .field("model", &self.model)
            .field("prefix", &self.prefix)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// One parsed chunk of a streamed completion.
#[derive(Debug, Default)]
pub struct Chunk {
    pub content: String,
    /// Reasoning text, from upstreams that stream it beside the answer (`reasoning_content`,
    /// or `reasoning`, as vLLM, DeepSeek and OpenRouter send it).
    pub reasoning: String,
    pub tool_calls: Vec<Fragment>,
    pub finish_reason: Option<String>,
    pub usage: Option<(u64, u64)>,
}

/// Why an LLM call failed, mapped to the run's `last_error.code`.
#[derive(Debug, Clone)]
pub enum LlmError {
    RateLimited(String),
    Server(String),
}

impl LlmError {
    pub fn code(&self) -> &'static str {
        match self {
            LlmError::RateLimited(_) => "rate_limit_exceeded",
            LlmError::Server(_) => "server_error",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            LlmError::RateLimited(m) | LlmError::Server(m) => m,
        }
    }
}

struct Upstream {
    client: async_openai::Client<TracedConfig>,
    base_url: String,
}

/// async-openai's OpenAI configuration, plus the current span's W3C `traceparent` on every
/// request: an upstream that traces (a gateway, an inference server behind a collector)
/// continues the run's trace. Headers are built per request in the calling task, inside the
/// `llm.chat` span.
#[derive(Clone)]
struct TracedConfig(OpenAIConfig);

impl async_openai::config::Config for TracedConfig {
    fn headers(&self) -> reqwest::header::HeaderMap {
        let mut headers = self.0.headers();
        if let Some(tp) = crate::obs::telemetry::current_traceparent() {
            if let Ok(v) = reqwest::header::HeaderValue::from_str(&tp) {
                headers.insert("traceparent", v);
            }
        }
        headers
    }

    fn url(&self, path: &str) -> String {
        self.0.url(path)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        self.0.query()
    }

    fn api_base(&self) -> &str {
        self.0.api_base()
    }

    fn api_key(&self) -> &secrecy::SecretString {
        self.0.api_key()
    }
}

impl Upstream {
    fn new(base_url: &str, api_key: Option<&str>, timeout: Duration) -> anyhow::Result<Upstream> {
        let mut config = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        // async-openai sends `Authorization: Bearer` only with a key; local servers need none.
        config = config.with_api_key(api_key.unwrap_or(""));
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .build()?;
        // Non-streamed calls (embeddings) retry 429/5xx inside async-openai; bound how long.
        let backoff = backoff::ExponentialBackoff {
            max_elapsed_time: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        Ok(Upstream {
            client: async_openai::Client::with_config(TracedConfig(config))
                .with_http_client(http)
                .with_backoff(backoff),
            base_url: base_url.to_string(),
        })
    }
}

enum Match {
    Model(String),
    Prefix(String),
}

pub struct Llm {
    default: Upstream,
    routes: Vec<(Match, Upstream)>,
    timeout: Duration,
    max_retries: u32,
}

pub(crate) type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, LlmError>> + Send>>;

#[derive(Deserialize)]
struct RawChunk {
    #[serde(default)]
    choices: Vec<RawChoice>,
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct RawChoice {
    #[serde(default)]
    delta: Option<RawDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawDelta {
    content: Option<String>,
    // Read loosely: a field of another shape from some upstream must not fail the chunk.
    #[serde(default)]
    reasoning_content: Option<serde_json::Value>,
    #[serde(default)]
    reasoning: Option<serde_json::Value>,
    #[serde(default)]
    tool_calls: Option<Vec<RawToolCall>>,
}

#[derive(Deserialize)]
struct RawToolCall {
    #[serde(default)]
    index: Option<u32>,
    id: Option<String>,
    function: Option<RawFunction>,
}

#[derive(Deserialize)]
struct RawFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<RawChunk> for Chunk {
    fn from(raw: RawChunk) -> Chunk {
        let mut chunk = Chunk {
            usage: raw.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            ..Default::default()
        };
        if let Some(choice) = raw.choices.into_iter().next() {
            chunk.finish_reason = choice.finish_reason;
            let delta = choice.delta.unwrap_or_default();
            chunk.content = delta.content.unwrap_or_default();
            chunk.reasoning = [delta.reasoning_content, delta.reasoning]
                .into_iter()
                .flatten()
                .find_map(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            for (i, tc) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let f = tc.function;
                chunk.tool_calls.push(Fragment {
                    index: tc.index.unwrap_or(i as u32),
                    id: tc.id,
                    name: f.as_ref().and_then(|f| f.name.clone()),
                    arguments: f.and_then(|f| f.arguments),
                });
            }
        }
        chunk
    }
}

/// The HTTP status in a stream error (reqwest-eventsource reports "Invalid status code: 429 …").
fn status_of(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message.get(at..at + 3)?.parse().ok()
}

fn classify(e: OpenAIError, base_url: &str) -> (LlmError, bool) {
    let text = e.to_string();
    match status_of(&text) {
        Some(429) => (
            LlmError::RateLimited(format!(
                "the model upstream is rate limiting requests ({text})"
            )),
            true,
        ),
        Some(s) if s >= 500 => (
            LlmError::Server(format!("the model upstream failed ({text})")),
            true,
        ),
        Some(_) => (
            LlmError::Server(format!("the model upstream refused the request ({text})")),
            false,
        ),
        // Connection refused, reset, DNS: worth another try.
        None => (
            LlmError::Server(format!(
                "could not reach the model upstream at {base_url} ({text})"
            )),
            true,
        ),
    }
}

impl Llm {
    pub fn new(settings: &LlmSettings) -> anyhow::Result<Llm> {
        let timeout = settings.timeout;
        let mut routes = Vec::new();
        for r in &settings.routes {
            let m = match (&r.model, &r.prefix) {
                (Some(m), None) => Match::Model(m.clone()),
                (None, Some(p)) => Match::Prefix(p.clone()),
                _ => anyhow::bail!(
                    "each [[llm.routes]] entry needs exactly one of `model` or `prefix` (route to {})",
                    r.base_url
                ),
            };
            routes.push((
                m,
                Upstream::new(&r.base_url, r.api_key.as_deref(), timeout)?,
            ));
        }
        // Exact names win over prefixes, whatever the order in the file.
        routes.sort_by_key(|(m, _)| matches!(m, Match::Prefix(_)));
        Ok(Llm {
            default: Upstream::new(&settings.base_url, settings.api_key.as_deref(), timeout)?,
            routes,
            timeout,
            max_retries: settings.max_retries,
        })
    }

    fn upstream(&self, model: &str) -> &Upstream {
        self.routes
            .iter()
            .find(|(m, _)| match m {
                Match::Model(name) => name == model,
                Match::Prefix(p) => model.starts_with(p.as_str()),
            })
            .map(|(_, u)| u)
            .unwrap_or(&self.default)
    }

    /// Starts a streamed completion of `body` (a chat-completions request with `stream: true`).
    /// Retries happen here, before the first chunk is handed out.
    pub async fn stream(&self, body: &Value) -> Result<ChunkStream, LlmError> {
        let model = body.get("model").and_then(Value::as_str).unwrap_or("");
        let upstream = self.upstream(model);
        let mut attempt = 0u32;
        loop {
            let mut stream: Pin<Box<dyn Stream<Item = Result<Value, OpenAIError>> + Send>> =
                match upstream
                    .client
                    .chat()
                    .create_stream_byot(body.clone())
                    .await
                {
                    Ok(s) => s,
                    Err(e) => return Err(classify(e, &upstream.base_url).0),
                };
            let first = tokio::time::timeout(self.timeout, stream.next()).await;
            let err = match first {
                Err(_) => LlmError::Server(format!(
                    "the model upstream did not answer within {} s",
                    self.timeout.as_secs()
                )),
                Ok(None) => LlmError::Server(
                    "the model upstream closed the stream without an answer".into(),
                ),
                Ok(Some(Ok(v))) => {
                    let first = parse(v);
                    let timeout = self.timeout;
                    let rest = futures::stream::unfold(Some(stream), move |s| async move {
                        let mut s = s?;
                        match tokio::time::timeout(timeout, s.next()).await {
                            Err(_) => Some((
                                Err(LlmError::Server(format!(
                                    "the model upstream stalled for {} s mid-answer",
                                    timeout.as_secs()
                                ))),
                                None,
                            )),
                            Ok(None) => None,
                            Ok(Some(Ok(v))) => Some((parse(v), Some(s))),
                            Ok(Some(Err(e))) => Some((
                                Err(LlmError::Server(format!(
                                    "the model upstream broke off its answer ({e})"
                                ))),
                                None,
                            )),
                        }
                    });
                    return Ok(Box::pin(futures::stream::once(async { first }).chain(rest)));
                }
                Ok(Some(Err(e))) => {
                    let (err, retry) = classify(e, &upstream.base_url);
                    if !retry {
                        return Err(err);
                    }
                    err
                }
            };
            if attempt >= self.max_retries {
                return Err(err);
            }
            let backoff = Duration::from_millis(200 * 2u64.pow(attempt))
                + Duration::from_millis(rand::random::<u64>() % 100);
            tracing::warn!(
                model,
                attempt,
                error = err.message(),
                ?backoff,
                "LLM call failed; retrying"
            );
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }
}

fn parse(v: Value) -> Result<Chunk, LlmError> {
    serde_json::from_value::<RawChunk>(v)
        .map(Chunk::from)
        .map_err(|e| {
            LlmError::Server(format!(
                "the model upstream sent a chunk we cannot read: {e}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_statuses_are_recognised() {
        assert_eq!(
            status_of("stream failed: Invalid status code: 429 Too Many Requests"),
            Some(429)
        );
        assert_eq!(status_of("connection refused"), None);
        let (e, retry) = classify(
            OpenAIError::StreamError("Invalid status code: 503 Service Unavailable".into()),
            "x",
        );
        assert!(retry && e.code() == "server_error");
        let (e, retry) = classify(
            OpenAIError::StreamError("Invalid status code: 400 Bad Request".into()),
            "x",
        );
        assert!(!retry && e.code() == "server_error");
        let (e, _) = classify(
            OpenAIError::StreamError("Invalid status code: 429 Too Many Requests".into()),
            "x",
        );
        assert_eq!(e.code(), "rate_limit_exceeded");
    }

    #[test]
    fn chunks_parse_content_tool_calls_and_usage() {
        let raw: RawChunk = serde_json::from_value(serde_json::json!({
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}]}, "finish_reason": null}],
        })).unwrap();
        let c = Chunk::from(raw);
        assert_eq!(c.tool_calls[0].index, 1);
        assert_eq!(c.tool_calls[0].name.as_deref(), Some("f"));
        let raw: RawChunk = serde_json::from_value(serde_json::json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})).unwrap();
        assert_eq!(Chunk::from(raw).usage, Some((3, 4)));
    }

    #[test]
    fn reasoning_is_read_under_either_name_and_odd_shapes_are_ignored() {
        let chunk = |delta: serde_json::Value| {
            let raw: RawChunk = serde_json::from_value(serde_json::json!({
                "choices": [{"index": 0, "delta": delta, "finish_reason": null}],
            }))
            .unwrap();
            Chunk::from(raw)
        };
        assert_eq!(
            chunk(serde_json::json!({"reasoning_content": "a"})).reasoning,
            "a"
        );
        assert_eq!(chunk(serde_json::json!({"reasoning": "b"})).reasoning, "b");
        let odd = chunk(serde_json::json!({"reasoning": {"effort": "low"}, "content": "c"}));
        assert_eq!((odd.reasoning.as_str(), odd.content.as_str()), ("", "c"));
    }
}
