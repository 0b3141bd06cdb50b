//! Probe canister: a purpose-built canister whose methods exercise each part
//! of the devnet's emulation (rollback on trap, inter-canister calls and
//! their callbacks, cleanup, timers, upgrades, stable memory, inspect_message,
//! instruction counting and limits).
//!
//! State on the heap (`COUNTER`, `EVENTS`, `TIMER_FIRES`, `CLEANUPS`, `LABEL`)
//! is lost on upgrade on purpose; state in stable memory (`UPGRADES` and the
//! raw byte region) survives it.

//! The entry points are in the .wasm (and this crate's own test build, so
//! that lints see them); native crates (the devnet's tests) use only the
//! argument and outcome types below.

use candid::{CandidType, Deserialize};

#[cfg(any(target_family = "wasm", test))]
mod canister;

/// Argument of `init` and `post_upgrade`.
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct ProbeArg {
    /// Free text kept on the heap and returned by `label`.
    pub label: String,
}

/// Outcome of an inter-canister call as seen by the probe.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The callee replied with these bytes.
    Reply(Vec<u8>),
    /// The call was rejected with this code and message.
    Reject(u32, String),
    /// `call_perform` failed synchronously.
    NotSent,
}
