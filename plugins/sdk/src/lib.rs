//! The guest SDK for plugins of the assistants server.
//!
//! A plugin is a WebAssembly component (`cargo build --target wasm32-wasip2`, crate type
//! `cdylib`) implementing one world of the WIT contract `assistants:plugin@0.2.0`, which this
//! crate carries in `wit/`. Each module holds one world's bindings and what makes it short to
//! write:
//!
//! - [`tool`]: tools the model calls ([`tool::Tool`], [`export_tool!`]), typed arguments
//!   ([`tool::args`]), errors the model can act on, labelled passages with citations
//!   ([`tool::Passages`]), configuration and vector-store search;
//! - [`strategy`]: agent strategies as state machines ([`strategy::Strategy`],
//!   [`export_strategy!`]);
//! - [`parser`]: document parsers for vector-store ingestion ([`export_parser!`]);
//! - [`log`]: the host's log, tagged with the plugin id.
//!
//! Outgoing HTTP (tools the operator granted hosts) goes through `wasi:http`: use the
//! [`wstd`](https://docs.rs/wstd) client, or [`wasip2`] directly. `plugins/README.md` in the
//! server's repository is the reference for manifests, grants and limits.

// The export macros expand in the plugin's crate and name this one by its path; this makes
// the same paths work inside it.
extern crate self as assistants_plugin;

pub mod parser;
pub mod strategy;
pub mod tool;

pub use serde_json;
pub use wasip2;

pub use parser::bindings::export_parser;
pub use strategy::bindings::export_strategy;
pub use tool::bindings::export_tool;

/// The host's structured log: records are tagged with the plugin id and call, capped in size
/// and number per call, and escaped.
pub mod log {
    use crate::tool::bindings::assistants::plugin::logging::{log, Level};

    pub fn trace(message: &str) {
        log(Level::Trace, message)
    }
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}
