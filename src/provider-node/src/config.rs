//! Settings: a TOML file, overridden by environment variables, overridden by
//! command-line flags.
//!
//! The file is `--config PATH`, else `$PROVIDER_NODE_CONFIG`, else
//! `$XDG_CONFIG_HOME/provider-node/config.toml` (`~/.config/...` when
//! `XDG_CONFIG_HOME` is unset); a missing default file is the same as an
//! empty one. The network, canister ids, identity, directories, metrics
//! address and job concurrency also have a flag and a `PROVIDER_NODE_*`
//! variable (listed on [`GlobalArgs`]); the daemon's timing
//! (`daemon.poll_interval_ms`, `daemon.shutdown_grace_secs`) and the
//! `[sandbox]` limits are set in the file only. Lookups of the environment go through a
//! function so that tests don't touch the process environment.
//!
//! A path setting (the config file itself, `identity`, `cache_dir`,
//! `state_dir`) that starts with `~/` is taken from `$HOME`, wherever it was
//! written: a shell expands `~` on a command line, but not inside a TOML
//! file, an environment file or `--flag=~/...`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use candid::Principal;
use serde::Deserialize;

use crate::client::CanisterIds;

/// The IC's public API boundary nodes.
pub const MAINNET_URL: &str = "https://icp-api.io";
/// Where dfx and icp-cli run a local replica.
pub const LOCAL_URL: &str = "http://127.0.0.1:4943";

/// Why the settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A value does not parse.
    #[error("{setting} ({source_name}): {message}")]
    Invalid {
        /// The setting, e.g. `canisters.matcher`.
        setting: &'static str,
        /// Where the value came from (flag, variable or file).
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A setting the command needs is not set anywhere.
    #[error(
        "{setting} is not set: pass --{flag}, set {env}, or put it in the config file ({file})"
    )]
    Missing {
        /// The setting.
        setting: &'static str,
        /// Its flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// The config file consulted.
        file: String,
    },
}

/// The config file's contents. Every field is optional.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `ic`, `local`, or a URL.
    pub network: Option<String>,
    /// Fetch the root key from the network (local networks only).
    pub fetch_root_key: Option<bool>,
    /// Verify node signatures on query answers.
    pub verify_query_signatures: Option<bool>,
    /// The identity PEM file.
    pub identity: Option<PathBuf>,
    /// The provider principal the node works for, when the node's identity
    /// is a separate key (the profile's `node`); defaults to the identity.
    pub provider: Option<String>,
    /// Canister ids.
    #[serde(default)]
    pub canisters: CanisterFile,
    /// Sandbox limits.
    #[serde(default)]
    pub sandbox: SandboxFile,
    /// Daemon timing.
    #[serde(default)]
    pub daemon: DaemonFile,
    /// Compiled-module and downloaded-module cache.
    pub cache_dir: Option<PathBuf>,
    /// The daemon's state (results not yet acknowledged).
    pub state_dir: Option<PathBuf>,
    /// `host:port` of the Prometheus endpoint; absent disables it.
    pub metrics_addr: Option<String>,
}

/// `[canisters]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CanisterFile {
    /// Ledger canister id.
    pub ledger: Option<String>,
    /// Registry canister id.
    pub registry: Option<String>,
    /// Escrow canister id.
    pub escrow: Option<String>,
    /// Matcher canister id.
    pub matcher: Option<String>,
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

/// Flags shared by every subcommand. Each has a `PROVIDER_NODE_*` variable.
#[derive(clap::Args, Debug, Default, Clone, PartialEq)]
pub struct GlobalArgs {
    /// Config file [env: PROVIDER_NODE_CONFIG] [default: ~/.config/provider-node/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Network: `ic`, `local` or a URL [env: PROVIDER_NODE_NETWORK] [default: ic]
    #[arg(long, global = true)]
    pub network: Option<String>,
    /// Fetch the root key (local networks) [env: PROVIDER_NODE_FETCH_ROOT_KEY]
    #[arg(long, global = true)]
    pub fetch_root_key: Option<bool>,
    /// Identity PEM file [env: PROVIDER_NODE_IDENTITY] [default: ~/.config/provider-node/identity.pem]
    #[arg(long, global = true, value_name = "PEM")]
    pub identity: Option<PathBuf>,
    /// Provider principal, when the identity is a separate node key [env: PROVIDER_NODE_PROVIDER]
    #[arg(long, global = true)]
    pub provider: Option<String>,
    /// Ledger canister id [env: PROVIDER_NODE_LEDGER]
    #[arg(long, global = true)]
    pub ledger: Option<String>,
    /// Registry canister id [env: PROVIDER_NODE_REGISTRY]
    #[arg(long, global = true)]
    pub registry: Option<String>,
    /// Escrow canister id [env: PROVIDER_NODE_ESCROW]
    #[arg(long, global = true)]
    pub escrow: Option<String>,
    /// Matcher canister id [env: PROVIDER_NODE_MATCHER]
    #[arg(long, global = true)]
    pub matcher: Option<String>,
    /// Module cache directory [env: PROVIDER_NODE_CACHE_DIR] [default: ~/.cache/provider-node]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Daemon state directory [env: PROVIDER_NODE_STATE_DIR] [default: ~/.local/state/provider-node]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Prometheus endpoint host:port; `off` disables it [env: PROVIDER_NODE_METRICS_ADDR] [default: 127.0.0.1:9464]
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Jobs run at once [env: PROVIDER_NODE_CONCURRENT_JOBS]
    #[arg(long, global = true)]
    pub concurrent_jobs: Option<usize>,
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

/// Every setting, merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The config file consulted (it may not exist).
    pub config_file: PathBuf,
    /// Network URL.
    pub network: String,
    /// Whether to fetch the root key.
    pub fetch_root_key: bool,
    /// Whether to verify query signatures.
    pub verify_query_signatures: bool,
    /// Identity file.
    pub identity: PathBuf,
    /// The provider the node works for, if not the identity itself.
    pub provider: Option<Principal>,
    /// Ledger id.
    pub ledger: Option<Principal>,
    /// Registry id.
    pub registry: Option<Principal>,
    /// Escrow id.
    pub escrow: Option<Principal>,
    /// Matcher id.
    pub matcher: Option<Principal>,
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
}

/// Where a value came from, for error messages.
struct Pick<T> {
    value: T,
    source: String,
}

fn pick(
    flag: Option<String>,
    flag_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    env_name: &str,
    file: Option<String>,
    file_key: &str,
) -> Option<Pick<String>> {
    if let Some(v) = flag {
        return Some(Pick {
            value: v,
            source: format!("--{flag_name}"),
        });
    }
    if let Some(v) = env(env_name).filter(|v| !v.is_empty()) {
        return Some(Pick {
            value: v,
            source: format!("${env_name}"),
        });
    }
    file.map(|v| Pick {
        value: v,
        source: format!("config file key {file_key}"),
    })
}

fn parse_principal(
    setting: &'static str,
    p: Option<Pick<String>>,
) -> Result<Option<Principal>, ConfigError> {
    p.map(|p| {
        Principal::from_text(p.value.trim()).map_err(|e| ConfigError::Invalid {
            setting,
            source_name: p.source,
            message: format!("{:?} is not a principal: {e}", p.value),
        })
    })
    .transpose()
}

fn parse_value<T: std::str::FromStr>(
    setting: &'static str,
    p: Option<Pick<String>>,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    p.map(|p| {
        p.value
            .trim()
            .parse::<T>()
            .map_err(|e| ConfigError::Invalid {
                setting,
                source_name: p.source,
                message: format!("{:?}: {e}", p.value),
            })
    })
    .transpose()
}

/// `ic` and `local` as URLs; anything else must be an http(s) URL.
pub fn network_url(network: &str) -> Result<String, String> {
    match network.trim() {
        "ic" | "mainnet" => Ok(MAINNET_URL.into()),
        "local" => Ok(LOCAL_URL.into()),
        url if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(url.trim_end_matches('/').to_string())
        }
        other => Err(format!(
            "{other:?} is not `ic`, `local` or an http(s):// URL"
        )),
    }
}

fn is_mainnet(url: &str) -> bool {
    ["icp-api.io", "ic0.app", "icp0.io"]
        .iter()
        .any(|host| url.contains(host))
}

/// `path` with a leading `~` or `~/` replaced by `$HOME`; other paths
/// (including `~user/...`) unchanged. `Err` names what is missing when the
/// path needs `$HOME` and it is unset.
pub fn expand_home(path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    let rest = match path.strip_prefix('~') {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => return Ok(PathBuf::from(path)),
    };
    let home = env("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{path:?} starts with ~ but $HOME is not set"))?;
    let home = PathBuf::from(home);
    Ok(if rest.is_empty() {
        home
    } else {
        home.join(rest)
    })
}

fn home_dir(env: &dyn Fn(&str) -> Option<String>, xdg: &str, fallback: &str) -> PathBuf {
    match env(xdg).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(fallback),
    }
}

/// The config file to read: `--config`, `$PROVIDER_NODE_CONFIG`, or the
/// default under the XDG config directory. The flag says whether it was
/// named explicitly (then it must exist).
pub fn config_path(
    flags: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(PathBuf, bool), ConfigError> {
    let named = pick(
        flags.config.as_ref().map(|p| p.display().to_string()),
        "config",
        env,
        "PROVIDER_NODE_CONFIG",
        None,
        "",
    );
    match named {
        Some(p) => Ok((expand_path("config", p, env)?, true)),
        None => Ok((
            home_dir(env, "XDG_CONFIG_HOME", ".config").join("provider-node/config.toml"),
            false,
        )),
    }
}

fn expand_path(
    setting: &'static str,
    p: Pick<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, ConfigError> {
    expand_home(&p.value, env).map_err(|message| ConfigError::Invalid {
        setting,
        source_name: p.source,
        message,
    })
}

/// Reads and parses a config file; a missing file is an empty config unless
/// `must_exist`.
pub fn read_file(path: &Path, must_exist: bool) -> Result<FileConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_file(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            Ok(FileConfig::default())
        }
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses config file text.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Merges flags over the environment over the file over the defaults.
pub fn resolve(
    config_file: PathBuf,
    file: FileConfig,
    flags: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let network = pick(
        flags.network.clone(),
        "network",
        env,
        "PROVIDER_NODE_NETWORK",
        file.network.clone(),
        "network",
    );
    let (network, network_source) = match network {
        Some(p) => (p.value, p.source),
        None => ("ic".to_string(), "default".to_string()),
    };
    let network = network_url(&network).map_err(|message| ConfigError::Invalid {
        setting: "network",
        source_name: network_source,
        message,
    })?;
    let fetch_root_key = parse_value::<bool>(
        "fetch_root_key",
        pick(
            flags.fetch_root_key.map(|b| b.to_string()),
            "fetch-root-key",
            env,
            "PROVIDER_NODE_FETCH_ROOT_KEY",
            file.fetch_root_key.map(|b| b.to_string()),
            "fetch_root_key",
        ),
    )?
    .unwrap_or(!is_mainnet(&network));
    let config_dir = home_dir(env, "XDG_CONFIG_HOME", ".config").join("provider-node");
    let path_of = |setting: &'static str,
                   flag: &Option<PathBuf>,
                   flag_name: &str,
                   env_name: &str,
                   file_value: &Option<PathBuf>| {
        pick(
            flag.as_ref().map(|p| p.display().to_string()),
            flag_name,
            env,
            env_name,
            file_value.as_ref().map(|p| p.display().to_string()),
            setting,
        )
        .map(|p| expand_path(setting, p, env))
        .transpose()
    };
    let identity = path_of(
        "identity",
        &flags.identity,
        "identity",
        "PROVIDER_NODE_IDENTITY",
        &file.identity,
    )?
    .unwrap_or_else(|| config_dir.join("identity.pem"));
    let cache_dir = path_of(
        "cache_dir",
        &flags.cache_dir,
        "cache-dir",
        "PROVIDER_NODE_CACHE_DIR",
        &file.cache_dir,
    )?
    .unwrap_or_else(|| home_dir(env, "XDG_CACHE_HOME", ".cache").join("provider-node"));
    let state_dir = path_of(
        "state_dir",
        &flags.state_dir,
        "state-dir",
        "PROVIDER_NODE_STATE_DIR",
        &file.state_dir,
    )?
    .unwrap_or_else(|| home_dir(env, "XDG_STATE_HOME", ".local/state").join("provider-node"));
    let principal = |setting: &'static str,
                     flag: &Option<String>,
                     flag_name: &str,
                     env_name: &str,
                     file_value: &Option<String>| {
        parse_principal(
            setting,
            pick(
                flag.clone(),
                flag_name,
                env,
                env_name,
                file_value.clone(),
                setting,
            ),
        )
    };
    let provider = principal(
        "provider",
        &flags.provider,
        "provider",
        "PROVIDER_NODE_PROVIDER",
        &file.provider,
    )?;
    let ledger = principal(
        "canisters.ledger",
        &flags.ledger,
        "ledger",
        "PROVIDER_NODE_LEDGER",
        &file.canisters.ledger,
    )?;
    let registry = principal(
        "canisters.registry",
        &flags.registry,
        "registry",
        "PROVIDER_NODE_REGISTRY",
        &file.canisters.registry,
    )?;
    let escrow = principal(
        "canisters.escrow",
        &flags.escrow,
        "escrow",
        "PROVIDER_NODE_ESCROW",
        &file.canisters.escrow,
    )?;
    let matcher = principal(
        "canisters.matcher",
        &flags.matcher,
        "matcher",
        "PROVIDER_NODE_MATCHER",
        &file.canisters.matcher,
    )?;
    let metrics = pick(
        flags.metrics_addr.clone(),
        "metrics-addr",
        env,
        "PROVIDER_NODE_METRICS_ADDR",
        file.metrics_addr.clone(),
        "metrics_addr",
    );
    let metrics_addr = match metrics {
        Some(p) if p.value == "off" || p.value.is_empty() => None,
        Some(p) => parse_value::<SocketAddr>("metrics_addr", Some(p))?,
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
    };
    let concurrent_jobs = parse_value::<usize>(
        "sandbox.concurrent_jobs",
        pick(
            flags.concurrent_jobs.map(|n| n.to_string()),
            "concurrent-jobs",
            env,
            "PROVIDER_NODE_CONCURRENT_JOBS",
            file.sandbox.concurrent_jobs.map(|n| n.to_string()),
            "sandbox.concurrent_jobs",
        ),
    )?
    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    if concurrent_jobs == 0 {
        return Err(ConfigError::Invalid {
            setting: "sandbox.concurrent_jobs",
            source_name: "settings".into(),
            message: "must be at least 1".into(),
        });
    }
    let compile_timeout_secs = file.sandbox.compile_timeout_secs.unwrap_or(10.0);
    let compile_timeout =
        Duration::try_from_secs_f64(compile_timeout_secs).map_err(|e| ConfigError::Invalid {
            setting: "sandbox.compile_timeout_secs",
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
    Ok(Settings {
        config_file,
        verify_query_signatures: file.verify_query_signatures.unwrap_or(is_mainnet(&network)),
        network,
        fetch_root_key,
        identity,
        provider,
        ledger,
        registry,
        escrow,
        matcher,
        sandbox,
        cache_dir,
        state_dir,
        metrics_addr,
        poll_interval: Duration::from_millis(file.daemon.poll_interval_ms.unwrap_or(1000).max(10)),
        shutdown_grace: Duration::from_secs(file.daemon.shutdown_grace_secs.unwrap_or(60)),
    })
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

impl Settings {
    /// The four canister ids, or which one is missing and how to set it.
    pub fn canister_ids(&self) -> Result<CanisterIds, ConfigError> {
        let missing = |setting, flag, env| ConfigError::Missing {
            setting,
            flag,
            env,
            file: self.config_file.display().to_string(),
        };
        Ok(CanisterIds {
            ledger: self
                .ledger
                .ok_or_else(|| missing("canisters.ledger", "ledger", "PROVIDER_NODE_LEDGER"))?,
            registry: self.registry.ok_or_else(|| {
                missing("canisters.registry", "registry", "PROVIDER_NODE_REGISTRY")
            })?,
            escrow: self
                .escrow
                .ok_or_else(|| missing("canisters.escrow", "escrow", "PROVIDER_NODE_ESCROW"))?,
            matcher: self
                .matcher
                .ok_or_else(|| missing("canisters.matcher", "matcher", "PROVIDER_NODE_MATCHER"))?,
        })
    }
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

    const A: &str = "ryjl3-tyaaa-aaaaa-aaaba-cai";
    const B: &str = "rrkah-fqaaa-aaaaa-aaaaq-cai";
    const C: &str = "ryjl3-tyaaa-aaaaa-aaaba-cai";

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let file = parse_file(
            Path::new("c.toml"),
            &format!(
                "network = \"local\"\nidentity = \"/file/id.pem\"\nmetrics_addr = \"0.0.0.0:1\"\n[canisters]\nmatcher = \"{A}\"\nledger = \"{A}\"\n[sandbox]\nconcurrent_jobs = 3\n"
            ),
        )
        .unwrap();
        let env = env_of(&[
            ("HOME", "/home/p"),
            ("PROVIDER_NODE_NETWORK", "http://10.0.0.1:8080/"),
            ("PROVIDER_NODE_MATCHER", B),
            ("PROVIDER_NODE_CONCURRENT_JOBS", "5"),
        ]);
        let flags = GlobalArgs {
            matcher: Some(C.into()),
            identity: Some("/flag/id.pem".into()),
            ..Default::default()
        };
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
    fn bad_input_names_the_setting_and_its_source() {
        let env = env_of(&[("PROVIDER_NODE_LEDGER", "not-a-principal")]);
        let err = resolve(
            "f".into(),
            FileConfig::default(),
            &GlobalArgs::default(),
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("canisters.ledger") && err.contains("$PROVIDER_NODE_LEDGER"),
            "{err}"
        );

        let flags = GlobalArgs {
            network: Some("ftp://x".into()),
            ..Default::default()
        };
        let err = resolve("f".into(), FileConfig::default(), &flags, &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--network"), "{err}");

        let err = parse_file(Path::new("c.toml"), "netwerk = \"ic\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains("netwerk"), "{err}");

        let flags = GlobalArgs {
            metrics_addr: Some("off".into()),
            ..Default::default()
        };
        let s = resolve("f".into(), FileConfig::default(), &flags, &env_of(&[])).unwrap();
        assert_eq!(s.metrics_addr, None);
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
        let file = parse_file(
            Path::new("c.toml"),
            "identity = \"~/keys/id.pem\"\ncache_dir = \"~\"\n",
        )
        .unwrap();
        let env = env_of(&[
            ("HOME", "/home/p"),
            ("PROVIDER_NODE_STATE_DIR", "~/state"),
            ("PROVIDER_NODE_CONFIG", "~/p.toml"),
        ]);
        let s = resolve("c.toml".into(), file, &GlobalArgs::default(), &env).unwrap();
        assert_eq!(s.identity, PathBuf::from("/home/p/keys/id.pem"), "file");
        assert_eq!(s.cache_dir, PathBuf::from("/home/p"), "a bare ~");
        assert_eq!(s.state_dir, PathBuf::from("/home/p/state"), "environment");
        assert_eq!(
            config_path(&GlobalArgs::default(), &env).unwrap(),
            (PathBuf::from("/home/p/p.toml"), true),
            "$PROVIDER_NODE_CONFIG"
        );

        let flags = GlobalArgs {
            config: Some("~/flag.toml".into()),
            identity: Some("~/flag.pem".into()),
            cache_dir: Some("~/c".into()),
            ..Default::default()
        };
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
        let env = env_of(&[("PROVIDER_NODE_IDENTITY", "~/id.pem")]);
        let err = resolve(
            "f".into(),
            FileConfig::default(),
            &GlobalArgs::default(),
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("identity")
                && err.contains("$PROVIDER_NODE_IDENTITY")
                && err.contains("$HOME is not set"),
            "{err}"
        );
        let flags = GlobalArgs {
            config: Some("~/c.toml".into()),
            ..Default::default()
        };
        let err = load(&flags, &env).unwrap_err().to_string();
        assert!(err.contains("--config") && err.contains("$HOME"), "{err}");
    }
}
