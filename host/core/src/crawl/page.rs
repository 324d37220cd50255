//! One page of a crawl's pass: the grant, the site's robots.txt, a turn at the host's gate, the
//! fetch through the crawler component, and what to write for it (stored as a new file,
//! unchanged, gone, redirected, skipped or failed, with the links to queue).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use url::Url;

use super::gate::HostGate;
use super::robots::{self, Robots};
use super::spec::page_url;
use super::{CrawlSettings, Deps};
use crate::blobs::file_key;
use crate::limits::Usage;
use crate::model::ids::{now, FileId};
use crate::model::{FileObject, FileStatus, PageStatus};
use crate::plugins::bindings::CallContext;
use crate::plugins::Plugin;
use crate::store::crawls::{CrawlJob, CrawlWrite, FileChange, NewPageFile, PageRow, PageWrite};
use crate::store::StoreError;

/// Longest title kept (an attribute value holds at most 512 characters).
const MAX_TITLE: usize = 512;

/// robots.txt per origin, read once per claim of a pass.
#[derive(Default)]
pub(super) struct RobotsCache {
    origins: std::sync::Mutex<HashMap<String, Arc<OnceCell<Robots>>>>,
}

/// A pass's shared context.
pub(super) struct Pass<'a> {
    pub(super) deps: &'a Deps,
    pub(super) gate: &'a HostGate,
    pub(super) job: &'a CrawlJob,
    pub(super) crawler: Arc<Plugin>,
    pub(super) robots: RobotsCache,
    /// The first reason a root page was not stored (the crawl's error if nothing was).
    pub(super) problem: std::sync::Mutex<Option<String>>,
}

/// What the crawler component answers for a page.
#[derive(Debug, Deserialize)]
struct Fetched {
    url: String,
    status: u16,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    links: Vec<String>,
    #[serde(default)]
    noindex: bool,
    #[serde(default)]
    nofollow: bool,
    #[serde(default)]
    body: String,
}

/// Fetches `url` through the crawler component, at the host's turn.
async fn fetch(pass: &Pass<'_>, url: &Url, delay: Duration) -> Result<Fetched, String> {
    let origin = url.origin().ascii_serialization();
    let _turn = pass.gate.enter(&origin, delay).await;
    let ctx = CallContext {
        tool_call_id: pass.job.crawl.id.clone(),
        run_id: None,
        thread_id: None,
        assistant_id: None,
        vector_store_ids: vec![],
        options_json: "{}".into(),
    };
    let args = json!({ "url": url.as_str() }).to_string();
    let (out, _) = pass
        .deps
        .plugins
        .invoke_with(
            &pass.crawler,
            Some(&pass.job.crawl.project_id),
            ctx,
            "fetch_page",
            &args,
            None,
        )
        .await;
    let out = out.map_err(|e| crate::plugins::error_text(&e))?;
    serde_json::from_str(&out.text).map_err(|e| format!("the crawler's answer was not read: {e}"))
}

/// The delay between two requests to a site: the operator's, or longer if its robots.txt
/// asks for it.
fn delay_for(settings: &CrawlSettings, robots: &Robots) -> Duration {
    let ours = Duration::from_millis(settings.delay_ms);
    let theirs = robots
        .crawl_delay
        .filter(|d| d.is_finite() && *d > 0.0)
        .map(|d| Duration::from_secs_f64(d.min(super::gate::MAX_DELAY.as_secs_f64())));
    theirs.map_or(ours, |t| t.max(ours))
}

/// The robots.txt rules of `url`'s site: read once per claim (a 4xx allows everything, an
/// error or 5xx nothing, as RFC 9309 says).
async fn robots_for(pass: &Pass<'_>, url: &Url) -> Robots {
    let origin = url.origin().ascii_serialization();
    let cell = pass
        .robots
        .origins
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(origin.clone())
        .or_default()
        .clone();
    cell.get_or_init(|| async {
        let Ok(robots_url) = Url::parse(&format!("{origin}/robots.txt")) else {
            return Robots::deny_all();
        };
        let delay = Duration::from_millis(pass.deps.settings.delay_ms);
        match fetch(pass, &robots_url, delay).await {
            Ok(f) if (200..300).contains(&f.status) => Robots::parse(&f.body, robots::AGENT),
            Ok(f) if (400..500).contains(&f.status) => Robots::allow_all(),
            Ok(f) => {
                tracing::info!(%origin, status = f.status, "robots.txt unavailable: the site is not crawled");
                Robots::deny_all()
            }
            Err(e) => {
                tracing::info!(%origin, error = %e, "robots.txt unreadable: the site is not crawled");
                Robots::deny_all()
            }
        }
    })
    .await
    .clone()
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// A row's result without a fetch or a stored copy.
fn verdict(page: &PageRow, status: PageStatus, reason: String, file: FileChange) -> PageWrite {
    PageWrite {
        url: page.url.clone(),
        depth: page.depth,
        status,
        reason: Some(reason),
        content_hash: None,
        title: None,
        crawled_at: None,
        file,
    }
}

/// What to write for a page (and the id of a new file whose bytes are stored already).
pub(super) async fn decide(
    pass: &Pass<'_>,
    page: &PageRow,
) -> Result<(CrawlWrite, Option<String>), StoreError> {
    // A page skipped keeps a copy from an earlier pass only when the skip may be passing
    // (robots.txt unreadable for now); a site that now disallows it, or a host no longer
    // granted, takes it out of the store.
    let skip = |reason: String, file: FileChange| CrawlWrite {
        pages: vec![verdict(page, PageStatus::Skipped, reason, file)],
        ..Default::default()
    };
    let Ok(url) = Url::parse(&page.url) else {
        return Ok((skip("not a URL".into(), FileChange::Remove), None));
    };
    let host = url.host_str().unwrap_or("");
    let port = url.port_or_known_default().unwrap_or(0);
    if !pass.crawler.may_reach(host, port) {
        let reason = format!(
            "{host} is not granted to the crawler (the operator's [plugins.grants.crawler] hosts)"
        );
        return Ok((skip(reason, FileChange::Remove), None));
    }
    let robots = robots_for(pass, &url).await;
    if robots.unreadable() {
        let reason = "the site's robots.txt could not be read: not crawled this pass";
        return Ok((skip(reason.into(), FileChange::Keep), None));
    }
    if !robots.allows(&path_and_query(&url)) {
        let reason = "disallowed by the site's robots.txt";
        return Ok((skip(reason.into(), FileChange::Remove), None));
    }
    let delay = delay_for(&pass.deps.settings, &robots);
    let fetched = match fetch(pass, &url, delay).await {
        Ok(f) => f,
        Err(e) => {
            let write = CrawlWrite {
                pages_fetched: 1,
                pages: vec![verdict(page, PageStatus::Failed, e, FileChange::Keep)],
                ..Default::default()
            };
            return Ok((write, None));
        }
    };
    let mut write = CrawlWrite {
        pages_fetched: 1,
        bytes_fetched: fetched.body.len() as i64,
        ..Default::default()
    };
    // Where the page's content goes: this row, or where its redirects led.
    let target_url = page_url(&fetched.url).unwrap_or_else(|_| page.url.clone());
    let target = if target_url == page.url {
        page.clone()
    } else {
        write.pages.push(verdict(
            page,
            PageStatus::Redirected,
            format!("redirected to {target_url}"),
            FileChange::Remove,
        ));
        let Ok(parsed) = Url::parse(&target_url) else {
            return Ok((write, None));
        };
        // A root may redirect anywhere the grant allows (the operator named it); a link
        // found on a page stays within the crawl's scope.
        if page.depth > 0 {
            if let Some(why) = pass.job.crawl.spec.refuses(&parsed) {
                write.pages[0].reason = Some(format!(
                    "redirected out of the crawl to {target_url}: {why}"
                ));
                return Ok((write, None));
            }
        }
        let existing = pass.deps.store.crawl_page(pass.job, &target_url).await?;
        if let Some(e) = &existing {
            if e.pass == pass.job.crawl.pass && e.status != PageStatus::Queued {
                // This pass has that page already.
                return Ok((write, None));
            }
        }
        let robots = robots_for(pass, &parsed).await;
        if !robots.allows(&path_and_query(&parsed)) {
            let target = PageRow {
                url: target_url.clone(),
                depth: page.depth,
                ..page.clone()
            };
            let (reason, file) = match robots.unreadable() {
                true => ("the site's robots.txt could not be read", FileChange::Keep),
                false => ("disallowed by the site's robots.txt", FileChange::Remove),
            };
            write
                .pages
                .push(verdict(&target, PageStatus::Skipped, reason.into(), file));
            return Ok((write, None));
        }
        match existing {
            Some(e) => PageRow {
                depth: e.depth.min(page.depth),
                ..e
            },
            None => PageRow {
                url: target_url.clone(),
                depth: page.depth,
                pass: pass.job.crawl.pass,
                status: PageStatus::Queued,
                reason: None,
                file_id: None,
                content_hash: None,
                title: None,
                crawled_at: None,
                file_attached: false,
            },
        }
    };
    let new_file = settle(pass, &target, fetched, &mut write).await?;
    Ok((write, new_file))
}

/// The fetched page's own result (stored, unchanged, gone, …) and its links.
async fn settle(
    pass: &Pass<'_>,
    target: &PageRow,
    fetched: Fetched,
    write: &mut CrawlWrite,
) -> Result<Option<String>, StoreError> {
    let spec = &pass.job.crawl.spec;
    let had_copy = target.file_id.is_some() && target.file_attached;
    // Not stored this time, and whatever copy the page has is kept.
    let failed = |reason: String| verdict(target, PageStatus::Failed, reason, FileChange::Keep);
    if matches!(fetched.status, 404 | 410) {
        let (status, reason) = match had_copy {
            true => (
                PageStatus::Removed,
                format!("gone (HTTP {})", fetched.status),
            ),
            false => (PageStatus::Failed, format!("HTTP {}", fetched.status)),
        };
        write
            .pages
            .push(verdict(target, status, reason, FileChange::Remove));
        return Ok(None);
    }
    if !(200..300).contains(&fetched.status) {
        write.pages.push(failed(format!("HTTP {}", fetched.status)));
        return Ok(None);
    }
    if !fetched.nofollow && target.depth < i64::from(spec.max_depth) {
        write.link_depth = target.depth + 1;
        write.links = fetched
            .links
            .iter()
            .filter_map(|l| page_url(l).ok())
            .filter(|l| Url::parse(l).is_ok_and(|u| spec.refuses(&u).is_none()))
            .collect();
    }
    let unstored = |reason: &str| {
        verdict(
            target,
            PageStatus::Skipped,
            reason.into(),
            FileChange::Remove,
        )
    };
    if fetched.noindex {
        write
            .pages
            .push(unstored("the page asks not to be indexed (robots noindex)"));
        return Ok(None);
    }
    let Some(extension) = extension_for(&fetched.content_type, &fetched.body) else {
        let reason = format!("unsupported content type {}", fetched.content_type);
        write.pages.push(unstored(&reason));
        return Ok(None);
    };
    if fetched.body.trim().is_empty() {
        write.pages.push(unstored("the page is empty"));
        return Ok(None);
    }
    let hash = hex::encode(Sha256::digest(fetched.body.as_bytes()));
    let title = fetched
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(MAX_TITLE).collect::<String>());
    let t = now();
    if had_copy && target.content_hash.as_deref() == Some(hash.as_str()) {
        write.pages.push(PageWrite {
            url: target.url.clone(),
            depth: target.depth,
            status: PageStatus::Unchanged,
            reason: None,
            content_hash: Some(hash),
            title,
            crawled_at: Some(t),
            file: FileChange::Keep,
        });
        return Ok(None);
    }
    let bytes = fetched.body.len() as u64;
    let project = &pass.job.crawl.project_id;
    if pass.deps.limits.limits_storage() {
        let held = pass.deps.store.project_usage(project).await?;
        let adding = Usage {
            bytes,
            files: 1,
            chunks: 0,
        };
        if let Err(e) = pass.deps.limits.check(held, adding) {
            write.pages.push(failed(format!("not stored: {e}")));
            return Ok(None);
        }
    }
    let id = FileId::new();
    let key = file_key(&id);
    if let Err(e) = pass
        .deps
        .blobs
        .put_bytes(&key, fetched.body.into_bytes())
        .await
    {
        return Err(StoreError::internal("storing a crawled page", e));
    }
    let file = FileObject {
        id: id.clone(),
        object: "file".into(),
        bytes: bytes as i64,
        created_at: t,
        expires_at: None,
        filename: filename_for(&target.url, extension),
        purpose: "assistants".into(),
        status: FileStatus::Processed,
        status_details: None,
    };
    let mut attributes = json!({
        "url": target.url,
        "crawled_at": t,
        "depth": target.depth,
    });
    if let Some(title) = &title {
        attributes["title"] = json!(title);
    }
    write.pages.push(PageWrite {
        url: target.url.clone(),
        depth: target.depth,
        status: PageStatus::Stored,
        reason: None,
        content_hash: Some(hash),
        title,
        crawled_at: Some(t),
        file: FileChange::Replace(NewPageFile { file, attributes }),
    });
    Ok(Some(id.to_string()))
}

/// The file extension a page is stored under, which picks how ingestion reads it (HTML by the
/// `documents` parser component, text as it is); `None` for what is not a text page.
fn extension_for(content_type: &str, body: &str) -> Option<&'static str> {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    match essence {
        "text/html" | "application/xhtml+xml" => Some("html"),
        "text/markdown" | "text/x-markdown" => Some("md"),
        "text/plain" => Some("txt"),
        "" if body.trim_start().starts_with('<') => Some("html"),
        "" => Some("txt"),
        _ => None,
    }
}

/// A readable, unique-enough file name for a page: its host and path, e.g.
/// `docs.example.com_guide_setup.html`.
fn filename_for(url: &str, extension: &str) -> String {
    let parsed = Url::parse(url).ok();
    let host = parsed.as_ref().and_then(Url::host_str).unwrap_or("page");
    let path = parsed.as_ref().map(path_and_query).unwrap_or_default();
    let mut name: String = format!("{host}{path}")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    while name.ends_with('_') {
        name.pop();
    }
    let mut name: String = name.chars().take(120).collect();
    if name.is_empty() {
        name.push_str("page");
    }
    let suffix = format!(".{extension}");
    if !name.ends_with(&suffix) {
        name.push_str(&suffix);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_stored_under_readable_names() {
        assert_eq!(
            filename_for("https://docs.example.com/guide/setup.html", "html"),
            "docs.example.com_guide_setup.html"
        );
        assert_eq!(
            filename_for("https://docs.example.com/", "html"),
            "docs.example.com.html"
        );
        assert_eq!(
            filename_for("http://127.0.0.1:8080/a?b=1", "txt"),
            "127.0.0.1_a_b_1.txt"
        );
    }

    #[test]
    fn content_types_choose_how_a_page_is_read() {
        assert_eq!(extension_for("text/html; charset=utf-8", ""), Some("html"));
        assert_eq!(extension_for("TEXT/PLAIN", "x"), Some("txt"));
        assert_eq!(extension_for("", "<!doctype html>"), Some("html"));
        assert_eq!(extension_for("application/pdf", "%PDF"), None);
        assert_eq!(extension_for("image/png", ""), None);
    }

    #[test]
    fn a_sites_crawl_delay_only_lengthens_ours() {
        let settings = CrawlSettings {
            delay_ms: 1000,
            ..CrawlSettings::default()
        };
        let slow = Robots::parse("User-agent: *\nCrawl-delay: 5\n", robots::AGENT);
        let fast = Robots::parse("User-agent: *\nCrawl-delay: 0.1\n", robots::AGENT);
        let huge = Robots::parse("User-agent: *\nCrawl-delay: 100000\n", robots::AGENT);
        assert_eq!(delay_for(&settings, &slow), Duration::from_secs(5));
        assert_eq!(delay_for(&settings, &fast), Duration::from_secs(1));
        assert_eq!(delay_for(&settings, &huge), super::super::gate::MAX_DELAY);
    }
}
