//! Vector-store search for retrieval plugins: the server's search behind the plugin host's
//! [`VectorSearch`] capability, so the plugin host needs neither the store nor the indexes.

use std::sync::Arc;

use super::{Filter, QueryVector, SearchIndexes, SearchRequest};
use crate::plugins::bindings::{SearchHit, SearchRequest as PluginRequest};
use crate::plugins::retrieval::VectorSearch;
use crate::store::Store;

/// The search retrieval tools call, over this node's indexes.
pub struct PluginSearch {
    pub store: Store,
    pub indexes: Arc<SearchIndexes>,
}

#[async_trait::async_trait]
impl VectorSearch for PluginSearch {
    async fn search(
        &self,
        stores: &[String],
        request: &PluginRequest,
    ) -> Result<Vec<SearchHit>, String> {
        if request.query.len() > super::MAX_QUERY_BYTES {
            return Err(format!(
                "the query is longer than {} bytes",
                super::MAX_QUERY_BYTES
            ));
        }
        let filter = match &request.filters_json {
            None => None,
            Some(json) => {
                let value: serde_json::Value =
                    serde_json::from_str(json).map_err(|e| format!("filters are not JSON: {e}"))?;
                Some(Filter::parse("filters", &value).map_err(|e| e.to_string())?)
            }
        };
        let queries = [request.query.clone()];
        let mut hits = Vec::new();
        let now = crate::model::ids::now();
        let query_vector = QueryVector::new();
        for vs in stores {
            // An expired store cannot be searched (as with the real API, whose runs fail on
            // it); the tool tells the model, which can tell the user.
            let expires = self
                .store
                .vs_expires_at(vs)
                .await
                .map_err(|e| e.to_string())?;
            if expires.is_some_and(|t| now > t) {
                return Err(format!(
                    "vector store {vs} has expired; it must be recreated with the same files"
                ));
            }
            // Searching keeps a store alive, as using it through the API does.
            let _ = self.store.mark_store_active(vs).await;
            let req = SearchRequest {
                queries: &queries,
                max_results: request.max_results as usize,
                threshold: f64::from(request.score_threshold),
                filter: filter.as_ref(),
                // The file_search tool's rankers (auto, default_2024_08_21) all rescore.
                rerank: true,
                query_vector: &query_vector,
            };
            let found = self
                .indexes
                .search(&self.store, vs, &req)
                .await
                .map_err(|e| e.to_string())?;
            hits.extend(found);
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(request.max_results as usize);
        Ok(hits
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
            .collect())
    }
}
