//! Native tests of the registry's logic with a fake ledger.

mod fake;
mod logic;
mod props;
mod records;

use crate::metrics;
use crate::state::{mutate_state, read_state, reset_state};
use canister_common::audit::Books;
use fake::{FEE, LEDGER, RegistryLedger, registry_ledger};
use fake_ledger::FakeLedger;
use market_api::registry::{ProviderProfile, RegistryError, RegistryInit, SlashArgs, SlashOutcome};
use market_api::{Account, HttpRequest, Principal, Tokens};

pub const MATCHER: Principal = Principal::from_slice(&[0xAA, 3]);
pub const WEEK_SECS: u64 = 7 * 86_400;

pub fn user(i: u8) -> Principal {
    Principal::from_slice(&[0x10, i])
}

pub fn profile(node: Principal) -> ProviderProfile {
    ProviderProfile {
        display_name: "node one".into(),
        region: "eu-west".into(),
        node,
        total_slots: 4,
        memory_per_slot_mib: 1024,
        tags: vec!["avx2".into()],
        endpoint: Some("https://example.org".into()),
    }
}

/// Fresh state configured with the fake ledger and matcher.
pub fn setup(min_stake: Tokens) -> FakeLedger {
    reset_state();
    let rt = registry_ledger();
    mutate_state(|s| {
        s.init(
            rt.now.get(),
            RegistryInit {
                ledger: LEDGER,
                matcher: Some(MATCHER),
                min_stake,
                unbonding_period_secs: None,
                governance: None,
            },
        )
    })
    .unwrap();
    rt
}

/// Every provider without a pending transfer holds on the ledger exactly
/// what the registry records for it; with none pending, the registry's
/// holdings equal the recorded total.
pub fn check_conservation(rt: &FakeLedger) {
    read_state(|s| {
        s.check_invariants().unwrap();
        for p in s.providers_after(None) {
            if s.pending(&p.id).is_none() {
                assert_eq!(
                    rt.stake_balance(p.id),
                    p.total_stake(),
                    "ledger vs recorded stake of {}",
                    p.id
                );
            }
        }
        if s.pending_count() == 0 {
            assert_eq!(rt.registry_holdings(), metrics::totals(s).staked());
        }
    });
}

/// The `/metrics` page at `now`, served with status 200.
pub fn metrics_page(now: u64) -> String {
    let page = read_state(|s| {
        metrics::http_request(
            s,
            &HttpRequest {
                method: "GET".into(),
                url: "/metrics".into(),
                headers: vec![],
                body: vec![],
            },
            now,
            &Default::default(),
        )
    });
    assert_eq!(page.status_code, 200);
    String::from_utf8(page.body).unwrap()
}

/// Registers `p` as a provider that is its own node.
pub fn register(p: Principal) {
    mutate_state(|s| crate::providers::register(s, p, 0, profile(p))).unwrap();
}

/// Funds `p` with `amount` and the fee and stakes `amount`; the stake's
/// block.
pub fn fund_and_stake(rt: &FakeLedger, p: Principal, amount: u128) -> u128 {
    rt.fund(p, amount + FEE);
    block_on(crate::staking::stake(rt, p, amount)).unwrap()
}

/// A fresh registry with minimum stake `min_stake` and `user(1)`
/// registered as a provider.
pub fn registered_provider(min_stake: Tokens) -> (FakeLedger, Principal) {
    let rt = setup(min_stake);
    let p = user(1);
    register(p);
    (rt, p)
}

/// [`registered_provider`], having staked `stake`.
pub fn staked_provider(min_stake: Tokens, stake: Tokens) -> (FakeLedger, Principal) {
    let (rt, p) = registered_provider(min_stake);
    fund_and_stake(&rt, p, stake);
    (rt, p)
}

/// A slash of `amount` from `p` for the matcher, paid to `user(99)`.
pub fn slash_args(p: Principal, amount: u128, key: &str) -> SlashArgs {
    SlashArgs {
        provider: p,
        amount,
        beneficiary: Account {
            owner: user(99),
            subaccount: Some([7; 32]),
        },
        reason: "missed heartbeat".into(),
        key: key.into(),
    }
}

/// The matcher's slash of `amount` from `p` ([`slash_args`]).
pub fn slash(
    rt: &FakeLedger,
    p: Principal,
    amount: u128,
    key: &str,
) -> Result<SlashOutcome, RegistryError> {
    block_on(crate::staking::slash(
        rt,
        MATCHER,
        slash_args(p, amount, key),
    ))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}
