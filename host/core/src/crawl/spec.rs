//! What a crawl is asked to do, validated once (for the API and the `assistants crawl` command
//! alike) and stored with the crawl: where it starts, how far it goes, which links it follows.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

/// Root URLs one crawl may start from.
pub const MAX_ROOTS: usize = 20;
/// Deepest a crawl may follow links from its roots.
pub const MAX_DEPTH: u32 = 10;
/// Most pages one pass of a crawl may fetch.
pub const MAX_PAGES: u32 = 10_000;
/// Include or exclude patterns per crawl, and the longest one.
pub const MAX_PATTERNS: usize = 50;
const MAX_PATTERN_LEN: usize = 1000;
/// Longest URL a crawl keeps: a page's URL is one of its file's attributes, whose string
/// values are at most 512 characters.
pub const MAX_URL_LEN: usize = 512;
/// Shortest re-crawl interval: a pass over a site every minute at most.
pub const MIN_INTERVAL_SECS: u64 = 60;

/// A crawl request as clients send it (every field but `root_urls` optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlRequest {
    pub root_urls: Option<Vec<String>>,
    pub max_depth: Option<u32>,
    pub max_pages: Option<u32>,
    pub same_domain: Option<bool>,
    pub include_patterns: Option<Vec<String>>,
    pub exclude_patterns: Option<Vec<String>>,
    pub recrawl_interval_seconds: Option<u64>,
    /// Checked by the caller (the API's chunking validation), like a file batch's.
    pub chunking_strategy: Option<Value>,
}

/// A validated crawl: what its passes follow. Stored as JSON with the crawl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrawlSpec {
    /// Absolute http(s) URLs without fragments, normalised.
    pub root_urls: Vec<String>,
    /// Links followed from a root (0: the roots only).
    pub max_depth: u32,
    /// Pages fetched per pass at most.
    pub max_pages: u32,
    /// Follow links to the roots' hosts only.
    pub same_domain: bool,
    /// A followed link must match one of these, when there are any (robots.txt syntax over
    /// the whole URL: a prefix, `*` for any characters, a final `$` for the end).
    pub include_patterns: Vec<String>,
    /// … and none of these.
    pub exclude_patterns: Vec<String>,
    /// Another pass this long after a pass ends, if set.
    pub recrawl_interval_seconds: Option<u64>,
    /// How the pages' text is chunked (a vector-store chunking strategy).
    pub chunking_strategy: Value,
}

/// A refused request: the parameter at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub param: String,
    pub message: String,
}

fn refuse(param: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        param: param.into(),
        message: message.into(),
    }
}

impl CrawlSpec {
    /// The request checked and completed with defaults; `chunking_strategy` is the caller's,
    /// already validated.
    pub fn validate(req: CrawlRequest, chunking_strategy: Value) -> Result<CrawlSpec, SpecError> {
        let roots = req
            .root_urls
            .ok_or_else(|| refuse("root_urls", "Missing required parameter: 'root_urls'."))?;
        if roots.is_empty() || roots.len() > MAX_ROOTS {
            return Err(refuse(
                "root_urls",
                format!("Invalid 'root_urls': expected 1 to {MAX_ROOTS} URLs."),
            ));
        }
        let mut root_urls: Vec<String> = Vec::new();
        for (i, raw) in roots.iter().enumerate() {
            let url = page_url(raw).map_err(|why| {
                refuse(
                    format!("root_urls[{i}]"),
                    format!("Invalid 'root_urls[{i}]': {why}."),
                )
            })?;
            if !root_urls.contains(&url) {
                root_urls.push(url);
            }
        }
        let max_depth = req.max_depth.unwrap_or(2);
        if max_depth > MAX_DEPTH {
            return Err(refuse(
                "max_depth",
                format!("Invalid 'max_depth': expected 0 to {MAX_DEPTH}, got {max_depth}."),
            ));
        }
        let max_pages = req.max_pages.unwrap_or(100);
        if !(1..=MAX_PAGES).contains(&max_pages) {
            return Err(refuse(
                "max_pages",
                format!("Invalid 'max_pages': expected 1 to {MAX_PAGES}, got {max_pages}."),
            ));
        }
        let patterns = |name: &str, list: Option<Vec<String>>| -> Result<Vec<String>, SpecError> {
            let list = list.unwrap_or_default();
            if list.len() > MAX_PATTERNS {
                return Err(refuse(
                    name,
                    format!("Invalid '{name}': at most {MAX_PATTERNS} patterns."),
                ));
            }
            for (i, p) in list.iter().enumerate() {
                if p.trim().is_empty() || p.len() > MAX_PATTERN_LEN {
                    return Err(refuse(
                        format!("{name}[{i}]"),
                        format!(
                            "Invalid '{name}[{i}]': expected 1 to {MAX_PATTERN_LEN} characters."
                        ),
                    ));
                }
            }
            Ok(list.into_iter().map(|p| p.trim().to_string()).collect())
        };
        let include_patterns = patterns("include_patterns", req.include_patterns)?;
        let exclude_patterns = patterns("exclude_patterns", req.exclude_patterns)?;
        if let Some(secs) = req.recrawl_interval_seconds {
            if secs < MIN_INTERVAL_SECS {
                return Err(refuse(
                    "recrawl_interval_seconds",
                    format!(
                        "Invalid 'recrawl_interval_seconds': at least {MIN_INTERVAL_SECS}, got {secs}."
                    ),
                ));
            }
        }
        Ok(CrawlSpec {
            root_urls,
            max_depth,
            max_pages,
            same_domain: req.same_domain.unwrap_or(true),
            include_patterns,
            exclude_patterns,
            recrawl_interval_seconds: req.recrawl_interval_seconds,
            chunking_strategy,
        })
    }

    /// Why a link found at some depth is not followed, if it is not: another site while the
    /// crawl keeps to its roots' hosts, or the patterns' choice.
    pub fn refuses(&self, url: &Url) -> Option<String> {
        if self.same_domain {
            let host = url.host_str().unwrap_or("");
            let ours = self
                .root_urls
                .iter()
                .filter_map(|r| Url::parse(r).ok())
                .any(|r| r.host_str() == Some(host));
            if !ours {
                return Some(format!("{host} is not a host of the crawl's root URLs"));
            }
        }
        let s = url.as_str();
        if !self.include_patterns.is_empty()
            && !self
                .include_patterns
                .iter()
                .any(|p| super::robots::pattern_matches(p, s))
        {
            return Some("matches none of the include patterns".into());
        }
        if let Some(p) = self
            .exclude_patterns
            .iter()
            .find(|p| super::robots::pattern_matches(p, s))
        {
            return Some(format!("matches the exclude pattern {p}"));
        }
        None
    }
}

/// `raw` as a crawl keeps page URLs: absolute http(s), no credentials, no fragment, normalised
/// (lower-case host, default port dropped, dot segments resolved); or why it cannot be one.
pub fn page_url(raw: &str) -> Result<String, String> {
    let mut url = Url::parse(raw.trim()).map_err(|e| format!("not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "expected an http or https URL, got {}:",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with credentials are not crawled".into());
    }
    url.set_fragment(None);
    let s = url.to_string();
    if s.len() > MAX_URL_LEN {
        return Err(format!("longer than {MAX_URL_LEN} characters"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(req: Value) -> Result<CrawlSpec, SpecError> {
        CrawlSpec::validate(
            serde_json::from_value(req).unwrap(),
            json!({"type": "auto"}),
        )
    }

    #[test]
    fn defaults_and_normalised_roots() {
        let s = spec(
            json!({"root_urls": ["HTTPS://Docs.Example.com:443/a/../guide/#top",
                                          "https://docs.example.com/guide/"]}),
        )
        .unwrap();
        assert_eq!(s.root_urls, ["https://docs.example.com/guide/"]);
        assert_eq!((s.max_depth, s.max_pages, s.same_domain), (2, 100, true));
        assert_eq!(s.recrawl_interval_seconds, None);
    }

    #[test]
    fn refusals_name_their_parameter() {
        let param = |req: Value| spec(req).unwrap_err().param;
        assert_eq!(param(json!({})), "root_urls");
        assert_eq!(param(json!({"root_urls": []})), "root_urls");
        assert_eq!(param(json!({"root_urls": ["ftp://x/"]})), "root_urls[0]");
        assert_eq!(
            param(json!({"root_urls": ["https://a/", "https://u:p@b/"]})),
            "root_urls[1]"
        );
        assert_eq!(param(json!({"root_urls": ["/relative"]})), "root_urls[0]");
        assert_eq!(
            param(json!({"root_urls": ["https://a/"], "max_depth": 11})),
            "max_depth"
        );
        assert_eq!(
            param(json!({"root_urls": ["https://a/"], "max_pages": 0})),
            "max_pages"
        );
        assert_eq!(
            param(json!({"root_urls": ["https://a/"], "exclude_patterns": ["ok", " "]})),
            "exclude_patterns[1]"
        );
        assert_eq!(
            param(json!({"root_urls": ["https://a/"], "recrawl_interval_seconds": 5})),
            "recrawl_interval_seconds"
        );
        let long = format!("https://a/{}", "x".repeat(600));
        assert_eq!(param(json!({ "root_urls": [long] })), "root_urls[0]");
    }

    #[test]
    fn links_are_followed_within_the_hosts_and_patterns() {
        let s = spec(json!({"root_urls": ["https://docs.example.com/"],
                            "include_patterns": ["https://docs.example.com/v2/*"],
                            "exclude_patterns": ["*.pdf$", "*/private/"]}))
        .unwrap();
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(s.refuses(&u("https://docs.example.com/v2/guide")), None);
        assert!(s.refuses(&u("https://docs.example.com/v1/guide")).is_some());
        assert!(s.refuses(&u("https://docs.example.com/v2/a.pdf")).is_some());
        assert!(s
            .refuses(&u("https://docs.example.com/v2/private/x"))
            .is_some());
        assert!(s.refuses(&u("https://other.example.com/v2/x")).is_some());
        let anywhere = CrawlSpec {
            same_domain: false,
            include_patterns: vec![],
            ..s
        };
        assert_eq!(anywhere.refuses(&u("https://other.example.com/x")), None);
    }
}
