//! Random sequences of operations, faults and upgrades; after every step the
//! books must match the ledgers exactly (see `Env::check_books`), and at the
//! end, once every pending call is reconciled, the escrow's main account
//! must hold exactly what it owes.

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
    Lock {
        job: u8,
        user: u8,
        ledger: bool,
        amount: Tokens,
    },
    Release {
        job: u8,
        seq: u8,
        provider: u8,
        amount: Tokens,
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
        3 => (0u8..4, user.clone(), any::<bool>(), amount())
            .prop_map(|(job, user, ledger, amount)| Op::Lock { job, user, ledger, amount }),
        4 => (0u8..4, 0u8..4, user.clone(), amount())
            .prop_map(|(job, seq, provider, amount)| Op::Release { job, seq, provider, amount }),
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
        } => {
            let _ = env.lock(
                &format!("job/{job}"),
                user_of(user),
                ledger_of(ledger),
                amount,
            );
        }
        Op::Release {
            job,
            seq,
            provider,
            amount,
        } => {
            let _ = env.release(&format!("job/{job}"), seq.into(), user_of(provider), amount);
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
            let _ = env.settle(&format!("job/{job}"));
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
    fn books_match_the_ledgers_after_every_step(ops in prop::collection::vec(op(), 1..60)) {
        let env = Env::new();
        for op in &ops {
            run(&env, op);
            env.check_books();
        }
        env.settle_all_and_check();
    }
}
