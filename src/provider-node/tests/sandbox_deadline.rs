//! Wall-clock deadline, cancellation and progress, enforced where a running
//! job yields after each fuel slice (there is no epoch interruption).

mod common;

use std::time::{Duration, Instant};

use common::*;
use provider_node::sandbox::{Executor, JobPhase, Outcome, SandboxConfig, WasmModule};

/// How late a deadline or a cancel may be noticed in these tests. A slice of
/// the default size takes well under a millisecond of typical code and up to
/// ~30 ms of cache-missing loads; the margin is for a loaded machine.
const SLACK: Duration = Duration::from_millis(250);

fn from_wat(text: &str) -> WasmModule {
    WasmModule::new(wat::parse_str(text).expect("valid WAT"))
}

/// A job with fuel to burn for days, stopped only by its deadline.
fn endless(module: WasmModule, timeout: Duration) -> provider_node::sandbox::Job {
    let mut j = job(module, b"");
    j.limits.fuel = 1 << 50;
    j.limits.timeout = timeout;
    j
}

#[tokio::test]
async fn spinning_guest_with_huge_fuel_stops_promptly_at_the_deadline() {
    let executor = executor();
    for timeout in [Duration::from_millis(50), Duration::from_millis(200)] {
        let report = executor.run(endless(wat("infinite-loop"), timeout)).await;
        assert_eq!(report.outcome, Outcome::Deadline, "{report:?}");
        assert!(report.run_time >= timeout, "{:?}", report.run_time);
        assert!(
            report.run_time < timeout + SLACK,
            "deadline {timeout:?} noticed after {:?}",
            report.run_time
        );
        assert!(report.fuel_used > 0);
    }
}

#[tokio::test]
async fn memory_bound_guest_stops_promptly_at_the_deadline() {
    // Initialising the chain takes ~100 M fuel, so the deadline falls in the
    // middle of the chase.
    let executor = executor();
    let report = executor
        .run(endless(wat("pointer-chase"), Duration::from_millis(400)))
        .await;
    assert_eq!(report.outcome, Outcome::Deadline, "{report:?}");
    assert!(
        report.run_time < Duration::from_millis(400) + SLACK,
        "{:?}",
        report.run_time
    );
}

#[tokio::test]
async fn start_function_loop_stops_at_the_deadline() {
    // The loop runs inside instantiation, before `_start`.
    let executor = executor();
    let timeout = Duration::from_millis(100);
    let report = executor.run(endless(wat("start-loop"), timeout)).await;
    assert_eq!(report.outcome, Outcome::Deadline, "{report:?}");
    assert!(report.run_time < timeout + SLACK, "{:?}", report.run_time);
}

#[tokio::test]
async fn deadline_holds_with_every_job_slot_busy() {
    // Two slots, two spinning jobs: no worker thread is ever idle to run the
    // runtime's timers, so only the checks at the fuel slices stop them.
    let executor = Executor::new(SandboxConfig {
        concurrent_jobs: 2,
        ..test_config()
    })
    .unwrap();
    let timeout = Duration::from_millis(150);
    let jobs: Vec<_> = (0..2)
        .map(|_| executor.spawn(endless(wat("infinite-loop"), timeout)))
        .collect();
    for running in jobs {
        let report = running.wait().await;
        assert_eq!(report.outcome, Outcome::Deadline, "{report:?}");
        assert!(report.run_time < timeout + SLACK, "{:?}", report.run_time);
    }
}

#[tokio::test]
async fn cancel_stops_a_spinning_guest_promptly() {
    let executor = executor();
    let running = executor.spawn(endless(wat("infinite-loop"), Duration::from_secs(60)));
    while running.progress().phase != JobPhase::Running {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancelled_at = Instant::now();
    running.cancel();
    let report = running.wait().await;
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert!(
        cancelled_at.elapsed() < SLACK,
        "cancel noticed after {:?}",
        cancelled_at.elapsed()
    );
}

#[tokio::test]
async fn progress_counts_whole_slices_and_never_overstates() {
    let slice = 1_000_000;
    let executor = Executor::new(SandboxConfig {
        fuel_slice: slice,
        ..test_config()
    })
    .unwrap();
    let fuel = 300_000_000;
    let mut j = job(wat("infinite-loop"), b"");
    j.limits.fuel = fuel;
    let running = executor.spawn(j);
    let mut seen = Vec::new();
    while running.progress().phase != JobPhase::Finished {
        let progress = running.progress();
        if progress.phase == JobPhase::Running {
            seen.push(progress.fuel_used);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let report = running.wait().await;
    assert_eq!(report.outcome, Outcome::OutOfFuel);
    assert_eq!(report.fuel_used, fuel);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(
        seen.iter().all(|&f| f % slice == 0 && f <= fuel),
        "{seen:?}"
    );
    assert!(seen.iter().any(|&f| f > 0), "no progress seen: {seen:?}");
}

#[tokio::test]
async fn fuel_slice_does_not_change_fuel_counts() {
    let mut reports = Vec::new();
    for fuel_slice in [1_000, 1_000_000, u64::MAX] {
        let executor = Executor::new(SandboxConfig {
            fuel_slice,
            ..test_config()
        })
        .unwrap();
        let mut j = job(workload("cpu-kernel"), b"");
        j.args = vec!["mem".into(), "200000".into()];
        reports.push(executor.run(j).await);
    }
    for report in &reports {
        assert!(report.outcome.is_success(), "{report:?}");
        assert_eq!(report.stdout, reports[0].stdout);
        assert_eq!(report.fuel_used, reports[0].fuel_used);
    }
}

#[tokio::test]
async fn zero_fuel_slice_is_refused() {
    let result = Executor::new(SandboxConfig {
        fuel_slice: 0,
        ..test_config()
    });
    assert!(result.is_err());
}

/// A guest that spends its time in host calls, not in wasm: each call costs
/// a few units of fuel but makes the host scan 100 000 empty iovecs, so no
/// fuel slice ends for hours. The store's call hook checks the deadline on
/// every host call instead.
#[tokio::test]
async fn host_call_loop_stops_at_the_deadline() {
    let executor = executor();
    let module = from_wat(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 200)
          (func (export "_start")
            (loop $again
              (drop (call $fd_write (i32.const 1) (i32.const 0)
                                    (i32.const 100000) (i32.const 12000000)))
              (br $again))))"#,
    );
    let mut j = endless(module, Duration::from_millis(200));
    j.limits.memory_bytes = 16 << 20;
    let report = executor.run(j).await;
    assert_eq!(report.outcome, Outcome::Deadline, "{report:?}");
    assert!(
        report.run_time < Duration::from_millis(200) + SLACK,
        "{:?}",
        report.run_time
    );
}
