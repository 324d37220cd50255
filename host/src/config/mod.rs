//! Command line, environment and config-file settings, layered as
//! defaults < TOML file (`--config`) < environment (`ASSISTANTS_*`) < flags.
//!
//! clap reads flags and env vars into `Option`s (no clap defaults), so a value that was not given
//! on the command line or in the environment can still come from the file; only then do the
//! built-in defaults apply. [`Settings`] is the resolved result every other module reads.
//! `cli` holds the flags, `file` the TOML file's shape; this module resolves them.

mod cli;
mod file;

pub use cli::*;
pub use file::*;

use std::net::SocketAddr;
use std::path::PathBuf;

use assistants_core::llm::LlmSettings;
use assistants_core::redact::redact_url;

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
    /// See `--allow-open`.
    pub allow_open: bool,
    /// See `--secrets-key-file`.
    pub secrets_key_file: Option<std::path::PathBuf>,
    /// See `--max-connections` and `--idle-timeout-secs`.
    pub connections: crate::serve::ConnectionLimits,
    pub ingest_concurrency: usize,
    /// See `--search-snapshot-min-chunks` (0: off).
    pub search_snapshot_min_chunks: usize,
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
    /// Per-project quotas and concurrency caps.
    pub limits: assistants_core::limits::ProjectLimits,
    pub code_interpreter: assistants_core::interpreter::service::InterpreterSettings,
    /// See `[crawl]` in the config file.
    pub crawl: assistants_core::crawl::CrawlSettings,
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
        let run_concurrency = args
            .run_concurrency
            .or(file.runs.concurrency)
            .unwrap_or(32)
            .max(1);
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
            allow_open: args.allow_open || file.allow_open,
            secrets_key_file: args
                .secrets_key_file
                .clone()
                .or_else(|| file.secrets_key_file.clone()),
            connections: crate::serve::ConnectionLimits {
                max_connections: args
                    .max_connections
                    .or(file.max_connections)
                    .unwrap_or_else(crate::serve::default_max_connections),
                idle_timeout: std::time::Duration::from_secs(
                    args.idle_timeout_secs
                        .or(file.idle_timeout_secs)
                        .unwrap_or(30),
                ),
            },
            ingest_concurrency: args
                .ingest_concurrency
                .or(file.ingest_concurrency)
                .unwrap_or(2),
            search_snapshot_min_chunks: args
                .search_snapshot_min_chunks
                .or(file.search_snapshot_min_chunks)
                .unwrap_or(assistants_core::search::SNAPSHOT_MIN_CHUNKS),
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
                cache_key_file: args
                    .plugin_cache_key_file
                    .clone()
                    .or_else(|| file.plugins.cache_key_file.clone()),
                grants: file.plugins.grants.clone(),
                instances: file.plugins.instances,
                memory_budget_mib: file.plugins.memory_budget_mib,
                caps: file.plugins.caps,
                reload_secs: args.plugins_reload_secs.or(file.plugins.reload_secs),
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
                concurrency: run_concurrency,
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
            limits: project_limits(args, file, run_concurrency),
            code_interpreter: code_interpreter(args, file),
            crawl: crawl(file),
        }
    }
}

/// Crawls: `[crawl]` over the defaults.
fn crawl(file: &FileConfig) -> assistants_core::crawl::CrawlSettings {
    let d = assistants_core::crawl::CrawlSettings::default();
    let f = &file.crawl;
    assistants_core::crawl::CrawlSettings {
        concurrency: f.concurrency.unwrap_or(d.concurrency),
        delay_ms: f.delay_ms.unwrap_or(d.delay_ms),
        host_concurrency: f.host_concurrency.unwrap_or(d.host_concurrency).max(1),
        max_pass_secs: f.max_pass_secs.unwrap_or(d.max_pass_secs).max(1),
        max_pass_mib: f.max_pass_mib.unwrap_or(d.max_pass_mib).max(1),
        lease_secs: f.lease_secs.unwrap_or(d.lease_secs).max(2),
    }
}

/// The code interpreter: the flag and `[code_interpreter]` over the defaults for the data dir.
fn code_interpreter(
    args: &ServeArgs,
    file: &FileConfig,
) -> assistants_core::interpreter::service::InterpreterSettings {
    use std::time::Duration;
    let data_dir = StorageSettings::resolve(&args.storage, file).data_dir;
    let mut s = assistants_core::interpreter::service::InterpreterSettings::for_data_dir(&data_dir);
    let f = &file.code_interpreter;
    s.enabled = f.enabled.unwrap_or(true);
    if let Some(dir) = args.code_interpreter_dir.clone().or_else(|| f.dir.clone()) {
        s.dir = dir;
    }
    s.memory_mib = f.memory_mib.unwrap_or(s.memory_mib).max(64);
    s.cell_timeout = f
        .cell_timeout_secs
        .map_or(s.cell_timeout, Duration::from_secs);
    s.output_kib = f.output_kib.unwrap_or(s.output_kib).max(1);
    s.open_files = f.open_files.unwrap_or(s.open_files).max(16);
    s.max_sessions = f.max_sessions.unwrap_or(s.max_sessions).max(1);
    s.memory_budget_mib = f.memory_budget_mib.unwrap_or(s.memory_budget_mib).max(64);
    s.disk_mib = f.disk_mib.unwrap_or(s.disk_mib).max(1);
    s.disk_entries = f.disk_entries.unwrap_or(s.disk_entries).max(16);
    if f.preload == Some(false) {
        s.template = None;
    }
    s.max_cells = f.max_cells.unwrap_or(s.max_cells).max(1);
    s.idle = f.idle_secs.map_or(s.idle, Duration::from_secs);
    s.lifetime = f.lifetime_secs.map_or(s.lifetime, Duration::from_secs);
    s
}

/// Per-project limits: flags over the `[limits]` table; 0 means "none".
fn project_limits(
    args: &ServeArgs,
    file: &FileConfig,
    run_concurrency: usize,
) -> assistants_core::limits::ProjectLimits {
    let l = &file.limits;
    let quota = |flag: Option<u64>, key: Option<u64>| flag.or(key).filter(|&n| n > 0);
    assistants_core::limits::ProjectLimits {
        max_storage_bytes: quota(args.project_max_storage_bytes, l.max_storage_bytes),
        max_files: quota(args.project_max_files, l.max_files),
        max_chunks: quota(args.project_max_chunks, l.max_chunks),
        // By default a quarter of the node's run slots stays free of any one project, so a
        // project whose runs are all stuck (a slow upstream, a tool waiting out its timeout)
        // cannot hold the node; a single-project server still gets most of it.
        max_runs: Some(
            args.project_max_runs
                .or(l.max_runs)
                .filter(|&n| n > 0)
                .unwrap_or(run_concurrency * 3 / 4)
                .clamp(1, run_concurrency),
        ),
        max_ingest: args.project_max_ingest.or(l.max_ingest).filter(|&n| n > 0),
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
    fn project_limits_default_to_a_share_of_runs_and_no_quotas() {
        let args = ServeArgs {
            run_concurrency: Some(8),
            ..Default::default()
        };
        let s = Settings::resolve(&args, &FileConfig::default());
        assert_eq!(s.limits.max_runs, Some(6));
        assert!(!s.limits.limits_storage());
        assert_eq!(s.limits.max_ingest, None);
        let file: FileConfig = toml::from_str(
            "[limits]
max_files = 3
max_runs = 100
max_chunks = 0",
        )
        .unwrap();
        let s = Settings::resolve(&args, &file);
        assert_eq!(s.limits.max_files, Some(3));
        assert_eq!(
            s.limits.max_runs,
            Some(8),
            "never more than the node drives"
        );
        assert_eq!(s.limits.max_chunks, None, "0 is no quota");
        let one = ServeArgs {
            run_concurrency: Some(1),
            ..Default::default()
        };
        assert_eq!(Settings::resolve(&one, &file).limits.max_runs, Some(1));
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
