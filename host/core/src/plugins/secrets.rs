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
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub header: HeaderName,
    /// The header value (the manifest's prefix and the granted value).
    pub value: HeaderValue,
    /// The granted value alone: what is scrubbed from responses.
    pub raw: Vec<u8>,
    /// Host patterns (as in grants) the secret may be sent to.
    pub hosts: Vec<String>,
}

/// Values shorter than this are sent but not masked in responses: masking every occurrence
/// of a short, non-secret value (`X-Tenant: 42`) would corrupt the answers.
const MIN_MASKED: usize = 8;

/// Headers a caller gives for one call (an MCP server's `headers`): like a grant's secrets,
/// sent only to `host:port` (never to the guest) and masked in every response.
#[derive(Debug, Clone, Default)]
pub struct CallHeaders {
    pub host: String,
    pub port: u16,
    pub headers: Vec<(String, String)>,
}

impl CallHeaders {
    /// The headers as secrets; a name or value HTTP cannot carry is skipped (the API refuses
    /// them before a call is made).
    pub(crate) fn secrets(&self) -> Vec<Secret> {
        let hosts = vec![format!("{}:{}", self.host.to_ascii_lowercase(), self.port)];
        self.headers
            .iter()
            .filter_map(|(name, value)| {
                let header = HeaderName::from_bytes(name.as_bytes()).ok()?;
                let value = HeaderValue::from_str(value).ok()?;
                let raw = if value.len() >= MIN_MASKED {
                    value.as_bytes().to_vec()
                } else {
                    Vec::new()
                };
                Some(Secret {
                    header,
                    value,
                    raw,
                    hosts: hosts.clone(),
                })
            })
            .collect()
    }
}

/// Whether `host:port` matches one of `patterns` (`host`, `*.domain`, either with `:port`; a
/// pattern without a port means the standard web ports 443 and 80).
pub(crate) fn host_matches(patterns: &[String], host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|pattern| {
        let (name, want_port) = match pattern.rsplit_once(':') {
            Some((n, p)) if p.parse::<u16>().is_ok() && !n.contains(':') => {
                (n, p.parse::<u16>().ok())
            }
            _ => (pattern.as_str(), None),
        };
        let name_ok = match name.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == name,
        };
        name_ok && want_port.map_or(port == 443 || port == 80, |p| p == port)
    })
}

/// Every occurrence of any secret in `bytes` masked (same length).
fn scrub(bytes: &[u8], secrets: &[Vec<u8>]) -> Vec<u8> {
    scrub_from(bytes, secrets, 0).0
}

/// `raw` with every occurrence of any secret masked, and its first `masked` bytes too (the end
/// of an occurrence that began before it); also where masking ends. Occurrences are found in
/// the raw bytes, so overlapping ones (`abcab` twice in `abcabcab`) are all masked.
fn scrub_from(raw: &[u8], secrets: &[Vec<u8>], masked: usize) -> (Vec<u8>, usize) {
    let mut out = raw.to_vec();
    let first = masked.min(out.len());
    out[..first].fill(MASK);
    let mut end = masked;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        for i in 0..raw.len().saturating_sub(secret.len() - 1) {
            if raw[i..].starts_with(secret) {
                out[i..i + secret.len()].fill(MASK);
                end = end.max(i + secret.len());
            }
        }
    }
    (out, end)
}

/// Response headers with every secret's value scrubbed.
pub(crate) fn scrub_headers(headers: &mut http::HeaderMap, secrets: &[Vec<u8>]) {
    if secrets.is_empty() {
        return;
    }
    for value in headers.values_mut() {
        let clean = scrub(value.as_bytes(), secrets);
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
    secrets: Vec<Vec<u8>>,
    /// Raw bytes not yet sent.
    carry: BytesMut,
    /// How many leading bytes of `carry` end an occurrence that began before them.
    masked: usize,
    /// A non-data frame (trailers) read while `carry` still had to go out first.
    held: Option<Frame<Bytes>>,
    done: bool,
}

impl<B> Scrubbed<B> {
    pub fn new(inner: B, secrets: Vec<Vec<u8>>) -> Self {
        Scrubbed {
            inner,
            secrets,
            carry: BytesMut::new(),
            masked: 0,
            held: None,
            done: false,
        }
    }

    /// What is left of `carry`, scrubbed, once no more bytes will follow it.
    fn flush(&mut self) -> Bytes {
        let (clean, _) = scrub_from(&self.carry, &self.secrets, self.masked);
        self.carry.clear();
        self.masked = 0;
        Bytes::from(clean)
    }

    fn keep(&self) -> usize {
        self.secrets
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .saturating_sub(1)
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
        if self.secrets.is_empty() {
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
                        let (clean, masked_to) =
                            scrub_from(&self.carry, &self.secrets, self.masked);
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
                            scrub_headers(map, &self.secrets);
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
        if self.secrets.is_empty() {
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
        let s = vec![b"sk-123".to_vec()];
        assert_eq!(scrub(b"a sk-123 b sk-123", &s), b"a ****** b ******");
        assert_eq!(scrub(b"nothing", &s), b"nothing");
        let mut h = http::HeaderMap::new();
        h.insert("x-echo", HeaderValue::from_static("Bearer sk-123"));
        scrub_headers(&mut h, &s);
        assert_eq!(h["x-echo"], "Bearer ******");
        // A secret inside another: the outer one is masked whole.
        let nested = vec![b"34".to_vec(), b"12345".to_vec()];
        assert_eq!(scrub(b"x12345y", &nested), b"x*****y");
        // Overlapping occurrences leave no fragment of either readable.
        assert_eq!(scrub(b"abcabcab!", &[b"abcab".to_vec()]), b"********!");
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
            vec![b"sk-123".to_vec()],
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
        let body = Scrubbed::new(StreamBody::new(stream), vec![b"sk-123".to_vec()]);
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"echo: ****** and ******!");
        // Overlapping occurrences split across chunks: the second starts inside the first.
        let chunks = ["xxabca", "bcab", "yy"];
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
        );
        let body = Scrubbed::new(StreamBody::new(stream), vec![b"abcab".to_vec()]);
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"xx********yy");
    }
}
