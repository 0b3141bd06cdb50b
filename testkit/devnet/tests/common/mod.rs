//! Shared helpers of the devnet tests: loading canister .wasm files and
//! setting up a devnet with probe canisters.

#![allow(dead_code, unused_imports)]

use candid::Principal;
use devnet::Devnet;

pub use market_artifacts::canister_wasm;

/// The probe canister's .wasm.
pub fn probe_wasm() -> Vec<u8> {
    canister_wasm("probe-canister")
}

pub use probe_canister::{CallOutcome, ProbeArg};

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

/// A fresh devnet with a probe canister installed for each label, in order.
pub fn with_probes<const N: usize>(labels: [&str; N]) -> (Devnet, [Principal; N]) {
    let mut dn = Devnet::new();
    let ids = labels.map(|label| install_probe(&mut dn, label));
    (dn, ids)
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

/// Writes `bytes` into the probe's stable memory at `offset`.
pub fn stable_write(dn: &mut Devnet, c: Principal, offset: u64, bytes: Vec<u8>) {
    let () = dn
        .update_args(c, user(), "stable_write", (offset, bytes))
        .expect("stable_write");
}

/// Reads `len` bytes of the probe's stable memory at `offset`, by query.
pub fn stable_read(dn: &mut Devnet, c: Principal, offset: u64, len: u64) -> Vec<u8> {
    let (bytes,): (Vec<u8>,) = dn
        .query_args(c, user(), "stable_read", (offset, len))
        .expect("stable_read");
    bytes
}

/// Cycles `c` paid for running (execution, messages, storage) since the
/// last `reset_cycles_burned`, apart from fees it attached to calls.
pub fn running_costs(dn: &Devnet, c: Principal) -> u128 {
    let b = dn.cycles_burned(c).expect("the canister exists");
    b.execution + b.messages + b.storage
}
