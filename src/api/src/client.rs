//! Typed helpers for calling the marketplace from another canister.
//!
//! Every helper makes a bounded-wait call (the IC's default for calls whose
//! outcome the caller can reconcile), decodes the Candid reply and returns
//! the method's own result inside a [`CallError`]-typed outer result. A
//! [`CallError::OutcomeUnknown`] means the call may or may not have taken
//! effect: query the canister (e.g. `get_job`) before retrying.

use crate::escrow::{
    Balance, DepositArgs, EscrowError, ExtendLockArgs, JobLock, LedgerInfo, LockArgs,
    NotifyDepositArgs, ReconcileArgs, ReleaseArgs, SettleArgs, WithdrawArgs, WithdrawForArgs,
};
use crate::matcher::{Job, JobSpec, MatcherError};
use crate::registry::{BondArgs, Eligibility, Provider, RegistryError, SlashArgs, SlashOutcome};
use crate::{Account, JobId, Principal, Tokens};
use candid::CandidType;
use candid::utils::ArgumentEncoder;
use ic_cdk::call::{Call, CallFailed, RejectCode};
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
    let reply = Call::bounded_wait(canister, method)
        .with_args(args)
        .await
        .map_err(CallError::from)?;
    reply.candid::<R>().map_err(|e| CallError::BadReply {
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

/// The escrow canister, seen from a client canister.
#[derive(Clone, Copy, Debug)]
pub struct EscrowClient(pub Principal);

impl EscrowClient {
    /// Pulls `args.amount` from the caller's ledger account (approved beforehand).
    pub async fn deposit(
        &self,
        args: &DepositArgs,
    ) -> Result<Result<Tokens, EscrowError>, CallError> {
        call(self.0, "deposit", &(args,)).await
    }

    /// Credits tokens pushed to `args.beneficiary`'s deposit account.
    pub async fn notify_deposit(
        &self,
        args: &NotifyDepositArgs,
    ) -> Result<Result<Tokens, EscrowError>, CallError> {
        call(self.0, "notify_deposit", &(args,)).await
    }

    /// Moves the caller's balance out to `args.to` (claimable first, then
    /// free; the recipient gets the amount minus the ledger fee); returns
    /// the ledger block index.
    pub async fn withdraw(
        &self,
        args: &WithdrawArgs,
    ) -> Result<Result<u128, EscrowError>, CallError> {
        call(self.0, "withdraw", &(args,)).await
    }

    /// The account to transfer to so that `owner` is credited on `notify_deposit`.
    pub async fn deposit_account(&self, owner: Principal) -> Result<Account, CallError> {
        call(self.0, "deposit_account", &(owner,)).await
    }

    /// Retries a ledger call of (owner, ledger) whose outcome was unknown.
    pub async fn reconcile(
        &self,
        args: &ReconcileArgs,
    ) -> Result<Result<bool, EscrowError>, CallError> {
        call(self.0, "reconcile", &(args,)).await
    }

    /// Locks a job's maximum cost from the buyer's balance (matcher only;
    /// idempotent on the job key).
    pub async fn lock(&self, args: &LockArgs) -> Result<Result<JobLock, EscrowError>, CallError> {
        call(self.0, "lock", &(args,)).await
    }

    /// Pays one interval from a job's lock to a provider (matcher only;
    /// idempotent on (job key, seq)).
    pub async fn release(
        &self,
        args: &ReleaseArgs,
    ) -> Result<Result<JobLock, EscrowError>, CallError> {
        call(self.0, "release", &(args,)).await
    }

    /// Returns the rest of a job's lock to the buyer (matcher only;
    /// idempotent on the job key).
    pub async fn settle(
        &self,
        args: &SettleArgs,
    ) -> Result<Result<JobLock, EscrowError>, CallError> {
        call(self.0, "settle", &(args,)).await
    }

    /// A job's lock, if any.
    pub async fn get_lock(&self, job_key: &str) -> Result<Option<JobLock>, CallError> {
        call(self.0, "get_lock", &(job_key,)).await
    }

    /// `owner`'s balance on `ledger`.
    pub async fn balance_of(
        &self,
        owner: Principal,
        ledger: Principal,
    ) -> Result<Balance, CallError> {
        call(self.0, "balance_of", &(owner, ledger)).await
    }

    /// `owner`'s balances on every ledger.
    pub async fn balances_of(&self, owner: Principal) -> Result<Vec<Balance>, CallError> {
        call(self.0, "balances_of", &(owner,)).await
    }

    /// The whitelisted ledgers.
    pub async fn ledgers(&self) -> Result<Vec<LedgerInfo>, CallError> {
        call(self.0, "ledgers", &()).await
    }

    /// Adds to a job's lock as its extension `args.extension` (matcher
    /// only; idempotent on (job key, extension)).
    pub async fn extend_lock(
        &self,
        args: &ExtendLockArgs,
    ) -> Result<Result<JobLock, EscrowError>, CallError> {
        call(self.0, "extend_lock", &(args,)).await
    }

    /// Withdraws on behalf of `args.owner` (matcher only: a DAO's
    /// withdrawal voted by proposal); returns the ledger block index.
    pub async fn withdraw_for(
        &self,
        args: &WithdrawForArgs,
    ) -> Result<Result<Tokens, EscrowError>, CallError> {
        call(self.0, "withdraw_for", &(args,)).await
    }
}

/// The registry canister, seen from a client canister.
#[derive(Clone, Copy, Debug)]
pub struct RegistryClient(pub Principal);

impl RegistryClient {
    /// A provider, if registered.
    pub async fn get_provider(&self, provider: Principal) -> Result<Option<Provider>, CallError> {
        call(self.0, "get_provider", &(provider,)).await
    }

    /// Whether a provider may take on new work.
    pub async fn eligibility(&self, provider: Principal) -> Result<Eligibility, CallError> {
        call(self.0, "eligibility", &(provider,)).await
    }

    /// Bonds part of a provider's free stake to work (matcher only;
    /// idempotent on the key).
    pub async fn bond(&self, args: &BondArgs) -> Result<Result<(), RegistryError>, CallError> {
        call(self.0, "bond", &(args,)).await
    }

    /// Frees the stake bonded under `key` (matcher only); returns the amount.
    pub async fn unbond(&self, key: &str) -> Result<Result<Tokens, RegistryError>, CallError> {
        call(self.0, "unbond", &(key,)).await
    }

    /// Slashes a provider in favour of a beneficiary (matcher only;
    /// idempotent on the key).
    pub async fn slash(
        &self,
        args: &SlashArgs,
    ) -> Result<Result<SlashOutcome, RegistryError>, CallError> {
        call(self.0, "slash", &(args,)).await
    }
}

/// The matcher canister, seen from a client canister.
#[derive(Clone, Copy, Debug)]
pub struct MatcherClient(pub Principal);

impl MatcherClient {
    /// Submits a job paid from the caller's escrow balance; returns its id.
    pub async fn submit_job(
        &self,
        spec: &JobSpec,
    ) -> Result<Result<JobId, MatcherError>, CallError> {
        call(self.0, "submit_job", &(spec,)).await
    }

    /// Submits a job to run in a reservation's slots (the caller must be
    /// its owner or a delegate); it costs nothing more.
    pub async fn submit_reserved_job(
        &self,
        args: &crate::matcher::ReservedJobArgs,
    ) -> Result<Result<JobId, MatcherError>, CallError> {
        call(self.0, "submit_reserved_job", &(args,)).await
    }

    /// Reads a job.
    pub async fn get_job(&self, job_id: JobId) -> Result<Option<Job>, CallError> {
        call(self.0, "get_job", &(job_id,)).await
    }

    /// Cancels one of the caller's jobs.
    pub async fn cancel_job(&self, job_id: JobId) -> Result<Result<(), MatcherError>, CallError> {
        call(self.0, "cancel_job", &(job_id,)).await
    }
}
