//! Command line, environment and config-file settings, layered as
//! defaults < TOML file (`--config`) < environment (`ASSISTANTS_*`) < flags.
//!
//! clap reads flags and env vars into `Option`s (no clap defaults), so a value that was not given
//! on the command line or in the environment can still come from the file; only then do the
//! built-in defaults apply. [`Settings`] is the resolved result every other module reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use assistants_core::llm::LlmSettings;
use assistants_core::redact::redact_url;

/// A self-hosted server for the OpenAI Assistants API v2.
///
/// Point the official `openai` SDKs at it by setting their base URL to
/// `http://HOST:PORT/v1`. Without a database URL it runs embedded: SQLite and local files under
/// `--data-dir`, nothing else to install.
#[derive(Debug, Parser)]
#[command(name = "assistants", version, about, long_about = None)]
pub struct Cli {
    /// TOML config file; its keys are the long flag names with `_` (e.g. `data_dir = "/var/lib/assistants"`).
    /// Environment variables and flags override it.
    #[arg(long, global = true, env = "ASSISTANTS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API server and a run worker (migrations run first).
    Serve(ServeArgs),
    /// Run a worker-only node: drives queued runs, serves no HTTP API. Needs a shared database
    /// and, to hear about new runs promptly, `--queue-url`.
    Worker(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(StorageArgs),
    /// Inspect and try plugins (WebAssembly tool components).
    Plugins {
        #[command(subcommand)]
        action: PluginsAction,
    },
    /// Manage projects and API keys. Once any key exists, every request needs a valid one.
    Keys {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key for a project (created if new) and print it once; only its hash is stored.
    Create {
        /// Project name; objects created with this key belong to it and are invisible to other projects.
        #[arg(long)]
        project: String,
    },
    /// List keys (id, project, prefix, created, revoked) without revealing them.
    List,
    /// Revoke a key by its id (`key_…`); requests using it are refused from then on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum PluginsAction {
    /// List the built-in plugins and those in the plugins directory, with their tools.
    List {
        /// Directory of operator plugins (as for `serve`).
        #[arg(long, env = "ASSISTANTS_PLUGINS_DIR", value_name = "DIR")]
        plugins_dir: Option<PathBuf>,
    },
    /// Validate a component: its world, manifest, grants (from --config) and tool schemas.
    /// Exits non-zero with the reason if the server would refuse to load it.
    Check {
        /// The component (`NAME.wasm`); its manifest is `NAME.toml` beside it unless --manifest.
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
    /// Run one tool call in the sandbox, as a run would, and print the result.
    Call {
        /// The component (`NAME.wasm`), or the id of a built-in plugin.
        file: PathBuf,
        /// The tool to call.
        tool: String,
        /// The arguments, a JSON object.
        args: String,
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
}

/// Where data lives; shared by `serve`, `migrate` and `keys`.
#[derive(Debug, Args, Default)]
pub struct StorageArgs {
    /// Directory for the embedded SQLite database and local file storage [default: ./data].
    #[arg(long, env = "ASSISTANTS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL: `postgres://user@host/db` for PostgreSQL, or `sqlite://PATH`.
    /// Default: SQLite (WAL) at DATA_DIR/assistants.db.
    #[arg(long, env = "ASSISTANTS_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Where file bytes go: `s3://bucket[/prefix]` for S3-compatible stores (endpoint, region and
    /// keys from the standard AWS_* variables, e.g. AWS_ENDPOINT_URL for MinIO), or `file:///dir`.
    /// Default: DATA_DIR/files.
    #[arg(long, env = "ASSISTANTS_OBJECT_STORE_URL", value_name = "URL")]
    pub object_store_url: Option<String>,
}

/// Every field is optional (the file and defaults fill the rest), so `Default` is "nothing given".
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,

    /// Address to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "ASSISTANTS_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Largest accepted file upload or upload part, in bytes; uploads are streamed to storage,
    /// never held in memory [default: 536870912 (512 MiB)].
    #[arg(long, env = "ASSISTANTS_MAX_UPLOAD_BYTES", value_name = "BYTES")]
    pub max_upload_bytes: Option<u64>,

    /// Largest accepted JSON request body, in bytes [default: 33554432 (32 MiB)].
    #[arg(long, env = "ASSISTANTS_MAX_JSON_BYTES", value_name = "BYTES")]
    pub max_json_bytes: Option<usize>,

    /// How many vector-store files this node ingests at once; 0 makes an API-only node that
    /// leaves ingestion to others [default: 2].
    #[arg(long, env = "ASSISTANTS_INGEST_CONCURRENCY", value_name = "N")]
    pub ingest_concurrency: Option<usize>,

    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "ASSISTANTS_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Export traces over OTLP/HTTP to this URL (e.g. `http://collector:4318/v1/traces`)
    /// [default: none, no traces].
    #[arg(long, env = "ASSISTANTS_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// OTLP encoding: `http/protobuf` or `http/json` [default: http/protobuf].
    #[arg(long, env = "ASSISTANTS_OTLP_PROTOCOL", value_name = "PROTOCOL")]
    pub otlp_protocol: Option<String>,

    /// On SIGTERM, how long to keep accepting connections while `/readyz` answers 503, so a
    /// load balancer takes the node out of rotation before its listener closes [default: 0].
    #[arg(long, env = "ASSISTANTS_DRAIN_DELAY_SECS", value_name = "SECS")]
    pub drain_delay_secs: Option<u64>,

    /// On SIGTERM, how long work in flight may take to finish (runs, streams, requests) before
    /// streams are closed and unfinished runs are handed back to the queue [default: 20].
    #[arg(long, env = "ASSISTANTS_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,

    /// Directory of operator plugins: `NAME.wasm` components with a `NAME.toml` manifest each.
    /// Grants go in the config file under `[plugins.grants.ID]`.
    #[arg(long, env = "ASSISTANTS_PLUGINS_DIR", value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,

    /// Base URL of the OpenAI-compatible chat-completions upstream runs call
    /// [default: https://api.openai.com/v1]. Per-model routes go in the config file (`[llm]`).
    #[arg(long, env = "ASSISTANTS_LLM_BASE_URL", value_name = "URL")]
    pub llm_base_url: Option<String>,

    /// Embeddings model for vector-store search (through the LLM upstream's `/embeddings`,
    /// routed like chat models). Without one, search is lexical (BM25) only.
    #[arg(long, env = "ASSISTANTS_EMBEDDING_MODEL", value_name = "MODEL")]
    pub embedding_model: Option<String>,

    /// API key sent to the LLM upstream (`Authorization: Bearer`).
    #[arg(
        long,
        env = "ASSISTANTS_LLM_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub llm_api_key: Option<String>,

    /// Serve the API only; leave runs to worker nodes (`assistants worker`).
    #[arg(long)]
    pub no_worker: bool,

    /// How many runs this node drives at once [default: 32].
    #[arg(long, env = "ASSISTANTS_RUN_CONCURRENCY", value_name = "N")]
    pub run_concurrency: Option<usize>,

    /// Seconds an active run may take before it expires, including time waiting in
    /// `requires_action` for tool outputs [default: 600].
    #[arg(long, env = "ASSISTANTS_RUN_EXPIRY_SECS", value_name = "SECS")]
    pub run_expiry_secs: Option<i64>,

    /// Strategy plugin of assistants that name none in `metadata.strategy` [default: native].
    #[arg(long, env = "ASSISTANTS_DEFAULT_STRATEGY", value_name = "ID")]
    pub default_strategy: Option<String>,

    /// Seconds a worker's claim on a run lasts without renewal (renewed every third of it):
    /// how soon the runs of a worker that died resume elsewhere [default: 30].
    #[arg(long, env = "ASSISTANTS_RUN_LEASE_SECS", value_name = "SECS")]
    pub run_lease_secs: Option<i64>,

    /// Distributed mode: RabbitMQ URL of the run queue (`amqp://user:pass@host:5672/%2f`).
    /// Default: an in-process queue (one node).
    #[arg(
        long,
        env = "ASSISTANTS_QUEUE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub queue_url: Option<String>,

    /// Distributed mode: Redis URL for run events (`redis://host:6379`), so a client streaming
    /// from one API node sees what a worker on another node produces. Default: in-process.
    #[arg(
        long,
        env = "ASSISTANTS_EVENTS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub events_url: Option<String>,
}

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
    pub ingest_concurrency: Option<usize>,
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
    /// Concurrent plugin calls per world (instance pool size) [default: 1000].
    pub instances: Option<u32>,
    /// What each plugin may use, by plugin id: `[plugins.grants.weather] hosts = [...]`.
    #[serde(default)]
    pub grants: std::collections::BTreeMap<String, assistants_core::plugins::manifest::Grant>,
    /// Upper bounds of every plugin's limits: `[plugins.caps] timeout_ms = 10000`.
    #[serde(default)]
    pub caps: assistants_core::plugins::manifest::Caps,
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

/// Where the database and blobs live, resolved.
#[derive(Clone)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub object_store_url: Option<String>,
}

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("object_store_url", &self.object_store_url)
            .finish()
    }
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub storage: StorageSettings,
    pub max_upload_bytes: u64,
    pub max_json_bytes: usize,
    pub ingest_concurrency: usize,
    /// See `--shutdown-grace-secs`.
    pub shutdown_grace_secs: u64,
    /// See `--drain-delay-secs`.
    pub drain_delay_secs: u64,
    /// Where traces are exported, if anywhere.
    pub otlp: Option<assistants_core::obs::telemetry::OtlpSettings>,
    pub log_format: String,
    pub plugins: assistants_core::plugins::PluginSettings,
    pub llm: assistants_core::llm::LlmSettings,
    pub runs: RunSettings,
}

/// How this node takes part in runs.
#[derive(Clone)]
pub struct RunSettings {
    /// Whether this node drives runs (false for `serve --no-worker`).
    pub worker: bool,
    /// Whether this node serves the HTTP API (false for `assistants worker`).
    pub api: bool,
    pub concurrency: usize,
    pub expiry_secs: i64,
    pub lease_secs: i64,
    pub default_strategy: String,
    pub queue_url: Option<String>,
    pub queue_name: String,
    pub events_url: Option<String>,
}

impl std::fmt::Debug for RunSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSettings")
            .field("worker", &self.worker)
            .field("api", &self.api)
            .field("concurrency", &self.concurrency)
            .field("expiry_secs", &self.expiry_secs)
            .field("lease_secs", &self.lease_secs)
            .field("default_strategy", &self.default_strategy)
            .field("queue_url", &self.queue_url.as_deref().map(redact_url))
            .field("queue_name", &self.queue_name)
            .field("events_url", &self.events_url.as_deref().map(redact_url))
            .finish()
    }
}

impl StorageSettings {
    pub fn resolve(args: &StorageArgs, file: &FileConfig) -> Self {
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = args
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("assistants.db").display()));
        let object_store_url = args
            .object_store_url
            .clone()
            .or_else(|| file.object_store_url.clone());
        StorageSettings {
            data_dir,
            database_url,
            object_store_url,
        }
    }
}

impl Settings {
    /// Settings with every default, for tests and embedding.
    pub fn for_data_dir(data_dir: PathBuf) -> Self {
        Self::resolve(
            &ServeArgs {
                storage: StorageArgs {
                    data_dir: Some(data_dir),
                    ..Default::default()
                },
                ..Default::default()
            },
            &FileConfig::default(),
        )
    }

    pub fn resolve(args: &ServeArgs, file: &FileConfig) -> Self {
        Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| ([127, 0, 0, 1], 8000).into()),
            storage: StorageSettings::resolve(&args.storage, file),
            max_upload_bytes: args
                .max_upload_bytes
                .or(file.max_upload_bytes)
                .unwrap_or(512 * 1024 * 1024),
            max_json_bytes: args
                .max_json_bytes
                .or(file.max_json_bytes)
                .unwrap_or(32 * 1024 * 1024),
            ingest_concurrency: args
                .ingest_concurrency
                .or(file.ingest_concurrency)
                .unwrap_or(2),
            shutdown_grace_secs: args
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .unwrap_or(20),
            drain_delay_secs: args.drain_delay_secs.or(file.drain_delay_secs).unwrap_or(0),
            otlp: args
                .otlp_endpoint
                .clone()
                .or_else(|| file.otlp_endpoint.clone())
                .map(|endpoint| assistants_core::obs::telemetry::OtlpSettings {
                    endpoint,
                    protocol: args
                        .otlp_protocol
                        .clone()
                        .or_else(|| file.otlp_protocol.clone())
                        .unwrap_or_else(|| "http/protobuf".into()),
                }),
            log_format: args
                .log_format
                .clone()
                .or_else(|| file.log_format.clone())
                .unwrap_or_else(|| "text".into()),
            plugins: assistants_core::plugins::PluginSettings {
                dir: args
                    .plugins_dir
                    .clone()
                    .or_else(|| file.plugins.dir.clone()),
                cache_dir: None,
                grants: file.plugins.grants.clone(),
                instances: file.plugins.instances,
                caps: file.plugins.caps,
            },
            llm: LlmSettings {
                base_url: args
                    .llm_base_url
                    .clone()
                    .or_else(|| file.llm.base_url.clone())
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                api_key: args
                    .llm_api_key
                    .clone()
                    .or_else(|| file.llm.api_key.clone()),
                timeout: std::time::Duration::from_secs(file.llm.timeout_secs.unwrap_or(120)),
                max_retries: file.llm.max_retries.unwrap_or(3),
                routes: file.llm.routes.clone(),
                embedding_model: args
                    .embedding_model
                    .clone()
                    .or_else(|| file.llm.embedding_model.clone()),
            },
            runs: RunSettings {
                worker: !args.no_worker,
                api: true,
                concurrency: args
                    .run_concurrency
                    .or(file.runs.concurrency)
                    .unwrap_or(32)
                    .max(1),
                expiry_secs: args
                    .run_expiry_secs
                    .or(file.runs.expiry_secs)
                    .unwrap_or(600)
                    .max(1),
                default_strategy: args
                    .default_strategy
                    .clone()
                    .or_else(|| file.runs.default_strategy.clone())
                    .unwrap_or_else(|| "native".into()),
                lease_secs: args
                    .run_lease_secs
                    .or(file.runs.lease_secs)
                    .unwrap_or(30)
                    .max(2),
                queue_url: args.queue_url.clone().or_else(|| file.queue_url.clone()),
                queue_name: file
                    .runs
                    .queue_name
                    .clone()
                    .unwrap_or_else(|| "assistants.runs".into()),
                events_url: args.events_url.clone().or_else(|| file.events_url.clone()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let file: FileConfig =
            toml::from_str("listen = \"0.0.0.0:9000\"\nmax_upload_bytes = 10\ndata_dir = \"/x\"")
                .unwrap();
        let args = ServeArgs {
            listen: Some("127.0.0.1:1".parse().unwrap()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, &file);
        assert_eq!(s.listen.port(), 1);
        assert_eq!(s.max_upload_bytes, 10);
        assert_eq!(s.storage.database_url, "sqlite:///x/assistants.db");
        assert_eq!(s.max_json_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn plugin_grants_and_caps_come_from_the_file() {
        let file: FileConfig = toml::from_str(
            "[plugins.caps]\ntimeout_ms = 100\n[plugins.grants.weather]\nhosts = [\"api.test\"]\nconfig = { api_key = \"s\" }",
        )
        .unwrap();
        assert_eq!(file.plugins.caps.timeout_ms, 100);
        assert_eq!(
            file.plugins.caps.memory_mib, 256,
            "unset caps keep their default"
        );
        assert_eq!(file.plugins.grants["weather"].hosts, ["api.test"]);
        assert!(
            !format!("{:?}", file.plugins.grants["weather"]).contains("\"s\""),
            "secrets stay out of Debug"
        );
        assert!(toml::from_str::<FileConfig>("[plugins.caps]\ntimeout = 1").is_err());
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("listne = \"x\"").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let s = redact_url("postgres://u:hunter2@db/x");
        assert!(!s.contains("hunter2") && s.contains("***"));
    }
}
