//! Who is calling: the bearer key decides the project every object belongs to.
//!
//! Until the first key is created the server is open: any (or no) bearer token maps to the
//! default project, which is what a newcomer running it locally expects. Once a key exists,
//! every request needs a valid one. Whether keys exist is re-checked at most once a second, so
//! a key created with `assistants keys create` takes effect within a second on every node,
//! without a per-request query in open mode.
//!
//! Open mode is for a server only its own machine can reach: an API node listening beyond
//! loopback with no key creates one at start and prints it once ([`secure_exposed_start`]),
//! unless the operator asks for open mode explicitly (`--allow-open`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::error::{ApiError, ApiResult, ErrorKind};
use assistants_core::store::keys::{KeyAccess, Scope, DEFAULT_PROJECT};
use assistants_core::store::Store;

const RECHECK: Duration = Duration::from_secs(1);

/// Caches whether the server is in open mode.
#[derive(Default)]
pub struct Auth {
    keys_exist: Mutex<Option<(bool, Instant)>>,
}

impl Auth {
    async fn keys_exist(&self, store: &Store) -> ApiResult<bool> {
        if let Some((v, at)) = *self.keys_exist.lock().expect("auth cache poisoned") {
            if at.elapsed() < RECHECK {
                return Ok(v);
            }
        }
        let v = store.any_key_configured().await?;
        *self.keys_exist.lock().expect("auth cache poisoned") = Some((v, Instant::now()));
        Ok(v)
    }

    /// The project for a request carrying `bearer`.
    pub async fn project(&self, store: &Store, bearer: Option<&str>) -> ApiResult<String> {
        Ok(self.access(store, bearer).await?.project)
    }

    /// What a request carrying `bearer` may reach: its project, and whether it may manage the
    /// server. Open mode is a project's access, never an admin's.
    pub async fn access(&self, store: &Store, bearer: Option<&str>) -> ApiResult<KeyAccess> {
        if !self.keys_exist(store).await? {
            return Ok(KeyAccess {
                project: DEFAULT_PROJECT.to_string(),
                scope: Scope::Project,
            });
        }
        let Some(key) = bearer else {
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            ));
        };
        match store.key_access(key).await? {
            Some(access) => Ok(access),
            None => Err(ApiError::new(
                ErrorKind::Unauthorized,
                format!("Incorrect API key provided: {}.", redact_key(key)),
            )
            .with_code("invalid_api_key")),
        }
    }
}

fn redact_key(key: &str) -> String {
    let n = key.chars().count();
    if n <= 8 {
        return "*".repeat(n);
    }
    let head: String = key.chars().take(4).collect();
    let tail: String = key.chars().skip(n - 4).collect();
    format!("{head}{}{tail}", "*".repeat(n - 8))
}

/// The caller's project, extracted from the `Authorization` header.
pub struct Project(pub String);

/// A caller whose key has the admin scope (`assistants keys create --admin`): it may manage
/// the server (upload and remove plugins). Carries the key's project.
pub struct Admin(pub String);

/// The bearer token of a request with these headers.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

async fn access<S>(parts: &Parts, state: &S) -> ApiResult<KeyAccess>
where
    Arc<Auth>: FromRef<S>,
    Store: FromRef<S>,
{
    // Resolved once already by the router's `by_project` layer, when it could be.
    if let Some(access) = parts.extensions.get::<KeyAccess>() {
        return Ok(access.clone());
    }
    let (auth, store) = (Arc::<Auth>::from_ref(state), Store::from_ref(state));
    auth.access(&store, bearer(&parts.headers)).await
}

impl<S> FromRequestParts<S> for Project
where
    S: Send + Sync,
    Arc<Auth>: FromRef<S>,
    Store: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(Project(access(parts, state).await?.project))
    }
}

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Arc<Auth>: FromRef<S>,
    Store: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let access = access(parts, state).await?;
        if access.scope != Scope::Admin {
            return Err(ApiError::new(
                ErrorKind::PermissionDenied,
                "This operation manages the server and needs an admin key \
                 (`assistants keys create --project NAME --admin`).",
            ));
        }
        Ok(Admin(access.project))
    }
}

/// What [`secure_exposed_start`] did.
#[derive(Debug, PartialEq)]
pub enum Exposure {
    /// Listening on loopback only, or keys exist already: nothing to do.
    Unchanged,
    /// The operator allowed open mode on a reachable address.
    OpenByRequest,
    /// A first key was created for the default project (id, key); the caller prints it once.
    KeyCreated(String, String),
}

/// Makes sure a server reachable from the network does not start open: with no key and a
/// listen address beyond loopback, it creates a first key for the default project, unless
/// `allow_open` says the operator wants open mode there.
pub async fn secure_exposed_start(
    store: &Store,
    listen: std::net::SocketAddr,
    allow_open: bool,
) -> anyhow::Result<Exposure> {
    if listen.ip().is_loopback() || store.any_key_configured().await? {
        return Ok(Exposure::Unchanged);
    }
    if allow_open {
        tracing::warn!(%listen, "serving without API keys on a reachable address (--allow-open): any client may use this server");
        return Ok(Exposure::OpenByRequest);
    }
    let (id, key) = store.create_default_project_key().await?;
    Ok(Exposure::KeyCreated(id, key))
}
