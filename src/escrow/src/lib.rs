//! The escrow canister: holds buyers' money until work is done.
//!
//! - [`payments`]: value that crosses a ledger (deposits, withdrawals) and
//!   the reconciliation of ledger calls with unknown outcomes;
//! - [`jobs`]: locks, their extensions, releases (claimable at once or
//!   held as pending pay), forfeits and settlement, all internal;
//! - [`state`]: durable state in stable structures, and its invariants
//!   with their background audit;
//! - [`timers`]: the audit's timer;
//! - [`runtime`]: the side effects, behind a trait so the logic runs natively
//!   against a fake ledger;
//! - `canister`: the thin ic-cdk entry points.

pub mod jobs;
pub mod memory;
pub mod metrics;
pub mod payments;
pub mod runtime;
pub mod state;
pub mod timers;

mod canister;
pub mod ingress;

#[cfg(test)]
mod tests;

pub use canister::candid_interface;
