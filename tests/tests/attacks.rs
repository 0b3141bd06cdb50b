//! Attacks a hostile buyer, provider or stranger can try on the deployed
//! market, each made from the attacker's own principal against the real
//! `.wasm` files on the devnet, and what stops it.

use candid::Principal;
use market_api::matcher::{
    HeartbeatAck, HeartbeatItem, JobResult, MatcherError, OfferSpec, RunOutcome, SubmitResultArgs,
};
use market_api::registry::{ProviderProfile, RegistryError};
use market_api::{JobId, OfferId};
use market_fixture::{ICP, MarketFixture, Settings, node, principal, provider};

fn buyer() -> Principal {
    principal(1)
}

fn offer(net: &MarketFixture, price: u128) -> OfferSpec {
    OfferSpec {
        slots: 4,
        memory_per_slot_mib: 256,
        max_fuel_per_interval: 1_000_000,
        price_per_interval: price,
        ledger: net.ids.ledger,
        min_interval_secs: 1,
        max_interval_secs: 3_600,
        tags: vec![],
    }
}

/// A market with a funded buyer and provider 1 (node 1) offering slots.
fn market() -> (MarketFixture, OfferId) {
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.onboard_provider(provider(1), node(1), 50 * ICP)
        .unwrap();
    let offer_id = net.post_offer(provider(1), &offer(&net, 100_000)).unwrap();
    (net, offer_id)
}

fn submit(net: &MarketFixture, who: Principal) -> JobId {
    let spec = net.url_job(60, 10, 100_000);
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, who, "submit_job", &spec)
        .unwrap();
    let id = r.expect("submit_job");
    net.settle_outbox();
    id
}

fn heartbeat(net: &MarketFixture, from: Principal, job_id: JobId, attempt: u32) -> HeartbeatAck {
    let items = vec![HeartbeatItem {
        job_id,
        attempt,
        fuel_used: 0,
    }];
    let r: Result<Vec<HeartbeatAck>, MatcherError> = net
        .update(net.ids.matcher, from, "heartbeat", &items)
        .unwrap();
    let mut acks = r.expect("a heartbeat batch is answered item by item");
    assert_eq!(acks.len(), 1);
    acks.remove(0)
}

fn result() -> JobResult {
    JobResult {
        outcome: RunOutcome::Exited { code: 0 },
        output: b"forged".to_vec(),
        output_sha256: [0; 32],
        fuel_used: 1,
        engine: "wasmtime".into(),
    }
}

/// A provider whose node key leaked rotates it: it names a new node in the
/// registry and posts its offer again. From then on the old key speaks for
/// nobody: its heartbeats, results and hand-backs for the provider's
/// running job are refused, and the new node's are taken.
#[test]
fn a_rotated_out_node_key_can_no_longer_act_for_its_provider() {
    let (net, offer_id) = market();
    let job = submit(&net, buyer());
    assert!(matches!(
        heartbeat(&net, node(1), job, 1),
        HeartbeatAck::Accepted { .. }
    ));

    let new_node = principal(0x29);
    let profile = ProviderProfile {
        display_name: "provider 1".into(),
        region: "local".into(),
        node: new_node,
        total_slots: 4,
        memory_per_slot_mib: 512,
        tags: vec![],
        endpoint: None,
    };
    let r: Result<(), RegistryError> = net
        .update(net.ids.registry, provider(1), "update_profile", &profile)
        .unwrap();
    r.unwrap();
    let r: Result<OfferId, MatcherError> = net
        .update_args(
            net.ids.matcher,
            provider(1),
            "update_offer",
            (offer_id, offer(&net, 100_000)),
        )
        .map(|(r,)| r)
        .unwrap();
    assert_eq!(r, Ok(offer_id));

    // The thief, holding the old key, heartbeats when the next one is due.
    net.advance(std::time::Duration::from_secs(60));
    let stolen = node(1);
    match heartbeat(&net, stolen, job, 1) {
        HeartbeatAck::Refused { reason } => assert!(
            reason.contains("not assigned to this provider"),
            "refused for another reason: {reason}"
        ),
        ack => panic!("the old node key still heartbeats for the provider: {ack:?}"),
    }
    let r: Result<(), MatcherError> = net
        .update(
            net.ids.matcher,
            stolen,
            "submit_result",
            &SubmitResultArgs {
                job_id: job,
                attempt: 1,
                result: result(),
            },
        )
        .unwrap();
    assert!(
        matches!(r, Err(MatcherError::Unauthorized { .. })),
        "the old node key reported a result: {r:?}"
    );
    let r: Result<(), MatcherError> = net
        .update_args(net.ids.matcher, stolen, "hand_back", (job, 1u32))
        .map(|(r,)| r)
        .unwrap();
    assert!(
        matches!(r, Err(MatcherError::Unauthorized { .. })),
        "the old node key handed the job back: {r:?}"
    );

    // The provider's new node carries on with the job.
    assert!(matches!(
        heartbeat(&net, new_node, job, 1),
        HeartbeatAck::Accepted { .. }
    ));
    net.audit().unwrap();
}

/// A throwaway principal (self-authenticating in shape, never funded).
fn stranger(i: u16) -> Principal {
    let mut bytes = [0x5A; 29];
    bytes[..2].copy_from_slice(&i.to_be_bytes());
    Principal::from_slice(&bytes)
}

/// Decodes the reply of a call submitted with `submit_call`.
fn reply<R: candid::CandidType + for<'a> candid::Deserialize<'a>>(
    dn: &mut devnet::Devnet,
    id: devnet::MessageId,
) -> R {
    let bytes = dn.await_call(id).expect("the call is answered");
    candid::decode_one(&bytes).expect("the reply decodes")
}

/// Strangers each start a `post_offer` (which waits on the registry) at
/// once; a buyer who submits a job meanwhile is served, not told `Busy`.
#[test]
fn strangers_flooding_offers_do_not_lock_buyers_out() {
    let (net, _) = market();
    let spec = net.url_job(60, 10, 100_000);
    let mut dn = net.devnet();
    let flood = 150;
    let offer = candid::encode_one(offer(&net, 1)).unwrap();
    for i in 0..flood {
        dn.submit_call(net.ids.matcher, stranger(i), "post_offer", offer.clone())
            .expect("accepted for execution");
    }
    // Each stranger's call runs up to its registry call and waits there.
    for _ in 0..flood {
        assert!(dn.step());
    }
    let submitted = dn
        .submit_call(
            net.ids.matcher,
            buyer(),
            "submit_job",
            candid::encode_one(&spec).unwrap(),
        )
        .unwrap();
    dn.tick();
    let r: Result<JobId, MatcherError> = reply(&mut dn, submitted);
    assert!(r.is_ok(), "the buyer was locked out by strangers: {r:?}");
}

/// A stranger calls `notify_deposit` for someone else's balance just before
/// its owner withdraws: the withdrawal goes through.
#[test]
fn notifying_for_someone_else_does_not_block_their_withdrawal() {
    use market_api::escrow::{NotifyDepositArgs, WithdrawArgs};
    let (net, _) = market();
    let mut dn = net.devnet();
    let notify = NotifyDepositArgs {
        beneficiary: buyer(),
        ledger: net.ids.ledger,
    };
    let notified = dn
        .submit_call(
            net.ids.escrow,
            stranger(1),
            "notify_deposit",
            candid::encode_one(&notify).unwrap(),
        )
        .unwrap();
    let withdraw = WithdrawArgs {
        ledger: net.ids.ledger,
        amount: ICP,
        to: market_fixture::account(buyer()),
    };
    let withdrawn = dn
        .submit_call(
            net.ids.escrow,
            buyer(),
            "withdraw",
            candid::encode_one(&withdraw).unwrap(),
        )
        .unwrap();
    dn.tick();
    let _: Result<u128, market_api::escrow::EscrowError> = reply(&mut dn, notified);
    let r: Result<u128, market_api::escrow::EscrowError> = reply(&mut dn, withdrawn);
    assert!(
        r.is_ok(),
        "the stranger blocked the owner's withdrawal: {r:?}"
    );
    drop(dn);
    net.audit().unwrap();
}
/// A provider that misses its deadline keeps a `stake` call of its own in
/// flight whenever the matcher's slash arrives: the slash lands anyway.
#[test]
fn a_provider_cannot_dodge_its_slash_by_keeping_its_stake_busy() {
    let (net, _) = market();
    let job = submit(&net, buyer());
    assert!(matches!(
        heartbeat(&net, node(1), job, 1),
        HeartbeatAck::Accepted { .. }
    ));
    let slashed = |net: &MarketFixture| {
        let p: Option<market_api::registry::Provider> = net
            .query(net.ids.registry, "get_provider", &provider(1))
            .unwrap();
        p.expect("registered").slashed_total
    };
    assert_eq!(slashed(&net), 0);
    // The provider goes silent, and from now on always has one `stake`
    // call queued ahead of whatever the matcher sends.
    for _ in 0..20 {
        let mut dn = net.devnet();
        dn.submit_call(
            net.ids.registry,
            provider(1),
            "stake",
            candid::encode_one(candid::Nat::from(1u8)).unwrap(),
        )
        .unwrap();
        dn.advance_time(std::time::Duration::from_secs(30));
        dn.tick();
    }
    assert!(
        slashed(&net) > 0,
        "the silent provider was never slashed while it kept its stake busy"
    );
    net.audit().unwrap();
}
