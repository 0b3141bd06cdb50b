//! Determinism (same output and fuel every time, under any executor
//! settings) and the on-disk module cache.

mod common;

use std::path::PathBuf;

use common::*;
use provider_node::sandbox::{Executor, JobReport, ModuleSource, Outcome, SandboxConfig};

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("provider-node-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn run_clock_random(executor: &Executor, seed: [u8; 32]) -> JobReport {
    let mut j = job(workload("clock-random"), b"");
    j.seed = seed;
    let report = executor.run(j).await;
    assert!(report.outcome.is_success(), "{report:?}");
    report
}

#[tokio::test]
async fn clocks_and_random_are_deterministic() {
    let executor = executor();
    let first = run_clock_random(&executor, [1; 32]).await;
    let out = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(out.contains("wall 1735689600."), "{out}");
    assert!(out.contains("random_get errno 0"), "{out}");
    for _ in 0..3 {
        let again = run_clock_random(&executor, [1; 32]).await;
        assert_eq!(again.stdout, first.stdout);
        assert_eq!(again.fuel_used, first.fuel_used);
    }
    // Another seed gives other random bytes but the same clocks.
    let other = run_clock_random(&executor, [2; 32]).await;
    let other_out = String::from_utf8_lossy(&other.stdout);
    let line = |s: &str, key: &str| s.lines().find(|l| l.starts_with(key)).unwrap().to_string();
    assert_ne!(line(&out, "random_get"), line(&other_out, "random_get"));
    assert_eq!(line(&out, "wall"), line(&other_out, "wall"));
}

#[tokio::test]
async fn output_and_fuel_are_identical_across_executor_settings() {
    let dir = scratch_dir("determinism");
    let configs = [
        SandboxConfig {
            pooling: true,
            ..test_config()
        },
        SandboxConfig {
            pooling: false,
            ..test_config()
        },
        SandboxConfig {
            cache_dir: Some(dir.clone()),
            ..test_config()
        },
        // The same directory again: this time the module comes from disk.
        SandboxConfig {
            pooling: false,
            cache_dir: Some(dir.clone()),
            ..test_config()
        },
    ];
    let mut results = Vec::new();
    for config in configs {
        let executor = Executor::new(config).unwrap();
        let mut runs = Vec::new();
        for (name, args) in [
            ("clock-random", vec![]),
            ("floats", vec![]),
            ("cpu-kernel", vec!["float".to_string(), "30".to_string()]),
            ("cpu-kernel", vec!["mem".to_string(), "50000".to_string()]),
            ("sha256sum", vec![]),
        ] {
            let mut j = job(workload(name), &pseudo_random_bytes(10_000));
            j.args = args;
            j.seed = [9; 32];
            let report = executor.run(j).await;
            assert!(report.outcome.is_success(), "{name}: {report:?}");
            runs.push((report.stdout, report.fuel_used, report.peak_memory_bytes));
        }
        // Out of fuel is deterministic too: same fuel, same partial output.
        let mut j = job(workload("cpu-kernel"), b"");
        j.args = vec!["int".into(), "100000000".into()];
        j.limits.fuel = 3_000_000;
        let report = executor.run(j).await;
        assert_eq!(report.outcome, Outcome::OutOfFuel);
        runs.push((report.stdout, report.fuel_used, report.peak_memory_bytes));
        results.push(runs);
    }
    for other in &results[1..] {
        assert_eq!(other, &results[0]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn disk_cache_survives_restarts_and_rejects_tampering() {
    let dir = scratch_dir("disk-cache");
    let config = SandboxConfig {
        cache_dir: Some(dir.clone()),
        ..test_config()
    };
    // Each run in a fresh executor, as after a restart of the node.
    let run = |config: SandboxConfig| async move {
        let report = Executor::new(config)
            .unwrap()
            .run(job(workload("echo"), b"cached"))
            .await;
        assert!(report.outcome.is_success(), "{report:?}");
        assert_eq!(report.stdout, b"cached");
        report.module_source
    };
    let compiled_then_from_disk = [ModuleSource::Compiled, ModuleSource::DiskCache];
    for expected in compiled_then_from_disk {
        assert_eq!(run(config.clone()).await, expected);
    }

    // Flip one byte of the compiled artefact: the file must be refused.
    let artefact = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("a cached artefact");
    let mut bytes = std::fs::read(&artefact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&artefact, &bytes).unwrap();
    for expected in compiled_then_from_disk {
        assert_eq!(run(config.clone()).await, expected);
    }

    // A cache written under another node's key is refused as well.
    std::fs::write(dir.join("cache.key"), [0u8; 32]).unwrap();
    assert_eq!(run(config).await, ModuleSource::Compiled);
    let _ = std::fs::remove_dir_all(&dir);
}
