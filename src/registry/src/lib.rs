//! The registry canister: who the providers are and how much each has at stake.
//!
//! `canister` holds the thin ic-cdk entry points. The rules live in
//! [`providers`] (registration, unstaking, bonding, jailing, queries),
//! [`records`] (providers' track records) and
//! [`staking`] (stake, withdraw and slash, which call the ledger through
//! [`runtime::Runtime`]); [`state`] keeps everything in stable structures,
//! and [`timers`] runs the background audit of its records.
//! Native tests drive all of it with a fake ledger.

pub mod memory;
pub mod metrics;
pub mod providers;
pub mod records;
pub mod runtime;
pub mod staking;
pub mod state;
pub mod subaccount;
pub mod timers;

mod canister;
pub mod ingress;

#[cfg(test)]
mod tests;

pub use canister::candid_interface;
