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
use crate::obs::metrics::metrics;
use crate::store::{Store, StoreError, StoreResult};
use index::StoreIndex;
use snapshots::Snapshots;
pub use snapshots::{
    sweep as sweep_snapshots, MIN_CHUNKS as SNAPSHOT_MIN_CHUNKS, ORPHAN_AGE as SNAPSHOT_ORPHAN_AGE,
};

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

/// Per-node cache of store indexes.
#[derive(Default)]
pub struct SearchIndexes {
    /// Query embeddings for hybrid search, when the server has an embeddings model.
    embedder: Option<Arc<dyn Embeddings>>,
    shared: Arc<Shared>,
}

/// A merge: the segments merged, and the segment they became.
type Merge = (Vec<Arc<segment::Segment>>, Arc<segment::Segment>);

/// What searches share with the refreshes and merges running in the background.
#[derive(Default)]
struct Shared {
    /// Cached indexes by store, with their last use.
    cached: Mutex<HashMap<String, (Arc<StoreIndex>, u64)>>,
    clock: AtomicU64,
    /// Refreshes in progress by store: the generation the newest one brings the index to.
    /// A refresh runs as its own task, so a search that gives up (a tool call's time limit, a
    /// client that hangs up) does not throw away a large store's first build.
    building: Mutex<HashMap<String, (i64, PendingIndex)>>,
    /// Stores with a merge running (one at a time per store).
    merging: Mutex<HashSet<String>>,
    /// A store's last merge (its parts, the merged segment), kept while a refresh that started
    /// from an index before it is running, so that refresh's index takes it on install
    /// instead of dropping it.
    merged: Mutex<HashMap<String, Merge>>,
    /// Persisted indexes, when the node has an object store for them.
    snapshots: Option<Arc<Snapshots>>,
    full_builds: AtomicU64,
    loads: AtomicU64,
    refreshes: AtomicU64,
    merges: AtomicU64,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("search cache poisoned")
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
    pub fn with_snapshots(self, blobs: Blobs, min_chunks: usize) -> SearchIndexes {
        let mut snapshots = Snapshots::new(blobs);
        snapshots.min_chunks = min_chunks;
        SearchIndexes {
            embedder: self.embedder,
            shared: Arc::new(Shared {
                snapshots: Some(Arc::new(snapshots)),
                ..Default::default()
            }),
        }
    }

    /// The embeddings model chunks and queries are embedded with, if any.
    pub fn embedder(&self) -> Option<Arc<dyn Embeddings>> {
        self.embedder.clone()
    }

    pub fn stats(&self) -> IndexStats {
        let s = &self.shared;
        IndexStats {
            full_builds: s.full_builds.load(Ordering::Relaxed),
            loads: s.loads.load(Ordering::Relaxed),
            snapshots_written: s
                .snapshots
                .as_ref()
                .map_or(0, |s| s.written.load(Ordering::Relaxed)),
            refreshes: s.refreshes.load(Ordering::Relaxed),
            merges: s.merges.load(Ordering::Relaxed),
        }
    }

    /// Drops the cached index of a store (a deleted store: frees its memory at once).
    pub fn invalidate(&self, vs_id: &str) {
        locked(&self.shared.cached).remove(vs_id);
        locked(&self.shared.merged).remove(vs_id);
    }

    /// Forgets a deleted store: its cached index and its snapshots.
    pub async fn forget(&self, vs_id: &str) {
        self.invalidate(vs_id);
        if let Some(s) = &self.shared.snapshots {
            s.forget(vs_id).await;
        }
    }

    async fn index(&self, store: &Store, vs_id: &str) -> StoreResult<Arc<StoreIndex>> {
        let generation = store.index_generation(vs_id).await?;
        let base = self.shared.cached(vs_id);
        // Equal, or newer than the generation this search read a moment ago: current enough.
        if let Some(ix) = base.as_ref().filter(|ix| ix.generation >= generation) {
            return Ok(ix.clone());
        }
        let (target, pending) = {
            let mut building = locked(&self.shared.building);
            match building.get(vs_id) {
                Some((g, pending)) if *g >= generation => (*g, pending.clone()),
                running => {
                    // A newer refresh starts from the running one's result (a small delta)
                    // rather than stopping it: stopped, a node whose first build takes longer
                    // than the gap between two changes would never finish one.
                    let previous = running.map(|(_, p)| p.clone());
                    let (shared, store, id) =
                        (self.shared.clone(), store.clone(), vs_id.to_string());
                    let task = tokio::spawn(async move {
                        let base = match previous {
                            Some(previous) => previous.await.ok().or(base),
                            None => base,
                        };
                        let base = match base {
                            Some(base) => {
                                shared.count(&shared.refreshes, "refresh");
                                base
                            }
                            None => shared.load(&store, &id).await,
                        };
                        refresh::refresh(&store, &id, generation, base)
                            .await
                            .map(Arc::new)
                    });
                    let pending: PendingIndex = futures::FutureExt::shared(Box::pin(async move {
                        task.await.unwrap_or_else(|e| {
                            Err(StoreError::internal("building a search index", e))
                        })
                    })
                        as futures::future::BoxFuture<'static, _>);
                    building.insert(vs_id.to_string(), (generation, pending.clone()));
                    (generation, pending)
                }
            }
        };
        let result = pending.await;
        let refreshing = {
            // Done, or failed (the next search tries again rather than sharing the failure).
            let mut building = locked(&self.shared.building);
            if building.get(vs_id).is_some_and(|(g, _)| *g == target) {
                building.remove(vs_id);
            }
            building.contains_key(vs_id)
        };
        let ix = result?;
        let ix = self.shared.install(vs_id, ix, refreshing);
        if let Some(s) = &self.shared.snapshots {
            s.save_if_due(store, vs_id, &ix);
        }
        self.shared.merge_in_background(store, vs_id, &ix);
        Ok(ix)
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
        // Ranking a large store is milliseconds of CPU: keep it off the async workers (and a
        // demoted project's on the low-priority pool).
        let ranking = ix.clone();
        let ranked = crate::lowprio::spawn_blocking(move || {
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

impl Shared {
    fn count(&self, counter: &AtomicU64, kind: &'static str) {
        counter.fetch_add(1, Ordering::Relaxed);
        metrics().search_index(kind);
    }

    /// The cached index of a store, whatever its generation.
    fn cached(&self, vs_id: &str) -> Option<Arc<StoreIndex>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut map = locked(&self.cached);
        let entry = map.get_mut(vs_id)?;
        entry.1 = tick;
        Some(entry.0.clone())
    }

    /// The index a node without one starts from: the store's snapshot, or nothing.
    async fn load(&self, store: &Store, vs_id: &str) -> Arc<StoreIndex> {
        let loaded = match &self.snapshots {
            Some(s) => s.load(store, vs_id).await,
            None => None,
        };
        match loaded {
            Some(ix) => {
                self.count(&self.loads, "load");
                Arc::new(ix)
            }
            None => {
                self.count(&self.full_builds, "build");
                Arc::default()
            }
        }
    }

    /// Caches a refreshed index (unless a newer one is there), with the store's last merge
    /// if it still holds that merge's parts; evicts the least recently used stores beyond the
    /// count and memory budgets (the newest always stays). Returns the index as cached.
    fn install(&self, vs_id: &str, ix: Arc<StoreIndex>, refreshing: bool) -> Arc<StoreIndex> {
        let ix = {
            let mut merged = locked(&self.merged);
            let with = merged
                .get(vs_id)
                .and_then(|(parts, seg)| ix.with_merged(parts, seg))
                .map(Arc::new);
            if !refreshing {
                merged.remove(vs_id);
            }
            with.unwrap_or(ix)
        };
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut map = locked(&self.cached);
        if map
            .get(vs_id)
            .is_some_and(|(have, _)| have.generation >= ix.generation)
        {
            return ix;
        }
        map.insert(vs_id.to_string(), (ix.clone(), tick));
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
        ix
    }

    /// Merges segments of a store's index on a blocking thread if it has enough of them (one
    /// merge per store at a time), and puts the result in place of the parts in the cached
    /// index — whichever index is cached by then, as long as it holds the parts.
    fn merge_in_background(self: &Arc<Self>, store: &Store, vs_id: &str, ix: &Arc<StoreIndex>) {
        if !locked(&self.merging).insert(vs_id.to_string()) {
            return;
        }
        let (shared, ix, id, store) = (self.clone(), ix.clone(), vs_id.to_string(), store.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            /// Ends the store's merge however the thread leaves (a panic included).
            struct Merging<'a>(&'a Shared, &'a str);
            impl Drop for Merging<'_> {
                fn drop(&mut self) {
                    locked(&self.0.merging).remove(self.1);
                }
            }
            let _merging = Merging(&shared, &id);
            let Some(parts) = ix.merge_plan() else { return };
            let started = std::time::Instant::now();
            let merged = Arc::new(ix.merge(&parts));
            drop(ix);
            // Holding `building`, no refresh can start or finish installing meanwhile. One that
            // is running started from an index without this merge: its index takes the merge
            // when it is installed (`install`).
            let installed = {
                let building = locked(&shared.building);
                let mut installed = None;
                for _ in 0..3 {
                    let Some(current) = shared.cached(&id) else {
                        break;
                    };
                    let Some(next) = current.with_merged(&parts, &merged) else {
                        break;
                    };
                    let next = Arc::new(next);
                    let mut map = locked(&shared.cached);
                    if let Some(entry) = map.get_mut(&id).filter(|e| Arc::ptr_eq(&e.0, &current)) {
                        entry.0 = next.clone();
                        installed = Some(next);
                        break;
                    }
                }
                if building.contains_key(&id) {
                    locked(&shared.merged).insert(id.clone(), (parts.clone(), merged.clone()));
                }
                installed
            };
            if let Some(next) = &installed {
                shared.count(&shared.merges, "merge");
                if let Some(s) = &shared.snapshots {
                    let _entered = runtime.enter();
                    s.save_if_due(&store, &id, next);
                }
            }
            tracing::debug!(
                vector_store_id = id,
                segments = parts.len(),
                chunks = merged.len(),
                installed = installed.is_some(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "merged search index segments"
            );
        });
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
