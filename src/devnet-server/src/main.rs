//! `devnet`: the embedded devnet served over the IC's HTTP interface on
//! loopback, for ic-agent, dfx and icp-cli. See the crate's README.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use candid::Principal;
use clap::Parser;
use devnet::{Devnet, DevnetConfig};
use devnet_server::{Server, ServerConfig};

/// A local Internet Computer for development: real canister .wasm files run
/// on the devnet, served over the IC HTTP interface.
#[derive(Parser, Debug)]
#[command(name = "devnet", version)]
struct Args {
    /// Port to listen on; 0 picks a free one (printed on start).
    #[arg(long, default_value_t = 4943)]
    port: u16,
    /// Address to bind; loopback by default.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Install a canister at start: NAME=PATH.wasm[:ARG], where ARG is the
    /// Candid-encoded init argument as hex or the path of a file holding it
    /// (binary). Repeatable; ids are printed in order.
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
    arg: Vec<u8>,
}

fn parse_install(spec: &str) -> anyhow::Result<InstallSpec> {
    let Some((name, rest)) = spec.split_once('=') else {
        bail!("--install {spec}: expected NAME=PATH.wasm[:ARG]");
    };
    let (wasm, arg) = match rest.split_once(':') {
        Some((wasm, arg)) => {
            let arg = if std::path::Path::new(arg).is_file() {
                std::fs::read(arg).with_context(|| format!("reading {arg}"))?
            } else {
                hex::decode(arg)
                    .with_context(|| format!("--install {spec}: ARG is neither a file nor hex"))?
            };
            (wasm, arg)
        }
        // No argument: empty Candid arguments.
        None => (rest, candid::encode_args(()).expect("encoding ()")),
    };
    Ok(InstallSpec {
        name: name.to_string(),
        wasm: PathBuf::from(wasm),
        arg,
    })
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

    let devnet = Devnet::with_config(DevnetConfig {
        print_debug: args.print_debug,
        ..DevnetConfig::default()
    });
    let config = ServerConfig {
        addr: SocketAddr::new(args.host, args.port),
        time_speed: args.time_speed,
        round_interval: Duration::from_millis(args.round_ms.max(1)),
        sync_call_wait: Duration::from_secs_f64(args.sync_wait_secs.max(0.0)),
        key_seed: args.key_seed.as_deref().map(parse_seed).transpose()?,
    };
    let server = Server::start(config, devnet)
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;

    for spec in installs {
        let wasm = std::fs::read(&spec.wasm)
            .with_context(|| format!("reading {}", spec.wasm.display()))?;
        let installer = controllers[0];
        let id = server.node().with_devnet(|dn| {
            let id = dn.create_canister(controllers.clone());
            dn.install_canister(id, &wasm, spec.arg, installer)
                .map(|()| id)
        });
        let id = id.map_err(|e| anyhow::anyhow!("installing {}: {e}", spec.name))?;
        println!("installed {} = {id}", spec.name);
    }
    println!("devnet listening on {}", server.url());
    println!("root key {}", hex::encode(server.root_key()));

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("shutting down");
    server.shutdown().await?;
    Ok(())
}
