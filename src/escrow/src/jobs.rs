//! Job locks: the matcher sets a job's maximum cost aside (`lock`), may add
//! to it while the job runs (`extend_lock`), pays providers from it one
//! piece at a time (`release`), either to their claimable balances at once
//! (a lease's intervals) or, held, to their pending pay within the lock
//! (verified work), takes a provider's pending pay back into the lock when
//! it misses a deadline or loses an audit (`forfeit`), and at the end pays
//! the pending pay out and returns the rest to the buyer (`settle`).
//!
//! Pending pay has left the buyer's `locked` balance and is counted in the
//! provider's `pending` balance, which nothing can withdraw; the lock keeps
//! it per provider (at most [`MAX_PENDING_PAYEES`] of them), so a forfeit
//! knows what to take back and settle what to pay.
//!
//! A settled lock is deleted with its release records once
//! [`SETTLED_LOCK_RETENTION_SECS`](market_api::escrow::SETTLED_LOCK_RETENTION_SECS)
//! have passed (see `State::prune_settled_locks`); its events stay.
//!
//! None of these calls a ledger: they only move value between internal
//! balances, atomically within one message. Each is idempotent on its key:
//! repeating a call with the same key and terms answers the same lock and
//! changes nothing; the same key with other terms is a `KeyConflict`.
//! `forfeit` has no key: a repeat finds nothing left to take and moves
//! nothing.

use crate::state::{LockRecord, ReleaseRecord, State};
use market_api::escrow::storage_fee;
use market_api::escrow::{
    EscrowError, EscrowEvent, ExtendLockArgs, ForfeitArgs, JobLock, LockArgs, MAX_PENDING_PAYEES,
    ReleaseArgs, SettleArgs,
};
use market_api::{Principal, Tokens, validate_op_key};

/// Refuses callers other than the configured matcher.
pub fn require_matcher(state: &State, caller: Principal) -> Result<(), EscrowError> {
    if caller == Principal::anonymous() {
        return Err(EscrowError::AnonymousCaller);
    }
    match state.matcher() {
        Some(m) if m == caller => Ok(()),
        Some(_) => Err(EscrowError::Unauthorized {
            reason: "only the matcher may call this method".into(),
        }),
        None => Err(EscrowError::Unauthorized {
            reason: "no matcher is configured".into(),
        }),
    }
}

/// What every job call checks first: that the matcher calls, with a
/// well-formed job key.
fn require_matcher_call(
    state: &State,
    caller: Principal,
    job_key: &str,
) -> Result<(), EscrowError> {
    require_matcher(state, caller)?;
    validate_op_key(job_key).map_err(|reason| EscrowError::invalid("job_key", reason))
}

/// The lock of `job_key`, which must exist.
fn existing_lock(state: &State, job_key: &str) -> Result<LockRecord, EscrowError> {
    state.lock(job_key).ok_or_else(|| EscrowError::UnknownJob {
        job_key: job_key.to_string(),
    })
}

/// The answer to a call repeated under its key: the lock unchanged if the
/// call has the terms of the first, else a `KeyConflict`.
fn repeated(lock: &LockRecord, job_key: &str, same_terms: bool) -> Result<JobLock, EscrowError> {
    if same_terms {
        return Ok(lock.view(job_key));
    }
    Err(EscrowError::KeyConflict {
        job_key: job_key.to_string(),
    })
}

/// Stores a job's changed lock with the event that tells the change, and
/// answers the lock.
fn store(
    state: &mut State,
    job_key: &str,
    lock: &LockRecord,
    now: u64,
    event: EscrowEvent,
) -> JobLock {
    state.put_lock(job_key, lock.clone());
    state.events.append(now, event);
    lock.view(job_key)
}

/// Refuses to move value in or out of a settled lock.
fn require_unsettled(lock: &LockRecord, job_key: &str) -> Result<(), EscrowError> {
    if lock.settled {
        return Err(EscrowError::AlreadySettled {
            job_key: job_key.to_string(),
        });
    }
    Ok(())
}

fn positive(field: &str, amount: u128) -> Result<(), EscrowError> {
    if amount == 0 {
        return Err(EscrowError::invalid(field, "must be positive"));
    }
    Ok(())
}

/// Moves `args.amount` from the buyer's free balance into a new lock and,
/// when `args.stored_bytes` is named, the job's storage fee to the
/// matcher's claimable balance (the market's fees), both or neither. A
/// retry names the first lock's amount, whatever extensions came since,
/// and pays no second fee.
pub fn lock(
    state: &mut State,
    caller: Principal,
    args: LockArgs,
    now: u64,
) -> Result<JobLock, EscrowError> {
    require_matcher_call(state, caller, &args.job_key)?;
    positive("amount", args.amount)?;
    if let Some(existing) = state.lock(&args.job_key) {
        let same_terms = existing.buyer == args.buyer
            && existing.ledger == args.ledger
            && existing.initial() == args.amount;
        return repeated(&existing, &args.job_key, same_terms);
    }
    let Some(ledger) = state.ledger(&args.ledger) else {
        return Err(EscrowError::UnknownLedger {
            ledger: args.ledger,
        });
    };
    let fee = match args.stored_bytes {
        None => 0,
        // Every way into a free balance (a pull deposit, a push deposit's
        // sweep) reads the ledger's fee first, so it is known here.
        Some(bytes) => storage_fee(ledger.fee.unwrap_or(0), bytes)
            .ok_or_else(|| EscrowError::invalid("stored_bytes", "the storage fee overflows"))?,
    };
    let Some(with_fee) = args.amount.checked_add(fee) else {
        return Err(EscrowError::invalid(
            "amount",
            "the amount and the storage fee overflow",
        ));
    };
    let free = state.balance(args.buyer, args.ledger).free;
    if free < with_fee {
        return Err(EscrowError::InsufficientBalance { available: free });
    }
    if fee > 0 {
        // The caller is the matcher: the market's fees are its balance.
        state.update_balance(args.buyer, args.ledger, |b| b.free -= fee);
        state.update_balance(caller, args.ledger, |b| b.credit_claimable(fee));
        state.events.append(
            now,
            EscrowEvent::StorageFeePaid {
                job_key: args.job_key.clone(),
                buyer: args.buyer,
                ledger: args.ledger,
                amount: fee,
                stored_bytes: args.stored_bytes.unwrap_or(0),
                collector: caller,
            },
        );
    }
    lock_free_balance(state, args.buyer, args.ledger, args.amount)?;
    let record = LockRecord::new(args.buyer, args.ledger, args.amount, fee);
    Ok(store(
        state,
        &args.job_key,
        &record,
        now,
        EscrowEvent::Locked {
            job_key: args.job_key.clone(),
            buyer: args.buyer,
            ledger: args.ledger,
            amount: args.amount,
        },
    ))
}

/// Moves `amount` of `buyer`'s free balance on `ledger` to its locked
/// balance, or refuses with what is free.
fn lock_free_balance(
    state: &mut State,
    buyer: Principal,
    ledger: Principal,
    amount: Tokens,
) -> Result<(), EscrowError> {
    let mut balance = state.balance(buyer, ledger);
    if balance.free < amount {
        return Err(EscrowError::InsufficientBalance {
            available: balance.free,
        });
    }
    balance.free -= amount;
    balance.credit_locked(amount);
    state.put_balance(buyer, ledger, balance);
    Ok(())
}

/// Moves `args.amount` more from the buyer's free balance into an open
/// lock, once per (job key, extension). Extensions are numbered from 1 and
/// applied in order; repeating an applied one with its amount answers the
/// lock unchanged (even after settle).
pub fn extend_lock(
    state: &mut State,
    caller: Principal,
    args: ExtendLockArgs,
    now: u64,
) -> Result<JobLock, EscrowError> {
    require_matcher_call(state, caller, &args.job_key)?;
    if args.extension == 0 {
        return Err(EscrowError::invalid(
            "extension",
            "extensions are numbered from 1",
        ));
    }
    positive("amount", args.amount)?;
    let mut lock = existing_lock(state, &args.job_key)?;
    // `extension` ≥ 1. An index beyond usize names no applied extension and
    // is never the next one.
    let index = usize::try_from(args.extension - 1).unwrap_or(usize::MAX);
    if let Some(&done) = lock.extensions.get(index) {
        return repeated(&lock, &args.job_key, done == args.amount);
    }
    require_unsettled(&lock, &args.job_key)?;
    if index != lock.extensions.len() {
        return Err(EscrowError::invalid(
            "extension",
            format!(
                "extension {} is next; extensions are applied in order",
                lock.extensions.len() + 1
            ),
        ));
    }
    let Some(total) = lock.total.checked_add(args.amount) else {
        return Err(EscrowError::invalid(
            "amount",
            "the lock's total would overflow",
        ));
    };
    lock_free_balance(state, lock.buyer, lock.ledger, args.amount)?;
    lock.total = total;
    lock.extensions.push(args.amount);
    Ok(store(
        state,
        &args.job_key,
        &lock,
        now,
        EscrowEvent::LockExtended {
            job_key: args.job_key.clone(),
            extension: args.extension,
            amount: args.amount,
        },
    ))
}

/// Moves `args.amount` from a lock's remaining to the provider's
/// claimable balance or, with `args.hold`, to its pending pay within the
/// lock, once per (job key, seq); `args.fee` leaves the lock with it for
/// the market's fee account (the caller's balance: claimable, or held on
/// the pending pay). A held release to a provider with no pending pay in
/// a lock that already holds some for [`MAX_PENDING_PAYEES`] providers is
/// refused.
pub fn release(
    state: &mut State,
    caller: Principal,
    args: ReleaseArgs,
    now: u64,
) -> Result<JobLock, EscrowError> {
    require_matcher_call(state, caller, &args.job_key)?;
    positive("amount", args.amount)?;
    if args.provider == Principal::anonymous() {
        return Err(EscrowError::invalid(
            "provider",
            "the anonymous principal cannot be paid",
        ));
    }
    let mut lock = existing_lock(state, &args.job_key)?;
    if let Some(done) = state.release_record(&args.job_key, args.seq) {
        let same_terms = done.provider == args.provider
            && done.amount == args.amount
            && done.hold == args.hold
            && done.fee == args.fee;
        return repeated(&lock, &args.job_key, same_terms);
    }
    require_unsettled(&lock, &args.job_key)?;
    let remaining = lock.remaining();
    let Some(outgoing) = args.amount.checked_add(args.fee) else {
        return Err(EscrowError::OverRelease { remaining });
    };
    if outgoing > remaining {
        return Err(EscrowError::OverRelease { remaining });
    }
    if args.fee > 0 && lock.fee_collector.is_some_and(|c| c != caller) {
        return Err(EscrowError::Unauthorized {
            reason: "the lock's fees go to the matcher that released the first one".into(),
        });
    }
    if args.hold && !lock.can_hold_for(args.provider) {
        return Err(EscrowError::LimitReached {
            what: "providers with pending pay in one lock".into(),
            limit: MAX_PENDING_PAYEES as u64,
        });
    }
    state.update_balance(lock.buyer, lock.ledger, |b| b.unlock(outgoing));
    if args.fee > 0 {
        // The caller is the matcher: the market's fees are its balance.
        lock.fee_collector = Some(caller);
    }
    if args.hold {
        lock.hold(args.provider, args.amount);
        lock.hold_fee(args.provider, args.fee);
        state.update_balance(args.provider, lock.ledger, |b| {
            b.credit_pending(args.amount)
        });
        state.update_balance(caller, lock.ledger, |b| b.credit_pending(args.fee));
    } else {
        lock.released += args.amount;
        lock.fees += args.fee;
        state.update_balance(args.provider, lock.ledger, |b| {
            b.credit_claimable(args.amount)
        });
        state.update_balance(caller, lock.ledger, |b| b.credit_claimable(args.fee));
    }
    state.put_release(
        &args.job_key,
        args.seq,
        ReleaseRecord {
            provider: args.provider,
            amount: args.amount,
            hold: args.hold,
            fee: args.fee,
        },
    );
    Ok(store(
        state,
        &args.job_key,
        &lock,
        now,
        EscrowEvent::Released {
            job_key: args.job_key.clone(),
            seq: args.seq,
            provider: args.provider,
            amount: args.amount,
            hold: args.hold,
            fee: args.fee,
        },
    ))
}

/// Takes all of `args.provider`'s pending pay in a lock back into the
/// lock's remaining, with the market's fee held on it (so the buyer gets
/// both at settle unless the job pays the work to another provider). A provider with none (a repeat, say) moves
/// nothing and gets the lock unchanged; a settled lock is refused, its
/// pending pay being claimable already.
pub fn forfeit(
    state: &mut State,
    caller: Principal,
    args: ForfeitArgs,
    now: u64,
) -> Result<JobLock, EscrowError> {
    require_matcher_call(state, caller, &args.job_key)?;
    let mut lock = existing_lock(state, &args.job_key)?;
    require_unsettled(&lock, &args.job_key)?;
    let amount = lock.take_pending(args.provider);
    if amount == 0 {
        return Ok(lock.view(&args.job_key));
    }
    let fee = lock.take_pending_fee(args.provider);
    lock.forfeited = lock
        .forfeited
        .checked_add(amount)
        .unwrap_or_else(|| panic!("BUG: a lock's forfeits exceed its releases"));
    lock.forfeited_fees = lock
        .forfeited_fees
        .checked_add(fee)
        .unwrap_or_else(|| panic!("BUG: a lock's forfeited fees exceed its releases'"));
    state.update_balance(args.provider, lock.ledger, |b| b.take_pending(amount));
    if fee > 0 {
        let collector = lock
            .fee_collector
            .unwrap_or_else(|| panic!("BUG: a lock holds fees for no collector"));
        state.update_balance(collector, lock.ledger, |b| b.take_pending(fee));
    }
    let back = amount
        .checked_add(fee)
        .unwrap_or_else(|| panic!("BUG: a lock's pending pay and fee overflow"));
    state.update_balance(lock.buyer, lock.ledger, |b| b.credit_locked(back));
    Ok(store(
        state,
        &args.job_key,
        &lock,
        now,
        EscrowEvent::Forfeited {
            job_key: args.job_key.clone(),
            provider: args.provider,
            ledger: lock.ledger,
            amount,
            fee,
        },
    ))
}

/// What a lock has paid out of one kind (pay or fees) after `amount` more:
/// never more than the lock held, which the lock's own checks keep.
fn paid_out(so_far: Tokens, amount: Tokens) -> Tokens {
    so_far
        .checked_add(amount)
        .unwrap_or_else(|| panic!("BUG: a lock paid out more than its total"))
}

/// Moves `amount` of `owner`'s pay held pending in a lock to its claimable
/// balance.
fn make_claimable(state: &mut State, owner: Principal, ledger: Principal, amount: Tokens) {
    state.update_balance(owner, ledger, |b| {
        b.take_pending(amount);
        b.credit_claimable(amount);
    });
}

/// Pays every provider's pending pay in a lock to its claimable balance
/// (a `PendingPaid` event each) and the fees held on it to the market's
/// fee account (one `FeePaid`), returns what remains to the buyer's free
/// balance and closes the lock; settling a settled lock answers it
/// unchanged. At most [`MAX_PENDING_PAYEES`] providers are paid.
pub fn settle(
    state: &mut State,
    caller: Principal,
    args: SettleArgs,
    now: u64,
) -> Result<JobLock, EscrowError> {
    require_matcher_call(state, caller, &args.job_key)?;
    let mut lock = existing_lock(state, &args.job_key)?;
    if lock.settled {
        return Ok(lock.view(&args.job_key));
    }
    for (provider, amount) in std::mem::take(&mut lock.pending) {
        lock.released = paid_out(lock.released, amount);
        make_claimable(state, provider, lock.ledger, amount);
        state.events.append(
            now,
            EscrowEvent::PendingPaid {
                job_key: args.job_key.clone(),
                provider,
                ledger: lock.ledger,
                amount,
            },
        );
    }
    let held_fees = lock.pending_fee_total();
    lock.pending_fees.clear();
    if held_fees > 0 {
        let collector = lock
            .fee_collector
            .unwrap_or_else(|| panic!("BUG: a lock holds fees for no collector"));
        lock.fees = paid_out(lock.fees, held_fees);
        make_claimable(state, collector, lock.ledger, held_fees);
        state.events.append(
            now,
            EscrowEvent::FeePaid {
                job_key: args.job_key.clone(),
                collector,
                ledger: lock.ledger,
                amount: held_fees,
            },
        );
    }
    let refund = lock.remaining();
    lock.refunded = refund;
    lock.settled = true;
    state.update_balance(lock.buyer, lock.ledger, |b| {
        b.unlock(refund);
        b.credit_free(refund);
    });
    state.index_settled(&args.job_key, now);
    Ok(store(
        state,
        &args.job_key,
        &lock,
        now,
        EscrowEvent::Settled {
            job_key: args.job_key.clone(),
            buyer: lock.buyer,
            refunded: refund,
        },
    ))
}
