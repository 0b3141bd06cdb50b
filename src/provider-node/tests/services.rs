//! The service host behind its ingress, with the real test components
//! (`hello-service`, `hostile-service`): routing, the host's error answers,
//! limits, isolation of a hostile service, env, egress and the ingress's
//! defences against slow and idle clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use market_api::matcher::ServiceLimits;
use provider_node::service::{
    IngressSettings, ServiceHost, ServiceHostConfig, ServiceMetrics, ServiceSettings,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HELLO: u64 = 7;
const HOSTILE: u64 = 9;

fn component(name: &str) -> (Vec<u8>, [u8; 32]) {
    let bytes = market_artifacts::workload(name);
    let hash = Sha256::digest(&bytes).into();
    (bytes, hash)
}

fn limits() -> ServiceLimits {
    ServiceLimits {
        fuel_per_request: 200_000_000,
        timeout_ms: 2_000,
        max_concurrent: 8,
        max_body_bytes: 64 * 1024,
    }
}

fn settings(limits: ServiceLimits) -> ServiceSettings {
    ServiceSettings {
        env: vec![("GREETING".into(), "hello, lease".into())],
        allowed_hosts: Vec::new(),
        limits,
        memory_bytes: 32 << 20,
    }
}

struct Node {
    host: ServiceHost,
    addr: SocketAddr,
}

fn host_config() -> ServiceHostConfig {
    ServiceHostConfig {
        max_instances: 32,
        max_memory_bytes: 64 << 20,
        public_base_url: Some("https://node.example:8443/".into()),
        ..ServiceHostConfig::default()
    }
}

async fn node_with(config: ServiceHostConfig, ingress: IngressSettings) -> Node {
    let host = ServiceHost::new(config, ServiceMetrics::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(provider_node::service::serve(
        host.clone(),
        listener,
        ingress,
        std::future::pending(),
    ));
    Node { host, addr }
}

impl Node {
    /// Starts the test component `name` as service `id`.
    async fn start(&self, id: u64, name: &str, settings: ServiceSettings) {
        let (bytes, hash) = component(name);
        self.host.start(id, &bytes, &hash, settings).await.unwrap();
    }
}

/// A node running hello-service as `HELLO` and hostile-service as
/// `HOSTILE`.
async fn node(hello: ServiceSettings, hostile: ServiceSettings) -> Node {
    let node = node_with(host_config(), IngressSettings::default()).await;
    node.start(HELLO, "hello-service", hello).await;
    node.start(HOSTILE, "hostile-service", hostile).await;
    node
}

/// One read of `s`, which must end within `within` (`what` says what was
/// expected otherwise); the bytes it got: 0 once the peer closed the
/// connection, or on a reset.
async fn read_until_closed(s: &mut TcpStream, within: Duration, what: &str) -> usize {
    let mut chunk = [0u8; 64];
    tokio::time::timeout(within, s.read(&mut chunk))
        .await
        .expect(what)
        .unwrap_or(0)
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Result<String, String>,
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = match response.into_body().collect().await {
        Ok(b) => Ok(String::from_utf8_lossy(&b.to_bytes()).into_owned()),
        Err(e) => Err(e.to_string()),
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    call(addr, "GET", path, &[], b"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_routed_by_the_first_path_segment() {
    let node = node(settings(limits()), settings(limits())).await;
    let a = get(node.addr, "/7/").await;
    assert_eq!(
        (a.status, a.body.unwrap()),
        (200, "hello from a service\n".into())
    );
    let a = get(node.addr, "/7/json?x=1&y=2").await;
    assert_eq!(a.status, 200);
    let json: serde_json::Value = serde_json::from_str(&a.body.unwrap()).unwrap();
    assert_eq!(json["path"], "/json");
    assert_eq!(json["query"], "x=1&y=2");
    assert_eq!(get(node.addr, "/9/").await.body.unwrap(), "hostile");
    // The guest's own 404 and the host's.
    let a = get(node.addr, "/7/nope").await;
    assert_eq!((a.status, a.body.unwrap()), (404, String::new()));
    for unknown in ["/8/", "/x/", "/", "/07/"] {
        let a = get(node.addr, unknown).await;
        assert_eq!(a.status, 404, "{unknown}");
        assert_eq!(a.body.unwrap(), "no such service\n", "{unknown}");
        assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    }
    assert_eq!(
        node.host.endpoint(HELLO).as_deref(),
        Some("https://node.example:8443/7/")
    );
    // A stopped service is unknown.
    assert!(node.host.stop(HELLO));
    assert_eq!(get(node.addr, "/7/").await.status, 404);
    assert_eq!(node.host.list().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_env_reaches_the_component_and_nothing_else_does() {
    let node = node(settings(limits()), settings(limits())).await;
    let a = get(node.addr, "/7/env/GREETING").await;
    assert_eq!((a.status, a.body.unwrap()), (200, "hello, lease".into()));
    // The node's own environment is not passed on.
    assert!(std::env::var_os("PATH").is_some());
    assert_eq!(get(node.addr, "/7/env/PATH").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_the_cap_is_refused_before_the_service_runs() {
    let node = node(settings(limits()), settings(limits())).await;
    let a = call(node.addr, "POST", "/7/echo", &[], b"ping").await;
    assert_eq!((a.status, a.body.unwrap()), (200, "ping".into()));
    let big = vec![b'x'; 64 * 1024 + 1];
    let a = call(node.addr, "POST", "/7/echo", &[], &big).await;
    assert_eq!(a.status, 413);
    let fuel_before = node.host.metrics().render();
    assert!(
        fuel_before
            .contains("provider_node_service_errors_total{service=\"7\",kind=\"too_large\"} 1"),
        "{fuel_before}"
    );
    let exact = vec![b'y'; 64 * 1024];
    let a = call(node.addr, "POST", "/7/echo", &[], &exact).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.unwrap().len(), 64 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_error_and_the_service_still_answers() {
    let node = node(settings(limits()), settings(limits())).await;
    // Out of fuel: a trap.
    let a = get(node.addr, "/9/loop").await;
    assert_eq!((a.status, a.body.unwrap()), (500, "out of fuel\n".into()));
    // Out of memory (32 MiB).
    let a = get(node.addr, "/9/alloc").await;
    assert_eq!((a.status, a.body.unwrap()), (500, "out of memory\n".into()));
    // Waiting on the host: the wall clock.
    let started = Instant::now();
    let a = get(node.addr, "/9/sleep").await;
    assert_eq!(a.status, 504);
    assert!(started.elapsed() >= Duration::from_millis(2_000));
    assert!(started.elapsed() < Duration::from_secs(5));
    // An endless body is cut off at the cap.
    let a = get(node.addr, "/9/flood").await;
    assert_eq!(a.status, 200);
    assert!(a.body.is_err(), "the flood must not end cleanly");
    let out = node.host.metrics().render();
    assert!(
        out.contains("provider_node_service_bytes_out_total{service=\"9\"} 65536"),
        "at most the cap is sent: {out}"
    );
    // The same service answers normally afterwards.
    let a = get(node.addr, "/9/healthz").await;
    assert_eq!((a.status, a.body.unwrap()), (200, "ok".into()));
    let out = node.host.metrics().render();
    for kind in ["out_of_fuel", "out_of_memory", "timeout", "body_cut"] {
        assert!(
            out.contains(&format!(
                "provider_node_service_errors_total{{service=\"9\",kind=\"{kind}\"}} 1"
            )),
            "{kind}: {out}"
        );
    }
    assert!(
        out.contains("provider_node_service_requests_total{service=\"9\",class=\"5xx\"} 3"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_with_fuel_to_spare_is_stopped_by_the_wall_clock() {
    let hostile = ServiceLimits {
        fuel_per_request: market_api::matcher::MAX_REQUEST_FUEL,
        timeout_ms: 500,
        ..limits()
    };
    let node = node(settings(limits()), settings(hostile)).await;
    let started = Instant::now();
    let a = get(node.addr, "/9/loop").await;
    assert_eq!(a.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Every hostile route at once, several times over, while hello-service on
/// the same node answers each request well within its own time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_service_does_not_harm_another_on_the_same_node() {
    let hostile = ServiceLimits {
        fuel_per_request: 2_000_000_000,
        timeout_ms: 1_500,
        ..limits()
    };
    let node = node(settings(limits()), settings(hostile)).await;
    let addr = node.addr;
    let attacks: Vec<_> = ["/9/loop", "/9/alloc", "/9/flood", "/9/sleep"]
        .iter()
        .cycle()
        .take(8)
        .map(|path| tokio::spawn(async move { (path, get(addr, path).await) }))
        .collect();
    let mut served = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1_500) {
        let t = Instant::now();
        let a = get(addr, "/7/healthz").await;
        assert_eq!((a.status, a.body.unwrap()), (200, "ok".into()));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        served += 1;
    }
    assert!(served >= 5, "{served}");
    for attack in attacks {
        let (path, a) = attack.await.unwrap();
        let expected = match *path {
            "/9/loop" => [500, 504].contains(&a.status),
            "/9/alloc" => a.status == 500,
            "/9/flood" => a.status == 200 && a.body.is_err(),
            _ => a.status == 504,
        };
        assert!(expected, "{path}: {} {:?}", a.status, a.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_cap_get_503() {
    let hostile = ServiceLimits {
        max_concurrent: 2,
        ..limits()
    };
    let node = node(settings(limits()), settings(hostile)).await;
    let addr = node.addr;
    let sleepers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(addr, "/9/sleep").await }))
        .collect();
    // Both sleepers are in.
    let in_flight = || {
        node.host
            .list()
            .iter()
            .find(|s| s.id == HOSTILE)
            .unwrap()
            .in_flight
    };
    let t = Instant::now();
    while in_flight() < 2 {
        assert!(t.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a = get(addr, "/9/healthz").await;
    assert_eq!(a.status, 503);
    assert_eq!(a.headers["retry-after"], "1");
    // The other service has its own cap.
    assert_eq!(get(addr, "/7/healthz").await.status, 200);
    for s in sleepers {
        assert_eq!(s.await.unwrap().status, 504);
    }
    assert_eq!(get(addr, "/9/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_is_cut_off_and_idle_connections_are_closed() {
    let ingress = IngressSettings {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(30),
        ..IngressSettings::default()
    };
    let node = node_with(host_config(), ingress).await;
    node.start(HELLO, "hello-service", settings(limits())).await;

    // Slowloris: a head that never ends.
    let mut s = TcpStream::connect(node.addr).await.unwrap();
    s.write_all(b"GET /7/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if s.write_all(b"X-a: b\r\n").await.is_err() {
                break;
            }
            let mut chunk = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    })
    .await
    .expect("the ingress closes a connection whose head takes too long");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&buf)
    );

    // Idle: a kept-alive connection with nothing to say.
    let ingress = IngressSettings {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_millis(300),
        ..IngressSettings::default()
    };
    let idle = node_with(host_config(), ingress).await;
    let mut s = TcpStream::connect(idle.addr).await.unwrap();
    let started = Instant::now();
    let n = read_until_closed(
        &mut s,
        Duration::from_secs(5),
        "an idle connection is closed",
    )
    .await;
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed() {
    let ingress = IngressSettings {
        max_connections: 2,
        ..IngressSettings::default()
    };
    let node = node_with(host_config(), ingress).await;
    node.start(HELLO, "hello-service", settings(limits())).await;
    let held: Vec<TcpStream> = vec![
        TcpStream::connect(node.addr).await.unwrap(),
        TcpStream::connect(node.addr).await.unwrap(),
    ];
    let t = Instant::now();
    while node.host.metrics().connections.get() < 2 {
        assert!(t.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut third = TcpStream::connect(node.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /7/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let n = read_until_closed(&mut third, Duration::from_secs(2), "closed at once").await;
    assert_eq!(n, 0);
    assert_eq!(node.host.metrics().connections_refused.get(), 1);
    drop(held);
    let t = Instant::now();
    while node.host.metrics().connections.get() > 0 {
        assert!(t.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get(node.addr, "/7/healthz").await.status, 200);
}

/// A local HTTP server answering every request with `response`, counting
/// connections.
async fn upstream(response: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(&response).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, hits)
}

fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn pct(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn fetch(node: &Node, url: &str) -> (u16, String) {
    let a = get(node.addr, &format!("/7/fetch?url={}", pct(url))).await;
    (a.status, a.body.unwrap())
}

/// Asserts that hello-service's request to `url` was refused with the
/// `wasi:http` error code `refusal`.
async fn assert_refused(node: &Node, url: &str, refusal: &str) {
    assert_eq!(
        fetch(node, url).await,
        (502, format!("refused: ErrorCode::{refusal}")),
        "{url}"
    );
}

/// A node whose hello-service may call `hosts`; `local` the addresses the
/// node lets allowed hosts resolve to on its own network.
async fn egress_node(hosts: &[&str], local: &[&str], max_body: u64) -> Node {
    let config = ServiceHostConfig {
        egress_local_addresses: local.iter().map(|a| a.parse().unwrap()).collect(),
        ..host_config()
    };
    let node = node_with(config, IngressSettings::default()).await;
    let (bytes, hash) = component("hello-service");
    let settings = ServiceSettings {
        allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        ..settings(ServiceLimits {
            max_body_bytes: max_body,
            ..limits()
        })
    };
    node.host
        .start(HELLO, &bytes, &hash, settings)
        .await
        .unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_reaches_a_local_server_only_when_listed_and_explicitly_allowed() {
    let (up, hits) = upstream(ok_response(b"hello from upstream")).await;
    let url = format!("http://127.0.0.1:{}/x", up.port());
    // With the address check lifted for 127.0.0.1 (the test escape), the
    // request goes through: this is what a guest could do without it.
    let open = egress_node(&["127.0.0.1"], &["127.0.0.1"], 1 << 20).await;
    assert_eq!(
        fetch(&open, &url).await,
        (200, "upstream 200: 19 bytes".into())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Listed but not allowed as a local address: refused, never reached.
    let strict = egress_node(&["127.0.0.1"], &[], 1 << 20).await;
    assert_refused(&strict, &url, "DestinationIpProhibited").await;
    // Allowed as a local address but not listed: refused.
    let unlisted = egress_node(&["api.example"], &["127.0.0.1"], 1 << 20).await;
    assert_refused(&unlisted, &url, "HttpRequestDenied").await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "no refused request arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_refused_even_when_listed() {
    let (up, hits) = upstream(ok_response(b"secret")).await;
    let port = up.port();
    let listed = [
        "127.0.0.1",
        "localhost",
        "10.0.0.1",
        "169.254.169.254",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:a9fe:a9fe]",
    ];
    let node = egress_node(&listed, &[], 1 << 20).await;
    for host in listed {
        let url = format!("http://{host}:{port}/latest/meta-data/");
        assert_refused(&node, &url, "DestinationIpProhibited").await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // Not listed at all, and other schemes (refused by wasmtime-wasi-http
    // before the policy sees them).
    for (url, refusal) in [
        ("http://example.com/", "HttpRequestDenied"),
        ("ftp://127.0.0.1/", "HttpProtocolError"),
    ] {
        assert_refused(&node, url, refusal).await;
    }
}

/// A refusal comes back as the request's error code, never as a broken
/// body stream: the refused request's body is taken to its end (bounded)
/// before the refusal, so a guest writing the body while it waits for the
/// response sees the code, however fast the refusal came. Threads spinning
/// beside the node make the refusal win that race often.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_reaches_the_guest_as_its_error_code() {
    let node = egress_node(&["127.0.0.1"], &[], 1 << 20).await;
    let _spinning = Spinners::start(3);
    for _ in 0..400 {
        assert_refused(&node, "http://example.com/", "HttpRequestDenied").await;
        assert_refused(&node, "http://127.0.0.1:9/", "DestinationIpProhibited").await;
    }
}

/// Threads that keep the machine's cores busy until dropped.
struct Spinners {
    done: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Spinners {
    fn start(n: usize) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let done = done.clone();
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Self { done, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_responses_are_capped() {
    let (target, target_hits) = upstream(ok_response(b"elsewhere")).await;
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        target.port()
    );
    let (up, _) = upstream(redirect.into_bytes()).await;
    let node = egress_node(&["127.0.0.1"], &["127.0.0.1"], 1024).await;
    assert_eq!(
        fetch(&node, &format!("http://127.0.0.1:{}/", up.port())).await,
        (200, "upstream 302: 0 bytes".into())
    );
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );

    let (big, _) = upstream(ok_response(&vec![b'z'; 4096])).await;
    let (status, body) = fetch(&node, &format!("http://127.0.0.1:{}/", big.port())).await;
    assert_eq!(status, 502, "{body}");
    // The guest reads the body and gets the cap's error.
    assert!(
        body.contains("response body size exceeds limit: 1024 bytes"),
        "{body}"
    );
    let (small, _) = upstream(ok_response(&vec![b'z'; 1024])).await;
    assert_eq!(
        fetch(&node, &format!("http://127.0.0.1:{}/", small.port())).await,
        (200, "upstream 200: 1024 bytes".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_the_wrong_hash_or_limits_does_not_start() {
    let host = ServiceHost::new(host_config(), ServiceMetrics::default()).unwrap();
    let (bytes, hash) = component("hello-service");
    let mut wrong = hash;
    wrong[0] ^= 1;
    let err = host
        .start(1, &bytes, &wrong, settings(limits()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    let too_much = ServiceSettings {
        memory_bytes: 128 << 20,
        ..settings(limits())
    };
    assert!(host.start(1, &bytes, &hash, too_much).await.is_err());
    // A core module is not a component.
    let module = wat::parse_str("(module)").unwrap();
    let module_hash = Sha256::digest(&module).into();
    assert!(
        host.start(1, &module, &module_hash, settings(limits()))
            .await
            .is_err()
    );
    assert!(host.list().is_empty());
}
