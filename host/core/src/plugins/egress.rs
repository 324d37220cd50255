//! Outgoing HTTP for plugins (`wasi:http/outgoing-handler`), through the operator's grant only.
//!
//! Every request is checked twice: its host against the granted hosts, then every address the
//! name resolves to against the address policy (private, loopback, link-local, unspecified,
//! multicast and CGNAT ranges are refused unless the grant allows private addresses). The host
//! then connects to the address it checked — it never resolves the name again — so DNS
//! rebinding cannot swap in a private address between check and use. Redirects are not followed
//! by the host: a guest following one makes a new request, checked the same way.
//!
//! Secrets are injected here as request headers, so they never enter guest memory. Response
//! bodies are capped, and a per-plugin semaphore bounds concurrent requests across its calls.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Connecting (DNS, TCP and TLS) must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one plugin may do over HTTP.
#[derive(Debug)]
pub struct HttpPolicy {
    pub plugin: Arc<str>,
    /// `host`, `*.domain` or either with `:port`; lower-case.
    pub hosts: Vec<String>,
    pub allow_private_addresses: bool,
    pub max_response_bytes: u64,
    /// Requests in flight across all of the plugin's calls (the grant's `http_concurrency`);
    /// further requests wait, within their call's time limit.
    pub permits: Arc<Semaphore>,
    /// Headers set on every request (secrets from the grant).
    pub inject: Vec<(HeaderName, HeaderValue)>,
}

impl HttpPolicy {
    /// Secrets travel over https; over plain http only to the private services an operator
    /// explicitly opened (local development), never in clear across a public network.
    fn may_inject_secrets(&self, https: bool) -> bool {
        https || self.allow_private_addresses
    }

    fn host_allowed(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|pattern| {
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
            // A grant without a port means the standard web ports, not every service on the host.
            name_ok && want_port.map_or(port == 443 || port == 80, |p| p == port)
        })
    }
}

/// Addresses a plugin may not reach unless the grant allows private addresses.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
                || o[0] >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            // Forms that carry an IPv4 address another network may translate to: NAT64
            // (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16), Teredo (2001::/32) and the
            // deprecated IPv4-compatible ::a.b.c.d. Refused outright rather than decoded.
            let embeds_v4 = (seg[0] == 0x64 && seg[1] == 0xff9b)
                || seg[0] == 0x2002
                || (seg[0] == 0x2001 && seg[1] == 0)
                || (seg[..6].iter().all(|&x| x == 0) && !v6.is_loopback() && !v6.is_unspecified());
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || embeds_v4
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        }
    }
}

/// The hooks wasmtime-wasi-http calls for one plugin call.
pub struct PluginHttpHooks {
    policy: Arc<HttpPolicy>,
}

impl PluginHttpHooks {
    pub fn new(policy: Arc<HttpPolicy>) -> PluginHttpHooks {
        PluginHttpHooks { policy }
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = Result<
                (
                    Response<WasiBody>,
                    Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for PluginHttpHooks {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let policy = self.policy.clone();
        Box::new(async move {
            let permit = policy
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::ConnectionLimitReached)?;
            let response = send(&policy, request, options, permit).await;
            if let Err(e) = &response {
                tracing::info!(plugin = %policy.plugin, error = ?e, "plugin HTTP request failed or was refused");
            }
            let response = response?;
            let done: Box<dyn std::future::Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

async fn send(
    policy: &HttpPolicy,
    mut request: Request<WasiBody>,
    options: Option<RequestOptions>,
    permit: OwnedSemaphorePermit,
) -> Result<Response<WasiBody>, Error> {
    let uri = request.uri().clone();
    let https = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri
        .host()
        .ok_or(Error::HttpRequestUriInvalid)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if !policy.host_allowed(&host, port) {
        tracing::warn!(plugin = %policy.plugin, %host, port, "HTTP request to a host that was not granted refused");
        return Err(Error::HttpRequestDenied);
    }
    let connect_timeout = options
        .as_ref()
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT)
        .min(CONNECT_TIMEOUT);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            connect_timeout,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| Error::DnsTimeout)?
        .map_err(|_| Error::DestinationNotFound)?
        .collect(),
    };
    // Checked after resolution: a granted name that resolves to a private address is refused.
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| policy.allow_private_addresses || !is_private(a.ip()))
        .collect();
    let Some(&addr) = allowed.first() else {
        tracing::warn!(plugin = %policy.plugin, %host, ?addrs, "HTTP request to a private address refused");
        return Err(Error::DestinationIpProhibited);
    };
    let tcp = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(|_| Error::ConnectionRefused)?;

    if policy.may_inject_secrets(https) {
        for (name, value) in &policy.inject {
            request.headers_mut().insert(name.clone(), value.clone());
        }
    } else if !policy.inject.is_empty() {
        tracing::warn!(plugin = %policy.plugin, %host, "secrets are not sent over plain http to public hosts");
    }
    // hyper's client expects origin-form (`/path?query`) for a direct connection.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let response = if https {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|_| Error::TlsProtocolError)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let tls = tokio::time::timeout(
            connect_timeout,
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(|_| Error::TlsCertificateError)?;
        exchange(tls, request).await?
    } else {
        exchange(tcp, request).await?
    };
    Ok(response.map(|body| {
        LimitedBody {
            inner: body,
            left: policy.max_response_bytes,
            _permit: permit,
        }
        .boxed_unsync()
    }))
}

async fn exchange<S>(
    stream: S,
    request: Request<WasiBody>,
) -> Result<Response<hyper::body::Incoming>, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream))
            .await
            .map_err(Error::from)?;
    // The connection drives I/O until the response body is read; it ends with the sender.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "plugin HTTP connection ended with an error");
        }
    });
    sender.send_request(request).await.map_err(Error::from)
}

/// A response body that fails once it exceeds the plugin's limit, holding the request's
/// concurrency permit until it is done.
struct LimitedBody {
    inner: hyper::body::Incoming,
    left: u64,
    _permit: OwnedSemaphorePermit,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                if n > self.left {
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
                }
                self.left -= n;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn hosts_match_exactly_by_wildcard_and_port() {
        let p = HttpPolicy {
            plugin: "p".into(),
            hosts: vec![
                "api.example.com".into(),
                "*.cdn.test".into(),
                "127.0.0.1:8080".into(),
            ],
            allow_private_addresses: false,
            max_response_bytes: 0,
            permits: Arc::new(Semaphore::new(1)),
            inject: vec![],
        };
        assert!(p.host_allowed("API.example.com", 443));
        assert!(!p.host_allowed("evil-api.example.com", 443));
        assert!(p.host_allowed("img.cdn.test", 80));
        assert!(
            !p.host_allowed("api.example.com", 6379),
            "no port in the grant means 80 and 443 only"
        );
        assert!(!p.host_allowed("cdn.test", 80));
        assert!(p.host_allowed("127.0.0.1", 8080));
        assert!(p.may_inject_secrets(true) && !p.may_inject_secrets(false));
        assert!(!p.host_allowed("127.0.0.1", 8081));
    }
}
