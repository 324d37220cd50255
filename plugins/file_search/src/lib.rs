//! The `file_search` tool: the model asks a question, the tool searches the vector stores of
//! the assistant and thread through the host's `vector-store` import, and answers with the
//! best passages, each labelled `【{sequence}:{n}†{filename}】` so the model can cite it. The
//! host records the hits of every call (they become the run step's `file_search.results`) and
//! turns labels the model writes into `file_citation` annotations.
//!
//! Options come from the assistant's (or run's) tool entry, passed by the host in
//! `call-context.options-json`: `file_search.max_num_results` (1-50, default 20) and
//! `file_search.ranking_options.score_threshold` (0-1, default 0).

wit_bindgen::generate!({ world: "retrieval-tool-plugin", path: "../../wit/v0.1.0" });

use assistants::plugin::vector_store::{search, SearchRequest};
use exports::assistants::plugin::tool::{CallContext, Guest, ToolError, ToolOutput, ToolSpec};
use serde_json::Value;

const DEFAULT_MAX_RESULTS: u32 = 20;

struct FileSearch;

/// A file name as it can stand in a label (the host resolves labels by this name too):
/// no brackets, daggers or line breaks, no surrounding spaces.
fn label_name(filename: &str) -> String {
    let cleaned: String = filename
        .chars()
        .filter(|c| !matches!(c, '【' | '】' | '†' | '\n' | '\r'))
        .collect();
    cleaned.trim().to_string()
}

/// The search options of the tool entry in `options-json`.
fn options(options_json: &str) -> (u32, f32, u64) {
    let v: Value = serde_json::from_str(options_json).unwrap_or(Value::Null);
    let fs = v.pointer("/tool/file_search");
    let max = fs
        .and_then(|f| f.get("max_num_results"))
        .and_then(Value::as_u64)
        .map(|n| n.clamp(1, 50) as u32)
        .unwrap_or(DEFAULT_MAX_RESULTS);
    let threshold = fs
        .and_then(|f| f.pointer("/ranking_options/score_threshold"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0) as f32;
    let sequence = v.get("sequence").and_then(Value::as_u64).unwrap_or(0);
    (max, threshold, sequence)
}

impl Guest for FileSearch {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "file_search".into(),
            description: "Search the files the user attached (their vector stores) for passages \
                          relevant to a query. Each result starts with a label like 【0:1†report.pdf】; \
                          cite a passage you use by writing its label exactly, right after the \
                          sentence it supports."
                .into(),
            parameters_json: r#"{"type":"object","properties":{"query":{"type":"string","description":"What to look for, in natural language or keywords."}},"required":["query"],"additionalProperties":false}"#.into(),
            strict: true,
        }]
    }

    fn invoke(ctx: CallContext, name: String, args: String) -> Result<ToolOutput, ToolError> {
        if name != "file_search" {
            return Err(ToolError::UnknownTool(name));
        }
        let args: Value = serde_json::from_str(&args)
            .map_err(|e| ToolError::InvalidArguments(format!("arguments are not JSON: {e}")))?;
        let query = args
            .get("query")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| {
                ToolError::InvalidArguments("'query' must be a non-empty string".into())
            })?;
        if ctx.vector_store_ids.is_empty() {
            return Err(ToolError::Failed(
                "no files are attached: the assistant and thread have no vector stores".into(),
            ));
        }
        let (max_results, score_threshold, sequence) = options(&ctx.options_json);
        let hits = search(&SearchRequest {
            vector_store_ids: ctx.vector_store_ids.clone(),
            query: query.to_string(),
            max_results,
            score_threshold,
            filters_json: None,
        })
        .map_err(ToolError::Failed)?;
        if hits.is_empty() {
            return Ok(ToolOutput {
                text: format!("No passages matched the query '{query}'."),
                annotations: vec![],
            });
        }
        let text = hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                format!(
                    "【{sequence}:{i}†{}】\n{}",
                    label_name(&h.filename),
                    h.text.trim()
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        Ok(ToolOutput {
            text,
            annotations: vec![],
        })
    }
}

export!(FileSearch);
