//! The public side of a TCP service: the host, not the component, listens
//! on the port the provider assigned, and relays each client connection to
//! the instance's internal listener on loopback.
//!
//! Why a relay in front rather than letting the component listen on the
//! public port itself: `wasi:sockets` gives the host one look at a
//! connection (wasmtime's address check at accept) and no hold on it
//! afterwards, so it could neither know when a connection closes (to count
//! connections at once) nor cut one that is idle or too fast. Owning the
//! public socket, the host enforces every cap on connections it holds,
//! whatever the component does:
//!
//! - **connections at once**: a semaphore of `max_connections` permits; a
//!   client past the cap is closed at once, before the component sees it;
//! - **bytes**: each direction of each connection is held to
//!   `max_bytes_per_second` (a token bucket with one second of burst): a
//!   fast sender is slowed by TCP back-pressure, not cut;
//! - **idle time**: a connection with no byte either way for
//!   `idle_timeout` is closed, both sides.
//!
//! The cost is one extra copy on loopback, and the component sees the
//! host's loopback address as its peer, not the client's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::TcpLimits;
use super::policy::IngressPeers;

/// Bytes read at once from either side.
const CHUNK: usize = 16 * 1024;
/// How long a client waits for an instance that is (re)starting.
const UPSTREAM_WAIT: Duration = Duration::from_secs(2);
/// Pause between attempts to reach a (re)starting instance.
const UPSTREAM_RETRY: Duration = Duration::from_millis(50);

/// Where an instance listens now (`None` between instances), and who may
/// connect to it: shared by the ingress and the instance's supervisor.
#[derive(Clone, Debug, Default)]
pub struct Upstream {
    addr: Arc<Mutex<Option<SocketAddr>>>,
    /// The ingress's connections, the only peers the instance accepts.
    pub peers: IngressPeers,
}

impl Upstream {
    /// Sets where the instance listens.
    pub fn set(&self, addr: Option<SocketAddr>) {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    fn get(&self) -> Option<SocketAddr> {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection to the instance, from a local address registered as an
    /// ingress peer (removed when the returned guard drops).
    async fn connect(&self) -> Option<(TcpStream, PeerGuard)> {
        let give_up = Instant::now() + UPSTREAM_WAIT;
        loop {
            if let Some(addr) = self.get()
                && let Some(connected) = self.connect_once(addr).await
            {
                return Some(connected);
            }
            if Instant::now() + UPSTREAM_RETRY > give_up {
                return None;
            }
            tokio::time::sleep(UPSTREAM_RETRY).await;
        }
    }

    async fn connect_once(&self, addr: SocketAddr) -> Option<(TcpStream, PeerGuard)> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .ok()?;
        let local = SocketAddr::new(addr.ip(), 0);
        socket.bind(local).ok()?;
        let local = socket.local_addr().ok()?;
        // Registered before the connect, so the instance's accept check
        // already knows it.
        self.peers.insert(local);
        let guard = PeerGuard {
            peers: self.peers.clone(),
            addr: local,
        };
        let stream = tokio::time::timeout(UPSTREAM_WAIT, socket.connect(addr))
            .await
            .ok()?
            .ok()?;
        Some((stream, guard))
    }
}

/// Unregisters an ingress connection's local address.
struct PeerGuard {
    peers: IngressPeers,
    addr: SocketAddr,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        self.peers.remove(&self.addr);
    }
}

/// Counters of one service's ingress.
#[derive(Debug, Default)]
pub struct IngressCounters {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted and relayed, in all.
    pub accepted: AtomicU64,
    /// Connections closed at once for the cap.
    pub refused: AtomicU64,
    /// Connections closed for idleness.
    pub idle_closed: AtomicU64,
}

/// Accepts clients on `listener` and relays each to `upstream` within
/// `limits`, until the future is dropped (which closes the listener and
/// every connection).
pub async fn serve(
    listener: TcpListener,
    upstream: Upstream,
    limits: TcpLimits,
    counters: Arc<IngressCounters>,
    id: u64,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (client, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: wait, don't spin.
                        tracing::warn!(service = id, error = %e, "tcp ingress accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(service = id, %peer, "tcp connection over the cap closed");
                    drop(client);
                    continue;
                };
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let upstream = upstream.clone();
                let counters = Arc::clone(&counters);
                connections.spawn(async move {
                    let _slot = slot;
                    counters.open.fetch_add(1, Ordering::Relaxed);
                    relay(client, &upstream, limits, &counters).await;
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Relays one client to the instance until both directions end or the
/// connection idles out.
async fn relay(
    client: TcpStream,
    upstream: &Upstream,
    limits: TcpLimits,
    counters: &IngressCounters,
) {
    let Some((server, _peer)) = upstream.connect().await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let started = Instant::now();
    let last = AtomicU64::new(0);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let rate = limits.max_bytes_per_second;
    let both = async {
        tokio::join!(
            pipe(client_read, server_write, rate, started, &last),
            pipe(server_read, client_write, rate, started, &last),
        )
    };
    tokio::select! {
        _ = both => {}
        () = idle(started, &last, limits.idle_timeout) => {
            counters.idle_closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Resolves once no byte has moved for `timeout` (`last` is the time of
/// the last byte, in milliseconds since `started`).
async fn idle(started: Instant, last: &AtomicU64, timeout: Duration) {
    loop {
        let at = started + Duration::from_millis(last.load(Ordering::Relaxed)) + timeout;
        if Instant::now() >= at {
            return;
        }
        tokio::time::sleep_until(at).await;
    }
}

/// Copies `from` to `to` at no more than `rate` bytes a second, recording
/// activity in `last`; shuts `to` down for writing at the end of `from`.
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    rate: u64,
    started: Instant,
    last: &AtomicU64,
) {
    let mut bucket = Bucket::new(rate);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        last.store(millis(now - started), Ordering::Relaxed);
        if let Some(until) = bucket.take(n as u64, now) {
            tokio::time::sleep_until(until).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        last.store(millis(Instant::now() - started), Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A token bucket of one second's worth of bytes, kept as the time at which
/// the bytes sent so far will have been paid for.
struct Bucket {
    rate: u64,
    paid_until: Option<Instant>,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            paid_until: None,
        }
    }

    /// Charges `bytes` sent at `now`; returns when sending may go on, if
    /// that is later than `now`.
    fn take(&mut self, bytes: u64, now: Instant) -> Option<Instant> {
        const BURST: Duration = Duration::from_secs(1);
        let floor = now.checked_sub(BURST).unwrap_or(now);
        let from = self.paid_until.map_or(floor, |t| t.max(floor));
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(self.rate);
        let cost = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        let until = from + cost;
        self.paid_until = Some(until);
        (until > now).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_second_of_burst_then_the_rate() {
        let now = Instant::now() + Duration::from_secs(10);
        let mut b = Bucket::new(1000);
        // A second's worth at once is free.
        assert_eq!(b.take(1000, now), None);
        // The next half second's worth waits half a second.
        assert_eq!(b.take(500, now), Some(now + Duration::from_millis(500)));
        // After a long pause, the burst is back but no more.
        let later = now + Duration::from_secs(60);
        assert_eq!(b.take(1000, later), None);
        assert_eq!(b.take(1, later), Some(later + Duration::from_millis(1)));
    }
}
