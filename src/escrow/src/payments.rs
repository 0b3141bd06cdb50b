//! Value that crosses the ledger: pull deposits, push deposits (transfer,
//! then notify), withdrawals, and the reconciliation of ledger calls whose
//! outcome is unknown.
//!
//! Every ledger call follows one journal discipline:
//! 1. under the (principal, ledger) guard, any earlier pending call of that
//!    key is retried first with identical arguments;
//! 2. the new call is recorded as a [`PendingOperation`] in stable state
//!    (a withdrawal also debits the balance in the same step) before the
//!    `.await`, with a fresh memo and `created_at_time`;
//! 3. a definite answer removes the pending record and applies the outcome
//!    in one step (credit, or put a withdrawal back), so it happens once;
//! 4. an unknown outcome keeps the record; the next call for the key (or
//!    `reconcile`) repeats the identical call, and the ledger's
//!    deduplication answers `Duplicate { duplicate_of }` if the first one
//!    went through, which counts as success;
//! 5. past the ledger's deduplication window (24 h) a repeat can no longer
//!    tell (the ledger answers `TooOld` either way), so the escrow reads the
//!    ledger's ICRC-3 block log instead ([`canister_common::ledger_blocks`]):
//!    the call's memo, `created_at_time`, accounts and amount identify its
//!    block exactly. Found: booked as done at that block. Provably absent:
//!    booked as failed (a withdrawal's debit is put back) and the key is
//!    free again. The scan reads a bounded number of pages per message and
//!    keeps its place in stable state, so each `reconcile` (or the owner's
//!    next call) holds the key for one bounded message only;
//! 6. on a ledger that does not serve ICRC-3 blocks (the ICP ledger has
//!    only its own `query_blocks`), a controller settles such an operation
//!    with [`resolve_operation`], after reading the ledger itself; the
//!    ruling is recorded as an event before its effects.
//!
//! Fees: a pull deposit's fee is paid by the payer on top of the amount; a
//! push deposit's sweep fee comes out of the deposit (the beneficiary is
//! credited `balance − fee`); a withdrawal's fee comes out of the amount (the
//! recipient gets `amount − fee`). So the escrow's main account never pays a
//! fee of its own, and for each ledger, with no call pending:
//! `balance(main account) == Σ free + Σ claimable + Σ remaining locks +
//! Σ pending pay in locks`.
//! Deposit subaccounts are not counted: what sits there is not credited yet.

use crate::runtime::{CallFailure, Runtime};
use crate::state::{State, mutate_state, read_state};
use canister_common::guard::Guard;
use canister_common::ledger_blocks::{self, BlockScan, ExpectedTransfer, ScanStep};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use market_api::escrow::{
    DepositArgs, DepositSource, EscrowError, EscrowEvent, LedgerInfo, LedgerOutcome, MAX_LEDGERS,
    NotifyDepositArgs, PendingKind, PendingOperation, ReconcileArgs, ResolveOperationArgs,
    WithdrawArgs, WithdrawForArgs,
};
use market_api::{LedgerCallError, Principal, Tokens};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Memo prefix of pull deposits (`icrc2_transfer_from`).
pub const MEMO_DEPOSIT: &[u8; 4] = b"EDEP";
/// Memo prefix of push-deposit sweeps.
pub const MEMO_SWEEP: &[u8; 4] = b"ESWP";
/// Memo prefix of withdrawals.
pub const MEMO_WITHDRAW: &[u8; 4] = b"EWDR";

thread_local! {
    /// (principal, ledger) keys with an operation in flight (heap only:
    /// after an upgrade no message is in flight).
    static IN_FLIGHT: RefCell<BTreeSet<(Principal, Principal)>> = const { RefCell::new(BTreeSet::new()) };
}

fn guard(
    owner: Principal,
    ledger: Principal,
) -> Result<Guard<(Principal, Principal)>, EscrowError> {
    Guard::new(&IN_FLIGHT, (owner, ledger)).map_err(|_| EscrowError::Busy)
}

/// The memo of operation `id`: a 4-byte kind prefix and the id, big-endian.
pub fn memo(prefix: &[u8; 4], id: u64) -> Vec<u8> {
    let mut m = prefix.to_vec();
    m.extend_from_slice(&id.to_be_bytes());
    m
}

/// The escrow's main account on every ledger: all credited tokens are here.
pub fn main_account(escrow: Principal) -> Account {
    Account {
        owner: escrow,
        subaccount: None,
    }
}

pub use market_api::escrow::deposit_subaccount;

/// The account to transfer to so that `beneficiary` is credited by `notify_deposit`.
pub fn deposit_account(escrow: Principal, beneficiary: Principal) -> Result<Account, EscrowError> {
    let sub = deposit_subaccount(beneficiary).ok_or_else(|| {
        EscrowError::invalid("beneficiary", "the empty principal has no deposit account")
    })?;
    Ok(Account {
        owner: escrow,
        subaccount: Some(sub),
    })
}

fn non_anonymous(p: Principal) -> Result<(), EscrowError> {
    if p == Principal::anonymous() {
        return Err(EscrowError::AnonymousCaller);
    }
    Ok(())
}

fn known_ledger(ledger: Principal) -> Result<(), EscrowError> {
    if read_state(|s| s.ledger(&ledger).is_none()) {
        return Err(EscrowError::UnknownLedger { ledger });
    }
    Ok(())
}

fn positive(amount: Tokens) -> Result<(), EscrowError> {
    if amount == 0 {
        return Err(EscrowError::invalid("amount", "must be positive"));
    }
    Ok(())
}

/// The ledger's fee, read from the ledger the first time it is needed.
async fn ensure_fee<R: Runtime>(rt: &R, ledger: Principal) -> Result<Tokens, EscrowError> {
    if let Some(fee) = read_state(|s| s.ledger(&ledger).and_then(|l| l.fee)) {
        return Ok(fee);
    }
    let fee = rt
        .icrc1_fee(ledger)
        .await
        .map_err(|e| EscrowError::Ledger(e.into()))?;
    mutate_state(|s| s.set_ledger_info(ledger, Some(fee), None, rt.now_ns()));
    Ok(fee)
}

/// A ledger's answer to a value-moving call, as far as the escrow's books go.
enum Outcome {
    /// The transfer is in the ledger, at this block.
    Done(u128),
    /// The transfer did not and will not happen.
    Failed(LedgerCallError),
    /// The transfer may or may not be in the ledger.
    Unknown(LedgerCallError),
}

/// What a ledger's answer revealed beside the outcome.
#[derive(Default)]
struct Seen {
    /// The ledger's fee, from a `BadFee`.
    fee: Option<Tokens>,
    /// A repeat was refused as `TooOld`: the deduplication window passed.
    too_old: bool,
}

/// What a transfer error means. On a retry, `BadFee` is not definite: the
/// fee is checked before deduplication, so a changed fee hides whether the
/// first attempt went through.
fn classify_transfer_error(err: TransferError, is_retry: bool, seen: &mut Seen) -> Outcome {
    let rejected = LedgerCallError::Rejected {
        message: format!("{err:?}"),
    };
    match err {
        TransferError::Duplicate { duplicate_of } => {
            match crate::runtime::nat_to_tokens(&duplicate_of) {
                Some(block) => Outcome::Done(block),
                None => Outcome::Unknown(rejected),
            }
        }
        TransferError::BadFee { expected_fee } => {
            seen.fee = crate::runtime::nat_to_tokens(&expected_fee);
            if is_retry {
                Outcome::Unknown(rejected)
            } else {
                Outcome::Failed(rejected)
            }
        }
        // Past the deduplication window a repeat can't tell whether the
        // first attempt went through: the ledger's blocks will.
        TransferError::TooOld if is_retry => {
            seen.too_old = true;
            Outcome::Unknown(rejected)
        }
        _ => Outcome::Failed(rejected),
    }
}

fn transfer_from_error_as_transfer(
    err: TransferFromError,
) -> Result<TransferError, TransferFromError> {
    Ok(match err {
        TransferFromError::BadFee { expected_fee } => TransferError::BadFee { expected_fee },
        TransferFromError::BadBurn { min_burn_amount } => {
            TransferError::BadBurn { min_burn_amount }
        }
        TransferFromError::InsufficientFunds { balance } => {
            TransferError::InsufficientFunds { balance }
        }
        TransferFromError::TooOld => TransferError::TooOld,
        TransferFromError::CreatedInFuture { ledger_time } => {
            TransferError::CreatedInFuture { ledger_time }
        }
        TransferFromError::Duplicate { duplicate_of } => TransferError::Duplicate { duplicate_of },
        TransferFromError::TemporarilyUnavailable => TransferError::TemporarilyUnavailable,
        TransferFromError::GenericError {
            error_code,
            message,
        } => TransferError::GenericError {
            error_code,
            message,
        },
        other @ TransferFromError::InsufficientAllowance { .. } => return Err(other),
    })
}

/// What a call's result means. A rejected call had no effect, but on a
/// retry that says nothing about the first attempt: only an answer of the
/// ledger settles a pending operation.
fn classify_call<E>(
    reply: Result<Result<candid::Nat, E>, CallFailure>,
    is_retry: bool,
    classify_err: impl FnOnce(E) -> Outcome,
) -> Outcome {
    match reply {
        Ok(Ok(block)) => match crate::runtime::nat_to_tokens(&block) {
            Some(b) => Outcome::Done(b),
            None => Outcome::Unknown(LedgerCallError::Rejected {
                message: format!("block index {block} does not fit 128 bits"),
            }),
        },
        Ok(Err(e)) => classify_err(e),
        Err(f @ CallFailure::Unknown { .. }) => Outcome::Unknown(f.into()),
        Err(f @ CallFailure::Rejected { .. }) if is_retry => Outcome::Unknown(f.into()),
        Err(f @ CallFailure::Rejected { .. }) => Outcome::Failed(f.into()),
    }
}

/// The transfer `op` makes, as its block would show it.
fn expected_transfer(escrow: Principal, op: &PendingOperation) -> ExpectedTransfer {
    let main = main_account(escrow);
    let (from, to, spender, amount) = match &op.kind {
        PendingKind::Deposit { from } => (*from, main, Some(main), op.amount),
        PendingKind::Sweep { subaccount } => (
            Account {
                owner: escrow,
                subaccount: Some(subaccount_array(subaccount)),
            },
            main,
            None,
            op.amount,
        ),
        PendingKind::Withdraw { to, .. } => (main, *to, None, withdrawn_amount(op)),
    };
    ExpectedTransfer {
        from,
        to,
        spender,
        amount,
        fee: op.fee,
        memo: op.memo.clone(),
        created_at_time: op.created_at_time,
    }
}

/// What the recipient of withdrawal `op` receives: its amount minus the fee.
fn withdrawn_amount(op: &PendingOperation) -> Tokens {
    let fee = op
        .fee
        .unwrap_or_else(|| panic!("BUG: withdrawal without a fee"));
    op.amount
        .checked_sub(fee)
        .unwrap_or_else(|| panic!("BUG: withdrawal below its fee"))
}

/// Makes (or repeats, with identical arguments) the ledger call of `op` and
/// books its outcome. Returns the amount credited or debited and the block;
/// on an unknown outcome, also whether a repeat was refused as too old.
async fn run_pending<R: Runtime>(
    rt: &R,
    op: PendingOperation,
    is_retry: bool,
) -> (Result<(Tokens, u128), EscrowError>, bool) {
    let escrow = rt.self_id();
    let memo = Some(Memo::from(op.memo.clone()));
    let created_at_time = Some(op.created_at_time);
    let mut seen = Seen::default();
    let outcome = match &op.kind {
        PendingKind::Deposit { from } => {
            let arg = TransferFromArgs {
                spender_subaccount: None,
                from: *from,
                to: main_account(escrow),
                amount: op.amount.into(),
                fee: op.fee.map(Into::into),
                memo,
                created_at_time,
            };
            let reply = rt.icrc2_transfer_from(op.ledger, arg).await;
            classify_call(reply, is_retry, |e| {
                match transfer_from_error_as_transfer(e) {
                    Ok(e) => classify_transfer_error(e, is_retry, &mut seen),
                    Err(e) => Outcome::Failed(LedgerCallError::Rejected {
                        message: format!("{e:?}"),
                    }),
                }
            })
        }
        PendingKind::Sweep { .. } | PendingKind::Withdraw { .. } => {
            let expected = expected_transfer(escrow, &op);
            let arg = TransferArg {
                from_subaccount: expected.from.subaccount,
                to: expected.to,
                fee: op.fee.map(Into::into),
                created_at_time,
                memo,
                amount: expected.amount.into(),
            };
            let reply = rt.icrc1_transfer(op.ledger, arg).await;
            classify_call(reply, is_retry, |e| {
                classify_transfer_error(e, is_retry, &mut seen)
            })
        }
    };
    let now = rt.now_ns();
    let booked = mutate_state(|s| {
        if let Some(fee) = seen.fee {
            s.set_ledger_info(op.ledger, Some(fee), None, now);
        }
        book(s, &op, outcome, now)
    });
    (booked, seen.too_old)
}

/// Books the outcome of `op`: a known one removes the pending record and
/// applies it (credit; or a withdrawal's event, or its debit put back); an
/// unknown one leaves it pending.
fn book(
    s: &mut State,
    op: &PendingOperation,
    outcome: Outcome,
    now: u64,
) -> Result<(Tokens, u128), EscrowError> {
    match outcome {
        Outcome::Unknown(e) => Err(EscrowError::Ledger(e)),
        Outcome::Done(block) => {
            take_pending(s, op);
            match &op.kind {
                PendingKind::Deposit { .. } | PendingKind::Sweep { .. } => {
                    book_deposit(s, op, now, block);
                }
                PendingKind::Withdraw { to, .. } => {
                    s.events.append(
                        now,
                        EscrowEvent::Withdrawn {
                            owner: op.owner,
                            ledger: op.ledger,
                            amount: op.amount,
                            fee: op.fee.unwrap_or(0),
                            to: *to,
                            block_index: block,
                        },
                    );
                }
            }
            Ok((op.amount, block))
        }
        Outcome::Failed(e) => {
            take_pending(s, op);
            if let PendingKind::Withdraw { from_claimable, .. } = &op.kind {
                s.update_balance(op.owner, op.ledger, |b| {
                    b.credit_claimable(*from_claimable);
                    b.credit_free(op.amount - from_claimable);
                });
                s.events.append(
                    now,
                    EscrowEvent::WithdrawalRefunded {
                        owner: op.owner,
                        ledger: op.ledger,
                        amount: op.amount,
                        reason: format!("{e:?}"),
                    },
                );
            }
            Err(EscrowError::Ledger(e))
        }
    }
}

/// Looks `op` (past the deduplication window) up in its ledger's blocks,
/// for at most one message's pages, and books what they show.
async fn look_up<R: Runtime>(rt: &R, op: &PendingOperation) {
    let key = (op.owner, op.ledger);
    let scan = read_state(|s| s.block_scan(key)).unwrap_or_default();
    let expected = expected_transfer(rt.self_id(), op);
    let step = ledger_blocks::scan(rt, op.ledger, &expected, scan).await;
    let now = rt.now_ns();
    mutate_state(|s| {
        let outcome = match step {
            ScanStep::Found(block) => Outcome::Done(u128::from(block)),
            ScanStep::Absent => Outcome::Failed(LedgerCallError::Rejected {
                message: format!(
                    "operation {} is in no block of the ledger, and past its deduplication window it never will be",
                    op.id
                ),
            }),
            ScanStep::Unfinished(scan) | ScanStep::Failed { scan, .. } => {
                s.put_block_scan(key, scan);
                return;
            }
            ScanStep::Unsupported => {
                s.put_block_scan(
                    key,
                    BlockScan {
                        unsupported: true,
                        ..BlockScan::default()
                    },
                );
                return;
            }
        };
        let _ = book(s, op, outcome, now);
    });
}

fn subaccount_array(bytes: &[u8]) -> [u8; 32] {
    bytes
        .try_into()
        .unwrap_or_else(|_| panic!("BUG: stored subaccount is not 32 bytes"))
}

/// Forgets `op`, the pending operation of its key (and any scan of the
/// ledger's blocks for it), now that its outcome is known.
fn take_pending(s: &mut State, op: &PendingOperation) {
    let taken = s.take_pending(op.owner, op.ledger);
    assert_eq!(
        taken.as_ref(),
        Some(op),
        "BUG: pending operation changed under its guard"
    );
}

/// Credits the deposit (pulled or swept) that `op` brought in at `block`.
fn book_deposit(s: &mut State, op: &PendingOperation, now: u64, block: u128) {
    let (fee, source) = match &op.kind {
        PendingKind::Deposit { from } => (0, DepositSource::Pull { from: *from }),
        PendingKind::Sweep { subaccount } => (
            op.fee.unwrap_or(0),
            DepositSource::Push {
                subaccount: subaccount.clone(),
            },
        ),
        PendingKind::Withdraw { .. } => unreachable!("BUG: a withdrawal booked as a deposit"),
    };
    s.update_balance(op.owner, op.ledger, |b| b.credit_free(op.amount));
    s.events.append(
        now,
        EscrowEvent::Deposited {
            owner: op.owner,
            ledger: op.ledger,
            amount: op.amount,
            fee,
            block_index: block,
            source,
        },
    );
}

/// Retries the pending call of (owner, ledger), if any, or past the ledger's
/// deduplication window looks it up in the ledger's blocks. `Ok` when
/// nothing is pending any more (the old call succeeded or failed for sure);
/// the `PendingOperation` error when its outcome is still unknown.
async fn resolve_pending<R: Runtime>(
    rt: &R,
    owner: Principal,
    ledger: Principal,
) -> Result<(), EscrowError> {
    let Some(op) = read_state(|s| s.pending(owner, ledger)) else {
        return Ok(());
    };
    // Once the window has passed, a repeat can only answer `TooOld`.
    let mut expired = ledger_blocks::past_dedup_window(op.created_at_time, rt.now_ns())
        || read_state(|s| s.block_scan((owner, ledger)).is_some());
    if !expired {
        // A definite failure of the old call was booked (and undone) by
        // `run_pending`; only an outcome still unknown blocks the new call.
        let (_, too_old) = run_pending(rt, op.clone(), true).await;
        expired = too_old;
    }
    if expired && read_state(|s| s.pending(owner, ledger).as_ref() == Some(&op)) {
        look_up(rt, &op).await;
    }
    if read_state(|s| s.pending(owner, ledger).is_some()) {
        return Err(EscrowError::PendingOperation {
            operation: Box::new(op),
        });
    }
    Ok(())
}

/// A ledger call to make, before it is numbered.
struct NewOperation {
    owner: Principal,
    ledger: Principal,
    amount: Tokens,
    fee: Option<Tokens>,
    kind: PendingKind,
}

/// Numbers `new` and records it as pending, created at `now`, with the memo
/// of its kind; then makes its ledger call.
async fn start<R: Runtime>(
    rt: &R,
    new: NewOperation,
    now: u64,
) -> Result<(Tokens, u128), EscrowError> {
    let prefix = match new.kind {
        PendingKind::Deposit { .. } => MEMO_DEPOSIT,
        PendingKind::Sweep { .. } => MEMO_SWEEP,
        PendingKind::Withdraw { .. } => MEMO_WITHDRAW,
    };
    let op = mutate_state(|s| {
        let id = s.next_op_id();
        let op = PendingOperation {
            id,
            owner: new.owner,
            ledger: new.ledger,
            amount: new.amount,
            fee: new.fee,
            created_at_time: now,
            memo: memo(prefix, id),
            kind: new.kind,
        };
        s.put_pending(op.clone());
        op
    });
    run_pending(rt, op, false).await.0
}

/// Pull deposit: `icrc2_transfer_from` of `args.amount` from the caller's
/// account (approved for amount + fee) into the main account; credits the
/// caller's free balance with `args.amount`. Returns the amount credited.
pub async fn deposit<R: Runtime>(
    rt: &R,
    caller: Principal,
    args: DepositArgs,
) -> Result<Tokens, EscrowError> {
    non_anonymous(caller)?;
    known_ledger(args.ledger)?;
    positive(args.amount)?;
    let _guard = guard(caller, args.ledger)?;
    resolve_pending(rt, caller, args.ledger).await?;
    // Known before any balance exists on the ledger: a job's storage fee
    // is counted in it.
    ensure_fee(rt, args.ledger).await?;
    let now = rt.now_ns();
    let op = NewOperation {
        owner: caller,
        ledger: args.ledger,
        amount: args.amount,
        fee: None,
        kind: PendingKind::Deposit {
            from: Account {
                owner: caller,
                subaccount: args.from_subaccount,
            },
        },
    };
    start(rt, op, now).await.map(|(amount, _)| amount)
}

/// Push deposit: credits `args.beneficiary` with what its deposit
/// subaccount holds, minus the fee of sweeping it to the main account.
/// Anyone may call it. Returns the amount credited (0 if nothing arrived).
///
/// Anyone may call it for anyone, so it takes the beneficiary's guard only
/// once there is something to sweep (or an earlier ledger call of the
/// beneficiary whose outcome is still unknown, such as a sweep that timed
/// out after emptying the account): a stranger looping on it for someone
/// else's empty deposit account never holds that owner's key, so never
/// makes the owner's own calls (a withdrawal, say) answer `Busy`. With
/// tokens waiting, the sweep is what the owner wants anyway, and it costs
/// whoever sent them more than a ledger fee.
pub async fn notify_deposit<R: Runtime>(
    rt: &R,
    caller: Principal,
    args: NotifyDepositArgs,
) -> Result<Tokens, EscrowError> {
    non_anonymous(caller)?;
    if args.beneficiary == Principal::anonymous() {
        return Err(EscrowError::invalid(
            "beneficiary",
            "the anonymous principal cannot own a balance",
        ));
    }
    let account = deposit_account(rt.self_id(), args.beneficiary)?;
    known_ledger(args.ledger)?;
    let sweepable = || async {
        let fee = ensure_fee(rt, args.ledger).await?;
        let arrived = rt
            .icrc1_balance_of(args.ledger, account)
            .await
            .map_err(|e| EscrowError::Ledger(e.into()))?;
        if arrived > 0 && arrived <= fee {
            return Err(EscrowError::AmountBelowFee { fee });
        }
        Ok((fee, arrived))
    };
    let unresolved = read_state(|s| s.pending(args.beneficiary, args.ledger).is_some());
    if !unresolved && sweepable().await?.1 == 0 {
        return Ok(0);
    }
    let _guard = guard(args.beneficiary, args.ledger)?;
    resolve_pending(rt, args.beneficiary, args.ledger).await?;
    // Read again under the guard: another notify may have swept meanwhile.
    let (fee, arrived) = sweepable().await?;
    if arrived == 0 {
        return Ok(0);
    }
    let now = rt.now_ns();
    let subaccount = account.subaccount.map(|s| s.to_vec()).unwrap_or_default();
    let op = NewOperation {
        owner: args.beneficiary,
        ledger: args.ledger,
        amount: arrived - fee,
        fee: Some(fee),
        kind: PendingKind::Sweep { subaccount },
    };
    start(rt, op, now).await.map(|(amount, _)| amount)
}

/// Withdrawal: debits `args.amount` (claimable first, then free) and
/// transfers `args.amount − fee` to `args.to`. Returns the block index.
pub async fn withdraw<R: Runtime>(
    rt: &R,
    caller: Principal,
    args: WithdrawArgs,
) -> Result<u128, EscrowError> {
    withdraw_from(rt, caller, args, Sources::FreeAndClaimable).await
}

/// Which balances a withdrawal may draw on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sources {
    /// Claimable earnings first, then the free balance: the owner's own call.
    FreeAndClaimable,
    /// The free balance only: the matcher acting for an owner may move no
    /// more than it already could through locks (never a provider's earnings).
    Free,
}

async fn withdraw_from<R: Runtime>(
    rt: &R,
    caller: Principal,
    args: WithdrawArgs,
    sources: Sources,
) -> Result<u128, EscrowError> {
    non_anonymous(caller)?;
    known_ledger(args.ledger)?;
    if args.to.owner == rt.self_id() {
        return Err(EscrowError::invalid(
            "to",
            "cannot withdraw to the escrow's own accounts",
        ));
    }
    let _guard = guard(caller, args.ledger)?;
    resolve_pending(rt, caller, args.ledger).await?;
    let fee = ensure_fee(rt, args.ledger).await?;
    if args.amount <= fee {
        return Err(EscrowError::AmountBelowFee { fee });
    }
    let now = rt.now_ns();
    let op = mutate_state(|s| {
        let mut b = s.balance(caller, args.ledger);
        let claimable = match sources {
            Sources::FreeAndClaimable => b.claimable,
            Sources::Free => 0,
        };
        let available = b.free.saturating_add(claimable);
        if available < args.amount {
            return Err(EscrowError::InsufficientBalance { available });
        }
        let from_claimable = claimable.min(args.amount);
        b.claimable -= from_claimable;
        b.free -= args.amount - from_claimable;
        s.put_balance(caller, args.ledger, b);
        Ok(NewOperation {
            owner: caller,
            ledger: args.ledger,
            amount: args.amount,
            fee: Some(fee),
            kind: PendingKind::Withdraw {
                to: args.to,
                from_claimable,
            },
        })
    })?;
    start(rt, op, now).await.map(|(_, block)| block)
}

/// Withdrawal on behalf of `args.owner`, by the matcher only (a DAO acting
/// by proposal through the matcher): [`withdraw`] as if `owner` had called
/// it, under the same (owner, ledger) guard, but from the free balance only.
pub async fn withdraw_for<R: Runtime>(
    rt: &R,
    caller: Principal,
    args: WithdrawForArgs,
) -> Result<u128, EscrowError> {
    read_state(|s| crate::jobs::require_matcher(s, caller))?;
    if args.owner == Principal::anonymous() {
        return Err(EscrowError::invalid(
            "owner",
            "the anonymous principal owns no balance",
        ));
    }
    withdraw_from(rt, args.owner, args.args, Sources::Free).await
}

/// Retries the pending ledger call of (owner, ledger), if any, with
/// identical arguments. Anyone may call it. `Ok(true)` if an operation was
/// resolved (booked as done, or as failed and undone), `Ok(false)` if none
/// was pending.
pub async fn reconcile<R: Runtime>(
    rt: &R,
    caller: Principal,
    args: ReconcileArgs,
) -> Result<bool, EscrowError> {
    non_anonymous(caller)?;
    let _guard = guard(args.owner, args.ledger)?;
    if read_state(|s| s.pending(args.owner, args.ledger).is_none()) {
        return Ok(false);
    }
    resolve_pending(rt, args.owner, args.ledger).await?;
    Ok(true)
}

/// Whether `ledger` is whitelisted or there is room for it.
pub fn ledger_room(ledger: Principal) -> Result<(), EscrowError> {
    if read_state(|s| s.ledger(&ledger).is_none() && s.ledger_count() >= MAX_LEDGERS) {
        return Err(EscrowError::invalid(
            "ledger",
            format!("at most {MAX_LEDGERS} ledgers are accepted"),
        ));
    }
    Ok(())
}

/// Whitelists a ledger (controllers only), reading its fee and symbol and
/// checking that it supports ICRC-2; on a whitelisted ledger, refreshes them.
pub async fn add_ledger<R: Runtime>(
    rt: &R,
    caller_is_controller: bool,
    ledger: Principal,
) -> Result<LedgerInfo, EscrowError> {
    if !caller_is_controller {
        return Err(EscrowError::Unauthorized {
            reason: "only controllers or the SNS governance may add ledgers".into(),
        });
    }
    // Checked again after the ledger calls: other ledgers may have come in
    // meanwhile.
    let require_room = || ledger_room(ledger);
    require_room()?;
    let ledger_err = |e: CallFailure| EscrowError::Ledger(e.into());
    let standards = rt
        .icrc1_supported_standards(ledger)
        .await
        .map_err(ledger_err)?;
    if !standards.iter().any(|s| s.name == "ICRC-2") {
        return Err(EscrowError::invalid(
            "ledger",
            "the ledger does not list ICRC-2 among its standards",
        ));
    }
    let fee = rt.icrc1_fee(ledger).await.map_err(ledger_err)?;
    let symbol = rt.icrc1_symbol(ledger).await.map_err(ledger_err)?;
    require_room()?;
    let now = rt.now_ns();
    mutate_state(|s| s.set_ledger_info(ledger, Some(fee), Some(symbol.clone()), now));
    Ok(LedgerInfo {
        ledger,
        fee: Some(fee),
        symbol: Some(symbol),
    })
}

/// Settles, by a controller's ruling, an operation whose outcome neither a
/// repeat nor the ledger's ICRC-3 blocks can establish (a ledger without
/// ICRC-3, such as the ICP ledger). Only past the operation's deduplication
/// window, when nothing can change its outcome any more; the controller
/// reads the ledger's blocks itself first. The ruling is recorded as an
/// event, then booked like a ledger's answer: `Landed` as done at that
/// block, `NotLanded` as failed (a withdrawal's debit is put back).
pub async fn resolve_operation<R: Runtime>(
    rt: &R,
    caller: Principal,
    caller_is_controller: bool,
    args: ResolveOperationArgs,
) -> Result<(), EscrowError> {
    if !caller_is_controller {
        return Err(EscrowError::Unauthorized {
            reason: "only controllers or the SNS governance may resolve an operation".into(),
        });
    }
    let _guard = guard(args.owner, args.ledger)?;
    let op = read_state(|s| s.pending(args.owner, args.ledger))
        .filter(|op| op.id == args.operation)
        .ok_or_else(|| {
            EscrowError::invalid(
                "operation",
                "no such operation is pending for this owner and ledger",
            )
        })?;
    let now = rt.now_ns();
    if !ledger_blocks::past_dedup_window(op.created_at_time, now) {
        return Err(EscrowError::invalid(
            "operation",
            "still within the ledger's deduplication window: reconcile it",
        ));
    }
    mutate_state(|s| {
        s.events.append(
            now,
            EscrowEvent::OperationResolved {
                owner: op.owner,
                ledger: op.ledger,
                operation: op.id,
                outcome: args.outcome.clone(),
                controller: caller,
            },
        );
        let outcome = match args.outcome {
            LedgerOutcome::Landed { block_index } => Outcome::Done(block_index),
            LedgerOutcome::NotLanded => Outcome::Failed(LedgerCallError::Rejected {
                message: format!(
                    "operation {} did not land, by the controllers' ruling",
                    op.id
                ),
            }),
        };
        match book(s, &op, outcome, now) {
            Ok(_) | Err(EscrowError::Ledger(LedgerCallError::Rejected { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    })
}
