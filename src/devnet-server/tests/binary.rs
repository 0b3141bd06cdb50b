//! The `devnet` binary as a separate process, as scripts and the provider
//! node's end-to-end tests run it: `--port 0`, `--install` with a Candid
//! text argument, the URL parsed from stdout, then ic-agent against it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use candid::{Decode, Encode, Principal};
use common::probe_wasm;
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
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_devnet"))
            .args(["--port", "0", "--key-seed", &"ab".repeat(32), "--install"])
            .arg(format!(
                "probe={}:(opt record {{ label = \"from the command line\" }})",
                wasm_path.display()
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
    let mut canister = None;
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the binary prints its URL within 60 s");
        if let Some(id) = line.strip_prefix("installed probe = ") {
            canister = Some(Principal::from_text(id).unwrap());
        }
        if let Some(url) = line.strip_prefix("devnet listening on ") {
            break url.to_string();
        }
    };
    let canister = canister.expect("the install line comes first");

    let agent = Agent::builder().with_url(&url).build().unwrap();
    agent.fetch_root_key().await.unwrap();
    let label = agent
        .query(&canister, "label")
        .with_arg(Encode!().unwrap())
        .call()
        .await
        .unwrap();
    assert_eq!(Decode!(&label, String).unwrap(), "from the command line");
    let n = agent
        .update(&canister, "inc")
        .with_arg(Encode!().unwrap())
        .await
        .unwrap();
    assert_eq!(Decode!(&n, u64).unwrap(), 1);
    drop(child);
}
