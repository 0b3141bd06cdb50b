//! The matcher canister: matches bids to offers and runs each job from
//! submission to settlement.
//!
//! [`canister`] holds the thin ic-cdk entry points; everything else is logic
//! that native tests drive without the IC system API.

pub mod book;
pub mod execute;
pub mod governance;
pub mod lifecycle;
pub mod market;
pub mod memory;
pub mod modules;
pub mod outbox;
pub mod state;

mod canister;

pub use canister::candid_interface;

#[cfg(test)]
mod market_tests;
