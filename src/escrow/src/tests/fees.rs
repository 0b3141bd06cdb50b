//! The market's fee: released beside the pay to the matcher's balance,
//! held with held pay, returned by a forfeit, paid at settle.

use super::*;

const A: u8 = 1; // a buyer
const PROV: u8 = 101; // a provider

impl Env {
    /// Release `seq` of `amount` to the provider with `fee` beside it.
    fn release_fee(
        &self,
        key: &str,
        seq: u64,
        amount: Tokens,
        fee: Tokens,
        hold: bool,
    ) -> Result<JobLock, EscrowError> {
        self.release_with_fee(key, seq, p(PROV), amount, hold, fee)
    }
}

/// A's job "j" locks 1 100 of A's 10 000: a cost of 1 000 and a 10 % fee.
fn locked() -> Env {
    Env::locked_for("j", p(A), 10_000, 1_100)
}

/// What a lock paid so far: released to providers, fee paid, fee pending.
fn paid(lock: &JobLock) -> (Tokens, Tokens, Tokens) {
    (lock.released, lock.fee_paid, lock.fee_pending)
}

#[test]
fn a_release_pays_the_fee_to_the_matcher_beside_the_provider() {
    let env = locked();
    let lock = env.release_fee("j", 0, 400, 40, false).unwrap();
    assert_eq!((paid(&lock), lock.remaining), ((400, 40, 0), 660));
    assert_eq!(env.claimable(p(PROV), L1), 400);
    assert_eq!(env.claimable(MATCHER, L1), 40);
    assert_eq!(read_state(|s| s.balance(p(A), L1).locked), 660);
    assert!(matches!(
        env.events().last(),
        Some(EscrowEvent::Released {
            amount: 400,
            fee: 40,
            hold: false,
            ..
        })
    ));
    env.check_books();

    // A repeat with the same terms moves nothing; another fee is a conflict.
    let before = read_state(|s| (s.balance(MATCHER, L1), s.lock("j")));
    assert_eq!(env.release_fee("j", 0, 400, 40, false).unwrap(), lock);
    assert!(matches!(
        env.release_fee("j", 0, 400, 41, false),
        Err(EscrowError::KeyConflict { .. })
    ));
    assert_eq!(
        read_state(|s| (s.balance(MATCHER, L1), s.lock("j"))),
        before
    );

    // The pay and its fee must both fit in what is left.
    assert_eq!(
        env.release_fee("j", 1, 600, 61, false),
        Err(EscrowError::OverRelease { remaining: 660 })
    );
    let lock = env.release_fee("j", 1, 600, 60, false).unwrap();
    assert_eq!((lock.remaining, lock.fee_paid), (0, 100));
    let lock = env.settle("j").unwrap();
    assert_eq!(lock.refunded, 0);
    assert_eq!(env.free(p(A), L1), 10_000 - 1_100);
    env.check_books();
}

#[test]
fn a_held_fee_goes_back_with_a_forfeit_and_is_paid_at_settle() {
    let env = locked();
    let lock = env.release_fee("j", 0, 500, 50, true).unwrap();
    assert_eq!(
        (lock.fee_paid, lock.fee_pending, lock.remaining),
        (0, 50, 550)
    );
    assert_eq!(env.pending(MATCHER, L1), 50);
    assert_eq!(env.claimable(MATCHER, L1), 0);
    env.check_books();

    // The work is forfeited: its pay and its fee are back in the lock.
    let lock = env.forfeit("j", p(PROV)).unwrap();
    assert_eq!(
        (lock.fee_paid, lock.fee_pending, lock.remaining),
        (0, 0, 1_100)
    );
    assert_eq!(env.pending(MATCHER, L1), 0);
    env.assert_last_forfeit("j", p(PROV), 500, 50);
    env.check_books();

    // Paid again, in full, and settled: the held fee becomes claimable
    // and the rest, fee included, goes back to the buyer.
    env.release_fee("j", 1, 900, 90, true).unwrap();
    let lock = env.settle("j").unwrap();
    assert_eq!((paid(&lock), lock.refunded), ((900, 90, 0), 110));
    assert_eq!(env.claimable(p(PROV), L1), 900);
    assert_eq!(env.claimable(MATCHER, L1), 90);
    assert_eq!(env.pending(MATCHER, L1), 0);
    assert_eq!(env.free(p(A), L1), 10_000 - 900 - 90);
    assert!(env.events().iter().any(|e| *e
        == EscrowEvent::FeePaid {
            job_key: "j".into(),
            collector: MATCHER,
            ledger: L1,
            amount: 90,
        }));
    env.check_books();
    env.settle_all_and_check();
}

#[test]
fn the_audit_finds_a_fee_the_release_records_do_not_account_for() {
    let env = locked();
    env.release_fee("j", 0, 100, 10, false).unwrap();
    env.check_books();
    mutate_state(|s| {
        let mut l = s.lock("j").unwrap();
        l.fees += 1;
        s.update_balance(p(A), L1, |b| b.locked -= 1);
        s.update_balance(MATCHER, L1, |b| b.claimable += 1);
        s.put_lock("j", l);
    });
    let err = read_state(|s| s.check_invariants()).unwrap_err();
    assert!(err.contains("fees"), "{err}");
}
