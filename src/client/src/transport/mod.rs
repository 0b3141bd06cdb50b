//! How the node reaches the canisters: one [`Transport`] trait.
//!
//! [`AgentTransport`] speaks the IC's HTTP interface through ic-agent: the
//! IC itself, a local replica, or the devnet behind `local-replica`. The
//! test kit implements the trait too (`market_fixture::DevnetTransport`
//! calls an in-process devnet directly, for tests and the demo); the trait
//! and its error types are public for such implementations.
//!
//! A transport moves Candid bytes and reports rejects; it knows nothing of
//! the marketplace. The typed [`MarketClient`](crate::client::MarketClient)
//! sits on top.

mod agent;

use std::future::Future;

use candid::Principal;

pub use agent::{AgentTransport, AgentTransportConfig};

/// Reject codes of the IC interface specification, as ic-cdk has them:
/// unlike ic-agent's (`ic_transport_types::RejectCode`), they include
/// `SYS_UNKNOWN` (6), the code of a bounded-wait call whose outcome is
/// unknown, which the devnet reports and which is worth a retry.
pub use ic_error_types::RejectCode;

/// Why a call produced no reply bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The IC (or the canister) answered with a reject: the call did not
    /// take effect (except `CANISTER_ERROR` after partial effects of
    /// inter-canister calls, which our canisters roll back themselves).
    #[error("rejected with {code} ({}): {message}", *code as u32)]
    Reject {
        /// The reject code.
        code: RejectCode,
        /// The reject message.
        message: String,
        /// The replica's error code (e.g. `IC0503`), if it gave one.
        error_code: Option<String>,
    },
    /// A reject with a code outside the specification; a retry may succeed.
    #[error("rejected with UNKNOWN_CODE ({code}): {message}")]
    UnknownReject {
        /// The reject code as sent.
        code: u32,
        /// The reject message.
        message: String,
        /// The replica's error code, if it gave one.
        error_code: Option<String>,
    },
    /// The network or the replica's HTTP endpoint failed, or the answer could
    /// not be verified. For an update call the outcome is unknown: check
    /// before retrying anything that is not idempotent.
    #[error("network: {0}")]
    Network(String),
    /// The answer did not arrive in time; for an update call the outcome is
    /// unknown.
    #[error("timed out waiting for the answer")]
    Timeout,
    /// The transport is misconfigured or its identity could not sign.
    #[error("{0}")]
    Config(String),
}

impl TransportError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Reject { code, .. } => {
                matches!(code, RejectCode::SysTransient | RejectCode::SysUnknown)
            }
            TransportError::UnknownReject { .. }
            | TransportError::Network(_)
            | TransportError::Timeout => true,
            TransportError::Config(_) => false,
        }
    }
}

/// One call of a canister method: where it goes and its Candid-encoded
/// argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    /// The canister called.
    pub canister: Principal,
    /// The method's name.
    pub method: &'a str,
    /// The Candid-encoded argument.
    pub arg: Vec<u8>,
}

/// One connection to the IC (or the devnet) under one identity.
///
/// `update` goes through consensus and may change state; `query` reads
/// without changing anything; `time_ns` is the IC's time, which the daemon
/// schedules heartbeats by (the devnet's clock may run faster than the
/// wall clock).
pub trait Transport: Send + Sync + 'static {
    /// The principal calls are made as.
    fn sender(&self) -> Principal;

    /// An update call; returns the Candid-encoded reply.
    fn update(
        &self,
        call: Call<'_>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;

    /// A query call; returns the Candid-encoded reply.
    fn query(&self, call: Call<'_>)
    -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;

    /// The IC's current time in nanoseconds since the epoch.
    fn time_ns(&self) -> impl Future<Output = Result<u64, TransportError>> + Send;
}

impl<T: Transport> Transport for std::sync::Arc<T> {
    fn sender(&self) -> Principal {
        (**self).sender()
    }

    fn update(
        &self,
        call: Call<'_>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send {
        (**self).update(call)
    }

    fn query(
        &self,
        call: Call<'_>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send {
        (**self).query(call)
    }

    fn time_ns(&self) -> impl Future<Output = Result<u64, TransportError>> + Send {
        (**self).time_ns()
    }
}
