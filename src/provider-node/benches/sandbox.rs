//! Sandbox benchmark: start latency (cold, disk-cached, warm) and kernel
//! throughput against native code and the wasmi interpreter, with and
//! without fuel metering.
//!
//! Run: `scripts/build-workloads.sh && cargo bench -p provider-node --bench sandbox`
//! (`-- quick` for smaller sizes; name sections to run only those:
//! `latency`, `throughput`, `ablation`, `slices`, `hostcalls`). Results are
//! recorded in BENCHMARKS.md.

use std::time::{Duration, Instant};

use provider_node::sandbox::{
    Executor, Job, JobLimits, JobReport, ModuleSource, SandboxConfig, WasmModule,
};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../../workloads/kernels/src/lib.rs"]
mod kernels;

use common::workload;

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

/// Runs `module` with `fuel` and a `timeout`.
fn run_limited(
    rt: &tokio::runtime::Runtime,
    executor: &Executor,
    module: &WasmModule,
    fuel: u64,
    timeout: Duration,
) -> JobReport {
    let mut j = job(module.clone(), &[]);
    j.limits.fuel = fuel;
    j.limits.timeout = timeout;
    rt.block_on(executor.run(j))
}

/// An executor with the default settings but fuel slices of `fuel_slice`.
fn sliced_executor(fuel_slice: u64) -> Executor {
    Executor::new(SandboxConfig {
        fuel_slice,
        ..SandboxConfig::default()
    })
    .expect("executor")
}

/// The start latency of each of `modules`, run one after the other, each
/// expected to come from `source`.
fn start_latencies(
    rt: &tokio::runtime::Runtime,
    executor: &Executor,
    modules: impl Iterator<Item = WasmModule>,
    source: ModuleSource,
) -> Vec<Duration> {
    modules
        .map(|module| {
            let t = Instant::now();
            let report = rt.block_on(executor.run(job(module, &[])));
            let elapsed = t.elapsed();
            assert_eq!(report.module_source, source);
            elapsed
        })
        .collect()
}

/// Prints the table row of `case`: the p50 and p90 of `samples`, and how
/// many there were.
fn latency_row(case: &str, samples: &mut [Duration]) {
    println!(
        "| {case} | {} | {} | {} |",
        us(percentile(samples, 0.5)),
        us(percentile(samples, 0.9)),
        samples.len()
    );
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
        // The same modules for the cold and the disk-cached runs, other
        // ones for each allocator.
        let salted = || {
            (0..cold_n).map(|i| {
                WasmModule::new(empty_module(i as u64 + if pooling { 0 } else { 1 << 32 }))
            })
        };
        let executor = Executor::new(config.clone()).expect("executor");
        // Cold: a module never seen (compile + link + instantiate + run).
        let mut cold = start_latencies(rt, &executor, salted(), ModuleSource::Compiled);
        latency_row(
            &format!("empty module, cold cache (compile), {label}"),
            &mut cold,
        );
        // Disk: a fresh executor finds the artefacts on disk.
        drop(executor);
        let executor = Executor::new(config.clone()).expect("executor");
        let mut disk = start_latencies(rt, &executor, salted(), ModuleSource::DiskCache);
        latency_row(&format!("empty module, disk cache, {label}"), &mut disk);
        // Warm: the same module again and again.
        for (name, module) in [
            ("empty module", WasmModule::new(empty_module(u64::MAX))),
            ("Rust echo guest", workload("echo")),
        ] {
            let _ = rt.block_on(executor.run(job(module.clone(), &[])));
            let again = std::iter::repeat_n(module, warm_n);
            let mut warm = start_latencies(rt, &executor, again, ModuleSource::MemoryCache);
            latency_row(&format!("{name}, warm cache, {label}"), &mut warm);
        }
    }
    let _ = std::fs::remove_dir_all(&cache_dir);
    println!();
}

/// Engine settings compared in the ablation table, applied to a
/// non-pooling `wasmtime::Config`.
#[derive(Clone, Copy)]
struct Knobs {
    fuel: bool,
    epoch: bool,
    nan_canonical: bool,
    memory_fixed: bool,
    bounds_checks: bool,
}

const DEFAULTS: Knobs = Knobs {
    fuel: false,
    epoch: false,
    nan_canonical: false,
    memory_fixed: false,
    bounds_checks: false,
};

fn engine(k: Knobs) -> wasmtime::Engine {
    let mut config = wasmtime::Config::new();
    config
        .consume_fuel(k.fuel)
        .epoch_interruption(k.epoch)
        .cranelift_nan_canonicalization(k.nan_canonical)
        .wasm_relaxed_simd(false);
    if k.memory_fixed {
        config.memory_may_move(false);
    }
    if k.bounds_checks {
        // No reservation beyond the memory itself and no guard: every load
        // and store is checked explicitly.
        config.memory_reservation(0).memory_guard_size(0);
    }
    wasmtime::Engine::new(&config).expect("engine")
}

/// The engine jobs really run on.
fn sandbox_engine() -> wasmtime::Engine {
    SandboxConfig::default().engine().expect("sandbox engine")
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

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// A kernel: its name, its `cpu-kernel` argument, its size and the native
/// implementation.
type KernelCase = (&'static str, &'static str, u64, fn(u64) -> u64);

fn kernel_cases(quick: bool) -> [KernelCase; 3] {
    let scale = if quick { 10 } else { 1 };
    [
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
    ]
}

/// Runs `cpu-kernel <kind> <n>` as a sandbox job; returns its checksum, run
/// time and fuel.
fn kernel_job(
    rt: &tokio::runtime::Runtime,
    executor: &Executor,
    module: &WasmModule,
    kind: &str,
    n: u64,
) -> (u64, Duration, u64) {
    let report = rt.block_on(executor.run(job(module.clone(), &[kind, &n.to_string()])));
    assert!(report.outcome.is_success(), "{report:?}");
    let printed = String::from_utf8_lossy(&report.stdout);
    let sum = printed
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (sum, report.run_time, report.fuel_used)
}

fn throughput(rt: &tokio::runtime::Runtime, quick: bool) {
    let module = workload("cpu-kernel");
    let wasm = module.bytes();
    let plain = engine(DEFAULTS);
    let sandbox = sandbox_engine();
    let executor = Executor::new(SandboxConfig::default()).expect("executor");
    println!("## Kernel throughput (ms, best of 3; wasmi 1 run)\n");
    println!(
        "| kernel | size | native | wasmtime defaults | sandbox engine, direct call | sandbox job | wasmi | direct / native | job / native | wasmi / direct | ns per fuel |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, kind, n, native) in kernel_cases(quick) {
        let (sum, t_native) = best(3, || {
            let t = Instant::now();
            let s = native(std::hint::black_box(n));
            (s, t.elapsed())
        });
        let export = format!("kernel_{kind}");
        let (s1, t_plain) = best(3, || wasmtime_kernel(&plain, wasm, &export, n));
        let (s2, t_direct) = best(3, || wasmtime_kernel(&sandbox, wasm, &export, n));
        let mut fuel = 0;
        let (s3, t_job) = best(3, || {
            let (sum, time, used) = kernel_job(rt, &executor, &module, kind, n);
            fuel = used;
            (sum, time)
        });
        let (s4, t_wasmi) = wasmi_kernel(wasm, &export, n);
        for s in [s1, s2, s3, s4] {
            assert_eq!(s, sum, "{name}: all engines compute the same checksum");
        }
        println!(
            "| {name} | {n} | {} | {} | {} | {} | {} | {:.2}x | {:.2}x | {:.1}x | {:.3} |",
            ms(t_native),
            ms(t_plain),
            ms(t_direct),
            ms(t_job),
            ms(t_wasmi),
            ratio(t_direct, t_native),
            ratio(t_job, t_native),
            ratio(t_wasmi, t_direct),
            t_job.as_secs_f64() * 1e9 / fuel as f64,
        );
    }
    println!();
}

/// What each engine setting costs, kernel by kernel (direct calls).
fn ablation(quick: bool) {
    let module = workload("cpu-kernel");
    let wasm = module.bytes();
    let variants: [(&str, Knobs); 8] = [
        ("defaults", DEFAULTS),
        (
            "NaN canon",
            Knobs {
                nan_canonical: true,
                ..DEFAULTS
            },
        ),
        (
            "fuel",
            Knobs {
                fuel: true,
                ..DEFAULTS
            },
        ),
        (
            "epoch",
            Knobs {
                epoch: true,
                ..DEFAULTS
            },
        ),
        (
            "fuel+epoch+NaN (old sandbox)",
            Knobs {
                fuel: true,
                epoch: true,
                nan_canonical: true,
                ..DEFAULTS
            },
        ),
        (
            "fuel+NaN",
            Knobs {
                fuel: true,
                nan_canonical: true,
                ..DEFAULTS
            },
        ),
        (
            "fuel+NaN, memory fixed",
            Knobs {
                fuel: true,
                nan_canonical: true,
                memory_fixed: true,
                ..DEFAULTS
            },
        ),
        (
            "fuel+NaN, explicit bounds checks",
            Knobs {
                fuel: true,
                nan_canonical: true,
                bounds_checks: true,
                ..DEFAULTS
            },
        ),
    ];
    let engines: Vec<_> = variants
        .iter()
        .map(|(name, k)| (*name, engine(*k)))
        .chain([("sandbox engine", sandbox_engine())])
        .collect();
    println!("## Engine settings, one at a time (ms, direct calls, best of 3)\n");
    print!("| kernel |");
    for (name, _) in &engines {
        print!(" {name} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(engines.len()));
    for (name, kind, n, _) in kernel_cases(quick) {
        let export = format!("kernel_{kind}");
        print!("| {name} |");
        for (_, engine) in &engines {
            let (_, t) = best(3, || wasmtime_kernel(engine, wasm, &export, n));
            print!(" {} |", ms(t));
        }
        println!();
    }
    println!();
}

const SPIN: &str = r#"(module (memory 1) (func (export "_start") (loop $l (br $l))))"#;

/// Runs `module` with unlimited fuel until `timeout`; returns how long
/// after the deadline it stopped.
fn overshoot(
    rt: &tokio::runtime::Runtime,
    executor: &Executor,
    module: &WasmModule,
    timeout: Duration,
) -> Duration {
    let report = run_limited(rt, executor, module, 1 << 60, timeout);
    assert_eq!(
        report.outcome,
        provider_node::sandbox::Outcome::Deadline,
        "{report:?}"
    );
    report.run_time.saturating_sub(timeout)
}

/// Deadline latency against throughput for several fuel slice sizes.
fn fuel_slices(rt: &tokio::runtime::Runtime, quick: bool) {
    let spin = WasmModule::new(wat::parse_str(SPIN).expect("WAT"));
    let chase = common::wat("pointer-chase");
    let kernel = workload("cpu-kernel");
    let n = if quick { 20_000_000 } else { 200_000_000 };
    let runs = if quick { 5 } else { 15 };
    println!("## Fuel slice: deadline latency against throughput\n");
    println!(
        "Time from the deadline to the job's end, for a spinning guest ({runs} runs, 20 ms deadline) and a cache-missing pointer chase ({} runs, 300 ms deadline); and the integer kernel as a job (best of 3).\n",
        runs.min(5)
    );
    println!(
        "| fuel slice | spin: p50 | spin: max | pointer chase: p50 | pointer chase: max | integer job (ms) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut baseline = None;
    for slice in [
        u64::MAX,
        100_000_000,
        10_000_000,
        2_000_000,
        1_000_000,
        500_000,
        250_000,
    ] {
        let executor = sliced_executor(slice);
        let (_, t_int) = best(3, || {
            let (sum, time, _) = kernel_job(rt, &executor, &kernel, "int", n);
            (sum, time)
        });
        let label = if slice == u64::MAX {
            "none (one slice)".to_string()
        } else {
            format!("{slice}")
        };
        if slice == u64::MAX {
            baseline = Some(t_int);
            println!("| {label} | – | – | – | – | {} |", ms(t_int));
            continue;
        }
        let mut spin_late: Vec<_> = (0..runs)
            .map(|_| overshoot(rt, &executor, &spin, Duration::from_millis(20)))
            .collect();
        let mut chase_late: Vec<_> = (0..runs.min(5))
            .map(|_| overshoot(rt, &executor, &chase, Duration::from_millis(300)))
            .collect();
        let base = baseline.expect("baseline first");
        println!(
            "| {label} | {} | {} | {} | {} | {} ({:+.1}%) |",
            us(percentile(&mut spin_late, 0.5)),
            us(percentile(&mut spin_late, 1.0)),
            us(percentile(&mut chase_late, 0.5)),
            us(percentile(&mut chase_late, 1.0)),
            ms(t_int),
            (ratio(t_int, base) - 1.0) * 100.0,
        );
    }
    // The price of one yield: a spinning guest burning the same fuel in
    // 1 000-fuel slices and in one slice.
    let spin_fuel = if quick { 20_000_000 } else { 200_000_000 };
    let spin_for = |slice: u64| {
        let executor = sliced_executor(slice);
        best(5, || {
            let report = run_limited(rt, &executor, &spin, spin_fuel, limits().timeout);
            assert_eq!(report.outcome, provider_node::sandbox::Outcome::OutOfFuel);
            (0, report.run_time)
        })
        .1
    };
    let (sliced, whole) = (spin_for(1_000), spin_for(u64::MAX));
    let yields = spin_fuel / 1_000;
    println!(
        "\nOne yield (end of slice, deadline and cancel check, back to the runtime and in again) costs {:.2} µs: {} ms for {spin_fuel} fuel of spinning in {yields} slices, {} ms in one.\n",
        (sliced.as_secs_f64() - whole.as_secs_f64()) * 1e6 / yields as f64,
        ms(sliced),
        ms(whole),
    );
}

/// Guests that loop on host calls that cost a few units of fuel but make
/// the host work hard: the wall time one unit of fuel takes there, and
/// whether a 100 ms deadline stops them (each gets fuel for about 3 s, so a
/// guest the deadline misses ends out of fuel instead).
fn host_call_loops(rt: &tokio::runtime::Runtime) {
    let cases: [(&str, &str); 4] = [
        ("spin (no host calls)", SPIN),
        (
            "fd_write, 1 M empty iovecs per call",
            r#"(module
              (import "wasi_snapshot_preview1" "fd_write" (func $f (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 200)
              (func (export "_start")
                (loop $l (drop (call $f (i32.const 1) (i32.const 0) (i32.const 1000000) (i32.const 12000000))) (br $l))))"#,
        ),
        (
            "poll_oneoff, 100 k zero-timeout realtime clock subscriptions per call",
            r#"(module
              (import "wasi_snapshot_preview1" "poll_oneoff" (func $f (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 300)
              (func (export "_start")
                (loop $l (drop (call $f (i32.const 0) (i32.const 8000000) (i32.const 100000) (i32.const 16000000))) (br $l))))"#,
        ),
        (
            "random_get, 1 MiB per call",
            r#"(module
              (import "wasi_snapshot_preview1" "random_get" (func $f (param i32 i32) (result i32)))
              (memory (export "memory") 17)
              (func (export "_start")
                (loop $l (drop (call $f (i32.const 0) (i32.const 1048576))) (br $l))))"#,
        ),
    ];
    let config = SandboxConfig::default();
    let slice = config.fuel_slice;
    let executor = Executor::new(config).expect("executor");
    println!("## Host-call loops\n");
    println!(
        "| guest | ns per fuel | one {slice}-fuel slice takes | 100 ms deadline: outcome | run time |"
    );
    println!("|---|---|---|---|---|");
    for (name, text) in cases {
        let module = WasmModule::new(wat::parse_str(text).expect("WAT"));
        // About a hundred calls, or 0.1 s of spinning.
        let probe_fuel = if text == SPIN { 300_000_000 } else { 400 };
        let probe = run_limited(rt, &executor, &module, probe_fuel, Duration::from_secs(600));
        assert_eq!(
            probe.outcome,
            provider_node::sandbox::Outcome::OutOfFuel,
            "{name}: {probe:?}"
        );
        let per_fuel = probe.run_time.as_secs_f64() / probe_fuel as f64;
        let fuel = ((3.0 / per_fuel) as u64).max(probe_fuel);
        let report = run_limited(rt, &executor, &module, fuel, Duration::from_millis(100));
        println!(
            "| {name} | {:.1} | {:.1} ms | {} | {} ms |",
            per_fuel * 1e9,
            per_fuel * slice as f64 * 1e3,
            report.outcome.kind(),
            ms(report.run_time),
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
    let only = |section: &str| {
        let named: Vec<_> = ["latency", "throughput", "ablation", "slices", "hostcalls"]
            .into_iter()
            .filter(|s| args.iter().any(|a| a == s))
            .collect();
        named.is_empty() || named.contains(&section)
    };
    if only("latency") {
        start_latency(&rt, quick);
    }
    if only("throughput") {
        throughput(&rt, quick);
    }
    if only("ablation") {
        ablation(quick);
    }
    if only("slices") {
        fuel_slices(&rt, quick);
    }
    if only("hostcalls") {
        host_call_loops(&rt);
    }
}
