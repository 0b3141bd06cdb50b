//! The `market` binary's behaviour before it reaches a network: argument
//! errors, unreadable files and missing settings, each with its exit status.

use std::process::{Command, Output};

fn market(args: &[&str], home: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_market"));
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PROVIDER_NODE_") {
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

    let o = market(&["run", "job.wasm"], h);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--max-price <ICP>"), "{}", stderr(&o));

    let o = market(&["run", "job.wasm", "--max-price", "0.123456789"], h);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at most 8 decimals"), "{}", stderr(&o));

    // Files are read before anything is asked of the network.
    let o = market(&["run", "/nonexistent/job.wasm", "--max-price", "0.01"], h);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("error: cannot read module /nonexistent/job.wasm"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());

    // No canister ids anywhere: the message names the flag, variable and file.
    let o = market(&["balance"], h);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("--ledger") && e.contains("PROVIDER_NODE_LEDGER") && e.contains("config.toml"),
        "{e}"
    );

    // An identity is created where the shared config says, and shown.
    let o = market(&["identity", "new"], h);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let principal = String::from_utf8(o.stdout).unwrap();
    assert!(h.join("config/provider-node/identity.pem").exists());
    let o = market(&["identity", "show"], h);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), principal);
}
