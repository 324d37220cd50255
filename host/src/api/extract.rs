//! Request extractors whose every rejection is an OpenAI error envelope.
//!
//! axum's own `Json`/`Query` reject with plain-text 4xx/422 bodies that the SDKs cannot parse.
//! These wrappers read the body under the configured limit, treat an empty body as `{}` (SDKs
//! send bodiless POSTs such as `cancel`, and GETs with a JSON content type), and name the
//! offending parameter using the path serde failed at.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use assistants_core::model::ids::IdKind;

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;

/// A JSON body.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.settings.max_json_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                if is_length_limit(&e) {
                    ApiError::new(
                        ErrorKind::PayloadTooLarge,
                        format!("Request body is larger than the limit of {limit} bytes."),
                    )
                } else {
                    ApiError::bad_request(format!("Could not read the request body: {e}"))
                }
            })?;
        parse_json(&bytes).map(Json)
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Parses a JSON object body into `T`, mapping serde's complaint to a parameter-naming 400.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let trimmed = bytes.iter().all(|b| b.is_ascii_whitespace());
    let bytes: &[u8] = if trimmed { b"{}" } else { bytes };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "We could not parse the JSON body of your request ({e}). The OpenAI API expects a \
             JSON payload."
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| describe(e.path().to_string(), e.inner()))
}

fn describe(path: String, inner: &serde_json::Error) -> ApiError {
    let msg = inner.to_string();
    // serde reports a missing field at the parent's path with the name in backticks.
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        let param = if path == "." || path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return ApiError::invalid(
            param.clone(),
            format!("Missing required parameter: '{param}'."),
        );
    }
    let path = if path == "." { String::new() } else { path };
    let detail = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    if path.is_empty() {
        return ApiError::bad_request(format!("Invalid request body: {detail}."));
    }
    if detail.starts_with("invalid type") {
        return ApiError::invalid(
            path.clone(),
            format!("Invalid type for '{path}': {detail}."),
        );
    }
    ApiError::invalid(
        path.clone(),
        format!("Invalid value for '{path}': {detail}."),
    )
}

/// Path parameters, all of which must look like ids of ours (see [`assistants_core::model::ids::is_valid_id`]),
/// and each id parameter an id of its kind (`{run_id}` starts with `run_`).
///
/// Anything else cannot name an object, so it is a 404 in the envelope before any query runs;
/// this also keeps NUL bytes and odd encodings away from the database.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let not_found = |what: &str| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("No object found with id '{}'.", what.escape_debug()),
            )
        };
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found(parts.uri.path()))?;
        if let Some((_, bad)) = raw
            .iter()
            .find(|(_, v)| !assistants_core::model::ids::is_valid_id(v))
        {
            return Err(not_found(bad));
        }
        // An id parameter of the wrong kind names no object: 404 for that kind, no query.
        let in_store = raw.iter().any(|(name, _)| name == "vs");
        for (name, value) in raw.iter() {
            if let Some(kind) = id_kind_of(name) {
                if !kind.accepts(value) {
                    // A file under a vector store is "vector store file", as its handlers say.
                    let noun = match kind {
                        IdKind::File if in_store => "vector store file",
                        _ => kind.noun(),
                    };
                    return Err(ApiError::not_found(noun, value));
                }
            }
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad_request(format!("Invalid path: {}.", e.body_text())))
    }
}

/// The kind of id a route parameter holds, by the parameter's name (the routes name them
/// after the OpenAPI spec's path parameters).
fn id_kind_of(param: &str) -> Option<IdKind> {
    Some(match param {
        "assistant_id" => IdKind::Assistant,
        "thread_id" => IdKind::Thread,
        "message_id" => IdKind::Message,
        "run_id" => IdKind::Run,
        "step_id" => IdKind::Step,
        "file_id" => IdKind::File,
        "upload_id" => IdKind::Upload,
        "vs" | "vector_store_id" => IdKind::VectorStore,
        "batch_id" => IdKind::FileBatch,
        "crawl_id" => IdKind::Crawl,
        "conversation_id" => IdKind::Conversation,
        "response_id" => IdKind::Response,
        "item_id" => IdKind::Item,
        _ => return None,
    })
}

/// Query-string parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("Invalid query parameters: {e}.")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        model: String,
        temperature: Option<f64>,
    }

    #[test]
    fn every_id_route_parameter_has_a_kind() {
        for name in [
            "assistant_id",
            "thread_id",
            "run_id",
            "step_id",
            "vs",
            "batch_id",
            "crawl_id",
        ] {
            assert!(id_kind_of(name).is_some(), "{name}");
        }
        assert_eq!(
            id_kind_of("plugin_id"),
            None,
            "plugin ids are manifest names"
        );
        assert_eq!(id_kind_of("file_id").map(IdKind::prefix), Some("file-"));
    }

    #[test]
    fn missing_and_mistyped_fields_name_their_parameter() {
        let e = parse_json::<Body>(b"{}").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = parse_json::<Body>(br#"{"model":"m","temperature":"hot"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        assert!(e.message.contains("Invalid type"));
        let e = parse_json::<Body>(b"[1]").unwrap_err();
        assert_eq!(e.status(), 400);
        let e = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(e.status(), 400);
    }
}
