//! Prometheus metrics (`GET /metrics`, OpenMetrics text).
//!
//! One process-wide set ([`metrics()`]), as Prometheus expects of a process: the request
//! middleware, the run engine, the plugin host and the LLM client record into it without
//! threading a handle through every layer. Gauges that describe shared state (runs by status,
//! queue depth) are read when scraped, from the database and the broker, so every node of a
//! cluster reports the same truth.
//!
//! Labels are bounded: routes are axum's matched patterns (`/v1/threads/{thread_id}/runs`),
//! never raw paths; methods outside the standard set are `other`; plugin ids come from the
//! operator's configuration. Model names come from clients, so only the first
//! [`MAX_MODEL_LABELS`] distinct ones get their own series; later ones share `other`.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `queue_wait` (queued → a worker takes the message), `llm` (one model call),
    /// `tools` (one round of server-side tool calls), `total` (created → terminal).
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
    /// `tool`, `strategy` or `parser`.
    pub kind: &'static str,
    /// `ok`, `error` (the plugin's own error), `trap`, `timeout`, `memory`, `too_large`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmLabels {
    /// `chat` or `embeddings`.
    pub call: &'static str,
    pub model: String,
    /// `ok` or the error code (`upstream_timeout`, `rate_limit_exceeded`, …).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmLatencyLabels {
    pub call: &'static str,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SearchIndexLabels {
    /// `build` (a store read whole), `load` (a snapshot loaded), `refresh` (changed files
    /// read), `merge` (segments merged), `snapshot` (a snapshot written).
    pub kind: &'static str,
}

/// Distinct model names with their own LLM series (see the module doc).
pub(crate) const MAX_MODEL_LABELS: usize = 64;

pub struct Metrics {
    registry: Registry,
    models: std::sync::Mutex<std::collections::HashSet<String>>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Family<RouteLabels, Histogram>,
    pub run_phase_seconds: Family<PhaseLabels, Histogram>,
    pub runs_finished: Family<StatusLabels, Counter>,
    pub runs_active: Family<StatusLabels, Gauge>,
    pub queue_depth: Gauge,
    pub runs_waiting: Gauge,
    pub work_demoted: Counter,
    pub plugin_calls: Family<PluginLabels, Counter>,
    pub llm_requests: Family<LlmLabels, Counter>,
    pub llm_seconds: Family<LlmLatencyLabels, Histogram>,
    pub search_index: Family<SearchIndexLabels, Counter>,
}

fn latency() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("assistants");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            http_requests.clone(),
        );
        let http_seconds =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head (a stream's body continues after it)",
            http_seconds.clone(),
        );
        let run_phase_seconds =
            Family::<PhaseLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "run_phase_duration_seconds",
            "Run latency by phase: queue_wait, llm, tools, total",
            run_phase_seconds.clone(),
        );
        let runs_finished = Family::<StatusLabels, Counter>::default();
        registry.register(
            "runs_finished",
            "Runs this node brought to a status that ends its work (completed, requires_action, failed, cancelled, expired, incomplete)",
            runs_finished.clone(),
        );
        let runs_active = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "runs_active",
            "Runs not yet terminal, by status (from the database, cluster-wide)",
            runs_active.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Run messages waiting in RabbitMQ for a worker (embedded mode: see runs_active{status=\"queued\"})",
            queue_depth.clone(),
        );
        let runs_waiting = Gauge::default();
        registry.register(
            "runs_waiting",
            "Runs this node took off the queue but has not started: waiting for a free slot, or for their project to be under its cap",
            runs_waiting.clone(),
        );
        let work_demoted = Counter::default();
        registry.register(
            "work_demoted",
            "Requests and runs served on the low-priority threads because their project was over its share of the node",
            work_demoted.clone(),
        );
        let plugin_calls = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin invocations by plugin, kind and outcome (traps and limits hit included)",
            plugin_calls.clone(),
        );
        let llm_requests = Family::<LlmLabels, Counter>::default();
        registry.register(
            "llm_requests",
            "Upstream LLM calls by model and outcome",
            llm_requests.clone(),
        );
        let llm_seconds = Family::<LlmLatencyLabels, Histogram>::new_with_constructor(
            latency as fn() -> Histogram,
        );
        registry.register(
            "llm_request_duration_seconds",
            "Upstream LLM call latency (chat: to the end of the stream)",
            llm_seconds.clone(),
        );
        let search_index = Family::<SearchIndexLabels, Counter>::default();
        registry.register(
            "search_index_updates",
            "Work on this node's vector-store search indexes: build, load, refresh, merge, snapshot",
            search_index.clone(),
        );
        Metrics {
            registry,
            models: Default::default(),
            http_requests,
            http_seconds,
            run_phase_seconds,
            runs_finished,
            runs_active,
            queue_depth,
            runs_waiting,
            work_demoted,
            plugin_calls,
            llm_requests,
            llm_seconds,
            search_index,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn run_phase(&self, phase: &'static str, seconds: f64) {
        self.run_phase_seconds
            .get_or_create(&PhaseLabels { phase })
            .observe(seconds.max(0.0));
    }

    /// Runs held by this node's pool, not started.
    pub fn runs_waiting(&self, n: usize) {
        self.runs_waiting.set(n as i64);
    }

    pub(crate) fn search_index(&self, kind: &'static str) {
        self.search_index
            .get_or_create(&SearchIndexLabels { kind })
            .inc();
    }

    pub fn run_finished(&self, status: &str) {
        self.runs_finished
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc();
    }

    pub(crate) fn plugin_call(&self, plugin: &str, kind: &'static str, outcome: &'static str) {
        self.plugin_calls
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
                kind,
                outcome,
            })
            .inc();
    }

    /// The label for `model`: itself while few distinct models were seen, else `other`.
    fn model_label(&self, model: &str) -> String {
        let mut seen = self.models.lock().expect("metrics lock poisoned");
        if seen.contains(model) {
            return model.to_string();
        }
        if seen.len() < MAX_MODEL_LABELS {
            seen.insert(model.to_string());
            return model.to_string();
        }
        "other".to_string()
    }

    pub fn llm_call(&self, call: &'static str, model: &str, outcome: &str, seconds: f64) {
        let model = &self.model_label(model);
        self.llm_requests
            .get_or_create(&LlmLabels {
                call,
                model: model.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.llm_seconds
            .get_or_create(&LlmLatencyLabels {
                call,
                model: model.to_string(),
            })
            .observe(seconds);
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}
