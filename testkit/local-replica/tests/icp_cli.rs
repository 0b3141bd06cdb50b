//! The real icp-cli 1.5 against the devnet's HTTP server: `canister
//! create`, `top-up`, `install`, `stop`, `start`, `settings update`, `logs`,
//! `snapshot create / restore / delete` and `delete`, each checked by what
//! it did to the devnet, not only by the exit status.
//!
//! The binary is found through `ICP_CLI`; `scripts/test.sh` installs it
//! (npm `@icp-sdk/icp-cli-linux-x64@1.5.0` under `.tools`) and sets it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use candid::{Nat, Principal};
use common::*;
use devnet::{CANISTER_CREATION_FEE, CYCLES_LEDGER_FEE, RunStatus, cycles_account};
use ic_agent::AgentError;
use ic_agent::identity::AnonymousIdentity;
use local_replica::Server;

/// The icp binary named by `ICP_CLI`; a missing one fails the test.
fn icp_binary() -> PathBuf {
    let path = std::env::var_os("ICP_CLI")
        .map(PathBuf::from)
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "ICP_CLI must name the icp 1.5.0 binary (got {path:?}). scripts/test.sh installs it: \
         npm install --prefix .tools @icp-sdk/icp-cli-linux-x64@1.5.0, then \
         ICP_CLI=.tools/node_modules/@icp-sdk/icp-cli-linux-x64/bin/icp"
    );
    path
}

/// Runs `icp <args> -n <url> -k fetch` in an empty directory with its own
/// home (the anonymous identity, no project), and returns its stdout; a
/// failure fails the test with its output.
async fn icp(server: &Server, home: &Path, args: &[&str]) -> String {
    let mut command = Command::new(icp_binary());
    command
        .args(args)
        .args(["-n", &server.url(), "-k", "fetch"])
        .current_dir(home)
        .env("HOME", home)
        .env_remove("ICP_PROJECT_ROOT");
    let line = args.join(" ");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("running icp");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "icp {line} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn ledger_balance(server: &Server, owner: Principal) -> u128 {
    server
        .node()
        .with_devnet(|dn| dn.cycles_ledger_balance(&cycles_account(owner)))
}

fn canister_cycles(server: &Server, id: Principal) -> u128 {
    server
        .node()
        .with_devnet(|dn| dn.cycle_balance(id))
        .expect("the canister exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icp_cli_manages_a_canister_from_creation_to_deletion() {
    icp_binary();
    let server = start_server(1.0, Duration::from_secs(5)).await;
    let anonymous = Principal::anonymous();
    let t = 1_000_000_000_000u128;
    server
        .node()
        .with_devnet(|dn| dn.mint_cycles(cycles_account(anonymous), 100 * t));
    let home = temp_path("icp-home");
    std::fs::create_dir_all(&home).unwrap();
    let agent = agent(&server, AnonymousIdentity).await;

    // create: the CMC's subnet, the ledger's create_canister with 2 T.
    let out = icp(&server, &home, &["canister", "create", "--detached", "-q"]).await;
    let id = Principal::from_text(out.trim()).expect("icp prints the new id");
    assert_eq!(id.to_text(), "bkyz2-fmaaa-aaaaa-qaaaq-cai");
    assert_eq!(canister_cycles(&server, id), 2 * t - CANISTER_CREATION_FEE);
    assert_eq!(
        ledger_balance(&server, anonymous),
        98 * t - CYCLES_LEDGER_FEE
    );
    assert_eq!(
        server.node().with_devnet(|dn| dn.controllers(id)),
        Some(vec![anonymous])
    );

    // top-up: the ledger's withdraw.
    icp(
        &server,
        &home,
        &["canister", "top-up", "--amount", "1t", &id.to_text()],
    )
    .await;
    assert_eq!(canister_cycles(&server, id), 3 * t - CANISTER_CREATION_FEE);

    // install, then a trap for the logs.
    let wasm = home.join("probe.wasm");
    std::fs::write(&wasm, probe_wasm()).unwrap();
    icp(
        &server,
        &home,
        &[
            "canister",
            "install",
            &id.to_text(),
            "--wasm",
            wasm.to_str().unwrap(),
            "--args",
            "(null)",
        ],
    )
    .await;
    assert_eq!(update_as::<u64>(&agent, id, "inc").await, 1);
    update(&agent, id, "trap_now", no_args()).await.unwrap_err();

    // stop: the canister refuses calls; start: it answers again.
    icp(&server, &home, &["canister", "stop", &id.to_text()]).await;
    assert_eq!(
        server.node().with_devnet(|dn| dn.run_status(id)),
        Some(RunStatus::Stopped)
    );
    match update(&agent, id, "inc", no_args()).await.unwrap_err() {
        AgentError::UncertifiedReject { reject, .. }
        | AgentError::CertifiedReject { reject, .. } => {
            assert_eq!(reject.error_code.as_deref(), Some("IC0508"))
        }
        other => panic!("{other:?}"),
    }
    icp(&server, &home, &["canister", "start", &id.to_text()]).await;
    assert_eq!(
        server.node().with_devnet(|dn| dn.run_status(id)),
        Some(RunStatus::Running)
    );
    assert_eq!(update_as::<u64>(&agent, id, "inc").await, 2);

    // settings update: every setting given is kept.
    icp(
        &server,
        &home,
        &[
            "canister",
            "settings",
            "update",
            &id.to_text(),
            "--compute-allocation",
            "5",
            "--freezing-threshold",
            "3600",
        ],
    )
    .await;
    let status = server
        .node()
        .with_devnet(|dn| dn.canister_status(id))
        .unwrap();
    assert_eq!(status.settings.compute_allocation, Nat::from(5u8));
    assert_eq!(status.settings.freezing_threshold, Nat::from(3600u32));

    // logs: the trap's record.
    let out = icp(&server, &home, &["canister", "logs", &id.to_text()]).await;
    assert!(out.contains("trap_now"), "{out}");

    // snapshots: taken while stopped, restored over a later change.
    let cid = id.to_text();
    icp(&server, &home, &["canister", "stop", &cid]).await;
    let out = icp(&server, &home, &["canister", "snapshot", "create", &cid]).await;
    let snapshot = out
        .split_whitespace()
        .skip_while(|w| *w != "snapshot")
        .nth(1)
        .unwrap_or_else(|| panic!("no snapshot id in {out}"))
        .to_string();
    let listed = server
        .node()
        .with_devnet(|dn| dn.list_canister_snapshots(anonymous, id))
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(hex::encode(&listed[0].id), snapshot);
    icp(&server, &home, &["canister", "start", &cid]).await;
    assert_eq!(update_as::<u64>(&agent, id, "inc").await, 3);
    icp(&server, &home, &["canister", "stop", &cid]).await;
    icp(
        &server,
        &home,
        &["canister", "snapshot", "restore", &cid, &snapshot],
    )
    .await;
    icp(&server, &home, &["canister", "start", &cid]).await;
    assert_eq!(
        query_as::<u64>(&agent, id, "get").await,
        2,
        "the snapshot's heap"
    );
    icp(
        &server,
        &home,
        &["canister", "snapshot", "delete", &cid, &snapshot],
    )
    .await;
    let listed = server
        .node()
        .with_devnet(|dn| dn.list_canister_snapshots(anonymous, id))
        .unwrap();
    assert!(listed.is_empty());

    // delete: icp-cli recovers the cycles to the caller's account, then
    // deletes; the canister is gone.
    let before = ledger_balance(&server, anonymous);
    icp(&server, &home, &["canister", "delete", &id.to_text()]).await;
    assert!(!server.node().with_devnet(|dn| dn.canister_exists(id)));
    assert!(
        ledger_balance(&server, anonymous) > before + 2 * t,
        "the cycles were recovered"
    );
    match update(&agent, id, "inc", no_args()).await.unwrap_err() {
        AgentError::UncertifiedReject { reject, .. }
        | AgentError::CertifiedReject { reject, .. } => {
            assert_eq!(reject.error_code.as_deref(), Some("IC0301"))
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await.unwrap();
}
