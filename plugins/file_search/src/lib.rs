//! The `file_search` tool: the model asks a question, the tool searches the vector stores of
//! the assistant and thread through the host's `vector-store` import, and answers with the
//! best passages, each labelled `【{sequence}:{n}†{filename}】` so the model can cite it. The
//! host records the hits of every call (they become the run step's `file_search.results`) and
//! turns labels the model writes into `file_citation` annotations.
//!
//! Options come from the assistant's (or run's) tool entry, passed by the host in
//! `call-context.options-json`: `file_search.max_num_results` (1-50, default 20) and
//! `file_search.ranking_options.score_threshold` (0-1, default 0).

use assistants_plugin::tool::{
    args, search, CallContext, Passages, SearchRequest, Tool, ToolError, ToolOutput, ToolSpec,
};
use serde::Deserialize;
use serde_json::{json, Value};

const DEFAULT_MAX_RESULTS: u32 = 20;

struct FileSearch;

#[derive(Deserialize)]
struct Args {
    query: String,
}

/// The search options of the tool entry (`call-context.options-json`'s `tool`).
fn search_options(tool: &Value) -> (u32, f32) {
    let fs = tool.get("file_search");
    let max = fs
        .and_then(|f| f.get("max_num_results"))
        .and_then(Value::as_u64)
        .map(|n| n.clamp(1, 50) as u32)
        .unwrap_or(DEFAULT_MAX_RESULTS);
    let threshold = fs
        .and_then(|f| f.pointer("/ranking_options/score_threshold"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0) as f32;
    (max, threshold)
}

impl Tool for FileSearch {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec::new(
            "file_search",
            "Search the files the user attached (their vector stores) for passages relevant to \
             a query. Each result starts with a label like 【0:1†report.pdf】; cite a passage \
             you use by writing its label exactly, right after the sentence it supports.",
            json!({
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look for, in natural language or keywords."}},
                "required": ["query"],
                "additionalProperties": false,
            }),
        )
        .strict()]
    }

    fn invoke(ctx: CallContext, name: String, arguments: String) -> Result<ToolOutput, ToolError> {
        ToolError::expect_tool(&name, "file_search")?;
        let Args { query } = args(&arguments)?;
        let query = query.trim();
        if query.is_empty() {
            return Err(ToolError::invalid("'query' must be a non-empty string"));
        }
        if ctx.vector_store_ids.is_empty() {
            return Err(ToolError::failed(
                "no files are attached: the assistant and thread have no vector stores",
            ));
        }
        let options = ctx.options();
        let (max_results, score_threshold) = search_options(&options.tool);
        let hits = search(&SearchRequest {
            vector_store_ids: ctx.vector_store_ids.clone(),
            query: query.to_string(),
            max_results,
            score_threshold,
            filters_json: None,
        })
        .map_err(ToolError::Failed)?;
        if hits.is_empty() {
            return Ok(format!("No passages matched the query '{query}'.").into());
        }
        let mut out = Passages::new(&options);
        for h in &hits {
            out.file(&h.filename, &h.file_id, &h.text);
        }
        Ok(out.finish())
    }
}

assistants_plugin::export_tool!(FileSearch);
