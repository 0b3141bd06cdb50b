//! One test per behaviour the escrow promises.

use super::*;
use market_api::escrow::{LedgerOutcome, ResolveOperationArgs};
use market_fixture::metrics::samples;

const A: u8 = 1; // a buyer
const B: u8 = 2; // another buyer
const PROV: u8 = 101; // a provider

#[test]
fn pull_deposit_credits_the_amount_and_the_payer_pays_the_fee() {
    let env = Env::new();
    assert_eq!(env.deposit(p(A), L1, 1_000_000), Ok(1_000_000));
    assert_eq!(env.free(p(A), L1), 1_000_000);
    assert_eq!(env.rt.balance(L1, Account::from(p(A))), 0);
    assert_eq!(env.rt.balance(L1, main_account(ESCROW)), 1_000_000);
    assert!(matches!(
        env.events().last(),
        Some(EscrowEvent::Deposited {
            amount: 1_000_000,
            fee: 0,
            ..
        })
    ));
    env.settle_all_and_check();
}

#[test]
fn pull_deposit_without_approval_changes_nothing() {
    let env = Env::new();
    env.rt.mint(L1, Account::from(p(A)), 5_000_000);
    let err = env.pull(p(A), L1, 1_000_000).unwrap_err();
    assert!(
        matches!(&err, EscrowError::Ledger(LedgerCallError::Rejected { message }) if message.contains("InsufficientAllowance")),
        "{err:?}"
    );
    assert_eq!(env.free(p(A), L1), 0);
    assert_eq!(read_state(|s| s.pending_count()), 0);
    // Approval for the amount but not the fee is not enough either.
    env.rt.approve(L1, Account::from(p(A)), 1_000_000);
    assert!(env.pull(p(A), L1, 1_000_000).is_err());
    env.rt.approve(L1, Account::from(p(A)), 1_000_000 + FEE1);
    assert_eq!(env.pull(p(A), L1, 1_000_000), Ok(1_000_000));
    env.settle_all_and_check();
}

#[test]
fn push_deposit_is_credited_once_net_of_the_sweep_fee() {
    let env = Env::new();
    env.push(p(A), L1, 500_000);
    assert_eq!(env.notify(p(A), L1), Ok(500_000 - FEE1));
    assert_eq!(env.free(p(A), L1), 500_000 - FEE1);
    let sub = deposit_account(ESCROW, p(A)).unwrap();
    assert_eq!(env.rt.balance(L1, sub), 0);
    // Nothing new: nothing credited.
    assert_eq!(env.notify(p(A), L1), Ok(0));
    assert_eq!(env.free(p(A), L1), 500_000 - FEE1);
    // A second payment is credited on the next notify.
    env.push(p(A), L1, 100_000);
    assert_eq!(env.notify(p(A), L1), Ok(100_000 - FEE1));
    assert_eq!(env.free(p(A), L1), 600_000 - 2 * FEE1);
    // Dust below the fee is left for later.
    env.push(p(A), L1, FEE1);
    assert_eq!(
        env.notify(p(A), L1),
        Err(EscrowError::AmountBelowFee { fee: FEE1 })
    );
    env.push(p(A), L1, 1);
    assert_eq!(env.notify(p(A), L1), Ok(1));
    env.settle_all_and_check();
}

#[test]
fn concurrent_notifies_credit_once() {
    let env = Env::new();
    env.push(p(A), L1, 500_000);
    env.rt.yield_first.set(true);
    let args = NotifyDepositArgs {
        ledger: L1,
        beneficiary: p(A),
    };
    let (r1, r2) = block_on(async {
        futures::join!(
            payments::notify_deposit(&env.rt, p(0xC1), args.clone()),
            payments::notify_deposit(&env.rt, p(0xC2), args.clone())
        )
    });
    assert_eq!(r1, Ok(500_000 - FEE1));
    assert_eq!(r2, Err(EscrowError::Busy));
    assert_eq!(env.free(p(A), L1), 500_000 - FEE1);
    // The guard was released.
    assert_eq!(env.notify(p(A), L1), Ok(0));
    env.settle_all_and_check();
}

#[test]
fn deposit_accounts_are_distinct_and_never_the_main_account() {
    let a = deposit_account(ESCROW, p(A)).unwrap();
    let b = deposit_account(ESCROW, p(B)).unwrap();
    assert_ne!(a, b);
    assert_ne!(a, main_account(ESCROW));
    assert!(deposit_account(ESCROW, Principal::management_canister()).is_err());
    let long = Principal::from_slice(&[7; 29]);
    assert_ne!(
        deposit_account(ESCROW, long).unwrap().subaccount,
        Some([0; 32])
    );
}

#[test]
fn lock_release_settle_with_retries_of_each_key() {
    let env = Env::new();
    env.deposit(p(A), L1, 1_000_000).unwrap();
    let lock = env.lock("job/1", p(A), L1, 600_000).unwrap();
    assert_eq!(
        (lock.total, lock.remaining, lock.released),
        (600_000, 600_000, 0)
    );
    assert_eq!(env.free(p(A), L1), 400_000);
    // Retry with the same key and terms: same answer, nothing moves.
    assert_eq!(env.lock("job/1", p(A), L1, 600_000), Ok(lock.clone()));
    assert_eq!(env.free(p(A), L1), 400_000);
    // Same key, other terms.
    assert_eq!(
        env.lock("job/1", p(A), L1, 1),
        Err(EscrowError::KeyConflict {
            job_key: "job/1".into()
        })
    );
    let after = env.release("job/1", 0, p(PROV), 100_000).unwrap();
    assert_eq!((after.released, after.remaining), (100_000, 500_000));
    assert_eq!(env.release("job/1", 0, p(PROV), 100_000), Ok(after.clone()));
    assert_eq!(
        env.release("job/1", 0, p(PROV), 5),
        Err(EscrowError::KeyConflict {
            job_key: "job/1".into()
        })
    );
    env.release("job/1", 1, p(PROV), 100_000).unwrap();
    assert_eq!(env.claimable(p(PROV), L1), 200_000);
    assert_eq!(
        env.release("job/1", 2, p(PROV), 400_001),
        Err(EscrowError::OverRelease { remaining: 400_000 })
    );
    let settled = env.settle("job/1").unwrap();
    assert_eq!(
        (settled.refunded, settled.remaining, settled.settled),
        (400_000, 0, true)
    );
    assert_eq!(env.settle("job/1"), Ok(settled.clone()));
    assert_eq!(env.free(p(A), L1), 800_000);
    assert_eq!(read_state(|s| s.balance(p(A), L1).locked), 0);
    // A release retried after settle still answers; a new one is refused.
    assert!(env.release("job/1", 1, p(PROV), 100_000).is_ok());
    assert_eq!(
        env.release("job/1", 3, p(PROV), 1),
        Err(EscrowError::AlreadySettled {
            job_key: "job/1".into()
        })
    );
    assert!(env.lock("job/1", p(A), L1, 600_000).unwrap().settled);
    env.settle_all_and_check();
}

#[test]
fn settled_locks_are_deleted_after_their_retention_and_their_events_stay() {
    use market_api::escrow::SETTLED_LOCK_RETENTION_SECS;
    const S: u64 = 1_000_000_000;
    let env = Env::new();
    env.deposit(p(A), L1, 1_000_000).unwrap();
    env.lock("job/1", p(A), L1, 300_000).unwrap();
    env.release("job/1", 0, p(PROV), 100_000).unwrap();
    env.release("job/1", 1, p(PROV), 100_000).unwrap();
    env.settle("job/1").unwrap();
    env.lock("job/2", p(A), L1, 200_000).unwrap();
    let events = read_state(|s| s.events.len());
    let prune = |env: &Env| {
        let now = env.rt_now();
        mutate_state(|s| s.prune_settled_locks(now, 10))
    };

    // A pass of the audit under way when the lock goes must still add up.
    mutate_state(|s| s.run_audit_chunk(env.rt_now(), 1, |line| panic!("{line}")));
    env.rt.advance(SETTLED_LOCK_RETENTION_SECS * S - 1);
    assert_eq!(prune(&env), 0, "deleted before its retention ended");
    assert!(read_state(|s| s.lock("job/1")).is_some());
    env.rt.advance(1);
    assert_eq!(prune(&env), 1);
    assert_eq!(prune(&env), 0);
    assert_eq!(read_state(|s| s.lock("job/1")), None);
    assert_eq!(read_state(|s| s.release_record("job/1", 0)), None);
    assert_eq!(read_state(|s| s.release_record("job/1", 1)), None);
    assert_eq!(read_state(|s| s.settled_lock_count()), 0);
    // The open lock stays, whatever its age; the events stay.
    assert_eq!(
        read_state(|s| s.lock("job/2")).map(|l| l.total),
        Some(200_000)
    );
    assert_eq!(read_state(|s| s.events.len()), events);
    for _ in 0..10 {
        mutate_state(|s| s.run_audit_chunk(env.rt_now(), 1, |line| panic!("{line}")));
    }
    // Late calls for the deleted lock move nothing.
    let unknown = Err(EscrowError::UnknownJob {
        job_key: "job/1".into(),
    });
    assert_eq!(env.settle("job/1"), unknown);
    assert_eq!(env.release("job/1", 2, p(PROV), 1), unknown);
    assert_eq!(env.claimable(p(PROV), L1), 200_000);
    assert_eq!(env.free(p(A), L1), 600_000);
    env.upgrade();
    env.settle("job/2").unwrap();
    env.settle_all_and_check();
}

#[test]
fn a_lock_naming_stored_bytes_charges_the_storage_fee_once() {
    use market_api::escrow::{STORAGE_FEE_UNIT_BYTES, storage_fee};
    let env = Env::new();
    let lock = |key: &str, amount: Tokens, bytes: u64| {
        env.job_call(
            jobs::lock,
            MATCHER,
            LockArgs {
                job_key: key.into(),
                buyer: p(A),
                ledger: L1,
                amount,
                stored_bytes: Some(bytes),
            },
        )
    };
    // The smallest job pays one ledger fee; the largest eighteen.
    assert_eq!(storage_fee(FEE1, 0), Some(FEE1));
    assert_eq!(storage_fee(FEE1, 1024 * 1024 + 64 * 1024), Some(18 * FEE1));
    assert_eq!(storage_fee(Tokens::MAX, 0), Some(Tokens::MAX));
    assert_eq!(storage_fee(Tokens::MAX, STORAGE_FEE_UNIT_BYTES), None);
    assert_eq!(storage_fee(1, u64::MAX), None);

    env.deposit(p(A), L1, 100_000).unwrap();
    let bytes = 2 * STORAGE_FEE_UNIT_BYTES;
    let fee = storage_fee(FEE1, bytes).unwrap();
    assert_eq!(fee, 3 * FEE1);
    // Enough for the lock but not for the fee too: nothing moves.
    assert_eq!(
        lock("job/1", 100_000 - fee + 1, bytes),
        Err(EscrowError::InsufficientBalance { available: 100_000 })
    );
    assert_eq!(env.free(p(A), L1), 100_000);
    let locked = lock("job/1", 50_000, bytes).unwrap();
    assert_eq!((locked.total, locked.storage_fee), (50_000, fee));
    assert_eq!(env.free(p(A), L1), 100_000 - 50_000 - fee);
    assert_eq!(env.claimable(MATCHER, L1), fee);
    // A retry pays no second fee.
    assert_eq!(lock("job/1", 50_000, bytes), Ok(locked));
    assert_eq!(env.free(p(A), L1), 100_000 - 50_000 - fee);
    assert_eq!(env.claimable(MATCHER, L1), fee);
    // Cancelled at once: the lock comes back, the fee doesn't.
    let settled = env.settle("job/1").unwrap();
    assert_eq!(settled.refunded, 50_000);
    assert_eq!(env.free(p(A), L1), 100_000 - fee);
    let paid: Vec<_> = env
        .events()
        .into_iter()
        .filter(|e| matches!(e, EscrowEvent::StorageFeePaid { .. }))
        .collect();
    assert_eq!(
        paid,
        [EscrowEvent::StorageFeePaid {
            job_key: "job/1".into(),
            buyer: p(A),
            ledger: L1,
            amount: fee,
            stored_bytes: bytes,
            collector: MATCHER,
        }]
    );
    // The fees are the market's, and withdrawable like any claimable balance.
    env.withdraw(MATCHER, L1, fee, p(0x50)).unwrap();
    env.settle_all_and_check();
}

#[test]
fn a_ledger_whitelisted_at_install_charges_the_storage_fee_from_the_first_job() {
    use market_api::escrow::storage_fee;
    let env = Env::new();
    let l3 = env.ledger_named_at_install(500);
    env.deposit(p(A), l3, 100_000).unwrap();
    let locked = env
        .job_call(
            jobs::lock,
            MATCHER,
            LockArgs {
                job_key: "job/1".into(),
                buyer: p(A),
                ledger: l3,
                amount: 10_000,
                stored_bytes: Some(0),
            },
        )
        .unwrap();
    assert_eq!(locked.storage_fee, storage_fee(500, 0).unwrap());
    assert_eq!(env.free(p(A), l3), 100_000 - 10_000 - 500);
}

#[test]
fn lock_errors_are_clear() {
    let env = Env::new();
    env.deposit(p(A), L1, 1_000).unwrap();
    assert_eq!(
        env.lock("j", p(A), L1, 1_001),
        Err(EscrowError::InsufficientBalance { available: 1_000 })
    );
    assert_eq!(
        env.lock("j", p(A), p(0x77), 1),
        Err(EscrowError::UnknownLedger { ledger: p(0x77) })
    );
    assert!(matches!(
        env.lock("", p(A), L1, 1),
        Err(EscrowError::InvalidArgument { .. })
    ));
    assert!(matches!(
        env.lock(&"k".repeat(65), p(A), L1, 1),
        Err(EscrowError::InvalidArgument { .. })
    ));
    assert!(matches!(
        env.lock("j", p(A), L1, 0),
        Err(EscrowError::InvalidArgument { .. })
    ));
    assert_eq!(
        env.release("nope", 0, p(PROV), 1),
        Err(EscrowError::UnknownJob {
            job_key: "nope".into()
        })
    );
    assert_eq!(
        env.settle("nope"),
        Err(EscrowError::UnknownJob {
            job_key: "nope".into()
        })
    );
    env.settle_all_and_check();
}

/// Everything `extend_lock` may change: the lock, the buyer's balance and
/// the event log.
fn extend_snapshot(env: &Env, key: &str, buyer: Principal) -> impl PartialEq + std::fmt::Debug {
    (
        read_state(|s| s.lock(key)),
        read_state(|s| s.balance(buyer, L1)),
        env.events().len(),
    )
}

#[test]
fn extend_lock_adds_to_a_lock_once_per_extension_in_order() {
    let env = Env::new();
    let key = "job/1";
    env.deposit(p(A), L1, 1_000_000).unwrap();
    env.lock(key, p(A), L1, 300_000).unwrap();
    let one = env.extend(key, 1, 200_000).unwrap();
    assert_eq!(
        (one.total, one.remaining, one.released),
        (500_000, 500_000, 0)
    );
    assert_eq!(env.free(p(A), L1), 500_000);
    assert_eq!(read_state(|s| s.balance(p(A), L1).locked), 500_000);
    env.check_books();
    // The same extension again: same answer, nothing moves.
    let before = extend_snapshot(&env, key, p(A));
    assert_eq!(env.extend(key, 1, 200_000), Ok(one.clone()));
    assert_eq!(extend_snapshot(&env, key, p(A)), before);
    // The same extension with another amount.
    assert_eq!(
        env.extend(key, 1, 5),
        Err(EscrowError::KeyConflict {
            job_key: key.into()
        })
    );
    // Out of order, or not numbered from 1.
    for extension in [0, 3, u32::MAX] {
        assert!(
            matches!(
                env.extend(key, extension, 100_000),
                Err(EscrowError::InvalidArgument { ref field, .. }) if field == "extension"
            ),
            "extension {extension}"
        );
    }
    assert_eq!(extend_snapshot(&env, key, p(A)), before);
    let two = env.extend(key, 2, 100_000).unwrap();
    assert_eq!((two.total, two.remaining), (600_000, 600_000));
    assert_eq!(env.extend(key, 1, 200_000), Ok(two.clone()));
    env.check_books();
    // A retried `lock` names the first amount, not the extended total.
    assert_eq!(env.lock(key, p(A), L1, 300_000), Ok(two.clone()));
    assert_eq!(
        env.lock(key, p(A), L1, 600_000),
        Err(EscrowError::KeyConflict {
            job_key: key.into()
        })
    );
    // Releases may use the extended total, and no more.
    env.release(key, 0, p(PROV), 400_000).unwrap();
    assert_eq!(
        env.release(key, 1, p(PROV), 200_001),
        Err(EscrowError::OverRelease { remaining: 200_000 })
    );
    env.release(key, 1, p(PROV), 150_000).unwrap();
    env.check_books();
    // An upgrade keeps the extensions and their idempotency records.
    env.upgrade();
    assert_eq!(
        read_state(|s| s.lock(key)).unwrap().extensions,
        vec![200_000, 100_000]
    );
    assert_eq!(env.extend(key, 2, 100_000).unwrap().total, 600_000);
    // Settle refunds what the releases left of the extended total.
    let settled = env.settle(key).unwrap();
    assert_eq!(
        (settled.total, settled.refunded, settled.remaining),
        (600_000, 50_000, 0)
    );
    assert_eq!(env.free(p(A), L1), 400_000 + 50_000);
    assert_eq!(read_state(|s| s.balance(p(A), L1).locked), 0);
    assert_eq!(env.claimable(p(PROV), L1), 550_000);
    env.check_books();
    // After settle an applied extension still answers; a new one is refused.
    assert_eq!(env.extend(key, 2, 100_000), Ok(settled.clone()));
    assert_eq!(
        env.extend(key, 3, 1),
        Err(EscrowError::AlreadySettled {
            job_key: key.into()
        })
    );
    let extended: Vec<(u32, Tokens)> = env
        .events()
        .into_iter()
        .filter_map(|e| match e {
            EscrowEvent::LockExtended {
                job_key,
                extension,
                amount,
            } if job_key == key => Some((extension, amount)),
            _ => None,
        })
        .collect();
    assert_eq!(extended, [(1, 200_000), (2, 100_000)]);
    env.settle_all_and_check();
}

#[test]
fn extend_lock_refusals_change_nothing() {
    let env = Env::new();
    let key = "j";
    env.deposit(p(A), L1, 1_000).unwrap();
    env.lock(key, p(A), L1, 600).unwrap();
    let before = extend_snapshot(&env, key, p(A));
    assert_eq!(
        env.extend(key, 1, 401),
        Err(EscrowError::InsufficientBalance { available: 400 })
    );
    assert_eq!(
        env.extend("nope", 1, 1),
        Err(EscrowError::UnknownJob {
            job_key: "nope".into()
        })
    );
    for bad_key in [String::new(), "k".repeat(65)] {
        assert!(matches!(
            env.extend(&bad_key, 1, 1),
            Err(EscrowError::InvalidArgument { ref field, .. }) if field == "job_key"
        ));
    }
    assert!(matches!(
        env.extend(key, 1, 0),
        Err(EscrowError::InvalidArgument { ref field, .. }) if field == "amount"
    ));
    assert_eq!(
        env.extend_by(Principal::anonymous(), key, 1, 1),
        Err(EscrowError::AnonymousCaller)
    );
    for caller in [p(A), p(PROV)] {
        assert!(matches!(
            env.extend_by(caller, key, 1, 1),
            Err(EscrowError::Unauthorized { .. })
        ));
    }
    assert_eq!(extend_snapshot(&env, key, p(A)), before);
    env.check_books();
    // The refused attempts used up no extension number.
    assert_eq!(env.extend(key, 1, 400).unwrap().total, 1_000);
    assert_eq!(env.free(p(A), L1), 0);
    env.settle_all_and_check();
}

#[test]
fn extend_lock_refuses_a_total_that_would_overflow() {
    let env = Env::new();
    // A lock no ledger could fund, written directly: only the refusal is
    // under test, not the books.
    mutate_state(|s| {
        s.put_lock(
            "big",
            crate::state::LockRecord::new(p(A), L1, Tokens::MAX, 0),
        )
    });
    assert!(matches!(
        env.extend("big", 1, 1),
        Err(EscrowError::InvalidArgument { ref field, .. }) if field == "amount"
    ));
}

/// An escrow in which the provider was paid 300 000 from buyer A's job
/// "j" (claimable) and deposited 50 000 of its own (free); A has 700 000
/// free.
fn provider_with_earnings() -> Env {
    let env = Env::new();
    env.deposit(p(A), L1, 1_000_000).unwrap();
    env.lock("j", p(A), L1, 300_000).unwrap();
    env.release("j", 0, p(PROV), 300_000).unwrap();
    env.deposit(p(PROV), L1, 50_000).unwrap();
    env
}

#[test]
fn withdraw_for_withdraws_the_owners_balance_for_the_matcher_only() {
    let env = provider_with_earnings();
    // Anyone but the matcher is refused before any ledger call, the owner
    // included.
    let calls = env.rt.calls.get();
    assert_eq!(
        env.withdraw_for(Principal::anonymous(), p(PROV), L1, 100_000, p(0x50)),
        Err(EscrowError::AnonymousCaller)
    );
    for caller in [p(PROV), p(A), ESCROW] {
        assert_eq!(
            env.withdraw_for(caller, p(PROV), L1, 100_000, p(0x50)),
            Err(EscrowError::Unauthorized {
                reason: "only the matcher may call this method".into()
            })
        );
    }
    assert!(matches!(
        env.withdraw_for(MATCHER, Principal::anonymous(), L1, 100_000, p(0x50)),
        Err(EscrowError::InvalidArgument { ref field, .. }) if field == "owner"
    ));
    assert_eq!(env.rt.calls.get(), calls, "refused before any ledger call");
    assert_eq!(
        (env.claimable(p(PROV), L1), env.free(p(PROV), L1)),
        (300_000, 50_000)
    );
    // The matcher withdraws for the owner from its free balance only: never
    // a provider's earnings, which it could not move before either.
    assert_eq!(
        env.withdraw_for(MATCHER, p(PROV), L1, 50_001, p(0x50)),
        Err(EscrowError::InsufficientBalance { available: 50_000 })
    );
    env.withdraw_for(MATCHER, p(PROV), L1, 40_000, p(0x50))
        .unwrap();
    assert_eq!(env.rt.balance(L1, Account::from(p(0x50))), 40_000 - FEE1);
    assert_eq!(
        (env.claimable(p(PROV), L1), env.free(p(PROV), L1)),
        (300_000, 10_000)
    );
    assert_eq!(read_state(|s| s.balance(MATCHER, L1)), Default::default());
    assert!(matches!(
        env.events().last(),
        Some(EscrowEvent::Withdrawn { owner, amount: 40_000, .. }) if *owner == p(PROV)
    ));
    env.check_books();
    // An unknown outcome stays pending under the owner's key, and the
    // owner's own next call reconciles it.
    env.rt.push_fault(Fault::LostReply);
    assert_eq!(
        env.withdraw_for(MATCHER, p(A), L1, 100_000, p(0x51)),
        Err(unknown())
    );
    assert_eq!(read_state(|s| s.pending(p(A), L1)).unwrap().owner, p(A));
    env.check_books();
    env.withdraw(p(A), L1, 100_000, p(0x51)).unwrap();
    assert_eq!(
        env.rt.balance(L1, Account::from(p(0x51))),
        2 * (100_000 - FEE1)
    );
    assert_eq!(env.free(p(A), L1), 700_000 - 200_000);
    env.settle_all_and_check();
}

#[test]
fn withdraw_takes_the_fee_from_the_amount_claimable_first() {
    let env = provider_with_earnings();
    env.withdraw(p(PROV), L1, 320_000, p(0x50)).unwrap();
    assert_eq!(env.rt.balance(L1, Account::from(p(0x50))), 320_000 - FEE1);
    assert_eq!(env.claimable(p(PROV), L1), 0);
    assert_eq!(env.free(p(PROV), L1), 30_000);
    assert_eq!(
        env.withdraw(p(PROV), L1, 30_001, p(0x50)),
        Err(EscrowError::InsufficientBalance { available: 30_000 })
    );
    assert_eq!(
        env.withdraw(p(PROV), L1, FEE1, p(0x50)),
        Err(EscrowError::AmountBelowFee { fee: FEE1 })
    );
    assert!(matches!(
        env.withdraw(p(PROV), L1, 20_000, ESCROW),
        Err(EscrowError::InvalidArgument { .. })
    ));
    assert!(matches!(
        env.events().last(),
        Some(EscrowEvent::Withdrawn {
            amount: 320_000,
            fee: FEE1,
            ..
        })
    ));
    env.settle_all_and_check();
}

#[test]
fn deposit_faults_never_credit_twice_or_lose() {
    for fault in [Fault::Reject, Fault::LostRequest, Fault::LostReply] {
        let env = Env::new();
        env.rt.mint(L1, Account::from(p(A)), 10_000_000);
        env.rt.approve(L1, Account::from(p(A)), 10_000_000);
        env.rt.push_fault(fault.clone());
        let r = env.pull(p(A), L1, 1_000_000);
        env.check_books();
        match fault {
            Fault::Reject => {
                assert!(matches!(
                    r,
                    Err(EscrowError::Ledger(LedgerCallError::CallFailed { .. }))
                ));
                assert_eq!(read_state(|s| s.pending_count()), 0);
            }
            _ => {
                assert_eq!(r, Err(unknown()));
                assert_eq!(env.free(p(A), L1), 0);
                assert_eq!(read_state(|s| s.pending_count()), 1);
                // The next deposit first settles the pending one (Duplicate
                // or executed now), then makes its own.
                assert_eq!(env.pull(p(A), L1, 2_000), Ok(2_000));
                assert_eq!(env.free(p(A), L1), 1_002_000);
            }
        }
        env.settle_all_and_check();
        let expected = if fault == Fault::Reject {
            0
        } else {
            1_002_000 + 2 * FEE1
        };
        assert_eq!(
            env.rt.balance(L1, Account::from(p(A))),
            10_000_000 - expected
        );
    }
}

#[test]
fn notify_faults_never_credit_twice_or_lose() {
    for fault in [Fault::Reject, Fault::LostRequest, Fault::LostReply] {
        let env = Env::new();
        env.push(p(A), L1, 500_000);
        // The fee is known, so the first ledger call is the balance query.
        env.rt.push_fault(fault.clone());
        let r = env.notify(p(A), L1);
        assert!(r.is_err(), "{r:?}");
        assert_eq!(
            read_state(|s| s.pending_count()),
            0,
            "a failed query books nothing"
        );
        // Now the sweep itself fails.
        env.rt.push_fault(Fault::FeeChange(FEE1)); // the balance query passes
        env.rt.push_fault(fault.clone());
        let r = env.notify(p(A), L1);
        env.check_books();
        assert_eq!(env.free(p(A), L1), 0, "{r:?}");
        // Notifying twice more: credited exactly once.
        let again = env.notify(p(A), L1).unwrap();
        let more = env.notify(p(A), L1).unwrap();
        assert_eq!(env.free(p(A), L1), 500_000 - FEE1, "{again} {more}");
        env.settle_all_and_check();
    }
}

#[test]
fn withdraw_faults_restore_exactly_once() {
    for fault in [Fault::Reject, Fault::LostRequest, Fault::LostReply] {
        let env = Env::new();
        env.deposit(p(A), L1, 1_000_000).unwrap();
        env.rt.push_fault(fault.clone());
        let r = env.withdraw(p(A), L1, 400_000, p(0x50));
        env.check_books();
        match fault {
            Fault::Reject => {
                assert!(r.is_err());
                assert_eq!(env.free(p(A), L1), 1_000_000, "restored");
                assert!(matches!(
                    env.events().last(),
                    Some(EscrowEvent::WithdrawalRefunded { .. })
                ));
                // Reconciling again restores nothing more.
                assert_eq!(env.reconcile(p(A), L1), Ok(false));
                assert_eq!(env.free(p(A), L1), 1_000_000);
            }
            _ => {
                assert_eq!(r, Err(unknown()));
                assert_eq!(env.free(p(A), L1), 600_000, "debited while unknown");
                // A retry that fails again keeps it pending.
                env.rt.push_fault(Fault::LostRequest);
                assert!(matches!(
                    env.withdraw(p(A), L1, 1, p(0x50)),
                    Err(EscrowError::PendingOperation { .. })
                ));
                env.check_books();
                assert_eq!(env.reconcile(p(A), L1), Ok(true));
                assert_eq!(env.free(p(A), L1), 600_000);
                assert_eq!(
                    env.rt.balance(L1, Account::from(p(0x50))),
                    400_000 - FEE1,
                    "paid once"
                );
            }
        }
        env.settle_all_and_check();
    }
}

#[test]
fn a_changed_fee_fails_a_first_attempt_cleanly_but_not_a_retry() {
    let env = Env::new();
    env.deposit(p(A), L1, 1_000_000).unwrap();
    env.rt.set_fee(L1, 20_000);
    let r = env.withdraw(p(A), L1, 100_000, p(0x50));
    assert!(
        matches!(
            r,
            Err(EscrowError::Ledger(LedgerCallError::Rejected { .. }))
        ),
        "{r:?}"
    );
    assert_eq!(env.free(p(A), L1), 1_000_000);
    assert_eq!(
        read_state(|s| s.ledger(&L1).unwrap().fee),
        Some(20_000),
        "fee refreshed"
    );
    assert_eq!(env.withdraw(p(A), L1, 100_000, p(0x50)).map(|_| ()), Ok(()));
    assert_eq!(env.rt.balance(L1, Account::from(p(0x50))), 80_000);
    // Reply lost, then the fee changes: the retry cannot tell, so it waits.
    env.rt.push_fault(Fault::LostReply);
    assert_eq!(env.withdraw(p(A), L1, 100_000, p(0x50)), Err(unknown()));
    env.rt.set_fee(L1, 30_000);
    assert!(matches!(
        env.reconcile(p(A), L1),
        Err(EscrowError::PendingOperation { .. })
    ));
    env.check_books();
    env.rt.set_fee(L1, 20_000);
    assert_eq!(env.reconcile(p(A), L1), Ok(true));
    assert_eq!(
        env.rt.balance(L1, Account::from(p(0x50))),
        160_000,
        "paid once"
    );
    env.settle_all_and_check();
}

/// Past the deduplication window (and the margins for clocks).
const PAST_WINDOW: u64 = DAY + 10 * 60 * 1_000_000_000;

/// A has 1 000 000 deposited and withdrew 100 000 to 0x50, the answer
/// lost to `fault`: the withdrawal's outcome is unknown.
fn lost_withdrawal(fault: Fault) -> Env {
    let env = Env::new();
    env.deposit(p(A), L1, 1_000_000).unwrap();
    env.rt.push_fault(fault);
    assert_eq!(env.withdraw(p(A), L1, 100_000, p(0x50)), Err(unknown()));
    env
}

#[test]
fn past_the_dedup_window_a_landed_withdrawal_is_found_in_the_blocks() {
    let env = lost_withdrawal(Fault::LostReply);
    env.rt.advance(PAST_WINDOW);
    let calls = env.rt.calls.get();
    assert_eq!(env.reconcile(p(A), L1), Ok(true));
    // No resend (it could only be refused as too old): the standards, the
    // tip, one page.
    assert_eq!(env.rt.calls.get() - calls, 3);
    assert_eq!(
        env.rt.balance(L1, Account::from(p(0x50))),
        90_000,
        "paid once"
    );
    assert_eq!(env.free(p(A), L1), 900_000, "debited once");
    assert!(matches!(
        env.events().last(),
        Some(EscrowEvent::Withdrawn {
            amount: 100_000,
            block_index: 1,
            ..
        })
    ));
    env.settle_all_and_check();
}

#[test]
fn past_the_dedup_window_a_lost_withdrawal_is_undone_and_the_key_freed() {
    let env = lost_withdrawal(Fault::LostRequest);
    // The owner's own next call, past the window, finds out first.
    env.rt.advance(PAST_WINDOW);
    assert_eq!(env.withdraw(p(A), L1, 200_000, p(0x50)), Ok(1));
    assert_eq!(env.rt.balance(L1, Account::from(p(0x50))), 190_000);
    assert_eq!(env.free(p(A), L1), 800_000, "the first debit was put back");
    assert!(env.events().iter().any(|e| matches!(
        e,
        EscrowEvent::WithdrawalRefunded { amount: 100_000, reason, .. }
            if reason.contains("in no block of the ledger")
    )));
    env.settle_all_and_check();
}

#[test]
fn a_retry_refused_as_too_old_turns_to_the_blocks_at_once() {
    let env = lost_withdrawal(Fault::LostReply);
    // The ledger's clock is past the window before the escrow's margins.
    env.rt.dedup_window_ns.set(1);
    env.rt.advance(1_000);
    assert_eq!(env.reconcile(p(A), L1), Ok(true));
    assert_eq!(
        env.rt.balance(L1, Account::from(p(0x50))),
        90_000,
        "paid once"
    );
    env.settle_all_and_check();
}

#[test]
fn past_the_dedup_window_a_pull_deposit_is_found_by_its_spender() {
    let env = Env::new();
    env.rt.push_fault(Fault::LostReply);
    assert_eq!(env.deposit(p(A), L1, 500_000), Err(unknown()));
    env.rt.advance(PAST_WINDOW);
    assert_eq!(env.reconcile(p(A), L1), Ok(true));
    assert_eq!(env.free(p(A), L1), 500_000, "credited once");
    env.settle_all_and_check();
}

#[test]
fn a_scan_interrupted_by_a_failed_call_resumes_where_it_stopped() {
    let env = lost_withdrawal(Fault::LostRequest);
    env.rt.advance(PAST_WINDOW);
    // The standards and the tip are read, the first page's call traps.
    let fee = env.fee(L1);
    env.rt.push_fault(Fault::FeeChange(fee));
    env.rt.push_fault(Fault::FeeChange(fee));
    env.rt.push_fault(Fault::Trap);
    assert!(matches!(
        env.reconcile(p(A), L1),
        Err(EscrowError::PendingOperation { .. })
    ));
    assert_eq!(env.free(p(A), L1), 900_000);
    env.check_books();
    // The next message starts with that page: one call.
    let calls = env.rt.calls.get();
    assert_eq!(env.reconcile(p(A), L1), Ok(true));
    assert_eq!(env.rt.calls.get() - calls, 1);
    assert_eq!(env.free(p(A), L1), 1_000_000);
    env.settle_all_and_check();
}

#[test]
fn on_a_ledger_without_icrc3_only_the_controllers_resolve_it() {
    let env = lost_withdrawal(Fault::LostRequest);
    env.rt.serves_icrc3.set(false);
    let op = read_state(|s| s.pending(p(A), L1)).unwrap();
    let resolve = |caller, is_controller, outcome| {
        block_on(payments::resolve_operation(
            &env.rt,
            caller,
            is_controller,
            ResolveOperationArgs {
                owner: p(A),
                ledger: L1,
                operation: op.id,
                outcome,
            },
        ))
    };
    // Within the window a repeat still tells: no ruling.
    assert!(matches!(
        resolve(p(0xC0), true, LedgerOutcome::NotLanded),
        Err(EscrowError::InvalidArgument { .. })
    ));
    env.rt.advance(PAST_WINDOW);
    for _ in 0..3 {
        assert!(matches!(
            env.reconcile(p(A), L1),
            Err(EscrowError::PendingOperation { .. })
        ));
    }
    assert!(matches!(
        resolve(p(A), false, LedgerOutcome::NotLanded),
        Err(EscrowError::Unauthorized { .. })
    ));
    assert_eq!(resolve(p(0xC0), true, LedgerOutcome::NotLanded), Ok(()));
    assert_eq!(env.free(p(A), L1), 1_000_000, "the debit was put back");
    let events = env.events();
    let n = events.len();
    assert!(matches!(
        &events[n - 2],
        EscrowEvent::OperationResolved { outcome: LedgerOutcome::NotLanded, controller, .. }
            if *controller == p(0xC0)
    ));
    assert!(matches!(
        &events[n - 1],
        EscrowEvent::WithdrawalRefunded { .. }
    ));
    // Nothing is pending any more: a second ruling finds nothing.
    assert!(matches!(
        resolve(p(0xC0), true, LedgerOutcome::NotLanded),
        Err(EscrowError::InvalidArgument { .. })
    ));
    env.settle_all_and_check();
}

#[test]
fn upgrade_between_lock_and_settle_keeps_everything() {
    let env = Env::new();
    env.deposit(p(A), L1, 1_000_000).unwrap();
    env.lock("job/7", p(A), L1, 500_000).unwrap();
    env.release("job/7", 0, p(PROV), 100_000).unwrap();
    env.rt.push_fault(Fault::LostReply);
    assert_eq!(env.withdraw(p(A), L1, 100_000, p(0x50)), Err(unknown()));
    let events = env.events().len();
    env.upgrade();
    assert_eq!(env.events().len(), events);
    assert_eq!(read_state(|s| s.pending_count()), 1);
    // Retries of the keys used before the upgrade are still recognised.
    assert_eq!(
        env.release("job/7", 0, p(PROV), 100_000).unwrap().released,
        100_000
    );
    env.release("job/7", 1, p(PROV), 100_000).unwrap();
    let s = env.settle("job/7").unwrap();
    assert_eq!(s.refunded, 300_000);
    assert_eq!(env.free(p(A), L1), 400_000 + 300_000);
    env.settle_all_and_check();
}

#[test]
fn unauthorized_callers_of_every_update_method_are_refused() {
    let env = Env::new();
    env.deposit(p(A), L1, 1_000).unwrap();
    let anon = Principal::anonymous();
    let now = 0;
    let lock = LockArgs {
        job_key: "j".into(),
        buyer: p(A),
        ledger: L1,
        amount: 1,
        stored_bytes: None,
    };
    let release = ReleaseArgs {
        job_key: "j".into(),
        seq: 0,
        provider: p(PROV),
        amount: 1,
        hold: false,
        fee: 0,
    };
    let forfeit = ForfeitArgs {
        job_key: "j".into(),
        provider: p(PROV),
    };
    let settle = SettleArgs {
        job_key: "j".into(),
    };
    for caller in [anon, p(A)] {
        let want = if caller == anon {
            EscrowError::AnonymousCaller
        } else {
            EscrowError::Unauthorized {
                reason: "only the matcher may call this method".into(),
            }
        };
        let extend = ExtendLockArgs {
            job_key: "j".into(),
            extension: 1,
            amount: 1,
        };
        mutate_state(|s| {
            assert_eq!(
                jobs::extend_lock(s, caller, extend.clone(), now),
                Err(want.clone())
            );
            assert_eq!(jobs::lock(s, caller, lock.clone(), now), Err(want.clone()));
            assert_eq!(
                jobs::release(s, caller, release.clone(), now),
                Err(want.clone())
            );
            assert_eq!(
                jobs::forfeit(s, caller, forfeit.clone(), now),
                Err(want.clone())
            );
            assert_eq!(
                jobs::settle(s, caller, settle.clone(), now),
                Err(want.clone())
            );
        });
    }
    assert!(matches!(
        block_on(payments::add_ledger(&env.rt, false, p(0x77))),
        Err(EscrowError::Unauthorized { .. })
    ));
    let calls = env.rt.calls.get();
    assert_eq!(
        env.withdraw_for(anon, p(A), L1, 100_000, p(0x50)),
        Err(EscrowError::AnonymousCaller)
    );
    assert!(matches!(
        env.withdraw_for(p(A), p(A), L1, 100_000, p(0x50)),
        Err(EscrowError::Unauthorized { .. })
    ));
    assert_eq!(env.pull(anon, L1, 1), Err(EscrowError::AnonymousCaller));
    assert_eq!(
        env.withdraw(anon, L1, 100_000, p(0x50)),
        Err(EscrowError::AnonymousCaller)
    );
    assert_eq!(
        block_on(payments::notify_deposit(
            &env.rt,
            anon,
            NotifyDepositArgs {
                ledger: L1,
                beneficiary: p(A)
            }
        )),
        Err(EscrowError::AnonymousCaller)
    );
    assert_eq!(
        block_on(payments::reconcile(
            &env.rt,
            anon,
            ReconcileArgs {
                owner: p(A),
                ledger: L1
            }
        )),
        Err(EscrowError::AnonymousCaller)
    );
    assert_eq!(env.rt.calls.get(), calls, "refused before any ledger call");
    // Unknown ledgers are refused before any call too.
    assert_eq!(
        env.pull(p(A), p(0x77), 1),
        Err(EscrowError::UnknownLedger { ledger: p(0x77) })
    );
    assert_eq!(
        env.notify(p(A), p(0x77)),
        Err(EscrowError::UnknownLedger { ledger: p(0x77) })
    );
    assert_eq!(env.free(p(A), L1), 1_000);
    env.settle_all_and_check();
}

#[test]
fn ledgers_named_at_init_read_their_fee_on_first_use() {
    let env = Env::new();
    let l3 = env.ledger_named_at_install(7);
    env.rt.mint(l3, deposit_account(ESCROW, p(A)).unwrap(), 100);
    assert_eq!(env.notify(p(A), l3), Ok(93));
    assert_eq!(read_state(|s| s.ledger(&l3).unwrap().fee), Some(7));
    assert_eq!(read_state(|s| s.config().ledgers.len()), 3);
}

#[test]
fn the_event_log_records_every_movement() {
    let env = Env::new();
    env.deposit(p(A), L1, 1_000_000).unwrap();
    env.push(p(B), L1, 100_000);
    env.notify(p(B), L1).unwrap();
    env.lock("j", p(A), L1, 500_000).unwrap();
    env.release("j", 0, p(PROV), 200_000).unwrap();
    env.extend("j", 1, 100_000).unwrap();
    env.settle("j").unwrap();
    env.withdraw(p(PROV), L1, 200_000, p(0x50)).unwrap();
    let kinds: Vec<&str> = env
        .events()
        .iter()
        .map(|e| match e {
            EscrowEvent::LedgerUpdated { .. } => "ledger",
            EscrowEvent::Deposited { .. } => "deposit",
            EscrowEvent::Locked { .. } => "lock",
            EscrowEvent::Released { hold: false, .. } => "release",
            EscrowEvent::Released { hold: true, .. } => "hold",
            EscrowEvent::Forfeited { .. } => "forfeit",
            EscrowEvent::PendingPaid { .. } => "pending paid",
            EscrowEvent::FeePaid { .. } => "fee paid",
            EscrowEvent::Settled { .. } => "settle",
            EscrowEvent::Withdrawn { .. } => "withdraw",
            EscrowEvent::WithdrawalRefunded { .. } => "refund",
            EscrowEvent::LockExtended { .. } => "extend",
            EscrowEvent::OperationResolved { .. } => "resolved",
            EscrowEvent::StorageFeePaid { .. } => "storage fee",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ledger", "ledger", "deposit", "deposit", "lock", "release", "extend", "settle",
            "withdraw"
        ]
    );
    let metrics = read_state(|s| crate::metrics::encode(s, env.rt.now.get(), &Default::default()));
    assert!(
        metrics.contains("escrow_liabilities{ledger=\""),
        "{metrics}"
    );
    let owed = (1_000_000 + 100_000 - FEE1 - 200_000) as f64;
    assert!(
        samples(&metrics).iter().any(|s| s.value == owed),
        "{metrics}"
    );
}
