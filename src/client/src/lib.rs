//! Client library of the compute marketplace: what the provider's
//! `provider-node`, the buyer's `market` and any Rust program use to talk to
//! the marketplace's canisters.
//!
//! - [`transport`] reaches the canisters through ic-agent; its public
//!   [`Transport`](transport::Transport) trait lets the test kit plug in
//!   its in-process devnet.
//! - [`client`] makes typed calls on top of it ([`MarketClient`]) and
//!   formats token amounts ([`client::tokens`]) and prices in a token or
//!   in XDR ([`client::prices`]).
//! - [`certified`] reads a canister's event log and verifies it against the
//!   IC's root key (certified ICRC-3 tip, hash chain, events).
//! - [`identity`] loads and creates PEM identities as dfx writes them.
//! - [`config`] merges a program's TOML file, environment and flags;
//!   [`session`] connects a command to the configured network.
//! - [`sealing`] seals a private job's contents to its key and opens them
//!   (vetKeys, see [`market_api::privacy`]).
//! - [`retry`] repeats calls that failed for a passing reason.
//! - [`IdentityCommand`] is `identity new|show` of both command-line tools.
pub mod certified;
pub mod client;
pub mod config;
pub mod identity;
mod identity_command;
pub mod retry;
pub mod sealing;
pub mod session;
pub mod transport;

pub use client::{CanisterIds, ClientError, MarketClient};
pub use identity_command::IdentityCommand;
