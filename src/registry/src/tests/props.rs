//! Random sequences of operations and ledger faults: the registry's records
//! always match the ledger.

use super::fake::Fault;
use super::*;
use crate::providers;
use crate::staking;
use market_api::Account;
use market_api::registry::{BondArgs, SlashArgs};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Stake(u8, u128),
    Unstake(u8, u128),
    Withdraw(u8),
    Bond(u8, u128, u8),
    Unbond(u8),
    Slash(u8, u128, u8),
    Unjail(u8),
    Deregister(u8),
    Register(u8),
    Advance(u64),
    Fault(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0u8..3;
    let amount = 1u128..2_000_000;
    prop_oneof![
        (who.clone(), amount.clone()).prop_map(|(w, a)| Op::Stake(w, a)),
        (who.clone(), amount.clone()).prop_map(|(w, a)| Op::Unstake(w, a)),
        who.clone().prop_map(Op::Withdraw),
        (who.clone(), amount.clone(), 0u8..6).prop_map(|(w, a, k)| Op::Bond(w, a, k)),
        (0u8..6).prop_map(Op::Unbond),
        (who.clone(), amount, 0u8..6).prop_map(|(w, a, k)| Op::Slash(w, a, k)),
        who.clone().prop_map(Op::Unjail),
        who.clone().prop_map(Op::Deregister),
        who.prop_map(Op::Register),
        (0u64..4 * WEEK_SECS).prop_map(Op::Advance),
        (0u8..4).prop_map(Op::Fault),
    ]
}

fn run(rt: &FakeLedger, op: &Op) {
    let now = rt.now.get();
    match op.clone() {
        Op::Stake(w, a) => {
            rt.fund(user(w), a + 10_000);
            let _ = block_on(staking::stake(rt, user(w), a));
        }
        Op::Unstake(w, a) => {
            let _ = mutate_state(|s| providers::unstake(s, user(w), now, a));
        }
        Op::Withdraw(w) => {
            let _ = block_on(staking::withdraw_unbonded(rt, user(w)));
        }
        Op::Bond(w, a, k) => {
            let _ = mutate_state(|s| {
                providers::bond(
                    s,
                    MATCHER,
                    now,
                    BondArgs {
                        provider: user(w),
                        amount: a,
                        key: format!("b{k}"),
                        min_stake: None,
                        min_record: None,
                    },
                )
            });
        }
        Op::Unbond(k) => {
            let _ = mutate_state(|s| providers::unbond(s, MATCHER, now, format!("b{k}")));
        }
        Op::Slash(w, a, k) => {
            let _ = block_on(staking::slash(
                rt,
                MATCHER,
                SlashArgs {
                    provider: user(w),
                    amount: a,
                    beneficiary: Account {
                        owner: user(200),
                        subaccount: None,
                    },
                    reason: "r".into(),
                    key: format!("s{k}"),
                },
            ));
        }
        Op::Unjail(w) => {
            let _ = mutate_state(|s| providers::unjail(s, user(w), now));
        }
        Op::Deregister(w) => {
            let _ = mutate_state(|s| providers::deregister(s, user(w), now));
        }
        Op::Register(w) => {
            let _ = mutate_state(|s| providers::register(s, user(w), now, profile(user(w))));
        }
        Op::Advance(secs) => rt.advance_secs(secs),
        Op::Fault(f) => rt.push_fault(match f {
            0 => Fault::Reject,
            1 => Fault::Trap,
            2 => Fault::LostRequest,
            _ => Fault::LostReply,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn stakes_always_match_the_ledger(ops in prop::collection::vec(op(), 1..60)) {
        let rt = setup(300_000);
        for i in 0..3 {
            run(&rt, &Op::Register(i));
        }
        let minted_total = |rt: &FakeLedger| rt.registry_holdings();
        for op in &ops {
            run(&rt, op);
            check_conservation(&rt);
            let _ = minted_total(&rt);
        }
        // With the faults gone, every pending transfer settles and the
        // registry's holdings equal the recorded stakes exactly.
        while rt.calls.get() < u64::MAX && read_state(|s| s.pending_count()) > 0 {
            let p = read_state(|s| s.providers_after(None).find(|p| s.pending(&p.id).is_some()).map(|p| p.id)).unwrap();
            let before = read_state(|s| s.pending_count());
            let _ = block_on(staking::settle_pending(&rt, p));
            if read_state(|s| s.pending_count()) == before {
                // Faults still queued: each settle attempt uses them up.
                continue;
            }
        }
        check_conservation(&rt);
        prop_assert_eq!(read_state(|s| s.pending_count()), 0);
    }
}
