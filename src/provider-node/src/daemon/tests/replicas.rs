//! Service leases: a reserved slot of a lease with a service runs a replica
//! of its component behind the node's ingress (bound on 127.0.0.1 here),
//! acknowledged and heartbeated with the replica's endpoint; slots the node
//! can't serve are handed back.

use std::net::SocketAddr;

use test_world::http::{get, get_ok, upstream};
use test_world::tcp::{LineClient, free_port};

use super::*;
use crate::service::{IngressSettings, ServiceHostConfig, ServiceMetrics, TcpServiceHost};

/// The lease the tests' slots belong to.
const LEASE: ReservationId = 40;

/// Held by each test that runs a service host: compiling a component is
/// the heaviest thing these tests do, so they take turns, and all but the
/// first load it from [`compiled_cache`] instead of compiling it again.
/// The other daemon tests, whose jobs must get CPU time within their
/// deadlines, keep running meanwhile.
static ONE_HOST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The compiled-component cache the tests' hosts share.
fn compiled_cache() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf()
}

/// The test component `name` from the workloads directory.
fn component(name: &str) -> Vec<u8> {
    market_artifacts::workload(name)
}

/// A service running the component stored under `sha256`: the test
/// world's [`test_world::hello_service`] with the lease's greeting, 5 s
/// and 4 at once a request.
fn service(sha256: [u8; 32]) -> ServiceSpec {
    let hello = test_world::hello_service(sha256);
    ServiceSpec {
        env: vec![("GREETING".into(), "from the lease".into())],
        limits: ServiceLimits {
            timeout_ms: 5_000,
            max_concurrent: 4,
            ..hello.limits
        },
        ..hello
    }
}

/// How a test's node serves.
#[derive(Default)]
struct Serving {
    /// Its public URL, if not its own address.
    public: Option<String>,
    /// Whether it serves TCP services (the ingress answering for them).
    tcp: bool,
    /// The local addresses its services may call (the test's upstream on
    /// 127.0.0.1).
    egress_local_addresses: Vec<std::net::IpAddr>,
}

/// A node's service host behind an ingress on 127.0.0.1, and its TCP host
/// on the same engine if it serves TCP services.
struct Ingress {
    host: ServiceHost,
    tcp: Option<TcpServiceHost>,
    addr: SocketAddr,
}

/// Starts an [`Ingress`] as `serving` says.
async fn ingress(metrics: ServiceMetrics, serving: Serving) -> Ingress {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let host = ServiceHost::new(
        ServiceHostConfig {
            max_instances: 8,
            max_memory_bytes: 64 << 20,
            pooling: false,
            cache_dir: Some(compiled_cache()),
            public_base_url: Some(serving.public.unwrap_or_else(|| format!("http://{addr}"))),
            egress_local_addresses: serving.egress_local_addresses,
            ..ServiceHostConfig::default()
        },
        metrics,
    )
    .unwrap();
    let tcp = serving
        .tcp
        .then(|| TcpServiceHost::new(host.clone()).unwrap());
    tokio::spawn(crate::service::serve(
        host.clone(),
        listener,
        IngressSettings {
            tcp_services: tcp.clone(),
            ..IngressSettings::default()
        },
        std::future::pending(),
    ));
    Ingress { host, tcp, addr }
}

/// Takes the test's turn at running a service host
/// ([`ONE_HOST_AT_A_TIME`]); a harness whose node serves behind an
/// [`ingress`] as `serving` says.
async fn serving_harness(
    serving: Serving,
) -> (tokio::sync::MutexGuard<'static, ()>, Harness, Ingress) {
    let turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let ingress = ingress(h.metrics.services.clone(), serving).await;
    h.services = Some(ingress.host.clone());
    (turn, h, ingress)
}

/// Adds slot 1 of the lease, its service `spec` of the stored test
/// component `name`.
fn lease_slot(h: &Harness, name: &str, spec: impl FnOnce([u8; 32]) -> ServiceSpec) {
    let sha = h.market.store(&component(name));
    h.market.add_slot(1, LEASE, Some(spec(sha)));
}

/// Runs `h` until slot 1 is handed back, checking that it was never
/// acknowledged; the run's summary.
async fn until_handed_back_unacknowledged(h: &Harness) -> Summary {
    let summary = h
        .run_while(
            Duration::from_secs(5),
            h.until(0, "a hand-back", |st| st.jobs[&1].handed_back),
        )
        .await;
    let st = h.market.state.lock().unwrap();
    assert!(!st.jobs[&1].acknowledged, "never acknowledged");
    summary
}

/// Checks that the run of `summary` failed one replica and started none.
fn assert_one_replica_failed(summary: &Summary) {
    assert_eq!(summary.replicas_failed, 1);
    assert_eq!(summary.replicas_started, 0);
}

/// The lease ends (the matcher stops listing the slot); waits (real time)
/// until `running` no longer holds.
async fn lose_the_slot(h: &Harness, running: impl Fn() -> bool) {
    h.market.state.lock().unwrap().jobs.clear();
    for _ in 0..2_500 {
        if !running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether `address` refuses connections within a second: a stopped TCP
/// service leaves the host's list before its listener is dropped (`stop`
/// removes it, then awaits its tasks), so the port may answer a moment
/// after the list is empty.
async fn port_closes(address: &str) -> bool {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(address).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// Checks that every heartbeat item of job 1 in `sent` (as
/// [`items_of`] lists them) was accepted and carried `value`.
fn assert_all_carry(sent: &[(bool, Option<String>)], value: &str) {
    assert!(
        sent.iter()
            .all(|(ok, v)| *ok && v.as_deref() == Some(value)),
        "every heartbeat accepted, each with {value}: {sent:?}"
    );
}

/// Checks that the node neither handed a slot back nor was refused.
fn assert_no_hand_back_nor_refusal(h: &Harness) {
    let st = h.market.state.lock().unwrap();
    assert!(st.hand_backs.is_empty(), "{:?}", st.hand_backs);
    assert_eq!(st.refusals, Vec::<String>::new());
}

/// Waits (real time, the IC's clock still) until `host` runs a service.
async fn until_serving(host: &ServiceHost) {
    for _ in 0..10_000 {
        if !host.list().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("no replica started");
}

/// Of the heartbeat items `items` (the fake's endpoints or TCP
/// addresses), job `id`'s: (accepted, value).
fn items_of(items: &[(JobId, bool, Option<String>)], id: JobId) -> Vec<(bool, Option<String>)> {
    items
        .iter()
        .filter(|(j, _, _)| *j == id)
        .map(|(_, ok, v)| (*ok, v.clone()))
        .collect()
}

/// The endpoints of the heartbeat items of job `id`: (accepted, endpoint).
fn endpoints_of(h: &Harness, id: JobId) -> Vec<(bool, Option<String>)> {
    items_of(&h.market.state.lock().unwrap().endpoints, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_slot_runs_its_replica_until_the_slot_is_lost() {
    let (_turn, h, Ingress { host, addr, .. }) = serving_harness(Serving::default()).await;
    lease_slot(&h, "hello-service", service);
    let endpoint = format!("http://{addr}/{LEASE}/");

    let summary = h
        .run_while(Duration::from_secs(5), async {
            h.until_job_1_is_acknowledged().await;
            // The replica answers behind the ingress, with the lease's env.
            let body = get_ok(addr, &format!("/{LEASE}/healthz")).await;
            assert!(body.contains("\r\nok\r\n"), "{body}");
            let body = get_ok(addr, &format!("/{LEASE}/env/GREETING")).await;
            assert!(body.contains("from the lease"), "{body}");
            // Two more intervals, heartbeated with the endpoint.
            h.until(S / 10, "two paid intervals", |st| st.jobs[&1].paid >= 2)
                .await;
            // The lease ends: the matcher stops listing the slot.
            lose_the_slot(&h, || !host.list().is_empty()).await;
            let (status, body) = get(addr, &format!("/{LEASE}/healthz")).await;
            assert_eq!(status, 404, "stopped with its slot: {body}");
        })
        .await;

    assert!(host.list().is_empty());
    let sent = endpoints_of(&h, 1);
    assert!(sent.len() >= 3, "{sent:?}");
    assert_all_carry(&sent, &endpoint);
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
    assert_eq!(h.metrics.replicas_started.get(), 1);
    assert!(h.metrics.intervals_paid.get() >= 2);
    assert_no_hand_back_nor_refusal(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_starts_its_replicas_again() {
    // A previous run of the node acknowledged the slot with this endpoint,
    // then died; the new process's ingress has the same public URL.
    let public = "https://node.example:8443".to_string();
    let (_turn, h, Ingress { host, addr, .. }) = serving_harness(Serving {
        public: Some(public.clone()),
        ..Serving::default()
    })
    .await;
    lease_slot(&h, "hello-service", service);
    let endpoint = format!("{public}/{LEASE}/");
    h.market.tune_job(1, |j| {
        j.acknowledged = true;
        j.endpoint = Some(endpoint.clone());
    });

    h.run_while(Duration::from_secs(5), async {
        until_serving(&host).await;
        let body = get_ok(addr, &format!("/{LEASE}/")).await;
        assert!(body.contains("hello from a service"), "{body}");
        h.until(S / 10, "two paid intervals", |st| st.jobs[&1].paid >= 2)
            .await;
    })
    .await;

    assert_eq!(h.metrics.replicas_started.get(), 1);
    let sent = endpoints_of(&h, 1);
    assert!(sent.iter().all(|(ok, _)| *ok), "{sent:?}");
    assert!(
        sent.iter().any(|(_, e)| e.as_deref() == Some(&endpoint)),
        "{sent:?}"
    );
    assert!(!h.market.state.lock().unwrap().jobs[&1].missed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_whose_component_is_not_a_component_is_handed_back() {
    let (_turn, h, Ingress { host, .. }) = serving_harness(Serving::default()).await;
    // A core module (a job's), not a wasi:http component.
    let sha = h.market.store(&wasm(HELLO));
    h.market.add_slot(1, LEASE, Some(service(sha)));

    assert_one_replica_failed(&until_handed_back_unacknowledged(&h).await);

    assert_eq!(h.metrics.replicas_failed.get(), 1);
    assert!(host.list().is_empty());
    let st = h.market.state.lock().unwrap();
    assert!(!st.jobs[&1].missed);
    assert!(st.endpoints.is_empty(), "no heartbeat: {:?}", st.endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_an_ingress_hands_service_slots_back() {
    let h = Harness::new();
    lease_slot(&h, "hello-service", service);

    let summary = until_handed_back_unacknowledged(&h).await;

    assert_eq!(summary.replicas_failed, 1);
    assert_eq!(summary.handed_back, 1);
    let st = h.market.state.lock().unwrap();
    assert!(st.endpoints.is_empty(), "no heartbeat: {:?}", st.endpoints);
    assert_eq!(st.hand_backs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_reserved_slot_is_held_without_an_endpoint() {
    let (_turn, h, Ingress { host, .. }) = serving_harness(Serving::default()).await;
    h.market.add_slot(1, LEASE, None);

    h.run_while(
        Duration::from_secs(5),
        h.until(S / 10, "two paid intervals", |st| st.jobs[&1].paid >= 2),
    )
    .await;

    let sent = endpoints_of(&h, 1);
    assert!(sent.len() >= 3, "{sent:?}");
    assert!(
        sent.iter().all(|(ok, e)| *ok && e.is_none()),
        "accepted, no endpoint: {sent:?}"
    );
    assert!(host.list().is_empty(), "no replica");
    assert_eq!(h.metrics.replicas_started.get(), 0);
    assert!(h.metrics.intervals_paid.get() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_endpoint_the_matcher_refuses_is_stopped_and_handed_back() {
    let (_turn, h, Ingress { host, .. }) = serving_harness(Serving::default()).await;
    lease_slot(&h, "hello-service", service);
    // The slot was acknowledged from another public URL (the node's
    // configuration changed): the matcher keeps that endpoint.
    h.market.tune_job(1, |j| {
        j.acknowledged = true;
        j.endpoint = Some(format!("https://elsewhere.example/{LEASE}/"));
    });

    let summary = h
        .run_while(Duration::from_secs(5), async {
            until_serving(&host).await;
            h.until(S / 10, "a hand-back", |st| st.jobs[&1].handed_back)
                .await;
        })
        .await;

    assert!(host.list().is_empty(), "its replica stopped");
    assert_eq!(summary.replicas_failed, 1);
    let st = h.market.state.lock().unwrap();
    assert!(
        st.refusals.iter().any(|r| r.contains("endpoint")),
        "{:?}",
        st.refusals
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_replicas_stop_and_their_slots_go_back() {
    let (_turn, h, Ingress { host, addr, .. }) = serving_harness(Serving::default()).await;
    lease_slot(&h, "hello-service", service);

    let summary = h
        .run_while(Duration::from_secs(5), h.until_job_1_is_acknowledged())
        .await;

    assert_eq!(summary.handed_back, 1, "{summary:?}");
    assert!(host.list().is_empty());
    let (status, body) = get(addr, &format!("/{LEASE}/healthz")).await;
    assert_eq!(status, 404, "{body}");
    let st = h.market.state.lock().unwrap();
    assert!(st.jobs[&1].handed_back && !st.jobs[&1].missed);
}

/// A TCP service running the component stored under `sha256`.
fn tcp_service(sha256: [u8; 32]) -> ServiceSpec {
    ServiceSpec {
        env: vec![],
        tcp: Some(market_api::matcher::TcpSpec {
            max_connections: 4,
            idle_timeout_secs: 30,
            ..market_api::matcher::TcpSpec::default()
        }),
        ..service(sha256)
    }
}

/// The TCP addresses of the heartbeat items of job `id`: (accepted, address).
fn tcp_addresses_of(h: &Harness, id: JobId) -> Vec<(bool, Option<String>)> {
    items_of(&h.market.state.lock().unwrap().tcp_addresses, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_service_slot_serves_on_a_port_of_the_range_until_the_slot_is_lost() {
    let (_turn, mut h, Ingress { host, tcp, addr }) = serving_harness(Serving {
        tcp: true,
        ..Serving::default()
    })
    .await;
    let tcp = tcp.unwrap();
    let port = free_port();
    h.tcp = Some((
        replica::TcpServing {
            host: tcp.clone(),
            listen: std::net::Ipv4Addr::LOCALHOST.into(),
            public_host: "127.0.0.1".into(),
        },
        port..=port,
    ));
    lease_slot(&h, "tcp-relay", tcp_service);
    let endpoint = format!("http://{addr}/{LEASE}/");
    let address = format!("127.0.0.1:{port}");

    let summary = h
        .run_while(Duration::from_secs(5), async {
            h.until_job_1_is_acknowledged().await;
            // Two clients of the relay on the lease's port.
            let mut a = LineClient::connect(&address).await;
            a.send("a joined").await;
            assert_eq!(a.line().await, "a joined");
            let mut b = LineClient::connect(&address).await;
            b.send("b joined").await;
            assert_eq!(b.line().await, "b joined");
            assert_eq!(a.line().await, "b joined");
            a.send("hi b").await;
            assert_eq!(b.line().await, "hi b");
            // The ingress answers for its health at the endpoint.
            let body = get_ok(addr, &format!("/{LEASE}/healthz")).await;
            assert!(body.ends_with("\r\n\r\nok\n"), "{body}");
            h.until(S / 10, "two paid intervals", |st| st.jobs[&1].paid >= 2)
                .await;
            // The lease ends: the service stops and its port closes.
            lose_the_slot(&h, || !tcp.list().is_empty()).await;
            assert!(tcp.list().is_empty(), "stopped with its slot");
            assert!(port_closes(&address).await, "its port is still open");
            let (status, body) = get(addr, &format!("/{LEASE}/healthz")).await;
            assert_eq!(status, 404, "{body}");
        })
        .await;

    let sent = endpoints_of(&h, 1);
    assert!(sent.len() >= 3, "{sent:?}");
    assert_all_carry(&sent, &endpoint);
    assert_all_carry(&tcp_addresses_of(&h, 1), &address);
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
    assert!(host.list().is_empty(), "nothing in the HTTP host");
    assert_no_hand_back_nor_refusal(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_tcp_ports_hands_tcp_service_slots_back() {
    let (_turn, h, Ingress { host, .. }) = serving_harness(Serving::default()).await;
    lease_slot(&h, "tcp-relay", tcp_service);

    assert_one_replica_failed(&until_handed_back_unacknowledged(&h).await);

    assert!(host.list().is_empty());
    let st = h.market.state.lock().unwrap();
    assert!(st.endpoints.is_empty(), "no heartbeat: {:?}", st.endpoints);
}

/// Starts TCP service `id` on `tcp`: the workload `name` with
/// `fuel_per_interval` fuel, listening on a free loopback port.
async fn start_tcp(tcp: &TcpServiceHost, id: u64, name: &str, fuel_per_interval: u64) {
    let bytes = component(name);
    let sha: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    let settings = crate::service::TcpServiceSettings {
        env: vec![],
        allowed_hosts: vec![],
        port: 0,
        listen: std::net::Ipv4Addr::LOCALHOST.into(),
        memory_bytes: 32 << 20,
        limits: crate::service::TcpLimits {
            fuel_per_interval,
            ..crate::service::TcpLimits::default()
        },
    };
    tcp.start(id, &bytes, &sha, settings).await.unwrap();
}

/// On a one-thread runtime, so that nothing else runs between `start`
/// returning and the first check: a TCP service is running as soon as
/// `start` returns (its first instance under way, not backing off), so a
/// health check or a probe that comes at once finds it up.
#[tokio::test(flavor = "current_thread")]
async fn the_ingress_answers_for_a_tcp_service_ok_only_while_its_instance_runs() {
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let Ingress { tcp, addr, .. } = ingress(
        ServiceMetrics::default(),
        Serving {
            tcp: true,
            ..Serving::default()
        },
    )
    .await;
    let tcp = tcp.unwrap();
    start_tcp(&tcp, LEASE, "tcp-relay", 500_000_000).await;
    let info = tcp.info(LEASE).unwrap();
    assert!(info.running && info.starts == 1, "{info:?}");
    get_ok(addr, &format!("/{LEASE}/anything")).await;
    get_ok(addr, &format!("/{LEASE}")).await;

    // An instance that runs out of fuel as it starts is restarted after a
    // growing back-off: once it waits 1.6 s or more, it is down.
    start_tcp(&tcp, LEASE + 1, "tcp-relay", 1_000).await;
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info = tcp.info(LEASE + 1).unwrap();
        if !info.running && info.starts >= 4 {
            break;
        }
        assert!(std::time::Instant::now() < give_up, "{info:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = get(addr, &format!("/{}/healthz", LEASE + 1)).await;
    assert_eq!(status, 503, "{body}");

    assert!(tcp.stop(LEASE).await);
    let (status, _) = get(addr, &format!("/{LEASE}/healthz")).await;
    assert_eq!(status, 404, "gone");
    assert!(tcp.stop(LEASE + 1).await);
}

/// `service(sha256)` with a secret env sealed to key id `key_id` (lease
/// owner: the fake's, anonymous): `API_KEY`, and a `GREETING` that
/// replaces the lease's.
fn sealed_service(sha256: [u8; 32], key_id: &[u8], sealed_to: &[u8]) -> ServiceSpec {
    let secret = vec![
        ("API_KEY".to_string(), "s3cret-api-key".to_string()),
        ("GREETING".to_string(), "from the sealed env".to_string()),
    ];
    let env = market_client::sealing::seal_env(
        &vetkeys::public_key(),
        Principal::anonymous(),
        sealed_to,
        &secret,
    )
    .unwrap();
    ServiceSpec {
        sealed: Some(market_api::privacy::Sealed {
            key_id: key_id.to_vec(),
            input: false,
            env: Some(env.into()),
            output: false,
        }),
        ..service(sha256)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_runs_with_its_secret_env_opened_with_the_slots_key() {
    // An ingress whose services may call 127.0.0.1 (the test's upstream).
    let (_turn, h, Ingress { addr, .. }) = serving_harness(Serving {
        egress_local_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        ..Serving::default()
    })
    .await;
    let key_id = market_client::sealing::new_key_id();
    let (up, seen) = upstream().await;
    lease_slot(&h, "hello-service", |sha| ServiceSpec {
        allowed_hosts: vec!["127.0.0.1".into()],
        ..sealed_service(sha, &key_id, &key_id)
    });

    h.run_while(Duration::from_secs(5), async {
        h.until_job_1_is_acknowledged().await;
        let body = get_ok(addr, &format!("/{LEASE}/env/API_KEY")).await;
        assert!(body.contains("s3cret-api-key"), "{body}");
        let body = get_ok(addr, &format!("/{LEASE}/env/GREETING")).await;
        assert!(
            body.contains("from the sealed env") && !body.contains("from the lease"),
            "the secret replaces the lease's variable: {body}"
        );
        // Its outgoing requests carry the secret API key.
        let url = format!("http%3A%2F%2F127.0.0.1%3A{}%2Fapi", up.port());
        let body = get_ok(addr, &format!("/{LEASE}/fetch?url={url}")).await;
        assert!(body.contains("upstream 200: 2 bytes"), "{body}");
    })
    .await;

    assert_eq!(
        seen.bearer().as_deref(),
        Some("s3cret-api-key"),
        "{}",
        seen.head()
    );

    let st = h.market.state.lock().unwrap();
    assert_eq!(st.key_requests.len(), 1);
    assert_eq!(
        (st.key_requests[0].job_id, st.key_requests[0].attempt),
        (1, 1),
        "the key of the slot's job and attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_secret_env_does_not_open_is_not_served_and_its_slot_goes_back() {
    let (_turn, h, Ingress { host, .. }) = serving_harness(Serving::default()).await;
    // The env is sealed to another key id than the one the lease names.
    let key_id = market_client::sealing::new_key_id();
    let other = market_client::sealing::new_key_id();
    lease_slot(&h, "hello-service", |sha| {
        sealed_service(sha, &key_id, &other)
    });

    assert_one_replica_failed(&until_handed_back_unacknowledged(&h).await);

    assert!(host.list().is_empty());
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.key_requests.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_slot_whose_key_is_refused_goes_back() {
    let (_turn, h, Ingress { host, .. }) = serving_harness(Serving::default()).await;
    let key_id = market_client::sealing::new_key_id();
    lease_slot(&h, "hello-service", |sha| {
        sealed_service(sha, &key_id, &key_id)
    });
    h.market.state.lock().unwrap().key_errors = vec![MatcherError::Unauthorized {
        reason: "not the provider of this attempt".into(),
    }];

    until_handed_back_unacknowledged(&h).await;

    assert!(host.list().is_empty());
    assert_eq!(h.market.state.lock().unwrap().key_requests.len(), 1);
}
