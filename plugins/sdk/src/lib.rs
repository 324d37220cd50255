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

/// The bindings of one world (`$world`), its export macro named `$export` in the bindings
/// module `$module` (defined before the modules below, which use it), with the WASI
/// interfaces every world includes mapped to [`wasip2`]'s (one set of WASI types for the
/// plugin and its HTTP client) and the mappings in `$with` besides.
macro_rules! world_bindings {
    ($world:tt, $export:tt, $module:tt, { $($with:tt)* }) => {
        wit_bindgen::generate!({
            world: $world,
            path: "wit",
            pub_export_macro: true,
            export_macro_name: $export,
            default_bindings_module: $module,
            additional_derives: [serde::Serialize, serde::Deserialize],
            with: {
                "wasi:cli/environment@0.2.12": wasip2::cli::environment,
                "wasi:cli/exit@0.2.12": wasip2::cli::exit,
                "wasi:cli/stdin@0.2.12": wasip2::cli::stdin,
                "wasi:cli/stdout@0.2.12": wasip2::cli::stdout,
                "wasi:cli/stderr@0.2.12": wasip2::cli::stderr,
                "wasi:cli/terminal-input@0.2.12": wasip2::cli::terminal_input,
                "wasi:cli/terminal-output@0.2.12": wasip2::cli::terminal_output,
                "wasi:cli/terminal-stdin@0.2.12": wasip2::cli::terminal_stdin,
                "wasi:cli/terminal-stdout@0.2.12": wasip2::cli::terminal_stdout,
                "wasi:cli/terminal-stderr@0.2.12": wasip2::cli::terminal_stderr,
                "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
                "wasi:clocks/wall-clock@0.2.12": wasip2::clocks::wall_clock,
                "wasi:filesystem/types@0.2.12": wasip2::filesystem::types,
                "wasi:filesystem/preopens@0.2.12": wasip2::filesystem::preopens,
                "wasi:io/error@0.2.12": wasip2::io::error,
                "wasi:io/poll@0.2.12": wasip2::io::poll,
                "wasi:io/streams@0.2.12": wasip2::io::streams,
                "wasi:random/random@0.2.12": wasip2::random::random,
                "wasi:random/insecure@0.2.12": wasip2::random::insecure,
                "wasi:random/insecure-seed@0.2.12": wasip2::random::insecure_seed,
                "wasi:sockets/network@0.2.12": wasip2::sockets::network,
                "wasi:sockets/instance-network@0.2.12": wasip2::sockets::instance_network,
                "wasi:sockets/udp@0.2.12": wasip2::sockets::udp,
                "wasi:sockets/udp-create-socket@0.2.12": wasip2::sockets::udp_create_socket,
                "wasi:sockets/tcp@0.2.12": wasip2::sockets::tcp,
                "wasi:sockets/tcp-create-socket@0.2.12": wasip2::sockets::tcp_create_socket,
                "wasi:sockets/ip-name-lookup@0.2.12": wasip2::sockets::ip_name_lookup,
                $($with)*
            },
        });
    };
}

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
