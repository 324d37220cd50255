//! The `assistants` binary: parses the command line and runs a subcommand.

use anyhow::Context;
use assistants_core::obs::telemetry;
use assistants_core::store::keys::Scope;
use assistants_core::store::Store;
use assistants_host::config::{
    Cli, CodeInterpreterAction, Command, FileConfig, KeysAction, Settings, StorageSettings,
};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = FileConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&args, &file);
            let _telemetry = telemetry::init(&settings.log_format, settings.otlp.as_ref())?;
            tracing::info!(?settings, "starting");
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding {}", settings.listen))?;
            assistants_host::start(settings, listener, shutdown_signal()).await
        }
        Command::Worker(args) => {
            let mut settings = Settings::resolve(&args, &file);
            settings.runs.api = false;
            settings.runs.worker = true;
            let _telemetry = telemetry::init(&settings.log_format, settings.otlp.as_ref())?;
            tracing::info!(?settings, "starting a worker node");
            // A worker serves /healthz, /readyz and /metrics only when given an address:
            // several workers often share a machine.
            let listener = match args.listen.or(file.listen) {
                Some(addr) => Some(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("binding {addr}"))?,
                ),
                None => None,
            };
            assistants_host::start_worker(settings, listener, shutdown_signal()).await
        }
        Command::Migrate(args) => {
            let _telemetry = init_logging("text")?;
            let storage = StorageSettings::resolve(&args, &file);
            let store = Store::connect(&storage.database_url).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Plugins { action } => {
            let _telemetry = init_logging("text")?;
            assistants_host::plugin_cli::command(action, &file, cli.config.is_some()).await
        }
        Command::Crawl(args) => {
            let _telemetry = init_logging("text")?;
            assistants_host::crawl_cli::command(args, &file).await
        }
        Command::CodeInterpreter { action } => {
            let _telemetry = init_logging("text")?;
            code_interpreter_command(action, &file).await
        }
        Command::Keys { storage, action } => {
            let storage = StorageSettings::resolve(&storage, &file);
            let store = Store::connect(&storage.database_url).await?;
            store.migrate().await?;
            match action {
                KeysAction::Create { project, admin } => {
                    let scope = if admin { Scope::Admin } else { Scope::Project };
                    let (id, key) = store.create_key_with(&project, scope).await?;
                    eprintln!(
                        "created {} key {id} for project '{project}'; the key is shown only once:",
                        scope.as_str()
                    );
                    println!("{key}");
                }
                KeysAction::List => {
                    println!(
                        "{:<30} {:<20} {:<8} {:<14} {:<12} revoked",
                        "id", "project", "scope", "prefix", "created"
                    );
                    for k in store.list_keys().await? {
                        println!(
                            "{:<30} {:<20} {:<8} {:<14} {:<12} {}",
                            k.id,
                            k.project,
                            k.scope.as_str(),
                            k.prefix,
                            k.created_at,
                            k.revoked_at
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "-".into())
                        );
                    }
                }
                KeysAction::Revoke { id } => {
                    if !store.revoke_key(&id).await? {
                        anyhow::bail!("no active key with id {id}");
                    }
                    println!("revoked {id}");
                }
            }
            Ok(())
        }
    }
}

fn init_logging(format: &str) -> anyhow::Result<telemetry::Telemetry> {
    telemetry::init(format, None)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// `assistants code-interpreter install`: the interpreter's files, unpacked and compiled.
async fn code_interpreter_command(
    action: CodeInterpreterAction,
    file: &FileConfig,
) -> anyhow::Result<()> {
    use assistants_core::interpreter::{artifact, engine};
    let CodeInterpreterAction::Install {
        dir,
        data_dir,
        wheel,
        index_url,
        plugin_cache_key_file,
        no_compile,
        force,
    } = action;
    let dir = dir.unwrap_or_else(|| {
        data_dir
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| "./data".into())
            .join("code-interpreter")
    });
    let installed = match artifact::Installed::find(&dir) {
        Ok(installed) if !force => installed,
        _ => artifact::install(&dir, wheel.as_deref(), &index_url).await?,
    };
    let root = installed.root.display().to_string();
    println!("{} is installed in {root}", artifact::WHEEL.file);
    if !no_compile {
        let key_file = plugin_cache_key_file.or_else(|| file.plugins.cache_key_file.clone());
        let key = assistants_core::plugins::cache::CacheKey::load(key_file.as_deref());
        let started = std::time::Instant::now();
        // Maps a verified compiled module if there is one (about a second), else compiles.
        tokio::task::spawn_blocking(move || {
            let engine = engine::engine()?;
            engine::compiled(&engine, &installed, &key).map(|_| ())
        })
        .await??;
        println!(
            "compiled for this machine (ready in {:.1?})",
            started.elapsed()
        );
    }
    Ok(())
}
