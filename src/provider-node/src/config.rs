//! The provider's settings: a TOML file, overridden by `PROVIDER_NODE_*`
//! environment variables, overridden by command-line flags.
//!
//! The network part (network, identity, canister ids, the file's own path)
//! is the client library's ([`market_client::config`]) under provider-node's
//! names; this module adds what only a provider has. The file is `--config
//! PATH`, else `$PROVIDER_NODE_CONFIG`, else
//! `$XDG_CONFIG_HOME/provider-node/config.toml` (`~/.config/...` when
//! `XDG_CONFIG_HOME` is unset); a missing default file is the same as an
//! empty one. The provider principal, directories, metrics address and job
//! concurrency also have a flag and a `PROVIDER_NODE_*` variable (the
//! fields of [`GlobalArgs`]); the daemon's timing (`daemon.poll_interval_ms`,
//! `daemon.shutdown_grace_secs`) and the other `[sandbox]` limits are set in
//! the file only. clap reads the variables (see [`market_client::config`]);
//! lookups of `HOME` and `XDG_*` go through a function.
//!
//! A path setting (the config file itself, `identity`, `cache_dir`,
//! `state_dir`) that starts with `~/` is taken from `$HOME`, wherever it was
//! written: a shell expands `~` on a command line, but not inside a TOML
//! file, an environment file or `--flag=~/...`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use candid::Principal;
use market_client::config::{self as common, App, ConfigError, Layers, NetworkArgs};
use serde::Deserialize;

pub use market_client::config::{LOCAL_URL, MAINNET_URL, expand_home, network_url};

/// provider-node's names: `~/.config/provider-node/`, `PROVIDER_NODE_*`.
pub const APP: App = App {
    name: "provider-node",
    env_prefix: "PROVIDER_NODE",
};

/// The config file's contents. Every field is optional.
#[derive(Debug, Default, PartialEq)]
pub struct FileConfig {
    /// Network, identity and canister ids.
    pub common: common::FileConfig,
    /// The provider principal the node works for, when the node's identity
    /// is a separate key (the profile's `node`); defaults to the identity.
    pub provider: Option<String>,
    /// Sandbox limits.
    pub sandbox: SandboxFile,
    /// Daemon timing.
    pub daemon: DaemonFile,
    /// Compiled-module and downloaded-module cache.
    pub cache_dir: Option<PathBuf>,
    /// The daemon's state (results not yet acknowledged).
    pub state_dir: Option<PathBuf>,
    /// `host:port` of the Prometheus endpoint; absent disables it.
    pub metrics_addr: Option<String>,
    /// The services' ingress.
    pub ingress: IngressFile,
}

/// The keys of the file only a provider has.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    provider: Option<String>,
    #[serde(default)]
    sandbox: SandboxFile,
    #[serde(default)]
    daemon: DaemonFile,
    cache_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    metrics_addr: Option<String>,
    #[serde(default)]
    ingress: IngressFile,
}

/// `[ingress]`: the HTTP listener in front of the services the node runs.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngressFile {
    /// `host:port` to listen on; absent or `off` runs no ingress.
    pub listen: Option<String>,
    /// The URL clients reach the listener at (`https://node.example`);
    /// a service's endpoint is `<public_url>/<id>/`. Default
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// PEM certificate chain, when the ingress terminates TLS itself.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// With a domain, `<id>.<domain>` also routes to service `id`.
    pub host_domain: Option<String>,
    /// Requests served at once across all services (instances).
    pub max_instances: Option<u32>,
    /// Connections open at once.
    pub max_connections: Option<usize>,
    /// Largest memory one service instance may use, MiB.
    pub max_service_memory_mib: Option<u64>,
    /// Ports (`START-END`) the node opens for TCP services, one per lease;
    /// absent: TCP services' slots are handed back.
    pub tcp_ports: Option<String>,
    /// The address those ports are opened on [default: 0.0.0.0].
    pub tcp_listen: Option<String>,
    /// The host name clients connect to TCP services at [default: the
    /// host of `public_url`].
    pub public_tcp_host: Option<String>,
}

/// `[sandbox]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxFile {
    /// Jobs run at once.
    pub concurrent_jobs: Option<usize>,
    /// Largest memory a job may use, MiB.
    pub max_job_memory_mib: Option<u64>,
    /// Largest module accepted, MiB.
    pub max_module_mib: Option<usize>,
    /// Compile-time limit, seconds.
    pub compile_timeout_secs: Option<f64>,
    /// Wall-clock limit of one job, seconds.
    pub max_job_secs: Option<u64>,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    /// How often the daemon wakes to look at assignments and deadlines, ms.
    pub poll_interval_ms: Option<u64>,
    /// How long a shutdown waits for running jobs, seconds.
    pub shutdown_grace_secs: Option<u64>,
}

/// Flags shared by every subcommand. Each has a `PROVIDER_NODE_*` variable
/// once the command went through [`common::with_env`]; `--help` shows it.
#[derive(clap::Args, Debug, Default, Clone, PartialEq)]
pub struct GlobalArgs {
    /// Network, identity and canister ids.
    #[command(flatten)]
    pub common: NetworkArgs,
    /// Provider principal, when the identity is a separate node key
    #[arg(long, global = true)]
    pub provider: Option<String>,
    /// Module cache directory [default: ~/.cache/provider-node]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Daemon state directory [default: ~/.local/state/provider-node]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Prometheus endpoint host:port; `off` disables it [default: 127.0.0.1:9464]
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Jobs run at once
    #[arg(long, global = true)]
    pub concurrent_jobs: Option<String>,
    /// Services' ingress host:port; `off` disables it [default: off]
    #[arg(long, global = true, value_name = "ADDR")]
    pub ingress_listen: Option<String>,
    /// Public base URL of the ingress [default: `http://` + the ingress address]
    #[arg(long, global = true, value_name = "URL")]
    pub public_url: Option<String>,
    /// Ports START-END opened for TCP services, one per lease [default: none]
    #[arg(long, global = true, value_name = "START-END")]
    pub tcp_ports: Option<String>,
}

/// The services' ingress after merging.
#[derive(Clone, Debug, PartialEq)]
pub struct IngressConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The URL clients reach it at, without a trailing slash.
    pub public_url: String,
    /// Certificate chain and key files, when it terminates TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Host-name routing domain.
    pub host_domain: Option<String>,
    /// Instances (requests in flight) across all services.
    pub max_instances: u32,
    /// Connections open at once.
    pub max_connections: usize,
    /// Largest memory of one service instance, bytes.
    pub max_service_memory_bytes: u64,
    /// TCP services, if the node serves them.
    pub tcp: Option<TcpIngressConfig>,
}

/// Where a node serves TCP services.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpIngressConfig {
    /// The ports it opens, one per lease.
    pub ports: std::ops::RangeInclusive<u16>,
    /// The address they are opened on.
    pub listen: std::net::IpAddr,
    /// The host name clients use (`<public_host>:<port>`).
    pub public_host: String,
}

/// The host of an `http(s)://host[:port]/...` URL, brackets kept on an
/// IPv6 literal.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map(|(h, _)| &authority[..=h.len()])?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// Parses `START-END` (inclusive, both 1 to 65535, START <= END).
fn port_range(s: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let (a, b) = s.trim().split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a >= 1 && a <= b).then_some(a..=b)
}

impl IngressConfig {
    /// The service host's settings; compiled components go to `cache_dir`.
    pub fn host_config(&self, cache_dir: &Path) -> crate::service::ServiceHostConfig {
        crate::service::ServiceHostConfig {
            max_instances: self.max_instances,
            max_memory_bytes: self.max_service_memory_bytes,
            cache_dir: Some(cache_dir.to_path_buf()),
            public_base_url: Some(self.public_url.clone()),
            ..crate::service::ServiceHostConfig::default()
        }
    }

    /// The listener's settings, the TLS files read.
    pub fn ingress_settings(
        &self,
    ) -> Result<crate::service::IngressSettings, crate::service::ServiceError> {
        let tls = match &self.tls {
            Some((cert, key)) => Some(crate::service::tls_config(cert, key)?),
            None => None,
        };
        Ok(crate::service::IngressSettings {
            max_connections: self.max_connections,
            host_domain: self.host_domain.clone(),
            tls,
            ..crate::service::IngressSettings::default()
        })
    }
}

/// Sandbox settings after merging.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxSettings {
    /// Jobs run at once.
    pub concurrent_jobs: usize,
    /// Largest memory a job may use, bytes.
    pub max_job_memory_bytes: u64,
    /// Largest module, bytes.
    pub max_module_bytes: usize,
    /// Compile-time limit.
    pub compile_timeout: Duration,
    /// Wall-clock limit of one job.
    pub max_job_time: Duration,
}

/// Every setting, merged. The network part reads through
/// (`settings.network`, `settings.identity`, `settings.canister_ids()`).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Network, identity and canister ids.
    pub common: common::Settings,
    /// The provider the node works for, if not the identity itself.
    pub provider: Option<Principal>,
    /// Sandbox settings.
    pub sandbox: SandboxSettings,
    /// Cache directory.
    pub cache_dir: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// Prometheus endpoint, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Daemon poll interval.
    pub poll_interval: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// The services' ingress, if enabled.
    pub ingress: Option<IngressConfig>,
}

impl std::ops::Deref for Settings {
    type Target = common::Settings;

    fn deref(&self) -> &common::Settings {
        &self.common
    }
}

/// The config file to read: `--config`, `$PROVIDER_NODE_CONFIG`, or the
/// default under the XDG config directory. The flag says whether it was
/// named explicitly (then it must exist).
pub fn config_path(
    flags: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(PathBuf, bool), ConfigError> {
    common::config_path(&APP, &flags.common, env)
}

/// Reads and parses a config file; a missing file is an empty config unless
/// `must_exist`.
pub fn read_file(path: &Path, must_exist: bool) -> Result<FileConfig, ConfigError> {
    parse_file(path, &common::read_text(path, must_exist)?)
}

/// Parses config file text.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let own_keys = [
        "provider",
        "sandbox",
        "daemon",
        "cache_dir",
        "state_dir",
        "metrics_addr",
        "ingress",
    ];
    let (common, own) = common::parse_parts::<ProviderFile>(path, text, &own_keys)?;
    Ok(FileConfig {
        common,
        provider: own.provider,
        sandbox: own.sandbox,
        daemon: own.daemon,
        cache_dir: own.cache_dir,
        state_dir: own.state_dir,
        metrics_addr: own.metrics_addr,
        ingress: own.ingress,
    })
}

/// Merges flags over the environment over the file over the defaults.
pub fn resolve(
    config_file: PathBuf,
    file: FileConfig,
    flags: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let common = common::resolve(&APP, config_file, &file.common, &flags.common, env)?;
    let layers = Layers {
        app: &APP,
        sources: &flags.common.sources,
        env,
    };
    let cache_dir = layers
        .path("cache_dir", &flags.cache_dir, &file.cache_dir)?
        .unwrap_or_else(|| layers.app_dir("XDG_CACHE_HOME", ".cache"));
    let state_dir = layers
        .path("state_dir", &flags.state_dir, &file.state_dir)?
        .unwrap_or_else(|| layers.app_dir("XDG_STATE_HOME", ".local/state"));
    let provider = layers.principal("provider", &flags.provider, &file.provider)?;
    let metrics_addr = match layers.pick(
        "metrics_addr",
        flags.metrics_addr.clone(),
        file.metrics_addr.clone(),
    ) {
        Some(p) if p.value == "off" || p.value.is_empty() => None,
        Some(p) => common::parse_value::<SocketAddr>("metrics_addr", Some(p))?,
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
    };
    let concurrent_jobs = layers
        .value::<usize>(
            "sandbox.concurrent_jobs",
            flags.concurrent_jobs.clone(),
            file.sandbox.concurrent_jobs.map(|n| n.to_string()),
        )?
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    if concurrent_jobs == 0 {
        return Err(ConfigError::Invalid {
            setting: "sandbox.concurrent_jobs".into(),
            source_name: "settings".into(),
            message: "must be at least 1".into(),
        });
    }
    let compile_timeout_secs = file.sandbox.compile_timeout_secs.unwrap_or(10.0);
    let compile_timeout =
        Duration::try_from_secs_f64(compile_timeout_secs).map_err(|e| ConfigError::Invalid {
            setting: "sandbox.compile_timeout_secs".into(),
            source_name: "config file".into(),
            message: e.to_string(),
        })?;
    let sandbox = SandboxSettings {
        concurrent_jobs,
        max_job_memory_bytes: file
            .sandbox
            .max_job_memory_mib
            .unwrap_or(1024)
            .saturating_mul(1 << 20),
        max_module_bytes: file
            .sandbox
            .max_module_mib
            .unwrap_or(16)
            .saturating_mul(1 << 20),
        compile_timeout,
        max_job_time: Duration::from_secs(file.sandbox.max_job_secs.unwrap_or(3600)),
    };
    let ingress = resolve_ingress(&layers, flags, &file.ingress)?;
    Ok(Settings {
        common,
        provider,
        sandbox,
        cache_dir,
        state_dir,
        metrics_addr,
        poll_interval: Duration::from_millis(file.daemon.poll_interval_ms.unwrap_or(1000).max(10)),
        shutdown_grace: Duration::from_secs(file.daemon.shutdown_grace_secs.unwrap_or(60)),
        ingress,
    })
}

fn resolve_ingress(
    layers: &Layers,
    flags: &GlobalArgs,
    file: &IngressFile,
) -> Result<Option<IngressConfig>, ConfigError> {
    let invalid = |setting: &str, message: &str| ConfigError::Invalid {
        setting: setting.into(),
        source_name: "settings".into(),
        message: message.into(),
    };
    let listen = match layers.pick(
        "ingress.ingress_listen",
        flags.ingress_listen.clone(),
        file.listen.clone(),
    ) {
        None => return Ok(None),
        Some(p) if p.value == "off" || p.value.is_empty() => return Ok(None),
        Some(p) => common::parse_value::<SocketAddr>("ingress.listen", Some(p))?
            .expect("a value was picked"),
    };
    let public_url = layers
        .pick(
            "ingress.public_url",
            flags.public_url.clone(),
            file.public_url.clone(),
        )
        .map(|p| p.value)
        .unwrap_or_else(|| format!("http://{listen}"));
    let public_url = public_url.trim_end_matches('/').to_string();
    if crate::service::endpoint(&public_url, 0).is_none() {
        return Err(invalid(
            "ingress.public_url",
            "must be an http:// or https:// URL",
        ));
    }
    let expand = |setting: &str, p: &Option<PathBuf>| layers.path(setting, &None, p);
    let tls = match (
        expand("ingress.tls_cert", &file.tls_cert)?,
        expand("ingress.tls_key", &file.tls_key)?,
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "ingress.tls_cert",
                "tls_cert and tls_key go together",
            ));
        }
    };
    let max_instances = file.max_instances.unwrap_or(128);
    if max_instances == 0 {
        return Err(invalid("ingress.max_instances", "must be at least 1"));
    }
    let max_service_memory_mib = file.max_service_memory_mib.unwrap_or(256);
    if max_service_memory_mib == 0 || max_service_memory_mib > 4096 {
        return Err(invalid(
            "ingress.max_service_memory_mib",
            "must be 1 to 4096",
        ));
    }
    let tcp = match layers.pick(
        "ingress.tcp_ports",
        flags.tcp_ports.clone(),
        file.tcp_ports.clone(),
    ) {
        None => None,
        Some(p) if p.value == "off" || p.value.is_empty() => None,
        Some(p) => {
            let ports = port_range(&p.value).ok_or_else(|| {
                invalid(
                    "ingress.tcp_ports",
                    "must be START-END, ports from 1 to 65535",
                )
            })?;
            let listen = match &file.tcp_listen {
                Some(ip) => ip
                    .parse()
                    .map_err(|_| invalid("ingress.tcp_listen", "must be an IP address"))?,
                None => std::net::IpAddr::from([0, 0, 0, 0]),
            };
            let public_host = match &file.public_tcp_host {
                Some(h) => h.clone(),
                None => url_host(&public_url)
                    .ok_or_else(|| invalid("ingress.public_tcp_host", "public_url has no host"))?
                    .to_string(),
            };
            let sample = format!("{public_host}:{}", ports.start());
            if let Err(e) = market_api::matcher::check_tcp_address(&sample) {
                return Err(invalid(
                    "ingress.public_tcp_host",
                    &format!("{sample} is no usable address: {e}"),
                ));
            }
            Some(TcpIngressConfig {
                ports,
                listen,
                public_host,
            })
        }
    };
    Ok(Some(IngressConfig {
        listen,
        public_url,
        tls,
        host_domain: file.host_domain.clone(),
        max_instances,
        max_connections: file.max_connections.unwrap_or(1024).max(1),
        max_service_memory_bytes: max_service_memory_mib << 20,
        tcp,
    }))
}

/// Reads the file named by the flags or the environment and merges.
pub fn load(
    flags: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let (path, must_exist) = config_path(flags, env)?;
    let file = read_file(&path, must_exist)?;
    resolve(path, file, flags, env)
}

/// An example config file, shown by `provider-node config-example`. The
/// paths are commented out so that the defaults, which follow
/// `$XDG_CONFIG_HOME` like `identity new` does, apply; `~/` in a path is
/// `$HOME`.
pub const EXAMPLE: &str = r#"# provider-node config. Flags and PROVIDER_NODE_* variables override it.
network = "ic"                    # ic | local | http(s)://host:port
# fetch_root_key = false          # true on local networks (the default there)
# identity = "~/.config/provider-node/identity.pem"   # default: under $XDG_CONFIG_HOME
# provider = "<principal>"        # when the identity is a separate node key
metrics_addr = "127.0.0.1:9464"   # or "off"
# cache_dir = "~/.cache/provider-node"
# state_dir = "~/.local/state/provider-node"

[canisters]
ledger = "ryjl3-tyaaa-aaaaa-aaaba-cai"
registry = "<registry canister id>"
escrow = "<escrow canister id>"
matcher = "<matcher canister id>"

[sandbox]
concurrent_jobs = 2
max_job_memory_mib = 1024
max_module_mib = 16
compile_timeout_secs = 10
max_job_secs = 3600

[daemon]
poll_interval_ms = 1000
shutdown_grace_secs = 60

# Services: the HTTP listener in front of the components the node runs.
# Without it, slots of service leases are handed back. The matcher probes
# each replica at <public_url>/<id>/<health path> by HTTPS outcall: on
# mainnet public_url must be https with a public CA's certificate.
[ingress]
# listen = "0.0.0.0:8080"         # or "off" (the default)
# public_url = "https://node.example.com"   # endpoints are <public_url>/<id>/; keep it stable
# tls_cert = "~/.config/provider-node/cert.pem"   # or TLS at your own reverse proxy
# tls_key = "~/.config/provider-node/key.pem"
# host_domain = "svc.node.example.com"      # also route <id>.<host_domain>
max_instances = 128               # requests in flight across all services
max_connections = 1024
max_service_memory_mib = 256
# TCP services (wasi:cli commands on wasi:sockets): one port of the range per
# lease, reported to the matcher as <public_tcp_host>:<port>; the matcher
# probes them through the ingress above. Without a range their slots are
# handed back.
# tcp_ports = "40000-40099"
# tcp_listen = "0.0.0.0"
# public_tcp_host = "node.example.com"      # default: the host of public_url
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// Whether this is the child process in which the test `test` runs with
    /// `vars` as its `PROVIDER_NODE_*` variables, which clap reads from the
    /// process environment; the parent runs the child and checks it passed.
    fn in_child(test: &str, vars: &[(&str, &str)]) -> bool {
        const CHILD: &str = "CONFIG_TESTS_CHILD";
        if std::env::var_os(CHILD).is_some() {
            return true;
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PROVIDER_NODE_") {
                child.env_remove(name);
            }
        }
        let out = child.envs(vars.iter().copied()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{test} in a child process:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        false
    }

    /// `provider-node <args>` parsed as `main` does, variables included.
    fn flags(args: &[&str]) -> GlobalArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            global: GlobalArgs,
        }
        let argv = std::iter::once("provider-node").chain(args.iter().copied());
        common::parse::<Cli>(&APP, argv, |cli| &mut cli.global.common.sources)
            .unwrap()
            .global
    }

    const A: &str = "ryjl3-tyaaa-aaaaa-aaaba-cai";
    const B: &str = "rrkah-fqaaa-aaaaa-aaaaq-cai";
    const C: &str = "ryjl3-tyaaa-aaaaa-aaaba-cai";

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let vars = [
            ("PROVIDER_NODE_NETWORK", "http://10.0.0.1:8080/"),
            ("PROVIDER_NODE_MATCHER", B),
            ("PROVIDER_NODE_CONCURRENT_JOBS", "5"),
        ];
        if !in_child(
            "config::tests::flags_beat_env_beat_file_beat_defaults",
            &vars,
        ) {
            return;
        }
        let file = parse_file(
            Path::new("c.toml"),
            &format!(
                "network = \"local\"\nidentity = \"/file/id.pem\"\nmetrics_addr = \"0.0.0.0:1\"\n[canisters]\nmatcher = \"{A}\"\nledger = \"{A}\"\n[sandbox]\nconcurrent_jobs = 3\n"
            ),
        )
        .unwrap();
        let env = env_of(&[("HOME", "/home/p")]);
        let flags = flags(&["--matcher", C, "--identity", "/flag/id.pem"]);
        let s = resolve("c.toml".into(), file, &flags, &env).unwrap();
        assert_eq!(s.network, "http://10.0.0.1:8080", "env over file");
        assert!(s.fetch_root_key, "not mainnet: fetch the root key");
        assert_eq!(s.identity, PathBuf::from("/flag/id.pem"), "flag over file");
        assert_eq!(
            s.matcher,
            Some(Principal::from_text(C).unwrap()),
            "flag over env"
        );
        assert_eq!(s.ledger, Some(Principal::from_text(A).unwrap()), "file");
        assert_eq!(s.registry, None);
        assert_eq!(s.sandbox.concurrent_jobs, 5, "env over file");
        assert_eq!(s.metrics_addr, Some("0.0.0.0:1".parse().unwrap()));
        assert_eq!(
            s.cache_dir,
            PathBuf::from("/home/p/.cache/provider-node"),
            "default"
        );
        let err = s.canister_ids().unwrap_err().to_string();
        assert!(
            err.contains("--registry") && err.contains("PROVIDER_NODE_REGISTRY"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_variable_is_unset() {
        let vars = [
            ("PROVIDER_NODE_NETWORK", ""),
            ("PROVIDER_NODE_FETCH_ROOT_KEY", ""),
            ("PROVIDER_NODE_CONCURRENT_JOBS", ""),
        ];
        if !in_child("config::tests::an_empty_variable_is_unset", &vars) {
            return;
        }
        let file = parse_file(Path::new("c.toml"), "network = \"local\"\n").unwrap();
        let s = resolve("c.toml".into(), file, &flags(&[]), &env_of(&[])).unwrap();
        assert_eq!(s.network, LOCAL_URL, "the file's");
        assert!(s.fetch_root_key);
        assert!(s.sandbox.concurrent_jobs >= 1);
    }

    #[test]
    fn defaults_are_mainnet_and_xdg_paths() {
        let env = env_of(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/xdg")]);
        let flags = GlobalArgs::default();
        let (path, explicit) = config_path(&flags, &env).unwrap();
        assert_eq!(path, PathBuf::from("/xdg/provider-node/config.toml"));
        assert!(!explicit);
        let s = resolve(path, FileConfig::default(), &flags, &env).unwrap();
        assert_eq!(s.network, MAINNET_URL);
        assert!(
            !s.fetch_root_key,
            "never fetch the root key on mainnet by default"
        );
        assert!(s.verify_query_signatures);
        assert_eq!(s.identity, PathBuf::from("/xdg/provider-node/identity.pem"));
        assert_eq!(s.state_dir, PathBuf::from("/h/.local/state/provider-node"));
        assert_eq!(s.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn a_bad_variable_names_the_setting_and_the_variable() {
        let vars = [("PROVIDER_NODE_LEDGER", "not-a-principal")];
        if !in_child(
            "config::tests::a_bad_variable_names_the_setting_and_the_variable",
            &vars,
        ) {
            return;
        }
        let err = resolve("f".into(), FileConfig::default(), &flags(&[]), &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("canisters.ledger") && err.contains("$PROVIDER_NODE_LEDGER"),
            "{err}"
        );
    }

    #[test]
    fn bad_input_names_the_setting_and_its_source() {
        let bad_network = flags(&["--network", "ftp://x"]);
        let err = resolve(
            "f".into(),
            FileConfig::default(),
            &bad_network,
            &env_of(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--network"), "{err}");

        let err = parse_file(Path::new("c.toml"), "netwerk = \"ic\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains("netwerk"), "{err}");

        let metrics_off = flags(&["--metrics-addr", "off"]);
        let s = resolve(
            "f".into(),
            FileConfig::default(),
            &metrics_off,
            &env_of(&[]),
        )
        .unwrap();
        assert_eq!(s.metrics_addr, None);
    }

    #[test]
    fn the_ingress_is_off_unless_it_listens_and_its_url_defaults_to_the_address() {
        let env = env_of(&[("HOME", "/h")]);
        let s = resolve("f".into(), FileConfig::default(), &flags(&[]), &env).unwrap();
        assert_eq!(s.ingress, None);
        let file = parse_file(
            Path::new("c.toml"),
            "[ingress]\nlisten = \"127.0.0.1:8080\"\nmax_instances = 4\ntls_cert = \"~/c.pem\"\ntls_key = \"~/k.pem\"\n",
        )
        .unwrap();
        let s = resolve("f".into(), file, &flags(&[]), &env).unwrap();
        let ingress = s.ingress.unwrap();
        assert_eq!(ingress.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(ingress.public_url, "http://127.0.0.1:8080");
        assert_eq!(ingress.max_instances, 4);
        assert_eq!(
            ingress.tls,
            Some((PathBuf::from("/h/c.pem"), PathBuf::from("/h/k.pem")))
        );
        assert_eq!(
            ingress
                .host_config(Path::new("/c"))
                .public_base_url
                .as_deref(),
            Some("http://127.0.0.1:8080")
        );
        let flags = flags(&[
            "--ingress-listen",
            "0.0.0.0:443",
            "--public-url",
            "https://node.example/",
        ]);
        let s = resolve("f".into(), FileConfig::default(), &flags, &env).unwrap();
        let ingress = s.ingress.unwrap();
        assert_eq!(ingress.public_url, "https://node.example");
        let bad = parse_file(
            Path::new("c.toml"),
            "[ingress]\nlisten = \"127.0.0.1:1\"\npublic_url = \"ftp://x\"\n",
        )
        .unwrap();
        assert!(resolve("f".into(), bad, &GlobalArgs::default(), &env).is_err());
    }

    #[test]
    fn tcp_ports_open_only_with_a_range_and_name_the_public_host() {
        let env = env_of(&[("HOME", "/h")]);
        let ingress = |text: &str, args: &[&str]| {
            let file = parse_file(Path::new("c.toml"), text).unwrap();
            resolve("f".into(), file, &flags(args), &env).map(|s| s.ingress.unwrap())
        };
        let base = "[ingress]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"https://node.example:8443/x\"\n";
        assert_eq!(ingress(base, &[]).unwrap().tcp, None, "no range, no TCP");
        let tcp = ingress(base, &["--tcp-ports", "4000-4009"])
            .unwrap()
            .tcp
            .unwrap();
        assert_eq!(tcp.ports, 4000..=4009);
        assert_eq!(tcp.listen, std::net::IpAddr::from([0, 0, 0, 0]));
        assert_eq!(tcp.public_host, "node.example");
        let file = format!(
            "{base}tcp_ports = \"5000-5000\"\ntcp_listen = \"10.0.0.2\"\npublic_tcp_host = \"tcp.node.example\"\n"
        );
        let tcp = ingress(&file, &[]).unwrap().tcp.unwrap();
        assert_eq!(tcp.ports, 5000..=5000);
        assert_eq!(tcp.listen, std::net::IpAddr::from([10, 0, 0, 2]));
        assert_eq!(tcp.public_host, "tcp.node.example");
        assert_eq!(ingress(&file, &["--tcp-ports", "off"]).unwrap().tcp, None);
        let v6 = "[ingress]\nlisten = \"[::1]:8080\"\ntcp_ports = \"1-2\"\n";
        assert_eq!(ingress(v6, &[]).unwrap().tcp.unwrap().public_host, "[::1]");
        for bad in ["4009-4000", "0-10", "4000", "a-b", "4000-70000"] {
            assert!(ingress(base, &["--tcp-ports", bad]).is_err(), "{bad}");
        }
        let bad_host = format!("{base}tcp_ports = \"1-2\"\npublic_tcp_host = \"a b\"\n");
        assert!(ingress(&bad_host, &[]).is_err());
        let bad_listen = format!("{base}tcp_ports = \"1-2\"\ntcp_listen = \"x\"\n");
        assert!(ingress(&bad_listen, &[]).is_err());
    }

    #[test]
    fn the_example_parses() {
        let file = parse_file(Path::new("example"), EXAMPLE).unwrap();
        assert_eq!(file.sandbox.concurrent_jobs, Some(2));
        assert!(read_file(Path::new("/nonexistent/provider-node.toml"), false).is_ok());
        assert!(read_file(Path::new("/nonexistent/provider-node.toml"), true).is_err());
    }

    #[test]
    fn the_example_keeps_the_identity_where_identity_new_writes_it() {
        // The quick start: `identity new` (no config file yet), then the
        // example is written as the config file.
        let env = env_of(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/xdg")]);
        let flags = GlobalArgs::default();
        let before = resolve("c".into(), FileConfig::default(), &flags, &env).unwrap();
        let filled_in = EXAMPLE
            .replace("<registry canister id>", B)
            .replace("<escrow canister id>", B)
            .replace("<matcher canister id>", B);
        let file = parse_file(Path::new("example"), &filled_in).unwrap();
        let after = resolve("c".into(), file, &flags, &env).unwrap();
        assert_eq!(after.identity, before.identity);
        assert_eq!(after.cache_dir, before.cache_dir);
        assert_eq!(after.state_dir, before.state_dir);
        // Uncommented, the example's paths mean the home directory.
        let uncommented = filled_in.replace("# identity =", "identity =");
        let file = parse_file(Path::new("example"), &uncommented).unwrap();
        let s = resolve("c".into(), file, &flags, &env).unwrap();
        assert_eq!(
            s.identity,
            PathBuf::from("/h/.config/provider-node/identity.pem")
        );
    }

    #[test]
    fn a_leading_tilde_is_home_in_the_file_the_environment_and_flags() {
        let vars = [
            ("PROVIDER_NODE_STATE_DIR", "~/state"),
            ("PROVIDER_NODE_CONFIG", "~/p.toml"),
        ];
        if !in_child(
            "config::tests::a_leading_tilde_is_home_in_the_file_the_environment_and_flags",
            &vars,
        ) {
            return;
        }
        let file = parse_file(
            Path::new("c.toml"),
            "identity = \"~/keys/id.pem\"\ncache_dir = \"~\"\n",
        )
        .unwrap();
        let env = env_of(&[("HOME", "/home/p")]);
        let s = resolve("c.toml".into(), file, &flags(&[]), &env).unwrap();
        assert_eq!(s.identity, PathBuf::from("/home/p/keys/id.pem"), "file");
        assert_eq!(s.cache_dir, PathBuf::from("/home/p"), "a bare ~");
        assert_eq!(s.state_dir, PathBuf::from("/home/p/state"), "environment");
        assert_eq!(
            config_path(&flags(&[]), &env).unwrap(),
            (PathBuf::from("/home/p/p.toml"), true),
            "$PROVIDER_NODE_CONFIG"
        );

        let flags = flags(&[
            "--config",
            "~/flag.toml",
            "--identity",
            "~/flag.pem",
            "--cache-dir",
            "~/c",
        ]);
        assert_eq!(
            config_path(&flags, &env).unwrap().0,
            PathBuf::from("/home/p/flag.toml"),
            "--config"
        );
        let s = resolve("c.toml".into(), FileConfig::default(), &flags, &env).unwrap();
        assert_eq!(s.identity, PathBuf::from("/home/p/flag.pem"), "--identity");
        assert_eq!(s.cache_dir, PathBuf::from("/home/p/c"), "--cache-dir");

        // Only a leading `~` or `~/` is the home directory.
        for kept in ["~alice/id.pem", "/srv/~/id.pem", "id~.pem", "./~/id.pem"] {
            assert_eq!(expand_home(kept, &env).unwrap(), PathBuf::from(kept));
        }
    }

    #[test]
    fn a_tilde_without_home_names_the_setting_and_its_source() {
        let vars = [("PROVIDER_NODE_IDENTITY", "~/id.pem")];
        if !in_child(
            "config::tests::a_tilde_without_home_names_the_setting_and_its_source",
            &vars,
        ) {
            return;
        }
        let env = env_of(&[]);
        let err = resolve("f".into(), FileConfig::default(), &flags(&[]), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("identity")
                && err.contains("$PROVIDER_NODE_IDENTITY")
                && err.contains("$HOME is not set"),
            "{err}"
        );
        let flags = flags(&["--config", "~/c.toml"]);
        let err = load(&flags, &env).unwrap_err().to_string();
        assert!(err.contains("--config") && err.contains("$HOME"), "{err}");
    }
}
