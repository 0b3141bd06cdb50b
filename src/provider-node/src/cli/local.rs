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
