//! The matcher canister: matches bids to offers and runs each job from
//! submission to settlement.
//!
//! `canister` holds the thin ic-cdk entry points, which call
//! [`endpoints`]; every call to another canister is made by [`perform`]
//! through the [`runtime::Runtime`] trait, and every event is appended by
//! [`audit`]. Everything but the entry points and the timers is logic that
//! native tests drive without the IC system API.

pub mod audit;
pub mod book;
pub mod endpoints;
pub mod governance;
pub mod lifecycle;
pub mod market;
pub mod memory;
pub mod metrics;
pub mod modules;
pub mod outbox;
pub mod perform;
pub mod rates;
pub mod runtime;
pub mod state;
pub mod top_up;

mod canister;
pub mod ingress;
mod timers;

pub use canister::candid_interface;

#[cfg(test)]
mod tests;
