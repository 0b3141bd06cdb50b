//! Provider node of the compute marketplace.
//!
//! - [`sandbox`] runs buyers' untrusted WebAssembly jobs.
//! - [`transport`] reaches the canisters (ic-agent or the in-process devnet);
//!   [`client`] makes typed calls on top of it.
//! - [`identity`] loads and creates PEM identities as dfx writes them.
//! - [`config`] merges the TOML file, environment and flags.
pub mod client;
pub mod config;
pub mod daemon;
pub mod identity;
pub mod sandbox;
pub mod transport;
