//! Sandbox benchmark: start latency (cold, disk-cached, warm) and kernel
//! throughput against native code and the wasmi interpreter, with and
//! without fuel metering.
//!
//! Run: `scripts/build-workloads.sh && cargo bench -p provider-node --bench sandbox`
//! (`-- quick` for smaller sizes). Results are recorded in BENCHMARKS.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use provider_node::sandbox::{Executor, Job, JobLimits, ModuleSource, SandboxConfig, WasmModule};

#[path = "../../../workloads/kernels/src/lib.rs"]
mod kernels;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn workload(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("PROVIDER_NODE_WORKLOADS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/workloads"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/build-workloads.sh first",
            path.display()
        )
    })
}

fn empty_module(salt: u64) -> Vec<u8> {
    // A custom section makes each salt a distinct module (a cold cache).
    wat::parse_str(format!(
        "(module (@custom \"salt\" \"{salt:016x}\") (memory (export \"memory\") 1) (func (export \"_start\")))"
    ))
    .expect("valid WAT")
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn limits() -> JobLimits {
    JobLimits {
        fuel: u64::MAX / 4,
        memory_bytes: 512 << 20,
        timeout: Duration::from_secs(600),
        ..JobLimits::default()
    }
}

fn job(bytes: WasmModule, args: &[&str]) -> Job {
    Job {
        args: args.iter().map(|s| s.to_string()).collect(),
        limits: limits(),
        ..Job::new(bytes, Vec::new())
    }
}

fn start_latency(rt: &tokio::runtime::Runtime, quick: bool) {
    println!("## Start latency (job handed to the executor -> `_start` returned)\n");
    println!("| case | p50 | p90 | samples |");
    println!("|---|---|---|---|");
    let cold_n = if quick { 10 } else { 40 };
    let warm_n = if quick { 500 } else { 5000 };
    let cache_dir =
        std::env::temp_dir().join(format!("provider-node-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);
    for pooling in [true, false] {
        let config = SandboxConfig {
            pooling,
            concurrent_jobs: 2,
            cache_dir: Some(cache_dir.clone()),
            ..SandboxConfig::default()
        };
        let label = if pooling { "pooling" } else { "on-demand" };
        let executor = Executor::new(config.clone()).expect("executor");
        // Cold: a module never seen (compile + link + instantiate + run).
        let mut cold = Vec::new();
        for i in 0..cold_n {
            let module =
                WasmModule::new(empty_module(i as u64 + if pooling { 0 } else { 1 << 32 }));
            let t = Instant::now();
            let report = rt.block_on(executor.run(job(module, &[])));
            cold.push(t.elapsed());
            assert_eq!(report.module_source, ModuleSource::Compiled);
        }
        println!(
            "| empty module, cold cache (compile), {label} | {} | {} | {cold_n} |",
            us(percentile(&mut cold, 0.5)),
            us(percentile(&mut cold, 0.9))
        );
        // Disk: a fresh executor finds the artefacts on disk.
        drop(executor);
        let executor = Executor::new(config.clone()).expect("executor");
        let mut disk = Vec::new();
        for i in 0..cold_n {
            let module =
                WasmModule::new(empty_module(i as u64 + if pooling { 0 } else { 1 << 32 }));
            let t = Instant::now();
            let report = rt.block_on(executor.run(job(module, &[])));
            disk.push(t.elapsed());
            assert_eq!(report.module_source, ModuleSource::DiskCache);
        }
        println!(
            "| empty module, disk cache, {label} | {} | {} | {cold_n} |",
            us(percentile(&mut disk, 0.5)),
            us(percentile(&mut disk, 0.9))
        );
        // Warm: the same module again and again.
        for (name, module) in [
            ("empty module", WasmModule::new(empty_module(u64::MAX))),
            ("Rust echo guest", WasmModule::new(workload("echo"))),
        ] {
            let _ = rt.block_on(executor.run(job(module.clone(), &[])));
            let mut warm = Vec::with_capacity(warm_n);
            for _ in 0..warm_n {
                let t = Instant::now();
                let report = rt.block_on(executor.run(job(module.clone(), &[])));
                warm.push(t.elapsed());
                assert_eq!(report.module_source, ModuleSource::MemoryCache);
            }
            println!(
                "| {name}, warm cache, {label} | {} | {} | {warm_n} |",
                us(percentile(&mut warm, 0.5)),
                us(percentile(&mut warm, 0.9))
            );
        }
    }
    let _ = std::fs::remove_dir_all(&cache_dir);
    println!();
}

/// Engine variants for calling the kernels directly.
fn engine(fuel: bool, epoch: bool, nan_canonical: bool) -> wasmtime::Engine {
    let mut config = wasmtime::Config::new();
    config
        .consume_fuel(fuel)
        .epoch_interruption(epoch)
        .cranelift_nan_canonicalization(nan_canonical)
        .wasm_relaxed_simd(false);
    wasmtime::Engine::new(&config).expect("engine")
}

fn wasmtime_kernel(
    engine: &wasmtime::Engine,
    wasm: &[u8],
    export: &str,
    n: u64,
) -> (u64, Duration) {
    let module = wasmtime::Module::new(engine, wasm).expect("module");
    let mut linker = wasmtime::Linker::new(engine);
    linker
        .define_unknown_imports_as_traps(&module)
        .expect("stubs");
    let mut store = wasmtime::Store::new(engine, ());
    let _ = store.set_fuel(u64::MAX / 4);
    store.set_epoch_deadline(u64::MAX / 4);
    let instance = linker.instantiate(&mut store, &module).expect("instance");
    let f = instance
        .get_typed_func::<u64, u64>(&mut store, export)
        .expect("kernel export");
    let t = Instant::now();
    let sum = f.call(&mut store, n).expect("kernel runs");
    (sum, t.elapsed())
}

fn wasmi_kernel(wasm: &[u8], export: &str, n: u64) -> (u64, Duration) {
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, wasm).expect("module");
    let mut linker = wasmi::Linker::<()>::new(&engine);
    for import in module.imports() {
        if let wasmi::ExternType::Func(ty) = import.ty() {
            linker
                .func_new(import.module(), import.name(), ty.clone(), |_, _, _| {
                    Err(wasmi::Error::new("WASI is not available in this benchmark"))
                })
                .expect("stub");
        }
    }
    let mut store = wasmi::Store::new(&engine, ());
    let instance = linker
        .instantiate_and_start(&mut store, &module)
        .expect("instance");
    let f = instance
        .get_typed_func::<i64, i64>(&store, export)
        .expect("kernel export");
    let t = Instant::now();
    let sum = f.call(&mut store, n as i64).expect("kernel runs");
    (sum as u64, t.elapsed())
}

fn best<F: FnMut() -> (u64, Duration)>(runs: usize, mut f: F) -> (u64, Duration) {
    (0..runs)
        .map(|_| f())
        .min_by_key(|(_, d)| *d)
        .expect("at least one run")
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// A kernel: its name, its `cpu-kernel` argument, its size and the native
/// implementation.
type KernelCase = (&'static str, &'static str, u64, fn(u64) -> u64);

fn throughput(rt: &tokio::runtime::Runtime, quick: bool) {
    let wasm = workload("cpu-kernel");
    let scale = if quick { 10 } else { 1 };
    let cases: [KernelCase; 3] = [
        (
            "integer (xorshift mix)",
            "int",
            200_000_000 / scale,
            kernels::int_mix,
        ),
        ("memory (sieve, bytes)", "mem", 40_000_000 / scale, |n| {
            kernels::sieve(n as usize)
        }),
        (
            "float (f64 matmul n×n)",
            "float",
            if quick { 150 } else { 300 },
            |n| kernels::matmul(n as usize),
        ),
    ];
    let plain = engine(false, false, false);
    let det = engine(false, true, true);
    let metered = engine(true, true, true);
    let executor = Executor::new(SandboxConfig::default()).expect("executor");
    let module = WasmModule::new(wasm.clone());
    println!("## Kernel throughput (ms, best of 3; wasmi 1 run)\n");
    println!(
        "| kernel | size | native | wasmtime plain | wasmtime epoch+NaN-canon, no fuel | wasmtime sandbox config (fuel+epoch+NaN-canon) | sandbox job via Executor | wasmi | sandbox / native | wasmi / sandbox | fuel cost |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, kind, n, native) in cases {
        let (sum, t_native) = best(3, || {
            let t = Instant::now();
            let s = native(std::hint::black_box(n));
            (s, t.elapsed())
        });
        let export = format!("kernel_{kind}");
        let (s1, t_plain) = best(3, || wasmtime_kernel(&plain, &wasm, &export, n));
        let (s2, t_det) = best(3, || wasmtime_kernel(&det, &wasm, &export, n));
        let (s3, t_fuel) = best(3, || wasmtime_kernel(&metered, &wasm, &export, n));
        let (s4, t_job) = best(3, || {
            let report = rt.block_on(executor.run(job(module.clone(), &[kind, &n.to_string()])));
            assert!(report.outcome.is_success(), "{report:?}");
            let printed = String::from_utf8_lossy(&report.stdout);
            let sum = printed
                .split_whitespace()
                .nth(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (sum, report.run_time)
        });
        let (s5, t_wasmi) = wasmi_kernel(&wasm, &export, n);
        for s in [s1, s2, s3, s4, s5] {
            assert_eq!(s, sum, "{name}: all engines compute the same checksum");
        }
        println!(
            "| {name} | {n} | {} | {} | {} | {} | {} | {} | {:.2}x | {:.1}x | {:+.0}% |",
            ms(t_native),
            ms(t_plain),
            ms(t_det),
            ms(t_fuel),
            ms(t_job),
            ms(t_wasmi),
            t_fuel.as_secs_f64() / t_native.as_secs_f64(),
            t_wasmi.as_secs_f64() / t_fuel.as_secs_f64(),
            (t_fuel.as_secs_f64() / t_det.as_secs_f64() - 1.0) * 100.0,
        );
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "quick");
    // `cargo test --benches` runs bench binaries with `--bench`-less args;
    // only do the work when asked to benchmark.
    if !args.iter().any(|a| a == "--bench" || a == "quick") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    println!(
        "# Sandbox benchmark (wasmtime {})\n",
        provider_node::sandbox::ENGINE_VERSION
    );
    start_latency(&rt, quick);
    throughput(&rt, quick);
}
