//! Shared helpers of the integration tests: finding workloads, building
//! jobs and pseudo-random input.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use provider_node::sandbox::{Executor, Job, JobLimits, SandboxConfig, WasmModule};

/// Directory of the built workloads (see [`market_artifacts::workload_dir`]).
pub fn workloads_dir() -> PathBuf {
    market_artifacts::workload_dir()
}

pub use market_artifacts::repo_root;

/// A Rust workload built by `scripts/build-workloads.sh`.
pub fn workload(name: &str) -> WasmModule {
    WasmModule::new(market_artifacts::workload(name))
}

/// A hand-written WAT workload from `workloads/wat/`, assembled now.
pub fn wat(name: &str) -> WasmModule {
    let path = repo_root()
        .join("workloads/wat")
        .join(format!("{name}.wat"));
    let bytes = wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    WasmModule::new(bytes)
}

/// Small limits so that hostile jobs end quickly.
pub fn test_limits() -> JobLimits {
    JobLimits {
        fuel: 200_000_000,
        memory_bytes: 32 << 20,
        table_elements: 10_000,
        timeout: Duration::from_secs(20),
        max_stdout_bytes: 64 * 1024,
        max_stderr_bytes: 16 * 1024,
    }
}

pub fn test_config() -> SandboxConfig {
    SandboxConfig {
        concurrent_jobs: 4,
        max_job_memory_bytes: 64 << 20,
        max_job_table_elements: 100_000,
        max_compile_time: Duration::from_secs(20),
        ..SandboxConfig::default()
    }
}

pub fn executor() -> Executor {
    Executor::new(test_config()).expect("executor")
}

pub fn job(module: WasmModule, input: &[u8]) -> Job {
    Job {
        limits: test_limits(),
        ..Job::new(module, input.to_vec())
    }
}

/// Bytes that look like nothing in particular, deterministically.
pub fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
