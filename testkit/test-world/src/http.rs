//! Plain HTTP/1.1 from the tests to a node's ingress, and waiting in real
//! time for what the daemons do.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `addr`: the status and the whole response.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    (status, response)
}

/// `GET path` on `addr`, which must answer 200: the whole response.
pub async fn get_ok(addr: SocketAddr, path: &str) -> String {
    let (status, response) = get(addr, path).await;
    assert_eq!(status, 200, "GET {path}: {response}");
    response
}

/// Polls `what` (real time, the devnet's clock running) until it holds,
/// for at most a minute.
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..3_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// What an [`upstream`] saw: the head of the request it answered, once
/// it came.
#[derive(Clone, Default)]
pub struct SeenRequest(Arc<Mutex<Option<String>>>);

impl SeenRequest {
    /// The head of the request; panics if none came.
    pub fn head(&self) -> String {
        self.0
            .lock()
            .unwrap()
            .clone()
            .expect("the upstream was called")
    }

    /// The credentials of the request's `Authorization: Bearer` header,
    /// if it had one (the header's name and scheme in any case).
    pub fn bearer(&self) -> Option<String> {
        self.head().split("\r\n").find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let (scheme, token) = value.trim().split_once(' ')?;
            (name.eq_ignore_ascii_case("authorization") && scheme.eq_ignore_ascii_case("bearer"))
                .then(|| token.trim().to_string())
        })
    }
}

/// An upstream on 127.0.0.1 answering one request with `200 ok`, and what
/// it saw of that request: what a service's outgoing request carried.
pub async fn upstream() -> (SocketAddr, SeenRequest) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = SeenRequest::default();
    let head = seen.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        *head.0.lock().unwrap() = Some(String::from_utf8_lossy(&buf).into_owned());
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await;
    });
    (addr, seen)
}
