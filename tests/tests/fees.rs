//! The market's fee on the devnet with the real canisters: set by the
//! controllers, locked on top of a job's cost, paid with the provider's
//! pay to the matcher's escrow balance, the rest refunded, and every
//! ledger's conservation audited.

mod cast;

use cast::{buyer, node, provider};
use market_api::matcher::{GFUEL, JobStatus, MarketFee, MatcherError, MatcherEvent, MatcherInit};
use market_api::{JobId, Tokens};
use market_fixture::{ICP, MarketFixture, Settings, admin};

fn set_fee(net: &MarketFixture, caller: candid::Principal, ppm: u32) -> Result<(), MatcherError> {
    net.update(net.ids.matcher, caller, "set_market_fee", &ppm)
        .unwrap()
}

/// The buyer submits a job of `gfuel` billion fuel at up to `max_price`.
fn submit(net: &MarketFixture, gfuel: u32, max_price: Tokens) -> JobId {
    let r: Result<JobId, MatcherError> = net
        .update(
            net.ids.matcher,
            buyer(),
            "submit_job",
            &net.url_job(60, gfuel, max_price),
        )
        .unwrap();
    net.settle_outbox();
    r.expect("the job is taken")
}

/// A fee of 2.5 % set by the controllers: the job's lock holds its cost
/// and the fee on it; the provider gets its pay, the matcher's escrow
/// balance the fee on that pay, and the buyer the rest; a later change of
/// the fee leaves the job as it was.
#[test]
fn a_job_pays_the_market_fee_on_its_providers_pay_and_gets_the_rest_back() {
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    net.onboard_provider(provider(), node(), 50 * ICP).unwrap();
    net.mint(buyer(), 10 * ICP).unwrap();
    net.deposit(buyer(), 5 * ICP).unwrap();

    // A buyer's call is dropped before it runs (controllers only).
    let by_buyer: market_fixture::Result<Result<(), MatcherError>> =
        net.update(net.ids.matcher, buyer(), "set_market_fee", &25_000u32);
    assert!(by_buyer.is_err(), "{by_buyer:?}");
    assert!(matches!(
        set_fee(&net, admin(), market_api::matcher::MAX_MARKET_FEE_PPM + 1),
        Err(MatcherError::InvalidArgument { .. })
    ));
    set_fee(&net, admin(), 25_000).unwrap();
    let config: MatcherInit = net.query(net.ids.matcher, "get_config", &()).unwrap();
    assert_eq!(config.market_fee_ppm, Some(25_000));
    let events = net.events::<MatcherEvent>(net.ids.matcher).unwrap();
    assert!(events.contains(&MatcherEvent::MarketFeeSet {
        fee_ppm: 25_000,
        controller: admin(),
    }));

    let free_before = net.escrow_balance(buyer()).unwrap().free;
    // 4 billion fuel at up to 10,000: a cost of 40,000 and a fee of 1,000.
    let id = submit(&net, 4, 10_000);
    let lock = net.job_lock(id);
    assert_eq!(lock.total, 41_000);
    assert_eq!(
        net.job(id).market_fee,
        MarketFee {
            fee_ppm: 25_000,
            locked: 1_000,
            paid: 0
        }
    );
    set_fee(&net, admin(), 0).unwrap();

    net.post_offer(provider(), &net.offer_spec(1, 5_000))
        .unwrap();
    net.settle_outbox();
    // 3 billion fuel at 5,000: 15,000 of pay and 375 of fee.
    net.run_and_settle(node(), id, 3 * GFUEL);

    let lock = net.job_lock(id);
    assert_eq!(
        (
            lock.released,
            lock.fee_paid,
            lock.fee_pending,
            lock.refunded
        ),
        (15_000, 375, 0, 41_000 - 15_375)
    );
    assert_eq!(
        net.job(id).market_fee,
        MarketFee {
            fee_ppm: 25_000,
            locked: 1_000,
            paid: 375
        }
    );
    let free = net.escrow_balance(buyer()).unwrap().free;
    assert_eq!(free, free_before - lock.storage_fee - 15_375);
    let events = net.events::<MatcherEvent>(net.ids.matcher).unwrap();
    assert!(
        events.contains(&MatcherEvent::JobFinished {
            job_id: id,
            status: JobStatus::Succeeded,
            refunded: lock.refunded,
        }),
        "the matcher's record of the refund leaves out the fee paid"
    );
    assert_eq!(net.escrow_balance(provider()).unwrap().claimable, 15_000);
    let market = net.escrow_balance(net.ids.matcher).unwrap();
    assert_eq!(
        (market.claimable, market.pending),
        (lock.storage_fee + 375, 0),
        "the market's fees: the job's storage fee and the fee on its pay"
    );
    let audit = net.audit().unwrap();
    assert_eq!(audit.market_fees, 375);

    // A job submitted after the change pays no fee.
    let later = submit(&net, 4, 10_000);
    assert_eq!(net.job_lock(later).total, 40_000);
    assert_eq!(net.job(later).market_fee.fee_ppm, 0);
}

/// The registry's cycles: its balance and what it burned so far.
fn registry_cycles(net: &MarketFixture) -> (u128, u128) {
    let dn = net.devnet();
    let registry = net.ids.registry;
    (
        dn.cycle_balance(registry).unwrap(),
        dn.cycles_burned(registry).unwrap().total(),
    )
}

/// With a 10 % fee and top-ups from 0.002 ICP, a job's fees reach the
/// threshold: the matcher sends the market's ICP to the cycles minting
/// canister for the registry (the first in turn), whose balance goes up
/// by the ICP at the CMC's rate; the matcher's escrow balance is spent
/// and every ledger still adds up.
#[test]
fn the_fees_collected_top_up_a_canisters_cycles() {
    let net = MarketFixture::deploy(Settings {
        market_fee_ppm: Some(100_000),
        cycles_top_up_threshold: Some(200_000),
        ..Settings::default()
    })
    .expect("deploy");
    net.onboard_provider(provider(), node(), 50 * ICP).unwrap();
    net.mint(buyer(), 10 * ICP).unwrap();
    net.deposit(buyer(), 5 * ICP).unwrap();
    net.post_offer(provider(), &net.offer_spec(1, 1_000_000))
        .unwrap();
    net.settle_outbox();

    // 3 billion fuel at 1,000,000: 3,000,000 of pay and 300,000 of fee.
    let id = submit(&net, 4, 1_000_000);
    net.run_and_settle(node(), id, 3 * GFUEL);
    let storage_fee = net.job_lock(id).storage_fee;
    let market = net.escrow_balance(net.ids.matcher).unwrap();
    let collected = storage_fee + 300_000;
    assert_eq!(market.claimable, collected);

    let (before, burned_before) = registry_cycles(&net);
    // The watchdog, a minute after the steps that paid the market, begins
    // the top-up; the outbox runs it.
    net.wait_secs(61);
    net.settle_outbox();
    net.wait_secs(61);
    net.settle_outbox();

    let events = net.events::<MatcherEvent>(net.ids.matcher).unwrap();
    let topped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MatcherEvent::CyclesToppedUp {
                canister,
                amount,
                cycles,
                ..
            } => Some((*canister, *amount, *cycles)),
            _ => None,
        })
        .collect();
    // What was collected less the withdrawal's and the transfer's fees,
    // at the CMC stand-in's 5 XDR per ICP: 50,000 cycles an e8.
    let amount = collected - 2 * 10_000;
    assert_eq!(topped, vec![(net.ids.registry, amount, amount * 50_000)]);
    let (after, burned_after) = registry_cycles(&net);
    assert_eq!(
        after + (burned_after - burned_before),
        before + amount * 50_000,
        "the registry's balance went up by the cycles, less what it burned meanwhile"
    );
    let market = net.escrow_balance(net.ids.matcher).unwrap();
    assert_eq!((market.claimable, market.free), (0, 0));
    net.audit().unwrap();
}
