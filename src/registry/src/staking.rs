//! Operations that move tokens on the ledger: `stake`, `withdraw_unbonded`
//! and `slash`.
//!
//! Each takes the provider's guard before its first `.await`, settles any
//! earlier transfer of the provider whose outcome is unknown, records the
//! new transfer in stable memory before making it, and, for outgoing
//! transfers, debits the stake before the call. A definite failure restores
//! exactly what was debited, once; an unknown outcome leaves the transfer
//! pending, and the next attempt resends identical arguments so that the
//! ledger's deduplication answers `Duplicate` if the first one went through.
//!
//! Past the ledger's 24 h deduplication window a resend is refused as
//! `TooOld` whether or not the first attempt landed. Then the registry reads
//! the ledger's ICRC-3 blocks ([`canister_common::ledger_blocks`]): found,
//! the transfer is applied as done at that block; provably absent, as
//! failed (the stake restored). Each message reads a bounded number of
//! pages and keeps its place in stable state, so a slash that finds such a
//! transfer in its way goes through once the scan ends, in this message or
//! the matcher's next retry. On a ledger without ICRC-3 (the ICP ledger has
//! only its own `query_blocks`) a controller settles the transfer with
//! [`resolve_transfer`], recorded as an event.

use crate::providers::{self, check_key, forget_if_empty, require_authenticated, require_matcher};
use crate::runtime::{CallFailure, Runtime};
use crate::state::{
    LedgerTransfer, PendingKind, PendingTransfer, SlashRecord, State, Taken, mutate_state,
    read_state,
};
use crate::subaccount::stake_subaccount;
use candid::Nat;
use canister_common::guard::{Guard, GuardError};
use canister_common::ledger_blocks::{self, BlockScan, ExpectedTransfer, ScanStep};
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use market_api::registry::{
    MAX_SLASH_REASON_LEN, RegistryError, RegistryEvent, ResolveTransferArgs, SlashArgs,
    SlashOutcome,
};
use market_api::{Account, LedgerCallError, LedgerOutcome, Principal, Tokens};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// How many times one message sends a transfer whose outcome stays unknown
/// before leaving it pending for a later message.
pub const ATTEMPTS_PER_MESSAGE: u32 = 3;

thread_local! {
    /// Providers with a ledger operation in flight. Heap only: empty between
    /// messages that finished, so nothing to keep across upgrades.
    static IN_FLIGHT: RefCell<BTreeSet<Principal>> = const { RefCell::new(BTreeSet::new()) };
}

/// Takes the per-provider guard.
pub fn guard(provider: Principal) -> Result<Guard<Principal>, RegistryError> {
    Guard::new(&IN_FLIGHT, provider).map_err(|GuardError::AlreadyProcessing| RegistryError::Busy)
}

/// The outcome of sending a transfer.
enum Sent {
    /// Executed in this block (or a duplicate of it).
    Done(u128),
    /// Certainly not executed.
    Failed(LedgerCallError),
    /// Not known.
    Unknown,
    /// A resend was refused as too old: the deduplication window passed,
    /// and only the ledger's blocks can tell.
    TooOld,
}

fn to_u128(n: Nat) -> u128 {
    u128::try_from(n.0).unwrap_or(u128::MAX)
}

fn memo(tag: &[u8; 4], op_id: u64) -> Vec<u8> {
    let mut m = tag.to_vec();
    m.extend_from_slice(&op_id.to_be_bytes());
    m
}

/// Numbers a new transfer of `provider` and records it as pending, before
/// it is sent; `transfer` builds the call around its memo (the tag of its
/// kind and the operation id).
fn record_transfer(
    s: &mut State,
    provider: Principal,
    kind: PendingKind,
    transfer: impl FnOnce(Vec<u8>) -> LedgerTransfer,
) -> PendingTransfer {
    let tag = match kind {
        PendingKind::Stake { .. } => b"STAK",
        PendingKind::Withdraw { .. } => b"WDRW",
        PendingKind::Slash { .. } => b"SLSH",
    };
    let op_id = s.next_op_id();
    let pending = PendingTransfer {
        provider,
        op_id,
        kind,
        transfer: transfer(memo(tag, op_id)),
    };
    s.put_pending(pending.clone());
    pending
}

fn failed(message: String) -> Sent {
    Sent::Failed(LedgerCallError::Rejected { message })
}

async fn send(rt: &impl Runtime, ledger: Principal, t: &LedgerTransfer, retry: bool) -> Sent {
    let answer = match t.from {
        Some(from) => rt
            .icrc2_transfer_from(
                ledger,
                TransferFromArgs {
                    spender_subaccount: None,
                    from,
                    to: t.to,
                    amount: Nat::from(t.amount),
                    fee: t.fee.map(Nat::from),
                    memo: Some(Memo::from(t.memo.clone())),
                    created_at_time: Some(t.created_at_time),
                },
            )
            .await
            .map(|r| match r {
                Ok(block) => Sent::Done(to_u128(block)),
                Err(TransferFromError::Duplicate { duplicate_of }) => {
                    Sent::Done(to_u128(duplicate_of))
                }
                Err(
                    e @ (TransferFromError::InsufficientFunds { .. }
                    | TransferFromError::InsufficientAllowance { .. }
                    | TransferFromError::BadBurn { .. }),
                ) => failed(format!("{e:?}")),
                Err(TransferFromError::TooOld) if retry => Sent::TooOld,
                Err(_) if retry => Sent::Unknown,
                Err(e) => failed(format!("{e:?}")),
            }),
        None => rt
            .icrc1_transfer(
                ledger,
                TransferArg {
                    from_subaccount: t.from_subaccount,
                    to: t.to,
                    fee: t.fee.map(Nat::from),
                    created_at_time: Some(t.created_at_time),
                    memo: Some(Memo::from(t.memo.clone())),
                    amount: Nat::from(t.amount),
                },
            )
            .await
            .map(|r| match r {
                Ok(block) => Sent::Done(to_u128(block)),
                Err(TransferError::Duplicate { duplicate_of }) => Sent::Done(to_u128(duplicate_of)),
                Err(
                    e @ (TransferError::InsufficientFunds { .. } | TransferError::BadBurn { .. }),
                ) => failed(format!("{e:?}")),
                Err(TransferError::TooOld) if retry => Sent::TooOld,
                Err(_) if retry => Sent::Unknown,
                Err(e) => failed(format!("{e:?}")),
            }),
    };
    match answer {
        Ok(sent) => sent,
        Err(CallFailure::Unknown { .. }) => Sent::Unknown,
        // The call did not reach the ledger this time, but an earlier attempt may have.
        Err(CallFailure::Rejected { .. }) if retry => Sent::Unknown,
        Err(f @ CallFailure::Rejected { .. }) => Sent::Failed(f.into()),
    }
}

/// Applies a confirmed transfer; returns its block.
fn apply_success(s: &mut State, now: u64, pending: &PendingTransfer, block: u128) {
    let id = pending.provider;
    s.remove_pending(&id);
    let mut p = s
        .provider(&id)
        .expect("BUG: a pending transfer's provider is kept until it settles");
    match &pending.kind {
        PendingKind::Stake { amount } => {
            p.stake.free = p
                .stake
                .free
                .checked_add(*amount)
                .expect("BUG: stake exceeds u128");
            s.put_provider(p);
            s.record(
                now,
                RegistryEvent::Staked {
                    provider: id,
                    amount: *amount,
                    block_index: block,
                },
            );
        }
        PendingKind::Withdraw { entries } => {
            let amount = entries
                .iter()
                .fold(0u128, |a, e| a.saturating_add(e.amount));
            s.record(
                now,
                RegistryEvent::Withdrawn {
                    provider: id,
                    amount,
                    block_index: block,
                },
            );
        }
        PendingKind::Slash { key, taken, reason } => {
            let slashed = taken.total();
            p.slashed_total = p.slashed_total.saturating_add(slashed);
            p.record.slashes = p.record.slashes.saturating_add(1);
            p.record.slashed = p.record.slashed.saturating_add(slashed);
            let jail = !p.jailed && p.active_stake() < s.config().min_stake;
            if jail {
                p.jailed = true;
            }
            let jailed = p.jailed;
            s.put_provider(p);
            s.count_slash(slashed);
            let mut record = s
                .slash_record(key)
                .expect("BUG: a pending slash has its record");
            record.outcome = Some(SlashOutcome {
                slashed,
                paid_out: pending.transfer.amount,
                block_index: Some(block),
                jailed,
            });
            let beneficiary = record.beneficiary;
            s.put_slash_record(key, record);
            s.record(
                now,
                RegistryEvent::Slashed {
                    provider: id,
                    amount: slashed,
                    paid_out: pending.transfer.amount,
                    block_index: Some(block),
                    beneficiary,
                    reason: reason.clone(),
                    key: key.clone(),
                },
            );
            if jail {
                s.record(
                    now,
                    RegistryEvent::JailChanged {
                        provider: id,
                        jailed: true,
                    },
                );
            }
        }
    }
    forget_if_empty(s, &id);
}

/// Undoes the debit of a transfer that certainly did not happen.
fn apply_failure(s: &mut State, now: u64, pending: &PendingTransfer, error: &LedgerCallError) {
    let id = pending.provider;
    s.remove_pending(&id);
    let mut p = s
        .provider(&id)
        .expect("BUG: a pending transfer's provider is kept until it settles");
    let restored = match &pending.kind {
        PendingKind::Stake { .. } => 0,
        PendingKind::Withdraw { entries } => {
            providers::restore_unbonding(&mut p.stake, entries);
            entries
                .iter()
                .fold(0u128, |a, e| a.saturating_add(e.amount))
        }
        PendingKind::Slash { key, taken, .. } => {
            p.stake.bonded = p
                .stake
                .bonded
                .checked_add(taken.bonded)
                .expect("BUG: stake exceeds u128");
            p.stake.free = p
                .stake
                .free
                .checked_add(taken.free)
                .expect("BUG: stake exceeds u128");
            providers::restore_unbonding(&mut p.stake, &taken.unbonding);
            s.remove_slash_record(key);
            taken.total()
        }
    };
    s.put_provider(p);
    if restored > 0 {
        s.record(
            now,
            RegistryEvent::Restored {
                provider: id,
                amount: restored,
                reason: format!("{error:?}"),
            },
        );
    }
}

/// Sends `pending` (already recorded) until its outcome is known or the
/// attempts of this message are used up, and applies the outcome; past the
/// deduplication window, looks it up in the ledger's blocks instead.
async fn drive(
    rt: &impl Runtime,
    pending: PendingTransfer,
    first_attempt_done: bool,
) -> Result<u128, RegistryError> {
    let ledger = read_state(|s| s.config().ledger);
    let mut retry = first_attempt_done;
    // Once the window has passed, a resend can only answer `TooOld`.
    let mut expired = retry
        && (ledger_blocks::past_dedup_window(pending.transfer.created_at_time, rt.now_ns())
            || read_state(|s| s.block_scan(&pending.provider).is_some()));
    let mut attempts = 0;
    while !expired && attempts < ATTEMPTS_PER_MESSAGE {
        attempts += 1;
        match send(rt, ledger, &pending.transfer, retry).await {
            Sent::Done(block) => {
                let now = rt.now_ns();
                mutate_state(|s| apply_success(s, now, &pending, block));
                return Ok(block);
            }
            Sent::Failed(e) => {
                // On a retry only answers that prove the transfer was never
                // executed get here (see `send`): an executed one would have
                // been answered with `Duplicate`.
                let now = rt.now_ns();
                mutate_state(|s| apply_failure(s, now, &pending, &e));
                return Err(RegistryError::Ledger(e));
            }
            Sent::Unknown => retry = true,
            Sent::TooOld => expired = true,
        }
    }
    if !expired {
        return Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown));
    }
    look_up(rt, ledger, &pending).await
}

/// The transfer `pending` makes, as its block would show it.
fn expected_transfer(registry: Principal, pending: &PendingTransfer) -> ExpectedTransfer {
    let t = &pending.transfer;
    ExpectedTransfer {
        from: pending.from_account(registry),
        to: t.to,
        spender: t.from.map(|_| Account {
            owner: registry,
            subaccount: None,
        }),
        amount: t.amount,
        fee: t.fee,
        memo: t.memo.clone(),
        created_at_time: t.created_at_time,
    }
}

/// Looks `pending` (past the deduplication window) up in the ledger's
/// blocks, for at most one message's pages, and applies what they show.
async fn look_up(
    rt: &impl Runtime,
    ledger: Principal,
    pending: &PendingTransfer,
) -> Result<u128, RegistryError> {
    let id = pending.provider;
    let scan = read_state(|s| s.block_scan(&id)).unwrap_or_default();
    let expected = expected_transfer(rt.self_id(), pending);
    let step = ledger_blocks::scan(rt, ledger, &expected, scan).await;
    let now = rt.now_ns();
    mutate_state(|s| match step {
        ScanStep::Found(block) => {
            let block = u128::from(block);
            apply_success(s, now, pending, block);
            Ok(block)
        }
        ScanStep::Absent => {
            let e = LedgerCallError::Rejected {
                message: format!(
                    "transfer {} is in no block of the ledger, and past its deduplication window it never will be",
                    pending.op_id
                ),
            };
            apply_failure(s, now, pending, &e);
            Err(RegistryError::Ledger(e))
        }
        ScanStep::Unfinished(scan) | ScanStep::Failed { scan, .. } => {
            s.put_block_scan(&id, scan);
            Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
        }
        ScanStep::Unsupported => {
            let scan = BlockScan {
                unsupported: true,
                ..BlockScan::default()
            };
            s.put_block_scan(&id, scan);
            Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
        }
    })
}

/// `resolve_transfer` (controllers only): settles the provider's pending
/// transfer by the controllers' ruling of how it ended, for a ledger whose
/// blocks the registry can't read (the ICP ledger). Only past the
/// transfer's deduplication window, when nothing can change its outcome;
/// the ruling is recorded as an event, then applied like a ledger's answer.
pub async fn resolve_transfer(
    rt: &impl Runtime,
    caller: Principal,
    caller_is_controller: bool,
    args: ResolveTransferArgs,
) -> Result<(), RegistryError> {
    if !caller_is_controller {
        return Err(RegistryError::Unauthorized {
            reason: "only controllers or the SNS governance may resolve a transfer".to_string(),
        });
    }
    let _guard = guard(args.provider)?;
    let pending = read_state(|s| s.pending(&args.provider))
        .filter(|p| p.op_id == args.operation)
        .ok_or_else(|| RegistryError::InvalidArgument {
            field: "operation".to_string(),
            reason: "no such transfer is pending for this provider".to_string(),
        })?;
    let now = rt.now_ns();
    if !ledger_blocks::past_dedup_window(pending.transfer.created_at_time, now) {
        return Err(RegistryError::InvalidArgument {
            field: "operation".to_string(),
            reason: "still within the ledger's deduplication window: settle it".to_string(),
        });
    }
    mutate_state(|s| {
        s.record(
            now,
            RegistryEvent::TransferResolved {
                provider: args.provider,
                operation: args.operation,
                outcome: args.outcome.clone(),
                controller: caller,
            },
        );
        match args.outcome {
            LedgerOutcome::Landed { block_index } => {
                apply_success(s, now, &pending, block_index);
            }
            LedgerOutcome::NotLanded => {
                let e = LedgerCallError::Rejected {
                    message: format!(
                        "transfer {} did not land, by the controllers' ruling",
                        pending.op_id
                    ),
                };
                apply_failure(s, now, &pending, &e);
            }
        }
    });
    Ok(())
}

/// Settles the provider's earlier transfer, if one is pending. Call with the
/// provider's guard held.
pub async fn settle_pending(rt: &impl Runtime, provider: Principal) -> Result<(), RegistryError> {
    match read_state(|s| s.pending(&provider)) {
        None => Ok(()),
        Some(pending) => match drive(rt, pending, true).await {
            Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown)) => {
                Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
            }
            _ => Ok(()),
        },
    }
}

/// `stake`: pulls `amount` from the caller's ledger account (approved for
/// `amount` plus the fee) into its stake account; credits it once the
/// ledger confirms. Returns the ledger block.
pub async fn stake(
    rt: &impl Runtime,
    caller: Principal,
    amount: Tokens,
) -> Result<u128, RegistryError> {
    require_authenticated(&caller)?;
    if amount == 0 {
        return Err(RegistryError::InvalidArgument {
            field: "amount".to_string(),
            reason: "must be more than zero".to_string(),
        });
    }
    let _guard = guard(caller)?;
    settle(rt, caller).await?;
    let now = rt.now_ns();
    let registry = rt.self_id();
    let pending = mutate_state(|s| {
        match s.provider(&caller) {
            Some(p) if !p.deregistered => {}
            _ => return Err(RegistryError::NotRegistered),
        }
        let kind = PendingKind::Stake { amount };
        Ok(record_transfer(s, caller, kind, |memo| LedgerTransfer {
            from: Some(Account {
                owner: caller,
                subaccount: None,
            }),
            from_subaccount: None,
            to: Account {
                owner: registry,
                subaccount: Some(stake_subaccount(&caller)),
            },
            amount,
            fee: None,
            memo,
            created_at_time: now,
        }))
    })?;
    drive(rt, pending, false).await
}

async fn ledger_fee(rt: &impl Runtime) -> Result<Tokens, RegistryError> {
    let ledger = read_state(|s| s.config().ledger);
    let fee = rt
        .fee(ledger)
        .await
        .map_err(|f| RegistryError::Ledger(f.into()))?;
    Ok(to_u128(fee))
}

/// `withdraw_unbonded`: sends every unbonding entry whose period has passed
/// back to the caller's default account, minus the ledger fee. Returns the block.
pub async fn withdraw_unbonded(
    rt: &impl Runtime,
    caller: Principal,
) -> Result<u128, RegistryError> {
    require_authenticated(&caller)?;
    let _guard = guard(caller)?;
    settle(rt, caller).await?;
    let ready = |s: &State, now: u64| -> Result<Tokens, RegistryError> {
        let p = s.provider(&caller).ok_or(RegistryError::NotRegistered)?;
        let total = p
            .stake
            .unbonding
            .iter()
            .filter(|e| e.release_at_ns <= now)
            .fold(0u128, |a, e| a.saturating_add(e.amount));
        if total == 0 {
            return Err(RegistryError::NothingToWithdraw);
        }
        Ok(total)
    };
    let now = rt.now_ns();
    read_state(|s| ready(s, now))?;
    let fee = ledger_fee(rt).await?;
    let now = rt.now_ns();
    let pending = mutate_state(|s| {
        let total = ready(s, now)?;
        if total <= fee {
            return Err(RegistryError::BelowFee { fee });
        }
        let mut p = s.provider(&caller).ok_or(RegistryError::NotRegistered)?;
        let (entries, kept) = p
            .stake
            .unbonding
            .drain(..)
            .partition(|e| e.release_at_ns <= now);
        p.stake.unbonding = kept;
        s.put_provider(p);
        let kind = PendingKind::Withdraw { entries };
        Ok(record_transfer(s, caller, kind, |memo| LedgerTransfer {
            from: None,
            from_subaccount: Some(stake_subaccount(&caller)),
            to: Account {
                owner: caller,
                subaccount: None,
            },
            amount: total - fee,
            fee: Some(fee),
            memo,
            created_at_time: now,
        }))
    })?;
    drive(rt, pending, false).await
}

/// Takes up to `amount` from bonded, then free, then unbonding stake (the
/// entries released last first).
fn take_stake(stake: &mut market_api::registry::Stake, amount: Tokens) -> Taken {
    let mut left = amount;
    let mut taken = Taken {
        bonded: stake.bonded.min(left),
        ..Taken::default()
    };
    stake.bonded -= taken.bonded;
    left -= taken.bonded;
    taken.free = stake.free.min(left);
    stake.free -= taken.free;
    left -= taken.free;
    for e in stake.unbonding.iter_mut().rev() {
        if left == 0 {
            break;
        }
        let t = e.amount.min(left);
        e.amount -= t;
        left -= t;
        taken.unbonding.push(market_api::registry::Unbonding {
            amount: t,
            release_at_ns: e.release_at_ns,
        });
    }
    stake.unbonding.retain(|e| e.amount > 0);
    taken
}

fn slash_outcome_or_conflict(
    s: &State,
    args: &SlashArgs,
) -> Result<Option<SlashOutcome>, RegistryError> {
    match s.slash_record(&args.key) {
        None => Ok(None),
        Some(r)
            if r.provider != args.provider
                || r.amount != args.amount
                || r.beneficiary != args.beneficiary =>
        {
            Err(RegistryError::KeyConflict {
                key: args.key.clone(),
            })
        }
        Some(r) => Ok(r.outcome),
    }
}

/// `slash` (matcher only): takes up to `amount` of the provider's stake
/// (bonded, then free, then unbonding), pays it minus the ledger fee to the
/// beneficiary, and jails the provider if its stake falls below the
/// minimum. A repeat with the same key returns the first outcome.
pub async fn slash(
    rt: &impl Runtime,
    caller: Principal,
    args: SlashArgs,
) -> Result<SlashOutcome, RegistryError> {
    read_state(|s| require_matcher(s, &caller))?;
    check_key(&args.key)?;
    if args.reason.len() > MAX_SLASH_REASON_LEN {
        return Err(RegistryError::InvalidArgument {
            field: "reason".to_string(),
            reason: format!("at most {MAX_SLASH_REASON_LEN} bytes"),
        });
    }
    if args.amount == 0 {
        return Err(RegistryError::InvalidArgument {
            field: "amount".to_string(),
            reason: "must be more than zero".to_string(),
        });
    }
    if let Some(outcome) = read_state(|s| slash_outcome_or_conflict(s, &args))? {
        return Ok(outcome);
    }
    let Ok(_guard) = guard(args.provider) else {
        // The provider's own call holds its key, perhaps on purpose to
        // dodge this: the slash is owed, and the next call that takes the
        // key (the provider's own, or this one retried) makes it first.
        mutate_state(|s| s.owe_slash(args));
        return Err(RegistryError::Busy);
    };
    slash_held(rt, args).await
}

/// Settles the provider's pending transfer, then makes the slashes it owes.
/// Call with the provider's guard held, before any operation of its own.
pub async fn settle(rt: &impl Runtime, provider: Principal) -> Result<(), RegistryError> {
    settle_pending(rt, provider).await?;
    for args in read_state(|s| s.owed_slashes(&provider)) {
        // Made, or refused for good (the matcher's retry hears why), unless
        // still in flight: then the provider's own transfer must wait.
        if let Err(e @ RegistryError::Ledger(LedgerCallError::OutcomeUnknown)) =
            slash_held(rt, args).await
        {
            return Err(e);
        }
    }
    Ok(())
}

/// The slash, with the provider's guard held.
async fn slash_held(rt: &impl Runtime, args: SlashArgs) -> Result<SlashOutcome, RegistryError> {
    settle_pending(rt, args.provider).await?;
    mutate_state(|s| s.forget_owed_slash(&args.provider, &args.key));
    if let Some(outcome) = read_state(|s| slash_outcome_or_conflict(s, &args))? {
        return Ok(outcome);
    }
    if read_state(|s| s.provider(&args.provider)).is_none() {
        return Err(RegistryError::NotRegistered);
    }
    let fee = ledger_fee(rt).await?;
    if args.amount <= fee {
        return Err(RegistryError::BelowFee { fee });
    }
    let now = rt.now_ns();
    let slash_record = |outcome| SlashRecord {
        provider: args.provider,
        amount: args.amount,
        beneficiary: args.beneficiary,
        outcome,
    };
    let started = mutate_state(|s| {
        if let Some(outcome) = slash_outcome_or_conflict(s, &args)? {
            return Ok(Err(outcome));
        }
        let mut p = s
            .provider(&args.provider)
            .ok_or(RegistryError::NotRegistered)?;
        let available = p.total_stake().min(args.amount);
        if available <= fee {
            // Too little left to move on the ledger: nothing is taken, but
            // the provider is jailed if below the minimum.
            let jail = !p.jailed && p.active_stake() < s.config().min_stake;
            if jail {
                p.jailed = true;
                s.put_provider(p.clone());
                s.record(
                    now,
                    RegistryEvent::JailChanged {
                        provider: p.id,
                        jailed: true,
                    },
                );
            }
            let outcome = SlashOutcome {
                slashed: 0,
                paid_out: 0,
                block_index: None,
                jailed: p.jailed,
            };
            s.put_slash_record(&args.key, slash_record(Some(outcome.clone())));
            return Ok(Err(outcome));
        }
        let taken = take_stake(&mut p.stake, available);
        s.put_provider(p);
        s.put_slash_record(&args.key, slash_record(None));
        let kind = PendingKind::Slash {
            key: args.key.clone(),
            taken,
            reason: args.reason.clone(),
        };
        Ok(Ok(record_transfer(s, args.provider, kind, |memo| {
            LedgerTransfer {
                from: None,
                from_subaccount: Some(stake_subaccount(&args.provider)),
                to: args.beneficiary,
                amount: available - fee,
                fee: Some(fee),
                memo,
                created_at_time: now,
            }
        })))
    })?;
    let pending = match started {
        Ok(pending) => pending,
        Err(outcome) => return Ok(outcome),
    };
    drive(rt, pending, false).await?;
    read_state(|s| s.slash_record(&args.key))
        .and_then(|r| r.outcome)
        .ok_or(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
}
