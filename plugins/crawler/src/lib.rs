//! The `crawler` component: `fetch_page(url)` GETs a page for a vector-store crawl through the
//! host's outgoing HTTP (only granted hosts, checked after DNS; redirects followed, each hop
//! checked again) and answers JSON the host's crawl reads: where the redirects led, the status
//! (any: a 404 tells the crawl the page is gone), the content type, the body, and for HTML its
//! links resolved to absolute http(s) URLs without fragments, with the page's robots meta
//! directives; a body longer than 640 KiB comes back cut (`truncated`). The host decides what
//! to follow (depth, domains, patterns, robots.txt, which it fetches through this same call).

use assistants_plugin::tool::{args, CallContext, Tool, ToolError, ToolOutput, ToolSpec};
use serde::Deserialize;
use serde_json::json;

/// Redirects followed per page.
const MAX_REDIRECTS: usize = 5;
/// Links reported per page.
const MAX_LINKS: usize = 2000;
/// Most bytes of a page's body returned (the answer, JSON with its links, stays within the
/// manifest's `max_result_kib`); a longer body is cut at a character boundary and marked.
const MAX_BODY: usize = 640 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    url: String,
}

struct Crawler;

fn is_html(content_type: &str, body: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.contains("html") || (ct.is_empty() && body.trim_start().starts_with('<'))
}

fn fetch_page(url: &str) -> Result<ToolOutput, ToolError> {
    let got = webkit::get(
        url,
        "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
        "assistants-crawler/0.1",
        MAX_REDIRECTS,
    )
    .map_err(|e| match e {
        webkit::FetchError::InvalidUrl(m) => ToolError::InvalidArguments(m),
        other => ToolError::Failed(other.to_string()),
    })?;
    let mut answer = json!({
        "url": got.url,
        "redirects": got.redirects,
        "status": got.status,
        "content_type": got.content_type,
    });
    if is_html(&got.content_type, &got.body) {
        let found = textkit::html::links(&got.body);
        let (title, _) = textkit::html::readable(&got.body);
        let base = found
            .base
            .as_deref()
            .map(|b| webkit::resolve(&got.url, b))
            .unwrap_or_else(|| got.url.clone());
        let mut links: Vec<String> = Vec::new();
        for href in &found.hrefs {
            let lower = href.to_ascii_lowercase();
            // Other schemes (mailto:, javascript:, data:) are not pages.
            if lower.contains(':')
                && !lower.starts_with("http://")
                && !lower.starts_with("https://")
            {
                continue;
            }
            let link = webkit::resolve(&base, href);
            if !links.contains(&link) {
                links.push(link);
            }
            if links.len() == MAX_LINKS {
                break;
            }
        }
        answer["title"] = json!(title);
        answer["links"] = json!(links);
        answer["noindex"] = json!(found.noindex);
        answer["nofollow"] = json!(found.nofollow);
    }
    let mut body = got.body;
    if body.len() > MAX_BODY {
        let mut cut = MAX_BODY;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        answer["truncated"] = json!(true);
    }
    answer["body"] = json!(body);
    Ok(answer.to_string().into())
}

impl Tool for Crawler {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec::new(
            "fetch_page",
            "Fetch one page for a crawl: its final URL, status, content type, body and links.",
            json!({"type": "object",
                   "properties": {"url": {"type": "string", "description": "An http or https URL."}},
                   "required": ["url"], "additionalProperties": false}),
        )
        .strict()]
    }

    fn invoke(_ctx: CallContext, name: String, raw: String) -> Result<ToolOutput, ToolError> {
        match name.as_str() {
            "fetch_page" => fetch_page(args::<FetchArgs>(&raw)?.url.trim()),
            other => Err(ToolError::UnknownTool(other.into())),
        }
    }
}

assistants_plugin::export_tool!(Crawler);
