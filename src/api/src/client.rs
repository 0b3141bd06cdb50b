//! Typed helpers for calling the marketplace from another canister.
//!
//! Every helper makes a bounded-wait call (the IC's default for calls whose
//! outcome the caller can reconcile), decodes the Candid reply and returns
//! the method's own result inside a [`CallError`]-typed outer result. A
//! [`CallError::OutcomeUnknown`] means the call may or may not have taken
//! effect: query the canister (e.g. `get_job`) before retrying.

use crate::escrow::{
    Balance, DepositArgs, EscrowError, ExtendLockArgs, ForfeitArgs, JobLock, LedgerInfo, LockArgs,
    NotifyDepositArgs, ReconcileArgs, ReleaseArgs, SettleArgs, WithdrawArgs, WithdrawForArgs,
};
use crate::matcher::{Job, JobSpec, MatcherError};
use crate::registry::{
    BondArgs, Eligibility, Provider, RecordArgs, RegistryError, SlashArgs, SlashOutcome,
    TrackRecord,
};
use crate::{Account, JobId, Principal, Tokens};
use candid::CandidType;
use candid::utils::ArgumentEncoder;
use ic_cdk::call::{Call, CallFailed, RejectCode, Response};
use serde::de::DeserializeOwned;

/// Why a call to one of our canisters did not produce a decoded reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The call was rejected, or could not be made; it had no effect.
    Rejected { code: u32, message: String },
    /// A bounded-wait call timed out: it may or may not have taken effect.
    OutcomeUnknown,
    /// The reply did not decode as the expected type.
    BadReply { message: String },
}

/// Makes a bounded-wait call and decodes its reply.
pub async fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
    canister: Principal,
    method: &str,
    args: &A,
) -> Result<R, CallError> {
    decode(Call::bounded_wait(canister, method).with_args(args).await)
}

/// Makes a bounded-wait call with `cycles` attached (what the callee does
/// not take is refunded) and decodes its reply.
pub async fn call_with_cycles<A: CandidType, R: CandidType + DeserializeOwned>(
    canister: Principal,
    method: &str,
    arg: &A,
    cycles: u128,
) -> Result<R, CallError> {
    decode(
        Call::bounded_wait(canister, method)
            .with_arg(arg)
            .with_cycles(cycles)
            .await,
    )
}

fn decode<R: CandidType + DeserializeOwned>(
    reply: Result<Response, CallFailed>,
) -> Result<R, CallError> {
    reply
        .map_err(CallError::from)?
        .candid::<R>()
        .map_err(|e| CallError::BadReply {
            message: e.to_string(),
        })
}

/// The one reading of ic-cdk's call failures (and of its reject codes)
/// that the marketplace's canisters share: `SYS_UNKNOWN` is an unknown
/// outcome, any other reject or failure to call had no effect.
impl From<CallFailed> for CallError {
    fn from(e: CallFailed) -> Self {
        match e {
            CallFailed::CallRejected(r) if r.reject_code() == Ok(RejectCode::SysUnknown) => {
                CallError::OutcomeUnknown
            }
            CallFailed::CallRejected(r) => CallError::Rejected {
                code: r.raw_reject_code(),
                message: r.reject_message().to_string(),
            },
            other => CallError::Rejected {
                code: 0,
                message: other.to_string(),
            },
        }
    }
}

/// Makes a bounded-wait call whose reply carries nothing the caller needs
/// (a buyer's callback, say): only whether it was answered, not decoded.
pub async fn deliver<A: CandidType>(
    canister: Principal,
    method: &str,
    arg: &A,
) -> Result<(), CallError> {
    Call::bounded_wait(canister, method)
        .with_arg(arg)
        .await
        .map(|_| ())
        .map_err(CallError::from)
}

/// 32 random bytes from the management canister's `raw_rand`, unbiased
/// and unpredictable to anyone before the call is answered.
pub async fn raw_rand() -> Result<Vec<u8>, CallError> {
    let bytes: serde_bytes::ByteBuf =
        call(Principal::management_canister(), "raw_rand", &()).await?;
    Ok(bytes.into_vec())
}

/// An HTTPS outcall (the management canister's `http_request`) with
/// `cycles` attached (see [`crate::outcall::http_request_cycles`]; what is
/// not used is refunded). A reject (the host unreachable, the response too
/// large, too few cycles) is [`CallError::Rejected`].
pub async fn http_request(
    args: &crate::outcall::HttpRequestArgs,
    cycles: u128,
) -> Result<crate::outcall::HttpRequestResult, CallError> {
    call_with_cycles(
        Principal::management_canister(),
        "http_request",
        args,
        cycles,
    )
    .await
}

/// The vetKD public key of the calling canister (`canister_id: None`) or
/// of another, for a context and master key (the management canister's
/// `vetkd_public_key`, free).
pub async fn vetkd_public_key(
    args: &ic_management_canister_types::VetKDPublicKeyArgs,
) -> Result<ic_management_canister_types::VetKDPublicKeyResult, CallError> {
    call(
        Principal::management_canister(),
        "vetkd_public_key",
        &(args,),
    )
    .await
}

/// A vetKey derived for the calling canister, encrypted to the request's
/// transport key (the management canister's `vetkd_derive_key`), with
/// `cycles` attached (its fee; what is not used is refunded). An invalid
/// transport key or too few cycles is [`CallError::Rejected`].
pub async fn vetkd_derive_key(
    args: &ic_management_canister_types::VetKDDeriveKeyArgs,
    cycles: u128,
) -> Result<ic_management_canister_types::VetKDDeriveKeyResult, CallError> {
    call_with_cycles(
        Principal::management_canister(),
        "vetkd_derive_key",
        args,
        cycles,
    )
    .await
}

/// The cycles minting canister's ICP/XDR rate (`get_icp_xdr_conversion_rate`,
/// a query called as a bounded-wait update).
pub async fn icp_xdr_rate(
    cmc: Principal,
) -> Result<crate::prices::cmc::IcpXdrConversionRateResponse, CallError> {
    call(cmc, "get_icp_xdr_conversion_rate", &()).await
}

/// `icrc1_balance_of` of `account` on `ledger`.
pub async fn icrc1_balance_of(
    ledger: Principal,
    account: &icrc_ledger_types::icrc1::account::Account,
) -> Result<candid::Nat, CallError> {
    call(ledger, "icrc1_balance_of", &(account,)).await
}

/// `icrc1_transfer` on `ledger`, from the caller's account.
pub async fn icrc1_transfer(
    ledger: Principal,
    arg: &icrc_ledger_types::icrc1::transfer::TransferArg,
) -> Result<Result<candid::Nat, icrc_ledger_types::icrc1::transfer::TransferError>, CallError> {
    call(ledger, "icrc1_transfer", &(arg,)).await
}

/// The cycles minting canister's `notify_top_up`: the ICP of a transfer
/// to its account for a canister becomes that canister's cycles.
pub async fn notify_top_up(
    cmc: Principal,
    arg: &crate::prices::cmc::NotifyTopUpArg,
) -> Result<crate::prices::cmc::NotifyTopUpResult, CallError> {
    call(cmc, "notify_top_up", &(arg,)).await
}

/// The exchange rate canister's rate for `request`, paid with
/// [`crate::prices::xrc::REQUEST_CYCLES`] (what it does not need is
/// refunded).
pub async fn exchange_rate(
    xrc: Principal,
    request: &crate::prices::xrc::GetExchangeRateRequest,
) -> Result<crate::prices::xrc::GetExchangeRateResult, CallError> {
    call_with_cycles(
        xrc,
        "get_exchange_rate",
        request,
        crate::prices::xrc::REQUEST_CYCLES,
    )
    .await
}

/// Declares a client of one of our canisters: a `Copy` wrapper of the
/// canister's id whose every method makes a bounded-wait [`call`] of the
/// canister method of its name, with its arguments, and answers the decoded
/// reply.
macro_rules! canister_client {
    (
        $(#[$client_attr:meta])*
        pub struct $client:ident;
        $($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $reply:ty;)*
    ) => {
        $(#[$client_attr])*
        #[derive(Clone, Copy, Debug)]
        pub struct $client(pub Principal);

        impl $client {
            $(
                $(#[$attr])*
                pub async fn $name(&self, $($arg: $ty),*) -> Result<$reply, CallError> {
                    call(self.0, stringify!($name), &($($arg,)*)).await
                }
            )*
        }
    };
}

canister_client! {
    /// The escrow canister, seen from a client canister.
    pub struct EscrowClient;

    /// Pulls `args.amount` from the caller's ledger account (approved beforehand).
    fn deposit(args: &DepositArgs) -> Result<Tokens, EscrowError>;

    /// Credits tokens pushed to `args.beneficiary`'s deposit account.
    fn notify_deposit(args: &NotifyDepositArgs) -> Result<Tokens, EscrowError>;

    /// Moves the caller's balance out to `args.to` (claimable first, then
    /// free; the recipient gets the amount minus the ledger fee); returns
    /// the ledger block index.
    fn withdraw(args: &WithdrawArgs) -> Result<u128, EscrowError>;

    /// The account to transfer to so that `owner` is credited on `notify_deposit`.
    fn deposit_account(owner: Principal) -> Account;

    /// Retries a ledger call of (owner, ledger) whose outcome was unknown.
    fn reconcile(args: &ReconcileArgs) -> Result<bool, EscrowError>;

    /// Locks a job's maximum cost from the buyer's balance (matcher only;
    /// idempotent on the job key).
    fn lock(args: &LockArgs) -> Result<JobLock, EscrowError>;

    /// Pays one interval from a job's lock to a provider, claimable at
    /// once or, with `hold`, pending until settle (matcher only;
    /// idempotent on (job key, seq)).
    fn release(args: &ReleaseArgs) -> Result<JobLock, EscrowError>;

    /// Returns a provider's pending pay in a job's lock to the lock
    /// (matcher only; before settle; a repeat moves nothing).
    fn forfeit(args: &ForfeitArgs) -> Result<JobLock, EscrowError>;

    /// Pays a job's pending pay to its providers and returns the rest of
    /// its lock to the buyer (matcher only; idempotent on the job key).
    fn settle(args: &SettleArgs) -> Result<JobLock, EscrowError>;

    /// A job's lock, if any.
    fn get_lock(job_key: &str) -> Option<JobLock>;

    /// `owner`'s balance on `ledger`.
    fn balance_of(owner: Principal, ledger: Principal) -> Balance;

    /// `owner`'s balances on every ledger.
    fn balances_of(owner: Principal) -> Vec<Balance>;

    /// The whitelisted ledgers.
    fn ledgers() -> Vec<LedgerInfo>;

    /// Adds to a job's lock as its extension `args.extension` (matcher
    /// only; idempotent on (job key, extension)).
    fn extend_lock(args: &ExtendLockArgs) -> Result<JobLock, EscrowError>;

    /// Withdraws on behalf of `args.owner` (matcher only: a DAO's
    /// withdrawal voted by proposal); returns the ledger block index.
    fn withdraw_for(args: &WithdrawForArgs) -> Result<Tokens, EscrowError>;
}

canister_client! {
    /// The registry canister, seen from a client canister.
    pub struct RegistryClient;

    /// A provider, if registered.
    fn get_provider(provider: Principal) -> Option<Provider>;

    /// Whether a provider may take on new work.
    fn eligibility(provider: Principal) -> Eligibility;

    /// Bonds part of a provider's free stake to work (matcher only;
    /// idempotent on the key).
    fn bond(args: &BondArgs) -> Result<(), RegistryError>;

    /// Frees the stake bonded under `key` (matcher only); returns the amount.
    fn unbond(key: &str) -> Result<Tokens, RegistryError>;

    /// Slashes a provider in favour of a beneficiary (matcher only;
    /// idempotent on the key).
    fn slash(args: &SlashArgs) -> Result<SlashOutcome, RegistryError>;

    /// Counts one thing a provider did in its track record (matcher only;
    /// idempotent on the key).
    fn record(args: &RecordArgs) -> Result<(), RegistryError>;

    /// A provider's track record, if registered.
    fn track_record(provider: Principal) -> Option<TrackRecord>;
}

canister_client! {
    /// The matcher canister, seen from a client canister.
    pub struct MatcherClient;

    /// Submits a job paid from the caller's escrow balance; returns its id.
    fn submit_job(spec: &JobSpec) -> Result<JobId, MatcherError>;

    /// Submits a job to run in a reservation's slots (the caller must be
    /// its owner or a delegate); it costs nothing more.
    fn submit_reserved_job(args: &crate::matcher::ReservedJobArgs) -> Result<JobId, MatcherError>;

    /// Reads a job.
    fn get_job(job_id: JobId) -> Option<Job>;

    /// Cancels one of the caller's jobs.
    fn cancel_job(job_id: JobId) -> Result<(), MatcherError>;

    /// Reserves slots (a service lease, if the spec names a service), paid
    /// from the caller's escrow balance; returns the reservation's id.
    fn reserve(spec: &crate::matcher::ReservationSpec) -> Result<crate::matcher::ReservationId, MatcherError>;

    /// A service lease's replicas, their endpoints and health.
    fn get_service(id: crate::matcher::ReservationId) -> Option<crate::matcher::ServiceView>;
}
