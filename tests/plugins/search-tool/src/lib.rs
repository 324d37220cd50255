//! `search(query)` searches every vector store of the call and lists the hits labelled the way
//! file_search labels them for the model; `search_elsewhere` tries a store it was not given;
//! `search_flood` searches until the host refuses and says how many searches it got.

wit_bindgen::generate!({ world: "retrieval-tool-plugin", path: "../../../wit/v0.1.0" });

use assistants::plugin::vector_store::{search, SearchRequest};
use exports::assistants::plugin::tool::{CallContext, Guest, ToolError, ToolOutput, ToolSpec};

struct SearchTool;

impl Guest for SearchTool {
    fn describe() -> Vec<ToolSpec> {
        ["search", "search_elsewhere", "search_flood"]
            .iter()
            .map(|name| ToolSpec {
                name: name.to_string(),
                description: "Search the attached vector stores.".into(),
                parameters_json: r#"{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}"#.into(),
                strict: false,
            })
            .collect()
    }

    fn invoke(ctx: CallContext, name: String, args: String) -> Result<ToolOutput, ToolError> {
        let query = args.split('"').nth(3).unwrap_or_default().to_string();
        if name == "search_flood" {
            let request = SearchRequest {
                vector_store_ids: ctx.vector_store_ids.clone(),
                query,
                max_results: 1,
                score_threshold: 0.0,
                filters_json: None,
            };
            for n in 0..10_000 {
                if let Err(e) = search(&request) {
                    return Err(ToolError::Failed(format!(
                        "refused after {n} searches: {e}"
                    )));
                }
            }
            return Ok(ToolOutput {
                text: "never refused".into(),
                annotations: vec![],
            });
        }
        let stores = match name.as_str() {
            "search" => ctx.vector_store_ids.clone(),
            "search_elsewhere" => vec!["vs_not_given_to_this_call".to_string()],
            other => return Err(ToolError::UnknownTool(other.into())),
        };
        let hits = search(&SearchRequest {
            vector_store_ids: stores,
            query,
            max_results: 5,
            score_threshold: 0.0,
            filters_json: None,
        })
        .map_err(ToolError::Failed)?;
        let text = hits
            .iter()
            .enumerate()
            .map(|(i, h)| format!("【0:{i}†{}】{}", h.filename, h.text))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ToolOutput {
            text,
            annotations: vec![],
        })
    }
}

export!(SearchTool);
