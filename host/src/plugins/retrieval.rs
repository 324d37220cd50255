//! The `vector-store` import of retrieval tools: search over the vector stores a call was given.
//!
//! A call may search only the stores in its `call-context.vector-store-ids`, which the run engine
//! resolves from the assistant's and thread's `tool_resources` inside the caller's project. The
//! plugin never sees the store itself, only ranked chunks.

use std::sync::Arc;

use super::bindings::retrieval::assistants::plugin::vector_store;
use super::bindings::{SearchHit, SearchRequest};
use super::runtime::CallState;
use crate::search::{Filter, SearchIndexes};
use crate::store::Store;

/// Most hits recorded for one call (a file_search call makes one search of at most 50).
const MAX_RECORDED_HITS: usize = 200;

/// The server's search, shared by all calls.
#[derive(Clone)]
pub struct SearchBackend {
    pub store: Store,
    pub search: Arc<SearchIndexes>,
}

/// What one call may search.
pub struct CallRetrieval {
    pub backend: SearchBackend,
    pub vector_store_ids: Vec<String>,
    /// Every hit this call's searches returned, in order: the host records them (file_search
    /// run steps list them, and citations in the answer resolve against them).
    pub hits: Vec<SearchHit>,
}

impl vector_store::Host for CallState {
    async fn search(&mut self, request: SearchRequest) -> Result<Vec<SearchHit>, String> {
        let Some(access) = &self.retrieval else {
            return Err("this call has no vector stores to search".into());
        };
        if let Some(id) = request
            .vector_store_ids
            .iter()
            .find(|id| !access.vector_store_ids.contains(id))
        {
            return Err(format!("vector store '{id}' is not available to this call"));
        }
        if request.query.len() > 16 * 1024 {
            return Err("the query is longer than 16 KiB".into());
        }
        let mut stores = request.vector_store_ids.clone();
        stores.sort();
        stores.dedup();
        if !(1..=50).contains(&request.max_results) {
            return Err("max-results must be between 1 and 50".into());
        }
        let filter = match &request.filters_json {
            None => None,
            Some(json) => {
                let value: serde_json::Value =
                    serde_json::from_str(json).map_err(|e| format!("filters are not JSON: {e}"))?;
                Some(Filter::parse("filters", &value).map_err(|e| e.message)?)
            }
        };
        let queries = [request.query.clone()];
        let mut hits = Vec::new();
        let now = crate::ids::now();
        let query_vector = crate::search::QueryVector::new();
        for vs in &stores {
            // An expired store cannot be searched (as with the real API, whose runs fail on
            // it); the tool tells the model, which can tell the user.
            let expires = access
                .backend
                .store
                .vs_expires_at(vs)
                .await
                .map_err(|e| e.message)?;
            if expires.is_some_and(|t| now > t) {
                return Err(format!(
                    "vector store {vs} has expired; it must be recreated with the same files"
                ));
            }
            // Searching keeps a store alive, as using it through the API does.
            let _ = access.backend.store.mark_store_active(vs).await;
            let req = crate::search::SearchRequest {
                queries: &queries,
                max_results: request.max_results as usize,
                threshold: f64::from(request.score_threshold),
                filter: filter.as_ref(),
                // The file_search tool's rankers (auto, default_2024_08_21) all rescore.
                rerank: true,
                query_vector: &query_vector,
            };
            let found = access
                .backend
                .search
                .search(&access.backend.store, vs, &req)
                .await
                .map_err(|e| e.message)?;
            hits.extend(found);
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(request.max_results as usize);
        let hits: Vec<SearchHit> = hits
            .into_iter()
            .map(|h| SearchHit {
                file_id: h.file_id,
                filename: h.filename,
                score: h.score as f32,
                text: h.text,
                attributes_json: h
                    .attributes
                    .unwrap_or_else(|| serde_json::json!({}))
                    .to_string(),
            })
            .collect();
        if let Some(access) = &mut self.retrieval {
            // Recorded host-side, outside the call's memory limit: bounded per call.
            let room = MAX_RECORDED_HITS.saturating_sub(access.hits.len());
            access.hits.extend(hits.iter().take(room).cloned());
        }
        Ok(hits)
    }
}
