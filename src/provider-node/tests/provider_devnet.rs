//! A provider's whole life on the devnet, through the calls `provider-node`'s
//! commands make (`register`, `stake`, `offer post|update`, `run`,
//! `withdraw`, `unstake`): the real ledger, registry, escrow and matcher
//! `.wasm` files (via `market-fixture`), the provider's calls through the devnet
//! transport, its daemon running a buyer's job, and every token accounted
//! for at the end.
//!
//! Needs the canisters built: `scripts/build-canisters.sh`.

use std::time::Duration;

use candid::Principal;
use market_api::matcher::{GFUEL, JobStatus, fuel_cost};
use market_api::registry::{Provider, ProviderProfile};
use market_api::{Account, Tokens};
use market_client::MarketClient;
use market_fixture::DevnetTransport;
use market_fixture::{ICP, Settings};
use provider_node::daemon::Summary;
use provider_node::provider::{self, EarningsWithdrawal};
use test_world::{DaemonSetup, HoldResults, World, count, one_slot_offer, spawn};

/// Per billion fuel (and per interval of a reserved slot).
const PRICE: Tokens = 100_000;
/// The buyer's fuel budget: more than the countdown needs.
const BUDGET: u64 = 10 * GFUEL;
const INTERVAL: u64 = 20;
const UNBONDING_SECS: u64 = 3_600;

fn buyer() -> Principal {
    market_fixture::principal(0xB3)
}
fn provider_id() -> Principal {
    market_fixture::provider(3)
}

async fn provider_record(c: &MarketClient<DevnetTransport>) -> Provider {
    c.get_provider(provider_id())
        .await
        .unwrap()
        .expect("registered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_stakes_offers_updates_earns_withdraws_and_unstakes() {
    let w = World::deploy(
        Settings {
            grace_secs: 10,
            unbonding_period_secs: UNBONDING_SECS,
            ..Settings::default()
        },
        buyer(),
    );
    let (net, ids) = (&w.net, w.ids);
    let fee = net.settings.fee;
    let me = w.client(provider_id());
    let wallet = || net.balance(market_fixture::account(provider_id())).unwrap();
    net.mint(provider_id(), 60 * ICP).unwrap();
    net.mint(buyer(), 10 * ICP).unwrap();
    net.deposit(buyer(), 5 * ICP).unwrap();

    // register, stake: the node is the provider's own identity, as by default.
    me.register_provider(ProviderProfile {
        display_name: "acme".into(),
        region: "local".into(),
        node: provider_id(),
        total_slots: 1,
        memory_per_slot_mib: 256,
        tags: vec![],
        endpoint: None,
    })
    .await
    .unwrap();
    let staked = provider::stake(&me, 50 * ICP).await.unwrap();
    assert_eq!((staked.amount, staked.fee), (50 * ICP, fee));
    assert_eq!(
        wallet(),
        60 * ICP - 50 * ICP - 2 * fee,
        "the stake, the transfer fee and the approval fee"
    );
    assert_eq!(provider_record(&me).await.stake.free, 50 * ICP);

    // offer post: too little memory for the buyer's job, which rests.
    let offer_id = me
        .post_offer(one_slot_offer(16, PRICE, ids.ledger))
        .await
        .unwrap();
    let sha = w.upload(&count()).await;
    let mut spec = w.stored_job(sha, INTERVAL, BUDGET, 3 * PRICE);
    spec.limits.memory_mib = 32;
    let job_id = w.buyer.submit_job(spec).await.unwrap();
    let job = w.job(job_id).await;
    assert_eq!(
        (job.status, job.provider),
        (JobStatus::Open, None),
        "16 MiB slots cannot take a 32 MiB job"
    );

    // offer update: more memory at a higher price; the resting job is
    // matched on the new terms.
    let updated = one_slot_offer(128, 2 * PRICE, ids.ledger);
    assert_eq!(
        me.update_offer(offer_id, updated.clone()).await.unwrap(),
        offer_id
    );
    let offers = me.offers_of(provider_id()).await.unwrap();
    assert_eq!(offers.len(), 1, "updated in place, not added");
    assert_eq!(offers[0].spec, updated);
    assert_eq!(offers[0].slots_used, 1, "the resting job took the slot");
    let job = w.job(job_id).await;
    assert_eq!(job.status, JobStatus::Assigned);
    assert_eq!(job.provider, Some(provider_id()));
    assert_eq!(job.price, Some(2 * PRICE), "the new price");
    // The bond answers for the budget's value at the agreed price.
    let value = fuel_cost(BUDGET, 2 * PRICE).unwrap();
    assert_eq!(
        provider_record(&me).await.stake.bonded,
        Tokens::from(net.settings.bond_multiple) * value
    );

    // run: the daemon heartbeats the job, reporting its fuel. Its result
    // waits until two intervals went by, however fast the sandbox runs
    // the job.
    let state_dir = tempfile::tempdir().unwrap();
    let (daemon, metrics) = test_world::daemon(
        MarketClient::new(HoldResults::new(net.transport(provider_id()), ids, 2), ids),
        DaemonSetup {
            provider: provider_id(),
            state_dir: state_dir.path(),
            shutdown_grace: Duration::from_secs(10),
            max_job_time: Duration::from_secs(120),
        },
    );
    let (stop_daemon, task) = spawn(daemon);
    w.start_clock();
    let job = w
        .until(job_id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(job.result.as_ref().unwrap().output, b"done\n");
    let _ = stop_daemon.send(());
    let summary: Summary = task.await.unwrap();
    assert_eq!(summary.results_submitted, 1);
    w.stop_clock();
    net.settle_outbox();
    let fuel = job.result.as_ref().unwrap().fuel_used;
    let earned = fuel_cost(fuel, 2 * PRICE).unwrap();
    assert!(earned > 0, "{job:?}");
    assert_eq!(job.paid, earned);
    assert_eq!(
        me.escrow_balance(provider_id()).await.unwrap().claimable,
        earned,
        "the bill reached the provider's escrow balance when the window closed"
    );
    assert_eq!(
        (metrics.fuel_paid.get(), metrics.earnings_e8s.get()),
        (fuel, u64::try_from(earned).unwrap()),
        "the daemon's metrics count what the matcher paid, heartbeats and result"
    );
    assert_eq!(metrics.intervals_paid.get(), 0, "no reserved slot");

    // withdraw (earnings): all of it, less one fee, to the wallet.
    let before = wallet();
    let w = match provider::withdraw_earnings(&me, Account::from(provider_id()))
        .await
        .unwrap()
    {
        EarningsWithdrawal::Withdrawn(w) => w,
        other => panic!("{other:?}"),
    };
    assert_eq!((w.amount, w.fee), (earned, fee));
    assert_eq!(wallet(), before + earned - fee);
    assert_eq!(me.escrow_balance(provider_id()).await.unwrap().claimable, 0);
    assert_eq!(
        provider::withdraw_earnings(&me, Account::from(provider_id()))
            .await
            .unwrap(),
        EarningsWithdrawal::TooSmall { claimable: 0, fee },
        "nothing left to withdraw"
    );

    // unstake: the bond came back when the job ended; part of the stake
    // starts unbonding and is not withdrawable before the period is over.
    let p = provider_record(&me).await;
    assert_eq!((p.stake.free, p.stake.bonded), (50 * ICP, 0));
    let asked_at = net.time_ns();
    let entry = me.unstake(20 * ICP).await.unwrap();
    assert_eq!(entry.amount, 20 * ICP);
    let period = UNBONDING_SECS * 1_000_000_000;
    assert!(
        (asked_at + period..=net.time_ns() + period).contains(&entry.release_at_ns),
        "released one unbonding period after the call: {entry:?}"
    );
    net.advance(Duration::from_secs(UNBONDING_SECS - 60));
    let before = wallet();
    assert_eq!(provider::withdraw_unbonded(&me).await.unwrap(), None);
    assert_eq!(wallet(), before, "a minute early: nothing moves");

    // withdraw (unbonded stake): after the period, to the wallet less a fee.
    net.advance(Duration::from_secs(60));
    let w = provider::withdraw_unbonded(&me)
        .await
        .unwrap()
        .expect("released");
    assert_eq!((w.amount, w.fee), (20 * ICP, fee));
    assert_eq!(wallet(), before + 20 * ICP - fee);
    let p = provider_record(&me).await;
    assert_eq!((p.stake.free, p.stake.unbonding.len()), (30 * ICP, 0));
    assert_eq!(provider::withdraw_unbonded(&me).await.unwrap(), None);

    for _ in 0..30 {
        net.advance(Duration::from_secs(1));
    }
    let audit = net.audit().expect("money is conserved");
    assert_eq!(audit.stakes, 30 * ICP);
    assert_eq!(audit.released, earned);
    assert_eq!(audit.slashes, 0);
}
