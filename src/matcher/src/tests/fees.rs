//! The market's fee: locked on top of a job's or reservation's cost at the
//! rate in force when it was submitted, paid with each release, returned
//! with forfeited pay, and shown in the views.

use super::market::{P, attempt, buyer, drain_at, funded_lease, lease, market, node, offers, spec};
use crate::lifecycle::{Effect, Params};
use crate::market::Market;
use ic_stable_structures::VectorMemory;
use market_api::matcher::{
    ExtendReservationArgs, HeartbeatAck, JobStatus, MarketFee, SubmitResultArgs,
};
use market_api::{JobId, Tokens};
use market_fixture::{exited, heartbeat_item};

const S: u64 = 1_000_000_000;
const G: u64 = market_api::matcher::GFUEL;

/// 2.5 % of the provider's pay.
const FEE: Params = Params {
    market_fee_ppm: 25_000,
    ..P
};

fn lock_amount(m: &mut Market<VectorMemory>, id: JobId) -> Tokens {
    let seq = m.lock_in_flight(0, id).unwrap();
    let Effect::Lock { amount, .. } = m.outbox.get(seq).unwrap().effect else {
        panic!("not a lock");
    };
    m.outbox.complete(seq);
    amount
}

fn heartbeat(m: &mut Market<VectorMemory>, p: &Params, t: u64, n: u8, id: JobId, fuel: u64) {
    let item = heartbeat_item(id, attempt(m, id), fuel);
    let ack = m.heartbeat(p, t, node(n), &[item]).unwrap().remove(0);
    assert!(matches!(ack, HeartbeatAck::Accepted { .. }), "{ack:?}");
}

fn releases(fx: &[(JobId, Effect)]) -> Vec<(Tokens, Tokens)> {
    fx.iter()
        .filter_map(|(_, e)| match e {
            Effect::Release { amount, fee, .. } => Some((*amount, *fee)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_job_locks_its_fee_on_top_and_pays_it_with_each_release() {
    let mut m = market();
    offers(&mut m, &FEE, &[(1, 50)]);
    // 10 billion fuel at up to 80: a cost of 800, and 2.5 % of it.
    let id = m
        .create_job(&FEE, 0, buyer(), spec(80, 1))
        .unwrap()
        .state
        .id;
    assert_eq!(lock_amount(&mut m, id), 800 + 20);
    let fee = m.job(id).unwrap().to_job().market_fee;
    assert_eq!(
        fee,
        MarketFee {
            fee_ppm: 25_000,
            locked: 20,
            paid: 0
        }
    );
    m.job_funded(&FEE, 0, id);
    drain_at(&mut m, 0);

    // A billion fuel at 50: a fee of 1.25, rounded down.
    heartbeat(&mut m, &FEE, S, 1, id, 0);
    heartbeat(&mut m, &FEE, 61 * S, 1, id, 2 * G);
    assert_eq!(releases(&drain_at(&mut m, 0)), vec![(100, 2)]);
    assert_eq!(m.job(id).unwrap().to_job().market_fee.paid, 2);

    // Provider 1 goes silent: its pay is forfeited, and the fee on it.
    offers(&mut m, &FEE, &[(2, 70)]);
    assert_eq!(m.process_deadlines(&FEE, 152 * S, 100), 1);
    let fx = drain_at(&mut m, 160 * S);
    assert!(fx.iter().any(|(_, e)| matches!(e, Effect::Forfeit { .. })));
    assert_eq!(m.job(id).unwrap().to_job().market_fee.paid, 0);

    // The market's fee rises; the running job keeps the rate it was
    // submitted at.
    let dearer = Params {
        market_fee_ppm: 100_000,
        ..FEE
    };
    heartbeat(&mut m, &dearer, 161 * S, 2, id, 0);
    m.submit_result(
        &dearer,
        170 * S,
        node(2),
        SubmitResultArgs {
            job_id: id,
            attempt: attempt(&m, id),
            result: exited(b"done", 3 * G),
        },
    )
    .unwrap();
    // 3 billion fuel at 70: 210, and 5.25 of fee.
    assert_eq!(releases(&drain_at(&mut m, 170 * S)), vec![(210, 5)]);
    let job = m.job(id).unwrap().to_job();
    assert_eq!(job.status, JobStatus::Reported);
    assert_eq!(
        (job.paid, job.market_fee.paid, job.market_fee.fee_ppm),
        (210, 5, 25_000)
    );
    // A job submitted now pays the new rate.
    let later = m
        .create_job(&dearer, 171 * S, buyer(), spec(80, 0))
        .unwrap();
    assert_eq!(lock_amount(&mut m, later.state.id), 800 + 80);
}

#[test]
fn a_reservation_locks_the_fee_on_its_term_and_each_extension() {
    let mut m = market();
    offers(&mut m, &FEE, &[(1, 40)]);
    // One slot, two intervals at up to 100: 200, and 5 of fee.
    let (rid, slots) = funded_lease(&mut m, &FEE, lease(1, 2));
    let r = m.reservation(rid).unwrap();
    assert_eq!((r.locked, r.market_fee.locked), (205, 5));
    drain_at(&mut m, 0);

    let ext = ExtendReservationArgs {
        reservation: rid,
        intervals: 1,
    };
    // At the reservation's rate, 2.5 % of 100 rounded up.
    let e = m.prepare_extension(buyer(), &ext).unwrap();
    assert_eq!((e.amount, e.fee), (100 + 3, 3));
    m.begin_extension(0, rid, e);
    m.apply_extension(rid, e.number, e.amount, e.intervals);
    let r = m.reservation(rid).unwrap();
    assert_eq!((r.locked, r.market_fee.locked), (308, 8));

    let slot = slots[0];
    let mut fx = vec![];
    for i in 0..=3 {
        heartbeat(&mut m, &FEE, (1 + 60 * i) * S, 1, slot, 0);
        fx.extend(drain_at(&mut m, 0));
    }
    // Three intervals at 40, a fee of 1 each.
    assert_eq!(releases(&fx), vec![(40, 1), (40, 1), (40, 1)]);
    assert!(fx.contains(&(rid, Effect::Settle)));
    let r = m.reservation(rid).unwrap();
    assert_eq!((r.paid, r.market_fee.paid), (120, 3));
}
