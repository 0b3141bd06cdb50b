//! The ingress: one HTTP/1.1 listener for every service on the node.
//!
//! `/<id>/<rest>?<query>` goes to service `id`, which sees `/<rest>?<query>`
//! and the prefix `/<id>` in `x-forwarded-prefix`; with a host domain
//! configured, `Host: <id>.<domain>` goes to service `id` with the path
//! unchanged. Unknown services get 404, busy ones 503 with `Retry-After`,
//! a declared body over the cap 413, a timeout 504, a trap 500, each with a
//! one-line text body. Against slow or idle clients: the request head must
//! arrive within the header-read timeout (which also bounds the wait for
//! the next request on a kept-alive connection), a connection with no
//! traffic and no request in flight for the idle timeout is closed, heads
//! are capped in size, and connections beyond the cap are closed at once.
//! TLS (rustls, the provider's certificate) is optional: a provider may
//! instead put its own reverse proxy in front.
//!
//! A TCP service (in the node's [`TcpServiceHost`], when the settings name
//! it) is not served here, but answered for: `GET /<id>/...` of a TCP
//! service's id is 200 `ok` while its instance runs and a TCP connection
//! to its port succeeds within [`TCP_HEALTH_TIMEOUT`], else 503. That is
//! what the matcher's probes of the service's endpoint see.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::ServiceError;
use super::body::ResponseBody;
use super::host::{ServiceHost, host_answer};
use super::tcp::TcpServiceHost;

/// How long the ingress waits for a TCP service's port to take a
/// connection before it answers that the service is down.
pub const TCP_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// How the ingress treats connections.
#[derive(Clone)]
pub struct IngressSettings {
    /// Time a client has to send a request head (from the connection's
    /// start, or the end of its previous request).
    pub header_read_timeout: Duration,
    /// A connection with no bytes moving and no request in flight for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
    /// With a domain, `Host: <id>.<domain>` routes to service `id`.
    pub host_domain: Option<String>,
    /// TLS, if the ingress terminates it.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The node's TCP services, whose health the ingress answers for.
    pub tcp_services: Option<TcpServiceHost>,
}

impl std::fmt::Debug for IngressSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressSettings")
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("host_domain", &self.host_domain)
            .field("tls", &self.tls.is_some())
            .field("tcp_services", &self.tcp_services.is_some())
            .finish()
    }
}

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_header_bytes: 64 << 10,
            host_domain: None,
            tls: None,
            tcp_services: None,
        }
    }
}

/// The TLS configuration of a certificate chain and key in PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServiceError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        ServiceError::Config(format!("{}: {e}", what.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad(cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Which service a request is for, and what path its guest sees.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Route {
    pub(super) id: u64,
    pub(super) rest: http::uri::PathAndQuery,
    pub(super) prefix: Option<String>,
}

/// Routes by host name (`<id>.<domain>`, when a domain is set) or by the
/// first path segment.
pub(super) fn route(
    uri: &http::Uri,
    host_header: Option<&str>,
    domain: Option<&str>,
) -> Option<Route> {
    if let (Some(domain), Some(host)) = (domain, host_header.or(uri.host())) {
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let host = host.to_ascii_lowercase();
        let domain = domain.trim_matches('.').to_ascii_lowercase();
        if let Some(label) = host.strip_suffix(&domain).and_then(|h| h.strip_suffix('.')) {
            let id = parse_id(label)?;
            let rest = uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| "/".parse().expect("valid"));
            return Some(Route {
                id,
                rest,
                prefix: None,
            });
        }
    }
    let path = uri.path().strip_prefix('/')?;
    let (first, rest) = match path.split_once('/') {
        Some((first, rest)) => (first, rest),
        None => (path, ""),
    };
    let id = parse_id(first)?;
    let rest = match uri.query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    Some(Route {
        id,
        rest: rest.parse().ok()?,
        prefix: Some(format!("/{first}")),
    })
}

/// A service id: decimal digits, no sign or leading zeros.
fn parse_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Serves the ingress on `listener` until `shutdown` resolves; then stops
/// accepting, and lets open connections finish their requests.
pub async fn serve(
    host: ServiceHost,
    listener: TcpListener,
    settings: IngressSettings,
    shutdown: impl Future<Output = ()>,
) {
    let settings = Arc::new(settings);
    let connections = Arc::new(Semaphore::new(settings.max_connections));
    let tls = settings.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "ingress accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            host.metrics().connections_refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let host = host.clone();
        let settings = Arc::clone(&settings);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            host.metrics().connections.inc();
            connection(host.clone(), stream, peer, settings, tls).await;
            host.metrics().connections.dec();
        });
    }
}

async fn connection(
    host: ServiceHost,
    stream: TcpStream,
    peer: SocketAddr,
    settings: Arc<IngressSettings>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let activity = Arc::new(Activity::default());
    let stream = Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    };
    match tls {
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(stream)) => http(host, stream, peer, settings, activity).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "ingress TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "ingress TLS handshake timed out"),
            }
        }
        None => http(host, stream, peer, settings, activity).await,
    }
}

async fn http<S>(
    host: ServiceHost,
    stream: S,
    peer: SocketAddr,
    settings: Arc<IngressSettings>,
    activity: Arc<Activity>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let domain = settings.host_domain.clone();
    let tcp = settings.tcp_services.clone();
    let in_flight = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let host = host.clone();
        let domain = domain.clone();
        let tcp = tcp.clone();
        let activity = Arc::clone(&in_flight);
        async move {
            activity.requests.fetch_add(1, Ordering::Relaxed);
            let response = answer(&host, tcp.as_ref(), request, domain.as_deref()).await;
            activity.requests.fetch_sub(1, Ordering::Relaxed);
            activity.touch();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let idle = settings.idle_timeout;
    loop {
        let check = tokio::time::sleep(
            idle.min(Duration::from_secs(1))
                .max(Duration::from_millis(10)),
        );
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "ingress connection ended");
                }
                return;
            }
            () = check => {
                if activity.requests.load(Ordering::Relaxed) == 0 && activity.idle_for() >= idle {
                    tracing::debug!(%peer, "ingress connection idle, closed");
                    return;
                }
            }
        }
    }
}

async fn answer(
    host: &ServiceHost,
    tcp: Option<&TcpServiceHost>,
    request: hyper::Request<Incoming>,
    domain: Option<&str>,
) -> hyper::Response<ResponseBody> {
    let host_header = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    match route(request.uri(), host_header, domain) {
        Some(Route { id, .. }) if tcp.is_some_and(|t| t.info(id).is_some()) => {
            let tcp = tcp.expect("checked");
            if !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
                return host_answer(405, "a TCP service: only GET of its health here", &[]);
            }
            tcp_health(tcp, id).await
        }
        Some(Route { id, rest, prefix }) => host.serve(id, request, rest, prefix).await,
        None => {
            host.metrics().unknown_service.inc();
            host_answer(404, "no such service", &[])
        }
    }
}

/// Whether TCP service `id` serves: its instance runs and its port takes
/// a connection within [`TCP_HEALTH_TIMEOUT`] (200 `ok`), or not (503, or
/// 404 once it is gone).
async fn tcp_health(tcp: &TcpServiceHost, id: u64) -> hyper::Response<ResponseBody> {
    let Some(info) = tcp.info(id) else {
        return host_answer(404, "no such service", &[]);
    };
    if !info.running {
        return host_answer(503, "the service's instance is not running", &[]);
    }
    let mut addr = info.addr;
    if addr.ip().is_unspecified() {
        // Opened on every address: reach it on the loopback one.
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    match tokio::time::timeout(TCP_HEALTH_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => host_answer(200, "ok", &[]),
        Ok(Err(_)) | Err(_) => host_answer(503, "the service's port takes no connections", &[]),
    }
}

/// When a connection last moved bytes, and its requests in flight.
struct Activity {
    since: Instant,
    last_ms: AtomicU64,
    requests: AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.since.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records when bytes last moved.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_segment_names_the_service_and_the_guest_sees_the_rest() {
        let r = route(&uri("/42/a/b?x=1&y"), None, None).unwrap();
        assert_eq!(r.id, 42);
        assert_eq!(r.rest.as_str(), "/a/b?x=1&y");
        assert_eq!(r.prefix.as_deref(), Some("/42"));
        let r = route(&uri("/7"), None, None).unwrap();
        assert_eq!((r.id, r.rest.as_str()), (7, "/"));
        let r = route(&uri("/7/"), None, None).unwrap();
        assert_eq!((r.id, r.rest.as_str()), (7, "/"));
        for bad in [
            "/",
            "/x/",
            "/-1/",
            "/007/",
            "/+7/",
            "/99999999999999999999/",
            "//7/",
        ] {
            assert_eq!(route(&uri(bad), None, None), None, "{bad}");
        }
    }

    #[test]
    fn a_host_under_the_domain_names_the_service() {
        let d = Some("svc.example");
        let r = route(&uri("/a?q"), Some("12.SVC.example:8443"), d).unwrap();
        assert_eq!((r.id, r.rest.as_str(), r.prefix), (12, "/a?q", None));
        // Another host falls back to the path.
        let r = route(&uri("/5/a"), Some("other.example"), d).unwrap();
        assert_eq!((r.id, r.rest.as_str()), (5, "/a"));
        assert_eq!(route(&uri("/a"), Some("x.svc.example"), d), None);
        assert_eq!(route(&uri("/a"), Some("1.2.svc.example"), d), None);
    }
}
