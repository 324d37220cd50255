//! The `assistants` binary: parses the command line and runs a subcommand.

use anyhow::Context;
use assistants_host::config::{Cli, Command, FileConfig, KeysAction, Settings, StorageSettings};
use assistants_host::store::Store;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = FileConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&args, &file);
            init_logging(&settings.log_format);
            tracing::info!(?settings, "starting");
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding {}", settings.listen))?;
            assistants_host::start(settings, listener, shutdown_signal()).await
        }
        Command::Migrate(args) => {
            init_logging("text");
            let storage = StorageSettings::resolve(&args, &file);
            let store = Store::connect(&storage.database_url).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keys { storage, action } => {
            let storage = StorageSettings::resolve(&storage, &file);
            let store = Store::connect(&storage.database_url).await?;
            store.migrate().await?;
            match action {
                KeysAction::Create { project } => {
                    let (id, key) = store.create_key(&project).await?;
                    eprintln!("created {id} for project '{project}'; the key is shown only once:");
                    println!("{key}");
                }
                KeysAction::List => {
                    println!(
                        "{:<30} {:<20} {:<14} {:<12} revoked",
                        "id", "project", "prefix", "created"
                    );
                    for k in store.list_keys().await? {
                        println!(
                            "{:<30} {:<20} {:<14} {:<12} {}",
                            k.id,
                            k.project,
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

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASSISTANTS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
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
