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

use crate::service::{ServiceError, ServiceHost, ServiceSettings};
use market_api::matcher::{ModuleSource, Reservation, ReservationId, ServiceSpec, check_endpoint};

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
}

impl Replica {
    /// The settings the host runs it with.
    pub fn settings(&self) -> ServiceSettings {
        ServiceSettings::from_spec(&self.service, self.memory_mib)
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
}

/// The replica the node runs for `reservation`'s slot: `Ok(None)` for
/// plain reserved capacity (no service), an error if the node can't serve
/// it (`host`: the node's service host, if it runs an ingress).
pub fn replica_of(
    reservation: Reservation,
    host: Option<&ServiceHost>,
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
    Ok(Some(Replica {
        reservation: reservation.id,
        service,
        memory_mib: reservation.spec.memory_mib,
        endpoint,
    }))
}

/// Compiles `component` (already checked against its sha256) and starts
/// it in `host` as `replica`'s service. On success new requests to its
/// endpoint reach it.
pub async fn start(
    host: &ServiceHost,
    replica: &Replica,
    component: &[u8],
) -> Result<(), ServiceError> {
    let sha256 = match &replica.service.component {
        ModuleSource::Stored { sha256 } | ModuleSource::Url { sha256, .. } => *sha256,
    };
    host.start(replica.reservation, component, &sha256, replica.settings())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{ServiceHostConfig, ServiceMetrics};
    use market_api::matcher::{MAX_ENDPOINT_LEN, ReservationSpec, ReservationStatus};

    fn lease(service: Option<ServiceSpec>) -> Reservation {
        Reservation {
            id: 7,
            owner: candid::Principal::anonymous(),
            spec: ReservationSpec {
                slots: 1,
                memory_mib: 32,
                fuel_per_interval: 0,
                interval_secs: 10,
                intervals: 1,
                max_price_per_interval: 1,
                ledger: candid::Principal::anonymous(),
                min_provider_stake: 0,
                max_rematches: 0,
                delegates: vec![],
                service,
            },
            status: ReservationStatus::Active,
            slots: vec![],
            locked: 0,
            paid: 0,
            queued_jobs: 0,
            created_at_ns: 0,
        }
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
            component: ModuleSource::Stored { sha256: [1; 32] },
            env: vec![("A".into(), "b".into())],
            allowed_hosts: vec!["api.example.com".into()],
            health_path: "/healthz".into(),
            callback: None,
            limits: market_api::matcher::ServiceLimits::default(),
            tcp: None,
        }
    }

    #[test]
    fn a_lease_with_a_service_needs_an_ingress_and_an_endpoint_the_matcher_takes() {
        assert!(
            replica_of(lease(None), None).unwrap().is_none(),
            "plain capacity"
        );
        assert_eq!(
            replica_of(lease(Some(service())), None).unwrap_err(),
            Unservable::NoIngress
        );
        let replica = replica_of(lease(Some(service())), Some(&host("https://node.example/")))
            .unwrap()
            .unwrap();
        assert_eq!(replica.endpoint, "https://node.example/7/");
        assert_eq!(replica.reservation, 7);
        assert_eq!(
            replica.settings(),
            ServiceSettings::from_spec(&service(), 32),
            "the lease's env, hosts and limits, the slot's memory"
        );
        let long = format!("https://{}.example", "a".repeat(MAX_ENDPOINT_LEN));
        assert!(matches!(
            replica_of(lease(Some(service())), Some(&host(&long))),
            Err(Unservable::BadEndpoint(_))
        ));
    }
}
