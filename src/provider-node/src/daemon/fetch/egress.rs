//! Where a module download may go.
//!
//! A job names its module by a URL, and the buyer picks that URL. Fetched
//! naively, it makes the provider's machine a proxy into the provider's own
//! network: the cloud metadata service at 169.254.169.254 (with the
//! machine's credentials), services listening on loopback, the private
//! network behind the provider's firewall. So a download reaches only
//! public addresses, over https:
//!
//! - an IP-literal host is checked before the request is sent, and again
//!   at every redirect;
//! - a name is resolved by the HTTP client's own resolver, which drops
//!   every address that is not public: the client connects only to an
//!   address that was checked, so a name that resolves to an internal
//!   address (or is rebound to one after an earlier lookup) finds nothing
//!   to connect to;
//! - redirects are few, each hop checked like the first, and never from
//!   https to http;
//! - no proxy is used (a proxy would connect for us, to addresses we never
//!   see), and connecting and the whole download have deadlines.
//!
//! A provider who keeps a module mirror on its own network names its
//! addresses with [`EgressPolicy::with_mirror`]: those are reachable too,
//! and over plain http when the URL names the mirror by its address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{self, Attempt};
use url::{Host, Url};

pub use crate::net::is_public;

/// Why a download was refused before it reached a server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The URL is neither https nor http.
    #[error("only http(s) URLs are supported, not {0}:")]
    Scheme(String),
    /// Plain http to a host that is not a module mirror named by its
    /// address.
    #[error("plain http to {0}: only https, or http to a module mirror's address, is allowed")]
    PlainHttp(String),
    /// The URL has no host.
    #[error("the URL names no host")]
    NoHost,
    /// The host is an address of a loopback, private, link-local, shared,
    /// documentation, multicast or otherwise non-public range.
    #[error("{0} is not a public address")]
    Address(IpAddr),
    /// The name resolves to no public address.
    #[error("{0} resolves to no public address")]
    NoPublicAddress(String),
    /// A redirect from https to http.
    #[error("a redirect from https to http ({0})")]
    Downgrade(String),
    /// More redirects than the policy follows.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
}

/// Where module downloads may go, and how long they may take.
///
/// The default is [`EgressPolicy::strict`]: public addresses over https.
#[derive(Clone, Debug)]
pub struct EgressPolicy {
    mirrors: Vec<IpAddr>,
    max_redirects: usize,
    connect_timeout: Duration,
    download_timeout: Duration,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self::strict()
    }
}

impl EgressPolicy {
    /// Public addresses only, over https; at most 5 redirects; 10 s to
    /// connect and 2 minutes for the whole download (a 16 MiB module at
    /// 140 KiB/s).
    pub fn strict() -> Self {
        Self {
            mirrors: Vec::new(),
            max_redirects: 5,
            connect_timeout: Duration::from_secs(10),
            download_timeout: Duration::from_secs(120),
        }
    }

    /// Also allows `ip`, a module mirror on the provider's own network:
    /// over https whatever the URL calls it, and over plain http when the
    /// URL names it by this address.
    pub fn with_mirror(mut self, ip: IpAddr) -> Self {
        self.mirrors.push(ip.to_canonical());
        self
    }

    pub(super) fn is_mirror(&self, ip: IpAddr) -> bool {
        self.mirrors.contains(&ip.to_canonical())
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.is_mirror(ip)
    }

    /// Checks a URL (the job's, or a redirect's target) before any request
    /// goes to it: its scheme, and its host if that is an address. A name
    /// is checked when it resolves, by the client's resolver.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        let host = match url.host() {
            None => return Err(Refusal::NoHost),
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        };
        match url.scheme() {
            "https" => {}
            "http" if host.is_some_and(|ip| self.is_mirror(ip)) => {}
            "http" => {
                return Err(Refusal::PlainHttp(
                    url.host_str().unwrap_or_default().to_string(),
                ));
            }
            other => return Err(Refusal::Scheme(other.to_string())),
        }
        match host {
            Some(ip) if !self.allows(ip) => Err(Refusal::Address(ip)),
            _ => Ok(()),
        }
    }

    /// Whether the redirect to `next`, after `previous` (the job's URL and
    /// the redirects followed so far), may be followed.
    pub fn check_redirect(&self, previous: &[Url], next: &Url) -> Result<(), Refusal> {
        if previous.len() > self.max_redirects {
            return Err(Refusal::TooManyRedirects(self.max_redirects));
        }
        if previous.last().is_some_and(|p| p.scheme() == "https") && next.scheme() != "https" {
            return Err(Refusal::Downgrade(
                next.host_str().unwrap_or_default().to_string(),
            ));
        }
        self.check_url(next)
    }

    /// The HTTP client that enforces this policy.
    pub(super) fn client(&self) -> reqwest::Client {
        let policy = Arc::new(self.clone());
        let redirects = Arc::clone(&policy);
        reqwest::Client::builder()
            .dns_resolver(PublicResolver { policy })
            .redirect(redirect::Policy::custom(
                move |attempt: Attempt| match redirects
                    .check_redirect(attempt.previous(), attempt.url())
                {
                    Ok(()) => attempt.follow(),
                    Err(refusal) => attempt.error(refusal),
                },
            ))
            .no_proxy()
            .referer(false)
            .connect_timeout(self.connect_timeout)
            .timeout(self.download_timeout)
            .build()
            .expect("the TLS backend and resolver initialise")
    }
}

/// Resolves names with the system's resolver and keeps only the addresses
/// the policy allows: the connection can go nowhere else, whatever the
/// name resolved to when the URL was checked.
struct PublicResolver {
    policy: Arc<EgressPolicy>,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let name = name.as_str().to_string();
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Refusal::NoPublicAddress(name).into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use crate::net::tests::NOT_PUBLIC;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_mirror_is_allowed_in_any_form_of_its_address_and_nothing_else_is() {
        let policy = EgressPolicy::strict().with_mirror(ip("::ffff:10.1.2.3"));
        assert!(policy.allows(ip("10.1.2.3")));
        assert!(policy.allows(ip("::ffff:10.1.2.3")));
        assert!(!policy.allows(ip("10.1.2.4")));
        assert!(!EgressPolicy::default().allows(ip("10.1.2.3")));
        assert_eq!(
            policy.check_url(&url("http://10.1.2.3:8080/m.wasm")),
            Ok(())
        );
        assert_eq!(policy.check_url(&url("https://10.1.2.3/m.wasm")), Ok(()));
        assert_eq!(
            policy.check_url(&url("http://10.1.2.4/m.wasm")),
            Err(Refusal::PlainHttp("10.1.2.4".into()))
        );
        assert_eq!(
            policy.check_url(&url("https://10.1.2.4/m.wasm")),
            Err(Refusal::Address(ip("10.1.2.4")))
        );
    }

    #[test]
    fn urls_are_https_to_a_public_host() {
        let strict = EgressPolicy::strict();
        assert_eq!(
            strict.check_url(&url("https://modules.example/m.wasm")),
            Ok(())
        );
        assert_eq!(strict.check_url(&url("https://8.8.8.8/m.wasm")), Ok(()));
        assert_eq!(strict.check_url(&url("https://[2606:4700::1]/m")), Ok(()));
        for (u, refusal) in [
            (
                "ftp://modules.example/m.wasm",
                Refusal::Scheme("ftp".into()),
            ),
            ("file:///etc/passwd", Refusal::NoHost),
            (
                "http://modules.example/m.wasm",
                Refusal::PlainHttp("modules.example".into()),
            ),
            (
                "http://8.8.8.8/m.wasm",
                Refusal::PlainHttp("8.8.8.8".into()),
            ),
            (
                "https://169.254.169.254/latest/meta-data/",
                Refusal::Address(ip("169.254.169.254")),
            ),
            // Every spelling of an address is parsed to the address.
            (
                "https://2130706433/m.wasm",
                Refusal::Address(ip("127.0.0.1")),
            ),
            ("https://0x7f.1/m.wasm", Refusal::Address(ip("127.0.0.1"))),
            (
                "https://[::ffff:7f00:1]/m.wasm",
                Refusal::Address(ip("::ffff:127.0.0.1")),
            ),
            (
                "https://[fd00:ec2::254]/",
                Refusal::Address(ip("fd00:ec2::254")),
            ),
        ] {
            assert_eq!(strict.check_url(&url(u)), Err(refusal), "{u}");
        }
    }

    #[test]
    fn redirects_are_few_never_to_http_after_https_and_checked_like_the_url() {
        let policy = EgressPolicy::strict().with_mirror(ip("10.1.2.3"));
        let job = url("https://modules.example/m.wasm");
        let hops = |n: usize| vec![job.clone(); n];
        let next = url("https://cdn.example/m.wasm");
        assert_eq!(policy.check_redirect(&hops(1), &next), Ok(()));
        assert_eq!(policy.check_redirect(&hops(5), &next), Ok(()));
        assert_eq!(
            policy.check_redirect(&hops(6), &next),
            Err(Refusal::TooManyRedirects(5))
        );
        // Not even to the mirror, which http may reach directly.
        assert_eq!(
            policy.check_redirect(&hops(1), &url("http://10.1.2.3/m.wasm")),
            Err(Refusal::Downgrade("10.1.2.3".into()))
        );
        let from_mirror = [url("http://10.1.2.3/m.wasm")];
        assert_eq!(
            policy.check_redirect(&from_mirror, &url("http://10.1.2.3/n.wasm")),
            Ok(())
        );
        assert_eq!(
            policy.check_redirect(&from_mirror, &url("http://modules.example/n.wasm")),
            Err(Refusal::PlainHttp("modules.example".into()))
        );
        assert_eq!(
            policy.check_redirect(&hops(1), &url("https://[fe80::1]/m.wasm")),
            Err(Refusal::Address(ip("fe80::1")))
        );
    }
}
