//! The optional TOML config file (`--config`): its shape, every key optional.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The optional TOML file. Unknown keys are an error so typos do not silently fall back to defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub object_store_url: Option<String>,
    pub max_upload_bytes: Option<u64>,
    pub max_json_bytes: Option<usize>,
    #[serde(default)]
    pub allow_open: bool,
    /// See `--secrets-key-file`.
    pub secrets_key_file: Option<PathBuf>,
    pub max_connections: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    pub ingest_concurrency: Option<usize>,
    pub search_snapshot_min_chunks: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<String>,
    pub drain_delay_secs: Option<u64>,
    pub log_format: Option<String>,
    pub queue_url: Option<String>,
    pub events_url: Option<String>,
    #[serde(default)]
    pub plugins: PluginsFileConfig,
    #[serde(default)]
    pub llm: LlmFileConfig,
    #[serde(default)]
    pub runs: RunsFileConfig,
    #[serde(default)]
    pub limits: LimitsFileConfig,
    #[serde(default)]
    pub code_interpreter: CodeInterpreterFileConfig,
    #[serde(default)]
    pub crawl: CrawlFileConfig,
}

/// `[crawl]` in the config file: how this node crawls sites into vector stores (which sites:
/// `[plugins.grants.crawler] hosts`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlFileConfig {
    /// Crawls this node drives at once; 0: none [default: 2].
    pub concurrency: Option<usize>,
    /// Least time between two requests to one site, in milliseconds; a site's robots.txt
    /// `crawl-delay` may ask for more [default: 1000].
    pub delay_ms: Option<u64>,
    /// Requests to one site in flight at once from this node [default: 2].
    pub host_concurrency: Option<usize>,
    /// Longest pass over a site, in seconds [default: 3600].
    pub max_pass_secs: Option<u64>,
    /// Most page bytes one pass fetches, in MiB [default: 256].
    pub max_pass_mib: Option<u64>,
    /// Seconds a node's claim of a crawl lasts unrenewed: how long a dead node's crawl waits
    /// before another node resumes it [default: 60].
    pub lease_secs: Option<u64>,
}

/// `[code_interpreter]` in the config file: the sandboxed Python tool.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeInterpreterFileConfig {
    /// Offer it when installed [default: true].
    pub enabled: Option<bool>,
    /// See `--code-interpreter-dir`.
    pub dir: Option<PathBuf>,
    /// Linear memory of one session, MiB [default: 1024].
    pub memory_mib: Option<u64>,
    /// Wall time of one cell [default: 120].
    pub cell_timeout_secs: Option<u64>,
    /// Output kept per stream per cell, KiB [default: 64].
    pub output_kib: Option<usize>,
    /// Files a session may hold open at once [default: 256].
    pub open_files: Option<usize>,
    /// A session's files in /tmp and /mnt/data, MiB [default: 1024] …
    pub disk_mib: Option<u64>,
    /// … and files and directories [default: 10000].
    pub disk_entries: Option<u64>,
    /// Live sessions per node [default: 16] …
    pub max_sessions: Option<usize>,
    /// … and their memory together, MiB [default: 2048].
    pub memory_budget_mib: Option<u64>,
    /// Cells running at once per node [default: one per core].
    pub max_cells: Option<usize>,
    /// A live session is dropped from memory after this long without a call [default:
    /// 1200]; its state stays in its snapshot.
    pub idle_secs: Option<u64>,
    /// … and this long after it started [default: 3600, as OpenAI's].
    pub lifetime_secs: Option<u64>,
    /// Start new sessions from a template that imported numpy, pandas and matplotlib
    /// [default: true]; false starts them bare (≈ 80 MiB less per node, ≈ 1.3 s more on
    /// a first import).
    pub preload: Option<bool>,
}

/// `[limits]` in the config file: what each project may hold and run at once (the flags of
/// the same names, without the `project-` prefix).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFileConfig {
    pub max_runs: Option<usize>,
    pub max_ingest: Option<usize>,
    pub max_storage_bytes: Option<u64>,
    pub max_files: Option<u64>,
    pub max_chunks: Option<u64>,
}

/// `[llm]` in the config file: the default upstream and per-model routes.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmFileConfig {
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// Seconds to wait for the upstream to start answering, and between streamed chunks
    /// [default: 120].
    pub timeout_secs: Option<u64>,
    /// Retries of a call that failed with 429 or 5xx before anything streamed [default: 3].
    pub max_retries: Option<u32>,
    /// Embeddings model for vector-store search (see `--embedding-model`).
    pub embedding_model: Option<String>,
    /// `[[llm.routes]]`: `model = "gpt-4o"` (exact) or `prefix = "llama"`, with `base_url`
    /// and optionally `api_key`. The first match wins; unmatched models use the default.
    #[serde(default)]
    pub routes: Vec<assistants_core::llm::LlmRoute>,
}

/// `[runs]` in the config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsFileConfig {
    pub concurrency: Option<usize>,
    pub expiry_secs: Option<i64>,
    pub default_strategy: Option<String>,
    /// Name of the RabbitMQ queue of runs [default: assistants.runs].
    pub queue_name: Option<String>,
    pub lease_secs: Option<i64>,
}

/// `[plugins]` in the config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsFileConfig {
    pub dir: Option<PathBuf>,
    /// See `--plugin-cache-key-file`.
    pub cache_key_file: Option<PathBuf>,
    /// Concurrent plugin calls per world (instance pool size) [default: one per 8 MiB of the
    /// memory budget, 16 to 1000].
    pub instances: Option<u32>,
    /// Linear memory of all plugin calls in flight together, in MiB [default: half the memory
    /// the process may use].
    pub memory_budget_mib: Option<u64>,
    /// What each plugin may use, by plugin id: `[plugins.grants.weather] hosts = [...]`.
    #[serde(default)]
    pub grants: std::collections::BTreeMap<String, assistants_core::plugins::manifest::Grant>,
    /// Upper bounds of every plugin's limits: `[plugins.caps] timeout_ms = 10000`.
    #[serde(default)]
    pub caps: assistants_core::plugins::manifest::Caps,
    /// See `--plugins-reload-secs`.
    pub reload_secs: Option<u64>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}
