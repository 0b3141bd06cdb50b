//! Service leases: a reserved slot of a lease with a service runs a replica
//! of its component behind the node's ingress (bound on 127.0.0.1 here),
//! acknowledged and heartbeated with the replica's endpoint; slots the node
//! can't serve are handed back.

use std::net::SocketAddr;

use test_world::http::{get, upstream};
use tokio::io::AsyncWriteExt;

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

/// A service running the component stored under `sha256`.
fn service(sha256: [u8; 32]) -> ServiceSpec {
    ServiceSpec {
        sealed: None,
        component: ModuleSource::Stored { sha256 },
        env: vec![("GREETING".into(), "from the lease".into())],
        allowed_hosts: vec![],
        health_path: "/healthz".into(),
        callback: None,
        limits: ServiceLimits {
            fuel_per_request: 200_000_000,
            timeout_ms: 5_000,
            max_concurrent: 4,
            max_body_bytes: 64 * 1024,
        },
        tcp: None,
    }
}

/// A service host behind an ingress on 127.0.0.1, whose public URL is
/// `public` (by default its own address); returns it and the address.
async fn ingress(metrics: ServiceMetrics, public: Option<String>) -> (ServiceHost, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let host = ServiceHost::new(
        ServiceHostConfig {
            max_instances: 8,
            max_memory_bytes: 64 << 20,
            pooling: false,
            cache_dir: Some(compiled_cache()),
            public_base_url: Some(public.unwrap_or_else(|| format!("http://{addr}"))),
            ..ServiceHostConfig::default()
        },
        metrics,
    )
    .unwrap();
    tokio::spawn(crate::service::serve(
        host.clone(),
        listener,
        IngressSettings::default(),
        std::future::pending(),
    ));
    (host, addr)
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

/// The endpoints of the heartbeat items of job `id`: (accepted, endpoint).
fn endpoints_of(h: &Harness, id: JobId) -> Vec<(bool, Option<String>)> {
    let st = h.market.state.lock().unwrap();
    st.endpoints
        .iter()
        .filter(|(j, _, _)| *j == id)
        .map(|(_, ok, e)| (*ok, e.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_slot_runs_its_replica_until_the_slot_is_lost() {
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let (host, addr) = ingress(h.metrics.services.clone(), None).await;
    h.services = Some(host.clone());
    let sha = h.market.store(&component("hello-service"));
    h.market.add_slot(1, LEASE, Some(service(sha)));
    let endpoint = format!("http://{addr}/{LEASE}/");

    let summary = h
        .run_while(Duration::from_secs(5), async {
            h.until_job_1_is_acknowledged().await;
            // The replica answers behind the ingress, with the lease's env.
            let (status, body) = get(addr, &format!("/{LEASE}/healthz")).await;
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("\r\nok\r\n"), "{body}");
            let (status, body) = get(addr, &format!("/{LEASE}/env/GREETING")).await;
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("from the lease"), "{body}");
            // Two more intervals, heartbeated with the endpoint.
            h.until(S / 10, "two paid intervals", |st| st.jobs[&1].paid >= 2)
                .await;
            // The lease ends: the matcher stops listing the slot.
            h.market.state.lock().unwrap().jobs.clear();
            for _ in 0..2_500 {
                if host.list().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let (status, body) = get(addr, &format!("/{LEASE}/healthz")).await;
            assert_eq!(status, 404, "stopped with its slot: {body}");
        })
        .await;

    assert!(host.list().is_empty());
    let sent = endpoints_of(&h, 1);
    assert!(sent.len() >= 3, "{sent:?}");
    assert!(
        sent.iter()
            .all(|(ok, e)| *ok && e.as_deref() == Some(&endpoint)),
        "every heartbeat accepted, each with {endpoint}: {sent:?}"
    );
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
    assert_eq!(h.metrics.replicas_started.get(), 1);
    assert!(h.metrics.intervals_paid.get() >= 2);
    let st = h.market.state.lock().unwrap();
    assert!(st.hand_backs.is_empty(), "{:?}", st.hand_backs);
    assert_eq!(st.refusals, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_starts_its_replicas_again() {
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    // A previous run of the node acknowledged the slot with this endpoint,
    // then died; the new process's ingress has the same public URL.
    let public = "https://node.example:8443".to_string();
    let (host, addr) = ingress(h.metrics.services.clone(), Some(public.clone())).await;
    h.services = Some(host.clone());
    let sha = h.market.store(&component("hello-service"));
    h.market.add_slot(1, LEASE, Some(service(sha)));
    let endpoint = format!("{public}/{LEASE}/");
    h.market.tune_job(1, |j| {
        j.acknowledged = true;
        j.endpoint = Some(endpoint.clone());
    });

    h.run_while(Duration::from_secs(5), async {
        until_serving(&host).await;
        let (status, body) = get(addr, &format!("/{LEASE}/")).await;
        assert_eq!(status, 200, "{body}");
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
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let (host, _) = ingress(h.metrics.services.clone(), None).await;
    h.services = Some(host.clone());
    // A core module (a job's), not a wasi:http component.
    let sha = h.market.store(&wasm(HELLO));
    h.market.add_slot(1, LEASE, Some(service(sha)));

    let summary = h
        .run_while(
            Duration::from_secs(5),
            h.until(0, "a hand-back", |st| st.jobs[&1].handed_back),
        )
        .await;

    assert_eq!(summary.replicas_failed, 1);
    assert_eq!(summary.replicas_started, 0);
    assert_eq!(h.metrics.replicas_failed.get(), 1);
    assert!(host.list().is_empty());
    let st = h.market.state.lock().unwrap();
    assert!(!st.jobs[&1].acknowledged, "never acknowledged");
    assert!(!st.jobs[&1].missed);
    assert!(st.endpoints.is_empty(), "no heartbeat: {:?}", st.endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_an_ingress_hands_service_slots_back() {
    let h = Harness::new();
    let sha = h.market.store(&component("hello-service"));
    h.market.add_slot(1, LEASE, Some(service(sha)));

    let summary = h
        .run_while(
            Duration::from_secs(5),
            h.until(0, "a hand-back", |st| st.jobs[&1].handed_back),
        )
        .await;

    assert_eq!(summary.replicas_failed, 1);
    assert_eq!(summary.handed_back, 1);
    let st = h.market.state.lock().unwrap();
    assert!(!st.jobs[&1].acknowledged, "never acknowledged");
    assert!(st.endpoints.is_empty(), "no heartbeat: {:?}", st.endpoints);
    assert_eq!(st.hand_backs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_reserved_slot_is_held_without_an_endpoint() {
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let (host, _) = ingress(h.metrics.services.clone(), None).await;
    h.services = Some(host.clone());
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
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let (host, _) = ingress(h.metrics.services.clone(), None).await;
    h.services = Some(host.clone());
    let sha = h.market.store(&component("hello-service"));
    h.market.add_slot(1, LEASE, Some(service(sha)));
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
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let (host, addr) = ingress(h.metrics.services.clone(), None).await;
    h.services = Some(host.clone());
    let sha = h.market.store(&component("hello-service"));
    h.market.add_slot(1, LEASE, Some(service(sha)));

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

/// A service host and a TCP host on its engine behind an ingress on
/// 127.0.0.1 that answers for the TCP services; the ingress's address.
async fn tcp_ingress(metrics: ServiceMetrics) -> (ServiceHost, TcpServiceHost, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let host = ServiceHost::new(
        ServiceHostConfig {
            max_instances: 8,
            max_memory_bytes: 64 << 20,
            pooling: false,
            cache_dir: Some(compiled_cache()),
            public_base_url: Some(format!("http://{addr}")),
            ..ServiceHostConfig::default()
        },
        metrics,
    )
    .unwrap();
    let tcp = TcpServiceHost::new(host.clone()).unwrap();
    tokio::spawn(crate::service::serve(
        host.clone(),
        listener,
        IngressSettings {
            tcp_services: Some(tcp.clone()),
            ..IngressSettings::default()
        },
        std::future::pending(),
    ));
    (host, tcp, addr)
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
    async fn connect(addr: &str) -> Self {
        let (read, writer) = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap()
            .into_split();
        Self {
            reader: tokio::io::BufReader::new(read),
            writer,
        }
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

/// The TCP addresses of the heartbeat items of job `id`: (accepted, address).
fn tcp_addresses_of(h: &Harness, id: JobId) -> Vec<(bool, Option<String>)> {
    let st = h.market.state.lock().unwrap();
    st.tcp_addresses
        .iter()
        .filter(|(j, _, _)| *j == id)
        .map(|(_, ok, a)| (*ok, a.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_service_slot_serves_on_a_port_of_the_range_until_the_slot_is_lost() {
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let (host, tcp, addr) = tcp_ingress(h.metrics.services.clone()).await;
    h.services = Some(host.clone());
    let port = free_port();
    h.tcp = Some((
        replica::TcpServing {
            host: tcp.clone(),
            listen: std::net::Ipv4Addr::LOCALHOST.into(),
            public_host: "127.0.0.1".into(),
        },
        port..=port,
    ));
    let sha = h.market.store(&component("tcp-relay"));
    h.market.add_slot(1, LEASE, Some(tcp_service(sha)));
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
            let (status, body) = get(addr, &format!("/{LEASE}/healthz")).await;
            assert_eq!(status, 200, "{body}");
            assert!(body.ends_with("\r\n\r\nok\n"), "{body}");
            h.until(S / 10, "two paid intervals", |st| st.jobs[&1].paid >= 2)
                .await;
            // The lease ends: the service stops and its port closes.
            h.market.state.lock().unwrap().jobs.clear();
            for _ in 0..2_500 {
                if tcp.list().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            assert!(tcp.list().is_empty(), "stopped with its slot");
            assert!(tokio::net::TcpStream::connect(&address).await.is_err());
            let (status, body) = get(addr, &format!("/{LEASE}/healthz")).await;
            assert_eq!(status, 404, "{body}");
        })
        .await;

    let sent = endpoints_of(&h, 1);
    assert!(sent.len() >= 3, "{sent:?}");
    assert!(
        sent.iter()
            .all(|(ok, e)| *ok && e.as_deref() == Some(&endpoint)),
        "{sent:?}"
    );
    let sent = tcp_addresses_of(&h, 1);
    assert!(
        sent.iter()
            .all(|(ok, a)| *ok && a.as_deref() == Some(&address)),
        "every heartbeat accepted, each with {address}: {sent:?}"
    );
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
    assert!(host.list().is_empty(), "nothing in the HTTP host");
    let st = h.market.state.lock().unwrap();
    assert!(st.hand_backs.is_empty(), "{:?}", st.hand_backs);
    assert_eq!(st.refusals, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_tcp_ports_hands_tcp_service_slots_back() {
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let (host, _) = ingress(h.metrics.services.clone(), None).await;
    h.services = Some(host.clone());
    let sha = h.market.store(&component("tcp-relay"));
    h.market.add_slot(1, LEASE, Some(tcp_service(sha)));

    let summary = h
        .run_while(
            Duration::from_secs(5),
            h.until(0, "a hand-back", |st| st.jobs[&1].handed_back),
        )
        .await;

    assert_eq!(summary.replicas_failed, 1);
    assert_eq!(summary.replicas_started, 0);
    assert!(host.list().is_empty());
    let st = h.market.state.lock().unwrap();
    assert!(!st.jobs[&1].acknowledged, "never acknowledged");
    assert!(st.endpoints.is_empty(), "no heartbeat: {:?}", st.endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_answers_for_a_tcp_service_ok_only_while_its_instance_runs() {
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let (_, tcp, addr) = tcp_ingress(ServiceMetrics::default()).await;
    let start = |id: u64, name: &str, env: &[(&str, &str)], fuel: u64| {
        let bytes = component(name);
        let sha: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        let settings = crate::service::TcpServiceSettings {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            allowed_hosts: vec![],
            port: 0,
            listen: std::net::Ipv4Addr::LOCALHOST.into(),
            memory_bytes: 32 << 20,
            limits: crate::service::TcpLimits {
                fuel_per_interval: fuel,
                ..crate::service::TcpLimits::default()
            },
        };
        let tcp = tcp.clone();
        async move { tcp.start(id, &bytes, &sha, settings).await.unwrap() }
    };
    start(LEASE, "tcp-relay", &[], 500_000_000).await;
    let (status, body) = get(addr, &format!("/{LEASE}/anything")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(addr, &format!("/{LEASE}")).await;
    assert_eq!(status, 200, "{body}");

    // An instance that runs out of fuel as it starts is restarted after a
    // growing back-off: once it waits 1.6 s or more, it is down.
    start(LEASE + 1, "tcp-relay", &[], 1_000).await;
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
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    // An ingress whose services may call 127.0.0.1 (the test's upstream).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let host = ServiceHost::new(
        ServiceHostConfig {
            max_instances: 8,
            max_memory_bytes: 64 << 20,
            pooling: false,
            cache_dir: Some(compiled_cache()),
            public_base_url: Some(format!("http://{addr}")),
            egress_local_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            ..ServiceHostConfig::default()
        },
        h.metrics.services.clone(),
    )
    .unwrap();
    tokio::spawn(crate::service::serve(
        host.clone(),
        listener,
        IngressSettings::default(),
        std::future::pending(),
    ));
    h.services = Some(host.clone());
    let sha = h.market.store(&component("hello-service"));
    let key_id = market_client::sealing::new_key_id();
    let (up, head) = upstream().await;
    let lease = ServiceSpec {
        allowed_hosts: vec!["127.0.0.1".into()],
        ..sealed_service(sha, &key_id, &key_id)
    };
    h.market.add_slot(1, LEASE, Some(lease));

    h.run_while(Duration::from_secs(5), async {
        h.until_job_1_is_acknowledged().await;
        let (status, body) = get(addr, &format!("/{LEASE}/env/API_KEY")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("s3cret-api-key"), "{body}");
        let (status, body) = get(addr, &format!("/{LEASE}/env/GREETING")).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("from the sealed env") && !body.contains("from the lease"),
            "the secret replaces the lease's variable: {body}"
        );
        // Its outgoing requests carry the secret API key.
        let url = format!("http%3A%2F%2F127.0.0.1%3A{}%2Fapi", up.port());
        let (status, body) = get(addr, &format!("/{LEASE}/fetch?url={url}")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("upstream 200: 2 bytes"), "{body}");
    })
    .await;

    let head = head
        .lock()
        .unwrap()
        .clone()
        .expect("the upstream was called");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nauthorization: bearer s3cret-api-key\r\n"),
        "{head}"
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
    let _turn = ONE_HOST_AT_A_TIME.lock().await;
    let mut h = Harness::new();
    let (host, _) = ingress(h.metrics.services.clone(), None).await;
    h.services = Some(host.clone());
    let sha = h.market.store(&component("hello-service"));
    // The env is sealed to another key id than the one the lease names.
    let key_id = market_client::sealing::new_key_id();
    let other = market_client::sealing::new_key_id();
    h.market
        .add_slot(1, LEASE, Some(sealed_service(sha, &key_id, &other)));

    let summary = h
        .run_while(
            Duration::from_secs(5),
            h.until(0, "a hand-back", |st| st.jobs[&1].handed_back),
        )
        .await;

    assert_eq!(summary.replicas_failed, 1);
    assert_eq!(summary.replicas_started, 0);
    assert!(host.list().is_empty());
    let st = h.market.state.lock().unwrap();
    assert!(!st.jobs[&1].acknowledged, "never acknowledged");
    assert_eq!(st.key_requests.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_slot_whose_key_is_refused_goes_back() {
    let mut h = Harness::new();
    let (host, _) = ingress(h.metrics.services.clone(), None).await;
    h.services = Some(host.clone());
    let sha = h.market.store(&component("hello-service"));
    let key_id = market_client::sealing::new_key_id();
    h.market
        .add_slot(1, LEASE, Some(sealed_service(sha, &key_id, &key_id)));
    h.market.state.lock().unwrap().key_errors = vec![MatcherError::Unauthorized {
        reason: "not the provider of this attempt".into(),
    }];

    h.run_while(
        Duration::from_secs(5),
        h.until(0, "a hand-back", |st| st.jobs[&1].handed_back),
    )
    .await;

    assert!(host.list().is_empty());
    let st = h.market.state.lock().unwrap();
    assert!(!st.jobs[&1].acknowledged, "never acknowledged");
    assert_eq!(st.key_requests.len(), 1);
}
