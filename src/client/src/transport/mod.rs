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

use std::fmt;
use std::future::Future;

use candid::Principal;

pub use agent::{AgentTransport, AgentTransportConfig};

/// Reject codes of the IC interface specification.
///
/// Our own rather than ic-agent's (`ic_transport_types::RejectCode`): that
/// one has no `SYS_UNKNOWN` (6), the code of a bounded-wait call whose
/// outcome is unknown, which the devnet reports and which is worth a retry,
/// and it can't carry a code outside the specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// 1: fatal system error.
    SysFatal,
    /// 2: transient system error; a retry may succeed.
    SysTransient,
    /// 3: the canister or method does not exist.
    DestinationInvalid,
    /// 4: the canister rejected the message explicitly.
    CanisterReject,
    /// 5: the canister trapped or did not reply.
    CanisterError,
    /// 6: the outcome of a bounded-wait call is unknown.
    SysUnknown,
    /// A code outside the specification.
    Other(u32),
}

impl RejectCode {
    /// The code for its numeric value.
    pub fn from_u32(code: u32) -> Self {
        match code {
            1 => RejectCode::SysFatal,
            2 => RejectCode::SysTransient,
            3 => RejectCode::DestinationInvalid,
            4 => RejectCode::CanisterReject,
            5 => RejectCode::CanisterError,
            6 => RejectCode::SysUnknown,
            n => RejectCode::Other(n),
        }
    }

    /// The numeric value.
    pub fn as_u32(self) -> u32 {
        match self {
            RejectCode::SysFatal => 1,
            RejectCode::SysTransient => 2,
            RejectCode::DestinationInvalid => 3,
            RejectCode::CanisterReject => 4,
            RejectCode::CanisterError => 5,
            RejectCode::SysUnknown => 6,
            RejectCode::Other(n) => n,
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            RejectCode::SysFatal => "SYS_FATAL",
            RejectCode::SysTransient => "SYS_TRANSIENT",
            RejectCode::DestinationInvalid => "DESTINATION_INVALID",
            RejectCode::CanisterReject => "CANISTER_REJECT",
            RejectCode::CanisterError => "CANISTER_ERROR",
            RejectCode::SysUnknown => "SYS_UNKNOWN",
            RejectCode::Other(_) => "UNKNOWN_CODE",
        };
        write!(f, "{name} ({})", self.as_u32())
    }
}

/// Why a call produced no reply bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The IC (or the canister) answered with a reject: the call did not
    /// take effect (except `CANISTER_ERROR` after partial effects of
    /// inter-canister calls, which our canisters roll back themselves).
    #[error("rejected with {code}: {message}")]
    Reject {
        /// The reject code.
        code: RejectCode,
        /// The reject message.
        message: String,
        /// The replica's error code (e.g. `IC0503`), if it gave one.
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
            TransportError::Reject { code, .. } => matches!(
                code,
                RejectCode::SysTransient | RejectCode::SysUnknown | RejectCode::Other(_)
            ),
            TransportError::Network(_) | TransportError::Timeout => true,
            TransportError::Config(_) => false,
        }
    }
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
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;

    /// A query call; returns the Candid-encoded reply.
    fn query(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;

    /// The IC's current time in nanoseconds since the epoch.
    fn time_ns(&self) -> impl Future<Output = Result<u64, TransportError>> + Send;
}

impl<T: Transport> Transport for std::sync::Arc<T> {
    fn sender(&self) -> Principal {
        (**self).sender()
    }

    fn update(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send {
        (**self).update(canister, method, arg)
    }

    fn query(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send {
        (**self).query(canister, method, arg)
    }

    fn time_ns(&self) -> impl Future<Output = Result<u64, TransportError>> + Send {
        (**self).time_ns()
    }
}
