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
use market_api::matcher::ReservationStatus;
use market_fixture::{ICP, node, provider};
use test_world::http::{get, get_ok, until};
use test_world::node::{Node, NodeSetup};
use test_world::tcp::{LineClient, free_port};
use test_world::{World, one_slot_offer, service_lease};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PRICE: Tokens = 100_000;

fn buyer() -> Principal {
    market_fixture::principal(0xB1)
}

/// The marketplace on the devnet, a 10 s grace, the buyer calling.
fn world() -> World {
    World::deploy(test_world::settings(), buyer())
}

/// [`world`] with the buyer's 50 ICP deposited and provider 1 offering
/// one slot at [`PRICE`].
fn one_provider_world() -> World {
    let w = World::funded(test_world::settings(), buyer());
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
    let sha = w.upload_workload("hello-service").await;

    // The node's ingress, its public URL its own address (the devnet's
    // outcalls speak plain http), and its daemon.
    let cache = tempfile::tempdir().unwrap();
    let node1 = Node::start(&w, 1, NodeSetup::new(cache.path())).await;
    let (addr, host) = (node1.addr, node1.host.clone());

    let rid = w.reserve(&service_lease(w.ids.ledger, sha, 1, 50, 4 * PRICE));
    let service = || w.service(rid);
    let reservation = || w.reservation(rid);
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
    let body = get_ok(addr, &format!("/{rid}/env/GREETING")).await;
    assert!(body.contains("from a lease"), "{body}");
    assert_eq!(node1.metrics.replicas_started.get(), 1);

    // The owner cancels the lease: the slot ends and its replica stops.
    w.cancel_reservation(rid);
    assert_eq!(reservation().status, ReservationStatus::Cancelled);
    until("the replica stops", || host.list().is_empty()).await;
    let (status, body) = get(addr, &format!("/{rid}/healthz")).await;
    assert_eq!(status, 404, "{body}");

    let summary = node1.shut_down().await;
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
    let hello = w.upload_workload("hello-service").await;
    let hostile = w.upload_workload("hostile-service").await;

    // The nodes share a cache of compiled components, so a replica moved
    // to another node starts within the devnet's fast clock's deadline.
    let cache = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for n in 1..=3 {
        nodes.push(Node::start(&w, n, NodeSetup::new(cache.path())).await);
    }
    let spec = service_lease(w.ids.ledger, hello, 2, 40, 4 * PRICE);
    let leased: Result<u64, String> = w
        .net
        .update(client, buyer(), "lease_service", &spec)
        .unwrap();
    let rid = leased.unwrap();
    let service = || w.service(rid);
    let holders: Vec<_> = service().replicas.iter().map(|r| r.provider).collect();
    assert_eq!(holders, vec![Some(provider(1)), Some(provider(2))]);

    // A hostile service on provider 2's node, leased by a person.
    let hid = w.reserve(&service_lease(w.ids.ledger, hostile, 1, 40, 4 * PRICE));

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
        let body = get_ok(node.addr, &format!("/{rid}/env/GREETING")).await;
        assert!(body.contains("from a lease"), "{body}");
        let body = get_ok(node.addr, &format!("/{rid}/json?replica=1")).await;
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
    get_ok(two_addr, &format!("/{rid}/healthz")).await;
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
    get_ok(nodes[2].addr, &format!("/{rid}/env/GREETING")).await;
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
        w.reservation(rid).status == ReservationStatus::Ended
            && w.reservation(hid).status == ReservationStatus::Ended
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
    let sha = w.upload_workload("tcp-relay").await;
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let node1 = Node::start(
        &w,
        1,
        NodeSetup {
            tcp_port: Some(port),
            ..NodeSetup::new(cache.path())
        },
    )
    .await;
    let tcp_host = node1.tcp.clone().unwrap();

    let tcp = TcpSpec {
        max_connections: 8,
        idle_timeout_secs: 60,
        ..TcpSpec::default()
    };
    let mut spec = service_lease(w.ids.ledger, sha, 1, 15, 4 * PRICE);
    let service_spec = spec.service.as_mut().unwrap();
    service_spec.env = vec![];
    service_spec.tcp = Some(tcp);
    let rid = w.reserve(&spec);
    let service = || w.service(rid);
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
        w.reservation(rid).status == ReservationStatus::Ended
    })
    .await;
    assert_eq!(service().replicas[0].tcp_address, None);
    until("the relay stops", || tcp_host.list().is_empty()).await;
    assert!(tokio::net::TcpStream::connect(&address).await.is_err());
    let (status, body) = get(node1.addr, &format!("/{rid}/healthz")).await;
    assert_eq!(status, 404, "{body}");

    let summary = node1.shut_down().await;
    w.stop_clock();
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
    let audit = w.audit();
    assert_eq!(audit.slashes, 0, "nobody was slashed: {audit:?}");
}
