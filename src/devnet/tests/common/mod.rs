//! Shared helpers of the devnet tests: loading canister .wasm files and
//! setting up a devnet with probe canisters.

#![allow(dead_code)]

use std::path::PathBuf;

use candid::{CandidType, Deserialize, Principal};
use devnet::Devnet;

/// Directory holding built canisters: `$CANISTER_WASM_DIR`, or
/// `<repo>/target/canisters`.
pub fn canister_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CANISTER_WASM_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/canisters")
}

/// The bytes of a built canister, or a panic saying how to build it.
pub fn canister_wasm(name: &str) -> Vec<u8> {
    let path = canister_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); build the canisters first with scripts/build-canisters.sh",
            path.display()
        )
    })
}

/// The probe canister's .wasm.
pub fn probe_wasm() -> Vec<u8> {
    canister_wasm("probe-canister")
}

/// Init and upgrade argument of the probe canister.
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct ProbeArg {
    pub label: String,
}

/// Outcome of a call made by the probe canister.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Reply(Vec<u8>),
    Reject(u32, String),
    NotSent,
}

/// The controller used by the tests.
pub fn admin() -> Principal {
    Principal::from_slice(&[0xad; 29])
}

/// A user principal.
pub fn user() -> Principal {
    Principal::from_slice(&[0x05; 29])
}

/// Creates and installs a probe canister labelled `label`.
pub fn install_probe(dn: &mut Devnet, label: &str) -> Principal {
    let arg = Some(ProbeArg {
        label: label.to_string(),
    });
    dn.deploy(admin(), &probe_wasm(), &arg)
        .expect("install probe")
}

/// Candid encoding of no arguments.
pub fn no_args() -> Vec<u8> {
    candid::encode_args(()).unwrap()
}

pub fn get(dn: &mut Devnet, c: Principal) -> u64 {
    dn.query(c, user(), "get", &()).expect("get")
}

pub fn inc(dn: &mut Devnet, c: Principal) -> u64 {
    dn.update(c, user(), "inc", &()).expect("inc")
}

pub fn events(dn: &mut Devnet, c: Principal) -> Vec<String> {
    dn.query(c, user(), "events", &()).expect("events")
}
