//! Prices in XDR, payment in cycles, and bonds and slashes valued in ICP
//! whatever a job pays in, on the devnet with the real canisters: the
//! cycles minting canister and the exchange rate canister are stand-ins
//! whose rates the tests set and move, the cycles ledger is the local ledger
//! with the cycles ledger's fee and decimals, and a second token has 18
//! decimals. Every test ends with the conservation audit of every ledger.

mod cast;

use cast::{buyer, node, provider};
use market_api::matcher::{GFUEL, JobSpec, JobStatus, MatcherError, MatcherEvent, OfferSpec};
use market_api::prices::cmc::IcpXdrConversionRateResponse;
use market_api::prices::xrc::{ExchangeRateError, GetExchangeRateResult, xdr_rate_of};
use market_api::prices::{CYCLES_PER_XDR, Currency, RatesView};
use market_api::registry::Provider;
use market_api::{JobId, Tokens};
use market_fixture::pricing::{CYCLES_LEDGER_FEE, ETH, ETH_FEE};
use market_fixture::{ICP, MarketFixture, PricingSettings, Settings};

/// One thousandth of an XDR, in cycles.
const MILLI_XDR: u128 = CYCLES_PER_XDR / 1_000;
/// The market's bond and slash multiples (the fixture's defaults).
const BOND_MULTIPLE: u128 = 10;
const SLASH_MULTIPLE: u128 = 5;

/// [`market`] with the buyer holding 5 ICP in the escrow and 5 more in
/// its account.
fn market_with_a_buyer() -> MarketFixture {
    let net = market();
    net.mint(buyer(), 10 * ICP).unwrap();
    net.deposit(buyer(), 5 * ICP).unwrap();
    net
}

/// A market that prices in XDR, at 4 XDR per ICP and 2,500 XDR per ETH,
/// with a provider staking 50 ICP.
fn market() -> MarketFixture {
    let net = MarketFixture::deploy(Settings {
        pricing: Some(PricingSettings::default()),
        ..Settings::default()
    })
    .expect("deploy");
    net.onboard_provider(provider(), node(), 50 * ICP).unwrap();
    let rates = net.refresh_rates().unwrap();
    assert_eq!(
        icp_rate(&net, &rates),
        40_000,
        "4 XDR per ICP: an e8 is 40,000 cycles"
    );
    net
}

/// Cycles per e8 of ICP in `rates`.
fn icp_rate(net: &MarketFixture, rates: &RatesView) -> u128 {
    let v = rates
        .valuation(net.ids.ledger)
        .expect("the ICP rate was read");
    assert_eq!(v.cycles_per_unit.den, 1);
    v.cycles_per_unit.num
}

/// An offer of one slot at `price` per billion fuel (and per interval) in
/// `currency`, paid in `ledger`.
fn offer(
    net: &MarketFixture,
    ledger: candid::Principal,
    currency: Currency,
    price: Tokens,
) -> OfferSpec {
    OfferSpec {
        ledger,
        currency: Some(currency),
        ..net.offer_spec(1, price)
    }
}

/// A job of `gfuel` billion fuel at up to `max_price` per billion in
/// `currency`, paid in `ledger`, heartbeating every 60 s.
fn job(
    net: &MarketFixture,
    ledger: candid::Principal,
    currency: Currency,
    gfuel: u32,
    max_price: Tokens,
) -> JobSpec {
    JobSpec {
        ledger,
        currency: Some(currency),
        ..net.url_job(60, gfuel, max_price)
    }
}

fn submit(net: &MarketFixture, spec: &JobSpec) -> Result<JobId, MatcherError> {
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, buyer(), "submit_job", spec)
        .unwrap();
    net.settle_outbox();
    r
}

fn registry_provider(net: &MarketFixture) -> Provider {
    let p: Option<Provider> = net
        .query(net.ids.registry, "get_provider", &provider())
        .unwrap();
    p.expect("the provider is registered")
}

fn matcher_events(net: &MarketFixture) -> Vec<MatcherEvent> {
    net.events::<MatcherEvent>(net.ids.matcher).unwrap()
}

/// A job priced in XDR and paid in ICP: its lock converts at the rate of
/// the day with a buffer; the rate moves before the match, so the price
/// converts at the new rate; it moves again before the settle, which
/// changes nothing; the buyer pays exactly the fuel used at the converted
/// price and gets the rest of the lock back.
#[test]
fn an_xdr_job_paid_in_icp_is_charged_at_its_match_rate_and_refunded_the_rest() {
    let net = market_with_a_buyer();
    let icp = net.ids.ledger;
    let free_before = net.escrow_balance(buyer()).unwrap().free;

    // 4 billion fuel at up to 0.002 XDR per billion: 0.008 XDR, which is
    // 0.002 ICP (200,000 e8s) at 4 XDR per ICP, and the 10 % buffer.
    let id = submit(&net, &job(&net, icp, Currency::Xdr, 4, 2 * MILLI_XDR)).unwrap();
    let lock = net.job_lock(id);
    assert_eq!(lock.total, 220_000);
    let terms = net
        .job(id)
        .pricing
        .expect("an XDR job shows its terms")
        .terms;
    assert_eq!(terms.max_price_cycles, 2 * MILLI_XDR);
    assert_eq!(terms.lock_rate.cycles_per_unit.num, 40_000);
    assert!(matches!(
        matcher_events(&net).iter().find(|e| matches!(e, MatcherEvent::JobSubmitted { job_id, .. } if *job_id == id)),
        Some(MatcherEvent::JobSubmitted { max_cost: 220_000, xdr: Some(t), .. }) if *t == terms
    ));

    // ICP rises to 5 XDR before any offer takes the job.
    net.set_icp_xdr_rate(50_000).unwrap();
    assert_eq!(icp_rate(&net, &net.refresh_rates().unwrap()), 50_000);
    net.post_offer(provider(), &offer(&net, icp, Currency::Xdr, MILLI_XDR))
        .unwrap();
    net.settle_outbox();

    // 0.001 XDR per billion fuel is 20,000 e8s at 5 XDR per ICP.
    let job = net.job(id);
    assert_eq!(job.price, Some(20_000));
    let conversion = job
        .pricing
        .unwrap()
        .conversion
        .expect("the match converted");
    assert_eq!(conversion.price_cycles, MILLI_XDR);
    assert_eq!(conversion.rate.cycles_per_unit.num, 50_000);
    assert!(!conversion.capped);
    assert!(matcher_events(&net).iter().any(|e| matches!(e,
        MatcherEvent::JobAssigned { job_id, price: 20_000, conversion: Some(c), .. } if *job_id == id && *c == conversion)));
    // The bond: the job's value (4 billion fuel at 20,000 e8s) times ten.
    assert_eq!(registry_provider(&net).stake.bonded, 10 * 80_000);

    // The rate moves again; the price agreed at the match stands.
    net.set_icp_xdr_rate(30_000).unwrap();
    net.refresh_rates().unwrap();
    net.run_and_settle(node(), id, 3 * GFUEL);

    // 3 billion fuel at 20,000 e8s: 60,000 e8s paid, 160,000 refunded.
    let lock = net.job_lock(id);
    assert_eq!((lock.released, lock.refunded), (60_000, 160_000));
    let free = net.escrow_balance(buyer()).unwrap().free;
    assert_eq!(free, free_before - lock.storage_fee - 60_000);
    assert_eq!(net.escrow_balance(provider()).unwrap().claimable, 60_000);
    net.audit().unwrap();
}

/// A rate older than the market accepts is refused for an XDR price, and
/// taken again once it is fresh. The cycles minting canister stops
/// updating (it answers a rate two hours old): that older reading never
/// replaces the newer one the matcher holds, which itself goes stale after
/// half an hour.
#[test]
fn a_stale_rate_is_refused() {
    let net = market_with_a_buyer();
    let icp = net.ids.ledger;
    let first = net.refresh_rates().unwrap().valuation(icp).unwrap();
    let now = net.time_ns() / 1_000_000_000;
    net.set_icp_xdr_rate_at(40_000, now - 7_200).unwrap();
    let kept = net.refresh_rates().unwrap().valuation(icp).unwrap();
    assert_eq!(kept, first, "an older reading replaced a newer one");
    let spec = job(&net, icp, Currency::Xdr, 4, 2 * MILLI_XDR);
    // Still fresh: taken.
    submit(&net, &spec).unwrap();
    // 31 minutes on, with the source still two hours behind.
    net.wait_secs(1_860);
    match submit(&net, &spec) {
        Err(MatcherError::StaleRate {
            ledger,
            timestamp_secs,
            max_age_secs,
        }) => {
            assert_eq!(ledger, icp);
            assert_eq!(timestamp_secs, first.timestamp_secs);
            assert_eq!(max_age_secs, 1_800);
        }
        other => panic!("a rate 31 minutes old was not refused: {other:?}"),
    }
    let locked = net.escrow_balance(buyer()).unwrap().locked;
    // A job priced in e8s needs no rate.
    submit(&net, &job(&net, icp, Currency::Token, 4, 1_000)).unwrap();
    assert_eq!(net.escrow_balance(buyer()).unwrap().locked, locked + 4_000);
    // A fresh rate is taken again.
    net.set_icp_xdr_rate(40_000).unwrap();
    net.refresh_rates().unwrap();
    submit(&net, &spec).unwrap();
    net.audit().unwrap();
}

/// A dapp's canister pays in cycles through the cycles ledger (the
/// example client, configured with it): an XDR price needs no conversion
/// and no buffer, the bill is in cycles, and the provider's bond is the
/// job's value in ICP.
#[test]
fn a_canister_pays_in_cycles_with_no_conversion_and_its_provider_bonds_icp() {
    let net = market();
    let cycles = net.pricing_ids().cycles_ledger;
    let team = market_fixture::principal(0x33);
    let client = net.deploy_example_client_on(team, cycles).unwrap();
    net.mint_on(cycles, client, 10 * CYCLES_PER_XDR).unwrap();
    let r: Result<candid::Nat, String> = net
        .update(client, team, "fund", &candid::Nat::from(5 * CYCLES_PER_XDR))
        .unwrap();
    r.expect("the canister deposits its cycles");
    assert_eq!(
        net.balance_on(cycles, market_fixture::account(client))
            .unwrap(),
        5 * CYCLES_PER_XDR - 2 * CYCLES_LEDGER_FEE,
        "an approval and a transfer_from, 100 M cycles each"
    );
    let free_before = net.escrow_balance_on(cycles, client).unwrap().free;
    net.post_offer(
        provider(),
        &offer(&net, cycles, Currency::Xdr, 10 * MILLI_XDR),
    )
    .unwrap();
    // 4 billion fuel at up to 0.02 XDR: 0.08 XDR = 8 * 10^10 cycles locked.
    let spec = job(&net, cycles, Currency::Xdr, 4, 20 * MILLI_XDR);
    let r: Result<JobId, String> = net.update(client, team, "submit", &spec).unwrap();
    let id = r.expect("the canister's job is taken");
    net.settle_outbox();
    assert_eq!(net.job_lock(id).total, 80 * MILLI_XDR);
    let job = net.job(id);
    assert_eq!(job.owner, client);
    assert_eq!(job.price, Some(10 * MILLI_XDR), "a cycle is a cycle");
    // The job is worth 0.04 XDR = 4 * 10^10 cycles, 1,000,000 e8s at 4 XDR
    // per ICP; the bond is ten times that in ICP.
    assert_eq!(
        registry_provider(&net).stake.bonded,
        BOND_MULTIPLE * 1_000_000
    );
    net.run_and_settle(node(), id, 2 * GFUEL);
    let lock = net.job_lock(id);
    assert_eq!(
        (lock.released, lock.refunded),
        (20 * MILLI_XDR, 60 * MILLI_XDR)
    );
    assert_eq!(
        net.escrow_balance_on(cycles, client).unwrap().free,
        free_before - lock.storage_fee - 20 * MILLI_XDR
    );
    assert_eq!(
        net.escrow_balance_on(cycles, provider()).unwrap().claimable,
        20 * MILLI_XDR
    );
    let audit = net.audit().unwrap();
    assert!(audit.other_liabilities[&cycles] > 0);
}

/// A job in an 18-decimal token bonds and is slashed in ICP, at the token's
/// value: 0.0004 ETH at 2,500 XDR per ETH and 4 XDR per ICP is 0.25 ICP.
/// (Counted in the token's own units, as before, the bond would have been
/// 4 * 10^15 e8s, forty million ICP, and the job would never have run.)
#[test]
fn an_eighteen_decimal_token_bonds_and_slashes_the_right_icp() {
    let net = market();
    let eth = net.pricing_ids().eth_ledger;
    net.mint_on(eth, buyer(), ETH).unwrap();
    net.deposit_on(eth, buyer(), ETH / 2).unwrap();
    assert_eq!(net.fee_on(eth).unwrap(), ETH_FEE);
    let price = ETH / 10_000; // 0.0001 ETH per billion fuel
    net.post_offer(provider(), &offer(&net, eth, Currency::Token, price))
        .unwrap();
    let id = submit(&net, &job(&net, eth, Currency::Token, 4, price)).unwrap();
    assert_eq!(net.job(id).status, JobStatus::Assigned);
    let value_e8s: u128 = 25_000_000;
    let before = registry_provider(&net);
    assert_eq!(
        before.stake.bonded,
        BOND_MULTIPLE * value_e8s,
        "2.5 ICP bonded"
    );
    assert!(
        matcher_events(&net).iter().any(|e| matches!(e,
            MatcherEvent::JobAssigned { job_id, stake_value: Some(v), .. } if *job_id == id && *v == value_e8s)),
        "the assignment's event gives its worth in e8s"
    );
    // The node never acknowledges: the deadline passes and the provider is
    // slashed five times the job's value in ICP.
    net.wait_secs(60 + net.settings.grace_secs + 10);
    net.settle_outbox();
    let after = registry_provider(&net);
    assert_eq!(
        after.slashed_total - before.slashed_total,
        SLASH_MULTIPLE * value_e8s
    );
    assert!(matcher_events(&net).iter().any(|e| matches!(e,
        MatcherEvent::DeadlineMissed { job_id, slashed, .. } if *job_id == id && *slashed == SLASH_MULTIPLE * value_e8s)));
    // The slash went to the buyer's ICP escrow account, less two ICP fees
    // (the registry's transfer to its deposit account, and the escrow's
    // sweep of that account into its own).
    assert_eq!(
        net.escrow_balance(buyer()).unwrap().free,
        SLASH_MULTIPLE * value_e8s - 2 * net.settings.fee
    );
    net.audit().unwrap();
}

/// A token the escrow takes but the matcher has no rate for is refused for
/// jobs and offers alike, with the ledger named.
#[test]
fn a_token_with_no_rate_source_is_refused() {
    let net = market();
    let unrated = net.pricing_ids().unrated_ledger;
    net.mint_on(unrated, buyer(), 10 * ICP).unwrap();
    net.deposit_on(unrated, buyer(), 5 * ICP).unwrap();
    let r = submit(&net, &job(&net, unrated, Currency::Token, 4, 1_000));
    assert_eq!(r, Err(MatcherError::NoRateSource { ledger: unrated }));
    let r: Result<u64, MatcherError> = net
        .update(
            net.ids.matcher,
            provider(),
            "post_offer",
            &offer(&net, unrated, Currency::Token, 1_000),
        )
        .unwrap();
    assert_eq!(r, Err(MatcherError::NoRateSource { ledger: unrated }));
    assert_eq!(net.escrow_balance_on(unrated, buyer()).unwrap().locked, 0);
    net.audit().unwrap();
}

/// The stand-ins answer as the cycles minting canister and the exchange
/// rate canister do, and each ledger's books balance after deposits.
#[test]
fn the_rate_stand_ins_and_the_extra_ledgers_work() {
    let net = market();
    let ids = net.pricing_ids();
    let cmc: IcpXdrConversionRateResponse = net
        .query(ids.cmc, "get_icp_xdr_conversion_rate", &())
        .unwrap();
    assert_eq!(cmc.data.xdr_permyriad_per_icp, 40_000);
    let now = net.time_ns() / 1_000_000_000;
    assert_eq!(
        cmc.data.timestamp_seconds,
        now - now % 60,
        "current, to the minute"
    );
    // Ingress carries no cycles: the exchange rate canister refuses it.
    let r: GetExchangeRateResult = net
        .update(ids.xrc, buyer(), "get_exchange_rate", &xdr_rate_of("ETH"))
        .unwrap();
    assert_eq!(
        r,
        GetExchangeRateResult::Err(ExchangeRateError::NotEnoughCycles)
    );
    net.mint_on(ids.cycles_ledger, buyer(), 2 * CYCLES_PER_XDR)
        .unwrap();
    net.deposit_on(ids.cycles_ledger, buyer(), CYCLES_PER_XDR)
        .unwrap();
    assert_eq!(
        net.balance_on(ids.cycles_ledger, market_fixture::account(buyer()))
            .unwrap(),
        CYCLES_PER_XDR - 2 * CYCLES_LEDGER_FEE
    );
    net.mint_on(ids.eth_ledger, buyer(), ETH).unwrap();
    net.deposit_on(ids.eth_ledger, buyer(), ETH / 2).unwrap();
    net.mint(buyer(), ICP).unwrap();
    let audit = net.audit().unwrap();
    assert_eq!(audit.other_liabilities[&ids.cycles_ledger], CYCLES_PER_XDR);
    assert_eq!(audit.other_liabilities[&ids.eth_ledger], ETH / 2);
    assert_eq!(audit.other_liabilities[&ids.unrated_ledger], 0);
}
