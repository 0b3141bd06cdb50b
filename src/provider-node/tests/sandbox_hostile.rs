//! Hostile and well-behaved workloads: each ends with its own outcome, and a
//! well-behaved job running at the same time finishes correctly.

mod common;

use std::time::{Duration, Instant};

use common::*;
use provider_node::sandbox::{
    Executor, Job, JobPhase, JobReport, ModuleSource, Outcome, SandboxConfig, Stream, WasmModule,
};
use sha2::{Digest, Sha256};

#[path = "../../../workloads/kernels/src/lib.rs"]
mod kernels;

/// Runs `hostile` while a sha256 job runs beside it, checks the good job's
/// result and returns the hostile job's report.
async fn run_beside_good_job(executor: &Executor, hostile: Job) -> JobReport {
    let input = pseudo_random_bytes(300_000);
    let good = executor.spawn(job(workload("sha256sum"), &input));
    let bad = executor.spawn(hostile);
    let (good, bad) = (good.wait().await, bad.wait().await);
    assert_eq!(good.outcome, Outcome::Exited { code: 0 }, "{good:?}");
    let expected = format!("{}\n", hex::encode(Sha256::digest(&input)));
    assert_eq!(String::from_utf8_lossy(&good.stdout), expected);
    bad
}

/// Runs `module` on no input in a sandbox of its own, beside a good job
/// ([`run_beside_good_job`]); the module's report.
async fn run_hostile(module: WasmModule) -> JobReport {
    run_beside_good_job(&executor(), job(module, b"")).await
}

/// Checks that `report` ran out of memory.
fn assert_out_of_memory(report: &JobReport) {
    assert!(
        matches!(report.outcome, Outcome::OutOfMemory { .. }),
        "{report:?}"
    );
}

/// What an outcome says: a trap's or a link error's message, why a module
/// or a job was refused, what ran out of memory.
fn words(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Trap { message } | Outcome::LinkError { message } => message,
        Outcome::InvalidModule { reason } | Outcome::Rejected { reason } => reason,
        Outcome::OutOfMemory { detail } => detail,
        _ => "",
    }
}

/// Checks that `report` ended as `kind` (see [`Outcome::kind`]) and that
/// its outcome says `needle`.
fn assert_ended_saying(report: &JobReport, kind: &str, needle: &str) {
    assert_eq!(report.outcome.kind(), kind, "{report:?}");
    let words = words(&report.outcome);
    assert!(words.contains(needle), "{kind}: {words}");
}

#[tokio::test]
async fn echo_passes_input_args_env_and_exit_code() {
    let executor = executor();
    let mut j = job(workload("echo"), b"hello sandbox");
    j.args = vec!["first".into(), "second arg".into()];
    j.env = vec![("ECHO_EXIT".into(), "5".into())];
    let report = executor.run(j).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 5 });
    assert_eq!(report.stdout, b"hello sandbox");
    assert_eq!(report.stderr, b"first\nsecond arg\n");
    assert!(report.fuel_used > 0);
    assert!(report.peak_memory_bytes > 0);
}

#[tokio::test]
async fn cpu_kernel_matches_native_code() {
    let executor = executor();
    for (kind, size, native) in [
        ("int", 100_000u64, kernels::int_mix(100_000)),
        ("mem", 100_000, kernels::sieve(100_000)),
        ("float", 40, kernels::matmul(40)),
    ] {
        let mut j = job(workload("cpu-kernel"), b"");
        j.args = vec![kind.into(), size.to_string()];
        let report = executor.run(j).await;
        assert!(report.outcome.is_success(), "{kind}: {report:?}");
        assert_eq!(
            String::from_utf8_lossy(&report.stdout),
            format!("{kind} {size} {native}\n")
        );
    }
}

#[tokio::test]
async fn wat_exit_code_and_trap_message() {
    let executor = executor();
    let report = executor.run(job(wat("exit-code"), b"")).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 7 });
    assert_eq!(report.stdout, b"bye\n");
    let report = executor.run(job(wat("trap"), b"")).await;
    assert_ended_saying(&report, "trap", "divide by zero");
}

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel() {
    let report = run_hostile(wat("infinite-loop")).await;
    assert_eq!(report.outcome, Outcome::OutOfFuel);
    assert_eq!(report.fuel_used, test_limits().fuel);
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline_when_fuel_is_plenty() {
    let executor = executor();
    let mut j = job(wat("infinite-loop"), b"");
    j.limits.fuel = 1 << 50;
    j.limits.timeout = Duration::from_millis(300);
    let report = run_beside_good_job(&executor, j).await;
    assert_eq!(report.outcome, Outcome::Deadline);
    assert!(
        report.run_time < Duration::from_secs(5),
        "{:?}",
        report.run_time
    );
}

#[tokio::test]
async fn start_function_loop_is_metered() {
    let report = run_hostile(wat("start-loop")).await;
    assert_eq!(report.outcome, Outcome::OutOfFuel);
}

#[tokio::test]
async fn memory_bomb_runs_out_of_memory() {
    let report = run_hostile(workload("memory-bomb")).await;
    assert_out_of_memory(&report);
    assert!(report.peak_memory_bytes <= test_limits().memory_bytes);
    assert!(report.peak_memory_bytes > 16 << 20);
}

#[tokio::test]
async fn memory_grow_loop_and_huge_declared_memory_run_out_of_memory() {
    let report = run_hostile(wat("memory-grow-loop")).await;
    assert_out_of_memory(&report);
    // A declared minimum above the node's largest memory can never run here:
    // the pooling allocator refuses the module itself; without pooling the
    // job's limit refuses it before instantiation.
    let report = run_hostile(wat("huge-memory")).await;
    match &report.outcome {
        Outcome::OutOfMemory { .. } => {}
        Outcome::InvalidModule { reason } => assert!(reason.contains("minimum"), "{reason}"),
        other => panic!("expected the memory to be refused, got {other:?}"),
    }
    let no_pool = Executor::new(SandboxConfig {
        pooling: false,
        ..test_config()
    })
    .unwrap();
    let report = no_pool.run(job(wat("huge-memory"), b"")).await;
    assert_out_of_memory(&report);
}

/// A table bomb runs out of memory, unbounded recursion overflows the
/// stack, a missing host function is a link error.
#[tokio::test]
async fn table_bomb_recursion_and_missing_imports_end_as_they_should() {
    for (module, kind, says) in [
        (wat("table-bomb"), "out-of-memory", "table"),
        (workload("recursion"), "trap", "stack"),
        (wat("missing-import"), "link-error", "launch_missiles"),
    ] {
        let report = run_hostile(module).await;
        assert_ended_saying(&report, kind, says);
    }
}

#[tokio::test]
async fn output_flood_is_capped() {
    let report = run_hostile(workload("output-flood")).await;
    let limit = test_limits().max_stdout_bytes;
    assert_eq!(
        report.outcome,
        Outcome::OutputTooLarge {
            stream: Stream::Stdout,
            limit
        }
    );
    assert_eq!(report.stdout.len(), limit);
}

#[tokio::test]
async fn invalid_modules_are_refused() {
    let executor = executor();
    let garbage = WasmModule::new(b"\0asm\x01\0\0\0garbage that is not wasm".to_vec());
    let not_wasm = WasmModule::new(b"#!/bin/sh\nrm -rf /\n".to_vec());
    for (report, what) in [
        (run_hostile(wat("invalid")).await, "invalid"),
        (run_hostile(garbage).await, "garbage"),
        (executor.run(job(not_wasm, b"")).await, "not wasm"),
    ] {
        assert!(
            matches!(report.outcome, Outcome::InvalidModule { .. }),
            "{what}: {report:?}"
        );
    }
    let no_start = WasmModule::new(wat::parse_str("(module (func (export \"main\")))").unwrap());
    let report = executor.run(job(no_start, b"")).await;
    assert_ended_saying(&report, "invalid-module", "_start");
}

#[tokio::test]
async fn files_sockets_and_host_env_are_out_of_reach() {
    // SAFETY: tests in this binary don't read the environment concurrently
    // with this write; the variable proves the host env is not inherited.
    unsafe { std::env::set_var("PROVIDER_SECRET", "hunter2") };
    let report = run_hostile(workload("sandbox-escape")).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 0 }, "{report:?}");
    let out = String::from_utf8_lossy(&report.stdout);
    assert!(!out.contains("ALLOWED"), "{out}");
    assert!(out.contains("open /etc/passwd: denied"), "{out}");
    assert!(out.contains("tcp connect: denied"), "{out}");
    assert!(out.contains("environment: empty"), "{out}");
}

#[tokio::test]
async fn sleeping_in_a_host_call_is_stopped_at_the_deadline() {
    let executor = executor();
    let mut j = job(workload("sleeper"), b"");
    j.limits.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let report = run_beside_good_job(&executor, j).await;
    assert_eq!(report.outcome, Outcome::Deadline, "{report:?}");
    assert_eq!(report.stdout, b"sleeping 30 s\n");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn oversized_module_is_refused_before_parsing() {
    let executor = Executor::new(SandboxConfig {
        max_module_bytes: 128 * 1024,
        ..test_config()
    })
    .unwrap();
    let data = "A".repeat(200 * 1024);
    let text =
        format!("(module (memory 2) (data (i32.const 0) \"{data}\") (func (export \"_start\")))");
    let big = WasmModule::new(wat::parse_str(text).unwrap());
    let report = run_beside_good_job(&executor, job(big, b"")).await;
    assert!(
        matches!(
            report.outcome,
            Outcome::ModuleTooLarge { limit: 131072, .. }
        ),
        "{report:?}"
    );
}

/// A module of `functions` functions, each `ops` additions long, nested
/// `depth` blocks deep.
fn generated_module(functions: usize, ops: usize, depth: usize) -> WasmModule {
    let mut text = String::from("(module (memory 1) (func (export \"_start\"))\n");
    for f in 0..functions {
        text.push_str(&format!("(func $f{f} (param i32) (result i32)\n"));
        text.push_str(&"(block (result i32)\n".repeat(depth));
        text.push_str("(local.get 0)\n");
        for k in 0..ops {
            text.push_str(&format!(
                "(i32.add (i32.const {k})) (i32.mul (local.get 0))\n"
            ));
        }
        text.push_str(&")".repeat(depth));
        text.push_str(")\n");
    }
    text.push(')');
    WasmModule::new(wat::parse_str(text).expect("generated WAT"))
}

#[tokio::test]
async fn compile_time_bombs_are_refused() {
    // The well-behaved job's module comes compiled from a disk cache, so
    // that only the bombs meet the short compile limit.
    let cache = std::env::temp_dir().join(format!("provider-node-bombs-{}", std::process::id()));
    let warm = Executor::new(SandboxConfig {
        cache_dir: Some(cache.clone()),
        ..test_config()
    })
    .unwrap();
    assert!(warm.prepare(workload("sha256sum")).await.is_ok());
    drop(warm);
    let executor = Executor::new(SandboxConfig {
        max_compile_time: Duration::from_millis(50),
        cache_dir: Some(cache.clone()),
        ..test_config()
    })
    .unwrap();
    // Deeply nested blocks: refused by the shape check.
    let nested = generated_module(1, 1, 5_000);
    let report = run_beside_good_job(&executor, job(nested, b"")).await;
    assert_ended_saying(&report, "invalid-module", "nests");
    // One huge function: refused by the shape check.
    let huge = generated_module(1, 120_000, 1);
    let report = run_beside_good_job(&executor, job(huge, b"")).await;
    assert_ended_saying(&report, "invalid-module", "body");
    // Many functions within the shape limits that take long to compile.
    let slow = generated_module(3_000, 60, 1);
    let started = Instant::now();
    let report = run_beside_good_job(&executor, job(slow.clone(), b"")).await;
    assert!(
        matches!(report.outcome, Outcome::CompileTimeout { .. }),
        "{report:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Refused from now on without compiling again.
    let report = executor.run(job(slow, b"")).await;
    assert!(matches!(report.outcome, Outcome::CompileTimeout { .. }));
    assert!(
        report.prepare_time < Duration::from_millis(50),
        "{report:?}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test]
async fn jobs_asking_more_than_the_node_offers_are_rejected() {
    let executor = executor();
    let mut j = job(workload("echo"), b"");
    j.limits.memory_bytes = 1 << 40;
    let report = executor.run(j).await;
    assert!(
        matches!(report.outcome, Outcome::Rejected { .. }),
        "{report:?}"
    );
}

#[tokio::test]
async fn running_job_reports_progress_and_can_be_cancelled() {
    let executor = executor();
    let mut j = job(wat("infinite-loop"), b"");
    j.limits.fuel = 1 << 50;
    let running = executor.spawn(j);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.progress().fuel_used == 0 {
        assert!(
            Instant::now() < deadline,
            "no progress reported: {:?}",
            running.progress()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let progress = running.progress();
    assert_eq!(progress.phase, JobPhase::Running);
    assert!(progress.elapsed > Duration::ZERO);
    running.cancel();
    let report = running.wait().await;
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert!(report.fuel_used >= progress.fuel_used);
}

#[tokio::test]
async fn a_job_blocked_in_a_host_call_can_be_cancelled() {
    let executor = executor();
    let running = executor.spawn(job(workload("sleeper"), b""));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    running.cancel();
    let report = running.wait().await;
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn many_jobs_share_a_bounded_pool() {
    let executor = executor();
    let jobs: Vec<_> = (0..24)
        .map(|i| executor.spawn(job(workload("echo"), format!("job {i}").as_bytes())))
        .collect();
    for (i, running) in jobs.into_iter().enumerate() {
        let report = running.wait().await;
        assert!(report.outcome.is_success());
        assert_eq!(report.stdout, format!("job {i}").as_bytes());
    }
    // The second run of a module comes from the memory cache.
    let report = executor.run(job(workload("echo"), b"x")).await;
    assert_eq!(report.module_source, ModuleSource::MemoryCache);
}
