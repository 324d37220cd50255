//! The one place where an error becomes an HTTP status and an OpenAI error envelope.
//!
//! Every failure a handler can produce is an [`ApiError`] carrying an [`ErrorKind`]; the exhaustive
//! `match` in [`ErrorKind::status_and_type`] is the only place a status code is chosen. Internal
//! causes (database, blob store) are logged with context and never leak into the response body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use assistants_core::blobs::BlobError;
use assistants_core::plugins::catalog::CatalogError;
use assistants_core::search::FilterError;
use assistants_core::store::StoreError;
use assistants_worker::transitions::TransitionError;

/// What went wrong, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or semantically invalid input (400).
    InvalidRequest,
    /// The object does not exist, or belongs to another project (404).
    NotFound,
    /// Missing or unknown API key (401).
    Unauthorized,
    /// A valid key without the scope the operation needs (403).
    PermissionDenied,
    /// The route exists but not for this method (405).
    MethodNotAllowed,
    /// A body or upload larger than the configured limit (413).
    PayloadTooLarge,
    /// The request conflicts with the object's current state (409), e.g. completing a cancelled upload.
    Conflict,
    /// The project reached a storage quota the operator set (429, `insufficient_quota`, not
    /// worth retrying: the SDKs are told so by `x-should-retry: false`).
    QuotaExceeded,
    /// Something failed on our side; the cause is in the server log (500).
    Internal,
    /// A dependency (database, blob store) is unavailable right now (503).
    Unavailable,
}

impl ErrorKind {
    fn status_and_type(self) -> (StatusCode, &'static str) {
        match self {
            ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "invalid_request_error"),
            ErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "invalid_request_error"),
            ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, "invalid_request_error"),
            ErrorKind::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error")
            }
            ErrorKind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "invalid_request_error"),
            ErrorKind::QuotaExceeded => (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "server_error"),
        }
    }
}

/// An error as the client sees it: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 400 naming the offending parameter.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorKind::InvalidRequest,
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }

    /// 400 without a single parameter to blame.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// 404 in the wording the SDKs' users know: "No assistant found with id 'asst_x'."
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("No {what} found with id '{id}'."),
        )
    }

    /// 400 for a message or run on a thread that already has an active run.
    pub fn thread_locked(thread_id: &str, run_id: &str) -> Self {
        Self::bad_request(format!(
            "Thread {thread_id} already has an active run {run_id}."
        ))
    }

    /// The same error, naming the parameter that caused it.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Logs the real cause and returns an envelope that does not leak it.
    #[track_caller]
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        let at = std::panic::Location::caller();
        tracing::error!(%cause, %at, "{context}");
        Self::new(
            ErrorKind::Internal,
            "The server had an error while processing your request.",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status_and_type().0
    }

    /// The envelope body, also used for SSE `error` events later.
    pub fn body(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            param: Option<&'a str>,
            code: Option<&'static str>,
        }
        serde_json::json!({ "error": Inner {
            message: &self.message,
            kind: self.kind.status_and_type().1,
            param: self.param.as_deref(),
            code: self.code,
        }})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if self.kind == ErrorKind::QuotaExceeded {
            // The official SDKs retry every 429 unless told not to; a quota does not lift by
            // itself within their backoff.
            response.headers_mut().insert(
                "x-should-retry",
                axum::http::HeaderValue::from_static("false"),
            );
        }
        response
    }
}

impl From<assistants_core::limits::QuotaExceeded> for ApiError {
    fn from(e: assistants_core::limits::QuotaExceeded) -> Self {
        ApiError::new(ErrorKind::QuotaExceeded, e.to_string()).with_code("insufficient_quota")
    }
}

impl From<StoreError> for ApiError {
    /// The one mapping from store failures to what clients see.
    #[track_caller]
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => ApiError::not_found(kind, &id),
            // A row this request refers to was deleted concurrently (e.g. attaching a file to
            // a store that is being deleted): the referenced object no longer exists.
            StoreError::Vanished => ApiError::new(
                ErrorKind::NotFound,
                "An object this request refers to no longer exists.",
            ),
            StoreError::Conflict => ApiError::new(
                ErrorKind::Conflict,
                "The object was changed by a concurrent request; retry.",
            ),
            StoreError::ThreadLocked { thread_id, run_id } => {
                ApiError::thread_locked(&thread_id, &run_id)
            }
            StoreError::UnknownCursor { param, id } => ApiError::invalid(
                param,
                format!("Invalid '{param}': no object with id '{id}' in this list."),
            ),
            StoreError::Unavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                ApiError::new(
                    ErrorKind::Unavailable,
                    "The database is temporarily unavailable.",
                )
            }
            StoreError::Internal { context, cause } => ApiError::internal(context, cause),
        }
    }
}

impl From<TransitionError> for ApiError {
    /// A refused run transition: the client asked for a change the run's status does not allow.
    #[track_caller]
    fn from(e: TransitionError) -> Self {
        let message = e.to_string();
        match e {
            TransitionError::Store(e) => e.into(),
            TransitionError::NotCancellable(_) | TransitionError::NotAwaitingOutputs(_) => {
                ApiError::bad_request(message)
            }
            TransitionError::Raced => ApiError::new(ErrorKind::Conflict, message),
            TransitionError::UnknownToolCall { .. }
            | TransitionError::MissingToolOutputs { .. } => {
                ApiError::invalid("tool_outputs", message)
            }
        }
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        ApiError::invalid(e.param, e.message)
    }
}

impl From<BlobError> for ApiError {
    #[track_caller]
    fn from(e: BlobError) -> Self {
        match e {
            // The object's bytes were deleted (with the object, concurrently).
            BlobError::Missing => ApiError::new(
                ErrorKind::NotFound,
                "The content of this object no longer exists.",
            ),
            BlobError::TooLarge { limit } => ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("Object is larger than {limit} bytes."),
            ),
            BlobError::Store(e) => ApiError::internal("blob store error", e),
        }
    }
}

impl From<CatalogError> for ApiError {
    /// An upload or removal of a plugin refused: the reason is the client's to read.
    #[track_caller]
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid { param, message } => ApiError::invalid(param, message),
            CatalogError::Conflict(message) => ApiError::new(ErrorKind::Conflict, message),
            CatalogError::Failed(e) => ApiError::internal("plugin catalog", format!("{e:#}")),
        }
    }
}

impl From<serde_json::Error> for ApiError {
    #[track_caller]
    fn from(e: serde_json::Error) -> Self {
        // Only reached for documents we wrote ourselves; client JSON goes through `api::extract`.
        ApiError::internal("stored JSON could not be decoded", e)
    }
}
