//! TCP services with the real test components (`tcp-relay`,
//! `tcp-hostile`): relaying between clients, the socket policy (bind,
//! listen, connect), the host's caps on connections, rate and idle time,
//! fuel with restarts, isolation between services, and stop.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use provider_node::service::{
    ServiceHost, ServiceHostConfig, ServiceMetrics, TcpLimits, TcpServiceHost, TcpServiceInfo,
    TcpServiceSettings,
};
use sha2::{Digest, Sha256};
use test_world::tcp::{LineClient, free_port};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

fn component(name: &str) -> (Vec<u8>, [u8; 32]) {
    let bytes = market_artifacts::workload(name);
    let hash = Sha256::digest(&bytes).into();
    (bytes, hash)
}

fn localhost() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

fn host(local_addresses: &[&str]) -> TcpServiceHost {
    let config = ServiceHostConfig {
        max_instances: 8,
        max_memory_bytes: 64 << 20,
        egress_local_addresses: local_addresses.iter().map(|a| a.parse().unwrap()).collect(),
        ..ServiceHostConfig::default()
    };
    TcpServiceHost::new(ServiceHost::new(config, ServiceMetrics::default()).unwrap()).unwrap()
}

fn settings(env: &[(&str, &str)], limits: TcpLimits) -> TcpServiceSettings {
    TcpServiceSettings {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        allowed_hosts: Vec::new(),
        port: 0,
        listen: localhost(),
        memory_bytes: 32 << 20,
        limits,
    }
}

fn limits() -> TcpLimits {
    TcpLimits {
        max_connections: 8,
        idle_timeout: Duration::from_secs(30),
        ..TcpLimits::default()
    }
}

async fn start(
    host: &TcpServiceHost,
    id: u64,
    name: &str,
    settings: TcpServiceSettings,
) -> SocketAddr {
    let (bytes, hash) = component(name);
    host.start(id, &bytes, &hash, settings).await.unwrap()
}

/// Polls `info` of service `id` until `done` holds.
async fn wait_for(
    host: &TcpServiceHost,
    id: u64,
    done: impl Fn(&TcpServiceInfo) -> bool,
) -> TcpServiceInfo {
    let give_up = Instant::now() + WAIT;
    loop {
        let info = host.info(id).expect("service is running");
        if done(&info) {
            return info;
        }
        assert!(Instant::now() < give_up, "not reached in time: {info:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The line `tcp-hostile` tells its clients.
async fn report(addr: SocketAddr) -> String {
    let mut c = LineClient::connect(addr).await;
    c.line().await
}

/// A server on 127.0.0.1 that greets each connection with `hello`; counts
/// connections.
async fn greeter() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = tx.send(());
            let _ = s.write_all(b"hello\n").await;
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_relay_lines_to_each_other() {
    let host = host(&[]);
    let addr = start(&host, 1, "tcp-relay", settings(&[], limits())).await;
    assert_eq!(addr.ip(), localhost());
    let mut a = LineClient::joined(addr, "a").await;
    let mut b = LineClient::joined(addr, "b").await;
    // The relay sends every line to everyone.
    assert_eq!(a.next_line().await.as_deref(), Some("b joined"));
    a.send("hi b").await;
    assert_eq!(b.next_line().await.as_deref(), Some("hi b"));
    assert_eq!(a.next_line().await.as_deref(), Some("hi b"));
    b.send("hi a").await;
    assert_eq!(a.next_line().await.as_deref(), Some("hi a"));
    assert_eq!(b.next_line().await.as_deref(), Some("hi a"));
    let info = host.info(1).unwrap();
    assert_eq!((info.running, info.starts, info.connections), (true, 1, 2));
}

/// The component is told to listen on `LISTEN`:`PORT` and may listen
/// nowhere else: not on another port, not on every interface, and a
/// lease's env can't move it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_another_port_or_every_interface_is_refused() {
    let host = host(&[]);
    let other = free_port();
    let target = format!("127.0.0.1:{other}");
    let addr = start(
        &host,
        1,
        "tcp-hostile",
        settings(
            &[
                ("MODE", "bind"),
                ("TARGET", &target),
                ("PORT", "1"),
                ("LISTEN", "0.0.0.0"),
            ],
            limits(),
        ),
    )
    .await;
    assert_eq!(
        report(addr).await,
        format!("bind {target}: refused: permission denied")
    );
    // Nothing listens there.
    assert!(TcpStream::connect(&target).await.is_err());

    for target in ["0.0.0.0:0", "0.0.0.0:7000", "[::]:0"] {
        let addr = start(
            &host,
            2,
            "tcp-hostile",
            settings(&[("MODE", "bind"), ("TARGET", target)], limits()),
        )
        .await;
        let line = report(addr).await;
        assert!(
            line.starts_with(&format!("bind {target}: refused: ")),
            "{line}"
        );
    }
}

/// Connections go only to public addresses of allowed hosts; a local
/// server is reached only when listed and explicitly opened (the
/// provider's test setting), which shows the refusals are the policy's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_loopback_or_private_addresses_are_refused() {
    let (server, mut greeted) = greeter().await;
    let target = server.to_string();
    let env = [("MODE", "connect"), ("TARGET", target.as_str())];

    // Not listed: refused, the server sees nothing.
    let strict = host(&[]);
    let addr = start(&strict, 1, "tcp-hostile", settings(&env, limits())).await;
    assert_eq!(
        report(addr).await,
        format!("connect {target}: refused: permission denied")
    );

    // Listed, but loopback: refused.
    let mut listed = settings(&env, limits());
    listed.allowed_hosts = vec!["localhost".into(), "127.0.0.1".into()];
    let addr = start(&strict, 2, "tcp-hostile", listed.clone()).await;
    assert_eq!(
        report(addr).await,
        format!("connect {target}: refused: permission denied")
    );

    // Private and metadata addresses, listed: refused.
    for private in ["10.0.0.1:80", "192.168.1.1:80", "169.254.169.254:80"] {
        let mut s = settings(&[("MODE", "connect"), ("TARGET", private)], limits());
        s.allowed_hosts = vec![private.split(':').next().unwrap().to_string()];
        let addr = start(&strict, 3, "tcp-hostile", s).await;
        assert_eq!(
            report(addr).await,
            format!("connect {private}: refused: permission denied")
        );
    }
    assert!(greeted.try_recv().is_err(), "the local server was reached");

    // Listed and opened as a local address: reached.
    let open = host(&["127.0.0.1", "::1"]);
    let addr = start(&open, 4, "tcp-hostile", listed).await;
    assert_eq!(report(addr).await, format!("connect {target}: ok: hello"));
    assert!(greeted.recv().await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed() {
    let host = host(&[]);
    let capped = TcpLimits {
        max_connections: 3,
        ..limits()
    };
    let addr = start(&host, 1, "tcp-relay", settings(&[], capped)).await;
    let mut clients: Vec<LineClient> = Vec::new();
    for name in ["a", "b", "c"] {
        let joined = LineClient::joined(addr, name).await;
        for earlier in &mut clients {
            assert_eq!(earlier.next_line().await, Some(format!("{name} joined")));
        }
        clients.push(joined);
    }
    let mut fourth = LineClient::connect(addr).await;
    fourth.closed().await;
    let info = host.info(1).unwrap();
    assert_eq!((info.connections, info.refused), (3, 1));
    // The others still relay.
    clients[0].send("still here").await;
    for c in &mut clients {
        assert_eq!(c.next_line().await.as_deref(), Some("still here"));
    }
    // A closed one frees its place.
    drop(clients.pop());
    wait_for(&host, 1, |i| i.connections == 2).await;
    LineClient::joined(addr, "d").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    let host = host(&[]);
    let idle = TcpLimits {
        idle_timeout: Duration::from_millis(600),
        ..limits()
    };
    let quiet_addr = start(&host, 1, "tcp-relay", settings(&[], idle)).await;
    let busy_addr = start(&host, 2, "tcp-relay", settings(&[], idle)).await;
    let mut quiet = LineClient::joined(quiet_addr, "quiet").await;
    let mut busy = LineClient::joined(busy_addr, "busy").await;
    let quiet_closed = tokio::spawn(async move { quiet.closed().await });
    // Busy for three timeouts: never silent for one.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1800) {
        busy.send("tick").await;
        assert_eq!(busy.next_line().await.as_deref(), Some("tick"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = quiet_closed.await.unwrap();
    assert!(
        waited >= Duration::from_millis(500),
        "closed after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1800),
        "closed after {waited:?}"
    );
    // Silent now: closed in its turn.
    let waited = busy.closed().await;
    assert!(
        waited >= Duration::from_millis(300),
        "closed after {waited:?}"
    );
    for id in [1, 2] {
        wait_for(&host, id, |i| i.connections == 0 && i.idle_closed == 1).await;
    }
}

/// Each direction of a connection is held to the rate: a burst of one
/// second's worth, then the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_sender_is_slowed_to_the_rate() {
    let host = host(&[]);
    let rate = TcpLimits {
        max_bytes_per_second: 64 * 1024,
        ..limits()
    };
    let addr = start(&host, 1, "tcp-relay", settings(&[], rate)).await;
    let LineClient { reader, writer } = LineClient::joined(addr, "fast").await;
    let line = "x".repeat(999);
    let lines = 192; // 192,000 bytes: a 65,536-byte burst, then ~1.93 s
    let started = Instant::now();
    let mut writer = writer;
    let send = tokio::spawn(async move {
        for _ in 0..lines {
            writer
                .write_all(format!("{line}\n").as_bytes())
                .await
                .unwrap();
        }
        writer
    });
    let mut c = LineClient {
        reader,
        writer: TcpStream::connect(addr).await.unwrap().into_split().1,
    };
    for _ in 0..lines {
        assert_eq!(c.next_line().await.map(|l| l.len()), Some(999));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1800), "192 KB took {took:?}");
    drop(send.await.unwrap());
}

/// An instance spinning without calling the host burns its fuel for the
/// interval, traps, and is restarted (again and again, with back-off);
/// another service on the same host keeps relaying meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_instance_is_stopped_and_restarted_and_others_keep_working() {
    let host = host(&[]);
    let relay = start(&host, 1, "tcp-relay", settings(&[], limits())).await;
    let spin = TcpLimits {
        fuel_per_interval: 50_000_000,
        fuel_interval: Duration::from_secs(1),
        ..limits()
    };
    start(&host, 2, "tcp-hostile", settings(&[("MODE", "spin")], spin)).await;
    let info = wait_for(&host, 2, |i| i.starts >= 3).await;
    assert_eq!(info.last_exit.as_deref(), Some("out of fuel"));
    let mut c = LineClient::joined(relay, "neighbour").await;
    for i in 0..5 {
        c.send(&format!("ping {i}")).await;
        assert_eq!(c.next_line().await, Some(format!("ping {i}")));
    }
    let relay_info = host.info(1).unwrap();
    assert_eq!((relay_info.starts, relay_info.last_exit), (1, None));
}

/// A well-behaved instance is refilled every interval: it burns several
/// intervals' worth of fuel, never more than one interval's at a time,
/// and keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_is_refilled_each_interval() {
    let host = host(&[]);
    let budget = 5_000_000;
    let small = TcpLimits {
        fuel_per_interval: budget,
        fuel_interval: Duration::from_millis(100),
        ..limits()
    };
    let addr = start(&host, 1, "tcp-relay", settings(&[], small)).await;
    let mut c = LineClient::joined(addr, "steady").await;
    // A 16 kB line costs the relay under 1 M units: at most three of them
    // per interval, but three intervals' worth in a few seconds.
    let line = "y".repeat(16_000);
    let give_up = Instant::now() + WAIT;
    while host.info(1).unwrap().fuel_used < 3 * budget {
        assert!(Instant::now() < give_up, "{:?}", host.info(1));
        c.send(&line).await;
        assert_eq!(
            c.next_line().await.map(|l| l.len()),
            Some(16_000),
            "{:?}",
            host.info(1)
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let info = host.info(1).unwrap();
    assert_eq!((info.starts, info.last_exit), (1, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_the_port_and_the_connections() {
    let host = host(&[]);
    let addr = start(&host, 1, "tcp-relay", settings(&[], limits())).await;
    let mut c = LineClient::joined(addr, "a").await;
    assert!(host.stop(1).await);
    assert!(!host.stop(1).await);
    assert!(host.info(1).is_none());
    c.closed().await;
    assert!(TcpStream::connect(addr).await.is_err());
    // The port is free again, for this host or anyone.
    let mut again = settings(&[], limits());
    again.port = addr.port();
    let same = start(&host, 1, "tcp-relay", again).await;
    assert_eq!(same, addr);
    LineClient::joined(addr, "b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_components_and_limits_do_not_start() {
    let host = host(&[]);
    let (bytes, hash) = component("tcp-relay");
    let mut wrong = hash;
    wrong[0] ^= 1;
    assert!(
        host.start(1, &bytes, &wrong, settings(&[], limits()))
            .await
            .is_err()
    );
    // An HTTP component is not a command.
    let (http, http_hash) = component("hello-service");
    assert!(
        host.start(1, &http, &http_hash, settings(&[], limits()))
            .await
            .is_err()
    );
    let zero = TcpLimits {
        max_connections: 0,
        ..limits()
    };
    assert!(
        host.start(1, &bytes, &hash, settings(&[], zero))
            .await
            .is_err()
    );
    assert!(host.list().is_empty());
}
