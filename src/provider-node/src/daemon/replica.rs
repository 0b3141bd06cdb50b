//! Service replicas: a reserved slot of a service lease runs one replica
//! of the lease's component behind the node's ingress.
//!
//! A slot's reservation is read once (`get_reservation`): plain reserved
//! capacity is held as before; a service's slot needs the node's ingress
//! (a [`ServiceHost`] with a public URL), its component fetched like a
//! job's module and started in the host under the reservation's id
//! ([`start`]). The slot is acknowledged only once its replica serves, and
//! every heartbeat of it carries the replica's endpoint
//! (`<public URL>/<reservation id>/`), which the matcher records and
//! probes. A slot that can't be served is handed back, unslashed.
//!
//! A TCP service's slot (`service.tcp`) runs its component in the node's
//! [`TcpServiceHost`] instead, on a port taken from the node's range
//! ([`TcpPorts`]) for the lease; its heartbeats also carry
//! `<public host>:<port>`, and its endpoint is where the ingress answers
//! whether that port takes connections (what the matcher probes). The port
//! is the lease's until its service is stopped.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::sealed::{SecretEnv, with_secret_env};
use crate::service::{
    ServiceError, ServiceHost, ServiceSettings, TcpLimits, TcpServiceHost, TcpServiceSettings,
};
use market_api::matcher::{
    ModuleSource, Reservation, ReservationId, ServiceSpec, TcpSpec, check_endpoint,
    check_tcp_address,
};

/// The replica a service slot runs: what its lease asks for and where it
/// answers.
#[derive(Clone, Debug)]
pub struct Replica {
    /// The lease (its reservation id is the service's id in the host).
    pub reservation: ReservationId,
    /// The service as the lease describes it.
    pub service: ServiceSpec,
    /// Memory of one instance, MiB: the reservation's slot size.
    pub memory_mib: u32,
    /// Where it answers, reported with every heartbeat of its slot.
    pub endpoint: String,
    /// For a TCP service: its port and the address clients use.
    pub tcp: Option<TcpReplica>,
    /// The service's secret env, opened with the slot's key (empty if it
    /// has none): added to the lease's env, a secret replacing a plain
    /// variable of its name.
    pub secret_env: SecretEnv,
}

/// Where a TCP service's replica serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpReplica {
    /// The lease's TCP limits.
    pub spec: TcpSpec,
    /// The port it is opened on, taken from the node's range.
    pub port: u16,
    /// `<public host>:<port>`, reported with every heartbeat of its slot.
    pub address: String,
}

impl Replica {
    /// The settings the HTTP host runs it with.
    pub fn settings(&self) -> ServiceSettings {
        ServiceSettings {
            env: self.env(),
            ..ServiceSettings::from_spec(&self.service, self.memory_mib)
        }
    }

    /// The component's env: the lease's with the secret one added.
    fn env(&self) -> Vec<(String, String)> {
        with_secret_env(self.service.env.clone(), self.secret_env.0.clone())
    }

    /// The settings the TCP host runs it with, opened on `listen`; `None`
    /// for an HTTP service.
    pub fn tcp_settings(&self, listen: IpAddr) -> Option<TcpServiceSettings> {
        let tcp = self.tcp.as_ref()?;
        Some(TcpServiceSettings {
            env: self.env(),
            allowed_hosts: self.service.allowed_hosts.clone(),
            port: tcp.port,
            listen,
            memory_bytes: u64::from(self.memory_mib) << 20,
            limits: TcpLimits {
                fuel_per_interval: tcp.spec.fuel_per_second,
                fuel_interval: Duration::from_secs(1),
                max_connections: tcp.spec.max_connections,
                max_bytes_per_second: tcp.spec.max_bytes_per_second,
                idle_timeout: Duration::from_secs(tcp.spec.idle_timeout_secs),
            },
        })
    }
}

/// How a node serves TCP services: the host, the ports it may open for
/// leases, the address they are opened on and the host name clients use.
#[derive(Clone)]
pub struct TcpServing {
    /// The TCP services' host (on the HTTP host's engine).
    pub host: TcpServiceHost,
    /// Where the ports are opened (`0.0.0.0` by default).
    pub listen: IpAddr,
    /// The host part of the addresses reported (`<public host>:<port>`).
    pub public_host: String,
}

/// The ports a node opens for TCP services, each held by one lease from
/// its replica's start until its service is stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpPorts {
    range: Option<RangeInclusive<u16>>,
    held: BTreeMap<ReservationId, u16>,
}

impl TcpPorts {
    /// The ports of `range`; `None` gives none.
    pub fn new(range: Option<RangeInclusive<u16>>) -> Self {
        Self {
            range,
            held: BTreeMap::new(),
        }
    }

    /// The port of lease `reservation`: the one it holds, or the lowest
    /// free one, now its.
    pub fn take(&mut self, reservation: ReservationId) -> Result<u16, Unservable> {
        if let Some(port) = self.held.get(&reservation) {
            return Ok(*port);
        }
        let range = self.range.clone().ok_or(Unservable::NoTcpPorts)?;
        let free = range
            .into_iter()
            .find(|p| !self.held.values().any(|h| h == p))
            .ok_or(Unservable::TcpPortsTaken)?;
        self.held.insert(reservation, free);
        Ok(free)
    }

    /// Gives lease `reservation`'s port back, if it held one.
    pub fn free(&mut self, reservation: ReservationId) -> Option<u16> {
        self.held.remove(&reservation)
    }

    /// The port lease `reservation` holds.
    pub fn held_by(&self, reservation: ReservationId) -> Option<u16> {
        self.held.get(&reservation).copied()
    }
}

/// Why a node can't run a lease's replica at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unservable {
    /// The node runs no ingress (`[ingress] listen` unset).
    #[error(
        "this node has no ingress ([ingress] listen): it can't run services; post offers for services only from nodes with an ingress"
    )]
    NoIngress,
    /// The ingress's public URL gives no endpoint the matcher accepts.
    #[error("the ingress's public URL gives no usable endpoint: {0}")]
    BadEndpoint(String),
    /// A TCP service, and the node has no TCP ports (`[ingress] tcp_ports`).
    #[error(
        "this node has no TCP ports ([ingress] tcp_ports): it can't run TCP services; post offers for them only from nodes with a port range"
    )]
    NoTcpPorts,
    /// A TCP service, and every port of the node's range is held.
    #[error("every TCP port of this node's range is held by another lease")]
    TcpPortsTaken,
    /// The public TCP host and port give no address the matcher accepts.
    #[error("the public TCP host gives no usable address: {0}")]
    BadTcpAddress(String),
}

/// The replica the node runs for `reservation`'s slot: `Ok(None)` for
/// plain reserved capacity (no service), an error if the node can't serve
/// it (`host`: the node's service host, if it runs an ingress; `tcp` and
/// `ports`: how it serves TCP services, if it does, and its ports, one of
/// which a TCP service's replica takes).
pub fn replica_of(
    reservation: Reservation,
    host: Option<&ServiceHost>,
    tcp: Option<&TcpServing>,
    ports: &mut TcpPorts,
) -> Result<Option<Replica>, Unservable> {
    let Some(service) = reservation.spec.service else {
        return Ok(None);
    };
    let host = host.ok_or(Unservable::NoIngress)?;
    let endpoint = host
        .endpoint(reservation.id)
        .ok_or_else(|| Unservable::BadEndpoint("no http(s) public URL".into()))?;
    check_endpoint(&endpoint, reservation.id)
        .map_err(|e| Unservable::BadEndpoint(format!("{endpoint}: {e}")))?;
    let tcp = match service.tcp {
        None => None,
        Some(spec) => {
            let serving = tcp.ok_or(Unservable::NoTcpPorts)?;
            let port = ports.take(reservation.id)?;
            let address = format!("{}:{port}", serving.public_host);
            if let Err(e) = check_tcp_address(&address) {
                ports.free(reservation.id);
                return Err(Unservable::BadTcpAddress(format!("{address}: {e}")));
            }
            Some(TcpReplica {
                spec,
                port,
                address,
            })
        }
    };
    Ok(Some(Replica {
        reservation: reservation.id,
        service,
        memory_mib: reservation.spec.memory_mib,
        endpoint,
        tcp,
        secret_env: SecretEnv::default(),
    }))
}

/// Compiles `component` (already checked against its sha256) and starts
/// it as `replica`'s service: in `host` for an HTTP service (new requests
/// to its endpoint reach it), in `tcp`'s host on its port for a TCP one.
pub async fn start(
    host: &ServiceHost,
    tcp: Option<&TcpServing>,
    replica: &Replica,
    component: &[u8],
) -> Result<(), ServiceError> {
    let sha256 = match &replica.service.component {
        ModuleSource::Stored { sha256 } | ModuleSource::Url { sha256, .. } => *sha256,
    };
    if replica.tcp.is_none() {
        return host
            .start(replica.reservation, component, &sha256, replica.settings())
            .await;
    }
    let tcp = tcp.ok_or_else(|| ServiceError::Config("this node serves no TCP".into()))?;
    let settings = replica
        .tcp_settings(tcp.listen)
        .ok_or_else(|| ServiceError::Config("not a TCP service".into()))?;
    let addr = tcp
        .host
        .start(replica.reservation, component, &sha256, settings)
        .await?;
    tracing::info!(reservation = replica.reservation, %addr, "tcp replica listening");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{ServiceHostConfig, ServiceMetrics};
    use market_api::matcher::MAX_ENDPOINT_LEN;
    use std::net::Ipv4Addr;

    /// The daemon tests' lease 7, running `service` if any.
    fn lease(service: Option<ServiceSpec>) -> Reservation {
        crate::daemon::tests::lease(7, service)
    }

    fn host(public: &str) -> ServiceHost {
        ServiceHost::new(
            ServiceHostConfig {
                max_instances: 1,
                pooling: false,
                public_base_url: Some(public.into()),
                ..ServiceHostConfig::default()
            },
            ServiceMetrics::default(),
        )
        .unwrap()
    }

    fn service() -> ServiceSpec {
        ServiceSpec {
            env: vec![("A".into(), "b".into())],
            allowed_hosts: vec!["api.example.com".into()],
            limits: market_api::matcher::ServiceLimits::default(),
            ..test_world::hello_service([1; 32])
        }
    }

    #[test]
    fn a_lease_with_a_service_needs_an_ingress_and_an_endpoint_the_matcher_takes() {
        let mut ports = TcpPorts::default();
        assert!(
            replica_of(lease(None), None, None, &mut ports)
                .unwrap()
                .is_none(),
            "plain capacity"
        );
        assert_eq!(
            replica_of(lease(Some(service())), None, None, &mut ports).unwrap_err(),
            Unservable::NoIngress
        );
        let replica = replica_of(
            lease(Some(service())),
            Some(&host("https://node.example/")),
            None,
            &mut ports,
        )
        .unwrap()
        .unwrap();
        assert_eq!(replica.tcp, None);
        assert_eq!(replica.endpoint, "https://node.example/7/");
        assert_eq!(replica.reservation, 7);
        assert_eq!(
            replica.settings(),
            ServiceSettings::from_spec(&service(), 32),
            "the lease's env, hosts and limits, the slot's memory"
        );
        let long = format!("https://{}.example", "a".repeat(MAX_ENDPOINT_LEN));
        assert!(matches!(
            replica_of(lease(Some(service())), Some(&host(&long)), None, &mut ports),
            Err(Unservable::BadEndpoint(_))
        ));
    }

    fn tcp_lease(id: u64) -> Reservation {
        let mut r = lease(Some(ServiceSpec {
            tcp: Some(TcpSpec {
                max_connections: 5,
                max_bytes_per_second: 1000,
                idle_timeout_secs: 7,
                fuel_per_second: 99,
            }),
            ..service()
        }));
        r.id = id;
        r
    }

    #[tokio::test]
    async fn a_tcp_lease_takes_a_port_of_the_range_and_reports_its_public_address() {
        let http = host("https://node.example:8443/");
        let serving = TcpServing {
            host: TcpServiceHost::new(http.clone()).unwrap(),
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            public_host: "tcp.node.example".into(),
        };
        let mut none = TcpPorts::new(None);
        assert_eq!(
            replica_of(tcp_lease(7), Some(&http), Some(&serving), &mut none).unwrap_err(),
            Unservable::NoTcpPorts
        );
        let mut ports = TcpPorts::new(Some(4000..=4001));
        assert_eq!(
            replica_of(tcp_lease(7), Some(&http), None, &mut ports).unwrap_err(),
            Unservable::NoTcpPorts,
            "no TCP host"
        );
        let replica = replica_of(tcp_lease(7), Some(&http), Some(&serving), &mut ports)
            .unwrap()
            .unwrap();
        assert_eq!(replica.endpoint, "https://node.example:8443/7/");
        let tcp = replica.tcp.clone().unwrap();
        assert_eq!(
            (tcp.port, tcp.address.as_str()),
            (4000, "tcp.node.example:4000")
        );
        let settings = replica.tcp_settings(serving.listen).unwrap();
        assert_eq!(settings.port, 4000);
        assert_eq!(settings.listen, serving.listen);
        assert_eq!(settings.memory_bytes, 32 << 20);
        assert_eq!(settings.env, service().env);
        assert_eq!(settings.allowed_hosts, service().allowed_hosts);
        assert_eq!(
            settings.limits,
            TcpLimits {
                fuel_per_interval: 99,
                fuel_interval: Duration::from_secs(1),
                max_connections: 5,
                max_bytes_per_second: 1000,
                idle_timeout: Duration::from_secs(7),
            }
        );
        // The same lease keeps its port; another takes the next; the range
        // then is full until a port is freed.
        let again = replica_of(tcp_lease(7), Some(&http), Some(&serving), &mut ports).unwrap();
        assert_eq!(again.unwrap().tcp.unwrap().port, 4000);
        let other = replica_of(tcp_lease(8), Some(&http), Some(&serving), &mut ports).unwrap();
        assert_eq!(other.unwrap().tcp.unwrap().port, 4001);
        assert_eq!(
            replica_of(tcp_lease(9), Some(&http), Some(&serving), &mut ports).unwrap_err(),
            Unservable::TcpPortsTaken
        );
        assert_eq!(ports.free(7), Some(4000));
        let third = replica_of(tcp_lease(9), Some(&http), Some(&serving), &mut ports).unwrap();
        assert_eq!(third.unwrap().tcp.unwrap().port, 4000);

        // A public host that gives no valid address: refused, no port held.
        let bad = TcpServing {
            public_host: "no such host".into(),
            ..serving.clone()
        };
        let mut ports = TcpPorts::new(Some(4000..=4000));
        assert!(matches!(
            replica_of(tcp_lease(7), Some(&http), Some(&bad), &mut ports),
            Err(Unservable::BadTcpAddress(_))
        ));
        assert_eq!(ports.held_by(7), None);
        // An HTTP service's replica takes no port.
        let http_replica = replica_of(
            lease(Some(service())),
            Some(&http),
            Some(&serving),
            &mut ports,
        )
        .unwrap()
        .unwrap();
        assert_eq!(http_replica.tcp, None);
        assert_eq!(http_replica.tcp_settings(serving.listen), None);
        assert_eq!(ports.held_by(7), None);
    }
}
