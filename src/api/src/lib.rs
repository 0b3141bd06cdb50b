//! Candid types shared by the marketplace's canisters, its provider node and
//! client canisters.
//!
//! Client canisters depend on this crate alone: with the `client` feature it
//! also offers typed helpers (in [`client`]) for calling the escrow and the
//! matcher. Without that feature it has no ic-cdk dependency, so off-chain
//! code (the provider node, ic-agent tools) uses the same types.

pub mod blocks;
pub mod escrow;
pub mod matcher;
pub mod outcall;
pub mod prices;
pub mod privacy;
pub mod registry;
pub mod sns;

#[cfg(feature = "client")]
pub mod client;

pub use candid::Principal;
pub use icrc_ledger_types::icrc1::account::{Account, Subaccount};

use candid::{CandidType, Deserialize};
use serde::Serialize;

/// An amount of a ledger's token in its smallest unit (e8s for ICP).
///
/// 128 bits hold any realistic balance of any ICRC token (an 18-decimal token
/// overflows 64 bits at about 18 whole tokens).
pub type Tokens = u128;

/// Identifies a job (a bid) in the matcher.
pub type JobId = u64;

/// Identifies a provider's standing offer in the matcher.
pub type OfferId = u64;

/// An idempotency key carried by every value-moving call between canisters,
/// e.g. `job/17/hb/3`; a retry with the same key never moves value twice.
pub type OpKey = String;

/// Longest accepted [`OpKey`], in bytes.
pub const MAX_OP_KEY_LEN: usize = 64;

/// Largest page any paginated query returns, whatever the caller asks for.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// A request for one page of a list ordered by a `u64` key (sequence number,
/// job id, ...): entries from `start` (inclusive), at most `limit` of them.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// First key to return; `None` starts at the beginning.
    pub start: Option<u64>,
    /// Maximum number of entries; capped at [`MAX_PAGE_LIMIT`]; `None` or 0 means the cap.
    pub limit: Option<u32>,
}

impl PageRequest {
    /// The effective page size: the requested limit, capped, never zero.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            Some(0) | None => MAX_PAGE_LIMIT as usize,
            Some(n) => n.min(MAX_PAGE_LIMIT) as usize,
        }
    }
}

/// An entry of a canister's append-only public event log.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct EventRecord<E> {
    /// Position in the log, starting at 0.
    pub seq: u64,
    /// IC time (nanoseconds since the epoch) at which the event was recorded.
    pub time_ns: u64,
    /// What happened.
    pub event: E,
}

/// One page of an event log.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct EventPage<E> {
    /// Events in log order.
    pub events: Vec<EventRecord<E>>,
    /// Where the next page starts, if there is one.
    pub next: Option<u64>,
    /// Number of events in the whole log.
    pub total: u64,
}

/// An error from a ledger call, as seen by one of our canisters.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum LedgerCallError {
    /// The ledger answered with an error (its text form).
    Rejected { message: String },
    /// The call could not be delivered or was rejected by the system.
    CallFailed { code: u32, message: String },
    /// A bounded-wait call timed out: the outcome is unknown and will be
    /// reconciled by a retry with the same deduplication key.
    OutcomeUnknown,
}

/// How a ledger transfer whose outcome was lost really ended, as a
/// controller rules it for a ledger whose blocks the canister can't read.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum LedgerOutcome {
    /// The transfer is in the ledger, at this block.
    Landed { block_index: u128 },
    /// The transfer is in no block of the ledger.
    NotLanded,
}

/// Standards answer of `icrc10_supported_standards`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct StandardRecord {
    /// Standard name, e.g. `ICRC-10`.
    pub name: String,
    /// Where the standard is described.
    pub url: String,
}

/// The ICRC-10 record every one of our canisters reports.
pub fn icrc10_standard() -> StandardRecord {
    StandardRecord {
        name: "ICRC-10".to_string(),
        url: "https://github.com/dfinity/ICRC/blob/main/ICRCs/ICRC-10/ICRC-10.md".to_string(),
    }
}

/// The ICRC-10 record of ICRC-3, which every event log follows (see
/// [`blocks`]).
pub fn icrc3_standard() -> StandardRecord {
    StandardRecord {
        name: "ICRC-3".to_string(),
        url: "https://github.com/dfinity/ICRC-1/blob/main/standards/ICRC-3/README.md".to_string(),
    }
}

/// A minimal HTTP request as delivered to a canister's `http_request` query
/// (the subset of the HTTP gateway protocol our `/metrics` endpoints use).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path and query string, e.g. `/metrics`.
    pub url: String,
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// Request body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// The answer to an [`HttpRequest`].
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status_code: u16,
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// Response body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A plain-text response with the given status.
    pub fn text(status_code: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status_code,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.into(),
        }
    }
}

/// Checks that an [`OpKey`] is non-empty and not longer than [`MAX_OP_KEY_LEN`].
pub fn validate_op_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("idempotency key is empty".to_string());
    }
    if key.len() > MAX_OP_KEY_LEN {
        return Err(format!(
            "idempotency key is {} bytes, the maximum is {MAX_OP_KEY_LEN}",
            key.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limit_is_capped_and_never_zero() {
        assert_eq!(
            PageRequest::default().effective_limit(),
            MAX_PAGE_LIMIT as usize
        );
        let zero = PageRequest {
            start: None,
            limit: Some(0),
        };
        assert_eq!(zero.effective_limit(), MAX_PAGE_LIMIT as usize);
        let big = PageRequest {
            start: None,
            limit: Some(u32::MAX),
        };
        assert_eq!(big.effective_limit(), MAX_PAGE_LIMIT as usize);
        let small = PageRequest {
            start: Some(3),
            limit: Some(7),
        };
        assert_eq!(small.effective_limit(), 7);
    }

    #[test]
    fn op_keys_are_bounded() {
        assert!(validate_op_key("").is_err());
        assert!(validate_op_key("job/1/hb/2").is_ok());
        assert!(validate_op_key(&"k".repeat(MAX_OP_KEY_LEN)).is_ok());
        assert!(validate_op_key(&"k".repeat(MAX_OP_KEY_LEN + 1)).is_err());
    }
}
