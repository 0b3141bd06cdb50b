//! The escrow canister: holds buyers' money until work is done.
//!
//! [`canister`] holds the thin ic-cdk entry points; everything else is logic
//! that native tests drive without the IC system API.

pub mod memory;
pub mod state;

mod canister;

pub use canister::candid_interface;
