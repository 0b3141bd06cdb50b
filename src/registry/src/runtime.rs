//! Side effects of the registry's logic: time, its own id and ledger calls.
//!
//! Logic takes `&impl Runtime`; the canister uses [`IcRuntime`], native tests
//! a fake ledger that can fail, reject, trap or lose the answer.

use candid::{Nat, Principal};
use ic_cdk::call::{Call, CallFailed, RejectCode};
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};

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
pub trait Runtime {
    /// Current IC time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// The registry's own principal (owner of the stake accounts).
    fn self_id(&self) -> Principal;
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
    match e {
        CallFailed::CallRejected(r) => match r.reject_code() {
            Ok(RejectCode::SysUnknown) => CallFailure::Unknown,
            _ => CallFailure::Definite {
                code: r.raw_reject_code(),
                message: r.reject_message().to_string(),
            },
        },
        other => CallFailure::Definite {
            code: 0,
            message: other.to_string(),
        },
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

impl Runtime for IcRuntime {
    fn now_ns(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn self_id(&self) -> Principal {
        ic_cdk::api::canister_self()
    }

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
