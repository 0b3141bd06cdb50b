//! The explorer and the TypeScript bindings against the devnet's HTTP
//! server, as separate processes: the `local-replica` binary serves the
//! ledger, registry, escrow, matcher and explorer `.wasm` files; the page is
//! uploaded by the Node tool `web/dist/tools/upload-explorer.mjs`; two
//! providers register, stake and offer, and one runs its daemon.
//!
//! Checked, in headless Chromium (`web/test/browser.mjs`, driven over its
//! stdin and stdout): the page, loaded from the gateway at
//! `http://<explorer>.localhost:PORT/`, lists the providers and draws the
//! order book's free slots; a job run with `market run` then appears on
//! it, its buyer among the accounts, the cheaper provider without a daemon
//! among the slashes for missing the job's deadline, and the job's page
//! and the matcher's event log open; each canister keeps only its newest
//! events, and the page reads the older ones of each log from its archive. Screenshots are kept under
//! `target/tmp/explorer/`. Then the TypeScript example
//! (`web/dist/examples/submit-and-watch.mjs`) submits a job with the
//! generated bindings and watches it to `Succeeded` with the sha256 of its
//! input as output.
//!
//! Needs what `scripts/test.sh` prepares: the canisters and workloads, the
//! binaries (`cargo test --workspace` builds them), `npm ci` and
//! `npm run build` in `web/`, and Debian's `chromium`.

mod processes;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use candid::Principal;
use market_api::blocks::{LogArchiving, LogArchivingError, LogArchivingStatus};
use market_client::identity::load_pem_file;
use processes::{ICP, Install, Proc, Scene, canister_id, workload};

/// Devnet seconds per real second.
const SPEED: u32 = 10;
/// How long a result stays open to challenge, in devnet seconds.
const CHALLENGE_WINDOW_SECS: u64 = 30;
/// The Chromium the browser test drives.
const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A file the web build makes, or a panic saying how to make it.
fn web_file(rel: &str) -> PathBuf {
    let path = repo().join("web").join(rel);
    assert!(
        path.is_file(),
        "{} is missing: run `npm ci && npm run build` in web/ (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The devnet with the market and the explorer, whose controller is
/// `operator`; identities funded.
fn start() -> Scene {
    let mut s = Scene::new(&[
        "minter",
        "operator",
        "alice",
        "bob",
        "provider-1",
        "provider-2",
    ]);
    let balances = ["alice", "bob", "provider-1", "provider-2"].map(|who| (who, 20 * ICP));
    let mut installs = s.market_installs(&balances, CHALLENGE_WINDOW_SECS);
    let [registry, escrow, matcher] = [1, 2, 3].map(canister_id);
    installs.push(Install::of(
        "explorer",
        format!(
            "(record {{ registry = principal \"{registry}\"; escrow = principal \"{escrow}\"; \
             matcher = principal \"{matcher}\"; fetch_root_key = true }})"
        ),
    ));
    for (name, owner) in [
        ("registry-archive", registry),
        ("escrow-archive", escrow),
        ("matcher-archive", matcher),
    ] {
        installs.push(Install {
            name,
            module: "archive",
            arg: format!("(record {{ owner = principal \"{owner}\"; capacity_blocks = null }})"),
        });
    }
    let operator = s.principal("operator").to_text();
    s.start_devnet(SPEED, &installs, &["--controller", &operator]);
    s
}

/// Each event log and its archive: the registry, escrow and matcher (the
/// devnet's canisters 1 to 3) and the archives installed after the
/// explorer (5 to 7).
fn logs_and_archives() -> [(&'static str, Principal, Principal); 3] {
    [
        ("registry", canister_id(1), canister_id(5)),
        ("escrow", canister_id(2), canister_id(6)),
        ("matcher", canister_id(3), canister_id(7)),
    ]
}

/// Runs `f` with an agent of the operator, a controller, on the devnet.
fn as_operator<T, F: std::future::Future<Output = T>>(
    s: &Scene,
    f: impl FnOnce(ic_agent::Agent) -> F,
) -> T {
    let operator = load_pem_file(&s.path("operator.pem")).expect("the operator's identity");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let agent = ic_agent::Agent::builder()
            .with_url(s.url.as_str())
            .with_arc_identity(operator.identity)
            .build()
            .unwrap();
        agent.fetch_root_key().await.unwrap();
        f(agent).await
    })
}

/// The operator names each log its archive and has each canister keep
/// only `keep` events itself: older ones move there at a run of its timer
/// (see [`wait_for_archived_logs`]).
fn archive_the_logs(s: &Scene, keep: u64) {
    as_operator(s, |agent| async move {
        for (log, owner, archive) in logs_and_archives() {
            let arg = LogArchiving {
                archive: Some(archive),
                max_local_blocks: Some(keep),
            };
            let answer = agent
                .update(&owner, "set_log_archiving")
                .with_arg(candid::encode_one(arg).unwrap())
                .call_and_wait()
                .await
                .expect("set_log_archiving");
            let set: Result<(), LogArchivingError> = candid::decode_one(&answer).unwrap();
            set.unwrap_or_else(|e| panic!("the {log}'s archive: {e:?}"));
        }
    })
}

/// Waits until each log has moved its oldest events to its archive: the
/// escrow's and the registry's upkeep finds them due within its idle period
/// (five minutes of devnet time), the matcher's audit timer within 30 s.
fn wait_for_archived_logs(s: &Scene, timeout: Duration) {
    let started = Instant::now();
    as_operator(s, |agent| async move {
        for (log, owner, _) in logs_and_archives() {
            loop {
                let answer = agent
                    .query(&owner, "get_log_archiving")
                    .with_arg(candid::encode_args(()).unwrap())
                    .call()
                    .await
                    .expect("get_log_archiving");
                let status: LogArchivingStatus = candid::decode_one(&answer).unwrap();
                if status.first_local_index > 0 {
                    break;
                }
                assert!(
                    started.elapsed() < timeout,
                    "the {log} archived nothing in {timeout:?}: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    })
}

/// The browser test's process: lines it prints arrive on a channel.
struct Browser {
    _proc: Proc,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Browser {
    fn expect(&self, prefix: &str, timeout: Duration, log: &Path) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) if line.starts_with(prefix) => line,
            other => panic!(
                "the browser test said {other:?}, expected {prefix:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

#[test]
fn explorer_in_a_browser_and_the_typescript_example() {
    let upload = web_file("dist/tools/upload-explorer.mjs");
    let example = web_file("dist/examples/submit-and-watch.mjs");
    let browser_test = web_file("test/browser.mjs");
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)"
    );
    let sha256sum = workload("sha256sum.wasm");
    let started = Instant::now();
    let mut s = start();
    let explorer = canister_id(4);
    let url = s.url.clone();
    let port = url.rsplit(':').next().unwrap().to_string();
    eprintln!("devnet up at {} after {:.1?}", s.url, started.elapsed());
    // Each canister keeps its 3 newest events; the page reads the rest
    // from their archives.
    archive_the_logs(&s, 3);

    // The page, uploaded by a controller of the explorer.
    let node = PathBuf::from("node");
    let operator = s.path("operator.pem");
    let out = s.ok(
        &node,
        &[
            upload.to_str().unwrap(),
            "--network",
            &url,
            "--canister",
            &explorer.to_text(),
            "--identity",
            operator.to_str().unwrap(),
        ],
    );
    assert!(
        out.stdout.contains("uploaded /explorer.js"),
        "{}",
        out.stdout
    );

    // Two providers register and stake.
    for n in [1u8, 2] {
        s.provider_config(n);
        let name = format!("provider-{n}");
        s.provider(
            n,
            &[
                "register",
                "--name",
                &name,
                "--region",
                "local",
                "--slots",
                "2",
                "--memory-per-slot-mib",
                "256",
            ],
        );
        s.provider(n, &["stake", "10"]);
    }
    // Both offer two slots; provider-2 asks less but runs no daemon, so
    // the job goes to it first, misses its deadline, is slashed and moves
    // to provider-1.
    for (n, price) in [(1u8, "0.001"), (2, "0.0005")] {
        s.provider(
            n,
            &[
                "offer",
                "post",
                "--price-per-gfuel",
                price,
                "--fuel-per-sec",
                "10000000",
                "--price-per-interval",
                price,
                "--slots",
                "2",
                "--memory-mib",
                "256",
                "--min-interval-secs",
                "10",
            ],
        );
    }
    s.start_daemon(1);
    eprintln!("provider up after {:.1?}", started.elapsed());

    // The browser: providers and the chart first.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer");
    let page = format!("http://{explorer}.localhost:{port}/");
    let browser_log = s.path("browser.log");
    let archives = logs_and_archives()
        .map(|(log, _, archive)| format!("{log}={archive}"))
        .join(",");
    let mut child = s
        .command(&node)
        .arg(&browser_test)
        .args([
            "--url",
            &page,
            "--providers",
            "provider-1,provider-2",
            "--chromium",
            CHROMIUM,
            "--account",
            &s.principal("alice").to_text(),
            "--slashed",
            "provider-2",
            "--archives",
            &archives,
        ])
        .arg("--screenshots")
        .arg(&shots)
        .current_dir(repo().join("web"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&browser_log).unwrap())
        .spawn()
        .expect("node test/browser.mjs");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("browser: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut browser = Browser {
        _proc: Proc {
            name: "browser".into(),
            child,
        },
        stdin,
        lines,
    };
    browser.expect("ready", Duration::from_secs(120), &browser_log);
    eprintln!("page checked after {:.1?}", started.elapsed());

    // A job run now appears on the page.
    let (out, expected) = s.deposit_and_run_sha256();
    let id = out
        .stderr
        .split("submitted job ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no job id in what market run said:\n{}", out.stderr));
    // Within a minute of real time: the devnet runs ten times faster.
    wait_for_archived_logs(&s, Duration::from_secs(60));
    writeln!(browser.stdin, "{id}").unwrap();
    browser.expect("ok", Duration::from_secs(150), &browser_log);
    eprintln!(
        "job {id} seen in the browser after {:.1?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );

    // The TypeScript example, as bob: submits a job and watches it.
    let [ledger, escrow, matcher] = [0, 2, 3].map(|i| canister_id(i).to_text());
    let bob = s.path("bob.pem");
    let out = s.ok(
        &node,
        &[
            example.to_str().unwrap(),
            "--network",
            &url,
            "--ledger",
            &ledger,
            "--escrow",
            &escrow,
            "--matcher",
            &matcher,
            "--identity",
            bob.to_str().unwrap(),
            "--module",
            sha256sum.to_str().unwrap(),
            "--input",
            s.path("input.txt").to_str().unwrap(),
        ],
    );
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("buyer {}", s.principal("bob"))),
        "{said}"
    );
    assert!(out.stdout.contains(": Succeeded on "), "{said}");
    assert!(
        out.stdout.contains(&format!("output: {expected}")),
        "{said}"
    );
    eprintln!("TypeScript example done after {:.1?}", started.elapsed());
}
