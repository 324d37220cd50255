//! How a node's interpreter reports itself: whether it can run cells here, and its entry in
//! `GET /v1/plugins`.

use super::settings::InterpreterSettings;

/// Whether the tool can run here, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Installed, being compiled for this machine (then its template is loaded or built).
    Preparing,
    /// Not offered: disabled, not installed, or failed to load (the reason says which).
    Unavailable(String),
}

/// How `GET /v1/plugins` lists the interpreter: in the plugins' shape, with its status
/// (`ready`, `preparing`, `unavailable` and why), limits and whether sessions are snapshotted.
pub fn describe(
    s: &InterpreterSettings,
    availability: Availability,
    snapshots: bool,
) -> serde_json::Value {
    let spec = super::tool_spec(super::TOOL, &[]);
    let (status, reason) = match availability {
        Availability::Ready => ("ready", None),
        Availability::Preparing => ("preparing", None),
        Availability::Unavailable(why) => ("unavailable", Some(why)),
    };
    serde_json::json!({
        "id": super::TOOL,
        "object": "plugin",
        "version": super::artifact::WHEEL.version,
        "kind": "tool",
        "description": "Python (CPython 3.15 with numpy, pandas, matplotlib …) in a WebAssembly sandbox, one stateful session per thread.",
        "digest": format!("sha256:{}", super::artifact::WHEEL.sha256),
        "builtin": true,
        "tools": [{
            "name": spec.name,
            "description": spec.description,
            "parameters": serde_json::from_str::<serde_json::Value>(&spec.parameters_json).unwrap_or_default(),
            "strict": spec.strict,
        }],
        "limits": {
            "memory_mib": s.memory_mib,
            "timeout_ms": s.cell_timeout.as_millis() as u64,
            "output_kib": s.output_kib,
            "open_files": s.open_files,
            "disk_mib": s.disk_mib,
            "disk_entries": s.disk_entries,
            "max_sessions": s.max_sessions,
            "memory_budget_mib": s.memory_budget_mib,
            "max_cells": s.max_cells,
            "idle_secs": s.idle.as_secs(),
            "lifetime_secs": s.lifetime.as_secs(),
        },
        "snapshots": snapshots,
        "status": status,
        "status_reason": reason,
    })
}
