//! A service lease end to end on the devnet: the real ledger, registry,
//! escrow and matcher `.wasm` files, a provider daemon running the lease's
//! replica (the `hello-service` component) behind its ingress on
//! 127.0.0.1, and the matcher probing that replica's health path by
//! outcall (the devnet makes the GET). The slot is acknowledged with the
//! replica's endpoint, heartbeated and probed healthy, paid per interval;
//! when the owner cancels the lease the replica stops. A TCP service's
//! lease (`tcp-relay`) runs the same way on a port of the node's range,
//! its clients relaying lines, probed through the node's ingress.
//!
//! Needs `scripts/build-canisters.sh` and `scripts/build-workloads.sh`.

use std::net::SocketAddr;
use std::time::Duration;

use candid::Principal;
use market_api::Tokens;
use market_api::matcher::{
    CancelReservationArgs, MatcherError, ModuleSource, Reservation, ReservationSpec,
    ReservationStatus, ServiceLimits, ServiceSpec, ServiceView,
};
use market_client::MarketClient;
use market_fixture::{ICP, Settings, node, provider};
use provider_node::daemon::replica::TcpServing;
use provider_node::service::{IngressSettings, ServiceHost, ServiceHostConfig, TcpServiceHost};
use test_world::http::{get, until};
use test_world::{DaemonSetup, World, one_slot_offer, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PRICE: Tokens = 100_000;
const INTERVAL: u64 = 20;

fn buyer() -> Principal {
    market_fixture::principal(0xB1)
}

fn component(name: &str) -> Vec<u8> {
    market_artifacts::workload(name)
}

/// The marketplace on the devnet, a 10 s grace, the buyer calling.
fn world() -> World {
    World::deploy(
        Settings {
            grace_secs: 10,
            ..Settings::default()
        },
        buyer(),
    )
}

/// [`world`] with the buyer's 50 ICP deposited and provider 1 offering
/// one slot at [`PRICE`].
fn one_provider_world() -> World {
    let w = world();
    w.net.mint(buyer(), 100 * ICP).unwrap();
    w.net.deposit(buyer(), 50 * ICP).unwrap();
    w.onboard(
        provider(1),
        node(1),
        &one_slot_offer(64, PRICE, w.ids.ledger),
    );
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_lease_runs_on_the_daemon_and_passes_the_matchers_probes() {
    let w = one_provider_world();
    let sha = w.upload_wasm(component("hello-service")).await;

    // The node's ingress, its public URL its own address (the devnet's
    // outcalls speak plain http), and its daemon.
    let cache = tempfile::tempdir().unwrap();
    let node1 = start_node(&w, 1, cache.path()).await;
    let (addr, host) = (node1.addr, node1.host.clone());

    let mut spec = hello_lease(sha, 1, 50);
    spec.ledger = w.ids.ledger;
    let reserved: Result<u64, MatcherError> = w
        .net
        .update(w.ids.matcher, buyer(), "reserve", &spec)
        .unwrap();
    let rid = reserved.unwrap();
    let service = || -> ServiceView {
        w.net
            .query::<_, Option<ServiceView>>(w.ids.matcher, "get_service", &rid)
            .unwrap()
            .expect("the lease's service")
    };
    let reservation = || -> Reservation {
        w.net
            .query::<_, Option<Reservation>>(w.ids.matcher, "get_reservation", &rid)
            .unwrap()
            .unwrap()
    };
    assert_eq!(service().replicas[0].provider, Some(provider(1)));

    // Acknowledged with the replica's endpoint (before the clock runs:
    // compiling the component takes longer than the fast clock's
    // acknowledgement deadline on a loaded machine), probed healthy, paid.
    let endpoint = format!("http://{addr}/{rid}/");
    until("the replica's endpoint is recorded", || {
        service().replicas[0].endpoint.as_deref() == Some(&endpoint)
    })
    .await;
    w.start_clock();
    until("two healthy probes and two paid intervals", || {
        let h = service().replicas[0].health.clone();
        h.probes >= 2 && reservation().slots[0].intervals_paid >= 2
    })
    .await;
    let replica = service().replicas.remove(0);
    assert_eq!(replica.health.last_ok, Some(true), "{replica:?}");
    assert_eq!(replica.health.consecutive_failures, 0, "{replica:?}");
    assert_eq!(replica.rematches, 0);
    let (status, body) = get(addr, &format!("/{rid}/env/GREETING")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("from a lease"), "{body}");
    assert_eq!(node1.metrics.replicas_started.get(), 1);

    // The owner cancels the lease: the slot ends and its replica stops.
    let cancelled: Result<(), MatcherError> = w
        .net
        .update(
            w.ids.matcher,
            buyer(),
            "cancel_reservation",
            &CancelReservationArgs { reservation: rid },
        )
        .unwrap();
    cancelled.unwrap();
    assert_eq!(reservation().status, ReservationStatus::Cancelled);
    until("the replica stops", || host.list().is_empty()).await;
    let (status, body) = get(addr, &format!("/{rid}/healthz")).await;
    assert_eq!(status, 404, "{body}");

    let _ = node1.stop.send(());
    let summary = node1.task.await.unwrap();
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
    let audit = w.audit();
    assert_eq!(audit.slashes, 0, "nobody was slashed");
}

/// What the example client canister keeps of a replica (its
/// `service_endpoints` query).
#[derive(candid::CandidType, serde::Deserialize, Debug)]
struct ReplicaEndpoint {
    notice: market_api::matcher::ServiceNotice,
    notices: u64,
    #[allow(dead_code)]
    received_at_ns: u64,
}

/// Sends `GET path` and reads the answer to its end (or until the
/// connection is cut), keeping only the status and counting the bytes.
async fn attack(addr: SocketAddr, path: String) -> (u16, u64) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    let status = std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        bytes += n as u64;
    }
    (status, bytes)
}

/// A provider's node: its daemon, its service host and ingress on
/// 127.0.0.1, and the switch that takes the ingress down.
struct Node {
    addr: SocketAddr,
    host: ServiceHost,
    /// Its TCP services' host, if it serves them.
    tcp: Option<TcpServiceHost>,
    ingress_down: Option<tokio::sync::oneshot::Sender<()>>,
    metrics: provider_node::daemon::metrics::Metrics,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<provider_node::daemon::Summary>,
    _dir: tempfile::TempDir,
}

async fn start_node(w: &World, n: u8, cache: &std::path::Path) -> Node {
    start_node_with(w, n, cache, None).await
}

/// A node as [`start_node`] makes it, serving TCP services on `tcp_port`
/// (a range of one port) if given.
async fn start_node_with(w: &World, n: u8, cache: &std::path::Path, tcp_port: Option<u16>) -> Node {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let host = ServiceHost::new(
        ServiceHostConfig {
            max_instances: 16,
            max_memory_bytes: 64 << 20,
            pooling: false,
            public_base_url: Some(format!("http://{addr}")),
            cache_dir: Some(cache.to_path_buf()),
            ..ServiceHostConfig::default()
        },
        provider_node::service::ServiceMetrics::default(),
    )
    .unwrap();
    let tcp = tcp_port.map(|_| TcpServiceHost::new(host.clone()).unwrap());
    let (down, down_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(provider_node::service::serve(
        host.clone(),
        listener,
        IngressSettings {
            tcp_services: tcp.clone(),
            ..IngressSettings::default()
        },
        async {
            let _ = down_rx.await;
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let (daemon, metrics) = test_world::daemon(
        MarketClient::new(w.net.transport(node(n)), w.ids),
        DaemonSetup {
            provider: provider(n),
            state_dir: dir.path(),
            shutdown_grace: Duration::from_secs(5),
            max_job_time: Duration::from_secs(60),
        },
    );
    let mut daemon = daemon.with_services(host.clone());
    if let (Some(tcp), Some(port)) = (&tcp, tcp_port) {
        let serving = TcpServing {
            host: tcp.clone(),
            listen: std::net::Ipv4Addr::LOCALHOST.into(),
            public_host: "127.0.0.1".into(),
        };
        daemon = daemon.with_tcp_services(serving, port..=port);
    }
    let (stop, task) = spawn(daemon);
    Node {
        addr,
        host,
        tcp,
        ingress_down: Some(down),
        metrics,
        stop,
        task,
        _dir: dir,
    }
}

fn hello_lease(sha: [u8; 32], replicas: u32, intervals: u32) -> ReservationSpec {
    ReservationSpec {
        currency: None,
        slots: replicas,
        memory_mib: 32,
        fuel_per_interval: 1_000_000_000,
        interval_secs: INTERVAL,
        intervals,
        max_price_per_interval: 4 * PRICE,
        ledger: Principal::anonymous(),
        min_provider_stake: 0,
        max_rematches: 2,
        delegates: vec![],
        service: Some(ServiceSpec {
            sealed: None,
            component: ModuleSource::Stored { sha256: sha },
            env: vec![("GREETING".into(), "from a lease".into())],
            allowed_hosts: vec![],
            health_path: "/healthz".into(),
            callback: None,
            limits: ServiceLimits {
                fuel_per_request: 200_000_000,
                timeout_ms: 2_000,
                max_concurrent: 8,
                max_body_bytes: 64 * 1024,
            },
            tcp: None,
        }),
    }
}

/// The whole story of a service lease with failover: a dapp's canister
/// leases two replicas, each lands on its own provider and answers over
/// HTTP; a hostile service on one of those nodes is attacked without
/// harming the replica beside it; one provider's ingress goes down while its
/// daemon keeps heartbeating, so only the matcher's probes can tell: they
/// fail, the provider is slashed, the replica moves to a third provider,
/// whose endpoint answers and reaches the canister by callback; the lease
/// runs out and settles, and every token is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_node_stops_answering_is_slashed_and_moves_to_another_provider() {
    use market_api::matcher::MatcherEvent;

    let w = world();
    // The dapp's canister owns the lease; its controller is the buyer.
    let client = w.net.deploy_example_client(buyer()).unwrap();
    w.net.mint(client, 50 * ICP).unwrap();
    let funded: Result<candid::Nat, String> = w
        .net
        .update(client, buyer(), "fund", &candid::Nat::from(20 * ICP))
        .unwrap();
    funded.unwrap();
    w.net.mint(buyer(), 10 * ICP).unwrap();
    w.net.deposit(buyer(), 5 * ICP).unwrap();

    // Providers 1 and 2 are cheapest (2 has room for a second service);
    // provider 3 is the spare.
    w.onboard(
        provider(1),
        node(1),
        &one_slot_offer(64, PRICE, w.ids.ledger),
    );
    let mut two = one_slot_offer(64, PRICE + 1, w.ids.ledger);
    two.slots = 2;
    w.onboard(provider(2), node(2), &two);
    w.onboard(
        provider(3),
        node(3),
        &one_slot_offer(64, 3 * PRICE, w.ids.ledger),
    );
    let hello = w.upload_wasm(component("hello-service")).await;
    let hostile = w.upload_wasm(component("hostile-service")).await;

    // The nodes share a cache of compiled components, so a replica moved
    // to another node starts within the devnet's fast clock's deadline.
    let cache = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for n in 1..=3 {
        nodes.push(start_node(&w, n, cache.path()).await);
    }
    let mut spec = hello_lease(hello, 2, 40);
    spec.ledger = w.ids.ledger;
    let leased: Result<u64, String> = w
        .net
        .update(client, buyer(), "lease_service", &spec)
        .unwrap();
    let rid = leased.unwrap();
    let service = || -> ServiceView {
        w.net
            .query::<_, Option<ServiceView>>(w.ids.matcher, "get_service", &rid)
            .unwrap()
            .expect("the lease's service")
    };
    let holders: Vec<_> = service().replicas.iter().map(|r| r.provider).collect();
    assert_eq!(holders, vec![Some(provider(1)), Some(provider(2))]);

    // A hostile service on provider 2's node, leased by a person.
    let mut hostile_spec = hello_lease(hostile, 1, 40);
    hostile_spec.ledger = w.ids.ledger;
    let hid: Result<u64, MatcherError> = w
        .net
        .update(w.ids.matcher, buyer(), "reserve", &hostile_spec)
        .unwrap();
    let hid = hid.unwrap();

    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let endpoint = |n: usize| format!("http://{}/{rid}/", addrs[n]);
    until("both replicas answer at their endpoints", || {
        let v = service();
        v.replicas[0].endpoint.as_deref() == Some(&endpoint(0))
            && v.replicas[1].endpoint.as_deref() == Some(&endpoint(1))
    })
    .await;
    // The clock runs once the replicas serve (compiling a component takes
    // longer than the fast clock's acknowledgement deadline).
    until("the hostile service runs on provider 2's node", || {
        nodes[1].host.list().iter().any(|s| s.id == hid)
    })
    .await;
    w.start_clock();
    for node in &nodes[..2] {
        let (status, body) = get(node.addr, &format!("/{rid}/env/GREETING")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("from a lease"), "{body}");
        let (status, body) = get(node.addr, &format!("/{rid}/json?replica=1")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""query":"replica=1""#), "{body}");
    }

    // The hostile service's worst requests, all at once, beside the replica
    // on provider 2's node: each fails on its own, the replica answers.
    let two_addr = nodes[1].addr;
    let attacks: Vec<_> = ["/loop", "/alloc", "/flood", "/sleep"]
        .into_iter()
        .map(|p| tokio::spawn(attack(two_addr, format!("/{hid}{p}"))))
        .collect();
    let started = std::time::Instant::now();
    let (status, body) = get(two_addr, &format!("/{rid}/healthz")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the replica answered in {:?} while its neighbour was attacked",
        started.elapsed()
    );
    for a in attacks {
        let (status, bytes) = a.await.unwrap();
        // Out of fuel or memory: 500; out of time: 504; the flood starts
        // as a 200 and is cut off at the request's deadline.
        assert!(
            status == 500 || status == 504 || (status == 200 && bytes < 64 << 20),
            "{status} after {bytes} bytes"
        );
    }
    let (status, _) = get(two_addr, &format!("/{hid}/healthz")).await;
    assert_eq!(status, 200, "the hostile service itself still serves");

    // Provider 1's ingress goes down; its daemon goes on heartbeating.
    let _ = nodes[0].ingress_down.take().unwrap().send(());
    until("the replica moved to provider 3 and answers there", || {
        let r = &service().replicas[0];
        r.provider == Some(provider(3)) && r.endpoint.as_deref() == Some(&endpoint(2))
    })
    .await;
    let events = w.matcher_events();
    let failed_probes = events
        .iter()
        .filter(|e| {
            matches!(e, MatcherEvent::ProbeFailed { reservation, provider: p, .. }
                if *reservation == rid && *p == provider(1))
        })
        .count();
    assert!(failed_probes >= 3, "{failed_probes} failed probes");
    assert!(
        events.iter().any(|e| matches!(e,
            MatcherEvent::DeadlineMissed { provider: p, slashed, .. }
                if *p == provider(1) && *slashed > 0)),
        "provider 1 was slashed"
    );
    assert!(events.iter().any(|e| matches!(e,
        MatcherEvent::ServiceEndpoint { reservation, slot: 0, endpoint: None, .. }
            if *reservation == rid)));
    let (status, body) = get(nodes[2].addr, &format!("/{rid}/env/GREETING")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(service().replicas[0].rematches, 1);
    // Provider 1's node stopped the replica it no longer holds.
    until("provider 1's node stops its replica", || {
        nodes[0].host.list().is_empty()
    })
    .await;

    // The canister was told of each endpoint by callback.
    let told =
        || -> Vec<ReplicaEndpoint> { w.net.query(client, "service_endpoints", &rid).unwrap() };
    until("the canister learns the new endpoint", || {
        told()
            .iter()
            .any(|e| e.notice.slot == 0 && e.notice.endpoint.as_deref() == Some(&endpoint(2)))
    })
    .await;
    let told = told();
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(
        told[1].notice.endpoint.as_deref(),
        Some(endpoint(1).as_str())
    );
    // Slot 0: its first endpoint, its loss, its new endpoint.
    assert!(told[0].notices >= 3, "{told:?}");

    // The leases run out and settle; every token is accounted for.
    until("both leases end", || {
        let r = |id: u64| -> Reservation {
            w.net
                .query::<_, Option<Reservation>>(w.ids.matcher, "get_reservation", &id)
                .unwrap()
                .unwrap()
        };
        r(rid).status == ReservationStatus::Ended && r(hid).status == ReservationStatus::Ended
    })
    .await;
    until("every replica stops", || {
        nodes.iter().all(|n| n.host.list().is_empty())
    })
    .await;
    for node in nodes {
        let _ = node.stop.send(());
        node.task.await.unwrap();
    }
    w.stop_clock();
    let audit = w.audit();
    assert!(audit.slashes >= 1, "{audit:?}");
}

/// A port on 127.0.0.1 free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A line-reading client of a TCP service.
struct LineClient {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl LineClient {
    /// Connects and waits until the relay echoes `<name> joined`: the
    /// client is then one of the relay's.
    async fn joined(addr: &str, name: &str) -> Self {
        let (read, writer) = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap()
            .into_split();
        let mut c = Self {
            reader: tokio::io::BufReader::new(read),
            writer,
        };
        c.send(&format!("{name} joined")).await;
        assert_eq!(c.line().await, format!("{name} joined"));
        c
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn line(&mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .unwrap();
        line.trim_end().to_string()
    }
}

/// A person leases one replica of the TCP relay: the provider's node runs
/// it on the one port of its range and acknowledges the slot with the
/// endpoint and `127.0.0.1:<port>`, which `get_service` shows; two clients
/// there relay a line; the matcher's probes of the endpoint (answered by
/// the node's ingress from the TCP port) are healthy; the lease runs out,
/// the relay stops, its port closes, and every token is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tcp_service_lease_relays_between_clients_and_passes_the_matchers_probes() {
    use market_api::matcher::{MatcherEvent, TcpSpec};

    let w = one_provider_world();
    let sha = w.upload_wasm(component("tcp-relay")).await;
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let node1 = start_node_with(&w, 1, cache.path(), Some(port)).await;
    let tcp_host = node1.tcp.clone().unwrap();

    let tcp = TcpSpec {
        max_connections: 8,
        idle_timeout_secs: 60,
        ..TcpSpec::default()
    };
    let mut spec = hello_lease(sha, 1, 15);
    let service_spec = spec.service.as_mut().unwrap();
    service_spec.env = vec![];
    service_spec.tcp = Some(tcp);
    spec.ledger = w.ids.ledger;
    let reserved: Result<u64, MatcherError> = w
        .net
        .update(w.ids.matcher, buyer(), "reserve", &spec)
        .unwrap();
    let rid = reserved.unwrap();
    let service = || -> ServiceView {
        w.net
            .query::<_, Option<ServiceView>>(w.ids.matcher, "get_service", &rid)
            .unwrap()
            .expect("the lease's service")
    };
    assert_eq!(service().tcp, Some(tcp));

    // Acknowledged with the endpoint and the TCP address (the clock runs
    // once the replica serves, as for an HTTP service).
    let endpoint = format!("http://{}/{rid}/", node1.addr);
    let address = format!("127.0.0.1:{port}");
    until("the replica's TCP address is recorded", || {
        let r = &service().replicas[0];
        r.tcp_address.as_deref() == Some(&address) && r.endpoint.as_deref() == Some(&endpoint)
    })
    .await;
    w.start_clock();

    // Two clients of the relay: a line from one reaches the other.
    let mut a = LineClient::joined(&address, "a").await;
    let mut b = LineClient::joined(&address, "b").await;
    assert_eq!(a.line().await, "b joined");
    a.send("hello over the lease").await;
    assert_eq!(b.line().await, "hello over the lease");
    assert_eq!(a.line().await, "hello over the lease");
    drop((a, b));

    until("two healthy probes", || {
        service().replicas[0].health.probes >= 2
    })
    .await;
    let replica = service().replicas.remove(0);
    assert_eq!(replica.health.last_ok, Some(true), "{replica:?}");
    assert_eq!(replica.health.consecutive_failures, 0, "{replica:?}");
    assert_eq!(replica.rematches, 0);
    assert!(w.matcher_events().iter().any(|e| matches!(e,
        MatcherEvent::ServiceEndpoint { reservation, slot: 0, tcp_address: Some(a), .. }
            if *reservation == rid && *a == address)));

    // The lease runs out and settles; the relay stops and its port closes.
    until("the lease ends", || {
        w.net
            .query::<_, Option<Reservation>>(w.ids.matcher, "get_reservation", &rid)
            .unwrap()
            .unwrap()
            .status
            == ReservationStatus::Ended
    })
    .await;
    assert_eq!(service().replicas[0].tcp_address, None);
    until("the relay stops", || tcp_host.list().is_empty()).await;
    assert!(tokio::net::TcpStream::connect(&address).await.is_err());
    let (status, body) = get(node1.addr, &format!("/{rid}/healthz")).await;
    assert_eq!(status, 404, "{body}");

    let _ = node1.stop.send(());
    let summary = node1.task.await.unwrap();
    w.stop_clock();
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
    let audit = w.audit();
    assert_eq!(audit.slashes, 0, "nobody was slashed: {audit:?}");
}
