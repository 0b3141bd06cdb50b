//! The marketplace end to end as separate processes over the IC's HTTP
//! interface, as `scripts/demo-http.sh` runs it: the `local-replica` binary serves
//! the real ledger, registry, escrow and matcher `.wasm` files on an
//! ephemeral loopback port; `provider-node` registers, stakes and offers
//! two providers and runs their daemons; `market` runs a person's jobs.
//! Every client goes through ic-agent, as against a local replica.
//!
//! Checked: the canister ids are assigned in install order (the init
//! arguments name them ahead); a job's stdout is the sha256 of its input;
//! a provider daemon killed (SIGKILL) mid-job is slashed at its missed
//! deadline and the other provider finishes the job, whose stdout equals a
//! local `provider-node exec` of the same module; a daemon killed and
//! restarted mid-job resumes the job without being slashed; and the accounts the
//! tools show add up to the cent: stakes, slash, earnings, the buyer's
//! escrow balance and wallets.
//!
//! The binaries are found next to this test's executable (`target/debug/`);
//! `cargo test --workspace` builds them, otherwise run
//! `cargo build -p local-replica -p provider-node -p market` first.

mod processes;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use processes::{FEE, ICP, Proc, Scene, bin, wait_for_line, workload};

/// Devnet seconds per real second: fast enough for the story to take
/// seconds, slow enough that a heartbeat sent under load is still on time.
const SPEED: u32 = 10;
/// Iterations of the long job (`cpu-kernel int N`): a few seconds of work.
const LONG_JOB_ITERATIONS: &str = "2000000000";
/// Fuel budget of the long job (`cpu-kernel int N`): more than it needs.
const LONG_JOB_FUEL: &str = "200000000000";
/// The speed the providers declare, in fuel per devnet second: a tenth of
/// what a debug-built node runs per real second, at [`SPEED`].
const FUEL_PER_SEC: &str = "10000000";
/// How long a result stays open to challenge, in devnet seconds.
const CHALLENGE_WINDOW_SECS: u64 = 30;
/// Waits up to a minute for `market watch` of job `id` to exit, checks
/// that it succeeded and returns what it logged to `log`.
fn watched_to_the_end(watch: &mut Proc, log: &Path, id: &str) -> String {
    let status = watch.wait(Duration::from_secs(60));
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        status.success(),
        "market watch {id} exited {status}:\n{log}"
    );
    log
}

/// `1.5 ICP` (the tools' format) in e8s.
fn e8s(text: &str) -> u128 {
    let number = text.trim().trim_end_matches("ICP").trim();
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    assert!(frac.len() <= 8, "more than 8 decimals in {text:?}");
    let whole: u128 = whole.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let frac: u128 = format!("{frac:0<8}")
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    whole * ICP + frac
}

/// The amount after `label` in a line such as `earnings     0.003 ICP claimable`.
fn amount_after(text: &str, label: &str) -> u128 {
    let rest = text
        .split_once(label)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
        .1;
    let amount = rest
        .trim_start()
        .split_once(" ICP")
        .unwrap_or_else(|| panic!("no amount after {label:?} in:\n{text}"))
        .0;
    e8s(amount)
}

/// The storage fee `market` said it paid: the amount in `…, 0.0001 ICP
/// storage fee paid`.
fn storage_fee_paid(text: &str) -> u128 {
    let end = text
        .find(" ICP storage fee paid")
        .unwrap_or_else(|| panic!("no storage fee in:\n{text}"));
    let start = text[..end].rfind(' ').map_or(0, |i| i + 1);
    e8s(&text[start..end])
}

/// The body of `GET http://{addr}{path}` (HTTP/1.0, so the server closes).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(addr).expect("connecting to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("reading the response");
    assert!(response.starts_with("HTTP/1."), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

#[test]
fn providers_and_a_buyer_as_processes_over_http() {
    // Everything the scene needs is looked for first, so that a missing
    // build fails at once with its command.
    workload("sha256sum.wasm");
    let kernel = workload("cpu-kernel.wasm");
    bin("market");
    let started = Instant::now();
    let mut s = Scene::new(&["minter", "alice", "provider-1", "provider-2"]);
    let installs = s.market_installs(
        &[
            ("alice", 10 * ICP),
            ("provider-1", 20 * ICP),
            ("provider-2", 20 * ICP),
        ],
        CHALLENGE_WINDOW_SECS,
    );
    s.start_devnet(SPEED, &installs, &[]);
    eprintln!("devnet up after {:.1?}", started.elapsed());

    // Two providers, each with its own config file, register, stake 10 ICP
    // and offer two slots; provider-1 is the cheaper.
    for n in [1u8, 2] {
        s.provider_config(n);
        let out = s.provider(
            n,
            &[
                "register",
                "--name",
                &format!("provider-{n}"),
                "--region",
                "local",
            ],
        );
        assert!(out.stdout.contains("registered"), "{}", out.stdout);
        let out = s.provider(n, &["stake", "10"]);
        assert!(out.stdout.contains("staked 10 ICP"), "{}", out.stdout);
        let price = format!("0.00{n}");
        let out = s.provider(
            n,
            &[
                "offer",
                "post",
                "--price-per-gfuel",
                &price,
                "--fuel-per-sec",
                FUEL_PER_SEC,
                "--price-per-interval",
                &price,
                "--slots",
                "2",
            ],
        );
        assert!(out.stdout.contains("posted"), "{}", out.stdout);
    }
    for n in [1u8, 2] {
        s.start_daemon(n);
    }
    eprintln!("providers up after {:.1?}", started.elapsed());

    // A person runs a job in one line and gets its stdout.
    let (out, _) = s.deposit_and_run_sha256();
    let p1 = s.principal("provider-1");
    let p2 = s.principal("provider-2");
    assert!(
        out.stderr
            .contains(&format!("{p1} at 0.001 ICP per billion fuel")),
        "the cheaper provider takes the job:\n{}",
        out.stderr
    );
    eprintln!("sha256 job done after {:.1?}", started.elapsed());

    // A long job starts on provider-1, whose daemon is killed after its
    // first heartbeat reporting fuel: it is slashed, its pending pay is
    // forfeited, and provider-2 finishes the job.
    let kernel = kernel.to_str().unwrap();
    let long = s.market(&[
        "submit",
        kernel,
        "--max-price-per-gfuel",
        "0.002",
        "--interval-secs",
        "20",
        "--fuel",
        LONG_JOB_FUEL,
        "--",
        "int",
        LONG_JOB_ITERATIONS,
    ]);
    let id = long.stdout.trim().to_string();
    let alice_pem = s.path("alice.pem");
    let mut watch = s.spawn(
        "watch",
        &bin("market"),
        &["--identity", alice_pem.to_str().unwrap(), "watch", &id],
    );
    let watch_log = s.path("watch.log");
    wait_for_line(&watch_log, "fuel reported", Duration::from_secs(30));
    let log = std::fs::read_to_string(&watch_log).unwrap();
    assert!(
        log.contains(&format!("{p1} at 0.001 ICP per billion fuel")),
        "the long job runs on provider-1 first:\n{log}"
    );
    s.daemons[0].kill();
    eprintln!("provider-1 killed after {:.1?}", started.elapsed());
    let log = watched_to_the_end(&mut watch, &watch_log, &id);
    assert!(
        log.contains("re-queued (retry 1 of 2), the provider is slashed"),
        "{log}"
    );
    assert!(
        log.contains(&format!("{p2} at 0.002 ICP per billion fuel")),
        "the long job moves to provider-2:\n{log}"
    );
    assert!(log.contains(&format!("job {id}: result in")), "{log}");
    let result = s.market(&["result", &id]);
    let local = s.ok(
        &bin("provider-node"),
        &[
            "exec",
            kernel,
            "--fuel",
            LONG_JOB_FUEL,
            "--timeout",
            "60",
            "--",
            "int",
            LONG_JOB_ITERATIONS,
        ],
    );
    assert_eq!(
        result.stdout, local.stdout,
        "the job's stdout equals a local run in the same sandbox"
    );
    eprintln!("long job done after {:.1?}", started.elapsed());

    // provider-2's Prometheus endpoint counts the job it finished.
    let line = wait_for_line(
        &s.path("provider-2.log"),
        "metrics at http://",
        Duration::from_secs(1),
    );
    let addr = line
        .split("metrics at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the metrics address");
    let metrics = http_get(addr, "/metrics");
    assert!(
        metrics.contains("provider_node_jobs_completed_total 1"),
        "{metrics}"
    );

    // provider-1's operator withdraws its offer. A third job runs on
    // provider-2, whose daemon is killed and restarted mid-job: the new
    // process resumes it from the state directory and the matcher's
    // assignments, heartbeats on time (no slash, no retry) and reports it once.
    let offers = s.provider(1, &["offer", "list"]).stdout;
    let offer = offers
        .split('\t')
        .next()
        .expect("provider-1's offer")
        .to_string();
    s.provider(1, &["offer", "withdraw", &offer]);
    let third = s.market(&[
        "submit",
        kernel,
        "--max-price-per-gfuel",
        "0.002",
        "--interval-secs",
        "40",
        "--fuel",
        LONG_JOB_FUEL,
        "--",
        "int",
        LONG_JOB_ITERATIONS,
    ]);
    let id3 = third.stdout.trim().to_string();
    let mut watch = s.spawn(
        "watch-3",
        &bin("market"),
        &["--identity", alice_pem.to_str().unwrap(), "watch", &id3],
    );
    let watch_log = s.path("watch-3.log");
    // Killed as soon as it runs: long before its first heartbeat is due
    // (4 s at this speed) and before the job's few seconds of work end.
    wait_for_line(
        &watch_log,
        &format!("running on {p2} at 0.002 ICP per billion fuel"),
        Duration::from_secs(30),
    );
    s.daemons[1].kill();
    let config = s.path("provider-2/config.toml");
    let restarted = s.spawn(
        "provider-2-restarted",
        &bin("provider-node"),
        &["--config", config.to_str().unwrap(), "run"],
    );
    s.daemons.push(restarted);
    eprintln!("provider-2 restarted after {:.1?}", started.elapsed());
    let log = watched_to_the_end(&mut watch, &watch_log, &id3);
    assert!(!log.contains("re-queued"), "{log}");
    assert!(log.contains(&format!("job {id3}: result in")), "{log}");
    wait_for_line(
        &s.path("provider-2-restarted.log"),
        &format!("job_id={id3} attempt=1 resumed=true"),
        Duration::from_secs(1),
    );
    let result = s.market(&["result", &id3]);
    assert_eq!(result.stdout, local.stdout, "job {id3} ran to its end");
    eprintln!("job {id3} done after {:.1?}", started.elapsed());

    // Each job becomes final when its challenge window closes: then the
    // providers' pending pay is claimable and nothing stays locked.
    let end = Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let jobs = s.market(&["jobs"]).stdout;
        if jobs.matches("Succeeded").count() == 3 || Instant::now() > end {
            break jobs;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(jobs.matches("Succeeded").count(), 3, "{jobs}");

    // The accounts as the tools show them.
    let status1 = s.provider(1, &["status"]).stdout;
    let status2 = s.provider(2, &["status"]).stdout;
    let balance = s.market(&["balance"]).stdout;
    // slash_multiple x the long job's value: its budget at provider-1's price.
    let slash = 5 * (LONG_JOB_FUEL.parse::<u128>().unwrap() / 1_000_000_000) * 100_000;
    assert_eq!(amount_after(&status1, "slashed so far"), slash, "{status1}");
    assert_eq!(
        amount_after(&status1, "stake        free"),
        10 * ICP - slash
    );
    assert_eq!(amount_after(&status2, "slashed so far"), 0, "{status2}");
    assert_eq!(amount_after(&status2, "stake        free"), 10 * ICP);
    for status in [&status1, &status2] {
        // 20 ICP less the 10 staked, the approval's fee and the transfer's.
        assert_eq!(
            amount_after(status, "wallet"),
            10 * ICP - 2 * FEE,
            "{status}"
        );
        assert!(status.contains("jobs         0 assigned"), "{status}");
    }
    let earned1 = amount_after(&status1, "earnings");
    let earned2 = amount_after(&status2, "earnings");
    // Provider-1 is paid the fuel of job 1 only: the fuel it reported of
    // the long job was forfeited with its slash. Provider-2 is paid the
    // fuel of the long job and the third.
    assert!(earned1 > 0, "provider-1 was paid for job 1: {status1}");
    assert!(
        earned2 > earned1,
        "provider-2 was paid for the long jobs: {status2}"
    );
    assert_eq!(
        amount_after(&balance, "wallet"),
        9 * ICP - 2 * FEE,
        "{balance}"
    );
    assert_eq!(
        amount_after(&balance, "free,"),
        0,
        "nothing stays locked: {balance}"
    );
    // Each small job paid one ledger fee for its storage, as `market` said.
    let storage_fees: u128 = [&out, &long, &third]
        .iter()
        .map(|o| storage_fee_paid(&o.stderr))
        .sum();
    assert_eq!(storage_fees, 3 * FEE);
    // The buyer paid exactly what the providers earned and received the
    // slash, less the two ledger fees of its way into the escrow (registry
    // to the buyer's deposit subaccount, then into the escrow's pool) and
    // the storage fees.
    assert_eq!(
        amount_after(&balance, "escrow"),
        ICP - earned1 - earned2 + slash - 2 * FEE - storage_fees,
        "{balance}"
    );

    // provider-2 stops cleanly on SIGTERM.
    let pid = s.daemons[2].child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = s.daemons[2].wait(Duration::from_secs(30));
    assert!(status.success(), "provider-2 exited {status}");
    wait_for_line(
        &s.path("provider-2-restarted.log"),
        "stopped: 1 results submitted",
        Duration::from_secs(1),
    );
    assert!(
        s.devnet
            .as_mut()
            .unwrap()
            .child
            .try_wait()
            .unwrap()
            .is_none(),
        "the devnet ran to the end"
    );
    eprintln!("done after {:.1?}", started.elapsed());
}
