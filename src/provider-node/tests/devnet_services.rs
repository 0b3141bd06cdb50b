//! A service lease end to end on the devnet: the real ledger, registry,
//! escrow and matcher `.wasm` files, a provider daemon running the lease's
//! replica (the `hello-service` component) behind its ingress on
//! 127.0.0.1, and the matcher probing that replica's health path by
//! outcall (the devnet makes the GET). The slot is acknowledged with the
//! replica's endpoint, heartbeated and probed healthy, paid per interval;
//! when the owner cancels the lease the replica stops.
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
use provider_node::service::{IngressSettings, ServiceHost, ServiceHostConfig};
use test_world::{DaemonSetup, World, one_slot_offer, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PRICE: Tokens = 100_000;
const INTERVAL: u64 = 20;

fn buyer() -> Principal {
    market_fixture::principal(0xB1)
}

fn component(name: &str) -> Vec<u8> {
    let path = market_artifacts::workload_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "component {} is missing ({e}); build the workloads first with scripts/build-workloads.sh",
            path.display()
        )
    })
}

/// `GET path` on `addr`: the status and the whole response.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
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

/// Polls `what` (real time, the devnet's clock running) until it holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..3_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_lease_runs_on_the_daemon_and_passes_the_matchers_probes() {
    let w = World::deploy(
        Settings {
            grace_secs: 10,
            ..Settings::default()
        },
        buyer(),
    );
    w.net.mint(buyer(), 100 * ICP).unwrap();
    w.net.deposit(buyer(), 50 * ICP).unwrap();
    w.onboard(
        provider(1),
        node(1),
        &one_slot_offer(64, PRICE, w.ids.ledger),
    );
    let sha = w.upload_wasm(component("hello-service")).await;

    // The node's ingress, its public URL its own address (the devnet's
    // outcalls speak plain http).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let host = ServiceHost::new(
        ServiceHostConfig {
            max_instances: 16,
            max_memory_bytes: 64 << 20,
            pooling: false,
            public_base_url: Some(format!("http://{addr}")),
            ..ServiceHostConfig::default()
        },
        provider_node::service::ServiceMetrics::default(),
    )
    .unwrap();
    tokio::spawn(provider_node::service::serve(
        host.clone(),
        listener,
        IngressSettings::default(),
        std::future::pending(),
    ));

    let reserved: Result<u64, MatcherError> = w
        .net
        .update(
            w.ids.matcher,
            buyer(),
            "reserve",
            &ReservationSpec {
                slots: 1,
                memory_mib: 32,
                fuel_per_interval: 1_000_000_000,
                interval_secs: INTERVAL,
                intervals: 50,
                max_price_per_interval: 2 * PRICE,
                ledger: w.ids.ledger,
                min_provider_stake: 0,
                max_rematches: 1,
                delegates: vec![],
                service: Some(ServiceSpec {
                    component: ModuleSource::Stored { sha256: sha },
                    env: vec![("GREETING".into(), "leased".into())],
                    allowed_hosts: vec![],
                    health_path: "/healthz".into(),
                    callback: None,
                    limits: ServiceLimits {
                        fuel_per_request: 200_000_000,
                        timeout_ms: 5_000,
                        max_concurrent: 8,
                        max_body_bytes: 64 * 1024,
                    },
                }),
            },
        )
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

    let dir = tempfile::tempdir().unwrap();
    let (daemon, metrics) = test_world::daemon(
        MarketClient::new(w.net.transport(node(1)), w.ids),
        DaemonSetup {
            provider: provider(1),
            state_dir: dir.path(),
            shutdown_grace: Duration::from_secs(5),
            max_job_time: Duration::from_secs(60),
        },
    );
    let (stop, task) = spawn(daemon.with_services(host.clone()));
    w.start_clock();

    // Acknowledged with the replica's endpoint, probed healthy, paid.
    let endpoint = format!("http://{addr}/{rid}/");
    until("the replica's endpoint is recorded", || {
        service().replicas[0].endpoint.as_deref() == Some(&endpoint)
    })
    .await;
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
    assert!(body.contains("leased"), "{body}");
    assert_eq!(metrics.replicas_started.get(), 1);

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

    let _ = stop.send(());
    let summary = task.await.unwrap();
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
    let audit = w.audit();
    assert_eq!(audit.slashes, 0, "nobody was slashed");
}
