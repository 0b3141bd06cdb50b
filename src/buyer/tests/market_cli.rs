//! The `market` binary's behaviour before it reaches a network: argument
//! errors, unreadable files and missing settings, each with its exit status.

use std::process::{Command, Output};

fn market(args: &[&str], home: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_market"));
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"));
    for (name, _) in std::env::vars() {
        if name.starts_with("MARKET_") {
            cmd.env_remove(name);
        }
    }
    cmd.output().expect("run market")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_and_say_what_to_fix() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    for (args, says) in [
        (
            &["run", "job.wasm"][..],
            &["--max-price-per-gfuel <PRICE>"][..],
        ),
        (
            &["run", "job.wasm", "--max-price-per-gfuel", "0.123456789"],
            &["at most 8 decimals"],
        ),
        // A price in XDR counts cycles: at most 12 decimals.
        (
            &[
                "run",
                "job.wasm",
                "--max-price-per-gfuel",
                "0.0000000000001xdr",
            ],
            &["at most 12 decimals of XDR"],
        ),
        // Files are read before anything is asked of the network.
        (
            &[
                "run",
                "/nonexistent/job.wasm",
                "--max-price-per-gfuel",
                "0.01",
            ],
            &["error: cannot read module /nonexistent/job.wasm"],
        ),
        // An audit probability over one: refused with the range.
        (
            &[
                "submit",
                "job.wasm",
                "--max-price-per-gfuel",
                "0.01",
                "--audit-ppm",
                "2000000",
            ],
            &["--audit-ppm", "from 0 to 1000000"],
        ),
        // `dispute` needs the network: without canister ids it names the
        // first.
        (&["dispute", "4"], &["--ledger"]),
        // No canister ids anywhere: the message names the flag, variable
        // and file.
        (&["balance"], &["--ledger", "MARKET_LEDGER", "config.toml"]),
    ] {
        let o = market(args, h);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        for said in says {
            assert!(e.contains(said), "{args:?} should say {said}: {e}");
        }
        assert!(o.stdout.is_empty(), "{args:?}");
    }

    // An identity is created where the buyer's config says, and shown.
    let o = market(&["identity", "new"], h);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let principal = String::from_utf8(o.stdout).unwrap();
    assert!(h.join("config/market/identity.pem").exists());
    let o = market(&["identity", "show"], h);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), principal);
}

#[test]
fn sns_payload_prints_what_a_dao_proposes_without_a_network() {
    use market_api::Principal;
    use market_api::matcher::ReservationSpec;
    use market_api::sns::SnsAction;

    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let ledger = "ryjl3-tyaaa-aaaaa-aaaba-cai";

    // The matcher id is needed, and named, before anything is printed.
    let o = market(&["sns", "functions"], h);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--matcher"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());

    let o = market(
        &[
            "--ledger",
            ledger,
            "sns",
            "payload",
            "reserve",
            "--slots",
            "2",
            "--intervals",
            "24",
            "--interval-secs",
            "3600",
            "--max-price",
            "0.05",
        ],
        h,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let hex_line = out
        .lines()
        .skip_while(|l| !l.contains("bytes, hex:"))
        .nth(1)
        .expect("the hex line");
    let bytes = hex::decode(hex_line).unwrap();
    let expected = SnsAction::Reserve(ReservationSpec {
        currency: None,
        slots: 2,
        memory_mib: 64,
        fuel_per_interval: 1_000_000_000,
        interval_secs: 3600,
        intervals: 24,
        max_price_per_interval: 5_000_000,
        ledger: Principal::from_text(ledger).unwrap(),
        min_provider_stake: 0,
        max_rematches: 3,
        delegates: vec![],
        service: None,
    });
    assert_eq!(SnsAction::decode("reserve", &bytes), Ok(expected));
    assert!(out.contains("function_id = 1_000 : nat64;"), "{out}");
}

#[test]
fn a_bad_secret_env_is_refused_without_showing_its_value() {
    const SECRET: &str = "Top-S3cret-Value";
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let module = h.join("job.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let m = module.to_str().unwrap();
    for (flags, says) in [
        (
            vec!["--secret-env".to_string(), format!("={SECRET}")],
            "--secret-env: expected NAME=VALUE or NAME",
        ),
        (
            vec![
                "--secret-env".to_string(),
                format!("K={SECRET}"),
                "--secret-env".to_string(),
                format!("K={SECRET}"),
            ],
            "--secret-env: K given twice",
        ),
        (
            vec![
                "--secret-env".to_string(),
                format!("K={SECRET}{}", "x".repeat(1100)),
            ],
            "--secret-env: each name (non-empty) and value at most",
        ),
    ] {
        let mut args = vec!["run", m, "--max-price-per-gfuel", "0.01", "--private"];
        args.extend(flags.iter().map(String::as_str));
        let o = market(&args, h);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!err.contains(SECRET), "{err}");
        assert!(o.stdout.is_empty());
    }
    // A name alone reads the caller's variable; a missing one is named.
    let o = market(
        &[
            "submit",
            m,
            "--max-price-per-gfuel",
            "0.01",
            "--secret-env",
            "NO_SUCH_VAR_HERE",
        ],
        h,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("your environment has no variable NO_SUCH_VAR_HERE"),
        "{}",
        stderr(&o)
    );
}
