//! Logs and traces: the process's tracing subscriber (text or JSON lines) and, when an OTLP
//! endpoint is configured, OpenTelemetry traces exported over OTLP/HTTP.
//!
//! A run's trace crosses processes: the API request that queues a run puts its W3C
//! `traceparent` on the queue message ([`current_traceparent`]); the worker that takes it opens
//! the run's span as a child of it ([`adopt_parent`]); strategy steps, plugin calls and
//! upstream LLM calls are spans inside the run's. Without an endpoint nothing is exported and
//! no `traceparent` is produced.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Where traces go.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The traces URL, e.g. `http://collector:4318/v1/traces`.
    pub endpoint: String,
    /// `http/protobuf` (default) or `http/json`.
    pub protocol: String,
}

/// Keeps the trace exporter alive; dropping it flushes the spans not yet exported.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("flushing traces failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber: logs in `log_format` (`text` or `json`) filtered by
/// `ASSISTANTS_LOG`, and traces to `otlp` if given.
pub fn init(log_format: &str, otlp: Option<&OtlpSettings>) -> anyhow::Result<Telemetry> {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("ASSISTANTS_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info")
        })
    };
    let logs = if log_format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_filter(filter())
            .boxed()
    };
    let (traces, provider) = match otlp {
        Some(o) => {
            use opentelemetry_otlp::{Protocol, WithExportConfig};
            let protocol = match o.protocol.as_str() {
                "http/json" => Protocol::HttpJson,
                "http/protobuf" => Protocol::HttpBinary,
                other => anyhow::bail!(
                    "unsupported OTLP protocol '{other}': use http/protobuf or http/json"
                ),
            };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(o.endpoint.clone())
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("assistants")
                        .build(),
                )
                .build();
            let tracer = provider.tracer("assistants");
            // Spans at info and above: requests, runs, steps, plugin and LLM calls.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
                .boxed();
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    Ok(Telemetry { provider })
}

/// The W3C `traceparent` of the current span, when traces are exported.
pub(crate) fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span that `traceparent` names (from a queue message).
pub fn adopt_parent(span: &tracing::Span, traceparent: &str) {
    let carrier =
        std::collections::HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    span.set_parent(parent);
}
