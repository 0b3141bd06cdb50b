//! Settings every network command has: a TOML file, overridden by
//! environment variables, overridden by command-line flags.
//!
//! Each program names its own settings with an [`App`]: its config
//! directory (`provider-node`, `market`) and its variables' prefix
//! (`PROVIDER_NODE_`, `MARKET_`). The file is `--config PATH`, else
//! `$<PREFIX>_CONFIG`, else `$XDG_CONFIG_HOME/<name>/config.toml`
//! (`~/.config/...` when `XDG_CONFIG_HOME` is unset); a missing default file
//! is the same as an empty one.
//!
//! A setting that has a flag is declared once, as a field of the program's
//! clap arguments; [`with_env`] gives each flag before the subcommand its
//! variable (`--fetch-root-key`: `<PREFIX>_FETCH_ROOT_KEY`), so that clap
//! reads the variable when the flag is absent and lists it in `--help`.
//! [`Sources`] remembers which of the two gave a value, for error
//! messages, and [`Sources::pick`] puts the file beneath them. clap's `env`
//! rather than figment: the flags are clap's already, clap names them in
//! its errors, and figment would need a table from variables to file keys
//! while naming neither the flag nor the variable when a value is bad. The
//! flags take text (clap can't parse a variable set to the empty string,
//! which counts as unset here), and the values are parsed with the file's
//! under the setting's name.
//!
//! Lookups of `HOME` and the `XDG_*` directories go through a function so
//! that tests need not touch the process environment.
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
    /// The variable of `flag` (without `--`), e.g. `PROVIDER_NODE_LEDGER`
    /// for `ledger`.
    pub fn env_name(&self, flag: &str) -> String {
        format!(
            "{}_{}",
            self.env_prefix,
            flag.to_uppercase().replace('-', "_")
        )
    }
}

/// One of the marketplace's canisters, whose id is a setting
/// (`canisters.<name>`, `--<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canister {
    /// The ICP ledger.
    Ledger,
    /// The provider registry.
    Registry,
    /// The escrow.
    Escrow,
    /// The matcher.
    Matcher,
}

impl Canister {
    /// Its flag without `--`, and its key under `[canisters]`.
    pub fn flag(self) -> &'static str {
        match self {
            Canister::Ledger => "ledger",
            Canister::Registry => "registry",
            Canister::Escrow => "escrow",
            Canister::Matcher => "matcher",
        }
    }
}

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
        setting: String,
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
        setting: String,
        /// Its flag.
        flag: String,
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

/// The network flags every command has, each with its variable
/// (`<PREFIX>_NETWORK`, ...) once the command went through [`with_env`].
/// They take text: the values are parsed with the file's.
#[derive(clap::Args, Debug, Default, Clone, PartialEq)]
pub struct NetworkArgs {
    /// Config file
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Network: `ic`, `local` or a URL [default: ic]
    #[arg(long, global = true)]
    pub network: Option<String>,
    /// Fetch the root key (local networks)
    #[arg(long, global = true, value_parser = true_or_false())]
    pub fetch_root_key: Option<String>,
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
    /// Which of these flags (and the program's own) were given on the
    /// command line and which came from variables: see [`parse`].
    #[arg(skip)]
    pub sources: Sources,
}

/// `true` or `false`; an empty variable passes, as unset.
fn true_or_false() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    [
        PossibleValue::new("true"),
        PossibleValue::new("false"),
        PossibleValue::new("").hide(true),
    ]
    .into()
}

/// `command` with each flag before its subcommand reading its variable
/// under `app`'s prefix when absent (`--help` lists the variable, not its
/// value), and the config file and identity showing their default paths.
pub fn with_env(command: clap::Command, app: &App) -> clap::Command {
    command.mut_args(|arg| {
        let Some(flag) = arg.get_long().map(str::to_string) else {
            return arg;
        };
        let arg = match flag.as_str() {
            "config" | "identity" => {
                let file = if flag == "config" {
                    "config.toml"
                } else {
                    "identity.pem"
                };
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                arg.help(format!("{help} [default: ~/.config/{}/{file}]", app.name))
            }
            _ => arg,
        };
        arg.env(app.env_name(&flag)).hide_env_values(true)
    })
}

/// Parses `argv` with `C`'s command under `app`'s variables (see
/// [`with_env`]); `sources` receives where each flag's value came from.
pub fn parse<C: clap::Parser>(
    app: &App,
    argv: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
    sources: impl FnOnce(&mut C) -> &mut Sources,
) -> Result<C, clap::Error> {
    let command = with_env(C::command(), app);
    let matches = command.clone().try_get_matches_from(argv)?;
    let mut parsed = C::from_arg_matches(&matches)?;
    *sources(&mut parsed) = Sources::of(&command, &matches);
    Ok(parsed)
}

/// Where the flags' values came from: `--flag` or `$VARIABLE`, by flag.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sources(std::collections::BTreeMap<String, String>);

impl Sources {
    /// The sources of `matches`, parsed by `command`.
    pub fn of(command: &clap::Command, matches: &clap::ArgMatches) -> Self {
        use clap::parser::ValueSource;
        let mut sources = std::collections::BTreeMap::new();
        for arg in command.get_arguments() {
            let Some(flag) = arg.get_long() else {
                continue;
            };
            let name = match (matches.value_source(arg.get_id().as_str()), arg.get_env()) {
                (Some(ValueSource::CommandLine), _) => format!("--{flag}"),
                (Some(ValueSource::EnvVariable), Some(env)) => {
                    format!("${}", env.to_string_lossy())
                }
                _ => continue,
            };
            sources.insert(flag.to_string(), name);
        }
        Sources(sources)
    }

    /// The value of `setting` (its file key, e.g. `canisters.ledger`): the
    /// one clap found for its flag (from the command line, else from the
    /// variable if that is not empty), else the file's, with where it came
    /// from.
    pub fn pick(&self, setting: &str, given: Option<String>, file: Option<String>) -> Option<Pick> {
        let flag = flag_of(setting);
        let source = self.0.get(&flag).cloned();
        let from_env = source.as_ref().is_some_and(|s| s.starts_with('$'));
        match given {
            Some(value) if !(from_env && value.is_empty()) => Some(Pick {
                value,
                source: source.unwrap_or_else(|| format!("--{flag}")),
            }),
            _ => file.map(|value| Pick {
                value,
                source: format!("config file key {setting}"),
            }),
        }
    }
}

/// The flag of a setting: its file key's last part, `_` written `-`
/// (`sandbox.concurrent_jobs`: `concurrent-jobs`).
pub fn flag_of(setting: &str) -> String {
    setting
        .rsplit('.')
        .next()
        .unwrap_or(setting)
        .replace('_', "-")
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

/// The layers of one program's settings: the flags and their variables
/// (as clap found them, see [`Sources`]), the file, and `HOME` and the
/// `XDG_*` directories for default paths (through a lookup function).
pub struct Layers<'a> {
    /// The program.
    pub app: &'a App,
    /// Where the flags' values came from.
    pub sources: &'a Sources,
    /// Reads `HOME` and the `XDG_*` variables.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Layers<'_> {
    /// See [`Sources::pick`].
    pub fn pick(&self, setting: &str, given: Option<String>, file: Option<String>) -> Option<Pick> {
        self.sources.pick(setting, given, file)
    }

    /// The setting parsed with `FromStr`.
    pub fn value<T>(
        &self,
        setting: &str,
        given: Option<String>,
        file: Option<String>,
    ) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        parse_value(setting, self.pick(setting, given, file))
    }

    /// The setting as a principal.
    pub fn principal(
        &self,
        setting: &str,
        given: &Option<String>,
        file: &Option<String>,
    ) -> Result<Option<Principal>, ConfigError> {
        self.pick(setting, given.clone(), file.clone())
            .map(|p| {
                Principal::from_text(p.value.trim()).map_err(|e| ConfigError::Invalid {
                    setting: setting.to_string(),
                    source_name: p.source,
                    message: format!("{:?} is not a principal: {e}", p.value),
                })
            })
            .transpose()
    }

    /// The setting as a path, `~/` expanded.
    pub fn path(
        &self,
        setting: &str,
        given: &Option<PathBuf>,
        file: &Option<PathBuf>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        self.pick(setting, text(given), text(file))
            .map(|p| {
                expand_home(&p.value, self.env).map_err(|message| ConfigError::Invalid {
                    setting: setting.to_string(),
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
    setting: &str,
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
                setting: setting.to_string(),
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
    let layers = Layers {
        app,
        sources: &flags.sources,
        env,
    };
    match layers.path("config", &flags.config, &None)? {
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
    let layers = Layers {
        app,
        sources: &flags.sources,
        env,
    };
    let (network, network_source) =
        match layers.pick("network", flags.network.clone(), file.network.clone()) {
            Some(p) => (p.value, p.source),
            None => ("ic".to_string(), "default".to_string()),
        };
    let network = network_url(&network).map_err(|message| ConfigError::Invalid {
        setting: "network".into(),
        source_name: network_source,
        message,
    })?;
    let fetch_root_key = layers
        .value::<bool>(
            "fetch_root_key",
            flags.fetch_root_key.clone(),
            file.fetch_root_key.map(|b| b.to_string()),
        )?
        .unwrap_or(!is_mainnet(&network));
    let identity = layers
        .path("identity", &flags.identity, &file.identity)?
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
        ledger: layers.principal("canisters.ledger", &flags.ledger, &ids.ledger)?,
        registry: layers.principal("canisters.registry", &flags.registry, &ids.registry)?,
        escrow: layers.principal("canisters.escrow", &flags.escrow, &ids.escrow)?,
        matcher: layers.principal("canisters.matcher", &flags.matcher, &ids.matcher)?,
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
    /// Which flag, variable and file set `setting`, for a setting that is
    /// missing.
    pub fn missing(&self, setting: &str) -> ConfigError {
        let flag = flag_of(setting);
        ConfigError::Missing {
            setting: setting.to_string(),
            env: self.app.env_name(&flag),
            flag,
            file: self.config_file.display().to_string(),
        }
    }

    /// The id of `canister`, or which setting is missing.
    pub fn canister(&self, canister: Canister) -> Result<Principal, ConfigError> {
        let value = match canister {
            Canister::Ledger => self.ledger,
            Canister::Registry => self.registry,
            Canister::Escrow => self.escrow,
            Canister::Matcher => self.matcher,
        };
        value.ok_or_else(|| self.missing(&format!("canisters.{}", canister.flag())))
    }

    /// The four canister ids, or which one is missing and how to set it.
    pub fn canister_ids(&self) -> Result<CanisterIds, ConfigError> {
        Ok(CanisterIds {
            ledger: self.canister(Canister::Ledger)?,
            registry: self.canister(Canister::Registry)?,
            escrow: self.canister(Canister::Escrow)?,
            matcher: self.canister(Canister::Matcher)?,
        })
    }
}
