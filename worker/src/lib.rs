//! The run engine's functional core: everything about driving a run that needs no I/O.
//!
//! The imperative shell lives in the host (`host/src/runs`): it claims runs from the database,
//! calls strategy components, streams the LLM, runs tool plugins and publishes events. The
//! decisions it makes along the way that can be stated as pure functions live here, where they
//! are unit-tested without a database, a network or a Wasm engine:
//! - [`status`]: the run status machine (which statuses are active, terminal, cancellable) and
//!   the SSE event each status is announced with;
//! - [`publish`]: what part of a streaming LLM answer clients see (everything, nothing, or only
//!   what follows a marker such as ReAct's `Final Answer:`), across arbitrary chunk boundaries;
//! - [`calls`]: assembling streamed tool-call fragments into whole calls;
//! - [`citations`]: file-search labels in an answer, located for `file_citation` annotations.

pub mod calls;
pub mod citations;
pub mod publish;
pub mod status;
