//! `provider-node serve-tcp`: runs a TCP service (a `wasi:cli` command
//! using `wasi:sockets`) exactly as a provider's daemon does (same host,
//! socket policy, caps and restarts), so a buyer can try it before leasing
//! it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use provider_node::service::{
    ServiceHost, ServiceMetrics, TcpLimits, TcpServiceHost, TcpServiceSettings,
};

/// Flags of `serve-tcp`.
#[derive(Args, Debug)]
pub struct ServeTcpArgs {
    /// The component (.wasm): a `wasi:cli` command using `wasi:sockets`.
    pub component: PathBuf,
    /// The port clients connect to (the one a provider assigns); 0 picks a
    /// free one.
    #[arg(long)]
    pub port: u16,
    /// The address the port is opened on.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: IpAddr,
    /// Client connections at once; more are closed on arrival.
    #[arg(long, default_value_t = TcpLimits::default().max_connections)]
    pub max_connections: u32,
    /// Bytes per second each connection may move in each direction.
    #[arg(long, default_value_t = TcpLimits::default().max_bytes_per_second)]
    pub max_bytes_per_second: u64,
    /// Seconds a connection may stay silent before it is closed.
    #[arg(long, default_value_t = TcpLimits::default().idle_timeout.as_secs())]
    pub idle_timeout_secs: u64,
    /// Fuel the instance may burn per interval; more traps it (it restarts).
    #[arg(long, default_value_t = TcpLimits::default().fuel_per_interval)]
    pub fuel_per_interval: u64,
    /// The fuel interval, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub fuel_interval_ms: u64,
    #[command(flatten)]
    pub sandbox: super::local::SandboxFlags,
    /// Environment variable for the component, NAME=VALUE (repeatable).
    /// `PORT`, `LISTEN`, `PUBLIC_PORT` and `RESOLVED_HOSTS` (the addresses
    /// of the --allow-host hosts) are the host's.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
}

/// Serves until Ctrl-C; the instance's output and restarts are logged to
/// stderr (`RUST_LOG` filters).
pub fn run(args: ServeTcpArgs) -> anyhow::Result<ExitCode> {
    super::run::init_tracing();
    let (bytes, hash) = super::local::read_component(&args.component)?;
    let env = super::local::env_flags(&args.env)?;
    let runtime = super::local::serving_runtime()?;
    runtime.block_on(async move {
        let config = args.sandbox.host_config(1);
        let host = TcpServiceHost::new(ServiceHost::new(config, ServiceMetrics::default())?)?;
        let settings = TcpServiceSettings {
            env,
            allowed_hosts: args.sandbox.allow_hosts.clone(),
            port: args.port,
            listen: args.listen,
            memory_bytes: args.sandbox.memory_bytes(),
            limits: TcpLimits {
                fuel_per_interval: args.fuel_per_interval,
                fuel_interval: Duration::from_millis(args.fuel_interval_ms),
                max_connections: args.max_connections,
                max_bytes_per_second: args.max_bytes_per_second,
                idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            },
        };
        let addr = host.start(0, &bytes, &hash, settings).await?;
        println!(
            "tcp://{addr} (sha256 {}); Ctrl-C stops it",
            hex::encode(hash)
        );
        let _ = tokio::signal::ctrl_c().await;
        host.stop(0).await;
        Ok(ExitCode::SUCCESS)
    })
}
