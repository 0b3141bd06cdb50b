//! Pending pay: held releases, forfeits, and settle paying what is held.

use super::*;
use market_api::escrow::MAX_PENDING_PAYEES;
use market_fixture::metrics::metric_value;

const A: u8 = 1; // a buyer
const PROV: u8 = 101; // a provider
const PROV2: u8 = 102; // another provider

/// The `escrow_pending_pay` gauge of `ledger`.
fn pending_gauge(env: &Env, ledger: Principal) -> Tokens {
    let text = read_state(|s| crate::metrics::encode(s, env.rt_now(), &Default::default()));
    let prefix = format!("escrow_pending_pay{{ledger=\"{ledger}\"");
    metric_value(&text, &prefix).unwrap_or_else(|| panic!("no pending pay gauge in {text}"))
        as Tokens
}

/// Everything a refused or repeated call must leave as it was: every
/// balance of the test's principals on L1, the lock and the event log.
fn snapshot(env: &Env, key: &str) -> impl PartialEq + std::fmt::Debug {
    let balances: Vec<_> = [p(A), p(PROV), p(PROV2)]
        .into_iter()
        .map(|o| read_state(|s| s.balance(o, L1)))
        .collect();
    (balances, read_state(|s| s.lock(key)), env.events().len())
}

/// A's job "j" locks 600 000 of A's 1 000 000.
fn locked() -> Env {
    Env::locked_for("j", p(A), 1_000_000, 600_000)
}

#[test]
fn a_held_release_is_pending_until_settle_makes_it_claimable() {
    let env = locked();
    let lock = env.hold("j", 0, p(PROV), 100_000).unwrap();
    assert_eq!(
        (lock.released, lock.remaining, lock.refunded),
        (0, 500_000, 0)
    );
    assert_eq!(lock.pending, vec![(p(PROV), 100_000)]);
    assert_eq!(env.pending(p(PROV), L1), 100_000);
    assert_eq!(env.claimable(p(PROV), L1), 0);
    assert_eq!(read_state(|s| s.balance(p(A), L1).locked), 500_000);
    assert_eq!(
        read_state(|s| s.balances_of(p(PROV))),
        vec![read_state(|s| s.balance(p(PROV), L1)).view(L1)]
    );
    assert_eq!(read_state(|s| s.balances_of(p(PROV)))[0].pending, 100_000);
    assert!(matches!(
        env.events().last(),
        Some(EscrowEvent::Released {
            hold: true,
            amount: 100_000,
            ..
        })
    ));
    // Pending pay is still owed: the liabilities did not move, and the
    // gauge shows it.
    assert_eq!(read_state(|s| s.liabilities(&L1)), 1_000_000);
    assert_eq!(pending_gauge(&env, L1), 100_000);
    env.check_books();

    // More held pay to the same provider adds up; pay at once to another
    // is claimable at once.
    let lock = env.hold("j", 1, p(PROV), 50_000).unwrap();
    assert_eq!(lock.pending, vec![(p(PROV), 150_000)]);
    let lock = env.release("j", 2, p(PROV2), 20_000).unwrap();
    assert_eq!((lock.released, lock.remaining), (20_000, 430_000));
    assert_eq!(env.claimable(p(PROV2), L1), 20_000);
    assert_eq!(
        env.release("j", 3, p(PROV2), 430_001),
        Err(EscrowError::OverRelease { remaining: 430_000 })
    );

    // The provider can't withdraw pay that is pending.
    let calls = env.rt.calls.get();
    assert_eq!(
        env.withdraw(p(PROV), L1, 100_000, p(0x50)),
        Err(EscrowError::InsufficientBalance { available: 0 })
    );
    assert_eq!(env.rt.calls.get(), calls, "refused before any ledger call");
    assert_eq!(env.pending(p(PROV), L1), 150_000);

    let events = env.events().len();
    let settled = env.settle("j").unwrap();
    assert_eq!(
        (
            settled.released,
            settled.remaining,
            settled.refunded,
            settled.settled
        ),
        (170_000, 0, 430_000, true)
    );
    assert_eq!(settled.pending, vec![]);
    assert_eq!(
        env.events()[events..],
        [
            EscrowEvent::PendingPaid {
                job_key: "j".into(),
                provider: p(PROV),
                ledger: L1,
                amount: 150_000,
            },
            EscrowEvent::Settled {
                job_key: "j".into(),
                buyer: p(A),
                refunded: 430_000,
            },
        ]
    );
    assert_eq!(
        (env.pending(p(PROV), L1), env.claimable(p(PROV), L1)),
        (0, 150_000)
    );
    assert_eq!(env.free(p(A), L1), 400_000 + 430_000);
    assert_eq!(read_state(|s| s.balance(p(A), L1).locked), 0);
    assert_eq!(pending_gauge(&env, L1), 0);
    // Settling again pays nothing twice.
    let before = snapshot(&env, "j");
    assert_eq!(env.settle("j"), Ok(settled));
    assert_eq!(snapshot(&env, "j"), before);
    // What was pending is now withdrawable.
    env.withdraw(p(PROV), L1, 150_000, p(0x50)).unwrap();
    assert_eq!(env.rt.balance(L1, Account::from(p(0x50))), 150_000 - FEE1);
    env.settle_all_and_check();
}

#[test]
fn a_forfeit_returns_pending_pay_to_the_lock_and_the_buyer_gets_it_at_settle() {
    let env = locked();
    env.hold("j", 0, p(PROV), 100_000).unwrap();
    env.hold("j", 1, p(PROV2), 30_000).unwrap();
    env.hold("j", 2, p(PROV), 20_000).unwrap();
    let lock = env.forfeit("j", p(PROV)).unwrap();
    assert_eq!(lock.pending, vec![(p(PROV2), 30_000)]);
    assert_eq!((lock.released, lock.remaining), (0, 570_000));
    assert_eq!(env.pending(p(PROV), L1), 0);
    assert_eq!(env.pending(p(PROV2), L1), 30_000);
    assert_eq!(read_state(|s| s.balance(p(A), L1).locked), 570_000);
    env.assert_last_forfeit("j", p(PROV), 120_000, 0);
    assert_eq!(pending_gauge(&env, L1), 30_000);
    env.check_books();

    // A repeat, or a provider with nothing pending, moves nothing and
    // records nothing.
    let before = snapshot(&env, "j");
    assert_eq!(env.forfeit("j", p(PROV)), Ok(lock.clone()));
    assert_eq!(env.forfeit("j", p(0x77)), Ok(lock.clone()));
    assert_eq!(snapshot(&env, "j"), before);
    // The held releases retried after the forfeit answer without paying
    // again.
    assert_eq!(env.hold("j", 0, p(PROV), 100_000), Ok(lock.clone()));
    assert_eq!(snapshot(&env, "j"), before);

    // The job keeps its budget: a later attempt is paid from it.
    env.hold("j", 3, p(PROV2), 570_000).unwrap();
    env.forfeit("j", p(PROV2)).unwrap();
    let settled = env.settle("j").unwrap();
    assert_eq!(
        (settled.released, settled.refunded, settled.pending.len()),
        (0, 600_000, 0)
    );
    assert_eq!(env.free(p(A), L1), 1_000_000);
    for prov in [PROV, PROV2] {
        assert_eq!(read_state(|s| s.balance(p(prov), L1)), Default::default());
    }
    assert!(
        !env.events()
            .iter()
            .any(|e| matches!(e, EscrowEvent::PendingPaid { .. })),
        "nothing pending at settle, nothing paid"
    );

    // After settle nothing can be forfeited; an unknown lock neither.
    assert_eq!(
        env.forfeit("j", p(PROV)),
        Err(EscrowError::AlreadySettled {
            job_key: "j".into()
        })
    );
    assert_eq!(
        env.forfeit("nope", p(PROV)),
        Err(EscrowError::UnknownJob {
            job_key: "nope".into()
        })
    );
    env.settle_all_and_check();
}

#[test]
fn a_held_release_is_idempotent_on_its_key_with_hold_among_its_terms() {
    let env = locked();
    let lock = env.hold("j", 0, p(PROV), 100_000).unwrap();
    let before = snapshot(&env, "j");
    assert_eq!(env.hold("j", 0, p(PROV), 100_000), Ok(lock.clone()));
    assert_eq!(snapshot(&env, "j"), before);
    let conflict = Err(EscrowError::KeyConflict {
        job_key: "j".into(),
    });
    // The same key paid at once instead of held, and the other way round.
    assert_eq!(env.release("j", 0, p(PROV), 100_000), conflict);
    env.release("j", 1, p(PROV), 5_000).unwrap();
    let before = snapshot(&env, "j");
    assert_eq!(env.hold("j", 1, p(PROV), 5_000), conflict);
    assert_eq!(env.hold("j", 0, p(PROV), 99_999), conflict);
    assert_eq!(env.hold("j", 0, p(PROV2), 100_000), conflict);
    assert_eq!(snapshot(&env, "j"), before);
    // Across an upgrade, and after settle, a retry still answers.
    env.upgrade();
    assert_eq!(env.pending(p(PROV), L1), 100_000);
    assert_eq!(
        read_state(|s| s.lock("j")).unwrap().view("j").pending,
        vec![(p(PROV), 100_000)]
    );
    let settled = env.settle("j").unwrap();
    assert_eq!(env.hold("j", 0, p(PROV), 100_000), Ok(settled));
    assert_eq!(
        env.hold("j", 2, p(PROV), 1),
        Err(EscrowError::AlreadySettled {
            job_key: "j".into(),
        })
    );
    assert_eq!(env.claimable(p(PROV), L1), 105_000);
    env.settle_all_and_check();
}

#[test]
fn a_lock_holds_pending_pay_for_a_bounded_number_of_providers() {
    let env = locked();
    let payee = |i: usize| Principal::from_slice(&[0x40, i as u8]);
    for i in 0..MAX_PENDING_PAYEES {
        env.hold("j", i as u64, payee(i), 1_000).unwrap();
    }
    let seq = MAX_PENDING_PAYEES as u64;
    let before = snapshot(&env, "j");
    assert_eq!(
        env.hold("j", seq, payee(MAX_PENDING_PAYEES), 1_000),
        Err(EscrowError::LimitReached {
            what: "providers with pending pay in one lock".into(),
            limit: MAX_PENDING_PAYEES as u64,
        })
    );
    assert_eq!(snapshot(&env, "j"), before);
    // The refused key is still free; a provider already held for can be
    // held for more; pay at once is not bounded.
    env.hold("j", seq, payee(3), 1_000).unwrap();
    env.release("j", seq + 1, payee(MAX_PENDING_PAYEES), 1_000)
        .unwrap();
    // A forfeit makes room.
    env.forfeit("j", payee(5)).unwrap();
    let lock = env
        .hold("j", seq + 2, payee(MAX_PENDING_PAYEES), 1_000)
        .unwrap();
    assert_eq!(lock.pending.len(), MAX_PENDING_PAYEES);
    let order: Vec<Principal> = lock.pending.iter().map(|(p, _)| *p).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "payees in the order of their principals");
    env.check_books();
    let settled = env.settle("j").unwrap();
    assert_eq!(settled.released, 1_000 * (MAX_PENDING_PAYEES as u128 + 2));
    assert_eq!(env.claimable(payee(3), L1), 2_000);
    assert_eq!(env.claimable(payee(5), L1), 0);
    env.settle_all_and_check();
}

#[test]
fn settled_locks_with_pending_paid_are_pruned_and_the_audit_still_adds_up() {
    use market_api::escrow::SETTLED_LOCK_RETENTION_SECS;
    let env = locked();
    env.hold("j", 0, p(PROV), 100_000).unwrap();
    env.settle("j").unwrap();
    env.lock("k", p(A), L1, 100_000).unwrap();
    env.hold("k", 0, p(PROV), 40_000).unwrap();
    // A pass of the audit under way when the lock goes must still add up.
    mutate_state(|s| s.run_audit_chunk(env.rt_now(), 1, |line| panic!("{line}")));
    env.rt.advance(SETTLED_LOCK_RETENTION_SECS * 1_000_000_000);
    let now = env.rt_now();
    assert_eq!(mutate_state(|s| s.prune_settled_locks(now, 10)), 1);
    assert_eq!(read_state(|s| s.lock("j")), None);
    for _ in 0..10 {
        mutate_state(|s| s.run_audit_chunk(env.rt_now(), 1, |line| panic!("{line}")));
    }
    assert_eq!(
        (env.claimable(p(PROV), L1), env.pending(p(PROV), L1)),
        (100_000, 40_000)
    );
    env.settle("k").unwrap();
    env.settle_all_and_check();
}

#[test]
fn the_audit_finds_pending_pay_that_does_not_add_up() {
    let env = locked();
    env.hold("j", 0, p(PROV), 100_000).unwrap();
    env.check_books();
    let audit = || {
        canister_common::audit::BooksAudit::new()
            .run_pass(|request| read_state(|s| s.audit_chunk(request)))
    };
    let audit_finds = |what: &str| {
        let found = audit();
        assert!(found.iter().any(|f| f.contains(what)), "{found:?}");
    };

    // A pending balance no lock accounts for.
    mutate_state(|s| s.update_balance(p(PROV2), L1, |b| b.pending += 1));
    audit_finds("differ from pending pay in locks");
    mutate_state(|s| s.update_balance(p(PROV2), L1, |b| b.pending -= 1));
    assert_eq!(audit(), Vec::<String>::new());

    // Pending pay in a lock that no release put there.
    let mut lock = read_state(|s| s.lock("j")).unwrap();
    lock.pending[0].1 -= 1;
    lock.forfeited += 1;
    mutate_state(|s| s.put_lock("j", lock.clone()));
    // The buyer's locked no longer matches the lock's remaining either.
    audit_finds("differ from pending pay in locks");
    lock.pending.push((p(PROV2), 0));
    mutate_state(|s| s.put_lock("j", lock));
    audit_finds("distinct providers");
}
