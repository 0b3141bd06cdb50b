//! The ICRC-1/2 transfers the escrow and the registry send to ledgers, and
//! the one reading of how such a call failed.
//!
//! A canister's runtime trait extends [`LedgerCalls`]; its default methods
//! make bounded-wait calls with ic-cdk, so the deployed runtime implements
//! it with an empty `impl`, and the test kit's fake ledger answers them in
//! memory.

use candid::{CandidType, Nat, Principal};
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use market_api::LedgerCallError;
use market_api::client::CallError;
use serde::de::DeserializeOwned;

/// Why a ledger call did not produce a decoded reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// The call had no effect: it was not delivered, or the ledger trapped or
    /// rejected it (a ledger rejects or traps without side effects).
    Rejected { code: u32, message: String },
    /// The call may or may not have taken effect (a bounded-wait call timed
    /// out, or the ledger's reply could not be decoded).
    Unknown { message: String },
}

impl From<CallFailure> for LedgerCallError {
    fn from(f: CallFailure) -> Self {
        match f {
            CallFailure::Rejected { code, message } => {
                LedgerCallError::CallFailed { code, message }
            }
            CallFailure::Unknown { .. } => LedgerCallError::OutcomeUnknown,
        }
    }
}

/// The transfers a canister sends to ledgers.
///
/// Canisters run one message at a time, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait LedgerCalls {
    /// `icrc1_transfer` on `ledger`, from one of the canister's accounts.
    async fn icrc1_transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure> {
        call(ledger, "icrc1_transfer", &arg).await
    }

    /// `icrc2_transfer_from` on `ledger`, with the canister as spender.
    async fn icrc2_transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure> {
        call(ledger, "icrc2_transfer_from", &arg).await
    }
}

/// Calls `method` of `ledger` with a bounded wait and decodes the reply: a
/// timed-out call or an undecodable reply is an unknown outcome, reconciled
/// by a retry.
pub async fn call<A: CandidType, R: CandidType + DeserializeOwned>(
    ledger: Principal,
    method: &str,
    arg: &A,
) -> Result<R, CallFailure> {
    let reply = ic_cdk::call::Call::bounded_wait(ledger, method)
        .with_arg(arg)
        .await
        .map_err(|e| match CallError::from(e) {
            CallError::Rejected { code, message } => CallFailure::Rejected { code, message },
            other => CallFailure::Unknown {
                message: format!("{method}: {other:?}"),
            },
        })?;
    reply.candid::<R>().map_err(|e| CallFailure::Unknown {
        message: format!("undecodable reply of {method}: {e}"),
    })
}
