//! Persisted indexes: a node that built or merged a large store's index writes it whole to
//! the object store (`search/{store}/…`, recorded in `search_snapshots`), and a node without
//! that store's index (restarted, or another node of the cluster) loads the newest snapshot
//! and brings it up to date like any cached index (`refresh.rs`: only files changed since
//! are read). A snapshot is a cache: one that cannot be read (damaged, deleted by a newer
//! one mid-read, of another format) is logged and the node reads the store instead.
//!
//! Writing and reading stream through a bounded channel between the object store and a
//! blocking thread that encodes or decodes (`codec.rs`), so a multi-gigabyte index is never
//! held twice in memory. A snapshot is written when none exists or the index's size moved
//! by a tenth since the last one, for stores of at least [`MIN_CHUNKS`] chunks (smaller ones
//! are read from the database in well under a second).

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::codec::{Reader, Writer};
use super::index::StoreIndex;
use crate::blobs::{BlobRead, Blobs, PutError};
use crate::store::vector_stores::{Recorded, SearchSnapshot};
use crate::store::Store;

/// Stores smaller than this are not persisted.
pub const MIN_CHUNKS: usize = 10_000;
/// How much an index's size must move since its last snapshot for a new one.
const GROWTH: f64 = 0.1;
/// Bytes per message between the object store and the coding thread.
const PIECE: usize = 4 << 20;

pub(super) struct Snapshots {
    blobs: Blobs,
    /// Stores this node is writing a snapshot of (one at a time per store).
    saving: Mutex<HashSet<String>>,
    pub(super) min_chunks: usize,
    /// Snapshots written by this node.
    pub(super) written: std::sync::atomic::AtomicU64,
}

/// The object a store's snapshots live under.
pub(super) fn prefix(vs_id: &str) -> String {
    format!("search/{vs_id}/")
}

impl Snapshots {
    pub fn new(blobs: Blobs) -> Snapshots {
        Snapshots {
            blobs,
            saving: Mutex::default(),
            min_chunks: MIN_CHUNKS,
            written: Default::default(),
        }
    }

    /// The store's newest snapshot, if it has one that loads.
    pub async fn load(&self, store: &Store, vs_id: &str) -> Option<StoreIndex> {
        let snap = match store.search_snapshot(vs_id).await {
            Ok(snap) => snap?,
            Err(e) => {
                tracing::warn!(vector_store_id = vs_id, error = %e, "could not look up a search snapshot");
                return None;
            }
        };
        let started = std::time::Instant::now();
        match self.read(&snap).await {
            Ok(ix) => {
                tracing::info!(
                    vector_store_id = vs_id,
                    generation = snap.generation,
                    chunks = ix.chunks(),
                    bytes = snap.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded a search snapshot"
                );
                Some(ix)
            }
            Err(e) => {
                tracing::warn!(vector_store_id = vs_id, key = snap.blob_key, error = %e,
                    "could not load a search snapshot; reading the store");
                // Forgotten, so the index read instead is persisted in its place (otherwise
                // every node and restart would read the whole store until it grew a tenth).
                if let Err(e) = store.drop_search_snapshot(vs_id, &snap.blob_key).await {
                    tracing::warn!(vector_store_id = vs_id, error = %e, "could not forget a search snapshot");
                }
                None
            }
        }
    }

    async fn read(&self, snap: &SearchSnapshot) -> anyhow::Result<StoreIndex> {
        let (size, object) = self.blobs.open_read(&snap.blob_key).await?;
        anyhow::ensure!(
            i64::try_from(size) == Ok(snap.bytes),
            "the object has {size} bytes, the snapshot {}",
            snap.bytes
        );
        fn decode(input: impl Read, size: u64) -> io::Result<StoreIndex> {
            StoreIndex::read(&mut Reader::new(input, size))
        }
        let mut source = match object {
            BlobRead::File(file) => {
                let input = io::BufReader::with_capacity(PIECE, file);
                return Ok(tokio::task::spawn_blocking(move || decode(input, size)).await??);
            }
            BlobRead::Stream(source) => source,
        };
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let decoded = tokio::task::spawn_blocking(move || {
            let input = ChannelReader {
                rx,
                piece: Bytes::new(),
            };
            decode(input, size)
        });
        while let Some(piece) = source.next().await {
            if tx.send(piece?).await.is_err() {
                break; // The decoder stopped: its error says why.
            }
        }
        drop(tx);
        Ok(decoded.await??)
    }

    /// Whether `ix` is worth writing, given the store's current snapshot.
    fn due(&self, ix: &StoreIndex, current: Option<&SearchSnapshot>) -> bool {
        if ix.chunks() < self.min_chunks {
            return false;
        }
        match current {
            None => true,
            Some(s) => {
                s.generation < ix.generation
                    && (ix.chunks() as f64 - s.chunks as f64).abs() >= GROWTH * s.chunks as f64
            }
        }
    }

    /// Writes a snapshot of `ix` in the background if one is due.
    pub fn save_if_due(self: &Arc<Self>, store: &Store, vs_id: &str, ix: &Arc<StoreIndex>) {
        if ix.chunks() < self.min_chunks
            || !self
                .saving
                .lock()
                .expect("snapshot lock poisoned")
                .insert(vs_id.to_string())
        {
            return;
        }
        let (this, store, id, ix) = (self.clone(), store.clone(), vs_id.to_string(), ix.clone());
        tokio::spawn(async move {
            let outcome = match store.search_snapshot(&id).await {
                Ok(current) if this.due(&ix, current.as_ref()) => this.save(&store, &id, ix).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = outcome {
                tracing::warn!(vector_store_id = id, error = %e, "could not write a search snapshot");
            }
            this.saving
                .lock()
                .expect("snapshot lock poisoned")
                .remove(&id);
        });
    }

    async fn save(&self, store: &Store, vs_id: &str, ix: Arc<StoreIndex>) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let key = format!(
            "{}{}-{:016x}.idx",
            prefix(vs_id),
            ix.generation,
            rand::random::<u64>()
        );
        let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
        let (generation, chunks) = (ix.generation, ix.chunks());
        let encode = tokio::task::spawn_blocking(move || {
            let sink = ChannelWriter { tx: tx.clone() };
            let mut w = Writer::new(io::BufWriter::with_capacity(PIECE, sink));
            let written = ix.write(&mut w).and_then(|()| w.into_inner().flush());
            if let Err(e) = &written {
                // Fail the upload rather than store a truncated snapshot.
                let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            written
        });
        let pieces = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        });
        let uploaded = self
            .blobs
            .put_stream(&key, Box::pin(pieces), u64::MAX)
            .await;
        // An upload that failed stopped the encoder too: its error is the one to report.
        let bytes = uploaded.map_err(|e| match e {
            PutError::Store(e) => anyhow::Error::new(e),
            PutError::Source(e) => anyhow::anyhow!("encoding: {e}"),
            PutError::TooLarge { limit } => anyhow::anyhow!("over {limit} bytes"),
        })?;
        encode.await??;
        let snap = SearchSnapshot {
            generation,
            blob_key: key.clone(),
            chunks: chunks as i64,
            bytes: bytes as i64,
        };
        let recorded = store.record_search_snapshot(vs_id, &snap).await;
        let unused = match &recorded {
            Ok(Recorded::Replaced(old)) => old.clone(),
            Ok(Recorded::Stale) | Err(_) => Some(key),
        };
        if let Some(unused) = unused {
            if let Err(e) = self.blobs.delete(&unused).await {
                tracing::warn!(key = unused, error = %e, "could not delete an unused search snapshot");
            }
        }
        if recorded? == Recorded::Stale {
            return Ok(());
        }
        self.written
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::obs::metrics::metrics().search_index("snapshot");
        tracing::info!(
            vector_store_id = vs_id,
            generation,
            chunks,
            bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wrote a search snapshot"
        );
        Ok(())
    }

    /// Deletes every snapshot of a deleted store.
    pub async fn forget(&self, vs_id: &str) {
        if let Err(e) = self.blobs.delete_prefix(&prefix(vs_id)).await {
            tracing::warn!(vector_store_id = vs_id, error = %e, "could not delete search snapshots");
        }
    }
}

/// The encoder's output, as pieces for the upload.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The download, as bytes for the decoder.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    piece: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.piece.is_empty() {
            match self.rx.blocking_recv() {
                Some(piece) => self.piece = piece,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.piece.len());
        buf[..n].copy_from_slice(&self.piece[..n]);
        self.piece = self.piece.slice(n..);
        Ok(n)
    }
}

/// How long an object under `search/` may go unrecorded before the janitor's [`sweep`]
/// deletes it: longer
/// than writing and recording the largest snapshot takes.
pub const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes snapshot objects no store records (a node that died between writing and
/// recording one, a snapshot that did not load, a deleted store whose objects could not be
/// deleted then) once they are `age` old ([`ORPHAN_AGE`] for the janitor). Returns how many
/// it deleted.
pub async fn sweep(
    store: &Store,
    blobs: &Blobs,
    age: std::time::Duration,
) -> anyhow::Result<usize> {
    let before = crate::model::ids::now() - age.as_secs() as i64;
    let mut deleted = 0;
    for key in blobs.list_older("search/", before).await? {
        let Some(vs_id) = key
            .strip_prefix("search/")
            .and_then(|k| k.split('/').next())
        else {
            continue;
        };
        let recorded = store.search_snapshot(vs_id).await?;
        if recorded.is_none_or(|s| s.blob_key != key) {
            blobs.delete(&key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}
