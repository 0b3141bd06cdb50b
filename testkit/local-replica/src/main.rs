//! `devnet`: the embedded devnet served over the IC's HTTP interface on
//! loopback, for ic-agent, dfx and icp-cli. See the crate's README.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use candid::Principal;
use clap::Parser;
use devnet::{Devnet, DevnetConfig, cycles_account};
use local_replica::{Server, ServerConfig};

/// A local Internet Computer for development: real canister .wasm files run
/// on the devnet, served over the IC HTTP interface.
#[derive(Parser, Debug)]
#[command(name = "local-replica", version)]
struct Args {
    /// Port to listen on; 0 picks a free one (printed on start).
    #[arg(long, default_value_t = 4943)]
    port: u16,
    /// Address to bind; loopback by default.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Install a canister at start: NAME=PATH.wasm[:ARG], where ARG is the
    /// init argument as Candid text (typed with the module's candid:service),
    /// hex of Candid bytes, or a file holding either text or bytes.
    /// Repeatable; ids are printed in order.
    #[arg(long = "install", value_name = "NAME=WASM[:ARG]")]
    install: Vec<String>,
    /// Controller of the canisters installed with --install (repeatable;
    /// the anonymous principal if none is given).
    #[arg(long = "controller")]
    controllers: Vec<Principal>,
    /// Devnet seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    time_speed: f64,
    /// Milliseconds between rounds (timers, queued messages, the clock).
    #[arg(long, default_value_t = 100)]
    round_ms: u64,
    /// Seconds a v3/v4 call waits for its answer before answering 202.
    #[arg(long, default_value_t = 5.0)]
    sync_wait_secs: f64,
    /// Hex seed of the root and node keys (random otherwise), for a stable root key.
    #[arg(long)]
    key_seed: Option<String>,
    /// Print the canisters' debug_print output.
    #[arg(long)]
    print_debug: bool,
    /// Keep the state in this directory: loaded at start if it holds one,
    /// saved every --checkpoint-secs and when stopped (Ctrl-C, SIGTERM).
    /// Canisters --install'ed under a name the state already has are kept.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Seconds between saves of the state to --state-dir.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    checkpoint_secs: u64,
    /// Credit AMOUNT cycles to PRINCIPAL's default account on the cycles
    /// ledger at start (repeatable; a new state only, not a loaded one).
    #[arg(long = "cycles", value_name = "PRINCIPAL=AMOUNT", value_parser = parse_cycles)]
    cycles: Vec<(Principal, u128)>,
    /// Do not pre-fund the anonymous principal's cycles ledger account
    /// with 2^127 - 1 cycles (as PocketIC does, and icp-cli expects).
    #[arg(long)]
    no_anonymous_cycles: bool,
}

/// `PRINCIPAL=AMOUNT` of `--cycles`; the amount may hold `_` separators.
fn parse_cycles(spec: &str) -> Result<(Principal, u128), String> {
    let (principal, amount) = spec
        .split_once('=')
        .ok_or_else(|| format!("--cycles {spec}: expected PRINCIPAL=AMOUNT"))?;
    let principal = Principal::from_text(principal)
        .map_err(|e| format!("--cycles {spec}: invalid principal: {e}"))?;
    let amount = amount
        .replace('_', "")
        .parse::<u128>()
        .map_err(|e| format!("--cycles {spec}: invalid amount: {e}"))?;
    Ok((principal, amount))
}

fn parse_seed(hex_seed: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex_seed).context("--key-seed is not hex")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("--key-seed must be 32 bytes (64 hex digits)"))
}

/// `NAME=PATH[:ARG]` of `--install`.
struct InstallSpec {
    name: String,
    wasm: PathBuf,
    arg: Option<String>,
}

fn parse_install(spec: &str) -> anyhow::Result<InstallSpec> {
    let Some((name, rest)) = spec.split_once('=') else {
        bail!("--install {spec}: expected NAME=PATH.wasm[:ARG]");
    };
    let (wasm, arg) = match rest.split_once(':') {
        Some((wasm, arg)) => (wasm, Some(arg.to_string())),
        None => (rest, None),
    };
    Ok(InstallSpec {
        name: name.to_string(),
        wasm: PathBuf::from(wasm),
        arg,
    })
}

/// The init argument bytes of `--install`: Candid text (typed with the
/// module's `candid:service` init arguments when it has them), the path of
/// a file holding Candid text or binary Candid, or hex. No argument: `()`.
fn init_arg(arg: Option<&str>, wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
    let Some(arg) = arg else {
        return Ok(candid::encode_args(()).expect("encoding ()"));
    };
    let text = if arg.trim_start().starts_with('(') {
        arg.to_string()
    } else if std::path::Path::new(arg).is_file() {
        let bytes = std::fs::read(arg).with_context(|| format!("reading {arg}"))?;
        match String::from_utf8(bytes) {
            Ok(text) if text.trim_start().starts_with('(') => text,
            Ok(text) => return Ok(text.into_bytes()),
            Err(e) => return Ok(e.into_bytes()),
        }
    } else {
        return hex::decode(arg).with_context(|| {
            format!("init argument '{arg}' is neither Candid text, a file nor hex")
        });
    };
    let args = candid_parser::parse_idl_args(&text).context("parsing the Candid init argument")?;
    let did = local_replica::metadata::custom_sections(wasm)
        .into_iter()
        .find(|(name, _)| *name == "icp:public candid:service")
        .and_then(|(_, did)| std::str::from_utf8(did).ok());
    match did {
        Some(did) => {
            let (types, (env, _)) = candid_parser::utils::instantiate_candid(
                candid_parser::utils::CandidSource::Text(did),
            )
            .context("reading the module's candid:service")?;
            args.to_bytes_with_types(&env, &types)
                .context("the init argument does not match the module's init type")
        }
        None => args.to_bytes().context("encoding the init argument"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if !args.time_speed.is_finite() || args.time_speed <= 0.0 {
        bail!("--time-speed must be positive");
    }
    let installs = args
        .install
        .iter()
        .map(|s| parse_install(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let controllers = if args.controllers.is_empty() {
        vec![Principal::anonymous()]
    } else {
        args.controllers.clone()
    };

    let mut devnet = Devnet::with_config(DevnetConfig {
        print_debug: args.print_debug,
        ..DevnetConfig::default()
    });
    // Applies to a new state only: a loaded one keeps its balances.
    if !args.no_anonymous_cycles {
        devnet.mint_cycles(cycles_account(Principal::anonymous()), i128::MAX as u128);
    }
    for (owner, amount) in &args.cycles {
        devnet.mint_cycles(cycles_account(*owner), *amount);
    }
    let config = ServerConfig {
        addr: SocketAddr::new(args.host, args.port),
        time_speed: args.time_speed,
        round_interval: Duration::from_millis(args.round_ms.max(1)),
        sync_call_wait: Duration::from_secs_f64(args.sync_wait_secs.max(0.0)),
        key_seed: args.key_seed.as_deref().map(parse_seed).transpose()?,
        state_dir: args.state_dir.clone(),
        checkpoint_interval: Duration::from_secs(args.checkpoint_secs.max(1)),
    };
    let server = Server::start(config, devnet)
        .await
        .with_context(|| format!("starting the devnet on {}:{}", args.host, args.port))?;
    if let Some(dir) = &args.state_dir {
        println!("state kept in {}", dir.display());
    }

    for spec in installs {
        let wasm = std::fs::read(&spec.wasm)
            .with_context(|| format!("reading {}", spec.wasm.display()))?;
        let arg = init_arg(spec.arg.as_deref(), &wasm)
            .with_context(|| format!("--install {}", spec.name))?;
        let (id, new) = server
            .node()
            .install_named(&spec.name, controllers.clone(), &wasm, arg)
            .map_err(|e| anyhow::anyhow!("installing {}: {e}", spec.name))?;
        if new {
            println!("installed {} = {id}", spec.name);
        } else {
            println!("kept {} = {id} (from the state directory)", spec.name);
        }
    }
    if args.state_dir.is_some() {
        // The installs above belong in the state even if the process is killed.
        server.node().checkpoint()?;
    }
    println!("devnet listening on {}", server.url());
    println!("root key {}", hex::encode(server.root_key()));

    // Ctrl-C or SIGTERM (process managers, test harnesses) stop it gracefully.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    server.shutdown().await?;
    Ok(())
}
