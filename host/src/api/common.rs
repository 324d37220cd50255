//! Validation and wire helpers shared by the resource modules: metadata, list parameters,
//! nullable patches, chunking strategies, attributes, numbers and existence checks (tool
//! definitions are tool_list.rs's).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use assistants_core::model::ids::TypedId;
use assistants_core::plugins::ProjectRef;
use assistants_core::store::{ListEnvelope, ListParams, Order, Page};

use crate::state::AppState;
use assistants_core::model::Thread;

pub use assistants_core::model::Metadata;

/// Checks the metadata rules: at most 16 pairs, keys ≤ 64 chars, string values ≤ 512 chars.
/// `null` means "no metadata", which is `{}` on the wire.
pub fn metadata(param: &str, m: Option<Value>) -> ApiResult<Metadata> {
    let map = match m {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::invalid(
                param,
                format!("Invalid type for '{param}': expected an object."),
            ))
        }
    };
    if map.len() > 16 {
        return Err(ApiError::invalid(
            param,
            format!(
                "Invalid '{param}': too many properties. Expected at most 16, got {}.",
                map.len()
            ),
        ));
    }
    for (k, v) in &map {
        if k.chars().count() > 64 {
            return Err(ApiError::invalid(
                format!("{param}.{k}"),
                format!(
                    "Invalid '{param}': keys may be at most 64 characters long, '{k}' is longer."
                ),
            ));
        }
        match v {
            Value::String(s) if s.chars().count() <= 512 => {}
            Value::String(_) => {
                return Err(ApiError::invalid(
                    format!("{param}.{k}"),
                    format!(
                        "Invalid '{param}.{k}': string too long. Expected at most 512 characters."
                    ),
                ))
            }
            _ => {
                return Err(ApiError::invalid(
                    format!("{param}.{k}"),
                    format!("Invalid type for '{param}.{k}': expected a string."),
                ))
            }
        }
    }
    Ok(map)
}

/// The metadata of an update request: `None` to keep, otherwise the whole new map (null clears).
pub fn metadata_patch(p: Patch<Value>) -> ApiResult<Option<Metadata>> {
    match p {
        Patch::Absent => Ok(None),
        Patch::Null => Ok(Some(Metadata::new())),
        Patch::Value(v) => metadata("metadata", Some(v)).map(Some),
    }
}

/// A field of an update request: absent (leave as is), `null` (clear) or a new value.
#[derive(Debug, Clone, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Patch::Null,
            Some(v) => Patch::Value(v),
        })
    }
}

impl<T> Patch<T> {
    /// Applies the patch to an optional field.
    pub fn apply(self, field: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Null => *field = None,
            Patch::Value(v) => *field = Some(v),
        }
    }
}

/// Raw list query parameters; validated by [`ListQuery::params`].
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub order: Option<String>,
    pub after: Option<String>,
    pub before: Option<String>,
    /// Status filter (vector-store files) – read by the endpoints that have one.
    pub filter: Option<String>,
    /// `purpose` (files) and `run_id` (messages) filters.
    pub purpose: Option<String>,
    pub run_id: Option<String>,
}

impl ListQuery {
    /// `limit` 1..=`max` (default `default`), `order` asc|desc, non-empty cursors.
    pub fn params(&self, default: i64, max: i64) -> ApiResult<ListParams> {
        let limit = match self.limit.as_deref() {
            None | Some("") => default,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!(
                            "Invalid 'limit': expected an integer between 1 and {max}, got '{s}'."
                        ),
                    ))
                }
            },
        };
        let order = match self.order.as_deref() {
            None | Some("") | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(o) => {
                return Err(ApiError::invalid(
                    "order",
                    format!("Invalid 'order': expected 'asc' or 'desc', got '{o}'."),
                ))
            }
        };
        let cursor = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Ok(ListParams {
            limit,
            order,
            after: cursor(&self.after),
            before: cursor(&self.before),
        })
    }
}

/// The list envelope, `first_id`/`last_id` taken from the page.
pub fn list_envelope<T: Serialize>(
    page: Page<T>,
    id: impl Fn(&T) -> &str,
) -> axum::Json<ListEnvelope<T>> {
    axum::Json(ListEnvelope {
        object: "list",
        first_id: page.items.first().map(|t| id(t).to_string()),
        last_id: page.items.last().map(|t| id(t).to_string()),
        has_more: page.has_more,
        data: page.items,
    })
}

/// The `auto` strategy as the API reports it once applied.
pub fn auto_chunking() -> Value {
    serde_json::json!({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}})
}

/// Validates a chunking strategy request; returns the effective (static) strategy.
pub fn chunking_strategy(param: &str, v: Option<&Value>) -> ApiResult<Value> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(auto_chunking());
    };
    let kind = v.get("type").and_then(Value::as_str);
    match kind {
        Some("auto") => Ok(auto_chunking()),
        Some("static") => {
            let s = v.get("static").ok_or_else(|| {
                ApiError::invalid(
                    format!("{param}.static"),
                    format!("Missing required parameter: '{param}.static'."),
                )
            })?;
            let int = |name: &str| {
                s.get(name).and_then(Value::as_i64).ok_or_else(|| {
                    ApiError::invalid(
                        format!("{param}.static.{name}"),
                        format!("Missing or invalid integer '{param}.static.{name}'."),
                    )
                })
            };
            let max = int("max_chunk_size_tokens")?;
            let overlap = int("chunk_overlap_tokens")?;
            if !(100..=4096).contains(&max) {
                return Err(ApiError::invalid(
                    format!("{param}.static.max_chunk_size_tokens"),
                    format!("Invalid 'max_chunk_size_tokens': expected 100 to 4096, got {max}."),
                ));
            }
            if overlap < 0 || overlap > max / 2 {
                return Err(ApiError::invalid(
                    format!("{param}.static.chunk_overlap_tokens"),
                    format!(
                        "Invalid 'chunk_overlap_tokens': must be between 0 and half of max_chunk_size_tokens ({}), got {overlap}.",
                        max / 2
                    ),
                ));
            }
            Ok(
                serde_json::json!({"type": "static", "static": {"max_chunk_size_tokens": max, "chunk_overlap_tokens": overlap}}),
            )
        }
        _ => Err(ApiError::invalid(
            format!("{param}.type"),
            format!("Invalid '{param}.type': expected 'auto' or 'static'."),
        )),
    }
}

/// Validates vector-store file attributes: ≤ 16 keys ≤ 64 chars; values strings ≤ 512, numbers or booleans.
pub fn attributes(param: &str, v: Option<&Value>) -> ApiResult<Option<Value>> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::invalid(
                param,
                format!("Invalid type for '{param}': expected an object."),
            ))
        }
    };
    if map.len() > 16 {
        return Err(ApiError::invalid(
            param,
            format!("Invalid '{param}': at most 16 attributes are allowed."),
        ));
    }
    for (k, val) in map {
        if k.chars().count() > 64 {
            return Err(ApiError::invalid(
                param,
                format!("Invalid '{param}': key '{k}' is longer than 64 characters."),
            ));
        }
        let ok = match val {
            Value::String(s) => s.chars().count() <= 512,
            Value::Number(_) | Value::Bool(_) => true,
            _ => false,
        };
        if !ok {
            return Err(ApiError::invalid(
                format!("{param}.{k}"),
                format!("Invalid '{param}.{k}': expected a string of at most 512 characters, a number or a boolean."),
            ));
        }
    }
    Ok(Some(Value::Object(map.clone())))
}

/// Checks an optional number lies in `lo..=hi`.
pub fn number_in(param: &str, v: Option<f64>, lo: f64, hi: f64) -> ApiResult<Option<f64>> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(ApiError::invalid(
            param,
            format!("Invalid '{param}': expected a number between {lo} and {hi}, got {x}."),
        )),
        other => Ok(other),
    }
}

/// Checks an optional string is at most `max` characters.
pub fn max_chars(param: &str, v: &Option<String>, max: usize) -> ApiResult<()> {
    match v {
        Some(s) if s.chars().count() > max => Err(ApiError::invalid(
            param,
            format!("Invalid '{param}': string too long. Expected a string with maximum length {max}, but got a string with length {}.", s.chars().count()),
        )),
        _ => Ok(()),
    }
}

/// Validates `response_format`: "auto", or `{type: text|json_object|json_schema}`.
pub fn response_format(v: Option<Value>) -> ApiResult<Value> {
    let v = match v {
        None | Some(Value::Null) => return Ok(Value::String("auto".into())),
        Some(v) => v,
    };
    if v.as_str() == Some("auto") {
        return Ok(v);
    }
    match v.get("type").and_then(Value::as_str) {
        Some("text") | Some("json_object") => Ok(v),
        Some("json_schema") => {
            let name = v.get("json_schema").and_then(|s| s.get("name")).and_then(Value::as_str);
            if name.is_none() {
                return Err(ApiError::invalid(
                    "response_format.json_schema.name",
                    "Missing required parameter: 'response_format.json_schema.name'.",
                ));
            }
            Ok(v)
        }
        _ => Err(ApiError::invalid(
            "response_format",
            "Invalid 'response_format': expected 'auto' or an object with type 'text', 'json_object' or 'json_schema'.",
        )),
    }
}

/// Parses ids from a request body and checks that every one names a `D` of the project, in
/// one query; otherwise a 400 naming `param` and the first bad or missing id ("No file found
/// with id '…'."). An id of another kind names no object, and is refused before the query.
pub async fn require_existing<D: assistants_core::store::Doc>(
    store: &assistants_core::store::Store,
    project: &str,
    param: &str,
    ids: &[String],
) -> ApiResult<Vec<D::Id>> {
    let not_found = |id: &str| {
        ApiError::invalid(
            param,
            format!("No {} found with id '{}'.", D::NAME, id.escape_debug()),
        )
    };
    let typed = ids
        .iter()
        .map(|id| D::Id::parse(id).map_err(|_| not_found(id)))
        .collect::<ApiResult<Vec<D::Id>>>()?;
    let found = store.existing::<D>(project, &typed).await?;
    match typed.iter().find(|id| !found.contains(id.as_ref())) {
        Some(missing) => Err(not_found(missing.as_ref())),
        None => Ok(typed),
    }
}

/// [`require_existing`] for one id.
pub async fn require_one<D: assistants_core::store::Doc>(
    store: &assistants_core::store::Store,
    project: &str,
    param: &str,
    id: &str,
) -> ApiResult<D::Id> {
    let ids = require_existing::<D>(store, project, param, &[id.to_string()]).await?;
    Ok(ids.into_iter().next().expect("one id in, one out"))
}

/// 404 unless `thread` is a thread of the project. Routes under a thread check it before
/// touching its runs or messages: a response's lock thread (`model::response`) holds a run and
/// messages of the project but is no thread of it.
pub async fn require_thread(state: &AppState, project: &str, thread: &str) -> ApiResult<()> {
    let found = state.store.existing::<Thread>(project, &[thread]).await?;
    match found.is_empty() {
        true => Err(ApiError::not_found("thread", thread)),
        false => Ok(()),
    }
}

/// The caller as plugin allow-lists name projects; its name is looked up only when some
/// plugin is limited to some projects.
pub async fn plugin_caller(state: &AppState, project: &str) -> ApiResult<ProjectRef> {
    let name = if state.plugins.restricts_projects() {
        state.store.project_name(project).await?
    } else {
        None
    };
    Ok(ProjectRef {
        id: project.to_string(),
        name,
    })
}

/// Whether `name` may name a function tool: 1-64 characters of `a-z A-Z 0-9 _ -`.
pub fn is_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The error for a plugin the operator did not open to the caller's project.
pub fn not_for_project(param: &str, plugin: &str) -> ApiError {
    ApiError::invalid(
        param,
        format!("The plugin '{plugin}' is not available to this project."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_limits() {
        let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(metadata("metadata", Some(Value::Object(many))).is_err());
        assert!(metadata("metadata", Some(json!({"k": 1}))).is_err());
        assert!(metadata("metadata", Some(json!({"k": "x".repeat(513)}))).is_err());
        assert!(metadata("metadata", Some(json!({"k".repeat(65): "v"}))).is_err());
        assert_eq!(metadata("metadata", Some(json!(null))).unwrap().len(), 0);
    }

    #[test]
    fn chunking_bounds() {
        let s = |m: i64, o: i64| json!({"type":"static","static":{"max_chunk_size_tokens":m,"chunk_overlap_tokens":o}});
        assert!(chunking_strategy("c", Some(&s(100, 50))).is_ok());
        assert!(chunking_strategy("c", Some(&s(99, 0))).is_err());
        assert!(chunking_strategy("c", Some(&s(4097, 0))).is_err());
        assert!(chunking_strategy("c", Some(&s(800, 401))).is_err());
        assert_eq!(chunking_strategy("c", None).unwrap(), auto_chunking());
    }

    #[test]
    fn list_params_are_range_checked() {
        let q = ListQuery {
            limit: Some("101".into()),
            ..Default::default()
        };
        assert!(q.params(20, 100).is_err());
        let q = ListQuery {
            order: Some("sideways".into()),
            ..Default::default()
        };
        assert!(q.params(20, 100).is_err());
        let q = ListQuery::default();
        assert_eq!(q.params(20, 100).unwrap().limit, 20);
    }
}
