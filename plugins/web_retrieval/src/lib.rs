//! The `web_retrieval` tool: `web_fetch(url)` reads a page, `web_search(query)` asks a
//! SearXNG-compatible JSON endpoint (when the operator configured `search_url`). Every request
//! goes through the host's outgoing-HTTP policy (`webkit`): only granted hosts, checked after
//! DNS, private ranges refused unless granted; redirects, up to three, are each a new request
//! the host checks again.
//!
//! Pages are turned into readable text inside the sandbox (`html`), cut into passages, and
//! labelled `【{sequence}:{n}†{title}】` with their URL; each label is also returned as a `url`
//! annotation, which the host keeps so labels the model writes become `url_citation`s.

use textkit::html;

use assistants_plugin::tool::{
    config, CallContext, Passages, Tool, ToolError, ToolOutput, ToolSpec,
};
use serde_json::Value;

/// Passages of one page given to the model, and their size.
const MAX_PASSAGES: usize = 6;
const PASSAGE_CHARS: usize = 900;
const MAX_REDIRECTS: usize = 3;

struct WebRetrieval;

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Page {
    url: String,
    content_type: String,
    body: String,
}

/// GETs `url`, following redirects (every hop checked by the host); an answer other than 2xx
/// is an error for the model.
fn fetch(url: &str) -> Result<Page, ToolError> {
    assistants_plugin::log::debug(&format!("GET {url}"));
    let got = webkit::get(
        url,
        "text/html,application/json,text/plain;q=0.9,*/*;q=0.5",
        "assistants-web-retrieval/0.1",
        MAX_REDIRECTS,
    )
    .map_err(|e| match e {
        webkit::FetchError::InvalidUrl(m) => ToolError::InvalidArguments(m),
        other => ToolError::Failed(other.to_string()),
    })?;
    if !(200..300).contains(&got.status) {
        return Err(ToolError::Failed(format!(
            "{} answered HTTP {}",
            got.url, got.status
        )));
    }
    Ok(Page {
        url: got.url,
        content_type: got.content_type,
        body: got.body,
    })
}

/// Text cut into passages of about `PASSAGE_CHARS` characters at paragraph breaks.
fn passages(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if !current.is_empty() && current.chars().count() + para.chars().count() > PASSAGE_CHARS {
            out.push(std::mem::take(&mut current));
            if out.len() == MAX_PASSAGES {
                return out;
            }
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        let room = PASSAGE_CHARS
            .saturating_sub(current.chars().count())
            .max(200);
        current.extend(para.chars().take(room));
    }
    if !current.is_empty() && out.len() < MAX_PASSAGES {
        out.push(current);
    }
    out
}

fn web_fetch(ctx: &CallContext, args: &Value) -> Result<ToolOutput, ToolError> {
    let url = args
        .get("url")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ToolError::InvalidArguments("'url' must be a non-empty string".into()))?;
    let page = fetch(url)?;
    let (title, text) =
        if page.content_type.contains("html") || page.body.trim_start().starts_with('<') {
            html::readable(&page.body)
        } else {
            (String::new(), page.body.clone())
        };
    let mut out = Passages::new(&ctx.options());
    for p in passages(&text) {
        out.url(&title, &page.url, &p);
    }
    if out.is_empty() {
        return Ok(format!("{} has no readable text.", page.url).into());
    }
    Ok(out.finish())
}

fn web_search(ctx: &CallContext, args: &Value) -> Result<ToolOutput, ToolError> {
    let query = args
        .get("query")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ToolError::InvalidArguments("'query' must be a non-empty string".into()))?;
    let base = config("search_url").ok_or_else(|| {
        ToolError::Failed("web search is not configured on this server; use web_fetch".into())
    })?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let page = fetch(&format!("{base}{sep}q={}&format=json", encode(query)))?;
    let v: Value = serde_json::from_str(&page.body)
        .map_err(|e| ToolError::Failed(format!("the search backend sent invalid JSON: {e}")))?;
    let mut out = Passages::new(&ctx.options());
    for r in v
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MAX_PASSAGES)
    {
        let (Some(url), title) = (
            r.get("url").and_then(Value::as_str),
            r.get("title").and_then(Value::as_str).unwrap_or(""),
        ) else {
            continue;
        };
        let snippet = r.get("content").and_then(Value::as_str).unwrap_or("");
        out.url(title, url, snippet);
    }
    if out.is_empty() {
        return Ok(format!("No results for '{query}'.").into());
    }
    Ok(out.finish())
}

impl Tool for WebRetrieval {
    fn describe() -> Vec<ToolSpec> {
        let mut tools = vec![ToolSpec {
            name: "web_fetch".into(),
            description: "Fetch a web page by URL and read its text. Passages start with a label \
                          like 【0:1†Page title】; cite a passage you use by writing its label \
                          exactly, right after the sentence it supports."
                .into(),
            parameters_json: r#"{"type":"object","properties":{"url":{"type":"string","description":"An http or https URL."}},"required":["url"],"additionalProperties":false}"#.into(),
            strict: true,
        }];
        if config("search_url").is_some() {
            tools.push(ToolSpec {
                name: "web_search".into(),
                description: "Search the web. Results start with a label like 【0:1†Page title】 \
                              and their URL; fetch a result with web_fetch to read it, and cite \
                              by writing its label exactly."
                    .into(),
                parameters_json: r#"{"type":"object","properties":{"query":{"type":"string"}},"required":["query"],"additionalProperties":false}"#.into(),
                strict: true,
            });
        }
        tools
    }

    fn invoke(ctx: CallContext, name: String, args: String) -> Result<ToolOutput, ToolError> {
        let args: Value = serde_json::from_str(&args)
            .map_err(|e| ToolError::InvalidArguments(format!("arguments are not JSON: {e}")))?;
        match name.as_str() {
            "web_fetch" => web_fetch(&ctx, &args),
            "web_search" => web_search(&ctx, &args),
            other => Err(ToolError::UnknownTool(other.into())),
        }
    }
}

assistants_plugin::export_tool!(WebRetrieval);
