//! `tool_resources` of assistants and threads: file ids for code_interpreter and vector stores
//! for file_search, checked to exist in the caller's project. `file_search.vector_stores`
//! creates a new store from files, as the real API does.

use serde_json::{json, Map, Value};

use super::files::FileObject;
use super::vector_stores::{self, VectorStoreDoc};
use super::AppState;
use crate::error::{ApiError, ApiResult};

fn string_ids(param: &str, v: Option<&Value>, max: usize) -> ApiResult<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or_else(|| {
        ApiError::invalid(
            param,
            format!("Invalid type for '{param}': expected an array of strings."),
        )
    })?;
    if list.len() > max {
        return Err(ApiError::invalid(
            param,
            format!("Invalid '{param}': at most {max} items are allowed."),
        ));
    }
    list.iter()
        .map(|s| {
            s.as_str().map(str::to_string).ok_or_else(|| {
                ApiError::invalid(
                    param,
                    format!("Invalid type for '{param}': expected an array of strings."),
                )
            })
        })
        .collect()
}

/// Validates and normalises `tool_resources`, creating inline vector stores.
pub async fn resolve(state: &AppState, project: &str, v: Option<Value>) -> ApiResult<Value> {
    let map = match v {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::invalid(
                "tool_resources",
                "Invalid type for 'tool_resources': expected an object.",
            ))
        }
    };
    let mut out = Map::new();
    if let Some(ci) = map.get("code_interpreter").filter(|v| !v.is_null()) {
        let ids = string_ids(
            "tool_resources.code_interpreter.file_ids",
            ci.get("file_ids"),
            20,
        )?;
        for id in &ids {
            if state.store.find::<FileObject>(project, id).await?.is_none() {
                return Err(ApiError::invalid(
                    "tool_resources.code_interpreter.file_ids",
                    format!("No file found with id '{id}'."),
                ));
            }
        }
        out.insert("code_interpreter".into(), json!({ "file_ids": ids }));
    }
    if let Some(fs) = map.get("file_search").filter(|v| !v.is_null()) {
        let param = "tool_resources.file_search.vector_store_ids";
        let mut ids = string_ids(param, fs.get("vector_store_ids"), 1)?;
        let inline = fs.get("vector_stores").filter(|v| !v.is_null());
        if !ids.is_empty() && inline.is_some() {
            return Err(ApiError::invalid(
                "tool_resources.file_search",
                "Give either 'vector_store_ids' or 'vector_stores', not both.",
            ));
        }
        for id in &ids {
            if state
                .store
                .find::<VectorStoreDoc>(project, id)
                .await?
                .is_none()
            {
                return Err(ApiError::invalid(
                    param,
                    format!("No vector store found with id '{id}'."),
                ));
            }
        }
        if let Some(stores) = inline {
            let p = "tool_resources.file_search.vector_stores";
            let list = stores.as_array().filter(|l| l.len() <= 1).ok_or_else(|| {
                ApiError::invalid(
                    p,
                    format!("Invalid '{p}': expected an array of at most 1 vector store."),
                )
            })?;
            for spec in list {
                let file_ids =
                    string_ids(&format!("{p}[0].file_ids"), spec.get("file_ids"), 10_000)?;
                let strategy = super::common::chunking_strategy(
                    &format!("{p}[0].chunking_strategy"),
                    spec.get("chunking_strategy"),
                )?;
                let metadata = super::common::metadata(
                    &format!("{p}[0].metadata"),
                    spec.get("metadata").cloned(),
                )?;
                let vs = vector_stores::create_store(
                    state, project, None, metadata, None, &file_ids, &strategy,
                )
                .await?;
                ids.push(vs.id);
            }
        }
        out.insert("file_search".into(), json!({ "vector_store_ids": ids }));
    }
    Ok(Value::Object(out))
}
