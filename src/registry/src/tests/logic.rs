use super::fake::{Fault, REGISTRY};
use super::*;
use crate::providers;
use crate::staking;
use market_api::LedgerCallError;
use market_api::registry::{
    BondArgs, Ineligibility, ListProvidersArgs, PendingOperation, ProviderFilter,
    RegistryConfigUpdate, RegistryError, RegistryEvent,
};
use market_fixture::metrics::metric_value;

fn provider(p: Principal) -> crate::state::ProviderRecord {
    read_state(|s| s.provider(&p)).unwrap()
}

fn bond(p: Principal, amount: u128, key: &str) -> Result<(), RegistryError> {
    bond_with_min(p, amount, key, None)
}

fn bond_with_min(
    p: Principal,
    amount: u128,
    key: &str,
    min_stake: Option<u128>,
) -> Result<(), RegistryError> {
    mutate_state(|s| {
        providers::bond(
            s,
            MATCHER,
            0,
            BondArgs {
                provider: p,
                amount,
                key: key.into(),
                min_stake,
                min_record: None,
            },
        )
    })
}

fn beneficiary_balance(rt: &FakeLedger) -> u128 {
    rt.balance_of(user(99), Some([7; 32]))
}

#[test]
fn register_checks_every_field() {
    let _rt = setup(0);
    let p = user(1);
    let anon = Principal::anonymous();
    assert_eq!(
        mutate_state(|s| providers::register(s, anon, 0, profile(p))),
        Err(RegistryError::AnonymousCaller)
    );
    type Change = Box<dyn Fn(&mut ProviderProfile)>;
    let cases: Vec<(&str, Change)> = vec![
        ("display_name", Box::new(|x| x.display_name = String::new())),
        (
            "display_name",
            Box::new(|x| x.display_name = "x".repeat(129)),
        ),
        ("region", Box::new(|x| x.region = " ".into())),
        ("node", Box::new(|x| x.node = Principal::anonymous())),
        ("total_slots", Box::new(|x| x.total_slots = 0)),
        ("total_slots", Box::new(|x| x.total_slots = 100_001)),
        (
            "memory_per_slot_mib",
            Box::new(|x| x.memory_per_slot_mib = 0),
        ),
        ("tags", Box::new(|x| x.tags = vec!["t".into(); 17])),
        ("tags", Box::new(|x| x.tags = vec!["a\nb".into()])),
        (
            "endpoint",
            Box::new(|x| x.endpoint = Some("ftp://x".into())),
        ),
        (
            "endpoint",
            Box::new(|x| x.endpoint = Some(format!("https://{}", "x".repeat(128)))),
        ),
    ];
    for (field, change) in cases {
        let mut prof = profile(p);
        change(&mut prof);
        match mutate_state(|s| providers::register(s, p, 0, prof)) {
            Err(RegistryError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    register(p);
    assert_eq!(
        mutate_state(|s| providers::register(s, p, 0, profile(p))),
        Err(RegistryError::AlreadyRegistered)
    );
    let mut changed = profile(user(50));
    changed.region = "us-east".into();
    mutate_state(|s| providers::update_profile(s, p, 1, changed.clone())).unwrap();
    assert_eq!(provider(p).profile, changed);
    assert_eq!(
        mutate_state(|s| providers::update_profile(s, user(2), 1, changed)),
        Err(RegistryError::NotRegistered)
    );
}

#[test]
fn stake_credits_only_what_the_ledger_confirms() {
    let rt = setup(100_000);
    let p = user(1);
    // Not registered.
    rt.fund(p, 1_000_000);
    assert_eq!(
        block_on(staking::stake(&rt, p, 500_000)),
        Err(RegistryError::NotRegistered)
    );
    register(p);
    // Missing approval.
    rt.approve_registry(p, 0);
    assert!(matches!(
        block_on(staking::stake(&rt, p, 500_000)),
        Err(RegistryError::Ledger(LedgerCallError::Rejected { message })) if message.contains("InsufficientAllowance")
    ));
    // Allowance without the fee is not enough either.
    rt.approve_registry(p, 500_000);
    assert!(block_on(staking::stake(&rt, p, 500_000)).is_err());
    // Insufficient funds.
    rt.approve_registry(p, 10_000_000);
    assert!(matches!(
        block_on(staking::stake(&rt, p, 5_000_000)),
        Err(RegistryError::Ledger(LedgerCallError::Rejected { message })) if message.contains("InsufficientFunds")
    ));
    assert_eq!(provider(p).stake.free, 0);
    check_conservation(&rt);
    block_on(staking::stake(&rt, p, 500_000)).unwrap();
    assert_eq!(provider(p).stake.free, 500_000);
    assert_eq!(rt.balance_of(p, None), 1_000_000 - 500_000 - FEE);
    assert_eq!(
        block_on(staking::stake(&rt, p, 0)),
        Err(RegistryError::InvalidArgument {
            field: "amount".into(),
            reason: "must be more than zero".into()
        })
    );
    check_conservation(&rt);
}

#[test]
fn stake_with_a_failing_or_trapping_ledger_changes_nothing() {
    let (rt, p) = registered_provider(0);
    rt.fund(p, 1_000_000);
    for f in [Fault::Reject, Fault::Trap] {
        rt.push_fault(f);
        assert!(matches!(
            block_on(staking::stake(&rt, p, 100_000)),
            Err(RegistryError::Ledger(LedgerCallError::CallFailed { .. }))
        ));
        assert_eq!(provider(p).stake.free, 0);
        assert!(read_state(|s| s.pending(&p)).is_none());
        check_conservation(&rt);
    }
}

#[test]
fn stake_with_unknown_outcomes_is_credited_exactly_once() {
    let (rt, p) = registered_provider(0);
    rt.fund(p, 10_000_000);
    // Executed, answer lost: the retry is a duplicate.
    rt.push_fault(Fault::LostReply);
    block_on(staking::stake(&rt, p, 100_000)).unwrap();
    assert_eq!(provider(p).stake.free, 100_000);
    // Lost before executing: the retry executes it.
    rt.push_fault(Fault::LostRequest);
    block_on(staking::stake(&rt, p, 100_000)).unwrap();
    assert_eq!(provider(p).stake.free, 200_000);
    check_conservation(&rt);
    // Unknown on every attempt of this message: stays pending.
    for _ in 0..staking::ATTEMPTS_PER_MESSAGE {
        rt.push_fault(Fault::LostReply);
    }
    assert_eq!(
        block_on(staking::stake(&rt, p, 300_000)),
        Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
    );
    assert_eq!(provider(p).stake.free, 200_000);
    assert_eq!(
        read_state(|s| providers::get_provider(s, &p))
            .unwrap()
            .pending_operation,
        Some(PendingOperation::Stake { amount: 300_000 })
    );
    // The next operation settles it first (a duplicate), then does its own.
    block_on(staking::stake(&rt, p, 1)).unwrap();
    assert_eq!(provider(p).stake.free, 500_001);
    check_conservation(&rt);
}

/// `stake` and `withdraw_unbonded` of `p` are both refused with `err`.
fn stake_calls_refused(rt: &FakeLedger, p: Principal, err: RegistryError) {
    assert_eq!(block_on(staking::stake(rt, p, 1)).err(), Some(err.clone()));
    assert_eq!(block_on(staking::withdraw_unbonded(rt, p)).err(), Some(err));
}

#[test]
fn guard_stops_interleaving() {
    let (rt, p) = registered_provider(0);
    let g = staking::guard(p).unwrap();
    stake_calls_refused(&rt, p, RegistryError::Busy);
    assert_eq!(slash(&rt, p, 100_000, "k"), Err(RegistryError::Busy));
    drop(g);
    assert!(staking::guard(p).is_ok());
}

#[test]
fn unstake_and_withdraw_respect_the_unbonding_period() {
    let (rt, p) = staked_provider(0, 1_000_000);
    assert_eq!(
        mutate_state(|s| providers::unstake(s, p, rt.now.get(), 2_000_000)),
        Err(RegistryError::InsufficientStake {
            available: 1_000_000
        })
    );
    let entry = mutate_state(|s| providers::unstake(s, p, rt.now.get(), 400_000)).unwrap();
    assert_eq!(
        entry.release_at_ns,
        rt.now.get() + WEEK_SECS * 1_000_000_000
    );
    assert_eq!(
        block_on(staking::withdraw_unbonded(&rt, p)),
        Err(RegistryError::NothingToWithdraw)
    );
    rt.advance_secs(WEEK_SECS - 1);
    assert_eq!(
        block_on(staking::withdraw_unbonded(&rt, p)),
        Err(RegistryError::NothingToWithdraw)
    );
    rt.advance_secs(1);
    let before = rt.balance_of(p, None);
    block_on(staking::withdraw_unbonded(&rt, p)).unwrap();
    assert_eq!(rt.balance_of(p, None), before + 400_000 - FEE);
    assert_eq!(provider(p).stake.free, 600_000);
    assert!(provider(p).stake.unbonding.is_empty());
    check_conservation(&rt);
    // Below the fee: refused, nothing moves.
    mutate_state(|s| providers::unstake(s, p, rt.now.get(), FEE)).unwrap();
    rt.advance_secs(WEEK_SECS);
    assert_eq!(
        block_on(staking::withdraw_unbonded(&rt, p)),
        Err(RegistryError::BelowFee { fee: FEE })
    );
    check_conservation(&rt);
}

#[test]
fn failed_withdrawal_restores_exactly_and_unknown_settles_later() {
    let (rt, p) = staked_provider(0, 1_000_000);
    mutate_state(|s| providers::unstake(s, p, rt.now.get(), 300_000)).unwrap();
    rt.advance_secs(10);
    mutate_state(|s| providers::unstake(s, p, rt.now.get(), 200_000)).unwrap();
    rt.advance_secs(WEEK_SECS + 10);
    let before = provider(p).stake;
    for f in [Fault::Reject, Fault::Trap] {
        rt.push_fault(f);
        assert!(block_on(staking::withdraw_unbonded(&rt, p)).is_err());
        assert_eq!(provider(p).stake, before);
        check_conservation(&rt);
    }
    for _ in 0..staking::ATTEMPTS_PER_MESSAGE {
        rt.push_fault(Fault::LostRequest);
    }
    assert_eq!(
        block_on(staking::withdraw_unbonded(&rt, p)),
        Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
    );
    // Debited while pending, so nothing can be withdrawn or slashed twice.
    assert!(provider(p).stake.unbonding.is_empty());
    // The next call resends the same transfer, which now executes.
    let before_balance = rt.balance_of(p, None);
    assert_eq!(
        block_on(staking::withdraw_unbonded(&rt, p)),
        Err(RegistryError::NothingToWithdraw)
    );
    assert_eq!(rt.balance_of(p, None), before_balance + 500_000 - FEE);
    check_conservation(&rt);
}

#[test]
fn bonds_are_limited_by_free_stake_and_idempotent() {
    let (rt, p) = registered_provider(100_000);
    assert_eq!(
        bond(p, 1, "a"),
        Err(RegistryError::InsufficientStake { available: 0 })
    );
    fund_and_stake(&rt, p, 1_000_000);
    bond(p, 600_000, "a").unwrap();
    bond(p, 600_000, "a").unwrap();
    assert_eq!(provider(p).stake.bonded, 600_000);
    assert_eq!(
        bond(p, 500_000, "b"),
        Err(RegistryError::InsufficientStake { available: 400_000 })
    );
    assert_eq!(
        bond(p, 1, "a"),
        Err(RegistryError::KeyConflict { key: "a".into() })
    );
    assert!(matches!(
        bond(p, 1, ""),
        Err(RegistryError::InvalidArgument { .. })
    ));
    bond(p, 400_000, "b").unwrap();
    assert_eq!(
        mutate_state(|s| providers::unstake(s, p, 0, 1)),
        Err(RegistryError::InsufficientStake { available: 0 })
    );
    assert_eq!(
        mutate_state(|s| providers::deregister(s, p, 0)),
        Err(RegistryError::StakeBonded { bonded: 1_000_000 })
    );
    assert_eq!(
        mutate_state(|s| providers::unbond(s, MATCHER, 0, "a".into())),
        Ok(600_000)
    );
    assert_eq!(
        mutate_state(|s| providers::unbond(s, MATCHER, 0, "a".into())),
        Ok(0)
    );
    assert!(mutate_state(|s| providers::unbond(s, MATCHER, 0, "zz".into())).is_err());
    assert_eq!(provider(p).stake.free, 600_000);
    assert_eq!(provider(p).stake.bonded, 400_000);
    check_conservation(&rt);
}

#[test]
fn a_bond_checks_the_buyers_minimum_against_the_current_stake() {
    let (rt, p) = staked_provider(100_000, 1_000_000);
    let with_min = |amount, key: &str, min| bond_with_min(p, amount, key, Some(min));
    with_min(10, "a", 1_000_000).unwrap();
    // The provider unstakes after posting its offer: a job asking for more
    // than what is left is refused, one asking for less is bonded.
    mutate_state(|s| providers::unstake(s, p, 0, 500_000)).unwrap();
    assert_eq!(
        with_min(10, "b", 1_000_000),
        Err(RegistryError::InsufficientStake { available: 499_990 })
    );
    with_min(10, "b", 500_000).unwrap();
    assert_eq!(provider(p).stake.bonded, 20);
    check_conservation(&rt);
}

/// [`staked_provider`] with 1 000 000: `bonded` of it bonded for "job",
/// `unbonding` of it unstaked, the rest free.
fn stake_in_each_state(
    min_stake: Tokens,
    bonded: Tokens,
    unbonding: Tokens,
) -> (FakeLedger, Principal) {
    let (rt, p) = staked_provider(min_stake, 1_000_000);
    bond(p, bonded, "job").unwrap();
    mutate_state(|s| providers::unstake(s, p, rt.now.get(), unbonding)).unwrap();
    (rt, p)
}

#[test]
fn slash_takes_bonded_then_free_then_unbonding_and_jails() {
    let (rt, p) = stake_in_each_state(500_000, 300_000, 200_000);
    // free 500k, bonded 300k, unbonding 200k.
    let o = slash(&rt, p, 250_000, "s1").unwrap();
    assert_eq!(
        (o.slashed, o.paid_out, o.jailed),
        (250_000, 250_000 - FEE, false)
    );
    assert_eq!(provider(p).stake.bonded, 50_000);
    assert_eq!(beneficiary_balance(&rt), 250_000 - FEE);
    // Repeat: same outcome, no new transfer.
    let calls = rt.calls.get();
    let again = slash(&rt, p, 250_000, "s1").unwrap();
    assert_eq!(again, o);
    assert_eq!(rt.calls.get(), calls);
    assert_eq!(beneficiary_balance(&rt), 250_000 - FEE);
    assert_eq!(
        slash(&rt, p, 1, "s1"),
        Err(RegistryError::KeyConflict { key: "s1".into() })
    );
    // 50k bonded + 400k free: leaves 100k free (below the 500k minimum): jailed.
    let o = slash(&rt, p, 450_000, "s2").unwrap();
    assert!(o.jailed);
    let rec = provider(p);
    assert_eq!((rec.stake.bonded, rec.stake.free), (0, 100_000));
    assert!(rec.jailed);
    assert_eq!(rec.slashed_total, 700_000);
    assert_eq!(bond(p, 1, "job2"), Err(RegistryError::Jailed));
    // Unbonding of the slashed job frees nothing: it was taken.
    assert_eq!(
        mutate_state(|s| providers::unbond(s, MATCHER, 0, "job".into())),
        Ok(0)
    );
    // Reaches unbonding stake once the rest is gone.
    let o = slash(&rt, p, 250_000, "s3").unwrap();
    assert_eq!(o.slashed, 250_000);
    let rec = provider(p);
    assert_eq!(rec.stake.free, 0);
    assert_eq!(rec.unbonding_total(), 50_000);
    check_conservation(&rt);
    // Unjail needs the minimum back.
    assert_eq!(
        mutate_state(|s| providers::unjail(s, p, 0)),
        Err(RegistryError::InsufficientStake { available: 0 })
    );
    fund_and_stake(&rt, p, 500_000);
    mutate_state(|s| providers::unjail(s, p, 0)).unwrap();
    assert!(!provider(p).jailed);
    bond(p, 1, "job2").unwrap();
    check_conservation(&rt);
}

#[test]
fn failed_slash_restores_exactly_and_a_retry_with_the_key_settles() {
    let (rt, p) = stake_in_each_state(0, 100_000, 700_000);
    let before = provider(p).stake;
    rt.push_fault(Fault::Trap);
    assert!(slash(&rt, p, 900_000, "s").is_err());
    assert_eq!(provider(p).stake, before);
    assert!(read_state(|s| s.slash_record("s")).is_none());
    check_conservation(&rt);
    for _ in 0..staking::ATTEMPTS_PER_MESSAGE {
        rt.push_fault(Fault::LostReply);
    }
    assert_eq!(
        slash(&rt, p, 900_000, "s"),
        Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
    );
    assert_eq!(provider(p).total_stake(), 100_000);
    let o = slash(&rt, p, 900_000, "s").unwrap();
    assert_eq!(o.slashed, 900_000);
    assert_eq!(beneficiary_balance(&rt), 900_000 - FEE);
    check_conservation(&rt);
}

#[test]
fn slash_checks_its_arguments() {
    let (rt, p) = registered_provider(0);
    assert_eq!(
        slash(&rt, p, FEE, "s"),
        Err(RegistryError::BelowFee { fee: FEE })
    );
    let mut long = slash_args(p, 100_000, "s");
    long.reason = "r".repeat(257);
    assert!(matches!(
        block_on(staking::slash(&rt, MATCHER, long)),
        Err(RegistryError::InvalidArgument { .. })
    ));
    assert_eq!(
        block_on(staking::slash(
            &rt,
            MATCHER,
            slash_args(user(5), 100_000, "s")
        )),
        Err(RegistryError::NotRegistered)
    );
    // Nothing staked: nothing taken, recorded under the key.
    let o = slash(&rt, p, 100_000, "s").unwrap();
    assert_eq!(o.slashed, 0);
    check_conservation(&rt);
}

#[test]
fn deregister_unbonds_free_stake_and_forgets_the_provider_when_empty() {
    let (rt, p) = staked_provider(0, 1_000_000);
    mutate_state(|s| providers::deregister(s, p, rt.now.get())).unwrap();
    let rec = provider(p);
    assert!(rec.deregistered);
    assert_eq!(rec.unbonding_total(), 1_000_000);
    assert_eq!(
        read_state(|s| providers::eligibility(s, &p)).ineligible,
        Some(Ineligibility::Deregistered)
    );
    assert_eq!(
        block_on(staking::stake(&rt, p, 1)),
        Err(RegistryError::NotRegistered)
    );
    rt.advance_secs(WEEK_SECS);
    block_on(staking::withdraw_unbonded(&rt, p)).unwrap();
    assert!(read_state(|s| s.provider(&p)).is_none());
    check_conservation(&rt);
    // An empty provider is forgotten at once.
    let q = user(2);
    register(q);
    mutate_state(|s| providers::deregister(s, q, 0)).unwrap();
    assert!(read_state(|s| s.provider(&q)).is_none());
    register(q);
}

#[test]
fn every_update_refuses_unauthorized_callers() {
    let rt = setup(0);
    let anon = Principal::anonymous();
    let p = user(1);
    register(p);
    fund_and_stake(&rt, p, 1_000_000);
    let anon_err = Err::<(), _>(RegistryError::AnonymousCaller);
    assert_eq!(
        mutate_state(|s| providers::register(s, anon, 0, profile(p))),
        anon_err
    );
    assert_eq!(
        mutate_state(|s| providers::update_profile(s, anon, 0, profile(p))),
        anon_err
    );
    assert_eq!(
        mutate_state(|s| providers::deregister(s, anon, 0)),
        anon_err
    );
    assert_eq!(mutate_state(|s| providers::unjail(s, anon, 0)), anon_err);
    assert_eq!(
        mutate_state(|s| providers::unstake(s, anon, 0, 1)),
        Err(RegistryError::AnonymousCaller)
    );
    stake_calls_refused(&rt, anon, RegistryError::AnonymousCaller);
    for caller in [anon, p, REGISTRY] {
        let expected_anon = caller == anon;
        let check = |r: Result<(), RegistryError>| match r {
            Err(RegistryError::AnonymousCaller) if expected_anon => {}
            Err(RegistryError::Unauthorized { .. }) if !expected_anon => {}
            other => panic!("{caller}: {other:?}"),
        };
        check(mutate_state(|s| {
            providers::bond(
                s,
                caller,
                0,
                BondArgs {
                    provider: p,
                    amount: 1,
                    key: "k".into(),
                    min_stake: None,
                    min_record: None,
                },
            )
        }));
        check(mutate_state(|s| providers::unbond(s, caller, 0, "k".into())).map(|_| ()));
        check(block_on(staking::slash(&rt, caller, slash_args(p, 100_000, "k"))).map(|_| ()));
    }
    // Without a configured matcher nobody may bond.
    mutate_state(|s| s.update_config(0, RegistryConfigUpdate::default())).unwrap();
    assert_eq!(provider(p).stake.free, 1_000_000);
    check_conservation(&rt);
}

#[test]
fn config_updates_are_validated() {
    let _rt = setup(0);
    assert!(
        mutate_state(|s| s.update_config(
            0,
            RegistryConfigUpdate {
                unbonding_period_secs: Some(400 * 86_400),
                ..Default::default()
            }
        ))
        .is_err()
    );
    assert!(
        mutate_state(|s| s.update_config(
            0,
            RegistryConfigUpdate {
                matcher: Some(Principal::anonymous()),
                ..Default::default()
            }
        ))
        .is_err()
    );
    let c = mutate_state(|s| {
        s.update_config(
            0,
            RegistryConfigUpdate {
                min_stake: Some(7),
                unbonding_period_secs: Some(60),
                ..Default::default()
            },
        )
    })
    .unwrap();
    assert_eq!((c.min_stake, c.unbonding_period_secs), (7, 60));
    assert_eq!(read_state(|s| s.config()), c);
}

#[test]
fn listing_filters_and_pages() {
    let rt = setup(100_000);
    for i in 0..10u8 {
        let p = user(i);
        let mut prof = profile(p);
        prof.region = if i % 2 == 0 { "eu".into() } else { "us".into() };
        mutate_state(|s| providers::register(s, p, 0, prof)).unwrap();
        if i < 6 {
            fund_and_stake(&rt, p, 100_000 * (i as u128 + 1));
        }
    }
    let all = |filter: ProviderFilter, limit: u32| {
        let mut out = Vec::new();
        let mut start_after = None;
        loop {
            let page = read_state(|s| {
                providers::list_providers(
                    s,
                    &ListProvidersArgs {
                        filter: filter.clone(),
                        start_after,
                        limit: Some(limit),
                    },
                )
            });
            assert!(page.providers.len() <= limit as usize);
            out.extend(page.providers.into_iter().map(|p| p.id));
            match page.next {
                Some(n) => start_after = Some(n),
                None => return out,
            }
        }
    };
    assert_eq!(all(ProviderFilter::default(), 3).len(), 10);
    assert_eq!(
        all(
            ProviderFilter {
                active_only: true,
                ..Default::default()
            },
            4
        )
        .len(),
        6
    );
    assert_eq!(
        all(
            ProviderFilter {
                region: Some("eu".into()),
                min_stake: Some(300_000),
                ..Default::default()
            },
            2
        ),
        vec![user(2), user(4)]
    );
    let e = read_state(|s| providers::eligibility(s, &user(8)));
    assert_eq!(
        e.ineligible,
        Some(Ineligibility::BelowMinimumStake {
            stake: 0,
            min_stake: 100_000
        })
    );
    assert_eq!(
        read_state(|s| providers::eligibility(s, &user(3))).ineligible,
        None
    );
    let text = metrics_page(rt.now.get());
    for (name, value) in [
        ("registry_providers", 10.0),
        ("registry_providers_active", 6.0),
        ("registry_staked_e8s", 2100000.0),
        ("registry_providers_jailed", 0.0),
    ] {
        assert_eq!(metric_value(&text, name), Some(value), "{name}: {text}");
    }
    check_conservation(&rt);
}

fn set_node(p: Principal, node: Principal, first: bool) -> Result<(), RegistryError> {
    mutate_state(|s| {
        if first {
            providers::register(s, p, 0, profile(node))
        } else {
            providers::update_profile(s, p, 0, profile(node))
        }
    })
}

fn node_refusal(r: Result<(), RegistryError>, field: &str, says: &str) {
    match r {
        Err(RegistryError::InvalidArgument { field: f, reason }) => {
            assert_eq!(f, field);
            assert!(reason.contains(says), "{reason}");
        }
        other => panic!("expected a refusal of {field}, got {other:?}"),
    }
}

#[test]
fn a_node_signs_for_one_provider_only() {
    let _rt = setup(0);
    let (a, b, c) = (user(1), user(2), user(3));
    let (node_a, node_b) = (user(11), user(12));
    set_node(a, node_a, true).unwrap();
    // Another provider may not claim a's node, nor a's own principal.
    node_refusal(
        set_node(b, node_a, true),
        "node",
        "already the node of provider",
    );
    node_refusal(set_node(b, a, true), "node", "is a provider");
    assert!(read_state(|s| s.provider(&b)).is_none());
    set_node(b, node_b, true).unwrap();
    node_refusal(
        set_node(b, node_a, false),
        "node",
        "already the node of provider",
    );
    assert_eq!(provider(b).profile.node, node_b);
    // A node may not register as a provider.
    node_refusal(
        set_node(node_a, c, true),
        "caller",
        "is the node of provider",
    );
    // A provider signing for itself is fine, and moving to a new node frees the old one.
    set_node(c, c, true).unwrap();
    set_node(a, user(21), false).unwrap();
    set_node(b, node_a, false).unwrap();
    assert_eq!(read_state(|s| s.node_owner(&node_a)), Some(b));
    assert_eq!(read_state(|s| s.node_owner(&node_b)), None);
    // A forgotten provider frees its node.
    mutate_state(|s| providers::deregister(s, c, 0)).unwrap();
    assert_eq!(read_state(|s| s.node_owner(&c)), None);
    read_state(|s| s.check_invariants()).unwrap();
}

#[test]
fn the_node_index_is_built_for_a_state_saved_without_it() {
    let _rt = setup(0);
    set_node(user(1), user(11), true).unwrap();
    set_node(user(2), user(2), true).unwrap();
    mutate_state(|s| s.drop_node_index_for_tests());
    assert!(read_state(|s| s.check_invariants()).is_err());
    assert_eq!(mutate_state(|s| s.index_nodes_if_missing()), 2);
    assert_eq!(mutate_state(|s| s.index_nodes_if_missing()), 0);
    read_state(|s| s.check_invariants()).unwrap();
    node_refusal(
        set_node(user(3), user(11), true),
        "node",
        "already the node",
    );
}

/// A payout whose answers were lost, then left alone for 25 hours: past the
/// ledger's deduplication window a resend can't tell. The matcher's slash
/// finds it in its way, learns its outcome from the ledger's blocks, and
/// goes through.
#[test]
fn past_the_dedup_window_a_stuck_payout_is_read_from_the_blocks_and_the_slash_goes_through() {
    for landed in [true, false] {
        let (rt, p) = staked_provider(0, 1_000_000);
        rt.dedup_window_ns.set(fake_ledger::DEDUP_WINDOW_NS);
        mutate_state(|s| providers::unstake(s, p, rt.now.get(), 300_000)).unwrap();
        rt.advance_secs(WEEK_SECS + 10);
        let lost = if landed {
            Fault::LostReply
        } else {
            Fault::LostRequest
        };
        rt.push_fault(lost);
        for _ in 1..staking::ATTEMPTS_PER_MESSAGE {
            rt.push_fault(Fault::LostRequest);
        }
        assert_eq!(
            block_on(staking::withdraw_unbonded(&rt, p)),
            Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
        );
        rt.advance_secs(25 * 3_600);
        let wallet = rt.balance_of(p, None);
        let o = slash(&rt, p, 100_000, "s").unwrap();
        assert_eq!(o.slashed, 100_000, "landed: {landed}");
        assert!(read_state(|s| s.pending(&p)).is_none());
        assert_eq!(wallet, rt.balance_of(p, None), "nothing paid by the lookup");
        if landed {
            assert_eq!(wallet, 300_000 - FEE, "paid once");
            assert!(provider(p).stake.unbonding.is_empty());
        } else {
            assert_eq!(wallet, 0);
            let back: u128 = provider(p).stake.unbonding.iter().map(|u| u.amount).sum();
            assert_eq!(back, 300_000, "the unbonding stake is back");
            assert!(
                read_state(|s| s.events.page(&Default::default()))
                    .events
                    .iter()
                    .any(|e| matches!(
                        &e.event,
                        RegistryEvent::Restored { amount: 300_000, reason, .. }
                            if reason.contains("in no block of the ledger")
                    ))
            );
        }
        check_conservation(&rt);
    }
}

#[test]
fn on_a_ledger_without_icrc3_only_the_controllers_resolve_a_stuck_transfer() {
    use market_api::LedgerOutcome;
    use market_api::registry::ResolveTransferArgs;
    let (rt, p) = staked_provider(0, 1_000_000);
    rt.serves_icrc3.set(false);
    mutate_state(|s| providers::unstake(s, p, rt.now.get(), 300_000)).unwrap();
    rt.advance_secs(WEEK_SECS + 10);
    rt.push_fault(Fault::LostReply);
    for _ in 1..staking::ATTEMPTS_PER_MESSAGE {
        rt.push_fault(Fault::LostRequest);
    }
    assert!(block_on(staking::withdraw_unbonded(&rt, p)).is_err());
    let op = read_state(|s| s.pending(&p)).unwrap().op_id;
    let info = read_state(|s| providers::get_provider(s, &p))
        .unwrap()
        .pending_transfer
        .unwrap();
    assert_eq!((info.operation, info.amount), (op, 300_000 - FEE));
    let resolve = |caller, is_controller, outcome| {
        block_on(staking::resolve_transfer(
            &rt,
            caller,
            is_controller,
            ResolveTransferArgs {
                provider: p,
                operation: op,
                outcome,
            },
        ))
    };
    assert!(matches!(
        resolve(user(7), true, LedgerOutcome::Landed { block_index: 1 }),
        Err(RegistryError::InvalidArgument { .. })
    ));
    rt.advance_secs(25 * 3_600);
    assert_eq!(
        block_on(staking::settle_pending(&rt, p)),
        Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown))
    );
    assert!(matches!(
        resolve(p, false, LedgerOutcome::Landed { block_index: 1 }),
        Err(RegistryError::Unauthorized { .. })
    ));
    assert_eq!(
        resolve(user(7), true, LedgerOutcome::Landed { block_index: 1 }),
        Ok(())
    );
    assert!(read_state(|s| s.pending(&p)).is_none());
    assert!(provider(p).stake.unbonding.is_empty());
    let events = read_state(|s| s.events.page(&Default::default())).events;
    assert!(events.iter().any(|e| matches!(
        &e.event,
        RegistryEvent::TransferResolved { operation, controller, .. }
            if *operation == op && *controller == user(7)
    )));
    check_conservation(&rt);
}
