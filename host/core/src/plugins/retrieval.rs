//! The `vector-store` import of retrieval tools: search over the vector stores a call was given.
//!
//! A call may search only the stores in its `call-context.vector-store-ids`, which the run engine
//! resolves from the assistant's and thread's `tool_resources` inside the caller's project. The
//! plugin never sees the store itself, only ranked chunks.

use std::sync::Arc;

use super::bindings::retrieval::assistants::plugin::vector_store;
use super::bindings::{v0_2, SearchHit, SearchRequest};

/// Most hits recorded for one call (a file_search call makes one search of at most 50).
const MAX_RECORDED_HITS: usize = 200;
/// Most searches one call may make: each is paid host-side (tokenising, maybe embedding,
/// ranking), outside the call's own limits.
pub(crate) const MAX_SEARCHES_PER_CALL: u32 = 32;

/// The server's vector-store search as retrieval tools get it. The host checks what a call may
/// search (its stores, the number of searches, the result count) before asking; the
/// implementation (`search::PluginSearch`) bounds the query and resolves nothing else of the
/// caller's.
#[async_trait::async_trait]
pub trait VectorSearch: Send + Sync {
    /// The best hits of `request` over `stores` (sorted, deduplicated, all granted to the
    /// call), at most `request.max_results`, best first. The error is for the plugin.
    async fn search(
        &self,
        stores: &[String],
        request: &SearchRequest,
    ) -> Result<Vec<SearchHit>, String>;
}

/// What one call may search.
pub(crate) struct CallRetrieval {
    pub search: Arc<dyn VectorSearch>,
    pub vector_store_ids: Vec<String>,
    /// Every hit this call's searches returned, in order: the host records them (file_search
    /// run steps list them, and citations in the answer resolve against them).
    pub hits: Vec<SearchHit>,
    /// Searches made so far (at most [`MAX_SEARCHES_PER_CALL`]).
    pub searches: u32,
}

/// The `vector-store` capability of one call: what it may search, if anything. Each call's
/// store holds one (`CallState::retrieval`); the linker hands the import this part only.
#[derive(Default)]
pub(crate) struct VectorStoreAccess {
    pub granted: Option<CallRetrieval>,
}

impl vector_store::Host for VectorStoreAccess {
    async fn search(&mut self, request: SearchRequest) -> Result<Vec<SearchHit>, String> {
        let Some(access) = &self.granted else {
            return Err("this call has no vector stores to search".into());
        };
        if let Some(id) = request
            .vector_store_ids
            .iter()
            .find(|id| !access.vector_store_ids.contains(id))
        {
            return Err(format!("vector store '{id}' is not available to this call"));
        }
        if access.searches >= MAX_SEARCHES_PER_CALL {
            return Err(format!(
                "a call may search at most {MAX_SEARCHES_PER_CALL} times"
            ));
        }
        let mut stores = request.vector_store_ids.clone();
        stores.sort();
        stores.dedup();
        if !(1..=50).contains(&request.max_results) {
            return Err("max-results must be between 1 and 50".into());
        }
        let search = Arc::clone(&access.search);
        if let Some(access) = &mut self.granted {
            access.searches += 1;
        }
        let hits = search.search(&stores, &request).await?;
        if let Some(access) = &mut self.granted {
            // Recorded host-side, outside the call's memory limit: bounded per call.
            let room = MAX_RECORDED_HITS.saturating_sub(access.hits.len());
            access.hits.extend(hits.iter().take(room).cloned());
        }
        Ok(hits)
    }
}

/// Contract v0.2.0's `vector-store`: the same search, its records converted.
impl v0_2::vector_store::Host for VectorStoreAccess {
    async fn search(
        &mut self,
        request: v0_2::vector_store::SearchRequest,
    ) -> Result<Vec<v0_2::vector_store::SearchHit>, String> {
        let hits = vector_store::Host::search(self, request.into()).await?;
        Ok(hits.into_iter().map(Into::into).collect())
    }
}
