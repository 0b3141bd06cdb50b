//! Types of the escrow canister: deposits, job locks, releases, withdrawals.

use crate::{Account, OpKey, Principal, Tokens};
use candid::{CandidType, Deserialize};
use serde::Serialize;

/// Init and upgrade argument of the escrow canister.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct EscrowInit {
    /// The matcher canister, the only caller allowed to lock, release and settle.
    pub matcher: Option<Principal>,
    /// Ledgers accepted from the start (more can be added by controllers).
    pub ledgers: Vec<Principal>,
}

/// A whitelisted ledger and what the escrow knows of it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct LedgerInfo {
    /// The ledger canister.
    pub ledger: Principal,
    /// Its transfer fee as last read from the ledger; `None` until read.
    pub fee: Option<Tokens>,
    /// Its token symbol as last read from the ledger.
    pub symbol: Option<String>,
}

/// Arguments of `deposit` (pull: the caller approved the escrow first).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct DepositArgs {
    /// Ledger to pull from.
    pub ledger: Principal,
    /// Amount credited to the caller (the ledger fee is charged on top, to the caller).
    pub amount: Tokens,
    /// Subaccount of the caller's account the allowance was given from.
    pub from_subaccount: Option<[u8; 32]>,
}

/// Arguments of `notify_deposit` (push: someone transferred to the beneficiary's deposit account).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct NotifyDepositArgs {
    /// Ledger the transfer was made on.
    pub ledger: Principal,
    /// Whose balance to credit.
    pub beneficiary: Principal,
}

/// Arguments of `withdraw`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct WithdrawArgs {
    /// Ledger to withdraw on.
    pub ledger: Principal,
    /// Amount taken from the caller's balance; the recipient gets it minus the ledger fee.
    pub amount: Tokens,
    /// Where the tokens go.
    pub to: Account,
}

/// Arguments of `lock` (matcher only): set aside a job's maximum cost.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct LockArgs {
    /// The job's key; also the idempotency key.
    pub job_key: OpKey,
    /// Whose balance pays.
    pub buyer: Principal,
    /// Ledger of the payment.
    pub ledger: Principal,
    /// Amount to lock.
    pub amount: Tokens,
}

/// Arguments of `release` (matcher only): pay one interval to a provider.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ReleaseArgs {
    /// The job's key.
    pub job_key: OpKey,
    /// Sequence number of the release within the job; (job_key, seq) is the idempotency key.
    pub seq: u64,
    /// Who is paid.
    pub provider: Principal,
    /// How much moves from the lock to the provider's claimable balance.
    pub amount: Tokens,
}

/// Arguments of `settle` (matcher only): return what is left of a lock to the buyer.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SettleArgs {
    /// The job's key.
    pub job_key: OpKey,
}

/// One (principal, ledger) balance.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Balance {
    /// Ledger of the balance.
    pub ledger: Option<Principal>,
    /// Spendable by the owner: may be locked for jobs or withdrawn.
    pub free: Tokens,
    /// Earned as a provider; may be withdrawn.
    pub claimable: Tokens,
    /// Locked for the owner's jobs.
    pub locked: Tokens,
}

/// A job's lock as the escrow holds it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobLock {
    /// The job's key.
    pub job_key: OpKey,
    /// Who paid.
    pub buyer: Principal,
    /// Ledger of the payment.
    pub ledger: Principal,
    /// Amount locked at the start.
    pub total: Tokens,
    /// Amount released to providers so far.
    pub released: Tokens,
    /// Amount still locked (zero once settled).
    pub remaining: Tokens,
    /// Whether the lock was settled.
    pub settled: bool,
}

/// Errors of the escrow's methods.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum EscrowError {
    /// The anonymous principal may not call this method.
    AnonymousCaller,
    /// The caller is not allowed to call this method.
    Unauthorized { reason: String },
    /// The ledger is not whitelisted.
    UnknownLedger { ledger: Principal },
    /// A field of the argument is out of bounds.
    InvalidArgument { field: String, reason: String },
    /// Not enough free balance.
    InsufficientBalance { available: Tokens },
    /// No lock with this key.
    UnknownJob { job_key: OpKey },
    /// The lock already exists with different terms.
    KeyConflict { job_key: OpKey },
    /// The release would exceed what is locked.
    OverRelease { remaining: Tokens },
    /// The lock was settled; nothing more can be released.
    AlreadySettled { job_key: OpKey },
    /// The amount does not cover the ledger fee.
    AmountBelowFee { fee: Tokens },
    /// Another operation for this principal and ledger is in flight; try again.
    Busy,
    /// The ledger call failed; balances are as they were before the call.
    Ledger(crate::LedgerCallError),
}

/// The escrow's public event log.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum EscrowEvent {
    /// A ledger was whitelisted.
    LedgerAdded { ledger: Principal, fee: Tokens },
    /// Tokens arrived and were credited.
    Deposited {
        owner: Principal,
        ledger: Principal,
        amount: Tokens,
        block_index: Option<u128>,
    },
    /// Tokens were locked for a job.
    Locked {
        job_key: OpKey,
        buyer: Principal,
        ledger: Principal,
        amount: Tokens,
    },
    /// One interval was paid to a provider.
    Released {
        job_key: OpKey,
        seq: u64,
        provider: Principal,
        amount: Tokens,
    },
    /// A lock was settled; `refunded` went back to the buyer.
    Settled { job_key: OpKey, refunded: Tokens },
    /// Tokens left the escrow.
    Withdrawn {
        owner: Principal,
        ledger: Principal,
        amount: Tokens,
        to: Account,
        block_index: u128,
    },
}
