//! What the network subcommands share; it lives in the library
//! ([`provider_node::session`]) because the `market` tool uses it too.

pub use provider_node::session::{connect, load_identity, runtime, settings};
