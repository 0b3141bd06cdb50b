//! Node-wide sandbox settings and the one wasmtime [`Engine`] built from them.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy,
    WasmFeatures,
};

use super::error::SandboxError;

/// WebAssembly proposals no engine of the node accepts (the batch sandbox's
/// and the services'): none is needed, each is attack surface. Those
/// behind cargo features left off (GC, threads, exceptions, stack
/// switching) are rejected anyway; the rest are switched off with these.
pub(crate) const DENIED_PROPOSALS: WasmFeatures = WasmFeatures::MULTI_MEMORY
    .union(WasmFeatures::MEMORY64)
    .union(WasmFeatures::GC)
    .union(WasmFeatures::FUNCTION_REFERENCES)
    .union(WasmFeatures::EXCEPTIONS)
    .union(WasmFeatures::LEGACY_EXCEPTIONS)
    .union(WasmFeatures::STACK_SWITCHING)
    .union(WasmFeatures::THREADS)
    .union(WasmFeatures::SHARED_EVERYTHING_THREADS)
    .union(WasmFeatures::CUSTOM_PAGE_SIZES)
    .union(WasmFeatures::WIDE_ARITHMETIC);

/// Settings shared by every job a node runs. The per-job limits
/// ([`JobLimits`](super::JobLimits)) must fit inside these.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Jobs that may execute at the same time; more wait for a slot.
    pub concurrent_jobs: usize,
    /// Largest module accepted, in bytes (checked before parsing).
    pub max_module_bytes: usize,
    /// Wall-clock limit for compiling one module.
    pub max_compile_time: Duration,
    /// Modules compiled at the same time (a compile that timed out keeps its
    /// slot until the compiler really finishes; see [`Executor`](super::Executor)).
    pub concurrent_compiles: usize,
    /// Structural limits checked before compilation.
    pub module_shape: ModuleShapeLimits,
    /// Largest linear memory any job may ask for, in bytes; also sizes the
    /// pooling allocator's slots.
    pub max_job_memory_bytes: u64,
    /// Largest table any job may ask for, in elements.
    pub max_job_table_elements: u64,
    /// Largest stdin a job may be given, in bytes.
    pub max_input_bytes: usize,
    /// Largest total size of a job's args and env, in bytes.
    pub max_args_env_bytes: usize,
    /// WebAssembly stack limit (`Config::max_wasm_stack`); deeper recursion
    /// traps with a stack overflow.
    pub max_wasm_stack: usize,
    /// Use wasmtime's pooling instance allocator (fast instantiation, memory
    /// reserved up front for `concurrent_jobs` slots).
    pub pooling: bool,
    /// Directory of the on-disk compiled-module cache; `None` keeps compiled
    /// modules in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Compiled modules kept in memory.
    pub memory_cache_entries: usize,
    /// Fuel a job burns between checks of its wall-clock deadline and its
    /// cancellation flag (and between progress updates). Guest code is only
    /// stopped at these checks, so this bounds how late a deadline or a
    /// cancel is noticed, in fuel: the time a slice takes depends on the code
    /// (see [`DEFAULT_FUEL_SLICE`]). Slicing does not change fuel counts.
    pub fuel_slice: u64,
}

/// Limits on a module's shape, checked by a fast parse before compilation so
/// that compile-time bombs are refused without reaching the compiler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleShapeLimits {
    /// Functions defined by the module.
    pub max_functions: u32,
    /// Bytes of one function body.
    pub max_function_body_bytes: usize,
    /// Locals declared by one function.
    pub max_locals: u32,
    /// Nesting depth of blocks, loops and ifs in one function.
    pub max_nesting: u32,
    /// Imports of the module.
    pub max_imports: u32,
}

impl Default for ModuleShapeLimits {
    fn default() -> Self {
        Self {
            max_functions: 100_000,
            max_function_body_bytes: 512 * 1024,
            max_locals: 50_000,
            max_nesting: 1_000,
            max_imports: 1_000,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            concurrent_jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_module_bytes: 16 << 20,
            max_compile_time: Duration::from_secs(10),
            concurrent_compiles: 1,
            module_shape: ModuleShapeLimits::default(),
            max_job_memory_bytes: 1 << 30,
            max_job_table_elements: 1_000_000,
            max_input_bytes: 64 << 20,
            max_args_env_bytes: 64 * 1024,
            max_wasm_stack: 1 << 20,
            pooling: true,
            cache_dir: None,
            memory_cache_entries: 256,
            fuel_slice: DEFAULT_FUEL_SLICE,
        }
    }
}

/// Version of the engine whose fuel counts and outputs a result attests.
/// Fuel costs can change between wasmtime releases, so a result is only
/// comparable with re-executions under the same engine version. A unit test
/// checks it against the wasmtime version in the workspace's `Cargo.lock`.
pub const ENGINE_VERSION: &str = "wasmtime-48.0.8/default-operator-costs/nan-canonical";

/// Default [`SandboxConfig::fuel_slice`]. Measured on the benchmark machine
/// (BENCHMARKS.md, "Sandbox"): a slice takes 0.05-0.25 ms of integer code
/// and 5-30 ms of loads that each miss the cache (the slowest guest code per
/// unit of fuel); a yield costs 0.3 µs, so slicing costs at most 0.6% of
/// throughput.
pub const DEFAULT_FUEL_SLICE: u64 = 1_000_000;

/// Stack given to each job's fiber beyond the wasm stack limit, for host
/// calls (WASI) made from wasm.
const HOST_STACK_HEADROOM: usize = 1 << 20;

/// Address space reserved for each linear memory: all a 32-bit memory can
/// address, which is what lets compiled code skip bounds checks.
const MEMORY_RESERVATION: u64 = 4 << 30;

/// Unmapped guard after (and before) each linear memory: covers the static
/// offsets of loads and stores.
const MEMORY_GUARD: u64 = 32 << 20;

/// The wasmtime config the sandbox's engine and the services' engine start
/// from: Cranelift optimising for speed, parallel compilation, fuel
/// metered, no epoch interruption (see [`SandboxConfig::engine`]), no
/// relaxed SIMD (whose results differ by CPU) and no shared memory.
pub(crate) fn metered_config() -> Config {
    let mut config = Config::new();
    config
        .strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .consume_fuel(true)
        .epoch_interruption(false)
        .wasm_relaxed_simd(false)
        .shared_memory(false)
        .parallel_compilation(true);
    config
}

impl SandboxConfig {
    /// Builds the node's engine: fuel on, deterministic float behaviour, and
    /// only the proposals a WASI p1 job needs.
    ///
    /// There is no epoch interruption: its check in every loop header cost
    /// the sieve kernel as much as the kernel itself. The executor enforces
    /// deadlines and cancellation where the job yields after each fuel slice.
    pub fn engine(&self) -> Result<Engine, SandboxError> {
        self.check()?;
        let mut config = metered_config();
        config
            // Each linear memory sits in a 4 GiB reservation followed by a
            // 32 MiB guard, so no access of a 32-bit memory needs an explicit
            // bounds check, and the memory never moves, so its base can be
            // hoisted out of loops. Memory is still limited by the job's
            // `ResourceLimiter` and the pool's `max_memory_size`; only
            // address space is reserved.
            .memory_reservation(MEMORY_RESERVATION)
            .memory_guard_size(MEMORY_GUARD)
            .guard_before_linear_memory(true)
            .memory_may_move(false)
            .max_wasm_stack(self.max_wasm_stack)
            .async_stack_size(self.max_wasm_stack + HOST_STACK_HEADROOM)
            // Determinism: NaN bit patterns are canonical, relaxed SIMD (whose
            // results differ by CPU) is off, and there is no shared memory
            // (threads are not compiled in: wasmtime's `threads` feature is off).
            .cranelift_nan_canonicalization(true)
            // Proposals a batch job doesn't need are attack surface. Those
            // behind cargo features left off (GC, threads, exceptions, stack
            // switching) are rejected anyway; the rest are switched off here.
            .wasm_features(DENIED_PROPOSALS.union(WasmFeatures::COMPONENT_MODEL), false)
            .wasm_backtrace_max_frames(None);
        if self.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(self.pool()));
        }
        Engine::new(&config).map_err(|e| SandboxError::Engine(format!("{e:#}")))
    }

    fn pool(&self) -> PoolingAllocationConfig {
        let slots = u32::try_from(self.concurrent_jobs).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .total_stacks(slots)
            .total_component_instances(0)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(usize::try_from(self.max_job_memory_bytes).unwrap_or(usize::MAX))
            .table_elements(usize::try_from(self.max_job_table_elements).unwrap_or(usize::MAX))
            .max_core_instance_size(1 << 20)
            .linear_memory_keep_resident(1 << 20)
            .max_unused_warm_slots(slots);
        pool
    }

    fn check(&self) -> Result<(), SandboxError> {
        let bad = |what: &str| Err(SandboxError::Config(what.to_string()));
        if self.concurrent_jobs == 0 {
            return bad("concurrent_jobs must be at least 1");
        }
        if self.concurrent_compiles == 0 {
            return bad("concurrent_compiles must be at least 1");
        }
        if self.max_job_memory_bytes > 4 << 30 {
            return bad("max_job_memory_bytes can't exceed 4 GiB (32-bit memories)");
        }
        if self.fuel_slice == 0 {
            return bad("fuel_slice must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version cargo resolved for `crate_name`, read from the
    /// workspace's lock file.
    fn locked_version(crate_name: &str) -> String {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .expect("the workspace's Cargo.lock");
        let name_line = format!("name = \"{crate_name}\"");
        let mut versions = lock.split("[[package]]").filter_map(|package| {
            let mut lines = package.lines().map(str::trim);
            lines.find(|l| *l == name_line)?;
            let version = lines.find_map(|l| l.strip_prefix("version = \""))?;
            Some(version.trim_end_matches('"').to_string())
        });
        let version = versions.next().expect("crate in Cargo.lock");
        assert!(
            versions.next().is_none(),
            "{crate_name} is locked at more than one version"
        );
        version
    }

    #[test]
    fn engine_version_names_the_locked_wasmtime() {
        let wasmtime = locked_version("wasmtime");
        assert!(
            ENGINE_VERSION.starts_with(&format!("wasmtime-{wasmtime}/")),
            "ENGINE_VERSION {ENGINE_VERSION:?} doesn't match wasmtime {wasmtime} in Cargo.lock: \
             update it (fuel counts may have changed)"
        );
        assert_eq!(locked_version("wasmtime-wasi"), wasmtime);
    }

    #[test]
    fn default_config_builds_a_fuel_engine_without_epochs() {
        let config = SandboxConfig {
            pooling: false,
            ..SandboxConfig::default()
        };
        let engine = config.engine().expect("engine");
        assert!(engine.get_consume_fuel());
        assert!(!engine.get_epoch_interruption());
        assert!(
            SandboxConfig {
                fuel_slice: 0,
                ..config
            }
            .engine()
            .is_err()
        );
    }
}
