//! `assistants-worker`: the run engine. It claims queued runs, drives their strategy component
//! step by step, calls the LLM and tool plugins, and publishes what clients see.
//!
//! - [`engine`]: the claim/lease loop and the LLM and tool actions of one run;
//! - [`input`]: what the strategy and the model see (thread messages, truncation, tools);
//! - [`choice`]: what a run's `tool_choice` lets the model call;
//! - [`items`]: a Responses context (messages, function calls and outputs) as chat messages;
//! - [`responses`]: a response's output projected from its run, and the response finished
//!   when the run ends;
//! - [`transitions`]: every change of a run's status (the API calls these too);
//! - [`pool`]: the worker pool fed by the run queue, and the sweeper;
//! - [`fair`]: the order waiting runs start in: projects in turns, each under a cap;
//! - [`publish`]: what part of a streaming answer clients see (everything, nothing, or only
//!   what follows a marker such as ReAct's `Final Answer:`), across arbitrary chunk boundaries;
//! - [`citations`]: file-search labels in an answer, located for `file_citation` annotations;
//! - [`code_files`]: the files a run's code_interpreter sees.
//!
//! Everything it shares with the HTTP API (model, store, plugin host, LLM client, queue and
//! events) is in `assistants-core`.

pub mod choice;
pub(crate) mod citations;
pub(crate) mod code_files;
pub mod engine;
pub(crate) mod fair;
pub mod input;
pub mod items;
pub mod pool;
pub(crate) mod publish;
pub mod responses;
pub mod transitions;
