//! Side effects of the registry's logic: time and its own id (the shared
//! [`SystemApi`]), reads of the ledger's blocks (the shared [`BlockSource`])
//! and ledger calls.
//!
//! Logic takes `&impl Runtime`; the canister uses [`IcRuntime`], native tests
//! a fake ledger that can fail, reject, trap or lose the answer.

use candid::{Nat, Principal};
use ic_cdk::call::{Call, CallFailed};
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use market_api::client::CallError;

pub use canister_common::ledger_blocks::BlockSource;
pub use canister_common::runtime::SystemApi;

/// Why a ledger call produced no decoded answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// The call certainly had no effect (not sent, rejected, or the ledger trapped).
    Definite { code: u32, message: String },
    /// The call may or may not have taken effect (`SYS_UNKNOWN`, or a reply
    /// that does not decode).
    Unknown,
}

/// What the registry's logic needs from the outside world.
#[allow(async_fn_in_trait)]
pub trait Runtime: SystemApi + BlockSource {
    /// `icrc2_transfer_from` on `ledger`.
    async fn transfer_from(
        &self,
        ledger: Principal,
        args: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure>;
    /// `icrc1_transfer` on `ledger`.
    async fn transfer(
        &self,
        ledger: Principal,
        args: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure>;
    /// `icrc1_fee` of `ledger`.
    async fn fee(&self, ledger: Principal) -> Result<Nat, CallFailure>;
}

/// The runtime of the deployed canister: ic-cdk system API and bounded-wait calls.
pub struct IcRuntime;

fn classify(e: CallFailed) -> CallFailure {
    match CallError::from(e) {
        CallError::Rejected { code, message } => CallFailure::Definite { code, message },
        CallError::OutcomeUnknown | CallError::BadReply { .. } => CallFailure::Unknown,
    }
}

async fn call<A, R>(ledger: Principal, method: &str, arg: &A) -> Result<R, CallFailure>
where
    A: candid::CandidType,
    R: candid::CandidType + for<'de> candid::Deserialize<'de>,
{
    let reply = Call::bounded_wait(ledger, method)
        .with_arg(arg)
        .await
        .map_err(classify)?;
    reply.candid::<R>().map_err(|_| CallFailure::Unknown)
}

impl SystemApi for IcRuntime {}

impl BlockSource for IcRuntime {}

impl Runtime for IcRuntime {
    async fn transfer_from(
        &self,
        ledger: Principal,
        args: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure> {
        call(ledger, "icrc2_transfer_from", &args).await
    }

    async fn transfer(
        &self,
        ledger: Principal,
        args: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure> {
        call(ledger, "icrc1_transfer", &args).await
    }

    async fn fee(&self, ledger: Principal) -> Result<Nat, CallFailure> {
        call(ledger, "icrc1_fee", &()).await
    }
}
