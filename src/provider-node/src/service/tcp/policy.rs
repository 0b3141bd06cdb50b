//! What a TCP service's component may do with `wasi:sockets`: the check
//! wasmtime asks before every bind, listen, accept and connect
//! ([`SocketPolicy::allows`]).
//!
//! - **bind / listen**: only the one internal address the host gave the
//!   instance (env `LISTEN`:`PORT`, on loopback; the public port is the
//!   host's, see [`super::ingress`]). A bind to the unspecified address
//!   with port 0 is allowed too, because wasmtime asks it for the implicit
//!   bind before a connect; a listen after it is refused, since the
//!   listening address is then not the internal one.
//! - **accept**: only connections opened by the host's own ingress (their
//!   local addresses are registered before they connect), so every
//!   connection the component serves passed the connection cap, the rate
//!   limit and the idle timer.
//! - **connect**: only to an address that one of the lease's allowed hosts
//!   resolved to when the instance started, and only if the egress rules
//!   allow it ([`EgressPolicy::allows_address`]: public, or an address the
//!   provider explicitly opened for tests). A name with any internal
//!   address among its addresses is dropped entirely, as for HTTP egress.
//!   The component can't resolve names itself (name lookup is off: the
//!   provider's resolver would be a channel out, one query per name); the
//!   host passes it the addresses instead, in env `RESOLVED_HOSTS`.
//! - **UDP**: never.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use wasmtime_wasi::sockets::SocketAddrUse;

use crate::service::egress::EgressPolicy;

/// The addresses of the host's ingress connections to one instance: the
/// only peers its listener accepts.
#[derive(Clone, Debug, Default)]
pub struct IngressPeers(Arc<Mutex<HashSet<SocketAddr>>>);

impl IngressPeers {
    /// Lets `addr` connect (until [`Self::remove`]).
    pub fn insert(&self, addr: SocketAddr) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr);
    }

    /// Forgets `addr`.
    pub fn remove(&self, addr: &SocketAddr) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr);
    }

    /// Whether `addr` is one of the ingress's connections.
    pub fn contains(&self, addr: &SocketAddr) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(addr)
    }
}

/// The socket rules of one instance of a TCP service.
#[derive(Clone, Debug)]
pub struct SocketPolicy {
    /// Where the component listens.
    pub listen: SocketAddr,
    /// Who may connect to it.
    pub peers: IngressPeers,
    /// Addresses it may connect to, by allowed host.
    pub resolved: BTreeMap<String, Vec<IpAddr>>,
    /// The egress rules the addresses must also pass.
    pub egress: Arc<EgressPolicy>,
}

impl SocketPolicy {
    /// Whether the component may use `addr` for `use_`.
    pub fn allows(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        match use_ {
            SocketAddrUse::TcpBind => {
                addr == self.listen || (addr.ip().is_unspecified() && addr.port() == 0)
            }
            SocketAddrUse::TcpListen => addr == self.listen,
            SocketAddrUse::TcpAccept => self.peers.contains(&addr),
            SocketAddrUse::TcpConnect => {
                let ip = addr.ip().to_canonical();
                self.egress.allows_address(ip)
                    && self
                        .resolved
                        .values()
                        .any(|ips| ips.iter().any(|a| a.to_canonical() == ip))
            }
            SocketAddrUse::UdpBind | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => false,
        }
    }

    /// `RESOLVED_HOSTS` for the component: `host=ip,ip;host=ip`, in the
    /// order of the host names.
    pub fn resolved_env(&self) -> String {
        self.resolved
            .iter()
            .map(|(host, ips)| {
                let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                format!("{host}={}", ips.join(","))
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Resolves each of `egress`'s allowed hosts, keeping those whose every
/// address the egress rules allow (a name with one internal address is
/// dropped, and logged). A name that doesn't resolve is left out too: the
/// instance starts anyway, and the next start tries again.
pub async fn resolve_allowed(egress: &EgressPolicy) -> BTreeMap<String, Vec<IpAddr>> {
    let mut resolved = BTreeMap::new();
    for host in egress.allowed_hosts() {
        let lookup = tokio::time::timeout(
            egress.dns_timeout,
            tokio::net::lookup_host((host.as_str(), 0)),
        )
        .await;
        let addrs: Vec<SocketAddr> = match lookup {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                tracing::warn!(host = %host, error = %e, "allowed host does not resolve");
                continue;
            }
            Err(_) => {
                tracing::warn!(host = %host, "allowed host: name lookup timed out");
                continue;
            }
        };
        match egress.vet_addresses(addrs) {
            Ok(addrs) => {
                let mut ips: Vec<IpAddr> = addrs.iter().map(|a| a.ip().to_canonical()).collect();
                ips.sort();
                ips.dedup();
                resolved.insert(host.clone(), ips);
            }
            Err(e) => {
                tracing::warn!(host = %host, error = ?e, "allowed host refused: internal address");
            }
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTEN: &str = "127.0.0.1:40000";
    const PEER: &str = "127.0.0.1:50000";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The policy of an instance listening on [`LISTEN`], whose ingress
    /// connected from [`PEER`], allowed to reach `a.example` at
    /// 93.184.216.34.
    fn strict() -> SocketPolicy {
        let peers = IngressPeers::default();
        peers.insert(sa(PEER));
        SocketPolicy {
            listen: sa(LISTEN),
            peers,
            resolved: BTreeMap::from([("a.example".to_string(), vec![ip("93.184.216.34")])]),
            egress: Arc::new(EgressPolicy::new(&["a.example".to_string()], 1)),
        }
    }

    #[test]
    fn the_service_listens_on_its_address_and_serves_the_ingress() {
        let p = strict();
        assert!(p.allows(sa(LISTEN), SocketAddrUse::TcpBind));
        assert!(p.allows(sa(LISTEN), SocketAddrUse::TcpListen));
        assert!(p.allows(sa(PEER), SocketAddrUse::TcpAccept));
        // The implicit bind before a connect.
        assert!(p.allows(sa("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(p.allows(sa("[::]:0"), SocketAddrUse::TcpBind));
        assert!(p.allows(sa("93.184.216.34:443"), SocketAddrUse::TcpConnect));
        assert!(p.allows(sa("[::ffff:93.184.216.34]:443"), SocketAddrUse::TcpConnect));
        assert_eq!(p.resolved_env(), "a.example=93.184.216.34");
    }

    /// The attack: listening somewhere else than the assigned address (a
    /// second port, every interface, the wildcard after an implicit bind).
    /// A policy listening there would allow it; the instance's refuses.
    #[test]
    fn binding_or_listening_elsewhere_is_refused() {
        for other in [
            "127.0.0.1:40001",
            "0.0.0.0:40000",
            "0.0.0.0:0",
            "[::1]:40000",
            "10.0.0.5:40000",
        ] {
            let unchecked = SocketPolicy {
                listen: sa(other),
                ..strict()
            };
            assert!(
                unchecked.allows(sa(other), SocketAddrUse::TcpListen),
                "without the check, {other} would be listened on"
            );
            assert!(
                !strict().allows(sa(other), SocketAddrUse::TcpListen),
                "{other}"
            );
        }
        for other in [
            "127.0.0.1:40001",
            "0.0.0.0:40000",
            "10.0.0.5:40000",
            "127.0.0.1:0",
        ] {
            assert!(
                !strict().allows(sa(other), SocketAddrUse::TcpBind),
                "{other}"
            );
        }
    }

    /// The attack: a connection to the listener that did not come through
    /// the ingress (and so escaped its caps).
    #[test]
    fn only_the_ingress_connections_are_accepted() {
        let stranger = sa("127.0.0.1:50001");
        let unchecked = strict();
        unchecked.peers.insert(stranger);
        assert!(unchecked.allows(stranger, SocketAddrUse::TcpAccept));
        let p = strict();
        assert!(!p.allows(stranger, SocketAddrUse::TcpAccept));
        p.peers.remove(&sa(PEER));
        assert!(!p.allows(sa(PEER), SocketAddrUse::TcpAccept));
    }

    /// The attack: connecting to the provider's own network (loopback,
    /// private, link-local metadata), or to a public address no allowed
    /// host resolved to. With those addresses resolved and opened as local
    /// ones the connection would go out; the instance's policy refuses it.
    #[test]
    fn connections_go_only_to_public_addresses_of_allowed_hosts() {
        let targets = [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "1.1.1.1",
        ];
        for target in targets {
            let addr = SocketAddr::new(ip(target), 80);
            let mut egress = EgressPolicy::new(&["a.example".to_string()], 1);
            for t in targets {
                egress = egress.with_local_address(ip(t));
            }
            let unchecked = SocketPolicy {
                resolved: BTreeMap::from([("a.example".to_string(), vec![ip(target)])]),
                egress: Arc::new(egress),
                ..strict()
            };
            assert!(
                unchecked.allows(addr, SocketAddrUse::TcpConnect),
                "without the check, {target} would be reached"
            );
            assert!(
                !strict().allows(addr, SocketAddrUse::TcpConnect),
                "{target}"
            );
            // Resolved from an allowed host, an internal address is still
            // refused unless explicitly opened.
            let resolved_only = SocketPolicy {
                resolved: BTreeMap::from([("a.example".to_string(), vec![ip(target)])]),
                ..strict()
            };
            assert_eq!(
                resolved_only.allows(addr, SocketAddrUse::TcpConnect),
                crate::net::is_public(ip(target)),
                "{target}"
            );
        }
    }

    #[test]
    fn udp_is_refused() {
        let p = strict();
        for use_ in [
            SocketAddrUse::UdpBind,
            SocketAddrUse::UdpSend,
            SocketAddrUse::UdpReceive,
        ] {
            assert!(!p.allows(sa(LISTEN), use_));
            assert!(!p.allows(sa("93.184.216.34:53"), use_));
        }
    }

    #[tokio::test]
    async fn allowed_hosts_with_an_internal_address_are_dropped() {
        let egress = EgressPolicy::new(
            &[
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "93.184.216.34".to_string(),
            ],
            1,
        );
        let resolved = resolve_allowed(&egress).await;
        assert_eq!(
            resolved,
            BTreeMap::from([("93.184.216.34".to_string(), vec![ip("93.184.216.34")])])
        );
        let opened = egress.with_local_address(ip("127.0.0.1"));
        let resolved = resolve_allowed(&opened).await;
        assert_eq!(resolved.get("127.0.0.1"), Some(&vec![ip("127.0.0.1")]));
    }
}
