//! `tool_resources` of assistants and threads: file ids for code_interpreter and vector stores
//! for file_search, checked to exist in the caller's project. On create,
//! `file_search.vector_stores` makes a new store from files, as the real API does, inside the
//! owner's transaction, so a request that fails leaves no store behind. On modify, a patch
//! changes only the lists it names ([`Change`]).

use serde_json::{json, Map, Value};

use super::common;
use super::vector_stores;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::FileObject;
use assistants_core::model::VectorStoreDoc;
use assistants_core::store::Tx;

/// Whether inline `vector_stores` may be created, and in which transaction.
pub enum Inline<'a> {
    /// Creating an assistant or thread: inline stores are created in this transaction.
    Create(&'a mut Tx),
    /// Modifying: the API takes only existing `vector_store_ids` there.
    Refuse,
}

fn string_ids(param: &str, v: Option<&Value>, max: usize) -> ApiResult<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let not_strings = || {
        ApiError::invalid(
            param,
            format!("Invalid type for '{param}': expected an array of strings."),
        )
    };
    let list = v.as_array().ok_or_else(not_strings)?;
    if list.len() > max {
        return Err(ApiError::invalid(
            param,
            format!("Invalid '{param}': at most {max} items are allowed."),
        ));
    }
    list.iter()
        .map(|s| s.as_str().map(str::to_string).ok_or_else(not_strings))
        .collect()
}

/// Validates and normalises `tool_resources` (all reads happen before the inline writes).
pub async fn resolve(
    state: &AppState,
    project: &str,
    v: Option<Value>,
    inline: Inline<'_>,
) -> ApiResult<Value> {
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
        let param = "tool_resources.code_interpreter.file_ids";
        let ids = string_ids(param, ci.get("file_ids"), 20)?;
        let ids =
            common::require_existing::<FileObject>(&state.store, project, param, &ids).await?;
        out.insert("code_interpreter".into(), json!({ "file_ids": ids }));
    }
    let Some(fs) = map.get("file_search").filter(|v| !v.is_null()) else {
        return Ok(Value::Object(out));
    };
    let param = "tool_resources.file_search.vector_store_ids";
    let ids = string_ids(param, fs.get("vector_store_ids"), 1)?;
    let mut ids =
        common::require_existing::<VectorStoreDoc>(&state.store, project, param, &ids).await?;
    let p = "tool_resources.file_search.vector_stores";
    let specs = match fs.get("vector_stores").filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(_) if !ids.is_empty() => {
            return Err(ApiError::invalid(
                "tool_resources.file_search",
                "Give either 'vector_store_ids' or 'vector_stores', not both.",
            ))
        }
        Some(v) => v
            .as_array()
            .filter(|l| l.len() <= 1)
            .cloned()
            .ok_or_else(|| {
                ApiError::invalid(
                    p,
                    format!("Invalid '{p}': expected an array of at most 1 vector store."),
                )
            })?,
    };
    let mut planned = Vec::with_capacity(specs.len());
    for spec in &specs {
        let file_ids = string_ids(&format!("{p}[0].file_ids"), spec.get("file_ids"), 10_000)?;
        let file_ids = common::require_existing::<FileObject>(
            &state.store,
            project,
            &format!("{p}[0].file_ids"),
            &file_ids,
        )
        .await?;
        let strategy = common::chunking_strategy(
            &format!("{p}[0].chunking_strategy"),
            spec.get("chunking_strategy"),
        )?;
        let metadata =
            common::metadata(&format!("{p}[0].metadata"), spec.get("metadata").cloned())?;
        planned.push((file_ids, strategy, metadata));
    }
    match inline {
        Inline::Refuse if !planned.is_empty() => return Err(ApiError::invalid(
            p,
            "Creating vector stores inline is only possible when creating an assistant or thread; \
                 create the store first and pass its id in 'vector_store_ids'.",
        )),
        Inline::Refuse => {}
        Inline::Create(tx) => {
            for (file_ids, strategy, metadata) in planned {
                let vs = vector_stores::create_store_in(
                    state, tx, project, None, metadata, None, &file_ids, &strategy,
                )
                .await?;
                ids.push(vs.id);
            }
        }
    }
    out.insert("file_search".into(), json!({ "vector_store_ids": ids }));
    Ok(Value::Object(out))
}

/// The tool lists a modify request names. Clients such as agency-swarm send
/// `{"file_search": {}}` on every start; taking that as "no vector stores" would silently
/// detach the owner's stores, so only a list that is given (even `[]`, which clears) changes.
pub struct Change {
    sets: Vec<(&'static str, &'static str, Value)>,
}

/// The (tool, list) pairs `tool_resources` holds.
const LISTS: [(&str, &str); 2] = [
    ("code_interpreter", "file_ids"),
    ("file_search", "vector_store_ids"),
];

impl Change {
    /// Validates a modify request's `tool_resources` (as [`resolve`] does, refusing inline
    /// stores) and keeps the lists it names.
    pub async fn resolve(state: &AppState, project: &str, v: Value) -> ApiResult<Change> {
        let named: Vec<(&'static str, &'static str)> = LISTS
            .into_iter()
            .filter(|(tool, list)| {
                v.get(tool)
                    .and_then(|t| t.get(list))
                    .is_some_and(|l| !l.is_null())
            })
            .collect();
        let resolved = resolve(state, project, Some(v), Inline::Refuse).await?;
        let sets = named
            .into_iter()
            .map(|(tool, list)| (tool, list, resolved[tool][list].clone()))
            .collect();
        Ok(Change { sets })
    }

    /// `current` with the named lists replaced and everything else kept.
    pub fn apply(&self, current: &mut Value) {
        if !current.is_object() {
            *current = json!({});
        }
        for (tool, list, value) in &self.sets {
            let entry = current
                .as_object_mut()
                .expect("made an object above")
                .entry(*tool)
                .or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            entry[*list] = value.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_replaces_only_the_lists_it_names() {
        let mut current = json!({
            "code_interpreter": {"file_ids": ["file-a"]},
            "file_search": {"vector_store_ids": ["vs_1"]},
        });
        Change { sets: vec![] }.apply(&mut current);
        assert_eq!(current["file_search"]["vector_store_ids"], json!(["vs_1"]));
        Change {
            sets: vec![("file_search", "vector_store_ids", json!([]))],
        }
        .apply(&mut current);
        assert_eq!(current["file_search"]["vector_store_ids"], json!([]));
        assert_eq!(current["code_interpreter"]["file_ids"], json!(["file-a"]));
        let mut empty = json!({});
        Change {
            sets: vec![("code_interpreter", "file_ids", json!(["file-b"]))],
        }
        .apply(&mut empty);
        assert_eq!(empty, json!({"code_interpreter": {"file_ids": ["file-b"]}}));
    }
}
