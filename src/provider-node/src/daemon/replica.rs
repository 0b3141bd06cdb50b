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
use market_api::matcher::{
    MAX_ENDPOINT_LEN, ModuleSource, Reservation, ReservationId, ServiceSpec,
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
    check_endpoint(&endpoint).map_err(Unservable::BadEndpoint)?;
    Ok(Some(Replica {
        reservation: reservation.id,
        service,
        memory_mib: reservation.spec.memory_mib,
        endpoint,
    }))
}

/// What the matcher requires of an endpoint besides its `/<id>/` ending
/// (which [`ServiceHost::endpoint`] gives): at most [`MAX_ENDPOINT_LEN`]
/// bytes of printable ASCII, a host, no user, query or fragment.
fn check_endpoint(url: &str) -> Result<(), String> {
    if url.len() > MAX_ENDPOINT_LEN {
        return Err(format!("{url} is over {MAX_ENDPOINT_LEN} bytes"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{url} is not printable ASCII without spaces"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url} is not an http(s) URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') || rest.contains(['?', '#']) {
        return Err(format!(
            "{url} needs a host, and no user, query or fragment"
        ));
    }
    Ok(())
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
    use super::check_endpoint;

    #[test]
    fn endpoints_follow_the_matchers_rules() {
        assert_eq!(check_endpoint("https://node.example:8443/7/"), Ok(()));
        assert_eq!(check_endpoint("http://127.0.0.1:8080/7/"), Ok(()));
        for bad in [
            "ftp://node/7/",
            "https:///7/",
            "https://user@node/7/",
            "https://node/a?b/7/",
            "https://no de/7/",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        let long = format!("https://{}/7/", "a".repeat(MAX));
        assert!(check_endpoint(&long).is_err());
    }

    const MAX: usize = super::MAX_ENDPOINT_LEN;
}
