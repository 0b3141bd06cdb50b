//! Provider node of the compute marketplace.
//!
//! - [`sandbox`] runs buyers' untrusted WebAssembly jobs.
//! - [`transport`] reaches the canisters (ic-agent or the in-process devnet);
//!   [`client`] makes typed calls on top of it.
//! - [`identity`] loads and creates PEM identities as dfx writes them.
//! - [`config`] merges the TOML file, environment and flags; [`session`]
//!   connects a command to the configured network.
//! - [`provider`] is the provider's money behind `provider-node stake` and
//!   `withdraw`; [`buyer`] is the buyer's side behind the `market` tool.
pub mod buyer;
pub mod client;
pub mod config;
pub mod daemon;
pub mod identity;
pub mod provider;
pub mod sandbox;
pub mod session;
pub mod transport;
