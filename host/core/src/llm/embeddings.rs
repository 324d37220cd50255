//! Embeddings: the [`Embeddings`] trait search and ingestion depend on, and its implementation
//! over the configured upstreams' `/embeddings` endpoint.

use std::sync::Arc;

use serde_json::Value;

use super::{Llm, LlmError};

/// Turns texts into unit vectors (cosine similarity is then a dot product), in input order.
#[async_trait::async_trait]
pub trait Embeddings: Send + Sync {
    /// The model's name, for logs.
    fn model(&self) -> &str;
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError>;
}

/// One embeddings model, called through the upstream its name routes to.
pub struct UpstreamEmbeddings {
    pub llm: Arc<Llm>,
    pub model: String,
}

#[async_trait::async_trait]
impl Embeddings for UpstreamEmbeddings {
    fn model(&self) -> &str {
        &self.model
    }

    /// Embeds `inputs` with `model` (`POST /embeddings`), in batches; the vectors come back
    /// normalised to unit length, in input order. async-openai retries 429/5xx here (with a
    /// bounded back-off, see `Upstream::new`): nothing has reached a client yet.
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let model = self.model.as_str();
        let llm = &*self.llm;
        const BATCH: usize = 64;
        let upstream = llm.upstream(model);
        let mut out = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(BATCH) {
            let body =
                serde_json::json!({"model": model, "input": batch, "encoding_format": "float"});
            let started = std::time::Instant::now();
            let answer =
                tokio::time::timeout(llm.timeout, upstream.client.embeddings().create_byot(body))
                    .await;
            let outcome = match &answer {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "upstream_error",
                Err(_) => "upstream_timeout",
            };
            crate::obs::metrics::metrics().llm_call(
                "embeddings",
                model,
                outcome,
                started.elapsed().as_secs_f64(),
            );
            let answer: Value = answer
                .map_err(|_| {
                    LlmError::Server("the embeddings upstream did not answer in time".into())
                })?
                .map_err(|e| LlmError::Server(format!("the embeddings upstream failed: {e}")))?;
            let mut data: Vec<(u64, Vec<f32>)> = answer
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| LlmError::Server("the embeddings answer has no data".into()))?
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let index = d.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
                    let v: Vec<f32> = d
                        .get("embedding")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_f64)
                                .map(|x| x as f32)
                                .collect()
                        })
                        .unwrap_or_default();
                    (index, v)
                })
                .collect();
            if data.len() != batch.len() || data.iter().any(|(_, v)| v.is_empty()) {
                return Err(LlmError::Server(format!(
                    "the embeddings upstream returned {} vectors for {} inputs",
                    data.len(),
                    batch.len()
                )));
            }
            data.sort_by_key(|(i, _)| *i);
            out.extend(data.into_iter().map(|(_, v)| unit(v)));
        }
        Ok(out)
    }
}

/// `v` scaled to unit length (cosine similarity is then a dot product).
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
