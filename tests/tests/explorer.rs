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
//! and the matcher's event log open. Screenshots are kept under
//! `target/tmp/explorer/`. Then the TypeScript example
//! (`web/dist/examples/submit-and-watch.mjs`) submits a job with the
//! generated bindings and watches it to `Succeeded` with the sha256 of its
//! input as output.
//!
//! Needs what `scripts/test.sh` prepares: the canisters and workloads, the
//! binaries (`cargo test --workspace` builds them), `npm ci` and
//! `npm run build` in `web/`, and Debian's `chromium`.

mod processes;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use candid::Principal;
use processes::{bin, canister_id, wait_for_line};
use sha2::Digest;

/// Devnet seconds per real second.
const SPEED: &str = "10";
/// One ICP in e8s.
const ICP: u128 = 100_000_000;
/// The Chromium the browser test drives.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A child process that is killed when dropped, however the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

struct Scene {
    dir: tempfile::TempDir,
    env: HashMap<&'static str, String>,
    principals: HashMap<&'static str, Principal>,
    url: String,
    procs: Vec<Proc>,
}

impl Scene {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars() {
            if key.starts_with("PROVIDER_NODE_") || key.starts_with("MARKET_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env("NO_COLOR", "1")
            .envs(&self.env)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command that must succeed within `timeout`; its stdout and
    /// stderr.
    fn ok(&self, program: &Path, args: &[&str], timeout: Duration) -> (String, String) {
        let mut child = self
            .command(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let readers = std::thread::spawn(move || {
            let mut o = String::new();
            std::io::Read::read_to_string(&mut out, &mut o).ok();
            o
        });
        let err_reader = std::thread::spawn(move || {
            let mut e = String::new();
            std::io::Read::read_to_string(&mut err, &mut e).ok();
            e
        });
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {} ran past {timeout:?}",
                    program.display(),
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = (readers.join().unwrap(), err_reader.join().unwrap());
        assert!(
            status.success(),
            "{} {} failed ({status}):\n{stdout}{stderr}",
            program.display(),
            args.join(" ")
        );
        (stdout, stderr)
    }

    fn provider(&self, n: u8, args: &[&str]) -> (String, String) {
        let config = self.path(&format!("provider-{n}/config.toml"));
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ok(&bin("provider-node"), &all, Duration::from_secs(60))
    }

    fn market(&self, args: &[&str]) -> (String, String) {
        let identity = self.path("alice.pem");
        let mut all = vec!["--identity", identity.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ok(&bin("market"), &all, Duration::from_secs(120))
    }
}

/// The devnet with the market and the explorer; identities funded.
fn start() -> Scene {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut scene = Scene {
        dir,
        env: HashMap::new(),
        principals: HashMap::new(),
        url: String::new(),
        procs: vec![],
    };
    for who in [
        "minter",
        "operator",
        "alice",
        "bob",
        "provider-1",
        "provider-2",
    ] {
        let pem = scene.path(&format!("{who}.pem"));
        let (out, _) = scene.ok(
            &bin("provider-node"),
            &["--identity", pem.to_str().unwrap(), "identity", "new"],
            Duration::from_secs(30),
        );
        scene
            .principals
            .insert(who, Principal::from_text(out.trim()).unwrap());
    }
    let p = |who: &str| scene.principals[who];
    let [ledger, registry, escrow, matcher, explorer] = [0, 1, 2, 3, 4].map(canister_id);
    let account = |who: &str| {
        format!(
            "record {{ owner = principal \"{}\"; subaccount = null }}",
            p(who)
        )
    };
    let balances = ["alice", "bob", "provider-1", "provider-2"]
        .map(|who| format!("record {{ {}; {} }}", account(who), 20 * ICP))
        .join("; ");
    let args = [
        format!(
            "ledger=target/canisters/ledger.wasm:(variant {{ Init = record {{ token_name = \"Local ICP\"; \
             token_symbol = \"ICP\"; decimals = opt 8; transfer_fee = opt 10_000; minting_account = {}; \
             initial_balances = vec {{ {balances} }} }} }})",
            account("minter")
        ),
        format!(
            "registry=target/canisters/registry.wasm:(record {{ ledger = principal \"{ledger}\"; \
             matcher = opt principal \"{matcher}\"; min_stake = {}; unbonding_period_secs = opt 604_800 }})",
            5 * ICP
        ),
        format!(
            "escrow=target/canisters/escrow.wasm:(record {{ matcher = opt principal \"{matcher}\"; \
             ledgers = vec {{ principal \"{ledger}\" }} }})"
        ),
        format!(
            "matcher=target/canisters/matcher.wasm:(record {{ registry = principal \"{registry}\"; \
             escrow = principal \"{escrow}\"; stake_ledger = principal \"{ledger}\"; grace_secs = 10; \
             bond_multiple = 10; slash_multiple = 5; challenge_window_secs = opt 30 }})"
        ),
        format!(
            "explorer=target/canisters/explorer.wasm:(record {{ registry = principal \"{registry}\"; \
             escrow = principal \"{escrow}\"; matcher = principal \"{matcher}\"; fetch_root_key = true }})"
        ),
    ];
    let operator = p("operator").to_text();
    let mut argv = vec![
        "--port",
        "0",
        "--time-speed",
        SPEED,
        "--controller",
        &operator,
    ];
    for a in &args {
        argv.extend(["--install", a]);
    }
    let out = std::fs::File::create(scene.path("devnet.out")).unwrap();
    let log = std::fs::File::create(scene.path("devnet.log")).unwrap();
    let devnet = scene
        .command(&bin("local-replica"))
        .current_dir(repo())
        .args(&argv)
        .stdout(out)
        .stderr(log)
        .spawn()
        .expect("starting the devnet");
    scene.procs.push(Proc(devnet));
    scene.url = wait_for_line(
        &scene.path("devnet.out"),
        "devnet listening on ",
        Duration::from_secs(90),
    )
    .trim_start_matches("devnet listening on ")
    .to_string();
    let printed = std::fs::read_to_string(scene.path("devnet.out")).unwrap();
    assert!(
        printed.contains(&format!("installed explorer = {explorer}")),
        "{printed}"
    );
    let url = scene.url.clone();
    scene.env = HashMap::from([
        ("PROVIDER_NODE_NETWORK", url.clone()),
        ("PROVIDER_NODE_LEDGER", ledger.to_text()),
        ("PROVIDER_NODE_REGISTRY", registry.to_text()),
        ("PROVIDER_NODE_ESCROW", escrow.to_text()),
        ("PROVIDER_NODE_MATCHER", matcher.to_text()),
        ("MARKET_NETWORK", url),
        ("MARKET_LEDGER", ledger.to_text()),
        ("MARKET_REGISTRY", registry.to_text()),
        ("MARKET_ESCROW", escrow.to_text()),
        ("MARKET_MATCHER", matcher.to_text()),
    ]);
    scene
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
    let sha256sum = market_artifacts::workload_path("sha256sum");
    assert!(
        sha256sum.is_file(),
        "build the workloads: scripts/build-workloads.sh"
    );
    let started = Instant::now();
    let mut s = start();
    let explorer = canister_id(4);
    let port = s.url.rsplit(':').next().unwrap().to_string();
    eprintln!("devnet up at {} after {:.1?}", s.url, started.elapsed());

    // The page, uploaded by a controller of the explorer.
    let node = PathBuf::from("node");
    let (out, _) = s.ok(
        &node,
        &[
            upload.to_str().unwrap(),
            "--network",
            &s.url,
            "--canister",
            &explorer.to_text(),
            "--identity",
            s.path("operator.pem").to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(out.contains("uploaded /explorer.js"), "{out}");

    // Two providers register and stake.
    for n in [1u8, 2] {
        let dir = s.path(&format!("provider-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "identity = \"{}\"\nstate_dir = \"{}\"\ncache_dir = \"{}\"\nmetrics_addr = \"127.0.0.1:0\"\n\n\
                 [sandbox]\nconcurrent_jobs = 2\nmax_job_memory_mib = 256\n\n[daemon]\npoll_interval_ms = 100\n",
                s.path(&format!("provider-{n}.pem")).display(),
                dir.join("state").display(),
                dir.join("cache").display(),
            ),
        )
        .unwrap();
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
    let config = s.path("provider-1/config.toml");
    let daemon_log = std::fs::File::create(s.path("provider-1.log")).unwrap();
    let daemon = s
        .command(&bin("provider-node"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("RUST_LOG", "info")
        .stdout(daemon_log.try_clone().unwrap())
        .stderr(daemon_log)
        .spawn()
        .expect("provider daemon");
    s.procs.push(Proc(daemon));
    wait_for_line(
        &s.path("provider-1.log"),
        "metrics at",
        Duration::from_secs(30),
    );
    eprintln!("provider up after {:.1?}", started.elapsed());

    // The browser: providers and the chart first.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer");
    let page = format!("http://{explorer}.localhost:{port}/");
    let browser_log = s.path("browser.log");
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
            &s.principals["alice"].to_text(),
            "--slashed",
            "provider-2",
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
        _proc: Proc(child),
        stdin,
        lines,
    };
    browser.expect("ready", Duration::from_secs(120), &browser_log);
    eprintln!("page checked after {:.1?}", started.elapsed());

    // A job run now appears on the page.
    s.market(&["deposit", "1"]);
    let input = s.path("input.txt");
    std::fs::write(&input, b"pay for compute in ICP\n").unwrap();
    let (stdout, stderr) = s.market(&[
        "run",
        sha256sum.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--max-price-per-gfuel",
        "0.002",
        "--fuel",
        "1000000000",
        "--interval-secs",
        "20",
    ]);
    let expected = hex::encode(sha2::Sha256::digest(b"pay for compute in ICP\n"));
    assert!(stdout.contains(&expected), "{stdout}{stderr}");
    let id = stderr
        .split("submitted job ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no job id in what market run said:\n{stderr}"));
    writeln!(browser.stdin, "{id}").unwrap();
    browser.expect("ok", Duration::from_secs(150), &browser_log);
    eprintln!(
        "job {id} seen in the browser after {:.1?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );

    // The TypeScript example, as bob: submits a job and watches it.
    let (out, err) = s.ok(
        &node,
        &[
            example.to_str().unwrap(),
            "--network",
            &s.url,
            "--ledger",
            &s.env["MARKET_LEDGER"],
            "--escrow",
            &s.env["MARKET_ESCROW"],
            "--matcher",
            &s.env["MARKET_MATCHER"],
            "--identity",
            s.path("bob.pem").to_str().unwrap(),
            "--module",
            sha256sum.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.contains(&format!("buyer {}", s.principals["bob"])),
        "{out}{err}"
    );
    assert!(out.contains(": Succeeded on "), "{out}{err}");
    assert!(out.contains(&format!("output: {expected}")), "{out}{err}");
    eprintln!("TypeScript example done after {:.1?}", started.elapsed());
}
