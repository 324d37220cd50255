//! `assistants crawl --store ID URL…`: records a crawl in the database the way the API's
//! `POST /v1/vector_stores/{id}/crawls` does (same validation, the operator's grant checked),
//! for a running server or worker node to carry out; `--wait` follows it to its end.

use std::time::Duration;

use anyhow::{bail, Context};
use assistants_core::crawl::spec::{CrawlRequest, CrawlSpec};
use assistants_core::crawl::{granted, CRAWLER};
use assistants_core::model::ids::CrawlId;
use assistants_core::model::CrawlStatus;
use assistants_core::store::Store;

use crate::config::{CrawlArgs, FileConfig, StorageSettings};

/// Runs the command; the crawl's id goes to stdout, progress to stderr.
pub async fn command(args: CrawlArgs, file: &FileConfig) -> anyhow::Result<()> {
    let hosts = file
        .plugins
        .grants
        .get(CRAWLER)
        .map(|g| g.hosts.clone())
        .unwrap_or_default();
    if hosts.is_empty() {
        bail!(
            "the crawler is granted no site: add [plugins.grants.crawler] hosts = [...] to the \
             config file (pass it with --config), for this command and the server alike"
        );
    }
    let request = CrawlRequest {
        root_urls: Some(args.urls),
        max_depth: args.max_depth,
        max_pages: args.max_pages,
        same_domain: Some(!args.any_domain),
        include_patterns: Some(args.include),
        exclude_patterns: Some(args.exclude),
        recrawl_interval_seconds: args.every,
        chunking_strategy: None,
    };
    let auto = serde_json::json!({"type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}});
    let spec = CrawlSpec::validate(request, auto).map_err(|e| anyhow::anyhow!(e.message))?;
    for root in &spec.root_urls {
        let url = url::Url::parse(root)?;
        if !granted(&hosts, &url) {
            bail!(
                "{} is not among the sites granted to the crawler ([plugins.grants.crawler] hosts)",
                url.host_str().unwrap_or(root)
            );
        }
    }
    let storage = StorageSettings::resolve(&args.storage, file);
    let store = Store::connect(&storage.database_url).await?;
    store.migrate().await?;
    let project = store
        .vector_store_project(&args.store)
        .await?
        .with_context(|| format!("no vector store with id {}", args.store))?;
    let id = CrawlId::new();
    store
        .create_crawl(&project, &args.store, &id, &spec)
        .await?;
    eprintln!(
        "crawl {id} of {} into {} recorded; a running server or worker node crawls it",
        spec.root_urls.join(", "),
        args.store
    );
    println!("{id}");
    if args.wait {
        wait(&store, &project, &args.store, &id).await?;
    }
    Ok(())
}

/// Follows the crawl until its pass ended and its pages were ingested.
async fn wait(store: &Store, project: &str, vs: &str, id: &str) -> anyhow::Result<()> {
    let mut last = String::new();
    loop {
        let crawl = store
            .crawl(project, vs, id)
            .await?
            .context("the crawl was deleted (with its vector store)")?;
        let pages = store.page_counts(&crawl).await?;
        let files = store.crawl_file_counts(&crawl).await?;
        let line = format!(
            "{}: {} pages stored, {} unchanged, {} skipped, {} failed, {} removed, {} queued; \
             {} files ingested, {} in progress",
            crawl.status,
            pages.stored,
            pages.unchanged,
            pages.skipped,
            pages.failed,
            pages.removed,
            pages.queued,
            files.completed,
            files.in_progress
        );
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        match crawl.status {
            CrawlStatus::InProgress => {}
            CrawlStatus::Completed if files.in_progress > 0 => {}
            CrawlStatus::Completed => return Ok(()),
            CrawlStatus::Failed | CrawlStatus::Cancelled => {
                let why = crawl
                    .last_error
                    .as_ref()
                    .and_then(|e| e["message"].as_str())
                    .unwrap_or("cancelled");
                bail!("the crawl ended {}: {why}", crawl.status);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
