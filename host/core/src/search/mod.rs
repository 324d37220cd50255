//! Search over a vector store's chunks: lexical (BM25), and hybrid with embeddings.
//!
//! The chunks table is the source of truth; a store's index is a per-node cache of it, keyed
//! by the store's `index_generation`, which every change to the store's chunks or attributes
//! bumps in the same transaction. A search reads the generation (one indexed query) and
//! rebuilds the index only when it moved, so any node of a distributed deployment serves any
//! store and never answers from stale content. A rebuild runs as its own task shared by every
//! search waiting for it (a burst of searches after ingestion builds once, and a search that
//! gives up does not cancel it), frees the stale index first, and streams the chunks from the
//! database into the builder, so a million-chunk store is not held in memory twice.
//!
//! The index holds no chunk text: results are read back by row number (`chunks.seq`), at
//! most `max_num_results` rows per search.
//!
//! Hybrid search: when the server has an embeddings model ([`Embeddings`]), chunks carry unit
//! vectors and the query is embedded too; the best chunks of the lexical ranking and of the
//! vector ranking ([`vectors`]) are fused by reciprocal rank (k = 60), and a chunk's score is
//! the better of its normalised BM25 and its cosine similarity (clamped to 0..1). Without a
//! model, or if the query cannot be embedded, search is lexical (and says so in the log).

mod filter;
pub mod lexical;
mod plugin_search;
pub mod vectors;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::Value;

pub use filter::{Filter, FilterError, Op};
pub use lexical::terms;
pub use plugin_search::PluginSearch;

use crate::llm::Embeddings;
use crate::store::{Store, StoreError, StoreResult};
use lexical::{Lexical, LexicalBuilder};
use vectors::Vectors;

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
/// Rows per batch streamed from the database into an index builder.
const BUILD_BATCH: usize = 512;

struct FileInfo {
    id: String,
    filename: String,
    attributes: Option<Value>,
}

/// The in-memory index of one store at one generation. Chunks are numbered 0.. in row order.
struct StoreIndex {
    generation: i64,
    files: Vec<FileInfo>,
    /// Per chunk: its file (index into `files`) and its row number.
    chunk_file: Vec<u32>,
    chunk_seq: Vec<i64>,
    lexical: Lexical,
    vectors: Vectors,
}

/// Builds a [`StoreIndex`] from chunks in row order.
struct IndexBuilder {
    generation: i64,
    files: Vec<FileInfo>,
    chunk_file: Vec<u32>,
    chunk_seq: Vec<i64>,
    lexical: LexicalBuilder,
    vectors: Vectors,
    scratch: Vec<f32>,
}

impl IndexBuilder {
    fn new(generation: i64, files: Vec<FileInfo>) -> IndexBuilder {
        IndexBuilder {
            generation,
            files,
            chunk_file: Vec::new(),
            chunk_seq: Vec::new(),
            lexical: LexicalBuilder::default(),
            vectors: Vectors::default(),
            scratch: Vec::new(),
        }
    }

    fn add(&mut self, file: u32, seq: i64, text: &str, embedding: Option<&[u8]>) {
        let chunk = self.chunk_file.len() as u32;
        self.chunk_file.push(file);
        self.chunk_seq.push(seq);
        self.lexical.add(text);
        if let Some(bytes) = embedding {
            self.vectors.push_bytes(chunk, bytes, &mut self.scratch);
        }
    }

    fn finish(mut self) -> StoreIndex {
        self.chunk_file.shrink_to_fit();
        self.chunk_seq.shrink_to_fit();
        self.vectors.shrink_to_fit();
        StoreIndex {
            generation: self.generation,
            files: self.files,
            chunk_file: self.chunk_file,
            chunk_seq: self.chunk_seq,
            lexical: self.lexical.finish(),
            vectors: self.vectors,
        }
    }
}

impl StoreIndex {
    /// Heap bytes held (approximately: the postings' hash table itself is not counted).
    fn bytes(&self) -> usize {
        self.lexical.bytes()
            + self.vectors.bytes()
            + self.chunk_file.capacity() * 4
            + self.chunk_seq.capacity() * 8
    }

    /// The chunks that best match, best first: `(chunk, score)` with scores in 0..1.
    fn rank(
        &self,
        query_terms: &[String],
        query_vector: Option<&[f32]>,
        max_results: usize,
        threshold: f64,
        filter: Option<&Filter>,
        rerank: bool,
    ) -> Vec<(u32, f64)> {
        let allowed_files: Vec<bool> = self
            .files
            .iter()
            .map(|f| filter.is_none_or(|flt| flt.matches(f.attributes.as_ref())))
            .collect();
        let allowed = |c: u32| allowed_files[self.chunk_file[c as usize] as usize];
        let ranked = match query_vector.filter(|_| !self.vectors.is_empty()) {
            Some(q) => {
                let window = FUSION_WINDOW.max(max_results);
                let lexical = self.lexical.top(query_terms, window, allowed);
                let vector: Vec<(u32, f64)> = self
                    .vectors
                    .nearest(q, window, VECTOR_CANDIDATES, rerank, allowed)
                    .into_iter()
                    .map(|(c, cos)| (c, f64::from(cos.clamp(0.0, 1.0))))
                    .filter(|(_, s)| *s > 0.0)
                    .collect();
                fuse(&lexical, &vector)
            }
            None => self.lexical.top(query_terms, max_results, allowed),
        };
        ranked
            .into_iter()
            .filter(|(_, s)| *s >= threshold && *s > 0.0)
            .take(max_results)
            .collect()
    }
}

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

/// An index build in progress, shared by every search waiting for it.
type PendingIndex =
    futures::future::Shared<futures::future::BoxFuture<'static, StoreResult<Arc<StoreIndex>>>>;

/// Per-node cache of store indexes.
#[derive(Default)]
pub struct SearchIndexes {
    /// Query embeddings for hybrid search, when the server has an embeddings model.
    embedder: Option<Arc<dyn Embeddings>>,
    cached: Mutex<HashMap<String, (Arc<StoreIndex>, u64)>>,
    /// Builds in progress by store: their generation, the shared result and a handle to stop
    /// a build a newer generation made useless. A build runs as its own task, so a search
    /// that gives up (a tool call's time limit, a client that hangs up) does not throw away
    /// a large store's build: the next search picks up the result.
    building: Mutex<HashMap<String, (i64, PendingIndex, tokio::task::AbortHandle)>>,
    clock: std::sync::atomic::AtomicU64,
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

    /// The embeddings model chunks and queries are embedded with, if any.
    pub fn embedder(&self) -> Option<Arc<dyn Embeddings>> {
        self.embedder.clone()
    }

    /// Drops the cached index of a store (the generation check would catch it too; this frees memory early).
    pub fn invalidate(&self, vs_id: &str) {
        self.cached
            .lock()
            .expect("search cache poisoned")
            .remove(vs_id);
    }

    pub fn invalidate_all(&self) {
        self.cached.lock().expect("search cache poisoned").clear();
    }

    fn cached(&self, vs_id: &str, generation: i64) -> Option<Arc<StoreIndex>> {
        let tick = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = self.cached.lock().expect("search cache poisoned");
        let entry = map.get_mut(vs_id)?;
        if entry.0.generation < generation {
            // Stale for good (generations only grow): free it before the rebuild, so a large
            // store is not held twice.
            map.remove(vs_id);
            return None;
        }
        // Equal, or newer than the generation this search read a moment ago: current enough.
        entry.1 = tick;
        Some(entry.0.clone())
    }

    async fn index(&self, store: &Store, vs_id: &str) -> StoreResult<Arc<StoreIndex>> {
        let generation = store.index_generation(vs_id).await?;
        if let Some(ix) = self.cached(vs_id, generation) {
            return Ok(ix);
        }
        let pending = {
            let mut building = self.building.lock().expect("search cache poisoned");
            match building.get(vs_id) {
                Some((g, pending, _)) if *g >= generation => pending.clone(),
                _ => {
                    let (store, id) = (store.clone(), vs_id.to_string());
                    let task = tokio::spawn(async move {
                        Self::build(&store, &id, generation).await.map(Arc::new)
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
        self.install(vs_id, ix.clone());
        Ok(ix)
    }

    /// Caches a built index (unless a newer one is there), evicting the least recently used
    /// stores beyond the count and memory budgets (the newest always stays).
    fn install(&self, vs_id: &str, ix: Arc<StoreIndex>) {
        let tick = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = self.cached.lock().expect("search cache poisoned");
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

    /// Reads a store's completed files and streams its chunks into a builder on a blocking
    /// thread (tokenising a large store takes seconds of CPU).
    async fn build(store: &Store, vs_id: &str, generation: i64) -> StoreResult<StoreIndex> {
        let started = std::time::Instant::now();
        let attrs = store.store_file_attributes(vs_id).await?;
        let names = store
            .filenames(attrs.iter().map(|(id, _)| id.as_str()))
            .await?;
        let mut file_no: HashMap<String, u32> = HashMap::new();
        let mut files = Vec::new();
        for (id, attributes) in attrs {
            file_no.insert(id.clone(), files.len() as u32);
            let filename = names.get(&id).cloned().unwrap_or_default();
            files.push(FileInfo {
                id,
                filename,
                attributes,
            });
        }
        type Row = (u32, i64, String, Option<Vec<u8>>);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Row>>(4);
        let builder = tokio::task::spawn_blocking(move || {
            let mut b = IndexBuilder::new(generation, files);
            while let Some(batch) = rx.blocking_recv() {
                for (file, seq, text, embedding) in batch {
                    b.add(file, seq, &text, embedding.as_deref());
                }
            }
            b.finish()
        });
        let mut rows = store.stream_chunks(vs_id);
        let mut batch = Vec::with_capacity(BUILD_BATCH);
        while let Some(row) = rows.next().await {
            let c = row?;
            // Chunks of files that are no longer completed members are not searchable.
            if let Some(&file) = file_no.get(&c.file_id) {
                batch.push((file, c.seq, c.text, c.embedding));
            }
            if batch.len() == BUILD_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BUILD_BATCH));
                if tx.send(full).await.is_err() {
                    break;
                }
            }
        }
        drop(rows);
        if !batch.is_empty() {
            let _ = tx.send(batch).await;
        }
        drop(tx);
        let ix = builder
            .await
            .map_err(|e| StoreError::internal("building a search index", e))?;
        tracing::debug!(
            vector_store_id = vs_id,
            chunks = ix.chunk_seq.len(),
            vectors = ix.vectors.len(),
            lexical_bytes = ix.lexical.bytes(),
            vector_bytes = ix.vectors.bytes(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "built search index"
        );
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
        let seqs: Vec<i64> = ranked
            .iter()
            .map(|(c, _)| ix.chunk_seq[*c as usize])
            .collect();
        let mut texts = store.chunk_texts(&seqs).await?;
        // A chunk deleted since the index was built (its file was removed a moment ago) is
        // no longer a result.
        Ok(ranked
            .into_iter()
            .zip(seqs)
            .filter_map(|((c, score), seq)| {
                let text = texts.remove(&seq)?;
                let f = &ix.files[ix.chunk_file[c as usize] as usize];
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
        if ix.vectors.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index(chunks: &[(u32, &str, Option<Vec<f32>>)]) -> StoreIndex {
        let files = ["a", "b"]
            .iter()
            .map(|n| FileInfo {
                id: format!("file-{n}"),
                filename: format!("{n}.txt"),
                attributes: Some(json!({"name": n})),
            })
            .collect();
        let mut b = IndexBuilder::new(1, files);
        for (i, (file, text, v)) in chunks.iter().enumerate() {
            let bytes = v.as_deref().map(crate::store::vector_stores::vector_bytes);
            b.add(*file, 100 + i as i64, text, bytes.as_deref());
        }
        b.finish()
    }

    #[test]
    fn fusion_ranks_vector_only_matches_and_keeps_the_better_score() {
        let ix = index(&[
            (0, "car tires", Some(vec![1.0, 0.0])),
            (0, "bananas", Some(vec![0.0, 1.0])),
            (0, "automobile dealer", Some(vec![0.6, 0.8])),
        ]);
        // Lexical: only chunk 2 matches the word; vectors favour chunk 0, then chunk 2.
        let fused = ix.rank(&["dealer".into()], Some(&[1.0, 0.0]), 10, 0.0, None, true);
        let order: Vec<u32> = fused.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            order,
            vec![2, 0],
            "in both rankings beats first in one; orthogonal and no word: not a hit"
        );
        let score = |c: u32| fused.iter().find(|(i, _)| *i == c).unwrap().1;
        assert!(
            (score(2) - 0.6).abs() < 0.01,
            "max(lexical, 0.6 cosine): {fused:?}"
        );
        assert!((score(0) - 1.0).abs() < 0.01);
        // The threshold and max_results apply to the fused ranking.
        assert_eq!(
            ix.rank(&["dealer".into()], Some(&[1.0, 0.0]), 1, 0.0, None, true)
                .len(),
            1
        );
        assert_eq!(
            ix.rank(&["dealer".into()], Some(&[1.0, 0.0]), 10, 0.9, None, true)
                .len(),
            1
        );
        // A query vector of another dimension leaves the search lexical.
        assert_eq!(
            ix.rank(
                &["dealer".into()],
                Some(&[1.0, 0.0, 0.0]),
                10,
                0.0,
                None,
                true
            )
            .len(),
            1
        );
    }

    #[test]
    fn filters_exclude_files_from_both_rankings() {
        let ix = index(&[
            (0, "fox one", Some(vec![1.0, 0.0])),
            (1, "fox two", Some(vec![1.0, 0.1])),
        ]);
        let only_b = Filter::parse(
            "filters",
            &json!({"type": "eq", "key": "name", "value": "b"}),
        )
        .unwrap();
        for v in [None, Some(&[1.0f32, 0.0][..])] {
            let got = ix.rank(&["fox".into()], v, 10, 0.0, Some(&only_b), true);
            assert_eq!(
                got.iter().map(|r| r.0).collect::<Vec<_>>(),
                vec![1],
                "{v:?}"
            );
        }
        assert_eq!(ix.chunk_seq, vec![100, 101]);
    }
}
