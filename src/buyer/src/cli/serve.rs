//! Flags of `market serve` and `market service`.

use std::path::PathBuf;

use candid::Principal;
use clap::Args;
use market_api::Tokens;
use market_api::matcher::{
    MAX_HEALTH_PATH_LEN, MAX_HOST_LEN, ModuleSource, ReservationSpec, ServiceLimits, ServiceSpec,
    Sha256, TcpSpec,
};

use super::parse::{SecretEnv, amount, env_pair, https_url, price, secret_env, sha256_hex};
use market_client::client::prices::Price;

/// Fuel per interval a service's slots must offer (the default of
/// `market reserve --fuel`).
pub const SLOT_FUEL_PER_INTERVAL: u64 = 1_000_000_000;

/// Flags of `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The service: a WASI 0.2 component for the `wasi:http/proxy` world.
    pub component: PathBuf,
    /// The lease.
    #[command(flatten)]
    pub lease: LeaseFlags,
    /// Print the lease's id once it is made, without following it.
    #[arg(long)]
    pub detach: bool,
}

/// Flags of `sns payload serve`: the component is named, not uploaded (a
/// proposal can't carry it).
#[derive(Args, Debug, Clone)]
pub struct SnsServeArgs {
    /// sha256 of the component (64 hex digits): stored in the matcher (`market
    /// upload` stores it), or the checksum of `--component-url`.
    #[arg(long, value_name = "HEX", value_parser = sha256_hex)]
    pub component_sha256: Sha256,
    /// Have each provider fetch the component from this https URL instead.
    #[arg(long, value_name = "URL", value_parser = https_url)]
    pub component_url: Option<String>,
    /// The lease.
    #[command(flatten)]
    pub lease: LeaseFlags,
}

impl SnsServeArgs {
    /// The lease these flags propose, paid in `ledger`.
    pub fn spec(&self, ledger: Principal) -> ReservationSpec {
        let component = match &self.component_url {
            Some(url) => ModuleSource::Url {
                url: url.clone(),
                sha256: self.component_sha256,
            },
            None => ModuleSource::Stored {
                sha256: self.component_sha256,
            },
        };
        self.lease.spec(ledger, component)
    }
}

/// The terms of a service lease, shared by `serve` and `sns payload serve`.
#[derive(Args, Debug, Clone)]
pub struct LeaseFlags {
    /// Replicas, each on a different provider.
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub replicas: u32,
    /// Intervals leased per replica; each is paid while the replica answers
    /// the matcher's probes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub intervals: u32,
    /// Highest price per replica and interval, in ICP (`0.01`, `0.01icp`)
    /// or e8s, or in XDR (`0.02xdr`: paid in ICP, locked at the rate when
    /// the lease is made plus the market's buffer).
    #[arg(long, value_name = "PRICE", value_parser = price)]
    pub max_price: Price,
    /// Length of one paid interval.
    #[arg(long, default_value_t = 60, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_secs: u64,
    /// A host the service may send HTTP requests to (repeatable); nothing
    /// else is reachable, and never a private or loopback address.
    #[arg(long = "allow-host", value_name = "HOST", value_parser = host_name)]
    pub allow_hosts: Vec<String>,
    /// An environment variable for the service (repeatable). A lease's
    /// plain env is stored in the clear (shown only to its owner, delegates
    /// and replicas' providers): secrets go in --secret-env.
    #[arg(long = "env", value_name = "K=V", value_parser = env_pair)]
    pub env: Vec<(String, String)>,
    /// A secret environment variable for the service (repeatable):
    /// `NAME=VALUE`, or `NAME` alone for the value of your own variable
    /// NAME. Sealed to the lease's key: only the providers running its
    /// replicas read it (in plain, while they serve); the matcher stores
    /// ciphertext. It replaces an --env variable of the same name. Needs a
    /// market with a privacy key.
    #[arg(long = "secret-env", value_name = "NAME[=VALUE]", value_parser = secret_env)]
    pub secret_env: Vec<SecretEnv>,
    /// The path the matcher probes on each replica; it must answer 2xx.
    #[arg(long = "health", default_value = "/healthz", value_name = "PATH", value_parser = health_path)]
    pub health_path: String,
    /// Memory of each instance.
    #[arg(long, default_value_t = 64, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    pub memory_mib: u32,
    /// Fuel one request may burn.
    #[arg(long, default_value_t = ServiceLimits::default().fuel_per_request, value_name = "N")]
    pub fuel_per_request: u64,
    /// Time one request may take, response included, in milliseconds.
    #[arg(long, default_value_t = ServiceLimits::default().timeout_ms, value_name = "MS")]
    pub timeout_ms: u64,
    /// Requests one replica serves at once; more are answered 503.
    #[arg(long, default_value_t = ServiceLimits::default().max_concurrent, value_name = "N")]
    pub max_concurrent: u32,
    /// Largest request and response body, in bytes.
    #[arg(long, default_value_t = ServiceLimits::default().max_body_bytes, value_name = "BYTES")]
    pub max_body_bytes: u64,
    /// Smallest stake a provider must hold.
    #[arg(long, default_value = "0", value_name = "ICP", value_parser = amount)]
    pub min_stake: Tokens,
    /// Times one replica is matched anew after its provider fails it.
    #[arg(long, default_value_t = 3, value_name = "R")]
    pub max_rematches: u32,
    /// A raw TCP service: the component is a `wasi:cli/run` command using
    /// `wasi:sockets`, one long-lived instance per replica listening on the
    /// port its provider assigns (env `PORT`, `LISTEN`); each replica's
    /// `host:port` is shown with its endpoint. The per-request limits above
    /// don't apply; the four below do.
    #[arg(long)]
    pub tcp: bool,
    /// With --tcp: client connections open at once per replica.
    #[arg(long, default_value_t = TcpSpec::default().max_connections, value_name = "N", requires = "tcp")]
    pub max_connections: u32,
    /// With --tcp: bytes per second each connection may move each way.
    #[arg(long, default_value_t = TcpSpec::default().max_bytes_per_second, value_name = "BYTES", requires = "tcp")]
    pub max_bytes_per_second: u64,
    /// With --tcp: seconds a connection may stay idle before it is closed.
    #[arg(long, default_value_t = TcpSpec::default().idle_timeout_secs, value_name = "S", requires = "tcp")]
    pub idle_timeout_secs: u64,
    /// With --tcp: fuel the instance may burn per second.
    #[arg(long, default_value_t = TcpSpec::default().fuel_per_second, value_name = "N", requires = "tcp")]
    pub fuel_per_second: u64,
}

impl LeaseFlags {
    /// The lease these flags ask for, of `component`, paid in `ledger`.
    pub fn spec(&self, ledger: Principal, component: ModuleSource) -> ReservationSpec {
        ReservationSpec {
            currency: self.max_price.spec_currency(),
            slots: self.replicas,
            memory_mib: self.memory_mib,
            // What a slot must offer per interval: the reservation
            // default; a service is limited per request instead.
            fuel_per_interval: SLOT_FUEL_PER_INTERVAL,
            interval_secs: self.interval_secs,
            intervals: self.intervals,
            max_price_per_interval: self.max_price.amount,
            ledger,
            min_provider_stake: self.min_stake,
            max_rematches: self.max_rematches,
            delegates: vec![],
            service: Some(ServiceSpec {
                sealed: None,
                component,
                env: self.env.clone(),
                allowed_hosts: self.allow_hosts.clone(),
                health_path: self.health_path.clone(),
                callback: None,
                limits: ServiceLimits {
                    fuel_per_request: self.fuel_per_request,
                    timeout_ms: self.timeout_ms,
                    max_concurrent: self.max_concurrent,
                    max_body_bytes: self.max_body_bytes,
                },
                tcp: self.tcp.then_some(TcpSpec {
                    max_connections: self.max_connections,
                    max_bytes_per_second: self.max_bytes_per_second,
                    idle_timeout_secs: self.idle_timeout_secs,
                    fuel_per_second: self.fuel_per_second,
                }),
            }),
        }
    }
}

impl ServeArgs {
    /// The lease these flags ask for, paid in `ledger`; its component is
    /// set once uploaded.
    pub fn spec(&self, ledger: Principal) -> ReservationSpec {
        self.lease
            .spec(ledger, ModuleSource::Stored { sha256: [0; 32] })
    }
}

/// A host name (or IP literal) as the lease lists it: lowercase, no
/// scheme, port or path.
pub fn host_name(text: &str) -> Result<String, String> {
    let host = text.trim().to_ascii_lowercase();
    let name_like = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let ipv6 = host.parse::<std::net::Ipv6Addr>().is_ok();
    if host.is_empty()
        || host.len() > MAX_HOST_LEN
        || !(name_like || ipv6)
        || host.starts_with('.')
        || host.ends_with('.')
    {
        return Err(format!(
            "expected a host name such as api.example.com (no scheme, port or path), got {text:?}"
        ));
    }
    Ok(host)
}

/// A path starting with `/`, printable ASCII without spaces.
pub fn health_path(text: &str) -> Result<String, String> {
    if text.starts_with('/')
        && text.len() <= MAX_HEALTH_PATH_LEN
        && text.chars().all(|c| c.is_ascii_graphic())
    {
        Ok(text.to_string())
    } else {
        Err(format!(
            "expected a path such as /healthz (at most {MAX_HEALTH_PATH_LEN} bytes, no spaces)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_health_paths_are_checked() {
        assert_eq!(host_name("API.Example.com").unwrap(), "api.example.com");
        assert!(host_name("https://api.example.com").is_err());
        assert!(host_name("api.example.com/x").is_err());
        assert!(host_name("").is_err());
        assert!(host_name("api.example.com:8080").is_err());
        assert_eq!(host_name("::1").unwrap(), "::1");
        assert_eq!(health_path("/healthz").unwrap(), "/healthz");
        assert!(health_path("healthz").is_err());
        assert!(health_path("/a b").is_err());
    }
}
