//! Random sequences of operations, faults and upgrades; after every step the
//! books must match the ledgers exactly (see `Env::check_books`, whose
//! invariants count pending pay), and at the end, once every pending call
//! is reconciled and every lock settled, the escrow's main account must
//! hold exactly what it owes, with no pay left pending.

use super::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Deposit {
        user: u8,
        ledger: bool,
        amount: Tokens,
        approve: bool,
    },
    Push {
        user: u8,
        ledger: bool,
        amount: Tokens,
    },
    Notify {
        user: u8,
        ledger: bool,
    },
    /// With `fit`, the buyer is the first from `user` on (and the ledger
    /// the first from `ledger` on) with a free balance, and the amount is
    /// cut to it, so that most locks succeed and the releases have
    /// something to pay from.
    Lock {
        job: u8,
        user: u8,
        ledger: bool,
        amount: Tokens,
        fit: bool,
    },
    /// With `fit`, the amount is cut to what the lock has remaining.
    Release {
        job: u8,
        seq: u8,
        provider: u8,
        amount: Tokens,
        hold: bool,
        fit: bool,
    },
    /// With `fit`, the provider is one that has pending pay in the lock,
    /// if any has.
    Forfeit {
        job: u8,
        provider: u8,
        fit: bool,
    },
    Extend {
        job: u8,
        extension: u32,
        amount: Tokens,
    },
    Settle {
        job: u8,
    },
    Withdraw {
        user: u8,
        ledger: bool,
        amount: Tokens,
    },
    WithdrawFor {
        by_matcher: bool,
        user: u8,
        ledger: bool,
        amount: Tokens,
    },
    Reconcile {
        user: u8,
        ledger: bool,
    },
    Fault(Fault),
    Advance {
        minutes: u8,
    },
    Upgrade,
}

fn user_of(i: u8) -> Principal {
    // Buyers 1..=3 and providers 101..=102 share one pool so providers can
    // also buy and buyers can also be paid.
    if i < 3 { p(1 + i) } else { p(98 + i) }
}

fn ledger_of(b: bool) -> Principal {
    if b { L2 } else { L1 }
}

fn amount() -> impl Strategy<Value = Tokens> {
    prop_oneof![0u128..30, 0u128..30_000, 0u128..3_000_000]
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0u8..5;
    prop_oneof![
        3 => (user.clone(), any::<bool>(), amount(), prop::bool::weighted(0.85))
            .prop_map(|(user, ledger, amount, approve)| Op::Deposit { user, ledger, amount, approve }),
        2 => (user.clone(), any::<bool>(), amount())
            .prop_map(|(user, ledger, amount)| Op::Push { user, ledger, amount }),
        2 => (user.clone(), any::<bool>()).prop_map(|(user, ledger)| Op::Notify { user, ledger }),
        3 => (0u8..4, user.clone(), any::<bool>(), amount(), prop::bool::weighted(0.7))
            .prop_map(|(job, user, ledger, amount, fit)| Op::Lock { job, user, ledger, amount, fit }),
        6 => (0u8..4, 0u8..8, user.clone(), amount(), any::<bool>(), prop::bool::weighted(0.7))
            .prop_map(|(job, seq, provider, amount, hold, fit)| Op::Release { job, seq, provider, amount, hold, fit }),
        3 => (0u8..4, user.clone(), prop::bool::weighted(0.7))
            .prop_map(|(job, provider, fit)| Op::Forfeit { job, provider, fit }),
        3 => (0u8..4, 0u32..4, amount())
            .prop_map(|(job, extension, amount)| Op::Extend { job, extension, amount }),
        2 => (0u8..4).prop_map(|job| Op::Settle { job }),
        3 => (user.clone(), any::<bool>(), amount())
            .prop_map(|(user, ledger, amount)| Op::Withdraw { user, ledger, amount }),
        1 => (prop::bool::weighted(0.8), user.clone(), any::<bool>(), amount())
            .prop_map(|(by_matcher, user, ledger, amount)| Op::WithdrawFor { by_matcher, user, ledger, amount }),
        1 => (user, any::<bool>()).prop_map(|(user, ledger)| Op::Reconcile { user, ledger }),
        4 => prop_oneof![
            Just(Fault::Reject),
            Just(Fault::LostRequest),
            Just(Fault::LostReply),
        ].prop_map(Op::Fault),
        1 => (0u8..10).prop_map(|minutes| Op::Advance { minutes }),
        1 => Just(Op::Upgrade),
    ]
}

fn run(env: &Env, op: &Op) {
    match *op {
        Op::Deposit {
            user,
            ledger,
            amount,
            approve,
        } => {
            let (u, l) = (user_of(user), ledger_of(ledger));
            env.rt.mint(l, Account::from(u), amount + env.fee(l));
            if approve {
                env.rt.approve(l, Account::from(u), amount + env.fee(l));
            }
            let _ = env.pull(u, l, amount);
        }
        Op::Push {
            user,
            ledger,
            amount,
        } => env.push(user_of(user), ledger_of(ledger), amount),
        Op::Notify { user, ledger } => {
            let _ = env.notify(user_of(user), ledger_of(ledger));
        }
        Op::Lock {
            job,
            user,
            ledger,
            amount,
            fit,
        } => {
            let (mut u, mut l, mut amount) = (user_of(user), ledger_of(ledger), amount);
            if fit {
                let funded = (0..10u8)
                    .map(|i| {
                        (
                            user_of((user + i / 2) % 5),
                            ledger_of(ledger ^ (i % 2 == 1)),
                        )
                    })
                    .find(|&(u, l)| env.free(u, l) > 0);
                if let Some((fu, fl)) = funded {
                    (u, l) = (fu, fl);
                    amount = amount % env.free(u, l) + 1;
                }
            }
            let _ = env.lock(&format!("job/{job}"), u, l, amount);
        }
        Op::Release {
            job,
            seq,
            provider,
            amount,
            hold,
            fit,
        } => {
            let key = format!("job/{job}");
            let prov = user_of(provider);
            let before = read_state(|s| s.lock(&key));
            let amount = match &before {
                Some(l) if fit && l.remaining() > 0 => amount % l.remaining() + 1,
                _ => amount,
            };
            // The market's fee on it: a tenth, cut to what is left when
            // the release fits.
            let fee = match &before {
                Some(l) if fit => (amount / 10).min(l.remaining().saturating_sub(amount)),
                _ => amount / 10,
            };
            let pending = env.pending(prov, L1) + env.pending(prov, L2);
            let r = env.release_with_fee(&key, seq.into(), prov, amount, hold, fee);
            let after = read_state(|s| s.lock(&key));
            let moved = env.pending(prov, L1) + env.pending(prov, L2) - pending;
            match (r, before, after) {
                (Ok(view), Some(before), Some(after)) => {
                    assert_eq!(view, after.view(&key));
                    let held = after.pending_of(prov) - before.pending_of(prov);
                    assert_eq!(held, moved);
                    if after != before {
                        assert_eq!(after.remaining(), before.remaining() - amount - fee);
                        assert_eq!(held, if hold { amount } else { 0 });
                    }
                }
                (Err(_), before, after) => {
                    assert_eq!(before, after);
                    assert_eq!(moved, 0);
                }
                other => panic!("release answered {other:?}"),
            }
        }
        Op::Forfeit { job, provider, fit } => {
            let key = format!("job/{job}");
            let before = read_state(|s| s.lock(&key));
            let prov = match &before {
                Some(l) if fit && !l.pending.is_empty() => {
                    l.pending[usize::from(provider) % l.pending.len()].0
                }
                _ => user_of(provider),
            };
            let r = env.forfeit(&key, prov);
            let after = read_state(|s| s.lock(&key));
            match (r, before, after) {
                (Ok(view), Some(before), Some(after)) => {
                    assert_eq!(view, after.view(&key));
                    assert_eq!(after.pending_of(prov), 0);
                    assert_eq!(after.pending_fee_of(prov), 0);
                    assert_eq!(
                        after.remaining(),
                        before.remaining() + before.pending_of(prov) + before.pending_fee_of(prov)
                    );
                }
                (Err(_), before, after) => assert_eq!(before, after),
                other => panic!("forfeit answered {other:?}"),
            }
        }
        Op::Extend {
            job,
            extension,
            amount,
        } => {
            let key = format!("job/{job}");
            let before = read_state(|s| s.lock(&key));
            let r = env.extend(&key, extension, amount);
            let after = read_state(|s| s.lock(&key));
            match (r, before, after) {
                (Ok(view), Some(before), Some(after)) => {
                    assert_eq!(view, after.view(&key));
                    let applied = after.extensions.len() > before.extensions.len();
                    if applied {
                        assert_eq!(after.total, before.total + amount);
                        assert_eq!(after.extensions.len(), extension as usize);
                    } else {
                        assert_eq!(after, before);
                    }
                    assert_eq!(after.initial(), before.initial());
                }
                (Err(_), before, after) => assert_eq!(before, after),
                other => panic!("extend answered {other:?}"),
            }
        }
        Op::Settle { job } => {
            let key = format!("job/{job}");
            if let Ok(view) = env.settle(&key) {
                assert!(view.settled && view.pending.is_empty(), "{view:?}");
            }
        }
        Op::Withdraw {
            user,
            ledger,
            amount,
        } => {
            let _ = env.withdraw(user_of(user), ledger_of(ledger), amount, p(0x50));
        }
        Op::WithdrawFor {
            by_matcher,
            user,
            ledger,
            amount,
        } => {
            let caller = if by_matcher { MATCHER } else { user_of(user) };
            let _ = env.withdraw_for(caller, user_of(user), ledger_of(ledger), amount, p(0x51));
        }
        Op::Reconcile { user, ledger } => {
            let _ = env.reconcile(user_of(user), ledger_of(ledger));
        }
        Op::Fault(ref f) => env.rt.push_fault(f.clone()),
        Op::Advance { minutes } => env.rt.advance(u64::from(minutes) * 60_000_000_000),
        Op::Upgrade => env.upgrade(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn books_match_the_ledgers_after_every_step(
        funded in any::<bool>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let env = Env::new();
        if funded {
            // The buyers start with money, so that locks, releases and
            // forfeits run from the first steps.
            for user in 0..3 {
                for ledger in [L1, L2] {
                    env.deposit(user_of(user), ledger, 5_000_000).unwrap();
                }
            }
        }
        for op in &ops {
            run(&env, op);
            env.check_books();
        }
        for job in 0..4 {
            let _ = env.settle(&format!("job/{job}"));
        }
        for ledger in [L1, L2] {
            prop_assert_eq!(read_state(|s| s.pending_pay(&ledger)), 0);
        }
        env.settle_all_and_check();
    }
}
