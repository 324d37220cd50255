//! One integration-test binary, a module per feature. Every test starts its own server
//! (see `assistants_tests::TestApp`), so the suite runs unchanged on SQLite, on PostgreSQL
//! (`ASSISTANTS_TEST_DATABASE_URL`) and with S3 storage (`ASSISTANTS_TEST_OBJECT_STORE_URL`).

mod assistant_mcp;
mod assistants;
mod auth;
mod code_interpreter;
mod conversations;
mod crawls;
mod documents;
mod errors;
mod files;
mod forms;
mod fuzz;
mod hostile;
mod limits;
mod ops;
mod pagination;
mod plugins;
mod response_choice;
mod response_mcp;
mod response_retention;
mod response_runs;
mod response_streams;
mod response_tools;
mod responses;
mod runs;
mod server;
mod threads;
mod uploads;
mod vector_stores;
