//! A provider's whole node in the test world: its daemon, its service host
//! and the ingress on 127.0.0.1 in front of it, as the devnet tests of
//! service leases run it.

use std::net::SocketAddr;
use std::path::Path;

use market_fixture::DevnetTransport;
use provider_node::daemon::metrics::Metrics;
use provider_node::daemon::replica::TcpServing;
use provider_node::daemon::{Daemon, Summary};
use provider_node::service::{
    IngressSettings, ServiceHost, ServiceHostConfig, ServiceMetrics, TcpServiceHost,
};

use crate::{World, spawn};

/// The service host of a node whose ingress listens on `addr` (its public
/// URL: the devnet's outcalls speak plain http): 16 instances of up to
/// 64 MiB, no pooling.
pub fn host_config(addr: SocketAddr) -> ServiceHostConfig {
    ServiceHostConfig {
        max_instances: 16,
        max_memory_bytes: 64 << 20,
        pooling: false,
        public_base_url: Some(format!("http://{addr}")),
        ..ServiceHostConfig::default()
    }
}

/// How a [`Node`] is set up.
pub struct NodeSetup<'a> {
    /// Where it caches compiled components: nodes that share one start a
    /// replica moved to them within the devnet's fast clock's deadline.
    pub cache: &'a Path,
    /// The one port of its range for TCP services, if it serves them.
    pub tcp_port: Option<u16>,
    /// The local addresses its services may call (a test's upstream on
    /// 127.0.0.1); public addresses only if empty.
    pub egress_local_addresses: Vec<std::net::IpAddr>,
}

impl<'a> NodeSetup<'a> {
    /// A node caching components in `cache`, serving no TCP services, its
    /// services calling public addresses only.
    pub fn new(cache: &'a Path) -> Self {
        NodeSetup {
            cache,
            tcp_port: None,
            egress_local_addresses: vec![],
        }
    }
}

/// Provider `n`'s node: its daemon ([`World::daemon`]) running replicas
/// in a service host behind an ingress on 127.0.0.1, whose public URL is
/// its own address (the devnet's outcalls speak plain http), and the
/// switch that takes the ingress down.
pub struct Node {
    /// The ingress's address.
    pub addr: SocketAddr,
    /// Its services' host.
    pub host: ServiceHost,
    /// Its TCP services' host, if it serves them.
    pub tcp: Option<TcpServiceHost>,
    /// Takes the ingress down (the daemon keeps running).
    pub ingress_down: Option<tokio::sync::oneshot::Sender<()>>,
    /// The daemon's metrics.
    pub metrics: Metrics,
    /// Stops the daemon.
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// The daemon's task.
    pub task: tokio::task::JoinHandle<Summary>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts provider `n`'s node on `w` as `setup` says.
    pub async fn start(w: &World, n: u8, setup: NodeSetup<'_>) -> Node {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let host = ServiceHost::new(
            ServiceHostConfig {
                cache_dir: Some(setup.cache.to_path_buf()),
                egress_local_addresses: setup.egress_local_addresses,
                ..host_config(addr)
            },
            ServiceMetrics::default(),
        )
        .unwrap();
        let tcp = setup
            .tcp_port
            .map(|_| TcpServiceHost::new(host.clone()).unwrap());
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
        let (daemon, metrics) = w.daemon(n, dir.path());
        let mut daemon: Daemon<DevnetTransport> = daemon.with_services(host.clone());
        if let (Some(tcp), Some(port)) = (&tcp, setup.tcp_port) {
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

    /// Stops the daemon; its summary.
    pub async fn shut_down(self) -> Summary {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}
