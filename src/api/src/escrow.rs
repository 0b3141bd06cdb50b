//! Types of the escrow canister: deposits, job locks, releases, withdrawals.
//!
//! Every balance is kept per (principal, ledger). Amounts are in the ledger's
//! smallest unit. The escrow's conservation invariant, checked by its tests
//! after every operation: for each ledger, the balance of the escrow's main
//! account equals the sum of all free balances, claimable balances,
//! remaining locks and pending pay held in locks, plus the effect of ledger
//! calls whose outcome is still being reconciled (see [`PendingOperation`]).
//!
//! Pay for a job reaches its provider in one of two ways. A release without
//! `hold` (a lease's interval) moves it from the lock to the provider's
//! claimable balance at once. A held release (verified work) moves it to
//! the provider's pending pay within the lock: `settle` makes it claimable,
//! `forfeit` (a missed deadline, a lost audit) returns it to the lock, so
//! it reaches the buyer at settle unless the job pays it out again.
//!
//! The market's fee rides on each release (`ReleaseArgs::fee`): it leaves
//! the lock with the pay and goes to the matcher's balance, the market's
//! fee account. Beside pay paid at once it is claimable at once; beside
//! held pay it is held in the lock too (the matcher's pending balance),
//! goes back to the lock with the pay on `forfeit` and is paid at
//! `settle`, so a forfeited piece of work costs its buyer no fee.

pub use crate::LedgerOutcome;
use crate::{Account, OpKey, Principal, Tokens};
use candid::{CandidType, Deserialize};
use serde::Serialize;

/// Most ledgers the escrow accepts at once.
pub const MAX_LEDGERS: usize = 32;

/// Most distinct providers one lock holds pending pay for at once; a held
/// release to one more is refused with [`EscrowError::LimitReached`].
pub const MAX_PENDING_PAYEES: usize = 32;

/// How long a settled lock (and its release records) is kept before the
/// escrow deletes it: as long as the matcher keeps the finished job, so a
/// job's lock can be read as long as the job can. Its events stay.
pub const SETTLED_LOCK_RETENTION_SECS: u64 = crate::matcher::FINISHED_JOB_RETENTION_SECS;

/// Bytes of storage one ledger fee pays for (see [`storage_fee`]).
pub const STORAGE_FEE_UNIT_BYTES: u64 = 64 * 1024;

/// Bytes a job's records take in the canisters besides its contents: the
/// job and its lock, kept until their retention ends, and its events.
pub const JOB_RECORD_BYTES: u64 = 4 * 1024;

/// What storing a job costs its buyer, in the smallest unit of the
/// paying ledger: one ledger fee per started [`STORAGE_FEE_UNIT_BYTES`] of
/// its contents and records (`stored_bytes` +
/// [`JOB_RECORD_BYTES`]), so the smallest job pays one fee and the
/// largest (1 MiB of input, 64 KiB of args) 18. Charged once with the
/// job's lock and never refunded, cancelled jobs included: it makes
/// filling the canisters' memory cost the filler, in any token, at a rate
/// far above what the memory costs in cycles. `None` on overflow.
pub fn storage_fee(ledger_fee: Tokens, stored_bytes: u64) -> Option<Tokens> {
    let units = stored_bytes
        .checked_add(JOB_RECORD_BYTES)?
        .div_ceil(STORAGE_FEE_UNIT_BYTES);
    ledger_fee.checked_mul(Tokens::from(units))
}

/// Init and upgrade argument of the escrow canister.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct EscrowInit {
    /// The matcher canister, the only caller allowed to lock, release and settle.
    pub matcher: Option<Principal>,
    /// Ledgers accepted from the start (more can be added by controllers);
    /// their fee is read from the ledger before their first use.
    pub ledgers: Vec<Principal>,
    /// The SNS governance canister that administers this canister beside
    /// its controllers, once the market is handed to an SNS: its adopted
    /// proposals call the controllers-only methods (see
    /// `canister_common::admin`).
    #[serde(default)]
    pub governance: Option<Principal>,
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

/// Arguments of `notify_deposit` (push: someone transferred to the
/// beneficiary's deposit account, see `deposit_account`).
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
    /// Amount taken from the caller's claimable balance first, then from its
    /// free balance; the recipient gets it minus the ledger fee.
    pub amount: Tokens,
    /// Where the tokens go.
    pub to: Account,
}

/// Arguments of `reconcile`: retry the in-flight ledger call of one
/// (principal, ledger), if any, with identical arguments.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ReconcileArgs {
    /// Whose operation to reconcile.
    pub owner: Principal,
    /// On which ledger.
    pub ledger: Principal,
}

/// Arguments of `resolve_operation` (controllers only): how a pending
/// ledger call ended, for a ledger whose blocks the escrow can't read.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ResolveOperationArgs {
    /// Whose operation it is.
    pub owner: Principal,
    /// On which ledger.
    pub ledger: Principal,
    /// The operation's number (see `pending_operations`).
    pub operation: u64,
    /// How it ended on the ledger.
    pub outcome: crate::LedgerOutcome,
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
    /// Bytes of the job's contents the matcher stores: with it, the lock
    /// also charges the job's [`storage_fee`] from the buyer's free
    /// balance, paid to the matcher's balance (the market's fees). `None`:
    /// no fee.
    #[serde(default)]
    pub stored_bytes: Option<u64>,
}

/// Arguments of `release` (matcher only): pay one interval, or one piece
/// of reported work, to a provider.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ReleaseArgs {
    /// The job's key.
    pub job_key: OpKey,
    /// Sequence number of the release within the job; (job_key, seq) is
    /// the idempotency key.
    pub seq: u64,
    /// Who is paid.
    pub provider: Principal,
    /// How much leaves the lock's remaining.
    pub amount: Tokens,
    /// `false`: the amount goes to the provider's claimable balance at
    /// once. `true`: it goes to the provider's pending pay within the
    /// lock, claimable at settle unless forfeited first; a lock holds
    /// pending pay for at most `MAX_PENDING_PAYEES` (32) providers at once.
    #[serde(default)]
    pub hold: bool,
    /// The market's fee on `amount`, leaving the lock beside it (the
    /// escrow checks `amount + fee <= remaining`) for the matcher's
    /// balance: claimable at once, or with `hold` held in the lock with
    /// the provider's pay (returned with it by `forfeit`, paid at
    /// `settle`). Part of the idempotency terms.
    #[serde(default)]
    pub fee: Tokens,
}

/// Arguments of `forfeit` (matcher only): a provider loses the pending pay
/// it holds in a lock.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ForfeitArgs {
    /// The job's key.
    pub job_key: OpKey,
    /// Whose pending pay goes back to the lock's remaining.
    pub provider: Principal,
}

/// Arguments of `extend_lock`: adds `amount` from the buyer's free balance
/// to an open lock, once per (`job_key`, `extension`).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ExtendLockArgs {
    pub job_key: OpKey,
    /// Numbers the lock's extensions from 1; must be the next one.
    pub extension: u32,
    pub amount: Tokens,
}

/// Arguments of `withdraw_for`: the matcher withdraws on behalf of `owner`
/// (a DAO acting by proposal through the matcher).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct WithdrawForArgs {
    pub owner: Principal,
    pub args: WithdrawArgs,
}

/// Arguments of `settle` (matcher only): pay the lock's pending pay to its
/// providers' claimable balances and return what is left to the buyer.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SettleArgs {
    /// The job's key.
    pub job_key: OpKey,
}

/// One (principal, ledger) balance.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Ledger of the balance.
    pub ledger: Principal,
    /// Spendable by the owner: may be locked for jobs or withdrawn.
    pub free: Tokens,
    /// Earned as a provider; may be withdrawn.
    pub claimable: Tokens,
    /// Locked for the owner's jobs.
    pub locked: Tokens,
    /// Earned as a provider but held in jobs' locks until they settle (it
    /// may still be forfeited); not withdrawable.
    pub pending: Tokens,
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
    /// Amount locked: the first lock plus every extension.
    pub total: Tokens,
    /// Amount paid to providers' claimable balances so far: releases
    /// without hold, and pending pay once the lock settles.
    pub released: Tokens,
    /// Amount still locked, neither released nor pending nor paid as the
    /// market's fee (zero once settled). total = released + Σ pending +
    /// fee_paid + fee_pending + remaining + refunded.
    pub remaining: Tokens,
    /// Amount returned to the buyer at settle (zero until settled).
    pub refunded: Tokens,
    /// Whether the lock was settled.
    pub settled: bool,
    /// The storage fee the buyer paid with the lock (not part of `total`).
    pub storage_fee: Tokens,
    /// Pay held for providers until the lock settles, per provider, in
    /// the order of their principals; empty once settled.
    pub pending: Vec<(Principal, Tokens)>,
    /// The market's fee paid from the lock to its fee account so far.
    #[serde(default)]
    pub fee_paid: Tokens,
    /// The market's fee on pending pay, held in the lock until it settles
    /// (or goes back with the pay on a forfeit); zero once settled.
    #[serde(default)]
    pub fee_pending: Tokens,
}

/// What a ledger call in flight does.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum PendingKind {
    /// `icrc2_transfer_from` of a pull deposit; credited when it succeeds.
    Deposit {
        /// The payer's account.
        from: Account,
    },
    /// `icrc1_transfer` sweeping a push deposit from the beneficiary's
    /// deposit subaccount to the main account; credited when it succeeds.
    Sweep {
        /// The deposit subaccount swept.
        #[serde(with = "serde_bytes")]
        subaccount: Vec<u8>,
    },
    /// `icrc1_transfer` of a withdrawal; already debited, restored if it fails.
    Withdraw {
        /// The recipient.
        to: Account,
        /// Part of the amount taken from the claimable balance (the rest came from free).
        from_claimable: Tokens,
    },
}

/// A ledger call the escrow made and whose outcome it has not settled yet
/// (at most one per principal and ledger). Retries reuse exactly these
/// arguments, so the ledger's deduplication answers a repeat with `Duplicate`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct PendingOperation {
    /// Operation number, also encoded in the memo.
    pub id: u64,
    /// Whose balance the operation changes.
    pub owner: Principal,
    /// The ledger called.
    pub ledger: Principal,
    /// Amount credited (deposit, sweep) or debited (withdraw) on success.
    pub amount: Tokens,
    /// Ledger fee named in the call (`None`: the ledger's current fee, paid by the payer).
    pub fee: Option<Tokens>,
    /// `created_at_time` of the call, in nanoseconds since the epoch.
    pub created_at_time: u64,
    /// Memo of the call.
    #[serde(with = "serde_bytes")]
    pub memo: Vec<u8>,
    /// What the call does.
    pub kind: PendingKind,
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
    /// Not enough balance.
    InsufficientBalance { available: Tokens },
    /// No lock with this key.
    UnknownJob { job_key: OpKey },
    /// The key was used before with different terms.
    KeyConflict { job_key: OpKey },
    /// The release would exceed what is locked.
    OverRelease { remaining: Tokens },
    /// The lock was settled; nothing more can be released.
    AlreadySettled { job_key: OpKey },
    /// The amount does not cover the ledger fee.
    AmountBelowFee { fee: Tokens },
    /// A bound on what the escrow keeps was reached: at most `limit` of
    /// `what`.
    LimitReached { what: String, limit: u64 },
    /// Another operation for this principal and ledger is in flight, or too
    /// many operations are in flight; try again.
    Busy,
    /// An earlier ledger call of this principal and ledger has an unknown
    /// outcome and could not be reconciled yet; call `reconcile` (or retry)
    /// later. No balance was changed by this call.
    PendingOperation { operation: Box<PendingOperation> },
    /// The ledger call failed. For `OutcomeUnknown` the operation stays
    /// pending and is reconciled by the next call; otherwise balances are as
    /// they were before the call.
    Ledger(crate::LedgerCallError),
}

impl EscrowError {
    /// An [`EscrowError::InvalidArgument`] naming `field` and why it was refused.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        EscrowError::InvalidArgument {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// How deposited tokens arrived.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum DepositSource {
    /// Pulled with `icrc2_transfer_from` from this account (the payer paid the fee).
    Pull { from: Account },
    /// Pushed to the beneficiary's deposit subaccount and swept to the main
    /// account (the sweep's fee came out of the deposit).
    Push {
        #[serde(with = "serde_bytes")]
        subaccount: Vec<u8>,
    },
}

/// The escrow's public event log: every change of a balance or a lock.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum EscrowEvent {
    /// A ledger was whitelisted, or its fee or symbol changed.
    LedgerUpdated {
        ledger: Principal,
        fee: Option<Tokens>,
        symbol: Option<String>,
    },
    /// Tokens arrived and `amount` was credited to `owner`'s free balance;
    /// `fee` is the ledger fee taken from the deposit (push only).
    Deposited {
        owner: Principal,
        ledger: Principal,
        amount: Tokens,
        fee: Tokens,
        block_index: u128,
        source: DepositSource,
    },
    /// Tokens were locked for a job.
    Locked {
        job_key: OpKey,
        buyer: Principal,
        ledger: Principal,
        amount: Tokens,
    },
    /// `amount` left a lock for a provider: to its claimable balance, or
    /// with `hold` to its pending pay within the lock.
    Released {
        job_key: OpKey,
        seq: u64,
        provider: Principal,
        amount: Tokens,
        #[serde(default)]
        hold: bool,
        /// The market's fee that left the lock with `amount` (held with it
        /// when `hold`).
        #[serde(default)]
        fee: Tokens,
    },
    /// A provider lost the pending pay it held in a lock: `amount` went
    /// back to the lock's remaining, with the market's fee held on it
    /// (`fee`).
    Forfeited {
        job_key: OpKey,
        provider: Principal,
        ledger: Principal,
        amount: Tokens,
        #[serde(default)]
        fee: Tokens,
    },
    /// At settle, the market's fee held in the lock on pending pay moved
    /// to the claimable balance of `collector` (the matcher), before
    /// `Settled`.
    FeePaid {
        job_key: OpKey,
        collector: Principal,
        ledger: Principal,
        amount: Tokens,
    },
    /// At settle, a provider's pending pay in the lock moved to its
    /// claimable balance (one event per provider, before `Settled`).
    PendingPaid {
        job_key: OpKey,
        provider: Principal,
        ledger: Principal,
        amount: Tokens,
    },
    /// A lock was settled; `refunded` went back to the buyer's free
    /// balance (after its pending pay, see `PendingPaid`).
    Settled {
        job_key: OpKey,
        buyer: Principal,
        refunded: Tokens,
    },
    /// `amount` left `owner`'s balance; `to` received `amount - fee`.
    Withdrawn {
        owner: Principal,
        ledger: Principal,
        amount: Tokens,
        fee: Tokens,
        to: Account,
        block_index: u128,
    },
    /// A withdrawal failed for sure and `amount` was put back exactly as it
    /// was taken.
    WithdrawalRefunded {
        owner: Principal,
        ledger: Principal,
        amount: Tokens,
        reason: String,
    },
    /// Extension number `extension` of a lock moved `amount` more from the
    /// buyer's free balance into it.
    LockExtended {
        job_key: OpKey,
        extension: u32,
        amount: Tokens,
    },
    /// With the lock of `job_key`, `buyer` paid `amount` from its free
    /// balance for storing `stored_bytes` of the job's contents, to the
    /// market's fees (the matcher's claimable balance).
    StorageFeePaid {
        job_key: OpKey,
        buyer: Principal,
        ledger: Principal,
        amount: Tokens,
        stored_bytes: u64,
        collector: Principal,
    },
    /// A controller ruled how pending operation `operation` ended on a
    /// ledger whose blocks the escrow can't read; the events of its effect
    /// follow.
    OperationResolved {
        owner: Principal,
        ledger: Principal,
        operation: u64,
        outcome: crate::LedgerOutcome,
        controller: Principal,
    },
}

/// The subaccount whose deposits are credited to `beneficiary`: its
/// principal's length, then its bytes, zero-padded (the convention of the
/// cycles minting canister). `None` for the empty principal, whose
/// subaccount would be the main account.
pub fn deposit_subaccount(beneficiary: Principal) -> Option<[u8; 32]> {
    let bytes = beneficiary.as_slice();
    if bytes.is_empty() {
        return None;
    }
    let mut sub = [0u8; 32];
    sub[0] = bytes.len() as u8;
    sub[1..1 + bytes.len()].copy_from_slice(bytes);
    Some(sub)
}
