//! What a job is, as the sandbox sees it: code, input, args, env, a seed for
//! its deterministic world, and limits.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::cache::CodeHash;
use super::limits::JobLimits;

/// A module's wasm bytes together with their sha256, computed once, so the
/// daemon can hand the same module to many jobs without hashing it again.
#[derive(Clone, Debug)]
pub struct WasmModule {
    hash: CodeHash,
    bytes: Arc<[u8]>,
}

impl WasmModule {
    /// Wraps `bytes`, computing their sha256.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes = bytes.into();
        let hash = Sha256::digest(&bytes).into();
        Self { hash, bytes }
    }

    /// The sha256 of the bytes: the module's name in the marketplace.
    pub fn hash(&self) -> &CodeHash {
        &self.hash
    }

    /// The wasm bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// One job for the sandbox.
#[derive(Clone, Debug)]
pub struct Job {
    /// The WASI preview1 command module to run.
    pub module: WasmModule,
    /// The job's stdin.
    pub input: Vec<u8>,
    /// Arguments after the program name (`argv[0]` is always `job`).
    pub args: Vec<String>,
    /// The job's whole environment; nothing of the host's is inherited.
    pub env: Vec<(String, String)>,
    /// Seeds the job's random sources; the same seed gives the same bytes.
    /// The marketplace derives it from the job's id.
    pub seed: [u8; 32],
    /// The job's resource limits.
    pub limits: JobLimits,
}

impl Job {
    /// A job running `module` on `input` with no args or env, a zero seed
    /// and default limits.
    pub fn new(module: WasmModule, input: Vec<u8>) -> Self {
        Self {
            module,
            input,
            args: Vec::new(),
            env: Vec::new(),
            seed: [0; 32],
            limits: JobLimits::default(),
        }
    }
}
