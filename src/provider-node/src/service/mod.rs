//! Services: long-running `wasi:http/proxy` components on leased slots.
//!
//! A service is a WASI 0.2 component (the world `wasmtime serve`, Spin and
//! wasmCloud run), named by its sha256. The node compiles it once
//! ([`engine`]: its own engine, separate from the batch sandbox's, with the
//! component model on), pre-instantiates it, and runs a **fresh instance
//! per request** with the service's fuel, memory and wall time
//! ([`ServiceHost`]). Requests arrive through the node's one HTTP listener
//! ([`ingress`]), which routes `/<id>/...` to service `id`; outgoing
//! requests leave only under the lease's egress policy ([`egress`]).
//!
//! | limit | where | what happens |
//! |---|---|---|
//! | `fuel_per_request` | the store's fuel | 500 `out of fuel` |
//! | memory (`memory_mib`) | the store's limiter and the pool | 500 `out of memory` |
//! | `timeout_ms` | a timeout around instantiation, handling and the response body | 504, or the body cut off |
//! | `max_body_bytes` | request: `Content-Length` (413 before any instance) or a read error in the guest; response: cut off | 413 / truncated |
//! | `max_concurrent` | a semaphore per service | 503 with `Retry-After` |
//! | node instances | a semaphore sized like the pooling allocator | 503 with `Retry-After` |
//! | stdout/stderr | not kept (sinks) | — |
//!
//! TCP services ([`tcp`]) are `wasi:cli` commands using `wasi:sockets`: one
//! long-lived instance each on the same engine, behind a port the host
//! listens on.

pub mod body;
pub mod egress;
pub mod engine;
pub mod host;
pub mod ingress;
pub mod metrics;
pub mod state;
pub mod tcp;

use std::time::Duration;

pub use egress::EgressPolicy;
pub use engine::ServiceHostConfig;
pub use host::{ServiceHost, ServiceInfo, ServiceSettings, endpoint};
pub use ingress::{IngressSettings, serve, tls_config};
pub use metrics::ServiceMetrics;
pub use tcp::{TcpLimits, TcpServiceHost, TcpServiceInfo, TcpServiceSettings};

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The host's own settings are unusable.
    #[error("service host configuration: {0}")]
    Config(String),
    /// The service's limits are out of bounds.
    #[error("service limits: {0}")]
    Limits(String),
    /// The component is larger than the host accepts.
    #[error("component of {size} bytes, over the limit of {limit}")]
    ComponentTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The component's bytes are not the ones named.
    #[error("component sha256 {actual}, expected {expected}")]
    HashMismatch {
        /// The hash named.
        expected: String,
        /// The hash of the bytes.
        actual: String,
    },
    /// Compiling took longer than the limit.
    #[error("compiling the component took over {0:?}")]
    CompileTimeout(Duration),
    /// Not a component, or one importing more than the proxy world and
    /// `wasi:cli/environment` (a TCP service: not a `wasi:cli` command).
    #[error("invalid component: {0}")]
    Invalid(String),
    /// Every instance slot of the node is taken.
    #[error("no instance slot free on the node")]
    NodeFull,
}
