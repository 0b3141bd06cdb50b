//! `provider-node serve`: runs a `wasi:http/proxy` component behind the
//! ingress exactly as a provider's daemon does (same host, limits, routing
//! and egress policy), so a buyer can try a service before leasing it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use market_api::matcher::ServiceLimits;
use provider_node::service::{
    IngressSettings, ServiceHost, ServiceHostConfig, ServiceMetrics, ServiceSettings,
};

/// Flags of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The component (.wasm) for the `wasi:http/proxy` world.
    pub component: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The service's id: it answers under `/<id>/`.
    #[arg(long, default_value_t = 0)]
    pub id: u64,
    /// Fuel one request may burn.
    #[arg(long, default_value_t = ServiceLimits::default().fuel_per_request)]
    pub fuel: u64,
    /// Wall time of one request in milliseconds, response body included.
    #[arg(long, default_value_t = ServiceLimits::default().timeout_ms)]
    pub timeout_ms: u64,
    /// Requests served at once; more are answered 503.
    #[arg(long, default_value_t = ServiceLimits::default().max_concurrent)]
    pub max_concurrent: u32,
    /// Largest request and response body, bytes.
    #[arg(long, default_value_t = ServiceLimits::default().max_body_bytes)]
    pub max_body_bytes: u64,
    #[command(flatten)]
    pub sandbox: super::local::SandboxFlags,
    /// Environment variable for the component, NAME=VALUE (repeatable).
    /// Nothing of this shell's environment is passed on.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
}

/// Serves until Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (bytes, hash) = super::local::read_component(&args.component)?;
    let env = super::local::env_flags(&args.env)?;
    let runtime = super::local::serving_runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let local = listener.local_addr()?;
        let config = ServiceHostConfig {
            public_base_url: Some(format!("http://{local}")),
            ..args.sandbox.host_config(args.max_concurrent.max(1))
        };
        let host = ServiceHost::new(config, ServiceMetrics::default())?;
        let settings = ServiceSettings {
            env,
            allowed_hosts: args.sandbox.allow_hosts.clone(),
            limits: ServiceLimits {
                fuel_per_request: args.fuel,
                timeout_ms: args.timeout_ms,
                max_concurrent: args.max_concurrent,
                max_body_bytes: args.max_body_bytes,
            },
            memory_bytes: args.sandbox.memory_bytes(),
        };
        host.start(args.id, &bytes, &hash, settings).await?;
        println!(
            "{} (sha256 {}); Ctrl-C stops it",
            host.endpoint(args.id).unwrap_or_default(),
            hex::encode(hash)
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        provider_node::service::serve(host, listener, IngressSettings::default(), shutdown).await;
        Ok(ExitCode::SUCCESS)
    })
}
