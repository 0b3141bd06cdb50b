//! Provider node of the compute marketplace.
//!
//! The [`sandbox`] module runs buyers' untrusted WebAssembly jobs.
pub mod sandbox;
