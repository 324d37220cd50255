//! A small web site on 127.0.0.1 for crawl tests: pages linked several levels deep, a
//! redirect, a page that changes and one that disappears on request, a robots.txt that
//! excludes `/private/`, and a link to a second server (another host name, which tests leave
//! ungranted). Every request is counted by path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// What the site serves, changeable while it runs.
#[derive(Default)]
pub struct SiteState {
    /// Which version `/docs/changing.html` shows.
    pub version: AtomicU32,
    /// Whether `/docs/vanishing.html` answers 404.
    pub vanished: AtomicBool,
    /// Slows every page down (crawls that must still be running when a node dies).
    pub delay_ms: AtomicU32,
    /// Whether robots.txt also disallows `/docs/deep.html`.
    pub deep_disallowed: AtomicBool,
    /// Whether the site is down: every request answers 503.
    pub down: AtomicBool,
    hits: Mutex<HashMap<String, usize>>,
    other: Mutex<String>,
}

/// A running test site.
pub struct TestSite {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The host:port tests grant the crawler.
    pub host: String,
    /// The second server's `http://localhost:PORT` (not the same host name).
    pub other_url: String,
    pub state: Arc<SiteState>,
}

impl TestSite {
    pub async fn start() -> TestSite {
        let state = Arc::new(SiteState::default());
        // The second server: another host name, so grants and same_domain tell them apart.
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_url = format!("http://localhost:{}", other.local_addr().unwrap().port());
        *state.other.lock().unwrap() = other_url.clone();
        let other_app = Router::new()
            .route("/{*path}", get(page))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(other, other_app).await });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/", get(|| async { "root" }))
            .route("/{*path}", get(page))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestSite {
            url: format!("http://{addr}"),
            host: format!("127.0.0.1:{}", addr.port()),
            other_url,
            state,
        }
    }

    /// Requests for `path` so far (on either server).
    pub fn hits(&self, path: &str) -> usize {
        *self.state.hits.lock().unwrap().get(path).unwrap_or(&0)
    }

    pub fn set_delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u32, Ordering::SeqCst);
    }
}

fn html(title: &str, body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"
        ),
    )
        .into_response()
}

async fn page(State(state): State<Arc<SiteState>>, Path(path): Path<String>) -> Response {
    let path = format!("/{path}");
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay.into())).await;
    }
    if state.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    let other = state.other.lock().unwrap().clone();
    match path.as_str() {
        "/robots.txt" => {
            let mut rules = String::from("User-agent: *\nDisallow: /private/\n");
            if state.deep_disallowed.load(Ordering::SeqCst) {
                rules.push_str("Disallow: /docs/deep.html\n");
            }
            rules.into_response()
        }
        "/docs/" => html(
            "Quokka handbook",
            &format!(
                "<h1>Quokka handbook</h1><p>Start here.</p>\
                 <a href=\"guide.html\">Guide</a> <a href=\"/old\">Old page</a> \
                 <a href=\"changing.html\">News</a> <a href=\"vanishing.html\">Event</a> \
                 <a href=\"/private/secret.html\">Staff</a> \
                 <a href=\"{other}/external.html\">Elsewhere</a>"
            ),
        ),
        "/docs/guide.html" => html(
            "Feeding guide",
            "<p>Quokkas on Rottnest Island graze on saltbush at dusk.</p>\
             <a href=\"deep.html\">Deeper</a>",
        ),
        "/docs/deep.html" => html(
            "Burrows",
            "<p>Quokkas shelter in dense thickets.</p><a href=\"deeper.html\">Deeper still</a>",
        ),
        "/docs/deeper.html" => html("Too deep", "<p>Beyond the crawl's depth.</p>"),
        "/old" => (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, "/docs/moved.html")],
            "",
        )
            .into_response(),
        "/docs/moved.html" => html(
            "Moved page",
            "<p>Quokka joeys leave the pouch at six months.</p>",
        ),
        "/docs/changing.html" => {
            let v = state.version.load(Ordering::SeqCst);
            html(
                "News",
                &format!(
                    "<p>Census edition {v}: the island counts {} quokkas.</p>",
                    10_000 + v
                ),
            )
        }
        "/docs/vanishing.html" if !state.vanished.load(Ordering::SeqCst) => {
            html("Event", "<p>The quokka festival is on Saturday.</p>")
        }
        "/private/secret.html" => html("Secret", "<p>Staff only.</p>"),
        "/external.html" => html("External", "<p>Another site.</p>"),
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
