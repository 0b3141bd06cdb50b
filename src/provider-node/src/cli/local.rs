//! What the commands that run a workload on this machine (`exec`, `serve`,
//! `serve-tcp`) share.

use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The `--env NAME=VALUE` flags as (name, value) pairs.
pub fn env_flags(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env {kv}: expected NAME=VALUE"))
        })
        .collect()
}

/// The component (.wasm) at `path` and its sha256, for `serve` and
/// `serve-tcp`.
pub fn read_component(path: &Path) -> anyhow::Result<(Vec<u8>, [u8; 32])> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let hash = Sha256::digest(&bytes).into();
    Ok((bytes, hash))
}

/// The runtime a service runs on until Ctrl-C.
pub fn serving_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// The sandbox flags `serve` and `serve-tcp` share.
#[derive(clap::Args, Debug)]
pub struct SandboxFlags {
    /// Linear memory of an instance, MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: u32,
    /// A host the component may reach (repeatable); nothing else is.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// An address on this machine's network that allowed hosts may resolve
    /// to (a local test server; repeatable). By default only public
    /// addresses are reachable.
    #[arg(long = "allow-local-address", value_name = "IP")]
    pub allow_local_addresses: Vec<std::net::IpAddr>,
}

impl SandboxFlags {
    /// An instance's memory limit, bytes.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_mib) << 20
    }

    /// A host running at most `max_instances` instances with these limits.
    pub fn host_config(&self, max_instances: u32) -> provider_node::service::ServiceHostConfig {
        provider_node::service::ServiceHostConfig {
            max_instances,
            max_memory_bytes: self.memory_bytes(),
            egress_local_addresses: self.allow_local_addresses.clone(),
            ..Default::default()
        }
    }
}
