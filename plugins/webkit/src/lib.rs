//! Web pages fetched from inside the sandbox, for the components that read the web
//! (`web_retrieval`, `crawler`). Every request goes through the host's outgoing-HTTP policy:
//! only granted hosts, checked after DNS, private ranges refused unless granted. Redirects are
//! followed here, each one a new request the host checks again, so a redirect into a private
//! range or to an ungranted host is refused like any other request.

/// A response header's value as text, if it has one that is.
pub fn header(headers: &wstd::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A fetched URL: where the redirects led, the answer's status, type and body.
#[derive(Debug)]
pub struct Fetched {
    /// The URL that answered (after redirects).
    pub url: String,
    /// The URLs redirected from, in order.
    pub redirects: Vec<String>,
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// Not an http(s) URL, or not a valid one.
    InvalidUrl(String),
    /// The host's network policy refused it: an ungranted host or a private address.
    Refused(String),
    /// Too many redirects.
    Redirects(String),
    /// The connection or the body failed.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::InvalidUrl(m)
            | FetchError::Refused(m)
            | FetchError::Redirects(m)
            | FetchError::Failed(m) => f.write_str(m),
        }
    }
}

fn is_http(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// GETs `url`, following up to `max_redirects` redirects; any status is an answer (the caller
/// decides what a 404 means).
pub fn get(
    url: &str,
    accept: &str,
    user_agent: &str,
    max_redirects: usize,
) -> Result<Fetched, FetchError> {
    let mut url = url.to_string();
    let mut redirects = Vec::new();
    loop {
        if !is_http(&url) {
            return Err(FetchError::InvalidUrl(format!(
                "only http and https URLs can be fetched, not '{url}'"
            )));
        }
        let target = url.clone();
        let (status, location, content_type, body) = wstd::runtime::block_on(async move {
            let request = wstd::http::Request::get(target.as_str())
                .header("accept", accept)
                .header("user-agent", user_agent)
                .body(wstd::http::Body::empty())
                .map_err(|e| {
                    FetchError::InvalidUrl(format!("'{target}' is not a valid URL: {e}"))
                })?;
            let mut response = wstd::http::Client::new().send(request).await.map_err(|e| {
                let why = format!("{e:?}");
                if why.contains("HttpRequestDenied") {
                    FetchError::Refused(format!(
                        "{target} was refused by the server's network policy (not an allowed destination)"
                    ))
                } else {
                    FetchError::Failed(format!("fetching {target} failed: {why}"))
                }
            })?;
            let location = header(response.headers(), "location");
            let content_type = header(response.headers(), "content-type").unwrap_or_default();
            let status = response.status().as_u16();
            let bytes = response
                .body_mut()
                .contents()
                .await
                .map_err(|e| FetchError::Failed(format!("reading {target} failed: {e:?}")))?;
            let body = String::from_utf8_lossy(bytes).into_owned();
            Ok::<_, FetchError>((status, location, content_type, body))
        })?;
        match (status, location) {
            (301 | 302 | 303 | 307 | 308, Some(loc)) => {
                if redirects.len() == max_redirects {
                    return Err(FetchError::Redirects(format!(
                        "{url}: more than {max_redirects} redirects"
                    )));
                }
                let next = resolve(&url, &loc);
                redirects.push(std::mem::replace(&mut url, next));
            }
            _ => {
                return Ok(Fetched {
                    url,
                    redirects,
                    status,
                    content_type,
                    body,
                })
            }
        }
    }
}

/// `location` resolved against `base` (absolute, scheme-relative, absolute-path, query-only
/// or relative; `.` and `..` segments of the result removed), without its fragment.
pub fn resolve(base: &str, location: &str) -> String {
    let location = location.trim();
    let location = location.split('#').next().unwrap_or("");
    if is_http(location) {
        return normalize(location);
    }
    let base = base.split('#').next().unwrap_or(base);
    if location.is_empty() {
        return base.to_string();
    }
    if location.starts_with('?') {
        let path = base.split('?').next().unwrap_or(base);
        return format!("{path}{location}");
    }
    let base = base.split('?').next().unwrap_or(base);
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    if let Some(rest) = location.strip_prefix("//") {
        return normalize(&format!("{}{rest}", &base[..scheme_end]));
    }
    if location.starts_with('/') {
        return normalize(&format!("{}{location}", &base[..authority_end]));
    }
    let dir_end = base
        .rfind('/')
        .filter(|&i| i >= authority_end)
        .unwrap_or(authority_end);
    normalize(&format!("{}/{location}", &base[..dir_end]))
}

/// `url` with `.` and `..` path segments removed (never above the root).
fn normalize(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let (before_query, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let Some(path_start) = before_query[scheme_end..].find('/').map(|i| scheme_end + i) else {
        return url.to_string();
    };
    let mut segments: Vec<&str> = Vec::new();
    let path = &before_query[path_start + 1..];
    let parts: Vec<&str> = path.split('/').collect();
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *seg {
            "." => {
                if last {
                    segments.push("");
                }
            }
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    format!(
        "{}/{}{query}",
        &before_query[..path_start],
        segments.join("/")
    )
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn locations_resolve_against_their_page() {
        let base = "https://docs.example.com/guide/intro.html?x=1#top";
        for (location, expected) in [
            ("https://other.example.com/a", "https://other.example.com/a"),
            ("//cdn.example.com/x", "https://cdn.example.com/x"),
            ("/api/ref", "https://docs.example.com/api/ref"),
            ("setup.html", "https://docs.example.com/guide/setup.html"),
            ("../faq.html#q2", "https://docs.example.com/faq.html"),
            ("./a/./b/../c", "https://docs.example.com/guide/a/c"),
            (
                "?page=2",
                "https://docs.example.com/guide/intro.html?page=2",
            ),
            ("#section", "https://docs.example.com/guide/intro.html?x=1"),
            ("../../../../up", "https://docs.example.com/up"),
        ] {
            assert_eq!(resolve(base, location), expected, "{location}");
        }
        assert_eq!(resolve("https://example.com", "a"), "https://example.com/a");
    }
}
