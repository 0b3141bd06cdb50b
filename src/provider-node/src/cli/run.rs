//! `provider-node run`: the daemon.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use provider_node::config::GlobalArgs;
use provider_node::daemon::metrics::{self, Metrics};
use provider_node::daemon::replica::TcpServing;
use provider_node::daemon::{Daemon, DaemonConfig};
use provider_node::sandbox::{Executor, SandboxConfig};

use super::context;

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    context::runtime()?.block_on(async {
        let s = context::connect(global).await?;
        let sb = &s.settings.sandbox;
        let executor = Executor::new(SandboxConfig {
            concurrent_jobs: sb.concurrent_jobs,
            max_module_bytes: sb.max_module_bytes,
            max_compile_time: sb.compile_timeout,
            max_job_memory_bytes: sb.max_job_memory_bytes,
            cache_dir: Some(s.settings.cache_dir.join("compiled")),
            ..SandboxConfig::default()
        })
        .context("starting the sandbox")?;
        let metrics = Metrics::default();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(addr) = s.settings.metrics_addr {
            let mut rx = stop_rx.clone();
            let (bound, _task) = metrics::serve(metrics.clone(), addr, async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
            tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
        }
        // The services' ingress: the daemon runs the replicas of service
        // leases in its host. Without it, service slots are handed back.
        // With a TCP port range, TCP services too (whose health the
        // ingress answers for).
        let mut services = None;
        let mut tcp = None;
        if let Some(ingress) = &s.settings.ingress {
            let host = provider_node::service::ServiceHost::new(
                ingress.host_config(&s.settings.cache_dir.join("compiled")),
                metrics.services.clone(),
            )
            .context("starting the service host")?;
            let mut settings = ingress.ingress_settings().context("ingress TLS")?;
            if let Some(t) = &ingress.tcp {
                let tcp_host = provider_node::service::TcpServiceHost::new(host.clone())
                    .context("starting the TCP service host")?;
                settings.tcp_services = Some(tcp_host.clone());
                tracing::info!(ports = ?t.ports, listen = %t.listen, public_host = %t.public_host,
                    "TCP services");
                tcp = Some((
                    TcpServing {
                        host: tcp_host,
                        listen: t.listen,
                        public_host: t.public_host.clone(),
                    },
                    t.ports.clone(),
                ));
            }
            let listener = tokio::net::TcpListener::bind(ingress.listen)
                .await
                .with_context(|| format!("ingress on {}", ingress.listen))?;
            let mut rx = stop_rx.clone();
            tokio::spawn(provider_node::service::serve(
                host.clone(),
                listener,
                settings,
                async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                },
            ));
            tracing::info!(listen = %ingress.listen, url = %ingress.public_url, "services' ingress");
            services = Some(host);
        } else {
            tracing::info!(
                "no services' ingress ([ingress] listen): slots of service leases will be handed back"
            );
        }
        let mut daemon = Daemon::new(
            s.client.clone(),
            Arc::new(executor),
            DaemonConfig {
                provider: s.provider,
                poll_interval: s.settings.poll_interval,
                shutdown_grace: s.settings.shutdown_grace,
                max_job_time: sb.max_job_time,
                state_dir: s.settings.state_dir.clone(),
                cache_dir: Some(s.settings.cache_dir.clone()),
            },
            metrics,
        )?;
        if let Some(host) = services {
            daemon = daemon.with_services(host);
        }
        if let Some((serving, ports)) = tcp {
            daemon = daemon.with_tcp_services(serving, ports);
        }
        let summary = daemon.run(shutdown_signal()).await;
        let _ = stop_tx.send(true);
        eprintln!(
            "stopped: {} results submitted, {} heartbeats accepted, {} jobs cancelled at shutdown, {} replicas started",
            summary.results_submitted,
            summary.heartbeats_accepted,
            summary.cancelled_at_shutdown,
            summary.replicas_started
        );
        Ok(ExitCode::SUCCESS)
    })
}
