//! Vector-store ingestion: attached files go `in_progress → completed | failed` in the background.
//!
//! Pipeline per file: claim (a lease in the database) → read bytes from the blob store → extract
//! text (a parser component in the sandbox for documents, `parse` for plain text) → chunk by
//! tokens (`chunk`) → embed the chunks when the server has an embeddings model → write chunks
//! and complete, fenced by the lease token. Work is found in the database, not in memory: API handlers only `notify()` to wake
//! the workers early, and a poll picks up anything else (files attached on another node, or
//! left behind by a node that died, once their lease expires). So no attached file is ever lost.

pub mod chunk;
pub mod parse;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::blobs::{file_key, Blobs};
use crate::plugins::PluginHost;
use crate::search::SearchIndexes;
use crate::store::vector_stores::{IngestJob, NewChunk, MAX_INGEST_ATTEMPTS};
use crate::store::Store;

/// How long a claim is valid; a node that does not finish by then is presumed dead.
const LEASE_SECS: i64 = 300;
/// How often idle workers look for work they were not notified of.
const POLL: Duration = Duration::from_secs(1);
/// Largest file read into memory for text extraction.
const MAX_PARSE_BYTES: u64 = 100 * 1024 * 1024;
/// Token budget per file, as in the real API.
const MAX_FILE_TOKENS: usize = 5_000_000;

/// Wakes ingestion workers. Cheap to clone.
#[derive(Clone, Default)]
pub struct IngestHandle {
    wake: Arc<Notify>,
}

impl IngestHandle {
    /// Tells the workers new work may be waiting.
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }
}

/// What ingestion reads from and writes to.
#[derive(Clone)]
pub struct Deps {
    pub store: Store,
    pub blobs: Blobs,
    /// Parser components, for documents.
    pub parsers: Arc<PluginHost>,
    /// Holds the embedder, when the server has an embeddings model.
    pub search: Arc<SearchIndexes>,
    /// Files one project may have in flight, and its chunk quota.
    pub limits: crate::limits::ProjectLimits,
}

/// Starts `n` workers that run until `stop` is cancelled.
pub fn spawn_workers(
    n: usize,
    deps: Deps,
    handle: IngestHandle,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (deps, handle, stop) = (deps.clone(), handle.clone(), stop.clone());
            tokio::spawn(async move { worker(deps, handle, stop).await })
        })
        .collect()
}

async fn worker(deps: Deps, handle: IngestHandle, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        // Register interest before looking, so a notify between the claim and the wait is not lost.
        let woken = handle.wake.notified();
        match deps
            .store
            .claim_ingest(LEASE_SECS, deps.limits.max_ingest)
            .await
        {
            Ok(Some(job)) => {
                process(&deps, job).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "claiming ingestion work failed; retrying"),
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn process(deps: &Deps, job: IngestJob) {
    use tracing::Instrument;
    let span = tracing::info_span!("ingest", vector_store_id = %job.vector_store_id, file_id = %job.file_id);
    process_job(deps, job).instrument(span).await
}

async fn process_job(deps: &Deps, job: IngestJob) {
    let store = &deps.store;
    if job.attempts > MAX_INGEST_ATTEMPTS {
        let msg = "Ingestion was interrupted repeatedly; giving up on this file.";
        if let Err(e) = store.fail_ingest(&job, "server_error", msg).await {
            tracing::warn!(error = %e, "could not mark file failed");
        }
        return;
    }
    let outcome = match ingest(deps, &job).await {
        Ok(Outcome::Done(chunks, usage)) => within_chunk_quota(deps, &job, chunks, usage).await,
        other => other,
    };
    match outcome {
        Ok(Outcome::Done(chunks, usage)) => match store.complete_ingest(&job, &chunks, usage).await
        {
            Ok(true) => tracing::info!(chunks = chunks.len(), usage_bytes = usage, "file indexed"),
            Ok(false) => {
                tracing::info!("file changed while it was being indexed; result discarded")
            }
            // The lease expires and another attempt picks the file up.
            Err(e) => tracing::warn!(error = %e, "writing chunks failed; the file will be retried"),
        },
        Ok(Outcome::Failed(code, message)) => {
            tracing::info!(code, %message, "file could not be indexed");
            if let Err(e) = store.fail_ingest(&job, code, &message).await {
                tracing::warn!(error = %e, "could not mark file failed");
            }
        }
        Err(e) => {
            // Handed back now with a growing delay, rather than held until its lease lapses.
            let retry_in = (30 * job.attempts).clamp(30, 300);
            tracing::warn!(error = %e, retry_in, "ingestion failed transiently; the file will be retried");
            if let Err(e) = store.release_ingest(&job, retry_in).await {
                tracing::warn!(error = %e, "could not hand the file back; its lease will lapse");
            }
        }
    }
}

/// A file whose chunks would take its project past its chunk quota fails instead of landing.
async fn within_chunk_quota(
    deps: &Deps,
    job: &IngestJob,
    chunks: Vec<NewChunk>,
    usage_bytes: i64,
) -> Result<Outcome, IngestError> {
    if deps.limits.max_chunks.is_none() {
        return Ok(Outcome::Done(chunks, usage_bytes));
    }
    let held = deps.store.project_usage(&job.project_id).await?;
    let adding = crate::limits::Usage {
        chunks: chunks.len() as u64,
        ..Default::default()
    };
    Ok(match deps.limits.check(held, adding) {
        Ok(()) => Outcome::Done(chunks, usage_bytes),
        Err(e) => Outcome::Failed(
            "server_error",
            format!("The file's {} chunks were not stored: {e}", chunks.len()),
        ),
    })
}

/// Why a file could not be ingested this time; every case is transient (the file is handed
/// back and retried), unlike an `Outcome::Failed` file.
#[derive(Debug, thiserror::Error)]
enum IngestError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Blob(#[from] crate::blobs::BlobError),
    #[error("embedding chunks failed: {0}")]
    Embedding(String),
    #[error("{0} panicked: {1}")]
    Panicked(&'static str, tokio::task::JoinError),
}

enum Outcome {
    Done(Vec<NewChunk>, i64),
    Failed(&'static str, String),
}

async fn ingest(deps: &Deps, job: &IngestJob) -> Result<Outcome, IngestError> {
    let Deps {
        store,
        blobs,
        parsers,
        search,
        ..
    } = deps;
    let Some(file) = store
        .find::<crate::model::FileObject>(&job.project_id, &job.file_id)
        .await?
    else {
        return Ok(Outcome::Failed(
            "invalid_file",
            "The file was deleted.".into(),
        ));
    };
    let strategy = &job.chunking_strategy["static"];
    let max = strategy["max_chunk_size_tokens"].as_u64().unwrap_or(800) as usize;
    let overlap = strategy["chunk_overlap_tokens"].as_u64().unwrap_or(400) as usize;

    let text = match store.file_text(&job.file_id).await? {
        Some(t) => t,
        None => {
            if file.bytes as u64 > MAX_PARSE_BYTES {
                return Ok(Outcome::Failed(
                    "invalid_file",
                    format!(
                        "The file is {} bytes; at most {MAX_PARSE_BYTES} bytes can be indexed.",
                        file.bytes
                    ),
                ));
            }
            let bytes = blobs
                .get_bytes(&file_key(&job.file_id), MAX_PARSE_BYTES)
                .await?;
            let name = file.filename.clone();
            // Formats that need real parsing are read by a parser component in the sandbox;
            // text formats only need their encoding checked, here.
            let parsed = match parsers.parser_for(&parse::extension(&name)) {
                Some(parser) => parsers
                    .parse(&parser, &name, &bytes)
                    .await
                    .map_err(|(code, message)| parse::ParseError { code, message }),
                None => tokio::task::spawn_blocking(move || parse::extract_text(&name, &bytes))
                    .await
                    .map_err(|e| IngestError::Panicked("text extraction", e))?,
            };
            match parsed {
                Ok(t) => {
                    store.put_file_text(&job.file_id, &t).await?;
                    t
                }
                Err(e) => return Ok(Outcome::Failed(e.code, e.message)),
            }
        }
    };
    let usage = text.len() as i64;
    let chunks = tokio::task::spawn_blocking(move || {
        let (chunks, total_tokens) = chunk::chunk(&text, max, overlap);
        if total_tokens > MAX_FILE_TOKENS {
            return Err(());
        }
        Ok(chunks)
    })
    .await
    .map_err(|e| IngestError::Panicked("chunking", e))?;
    match chunks {
        Ok(chunks) => {
            // With an embeddings model, every chunk gets its vector; a failed call is a
            // transient error (the file is retried), not a file without vectors.
            let vectors = match search.embedder() {
                Some(embedder) => {
                    let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
                    let v = embedder
                        .embed(&texts)
                        .await
                        .map_err(|e| IngestError::Embedding(e.message().to_string()))?;
                    v.into_iter().map(Some).collect()
                }
                None => vec![None; chunks.len()],
            };
            Ok(Outcome::Done(
                chunks
                    .into_iter()
                    .zip(vectors)
                    .map(|(c, embedding)| NewChunk {
                        tokens: c.tokens as i64,
                        text: c.text,
                        embedding,
                    })
                    .collect(),
                usage,
            ))
        }
        Err(()) => Ok(Outcome::Failed(
            "invalid_file",
            format!("The file has more than {MAX_FILE_TOKENS} tokens, the most a file may have."),
        )),
    }
}
