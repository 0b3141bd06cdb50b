//! Honest providers agree. Two marketplaces on the devnet, each with one
//! provider whose daemon runs a differently set-up sandbox (pooling
//! allocator and an on-disk module cache, or neither), run the same jobs
//! (the same modules, inputs, args and job ids, so the same seeds): every
//! job's commitment (outcome, sha256 of the output, fuel used, engine) is
//! the same on both. The jobs include the workloads that read clocks and
//! random bytes and the one that computes with NaNs. A re-run by another
//! provider compares exactly these, so it never finds an honest provider
//! out of step.
//!
//! Needs the canisters and workloads built: `scripts/build-canisters.sh`,
//! `scripts/build-workloads.sh`.

use std::path::Path;
use std::time::Duration;

use candid::Principal;
use market_api::matcher::{GFUEL, JobSpec, JobStatus, RunOutcome, Sha256};
use market_fixture::{Settings, node, provider};
use provider_node::sandbox::SandboxConfig;
use test_world::{DaemonSetup, World, one_slot_offer, spawn};

fn buyer() -> Principal {
    market_fixture::principal(0xB1)
}

/// What a re-run compares.
type Commitment = (RunOutcome, Sha256, u64, String);

/// The jobs both marketplaces run: a workload, its input and its args.
fn jobs() -> Vec<(&'static str, Vec<u8>, Vec<String>)> {
    let input: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        ("clock-random", vec![], vec![]),
        ("floats", vec![], vec![]),
        ("sha256sum", input.clone(), vec![]),
        ("echo", input, vec![]),
        ("cpu-kernel", vec![], vec!["float".into(), "40".into()]),
        ("cpu-kernel", vec![], vec!["mem".into(), "50000".into()]),
    ]
}

/// Runs [`jobs`] on a fresh marketplace whose only provider's daemon uses
/// `sandbox`; returns each job's commitment, in order.
async fn commitments(sandbox: SandboxConfig, state_dir: &Path) -> Vec<Commitment> {
    let w = World::funded(Settings::default(), buyer());
    w.onboard(
        provider(1),
        node(1),
        &one_slot_offer(64, 1_000, w.ids.ledger),
    );
    let (daemon, _) = test_world::daemon_with_sandbox(
        w.client(node(1)),
        DaemonSetup {
            provider: provider(1),
            state_dir,
            shutdown_grace: Duration::from_secs(5),
            max_job_time: Duration::from_secs(120),
        },
        sandbox,
    );
    let (stop, task) = spawn(daemon);
    w.start_clock();
    let mut out = Vec::new();
    for (name, input, args) in jobs() {
        let wasm = std::fs::read(market_artifacts::workload_dir().join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("{name}: {e}; run scripts/build-workloads.sh"));
        let sha = w.upload_wasm(wasm).await;
        let id = w
            .buyer
            .submit_job(JobSpec {
                input,
                args,
                ..w.stored_job(sha, 20, 10 * GFUEL, 2_000)
            })
            .await
            .unwrap();
        let job = w
            .until(id, "a result", |j| {
                matches!(j.status, JobStatus::Reported | JobStatus::Succeeded)
            })
            .await;
        let r = job.result.expect("a result");
        assert!(
            matches!(r.outcome, RunOutcome::Exited { code: 0 }),
            "{name}: {:?}",
            r.outcome
        );
        out.push((r.outcome, r.output_sha256, r.fuel_used, r.engine));
    }
    let _ = stop.send(());
    task.await.unwrap();
    w.stop_clock();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemons_with_different_sandboxes_report_the_same_commitments() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let cache = tempfile::tempdir().unwrap();
    let pooled_and_cached = SandboxConfig {
        pooling: true,
        cache_dir: Some(cache.path().to_path_buf()),
        ..test_world::test_sandbox()
    };
    let plain = SandboxConfig {
        pooling: false,
        cache_dir: None,
        ..test_world::test_sandbox()
    };
    let a = commitments(pooled_and_cached, dirs[0].path()).await;
    let b = commitments(plain, dirs[1].path()).await;
    assert_eq!(a.len(), jobs().len());
    for ((name, ..), (x, y)) in jobs().iter().zip(a.iter().zip(&b)) {
        assert_eq!(x, y, "{name}: the two providers' commitments differ");
    }
    assert!(a.iter().all(|c| c.2 > 0), "every job burnt fuel: {a:?}");
}
