//! `/playground`: a single-page app over this server's own API (assistants, threads with
//! streaming, run steps, files, vector stores, plugins, responses). Its three files are in
//! the binary (`host/playground/`, embedded at build time), so `cargo build` is the only build
//! step and nothing is fetched from elsewhere at run time; a content security policy holds the
//! page to its own origin. The page keeps the API key in the browser's session storage and
//! sends it like any client; the server gives the assets to anyone (they hold no data).

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX: &str = include_str!("../playground/index.html");
const SCRIPT: &str = include_str!("../playground/app.js");
const STYLE: &str = include_str!("../playground/app.css");

/// Same origin only: scripts, styles and API calls; images also from `data:`/`blob:`.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data: blob:; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/playground",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/playground/",
            get(|| async { Redirect::permanent("/playground") }),
        )
        .route(
            "/playground/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/playground/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    // A new binary may bring new assets: revalidate rather than serve a stale page.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}
