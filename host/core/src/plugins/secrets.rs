//! Operator secrets on a plugin's outgoing HTTP: injected as a header only on requests to the
//! hosts the secret is bound to (over https, or plain http to an address that is private by
//! grant), and masked in every response (headers, body, trailers) before the guest reads it,
//! so a host that echoes request headers cannot hand the secret to the plugin. Requests that
//! carry a secret ask for an uncompressed response, and a compressed one is refused: the
//! guest could otherwise decompress an echo the scrubber never saw.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use http_body::{Body, Frame};

/// What each byte of a secret's value becomes in a response. The mask keeps the length, so a
/// `Content-Length` the guest trusts stays true.
const MASK: u8 = b'*';

/// One secret a plugin's requests may carry.
#[derive(Clone)]
pub(crate) struct Secret {
    pub header: HeaderName,
    /// The header value (the manifest's prefix and the granted value).
    pub value: HeaderValue,
    /// What is scrubbed from responses: the granted value, or the credential parts of a
    /// caller's header ([`CallHeaders`]).
    pub masked: Vec<Vec<u8>>,
    /// Where the secret may be sent.
    pub hosts: SecretHosts,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("header", &self.header)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// The hosts a secret is sent to.
#[derive(Debug, Clone)]
pub(crate) enum SecretHosts {
    /// Host patterns, as in grants.
    Patterns(Vec<String>),
    /// Exactly this host and port (a caller's headers go to the server it named, only).
    Exact { host: String, port: u16 },
}

impl SecretHosts {
    pub fn matches(&self, host: &str, port: u16) -> bool {
        match self {
            SecretHosts::Patterns(patterns) => host_matches(patterns, host, port),
            SecretHosts::Exact { host: h, port: p } => {
                *p == port && normal_host(h) == normal_host(host)
            }
        }
    }
}

/// A host name as compared: lower case, without a trailing dot or IPv6 brackets.
fn normal_host(host: &str) -> String {
    let host = host.trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// Shortest credential masked in responses; shorter ones are sent but cannot be told from
/// ordinary text (masking every `abc` an answer contains would corrupt it).
pub(crate) const MIN_MASKED: usize = 4;

/// Most bytes of headers one call may carry, names and values together.
pub const MAX_CALL_HEADER_BYTES: usize = 8 * 1024;

/// Headers a caller gives for one call (an MCP server's `headers`): sent only to exactly
/// `host:port` (never to the guest); their credentials are masked in every response.
#[derive(Clone, Default)]
pub struct CallHeaders {
    pub host: String,
    pub port: u16,
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for CallHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("CallHeaders")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("headers", &names)
            .finish()
    }
}

impl CallHeaders {
    /// The headers as secrets; a name or value HTTP cannot carry is skipped (the API refuses
    /// them before a call is made).
    pub(crate) fn secrets(&self) -> Vec<Secret> {
        self.headers
            .iter()
            .filter_map(|(name, value)| {
                let header = HeaderName::from_bytes(name.as_bytes()).ok()?;
                let mut sent = HeaderValue::from_str(value).ok()?;
                sent.set_sensitive(true);
                Some(Secret {
                    header,
                    value: sent,
                    masked: credentials(name, value),
                    hosts: SecretHosts::Exact {
                        host: self.host.clone(),
                        port: self.port,
                    },
                })
            })
            .collect()
    }
}

/// What of a caller's header is a credential, to be masked in answers: for a header whose
/// name says it carries one (`Authorization`, `X-Api-Key`, `Cookie`, …), its value and, after
/// an auth scheme (`Bearer <token>`), the token alone, which servers echo too; for any other
/// header, a value that looks like an opaque token (16 bytes or more, no spaces or slashes).
/// Other values are not masked: masking them (`application/json`, `42`) would corrupt answers.
pub fn credentials(name: &str, value: &str) -> Vec<Vec<u8>> {
    const MARKS: [&str; 12] = [
        "auth",
        "key",
        "token",
        "secret",
        "pass",
        "cookie",
        "session",
        "signature",
        "credential",
        "jwt",
        "pat",
        "bearer",
    ];
    const OPAQUE: usize = 16;
    let name = name.to_ascii_lowercase();
    if !MARKS.iter().any(|m| name.contains(m)) {
        let opaque = value.len() >= OPAQUE && !value.contains([' ', '/']);
        return if opaque {
            vec![value.as_bytes().to_vec()]
        } else {
            Vec::new()
        };
    }
    let mut out = vec![value.trim()];
    if let Some((scheme, token)) = value.trim().split_once(' ') {
        if scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            out.push(token.trim());
        }
    }
    out.into_iter()
        .filter(|v| v.len() >= MIN_MASKED)
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

/// Whether `host:port` matches one of `patterns` (`host`, `*.domain`, either with `:port`; an
/// IPv6 address bare or as `[addr]` / `[addr]:port`; a pattern without a port means the
/// standard web ports 443 and 80). `host` comes unbracketed.
pub(crate) fn host_matches(patterns: &[String], host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|pattern| {
        let (name, want_port) = match pattern.strip_prefix('[').and_then(|p| p.split_once(']')) {
            Some((addr, "")) => (addr, None),
            Some((addr, rest)) => match rest.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(p)) => (addr, Some(p)),
                // `[addr]junk`: no pattern, matches nothing.
                _ => return false,
            },
            None => match pattern.rsplit_once(':') {
                Some((n, p)) if p.parse::<u16>().is_ok() && !n.contains(':') => {
                    (n, p.parse::<u16>().ok())
                }
                _ => (pattern.as_str(), None),
            },
        };
        let name_ok = match name.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == name,
        };
        name_ok && want_port.map_or(port == 443 || port == 80, |p| p == port)
    })
}

/// The byte strings masked in a response, searched for all at once (Aho-Corasick), so the
/// cost is linear in the answer whatever the number and length of the secrets.
#[derive(Clone)]
pub(crate) struct Masks {
    finder: Finder,
    longest: usize,
}

#[derive(Clone)]
enum Finder {
    None,
    Some(aho_corasick::AhoCorasick),
    /// The automaton could not be built: everything is masked (closed, not open).
    All,
}

impl Masks {
    pub fn new<'a>(strings: impl IntoIterator<Item = &'a [u8]>) -> Masks {
        let all: Vec<&[u8]> = strings.into_iter().filter(|m| !m.is_empty()).collect();
        let finder = if all.is_empty() {
            Finder::None
        } else {
            match aho_corasick::AhoCorasick::new(&all) {
                Ok(f) => Finder::Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "secrets cannot be searched for; answers are masked whole");
                    Finder::All
                }
            }
        };
        Masks {
            longest: all.iter().map(|m| m.len()).max().unwrap_or(0),
            finder,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self.finder, Finder::None)
    }

    /// Those of `secrets`.
    pub fn of(secrets: &[Secret]) -> Masks {
        Masks::new(
            secrets
                .iter()
                .flat_map(|s| s.masked.iter().map(Vec::as_slice)),
        )
    }

    /// Every occurrence of any secret in `bytes` masked (same length).
    fn scrub(&self, bytes: &[u8]) -> Vec<u8> {
        self.scrub_from(bytes, 0).0
    }

    /// `raw` with every occurrence of any secret masked, and its first `masked` bytes too
    /// (the end of an occurrence that began before it); also where masking ends. Overlapping
    /// occurrences (`abcab` twice in `abcabcab`) are all masked.
    fn scrub_from(&self, raw: &[u8], masked: usize) -> (Vec<u8>, usize) {
        let mut out = raw.to_vec();
        let first = masked.min(out.len());
        out[..first].fill(MASK);
        let mut end = masked;
        match &self.finder {
            Finder::None => {}
            Finder::Some(finder) => {
                for m in finder.find_overlapping_iter(raw) {
                    out[m.start()..m.end()].fill(MASK);
                    end = end.max(m.end());
                }
            }
            Finder::All => {
                out.fill(MASK);
                end = end.max(out.len());
            }
        }
        (out, end)
    }
}

/// Response headers with every secret's value scrubbed.
pub(crate) fn scrub_headers(headers: &mut http::HeaderMap, masks: &Masks) {
    if masks.is_empty() {
        return;
    }
    for value in headers.values_mut() {
        let clean = masks.scrub(value.as_bytes());
        if clean != value.as_bytes() {
            *value = HeaderValue::from_bytes(&clean).unwrap_or(HeaderValue::from_static("***"));
        }
    }
}

/// A response body with every secret's value scrubbed, also where one spans two chunks: the
/// last `longest - 1` raw bytes of each chunk wait for the next, with how many of them belong
/// to an occurrence already masked.
pub(crate) struct Scrubbed<B> {
    inner: B,
    masks: Masks,
    /// Raw bytes not yet sent.
    carry: BytesMut,
    /// How many leading bytes of `carry` end an occurrence that began before them.
    masked: usize,
    /// A non-data frame (trailers) read while `carry` still had to go out first.
    held: Option<Frame<Bytes>>,
    done: bool,
}

impl<B> Scrubbed<B> {
    pub fn new(inner: B, masks: Masks) -> Self {
        Scrubbed {
            inner,
            masks,
            carry: BytesMut::new(),
            masked: 0,
            held: None,
            done: false,
        }
    }

    /// What is left of `carry`, scrubbed, once no more bytes will follow it.
    fn flush(&mut self) -> Bytes {
        let (clean, _) = self.masks.scrub_from(&self.carry, self.masked);
        self.carry.clear();
        self.masked = 0;
        Bytes::from(clean)
    }

    fn keep(&self) -> usize {
        self.masks.longest.saturating_sub(1)
    }
}

impl<B> Body for Scrubbed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.held.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if self.masks.is_empty() {
            return Pin::new(&mut self.inner).poll_frame(cx);
        }
        loop {
            if self.done {
                let rest = self.flush();
                return Poll::Ready((!rest.is_empty()).then(|| Ok(Frame::data(rest))));
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        self.carry.extend_from_slice(&data);
                        let (clean, masked_to) = self.masks.scrub_from(&self.carry, self.masked);
                        let ready = clean.len().saturating_sub(self.keep());
                        let _ = self.carry.split_to(ready);
                        self.masked = masked_to.saturating_sub(ready);
                        if ready > 0 {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(
                                clean[..ready].to_vec(),
                            )))));
                        }
                    }
                    Err(mut trailers) => {
                        // Trailers are headers too: a host could echo the secret there.
                        if let Some(map) = trailers.trailers_mut() {
                            scrub_headers(map, &self.masks);
                        }
                        let rest = self.flush();
                        if rest.is_empty() {
                            return Poll::Ready(Some(Ok(trailers)));
                        }
                        self.held = Some(trailers);
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => self.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.masks.is_empty() {
            return self.held.is_none() && self.inner.is_end_stream();
        }
        self.done && self.carry.is_empty() && self.held.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[test]
    fn secrets_are_scrubbed_wherever_they_appear() {
        let s = Masks::new([b"sk-123".as_slice()]);
        assert_eq!(s.scrub(b"a sk-123 b sk-123"), b"a ****** b ******");
        assert_eq!(s.scrub(b"nothing"), b"nothing");
        let mut h = http::HeaderMap::new();
        h.insert("x-echo", HeaderValue::from_static("Bearer sk-123"));
        scrub_headers(&mut h, &s);
        assert_eq!(h["x-echo"], "Bearer ******");
        // A secret inside another: the outer one is masked whole.
        let nested = Masks::new([b"34".as_slice(), b"12345"]);
        assert_eq!(nested.scrub(b"x12345y"), b"x*****y");
        // Overlapping occurrences leave no fragment of either readable.
        let overlapping = Masks::new([b"abcab".as_slice()]);
        assert_eq!(overlapping.scrub(b"abcabcab!"), b"********!");
    }

    #[test]
    fn a_callers_credentials_are_masked_with_and_without_their_scheme() {
        let masked = |n: &str, v: &str| -> Vec<String> {
            credentials(n, v)
                .into_iter()
                .map(|m| String::from_utf8(m).unwrap())
                .collect()
        };
        assert_eq!(
            masked("Authorization", "Bearer sk-abc"),
            ["Bearer sk-abc", "sk-abc"]
        );
        assert_eq!(masked("X-Api-Key", "k3y!"), ["k3y!"]);
        assert_eq!(masked("Cookie", "sid=0123456789"), ["sid=0123456789"]);
        // Too short to tell from text, and headers that carry no credential.
        assert!(masked("X-Api-Key", "abc").is_empty());
        assert!(masked("Accept", "text/event-stream").is_empty());
        assert!(masked("X-Tenant", "acme corp").is_empty());
        // Under any name, a value that looks like an opaque token.
        assert_eq!(
            masked("X-Org", "0123456789abcdef0123"),
            ["0123456789abcdef0123"]
        );
    }

    #[test]
    fn a_callers_headers_go_to_exactly_its_host_and_port() {
        let exact = SecretHosts::Exact {
            host: "MCP.example.com".into(),
            port: 8443,
        };
        assert!(exact.matches("mcp.example.com.", 8443));
        assert!(!exact.matches("mcp.example.com", 443));
        assert!(!exact.matches("evil.mcp.example.com", 8443));
        let v6 = SecretHosts::Exact {
            host: "[::1]".into(),
            port: 8080,
        };
        assert!(v6.matches("::1", 8080));
        assert!(v6.matches("[::1]", 8080));
    }

    #[test]
    fn scrubbing_is_linear_in_the_answer() {
        // Many long secrets against an answer of near-misses: one pass, not one per secret.
        let secrets: Vec<Vec<u8>> = (0..32u8)
            .map(|i| {
                let mut v = vec![b'a'; 8 * 1024];
                v.push(i);
                v
            })
            .collect();
        let masks = Masks::new(secrets.iter().map(Vec::as_slice));
        let answer = vec![b'a'; 4 * 1024 * 1024];
        assert_eq!(masks.scrub(&answer), answer);
    }

    #[tokio::test]
    async fn trailers_are_scrubbed_too() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-echo", HeaderValue::from_static("sk-123"));
        let frames = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from("body sk-1"))),
            Ok(Frame::trailers(trailers)),
        ];
        let mut body = Scrubbed::new(
            StreamBody::new(futures::stream::iter(frames)),
            Masks::new([b"sk-123".as_slice()]),
        );
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            if let Some(t) = frame.trailers_ref() {
                seen.push(t["x-echo"].to_str().unwrap().to_string());
            }
        }
        assert_eq!(seen, ["******"]);
    }

    #[tokio::test]
    async fn a_secret_split_across_chunks_is_scrubbed() {
        let chunks = ["echo: s", "k-", "123 and sk-1", "23", "!"];
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
        );
        let body = Scrubbed::new(StreamBody::new(stream), Masks::new([b"sk-123".as_slice()]));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"echo: ****** and ******!");
        // Overlapping occurrences split across chunks: the second starts inside the first.
        let chunks = ["xxabca", "bcab", "yy"];
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
        );
        let body = Scrubbed::new(StreamBody::new(stream), Masks::new([b"abcab".as_slice()]));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"xx********yy");
    }
}
