//! The `local-replica` binary as a separate process, as scripts and the provider
//! node's end-to-end tests run it: `--port 0`, `--install` with a Candid
//! text argument, the URL parsed from stdout, then ic-agent against it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use candid::Principal;
use common::{probe_wasm, query_as, update_as};
use ic_agent::Agent;

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_installs_prints_its_url_and_serves() {
    let wasm_path = common::temp_path("binary-probe.wasm");
    std::fs::write(&wasm_path, probe_wasm()).unwrap();
    let started = start(&[
        "--port".into(),
        "0".into(),
        "--key-seed".into(),
        "ab".repeat(32),
        "--install".into(),
        format!(
            "probe={}:(opt record {{ label = \"from the command line\" }})",
            wasm_path.display()
        ),
        "--cycles".into(),
        format!("{}=5_000_000", funded()),
    ])
    .expect("the binary starts");
    let canister = started.installed("installed");
    assert_eq!(canister, devnet::FIRST_CANISTER_ID);
    let agent = started.agent().await;
    let label: String = query_as(&agent, canister, "label").await;
    assert_eq!(label, "from the command line");
    assert_eq!(update_as::<u64>(&agent, canister, "inc").await, 1);
    // --cycles funds an account; the anonymous one is funded as PocketIC does.
    assert_eq!(ledger_balance(&agent, funded()).await, 5_000_000);
    assert_eq!(
        ledger_balance(&agent, Principal::anonymous()).await,
        i128::MAX as u128
    );
    drop(started);
}

/// The principal `--cycles` funds.
fn funded() -> Principal {
    Principal::from_slice(&[0xf0; 29])
}

/// The cycles ledger balance of `owner`'s default account.
async fn ledger_balance(agent: &Agent, owner: Principal) -> u128 {
    let arg = candid::encode_one(devnet::cycles_account(owner)).unwrap();
    let reply = common::query(agent, devnet::CYCLES_LEDGER_ID, "icrc1_balance_of", arg)
        .await
        .unwrap();
    u128::try_from(candid::decode_one::<candid::Nat>(&reply).unwrap().0).unwrap()
}

/// A `devnet` process and what it printed on stdout before serving.
struct Started {
    child: KillOnDrop,
    url: String,
    root_key: String,
    lines: Vec<String>,
}

/// Starts the binary with `args` and reads stdout up to the root key line;
/// `Err` holds stderr if the process exits first.
fn start(args: &[String]) -> Result<Started, String> {
    let stderr = common::temp_path(&format!("stderr-{}", args.len()));
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_local-replica"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("starting the devnet binary"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut url = None;
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(u) = line.strip_prefix("devnet listening on ") {
                    url = Some(u.to_string());
                }
                if let Some(key) = line.strip_prefix("root key ") {
                    return Ok(Started {
                        child,
                        url: url.expect("the URL comes before the root key"),
                        root_key: key.to_string(),
                        lines,
                    });
                }
                lines.push(line);
            }
            Err(_) => {
                let status = child.0.wait().unwrap();
                assert!(!status.success(), "the devnet exited 0 before serving");
                return Err(std::fs::read_to_string(&stderr).unwrap());
            }
        }
    }
}

impl Started {
    fn installed(&self, verb: &str) -> Principal {
        let prefix = format!("{verb} probe = ");
        let line = self
            .lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' line in {:?}", self.lines));
        Principal::from_text(line.split_whitespace().next().unwrap()).unwrap()
    }

    async fn agent(&self) -> Agent {
        let agent = Agent::builder().with_url(&self.url).build().unwrap();
        agent.fetch_root_key().await.unwrap();
        agent
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) {
        let pid = self.child.0.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = self.child.0.wait().unwrap();
        assert!(
            status.success(),
            "the devnet exited with {status} on SIGTERM"
        );
    }
}

async fn counter(agent: &Agent, canister: Principal, method: &str) -> u64 {
    if method == "get" {
        query_as(agent, canister, method).await
    } else {
        update_as(agent, canister, method).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_keeps_canisters_and_the_root_key_across_restarts() {
    let wasm_path = common::temp_path("state-probe.wasm");
    std::fs::write(&wasm_path, probe_wasm()).unwrap();
    let dir = common::temp_path("state-dir");
    let _ = std::fs::remove_dir_all(&dir);
    let args: Vec<String> = vec![
        "--port".into(),
        "0".into(),
        "--state-dir".into(),
        dir.display().to_string(),
        "--checkpoint-secs".into(),
        "1".into(),
        "--install".into(),
        format!("probe={}", wasm_path.display()),
    ];

    // First start: the canister is installed and counts to 2.
    let first = start(&args).unwrap();
    let canister = first.installed("installed");
    let agent = first.agent().await;
    counter(&agent, canister, "inc").await;
    assert_eq!(counter(&agent, canister, "inc").await, 2);

    // A second devnet may not share the directory while the first runs.
    let refused = start(&args)
        .err()
        .expect("a second devnet on the same directory");
    assert!(refused.contains("in use by another devnet"), "{refused}");

    // Stopped with SIGTERM and started again: same canister, same count,
    // same root key, so clients that fetched it keep verifying.
    let root_key = first.root_key.clone();
    first.terminate();
    let second = start(&args).unwrap();
    assert_eq!(second.installed("kept"), canister);
    assert_eq!(second.root_key, root_key);
    let agent = second.agent().await;
    assert_eq!(counter(&agent, canister, "get").await, 2);
    assert_eq!(counter(&agent, canister, "inc").await, 3);

    // Killed without warning: what the last checkpoint (every second) saved survives.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    drop(second);
    let third = start(&args).unwrap();
    let agent = third.agent().await;
    assert_eq!(counter(&agent, canister, "get").await, 3);
    third.terminate();

    // A damaged state is refused with the file named, and nothing is overwritten.
    let file = dir.join(local_replica::persist::STATE_FILE);
    std::fs::write(&file, b"not a state").unwrap();
    let refused = start(&args).err().expect("a damaged state");
    assert!(refused.contains("cannot be loaded"), "{refused}");
    assert!(refused.contains("devnet-state.cbor"), "{refused}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a state");
}
