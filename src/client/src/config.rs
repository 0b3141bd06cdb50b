//! Settings every network command has: a TOML file, overridden by
//! environment variables, overridden by command-line flags.
//!
//! Each program names its own settings with an [`App`]: its config
//! directory (`provider-node`, `market`) and its variables' prefix
//! (`PROVIDER_NODE_`, `MARKET_`). The file is `--config PATH`, else
//! `$<PREFIX>_CONFIG`, else `$XDG_CONFIG_HOME/<name>/config.toml`
//! (`~/.config/...` when `XDG_CONFIG_HOME` is unset); a missing default file
//! is the same as an empty one. Lookups of the environment go through a
//! function so that tests don't touch the process environment.
//!
//! Each setting is declared once as a [`Key`] (its file key, flag and
//! variable); [`Layers`] picks its value from the flag, the variable or the
//! file, in that order, and remembers where it came from for error
//! messages.
//!
//! A path setting (the config file itself, `identity`, and a program's own
//! directories) that starts with `~/` is taken from `$HOME`, wherever it was
//! written: a shell expands `~` on a command line, but not inside a TOML
//! file, an environment file or `--flag=~/...`.

use std::path::{Path, PathBuf};

use candid::Principal;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::CanisterIds;

/// The IC's public API boundary nodes.
pub const MAINNET_URL: &str = "https://icp-api.io";
/// Where dfx and icp-cli run a local replica.
pub const LOCAL_URL: &str = "http://127.0.0.1:4943";

/// A program whose settings are read: where its files live and what its
/// environment variables are called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct App {
    /// The directory under `$XDG_CONFIG_HOME` (and `$XDG_CACHE_HOME`, ...).
    pub name: &'static str,
    /// The variables' prefix, without the trailing `_`.
    pub env_prefix: &'static str,
}

impl App {
    /// The variable of `key`, e.g. `PROVIDER_NODE_LEDGER`.
    pub fn env_name(&self, key: &Key) -> String {
        format!("{}_{}", self.env_prefix, key.env)
    }
}

/// One setting's names: in the file, on the command line and (after the
/// program's prefix) in the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The file key, e.g. `canisters.ledger`; also the setting's name in
    /// error messages.
    pub setting: &'static str,
    /// The flag without `--`.
    pub flag: &'static str,
    /// The variable without the program's prefix, e.g. `LEDGER`.
    pub env: &'static str,
}

/// `--config`.
pub const CONFIG: Key = Key {
    setting: "config",
    flag: "config",
    env: "CONFIG",
};
/// `network`.
pub const NETWORK: Key = Key {
    setting: "network",
    flag: "network",
    env: "NETWORK",
};
/// `fetch_root_key`.
pub const FETCH_ROOT_KEY: Key = Key {
    setting: "fetch_root_key",
    flag: "fetch-root-key",
    env: "FETCH_ROOT_KEY",
};
/// `identity`.
pub const IDENTITY: Key = Key {
    setting: "identity",
    flag: "identity",
    env: "IDENTITY",
};
/// `canisters.ledger`.
pub const LEDGER: Key = Key {
    setting: "canisters.ledger",
    flag: "ledger",
    env: "LEDGER",
};
/// `canisters.registry`.
pub const REGISTRY: Key = Key {
    setting: "canisters.registry",
    flag: "registry",
    env: "REGISTRY",
};
/// `canisters.escrow`.
pub const ESCROW: Key = Key {
    setting: "canisters.escrow",
    flag: "escrow",
    env: "ESCROW",
};
/// `canisters.matcher`.
pub const MATCHER: Key = Key {
    setting: "canisters.matcher",
    flag: "matcher",
    env: "MATCHER",
};

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
        env: String,
        /// The config file consulted.
        file: String,
    },
}

/// The network part of a config file. Every field is optional.
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
    /// Canister ids.
    #[serde(default)]
    pub canisters: CanisterFile,
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

/// The network flags every command has. Each also has a variable
/// (`<PREFIX>_NETWORK`, ...), listed in `--help` by [`with_env_help`].
#[derive(clap::Args, Debug, Default, Clone, PartialEq)]
pub struct NetworkArgs {
    /// Config file
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Network: `ic`, `local` or a URL [default: ic]
    #[arg(long, global = true)]
    pub network: Option<String>,
    /// Fetch the root key (local networks)
    #[arg(long, global = true)]
    pub fetch_root_key: Option<bool>,
    /// Identity PEM file
    #[arg(long, global = true, value_name = "PEM")]
    pub identity: Option<PathBuf>,
    /// Ledger canister id
    #[arg(long, global = true)]
    pub ledger: Option<String>,
    /// Registry canister id
    #[arg(long, global = true)]
    pub registry: Option<String>,
    /// Escrow canister id
    #[arg(long, global = true)]
    pub escrow: Option<String>,
    /// Matcher canister id
    #[arg(long, global = true)]
    pub matcher: Option<String>,
}

/// `command` with each flag of `keys` (and of [`NetworkArgs`]) showing its
/// variable in `--help`, and the config file and identity their default
/// paths, all under `app`'s names.
pub fn with_env_help(command: clap::Command, app: &App, keys: &[Key]) -> clap::Command {
    let network = [
        CONFIG,
        NETWORK,
        FETCH_ROOT_KEY,
        IDENTITY,
        LEDGER,
        REGISTRY,
        ESCROW,
        MATCHER,
    ];
    command.mut_args(|arg| {
        let id = arg.get_id().as_str().replace('_', "-");
        let Some(key) = network.iter().chain(keys).find(|k| k.flag == id) else {
            return arg;
        };
        let mut help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        help.push_str(&format!(" [env: {}]", app.env_name(key)));
        match key.setting {
            "config" => help.push_str(&format!(" [default: ~/.config/{}/config.toml]", app.name)),
            "identity" => {
                help.push_str(&format!(" [default: ~/.config/{}/identity.pem]", app.name))
            }
            _ => {}
        }
        arg.help(help)
    })
}

/// Network settings after merging.
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
    /// Ledger id.
    pub ledger: Option<Principal>,
    /// Registry id.
    pub registry: Option<Principal>,
    /// Escrow id.
    pub escrow: Option<Principal>,
    /// Matcher id.
    pub matcher: Option<Principal>,
    /// The program these settings are for (names in error messages).
    pub app: App,
}

/// A value and where it came from, for error messages.
pub struct Pick {
    /// The value as written.
    pub value: String,
    /// `--flag`, `$VARIABLE` or `config file key ...`.
    pub source: String,
}

/// The layers below the flags: the environment (through a lookup function)
/// of one program.
pub struct Layers<'a> {
    /// The program.
    pub app: &'a App,
    /// Reads a variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Layers<'_> {
    /// The flag's value, else the variable's (if not empty), else the
    /// file's.
    pub fn pick(&self, key: &Key, flag: Option<String>, file: Option<String>) -> Option<Pick> {
        if let Some(v) = flag {
            return Some(Pick {
                value: v,
                source: format!("--{}", key.flag),
            });
        }
        let env_name = self.app.env_name(key);
        if let Some(v) = (self.env)(&env_name).filter(|v| !v.is_empty()) {
            return Some(Pick {
                value: v,
                source: format!("${env_name}"),
            });
        }
        file.map(|v| Pick {
            value: v,
            source: format!("config file key {}", key.setting),
        })
    }

    /// The setting parsed with `FromStr`.
    pub fn value<T>(
        &self,
        key: &Key,
        flag: Option<String>,
        file: Option<String>,
    ) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        parse_value(key.setting, self.pick(key, flag, file))
    }

    /// The setting as a principal.
    pub fn principal(
        &self,
        key: &Key,
        flag: &Option<String>,
        file: &Option<String>,
    ) -> Result<Option<Principal>, ConfigError> {
        self.pick(key, flag.clone(), file.clone())
            .map(|p| {
                Principal::from_text(p.value.trim()).map_err(|e| ConfigError::Invalid {
                    setting: key.setting,
                    source_name: p.source,
                    message: format!("{:?} is not a principal: {e}", p.value),
                })
            })
            .transpose()
    }

    /// The setting as a path, `~/` expanded.
    pub fn path(
        &self,
        key: &Key,
        flag: &Option<PathBuf>,
        file: &Option<PathBuf>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        self.pick(key, text(flag), text(file))
            .map(|p| {
                expand_home(&p.value, self.env).map_err(|message| ConfigError::Invalid {
                    setting: key.setting,
                    source_name: p.source,
                    message,
                })
            })
            .transpose()
    }

    /// `$<xdg>/<app>`, or `$HOME/<fallback>/<app>` when the XDG variable is
    /// unset.
    pub fn app_dir(&self, xdg: &str, fallback: &str) -> PathBuf {
        let base = match (self.env)(xdg).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from((self.env)("HOME").unwrap_or_else(|| ".".into())).join(fallback),
        };
        base.join(self.app.name)
    }
}

/// Parses a picked value with `FromStr`, naming the setting and the source
/// on failure.
pub fn parse_value<T: std::str::FromStr>(
    setting: &'static str,
    p: Option<Pick>,
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

/// The config file to read: `--config`, `$<PREFIX>_CONFIG`, or the default
/// under the XDG config directory. The flag says whether it was named
/// explicitly (then it must exist).
pub fn config_path(
    app: &App,
    flags: &NetworkArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(PathBuf, bool), ConfigError> {
    let layers = Layers { app, env };
    match layers.path(&CONFIG, &flags.config, &None)? {
        Some(path) => Ok((path, true)),
        None => Ok((
            layers
                .app_dir("XDG_CONFIG_HOME", ".config")
                .join("config.toml"),
            false,
        )),
    }
}

/// Reads a config file's text; a missing file is empty unless
/// `must_exist`.
pub fn read_text(path: &Path, must_exist: bool) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => Ok(String::new()),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses config file text into the network part and a program's own part
/// `P`, whose top-level keys are `own_keys`; an unknown key is refused by
/// whichever part it falls to.
pub fn parse_parts<P: DeserializeOwned>(
    path: &Path,
    text: &str,
    own_keys: &[&str],
) -> Result<(FileConfig, P), ConfigError> {
    let error = |e: toml::de::Error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut network: toml::Table = toml::from_str(text).map_err(error)?;
    let mut own = toml::Table::new();
    for key in own_keys {
        if let Some(value) = network.remove(*key) {
            own.insert((*key).to_string(), value);
        }
    }
    let network: FileConfig = toml::Value::Table(network).try_into().map_err(error)?;
    let own: P = toml::Value::Table(own).try_into().map_err(error)?;
    Ok((network, own))
}

/// Parses a config file that holds only network settings.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Merges flags over the environment over the file over the defaults.
pub fn resolve(
    app: &App,
    config_file: PathBuf,
    file: &FileConfig,
    flags: &NetworkArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let layers = Layers { app, env };
    let (network, network_source) =
        match layers.pick(&NETWORK, flags.network.clone(), file.network.clone()) {
            Some(p) => (p.value, p.source),
            None => ("ic".to_string(), "default".to_string()),
        };
    let network = network_url(&network).map_err(|message| ConfigError::Invalid {
        setting: "network",
        source_name: network_source,
        message,
    })?;
    let fetch_root_key = layers
        .value::<bool>(
            &FETCH_ROOT_KEY,
            flags.fetch_root_key.map(|b| b.to_string()),
            file.fetch_root_key.map(|b| b.to_string()),
        )?
        .unwrap_or(!is_mainnet(&network));
    let identity = layers
        .path(&IDENTITY, &flags.identity, &file.identity)?
        .unwrap_or_else(|| {
            layers
                .app_dir("XDG_CONFIG_HOME", ".config")
                .join("identity.pem")
        });
    let ids = &file.canisters;
    Ok(Settings {
        config_file,
        verify_query_signatures: file.verify_query_signatures.unwrap_or(is_mainnet(&network)),
        network,
        fetch_root_key,
        identity,
        ledger: layers.principal(&LEDGER, &flags.ledger, &ids.ledger)?,
        registry: layers.principal(&REGISTRY, &flags.registry, &ids.registry)?,
        escrow: layers.principal(&ESCROW, &flags.escrow, &ids.escrow)?,
        matcher: layers.principal(&MATCHER, &flags.matcher, &ids.matcher)?,
        app: *app,
    })
}

/// Reads the network-only file named by the flags or the environment and
/// merges.
pub fn load(
    app: &App,
    flags: &NetworkArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let (path, must_exist) = config_path(app, flags, env)?;
    let file = parse_file(&path, &read_text(&path, must_exist)?)?;
    resolve(app, path, &file, flags, env)
}

impl Settings {
    /// Which flag, variable and file set `key`, for a setting that is
    /// missing.
    pub fn missing(&self, key: &Key) -> ConfigError {
        ConfigError::Missing {
            setting: key.setting,
            flag: key.flag,
            env: self.app.env_name(key),
            file: self.config_file.display().to_string(),
        }
    }

    /// The canister id of `key` (one of [`LEDGER`], [`REGISTRY`],
    /// [`ESCROW`], [`MATCHER`]), or which setting is missing.
    pub fn canister(&self, key: &Key) -> Result<Principal, ConfigError> {
        let value = match *key {
            LEDGER => self.ledger,
            REGISTRY => self.registry,
            ESCROW => self.escrow,
            _ => self.matcher,
        };
        value.ok_or_else(|| self.missing(key))
    }

    /// The four canister ids, or which one is missing and how to set it.
    pub fn canister_ids(&self) -> Result<CanisterIds, ConfigError> {
        Ok(CanisterIds {
            ledger: self.canister(&LEDGER)?,
            registry: self.canister(&REGISTRY)?,
            escrow: self.canister(&ESCROW)?,
            matcher: self.canister(&MATCHER)?,
        })
    }
}
