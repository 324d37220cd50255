//! `assistants-core`: what the HTTP API and the run engine share, so that neither owns it.
//!
//! Map of the crate:
//! - [`model`]: the domain model (assistants, threads, messages, files, vector stores, runs and
//!   the engine record), statuses, ids; owned by no transport.
//! - [`store`]: every SQL statement, over SQLite or PostgreSQL through one `Any` pool.
//! - [`blobs`]: file bytes in a local directory or an S3-compatible bucket.
//! - [`ingest`]: background parsing, chunking and embedding of vector-store files.
//! - [`search`]: lexical and hybrid search over a store's chunks, cached per node.
//! - [`crawl`]: crawling web sites into vector stores (the host's side: robots.txt rules).
//! - [`llm`]: chat completions and embeddings over OpenAI-compatible upstreams.
//! - [`tokens`]: `o200k_base` token counts (run budgets, chunking).
//! - [`plugins`]: the WebAssembly plugin host (tool, retrieval, strategy and parser worlds,
//!   manifests, grants, sandbox) and the built-in plugins; [`catalog`]: the plugins uploaded
//!   through the API, shared by every node.
//! - [`interpreter`]: the code_interpreter's sandboxed CPython (an installed artifact, its
//!   compiled module, live sessions running cells).
//! - [`bus`]: run events and the run queue (in-process, or Redis and RabbitMQ).
//! - [`lifecycle`]: a node's serving → draining → ending tokens.
//! - [`limits`]: per-project storage quotas and concurrency caps; [`shares`]: whose work
//!   the node's cores do first (projects over their share wait, on [`lowprio`] threads).
//! - [`obs`]: metrics, logs and traces.
//! - [`redact`]: secrets kept out of logs.
//! - [`keyfile`]: the server's own keys, in files outside the data directory; [`seal`]:
//!   clients' secrets encrypted at rest under one of them.
//!
//! The crates above it: `assistants-worker` (the run engine and every run transition) and
//! `assistants-host` (the HTTP API, configuration and the `assistants` binary).

pub mod blobs;
pub mod bus;
pub mod catalog;
pub mod crawl;
pub mod ingest;
pub mod interpreter;
pub mod keyfile;
pub mod lifecycle;
pub mod limits;
pub mod llm;
pub mod lowprio;
pub mod model;
pub mod obs;
pub mod plugins;
pub mod redact;
pub mod seal;
pub mod search;
pub mod shares;
pub mod store;
pub mod tokens;
