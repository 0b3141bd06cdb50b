//! Services for a person: lease replicas of a wasi:http component
//! (`market serve`), follow their endpoints as providers come and go, and
//! show a lease's replicas, health and spend (`market service`).
//!
//! A service lease is a reservation whose spec carries a
//! [`ServiceSpec`](market_api::matcher::ServiceSpec): each slot is one
//! replica on a different provider, probed by the matcher, slashed and
//! matched anew when it stops answering.

use std::future::Future;
use std::time::Duration;

use market_api::matcher::{
    ModuleSource, ReplicaView, ReservationId, ReservationSpec, ReservationStatus, ServiceView,
};

use super::reserve::check_lease_funds;
use super::watch::follow;
use super::{BuyerError, Console, ensure_module, reserve};
use market_client::client::MarketClient;
use market_client::client::tokens::format_tokens;
use market_client::transport::Transport;

/// The first eight bytes of a WebAssembly component (magic, version 0x0d,
/// layer 1), as opposed to a core module's `\0asm 1 0 0 0`.
const COMPONENT_HEADER: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

/// Whether `bytes` is a WebAssembly component (not a core module).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(&COMPONENT_HEADER)
}

/// Uploads the component unless the matcher has it, then leases the
/// service `spec` describes (its `service.component` is set to the stored
/// component): the balance is checked first, before anything is uploaded.
pub async fn lease_service<T: Transport>(
    client: &MarketClient<T>,
    component: &[u8],
    mut spec: ReservationSpec,
    console: &mut Console,
) -> Result<ReservationId, BuyerError> {
    if !is_component(component) {
        return Err(BuyerError::Request(
            "a service is a WASI 0.2 component for the wasi:http/proxy world, and this file is \
             not a component (a core module, say): build it for wasm32-wasip2 or wrap it with \
             a component encoder (see workloads/README.md)"
                .into(),
        ));
    }
    if spec.service.is_none() {
        return Err(BuyerError::Request("the lease names no service".into()));
    }
    // The balance first: nothing is uploaded for a lease that can't be paid.
    check_lease_funds(client, &spec).await?;
    let upload = ensure_module(client, component, console).await?;
    if let Some(service) = spec.service.as_mut() {
        service.component = ModuleSource::Stored {
            sha256: upload.sha256,
        };
    }
    reserve(client, spec, console).await
}

/// The service lease `id`, or an error saying there is none.
pub async fn service<T: Transport>(
    client: &MarketClient<T>,
    id: ReservationId,
) -> Result<ServiceView, BuyerError> {
    reserve::found(|| client.get_service(id), &format!("service lease {id}")).await
}

/// Whether a lease has ended (every replica stopped, the rest refunded).
pub fn lease_over(v: &ServiceView) -> bool {
    matches!(
        v.status,
        ReservationStatus::Ended | ReservationStatus::Cancelled
    )
}

/// What changed in the replicas between two looks at a lease, one line per
/// change: a replica answering at a new endpoint, or losing its provider.
pub fn replica_changes(
    id: ReservationId,
    before: Option<&ServiceView>,
    now: &ServiceView,
) -> Vec<String> {
    let mut lines = Vec::new();
    for r in &now.replicas {
        let old = before.and_then(|b| b.replicas.iter().find(|o| o.slot == r.slot));
        let old_endpoint = old.and_then(|o| o.endpoint.as_ref());
        if old_endpoint == r.endpoint.as_ref() {
            continue;
        }
        let tcp = r
            .tcp_address
            .as_ref()
            .map_or(String::new(), |a| format!(", TCP at {a}"));
        match (&r.endpoint, r.provider) {
            (Some(url), Some(p)) => lines.push(format!(
                "service {id}: replica {} answers at {url}{tcp} (provider {p})",
                r.slot
            )),
            (Some(url), None) => lines.push(format!(
                "service {id}: replica {} answers at {url}{tcp}",
                r.slot
            )),
            (None, _) => lines.push(format!(
                "service {id}: replica {} lost its provider; matching another",
                r.slot
            )),
        }
    }
    if let Some(b) = before
        && b.status != now.status
    {
        lines.push(format!("service {id}: lease {:?}", now.status));
    }
    lines
}

/// Polls lease `id` every `poll`, printing each endpoint change, until the
/// lease ends (`Some(view)`) or `interrupt` resolves (`None`).
pub async fn follow_service<T: Transport>(
    client: &MarketClient<T>,
    id: ReservationId,
    poll: Duration,
    console: &mut Console,
    interrupt: impl Future<Output = ()>,
) -> Result<Option<ServiceView>, BuyerError> {
    let report = async |last: Option<&ServiceView>, view: &ServiceView| {
        for line in replica_changes(id, last, view) {
            console.line(line);
        }
        lease_over(view)
    };
    follow(poll, interrupt, async || service(client, id).await, report).await
}

fn health_text(r: &ReplicaView) -> String {
    let h = &r.health;
    match (h.last_ok, h.consecutive_failures) {
        (None, _) => "not probed yet".into(),
        (Some(true), _) => format!("healthy ({} probes)", h.probes),
        (Some(false), n) => format!(
            "failing ({n} probe{} in a row)",
            if n == 1 { "" } else { "s" }
        ),
    }
}

/// `market service ID`: the lease, its replicas with their endpoints and
/// health, and what it locked and paid.
pub fn describe_service(v: &ServiceView) -> String {
    let hosts = if v.allowed_hosts.is_empty() {
        "none (no outgoing requests)".to_string()
    } else {
        v.allowed_hosts.join(", ")
    };
    let mut out = format!(
        "service {}  {:?}\n  owner      {}\n  component  {}\n  terms      {} replica{} × {} \
         interval{} of {} s\n  health     GET {} on each replica\n  egress     {}\n  limits     \
         {} fuel, {} ms, {} at once, {} bytes of body per request\n  locked     {}\n  paid       {}",
        v.id,
        v.status,
        v.owner,
        hex::encode(v.component_sha256),
        v.replicas.len(),
        if v.replicas.len() == 1 { "" } else { "s" },
        v.intervals,
        if v.intervals == 1 { "" } else { "s" },
        v.interval_secs,
        v.health_path,
        hosts,
        v.limits.fuel_per_request,
        v.limits.timeout_ms,
        v.limits.max_concurrent,
        v.limits.max_body_bytes,
        format_tokens(v.locked),
        format_tokens(v.paid),
    );
    if let Some(t) = &v.tcp {
        out.push_str(&format!(
            "\n  tcp        a wasi:cli command on its provider's port: {} connections, {} bytes/s \
             each way, {} s idle, {} fuel/s",
            t.max_connections, t.max_bytes_per_second, t.idle_timeout_secs, t.fuel_per_second
        ));
    }
    for r in &v.replicas {
        let endpoint = match (&r.endpoint, &r.tcp_address) {
            (Some(url), Some(tcp)) => format!("{url} (TCP {tcp})"),
            (Some(url), None) => url.clone(),
            (None, _) if lease_over(v) => "no endpoint".to_string(),
            (None, _) => "no endpoint yet".to_string(),
        };
        out.push_str(&format!(
            "\n  replica {}  {:?}, provider {}, {}, {}, {} re-match{}",
            r.slot,
            r.status,
            r.provider
                .map_or_else(|| "none yet".to_string(), |p| p.to_text()),
            endpoint,
            health_text(r),
            r.rematches,
            if r.rematches == 1 { "" } else { "es" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Principal;
    use market_api::matcher::{JobStatus, ReplicaHealth, ServiceLimits};

    fn replica(slot: u32, endpoint: Option<&str>) -> ReplicaView {
        ReplicaView {
            slot,
            job_id: 10 + u64::from(slot),
            status: JobStatus::Running,
            provider: Some(Principal::from_slice(&[slot as u8 + 1; 29])),
            endpoint: endpoint.map(str::to_string),
            tcp_address: None,
            health: ReplicaHealth::default(),
            rematches: 0,
        }
    }

    fn view(replicas: Vec<ReplicaView>) -> ServiceView {
        ServiceView {
            id: 9,
            owner: Principal::anonymous(),
            status: ReservationStatus::Active,
            component_sha256: [0xab; 32],
            health_path: "/healthz".into(),
            allowed_hosts: vec!["api.example.com".into()],
            limits: ServiceLimits::default(),
            tcp: None,
            replicas,
            interval_secs: 60,
            intervals: 10,
            locked: 2_000_000,
            paid: 100_000,
        }
    }

    #[test]
    fn components_are_told_from_core_modules() {
        assert!(is_component(&[0, b'a', b's', b'm', 0x0d, 0, 1, 0, 7]));
        assert!(!is_component(&[0, b'a', b's', b'm', 1, 0, 0, 0]));
        assert!(!is_component(b"\0asm"));
    }

    #[test]
    fn endpoint_changes_are_told_once_each() {
        let first = view(vec![replica(0, None), replica(1, None)]);
        assert!(replica_changes(9, None, &first).is_empty());
        let up = view(vec![replica(0, Some("http://a/9/")), replica(1, None)]);
        let lines = replica_changes(9, Some(&first), &up);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("service 9: replica 0 answers at http://a/9/"),
            "{}",
            lines[0]
        );
        assert!(replica_changes(9, Some(&up), &up).is_empty());
        let lost = view(vec![replica(0, None), replica(1, None)]);
        assert_eq!(
            replica_changes(9, Some(&up), &lost),
            vec!["service 9: replica 0 lost its provider; matching another".to_string()]
        );
        let mut ended = lost.clone();
        ended.status = ReservationStatus::Ended;
        assert!(lease_over(&ended));
        assert_eq!(
            replica_changes(9, Some(&lost), &ended),
            vec!["service 9: lease Ended".to_string()]
        );
    }

    #[test]
    fn a_tcp_replica_is_shown_with_its_address() {
        let mut r = replica(0, Some("https://node.example/9/"));
        r.tcp_address = Some("node.example:7001".into());
        let mut v = view(vec![r]);
        v.tcp = Some(market_api::matcher::TcpSpec::default());
        let text = describe_service(&v);
        assert!(
            text.contains("https://node.example/9/ (TCP node.example:7001)"),
            "{text}"
        );
        assert!(
            text.contains("a wasi:cli command on its provider's port"),
            "{text}"
        );
        let lines = replica_changes(9, Some(&view(vec![replica(0, None)])), &v);
        assert!(lines[0].contains(", TCP at node.example:7001"), "{lines:?}");
    }

    #[test]
    fn a_lease_is_described_with_each_replica() {
        let mut r = replica(0, Some("https://node.example/9/"));
        r.health = ReplicaHealth {
            last_probe_ns: Some(1),
            last_ok: Some(false),
            consecutive_failures: 2,
            probes: 5,
        };
        let text = describe_service(&view(vec![r, replica(1, None)]));
        assert!(text.contains("service 9  Active"), "{text}");
        assert!(text.contains("2 replicas × 10 intervals of 60 s"), "{text}");
        assert!(text.contains("GET /healthz"), "{text}");
        assert!(text.contains("api.example.com"), "{text}");
        assert!(
            text.contains("https://node.example/9/, failing (2 probes in a row)"),
            "{text}"
        );
        assert!(text.contains("no endpoint yet, not probed yet"), "{text}");
    }
}
