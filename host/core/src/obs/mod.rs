//! Observability every subsystem reports through: Prometheus metrics ([`metrics`]) and logs
//! and traces ([`telemetry`], including the W3C `traceparent` a run carries across processes).
//! Serving them (`/metrics`) is the binary's job.

pub mod metrics;
pub mod telemetry;
