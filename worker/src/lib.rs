//! The run engine (filled by the runs issue).
//!
//! This crate will own everything between "a run was queued" and "the run reached a terminal
//! state": claiming runs, driving the strategy component step by step, performing its actions
//! (LLM calls, server-side tool calls through the plugin host, `requires_action`), and writing run
//! steps and messages. It depends on no storage or transport crate: the host hands it the ports
//! it needs (store, queue, events, plugin runtime, LLM client) as traits, which keeps the engine
//! testable with in-memory fakes and keeps `host -> worker` the only dependency direction.
