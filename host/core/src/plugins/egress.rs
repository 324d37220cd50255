//! Outgoing HTTP for plugins (`wasi:http/outgoing-handler`), through the operator's grant only.
//!
//! Every request is checked twice: its host against the granted hosts, then every address the
//! name resolves to against the address policy (private, loopback, link-local, unspecified,
//! multicast and CGNAT ranges are refused unless the grant allows private addresses). The host
//! then connects to the address it checked — it never resolves the name again — so DNS
//! rebinding cannot swap in a private address between check and use. Redirects are not followed
//! by the host: a guest following one makes a new request, checked the same way.
//!
//! Secrets are injected here as request headers, only towards the hosts each is bound to, so
//! they never enter guest memory, and scrubbed from responses ([`super::secrets`]). Response
//! bodies are capped, and a per-plugin semaphore bounds concurrent requests across its calls.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub(crate) use super::secrets::{host_matches, Secret, SecretHosts};
use super::secrets::{scrub_headers, Masks, Scrubbed};
pub use super::secrets::{CallHeaders, MAX_CALL_HEADER_BYTES};

/// Connecting (DNS, TCP and TLS) must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one plugin may do over HTTP.
#[derive(Debug)]
pub(crate) struct HttpPolicy {
    pub plugin: Arc<str>,
    /// `host`, `*.domain` or either with `:port`; lower-case.
    pub hosts: Vec<String>,
    pub allow_private_addresses: bool,
    pub max_response_bytes: u64,
    /// Requests in flight across all of the plugin's calls (the grant's `http_concurrency`);
    /// further requests wait, within their call's time limit.
    pub permits: Arc<Semaphore>,
    /// Secrets from the grant, each set as a header on requests to its own hosts.
    pub secrets: Vec<Secret>,
}

impl HttpPolicy {
    /// This policy for one call that also carries `call`'s headers (sharing the plugin's
    /// request permits).
    pub(crate) fn with_call_headers(&self, call: &CallHeaders) -> HttpPolicy {
        HttpPolicy {
            plugin: self.plugin.clone(),
            hosts: self.hosts.clone(),
            allow_private_addresses: self.allow_private_addresses,
            max_response_bytes: self.max_response_bytes,
            permits: self.permits.clone(),
            secrets: self.secrets.iter().cloned().chain(call.secrets()).collect(),
        }
    }

    /// Secrets travel over https; over plain http only to an address that is private and
    /// opened by the grant (a local service), never in clear across a public network.
    fn may_inject_secrets(&self, https: bool, addr: IpAddr) -> bool {
        https || (self.allow_private_addresses && is_private(addr))
    }

    fn host_allowed(&self, host: &str, port: u16) -> bool {
        host_matches(&self.hosts, host, port)
    }
}

/// Addresses a plugin may not reach unless the grant allows private addresses: everything
/// that is not global unicast ([`is_global`]).
pub(crate) fn is_private(ip: IpAddr) -> bool {
    !is_global(ip)
}

/// Whether `ip` is a global unicast address, by allow-list: IPv6 only inside 2000::/3 and
/// IPv4 outside every special-purpose range. A deny-list misses forms nobody listed
/// (`::ffff:0:a.b.c.d`, a new documentation prefix); an allow-list refuses them by default.
pub(crate) fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let special = o[0] == 0 // "this network"
                || o[0] == 10
                || o[0] == 127
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
                || (o[0] == 169 && o[1] == 254) // link-local (cloud metadata)
                || (o[0] == 172 && (o[1] & 0xf0) == 16)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || (o[0] == 192 && o[1] == 0 && o[2] == 2) // documentation
                || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast
                || (o[0] == 192 && o[1] == 168)
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
                || (o[0] == 198 && o[1] == 51 && o[2] == 100) // documentation
                || (o[0] == 203 && o[1] == 0 && o[2] == 113) // documentation
                || o[0] >= 224; // multicast, reserved, broadcast
            !special
        }
        IpAddr::V6(v6) => {
            // A mapped address is connected to over IPv4: judge the IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_global(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            // The well-known NAT64 prefix (64:ff9b::/96, what DNS64 answers on IPv6-only
            // networks): the translator forwards to the embedded IPv4 address, so judge that.
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let v4 = std::net::Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                );
                return is_global(IpAddr::V4(v4));
            }
            let in_global_unicast = (seg[0] & 0xe000) == 0x2000; // 2000::/3
                                                                 // Inside 2000::/3, ranges that are not plain global unicast: IETF protocol
                                                                 // assignments incl. Teredo (2001::/23), documentation (2001:db8::/32, 3fff::/20),
                                                                 // and 6to4 (2002::/16), which carry IPv4 addresses another network translates.
            let special = (seg[0] == 0x2001 && (seg[1] < 0x0200 || seg[1] == 0x0db8))
                || seg[0] == 0x2002
                || (seg[0] & 0xfff0) == 0x3ff0;
            in_global_unicast && !special
        }
    }
}

/// The hooks wasmtime-wasi-http calls for one plugin call.
pub(crate) struct PluginHttpHooks {
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

/// Bytes of a refused request's body read (and dropped) before the refusal is answered.
const REFUSED_BODY_BYTES: usize = 1024 * 1024;
/// The largest request body a plugin sends (it is read whole before the request goes out).
const REQUEST_BODY_BYTES: usize = 16 * 1024 * 1024;

fn connect_timeout(options: Option<&RequestOptions>) -> Duration {
    options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT)
        .min(CONNECT_TIMEOUT)
}

/// The policy checks, then a TCP connection to the address that was checked: (stream, host,
/// port, https, address).
async fn connect(
    policy: &HttpPolicy,
    uri: &http::Uri,
    options: Option<&RequestOptions>,
) -> Result<(tokio::net::TcpStream, String, u16, bool, SocketAddr), Error> {
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
    let connect_timeout = connect_timeout(options);
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
    Ok((tcp, host, port, https, addr))
}

async fn send(
    policy: &HttpPolicy,
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
    permit: OwnedSemaphorePermit,
) -> Result<Response<WasiBody>, Error> {
    let uri = request.uri().clone();
    let connect_timeout = connect_timeout(options.as_ref());
    let (tcp, host, port, https, addr) = match connect(policy, &uri, options.as_ref()).await {
        Ok(connected) => connected,
        Err(e) => {
            // Take the guest's request body before answering: if its writer found the body
            // gone it would report a broken stream ("connection reset") instead of this error.
            let body = http_body_util::Limited::new(request.into_body(), REFUSED_BODY_BYTES);
            let _ = tokio::time::timeout(connect_timeout, body.collect()).await;
            return Err(e);
        }
    };
    // The guest's body, read to its end before the request goes out: hyper sends a GET
    // without polling an unsized body and drops it, and a guest still writing (or finishing)
    // it then saw a broken stream, reported as "connection reset" — under load, when guest
    // threads run late. Whole, it also goes out with a Content-Length, as servers prefer.
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(
        connect_timeout,
        http_body_util::Limited::new(body, REQUEST_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Error::HttpRequestBodySize(Some(REQUEST_BODY_BYTES as u64)))
        }
        Ok(Err(_)) => return Err(Error::HttpRequestBodySize(None)),
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    let mut request = Request::from_parts(parts, http_body_util::Full::new(body));
    let mut injected = false;
    for secret in policy
        .secrets
        .iter()
        .filter(|s| s.hosts.matches(&host, port))
    {
        if policy.may_inject_secrets(https, addr.ip()) {
            request
                .headers_mut()
                .insert(secret.header.clone(), secret.value.clone());
            injected = true;
        } else {
            tracing::warn!(plugin = %policy.plugin, %host, "a secret is not sent over plain http to a public address");
        }
    }
    if injected {
        // The answer must be scrubbable: no compression the guest could undo afterwards.
        request.headers_mut().insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
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
    // Whatever the host answers, the guest never reads a secret back (an echo service, a
    // redirect target that reflects headers).
    let masks = Masks::of(&policy.secrets);
    let mut response = response;
    let coding = response
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.eq_ignore_ascii_case("identity"))
        .map(str::to_string);
    if injected && coding.is_some() {
        tracing::warn!(plugin = %policy.plugin, %host, "a compressed answer to a request carrying a secret was refused");
        return Err(Error::HttpResponseContentCoding(coding));
    }
    scrub_headers(response.headers_mut(), &masks);
    Ok(response.map(|body| {
        let limited = LimitedBody {
            inner: body,
            left: policy.max_response_bytes,
            _permit: permit,
        };
        Scrubbed::new(limited, masks).boxed_unsync()
    }))
}

async fn exchange<S>(
    stream: S,
    request: Request<http_body_util::Full<bytes::Bytes>>,
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
            // Forms a deny-list missed: IPv4-translated, NAT64, 6to4, Teredo, new docs prefix,
            // the unspecified and multicast addresses, IETF-reserved IPv4.
            "::ffff:0:127.0.0.1",
            "::ffff:0:0",
            "::127.0.0.1",
            "::",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "ff02::1",
            "100::1",
            "192.0.0.8",
            "192.88.99.1",
            "198.18.0.1",
            "255.255.255.255",
            "224.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            // NAT64 to a global IPv4 address (an IPv6-only network's way out).
            "64:ff9b::808:808",
        ] {
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
                "[::1]:9090".into(),
                "[fd00::7]".into(),
            ],
            allow_private_addresses: false,
            max_response_bytes: 0,
            permits: Arc::new(Semaphore::new(1)),
            secrets: vec![],
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
        assert!(
            p.host_allowed("::1", 9090),
            "an IPv6 pattern may carry a port"
        );
        assert!(!p.host_allowed("::1", 443));
        assert!(p.host_allowed("fd00::7", 443) && !p.host_allowed("fd00::7", 9090));
        let (public, local) = (
            "93.184.216.34".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        );
        assert!(p.may_inject_secrets(true, public));
        assert!(
            !p.may_inject_secrets(false, public),
            "never in clear to a public address"
        );
        assert!(
            !p.may_inject_secrets(false, local),
            "private only when the grant opens it"
        );
        assert!(!p.host_allowed("127.0.0.1", 8081));
    }
}
