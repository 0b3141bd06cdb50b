//! Per-job resource limits: what the buyer paid for and what the job may use.

use std::time::Duration;

/// Limits that apply to one job. Every limit is enforced by the sandbox and
/// each violation ends the job with its own [`Outcome`](super::Outcome).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobLimits {
    /// Fuel budget: the deterministic amount of work the buyer paid for.
    /// Most wasm operators cost 1 unit (wasmtime's default operator costs).
    pub fuel: u64,
    /// Largest linear memory the job may reach, in bytes.
    pub memory_bytes: u64,
    /// Largest number of elements any of the job's tables may reach.
    pub table_elements: u64,
    /// Wall-clock budget for instantiation plus `_start` (compilation is
    /// bounded separately by the node's [`SandboxConfig`](super::SandboxConfig)).
    pub timeout: Duration,
    /// Bytes of stdout kept; writing more ends the job.
    pub max_stdout_bytes: usize,
    /// Bytes of stderr kept; writing more ends the job.
    pub max_stderr_bytes: usize,
}

impl JobLimits {
    /// One WebAssembly page (64 KiB).
    pub const WASM_PAGE: u64 = 64 * 1024;
}

impl Default for JobLimits {
    /// Modest limits suitable for a quick local test of a job.
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            table_elements: 100_000,
            timeout: Duration::from_secs(30),
            max_stdout_bytes: 16 << 20,
            max_stderr_bytes: 1 << 20,
        }
    }
}
