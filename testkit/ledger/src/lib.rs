//! An ICRC-1 + ICRC-2 ledger canister for the marketplace's tests and local
//! demo. It follows the ICP ledger's rules: a fixed fee that is burnt, a
//! minting account (transfers from it mint, transfers to it burn, with a
//! minimum burn of one fee), 32-byte memos, dedup of transactions that set
//! `created_at_time` (24 h window, 60 s drift), and approvals with
//! `expected_allowance` and expiry. Every transaction is appended to a block
//! log that `list_blocks` pages through, and that `icrc3_get_blocks` serves
//! in the standard ICRC-3 form ([`icrc3`]).
//!
//! All state is in stable structures ([`state`]); the rules ([`operations`])
//! take the caller and the time as arguments and run natively in tests.
//! The anonymous principal is an ordinary account holder here, as on the
//! ICRC ledgers: it can receive tokens and, as a caller, spend them.

#![deny(missing_docs)]

pub mod amount;
pub mod block;
// The entry points: in the .wasm and in this crate's own tests, never in a
// native crate that uses the ledger's types (their `canister_init` and
// methods would clash at link time with that crate's own).
#[cfg(any(target_family = "wasm", test))]
mod canister;
pub mod config;
pub mod icrc3;
pub mod keys;
pub mod memory;
pub mod operations;
pub mod state;

#[cfg(test)]
mod tests;

pub use block::{Block, ListBlocksArgs, ListBlocksResult, Operation};
pub use config::{InitArgs, LedgerArg, UpgradeArgs};
pub use state::State;
