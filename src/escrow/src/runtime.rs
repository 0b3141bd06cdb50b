//! Side effects of the escrow's logic: the clock and its own id (the
//! shared [`SystemApi`]), reads of ledgers' blocks (the shared
//! [`BlockSource`]) and calls to ledgers. Production uses [`IcRuntime`] (ic-cdk); native tests use a fake
//! ledger that can fail, reject or leave an outcome unknown.

use candid::{CandidType, Nat};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use market_api::client::CallError;
use market_api::{LedgerCallError, Principal, StandardRecord, Tokens};
use serde::de::DeserializeOwned;

pub use canister_common::ledger_blocks::BlockSource;
pub use canister_common::runtime::SystemApi;

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

/// The escrow's view of the outside world.
///
/// Canisters run one message at a time, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Runtime: SystemApi + BlockSource {
    /// `icrc1_fee` of `ledger`.
    async fn icrc1_fee(&self, ledger: Principal) -> Result<Tokens, CallFailure>;
    /// `icrc1_symbol` of `ledger`.
    async fn icrc1_symbol(&self, ledger: Principal) -> Result<String, CallFailure>;
    /// `icrc1_supported_standards` of `ledger`.
    async fn icrc1_supported_standards(
        &self,
        ledger: Principal,
    ) -> Result<Vec<StandardRecord>, CallFailure>;
    /// `icrc1_balance_of` of `account` on `ledger`.
    async fn icrc1_balance_of(
        &self,
        ledger: Principal,
        account: Account,
    ) -> Result<Tokens, CallFailure>;
    /// `icrc1_transfer` from one of the escrow's accounts.
    async fn icrc1_transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure>;
    /// `icrc2_transfer_from` with the escrow as spender.
    async fn icrc2_transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure>;
}

/// Converts a ledger amount to [`Tokens`]; `None` if it does not fit.
pub fn nat_to_tokens(n: &Nat) -> Option<Tokens> {
    u128::try_from(&n.0).ok()
}

/// The runtime of the deployed canister: ic-cdk system API and bounded-wait
/// calls (a timed-out call is an unknown outcome, reconciled by a retry).
pub struct IcRuntime;

async fn call<A: CandidType, R: CandidType + DeserializeOwned>(
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

impl SystemApi for IcRuntime {}

impl BlockSource for IcRuntime {}

impl Runtime for IcRuntime {
    async fn icrc1_fee(&self, ledger: Principal) -> Result<Tokens, CallFailure> {
        let fee: Nat = call(ledger, "icrc1_fee", &()).await?;
        nat_to_tokens(&fee).ok_or(CallFailure::Rejected {
            code: 0,
            message: format!("fee {fee} does not fit 128 bits"),
        })
    }

    async fn icrc1_symbol(&self, ledger: Principal) -> Result<String, CallFailure> {
        call(ledger, "icrc1_symbol", &()).await
    }

    async fn icrc1_supported_standards(
        &self,
        ledger: Principal,
    ) -> Result<Vec<StandardRecord>, CallFailure> {
        call(ledger, "icrc1_supported_standards", &()).await
    }

    async fn icrc1_balance_of(
        &self,
        ledger: Principal,
        account: Account,
    ) -> Result<Tokens, CallFailure> {
        let balance: Nat = call(ledger, "icrc1_balance_of", &account).await?;
        nat_to_tokens(&balance).ok_or(CallFailure::Rejected {
            code: 0,
            message: format!("balance {balance} does not fit 128 bits"),
        })
    }

    async fn icrc1_transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure> {
        call(ledger, "icrc1_transfer", &arg).await
    }

    async fn icrc2_transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure> {
        call(ledger, "icrc2_transfer_from", &arg).await
    }
}
