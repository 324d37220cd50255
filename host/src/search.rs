//! Lexical (BM25) search over a vector store's chunks, with attribute filters.
//!
//! The chunks table is the source of truth; the inverted index is a per-node cache of it,
//! keyed by the store's `index_generation`, which every change to the store's chunks or
//! attributes bumps in the same transaction. A search reads the generation (one indexed
//! query) and rebuilds the index only when it moved, so any node of a distributed deployment
//! serves any store and never answers from stale content. Rebuilds of one store are
//! serialised so a burst of searches after ingestion builds once.
//!
//! Scores are BM25 (k1 = 1.2, b = 0.75) divided by the most any chunk could score for the query
//! (every term present, saturated), giving 0..1: "how fully this chunk matches the query".
//! That keeps `score_threshold` meaningful on its own, independent of the other results.
//!
//! Hybrid search: when the server has an embeddings model ([`Embedder`]), chunks carry unit
//! vectors and the query is embedded too; chunks are then ranked by reciprocal-rank fusion
//! (k = 60) of the lexical and the vector rankings, and a chunk's score is the better of its
//! normalised BM25 and its cosine similarity (clamped to 0..1). Without a model, or if the
//! query cannot be embedded, search is lexical (and says so in the log). Vectors are compared
//! exhaustively for now; the index engine for very large stores is the retrieval issue's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::store::Store;

const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Stores whose index stays cached per node; least recently used beyond this are dropped.
const MAX_CACHED_STORES: usize = 64;

/// Splits text into lowercase alphanumeric terms (the same for documents and queries).
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
}

struct Chunk {
    file: u32,
    len: u32,
    text: Box<str>,
    vector: Option<Box<[f32]>>,
}

/// Embeds queries for hybrid search (the server's embeddings model through the LLM upstream).
pub struct Embedder {
    pub llm: Arc<crate::runs::llm::Llm>,
    pub model: String,
}

impl Embedder {
    pub async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, String> {
        self.llm
            .embed(&self.model, inputs)
            .await
            .map_err(|e| e.message().to_string())
    }
}

/// Reciprocal-rank fusion constant.
const RRF_K: f32 = 60.0;

struct FileInfo {
    id: String,
    filename: String,
    attributes: Option<Value>,
}

/// The in-memory index of one store at one generation.
struct StoreIndex {
    generation: i64,
    files: Vec<FileInfo>,
    chunks: Vec<Chunk>,
    /// term → (chunk, term frequency)
    postings: HashMap<String, Vec<(u32, u32)>>,
    avg_len: f32,
}

impl StoreIndex {
    fn build(
        generation: i64,
        files: Vec<FileInfo>,
        raw: Vec<(u32, String, Option<Vec<f32>>)>,
    ) -> StoreIndex {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut chunks = Vec::with_capacity(raw.len());
        let mut total: u64 = 0;
        for (i, (file, text, vector)) in raw.into_iter().enumerate() {
            let mut tf: HashMap<String, u32> = HashMap::new();
            let mut len = 0u32;
            for t in terms(&text) {
                *tf.entry(t).or_default() += 1;
                len += 1;
            }
            for (t, n) in tf {
                postings.entry(t).or_default().push((i as u32, n));
            }
            total += len as u64;
            chunks.push(Chunk {
                file,
                len,
                text: text.into_boxed_str(),
                vector: vector.map(Vec::into_boxed_slice),
            });
        }
        let avg_len = if chunks.is_empty() {
            1.0
        } else {
            (total as f32 / chunks.len() as f32).max(1.0)
        };
        StoreIndex {
            generation,
            files,
            chunks,
            postings,
            avg_len,
        }
    }

    fn idf(&self, df: usize) -> f32 {
        let (n, df) = (self.chunks.len() as f32, df as f32);
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// The score bound used for normalisation: every query term saturated in one chunk.
    fn max_score(&self, query_terms: &[String]) -> f32 {
        query_terms
            .iter()
            .map(|t| self.idf(self.postings.get(t).map_or(0, Vec::len)) * (K1 + 1.0))
            .sum()
    }

    /// BM25 per chunk for the query: a dense score array (one float per chunk) is much faster
    /// than a map for the posting-list sizes of large stores; `touched` lists the non-zero ones.
    fn score(&self, query_terms: &[String]) -> (Vec<f32>, Vec<u32>) {
        let mut scores = vec![0f32; self.chunks.len()];
        let mut touched = Vec::new();
        for t in query_terms {
            let Some(list) = self.postings.get(t) else {
                continue;
            };
            let idf = self.idf(list.len());
            for &(c, tf) in list {
                let tf = tf as f32;
                let len = self.chunks[c as usize].len as f32;
                let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / self.avg_len));
                let slot = &mut scores[c as usize];
                if *slot == 0.0 {
                    touched.push(c);
                }
                *slot += s;
            }
        }
        (scores, touched)
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

pub struct SearchRequest<'a> {
    pub queries: &'a [String],
    pub max_results: usize,
    pub threshold: f64,
    pub filter: Option<&'a Filter>,
    /// The query's embedding, computed on first need and shared by every store one search
    /// covers (a retrieval call searching several stores embeds its query once).
    pub query_vector: &'a QueryVector,
}

/// See [`SearchRequest::query_vector`]; start with `QueryVector::new()`.
pub type QueryVector = tokio::sync::OnceCell<Option<Vec<f32>>>;

/// Per-node cache of store indexes.
#[derive(Default)]
pub struct SearchIndexes {
    /// Query embeddings for hybrid search, when the server has an embeddings model.
    embedder: std::sync::OnceLock<Arc<Embedder>>,
    cached: Mutex<HashMap<String, (Arc<StoreIndex>, u64)>>,
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    clock: std::sync::atomic::AtomicU64,
}

impl SearchIndexes {
    /// Makes searches hybrid (called once at startup when an embeddings model is configured).
    pub fn set_embedder(&self, embedder: Arc<Embedder>) {
        let _ = self.embedder.set(embedder);
    }

    pub fn embedder(&self) -> Option<Arc<Embedder>> {
        self.embedder.get().cloned()
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
        if entry.0.generation != generation {
            return None;
        }
        entry.1 = tick;
        Some(entry.0.clone())
    }

    async fn index(&self, store: &Store, vs_id: &str) -> ApiResult<Arc<StoreIndex>> {
        let generation = store.index_generation(vs_id).await?;
        if let Some(ix) = self.cached(vs_id, generation) {
            return Ok(ix);
        }
        let gate = self
            .building
            .lock()
            .expect("search cache poisoned")
            .entry(vs_id.to_string())
            .or_default()
            .clone();
        let _building = gate.lock().await;
        // Someone may have built it while we waited; re-read the generation, it may have moved on.
        let generation = store.index_generation(vs_id).await?;
        if let Some(ix) = self.cached(vs_id, generation) {
            return Ok(ix);
        }
        let chunks = store.store_chunks(vs_id).await?;
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
        // Chunks of files that are no longer completed members are not searchable.
        let raw: Vec<(u32, String, Option<Vec<f32>>)> = chunks
            .into_iter()
            .filter_map(|c| file_no.get(&c.file_id).map(|&f| (f, c.text, c.embedding)))
            .collect();
        let ix = tokio::task::spawn_blocking(move || {
            Arc::new(StoreIndex::build(generation, files, raw))
        })
        .await
        .map_err(|e| ApiError::internal("building a search index", e))?;
        let tick = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = self.cached.lock().expect("search cache poisoned");
        map.insert(vs_id.to_string(), (ix.clone(), tick));
        if map.len() > MAX_CACHED_STORES {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        Ok(ix)
    }

    /// Ranked chunks of one store.
    pub async fn search(
        &self,
        store: &Store,
        vs_id: &str,
        req: &SearchRequest<'_>,
    ) -> ApiResult<Vec<Hit>> {
        let ix = self.index(store, vs_id).await?;
        let mut query_terms: Vec<String> = req.queries.iter().flat_map(|q| terms(q)).collect();
        query_terms.sort();
        query_terms.dedup();
        let allowed: Vec<bool> = ix
            .files
            .iter()
            .map(|f| {
                req.filter
                    .is_none_or(|flt| flt.matches(f.attributes.as_ref()))
            })
            .collect();
        let (scores, touched) = ix.score(&query_terms);
        let mut scored: Vec<(u32, f32)> = touched
            .into_iter()
            .filter(|c| allowed[ix.chunks[*c as usize].file as usize])
            .map(|c| (c, scores[c as usize]))
            .collect();
        // Highest score first; equal scores keep document order, so results are deterministic.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let bound = ix.max_score(&query_terms).max(f32::EPSILON);
        let lexical: Vec<(u32, f64)> = scored
            .into_iter()
            .map(|(c, s)| (c, (s / bound).min(1.0) as f64))
            .collect();
        let ranked = match self.query_vector(req, &ix).await {
            Some(q) => fuse(&ix, &allowed, &lexical, &q),
            None => lexical,
        };
        Ok(ranked
            .into_iter()
            .filter(|(_, s)| *s >= req.threshold && *s > 0.0)
            .take(req.max_results)
            .map(|(c, score)| {
                let chunk = &ix.chunks[c as usize];
                let f = &ix.files[chunk.file as usize];
                Hit {
                    file_id: f.id.clone(),
                    filename: f.filename.clone(),
                    score,
                    attributes: f.attributes.clone(),
                    text: chunk.text.to_string(),
                }
            })
            .collect())
    }

    /// The query's embedding, when search can be hybrid: a model is configured and the store
    /// has vectors. A failed embedding call degrades to lexical search, with a warning.
    async fn query_vector(&self, req: &SearchRequest<'_>, ix: &StoreIndex) -> Option<Vec<f32>> {
        let embedder = self.embedder.get()?;
        if !ix.chunks.iter().any(|c| c.vector.is_some()) {
            return None;
        }
        req.query_vector
            .get_or_init(|| async {
                let query = req.queries.join("\n");
                match embedder.embed(&[query]).await {
                    Ok(mut v) => v.pop(),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not embed the query; searching lexically");
                        None
                    }
                }
            })
            .await
            .clone()
    }
}

/// Reciprocal-rank fusion of the lexical ranking and the vector ranking (cosine of unit
/// vectors); each chunk scores the better of its two 0..1 scores.
fn fuse(ix: &StoreIndex, allowed: &[bool], lexical: &[(u32, f64)], q: &[f32]) -> Vec<(u32, f64)> {
    let mut vector: Vec<(u32, f64)> = ix
        .chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| allowed[c.file as usize])
        .filter_map(|(i, c)| {
            let v = c.vector.as_deref()?;
            (v.len() == q.len()).then(|| {
                let cos: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
                (i as u32, f64::from(cos.clamp(0.0, 1.0)))
            })
        })
        .filter(|(_, s)| *s > 0.0)
        .collect();
    vector.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut fused: HashMap<u32, (f32, f64)> = HashMap::new();
    for ranking in [lexical, vector.as_slice()] {
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

/// An attribute filter: a comparison or an and/or of filters.
#[derive(Debug, Clone)]
pub enum Filter {
    Compare { op: Op, key: String, value: Value },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
}

impl Filter {
    /// Parses and validates a filter; errors name the offending path.
    pub fn parse(param: &str, v: &Value) -> ApiResult<Filter> {
        let kind = v.get("type").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                format!("{param}.type"),
                format!("Missing required parameter: '{param}.type'."),
            )
        })?;
        match kind {
            "and" | "or" => {
                let list = v.get("filters").and_then(Value::as_array).ok_or_else(|| {
                    ApiError::invalid(
                        format!("{param}.filters"),
                        format!("Invalid '{param}.filters': expected an array."),
                    )
                })?;
                let parsed = list
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Filter::parse(&format!("{param}.filters[{i}]"), f))
                    .collect::<ApiResult<Vec<_>>>()?;
                Ok(if kind == "and" {
                    Filter::And(parsed)
                } else {
                    Filter::Or(parsed)
                })
            }
            op => {
                let op = match op {
                    "eq" => Op::Eq,
                    "ne" => Op::Ne,
                    "gt" => Op::Gt,
                    "gte" => Op::Gte,
                    "lt" => Op::Lt,
                    "lte" => Op::Lte,
                    "in" => Op::In,
                    "nin" => Op::Nin,
                    other => {
                        return Err(ApiError::invalid(
                            format!("{param}.type"),
                            format!("Invalid '{param}.type': '{other}'. Expected eq, ne, gt, gte, lt, lte, in, nin, and or or."),
                        ))
                    }
                };
                let key = v.get("key").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(
                        format!("{param}.key"),
                        format!("Missing required parameter: '{param}.key'."),
                    )
                })?;
                let value = v
                    .get("value")
                    .filter(|v| !v.is_null())
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::invalid(
                            format!("{param}.value"),
                            format!("Missing required parameter: '{param}.value'."),
                        )
                    })?;
                let list_op = matches!(op, Op::In | Op::Nin);
                if list_op != value.is_array() || value.is_object() {
                    return Err(ApiError::invalid(
                        format!("{param}.value"),
                        format!("Invalid '{param}.value': 'in'/'nin' take an array, other comparisons a string, number or boolean."),
                    ));
                }
                Ok(Filter::Compare {
                    op,
                    key: key.to_string(),
                    value,
                })
            }
        }
    }

    /// Whether a file with these attributes passes. A missing key fails every comparison but `ne`/`nin`.
    pub fn matches(&self, attrs: Option<&Value>) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(attrs)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(attrs)),
            Filter::Compare { op, key, value } => {
                let actual = attrs.and_then(|a| a.get(key));
                match op {
                    Op::Eq => actual.is_some_and(|a| same(a, value)),
                    Op::Ne => !actual.is_some_and(|a| same(a, value)),
                    Op::In => actual.is_some_and(|a| {
                        value
                            .as_array()
                            .is_some_and(|l| l.iter().any(|v| same(a, v)))
                    }),
                    Op::Nin => !actual.is_some_and(|a| {
                        value
                            .as_array()
                            .is_some_and(|l| l.iter().any(|v| same(a, v)))
                    }),
                    Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                        let Some(ord) = actual.and_then(|a| order(a, value)) else {
                            return false;
                        };
                        match op {
                            Op::Gt => ord.is_gt(),
                            Op::Gte => ord.is_ge(),
                            Op::Lt => ord.is_lt(),
                            _ => ord.is_le(),
                        }
                    }
                }
            }
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index() -> StoreIndex {
        let files = vec![
            FileInfo {
                id: "file-a".into(),
                filename: "a.txt".into(),
                attributes: Some(json!({"lang": "en", "year": 2020})),
            },
            FileInfo {
                id: "file-b".into(),
                filename: "b.txt".into(),
                attributes: Some(json!({"lang": "de", "year": 2024})),
            },
        ];
        StoreIndex::build(
            1,
            files,
            vec![
                (
                    0,
                    "The quick brown fox jumps over the lazy dog".into(),
                    None,
                ),
                (1, "Zebras graze on the savanna; a zebra herd".into(), None),
                (0, "foxes and more foxes, fox fox".into(), None),
            ],
        )
    }

    #[test]
    fn fusion_ranks_vector_only_matches_and_keeps_the_better_score() {
        let files = vec![FileInfo {
            id: "file-a".into(),
            filename: "a.txt".into(),
            attributes: None,
        }];
        let ix = StoreIndex::build(
            1,
            files,
            vec![
                (0, "car tires".into(), Some(vec![1.0, 0.0])),
                (0, "bananas".into(), Some(vec![0.0, 1.0])),
                (0, "automobile dealer".into(), Some(vec![0.6, 0.8])),
            ],
        );
        let allowed = vec![true];
        // Lexical: only chunk 2 matches the word; vectors favour chunk 0, then chunk 2.
        let lexical = vec![(2u32, 0.5)];
        let fused = fuse(&ix, &allowed, &lexical, &[1.0, 0.0]);
        let order: Vec<u32> = fused.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            order[0], 2,
            "in both rankings beats first in one: {fused:?}"
        );
        assert_eq!(order[1], 0);
        assert!(!order.contains(&1), "orthogonal vector, no word: not a hit");
        let score = |c: u32| fused.iter().find(|(i, _)| *i == c).unwrap().1;
        assert!(
            (score(2) - 0.6).abs() < 1e-6,
            "max(0.5 lexical, 0.6 cosine)"
        );
        assert!((score(0) - 1.0).abs() < 1e-6);
        // A filtered-out file contributes nothing.
        assert!(fuse(&ix, &[false], &[], &[1.0, 0.0]).is_empty());
    }

    #[test]
    fn bm25_ranks_the_denser_match_first() {
        let ix = index();
        let (s, touched) = ix.score(&["fox".into()]);
        assert!(s[2] > s[0], "{s:?}");
        assert_eq!(s[1], 0.0);
        assert_eq!(touched.len(), 2);
    }

    #[test]
    fn filters_compare_and_combine() {
        let f = Filter::parse(
            "filters",
            &json!({"type": "and", "filters": [
                {"type": "eq", "key": "lang", "value": "en"},
                {"type": "lt", "key": "year", "value": 2021}
            ]}),
        )
        .unwrap();
        assert!(f.matches(Some(&json!({"lang": "en", "year": 2020}))));
        assert!(!f.matches(Some(&json!({"lang": "en", "year": 2022}))));
        assert!(!f.matches(None));
        let nin = Filter::parse(
            "filters",
            &json!({"type": "nin", "key": "lang", "value": ["de"]}),
        )
        .unwrap();
        assert!(nin.matches(Some(&json!({"lang": "en"}))));
        assert!(
            Filter::parse("filters", &json!({"type": "eq", "key": "k", "value": [1]})).is_err()
        );
        assert!(
            Filter::parse("filters", &json!({"type": "like", "key": "k", "value": 1})).is_err()
        );
    }
}
