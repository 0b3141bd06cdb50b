//! A service's outgoing HTTP requests (`wasi:http/outgoing-handler`):
//! deny by default.
//!
//! The buyer picks where its component sends requests, so without a policy
//! the provider's machine would be its proxy into the provider's own
//! network. A request goes out only if
//!
//! - its scheme is http or https;
//! - its host is one the lease lists (`allowed_hosts`), compared without
//!   case, brackets or a trailing dot;
//! - **every** address the host resolves to is public
//!   ([`crate::net::is_public`]): a name with one internal address among
//!   public ones is refused, as is a literal internal address;
//! - and then the connection goes to an address that was checked: the name
//!   is never resolved again, so DNS rebinding between the check and the
//!   connect can't swap in an internal address.
//!
//! https is verified against the platform's roots with the host name as
//! SNI. The guest's timeouts are clamped to the policy's, the response body
//! is capped, and redirects are never followed (a guest that follows one
//! makes a new request, which passes this filter again). Every refusal is a
//! `wasi:http` error code the guest can read: `HttpRequestDenied` (scheme or
//! host not allowed), `DestinationIpProhibited` (an internal address),
//! `DnsError`/`DnsTimeout`, `ConnectionTimeout`, `HttpResponseBodySize`...
//! A refused request's body is read to its end (bounded) before the code
//! is given, so a guest still writing it sees the code, not a closed stream.
//!
//! Reaching a server on the provider's own network, as tests and local
//! trials need, takes an explicit setting naming its addresses
//! ([`EgressPolicy::with_local_address`]); the default reaches none.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::net::is_public;

/// Where a service's outgoing requests may go and how long they may take.
#[derive(Clone, Debug)]
pub struct EgressPolicy {
    allowed_hosts: Vec<String>,
    local_addresses: Vec<IpAddr>,
    /// Longest wait for a name to resolve.
    pub dns_timeout: Duration,
    /// Longest wait for a connection (the guest may ask for less).
    pub connect_timeout: Duration,
    /// Longest wait for the response head (the guest may ask for less).
    pub first_byte_timeout: Duration,
    /// Largest response body passed to the guest; more is an
    /// `HttpResponseBodySize` error.
    pub max_response_body: u64,
}

impl EgressPolicy {
    /// Requests only to `allowed_hosts` (DNS names or address literals), at
    /// public addresses; 5 s to resolve and to connect, 10 s to the
    /// response head, bodies up to `max_response_body`.
    pub fn new(allowed_hosts: &[String], max_response_body: u64) -> Self {
        Self {
            allowed_hosts: allowed_hosts.iter().map(|h| normalise_host(h)).collect(),
            local_addresses: Vec::new(),
            dns_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            max_response_body,
        }
    }

    /// Also lets allowed hosts resolve to `ip`, an address on the
    /// provider's own network (a local test server): never the default.
    pub fn with_local_address(mut self, ip: IpAddr) -> Self {
        self.local_addresses.push(ip.to_canonical());
        self
    }

    /// The hosts requests may go to, normalised.
    pub fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.local_addresses.contains(&ip.to_canonical())
    }

    /// Checks a request's scheme and host before anything is resolved;
    /// returns the normalised host, the port and whether it is https.
    pub fn check_target(&self, uri: &http::Uri) -> Result<(String, u16, bool), HttpError> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(HttpError::HttpRequestDenied),
        };
        let host = normalise_host(uri.host().ok_or(HttpError::HttpRequestUriInvalid)?);
        if host.is_empty() || !self.allowed_hosts.contains(&host) {
            return Err(HttpError::HttpRequestDenied);
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok((host, port, tls))
    }

    /// Checks what a host resolved to: refused unless there is an address
    /// and every one is allowed. Returns the addresses to connect to.
    pub fn vet_addresses(&self, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, HttpError> {
        if addrs.is_empty() {
            return Err(HttpError::DestinationNotFound);
        }
        if addrs.iter().any(|a| !self.allows_address(a.ip())) {
            return Err(HttpError::DestinationIpProhibited);
        }
        Ok(addrs)
    }

    /// The guest's timeouts, never longer than the policy's.
    fn timeouts(&self, options: Option<RequestOptions>) -> (Duration, Duration) {
        let clamp = |asked: Option<Duration>, most: Duration| asked.map_or(most, |t| t.min(most));
        let options = options.unwrap_or_default();
        (
            clamp(options.connect_timeout, self.connect_timeout),
            clamp(options.first_byte_timeout, self.first_byte_timeout),
        )
    }
}

/// Lowercase, without IPv6 brackets or a trailing dot.
fn normalise_host(host: &str) -> String {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The `WasiHttpHooks` of one request's store: sends what the policy
/// allows.
pub struct EgressHooks {
    policy: Arc<EgressPolicy>,
}

impl EgressHooks {
    /// Hooks applying `policy`.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self { policy }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendResult = Result<(http::Response<WasiBody>, IoFuture), HttpError>;

/// The TLS client configuration: the platform's roots, aws-lc-rs.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, HttpError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_platform_verifier::BuilderVerifierExt;
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|b| b.with_platform_verifier())
                .map(|b| Arc::new(b.with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| HttpError::InternalError(Some(e)))
}

/// The largest body a refused request has read from it before the refusal
/// is given (see [`finish_refused`]).
const REFUSED_BODY_BYTES: u64 = 64 << 10;

async fn send(
    policy: Arc<EgressPolicy>,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let uri = request.uri().clone();
    let (connect_timeout, first_byte_timeout) = policy.timeouts(options);
    let stream = match connect(&policy, &uri, connect_timeout).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(uri = %uri, error = ?e, "service egress refused");
            finish_refused(request.into_body(), policy.connect_timeout).await;
            return Err(e);
        }
    };
    exchange(&policy, &uri, request, stream, first_byte_timeout).await
}

/// Reads a refused request's body to its end (at most
/// [`REFUSED_BODY_BYTES`], for at most `wait`) and drops it.
///
/// The guest writes the body while it waits for the response; dropping the
/// body at once would close that stream under it, and the guest would see
/// a broken stream instead of the refusal's code whenever the refusal
/// came first.
async fn finish_refused(mut body: WasiBody, wait: Duration) {
    let drain = async {
        let mut left = REFUSED_BODY_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            match left.checked_sub(n) {
                Some(rest) => left = rest,
                None => break,
            }
        }
    };
    let _ = tokio::time::timeout(wait, drain).await;
}

/// Checks the target, resolves and vets it, and connects (with TLS for
/// https): everything that may refuse a request before it is sent.
async fn connect(
    policy: &EgressPolicy,
    uri: &http::Uri,
    connect_timeout: Duration,
) -> Result<Box<dyn Io>, HttpError> {
    let (host, port, tls) = policy.check_target(uri)?;
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        policy.dns_timeout,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| HttpError::DnsTimeout)?
    .map_err(|e| HttpError::DnsError {
        rcode: Some(e.to_string()),
        info_code: None,
    })?
    .collect();
    let addrs = policy.vet_addresses(addrs)?;
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(&addrs[..]))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
            _ => HttpError::Connect(e),
        })?;
    // The address actually connected to is checked once more: it must be
    // one that was vetted.
    let peer = tcp.peer_addr().map_err(HttpError::Connect)?;
    if !policy.allows_address(peer.ip()) {
        return Err(HttpError::DestinationIpProhibited);
    }
    if !tls {
        return Ok(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(host).map_err(|_| HttpError::DnsError {
        rcode: Some("invalid dns name".into()),
        info_code: None,
    })?;
    let stream = tokio::time::timeout(
        connect_timeout,
        tokio_rustls::TlsConnector::from(tls_config()?).connect(name, tcp),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)?
    .map_err(HttpError::Tls)?;
    Ok(Box::new(stream))
}

/// Sends the request for `uri` over `stream` and hands back the
/// response, its body capped.
async fn exchange(
    policy: &EgressPolicy,
    uri: &http::Uri,
    mut request: http::Request<WasiBody>,
    stream: Box<dyn Io>,
    first_byte_timeout: Duration,
) -> SendResult {
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(64 << 10)
        .handshake(TokioIo::new(stream))
        .await?;
    let conn = tokio::spawn(conn);
    // Origin-form request line; wasmtime-wasi-http set the Host header.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)??;
    // hyper's connection API never follows redirects: a 3xx is the guest's
    // to read.
    let max = policy.max_response_body;
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let response = response.map(|body| {
        Limited::new(body, limit)
            .map_err(move |e| match e.downcast::<hyper::Error>() {
                Ok(e) => HttpError::from(*e),
                Err(_) => HttpError::HttpResponseBodySize(Some(max)),
            })
            .boxed_unsync()
    });
    let io = async move {
        match conn.await {
            Ok(r) => r.map_err(HttpError::from),
            Err(e) => Err(HttpError::InternalError(Some(e.to_string()))),
        }
    };
    Ok((response, Box::new(io)))
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        Box::new(send(Arc::clone(&self.policy), request, options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 80))
            .collect()
    }

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_listed_hosts_over_http_or_https_pass() {
        let p = EgressPolicy::new(&hosts(&["API.example.", "[::1]", "10.0.0.1"]), 1 << 20);
        assert_eq!(
            p.check_target(&uri("https://api.example/x")).unwrap(),
            ("api.example".into(), 443, true)
        );
        assert_eq!(
            p.check_target(&uri("http://Api.Example.:8080/")).unwrap(),
            ("api.example".into(), 8080, false)
        );
        assert_eq!(
            p.check_target(&uri("http://[::1]/")).unwrap(),
            ("::1".into(), 80, false)
        );
        for denied in [
            "https://other.example/",
            "https://api.example.evil/",
            "ftp://api.example/",
            "https://sub.api.example/",
        ] {
            assert!(
                matches!(
                    p.check_target(&uri(denied)),
                    Err(HttpError::HttpRequestDenied)
                ),
                "{denied}"
            );
        }
    }

    /// The attack: an allowed name resolving to an internal address. With
    /// the address check off (every address "local") it would be sent; the
    /// policy refuses it.
    #[test]
    fn a_listed_name_resolving_to_an_internal_address_is_refused() {
        let internal = [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "::1",
            "::ffff:127.0.0.1",
            "fd00::1",
        ];
        for ip in internal {
            let resolved = addrs(&["93.184.216.34", ip]);
            let mut unchecked = EgressPolicy::new(&hosts(&["a.example"]), 1);
            for ip in internal {
                unchecked = unchecked.with_local_address(ip.parse().unwrap());
            }
            assert!(
                unchecked.vet_addresses(resolved.clone()).is_ok(),
                "without the check, {ip} would be reached"
            );
            let strict = EgressPolicy::new(&hosts(&["a.example"]), 1);
            assert!(
                matches!(
                    strict.vet_addresses(resolved),
                    Err(HttpError::DestinationIpProhibited)
                ),
                "{ip}"
            );
        }
        let strict = EgressPolicy::new(&hosts(&["a.example"]), 1);
        assert!(strict.vet_addresses(addrs(&["93.184.216.34"])).is_ok());
        assert!(matches!(
            strict.vet_addresses(Vec::new()),
            Err(HttpError::DestinationNotFound)
        ));
    }

    #[test]
    fn a_local_address_is_allowed_only_in_its_own_forms() {
        let p =
            EgressPolicy::new(&hosts(&["x"]), 1).with_local_address("127.0.0.1".parse().unwrap());
        assert!(p.allows_address("127.0.0.1".parse().unwrap()));
        assert!(p.allows_address("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!p.allows_address("127.0.0.2".parse().unwrap()));
        assert!(!p.allows_address("::1".parse().unwrap()));
    }

    #[test]
    fn guest_timeouts_are_clamped() {
        let p = EgressPolicy::new(&[], 1);
        let long = RequestOptions {
            connect_timeout: Some(Duration::from_secs(600)),
            first_byte_timeout: Some(Duration::from_millis(10)),
            between_bytes_timeout: None,
        };
        assert_eq!(
            p.timeouts(Some(long)),
            (p.connect_timeout, Duration::from_millis(10))
        );
        assert_eq!(p.timeouts(None), (p.connect_timeout, p.first_byte_timeout));
    }

    /// A guest's outgoing body, 16 KiB a frame: `frames` of them and then
    /// the end, or without end; or a body that never yields (`stall`).
    struct GuestBody {
        frames: Option<u64>,
        stall: bool,
        read: Arc<std::sync::atomic::AtomicU64>,
    }

    const FRAME: usize = 16 << 10;

    impl hyper::body::Body for GuestBody {
        type Data = bytes::Bytes;
        type Error = HttpError;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, HttpError>>> {
            use std::sync::atomic::Ordering;
            use std::task::Poll;
            if self.stall {
                return Poll::Pending;
            }
            let read = self.read.load(Ordering::SeqCst);
            if self.frames.is_some_and(|n| read >= n) {
                return Poll::Ready(None);
            }
            self.read.fetch_add(1, Ordering::SeqCst);
            let frame = hyper::body::Frame::data(bytes::Bytes::from(vec![0; FRAME]));
            Poll::Ready(Some(Ok(frame)))
        }
    }

    /// Runs [`finish_refused`] on a guest body with a 200 ms wait; returns
    /// how many frames it read.
    async fn refuse(frames: Option<u64>, stall: bool) -> u64 {
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let body = GuestBody {
            frames,
            stall,
            read: Arc::clone(&read),
        }
        .boxed_unsync();
        tokio::time::timeout(
            Duration::from_secs(30),
            finish_refused(body, Duration::from_millis(200)),
        )
        .await
        .expect("a refused body is let go within its wait");
        read.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_refused_body_is_read_to_its_end_within_its_bounds() {
        assert_eq!(refuse(Some(3), false).await, 3, "a small body, to its end");
        let cap = REFUSED_BODY_BYTES / FRAME as u64;
        assert_eq!(
            refuse(None, false).await,
            cap + 1,
            "an endless body, until it is over the cap"
        );
        assert_eq!(
            refuse(None, true).await,
            0,
            "a stalled body, until the wait ends"
        );
    }
}
