//! Provider node of the compute marketplace: the daemon, its sandbox and the
//! provider's own calls. Talking to the canisters (transport, typed client,
//! identities, network settings) is the client library's,
//! [`market_client`].
//!
//! - [`sandbox`] runs buyers' untrusted WebAssembly jobs.
//! - [`daemon`] turns assignments into runs, heartbeats and results.
//! - [`config`] merges the provider's TOML file, environment and flags.
//! - [`provider`] is the provider's money behind `provider-node stake` and
//!   `withdraw`.
pub mod config;
pub mod daemon;
pub mod net;
pub mod provider;
pub mod sandbox;
pub mod service;
