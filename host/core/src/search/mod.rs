//! Search over a vector store's chunks: lexical (BM25), and hybrid with embeddings.
//!
//! The chunks table is the source of truth; a store's index is a per-node cache of it, keyed
//! by the store's `index_generation`, which every change to the store's chunks or attributes
//! bumps in the same transaction. A search reads the generation (one indexed query) and,
//! when it moved, brings the cached index up to date before answering, so any node of a
//! distributed deployment serves any store and never answers from stale content.
//!
//! Bringing an index up to date is incremental (`index.rs`, `refresh.rs`): the store's list of
//! completed files says which files changed since, only their chunks are read, into a new
//! segment, and the old segments are shared with the new index; a background merge keeps the
//! segments few (`segment.rs`). A node without an index reads the whole store once. A refresh
//! runs as its own task shared by every search waiting for it (a burst of searches after
//! ingestion refreshes once, and a search that gives up does not cancel it).
//!
//! The index holds no chunk text: results are read back by row number (`chunks.seq`), at
//! most `max_num_results` rows per search.
//!
//! Hybrid search: when the server has an embeddings model ([`Embeddings`]), chunks carry unit
//! vectors and the query is embedded too; the best chunks of the lexical ranking and of the
//! vector ranking ([`vectors`]) are fused by reciprocal rank (k = 60), and a chunk's score is
//! the better of its normalised BM25 and its cosine similarity (clamped to 0..1). Without a
//! model, or if the query cannot be embedded, search is lexical (and says so in the log).

mod codec;
mod filter;
mod index;
#[cfg(test)]
mod index_tests;
pub mod lexical;
mod plugin_search;
mod refresh;
mod segment;
mod snapshots;
pub mod vectors;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use filter::{Filter, FilterError, Op};
pub use lexical::terms;
pub use plugin_search::PluginSearch;

use crate::blobs::Blobs;
use crate::llm::Embeddings;
use crate::store::{Store, StoreError, StoreResult};
use index::StoreIndex;
use snapshots::Snapshots;
pub use snapshots::MIN_CHUNKS as SNAPSHOT_MIN_CHUNKS;

/// Stores whose index stays cached per node; least recently used beyond this are dropped.
const MAX_CACHED_STORES: usize = 64;
/// Memory the cached indexes of one node may hold (a million-chunk store with 1,536-dimension
/// embeddings takes about 2.5 GiB); the most recently built index is kept even if larger.
const MAX_CACHED_BYTES: usize = 8 << 30;
/// Reciprocal-rank fusion constant.
const RRF_K: f32 = 60.0;
/// How many of each ranking's best chunks are fused (results are at most 50).
const FUSION_WINDOW: usize = 100;
/// How many chunks the vector index's first (sign-bit) pass keeps for exact rescoring: enough
/// for the same top results as an exhaustive scan (measured by the `search` bench).
const VECTOR_CANDIDATES: usize = 1_000;

/// One search result.
#[derive(Debug, Clone)]
pub struct Hit {
    pub file_id: String,
    pub filename: String,
    pub score: f64,
    pub attributes: Option<Value>,
    pub text: String,
}

/// Longest query text a search accepts (the API's `query`, a retrieval plugin's request):
/// tokenising and embedding it is paid before any limit on results applies.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Most queries one API search may carry (`query` as an array).
pub const MAX_QUERIES: usize = 10;

pub struct SearchRequest<'a> {
    pub queries: &'a [String],
    pub max_results: usize,
    pub threshold: f64,
    pub filter: Option<&'a Filter>,
    /// Re-rank an oversampled set of vector candidates (every ranker but `none`, which
    /// rescores only as many as it returns: less work, sometimes a missed neighbour).
    pub rerank: bool,
    /// The query's embedding, computed on first need and shared by every store one search
    /// covers (a retrieval call searching several stores embeds its query once).
    pub query_vector: &'a QueryVector,
}

/// See [`SearchRequest::query_vector`]; start with `QueryVector::new()`.
pub type QueryVector = tokio::sync::OnceCell<Option<Vec<f32>>>;

/// An index refresh in progress, shared by every search waiting for it.
type PendingIndex =
    futures::future::Shared<futures::future::BoxFuture<'static, StoreResult<Arc<StoreIndex>>>>;

/// What a node's indexes have done since it started (for tests and operators).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// Indexes read whole from the database (a store this node had not cached, without a
    /// usable snapshot).
    pub full_builds: u64,
    /// Indexes loaded from a snapshot (then brought up to date like a refresh).
    pub loads: u64,
    /// Snapshots this node wrote.
    pub snapshots_written: u64,
    /// Indexes brought up to date by reading only the files that changed.
    pub refreshes: u64,
    /// Segment merges installed.
    pub merges: u64,
}

/// Cached indexes by store, with their last use.
type Cache = Mutex<HashMap<String, (Arc<StoreIndex>, u64)>>;

/// Per-node cache of store indexes.
#[derive(Default)]
pub struct SearchIndexes {
    /// Query embeddings for hybrid search, when the server has an embeddings model.
    embedder: Option<Arc<dyn Embeddings>>,
    cached: Arc<Cache>,
    /// Refreshes in progress by store: their generation, the shared result and a handle to
    /// stop one a newer generation made useless. A refresh runs as its own task, so a search
    /// that gives up (a tool call's time limit, a client that hangs up) does not throw away
    /// a large store's first build: the next search picks up the result.
    building: Mutex<HashMap<String, (i64, PendingIndex, tokio::task::AbortHandle)>>,
    /// Stores with a merge running (one at a time per store).
    merging: Arc<Mutex<HashSet<String>>>,
    clock: Arc<AtomicU64>,
    /// Persisted indexes, when the node has an object store for them.
    snapshots: Option<Arc<Snapshots>>,
    full_builds: Arc<AtomicU64>,
    loads: Arc<AtomicU64>,
    refreshes: AtomicU64,
    merges: Arc<AtomicU64>,
}

impl SearchIndexes {
    /// Indexes whose searches are hybrid when `embedder` is given (the server's embeddings
    /// model), lexical otherwise.
    pub fn new(embedder: Option<Arc<dyn Embeddings>>) -> SearchIndexes {
        SearchIndexes {
            embedder,
            ..Default::default()
        }
    }

    /// Persists the indexes of stores of at least `min_chunks` chunks in `blobs`, and loads
    /// them from there (see `snapshots.rs`); [`SNAPSHOT_MIN_CHUNKS`] is the server's choice.
    pub fn with_snapshots(mut self, blobs: Blobs, min_chunks: usize) -> SearchIndexes {
        let mut snapshots = Snapshots::new(blobs);
        snapshots.min_chunks = min_chunks;
        self.snapshots = Some(Arc::new(snapshots));
        self
    }

    /// The embeddings model chunks and queries are embedded with, if any.
    pub fn embedder(&self) -> Option<Arc<dyn Embeddings>> {
        self.embedder.clone()
    }

    pub fn stats(&self) -> IndexStats {
        IndexStats {
            full_builds: self.full_builds.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            snapshots_written: self
                .snapshots
                .as_ref()
                .map_or(0, |s| s.written.load(Ordering::Relaxed)),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            merges: self.merges.load(Ordering::Relaxed),
        }
    }

    /// Drops the cached index of a store (a deleted store: frees its memory at once).
    pub fn invalidate(&self, vs_id: &str) {
        self.cached
            .lock()
            .expect("search cache poisoned")
            .remove(vs_id);
    }

    /// Forgets a deleted store: its cached index and its snapshots.
    pub async fn forget(&self, vs_id: &str) {
        self.invalidate(vs_id);
        if let Some(s) = &self.snapshots {
            s.forget(vs_id).await;
        }
    }

    pub fn invalidate_all(&self) {
        self.cached.lock().expect("search cache poisoned").clear();
    }

    /// The cached index of a store, whatever its generation.
    fn cached(&self, vs_id: &str) -> Option<Arc<StoreIndex>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut map = self.cached.lock().expect("search cache poisoned");
        let entry = map.get_mut(vs_id)?;
        entry.1 = tick;
        Some(entry.0.clone())
    }

    async fn index(&self, store: &Store, vs_id: &str) -> StoreResult<Arc<StoreIndex>> {
        let generation = store.index_generation(vs_id).await?;
        let base = self.cached(vs_id);
        // Equal, or newer than the generation this search read a moment ago: current enough.
        if let Some(ix) = base.as_ref().filter(|ix| ix.generation >= generation) {
            return Ok(ix.clone());
        }
        let pending = {
            let mut building = self.building.lock().expect("search cache poisoned");
            match building.get(vs_id) {
                Some((g, pending, _)) if *g >= generation => pending.clone(),
                _ => {
                    let (store, id) = (store.clone(), vs_id.to_string());
                    if base.is_some() {
                        self.refreshes.fetch_add(1, Ordering::Relaxed);
                    }
                    let (snapshots, loads, full_builds) = (
                        self.snapshots.clone(),
                        self.loads.clone(),
                        self.full_builds.clone(),
                    );
                    let task = tokio::spawn(async move {
                        let base = match base {
                            Some(base) => base,
                            None => {
                                let loaded = match &snapshots {
                                    Some(s) => s.load(&store, &id).await,
                                    None => None,
                                };
                                let counter = if loaded.is_some() { loads } else { full_builds };
                                counter.fetch_add(1, Ordering::Relaxed);
                                Arc::new(loaded.unwrap_or_default())
                            }
                        };
                        refresh::refresh(&store, &id, generation, base)
                            .await
                            .map(Arc::new)
                    });
                    let abort = task.abort_handle();
                    let pending: PendingIndex = futures::FutureExt::shared(Box::pin(async move {
                        task.await.unwrap_or_else(|e| {
                            Err(StoreError::internal("building a search index", e))
                        })
                    })
                        as futures::future::BoxFuture<'static, _>);
                    if let Some((_, _, older)) =
                        building.insert(vs_id.to_string(), (generation, pending.clone(), abort))
                    {
                        older.abort();
                    }
                    pending
                }
            }
        };
        let ix = pending.await?;
        {
            let mut building = self.building.lock().expect("search cache poisoned");
            if building
                .get(vs_id)
                .is_some_and(|(g, _, _)| *g == ix.generation)
            {
                building.remove(vs_id);
            }
        }
        install(&self.cached, &self.clock, vs_id, ix.clone());
        if let Some(s) = &self.snapshots {
            s.save_if_due(store, vs_id, &ix);
        }
        self.merge_in_background(store, vs_id, &ix);
        Ok(ix)
    }

    /// Starts merging segments of a store's index if it has enough of them (and no merge of
    /// that store is running). The merged index replaces the cached one if that still holds
    /// the merged segments; otherwise the next refresh plans again.
    fn merge_in_background(&self, store: &Store, vs_id: &str, ix: &Arc<StoreIndex>) {
        let Some(parts) = ix.merge_plan() else { return };
        if !self
            .merging
            .lock()
            .expect("search cache poisoned")
            .insert(vs_id.to_string())
        {
            return;
        }
        let (cached, clock, merging, merges) = (
            self.cached.clone(),
            self.clock.clone(),
            self.merging.clone(),
            self.merges.clone(),
        );
        let (ix, id, store) = (ix.clone(), vs_id.to_string(), store.clone());
        let (snapshots, runtime) = (self.snapshots.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let chunks: usize = parts.iter().map(|p| p.len()).sum();
            let merged = ix.merge(&parts);
            let current = cached
                .lock()
                .expect("search cache poisoned")
                .get(&id)
                .map(|(c, _)| c.clone());
            let installed = current
                .and_then(|current| {
                    let next = Arc::new(current.with_merged(&parts, merged)?);
                    swap(&cached, &clock, &id, &current, next.clone()).then_some(next)
                })
                .inspect(|next| {
                    merges.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = &snapshots {
                        let _entered = runtime.enter();
                        s.save_if_due(&store, &id, next);
                    }
                });
            merging.lock().expect("search cache poisoned").remove(&id);
            tracing::debug!(
                vector_store_id = id,
                segments = parts.len(),
                chunks,
                installed = installed.is_some(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "merged search index segments"
            );
        });
    }

    /// Ranked chunks of one store.
    pub async fn search(
        &self,
        store: &Store,
        vs_id: &str,
        req: &SearchRequest<'_>,
    ) -> StoreResult<Vec<Hit>> {
        let ix = self.index(store, vs_id).await?;
        let mut query_terms: Vec<String> = req.queries.iter().flat_map(|q| terms(q)).collect();
        query_terms.sort();
        query_terms.dedup();
        let query_vector = self.query_vector(req, &ix).await;
        let (max_results, threshold, filter, rerank) = (
            req.max_results,
            req.threshold,
            req.filter.cloned(),
            req.rerank,
        );
        // Ranking a large store is milliseconds of CPU: keep it off the async workers.
        let ranking = ix.clone();
        let ranked = tokio::task::spawn_blocking(move || {
            ranking.rank(
                &query_terms,
                query_vector.as_deref(),
                max_results,
                threshold,
                filter.as_ref(),
                rerank,
            )
        })
        .await
        .map_err(|e| StoreError::internal("searching", e))?;
        let seqs: Vec<i64> = ranked.iter().map(|(c, _)| ix.chunk(*c).0).collect();
        let mut texts = store.chunk_texts(&seqs).await?;
        // A chunk deleted since the index was built (its file was removed a moment ago) is
        // no longer a result.
        Ok(ranked
            .into_iter()
            .zip(seqs)
            .filter_map(|((c, score), seq)| {
                let text = texts.remove(&seq)?;
                let f = ix.chunk(c).1;
                Some(Hit {
                    file_id: f.id.clone(),
                    filename: f.filename.clone(),
                    score,
                    attributes: f.attributes.clone(),
                    text,
                })
            })
            .collect())
    }

    /// The query's embedding, when search can be hybrid: the caller supplied it, or a model is
    /// configured and the store has vectors. A failed embedding call degrades to lexical
    /// search, with a warning.
    async fn query_vector(&self, req: &SearchRequest<'_>, ix: &StoreIndex) -> Option<Vec<f32>> {
        if ix.vectors() == 0 {
            return None;
        }
        if let Some(v) = req.query_vector.get() {
            return v.clone();
        }
        let embedder = self.embedder.as_ref()?;
        req.query_vector
            .get_or_init(|| async {
                let query = req.queries.join("\n");
                match embedder.embed(&[query]).await {
                    Ok(mut v) => v.pop(),
                    Err(e) => {
                        tracing::warn!(
                            error = e.message(),
                            "could not embed the query; searching lexically"
                        );
                        None
                    }
                }
            })
            .await
            .clone()
    }
}

/// Caches a refreshed index (unless a newer one is there), evicting the least recently used
/// stores beyond the count and memory budgets (the newest always stays).
fn install(cache: &Cache, clock: &AtomicU64, vs_id: &str, ix: Arc<StoreIndex>) {
    let tick = clock.fetch_add(1, Ordering::Relaxed);
    let mut map = cache.lock().expect("search cache poisoned");
    if map
        .get(vs_id)
        .is_some_and(|(have, _)| have.generation >= ix.generation)
    {
        return;
    }
    map.insert(vs_id.to_string(), (ix, tick));
    loop {
        let bytes: usize = map.values().map(|(ix, _)| ix.bytes()).sum();
        if map.len() <= 1 || (map.len() <= MAX_CACHED_STORES && bytes <= MAX_CACHED_BYTES) {
            break;
        }
        let Some(oldest) = map
            .iter()
            .filter(|(k, _)| k.as_str() != vs_id)
            .min_by_key(|(_, (_, t))| *t)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

/// Replaces the cached index `was` of a store by `merged` (its segments merged), if `was` is
/// still the one cached; whether it did.
fn swap(
    cache: &Cache,
    clock: &AtomicU64,
    vs_id: &str,
    was: &Arc<StoreIndex>,
    merged: Arc<StoreIndex>,
) -> bool {
    let tick = clock.fetch_add(1, Ordering::Relaxed);
    let mut map = cache.lock().expect("search cache poisoned");
    match map.get_mut(vs_id) {
        Some(entry) if Arc::ptr_eq(&entry.0, was) => {
            *entry = (merged, tick);
            true
        }
        _ => false,
    }
}

/// Reciprocal-rank fusion of the lexical and the vector rankings; each chunk scores the
/// better of its two 0..1 scores.
fn fuse(lexical: &[(u32, f64)], vector: &[(u32, f64)]) -> Vec<(u32, f64)> {
    let mut fused: HashMap<u32, (f32, f64)> = HashMap::new();
    for ranking in [lexical, vector] {
        for (rank, (c, score)) in ranking.iter().enumerate() {
            let e = fused.entry(*c).or_insert((0.0, 0.0));
            e.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
            e.1 = e.1.max(*score);
        }
    }
    let mut out: Vec<(u32, f32, f64)> = fused.into_iter().map(|(c, (r, s))| (c, r, s)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.into_iter().map(|(c, _, s)| (c, s)).collect()
}
